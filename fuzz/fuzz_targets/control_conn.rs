//! `control::conn::Conn`, the control connection's state machine, driven as the socket code
//! drives it, through every interleaving the input chooses: reads of any size (partial lines,
//! many requests in one read), requests taken and answered, responses written in pieces, the
//! clock moving, the client's end of input and the socket failing at any point.
//!
//! Input: `[limits] [n_steps] [steps: op arg]… [data…]`. `limits` picks the longest request
//! (8, 16, 64 bytes or the real 64 KiB) and the read size (1, 3, 16 or 4096 bytes); each step is
//! one of: read at most `arg + 1` bytes (only while the machine wants input, as the server
//! does), take a request and answer it with `arg * 7 + 1` bytes, write `arg` bytes of the
//! response, end of input, socket failure, the clock moving `arg * 20` ms, read everything that
//! may be read. After the steps the conversation is run to its end (read all, answer all, then
//! end of input) unless it is over already.
//!
//! Checked, at every step:
//! - one request in flight: nothing is taken while a response is owed or being written;
//! - nothing is read while a complete line is held or a response waits; what is held of the
//!   input stays within the longest request plus one read;
//! - bytes are offered for writing only while a response is being written, and exactly its
//!   bytes, in order;
//! - a closed connection holds nothing, offers nothing, takes nothing, wants nothing, has no
//!   deadline;
//! - the deadline is the documented one, computed here from the events alone: 5 s after the
//!   first byte of an incomplete line; else, while waiting for a request, 5 s after the accept
//!   or the last response written; while writing, 5 s after the response was made or last
//!   progressed; none while a complete line waits or a request is served. `expire` closes
//!   exactly when it has passed;
//! - the requests taken are, in order, those of a model that splits the data at `\n`: blank
//!   lines skipped, each line as `protocol::parse` reads it, a line longer than the limit (with
//!   its newline or not) one `request too long` error that ends the conversation, at the end of
//!   input the last line without its newline; all of them when the conversation ran to its end
//!   (and then the connection is closed), a prefix when the socket failed or a deadline passed.
#![no_main]

use std::time::{Duration, Instant};

use dinit::control::conn::{Conn, Limits, Phase, Taken};
use dinit::control::protocol;
use libfuzzer_sys::fuzz_target;

mod common;
use common::Bytes;

#[derive(Debug, PartialEq)]
enum Expected {
    Parsed(Taken),
    TooLong,
}

/// The requests in `data`, as the contract frames them.
fn model(data: &[u8], max: usize, eof: bool) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match memchr::memchr(b'\n', &data[i..]) {
            Some(n) => {
                let line = &data[i..i + n];
                if line.len() > max {
                    out.push(Expected::TooLong);
                    return out;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    out.push(Expected::Parsed(protocol::parse(line)));
                }
                i += n + 1;
            }
            None => {
                let tail = &data[i..];
                if tail.len() > max {
                    out.push(Expected::TooLong);
                } else if eof && !tail.iter().all(u8::is_ascii_whitespace) {
                    out.push(Expected::Parsed(protocol::parse(tail)));
                }
                return out;
            }
        }
    }
}

fn seen(t: &Taken) -> Expected {
    match t {
        Err(e) if e.starts_with("request too long") => Expected::TooLong,
        t => Expected::Parsed(t.clone()),
    }
}

/// The driver: the machine, and what the test knows from the outside.
struct Run<'a> {
    c: Conn,
    lim: Limits,
    data: &'a [u8],
    /// Bytes given to the machine, and when each read's first byte came.
    fed: usize,
    reads: Vec<(usize, Instant)>,
    now: Instant,
    /// The idle rule's start: the accept, the last response made, progressed or written.
    since: Instant,
    /// The response being written and how much of it was written.
    response: Vec<u8>,
    written: usize,
    taken: Vec<Expected>,
    eof: bool,
    /// Closed early (failure or deadline): the requests taken are a prefix.
    cut: bool,
}

