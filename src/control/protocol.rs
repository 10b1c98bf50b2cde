//! The control protocol, version 1: one JSON request per line, one JSON response per line. The
//! types here are the protocol: the server writes them and the client reads them, so a field or
//! a reason string exists once.
//!
//! Request: an object with `cmd` and, where the command takes them, `services` (a list of
//! names) and `signal` (a name such as `HUP`/`SIGHUP` or a number). Response: an object with
//! `ok`; on success the command's result is merged in, on failure it has `error` (a string).
//!
//! ```text
//! {"cmd":"status"}                              -> {"ok":true,"dinit":{…},"services":[…],"orphans":[…]}
//! {"cmd":"status","services":["web"]}           -> the same, for web only
//! {"cmd":"check","services":["web"]}            -> like status (the client decides and runs check scripts)
//! {"cmd":"down","services":["web","db"]}        -> {"ok":true}
//! {"cmd":"up"|"restart","services":[…]}         -> {"ok":true}
//! {"cmd":"signal","signal":"HUP","services":[…]}-> {"ok":true}
//! {"cmd":"shutdown"}                            -> {"ok":true}
//! anything wrong                                -> {"ok":false,"error":"unknown service: x"}
//! ```
//!
//! Each type maps itself to and from JSON here, by hand, once (`to_json`, `from_json`): the
//! static build's flags (`crt-static`) apply to host crates too, so serde's derive macros
//! cannot be built; the mapping is what they would generate, written where it can be read.
//! Readers are lenient where a client can be (a field missing or of another type takes the
//! harmless default; a status without services or a service without a name is refused), so
//! that an older client reads a newer server. Request errors keep the contract's texts
//! (`unknown command: fly`, `down needs services`). Pure: nothing here touches the process or
//! the socket.

use serde_json::{Map, Value, json};

mod wire;

use wire::put_str;

/// Requests longer than this (without their newline) are refused.
pub const MAX_REQUEST: usize = 64 * 1024;

pub const VERSION: u64 = 1;

/// The longest socket path (or abstract name) a Unix socket address holds: `sun_path` is 108
/// bytes, and a path needs its terminating NUL (an abstract name its leading one).
pub const MAX_SOCKET_PATH: usize = 107;

/// What dinit and its client say of a socket path too long for a Unix socket address, after
/// the operation (`bind: `, `connect: `); `None` when it fits.
pub fn socket_path_too_long(len: usize) -> Option<String> {
    (len > MAX_SOCKET_PATH).then(|| {
        format!(
            "file name too long ({len} bytes; a Unix socket path has at most {MAX_SOCKET_PATH})"
        )
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `services` empty: all.
    Status {
        services: Vec<String>,
    },
    Check {
        services: Vec<String>,
    },
    Up {
        services: Vec<String>,
    },
    Down {
        services: Vec<String>,
    },
    Restart {
        services: Vec<String>,
    },
    Signal {
        signal: i32,
        services: Vec<String>,
    },
    Shutdown,
}

impl Request {
    /// Whether the request changes something (only uid 0 and dinit's own uid may send those).
    pub fn changes(&self) -> bool {
        !matches!(self, Request::Status { .. } | Request::Check { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Request::Status { .. } => "status",
            Request::Check { .. } => "check",
            Request::Up { .. } => "up",
            Request::Down { .. } => "down",
            Request::Restart { .. } => "restart",
            Request::Signal { .. } => "signal",
            Request::Shutdown => "shutdown",
        }
    }

    /// The JSON line a client sends (without the newline).
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        m.insert("cmd".into(), self.name().into());
        match self {
            Request::Status { services }
            | Request::Check { services }
            | Request::Up { services }
            | Request::Down { services }
            | Request::Restart { services } => {
                m.insert("services".into(), json!(services));
            }
            Request::Signal { signal, services } => {
                m.insert("signal".into(), json!(signal));
                m.insert("services".into(), json!(services));
            }
            Request::Shutdown => {}
        }
        Value::Object(m).to_string()
    }
}

/// Parses one request line; the error is the text of the error response.
pub fn parse(line: &[u8]) -> Result<Request, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("invalid request: {e}"))?;
    let Value::Object(m) = v else {
        return Err("invalid request: not a JSON object".into());
    };
    let cmd = match m.get("cmd") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("invalid request: cmd must be a string".into()),
        None => return Err("invalid request: no cmd".into()),
    };
    let services = match m.get("services") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "invalid request: services must be strings".to_owned())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("invalid request: services must be a list".into()),
    };
    let need_services = |services: Vec<String>| {
        if services.is_empty() {
            Err(format!("invalid request: {cmd} needs services"))
        } else {
            Ok(services)
        }
    };
    Ok(match cmd {
        "status" => Request::Status { services },
        "check" => Request::Check { services },
        "up" => Request::Up {
            services: need_services(services)?,
        },
        "down" => Request::Down {
            services: need_services(services)?,
        },
        "restart" => Request::Restart {
            services: need_services(services)?,
        },
        "signal" => {
            let signal = match m.get("signal") {
                Some(Value::String(s)) => {
                    parse_signal(s).ok_or_else(|| format!("unknown signal: {s}"))?
                }
                Some(Value::Number(n)) => n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|n| valid_signal(*n))
                    .ok_or_else(|| format!("unknown signal: {n}"))?,
                Some(_) => return Err("invalid request: signal must be a name or a number".into()),
                None => return Err("invalid request: signal needs signal".into()),
            };
            Request::Signal {
                signal,
                services: need_services(services)?,
            }
        }
        "shutdown" => Request::Shutdown,
        other => return Err(format!("unknown command: {other}")),
    })
}

