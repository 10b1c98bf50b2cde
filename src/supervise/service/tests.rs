//! The service machine over its whole table: every `run` state × every event, each either a
//! row below (the state it leads to and the acts, in order) or a no-op (state unchanged,
//! nothing done). A transition added without a row fails [`run_table`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::*;
use crate::supervise::events::{Effect, Op, Program, SpawnError, Stage};
use crate::supervise::exit::Exit;

pub(super) const T: SystemTime = SystemTime::UNIX_EPOCH;

pub(super) fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

pub(super) fn def(down: bool, has_logger: bool) -> ServiceDef {
    ServiceDef {
        name: b"web".to_vec(),
        dir: PathBuf::from("/s/web"),
        has_logger,
        down,
        main: None,
        readiness: crate::supervise::scan::Readiness::Executed,
    }
}

pub(super) fn cx(stopping: bool) -> Ctx {
    Ctx {
        now: T,
        mono: Instant::now(),
        stopping,
        kill_timeout: Duration::from_secs(30),
        check_interval: Some(Duration::from_secs(5)),
        check_timeout: Duration::from_secs(5),
    }
}

/// The acts as short words: what a row expects.
pub(super) fn show(acts: &[Act]) -> Vec<String> {
    acts.iter()
        .map(|a| match a {
            Act::Do(Effect::Spawn { program, .. }) => match program {
                Program::Run => "spawn run".into(),
                Program::Log => "spawn log".into(),
                Program::Finish(e) => format!("spawn finish {e}"),
                Program::Term(p) => format!("spawn term {p}"),
                Program::Check(p) => format!("spawn check {p}"),
            },
            Act::Do(Effect::Kill(p, s)) => format!("kill {p} {}", s.as_str()),
            Act::Do(Effect::Terminate(p)) => format!("terminate {p}"),
            Act::Do(Effect::Arm(_, t)) => format!("arm {t:?}"),
            Act::Do(Effect::Say(l, m)) => format!("{} {m}", l.word()),
            Act::Do(Effect::SayAfterStdout(l, m)) => format!("{}> {m}", l.word()),
            Act::Do(Effect::ReleaseLoggerInput(_)) => "release-input".into(),
            Act::Do(Effect::CloseLoggerPipe(_)) => "close-pipe".into(),
            Act::Do(other) => format!("{other:?}"),
            Act::Record(k, e) => format!("record {k:?} {e}"),
            Act::Failed => "failed".into(),
            Act::Fatal(m) => format!("fatal {m}"),
            Act::MainExit(c) => format!("main-exit {c}"),
            Act::Shutdown => "shutdown".into(),
        })
        .collect()
}

fn run_states() -> Vec<(&'static str, Run)> {
    let running = |after| Run::Running {
        pid: pid(7),
        since: T,
        after,
    };
    let finishing = |p: Option<i32>, after| Run::Finishing {
        pid: p.map(pid),
        exit: Exit::Code(1),
        since: T,
        after,
    };
    let down = |why| Run::Down { why, since: T };
    vec![
        ("failed", down(Down::Failed)),
        ("down-file", down(Down::DownFile)),
        ("exited", down(Down::Exited(Exit::Code(1)))),
        ("requested", down(Down::Requested(Exit::Code(0)))),
        ("starting", Run::Starting { since: T }),
        ("running", running(After::Natural)),
        ("running-down", running(After::Down)),
        ("running-restart", running(After::Restart)),
        ("finish-asked", finishing(None, After::Natural)),
        ("finish-asked-down", finishing(None, After::Down)),
        ("finish-asked-restart", finishing(None, After::Restart)),
        ("finishing", finishing(Some(9), After::Natural)),
        ("finishing-down", finishing(Some(9), After::Down)),
        ("finishing-restart", finishing(Some(9), After::Restart)),
    ]
}

