//! tini's own test ideas that apply to `dinit -- PROGRAM` (contract §14), each scenario run
//! under tini (Debian's `/usr/bin/tini`) and under dinit, asserting the same observable
//! result; where dinit deliberately differs, the test says why and checks each side's
//! behaviour. Both run as PID 1 of a PID namespace (the harness's `launch`), and as a
//! subreaper under an `sh` PID 1 (`tini -s`, dinit's own subreaper mode) where it matters.
//!
//! From tini's test suite: the exit-code test (codes passed through; `-e` ≙
//! `DINIT_MAIN_EXIT_ZERO`), the signals test (a signal sent to the init reaches the child,
//! which dies of it), the reaping test (a child leaves orphans behind; every one is reaped),
//! the signal-configuration test (what the child inherits), and the `docker run -it` use
//! (an interactive shell in the terminal's foreground). Not applicable: `-g` (dinit signals
//! the main program's process only), `-p` (parent-death signal), `-P` (tini's post commands),
//! `-w` (reaping warnings).
//!
//! Skipped (recorded by `common::skip`) when `/usr/bin/tini` is missing (Debian's `tini`
//! package; scripts/test.sh installs it).
mod common;
#[path = "common/pty.rs"]
mod pty;
use common::*;
use std::path::Path;

const TINI: &str = "/usr/bin/tini";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    Tini,
    Dinit,
}

const BOTH: [Init; 2] = [Init::Tini, Init::Dinit];

#[must_use]
fn require_tini(test: &str) -> bool {
    if Path::new(TINI).exists() {
        return true;
    }
    skip(
        test,
        &format!(
            "{TINI} not found: this test compares dinit with tini (install Debian's `tini` \
             package: apt-get install tini; scripts/test.sh does)"
        ),
    );
    false
}

/// `<init> -- argv...`: tini (with `-s` as a subreaper) or dinit, as PID 1 or as a subreaper.
fn under(init: Init, d: &TestDir, pid1: bool, argv: &[&str]) -> Launcher {
    let mut l = launch(d);
    if init == Init::Tini {
        l = l.program(TINI);
        if !pid1 {
            l = l.arg("-s");
        }
    }
    l = l.arg("--");
    for a in argv {
        l = l.arg(a);
    }
    if pid1 { l } else { l.not_pid1() }
}

/// The scenario under `init` to its end: the exit code.
fn code_under(init: Init, pid1: bool, argv: &[&str], env: &[(&str, &str)]) -> (i32, Dinit) {
    let d = TestDir::new();
    let r = under(init, &d, pid1, argv).envs(env).run();
    (r.code(), r)
}

