//! `DINIT_*` environment variables -> one [`Config`].
//!
//! Pure: takes a lookup function, never touches the process. Read once at start, before any
//! service runs; an invalid value is an [`Invalid`] that names the variable and the value (the
//! caller prints it and exits 1). Empty values count as unset, as in tozd/dinit.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::log::Level;

/// What dinit does with processes reparented to it (contract §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Terminate,
    Adopt,
    Ignore,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Terminate => "terminate",
            Policy::Adopt => "adopt",
            Policy::Ignore => "ignore",
        }
    }
}

/// Where the control socket lives (contract §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlSocket {
    Off,
    Path(PathBuf),
    /// Linux abstract namespace; the name without the leading `@`.
    Abstract(Vec<u8>),
}

impl fmt::Display for ControlSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlSocket::Off => f.write_str("none"),
            ControlSocket::Path(p) => {
                use std::os::unix::ffi::OsStrExt;
                write!(f, "{}", crate::log::Escape(p.as_os_str().as_bytes()))
            }
            ControlSocket::Abstract(name) => write!(f, "@{}", crate::log::Escape(name)),
        }
    }
}

pub const DEFAULT_DIR: &str = "/etc/service";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/dinit/control.sock";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Absolute: a relative `DINIT_DIR` is resolved against the working directory at start.
    pub dir: PathBuf,
    pub log_level: Level,
    pub json_stdout: bool,
    pub kill_timeout: Duration,
    pub policy: Policy,
    /// `None`: no limit (the default `0`).
    pub stop_timeout: Option<Duration>,
    pub check_timeout: Duration,
    /// `DINIT_CHECK_INTERVAL`: how often dinit runs a service's `check` for readiness
    /// (`None`: `0`, never).
    pub check_interval: Option<Duration>,
    pub control_socket: ControlSocket,
    /// `DINIT_MAIN_EXIT_ZERO`: the main program's exit codes that count as 0 (tini's `-e`).
    pub main_exit_zero: Vec<u8>,
    /// `DINIT_HTTP_LISTEN`: where to serve probes and metrics (off by default).
    pub http_listen: Option<std::net::SocketAddr>,
}

/// An invalid value: its `Display` is the user's error line (without the `dinit: error:` part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    what: &'static str,
    var: &'static str,
    value: String,
    expected: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reference's words first (`invalid log level INFO`), then the variable, so that both
        // scripts written for tozd/dinit and a user reading it find what they look for.
        write!(
            f,
            "invalid {} {}: {} must be {}",
            self.what,
            crate::log::Escape(self.value.as_bytes()),
            self.var,
            self.expected
        )
    }
}

const SECONDS: &str = "a number of seconds";

impl Config {
    /// Reads the process environment. `cwd` resolves a relative `DINIT_DIR`.
    pub fn from_env(cwd: &Path) -> Result<Config, Invalid> {
        Config::from_lookup(
            |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
            cwd,
        )
    }

