//! pid -> role: the one index of the processes dinit waits for.
//!
//! Whatever `waitpid` returns is looked up here, and its role says which state machine moves.
//! A pid is in the table from its start (or its discovery, for orphans) until it is reaped.
//! Beside the role, the tokens of the process's pipes (drained before its end is told) and of
//! its exec-status pipe: the loop owns those sources, the table only names them.

use std::collections::HashMap;

use mio::Token;
use nix::unistd::Pid;

use super::adopt::Capture;
use super::names::{Orphan, Stage};

/// Who a process is to dinit.
#[derive(Debug)]
pub enum Role {
    /// One of service `i`'s programs.
    Service(usize, Stage),
    /// A reparented process being stopped (terminate policy, or shutdown).
    Orphan(Orphan),
    /// A reparented process adopted like a service (its end stops the container), and the
    /// redirection of its output.
    Adopted(Orphan, Box<Capture>),
}

/// The loop's sources that belong to a process.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Io {
    /// Its stdout and stderr pipes.
    pub pipes: Vec<Token>,
    /// Its exec-status pipe, until the exec is known to have worked.
    pub exec: Option<Token>,
}

#[derive(Debug)]
pub struct Proc {
    pub role: Role,
    pub io: Io,
}

#[derive(Default)]
pub struct ProcTab {
    procs: HashMap<Pid, Proc>,
}

impl ProcTab {
    pub fn insert(&mut self, pid: Pid, role: Role, io: Io) {
        self.procs.insert(pid, Proc { role, io });
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

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Pid, &mut Proc)> {
        self.procs.iter_mut().map(|(p, proc)| (*p, proc))
    }

    pub fn any(&self, f: impl Fn(&Role) -> bool) -> bool {
        self.procs.values().any(|p| f(&p.role))
    }
}
