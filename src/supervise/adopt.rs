//! Adoption's output redirection, as state machines the loop drives: nothing here waits.
//!
//! To capture an adopted daemon's lines as `<name>/<pid>`, dinit makes the process itself
//! install new pipe ends as its fds 1 and 2: it stops the process (`PTRACE_SEIZE`,
//! `PTRACE_INTERRUPT`), runs system calls inside it (`mmap` a scratch page, `socket` +
//! `connect` to dinit's hand-over socket, `recvmsg` the two pipe ends, `dup3` them over fds 1
//! and 2, `close`, `munmap`), puts its registers back and lets it go. The same is done in each
//! descendant whose fd 1 or 2 is the daemon's original stdout or stderr (nginx's workers).
//! Only fds 1 and 2 move: any other descriptor a process holds on the same pipe stays as it
//! was (syslog-ng watches one of its own).
//!
//! Every step is an event: a ptrace stop reported by the reaper's `waitpid`, or the result of a
//! command the tracer ran at once. An [`Injection`] (one process) answers each with the
//! commands to run next ([`Cmd`]); a [`Capture`] (one adopted process) runs the injections one
//! after another. A process that does not stop, or does not get through its calls, within
//! [`DEADLINE`] is given up: interrupted, and let go at its next stop (a process in `vfork`
//! stops only when its child execs or exits; until then it runs on as a tracee that dinit
//! waits for no more than for any other event). It is tried again at a later scan. The x86_64
//! details (registers, memory, the socket) are in `tracer.rs`.
//!
//! Pure: no system call here.

use std::fmt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

/// How long one process's redirection may take, from the seize to the detach.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// How often an adopted process's output is captured (again after it threw the pipe away).
pub const MAX_CAPTURES: u8 = 3;
/// Retries after a timeout wait this long, doubling up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Stdout,
    Stderr,
}

/// The fds of one process to replace, and with which pipe.
pub type Targets = Vec<(i32, Which)>;

/// A system call run inside the tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Mmap,
    Socket,
    Connect { page: u64, sock: u64 },
    Recvmsg { page: u64, sock: u64 },
    Dup3 { from: u64, to: i32 },
    Close(u64),
    Munmap(u64),
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Mmap => "mmap",
            Call::Socket => "socket",
            Call::Connect { .. } => "connect",
            Call::Recvmsg { .. } => "recvmsg",
            Call::Dup3 { .. } => "dup3",
            Call::Close(_) => "close",
            Call::Munmap(_) => "munmap",
        }
    }
}

/// What the tracer is asked to do for one tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// `PTRACE_SEIZE`, `PTRACE_INTERRUPT` (answered with [`Input::Seized`]).
    Seize,
    /// At the first stop: keep its registers, find a `syscall` instruction
    /// ([`Input::Prepared`]).
    Prepare,
    /// Set the registers up for the call and run to its entry stop.
    Call(Call),
    /// Run on to the next stop: the call's exit (`syscall`), or on after a stop that was not
    /// the one waited for.
    Resume {
        syscall: bool,
    },
    /// Read the two fds `recvmsg` received ([`Input::Received`]).
    ReadFds(u64),
    /// Accept the tracee's connection, its pid checked, and send it the pipe ends
    /// ([`Input::HandedOver`]).
    HandOver,
    Interrupt,
    /// Put the registers back (when they were changed) and let go, handing back `signal`.
    Detach {
        restore: bool,
        signal: Option<i32>,
    },
}

/// Why a redirection did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A step failed.
    Step(&'static str, Errno),
    /// The process did not get through within [`DEADLINE`].
    TimedOut,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Step(step, errno) => {
                write!(f, "{step}: {}", crate::error::errno_text(*errno))
            }
            Failure::TimedOut => write!(
                f,
                "no progress within {} s, will try again later",
                DEADLINE.as_secs()
            ),
        }
    }
}

/// What reaches an injection: the tracee's stops, results of the tracer's commands, its
/// deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// For a capture: its pipes are made, and these descendants share the adopted process's
    /// output (each with the fds to replace); or it cannot start now.
    Planned(Result<Vec<(Pid, Targets)>, Busy>),
    Seized(Result<(), Failure>),
    Prepared(Result<(), Failure>),
    Received(Result<(u64, u64), Failure>),
    HandedOver(Result<(), Failure>),
    /// `PTRACE_EVENT_STOP`: the interrupt asked for, or a group stop.
    EventStop,
    /// A syscall entry or exit stop; `ret` is the return register.
    SyscallStop {
        ret: i64,
    },
    /// A signal is about to be delivered.
    SignalStop(i32),
    Deadline,
}

