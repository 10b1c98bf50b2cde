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

/// The signals dinit handles through `signal-hook`'s handlers.
pub const HANDLED: [c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// SIGCHLD comes through a signalfd instead: it stays blocked and the poll reports it, with no
/// handler run and no self-pipe write per child. In a fork storm (thousands of orphans a second)
/// that halves the system calls per reaped child. Children get an empty mask before exec.
pub fn child_signal() -> nix::Result<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Empties the signalfd: SIGCHLD is a standard signal, at most one instance is ever pending,
/// so one read takes it (a second read would only say EAGAIN). A SIGCHLD sent after this read
/// makes the fd readable again, a fresh edge for the poll.
pub fn drain(fd: &mut nix::sys::signalfd::SignalFd) {
    let _ = fd.read_signal();
}

/// A flag that every handled signal sets, next to `signal-hook`'s self-pipe: the loop reads the
/// pipe only when the flag says there is something in it, not on every SIGCHLD (in a fork storm
/// that is one failed `recvfrom` saved per reaped child). Registered after the pipe, so the flag
/// is set only once the byte is already in the pipe.
pub fn caught_flag() -> std::io::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in HANDLED {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// Signals whose default action would end dinit although nothing asked for that: timers and
/// I/O notices a process may send (as PID 1 the kernel drops them anyway; as a subreaper they
/// would kill it), and the real-time signals (`SIGRTMIN..=SIGRTMAX`, added by the caller).
/// dinit ignores them; children get the default back before exec (`spawn`).
/// SIGTTIN and SIGTTOU too: once the main program has the terminal's foreground, dinit is a
/// background process that still writes its own lines there (contract §14).
pub const IGNORED: [c_int; 6] = [
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGTTIN,
    libc::SIGTTOU,
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
        assert_eq!(meaning(libc::SIGCHLD), Some(Meaning::Child));
        assert_eq!(meaning(libc::SIGQUIT), Some(Meaning::Shutdown));
        assert_eq!(meaning(libc::SIGWINCH), Some(Meaning::Forward));
        assert_eq!(meaning(libc::SIGPIPE), None);
    }
}
