//! runit compatibility (contract §2 `down` and `finish`), then real runit service directories:
//! copies of Debian's `runit-services` directories (`/etc/sv/*`) and a phusion/baseimage-style
//! tree, run by dinit and, for contrast, by runit's `runsvdir` as PID 1 of the same kind of PID
//! namespace.
//!
//! The trees are temp copies; the real `/etc/sv` is only read (copied). The real-tree tests run
//! in a private mount namespace (`unshare --mount-proc` makes one) where `/run`, `/var/log`,
//! `/dev`, `/etc/runit`, `/etc/sv`, `/etc/service`, `/etc/rsyslog.conf`, cron's tables and
//! Debian's `policy-rc.d` are bind mounts of temp files, so the daemons write nothing outside the
//! test's temp dir, never touch the machine's own state, and do not depend on it either: Debian's
//! runit glue reads `/etc/service/<name>`, `/etc/sv/<name>`, `/etc/runit/lsb.runit.*` and
//! `/run/runit.stopit` (see `ns_setup`), and sees the test's own.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A script line that waits (polling) until `$S/<file>` exists.
fn wait_for_file(file: &str) -> String {
    format!("while [ ! -e \"$S/{file}\" ]; do sleep 0.01; done")
}

/// A `finish` that records its arguments (`$S/<tag>.args`: argc, then each argument in
/// brackets), cwd and stdin, and appends `<tag>-finish` to `$S/events`.
fn recording_finish(d: &TestDir, tag: &str) -> String {
    d.sh(&format!(
        "echo \"$# [$1] [$2]\" > \"$S/{tag}.args\"\n\
         pwd -P > \"$S/{tag}.cwd\"\n\
         readlink /proc/self/fd/0 > \"$S/{tag}.stdin\"\n\
         echo {tag}-finish >> \"$S/events\""
    ))
}

fn args_of(d: &TestDir, tag: &str) -> String {
    d.wait_file(&format!("{tag}.args"), LONG)
        .trim_end()
        .to_string()
}

// =============================================================================================
// down

/// Expect (add): a service whose directory holds `down` is not started: info
/// `a/run: not starting: down file present`, no `a/run: starting`, its `run` never runs; any
/// file type counts (a directory `down` for `c`); the other service runs normally; SIGTERM → 0.
#[test]
fn down_file_prevents_start() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("echo ran > \"$S/a.ran\"\nexec sleep 100000"))
        .down();
    d.svc("b").run(&d.long_running("b", ""));
    let c = d
        .svc("c")
        .run(&d.sh("echo ran > \"$S/c.ran\"\nexec sleep 100000"));
    fs::create_dir(c.path().join("down")).unwrap();
    let mut r = launch(&d).info().spawn();
    d.wait_file("b.started", LONG);
    r.wait_stderr_contains("c/run: not starting: down file present", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    for n in ["a", "c"] {
        assert!(
            r.has_own("info", &format!("{n}/run: not starting: down file present")),
            "{}",
            r.dump()
        );
        assert!(
            !r.own_contains(&format!("{n}/run: starting")),
            "{}",
            r.dump()
        );
        assert!(
            !d.exists(&format!("{n}.ran")),
            "{n}/run ran despite its down file"
        );
    }
    assert!(d.exists("b.term"));
}

/// Expect (add): services that all have a `down` file do not count as services: one info line
/// each, then warning `no services found, exiting`, exit 0, nothing started.
#[test]
fn only_down_services_means_no_services() {
    let d = TestDir::new();
    for n in ["a", "b"] {
        d.svc(n)
            .run(&d.sh(&format!("echo ran > \"$S/{n}.ran\"\nexec sleep 100000")))
            .down();
    }
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.has_own("warning", "no services found, exiting"),
        "{}",
        r.dump()
    );
    for n in ["a", "b"] {
        assert!(
            r.has_own("info", &format!("{n}/run: not starting: down file present")),
            "{}",
            r.dump()
        );
        assert!(!d.exists(&format!("{n}.ran")));
    }
}

/// runit's rule for `down` is `stat("down")`: it follows symlinks, so a `down` that is a
/// dangling symlink is no `down` file (the service starts, `sv status` says `normally up`),
/// while a symlink to an existing file is one. Images use this to switch a service by a flag
/// file elsewhere (`down -> /run/flags/web-off`). This tree has `a` (dangling `down` link),
/// `c` (`down` link to an existing file) and `b` (plain).
fn down_symlink_tree(d: &TestDir) {
    let flag = d.root().join("flag");
    fs::write(&flag, "").unwrap();
    d.svc("a")
        .run(&d.long_running("a", ""))
        .symlink("down", d.root().join("no-such-flag"));
    d.svc("c")
        .run(&d.long_running("c", ""))
        .symlink("down", &flag);
    d.svc("b").run(&d.long_running("b", ""));
}

/// Expect (add, runit's `down` file): the same as runit, checked against runsvdir first: a
/// dangling `down` symlink does not keep `a` down, a `down` symlink to an existing file keeps
/// `c` down.
#[test]
fn down_symlink_follows_runits_stat_rule() {
    if !require_runit("down_symlink_follows_runits_stat_rule") {
        return;
    }
    // runit, the reference
    let dr = TestDir::new();
    down_symlink_tree(&dr);
    let rr = launch(&dr)
        .program("/usr/bin/runsvdir")
        .arg(dr.dir().to_str().unwrap())
        .spawn();
    dr.wait_file("a.started", LONG);
    dr.wait_file("b.started", LONG);
    assert!(
        !wait_until(Duration::from_millis(300), || dr.exists("c.started")),
        "runit started c"
    );
    drop(rr);
    // dinit
    let d = TestDir::new();
    down_symlink_tree(&d);
    let mut r = launch(&d).info().spawn();
    d.wait_file("b.started", LONG);
    let a_started = wait_until(MEDIUM, || d.exists("a.started"));
    let c_started = d.exists("c.started");
    r.signal(libc::SIGTERM);
    r.wait_exit(LONG);
    assert!(
        a_started,
        "dinit kept `a` down although its `down` is a dangling symlink (runit starts it)\n{}",
        r.dump()
    );
    assert!(!c_started, "{}", r.dump());
    assert!(
        r.has_own("info", "c/run: not starting: down file present"),
        "{}",
        r.dump()
    );
}

