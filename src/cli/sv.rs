//! runit's `sv [-v] [-w sec] command service ...` for the running dinit (contract §12), and the
//! runit status lines `dinit status` prints too (§11).
//!
//! Modelled on runit 2.1.2's `sv.c` (Debian's `runit` package), whose output was compared
//! line by line with this one. What it keeps: the option parsing (`getopt "w:vV"`), the command
//! table (most commands are matched by their first character only: `sv t web` is `term`,
//! `sv stat web` is `status`), the service lookup (a name under `$SVDIR`; a path when it starts
//! with `.` or `/` or ends with `/`), the lines (`run: web: (pid 12) 5s; run: log: (pid 13) 5s`,
//! `ok: …`, `timeout: …`, `kill: …`, `fail: …`, `warning: …`), which commands wait and for
//! what, and the exit code (failed services, at most 99; 100 for a usage error).
//!
//! Deliberate differences, because dinit is not runsv:
//! - Each request goes to dinit's control socket instead of `supervise/control`; a directory
//!   that exists but is no dinit service is "unknown" (`fail: … file does not exist`, the
//!   contract's line) rather than runit's `warning: …: unable to open supervise/ok`.
//! - `once` is `up`; `exit` and `shutdown` are `down` (dinit has no runsv to end).
//! - `try-restart` and `force-reload` (runit: TERM + CONT, runsv restarts) send dinit's
//!   `restart` to a running service: under dinit a TERMed service that ends stops the
//!   container. The plain signal commands (`term`, `kill`, …) stay signals, as the contract says.
//! - A signal to a service that is not running is skipped (runsv ignores it too; dinit's
//!   server would refuse it).
//! - A `check` script's run is bounded by what is left of the wait (at least 250 ms); runit
//!   waits for it forever. Its stdout goes to /dev/null (runit closes fd 1).
//! - The wait polls every 100 ms, not runit's 420 ms; `-w` also takes fractions (`-w 0.5`).
//! - With `SVDIR` unset, a name that is not a dinit service's directory under the default
//!   directory is looked up by service name (dinit's `DINIT_DIR` may be set for dinit only).
//! - The usage line is printed once, without runit's empty line after it.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::control::protocol::Request;
use crate::error::{ErrnoOf, errno_text};

use crate::control::protocol::{ServiceStatus, State, Status};

use super::check::{Checked, finish_checks, start_check};
use super::client::{Dinit, Failure, is_new_run};
use super::lines::{err, out, status_line, status_line_with_log};

const USAGE: &str = "usage: sv [-v] [-w sec] command service ...";
pub const USAGE_EXIT: u8 = 100;
const DEFAULT_WAIT: Duration = Duration::from_secs(7);
const POLL: Duration = Duration::from_millis(100);
/// A check script gets at least this long, even when the wait is (nearly) over.
const MIN_CHECK: Duration = Duration::from_millis(250);

// ---- the command line (pure) ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Invocation {
    verbose: bool,
    wait: Option<Duration>,
    action: OsString,
    services: Vec<OsString>,
}

/// runit's `getopt(argc, argv, "w:vV")`: options until the first non-option or `--`; `-w`
/// implies `-v`. The error is the line to print before the usage line (empty for none).
fn parse_args(args: &[OsString]) -> Result<Invocation, String> {
    let mut verbose = false;
    let mut wait = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let a = arg.as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        i += 1;
        let mut j = 1;
        while j < a.len() {
            match a[j] {
                b'v' => verbose = true,
                b'w' => {
                    let value = if j + 1 < a.len() {
                        &a[j + 1..]
                    } else if let Some(next) = args.get(i) {
                        i += 1;
                        next.as_bytes()
                    } else {
                        return Err("sv: option requires an argument -- w".into());
                    };
                    wait = Some(parse_wait(value));
                    verbose = true;
                    break;
                }
                b'V' => return Err(format!("dinit {}", env!("CARGO_PKG_VERSION"))),
                c => {
                    return Err(format!(
                        "sv: illegal option -- {}",
                        String::from_utf8_lossy(&[c])
                    ));
                }
            }
            j += 1;
        }
    }
    let action = args.get(i).ok_or_else(String::new)?.clone();
    let services = args[i + 1..].to_vec();
    if services.is_empty() {
        return Err(String::new());
    }
    Ok(Invocation {
        verbose,
        wait,
        action,
        services,
    })
}

