//! Contract §2 (service directory) and notes-open-points "Start and scan".
mod common;
use common::*;

/// Expect: entries starting with `.` (a dir with a `run`, a dangling link) are skipped silently:
/// never started, never mentioned, not fatal; `web` runs; SIGTERM -> exit 0.
#[test]
fn dot_entries_skipped() {
    let d = TestDir::new();
    d.svc(".hidden")
        .run(&d.sh("echo ran > \"$S/hidden.ran\"\nexec sleep 100000"));
    d.svc(".git")
        .run(&d.sh("echo ran > \"$S/git.ran\"\nexec sleep 100000"));
    d.dangling(".dangling");
    d.plain_file(".profile", "x");
    d.svc("web").run(&d.long_running("web", ""));
    let mut r = launch(&d).info().spawn();
    d.wait_file("web.started", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(
        !d.exists("hidden.ran") && !d.exists("git.ran"),
        "a dot-dir was started"
    );
    assert!(
        !r.stderr_str().contains(".hidden") && !r.stderr_str().contains(".dangling"),
        "{}",
        r.dump()
    );
    assert!(
        r.own_texts("error").is_empty() && r.own_texts("warning").is_empty(),
        "{}",
        r.dump()
    );
    assert!(d.exists("web.term"), "web did not get its SIGTERM");
}

/// Expect: non-directories (plain file, symlink to a file, fifo) are skipped silently; the real
/// service runs and exits 0 -> dinit exits 0 with no warning or error.
#[test]
fn plain_files_skipped() {
    let d = TestDir::new();
    d.plain_file("README", "not a service\n");
    std::fs::write(d.s("target-file"), "x").unwrap();
    d.symlink("link-to-file", d.s("target-file"));
    let fifo = std::ffi::CString::new(d.dir().join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    d.svc("web").run(&d.sh("echo ran > \"$S/web.ran\"\nexit 0"));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(d.exists("web.ran"));
    for n in ["README", "link-to-file", "fifo"] {
        assert!(
            !r.own_contains(&format!("{n}/")),
            "{n} treated as a service\n{}",
            r.dump()
        );
    }
    // No error; the one warning is why the container stopped (contract §6).
    assert!(r.own_texts("error").is_empty(), "{}", r.dump());
    assert!(
        r.own_texts("warning")
            .iter()
            .all(|w| w.starts_with("web/run: PID ") && w.ends_with(", stopping all services")),
        "{}",
        r.dump()
    );
}

/// Expect: a symlink to a directory is a service named after the LINK: records carry
/// `"service":"alias"`, argv[0] is `<DINIT_DIR>/alias/run`, cwd is the (resolved) target dir.
#[test]
fn symlinked_service_dir_named_after_link() {
    let d = TestDir::new();
    let target = d.outside_svc("real-name").run(
        &d.sh("echo \"$0\" > \"$S/argv0\"\npwd -P > \"$S/cwd\"\necho '{\"k\":\"v\"}'\nexit 0"),
    );
    d.symlink("alias", target.path());
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let recs = r.json();
    assert!(
        recs.iter()
            .any(|j| j.service() == "alias" && j.stage() == "run" && j.obj["k"] == "v"),
        "{}",
        r.dump()
    );
    assert!(
        !r.stdout_str().contains("real-name") && !r.stderr_str().contains("real-name"),
        "{}",
        r.dump()
    );
    assert_eq!(
        d.read("argv0").trim_end(),
        format!("{}/alias/run", d.dir_str())
    );
    let want = std::fs::canonicalize(target.path()).unwrap();
    assert_eq!(d.read("cwd").trim_end(), want.to_str().unwrap());
    assert!(r.has_own("info", "alias/run: starting"), "{}", r.dump());
}

/// Expect: a dangling entry is fatal: exit 1, final error
/// `exiting: stat <dir>/<name>: no such file or directory`; a service sorted after it never
/// starts; a service sorted before it, if it was started, is stopped (SIGTERM) before the exit.
#[test]
fn dangling_link_is_fatal() {
    let d = TestDir::new();
    d.svc("a-before").run(&d.long_running("a", ""));
    d.dangling("m-dangling");
    d.svc("z-after")
        .run(&d.sh("echo ran > \"$S/z.ran\"\nexec sleep 100000"));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let want = format!(
        "exiting: stat {}/m-dangling: no such file or directory",
        d.dir_str()
    );
    assert!(r.has_own("error", &want), "missing `{want}`\n{}", r.dump());
    assert!(
        !d.exists("z.ran") && !r.own_contains("z-after/run: running"),
        "z-after started\n{}",
        r.dump()
    );
    if let Some(pid) = r.reported_pid("a-before/run") {
        assert!(
            r.has_own(
                "info",
                &format!("a-before/run: sending SIGTERM to PID {pid}")
            ),
            "a-before was started but not stopped\n{}",
            r.dump()
        );
    }
}

/// A dir with `a-good` (long-running, TERM trap) and `b-bad` whose run is broken by `setup`.
/// Expect: exit 1, final error `exiting: <dir>/b-bad/run: <err>` (no `fork/exec`), and `a-good`
/// was stopped: dinit sent it SIGTERM (info line with its pid) and it ended.
fn broken_run(setup: impl FnOnce(&TestDir), err: &str) {
    let d = TestDir::new();
    d.svc("a-good").run(&d.long_running("a", ""));
    setup(&d);
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let want = format!("exiting: {}/b-bad/run: {err}", d.dir_str());
    assert!(
        r.has_own("error", &want),
        "missing error `{want}`\n{}",
        r.dump()
    );
    assert!(!r.stderr_str().contains("fork/exec"), "{}", r.dump());
    let pid = r
        .reported_pid("a-good/run")
        .unwrap_or_else(|| panic!("a-good never started\n{}", r.dump()));
    assert!(
        r.has_own("info", &format!("a-good/run: sending SIGTERM to PID {pid}")),
        "a-good was not sent SIGTERM\n{}",
        r.dump()
    );
    assert!(
        r.own_contains(&format!("a-good/run: PID {pid} finished")),
        "{}",
        r.dump()
    );
}

/// Expect: missing `run` -> `no such file or directory`, exit 1, others stopped.
#[test]
fn run_missing() {
    broken_run(
        |d| {
            d.svc("b-bad").file("notes", "no run here", 0o644);
        },
        "no such file or directory",
    );
}

/// Expect: non-executable `run` -> `permission denied`, exit 1, others stopped.
#[test]
fn run_not_executable() {
    broken_run(
        |d| {
            d.svc("b-bad").file("run", "#!/bin/sh\nexit 0\n", 0o644);
        },
        "permission denied",
    );
}

/// Expect: `run` without shebang (not a binary) -> `exec format error`, exit 1, others stopped.
#[test]
fn run_without_shebang() {
    broken_run(
        |d| {
            d.svc("b-bad")
                .file("run", "echo no shebang\nexit 0\n", 0o755);
        },
        "exec format error",
    );
}

/// Expect: a broken run also stops a healthy service that has a `terminate` script: the
/// script runs with DINIT_PID = the healthy run's pid; exit 1.
#[test]
fn run_broken_other_service_terminate_script_runs() {
    let d = TestDir::new();
    d.svc("a-good")
        .run(&d.long_running("a", ""))
        .terminate(&d.sh("echo \"$DINIT_PID\" > \"$S/term.pid\"\nkill -TERM \"$DINIT_PID\""));
    d.svc("b-bad").file("run", "#!/bin/sh\nexit 0\n", 0o600);
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let pid = r
        .reported_pid("a-good/run")
        .unwrap_or_else(|| panic!("a-good never started\n{}", r.dump()));
    assert_eq!(
        d.read("term.pid").trim_end(),
        pid.to_string(),
        "terminate did not run with DINIT_PID\n{}",
        r.dump()
    );
}

/// Expect: an empty service dir -> warning `no services found, exiting`, exit 0.
#[test]
fn empty_dir() {
    let d = TestDir::new();
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.has_own("warning", "no services found, exiting"),
        "{}",
        r.dump()
    );
}

/// Expect: a dir with only dot-entries and plain files counts as empty: warning, exit 0.
#[test]
fn only_skipped_entries_is_empty() {
    let d = TestDir::new();
    d.svc(".hidden").run(&d.sh("echo ran > \"$S/hidden.ran\""));
    d.plain_file("README", "x");
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.has_own("warning", "no services found, exiting"),
        "{}",
        r.dump()
    );
    assert!(!d.exists("hidden.ran"));
}

