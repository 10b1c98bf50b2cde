//! What the loop does for supervision: each [`Effect`] carried out, the outcome (where one
//! matters) handed back as an [`Event`]. Spawning a service's programs with their pipes, the
//! control connections' requests and replies, the tracer's commands, dinit's own messages.
//!
//! The only place that turns supervision's decisions into system calls; nothing here decides.

use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

use mio::Token;
use mio::unix::SourceFd;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Loop;
use crate::control::protocol::Response;
use crate::control::status::{self, Route};
use crate::output::Stream;
use crate::output::pipes::Counts;
use crate::output::record::Source;
use crate::supervise::events::{Effect, Event, Program, SpawnError};
use crate::supervise::messages::Msg;
use crate::supervise::orphans;
use crate::supervise::proctab::{Io, Role};
use crate::supervise::scan::{Readiness, ServiceDef};
use crate::supervise::spawn::{self, Input, Spec, StdoutTo};
use crate::{error, log, warn};

/// The pipe from `run`'s stdout to the logger. dinit keeps both ends while the service may
/// still run: the write end so that the logger outlives a `dinit down`/`restart` of its
/// service, the read end so that a logger that dies cannot kill its service with SIGPIPE (the
/// shutdown that follows stops it cleanly).
struct LoggerPipe {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

/// A service's resources on the loop's side.
pub struct ServiceIo {
    logger: Option<LoggerPipe>,
    /// `<name>/run`: `run`'s records, and the logger's stdout.
    src_run: Rc<Source>,
    pub counts: [Rc<Cell<Counts>>; 2],
}

impl ServiceIo {
    pub fn new(def: &ServiceDef) -> ServiceIo {
        ServiceIo {
            logger: None,
            src_run: Rc::new(Source::new(&def.name, "run")),
            counts: Default::default(),
        }
    }
}

impl Loop {
    /// Carries out `e`; returns the event its outcome is, if any.
    pub fn perform(&mut self, e: Effect) -> Option<Event> {
        match e {
            Effect::Spawn { svc, program } => {
                let result = self.spawn_program(svc, program);
                return Some(Event::Spawned {
                    svc,
                    program,
                    result,
                });
            }
            Effect::Kill(pid, sig) => {
                let _ = kill(pid, sig);
            }
            Effect::Terminate(pid) => self.terminate(pid),
            Effect::Arm(at, t) => self.timers.arm(at, t),
            Effect::Say(level, msg) => log!(self.out, level, "{msg}"),
            Effect::SayAfterStdout(level, msg) => {
                if self.out.enabled(level) {
                    let after = self.finished_mark;
                    self.out.own_after(after, level, format_args!("{msg}"));
                }
            }
            Effect::ReleaseLoggerInput(i) => {
                if let Some(p) = self.io.get_mut(i).and_then(|s| s.logger.as_mut()) {
                    p.write = None;
                }
            }
            Effect::CloseLoggerPipe(i) => {
                if let Some(s) = self.io.get_mut(i) {
                    s.logger = None;
                }
            }
            Effect::Scan => {
                let sup = &self.sup;
                let scan = orphans::scan(|pid| sup.knows(pid), &sup.captured());
                return Some(Event::Scanned(scan));
            }
            Effect::Reap => {
                // Answered through the queue: the reaped ends, then the children left.
                self.reap();
            }
            Effect::Reply(token, result) => {
                let response = match result {
                    Ok(()) => Response::Done,
                    Err(r) => Response::Refused(r.to_string()),
                };
                self.control.respond(token, &response);
            }
            Effect::Trace(pid, cmd) => {
                let result = self.tracer.run(pid, cmd)?;
                return Some(Event::TraceResult { pid, result });
            }
            Effect::Capture(pid) => {
                let result = self.tracer.plan(pid);
                return Some(Event::TraceResult { pid, result });
            }
            Effect::Watch(pid) => return Some(self.watch_adopted(pid)),
            Effect::Release(pid) => {
                let strangers = self.tracer.release(pid);
                if strangers > 0 {
                    warn!(
                        self.out,
                        "adoption hand-over: refused {strangers} connections from other processes"
                    );
                }
            }
            Effect::KillAll(pids) => {
                if std::process::id() == 1 {
                    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                } else {
                    for pid in pids {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                }
            }
            Effect::Wind => {
                self.pipes.drain_all(self.poll.registry(), &mut self.out);
                self.control.remove();
            }
        }
        None
    }

    fn terminate(&mut self, pid: Pid) {
        match kill(pid, Signal::SIGTERM) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                if let Some(Role::Service(i, _)) = self.sup.procs.get(pid).map(|p| &p.role) {
                    let label = self.sup.services[*i].label.clone();
                    let msg = Msg::CannotSigterm(label, pid, e);
                    warn!(self.out, "{msg}");
                }
                return;
            }
        }
        let _ = kill(pid, Signal::SIGCONT);
    }

