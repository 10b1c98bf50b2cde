//! Supervision: scan -> spawn -> reap -> state -> shutdown.

pub mod adopt;
pub mod exit;
pub mod orphans;
pub mod proctab;
pub mod reaper;
pub mod scan;
pub mod spawn;
pub mod supervisor;
