//! Contract §15, the HTTP listener (`DINIT_HTTP_LISTEN`), from raw sockets, with dinit as PID 1
//! of a PID namespace listening on a free port of 127.0.0.1 (issue 22, "What it must show",
//! point 2):
//!
//! - every endpoint and status code (200, 503, 404, 405, 400, HEAD, one request per
//!   connection), the listen address forms, read-only;
//! - bad clients (garbage, a 1 MiB head, a head over 8 KiB sent in two parts, slowloris, 200
//!   connections at once, clients that never read) are answered or closed while a ticking
//!   service's lines keep reaching the test with no gap over 200 ms and none held over 200 ms
//!   (the ticker stamps each line with CLOCK_MONOTONIC; the harness's stdout consumer stamps its
//!   arrival) and `/livez` keeps answering;
//! - `promtool check metrics` (Debian's `prometheus` package; the test is skipped by name where
//!   it is missing) accepts `/metrics` with 100 services, and every series is there;
//! - an address in use gives one warning and dinit runs on; counters never go backwards across
//!   `restart`, `down` and `up` of a service.
//!
//! The tests of this file run one at a time (`SERIAL`): some measure the loop's latency.
mod common;
#[path = "common/http.rs"]
mod web;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use web::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// dinit listening on `listen` (a free port of 127.0.0.1 when `None`), text output, info
/// level; waits until `/livez` answers. The address to connect to.
fn start_on(
    d: &TestDir,
    listen: Option<&str>,
    env: &[(&str, &str)],
    ticks: Option<&Ticks>,
) -> (Dinit, String) {
    let port = free_port();
    let (listen, addr) = match listen {
        Some(l) => (
            l.replace("PORT", &port.to_string()),
            format!("127.0.0.1:{port}"),
        ),
        None => (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
    };
    let mut l = launch(d)
        .info()
        .text()
        .env("DINIT_HTTP_LISTEN", &listen)
        .envs(env);
    if let Some(t) = ticks {
        l = l.stdout_consumer(t.consumer());
    }
    let p = l.spawn();
    let mut last = String::new();
    let up = wait_until(LONG, || match request(&addr, "GET", "/livez") {
        Ok(_) => true,
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(up, "no HTTP answer on {addr}: {last}\n{}", p.dump());
    (p, addr)
}

fn start(d: &TestDir, env: &[(&str, &str)]) -> (Dinit, String) {
    start_on(d, None, env, None)
}

/// A service that runs until SIGTERM (exit 0).
fn looping(d: &TestDir, extra: &str) -> String {
    d.sh(&format!(
        "trap 'exit 0' TERM\n{extra}\nwhile :; do sleep 0.05; done"
    ))
}

fn assert_reply(r: &Reply, code: u16, body: &str, what: &str) {
    assert_eq!(
        (r.code, r.text().as_str()),
        (code, body),
        "{what}: got\n{r}"
    );
}

fn stop(mut p: Dinit) {
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(LONG), 0, "{}", p.dump());
}

// ---------------------------------------------------------------------------------------------
// endpoints

/// GET and HEAD of `/livez`, `/readyz`, `/status`, `/metrics`: 200 with their content types,
/// `Content-Length` equal to the body (HEAD: the same head, no body), `Connection: close` and
/// the connection closed after one answer (a second pipelined request is not answered); a query
/// string is ignored; `/livez` 503 naming a failing check; 404 for other paths; 405 with `Allow:
/// GET, HEAD` for other methods (and nothing changes); 400 for garbage; HTTP/1.0 is answered.
#[test]
fn every_endpoint_and_status_code() {
    let _g = serial();
    let d = TestDir::new();
    d.svc("web").run(&looping(&d, "")).file(
        "check",
        d.sh("[ -e \"$S/healthy\" ] || exit 4"),
        0o755,
    );
    d.svc("idle").run(&looping(&d, ""));
    d.touch("healthy");
    let (p, addr) = start(&d, &[("DINIT_CHECK_INTERVAL", "0.2")]);
    let ok = wait_until(LONG, || get(&addr, "/readyz").code == 200);
    assert!(ok, "never ready\n{}", p.dump());

    let text = "text/plain; charset=utf-8";
    for (path, ctype) in [
        ("/livez", text),
        ("/readyz", text),
        ("/status", "application/json"),
        ("/metrics", "text/plain; version=0.0.4; charset=utf-8"),
    ] {
        let r = get(&addr, path);
        assert_eq!(r.status_line, "HTTP/1.1 200 OK", "GET {path}: {r}");
        assert_eq!(r.header("content-type"), Some(ctype), "GET {path}: {r}");
        assert_eq!(r.header("connection"), Some("close"), "GET {path}: {r}");
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str()),
            "GET {path}: {r}"
        );
        let h = request(&addr, "HEAD", path).unwrap();
        assert_eq!((h.code, h.body.len()), (200, 0), "HEAD {path}: {h}");
        assert_eq!(h.header("content-type"), Some(ctype), "HEAD {path}: {h}");
        if path != "/status" && path != "/metrics" {
            // (the status and the metrics change between two requests)
            assert_eq!(h.header("content-length"), r.header("content-length"));
        }
    }
    assert_reply(&get(&addr, "/livez"), 200, "ok\n", "livez");
    assert_reply(
        &get(&addr, "/readyz?verbose=1"),
        200,
        "ok\n",
        "query string",
    );
    // /status is `dinit status --json`'s object.
    let s = get(&addr, "/status").json();
    let c = status(&d);
    assert_eq!(s["dinit"]["pid"], c["dinit"]["pid"], "{s}");
    assert_eq!(s["dinit"]["state"], "running", "{s}");
    for name in ["web", "idle"] {
        let (a, b) = (svc(&s, name), svc(&c, name));
        for k in ["state", "pid", "since", "ready", "ready_since", "down_file"] {
            assert_eq!(a[k], b[k], "{name}.{k}: /status {a} vs status --json {b}");
        }
    }
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(svc(&s, "web")), keys(svc(&c, "web")));

    // Other paths and methods.
    for path in ["/", "/nope", "/livez/", "/metrics.txt", "/LIVEZ"] {
        let r = get(&addr, path);
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found", "GET {path}: {r}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    let before = get(&addr, "/status").json();
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for path in ["/livez", "/metrics", "/shutdown"] {
            let r = request(&addr, method, path).unwrap();
            assert_eq!(
                r.status_line, "HTTP/1.1 405 Method Not Allowed",
                "{method} {path}: {r}"
            );
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}: {r}");
        }
    }
    let after = get(&addr, "/status").json();
    for name in ["web", "idle"] {
        assert_eq!(svc(&before, name)["pid"], svc(&after, name)["pid"]);
    }
    // A body with a POST changes nothing either.
    let raw = request_raw(
        &addr,
        b"POST /livez HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"cmd\":\"shutdown\"}\r\n",
    )
    .unwrap();
    assert_eq!(parse_reply(&raw).unwrap().code, 405);
    assert_eq!(status(&d)["dinit"]["state"], "running");

    // Garbage, HTTP/1.0, pipelining.
    for junk in [
        &b"\x00\x01\x02hello\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /livez SMTP/9\r\n\r\n",
        b"GET /livez HTTP/1.1\r\nno colon here\r\n\r\n",
        // (empty lines alone are not garbage: a request may follow them, RFC 9112 2.2; such
        // a client is closed at the 5 s deadline like any other that never finishes its head)
    ] {
        let raw = request_raw(&addr, junk).unwrap();
        let r = parse_reply(&raw).unwrap_or_else(|e| panic!("{junk:?}: {e}"));
        assert_eq!(r.status_line, "HTTP/1.1 400 Bad Request", "{junk:?}: {r}");
    }
    let r = parse_reply(&request_raw(&addr, b"GET /livez HTTP/1.0\r\n\r\n").unwrap()).unwrap();
    assert_reply(&r, 200, "ok\n", "HTTP/1.0");
    let raw = request_raw(
        &addr,
        b"GET /livez HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&raw).matches("HTTP/1.1 ").count(),
        1,
        "one request per connection: {}",
        String::from_utf8_lossy(&raw)
    );
    // A client that closes before its head is complete gets nothing, and dinit runs on.
    for partial in [&b"GET /liv"[..], b""] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(partial).unwrap();
        drop(s);
    }

    // 503: a failing check.
    std::fs::remove_file(d.s("healthy")).unwrap();
    let ok = wait_until(LONG, || get(&addr, "/livez").code == 503);
    assert!(ok, "livez never 503\n{}", p.dump());
    let r = get(&addr, "/livez");
    assert_eq!(r.status_line, "HTTP/1.1 503 Service Unavailable", "{r}");
    assert_reply(&r, 503, "web: check exited 4\n", "failing check");
    assert_reply(
        &get(&addr, "/readyz"),
        503,
        "web: check exited 4\n",
        "failing check",
    );
    let h = request(&addr, "HEAD", "/livez").unwrap();
    assert_eq!((h.code, h.body.len()), (503, 0), "{h}");
    stop(p);
}

