//! `dinit status|check|up|down|restart|signal|shutdown`: the client of the control protocol
//! (contract §11), and the pieces `sv` shares: the connection, the status data, `check` scripts.
//!
//! The client is a short-lived ordinary process, not PID 1: it may block (with a timeout on
//! the socket) and sleep while it waits for a service. It sends exactly the requests of
//! `control::protocol` (one connection per request, one line each way) and never touches a
//! service except by running its `check` script, as runit's `sv check` does.
//!
//! Output: `status` and `check` results on stdout; errors, usage and `-w` timeouts on stderr.
//! Exit codes: 0 done; 1 unknown service, refused or failed request, wait timed out, dinit
//! unreachable; 2 usage error.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::config::{self, Config, ControlSocket};
use crate::control::protocol::{self, Request};
use crate::error::{ErrnoOf, errno_text};

use super::sv;

/// The first arguments that make dinit a client (contract §1).
pub const COMMANDS: [&str; 7] = [
    "status", "check", "up", "down", "restart", "signal", "shutdown",
];

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

/// How long one request may take before the client gives up on dinit.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A status response for thousands of services stays far below this; more is not dinit.
const MAX_RESPONSE: u64 = 64 << 20;
/// How often `-w` asks for the status again.
const POLL: Duration = Duration::from_millis(50);

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

    fn connect(&self) -> Result<UnixStream, Failure> {
        let res = match &self.socket {
            ControlSocket::Off => {
                return Err(
                    self.unreachable("the control socket is off (DINIT_CONTROL_SOCKET=none)")
                );
            }
            ControlSocket::Path(p) => UnixStream::connect(p),
            ControlSocket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| UnixStream::connect_addr(&addr))
            }
        };
        res.map_err(|e| self.unreachable(io_text(&e)))
    }

    /// Sends one request and returns the result fields of a successful response (`ok` removed).
    pub fn request(&self, req: &Request) -> Result<Map<String, Value>, Failure> {
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
        parse_response(&response).map_err(|e| match e {
            Response::Refused(e) => Failure::Refused(e),
            Response::Invalid(e) => self.unreachable(format!("invalid response: {e}")),
        })
    }

    /// The status of the named services (all for none).
    pub fn status(&self, names: &[String]) -> Result<Status, Failure> {
        let m = self.request(&Request::Status {
            services: names.to_vec(),
        })?;
        Status::from_json(&m).map_err(|e| self.unreachable(format!("invalid response: {e}")))
    }
}

/// A read timeout is EAGAIN, whose text ("resource temporarily unavailable") says nothing.
fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no response within {} s", IO_TIMEOUT.as_secs())
        }
        _ => errno_text(ErrnoOf::from(e).0),
    }
}

enum Response {
    Refused(String),
    Invalid(String),
}

fn parse_response(line: &[u8]) -> Result<Map<String, Value>, Response> {
    let v: Value = serde_json::from_slice(line).map_err(|e| Response::Invalid(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(Response::Invalid("not a JSON object".into()));
    };
    match m.remove("ok") {
        Some(Value::Bool(true)) => Ok(m),
        Some(Value::Bool(false)) => Err(Response::Refused(match m.remove("error") {
            Some(Value::String(e)) => e,
            _ => "request failed".to_owned(),
        })),
        _ => Err(Response::Invalid("no ok".into())),
    }
}

// ---- the status data --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// `run` is being stopped (a request, or dinit's shutdown): terminate script or SIGTERM sent.
    Stopping,
    /// `run` ended and its `finish` runs; `pid` is finish's.
    Finishing,
    Down,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub running: bool,
    pub pid: Option<u32>,
    pub since_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub dir: PathBuf,
    pub state: State,
    pub pid: Option<u32>,
    /// RFC 3339 with milliseconds: a later start compares greater.
    pub since: String,
    pub since_s: f64,
    pub down_file: bool,
    pub down_reason: Option<String>,
    /// Where dinit is taking it (`want` in the status): stopping on request or for the
    /// shutdown counts as down on purpose.
    pub want_down: bool,
    pub log: Option<Log>,
}

