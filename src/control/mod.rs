//! The control socket: requests from `dinit status|check|up|down|…` and `sv`.
//!
//! `server` speaks the socket (set-up, accepting within limits, moving bytes), `conn` is one
//! connection's rules as a pure state machine (one request at a time, deadlines, bounds),
//! `protocol` is the language (shared with the client), `status` maps supervision's state
//! onto it and routes each request: a read, or an event for supervision.

pub mod conn;
pub mod protocol;
pub mod server;
pub mod status;
