//! Contract §3 (processes): what every child of dinit gets. Inspected from outside through
//! `/proc/<pid>` of a process that `exec`ed straight into `sleep`, so no shell touches the
//! inherited state.
mod common;
use common::*;
use std::collections::BTreeSet;

const SLEEP: &str = "#!/bin/sh\nexec sleep 100000\n";

/// Extra environment passed to dinit in these tests (must reach every child unchanged).
const EXTRA_ENV: [(&str, &str); 3] = [
    ("FOO", "bar baz=qux"),
    ("EMPTY_VAR", ""),
    ("DINIT_CUSTOM", "kept"),
];

fn base_env(d: &TestDir, level: &str) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = [
        format!("PATH={PATH}"),
        format!("DINIT_DIR={}", d.dir_str()),
        format!(
            "DINIT_CONTROL_SOCKET={}",
            d.root().join("control.sock").display()
        ),
        format!("DINIT_LOG_LEVEL={level}"),
    ]
    .into_iter()
    .collect();
    for (k, v) in EXTRA_ENV {
        s.insert(format!("{k}={v}"));
    }
    s
}

fn launcher(d: &TestDir) -> Launcher {
    launch(d).info().envs(&EXTRA_ENV)
}

/// The environment of a process. A `PWD` entry naming the process's own cwd is dropped: the
/// reference binary adds it (Go's os/exec does when a Dir is set), which is harmless.
fn environ(pid: i32) -> BTreeSet<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let own_cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    raw.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .filter(|e| match e.strip_prefix("PWD=") {
            Some(p) => std::fs::canonicalize(p).ok() != own_cwd,
            None => true,
        })
        .collect()
}

