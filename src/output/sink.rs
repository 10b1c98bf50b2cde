//! One of dinit's own output fds (1 or 2): a bounded queue and how to write it without blocking.
//!
//! dinit must never stop in `write(2)`: a stalled `docker logs` reader must not keep it from
//! reaping or from reacting to SIGTERM. So a pipe or terminal is written through a private,
//! non-blocking open file description (`/proc/self/fd/N` reopened: O_NONBLOCK then concerns dinit
//! alone, never the shell or runtime that shares the original one), registered with the poll for
//! writability. A socket gets O_NONBLOCK on the shared description, restored at exit. A regular
//! file (or /dev/null) cannot be polled and never blocks for long: it is written directly.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{SFlag, fstat};

/// A queue over this size stops the pipes that feed it from being read (backpressure).
pub const HIGH_WATER: usize = 1 << 20;

/// A queue buffer grown by a burst is kept while bursts keep coming (giving it back and growing
/// it again would fault every page of it in anew, once per write) and shrunk once a period this
/// long needed no more than the small buffer, so that an idle or quietly logging dinit stays
/// small.
const TRIM_AFTER: Duration = Duration::from_secs(1);
/// Capacity kept after a trim, and the size above which a buffer is worth trimming.
const KEEP: usize = 64 * 1024;
const TRIM_ABOVE: usize = 256 * 1024;

