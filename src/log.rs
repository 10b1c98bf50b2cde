//! dinit's own messages: levels and the line format `<ts> dinit: <level>: <message>`.
//!
//! Once the event loop runs, own messages go through `output::Output` like every other line
//! (same queue as service stderr, so they keep their order and never block). Before that,
//! `output::early` writes straight to fd 2: there is nothing else to wait for yet.

use std::io::Write as _;

/// Each level includes those before it: `none` < `error` < `warn` < `info` < `debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// `DINIT_LOG_LEVEL`: case-insensitive; `warning` is accepted for `warn`.
    pub fn parse(v: &str) -> Option<Level> {
        Some(match v.to_ascii_lowercase().as_str() {
            "none" => Level::None,
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    /// The word in the line: `warning`, not `warn`, as tozd/dinit writes it.
    pub fn word(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Writes one own message to `buf`: `<ts> dinit: <level>: <message>\n`.
pub fn format_line(buf: &mut Vec<u8>, ts: &[u8], level: Level, msg: std::fmt::Arguments<'_>) {
    buf.extend_from_slice(ts);
    buf.extend_from_slice(b" dinit: ");
    buf.extend_from_slice(level.word().as_bytes());
    buf.extend_from_slice(b": ");
    // Writing into a Vec cannot fail.
    let _ = buf.write_fmt(msg);
    buf.push(b'\n');
}

/// `log!(out, Level::Info, "…", args)`: formats only when the level is enabled.
#[macro_export]
macro_rules! log {
    ($out:expr, $level:expr, $($arg:tt)+) => {{
        let level = $level;
        if $out.enabled(level) {
            $out.own(level, format_args!($($arg)+));
        }
    }};
}

#[macro_export]
macro_rules! error { ($out:expr, $($arg:tt)+) => { $crate::log!($out, $crate::log::Level::Error, $($arg)+) }; }
#[macro_export]
macro_rules! warn { ($out:expr, $($arg:tt)+) => { $crate::log!($out, $crate::log::Level::Warn, $($arg)+) }; }
#[macro_export]
macro_rules! info { ($out:expr, $($arg:tt)+) => { $crate::log!($out, $crate::log::Level::Info, $($arg)+) }; }
#[macro_export]
macro_rules! debug { ($out:expr, $($arg:tt)+) => { $crate::log!($out, $crate::log::Level::Debug, $($arg)+) }; }
/// An info line that must come after the stdout records queued before it (a `finished` line).
#[macro_export]
macro_rules! info_after_stdout {
    ($out:expr, $($arg:tt)+) => {{
        if $out.enabled($crate::log::Level::Info) {
            $out.own_after_stdout($crate::log::Level::Info, format_args!($($arg)+));
        }
    }};
}
