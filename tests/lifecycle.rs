//! Contract §2 (finish, down), §5 (logger), §6 (shutdown): who ends what.
mod common;
use common::*;
use std::time::{Duration, Instant};

/// A script that waits for `$S/<file>` to exist (polling), then runs `then`.
fn wait_for_file(file: &str, then: &str) -> String {
    format!("while [ ! -e \"$S/{file}\" ]; do sleep 0.01; done\n{then}")
}

/// Expect: a `run` that ends (exit 0) shuts the container down: the other service gets SIGTERM
/// (info `b/run: sending SIGTERM to PID <pid>`, its TERM trap runs), dinit exits 0.
#[test]
fn run_end_shuts_down_with_sigterm() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(&wait_for_file("b.started", "exit 0")));
    d.svc("b").run(&d.long_running("b", ""));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let pid = r.reported_pid("b/run").unwrap();
    assert!(
        r.has_own("info", &format!("b/run: sending SIGTERM to PID {pid}")),
        "{}",
        r.dump()
    );
    assert!(d.exists("b.term"), "b's TERM trap did not run");
}

/// Expect: with a `terminate` script the script runs instead of SIGTERM: DINIT_PID = b's run
/// pid, its stdout under stage `term` (JSON), its stderr as `b/term: ...`, info
/// `b/term: running with PID <n>`, no `sending SIGTERM` for b; exit 0.
#[test]
fn terminate_script_used_instead_of_sigterm() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(&wait_for_file("b.started", "exit 0")));
    d.svc("b").run(&d.long_running("b", "")).terminate(&d.sh(
        "echo \"$DINIT_PID\" > \"$S/term.pid\"\necho '{\"t\":1}'\necho term-err >&2\nkill -TERM \"$DINIT_PID\"",
    ));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let pid = r.reported_pid("b/run").unwrap();
    assert_eq!(d.read("term.pid").trim_end(), pid.to_string());
    assert!(
        d.exists("b.term"),
        "b's TERM trap did not run (terminate killed it)"
    );
    assert!(
        r.reported_pid("b/term").is_some(),
        "no `b/term: running with PID`\n{}",
        r.dump()
    );
    assert!(!r.own_contains("b/run: sending SIGTERM"), "{}", r.dump());
    assert!(
        r.json()
            .iter()
            .any(|j| j.service() == "b" && j.stage() == "term" && j.obj["t"] == 1),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr_records()
            .iter()
            .any(|t| t.name == "b" && t.stage == "term" && t.text() == "term-err"),
        "{}",
        r.dump()
    );
}

/// Expect: a dangling `terminate` symlink counts as absent: SIGTERM is sent; exit 0.
#[test]
fn dangling_terminate_means_sigterm() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(&wait_for_file("b.started", "exit 0")));
    d.svc("b")
        .run(&d.long_running("b", ""))
        .symlink("terminate", d.root().join("nothing"));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.own_contains("b/run: sending SIGTERM to PID"),
        "{}",
        r.dump()
    );
    assert!(d.exists("b.term"));
}

/// Expect (change): a `terminate` that exists but cannot be started: error
/// `b/term: error running: <dir>/b/terminate: permission denied`, exit code 1, and b still
/// gets SIGTERM (`b/run: sending SIGTERM to PID <pid>`), so dinit does not hang.
#[test]
fn terminate_not_executable() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(&wait_for_file("b.started", "exit 0")));
    d.svc("b").run(&d.long_running("b", "")).file(
        "terminate",
        "#!/bin/sh\nkill \"$DINIT_PID\"\n",
        0o644,
    );
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let want = format!(
        "b/term: error running: {}/b/terminate: permission denied",
        d.dir_str()
    );
    assert!(r.has_own("error", &want), "missing `{want}`\n{}", r.dump());
    let pid = r.reported_pid("b/run").unwrap();
    assert!(
        r.has_own("info", &format!("b/run: sending SIGTERM to PID {pid}")),
        "{}",
        r.dump()
    );
    assert!(d.exists("b.term"));
}

/// Expect (change): the terminate script runs only for a `run` still alive: `a` exits 0 (and
/// so triggers the shutdown), its own terminate script never runs; b's does.
#[test]
fn terminate_only_for_live_run() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh(&wait_for_file("b.started", "exit 0")))
        .terminate(&d.sh("echo ran > \"$S/a.termscript\""));
    d.svc("b")
        .run(&d.long_running("b", ""))
        .terminate(&d.sh("echo ran > \"$S/b.termscript\"\nkill \"$DINIT_PID\""));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(d.exists("b.termscript"));
    assert!(
        !d.exists("a.termscript"),
        "terminate ran for a run that had already ended\n{}",
        r.dump()
    );
}

