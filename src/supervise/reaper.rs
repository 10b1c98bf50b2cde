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

/// Whether dinit still has children after reaping (ECHILD says it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    Some,
    None,
}

/// Reaps every ended child into `out`. `known(pid)`: dinit started it (no naming needed).
/// `name_unknown`: read the name of unknown ones before they are gone.
pub fn reap(known: impl Fn(Pid) -> bool, name_unknown: bool, out: &mut Vec<Reaped>) -> Children {
    loop {
        let pid = if name_unknown {
            // Peek without reaping: the zombie's /proc entry is there until it is waited for.
            match waitid(
                Id::All,
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            ) {
                Ok(ws) => match ws.pid() {
                    Some(pid) => Some(pid),
                    None => return Children::Some,
                },
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return Children::None,
                Err(_) => return Children::Some,
            }
        } else {
            None
        };
        let name = match pid {
            Some(pid) if !known(pid) => Some(super::orphans::name_of(pid)),
            _ => None,
        };
        match waitpid(
            pid.unwrap_or(Pid::from_raw(-1)),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
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
}
