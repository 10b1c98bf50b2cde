//! How a process ended, and dinit's exit-code policy (contract §7, reference §9). Pure.
//!
//! 0: nothing went wrong (or a shutdown signal came first); 1: dinit itself failed (a start
//! failure, an unreadable directory); 3: a program failed. The first recorded code wins.

use std::fmt;

use nix::sys::wait::WaitStatus;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// `run` exit code meaning "this service disables itself".
pub const DISABLED: i32 = 115;

impl Exit {
    pub fn from_wait(ws: WaitStatus) -> Option<Exit> {
        match ws {
            WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
            WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
            _ => None,
        }
    }

    /// As a shell reports it: the exit code, or 128 + N for death by signal N.
    pub fn shell_code(self) -> u8 {
        match self {
            Exit::Code(c) => c as u8,
            Exit::Signal(s) => (128 + s) as u8,
        }
    }

    /// runit's `finish` arguments: exit code or -1, and signal number or 0.
    pub fn finish_args(self) -> [String; 2] {
        match self {
            Exit::Code(c) => [c.to_string(), "0".to_owned()],
            Exit::Signal(s) => ["-1".to_owned(), s.to_string()],
        }
    }
}

/// The words after `PID <pid> finished`: ` with status 1`, ` and disabled itself`, ` with signal 9`.
impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(DISABLED) => f.write_str("and disabled itself"),
            Exit::Code(c) => write!(f, "with status {c}"),
            Exit::Signal(s) => write!(f, "with signal {s}"),
        }
    }
}

/// Which kind of process ended, as far as the exit code cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A service's `run`, its logger, or an adopted process.
    Program,
    /// A `terminate` script: any signal death counts as a failure.
    Terminate,
    /// `finish` scripts, orphans handled by a policy, reaped zombies: never count.
    Bystander,
}

pub const OK: u8 = 0;
pub const DINIT_FAILED: u8 = 1;
pub const INTERNAL: u8 = 2;
pub const PROGRAM_FAILED: u8 = 3;

/// The code an ended process records, if any. `stopping`: a shutdown is under way (a signal death
/// is then what was asked for).
pub fn failure(kind: Kind, exit: Exit, stopping: bool) -> Option<u8> {
    match (kind, exit) {
        (Kind::Bystander, _) => None,
        (_, Exit::Code(0 | DISABLED)) => None,
        (_, Exit::Code(_)) => Some(PROGRAM_FAILED),
        (Kind::Terminate, Exit::Signal(_)) => Some(PROGRAM_FAILED),
        (Kind::Program, Exit::Signal(_)) => (!stopping).then_some(PROGRAM_FAILED),
    }
}

/// First recorded code wins; nothing recorded means 0.
#[derive(Debug, Default)]
pub struct ExitCode {
    recorded: Recorded,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    #[default]
    Nothing,
    /// 0, because a shutdown signal came first (later failures of programs are what it asked
    /// for).
    Signal,
    Code(u8),
    /// The main program's end stopped the container: its code, whatever else happened.
    Main(u8),
}

impl ExitCode {
    /// The main program's end stopped the container (contract §14): its code wins.
    pub fn record_main(&mut self, code: u8) {
        self.recorded = Recorded::Main(code);
    }

    pub fn record(&mut self, code: u8) {
        if self.recorded == Recorded::Nothing {
            self.recorded = Recorded::Code(code);
        }
    }

    /// A shutdown signal (SIGTERM, SIGINT, SIGQUIT, `dinit shutdown`): 0 unless something came
    /// first.
    pub fn record_signal(&mut self) {
        if self.recorded == Recorded::Nothing {
            self.recorded = Recorded::Signal;
        }
    }

    /// A `terminate` that exists but cannot be started: 1, also when a shutdown signal came
    /// first (contract §13: exit codes stay true; the SIGTERM sent instead stops the service
    /// cleanly and would otherwise hide it).
    pub fn record_terminate_failure(&mut self) {
        if matches!(self.recorded, Recorded::Nothing | Recorded::Signal) {
            self.recorded = Recorded::Code(DINIT_FAILED);
        }
    }

    pub fn get(&self) -> u8 {
        match self.recorded {
            Recorded::Code(c) | Recorded::Main(c) => c,
            Recorded::Nothing | Recorded::Signal => OK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(Exit::Code(0).to_string(), "with status 0");
        assert_eq!(Exit::Code(115).to_string(), "and disabled itself");
        assert_eq!(Exit::Signal(15).to_string(), "with signal 15");
    }

    #[test]
    fn shell_codes() {
        assert_eq!(Exit::Code(42).shell_code(), 42);
        assert_eq!(Exit::Signal(15).shell_code(), 143);
        let mut c = ExitCode::default();
        c.record(1);
        c.record_main(42);
        c.record(3);
        assert_eq!(c.get(), 42, "the main program's code wins");
    }

    #[test]
    fn finish_arguments() {
        assert_eq!(Exit::Code(3).finish_args(), ["3", "0"]);
        assert_eq!(Exit::Signal(9).finish_args(), ["-1", "9"]);
    }

    #[test]
    fn program_rules() {
        use Kind::*;
        assert_eq!(failure(Program, Exit::Code(0), false), None);
        assert_eq!(failure(Program, Exit::Code(115), false), None);
        assert_eq!(failure(Program, Exit::Code(7), false), Some(3));
        assert_eq!(failure(Program, Exit::Code(1), true), Some(3));
        assert_eq!(failure(Program, Exit::Signal(9), false), Some(3));
        assert_eq!(failure(Program, Exit::Signal(15), true), None);
        assert_eq!(failure(Terminate, Exit::Signal(15), true), Some(3));
        assert_eq!(failure(Terminate, Exit::Code(115), true), None);
        assert_eq!(failure(Terminate, Exit::Code(2), true), Some(3));
        assert_eq!(failure(Bystander, Exit::Code(2), false), None);
        assert_eq!(failure(Bystander, Exit::Signal(9), false), None);
    }

    #[test]
    fn a_terminate_failure_is_not_hidden_by_a_signal() {
        let mut c = ExitCode::default();
        c.record_signal();
        c.record(3);
        assert_eq!(
            c.get(),
            0,
            "after a shutdown signal, program failures do not count"
        );
        c.record_terminate_failure();
        assert_eq!(c.get(), 1);
        let mut c = ExitCode::default();
        c.record(3);
        c.record_terminate_failure();
        assert_eq!(c.get(), 3, "a program failure that came first still wins");
    }

    #[test]
    fn first_code_wins_both_ways() {
        let mut c = ExitCode::default();
        assert_eq!(c.get(), 0);
        c.record(0);
        c.record(3);
        assert_eq!(c.get(), 0);
        let mut c = ExitCode::default();
        c.record(3);
        c.record(1);
        c.record(0);
        assert_eq!(c.get(), 3);
        let mut c = ExitCode::default();
        c.record(1);
        c.record(3);
        assert_eq!(c.get(), 1);
    }
}
