//! The output path: pipe -> lines -> records -> queue for fd 1 or 2 -> written when writable.
//!
//! [`Output`] owns dinit's two queues and its own messages. The two streams flow independently
//! (a stalled stdout reader must not hold back stderr, where dinit says what it does), with one
//! exception: the line that says a process ended waits until that process's last stdout record
//! is written ([`Output::own_after`]), so a process's lines come before its `finished` line
//! whatever the readers of fds 1 and 2 do, and another service's output does not hold it back.
//!
//! dinit's own messages are bounded (contract §13): while a stream is stalled they queue up to
//! [`OWN_LIMIT`]; past that they are counted, and one warning says how many were dropped once
//! the stream moves again. Service lines are never dropped (they wait in their pipes).

pub mod clock;
pub mod json;
pub mod lines;
pub mod pipes;
pub mod record;
pub mod sink;

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use crate::log::{self, Level};
use clock::Clock;
use record::{Formatter, Source};
use sink::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Own messages kept while a stream is stalled, in bytes (held, and queued on stderr beyond the
/// service records' own bound).
pub const OWN_LIMIT: usize = 1 << 20;
/// What a held line costs beyond its bytes (its buffer's allocation, its queue slot): counted
/// against [`OWN_LIMIT`], so that the bound is on memory, not on text.
const HELD_OVERHEAD: usize = 64;

pub struct Output {
    level: Level,
    json: bool,
    pub clock: Clock,
    out: Sink,
    err: Sink,
    /// Own lines that wait for stdout: (stdout offset that must be written first, the line).
    held: VecDeque<(u64, Vec<u8>)>,
    held_bytes: usize,
    /// Own messages dropped at the bound, and which stream's stall dropped them.
    dropped: Option<(u64, Stream)>,
    /// Per stream: since when its pipes are paused by backpressure, and for how long before.
    blocked: [(Option<Instant>, std::time::Duration); 2],
}

impl Output {
    /// `closed`: fds 1 and 2 that were closed when dinit started (now on /dev/null).
    pub fn new(level: Level, json: bool, closed: [bool; 2]) -> Output {
        let mut o = Output {
            level,
            json,
            clock: Clock::new(),
            out: Sink::open(1, "stdout"),
            err: Sink::open(2, "stderr"),
            held: VecDeque::new(),
            held_bytes: 0,
            dropped: None,
            blocked: Default::default(),
        };
        for (i, was_closed) in closed.into_iter().enumerate() {
            if was_closed {
                let sink = if i == 0 { &mut o.out } else { &mut o.err };
                sink.broken = Some(nix::errno::Errno::EBADF);
                o.report_broken(
                    if i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    nix::errno::Errno::EBADF,
                );
            }
        }
        o
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn enabled(&self, level: Level) -> bool {
        level != Level::None && level <= self.level
    }

    /// Queues one own message on stderr (callers check [`Output::enabled`] first; see `log!`).
    pub fn own(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        if !self.held.is_empty() {
            // Own messages keep their order: behind a held `finished` line, wait with it.
            return self.hold(0, level, msg);
        }
        if self.err.pending() >= sink::HIGH_WATER + OWN_LIMIT {
            return self.drop_own(Stream::Stderr);
        }
        let ts = self.clock.now();
        log::format_line(self.queue(Stream::Stderr), &ts, level, msg);
    }

    fn hold(&mut self, after: u64, level: Level, msg: fmt::Arguments<'_>) {
        if self.held_bytes >= OWN_LIMIT {
            return self.drop_own(Stream::Stdout);
        }
        let ts = self.clock.now();
        let mut line = Vec::with_capacity(96);
        log::format_line(&mut line, &ts, level, msg);
        self.held_bytes += line.len() + HELD_OVERHEAD;
        self.held.push_back((after, line));
    }

    fn drop_own(&mut self, stalled: Stream) {
        let (n, _) = self.dropped.get_or_insert((0, stalled));
        *n += 1;
    }

    /// An own message that must come after the stdout records queued up to stream offset
    /// `after` (the `finished` line of a process whose last lines end there; see
    /// [`Output::stdout_mark`]).
    pub fn own_after(&mut self, after: u64, level: Level, msg: fmt::Arguments<'_>) {
        if after <= self.out.written_total() && self.held.is_empty() {
            return self.own(level, msg);
        }
        self.hold(after, level, msg);
    }

    /// Where stdout's queue ends now: a record queued later comes after this offset.
    pub fn stdout_mark(&self) -> u64 {
        self.out.queued_total()
    }

    /// The queue to append records to.
    pub fn queue(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => self.out.buf(),
            Stream::Stderr => self.err.buf(),
        }
    }

    /// Whether pipes feeding this stream should wait (backpressure).
    pub fn over_limit(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.out.over_limit(),
            Stream::Stderr => self.err.over_limit(),
        }
    }

    pub fn sink_mut(&mut self, stream: Stream) -> &mut Sink {
        match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        }
    }

    /// Writes what can be written now: stdout first, then the held lines it released, then
    /// stderr.
    pub fn flush(&mut self) {
        if let Some(e) = self.out.write_up_to(u64::MAX) {
            self.report_broken(Stream::Stdout, e);
        }
        let written = self.out.written_total();
        let stdout_gone = self.out.broken.is_some();
        while self
            .held
            .front()
            .is_some_and(|h| stdout_gone || h.0 <= written)
        {
            if let Some((_, line)) = self.held.pop_front() {
                self.held_bytes -= line.len() + HELD_OVERHEAD;
                self.err.buf().extend_from_slice(&line);
            }
        }
        if let Some(e) = self.err.write_up_to(u64::MAX) {
            self.report_broken(Stream::Stderr, e);
        }
        // Once the stream moves again (what was kept is out), one line says what was lost.
        if let Some((n, stalled)) = self.dropped
            && self.held.is_empty()
            && self.err.pending() < sink::HIGH_WATER
        {
            self.dropped = None;
            crate::warn!(
                self,
                "{n} messages dropped while {} was blocked",
                stalled.name()
            );
        }
    }

    /// Notes, once a turn, whether each stream holds its pipes back (for the metrics).
    pub fn note_blocked(&mut self, now: Instant) {
        for (i, over) in [self.out.over_limit(), self.err.over_limit()]
            .into_iter()
            .enumerate()
        {
            let (since, total) = &mut self.blocked[i];
            match (over, *since) {
                (true, None) => *since = Some(now),
                (false, Some(t)) => {
                    *total += now.saturating_duration_since(t);
                    *since = None;
                }
                _ => {}
            }
        }
    }

    /// Seconds each stream (stdout, stderr) held its pipes back, up to `now`.
    pub fn blocked_seconds(&self, now: Instant) -> [f64; 2] {
        self.blocked.map(|(since, total)| {
            (total + since.map_or_else(Default::default, |t| now.saturating_duration_since(t)))
                .as_secs_f64()
        })
    }

    /// Bytes queued for stdout and stderr.
    pub fn queued(&self) -> [usize; 2] {
        [self.out.pending(), self.err.pending()]
    }

    /// When a sink's buffer is due for [`Output::trim`].
    pub fn trim_deadline(&self) -> Option<Instant> {
        [self.out.trim_deadline(), self.err.trim_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Shrinks the buffers that a burst grew, once a second of output fits in a small one.
    pub fn trim(&mut self, now: Instant) {
        self.out.trim(now);
        self.err.trim(now);
    }

    /// Nothing queued (or nowhere left to write it).
    pub fn is_drained(&self) -> bool {
        self.out.pending() == 0 && self.err.pending() == 0 && self.held.is_empty()
    }

    /// A direct sink has bytes it could not write yet: poll again soon instead of waiting.
    pub fn wants_retry(&self) -> bool {
        self.out.wants_retry() || self.err.wants_retry()
    }

    /// One line on the other stream, once: the broken one can no longer carry it.
    fn report_broken(&mut self, stream: Stream, e: nix::errno::Errno) {
        let msg = format!(
            "error writing {}: {}",
            stream.name(),
            crate::error::errno_text(e)
        );
        match stream {
            Stream::Stdout => crate::error!(self, "{msg}"),
            Stream::Stderr if self.level >= Level::Error => {
                let ts = self.clock.now();
                let src = Source::new(b"dinit", "error");
                let json = self.json;
                let buf = self.out.buf();
                if json {
                    Formatter::default().json(buf, &src, &ts, msg.as_bytes());
                } else {
                    log::format_line(buf, &ts, Level::Error, format_args!("{msg}"));
                }
            }
            Stream::Stderr => {}
        }
    }
}

/// Before the loop (configuration errors, start-up failures): one blocking write to fd 2.
pub fn early(level: Level, msg: std::fmt::Arguments<'_>) {
    let mut buf = Vec::with_capacity(128);
    log::format_line(&mut buf, &Clock::new().now(), level, msg);
    let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf);
}
