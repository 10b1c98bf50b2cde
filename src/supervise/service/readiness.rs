//! Whether a service is ready (contract §15), and the `check` script dinit runs to know it.
//!
//! A service with s6's `notification-fd` is ready once `run` writes a newline to that fd; one
//! with an executable `check` is ready while its last run exited 0 (dinit runs it every
//! `DINIT_CHECK_INTERVAL`, never two at once, each bounded by `DINIT_CHECK_TIMEOUT`); any other
//! as soon as `run` has been executed. `run`'s end makes it not ready.

use std::time::SystemTime;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::super::events::{Effect, Program, SpawnError, Stage, Timer};
use super::super::exit::Exit;
use super::super::messages::Msg;
use super::super::scan::Readiness;
use super::{Act, Ctx, Run, Service, say};
use crate::log::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    No,
    Yes { since: SystemTime },
}

/// dinit's own run of the service's `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checking {
    /// None under way (the next one is a timer away, or none is wanted).
    Idle,
    /// Asked for; the fork's outcome comes next.
    Starting,
    Running {
        pid: Pid,
    },
}

impl Service {
    /// `run` has been executed: ready now, or once its notification or check says so.
    pub(super) fn executed(&mut self, cx: &Ctx, acts: &mut Vec<Act>) {
        match (self.def.readiness, cx.check_interval) {
            (Readiness::Notify(_), _) => {}
            (Readiness::Check, Some(_)) => self.check_due(cx, acts),
            (Readiness::Executed, _) | (Readiness::Check, None) => {
                self.ready = Ready::Yes { since: cx.now }
            }
        }
    }

    pub(super) fn notified(&mut self, pid: Pid, cx: &Ctx) {
        if self.run_pid() == Some(pid) && self.ready == Ready::No {
            self.ready = Ready::Yes { since: cx.now };
        }
    }

    /// A check is due: started unless one runs (never two at once) or `run` does not.
    pub(super) fn check_due(&mut self, _cx: &Ctx, acts: &mut Vec<Act>) {
        let Some(pid) = self.run_pid() else { return };
        if self.def.readiness != Readiness::Check || self.check != Checking::Idle {
            return;
        }
        self.check = Checking::Starting;
        acts.push(Act::Do(Effect::Spawn {
            svc: self.index,
            program: Program::Check(pid),
        }));
    }

    pub(super) fn check_spawned(
        &mut self,
        r: Result<Pid, SpawnError>,
        cx: &Ctx,
        acts: &mut Vec<Act>,
    ) {
        if self.check != Checking::Starting {
            return;
        }
        match r {
            Ok(pid) => {
                self.check = Checking::Running { pid };
                acts.push(Act::Do(Effect::Arm(
                    cx.mono + cx.check_timeout,
                    Timer::CheckKill(self.index, pid),
                )));
            }
            Err(_) => {
                // Not there any more, or no fork: not ready, and tried again later.
                self.check = Checking::Idle;
                self.ready = Ready::No;
                self.next_check(cx, acts);
            }
        }
    }

    pub(super) fn check_kill(&mut self, pid: Pid, acts: &mut Vec<Act>) {
        if self.check == (Checking::Running { pid }) {
            say(
                acts,
                Level::Debug,
                Msg::SendingSigkill(self.label.clone(), Stage::Check, pid),
            );
            acts.push(Act::Do(Effect::Kill(pid, Signal::SIGKILL)));
        }
    }

    pub(super) fn check_ended(&mut self, pid: Pid, exit: Exit, cx: &Ctx, acts: &mut Vec<Act>) {
        if self.check != (Checking::Running { pid }) {
            return;
        }
        say(
            acts,
            Level::Debug,
            Msg::Finished(self.label.clone(), Stage::Check, pid, exit),
        );
        self.check = Checking::Idle;
        self.last_check = Some(exit);
        if matches!(self.run, Run::Running { .. }) {
            self.ready = match (exit, self.ready) {
                (Exit::Code(0), Ready::Yes { since }) => Ready::Yes { since },
                (Exit::Code(0), Ready::No) => Ready::Yes { since: cx.now },
                _ => Ready::No,
            };
        }
        self.next_check(cx, acts);
    }

    fn next_check(&self, cx: &Ctx, acts: &mut Vec<Act>) {
        if let (Some(every), Run::Running { .. }) = (cx.check_interval, self.run) {
            acts.push(Act::Do(Effect::Arm(
                cx.mono + every,
                Timer::Check(self.index),
            )));
        }
    }
}
