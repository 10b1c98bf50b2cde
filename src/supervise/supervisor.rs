//! The control path: what happens when a process ends, a signal comes, a deadline passes.
//!
//! Each service's processes are state enums with their data in the variant; every event goes
//! through one handler that moves them and does what follows (spawn `finish`, arm a kill
//! deadline, enter shutdown). Shutdown is a phase of the same machine, not a second code path:
//! a stop on request (`dinit down`) and a stop at shutdown run the same `stop_service`.

use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::{Config, Policy};
use crate::control::protocol::{self, Request};
use crate::control::server::{Control, Incoming};
use crate::error::{Error, errno_text};
use crate::output::pipes::{Counts, Pipes};
use crate::output::record::Source;
use crate::output::{Output, Stream};
use crate::signals::{self, Meaning};
use crate::supervise::adopt::{self, AdoptError};
use crate::supervise::exit::{self, DISABLED, Exit, ExitCode, Kind};
use crate::supervise::orphans;
use crate::supervise::proctab::{ProcTab, Role};
use crate::supervise::reaper::{self, Children, Reaped};
use crate::supervise::scan::ServiceDef;
use crate::supervise::spawn::{self, ExecStatus, Input, Spec, StdoutTo};
use crate::timers::Timers;
use crate::{error, info, info_after_stdout, warn};

/// How long a logger's end waits for its `run` to end too before it stops the container.
const LOGGER_GRACE: Duration = Duration::from_millis(10);
/// Orphan scan period, and during shutdown.
const SCAN_PERIOD: Duration = Duration::from_secs(1);
const SCAN_PERIOD_STOPPING: Duration = Duration::from_millis(100);
/// An orphan younger than this may not have exec'd yet: look again later.
const ORPHAN_MATURITY: Duration = Duration::from_millis(10);
/// SIGCHLD asks for a scan, but not more often than this (a fork storm sends thousands).
const SCAN_MIN_INTERVAL: Duration = Duration::from_millis(10);
/// How often an adopted process's output is captured again (see `recapture`).
const MAX_CAPTURES: u8 = 3;
/// Reaped orphans named one by one, per second; past that a burst is summed up in one line.
const NAMED_REAPS_PER_SEC: f64 = 10.0;
/// Children reaped per turn of the loop, so that a fork storm cannot starve the pipes.
const REAPS_PER_TURN: usize = 1024;
/// "No scan wanted" (ignore policy outside shutdown).
const NEVER: Duration = Duration::from_secs(100 * 365 * 86400);

/// Why a service's `run` is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Never started: runit's `down` file.
    DownFile,
    /// Could not be started.
    Failed,
    /// Ended; `Code(115)` means it disabled itself.
    Exited(Exit),
    /// Stopped on request (`dinit down`): its end did not stop the container.
    Requested(Exit),
}

/// A change an operator asked for that waits for `run` (and `finish`) to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    None,
    /// Stay down once ended.
    Down,
    /// Start again once ended.
    Restart,
}

/// The pipe from `run`'s stdout to the logger. dinit keeps both ends while the service may
/// still run: the write end so that the logger outlives a `dinit down`/`restart` of its
/// service, the read end so that a logger that dies cannot kill its service with SIGPIPE (the
/// shutdown that follows stops it cleanly).
struct LoggerPipe {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Down {
        why: Down,
        since: SystemTime,
    },
    Running {
        pid: Pid,
        since: SystemTime,
    },
    /// `run` ended with `exit`; its `finish` script runs.
    Finishing {
        pid: Pid,
        exit: Exit,
        since: SystemTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    None,
    Running { pid: Pid, since: SystemTime },
    Exited { exit: Exit, since: SystemTime },
}

pub struct Service {
    pub def: ServiceDef,
    pub label: String,
    pub run: RunState,
    pub log: LogState,
    /// The `terminate` script, while it runs.
    pub term: Option<Pid>,
    pub pending: Pending,
    /// How `run` ended last time.
    pub last_exit: Option<Exit>,
    logger_pipe: Option<LoggerPipe>,
    src_run: Rc<Source>,
    pub counts: [Rc<Cell<Counts>>; 2],
}

impl Service {
    fn new(def: ServiceDef) -> Service {
        let src_run = Rc::new(Source::new(&def.name, "run"));
        Service {
            label: def.display(),
            def,
            run: RunState::Down {
                why: Down::Failed,
                since: SystemTime::now(),
            },
            log: LogState::None,
            term: None,
            pending: Pending::None,
            last_exit: None,
            logger_pipe: None,
            src_run,
            counts: Default::default(),
        }
    }

