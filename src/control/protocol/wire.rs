//! The protocol's types to and from JSON, by hand: reading leniently (`from_value`), writing
//! straight into the connection's buffer (`write_members`), and, for the tests, the same as a
//! `serde_json::Value` (`to_value`), which the direct writer must match byte for byte.

use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use super::*;

// ---- the JSON mapping -----------------------------------------------------------------------

#[cfg(test)]
fn pid_value(pid: Option<u32>) -> Value {
    pid.map_or(Value::Null, Value::from)
}

impl Status {
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        json!({
            "dinit": {
                "pid": self.dinit.pid,
                "state": self.dinit.state.word(),
                "uptime_s": self.dinit.uptime_s,
                "version": self.dinit.version,
                "protocol": self.dinit.protocol,
            },
            "services": self.services.iter().map(ServiceStatus::to_value).collect::<Vec<_>>(),
            "orphans": self.orphans.iter().map(|o| json!({
                "name": o.name, "pid": o.pid, "policy": o.policy,
            })).collect::<Vec<_>>(),
        })
    }

    /// Reads a status object; only a missing list of services, or a service without a name,
    /// is an error.
    pub fn from_value(v: &Value) -> Result<Status, String> {
        let d = Fields(v.get("dinit").unwrap_or(&Value::Null));
        let services = match v.get("services") {
            Some(Value::Array(a)) => a
                .iter()
                .map(ServiceStatus::from_value)
                .collect::<Result<_, _>>()?,
            _ => return Err("no services".into()),
        };
        let orphans = match v.get("orphans") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|o| {
                    let o = Fields(o);
                    OrphanStatus {
                        name: o.string("name"),
                        pid: o
                            .u64("pid")
                            .and_then(|p| i32::try_from(p).ok())
                            .unwrap_or(0),
                        policy: o.string("policy"),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Status {
            dinit: Dinit {
                pid: d
                    .u64("pid")
                    .and_then(|p| u32::try_from(p).ok())
                    .unwrap_or(0),
                state: d
                    .word("state", DinitState::from_word)
                    .unwrap_or(DinitState::Running),
                uptime_s: d.f64("uptime_s"),
                version: d.string("version"),
                protocol: d.u64("protocol").unwrap_or(VERSION),
            },
            services,
            orphans,
        })
    }
}

