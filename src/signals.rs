//! What each signal means to dinit (contract §8). Pure table.
//!
//! Every signal dinit acts on is caught through `signal-hook`'s self-pipe and read on the loop,
//! registered before the first fork so that none that arrives during start-up is lost.
//! SIGPIPE stays ignored (the Rust runtime's setting): a closed stdout is an error value, not
//! death. Children get every disposition back to default before exec (`spawn`).

use libc::c_int;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Graceful stop of everything (SIGTERM, SIGINT, SIGQUIT).
    Shutdown,
    /// Passed on to every running service (reload, log reopen, terminal size).
    Forward,
    /// A child changed state: reap.
    Child,
}

/// The signals dinit handles.
pub const HANDLED: [c_int; 8] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

pub fn meaning(sig: c_int) -> Option<Meaning> {
    match sig {
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => Some(Meaning::Shutdown),
        libc::SIGHUP | libc::SIGUSR1 | libc::SIGUSR2 | libc::SIGWINCH => Some(Meaning::Forward),
        libc::SIGCHLD => Some(Meaning::Child),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_signal_has_a_meaning() {
        for s in HANDLED {
            assert!(meaning(s).is_some(), "{s}");
        }
        assert_eq!(meaning(libc::SIGQUIT), Some(Meaning::Shutdown));
        assert_eq!(meaning(libc::SIGWINCH), Some(Meaning::Forward));
        assert_eq!(meaning(libc::SIGPIPE), None);
    }
}