// =============================================================================================
// finish: arguments

/// Expect (add): after a normal exit (0) `finish` gets exactly two arguments `0 0`, runs with
/// cwd the service directory and stdin `/dev/null`, after dinit's `finished with status 0`
/// line; its own exit code (9) never changes dinit's: exit 0.
#[test]
fn finish_args_after_exit_0() {
    let d = TestDir::new();
    let a = d
        .svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .finish(&format!("{}exit 9\n", recording_finish(&d, "a")));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert_eq!(args_of(&d, "a"), "2 [0] [0]");
    assert_eq!(
        d.read("a.cwd").trim_end(),
        fs::canonicalize(a.path()).unwrap().to_str().unwrap()
    );
    assert_eq!(d.read("a.stdin").trim_end(), "/dev/null");
    let own = r.own();
    let run_end = own
        .iter()
        .position(|o| {
            o.text.starts_with("a/run: PID ")
                && o.text
                    .ends_with("finished with status 0, stopping all services")
        })
        .unwrap_or_else(|| panic!("no a/run finished line\n{}", r.dump()));
    let fin_start = own
        .iter()
        .position(|o| o.text.starts_with("a/finish: running with PID "))
        .unwrap_or_else(|| panic!("no a/finish running line\n{}", r.dump()));
    assert!(
        run_end < fin_start,
        "finish started before run's end\n{}",
        r.dump()
    );
    assert!(
        r.own_contains("a/finish: PID ") && r.own_contains("finished with status 9"),
        "{}",
        r.dump()
    );
}

/// Expect (add): exit 115 → `finish` gets `115 0`; nothing is shut down afterwards: `b` keeps
/// running after the finish ended (`dinit status` says a is down, b runs); a SIGTERM then
/// stops b; exit 0.
#[test]
fn finish_args_after_115_and_nothing_shuts_down() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh(&format!("{}\nexit 115", wait_for_file("b.started"))))
        .finish(&recording_finish(&d, "a"));
    d.svc("b").run(&d.long_running("b", ""));
    let mut r = launch(&d).info().spawn();
    assert_eq!(args_of(&d, "a"), "2 [115] [0]");
    r.wait_stderr_contains("a/finish: PID ", LONG);
    // Nothing follows the finish: b is not terminated (bounded look, it would be ms).
    assert!(
        !wait_until(Duration::from_millis(500), || d.exists("b.term")),
        "b was stopped after a's exit 115\n{}",
        r.dump()
    );
    let st = run_cmd(
        Command::new(bin())
            .args(["status"])
            .env_clear()
            .env("DINIT_CONTROL_SOCKET", d.root().join("control.sock")),
        LONG,
    );
    let lines: Vec<&str> = st.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{st:?}");
    assert!(lines[0].starts_with("down: a: "), "{st:?}");
    assert!(lines[1].starts_with("run: b: (pid "), "{st:?}");
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(d.events(), vec!["a-finish", "b-term"], "{}", r.dump());
}

/// Expect (add): the last service exits 115 and its `finish` takes a while: dinit waits for the
/// finish before `all services finished, exiting` (the finish completes, exit 0).
#[test]
fn finish_after_115_of_last_service_is_waited_for() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 115\n")
        .finish(&d.sh("sleep 0.3\necho \"$1 $2\" > \"$S/a.args\""));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert_eq!(d.read("a.args"), "115 0\n", "{}", r.dump());
    assert!(
        r.has_own("info", "all services finished, exiting"),
        "{}",
        r.dump()
    );
}

/// Expect (add): a non-zero exit (7) → `7 0`; dinit exits 3 (run's code, never finish's).
#[test]
fn finish_args_after_nonzero_exit() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 7\n")
        .finish(&format!("{}exit 0\n", recording_finish(&d, "a")));
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert_eq!(args_of(&d, "a"), "2 [7] [0]");
}

/// Expect (add): `run` killed by a signal (SIGUSR1, no shutdown under way) → `-1 10`; exit 3.
#[test]
fn finish_args_after_signal_death() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nkill -USR1 $$\nsleep 100000\n")
        .finish(&recording_finish(&d, "a"));
    let r = launch(&d).run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert_eq!(args_of(&d, "a"), "2 [-1] [10]");
}

/// Expect (add): finish scripts run during a shutdown too: `a` traps TERM and exits 0 → `0 0`,
/// `b` dies of the SIGTERM → `-1 15`; dinit waits for both finishes (each sleeps 0.3 s before
/// writing) and exits 0.
#[test]
fn finish_runs_during_shutdown() {
    let d = TestDir::new();
    let slow_finish = |tag: &str| {
        d.sh(&format!(
            "sleep 0.3\necho \"$# [$1] [$2]\" > \"$S/{tag}.args\""
        ))
    };
    d.svc("a")
        .run(&d.long_running("a", ""))
        .finish(&slow_finish("a"));
    d.svc("b")
        .run(&d.sh("echo started > \"$S/b.started\"\nexec sleep 100000"))
        .finish(&slow_finish("b"));
    let mut r = launch(&d).info().spawn();
    d.wait_file("a.started", LONG);
    d.wait_file("b.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(d.read("a.args").trim_end(), "2 [0] [0]", "{}", r.dump());
    assert_eq!(d.read("b.args").trim_end(), "2 [-1] [15]", "{}", r.dump());
}

// =============================================================================================
// finish: time limit, output, order

/// Expect (add): a `finish` that hangs after `run` ended is SIGKILLed after DINIT_KILL_TIMEOUT
/// (0.5 s; info `a/finish: sending SIGKILL to PID <n>`), and only then does run's end take
/// effect: b is terminated after that line, not before; exit 0 (a exited 0).
#[test]
fn hanging_finish_is_killed_then_shutdown() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh(&format!("{}\nexit 0", wait_for_file("b.started"))))
        .finish(
            &d.sh("trap '' TERM\necho finish-start >> \"$S/events\"\nwhile :; do sleep 0.05; done"),
        );
    d.svc("b").run(&d.long_running("b", ""));
    let t0 = Instant::now();
    let r = launch(&d).info().env("DINIT_KILL_TIMEOUT", "0.5").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(t0.elapsed() >= Duration::from_millis(500));
    assert_eq!(d.events(), vec!["finish-start", "b-term"], "{}", r.dump());
    let fpid = r
        .reported_pid("a/finish")
        .unwrap_or_else(|| panic!("no a/finish running line\n{}", r.dump()));
    let own = r.own();
    let kill = own
        .iter()
        .position(|o| o.text == format!("a/finish: sending SIGKILL to PID {fpid}"))
        .unwrap_or_else(|| panic!("finish not killed\n{}", r.dump()));
    let term = own
        .iter()
        .position(|o| o.text.starts_with("b/run: sending SIGTERM to PID "))
        .unwrap_or_else(|| panic!("b not terminated\n{}", r.dump()));
    assert!(
        kill < term,
        "b was terminated before a's finish was killed\n{}",
        r.dump()
    );
    // Half a second between run's end and the kill (the log's own timestamps).
    let end_ts = own
        .iter()
        .find(|o| o.text.starts_with("a/run: PID "))
        .map(|o| ts_millis(&o.ts))
        .unwrap();
    assert!(ts_millis(&own[kill].ts) - end_ts >= 450, "{}", r.dump());
}

