//! Starts one program the way the contract (§3) says every program starts.
//!
//! argv is the path (plus `finish`'s two arguments), the environment is dinit's (plus
//! `DINIT_PID` for `terminate`), cwd is given, stdin is /dev/null or a given fd, stdout and stderr
//! are fresh pipes (or stdout a given fd), and nothing else crosses exec: every fd dinit holds is
//! close-on-exec, the signal mask is empty and every disposition is back to the default (SIGPIPE
//! is ignored in dinit, and dinit may have inherited ignored signals).
//!
//! The fork does not wait for the exec: dinit goes on (starting 100 services costs 100 forks, not
//! 100 execs in a row). Whether the exec worked arrives later on the [`Child::exec_status`] pipe:
//! EOF when exec closed it (success), or the errno the child wrote before `_exit(127)`.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{ForkResult, Pid, fork};

pub enum Input {
    Null,
    Fd(OwnedFd),
    /// dinit's own stdin (the main program's).
    Inherit,
}

pub enum StdoutTo {
    /// A new pipe whose read end comes back in [`Child::stdout`]; stderr likewise.
    Pipe,
    /// A given fd (the write end of the pipe to the service's logger); stderr a new pipe.
    Fd(OwnedFd),
    /// dinit's own stdout and stderr, and the terminal's foreground process group (the main
    /// program when dinit's stdin is a terminal: `docker run -it`, as under tini).
    Terminal,
    /// `/dev/null`; stderr a new pipe (a `check` script, as runit runs it).
    Null,
}

pub struct Child {
    pub pid: Pid,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Read end of the exec-status pipe (see the module doc).
    pub exec_status: OwnedFd,
}

pub struct Spec<'a> {
    pub program: &'a Path,
    /// argv[0], when it is not `program` (the main program as it was named).
    pub argv0: Option<&'a OsStr>,
    /// One more fd the child gets, at this number (s6's notification fd).
    pub extra: Option<(OwnedFd, RawFd)>,
    pub args: &'a [std::ffi::OsString],
    pub cwd: &'a Path,
    pub stdin: Input,
    pub stdout: StdoutTo,
    /// Variables set on top of dinit's environment (replacing any of the same name).
    pub env: &'a [(&'a str, String)],
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC)
}

/// What an exec-status pipe said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStatus {
    /// Not known yet (the child has not exec'd or failed yet).
    Pending,
    Started,
    Failed(Errno),
}

/// Reads an exec-status pipe without blocking.
pub fn read_exec_status(fd: &OwnedFd) -> ExecStatus {
    let mut buf = [0u8; 4];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return ExecStatus::Started,
            Ok(4) => return ExecStatus::Failed(Errno::from_raw(i32::from_ne_bytes(buf))),
            // A short write of 4 bytes to a pipe cannot happen (PIPE_BUF); treat it as unknown.
            Ok(_) => return ExecStatus::Failed(Errno::EIO),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return ExecStatus::Pending,
            Err(e) => return ExecStatus::Failed(e),
        }
    }
}

/// dinit's own environment, prepared once.
fn base_env() -> &'static [CString] {
    static ENV: OnceLock<Vec<CString>> = OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect()
    })
}

fn cstring(s: &OsStr) -> Result<CString, Errno> {
    CString::new(s.as_bytes()).map_err(|_| Errno::EINVAL)
}

