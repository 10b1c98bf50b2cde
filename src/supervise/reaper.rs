//! The only place that calls `wait*`: collect every ended child, whoever it is, and the stops
//! of processes dinit traces (an adoption's steps).
//!
//! SIGCHLD coalesces, so one signal may stand for many children: wait for any child, without
//! blocking, until none is left. A pid dinit does not know (an orphan reparented to it that
//! already ended) is named from `/proc` while it is still a zombie, when the name will be
//! printed; [`Naming`] bounds how many are named a second, so that a fork storm costs no more
//! than the reaping itself.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::exit::Exit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub pid: Pid,
    pub exit: Exit,
    /// For unknown pids when naming was asked for: `<name>` as the orphan rules give it.
    pub name: Option<String>,
}

/// What one wait returned.
#[derive(Debug)]
pub enum Waited {
    Ended(Reaped),
    /// A traced process stopped.
    Stopped(Pid, WaitStatus),
}

/// What is left after a call to [`reap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    /// Children remain (none of them ended, as far as the kernel says now).
    Some,
    /// No child at all (ECHILD).
    None,
    /// The per-call limit was reached: ended children may be waiting; call again soon.
    More,
}

/// Collects ended children (and stops of traced ones) into `out`, at most `max` of them.
/// `known(pid)`: dinit knows who it is. `names`: how many unknown ones may be named first (each
/// costs a peek and a `/proc` read while it is still a zombie); past that, children are reaped
/// as `waitpid(-1)` returns them, one system call each, which is what a fork storm needs.
pub fn reap(
    known: impl Fn(Pid) -> bool,
    mut names: usize,
    max: usize,
    out: &mut Vec<Waited>,
) -> Children {
    for _ in 0..max {
        let mut name = None;
        let target = if names > 0 {
            // Peek without reaping: the zombie's /proc entry is there until it is waited for.
            let flags = WaitPidFlag::WEXITED
                | WaitPidFlag::WNOHANG
                | WaitPidFlag::WNOWAIT
                | WaitPidFlag::__WALL;
            match waitid(Id::All, flags) {
                Ok(ws) => match ws.pid() {
                    Some(pid) => {
                        if !known(pid) {
                            name = Some(super::orphans::zombie_name(pid));
                            names -= 1;
                        }
                        pid
                    }
                    // No end to collect; a traced process's stop may still be there.
                    None => Pid::from_raw(-1),
                },
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return Children::None,
                Err(_) => return Children::Some,
            }
        } else {
            Pid::from_raw(-1)
        };
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Children::Some,
            Ok(ws) => match (ws.pid(), Exit::from_wait(ws)) {
                (Some(pid), Some(exit)) => out.push(Waited::Ended(Reaped { pid, exit, name })),
                (Some(pid), None) => out.push(Waited::Stopped(pid, ws)),
                _ => {}
            },
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return Children::None,
            Err(_) => return Children::Some,
        }
    }
    Children::More
}

/// Reaped orphans named one by one, per second; past that a burst is summed up in one line.
const NAMED_PER_SEC: f64 = 10.0;

/// The rate limit on naming reaped orphans: a token bucket, and the count of those reaped
/// without a line of their own, said once a second.
#[derive(Debug)]
pub struct Naming {
    tokens: f64,
    refill: Instant,
    unnamed: u64,
    /// When the summary of unnamed ones is due.
    summary: Option<Instant>,
}

impl Naming {
    pub fn new(now: Instant) -> Naming {
        Naming {
            tokens: NAMED_PER_SEC,
            refill: now,
            unnamed: 0,
            summary: None,
        }
    }

    /// How many unknown children the next reap may name.
    pub fn budget(&mut self, now: Instant) -> usize {
        let refill = now.duration_since(self.refill).as_secs_f64() * NAMED_PER_SEC;
        self.tokens = (self.tokens + refill).min(NAMED_PER_SEC);
        self.refill = now;
        self.tokens as usize
    }

    /// Counts what a reap did: one named (`true`) or one reaped without a name.
    pub fn reaped(&mut self, named: bool, now: Instant) {
        if named {
            self.tokens -= 1.0;
        } else {
            self.unnamed += 1;
            self.summary.get_or_insert(now + Duration::from_secs(1));
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.summary
    }

    /// At the deadline: how many were reaped without a name since the last summary.
    pub fn summary(&mut self, now: Instant) -> Option<u64> {
        if self.summary.is_some_and(|at| at <= now) {
            self.summary = None;
            Some(std::mem::take(&mut self.unnamed)).filter(|n| *n > 0)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_is_rate_limited() {
        let t0 = Instant::now();
        let mut n = Naming::new(t0);
        assert_eq!(n.budget(t0), 10);
        for _ in 0..10 {
            n.reaped(true, t0);
        }
        assert_eq!(n.budget(t0), 0);
        n.reaped(false, t0);
        n.reaped(false, t0);
        assert_eq!(n.deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(n.summary(t0), None, "not due yet");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(n.summary(t1), Some(2));
        assert_eq!(n.deadline(), None);
        assert_eq!(n.budget(t1), 10, "refilled, at most one second's worth");
    }
}