    fn run_pid(&self) -> Option<Pid> {
        match self.run {
            RunState::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Keeps dinit running: `run` or `finish` alive, a logger still running, or stopped on
    /// request (an operator may start it again).
    fn active(&self) -> bool {
        !matches!(
            self.run,
            RunState::Down {
                why: Down::Exited(_) | Down::Failed | Down::DownFile,
                ..
            }
        ) || matches!(self.log, LogState::Running { .. })
    }

    /// Lets the logger see EOF once `run` and its descendants are gone.
    fn release_logger_input(&mut self) {
        if let Some(p) = &mut self.logger_pipe {
            p.write = None;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Stopping {
        since: Instant,
    },
    /// Nothing left to wait for: output is being written out, then dinit exits.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    LoggerGrace(usize),
    FinishKill(usize, Pid),
    OrphanKill(Pid),
    OrphanScan,
    StopTimeout,
    ReapSummary,
}

pub struct Supervisor {
    cfg: Config,
    pub control: Control,
    pub out: Output,
    pub pipes: Pipes,
    registry: Registry,
    pub services: Vec<Service>,
    procs: ProcTab,
    /// Exec-status pipes being watched: token -> pid.
    exec_tokens: HashMap<Token, Pid>,
    timers: Timers<Timer>,
    exit: ExitCode,
    /// The first failure of dinit itself, repeated as the last error line (`exiting: ...`).
    first_error: Option<String>,
    pub phase: Phase,
    children: Children,
    /// When the next orphan scan is due, and when the last one ran.
    next_scan: Instant,
    last_scan: Instant,
    /// The last scan saw orphans too young to handle yet.
    orphans_pending: bool,
    /// Since when no service keeps dinit running (under `adopt`, orphans may still be adopted).
    idle_since: Option<Instant>,
    /// `DINIT_STOP_TIMEOUT` expired: whatever is found from now on gets SIGKILL.
    stop_expired: bool,
    /// Adopted processes whose output dinit captures: how many times it did.
    captures: HashMap<Pid, u8>,
    pub started: SystemTime,
    reaped: Vec<Reaped>,
    /// Reaping stopped at its per-turn limit: go on at once on the next turn.
    reap_again: bool,
    /// Token bucket for naming reaped orphans, refilled at `NAMED_REAPS_PER_SEC`.
    name_tokens: f64,
    name_refill: Instant,
    /// Orphans reaped without a line of their own since the last summary.
    unnamed_reaps: u64,
    summary_armed: bool,
}

impl Supervisor {
    pub fn new(
        cfg: Config,
        control: Control,
        out: Output,
        pipes: Pipes,
        registry: Registry,
    ) -> Supervisor {
        Supervisor {
            cfg,
            control,
            out,
            pipes,
            registry,
            services: Vec::new(),
            procs: ProcTab::default(),
            exec_tokens: HashMap::new(),
            timers: Timers::default(),
            exit: ExitCode::default(),
            first_error: None,
            phase: Phase::Running,
            children: Children::Some,
            next_scan: Instant::now() + NEVER,
            last_scan: Instant::now(),
            orphans_pending: false,
            idle_since: None,
            stop_expired: false,
            captures: HashMap::new(),
            started: SystemTime::now(),
            reaped: Vec::new(),
            reap_again: false,
            name_tokens: NAMED_REAPS_PER_SEC,
            name_refill: Instant::now(),
            unnamed_reaps: 0,
            summary_armed: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stopping(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Starts every service of the listing; `scan_error` (the entry that ended the listing) and
    /// start failures stop the container once everything listed was started, as tozd/dinit does.
    pub fn start(&mut self, defs: Vec<ServiceDef>, scan_error: Option<Error>) {
        let now = Instant::now();
        if self.cfg.policy != Policy::Ignore {
            self.want_scan(now + SCAN_PERIOD);
        }
        if defs.iter().all(|d| d.down) && scan_error.is_none() {
            for d in &defs {
                info!(
                    self.out,
                    "{}/run: not starting: down file present",
                    d.display()
                );
            }
            warn!(self.out, "no services found, exiting");
            self.begin_shutdown();
            return;
        }
        self.services = defs.into_iter().map(Service::new).collect();
        for i in 0..self.services.len() {
            self.start_service(i, false);
        }
        if let Some(e) = scan_error {
            self.fatal(e.to_string());
        }
        if self.first_error.is_some() {
            self.begin_shutdown();
        }
    }

    /// dinit itself failed: exit code 1; the first failure is the final `exiting:` line, later
    /// ones are printed as they happen.
    fn fatal(&mut self, msg: String) {
        self.exit.record(exit::DINIT_FAILED);
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        } else {
            error!(self.out, "{msg}");
        }
    }

    /// Starts service `i`'s `run`; `forced`: on request, whatever its `down` file says.
    fn start_service(&mut self, i: usize, forced: bool) {
        let s = &mut self.services[i];
        if s.def.down && !forced {
            info!(self.out, "{}/run: not starting: down file present", s.label);
            s.run = RunState::Down {
                why: Down::DownFile,
                since: SystemTime::now(),
            };
            return;
        }
        info!(self.out, "{}/run: starting", s.label);
        let stdout = if s.def.has_logger {
            if s.logger_pipe.as_ref().is_none_or(|p| p.write.is_none()) {
                match spawn::pipe() {
                    Ok((read, write)) => {
                        s.logger_pipe = Some(LoggerPipe {
                            read,
                            write: Some(write),
                        })
                    }
                    Err(e) => {
                        let msg = format!("{}/log: pipe: {}", s.label, errno_text(e));
                        self.fatal(msg);
                        return;
                    }
                }
            }
            match s
                .logger_pipe
                .as_ref()
                .and_then(|p| p.write.as_ref())
                .map(|w| w.try_clone())
            {
                Some(Ok(w)) => StdoutTo::Fd(w),
                _ => StdoutTo::Pipe,
            }
        } else {
            StdoutTo::Pipe
        };
        let (run_path, dir) = (s.def.run_path(), s.def.dir.clone());
        let spec = Spec {
            program: &run_path,
            args: &[],
            cwd: &dir,
            stdin: Input::Null,
            stdout,
            env: &[],
        };
        let src = s.src_run.clone();
        match self.spawn_proc(Role::Run(i), spec, &src, &src, i) {
            // The logger starts once `run` is known to have started (`exec_started`).
            Ok(pid) => {
                self.services[i].run = RunState::Running {
                    pid,
                    since: SystemTime::now(),
                }
            }
            Err(e) => {
                self.fatal(Error::path(None, &run_path, e).to_string());
                self.services[i].run = RunState::Down {
                    why: Down::Failed,
                    since: SystemTime::now(),
                };
            }
        }
    }

    /// Starts service `i`'s logger on the read end of its `run`'s stdout pipe.
    fn start_logger(&mut self, i: usize) {
        let s = &self.services[i];
        if matches!(s.log, LogState::Running { .. }) {
            return; // still there from before a restart
        }
        let Some(pipe) = &s.logger_pipe else { return };
        info!(self.out, "{}/log: starting", s.label);
        let (log_run, log_dir) = (s.def.log_run_path(), s.def.log_dir());
        let stdin = match pipe.read.try_clone() {
            Ok(fd) => Input::Fd(fd),
            Err(e) => return self.logger_failed(i, Error::path(None, &log_run, &e)),
        };
        let spec = Spec {
            program: &log_run,
            args: &[],
            cwd: &log_dir,
            stdin,
            stdout: StdoutTo::Pipe,
            env: &[],
        };
        let (out_src, err_src) = (s.src_run.clone(), Rc::new(Source::new(&s.def.name, "log")));
        match self.spawn_proc(Role::Log(i), spec, &out_src, &err_src, i) {
            Ok(pid) => {
                self.services[i].log = LogState::Running {
                    pid,
                    since: SystemTime::now(),
                }
            }
            Err(e) => self.logger_failed(i, Error::path(None, &log_run, e)),
        }
    }

    fn logger_failed(&mut self, i: usize, e: Error) {
        error!(
            self.out,
            "{}/log: error running: {e}", self.services[i].label
        );
        self.services[i].logger_pipe = None;
        self.fatal(e.to_string());
        self.begin_shutdown();
    }

    /// Forks a program for `role`, watches its pipes and its exec status.
    fn spawn_proc(
        &mut self,
        role: Role,
        spec: Spec<'_>,
        out_src: &Rc<Source>,
        err_src: &Rc<Source>,
        svc: usize,
    ) -> Result<Pid, Errno> {
        let child = spawn::spawn(spec)?;
        let pid = child.pid;
        let tokens = self.watch(child.stdout, child.stderr, out_src, err_src, svc);
        let token = crate::event_loop::new_token();
        let fd = child.exec_status;
        let watched = self
            .registry
            .register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
            .is_ok();
        if watched {
            self.exec_tokens.insert(token, pid);
        }
        self.procs.insert(pid, role, tokens, Some((token, fd)));
        if !watched {
            // Cannot wait for it on the poll: learn it now (this blocks only until the exec).
            self.settle_exec(pid, true);
        }
        Ok(pid)
    }

    /// A readiness event for a token the pipes do not know: an exec-status pipe or a control
    /// connection (unknown tokens are ignored: spurious events happen).
    pub fn on_token(&mut self, token: Token) {
        if let Some(pid) = self.exec_tokens.get(&token).copied() {
            self.settle_exec(pid, false);
        } else if self.control.owns(token) {
            let mut requests = Vec::new();
            self.control.on_ready(token, &self.registry, &mut requests);
            for Incoming { uid, request, .. } in requests {
                let response = match request {
                    Ok(r) => self.request(r, uid),
                    Err(e) => protocol::error(&e),
                };
                self.control.respond(token, &response);
            }
            self.control.flush(token, &self.registry);
        }
    }

    pub fn on_control_listener(&mut self) {
        self.control.accept(&self.registry);
    }

    /// Reads `pid`'s exec status if it is known (`wait`: it must be, the child is gone or must
    /// be waited for) and acts on it.
    fn settle_exec(&mut self, pid: Pid, wait: bool) {
        let Some(proc) = self.procs.get_mut(pid) else {
            return;
        };
        let Some((token, fd)) = &proc.exec else {
            return;
        };
        let status = if wait {
            let _ = crate::output::pipes::set_blocking(fd);
            spawn::read_exec_status(fd)
        } else {
            spawn::read_exec_status(fd)
        };
        if status == ExecStatus::Pending {
            return;
        }
        let token = *token;
        if let Some((_, fd)) = proc.exec.take() {
            let _ = self.registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        self.exec_tokens.remove(&token);
        match status {
            ExecStatus::Started => self.exec_started(pid),
            ExecStatus::Failed(e) => self.exec_failed(pid, e),
            ExecStatus::Pending => {}
        }
    }

    fn exec_started(&mut self, pid: Pid) {
        let Some(role) = self.procs.get(pid).map(|p| p.role.clone()) else {
            return;
        };
        let (i, stage) = match role {
            Role::Run(i) => (i, "run"),
            Role::Log(i) => (i, "log"),
            Role::Term(i) => (i, "term"),
            Role::Finish(i) => (i, "finish"),
            _ => return,
        };
        info!(
            self.out,
            "{}/{stage}: running with PID {pid}", self.services[i].label
        );
        if role == Role::Run(i) {
            self.start_logger(i);
        }
    }

    fn exec_failed(&mut self, pid: Pid, e: Errno) {
        let Some(proc) = self.procs.get_mut(pid) else {
            return;
        };
        let role = std::mem::replace(&mut proc.role, Role::Stillborn);
        match role {
            Role::Run(i) => {
                let s = &mut self.services[i];
                s.run = RunState::Down {
                    why: Down::Failed,
                    since: SystemTime::now(),
                };
                s.logger_pipe = None;
                let msg = Error::path(None, s.def.run_path(), e).to_string();
                self.fatal(msg);
                self.begin_shutdown();
            }
            Role::Log(i) => {
                self.services[i].log = LogState::None;
                let path = self.services[i].def.log_run_path();
                self.logger_failed(i, Error::path(None, path, e));
            }
            Role::Term(i) => {
                self.services[i].term = None;
                let path = self.services[i].def.terminate_path();
                self.terminate_failed(i, Error::path(None, path, e));
            }
            Role::Finish(i) => {
                let path = self.services[i].def.finish_path();
                warn!(
                    self.out,
                    "{}/finish: error running: {}",
                    self.services[i].label,
                    Error::path(None, path, e)
                );
                if let RunState::Finishing { exit, .. } = self.services[i].run {
                    self.finished(i, exit);
                }
            }
            other => {
                if let Some(p) = self.procs.get_mut(pid) {
                    p.role = other;
                }
            }
        }
    }

    /// Registers a child's pipes; `svc` counts their lines for status.
    fn watch(
        &mut self,
        stdout: Option<OwnedFd>,
        stderr: OwnedFd,
        out_src: &Rc<Source>,
        err_src: &Rc<Source>,
        svc: usize,
    ) -> Vec<Token> {
        let counts = self.services.get(svc).map(|s| s.counts.clone());
        let mut tokens = Vec::with_capacity(2);
        let streams = [
            (stdout, Stream::Stdout, out_src),
            (Some(stderr), Stream::Stderr, err_src),
        ];
        for (n, (fd, stream, src)) in streams.into_iter().enumerate() {
            let Some(fd) = fd else { continue };
            let c = counts
                .as_ref()
                .map_or_else(Default::default, |c| c[n].clone());
            match self.pipes.add(
                &self.registry,
                crate::event_loop::new_token(),
                fd,
                stream,
                src.clone(),
                c,
            ) {
                Ok(t) => tokens.push(t),
                Err(e) => error!(
                    self.out,
                    "{}: cannot watch {}: {}",
                    String::from_utf8_lossy(src.label()),
                    stream.name(),
                    errno_text(crate::error::ErrnoOf::from(&e).0)
                ),
            }
        }
        tokens
    }

    // ---- events -------------------------------------------------------------------------

    pub fn on_signal(&mut self, sig: i32) {
        match signals::meaning(sig) {
            Some(Meaning::Shutdown) => {
                if self.stopping() {
                    info!(self.out, "got signal {sig}, already terminating services");
                } else {
                    info!(self.out, "got signal {sig}, terminating services");
                    self.exit.record(exit::OK);
                    self.begin_shutdown();
                }
            }
            Some(Meaning::Forward) => {
                info!(self.out, "got signal {sig}, forwarding to services");
                let Ok(signal) = Signal::try_from(sig) else {
                    return;
                };
                let targets: Vec<Pid> = self
                    .procs
                    .iter()
                    .filter(|(_, p)| matches!(p.role, Role::Run(_) | Role::Adopted { .. }))
                    .map(|(pid, _)| pid)
                    .collect();
                for pid in targets {
                    let _ = kill(pid, signal);
                }
            }
            Some(Meaning::Child) => {
                self.reap();
                if self.cfg.policy != Policy::Ignore || self.stopping() {
                    self.want_scan(Instant::now().max(self.last_scan + SCAN_MIN_INTERVAL));
                }
            }
            None => {}
        }
    }

    /// Collects every ended child and handles each end.
    pub fn reap(&mut self) {
        let now = Instant::now();
        let refill = now.duration_since(self.name_refill).as_secs_f64() * NAMED_REAPS_PER_SEC;
        self.name_tokens = (self.name_tokens + refill).min(NAMED_REAPS_PER_SEC);
        self.name_refill = now;
        let names = if self.out.enabled(crate::log::Level::Warn) {
            self.name_tokens as usize
        } else {
            0
        };
        let mut reaped = std::mem::take(&mut self.reaped);
        let procs = &self.procs;
        let left = reaper::reap(
            |pid| procs.contains(pid),
            names,
            REAPS_PER_TURN,
            &mut reaped,
        );
        self.reap_again = left == Children::More;
        if left != Children::More {
            self.children = left;
        }
        for r in reaped.drain(..) {
            if r.name.is_some() {
                self.name_tokens -= 1.0;
            }
            self.on_exit(r);
        }
        self.reaped = reaped;
        if self.unnamed_reaps > 0 && !self.summary_armed {
            self.summary_armed = true;
            self.timers
                .arm(now + Duration::from_secs(1), Timer::ReapSummary);
        }
    }

    /// Reaping has more to do than one turn allowed.
    pub fn reap_pending(&self) -> bool {
        self.reap_again
    }

    fn on_exit(&mut self, r: Reaped) {
        // Whether it ever ran decides what its end means: learn that first.
        self.settle_exec(r.pid, true);
        let Some(proc) = self.procs.remove(r.pid) else {
            // A reparented process that ended before dinit saw it alive.
            match r.name {
                Some(name) => {
                    warn!(
                        self.out,
                        "{name}/{pid}: reaping process with PID {pid}",
                        pid = r.pid
                    );
                    info!(
                        self.out,
                        "{name}/{pid}: PID {pid} finished {}",
                        r.exit,
                        pid = r.pid
                    );
                }
                None => self.unnamed_reaps += 1,
            }
            return;
        };
        // Its last lines first, then what its end means.
        for t in &proc.pipes {
            self.pipes.drain(*t, &self.registry, &mut self.out);
        }
        let (pid, exit) = (r.pid, r.exit);
        let stopping = self.stopping();
        match proc.role {
            Role::Run(i) => {
                info_after_stdout!(
                    self.out,
                    "{}/run: PID {pid} finished {exit}",
                    self.services[i].label
                );
                // A stop an operator asked for is not a failure.
                if self.services[i].pending == Pending::None {
                    self.record(Kind::Program, exit, stopping);
                }
                self.after_run(i, exit);
            }
            Role::Finish(i) => {
                info_after_stdout!(
                    self.out,
                    "{}/finish: PID {pid} finished {exit}",
                    self.services[i].label
                );
                if let RunState::Finishing { exit: run_exit, .. } = self.services[i].run {
                    self.finished(i, run_exit);
                }
            }
            Role::Log(i) => {
                let s = &mut self.services[i];
                info_after_stdout!(self.out, "{}/log: PID {pid} finished {exit}", s.label);
                s.log = LogState::Exited {
                    exit,
                    since: SystemTime::now(),
                };
                if matches!(s.run, RunState::Down { .. }) {
                    s.logger_pipe = None;
                } else if !stopping {
                    self.timers
                        .arm(Instant::now() + LOGGER_GRACE, Timer::LoggerGrace(i));
                }
                self.record(Kind::Program, exit, stopping);
            }
            Role::Term(i) => {
                info_after_stdout!(
                    self.out,
                    "{}/term: PID {pid} finished {exit}",
                    self.services[i].label
                );
                self.services[i].term = None;
                self.record(Kind::Terminate, exit, stopping);
            }
            Role::Orphan { name } => {
                info_after_stdout!(self.out, "{name}/{pid}: PID {pid} finished {exit}");
            }
            Role::Adopted { name } => {
                self.captures.remove(&pid);
                info_after_stdout!(self.out, "{name}/{pid}: PID {pid} finished {exit}");
                self.record(Kind::Program, exit, stopping);
                self.begin_shutdown();
            }
            Role::Stillborn => {}
        }
    }

    fn record(&mut self, kind: Kind, exit: Exit, stopping: bool) {
        if let Some(code) = exit::failure(kind, exit, stopping) {
            self.exit.record(code);
        }
    }

    /// `run` ended: its `finish` runs first (when there is one), then what the end means.
    fn after_run(&mut self, i: usize, exit: Exit) {
        self.services[i].last_exit = Some(exit);
        let s = &self.services[i];
        let finish = s.def.finish_path();
        if !spawn::exists(&finish) {
            return self.finished(i, exit);
        }
        let (args, dir) = (exit.finish_args(), s.def.dir.clone());
        let spec = Spec {
            program: &finish,
            args: &args,
            cwd: &dir,
            stdin: Input::Null,
            stdout: StdoutTo::Pipe,
            env: &[],
        };
        let src = Rc::new(Source::new(&s.def.name, "finish"));
        match self.spawn_proc(Role::Finish(i), spec, &src, &src, i) {
            Ok(pid) => {
                self.services[i].run = RunState::Finishing {
                    pid,
                    exit,
                    since: SystemTime::now(),
                };
                self.timers.arm(
                    Instant::now() + self.cfg.kill_timeout,
                    Timer::FinishKill(i, pid),
                );
            }
            Err(e) => {
                warn!(
                    self.out,
                    "{}/finish: error running: {}",
                    self.services[i].label,
                    Error::path(None, &finish, e)
                );
                self.finished(i, exit);
            }
        }
    }

    /// `run` (and its `finish`) are over.
    fn finished(&mut self, i: usize, exit: Exit) {
        let s = &mut self.services[i];
        let since = SystemTime::now();
        match std::mem::replace(&mut s.pending, Pending::None) {
            Pending::Down => {
                s.run = RunState::Down {
                    why: Down::Requested(exit),
                    since,
                }
            }
            Pending::Restart => {
                s.run = RunState::Down {
                    why: Down::Requested(exit),
                    since,
                };
                if !self.stopping() {
                    self.start_service(i, true);
                }
            }
            Pending::None => {
                s.run = RunState::Down {
                    why: Down::Exited(exit),
                    since,
                };
                s.release_logger_input();
                if !matches!(s.log, LogState::Running { .. }) {
                    s.logger_pipe = None;
                }
                if exit != Exit::Code(DISABLED) {
                    self.begin_shutdown();
                }
            }
        }
    }

    pub fn on_timers(&mut self, now: Instant) {
        self.control.expire(now, &self.registry);
        self.out.trim(now);
        while let Some(t) = self.timers.pop_expired(now) {
            match t {
                Timer::LoggerGrace(i) => {
                    if !self.stopping() && self.services[i].run_pid().is_some() {
                        self.begin_shutdown();
                    }
                }
                Timer::FinishKill(i, pid) => {
                    if matches!(self.services[i].run, RunState::Finishing { pid: p, .. } if p == pid)
                    {
                        info!(
                            self.out,
                            "{}/finish: sending SIGKILL to PID {pid}", self.services[i].label
                        );
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                }
                Timer::OrphanKill(pid) => {
                    if let Some(Role::Orphan { name }) = self.procs.get(pid).map(|p| &p.role) {
                        info!(self.out, "{name}/{pid}: sending SIGKILL to PID {pid}");
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                }
                Timer::OrphanScan => {
                    if now >= self.next_scan {
                        self.scan_orphans(now);
                    }
                }
                Timer::StopTimeout => self.stop_timeout(),
                Timer::ReapSummary => {
                    self.summary_armed = false;
                    let n = std::mem::take(&mut self.unnamed_reaps);
                    if n > 0 {
                        warn!(
                            self.out,
                            "reaped {n} more reparented processes (too many at once to name each)"
                        );
                    }
                }
            }
        }
    }

    /// `DINIT_STOP_TIMEOUT` passed: everything still alive gets SIGKILL, one warning each.
    fn stop_timeout(&mut self) {
        let mut victims: Vec<(Pid, String)> = self
            .procs
            .iter()
            .map(|(pid, p)| (pid, self.label_of(pid, &p.role)))
            .collect();
        victims.sort_by_key(|v| v.0);
        for (pid, label) in victims {
            warn!(
                self.out,
                "{label}: stop timeout expired, sending SIGKILL to PID {pid}"
            );
            let _ = kill(pid, Signal::SIGKILL);
        }
        // What the killed leave behind is reparented to dinit and gets the same (`scan_orphans`).
        self.stop_expired = true;
        self.want_scan(Instant::now());
    }

    fn label_of(&self, pid: Pid, role: &Role) -> String {
        match role {
            Role::Run(i) => format!("{}/run", self.services[*i].label),
            Role::Log(i) => format!("{}/log", self.services[*i].label),
            Role::Term(i) => format!("{}/term", self.services[*i].label),
            Role::Finish(i) => format!("{}/finish", self.services[*i].label),
            Role::Orphan { name } | Role::Adopted { name } => format!("{name}/{pid}"),
            Role::Stillborn => format!("unknown/{pid}"),
        }
    }

    // ---- shutdown -------------------------------------------------------------------------

    pub fn begin_shutdown(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let now = Instant::now();
        self.phase = Phase::Stopping { since: now };
        for i in 0..self.services.len() {
            self.services[i].release_logger_input();
            self.stop_service(i);
        }
        let adopted: Vec<(Pid, String)> = self
            .procs
            .iter()
            .filter_map(|(pid, p)| match &p.role {
                Role::Adopted { name } => Some((pid, name.clone())),
                _ => None,
            })
            .collect();
        for (pid, name) in adopted {
            info!(self.out, "{name}/{pid}: terminating");
            info!(self.out, "{name}/{pid}: sending SIGTERM to PID {pid}");
            let _ = terminate(pid);
        }
        if let Some(t) = self.cfg.stop_timeout {
            self.timers.arm(now + t, Timer::StopTimeout);
        }
        // Orphans are looked for at once, then every 100 ms, under every policy.
        self.want_scan(now);
    }

    /// Stops service `i`'s `run` if it is alive: its `terminate` script, else SIGTERM.
    fn stop_service(&mut self, i: usize) {
        let s = &self.services[i];
        let Some(pid) = s.run_pid() else { return };
        info!(self.out, "{}/run: terminating", s.label);
        let term = s.def.terminate_path();
        if !spawn::exists(&term) {
            return self.send_term(i, pid);
        }
        let (env, dir) = ([("DINIT_PID", pid.to_string())], s.def.dir.clone());
        let spec = Spec {
            program: &term,
            args: &[],
            cwd: &dir,
            stdin: Input::Null,
            stdout: StdoutTo::Pipe,
            env: &env,
        };
        let src = Rc::new(Source::new(&s.def.name, "term"));
        match self.spawn_proc(Role::Term(i), spec, &src, &src, i) {
            Ok(tpid) => self.services[i].term = Some(tpid),
            Err(e) => self.terminate_failed(i, Error::path(None, &term, e)),
        }
    }

    /// A `terminate` that exists but cannot run: say so, count it, and fall back to SIGTERM
    /// rather than wait for a service nobody asked to stop (tozd/dinit hangs there).
    fn terminate_failed(&mut self, i: usize, e: Error) {
        error!(
            self.out,
            "{}/term: error running: {e}", self.services[i].label
        );
        self.exit.record(exit::DINIT_FAILED);
        if let Some(pid) = self.services[i].run_pid() {
            self.send_term(i, pid);
        }
    }

    fn send_term(&mut self, i: usize, pid: Pid) {
        let label = &self.services[i].label;
        info!(self.out, "{label}/run: sending SIGTERM to PID {pid}");
        if let Err(e) = terminate(pid)
            && e != Errno::ESRCH
        {
            warn!(
                self.out,
                "{label}/run: cannot send SIGTERM to PID {pid}: {}",
                errno_text(e)
            );
        }
    }

    // ---- orphans --------------------------------------------------------------------------

    /// Asks for an orphan scan at `at` (or earlier, if one is already due earlier).
    fn want_scan(&mut self, at: Instant) {
        if at < self.next_scan && self.phase != Phase::Done {
            self.next_scan = at;
            self.timers.arm(at, Timer::OrphanScan);
        }
    }

    /// Looks for living children dinit did not start and applies the policy to the mature ones.
    fn scan_orphans(&mut self, now: Instant) {
        self.last_scan = now;
        self.next_scan = now + NEVER;
        if self.phase == Phase::Done {
            return;
        }
        if self.stopping() {
            self.want_scan(now + SCAN_PERIOD_STOPPING);
        } else if self.cfg.policy != Policy::Ignore {
            self.want_scan(now + SCAN_PERIOD);
        }
        if !self.stopping() && !self.captures.is_empty() {
            self.recapture();
        }
        let me = std::process::id();
        let Ok(list) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) else {
            return;
        };
        let mut immature = false;
        for pid in list
            .split_ascii_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .map(Pid::from_raw)
        {
            if self.procs.contains(pid) {
                continue;
            }
            let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(info) = ProcStat::parse(&stat) else {
                continue;
            };
            if info.state == b'Z' {
                continue; // the reaper takes it
            }
            if self.stop_expired {
                let name = orphans::name_from(
                    &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
                    &stat,
                );
                warn!(
                    self.out,
                    "{name}/{pid}: stop timeout expired, sending SIGKILL to PID {pid}"
                );
                let _ = kill(pid, Signal::SIGKILL);
                self.procs
                    .insert(pid, Role::Orphan { name }, Vec::new(), None);
                continue;
            }
            if info.age().is_some_and(|age| age < ORPHAN_MATURITY) {
                immature = true;
                continue;
            }
            let policy = if self.stopping() {
                Policy::Terminate
            } else {
                self.cfg.policy
            };
            if policy == Policy::Ignore {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let name = orphans::name_from(&cmdline, &stat);
            let text = orphans::cmdline_text(&cmdline);
            let sep = if text.is_empty() { "" } else { ": " };
            if policy == Policy::Adopt {
                warn!(
                    self.out,
                    "{name}/{pid}: adopting reparented child process with PID {pid}{sep}{text}"
                );
                self.adopt(pid, name);
                continue;
            }
            warn!(
                self.out,
                "{name}/{pid}: terminating reparented child process with PID {pid}{sep}{text}"
            );
            info!(self.out, "{name}/{pid}: sending SIGTERM to PID {pid}");
            let _ = terminate(pid);
            self.procs
                .insert(pid, Role::Orphan { name }, Vec::new(), None);
            self.timers.arm(
                Instant::now() + self.cfg.kill_timeout,
                Timer::OrphanKill(pid),
            );
        }
        self.orphans_pending = immature;
        if immature {
            self.want_scan(now + ORPHAN_MATURITY);
        }
    }

    /// Tracks `pid` like a service, its output captured as `<name>/<pid>` when ptrace allows.
    fn adopt(&mut self, pid: Pid, name: String) {
        let mut tokens = Vec::new();
        match self.capture(pid, &name) {
            Ok(t) => tokens = t,
            Err(AdoptError::Gone(ws)) => {
                info!(
                    self.out,
                    "{name}/{pid}: PID {pid} finished before adopting complete"
                );
                self.procs
                    .insert(pid, Role::Adopted { name }, Vec::new(), None);
                if let Some(exit) = Exit::from_wait(ws) {
                    self.on_exit(Reaped {
                        pid,
                        exit,
                        name: None,
                    });
                }
                return;
            }
            Err(e) => warn!(
                self.out,
                "{name}/{pid}: error redirecting stdout and stderr: {e}"
            ),
        }
        self.procs.insert(pid, Role::Adopted { name }, tokens, None);
    }

    /// Redirects `pid`'s stdout and stderr into new pipes watched as `<name>/<pid>`.
    fn capture(&mut self, pid: Pid, name: &str) -> Result<Vec<Token>, AdoptError> {
        let pipe = || {
            spawn::pipe().map_err(|errno| AdoptError::Step {
                step: "pipe",
                errno,
            })
        };
        let ((out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?);
        adopt::redirect(pid, &out_w, &err_w)?;
        *self.captures.entry(pid).or_insert(0) += 1;
        let src = Rc::new(Source::new(name.as_bytes(), &pid.to_string()));
        Ok(self.watch(Some(out_r), err_r, &src, &src, usize::MAX))
    }

    /// An adopted daemon may finish daemonizing (stdout to /dev/null) only after dinit took
    /// it over, throwing the captured pipe away: capture it again, a few times at most.
    fn recapture(&mut self) {
        let lost: Vec<(Pid, String)> = self
            .procs
            .iter()
            .filter_map(|(pid, p)| match &p.role {
                Role::Adopted { name } => Some((pid, name.clone())),
                _ => None,
            })
            .filter(|(pid, _)| self.captures.get(pid).is_some_and(|n| *n < MAX_CAPTURES))
            .filter(|(pid, _)| adopt::stdout_dropped(*pid))
            .collect();
        for (pid, name) in lost {
            info!(
                self.out,
                "{name}/{pid}: stdout moved to a device after adoption, redirecting again"
            );
            match self.capture(pid, &name) {
                Ok(tokens) => {
                    if let Some(p) = self.procs.get_mut(pid) {
                        p.pipes.extend(tokens);
                    }
                }
                Err(AdoptError::Gone(ws)) => {
                    if let Some(exit) = Exit::from_wait(ws) {
                        self.on_exit(Reaped {
                            pid,
                            exit,
                            name: None,
                        });
                    }
                }
                Err(e) => {
                    self.captures.remove(&pid);
                    warn!(
                        self.out,
                        "{name}/{pid}: error redirecting stdout and stderr: {e}"
                    );
                }
            }
        }
    }

    // ---- the end --------------------------------------------------------------------------

    /// Moves the phases forward once per turn of the loop. Returns the exit code once everything
    /// is over and written.
    pub fn progress(&mut self) -> Option<u8> {
        if self.phase == Phase::Running
            && !self.services.iter().any(Service::active)
            && !self.procs.any(|r| matches!(r, Role::Adopted { .. }))
        {
            if self.nothing_to_adopt() {
                info!(self.out, "all services finished, exiting");
                self.begin_shutdown();
            }
        } else {
            self.idle_since = None;
        }
        let Phase::Stopping { since } = self.phase else {
            return (self.phase == Phase::Done && self.out.is_drained()).then(|| self.exit.get());
        };
        // Under `ignore`, orphans that the shutdown terminates are not waited for.
        let ignore = self.cfg.policy == Policy::Ignore;
        let waiting = self
            .procs
            .any(|r| !(ignore && matches!(r, Role::Orphan { .. })));
        if !waiting && self.children != Children::None {
            // Without a SIGCHLD (nothing was ever started) only asking tells there is no child.
            self.reap();
        }
        // Every policy terminates the orphans found at shutdown: one scan at least after it began.
        let scanned = self.last_scan >= since;
        if !waiting && scanned && (ignore || self.children == Children::None) {
            self.phase = Phase::Done;
            self.pipes.drain_all(&self.registry, &mut self.out);
            if let Some(e) = self.first_error.take() {
                error!(self.out, "exiting: {e}");
            }
            self.control.remove();
            info!(self.out, "dinit exiting with status {}", self.exit.get());
        }
        (self.phase == Phase::Done && self.out.is_drained()).then(|| self.exit.get())
    }

    /// Under `adopt`, a service that started a daemon and exited 115 leaves it to be adopted:
    /// before "nothing is left", one scan must have looked at every orphan, old enough to be
    /// named (the 10 ms rule), since the last service ended.
    fn nothing_to_adopt(&mut self) -> bool {
        if self.cfg.policy != Policy::Adopt {
            return true;
        }
        if self.children != Children::None {
            self.reap();
        }
        if self.children == Children::None {
            return true;
        }
        let now = Instant::now();
        let since = *self.idle_since.get_or_insert(now);
        if self.last_scan < since {
            self.want_scan(now);
            return false;
        }
        !self.orphans_pending
    }

    /// The poll timeout: the earliest deadline, or at once when work is waiting.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.reap_again {
            return Some(Duration::ZERO);
        }
        let t = [self.control.next_deadline(), self.out.trim_deadline()]
            .into_iter()
            .flatten()
            .map(|d| d.saturating_duration_since(now))
            .chain(self.timers.timeout(now))
            .min();
        if self.out.wants_retry() {
            return Some(t.map_or(Duration::from_millis(10), |t| {
                t.min(Duration::from_millis(10))
            }));
        }
        t
    }
}

// ---- control requests ---------------------------------------------------------------------

impl Supervisor {
    /// Carries out one control request; returns the response line.
    fn request(&mut self, req: Request, uid: u32) -> String {
        let result = match req {
            Request::Status { services } | Request::Check { services } => self.status(&services),
            _ if uid != 0 && uid != nix::unistd::getuid().as_raw() => {
                Err("permission denied".to_owned())
            }
            _ if self.stopping() => Err("dinit is stopping".to_owned()),
            Request::Shutdown => {
                info!(self.out, "shutdown requested by uid {uid}");
                self.exit.record(exit::OK);
                self.begin_shutdown();
                Ok(serde_json::Map::new())
            }
            Request::Up { ref services }
            | Request::Down { ref services }
            | Request::Restart { ref services }
            | Request::Signal { ref services, .. } => self.change(&req, services, uid),
        };
        match result {
            Ok(m) => protocol::ok(m),
            Err(e) => protocol::error(&e),
        }
    }

    /// Service indices for names (all of them for none); an unknown name fails the request.
    fn resolve(&self, names: &[String]) -> Result<Vec<usize>, String> {
        if names.is_empty() {
            return Ok((0..self.services.len()).collect());
        }
        names
            .iter()
            .map(|n| {
                self.services
                    .iter()
                    .position(|s| s.def.name == n.as_bytes())
                    .ok_or_else(|| format!("unknown service: {n}"))
            })
            .collect()
    }

    fn change(
        &mut self,
        req: &Request,
        names: &[String],
        uid: u32,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let idx = self.resolve(names)?;
        if let Request::Signal { .. } = req
            && let Some(&i) = idx.iter().find(|&&i| self.services[i].run_pid().is_none())
        {
            return Err(format!("{}: not running", self.services[i].label));
        }
        for i in idx {
            let s = &self.services[i];
            let action = decide(req, s.run, s.pending);
            if action == Action::Nothing {
                continue; // already where it was asked to be: no change, no line
            }
            info!(
                self.out,
                "{}/run: {} requested by uid {uid}",
                s.label,
                req.name()
            );
            match action {
                Action::Signal(pid, sig) => {
                    let _ = kill(pid, sig);
                }
                Action::Start => {
                    self.services[i].pending = Pending::None;
                    self.start_service(i, true);
                }
                Action::Then(pending) => self.services[i].pending = pending,
                Action::Stop(pending) => {
                    self.services[i].pending = pending;
                    self.stop_service(i);
                }
                Action::Nothing => {}
            }
        }
        Ok(serde_json::Map::new())
    }

    /// The status object (contract §11), for the named services or all.
    fn status(
        &self,
        names: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        use serde_json::{Value, json};
        let idx = self.resolve(names)?;
        let now = SystemTime::now();
        let secs = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs_f64();
        let stamp = |t: SystemTime| {
            let ms = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64;
            Value::String(
                String::from_utf8_lossy(&crate::output::clock::format_ms(ms)).into_owned(),
            )
        };
        let exit_json = |e: Option<Exit>| match e {
            Some(Exit::Code(c)) => json!({"code": c}),
            Some(Exit::Signal(s)) => json!({"signal": s}),
            None => Value::Null,
        };
        let services: Vec<Value> = idx
            .iter()
            .map(|&i| {
                let s = &self.services[i];
                let stopping = self.stopping() || s.pending != Pending::None;
                let (state, pid, since, reason) = match s.run {
                    RunState::Running { pid, since } => (if stopping { "stopping" } else { "running" }, Some(pid), since, None),
                    RunState::Finishing { pid, since, .. } => ("finishing", Some(pid), since, None),
                    RunState::Down { why, since } => {
                        let reason = match why {
                            Down::DownFile => "down_file",
                            Down::Failed => "failed",
                            Down::Exited(Exit::Code(DISABLED)) => "disabled",
                            Down::Exited(_) => "exited",
                            Down::Requested(_) => "requested",
                        };
                        ("down", None, since, Some(reason))
                    }
                };
                // Where an operator (or the shutdown) wants it, as runit's `want up|down`.
                let wants_down = match s.run {
                    _ if self.stopping() || s.pending == Pending::Down => true,
                    _ if s.pending == Pending::Restart => false,
                    RunState::Down { why, .. } => {
                        matches!(why, Down::DownFile | Down::Requested(_) | Down::Exited(Exit::Code(DISABLED)))
                    }
                    _ => false,
                };
                let log = match (s.def.has_logger, s.log) {
                    (false, _) => Value::Null,
                    (true, LogState::Running { pid, since }) => {
                        json!({"state": "running", "pid": pid.as_raw(), "since": stamp(since), "since_s": secs(since)})
                    }
                    (true, LogState::Exited { since, .. }) => {
                        json!({"state": "down", "pid": null, "since": stamp(since), "since_s": secs(since)})
                    }
                    (true, LogState::None) => {
                        json!({"state": "down", "pid": null, "since": stamp(self.started), "since_s": secs(self.started)})
                    }
                };
                let (out, err) = (s.counts[0].get(), s.counts[1].get());
                json!({
                    "name": s.label,
                    "dir": s.def.dir.to_string_lossy(),
                    "state": state,
                    "pid": pid.map(|p| p.as_raw()),
                    "since": stamp(since),
                    "since_s": secs(since),
                    "down_file": s.def.down,
                    "down_reason": reason,
                    "want": if wants_down { "down" } else { "up" },
                    "exit": exit_json(s.last_exit),
                    "log": log,
                    "lines": {"stdout": out.lines, "stderr": err.lines},
                    "bytes": {"stdout": out.bytes, "stderr": err.bytes},
                })
            })
            .collect();
        let orphans: Vec<Value> = self
            .procs
            .iter()
            .filter_map(|(pid, p)| match &p.role {
                Role::Orphan { name } => Some(json!({"name": format!("{name}/{pid}"), "pid": pid.as_raw(), "policy": "terminate"})),
                Role::Adopted { name } => Some(json!({"name": format!("{name}/{pid}"), "pid": pid.as_raw(), "policy": "adopt"})),
                _ => None,
            })
            .collect();
        let mut m = serde_json::Map::new();
        m.insert(
            "dinit".into(),
            json!({
                "pid": std::process::id(),
                "state": if self.stopping() { "stopping" } else { "running" },
                "uptime_s": secs(self.started),
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": protocol::VERSION,
            }),
        );
        m.insert("services".into(), Value::Array(services));
        m.insert("orphans".into(), Value::Array(orphans));
        Ok(m)
    }
}

/// What an operator's request does to a service in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Nothing,
    Signal(Pid, Signal),
    /// Start `run` now.
    Start,
    /// Stop `run` now, and then do this.
    Stop(Pending),
    /// Once `run` (and `finish`) ended, do this.
    Then(Pending),
}

/// `up`, `down`, `restart`, `signal` against `run`'s state and what is already pending. Pure.
fn decide(req: &Request, run: RunState, pending: Pending) -> Action {
    use {Pending as P, Request as R, RunState as S};
    match (req, run, pending) {
        (R::Signal { signal, .. }, S::Running { pid, .. }, _) => {
            Signal::try_from(*signal).map_or(Action::Nothing, |sig| Action::Signal(pid, sig))
        }
        (R::Up { .. } | R::Restart { .. }, S::Down { .. }, _) => Action::Start,
        // On its way down: bring it back once it is.
        (R::Up { .. }, S::Running { .. } | S::Finishing { .. }, P::Down) => {
            Action::Then(P::Restart)
        }
        (R::Restart { .. }, S::Finishing { .. }, P::None | P::Down) => Action::Then(P::Restart),
        (R::Down { .. }, S::Finishing { .. }, P::None | P::Restart) => Action::Then(P::Down),
        (R::Down { .. }, S::Running { .. }, P::None) => Action::Stop(P::Down),
        (R::Down { .. }, S::Running { .. }, P::Restart) => Action::Then(P::Down),
        (R::Restart { .. }, S::Running { .. }, P::None) => Action::Stop(P::Restart),
        (R::Restart { .. }, S::Running { .. }, P::Down) => Action::Then(P::Restart),
        _ => Action::Nothing,
    }
}

/// SIGTERM, then SIGCONT: a process that stopped itself (SIGSTOP) could not act on the TERM
/// and the stop would wait for it forever; runit's `sv down` does the same.
fn terminate(pid: Pid) -> nix::Result<()> {
    kill(pid, Signal::SIGTERM)?;
    let _ = kill(pid, Signal::SIGCONT);
    Ok(())
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, read once).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf with a constant name.
    *TICKS.get_or_init(|| (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64)
}

/// The fields of `/proc/<pid>/stat` the orphan rules need.
struct ProcStat {
    state: u8,
    /// Start time, clock ticks after boot (field 22).
    start_ticks: u64,
}

impl ProcStat {
    fn parse(stat: &[u8]) -> Option<ProcStat> {
        let close = stat.iter().rposition(|b| *b == b')')?;
        let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        // rest starts at field 3 (state); field 22 is at index 19.
        Some(ProcStat {
            state: *fields.first()?.as_bytes().first()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }

    /// At least how long ago the process started: field 22 counts clock ticks since boot, as
    /// CLOCK_BOOTTIME does (both shifted alike inside a time namespace). The kernel rounds the
    /// start down to a tick (10 ms), so the real start may be up to a tick later: counting
    /// from there keeps a process that is 1 ms old from looking 10 ms old.
    fn age(&self) -> Option<Duration> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
        let now = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32);
        Some(self.age_at(now, clock_ticks()))
    }

    /// [`ProcStat::age`] at boot time `now`, with `ticks` clock ticks a second.
    fn age_at(&self, now: Duration, ticks: u64) -> Duration {
        let latest_start = Duration::from_secs(self.start_ticks / ticks)
            + Duration::from_secs(self.start_ticks % ticks + 1) / ticks as u32;
        now.saturating_sub(latest_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Started in tick 100 (1.00 s at 100 ticks/s): really somewhere in 1.00..1.01 s, so at
    /// 1.005 s it may be brand new, and at 1.025 s it is at least 15 ms old.
    #[test]
    fn age_counts_from_the_latest_possible_start() {
        let p = ProcStat {
            state: b'S',
            start_ticks: 100,
        };
        assert_eq!(p.age_at(Duration::from_millis(1005), 100), Duration::ZERO);
        assert_eq!(
            p.age_at(Duration::from_millis(1025), 100),
            Duration::from_millis(15)
        );
    }

    fn running() -> RunState {
        RunState::Running {
            pid: Pid::from_raw(7),
            since: SystemTime::UNIX_EPOCH,
        }
    }
    fn finishing() -> RunState {
        RunState::Finishing {
            pid: Pid::from_raw(8),
            exit: Exit::Code(0),
            since: SystemTime::UNIX_EPOCH,
        }
    }
    fn down() -> RunState {
        RunState::Down {
            why: Down::DownFile,
            since: SystemTime::UNIX_EPOCH,
        }
    }
    fn req(name: &str) -> Request {
        let services = vec!["x".to_owned()];
        match name {
            "up" => Request::Up { services },
            "down" => Request::Down { services },
            "restart" => Request::Restart { services },
            _ => Request::Signal {
                signal: libc::SIGHUP,
                services,
            },
        }
    }

    #[test]
    fn requests_against_states() {
        use Pending as P;
        assert_eq!(decide(&req("up"), down(), P::None), Action::Start);
        assert_eq!(decide(&req("restart"), down(), P::None), Action::Start);
        assert_eq!(decide(&req("down"), down(), P::None), Action::Nothing);
        assert_eq!(decide(&req("up"), running(), P::None), Action::Nothing);
        assert_eq!(decide(&req("up"), running(), P::Restart), Action::Nothing);
        assert_eq!(
            decide(&req("up"), running(), P::Down),
            Action::Then(P::Restart)
        );
        assert_eq!(
            decide(&req("down"), running(), P::None),
            Action::Stop(P::Down)
        );
        assert_eq!(decide(&req("down"), running(), P::Down), Action::Nothing);
        assert_eq!(
            decide(&req("down"), running(), P::Restart),
            Action::Then(P::Down)
        );
        assert_eq!(
            decide(&req("restart"), running(), P::None),
            Action::Stop(P::Restart)
        );
        assert_eq!(
            decide(&req("restart"), running(), P::Down),
            Action::Then(P::Restart)
        );
        assert_eq!(
            decide(&req("restart"), running(), P::Restart),
            Action::Nothing
        );
        assert_eq!(
            decide(&req("down"), finishing(), P::None),
            Action::Then(P::Down)
        );
        assert_eq!(
            decide(&req("restart"), finishing(), P::None),
            Action::Then(P::Restart)
        );
        assert_eq!(
            decide(&req("up"), finishing(), P::Down),
            Action::Then(P::Restart)
        );
        assert_eq!(
            decide(&req("signal"), running(), P::None),
            Action::Signal(Pid::from_raw(7), Signal::SIGHUP)
        );
        assert_eq!(decide(&req("signal"), down(), P::None), Action::Nothing);
    }
}