/// `DINIT_HTTP_LISTEN` as `:PORT` (every IPv4 address) and `[::]:PORT` (IPv6, and IPv4 too
/// where the system maps it), reached on 127.0.0.1 and ::1.
#[test]
fn listen_address_forms() {
    let _g = serial();
    let d = TestDir::new();
    d.svc("idle").run(&looping(&d, ""));
    let (p, addr) = start_on(&d, Some(":PORT"), &[], None);
    assert_reply(&get(&addr, "/livez"), 200, "ok\n", ":PORT");
    stop(p);

    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("note: no IPv6 loopback here: [::]:PORT not checked");
        return;
    }
    let d = TestDir::new();
    d.svc("idle").run(&looping(&d, ""));
    let (p, addr) = start_on(&d, Some("[::]:PORT"), &[], None);
    let port = addr.rsplit(':').next().unwrap();
    assert_reply(
        &get(&format!("[::1]:{port}"), "/livez"),
        200,
        "ok\n",
        "[::1]",
    );
    assert_reply(&get(&addr, "/livez"), 200, "ok\n", "[::] on 127.0.0.1");
    stop(p);
}

/// An address already in use: exactly one warning `HTTP listener 127.0.0.1:<port>: bind:
/// address already in use`, and dinit runs on (services, control socket, SIGTERM exit 0).
#[test]
fn address_in_use_gives_one_warning() {
    let _g = serial();
    let d = TestDir::new();
    d.svc("idle")
        .run(&looping(&d, "echo started > \"$S/idle.started\""));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let p = launch(&d)
        .info()
        .text()
        .env("DINIT_HTTP_LISTEN", &addr)
        .spawn();
    d.wait_file("idle.started", LONG);
    let want = format!("HTTP listener {addr}: bind: address already in use");
    p.wait_stderr_contains(&want, LONG);
    let st = status(&d);
    assert_eq!(svc(&st, "idle")["state"], "running", "{st}");
    let warnings: Vec<String> = p
        .own_texts("warning")
        .into_iter()
        .filter(|w| w.contains("HTTP"))
        .collect();
    assert_eq!(warnings, vec![want], "{}", p.dump());
    stop(p);
}

