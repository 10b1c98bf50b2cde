//! The control protocol, version 1: one JSON request per line, one JSON response per line.
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
//! Pure: parsing and response shapes; nothing here touches the process or the socket.

use serde_json::{Map, Value, json};

/// Requests longer than this (without their newline) are refused.
pub const MAX_REQUEST: usize = 64 * 1024;

pub const VERSION: u64 = 1;

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

pub fn ok(mut result: Map<String, Value>) -> String {
    result.insert("ok".into(), Value::Bool(true));
    // `ok` first reads better; serde_json keeps insertion order only with preserve_order, so
    // build the line by hand.
    let mut line = String::from("{\"ok\":true");
    for (k, v) in result.iter().filter(|(k, _)| k.as_str() != "ok") {
        line.push(',');
        line.push_str(&Value::String(k.clone()).to_string());
        line.push(':');
        line.push_str(&v.to_string());
    }
    line.push('}');
    line
}

pub fn error(msg: &str) -> String {
    json!({"ok": false, "error": msg}).to_string()
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
    }

    #[test]
    fn responses() {
        let mut m = Map::new();
        m.insert("x".into(), json!(1));
        assert_eq!(ok(m), r#"{"ok":true,"x":1}"#);
        assert_eq!(error("nope"), r#"{"error":"nope","ok":false}"#);
        let v: Value = serde_json::from_str(&error("a\"b")).unwrap();
        assert_eq!(v["error"], "a\"b");
    }
}