    /// Validation order follows tozd/dinit (log level, kill timeout, policy), then the variables
    /// dinit adds; the first invalid one is reported.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Config, Invalid> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let invalid = |what, var, value: &str, expected| Invalid {
            what,
            var,
            value: value.to_owned(),
            expected,
        };

        let log_level = match get("DINIT_LOG_LEVEL") {
            None => Level::Warn,
            Some(v) => Level::parse(&v).ok_or_else(|| {
                invalid(
                    "log level",
                    "DINIT_LOG_LEVEL",
                    &v,
                    "one of none, error, warn, info, debug",
                )
            })?,
        };
        let kill_timeout = match get("DINIT_KILL_TIMEOUT") {
            None => Duration::from_secs(30),
            Some(v) => parse_seconds(&v)
                .ok_or_else(|| invalid("kill timeout", "DINIT_KILL_TIMEOUT", &v, SECONDS))?,
        };
        let policy = match get("DINIT_REPARENTING_POLICY").as_deref() {
            None | Some("terminate") => Policy::Terminate,
            Some("adopt") => Policy::Adopt,
            Some("ignore") => Policy::Ignore,
            Some(v) => Err(invalid(
                "reparenting policy",
                "DINIT_REPARENTING_POLICY",
                v,
                "one of terminate, adopt, ignore",
            ))?,
        };
        let json_stdout = match get("DINIT_JSON_STDOUT") {
            None => true,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                invalid(
                    "JSON stdout",
                    "DINIT_JSON_STDOUT",
                    &v,
                    "one of 1, true, yes, on, 0, false, no, off",
                )
            })?,
        };
        let stop_timeout = match get("DINIT_STOP_TIMEOUT") {
            None => None,
            Some(v) => {
                let d = parse_seconds(&v)
                    .ok_or_else(|| invalid("stop timeout", "DINIT_STOP_TIMEOUT", &v, SECONDS))?;
                (!d.is_zero()).then_some(d)
            }
        };
        let check_timeout = match get("DINIT_CHECK_TIMEOUT") {
            None => Duration::from_secs(5),
            Some(v) => parse_seconds(&v)
                .ok_or_else(|| invalid("check timeout", "DINIT_CHECK_TIMEOUT", &v, SECONDS))?,
        };
        let check_interval = match get("DINIT_CHECK_INTERVAL") {
            None => Some(Duration::from_secs(5)),
            Some(v) => {
                let d = parse_seconds(&v).ok_or_else(|| {
                    invalid("check interval", "DINIT_CHECK_INTERVAL", &v, SECONDS)
                })?;
                (!d.is_zero()).then_some(d)
            }
        };
        let main_exit_zero = match get("DINIT_MAIN_EXIT_ZERO") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(|c| {
                    // Digits only: `+5` or ` 1e2` is a typo more likely than a code.
                    let c = c.trim();
                    let digits = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
                    digits.then(|| c.parse::<u8>().ok()).flatten()
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| {
                    invalid(
                        "main exit codes",
                        "DINIT_MAIN_EXIT_ZERO",
                        &v,
                        "a comma-separated list of exit codes (0 to 255)",
                    )
                })?,
        };
        let http_listen = match get("DINIT_HTTP_LISTEN") {
            None => None,
            Some(v) => Some(parse_listen(&v).ok_or_else(|| {
                invalid(
                    "HTTP listen address",
                    "DINIT_HTTP_LISTEN",
                    &v,
                    "[HOST]:PORT, e.g. :9090, 127.0.0.1:9090 or [::]:9090",
                )
            })?),
        };
        let control_socket = control_socket(get("DINIT_CONTROL_SOCKET").as_deref());
        let dir = cwd.join(get("DINIT_DIR").unwrap_or_else(|| DEFAULT_DIR.to_owned()));
        Ok(Config {
            dir,
            log_level,
            json_stdout,
            kill_timeout,
            policy,
            stop_timeout,
            check_timeout,
            check_interval,
            control_socket,
            main_exit_zero,
            http_listen,
        })
    }
}