/// A value that is no address is a configuration error (exit 1, one error line), as every
/// other `DINIT_*` value.
#[test]
fn listen_value_not_an_address() {
    let _g = serial();
    let d = TestDir::new();
    d.svc("idle").run(&looping(&d, ""));
    let mut p = launch(&d).env("DINIT_HTTP_LISTEN", "localhost").spawn();
    assert_eq!(p.wait_exit(LONG), 1, "{}", p.dump());
    assert!(
        p.own_texts("error")
            .iter()
            .any(|e| e.starts_with("invalid HTTP listen address localhost: DINIT_HTTP_LISTEN")),
        "{}",
        p.dump()
    );
}

// ---------------------------------------------------------------------------------------------
// bad clients, while a ticking service writes

/// Runs `attack` on a thread while the test fetches `/livez` every 250 ms, for at least 2 s;
/// returns what the attack returned, the ticks' flow over the whole window, and the probes (code, time).
fn window<R: Send>(
    addr: &str,
    ticks: &Ticks,
    attack: impl FnOnce() -> R + Send,
) -> (R, Flow, Vec<(u16, Duration)>) {
    let start = Instant::now();
    let mut probes = Vec::new();
    let r = std::thread::scope(|s| {
        let h = s.spawn(attack);
        // At least 2 s, so that a short attack still has a window worth the name.
        while !h.is_finished() || start.elapsed() < Duration::from_secs(2) {
            let (r, took) = get_timed(addr, "/livez");
            probes.push((r.map(|r| r.code).unwrap_or(0), took));
            std::thread::sleep(Duration::from_millis(250));
        }
        h.join().unwrap()
    });
    let flow = ticks.flow(start, Instant::now());
    (r, flow, probes)
}

fn tick_dinit(d: &TestDir, extra_services: usize) -> (Dinit, String, Ticks) {
    d.svc("tick").run(TICKER);
    for i in 0..extra_services {
        d.svc(&format!("svc-{i:03}"))
            .run("#!/bin/sh\nexec sleep 100000\n");
    }
    let ticks = Ticks::default();
    let (p, addr) = start_on(d, None, &[], Some(&ticks));
    assert!(ticks.wait_flowing(), "no tick lines\n{}", p.dump());
    (p, addr, ticks)
}

/// Probes must have been answered (any code) and their median within 100 ms.
fn probe_problems(probes: &[(u16, Duration)], want: &[u16]) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(bad) = probes.iter().find(|(c, _)| !want.contains(c)) {
        v.push(format!("a /livez probe got {} (want {want:?})", bad.0));
    }
    let mut t: Vec<Duration> = probes.iter().map(|p| p.1).collect();
    t.sort();
    if t.is_empty() {
        v.push("no probe ran".into());
    } else if t[t.len() / 2] > Duration::from_millis(100) {
        v.push(format!("/livez probes took {t:?}"));
    }
    v
}

fn report(what: &str, flow: &Flow, probes: &[(u16, Duration)], extra: &str) -> Vec<String> {
    let mut t: Vec<u128> = probes.iter().map(|p| p.1.as_millis()).collect();
    t.sort();
    eprintln!("{what}: {flow}; /livez probes {t:?} ms; {extra}");
    flow.problems(what)
}

