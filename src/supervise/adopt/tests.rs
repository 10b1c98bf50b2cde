//! The injection machine over its whole table (every phase × every input: a row, or a no-op),
//! a whole redirection step by step, and the capture around it.

use std::collections::HashMap;

use super::*;

const PAGE: u64 = 0x7000;

fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

fn both() -> Targets {
    vec![(1, Which::Stdout), (2, Which::Stderr)]
}

/// An injection in `phase`, with what the earlier calls made.
fn at(phase: Phase) -> Injection {
    let (mut inj, _) = Injection::new(pid(5), both());
    inj.phase = phase;
    inj.page = Some(PAGE);
    inj.sock = Some(3);
    inj
}

fn phases() -> Vec<(&'static str, Phase)> {
    let connect = Call::Connect {
        page: PAGE,
        sock: 3,
    };
    vec![
        ("stopping", Phase::Stopping),
        ("entering", Phase::Entering(connect)),
        ("leaving", Phase::Leaving(connect)),
        ("handing-over", Phase::HandingOver),
        ("reading", Phase::Reading),
        ("abandoning", Phase::Abandoning { restore: true }),
        ("done", Phase::Done(Ok(()))),
    ]
}

fn inputs() -> Vec<(&'static str, Input)> {
    let f = Failure::Step("x", Errno::EPERM);
    vec![
        ("planned", Input::Planned(Ok(vec![]))),
        ("seized", Input::Seized(Ok(()))),
        ("seize-failed", Input::Seized(Err(f))),
        ("prepared", Input::Prepared(Ok(()))),
        ("prepare-failed", Input::Prepared(Err(f))),
        ("received", Input::Received(Ok((4, 6)))),
        ("receive-failed", Input::Received(Err(f))),
        ("handed-over", Input::HandedOver(Ok(()))),
        ("hand-over-failed", Input::HandedOver(Err(f))),
        ("event-stop", Input::EventStop),
        ("syscall-stop", Input::SyscallStop { ret: 0 }),
        ("signal-stop", Input::SignalStop(15)),
        ("deadline", Input::Deadline),
    ]
}

const RESUME: &[Cmd] = &[Cmd::Resume { syscall: true }];
const CLOSE_SOCK: &[Cmd] = &[Cmd::Call(Call::Close(3))];
const LET_GO_TIMED_OUT: &[Cmd] = &[Cmd::Detach {
    restore: true,
    signal: None,
}];

/// (phase, input) -> (phase after, commands).
fn rows() -> HashMap<(&'static str, &'static str), (&'static str, Vec<Cmd>)> {
    let recv = Call::Recvmsg {
        page: PAGE,
        sock: 3,
    };
    let r = |p: &'static str, c: &[Cmd]| (p, c.to_vec());
    HashMap::from([
        (("stopping", "seize-failed"), r("failed", &[])),
        (("stopping", "event-stop"), r("stopping", &[Cmd::Prepare])),
        (
            ("stopping", "prepared"),
            r("mmap", &[Cmd::Call(Call::Mmap)]),
        ),
        (
            ("stopping", "prepare-failed"),
            r(
                "failed",
                &[Cmd::Detach {
                    restore: false,
                    signal: None,
                }],
            ),
        ),
        (
            ("stopping", "syscall-stop"),
            r("stopping", &[Cmd::Resume { syscall: false }]),
        ),
        (
            ("stopping", "signal-stop"),
            r("stopping", &[Cmd::Resume { syscall: false }]),
        ),
        (("stopping", "deadline"), r("abandoning-unprepared", &[])),
        (("entering", "syscall-stop"), r("leaving", RESUME)),
        (("entering", "event-stop"), r("entering", RESUME)),
        (("entering", "signal-stop"), r("entering", RESUME)),
        (("entering", "deadline"), r("abandoning", &[Cmd::Interrupt])),
        // connect returned 0: hand the pipe ends over
        (
            ("leaving", "syscall-stop"),
            r("handing-over", &[Cmd::HandOver]),
        ),
        (("leaving", "event-stop"), r("leaving", RESUME)),
        (("leaving", "signal-stop"), r("leaving", RESUME)),
        (("leaving", "deadline"), r("abandoning", &[Cmd::Interrupt])),
        (
            ("handing-over", "handed-over"),
            r("recvmsg", &[Cmd::Call(recv)]),
        ),
        (
            ("handing-over", "hand-over-failed"),
            r("close-sock", CLOSE_SOCK),
        ),
        (
            ("handing-over", "deadline"),
            r("abandoning", &[Cmd::Interrupt]),
        ),
        (("handing-over", "signal-stop"), r("handing-over", RESUME)),
        (
            ("reading", "received"),
            r("dup-1", &[Cmd::Call(Call::Dup3 { from: 4, to: 1 })]),
        ),
        (("reading", "receive-failed"), r("close-sock", CLOSE_SOCK)),
        (("reading", "deadline"), r("abandoning", &[Cmd::Interrupt])),
        (("reading", "signal-stop"), r("reading", RESUME)),
        (
            ("abandoning", "event-stop"),
            r("timed-out", LET_GO_TIMED_OUT),
        ),
        (
            ("abandoning", "syscall-stop"),
            r("timed-out", LET_GO_TIMED_OUT),
        ),
        (
            ("abandoning", "signal-stop"),
            r(
                "timed-out",
                &[Cmd::Detach {
                    restore: true,
                    signal: Some(15),
                }],
            ),
        ),
    ])
}

