//! Contract §14 (a main program from the command line): `dinit -- PROGRAM [ARG...]` runs
//! PROGRAM as the service `main` beside `DINIT_DIR`'s services; its end ends the container with
//! its exit code; a shutdown started by anything else stops it like a service (§6, §7); the
//! signals of §8 reach it; it reads dinit's stdin, and under a terminal it owns the terminal
//! (`docker run -it`). Each scenario runs with dinit as PID 1 and as a subreaper where the two
//! could differ. tests/tini.rs runs the same ideas under tini side by side.
mod common;
#[path = "common/pty.rs"]
mod pty;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// `dinit -- argv...`, as PID 1 or as a subreaper.
fn main_launch(d: &TestDir, pid1: bool, argv: &[&str]) -> Launcher {
    let mut l = launch(d).arg("--");
    for a in argv {
        l = l.arg(a);
    }
    if pid1 { l } else { l.not_pid1() }
}

/// An executable `sh` script `<scratch>/<name>` (with `$S`); its path.
fn script(d: &TestDir, name: &str, body: &str) -> String {
    let p = d.s(name);
    std::fs::write(&p, d.sh(body)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// The info line of the main program's end: `main/run: PID <p> finished <how>`.
fn main_finished(r: &Dinit, how: &str) {
    let pid = r
        .reported_pid("main/run")
        .unwrap_or_else(|| panic!("no `main/run: running with PID`\n{}", r.dump()));
    let line = format!("main/run: PID {pid} finished {how}");
    assert!(r.has_own("info", &line), "no info {line:?}\n{}", r.dump());
}

/// No warning says that a service's end stopped the container (§6's line is not the main
/// program's: its end is how a tini-style container ends).
fn no_stopping_warning(r: &Dinit) {
    assert!(
        !r.own_texts("warning")
            .iter()
            .any(|w| w.contains("stopping all services")),
        "{}",
        r.dump()
    );
}

/// JSON records of `main` (stage `run`) on stdout: their `msg`s.
fn main_msgs(r: &Dinit) -> Vec<String> {
    r.json()
        .iter()
        .filter(|j| j.service() == "main" && j.stage() == "run")
        .filter_map(|j| j.msg().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// exit codes

/// Expect: the main program's exit code is dinit's: 0, 1, 42, 115 (not special for it), 255,
/// and 128+N when it dies of signal N (143 for SIGTERM, 137 for SIGKILL). Its stdout is
/// relayed as JSON records of service `main`, its stderr as `main/run: ` lines; its end is the
/// info line `main/run: PID <p> finished with status <n>` (no warning).
fn exit_codes(pid1: bool) {
    for (cmd, code, how) in [
        ("exit 0", 0, "with status 0"),
        ("exit 1", 1, "with status 1"),
        ("exit 42", 42, "with status 42"),
        ("exit 115", 115, ""),
        ("exit 255", 255, "with status 255"),
        ("kill -TERM $$", 143, "with signal 15"),
        ("kill -KILL $$", 137, "with signal 9"),
    ] {
        let d = TestDir::new();
        let sh = format!("echo out-{code}; echo err-{code} >&2; {cmd}");
        let r = main_launch(&d, pid1, &["sh", "-c", &sh]).info().run();
        assert_eq!(r.code(), code, "{cmd}: {}", r.dump());
        assert_eq!(main_msgs(&r), [format!("out-{code}")], "{}", r.dump());
        assert!(
            r.stderr_records()
                .iter()
                .any(|t| t.name == "main" && t.stage == "run" && t.text() == format!("err-{code}")),
            "{}",
            r.dump()
        );
        // 115 is said as `finished and disabled itself` (the words every service gets for
        // it), although it only ends the container; the code is what this test pins down.
        if !how.is_empty() {
            main_finished(&r, how);
        }
        assert!(r.own_texts("warning").is_empty(), "{}", r.dump());
        assert!(r.has_own("info", &format!("dinit exiting with status {code}")));
    }
}

#[test]
fn exit_codes_pass_through_pid1() {
    exit_codes(true);
}

#[test]
fn exit_codes_pass_through_subreaper() {
    exit_codes(false);
}

/// Expect: a program that is not on `PATH` (or not there at all) → one error line
/// `exiting: main: <program>: no such file or directory`, exit 127; one that cannot be
/// executed (a plain file, by path or found on `PATH`) → `permission denied`, exit 126, as a
/// shell says. A service beside it is stopped (its TERM trap runs).
fn not_found_or_not_executable(pid1: bool) {
    let d = TestDir::new();
    let plain = d.s("plain");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plain = plain.display().to_string();
    let path = format!("{}:{PATH}", d.scratch().display());
    let missing = d.root().join("no/such/program").display().to_string();
    for (program, code, why) in [
        (
            "no-such-program-dinit-test",
            127,
            "no such file or directory",
        ),
        (missing.as_str(), 127, "no such file or directory"),
        (plain.as_str(), 126, "permission denied"),
        ("plain", 126, "permission denied"),
    ] {
        let d2 = TestDir::new();
        d2.svc("side").run(&d2.long_running("side", ""));
        let r = main_launch(&d2, pid1, &[program, "arg"])
            .env("PATH", &path)
            .run();
        assert_eq!(r.code(), code, "{program}: {}", r.dump());
        assert_eq!(
            r.own_texts("error"),
            [format!("exiting: main: {program}: {why}")],
            "{}",
            r.dump()
        );
        // The side service may not have started yet when main fails; if it did, it was
        // stopped gracefully.
        if d2.exists("side.started") {
            assert!(d2.exists("side.term"), "{}", r.dump());
        }
    }
}

#[test]
fn not_found_127_not_executable_126_pid1() {
    not_found_or_not_executable(true);
}

#[test]
fn not_found_127_not_executable_126_subreaper() {
    not_found_or_not_executable(false);
}

/// Expect: tini's use, nothing but the main program: `DINIT_DIR` missing or empty is no error
/// and no "no services" warning; the program's output and code come through.
#[test]
fn main_alone_without_dinit_dir() {
    for (what, dir) in [("missing", Some("no-such-dir")), ("empty", None)] {
        for pid1 in [true, false] {
            let d = TestDir::new();
            let mut l = main_launch(&d, pid1, &["sh", "-c", "echo hello from main; exit 6"]);
            if let Some(dir) = dir {
                l = l.env("DINIT_DIR", d.root().join(dir).to_str().unwrap());
            }
            let r = l.run();
            assert_eq!(r.code(), 6, "DINIT_DIR {what}: {}", r.dump());
            assert_eq!(main_msgs(&r), ["hello from main"], "{}", r.dump());
            assert!(r.own().is_empty(), "DINIT_DIR {what}: {}", r.dump());
        }
    }
    // The contrast: without a main program a missing DINIT_DIR is an error (exit 1).
    let d = TestDir::new();
    let r = launch(&d)
        .env("DINIT_DIR", d.root().join("no-such-dir").to_str().unwrap())
        .run();
    assert_eq!(r.code(), 1, "{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// main and services

/// The main program of the scenarios: traps TERM (`main-term` in events, exit `term_code`),
/// creates `main.started`, then waits.
fn trapping_main(d: &TestDir, term_code: i32, extra: &str) -> String {
    script(
        d,
        "main.sh",
        &format!(
            "trap 'echo main-term >> \"$S/events\"; exit {term_code}' TERM\n\
             {extra}\n\
             echo started > \"$S/main.started\"\n\
             while :; do sleep 0.05; done"
        ),
    )
}

/// Expect: a service that ends stops the container as always (§6: its warning line); the main
/// program gets SIGTERM like any service (its TERM trap runs) and the exit code follows §7,
/// not the main program: `a` exits 7 → 3; `a` exits 0 and main 0 on TERM → 0; `a` exits 0
/// and main 5 on TERM → 3.
fn service_ending_stops_main(pid1: bool) {
    for (a_code, main_code, want) in [(7, 0, 3), (0, 0, 0), (0, 5, 3)] {
        let d = TestDir::new();
        d.svc("a").run(&d.sh(&format!(
            "while [ ! -e \"$S/main.started\" ]; do sleep 0.01; done\nexit {a_code}"
        )));
        let main = trapping_main(&d, main_code, "");
        let r = main_launch(&d, pid1, &[&main]).info().run();
        let case = format!("a exits {a_code}, main {main_code} on TERM");
        assert_eq!(r.code(), want, "{case}: {}", r.dump());
        assert_eq!(d.events(), ["main-term"], "{case}: {}", r.dump());
        let a = r.reported_pid("a/run").unwrap();
        let warn = format!("a/run: PID {a} finished with status {a_code}, stopping all services");
        assert!(r.has_own("warning", &warn), "{case}: {}", r.dump());
        let m = r.reported_pid("main/run").unwrap();
        assert!(
            r.has_own("info", &format!("main/run: sending SIGTERM to PID {m}")),
            "{case}: {}",
            r.dump()
        );
        main_finished(&r, &format!("with status {main_code}"));
    }
}

#[test]
fn service_ending_stops_main_gracefully_pid1() {
    service_ending_stops_main(true);
}

#[test]
fn service_ending_stops_main_gracefully_subreaper() {
    service_ending_stops_main(false);
}

/// Expect: the main program's end stops every service as in a shutdown: `b`'s `terminate`
/// runs (instead of SIGTERM), then `b`'s TERM trap, then `b`'s `finish` (with b's code 1);
/// `c` gets SIGTERM. dinit exits with the main program's code (42, and 0), whatever the
/// services' codes (both exit 1 when stopped, which alone would give 3). No §6 warning.
fn main_ending_stops_services(pid1: bool) {
    for code in [42, 0] {
        let d = TestDir::new();
        let fails_on_term = |tag: &str| {
            d.sh(&format!(
                "trap 'echo {tag}-term >> \"$S/events\"; exit 1' TERM\n\
                 echo started > \"$S/{tag}.started\"\n\
                 while :; do sleep 0.05; done"
            ))
        };
        d.svc("b")
            .run(&fails_on_term("b"))
            .terminate(&d.sh("echo b-terminate >> \"$S/events\"\nkill -TERM \"$DINIT_PID\""))
            .finish(&d.sh("echo \"b-finish $1 $2\" >> \"$S/events\""));
        d.svc("c").run(&fails_on_term("c"));
        let main = script(
            &d,
            "main.sh",
            &format!(
                "while [ ! -e \"$S/b.started\" ] || [ ! -e \"$S/c.started\" ]; do sleep 0.01; done\n\
                 echo main-exits >> \"$S/events\"\nexit {code}"
            ),
        );
        let r = main_launch(&d, pid1, &[&main]).info().run();
        assert_eq!(r.code(), code, "{}", r.dump());
        let ev = d.events();
        let pos = |e: &str| {
            ev.iter()
                .position(|x| x == e)
                .unwrap_or_else(|| panic!("no {e} in {ev:?}\n{}", r.dump()))
        };
        assert_eq!(ev.len(), 5, "{ev:?}");
        assert!(pos("main-exits") < pos("b-terminate"), "{ev:?}");
        assert!(pos("b-terminate") < pos("b-term"), "{ev:?}");
        assert!(pos("b-term") < pos("b-finish 1 0"), "{ev:?}");
        assert!(pos("main-exits") < pos("c-term"), "{ev:?}");
        main_finished(&r, &format!("with status {code}"));
        no_stopping_warning(&r);
        let c = r.reported_pid("c/run").unwrap();
        assert!(r.has_own("info", &format!("c/run: sending SIGTERM to PID {c}")));
    }
}

#[test]
fn main_ending_stops_services_and_its_code_wins_pid1() {
    main_ending_stops_services(true);
}

#[test]
fn main_ending_stops_services_and_its_code_wins_subreaper() {
    main_ending_stops_services(false);
}

/// Expect: SIGHUP and SIGUSR1 sent to dinit reach the main program (and a service beside it)
/// and stop nothing; then SIGTERM stops both gracefully (their TERM traps run): exit 0 (§7).
fn signals_reach_main(pid1: bool) {
    let d = TestDir::new();
    d.svc("side").run(&d.long_running(
        "side",
        "trap 'echo side-hup >> \"$S/events\"' HUP\ntrap 'echo side-usr1 >> \"$S/events\"' USR1",
    ));
    let main = trapping_main(
        &d,
        0,
        "trap 'echo main-hup >> \"$S/events\"' HUP\ntrap 'echo main-usr1 >> \"$S/events\"' USR1",
    );
    let mut r = main_launch(&d, pid1, &[&main]).info().spawn();
    d.wait_file("main.started", LONG);
    d.wait_file("side.started", LONG);
    for (sig, tag) in [(libc::SIGHUP, "hup"), (libc::SIGUSR1, "usr1")] {
        r.signal(sig);
        let want = [format!("main-{tag}"), format!("side-{tag}")];
        let ok = wait_until(LONG, || {
            let ev = d.events();
            want.iter().all(|w| ev.contains(w))
        });
        assert!(
            ok,
            "{tag} did not reach both: {:?}\n{}",
            d.events(),
            r.dump()
        );
        assert!(!r.exited(), "{tag} stopped the container\n{}", r.dump());
    }
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let ev = d.events();
    assert!(
        ev.contains(&"main-term".into()) && ev.contains(&"side-term".into()),
        "{ev:?}"
    );
    assert!(r.has_own("info", "got signal 1, forwarding to services"));
    assert!(r.has_own("info", "got signal 10, forwarding to services"));
    main_finished(&r, "with status 0");
    no_stopping_warning(&r);
}

#[test]
fn signals_reach_main_pid1() {
    signals_reach_main(true);
}

#[test]
fn signals_reach_main_subreaper() {
    signals_reach_main(false);
}

/// Expect: SIGTERM to dinit while the main program does not trap it: the main program dies of
/// the SIGTERM dinit sent it during the shutdown, which does not count (§7): exit 0, not 143
/// (tini would give 143: tests/tini.rs).
#[test]
fn sigterm_to_dinit_with_an_untrapping_main_exits_0() {
    for pid1 in [true, false] {
        let d = TestDir::new();
        let mut r = main_launch(&d, pid1, &["sleep", "100000"]).info().spawn();
        let ok = wait_until(LONG, || {
            r.descendants()
                .iter()
                .any(|&p| proc_comm(p).as_deref() == Some("sleep"))
        });
        assert!(ok, "{}", r.dump());
        r.signal(libc::SIGTERM);
        assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
        main_finished(&r, "with signal 15");
    }
}

// ---------------------------------------------------------------------------------------------
// DINIT_MAIN_EXIT_ZERO

/// Expect: `DINIT_MAIN_EXIT_ZERO=143,130` (tini's `-e 143 -e 130`): the main program dying of
/// SIGTERM (143) or exiting 130 or 143 gives 0; other codes pass through (42). An invalid
/// list is one error line and exit 1, before anything starts.
#[test]
fn main_exit_zero() {
    for (cmd, want) in [
        ("kill -TERM $$", 0),
        ("exit 130", 0),
        ("exit 143", 0),
        ("exit 42", 42),
        ("exit 0", 0),
    ] {
        let d = TestDir::new();
        let r = main_launch(&d, true, &["sh", "-c", cmd])
            .env("DINIT_MAIN_EXIT_ZERO", "143,130")
            .info()
            .run();
        assert_eq!(r.code(), want, "{cmd}: {}", r.dump());
        assert!(r.has_own("info", &format!("dinit exiting with status {want}")));
    }
    // Spaces around the codes are allowed.
    let d = TestDir::new();
    let r = main_launch(&d, false, &["sh", "-c", "exit 3"])
        .env("DINIT_MAIN_EXIT_ZERO", " 3 , 4")
        .run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    for bad in ["x", "256", "1,,2", "-1"] {
        let d = TestDir::new();
        let r = main_launch(&d, true, &["sh", "-c", "echo started > \"$0\""])
            .arg(d.s("started").to_str().unwrap())
            .env("DINIT_MAIN_EXIT_ZERO", bad)
            .run();
        assert_eq!(r.code(), 1, "{bad}: {}", r.dump());
        let errors = r.own_texts("error");
        assert_eq!(errors.len(), 1, "{}", r.dump());
        assert!(
            errors[0].starts_with(&format!(
                "invalid main exit codes {bad}: DINIT_MAIN_EXIT_ZERO"
            )),
            "{}",
            r.dump()
        );
        assert!(!d.exists("started"));
    }
    // It concerns the main program only: a service's end still gives §7's 3.
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nexit 143\n");
    let r = main_launch(&d, true, &["sleep", "100000"])
        .env("DINIT_MAIN_EXIT_ZERO", "143")
        .run();
    assert_eq!(r.code(), 3, "{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// the command line

/// Expect: arguments without `--` are ignored as always (base images' `CMD ["bash"]`): no
/// main program runs, the services do; `dinit --` alone is one error line and exit 1.
#[test]
fn arguments_without_dashes_are_ignored() {
    let d = TestDir::new();
    d.svc("a").run(&d.sh("echo a-ran >> \"$S/events\"\nexit 0"));
    let r = launch(&d)
        .arg("sh")
        .arg("-c")
        .arg("echo main-ran >> \"$0\"; exit 5")
        .arg(d.s("events").to_str().unwrap())
        .info()
        .run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert_eq!(d.events(), ["a-ran"]);
    assert!(!r.own_contains("main/"), "{}", r.dump());
    // `bash` alone, an empty directory: the usual "no services" (exit 0).
    let d = TestDir::new();
    let r = launch(&d).arg("bash").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(r.own_texts("warning").len() == 1, "{}", r.dump());
    // `--` alone.
    let d = TestDir::new();
    d.svc("a").run(&d.sh("echo a-ran >> \"$S/events\"\nexit 0"));
    let r = launch(&d).arg("--").run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    assert_eq!(
        r.stderr_lines().len(),
        1,
        "one error line expected\n{}",
        r.dump()
    );
    assert_eq!(
        r.own_texts("error"),
        ["invalid command line: -- needs a program to run"]
    );
    assert!(d.events().is_empty(), "a service started");
}

/// Expect: a service of `DINIT_DIR` named `main` gives way to the main program: not started,
/// one warning; the other services run as usual.
#[test]
fn service_named_main_gives_way() {
    let d = TestDir::new();
    d.svc("main")
        .run(&d.sh("echo dir-main-ran >> \"$S/events\"\nexec sleep 100000"));
    d.svc("side").run(&d.long_running("side", ""));
    let main = script(
        &d,
        "main.sh",
        "while [ ! -e \"$S/side.started\" ]; do sleep 0.01; done\nexit 4",
    );
    let r = main_launch(&d, true, &[&main]).run();
    assert_eq!(r.code(), 4, "{}", r.dump());
    assert_eq!(d.events(), ["side-term"], "{}", r.dump());
    assert_eq!(
        r.own_texts("warning"),
        [format!(
            "{}/main: not starting: the name is the main program's (dinit --)",
            d.dir_str()
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// control: status, check, sv

/// Expect: the main program is the service `main` for `dinit status` (text and JSON: running,
/// its pid, `dir` empty), `dinit check` (healthy: exit 0) and runit's `sv status main` (with
/// neither `SVDIR` nor `DINIT_DIR` set); `dinit shutdown` stops it (exit 0).
#[test]
fn main_in_status_check_and_sv() {
    let d = TestDir::new();
    let sock = d.root().join("control.sock");
    let mut r = main_launch(&d, true, &["sleep", "100000"]).info().spawn();
    let client = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("DINIT_CONTROL_SOCKET", &sock);
        run_cmd(&mut c, LONG)
    };
    let mut status = serde_json::Value::Null;
    let ok = wait_until(LONG, || {
        let o = client(&["status", "--json"]);
        if o.code != 0 {
            return false;
        }
        status = serde_json::from_str(&o.stdout).unwrap_or_default();
        status["services"][0]["state"] == "running"
    });
    assert!(ok, "status: {status}\n{}", r.dump());
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{status}");
    let m = &services[0];
    let pid = r.reported_pid("main/run").unwrap();
    assert_eq!(m["name"], "main", "{status}");
    assert_eq!(m["dir"], "", "{status}");
    assert_eq!(m["pid"], pid, "{status}");

    let o = client(&["status"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with(&format!("run: main: (pid {pid}) ")),
        "{o:?}"
    );
    let o = client(&["check"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = client(&["check", "main"]);
    assert_eq!(o.code, 0, "{o:?}");

    let bin_dir = d.root().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("sv")).unwrap();
    let mut sv = Command::new(bin_dir.join("sv"));
    sv.args(["status", "main"])
        .env_clear()
        .env("PATH", PATH)
        .env("DINIT_CONTROL_SOCKET", &sock);
    let o = run_cmd(&mut sv, LONG);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with(&format!("run: main: (pid {pid}) ")),
        "{o:?}"
    );

    let o = client(&["shutdown"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    main_finished(&r, "with signal 15");
}

// ---------------------------------------------------------------------------------------------
// stdin

/// Opens the write end of the FIFO `p` once its reader (dinit's stdin) has it open.
fn open_fifo_writer(p: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = None;
    let ok = wait_until(LONG, || {
        f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .ok(); // ENXIO until a reader has it open
        f.is_some()
    });
    assert!(ok, "nobody opened {} for reading", p.display());
    let f = f.unwrap();
    // SAFETY: fcntl on an owned fd: back to blocking writes.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_SETFL, 0) };
    f
}

/// Expect: what is piped into dinit's stdin reaches the main program, line by line as it is
/// written, and its end (EOF) too; a service beside it reads `/dev/null` (EOF at once).
fn stdin_reaches_main(pid1: bool) {
    use std::io::Write;
    let d = TestDir::new();
    let fifo = d.s("stdin");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    d.svc("side").run(&d.long_running(
        "side",
        "if read x; then echo \"side-read:$x\"; else echo side-eof; fi",
    ));
    let mut r = main_launch(
        &d,
        pid1,
        &[
            "sh",
            "-c",
            "while read l; do echo \"got:$l\"; done; echo main-eof; exit 3",
        ],
    )
    .setup(&format!("exec 0<'{}'", fifo.display()))
    .spawn();
    let mut w = open_fifo_writer(&fifo);
    w.write_all(b"hello\n").unwrap();
    r.wait_stdout_contains("got:hello", LONG);
    w.write_all(b"world\n").unwrap();
    r.wait_stdout_contains("got:world", LONG);
    drop(w);
    assert_eq!(r.wait_exit(LONG), 3, "{}", r.dump());
    assert_eq!(
        main_msgs(&r),
        ["got:hello", "got:world", "main-eof"],
        "{}",
        r.dump()
    );
    let side: Vec<String> = r
        .json()
        .iter()
        .filter(|j| j.service() == "side")
        .filter_map(|j| j.msg().map(str::to_string))
        .collect();
    assert_eq!(side, ["side-eof"], "{}", r.dump());
}

#[test]
fn stdin_reaches_main_pid1() {
    stdin_reaches_main(true);
}

#[test]
fn stdin_reaches_main_subreaper() {
    stdin_reaches_main(false);
}

// ---------------------------------------------------------------------------------------------
// a terminal

/// Expect, with dinit's stdin a terminal (`docker run -it`): an interactive `sh` as the main
/// program reads what is typed (`echo hi-$((1+2))` shows `hi-3`, raw on the terminal, not as
/// JSON); Ctrl-C interrupts its foreground job (`sleep 100` ends, the prompt comes back) and
/// neither dinit nor the container notices (no `got signal 2`, the shell still answers);
/// `exit 7` ends the container with 7 and dinit's last words reach the terminal.
fn interactive_shell(pid1: bool) {
    let mut argv = vec!["unshare", "--pid", "--fork", "--mount-proc"];
    if !pid1 {
        argv.extend(["/bin/sh", "-c", "\"$@\"; exit $?", "sh"]);
    }
    let b = bin();
    argv.extend([b.to_str().unwrap(), "--", "sh", "-i"]);
    let d = TestDir::new();
    let dir = d.root().join("no-such-dir");
    let mut t = pty::Pty::spawn(
        &argv,
        &[
            ("PATH", PATH),
            ("DINIT_DIR", dir.to_str().unwrap()),
            ("DINIT_CONTROL_SOCKET", "none"),
            ("DINIT_LOG_LEVEL", "info"),
            ("PS1", "$ "),
        ],
    );
    let at = t.wait_for(0, "$ ", LONG);
    t.type_in("echo hi-$((1+2))\n");
    let at = t.wait_for(at, "hi-3\r\n", LONG);
    let at = t.wait_for(at, "$ ", LONG);

    t.type_in("sleep 100\n");
    let top = t.pid();
    let sleeping = || {
        descendants_of(top)
            .into_iter()
            .filter(|&p| proc_comm(p).as_deref() == Some("sleep"))
            .collect::<Vec<_>>()
    };
    assert!(wait_until(LONG, || !sleeping().is_empty()), "{}", t.seen());
    let s = sleeping()[0];
    // The job is in the terminal's foreground process group (the shell's job control), not
    // in dinit's.
    let stat = std::fs::read_to_string(format!("/proc/{s}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(
        f[2], f[5],
        "sleep's pgrp is not the terminal's foreground: {stat}"
    );
    t.type_in("\x03");
    let at = t.wait_for(at, "$ ", LONG);
    assert!(wait_until(LONG, || sleeping().is_empty()), "{}", t.seen());
    t.type_in("echo alive\n");
    let at = t.wait_for(at, "alive\r\n", LONG);
    let at = t.wait_for(at, "$ ", LONG);
    assert!(
        !t.exited(),
        "the container ended after Ctrl-C:\n{}",
        t.seen()
    );

    t.type_in("exit 7\n");
    assert_eq!(t.wait_exit(LONG), 7, "{}", t.seen());
    t.wait_for(at, "dinit: info: dinit exiting with status 7", LONG);
    let screen = t.seen();
    assert!(
        screen.contains("main/run: PID ") && screen.contains(" finished with status 7"),
        "{screen}"
    );
    assert!(
        !screen.contains("got signal"),
        "dinit got a signal:\n{screen}"
    );
    assert!(
        !screen.contains("\"service\""),
        "JSON on a terminal:\n{screen}"
    );
}

#[test]
fn interactive_shell_on_a_terminal_pid1() {
    interactive_shell(true);
}

#[test]
fn interactive_shell_on_a_terminal_subreaper() {
    interactive_shell(false);
}
