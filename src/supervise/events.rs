//! The vocabulary between the loop and supervision: what happened ([`Event`]), what to do
//! ([`Effect`]), and the named deadlines ([`Timer`]).
//!
//! Data flows one way: the loop turns readiness, signals, reaped children and expired
//! deadlines into events; `Supervisor::on` moves the state machines and returns effects; the
//! loop carries them out. An effect whose outcome matters (a spawn, an orphan scan) comes back
//! as an event of its own, after the effects of the same batch: a failure to start the first
//! service cannot stop the container before the others were started.

use std::time::Instant;

use mio::Token;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::adopt::Cmd;
use super::exit::Exit;
use super::messages::Msg;
pub use super::names::Stage;
use super::orphans::Scan;
use super::proctab::Io;
use super::reaper::{Children, Reaped};
use crate::log::Level;

/// A program to start for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `run`, its stdout to the logger's pipe when it has one.
    Run,
    /// `log/run` on the read end of that pipe.
    Log,
    /// `finish` with runit's two arguments for how `run` ended.
    Finish(Exit),
    /// `terminate` with `DINIT_PID` of the `run` to stop.
    Term(Pid),
    /// `check` with `DINIT_PID` of the `run` it checks (readiness).
    Check(Pid),
}

impl Program {
    pub fn stage(self) -> Stage {
        match self {
            Program::Run => Stage::Run,
            Program::Log => Stage::Log,
            Program::Finish(_) => Stage::Finish,
            Program::Term(_) => Stage::Term,
            Program::Check(_) => Stage::Check,
        }
    }
}

/// Why a program was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// The file does not exist (an optional `finish` or `terminate`): not an error.
    Absent,
    /// The pipe from `run` to its logger could not be made.
    LoggerPipe(Errno),
    /// Preparing or forking failed.
    Failed(Errno),
}

/// An operator's request that changes something (status is read, not requested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Up,
    Down,
    Restart,
    Signal(Signal),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Up => "up",
            Op::Down => "down",
            Op::Restart => "restart",
            Op::Signal(_) => "signal",
        }
    }
}

/// A request as supervision sees it: who asked, for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `op` for each named service.
    Services {
        op: Op,
        names: Vec<String>,
    },
    Shutdown,
}

/// Why a request was not carried out; `Display` is the response's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Stopping,
    UnknownService(String),
    NotRunning(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stopping => f.write_str("dinit is stopping"),
            Refusal::UnknownService(n) => write!(f, "unknown service: {n}"),
            Refusal::NotRunning(n) => write!(f, "{n}: not running"),
        }
    }
}

/// Where a reply goes: the connection that asked.
pub type ReplyTo = Token;

/// Something that happened, for supervision to act on.
#[derive(Debug)]
pub enum Event {
    /// The outcome of [`Effect::Spawn`].
    Spawned {
        svc: usize,
        program: Program,
        result: Result<(Pid, Io), SpawnError>,
    },
    /// What a child's exec-status pipe said: it runs its program, or exec failed.
    Exec {
        pid: Pid,
        result: Result<(), Errno>,
    },
    /// A child ended.
    Exited(Reaped),
    /// The reaper's view once a batch is collected.
    Children(Children),
    /// A step of an adoption: a traced process stopped, or a tracer command's outcome.
    TraceResult {
        pid: Pid,
        result: super::adopt::Input,
    },
    /// The outcome of [`Effect::Watch`]: the adopted process's new pipes are watched.
    Watched {
        pid: Pid,
        pipes: Vec<Token>,
    },
    Timer(Timer),
    /// A signal dinit caught (SIGCHLD excepted: that is reaping).
    Signal(i32),
    Request {
        from: ReplyTo,
        uid: u32,
        ask: Ask,
    },
    /// The outcome of [`Effect::Scan`].
    Scanned(Scan),
    /// `run` of service `svc` (this pid) wrote a newline to its notification fd: it is ready.
    Notified {
        svc: usize,
        pid: Pid,
    },
    /// A turn of the loop is over: move the phases on (once per turn, not per event).
    Settle,
}

/// Something for the loop to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Spawn {
        svc: usize,
        program: Program,
    },
    Kill(Pid, Signal),
    /// SIGTERM, then SIGCONT: a process that stopped itself could not act on the TERM (runit's
    /// `sv down` does the same).
    Terminate(Pid),
    Arm(Instant, Timer),
    Say(Level, Msg),
    /// A message that must come after the stdout records queued so far (a `finished` line).
    SayAfterStdout(Level, Msg),
    /// The logger of service `svc` can see EOF once `run` is gone: dinit drops its write end.
    ReleaseLoggerInput(usize),
    /// Close dinit's ends of service `svc`'s logger pipe altogether.
    CloseLoggerPipe(usize),
    /// Look for orphans in /proc (answered by [`Event::Scanned`]).
    Scan,
    /// Reap now (answered by [`Event::Exited`]s and [`Event::Children`]).
    Reap,
    Reply(ReplyTo, Result<(), Refusal>),
    /// A step of an adoption's output redirection.
    Trace(Pid, Cmd),
    /// Start redirecting `pid`'s output: make its pipes, list the descendants that share its
    /// output (answered by [`Event::TraceResult`] with `Input::Planned`).
    Capture(Pid),
    /// The adopted process `pid` writes into its new pipes: watch their read ends as
    /// `<name>/<pid>` (answered by [`Event::Watched`]).
    Watch(Pid),
    /// Give up the redirection of `pid` (its pipes and the tracer's state for it).
    Release(Pid),
    /// Everything is over: read every pipe to its end, close the control socket.
    Wind,
    /// The drain's time is up: as PID 1, `kill(-1, SIGKILL)` (every process of the namespace);
    /// as a subreaper, SIGKILL to these (its own descendants only).
    KillAll(Vec<Pid>),
}

/// Named deadlines. A timer is never cancelled: its handler checks that the state it was armed
/// for still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// A logger ended while its `run` runs: shut down unless `run` ends too.
    LoggerGrace(usize),
    /// Service `svc`'s `finish` (this pid) has run for `DINIT_KILL_TIMEOUT`.
    FinishKill(usize, Pid),
    /// An orphan under `terminate` has had `DINIT_KILL_TIMEOUT` to end.
    OrphanKill(Pid),
    OrphanScan,
    StopTimeout,
    /// `DINIT_KILL_TIMEOUT` after every service ended (`Phase::Draining`).
    Drained,
    /// An adoption step of `pid` has taken too long (`attempt` tells stale timers apart).
    Adoption(Pid, u32),
    /// Service `svc`'s next readiness check is due.
    Check(usize),
    /// Service `svc`'s check (this pid) has run for `DINIT_CHECK_TIMEOUT`.
    CheckKill(usize, Pid),
}