/// Expect: exit 115 does not shut down: info `a/run: PID <n> finished and disabled itself`,
/// `b` is not signalled and keeps working (prints after being told to), then b's own exit 0
/// ends the container with exit 0.
#[test]
fn exit_115_keeps_others_running() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh(&wait_for_file("b.started", "exit 115")));
    d.svc("b").run(&d.sh(&format!(
        "trap 'echo term > \"$S/b.term\"; exit 0' TERM\necho started > \"$S/b.started\"\n{}",
        wait_for_file("go", "echo '{\"still\":\"here\"}'\nexit 0")
    )));
    let mut r = launch(&d).info().spawn();
    r.wait_stderr("a disabled itself", LONG, |l| {
        l.contains("dinit: info: a/run: PID ") && l.ends_with(" finished and disabled itself")
    });
    d.touch("go");
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(
        !d.exists("b.term"),
        "b got SIGTERM after a's 115\n{}",
        r.dump()
    );
    assert!(
        r.json()
            .iter()
            .any(|j| j.service() == "b" && j.obj.get("still").is_some()),
        "{}",
        r.dump()
    );
}

/// Expect (change): when every service disables itself (115), dinit exits 0 (info
/// `all services finished, exiting`) instead of idling.
#[test]
fn all_services_115_exit_0() {
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nexit 115\n");
    d.svc("b").run("#!/bin/sh\necho '{\"b\":1}'\nexit 115\n");
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.has_own("info", "all services finished, exiting"),
        "{}",
        r.dump()
    );
    assert!(r.json().iter().any(|j| j.service() == "b"), "{}", r.dump());
}

/// Expect (change): a service with a logger exits 115: the logger gets EOF and ends, which does
/// not shut down (run ended first); nothing left -> exit 0.
#[test]
fn all_115_with_logger_exit_0() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\necho '{\"a\":1}'\nexit 115\n")
        .log_run("#!/bin/sh\nexec cat\n");
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.json()
            .iter()
            .any(|j| j.service() == "a" && j.obj["a"] == 1),
        "{}",
        r.dump()
    );
    assert!(r.own_contains("a/log: PID "), "{}", r.dump());
}

/// Expect: a logger ending while its run still runs shuts down: run gets SIGTERM; logger exit 0
/// first -> dinit exits 0.
#[test]
fn logger_end_shuts_down() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.long_running("a", ""))
        .log_run(&d.sh(&wait_for_file("a.started", "exit 0")));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(d.exists("a.term"), "run did not get SIGTERM\n{}", r.dump());
    assert!(
        r.own_contains("a/log: PID ") && r.own_contains("finished with status 0"),
        "{}",
        r.dump()
    );
}

/// Expect: when run ends, the logger gets EOF, drains and exits by itself (it is not
/// signalled: its TERM trap never runs); its last stderr line appears; exit 0.
#[test]
fn logger_gets_eof_after_run_ends() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\necho '{\"x\":1}'\nexit 0\n")
        .log_run(
            &d.sh("trap 'echo term > \"$S/log.term\"' TERM\ncat\necho logger-eof >&2\nexit 0"),
        );
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.json()
            .iter()
            .any(|j| j.service() == "a" && j.stage() == "run" && j.obj["x"] == 1),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr_records()
            .iter()
            .any(|t| t.name == "a" && t.stage == "log" && t.text() == "logger-eof"),
        "{}",
        r.dump()
    );
    assert!(!d.exists("log.term"), "the logger was signalled");
}

/// Expect: on SIGTERM to dinit the logger is not signalled; it exits on EOF after run ended;
/// exit 0.
#[test]
fn logger_not_signalled_on_shutdown() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running("a", "")).log_run(&d.sh(
        "trap 'echo term > \"$S/log.term\"' TERM\necho started > \"$S/log.started\"\ncat\necho logger-eof >&2",
    ));
    let mut r = launch(&d).spawn();
    d.wait_file("a.started", LONG);
    d.wait_file("log.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("a.term"));
    assert!(!d.exists("log.term"), "the logger was signalled");
    assert!(r.stderr_str().contains("a/log: logger-eof"), "{}", r.dump());
}

/// Expect (add): finish gets `<code> 0` after a normal exit (`3 0`), runs before the exit code
/// is final; dinit exits 3.
#[test]
fn finish_after_exit_code() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 3\n")
        .finish(&d.sh("echo \"$*\" > \"$S/args\""));
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert_eq!(d.read("args"), "3 0\n");
}

/// Expect (add): finish gets `-1 9` when run was killed by SIGKILL; dinit exits 3.
#[test]
fn finish_after_signal() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nkill -9 $$\n")
        .finish(&d.sh("echo \"$*\" > \"$S/args\""));
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert_eq!(d.read("args"), "-1 9\n");
}