fn named(n: &str) -> Phase {
    let recv = Call::Recvmsg {
        page: PAGE,
        sock: 3,
    };
    let f = Failure::Step("x", Errno::EPERM);
    match n {
        "failed" => Phase::Done(Err(f)),
        "timed-out" => Phase::Done(Err(Failure::TimedOut)),
        "mmap" => Phase::Entering(Call::Mmap),
        "recvmsg" => Phase::Entering(recv),
        "close-sock" => Phase::Entering(Call::Close(3)),
        "dup-1" => Phase::Entering(Call::Dup3 { from: 4, to: 1 }),
        "abandoning-unprepared" => Phase::Abandoning { restore: false },
        "leaving" => Phase::Leaving(Call::Connect {
            page: PAGE,
            sock: 3,
        }),
        other => {
            phases()
                .into_iter()
                .find(|(p, _)| *p == other)
                .unwrap_or_else(|| panic!("no phase {other}"))
                .1
        }
    }
}

#[test]
fn injection_table() {
    let rows = rows();
    let mut used = 0;
    for (pname, phase) in phases() {
        for (iname, input) in inputs() {
            let mut inj = at(phase);
            let cmds = inj.on(input);
            let (next, want) = match rows.get(&(pname, iname)) {
                Some((n, c)) => {
                    used += 1;
                    (named(n), c.clone())
                }
                None => (phase, vec![]),
            };
            assert_eq!(inj.phase, next, "{pname} + {iname}: phase");
            assert_eq!(cmds, want, "{pname} + {iname}: commands");
        }
    }
    assert_eq!(
        used,
        rows.len(),
        "a row names a phase or input that does not exist"
    );
}

/// Feeds the entry and exit stops of the call under way; returns the commands after its exit.
fn through(inj: &mut Injection, ret: i64) -> Vec<Cmd> {
    assert_eq!(inj.on(Input::SyscallStop { ret: 0 }), RESUME);
    inj.on(Input::SyscallStop { ret })
}