impl Service {
    /// Down (or on its way down) because someone wanted it so: a `down` file, exit 115,
    /// `dinit down`.
    pub fn down_on_purpose(&self) -> bool {
        (self.want_down && self.state != State::Running)
            || matches!(
                self.down_reason.as_deref(),
                Some("down_file" | "disabled" | "requested")
            )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub stopping: bool,
    pub services: Vec<Service>,
}

impl Status {
    /// Reads what the server sends; fields that are missing or of another type take the
    /// harmless default, only a service without a name is an error.
    pub fn from_json(m: &Map<String, Value>) -> Result<Status, String> {
        let stopping = m
            .get("dinit")
            .and_then(|d| d.get("state"))
            .and_then(Value::as_str)
            == Some("stopping");
        let services = match m.get("services") {
            Some(Value::Array(a)) => a.iter().map(service_from_json).collect::<Result<_, _>>()?,
            _ => return Err("no services".into()),
        };
        Ok(Status { stopping, services })
    }
}

fn service_from_json(v: &Value) -> Result<Service, String> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a service without a name")?;
    let str_of = |k: &str| v.get(k).and_then(Value::as_str);
    let state = match str_of("state") {
        Some("running") => State::Running,
        Some("stopping") => State::Stopping,
        Some("finishing") => State::Finishing,
        _ => State::Down,
    };
    let log = v.get("log").filter(|l| l.is_object()).map(|l| Log {
        running: l.get("state").and_then(Value::as_str) == Some("running"),
        pid: pid_of(l),
        since_s: l.get("since_s").and_then(Value::as_f64).unwrap_or(0.0),
    });
    Ok(Service {
        name: name.to_owned(),
        dir: PathBuf::from(str_of("dir").unwrap_or_default()),
        state,
        pid: pid_of(v),
        since: str_of("since").unwrap_or_default().to_owned(),
        since_s: v.get("since_s").and_then(Value::as_f64).unwrap_or(0.0),
        down_file: v.get("down_file").and_then(Value::as_bool).unwrap_or(false),
        down_reason: str_of("down_reason").map(str::to_owned),
        want_down: str_of("want") == Some("down"),
        log,
    })
}

fn pid_of(v: &Value) -> Option<u32> {
    v.get("pid")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|&p| p > 0)
}

// ---- check scripts ----------------------------------------------------------------------------

/// How a `check` script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Exit 0, or no executable `check` in the directory.
    Passed,
    Exited(i32),
    Killed(i32),
    TimedOut,
    /// It could not be started (or waited for): the error line's text.
    Error(String),
}

impl Checked {
    pub fn passed(&self) -> bool {
        *self == Checked::Passed
    }
}

/// `<dir>/check` if it is an executable file (runit runs it; a plain file is ignored).
fn check_script(dir: &Path) -> Option<PathBuf> {
    let path = dir.join("check");
    let m = std::fs::metadata(&path).ok()?;
    (m.is_file() && m.permissions().mode() & 0o111 != 0).then_some(path)
}

/// A `check` script on its way.
pub enum CheckRun {
    Done(Checked),
    Running(Child),
}

/// Starts `<dir>/check` as runit's `sv` does: cwd the service directory, argv[0] `./check`,
/// the client's environment plus `DINIT_PID`, stdin `/dev/null`. It gets its own process
/// group so that a timeout kills what it started too (a `sleep` left behind would hold the
/// caller's pipes open).
pub fn start_check(dir: &Path, pid: Option<u32>, stdout: Stdio) -> CheckRun {
    let Some(path) = check_script(dir) else {
        return CheckRun::Done(Checked::Passed);
    };
    let mut cmd = Command::new(&path);
    cmd.arg0("./check")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .process_group(0);
    if let Some(pid) = pid {
        cmd.env("DINIT_PID", pid.to_string());
    }
    match cmd.spawn() {
        Ok(child) => CheckRun::Running(child),
        Err(e) => CheckRun::Done(Checked::Error(format!(
            "{}: {}",
            path.display(),
            io_text(&e)
        ))),
    }
}

