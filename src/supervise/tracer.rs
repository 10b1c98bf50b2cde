//! The system-call side of adoption (`adopt.rs` is the logic): ptrace, the scratch page's
//! contents, the hand-over socket, the pipes. Each command returns at once; the stops it
//! leads to come back through the reaper's `waitpid`. Adoption's `unsafe` stays here.
//!
//! Why this way: in Docker's default seccomp profile `pidfd_getfd` and `kcmp` need
//! CAP_SYS_PTRACE, while ptrace of one's own (reparented) child is allowed (Docker >= 19.03,
//! kernel >= 4.8). No code is written into the process: each call runs a `syscall`
//! instruction it already has (the one it was stopped in, or one of its vDSO), stepped with
//! `PTRACE_SYSCALL`, which also keeps other threads of the process safe. A system call the
//! stop interrupted is restarted as the kernel would (`-ERESTART*` handled like
//! `arch_do_signal_or_restart`).
//!
//! The hand-over socket: an abstract Unix socket with a random name, made when a capture
//! begins and closed when none is under way. Its name is visible in `/proc/net/unix`, so the
//! name alone protects nothing: every connection's peer pid (`SO_PEERCRED`) is checked, and
//! only the tracee dinit is waiting for gets the pipe ends (contract §13). The tracee's socket
//! is non-blocking, so a full backlog fails its `connect` instead of holding it.
//!
//! Only x86_64 is supported; elsewhere the first step fails and adoption goes on without
//! capture.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::adopt::{Busy, Call, Cmd, Failure, Input, Targets, Which};

/// An open file as the kernel identifies it: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
}

