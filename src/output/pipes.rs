//! The read ends of every program's stdout and stderr pipes, and reading them into records.
//!
//! Each pipe is non-blocking and registered edge-triggered: a readiness event puts it on the
//! `ready` list, and it stays there until a read says `WouldBlock` or EOF. A pipe whose queue is
//! over its limit is simply not read (it waits on `ready`): the writer blocks on a full pipe,
//! nothing is lost, and dinit's own memory stays bounded. Reads are capped per turn so that one
//! busy writer cannot keep the loop from signals and children.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;

use super::lines::LineSplitter;
use super::record::{Formatter, Source};
use super::{Output, Stream};

/// One read's worth: the kernel's default pipe capacity.
const READ_SIZE: usize = 64 * 1024;
/// Reads of one pipe before the others get their turn.
const READS_PER_TURN: usize = 4;

/// Per-stream counters (what `status --json` reports).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub lines: u64,
    pub bytes: u64,
}

struct Pipe {
    fd: OwnedFd,
    stream: Stream,
    src: Rc<Source>,
    splitter: LineSplitter,
    /// On the `ready` list.
    queued: bool,
    /// stdout's queue offset after this pipe's last record (0: none yet).
    mark: u64,
    counts: Rc<std::cell::Cell<Counts>>,
}

enum ReadOutcome {
    /// The pipe has nothing more for now.
    Empty,
    /// Read a full turn; more may be there.
    More,
    /// Its queue is full: the pipe waits.
    Blocked,
    /// EOF or a read error: the pipe is closed.
    Closed,
}

pub struct Pipes {
    pipes: HashMap<Token, Pipe>,
    /// The marks of pipes that reached EOF before their process's end was told.
    closed: HashMap<Token, u64>,
    ready: VecDeque<Token>,
    scratch: Box<[u8]>,
    fmt: Formatter,
}

impl Default for Pipes {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipes {
    pub fn new() -> Pipes {
        Pipes {
            pipes: HashMap::new(),
            closed: HashMap::new(),
            ready: VecDeque::new(),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            fmt: Formatter::default(),
        }
    }

    /// Starts watching the read end of a program's stdout or stderr.
    pub fn add(
        &mut self,
        registry: &Registry,
        token: Token,
        fd: OwnedFd,
        stream: Stream,
        src: Rc<Source>,
        counts: Rc<std::cell::Cell<Counts>>,
    ) -> io::Result<Token> {
        set_nonblocking(&fd)?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        self.pipes.insert(
            token,
            Pipe {
                fd,
                stream,
                src,
                splitter: LineSplitter::new(),
                queued: true,
                mark: 0,
                counts,
            },
        );
        // Data may already be there; edge-triggered polls report only new arrivals.
        self.ready.push_back(token);
        Ok(token)
    }

    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// A readiness event for `token` (unknown tokens are ignored: spurious events happen).
    pub fn mark_ready(&mut self, token: Token) -> bool {
        match self.pipes.get_mut(&token) {
            Some(p) => {
                if !p.queued {
                    p.queued = true;
                    self.ready.push_back(token);
                }
                true
            }
            None => false,
        }
    }

    /// Reads ready pipes whose queue has room, up to `budget` reads. Returns whether readable
    /// work remains that is not waiting for output to drain.
    pub fn pump(&mut self, registry: &Registry, out: &mut Output, mut budget: usize) -> bool {
        let mut waiting = VecDeque::new();
        while budget > 0 {
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            let mut mark = 0;
            let outcome = self.read_pipe(
                token,
                registry,
                out,
                READS_PER_TURN.min(budget),
                false,
                &mut mark,
            );
            budget = budget.saturating_sub(READS_PER_TURN);
            match outcome {
                ReadOutcome::More => self.ready.push_back(token),
                ReadOutcome::Blocked => waiting.push_back(token),
                ReadOutcome::Empty | ReadOutcome::Closed => {}
            }
        }
        let more = self
            .ready
            .iter()
            .any(|t| self.pipes.get(t).is_some_and(|p| !out.over_limit(p.stream)));
        self.ready.append(&mut waiting);
        more
    }

