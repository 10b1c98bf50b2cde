//! The control socket on the event loop: set it up safely, accept connections within their
//! limits, and move bytes between each connection's socket and its state machine
//! ([`conn::Conn`], which decides everything else: one request at a time, deadlines, bounds).
//!
//! Bounded in every dimension, so that no local user can stall, bloat or lock out PID 1
//! (contract §11, §13): at most [`MAX_CONNECTIONS`] at once, of which [`RESERVED`] only for
//! uid 0 and dinit's own uid, and at most [`PER_UID`] for any other uid; at most one request in
//! flight and one response held per connection; deadlines on idle connections, on request
//! lines and on unread responses. A connection is served at most one request per event or turn
//! of the loop, so a client that pipelines cannot starve the others or the output path.
//! Nothing here blocks: every socket is non-blocking and edge-triggered. Who is asking comes
//! from the kernel (`SO_PEERCRED`), never from the request.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use nix::errno::Errno;

use super::conn::{Conn, Limits, Phase};
use super::protocol::{Request, Response, socket_path_too_long};
use crate::config::ControlSocket;
use crate::error::{Error, errno_text};

pub const MAX_CONNECTIONS: usize = 32;
/// Connections at most from one uid other than 0 and dinit's own.
pub const PER_UID: usize = 8;
/// Connections kept for uid 0 and dinit's own uid: every other uid together gets at most
/// `MAX_CONNECTIONS - RESERVED`, so `status`, `check` and `shutdown` from root always get in.
pub const RESERVED: usize = 4;
/// Connections accepted per event or turn; the rest wait for the next turn.
const ACCEPTS_PER_TURN: usize = 64;
/// What the connections of uids other than 0 and dinit's own may hold together in responses
/// their clients have not taken: past it, their next requests wait until it drains (uid 0's and
/// dinit's own never do). One response per connection is the rule; this bounds the sum, as a
/// status of 2,000 services is half a megabyte.
pub const MAX_HELD: usize = 1 << 20;

/// One request to carry out: which connection asked, who, and what.
pub struct Incoming {
    pub token: Token,
    pub uid: u32,
    pub request: Result<Request, String>,
}

/// A connection: its socket, its peer's uid and its state machine.
struct Slot {
    stream: UnixStream,
    uid: u32,
    conn: Conn,
    /// The socket may have bytes to read (set by every event, cleared by `WouldBlock`): reads
    /// stop while a request is held, and edge-triggered readiness does not come again for bytes
    /// that were already there.
    readable: bool,
}

pub struct Control {
    listener: Option<UnixListener>,
    /// The socket file to remove at exit (not for abstract sockets).
    path: Option<PathBuf>,
    own_uid: u32,
    conns: HashMap<Token, Slot>,
    /// Connections that can go on without a new event (a request held, input left to read):
    /// served at the next turn.
    ready: Vec<Token>,
    /// The accept budget ran out with connections possibly waiting: accept at the next turn.
    more_to_accept: bool,
    /// Connections of other uids whose next request waits for [`MAX_HELD`] to drain.
    waiting: Vec<Token>,
}

/// uid 0 and dinit's own uid: may change things, have reserved slots, never wait.
fn privileged(uid: u32, own: u32) -> bool {
    uid == 0 || uid == own
}

/// Whether a new connection from `uid` may be served while connections from `served` are:
/// 32 at most; uid 0 and dinit's own uid (`own`) up to that; any other uid at most
/// [`PER_UID`], and all of those together at most `MAX_CONNECTIONS - RESERVED`.
pub fn admit(uid: u32, own: u32, served: impl IntoIterator<Item = u32>) -> bool {
    let privileged = |u: u32| privileged(u, own);
    let (mut total, mut others, mut same) = (0, 0, 0);
    for u in served {
        total += 1;
        if !privileged(u) {
            others += 1;
            same += usize::from(u == uid);
        }
    }
    total < MAX_CONNECTIONS
        && (privileged(uid) || (same < PER_UID && others < MAX_CONNECTIONS - RESERVED))
}

impl Control {
    pub fn off() -> Control {
        Control {
            listener: None,
            path: None,
            own_uid: nix::unistd::getuid().as_raw(),
            conns: HashMap::new(),
            ready: Vec::new(),
            more_to_accept: false,
            waiting: Vec::new(),
        }
    }

