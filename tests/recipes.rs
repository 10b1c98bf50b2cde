//! The recipes and claims of docs/migrating.md and docs/lifecycle.md, run: what a user who
//! follows them gets.
//!
//! - `sleep & wait` in a trapped loop: the faulty forms leave an orphan that dinit reports, the
//!   fix of docs/lifecycle.md (the block itself, read from the page) leaves none;
//! - phusion/baseimage: `/etc/my_init.d` scripts run before `exec dinit` (the entry point of
//!   docs/migrating.md); one that starts a daemon in the background (as phusion's
//!   `10_syslog-ng.init` starts syslog-ng) loses it under the default policy and keeps it with
//!   `DINIT_REPARENTING_POLICY=adopt`;
//! - Debian's runit services with `policy-rc.d` denying the start: with runit's own `sv` found
//!   first the run script fails and the container stops (exit 3); with dinit as `sv` the
//!   service is down on purpose and the others run on;
//! - `sv start` of a service that runs changes nothing and logs nothing; `sv restart` logs;
//! - tini's single program, the service-directory way (`app`): the exit code is dinit's (0 or 3), and a
//!   `finish` script reports the program's own;
//! - s6-overlay's layout: `cont-init.d` scripts before `exec dinit`, `services.d` as `DINIT_DIR`,
//!   `finish` with s6's (runit's) two arguments.
//!
//! Tests that need a package (runit, runit-services, cron) or ptrace skip by name
//! (`common::skip`) when it is missing.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const SIGTERM: i32 = libc::SIGTERM;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Warnings about processes dinit found reparented to it.
fn orphan_warnings(r: &Dinit) -> Vec<String> {
    r.own_texts("warning")
        .into_iter()
        .filter(|t| t.contains("reparented child process") || t.contains("reaping process"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// sleep & wait (docs/lifecycle.md)

/// Waits until the service's background `sleep` runs.
fn wait_for_sleep(r: &Dinit) {
    let ok = wait_until(LONG, || {
        r.descendants()
            .iter()
            .any(|&p| proc_comm(p).as_deref() == Some("sleep"))
    });
    assert!(ok, "no sleep started: {}", r.dump());
}

/// `trap 'exit 0' TERM` around `sleep & wait $!`: at the stop the shell ends, its `sleep` is
/// left behind and terminated by dinit, with the warning the page explains.
#[test]
fn sleep_wait_with_exiting_trap_leaves_an_orphan() {
    let d = TestDir::new();
    d.svc("w").run(&d.sh("trap 'exit 0' TERM\n\
         echo started > \"$S/w.started\"\n\
         while :; do sleep 5 & wait $!; done"));
    let mut r = launch(&d).info().spawn();
    d.wait_file("w.started", LONG);
    // the first `sleep 5` runs (the loop started it right after the marker)
    wait_for_sleep(&r);
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let w = orphan_warnings(&r);
    assert!(
        w.iter()
            .any(|t| t.contains("terminating reparented child process") && t.ends_with(": sleep 5")),
        "no warning about the left-behind sleep: {w:?}\n{}",
        r.dump()
    );
}

/// The fix, exactly as docs/lifecycle.md prints it (`do_one_job` defined for the test): no
/// warning at the stop, exit 0.
#[test]
fn sleep_wait_fix_of_lifecycle_md_leaves_no_orphan() {
    let page = fs::read_to_string(repo().join("docs/lifecycle.md")).unwrap();
    let block = page
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("do_one_job"))
        .expect("docs/lifecycle.md: no ```sh block with do_one_job");
    let (shebang, body) = block.split_once('\n').unwrap();
    assert_eq!(shebang, "#!/bin/sh");
    let d = TestDir::new();
    let script = format!(
        "#!/bin/sh\nS='{}'\ndo_one_job() {{ echo job >> \"$S/jobs\"; }}\n{body}",
        d.scratch().display()
    );
    d.svc("w").run(&script);
    let mut r = launch(&d).info().spawn();
    d.wait_file("jobs", LONG);
    wait_for_sleep(&r);
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(orphan_warnings(&r), Vec::<String>::new(), "{}", r.dump());
    assert!(
        r.has_own("info", "w/run: PID") || r.own_contains("w/run: PID"),
        "{}",
        r.dump()
    );
}

// ---------------------------------------------------------------------------------------------
// phusion/baseimage's /etc/my_init.d (docs/migrating.md)

/// A `my_init.d` script shaped like phusion's `10_syslog-ng.init`: the daemon started in the
/// background, the script waits until it is up and ends. The daemon writes a heartbeat line to
/// `$S/syslog` every 50 ms (what syslog-ng does with `logger`'s lines).
fn phusion_tree(d: &TestDir) -> String {
    let init_d = d.root().join("my_init.d");
    fs::create_dir_all(&init_d).unwrap();
    let daemon = d.root().join("fake-syslogd");
    fs::write(
        &daemon,
        d.sh("trap 'echo stopped >> \"$S/syslog\"; exit 0' TERM\n\
              i=0\n\
              while :; do i=$((i + 1)); echo \"syslog alive $i\" >> \"$S/syslog\"; sleep 0.05; done"),
    )
    .unwrap();
    fs::write(
        init_d.join("10_syslog.init"),
        d.sh(&format!(
            "{} &\nwhile [ ! -s \"$S/syslog\" ]; do sleep 0.02; done\n",
            daemon.display()
        )),
    )
    .unwrap();
    fs::write(
        init_d.join("20_config.init"),
        d.sh("echo configured > \"$S/config\""),
    )
    .unwrap();
    for f in [
        daemon,
        init_d.join("10_syslog.init"),
        init_d.join("20_config.init"),
    ] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o755)).unwrap();
    }
    d.svc("app").run(&d.long_running("app", ""));
    // the recipe's entry point, with this test's directory for /etc/my_init.d
    format!("for f in {}/*; do \"$f\" || exit 1; done", init_d.display())
}