/// `DINIT_CONTROL_SOCKET`: `none` off, `@name` abstract, anything else a path (default when unset).
pub fn control_socket(value: Option<&str>) -> ControlSocket {
    match value {
        None | Some("") => ControlSocket::Path(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        Some("none") => ControlSocket::Off,
        Some(v) => match v.strip_prefix('@') {
            Some(name) => ControlSocket::Abstract(name.as_bytes().to_vec()),
            None => ControlSocket::Path(PathBuf::from(v)),
        },
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The largest timeout the reference can represent: its seconds become int64 nanoseconds.
const MAX_NANOS: i128 = i64::MAX as i128;

/// Seconds as tozd/dinit reads them (a Go integer literal: sign, `0x`/`0o`/`0b` or leading-`0`
/// octal, `_` between digits), or a decimal fraction (`0.5`). Zero or negative means "at once";
/// a value whose nanoseconds overflow int64 is invalid, not wrapped.
/// `:9090` (every IPv4 address), `0.0.0.0:9090`, `127.0.0.1:9090`, `[::]:9090`.
pub fn parse_listen(v: &str) -> Option<std::net::SocketAddr> {
    let v = v.trim();
    let full = match v.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => v.to_owned(),
    };
    full.parse().ok()
}

pub fn parse_seconds(v: &str) -> Option<Duration> {
    let (negative, body) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let nanos: i128 = if body.contains('.') {
        parse_decimal_nanos(body)?
    } else {
        parse_go_int(body)? * 1_000_000_000
    };
    if nanos > MAX_NANOS {
        return None;
    }
    if negative || nanos == 0 {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(nanos as u64))
}

/// `12.5`, `.5`, `5.`: plain decimal digits only, nanosecond precision (further digits ignored).
fn parse_decimal_nanos(body: &str) -> Option<i128> {
    let (int, frac) = body.split_once('.')?;
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i128 = 0;
    for b in int.bytes() {
        nanos = nanos.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if nanos > MAX_NANOS {
            return None;
        }
    }
    nanos *= 1_000_000_000;
    let mut scale = 100_000_000;
    for b in frac.bytes().take(9) {
        nanos += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(nanos)
}

/// Go's `strconv.ParseInt(s, 0, 64)` without the sign (the caller strips it).
fn parse_go_int(s: &str) -> Option<i128> {
    let lower = s.to_ascii_lowercase();
    let (base, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if !underscores_ok(&lower) {
        return None;
    }
    let mut value: i128 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(base)?;
        value = value * i128::from(base) + i128::from(d);
        if value > i128::from(i64::MAX) {
            return None;
        }
        any = true;
    }
    // A bare prefix (`0x`) has no digits.
    if !any {
        return None;
    }
    Some(value)
}

/// Go's `underscoreOK`: `_` only between digits or right after a base prefix.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    // '^' = start or a digit was last, '_' = underscore last, '!' = something else last.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1], b'x' | b'o' | b'b') {
        hex = b[1] == b'x';
        i = 2;
        saw = b'0'; // the prefix counts as a digit
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, Invalid> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(
            |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
            Path::new("/cwd"),
        )
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.dir, PathBuf::from("/etc/service"));
        assert_eq!(c.log_level, Level::Warn);
        assert!(c.json_stdout);
        assert_eq!(c.kill_timeout, Duration::from_secs(30));
        assert_eq!(c.policy, Policy::Terminate);
        assert_eq!(c.stop_timeout, None);
        assert_eq!(c.check_timeout, Duration::from_secs(5));
        assert_eq!(
            c.control_socket,
            ControlSocket::Path("/run/dinit/control.sock".into())
        );
    }

    #[test]
    fn empty_values_are_unset() {
        let c = cfg(&[
            ("DINIT_LOG_LEVEL", ""),
            ("DINIT_DIR", ""),
            ("DINIT_KILL_TIMEOUT", ""),
        ])
        .unwrap();
        assert_eq!(c, cfg(&[]).unwrap());
    }

    #[test]
    fn relative_dir_is_resolved() {
        assert_eq!(
            cfg(&[("DINIT_DIR", "svc")]).unwrap().dir,
            PathBuf::from("/cwd/svc")
        );
        assert_eq!(
            cfg(&[("DINIT_DIR", "/abs")]).unwrap().dir,
            PathBuf::from("/abs")
        );
    }

    #[test]
    fn log_levels() {
        for (v, l) in [
            ("none", Level::None),
            ("error", Level::Error),
            ("warn", Level::Warn),
            ("WARNING", Level::Warn),
            ("Info", Level::Info),
            ("debug", Level::Debug),
        ] {
            assert_eq!(cfg(&[("DINIT_LOG_LEVEL", v)]).unwrap().log_level, l, "{v}");
        }
        let e = cfg(&[("DINIT_LOG_LEVEL", "bogus")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid log level bogus: DINIT_LOG_LEVEL must be one of none, error, warn, info, debug"
        );
    }

    #[test]
    fn json_switch() {
        for v in ["0", "false", "NO", "off", "Off"] {
            assert!(
                !cfg(&[("DINIT_JSON_STDOUT", v)]).unwrap().json_stdout,
                "{v}"
            );
        }
        for v in ["1", "true", "YES", "on"] {
            assert!(cfg(&[("DINIT_JSON_STDOUT", v)]).unwrap().json_stdout, "{v}");
        }
        for v in ["2", "nope", " 0"] {
            let e = cfg(&[("DINIT_JSON_STDOUT", v)]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid JSON stdout {v}: DINIT_JSON_STDOUT")),
                "{e}"
            );
        }
    }

    #[test]
    fn policies() {
        assert_eq!(
            cfg(&[("DINIT_REPARENTING_POLICY", "adopt")])
                .unwrap()
                .policy,
            Policy::Adopt
        );
        assert_eq!(
            cfg(&[("DINIT_REPARENTING_POLICY", "ignore")])
                .unwrap()
                .policy,
            Policy::Ignore
        );
        let e = cfg(&[("DINIT_REPARENTING_POLICY", "Adopt")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid reparenting policy Adopt: DINIT_REPARENTING_POLICY"),
            "{e}"
        );
    }

    #[test]
    fn first_invalid_wins() {
        let e = cfg(&[
            ("DINIT_REPARENTING_POLICY", "x"),
            ("DINIT_KILL_TIMEOUT", "y"),
        ])
        .unwrap_err();
        assert!(e.to_string().starts_with("invalid kill timeout y"));
    }

    fn secs(v: &str) -> Option<f64> {
        parse_seconds(v).map(|d| d.as_secs_f64())
    }

    #[test]
    fn seconds_go_integer_forms() {
        assert_eq!(secs("30"), Some(30.0));
        assert_eq!(secs("+7"), Some(7.0));
        assert_eq!(secs("-5"), Some(0.0));
        assert_eq!(secs("0"), Some(0.0));
        assert_eq!(secs("010"), Some(8.0));
        assert_eq!(secs("0o10"), Some(8.0));
        assert_eq!(secs("0x1F"), Some(31.0));
        assert_eq!(secs("0b101"), Some(5.0));
        assert_eq!(secs("1_000"), Some(1000.0));
        assert_eq!(secs("0x_1f"), Some(31.0));
        assert_eq!(secs("0_7"), Some(7.0));
        for bad in [
            "", "abc", " 5", "5 ", "1e3", "_1", "1_", "1__0", "0x", "08", "0b2", "--1", "+", "0x_",
            "1.2.3", ".",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn seconds_fractions() {
        assert_eq!(secs("0.5"), Some(0.5));
        assert_eq!(secs(".25"), Some(0.25));
        assert_eq!(secs("2."), Some(2.0));
        assert_eq!(secs("-1.5"), Some(0.0));
        assert_eq!(
            parse_seconds("1.0000000019"),
            Some(Duration::from_nanos(1_000_000_001))
        );
        assert_eq!(secs("1.5e3"), None);
        assert_eq!(secs("0x1.5"), None);
    }

    #[test]
    fn seconds_overflow_is_invalid() {
        assert_eq!(
            parse_seconds("9223372036"),
            Some(Duration::from_secs(9_223_372_036))
        );
        assert_eq!(secs("9223372037"), None);
        assert_eq!(secs("99999999999999999999999"), None);
        assert_eq!(secs("9223372037.5"), None);
        assert_eq!(secs("0x7fffffffffffffff"), None);
    }

    #[test]
    fn http_listen() {
        let l = |v| cfg(&[("DINIT_HTTP_LISTEN", v)]).map(|c| c.http_listen);
        assert_eq!(l(":9090").unwrap(), Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(
            l("127.0.0.1:8080").unwrap(),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(l("[::]:9090").unwrap(), Some("[::]:9090".parse().unwrap()));
        assert_eq!(cfg(&[]).unwrap().http_listen, None);
        for bad in ["9090", "x:1", ":99999", "localhost:80"] {
            let e = l(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid HTTP listen address "), "{e}");
        }
    }

    #[test]
    fn main_exit_zero() {
        assert_eq!(
            cfg(&[("DINIT_MAIN_EXIT_ZERO", "143, 130")])
                .unwrap()
                .main_exit_zero,
            [143, 130]
        );
        assert!(cfg(&[]).unwrap().main_exit_zero.is_empty());
        for bad in ["256", "x", "1,,2", "-1", "+5"] {
            let e = cfg(&[("DINIT_MAIN_EXIT_ZERO", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("invalid main exit codes "), "{e}");
        }
    }

    #[test]
    fn stop_and_check_timeouts() {
        assert_eq!(
            cfg(&[("DINIT_STOP_TIMEOUT", "0")]).unwrap().stop_timeout,
            None
        );
        assert_eq!(
            cfg(&[("DINIT_STOP_TIMEOUT", "2.5")]).unwrap().stop_timeout,
            Some(Duration::from_millis(2500))
        );
        assert!(
            cfg(&[("DINIT_STOP_TIMEOUT", "x")])
                .unwrap_err()
                .to_string()
                .starts_with("invalid stop timeout x")
        );
        assert_eq!(
            cfg(&[("DINIT_CHECK_TIMEOUT", "1")]).unwrap().check_timeout,
            Duration::from_secs(1)
        );
        assert!(
            cfg(&[("DINIT_CHECK_TIMEOUT", "y")])
                .unwrap_err()
                .to_string()
                .starts_with("invalid check timeout y")
        );
    }

    #[test]
    fn control_socket_forms() {
        assert_eq!(control_socket(Some("none")), ControlSocket::Off);
        assert_eq!(
            control_socket(Some("@dinit")),
            ControlSocket::Abstract(b"dinit".to_vec())
        );
        assert_eq!(
            control_socket(Some("/tmp/x.sock")),
            ControlSocket::Path("/tmp/x.sock".into())
        );
    }
}