/// Original file status flags of fd 1 and 2 when dinit changed them (-1: untouched); the panic
/// hook and the normal exit put them back.
static RESTORE_FLAGS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Puts back the flags dinit changed on fds 1 and 2.
pub fn restore_flags() {
    for (i, saved) in RESTORE_FLAGS.iter().enumerate() {
        let flags = saved.swap(-1, Ordering::SeqCst);
        if flags >= 0 {
            // SAFETY: plain fcntl on fd 1 or 2 with flags read from the same fd earlier.
            unsafe { libc::fcntl(i as RawFd + 1, libc::F_SETFL, flags) };
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Written directly; a write may wait for the disk, never for a reader.
    Direct,
    /// Non-blocking and registered with the poll.
    Polled,
}

pub struct Sink {
    pub name: &'static str,
    fd: RawFd,
    /// The private description, when one was opened (closed on drop).
    _own: Option<OwnedFd>,
    mode: Mode,
    /// For `Polled`: false after EAGAIN until the poll says writable again.
    writable: bool,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    head: usize,
    /// Stream offset of `buf[0]`: bytes written and dropped from `buf` before.
    base: u64,
    /// Set when writing failed for good (EPIPE, EBADF, ...): later output is dropped.
    pub broken: Option<Errno>,
    /// When a big buffer is due for a look (see [`Sink::trim`]).
    trim_at: Option<Instant>,
    /// The largest batch written since the last look.
    used: usize,
}

impl Sink {
    /// Sets up fd 1 or 2 (`fd` must be open: main reopens /dev/null on a closed one).
    pub fn open(fd: RawFd, name: &'static str) -> Sink {
        let mut sink = Sink {
            name,
            fd,
            _own: None,
            mode: Mode::Direct,
            writable: true,
            buf: Vec::new(),
            head: 0,
            base: 0,
            broken: None,
            trim_at: None,
            used: 0,
        };
        let kind = match fstat(unsafe_borrow(fd)) {
            Ok(st) => SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()),
            Err(e) => {
                sink.broken = Some(e);
                return sink;
            }
        };
        if kind == SFlag::S_IFIFO || kind == SFlag::S_IFCHR {
            let path = format!("/proc/self/fd/{fd}");
            let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
            if let Ok(own) = nix::fcntl::open(path.as_str(), flags, nix::sys::stat::Mode::empty()) {
                sink.fd = own.as_raw_fd();
                sink._own = Some(own);
                sink.mode = Mode::Polled;
            }
        } else if kind == SFlag::S_IFSOCK
            && let Ok(flags) = fcntl(unsafe_borrow(fd), FcntlArg::F_GETFL)
        {
            let new = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
            if fcntl(unsafe_borrow(fd), FcntlArg::F_SETFL(new)).is_ok() {
                RESTORE_FLAGS[(fd - 1) as usize].store(flags, Ordering::SeqCst);
                sink.mode = Mode::Polled;
            }
        }
        sink
    }

    /// The fd to register for writability, when this sink is polled.
    pub fn poll_fd(&self) -> Option<RawFd> {
        (self.mode == Mode::Polled).then_some(self.fd)
    }

    /// The poll refused the fd (e.g. /dev/null reopened): write it directly instead.
    pub fn not_pollable(&mut self) {
        self.mode = Mode::Direct;
        self.writable = true;
    }

    pub fn set_writable(&mut self) {
        self.writable = true;
    }

    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn over_limit(&self) -> bool {
        self.pending() >= HIGH_WATER
    }

    /// Total bytes ever queued / written (stream offsets).
    pub fn queued_total(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    pub fn written_total(&self) -> u64 {
        self.base + self.head as u64
    }

    /// Writes queued bytes up to stream offset `limit`, until done or the fd would block.
    /// Returns the error that broke the stream, once.
    pub fn write_up_to(&mut self, limit: u64) -> Option<Errno> {
        if self.broken.is_some() {
            self.discard();
            return None;
        }
        while self.head < self.buf.len() && self.writable {
            let end = (limit.saturating_sub(self.base) as usize).min(self.buf.len());
            if end <= self.head {
                break;
            }
            // SAFETY: writing from a live buffer to an fd this sink owns or borrows from fd 1/2.
            let n = unsafe {
                libc::write(
                    self.fd,
                    self.buf[self.head..end].as_ptr().cast(),
                    end - self.head,
                )
            };
            if n >= 0 {
                self.head += n as usize;
                continue;
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN if self.mode == Mode::Polled => self.writable = false,
                // A direct fd that says EAGAIN was made non-blocking by someone else: try again on
                // the next turn of the loop rather than spin here.
                Errno::EAGAIN => break,
                e => {
                    self.broken = Some(e);
                    self.discard();
                    return Some(e);
                }
            }
        }
        if self.head == self.buf.len() {
            self.discard();
        } else if self.head > HIGH_WATER {
            self.buf.drain(..self.head);
            self.base += self.head as u64;
            self.head = 0;
        }
        None
    }

    /// A direct sink that could not write everything (EAGAIN): the loop should come back soon.
    pub fn wants_retry(&self) -> bool {
        self.mode == Mode::Direct && self.pending() > 0 && self.broken.is_none()
    }

    fn discard(&mut self) {
        self.used = self.used.max(self.buf.len());
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.head = 0;
        if self.trim_at.is_none() && self.buf.capacity() > TRIM_ABOVE {
            self.trim_at = Some(Instant::now() + TRIM_AFTER);
        }
    }

    /// When [`Sink::trim`] has something to do.
    pub fn trim_deadline(&self) -> Option<Instant> {
        self.trim_at
    }

    /// Gives back the memory of a big, empty buffer when the last `TRIM_AFTER` needed no more
    /// than the small one; while bursts go on, looks again `TRIM_AFTER` later.
    pub fn trim(&mut self, now: Instant) {
        match self.trim_at {
            Some(at) if now >= at => {}
            _ => return,
        }
        self.trim_at = None;
        if self.pending() == 0 && self.used <= KEEP {
            self.buf.shrink_to(KEEP);
        } else if self.buf.capacity() > TRIM_ABOVE {
            self.trim_at = Some(now + TRIM_AFTER);
        }
        self.used = 0;
    }
}

/// fd 1 or 2 as a `BorrowedFd` for nix calls.
fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: fds 1 and 2 stay open for dinit's whole life (main reopens /dev/null on a closed
    // one before anything else), so the borrow cannot outlive them.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Makes sure fds 0-2 are open (a closed one is reopened on /dev/null), so that nothing dinit
/// opens later lands on them. Returns which of 1 and 2 were closed.
pub fn ensure_std_fds() -> [bool; 2] {
    let mut closed = [false; 2];
    for fd in 0..3 {
        if fcntl(unsafe_borrow(fd), FcntlArg::F_GETFD) == Err(Errno::EBADF) {
            // open() returns the lowest free fd, which is `fd`.
            if let Ok(null) =
                nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())
            {
                let raw = std::os::fd::IntoRawFd::into_raw_fd(null);
                if raw != fd {
                    // SAFETY: raw was just opened by us; close it, it is not where it belongs.
                    drop(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
            if fd > 0 {
                closed[fd as usize - 1] = true;
            }
        }
    }
    closed
}
