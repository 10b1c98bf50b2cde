//! Contract §8 (signals), as PID 1 and as a subreaper.
mod common;
use common::*;

/// Traps for INT, QUIT and the forwarded signals: each appends `<tag>-<SIG>` to `$S/events`
/// and prints `{"got":"<SIG>"}`.
fn traps(tag: &str) -> String {
    ["INT", "QUIT", "HUP", "USR1", "USR2", "WINCH"]
        .iter()
        .map(|s| format!("trap 'echo {tag}-{s} >> \"$S/events\"; echo '\"'\"'{{\"got\":\"{s}\"}}'\"'\"'' {s}\n"))
        .collect()
}

fn two_services(d: &TestDir) {
    d.svc("a").run(&d.long_running("a", &traps("a")));
    d.svc("b")
        .run(&d.long_running("b", &traps("b")))
        .terminate(&d.sh("echo ran > \"$S/b.termscript\"\nkill -TERM \"$DINIT_PID\""));
}

/// Expect: `sig` makes dinit stop every service gracefully (a gets SIGTERM — not the original
/// signal —, b's terminate script runs and kills b), info `got signal <n>, terminating
/// services`, exit 0.
fn graceful(sig: i32, pid1: bool) {
    let d = TestDir::new();
    two_services(&d);
    let mut l = launch(&d).info();
    if !pid1 {
        l = l.not_pid1();
    }
    let mut r = l.spawn();
    d.wait_file("a.started", LONG);
    d.wait_file("b.started", LONG);
    r.signal(sig);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(
        r.has_own("info", &format!("got signal {sig}, terminating services")),
        "{}",
        r.dump()
    );
    assert!(
        d.exists("a.term"),
        "a's TERM trap did not run\n{}",
        r.dump()
    );
    assert!(
        d.exists("b.termscript") && d.exists("b.term"),
        "b's terminate script did not run\n{}",
        r.dump()
    );
    let ev = d.events();
    assert!(
        !ev.iter()
            .any(|e| e.ends_with("-INT") || e.ends_with("-QUIT")),
        "services got the original signal: {ev:?}"
    );
}

/// Expect: SIGTERM -> graceful shutdown, exit 0 (PID 1).
#[test]
fn sigterm_graceful() {
    graceful(libc::SIGTERM, true);
}
/// Expect: SIGINT -> graceful shutdown, exit 0 (PID 1).
#[test]
fn sigint_graceful() {
    graceful(libc::SIGINT, true);
}
/// Expect (change): SIGQUIT -> graceful shutdown like SIGTERM, exit 0 (PID 1).
#[test]
fn sigquit_graceful() {
    graceful(libc::SIGQUIT, true);
}
/// Expect: SIGTERM -> graceful shutdown, exit 0 (subreaper).
#[test]
fn sigterm_graceful_not_pid1() {
    graceful(libc::SIGTERM, false);
}
/// Expect: SIGINT -> graceful shutdown, exit 0 (subreaper).
#[test]
fn sigint_graceful_not_pid1() {
    graceful(libc::SIGINT, false);
}
/// Expect (change): SIGQUIT -> graceful shutdown, exit 0 (subreaper; the default action would
/// kill dinit).
#[test]
fn sigquit_graceful_not_pid1() {
    graceful(libc::SIGQUIT, false);
}

/// Expect: later SIGTERM/SIGINT during the shutdown only log `got signal <n>, already
/// terminating services`; no escalation: the service (slow to stop) is not killed and finishes
/// its TERM trap; exit 0.
#[test]
fn second_signal_already_terminating() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(
        "trap 'echo term > \"$S/a.term\"; while [ ! -e \"$S/go\" ]; do sleep 0.01; done; echo done > \"$S/a.done\"; exit 0' TERM\n\
         echo started > \"$S/a.started\"\n\
         while :; do sleep 0.05; done",
    ));
    let mut r = launch(&d).info().spawn();
    d.wait_file("a.started", LONG);
    r.signal(libc::SIGTERM);
    d.wait_file("a.term", LONG);
    r.signal(libc::SIGTERM);
    r.wait_stderr_contains(
        "dinit: info: got signal 15, already terminating services",
        LONG,
    );
    r.signal(libc::SIGINT);
    r.wait_stderr_contains(
        "dinit: info: got signal 2, already terminating services",
        LONG,
    );
    d.touch("go");
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(
        d.exists("a.done"),
        "the service was killed instead of finishing its trap\n{}",
        r.dump()
    );
    let n = r
        .own_texts("info")
        .iter()
        .filter(|t| t.as_str() == "got signal 15, terminating services")
        .count();
    assert_eq!(n, 1, "{}", r.dump());
}

