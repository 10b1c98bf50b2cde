//! Supervision's state in the protocol's words: [`build`] maps the state machines onto
//! [`Status`] (contract §11), and [`route`] decides what a request is: a read of that state,
//! a change for supervision (an event), or a refusal.

use std::time::SystemTime;

use nix::sys::signal::Signal;

use super::protocol::{
    self, DinitState, DownReason, ExitStatus, LogState, LogStatus, OrphanStatus, Request,
    ServiceStatus, State, Status, Streams, Want,
};
use crate::output::pipes::Counts;
use crate::supervise::events::{Ask, Op, Refusal};
use crate::supervise::exit::{DISABLED, Exit};
use crate::supervise::proctab::Role;
use crate::supervise::service::{After, Down, Log, Ready, Run, Service};
use crate::supervise::supervisor::Supervisor;

/// What a request is.
pub enum Route {
    /// `status` or `check` of these services (all for none).
    Read(Vec<String>),
    /// A change, for supervision.
    Ask(Ask),
    /// Refused before supervision sees it.
    Refuse(String),
}

/// Who may do what (contract §11): everyone reads; only uid 0 and dinit's own uid change.
pub fn route(req: Request, uid: u32, own_uid: u32) -> Route {
    if req.changes() && uid != 0 && uid != own_uid {
        return Route::Refuse("permission denied".into());
    }
    let services = |op, names| Route::Ask(Ask::Services { op, names });
    match req {
        Request::Status { services } | Request::Check { services } => Route::Read(services),
        Request::Shutdown => Route::Ask(Ask::Shutdown),
        Request::Up { services: n } => services(Op::Up, n),
        Request::Down { services: n } => services(Op::Down, n),
        Request::Restart { services: n } => services(Op::Restart, n),
        Request::Signal {
            signal,
            services: n,
        } => match Signal::try_from(signal) {
            Ok(sig) => services(Op::Signal(sig), n),
            Err(_) => Route::Refuse(format!("unknown signal: {signal}")),
        },
    }
}

fn stamp(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    String::from_utf8_lossy(&crate::output::clock::format_ms(ms)).into_owned()
}

fn exit_status(e: Exit) -> ExitStatus {
    match e {
        Exit::Code(c) => ExitStatus::Code(c),
        Exit::Signal(s) => ExitStatus::Signal(s),
    }
}

/// The status of the named services (all for none); `counts` gives a service's line and byte
/// counts (stdout, stderr).
pub fn build(
    sup: &Supervisor,
    names: &[String],
    counts: impl Fn(usize) -> [Counts; 2],
) -> Result<Status, Refusal> {
    let idx = sup.resolve(names)?;
    let now = SystemTime::now();
    let secs = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs_f64();
    let stopping = sup.stopping();
    let services = idx
        .into_iter()
        .map(|i| {
            let s = &sup.services[i];
            let [out, err] = counts(i);
            service(s, stopping, sup.started, &secs, out, err)
        })
        .collect();
    let orphans = sup
        .procs
        .iter()
        .filter_map(|(pid, p)| {
            let (o, policy) = match &p.role {
                Role::Orphan(o) => (o, "terminate"),
                Role::Adopted(o, _) => (o, "adopt"),
                Role::Service(..) => return None,
            };
            Some(OrphanStatus {
                name: o.to_string(),
                pid: pid.as_raw(),
                policy: policy.to_owned(),
            })
        })
        .collect();
    Ok(Status {
        dinit: protocol::Dinit {
            pid: std::process::id(),
            state: if stopping {
                DinitState::Stopping
            } else {
                DinitState::Running
            },
            uptime_s: secs(sup.started),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: protocol::VERSION,
        },
        services,
        orphans,
    })
}

fn service(
    s: &Service,
    stopping: bool,
    started: SystemTime,
    secs: &impl Fn(SystemTime) -> f64,
    out: Counts,
    err: Counts,
) -> ServiceStatus {
    let (state, pid, since, reason) = match s.run {
        Run::Running { pid, since, after } => {
            let state = if stopping || after != After::Natural {
                State::Stopping
            } else {
                State::Running
            };
            (state, Some(pid), since, None)
        }
        Run::Finishing { pid, since, .. } => (State::Finishing, pid, since, None),
        // Within a turn only: the fork's outcome comes before any request is read.
        Run::Starting { since } => (State::Running, None, since, None),
        Run::Down { why, since } => {
            let reason = match why {
                Down::DownFile => DownReason::DownFile,
                Down::Failed => DownReason::Failed,
                Down::Exited(Exit::Code(DISABLED)) => DownReason::Disabled,
                Down::Exited(_) => DownReason::Exited,
                Down::Requested(_) => DownReason::Requested,
            };
            (State::Down, None, since, Some(reason))
        }
    };
    // Where an operator (or the shutdown) wants it, as runit's `want up|down`.
    let want_down = match s.run {
        _ if stopping => true,
        Run::Running { after, .. } | Run::Finishing { after, .. } => after == After::Down,
        Run::Down { why, .. } => matches!(
            why,
            Down::DownFile | Down::Requested(_) | Down::Exited(Exit::Code(DISABLED))
        ),
        Run::Starting { .. } => false,
    };
    let log = s.def.has_logger.then(|| {
        let (state, pid, since) = match s.log {
            Log::Running { pid, since } => (LogState::Running, Some(pid), since),
            Log::Exited { since, .. } => (LogState::Down, None, since),
            Log::None | Log::Starting => (LogState::Down, None, started),
        };
        LogStatus {
            state,
            pid: pid.map(|p| p.as_raw() as u32),
            since: stamp(since),
            since_s: secs(since),
        }
    });
    let ready_since = match (s.run, s.ready) {
        (Run::Running { .. }, Ready::Yes { since }) => Some(stamp(since)),
        _ => None,
    };
    let mut st = ServiceStatus {
        ready: false,
        ready_since,
        name: s.def.name_text(),
        // The main program has no service directory (and no `check` to run).
        dir: match s.def.main {
            Some(_) => String::new(),
            None => s.def.dir.to_string_lossy().into_owned(),
        },
        state,
        pid: pid.map(|p| p.as_raw() as u32),
        since: stamp(since),
        since_s: secs(since),
        down_file: s.def.down,
        down_reason: reason,
        want: if want_down { Want::Down } else { Want::Up },
        exit: s.last_exit.map(exit_status),
        log,
        lines: Streams {
            stdout: out.lines,
            stderr: err.lines,
        },
        bytes: Streams {
            stdout: out.bytes,
            stderr: err.bytes,
        },
    };
    // A service down on purpose counts as ready.
    st.ready = st.ready_since.is_some() || st.down_on_purpose();
    st
}
