//! dinit's own life as a state machine: running, idle (nothing left but a look for orphans to
//! adopt), stopping, killing (the stop timeout expired), done (output is written, then exit).
//!
//! Shutdown is a state, not a second code path: entering [`Phase::Stopping`] sends every
//! service the same stop an operator's `dinit down` sends. [`settle`] decides, once per turn
//! of the loop, whether the phase moves on. Pure.

use std::time::Instant;

use super::orphans::Saw;
use super::reaper::Children;
use crate::config::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// No service keeps dinit running; under `adopt`, one more look at the orphans decides
    /// (a service that started a daemon and exited 115 leaves it to be adopted).
    Idle {
        since: Instant,
    },
    Stopping {
        since: Instant,
    },
    /// Every service's processes (and every adopted process) have ended: orphans that keep
    /// appearing get SIGKILL at once, and `DINIT_KILL_TIMEOUT` after `drained` whatever lives
    /// is killed (a fork bomb cannot hold the shutdown).
    Draining {
        since: Instant,
        drained: Instant,
    },
    /// `DINIT_STOP_TIMEOUT` expired: whatever is found from now on gets SIGKILL.
    Killing {
        since: Instant,
    },
    /// Nothing left to wait for: output is being written out, then dinit exits.
    Done,
}

impl Phase {
    pub fn stopping(self) -> bool {
        matches!(
            self,
            Phase::Stopping { .. } | Phase::Draining { .. } | Phase::Killing { .. } | Phase::Done
        )
    }
}

/// What [`settle`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// A service keeps dinit running (see `Service::active`), or an adopted process lives.
    pub active: bool,
    pub policy: Policy,
    pub children: Children,
    /// When the last orphan scan ran, and what it saw.
    pub last_scan: Instant,
    pub saw: Saw,
    /// Processes the shutdown waits for remain (orphans under `ignore` are not waited for).
    pub waiting: bool,
    /// A service's process or an adopted process is alive.
    pub services: bool,
}

/// What the phase's move asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Stay,
    /// Nothing is left running: begin the shutdown ("all services finished").
    AllFinished,
    /// Look for orphans now.
    Scan,
    /// Ask the kernel whether children remain (none may ever have ended to say so).
    Reap,
    /// The services are all gone: the drain's deadline starts now.
    Drained,
    /// Everything is over.
    Done,
}

/// Moves `phase` as the facts say, at `now`.
pub fn settle(phase: &mut Phase, f: &Facts, now: Instant) -> Next {
    match *phase {
        Phase::Running if f.active => Next::Stay,
        Phase::Running if f.policy == Policy::Adopt && f.children != Children::None => {
            *phase = Phase::Idle { since: now };
            Next::Scan
        }
        Phase::Running => Next::AllFinished,
        Phase::Idle { .. } if f.active => {
            *phase = Phase::Running;
            Next::Stay
        }
        Phase::Idle { since } => {
            if f.children == Children::None || (f.last_scan >= since && f.saw == Saw::Settled) {
                Next::AllFinished
            } else {
                Next::Stay
            }
        }
        Phase::Stopping { since } if !f.services => {
            *phase = Phase::Draining {
                since,
                drained: now,
            };
            Next::Drained
        }
        Phase::Stopping { since } | Phase::Draining { since, .. } | Phase::Killing { since } => {
            if f.waiting {
                return Next::Stay;
            }
            // Every policy terminates the orphans found at shutdown: one scan at least after
            // it began; under `ignore`, what survives is not waited for.
            let scanned = f.last_scan >= since;
            let gone = f.policy == Policy::Ignore || f.children == Children::None;
            if scanned && gone {
                *phase = Phase::Done;
                Next::Done
            } else if f.children != Children::None {
                Next::Reap
            } else {
                Next::Stay
            }
        }
        Phase::Done => Next::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn facts() -> Facts {
        Facts {
            active: false,
            policy: Policy::Terminate,
            children: Children::None,
            last_scan: Instant::now(),
            saw: Saw::Settled,
            waiting: false,
            services: false,
        }
    }

    /// Every phase against the facts that move it.
    #[test]
    fn table() {
        let t0 = Instant::now();
        let before = t0 - Duration::from_millis(5);
        let after = t0 + Duration::from_millis(5);
        let now = t0 + Duration::from_millis(10);
        let go = |mut phase: Phase, f: Facts| {
            let next = settle(&mut phase, &f, now);
            (phase, next)
        };
        use {Children as C, Next as N, Phase as P};

        // Running
        let active = Facts {
            active: true,
            ..facts()
        };
        assert_eq!(go(P::Running, active), (P::Running, N::Stay));
        assert_eq!(go(P::Running, facts()), (P::Running, N::AllFinished));
        let adopt = Facts {
            policy: Policy::Adopt,
            children: C::Some,
            ..facts()
        };
        assert_eq!(go(P::Running, adopt), (P::Idle { since: now }, N::Scan));
        let adopt_none = Facts {
            children: C::None,
            ..adopt
        };
        assert_eq!(go(P::Running, adopt_none), (P::Running, N::AllFinished));

        // Idle
        let idle = P::Idle { since: t0 };
        assert_eq!(
            go(
                idle,
                Facts {
                    active: true,
                    ..adopt
                }
            ),
            (P::Running, N::Stay)
        );
        assert_eq!(go(idle, adopt_none), (idle, N::AllFinished));
        let unscanned = Facts {
            last_scan: before,
            ..adopt
        };
        assert_eq!(go(idle, unscanned), (idle, N::Stay));
        let scanned = Facts {
            last_scan: after,
            ..adopt
        };
        assert_eq!(go(idle, scanned), (idle, N::AllFinished));
        let young = Facts {
            saw: Saw::Immature,
            ..scanned
        };
        assert_eq!(go(idle, young), (idle, N::Stay));

        // Stopping: once the services are gone, draining begins
        let stopping = P::Stopping { since: t0 };
        let services = Facts {
            services: true,
            waiting: true,
            ..facts()
        };
        assert_eq!(go(stopping, services), (stopping, N::Stay));
        let drained = P::Draining {
            since: t0,
            drained: now,
        };
        assert_eq!(go(stopping, facts()), (drained, N::Drained));

        // Draining and Killing alike
        for p in [drained, P::Killing { since: t0 }] {
            let waiting = Facts {
                waiting: true,
                last_scan: after,
                ..facts()
            };
            assert_eq!(go(p, waiting), (p, N::Stay));
            let unscanned = Facts {
                last_scan: before,
                ..facts()
            };
            assert_eq!(go(p, unscanned), (p, N::Stay));
            let done = Facts {
                last_scan: after,
                ..facts()
            };
            assert_eq!(go(p, done), (P::Done, N::Done));
            let children = Facts {
                last_scan: after,
                children: C::Some,
                ..facts()
            };
            assert_eq!(go(p, children), (p, N::Reap));
            let ignore = Facts {
                policy: Policy::Ignore,
                ..children
            };
            assert_eq!(go(p, ignore), (P::Done, N::Done));
            let ignore_unscanned = Facts {
                last_scan: before,
                ..ignore
            };
            assert_eq!(go(p, ignore_unscanned), (p, N::Reap));
        }
        assert_eq!(go(P::Done, facts()), (P::Done, N::Stay));
        assert!(P::Done.stopping() && P::Killing { since: t0 }.stopping() && drained.stopping());
        assert!(!P::Running.stopping() && !idle.stopping());
    }
}
