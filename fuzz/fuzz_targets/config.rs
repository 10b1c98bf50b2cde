//! `Config::from_lookup` and `parse_seconds` against models.
//!
//! Input: segments separated by a 0 byte, each lossily decoded: the values of `DINIT_DIR`,
//! `DINIT_LOG_LEVEL`, `DINIT_JSON_STDOUT`, `DINIT_KILL_TIMEOUT`, `DINIT_STOP_TIMEOUT`,
//! `DINIT_REPARENTING_POLICY`, `DINIT_CHECK_TIMEOUT`, `DINIT_CONTROL_SOCKET`, then the working
//! directory. A missing segment is an unset variable.
//!
//! Checked: nothing panics; `parse_seconds` of every segment equals the model (Go's
//! `strconv.ParseInt(s, 0, 64)` for integers, written from Go's source, and plain decimals with
//! nanosecond precision; negative or zero means zero; more than int64 nanoseconds is invalid);
//! `from_lookup` gives exactly the model's `Config`, or the model's first invalid variable, named
//! with its value in the error line.
#![no_main]

use std::path::{Path, PathBuf};
use std::time::Duration;

use dinit::config::{Config, ControlSocket, Policy, parse_seconds};
use dinit::log::Level;
use libfuzzer_sys::fuzz_target;

const VARS: [&str; 11] = [
    "DINIT_DIR",
    "DINIT_LOG_LEVEL",
    "DINIT_JSON_STDOUT",
    "DINIT_KILL_TIMEOUT",
    "DINIT_STOP_TIMEOUT",
    "DINIT_REPARENTING_POLICY",
    "DINIT_CHECK_TIMEOUT",
    "DINIT_CONTROL_SOCKET",
    "DINIT_CHECK_INTERVAL",
    "DINIT_MAIN_EXIT_ZERO",
    "DINIT_HTTP_LISTEN",
];

fuzz_target!(|input: &[u8]| {
    let segs: Vec<String> = if input.is_empty() {
        Vec::new()
    } else {
        input
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    for s in &segs {
        let got = parse_seconds(s);
        let want = model_seconds(s);
        assert_eq!(got, want, "parse_seconds({s:?})");
    }

    let value = |var: &str| {
        VARS.iter()
            .position(|v| *v == var)
            .and_then(|i| segs.get(i))
            .cloned()
    };
    let cwd = PathBuf::from(segs.get(VARS.len()).cloned().unwrap_or_else(|| "/".into()));
    let got = Config::from_lookup(value, &cwd);
    match (got, model_config(&value, &cwd)) {
        (Ok(g), Ok(w)) => assert_eq!(g, w),
        (Err(g), Err((what, var, v))) => {
            let line = g.to_string();
            // The value as the one-line message shows it: control bytes escaped.
            let v = dinit::log::escaped(v.as_bytes());
            let want = format!("invalid {what} {v}: {var} must be ");
            assert!(line.starts_with(&want), "error {line:?}, want {want:?}…");
        }
        (g, w) => panic!("from_lookup {g:?}, model {w:?}"),
    }
});

type Invalid = (&'static str, &'static str, String);

fn model_config(value: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Result<Config, Invalid> {
    let get = |var: &str| value(var).filter(|v| !v.is_empty());
    let bad = |what, var, v: &str| (what, var, v.to_owned());
    let log_level = match get("DINIT_LOG_LEVEL") {
        None => Level::Warn,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "none" => Level::None,
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return Err(bad("log level", "DINIT_LOG_LEVEL", &v)),
        },
    };
    let kill_timeout = match get("DINIT_KILL_TIMEOUT") {
        None => Duration::from_secs(30),
        Some(v) => {
            model_seconds(&v).ok_or_else(|| bad("kill timeout", "DINIT_KILL_TIMEOUT", &v))?
        }
    };
    let policy = match get("DINIT_REPARENTING_POLICY") {
        None => Policy::Terminate,
        Some(v) => match v.as_str() {
            "terminate" => Policy::Terminate,
            "adopt" => Policy::Adopt,
            "ignore" => Policy::Ignore,
            _ => return Err(bad("reparenting policy", "DINIT_REPARENTING_POLICY", &v)),
        },
    };
    let json_stdout = match get("DINIT_JSON_STDOUT") {
        None => true,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(bad("JSON stdout", "DINIT_JSON_STDOUT", &v)),
        },
    };
    let stop_timeout = match get("DINIT_STOP_TIMEOUT") {
        None => None,
        Some(v) => {
            let d =
                model_seconds(&v).ok_or_else(|| bad("stop timeout", "DINIT_STOP_TIMEOUT", &v))?;
            (!d.is_zero()).then_some(d)
        }
    };
    let check_timeout = match get("DINIT_CHECK_TIMEOUT") {
        None => Duration::from_secs(5),
        Some(v) => {
            model_seconds(&v).ok_or_else(|| bad("check timeout", "DINIT_CHECK_TIMEOUT", &v))?
        }
    };
    let check_interval = match get("DINIT_CHECK_INTERVAL") {
        None => Some(Duration::from_secs(5)),
        Some(v) => {
            let d = model_seconds(&v)
                .ok_or_else(|| bad("check interval", "DINIT_CHECK_INTERVAL", &v))?;
            (!d.is_zero()).then_some(d)
        }
    };
    let main_exit_zero = match get("DINIT_MAIN_EXIT_ZERO") {
        None => Vec::new(),
        Some(v) => {
            let mut codes = Vec::new();
            for c in v.split(',') {
                let c = c.trim();
                let ok = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
                match c.parse::<u64>() {
                    Ok(n) if ok && n <= 255 => codes.push(n as u8),
                    _ => return Err(bad("main exit codes", "DINIT_MAIN_EXIT_ZERO", &v)),
                }
            }
            codes
        }
    };
    let http_listen = match get("DINIT_HTTP_LISTEN") {
        None => None,
        Some(v) => {
            let t = v.trim();
            let full = match t.strip_prefix(':') {
                Some(port) => format!("0.0.0.0:{port}"),
                None => t.to_owned(),
            };
            match full.parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => return Err(bad("HTTP listen address", "DINIT_HTTP_LISTEN", &v)),
            }
        }
    };
    let control_socket = match get("DINIT_CONTROL_SOCKET") {
        None => ControlSocket::Path("/run/dinit/control.sock".into()),
        Some(v) if v == "none" => ControlSocket::Off,
        Some(v) if v.starts_with('@') => ControlSocket::Abstract(v.as_bytes()[1..].to_vec()),
        Some(v) => ControlSocket::Path(v.into()),
    };
    let dir = cwd.join(get("DINIT_DIR").unwrap_or_else(|| "/etc/service".into()));
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

