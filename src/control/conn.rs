//! One control connection as a pure state machine: bytes in -> one request at a time out; a
//! response in -> bytes out; deadlines. The socket code (`server`) only moves bytes between the
//! socket and this machine and does what it says; every decision (when to read, what a request
//! line is, when to give up on a client) is here, where unit tests and the `control_conn` fuzz
//! target drive it without a socket. Nothing here touches a file descriptor or the clock.
//!
//! The rules (contract §11 and §13):
//! - **One request in flight.** The next request line is taken only once the response to the
//!   previous one has been written completely, and nothing more is read while a complete line
//!   waits: a client that sends 3,800 `status` requests and never reads gets at most one
//!   response held in dinit, and what it sent stays in its own socket buffer.
//! - **Deadlines.** A connection with no request started is closed [`Limits::idle`] after its
//!   last response (or after it was accepted): blank lines do not count as activity. A request
//!   line must be complete within [`Limits::line`] of its first byte (no slowloris). A response
//!   the client does not read is given up after [`Limits::idle`] without progress.
//! - **Bounds.** A line longer than [`Limits::max_request`] gets one error response, then the
//!   connection is closed. What is held per connection: at most `max_request + read_chunk`
//!   bytes of input and one response.
//! - **Ends.** At the end of the client's input a last request without its newline still counts,
//!   and the connection closes once everything is answered; when the client is gone (a write
//!   fails), the connection closes at once and what it had queued is dropped.

use std::time::{Duration, Instant};

use super::protocol::{self, MAX_REQUEST, Request};

/// The bounds of a connection; [`Limits::DEFAULT`] is what dinit uses (the fuzz target also
/// uses tiny ones, to reach the long-line paths with short inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest request line, without its newline.
    pub max_request: usize,
    /// How much one read may take.
    pub read_chunk: usize,
    /// No request started (or a response not read) for this long: closed.
    pub idle: Duration,
    /// A request line must be complete this long after its first byte.
    pub line: Duration,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_request: MAX_REQUEST,
        read_chunk: 4096,
        idle: Duration::from_secs(5),
        line: Duration::from_secs(5),
    };
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request line (or holding complete ones not yet taken).
    Reading,
    /// A request was taken; its response has not come yet.
    Serving,
    /// A response is being written.
    Writing,
    /// Over: the socket is to be closed now.
    Closed,
}

/// What [`Conn::take`] hands out: a request, or the text of the error response to it.
pub type Taken = Result<Request, String>;

#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    phase: Phase,
    /// Received and not yet taken.
    input: Vec<u8>,
    /// When the first byte of the incomplete line at the end of `input` came.
    line_started: Option<Instant>,
    /// The response being written, and how much of it is written.
    output: Vec<u8>,
    written: usize,
    /// Since when the idle rule counts: the accept, the last response written completely, or
    /// the last write that made progress.
    since: Instant,
    /// The client sends nothing more.
    eof: bool,
    /// The response being prepared or written is the last one (the request was too long).
    last: bool,
}

