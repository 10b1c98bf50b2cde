//! The catalogue of dinit's own messages about processes, as data.
//!
//! Supervision says *what* to report ([`Msg`], cheap to build: labels are shared `Rc<str>`);
//! the loop formats it only when its level is enabled. Keeping the texts in one place keeps
//! them exactly the contract's (reference §12: `web/run: PID 12 finished with status 1`).

use nix::errno::Errno;
use nix::unistd::Pid;
use std::fmt;

use super::exit::Exit;
pub use super::names::{Label, Orphan, Stage};
use crate::error::errno_text;

#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    NotStartingDownFile(Label),
    NoServices,
    Starting(Label, Stage),
    RunningWithPid(Label, Stage, Pid),
    /// `<svc>/<stage>: error running: <error>`
    ErrorRunning(Label, Stage, String),
    Finished(Label, Stage, Pid, Exit),
    /// `run` ended and its end stops the container (contract §6): said at the default level.
    FinishedStopping(Label, Pid, Exit),
    Terminating(Label),
    SendingSigterm(Label, Pid),
    CannotSigterm(Label, Pid, Errno),
    SendingSigkill(Label, Stage, Pid),
    /// `<who>: stop timeout expired, sending SIGKILL to PID <pid>`; `who` is `svc/stage` or an
    /// orphan's `name/pid`.
    StopTimeoutKill(String, Pid),
    /// `<who>: still alive after the last service ended, sending SIGKILL to PID <pid>`.
    DrainKill(String, Pid),
    Requested(Label, &'static str, u32),
    ShutdownRequested(u32),
    SignalShutdown(i32),
    SignalAgain(i32),
    SignalForward(i32),
    AllFinished,
    /// An error of dinit itself, said as it happens.
    Error(String),
    /// The first error of dinit itself, repeated last: `exiting: <error>`.
    Exiting(String),
    ExitStatus(u8),
    OrphanReaped(Orphan),
    OrphanFinished(Orphan, Exit),
    OrphanTerminatingReparented(Orphan, String),
    OrphanAdopting(Orphan, String),
    OrphanKillingReparented(Orphan, String),
    OrphanTerminating(Orphan),
    OrphanSigterm(Orphan),
    OrphanSigkill(Orphan),
    AdoptedEarlyEnd(Orphan),
    RedirectError(Orphan, String),
    RedirectAgain(Orphan),
}

/// `: <cmdline>` when there is one.
struct Cmdline<'a>(&'a str);

impl fmt::Display for Cmdline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ": {}", self.0)
        }
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Msg::*;
        match self {
            NotStartingDownFile(s) => write!(f, "{s}/run: not starting: down file present"),
            NoServices => f.write_str("no services found, exiting"),
            Starting(s, st) => write!(f, "{s}/{}: starting", st.name()),
            RunningWithPid(s, st, pid) => write!(f, "{s}/{}: running with PID {pid}", st.name()),
            ErrorRunning(s, st, e) => write!(f, "{s}/{}: error running: {e}", st.name()),
            Finished(s, st, pid, exit) => {
                write!(f, "{s}/{}: PID {pid} finished {exit}", st.name())
            }
            FinishedStopping(s, pid, exit) => {
                write!(
                    f,
                    "{s}/run: PID {pid} finished {exit}, stopping all services"
                )
            }
            Terminating(s) => write!(f, "{s}/run: terminating"),
            SendingSigterm(s, pid) => write!(f, "{s}/run: sending SIGTERM to PID {pid}"),
            CannotSigterm(s, pid, e) => {
                write!(
                    f,
                    "{s}/run: cannot send SIGTERM to PID {pid}: {}",
                    errno_text(*e)
                )
            }
            SendingSigkill(s, st, pid) => {
                write!(f, "{s}/{}: sending SIGKILL to PID {pid}", st.name())
            }
            StopTimeoutKill(who, pid) => {
                write!(
                    f,
                    "{who}: stop timeout expired, sending SIGKILL to PID {pid}"
                )
            }
            DrainKill(who, pid) => write!(
                f,
                "{who}: still alive after the last service ended, sending SIGKILL to PID {pid}"
            ),
            Requested(s, cmd, uid) => write!(f, "{s}/run: {cmd} requested by uid {uid}"),
            ShutdownRequested(uid) => write!(f, "shutdown requested by uid {uid}"),
            SignalShutdown(sig) => write!(f, "got signal {sig}, terminating services"),
            SignalAgain(sig) => write!(f, "got signal {sig}, already terminating services"),
            SignalForward(sig) => write!(f, "got signal {sig}, forwarding to services"),
            AllFinished => f.write_str("all services finished, exiting"),
            Error(e) => f.write_str(e),
            Exiting(e) => write!(f, "exiting: {e}"),
            ExitStatus(code) => write!(f, "dinit exiting with status {code}"),
            OrphanReaped(o) => write!(f, "{o}: reaping process with PID {}", o.pid),
            OrphanFinished(o, exit) => write!(f, "{o}: PID {} finished {exit}", o.pid),
            OrphanTerminatingReparented(o, cmd) => write!(
                f,
                "{o}: terminating reparented child process with PID {}{}",
                o.pid,
                Cmdline(cmd)
            ),
            OrphanAdopting(o, cmd) => write!(
                f,
                "{o}: adopting reparented child process with PID {}{}",
                o.pid,
                Cmdline(cmd)
            ),
            OrphanKillingReparented(o, cmd) => write!(
                f,
                "{o}: killing reparented child process with PID {}{}",
                o.pid,
                Cmdline(cmd)
            ),
            OrphanTerminating(o) => write!(f, "{o}: terminating"),
            OrphanSigterm(o) => write!(f, "{o}: sending SIGTERM to PID {}", o.pid),
            OrphanSigkill(o) => write!(f, "{o}: sending SIGKILL to PID {}", o.pid),
            AdoptedEarlyEnd(o) => {
                write!(f, "{o}: PID {} finished before adopting complete", o.pid)
            }
            RedirectError(o, e) => write!(f, "{o}: error redirecting stdout and stderr: {e}"),
            RedirectAgain(o) => write!(
                f,
                "{o}: stdout moved to a device after adoption, redirecting again"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn texts() {
        let web: Label = Rc::from("web");
        let pid = Pid::from_raw(12);
        let o = Orphan {
            name: Rc::from("sleep"),
            pid,
        };
        for (m, want) in [
            (
                Msg::Finished(web.clone(), Stage::Run, pid, Exit::Code(1)),
                "web/run: PID 12 finished with status 1",
            ),
            (
                Msg::FinishedStopping(web.clone(), pid, Exit::Signal(9)),
                "web/run: PID 12 finished with signal 9, stopping all services",
            ),
            (
                Msg::ErrorRunning(web.clone(), Stage::Term, "x: y".into()),
                "web/term: error running: x: y",
            ),
            (
                Msg::OrphanTerminatingReparented(o.clone(), "sleep 100".into()),
                "sleep/12: terminating reparented child process with PID 12: sleep 100",
            ),
            (
                Msg::OrphanAdopting(o.clone(), String::new()),
                "sleep/12: adopting reparented child process with PID 12",
            ),
            (
                Msg::Requested(web, "down", 0),
                "web/run: down requested by uid 0",
            ),
        ] {
            assert_eq!(m.to_string(), want);
        }
    }
}
