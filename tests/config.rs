//! Contract §1 (configuration) and notes-open-points "Configuration".
mod common;
use common::*;

/// A dir with one service `a` that records that it ran (`$S/a.ran`) and prints a JSON line and a
/// plain line, then exits 0.
fn one_service() -> TestDir {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("echo ran > \"$S/a.ran\"\necho '{\"a\":1}'\necho plain\nexit 0"));
    d
}

fn check_invalid(var: &str, value: &str, expected: &str, extra: &[(&str, &str)]) -> Option<String> {
    let d = one_service();
    let mut l = launch(&d).env(var, value);
    for (k, v) in extra {
        l = l.env(k, v);
    }
    let r = l.run();
    let lines = r.stderr_lines();
    let own = r.own();
    let mut problems = Vec::new();
    if r.code() != 1 {
        problems.push(format!("exit code {} (expected 1)", r.code()));
    }
    if lines.len() != 1 || own.len() != 1 || own[0].level != "error" || own[0].text != expected {
        problems.push(format!(
            "stderr {lines:?}, expected exactly one line `<ts> dinit: error: {expected}`"
        ));
    }
    if d.exists("a.ran") {
        problems.push("a service was started".into());
    }
    if !r.stdout().is_empty() {
        problems.push(format!("stdout not empty: {:?}", r.stdout_str()));
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{var}={value:?}: {}", problems.join("; ")))
    }
}

