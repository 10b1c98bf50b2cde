//! Contract §11 (status, health and control) and §1 (the client commands): the control socket,
//! `dinit status|check|up|down|restart|signal|shutdown` and the raw protocol (docs/control.md).
//!
//! Every dinit under test listens on its own socket (the harness puts `control.sock` in the
//! test's temp root; some tests use an abstract `@dinit-test-…` name) and every client gets the
//! same `DINIT_CONTROL_SOCKET`: never the default `/run/dinit/control.sock`.
//!
//! The round-trip figures of `status_round_trip_100_services` are printed on stderr:
//! `cargo test --release --test control -- status_round_trip --nocapture`.
mod common;
use common::*;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// helpers

/// The socket `launch()` gives dinit (a path in the test's temp root).
fn sock(d: &TestDir) -> String {
    d.root().join("control.sock").display().to_string()
}

/// A unique abstract socket name (`@…`), so that concurrent test runs never meet.
fn abstract_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "@dinit-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `dinit <args>` as a client of the dinit at `sock`, clean environment.
fn ctl(sock: &str, args: &[&str]) -> CmdOut {
    ctl_env(sock, &[], args)
}

fn ctl_env(sock: &str, env: &[(&str, &str)], args: &[&str]) -> CmdOut {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("DINIT_CONTROL_SOCKET", sock)
        .envs(env.iter().copied());
    run_cmd(&mut c, LONG)
}

/// The same client run as uid/gid 65534 (`nobody`), no supplementary groups.
fn ctl_nobody(sock: &str, args: &[&str]) -> CmdOut {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("DINIT_CONTROL_SOCKET", sock);
    run_cmd(&mut c, LONG)
}

fn connect(sock: &str) -> std::io::Result<UnixStream> {
    match sock.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            UnixStream::connect_addr(&addr)
        }
        None => UnixStream::connect(sock),
    }
}

/// One request line on a fresh connection; the parsed response line (None when dinit does not
/// answer with a complete JSON line).
fn ask(sock: &str, line: &str) -> Option<Value> {
    let s = connect(sock).ok()?;
    s.set_read_timeout(Some(MEDIUM)).ok()?;
    s.set_write_timeout(Some(MEDIUM)).ok()?;
    (&s).write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut l = String::new();
    BufReader::new(&s).read_line(&mut l).ok()?;
    serde_json::from_str(&l).ok()
}

const STATUS: &str = r#"{"cmd":"status"}"#;

/// The service `name` in a status object (panics when missing).
fn svc<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {st}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {st}"))
}

fn state(st: &Value, name: &str) -> String {
    svc(st, name)["state"].as_str().unwrap_or("?").to_string()
}

fn pid_of(st: &Value, name: &str) -> i64 {
    svc(st, name)["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} has no pid in {st}"))
}

fn log_pid(st: &Value, name: &str) -> i64 {
    svc(st, name)["log"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}'s logger has no pid in {st}"))
}

/// Polls the status (raw socket) until `cond` holds; returns that status.
fn wait_status(d: &Dinit, sock: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(LONG, || match ask(sock, STATUS) {
        Some(v) if v["ok"] == true => {
            let c = cond(&v);
            last = v;
            c
        }
        _ => false,
    });
    assert!(
        ok,
        "timed out waiting for {what}\nlast status: {last}\n{}",
        d.dump()
    );
    last
}

fn wait_running(d: &Dinit, sock: &str, names: &[&str]) -> Value {
    wait_status(d, sock, &format!("{names:?} running"), |st| {
        names.iter().all(|n| state(st, n) == "running")
    })
}

/// A long-running service whose TERM trap waits while `$S/<tag>.hold` exists (a shutdown or a
/// `down` as slow as the test wants, without timing guesses), then exits 0.
fn held(d: &TestDir, tag: &str) -> String {
    d.sh(&format!(
        "trap 'while [ -e \"$S/{tag}.hold\" ]; do sleep 0.05; done; echo {tag}-term >> \"$S/events\"; exit 0' TERM\n\
         echo started > \"$S/{tag}.started\"\n\
         while :; do sleep 0.05; done"
    ))
}