/// Waits for every started script until `deadline`; what is still running then is killed
/// (with its process group) and reported as timed out.
pub fn finish_checks(runs: Vec<CheckRun>, deadline: Instant) -> Vec<Checked> {
    let mut results: Vec<Option<Checked>> = Vec::with_capacity(runs.len());
    let mut children: Vec<(usize, Child)> = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        match run {
            CheckRun::Done(c) => results.push(Some(c)),
            CheckRun::Running(child) => {
                results.push(None);
                children.push((i, child));
            }
        }
    }
    // The client is an ordinary short-lived process: a short sleep between polls is simpler
    // than a pidfd per script and costs nothing that matters here.
    let mut nap = Duration::from_millis(1);
    while !children.is_empty() {
        children.retain_mut(|(i, child)| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                results[*i] = Some(match (status.code(), status.signal()) {
                    (Some(0), _) => Checked::Passed,
                    (Some(code), _) => Checked::Exited(code),
                    (None, Some(sig)) => Checked::Killed(sig),
                    (None, None) => Checked::Exited(-1),
                });
                false
            }
            Err(e) => {
                kill_check(child);
                results[*i] = Some(Checked::Error(format!("wait: {}", io_text(&e))));
                false
            }
        });
        if children.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            for (i, child) in &mut children {
                kill_check(child);
                results[*i] = Some(Checked::TimedOut);
            }
            break;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Checked::Passed))
        .collect()
}

