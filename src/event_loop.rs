//! The one `mio::Poll`, its token table, and the loop around the one `poll()` call.
//!
//! A turn: wait for the earliest of an event or a deadline; dispatch each event by token
//! (signals, dinit's own stdout/stderr becoming writable, pipes, the control socket); fire due
//! deadlines; read ready pipes within a budget; move the phases; write what is queued. A turn
//! never blocks anywhere but in `poll`, so a slow reader or a hung child cannot keep dinit from
//! reaping or from a SIGTERM.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use signal_hook_mio::v1_0::Signals;

use crate::output::Stream;
use crate::supervise::supervisor::Supervisor;

pub const SIGNALS: Token = Token(0);
pub const STDOUT: Token = Token(1);
pub const STDERR: Token = Token(2);
pub const CONTROL: Token = Token(3);
pub const CHILD: Token = Token(4);
const FIRST_DYNAMIC: usize = 16;

/// Reads of pipes per turn before the loop looks at signals and children again.
const PIPE_BUDGET: usize = 64;

/// Shortest time between two reaps on SIGCHLD: short enough that no service's end waits
/// noticeably, long enough that a fork storm is reaped a handful of zombies per wake-up.
const REAP_GAP: Duration = Duration::from_millis(1);

static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(FIRST_DYNAMIC);

/// A token for a pipe or a connection; never reused, so a late event for a closed source can
/// never reach a new one.
pub fn new_token() -> Token {
    Token(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed))
}

/// Runs until the supervisor says everything is over; returns dinit's exit code. Only `poll`
/// failing ends it early.
pub fn run(
    poll: &mut Poll,
    signals: &mut Signals,
    caught: &AtomicBool,
    child_signal: &mut nix::sys::signalfd::SignalFd,
    sup: &mut Supervisor,
) -> io::Result<u8> {
    let mut events = Events::with_capacity(256);
    let mut last_reap: Option<Instant> = None;
    let mut deferred_reap: Option<Instant> = None;
    loop {
        if sup.reap_pending() {
            sup.reap();
        }
        sup.on_timers(Instant::now());
        sup.pipes.pump(poll.registry(), &mut sup.out, PIPE_BUDGET);
        if let Some(code) = sup.progress() {
            return Ok(code);
        }
        sup.out.flush();
        if let Some(code) = sup.progress() {
            return Ok(code);
        }
        let timeout = if sup.pipes.has_work(&sup.out) {
            Some(Duration::ZERO)
        } else {
            let now = Instant::now();
            let reap = deferred_reap.map(|at| at.saturating_duration_since(now));
            match (sup.timeout(now), reap) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let (mut signalled, mut child) = (false, false);
        for event in events.iter() {
            match event.token() {
                SIGNALS => signalled = true,
                CHILD => child = true,
                STDOUT => sup.out.sink_mut(Stream::Stdout).set_writable(),
                STDERR => sup.out.sink_mut(Stream::Stderr).set_writable(),
                CONTROL => sup.on_control_listener(),
                token => {
                    if !sup.pipes.mark_ready(token) {
                        sup.on_token(token);
                    }
                }
            }
        }
        // Signals before children: a SIGTERM sent to the whole process group (Ctrl-C, `timeout`,
        // `kill -- -pgid`) reaches dinit before the service it also killed can end, so it is
        // already pending when that end is reaped, and the shutdown counts as asked for.
        // A burst of SIGCHLDs (a fork storm, many services ending at once) is reaped in batches
        // at most every REAP_GAP: the signalfd stays unread meanwhile, so the poll reports no
        // further SIGCHLD, and one wake-up reaps what piled up instead of one wake-up per child.
        let mut reap_now = false;
        if child || deferred_reap.is_some() {
            let now = Instant::now();
            let due = last_reap.map_or(now, |t| t + REAP_GAP);
            if now >= due {
                deferred_reap = None;
                last_reap = Some(now);
                reap_now = true;
            } else {
                deferred_reap = Some(due);
            }
        }
        // The flag is set by the same handlers, after the pipe write: when it is clear, the pipe
        // is empty and reading it would cost a system call for nothing.
        if caught.swap(false, Ordering::Acquire) || signalled {
            for sig in signals.pending() {
                sup.on_signal(sig);
            }
        }
        if reap_now {
            crate::signals::drain(child_signal);
            sup.on_signal(libc::SIGCHLD);
        }
    }
}