fn msg_log_level(v: &str) -> String {
    format!("invalid log level {v}: DINIT_LOG_LEVEL must be one of none, error, warn, info, debug")
}
fn msg_kill(v: &str) -> String {
    format!("invalid kill timeout {v}: DINIT_KILL_TIMEOUT must be a number of seconds")
}
fn msg_policy(v: &str) -> String {
    format!(
        "invalid reparenting policy {v}: DINIT_REPARENTING_POLICY must be one of terminate, adopt, ignore"
    )
}
fn msg_json(v: &str) -> String {
    format!(
        "invalid JSON stdout {v}: DINIT_JSON_STDOUT must be one of 1, true, yes, on, 0, false, no, off"
    )
}
fn msg_stop(v: &str) -> String {
    format!("invalid stop timeout {v}: DINIT_STOP_TIMEOUT must be a number of seconds")
}
fn msg_check(v: &str) -> String {
    format!("invalid check timeout {v}: DINIT_CHECK_TIMEOUT must be a number of seconds")
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

/// Expect: each invalid DINIT_LOG_LEVEL -> exit 1, exactly one stderr line with the notes' text,
/// nothing started, nothing on stdout. Values are compared exactly apart from case.
#[test]
fn invalid_log_level() {
    let mut f = Vec::new();
    for v in ["bogus", "verbose", "trace", " info", "info ", "warnn", "2"] {
        f.extend(check_invalid("DINIT_LOG_LEVEL", v, &msg_log_level(v), &[]));
    }
    report(f);
}

/// Expect: invalid DINIT_KILL_TIMEOUT values (not a number, trailing junk, spaces, overflow of
/// the reference's int64 nanoseconds) -> exit 1 with the notes' text.
#[test]
fn invalid_kill_timeout() {
    let mut f = Vec::new();
    for v in [
        "abc",
        "5s",
        " 5",
        "5 ",
        "1.5.1",
        "0x",
        "--1",
        "_1",
        "1_",
        "9223372037",
        "99999999999999999999",
        "0x7fffffffffffffff",
    ] {
        f.extend(check_invalid("DINIT_KILL_TIMEOUT", v, &msg_kill(v), &[]));
    }
    report(f);
}

/// Expect: the error line is printed even at DINIT_LOG_LEVEL=none (notes), exit 1.
#[test]
fn invalid_value_reported_even_at_level_none() {
    report(
        check_invalid(
            "DINIT_KILL_TIMEOUT",
            "abc",
            &msg_kill("abc"),
            &[("DINIT_LOG_LEVEL", "none")],
        )
        .into_iter()
        .collect(),
    );
}

/// Expect: invalid policies (case-sensitive, the contract only relaxes the log level) -> exit 1.
#[test]
fn invalid_reparenting_policy() {
    let mut f = Vec::new();
    for v in ["Adopt", "kill", "none", "terminate "] {
        f.extend(check_invalid(
            "DINIT_REPARENTING_POLICY",
            v,
            &msg_policy(v),
            &[],
        ));
    }
    report(f);
}

/// Expect (change): any DINIT_JSON_STDOUT outside 1/true/yes/on/0/false/no/off -> exit 1.
#[test]
fn invalid_json_stdout() {
    let mut f = Vec::new();
    for v in ["2", "bogus", "enabled", " 0", "disable"] {
        f.extend(check_invalid("DINIT_JSON_STDOUT", v, &msg_json(v), &[]));
    }
    report(f);
}

/// Expect (add): invalid DINIT_STOP_TIMEOUT / DINIT_CHECK_TIMEOUT -> exit 1 with the notes' texts.
#[test]
fn invalid_stop_and_check_timeout() {
    let mut f = Vec::new();
    for v in ["abc", "1.2.3", "10x"] {
        f.extend(check_invalid("DINIT_STOP_TIMEOUT", v, &msg_stop(v), &[]));
        f.extend(check_invalid("DINIT_CHECK_TIMEOUT", v, &msg_check(v), &[]));
    }
    report(f);
}

/// Expect: with several invalid values only the first in the notes' order (log level, kill
/// timeout, policy, JSON stdout, stop timeout, check timeout) is reported.
#[test]
fn validation_order() {
    let mut f = Vec::new();
    f.extend(check_invalid(
        "DINIT_LOG_LEVEL",
        "x1",
        &msg_log_level("x1"),
        &[("DINIT_KILL_TIMEOUT", "x2")],
    ));
    f.extend(check_invalid(
        "DINIT_KILL_TIMEOUT",
        "x2",
        &msg_kill("x2"),
        &[
            ("DINIT_REPARENTING_POLICY", "x3"),
            ("DINIT_JSON_STDOUT", "x4"),
        ],
    ));
    f.extend(check_invalid(
        "DINIT_REPARENTING_POLICY",
        "x3",
        &msg_policy("x3"),
        &[("DINIT_JSON_STDOUT", "x4"), ("DINIT_STOP_TIMEOUT", "x5")],
    ));
    f.extend(check_invalid(
        "DINIT_JSON_STDOUT",
        "x4",
        &msg_json("x4"),
        &[("DINIT_STOP_TIMEOUT", "x5"), ("DINIT_CHECK_TIMEOUT", "x6")],
    ));
    f.extend(check_invalid(
        "DINIT_STOP_TIMEOUT",
        "x5",
        &msg_stop("x5"),
        &[("DINIT_CHECK_TIMEOUT", "x6")],
    ));
    report(f);
}

/// Runs `one_service` with `var=value` and returns a description of what went wrong, if the
/// value was not accepted (exit 0, service ran).
fn check_valid(var: &str, value: &str) -> Option<String> {
    let d = one_service();
    let r = launch(&d).env(var, value).run();
    if r.code() == 0 && d.exists("a.ran") && r.own_texts("error").is_empty() {
        None
    } else {
        Some(format!(
            "{var}={value:?}: exit {} ran={} stderr={:?}",
            r.code(),
            d.exists("a.ran"),
            r.stderr_lines()
        ))
    }
}

/// Expect: the reference's integer forms (decimal, sign, hex, octal both ways, binary, `_`),
/// zero/negative, the largest valid value and empty (= unset) are accepted: the service runs and
/// dinit exits 0.
#[test]
fn valid_kill_timeouts_reference_forms() {
    let mut f = Vec::new();
    for v in [
        "0",
        "5",
        "-1",
        "+3",
        "0x10",
        "0X1f",
        "0o17",
        "010",
        "0b101",
        "1_000",
        "9223372036",
        "",
    ] {
        f.extend(check_valid("DINIT_KILL_TIMEOUT", v));
    }
    report(f);
}

/// Expect (change): decimal fractions are accepted.
#[test]
fn valid_kill_timeouts_fractions() {
    let mut f = Vec::new();
    for v in ["0.5", ".5", "-1.5", "2.25"] {
        f.extend(check_valid("DINIT_KILL_TIMEOUT", v));
    }
    report(f);
}

/// Expect: every documented log level and empty are accepted.
#[test]
fn valid_log_levels() {
    let mut f = Vec::new();
    for v in ["none", "error", "warn", "info", "debug", ""] {
        f.extend(check_valid("DINIT_LOG_LEVEL", v));
    }
    report(f);
}

/// Expect (change): log levels are case-insensitive and `warning` means `warn`.
#[test]
fn log_level_case_insensitive_and_warning() {
    let mut f = Vec::new();
    for v in ["INFO", "Warn", "DeBuG", "warning", "WARNING", "None"] {
        f.extend(check_valid("DINIT_LOG_LEVEL", v));
    }
    // `Info` really means info: the info lines are shown.
    let d = one_service();
    let r = launch(&d).env("DINIT_LOG_LEVEL", "Info").run();
    if !r.has_own("info", "a/run: starting") {
        f.push(format!("`Info` does not show info lines: {}", r.dump()));
    }
    report(f);
}

/// Expect: the three policies and empty are accepted; STOP/CHECK timeouts accept numbers.
#[test]
fn valid_policies_and_other_timeouts() {
    let mut f = Vec::new();
    for v in ["terminate", "adopt", "ignore", ""] {
        f.extend(check_valid("DINIT_REPARENTING_POLICY", v));
    }
    for v in ["0", "5", "0.5", ""] {
        f.extend(check_valid("DINIT_STOP_TIMEOUT", v));
        f.extend(check_valid("DINIT_CHECK_TIMEOUT", v));
    }
    report(f);
}

/// Expect: info level shows `a/run: starting` and `a/run: running with PID n`; debug too;
/// warn (the default), error and none hide them.
#[test]
fn log_level_gates_info_lines() {
    let mut f = Vec::new();
    for (lvl, shown) in [
        (Some("info"), true),
        (Some("debug"), true),
        (None, false),
        (Some("warn"), false),
        (Some("error"), false),
        (Some("none"), false),
    ] {
        let d = one_service();
        let mut l = launch(&d);
        if let Some(v) = lvl {
            l = l.env("DINIT_LOG_LEVEL", v);
        }
        let r = l.run();
        let has = r.has_own("info", "a/run: starting") && r.reported_pid("a/run").is_some();
        let any_info = !r.own_texts("info").is_empty();
        if r.code() != 0 || has != shown || (!shown && any_info) {
            f.push(format!(
                "level {lvl:?}: exit {} info shown={} stderr={:?}",
                r.code(),
                has,
                r.stderr_lines()
            ));
        }
    }
    report(f);
}

/// Whether stdout shows JSON mode (the `{"a":1}` line as a JSON record) or text mode (a text
/// record `a/run: {"a":1}`).
fn json_mode_of(r: &Dinit) -> Option<bool> {
    let lines: Vec<String> = r
        .stdout_lines()
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let first = lines.first()?;
    if serde_json::from_str::<Value>(first)
        .map(|v| v["a"] == 1 && v["service"] == "a")
        .unwrap_or(false)
    {
        return Some(true);
    }
    let recs = r.stdout_records();
    if recs
        .iter()
        .any(|t| t.name == "a" && t.stage == "run" && t.text() == "{\"a\":1}")
    {
        return Some(false);
    }
    None
}

fn check_switch(cases: &[(Option<&str>, bool)]) {
    let mut f = Vec::new();
    for &(v, json) in cases {
        let d = one_service();
        let mut l = launch(&d);
        if let Some(v) = v {
            l = l.env("DINIT_JSON_STDOUT", v);
        }
        let r = l.run();
        let mode = json_mode_of(&r);
        if r.code() != 0 || mode != Some(json) {
            f.push(format!(
                "DINIT_JSON_STDOUT={v:?}: exit {} json mode {mode:?}\n{}",
                r.code(),
                r.dump()
            ));
        }
    }
    report(f);
}

/// Expect: JSON mode is on by default, for empty and for `1`; `0` turns it off (text records
/// `<ts> a/run: <line>` on stdout).
#[test]
fn json_stdout_switch() {
    check_switch(&[
        (None, true),
        (Some(""), true),
        (Some("1"), true),
        (Some("0"), false),
    ]);
}

/// Expect (change): true/yes/on keep JSON on and false/no/off turn it off, any case.
#[test]
fn json_stdout_switch_words() {
    check_switch(&[
        (Some("true"), true),
        (Some("YES"), true),
        (Some("On"), true),
        (Some("false"), false),
        (Some("No"), false),
        (Some("OFF"), false),
    ]);
}

/// Expect: `--version` alone prints `dinit <version>` on stdout and exits 0 without starting
/// any service.
#[test]
fn version_flag() {
    let d = one_service();
    let r = launch(&d).info().arg("--version").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert_eq!(
        r.stdout_str(),
        format!("dinit {}\n", env!("CARGO_PKG_VERSION")),
        "{}",
        r.dump()
    );
    assert!(!d.exists("a.ran"), "a service ran");
    assert!(!r.own_contains("starting"), "{}", r.dump());
}

/// Expect: `--help` alone prints a usage text (mentioning dinit) on stdout, exits 0, starts
/// nothing.
#[test]
fn help_flag() {
    let d = one_service();
    let r = launch(&d).info().arg("--help").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.stdout_str().to_lowercase().contains("dinit"),
        "{}",
        r.dump()
    );
    assert!(!d.exists("a.ran"), "a service ran");
    assert!(!r.own_contains("starting"), "{}", r.dump());
}