pub fn spawn(spec: Spec<'_>) -> Result<Child, Errno> {
    // Everything the child needs is prepared here: after fork it may only make raw syscalls.
    let program = cstring(spec.program.as_os_str())?;
    let mut argv = vec![match spec.argv0 {
        Some(a) => cstring(a)?,
        None => program.clone(),
    }];
    for a in spec.args {
        argv.push(cstring(a)?);
    }
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let extra: Vec<CString> = spec
        .env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let overridden = |e: &CString| {
        spec.env.iter().any(|(k, _)| {
            e.as_bytes()
                .strip_prefix(k.as_bytes())
                .is_some_and(|r| r.first() == Some(&b'='))
        })
    };
    let envp: Vec<*const libc::c_char> = base_env()
        .iter()
        .filter(|e| !overridden(e))
        .chain(extra.iter())
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let cwd = cstring(spec.cwd.as_os_str())?;

    // Kept open until the fork: dinit's own fds are used as they are.
    let stdin = match spec.stdin {
        Input::Null => Some(nix::fcntl::open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?),
        Input::Fd(fd) => Some(fd),
        Input::Inherit => None,
    };
    let foreground = matches!(spec.stdout, StdoutTo::Terminal);
    let (out_r, out_w, err_r, err_w) = match spec.stdout {
        StdoutTo::Pipe => {
            let (r, w) = pipe()?;
            let (er, ew) = pipe()?;
            (Some(r), Some(w), Some(er), Some(ew))
        }
        StdoutTo::Fd(w) => {
            let (er, ew) = pipe()?;
            (None, Some(w), Some(er), Some(ew))
        }
        StdoutTo::Terminal => (None, None, None, None),
        StdoutTo::Null => {
            let null = nix::fcntl::open(
                "/dev/null",
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            let (er, ew) = pipe()?;
            (None, Some(null), Some(er), Some(ew))
        }
    };
    let (status_r, status_w) = pipe()?;

    // No signal handler may run in the child before its dispositions are reset (it would write
    // into dinit's signal pipe): block everything around the fork.
    let mut saved = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut saved),
    )?;
    // SAFETY: dinit is single-threaded, so the child is a full copy with no lock held elsewhere;
    // the child branch below only makes async-signal-safe syscalls on memory prepared above.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        // Only the parent: the child keeps everything blocked until its dispositions are
        // default again (exec_child), or a signal sent to it early would run dinit's handler.
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&saved), None);
    }
    match forked {
        Ok(ForkResult::Child) => {
            let raw = |fd: &Option<OwnedFd>, own: RawFd| fd.as_ref().map_or(own, |f| f.as_raw_fd());
            let fds = [raw(&stdin, 0), raw(&out_w, 1), raw(&err_w, 2)];
            let child = ChildSetup {
                fds,
                foreground,
                extra: spec.extra.as_ref().map(|(fd, n)| (fd.as_raw_fd(), *n)),
                status: status_w.as_raw_fd(),
            };
            // SAFETY: see above; this function never returns.
            unsafe { exec_child(&child, &cwd, &program, &argv_ptrs, &envp) }
        }
        Ok(ForkResult::Parent { child }) => {
            // Dropping stdin, out_w, err_w, status_w here closes dinit's copies of the child's ends.
            Ok(Child {
                pid: child,
                stdout: out_r,
                stderr: err_r,
                exec_status: status_r,
            })
        }
        Err(e) => Err(e),
    }
}

/// What the child does with its fds before exec.
struct ChildSetup {
    /// Its 0, 1, 2 (dinit's own where they are inherited).
    fds: [RawFd; 3],
    /// A process group of its own, and the terminal's foreground.
    foreground: bool,
    /// One more fd: (source, its number in the child).
    extra: Option<(RawFd, RawFd)>,
    status: RawFd,
}