const MAX_NANOS: u128 = i64::MAX as u128;

/// Seconds: an optional sign, then a Go integer literal or a plain decimal number.
fn model_seconds(s: &str) -> Option<Duration> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let nanos: u128 = if body.contains('.') {
        let (int, frac) = body.split_once('.')?;
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Saturating: anything past int64 nanoseconds is invalid anyway.
        let mut secs: u128 = 0;
        for b in int.bytes() {
            secs = (secs * 10 + u128::from(b - b'0')).min(u128::from(u64::MAX));
        }
        let mut frac9 = frac.bytes().take(9).collect::<Vec<_>>();
        frac9.resize(9, b'0');
        let frac_nanos: u128 = std::str::from_utf8(&frac9).unwrap().parse().unwrap();
        secs * 1_000_000_000 + frac_nanos
    } else {
        u128::from(go_parse_uint(body)?) * 1_000_000_000
    };
    if nanos > MAX_NANOS {
        return None;
    }
    if negative || nanos == 0 {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(nanos as u64))
}

/// Go's `strconv.ParseUint(s, 0, 64)` (what `ParseInt` calls after taking the sign), ported
/// from Go's `strconv/atoi.go`; any error is `None`.
fn go_parse_uint(s0: &str) -> Option<u64> {
    let lower = |c: u8| c | 0x20;
    let b = s0.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (base, mut s): (u64, &[u8]) = (10, b);
    let mut base = base;
    if b[0] == b'0' {
        if b.len() >= 3 && lower(b[1]) == b'b' {
            base = 2;
            s = &b[2..];
        } else if b.len() >= 3 && lower(b[1]) == b'o' {
            base = 8;
            s = &b[2..];
        } else if b.len() >= 3 && lower(b[1]) == b'x' {
            base = 16;
            s = &b[2..];
        } else {
            base = 8;
            s = &b[1..];
        }
    }
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in s {
        let d = if c == b'_' {
            underscores = true;
            continue;
        } else if c.is_ascii_digit() {
            c - b'0'
        } else if lower(c).is_ascii_lowercase() {
            lower(c) - b'a' + 10
        } else {
            return None;
        };
        if u64::from(d) >= base {
            return None;
        }
        n = n.checked_mul(base)?.checked_add(u64::from(d))?;
    }
    if underscores && !go_underscore_ok(s0) {
        return None;
    }
    Some(n)
}

/// Go's `underscoreOK` (the sign is already gone).
fn go_underscore_ok(s: &str) -> bool {
    let lower = |c: u8| c | 0x20;
    let s = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(lower(s[1]), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = lower(s[1]) == b'x';
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || hex && (b'a'..=b'f').contains(&lower(c)) {
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
