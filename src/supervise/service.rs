//! One service's processes as state machines: `run` (with its `finish` and `terminate`
//! scripts, which exist only for it) in [`Run`], its logger in [`Log`].
//!
//! Pure: [`Service::on`] takes an event and the context (the time, whether dinit is stopping)
//! and pushes what follows as [`Act`]s; nothing here forks, signals or writes. The same
//! `stop` serves a shutdown and `dinit down`, so the two cannot drift apart.
//!
//! The run's life: `Down` -> `Starting` (fork asked for) -> `Running` -> (`run` ended)
//! `Finishing` (its `finish` asked for, then running) -> `Down`. What the end leads to is
//! [`After`], carried from the moment a stop is asked for: nothing special (the container
//! stops, unless `run` exited 115), staying down, or starting again.

use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::events::{Effect, Op, Program, SpawnError, Stage, Timer};

mod logger;
mod readiness;
mod requests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_roles;

use super::exit::{DISABLED, Exit, Kind};
use super::messages::{Label, Msg};
use super::scan::ServiceDef;
use crate::error::Error;
use crate::log::Level;
pub use readiness::{CheckEnd, Checking, Ready};
pub use requests::{Decision, decide};

/// How long a logger's end waits for its `run` to end too before it stops the container.
pub const LOGGER_GRACE: Duration = Duration::from_millis(10);

/// Why `run` is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Never started: runit's `down` file.
    DownFile,
    /// Could not be started.
    Failed,
    /// Ended; `Code(115)` means it disabled itself.
    Exited(Exit),
    /// Stopped on request (`dinit down`, or the first half of a restart).
    Requested(Exit),
}

/// What the end of `run` (and of its `finish`) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The usual rule: the container stops, unless `run` exited 115.
    Natural,
    /// Stay down (`dinit down`): the end neither stops the container nor counts.
    Down,
    /// Start again (`dinit restart`, or `up` during a requested stop).
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Down {
        why: Down,
        since: SystemTime,
    },
    /// The fork is asked for; its outcome comes next (in the same turn).
    Starting {
        since: SystemTime,
    },
    Running {
        pid: Pid,
        since: SystemTime,
        after: After,
    },
    /// `run` ended with `exit`; its `finish` is asked for (`pid` none yet) or runs.
    Finishing {
        pid: Option<Pid>,
        exit: Exit,
        since: SystemTime,
        after: After,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// No logger, or not started yet.
    None,
    Starting,
    Running {
        pid: Pid,
        since: SystemTime,
    },
    Exited {
        exit: Exit,
        since: SystemTime,
    },
}

/// What happened to one of the service's processes, or to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// Start `run` (`forced`: on request, whatever the `down` file says).
    Start {
        forced: bool,
    },
    Spawned(Program, Result<Pid, SpawnError>),
    Exec(Stage, Pid, Result<(), Errno>),
    Ended(Stage, Pid, Exit),
    FinishKill(Pid),
    LoggerGrace,
    /// `run` (this pid) wrote a newline to its notification fd.
    Notified(Pid),
    /// The next readiness check is due.
    CheckDue,
    /// The check (this pid) has run for `DINIT_CHECK_TIMEOUT`.
    CheckKill(Pid),
    /// dinit's shutdown began.
    Stop,
    /// An operator's request; `uid` asked.
    Request(Op, u32),
}

/// What an event leads to: effects for the loop, and what only supervision acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    Do(Effect),
    /// A process ended: the exit-code rule decides whether it counts.
    Record(Kind, Exit),
    /// A `terminate` that cannot be started: dinit's own code (1), even after a shutdown
    /// signal, but not fatal.
    Failed,
    /// dinit itself failed: code 1, and the error is the last line (`exiting: ...`).
    Fatal(String),
    /// The main program's end stops the container: dinit exits with this code, whatever the
    /// services' (contract §14).
    MainExit(u8),
    /// Stop the container.
    Shutdown,
}

