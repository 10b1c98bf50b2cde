//! What supervision does with processes reparented to it: the verdicts of an orphan scan
//! (terminate, adopt, kill), and adopted processes' captures, step by step.

use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Supervisor;
use crate::config::Policy;
use crate::log::Level;
use crate::supervise::adopt::{Capture, Input, Step};
use crate::supervise::events::{Effect, Timer};
use crate::supervise::messages::{Msg, Orphan};
use crate::supervise::orphans::{self, Moment, Saw, Scan, Verdict};
use crate::supervise::proctab::Role;
use crate::supervise::shutdown::Phase;

impl Supervisor {
    // ---- adoption -----------------------------------------------------------------------

    /// Whether `pid` is traced for a capture (its stops go to [`Event::TraceResult`]).
    pub fn traces(&self, pid: Pid) -> bool {
        self.tracees.contains_key(&pid)
            || matches!(self.procs.get(pid).map(|p| &p.role), Some(Role::Adopted(_, c)) if c.tracee() == Some(pid))
    }

    pub(super) fn traced(&mut self, pid: Pid, input: Input, now: Instant, out: &mut Vec<Effect>) {
        let adopted = self.tracees.get(&pid).copied().unwrap_or(pid);
        let Some(Role::Adopted(_, cap)) = self.procs.get_mut(adopted).map(|p| &mut p.role) else {
            return;
        };
        let steps = cap.on(adopted, pid, input, now);
        self.capture_steps(adopted, steps, out);
    }

    /// Turns a capture's steps into effects (and keeps the tracee index current).
    pub(super) fn capture_steps(&mut self, adopted: Pid, steps: Vec<Step>, out: &mut Vec<Effect>) {
        let Some(Role::Adopted(o, cap)) = self.procs.get_mut(adopted).map(|p| &mut p.role) else {
            return;
        };
        let (o, attempt, tracee) = (o.clone(), cap.attempt, cap.tracee());
        if steps
            .iter()
            .any(|s| matches!(s, Step::Watch | Step::Release | Step::Report(_)))
            && let Some(cmdline) = cap.announce.take()
        {
            out.push(Effect::Say(
                Level::Warn,
                Msg::OrphanAdopting(o.clone(), cmdline),
            ));
        }
        self.tracees.retain(|_, a| *a != adopted);
        if let Some(t) = tracee.filter(|t| *t != adopted) {
            self.tracees.insert(t, adopted);
        }
        for step in steps {
            out.push(match step {
                Step::Trace(pid, cmd) => Effect::Trace(pid, cmd),
                Step::Watch => Effect::Watch(adopted),
                Step::Release => Effect::Release(adopted),
                Step::Report(f) => {
                    Effect::Say(Level::Warn, Msg::RedirectError(o.clone(), f.to_string()))
                }
                Step::Deadline(at) => Effect::Arm(at, Timer::Adoption(adopted, attempt)),
            });
        }
    }

    /// Starts capturing adopted processes whose (next) try is due.
    fn captures_due(&mut self, now: Instant, out: &mut Vec<Effect>) {
        for (pid, proc) in self.procs.iter_mut() {
            if let Role::Adopted(_, cap) = &mut proc.role
                && cap.due(now)
            {
                cap.begin();
                out.push(Effect::Capture(pid));
            }
        }
    }

    // ---- orphans ------------------------------------------------------------------------

    /// Adopted processes whose stdout the next scan should check (a daemon that finished
    /// daemonizing only after it was adopted throws the captured pipe away).
    pub fn captured(&self) -> Vec<Pid> {
        if self.stopping() {
            return Vec::new();
        }
        self.procs
            .iter()
            .filter(|(_, p)| matches!(&p.role, Role::Adopted(_, c) if c.captures > 0))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Applies the policy to what a look at /proc found.
    pub(super) fn scanned(&mut self, scan: Scan, now: Instant, out: &mut Vec<Effect>) {
        self.scans.ran(now);
        if self.phase == Phase::Done {
            return;
        }
        let moment = match self.phase {
            Phase::Killing { .. } => Moment::Killing,
            Phase::Draining { .. } => Moment::Draining,
            p if p.stopping() => Moment::Stopping,
            _ => Moment::Running,
        };
        if moment != Moment::Running {
            self.want_scan(now + orphans::SCAN_PERIOD_STOPPING, out);
        } else if self.cfg.policy != Policy::Ignore {
            self.want_scan(now + orphans::SCAN_PERIOD, out);
        }
        let mut saw = Saw::Settled;
        for f in scan.found {
            if self.procs.contains(f.pid) {
                continue;
            }
            let o = Orphan {
                name: f.name.into(),
                pid: f.pid,
            };
            // While draining, only what appeared after the last service ended is killed at
            // once; an orphan that may have started before (the tick's doubt goes its way) is
            // terminated like any at shutdown.
            let moment = match (moment, self.phase) {
                (Moment::Draining, Phase::Draining { drained, .. })
                    if f.age_max
                        .is_some_and(|age| now.checked_sub(age).is_some_and(|t| t < drained)) =>
                {
                    Moment::Stopping
                }
                (m, _) => m,
            };
            match orphans::verdict(self.cfg.policy, moment, f.mature) {
                Verdict::Wait => {
                    if !f.mature {
                        saw = Saw::Immature;
                    }
                }
                Verdict::Kill => {
                    let msg = if moment == Moment::Killing {
                        Msg::StopTimeoutKill(o.to_string(), f.pid)
                    } else {
                        Msg::OrphanKillingReparented(o.clone(), f.cmdline)
                    };
                    out.push(Effect::Say(Level::Warn, msg));
                    out.push(Effect::Kill(f.pid, Signal::SIGKILL));
                    self.procs
                        .insert(f.pid, Role::Orphan(o), Default::default());
                }
                Verdict::Terminate => {
                    out.push(Effect::Say(
                        Level::Warn,
                        Msg::OrphanTerminatingReparented(o.clone(), f.cmdline),
                    ));
                    out.push(Effect::Say(Level::Info, Msg::OrphanSigterm(o.clone())));
                    out.push(Effect::Terminate(f.pid));
                    out.push(Effect::Arm(
                        now + self.cfg.kill_timeout,
                        Timer::OrphanKill(f.pid),
                    ));
                    self.procs
                        .insert(f.pid, Role::Orphan(o), Default::default());
                }
                Verdict::Adopt => {
                    let cap = Box::new(Capture::new(now, f.cmdline));
                    self.procs
                        .insert(f.pid, Role::Adopted(o, cap), Default::default());
                }
            }
        }
        self.scans.last_saw = saw;
        if saw == Saw::Immature {
            self.want_scan(now + orphans::MATURITY, out);
        }
        if moment == Moment::Running {
            for pid in scan.dropped {
                if let Some(Role::Adopted(o, cap)) = self.procs.get_mut(pid).map(|p| &mut p.role)
                    && cap.again(now)
                {
                    out.push(Effect::Say(Level::Info, Msg::RedirectAgain(o.clone())));
                }
            }
            self.captures_due(now, out);
        }
    }
}