fn events() -> Vec<(&'static str, Ev)> {
    let failed = |e| Err(SpawnError::Failed(e));
    let fin = Program::Finish(Exit::Code(1));
    let term = Program::Term(pid(7));
    vec![
        ("start", Ev::Start { forced: false }),
        ("start-forced", Ev::Start { forced: true }),
        ("run-spawned", Ev::Spawned(Program::Run, Ok(pid(7)))),
        (
            "run-spawn-failed",
            Ev::Spawned(Program::Run, failed(Errno::ENOMEM)),
        ),
        (
            "run-pipe-failed",
            Ev::Spawned(Program::Run, Err(SpawnError::LoggerPipe(Errno::EMFILE))),
        ),
        ("run-exec", Ev::Exec(Stage::Run, pid(7), Ok(()))),
        (
            "run-exec-failed",
            Ev::Exec(Stage::Run, pid(7), Err(Errno::ENOENT)),
        ),
        ("run-ended", Ev::Ended(Stage::Run, pid(7), Exit::Code(1))),
        (
            "stale-run-ended",
            Ev::Ended(Stage::Run, pid(99), Exit::Code(1)),
        ),
        ("finish-spawned", Ev::Spawned(fin, Ok(pid(9)))),
        ("finish-absent", Ev::Spawned(fin, Err(SpawnError::Absent))),
        (
            "finish-spawn-failed",
            Ev::Spawned(fin, failed(Errno::EACCES)),
        ),
        ("finish-exec", Ev::Exec(Stage::Finish, pid(9), Ok(()))),
        (
            "finish-exec-failed",
            Ev::Exec(Stage::Finish, pid(9), Err(Errno::ENOEXEC)),
        ),
        (
            "finish-ended",
            Ev::Ended(Stage::Finish, pid(9), Exit::Code(0)),
        ),
        (
            "stale-finish-ended",
            Ev::Ended(Stage::Finish, pid(98), Exit::Code(0)),
        ),
        ("finish-kill", Ev::FinishKill(pid(9))),
        ("stale-finish-kill", Ev::FinishKill(pid(98))),
        ("term-spawned", Ev::Spawned(term, Ok(pid(10)))),
        ("term-absent", Ev::Spawned(term, Err(SpawnError::Absent))),
        (
            "term-spawn-failed",
            Ev::Spawned(term, failed(Errno::EACCES)),
        ),
        ("term-exec", Ev::Exec(Stage::Term, pid(10), Ok(()))),
        (
            "term-exec-failed",
            Ev::Exec(Stage::Term, pid(10), Err(Errno::ENOENT)),
        ),
        (
            "term-ended",
            Ev::Ended(Stage::Term, pid(10), Exit::Signal(9)),
        ),
        ("stop", Ev::Stop),
        ("grace", Ev::LoggerGrace),
        ("up", Ev::Request(Op::Up, 0)),
        ("down", Ev::Request(Op::Down, 0)),
        ("restart", Ev::Request(Op::Restart, 0)),
        ("signal", Ev::Request(Op::Signal(Signal::SIGHUP), 0)),
    ]
}

type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const STARTING: &[&str] = &["info web/run: starting", "spawn run"];
const STOP: &[&str] = &["info web/run: terminating", "spawn term 7"];
const TERM_FAILED: &[&str] = &[
    "error web/term: error running: /s/web/terminate: permission denied",
    "failed",
    "info web/run: sending SIGTERM to PID 7",
    "terminate 7",
];
const TERM_EXEC_FAILED: &[&str] = &[
    "error web/term: error running: /s/web/terminate: no such file or directory",
    "failed",
    "info web/run: sending SIGTERM to PID 7",
    "terminate 7",
];
const TERM_FAILED_DOWN: &[&str] = &[
    "error web/term: error running: /s/web/terminate: permission denied",
    "failed",
];
const TERM_EXEC_FAILED_DOWN: &[&str] = &[
    "error web/term: error running: /s/web/terminate: no such file or directory",
    "failed",
];
const ENDED_NATURAL: &[&str] = &[
    "warning> web/run: PID 7 finished with status 1, stopping all services",
    "record Program with status 1",
    "spawn finish with status 1",
];
const ENDED_ASKED: &[&str] = &[
    "info> web/run: PID 7 finished with status 1",
    "spawn finish with status 1",
];
const OVER: &[&str] = &["release-input", "close-pipe", "shutdown"];
const FINISH_FAILED: &[&str] = &[
    "warning web/finish: error running: /s/web/finish: permission denied",
    "release-input",
    "close-pipe",
    "shutdown",
];
const FINISH_EXEC_FAILED: &[&str] = &[
    "warning web/finish: error running: /s/web/finish: exec format error",
    "release-input",
    "close-pipe",
    "shutdown",
];
const FINISH_EXEC_FAILED_ASKED: &[&str] =
    &["warning web/finish: error running: /s/web/finish: exec format error"];
const FINISH_EXEC_FAILED_RESTART: &[&str] = &[
    "warning web/finish: error running: /s/web/finish: exec format error",
    "info web/run: starting",
    "spawn run",
];
const FINISH_FAILED_ASKED: &[&str] =
    &["warning web/finish: error running: /s/web/finish: permission denied"];
