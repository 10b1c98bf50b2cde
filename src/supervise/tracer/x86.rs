//! x86_64: registers, the `syscall` instruction, the scratch page's layout.

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;

use super::{Call, Failure, Tracer, step};

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
/// Scratch page layout: 0 sockaddr_un, 256 msghdr, 384 iovec, 448 one data byte, 512 control
/// buffer (`cmsghdr`: len 8 bytes, level 4, type 4, then the fds).
const AT_MSGHDR: u64 = 256;
const AT_IOVEC: u64 = 384;
const AT_DATA: u64 = 448;
const AT_CONTROL: u64 = 512;

/// What a traced process had before dinit touched it.
pub struct Saved {
    /// Registers to put back: the stop's, with an interrupted system call set up to restart.
    restore: libc::user_regs_struct,
    /// A `syscall` instruction in the process.
    insn: u64,
}

impl Tracer {
    pub(super) fn prepare(&mut self, pid: Pid) -> Result<(), Failure> {
        let regs = ptrace::getregs(pid).map_err(step("ptrace getregs"))?;
        let insn = find_syscall_insn(pid, regs.rip)?;
        self.regs.insert(
            pid,
            Saved {
                restore: restartable(regs),
                insn,
            },
        );
        Ok(())
    }

    pub(super) fn call(&mut self, pid: Pid, call: Call) -> Result<(), Failure> {
        let saved = self
            .regs
            .get(&pid)
            .ok_or(Failure::Step(call.name(), Errno::ESRCH))?;
        let (nr, args) = match call {
            Call::Mmap => {
                let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
                let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
                (SYS_MMAP, [0, PAGE, prot, flags, u64::MAX, 0])
            }
            Call::Socket => {
                let ty = (libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
                (SYS_SOCKET, [libc::AF_UNIX as u64, ty, 0, 0, 0, 0])
            }
            Call::Connect { page, sock } => {
                let addr = &self
                    .listener
                    .as_ref()
                    .ok_or(Failure::Step("connect", Errno::ENOTCONN))?
                    .addr;
                let mut sa = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
                sa.extend_from_slice(addr);
                write_bytes(pid, page, &sa)?;
                (SYS_CONNECT, [sock, page, sa.len() as u64, 0, 0, 0])
            }
            Call::Recvmsg { page, sock } => {
                // SAFETY: CMSG_SPACE is pure arithmetic.
                let control_len = unsafe { libc::CMSG_SPACE(2 * 4) } as u64;
                write_bytes(pid, page + AT_IOVEC, &words(&[page + AT_DATA, 1]))?;
                // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
                let msg = [0, 0, page + AT_IOVEC, 1, page + AT_CONTROL, control_len, 0];
                write_bytes(pid, page + AT_MSGHDR, &words(&msg))?;
                let flags = (libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) as u64;
                (SYS_RECVMSG, [sock, page + AT_MSGHDR, flags, 0, 0, 0])
            }
            Call::Dup3 { from, to } => (SYS_DUP3, [from, to as u64, 0, 0, 0, 0]),
            Call::Close(fd) => (SYS_CLOSE, [fd, 0, 0, 0, 0, 0]),
            Call::Munmap(page) => (SYS_MUNMAP, [page, PAGE, 0, 0, 0, 0]),
        };
        let mut regs = saved.restore;
        regs.rip = saved.insn;
        regs.rax = nr;
        regs.orig_rax = u64::MAX; // no restart logic for this call
        regs.rdi = args[0];
        regs.rsi = args[1];
        regs.rdx = args[2];
        regs.r10 = args[3];
        regs.r8 = args[4];
        regs.r9 = args[5];
        ptrace::setregs(pid, regs).map_err(step("ptrace setregs"))?;
        ptrace::syscall(pid, None).map_err(step("ptrace syscall"))
    }

    pub(super) fn return_value(&mut self, pid: Pid) -> i64 {
        match ptrace::getregs(pid) {
            Ok(regs) => regs.rax as i64,
            Err(e) => -(e as i64),
        }
    }

    pub(super) fn read_fds(&mut self, pid: Pid, page: u64) -> Result<(u64, u64), Failure> {
        let word = ptrace::read(pid, (page + AT_CONTROL + 16) as ptrace::AddressType)
            .map_err(step("ptrace peek"))? as u64;
        Ok((word as u32 as u64, (word >> 32) as u32 as u64))
    }

    /// Puts the registers back (when asked) and lets the process go, with `signal`.
    pub(super) fn detach(&mut self, pid: Pid, restore: bool, signal: Option<i32>) {
        if let Some(saved) = self.regs.remove(&pid)
            && restore
        {
            let _ = ptrace::setregs(pid, saved.restore);
        }
        let sig = signal.and_then(|s| nix::sys::signal::Signal::try_from(s).ok());
        let _ = ptrace::detach(pid, sig);
    }
}

/// The instruction the process was stopped right after, if it is a `syscall`; else the first
/// one in its vDSO.
fn find_syscall_insn(pid: Pid, rip: u64) -> Result<u64, Failure> {
    let read_u16 = |addr: u64| {
        ptrace::read(pid, addr as ptrace::AddressType)
            .ok()
            .map(|w| w as u16)
    };
    if rip >= 2 && read_u16(rip - 2) == Some(SYSCALL_INSN) {
        return Ok(rip - 2);
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    for line in maps.lines().filter(|l| l.ends_with("[vdso]")) {
        let Some((range, _)) = line.split_once(' ') else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) else {
            continue;
        };
        let mut addr = lo;
        while addr + 8 <= hi {
            let word =
                ptrace::read(pid, addr as ptrace::AddressType).map_err(step("ptrace peek"))? as u64;
            for i in 0..7 {
                if (word >> (8 * i)) as u16 == SYSCALL_INSN {
                    return Ok(addr + i);
                }
            }
            addr += 7; // overlap by one byte: an instruction may straddle two words
        }
    }
    Err(Failure::Step(
        "finding a syscall instruction",
        Errno::ENOENT,
    ))
}

fn write_bytes(pid: Pid, addr: u64, bytes: &[u8]) -> Result<(), Failure> {
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        let at = addr + 8 * i as u64;
        ptrace::write(
            pid,
            at as ptrace::AddressType,
            i64::from_ne_bytes(word) as libc::c_long,
        )
        .map_err(step("ptrace poke"))?;
    }
    Ok(())
}

fn words(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_ne_bytes()).collect()
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
