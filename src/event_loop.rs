//! The loop: the one `mio::Poll` and every source dinit watches, owned side by side (signals,
//! the SIGCHLD signalfd, dinit's own stdout and stderr, the programs' pipes, exec-status pipes,
//! the control socket, the timers). It turns readiness into events for supervision and carries
//! out the effects that come back (`actions.rs`).
//!
//! A turn: wait for the earliest of an event or a deadline; dispatch each event by token;
//! fire due deadlines; read ready pipes within a budget; let supervision settle; write what is
//! queued. A turn never blocks anywhere but in `poll`, so a slow reader, a hung child or a
//! stopped tracee cannot keep dinit from reaping or from a SIGTERM.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;
use signal_hook_mio::v1_0::Signals;

use crate::control::server::Control;
use crate::http::server::Http;
use crate::output::pipes::Pipes;
use crate::output::{Output, Stream};
use crate::supervise::events::{Event, Timer};
use crate::supervise::reaper::{self, Children, Naming, Waited};
use crate::supervise::supervisor::Supervisor;
use crate::supervise::tracer::Tracer;
use crate::timers::Timers;

mod actions;
mod web;

pub use actions::ServiceIo;

pub const SIGNALS: Token = Token(0);
pub const STDOUT: Token = Token(1);
pub const STDERR: Token = Token(2);
pub const CONTROL: Token = Token(3);
pub const CHILD: Token = Token(4);
pub const HTTP: Token = Token(5);
const FIRST_DYNAMIC: usize = 16;

/// Reads of pipes per turn before the loop looks at signals and children again.
const PIPE_BUDGET: usize = 64;
/// Children reaped per turn of the loop, so that a fork storm cannot starve the pipes.
const REAPS_PER_TURN: usize = 1024;
/// Shortest time between two reaps on SIGCHLD: short enough that no service's end waits
/// noticeably, long enough that a fork storm is reaped a handful of zombies per wake-up.
const REAP_GAP: Duration = Duration::from_millis(1);

/// Tokens for pipes and connections, from a counter the loop owns: never reused, so a late
/// event for a closed source can never reach a new one.
pub struct Tokens(usize);

impl Tokens {
    pub fn fresh(&mut self) -> Token {
        self.0 += 1;
        Token(self.0)
    }
}

/// The signal sources, registered before the first fork.
pub struct SignalSources {
    pub signals: Signals,
    /// Set by the same handlers, after the self-pipe write: when it is clear, the pipe is
    /// empty and reading it would cost a system call for nothing.
    pub caught: Arc<AtomicBool>,
    pub child: SignalFd,
}

pub struct Loop {
    pub poll: Poll,
    pub tokens: Tokens,
    pub sig: SignalSources,
    pub out: Output,
    pub pipes: Pipes,
    pub control: Control,
    pub http: Http,
    pub timers: Timers<Timer>,
    /// Exec-status pipes being watched: token -> (pid, read end).
    pub exec: HashMap<Token, (Pid, OwnedFd)>,
    /// `run`s' notification pipes (s6's `notification-fd`): token -> (service, pid, read end).
    pub notify: HashMap<Token, (usize, Pid, OwnedFd)>,
    /// Per service: its logger pipe, record sources and line counts.
    pub io: Vec<ServiceIo>,
    pub tracer: Tracer,
    pub naming: Naming,
    /// What the metrics count beyond the state machines.
    pub stats: web::Stats,
    pub sup: Supervisor,
    /// Events waiting for supervision (effects' outcomes come after their batch).
    pub queue: VecDeque<Event>,
    children: Children,
    waited: Vec<Waited>,
    /// Supervision saw an event this turn: let it settle.
    moved: bool,
    /// Where the last stdout record of the process whose end is being told ends in stdout's
    /// queue: its `finished` line waits for that, not for other processes' output.
    pub finished_mark: u64,
}

impl Loop {
    pub fn new(
        poll: Poll,
        sig: SignalSources,
        out: Output,
        control: Control,
        sup: Supervisor,
    ) -> Loop {
        Loop {
            poll,
            tokens: Tokens(FIRST_DYNAMIC),
            sig,
            out,
            pipes: Pipes::new(),
            control,
            http: Http::off(),
            timers: Timers::default(),
            exec: HashMap::new(),
            notify: HashMap::new(),
            io: Vec::new(),
            tracer: Tracer::default(),
            naming: Naming::new(Instant::now()),
            stats: web::Stats::default(),
            sup,
            queue: VecDeque::new(),
            children: Children::Some,
            waited: Vec::new(),
            // The start's effects ran before the first turn: settle once.
            moved: true,
            finished_mark: 0,
        }
    }