/// Expect (change): SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH are forwarded to every running `run`
/// (both services' traps fire, in JSON they print `{"got":"<SIG>"}`), info
/// `got signal <n>, forwarding to services`; dinit keeps running; the logger does not get them;
/// a final SIGTERM -> exit 0.
fn forwarded(pid1: bool) {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.long_running("a", &traps("a")))
        .log_run(&d.sh("trap 'echo hup > \"$S/log.hup\"' HUP USR1 USR2 WINCH\nexec cat"));
    d.svc("b").run(&d.long_running("b", &traps("b")));
    let mut l = launch(&d).info();
    if !pid1 {
        l = l.not_pid1();
    }
    let mut r = l.spawn();
    d.wait_file("a.started", LONG);
    d.wait_file("b.started", LONG);
    for (sig, name) in [
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGWINCH, "WINCH"),
    ] {
        r.signal(sig);
        let ok = wait_until(LONG, || {
            let ev = d.events();
            ev.contains(&format!("a-{name}")) && ev.contains(&format!("b-{name}"))
        });
        assert!(
            ok,
            "{name} not forwarded to both services: {:?}\n{}",
            d.events(),
            r.dump()
        );
        r.wait_stderr_contains(
            &format!("dinit: info: got signal {sig}, forwarding to services"),
            LONG,
        );
        assert!(!r.exited(), "dinit exited on {name}\n{}", r.dump());
    }
    r.wait_stdout_contains("{\"got\":\"WINCH\"", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(!d.exists("log.hup"), "the logger got a forwarded signal");
    assert_eq!(
        d.events().iter().filter(|e| e.as_str() == "a-HUP").count(),
        1,
        "HUP delivered more than once"
    );
}

#[test]
fn forwarded_signals_pid1() {
    forwarded(true);
}

#[test]
fn forwarded_signals_not_pid1() {
    forwarded(false);
}

/// Expect: a SIGTERM arriving while 200 services are still being started is not lost: dinit
/// stops everything and exits 0.
#[test]
fn sigterm_while_starting_200_services() {
    let d = TestDir::new();
    for i in 0..200 {
        d.svc(&format!("s{i:03}"))
            .run("#!/bin/sh\nexec sleep 100000\n");
    }
    let mut r = launch(&d).spawn();
    let ok = wait_until(LONG, || !r.children().is_empty());
    assert!(ok, "no service started\n{}", r.dump());
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(Duration::from_secs(30)), 0, "{}", r.dump());
}

use std::time::Duration;

/// Expect: dinit started with SIGINT, SIGHUP and SIGQUIT ignored (e.g. by `nohup` or a shell's
/// background job) still handles them: HUP is forwarded, INT shuts down gracefully, exit 0.
#[test]
fn inherited_ignored_signals_still_handled() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running("a", &traps("a")));
    let mut r = launch(&d)
        .info()
        .ignore_signals(&[libc::SIGINT, libc::SIGHUP, libc::SIGQUIT])
        .spawn();
    d.wait_file("a.started", LONG);
    r.signal(libc::SIGHUP);
    let ok = wait_until(LONG, || d.events().contains(&"a-HUP".to_string()));
    assert!(ok, "HUP not forwarded\n{}", r.dump());
    r.signal(libc::SIGINT);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("a.term"));
}

/// Expect: dinit started with SIGTERM, SIGUSR1 and SIGHUP blocked still handles them: USR1 is
/// forwarded, TERM shuts down gracefully, exit 0.
#[test]
fn inherited_blocked_signals_still_handled() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running("a", &traps("a")));
    let mut r = launch(&d)
        .info()
        .block_signals(&[libc::SIGTERM, libc::SIGUSR1, libc::SIGHUP])
        .spawn();
    d.wait_file("a.started", LONG);
    r.signal(libc::SIGUSR1);
    let ok = wait_until(LONG, || d.events().contains(&"a-USR1".to_string()));
    assert!(ok, "USR1 not forwarded\n{}", r.dump());
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("a.term"));
}