const FINISH_FAILED_RESTART: &[&str] = &[
    "warning web/finish: error running: /s/web/finish: permission denied",
    "info web/run: starting",
    "spawn run",
];
const FINISHED: &[&str] = &[
    "info> web/finish: PID 9 finished with status 0",
    "release-input",
    "close-pipe",
    "shutdown",
];
const FINISHED_ASKED: &[&str] = &["info> web/finish: PID 9 finished with status 0"];
const FINISHED_RESTART: &[&str] = &[
    "info> web/finish: PID 9 finished with status 0",
    "info web/run: starting",
    "spawn run",
];
const KILL_FINISH: &[&str] = &[
    "info web/finish: sending SIGKILL to PID 9",
    "kill 9 SIGKILL",
];
const TERM_EXEC: &[&str] = &["info web/term: running with PID 10"];
const TERM_ENDED: &[&str] = &[
    "info> web/term: PID 10 finished with signal 9",
    "record Terminate with signal 9",
];
const RELEASE: &[&str] = &["release-input"];
const RELEASE_STOP: &[&str] = &["release-input", "info web/run: terminating", "spawn term 7"];
const ARM_FINISH_KILL: &[&str] = &["arm FinishKill(0, Pid(9))"];

/// (state, event, next state, acts). States and events are named in `run_states`/`events`.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    // start
    ("failed", "start", "starting", STARTING),
    ("failed", "start-forced", "starting", STARTING),
    ("down-file", "start", "starting", STARTING),
    ("down-file", "start-forced", "starting", STARTING),
    ("exited", "start", "starting", STARTING),
    ("exited", "start-forced", "starting", STARTING),
    ("requested", "start", "starting", STARTING),
    ("requested", "start-forced", "starting", STARTING),
    // the fork's outcome
    ("starting", "run-spawned", "running", &[]),
    ("starting", "run-spawn-failed", "failed", &["fatal /s/web/run: out of memory", "shutdown"]),
    ("starting", "run-pipe-failed", "failed", &["fatal web/log: pipe: too many open files", "shutdown"]),
    // exec
    ("running", "run-exec", "running", &["info web/run: running with PID 7"]),
    ("running-down", "run-exec", "running-down", &["info web/run: running with PID 7"]),
    ("running-restart", "run-exec", "running-restart", &["info web/run: running with PID 7"]),
    ("running", "run-exec-failed", "failed", &["close-pipe", "fatal /s/web/run: no such file or directory", "shutdown",]),
    ("running-down", "run-exec-failed", "failed", &["close-pipe", "fatal /s/web/run: no such file or directory", "shutdown",]),
    ("running-restart", "run-exec-failed", "failed", &["close-pipe", "fatal /s/web/run: no such file or directory", "shutdown",]),
    // run ends: its exit counts only when nobody asked for the stop
    ("running", "run-ended", "finish-asked", ENDED_NATURAL),
    ("running-down", "run-ended", "finish-asked-down", ENDED_ASKED),
    ("running-restart", "run-ended", "finish-asked-restart", ENDED_ASKED),
    // finish
    ("finish-asked", "finish-spawned", "finishing", ARM_FINISH_KILL),
    ("finish-asked-down", "finish-spawned", "finishing-down", ARM_FINISH_KILL),
    ("finish-asked-restart", "finish-spawned", "finishing-restart", ARM_FINISH_KILL),
    ("finish-asked", "finish-absent", "exited", OVER),
    ("finish-asked-down", "finish-absent", "requested-1", &[]),
    ("finish-asked-restart", "finish-absent", "starting", STARTING),
    ("finish-asked", "finish-spawn-failed", "exited", FINISH_FAILED),
    ("finish-asked-down", "finish-spawn-failed", "requested-1", FINISH_FAILED_ASKED),
    ("finish-asked-restart", "finish-spawn-failed", "starting", FINISH_FAILED_RESTART),
    ("finishing", "finish-exec", "finishing", &["info web/finish: running with PID 9"]),
    ("finishing-down", "finish-exec", "finishing-down", &["info web/finish: running with PID 9"]),
    ("finishing-restart", "finish-exec", "finishing-restart", &["info web/finish: running with PID 9"]),
    ("finishing", "finish-exec-failed", "exited", FINISH_EXEC_FAILED),
    ("finishing-down", "finish-exec-failed", "requested-1", FINISH_EXEC_FAILED_ASKED),
    ("finishing-restart", "finish-exec-failed", "starting", FINISH_EXEC_FAILED_RESTART),
    ("finishing", "finish-ended", "exited", FINISHED),
    ("finishing-down", "finish-ended", "requested-1", FINISHED_ASKED),
    ("finishing-restart", "finish-ended", "starting", FINISHED_RESTART),
    ("finishing", "finish-kill", "finishing", KILL_FINISH),
    ("finishing-down", "finish-kill", "finishing-down", KILL_FINISH),
    ("finishing-restart", "finish-kill", "finishing-restart", KILL_FINISH),
    // terminate: its process has no state of its own, whatever run does
    ("running", "term-absent", "running", &["info web/run: sending SIGTERM to PID 7", "terminate 7"]),
    ("running-down", "term-absent", "running-down", &["info web/run: sending SIGTERM to PID 7", "terminate 7"]),
    ("running-restart", "term-absent", "running-restart", &["info web/run: sending SIGTERM to PID 7", "terminate 7"]),
    ("running", "term-spawn-failed", "running", TERM_FAILED),
    ("running-down", "term-spawn-failed", "running-down", TERM_FAILED),
    ("running-restart", "term-spawn-failed", "running-restart", TERM_FAILED),
    ("running", "term-exec-failed", "running", TERM_EXEC_FAILED),
    ("running-down", "term-exec-failed", "running-down", TERM_EXEC_FAILED),
    ("running-restart", "term-exec-failed", "running-restart", TERM_EXEC_FAILED),
    // the shutdown
    ("running", "stop", "running", RELEASE_STOP),
    ("running-down", "stop", "running-down", RELEASE_STOP),
    ("running-restart", "stop", "running-restart", RELEASE_STOP),
    // a logger ended while `run` runs, and `run` did not follow within the grace
    ("running", "grace", "running", &["shutdown"]),
    ("running-down", "grace", "running-down", &["shutdown"]),
    ("running-restart", "grace", "running-restart", &["shutdown"]),
    // operators (decide)
    ("failed", "up", "starting", &["info web/run: up requested by uid 0", "info web/run: starting", "spawn run",]),
    ("down-file", "up", "starting", &["info web/run: up requested by uid 0", "info web/run: starting", "spawn run",]),
    ("exited", "up", "starting", &["info web/run: up requested by uid 0", "info web/run: starting", "spawn run",]),
    ("requested", "up", "starting", &["info web/run: up requested by uid 0", "info web/run: starting", "spawn run",]),
    ("failed", "restart", "starting", &["info web/run: restart requested by uid 0", "info web/run: starting", "spawn run",]),
    ("down-file", "restart", "starting", &["info web/run: restart requested by uid 0", "info web/run: starting", "spawn run",]),
    ("exited", "restart", "starting", &["info web/run: restart requested by uid 0", "info web/run: starting", "spawn run",]),
    ("requested", "restart", "starting", &["info web/run: restart requested by uid 0", "info web/run: starting", "spawn run",]),
    ("running", "down", "running-down", &["info web/run: down requested by uid 0", "info web/run: terminating", "spawn term 7",]),
    ("running-restart", "down", "running-down", &["info web/run: down requested by uid 0"]),
    ("running", "restart", "running-restart", &["info web/run: restart requested by uid 0", "info web/run: terminating", "spawn term 7",]),
    ("running-down", "restart", "running-restart", &["info web/run: restart requested by uid 0"]),
    ("running-down", "up", "running-restart", &["info web/run: up requested by uid 0"]),
    ("running", "signal", "running", &["info web/run: signal requested by uid 0", "kill 7 SIGHUP"]),
    ("running-down", "signal", "running-down", &["info web/run: signal requested by uid 0", "kill 7 SIGHUP"]),
    ("running-restart", "signal", "running-restart", &["info web/run: signal requested by uid 0", "kill 7 SIGHUP"]),
    ("finish-asked", "down", "finish-asked-down", &["info web/run: down requested by uid 0"]),
    ("finish-asked-restart", "down", "finish-asked-down", &["info web/run: down requested by uid 0"]),
    ("finish-asked", "restart", "finish-asked-restart", &["info web/run: restart requested by uid 0"]),
    ("finish-asked-down", "restart", "finish-asked-restart", &["info web/run: restart requested by uid 0"]),
    ("finish-asked-down", "up", "finish-asked-restart", &["info web/run: up requested by uid 0"]),
    ("finishing", "down", "finishing-down", &["info web/run: down requested by uid 0"]),
    ("finishing-restart", "down", "finishing-down", &["info web/run: down requested by uid 0"]),
    ("finishing", "restart", "finishing-restart", &["info web/run: restart requested by uid 0"]),
    ("finishing-down", "restart", "finishing-restart", &["info web/run: restart requested by uid 0"]),
    ("finishing-down", "up", "finishing-restart", &["info web/run: up requested by uid 0"]),
];

