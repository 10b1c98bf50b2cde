//! The control socket: requests from `dinit status|check|up|down|…` and `sv`.
//!
//! `server` speaks the socket (bounded connections, request lines, response lines),
//! `protocol` is the language (shared with the client), `status` maps supervision's state
//! onto it and routes each request: a read, or an event for supervision.

pub mod protocol;
pub mod server;
pub mod status;