/// Expect (add): a dir whose only service has a `down` file counts as empty: the service is not
/// started, warning `no services found, exiting`, exit 0.
#[test]
fn only_down_services_is_empty() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("echo ran > \"$S/a.ran\"\nexec sleep 100000"))
        .down();
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.has_own("warning", "no services found, exiting"),
        "{}",
        r.dump()
    );
    assert!(!d.exists("a.ran"));
}

/// Expect (add): a service with a `down` file is not started (info
/// `<name>/run: not starting: down file present`); the others run; exit 0 when `b` exits 0.
#[test]
fn down_file_not_started() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("echo ran > \"$S/a.ran\"\nexec sleep 100000"))
        .down();
    d.svc("b").run(&d.sh("echo ran > \"$S/b.ran\"\nexit 0"));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(d.exists("b.ran") && !d.exists("a.ran"), "{}", r.dump());
    assert!(
        r.has_own("info", "a/run: not starting: down file present"),
        "{}",
        r.dump()
    );
    assert!(!r.own_contains("a/run: starting"), "{}", r.dump());
}

/// Expect: a missing DINIT_DIR -> exit 1, an error naming the path and the OS error.
#[test]
fn missing_dir() {
    let d = TestDir::new();
    let missing = d.root().join("nope");
    let r = launch(&d).env("DINIT_DIR", missing.to_str().unwrap()).run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let errs = r.own_texts("error");
    assert!(
        errs.iter()
            .any(|e| e.contains(missing.to_str().unwrap())
                && e.contains("no such file or directory")),
        "{}",
        r.dump()
    );
}