/// A capture that could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The process sleeps uninterruptibly (in `vfork`, say): it would not stop; try later.
    Asleep,
    /// Making the pipes or the socket failed.
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Seized and interrupted: waiting for it to stop.
    Stopping,
    /// Waiting for the entry stop of the call.
    Entering(Call),
    /// Waiting for its exit stop.
    Leaving(Call),
    /// Waiting for the hand-over's result (synchronous: the next input).
    HandingOver,
    /// Waiting for the received fds (synchronous).
    Reading,
    /// Given up while the process runs: let it go at its next stop (`restore`: registers
    /// were changed).
    Abandoning {
        restore: bool,
    },
    Done(Result<(), Failure>),
}

/// The redirection of one process's fds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub pid: Pid,
    targets: Targets,
    phase: Phase,
    /// A signal that arrived while the process was held, handed back when it is let go.
    held: Option<i32>,
    /// What the calls made inside the process, until released again.
    page: Option<u64>,
    sock: Option<u64>,
    received: [Option<u64>; 2],
    /// Next target to `dup3`.
    next_dup: usize,
    /// The first failure (a `dup3` failing does not stop the others).
    failed: Option<Failure>,
}

impl Injection {
    /// Starts redirecting `targets` of `pid`: the first command is [`Cmd::Seize`].
    pub fn new(pid: Pid, targets: Targets) -> (Injection, Cmd) {
        let inj = Injection {
            pid,
            targets,
            phase: Phase::Stopping,
            held: None,
            page: None,
            sock: None,
            received: [None, None],
            next_dup: 0,
            failed: None,
        };
        (inj, Cmd::Seize)
    }

