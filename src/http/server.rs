//! The HTTP listener on the loop (contract §15): accept, read one request head, answer, close.
//!
//! Bounded like the control socket: at most [`MAX_CONNECTIONS`] at once (more are refused at
//! once with 503), a request head of at most [`MAX_HEAD`] bytes, [`DEADLINE`] from accept to the
//! last byte of the answer written; one request per connection (`Connection: close`). Read-only:
//! no request changes anything. Heads are parsed with `httparse` (hyper's parser). Nothing here
//! blocks: every socket is non-blocking and edge-triggered.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

pub const MAX_CONNECTIONS: usize = 32;
pub const MAX_HEAD: usize = 8 * 1024;
pub const DEADLINE: Duration = Duration::from_secs(5);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Livez,
    Readyz,
    Status,
    Metrics,
    NotFound,
    /// Not GET or HEAD.
    MethodNotAllowed,
    /// Not HTTP, or a head over [`MAX_HEAD`].
    BadRequest,
}

/// An answer: status code, content type, body.
pub struct Answer {
    pub code: u16,
    pub content_type: &'static str,
    pub body: String,
}

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    deadline: Instant,
    /// A HEAD request: the answer's head only.
    head_only: bool,
    /// The answer is queued: write it out, then close.
    answered: bool,
}

pub struct Http {
    listener: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
}

impl Http {
    pub fn off() -> Http {
        Http {
            listener: None,
            conns: HashMap::new(),
        }
    }

    /// Binds `addr`; on failure returns the warning to print, and dinit runs on without it.
    pub fn setup(addr: SocketAddr, registry: &Registry, token: Token) -> (Http, Option<String>) {
        let mut listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                let e = crate::error::Error::bare("bind", &e);
                return (Http::off(), Some(format!("HTTP listener {addr}: {e}")));
            }
        };
        if let Err(e) = registry.register(&mut listener, token, Interest::READABLE) {
            let e = crate::error::Error::bare("epoll", &e);
            return (Http::off(), Some(format!("HTTP listener {addr}: {e}")));
        }
        let http = Http {
            listener: Some(listener),
            conns: HashMap::new(),
        };
        (http, None)
    }

    pub fn owns(&self, token: Token) -> bool {
        self.conns.contains_key(&token)
    }

    /// Accepts every waiting connection; `token` gives each its poll token.
    pub fn accept(&mut self, registry: &Registry, mut token: impl FnMut() -> Token) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                let _ = stream.write_all(&head(503, "text/plain; charset=utf-8", 5));
                let _ = stream.write_all(b"busy\n");
                continue; // dropped: closed
            }
            let token = token();
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                    written: 0,
                    deadline: Instant::now() + DEADLINE,
                    head_only: false,
                    answered: false,
                },
            );
        }
    }

    /// A connection is ready: reads what came; returns the route once the head is complete
    /// (the caller answers with [`Http::answer`]), and writes what is queued.
    pub fn on_ready(&mut self, token: Token, registry: &Registry) -> Option<Route> {
        let c = self.conns.get_mut(&token)?;
        let mut route = None;
        if !c.answered {
            let mut buf = [0u8; 2048];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        // Closed before a whole head: nothing to answer.
                        self.close(token, registry);
                        return None;
                    }
                    Ok(n) => {
                        c.input.extend_from_slice(&buf[..n]);
                        if let Some(r) = parse(&c.input, &mut c.head_only) {
                            route = Some(r);
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.close(token, registry);
                        return None;
                    }
                }
            }
        } else {
            self.flush(token, registry);
        }
        route
    }

    /// Queues `answer` on `token` and writes what it can; the connection closes once written.
    pub fn answer(&mut self, token: Token, answer: Answer, registry: &Registry) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        c.output = head(answer.code, answer.content_type, answer.body.len());
        if !c.head_only {
            c.output.extend_from_slice(answer.body.as_bytes());
        }
        c.answered = true;
        c.input = Vec::new();
        self.flush(token, registry);
    }

    fn flush(&mut self, token: Token, registry: &Registry) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        while c.written < c.output.len() {
            match c.stream.write(&c.output[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.close(token, registry);
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut c) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// Closes connections past their deadline (a slow or stalled client).
    pub fn expire(&mut self, now: Instant, registry: &Registry) {
        let late: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            self.close(t, registry);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).min()
    }
}

/// The route of a complete request head in `input`, or none while it is incomplete. Pure.
fn parse(input: &[u8], head_only: &mut bool) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(input) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return None,
        Ok(httparse::Status::Partial) | Err(_) => return Some(Route::BadRequest),
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Some(Route::BadRequest);
    };
    match method {
        "GET" => {}
        "HEAD" => *head_only = true,
        _ => return Some(Route::MethodNotAllowed),
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    Some(match path {
        "/livez" => Route::Livez,
        "/readyz" => Route::Readyz,
        "/status" => Route::Status,
        "/metrics" => Route::Metrics,
        _ => Route::NotFound,
    })
}

fn head(code: u16, content_type: &str, len: usize) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n{allow}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let route = |r: &[u8]| {
            let mut head_only = false;
            (parse(r, &mut head_only), head_only)
        };
        assert_eq!(
            route(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"),
            (Some(Route::Livez), false)
        );
        assert_eq!(
            route(b"GET /readyz?verbose HTTP/1.0\r\n\r\n"),
            (Some(Route::Readyz), false)
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            (Some(Route::Metrics), true)
        );
        assert_eq!(
            route(b"GET /status HTTP/1.1\r\n\r\n").0,
            Some(Route::Status)
        );
        assert_eq!(
            route(b"GET /nope HTTP/1.1\r\n\r\n").0,
            Some(Route::NotFound)
        );
        assert_eq!(
            route(b"POST /livez HTTP/1.1\r\n\r\n").0,
            Some(Route::MethodNotAllowed)
        );
        assert_eq!(
            route(b"GET /livez HTTP/1.1\r\nHost"),
            (None, false),
            "incomplete"
        );
        assert_eq!(route(b"\x00\x01garbage\r\n\r\n").0, Some(Route::BadRequest));
        let big = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(
            route(&big).0,
            Some(Route::BadRequest),
            "head over the bound"
        );
    }

    #[test]
    fn heads() {
        let h = String::from_utf8(head(405, "text/plain", 3)).unwrap();
        assert!(h.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(h.contains("Allow: GET, HEAD\r\n") && h.contains("Content-Length: 3\r\n"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
    }
}