/// A status line with every `<digits>s` seconds field replaced by `Ns`: `run: a: (pid 12) Ns`.
fn norm(line: &str) -> String {
    let c: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_ascii_digit() && i > 0 && c[i - 1] == ' ' {
            let mut j = i;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            if j < c.len() && c[j] == 's' && (j + 1 == c.len() || matches!(c[j + 1], ',' | ';')) {
                out.push('N');
                i = j;
                continue;
            }
            out.extend(&c[i..j]);
            i = j;
            continue;
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Checks the shape of a `status --json` object against contract §11; returns the names.
fn validate_status(v: &Value) -> Vec<String> {
    let dn = &v["dinit"];
    assert!(dn["pid"].as_u64().is_some(), "dinit.pid: {v}");
    assert!(
        matches!(dn["state"].as_str(), Some("running" | "stopping")),
        "dinit.state: {v}"
    );
    assert!(
        dn["uptime_s"].as_f64().is_some_and(|u| u >= 0.0),
        "dinit.uptime_s: {v}"
    );
    let services = v["services"].as_array().expect("services is a list");
    let mut names = Vec::new();
    for s in services {
        let name = s["name"].as_str().unwrap_or_else(|| panic!("name: {s}"));
        names.push(name.to_string());
        let st = s["state"].as_str().unwrap_or_else(|| panic!("state: {s}"));
        assert!(
            matches!(st, "running" | "finishing" | "stopping" | "down"),
            "state: {s}"
        );
        if st == "down" {
            assert!(s["pid"].is_null(), "a down service has a pid: {s}");
        } else {
            assert!(s["pid"].as_u64().is_some_and(|p| p > 0), "pid: {s}");
        }
        assert!(
            s["since"].as_str().is_some_and(is_timestamp),
            "since is not RFC 3339 with ms: {s}"
        );
        assert!(s["down_file"].is_boolean(), "down_file: {s}");
        match &s["exit"] {
            Value::Null => {}
            Value::Object(m) => assert!(
                m.len() == 1
                    && (m.get("code").is_some_and(Value::is_i64)
                        || m.get("signal").is_some_and(Value::is_u64)),
                "exit: {s}"
            ),
            _ => panic!("exit: {s}"),
        }
        match &s["log"] {
            Value::Null => {}
            Value::Object(m) => {
                assert!(m.get("state").is_some_and(Value::is_string), "log: {s}");
                assert!(
                    m.get("pid").is_some_and(|p| p.is_null() || p.is_u64()),
                    "log: {s}"
                );
            }
            _ => panic!("log: {s}"),
        }
        for k in ["lines", "bytes"] {
            for stream in ["stdout", "stderr"] {
                assert!(s[k][stream].as_u64().is_some(), "{k}.{stream}: {s}");
            }
        }
    }
    for o in v["orphans"].as_array().expect("orphans is a list") {
        let pid = o["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("orphan pid: {o}"));
        assert!(
            o["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(&format!("/{pid}"))),
            "orphan name: {o}"
        );
        assert!(o["policy"].is_string(), "orphan policy: {o}");
    }
    names
}

fn is_socket(p: &str) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// `VmRSS` and `VmHWM` of a process, in kB.
fn mem_kb(pid: i32) -> (u64, u64) {
    let kb = |f: &str| {
        proc_status_field(pid, f)
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or_else(|| panic!("no {f} for {pid}"))
    };
    (kb("VmRSS"), kb("VmHWM"))
}

fn json_msgs(dn: &Dinit, service: &str) -> Vec<String> {
    dn.json()
        .into_iter()
        .filter(|j| j.service() == service && j.stage() == "run")
        .filter_map(|j| j.msg().map(str::to_string))
        .collect()
}

fn count_own(dn: &Dinit, text: &str) -> usize {
    dn.own().iter().filter(|o| o.text == text).count()
}

// ---------------------------------------------------------------------------------------------
// 1. every command and option

/// Expect (as PID 1 and as subreaper): `status` lines in runit's shapes, `status --json` with
/// the contract's fields and values (line/byte counts, exit, logger, adopted orphan),
/// `status SERVICE`, `check`, `signal` by name/SIGNAME/number (the trap prints), `up`/`down`/
/// `restart` with and without `-w` (success and timeout), usage errors (2), unknown services,
/// not-running and unreachable (1), `shutdown` (0, dinit exits 0, socket file removed), one
/// info line per accepted change.
fn every_command(pid1: bool) {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("a").run(&d.long_running(
        "a",
        "trap 'echo a-got-HUP' HUP\ntrap 'echo a-got-USR1' USR1\ntrap 'echo a-got-USR2' USR2\n\
         echo hello; echo hello; echo hello\necho oops >&2; echo oops >&2",
    ));
    d.svc("b")
        .run(&d.long_running("b", "echo b-line; echo b-line"))
        .log_run("#!/bin/sh\nwhile IFS= read -r l; do echo \"log: $l\"; done\n");
    d.svc("c").run(&d.long_running("c", "")).down();
    d.svc("dis").run("#!/bin/sh\nexit 115\n");
    d.svc("orph").run(&d.long_running("orph", "(sleep 1000 &)"));
    d.svc("slow").run(&held(&d, "slow"));
    let mut l = launch(&d).info().env("DINIT_REPARENTING_POLICY", "adopt");
    if !pid1 {
        l = l.not_pid1();
    }
    let mut dn = l.spawn();
    // The traps are set once the started markers exist.
    for m in ["a.started", "b.started", "orph.started", "slow.started"] {
        d.wait_file(m, LONG);
    }

    let st = wait_status(&dn, &s, "services up, counts in, orphan adopted", |st| {
        ["a", "b", "orph", "slow"]
            .iter()
            .all(|n| state(st, n) == "running")
            && svc(st, "b")["log"]["state"] == "running"
            && state(st, "dis") == "down"
            && svc(st, "a")["lines"]["stdout"] == 3
            && svc(st, "a")["lines"]["stderr"] == 2
            && svc(st, "b")["lines"]["stdout"] == 2
            && !st["orphans"].as_array().unwrap().is_empty()
    });
    let (pa, pb, pl, po, ps) = (
        pid_of(&st, "a"),
        pid_of(&st, "b"),
        log_pid(&st, "b"),
        pid_of(&st, "orph"),
        pid_of(&st, "slow"),
    );
    assert!(
        dn.host_pid(pa as i32).is_some(),
        "status pid {pa} of a is no process"
    );

    // The socket file: a socket, mode 0666.
    let m = fs::symlink_metadata(&s).expect("no socket file");
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o777, 0o666, "socket mode");

    // status --json
    let out = ctl(&s, &["status", "--json"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "one object on one line: {out:?}"
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    assert!(
        v.get("ok").is_none(),
        "--json prints the status object, without ok: {v}"
    );
    assert_eq!(
        validate_status(&v),
        ["a", "b", "c", "dis", "orph", "slow"],
        "all services, sorted: {v}"
    );
    let dinit_ns_pid = if pid1 { 1 } else { ns_pid(dn.pid).unwrap() };
    assert_eq!(v["dinit"]["pid"], dinit_ns_pid, "{v}");
    assert_eq!(v["dinit"]["state"], "running");
    assert!(v["dinit"]["uptime_s"].as_f64().unwrap() < 600.0);
    let a = svc(&v, "a");
    assert_eq!(a["state"], "running");
    assert_eq!(a["pid"], pa);
    assert_eq!(a["down_file"], false);
    assert_eq!(a["exit"], Value::Null);
    assert_eq!(a["log"], Value::Null);
    assert_eq!(
        a["lines"],
        serde_json::json!({"stdout": 3, "stderr": 2}),
        "{a}"
    );
    assert_eq!(
        a["bytes"],
        serde_json::json!({"stdout": 18, "stderr": 10}),
        "{a}"
    );
    let b = svc(&v, "b");
    assert_eq!(b["log"]["state"], "running");
    assert_eq!(b["log"]["pid"], pl);
    // b's stdout goes to its logger: what is counted is the logger's output ("log: b-line").
    assert_eq!(b["lines"]["stdout"], 2, "{b}");
    assert_eq!(b["bytes"]["stdout"], 24, "{b}");
    let c = svc(&v, "c");
    assert_eq!(c["state"], "down", "{c}");
    assert!(c["pid"].is_null(), "{c}");
    assert_eq!(c["down_file"], true, "{c}");
    let dis = svc(&v, "dis");
    assert_eq!(dis["state"], "down");
    assert_eq!(dis["exit"], serde_json::json!({"code": 115}), "{dis}");
    assert_eq!(dis["down_file"], false);
    let orphans = v["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{v}");
    let o = &orphans[0];
    let opid = o["pid"].as_i64().unwrap();
    // `<comm>/<pid>`: usually `sleep/…`, but a loaded machine may let dinit find it between
    // the subshell's fork and its exec, when its comm is still the script's.
    let oname = o["name"].as_str().unwrap();
    assert!(
        oname
            .strip_suffix(&format!("/{opid}"))
            .is_some_and(|c| !c.is_empty() && !c.contains('/')),
        "{o}"
    );
    assert_eq!(o["policy"], "adopt", "{o}");
    assert_ne!(opid, po);

    // status: runit's lines
    let out = ctl(&s, &["status"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let got: Vec<String> = out.stdout.lines().map(norm).collect();
    assert_eq!(
        got,
        [
            format!("run: a: (pid {pa}) Ns"),
            format!("run: b: (pid {pb}) Ns; run: log: (pid {pl}) Ns"),
            "down: c: Ns".to_string(),
            "down: dis: Ns, normally up".to_string(),
            format!("run: orph: (pid {po}) Ns"),
            format!("run: slow: (pid {ps}) Ns"),
        ],
        "{}",
        out.stdout
    );

    // status SERVICE...
    let out = ctl(&s, &["status", "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("run: a: (pid {pa}) Ns")]
    );
    let out = ctl(&s, &["status", "--json", "c", "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    // Only the named, in the order given (as runit's `sv status c a`).
    assert_eq!(validate_status(&v), ["c", "a"], "{v}");
    let out = ctl(&s, &["status", "a", "nope"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(out.stderr, "unknown service: nope\n", "{out:?}");
    let out = ctl(&s, &["status", "--bogus"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.starts_with("usage: "), "{out:?}");

    // check: everything runs or is down on purpose (down file, 115)
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );

    // signal: by name, SIGNAME and number; the trap prints
    for (sig, msg) in [
        ("HUP", "a-got-HUP"),
        ("SIGUSR1", "a-got-USR1"),
        ("12", "a-got-USR2"),
    ] {
        let out = ctl(&s, &["signal", sig, "a"]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (0, ""),
            "signal {sig}: {out:?}"
        );
        let ok = wait_until(LONG, || json_msgs(&dn, "a").iter().any(|m| m == msg));
        assert!(
            ok,
            "a did not print {msg} after signal {sig}\n{}",
            dn.dump()
        );
    }
    assert_eq!(
        count_own(&dn, "a/run: signal requested by uid 0"),
        3,
        "{}",
        dn.dump()
    );
    let out = ctl(&s, &["signal", "HUP", "c"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "c: not running\n"),
        "{out:?}"
    );
    let out = ctl(&s, &["signal", "HUP", "nope"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "unknown service: nope\n"),
        "{out:?}"
    );
    for args in [
        &["signal", "NOPE", "a"][..],
        &["signal", "HUP"],
        &["signal"],
        &["signal", "99999", "a"],
    ] {
        let out = ctl(&s, args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains("usage: "), "{args:?}: {out:?}");
    }

    // up / down with -w: a down-file service comes up, then goes down again
    let out = ctl(&s, &["up", "-w", "10", "c"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    d.wait_file("c.started", LONG); // its TERM trap is set
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(
        state(&st, "c"),
        "running",
        "up -w returned before c runs: {st}"
    );
    let pc = pid_of(&st, "c");
    let out = ctl(&s, &["status", "c"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("run: c: (pid {pc}) Ns, normally down")],
        "{out:?}"
    );
    let out = ctl(&s, &["down", "-w", "10", "c"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(
        state(&st, "c"),
        "down",
        "down -w returned before c is down: {st}"
    );
    assert_eq!(
        svc(&st, "c")["exit"],
        serde_json::json!({"code": 0}),
        "{st}"
    );
    let out = ctl(&s, &["status", "c"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        ["down: c: Ns"]
    );
    // ... and without -w: the command returns at once, the change follows
    let out = ctl(&s, &["up", "c"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    wait_running(&dn, &s, &["c"]);
    let out = ctl(&s, &["down", "c"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    wait_status(&dn, &s, "c down", |st| state(st, "c") == "down");
    assert_eq!(
        count_own(&dn, "c/run: up requested by uid 0"),
        2,
        "{}",
        dn.dump()
    );
    assert_eq!(
        count_own(&dn, "c/run: down requested by uid 0"),
        2,
        "{}",
        dn.dump()
    );

    // restart with and without -w: a new process each time, a later `since`
    let before = ask(&s, STATUS).unwrap();
    let out = ctl(&s, &["restart", "-w", "10", "a"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(state(&st, "a"), "running", "{st}");
    let pa2 = pid_of(&st, "a");
    assert_ne!(pa2, pa, "restart -w returned before a new run");
    assert!(
        svc(&st, "a")["since"].as_str() > svc(&before, "a")["since"].as_str(),
        "since did not move: {st}"
    );
    let out = ctl(&s, &["restart", "a"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    wait_status(&dn, &s, "a restarted", |st| {
        state(st, "a") == "running" && pid_of(st, "a") != pa2
    });
    assert_eq!(
        count_own(&dn, "a/run: restart requested by uid 0"),
        2,
        "{}",
        dn.dump()
    );
    // up -w of a running service: nothing to do, done
    let out = ctl(&s, &["up", "-w", "10", "b"]);
    assert_eq!(out.code, 0, "{out:?}");

    // -w timeouts: slow's TERM trap waits while slow.hold exists
    d.touch("slow.hold");
    let out = ctl(&s, &["down", "-w", "0.3", "slow"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "slow: timeout\n"),
        "{out:?}"
    );
    assert!(out.took >= Duration::from_millis(300), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(state(&st, "slow"), "stopping", "{st}");
    let out = ctl(&s, &["status", "slow"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("run: slow: (pid {ps}) Ns, want down, got TERM")],
        "{out:?}"
    );
    // up while it is still on its way down: it comes back, but not within 0.3 s
    let out = ctl(&s, &["up", "-w", "0.3", "slow"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "slow: timeout\n"),
        "{out:?}"
    );
    fs::remove_file(d.s("slow.started")).unwrap();
    fs::remove_file(d.s("slow.hold")).unwrap();
    let st = wait_status(&dn, &s, "slow back", |st| {
        state(st, "slow") == "running" && pid_of(st, "slow") != ps
    });
    let ps2 = pid_of(&st, "slow");
    d.wait_file("slow.started", LONG); // its TERM trap is set
    d.touch("slow.hold");
    let out = ctl(&s, &["restart", "-w", "0.3", "slow"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "slow: timeout\n"),
        "{out:?}"
    );
    fs::remove_file(d.s("slow.hold")).unwrap();
    wait_status(&dn, &s, "slow restarted", |st| {
        state(st, "slow") == "running" && pid_of(st, "slow") != ps2
    });

    // usage errors (2) and unknown services (1): nothing changes
    for args in [
        &["up"][..],
        &["down", "-w"],
        &["down", "-w", "abc", "a"],
        &["restart", "-x", "a"],
        &["shutdown", "now"],
        &["check", "--json"],
    ] {
        let out = ctl(&s, args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("usage: "), "{args:?}: {out:?}");
    }
    for args in [
        &["up", "nope"][..],
        &["down", "-w", "5", "a", "nope"],
        &["restart", "nope"],
        &["check", "nope"],
    ] {
        let out = ctl(&s, args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("unknown service: nope"),
            "{args:?}: {out:?}"
        );
    }
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(state(&st, "a"), "running", "down a nope changed a: {st}");
    assert!(!dn.exited(), "{}", dn.dump());

    // shutdown: 0, dinit exits 0, the socket file is removed, the client then cannot reach it
    let out = ctl(&s, &["shutdown"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    assert!(
        dn.has_own("info", "shutdown requested by uid 0"),
        "{}",
        dn.dump()
    );
    assert!(!Path::new(&s).exists(), "socket file left behind");
    let out = ctl(&s, &["status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        format!("cannot reach dinit at {s}: no such file or directory\n")
    );
    assert!(dn.own_texts("error").is_empty(), "{}", dn.dump());
}

#[test]
fn every_command_pid1() {
    every_command(true);
}

#[test]
fn every_command_subreaper() {
    every_command(false);
}

// ---------------------------------------------------------------------------------------------
// 2. down, up, restart of one service; the container stays up

/// Expect: `down` / `up` / `restart` of `w` while `x` and `y` keep running (same pids) and dinit
/// stays up; w's logger keeps running throughout (same pid, it carries every run's output);
/// w's run exits 7 on TERM, yet after a final SIGTERM dinit exits 0 (a requested stop does not
/// count for the exit code); `check` is healthy while w is down on request.
fn down_up_restart(pid1: bool) {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("w")
        .run(&d.sh("trap 'exit 7' TERM\necho \"w-start $$\"\nwhile :; do sleep 0.05; done"))
        .log_run("#!/bin/sh\nwhile IFS= read -r l; do echo \"log: $l\"; done\n");
    d.svc("x").run(&d.long_running("x", ""));
    d.svc("y").run(&d.long_running("y", ""));
    let mut l = launch(&d).info();
    if !pid1 {
        l = l.not_pid1();
    }
    let mut dn = l.spawn();
    // w's TERM trap is set once its first line went through the logger.
    let ok = wait_until(LONG, || {
        json_msgs(&dn, "w")
            .iter()
            .any(|m| m.starts_with("log: w-start "))
    });
    assert!(ok, "{}", dn.dump());
    d.wait_file("x.started", LONG);
    d.wait_file("y.started", LONG);
    let st = wait_status(&dn, &s, "all up", |st| {
        ["w", "x", "y"].iter().all(|n| state(st, n) == "running")
            && svc(st, "w")["log"]["state"] == "running"
    });
    let (pw, px, py, plog) = (
        pid_of(&st, "w"),
        pid_of(&st, "x"),
        pid_of(&st, "y"),
        log_pid(&st, "w"),
    );
    let starts = |dn: &Dinit| {
        json_msgs(dn, "w")
            .into_iter()
            .filter(|m| m.starts_with("log: w-start "))
            .collect::<Vec<_>>()
    };
    let others_same = |st: &Value| {
        assert_eq!(
            (pid_of(st, "x"), pid_of(st, "y")),
            (px, py),
            "x or y restarted: {st}"
        );
        assert_eq!(state(st, "x"), "running");
        assert_eq!(state(st, "y"), "running");
        assert_eq!(
            svc(st, "w")["log"]["state"],
            "running",
            "logger stopped: {st}"
        );
        assert_eq!(log_pid(st, "w"), plog, "logger restarted: {st}");
    };

    let out = ctl(&s, &["down", "-w", "10", "w"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    let w = svc(&st, "w");
    assert_eq!(
        (w["state"].as_str(), w["pid"].is_null()),
        (Some("down"), true),
        "{st}"
    );
    assert_eq!(w["exit"], serde_json::json!({"code": 7}), "{st}");
    assert_eq!(w["down_reason"], "requested", "{st}");
    others_same(&st);
    let out = ctl(&s, &["status", "w"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!(
            "down: w: Ns, normally up; run: log: (pid {plog}) Ns"
        )],
        "{out:?}"
    );
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ""),
        "down on request is healthy: {out:?}"
    );
    assert!(
        !dn.exited(),
        "the container stopped after down\n{}",
        dn.dump()
    );

    let out = ctl(&s, &["up", "-w", "10", "w"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(state(&st, "w"), "running");
    let pw2 = pid_of(&st, "w");
    assert_ne!(pw2, pw);
    others_same(&st);
    // Its TERM trap is set once its line went through the logger.
    let ok = wait_until(LONG, || starts(&dn).len() == 2);
    assert!(
        ok,
        "w-start lines via the logger: {:?}\n{}",
        starts(&dn),
        dn.dump()
    );

    let out = ctl(&s, &["restart", "-w", "10", "w"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(state(&st, "w"), "running");
    let pw3 = pid_of(&st, "w");
    assert!(
        pw3 != pw2 && pw3 != pw,
        "restart did not start a new run: {st}"
    );
    others_same(&st);

    // Every run's output went through the one logger.
    let ok = wait_until(LONG, || starts(&dn).len() == 3);
    assert!(
        ok,
        "w-start lines via the logger: {:?}\n{}",
        starts(&dn),
        dn.dump()
    );
    assert_eq!(
        starts(&dn),
        [pw, pw2, pw3].map(|p| format!("log: w-start {p}")),
        "{}",
        dn.dump()
    );
    for cmd in ["down", "up", "restart"] {
        assert_eq!(
            count_own(&dn, &format!("w/run: {cmd} requested by uid 0")),
            1,
            "{}",
            dn.dump()
        );
    }
    assert!(!dn.exited(), "{}", dn.dump());
    assert!(
        dn.json()
            .iter()
            .all(|j| j.service() != "x" && j.service() != "y")
    );

    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

#[test]
fn down_up_restart_pid1() {
    down_up_restart(true);
}

#[test]
fn down_up_restart_subreaper() {
    down_up_restart(false);
}

// ---------------------------------------------------------------------------------------------
// 3. check

/// Expect: healthy → exit 0, no output (115 and `dinit down` are on purpose); the check script
/// runs with cwd = the service dir and DINIT_PID = its run's pid; a failing script →
/// `web: check exited 3`; a hanging one → `web: check timed out after <n> s` promptly, the
/// script killed; a service gone (its finish still running, no shutdown yet) →
/// `gone: not running` and `finish: gone: (pid N) Ns` in status; during a slow shutdown →
/// `dinit: stopping`, and changes are refused (`dinit is stopping`).
#[test]
fn check_health() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("web").run(&d.long_running("web", "")).file(
        "check",
        d.sh("echo \"$DINIT_PID $(pwd -P)\" > \"$S/check.env\"\n\
             [ -e \"$S/web.fail\" ] && exit 3\n\
             if [ -e \"$S/web.hang\" ]; then echo $$ > \"$S/check.pid\"; exec sleep 60; fi\n\
             exit 0"),
        0o755,
    );
    d.svc("dis").run("#!/bin/sh\nexit 115\n");
    d.svc("downed").run(&d.long_running("downed", ""));
    d.svc("gone")
        .run(
            &d.sh("trap 'exit 0' TERM\nwhile [ ! -e \"$S/gone.go\" ]; do sleep 0.02; done\nexit 1"),
        )
        .finish(&d.sh("while [ ! -e \"$S/finish.go\" ]; do sleep 0.02; done\nexit 0"));
    d.svc("slow").run(&held(&d, "slow"));
    d.touch("slow.hold");
    let mut dn = launch(&d).info().spawn();
    for m in ["web.started", "downed.started", "slow.started"] {
        d.wait_file(m, LONG);
    }
    let st = wait_running(&dn, &s, &["web", "downed", "gone", "slow"]);
    let pweb = pid_of(&st, "web");
    wait_status(&dn, &s, "dis disabled", |st| {
        svc(st, "dis")["exit"]["code"] == 115
    });
    let out = ctl(&s, &["down", "-w", "10", "downed"]);
    assert_eq!(out.code, 0, "{out:?}");

    // healthy
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );
    let env = d.read("check.env");
    let web_dir = fs::canonicalize(d.dir().join("web")).unwrap();
    assert_eq!(
        env,
        format!("{pweb} {}\n", web_dir.display()),
        "DINIT_PID and cwd of check"
    );
    let out = ctl(&s, &["check", "web", "dis", "downed"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");

    // a failing check script
    d.touch("web.fail");
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, "web: check exited 3\n"),
        "{out:?}"
    );
    let out = ctl(&s, &["check", "downed"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ""),
        "only the named: {out:?}"
    );
    fs::remove_file(d.s("web.fail")).unwrap();

    // a hanging check script: timed out after DINIT_CHECK_TIMEOUT, promptly, killed
    d.touch("web.hang");
    for (t, max) in [("1", 6), ("0.5", 5)] {
        let _ = fs::remove_file(d.s("check.pid"));
        let out = ctl_env(&s, &[("DINIT_CHECK_TIMEOUT", t)], &["check"]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (1, format!("web: check timed out after {t} s\n").as_str()),
            "{out:?}"
        );
        assert!(
            out.took < Duration::from_secs(max),
            "check took {:?}",
            out.took
        );
        let cpid = d.read("check.pid").trim().to_string();
        assert!(!cpid.is_empty());
        let gone = wait_until(MEDIUM, || !Path::new(&format!("/proc/{cpid}")).exists());
        assert!(gone, "the timed-out check script {cpid} is still alive");
    }
    let out = ctl_env(&s, &[("DINIT_CHECK_TIMEOUT", "soon")], &["check"]);
    assert_eq!(out.code, 1, "invalid DINIT_CHECK_TIMEOUT: {out:?}");
    assert!(out.stderr.contains("DINIT_CHECK_TIMEOUT"), "{out:?}");
    fs::remove_file(d.s("web.hang")).unwrap();
    let out = ctl(&s, &["check"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");

    // a service gone: its run exited 1, its finish runs; no shutdown until finish ends
    d.touch("gone.go");
    let st = wait_status(&dn, &s, "gone finishing", |st| {
        state(st, "gone") == "finishing"
    });
    let pfin = pid_of(&st, "gone");
    assert_eq!(st["dinit"]["state"], "running");
    let out = ctl(&s, &["status", "gone"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("finish: gone: (pid {pfin}) Ns")],
        "{out:?}"
    );
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, "gone: not running\n"),
        "{out:?}"
    );
    let out = ctl(&s, &["check", "web"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");

    // finish ends: the shutdown begins; slow holds it
    d.touch("finish.go");
    let st = wait_status(&dn, &s, "stopping", |st| st["dinit"]["state"] == "stopping");
    assert_eq!(state(&st, "slow"), "stopping", "{st}");
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, "dinit: stopping\n"),
        "{out:?}"
    );
    let out = ctl(&s, &["check", "web"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, "dinit: stopping\n"),
        "{out:?}"
    );
    let out = ctl(&s, &["up", "downed"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "dinit is stopping\n"),
        "{out:?}"
    );
    assert!(!dn.exited());

    fs::remove_file(d.s("slow.hold")).unwrap();
    // gone exited 1: exit code 3, the first recorded
    assert_eq!(dn.wait_exit(LONG), 3, "{}", dn.dump());
    assert!(
        !dn.own_contains("downed/run: up requested"),
        "{}",
        dn.dump()
    );
    assert!(!Path::new(&s).exists(), "socket file left behind");
}

// ---------------------------------------------------------------------------------------------
// 4. access

/// Expect: uid 65534 may `status` and `check` (socket mode 0666), but `down`, `up`, `restart`,
/// `signal` and `shutdown` are refused with `permission denied` (exit 1) and nothing changes:
/// same pids, no `requested by` lines, dinit runs on.
#[test]
fn non_root_may_look_but_not_touch() {
    let d = TestDir::new();
    let s = sock(&d);
    fs::set_permissions(d.root(), fs::Permissions::from_mode(0o755)).unwrap();
    d.svc("a").run(&d.long_running("a", ""));
    d.svc("b").run(&d.long_running("b", "")).down();
    let mut dn = launch(&d).info().spawn();
    let st = wait_running(&dn, &s, &["a"]);
    let pa = pid_of(&st, "a");
    let mode = fs::metadata(&s).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);

    // The client really runs as 65534.
    let mut id = Command::new("setpriv");
    id.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "id",
        "-u",
    ]);
    let out = run_cmd(&mut id, MEDIUM);
    assert_eq!(
        out.stdout.trim(),
        "65534",
        "setpriv does not work here: {out:?}"
    );

    let out = ctl_nobody(&s, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("run: a: (pid {pa}) Ns"), "down: b: Ns".to_string()],
        "{out:?}"
    );
    let out = ctl_nobody(&s, &["status", "--json", "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    validate_status(&serde_json::from_str(&out.stdout).unwrap());
    let out = ctl_nobody(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );

    for args in [
        &["down", "a"][..],
        &["down", "-w", "2", "a"],
        &["up", "b"],
        &["restart", "a"],
        &["signal", "HUP", "a"],
        &["shutdown"],
    ] {
        let out = ctl_nobody(&s, args);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (1, "permission denied\n"),
            "{args:?}: {out:?}"
        );
    }
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(
        (state(&st, "a"), pid_of(&st, "a")),
        ("running".to_string(), pa),
        "{st}"
    );
    assert_eq!(state(&st, "b"), "down", "{st}");
    assert!(!dn.own_contains("requested by"), "{}", dn.dump());
    assert!(!dn.exited(), "{}", dn.dump());

    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

// ---------------------------------------------------------------------------------------------
// 5. refused while stopping

/// Expect: after `dinit shutdown` (slow: a TERM trap holds it), every command that changes
/// something is refused with `dinit is stopping` (exit 1), nothing changes; `status` still
/// answers (`dinit.state` `stopping`, `want down, got TERM`); one `shutdown requested` line;
/// exit 0.
#[test]
fn changes_refused_while_stopping() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("a").run(&d.long_running("a", ""));
    d.svc("b").run(&d.long_running("b", "")).down();
    d.svc("slow").run(&held(&d, "slow"));
    d.touch("slow.hold");
    let mut dn = launch(&d).info().spawn();
    d.wait_file("a.started", LONG);
    d.wait_file("slow.started", LONG);
    let st = wait_running(&dn, &s, &["a", "slow"]);
    let ps = pid_of(&st, "slow");

    let out = ctl(&s, &["shutdown"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    wait_status(&dn, &s, "stopping", |st| {
        st["dinit"]["state"] == "stopping" && state(st, "a") == "down"
    });
    for args in [
        &["down", "slow"][..],
        &["down", "-w", "5", "slow"],
        &["up", "b"],
        &["up", "-w", "5", "a"],
        &["restart", "slow"],
        &["signal", "HUP", "slow"],
        &["shutdown"],
    ] {
        let out = ctl(&s, args);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (1, "dinit is stopping\n"),
            "{args:?}: {out:?}"
        );
    }
    let out = ctl(&s, &["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let st: Value = serde_json::from_str(&out.stdout).unwrap();
    validate_status(&st);
    assert_eq!(st["dinit"]["state"], "stopping");
    assert_eq!(
        (state(&st, "slow"), pid_of(&st, "slow")),
        ("stopping".to_string(), ps)
    );
    assert_eq!(state(&st, "b"), "down");
    let out = ctl(&s, &["status", "slow"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("run: slow: (pid {ps}) Ns, want down, got TERM")],
        "{out:?}"
    );
    assert_eq!(
        count_own(&dn, "shutdown requested by uid 0"),
        1,
        "{}",
        dn.dump()
    );
    assert!(!dn.own_contains("run: up requested") && !dn.own_contains("run: down requested"));

    fs::remove_file(d.s("slow.hold")).unwrap();
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    assert!(!d.exists("b.started"), "b was started while stopping");
}

// ---------------------------------------------------------------------------------------------
// 6. where the socket is

/// Expect: `DINIT_CONTROL_SOCKET=none`: no socket, no warning, dinit runs; the client says
/// `cannot reach dinit at none: …` and exits 1.
#[test]
fn socket_none() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running("a", ""));
    let mut dn = launch(&d).env("DINIT_CONTROL_SOCKET", "none").spawn();
    d.wait_file("a.started", LONG);
    for args in [&["status"][..], &["check"], &["down", "a"], &["shutdown"]] {
        let out = ctl("none", args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("cannot reach dinit at none: "),
            "{args:?}: {out:?}"
        );
    }
    assert!(!d.root().join("control.sock").exists());
    assert!(!d.root().join("none").exists());
    assert!(dn.own_texts("warning").is_empty(), "{}", dn.dump());
    assert!(!dn.exited());
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

/// Expect: an abstract socket `@name` works for every command, leaves no file; after exit the
/// client gets `cannot reach dinit at @name: connection refused`.
#[test]
fn socket_abstract() {
    let d = TestDir::new();
    let name = abstract_name();
    d.svc("a").run(&d.long_running("a", ""));
    d.svc("b").run(&d.long_running("b", ""));
    let mut dn = launch(&d).env("DINIT_CONTROL_SOCKET", &name).spawn();
    let st = wait_running(&dn, &name, &["a", "b"]);
    let out = ctl(&name, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");
    let out = ctl(&name, &["down", "-w", "10", "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = ctl(&name, &["up", "-w", "10", "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    let st2 = ask(&name, STATUS).unwrap();
    assert_ne!(pid_of(&st, "a"), pid_of(&st2, "a"));
    let mut files: Vec<String> = fs::read_dir(d.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["scratch", "service"],
        "an abstract socket made a file"
    );
    let out = ctl(&name, &["shutdown"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    let out = ctl(&name, &["status"]);
    assert_eq!(
        (out.code, out.stderr),
        (
            1,
            format!("cannot reach dinit at {name}: connection refused\n")
        )
    );
}

/// Expect: a socket path that cannot be set up (on a read-only tmpfs in dinit's private mount
/// namespace: the missing folder cannot be made, or the socket cannot be bound; a path taken by
/// a regular file) → one warning naming the path and the OS error; dinit runs on without a
/// socket and exits 0 on SIGTERM; the regular file is left as it was.
#[test]
fn socket_cannot_be_set_up() {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running("a", ""));
    let ro = d.root().join("ro");
    fs::create_dir(&ro).unwrap();
    let ro_s = ro.display().to_string();
    let taken = d.root().join("taken.sock").display().to_string();
    fs::write(&taken, "not a socket\n").unwrap();
    let cases = [
        (format!("{ro_s}/sub/control.sock"), "read-only file system"),
        (format!("{ro_s}/control.sock"), "read-only file system"),
        (taken.clone(), "file exists"),
    ];
    for (path, err) in &cases {
        let _ = fs::remove_file(d.s("a.started"));
        let mut dn = launch(&d)
            .env("DINIT_CONTROL_SOCKET", path)
            .setup(&format!("mount -t tmpfs -o ro tmpfs '{ro_s}' || exit 99"))
            .spawn();
        d.wait_file("a.started", LONG);
        let w = dn.wait_stderr_contains("control socket", MEDIUM);
        let warnings: Vec<String> = dn
            .own_texts("warning")
            .into_iter()
            .filter(|t| t.contains("control socket"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", dn.dump());
        assert!(
            warnings[0].starts_with(&format!("control socket {path}: "))
                && warnings[0].ends_with(err),
            "warning for {path}: {w}"
        );
        let out = ctl(path, &["status"]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("cannot reach dinit at {path}: ")),
            "{out:?}"
        );
        assert!(!dn.exited(), "{}", dn.dump());
        dn.signal(libc::SIGTERM);
        assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    }
    assert_eq!(fs::read_to_string(&taken).unwrap(), "not a socket\n");
}

/// Expect: a socket file left by an earlier run (nobody listens) is replaced without a warning
/// and works; removed at exit.
#[test]
fn socket_stale_file_replaced() {
    let d = TestDir::new();
    let s = sock(&d);
    drop(std::os::unix::net::UnixListener::bind(&s).unwrap());
    assert!(is_socket(&s));
    assert_eq!(
        UnixStream::connect(&s).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    d.svc("a").run(&d.long_running("a", ""));
    let mut dn = launch(&d).spawn();
    wait_running(&dn, &s, &["a"]);
    let out = ctl(&s, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("run: a: "), "{out:?}");
    assert!(dn.own_texts("warning").is_empty(), "{}", dn.dump());
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    assert!(!Path::new(&s).exists(), "socket file left behind");
}

/// Expect: a second dinit given the socket of a running one leaves it alone (one warning
/// naming the path once and the operation, `bind: address already in use`), runs on; the socket keeps answering for the first, also
/// after the second exits (it does not remove what is not its own).
#[test]
fn socket_of_a_live_dinit_left_alone() {
    let d1 = TestDir::new();
    let d2 = TestDir::new();
    let s = sock(&d1);
    d1.svc("one").run(&d1.long_running("one", ""));
    d2.svc("two").run(&d2.long_running("two", ""));
    let mut dn1 = launch(&d1).spawn();
    wait_running(&dn1, &s, &["one"]);
    let mut dn2 = launch(&d2).env("DINIT_CONTROL_SOCKET", &s).spawn();
    d2.wait_file("two.started", LONG);
    let w = dn2.wait_stderr_contains("control socket", MEDIUM);
    assert!(
        w.contains(&format!("dinit: warning: control socket {s}: ")) && w.contains("in use"),
        "{w}"
    );
    // The operation and the path once, in the error grammar (issue 19).
    assert!(
        w.ends_with(&format!(
            "dinit: warning: control socket {s}: bind: address already in use"
        )),
        "{w}"
    );
    let names = |st: &Value| validate_status(st);
    assert_eq!(names(&ask(&s, STATUS).unwrap()), ["one"]);
    dn2.signal(libc::SIGTERM);
    assert_eq!(dn2.wait_exit(LONG), 0, "{}", dn2.dump());
    assert!(
        is_socket(&s),
        "the second dinit removed the first one's socket"
    );
    let out = ctl(&s, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("run: one: "), "{out:?}");
    assert!(!dn1.exited());
    dn1.signal(libc::SIGTERM);
    assert_eq!(dn1.wait_exit(LONG), 0, "{}", dn1.dump());
    assert!(!Path::new(&s).exists());
}

// ---------------------------------------------------------------------------------------------
// 7. bad input on the socket

/// Reads until EOF (or an error, or `limit`); what came and how it ended.
fn read_to_end(s: &mut UnixStream, limit: Duration) -> (Vec<u8>, Result<(), ErrorKind>) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return (got, Err(e.kind())),
        }
    }
}

/// The response lines of `bytes`, parsed.
fn responses(bytes: &[u8]) -> Vec<Value> {
    split_lines(bytes)
        .iter()
        .map(|l| {
            serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!("response is not JSON ({e}): {}", String::from_utf8_lossy(l))
            })
        })
        .collect()
}

/// Expect: garbage, wrong JSON types, unknown commands and services each get an error response
/// naming the problem on a connection that stays usable, and change nothing; a 1 MiB line
/// without newline gets `request too long` or a disconnect, and dinit's memory stays bounded
/// (16 at once: VmHWM grows < 8 MiB); a half request then silence, and a silent connection,
/// are closed after ~5 s; of 200 connections at once at most 32 are served, the others get
/// `too many connections`; a client that never reads its responses is disconnected; a fresh
/// `status` answers after all that; a service logging all along loses no line; dinit exits 0.
#[test]
fn bad_input_on_the_socket() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("seq").run(
        &d.sh("i=0\ntrap 'echo \"last $i\"; exit 0' TERM\n\
         while :; do i=$((i+1)); echo \"$i\"; if [ $((i % 20)) -eq 0 ]; then sleep 0.02; fi; done"),
    );
    d.svc("other").run(&d.long_running("other", ""));
    let mut dn = launch(&d).spawn();
    let st = wait_running(&dn, &s, &["seq", "other"]);
    let (pseq, pother) = (pid_of(&st, "seq"), pid_of(&st, "other"));
    let unchanged = |what: &str| {
        let st = ask(&s, STATUS).unwrap_or_else(|| panic!("no status after {what}\n{}", dn.dump()));
        assert_eq!(
            (pid_of(&st, "seq"), pid_of(&st, "other")),
            (pseq, pother),
            "{what} changed something: {st}"
        );
        assert_eq!(st["dinit"]["state"], "running", "{what}: {st}");
    };

    // Idle connections, in the background (~5 s): a half request, and nothing at all.
    let s2 = s.clone();
    let idle = std::thread::spawn(move || {
        let mut half = connect(&s2).unwrap();
        let mut silent = connect(&s2).unwrap();
        half.write_all(br#"{"cmd":"sta"#).unwrap();
        let t0 = Instant::now();
        let (b1, r1) = read_to_end(&mut half, Duration::from_secs(30));
        let e1 = t0.elapsed();
        let (b2, r2) = read_to_end(&mut silent, Duration::from_secs(30));
        let e2 = t0.elapsed();
        ((b1, r1, e1), (b2, r2, e2))
    });

    // Garbage and wrong types, one connection: an error each, the connection stays usable.
    let c = connect(&s).unwrap();
    c.set_read_timeout(Some(MEDIUM)).unwrap();
    let mut rd = BufReader::new(c.try_clone().unwrap());
    let mut req = |line: &[u8]| -> Value {
        (&c).write_all(line).unwrap();
        (&c).write_all(b"\n").unwrap();
        let mut l = Vec::new();
        rd.read_until(b'\n', &mut l).unwrap();
        serde_json::from_slice(&l).unwrap_or_else(|e| {
            panic!(
                "response to {:?} is not JSON ({e}): {:?}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&l)
            )
        })
    };
    let cases: &[(&[u8], &str)] = &[
        (b"garbage", "invalid request"),
        (b"\x00\xff\xfe\x01 \x7f", "invalid request"),
        (b"{\"cmd\":\"status\"", "invalid request"),
        (b"[1]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"\"status\"", "not a JSON object"),
        (b"42", "not a JSON object"),
        (b"{}", "no cmd"),
        (b"{\"cmd\":1}", "cmd must be a string"),
        (b"{\"cmd\":null}", "cmd must be a string"),
        (b"{\"cmd\":\"fly\"}", "unknown command: fly"),
        (b"{\"cmd\":\"STATUS\"}", "unknown command: STATUS"),
        (
            b"{\"cmd\":\"status\",\"services\":[\"nope\"]}",
            "unknown service: nope",
        ),
        (
            b"{\"cmd\":\"status\",\"services\":{\"seq\":1}}",
            "services must be a list",
        ),
        (
            b"{\"cmd\":\"down\",\"services\":[\"nope\"]}",
            "unknown service: nope",
        ),
        (
            b"{\"cmd\":\"down\",\"services\":[\"seq\",\"nope\"]}",
            "unknown service: nope",
        ),
        (
            b"{\"cmd\":\"restart\",\"services\":[\"other\",\"\"]}",
            "unknown service: ",
        ),
        (
            b"{\"cmd\":\"down\",\"services\":\"seq\"}",
            "services must be a list",
        ),
        (
            b"{\"cmd\":\"down\",\"services\":[1]}",
            "services must be strings",
        ),
        (
            b"{\"cmd\":\"down\",\"services\":[[\"seq\"]]}",
            "services must be strings",
        ),
        (b"{\"cmd\":\"down\"}", "down needs services"),
        (b"{\"cmd\":\"up\",\"services\":[]}", "up needs services"),
        (
            b"{\"cmd\":\"signal\",\"signal\":[1],\"services\":[\"seq\"]}",
            "signal must be",
        ),
        (
            b"{\"cmd\":\"signal\",\"signal\":\"NOPE\",\"services\":[\"seq\"]}",
            "unknown signal: NOPE",
        ),
        (
            b"{\"cmd\":\"signal\",\"signal\":999,\"services\":[\"seq\"]}",
            "unknown signal: 999",
        ),
        (
            b"{\"cmd\":\"signal\",\"signal\":-9,\"services\":[\"seq\"]}",
            "unknown signal",
        ),
        (
            b"{\"cmd\":\"signal\",\"signal\":1.5,\"services\":[\"seq\"]}",
            "unknown signal",
        ),
        (b"{\"cmd\":\"signal\",\"services\":[\"seq\"]}", "signal"),
        (
            b"{\"cmd\":\"signal\",\"signal\":\"KILL\",\"services\":[\"seq\",\"nope\"]}",
            "unknown service: nope",
        ),
    ];
    for (line, want) in cases {
        let v = req(line);
        assert_eq!(v["ok"], false, "{:?} -> {v}", String::from_utf8_lossy(line));
        let e = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string: {v}"));
        assert!(
            e.contains(want),
            "{:?} -> {e:?}, want {want:?}",
            String::from_utf8_lossy(line)
        );
    }
    let v = req(STATUS.as_bytes());
    assert_eq!(v["ok"], true, "the connection is still usable: {v}");
    validate_status(&v);
    drop(rd);
    drop(c);
    unchanged("bad requests");

    // 1 MiB lines without newline, 16 at once: bounded memory.
    let (rss0, hwm0) = mem_kb(dn.pid);
    // (connection, how the write ended, what came back, how the read ended)
    type BigLine = (
        UnixStream,
        Option<ErrorKind>,
        Vec<u8>,
        Result<(), ErrorKind>,
    );
    let big: Vec<std::thread::JoinHandle<BigLine>> = (0..16)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut c = connect(&s).unwrap();
                c.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
                let w = c.write_all(&vec![b'x'; 1 << 20]).err().map(|e| e.kind());
                let (got, how) = read_to_end(&mut c, Duration::from_secs(15));
                (c, w, got, how)
            })
        })
        .collect();
    let big: Vec<_> = big.into_iter().map(|t| t.join().unwrap()).collect();
    let (rss1, hwm1) = mem_kb(dn.pid); // the connections are still open on our side
    let mut answered = 0;
    for (_, w, got, how) in &big {
        let r = responses(got);
        if let Some(v) = r.first() {
            assert_eq!(v["ok"], false, "{v}");
            assert!(v["error"].as_str().unwrap().contains("too long"), "{v}");
            answered += 1;
        }
        assert!(
            how.is_ok() || *how == Err(ErrorKind::ConnectionReset),
            "a 1 MiB line: not disconnected (write: {w:?}, read: {how:?}, got {} bytes)",
            got.len()
        );
    }
    drop(big);
    eprintln!(
        "1 MiB lines: {answered}/16 got `request too long`; dinit VmRSS {rss0} -> {rss1} kB, VmHWM {hwm0} -> {hwm1} kB"
    );
    assert!(hwm1 < hwm0 + 8192, "VmHWM grew from {hwm0} to {hwm1} kB");
    assert!(rss1 < rss0 + 8192, "VmRSS grew from {rss0} to {rss1} kB");
    unchanged("1 MiB lines");

    // 200 connections at once: at most 32 served.
    let conns: Vec<UnixStream> = (0..200).map(|_| connect(&s).unwrap()).collect();
    for c in &conns {
        let _ = (&*c).write_all(b"{\"cmd\":\"status\"}\n");
    }
    let (mut served, mut refused, mut other) = (0, 0, Vec::new());
    for c in &conns {
        c.set_read_timeout(Some(MEDIUM)).unwrap();
        let mut l = Vec::new();
        let _ = BufReader::new(c).read_until(b'\n', &mut l);
        match serde_json::from_slice::<Value>(&l) {
            Ok(v) if v["ok"] == true => served += 1,
            Ok(v) if v["error"] == "too many connections" => refused += 1,
            _ => other.push(String::from_utf8_lossy(&l).into_owned()),
        }
    }
    eprintln!("200 connections: {served} served, {refused} refused");
    assert!(
        other.is_empty(),
        "answers neither served nor refused: {other:?}"
    );
    assert!(
        (1..=32).contains(&served),
        "{served} served, {refused} refused"
    );
    assert_eq!(served + refused, 200);
    drop(conns);
    let (rss2, _) = mem_kb(dn.pid);
    assert!(rss2 < rss0 + 8192, "VmRSS grew from {rss0} to {rss2} kB");

    // A client that sends many requests and never reads: disconnected. (First make sure the
    // flood's connections are gone, so that this one is served, not refused.)
    let ok = wait_until(LONG, || ask(&s, STATUS).is_some_and(|v| v["ok"] == true));
    assert!(ok, "no status after 200 connections\n{}", dn.dump());
    let mut c = connect(&s).unwrap();
    c.set_write_timeout(Some(MEDIUM)).unwrap();
    let batch = format!("{STATUS}\n").repeat(50);
    let t0 = Instant::now();
    let mut sent = 0usize;
    let err = loop {
        match c.write_all(batch.as_bytes()) {
            Ok(()) => sent += 50,
            Err(e) => break Some(e.kind()),
        }
        if t0.elapsed() > LONG {
            break None;
        }
    };
    eprintln!(
        "unread responses: disconnected after {sent} requests ({err:?}) in {:?}",
        t0.elapsed()
    );
    assert!(
        matches!(
            err,
            Some(ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
        ),
        "a client that does not read was not disconnected: {err:?} after {sent} requests"
    );
    // What was answered before the disconnect: status responses, not a refusal.
    let (got, _) = read_to_end(&mut c, MEDIUM);
    let first_line = got.split(|&b| b == b'\n').next().unwrap_or_default();
    let first: Value = serde_json::from_slice(first_line).unwrap_or_default();
    assert_eq!(
        first["ok"], true,
        "the unread client was not served: {first}"
    );
    eprintln!(
        "unread responses: {} bytes were waiting for the client",
        got.len()
    );
    drop(c);

    // dinit is unaffected: a fresh client status answers.
    let out = ctl(&s, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");
    unchanged("the floods");

    let ((b1, r1, e1), (b2, r2, e2)) = idle.join().unwrap();
    eprintln!("idle: half request closed after {e1:?}, silent after {e2:?}");
    for (b, r, e) in [(b1, r1, e1), (b2, r2, e2)] {
        assert!(
            r.is_ok() || r == Err(ErrorKind::ConnectionReset),
            "idle connection not closed: {r:?}"
        );
        assert!(
            b.is_empty(),
            "an idle connection got {:?}",
            String::from_utf8_lossy(&b)
        );
        assert!(
            e >= Duration::from_millis(4500) && e < Duration::from_secs(15),
            "idle connection closed after {e:?}, not ~5 s"
        );
    }

    // No line lost, dinit never crashed.
    assert!(!dn.exited(), "{}", dn.dump());
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    let msgs = json_msgs(&dn, "seq");
    let last = msgs.last().cloned().unwrap_or_default();
    let n: usize = last
        .strip_prefix("last ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("seq's last line is {last:?}"));
    let expect: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    assert_eq!(msgs.len(), n + 1, "seq lines lost or duplicated");
    if msgs[..n] != expect[..] {
        let i = (0..n).find(|&i| msgs[i] != expect[i]).unwrap();
        panic!("seq line {i} is {:?}, want {:?}", msgs[i], expect[i]);
    }
    eprintln!("seq: {n} lines, none lost");
    assert!(dn.own_texts("error").is_empty(), "{}", dn.dump());
    assert!(dn.own_texts("warning").is_empty(), "{}", dn.dump());
}

/// Expect (docs/control.md, protocol): several requests in one write get their responses in
/// order, blank lines get none, the connection stays usable; a request line of exactly
/// 64 KiB (JSON padded with spaces) is served.
#[test]
fn protocol_pipelining_and_the_64k_limit() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("a").run(&d.long_running("a", ""));
    d.svc("b").run(&d.long_running("b", ""));
    let mut dn = launch(&d).spawn();
    wait_running(&dn, &s, &["a", "b"]);

    let c = connect(&s).unwrap();
    c.set_read_timeout(Some(MEDIUM)).unwrap();
    let mut rd = BufReader::new(c.try_clone().unwrap());
    let mut next = || {
        let mut l = Vec::new();
        rd.read_until(b'\n', &mut l).unwrap();
        serde_json::from_slice::<Value>(&l)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&l)))
    };
    (&c).write_all(
        b"{\"cmd\":\"status\"}\n\n   \r\n{\"cmd\":\"fly\"}\n{\"cmd\":\"status\",\"services\":[\"b\"]}\n",
    )
    .unwrap();
    let r1 = next();
    assert_eq!(r1["ok"], true, "{r1}");
    assert_eq!(r1["services"].as_array().unwrap().len(), 2);
    let r2 = next();
    assert_eq!(r2["error"], "unknown command: fly", "{r2}");
    let r3 = next();
    assert_eq!(validate_status(&r3), ["b"], "{r3}");
    // exactly 64 KiB: still a request
    let mut line = STATUS.as_bytes().to_vec();
    line.resize(64 * 1024, b' ');
    line.push(b'\n');
    (&c).write_all(&line).unwrap();
    let r4 = next();
    assert_eq!(r4["ok"], true, "a 64 KiB request was refused: {r4}");
    // nothing more came (no response for the blank lines)
    (&c).write_all(b"{\"cmd\":\"check\",\"services\":[\"a\"]}\n")
        .unwrap();
    let r5 = next();
    assert_eq!(validate_status(&r5), ["a"], "{r5}");
    drop(c);
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

/// Expect (contract §11: "too long — over 64 KiB — gets an error response naming the
/// problem"; docs/control.md: "longer: an error response, then the connection is closed"):
/// a 64 KiB + 1 byte line, newline-terminated, gets `{"ok":false,"error":"request too long …"}`
/// and then EOF; nothing changes.
#[test]
fn request_too_long_gets_an_error_response() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("a").run(&d.long_running("a", ""));
    let mut dn = launch(&d).spawn();
    let st = wait_running(&dn, &s, &["a"]);
    for (what, tail) in [("with a newline", &b"\n"[..]), ("without a newline", b"")] {
        let mut line = br#"{"cmd":"down","services":["a"]}"#.to_vec();
        line.resize(64 * 1024 + 1, b' ');
        line.extend_from_slice(tail);
        let mut c = connect(&s).unwrap();
        c.set_write_timeout(Some(MEDIUM)).unwrap();
        let w = c.write_all(&line);
        let (got, how) = read_to_end(&mut c, MEDIUM);
        let r = responses(&got);
        assert!(
            r.len() == 1
                && r[0]["ok"] == false
                && r[0]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("too long")),
            "a 64 KiB + 1 line {what}: want one `request too long` error response, got {:?} \
             (write: {w:?}, read: {how:?})",
            String::from_utf8_lossy(&got)
        );
        assert!(
            how.is_ok() || how == Err(ErrorKind::ConnectionReset),
            "not closed: {how:?}"
        );
    }
    let st2 = ask(&s, STATUS).unwrap();
    assert_eq!(pid_of(&st2, "a"), pid_of(&st, "a"), "{st2}");
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

/// Expect: a client that writes its request and then shuts down its writing side (what
/// `socat`, `nc -N` or a script's `shutdown(SHUT_WR)` do) still gets the response; a last
/// request without its newline, which the server carries out ("a last request without its
/// newline still counts"), is answered too. 30 tries each: the request and the EOF often
/// arrive in the same read burst.
#[test]
fn half_closed_request_gets_its_response() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("a")
        .run(&d.long_running("a", "trap 'echo a-got-USR1' USR1"));
    let mut dn = launch(&d).spawn();
    d.wait_file("a.started", LONG);
    wait_running(&dn, &s, &["a"]);
    let try_once = |req: &[u8]| -> Vec<u8> {
        let mut c = connect(&s).unwrap();
        c.write_all(req).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        read_to_end(&mut c, MEDIUM).0
    };
    let mut lost = Vec::new();
    for (what, req) in [
        ("status + newline", &b"{\"cmd\":\"status\"}\n"[..]),
        ("status, no newline", b"{\"cmd\":\"status\"}"),
    ] {
        let n = (0..30).filter(|_| try_once(req).is_empty()).count();
        if n > 0 {
            lost.push(format!("{what}: {n}/30 without a response"));
        }
    }
    // A change without its newline: carried out, and answered?
    let got = try_once(b"{\"cmd\":\"signal\",\"signal\":\"USR1\",\"services\":[\"a\"]}");
    let ok = wait_until(LONG, || {
        json_msgs(&dn, "a").iter().any(|m| m == "a-got-USR1")
    });
    assert!(
        ok,
        "the request without a newline was not carried out\n{}",
        dn.dump()
    );
    if got.is_empty() {
        lost.push("signal, no newline: carried out, no response".into());
    }
    assert!(
        lost.is_empty(),
        "responses lost after a half-close: {lost:?}"
    );
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

/// Expect: `down -w` waits through the service's `finish` (state `finishing`, status line
/// `finish: f: (pid N) Ns`, a short `-w` times out); a service finishing after `dinit down` is
/// healthy for `check` (down on purpose); then down (`requested`); `up -w` brings it back;
/// the container never stops; exit 0.
#[test]
fn down_waits_for_finish() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("f").run(&d.long_running("f", "")).finish(&d.sh(
        "echo \"$1 $2\" >> \"$S/finish.args\"\nwhile [ ! -e \"$S/fin.go\" ]; do sleep 0.02; done",
    ));
    d.svc("g").run(&d.long_running("g", ""));
    let mut dn = launch(&d).spawn();
    d.wait_file("f.started", LONG);
    d.wait_file("g.started", LONG);
    let st = wait_running(&dn, &s, &["f", "g"]);
    let pg = pid_of(&st, "g");

    let out = ctl(&s, &["down", "-w", "0.5", "f"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "f: timeout\n"),
        "{out:?}"
    );
    let st = wait_status(&dn, &s, "f finishing", |st| state(st, "f") == "finishing");
    let pfin = pid_of(&st, "f");
    let out = ctl(&s, &["status", "f"]);
    assert_eq!(
        out.stdout.lines().map(norm).collect::<Vec<_>>(),
        [format!("finish: f: (pid {pfin}) Ns")],
        "{out:?}"
    );
    let out = ctl(&s, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ""),
        "finishing after down: {out:?}"
    );
    assert_eq!(d.wait_file("finish.args", LONG), "0 0\n");

    d.touch("fin.go");
    let out = ctl(&s, &["down", "-w", "10", "f"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let st = ask(&s, STATUS).unwrap();
    assert_eq!(state(&st, "f"), "down", "{st}");
    assert_eq!(svc(&st, "f")["down_reason"], "requested", "{st}");
    assert_eq!(pid_of(&st, "g"), pg);
    let out = ctl(&s, &["up", "-w", "10", "f"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert!(!dn.exited(), "{}", dn.dump());
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

/// Expect: the check scripts of several services run at once (each waits for the other's
/// marker: run one after the other, the first would time out).
#[test]
fn check_scripts_run_at_once() {
    let d = TestDir::new();
    let s = sock(&d);
    for (me, other) in [("p", "q"), ("q", "p")] {
        d.svc(me).run(&d.long_running(me, "")).file(
            "check",
            d.sh(&format!(
                "echo x > \"$S/{me}.checking\"\nwhile [ ! -e \"$S/{other}.checking\" ]; do sleep 0.01; done"
            )),
            0o755,
        );
    }
    let mut dn = launch(&d).spawn();
    wait_running(&dn, &s, &["p", "q"]);
    let out = ctl_env(&s, &[("DINIT_CHECK_TIMEOUT", "5")], &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}

/// Expect: `signal` is followed by the usual rule: `signal KILL k` kills k's run, the
/// container shuts down (m gets SIGTERM) and dinit exits 3 (a run died by a signal).
#[test]
fn signal_then_the_usual_rule() {
    let d = TestDir::new();
    let s = sock(&d);
    d.svc("k").run(&d.long_running("k", ""));
    d.svc("m").run(&d.long_running("m", ""));
    let mut dn = launch(&d).info().spawn();
    d.wait_file("m.started", LONG);
    wait_running(&dn, &s, &["k", "m"]);
    let out = ctl(&s, &["signal", "KILL", "k"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(dn.wait_exit(LONG), 3, "{}", dn.dump());
    assert!(d.exists("m.term"), "m was not stopped");
    assert!(
        dn.has_own("info", "k/run: signal requested by uid 0"),
        "{}",
        dn.dump()
    );
    assert!(!Path::new(&s).exists(), "socket file left behind");
}

/// Expect: a socket path whose folders do not exist: they are made (mode 0755), the socket
/// works (mode 0666) and is removed at exit.
#[test]
fn socket_folder_created() {
    let d = TestDir::new();
    let dir = d.root().join("run/dinit");
    let p = dir.join("control.sock").display().to_string();
    d.svc("a").run(&d.long_running("a", ""));
    let mut dn = launch(&d).env("DINIT_CONTROL_SOCKET", &p).spawn();
    wait_running(&dn, &p, &["a"]);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o666
    );
    let out = ctl(&p, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
    assert!(!Path::new(&p).exists(), "socket file left behind");
}

// ---------------------------------------------------------------------------------------------
// 8. round-trip figures (measured and printed, not asserted)

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let p = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    (p(50), p(99))
}

/// Measures a `status` round trip with 100 services: raw protocol on a fresh connection each
/// time, on one kept connection, and the `dinit status` client process. Prints median and p99
/// (`--nocapture`); asserts only that every answer lists the 100 services.
#[test]
fn status_round_trip_100_services() {
    let d = TestDir::new();
    let s = sock(&d);
    for i in 0..100 {
        d.svc(&format!("s{i:03}"))
            .run("#!/bin/sh\nexec sleep 100000\n");
    }
    let mut dn = launch(&d).spawn();
    wait_status(&dn, &s, "100 services running", |st| {
        st["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["state"] == "running")
    });
    let mut size = 0;
    // Fresh connection per request.
    let mut fresh = Vec::new();
    for i in 0..520 {
        let t = Instant::now();
        let v = ask(&s, STATUS).unwrap();
        let e = t.elapsed();
        if i >= 20 {
            fresh.push(e);
        }
        assert_eq!(v["services"].as_array().unwrap().len(), 100);
    }
    // One connection, many requests.
    let c = connect(&s).unwrap();
    c.set_read_timeout(Some(MEDIUM)).unwrap();
    let mut rd = BufReader::new(c.try_clone().unwrap());
    let mut kept = Vec::new();
    for i in 0..520 {
        let t = Instant::now();
        (&c).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        let mut l = Vec::new();
        rd.read_until(b'\n', &mut l).unwrap();
        let e = t.elapsed();
        if i >= 20 {
            kept.push(e);
        }
        size = l.len();
    }
    drop(rd);
    drop(c);
    // The client process (`dinit status`, text).
    let mut client = Vec::new();
    for _ in 0..60 {
        let out = ctl(&s, &["status"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout.lines().count(), 100);
        client.push(out.took);
    }
    let (f50, f99) = percentiles(fresh);
    let (k50, k99) = percentiles(kept);
    let (c50, c99) = percentiles(client);
    eprintln!(
        "status round trip, 100 services, response {size} bytes:\n\
         \x20 raw, new connection each: median {f50:?}, p99 {f99:?} (500 requests)\n\
         \x20 raw, one connection:      median {k50:?}, p99 {k99:?} (500 requests)\n\
         \x20 `dinit status` process:   median {c50:?}, p99 {c99:?} (60 runs)"
    );
    dn.signal(libc::SIGTERM);
    assert_eq!(dn.wait_exit(LONG), 0, "{}", dn.dump());
}
