//! Errors as values: what failed, on which path or pid, and the OS reason.
//!
//! `Display` is the user's line after `dinit: error: `, in one grammar everywhere:
//! `open /etc/service: no such file or directory`, `/etc/service/web/run: permission denied`.
//! OS reasons are the C library's texts with a lower-case first letter, as tozd/dinit prints
//! them; code matches `Errno` values, never these texts.

use std::fmt;
use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug)]
pub struct Error {
    /// The operation, when it adds something (`open`, `stat`); none for exec failures, where the
    /// path alone says it (contract §3).
    pub op: Option<&'static str>,
    pub subject: Subject,
    pub errno: Errno,
}

#[derive(Debug)]
pub enum Subject {
    Path(PathBuf),
    Pid(i32),
    None,
}

impl Error {
    pub fn path(
        op: Option<&'static str>,
        path: impl Into<PathBuf>,
        err: impl Into<ErrnoOf>,
    ) -> Error {
        Error {
            op,
            subject: Subject::Path(path.into()),
            errno: err.into().0,
        }
    }

    pub fn bare(op: &'static str, err: impl Into<ErrnoOf>) -> Error {
        Error {
            op: Some(op),
            subject: Subject::None,
            errno: err.into().0,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.op {
            f.write_str(op)?;
            if !matches!(self.subject, Subject::None) {
                f.write_str(" ")?;
            }
        }
        match &self.subject {
            Subject::Path(p) => {
                use std::os::unix::ffi::OsStrExt;
                write!(f, "{}", crate::log::Escape(p.as_os_str().as_bytes()))?
            }
            Subject::Pid(pid) => write!(f, "PID {pid}")?,
            Subject::None => {}
        }
        write!(f, ": {}", errno_text(self.errno))
    }
}

/// Anything that carries an OS error number.
pub struct ErrnoOf(pub Errno);

impl From<Errno> for ErrnoOf {
    fn from(e: Errno) -> Self {
        ErrnoOf(e)
    }
}

impl From<io::Error> for ErrnoOf {
    fn from(e: io::Error) -> Self {
        ErrnoOf(e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
    }
}

impl From<&io::Error> for ErrnoOf {
    fn from(e: &io::Error) -> Self {
        ErrnoOf(e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
    }
}

/// `permission denied`, `no such file or directory`, `exec format error`.
pub fn errno_text(e: Errno) -> String {
    let desc = e.desc();
    let mut chars = desc.chars();
    match chars.next() {
        // An abbreviation keeps its capitals: `I/O error`, not `i/O error`.
        Some(_) if desc.chars().nth(1).is_some_and(|c| c == '/' || c.is_uppercase()) => {
            desc.to_owned()
        }
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => format!("error {}", e as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            Error::path(Some("open"), "/nonexistent", Errno::ENOENT).to_string(),
            "open /nonexistent: no such file or directory"
        );
        assert_eq!(
            Error::path(None, "/s/web/run", Errno::EACCES).to_string(),
            "/s/web/run: permission denied"
        );
        assert_eq!(
            Error::path(None, "/s/x/run", Errno::ENOEXEC).to_string(),
            "/s/x/run: exec format error"
        );
        assert_eq!(
            Error::bare("prctl", Errno::EINVAL).to_string(),
            "prctl: invalid argument"
        );
        assert_eq!(errno_text(Errno::EPIPE), "broken pipe");
        assert_eq!(errno_text(Errno::EIO), "I/O error");
    }
}
