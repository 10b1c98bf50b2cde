//! Contract §9 (orphans: zombies reaped under every policy), as PID 1 and as a subreaper, with
//! negative controls showing that the same orphan stays a zombie when nothing reaps it.
mod common;
use common::*;

/// Python helper: forks G which exits at once; waits until G is a zombie, writes G's pid
/// (namespace pid) to `$S/orphan.pid`, then exits, so the already-dead G is re-parented to the
/// nearest reaper.
const MK_ORPHAN: &str = r#"
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
open(S + '/orphan.pid.tmp', 'w').write('%d\n' % g)
os.rename(S + '/orphan.pid.tmp', S + '/orphan.pid')
os._exit(0)
"#;

fn write_helper(d: &TestDir) {
    std::fs::write(d.s("mk_orphan.py"), MK_ORPHAN).unwrap();
}

/// A service that makes a zombie orphan, then runs until SIGTERM; its TERM trap records whether
/// the test had announced its SIGTERM (`$S/sent`), i.e. whether dinit stopped it on its own.
fn orphan_maker_service(d: &TestDir) {
    write_helper(d);
    d.svc("a").run(&d.sh(
        "trap 'if [ -e \"$S/sent\" ]; then echo ok > \"$S/a.term\"; else echo early > \"$S/a.term\"; fi; exit 0' TERM\n\
         python3 \"$S/mk_orphan.py\" \"$S\"\n\
         echo started > \"$S/a.started\"\n\
         while :; do sleep 0.05; done",
    ));
}

fn zombies(r: &Dinit) -> Vec<i32> {
    let mut all = vec![r.init_pid];
    all.extend(descendants_of(r.init_pid));
    all.into_iter()
        .filter(|&p| proc_state(p) == Some('Z'))
        .collect()
}

/// Expect: the zombie orphan disappears (reaped), no zombie is left in the namespace, and the
/// container is not stopped by it (the service only gets the SIGTERM the test sends); exit 0.
fn reaped(policy: Option<&str>, pid1: bool) {
    let d = TestDir::new();
    orphan_maker_service(&d);
    let mut l = launch(&d).info();
    if let Some(p) = policy {
        l = l.env("DINIT_REPARENTING_POLICY", p);
    }
    if !pid1 {
        l = l.not_pid1();
    }
    let mut r = l.spawn();
    d.wait_file("a.started", LONG);
    let g: i32 = d.wait_file("orphan.pid", LONG).trim().parse().unwrap();
    let ok = wait_until(LONG, || r.host_pid(g).is_none());
    assert!(
        ok,
        "orphan {g} (zombie) never reaped; zombies {:?}\n{}",
        zombies(&r),
        r.dump()
    );
    let ok = wait_until(LONG, || zombies(&r).is_empty());
    assert!(
        ok,
        "zombies left in the namespace: {:?}\n{}",
        zombies(&r),
        r.dump()
    );
    assert!(!r.exited(), "dinit exited\n{}", r.dump());
    d.touch("sent");
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert_eq!(
        d.read("a.term"),
        "ok\n",
        "the service was stopped before the test's SIGTERM\n{}",
        r.dump()
    );
}

/// Expect: default policy (terminate), PID 1: zombie orphan reaped.
#[test]
fn zombie_reaped_pid1_terminate() {
    reaped(None, true);
}

/// Expect (change): policy ignore, PID 1: zombie orphan reaped too.
#[test]
fn zombie_reaped_pid1_ignore() {
    reaped(Some("ignore"), true);
}

/// Expect (change): policy adopt, PID 1: a zombie orphan is reaped, never adopted, and does not
/// stop the container.
#[test]
fn zombie_reaped_pid1_adopt() {
    reaped(Some("adopt"), true);
}

/// Expect: default policy, subreaper (not PID 1): zombie orphan reaped.
#[test]
fn zombie_reaped_subreaper_terminate() {
    reaped(None, false);
}

/// Expect (change): policy ignore, subreaper: zombie orphan reaped.
#[test]
fn zombie_reaped_subreaper_ignore() {
    reaped(Some("ignore"), false);
}

/// Negative control (PID 1): the same orphan under a PID 1 that never waits (`sleep`) stays a
/// zombie whose parent is that PID 1 — so "disappeared" above really means "reaped".
#[test]
fn negative_control_pid1_without_reaper() {
    let d = TestDir::new();
    write_helper(&d);
    let s = d.scratch().display().to_string();
    let r = launch(&d)
        .program("/bin/sh")
        .arg("-c")
        .arg(&format!(
            "python3 '{s}/mk_orphan.py' '{s}' & exec sleep 100000"
        ))
        .spawn();
    let g: i32 = d.wait_file("orphan.pid", LONG).trim().parse().unwrap();
    let mut host = 0;
    let ok = wait_until(LONG, || {
        host = r.host_pid(g).unwrap_or(0);
        host != 0 && proc_state(host) == Some('Z') && children_of(r.init_pid).contains(&host)
    });
    assert!(
        ok,
        "the orphan did not show up as a zombie child of the non-reaping PID 1"
    );
}

/// Negative control (subreaper): a subreaper that never waits keeps the orphan as a zombie child.
#[test]
fn negative_control_subreaper_without_reaping() {
    let d = TestDir::new();
    write_helper(&d);
    let s = d.scratch().display().to_string();
    let sub = d.s("lazy_subreaper.py");
    std::fs::write(
        &sub,
        format!(
            "import ctypes, os, time\n\
             ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n\
             if os.fork() == 0:\n    os.execv('/usr/bin/python3', ['python3', '{s}/mk_orphan.py', '{s}'])\n\
             time.sleep(100000)\n"
        ),
    )
    .unwrap();
    let r = launch(&d)
        .not_pid1()
        .program("/usr/bin/python3")
        .arg(sub.to_str().unwrap())
        .spawn();
    let g: i32 = d.wait_file("orphan.pid", LONG).trim().parse().unwrap();
    let mut host = 0;
    let ok = wait_until(LONG, || {
        host = r.host_pid(g).unwrap_or(0);
        host != 0 && proc_state(host) == Some('Z') && children_of(r.pid).contains(&host)
    });
    assert!(
        ok,
        "the orphan did not show up as a zombie child of the lazy subreaper"
    );
}

/// Expect: many short-lived double-forked children (50) leave no zombie behind; exit 0 on
/// SIGTERM (PID 1 and subreaper).
fn many_orphans(pid1: bool) {
    let d = TestDir::new();
    d.svc("a").run(&d.long_running(
        "a",
        "i=0\nwhile [ $i -lt 50 ]; do ( true & ); i=$((i+1)); done\necho spawned > \"$S/spawned\"",
    ));
    let mut l = launch(&d).env("DINIT_REPARENTING_POLICY", "ignore");
    if !pid1 {
        l = l.not_pid1();
    }
    let mut r = l.spawn();
    d.wait_file("a.started", LONG);
    let ok = wait_until(LONG, || zombies(&r).is_empty());
    assert!(ok, "zombies left: {:?}\n{}", zombies(&r), r.dump());
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
}

#[test]
fn many_orphans_no_zombies_pid1() {
    many_orphans(true);
}

#[test]
fn many_orphans_no_zombies_subreaper() {
    many_orphans(false);
}
