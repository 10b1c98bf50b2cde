//! Supervision as one function: [`Supervisor::on`] takes an event and returns the effects for
//! the loop to carry out.
//!
//! It routes each event to the state machine it concerns (the proctab says whose a pid is:
//! a service's program, an orphan being stopped, an adopted process and its capture), applies
//! what only supervision acts on (the exit-code rule, dinit's own failures, the shutdown) and
//! hands the rest on. It owns no fd, no token and no clock: time comes with each call.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::adopt::{CaptureState, Input};
use super::events::{Ask, Effect, Event, Op, Refusal, Timer};
use super::exit::{self, ExitCode, Kind};
use super::messages::{Msg, Orphan};
use super::orphans::{self, ScanClock};
use super::proctab::{ProcTab, Role};
use super::reaper::{Children, Reaped};
use super::scan::ServiceDef;
use super::service::{Act, Ctx, Ev, Service};
use super::shutdown::{self, Facts, Next, Phase};
use crate::config::{Config, Policy};
use crate::error::Error;
use crate::log::Level;
use crate::signals::{self, Meaning};

/// See `Next::Drained`.
const DRAIN_SLACK: std::time::Duration = std::time::Duration::from_millis(250);

pub struct Supervisor {
    cfg: Config,
    pub services: Vec<Service>,
    pub procs: ProcTab,
    pub phase: Phase,
    exit: ExitCode,
    /// The first failure of dinit itself, repeated as the last error line (`exiting: ...`).
    first_error: Option<String>,
    children: Children,
    scans: ScanClock,
    /// Processes being traced for an adopted process's capture that are not themselves
    /// adopted (its descendants): tracee -> adopted process.
    tracees: HashMap<Pid, Pid>,
    pub started: SystemTime,
}

mod reparented;

