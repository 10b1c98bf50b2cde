//! The service's other roles over their tables: the logger, operators' requests (`decide`),
//! the main program, readiness. Shares the helpers of `tests.rs`.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::tests::{T, cx, def, pid, show};
use super::*;
use crate::supervise::events::{Op, Program, SpawnError, Stage};
use crate::supervise::exit::Exit;

/// The logger over its states × its events (`run` running as pid 7 unless said).
#[test]
fn logger_table() {
    let log_states = [
        ("none", Log::None),
        ("starting", Log::Starting),
        (
            "running",
            Log::Running {
                pid: pid(11),
                since: T,
            },
        ),
        (
            "exited",
            Log::Exited {
                exit: Exit::Code(0),
                since: T,
            },
        ),
    ];
    let log_events = vec![
        ("run-exec", Ev::Exec(Stage::Run, pid(7), Ok(()))),
        ("spawned", Ev::Spawned(Program::Log, Ok(pid(11)))),
        (
            "spawn-failed",
            Ev::Spawned(Program::Log, Err(SpawnError::Failed(Errno::EACCES))),
        ),
        ("exec", Ev::Exec(Stage::Log, pid(11), Ok(()))),
        (
            "exec-failed",
            Ev::Exec(Stage::Log, pid(11), Err(Errno::ENOENT)),
        ),
        ("ended", Ev::Ended(Stage::Log, pid(11), Exit::Code(0))),
        ("stale-ended", Ev::Ended(Stage::Log, pid(12), Exit::Code(0))),
        ("grace", Ev::LoggerGrace),
    ];
    const EXEC_OK: &[&str] = &["info web/run: running with PID 7"];
    const START_LOG: &[&str] = &[
        "info web/run: running with PID 7",
        "info web/log: starting",
        "spawn log",
    ];
    let failed = |e: &str| {
        vec![
            format!("error web/log: error running: /s/web/log/run: {e}"),
            "close-pipe".to_owned(),
            format!("fatal /s/web/log/run: {e}"),
            "shutdown".to_owned(),
        ]
    };
    let ended = vec![
        "info> web/log: PID 11 finished with status 0".to_owned(),
        "arm LoggerGrace(0)".to_owned(),
        "record Program with status 0".to_owned(),
    ];
    for (sname, state) in log_states {
        for (ename, ev) in log_events.clone() {
            let mut s = Service::new(0, def(false, true), T);
            s.run = Run::Running {
                pid: pid(7),
                since: T,
                after: After::Natural,
            };
            s.log = state;
            let mut acts = Vec::new();
            s.on(ev, &cx(false), &mut acts);
            let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            let (next, want) = match (sname, ename) {
                ("none" | "exited", "run-exec") => (Log::Starting, owned(START_LOG)),
                (_, "run-exec") => (state, owned(EXEC_OK)),
                ("starting", "spawned") => (
                    Log::Running {
                        pid: pid(11),
                        since: T,
                    },
                    vec![],
                ),
                ("starting", "spawn-failed") => (Log::None, failed("permission denied")),
                ("running", "exec") => (state, owned(&["info web/log: running with PID 11"])),
                ("running", "exec-failed") => (Log::None, failed("no such file or directory")),
                ("running", "ended") => (
                    Log::Exited {
                        exit: Exit::Code(0),
                        since: T,
                    },
                    ended.clone(),
                ),
                // a logger ended while `run` runs: the grace is over, the container stops
                (_, "grace") => (state, owned(&["shutdown"])),
                _ => (state, vec![]),
            };
            assert_eq!(s.log, next, "{sname} + {ename}: state");
            assert_eq!(show(&acts), want, "{sname} + {ename}: acts");
        }
    }
    // The logger's end once `run` is down closes the pipe; while stopping it arms no grace.
    let mut s = Service::new(0, def(false, true), T);
    s.log = Log::Running {
        pid: pid(11),
        since: T,
    };
    let mut acts = Vec::new();
    s.on(
        Ev::Ended(Stage::Log, pid(11), Exit::Code(0)),
        &cx(true),
        &mut acts,
    );
    assert_eq!(
        show(&acts),
        [
            "info> web/log: PID 11 finished with status 0",
            "close-pipe",
            "record Program with status 0"
        ]
    );
    let mut s = Service::new(0, def(false, true), T);
    s.run = Run::Running {
        pid: pid(7),
        since: T,
        after: After::Natural,
    };
    s.log = Log::Running {
        pid: pid(11),
        since: T,
    };
    acts.clear();
    s.on(
        Ev::Ended(Stage::Log, pid(11), Exit::Code(0)),
        &cx(true),
        &mut acts,
    );
    assert_eq!(
        show(&acts),
        [
            "info> web/log: PID 11 finished with status 0",
            "record Program with status 0"
        ]
    );
    acts.clear();
    s.on(Ev::LoggerGrace, &cx(true), &mut acts);
    assert!(acts.is_empty(), "no grace shutdown while stopping");
}