fn valid_signal(n: i32) -> bool {
    n > 0 && n < libc::SIGRTMAX()
}

/// `HUP`, `SIGHUP`, `hup` or `1`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return valid_signal(n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    nix::sys::signal::Signal::iterator()
        .find(|sig| sig.as_str().strip_prefix("SIG") == Some(name))
        .map(|sig| sig as i32)
}

// ---- responses ------------------------------------------------------------------------------

/// The result of `status` and `check`: what `dinit status --json` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub dinit: Dinit,
    pub services: Vec<ServiceStatus>,
    pub orphans: Vec<OrphanStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dinit {
    pub pid: u32,
    pub state: DinitState,
    pub uptime_s: f64,
    pub version: String,
    pub protocol: u64,
}

/// An enum of words on the wire: each variant's word, and the variant of a word.
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $w:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub fn word(self) -> &'static str {
                match self { $($name::$v => $w),+ }
            }
            pub fn from_word(w: &str) -> Option<$name> {
                match w { $($w => Some($name::$v),)+ _ => None }
            }
        }
    };
}

words!(DinitState { Running = "running", Stopping = "stopping" });

words!(State {
    Running = "running",
    /// `run` is being stopped (a request, or dinit's shutdown): terminate script or SIGTERM
    /// sent.
    Stopping = "stopping",
    /// `run` ended and its `finish` runs; `pid` is finish's.
    Finishing = "finishing",
    Down = "down",
});

words!(
    /// Why a service is down.
    DownReason {
        /// runit's `down` file: never started.
        DownFile = "down_file",
        /// Could not be started.
        Failed = "failed",
        /// `run` exited 115.
        Disabled = "disabled",
        /// `run` ended (and stopped the container).
        Exited = "exited",
        /// Stopped on request (`dinit down`).
        Requested = "requested",
    }
);

words!(Want { Up = "up", Down = "down" });

words!(LogState { Running = "running", Down = "down" });

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    /// The service directory (where `check` lives).
    pub dir: String,
    pub state: State,
    /// `run`'s pid (`finish`'s while it runs); null when down.
    pub pid: Option<u32>,
    /// When the state began, RFC 3339 with milliseconds: a later start compares greater.
    pub since: String,
    pub since_s: f64,
    pub down_file: bool,
    /// Why it is down; null unless `state` is `down`.
    pub down_reason: Option<DownReason>,
    /// Where dinit is taking it, as runit's `want up|down`.
    pub want: Want,
    /// How `run` ended last time.
    pub exit: Option<ExitStatus>,
    /// Null when the service has no logger.
    pub log: Option<LogStatus>,
    pub lines: Streams,
    pub bytes: Streams,
    /// Ready (contract §15): its notification came, its `check` passed, or it was executed;
    /// a service down on purpose counts as ready.
    pub ready: bool,
    /// Since when it is ready (RFC 3339, ms); null when not ready or down.
    pub ready_since: Option<String>,
}

