//! pid -> role: the one index of the processes dinit waits for.
//!
//! Whatever `waitpid` returns is looked up here, and its role says which state changes. A pid is
//! in the table from its start (or its discovery, for orphans) until it is reaped.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use mio::Token;
use nix::unistd::Pid;

/// Who a process is to dinit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Service `i`'s `run`.
    Run(usize),
    /// Service `i`'s `log/run`.
    Log(usize),
    /// Service `i`'s `terminate` script.
    Term(usize),
    /// Service `i`'s `finish` script.
    Finish(usize),
    /// A reparented process being stopped under the terminate policy (or at shutdown).
    Orphan { name: String },
    /// A reparented process adopted like a service (its end stops the container).
    Adopted { name: String },
    /// A child whose exec failed (already reported): reaped without a word.
    Stillborn,
}

#[derive(Debug)]
pub struct Proc {
    pub role: Role,
    /// The read ends dinit holds of its stdout and stderr pipes, drained before its end is told.
    pub pipes: Vec<Token>,
    /// The exec-status pipe (and its poll token) until the exec is known to have worked.
    pub exec: Option<(Token, OwnedFd)>,
}

#[derive(Default)]
pub struct ProcTab {
    procs: HashMap<Pid, Proc>,
}

impl ProcTab {
    pub fn insert(
        &mut self,
        pid: Pid,
        role: Role,
        pipes: Vec<Token>,
        exec: Option<(Token, OwnedFd)>,
    ) {
        self.procs.insert(pid, Proc { role, pipes, exec });
    }

    pub fn remove(&mut self, pid: Pid) -> Option<Proc> {
        self.procs.remove(&pid)
    }

    pub fn get(&self, pid: Pid) -> Option<&Proc> {
        self.procs.get(&pid)
    }

    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Proc> {
        self.procs.get_mut(&pid)
    }

    pub fn contains(&self, pid: Pid) -> bool {
        self.procs.contains_key(&pid)
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Pid, &Proc)> {
        self.procs.iter().map(|(p, proc)| (*p, proc))
    }

    /// Processes a shutdown waits for, other than orphans under `ignore` (which are never here).
    pub fn any(&self, f: impl Fn(&Role) -> bool) -> bool {
        self.procs.values().any(|p| f(&p.role))
    }
}