/// Expect: DINIT_DIR naming a plain file -> exit 1, an error naming the path and `not a directory`.
#[test]
fn dir_is_a_file() {
    let d = TestDir::new();
    let f = d.s("plain");
    std::fs::write(&f, "x").unwrap();
    let r = launch(&d).env("DINIT_DIR", f.to_str().unwrap()).run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let errs = r.own_texts("error");
    assert!(
        errs.iter()
            .any(|e| e.contains(f.to_str().unwrap()) && e.contains("not a directory")),
        "{}",
        r.dump()
    );
}

/// Expect: a dangling `log/run` means "no logger": the service's stdout goes straight to dinit,
/// exit 0.
#[test]
fn dangling_log_run_means_no_logger() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("echo '{\"x\":1}'\nexit 0"))
        .symlink("log/run", d.root().join("nothing-here"));
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.json()
            .iter()
            .any(|j| j.service() == "a" && j.obj["x"] == 1),
        "{}",
        r.dump()
    );
    assert!(!r.own_contains("a/log:"), "{}", r.dump());
}

/// Expect: a `log/run` that cannot be started -> error
/// `a/log: error running: <dir>/a/log/run: permission denied`, exit 1, and `a`'s run (already
/// started) is stopped.
#[test]
fn logger_not_executable() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.long_running("a", ""))
        .file("log/run", "#!/bin/sh\ncat\n", 0o644);
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let want = format!(
        "a/log: error running: {}/a/log/run: permission denied",
        d.dir_str()
    );
    assert!(r.has_own("error", &want), "missing `{want}`\n{}", r.dump());
    if let Some(pid) = r.reported_pid("a/run") {
        assert!(
            r.has_own("info", &format!("a/run: sending SIGTERM to PID {pid}")),
            "{}",
            r.dump()
        );
    }
}

/// Expect: dinit never writes into the service directories (no `supervise/`, no sockets, no
/// pid files), with run, log/run, terminate and finish all used.
#[test]
fn never_writes_into_service_dirs() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.long_running("a", ""))
        .log_run("#!/bin/sh\ncat\n")
        .terminate("#!/bin/sh\nkill \"$DINIT_PID\"\n")
        .finish("#!/bin/sh\nexit 0\n");
    d.svc("b")
        .run(&d.sh("while [ ! -e \"$S/a.started\" ]; do sleep 0.01; done\nexit 0"))
        .finish("#!/bin/sh\nexit 0\n");
    let before = d.listing();
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert_eq!(d.listing(), before, "the service directory changed");
}