impl Conn {
    pub fn new(limits: Limits, now: Instant) -> Conn {
        Conn {
            limits,
            phase: Phase::Reading,
            input: Vec::new(),
            line_started: None,
            output: Vec::new(),
            written: 0,
            since: now,
            eof: false,
            last: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes held: input not yet taken, and the response not yet written.
    pub fn held(&self) -> usize {
        self.input.len() + self.output.len() - self.written
    }

    /// The part of the response not yet written.
    pub fn held_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Whether the socket should be read now, and at most how much: only while no response is
    /// waiting, no complete line is held and the line so far is within its bound.
    pub fn wants_input(&self) -> Option<usize> {
        (self.phase == Phase::Reading
            && !self.eof
            && self.input.len() <= self.limits.max_request
            && memchr::memchr(b'\n', &self.input).is_none())
        .then_some(self.limits.read_chunk)
    }

    /// Bytes read from the socket.
    pub fn received(&mut self, bytes: &[u8], now: Instant) {
        if self.phase == Phase::Closed || self.eof || bytes.is_empty() {
            return;
        }
        let old = self.input.len();
        self.input.extend_from_slice(bytes);
        // The incomplete line at the end: did it begin in these bytes?
        let tail = memchr::memrchr(b'\n', &self.input).map_or(0, |nl| nl + 1);
        if tail == self.input.len() {
            self.line_started = None;
        } else if tail >= old || self.line_started.is_none() {
            self.line_started = Some(now);
        }
    }

    /// The client closed its side (a read gave 0 bytes).
    pub fn end_of_input(&mut self) {
        self.eof = true;
    }

    /// The socket failed (a read or write error: the client is gone): closed, and whatever it
    /// had queued is dropped.
    pub fn failed(&mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.input = Vec::new();
        self.output = Vec::new();
        self.written = 0;
        self.line_started = None;
    }

    /// Whether [`Conn::take`] would hand out a request or end the connection: work for the
    /// next turn of the loop, not for the client.
    pub fn has_work(&self) -> bool {
        self.phase == Phase::Reading
            && (self.eof
                || self.input.len() > self.limits.max_request
                || memchr::memchr(b'\n', &self.input).is_some())
    }

    /// The next request, when one may be taken now: a complete line (blank lines skipped), a line
    /// over the bound (its error; the connection ends after the response), or at the end of
    /// input the last line without its newline. At the end of input with nothing left, the
    /// connection closes.
    pub fn take(&mut self) -> Option<Taken> {
        if self.phase != Phase::Reading {
            return None;
        }
        let max = self.limits.max_request;
        while let Some(nl) = memchr::memchr(b'\n', &self.input) {
            if nl > max {
                return Some(self.too_long());
            }
            let blank = self.input[..nl].iter().all(u8::is_ascii_whitespace);
            let taken = (!blank).then(|| protocol::parse(&self.input[..nl]));
            self.input.drain(..=nl);
            // An incomplete line left is still timed from when it began.
            if self.input.is_empty() {
                self.line_started = None;
            }
            if let Some(t) = taken {
                self.phase = Phase::Serving;
                return Some(t);
            }
        }
        if self.input.len() > max {
            return Some(self.too_long());
        }
        if self.eof {
            let rest = std::mem::take(&mut self.input);
            self.line_started = None;
            if rest.iter().all(u8::is_ascii_whitespace) {
                self.close();
                return None;
            }
            self.phase = Phase::Serving;
            return Some(protocol::parse(&rest));
        }
        None
    }

    fn too_long(&mut self) -> Taken {
        self.input = Vec::new();
        self.line_started = None;
        self.last = true;
        self.phase = Phase::Serving;
        Err(format!(
            "request too long (over {} bytes)",
            self.limits.max_request
        ))
    }

    /// The response to the request taken: `write` appends its line (with the newline) to the
    /// output buffer. Ignored unless a request is waiting for it.
    pub fn respond(&mut self, now: Instant, write: impl FnOnce(&mut Vec<u8>)) {
        if self.phase != Phase::Serving {
            return;
        }
        self.output.clear();
        self.written = 0;
        write(&mut self.output);
        self.phase = Phase::Writing;
        self.since = now;
        if self.output.is_empty() {
            self.wrote(0, now);
        }
    }

    /// What is to be written to the socket now.
    pub fn to_write(&self) -> &[u8] {
        match self.phase {
            Phase::Writing => &self.output[self.written..],
            _ => &[],
        }
    }

    /// `n` bytes of [`Conn::to_write`] were written.
    pub fn wrote(&mut self, n: usize, now: Instant) {
        if self.phase != Phase::Writing {
            return;
        }
        self.written = (self.written + n).min(self.output.len());
        if n > 0 {
            self.since = now;
        }
        if self.written < self.output.len() {
            return;
        }
        // Written: a big buffer goes back (a status of thousands of services is large).
        if self.output.capacity() > 64 * 1024 {
            self.output = Vec::new();
        } else {
            self.output.clear();
        }
        self.written = 0;
        self.since = now;
        if self.last {
            self.close();
        } else {
            self.phase = Phase::Reading;
        }
    }

    /// When this connection is to be given up, if nothing happens before.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Reading if self.has_work() => None,
            Phase::Reading => Some(match self.line_started {
                Some(t) => t + self.limits.line,
                None => self.since + self.limits.idle,
            }),
            Phase::Serving | Phase::Closed => None,
            Phase::Writing => Some(self.since + self.limits.idle),
        }
    }