/// Expect: other arguments are ignored (e.g. the `bash` CMD of base images, `--version` that is
/// not the only argument): services run normally, exit 0, no version output.
#[test]
fn other_arguments_ignored() {
    let mut f = Vec::new();
    for args in [
        vec!["bash"],
        vec!["--version", "x"],
        vec!["-c", "--help"],
        vec!["--foo"],
        vec!["x", "--version"],
    ] {
        let d = one_service();
        let mut l = launch(&d);
        for a in &args {
            l = l.arg(a);
        }
        let r = l.run();
        let normal = json_mode_of(&r) == Some(true) && !r.stdout_str().contains("dinit ");
        if r.code() != 0 || !d.exists("a.ran") || !normal {
            f.push(format!(
                "args {args:?}: exit {} ran={} {}",
                r.code(),
                d.exists("a.ran"),
                r.dump()
            ));
        }
    }
    report(f);
}

/// Expect: without DINIT_DIR dinit reads /etc/service; here it does not exist, so exit 1 with an
/// error naming /etc/service. Whatever the machine has there (runit's package links
/// `/etc/service` into `/etc/runit`), dinit runs with an empty tmpfs over `/etc` in its own
/// mount namespace (it is static and reads nothing else from `/etc`), so the case is tested on
/// every machine and the machine's services are never started.
#[test]
fn default_dir_is_etc_service() {
    let d = TestDir::new();
    let r = launch(&d)
        .env_remove("DINIT_DIR")
        .setup("mount -t tmpfs -o mode=0755 dinit-test-etc /etc || exit 97")
        .run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let errs = r.own_texts("error");
    assert!(
        errs.iter()
            .any(|e| e.contains("/etc/service") && e.contains("no such file or directory")),
        "{}",
        r.dump()
    );
}