/// A whole redirection, as the tracer would see it: every call in order, a signal kept and
/// handed back, the registers restored.
#[test]
fn whole_redirection() {
    let (mut inj, first) = Injection::new(pid(5), both());
    assert_eq!(first, Cmd::Seize);
    assert_eq!(inj.on(Input::Seized(Ok(()))), []);
    assert_eq!(
        inj.on(Input::SignalStop(1)),
        [Cmd::Resume { syscall: false }]
    );
    assert_eq!(inj.on(Input::EventStop), [Cmd::Prepare]);
    assert_eq!(inj.on(Input::Prepared(Ok(()))), [Cmd::Call(Call::Mmap)]);
    assert_eq!(through(&mut inj, PAGE as i64), [Cmd::Call(Call::Socket)]);
    assert_eq!(
        through(&mut inj, 3),
        [Cmd::Call(Call::Connect {
            page: PAGE,
            sock: 3
        })]
    );
    assert_eq!(through(&mut inj, 0), [Cmd::HandOver]);
    assert_eq!(
        inj.on(Input::HandedOver(Ok(()))),
        [Cmd::Call(Call::Recvmsg {
            page: PAGE,
            sock: 3
        })]
    );
    assert_eq!(through(&mut inj, 1), [Cmd::ReadFds(PAGE)]);
    assert_eq!(
        inj.on(Input::Received(Ok((4, 6)))),
        [Cmd::Call(Call::Dup3 { from: 4, to: 1 })]
    );
    assert_eq!(
        through(&mut inj, 1),
        [Cmd::Call(Call::Dup3 { from: 6, to: 2 })]
    );
    assert_eq!(through(&mut inj, 2), [Cmd::Call(Call::Close(4))]);
    assert_eq!(through(&mut inj, 0), [Cmd::Call(Call::Close(6))]);
    assert_eq!(through(&mut inj, 0), [Cmd::Call(Call::Close(3))]);
    assert_eq!(through(&mut inj, 0), [Cmd::Call(Call::Munmap(PAGE))]);
    assert_eq!(inj.outcome(), None);
    assert_eq!(
        through(&mut inj, 0),
        [Cmd::Detach {
            restore: true,
            signal: Some(1)
        }]
    );
    assert_eq!(inj.outcome(), Some(Ok(())));
}

/// A failing call: what was made inside the process is released, then it is let go with the
/// first failure; a failing `dup3` does not stop the other one.
#[test]
fn failures_release_what_was_made() {
    let (mut inj, _) = Injection::new(pid(5), both());
    inj.on(Input::EventStop);
    inj.on(Input::Prepared(Ok(())));
    through(&mut inj, PAGE as i64);
    assert_eq!(
        through(&mut inj, -(Errno::EMFILE as i64)),
        [Cmd::Call(Call::Munmap(PAGE))],
        "socket failed: only the page to release"
    );
    assert_eq!(
        through(&mut inj, 0),
        [Cmd::Detach {
            restore: true,
            signal: None
        }]
    );
    assert_eq!(
        inj.outcome(),
        Some(Err(Failure::Step("socket", Errno::EMFILE)))
    );

    let mut inj = at(Phase::Reading);
    inj.on(Input::Received(Ok((4, 6))));
    assert_eq!(
        through(&mut inj, -(Errno::EBADF as i64)),
        [Cmd::Call(Call::Dup3 { from: 6, to: 2 })]
    );
    through(&mut inj, 2);
    for _ in 0..3 {
        through(&mut inj, 0); // close, close, close
    }
    through(&mut inj, 0); // munmap
    assert_eq!(
        inj.outcome(),
        Some(Err(Failure::Step("dup3", Errno::EBADF)))
    );
}

fn cap_planned(rest: Vec<(Pid, Targets)>, now: Instant) -> (Capture, Vec<Step>) {
    let mut cap = Capture::new(now, "daemon".into());
    assert!(cap.due(now));
    cap.begin();
    let steps = cap.on(pid(5), pid(5), Input::Planned(Ok(rest)), now);
    (cap, steps)
}

/// Runs the injection of `who` within `cap` to a successful end.
fn succeed(cap: &mut Capture, who: Pid, now: Instant) -> Vec<Step> {
    let adopted = pid(5);
    let mut feed = |input| cap.on(adopted, who, input, now);
    feed(Input::Seized(Ok(())));
    feed(Input::EventStop);
    feed(Input::Prepared(Ok(())));
    let call = |feed: &mut dyn FnMut(Input) -> Vec<Step>, ret| {
        feed(Input::SyscallStop { ret: 0 });
        feed(Input::SyscallStop { ret })
    };
    call(&mut feed, PAGE as i64);
    call(&mut feed, 3);
    call(&mut feed, 0);
    feed(Input::HandedOver(Ok(())));
    call(&mut feed, 1);
    feed(Input::Received(Ok((4, 6))));
    call(&mut feed, 1);
    call(&mut feed, 2);
    call(&mut feed, 0);
    call(&mut feed, 0);
    call(&mut feed, 0);
    call(&mut feed, 0)
}