    /// Reads `token`'s pipe until it is empty, ignoring backpressure (bounded by the pipe's own
    /// capacity): a process that ended gets its last lines out before its `finished` line.
    /// Returns where its last stdout record ends in stdout's queue (0: it wrote none).
    pub fn drain(&mut self, token: Token, registry: &Registry, out: &mut Output) -> u64 {
        let mut mark = self.closed.remove(&token).unwrap_or(0);
        if self.pipes.contains_key(&token) {
            let _ = self.read_pipe(token, registry, out, usize::MAX, true, &mut mark);
        }
        mark
    }

    /// Ready pipes that can be read now (their queue has room).
    pub fn has_work(&self, out: &Output) -> bool {
        self.ready.iter().any(|t| {
            self.pipes
                .get(t)
                .is_some_and(|p| p.queued && !out.over_limit(p.stream))
        })
    }

    /// Drains every pipe (at exit): what is in them is read, whoever still holds a write end.
    pub fn drain_all(&mut self, registry: &Registry, out: &mut Output) {
        let tokens: Vec<Token> = self.pipes.keys().copied().collect();
        for t in tokens {
            let _ = self.drain(t, registry, out);
        }
    }

    fn read_pipe(
        &mut self,
        token: Token,
        registry: &Registry,
        out: &mut Output,
        max_reads: usize,
        force: bool,
        mark: &mut u64,
    ) -> ReadOutcome {
        let Some(p) = self.pipes.get_mut(&token) else {
            return ReadOutcome::Empty;
        };
        let target = if p.stream == Stream::Stdout {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        let json = out.json() && p.stream == Stream::Stdout;
        let mut counts = p.counts.get();
        let lines_before = counts.lines;
        let mut outcome = ReadOutcome::More;
        for _ in 0..max_reads {
            if !force && out.over_limit(target) {
                outcome = ReadOutcome::Blocked;
                break;
            }
            // SAFETY: reading into our own scratch buffer from an fd this table owns.
            let n = unsafe {
                libc::read(
                    p.fd.as_raw_fd(),
                    self.scratch.as_mut_ptr().cast(),
                    self.scratch.len(),
                )
            };
            if n > 0 {
                let data = &self.scratch[..n as usize];
                counts.bytes += n as u64;
                let ts = out.clock.now();
                let q = out.queue(target);
                let (fmt, src) = (&mut self.fmt, &p.src);
                p.splitter.feed(data, |line| {
                    counts.lines += 1;
                    if json {
                        fmt.json(q, src, &ts, line)
                    } else {
                        fmt.text(q, src, &ts, line)
                    }
                });
                continue;
            }
            let err = if n == 0 { None } else { Some(Errno::last()) };
            match err {
                Some(Errno::EINTR) => continue,
                Some(Errno::EAGAIN) => {
                    outcome = ReadOutcome::Empty;
                    break;
                }
                Some(e) => {
                    crate::warn!(
                        out,
                        "{}: error reading {}: {}",
                        String::from_utf8_lossy(p.src.label()),
                        p.stream.name(),
                        crate::error::errno_text(e)
                    );
                }
                None => {}
            }
            // EOF (or a read error): the last partial line, then the pipe is gone.
            let ts = out.clock.now();
            let q = out.queue(target);
            let (fmt, src) = (&mut self.fmt, &p.src);
            p.splitter.finish(|line| {
                counts.lines += 1;
                if json {
                    fmt.json(q, src, &ts, line)
                } else {
                    fmt.text(q, src, &ts, line)
                }
            });
            outcome = ReadOutcome::Closed;
            break;
        }
        p.counts.set(counts);
        if target == Stream::Stdout && counts.lines != lines_before {
            p.mark = out.stdout_mark();
        }
        *mark = p.mark;
        match outcome {
            ReadOutcome::Closed => {
                let _ = registry.deregister(&mut SourceFd(&p.fd.as_raw_fd()));
                if p.mark > 0 && !force {
                    self.closed.insert(token, p.mark);
                }
                self.pipes.remove(&token);
            }
            ReadOutcome::Empty => p.queued = false,
            ReadOutcome::More | ReadOutcome::Blocked => p.queued = true,
        }
        outcome
    }
}

pub fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