/// Expect (change): a relative DINIT_DIR is resolved against dinit's cwd: the service runs with
/// its directory as cwd, `$0` resolves to its run file; exit 0.
#[test]
fn relative_dinit_dir() {
    let d = TestDir::new();
    d.svc("web")
        .run(&d.sh("pwd -P > \"$S/cwd\"\necho \"$0\" > \"$S/argv0\"\nexit 0"));
    let r = launch(&d).env("DINIT_DIR", "service").cwd(d.root()).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let want = std::fs::canonicalize(d.dir().join("web")).unwrap();
    assert_eq!(d.read("cwd").trim_end(), want.to_str().unwrap());
    let argv0 = d.read("argv0");
    let argv0 = argv0.trim_end();
    assert!(
        argv0.starts_with('/'),
        "argv[0] {argv0:?} should be absolute (resolved at start)"
    );
    assert_eq!(std::fs::canonicalize(argv0).unwrap(), want.join("run"));
}

/// Runs a service that leaves a TERM-ignoring orphan (`sleep`) and measures, from dinit's own
/// timestamps, the time between `sending SIGTERM` and `sending SIGKILL` to it.
fn orphan_kill_delay_ms(timeout: &str) -> i64 {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.sh("( ( trap '' TERM; exec sleep 100000 ) & )\n\
         echo spawned > \"$S/spawned\"\n\
         exec sleep 100000"));
    let r = launch(&d).info().env("DINIT_KILL_TIMEOUT", timeout).spawn();
    let kill = r.wait_stderr("sending SIGKILL to the orphan", LONG, |l| {
        l.contains("dinit: info: sleep/") && l.contains("sending SIGKILL to PID")
    });
    let own = r.own();
    let term = own
        .iter()
        .find(|o| o.text.starts_with("sleep/") && o.text.contains("sending SIGTERM to PID"))
        .unwrap_or_else(|| panic!("no SIGTERM line for the orphan\n{}", r.dump()))
        .clone();
    let kill_ts = kill.split(' ').next().unwrap().to_string();
    r.signal(libc::SIGTERM);
    let mut r = r;
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    ts_millis(&kill_ts) - ts_millis(&term.ts)
}

/// Expect: DINIT_KILL_TIMEOUT=0x1 (hex, reference syntax) -> a TERM-ignoring orphan gets SIGKILL
/// about 1 s after SIGTERM (>= 990 ms, < 8 s).
#[test]
fn kill_timeout_hex_is_used() {
    let ms = orphan_kill_delay_ms("0x1");
    assert!(
        (990..8000).contains(&ms),
        "SIGKILL came {ms} ms after SIGTERM"
    );
}

/// Expect (change): DINIT_KILL_TIMEOUT=0.5 -> SIGKILL about 0.5 s after SIGTERM (>= 490 ms, < 5 s).
#[test]
fn kill_timeout_fraction_is_used() {
    let ms = orphan_kill_delay_ms("0.5");
    assert!(
        (490..5000).contains(&ms),
        "SIGKILL came {ms} ms after SIGTERM"
    );
}

/// Expect: a negative DINIT_KILL_TIMEOUT means SIGKILL at once (< 900 ms after SIGTERM).
#[test]
fn kill_timeout_negative_is_immediate() {
    let ms = orphan_kill_delay_ms("-1");
    assert!((0..900).contains(&ms), "SIGKILL came {ms} ms after SIGTERM");
}
