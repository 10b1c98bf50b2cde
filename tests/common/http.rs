//! Included with `#[path = "common/http.rs"] mod web;` after `mod common;`.
//!
//! HTTP from a raw socket, for the tests of contract §15 (tests/readiness.rs, tests/http.rs):
//! dinit's listener answers one request per connection and closes it, so a reply is everything
//! read until EOF. Also the dinit client (`dinit status|check|up …`) against a test's socket.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{CmdOut, LONG, PATH, TestDir, Value, bin, run_cmd};

/// A port nothing listens on now (the kernel's pick for port 0 on 127.0.0.1, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What dinit answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status_line)?;
        for (n, v) in &self.headers {
            write!(f, "\n{n}: {v}")?;
        }
        write!(f, "\n\n{}", crate::common::trunc(&self.text()))
    }
}

/// Splits a whole answer (head and body) into a [`Reply`].
pub fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let end = crate::common::find(raw, b"\r\n\r\n").ok_or_else(|| {
        format!(
            "no complete head in {} bytes: {:?}",
            raw.len(),
            String::from_utf8_lossy(&raw[..raw.len().min(300)])
        )
    })?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| format!("head not UTF-8: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let code = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {l:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Reply {
        code,
        status_line,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// Connects to `addr` (`127.0.0.1:9090`, `[::1]:9090`), sends `raw`, reads until dinit closes.
/// Every step is bounded by `LONG`.
pub fn request_raw(addr: &str, raw: &[u8]) -> Result<Vec<u8>, String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&sa, LONG).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(LONG)).unwrap();
    s.set_write_timeout(Some(LONG)).unwrap();
    s.write_all(raw)
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // A reset after a whole answer (dinit closed without reading all the client sent, as
        // it does when it turns a connection away) still is that answer.
        Err(_) if complete(&out) => Ok(out),
        Err(e) => Err(format!("read from {addr}: {e} (after {} bytes)", out.len())),
    }
}

/// A whole answer: a head and as many body bytes as its `Content-Length` says.
fn complete(raw: &[u8]) -> bool {
    parse_reply(raw).is_ok_and(|r| {
        r.header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|l| r.body.len() >= l)
    })
}

/// `METHOD path HTTP/1.1` with a Host header; the parsed answer.
pub fn request(addr: &str, method: &str, path: &str) -> Result<Reply, String> {
    let raw =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: dinit-tests\r\n\r\n");
    parse_reply(&request_raw(addr, raw.as_bytes())?)
}

/// `GET path`; panics when there is no well-formed answer.
pub fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `GET path` and how long it took (connect to EOF).
pub fn get_timed(addr: &str, path: &str) -> (Result<Reply, String>, Duration) {
    let t0 = Instant::now();
    let r = request(addr, "GET", path);
    (r, t0.elapsed())
}

/// Runs `f` on a thread that has joined the network namespace of process `pid` (threads it
/// starts are in it too); the test's own thread stays where it is.
pub fn in_netns_of<R: Send>(pid: i32, f: impl FnOnce() -> R + Send) -> R {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only, with an fd we own.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// The socket `common::launch` gives dinit.
pub fn sock(d: &TestDir) -> String {
    d.root().join("control.sock").display().to_string()
}

/// `dinit <args>` as a client of the dinit of `d`, clean environment plus `env`.
pub fn ctl_env(d: &TestDir, env: &[(&str, &str)], args: &[&str]) -> CmdOut {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("DINIT_CONTROL_SOCKET", sock(d))
        .envs(env.iter().copied());
    run_cmd(&mut c, LONG)
}

pub fn ctl(d: &TestDir, args: &[&str]) -> CmdOut {
    ctl_env(d, &[], args)
}

/// `dinit status --json`, parsed.
pub fn status(d: &TestDir) -> Value {
    let o = ctl(d, &["status", "--json"]);
    assert_eq!(o.code, 0, "dinit status --json: {o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("status not JSON ({e}): {o:?}"))
}

/// The service `name` in a status object.
pub fn svc<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {st}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {st}"))
}

/// One sample `name{labels} value` of an exposition, by its exact series text
/// (`dinit_service_up{service="web"}`).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let v = rest.strip_prefix(' ')?;
        v.split(' ').next()?.parse().ok()
    })
}

// ---------------------------------------------------------------------------------------------
// a ticking service, to see that the loop never waits

/// The ticking service (`tick/run`): `tick <n> <CLOCK_MONOTONIC ns>` every 20 ms on stdout, no
/// fork per line; exits 0 on SIGTERM.
pub const TICKER: &str = r#"#!/usr/bin/python3
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
n = 0
while True:
    sys.stdout.write('tick %d %d\n' % (n, time.monotonic_ns()))
    sys.stdout.flush()
    n += 1
    time.sleep(0.02)
"#;