    /// Forks `program` of service `svc`, watches its pipes and its exec status.
    fn spawn_program(&mut self, svc: usize, program: Program) -> Result<(Pid, Io), SpawnError> {
        let def = self.sup.services[svc].def.clone();
        let io = &mut self.io[svc];
        let main = def.main.as_ref();
        let (path, cwd) = match (program, main) {
            // The main program has no directory of its own: no finish, no terminate.
            (Program::Finish(_) | Program::Term(_) | Program::Log | Program::Check(_), Some(_)) => {
                return Err(SpawnError::Absent);
            }
            (Program::Run, Some(m)) => {
                (m.path.clone().map_err(SpawnError::Failed)?, def.dir.clone())
            }
            (Program::Log, None) => (def.log_run_path(), def.log_dir()),
            (Program::Run, None) => (def.run_path(), def.dir.clone()),
            (Program::Finish(_), None) => (def.finish_path(), def.dir.clone()),
            (Program::Term(_), None) => (def.terminate_path(), def.dir.clone()),
            (Program::Check(_), None) => (def.check_path(), def.dir.clone()),
        };
        let optional = matches!(
            program,
            Program::Finish(_) | Program::Term(_) | Program::Check(_)
        );
        if optional && !spawn::exists(&path) {
            // A missing `terminate` or `finish` is not started at all, which spares a fork.
            return Err(SpawnError::Absent);
        }
        let mut stdin = Input::Null;
        let mut stdout = StdoutTo::Pipe;
        if let Program::Check(_) = program {
            // As runit's `sv check`: its stdout goes nowhere; its stderr is relayed.
            stdout = StdoutTo::Null;
        }
        // s6's notification fd: `run` gets the write end as that fd, dinit watches the other.
        let mut notify = None;
        if let (Program::Run, Readiness::Notify(n)) = (program, def.readiness) {
            notify = Some((spawn::pipe().map_err(SpawnError::Failed)?, n));
        }
        if let Some(m) = main {
            // The main program reads dinit's stdin (as under tini); with a terminal it gets
            // dinit's stdout and stderr too, and the foreground.
            stdin = Input::Inherit;
            if m.terminal {
                stdout = StdoutTo::Terminal;
            }
        }
        if program == Program::Run && def.has_logger {
            if io.logger.as_ref().is_none_or(|p| p.write.is_none()) {
                let (read, write) = spawn::pipe().map_err(SpawnError::LoggerPipe)?;
                io.logger = Some(LoggerPipe {
                    read,
                    write: Some(write),
                });
            }
            let write = io.logger.as_ref().and_then(|p| p.write.as_ref());
            if let Some(Ok(w)) = write.map(|w| w.try_clone()) {
                stdout = StdoutTo::Fd(w);
            }
        }
        if program == Program::Log {
            let read = io.logger.as_ref().map(|p| p.read.try_clone());
            stdin = match read {
                Some(Ok(fd)) => Input::Fd(fd),
                Some(Err(e)) => return Err(SpawnError::Failed(crate::error::ErrnoOf::from(&e).0)),
                None => return Err(SpawnError::Failed(Errno::EBADF)),
            };
        }
        let (args, env) = match program {
            Program::Finish(exit) => (exit.finish_args().map(Into::into).to_vec(), vec![]),
            Program::Term(pid) => (vec![], vec![("DINIT_PID", pid.to_string())]),
            Program::Run => (main.map(|m| m.args.clone()).unwrap_or_default(), vec![]),
            Program::Log => (vec![], vec![]),
            Program::Check(pid) => (vec![], vec![("DINIT_PID", pid.to_string())]),
        };
        let (out_src, err_src) = match program {
            Program::Run => (io.src_run.clone(), io.src_run.clone()),
            Program::Log => (io.src_run.clone(), Rc::new(Source::new(&def.name, "log"))),
            p => {
                let src = Rc::new(Source::new(&def.name, p.stage().name()));
                (src.clone(), src)
            }
        };
        let counts = io.counts.clone();
        let (notify_read, extra) = match notify {
            Some(((read, write), n)) => (Some(read), Some((write, n))),
            None => (None, None),
        };
        let argv0 = match program {
            Program::Check(_) => Some(std::ffi::OsStr::new("./check")),
            _ => main.map(|m| m.name.as_os_str()),
        };
        let child = spawn::spawn(Spec {
            program: &path,
            argv0,
            extra,
            args: &args,
            cwd: &cwd,
            stdin,
            stdout,
            env: &env,
        })
        .map_err(SpawnError::Failed)?;
        if let Some(read) = notify_read {
            self.watch_notify(svc, child.pid, read);
        }
        let label = self.sup.services[svc].label.clone();
        let mut pipes = Vec::with_capacity(2);
        for (fd, stream, src, n) in [
            (child.stdout, Stream::Stdout, out_src, 0),
            (child.stderr, Stream::Stderr, err_src, 1),
        ] {
            if let Some(fd) = fd {
                pipes.extend(self.watch(fd, stream, src, counts[n].clone(), &label));
            }
        }
        let token = self.tokens.fresh();
        let fd = child.exec_status;
        let registered = self
            .poll
            .registry()
            .register(
                &mut SourceFd(&fd.as_raw_fd()),
                token,
                mio::Interest::READABLE,
            )
            .is_ok();
        self.exec.insert(token, (child.pid, fd));
        if !registered {
            // Cannot wait for it on the poll (out of memory): learn it now. This waits for the
            // child's exec, not for anything the child decides.
            self.settle_exec(token, true);
        }
        Ok((
            child.pid,
            Io {
                pipes,
                exec: registered.then_some(token),
            },
        ))
    }

