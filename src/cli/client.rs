//! The connection to the running dinit, which `dinit <command>` and `sv` share: one request
//! per connection, one line each way, in the types of `control::protocol`.
//!
//! The client is a short-lived ordinary process, not PID 1: it may block (with a timeout on
//! the socket) while it waits for an answer.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{self, ControlSocket};
use crate::control::protocol::{self, ReplyError, Request, ServiceStatus, State, Status};
use crate::error::{ErrnoOf, errno_text};

/// How long one request may take before the client gives up on dinit.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A status response for thousands of services stays far below this; more is not dinit.
const MAX_RESPONSE: u64 = 64 << 20;
// ---- the connection -------------------------------------------------------------------------

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No answer: `cannot reach dinit at <socket>: <reason>`.
    Unreachable { socket: String, reason: String },
    /// dinit answered `{"ok":false,"error":…}`: its text.
    Refused(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable { socket, reason } => {
                write!(f, "cannot reach dinit at {socket}: {reason}")
            }
            Failure::Refused(e) => f.write_str(e),
        }
    }
}

/// The running dinit, as far as the client knows: where its socket is.
pub struct Dinit {
    socket: ControlSocket,
}

impl Dinit {
    /// `DINIT_CONTROL_SOCKET`, parsed as dinit parses it.
    pub fn from_env() -> Dinit {
        let value =
            std::env::var_os("DINIT_CONTROL_SOCKET").map(|v| v.to_string_lossy().into_owned());
        Dinit {
            socket: config::control_socket(value.as_deref()),
        }
    }

    fn unreachable(&self, reason: impl Into<String>) -> Failure {
        Failure::Unreachable {
            socket: self.socket.to_string(),
            reason: reason.into(),
        }
    }

    /// Connects, and makes sure dinit is who answers: the server's credentials (`SO_PEERCRED`,
    /// from the kernel) must be uid 0 or the client's own uid, before anything is sent. A socket
    /// another user bound in dinit's place (a squatter in a world-writable folder) gets nothing:
    /// not the request, and no chance to name a `check` script for the client to run.
    fn connect(&self) -> Result<UnixStream, Failure> {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, UnixAddr, connect, getsockopt, setsockopt, socket,
            sockopt,
        };
        use nix::sys::time::{TimeVal, TimeValLike};
        use std::os::fd::AsRawFd;
        let os = |e: nix::errno::Errno| self.unreachable(errno_text(e));
        let (len, addr) = match &self.socket {
            ControlSocket::Off => {
                return Err(
                    self.unreachable("the control socket is off (DINIT_CONTROL_SOCKET=none)")
                );
            }
            ControlSocket::Path(p) => (p.as_os_str().len(), UnixAddr::new(p.as_path())),
            ControlSocket::Abstract(name) => (name.len(), UnixAddr::new_abstract(name)),
        };
        if let Some(why) = protocol::socket_path_too_long(len) {
            return Err(self.unreachable(why));
        }
        let addr = addr.map_err(os)?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(os)?;
        // A Unix socket's connect waits while the listener's queue is full, as long as the send
        // timeout allows (a squatter that never accepts must not hang a health check).
        let timeout = TimeVal::seconds(IO_TIMEOUT.as_secs() as i64);
        setsockopt(&fd, sockopt::SendTimeout, &timeout).map_err(os)?;
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    return Err(self.unreachable(io_text(&io::ErrorKind::WouldBlock.into())));
                }
                Err(e) => return Err(os(e)),
            }
        }
        let stream = UnixStream::from(fd);
        let peer = getsockopt(&stream, sockopt::PeerCredentials).map_err(os)?;
        let me = nix::unistd::geteuid().as_raw();
        if !trusted_server(peer.uid(), me) {
            return Err(self.unreachable(format!("not owned by root or you (uid {})", peer.uid())));
        }
        Ok(stream)
    }

    /// Sends one request and returns the result fields of a successful response (`ok` removed).
    pub fn request(&self, req: &Request) -> Result<Map<String, Value>, Failure> {
        let response = self.exchange(req)?;
        protocol::read_response(&response).map_err(|e| self.reply_error(e))
    }

    fn reply_error(&self, e: ReplyError) -> Failure {
        match e {
            ReplyError::Refused(e) => Failure::Refused(e),
            ReplyError::Invalid(e) => self.unreachable(format!("invalid response: {e}")),
        }
    }

    /// One request line out, one response line back.
    fn exchange(&self, req: &Request) -> Result<Vec<u8>, Failure> {
        let mut stream = self.connect()?;
        let io = |e: io::Error| self.unreachable(io_text(&e));
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        let mut line = req.to_json();
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(io)?;
        let mut response = Vec::new();
        BufReader::new(&stream)
            .take(MAX_RESPONSE)
            .read_until(b'\n', &mut response)
            .map_err(io)?;
        if response.last() != Some(&b'\n') {
            return Err(self.unreachable("connection closed without a response"));
        }
        Ok(response)
    }

    /// The status of the named services (all for none), as `req` (`status` or `check`) asks.
    pub fn status_as(&self, req: &Request) -> Result<Status, Failure> {
        let response = self.exchange(req)?;
        protocol::read_status(&response).map_err(|e| self.reply_error(e))
    }

    /// The status of the named services (all for none).
    pub fn status(&self, names: &[String]) -> Result<Status, Failure> {
        self.status_as(&Request::Status {
            services: names.to_vec(),
        })
    }
}

