//! The control socket on the event loop: accept, read request lines, write response lines.
//!
//! Bounded in every dimension, so no client can stall or bloat PID 1: at most
//! [`MAX_CONNECTIONS`] at once, a request line of at most 64 KiB, an idle connection closed
//! after [`IDLE`], a client that leaves more than [`MAX_UNREAD`] of responses unread is
//! disconnected. Nothing here blocks: every socket is non-blocking and edge-triggered.
//! Who is asking comes from the kernel (`SO_PEERCRED`), never from the request.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::protocol::{self, MAX_REQUEST, Request, Response};
use crate::config::ControlSocket;
use crate::error::Error;

pub const MAX_CONNECTIONS: usize = 32;
pub const IDLE: Duration = Duration::from_secs(5);
pub const MAX_UNREAD: usize = 1 << 20;

struct Conn {
    stream: UnixStream,
    uid: u32,
    input: Vec<u8>,
    output: Vec<u8>,
    deadline: Instant,
    /// Close once the output is written (after an error that ends the conversation, or EOF).
    closing: bool,
}

/// One request to carry out: which connection asked, who, and what.
pub struct Incoming {
    pub token: Token,
    pub uid: u32,
    pub request: Result<Request, String>,
}

pub struct Control {
    listener: Option<UnixListener>,
    /// The socket file to remove at exit (not for abstract sockets).
    path: Option<PathBuf>,
    conns: HashMap<Token, Conn>,
}

impl Control {
    pub fn off() -> Control {
        Control {
            listener: None,
            path: None,
            conns: HashMap::new(),
        }
    }

    /// Sets the socket up; on failure returns the warning to print, and dinit runs on without it.
    pub fn setup(
        cfg: &ControlSocket,
        registry: &Registry,
        token: Token,
    ) -> (Control, Option<String>) {
        let bound = match cfg {
            ControlSocket::Off => return (Control::off(), None),
            ControlSocket::Path(p) => bind_path(p).map(|l| (l, Some(p.clone()))),
            ControlSocket::Abstract(name) => bind_abstract(name).map(|l| (l, None)),
        };
        let (mut listener, path) = match bound {
            Ok(b) => b,
            Err(e) => return (Control::off(), Some(format!("control socket {cfg}: {e}"))),
        };
        if let Err(e) = registry.register(&mut listener, token, Interest::READABLE) {
            let e = Error::bare("epoll", &e);
            return (Control::off(), Some(format!("control socket {cfg}: {e}")));
        }
        (
            Control {
                listener: Some(listener),
                path,
                conns: HashMap::new(),
            },
            None,
        )
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
            let (mut stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNABORTED, EMFILE...: this one is lost, the listener goes on.
                Err(_) => return,
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                let refusal = Response::Refused("too many connections".into()).to_json();
                let _ = stream.write_all(format!("{refusal}\n").as_bytes());
                continue; // dropped: closed
            }
            let uid = peer_uid(&stream).unwrap_or(u32::MAX);
            let token = token();
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            let conn = Conn {
                stream,
                uid,
                input: Vec::new(),
                output: Vec::new(),
                deadline: Instant::now() + IDLE,
                closing: false,
            };
            self.conns.insert(token, conn);
        }
    }

    /// A connection is readable or writable: reads complete request lines into `requests`.
    pub fn on_ready(&mut self, token: Token, registry: &Registry, requests: &mut Vec<Incoming>) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut eof = false;
        while !c.closing {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    c.deadline = Instant::now() + IDLE;
                    take_lines(c, token, requests);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            // A last request without its newline still counts.
            if !c.input.is_empty() && !c.closing {
                let line = std::mem::take(&mut c.input);
                requests.push(Incoming {
                    token,
                    uid: c.uid,
                    request: protocol::parse(&line),
                });
            }
            c.closing = true;
        }
        // The responses come from the supervisor; `flush` runs once they are queued, so a
        // client that half-closes right after its request still gets its answer.
        let _ = registry;
    }

    /// Queues a response line for `token` (written by [`Control::flush`]).
    pub fn respond(&mut self, token: Token, line: &str) {
        if let Some(c) = self.conns.get_mut(&token) {
            c.output.extend_from_slice(line.as_bytes());
            c.output.push(b'\n');
        }
    }

    /// Writes what it can of `token`'s responses; closes the connection once a closing one has
    /// nothing left to write, or when its client lets too much pile up.
    pub fn flush(&mut self, token: Token, registry: &Registry) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        while !c.output.is_empty() {
            match c.stream.write(&c.output) {
                Ok(0) => break,
                Ok(n) => {
                    c.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.output.clear();
                    c.closing = true;
                }
            }
        }
        if c.output.len() > MAX_UNREAD || (c.closing && c.output.is_empty()) {
            self.close(token, registry);
        }
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut c) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// Closes connections idle past their deadline.
    pub fn expire(&mut self, now: Instant, registry: &Registry) {
        let idle: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            self.close(t, registry);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).min()
    }

    /// At exit: the socket file goes (connections close with the process).
    pub fn remove(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
        self.listener = None;
    }
}

/// Moves every complete line of `c.input` into `requests`; a line over the limit ends the
/// conversation with an error.
fn take_lines(c: &mut Conn, token: Token, requests: &mut Vec<Incoming>) {
    let mut start = 0;
    while let Some(nl) = memchr::memchr(b'\n', &c.input[start..]) {
        let line = &c.input[start..start + nl];
        start += nl + 1;
        let request = if line.len() > MAX_REQUEST {
            c.closing = true;
            Err(format!("request too long (over {MAX_REQUEST} bytes)"))
        } else if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            protocol::parse(line)
        };
        requests.push(Incoming {
            token,
            uid: c.uid,
            request,
        });
        if c.closing {
            break;
        }
    }
    c.input.drain(..start);
    if c.input.len() > MAX_REQUEST && !c.closing {
        c.input.clear();
        c.closing = true;
        requests.push(Incoming {
            token,
            uid: c.uid,
            request: Err(format!("request too long (over {MAX_REQUEST} bytes)")),
        });
    }
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

fn bind_path(path: &Path) -> Result<UnixListener, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| Error::path(Some("mkdir"), dir, &e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket nobody answers on is left from an earlier run: replace it. One that
            // answers belongs to a dinit that runs: leave it alone.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::path(None, path, nix::errno::Errno::EADDRINUSE));
            }
            std::fs::remove_file(path).map_err(|e| Error::path(Some("remove"), path, &e))?;
        }
        Ok(_) => return Err(Error::path(None, path, nix::errno::Errno::EEXIST)),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::path(Some("bind"), path, &e))?;
    // Every local user may ask for status and check; what they may change is decided per
    // request from their credentials.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
    Ok(listener)
}

fn bind_abstract(name: &[u8]) -> Result<UnixListener, Error> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)
        .map_err(|e| Error::bare("bind", &e))?;
    let std_listener =
        std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| Error::bare("bind", &e))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| Error::bare("bind", &e))?;
    Ok(UnixListener::from_std(std_listener))
}
