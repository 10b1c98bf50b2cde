//! Processes reparented to dinit: how they are named (reference §11.3).
//!
//! name = the first word of `/proc/<pid>/cmdline` after its last `/`; else (a zombie, a kernel
//! thread) the `comm` of `/proc/<pid>/stat`; else `unknown`. Records and messages call an orphan
//! `<name>/<pid>`.

use nix::unistd::Pid;

/// The name of a zombie: it has no cmdline any more, only its `comm`.
pub fn zombie_name(pid: Pid) -> String {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default();
    name_from(b"", &stat)
}

/// Pure part of [`name_of`].
pub fn name_from(cmdline: &[u8], stat: &[u8]) -> String {
    let first = cmdline
        .split(|b| *b == 0 || b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    let base = first.rsplit(|b| *b == b'/').next().unwrap_or_default();
    if !base.is_empty() {
        return String::from_utf8_lossy(base).into_owned();
    }
    if let Some(comm) = comm_from_stat(stat)
        && !comm.is_empty()
    {
        return String::from_utf8_lossy(comm).into_owned();
    }
    "unknown".to_owned()
}

/// The text in the outermost parentheses of `/proc/<pid>/stat` (a comm may hold `)` itself).
pub fn comm_from_stat(stat: &[u8]) -> Option<&[u8]> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    (close > open).then(|| &stat[open + 1..close])
}

/// The cmdline as tozd/dinit prints it: NULs as spaces, trailing spaces removed.
pub fn cmdline_text(cmdline: &[u8]) -> String {
    let s: Vec<u8> = cmdline
        .iter()
        .map(|b| if *b == 0 { b' ' } else { *b })
        .collect();
    String::from_utf8_lossy(&s).trim_end_matches(' ').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming() {
        assert_eq!(name_from(b"sleep\0infinity\0", b""), "sleep");
        assert_eq!(name_from(b"/bin/sleep\0infinity\0", b""), "sleep");
        assert_eq!(name_from(b"nginx: worker process\0", b""), "nginx:");
        assert_eq!(name_from(b"", b"42 (true) Z 1 2 3"), "true");
        assert_eq!(name_from(b"", b"42 (a (b) c) S 1"), "a (b) c");
        assert_eq!(name_from(b"", b""), "unknown");
        assert_eq!(name_from(b"\0\0", b"42 () Z"), "unknown");
        assert_eq!(name_from(b"/usr/bin/\0", b"42 (x) S"), "x");
    }

    #[test]
    fn cmdline() {
        assert_eq!(cmdline_text(b"sleep\0infinity\0"), "sleep infinity");
        assert_eq!(cmdline_text(b""), "");
    }
}