/// How long until dinit closes `s` (EOF or reset), sending a byte every 100 ms; `None` when
/// still open after `limit`. Also what was received.
fn slow_client(mut s: TcpStream, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        if s.write_all(b"X").is_err() {
            return (Some(t0.elapsed()), got);
        }
        match s.read(&mut buf) {
            Ok(0) => return (Some(t0.elapsed()), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (Some(t0.elapsed()), got),
        }
    }
    (None, got)
}

/// Garbage (50 connections of it), a 1 MiB head (400 or closed), a head of 9,000 bytes sent in
/// two parts (400: over the 8 KiB bound however it arrives) and one of 7,000 (served).
#[test]
fn garbage_and_big_heads() {
    let _g = serial();
    let d = TestDir::new();
    let (p, addr, ticks) = tick_dinit(&d, 0);
    let ((), flow, probes) = window(&addr, &ticks, || {
        for i in 0..50 {
            let junk: Vec<u8> = (0..2000u32)
                .map(|k| (k.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8)
                .chain(*b"\r\n\r\n")
                .collect();
            let raw = request_raw(&addr, &junk).unwrap();
            let r = parse_reply(&raw).unwrap();
            assert_eq!(r.code, 400, "garbage {i}: {r}");
        }
        // 1 MiB of head, never finished: 400 and closed, or reset while still sending.
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        s.set_write_timeout(Some(LONG)).unwrap();
        let mut big = b"GET /livez HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(1 << 20, b'a');
        let t0 = Instant::now();
        let sent = s.write_all(&big);
        let mut got = Vec::new();
        let read = s.read_to_end(&mut got);
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(7), "1 MiB head: {took:?}");
        if !got.is_empty() {
            let r = parse_reply(&got).unwrap();
            assert_eq!(r.code, 400, "1 MiB head: {r}");
        } else {
            assert!(
                sent.is_err() || read.is_err() || got.is_empty(),
                "1 MiB head neither answered nor closed"
            );
        }
        eprintln!(
            "1 MiB head: write {:?}, read {:?}, {} bytes back in {took:?}",
            sent.map_err(|e| e.kind()),
            read.map_err(|e| e.kind()),
            got.len()
        );
        // A head over 8 KiB in two parts: the first under the bound, the second completes it.
        let head = |len: usize| {
            let mut h = b"GET /livez HTTP/1.1\r\nX-Pad: ".to_vec();
            h.resize(len - 4, b'p');
            h.extend_from_slice(b"\r\n\r\n");
            h
        };
        for (len, code) in [(9000, 400), (7000, 200)] {
            let h = head(len);
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(LONG)).unwrap();
            s.write_all(&h[..6000]).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            let _ = s.write_all(&h[6000..]);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let r = parse_reply(&got).unwrap_or_else(|e| panic!("head of {len} bytes: {e}"));
            assert_eq!(r.code, code, "a head of {len} bytes in two parts: {r}");
        }
    });
    let mut problems = report("garbage and big heads", &flow, &probes, "");
    problems.extend(probe_problems(&probes, &[200]));
    assert!(problems.is_empty(), "{problems:#?}\n{}", p.dump());
    stop(p);
}

