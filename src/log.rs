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

/// Bytes from the outside world (a name, a command line, a value) as they appear in dinit's
/// own messages: printable text as it is; control characters and invalid UTF-8 escaped (`\n`,
/// `\x1b`, `\xff`, `\u{85}`), so that no process can forge a dinit line or send escape codes
/// to a terminal through them, and every message stays one line.
pub struct Escape<'a>(pub &'a [u8]);

impl std::fmt::Display for Escape<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            if !valid.chars().any(char::is_control) {
                f.write_str(valid)?;
            } else {
                for c in valid.chars() {
                    match c {
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c if (c as u32) < 0x80 && c.is_control() => {
                            write!(f, "\\x{:02x}", c as u32)?
                        }
                        c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                        c => f.write_char(c)?,
                    }
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// [`Escape`] into a `String`.
pub fn escaped(bytes: &[u8]) -> String {
    Escape(bytes).to_string()
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escaped(b"web"), "web");
        assert_eq!(escaped("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(
            escaped(b"x\n2026-01-01T00:00:00.000Z dinit: error: forged"),
            "x\\n2026-01-01T00:00:00.000Z dinit: error: forged"
        );
        assert_eq!(escaped(b"\x1b[2J\r\t\x7f"), "\\x1b[2J\\r\\t\\x7f");
        assert_eq!(escaped(b"bad\xff\xfe"), "bad\\xff\\xfe");
        assert_eq!(escaped("\u{85}".as_bytes()), "\\u{85}");
        assert!(!escaped(&(0u8..=255).collect::<Vec<_>>()).contains('\n'));
    }
}