impl Supervisor {
    pub fn new(cfg: Config, now: Instant) -> Supervisor {
        Supervisor {
            cfg,
            services: Vec::new(),
            procs: ProcTab::default(),
            phase: Phase::Running,
            exit: ExitCode::default(),
            first_error: None,
            children: Children::Some,
            scans: ScanClock::new(now),
            tracees: HashMap::new(),
            started: SystemTime::now(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stopping(&self) -> bool {
        self.phase.stopping()
    }

    /// The exit code, once everything is over.
    pub fn exit_code(&self) -> Option<u8> {
        (self.phase == Phase::Done).then(|| self.exit.get())
    }

    /// Whether a pid is one dinit knows (started, adopted, being stopped or traced).
    pub fn knows(&self, pid: Pid) -> bool {
        self.procs.contains(pid) || self.tracees.contains_key(&pid)
    }

    /// Starts every service of the listing; `scan_error` (the entry that ended the listing)
    /// stops the container once everything listed was started, as tozd/dinit does.
    pub fn start(
        &mut self,
        defs: Vec<ServiceDef>,
        scan_error: Option<Error>,
        now: Instant,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.cfg.policy != Policy::Ignore {
            self.want_scan(now + orphans::SCAN_PERIOD, &mut out);
        }
        if defs.iter().all(|d| d.down) && scan_error.is_none() {
            for d in &defs {
                out.push(Effect::Say(
                    Level::Info,
                    Msg::NotStartingDownFile(d.display().into()),
                ));
            }
            out.push(Effect::Say(Level::Warn, Msg::NoServices));
            self.begin_shutdown(now, &mut out);
            return out;
        }
        let wall = SystemTime::now();
        self.services = defs
            .into_iter()
            .enumerate()
            .map(|(i, d)| Service::new(i, d, wall))
            .collect();
        for i in 0..self.services.len() {
            self.service(i, Ev::Start { forced: false }, now, &mut out);
        }
        if let Some(e) = scan_error {
            self.apply(
                vec![Act::Fatal(e.to_string()), Act::Shutdown],
                now,
                &mut out,
            );
        }
        out
    }

    /// Moves the state machines on `ev` at `now`; returns what the loop must do.
    pub fn on(&mut self, ev: Event, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match ev {
            Event::Spawned {
                svc,
                program,
                result,
            } => {
                let result = result.map(|(pid, io)| {
                    self.procs
                        .insert(pid, Role::Service(svc, program.stage()), io);
                    pid
                });
                self.service(svc, Ev::Spawned(program, result), now, &mut out);
            }
            Event::Exec { pid, result } => {
                let Some(proc) = self.procs.get_mut(pid) else {
                    return out;
                };
                proc.io.exec = None;
                if let Role::Service(i, stage) = proc.role {
                    self.service(i, Ev::Exec(stage, pid, result), now, &mut out);
                }
            }
            Event::Exited(r) => self.exited(r, now, &mut out),
            Event::Children(c) => {
                self.children = c;
                // A reap may have ended something: look for orphans soon (a fork storm asks
                // for no more than one scan per SCAN_MIN_INTERVAL).
                if self.cfg.policy != Policy::Ignore || self.stopping() {
                    let at = now.max(self.scans.last + orphans::SCAN_MIN_INTERVAL);
                    self.want_scan(at, &mut out);
                }
            }
            Event::TraceResult { pid, result } => self.traced(pid, result, now, &mut out),
            Event::Watched { pid, pipes } => {
                if let Some(p) = self.procs.get_mut(pid) {
                    p.io.pipes.extend(pipes);
                }
            }
            Event::Timer(t) => self.timer(t, now, &mut out),
            Event::Signal(sig) => self.signal(sig, now, &mut out),
            Event::Request { from, uid, ask } => {
                let reply = self.request(ask, uid, now, &mut out);
                out.push(Effect::Reply(from, reply));
            }
            Event::Scanned(scan) => self.scanned(scan, now, &mut out),
            Event::Notified { svc, pid } => self.service(svc, Ev::Notified(pid), now, &mut out),
            Event::Settle => self.settle(now, &mut out),
        }
        out
    }

    fn ctx(&self, now: Instant) -> Ctx {
        Ctx {
            now: SystemTime::now(),
            mono: now,
            stopping: self.stopping(),
            kill_timeout: self.cfg.kill_timeout,
            check_interval: self.cfg.check_interval,
            check_timeout: self.cfg.check_timeout,
        }
    }

    /// Moves service `i` on `ev`.
    fn service(&mut self, i: usize, ev: Ev, now: Instant, out: &mut Vec<Effect>) {
        let cx = self.ctx(now);
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let mut acts = Vec::new();
        s.on(ev, &cx, &mut acts);
        self.apply(acts, now, out);
    }

    /// Carries out what only supervision acts on; effects go to `out`.
    fn apply(&mut self, acts: Vec<Act>, now: Instant, out: &mut Vec<Effect>) {
        for act in acts {
            match act {
                Act::Do(e) => out.push(e),
                Act::Record(kind, exit) => self.record(kind, exit),
                Act::Failed => self.exit.record_terminate_failure(),
                // tini's `-e`: codes the main program ends with that mean all is well.
                Act::MainExit(code) if self.cfg.main_exit_zero.contains(&code) => {
                    self.exit.record_main(exit::OK)
                }
                Act::MainExit(code) => self.exit.record_main(code),
                Act::Fatal(msg) => {
                    self.exit.record(exit::DINIT_FAILED);
                    if self.first_error.is_none() {
                        self.first_error = Some(msg);
                    } else {
                        out.push(Effect::Say(Level::Error, Msg::Error(msg)));
                    }
                }
                Act::Shutdown => self.begin_shutdown(now, out),
            }
        }
    }

    fn record(&mut self, kind: Kind, exit: exit::Exit) {
        if let Some(code) = exit::failure(kind, exit, self.stopping()) {
            self.exit.record(code);
        }
    }

    fn exited(&mut self, r: Reaped, now: Instant, out: &mut Vec<Effect>) {
        let Reaped { pid, exit, name } = r;
        let traced = self.tracees.remove(&pid);
        if let Some(adopted) = traced
            && let Some(Role::Adopted(_, cap)) = self.procs.get_mut(adopted).map(|p| &mut p.role)
        {
            let steps = cap.tracee_gone(pid, now);
            self.capture_steps(adopted, steps, out);
        }
        let Some(proc) = self.procs.remove(pid) else {
            // A reparented process that ended before dinit saw it alive (a traced descendant
            // that ended is its parent's to reap, not an orphan).
            if let (Some(name), None) = (name, traced) {
                let o = Orphan {
                    name: name.into(),
                    pid,
                };
                out.push(Effect::Say(Level::Warn, Msg::OrphanReaped(o.clone())));
                out.push(Effect::Say(Level::Info, Msg::OrphanFinished(o, exit)));
            }
            return;
        };
        match proc.role {
            Role::Service(i, stage) => self.service(i, Ev::Ended(stage, pid, exit), now, out),
            Role::Orphan(o) => out.push(Effect::SayAfterStdout(
                Level::Info,
                Msg::OrphanFinished(o, exit),
            )),
            Role::Adopted(o, mut cap) => {
                if let Some(cmdline) = cap.announce.take() {
                    out.push(Effect::Say(
                        Level::Warn,
                        Msg::OrphanAdopting(o.clone(), cmdline),
                    ));
                }
                if matches!(cap.state, CaptureState::Planning | CaptureState::Own { .. }) {
                    out.push(Effect::Say(Level::Info, Msg::AdoptedEarlyEnd(o.clone())));
                }
                if !matches!(cap.state, CaptureState::Idle { .. }) {
                    out.push(Effect::Release(pid));
                }
                self.tracees.retain(|_, a| *a != pid);
                out.push(Effect::SayAfterStdout(
                    Level::Info,
                    Msg::OrphanFinished(o, exit),
                ));
                self.record(Kind::Program, exit);
                self.begin_shutdown(now, out);
            }
        }
    }

    // ---- timers, signals, requests -------------------------------------------------------

    fn timer(&mut self, t: Timer, now: Instant, out: &mut Vec<Effect>) {
        match t {
            Timer::LoggerGrace(i) => self.service(i, Ev::LoggerGrace, now, out),
            Timer::Check(i) => self.service(i, Ev::CheckDue, now, out),
            Timer::CheckKill(i, pid) => self.service(i, Ev::CheckKill(pid), now, out),
            Timer::FinishKill(i, pid) => self.service(i, Ev::FinishKill(pid), now, out),
            Timer::OrphanKill(pid) => {
                if let Some(Role::Orphan(o)) = self.procs.get(pid).map(|p| &p.role) {
                    out.push(Effect::Say(Level::Info, Msg::OrphanSigkill(o.clone())));
                    out.push(Effect::Kill(pid, Signal::SIGKILL));
                }
            }
            Timer::OrphanScan => {
                if self.scans.due(now) && self.phase != Phase::Done {
                    out.push(Effect::Scan);
                }
            }
            Timer::StopTimeout => self.stop_timeout(now, out),
            Timer::Drained => {
                if let Phase::Draining { .. } = self.phase {
                    let left = self.everyone();
                    for (pid, label) in &left {
                        out.push(Effect::Say(
                            Level::Warn,
                            Msg::DrainKill(label.clone(), *pid),
                        ));
                    }
                    out.push(Effect::KillAll(
                        left.into_iter().map(|(pid, _)| pid).collect(),
                    ));
                    out.push(Effect::Reap);
                }
            }
            Timer::Adoption(pid, attempt) => {
                let Some(Role::Adopted(_, cap)) = self.procs.get(pid).map(|p| &p.role) else {
                    return;
                };
                if let (true, Some(tracee)) = (cap.attempt == attempt, cap.tracee()) {
                    self.traced(tracee, Input::Deadline, now, out);
                }
            }
        }
    }

    fn signal(&mut self, sig: i32, now: Instant, out: &mut Vec<Effect>) {
        match signals::meaning(sig) {
            Some(Meaning::Shutdown) => {
                if self.stopping() {
                    out.push(Effect::Say(Level::Info, Msg::SignalAgain(sig)));
                } else {
                    out.push(Effect::Say(Level::Info, Msg::SignalShutdown(sig)));
                    self.exit.record_signal();
                    self.begin_shutdown(now, out);
                }
            }
            Some(Meaning::Forward) => {
                out.push(Effect::Say(Level::Info, Msg::SignalForward(sig)));
                let Ok(signal) = Signal::try_from(sig) else {
                    return;
                };
                for (pid, p) in self.procs.iter() {
                    if matches!(
                        p.role,
                        Role::Service(_, super::events::Stage::Run) | Role::Adopted(..)
                    ) {
                        out.push(Effect::Kill(pid, signal));
                    }
                }
            }
            Some(Meaning::Child) | None => {}
        }
    }

    fn request(
        &mut self,
        ask: Ask,
        uid: u32,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        if self.stopping() {
            return Err(Refusal::Stopping);
        }
        let (op, names) = match ask {
            Ask::Shutdown => {
                out.push(Effect::Say(Level::Info, Msg::ShutdownRequested(uid)));
                self.exit.record_signal();
                self.begin_shutdown(now, out);
                return Ok(());
            }
            Ask::Services { op, names } => (op, names),
        };
        let idx = self.resolve(&names)?;
        if let Op::Signal(_) = op
            && let Some(&i) = idx.iter().find(|&&i| self.services[i].run_pid().is_none())
        {
            return Err(Refusal::NotRunning(self.services[i].label.to_string()));
        }
        for i in idx {
            self.service(i, Ev::Request(op.clone(), uid), now, out);
        }
        Ok(())
    }

    /// Service indices for names (all of them for none); an unknown name fails the request.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<usize>, Refusal> {
        if names.is_empty() {
            return Ok((0..self.services.len()).collect());
        }
        names
            .iter()
            .map(|n| {
                self.services
                    .iter()
                    .position(|s| s.def.name == n.as_bytes())
                    .ok_or_else(|| Refusal::UnknownService(n.clone()))
            })
            .collect()
    }

    // ---- orphans ----------------------------------------------------------------------

    /// Asks for an orphan scan at `at` (or earlier, if one is already due earlier).
    fn want_scan(&mut self, at: Instant, out: &mut Vec<Effect>) {
        if self.phase != Phase::Done && self.scans.want(at) {
            out.push(Effect::Arm(at, Timer::OrphanScan));
        }
    }

    // ---- shutdown -----------------------------------------------------------------------

    fn begin_shutdown(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.stopping() {
            return;
        }
        self.phase = Phase::Stopping { since: now };
        for i in 0..self.services.len() {
            self.service(i, Ev::Stop, now, out);
        }
        for (pid, p) in self.procs.iter() {
            if let Role::Adopted(o, _) = &p.role {
                out.push(Effect::Say(Level::Info, Msg::OrphanTerminating(o.clone())));
                out.push(Effect::Say(Level::Info, Msg::OrphanSigterm(o.clone())));
                out.push(Effect::Terminate(pid));
            }
        }
        if let Some(t) = self.cfg.stop_timeout {
            out.push(Effect::Arm(now + t, Timer::StopTimeout));
        }
        // Orphans are looked for at once, then every 100 ms, under every policy.
        self.want_scan(now, out);
    }

    /// `DINIT_STOP_TIMEOUT` passed: everything still alive gets SIGKILL, one warning each;
    /// what the killed leave behind gets the same when a scan finds it.
    fn stop_timeout(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let (Phase::Stopping { since } | Phase::Draining { since, .. }) = self.phase else {
            return;
        };
        for (pid, label) in self.everyone() {
            out.push(Effect::Say(Level::Warn, Msg::StopTimeoutKill(label, pid)));
            out.push(Effect::Kill(pid, Signal::SIGKILL));
        }
        self.phase = Phase::Killing { since };
        self.want_scan(now, out);
    }

    /// Every process dinit waits for, with its label, by pid.
    fn everyone(&self) -> Vec<(Pid, String)> {
        let mut all: Vec<(Pid, String)> = self
            .procs
            .iter()
            .map(|(pid, p)| (pid, self.label_of(pid, &p.role)))
            .collect();
        all.sort_by_key(|v| v.0);
        all
    }

    /// `<service>/<stage>` or `<name>/<pid>`.
    pub fn label_of(&self, pid: Pid, role: &Role) -> String {
        match role {
            Role::Service(i, stage) => format!("{}/{}", self.services[*i].label, stage.name()),
            Role::Orphan(o) | Role::Adopted(o, _) => {
                debug_assert_eq!(o.pid, pid);
                o.to_string()
            }
        }
    }

    /// Once per turn: moves the phase on when nothing is left to wait for.
    fn settle(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let ignore = self.cfg.policy == Policy::Ignore;
        let facts = Facts {
            active: self.services.iter().any(Service::active)
                || self.procs.any(|r| matches!(r, Role::Adopted(..))),
            policy: self.cfg.policy,
            children: self.children,
            last_scan: self.scans.last,
            saw: self.scans.last_saw,
            waiting: self
                .procs
                .any(|r| !(ignore && matches!(r, Role::Orphan(_)))),
            services: self
                .procs
                .any(|r| matches!(r, Role::Service(..) | Role::Adopted(..))),
        };
        match shutdown::settle(&mut self.phase, &facts, now) {
            Next::Stay => {}
            Next::AllFinished => {
                out.push(Effect::Say(Level::Info, Msg::AllFinished));
                self.begin_shutdown(now, out);
            }
            Next::Scan => self.want_scan(now, out),
            Next::Reap => out.push(Effect::Reap),
            Next::Drained => {
                // A little after the orphans terminated as the last service ended have had
                // their own DINIT_KILL_TIMEOUT (their SIGKILL comes first, and says so).
                let at = now + self.cfg.kill_timeout + DRAIN_SLACK;
                out.push(Effect::Arm(at, Timer::Drained));
                self.want_scan(now, out);
            }
            Next::Done => {
                out.push(Effect::Wind);
                if let Some(e) = self.first_error.take() {
                    out.push(Effect::Say(Level::Error, Msg::Exiting(e)));
                }
                out.push(Effect::Say(Level::Info, Msg::ExitStatus(self.exit.get())));
            }
        }
    }
}
