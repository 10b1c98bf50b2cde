//! What an operator's request (`dinit up|down|restart|signal`) does to a service: a pure
//! table of the request against `run`'s state, and carrying its decision out.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::super::events::{Effect, Op};
use super::super::messages::Msg;
use super::{Act, After, Ctx, Run, Service, say};
use crate::log::Level;

impl Service {
    pub(super) fn request(&mut self, op: Op, uid: u32, cx: &Ctx, acts: &mut Vec<Act>) {
        let decision = decide(&op, self.run);
        if decision == Decision::Nothing {
            return; // already where it was asked to be: no change, no line
        }
        say(
            acts,
            Level::Info,
            Msg::Requested(self.label.clone(), op.name(), uid),
        );
        match decision {
            Decision::Signal(pid, sig) => acts.push(Act::Do(Effect::Kill(pid, sig))),
            Decision::Start => self.start(true, cx, acts),
            Decision::Then(after) => self.set_after(after),
            Decision::Stop(after) => {
                self.set_after(after);
                if let Some(pid) = self.run_pid() {
                    self.stop(pid, acts);
                }
            }
            Decision::Nothing => {}
        }
    }

    fn set_after(&mut self, new: After) {
        match &mut self.run {
            Run::Running { after, .. } | Run::Finishing { after, .. } => *after = new,
            Run::Down { .. } | Run::Starting { .. } => {}
        }
    }
}

/// What an operator's request does to `run` in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    Signal(Pid, Signal),
    /// Start `run` now.
    Start,
    /// Stop `run` now, and then do this.
    Stop(After),
    /// Once `run` (and `finish`) ended, do this.
    Then(After),
}

/// `up`, `down`, `restart`, `signal` against `run`'s state. Pure.
pub fn decide(op: &Op, run: Run) -> Decision {
    use {After as A, Decision as D, Op as O};
    match (op, run) {
        (O::Signal(sig), Run::Running { pid, .. }) => D::Signal(pid, *sig),
        (O::Up | O::Restart, Run::Down { .. }) => D::Start,
        // On its way down: bring it back once it is.
        (O::Up, Run::Running { after: A::Down, .. } | Run::Finishing { after: A::Down, .. }) => {
            D::Then(A::Restart)
        }
        (
            O::Restart,
            Run::Finishing {
                after: A::Natural | A::Down,
                ..
            },
        ) => D::Then(A::Restart),
        (
            O::Down,
            Run::Finishing {
                after: A::Natural | A::Restart,
                ..
            },
        ) => D::Then(A::Down),
        (
            O::Down,
            Run::Running {
                after: A::Natural, ..
            },
        ) => D::Stop(A::Down),
        (
            O::Down,
            Run::Running {
                after: A::Restart, ..
            },
        ) => D::Then(A::Down),
        (
            O::Restart,
            Run::Running {
                after: A::Natural, ..
            },
        ) => D::Stop(A::Restart),
        (O::Restart, Run::Running { after: A::Down, .. }) => D::Then(A::Restart),
        _ => D::Nothing,
    }
}