    /// Registers a pipe's read end; an error is said and the pipe is dropped.
    fn watch(
        &mut self,
        fd: OwnedFd,
        stream: Stream,
        src: Rc<Source>,
        counts: Rc<Cell<Counts>>,
        label: &str,
    ) -> Option<Token> {
        let token = self.tokens.fresh();
        match self
            .pipes
            .add(self.poll.registry(), token, fd, stream, src, counts)
        {
            Ok(t) => Some(t),
            Err(e) => {
                error!(
                    self.out,
                    "{label}: cannot watch {}: {}",
                    stream.name(),
                    crate::error::errno_text(crate::error::ErrnoOf::from(&e).0)
                );
                None
            }
        }
    }

    /// Watches the read end of `run`'s notification pipe; a newline there makes it ready.
    fn watch_notify(&mut self, svc: usize, pid: Pid, read: OwnedFd) {
        let token = self.tokens.fresh();
        let ok = crate::output::pipes::set_nonblocking(&read).is_ok()
            && self
                .poll
                .registry()
                .register(
                    &mut SourceFd(&read.as_raw_fd()),
                    token,
                    mio::Interest::READABLE,
                )
                .is_ok();
        if ok {
            self.notify.insert(token, (svc, pid, read));
        }
    }

    /// The notification pipe of service `svc`'s `run` is readable: a newline says ready; EOF
    /// (or an error) ends the watch.
    pub fn notify_ready(&mut self, token: Token) {
        let Some((svc, pid, fd)) = self.notify.get(&token) else {
            return;
        };
        let (svc, pid) = (*svc, *pid);
        let mut buf = [0u8; 512];
        let (mut ready, mut done) = (false, false);
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    done = true;
                    break;
                }
                Ok(n) => ready |= buf[..n].contains(&b'\n'),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        // Readiness is said once: the pipe is of no more use after the newline.
        if (ready || done)
            && let Some((_, _, fd)) = self.notify.remove(&token)
        {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        if ready {
            self.deliver(Event::Notified { svc, pid });
        }
    }

    /// The adopted process writes into its capture's pipes: watch them as `<name>/<pid>`.
    fn watch_adopted(&mut self, pid: Pid) -> Event {
        let mut pipes = Vec::new();
        let name = match self.sup.procs.get(pid).map(|p| &p.role) {
            Some(Role::Adopted(o, _)) => o.name.clone(),
            _ => return Event::Watched { pid, pipes },
        };
        if let Some([out, err]) = self.tracer.take_read_ends(pid) {
            let src = Rc::new(Source::new(name.as_bytes(), &pid.to_string()));
            let label = format!("{name}/{pid}");
            for (fd, stream) in [(out, Stream::Stdout), (err, Stream::Stderr)] {
                pipes.extend(self.watch(fd, stream, src.clone(), Default::default(), &label));
            }
        }
        Event::Watched { pid, pipes }
    }

    /// An event on a control connection (readable or writable): it is served at most one
    /// request.
    pub fn control_ready(&mut self, token: Token) {
        self.control.woke(token);
        self.serve_connection(token);
    }

    /// Once a turn: control connections past their deadline are closed, connections left
    /// waiting by the accept budget are accepted, and each connection that can go on without a
    /// new event (requests held, input left unread) is served one more request.
    pub fn control_turn(&mut self, now: Instant) {
        if self.control.wants_accept() {
            let tokens = &mut self.tokens;
            self.control
                .accept(self.poll.registry(), || tokens.fresh(), now);
        }
        for token in self.control.turn(now, self.poll.registry()) {
            self.serve_connection(token);
        }
    }

    /// One request of a control connection: answered from supervision's state, refused, or
    /// handed to supervision as an event (whose `Reply` effect answers it).
    fn serve_connection(&mut self, token: Token) {
        let now = Instant::now();
        if let Some(incoming) = self.control.next_request(token, now) {
            let route = match incoming.request {
                Ok(req) => {
                    self.stats.request(req.name());
                    status::route(req, incoming.uid, nix::unistd::getuid().as_raw())
                }
                Err(e) => Route::Refuse(e),
            };
            match route {
                Route::Refuse(e) => self.control.respond(token, &Response::Refused(e)),
                Route::Read(names) => {
                    let io = &self.io;
                    let counts = |i: usize| {
                        io.get(i).map_or([Counts::default(); 2], |s| {
                            [s.counts[0].get(), s.counts[1].get()]
                        })
                    };
                    let response = match status::build(&self.sup, &names, counts) {
                        Ok(st) => Response::Status(st),
                        Err(r) => Response::Refused(r.to_string()),
                    };
                    self.control.respond(token, &response);
                }
                Route::Ask(ask) => self.deliver(Event::Request {
                    from: token,
                    uid: incoming.uid,
                    ask,
                }),
            }
        }
        self.control.settle(token, self.poll.registry(), now);
    }
}