/// `decide` alone: each request against each kind of state (the table the rows above carry
/// out).
#[test]
fn requests_against_states() {
    let running = |after| Run::Running {
        pid: pid(7),
        since: T,
        after,
    };
    let finishing = |after| Run::Finishing {
        pid: Some(pid(8)),
        exit: Exit::Code(0),
        since: T,
        after,
    };
    let down = Run::Down {
        why: Down::DownFile,
        since: T,
    };
    use {After as A, Decision as D};
    let sig = Op::Signal(Signal::SIGHUP);
    assert_eq!(decide(&Op::Up, down), D::Start);
    assert_eq!(decide(&Op::Restart, down), D::Start);
    assert_eq!(decide(&Op::Down, down), D::Nothing);
    assert_eq!(decide(&sig, down), D::Nothing);
    assert_eq!(decide(&Op::Up, running(A::Natural)), D::Nothing);
    assert_eq!(decide(&Op::Up, running(A::Restart)), D::Nothing);
    assert_eq!(decide(&Op::Up, running(A::Down)), D::Then(A::Restart));
    assert_eq!(decide(&Op::Down, running(A::Natural)), D::Stop(A::Down));
    assert_eq!(decide(&Op::Down, running(A::Down)), D::Nothing);
    assert_eq!(decide(&Op::Down, running(A::Restart)), D::Then(A::Down));
    assert_eq!(
        decide(&Op::Restart, running(A::Natural)),
        D::Stop(A::Restart)
    );
    assert_eq!(decide(&Op::Restart, running(A::Down)), D::Then(A::Restart));
    assert_eq!(decide(&Op::Restart, running(A::Restart)), D::Nothing);
    assert_eq!(decide(&Op::Down, finishing(A::Natural)), D::Then(A::Down));
    assert_eq!(
        decide(&Op::Restart, finishing(A::Natural)),
        D::Then(A::Restart)
    );
    assert_eq!(decide(&Op::Up, finishing(A::Down)), D::Then(A::Restart));
    assert_eq!(decide(&Op::Up, finishing(A::Natural)), D::Nothing);
    assert_eq!(
        decide(&sig, running(A::Natural)),
        D::Signal(pid(7), Signal::SIGHUP)
    );
    assert_eq!(decide(&sig, finishing(A::Natural)), D::Nothing);
    assert_eq!(decide(&Op::Up, Run::Starting { since: T }), D::Nothing);
}

/// The main program (`dinit -- PROGRAM`): its end always ends the container with its code
/// (115 included, and signals as 128 + N), an info line rather than §6's warning; while dinit
/// stops for another reason its end follows §7; a program that cannot be started gives 127 or
/// 126 as a shell would.
#[test]
fn main_program() {
    use crate::supervise::scan::MainProgram;
    let main = |path| {
        let m = MainProgram {
            name: "prog".into(),
            path,
            args: vec![],
            terminal: false,
        };
        let mut s = Service::new(0, ServiceDef::main_program(m, std::path::Path::new("/")), T);
        s.label = "main".into();
        s
    };
    let running = |s: &mut Service| {
        s.run = Run::Running {
            pid: pid(7),
            since: T,
            after: After::Natural,
        }
    };
    let mut s = main(Ok(PathBuf::from("/bin/prog")));
    running(&mut s);
    let mut acts = Vec::new();
    s.on(
        Ev::Ended(Stage::Run, pid(7), Exit::Code(115)),
        &cx(false),
        &mut acts,
    );
    assert_eq!(
        show(&acts),
        [
            "info> main/run: PID 7 finished and disabled itself",
            "main-exit 115",
            "spawn finish and disabled itself"
        ]
    );
    acts.clear();
    s.on(
        Ev::Spawned(Program::Finish(Exit::Code(115)), Err(SpawnError::Absent)),
        &cx(false),
        &mut acts,
    );
    assert_eq!(show(&acts), ["release-input", "close-pipe", "shutdown"]);

    running(&mut s);
    acts.clear();
    s.on(
        Ev::Ended(Stage::Run, pid(7), Exit::Signal(15)),
        &cx(false),
        &mut acts,
    );
    assert_eq!(show(&acts)[1], "main-exit 143");
    running(&mut s);
    acts.clear();
    s.on(
        Ev::Ended(Stage::Run, pid(7), Exit::Code(1)),
        &cx(true),
        &mut acts,
    );
    assert_eq!(
        show(&acts)[1],
        "record Program with status 1",
        "stopped for another reason: §7"
    );

    for (e, code, text) in [
        (Errno::ENOENT, "127", "no such file or directory"),
        (Errno::EACCES, "126", "permission denied"),
    ] {
        let mut s = main(Err(e));
        s.run = Run::Starting { since: T };
        let mut acts = Vec::new();
        s.on(
            Ev::Spawned(Program::Run, Err(SpawnError::Failed(e))),
            &cx(false),
            &mut acts,
        );
        assert_eq!(
            show(&acts),
            [
                format!("fatal main: prog: {text}"),
                format!("main-exit {code}"),
                "shutdown".to_owned()
            ]
        );
        running(&mut s);
        acts.clear();
        s.on(Ev::Exec(Stage::Run, pid(7), Err(e)), &cx(false), &mut acts);
        assert_eq!(show(&acts)[1], format!("main-exit {code}"));
    }
}

