//! The HTTP listener's answers, from the loop's state: probes, the status, the metrics.

use std::time::Instant;

use mio::Token;

use super::Loop;
use crate::control::protocol::Response;
use crate::control::status;
use crate::http::metrics::{self, Figures, ServiceFigures};
use crate::http::server::{Answer, Route};
use crate::http::{self as probes};
use crate::output::pipes::Counts;
use crate::supervise::exit::Exit;
use crate::supervise::proctab::Role;
use crate::supervise::service::{Ready, Run};

/// What the loop counts for the metrics, beyond the state machines.
pub struct Stats {
    /// Reparented processes reaped that had ended before dinit saw them.
    pub orphans_reaped: u64,
    /// Control requests by command.
    pub requests: [(&'static str, u64); 7],
}

impl Default for Stats {
    fn default() -> Stats {
        let cmds = [
            "status", "check", "up", "down", "restart", "signal", "shutdown",
        ];
        Stats {
            orphans_reaped: 0,
            requests: cmds.map(|c| (c, 0)),
        }
    }
}

impl Stats {
    pub fn request(&mut self, cmd: &str) {
        if let Some(r) = self.requests.iter_mut().find(|(c, _)| *c == cmd) {
            r.1 += 1;
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Loop {
    /// An HTTP connection is ready: once its request head is in, it is answered.
    pub fn http_ready(&mut self, token: Token) {
        if let Some(route) = self.http.on_ready(token, self.poll.registry()) {
            let answer = self.http_answer(route);
            self.http.answer(token, answer, self.poll.registry());
        }
    }

    fn counts(&self, i: usize) -> [Counts; 2] {
        self.io.get(i).map_or([Counts::default(); 2], |s| {
            [s.counts[0].get(), s.counts[1].get()]
        })
    }

    fn http_answer(&self, route: Route) -> Answer {
        let text = |code, body: String| Answer {
            code,
            content_type: TEXT,
            body,
        };
        match route {
            Route::Livez | Route::Readyz => {
                let Ok(st) = status::build(&self.sup, &[], |i| self.counts(i)) else {
                    return text(503, "dinit: no status\n".into());
                };
                let timeout = self.sup.config().check_timeout;
                let timeout = seconds(timeout);
                let check_failed =
                    |i: usize| self.sup.services.get(i)?.last_check?.failure(&timeout);
                let reasons = probes::probe(&st, route == Route::Readyz, check_failed);
                if reasons.is_empty() {
                    text(200, "ok\n".into())
                } else {
                    text(503, reasons.join("\n") + "\n")
                }
            }
            Route::Status => match status::build(&self.sup, &[], |i| self.counts(i)) {
                Ok(st) => Answer {
                    code: 200,
                    content_type: "application/json",
                    body: {
                        let mut body = Vec::new();
                        st.write_object(&mut body);
                        body.push(b'\n');
                        String::from_utf8(body).unwrap_or_default()
                    },
                },
                Err(e) => text(503, Response::Refused(e.to_string()).to_json()),
            },
            Route::Metrics => Answer {
                code: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics::render(&self.figures()),
            },
            Route::NotFound => text(
                404,
                "not found: /livez, /readyz, /status, /metrics\n".into(),
            ),
            Route::MethodNotAllowed => text(405, "only GET and HEAD\n".into()),
            Route::BadRequest => text(400, "bad request\n".into()),
        }
    }

    fn figures(&self) -> Figures<'_> {
        let services = self
            .sup
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let [out, err] = self.counts(i);
                let (up, started) = match s.run {
                    Run::Running { since, .. } => (true, Some(since)),
                    _ => (false, None),
                };
                ServiceFigures {
                    name: s.def.name_str(),
                    up,
                    ready: matches!(s.ready, Ready::Yes { .. }) && up,
                    starts: s.starts,
                    last_exit: s.last_exit.map(Exit::shell_code),
                    started,
                    lines: [out.lines, err.lines],
                    bytes: [out.bytes, err.bytes],
                }
            })
            .collect();
        let mut orphans = [0, 0];
        for (_, p) in self.sup.procs.iter() {
            match p.role {
                Role::Orphan(_) => orphans[0] += 1,
                Role::Adopted(..) => orphans[1] += 1,
                Role::Service(..) => {}
            }
        }
        Figures {
            services,
            queue_bytes: self.out.queued(),
            blocked_seconds: self.out.blocked_seconds(Instant::now()),
            orphans_reaped: self.stats.orphans_reaped,
            orphans,
            requests: &self.stats.requests,
        }
    }
}

/// `1`, `0.5`: seconds as `DINIT_CHECK_TIMEOUT` is usually written (what `dinit check` prints).
fn seconds(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        let s = format!("{:.9}", d.as_secs_f64());
        s.trim_end_matches('0').to_owned()
    }
}