/// What an event is judged against.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: SystemTime,
    pub mono: Instant,
    /// dinit's shutdown is under way.
    pub stopping: bool,
    pub kill_timeout: Duration,
    /// `DINIT_CHECK_INTERVAL` (`None`: periodic checks off) and `DINIT_CHECK_TIMEOUT`.
    pub check_interval: Option<Duration>,
    pub check_timeout: Duration,
}

pub struct Service {
    /// Its place in the supervisor's list (timers and effects name it).
    pub index: usize,
    pub def: ServiceDef,
    pub label: Label,
    pub run: Run,
    pub log: Log,
    /// How `run` ended last time.
    pub last_exit: Option<Exit>,
    /// Whether `run` is ready, and dinit's own `check` run (contract §15).
    pub ready: Ready,
    pub check: Checking,
    /// How dinit's own last `check` run ended.
    pub last_check: Option<CheckEnd>,
    /// How many times `run` was started (a counter for metrics: never goes back).
    pub starts: u64,
}

fn say(acts: &mut Vec<Act>, level: Level, msg: Msg) {
    acts.push(Act::Do(Effect::Say(level, msg)));
}

fn say_after_stdout(acts: &mut Vec<Act>, level: Level, msg: Msg) {
    acts.push(Act::Do(Effect::SayAfterStdout(level, msg)));
}

impl Service {
    pub fn new(index: usize, def: ServiceDef, now: SystemTime) -> Service {
        Service {
            index,
            label: def.display().into(),
            def,
            run: Run::Down {
                why: Down::Failed,
                since: now,
            },
            log: Log::None,
            last_exit: None,
            ready: Ready::No,
            check: Checking::Idle,
            last_check: None,
            starts: 0,
        }
    }