    /// Sets the socket up; on failure returns the warning to print, and dinit runs on without it.
    pub fn setup(
        cfg: &ControlSocket,
        registry: &Registry,
        token: Token,
    ) -> (Control, Option<String>) {
        let mut control = Control::off();
        let bound = match cfg {
            ControlSocket::Off => return (control, None),
            ControlSocket::Path(p) => bind_path(p, control.own_uid).map(|l| (l, Some(p.clone()))),
            ControlSocket::Abstract(name) => bind_abstract(name).map(|l| (l, None)),
        };
        let (mut listener, path) = match bound {
            Ok(b) => b,
            Err(why) => return (control, Some(format!("control socket {cfg}: {why}"))),
        };
        if let Err(e) = registry.register(&mut listener, token, Interest::READABLE) {
            if let Some(p) = &path {
                let _ = std::fs::remove_file(p);
            }
            let e = Error::bare("epoll", &e);
            return (control, Some(format!("control socket {cfg}: {e}")));
        }
        control.listener = Some(listener);
        control.path = path;
        (control, None)
    }

    pub fn owns(&self, token: Token) -> bool {
        self.conns.contains_key(&token)
    }

    /// Whether connections may be waiting that the last [`Control::accept`] left.
    pub fn wants_accept(&self) -> bool {
        self.more_to_accept
    }

    /// Accepts waiting connections (at most [`ACCEPTS_PER_TURN`]); `token` gives each its poll
    /// token. One that [`admit`] refuses gets `too many connections` and is closed.
    pub fn accept(&mut self, registry: &Registry, mut token: impl FnMut() -> Token, now: Instant) {
        self.more_to_accept = false;
        let Some(listener) = &self.listener else {
            return;
        };
        for _ in 0..ACCEPTS_PER_TURN {
            let (mut stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNABORTED, EMFILE...: this one is lost, the listener goes on.
                Err(_) => return,
            };
            let uid = peer_uid(&stream).unwrap_or(u32::MAX);
            if !admit(uid, self.own_uid, self.conns.values().map(|s| s.uid)) {
                let mut refusal = Vec::new();
                Response::Refused("too many connections".into()).write_line(&mut refusal);
                // Non-blocking: a client that cannot take these few bytes does not get them.
                let _ = stream.write(&refusal);
                continue; // dropped: closed
            }
            let token = token();
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            let slot = Slot {
                stream,
                uid,
                conn: Conn::new(Limits::DEFAULT, now),
                readable: true,
            };
            self.conns.insert(token, slot);
        }
        self.more_to_accept = true;
    }

    /// An event for a connection: it may be readable or writable again.
    pub fn woke(&mut self, token: Token) {
        if let Some(s) = self.conns.get_mut(&token) {
            s.readable = true;
        }
    }