/// Expect (add): a `finish` that hangs during a shutdown is SIGKILLed after
/// DINIT_KILL_TIMEOUT too, and dinit then exits (0: SIGTERM started the shutdown).
#[test]
fn hanging_finish_during_shutdown_is_killed() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.long_running("a", ""))
        .finish("#!/bin/sh\ntrap '' TERM\nexec sleep 100000\n");
    let mut r = launch(&d).info().env("DINIT_KILL_TIMEOUT", "0.5").spawn();
    d.wait_file("a.started", LONG);
    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
    let fpid = r.reported_pid("a/finish").unwrap();
    assert!(
        r.has_own("info", &format!("a/finish: sending SIGKILL to PID {fpid}")),
        "{}",
        r.dump()
    );
}

/// Expect (add), text mode: finish's stdout lines are stdout records `<ts> a/finish: <line>`,
/// its stderr lines stderr records `<ts> a/finish: <line>`.
#[test]
fn finish_output_text_mode() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .finish("#!/bin/sh\necho \"finish says $1 $2\"\necho finish-err >&2\n");
    let r = launch(&d).text().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let out: Vec<(String, String, String)> = r
        .stdout_records()
        .into_iter()
        .map(|t| (t.name.clone(), t.stage.clone(), t.text()))
        .collect();
    assert!(
        out.contains(&("a".into(), "finish".into(), "finish says 0 0".into())),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr_records()
            .iter()
            .any(|t| t.name == "a" && t.stage == "finish" && t.text() == "finish-err"),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout_str()
            .lines()
            .any(|l| l.ends_with(" a/finish: finish says 0 0")),
        "{}",
        r.dump()
    );
}

/// Expect (add), JSON mode: finish's stdout becomes records with `"stage":"finish"` (an object
/// enriched, a text line wrapped in `msg`); its stderr stays text `a/finish: <line>`.
#[test]
fn finish_output_json_mode() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .finish("#!/bin/sh\necho '{\"finished\":true}'\necho plain finish line\necho oops >&2\n");
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let recs = r.json();
    let fin: Vec<&JsonRec> = recs.iter().filter(|j| j.stage() == "finish").collect();
    assert_eq!(fin.len(), 2, "{}", r.dump());
    assert!(fin.iter().all(|j| j.service() == "a"));
    assert_eq!(fin[0].obj["finished"], true, "{}", r.dump());
    assert_eq!(fin[1].msg(), Some("plain finish line"), "{}", r.dump());
    assert!(fin[0].raw.contains("\"stage\":\"finish\""));
    assert!(
        r.stderr_records()
            .iter()
            .any(|t| t.name == "a" && t.stage == "finish" && t.text() == "oops"),
        "{}",
        r.dump()
    );
}

/// Expect (add): what run's end causes happens after finish ends: a exits 3, its finish blocks
/// until the test says go; meanwhile b is not stopped; then b gets SIGTERM; exit 3.
#[test]
fn run_end_takes_effect_after_finish() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh(&format!("{}\nexit 3", wait_for_file("b.started"))))
        .finish(&d.sh(&format!(
            "echo finish-start >> \"$S/events\"\n{}\necho finish-end >> \"$S/events\"",
            wait_for_file("go")
        )));
    d.svc("b").run(&d.long_running("b", ""));
    let mut r = launch(&d).info().spawn();
    let ok = wait_until(LONG, || d.events().contains(&"finish-start".to_string()));
    assert!(ok, "finish never started\n{}", r.dump());
    assert!(
        !wait_until(Duration::from_millis(400), || d.exists("b.term")),
        "b stopped while a's finish still ran\n{}",
        r.dump()
    );
    assert!(!r.exited());
    d.touch("go");
    assert_eq!(r.wait_exit(LONG), 3, "{}", r.dump());
    assert_eq!(
        d.events(),
        vec!["finish-start", "finish-end", "b-term"],
        "{}",
        r.dump()
    );
}

/// Expect (add): a `finish` that exists but cannot be started (its `#!` interpreter is
/// missing) is a warning naming it; it never changes the exit code (a exited 0 → 0).
#[test]
fn finish_that_cannot_start_is_a_warning() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .finish("#!/nonexistent/interpreter\n");
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.own()
            .iter()
            .any(|o| o.level == "warning" && o.text.contains("a/finish")),
        "{}",
        r.dump()
    );
    assert!(r.own_texts("error").is_empty(), "{}", r.dump());
}

// =============================================================================================
// real runit service directories