impl ServiceStatus {
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        let streams = |s: Streams| json!({"stdout": s.stdout, "stderr": s.stderr});
        json!({
            "name": self.name,
            "dir": self.dir,
            "state": self.state.word(),
            "pid": pid_value(self.pid),
            "since": self.since,
            "since_s": self.since_s,
            "down_file": self.down_file,
            "down_reason": self.down_reason.map(DownReason::word),
            "want": self.want.word(),
            "exit": match self.exit {
                Some(ExitStatus::Code(c)) => json!({"code": c}),
                Some(ExitStatus::Signal(s)) => json!({"signal": s}),
                None => Value::Null,
            },
            "log": self.log.as_ref().map(|l| json!({
                "state": l.state.word(),
                "pid": pid_value(l.pid),
                "since": l.since,
                "since_s": l.since_s,
            })),
            "lines": streams(self.lines),
            "bytes": streams(self.bytes),
            "ready": self.ready,
            "ready_since": self.ready_since,
        })
    }

    pub fn from_value(v: &Value) -> Result<ServiceStatus, String> {
        let f = Fields(v);
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a service without a name")?;
        let streams = |k: &str| {
            let s = Fields(v.get(k).unwrap_or(&Value::Null));
            Streams {
                stdout: s.u64("stdout").unwrap_or(0),
                stderr: s.u64("stderr").unwrap_or(0),
            }
        };
        let exit = v.get("exit").and_then(|e| {
            let e = Fields(e);
            let n = |k| {
                e.0.get(k)
                    .and_then(Value::as_i64)
                    .and_then(|n| i32::try_from(n).ok())
            };
            n("code")
                .map(ExitStatus::Code)
                .or_else(|| n("signal").map(ExitStatus::Signal))
        });
        let log = v.get("log").filter(|l| l.is_object()).map(|l| {
            let l = Fields(l);
            LogStatus {
                state: l
                    .word("state", LogState::from_word)
                    .unwrap_or(LogState::Down),
                pid: l.pid("pid"),
                since: l.string("since"),
                since_s: l.f64("since_s"),
            }
        });
        Ok(ServiceStatus {
            name: name.to_owned(),
            dir: f.string("dir"),
            state: f.word("state", State::from_word).unwrap_or(State::Down),
            pid: f.pid("pid"),
            since: f.string("since"),
            since_s: f.f64("since_s"),
            down_file: v.get("down_file").and_then(Value::as_bool).unwrap_or(false),
            down_reason: f.word("down_reason", DownReason::from_word),
            want: f.word("want", Want::from_word).unwrap_or(Want::Up),
            exit,
            log,
            lines: streams("lines"),
            bytes: streams("bytes"),
            ready: v.get("ready").and_then(Value::as_bool).unwrap_or(false),
            ready_since: v
                .get("ready_since")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// Lenient field readers: a field that is missing or of another type reads as `None` or the
/// type's empty value.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn string(&self, k: &str) -> String {
        self.0
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
    fn f64(&self, k: &str) -> f64 {
        self.0.get(k).and_then(Value::as_f64).unwrap_or(0.0)
    }
    fn u64(&self, k: &str) -> Option<u64> {
        self.0.get(k).and_then(Value::as_u64)
    }
    /// A pid: positive, or none.
    fn pid(&self, k: &str) -> Option<u32> {
        self.u64(k)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0)
    }
    fn word<T>(&self, k: &str, parse: fn(&str) -> Option<T>) -> Option<T> {
        self.0.get(k).and_then(Value::as_str).and_then(parse)
    }
}

// ---- the JSON mapping, written directly ----------------------------------------------------
//
// The same bytes as `to_value().to_string()` (the tests compare them): members in serde_json's
// order (sorted keys), strings and floats formatted by serde_json itself.

/// A JSON string, escaped as serde_json escapes it.
pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A float as serde_json writes it (`null` when not finite, as `Value::from` makes it).
fn put_f64(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &x);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn put_int(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{n}");
}

fn put_pid(out: &mut Vec<u8>, pid: Option<u32>) {
    match pid {
        Some(p) => put_int(out, p),
        None => out.extend_from_slice(b"null"),
    }
}

/// `"key":`
fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn put_streams(out: &mut Vec<u8>, s: Streams) {
    out.extend_from_slice(br#"{"stderr":"#);
    put_int(out, s.stderr);
    out.extend_from_slice(br#","stdout":"#);
    put_int(out, s.stdout);
    out.push(b'}');
}

impl Status {
    /// The status as one JSON object (what `dinit status --json` prints).
    pub fn write_object(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        self.write_members(out);
        out.push(b'}');
    }

    /// The members of the status object, without its braces.
    pub(super) fn write_members(&self, out: &mut Vec<u8>) {
        let d = &self.dinit;
        key(out, "dinit");
        out.extend_from_slice(br#"{"pid":"#);
        put_int(out, d.pid);
        out.extend_from_slice(br#","protocol":"#);
        put_int(out, d.protocol);
        out.extend_from_slice(br#","state":"#);
        put_str(out, d.state.word());
        out.extend_from_slice(br#","uptime_s":"#);
        put_f64(out, d.uptime_s);
        out.extend_from_slice(br#","version":"#);
        put_str(out, &d.version);
        out.extend_from_slice(b"},");
        key(out, "orphans");
        out.push(b'[');
        for (i, o) in self.orphans.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"name":"#);
            put_str(out, &o.name);
            out.extend_from_slice(br#","pid":"#);
            put_int(out, o.pid);
            out.extend_from_slice(br#","policy":"#);
            put_str(out, &o.policy);
            out.push(b'}');
        }
        out.extend_from_slice(b"],");
        key(out, "services");
        out.push(b'[');
        for (i, s) in self.services.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            s.write_json(out);
        }
        out.push(b']');
    }
}

impl ServiceStatus {
    /// [`ServiceStatus::to_value`], written.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"bytes":"#);
        put_streams(out, self.bytes);
        out.extend_from_slice(br#","dir":"#);
        put_str(out, &self.dir);
        out.extend_from_slice(br#","down_file":"#);
        out.extend_from_slice(if self.down_file { b"true" } else { b"false" });
        out.extend_from_slice(br#","down_reason":"#);
        match self.down_reason {
            Some(r) => put_str(out, r.word()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","exit":"#);
        match self.exit {
            Some(ExitStatus::Code(c)) => {
                out.extend_from_slice(br#"{"code":"#);
                put_int(out, c);
                out.push(b'}');
            }
            Some(ExitStatus::Signal(s)) => {
                out.extend_from_slice(br#"{"signal":"#);
                put_int(out, s);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","lines":"#);
        put_streams(out, self.lines);
        out.extend_from_slice(br#","log":"#);
        match &self.log {
            Some(l) => {
                out.extend_from_slice(br#"{"pid":"#);
                put_pid(out, l.pid);
                out.extend_from_slice(br#","since":"#);
                put_str(out, &l.since);
                out.extend_from_slice(br#","since_s":"#);
                put_f64(out, l.since_s);
                out.extend_from_slice(br#","state":"#);
                put_str(out, l.state.word());
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","name":"#);
        put_str(out, &self.name);
        out.extend_from_slice(br#","pid":"#);
        put_pid(out, self.pid);
        out.extend_from_slice(br#","ready":"#);
        out.extend_from_slice(if self.ready { b"true" } else { b"false" });
        out.extend_from_slice(br#","ready_since":"#);
        match &self.ready_since {
            Some(t) => put_str(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","since":"#);
        put_str(out, &self.since);
        out.extend_from_slice(br#","since_s":"#);
        put_f64(out, self.since_s);
        out.extend_from_slice(br#","state":"#);
        put_str(out, self.state.word());
        out.extend_from_slice(br#","want":"#);
        put_str(out, self.want.word());
        out.push(b'}');
    }
}