/// Expect (add): finish also runs during shutdown (`-1 15` for a run killed by SIGTERM); its
/// own exit code (9) never changes dinit's exit code: 0 after SIGTERM.
#[test]
fn finish_during_shutdown() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("echo started > \"$S/a.started\"\nexec sleep 100000"))
        .finish(&d.sh("echo \"$*\" > \"$S/args\"\nexit 9"));
    let mut r = launch(&d).spawn();
    d.wait_file("a.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(d.read("args"), "-1 15\n");
}

/// Expect (add): finish after exit 115 gets `115 0`; nothing else left -> exit 0.
#[test]
fn finish_after_115() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 115\n")
        .finish(&d.sh("echo \"$*\" > \"$S/args\""));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert_eq!(d.read("args"), "115 0\n");
}

/// Expect (add): what run's end causes (the shutdown) happens only after finish ended: b's
/// SIGTERM comes after a's finish wrote `finish-end`.
#[test]
fn shutdown_waits_for_finish() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh(&wait_for_file("b.started", "exit 0")))
        .finish(&d.sh(&format!(
            "echo finish-start >> \"$S/events\"\n{}",
            wait_for_file("go", "echo finish-end >> \"$S/events\"")
        )));
    d.svc("b").run(&d.long_running("b", ""));
    let mut r = launch(&d).spawn();
    let ok = wait_until(LONG, || d.events().contains(&"finish-start".to_string()));
    assert!(ok, "finish never started\n{}", r.dump());
    d.touch("go");
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(
        d.events(),
        vec!["finish-start", "finish-end", "b-term"],
        "{}",
        r.dump()
    );
}

/// Expect (add): a finish that does not end is killed after DINIT_KILL_TIMEOUT (info
/// `a/finish: sending SIGKILL to PID <n>`), then the shutdown goes on; exit 0.
#[test]
fn finish_killed_after_kill_timeout() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .finish("#!/bin/sh\nexec sleep 100000\n");
    let r = launch(&d).info().env("DINIT_KILL_TIMEOUT", "1").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let pid = r
        .reported_pid("a/finish")
        .unwrap_or_else(|| panic!("no `a/finish: running with PID`\n{}", r.dump()));
    assert!(
        r.has_own("info", &format!("a/finish: sending SIGKILL to PID {pid}")),
        "{}",
        r.dump()
    );
}

/// Expect (add): a finish that cannot be started (not executable) never changes the exit code:
/// run exits 0 -> dinit exits 0, no error line.
#[test]
fn finish_not_executable_is_harmless() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .file("finish", "#!/bin/sh\nexit 0\n", 0o644);
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(r.own_texts("error").is_empty(), "{}", r.dump());
}

/// Expect (add): DINIT_STOP_TIMEOUT=1: a run and a logger that ignore SIGTERM/EOF are SIGKILLed
/// about 1 s after the shutdown began, with warning
/// `<name>/<stage>: stop timeout expired, sending SIGKILL to PID <pid>`; exit 0 (SIGTERM first).
#[test]
fn stop_timeout_kills_leftovers() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("trap '' TERM\necho started > \"$S/a.started\"\nexec sleep 100000"));
    d.svc("b")
        .run(&d.long_running("b", ""))
        .log_run(&d.sh("trap '' TERM\necho started > \"$S/blog.started\"\nexec sleep 100000"));
    let mut r = launch(&d).info().env("DINIT_STOP_TIMEOUT", "1").spawn();
    d.wait_file("a.started", LONG);
    d.wait_file("b.started", LONG);
    d.wait_file("blog.started", LONG);
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before the stop timeout"
    );
    let apid = r.reported_pid("a/run").unwrap();
    let lpid = r.reported_pid("b/log").unwrap();
    assert!(
        r.has_own(
            "warning",
            &format!("a/run: stop timeout expired, sending SIGKILL to PID {apid}")
        ),
        "{}",
        r.dump()
    );
    assert!(
        r.has_own(
            "warning",
            &format!("b/log: stop timeout expired, sending SIGKILL to PID {lpid}")
        ),
        "{}",
        r.dump()
    );
}

/// Expect (add): a shutdown takes no longer than the slowest service: 100 services that die on
/// SIGTERM at once stop, and dinit exits 0, within 2.5 s of the SIGTERM (contract: well under a
/// second; the margin is for a loaded machine).
#[test]
fn shutdown_of_100_services_is_fast() {
    let d = TestDir::new();
    for i in 0..100 {
        d.svc(&format!("s{i:03}"))
            .run("#!/bin/sh\nexec sleep 100000\n");
    }
    let mut r = launch(&d).spawn();
    let ok = wait_until(LONG, || {
        r.children()
            .into_iter()
            .filter(|&c| proc_comm(c).as_deref() == Some("sleep"))
            .count()
            == 100
    });
    assert!(ok, "100 services did not start\n{}", r.dump());
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
}