/// The machine's paths that the real-tree tests cover with bind mounts of temp files, inside the
/// private mount namespace of the PID namespace (see `ns_setup`): the daemons then write their
/// pid files, sockets and logs under `<root>/ns/` and read a test `rsyslog.conf` and empty
/// crontabs (so no real cron job can run during a test).
fn prepare_ns(d: &TestDir) -> PathBuf {
    let ns = d.root().join("ns");
    for sub in ["run", "log", "dev", "empty"] {
        fs::create_dir_all(ns.join(sub)).unwrap();
    }
    // A fresh /etc/runit, not the machine's (whose `lsb.runit.mask` or `lsb.runit.sysv` flags
    // would change what Debian's init-functions do): only the flags that make Debian's
    // invoke-run and finish-exec say what they do ("invoke-run: starting cron", "invoke-run:
    // cron stopped"), and `runsvdir/current`, where the runit package's `/etc/service` link
    // (`runit/runsvdir/current`) points: the mount point of the test's own /etc/service.
    fs::create_dir_all(ns.join("etc-runit/runsvdir/current")).unwrap();
    fs::write(ns.join("etc-runit/verbose"), "").unwrap();
    fs::write(ns.join("etc-runit/debug"), "").unwrap();
    // Docker's Debian images carry a policy-rc.d that says 101 ("do not start"); an image that
    // runs its services removes it. Here: allowed (mounted over the host's when it has one; no
    // policy-rc.d at all allows too).
    write_exec(&ns.join("policy-rc.d"), "#!/bin/sh\nexit 0\n");
    fs::write(
        ns.join("rsyslog.conf"),
        "module(load=\"imuxsock\")\n*.* /var/log/all.log\n",
    )
    .unwrap();
    fs::write(ns.join("crontab"), "").unwrap();
    for p in [d.root(), &ns] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    ns
}

fn write_exec(p: &Path, content: &str) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `sh` set-up run as the namespace's first process before dinit or runsvdir replaces it:
/// a private `/dev` (the host's device nodes, plus room for rsyslog's `/dev/log`), the bind
/// mounts of `prepare_ns`, the test's `sv` and `service` dirs (`etc_dirs`) as `/etc/sv` and
/// `/etc/service`, the `/run/runit/supervise/<name>` dirs that Debian's `supervise` symlinks
/// point to (runsv needs them), and, with `ro_supervise`, every real `supervise/` directory of
/// the tree bind-mounted read-only (as on a read-only image).
///
/// Why `/etc/service` and `/etc/sv`: a Debian run script starts with `invoke-run`, which asks
/// the package's init script `/etc/init.d/<name> status --force-sysv` whether the daemon already
/// runs (`.meta/noreplace`, dbus); the init script sources `/lib/lsb/init-functions.d/40-runit`,
/// which, when `/run/runit.stopit` exists or `pidof runsvdir` finds one (the runsvdir half of a
/// test), answers "yes, exit 0" for a service that has `/etc/sv/<name>` but no
/// `/etc/service/<name>` link (a "disabled" service), and invoke-run then stops it (`sv down`,
/// finish prints `invoke-run: dbus stopped`). Whether the machine has those links is its own
/// business: here they are the test's, so both halves see every service of the tree enabled.
fn ns_setup(ns: &Path, sv: &Path, ro_supervise: bool) -> String {
    let n = ns.display();
    let service = sv.with_file_name("service");
    let service = service.display();
    let sv = sv.display();
    let mut s = format!(
        "set -e\n\
         N='{n}'\n\
         for f in null zero full random urandom tty; do\n\
           [ -e /dev/$f ] || continue\n\
           : > $N/dev/$f\n\
           mount --bind /dev/$f $N/dev/$f\n\
         done\n\
         ln -s /proc/self/fd $N/dev/fd\n\
         ln -s /proc/self/fd/0 $N/dev/stdin\n\
         ln -s /proc/self/fd/1 $N/dev/stdout\n\
         ln -s /proc/self/fd/2 $N/dev/stderr\n\
         mount --bind $N/dev /dev\n\
         mount --bind $N/run /run\n\
         mount --bind $N/log /var/log\n\
         mount --bind $N/etc-runit /etc/runit\n\
         if [ -d /etc/sv ]; then mount --bind '{sv}' /etc/sv; fi\n\
         if [ -d /etc/service ]; then mount --bind '{service}' /etc/service; fi\n\
         for l in '{service}'/*; do\n\
           [ -e \"$l\" ] || continue\n\
           if [ ! -h \"/etc/service/${{l##*/}}\" ]; then\n\
             echo \"ns_setup: cannot give the test its own /etc/service ($(ls -ld /etc/service 2>&1))\" >&2\n\
             exit 1\n\
           fi\n\
         done\n\
         if [ -e /usr/sbin/policy-rc.d ]; then mount --bind $N/policy-rc.d /usr/sbin/policy-rc.d; fi\n\
         mount --bind $N/rsyslog.conf /etc/rsyslog.conf\n\
         mount --bind $N/crontab /etc/crontab\n\
         mount --bind $N/empty /etc/cron.d\n\
         mount --bind $N/empty /var/spool/cron/crontabs\n\
         for l in '{sv}'/*/supervise '{sv}'/*/log/supervise; do\n\
           if [ -L \"$l\" ]; then mkdir -p \"$(readlink \"$l\")\"; fi\n\
         done\n"
    );
    if ro_supervise {
        s.push_str(&format!(
            "for l in '{sv}'/*/supervise '{sv}'/*/log/supervise; do\n\
               if [ -d \"$l\" ] && [ ! -L \"$l\" ]; then mount --bind -o ro \"$l\" \"$l\"; fi\n\
             done\n"
        ));
    }
    s
}

/// `<root>/etc/sv` and `<root>/etc/service` (symlinks `x -> <root>/etc/sv/x`, as images link
/// `/etc/service/x -> /etc/sv/x`).
fn etc_dirs(d: &TestDir) -> (PathBuf, PathBuf) {
    let (sv, service) = (d.root().join("etc/sv"), d.root().join("etc/service"));
    fs::create_dir_all(&sv).unwrap();
    fs::create_dir_all(&service).unwrap();
    for p in [d.root().join("etc"), sv.clone(), service.clone()] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    (sv, service)
}

fn enable(sv: &Path, service: &Path, name: &str) {
    std::os::unix::fs::symlink(sv.join(name), service.join(name)).unwrap();
}

/// `<root>/bin/sv`, a symlink to dinit: dinit under the name `sv` is runit's `sv`, which the
/// run scripts call (`sv start default-syslog`, `sv start syslog`).
fn sv_link(d: &TestDir) -> PathBuf {
    let b = d.root().join("bin");
    fs::create_dir_all(&b).unwrap();
    let link = b.join("sv");
    if !link.exists() {
        std::os::unix::fs::symlink(bin(), &link).unwrap();
    }
    b
}