    pub fn run_pid(&self) -> Option<Pid> {
        match self.run {
            Run::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Keeps dinit running: `run` or `finish` alive, a logger still running, or stopped on
    /// request (an operator may start it again).
    pub fn active(&self) -> bool {
        !matches!(
            self.run,
            Run::Down {
                why: Down::Exited(_) | Down::Failed | Down::DownFile,
                ..
            }
        ) || matches!(self.log, Log::Running { .. })
    }

    /// Moves the service on `ev`; what follows goes to `acts`.
    pub fn on(&mut self, ev: Ev, cx: &Ctx, acts: &mut Vec<Act>) {
        match ev {
            Ev::Start { forced } => self.start(forced, cx, acts),
            Ev::Spawned(Program::Run, r) => self.run_spawned(r, cx, acts),
            Ev::Spawned(Program::Log, r) => self.log_spawned(r, cx, acts),
            Ev::Spawned(Program::Finish(_), r) => self.finish_spawned(r, cx, acts),
            Ev::Spawned(Program::Term(pid), r) => self.term_spawned(pid, r, acts),
            Ev::Spawned(Program::Check(_), r) => self.check_spawned(r, cx, acts),
            Ev::Notified(pid) => self.notified(pid, cx),
            Ev::CheckDue => self.check_due(cx, acts),
            Ev::CheckKill(pid) => self.check_kill(pid, acts),
            Ev::Exec(stage, pid, r) => self.exec(stage, pid, r, cx, acts),
            Ev::Ended(stage, pid, exit) => self.ended(stage, pid, exit, cx, acts),
            Ev::FinishKill(pid) => {
                if let Run::Finishing { pid: Some(p), .. } = self.run
                    && p == pid
                {
                    say(
                        acts,
                        Level::Info,
                        Msg::SendingSigkill(self.label.clone(), Stage::Finish, pid),
                    );
                    acts.push(Act::Do(Effect::Kill(pid, Signal::SIGKILL)));
                }
            }
            Ev::LoggerGrace => {
                if !cx.stopping && self.run_pid().is_some() {
                    acts.push(Act::Shutdown);
                }
            }
            Ev::Stop => {
                acts.push(Act::Do(Effect::ReleaseLoggerInput(self.index)));
                if let Some(pid) = self.run_pid() {
                    self.stop(pid, acts);
                }
            }
            Ev::Request(op, uid) => self.request(op, uid, cx, acts),
        }
    }

    fn start(&mut self, forced: bool, cx: &Ctx, acts: &mut Vec<Act>) {
        if !matches!(self.run, Run::Down { .. }) {
            return;
        }
        if self.def.down && !forced {
            say(
                acts,
                Level::Info,
                Msg::NotStartingDownFile(self.label.clone()),
            );
            self.run = Run::Down {
                why: Down::DownFile,
                since: cx.now,
            };
            return;
        }
        say(
            acts,
            Level::Info,
            Msg::Starting(self.label.clone(), Stage::Run),
        );
        self.run = Run::Starting { since: cx.now };
        acts.push(Act::Do(Effect::Spawn {
            svc: self.index,
            program: Program::Run,
        }));
    }

    fn run_spawned(&mut self, r: Result<Pid, SpawnError>, cx: &Ctx, acts: &mut Vec<Act>) {
        if !matches!(self.run, Run::Starting { .. }) {
            return;
        }
        let e = match r {
            Ok(pid) => {
                self.starts += 1;
                self.run = Run::Running {
                    pid,
                    since: cx.now,
                    after: After::Natural,
                };
                // The shutdown began while the fork was asked for: it stops this one too.
                if cx.stopping {
                    self.stop(pid, acts);
                }
                return;
            }
            Err(SpawnError::LoggerPipe(e)) => {
                format!("{}/log: pipe: {}", self.label, crate::error::errno_text(e))
            }
            Err(SpawnError::Failed(e)) if self.def.main.is_some() => {
                self.main_failed(e, cx, acts);
                return;
            }
            Err(SpawnError::Failed(e)) => Error::path(None, self.def.run_path(), e).to_string(),
            Err(SpawnError::Absent) => {
                Error::path(None, self.def.run_path(), Errno::ENOENT).to_string()
            }
        };
        self.run = Run::Down {
            why: Down::Failed,
            since: cx.now,
        };
        acts.push(Act::Fatal(e));
        acts.push(Act::Shutdown);
    }

    fn exec(
        &mut self,
        stage: Stage,
        pid: Pid,
        r: Result<(), Errno>,
        cx: &Ctx,
        acts: &mut Vec<Act>,
    ) {
        let current = match stage {
            Stage::Run => self.run_pid() == Some(pid),
            Stage::Log => matches!(self.log, Log::Running { pid: p, .. } if p == pid),
            Stage::Finish => matches!(self.run, Run::Finishing { pid: Some(p), .. } if p == pid),
            // A `terminate` script has no state of its own: it is whoever the proctab says.
            Stage::Term => true,
            // A check that cannot run ends with 127: its end says it.
            Stage::Check => return,
        };
        if !current {
            return;
        }
        let e = match r {
            Ok(()) => {
                say(
                    acts,
                    Level::Info,
                    Msg::RunningWithPid(self.label.clone(), stage, pid),
                );
                if stage == Stage::Run {
                    self.start_logger(acts);
                    self.executed(cx, acts);
                }
                return;
            }
            Err(e) => e,
        };
        match stage {
            Stage::Run if self.def.main.is_some() => self.main_failed(e, cx, acts),
            Stage::Run => {
                self.run = Run::Down {
                    why: Down::Failed,
                    since: cx.now,
                };
                acts.push(Act::Do(Effect::CloseLoggerPipe(self.index)));
                acts.push(Act::Fatal(
                    Error::path(None, self.def.run_path(), e).to_string(),
                ));
                acts.push(Act::Shutdown);
            }
            Stage::Log => {
                self.log = Log::None;
                self.logger_failed(Error::path(None, self.def.log_run_path(), e), acts);
            }
            Stage::Finish => {
                let err = Error::path(None, self.def.finish_path(), e);
                self.finish_failed(err, cx, acts);
            }
            Stage::Term => {
                self.term_failed(Error::path(None, self.def.terminate_path(), e), acts);
            }
            Stage::Check => {}
        }
    }

    fn ended(&mut self, stage: Stage, pid: Pid, exit: Exit, cx: &Ctx, acts: &mut Vec<Act>) {
        match stage {
            Stage::Run => {
                let Run::Running { pid: p, after, .. } = self.run else {
                    return; // its exec failed: already reported
                };
                if p != pid {
                    return;
                }
                self.ready = Ready::No;
                // When this end stops the container, it is said at the default level, so that
                // `docker logs` shows why (contract §6); otherwise it is an info line.
                // (The main program's end is how a tini-style container ends: not a warning.)
                let stops = after == After::Natural && !cx.stopping;
                if stops && exit != Exit::Code(DISABLED) && self.def.main.is_none() {
                    say_after_stdout(
                        acts,
                        Level::Warn,
                        Msg::FinishedStopping(self.label.clone(), pid, exit),
                    );
                } else {
                    say_after_stdout(
                        acts,
                        Level::Info,
                        Msg::Finished(self.label.clone(), Stage::Run, pid, exit),
                    );
                }
                // A stop an operator asked for is not a failure; the main program's end that
                // stops the container gives dinit its exit code.
                if stops && self.def.main.is_some() {
                    acts.push(Act::MainExit(exit.shell_code()));
                } else if after == After::Natural {
                    acts.push(Act::Record(Kind::Program, exit));
                }
                self.last_exit = Some(exit);
                self.run = Run::Finishing {
                    pid: None,
                    exit,
                    since: cx.now,
                    after,
                };
                acts.push(Act::Do(Effect::Spawn {
                    svc: self.index,
                    program: Program::Finish(exit),
                }));
            }
            Stage::Finish => {
                let Run::Finishing {
                    pid: Some(p),
                    exit: run_exit,
                    ..
                } = self.run
                else {
                    return;
                };
                if p != pid {
                    return;
                }
                say_after_stdout(
                    acts,
                    Level::Info,
                    Msg::Finished(self.label.clone(), Stage::Finish, pid, exit),
                );
                self.finished(run_exit, cx, acts);
            }
            Stage::Log => {
                if !matches!(self.log, Log::Running { pid: p, .. } if p == pid) {
                    return;
                }
                say_after_stdout(
                    acts,
                    Level::Info,
                    Msg::Finished(self.label.clone(), Stage::Log, pid, exit),
                );
                self.log = Log::Exited {
                    exit,
                    since: cx.now,
                };
                if matches!(self.run, Run::Down { .. }) {
                    acts.push(Act::Do(Effect::CloseLoggerPipe(self.index)));
                } else if !cx.stopping {
                    acts.push(Act::Do(Effect::Arm(
                        cx.mono + LOGGER_GRACE,
                        Timer::LoggerGrace(self.index),
                    )));
                }
                acts.push(Act::Record(Kind::Program, exit));
            }
            Stage::Term => {
                say_after_stdout(
                    acts,
                    Level::Info,
                    Msg::Finished(self.label.clone(), Stage::Term, pid, exit),
                );
                acts.push(Act::Record(Kind::Terminate, exit));
            }
            Stage::Check => self.check_ended(pid, exit, cx, acts),
        }
    }

    fn finish_spawned(&mut self, r: Result<Pid, SpawnError>, cx: &Ctx, acts: &mut Vec<Act>) {
        let Run::Finishing {
            pid: None,
            exit,
            since,
            after,
        } = self.run
        else {
            return;
        };
        match r {
            Ok(pid) => {
                self.run = Run::Finishing {
                    pid: Some(pid),
                    exit,
                    since,
                    after,
                };
                acts.push(Act::Do(Effect::Arm(
                    cx.mono + cx.kill_timeout,
                    Timer::FinishKill(self.index, pid),
                )));
            }
            Err(SpawnError::Absent) => self.finished(exit, cx, acts),
            Err(SpawnError::Failed(e) | SpawnError::LoggerPipe(e)) => {
                let err = Error::path(None, self.def.finish_path(), e);
                self.finish_failed(err, cx, acts);
            }
        }
    }

    fn finish_failed(&mut self, e: Error, cx: &Ctx, acts: &mut Vec<Act>) {
        if let Run::Finishing { exit, .. } = self.run {
            say(
                acts,
                Level::Warn,
                Msg::ErrorRunning(self.label.clone(), Stage::Finish, e.to_string()),
            );
            self.finished(exit, cx, acts);
        }
    }

    /// `run` (and its `finish`) are over: what the end leads to.
    fn finished(&mut self, exit: Exit, cx: &Ctx, acts: &mut Vec<Act>) {
        let Run::Finishing { after, .. } = self.run else {
            return;
        };
        let since = cx.now;
        match after {
            After::Down => {
                self.run = Run::Down {
                    why: Down::Requested(exit),
                    since,
                }
            }
            After::Restart => {
                self.run = Run::Down {
                    why: Down::Requested(exit),
                    since,
                };
                if !cx.stopping {
                    self.start(true, cx, acts);
                }
            }
            After::Natural => {
                self.run = Run::Down {
                    why: Down::Exited(exit),
                    since,
                };
                acts.push(Act::Do(Effect::ReleaseLoggerInput(self.index)));
                if !matches!(self.log, Log::Running { .. }) {
                    acts.push(Act::Do(Effect::CloseLoggerPipe(self.index)));
                }
                // 115 disables a service; the main program's end always ends the container.
                if exit != Exit::Code(DISABLED) || self.def.main.is_some() {
                    acts.push(Act::Shutdown);
                }
            }
        }
    }

    /// The main program could not be started: the container ends with the shell's code for it
    /// (127: not found, 126: not executable).
    fn main_failed(&mut self, e: Errno, cx: &Ctx, acts: &mut Vec<Act>) {
        let Some(main) = &self.def.main else { return };
        self.run = Run::Down {
            why: Down::Failed,
            since: cx.now,
        };
        let name = crate::log::Escape(main.name.as_encoded_bytes());
        let msg = format!("{}: {name}: {}", self.label, crate::error::errno_text(e));
        acts.push(Act::Fatal(msg));
        acts.push(Act::MainExit(super::scan::MainProgram::exec_failure_code(
            e,
        )));
        acts.push(Act::Shutdown);
    }

    /// Stops `run` (alive as `pid`): its `terminate` script, else SIGTERM.
    fn stop(&mut self, pid: Pid, acts: &mut Vec<Act>) {
        say(acts, Level::Info, Msg::Terminating(self.label.clone()));
        acts.push(Act::Do(Effect::Spawn {
            svc: self.index,
            program: Program::Term(pid),
        }));
    }

    fn term_spawned(&mut self, pid: Pid, r: Result<Pid, SpawnError>, acts: &mut Vec<Act>) {
        match r {
            Ok(_) => {}
            Err(SpawnError::Absent) => {
                if self.run_pid() == Some(pid) {
                    self.send_term(pid, acts);
                }
            }
            Err(SpawnError::Failed(e) | SpawnError::LoggerPipe(e)) => {
                self.term_failed(Error::path(None, self.def.terminate_path(), e), acts);
            }
        }
    }

    /// A `terminate` that exists but cannot run: say so, count it, and fall back to SIGTERM
    /// rather than wait for a service nobody asked to stop (tozd/dinit hangs there).
    fn term_failed(&mut self, e: Error, acts: &mut Vec<Act>) {
        say(
            acts,
            Level::Error,
            Msg::ErrorRunning(self.label.clone(), Stage::Term, e.to_string()),
        );
        acts.push(Act::Failed);
        if let Some(pid) = self.run_pid() {
            self.send_term(pid, acts);
        }
    }

    fn send_term(&self, pid: Pid, acts: &mut Vec<Act>) {
        say(
            acts,
            Level::Info,
            Msg::SendingSigterm(self.label.clone(), pid),
        );
        acts.push(Act::Do(Effect::Terminate(pid)));
    }
}