fn kill_check(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group first (its leader is the script); then the script itself, in case it left
        // the group.
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---- output -------------------------------------------------------------------------------

/// A line on stdout; a closed stdout is not a reason to panic (`println!` would).
pub fn out(line: &str) {
    let mut o = io::stdout().lock();
    let _ = o
        .write_all(line.as_bytes())
        .and_then(|_| o.write_all(b"\n"))
        .and_then(|_| o.flush());
}

/// A line on stderr.
pub fn err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

// ---- the commands -----------------------------------------------------------------------------

/// `dinit <cmd> <args>`, for `cmd` in [`COMMANDS`]; returns the exit code.
pub fn main(cmd: &str, args: &[OsString]) -> u8 {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let dinit = Dinit::from_env();
    let result = match cmd {
        "status" => status(&dinit, &args),
        "check" => check(&dinit, &args),
        "up" | "down" | "restart" => change(&dinit, cmd, &args),
        "signal" => signal(&dinit, &args),
        _ => shutdown(&dinit, &args),
    };
    match result {
        Ok(code) => code,
        Err(Exit::Usage(text)) => {
            err(&format!("usage: {text}"));
            USAGE
        }
        Err(Exit::Help(text)) => {
            out(&format!("usage: {text}"));
            OK
        }
        Err(Exit::Failed(f)) => {
            err(&f.to_string());
            FAILED
        }
        Err(Exit::Message(m)) => {
            err(&m);
            FAILED
        }
    }
}

/// Ways a command ends early.
enum Exit {
    /// A usage error: the usage text (after `usage: `), exit 2.
    Usage(&'static str),
    /// `-h`/`--help`: the usage text on stdout, exit 0.
    Help(&'static str),
    Failed(Failure),
    Message(String),
}

impl From<Failure> for Exit {
    fn from(f: Failure) -> Exit {
        Exit::Failed(f)
    }
}

const USAGE_STATUS: &str = "dinit status [--json] [SERVICE...]";
const USAGE_CHECK: &str = "dinit check [SERVICE...]";
const USAGE_CHANGE: &str = "dinit up|down|restart [-w SEC] SERVICE...";
const USAGE_SIGNAL: &str = "dinit signal SIG SERVICE...";
const USAGE_SHUTDOWN: &str = "dinit shutdown";

/// Flags given, each with its value if it takes one.
type Flags<'a> = Vec<(&'a str, Option<&'a str>)>;

/// Splits `args` into flags (each with its value, for those in `with_value`) and names. `--`
/// ends the flags; a lone `-` is a name.
fn split_args<'a>(
    args: &'a [String],
    known: &[&'a str],
    with_value: &[&'a str],
    usage: &'static str,
) -> Result<(Flags<'a>, Vec<String>), Exit> {
    let mut flags = Vec::new();
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            names.extend(it.by_ref().cloned());
            break;
        }
        if a == "-h" || a == "--help" {
            return Err(Exit::Help(usage));
        }
        if !a.starts_with('-') || a == "-" {
            names.push(a.clone());
            continue;
        }
        if let Some(&flag) = with_value.iter().find(|f| a.starts_with(**f)) {
            // `-w 5` or `-w5`
            let value = match &a[flag.len()..] {
                "" => it.next().map(String::as_str).ok_or(Exit::Usage(usage))?,
                rest => rest,
            };
            flags.push((flag, Some(value)));
        } else if known.contains(&a.as_str()) {
            flags.push((a.as_str(), None));
        } else {
            return Err(Exit::Usage(usage));
        }
    }
    Ok((flags, names))
}

fn status(dinit: &Dinit, args: &[String]) -> Result<u8, Exit> {
    let (flags, names) = split_args(args, &["--json"], &[], USAGE_STATUS)?;
    let mut m = dinit.request(&Request::Status { services: names })?;
    if !flags.is_empty() {
        m.remove("ok");
        out(&Value::Object(m).to_string());
        return Ok(OK);
    }
    let st =
        Status::from_json(&m).map_err(|e| dinit.unreachable(format!("invalid response: {e}")))?;
    for s in &st.services {
        out(&sv::status_line_with_log(&s.name, s));
    }
    Ok(OK)
}

/// `DINIT_CHECK_TIMEOUT` as a duration and as the text to print (as given: `0.5`, not `0.500`).
fn check_timeout() -> Result<(Duration, String), String> {
    let raw = std::env::var_os("DINIT_CHECK_TIMEOUT")
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty());
    // Validated by the same code as dinit's own configuration, so the message is the same.
    let lookup = |name: &str| {
        if name == "DINIT_CHECK_TIMEOUT" {
            raw.clone()
        } else {
            None
        }
    };
    let cfg = Config::from_lookup(lookup, Path::new("/")).map_err(|e| e.to_string())?;
    Ok((cfg.check_timeout, raw.unwrap_or_else(|| "5".to_owned())))
}

/// What `dinit check` says about one service before its check script ran.
fn check_reason(s: &Service) -> Option<String> {
    match s.state {
        State::Running => None,
        _ if s.down_on_purpose() => None,
        _ => Some(format!("{}: not running", s.name)),
    }
}

fn check(dinit: &Dinit, args: &[String]) -> Result<u8, Exit> {
    let (_, names) = split_args(args, &[], &[], USAGE_CHECK)?;
    let (timeout, timeout_text) = check_timeout().map_err(Exit::Message)?;
    let m = dinit.request(&Request::Check { services: names })?;
    let st =
        Status::from_json(&m).map_err(|e| dinit.unreachable(format!("invalid response: {e}")))?;
    if st.stopping {
        // Every service is on its way down: one reason says it all.
        out("dinit: stopping");
        return Ok(FAILED);
    }
    let deadline = Instant::now() + timeout;
    // All scripts run at once: a health check must not take (services × timeout).
    let mut runs = Vec::new();
    let mut lines: Vec<Option<String>> = Vec::new();
    for s in &st.services {
        let reason = check_reason(s);
        if reason.is_none() && s.state == State::Running {
            runs.push(start_check(&s.dir, s.pid, Stdio::inherit()));
        } else {
            runs.push(CheckRun::Done(Checked::Passed));
        }
        lines.push(reason);
    }
    let results = finish_checks(runs, deadline);
    let mut failed = false;
    for ((s, reason), checked) in st.services.iter().zip(lines).zip(results) {
        let line = reason.or_else(|| check_line(&s.name, &checked, &timeout_text));
        if let Some(line) = line {
            out(&line);
            failed = true;
        }
    }
    Ok(if failed { FAILED } else { OK })
}

fn check_line(name: &str, c: &Checked, timeout: &str) -> Option<String> {
    Some(match c {
        Checked::Passed => return None,
        Checked::Exited(code) => format!("{name}: check exited {code}"),
        Checked::Killed(sig) => format!("{name}: check killed by signal {sig}"),
        Checked::TimedOut => format!("{name}: check timed out after {timeout} s"),
        Checked::Error(e) => format!("{name}: check failed: {e}"),
    })
}

fn change(dinit: &Dinit, cmd: &str, args: &[String]) -> Result<u8, Exit> {
    let (flags, names) = split_args(args, &[], &["-w"], USAGE_CHANGE)?;
    if names.is_empty() {
        return Err(Exit::Usage(USAGE_CHANGE));
    }
    let wait = match flags.last() {
        Some((_, Some(v))) => Some(config::parse_seconds(v).ok_or(Exit::Usage(USAGE_CHANGE))?),
        _ => None,
    };
    let start = Instant::now();
    // For `restart -w`, what "a new run" means: another pid or a later start than now.
    let before = match (cmd, wait) {
        ("restart", Some(_)) => dinit.status(&names)?.services,
        _ => Vec::new(),
    };
    let req = match cmd {
        "up" => Request::Up {
            services: names.clone(),
        },
        "down" => Request::Down {
            services: names.clone(),
        },
        _ => Request::Restart {
            services: names.clone(),
        },
    };
    dinit.request(&req)?;
    let Some(wait) = wait else { return Ok(OK) };
    let deadline = start + wait;
    let mut pending = names;
    loop {
        let st = dinit.status(&pending)?;
        pending.retain(|n| {
            let now = st.services.iter().find(|s| &s.name == n);
            !now.is_some_and(|s| arrived(cmd, s, before.iter().find(|b| &b.name == n)))
        });
        if pending.is_empty() {
            return Ok(OK);
        }
        let now = Instant::now();
        if now >= deadline {
            for n in &pending {
                err(&format!("{n}: timeout"));
            }
            return Ok(FAILED);
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Whether `-w` is done waiting for `s` after `cmd`.
fn arrived(cmd: &str, s: &Service, before: Option<&Service>) -> bool {
    match cmd {
        "down" => s.state == State::Down,
        "up" => s.state == State::Running,
        _ => s.state == State::Running && before.is_none_or(|b| is_new_run(s, b)),
    }
}

/// `s` is another run than `before` (a restart happened in between).
pub fn is_new_run(s: &Service, before: &Service) -> bool {
    before.state != State::Running || s.pid != before.pid || s.since > before.since
}

fn signal(dinit: &Dinit, args: &[String]) -> Result<u8, Exit> {
    let (_, mut names) = split_args(args, &[], &[], USAGE_SIGNAL)?;
    if names.len() < 2 {
        return Err(Exit::Usage(USAGE_SIGNAL));
    }
    let sig = names.remove(0);
    let Some(signal) = protocol::parse_signal(&sig) else {
        err(&format!("unknown signal: {sig}"));
        return Err(Exit::Usage(USAGE_SIGNAL));
    };
    dinit.request(&Request::Signal {
        signal,
        services: names,
    })?;
    Ok(OK)
}

fn shutdown(dinit: &Dinit, args: &[String]) -> Result<u8, Exit> {
    let (_, names) = split_args(args, &[], &[], USAGE_SHUTDOWN)?;
    if !names.is_empty() {
        return Err(Exit::Usage(USAGE_SHUTDOWN));
    }
    dinit.request(&Request::Shutdown)?;
    Ok(OK)
}

/// The file name of argv[0], for `sv` detection.
pub fn program_name(argv0: &OsStr) -> Option<&OsStr> {
    Path::new(argv0).file_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: Value) -> Service {
        service_from_json(&v).unwrap()
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(br#"{"ok":true,"x":1}"#).ok().unwrap()["x"],
            1
        );
        assert!(
            matches!(parse_response(br#"{"ok":false,"error":"unknown service: x"}"#),
            Err(Response::Refused(e)) if e == "unknown service: x")
        );
        assert!(matches!(
            parse_response(br#"{"ok":false}"#),
            Err(Response::Refused(_))
        ));
        for bad in [&b"garbage"[..], b"[1]", b"{}", br#"{"ok":"yes"}"#, b""] {
            assert!(matches!(parse_response(bad), Err(Response::Invalid(_))));
        }
    }

    #[test]
    fn status_data() {
        let m = json!({"dinit": {"state": "stopping"}, "services": [
            {"name": "web", "dir": "/s/web", "state": "running", "pid": 12, "since": "2026-01-01T00:00:00.000Z",
             "since_s": 4.7, "down_file": true, "down_reason": null,
             "log": {"state": "running", "pid": 13, "since_s": 2.0}},
            {"name": "db", "state": "weird", "pid": null, "down_reason": "requested", "log": null},
        ]});
        let st = Status::from_json(m.as_object().unwrap()).unwrap();
        assert!(st.stopping);
        let web = &st.services[0];
        assert_eq!(
            (web.state, web.pid, web.down_file),
            (State::Running, Some(12), true)
        );
        assert_eq!(
            web.log,
            Some(Log {
                running: true,
                pid: Some(13),
                since_s: 2.0
            })
        );
        let db = &st.services[1];
        assert_eq!(
            (db.state, db.pid, db.log.is_none()),
            (State::Down, None, true)
        );
        assert!(db.down_on_purpose());
        assert!(Status::from_json(json!({"services": [{}]}).as_object().unwrap()).is_err());
        assert!(Status::from_json(json!({}).as_object().unwrap()).is_err());
    }

    #[test]
    fn on_purpose() {
        for (reason, yes) in [
            ("down_file", true),
            ("disabled", true),
            ("requested", true),
            ("exited", false),
            ("failed", false),
        ] {
            assert_eq!(
                svc(json!({"name": "x", "state": "down", "down_reason": reason})).down_on_purpose(),
                yes
            );
        }
        assert!(!svc(json!({"name": "x", "state": "down"})).down_on_purpose());
    }

    #[test]
    fn check_reasons() {
        assert_eq!(
            check_reason(&svc(json!({"name": "a", "state": "running", "pid": 3}))),
            None
        );
        assert_eq!(
            check_reason(&svc(
                json!({"name": "a", "state": "down", "down_reason": "down_file"})
            )),
            None
        );
        assert_eq!(
            check_reason(&svc(
                json!({"name": "a", "state": "down", "down_reason": "exited"})
            )),
            Some("a: not running".into())
        );
        assert_eq!(
            check_reason(&svc(json!({"name": "a", "state": "finishing", "pid": 3}))),
            Some("a: not running".into())
        );
        assert_eq!(
            check_line("a", &Checked::Exited(3), "5"),
            Some("a: check exited 3".into())
        );
        assert_eq!(
            check_line("a", &Checked::TimedOut, "0.5"),
            Some("a: check timed out after 0.5 s".into())
        );
        assert_eq!(check_line("a", &Checked::Passed, "5"), None);
    }

    #[test]
    fn new_runs() {
        let a = svc(
            json!({"name": "a", "state": "running", "pid": 3, "since": "2026-01-01T00:00:00.000Z"}),
        );
        let same = a.clone();
        assert!(!is_new_run(&same, &a));
        let later = svc(
            json!({"name": "a", "state": "running", "pid": 3, "since": "2026-01-01T00:00:00.001Z"}),
        );
        assert!(is_new_run(&later, &a));
        let other = svc(
            json!({"name": "a", "state": "running", "pid": 4, "since": "2026-01-01T00:00:00.000Z"}),
        );
        assert!(is_new_run(&other, &a));
        let was_down = svc(json!({"name": "a", "state": "down"}));
        assert!(is_new_run(&a, &was_down));
        assert!(arrived("restart", &later, Some(&a)));
        assert!(!arrived("restart", &same, Some(&a)));
        assert!(arrived("down", &was_down, None));
        assert!(!arrived("up", &was_down, None));
    }

    /// A one-connection fake server: checks the request line, answers `response` (no newline:
    /// the connection is closed without one).
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
        assert_eq!((st.stopping, st.services[0].state), (false, State::Down));
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

    #[test]
    fn check_scripts() {
        let dir = std::env::temp_dir().join(format!("dinit-check-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = |body: &str, mode: u32| {
            let p = dir.join("check");
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let run = |timeout_ms: u64| {
            let r = start_check(&dir, Some(42), Stdio::null());
            finish_checks(vec![r], Instant::now() + Duration::from_millis(timeout_ms)).remove(0)
        };
        assert_eq!(run(1000), Checked::Passed); // none
        script("#!/bin/sh\nexit 3\n", 0o644);
        assert_eq!(run(1000), Checked::Passed); // not executable: ignored
        script("#!/bin/sh\nexit 3\n", 0o755);
        assert_eq!(run(5000), Checked::Exited(3));
        script(
            "#!/bin/sh\n[ \"$DINIT_PID\" = 42 ] && [ \"$(pwd -P)\" = \"$(cd \"$(dirname \"$0\")\" && pwd -P)\" ]\n",
            0o755,
        );
        assert_eq!(run(5000), Checked::Passed);
        script("#!/bin/sh\nkill -9 $$\n", 0o755);
        assert_eq!(run(5000), Checked::Killed(9));
        script("#!/bin/sh\nsleep 100\nexit 0\n", 0o755);
        let t = Instant::now();
        assert_eq!(run(200), Checked::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
        script("#!/nonexistent/interpreter\n", 0o755);
        assert!(
            matches!(run(1000), Checked::Error(e) if e.ends_with("check: no such file or directory"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn args() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = v(&["-w", "5", "web", "--", "-x"]);
        let (flags, names) = split_args(&a, &[], &["-w"], USAGE_CHANGE).ok().unwrap();
        assert_eq!(flags, vec![("-w", Some("5"))]);
        assert_eq!(names, v(&["web", "-x"]));
        let a = v(&["-w0.5", "web"]);
        assert_eq!(
            split_args(&a, &[], &["-w"], USAGE_CHANGE).ok().unwrap().0,
            vec![("-w", Some("0.5"))]
        );
        assert!(matches!(
            split_args(&v(&["-w"]), &[], &["-w"], USAGE_CHANGE),
            Err(Exit::Usage(_))
        ));
        assert!(matches!(
            split_args(&v(&["-x"]), &[], &["-w"], USAGE_CHANGE),
            Err(Exit::Usage(_))
        ));
        assert!(matches!(
            split_args(&v(&["--help"]), &[], &[], USAGE_CHANGE),
            Err(Exit::Help(_))
        ));
        let a = v(&["a", "--json"]);
        let (flags, names) = split_args(&a, &["--json"], &[], USAGE_STATUS).ok().unwrap();
        assert_eq!((flags.len(), names), (1, v(&["a"])));
    }
}
