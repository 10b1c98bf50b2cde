//! Redirecting an adopted process's stdout and stderr into dinit, through ptrace.
//!
//! A daemon that double-forked keeps writing wherever its fds 1 and 2 point (often the pipe of
//! the service that started it, or /dev/null). To capture its lines as `<name>/<pid>`, dinit
//! makes the process itself install new pipe ends: it stops the process (`PTRACE_SEIZE` +
//! `PTRACE_INTERRUPT`), runs a few system calls in it (`mmap` a scratch page, `socket` +
//! `connect` to an abstract socket dinit listens on, `recvmsg` the two pipe ends dinit sends
//! with `SCM_RIGHTS`, `dup3` them over the fds to replace, `close`, `munmap`), restores its
//! registers and lets it go. The same is done in every descendant that holds the same pipe or
//! file as the adopted process's original stdout/stderr.
//!
//! Why this way: in Docker's default seccomp profile `pidfd_getfd` and `kcmp` need
//! CAP_SYS_PTRACE, while ptrace of one's own (reparented) child is allowed (Docker >= 19.03,
//! kernel >= 4.8). No code is written into the process: each call runs a `syscall` instruction
//! it already has (the one it was stopped in, or one of its vDSO), stepped with `PTRACE_SYSCALL`,
//! which also keeps other threads of the process safe. A system call the stop interrupted is
//! restarted as the kernel would (`-ERESTART*` handled like `arch_do_signal_or_restart`).
//! Signals that arrive meanwhile are handed back when the process is let go.
//!
//! The waits for the process's stops are blocking `waitpid` calls on that one pid: a stopped
//! process answers in microseconds, and an adoption is rare. Only x86_64 is supported; on
//! other architectures the redirection reports an error and adoption goes on without capture.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

/// Why a redirection did not happen.
#[derive(Debug)]
pub enum AdoptError {
    /// A step failed.
    Step { step: &'static str, errno: Errno },
    /// The adopted process ended meanwhile (its wait status, already collected).
    Gone(WaitStatus),
}

impl fmt::Display for AdoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdoptError::Step { step, errno } => {
                write!(f, "{step}: {}", crate::error::errno_text(*errno))
            }
            AdoptError::Gone(_) => f.write_str("process ended"),
        }
    }
}

/// An open file as the kernel identifies it: device and inode (and whether it is a character
/// device such as /dev/null, which many unrelated fds share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
    chr: bool,
}

/// Whether `pid`'s stdout now points to a character device (`/dev/null`): a daemon that
/// finished daemonizing only after it was adopted has thrown the captured pipe away.
pub fn stdout_dropped(pid: Pid) -> bool {
    ident(pid, 1).is_some_and(|id| id.chr)
}

