//! Supervision: every process dinit waits for, as state machines moved by events.
//!
//! ```text
//! events (loop) --> Supervisor::on --> service.rs   run, finish, terminate, log of one service
//!                         |        --> orphans.rs   policy for reparented processes
//!                         |        --> adopt.rs     an adopted process's output redirection
//!                         |        --> shutdown.rs  dinit's own phase
//!                         v
//!                    effects (loop carries them out: spawn.rs, tracer.rs, reaper.rs, signals)
//! ```
//!
//! Nothing here owns a poll, a token or a socket; `supervise/` imports nothing from `control/`
//! or `cli/` (requests arrive as events, replies leave as effects).

pub mod adopt;
pub mod events;
pub mod exit;
pub mod messages;
pub mod names;
pub mod orphans;
pub mod proctab;
pub mod reaper;
pub mod scan;
pub mod service;
pub mod shutdown;
pub mod spawn;
pub mod supervisor;
pub mod tracer;
