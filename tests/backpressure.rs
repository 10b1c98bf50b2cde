//! Contract §4 "Backpressure, not loss or bloat" and notes-open-points: a closed or slow stdout
//! of dinit.
mod common;
use common::*;
use std::time::{Duration, Instant};

/// A python `run` that writes `n` JSON lines `{"n":i}` to stdout (SIGTERM only sets a flag, so
/// every line gets written), creates `$S/flood.done`, writes `flood-done` to stderr, then exits 0
/// once it got SIGTERM.
fn flood(d: &TestDir, n: usize) -> String {
    d.py(&format!(
        "import signal, sys, time\n\
         term = False\n\
         def h(s, f):\n    global term\n    term = True\n\
         signal.signal(signal.SIGTERM, h)\n\
         open(S + '/flood.pid', 'w').write('started\\n')\n\
         w = sys.stdout.buffer\n\
         for i in range({n}):\n    w.write(b'{{\"n\":%d}}\\n' % i)\n\
         w.flush()\n\
         open(S + '/flood.done', 'w').write('done\\n')\n\
         sys.stderr.write('flood-done\\n')\nsys.stderr.flush()\n\
         while not term:\n    time.sleep(0.02)\n"
    ))
}

fn error_lines(text: &str, what: &str) -> usize {
    text.lines().filter(|l| l.contains(what)).count()
}

/// Expect (change): dinit's stdout is a pipe whose reader is gone: dinit does not die, reports
/// once on stderr `dinit: error: error writing stdout: broken pipe` (even as more stdout output
/// fails), keeps supervising (later stderr lines pass), and exits 0 on SIGTERM after the
/// services' TERM traps ran.
#[test]
fn closed_stdout() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running(
        "a",
        "i=0; while [ $i -lt 100 ]; do echo \"{\\\"i\\\":$i}\"; i=$((i+1)); done\necho after-stdout >&2",
    ));
    d.svc("b").run(&d.long_running(
        "b",
        "while [ ! -e \"$S/more\" ]; do sleep 0.01; done\ni=0; while [ $i -lt 50 ]; do echo more-$i; i=$((i+1)); done\necho b-done >&2",
    ));
    let mut r = launch(&d).stdout(OutMode::Closed).spawn();
    r.wait_stderr_contains("a/run: after-stdout", LONG);
    r.wait_stderr("the broken pipe report", LONG, |l| {
        l.ends_with(" dinit: error: error writing stdout: broken pipe")
    });
    d.touch("more");
    r.wait_stderr_contains("b/run: b-done", LONG);
    d.wait_file("a.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("a.term") && d.exists("b.term"), "{}", r.dump());
    assert_eq!(
        error_lines(&r.stderr_str(), "error writing stdout"),
        1,
        "{}",
        r.dump()
    );
}

/// Expect (change): dinit's stdout is blocked (pipe full, reader paused), then the reader closes
/// it: dinit reports the broken pipe once, resumes reading the services (the blocked writer
/// finishes: `a/run: flood-done`), and exits 0 on SIGTERM.
#[test]
fn stdout_closed_while_blocked() {
    let d = TestDir::new();
    d.svc("a").run(&flood(&d, 100_000));
    let mut r = launch(&d).stdout(OutMode::Paused).spawn();
    let ok = wait_until(LONG, || r.stdout_pipe_bytes() >= 60_000);
    assert!(ok, "dinit's stdout pipe never filled\n{}", r.dump());
    r.close_stdout();
    r.wait_stderr_contains("a/run: flood-done", LONG);
    r.wait_stderr("the broken pipe report", LONG, |l| {
        l.ends_with(" dinit: error: error writing stdout: broken pipe")
    });
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(
        error_lines(&r.stderr_str(), "error writing stdout"),
        1,
        "{}",
        r.dump()
    );
}

/// Expect (change): dinit's stderr closed: dinit keeps supervising (stdout records still come),
/// reports it once on stdout, exits 0 on SIGTERM.
#[test]
fn closed_stderr() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running(
        "a",
        "i=0; while [ $i -lt 100 ]; do echo err-$i >&2; i=$((i+1)); done\necho '{\"after\":1}'",
    ));
    let mut r = launch(&d).info().stderr_closed().spawn();
    r.wait_stdout_contains("\"after\":1", LONG);
    d.wait_file("a.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("a.term"));
    assert_eq!(
        error_lines(&r.stdout_str(), "error writing stderr"),
        1,
        "{}",
        r.dump()
    );
}