    /// The outcome once the process is let go.
    pub fn outcome(&self) -> Option<Result<(), Failure>> {
        match self.phase {
            Phase::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Moves on `input`; returns the commands to run, in order.
    pub fn on(&mut self, input: Input) -> Vec<Cmd> {
        use Input as I;
        use Phase as P;
        match (self.phase, input) {
            (P::Done(_), _) | (_, I::Planned(_)) => vec![],
            (P::Abandoning { restore }, I::EventStop | I::SyscallStop { .. }) => {
                self.phase = P::Done(Err(Failure::TimedOut));
                vec![Cmd::Detach {
                    restore,
                    signal: self.held.take(),
                }]
            }
            (P::Abandoning { restore }, I::SignalStop(sig)) => {
                self.phase = P::Done(Err(Failure::TimedOut));
                vec![Cmd::Detach {
                    restore,
                    signal: Some(sig),
                }]
            }
            (P::Abandoning { .. }, _) => vec![],
            (P::Stopping, I::Seized(Err(f))) => {
                self.phase = P::Done(Err(f));
                vec![]
            }
            (P::Stopping, I::EventStop) => vec![Cmd::Prepare],
            (P::Stopping, I::Prepared(Ok(()))) => self.call(Call::Mmap),
            (P::Stopping, I::Prepared(Err(f))) => {
                self.phase = P::Done(Err(f));
                vec![Cmd::Detach {
                    restore: false,
                    signal: self.held.take(),
                }]
            }
            (_, I::SignalStop(sig)) => {
                self.held = Some(sig);
                vec![Cmd::Resume {
                    syscall: self.phase != P::Stopping,
                }]
            }
            (P::Stopping, I::Deadline) => {
                // The interrupt is still pending: its stop is what lets the process go.
                self.phase = P::Abandoning { restore: false };
                vec![]
            }
            (P::Entering(_) | P::Leaving(_) | P::HandingOver | P::Reading, I::Deadline) => {
                self.phase = P::Abandoning { restore: true };
                vec![Cmd::Interrupt]
            }
            (P::Stopping, I::SyscallStop { .. }) => vec![Cmd::Resume { syscall: false }],
            (P::Entering(call), I::SyscallStop { .. }) => {
                self.phase = P::Leaving(call);
                vec![Cmd::Resume { syscall: true }]
            }
            (P::Entering(_) | P::Leaving(_), I::EventStop) => vec![Cmd::Resume { syscall: true }],
            (P::Leaving(call), I::SyscallStop { ret }) => self.returned(call, ret),
            (P::HandingOver, I::HandedOver(Ok(()))) => match (self.page, self.sock) {
                (Some(page), Some(sock)) => self.call(Call::Recvmsg { page, sock }),
                _ => self.fail(Failure::Step("recvmsg", Errno::EINVAL)),
            },
            (P::HandingOver, I::HandedOver(Err(f))) | (P::Reading, I::Received(Err(f))) => {
                self.fail(f)
            }
            (P::Reading, I::Received(Ok((out, err)))) => {
                self.received = [Some(out), Some(err)];
                self.next()
            }
            // Inputs that do not belong to the phase (a late result): nothing to do.
            _ => vec![],
        }
    }

    fn call(&mut self, call: Call) -> Vec<Cmd> {
        self.phase = Phase::Entering(call);
        vec![Cmd::Call(call)]
    }

    /// The exit stop of `call` with the return register `ret`.
    fn returned(&mut self, call: Call, ret: i64) -> Vec<Cmd> {
        let result = if (-4095..0).contains(&ret) {
            Err(Failure::Step(call.name(), Errno::from_raw(-ret as i32)))
        } else {
            Ok(ret as u64)
        };
        match (call, result) {
            (Call::Mmap, Ok(page)) => {
                self.page = Some(page);
                self.call(Call::Socket)
            }
            (Call::Socket, Ok(sock)) => {
                self.sock = Some(sock);
                match self.page {
                    Some(page) => self.call(Call::Connect { page, sock }),
                    None => self.fail(Failure::Step("connect", Errno::EINVAL)),
                }
            }
            (Call::Connect { .. }, Ok(_)) => {
                self.phase = Phase::HandingOver;
                vec![Cmd::HandOver]
            }
            (Call::Recvmsg { page, .. }, Ok(_)) => {
                self.phase = Phase::Reading;
                vec![Cmd::ReadFds(page)]
            }
            (Call::Dup3 { .. }, r) => {
                if let Err(f) = r {
                    self.failed.get_or_insert(f);
                }
                self.next()
            }
            (Call::Close(_) | Call::Munmap(_), _) => self.next(),
            (_, Err(f)) => self.fail(f),
        }
    }

    fn fail(&mut self, f: Failure) -> Vec<Cmd> {
        self.failed.get_or_insert(f);
        self.next_dup = self.targets.len(); // no dup3 after a failure
        self.next()
    }

    /// The next `dup3`, then what was made inside the process is released, one call at a
    /// time, then it is let go.
    fn next(&mut self) -> Vec<Cmd> {
        if let Some(&(to, which)) = self.targets.get(self.next_dup) {
            self.next_dup += 1;
            let from = self.received[which as usize];
            return match from {
                Some(from) => self.call(Call::Dup3 { from, to }),
                None => self.fail(Failure::Step("dup3", Errno::EBADF)),
            };
        }
        let release = if let Some(fd) = self.received[0].take() {
            Some(Call::Close(fd))
        } else if let Some(fd) = self.received[1].take() {
            Some(Call::Close(fd))
        } else if let Some(fd) = self.sock.take() {
            Some(Call::Close(fd))
        } else {
            self.page.take().map(Call::Munmap)
        };
        if let Some(call) = release {
            return self.call(call);
        }
        self.phase = Phase::Done(self.failed.map_or(Ok(()), Err));
        vec![Cmd::Detach {
            restore: true,
            signal: self.held.take(),
        }]
    }
}

/// An adopted process's output redirection, over its life: the process itself, then each
/// descendant that shares its output; again later if it fails for a while or if the daemon
/// throws the captured pipe away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// How many times its output was captured.
    pub captures: u8,
    /// Numbers each try, so that a deadline armed for an earlier one is told apart.
    pub attempt: u32,
    backoff: Duration,
    pub state: CaptureState,
    /// The adoption's warning (its command line), said once the first try has an outcome:
    /// whoever reads it then also sees where the process's next lines go.
    pub announce: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureState {
    /// Not being redirected. `retry`: when a scan should try (again); none: captured, or
    /// given up for good.
    Idle { retry: Option<Instant> },
    /// Its pipes are being made and its descendants listed (the tracer answers at once).
    Planning,
    /// The adopted process itself; `rest` are the descendants to do after it.
    Own {
        inj: Injection,
        rest: Vec<(Pid, Targets)>,
    },
    /// A descendant (the adopted process's output is already captured).
    Descendant {
        inj: Injection,
        rest: Vec<(Pid, Targets)>,
    },
}

/// What a capture's step leads to, beyond the tracer's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Tracer commands for this pid (the adopted process or a descendant).
    Trace(Pid, Cmd),
    /// The adopted process's output now goes to its new pipes: watch them.
    Watch,
    /// The capture is over (done, failed or given up): drop the tracer's state for it.
    Release,
    /// Say why the redirection of the adopted process failed.
    Report(Failure),
    /// Arm the deadline of the injection that just began.
    Deadline(Instant),
}

impl Capture {
    pub fn new(now: Instant, cmdline: String) -> Capture {
        Capture {
            captures: 0,
            attempt: 0,
            backoff: FIRST_BACKOFF,
            state: CaptureState::Idle { retry: Some(now) },
            announce: Some(cmdline),
        }
    }