    /// Hands `ev` to supervision, and every event its effects lead to, in order.
    pub fn deliver(&mut self, ev: Event) {
        self.queue.push_back(ev);
        self.drain_queue();
    }

    pub fn drain_queue(&mut self) {
        while let Some(ev) = self.queue.pop_front() {
            self.moved |= !matches!(ev, Event::Settle);
            let effects = self.sup.on(ev, Instant::now());
            for e in effects {
                if let Some(next) = self.perform(e) {
                    self.queue.push_back(next);
                }
            }
        }
    }

    /// Runs until supervision says everything is over; returns dinit's exit code. Only `poll`
    /// failing ends it early.
    pub fn run(&mut self) -> io::Result<u8> {
        let mut events = Events::with_capacity(256);
        let mut last_reap: Option<Instant> = None;
        let mut deferred_reap: Option<Instant> = None;
        loop {
            if self.children == Children::More {
                self.reap();
            }
            let now = Instant::now();
            self.fire_timers(now);
            let registry = self.poll.registry();
            self.pipes.pump(registry, &mut self.out, PIPE_BUDGET);
            // Twice at most: what the first settling asked for (a reap) may let the second
            // finish; anything later waits for the next turn.
            for _ in 0..2 {
                if !std::mem::take(&mut self.moved) {
                    break;
                }
                self.deliver(Event::Settle);
            }
            if let Some(code) = self.finished() {
                return Ok(code);
            }
            self.out.flush();
            if let Some(code) = self.finished() {
                return Ok(code);
            }
            let timeout = if self.pipes.has_work(&self.out) || self.children == Children::More {
                Some(Duration::ZERO)
            } else {
                let now = Instant::now();
                let reap = deferred_reap.map(|at| at.saturating_duration_since(now));
                match (self.timeout(now), reap) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let (mut signalled, mut child) = (false, false);
            for event in events.iter() {
                match event.token() {
                    SIGNALS => signalled = true,
                    CHILD => child = true,
                    STDOUT => self.out.sink_mut(Stream::Stdout).set_writable(),
                    STDERR => self.out.sink_mut(Stream::Stderr).set_writable(),
                    CONTROL => {
                        let tokens = &mut self.tokens;
                        let now = Instant::now();
                        self.control
                            .accept(self.poll.registry(), || tokens.fresh(), now);
                    }
                    HTTP => {
                        let tokens = &mut self.tokens;
                        self.http.accept(self.poll.registry(), || tokens.fresh());
                    }
                    token => self.ready(token),
                }
            }
            // Signals before children: a SIGTERM sent to the whole process group (Ctrl-C,
            // `timeout`, `kill -- -pgid`) reaches dinit before the service it also killed can
            // end, so it is already pending when that end is reaped, and the shutdown counts
            // as asked for. A burst of SIGCHLDs (a fork storm, many services ending at once)
            // is reaped in batches at most every REAP_GAP: the signalfd stays unread
            // meanwhile, so the poll reports no further SIGCHLD, and one wake-up reaps what
            // piled up instead of one wake-up per child.
            let mut reap_now = false;
            if child || deferred_reap.is_some() {
                let now = Instant::now();
                // A tracee's stops come one at a time, each awaited: no batching then.
                let gap = if self.tracer.busy() {
                    Duration::ZERO
                } else {
                    REAP_GAP
                };
                let due = last_reap.map_or(now, |t| t + gap);
                if now >= due {
                    deferred_reap = None;
                    last_reap = Some(now);
                    reap_now = true;
                } else {
                    deferred_reap = Some(due);
                }
            }
            if self.sig.caught.swap(false, Ordering::Acquire) || signalled {
                let pending: Vec<i32> = self.sig.signals.pending().collect();
                for sig in pending {
                    self.deliver(Event::Signal(sig));
                }
            }
            if reap_now {
                crate::signals::drain(&mut self.sig.child);
                self.reap();
            }
        }
    }

    /// The exit code once supervision is done and everything is written.
    fn finished(&self) -> Option<u8> {
        self.sup.exit_code().filter(|_| self.out.is_drained())
    }

    /// A readiness event for a token that is not a fixed source: a pipe, an exec-status pipe,
    /// a control connection (unknown tokens are ignored: spurious events happen).
    fn ready(&mut self, token: Token) {
        if self.pipes.mark_ready(token) {
            return;
        }
        if self.exec.contains_key(&token) {
            self.settle_exec(token, false);
        } else if self.notify.contains_key(&token) {
            self.notify_ready(token);
        } else if self.control.owns(token) {
            self.control_ready(token);
        } else if self.http.owns(token) {
            self.http_ready(token);
        }
    }

    /// Collects ended children (and traced processes' stops) and tells supervision.
    pub fn reap(&mut self) {
        let now = Instant::now();
        let names = if self.out.enabled(crate::log::Level::Warn) {
            self.naming.budget(now)
        } else {
            0
        };
        let mut waited = std::mem::take(&mut self.waited);
        let sup = &self.sup;
        self.children = reaper::reap(|pid| sup.knows(pid), names, REAPS_PER_TURN, &mut waited);
        for w in waited.drain(..) {
            match w {
                Waited::Ended(r) => {
                    if !self.sup.knows(r.pid) {
                        self.naming.reaped(r.name.is_some(), now);
                        self.stats.orphans_reaped += 1;
                    }
                    self.ended(r);
                }
                Waited::Stopped(pid, ws) => {
                    if !self.sup.traces(pid) {
                        self.tracer.let_go(pid, ws);
                    } else if let Some(result) = self.tracer.stop(pid, ws) {
                        self.queue.push_back(Event::TraceResult { pid, result });
                    }
                }
            }
            self.drain_queue();
        }
        self.waited = waited;
        self.deliver(Event::Children(self.children));
    }

    /// A child ended: whether it ever ran decides what its end means, so its exec status is
    /// learnt first; then its last lines are read, then supervision hears of it.
    ///
    /// The events this one leads to are handled before any other (see `reap`), so its
    /// `finished` line takes the mark of this process's pipes.
    fn ended(&mut self, r: reaper::Reaped) {
        self.finished_mark = 0;
        if let Some(io) = self.sup.procs.get(r.pid).map(|p| p.io.clone()) {
            if let Some(t) = io.exec {
                self.settle_exec(t, true);
            }
            for t in io.pipes {
                let mark = self.pipes.drain(t, self.poll.registry(), &mut self.out);
                self.finished_mark = self.finished_mark.max(mark);
            }
        }
        self.queue.push_back(Event::Exited(r));
    }

    /// Reads an exec-status pipe if it has spoken (`dead`: the child is gone, so it has).
    pub fn settle_exec(&mut self, token: Token, dead: bool) {
        use crate::supervise::spawn::{self, ExecStatus};
        let Some((pid, fd)) = self.exec.get(&token) else {
            return;
        };
        if dead {
            // The child has exec'd or exited: its end of the pipe is closed, so this read
            // returns at once.
            let _ = crate::output::pipes::set_blocking(fd);
        }
        let status = spawn::read_exec_status(fd);
        let pid = *pid;
        if status == ExecStatus::Pending {
            return;
        }
        if let Some((_, fd)) = self.exec.remove(&token) {
            use std::os::fd::AsRawFd;
            let _ = self
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&fd.as_raw_fd()));
        }
        let result = match status {
            ExecStatus::Failed(e) => Err(e),
            _ => Ok(()),
        };
        self.queue.push_back(Event::Exec { pid, result });
        if !dead {
            self.drain_queue();
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        self.control_turn(now);
        self.http.expire(now, self.poll.registry());
        self.out.note_blocked(now);
        self.out.trim(now);
        if let Some(n) = self.naming.summary(now) {
            crate::warn!(
                self.out,
                "reaped {n} more reparented processes (too many at once to name each)"
            );
        }
        while let Some(t) = self.timers.pop_expired(now) {
            self.queue.push_back(Event::Timer(t));
        }
        self.drain_queue();
    }

    /// The poll timeout: the earliest deadline of any source.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        let t = [
            self.control.next_deadline(),
            self.http.next_deadline(),
            self.out.trim_deadline(),
            self.naming.deadline(),
        ]
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