impl ServiceStatus {
    /// Down (or on its way down) because someone wanted it so: a `down` file, exit 115,
    /// `dinit down`, or dinit's own shutdown.
    pub fn down_on_purpose(&self) -> bool {
        (self.want == Want::Down && self.state != State::Running)
            || matches!(
                self.down_reason,
                Some(DownReason::DownFile | DownReason::Disabled | DownReason::Requested)
            )
    }
}

/// `{"code": n}` or `{"signal": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogStatus {
    pub state: LogState,
    pub pid: Option<u32>,
    pub since: String,
    pub since_s: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    pub stdout: u64,
    pub stderr: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanStatus {
    /// `<comm>/<pid>`.
    pub name: String,
    pub pid: i32,
    /// `terminate` (being stopped) or `adopt`.
    pub policy: String,
}

/// One response line (without its newline).
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `{"ok":true}`
    Done,
    /// `{"ok":true,"dinit":…,"services":…,"orphans":…}`
    Status(Status),
    /// `{"ok":false,"error":…}`
    Refused(String),
}

impl Response {
    /// The response line, without its newline (what [`Response::write_line`] writes).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_line(&mut out);
        out.pop();
        // Only serde_json's output and ASCII punctuation went in.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the response line and its newline to `out`. `ok` comes first (it reads better);
    /// the rest is byte for byte what serde_json writes for [`Status::to_value`] (keys sorted,
    /// as its map keeps them), written straight into the buffer: a status of 2,000 services is
    /// half a megabyte, and building it as a `Value` tree first took 40 ms and left PID 1
    /// 8 MB larger.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        match self {
            Response::Done => out.extend_from_slice(br#"{"ok":true}"#),
            Response::Status(s) => {
                out.extend_from_slice(br#"{"ok":true,"#);
                s.write_members(out);
                out.push(b'}');
            }
            Response::Refused(e) => {
                out.extend_from_slice(br#"{"ok":false,"error":"#);
                put_str(out, e);
                out.push(b'}');
            }
        }
        out.push(b'\n');
    }
}

/// Why a response line is not the result the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// `{"ok":false,"error":…}`: its text.
    Refused(String),
    /// Not a response of this protocol.
    Invalid(String),
}

/// Reads a response line: the object of a successful one, `ok` removed.
pub fn read_response(line: &[u8]) -> Result<Map<String, Value>, ReplyError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| ReplyError::Invalid(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(ReplyError::Invalid("not a JSON object".into()));
    };
    match m.remove("ok") {
        Some(Value::Bool(true)) => Ok(m),
        Some(Value::Bool(false)) => Err(ReplyError::Refused(match m.remove("error") {
            Some(Value::String(e)) => e,
            _ => "request failed".to_owned(),
        })),
        _ => Err(ReplyError::Invalid("no ok".into())),
    }
}