    /// Closes the connection if its deadline has passed; returns whether it did.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.deadline().is_some_and(|d| d <= now) {
            self.close();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"{\"cmd\":\"status\"}";

    fn small() -> Limits {
        Limits {
            max_request: 20,
            read_chunk: 8,
            ..Limits::DEFAULT
        }
    }

    fn status() -> Taken {
        Ok(Request::Status { services: vec![] })
    }

    fn answer(c: &mut Conn, now: Instant) {
        c.respond(now, |o| o.extend_from_slice(b"{\"ok\":true}\n"));
        let n = c.to_write().len();
        c.wrote(n, now);
    }

    #[test]
    fn one_request_at_a_time() {
        let t = Instant::now();
        let mut c = Conn::new(Limits::DEFAULT, t);
        assert_eq!(c.wants_input(), Some(4096));
        let many = [STATUS, b"\n"].concat().repeat(3);
        c.received(&many, t);
        // Complete lines held: nothing more is read until they are answered.
        assert_eq!(c.wants_input(), None);
        assert!(c.has_work());
        assert_eq!(c.take(), Some(status()));
        assert_eq!(c.phase(), Phase::Serving);
        // No second request before the first response is written.
        assert_eq!(c.take(), None);
        c.respond(t, |o| o.extend_from_slice(b"0123456789\n"));
        assert_eq!(c.to_write(), b"0123456789\n");
        c.wrote(4, t);
        assert_eq!(c.to_write(), b"456789\n");
        assert_eq!(c.take(), None);
        assert_eq!(c.wants_input(), None);
        c.wrote(7, t);
        assert_eq!(c.phase(), Phase::Reading);
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t);
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t);
        assert_eq!(c.take(), None);
        assert_eq!(c.wants_input(), Some(4096));
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn blank_lines_and_errors() {
        let t = Instant::now();
        let mut c = Conn::new(Limits::DEFAULT, t);
        c.received(b"\n   \r\n\t\ngarbage\n{\"cmd\":\"fly\"}\r\n", t);
        assert!(matches!(c.take(), Some(Err(e)) if e.starts_with("invalid request")));
        answer(&mut c, t);
        assert_eq!(c.take(), Some(Err("unknown command: fly".into())));
        answer(&mut c, t);
        assert_eq!(c.take(), None);
        assert!(!c.is_closed());
    }

    #[test]
    fn end_of_input() {
        let t = Instant::now();
        // A last request without its newline counts; then the connection closes.
        let mut c = Conn::new(small(), t);
        c.received(STATUS, t);
        assert_eq!(c.take(), None);
        c.end_of_input();
        assert_eq!(c.wants_input(), None);
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t);
        assert_eq!(c.take(), None);
        assert!(c.is_closed());
        // Requests before the end are all answered, one by one.
        let mut c = Conn::new(Limits::DEFAULT, t);
        c.received(&[STATUS, b"\n", STATUS, b"\n  "].concat(), t);
        c.end_of_input();
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t);
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t);
        assert_eq!(c.take(), None);
        assert!(c.is_closed());
        // Nothing at all.
        let mut c = Conn::new(Limits::DEFAULT, t);
        c.end_of_input();
        assert!(c.has_work());
        assert_eq!(c.take(), None);
        assert!(c.is_closed());
    }

    #[test]
    fn gone_client_drops_its_queue() {
        let t = Instant::now();
        let mut c = Conn::new(Limits::DEFAULT, t);
        c.received(&[STATUS, b"\n"].concat().repeat(240), t);
        assert_eq!(c.take(), Some(status()));
        c.respond(t, |o| o.extend_from_slice(&[b'x'; 100_000]));
        c.wrote(1000, t);
        c.failed();
        assert!(c.is_closed());
        assert_eq!(c.held(), 0);
        assert_eq!(c.take(), None);
        assert_eq!(c.to_write(), b"");
    }

    #[test]
    fn too_long() {
        let t = Instant::now();
        let lim = small();
        // Exactly the bound: a request.
        let mut c = Conn::new(lim, t);
        let mut line = STATUS.to_vec();
        line.resize(20, b' ');
        c.received(&line, t);
        assert_eq!(c.wants_input(), Some(8));
        c.received(b"\n", t);
        assert_eq!(c.take(), Some(status()));
        // One more, with its newline: an error, then closed once it is written.
        let mut c = Conn::new(lim, t);
        line.push(b' ');
        line.push(b'\n');
        c.received(&line, t);
        assert!(matches!(c.take(), Some(Err(e)) if e.contains("too long")));
        assert_eq!(c.held(), 0);
        answer(&mut c, t);
        assert!(c.is_closed());
        // Without a newline: refused as soon as it is over the bound; nothing more is read.
        let mut c = Conn::new(lim, t);
        c.received(&[b'x'; 21], t);
        assert_eq!(c.wants_input(), None);
        assert!(c.has_work());
        assert!(matches!(c.take(), Some(Err(e)) if e.contains("too long")));
        c.respond(t, |o| o.extend_from_slice(b"e\n"));
        c.wrote(1, t);
        assert!(!c.is_closed());
        c.wrote(1, t);
        assert!(c.is_closed());
    }

    #[test]
    fn deadlines() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = Conn::new(Limits::DEFAULT, t);
        assert_eq!(c.deadline(), Some(t + 5 * s));
        // Blank lines are no activity.
        c.received(b"\n\n", t + 2 * s);
        assert_eq!(c.take(), None);
        assert_eq!(c.deadline(), Some(t + 5 * s));
        // A line started: 5 s from its first byte, however slowly the rest comes.
        c.received(b"{", t + 4 * s);
        assert_eq!(c.deadline(), Some(t + 9 * s));
        c.received(b" ", t + 8 * s);
        assert_eq!(c.deadline(), Some(t + 9 * s));
        assert!(!c.expire(t + 8 * s));
        assert!(c.expire(t + 9 * s));
        assert!(c.is_closed());
        assert_eq!(c.deadline(), None);

        // After a response, the idle rule starts again; a complete line held: no deadline.
        let mut c = Conn::new(Limits::DEFAULT, t);
        c.received(&[STATUS, b"\n", b"{\"cm"].concat(), t + s);
        assert_eq!(c.deadline(), None);
        assert_eq!(c.take(), Some(status()));
        assert_eq!(c.deadline(), None);
        c.respond(t + 2 * s, |o| o.extend_from_slice(b"abc\n"));
        assert_eq!(c.deadline(), Some(t + 7 * s));
        c.wrote(1, t + 3 * s);
        assert_eq!(c.deadline(), Some(t + 8 * s));
        c.wrote(3, t + 4 * s);
        // The partial line came with the first one, at t + 1 s.
        assert_eq!(c.deadline(), Some(t + 6 * s));
        c.received(b"d\":\"status\"}\n", t + 5 * s);
        assert_eq!(c.deadline(), None);
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t + 5 * s);
        assert_eq!(c.deadline(), Some(t + 10 * s));
        // A line that ends and another that begins in the same read: timed from that read.
        c.received(b"{\"cmd\"", t + 6 * s);
        assert_eq!(c.deadline(), Some(t + 11 * s));
        c.received(b":\"status\"}\n{", t + 8 * s);
        assert_eq!(c.take(), Some(status()));
        answer(&mut c, t + 8 * s);
        assert_eq!(c.deadline(), Some(t + 13 * s));

        // A response the client does not read: given up 5 s after the last progress.
        let mut c = Conn::new(Limits::DEFAULT, t);
        c.received(&[STATUS, b"\n"].concat(), t);
        c.take();
        c.respond(t, |o| o.extend_from_slice(&[b'x'; 10]));
        c.wrote(3, t + 3 * s);
        assert!(!c.expire(t + 7 * s));
        assert!(c.expire(t + 8 * s));
    }
}
