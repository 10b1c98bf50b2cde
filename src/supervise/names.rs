//! What supervision calls things, shared by the events, the messages and the proctab: a
//! service's programs ([`Stage`]), a service's name ([`Label`]), an orphan (`<name>/<pid>`).

use std::fmt;
use std::rc::Rc;

use nix::unistd::Pid;

/// A service's programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Run,
    Log,
    Finish,
    Term,
    /// The `check` script dinit runs for readiness (contract §15).
    Check,
}

impl Stage {
    /// The stage in records and messages (`web/term: ...`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Run => "run",
            Stage::Log => "log",
            Stage::Finish => "finish",
            Stage::Term => "term",
            Stage::Check => "check",
        }
    }
}

/// A service's name as messages print it.
pub type Label = Rc<str>;

/// An orphan as messages name it: `<name>/<pid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub name: Rc<str>,
    pub pid: Pid,
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.pid)
    }
}