/// Slowloris: 10 clients that send a head one byte every 100 ms, never finishing it. dinit
/// closes each 5 s after accepting it (4.5 to 10 s here), without an answer; meanwhile
/// `/livez` answers 200.
#[test]
fn slowloris_closed_after_five_seconds() {
    let _g = serial();
    let d = TestDir::new();
    let (p, addr, ticks) = tick_dinit(&d, 0);
    let (closed, flow, probes) = window(&addr, &ticks, || {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..10)
                .map(|_| {
                    let mut c = TcpStream::connect(&addr).unwrap();
                    c.set_nodelay(true).unwrap();
                    c.write_all(b"GET /livez HTTP/1.1\r\nX-Slow: ").unwrap();
                    s.spawn(move || slow_client(c, Duration::from_secs(15)))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    });
    let times: Vec<Option<u128>> = closed
        .iter()
        .map(|(t, _)| t.map(|t| t.as_millis()))
        .collect();
    let mut problems = report(
        "slowloris",
        &flow,
        &probes,
        &format!("closed after {times:?} ms"),
    );
    for (t, got) in &closed {
        match t {
            Some(t) if (4500..10_000).contains(&t.as_millis()) => {}
            t => problems.push(format!("a slow client was closed after {t:?}, not ~5 s")),
        }
        if !got.is_empty() {
            problems.push(format!(
                "a slow client got an answer: {:?}",
                String::from_utf8_lossy(got)
            ));
        }
    }
    problems.extend(probe_problems(&probes, &[200]));
    assert!(problems.is_empty(), "{problems:#?}\n{}", p.dump());
    stop(p);
}

/// 200 connections at once that send nothing: 32 are held (the bound), the other 168 get `503
/// busy` and are closed at once; while the 32 are held a new request gets 503 too; dinit
/// closes them 5 s after accepting them, and `/livez` is 200 again.
#[test]
fn two_hundred_connections() {
    let _g = serial();
    let d = TestDir::new();
    let (p, addr, ticks) = tick_dinit(&d, 0);
    let start = Instant::now();
    let mut conns: Vec<TcpStream> = (0..200)
        .map(|i| TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let opened = start.elapsed();
    for c in &conns {
        c.set_nonblocking(true).unwrap();
    }
    // Each connection: None while open, Some((bytes, when)) once closed.
    let mut state: Vec<(Vec<u8>, Option<Duration>)> = vec![(Vec::new(), None); 200];
    let poll = |conns: &mut Vec<TcpStream>, state: &mut Vec<(Vec<u8>, Option<Duration>)>| {
        let mut buf = [0u8; 1024];
        for (c, st) in conns.iter_mut().zip(state.iter_mut()) {
            while st.1.is_none() {
                match c.read(&mut buf) {
                    Ok(0) => st.1 = Some(start.elapsed()),
                    Ok(n) => st.0.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => st.1 = Some(start.elapsed()),
                }
            }
        }
    };
    let busy = |state: &Vec<(Vec<u8>, Option<Duration>)>| {
        state
            .iter()
            .filter(|(b, t)| t.is_some() && b.starts_with(b"HTTP/1.1 503 "))
            .count()
    };
    let ok = wait_until(LONG, || {
        poll(&mut conns, &mut state);
        busy(&state) >= 168
    });
    let held: Vec<usize> = (0..200).filter(|&i| state[i].1.is_none()).collect();
    assert!(
        ok && held.len() == 32,
        "{} busy, {} held after {:?} (opening took {opened:?})\n{}",
        busy(&state),
        held.len(),
        start.elapsed(),
        p.dump()
    );
    let r = parse_reply(&state.iter().find(|s| s.1.is_some()).unwrap().0).unwrap();
    assert_reply(&r, 503, "busy\n", "over the bound");
    // While the 32 are held, a new client is turned away too.
    let r = get(&addr, "/livez");
    assert_reply(&r, 503, "busy\n", "while 32 are held");

    // The held ones are closed 5 s after their accept; then /livez answers again.
    let ((), flow, probes) = window(&addr, &ticks, || {
        wait_until(Duration::from_secs(15), || {
            poll(&mut conns, &mut state);
            held.iter().all(|&i| state[i].1.is_some())
        });
    });
    let closed: Vec<Option<u128>> = held
        .iter()
        .map(|&i| state[i].1.map(|t| t.as_millis()))
        .collect();
    let mut problems = report(
        "200 connections",
        &flow,
        &probes,
        &format!("held ones closed after {closed:?} ms"),
    );
    for &i in &held {
        match state[i].1 {
            Some(t) if t >= Duration::from_millis(4500) && t < Duration::from_secs(12) => {}
            t => problems.push(format!("held connection {i} closed at {t:?}")),
        }
        if !state[i].0.is_empty() {
            problems.push(format!(
                "held connection {i} got {:?}",
                String::from_utf8_lossy(&state[i].0)
            ));
        }
    }
    // (a client turned away may see the reset before the 503)
    problems.extend(probe_problems(&probes, &[200, 503, 0]));
    assert_reply(
        &get(&addr, "/livez"),
        200,
        "ok\n",
        "after the 32 were closed",
    );
    assert!(problems.is_empty(), "{problems:#?}\n{}", p.dump());
    stop(p);
}

/// A TCP connection whose receive buffer is as small as the kernel allows (set before
/// connecting, so the window it announces stays small).
fn connect_small_rcvbuf(addr: &str) -> TcpStream {
    let sa: std::net::SocketAddrV4 = addr.parse().unwrap();
    // SAFETY: plain socket calls on a fresh fd, handed to TcpStream on success.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 1024;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: sa.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*sa.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// dinit's open sockets (its `/proc/<pid>/fd` links to `socket:`).
fn sockets_of(pid: i32) -> usize {
    proc_fds(pid)
        .values()
        .filter(|t| t.starts_with("socket:"))
        .count()
}

/// Runs dinit in a network namespace of its own (made by `unshare --net` in the launcher's
/// setup, so dinit stays PID 1) whose TCP send buffers are at most 8 KiB
/// (`net.ipv4.tcp_wmem`, per namespace): an answer of tens of kB then cannot all go into the
/// kernel when the client does not read. The machine's own settings are not touched.
const SMALL_TCP_BUFFERS: &str = "exec unshare --net /bin/sh -c 'ip link set lo up && \
     sysctl -qw net.ipv4.tcp_wmem=\"4096 8192 8192\" && exec \"$@\"' sh \"$@\"";

/// 20 clients ask for `/metrics` (100 services: about 47 kB) and never read, with a tiny
/// receive buffer, and dinit's socket takes at most 8 KiB (`SMALL_TCP_BUFFERS`): dinit holds
/// the 20 with most of each answer unwritten. Meanwhile `/livez` answers 200 and a reading
/// client gets the whole `/metrics`; 5 s after their accept dinit has closed the 20 (its
/// socket count is back where it was), and each got less than the whole answer.
#[test]
fn clients_that_never_read() {
    let _g = serial();
    if !["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        skip(
            "clients_that_never_read",
            "`ip` not found: dinit's network namespace needs its loopback up (Debian's \
             iproute2; scripts/test.sh installs it)",
        );
        return;
    }
    let d = TestDir::new();
    d.svc("tick").run(TICKER);
    for i in 0..100 {
        d.svc(&format!("svc-{i:03}"))
            .run("#!/bin/sh\nexec sleep 100000\n");
    }
    let ticks = Ticks::default();
    let addr = "127.0.0.1:9090";
    let p = launch(&d)
        .info()
        .text()
        .env("DINIT_HTTP_LISTEN", addr)
        .setup(SMALL_TCP_BUFFERS)
        .stdout_consumer(ticks.consumer())
        .spawn();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let theirs = || std::fs::read_link(format!("/proc/{}/ns/net", p.pid)).ok();
    let exe = || std::fs::read_link(format!("/proc/{}/exe", p.pid)).ok();
    let ok = wait_until(LONG, || {
        theirs().is_some_and(|n| n != ours) && exe().is_some_and(|e| e == bin())
    });
    assert!(
        ok,
        "dinit not in a network namespace of its own\n{}",
        p.dump()
    );
    assert!(ticks.wait_flowing(), "no tick lines\n{}", p.dump());
    let problems = in_netns_of(p.pid, || {
        let ok = wait_until(LONG, || {
            request(addr, "GET", "/readyz").is_ok_and(|r| r.code == 200)
        });
        assert!(ok, "100 services never ready\n{}", p.dump());
        let full = get(addr, "/metrics");
        let base = sockets_of(p.pid);
        let t0 = Instant::now();
        let stalled: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut s = connect_small_rcvbuf(addr);
                s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
                s
            })
            .collect();
        let held = wait_until(MEDIUM, || sockets_of(p.pid) >= base + 20);
        let most = sockets_of(p.pid);
        let (closed_at, flow, probes) = window(addr, &ticks, || {
            let r = get(addr, "/metrics");
            assert_eq!(r.code, 200, "{r}");
            assert_eq!(
                r.header("content-length"),
                Some(r.body.len().to_string().as_str())
            );
            wait_until(Duration::from_secs(15), || sockets_of(p.pid) <= base);
            t0.elapsed()
        });
        // What the 20 got, reading now: part of the answer, then EOF or a reset.
        let mut got = Vec::new();
        for mut s in stalled {
            s.set_read_timeout(Some(MEDIUM)).unwrap();
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b);
            got.push(b.len());
        }
        let mut problems = report(
            "clients that never read",
            &flow,
            &probes,
            &format!(
                "dinit's sockets {base} -> {most} -> {} after {closed_at:?}; /metrics is {} \
                 bytes, the stalled clients got {got:?}",
                sockets_of(p.pid),
                full.body.len()
            ),
        );
        if !held {
            problems.push(format!(
                "dinit never held the 20 connections ({base} -> {most} sockets)"
            ));
        }
        if sockets_of(p.pid) > base {
            problems.push(format!(
                "dinit still holds {} sockets (was {base}) after {closed_at:?}",
                sockets_of(p.pid)
            ));
        } else if closed_at < Duration::from_millis(4500) {
            problems.push(format!("stalled clients closed after only {closed_at:?}"));
        }
        if let Some(n) = got.iter().find(|&&n| n >= full.body.len()) {
            problems.push(format!(
                "a stalled client got {n} bytes: the whole answer fit in the kernel's buffers"
            ));
        }
        problems.extend(probe_problems(&probes, &[200]));
        problems
    });
    assert!(problems.is_empty(), "{problems:#?}\n{}", p.dump());
    stop(p);
}

