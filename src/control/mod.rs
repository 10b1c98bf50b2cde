//! The control socket: requests from `dinit status|check|up|down|…` and `sv`.

pub mod protocol;
pub mod server;