/// Reads a status response.
pub fn read_status(line: &[u8]) -> Result<Status, ReplyError> {
    let m = read_response(line)?;
    Status::from_value(&Value::Object(m)).map_err(ReplyError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(
            parse(br#"{"cmd":"status"}"#),
            Ok(Request::Status { services: vec![] })
        );
        assert_eq!(
            parse(br#"{"cmd":"down","services":["a","b"]}"#),
            Ok(Request::Down {
                services: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(
            parse(br#"{"cmd":"signal","signal":"hup","services":["a"]}"#),
            Ok(Request::Signal {
                signal: 1,
                services: vec!["a".into()]
            })
        );
        assert_eq!(
            parse(br#"{"cmd":"signal","signal":"SIGUSR1","services":["a"]}"#).unwrap(),
            Request::Signal {
                signal: 10,
                services: vec!["a".into()]
            }
        );
        assert_eq!(
            parse(br#"{"cmd":"signal","signal":15,"services":["a"]}"#).unwrap(),
            Request::Signal {
                signal: 15,
                services: vec!["a".into()]
            }
        );
        assert_eq!(parse(br#"{"cmd":"shutdown"}"#), Ok(Request::Shutdown));
    }

    #[test]
    fn bad_requests() {
        for (line, err) in [
            (&b"garbage"[..], "invalid request"),
            (b"[1]", "not a JSON object"),
            (b"{}", "no cmd"),
            (br#"{"cmd":1}"#, "cmd must be a string"),
            (br#"{"cmd":"fly"}"#, "unknown command: fly"),
            (br#"{"cmd":"down"}"#, "down needs services"),
            (
                br#"{"cmd":"down","services":"a"}"#,
                "services must be a list",
            ),
            (
                br#"{"cmd":"down","services":[1]}"#,
                "services must be strings",
            ),
            (
                br#"{"cmd":"signal","signal":"NOPE","services":["a"]}"#,
                "unknown signal: NOPE",
            ),
            (
                br#"{"cmd":"signal","signal":999,"services":["a"]}"#,
                "unknown signal: 999",
            ),
            (
                br#"{"cmd":"signal","signal":[1],"services":["a"]}"#,
                "signal must be",
            ),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(err), "{e} for {}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn round_trip() {
        for r in [
            Request::Status { services: vec![] },
            Request::Restart {
                services: vec!["x".into()],
            },
            Request::Signal {
                signal: 1,
                services: vec!["x".into()],
            },
            Request::Shutdown,
        ] {
            assert_eq!(parse(r.to_json().as_bytes()), Ok(r));
        }
        assert_eq!(Request::Shutdown.to_json(), r#"{"cmd":"shutdown"}"#);
    }

    fn status() -> Status {
        Status {
            dinit: Dinit {
                pid: 1,
                state: DinitState::Running,
                uptime_s: 1.5,
                version: "0.1.0".into(),
                protocol: VERSION,
            },
            services: vec![ServiceStatus {
                name: "web".into(),
                dir: "/etc/service/web".into(),
                state: State::Down,
                pid: None,
                since: "2026-01-01T00:00:00.000Z".into(),
                since_s: 2.0,
                down_file: false,
                down_reason: Some(DownReason::DownFile),
                want: Want::Down,
                exit: Some(ExitStatus::Signal(9)),
                log: Some(LogStatus {
                    state: LogState::Running,
                    pid: Some(13),
                    since: "2026-01-01T00:00:00.000Z".into(),
                    since_s: 2.0,
                }),
                lines: Streams {
                    stdout: 3,
                    stderr: 4,
                },
                bytes: Streams::default(),
                ready: true,
                ready_since: None,
            }],
            orphans: vec![],
        }
    }

    #[test]
    fn responses() {
        assert_eq!(Response::Done.to_json(), r#"{"ok":true}"#);
        assert_eq!(
            Response::Refused("a\"b".into()).to_json(),
            r#"{"ok":false,"error":"a\"b"}"#
        );
        let line = Response::Status(status()).to_json();
        assert!(line.starts_with(r#"{"ok":true,"dinit":{"#), "{line}");
        for want in [
            r#""down_reason":"down_file""#,
            r#""exit":{"signal":9}"#,
            r#""want":"down""#,
            r#""lines":{"stderr":4,"stdout":3}"#,
            r#""pid":null"#,
        ] {
            assert!(line.contains(want), "{want} in {line}");
        }
        assert_eq!(read_status(line.as_bytes()), Ok(status()));
        assert!(read_response(br#"{"ok":true}"#).is_ok());
        assert_eq!(
            read_response(br#"{"ok":false,"error":"unknown service: x"}"#).unwrap_err(),
            ReplyError::Refused("unknown service: x".into())
        );
        assert_eq!(
            read_response(br#"{"ok":false}"#).unwrap_err(),
            ReplyError::Refused("request failed".into())
        );
        for bad in [&b"garbage"[..], b"[1]", b"{}", br#"{"ok":"yes"}"#, b""] {
            assert!(matches!(read_response(bad), Err(ReplyError::Invalid(_))));
        }
        // A status without its services is not a status.
        assert!(matches!(
            read_status(br#"{"ok":true,"dinit":{}}"#),
            Err(ReplyError::Invalid(_))
        ));
    }

    /// The line written directly is the line serde_json writes for `to_value()` (the mapping's
    /// one definition), whatever the values: escapes, non-ASCII, non-finite floats, no logger,
    /// orphans, every exit form.
    #[test]
    fn written_as_serde_json_writes_it() {
        let reference = |st: &Status| {
            let body = st.to_value().to_string();
            format!(r#"{{"ok":true,{}"#, &body[1..])
        };
        let mut st = status();
        assert_eq!(Response::Status(st.clone()).to_json(), reference(&st));
        st.services.push(ServiceStatus {
            name: "we\"ird\\ \u{1b}[31m\n\u{2028}é😀".into(),
            dir: "/s/</script>&".into(),
            state: State::Finishing,
            pid: Some(u32::MAX),
            since_s: f64::NAN,
            down_reason: None,
            exit: Some(ExitStatus::Code(-1)),
            log: None,
            want: Want::Up,
            down_file: true,
            lines: Streams {
                stdout: u64::MAX,
                stderr: 0,
            },
            ..st.services[0].clone()
        });
        st.services[0].log.as_mut().unwrap().pid = None;
        st.services[0].log.as_mut().unwrap().since_s = f64::INFINITY;
        st.services[0].exit = Some(ExitStatus::Code(115));
        st.dinit.uptime_s = 1e-7;
        st.orphans = vec![
            OrphanStatus {
                name: "sleep/77".into(),
                pid: 77,
                policy: "adopt".into(),
            },
            OrphanStatus {
                name: "\u{0}/0".into(),
                pid: -1,
                policy: "terminate".into(),
            },
        ];
        assert_eq!(Response::Status(st.clone()).to_json(), reference(&st));
        st.services.clear();
        st.orphans.clear();
        assert_eq!(Response::Status(st.clone()).to_json(), reference(&st));
        let mut line = Vec::new();
        Response::Refused("x\ny".into()).write_line(&mut line);
        assert_eq!(line, b"{\"ok\":false,\"error\":\"x\\ny\"}\n");
    }

    /// What an older or newer server may send: missing fields and unknown words take the
    /// harmless default; only a service without a name is refused.
    #[test]
    fn lenient_reading() {
        let v = json!({"dinit": {"state": "stopping"}, "services": [
            {"name": "web", "dir": "/s/web", "state": "running", "pid": 12,
             "since": "2026-01-01T00:00:00.000Z", "since_s": 4.7, "down_file": true,
             "down_reason": null, "log": {"state": "running", "pid": 13, "since_s": 2.0}},
            {"name": "db", "state": "weird", "pid": null, "down_reason": "requested", "log": null},
        ]});
        let st = Status::from_value(&v).unwrap();
        assert_eq!(st.dinit.state, DinitState::Stopping);
        let web = &st.services[0];
        assert_eq!(
            (web.state, web.pid, web.down_file),
            (State::Running, Some(12), true)
        );
        let log = web.log.as_ref().unwrap();
        assert_eq!(
            (log.state, log.pid, log.since_s),
            (LogState::Running, Some(13), 2.0)
        );
        let db = &st.services[1];
        assert_eq!(
            (db.state, db.pid, db.log.is_none()),
            (State::Down, None, true)
        );
        assert!(db.down_on_purpose());
        assert!(Status::from_value(&json!({"services": [{}]})).is_err());
        assert!(Status::from_value(&json!({})).is_err());
    }

    #[test]
    fn on_purpose() {
        let mut s = status().services.remove(0);
        for (reason, yes) in [
            (DownReason::DownFile, true),
            (DownReason::Disabled, true),
            (DownReason::Requested, true),
            (DownReason::Exited, false),
            (DownReason::Failed, false),
        ] {
            s.down_reason = Some(reason);
            s.want = Want::Up;
            assert_eq!(s.down_on_purpose(), yes, "{reason:?}");
        }
        s.down_reason = None;
        s.state = State::Finishing;
        s.want = Want::Down;
        assert!(s.down_on_purpose());
        s.state = State::Running;
        assert!(!s.down_on_purpose());
    }
}
