//! The Prometheus text exposition format 0.0.4 of dinit's state (contract §15), written by
//! hand: a few dozen lines of `# HELP`, `# TYPE` and samples, which `promtool check metrics`
//! accepts (tests/http.rs runs it). Names follow Prometheus' conventions: `_total` counters,
//! base units (`_seconds`, `_bytes`), labels `service`, `stream`, `policy`, `cmd`.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// One service's figures.
pub struct ServiceFigures<'a> {
    pub name: &'a str,
    pub up: bool,
    pub ready: bool,
    pub starts: u64,
    /// How `run` ended last (the shell's code: 128 + N for signal N).
    pub last_exit: Option<u8>,
    /// When the running `run` started.
    pub started: Option<SystemTime>,
    /// Lines and bytes, stdout then stderr.
    pub lines: [u64; 2],
    pub bytes: [u64; 2],
}

/// Everything a scrape reports.
pub struct Figures<'a> {
    pub services: Vec<ServiceFigures<'a>>,
    /// Bytes queued for dinit's stdout, stderr.
    pub queue_bytes: [usize; 2],
    /// Seconds the pipes feeding stdout, stderr were paused by backpressure.
    pub blocked_seconds: [f64; 2],
    pub orphans_reaped: u64,
    /// Orphans being stopped (`terminate`) and adopted (`adopt`) now.
    pub orphans: [usize; 2],
    /// Control requests by command.
    pub requests: &'a [(&'static str, u64)],
}

const STREAMS: [&str; 2] = ["stdout", "stderr"];

/// A label value with `\`, `"` and newlines escaped, as the format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub fn render(f: &Figures<'_>) -> String {
    let mut out = String::with_capacity(4096 + 800 * f.services.len());
    let names: Vec<String> = f.services.iter().map(|s| label(s.name)).collect();
    family(
        &mut out,
        "dinit_build_info",
        "gauge",
        "dinit's version (always 1).",
    );
    let _ = writeln!(
        out,
        "dinit_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let per_service =
        |out: &mut String, name, kind, help, value: &dyn Fn(&ServiceFigures) -> Option<String>| {
            family(out, name, kind, help);
            for (s, n) in f.services.iter().zip(&names) {
                if let Some(v) = value(s) {
                    let _ = writeln!(out, "{name}{{service=\"{n}\"}} {v}");
                }
            }
        };
    per_service(
        &mut out,
        "dinit_service_up",
        "gauge",
        "Whether the service's run is running.",
        &|s| Some(u8::from(s.up).to_string()),
    );
    per_service(
        &mut out,
        "dinit_service_ready",
        "gauge",
        "Whether the service is ready (a service down on purpose counts as ready).",
        &|s| Some(u8::from(s.ready).to_string()),
    );
    per_service(
        &mut out,
        "dinit_service_starts_total",
        "counter",
        "How many times the service's run was started.",
        &|s| Some(s.starts.to_string()),
    );
    per_service(
        &mut out,
        "dinit_service_last_exit_code",
        "gauge",
        "How run last ended: its exit code, or 128 + N for signal N.",
        &|s| s.last_exit.map(|c| c.to_string()),
    );
    per_service(
        &mut out,
        "dinit_service_start_time_seconds",
        "gauge",
        "When the running run started, in seconds since the epoch.",
        &|s| s.started.map(|t| format!("{:.3}", secs(t))),
    );
    for (metric, help, pick) in [
        (
            "dinit_output_lines_total",
            "Lines the service's programs wrote, by stream.",
            0,
        ),
        (
            "dinit_output_bytes_total",
            "Bytes the service's programs wrote, by stream.",
            1,
        ),
    ] {
        family(&mut out, metric, "counter", help);
        for (s, n) in f.services.iter().zip(&names) {
            for (i, stream) in STREAMS.iter().enumerate() {
                let v = if pick == 0 { s.lines[i] } else { s.bytes[i] };
                let _ = writeln!(out, "{metric}{{service=\"{n}\",stream=\"{stream}\"}} {v}");
            }
        }
    }
    family(
        &mut out,
        "dinit_output_queue_bytes",
        "gauge",
        "Bytes queued for dinit's own stdout and stderr.",
    );
    for (i, stream) in STREAMS.iter().enumerate() {
        let _ = writeln!(
            out,
            "dinit_output_queue_bytes{{stream=\"{stream}\"}} {}",
            f.queue_bytes[i]
        );
    }
    family(
        &mut out,
        "dinit_output_blocked_seconds_total",
        "counter",
        "Time the pipes feeding a stream were paused because it was slow (backpressure).",
    );
    for (i, stream) in STREAMS.iter().enumerate() {
        let _ = writeln!(
            out,
            "dinit_output_blocked_seconds_total{{stream=\"{stream}\"}} {:.3}",
            f.blocked_seconds[i]
        );
    }
    family(
        &mut out,
        "dinit_orphans_reaped_total",
        "counter",
        "Reparented processes reaped that had ended before dinit saw them.",
    );
    let _ = writeln!(out, "dinit_orphans_reaped_total {}", f.orphans_reaped);
    family(
        &mut out,
        "dinit_orphans",
        "gauge",
        "Reparented processes dinit handles now, by policy.",
    );
    for (policy, n) in ["terminate", "adopt"].iter().zip(f.orphans) {
        let _ = writeln!(out, "dinit_orphans{{policy=\"{policy}\"}} {n}");
    }
    family(
        &mut out,
        "dinit_control_requests_total",
        "counter",
        "Requests on the control socket, by command.",
    );
    for (cmd, n) in f.requests {
        let _ = writeln!(out, "dinit_control_requests_total{{cmd=\"{cmd}\"}} {n}");
    }
    process(&mut out);
    out
}