/// Seconds: dinit's syntax (`5`, `0.5`), else what runit's `scan_ulong` makes of it (its
/// leading digits, none being 0): runit never rejects a wait time.
fn parse_wait(v: &[u8]) -> Duration {
    if let Some(d) = std::str::from_utf8(v)
        .ok()
        .and_then(crate::config::parse_seconds)
    {
        return d;
    }
    let digits = v
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
    Duration::from_secs(digits)
}

/// What a command sends to dinit for each service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Nothing,
    Up,
    Down,
    /// down then up; starts a service that is down.
    Restart,
    /// `restart`, only for a running service.
    TryRestart,
    /// Only to a service whose `run` is alive.
    Sig(Signal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Command {
    send: Ask,
    /// What the wait waits for, in runit's letters (see [`satisfied`]).
    acts: &'static str,
    /// Waits and reports even without `-v` (restart, check, the LSB names).
    always_wait: bool,
    /// The `force-` names: on timeout print `kill:` and send SIGKILL.
    kill: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Status,
    Act(Command),
}

const fn act(send: Ask, acts: &'static str, always_wait: bool, kill: bool) -> Action {
    Action::Act(Command {
        send,
        acts,
        always_wait,
        kill,
    })
}

/// runit's command table (`sv.c`, `main`): the first character decides, except for the
/// words spelled out; `None` is a usage error.
fn action(name: &[u8]) -> Option<Action> {
    use Ask::*;
    Some(match (name.first()?, name) {
        (b'x' | b'e', _) => act(Down, "x", false, false),
        (b'X' | b'E', _) => act(Down, "x", true, true),
        (b'D', _) => act(Down, "d", true, true),
        (b'T', _) => act(TryRestart, "tc", true, true),
        (b's', b"shutdown") => act(Down, "x", true, false),
        (b's', b"start") => act(Up, "u", true, false),
        (b's', b"stop") => act(Down, "d", true, false),
        (b's', _) => Action::Status,
        (b'r', b"restart") => act(Restart, "tcu", true, false),
        (b'r', b"reload") => act(Sig(Signal::SIGHUP), "h", true, false),
        (b'r', _) => return None,
        (b'f', b"force-reload") => act(TryRestart, "tc", true, true),
        (b'f', b"force-restart") => act(Restart, "tcu", true, true),
        (b'f', b"force-shutdown") => act(Down, "x", true, true),
        (b'f', b"force-stop") => act(Down, "d", true, true),
        (b't', b"try-restart") => act(TryRestart, "tc", true, false),
        (b'c', b"check") => act(Nothing, "C", true, false),
        // runit writes the first character to supervise/control.
        (b'u', _) => act(Up, "u", false, false),
        (b'o', _) => act(Up, "u", false, false),
        (b'd', _) => act(Down, "d", false, false),
        (b't', _) => act(Sig(Signal::SIGTERM), "t", false, false),
        (b'k', _) => act(Sig(Signal::SIGKILL), "k", false, false),
        (b'c', _) => act(Sig(Signal::SIGCONT), "c", false, false),
        (b'p', _) => act(Sig(Signal::SIGSTOP), "p", false, false),
        (b'h', _) => act(Sig(Signal::SIGHUP), "h", false, false),
        (b'a', _) => act(Sig(Signal::SIGALRM), "a", false, false),
        (b'i', _) => act(Sig(Signal::SIGINT), "i", false, false),
        (b'q', _) => act(Sig(Signal::SIGQUIT), "q", false, false),
        (b'1', _) => act(Sig(Signal::SIGUSR1), "1", false, false),
        (b'2', _) => act(Sig(Signal::SIGUSR2), "2", false, false),
        _ => return None,
    })
}

/// Whether `s` is where `acts` wants it (runit's `check()`, letter by letter). `before` is the
/// service as it was before the command; `check` runs its `check` script.
fn satisfied(
    acts: &str,
    s: &ServiceStatus,
    before: &ServiceStatus,
    check: &mut dyn FnMut(&ServiceStatus) -> bool,
) -> bool {
    let running = s.state == State::Running;
    // `-w start` and the restarts wait for ready, not just running (contract §15).
    let up = running && s.ready;
    acts.chars().all(|a| match a {
        'u' => up && check(s),
        'd' | 'x' => s.state == State::Down,
        'C' => !running || check(s),
        // Restarted since the command (another pid or a later start), or down for good.
        't' | 'k' => {
            (s.state == State::Down && s.down_on_purpose())
                || (up && is_new_run(s, before) && check(s))
        }
        // Signals with nothing to wait for (dinit does not report `paused`).
        _ => true,
    })
}

// ---- services -------------------------------------------------------------------------------

/// runit looks a service up under `$SVDIR` unless it starts with `.` or `/` or ends with `/`.
fn is_plain(given: &[u8]) -> bool {
    !given.is_empty() && given[0] != b'/' && given[0] != b'.' && given.last() != Some(&b'/')
}

/// The service directory `given` names, with symlinks followed.
fn locate(given: &OsStr, svdir: &Path) -> Result<PathBuf, Errno> {
    let path = if is_plain(given.as_bytes()) {
        svdir.join(given)
    } else {
        PathBuf::from(given)
    };
    let dir = std::fs::canonicalize(&path).map_err(|e| ErrnoOf::from(&e).0)?;
    if !dir.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok(dir)
}

/// djb's `error_str` texts, which runit prints, for the errors `chdir` gives most.
fn runit_error(e: Errno) -> String {
    match e {
        Errno::ENOENT => "file does not exist".into(),
        Errno::EACCES => "access denied".into(),
        Errno::ENOTDIR => "not a directory".into(),
        e => errno_text(e),
    }
}

/// Which of dinit's services `given` is, or the `fail:` text.
fn find(
    given: &OsStr,
    svdir: &Path,
    by_name: bool,
    services: &[ServiceStatus],
    dirs: &[Option<PathBuf>],
) -> Result<usize, String> {
    let located = locate(given, svdir);
    if let Ok(dir) = &located
        && let Some(i) = dirs.iter().position(|d| d.as_ref() == Some(dir))
    {
        return Ok(i);
    }
    if by_name
        && is_plain(given.as_bytes())
        && let Some(i) = services
            .iter()
            .position(|s| s.name.as_bytes() == given.as_bytes())
    {
        return Ok(i);
    }
    // A directory that no dinit service has is as good as none (the contract's line).
    Err(chdir_failed(located.err().unwrap_or(Errno::ENOENT)))
}

/// runit's line when `chdir` to the service directory fails.
fn chdir_failed(e: Errno) -> String {
    format!("unable to change to service directory: {}", runit_error(e))
}

// ---- running it -------------------------------------------------------------------------------

/// `sv`'s output and exit code: every failed service counts.
struct Report {
    failed: u32,
}

impl Report {
    fn line(&self, line: &str) {
        out(line);
    }
    fn fail(&mut self, label: &str, what: &str) {
        self.failed += 1;
        out(&format!("fail: {label}: {what}"));
    }
    fn warn(&mut self, label: &str, what: &str) {
        self.failed += 1;
        out(&format!("warning: {label}: {what}"));
    }
    /// A failed request: unreachable is runit's "unable to open supervise/ok" warning.
    fn failure(&mut self, label: &str, f: &Failure) {
        match f {
            Failure::Unreachable { .. } => self.warn(label, &f.to_string()),
            Failure::Refused(_) => self.fail(label, &f.to_string()),
        }
    }
    fn code(&self) -> u8 {
        self.failed.min(99) as u8
    }
}

/// A service the command waits for.
struct Target {
    label: String,
    before: ServiceStatus,
}

pub fn main(args: &[OsString]) -> u8 {
    let inv = match parse_args(args) {
        Ok(inv) => inv,
        Err(line) => return usage(&line),
    };
    let Some(action) = action(inv.action.as_bytes()) else {
        return usage("");
    };
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let explicit_svdir = env("SVDIR");
    // Without SVDIR, a plain name may also be a service's name (see the module doc).
    let by_name = explicit_svdir.is_none();
    let svdir = PathBuf::from(
        explicit_svdir
            .or_else(|| env("DINIT_DIR"))
            .unwrap_or_else(|| crate::config::DEFAULT_DIR.into()),
    );
    let wait = inv
        .wait
        .or_else(|| env("SVWAIT").map(|v| parse_wait(v.as_bytes())))
        .unwrap_or(DEFAULT_WAIT);
    let dinit = Dinit::from_env();
    let start = Instant::now();
    let status = dinit.status(&[]);
    let dirs: Vec<Option<PathBuf>> = match &status {
        Ok(st) => st
            .services
            .iter()
            .map(|s| std::fs::canonicalize(&s.dir).ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut report = Report { failed: 0 };
    let mut targets = Vec::new();
    for given in &inv.services {
        let label = given.to_string_lossy().into_owned();
        let found = match &status {
            Ok(st) => find(given, &svdir, by_name, &st.services, &dirs).map(|i| &st.services[i]),
            Err(f) => match locate(given, &svdir) {
                // The directory is there, dinit is not: runit's "unable to open supervise/ok".
                Ok(_) => {
                    report.failure(&label, f);
                    continue;
                }
                Err(e) => Err(chdir_failed(e)),
            },
        };
        let s = match found {
            Ok(s) => s,
            Err(why) => {
                report.fail(&label, &why);
                continue;
            }
        };
        match action {
            Action::Status => report.line(&status_line_with_log(&label, s)),
            Action::Act(cmd) => {
                if let Err(f) = send(&dinit, cmd.send, s) {
                    report.failure(&label, &f);
                } else if cmd.always_wait || inv.verbose {
                    targets.push(Target {
                        label,
                        before: s.clone(),
                    });
                }
            }
        }
    }
    if let Action::Act(cmd) = action {
        wait_for(&dinit, cmd, targets, start, wait, &mut report);
    }
    report.code()
}

fn usage(line: &str) -> u8 {
    if !line.is_empty() {
        err(line);
    }
    err(USAGE);
    USAGE_EXIT
}

fn send(dinit: &Dinit, what: Ask, s: &ServiceStatus) -> Result<(), Failure> {
    let services = vec![s.name.clone()];
    let alive = matches!(s.state, State::Running | State::Stopping);
    let req = match what {
        Ask::Nothing => return Ok(()),
        Ask::Up => Request::Up { services },
        Ask::Down => Request::Down { services },
        Ask::Restart => Request::Restart { services },
        Ask::TryRestart if s.state == State::Running => Request::Restart { services },
        Ask::TryRestart => return Ok(()),
        Ask::Sig(sig) if alive => Request::Signal {
            signal: sig as i32,
            services,
        },
        Ask::Sig(_) => return Ok(()),
    };
    dinit.request(&req).map(|_| ())
}

/// runit's wait loop: every round, each service still waited for is `ok:` once `satisfied`,
/// or `timeout:` (`kill:` and SIGKILL for the `force-` names) once the wait is over.
fn wait_for(
    dinit: &Dinit,
    cmd: Command,
    mut targets: Vec<Target>,
    start: Instant,
    wait: Duration,
    report: &mut Report,
) {
    while !targets.is_empty() {
        let elapsed = start.elapsed();
        let names: Vec<String> = targets.iter().map(|t| t.before.name.clone()).collect();
        let st = match dinit.status(&names) {
            Ok(st) => st,
            Err(f) => {
                for t in &targets {
                    report.failure(&t.label, &f);
                }
                return;
            }
        };
        let check_until = (start + wait).max(Instant::now() + MIN_CHECK);
        targets.retain(|t| {
            let Some(s) = find_named(&st, &t.before.name) else {
                report.fail(&t.label, &chdir_failed(Errno::ENOENT));
                return false;
            };
            let mut untrusted = None;
            let mut check = |s: &ServiceStatus| {
                let run = start_check(Path::new(&s.dir), s.pid, Stdio::null());
                finish_checks(vec![run], check_until)
                    .iter()
                    .all(|c| match c {
                        Checked::Untrusted(p) => {
                            untrusted = Some(p.clone());
                            false
                        }
                        c => c.passed(),
                    })
            };
            if satisfied(cmd.acts, s, &t.before, &mut check) {
                report.line(&format!("ok: {}", status_line(&t.label, s)));
                return false;
            }
            // A check the client will not run cannot pass by waiting.
            if let Some(p) = untrusted {
                report.fail(&t.label, &format!("check not trusted: {}", p.display()));
                return false;
            }
            if elapsed <= wait {
                return true;
            }
            let word = if cmd.kill { "kill" } else { "timeout" };
            report.failed += 1;
            report.line(&format!("{word}: {}", status_line(&t.label, s)));
            if cmd.kill {
                let _ = send(dinit, Ask::Sig(Signal::SIGKILL), s);
            }
            false
        });
        if !targets.is_empty() {
            std::thread::sleep(POLL);
        }
    }
}

fn find_named<'a>(st: &'a Status, name: &str) -> Option<&'a ServiceStatus> {
    st.services.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(state: State, pid: Option<u32>, since_s: f64, down_file: bool) -> ServiceStatus {
        crate::cli::lines::tests::svc(state, pid, since_s, down_file)
    }

    fn os(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn options() {
        let inv = parse_args(&os(&["status", "a", "b"])).unwrap();
        assert_eq!(
            (
                inv.verbose,
                inv.wait,
                inv.action.as_os_str(),
                inv.services.len()
            ),
            (false, None, OsStr::new("status"), 2)
        );
        let inv = parse_args(&os(&["-v", "up", "a"])).unwrap();
        assert!(inv.verbose && inv.wait.is_none());
        for args in [
            &["-w", "3", "up", "a"][..],
            &["-w3", "up", "a"],
            &["-vw", "3", "up", "a"],
            &["-v", "-w3", "--", "up", "a"],
        ] {
            let inv = parse_args(&os(args)).unwrap();
            assert_eq!(
                (inv.verbose, inv.wait),
                (true, Some(Duration::from_secs(3))),
                "{args:?}"
            );
        }
        assert_eq!(
            parse_args(&os(&["-w", "0.5", "up", "a"])).unwrap().wait,
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_args(&os(&["-w", "abc", "up", "a"])).unwrap().wait,
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_args(&os(&["-w", "12x", "up", "a"])).unwrap().wait,
            Some(Duration::from_secs(12))
        );
        // Options end at the first non-option: `-v` here is a service.
        assert_eq!(
            parse_args(&os(&["status", "a", "-v"])).unwrap().services,
            os(&["a", "-v"])
        );
        assert_eq!(
            parse_args(&os(&["-", "a"])).unwrap().action,
            OsString::from("-")
        );
        assert_eq!(parse_args(&os(&[])), Err(String::new()));
        assert_eq!(parse_args(&os(&["status"])), Err(String::new()));
        assert_eq!(
            parse_args(&os(&["-w"])),
            Err("sv: option requires an argument -- w".into())
        );
        assert_eq!(
            parse_args(&os(&["-x", "status", "a"])),
            Err("sv: illegal option -- x".into())
        );
        // Not UTF-8: no panic.
        use std::os::unix::ffi::OsStringExt;
        let odd = vec![
            OsString::from("status"),
            OsString::from_vec(vec![0xff, b'a']),
        ];
        assert!(parse_args(&odd).is_ok());
        assert_eq!(
            parse_args(&[OsString::from_vec(vec![b'-', 0xff])]),
            Err("sv: illegal option -- \u{fffd}".into())
        );
    }

    #[test]
    fn commands() {
        use Ask::*;
        let a = |n: &str| action(n.as_bytes());
        let cmd = |n: &str| match a(n) {
            Some(Action::Act(c)) => c,
            other => panic!("{n}: {other:?}"),
        };
        for n in ["status", "s", "stat", "sleep"] {
            assert_eq!(a(n), Some(Action::Status), "{n}");
        }
        assert_eq!(
            cmd("up"),
            Command {
                send: Up,
                acts: "u",
                always_wait: false,
                kill: false
            }
        );
        assert_eq!(cmd("u"), cmd("up"));
        assert_eq!(cmd("once").send, Up);
        assert_eq!(
            cmd("down"),
            Command {
                send: Down,
                acts: "d",
                always_wait: false,
                kill: false
            }
        );
        assert_eq!(
            cmd("exit"),
            Command {
                send: Down,
                acts: "x",
                always_wait: false,
                kill: false
            }
        );
        assert_eq!(
            cmd("restart"),
            Command {
                send: Restart,
                acts: "tcu",
                always_wait: true,
                kill: false
            }
        );
        assert_eq!(
            cmd("check"),
            Command {
                send: Nothing,
                acts: "C",
                always_wait: true,
                kill: false
            }
        );
        assert_eq!(
            cmd("start"),
            Command {
                send: Up,
                acts: "u",
                always_wait: true,
                kill: false
            }
        );
        assert_eq!(
            cmd("stop"),
            Command {
                send: Down,
                acts: "d",
                always_wait: true,
                kill: false
            }
        );
        assert_eq!(
            cmd("shutdown"),
            Command {
                send: Down,
                acts: "x",
                always_wait: true,
                kill: false
            }
        );
        assert_eq!(
            cmd("reload"),
            Command {
                send: Sig(Signal::SIGHUP),
                acts: "h",
                always_wait: true,
                kill: false
            }
        );
        assert_eq!(
            cmd("force-stop"),
            Command {
                send: Down,
                acts: "d",
                always_wait: true,
                kill: true
            }
        );
        assert_eq!(
            cmd("force-shutdown"),
            Command {
                send: Down,
                acts: "x",
                always_wait: true,
                kill: true
            }
        );
        assert_eq!(
            cmd("force-restart"),
            Command {
                send: Restart,
                acts: "tcu",
                always_wait: true,
                kill: true
            }
        );
        assert_eq!(
            cmd("force-reload"),
            Command {
                send: TryRestart,
                acts: "tc",
                always_wait: true,
                kill: true
            }
        );
        assert_eq!(
            cmd("try-restart"),
            Command {
                send: TryRestart,
                acts: "tc",
                always_wait: true,
                kill: false
            }
        );
        for (n, sig) in [
            ("pause", Signal::SIGSTOP),
            ("cont", Signal::SIGCONT),
            ("hup", Signal::SIGHUP),
            ("alarm", Signal::SIGALRM),
            ("interrupt", Signal::SIGINT),
            ("quit", Signal::SIGQUIT),
            ("1", Signal::SIGUSR1),
            ("2", Signal::SIGUSR2),
            ("term", Signal::SIGTERM),
            ("kill", Signal::SIGKILL),
            // first character only, as runit
            ("t", Signal::SIGTERM),
            ("tfoo", Signal::SIGTERM),
            ("cfoo", Signal::SIGCONT),
            ("hangup", Signal::SIGHUP),
        ] {
            let c = cmd(n);
            assert_eq!((c.send, c.always_wait), (Sig(sig), false), "{n}");
        }
        for n in [
            "", "bogus", "rbogus", "force-x", "f", "r", "zap", "Up", "-v", "3",
        ] {
            assert_eq!(a(n), None, "{n}");
        }
    }

    #[test]
    fn waits() {
        let mut pass = |_: &ServiceStatus| true;
        let mut fail = |_: &ServiceStatus| false;
        let before = svc(State::Running, Some(12), 5.0, false);
        let running = svc(State::Running, Some(12), 5.0, false);
        let down = svc(State::Down, None, 0.0, false);
        let mut down_purpose = down.clone();
        down_purpose.down_reason = Some(crate::control::protocol::DownReason::Requested);
        let mut restarted = svc(State::Running, Some(20), 0.1, false);
        restarted.since = "2026-01-01T00:00:05.000Z".into();
        assert!(satisfied("u", &running, &before, &mut pass));
        assert!(!satisfied("u", &running, &before, &mut fail));
        assert!(!satisfied("u", &down, &before, &mut pass));
        assert!(satisfied("d", &down, &before, &mut fail));
        assert!(satisfied("x", &down, &before, &mut fail));
        assert!(!satisfied(
            "d",
            &svc(State::Finishing, Some(3), 0.0, false),
            &before,
            &mut pass
        ));
        assert!(!satisfied(
            "d",
            &svc(State::Stopping, Some(12), 0.0, false),
            &before,
            &mut pass
        ));
        assert!(satisfied("C", &down, &before, &mut fail));
        assert!(!satisfied("C", &running, &before, &mut fail));
        assert!(!satisfied("tcu", &running, &before, &mut pass));
        assert!(satisfied("tcu", &restarted, &before, &mut pass));
        assert!(!satisfied("tcu", &restarted, &before, &mut fail));
        assert!(!satisfied("tcu", &down_purpose, &before, &mut pass));
        assert!(satisfied("tc", &down_purpose, &before, &mut pass));
        assert!(satisfied("h", &running, &before, &mut fail));
        let mut unready = running.clone();
        unready.ready = false;
        assert!(
            !satisfied("u", &unready, &before, &mut pass),
            "running but not ready"
        );
    }

    #[test]
    fn plain_names() {
        for (g, plain) in [
            ("web", true),
            ("a/b", true),
            ("./web", false),
            ("/s/web", false),
            ("web/", false),
            ("", false),
            (".web", false),
        ] {
            assert_eq!(is_plain(g.as_bytes()), plain, "{g}");
        }
    }

    #[test]
    fn lookup() {
        let root = std::env::temp_dir().join(format!("dinit-sv-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("web")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        std::os::unix::fs::symlink(root.join("web"), root.join("link")).unwrap();
        let mut web = svc(State::Running, Some(1), 0.0, false);
        web.dir = root.join("web").display().to_string();
        let mut db = svc(State::Running, Some(2), 0.0, false);
        db.name = "db".into();
        db.dir = "/nonexistent/db".into();
        let services = vec![db, web];
        let dirs: Vec<_> = services
            .iter()
            .map(|s| std::fs::canonicalize(&s.dir).ok())
            .collect();
        let f = |g: &str, by_name: bool| find(OsStr::new(g), &root, by_name, &services, &dirs);
        assert_eq!(f("web", false), Ok(1));
        assert_eq!(f("link", false), Ok(1));
        assert_eq!(f(root.join("web/").to_str().unwrap(), false), Ok(1));
        let nodir = Err("unable to change to service directory: file does not exist".to_owned());
        assert_eq!(f("nope", false), nodir);
        assert_eq!(f("other", false), nodir);
        assert_eq!(f("db", false), nodir);
        assert_eq!(f("db", true), Ok(0));
        assert_eq!(f("./db", true), nodir);
        assert_eq!(
            f("file", false),
            Err("unable to change to service directory: not a directory".into())
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