impl Run<'_> {
    /// The input the machine holds (what was fed and not yet taken), from the outside: the
    /// last `held` bytes fed.
    fn held_input(&self) -> &[u8] {
        let n = self.c.held() - self.c.held_output();
        assert!(n <= self.fed, "holds {n} bytes of {} fed", self.fed);
        &self.data[self.fed - n..self.fed]
    }

    /// Reading, with a request (or the end) to take: no deadline, no reads.
    fn has_work(&self) -> bool {
        let held = self.held_input();
        self.c.phase() == Phase::Reading
            && (self.eof || held.contains(&b'\n') || held.len() > self.lim.max_request)
    }

    fn check(&self) {
        let c = &self.c;
        let held = self.held_input();
        assert!(
            held.len() <= self.lim.max_request + self.lim.read_chunk,
            "{} bytes of input held",
            held.len()
        );
        assert_eq!(c.held_output(), self.response.len() - self.written);
        match c.phase() {
            Phase::Writing => assert_eq!(c.to_write(), &self.response[self.written..]),
            _ => assert!(c.to_write().is_empty(), "bytes to write in {:?}", c.phase()),
        }
        assert_eq!(c.has_work(), self.has_work(), "has_work in {:?}", c.phase());
        // Reads exactly while reading, with nothing complete or too long held (never stalls).
        let wants = c.phase() == Phase::Reading && !self.has_work();
        assert_eq!(
            c.wants_input(),
            wants.then_some(self.lim.read_chunk),
            "wants_input in {:?}, holding {held:?}",
            c.phase()
        );
        if c.is_closed() {
            assert_eq!(c.held(), 0);
        }
        assert_eq!(
            c.deadline(),
            self.expected_deadline(),
            "deadline in {:?}",
            c.phase()
        );
    }

    fn expected_deadline(&self) -> Option<Instant> {
        match self.c.phase() {
            Phase::Closed | Phase::Serving => None,
            Phase::Writing => Some(self.since + self.lim.idle),
            Phase::Reading if self.has_work() => None,
            Phase::Reading => {
                let fed = &self.data[..self.fed];
                let tail = memchr::memrchr(b'\n', fed).map_or(0, |i| i + 1);
                if tail == fed.len() {
                    Some(self.since + self.lim.idle)
                } else {
                    // The read that brought the incomplete line's first byte.
                    let (_, at) = self
                        .reads
                        .iter()
                        .rev()
                        .find(|(start, _)| *start <= tail)
                        .expect("a read brought it");
                    Some(*at + self.lim.line)
                }
            }
        }
    }

    /// One read of at most `n` bytes, if the machine wants one.
    fn read(&mut self, n: usize) {
        let Some(room) = self.c.wants_input() else {
            return;
        };
        let n = n.min(room).min(self.data.len() - self.fed);
        if n == 0 {
            return;
        }
        self.reads.push((self.fed, self.now));
        self.c
            .received(&self.data[self.fed..self.fed + n], self.now);
        self.fed += n;
    }

    fn read_all(&mut self) {
        while self.c.wants_input().is_some() && self.fed < self.data.len() {
            self.read(usize::MAX);
        }
    }

    fn serve(&mut self, len: usize) {
        let before = self.c.phase();
        match self.c.take() {
            Some(t) => {
                assert_eq!(before, Phase::Reading, "taken in {before:?}");
                assert_eq!(self.c.phase(), Phase::Serving);
                assert_eq!(self.c.take(), None, "a second request in flight");
                self.taken.push(seen(&t));
                self.response = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                self.response.push(b'\n');
                self.written = 0;
                let r = self.response.clone();
                self.c.respond(self.now, |o| o.extend_from_slice(&r));
                self.since = self.now;
                assert_eq!(self.c.phase(), Phase::Writing);
            }
            None => {
                if before == Phase::Reading && self.c.is_closed() {
                    // The end of input, with nothing left to take.
                    assert!(self.eof);
                }
            }
        }
    }

    fn write(&mut self, n: usize) {
        if self.c.phase() != Phase::Writing {
            return;
        }
        let n = n.min(self.response.len() - self.written);
        self.c.wrote(n, self.now);
        self.written += n;
        if n > 0 {
            self.since = self.now;
        }
        if self.written == self.response.len() {
            self.response.clear();
            self.written = 0;
            assert!(matches!(self.c.phase(), Phase::Reading | Phase::Closed));
        }
    }

    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let due = self.expected_deadline().is_some_and(|d| d <= self.now);
        assert_eq!(self.c.expire(self.now), due, "expire at +{ms} ms");
        if due {
            assert!(self.c.is_closed());
            self.response.clear();
            self.written = 0;
            self.cut = true;
        }
    }

    fn fail(&mut self) {
        self.c.failed();
        self.response.clear();
        self.written = 0;
        self.cut = true;
        assert!(self.c.is_closed());
        assert_eq!(self.c.take(), None);
    }

    fn end_of_input(&mut self) {
        if !self.c.is_closed() {
            self.c.end_of_input();
            self.eof = true;
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let sel = b.u8();
    let lim = Limits {
        max_request: [8, 16, 64, Limits::DEFAULT.max_request][usize::from(sel & 3)],
        read_chunk: [1, 3, 16, 4096][usize::from((sel >> 2) & 3)],
        ..Limits::DEFAULT
    };
    let n_steps = usize::from(b.u8() % 64);
    let steps = b.take(2 * n_steps);
    let data = b.rest();
    let start = Instant::now();
    let mut r = Run {
        c: Conn::new(lim, start),
        lim,
        data,
        fed: 0,
        reads: Vec::new(),
        now: start,
        since: start,
        response: Vec::new(),
        written: 0,
        taken: Vec::new(),
        eof: false,
        cut: false,
    };
    r.check();
    for step in steps.chunks(2) {
        let (op, arg) = (step[0] % 8, usize::from(*step.get(1).unwrap_or(&0)));
        match op {
            0 => r.read(arg + 1),
            1 => r.serve(arg * 7 + 1),
            2 => r.write(arg),
            3 => r.end_of_input(),
            4 => r.fail(),
            5 => r.tick(arg as u64 * 20),
            _ => r.read_all(),
        }
        r.check();
    }
    // To the end: everything read, answered and written, then the end of input.
    let mut rounds = 0;
    while !r.c.is_closed() {
        rounds += 1;
        assert!(rounds < 1_000_000, "the conversation does not end");
        r.read_all();
        r.serve(3);
        r.check();
        r.write(usize::MAX);
        r.check();
        if r.c.phase() == Phase::Reading
            && !r.c.has_work()
            && (r.fed == data.len() || r.c.wants_input().is_none())
        {
            r.end_of_input();
        }
        r.check();
    }
    let want = model(&data[..r.fed], lim.max_request, r.eof);
    if r.cut {
        assert!(
            want.starts_with(&r.taken),
            "taken {:?}, not a prefix of {want:?}",
            r.taken
        );
    } else {
        assert_eq!(
            r.taken,
            want,
            "the requests of {:?}",
            String::from_utf8_lossy(&data[..r.fed])
        );
    }
});
