//! Contract §1 (`DINIT_STOP_TIMEOUT`), §9 (orphans), reference §11 and docs/orphans.md: the
//! three reparenting policies, shutdowns with orphans, and real daemonizing programs (Debian's
//! `nginx` and `redis-server`) under `adopt`. Every scenario runs with dinit as PID 1 of a PID
//! namespace and as a subreaper (`.not_pid1()`).
//!
//! Orphans are made by the services themselves with the `orphan` shell function below, which
//! hands a process to dinit only once it has exec'd (so its name is stable), and writes its pid
//! (a namespace pid, as dinit reports it) to a scratch file.
mod common;
use common::*;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// helpers

/// `orphan TAG EXPECT CMD...`: runs CMD double-forked. The intermediate subshell waits until
/// CMD's command line starts with EXPECT (it has exec'd), writes its pid to `$S/TAG.pid` and
/// exits, so the process is reparented to dinit already carrying the name it keeps.
const ORPHAN_FN: &str = r#"
orphan() {
    _tag=$1; _expect=$2; shift 2
    (
        "$@" &
        _p=$!
        until tr '\0' ' ' < "/proc/$_p/cmdline" 2>/dev/null | grep -q "^$_expect"; do
            sleep 0.01
        done
        echo "$_p" > "$S/$_tag.pid.tmp"
        mv "$S/$_tag.pid.tmp" "$S/$_tag.pid"
    )
}
"#;

/// Python helper (as in reaping.rs): forks G which exits at once, waits until G is a zombie,
/// writes G's pid to `$S/zombie.pid` and exits, so an already dead G is reparented to dinit.
const MK_ZOMBIE: &str = r#"
import os, sys, time
S = sys.argv[1]
g = os.fork()
if g == 0:
    os._exit(0)
while True:
    st = open('/proc/%d/stat' % g).read()
    if st[st.rfind(')') + 2] == 'Z':
        break
    time.sleep(0.001)
open(S + '/zombie.pid.tmp', 'w').write('%d\n' % g)
os.rename(S + '/zombie.pid.tmp', S + '/zombie.pid')
os._exit(0)
"#;

/// Shell line that makes a zombie orphan (needs [`write_zombie_helper`]).
const MAKE_ZOMBIE: &str = "python3 \"$S/mk_zombie.py\" \"$S\"";

fn write_zombie_helper(d: &TestDir) {
    std::fs::write(d.s("mk_zombie.py"), MK_ZOMBIE).unwrap();
}

/// The body of service `a`: `extra` runs first (after the `orphan` function is defined), then
/// `$S/a.started` is created and the service runs until SIGTERM. Its TERM trap writes `ok` to
/// `$S/a.term` when the test had announced its SIGTERM (`$S/sent`), `early` otherwise: whether
/// dinit stopped the service on its own.
fn service_a(d: &TestDir, extra: &str) -> String {
    d.sh(&format!(
        "{ORPHAN_FN}\n\
         trap 'if [ -e \"$S/sent\" ]; then echo ok > \"$S/a.term\"; else echo early > \"$S/a.term\"; fi; exit 0' TERM\n\
         {extra}\n\
         echo started > \"$S/a.started\"\n\
         while :; do sleep 0.05; done"
    ))
}

fn launcher(d: &TestDir, policy: Option<&str>, pid1: bool) -> Launcher {
    let mut l = launch(d).info();
    if let Some(p) = policy {
        l = l.env("DINIT_REPARENTING_POLICY", p);
    }
    if !pid1 {
        l = l.not_pid1();
    }
    l
}

/// The (namespace) pid a service wrote to `$S/<name>`.
fn pid_file(d: &TestDir, name: &str) -> i32 {
    d.wait_file(name, LONG).trim().parse().unwrap()
}

/// Waits for an own message with exactly this level and text; panics with the output if not.
fn wait_own(r: &Dinit, level: &str, text: &str, deadline: Duration) -> Own {
    let mut found = None;
    let ok = wait_until(deadline, || {
        found = r
            .own()
            .into_iter()
            .find(|o| o.level == level && o.text == text);
        found.is_some()
    });
    assert!(ok, "timed out waiting for `{level}: {text}`\n{}", r.dump());
    found.unwrap()
}

/// The pid of `a/run` from its `running with PID` line.
fn wait_run_pid(r: &Dinit) -> i32 {
    let mut p = None;
    let ok = wait_until(LONG, || {
        p = r.reported_pid("a/run");
        p.is_some()
    });
    assert!(ok, "no `a/run: running with PID` line\n{}", r.dump());
    p.unwrap()
}

fn own_exact(r: &Dinit, level: &str, text: &str) -> Own {
    r.own()
        .into_iter()
        .find(|o| o.level == level && o.text == text)
        .unwrap_or_else(|| panic!("no own message `{level}: {text}`\n{}", r.dump()))
}

/// Milliseconds between two own messages (by their timestamps).
fn gap_ms(a: &Own, b: &Own) -> i64 {
    ts_millis(&b.ts) - ts_millis(&a.ts)
}

/// Waits until no process of the namespace has namespace pid `nspid` (gone and reaped).
fn wait_gone(r: &Dinit, nspid: i32, deadline: Duration) -> bool {
    wait_until(deadline, || r.host_pid(nspid).is_none())
}

fn zombie_children(r: &Dinit) -> Vec<i32> {
    children_of(r.pid)
        .into_iter()
        .filter(|&p| proc_state(p) == Some('Z'))
        .collect()
}

/// Every output line as (service, stage, text): stdout (JSON or text mode) and stderr records.
struct Lines {
    out: Vec<(String, String, String)>,
    err: Vec<(String, String, String)>,
}