    /// Moves bytes for `token` (writes what is pending, reads while a request line is wanted)
    /// and returns its next request, when it may be served now. Its response goes to
    /// [`Control::respond`]; then [`Control::settle`].
    pub fn next_request(&mut self, token: Token, now: Instant) -> Option<Incoming> {
        let over_budget = self.held_by_others() >= MAX_HELD;
        let own = self.own_uid;
        let slot = self.conns.get_mut(&token)?;
        let mut buf = [0u8; 4096];
        loop {
            write_out(slot, now);
            // A request of another uid waits while their responses fill the budget (reading
            // a line goes on: it costs no more than the line).
            if over_budget && !privileged(slot.uid, own) && slot.conn.has_work() {
                if !self.waiting.contains(&token) {
                    self.waiting.push(token);
                }
                return None;
            }
            if let Some(request) = slot.conn.take() {
                if hung_up(&slot.stream) {
                    // The client is gone (not just done sending): what it queued is dropped
                    // unserved, its first request too.
                    slot.conn.failed();
                    return None;
                }
                return Some(Incoming {
                    token,
                    uid: slot.uid,
                    request,
                });
            }
            let room = slot.conn.wants_input()?;
            if !slot.readable {
                return None;
            }
            let room = room.min(buf.len());
            match slot.stream.read(&mut buf[..room]) {
                Ok(0) => slot.conn.end_of_input(),
                Ok(n) => slot.conn.received(&buf[..n], now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.readable = false;
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => slot.conn.failed(),
            }
        }
    }

    /// The response to `token`'s request, written straight into its output buffer.
    pub fn respond(&mut self, token: Token, response: &Response) {
        if let Some(s) = self.conns.get_mut(&token) {
            s.conn
                .respond(Instant::now(), |out| response.write_line(out));
        }
    }

    /// After a request (or none): writes what it can, closes a connection that is over, and
    /// keeps one that can go on without a new event for the next turn.
    pub fn settle(&mut self, token: Token, registry: &Registry, now: Instant) {
        let Some(slot) = self.conns.get_mut(&token) else {
            return;
        };
        write_out(slot, now);
        if slot.conn.is_closed() {
            self.close(token, registry);
            return;
        }
        let more = slot.conn.phase() == Phase::Reading
            && (slot.conn.has_work() || (slot.readable && slot.conn.wants_input().is_some()));
        if more && !self.ready.contains(&token) && !self.waiting.contains(&token) {
            self.ready.push(token);
        }
        self.release_waiting();
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut s) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut s.stream);
        }
        self.release_waiting();
    }

    /// Responses held for connections of other uids than 0 and dinit's own.
    fn held_by_others(&self) -> usize {
        self.conns
            .values()
            .filter(|s| !privileged(s.uid, self.own_uid))
            .map(|s| s.conn.held_output())
            .sum()
    }

    /// Once [`MAX_HELD`] has drained, the connections waiting for it go on at the next turn.
    fn release_waiting(&mut self) {
        if self.waiting.is_empty() || self.held_by_others() >= MAX_HELD {
            return;
        }
        for t in std::mem::take(&mut self.waiting) {
            if self.conns.contains_key(&t) && !self.ready.contains(&t) {
                self.ready.push(t);
            }
        }
    }

    /// A turn of the loop: closes connections past their deadline; returns those to serve
    /// again now (each at most one request).
    pub fn turn(&mut self, now: Instant, registry: &Registry) -> Vec<Token> {
        let expired: Vec<Token> = self
            .conns
            .iter_mut()
            .filter_map(|(t, s)| s.conn.expire(now).then_some(*t))
            .collect();
        for t in expired {
            self.close(t, registry);
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.retain(|t| self.conns.contains_key(t));
        ready
    }

    /// The earliest deadline of a connection; now, when there is work for the next turn.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.ready.is_empty() || self.more_to_accept {
            return Some(Instant::now());
        }
        self.conns.values().filter_map(|s| s.conn.deadline()).min()
    }

    /// At exit: the socket file goes (connections close with the process).
    pub fn remove(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
        self.listener = None;
    }
}

/// Writes what the connection has to write, until it is written or the socket is full.
fn write_out(slot: &mut Slot, now: Instant) {
    loop {
        let out = slot.conn.to_write();
        if out.is_empty() {
            return;
        }
        match slot.stream.write(out) {
            Ok(0) => {
                slot.conn.failed();
                return;
            }
            Ok(n) => slot.conn.wrote(n, now),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EPIPE, ECONNRESET: the client is gone, and what it queued with it.
            Err(_) => {
                slot.conn.failed();
                return;
            }
        }
    }
}

/// Whether the client has closed its socket. A Unix stream socket reports `POLLHUP` once its
/// peer is closed, and only `POLLRDHUP` when the peer merely shut down its writing side (a
/// client that waits for its answer after `shutdown(SHUT_WR)` is still there).
fn hung_up(stream: &UnixStream) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

/// Binds the socket file at `path`; the error is the warning's text after
/// `control socket <path>: ` (an operation and the OS error, or why the place is refused).
fn bind_path(path: &Path, own_uid: u32) -> Result<UnixListener, String> {
    if let Some(why) = socket_path_too_long(path.as_os_str().len()) {
        return Err(format!("bind: {why}"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    make_dirs(dir).map_err(|e| e.to_string())?;
    check_folder(dir, own_uid)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket nobody answers on is left from an earlier run: replace it. One that
            // answers (or whose queue is full) belongs to something that runs: leave it alone.
            // Non-blocking, so that a squatter that never accepts cannot hold dinit here.
            match UnixStream::connect(path) {
                Ok(_) => return Err(format!("bind: {}", errno_text(Errno::EADDRINUSE))),
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(format!("bind: {}", errno_text(Errno::EADDRINUSE)));
                }
                Err(e) => return Err(Error::bare("connect", &e).to_string()),
            }
            std::fs::remove_file(path).map_err(|e| Error::bare("remove", &e).to_string())?;
        }
        Ok(_) => return Err(format!("bind: {}", errno_text(Errno::EEXIST))),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::bare("bind", &e).to_string())?;
    // Every local user may ask for status and check; what they may change is decided per
    // request from their credentials.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
    Ok(listener)
}