/// Readiness over its table: the three ways (executed, notification, check), the check's own
/// life (never two at once, killed at its timeout, again after the interval), and `run`'s end.
#[test]
fn readiness() {
    use crate::supervise::scan::Readiness;
    let with = |readiness| {
        let mut d = def(false, false);
        d.readiness = readiness;
        let mut s = Service::new(0, d, T);
        s.run = Run::Running {
            pid: pid(7),
            since: T,
            after: After::Natural,
        };
        s
    };
    let on = |s: &mut Service, ev: Ev| {
        let mut acts = Vec::new();
        s.on(ev, &cx(false), &mut acts);
        show(&acts)
    };
    let exec = || Ev::Exec(Stage::Run, pid(7), Ok(()));
    let yes = Ready::Yes { since: T };

    // executed: ready with the exec, not before, not after the end
    let mut s = with(Readiness::Executed);
    assert_eq!(s.ready, Ready::No);
    on(&mut s, exec());
    assert_eq!(s.ready, yes);
    on(&mut s, Ev::Ended(Stage::Run, pid(7), Exit::Code(0)));
    assert_eq!(s.ready, Ready::No);

    // notification fd: the newline decides; from an earlier run it does not count
    let mut s = with(Readiness::Notify(3));
    on(&mut s, exec());
    assert_eq!(s.ready, Ready::No);
    on(&mut s, Ev::Notified(pid(99)));
    assert_eq!(s.ready, Ready::No, "a stale run's notification");
    on(&mut s, Ev::Notified(pid(7)));
    assert_eq!(s.ready, yes);

    // check: started with the exec, one at a time, its exit decides, again after the interval
    let mut s = with(Readiness::Check);
    assert_eq!(
        on(&mut s, exec()),
        ["info web/run: running with PID 7", "spawn check 7"]
    );
    assert_eq!(s.check, Checking::Starting);
    assert_eq!(
        on(&mut s, Ev::CheckDue),
        Vec::<String>::new(),
        "never two at once"
    );
    assert_eq!(
        on(&mut s, Ev::Spawned(Program::Check(pid(7)), Ok(pid(20)))),
        ["arm CheckKill(0, Pid(20))"]
    );
    assert_eq!(
        on(&mut s, Ev::Ended(Stage::Check, pid(20), Exit::Code(1))),
        [
            "debug web/check: PID 20 finished with status 1",
            "arm Check(0)"
        ]
    );
    assert_eq!((s.ready, s.check), (Ready::No, Checking::Idle));
    assert_eq!(on(&mut s, Ev::CheckDue), ["spawn check 7"]);
    on(&mut s, Ev::Spawned(Program::Check(pid(7)), Ok(pid(21))));
    assert_eq!(
        on(&mut s, Ev::CheckKill(pid(21))),
        [
            "debug web/check: sending SIGKILL to PID 21",
            "kill 21 SIGKILL"
        ]
    );
    assert_eq!(
        on(&mut s, Ev::CheckKill(pid(20))),
        Vec::<String>::new(),
        "stale"
    );
    on(&mut s, Ev::Ended(Stage::Check, pid(21), Exit::Code(0)));
    assert_eq!(s.ready, yes);
    on(&mut s, Ev::CheckDue);
    on(&mut s, Ev::Spawned(Program::Check(pid(7)), Ok(pid(22))));
    on(&mut s, Ev::Ended(Stage::Check, pid(22), Exit::Code(0)));
    assert_eq!(s.ready, yes, "still ready: since unchanged");
    assert_eq!(
        on(
            &mut s,
            Ev::Spawned(Program::Check(pid(7)), Err(SpawnError::Absent))
        ),
        Vec::<String>::new(),
        "not asked for: ignored"
    );
    on(&mut s, Ev::CheckDue);
    assert_eq!(
        on(
            &mut s,
            Ev::Spawned(Program::Check(pid(7)), Err(SpawnError::Absent))
        ),
        ["arm Check(0)"],
        "gone: not ready, tried again"
    );
    assert_eq!(s.ready, Ready::No);

    // with periodic checks off, a check is not run: ready once executed
    let mut s = with(Readiness::Check);
    let mut acts = Vec::new();
    let off = Ctx {
        check_interval: None,
        ..cx(false)
    };
    s.on(exec(), &off, &mut acts);
    assert_eq!(s.ready, yes);
    assert!(!show(&acts).iter().any(|a| a.starts_with("spawn check")));
}