fn lines(r: &Dinit, text: bool) -> Lines {
    let out = if text {
        r.stdout_records()
            .into_iter()
            .map(|t| (t.name.clone(), t.stage.clone(), t.text()))
            .collect()
    } else {
        r.json()
            .into_iter()
            .map(|j| {
                (
                    j.service().to_string(),
                    j.stage().to_string(),
                    j.msg().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let err = r
        .stderr_records()
        .into_iter()
        .map(|t| (t.name.clone(), t.stage.clone(), t.text()))
        .collect();
    Lines { out, err }
}

fn has_line(
    v: &[(String, String, String)],
    name: &str,
    stage: &str,
    pred: impl Fn(&str) -> bool,
) -> bool {
    v.iter().any(|(n, s, t)| n == name && s == stage && pred(t))
}

/// The warning dinit gives when it cannot redirect an adopted process's output, if any.
fn redirect_error(r: &Dinit, p: i32) -> Option<String> {
    let needle = format!("/{p}: error redirecting stdout and stderr: ");
    r.own_texts("warning")
        .into_iter()
        .find(|t| t.contains(&needle))
}

/// `Some(reason)` when adoption could not capture output because this machine does not allow
/// ptrace (seccomp, Yama) or dinit does not support it here (non-x86_64): the caller then skips.
/// A redirection error for any other reason is a dinit bug: panic.
fn ptrace_unavailable(r: &Dinit, p: i32) -> Option<String> {
    let w = redirect_error(r, p)?;
    let denied = w.contains("ptrace seize: operation not permitted")
        || w.contains("ptrace seize: function not implemented")
        || w.contains("only supported on x86_64");
    assert!(
        denied,
        "adoption failed to redirect output for a reason other than ptrace being forbidden: \
         {w}\n{}",
        r.dump()
    );
    Some(w)
}

fn skip_no_ptrace(test: &str, why: &str) {
    skip(
        test,
        &format!("ptrace is not permitted here, adopt cannot capture output ({why})"),
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago (never handed out twice by this process).
fn free_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut g = USED.lock().unwrap();
        if g.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// One request/response exchange over TCP with timeouts; the whole response, if any.
fn tcp_exchange(port: u16, request: &[u8], until_eof: bool) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    if until_eof {
        s.read_to_end(&mut buf).ok()?;
    } else {
        let mut b = [0u8; 256];
        let n = s.read(&mut b).ok()?;
        buf.extend_from_slice(&b[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `true` when `path` exists; else the test is recorded as skipped and the caller returns.
#[must_use]
fn require(test: &str, path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    skip(
        test,
        &format!(
            "{path} not found: this test runs a real daemonizing program under adopt (install \
             Debian's `{package}` package: apt-get install --no-install-recommends {package}; \
             scripts/test.sh does)"
        ),
    );
    false
}

// ---------------------------------------------------------------------------------------------
// terminate (default policy)

/// Expect (reference §11.4, docs/orphans.md): under the default policy, with
/// `DINIT_KILL_TIMEOUT=1`,
/// - a double-forked `sleep 1000` gets warning `sleep/<p>: terminating reparented child process
///   with PID <p>: sleep 1000`, info `sleep/<p>: sending SIGTERM to PID <p>`, and its end is
///   logged `sleep/<p>: PID <p> finished with signal 15`;
/// - one that ignores SIGTERM (`sh -c 'trap "" TERM; exec sleep 1001'`) gets SIGTERM, then
///   `sleep/<q>: sending SIGKILL to PID <q>` after about the kill timeout (not less), and ends
///   with signal 9;
/// - both are gone, the container keeps running (the service is not stopped), and a SIGTERM
///   to dinit then stops it with exit code 0 (orphans never change it).
fn terminate_policy(pid1: bool) {
    let d = TestDir::new();
    d.svc("a").run(&service_a(
        &d,
        "orphan plain 'sleep 1000' sleep 1000\n\
         orphan stubborn 'sleep 1001' sh -c 'trap \"\" TERM; exec sleep 1001'",
    ));
    let mut r = launcher(&d, None, pid1)
        .env("DINIT_KILL_TIMEOUT", "1")
        .spawn();
    d.wait_file("a.started", LONG);
    let p = pid_file(&d, "plain.pid");
    let q = pid_file(&d, "stubborn.pid");

    wait_own(
        &r,
        "warning",
        &format!("sleep/{p}: terminating reparented child process with PID {p}: sleep 1000"),
        LONG,
    );
    wait_own(
        &r,
        "info",
        &format!("sleep/{p}: sending SIGTERM to PID {p}"),
        LONG,
    );
    wait_own(
        &r,
        "info",
        &format!("sleep/{p}: PID {p} finished with signal 15"),
        LONG,
    );
    assert!(
        wait_gone(&r, p, LONG),
        "sleep 1000 ({p}) still there\n{}",
        r.dump()
    );

    wait_own(
        &r,
        "warning",
        &format!("sleep/{q}: terminating reparented child process with PID {q}: sleep 1001"),
        LONG,
    );
    let term = wait_own(
        &r,
        "info",
        &format!("sleep/{q}: sending SIGTERM to PID {q}"),
        LONG,
    );
    let kill = wait_own(
        &r,
        "info",
        &format!("sleep/{q}: sending SIGKILL to PID {q}"),
        LONG,
    );
    wait_own(
        &r,
        "info",
        &format!("sleep/{q}: PID {q} finished with signal 9"),
        LONG,
    );
    assert!(
        wait_gone(&r, q, LONG),
        "the TERM-ignoring orphan ({q}) still there\n{}",
        r.dump()
    );
    let gap = gap_ms(&term, &kill);
    // Timestamps are truncated to milliseconds: 1 s may show as 999 ms.
    assert!(
        (990..6000).contains(&gap),
        "SIGKILL came {gap} ms after SIGTERM, expected about DINIT_KILL_TIMEOUT=1 s\n{}",
        r.dump()
    );

    assert!(
        !r.exited(),
        "dinit exited because of an orphan\n{}",
        r.dump()
    );
    assert!(!d.exists("a.term"), "the service was stopped\n{}", r.dump());
    assert!(
        !r.own_contains("a/run: terminating"),
        "the service was stopped\n{}",
        r.dump()
    );
    d.touch("sent");
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(d.read("a.term"), "ok\n", "{}", r.dump());
}

#[test]
fn terminate_policy_pid1() {
    terminate_policy(true);
}

#[test]
fn terminate_policy_subreaper() {
    terminate_policy(false);
}

// ---------------------------------------------------------------------------------------------
// adopt

/// A daemon (run by bash as `demod <script>`, so named `demod`): traps TERM (appends
/// `daemon-term` to `$S/events`, exits 0), forks a child
/// that prints `kid-out` / `kid-err` every 50 ms, and prints `daemon-out <i>` / `daemon-err <i>`
/// every 50 ms with a counter. Once `$S/spawn` exists it runs one short child printing
/// `late-out` / `late-err`; once `$S/exit3` exists it exits 3.
const DAEMON: &str = r#"
trap 'echo daemon-term >> "$S/events"; exit 0' TERM
( trap - TERM; while :; do echo kid-out; echo kid-err >&2; sleep 0.05; done ) &
i=0
while :; do
    echo "daemon-out $i"
    echo "daemon-err $i" >&2
    if [ -e "$S/spawn" ] && [ ! -e "$S/spawned" ]; then
        sh -c 'echo late-out; echo late-err >&2'
        echo done > "$S/spawned"
    fi
    [ -e "$S/exit3" ] && exit 3
    sleep 0.05
    i=$((i+1))
done
"#;

fn write_daemon(d: &TestDir) {
    std::fs::write(d.s("daemon.sh"), d.sh(DAEMON)).unwrap();
}

/// The counters of `<prefix> <n>` lines, split by who they were attributed to.
fn counters(v: &[(String, String, String)], prefix: &str, who: (&str, &str)) -> Vec<u64> {
    v.iter()
        .filter(|(n, s, _)| n == who.0 && s == who.1)
        .filter_map(|(_, _, t)| t.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
        .collect()
}

/// Lines written before the adoption are the service's (`a/run`), later ones the daemon's
/// (`demod/<p>`): every counter appears exactly once, nothing is lost or attributed to anyone
/// else, and the switch is clean (every `a/run` counter precedes every `demod/<p>` one).
fn check_counters(
    v: &[(String, String, String)],
    prefix: &str,
    stage: &str,
    what: &str,
    dump: &str,
) {
    let before = counters(v, prefix, ("a", "run"));
    let after = counters(v, prefix, ("demod", stage));
    let all: Vec<u64> = v
        .iter()
        .filter_map(|(_, _, t)| t.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
        .collect();
    assert_eq!(
        all.len(),
        before.len() + after.len(),
        "{what}: `{prefix}` lines attributed to someone else than a/run or demod/{stage}\n{dump}"
    );
    assert!(
        !after.is_empty(),
        "{what}: no `{prefix}` line under demod/{stage}\n{dump}"
    );
    let mut sorted = all.clone();
    sorted.sort_unstable();
    let max = *sorted.last().unwrap();
    assert_eq!(
        sorted,
        (0..=max).collect::<Vec<_>>(),
        "{what}: `{prefix}` lines lost or duplicated\n{dump}"
    );
    if let (Some(b), Some(a)) = (before.iter().max(), after.iter().min()) {
        assert!(
            b < a,
            "{what}: `{prefix} {b}` under a/run after `{prefix} {a}` under demod\n{dump}"
        );
    }
}

/// How the adopted daemon's life ends in [`adopt_daemon`].
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// The daemon exits 3: dinit shuts down and exits 3.
    Exit3,
    /// SIGTERM to dinit: the daemon gets SIGTERM, dinit exits 0.
    Sigterm,
}

/// Expect (reference §11.5, docs/orphans.md): under `adopt`, a double-forked shell daemon is
/// adopted (`demod/<p>: adopting reparented child process with PID <p>: demod <script>`), its
/// stdout and stderr lines, those of the child it forked before the adoption and those of a
/// child it forks afterwards appear as `demod/<p>` (JSON: `"service":"demod","stage":"<p>"`;
/// text: `demod/<p>: line`; stderr as text records), with nothing lost at the switch. Then
/// - `Exit3`: the daemon exits 3 → `demod/<p>: PID <p> finished with status 3`, the container
///   stops (the service gets SIGTERM) and dinit exits 3;
/// - `Sigterm`: SIGTERM to dinit → `demod/<p>: terminating`, `demod/<p>: sending SIGTERM to PID
///   <p>`, the daemon's TERM trap runs, dinit exits 0.
fn adopt_daemon(test: &str, text: bool, end: End, pid1: bool) {
    let d = TestDir::new();
    write_daemon(&d);
    d.svc("a").run(&service_a(
        &d,
        "orphan demod demod bash -c \"exec -a demod bash '$S/daemon.sh'\"",
    ));
    let mut l = launcher(&d, Some("adopt"), pid1);
    if text {
        l = l.text();
    }
    let mut r = l.spawn();
    d.wait_file("a.started", LONG);
    let p = pid_file(&d, "demod.pid");
    let script = d.s("daemon.sh").display().to_string();
    wait_own(
        &r,
        "warning",
        &format!("demod/{p}: adopting reparented child process with PID {p}: demod {script}"),
        LONG,
    );
    let stage = p.to_string();
    let captured = |r: &Dinit| {
        let ls = lines(r, text);
        has_line(&ls.out, "demod", &stage, |t| t.starts_with("daemon-out "))
            && has_line(&ls.err, "demod", &stage, |t| t.starts_with("daemon-err "))
            && has_line(&ls.out, "demod", &stage, |t| t == "kid-out")
            && has_line(&ls.err, "demod", &stage, |t| t == "kid-err")
    };
    let ok = wait_until(LONG, || captured(&r) || redirect_error(&r, p).is_some());
    if let Some(why) = ptrace_unavailable(&r, p) {
        return skip_no_ptrace(test, &why);
    }
    assert!(
        ok,
        "the daemon's and its child's lines did not appear under demod/{p}\n{}",
        r.dump()
    );
    d.touch("spawn");
    let ok = wait_until(LONG, || {
        let ls = lines(&r, text);
        has_line(&ls.out, "demod", &stage, |t| t == "late-out")
            && has_line(&ls.err, "demod", &stage, |t| t == "late-err")
    });
    assert!(
        ok,
        "lines of a child forked after the adoption did not appear under demod/{p}\n{}",
        r.dump()
    );
    assert!(!r.exited(), "{}", r.dump());
    assert!(!d.exists("a.term"), "the service was stopped\n{}", r.dump());

    let code = match end {
        End::Exit3 => {
            d.touch("exit3");
            let code = r.wait_exit(LONG);
            own_exact(
                &r,
                "info",
                &format!("demod/{p}: PID {p} finished with status 3"),
            );
            assert_eq!(
                d.read("a.term"),
                "early\n",
                "the daemon's end did not stop the service\n{}",
                r.dump()
            );
            code
        }
        End::Sigterm => {
            d.touch("sent");
            r.signal(libc::SIGTERM);
            let code = r.wait_exit(LONG);
            own_exact(&r, "info", &format!("demod/{p}: terminating"));
            own_exact(
                &r,
                "info",
                &format!("demod/{p}: sending SIGTERM to PID {p}"),
            );
            own_exact(
                &r,
                "info",
                &format!("demod/{p}: PID {p} finished with status 0"),
            );
            assert!(
                d.events().contains(&"daemon-term".to_string()),
                "the adopted daemon did not get SIGTERM\n{}",
                r.dump()
            );
            assert_eq!(d.read("a.term"), "ok\n", "{}", r.dump());
            code
        }
    };
    let dump = r.dump();
    let ls = lines(&r, text);
    check_counters(&ls.out, "daemon-out", &stage, "stdout", &dump);
    check_counters(&ls.err, "daemon-err", &stage, "stderr", &dump);
    let expected = if end == End::Exit3 { 3 } else { 0 };
    assert_eq!(code, expected, "{dump}");
}

#[test]
fn adopt_daemon_json_exit3_pid1() {
    adopt_daemon("adopt_daemon_json_exit3_pid1", false, End::Exit3, true);
}

#[test]
fn adopt_daemon_json_exit3_subreaper() {
    adopt_daemon(
        "adopt_daemon_json_exit3_subreaper",
        false,
        End::Exit3,
        false,
    );
}

#[test]
fn adopt_daemon_text_sigterm_pid1() {
    adopt_daemon("adopt_daemon_text_sigterm_pid1", true, End::Sigterm, true);
}

#[test]
fn adopt_daemon_text_sigterm_subreaper() {
    adopt_daemon(
        "adopt_daemon_text_sigterm_subreaper",
        true,
        End::Sigterm,
        false,
    );
}

/// Expect: the idiomatic way to start a daemonizing program under `adopt`: `run` starts it
/// (plain double fork; the parent returns once the daemon runs, as `nginx` or `redis-server
/// --daemonize yes` do) and exits 115 ("disable myself", no shutdown). The daemon is adopted and supervised:
/// the container keeps running, its output is captured, and SIGTERM to dinit stops it (exit 0).
/// dinit must not decide that "nothing is left running" before it has looked at the orphan.
fn adopt_daemon_run_exits_115(test: &str, pid1: bool) {
    let d = TestDir::new();
    write_daemon(&d);
    d.svc("a").run(&d.sh(
        "( bash -c \"exec -a demod bash '$S/daemon.sh'\" & echo $! > \"$S/daemon.pid\" )\n\
         p=$(cat \"$S/daemon.pid\")\n\
         until [ \"$(tr '\\0' '\\n' < /proc/$p/cmdline | head -n 1)\" = demod ]; do sleep 0.01; done\n\
         exit 115",
    ));
    let mut r = launcher(&d, Some("adopt"), pid1).text().spawn();
    let p = pid_file(&d, "daemon.pid");
    let adopting = format!("adopting reparented child process with PID {p}: ");
    let terminating = format!("terminating reparented child process with PID {p}: ");
    wait_until(LONG, || {
        r.own_contains(&adopting) || r.own_contains(&terminating) || r.exited()
    });
    assert!(
        r.own_contains(&adopting),
        "the daemon started by a `run` that exited 115 was not adopted (dinit decided that \
         nothing was left running before it looked at the orphan)\n{}",
        r.dump()
    );
    let stage = p.to_string();
    let ok = wait_until(LONG, || {
        has_line(&lines(&r, true).out, "demod", &stage, |t| {
            t.starts_with("daemon-out ")
        }) || redirect_error(&r, p).is_some()
    });
    if let Some(why) = ptrace_unavailable(&r, p) {
        return skip_no_ptrace(test, &why);
    }
    assert!(ok, "no daemon line under demod/{p}\n{}", r.dump());
    assert!(!r.exited(), "{}", r.dump());
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    own_exact(
        &r,
        "info",
        &format!("demod/{p}: sending SIGTERM to PID {p}"),
    );
    assert!(
        d.events().contains(&"daemon-term".to_string()),
        "{}",
        r.dump()
    );
}

#[test]
fn adopt_daemon_run_exits_115_pid1() {
    adopt_daemon_run_exits_115("adopt_daemon_run_exits_115_pid1", true);
}

#[test]
fn adopt_daemon_run_exits_115_subreaper() {
    adopt_daemon_run_exits_115("adopt_daemon_run_exits_115_subreaper", false);
}

/// Expect (contract §9 change): under `adopt`, an orphan that is already a zombie when found is
/// reaped (`<name>/<g>: reaping process with PID <g>`, `... PID <g> finished with status 0`),
/// never adopted, and does not stop the container; SIGTERM then → exit 0.
fn adopt_zombie(pid1: bool) {
    let d = TestDir::new();
    write_zombie_helper(&d);
    d.svc("a").run(&service_a(&d, MAKE_ZOMBIE));
    let mut r = launcher(&d, Some("adopt"), pid1).spawn();
    d.wait_file("a.started", LONG);
    let g = pid_file(&d, "zombie.pid");
    let reaping = format!("/{g}: reaping process with PID {g}");
    let finished = format!("/{g}: PID {g} finished with status 0");
    let ok = wait_until(LONG, || {
        r.own_texts("warning").iter().any(|t| t.ends_with(&reaping))
            && r.own_texts("info").iter().any(|t| t.ends_with(&finished))
    });
    assert!(ok, "zombie {g} not reported as reaped\n{}", r.dump());
    assert!(
        wait_gone(&r, g, LONG),
        "zombie {g} still there\n{}",
        r.dump()
    );
    assert!(
        wait_until(LONG, || zombie_children(&r).is_empty()),
        "zombie children of dinit: {:?}\n{}",
        zombie_children(&r),
        r.dump()
    );
    assert!(
        !r.own_contains(&format!("adopting reparented child process with PID {g}")),
        "{}",
        r.dump()
    );
    assert!(
        !r.exited(),
        "the zombie stopped the container\n{}",
        r.dump()
    );
    assert!(
        !r.own_contains("a/run: terminating"),
        "the zombie stopped the container\n{}",
        r.dump()
    );
    d.touch("sent");
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(
        d.read("a.term"),
        "ok\n",
        "the service was stopped early\n{}",
        r.dump()
    );
}

#[test]
fn adopt_zombie_reaped_pid1() {
    adopt_zombie(true);
}

#[test]
fn adopt_zombie_reaped_subreaper() {
    adopt_zombie(false);
}

// ---------------------------------------------------------------------------------------------
// ignore

/// Expect (contract §9, docs/orphans.md): under `ignore`, a living orphan (one that ignores
/// SIGTERM) is left alone while the container runs, a zombie orphan is still reaped (no `Z`
/// child of dinit remains), and at shutdown dinit does not wait for the orphan: with the
/// default `DINIT_KILL_TIMEOUT` of 30 s it exits 0 within a few seconds (the orphan found at
/// shutdown gets its SIGTERM, which it ignores; it dies with the namespace).
fn ignore_policy(pid1: bool) {
    let d = TestDir::new();
    write_zombie_helper(&d);
    d.svc("a").run(&service_a(
        &d,
        &format!(
            "orphan stubborn 'sleep 1002' sh -c 'trap \"\" TERM; exec sleep 1002'\n{MAKE_ZOMBIE}"
        ),
    ));
    let mut r = launcher(&d, Some("ignore"), pid1)
        .env("DINIT_KILL_TIMEOUT", "30")
        .spawn();
    d.wait_file("a.started", LONG);
    let p = pid_file(&d, "stubborn.pid");
    let g = pid_file(&d, "zombie.pid");
    let host = r.host_pid(p).expect("the orphan is not in the namespace");

    assert!(
        wait_gone(&r, g, LONG),
        "zombie {g} not reaped under ignore\n{}",
        r.dump()
    );
    assert!(
        wait_until(LONG, || zombie_children(&r).is_empty()),
        "zombie children of dinit under ignore: {:?}\n{}",
        zombie_children(&r),
        r.dump()
    );
    // Left alone: the other policies act on an orphan within one scan period (1 s). This
    // deadline of two periods must expire without the orphan being touched or named; the wait
    // ends early (and the test fails) as soon as it is.
    let touched = wait_until(Duration::from_millis(2200), || {
        r.host_pid(p) != Some(host) || r.own_contains(&format!("/{p}: "))
    });
    assert!(
        !touched,
        "the orphan was touched under ignore\n{}",
        r.dump()
    );
    assert!(
        children_of(r.pid).contains(&host),
        "the orphan is not dinit's child"
    );
    assert!(!r.exited(), "{}", r.dump());

    d.touch("sent");
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(MEDIUM), 0, "{}", r.dump());
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "dinit waited {took:?} for an orphan under ignore\n{}",
        r.dump()
    );
    assert_eq!(d.read("a.term"), "ok\n", "{}", r.dump());
    assert!(
        !r.own_contains(&format!("sending SIGKILL to PID {p}")),
        "{}",
        r.dump()
    );
    // It dies with the namespace (PID 1 gone, or the namespace's `sh` init after dinit).
    assert!(
        wait_until(LONG, || !Path::new(&format!("/proc/{host}")).exists()
            || proc_state(host) == Some('Z')),
        "the orphan outlived the namespace"
    );
}

#[test]
fn ignore_policy_pid1() {
    ignore_policy(true);
}

#[test]
fn ignore_policy_subreaper() {
    ignore_policy(false);
}

// ---------------------------------------------------------------------------------------------
// shutdown with orphans that ignore SIGTERM

/// Expect (reference §8.2, docs/orphans.md): an orphan that appears during the shutdown (the
/// service's TERM trap double-forks a TERM-ignoring `sleep 1005`, then the service exits 0) is
/// terminated whatever the policy (`terminate` or `adopt`: never adopted), gets SIGKILL after
/// `DINIT_KILL_TIMEOUT=1`, and the shutdown ends then: it takes about the timeout (at least 1
/// s, not much more). Exit code 0.
fn shutdown_with_stubborn_orphan(policy: &str, pid1: bool) {
    let d = TestDir::new();
    d.svc("a").run(&d.sh(&format!(
        "{ORPHAN_FN}\n\
         on_term() {{\n\
             orphan late 'sleep 1005' sh -c 'trap \"\" TERM; exec sleep 1005'\n\
             echo ok > \"$S/a.term\"\n\
             exit 0\n\
         }}\n\
         trap on_term TERM\n\
         echo started > \"$S/a.started\"\n\
         while :; do sleep 0.05; done"
    )));
    let mut r = launcher(&d, Some(policy), pid1)
        .env("DINIT_KILL_TIMEOUT", "1")
        .spawn();
    d.wait_file("a.started", LONG);
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    let code = r.wait_exit(LONG);
    let took = t0.elapsed();
    assert_eq!(code, 0, "{}", r.dump());
    let p = pid_file(&d, "late.pid");
    own_exact(
        &r,
        "warning",
        &format!("sleep/{p}: terminating reparented child process with PID {p}: sleep 1005"),
    );
    let term = own_exact(
        &r,
        "info",
        &format!("sleep/{p}: sending SIGTERM to PID {p}"),
    );
    let kill = own_exact(
        &r,
        "info",
        &format!("sleep/{p}: sending SIGKILL to PID {p}"),
    );
    own_exact(
        &r,
        "info",
        &format!("sleep/{p}: PID {p} finished with signal 9"),
    );
    assert!(!r.own_contains("adopting"), "{}", r.dump());
    let gap = gap_ms(&term, &kill);
    assert!(
        (990..6000).contains(&gap),
        "SIGKILL {gap} ms after SIGTERM, expected about 1 s\n{}",
        r.dump()
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(7),
        "the shutdown took {took:?}, expected about DINIT_KILL_TIMEOUT=1 s\n{}",
        r.dump()
    );
    assert!(wait_gone(&r, p, LONG));
}

#[test]
fn shutdown_stubborn_orphan_terminate_pid1() {
    shutdown_with_stubborn_orphan("terminate", true);
}

#[test]
fn shutdown_stubborn_orphan_terminate_subreaper() {
    shutdown_with_stubborn_orphan("terminate", false);
}

#[test]
fn shutdown_stubborn_orphan_adopt_pid1() {
    shutdown_with_stubborn_orphan("adopt", true);
}

#[test]
fn shutdown_stubborn_orphan_adopt_subreaper() {
    shutdown_with_stubborn_orphan("adopt", false);
}

// ---------------------------------------------------------------------------------------------
// DINIT_STOP_TIMEOUT

/// Expect (contract §1): with `DINIT_STOP_TIMEOUT=1` (and the default 30 s kill timeout), a
/// service that ignores SIGTERM gets `a/run: stop timeout expired, sending SIGKILL to PID <p>`
/// about 1 s after the shutdown began, ends with signal 9, and dinit exits 0 with nothing left:
/// dinit reported the end of every process it had before exiting, and none of them exists.
fn stop_timeout_service(pid1: bool) {
    let d = TestDir::new();
    d.svc("a").run(&d.sh("trap '' TERM\n\
         echo started > \"$S/a.started\"\n\
         exec sleep 1006"));
    let mut r = launcher(&d, None, pid1)
        .env("DINIT_STOP_TIMEOUT", "1")
        .spawn();
    d.wait_file("a.started", LONG);
    let p = wait_run_pid(&r);
    let hosts = r.descendants();
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    let code = r.wait_exit(MEDIUM);
    let took = t0.elapsed();
    assert_eq!(code, 0, "{}", r.dump());
    let begin = own_exact(&r, "info", "got signal 15, terminating services");
    let kill = own_exact(
        &r,
        "warning",
        &format!("a/run: stop timeout expired, sending SIGKILL to PID {p}"),
    );
    own_exact(
        &r,
        "info",
        &format!("a/run: PID {p} finished with signal 9"),
    );
    let gap = gap_ms(&begin, &kill);
    assert!(
        (990..6000).contains(&gap),
        "SIGKILL {gap} ms after the shutdown began\n{}",
        r.dump()
    );
    assert!(
        took < Duration::from_secs(7),
        "the stop took {took:?}\n{}",
        r.dump()
    );
    let left = || {
        hosts
            .iter()
            .copied()
            .filter(|h| Path::new(&format!("/proc/{h}")).exists())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(MEDIUM, || left().is_empty()),
        "left: {:?}",
        left()
    );
}

#[test]
fn stop_timeout_kills_service_pid1() {
    stop_timeout_service(true);
}

#[test]
fn stop_timeout_kills_service_subreaper() {
    stop_timeout_service(false);
}

/// Expect (contract §1: "every process still alive that many seconds after shutdown began …
/// gets SIGKILL"; docs/orphans.md "Bounding a stop"): the TERM-ignoring service has a
/// TERM-ignoring child (`sleep 1007 &`). When the stop timeout SIGKILLs the service, the child
/// is reparented to dinit; it was alive when the stop timeout expired, so it must not get the
/// full 30 s `DINIT_KILL_TIMEOUT` on top: the stop ends within a few seconds, the child ends
/// with signal 9, exit 0, nothing left.
fn stop_timeout_orphan_of_killed_service(pid1: bool) {
    let d = TestDir::new();
    d.svc("a").run(&d.sh("trap '' TERM\n\
         sleep 1007 &\n\
         echo $! > \"$S/child.pid.tmp\"; mv \"$S/child.pid.tmp\" \"$S/child.pid\"\n\
         echo started > \"$S/a.started\"\n\
         exec sleep 1006"));
    let mut r = launcher(&d, None, pid1)
        .env("DINIT_STOP_TIMEOUT", "1")
        .env("DINIT_KILL_TIMEOUT", "30")
        .spawn();
    d.wait_file("a.started", LONG);
    let c = pid_file(&d, "child.pid");
    let p = wait_run_pid(&r);
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    let ended = wait_until(Duration::from_secs(12), || r.exited());
    let took = t0.elapsed();
    assert!(
        ended && took < Duration::from_secs(7),
        "DINIT_STOP_TIMEOUT=1 did not bound the stop ({took:?} and {}): the service's child, \
         reparented when the stop timeout SIGKILLed the service, got the 30 s kill timeout\n{}",
        if ended { "exited" } else { "still running" },
        r.dump()
    );
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    own_exact(
        &r,
        "info",
        &format!("a/run: PID {p} finished with signal 9"),
    );
    own_exact(
        &r,
        "info",
        &format!("sleep/{c}: PID {c} finished with signal 9"),
    );
}

#[test]
fn stop_timeout_bounds_orphan_of_killed_service_pid1() {
    stop_timeout_orphan_of_killed_service(true);
}

#[test]
fn stop_timeout_bounds_orphan_of_killed_service_subreaper() {
    stop_timeout_orphan_of_killed_service(false);
}

// ---------------------------------------------------------------------------------------------
// real daemonizing programs under adopt: nginx, redis-server

/// How the service starts the daemon.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// `<daemon>; exit 115`: the idiomatic dinit way (the service disables itself).
    Exit115,
    /// `<daemon>; exec sleep 100000`: the service keeps running next to the adopted daemon.
    StaysUp,
}

fn daemon_run(d: &TestDir, start: &str, style: Style) -> String {
    let tail = match style {
        Style::Exit115 => "exit 115",
        Style::StaysUp => "exec sleep 100000",
    };
    d.sh(&format!("{start} || exit 1\n{tail}"))
}

/// Waits for the adoption warning of `p` and returns the name it was adopted under, one of
/// `names`: a daemon may retitle itself (nginx's `nginx: master process …`, redis's
/// `redis-server 127.0.0.1:<port>`), so its name depends on when dinit looked. Fails clearly when
/// the daemon was terminated instead (the "nothing left running" decision came first) or dinit
/// exited.
fn expect_adopted(r: &mut Dinit, p: i32, names: &[&str]) -> String {
    let terminating = format!("terminating reparented child process with PID {p}: ");
    let marker = format!("/{p}: adopting reparented child process with PID {p}: ");
    let adopted = |r: &Dinit| {
        r.own()
            .iter()
            .filter(|o| o.level == "warning")
            .find_map(|o| o.text.split_once(&marker).map(|(name, _)| name.to_owned()))
    };
    wait_until(LONG, || {
        adopted(r).is_some() || r.own_contains(&terminating) || r.exited()
    });
    let name = adopted(r).unwrap_or_else(|| panic!("{p} was not adopted\n{}", r.dump()));
    assert!(
        names.contains(&name.as_str()),
        "{p} adopted as {name:?}, expected one of {names:?}\n{}",
        r.dump()
    );
    name
}

fn wait_text_file(p: &Path) -> String {
    let ok = wait_until(LONG, || {
        std::fs::read(p)
            .map(|c| c.ends_with(b"\n"))
            .unwrap_or(false)
    });
    assert!(ok, "timed out waiting for {}", p.display());
    std::fs::read_to_string(p).unwrap()
}

/// Expect (docs/orphans.md "When to use which": an old nginx config without `daemon off;`):
/// `nginx -e stderr -c <conf> -p <prefix>/` daemonizes; its master (titled `nginx: master
/// process …`, so named `nginx:`, or `nginx` when dinit looked before it retitled itself) is
/// adopted as `nginx:/<p>`, and
/// - a request is answered and its access-log line (`access_log /dev/stdout`) reaches dinit's
///   stdout: nginx opened `/dev/stdout` before daemonizing, while its stdout was the service's
///   pipe, and its daemonizing pointed fd 1 at /dev/null, so that fd is not the daemon's
///   stdout: the line stays the service's (`nginx/run`) — captured, not lost;
/// - its error log (`error_log stderr`: nginx writes it to fd 2 itself) is captured under
///   `nginx:/<p>` after the adoption, including the lines its worker (a child forked before the
///   adoption) writes: the worker's `<w>#<w>: exiting` at shutdown. (Adoption moves fds 1 and 2
///   only: a log opened as `/dev/stderr` is a descriptor of its own and keeps writing to the
///   service's pipe, as the access log above does; issue 18.)
/// - SIGTERM to dinit (`docker stop`): `nginx:/<p>: sending SIGTERM to PID <p>`, nginx logs
///   `signal 15 (SIGTERM) received`, exits 0, dinit exits 0.
fn nginx(test: &str, style: Style, pid1: bool) {
    if !require(test, "/usr/sbin/nginx", "nginx") {
        return;
    }
    let d = TestDir::new();
    let pre = d.root().join("nginx");
    std::fs::create_dir_all(&pre).unwrap();
    let pre_s = pre.display().to_string();
    let port = free_port();
    let conf = pre.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "error_log stderr info;\n\
             pid {pre_s}/nginx.pid;\n\
             events {{}}\n\
             http {{\n\
                 access_log /dev/stdout;\n\
                 client_body_temp_path {pre_s}/body;\n\
                 proxy_temp_path {pre_s}/proxy;\n\
                 fastcgi_temp_path {pre_s}/fastcgi;\n\
                 uwsgi_temp_path {pre_s}/uwsgi;\n\
                 scgi_temp_path {pre_s}/scgi;\n\
                 server {{\n\
                     listen 127.0.0.1:{port};\n\
                     location / {{ return 200 \"ok\\n\"; }}\n\
                 }}\n\
             }}\n"
        ),
    )
    .unwrap();
    let cmd = format!("nginx -e stderr -c {} -p {pre_s}/", conf.display());
    d.svc("nginx").run(&daemon_run(&d, &cmd, style));
    let mut r = launcher(&d, Some("adopt"), pid1).text().spawn();
    let p: i32 = wait_text_file(&pre.join("nginx.pid"))
        .trim()
        .parse()
        .unwrap();
    // `nginx:` once it has retitled itself `nginx: master process …`, `nginx` before.
    let name = expect_adopted(&mut r, p, &["nginx:", "nginx"]);
    let host = r
        .host_pid(p)
        .expect("nginx's master is not in the namespace");

    let mut body = None;
    let ok = wait_until(LONG, || {
        body = tcp_exchange(
            port,
            b"GET /dinit-orphans-probe HTTP/1.0\r\nHost: x\r\n\r\n",
            true,
        );
        body.as_deref()
            .is_some_and(|b| b.starts_with("HTTP/1.1 200"))
    });
    assert!(
        ok,
        "nginx did not answer on port {port}: {body:?}\n{}",
        r.dump()
    );
    assert!(body.unwrap().ends_with("\r\n\r\nok\n"));
    let stage = p.to_string();
    let access = |r: &Dinit| {
        r.stdout_records().into_iter().find(|t| {
            t.text()
                .contains("\"GET /dinit-orphans-probe HTTP/1.0\" 200")
                && ((t.name == "nginx" && t.stage == "run") || (t.name == name && t.stage == stage))
        })
    };
    assert!(
        wait_until(LONG, || access(&r).is_some()),
        "the access-log line did not reach dinit's stdout\n{}",
        r.dump()
    );
    assert!(!r.exited(), "{}", r.dump());

    r.signal(libc::SIGTERM);
    let code = r.wait_exit(LONG);
    if let Some(why) = ptrace_unavailable(&r, p) {
        return skip_no_ptrace(test, &why);
    }
    assert_eq!(code, 0, "{}", r.dump());
    own_exact(
        &r,
        "info",
        &format!("{name}/{p}: sending SIGTERM to PID {p}"),
    );
    own_exact(
        &r,
        "info",
        &format!("{name}/{p}: PID {p} finished with status 0"),
    );
    let err = lines(&r, true).err;
    assert!(
        has_line(&err, &name, &stage, |t| t
            .contains("signal 15 (SIGTERM) received")),
        "nginx's error log after the adoption is not under nginx:/{p}\n{}",
        r.dump()
    );
    let worker_line = |t: &str| {
        // `<date> <time> [notice] <w>#<w>: exiting` from a worker (w != p)
        t.split_whitespace().any(|w| {
            w.strip_suffix(':')
                .and_then(|w| w.split_once('#'))
                .is_some_and(|(a, b)| a == b && a != stage)
        }) && t.ends_with(": exiting")
    };
    assert!(
        has_line(&err, &name, &stage, worker_line),
        "the worker's error-log lines are not under nginx:/{p}\n{}",
        r.dump()
    );
    eprintln!(
        "{test}: access-log line attributed to {}/{}",
        access(&r).unwrap().name,
        access(&r).unwrap().stage
    );
    assert!(wait_until(LONG, || !Path::new(&format!("/proc/{host}")).exists()));
}

#[test]
fn nginx_run_exits_115_pid1() {
    nginx("nginx_run_exits_115_pid1", Style::Exit115, true);
}

#[test]
fn nginx_run_exits_115_subreaper() {
    nginx("nginx_run_exits_115_subreaper", Style::Exit115, false);
}

#[test]
fn nginx_run_stays_up_pid1() {
    nginx("nginx_run_stays_up_pid1", Style::StaysUp, true);
}

#[test]
fn nginx_run_stays_up_subreaper() {
    nginx("nginx_run_stays_up_subreaper", Style::StaysUp, false);
}

/// Expect (docs/orphans.md: `redis-server --daemonize yes`): daemonizing points redis's fds
/// 0-2 at /dev/null and it logs to stdout (no `logfile`), so before the adoption its lines are
/// lost; the adopted `redis-server/<p>` (titled `redis-server 127.0.0.1:<port>`) gets fd 1 and
/// 2 swapped for dinit's pipes, so what it logs afterwards is captured: a PING is answered and
/// logged (`Accepted 127.0.0.1:…`, verbose level) as JSON records `"service":"redis-server",
/// "stage":"<p>"`; SIGTERM to dinit: redis logs `User requested shutdown...` and `Redis is now
/// ready to exit, bye bye...` there too, exits 0, dinit exits 0.
fn redis(test: &str, style: Style, pid1: bool) {
    if !require(test, "/usr/bin/redis-server", "redis-server") {
        return;
    }
    let d = TestDir::new();
    let dir = d.root().join("redis");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_s = dir.display().to_string();
    let port = free_port();
    let start = format!(
        "redis-server --daemonize yes --bind 127.0.0.1 --port {port} --dir {dir_s} \
         --pidfile {dir_s}/redis.pid --loglevel verbose --save '' --appendonly no"
    );
    d.svc("redis").run(&daemon_run(&d, &start, style));
    let mut r = launcher(&d, Some("adopt"), pid1).spawn();
    let p: i32 = wait_text_file(&dir.join("redis.pid"))
        .trim()
        .parse()
        .unwrap();
    expect_adopted(&mut r, p, &["redis-server"]);
    let host = r.host_pid(p).expect("redis is not in the namespace");
    let mut answer = None;
    let ok = wait_until(LONG, || {
        answer = tcp_exchange(port, b"PING\r\n", false);
        answer.as_deref() == Some("+PONG\r\n")
    });
    assert!(
        ok,
        "redis did not answer PING on port {port}: {answer:?}\n{}",
        r.dump()
    );
    let stage = p.to_string();
    let ok = wait_until(LONG, || {
        has_line(&lines(&r, false).out, "redis-server", &stage, |t| {
            t.contains("Accepted 127.0.0.1:")
        }) || redirect_error(&r, p).is_some()
    });
    if let Some(why) = ptrace_unavailable(&r, p) {
        return skip_no_ptrace(test, &why);
    }
    assert!(
        ok,
        "redis's log of the PING is not under redis-server/{p}\n{}",
        r.dump()
    );
    assert!(!r.exited(), "{}", r.dump());

    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    own_exact(
        &r,
        "info",
        &format!("redis-server/{p}: sending SIGTERM to PID {p}"),
    );
    own_exact(
        &r,
        "info",
        &format!("redis-server/{p}: PID {p} finished with status 0"),
    );
    let out = lines(&r, false).out;
    for s in [
        "User requested shutdown",
        "Redis is now ready to exit, bye bye",
    ] {
        assert!(
            has_line(&out, "redis-server", &stage, |t| t.contains(s)),
            "`{s}` not under redis-server/{p}\n{}",
            r.dump()
        );
    }
    assert!(wait_until(LONG, || !Path::new(&format!("/proc/{host}")).exists()));
    assert!(
        !dir.join("redis.pid").exists(),
        "redis did not shut down cleanly"
    );
}

#[test]
fn redis_run_exits_115_pid1() {
    redis("redis_run_exits_115_pid1", Style::Exit115, true);
}

#[test]
fn redis_run_exits_115_subreaper() {
    redis("redis_run_exits_115_subreaper", Style::Exit115, false);
}

#[test]
fn redis_run_stays_up_pid1() {
    redis("redis_run_stays_up_pid1", Style::StaysUp, true);
}

#[test]
fn redis_run_stays_up_subreaper() {
    redis("redis_run_stays_up_subreaper", Style::StaysUp, false);
}