/// The standard `process_*` metrics of dinit itself, from /proc/self.
fn process(out: &mut String) {
    let stat = std::fs::read(format!("/proc/{}/stat", std::process::id())).unwrap_or_default();
    let fields: Vec<u64> = stat
        .iter()
        .rposition(|b| *b == b')')
        .and_then(|i| std::str::from_utf8(&stat[i + 2..]).ok())
        .map(|rest| {
            rest.split_ascii_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    // Fields from 3 (state) on: utime 14, stime 15, starttime 22, rss 24 (1-based).
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ").map(|v| v.trim().parse::<u64>()))
        })
        .and_then(Result::ok)
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    family(
        out,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent in seconds.",
    );
    let _ = writeln!(
        out,
        "process_cpu_seconds_total {:.2}",
        (field(14) + field(15)) as f64 / ticks
    );
    family(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(out, "process_resident_memory_bytes {}", field(24) * page);
    family(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    let _ = writeln!(out, "process_open_fds {fds}");
    family(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {:.2}",
        boot as f64 + field(22) as f64 / ticks
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let f = Figures {
            services: vec![ServiceFigures {
                name: "we\"b\\x\n",
                up: true,
                ready: false,
                starts: 2,
                last_exit: Some(143),
                started: Some(UNIX_EPOCH + std::time::Duration::from_millis(1500)),
                lines: [3, 4],
                bytes: [30, 40],
            }],
            queue_bytes: [0, 7],
            blocked_seconds: [1.5, 0.0],
            orphans_reaped: 9,
            orphans: [1, 0],
            requests: &[("status", 5)],
        };
        let text = render(&f);
        for want in [
            "# TYPE dinit_service_up gauge\ndinit_service_up{service=\"we\\\"b\\\\x\\n\"} 1\n",
            "dinit_service_starts_total{service=\"we\\\"b\\\\x\\n\"} 2\n",
            "dinit_service_last_exit_code{service=\"we\\\"b\\\\x\\n\"} 143\n",
            "dinit_service_start_time_seconds{service=\"we\\\"b\\\\x\\n\"} 1.500\n",
            "dinit_output_lines_total{service=\"we\\\"b\\\\x\\n\",stream=\"stderr\"} 4\n",
            "dinit_output_blocked_seconds_total{stream=\"stdout\"} 1.500\n",
            "dinit_orphans{policy=\"terminate\"} 1\n",
            "dinit_control_requests_total{cmd=\"status\"} 5\n",
            "# TYPE process_cpu_seconds_total counter\n",
            "dinit_build_info{version=\"",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        // Every sample line names a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{line}");
            }
        }
    }
}