fn cwd(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn stat_field(pid: i32, idx: usize) -> Option<String> {
    // fields after the comm: state(3) ppid(4) pgrp(5) session(6)
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.split(' ').nth(idx - 3).map(str::to_string)
}

enum Stdin {
    DevNull,
    Pipe(String),
}

/// Checks the state every child must get; returns the problems found.
fn check_clean(
    what: &str,
    pid: i32,
    dinit: i32,
    stdin: Stdin,
    want_cwd: &std::path::Path,
) -> Vec<String> {
    let mut p = Vec::new();
    let fds = proc_fds(pid);
    let keys: Vec<i32> = fds.keys().copied().collect();
    if keys != vec![0, 1, 2] {
        p.push(format!("{what}: open fds {fds:?}, expected only 0, 1, 2"));
    }
    match &stdin {
        Stdin::DevNull if fds.get(&0).map(String::as_str) != Some("/dev/null") => p.push(format!(
            "{what}: stdin is {:?}, expected /dev/null",
            fds.get(&0)
        )),
        Stdin::Pipe(want) if fds.get(&0) != Some(want) => p.push(format!(
            "{what}: stdin is {:?}, expected {want}",
            fds.get(&0)
        )),
        _ => {}
    }
    let (o, e) = (
        fds.get(&1).cloned().unwrap_or_default(),
        fds.get(&2).cloned().unwrap_or_default(),
    );
    if !o.starts_with("pipe:") || !e.starts_with("pipe:") || o == e {
        p.push(format!(
            "{what}: stdout {o:?} and stderr {e:?} must be two distinct pipes"
        ));
    }
    if let Stdin::Pipe(inp) = &stdin
        && *inp == o
    {
        p.push(format!("{what}: stdout is its own stdin pipe"));
    }
    for f in ["SigBlk", "SigIgn"] {
        let v = proc_status_field(pid, f).unwrap_or_default();
        if v.is_empty() || v.chars().any(|c| c != '0') {
            p.push(format!("{what}: {f} = {v:?}, expected all zero"));
        }
    }
    let want_cwd = std::fs::canonicalize(want_cwd).unwrap();
    if cwd(pid) != want_cwd.display().to_string() {
        p.push(format!(
            "{what}: cwd {:?}, expected {}",
            cwd(pid),
            want_cwd.display()
        ));
    }
    if stat_field(pid, 5) != stat_field(dinit, 5) || stat_field(pid, 6) != stat_field(dinit, 6) {
        p.push(format!(
            "{what}: process group/session {:?}/{:?} differ from dinit's {:?}/{:?}",
            stat_field(pid, 5),
            stat_field(pid, 6),
            stat_field(dinit, 5),
            stat_field(dinit, 6)
        ));
    }
    p
}

/// Waits for a child of dinit running `sleep` (exec'd) whose cwd is `dir`.
fn sleeping_child(r: &Dinit, dir: &std::path::Path, extra: impl Fn(i32) -> bool) -> i32 {
    let want = std::fs::canonicalize(dir).unwrap().display().to_string();
    let mut found = 0;
    let ok = wait_until(LONG, || {
        found = r
            .children()
            .into_iter()
            .find(|&c| proc_comm(c).as_deref() == Some("sleep") && cwd(c) == want && extra(c))
            .unwrap_or(0);
        found != 0
    });
    assert!(ok, "no child of dinit sleeping in {want}\n{}", r.dump());
    found
}

fn report(p: Vec<String>, r: &Dinit) {
    assert!(p.is_empty(), "{}\n{}", p.join("\n"), r.dump());
}

/// Expect: `run` gets only fds 0-2 (stdin /dev/null, stdout and stderr two distinct pipes), an
/// empty signal mask, no ignored signal, the service dir as cwd, dinit's environment unchanged
/// (all DINIT_* kept, no DINIT_PID), dinit's process group and session.
fn check_run(l: Launcher, d: &TestDir) {
    d.svc("web").run(SLEEP);
    let r = l.spawn();
    let pid = sleeping_child(&r, &d.dir().join("web"), |_| true);
    let mut p = check_clean("run", pid, r.pid, Stdin::DevNull, &d.dir().join("web"));
    let env = environ(pid);
    let want = base_env(d, "info");
    if env != want {
        p.push(format!("run: environment {env:?}, expected {want:?}"));
    }
    report(p, &r);
}

/// Expect: see `check_run`, dinit started plainly as PID 1.
#[test]
fn run_state_pid1() {
    let d = TestDir::new();
    check_run(launcher(&d), &d);
}

/// Expect: see `check_run`, even when dinit itself was started with fds 3 and 5 open, SIGINT,
/// SIGHUP and SIGPIPE ignored and SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM blocked.
#[test]
fn run_state_despite_inherited_fds_and_signal_state() {
    let d = TestDir::new();
    let l = launcher(&d)
        .inherit_fds(&[3, 5])
        .ignore_signals(&[libc::SIGINT, libc::SIGHUP, libc::SIGPIPE])
        .block_signals(&[libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGALRM]);
    check_run(l, &d);
}

/// Expect: see `check_run`, dinit not PID 1 (subreaper), started with fds 3 and 5 open.
#[test]
fn run_state_not_pid1() {
    let d = TestDir::new();
    check_run(launcher(&d).not_pid1().inherit_fds(&[3, 5]), &d);
}

/// Expect: `log/run` gets cwd `<svc>/log`, stdin = the read side of the pipe that is `run`'s
/// stdout (same pipe inode), its own distinct stdout/stderr pipes, only fds 0-2, clean signal
/// state, the unchanged environment.
#[test]
fn logger_state() {
    let d = TestDir::new();
    d.svc("web").run(SLEEP).log_run(SLEEP);
    let r = launcher(&d)
        .inherit_fds(&[3])
        .ignore_signals(&[libc::SIGHUP])
        .block_signals(&[libc::SIGUSR1])
        .spawn();
    let run = sleeping_child(&r, &d.dir().join("web"), |_| true);
    let log = sleeping_child(&r, &d.dir().join("web/log"), |_| true);
    let run_out = proc_fds(run).get(&1).cloned().unwrap_or_default();
    let mut p = check_clean(
        "log/run",
        log,
        r.pid,
        Stdin::Pipe(run_out.clone()),
        &d.dir().join("web/log"),
    );
    let env = environ(log);
    if env != base_env(&d, "info") {
        p.push(format!("log/run: environment {env:?}"));
    }
    if proc_fds(run).get(&2) == Some(&run_out) {
        p.push("run: stderr is the logger pipe".into());
    }
    report(p, &r);
}

/// Expect: the `terminate` script gets DINIT_PID = the run's pid (exactly one entry, even when
/// dinit inherited a DINIT_PID) on top of the unchanged environment, cwd the service dir, stdin /dev/null, only fds 0-2, clean signals.
#[test]
fn terminate_state() {
    let d = TestDir::new();
    d.svc("web")
        .run(&d.long_running("web", ""))
        .terminate(SLEEP);
    // An inherited DINIT_PID must be replaced, not duplicated.
    let r = launcher(&d)
        .env("DINIT_PID", "99999")
        .ignore_signals(&[libc::SIGINT])
        .block_signals(&[libc::SIGUSR2])
        .spawn();
    d.wait_file("web.started", LONG);
    // dinit prints `running with PID` once it learns the exec worked, which may be after the
    // service already started.
    wait_until(LONG, || r.reported_pid("web/run").is_some());
    let run_ns = r.reported_pid("web/run").expect("web/run pid");
    r.signal(libc::SIGTERM);
    let term = sleeping_child(&r, &d.dir().join("web"), |c| {
        environ(c).iter().any(|e| e.starts_with("DINIT_PID="))
    });
    let mut p = check_clean(
        "terminate",
        term,
        r.pid,
        Stdin::DevNull,
        &d.dir().join("web"),
    );
    let raw = std::fs::read(format!("/proc/{term}/environ")).unwrap();
    let n = raw
        .split(|&b| b == 0)
        .filter(|e| e.starts_with(b"DINIT_PID="))
        .count();
    if n != 1 {
        p.push(format!("terminate: {n} DINIT_PID entries"));
    }
    let mut want = base_env(&d, "info");
    want.insert(format!("DINIT_PID={run_ns}"));
    let env = environ(term);
    if env != want {
        p.push(format!("terminate: environment {env:?}, expected {want:?}"));
    }
    report(p, &r);
}

/// Expect (add): `finish` gets the exit code and signal as its two arguments (`3 0` for
/// `exit 3`), cwd the service dir, stdin /dev/null, only fds 0-2, clean signals, the unchanged
/// environment.
#[test]
fn finish_state_and_args() {
    let d = TestDir::new();
    d.svc("web")
        .run("#!/bin/sh\nexit 3\n")
        .finish(&d.sh("echo \"$# $*\" > \"$S/finish.args\"\nexec sleep 100000"));
    let r = launcher(&d)
        .inherit_fds(&[5])
        .ignore_signals(&[libc::SIGHUP])
        .block_signals(&[libc::SIGUSR1])
        .spawn();
    let fin = sleeping_child(&r, &d.dir().join("web"), |_| true);
    assert_eq!(d.wait_file("finish.args", LONG), "2 3 0\n");
    let mut p = check_clean("finish", fin, r.pid, Stdin::DevNull, &d.dir().join("web"));
    let env = environ(fin);
    if env != base_env(&d, "info") {
        p.push(format!("finish: environment {env:?}"));
    }
    report(p, &r);
}

/// Expect: argv is exactly [`<DINIT_DIR>/<name>/run`] (argv[0] the joined path, no other
/// argument). `run` is a symlink to bash, which runs $BASH_ENV and reports its own cmdline.
#[test]
fn argv_exact() {
    let d = TestDir::new();
    let be = d.s("bash_env.sh");
    std::fs::write(
        &be,
        format!(
            "tr '\\000' '\\n' < /proc/$$/cmdline > '{}'\necho \"$0|$#\" > '{}'\nexit 0\n",
            d.s("cmdline").display(),
            d.s("dollar0").display()
        ),
    )
    .unwrap();
    d.svc("web").symlink("run", "/bin/bash");
    let r = launch(&d).env("BASH_ENV", be.to_str().unwrap()).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let run = format!("{}/web/run", d.dir_str());
    assert_eq!(d.read("cmdline"), format!("{run}\n"), "argv");
    assert_eq!(d.read("dollar0"), format!("{run}|0\n"));
}

/// Expect: a script's `$0` is the joined path for run, log/run and terminate, and none gets
/// arguments; the logger's cwd is `<svc>/log`.
#[test]
fn scripts_see_their_path() {
    let d = TestDir::new();
    d.svc("web")
        .run(
            &d.sh(
                "echo \"$0|$#\" > \"$S/run.0\"\ntrap 'exit 0' TERM\nwhile :; do sleep 0.05; done",
            ),
        )
        .log_run(&d.sh("echo \"$0|$#|$(pwd -P)\" > \"$S/log.0\"\nexec cat >/dev/null"))
        .terminate(&d.sh("echo \"$0|$#\" > \"$S/term.0\"\nkill \"$DINIT_PID\""));
    let mut r = launch(&d).spawn();
    d.wait_file("run.0", LONG);
    d.wait_file("log.0", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let dir = d.dir_str();
    let logdir = std::fs::canonicalize(d.dir().join("web/log")).unwrap();
    assert_eq!(d.read("run.0"), format!("{dir}/web/run|0\n"));
    assert_eq!(
        d.read("log.0"),
        format!("{dir}/web/log/run|0|{}\n", logdir.display())
    );
    assert_eq!(d.read("term.0"), format!("{dir}/web/terminate|0\n"));
}