fn ident(pid: Pid, fd: i32) -> Option<Ident> {
    let st = nix::sys::stat::stat(format!("/proc/{pid}/fd/{fd}").as_str()).ok()?;
    Some(Ident {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// The pipes of one capture: dinit reads `read`, the tracees get `write`.
struct Pipes {
    /// Until they are watched.
    read: Option<[OwnedFd; 2]>,
    write: [OwnedFd; 2],
}

/// What the tracer holds for the loop, across every capture under way.
#[derive(Default)]
pub struct Tracer {
    listener: Option<Listener>,
    /// Adopted pid -> its capture's pipes.
    captures: HashMap<Pid, Pipes>,
    /// Tracee -> the adopted pid whose capture it belongs to.
    owner: HashMap<Pid, Pid>,
    /// Connections accepted for a tracee other than the one being handed over to (captures
    /// run side by side and share the socket), until their own hand-over.
    early: HashMap<Pid, OwnedFd>,
    #[cfg(target_arch = "x86_64")]
    regs: HashMap<Pid, x86::Saved>,
    /// Connections to the hand-over socket from other processes, refused.
    pub strangers: u64,
}

fn step(name: &'static str) -> impl Fn(Errno) -> Failure {
    move |e| Failure::Step(name, e)
}

impl Tracer {
    /// Prepares the capture of `adopted`: its pipes, the socket, and the descendants that
    /// share its output (fd 1 or 2 on its original stdout or stderr).
    pub fn plan(&mut self, adopted: Pid) -> Input {
        let stat = std::fs::read(format!("/proc/{adopted}/stat")).unwrap_or_default();
        if super::orphans::ProcStat::parse(&stat).is_some_and(|s| s.state == b'D') {
            return Input::Planned(Err(Busy::Asleep));
        }
        let made = (|| {
            let (r1, w1) = super::spawn::pipe().map_err(step("pipe"))?;
            let (r2, w2) = super::spawn::pipe().map_err(step("pipe"))?;
            if self.listener.is_none() {
                self.listener = Some(Listener::new()?);
            }
            Ok(Pipes {
                read: Some([r1, r2]),
                write: [w1, w2],
            })
        })();
        let pipes = match made {
            Ok(p) => p,
            Err(f) => return Input::Planned(Err(Busy::Failed(f))),
        };
        self.captures.insert(adopted, pipes);
        self.owner.insert(adopted, adopted);
        let orig = [ident(adopted, 1), ident(adopted, 2)];
        let mut plan = Vec::new();
        for d in descendants(adopted) {
            let mut targets: Targets = Vec::new();
            for fd in [1, 2] {
                let id = ident(d, fd);
                if id.is_some() && id == orig[0] {
                    targets.push((fd, Which::Stdout));
                } else if id.is_some() && id == orig[1] {
                    targets.push((fd, Which::Stderr));
                }
            }
            if !targets.is_empty() {
                self.owner.insert(d, adopted);
                plan.push((d, targets));
            }
        }
        Input::Planned(Ok(plan))
    }

    /// The read ends to watch once the adopted process writes into the new pipes.
    pub fn take_read_ends(&mut self, adopted: Pid) -> Option<[OwnedFd; 2]> {
        self.captures.get_mut(&adopted)?.read.take()
    }

    /// The capture of `adopted` is over: its pipes' write ends go (the tracees hold their
    /// own), and the socket when no other capture needs it. Returns the strangers refused.
    pub fn release(&mut self, adopted: Pid) -> u64 {
        self.captures.remove(&adopted);
        let gone: Vec<Pid> = self
            .owner
            .iter()
            .filter(|(_, a)| **a == adopted)
            .map(|(t, _)| *t)
            .collect();
        for t in gone {
            self.owner.remove(&t);
            self.early.remove(&t);
            #[cfg(target_arch = "x86_64")]
            self.regs.remove(&t);
        }
        if self.captures.is_empty() {
            self.listener = None;
        }
        std::mem::take(&mut self.strangers)
    }

    /// A capture is under way (its tracees' stops should be collected at once).
    pub fn busy(&self) -> bool {
        !self.captures.is_empty()
    }

    /// A wait status of a traced process as an adoption input.
    pub fn stop(&mut self, pid: Pid, ws: WaitStatus) -> Option<Input> {
        match ws {
            WaitStatus::PtraceEvent(..) => Some(Input::EventStop),
            WaitStatus::Stopped(_, sig) => Some(Input::SignalStop(sig as i32)),
            WaitStatus::PtraceSyscall(_) => Some(Input::SyscallStop {
                ret: self.return_value(pid),
            }),
            _ => None,
        }
    }

    /// Lets go of a stopped process dinit traces but no capture wants (should not happen).
    pub fn let_go(&mut self, pid: Pid, ws: WaitStatus) {
        let sig = match ws {
            WaitStatus::Stopped(_, sig) => Some(sig),
            _ => None,
        };
        let _ = nix::sys::ptrace::detach(pid, sig);
    }

    /// Runs `cmd` for `pid`; commands with an immediate outcome return it.
    pub fn run(&mut self, pid: Pid, cmd: Cmd) -> Option<Input> {
        use nix::sys::ptrace;
        match cmd {
            Cmd::Seize => Some(Input::Seized(
                ptrace::seize(pid, ptrace::Options::PTRACE_O_TRACESYSGOOD)
                    .map_err(step("ptrace seize"))
                    .and_then(|()| ptrace::interrupt(pid).map_err(step("ptrace interrupt"))),
            )),
            Cmd::Interrupt => {
                let _ = ptrace::interrupt(pid);
                None
            }
            Cmd::Resume { syscall } => {
                let _ = if syscall {
                    ptrace::syscall(pid, None)
                } else {
                    ptrace::cont(pid, None)
                };
                None
            }
            Cmd::HandOver => Some(Input::HandedOver(self.hand_over(pid))),
            Cmd::Prepare => Some(Input::Prepared(self.prepare(pid))),
            Cmd::Call(call) => {
                if let Err(f) = self.call(pid, call) {
                    // The call never started: say so as its exit would have.
                    return Some(match f {
                        Failure::Step(_, e) => Input::SyscallStop { ret: -(e as i64) },
                        Failure::TimedOut => Input::Deadline,
                    });
                }
                None
            }
            Cmd::ReadFds(page) => Some(Input::Received(self.read_fds(pid, page))),
            Cmd::Detach { restore, signal } => {
                self.detach(pid, restore, signal);
                None
            }
        }
    }

    /// Accepts the connections waiting on the socket: the one from `pid` gets the write ends
    /// of its capture's pipes; one from another tracee waits for its own hand-over; any other
    /// is closed and counted.
    fn hand_over(&mut self, pid: Pid) -> Result<(), Failure> {
        let adopted = *self
            .owner
            .get(&pid)
            .ok_or(Failure::Step("hand-over", Errno::ESRCH))?;
        let conn = match self.early.remove(&pid) {
            Some(conn) => conn,
            None => self.accept_from(pid)?,
        };
        let pipes = self
            .captures
            .get(&adopted)
            .ok_or(Failure::Step("hand-over", Errno::ESRCH))?;
        send_fds(&conn, &pipes.write).map_err(step("sendmsg"))
    }

    fn accept_from(&mut self, pid: Pid) -> Result<OwnedFd, Failure> {
        let listener = self
            .listener
            .as_ref()
            .ok_or(Failure::Step("hand-over", Errno::ENOTCONN))?;
        loop {
            let conn = listener.accept().map_err(step("accept"))?;
            match peer_pid(&conn).map(Pid::from_raw) {
                Some(p) if p == pid => return Ok(conn),
                Some(p) if self.owner.contains_key(&p) => {
                    self.early.insert(p, conn);
                }
                _ => self.strangers += 1,
            }
        }
    }
}

fn peer_pid(conn: &OwnedFd) -> Option<i32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(conn, PeerCredentials).ok().map(|c| c.pid())
}

fn send_fds(conn: &OwnedFd, fds: &[OwnedFd; 2]) -> Result<(), Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let raw = [fds[0].as_raw_fd(), fds[1].as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"x")];
    sendmsg::<()>(
        conn.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(|_| ())
}

/// Every descendant of `pid`, parents before children.
fn descendants(pid: Pid) -> Vec<Pid> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(list) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in list
                .split_ascii_whitespace()
                .filter_map(|c| c.parse().ok())
                .map(Pid::from_raw)
            {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// 16 random bytes as hex: the socket's name cannot be guessed, only read (and the peer check
/// is what protects it).
fn random_name() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: getrandom into a local buffer of the given length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n != buf.len() as isize {
        // No entropy yet (very early boot): time and pid still differ per run.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        buf = (t ^ ((std::process::id() as u128) << 64)).to_ne_bytes();
    }
    let mut name = String::from("dinit-adopt-");
    for b in buf {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// The abstract socket the tracees connect to. (Only the x86_64 injection connects to it.)
struct Listener {
    fd: OwnedFd,
    /// The address as the tracee's `connect` gets it: a NUL, then the name.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    addr: Vec<u8>,
}

impl Listener {
    fn new() -> Result<Listener, Failure> {
        use nix::sys::socket::{
            AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
        };
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(step("socket"))?;
        let name = random_name();
        let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(step("socket"))?;
        bind(fd.as_raw_fd(), &addr).map_err(step("bind"))?;
        listen(&fd, Backlog::new(64).map_err(step("listen"))?).map_err(step("listen"))?;
        let mut raw = vec![0u8];
        raw.extend_from_slice(name.as_bytes());
        Ok(Listener { fd, addr: raw })
    }

    fn accept(&self) -> Result<OwnedFd, Errno> {
        use nix::sys::socket::{SockFlag, accept4};
        loop {
            match accept4(&self.fd, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK) {
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                r => return r,
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Tracer {
    fn prepare(&mut self, _: Pid) -> Result<(), Failure> {
        Err(Failure::Step(
            "ptrace (only supported on x86_64)",
            Errno::ENOSYS,
        ))
    }
    fn call(&mut self, _: Pid, _: Call) -> Result<(), Failure> {
        Err(Failure::Step(
            "ptrace (only supported on x86_64)",
            Errno::ENOSYS,
        ))
    }
    fn read_fds(&mut self, _: Pid, _: u64) -> Result<(u64, u64), Failure> {
        Err(Failure::Step(
            "ptrace (only supported on x86_64)",
            Errno::ENOSYS,
        ))
    }
    fn return_value(&mut self, _: Pid) -> i64 {
        -(Errno::ENOSYS as i64)
    }
    fn detach(&mut self, pid: Pid, _: bool, signal: Option<i32>) {
        let sig = signal.and_then(|s| nix::sys::signal::Signal::try_from(s).ok());
        let _ = nix::sys::ptrace::detach(pid, sig);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;