/// The child between fork and exec.
///
/// # Safety
/// Only in the child of a fork of a single-threaded process; all pointers valid and
/// NUL-terminated lists.
unsafe fn exec_child(
    setup: &ChildSetup,
    cwd: &CString,
    program: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    let (fds, mut status) = (setup.fds, setup.status);
    // SAFETY: raw syscalls on fds and memory owned by this (child) process.
    unsafe {
        if setup.foreground {
            // Its own process group, in the terminal's foreground: Ctrl-C and job control reach
            // it, not dinit. Every signal is still blocked here, so tcsetpgrp from what is
            // still a background group does not stop it with SIGTTOU.
            libc::setpgid(0, 0);
            libc::tcsetpgrp(0, libc::getpid());
        }
        for sig in 1..=KERNEL_SIGRTMAX {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                set_disposition(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if let Some(limit) = INHERITED_NOFILE.get() {
            libc::setrlimit(libc::RLIMIT_NOFILE, limit);
        }
        // The sources are >= 3 (fds 0-2 of dinit are always open), or the target itself where
        // dinit's own fd is inherited (dup2 onto itself does nothing), so no dup2 clobbers
        // another source; dup2 clears close-on-exec on the target.
        if setup.extra.is_some() {
            // The extra fd's number (3..=255) must not land on the exec-status pipe: move that
            // above it first.
            let moved = libc::fcntl(status, libc::F_DUPFD_CLOEXEC, 256);
            if moved >= 0 {
                status = moved;
            }
        }
        for (target, src) in fds.iter().enumerate() {
            if libc::dup2(*src, target as RawFd) < 0 {
                fail(status);
            }
        }
        // After 0-2: their sources are not needed any more, so this may land on one of them.
        if let Some((src, n)) = setup.extra {
            let r = if src == n {
                libc::fcntl(n, libc::F_SETFD, 0)
            } else {
                libc::dup2(src, n)
            };
            if r < 0 {
                fail(status);
            }
        }
        if libc::chdir(cwd.as_ptr()) < 0 {
            fail(status);
        }
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(status)
    }
}

/// Reports errno on the status pipe and exits; only in the child.
unsafe fn fail(status: RawFd) -> ! {
    // SAFETY: async-signal-safe calls in the forked child.
    unsafe {
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(status, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// The open-files limit dinit was started with, which its children get back (see
/// [`raise_nofile_limit`]).
static INHERITED_NOFILE: OnceLock<libc::rlimit> = OnceLock::new();

/// dinit holds two or three fds per program it runs, so a container with a thousand services
/// would hit a soft limit of 1024: raise it to the hard limit for dinit itself. Programs get the
/// original soft limit back before exec (some still use `select`, which breaks above 1024).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let _ = INHERITED_NOFILE.set(lim);
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
    }
}

/// Marks every fd above 2 close-on-exec, so that fds dinit inherited (from a runtime, a shell,
/// a test harness) never reach its services.
pub fn cloexec_inherited_fds() {
    // close_range(3, ~0, CLOSE_RANGE_CLOEXEC) needs Linux 5.11; older kernels walk /proc.
    // SAFETY: a syscall with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: fcntl on an fd number; one that was the read_dir's own and is closed now fails
        // harmlessly with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Whether `path` exists (through symlinks): a missing `terminate` or `finish` is not started
/// at all, which spares a fork.
pub fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

/// glibc raises its mmap threshold each time a large block is freed, after which big buffers
/// (a burst's output queue, a long line) come from the heap and their memory is not given back:
/// a long-running PID 1 that sees bursts would creep up. A fixed threshold keeps buffers of
/// 64 KiB and more in their own mappings, returned to the kernel when freed.
pub fn fixed_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt with a documented parameter, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Sets `sigs` and `range` to SIG_IGN in dinit itself (see `signals::IGNORED`); a signal the C
/// library keeps for itself is refused (EINVAL), which is harmless.
pub fn ignore_signals(sigs: impl IntoIterator<Item = i32>, range: std::ops::RangeInclusive<i32>) {
    for sig in sigs.into_iter().chain(range) {
        // SAFETY: SIG_IGN installs no handler code; dinit is single-threaded here.
        unsafe { set_disposition(sig, libc::SIG_IGN) };
    }
}

/// The kernel's real-time signals end here (x86_64 and aarch64); the C library reserves the
/// first few (glibc 32 and 33, musl up to 34) and its `SIGRTMIN()` starts after them.
pub const KERNEL_SIGRTMAX: i32 = 64;

/// Sets `sig` to SIG_DFL or SIG_IGN with the raw system call: the C library refuses its
/// reserved real-time signals (EINVAL), which any process may still send.
///
/// # Safety
/// Only SIG_DFL or SIG_IGN (no handler code); async-signal-safe (used after fork).
pub unsafe fn set_disposition(sig: i32, handler: libc::sighandler_t) {
    // The kernel's struct sigaction: handler, flags, restorer (where the architecture has one),
    // mask. With everything but the handler zero, both layouts are the same bytes.
    let act: [libc::c_ulong; 4] = [handler as libc::c_ulong, 0, 0, 0];
    // SAFETY: a plain system call on a local buffer of the kernel's size, sigsetsize 8.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            act.as_ptr(),
            std::ptr::null_mut::<libc::c_void>(),
            8usize,
        )
    };
}