/// Waits until a `comm` process is among the init's descendants.
fn wait_comm(r: &Dinit, comm: &str) {
    let ok = wait_until(LONG, || {
        r.descendants()
            .iter()
            .any(|&p| proc_comm(p).as_deref() == Some(comm))
    });
    assert!(ok, "no {comm} process appeared\n{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// exit codes

/// tini's exit-code test: the child's code is the init's, 128+N for a death by signal N, and
/// 127/126 for a program that is missing or cannot be executed (both say so on stderr, each
/// in its own words). Same under both.
fn exit_codes(test: &str, pid1: bool) {
    if !require_tini(test) {
        return;
    }
    let mut cases: Vec<(String, i32)> = [0, 1, 2, 3, 42, 115, 126, 127, 128, 255]
        .iter()
        .map(|c| (format!("exit {c}"), *c))
        .collect();
    for (sig, n) in [
        ("HUP", 1),
        ("INT", 2),
        ("KILL", 9),
        ("USR1", 10),
        ("TERM", 15),
    ] {
        cases.push((format!("kill -{sig} $$"), 128 + n));
    }
    for (cmd, want) in &cases {
        for init in BOTH {
            let (code, r) = code_under(init, pid1, &["sh", "-c", cmd], &[]);
            assert_eq!(code, *want, "{init:?}: sh -c {cmd:?}\n{}", r.dump());
        }
    }
    for (program, want) in [("no-such-program-dinit-test", 127), ("/etc/passwd", 126)] {
        for init in BOTH {
            let (code, r) = code_under(init, pid1, &[program], &[]);
            assert_eq!(code, want, "{init:?}: {program}\n{}", r.dump());
            assert!(r.stderr_str().contains(program), "{}", r.dump());
        }
    }
}

#[test]
fn exit_codes_like_tini_pid1() {
    exit_codes("exit_codes_like_tini_pid1", true);
}

#[test]
fn exit_codes_like_tini_subreaper() {
    exit_codes("exit_codes_like_tini_subreaper", false);
}

/// tini's `-e` test: `tini -e N` and `DINIT_MAIN_EXIT_ZERO=N` turn code N into 0 (143: a
/// death by SIGTERM); with every other code listed, N passes through.
#[test]
fn exit_code_remapping_like_tini_e() {
    if !require_tini("exit_code_remapping_like_tini_e") {
        return;
    }
    for (cmd, n) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 42", 42),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
    ] {
        let others: Vec<String> = (0..=255)
            .filter(|c| *c != n)
            .map(|c| c.to_string())
            .collect();
        // Inclusive: N alone → 0.
        let mut tini: Vec<String> = vec!["-e".into(), n.to_string(), "--".into()];
        let t = tini_run(&tini, cmd);
        let n_str = n.to_string();
        let (dn, r) = code_under(
            Init::Dinit,
            true,
            &["sh", "-c", cmd],
            &[("DINIT_MAIN_EXIT_ZERO", &n_str)],
        );
        assert_eq!((t, dn), (0, 0), "-e {n}: {cmd}\n{}", r.dump());
        // Exclusive: every other code → N.
        tini = others
            .iter()
            .flat_map(|c| ["-e".to_string(), c.clone()])
            .collect();
        tini.push("--".into());
        let t = tini_run(&tini, cmd);
        let list = others.join(",");
        let (dn, r) = code_under(
            Init::Dinit,
            true,
            &["sh", "-c", cmd],
            &[("DINIT_MAIN_EXIT_ZERO", &list)],
        );
        assert_eq!((t, dn), (n, n), "all but {n}: {cmd}\n{}", r.dump());
    }
}

/// `tini <args> sh -c <cmd>` as PID 1: its exit code.
fn tini_run(args: &[String], cmd: &str) -> i32 {
    let d = TestDir::new();
    let mut l = launch(&d).program(TINI);
    for a in args {
        l = l.arg(a);
    }
    let r = l.arg("sh").arg("-c").arg(cmd).run();
    r.code()
}

// ---------------------------------------------------------------------------------------------
// signals

/// tini's signals test: the child (`sleep`, no handlers) dies of the signal sent to the init,
/// whose code is then 128+N: SIGHUP, SIGUSR1 and SIGUSR2 are forwarded by both (§8).
///
/// Deliberate difference: SIGTERM, SIGINT and SIGQUIT. tini forwards them (the child dies,
/// 143/130/131); to dinit they are a graceful shutdown (§8): the main program gets SIGTERM
/// like every service, and its death by the signal dinit sent during the shutdown does not
/// count (§7): 0, as `docker stop` of any dinit container. (tini users who wrote `-e 143`
/// for that need nothing.)
fn signals(test: &str, pid1: bool) {
    if !require_tini(test) {
        return;
    }
    for (sig, tini_code, dinit_code) in [
        (libc::SIGHUP, 129, 129),
        (libc::SIGUSR1, 138, 138),
        (libc::SIGUSR2, 140, 140),
        (libc::SIGTERM, 143, 0),
        (libc::SIGINT, 130, 0),
        (libc::SIGQUIT, 131, 0),
    ] {
        for (init, want) in [(Init::Tini, tini_code), (Init::Dinit, dinit_code)] {
            let d = TestDir::new();
            let mut r = under(init, &d, pid1, &["sleep", "100000"]).spawn();
            wait_comm(&r, "sleep");
            r.signal(sig);
            assert_eq!(
                r.wait_exit(LONG),
                want,
                "{init:?}, signal {sig}\n{}",
                r.dump()
            );
        }
    }
}

#[test]
fn signals_like_tini_pid1() {
    signals("signals_like_tini_pid1", true);
}

#[test]
fn signals_like_tini_subreaper() {
    signals("signals_like_tini_subreaper", false);
}

/// A child that handles SIGTERM: both inits deliver it (tini forwards it, dinit stops the main
/// program with it) and the handler runs. When the handler exits 0, both exit 0. When it
/// exits 3, tini passes the 3 on; dinit exits 0 (deliberate, §7: the shutdown was asked for
/// by the signal, which records 0 first; a program's code during a shutdown does not
/// replace it).
#[test]
fn sigterm_handler_like_tini() {
    if !require_tini("sigterm_handler_like_tini") {
        return;
    }
    for (handler_code, tini_code, dinit_code) in [(0, 0, 0), (3, 3, 0)] {
        for (init, want) in [(Init::Tini, tini_code), (Init::Dinit, dinit_code)] {
            let d = TestDir::new();
            let main = d.sh(&format!(
                "trap 'echo handled > \"$S/handled\"; exit {handler_code}' TERM\n\
                 echo started > \"$S/started\"\n\
                 while :; do sleep 0.05; done"
            ));
            let mut r = under(init, &d, true, &["sh", "-c", &main]).spawn();
            d.wait_file("started", LONG);
            r.signal(libc::SIGTERM);
            assert_eq!(r.wait_exit(LONG), want, "{init:?}\n{}", r.dump());
            assert!(d.exists("handled"), "{init:?}: the handler did not run");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// reaping

/// tini's reaping test: the main program's child starts sleeps and exits without waiting for
/// them, so they become orphans of the init; the main program then watches the init's
/// descendants until only itself is left (every orphan ended and was reaped, no zombie) and
/// exits 0, or gives up after 20 s with 1. It prints how many orphans it saw at once.
const REAPING: &str = r#"
import os, subprocess, sys, time
if os.fork() == 0:
    for i in range(30):
        subprocess.Popen(["sleep", "0.%d" % (2 + i % 5)])
    os._exit(0)
os.wait()
init, me = os.getppid(), os.getpid()
def children(p):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % p):
            with open("/proc/%d/task/%s/children" % (p, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out
def descendants(p):
    out, todo = [], children(p)
    while todo:
        c = todo.pop()
        out.append(c)
        todo += children(c)
    return out
most, end = 0, time.time() + 20
while time.time() < end:
    others = [p for p in descendants(init) if p != me]
    most = max(most, len(others))
    if not others:
        print("all reaped; most orphans at once: %d" % most, flush=True)
        sys.exit(0)
    time.sleep(0.02)
print("left: %s" % others, flush=True)
sys.exit(1)
"#;

/// Same under both, as PID 1 and as a subreaper: every orphan of the main program's child is
/// reaped. dinit runs with `DINIT_REPARENTING_POLICY=ignore` (tini's behaviour: orphans left
/// to run) and with its default `terminate`, which sends the orphans SIGTERM (a deliberate
/// difference: nothing outlives its service in a dinit container); both reap everything.
fn reaping(test: &str, pid1: bool) {
    if !require_tini(test) {
        return;
    }
    for (init, policy) in [
        (Init::Tini, None),
        (Init::Dinit, Some("ignore")),
        (Init::Dinit, None),
    ] {
        let d = TestDir::new();
        let mut l = under(init, &d, pid1, &["python3", "-c", REAPING]);
        if let Some(p) = policy {
            l = l.env("DINIT_REPARENTING_POLICY", p);
        }
        let r = l.run();
        assert_eq!(r.code(), 0, "{init:?} {policy:?}\n{}", r.dump());
        let out = r.stdout_str();
        assert!(out.contains("all reaped;"), "{out}");
        if init == Init::Tini || policy == Some("ignore") {
            // With the orphans left to run, the watcher saw them before they ended.
            assert!(
                !out.contains("most orphans at once: 0\n"),
                "{init:?}: the scenario made no orphans\n{}",
                r.dump()
            );
        }
    }
}

#[test]
fn zombies_reaped_like_tini_pid1() {
    reaping("zombies_reaped_like_tini_pid1", true);
}

#[test]
fn zombies_reaped_like_tini_subreaper() {
    reaping("zombies_reaped_like_tini_subreaper", false);
}

// ---------------------------------------------------------------------------------------------
// what the child inherits

/// The hex mask of `/proc/self/status`'s `field` in the child's output.
fn mask(out: &str, field: &str) -> u64 {
    let l = out
        .lines()
        .find(|l| l.contains(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"));
    let hex = l.rsplit(['\t', ' ', '"']).find(|s| !s.is_empty()).unwrap();
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad {field} in {l:?}"))
}

/// tini's signal-configuration test, the other way round: an init started with SIGINT and
/// SIGUSR2 ignored and SIGUSR1 blocked. tini hands that on to its child (its test asserts
/// it); dinit deliberately does not (§3: every program starts with an empty signal mask and
/// every disposition at its default, whatever dinit inherited: a service that relies on
/// SIGINT or SIGTERM must get them).
#[test]
fn signal_mask_and_dispositions_vs_tini() {
    if !require_tini("signal_mask_and_dispositions_vs_tini") {
        return;
    }
    let bit = |s: i32| 1u64 << (s - 1);
    for init in BOTH {
        let d = TestDir::new();
        let r = under(init, &d, true, &["grep", "^Sig", "/proc/self/status"])
            .text()
            .ignore_signals(&[libc::SIGINT, libc::SIGUSR2])
            .block_signals(&[libc::SIGUSR1])
            .run();
        assert_eq!(r.code(), 0, "{}", r.dump());
        let out = r.stdout_str();
        let (ign, blk) = (mask(&out, "SigIgn"), mask(&out, "SigBlk"));
        match init {
            Init::Tini => {
                assert_eq!(ign, bit(libc::SIGINT) | bit(libc::SIGUSR2), "{out}");
                assert_eq!(blk, bit(libc::SIGUSR1), "{out}");
            }
            Init::Dinit => {
                assert_eq!(
                    ign, 0,
                    "ignored signals in the main program: {ign:#x}\n{out}"
                );
                assert_eq!(
                    blk, 0,
                    "blocked signals in the main program: {blk:#x}\n{out}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// stdin, the command line, a terminal

/// Both hand their stdin to the child. The output differs deliberately: tini's child writes
/// to tini's stdout itself; dinit relays it as JSON records of service `main`.
#[test]
fn stdin_like_tini() {
    if !require_tini("stdin_like_tini") {
        return;
    }
    for init in BOTH {
        let d = TestDir::new();
        std::fs::write(d.s("input"), "hello\n").unwrap();
        let r = under(
            init,
            &d,
            true,
            &["sh", "-c", "read l; echo \"got:$l\"; exit 4"],
        )
        .setup(&format!("exec 0<'{}'", d.s("input").display()))
        .run();
        assert_eq!(r.code(), 4, "{init:?}\n{}", r.dump());
        match init {
            Init::Tini => assert_eq!(r.stdout_str(), "got:hello\n"),
            Init::Dinit => {
                let j = r.json();
                assert_eq!(j.len(), 1, "{}", r.dump());
                assert_eq!((j[0].service(), j[0].msg()), ("main", Some("got:hello")));
            }
        }
    }
}

/// Deliberate difference: tini runs its arguments without `--`; dinit ignores them unless
/// they follow `--` (base images such as `debian` set `CMD ["bash"]`, and an image that only
/// swaps its init must keep running its service directory).
#[test]
fn arguments_without_dashes_vs_tini() {
    if !require_tini("arguments_without_dashes_vs_tini") {
        return;
    }
    let d = TestDir::new();
    let r = launch(&d).program(TINI).arg("echo").arg("ran").run();
    assert_eq!(
        (r.code(), r.stdout_str().as_str()),
        (0, "ran\n"),
        "{}",
        r.dump()
    );
    let d = TestDir::new();
    let r = launch(&d).arg("echo").arg("ran").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(r.stdout().is_empty(), "{}", r.dump());
}

/// `docker run -it image sh` under both: an interactive `sh` on a terminal reads what is
/// typed, Ctrl-C interrupts its foreground job without ending the container, `exit 7` ends it
/// with 7. Same under both.
#[test]
fn interactive_shell_like_tini() {
    if !require_tini("interactive_shell_like_tini") {
        return;
    }
    let b = bin();
    for (init, program) in [(Init::Tini, TINI), (Init::Dinit, b.to_str().unwrap())] {
        let d = TestDir::new();
        let dir = d.root().join("no-such-dir");
        let mut t = pty::Pty::spawn(
            &[
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                program,
                "--",
                "sh",
                "-i",
            ],
            &[
                ("PATH", PATH),
                ("DINIT_DIR", dir.to_str().unwrap()),
                ("DINIT_CONTROL_SOCKET", "none"),
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
                .any(|p| proc_comm(p).as_deref() == Some("sleep"))
        };
        assert!(wait_until(LONG, sleeping), "{init:?}\n{}", t.seen());
        t.type_in("\x03");
        let at = t.wait_for(at, "$ ", LONG);
        assert!(wait_until(LONG, || !sleeping()), "{init:?}\n{}", t.seen());
        t.type_in("echo alive\n");
        t.wait_for(at, "alive\r\n", LONG);
        assert!(!t.exited(), "{init:?}: Ctrl-C ended it\n{}", t.seen());
        t.type_in("exit 7\n");
        assert_eq!(t.wait_exit(LONG), 7, "{init:?}\n{}", t.seen());
    }
}
