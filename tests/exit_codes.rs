//! Contract §7 (exit codes): 0, 1, 3 and first-recorded-code-wins, each case walked both ways.
mod common;
use common::*;

/// `a` waits until b started, then exits with `code`.
fn a_exits_after_b(d: &TestDir, code: i32) {
    d.svc("a").run(&d.sh(&format!(
        "while [ ! -e \"$S/b.started\" ]; do sleep 0.01; done\nexit {code}"
    )));
}

/// `b` traps TERM and exits with `code` (after creating b.term); creates b.started.
fn b_exits_on_term(d: &TestDir, code: i32) -> String {
    d.sh(&format!(
        "trap 'echo term > \"$S/b.term\"; exit {code}' TERM\necho started > \"$S/b.started\"\nwhile :; do sleep 0.05; done"
    ))
}

/// Expect: a exits 0 (records nothing) -> shutdown -> b exits 1 on SIGTERM -> 3.
#[test]
fn service_exit_0_then_other_fails_on_term_gives_3() {
    let d = TestDir::new();
    a_exits_after_b(&d, 0);
    d.svc("b").run(&b_exits_on_term(&d, 1));
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert!(d.exists("b.term"));
}

/// Expect: the other way: external SIGTERM (records 0 first) -> b exits 1 on SIGTERM -> 0.
#[test]
fn external_sigterm_then_service_fails_gives_0() {
    let d = TestDir::new();
    d.svc("b").run(&b_exits_on_term(&d, 1));
    let mut r = launch(&d).spawn();
    d.wait_file("b.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("b.term"));
}

/// Expect: a service `exit 7` -> 3; both ways: a service `exit 0` -> 0.
#[test]
fn service_exit_code_7_gives_3_and_0_gives_0() {
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nexit 7\n");
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nexit 0\n");
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
}

/// Expect: a service killed by its own SIGKILL (no shutdown in progress) -> 3.
#[test]
fn service_killed_by_own_sigkill_gives_3() {
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nkill -9 $$\n");
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert!(r.own_contains("finished with signal 9"), "{}", r.dump());
}

/// Expect: a service killed from outside by SIGTERM while no shutdown is in progress -> 3;
/// the other way, a signal death during the shutdown (a exits 0, b dies of SIGTERM) -> 0.
#[test]
fn signal_death_outside_vs_during_shutdown() {
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nexec sleep 100000\n");
    let mut r = launch(&d).spawn();
    let mut pid = 0;
    assert!(wait_until(LONG, || {
        pid = r
            .children()
            .into_iter()
            .find(|&c| proc_comm(c).as_deref() == Some("sleep"))
            .unwrap_or(0);
        pid != 0
    }));
    // SAFETY: kill(2) of the service's host pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(r.wait_exit(LONG), 3, "{}", r.dump());

    let d = TestDir::new();
    a_exits_after_b(&d, 0);
    d.svc("b")
        .run(&d.sh("echo started > \"$S/b.started\"\nexec sleep 100000"));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
}

/// Expect: `run` missing -> 1.
#[test]
fn run_missing_gives_1() {
    let d = TestDir::new();
    d.svc("a").file("README", "", 0o644);
    let r = launch(&d).run();
    assert_eq!(r.code(), 1, "{}", r.dump());
}

/// Expect: a logger that exits 0 first -> shutdown, run exits 0 on TERM -> 0; the other way,
/// run exits 1 on TERM -> 3 (non-zero during a shutdown not started by a signal).
#[test]
fn logger_exits_0_first() {
    for (run_code, want) in [(0, 0), (1, 3)] {
        let d = TestDir::new();
        d.svc("b")
            .run(&b_exits_on_term(&d, run_code))
            .log_run(&d.sh("while [ ! -e \"$S/b.started\" ]; do sleep 0.01; done\nexit 0"));
        let r = launch(&d).run();
        assert_eq!(r.code(), want, "run exits {run_code} on TERM\n{}", r.dump());
    }
}

/// Expect: a logger that exits 5 first -> 3.
#[test]
fn logger_exits_5_first_gives_3() {
    let d = TestDir::new();
    d.svc("b")
        .run(&b_exits_on_term(&d, 0))
        .log_run(&d.sh("while [ ! -e \"$S/b.started\" ]; do sleep 0.01; done\nexit 5"));
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
}

/// Expect: first code wins, 3 before 1: a exits 7 (3), then b's terminate cannot be started
/// (1 recorded later; change: b still gets SIGTERM so dinit ends) -> 3.
#[test]
fn failure_3_then_1_gives_3() {
    let d = TestDir::new();
    a_exits_after_b(&d, 7);
    d.svc("b")
        .run(&b_exits_on_term(&d, 0))
        .file("terminate", "#!/bin/sh\n", 0o644);
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
}

/// Expect (change: the service still gets SIGTERM): first code wins, 1 before 3: a exits 0,
/// b's terminate cannot be started (1), b then exits 7 on SIGTERM (3 not recorded) -> 1.
#[test]
fn failure_1_then_3_gives_1() {
    let d = TestDir::new();
    a_exits_after_b(&d, 0);
    d.svc("b")
        .run(&b_exits_on_term(&d, 7))
        .file("terminate", "#!/bin/sh\n", 0o644);
    let r = launch(&d).run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    assert!(d.exists("b.term"));
}

/// Expect: a terminate script exiting non-zero in a shutdown started by a service's exit 0 -> 3;
/// the other way, in a shutdown started by SIGTERM -> 0.
#[test]
fn terminate_script_failure() {
    let term = "#!/bin/sh\nkill \"$DINIT_PID\"\nexit 4\n";
    let d = TestDir::new();
    a_exits_after_b(&d, 0);
    d.svc("b").run(&b_exits_on_term(&d, 0)).terminate(term);
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());

    let d = TestDir::new();
    d.svc("b").run(&b_exits_on_term(&d, 0)).terminate(term);
    let mut r = launch(&d).spawn();
    d.wait_file("b.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
}

/// Expect: a SIGTERM arriving after a failure was recorded does not reset it: a exits 7 (3),
/// b is slow to stop, SIGTERM to dinit logs `already terminating`, exit 3.
#[test]
fn sigterm_after_failure_keeps_3() {
    let d = TestDir::new();
    a_exits_after_b(&d, 7);
    d.svc("b").run(&d.sh(
        "trap 'echo term > \"$S/b.term\"; while [ ! -e \"$S/go\" ]; do sleep 0.01; done; exit 0' TERM\n\
         echo started > \"$S/b.started\"\nwhile :; do sleep 0.05; done",
    ));
    let mut r = launch(&d).info().spawn();
    d.wait_file("b.term", LONG);
    r.signal(libc::SIGTERM);
    r.wait_stderr_contains("got signal 15, already terminating services", LONG);
    d.touch("go");
    assert_eq!(r.wait_exit(LONG), 3, "{}", r.dump());
}

/// Expect: an orphan handled by the terminate policy that exits 5 on its SIGTERM never changes
/// the exit code: the service exits 0 once the orphan is gone (reaped) -> 0.
#[test]
fn orphan_exit_code_ignored() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(
        "export S\n( sh -c 'trap \"exit 5\" TERM; echo $$ > \"$S/orphan.pid\"; while :; do sleep 0.05; done' & )\n\
         while [ ! -s \"$S/orphan.pid\" ]; do sleep 0.01; done\n\
         while kill -0 \"$(cat \"$S/orphan.pid\")\" 2>/dev/null; do sleep 0.02; done\n\
         echo gone > \"$S/orphan.gone\"\nexit 0",
    ));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(d.exists("orphan.gone"));
    assert!(
        r.own_contains("finished with status 5"),
        "the orphan's exit was not seen\n{}",
        r.dump()
    );
}
