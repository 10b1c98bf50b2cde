//! The only place that calls `wait*`: collect every ended child, whoever it is.
//!
//! SIGCHLD coalesces, so one signal may stand for many children: wait for any child, without
//! blocking, until none is left. A pid dinit does not know (an orphan reparented to it that
//! already ended) is named from `/proc` while it is still a zombie, when the name will be printed.

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::exit::Exit;

#[derive(Debug)]
pub struct Reaped {
    pub pid: Pid,
    pub exit: Exit,
    /// For unknown pids when naming was asked for: `<name>` as the orphan rules give it.
    pub name: Option<String>,
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

/// Reaps ended children into `out`, at most `max` of them. `known(pid)`: dinit started it.
/// `names`: how many unknown ones may be named first (each costs a peek and a `/proc` read
/// while it is still a zombie); past that, children are reaped as `waitpid(-1)` returns them,
/// one system call each, which is what a fork storm needs.
pub fn reap(
    known: impl Fn(Pid) -> bool,
    mut names: usize,
    max: usize,
    out: &mut Vec<Reaped>,
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
                    None => return Children::Some,
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
            Ok(ws) => {
                if let (Some(pid), Some(exit)) = (ws.pid(), Exit::from_wait(ws)) {
                    out.push(Reaped { pid, exit, name });
                }
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return Children::None,
            Err(_) => return Children::Some,
        }
    }
    Children::More
}
