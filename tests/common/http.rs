//! Included with `#[path = "common/http.rs"] mod web;` after `mod common;`.
//!
//! HTTP from a raw socket, for the tests of contract §15 (tests/readiness.rs, tests/http.rs):
//! dinit's listener answers one request per connection and closes it, so a reply is everything
//! read until EOF. Also the dinit client (`dinit status|check|up …`) against a test's socket.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
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
    s.read_to_end(&mut out)
        .map_err(|e| format!("read from {addr}: {e} (after {} bytes)", out.len()))?;
    Ok(out)
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
