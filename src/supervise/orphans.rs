//! Processes reparented to dinit: finding them in `/proc`, reading their `stat` (once, here),
//! the 10 ms maturity rule, their names, and what each policy does with them (contract §9).
//!
//! Naming (reference §11.3): the first word of `/proc/<pid>/cmdline` after its last `/`; else
//! (a zombie, a kernel thread) the `comm` of `/proc/<pid>/stat`; else `unknown`. Records and
//! messages call an orphan `<name>/<pid>`.
//!
//! [`scan`] is the only I/O here; it never blocks (procfs). Everything else is pure.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::config::Policy;
use crate::log::escaped;

/// Orphan scan period, and during shutdown.
pub const SCAN_PERIOD: Duration = Duration::from_secs(1);
pub const SCAN_PERIOD_STOPPING: Duration = Duration::from_millis(100);
/// An orphan younger than this may not have exec'd yet: look again later.
pub const MATURITY: Duration = Duration::from_millis(10);
/// SIGCHLD asks for a scan, but not more often than this (a fork storm sends thousands).
pub const SCAN_MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The fields of `/proc/<pid>/stat` dinit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat<'a> {
    /// The text in the outermost parentheses (a comm may hold `)` itself).
    pub comm: &'a [u8],
    /// `R`, `S`, `D`, `Z`, `T`...
    pub state: u8,
    /// Start time, clock ticks after boot (field 22).
    pub start_ticks: u64,
}

impl ProcStat<'_> {
    pub fn parse(stat: &[u8]) -> Option<ProcStat<'_>> {
        let (open, close) = comm_span(stat)?;
        let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        // rest starts at field 3 (state); field 22 is 19 further.
        let state = *fields.next()?.as_bytes().first()?;
        Some(ProcStat {
            comm: &stat[open + 1..close],
            state,
            start_ticks: fields.nth(18)?.parse().ok()?,
        })
    }

    /// At least how long ago the process started: field 22 counts clock ticks since boot, as
    /// CLOCK_BOOTTIME does (both shifted alike inside a time namespace). The kernel rounds the
    /// start down to a tick (10 ms), so the real start may be up to a tick later: counting
    /// from there keeps a process that is 1 ms old from looking 10 ms old.
    pub fn age(&self) -> Option<Duration> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
        let now = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32);
        Some(self.age_at(now, clock_ticks()))
    }

    /// At most how long ago the process started: counted from the earliest start its tick
    /// allows (the other bound of [`ProcStat::age`]).
    pub fn age_max(&self) -> Option<Duration> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
        let now = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32);
        let ticks = clock_ticks();
        let earliest = Duration::from_secs(self.start_ticks / ticks)
            + Duration::from_secs(self.start_ticks % ticks) / ticks as u32;
        Some(now.saturating_sub(earliest))
    }

    /// [`ProcStat::age`] at boot time `now`, with `ticks` clock ticks a second.
    pub fn age_at(&self, now: Duration, ticks: u64) -> Duration {
        let latest_start = Duration::from_secs(self.start_ticks / ticks)
            + Duration::from_secs(self.start_ticks % ticks + 1) / ticks as u32;
        now.saturating_sub(latest_start)
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, read once).
fn clock_ticks() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    })
}

/// The name of a zombie: it has no cmdline any more, only its `comm`.
pub fn zombie_name(pid: Pid) -> String {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default();
    name_from(b"", &stat)
}

/// An orphan's name from its cmdline and its stat.
pub fn name_from(cmdline: &[u8], stat: &[u8]) -> String {
    let first = cmdline
        .split(|b| *b == 0 || b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    let base = first.rsplit(|b| *b == b'/').next().unwrap_or_default();
    if !base.is_empty() {
        return escaped(base);
    }
    match comm_span(stat) {
        Some((open, close)) if close > open + 1 => escaped(&stat[open + 1..close]),
        _ => "unknown".to_owned(),
    }
}

/// Where the comm of a stat line is: between the first `(` and the last `)`.
fn comm_span(stat: &[u8]) -> Option<(usize, usize)> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    (close > open).then_some((open, close))
}

