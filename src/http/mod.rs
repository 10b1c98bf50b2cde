//! Kubernetes probes and Prometheus metrics over HTTP (contract §15): `server` speaks HTTP on
//! the loop (bounded, read-only), `metrics` writes the exposition format, and [`probe`] says
//! what `/livez` and `/readyz` answer.

pub mod metrics;
pub mod server;

use crate::control::protocol::{DinitState, State, Status};

/// The reasons a probe fails (none: 200 `ok`): as `dinit check` says them, with `ready` as
/// `dinit check --ready`. `check_failed(i)` is dinit's own last run of service `i`'s `check`,
/// when it failed (`check exited 3`).
pub fn probe(
    st: &Status,
    ready: bool,
    check_failed: impl Fn(usize) -> Option<String>,
) -> Vec<String> {
    if st.dinit.state == DinitState::Stopping {
        return vec!["dinit: stopping".to_owned()];
    }
    let mut reasons = Vec::new();
    for (i, s) in st.services.iter().enumerate() {
        if s.state != State::Running && !s.down_on_purpose() {
            reasons.push(format!("{}: not running", s.name));
        } else if s.state == State::Running {
            if let Some(why) = check_failed(i) {
                reasons.push(format!("{}: {why}", s.name));
            } else if ready && !s.ready {
                reasons.push(format!("{}: not ready", s.name));
            }
        }
    }
    reasons
}