// ---------------------------------------------------------------------------------------------
// metrics

/// Whether `promtool` is installed; else the caller skips.
fn promtool(test: &str) -> Option<&'static str> {
    for p in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if Path::new(p).exists() {
            return Some(p);
        }
    }
    skip(
        test,
        "promtool not found: install Debian's `prometheus` package (apt-get install \
         prometheus; scripts/test.sh does)",
    );
    None
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `/metrics` with 100 services (and one with `"` and `\` in its name, and one that wrote 3
/// lines on stdout and 2 on stderr): `promtool check metrics` prints nothing and exits 0; every
/// family of contract §15 is there with a `# TYPE`, every service has its series with the
/// values the status says; counters end in `_total`; `process_*` are plausible.
#[test]
fn promtool_accepts_metrics_with_100_services() {
    let _g = serial();
    let Some(promtool) = promtool("promtool_accepts_metrics_with_100_services") else {
        return;
    };
    let d = TestDir::new();
    for i in 0..100 {
        d.svc(&format!("svc-{i:03}"))
            .run("#!/bin/sh\nexec sleep 100000\n");
    }
    d.svc("we\"ird\\name").run(&looping(&d, ""));
    d.svc("chatty").run(&looping(
        &d,
        "echo one; echo two; echo three; echo err1 >&2; echo err2 >&2",
    ));
    let t_start = now_s();
    let (p, addr) = start(&d, &[]);
    let ok = wait_until(LONG, || get(&addr, "/readyz").code == 200);
    assert!(ok, "never ready\n{}", p.dump());
    for _ in 0..3 {
        assert_eq!(ctl(&d, &["status"]).code, 0);
    }
    let ok = wait_until(LONG, || {
        let m = get(&addr, "/metrics").text();
        sample(
            &m,
            "dinit_output_lines_total{service=\"chatty\",stream=\"stderr\"}",
        ) == Some(2.0)
    });
    assert!(ok, "chatty's lines not counted\n{}", p.dump());
    let t0 = Instant::now();
    let r = get(&addr, "/metrics");
    let took = t0.elapsed();
    let m = r.text();
    eprintln!(
        "/metrics with 102 services: {} bytes, {} lines, fetched in {took:?}",
        m.len(),
        m.lines().count()
    );

    let file = d.root().join("metrics.txt");
    std::fs::write(&file, &r.body).unwrap();
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(format!("{promtool} check metrics < '{}'", file.display()));
    let o = run_cmd(&mut c, LONG);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "", ""),
        "promtool check metrics:\n{m}"
    );

    // Every family, typed.
    for (family, kind) in [
        ("dinit_build_info", "gauge"),
        ("dinit_service_up", "gauge"),
        ("dinit_service_ready", "gauge"),
        ("dinit_service_starts_total", "counter"),
        ("dinit_service_last_exit_code", "gauge"),
        ("dinit_service_start_time_seconds", "gauge"),
        ("dinit_output_lines_total", "counter"),
        ("dinit_output_bytes_total", "counter"),
        ("dinit_output_queue_bytes", "gauge"),
        ("dinit_output_blocked_seconds_total", "counter"),
        ("dinit_orphans_reaped_total", "counter"),
        ("dinit_orphans", "gauge"),
        ("dinit_control_requests_total", "counter"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            m.contains(&format!("# TYPE {family} {kind}\n")),
            "no {family} {kind}:\n{m}"
        );
        assert!(
            m.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
    let names: Vec<String> = (0..100)
        .map(|i| format!("svc-{i:03}"))
        .chain(["we\\\"ird\\\\name".to_string(), "chatty".to_string()])
        .collect();
    for n in &names {
        let s = |family: &str| sample(&m, &format!("{family}{{service=\"{n}\"}}"));
        assert_eq!(s("dinit_service_up"), Some(1.0), "{n}");
        assert_eq!(s("dinit_service_ready"), Some(1.0), "{n}");
        assert_eq!(s("dinit_service_starts_total"), Some(1.0), "{n}");
        assert_eq!(s("dinit_service_last_exit_code"), None, "{n}: never ended");
        let t = s("dinit_service_start_time_seconds").unwrap_or_else(|| panic!("{n}:\n{m}"));
        assert!(
            t >= t_start - 1.0 && t <= now_s() + 1.0,
            "{n}: start time {t}"
        );
        for stream in ["stdout", "stderr"] {
            for family in ["dinit_output_lines_total", "dinit_output_bytes_total"] {
                let series = format!("{family}{{service=\"{n}\",stream=\"{stream}\"}}");
                assert!(sample(&m, &series).is_some(), "no {series}");
            }
        }
    }
    let s = |series: &str| sample(&m, series).unwrap_or_else(|| panic!("no {series}:\n{m}"));
    assert_eq!(
        s("dinit_output_lines_total{service=\"chatty\",stream=\"stdout\"}"),
        3.0
    );
    assert_eq!(
        s("dinit_output_bytes_total{service=\"chatty\",stream=\"stdout\"}"),
        14.0
    );
    assert_eq!(
        s("dinit_output_bytes_total{service=\"chatty\",stream=\"stderr\"}"),
        10.0
    );
    assert_eq!(s("dinit_control_requests_total{cmd=\"status\"}"), 3.0);
    assert_eq!(s("dinit_control_requests_total{cmd=\"shutdown\"}"), 0.0);
    assert_eq!(s("dinit_orphans{policy=\"terminate\"}"), 0.0);
    assert_eq!(s("dinit_orphans_reaped_total"), 0.0);
    assert_eq!(s("dinit_output_queue_bytes{stream=\"stdout\"}"), 0.0);
    assert_eq!(
        s("dinit_output_blocked_seconds_total{stream=\"stdout\"}"),
        0.0
    );
    assert_eq!(
        s(&format!(
            "dinit_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(s("process_open_fds") >= 3.0);
    let rss = s("process_resident_memory_bytes");
    assert!(rss > 100_000.0 && rss < 100_000_000.0, "rss {rss}");
    let st = s("process_start_time_seconds");
    assert!(
        st >= t_start - 2.0 && st <= now_s() + 1.0,
        "start time {st}"
    );
    assert!(s("process_cpu_seconds_total") >= 0.0);
    // HEAD: the head only.
    let h = request(&addr, "HEAD", "/metrics").unwrap();
    assert_eq!((h.code, h.body.len()), (200, 0));
    stop(p);
}

/// All the counters of `/metrics`, by series.
fn counters(m: &str) -> Vec<(String, f64)> {
    let mut counters = std::collections::HashSet::new();
    for l in m.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.insert(name.to_string());
        }
    }
    m.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            counters
                .contains(name)
                .then(|| (series.to_string(), v.parse().unwrap()))
        })
        .collect()
}