/// The cmdline as tozd/dinit prints it: NULs as spaces, trailing spaces removed; control
/// characters and invalid UTF-8 escaped (it is the process's to write: it must not forge a line).
pub fn cmdline_text(cmdline: &[u8]) -> String {
    let s: Vec<u8> = cmdline
        .iter()
        .map(|b| if *b == 0 { b' ' } else { *b })
        .collect();
    escaped(&s).trim_end_matches(' ').to_owned()
}

/// A living child dinit did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub pid: Pid,
    pub name: String,
    pub cmdline: String,
    /// Old enough (the 10 ms rule) to have exec'd: its name is its own.
    pub mature: bool,
    /// At most how long ago it started, counting from the earliest start its clock tick
    /// allows (unknown when /proc did not say).
    pub age_max: Option<Duration>,
}

/// What one look at `/proc` saw.
#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    /// Adopted processes (of those asked about) whose stdout now points to a device.
    pub dropped: Vec<Pid>,
}

/// Lists dinit's living children that `known` does not know, and which of `adopted` threw
/// their captured stdout away. Zombies are left to the reaper.
pub fn scan(known: impl Fn(Pid) -> bool, adopted: &[Pid]) -> Scan {
    let mut out = Scan {
        dropped: adopted
            .iter()
            .copied()
            .filter(|p| stdout_dropped(*p))
            .collect(),
        ..Scan::default()
    };
    let me = std::process::id();
    let Ok(list) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) else {
        return out;
    };
    for pid in list
        .split_ascii_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|p| !known(*p))
    {
        let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(info) = ProcStat::parse(&stat) else {
            continue;
        };
        if info.state == b'Z' {
            continue;
        }
        let mature = info.age().is_none_or(|age| age >= MATURITY);
        let age_max = info.age_max();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        out.found.push(Found {
            pid,
            name: name_from(&cmdline, &stat),
            cmdline: cmdline_text(&cmdline),
            mature,
            age_max,
        });
    }
    out
}

/// Whether `pid`'s stdout now points to a character device (`/dev/null`): a daemon that
/// finished daemonizing only after it was adopted has thrown the captured pipe away.
pub fn stdout_dropped(pid: Pid) -> bool {
    nix::sys::stat::stat(format!("/proc/{pid}/fd/1").as_str())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFCHR)
}

/// What happens to a living orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Left alone (`ignore`), or looked at again later (too young to be named).
    Wait,
    /// SIGTERM, then SIGKILL after `DINIT_KILL_TIMEOUT`.
    Terminate,
    /// Tracked like a service, its output captured.
    Adopt,
    /// SIGKILL at once: the stop timeout has expired.
    Kill,
}

/// Where dinit is, as far as orphans care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Running,
    Stopping,
    /// Every service has ended: what still appears is not waited for (a fork bomb).
    Draining,
    /// `DINIT_STOP_TIMEOUT` expired.
    Killing,
}

/// The three policies, and what a shutdown changes about them. Pure.
pub fn verdict(policy: Policy, moment: Moment, mature: bool) -> Verdict {
    match (moment, mature, policy) {
        (Moment::Killing | Moment::Draining, _, _) => Verdict::Kill,
        (_, false, _) => Verdict::Wait,
        (Moment::Stopping, true, _) => Verdict::Terminate,
        (Moment::Running, true, Policy::Terminate) => Verdict::Terminate,
        (Moment::Running, true, Policy::Adopt) => Verdict::Adopt,
        (Moment::Running, true, Policy::Ignore) => Verdict::Wait,
    }
}

/// When orphans are looked for: a deadline that only moves earlier until the scan runs.
#[derive(Debug, Clone, Copy)]
pub struct ScanClock {
    /// The next scan, if one is wanted.
    pub next: Option<Instant>,
    pub last: Instant,
    /// What the last scan saw.
    pub last_saw: Saw,
}