/// Starts dinit (text mode, info) over `service` in the namespace set up by `setup`, with
/// `<root>/bin` (dinit as `sv`) first in PATH.
fn start_dinit(d: &TestDir, service: &Path, setup: &str) -> Dinit {
    let bindir = sv_link(d);
    launch(d)
        .info()
        .text()
        .env("DINIT_DIR", service.to_str().unwrap())
        .env("SVDIR", service.to_str().unwrap())
        .env("PATH", &format!("{}:{PATH}", bindir.display()))
        .setup(setup)
        .spawn()
}

/// Starts runit's `runsvdir <service>` as PID 1 of a PID namespace, exactly as dinit is
/// started (same set-up, same environment but Debian's own `sv` in PATH).
fn start_runsvdir(d: &TestDir, service: &Path, setup: &str) -> Dinit {
    launch(d)
        .env("SVDIR", service.to_str().unwrap())
        .program("/usr/bin/runsvdir")
        .arg(service.to_str().unwrap())
        .setup(setup)
        .spawn()
}

fn file_has(p: &Path, s: &str) -> bool {
    fs::read_to_string(p)
        .map(|c| c.contains(s))
        .unwrap_or(false)
}

fn wait_file_has(p: &Path, s: &str, r: &Dinit) {
    if !wait_until(LONG, || file_has(p, s)) {
        panic!(
            "timed out waiting for {} to contain {s:?}; it has:\n{}\n{}",
            p.display(),
            fs::read_to_string(p).unwrap_or_default(),
            r.dump()
        );
    }
}

