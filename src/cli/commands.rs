//! `dinit status|check|up|down|restart|signal|shutdown` (contract §11): the command line, what
//! each command asks the running dinit, what it prints and its exit code.
//!
//! Output: `status` and `check` results on stdout; errors, usage and `-w` timeouts on stderr.
//! Exit codes: 0 done; 1 unknown service, refused or failed request, wait timed out, dinit
//! unreachable; 2 usage error.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::config::{self, Config};
use crate::control::protocol::{self, Request, ServiceStatus, State};

use super::check::{CheckRun, Checked, finish_checks, start_check};
use super::client::{Dinit, Failure, is_new_run};
use super::lines::{err, out, status_line_with_log};

/// The first arguments that make dinit a client (contract §1).
pub const COMMANDS: [&str; 7] = [
    "status", "check", "up", "down", "restart", "signal", "shutdown",
];

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
/// How often `-w` asks for the status again.
const POLL: Duration = Duration::from_millis(50);

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
const USAGE_CHECK: &str = "dinit check [--ready] [SERVICE...]";
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
    let req = Request::Status { services: names };
    if !flags.is_empty() {
        // As the server sent it (`ok` removed): fields a newer server adds are kept.
        let m = dinit.request(&req)?;
        out(&serde_json::Value::Object(m).to_string());
        return Ok(OK);
    }
    let st = dinit.status_as(&req)?;
    for s in &st.services {
        out(&status_line_with_log(&s.name, s));
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
fn check_reason(s: &ServiceStatus) -> Option<String> {
    match s.state {
        State::Running => None,
        _ if s.down_on_purpose() => None,
        _ => Some(format!("{}: not running", s.name)),
    }
}

fn check(dinit: &Dinit, args: &[String]) -> Result<u8, Exit> {
    let (flags, names) = split_args(args, &["--ready"], &[], USAGE_CHECK)?;
    let want_ready = !flags.is_empty();
    let (timeout, timeout_text) = check_timeout().map_err(Exit::Message)?;
    let st = dinit.status_as(&Request::Check { services: names })?;
    if st.dinit.state == protocol::DinitState::Stopping {
        // Every service is on its way down: one reason says it all.
        out("dinit: stopping");
        return Ok(FAILED);
    }
    let deadline = Instant::now() + timeout;
    // All scripts run at once: a health check must not take (services × timeout).
    let mut runs = Vec::new();
    let mut lines: Vec<Option<String>> = Vec::new();
    for s in &st.services {
        // `--ready`: a running service must also be ready (contract §15).
        let reason = check_reason(s).or_else(|| {
            (want_ready && s.state == State::Running && !s.ready)
                .then(|| format!("{}: not ready", s.name))
        });
        if reason.is_none() && s.state == State::Running {
            runs.push(start_check(Path::new(&s.dir), s.pid, Stdio::inherit()));
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
        Checked::Untrusted(p) => format!("{name}: check not trusted: {}", p.display()),
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
/// Whether `-w` is done waiting for `s` after `cmd`: down, or running and ready (contract
/// §15: ready once executed for a service without `notification-fd` or `check`).
fn arrived(cmd: &str, s: &ServiceStatus, before: Option<&ServiceStatus>) -> bool {
    let up = s.state == State::Running && s.ready;
    match cmd {
        "down" => s.state == State::Down,
        "up" => up,
        _ => up && before.is_none_or(|b| is_new_run(s, b)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn svc(v: Value) -> ServiceStatus {
        ServiceStatus::from_value(&v).unwrap()
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
            json!({"name": "a", "state": "running", "pid": 3, "since": "2026-01-01T00:00:00.001Z", "ready": true}),
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
        // Running is not enough for `-w`: ready (contract §15).
        let unready = svc(json!({"name": "a", "state": "running", "pid": 5, "ready": false}));
        assert!(!arrived("up", &unready, None));
        assert!(!arrived("restart", &unready, Some(&a)));
        assert!(arrived("up", &later, None));
    }

    /// A one-connection fake server: checks the request line, answers `response` (no newline:
    /// the connection is closed without one).
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