/// Creates the missing folders of `dir`, each mode 0755 whatever the umask (the docs promise
/// 0755: every user's client must reach the socket).
fn make_dirs(dir: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err() {
        missing.push(d);
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::path(Some("chmod"), d, &e))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::path(Some("mkdir"), d, &e)),
        }
    }
    Ok(())
}

/// Refuses a folder where another user could take the socket's place: one every user may
/// write to without the sticky bit, or one owned by a uid other than 0 and dinit's own.
fn check_folder(dir: &Path, own_uid: u32) -> Result<(), String> {
    let m = std::fs::metadata(dir).map_err(|e| Error::path(Some("stat"), dir, &e).to_string())?;
    let mode = m.mode() & 0o7777;
    if m.uid() != 0 && m.uid() != own_uid {
        return Err(format!(
            "refused: {} is owned by uid {}, neither root nor dinit's uid",
            dir.display(),
            m.uid()
        ));
    }
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "refused: {} is writable by every user and has no sticky bit (mode {mode:04o})",
            dir.display()
        ));
    }
    Ok(())
}

fn bind_abstract(name: &[u8]) -> Result<UnixListener, String> {
    use std::os::linux::net::SocketAddrExt;
    // The name follows a NUL in `sun_path`.
    if let Some(why) = socket_path_too_long(name.len()) {
        return Err(format!("bind: {why}"));
    }
    let bind = |e: io::Error| Error::bare("bind", &e).to_string();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).map_err(bind)?;
    let std_listener = std::os::unix::net::UnixListener::bind_addr(&addr).map_err(bind)?;
    std_listener.set_nonblocking(true).map_err(bind)?;
    Ok(UnixListener::from_std(std_listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission() {
        let own = 1000;
        let none: [u32; 0] = [];
        assert!(admit(65534, own, none));
        // Per uid: 8 for an ordinary uid; root and dinit's own uid have no such limit.
        assert!(!admit(65534, own, [65534; 8]));
        assert!(admit(65533, own, [65534; 8]));
        assert!(admit(0, own, [0; 20]));
        assert!(admit(own, own, [own; 20]));
        // 28 for all ordinary uids together: 4 slots stay for root and dinit's uid.
        let others: Vec<u32> = (0..28).map(|i| 2000 + i / 4).collect();
        assert!(!admit(9999, own, others.clone()));
        assert!(admit(0, own, others.clone()));
        assert!(admit(own, own, others.clone()));
        let mut full = others.clone();
        full.extend([0, 0, own, own]);
        assert!(!admit(0, own, full));
        // 32 in all, whoever they are.
        assert!(!admit(0, own, [0; 32]));
        assert!(admit(0, own, [0; 31]));
        // dinit running as root: root is the only privileged uid.
        assert!(!admit(1000, 0, [1000; 8]));
    }

    #[test]
    fn folders() {
        let base = std::env::temp_dir().join(format!("dinit-folder-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let own = nix::unistd::geteuid().as_raw();
        // (The umask is the process's: tests/hardening.rs runs dinit under `umask 077`.)
        make_dirs(&base.join("a/b")).unwrap();
        for d in [base.join("a"), base.join("a/b")] {
            let mode = std::fs::metadata(&d).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o755, "{}", d.display());
        }
        check_folder(&base.join("a/b"), own).unwrap();
        let set = |mode: u32| {
            std::fs::set_permissions(base.join("a/b"), std::fs::Permissions::from_mode(mode))
                .unwrap()
        };
        set(0o777);
        let e = check_folder(&base.join("a/b"), own).unwrap_err();
        assert!(e.ends_with("is writable by every user and has no sticky bit (mode 0777)"));
        set(0o1777);
        check_folder(&base.join("a/b"), own).unwrap();
        set(0o775);
        check_folder(&base.join("a/b"), own).unwrap();
        if own == 0 {
            nix::unistd::chown(
                &base.join("a/b"),
                Some(nix::unistd::Uid::from_raw(65534)),
                None,
            )
            .unwrap();
            let e = check_folder(&base.join("a/b"), own).unwrap_err();
            assert!(e.contains("is owned by uid 65534"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&base);
        let long = format!("/{}", "x".repeat(107));
        let e = bind_path(Path::new(&long), own).unwrap_err();
        assert_eq!(
            e,
            "bind: file name too long (108 bytes; a Unix socket path has at most 107)"
        );
    }
}