/// Host pids of the namespace's processes whose comm is one of `names`, leaving out those whose
/// parent has the same comm (a shell's subshells and not yet exec'ed children).
fn pids_named(r: &Dinit, names: &[&str]) -> Vec<(String, i32)> {
    let ppid = |p: i32| -> Option<i32> {
        let s = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        s[s.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
    };
    let mut all = vec![r.init_pid];
    all.extend(descendants_of(r.init_pid));
    all.into_iter()
        .filter_map(|p| {
            proc_comm(p)
                .filter(|c| names.contains(&c.as_str()))
                .map(|c| (c, p))
        })
        .filter(|(c, p)| ppid(*p).and_then(proc_comm).as_ref() != Some(c))
        .collect()
}

/// Runs `cmd` inside the mount namespace of `r` (as `docker exec` would in a container), so
/// that check scripts see the container's `/run`.
fn in_ns(r: &Dinit, d: &TestDir, service: &Path, argv: &[&str]) -> CmdOut {
    let bindir = sv_link(d);
    run_cmd(
        Command::new("nsenter")
            .arg("-t")
            .arg(r.pid.to_string())
            .args(["-m", "-p", "--"])
            .args(argv)
            .env_clear()
            .env("PATH", format!("{}:{PATH}", bindir.display()))
            .env("SVDIR", service)
            .env("DINIT_CONTROL_SOCKET", d.root().join("control.sock")),
        LONG,
    )
}

fn gone(pids: &[(String, i32)]) -> bool {
    pids.iter()
        .all(|(_, p)| !Path::new(&format!("/proc/{p}")).exists() || proc_state(*p) == Some('Z'))
}

// ---- Debian's runit-services ------------------------------------------------------------------

/// Debian's runit-services directories used here (each daemon from its own Debian package,
/// installed by scripts/test.sh): rsyslog (exits 0 on SIGTERM), dbus (an svlogd logger in
/// `log/`, a `check` script, a `finish`), atd (exits 0 on SIGTERM), cron (no TERM handler: dies
/// of it; has a `finish`). All start through Debian's `/lib/runit/invoke-run` and call `sv`.
const DEBIAN: [&str; 4] = ["atd", "cron", "dbus", "rsyslog"];
/// Not a service: the shared logger that Debian's `log/run` links point to
/// (`dbus/log/run -> /etc/sv/svlogd/run`); copied with the tree, not enabled.
const DEBIAN_SHARED: [&str; 1] = ["svlogd"];

/// `true` when runit-services' directories and their daemons are installed; else the test is
/// recorded as skipped. The daemon of each is the one its `.meta/bin` names (what invoke-run
/// checks before it starts one).
#[must_use]
fn require_debian_services(test: &str) -> bool {
    let hint = "install Debian's runit-services and the daemons (apt-get install runit-services \
                rsyslog dbus at cron; scripts/test.sh does)";
    for s in DEBIAN.iter().chain(&DEBIAN_SHARED) {
        let run = Path::new("/etc/sv").join(s).join("run");
        if !run.exists() {
            skip(test, &format!("{} not found: {hint}", run.display()));
            return false;
        }
        let bin =
            fs::read_to_string(Path::new("/etc/sv").join(s).join(".meta/bin")).unwrap_or_default();
        let bin = bin.trim();
        if !bin.is_empty() && !Path::new(bin).exists() {
            skip(
                test,
                &format!("{bin} (the daemon of /etc/sv/{s}) not found: {hint}"),
            );
            return false;
        }
    }
    true
}

fn debian_tree(d: &TestDir) -> (PathBuf, PathBuf, PathBuf) {
    let ns = prepare_ns(d);
    let (sv, service) = etc_dirs(d);
    for s in DEBIAN.iter().chain(&DEBIAN_SHARED) {
        // cp -a keeps what the package made: `supervise -> /run/runit/supervise/<name>`
        // symlinks, `log/run -> /etc/sv/svlogd/run`, `.meta/`.
        let out = run_cmd(
            Command::new("cp")
                .args(["-a", &format!("/etc/sv/{s}")])
                .arg(sv.join(s)),
            LONG,
        );
        assert_eq!(out.code, 0, "{out:?}");
    }
    for s in DEBIAN {
        enable(&sv, &service, s);
    }
    (ns, sv, service)
}

/// Expect: copies of Debian's runit-services directories (rsyslog, dbus with its svlogd
/// logger, atd, cron), unchanged, run under dinit: each starts through invoke-run, dbus logs
/// through `log/run` (svlogd writes `/var/log/runit/dbus/current`), syslog works (a `logger`
/// line reaches rsyslog's file), `sv check dbus` (dinit as `sv`, inside the container) runs
/// Debian's check script and passes. On SIGTERM every daemon is stopped the way runit's `sv
/// down` would: rsyslog, dbus and atd exit 0, cron dies of the SIGTERM, the `finish` scripts
/// of dbus and cron run (Debian's finish-exec prints `invoke-run: dbus stopped`, captured as
/// `dbus/finish`), dbus's logger ends at EOF; dinit exits 0.
///
/// Contrast: `runsvdir` as PID 1 over a copy of the same tree starts the same services, but on
/// SIGTERM it exits 0 at once: the kernel SIGKILLs everything left in the PID namespace, no
/// service sees a SIGTERM and no `finish` runs.
#[test]
fn debian_runit_services_stop_cleanly_under_dinit_not_runsvdir() {
    const T: &str = "debian_runit_services_stop_cleanly_under_dinit_not_runsvdir";
    if !require_runit(T) || !require_debian_services(T) {
        return;
    }
    // ---- dinit
    let d = TestDir::new();
    let (ns, sv, service) = debian_tree(&d);
    let mut r = start_dinit(&d, &service, &ns_setup(&ns, &sv, false));
    let dbus_log = ns.join("log/runit/dbus/current");
    let all_log = ns.join("log/all.log");
    wait_file_has(&dbus_log, "invoke-run: starting dbus", &r);
    wait_file_has(&all_log, "rsyslogd: [origin software=\"rsyslogd\"", &r);
    r.wait_stdout_contains("atd/run: invoke-run: starting atd", LONG);
    r.wait_stderr_contains("cron/run: invoke-run: starting cron", LONG);
    r.wait_stdout_contains("rsyslog/run: invoke-run: starting rsyslog", LONG);
    // syslog round trip through rsyslog's /dev/log in the container
    let lg = in_ns(
        &r,
        &d,
        &service,
        &["logger", "-t", "probe", "hello from the test"],
    );
    assert_eq!(lg.code, 0, "{lg:?}");
    wait_file_has(&all_log, "probe: hello from the test", &r);
    // Debian's dbus/check, run by dinit's sv in the container
    let ok = wait_until(LONG, || {
        let c = in_ns(&r, &d, &service, &["sv", "check", "dbus"]);
        c.code == 0 && c.stdout.starts_with("ok: run: dbus: (pid ")
    });
    assert!(ok, "sv check dbus never passed\n{}", r.dump());
    let st = in_ns(
        &r,
        &d,
        &service,
        &["sv", "status", "atd", "cron", "dbus", "rsyslog"],
    );
    println!("dinit: sv status:\n{}", st.stdout);
    assert_eq!(st.code, 0, "{st:?}");
    let daemons = pids_named(&r, &["rsyslogd", "dbus-daemon", "atd", "cron", "svlogd"]);
    assert_eq!(daemons.len(), 5, "{daemons:?}\n{}", r.dump());

    let t0 = Instant::now();
    r.signal(libc::SIGTERM);
    let code = r.wait_exit(LONG);
    let dinit_took = t0.elapsed();
    println!("dinit: output:\n{}\n{}", r.stdout_str(), r.stderr_str());
    assert_eq!(code, 0, "{}", r.dump());
    for s in ["rsyslog", "dbus", "atd"] {
        assert!(
            r.own()
                .iter()
                .any(|o| o.text.starts_with(&format!("{s}/run: PID "))
                    && o.text.ends_with("finished with status 0")),
            "{s} did not exit 0 on SIGTERM\n{}",
            r.dump()
        );
    }
    assert!(
        r.own()
            .iter()
            .any(|o| o.text.starts_with("cron/run: PID ")
                && o.text.ends_with("finished with signal 15")),
        "{}",
        r.dump()
    );
    let out = r.stdout_records();
    let has = |name: &str, stage: &str, text: &str| {
        out.iter()
            .any(|t| t.name == name && t.stage == stage && t.text() == text)
    };
    assert!(
        has("dbus", "finish", "invoke-run: dbus stopped"),
        "{}",
        r.dump()
    );
    assert!(
        has("dbus", "finish", "invoke-run: dbus : run exit code is 0"),
        "{}",
        r.dump()
    );
    assert!(
        has(
            "cron",
            "finish",
            "invoke-run: ERROR -1 in cron: runscript didn't exit normally"
        ),
        "{}",
        r.dump()
    );
    assert!(
        r.own()
            .iter()
            .any(|o| o.text.starts_with("dbus/log: PID ")
                && o.text.ends_with("finished with status 0")),
        "{}",
        r.dump()
    );

    // ---- runsvdir over a copy of the same tree
    let d2 = TestDir::new();
    let (ns2, sv2, service2) = debian_tree(&d2);
    let mut rr = start_runsvdir(&d2, &service2, &ns_setup(&ns2, &sv2, false));
    let dbus_log2 = ns2.join("log/runit/dbus/current");
    wait_file_has(&dbus_log2, "invoke-run: starting dbus", &rr);
    wait_file_has(
        &ns2.join("log/all.log"),
        "rsyslogd: [origin software=\"rsyslogd\"",
        &rr,
    );
    rr.wait_stdout_contains("invoke-run: starting atd", LONG);
    rr.wait_stderr_contains("invoke-run: starting cron", LONG);
    let ok = wait_until(LONG, || {
        pids_named(&rr, &["rsyslogd", "dbus-daemon", "atd", "cron", "svlogd"]).len() == 5
    });
    let daemons2 = pids_named(&rr, &["rsyslogd", "dbus-daemon", "atd", "cron", "svlogd"]);
    assert!(ok, "{daemons2:?}\n{}", rr.dump());
    let t0 = Instant::now();
    rr.signal(libc::SIGTERM);
    let code2 = rr.wait_exit(LONG);
    let runit_took = t0.elapsed();
    assert!(
        wait_until(MEDIUM, || gone(&daemons2)),
        "daemons outlived the namespace"
    );
    let dbus_current = fs::read_to_string(&dbus_log2).unwrap_or_default();
    println!(
        "runsvdir: output:\n{}\n{}",
        rr.stdout_str(),
        rr.stderr_str()
    );
    println!("runsvdir: /var/log/runit/dbus/current:\n{dbus_current}");
    let dinit_exit = format!("{code} after {dinit_took:.2?}");
    let runit_exit = format!("{code2} after {runit_took:.2?}");
    println!(
        "\nSIGTERM to PID 1            | dinit                      | runsvdir\n\
         ----------------------------+----------------------------+---------------------------\n\
         exit code, time to exit     | {dinit_exit:<27}| {runit_exit}\n\
         rsyslog, dbus, atd          | SIGTERM, exit 0            | SIGKILL by the kernel\n\
         cron (no TERM handler)      | SIGTERM, then its finish   | SIGKILL by the kernel\n\
         finish scripts (dbus, cron) | ran                        | never ran\n\
         dbus logger (svlogd)        | EOF, flushed, exit 0       | SIGKILL by the kernel\n"
    );
    assert_eq!(code2, 0, "runsvdir exits 0 on SIGTERM\n{}", rr.dump());
    // runit's finish writes to the service's log pipe (dbus) or runsvdir's stdout (cron): had
    // it run, these lines would be there.
    assert!(
        !dbus_current.contains("invoke-run: dbus stopped"),
        "{dbus_current}"
    );
    assert!(
        !rr.stdout_str().contains("ERROR -1 in cron")
            && !rr.stderr_str().contains("ERROR -1 in cron"),
        "{}",
        rr.dump()
    );
}

// ---- a phusion/baseimage-style image ----------------------------------------------------------

/// A tree as phusion/baseimage-docker images have it: `/etc/sv/<name>` linked from
/// `/etc/service/<name>`; `run` scripts that `exec 2>&1` and drop privileges with
/// `chpst -u nobody`; loggers `svlogd -tt ./main` (log dir inside the service) and
/// `chpst -u nobody svlogd -tt /var/log/worker`, and a `logger`-based one that first waits for
/// the syslog service with `sv start syslog`; a syslog service with a `check` script; `sshd`
/// disabled by a `down` file (baseimage ships it so); `supervise/` directories left in the
/// image (mode 0555, with a stale `status` file).
fn baseimage_tree(d: &TestDir) -> (PathBuf, PathBuf, PathBuf) {
    let ns = prepare_ns(d);
    let (sv, service) = etc_dirs(d);
    let s = d.scratch().display().to_string();
    let files: &[(&str, String)] = &[
        ("syslog/run", "#!/bin/sh\nexec 2>&1\nexec rsyslogd -n -iNONE\n".into()),
        ("syslog/check", "#!/bin/sh\n[ -S /dev/log ]\n".into()),
        ("web/run", "#!/bin/sh\nexec 2>&1\nexec chpst -u nobody ./web.sh\n".into()),
        (
            "web/web.sh",
            "#!/bin/sh\n\
             trap 'echo \"web: got TERM, closing connections\"; sleep 0.2; echo \"web: bye\"; exit 0' TERM\n\
             echo \"web: serving as $(id -un)\"\n\
             while :; do sleep 0.05; done\n"
                .into(),
        ),
        ("web/log/run", "#!/bin/sh\nexec svlogd -tt ./main\n".into()),
        ("worker/run", "#!/bin/sh\nexec 2>&1\nexec chpst -u nobody ./worker.sh\n".into()),
        (
            "worker/worker.sh",
            "#!/bin/sh\n\
             trap 'echo \"worker: got TERM, finishing the current job\"; echo \"worker: done\"; exit 0' TERM\n\
             echo \"worker: started as $(id -un)\"\n\
             while :; do sleep 0.05; done\n"
                .into(),
        ),
        (
            "worker/log/run",
            "#!/bin/sh\nmkdir -p /var/log/worker\nchown nobody /var/log/worker\n\
             exec chpst -u nobody svlogd -tt /var/log/worker\n"
                .into(),
        ),
        (
            "app/run",
            "#!/bin/sh\nexec 2>&1\ntrap 'echo \"app: stopping\"; exit 0' TERM\n\
             echo \"app: started\"\nwhile :; do sleep 0.05; done\n"
                .into(),
        ),
        (
            "app/log/run",
            "#!/bin/sh\nsv start syslog >&2 || exit 1\nexec logger -t app\n".into(),
        ),
        (
            "sshd/run",
            format!("#!/bin/sh\necho ran > '{s}/sshd.ran'\nexec sleep 100000\n"),
        ),
    ];
    for (name, content) in files {
        write_exec(&sv.join(name), content);
    }
    fs::write(sv.join("sshd/down"), "").unwrap();
    fs::create_dir_all(sv.join("web/log/main")).unwrap();
    for svc in ["syslog", "web", "worker", "app", "sshd"] {
        for sup in [
            sv.join(svc).join("supervise"),
            sv.join(svc).join("log/supervise"),
        ] {
            if sup.parent().unwrap().exists() {
                fs::create_dir_all(&sup).unwrap();
                fs::write(sup.join("status"), [0u8; 20]).unwrap();
                fs::set_permissions(&sup, fs::Permissions::from_mode(0o555)).unwrap();
            }
        }
        enable(&sv, &service, svc);
    }
    for p in [d.root().to_path_buf(), d.scratch().to_path_buf()] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    (ns, sv, service)
}

/// Files and contents of the tree, except what the `svlogd ./main` logger writes.
fn tree_snapshot(sv: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if rel.contains("/log/main/") {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((rel, Vec::new()));
                walk(base, &path, out);
            } else {
                out.push((rel, fs::read(&path).unwrap_or_default()));
            }
        }
    }
    let mut v = Vec::new();
    walk(sv, sv, &mut v);
    v.sort();
    v
}