fn heartbeats(d: &TestDir) -> usize {
    d.read("syslog")
        .lines()
        .filter(|l| l.starts_with("syslog alive"))
        .count()
}

/// Default policy: the daemon a `my_init.d` script left running is terminated within a second,
/// with the warning; the heartbeat stops (what `logger` sends to it is lost).
#[test]
fn phusion_my_init_d_daemon_is_terminated_by_default() {
    let d = TestDir::new();
    let entry = phusion_tree(&d);
    let mut r = launch(&d).info().setup(&entry).spawn();
    d.wait_file("app.started", LONG);
    assert_eq!(d.read("config"), "configured\n");
    r.wait_stderr_contains("terminating reparented child process", LONG);
    assert!(
        wait_until(LONG, || d.read("syslog").contains("stopped")),
        "{}",
        r.dump()
    );
    let n = heartbeats(&d);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(heartbeats(&d), n, "the daemon still writes");
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
}

/// `DINIT_REPARENTING_POLICY=adopt`: the same daemon is adopted and keeps running until the
/// stop, where it gets SIGTERM like a service.
#[test]
fn phusion_my_init_d_daemon_is_kept_with_adopt() {
    let d = TestDir::new();
    let entry = phusion_tree(&d);
    let mut r = launch(&d)
        .info()
        .env("DINIT_REPARENTING_POLICY", "adopt")
        .setup(&entry)
        .spawn();
    d.wait_file("app.started", LONG);
    let why = wait_until(LONG, || {
        r.own_contains("adopting reparented child process") || r.own_contains("error redirecting")
    });
    assert!(why, "{}", r.dump());
    if r.own_contains("error redirecting") {
        skip(
            "phusion_my_init_d_daemon_is_kept_with_adopt",
            &format!("adoption failed here (ptrace): {}", r.stderr_str()),
        );
        return;
    }
    let n = heartbeats(&d);
    assert!(
        wait_until(LONG, || heartbeats(&d) >= n + 20),
        "the adopted daemon stopped writing: {}",
        r.dump()
    );
    assert!(!r.own_contains("terminating reparented"), "{}", r.dump());
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.read("syslog").contains("stopped"), "{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// Debian's runit services and policy-rc.d (docs/migrating.md)

fn require_debian_cron(test: &str) -> bool {
    for (p, pkg) in [
        ("/lib/runit/invoke-run", "runit"),
        ("/usr/bin/sv", "runit"),
        ("/etc/sv/cron/run", "runit-services"),
        ("/usr/sbin/cron", "cron"),
    ] {
        if !Path::new(p).exists() {
            skip(test, &format!("{p} not found (Debian package {pkg})"));
            return false;
        }
    }
    true
}

/// `/etc/sv/cron` (Debian's, unchanged) and a second service, with a policy-rc.d that says 101
/// laid over /usr/sbin inside the test's mount namespace (an overlay: nothing changes outside).
/// `sv_first`: a directory with dinit linked as `sv`, put first in PATH.
fn policy_run(test: &str, dinit_sv_first: bool) -> Option<Dinit> {
    if !require_debian_cron(test) {
        return None;
    }
    let d = Box::leak(Box::new(TestDir::new()));
    d.symlink("cron", "/etc/sv/cron");
    d.svc("tick").run(&d.long_running("tick", ""));
    let over = d.root().join("sbin-over");
    fs::create_dir_all(&over).unwrap();
    let policy = over.join("policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = PATH.to_string();
    if dinit_sv_first {
        let bindir = d.root().join("bin");
        fs::create_dir_all(&bindir).unwrap();
        std::os::unix::fs::symlink(bin(), bindir.join("sv")).unwrap();
        path = format!("{}:{PATH}", bindir.display());
    }
    let setup = format!(
        "mount -t overlay overlay -o lowerdir={}:/usr/sbin /usr/sbin || exit 90",
        over.display()
    );
    let r = launch(d)
        .info()
        .text()
        .env("PATH", &path)
        .setup(&setup)
        .spawn();
    Some(r)
}

/// runit's `sv` answers invoke-run's `sv d cron`: it finds no runsv, the run script exits 1, and
/// the container stops with exit code 3.
#[test]
fn policy_rc_d_with_runits_sv_stops_the_container() {
    let Some(mut r) = policy_run("policy_rc_d_with_runits_sv_stops_the_container", false) else {
        return;
    };
    let code = r.wait_exit(LONG);
    assert_ne!(code, 90, "the overlay mount failed: {}", r.dump());
    assert_eq!(code, 3, "{}", r.dump());
    let err = format!("{}{}", r.stdout_str(), r.stderr_str());
    assert!(
        err.contains("cron/run: action denied by policy-rc.d"),
        "{}",
        r.dump()
    );
    assert!(err.contains("unable to open supervise/ok"), "{}", r.dump());
    assert!(r.own_contains("cron/run: PID"), "{}", r.dump());
}

/// dinit as `sv` first in PATH (docs/migrating.md's link): `sv d cron` is a stop on purpose, the
/// other service runs on; the `sv` client is left behind and reaped with a warning.
#[test]
fn policy_rc_d_with_dinits_sv_leaves_the_service_down() {
    let Some(mut r) = policy_run("policy_rc_d_with_dinits_sv_leaves_the_service_down", true) else {
        return;
    };
    r.wait_stderr_contains("cron/run: down requested by uid 0", LONG);
    assert!(
        r.stdout_str()
            .contains("cron/run: action denied by policy-rc.d"),
        "{}",
        r.dump()
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!r.exited(), "dinit stopped: {}", r.dump());
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// sv start of a running service (docs/migrating.md, "What differs")

fn sv_cmd(d: &TestDir, args: &[&str]) -> CmdOut {
    let link = d.root().join("sv");
    if !link.exists() {
        std::os::unix::fs::symlink(bin(), &link).unwrap();
    }
    let mut cmd = Command::new(&link);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("SVDIR", d.dir())
        .env("DINIT_CONTROL_SOCKET", d.root().join("control.sock"));
    run_cmd(&mut cmd, LONG)
}

/// `sv start db` while db runs: `ok: run: db: …`, nothing changes and no line is logged;
/// `sv restart db` changes something and says who asked.
#[test]
fn sv_start_of_a_running_service_logs_nothing() {
    let d = TestDir::new();
    d.svc("db").run(&d.long_running("db", ""));
    let mut r = launch(&d).info().spawn();
    d.wait_file("db.started", LONG);
    let o = sv_cmd(&d, &["start", "db"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("ok: run: db: (pid "), "{o:?}");
    let o = sv_cmd(&d, &["restart", "db"]);
    assert_eq!(o.code, 0, "{o:?}");
    r.wait_stderr_contains("db/run: restart requested by uid 0", LONG);
    assert!(
        !r.stderr_str().contains("up requested"),
        "a request that changed nothing was logged: {}",
        r.dump()
    );
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// tini, the service-directory way (docs/migrating.md)

/// One service `app` that `exec`s the program, and the page's `finish` that reports the
/// program's own exit code: dinit exits 3 for any failure, 0 for success.
#[test]
fn tini_single_program_as_a_service() {
    for (code, want) in [(0, 0), (5, 3)] {
        let d = TestDir::new();
        d.svc("app")
            .run(&format!(
                "#!/bin/sh\nexec /bin/sh -c 'echo working; exit {code}'\n"
            ))
            .finish("#!/bin/sh\necho \"app exited with code $1 (signal $2)\"\n");
        let mut r = launch(&d).text().info().spawn();
        assert_eq!(r.wait_exit(LONG), want, "{}", r.dump());
        let out = r.stdout_str();
        assert!(out.contains("app/run: working"), "{}", r.dump());
        assert!(
            out.contains(&format!(
                "app/finish: app exited with code {code} (signal 0)"
            )),
            "{}",
            r.dump()
        );
    }
    // SIGTERM (docker stop) reaches the program; the exit code is 0
    let d = TestDir::new();
    d.svc("app").run(&d.long_running("app", ""));
    let mut r = launch(&d).spawn();
    d.wait_file("app.started", LONG);
    r.signal(SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(d.exists("app.term"));
}

// ---------------------------------------------------------------------------------------------
// s6-overlay's layout (docs/migrating.md)

/// `cont-init.d` scripts in order before `exec dinit` (a failing one stops the start, as
/// `S6_BEHAVIOUR_IF_STAGE2_FAILS=2`), `services.d` as `DINIT_DIR` with a `finish` that gets
/// s6's two arguments.
#[test]
fn s6_overlay_layout() {
    let d = TestDir::new();
    let init = d.root().join("cont-init.d");
    fs::create_dir_all(&init).unwrap();
    for (name, body) in [
        ("00-first", "echo 00 >> \"$S/init\""),
        (
            "10-second",
            "echo 10 >> \"$S/init\"; echo port=8080 > \"$S/app.conf\"",
        ),
    ] {
        let p = init.join(name);
        fs::write(&p, d.sh(body)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // services.d/app: reads what cont-init.d wrote, ends with 0 after its first line
    d.svc("app")
        .run(&d.sh("echo \"app: $(cat \"$S/app.conf\")\"\nexec sleep 0.3"))
        .finish(&d.sh("echo \"$1 $2\" > \"$S/finish-args\""));
    d.svc("helper").run(&d.long_running("helper", ""));
    let entry = format!("for f in {}/*; do \"$f\" || exit 1; done", init.display());
    let mut r = launch(&d).text().setup(&entry).spawn();
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(d.read("init"), "00\n10\n");
    assert!(
        r.stdout_str().contains("app/run: app: port=8080"),
        "{}",
        r.dump()
    );
    assert_eq!(d.read("finish-args"), "0 0\n");
    assert!(d.exists("helper.term"), "the other service was not stopped");

    // a failing cont-init.d script: dinit never starts, the exit code is the entry point's
    let p = init.join("20-fails");
    fs::write(&p, d.sh("exit 4")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    let mut r = launch(&d).setup(&entry).spawn();
    assert_eq!(r.wait_exit(LONG), 1, "{}", r.dump());
}