/// The arrival time (the test's clock, taken by the stdout consumer as the chunk comes) and the
/// write time (the ticker's; the same CLOCK_MONOTONIC) of every `tick/run` line of dinit's
/// stdout in text mode. Give [`Ticks::consumer`] to `Launcher::stdout_consumer`.
#[derive(Clone, Default)]
pub struct Ticks(pub Arc<Mutex<Vec<(Instant, u64)>>>);

/// What the ticks of a window show.
#[derive(Debug)]
pub struct Flow {
    pub lines: usize,
    /// The longest time without a tick line arriving (edges of the window included).
    pub worst_gap: Duration,
    /// The longest time without a line arriving that the ticker is not to blame for: a gap
    /// less the part of it in which the ticker itself wrote nothing (its own write times show
    /// when a loaded machine did not run it; that is no stall of dinit's).
    pub worst_stall: Duration,
    /// The longest time from a line's write to its arrival.
    pub worst_latency: Duration,
}

impl Flow {
    /// Failures against the bound of the issue: no gap over 200 ms that dinit is to blame for,
    /// no line held over 200 ms.
    pub fn problems(&self, what: &str) -> Vec<String> {
        let bound = Duration::from_millis(200);
        let mut v = Vec::new();
        if self.worst_stall > bound {
            v.push(format!(
                "{what}: the ticking service's lines stopped for {} ms while it wrote",
                self.worst_stall.as_millis()
            ));
        }
        if self.worst_latency > bound {
            v.push(format!(
                "{what}: a tick line reached the test {} ms after it was written",
                self.worst_latency.as_millis()
            ));
        }
        v
    }
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tick lines, worst gap {} ms (while the ticker wrote: {} ms), worst latency {} ms",
            self.lines,
            self.worst_gap.as_millis(),
            self.worst_stall.as_millis(),
            self.worst_latency.as_millis()
        )
    }
}

impl Ticks {
    pub fn consumer(&self) -> impl FnMut(&[u8]) + Send + 'static {
        let ticks = self.0.clone();
        let mut partial: Vec<u8> = Vec::new();
        move |chunk: &[u8]| {
            let now = Instant::now();
            partial.extend_from_slice(chunk);
            let Some(last) = partial.iter().rposition(|&c| c == b'\n') else {
                return;
            };
            let mut t = ticks.lock().unwrap();
            for l in partial[..last].split(|&c| c == b'\n') {
                let l = String::from_utf8_lossy(l);
                if let Some(rest) = l.split(" tick/run: tick ").nth(1)
                    && let Some(ns) = rest.split(' ').nth(1).and_then(|v| v.parse().ok())
                {
                    t.push((now, ns));
                }
            }
            partial.drain(..=last);
        }
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits until the ticker's lines come (a few of them).
    pub fn wait_flowing(&self) -> bool {
        crate::common::wait_until(LONG, || self.count() > 5)
    }

    /// The ticks that arrived between `start` and `end`.
    pub fn flow(&self, start: Instant, end: Instant) -> Flow {
        let t: Vec<(Instant, u64)> = self.0.lock().unwrap().clone();
        let (now, now_ns) = (Instant::now(), mono_ns());
        // Write times as Instants (both clocks are CLOCK_MONOTONIC).
        let written = |ns: u64| now - Duration::from_nanos(now_ns.saturating_sub(ns));
        let lines: Vec<(Instant, Instant)> = t.iter().map(|(a, w)| (*a, written(*w))).collect();
        let inside: Vec<(Instant, Instant)> = lines
            .iter()
            .copied()
            .filter(|(a, _)| *a > start && *a < end)
            .collect();
        let after = lines.iter().copied().find(|(a, _)| *a >= end);
        // Edges: a window's first line, from max(start, its write); its end, from the last
        // arrival or the write of the next line (none written yet: no stall).
        let mut at: Vec<(Instant, Instant)> = vec![(start, start)];
        at.extend(inside.iter().copied());
        at.push((end, after.map_or(end, |(_, w)| w.min(end))));
        let mut worst_gap = Duration::ZERO;
        let mut worst_stall = Duration::ZERO;
        for p in at.windows(2) {
            let ((a0, _), (a1, w1)) = (p[0], p[1]);
            let gap = a1 - a0;
            worst_gap = worst_gap.max(gap);
            // The part of the gap after the line was written (or the previous arrived).
            worst_stall = worst_stall.max(a1.saturating_duration_since(w1.max(a0)));
        }
        let worst_latency = inside
            .iter()
            .map(|(a, w)| a.saturating_duration_since(*w))
            .max()
            .unwrap_or_default();
        Flow {
            lines: inside.len(),
            worst_gap,
            worst_stall,
            worst_latency,
        }
    }
}

/// Now on CLOCK_MONOTONIC (the ticker's `time.monotonic_ns()`), in ns.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