/// Whether the last scan left orphans for later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saw {
    Settled,
    /// Orphans too young to handle: a scan must look again.
    Immature,
}

impl ScanClock {
    pub fn new(now: Instant) -> ScanClock {
        ScanClock {
            next: None,
            last: now,
            last_saw: Saw::Settled,
        }
    }

    /// Asks for a scan at `at`; returns whether a timer must be armed for it (no earlier scan
    /// is due).
    pub fn want(&mut self, at: Instant) -> bool {
        if self.next.is_some_and(|n| n <= at) {
            return false;
        }
        self.next = Some(at);
        true
    }

    /// Whether a scan is due at `now` (an earlier timer may fire for a later wish).
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|n| n <= now)
    }

    /// A scan runs now.
    pub fn ran(&mut self, now: Instant) {
        self.last = now;
        self.next = None;
    }
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
        // A forged dinit line and terminal escapes stay inside the one line.
        assert_eq!(
            cmdline_text(b"x\0\n2026 dinit: error: y\0\x1b[2J\xff\0"),
            "x \\n2026 dinit: error: y \\x1b[2J\\xff"
        );
        assert_eq!(name_from(b"a\x1bb\0", b""), "a\\x1bb");
        assert_eq!(name_from(b"", b"42 (\x1b[2J) S"), "\\x1b[2J");
    }

    #[test]
    fn stat_fields() {
        let line = b"42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        let s = ProcStat::parse(line).unwrap();
        assert_eq!(
            (s.comm, s.state, s.start_ticks),
            (&b"a) b"[..], b'S', 12345)
        );
        assert_eq!(ProcStat::parse(b"42 (x) S 1 2"), None);
        assert_eq!(ProcStat::parse(b"garbage"), None);
        assert_eq!(ProcStat::parse(b"42 )x( S"), None);
    }

    /// Started in tick 100 (1.00 s at 100 ticks/s): really somewhere in 1.00..1.01 s, so at
    /// 1.005 s it may be brand new, and at 1.025 s it is at least 15 ms old.
    #[test]
    fn age_counts_from_the_latest_possible_start() {
        let p = ProcStat {
            comm: b"x",
            state: b'S',
            start_ticks: 100,
        };
        assert_eq!(p.age_at(Duration::from_millis(1005), 100), Duration::ZERO);
        assert_eq!(
            p.age_at(Duration::from_millis(1025), 100),
            Duration::from_millis(15)
        );
    }

    /// Every policy × moment × maturity.
    #[test]
    fn verdicts() {
        use Moment::*;
        use Policy::*;
        use Verdict as V;
        for policy in [Terminate, Adopt, Ignore] {
            assert_eq!(verdict(policy, Killing, false), V::Kill);
            assert_eq!(verdict(policy, Killing, true), V::Kill);
            assert_eq!(verdict(policy, Draining, false), V::Kill);
            assert_eq!(verdict(policy, Draining, true), V::Kill);
            assert_eq!(verdict(policy, Stopping, false), V::Wait);
            assert_eq!(verdict(policy, Stopping, true), V::Terminate);
            assert_eq!(verdict(policy, Running, false), V::Wait);
        }
        assert_eq!(verdict(Terminate, Running, true), V::Terminate);
        assert_eq!(verdict(Adopt, Running, true), V::Adopt);
        assert_eq!(verdict(Ignore, Running, true), V::Wait);
    }

    #[test]
    fn scan_clock() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = ScanClock::new(t0);
        assert!(!c.due(t0 + ms(5000)));
        assert!(c.want(t0 + ms(100)));
        assert!(!c.want(t0 + ms(200)), "a later wish needs no timer");
        assert!(c.want(t0 + ms(50)), "an earlier one does");
        assert!(!c.due(t0 + ms(49)));
        assert!(c.due(t0 + ms(50)));
        c.ran(t0 + ms(50));
        assert!(!c.due(t0 + ms(1000)));
        assert_eq!(c.last, t0 + ms(50));
    }
}
