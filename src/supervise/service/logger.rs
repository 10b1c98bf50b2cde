//! A service's logger (`log/run`): started once `run` runs, fed `run`'s stdout through a pipe
//! that outlives restarts of `run`, and its end stops the container unless `run` ends within
//! [`super::LOGGER_GRACE`] too.

use nix::errno::Errno;
use nix::unistd::Pid;

use super::super::events::{Effect, Program, SpawnError, Stage};
use super::{Act, Ctx, Log, Service, say};
use crate::error::Error;
use crate::log::Level;
use crate::supervise::messages::Msg;

impl Service {
    /// Starts the logger once `run` is known to run (a logger survives a restart of `run`).
    pub(super) fn start_logger(&mut self, acts: &mut Vec<Act>) {
        if !self.def.has_logger || matches!(self.log, Log::Running { .. } | Log::Starting) {
            return;
        }
        say(
            acts,
            Level::Info,
            Msg::Starting(self.label.clone(), Stage::Log),
        );
        self.log = Log::Starting;
        acts.push(Act::Do(Effect::Spawn {
            svc: self.index,
            program: Program::Log,
        }));
    }

    pub(super) fn log_spawned(
        &mut self,
        r: Result<Pid, SpawnError>,
        cx: &Ctx,
        acts: &mut Vec<Act>,
    ) {
        if self.log != Log::Starting {
            return;
        }
        match r {
            Ok(pid) => self.log = Log::Running { pid, since: cx.now },
            Err(SpawnError::Failed(e) | SpawnError::LoggerPipe(e)) => {
                self.log = Log::None;
                self.logger_failed(Error::path(None, self.def.log_run_path(), e), acts);
            }
            Err(SpawnError::Absent) => {
                self.log = Log::None;
                let e = Error::path(None, self.def.log_run_path(), Errno::ENOENT);
                self.logger_failed(e, acts);
            }
        }
    }

    pub(super) fn logger_failed(&mut self, e: Error, acts: &mut Vec<Act>) {
        say(
            acts,
            Level::Error,
            Msg::ErrorRunning(self.label.clone(), Stage::Log, e.to_string()),
        );
        acts.push(Act::Do(Effect::CloseLoggerPipe(self.index)));
        acts.push(Act::Fatal(e.to_string()));
        acts.push(Act::Shutdown);
    }
}