/// Expect: the baseimage-style tree, with every `supervise/` read-only (bind mounts), runs
/// under dinit: web and worker run as `nobody` and log through svlogd (`web/log/main/current`,
/// `/var/log/worker/current` get the lines with svlogd's timestamps), app logs through
/// `logger` into rsyslog once `sv start syslog` (dinit as `sv`, syslog's `check`) said yes,
/// sshd (`down`) never starts, nothing in the tree is written but svlogd's `./main`. On
/// SIGTERM the TERM handlers run (their last lines reach the svlogd files), every `run` exits
/// 0, the loggers end at EOF; dinit exits 0.
///
/// Contrast: `runsvdir` over a copy (writable `supervise/`, which runsv needs) starts the same
/// services, but on SIGTERM it exits at once and the kernel SIGKILLs web and worker: their TERM
/// handlers never run, their logs end without the goodbye lines.
#[test]
fn baseimage_tree_stops_gracefully_under_dinit_not_runsvdir() {
    if !require_runit("baseimage_tree_stops_gracefully_under_dinit_not_runsvdir") {
        return;
    }
    // ---- dinit
    let d = TestDir::new();
    let (ns, sv, service) = baseimage_tree(&d);
    let before = tree_snapshot(&sv);
    let mut r = start_dinit(&d, &service, &ns_setup(&ns, &sv, true));
    let web_log = sv.join("web/log/main/current");
    let worker_log = ns.join("log/worker/current");
    let all_log = ns.join("log/all.log");
    wait_file_has(&web_log, "web: serving as nobody", &r);
    wait_file_has(&worker_log, "worker: started as nobody", &r);
    wait_file_has(&all_log, "app: app: started", &r);
    r.wait_stderr_contains("app/log: ok: run: syslog: (pid ", LONG);
    // The read-only supervise/ is really read-only in there.
    let w = in_ns(
        &r,
        &d,
        &service,
        &["touch", &format!("{}/web/supervise/x", sv.display())],
    );
    assert_ne!(w.code, 0, "supervise/ is writable: {w:?}");
    assert!(w.stderr.contains("Read-only file system"), "{w:?}");
    let web_pids = pids_named(&r, &["web.sh", "worker.sh"]);
    assert_eq!(web_pids.len(), 2, "{web_pids:?}\n{}", r.dump());

    r.signal(libc::SIGTERM);
    let code = r.wait_exit(LONG);
    println!("dinit: output:\n{}\n{}", r.stdout_str(), r.stderr_str());
    let web_current = fs::read_to_string(&web_log).unwrap_or_default();
    let worker_current = fs::read_to_string(&worker_log).unwrap_or_default();
    println!("dinit: web/log/main/current:\n{web_current}");
    println!("dinit: /var/log/worker/current:\n{worker_current}");
    assert_eq!(code, 0, "{}", r.dump());
    assert!(
        web_current.contains("web: got TERM, closing connections"),
        "{web_current}"
    );
    assert!(web_current.contains("web: bye"), "{web_current}");
    assert!(worker_current.contains("worker: done"), "{worker_current}");
    // svlogd's -tt stamp: `YYYY-MM-DD_HH:MM:SS.xxxxx line`
    let first = web_current.lines().next().unwrap_or_default();
    assert!(
        first.len() > 26
            && first.as_bytes()[10] == b'_'
            && &first[26..] == "web: serving as nobody",
        "{first:?}"
    );
    for s in ["web", "worker", "app", "syslog"] {
        assert!(
            r.own()
                .iter()
                .any(|o| o.text.starts_with(&format!("{s}/run: PID "))
                    && o.text.ends_with("finished with status 0")),
            "{s} did not exit 0\n{}",
            r.dump()
        );
    }
    for s in ["web", "worker", "app"] {
        assert!(
            r.own()
                .iter()
                .any(|o| o.text.starts_with(&format!("{s}/log: PID "))
                    && o.text.ends_with("finished with status 0")),
            "{s}'s logger did not end cleanly\n{}",
            r.dump()
        );
    }
    assert!(
        r.has_own("info", "sshd/run: not starting: down file present"),
        "{}",
        r.dump()
    );
    assert!(!d.exists("sshd.ran"));
    assert_eq!(
        tree_snapshot(&sv),
        before,
        "something wrote into the service tree"
    );

    // ---- runsvdir over a copy
    let d2 = TestDir::new();
    let (ns2, sv2, service2) = baseimage_tree(&d2);
    let mut rr = start_runsvdir(&d2, &service2, &ns_setup(&ns2, &sv2, false));
    let web_log2 = sv2.join("web/log/main/current");
    let worker_log2 = ns2.join("log/worker/current");
    wait_file_has(&web_log2, "web: serving as nobody", &rr);
    wait_file_has(&worker_log2, "worker: started as nobody", &rr);
    wait_file_has(&ns2.join("log/all.log"), "app: app: started", &rr);
    let victims = pids_named(&rr, &["web.sh", "worker.sh", "svlogd", "rsyslogd"]);
    assert_eq!(victims.len(), 5, "{victims:?}\n{}", rr.dump());
    let t0 = Instant::now();
    rr.signal(libc::SIGTERM);
    let code2 = rr.wait_exit(LONG);
    let took = t0.elapsed();
    assert!(
        wait_until(MEDIUM, || gone(&victims)),
        "services outlived the namespace"
    );
    let web2 = fs::read_to_string(&web_log2).unwrap_or_default();
    let worker2 = fs::read_to_string(&worker_log2).unwrap_or_default();
    println!(
        "runsvdir: output:\n{}\n{}",
        rr.stdout_str(),
        rr.stderr_str()
    );
    println!("runsvdir: web/log/main/current:\n{web2}");
    println!("runsvdir: /var/log/worker/current:\n{worker2}");
    println!(
        "\nSIGTERM to PID 1        | dinit                         | runsvdir\n\
         ------------------------+-------------------------------+------------------------------\n\
         exit code               | {code:<30}| {code2} after {took:.2?}\n\
         web, worker TERM traps  | ran, goodbye lines logged     | never ran: SIGKILL by the kernel\n\
         svlogd loggers          | EOF, flushed, exit 0          | SIGKILL by the kernel\n\
         supervise/              | read-only, untouched          | must be writable (runsv)\n"
    );
    assert_eq!(code2, 0, "{}", rr.dump());
    assert!(
        !web2.contains("got TERM") && !web2.contains("web: bye"),
        "{web2}"
    );
    assert!(
        !worker2.contains("got TERM") && !worker2.contains("worker: done"),
        "{worker2}"
    );
    assert!(!d2.exists("sshd.ran"));
}