/// Expect (change): with dinit's stdout blocked (reader paused, pipe full) dinit still reacts
/// to SIGTERM at once (the other service's TERM trap runs within 5 s, its stderr line
/// `watch/run: got-term` appears within 5 s, while stdout is still blocked); after the reader
/// resumes, every one of the 200,000 lines arrives in order; exit 0.
#[test]
fn slow_stdout_no_loss_and_prompt_sigterm() {
    let d = TestDir::new();
    const N: usize = 200_000;
    d.svc("flood").run(&flood(&d, N));
    d.svc("watch").run(&d.long_running(
        "watch",
        "trap 'echo got-term >&2; echo term > \"$S/watch.term\"; exit 0' TERM",
    ));
    let mut r = launch(&d).stdout(OutMode::Paused).spawn();
    d.wait_file("watch.started", LONG);
    let ok = wait_until(LONG, || r.stdout_pipe_bytes() >= 60_000);
    assert!(ok, "dinit's stdout pipe never filled\n{}", r.dump());
    assert!(
        !d.exists("flood.done"),
        "the writer finished although nobody read dinit's stdout"
    );

    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    let reacted = wait_until(Duration::from_secs(5), || d.exists("watch.term"));
    assert!(
        reacted,
        "dinit did not forward the shutdown within 5 s while its stdout was blocked\n{}",
        r.dump()
    );
    let reacted_in = t0.elapsed();
    assert!(
        r.stdout_pipe_bytes() >= 60_000,
        "stdout was drained meanwhile?"
    );
    let shown = wait_until(Duration::from_secs(5), || {
        r.stderr_str().contains("watch/run: got-term")
    });
    assert!(
        shown,
        "the TERM trap's stderr line did not appear within 5 s while stdout was blocked\n{}",
        r.dump()
    );
    eprintln!("reacted to SIGTERM in {reacted_in:?} with stdout blocked");

    r.resume_stdout();
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let ns: Vec<u64> = r
        .json()
        .iter()
        .filter(|j| j.service() == "flood")
        .map(|j| {
            j.obj["n"]
                .as_u64()
                .unwrap_or_else(|| panic!("unexpected record {}", j.raw))
        })
        .collect();
    assert_eq!(ns.len(), N, "lines lost");
    assert!(
        ns.iter().enumerate().all(|(i, &n)| n == i as u64),
        "lines out of order"
    );
}

/// The writer's stdout pipe (read through /proc) holds this many unread bytes.
fn pipe_fill_of(pid: i32, fd: i32) -> Option<usize> {
    let f = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on a fd we own; nothing is read.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::FIONREAD, &mut n) };
    (r == 0).then_some(n as usize)
}

fn rss_kib(pid: i32) -> usize {
    proc_status_field(pid, "VmRSS")
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Expect (change): when dinit's stdout is blocked, dinit stops reading the writer's pipe: the
/// writer ends up blocked in write(2) with its own pipe full, long before all its lines are
/// written (~6.5 MB of input, ~35 MB of records), and dinit's resident memory stays
/// bounded (< 64 MiB) instead of holding it all. After the reader resumes everything arrives; exit 0.
#[test]
fn backpressure_blocks_writer_and_bounds_memory() {
    let d = TestDir::new();
    const N: usize = 500_000;
    d.svc("flood").run(&flood(&d, N));
    let mut r = launch(&d).stdout(OutMode::Paused).spawn();
    d.wait_file("flood.pid", LONG);
    let mut writer = 0;
    assert!(wait_until(LONG, || {
        writer = r
            .children()
            .into_iter()
            .find(|&c| {
                std::fs::read(format!("/proc/{c}/cmdline"))
                    .map(|s| find(&s, b"flood/run").is_some())
                    .unwrap_or(false)
            })
            .unwrap_or(0);
        writer != 0
    }));
    let blocked = wait_until(LONG, || {
        d.exists("flood.done")
            || (proc_state(writer) == Some('S')
                && pipe_fill_of(writer, 1)
                    .map(|n| n >= 60_000)
                    .unwrap_or(false))
    });
    assert!(
        blocked && !d.exists("flood.done"),
        "the writer was never held back (done: {})\n{}",
        d.exists("flood.done"),
        r.dump()
    );
    let rss = rss_kib(r.pid);
    assert!(rss < 64 * 1024, "dinit's RSS is {rss} KiB while blocked");
    r.resume_stdout();
    d.wait_file("flood.done", Duration::from_secs(60));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(Duration::from_secs(60)), 0, "{}", r.dump());
    let count = split_lines(&r.stdout()).len();
    assert_eq!(count, N, "lines lost");
}

/// Expect (change): the buffer a burst of output grew is given back once a second of output
/// fits in a small one: after ~35 MB of records (stdout read as fast as it comes), with the
/// service still logging a line every 100 ms, dinit's RSS falls back to within 512 KiB of what
/// it was before the burst, and every line arrived.
#[test]
fn burst_memory_is_given_back() {
    let d = TestDir::new();
    const N: usize = 500_000;
    d.svc("flood").run(&d.py(&format!(
        "import os, time\n\
         while not os.path.exists(S + '/go'):\n    time.sleep(0.01)\n\
         w = os.fdopen(1, 'wb', buffering=1 << 16)\n\
         for i in range({N}):\n    w.write(b'{{\"n\":%d}}\\n' % i)\n\
         w.flush()\n\
         open(S + '/flood.done', 'w').write('done\\n')\n\
         k = 0\n\
         while True:\n    w.write(b'{{\"t\":%d}}\\n' % k)\n    w.flush()\n    k += 1\n    time.sleep(0.1)\n"
    )));
    let mut r = launch(&d).spawn();
    assert!(
        wait_until(LONG, || !r.children().is_empty()),
        "{}",
        r.dump()
    );
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(r.pid);
    d.touch("go");
    d.wait_file("flood.done", Duration::from_secs(60));
    let flood_lines = |r: &Dinit| {
        split_lines(&r.stdout())
            .iter()
            .filter(|l| find(l, b"\"n\":").is_some())
            .count()
    };
    assert!(
        wait_until(LONG, || flood_lines(&r) == N),
        "lines lost: {} of {N}\n{}",
        flood_lines(&r),
        r.dump()
    );
    let mut after = 0;
    let given_back = wait_until(Duration::from_secs(5), || {
        after = rss_kib(r.pid);
        after <= before + 512
    });
    assert!(
        given_back,
        "dinit's RSS was {before} KiB before the burst and is {after} KiB after"
    );
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
}
