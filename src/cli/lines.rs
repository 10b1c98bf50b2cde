//! What the client prints: runit's status lines (`run: web: (pid 12) 5s`), which `dinit
//! status` and `sv status` share, and the two writers that never panic on a closed stream.

use std::io::{self, Write};

use crate::control::protocol::{LogState, ServiceStatus, State, Want};

/// Whole seconds, as runit prints them (it subtracts whole-second timestamps).
fn secs(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        s as u64
    } else {
        0
    }
}

/// The service's part of runit's status line, naming it `label`:
/// `run: web: (pid 12) 5s`, `down: web: 5s, normally up`, `finish: web: (pid 14) 0s`.
///
/// dinit's states onto runsv's: `running` is `run`; `stopping` (its terminate script or
/// SIGTERM has gone out, `run` still alive) is what runsv shows after `sv down` until the
/// process ends: `run: …, want down, got TERM` (a restart's first half: `run: …, got TERM`);
/// `finishing` is `finish`;
/// `down` is `down`. runit's `, paused` and `, want up` have no dinit counterpart.
pub fn status_line(label: &str, s: &ServiceStatus) -> String {
    let (word, pid) = match s.state {
        State::Running | State::Stopping => ("run", Some(s.pid.unwrap_or(0))),
        State::Finishing => ("finish", Some(s.pid.unwrap_or(0))),
        State::Down => ("down", None),
    };
    let mut line = format!("{word}: {label}: ");
    if let Some(pid) = pid {
        line.push_str(&format!("(pid {pid}) "));
    }
    line.push_str(&format!("{}s", secs(s.since_s)));
    match pid {
        Some(_) if s.down_file => line.push_str(", normally down"),
        None if !s.down_file => line.push_str(", normally up"),
        _ => {}
    }
    if s.state == State::Stopping {
        // A restart's first half wants the service up again: runsv then shows only `got TERM`.
        line.push_str(if s.want == Want::Down {
            ", want down, got TERM"
        } else {
            ", got TERM"
        });
    }
    line
}

/// The whole line of `sv status` and `dinit status`: the service, then its logger if it has
/// one: `; run: log: (pid 13) 5s` or `; down: log: 5s`. (runit would add `, normally up` to a
/// down logger, having looked for `log/down`; dinit has no such file, and the contract's line
/// ends at the seconds.)
pub fn status_line_with_log(label: &str, s: &ServiceStatus) -> String {
    let mut line = status_line(label, s);
    if let Some(log) = &s.log {
        let secs = secs(log.since_s);
        match (log.state == LogState::Running, log.pid) {
            (true, pid) => {
                line.push_str(&format!("; run: log: (pid {}) {secs}s", pid.unwrap_or(0)))
            }
            (false, _) => line.push_str(&format!("; down: log: {secs}s")),
        }
    }
    line
}

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

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::control::protocol::{LogStatus, Streams};

    /// A service in `state`, named `web`, wanted down (as `sv down` leaves it).
    pub fn svc(state: State, pid: Option<u32>, since_s: f64, down_file: bool) -> ServiceStatus {
        ServiceStatus {
            name: "web".into(),
            dir: "/s/web".into(),
            state,
            pid,
            since: "2026-01-01T00:00:00.000Z".into(),
            since_s,
            down_file,
            down_reason: None,
            want: Want::Down,
            exit: None,
            log: None,
            lines: Streams::default(),
            bytes: Streams::default(),
            ready: state == State::Running,
            ready_since: None,
        }
    }

    #[test]
    fn lines() {
        let run = svc(State::Running, Some(12), 5.9, false);
        assert_eq!(status_line("web", &run), "run: web: (pid 12) 5s");
        assert_eq!(
            status_line("./web", &svc(State::Running, Some(12), 0.2, true)),
            "run: ./web: (pid 12) 0s, normally down"
        );
        assert_eq!(
            status_line("web", &svc(State::Down, None, 3.0, false)),
            "down: web: 3s, normally up"
        );
        assert_eq!(
            status_line("web", &svc(State::Down, None, 3.0, true)),
            "down: web: 3s"
        );
        assert_eq!(
            status_line("web", &svc(State::Finishing, Some(14), 1.0, false)),
            "finish: web: (pid 14) 1s"
        );
        assert_eq!(
            status_line("web", &svc(State::Finishing, Some(14), 1.0, true)),
            "finish: web: (pid 14) 1s, normally down"
        );
        assert_eq!(
            status_line("web", &svc(State::Stopping, Some(12), 9.0, false)),
            "run: web: (pid 12) 9s, want down, got TERM"
        );
        assert_eq!(
            status_line("web", &svc(State::Down, None, -1.0, false)),
            "down: web: 0s, normally up"
        );
        assert_eq!(
            status_line("web", &svc(State::Down, None, f64::NAN, false)),
            "down: web: 0s, normally up"
        );
    }

    #[test]
    fn lines_with_log() {
        let mut s = svc(State::Running, Some(12), 5.0, false);
        assert_eq!(status_line_with_log("web", &s), "run: web: (pid 12) 5s");
        s.log = Some(LogStatus {
            state: LogState::Running,
            pid: Some(13),
            since: String::new(),
            since_s: 4.5,
        });
        assert_eq!(
            status_line_with_log("web", &s),
            "run: web: (pid 12) 5s; run: log: (pid 13) 4s"
        );
        s.log = Some(LogStatus {
            state: LogState::Down,
            pid: None,
            since: String::new(),
            since_s: 2.0,
        });
        assert_eq!(
            status_line_with_log("web", &s),
            "run: web: (pid 12) 5s; down: log: 2s"
        );
    }
}