fn ident(pid: Pid, fd: i32) -> Option<Ident> {
    let st = nix::sys::stat::stat(format!("/proc/{pid}/fd/{fd}").as_str()).ok()?;
    let chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    Some(Ident {
        dev: st.st_dev,
        ino: st.st_ino,
        chr,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Stdout,
    Stderr,
}

/// Replaces `pid`'s fds 1 and 2, and every fd of it and its descendants that is the same open
/// file as its original stdout or stderr, with `stdout_w` / `stderr_w`.
pub fn redirect(pid: Pid, stdout_w: &OwnedFd, stderr_w: &OwnedFd) -> Result<(), AdoptError> {
    let (orig_out, orig_err) = (ident(pid, 1), ident(pid, 2));
    let ours = [Some(fd_ident(stdout_w)), Some(fd_ident(stderr_w))];
    let listener = Listener::new(pid)?;
    let mut first = true;
    for p in std::iter::once(pid).chain(descendants(pid)) {
        let mut targets = Vec::new();
        if first {
            // The adopted process's own 1 and 2 always move, whatever they were.
            targets.push((1, Which::Stdout));
            targets.push((2, Which::Stderr));
        }
        for fd in open_fds(p) {
            if fd == 0 || (first && fd <= 2) {
                continue;
            }
            let Some(id) = ident(p, fd) else { continue };
            if ours.contains(&Some(id)) {
                continue;
            }
            // /dev/null and terminals are shared by unrelated fds: only fds 1 and 2 follow them.
            let eligible = |orig: Option<Ident>| orig == Some(id) && (fd <= 2 || !id.chr);
            if eligible(orig_out) {
                targets.push((fd, Which::Stdout));
            } else if eligible(orig_err) {
                targets.push((fd, Which::Stderr));
            }
        }
        let result = if targets.is_empty() {
            Ok(())
        } else {
            inject(p, &listener, stdout_w, stderr_w, &targets)
        };
        match result {
            Ok(()) => {}
            // A descendant that fails or ends does not undo the adopted process's redirection.
            Err(_) if !first => {}
            Err(e) => return Err(e),
        }
        first = false;
    }
    Ok(())
}

fn fd_ident(fd: &OwnedFd) -> Ident {
    match nix::sys::stat::fstat(fd) {
        Ok(st) => Ident {
            dev: st.st_dev,
            ino: st.st_ino,
            chr: false,
        },
        Err(_) => Ident {
            dev: u64::MAX,
            ino: u64::MAX,
            chr: false,
        },
    }
}

fn open_fds(pid: Pid) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
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
            let path = t.path().join("children");
            let Ok(list) = std::fs::read_to_string(path) else {
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

/// The abstract socket the processes connect to, to receive the pipe ends. (Only the x86_64
/// injection uses it; elsewhere adoption stops before the first connection.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Listener {
    fd: OwnedFd,
    addr: Vec<u8>,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl Listener {
    fn new(pid: Pid) -> Result<Listener, AdoptError> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, listen, socket};
        let step = |step| move |errno| AdoptError::Step { step, errno };
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(step("socket"))?;
        let name = format!("dinit-adopt-{}-{pid}", std::process::id());
        let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(step("socket"))?;
        bind(fd.as_raw_fd(), &addr).map_err(step("bind"))?;
        listen(
            &fd,
            nix::sys::socket::Backlog::new(4).map_err(step("listen"))?,
        )
        .map_err(step("listen"))?;
        let mut raw = vec![0u8]; // abstract: a NUL, then the name (no terminator)
        raw.extend_from_slice(name.as_bytes());
        Ok(Listener { fd, addr: raw })
    }

    /// Accepts the connection the tracee just made and sends it both pipe ends.
    fn send(&self, stdout_w: &OwnedFd, stderr_w: &OwnedFd) -> Result<(), AdoptError> {
        use nix::sys::socket::{ControlMessage, MsgFlags, accept4, sendmsg};
        let step = |step| move |errno| AdoptError::Step { step, errno };
        let conn =
            accept4(&self.fd, nix::sys::socket::SockFlag::SOCK_CLOEXEC).map_err(step("accept"))?;
        let fds = [stdout_w.as_raw_fd(), stderr_w.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"x")];
        sendmsg::<()>(
            conn.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(step("sendmsg"))?;
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
fn inject(
    pid: Pid,
    listener: &Listener,
    out: &OwnedFd,
    err: &OwnedFd,
    targets: &[(i32, Which)],
) -> Result<(), AdoptError> {
    let mut t = Tracee::attach(pid)?;
    let result = t.redirect(listener, out, err, targets);
    t.release();
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn inject(
    _: Pid,
    _: &Listener,
    _: &OwnedFd,
    _: &OwnedFd,
    _: &[(i32, Which)],
) -> Result<(), AdoptError> {
    Err(AdoptError::Step {
        step: "ptrace (only supported on x86_64)",
        errno: Errno::ENOSYS,
    })
}

#[cfg(target_arch = "x86_64")]
use x86::Tracee;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use nix::sys::ptrace::{self, Options};
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitPidFlag, waitpid};

    const SYS_MMAP: u64 = 9;
    const SYS_MUNMAP: u64 = 11;
    const SYS_CLOSE: u64 = 3;
    const SYS_SOCKET: u64 = 41;
    const SYS_CONNECT: u64 = 42;
    const SYS_RECVMSG: u64 = 47;
    const SYS_DUP3: u64 = 292;
    const SYS_RESTART_SYSCALL: u64 = 219;
    /// Kernel-internal restart codes a stopped system call may show in rax.
    const ERESTARTSYS: i64 = -512;
    const ERESTARTNOINTR: i64 = -513;
    const ERESTARTNOHAND: i64 = -514;
    const ERESTART_RESTARTBLOCK: i64 = -516;
    const PAGE: u64 = 4096;
    /// `syscall` is `0f 05`.
    const SYSCALL_INSN: u16 = 0x050f;

    pub struct Tracee {
        pid: Pid,
        /// Registers to put back: the stop's, with an interrupted system call set up to restart.
        restore: libc::user_regs_struct,
        /// A `syscall` instruction in the process.
        insn: u64,
        /// A signal that arrived while the process was held, to hand back.
        pending: Option<Signal>,
        attached: bool,
    }

    fn step(step: &'static str) -> impl Fn(Errno) -> AdoptError {
        move |errno| AdoptError::Step { step, errno }
    }

    impl Tracee {
        pub fn attach(pid: Pid) -> Result<Tracee, AdoptError> {
            ptrace::seize(pid, Options::PTRACE_O_TRACESYSGOOD).map_err(step("ptrace seize"))?;
            let mut t = Tracee {
                pid,
                restore: unsafe_zeroed_regs(),
                insn: 0,
                pending: None,
                attached: true,
            };
            ptrace::interrupt(pid).map_err(step("ptrace interrupt"))?;
            t.wait_event_stop()?;
            let regs = ptrace::getregs(pid).map_err(step("ptrace getregs"))?;
            t.restore = restartable(regs);
            t.insn = t.find_syscall_insn(regs.rip)?;
            Ok(t)
        }

        /// Waits for the stop `PTRACE_INTERRUPT` asked for; signals arriving first are kept.
        fn wait_event_stop(&mut self) -> Result<(), AdoptError> {
            loop {
                match self.wait()? {
                    WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_STOP) => return Ok(()),
                    WaitStatus::Stopped(_, sig) => {
                        self.pending = Some(sig);
                        ptrace::cont(self.pid, None).map_err(step("ptrace cont"))?;
                    }
                    _ => ptrace::cont(self.pid, None).map_err(step("ptrace cont"))?,
                }
            }
        }

        fn wait(&mut self) -> Result<WaitStatus, AdoptError> {
            loop {
                match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                    Ok(ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                        self.attached = false;
                        return Err(AdoptError::Gone(ws));
                    }
                    Ok(ws) => return Ok(ws),
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        return Err(AdoptError::Step {
                            step: "waitpid",
                            errno: e,
                        });
                    }
                }
            }
        }

        /// The instruction the process was stopped right after, if it is a `syscall`; else the
        /// first one in its vDSO.
        fn find_syscall_insn(&self, rip: u64) -> Result<u64, AdoptError> {
            if rip >= 2 && self.read_u16(rip - 2) == Some(SYSCALL_INSN) {
                return Ok(rip - 2);
            }
            let maps =
                std::fs::read_to_string(format!("/proc/{}/maps", self.pid)).unwrap_or_default();
            for line in maps.lines().filter(|l| l.ends_with("[vdso]")) {
                let Some((range, _)) = line.split_once(' ') else {
                    continue;
                };
                let Some((lo, hi)) = range.split_once('-') else {
                    continue;
                };
                let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
                else {
                    continue;
                };
                let mut addr = lo;
                while addr + 8 <= hi {
                    let word = ptrace::read(self.pid, addr as ptrace::AddressType)
                        .map_err(step("ptrace peek"))? as u64;
                    for i in 0..7 {
                        if (word >> (8 * i)) as u16 == SYSCALL_INSN {
                            return Ok(addr + i);
                        }
                    }
                    addr += 7; // overlap by one byte: an instruction may straddle two words
                }
            }
            Err(AdoptError::Step {
                step: "finding a syscall instruction",
                errno: Errno::ENOENT,
            })
        }

        fn read_u16(&self, addr: u64) -> Option<u16> {
            ptrace::read(self.pid, addr as ptrace::AddressType)
                .ok()
                .map(|w| w as u16)
        }

        fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), AdoptError> {
            for (i, chunk) in bytes.chunks(8).enumerate() {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                let at = addr + 8 * i as u64;
                ptrace::write(
                    self.pid,
                    at as ptrace::AddressType,
                    i64::from_ne_bytes(word) as libc::c_long,
                )
                .map_err(step("ptrace poke"))?;
            }
            Ok(())
        }

        fn read_word(&self, addr: u64) -> Result<u64, AdoptError> {
            ptrace::read(self.pid, addr as ptrace::AddressType)
                .map(|w| w as u64)
                .map_err(step("ptrace peek"))
        }

        /// Runs one system call in the process; returns its result or its errno.
        fn call(&mut self, name: &'static str, nr: u64, args: [u64; 6]) -> Result<u64, AdoptError> {
            let mut regs = self.restore;
            regs.rip = self.insn;
            regs.rax = nr;
            regs.orig_rax = u64::MAX; // no restart logic for this call
            regs.rdi = args[0];
            regs.rsi = args[1];
            regs.rdx = args[2];
            regs.r10 = args[3];
            regs.r8 = args[4];
            regs.r9 = args[5];
            ptrace::setregs(self.pid, regs).map_err(step("ptrace setregs"))?;
            // Entry stop, then exit stop.
            for _ in 0..2 {
                ptrace::syscall(self.pid, None).map_err(step("ptrace syscall"))?;
                loop {
                    match self.wait()? {
                        WaitStatus::PtraceSyscall(_) => break,
                        WaitStatus::Stopped(_, sig) => {
                            self.pending = Some(sig);
                            ptrace::syscall(self.pid, None).map_err(step("ptrace syscall"))?;
                        }
                        _ => ptrace::syscall(self.pid, None).map_err(step("ptrace syscall"))?,
                    }
                }
            }
            let ret = ptrace::getregs(self.pid)
                .map_err(step("ptrace getregs"))?
                .rax as i64;
            if (-4095..0).contains(&ret) {
                return Err(AdoptError::Step {
                    step: name,
                    errno: Errno::from_raw(-ret as i32),
                });
            }
            Ok(ret as u64)
        }

        pub fn redirect(
            &mut self,
            listener: &Listener,
            out: &OwnedFd,
            err: &OwnedFd,
            targets: &[(i32, Which)],
        ) -> Result<(), AdoptError> {
            let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
            let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
            let page = self.call("mmap", SYS_MMAP, [0, PAGE, prot, flags, u64::MAX, 0])?;
            let result = self.redirect_with(page, listener, out, err, targets);
            let _ = self.call("munmap", SYS_MUNMAP, [page, PAGE, 0, 0, 0, 0]);
            result
        }

        fn redirect_with(
            &mut self,
            page: u64,
            listener: &Listener,
            out: &OwnedFd,
            err: &OwnedFd,
            targets: &[(i32, Which)],
        ) -> Result<(), AdoptError> {
            // Scratch page layout: 0 sockaddr_un, 256 msghdr, 384 iovec, 448 one data byte,
            // 512 control buffer.
            let mut sa = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
            sa.extend_from_slice(&listener.addr);
            self.write_bytes(page, &sa)?;
            let sock_flags = (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64;
            let s = self.call(
                "socket",
                SYS_SOCKET,
                [libc::AF_UNIX as u64, sock_flags, 0, 0, 0, 0],
            )?;
            let result = (|| {
                self.call("connect", SYS_CONNECT, [s, page, sa.len() as u64, 0, 0, 0])?;
                listener.send(out, err)?;
                let control_len = unsafe_cmsg_space(2 * std::mem::size_of::<i32>());
                let iov = [page + 448, 1];
                self.write_bytes(page + 384, &words(&iov))?;
                // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
                let msg = [0, 0, page + 384, 1, page + 512, control_len as u64, 0];
                self.write_bytes(page + 256, &words(&msg))?;
                self.call(
                    "recvmsg",
                    SYS_RECVMSG,
                    [s, page + 256, libc::MSG_CMSG_CLOEXEC as u64, 0, 0, 0],
                )?;
                // struct cmsghdr: len (8 bytes), level (4), type (4), then the fds.
                let fds = self.read_word(page + 512 + 16)?;
                let (new_out, new_err) = (fds as u32 as u64, (fds >> 32) as u32 as u64);
                let mut res = Ok(());
                for &(fd, which) in targets {
                    let src = if which == Which::Stdout {
                        new_out
                    } else {
                        new_err
                    };
                    if let Err(e) = self.call("dup3", SYS_DUP3, [src, fd as u64, 0, 0, 0, 0]) {
                        res = res.and(Err(e));
                    }
                }
                let _ = self.call("close", SYS_CLOSE, [new_out, 0, 0, 0, 0, 0]);
                let _ = self.call("close", SYS_CLOSE, [new_err, 0, 0, 0, 0, 0]);
                res
            })();
            let _ = self.call("close", SYS_CLOSE, [s, 0, 0, 0, 0, 0]);
            result
        }

        /// Puts the registers back and lets the process go, with any signal it was sent.
        pub fn release(&mut self) {
            if !self.attached {
                return;
            }
            let _ = ptrace::setregs(self.pid, self.restore);
            let _ = ptrace::detach(self.pid, self.pending.take());
            self.attached = false;
        }
    }

    fn words(ws: &[u64]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    fn unsafe_cmsg_space(len: usize) -> usize {
        // SAFETY: CMSG_SPACE is pure arithmetic.
        unsafe { libc::CMSG_SPACE(len as u32) as usize }
    }

    fn unsafe_zeroed_regs() -> libc::user_regs_struct {
        // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
        unsafe { std::mem::zeroed() }
    }

    /// The registers of a stop inside an interrupted system call, set up so that the call
    /// restarts when the process goes on, as the kernel's signal path would have done.
    fn restartable(mut regs: libc::user_regs_struct) -> libc::user_regs_struct {
        if regs.orig_rax as i64 >= 0 {
            match regs.rax as i64 {
                ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                    regs.rax = regs.orig_rax;
                    regs.rip -= 2;
                }
                ERESTART_RESTARTBLOCK => {
                    regs.rax = SYS_RESTART_SYSCALL;
                    regs.rip -= 2;
                }
                _ => {}
            }
        }
        regs.orig_rax = u64::MAX;
        regs
    }
}