/// Whether a server whose credentials say `uid` may be dinit for a client running as `me`: root's,
/// or the client's own (contract §13).
pub fn trusted_server(uid: u32, me: u32) -> bool {
    uid == 0 || uid == me
}

/// A read timeout is EAGAIN, whose text ("resource temporarily unavailable") says nothing.
pub fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no response within {} s", IO_TIMEOUT.as_secs())
        }
        _ => errno_text(ErrnoOf::from(e).0),
    }
}

/// `s` is another run than `before` (a restart happened in between).
pub fn is_new_run(s: &ServiceStatus, before: &ServiceStatus) -> bool {
    before.state != State::Running || s.pid != before.pid || s.since > before.since
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fake_server(
        expect: &'static str,
        response: &'static str,
    ) -> (Dinit, std::thread::JoinHandle<()>, PathBuf) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "dinit-client-test-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            assert_eq!(line, format!("{expect}\n"));
            s.write_all(response.as_bytes()).unwrap();
        });
        (
            Dinit {
                socket: ControlSocket::Path(path.clone()),
            },
            t,
            path,
        )
    }

    #[test]
    fn round_trips() {
        let (d, t, p) = fake_server(
            r#"{"cmd":"status","services":["web"]}"#,
            "{\"ok\":true,\"dinit\":{\"state\":\"running\"},\"services\":[{\"name\":\"web\",\"state\":\"down\"}],\"orphans\":[]}\n",
        );
        let st = d.status(&["web".into()]).unwrap();
        assert_eq!(
            (st.dinit.state, st.services[0].state),
            (protocol::DinitState::Running, State::Down)
        );
        t.join().unwrap();
        let _ = std::fs::remove_file(p);

        let (d, t, p) = fake_server(
            r#"{"cmd":"down","services":["x"]}"#,
            "{\"ok\":false,\"error\":\"unknown service: x\"}\n",
        );
        let e = d
            .request(&Request::Down {
                services: vec!["x".into()],
            })
            .unwrap_err();
        assert_eq!(e, Failure::Refused("unknown service: x".into()));
        t.join().unwrap();
        let _ = std::fs::remove_file(p);

        let (d, t, p) = fake_server(r#"{"cmd":"shutdown"}"#, "{\"ok\":true}");
        let e = d.request(&Request::Shutdown).unwrap_err().to_string();
        assert!(e.ends_with(": connection closed without a response"), "{e}");
        t.join().unwrap();
        let _ = std::fs::remove_file(p);

        let (d, t, p) = fake_server(r#"{"cmd":"shutdown"}"#, "{\"ok\":tru\n");
        let e = d.request(&Request::Shutdown).unwrap_err().to_string();
        assert!(e.contains(": invalid response: "), "{e}");
        t.join().unwrap();
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn whom_the_client_trusts() {
        assert!(trusted_server(0, 1000));
        assert!(trusted_server(1000, 1000));
        assert!(!trusted_server(65534, 1000));
        assert!(trusted_server(0, 0));
        assert!(!trusted_server(1000, 0));
    }

    #[test]
    fn unreachable() {
        let d = Dinit {
            socket: ControlSocket::Path("/nonexistent/dinit.sock".into()),
        };
        assert_eq!(
            d.request(&Request::Shutdown).unwrap_err().to_string(),
            "cannot reach dinit at /nonexistent/dinit.sock: no such file or directory"
        );
        let d = Dinit {
            socket: ControlSocket::Abstract(b"dinit-client-test-nobody".to_vec()),
        };
        assert_eq!(
            d.request(&Request::Shutdown).unwrap_err().to_string(),
            "cannot reach dinit at @dinit-client-test-nobody: connection refused"
        );
        let long = format!("/{}", "x".repeat(107));
        let d = Dinit {
            socket: ControlSocket::Path(long.clone().into()),
        };
        assert_eq!(
            d.request(&Request::Shutdown).unwrap_err().to_string(),
            format!(
                "cannot reach dinit at {long}: file name too long (108 bytes; a Unix socket \
                 path has at most 107)"
            )
        );
        let d = Dinit {
            socket: ControlSocket::Off,
        };
        assert!(
            d.request(&Request::Shutdown)
                .unwrap_err()
                .to_string()
                .starts_with("cannot reach dinit at none: ")
        );
    }
}