#[test]
fn capture_of_a_process_and_its_descendants() {
    let t0 = Instant::now();
    let (mut cap, steps) = cap_planned(vec![(pid(6), vec![(2, Which::Stderr)])], t0);
    assert_eq!(
        steps,
        [
            Step::Deadline(t0 + DEADLINE),
            Step::Trace(pid(5), Cmd::Seize)
        ]
    );
    assert_eq!(cap.tracee(), Some(pid(5)));
    let steps = succeed(&mut cap, pid(5), t0);
    assert_eq!(
        steps,
        [
            Step::Trace(
                pid(5),
                Cmd::Detach {
                    restore: true,
                    signal: None
                }
            ),
            Step::Watch,
            Step::Deadline(t0 + DEADLINE),
            Step::Trace(pid(6), Cmd::Seize),
        ]
    );
    assert_eq!((cap.captures, cap.tracee()), (1, Some(pid(6))));
    // The descendant fails: the capture is done all the same.
    let steps = cap.on(
        pid(5),
        pid(6),
        Input::Seized(Err(Failure::Step("ptrace seize", Errno::EPERM))),
        t0,
    );
    assert_eq!(steps, [Step::Release]);
    assert_eq!(cap.state, CaptureState::Idle { retry: None });
    assert!(!cap.due(t0 + Duration::from_secs(100)));
    // Thrown away later: captured again, at most MAX_CAPTURES times.
    assert!(cap.again(t0));
    assert!(cap.due(t0));
}

#[test]
fn capture_timeouts_retry_with_backoff_and_say_so_once() {
    let t0 = Instant::now();
    let (mut cap, _) = cap_planned(vec![], t0);
    let attempt = cap.attempt;
    let steps = cap.on(pid(5), pid(5), Input::Deadline, t0);
    assert_eq!(steps, [], "interrupt already pending: wait for its stop");
    let steps = cap.on(pid(5), pid(5), Input::EventStop, t0);
    assert_eq!(
        steps,
        [
            Step::Trace(
                pid(5),
                Cmd::Detach {
                    restore: false,
                    signal: None
                }
            ),
            Step::Release,
            Step::Report(Failure::TimedOut),
        ]
    );
    assert_eq!(
        cap.state,
        CaptureState::Idle {
            retry: Some(t0 + FIRST_BACKOFF)
        }
    );
    // The second timeout is not said again, and waits twice as long.
    cap.begin();
    assert!(cap.attempt > attempt);
    cap.on(pid(5), pid(5), Input::Planned(Ok(vec![])), t0);
    cap.on(pid(5), pid(5), Input::Deadline, t0);
    let steps = cap.on(pid(5), pid(5), Input::SignalStop(15), t0);
    assert_eq!(
        steps,
        [
            Step::Trace(
                pid(5),
                Cmd::Detach {
                    restore: false,
                    signal: Some(15)
                }
            ),
            Step::Release,
        ]
    );
    assert_eq!(
        cap.state,
        CaptureState::Idle {
            retry: Some(t0 + 2 * FIRST_BACKOFF)
        }
    );
}

#[test]
fn capture_that_cannot_start() {
    let t0 = Instant::now();
    let mut cap = Capture::new(t0, String::new());
    cap.begin();
    let steps = cap.on(pid(5), pid(5), Input::Planned(Err(Busy::Asleep)), t0);
    assert_eq!(steps, [Step::Release], "asleep: nothing said, tried again");
    assert!(cap.due(t0 + FIRST_BACKOFF));
    cap.begin();
    let f = Failure::Step("pipe", Errno::EMFILE);
    let steps = cap.on(pid(5), pid(5), Input::Planned(Err(Busy::Failed(f))), t0);
    assert_eq!(steps, [Step::Release, Step::Report(f)]);
    assert_eq!(cap.state, CaptureState::Idle { retry: None });
    assert!(!cap.again(t0), "never captured: nothing to capture again");
}

#[test]
fn descendant_that_ends_is_skipped() {
    let t0 = Instant::now();
    let (mut cap, _) = cap_planned(vec![(pid(6), both()), (pid(7), both())], t0);
    succeed(&mut cap, pid(5), t0);
    assert_eq!(cap.tracee(), Some(pid(6)));
    let steps = cap.tracee_gone(pid(6), t0);
    assert_eq!(
        steps,
        [
            Step::Deadline(t0 + DEADLINE),
            Step::Trace(pid(7), Cmd::Seize)
        ]
    );
    assert_eq!(cap.tracee_gone(pid(99), t0), [], "not the one traced");
}
