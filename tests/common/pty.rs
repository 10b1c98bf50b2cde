//! A program under a pseudo-terminal, as a person at a terminal runs it (`docker run -it`, an
//! interactive shell): the program gets the pty's slave as stdin, stdout and stderr and as its
//! controlling terminal (a session of its own, the terminal's foreground process group); the
//! test writes keystrokes to the master and reads everything the terminal shows (echo
//! included, `\r\n` line ends) on a thread.
//!
//! Included with `#[path = "common/pty.rs"] mod pty;` by the test files that need it (it is
//! not part of `common`, which every test binary compiles).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running program on a pty.
pub struct Pty {
    child: Child,
    master: File,
    seen: Arc<Mutex<Vec<u8>>>,
    status: Option<i32>,
}

/// Polls `cond` every 10 ms until it holds or `deadline` passed.
fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Children of every thread of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
            }
        }
    }
    v
}

impl Pty {
    /// Starts `argv` with a clean environment (`env` only) on a new 80x24 pty.
    pub fn spawn<S: AsRef<OsStr>>(argv: &[S], env: &[(&str, &str)]) -> Pty {
        let (mut m, mut s) = (-1, -1);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two fds; the name buffer and termios are not asked for.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened and are owned here alone.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        for fd in [&master, &slave] {
            let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
            // SAFETY: fcntl on an owned fd.
            unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        let mut cmd = Command::new(argv[0].as_ref());
        cmd.args(argv[1..].iter().map(AsRef::as_ref))
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Every signal at its default and an empty mask, whatever the test runner left.
                for sig in 1..=64 {
                    if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                        libc::signal(sig, libc::SIG_DFL);
                    }
                }
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning on a pty");
        drop(cmd); // our copies of the slave: EOF (EIO) on the master once the program is gone
        let master = File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut r, buf) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return, // EIO: every slave fd is closed
                }
            }
        });
        Pty {
            child,
            master,
            seen,
            status: None,
        }
    }

    /// The pid of the program started (on the host).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Types `s` (keystrokes: `\n` is Enter, `\x03` is Ctrl-C).
    pub fn type_in(&mut self, s: &str) {
        self.master
            .write_all(s.as_bytes())
            .expect("writing to the pty");
    }

    /// Everything the terminal showed so far.
    pub fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// How much the terminal showed so far: a mark for [`Pty::wait_for`].
    pub fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until `needle` shows after byte `from`; returns the position after it. Panics with
    /// the screen when it does not within `deadline`.
    pub fn wait_for(&self, from: usize, needle: &str, deadline: Duration) -> usize {
        let mut at = None;
        let ok = wait_until(deadline, || {
            let b = self.seen.lock().unwrap();
            at = b
                .get(from..)
                .and_then(|tail| {
                    tail.windows(needle.len())
                        .position(|w| w == needle.as_bytes())
                })
                .map(|i| from + i + needle.len());
            at.is_some()
        });
        if !ok {
            panic!(
                "the terminal did not show {needle:?} within {deadline:?}; it showed:\n{}",
                self.seen()
            );
        }
        at.unwrap()
    }

    /// Has the program ended?
    pub fn exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        if let Ok(Some(st)) = self.child.try_wait() {
            self.status = Some(match (st.code(), st.signal()) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                _ => -1,
            });
        }
        self.status.is_some()
    }

    /// Waits for the program's end: its exit code (128+N for signal N). Panics with the
    /// screen when it does not end within `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        if !wait_until(deadline, || self.exited()) {
            panic!(
                "the program on the pty did not end within {deadline:?}; the terminal showed:\n{}",
                self.seen()
            );
        }
        self.status.unwrap()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if !self.exited() {
            // The program's own children first: a namespace init that unshare forked dies with
            // its whole namespace, not with unshare.
            for c in children_of(self.pid()) {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(c, libc::SIGKILL) };
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