/// Counters never go backwards: `counter` writes 5 lines on stdout and 2 on stderr at each
/// start; across `restart -w`, `down -w` and `up -w` every `_total` series only grows (none
/// disappears), `starts_total` counts 1, 2, 2, 3, the lines 5, 10, 10, 15,
/// `start_time_seconds` moves on at each start, `last_exit_code` says how the last run ended,
/// `up` goes 1, 1, 0, 1.
#[test]
fn counters_never_go_backwards_across_restart() {
    let _g = serial();
    let d = TestDir::new();
    d.svc("counter").run(&looping(
        &d,
        "for i in 1 2 3 4 5; do echo \"line $i\"; done; echo e1 >&2; echo e2 >&2",
    ));
    d.svc("idle").run(&looping(&d, ""));
    let (p, addr) = start(&d, &[]);
    let scrape = |lines: f64| {
        let mut m = String::new();
        let ok = wait_until(LONG, || {
            m = get(&addr, "/metrics").text();
            sample(
                &m,
                "dinit_output_lines_total{service=\"counter\",stream=\"stdout\"}",
            ) == Some(lines)
                && sample(
                    &m,
                    "dinit_output_lines_total{service=\"counter\",stream=\"stderr\"}",
                ) == Some(lines * 2.0 / 5.0)
        });
        assert!(ok, "lines never {lines}:\n{m}");
        m
    };
    let series = |m: &str, f: &str| sample(m, &format!("{f}{{service=\"counter\"}}"));
    let mut seen = vec![scrape(5.0)];
    for (args, lines, starts, up) in [
        (&["restart", "-w", "10", "counter"][..], 10.0, 2.0, 1.0),
        (&["down", "-w", "10", "counter"][..], 10.0, 2.0, 0.0),
        (&["up", "-w", "10", "counter"][..], 15.0, 3.0, 1.0),
    ] {
        let c = ctl(&d, args);
        assert_eq!(c.code, 0, "{args:?}: {c:?}");
        let m = scrape(lines);
        assert_eq!(
            series(&m, "dinit_service_starts_total"),
            Some(starts),
            "{args:?}"
        );
        assert_eq!(series(&m, "dinit_service_up"), Some(up), "{args:?}");
        let prev = seen.last().unwrap();
        let before: std::collections::HashMap<String, f64> = counters(prev).into_iter().collect();
        let after: std::collections::HashMap<String, f64> = counters(&m).into_iter().collect();
        for (k, v) in &before {
            match after.get(k) {
                Some(w) if w >= v => {}
                w => panic!("{k} went from {v} to {w:?} across {args:?}"),
            }
        }
        if up == 1.0 {
            let (a, b) = (
                series(prev, "dinit_service_start_time_seconds"),
                series(&m, "dinit_service_start_time_seconds"),
            );
            assert!(b > a, "start time {a:?} -> {b:?} across {args:?}");
        } else {
            assert_eq!(series(&m, "dinit_service_start_time_seconds"), None);
        }
        // The trap exits 0 on SIGTERM.
        assert_eq!(
            series(&m, "dinit_service_last_exit_code"),
            Some(0.0),
            "{args:?}"
        );
        seen.push(m);
    }
    let m = seen.last().unwrap();
    for cmd in ["restart", "down", "up"] {
        assert_eq!(
            sample(m, &format!("dinit_control_requests_total{{cmd=\"{cmd}\"}}")),
            Some(1.0),
            "{cmd}"
        );
    }
    assert_eq!(
        sample(
            m,
            "dinit_output_bytes_total{service=\"counter\",stream=\"stdout\"}"
        ),
        Some(3.0 * 5.0 * 7.0)
    );
    stop(p);
}