/// Events that act whatever the run's state: a `terminate` script's own life, and the
/// shutdown's releasing of the logger's input.
fn everywhere(state: &str, event: &str) -> Option<(&'static str, &'static [&'static str])> {
    let down = !state.starts_with("running");
    Some(match event {
        "term-exec" => ("same", TERM_EXEC),
        "term-ended" => ("same", TERM_ENDED),
        "term-spawn-failed" if down => ("same", TERM_FAILED_DOWN),
        "term-exec-failed" if down => ("same", TERM_EXEC_FAILED_DOWN),
        "stop" if down => ("same", RELEASE),
        _ => return None,
    })
}

#[test]
fn run_table() {
    let states = run_states();
    let named = |n: &str| -> Run {
        if n == "requested-1" {
            return Run::Down {
                why: Down::Requested(Exit::Code(1)),
                since: T,
            };
        }
        states
            .iter()
            .find(|(s, _)| *s == n)
            .unwrap_or_else(|| panic!("no state {n}"))
            .1
    };
    let rows: HashMap<(&str, &str), (&str, &[&str])> =
        ROWS.iter().map(|&(s, e, n, a)| ((s, e), (n, a))).collect();
    assert_eq!(rows.len(), ROWS.len(), "a row appears twice");
    let mut used = 0;
    for (sname, state) in &states {
        for (ename, ev) in events() {
            let mut s = Service::new(0, def(false, false), T);
            s.run = *state;
            let mut acts = Vec::new();
            s.on(ev, &cx(false), &mut acts);
            let got = show(&acts);
            let (next, want) = match rows.get(&(*sname, ename)) {
                Some(&(n, a)) => {
                    used += 1;
                    (named(n), a)
                }
                None => match everywhere(sname, ename) {
                    Some((_, a)) => (*state, a),
                    None => (*state, &[][..]),
                },
            };
            assert_eq!(s.run, next, "{sname} + {ename}: state");
            assert_eq!(got, want, "{sname} + {ename}: acts");
        }
    }
    assert_eq!(
        used,
        ROWS.len(),
        "a row names a state or event that does not exist"
    );
}

/// `down` files: `start` keeps the service down, `up` (forced) starts it anyway.
#[test]
fn down_file() {
    let mut s = Service::new(0, def(true, false), T);
    let mut acts = Vec::new();
    s.on(Ev::Start { forced: false }, &cx(false), &mut acts);
    assert_eq!(
        s.run,
        Run::Down {
            why: Down::DownFile,
            since: T
        }
    );
    assert_eq!(
        show(&acts),
        ["info web/run: not starting: down file present"]
    );
    acts.clear();
    s.on(Ev::Request(Op::Up, 0), &cx(false), &mut acts);
    assert_eq!(s.run, Run::Starting { since: T });
    assert_eq!(
        show(&acts),
        [
            "info web/run: up requested by uid 0",
            "info web/run: starting",
            "spawn run"
        ]
    );
}

/// What changes while dinit is stopping: a fork that completes is stopped at once, a restart
/// stays down, a disabled service (115) does not stop the container, a logger's end arms no
/// grace.
#[test]
fn while_stopping() {
    let mut s = Service::new(0, def(false, false), T);
    s.run = Run::Starting { since: T };
    let mut acts = Vec::new();
    s.on(Ev::Spawned(Program::Run, Ok(pid(7))), &cx(true), &mut acts);
    assert_eq!(show(&acts), STOP);

    s.run = Run::Finishing {
        pid: Some(pid(9)),
        exit: Exit::Code(0),
        since: T,
        after: After::Restart,
    };
    acts.clear();
    s.on(
        Ev::Ended(Stage::Finish, pid(9), Exit::Code(0)),
        &cx(true),
        &mut acts,
    );
    assert_eq!(show(&acts), FINISHED_ASKED);
    assert_eq!(
        s.run,
        Run::Down {
            why: Down::Requested(Exit::Code(0)),
            since: T
        }
    );

    s.run = Run::Finishing {
        pid: None,
        exit: Exit::Code(115),
        since: T,
        after: After::Natural,
    };
    acts.clear();
    s.on(
        Ev::Spawned(Program::Finish(Exit::Code(115)), Err(SpawnError::Absent)),
        &cx(false),
        &mut acts,
    );
    assert_eq!(
        show(&acts),
        ["release-input", "close-pipe"],
        "115: no shutdown"
    );
}