    /// The process being traced right now, if any.
    pub fn tracee(&self) -> Option<Pid> {
        match &self.state {
            CaptureState::Own { inj, .. } | CaptureState::Descendant { inj, .. } => Some(inj.pid),
            _ => None,
        }
    }

    /// Whether a scan should start it now.
    pub fn due(&self, now: Instant) -> bool {
        matches!(self.state, CaptureState::Idle { retry: Some(t) } if t <= now)
    }

    /// Starts a try (the caller asks the tracer to plan it).
    pub fn begin(&mut self) {
        self.attempt += 1;
        self.state = CaptureState::Planning;
    }

    /// A captured process threw its pipe away: capture again, a few times at most.
    pub fn again(&mut self, now: Instant) -> bool {
        if self.captures == 0
            || self.captures >= MAX_CAPTURES
            || self.state != (CaptureState::Idle { retry: None })
        {
            return false;
        }
        self.state = CaptureState::Idle { retry: Some(now) };
        true
    }

    /// Moves on an input for `pid` (the adopted process `adopted`, or a descendant).
    pub fn on(&mut self, adopted: Pid, pid: Pid, input: Input, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        let state = std::mem::replace(&mut self.state, CaptureState::Planning);
        self.state = match (state, input) {
            (CaptureState::Planning, Input::Planned(Ok(rest))) => {
                let (inj, cmd) =
                    Injection::new(adopted, vec![(1, Which::Stdout), (2, Which::Stderr)]);
                steps.push(Step::Deadline(now + DEADLINE));
                steps.push(Step::Trace(adopted, cmd));
                CaptureState::Own { inj, rest }
            }
            (CaptureState::Planning, Input::Planned(Err(Busy::Asleep))) => {
                steps.push(Step::Release);
                CaptureState::Idle {
                    retry: Some(now + FIRST_BACKOFF),
                }
            }
            (CaptureState::Planning, Input::Planned(Err(Busy::Failed(f)))) => {
                steps.push(Step::Release);
                steps.push(Step::Report(f));
                CaptureState::Idle { retry: None }
            }
            (CaptureState::Own { mut inj, rest }, input) if inj.pid == pid => {
                steps.extend(inj.on(input).into_iter().map(|c| Step::Trace(pid, c)));
                match inj.outcome() {
                    None => CaptureState::Own { inj, rest },
                    Some(Ok(())) => {
                        self.captures += 1;
                        self.backoff = FIRST_BACKOFF;
                        steps.push(Step::Watch);
                        self.next_descendant(rest, now, &mut steps)
                    }
                    Some(Err(f)) => {
                        steps.push(Step::Release);
                        // A timeout is said once (the first of a run of them); the later ones
                        // are only tried again, less and less often.
                        if f != Failure::TimedOut || self.backoff == FIRST_BACKOFF {
                            steps.push(Step::Report(f));
                        }
                        let retry = (f == Failure::TimedOut).then(|| {
                            let at = now + self.backoff;
                            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                            at
                        });
                        CaptureState::Idle { retry }
                    }
                }
            }
            (CaptureState::Descendant { mut inj, rest }, input) if inj.pid == pid => {
                steps.extend(inj.on(input).into_iter().map(|c| Step::Trace(pid, c)));
                match inj.outcome() {
                    // A descendant that fails does not undo the adopted process's redirection.
                    Some(_) => self.next_descendant(rest, now, &mut steps),
                    None => CaptureState::Descendant { inj, rest },
                }
            }
            (state, _) => state,
        };
        steps
    }

    /// `pid` (a descendant being traced) ended: go on with the next one.
    pub fn tracee_gone(&mut self, pid: Pid, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        let state = std::mem::replace(&mut self.state, CaptureState::Planning);
        self.state = match state {
            CaptureState::Descendant { inj, rest } if inj.pid == pid => {
                self.next_descendant(rest, now, &mut steps)
            }
            other => other,
        };
        steps
    }

    fn next_descendant(
        &mut self,
        mut rest: Vec<(Pid, Targets)>,
        now: Instant,
        steps: &mut Vec<Step>,
    ) -> CaptureState {
        if rest.is_empty() {
            steps.push(Step::Release);
            return CaptureState::Idle { retry: None };
        }
        let (pid, targets) = rest.remove(0);
        let (inj, cmd) = Injection::new(pid, targets);
        self.attempt += 1;
        steps.push(Step::Deadline(now + DEADLINE));
        steps.push(Step::Trace(pid, cmd));
        CaptureState::Descendant { inj, rest }
    }
}

#[cfg(test)]
mod tests;
