//! One line of a program -> one record in dinit's output (contract §4).
//!
//! - JSON mode, stdout: a JSON object gets `"service"`, `"stage"`, `"logged"` appended (members
//!   with those keys removed first); anything else becomes `{"msg":…}` with the same fields. The
//!   result always parses.
//! - Text mode and every stderr line: `<ts> <name>/<stage>: <line>`.
//!
//! Pure: appends to a caller's buffer; everything that depends only on the program (its escaped
//! name, its prefix) is computed once per stream in [`Source`].

use super::clock::TS_LEN;
use super::json::{self, Member};

/// Who wrote a stream: its name and stage, pre-rendered for both formats.
#[derive(Debug, Clone)]
pub struct Source {
    /// `name/stage`, as printed in text records and own messages.
    label: Box<[u8]>,
    /// `"service":<name>,"stage":<stage>,"logged":"` — the fields dinit adds, up to the timestamp.
    json_fields: Box<[u8]>,
}

impl Source {
    pub fn new(name: &[u8], stage: &str) -> Source {
        let mut label = Vec::with_capacity(name.len() + stage.len() + 1);
        label.extend_from_slice(name);
        label.push(b'/');
        label.extend_from_slice(stage.as_bytes());
        let mut f = Vec::with_capacity(name.len() + stage.len() + 40);
        f.extend_from_slice(b"\"service\":");
        json::write_string(&mut f, name);
        f.extend_from_slice(b",\"stage\":");
        json::write_string(&mut f, stage.as_bytes());
        f.extend_from_slice(b",\"logged\":\"");
        Source {
            label: label.into(),
            json_fields: f.into(),
        }
    }

    pub fn label(&self) -> &[u8] {
        &self.label
    }
}

/// Formats records; holds the scratch space the JSON scanner reuses.
#[derive(Default)]
pub struct Formatter {
    members: Vec<Member>,
}

impl Formatter {
    /// `<ts> <name>/<stage>: <line>\n`, bytes as they came.
    pub fn text(&mut self, out: &mut Vec<u8>, src: &Source, ts: &[u8; TS_LEN], line: &[u8]) {
        out.reserve(TS_LEN + src.label.len() + line.len() + 4);
        out.extend_from_slice(ts);
        out.push(b' ');
        out.extend_from_slice(&src.label);
        out.extend_from_slice(b": ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }

    /// One JSON object per line, always valid.
    pub fn json(&mut self, out: &mut Vec<u8>, src: &Source, ts: &[u8; TS_LEN], line: &[u8]) {
        out.reserve(line.len() + src.json_fields.len() + TS_LEN + 16);
        match json::scan_object(line, &mut self.members) {
            Some(obj) if !obj.has_reserved => {
                // Common case: the object as written, minus its closing brace.
                out.extend_from_slice(&line[obj.start..obj.end - 1]);
                if obj.has_members {
                    out.push(b',');
                }
            }
            Some(_) => {
                out.push(b'{');
                let mut first = true;
                for m in self.members.iter().filter(|m| !m.reserved) {
                    if !first {
                        out.push(b',');
                    }
                    out.extend_from_slice(&line[m.start..m.end]);
                    first = false;
                }
                if !first {
                    out.push(b',');
                }
            }
            None => {
                out.extend_from_slice(b"{\"msg\":");
                json::write_string(out, line);
                out.push(b',');
            }
        }
        out.extend_from_slice(&src.json_fields);
        out.extend_from_slice(ts);
        out.extend_from_slice(b"\"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &[u8; TS_LEN] = b"2026-11-24T13:15:30.676Z";

    fn json(name: &[u8], stage: &str, line: &[u8]) -> String {
        let mut out = Vec::new();
        Formatter::default().json(&mut out, &Source::new(name, stage), TS, line);
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v["service"],
            serde_json::Value::String(String::from_utf8_lossy(name).into_owned())
        );
        assert_eq!(v["stage"], stage);
        assert_eq!(v["logged"], "2026-11-24T13:15:30.676Z");
        s.trim_end().to_owned()
    }

    const FIELDS: &str = r#""service":"a","stage":"run","logged":"2026-11-24T13:15:30.676Z"}"#;

    #[test]
    fn objects_get_fields() {
        assert_eq!(
            json(b"a", "run", br#"{"a":1}"#),
            format!(r#"{{"a":1,{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", br#"{"test": "foo"}"#),
            format!(r#"{{"test": "foo",{FIELDS}"#)
        );
        assert_eq!(json(b"a", "run", b"{}"), format!("{{{FIELDS}"));
        assert_eq!(json(b"a", "run", b"  { } \t"), format!("{{ {FIELDS}"));
        assert_eq!(
            json(b"a", "run", br#"{"a":1 }"#),
            format!(r#"{{"a":1 ,{FIELDS}"#)
        );
    }

    #[test]
    fn collisions_replaced_without_duplicates() {
        assert_eq!(
            json(b"a", "run", br#"{"service":"x","a":1}"#),
            format!(r#"{{"a":1,{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", br#"{"z": 1, "stage":"s", "logged":0 , "y":2}"#),
            format!(r#"{{"z": 1, "y":2,{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", br#"{"service":1,"stage":2,"logged":3}"#),
            format!("{{{FIELDS}")
        );
        assert_eq!(
            json(b"a", "run", br#"{"b":{"service":1}}"#),
            format!(r#"{{"b":{{"service":1}},{FIELDS}"#)
        );
    }

    #[test]
    fn everything_else_is_msg() {
        assert_eq!(
            json(b"a", "run", b"hello"),
            format!(r#"{{"msg":"hello",{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", b"[1,2]"),
            format!(r#"{{"msg":"[1,2]",{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", b"{not json}"),
            format!(r#"{{"msg":"{{not json}}",{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", b"{\"a\":1} {\"b\":2}"),
            format!(r#"{{"msg":"{{\"a\":1}} {{\"b\":2}}",{FIELDS}"#)
        );
        assert_eq!(
            json(b"a", "run", b"\xff\x00"),
            format!(r#"{{"msg":"\ufffd\u0000",{FIELDS}"#)
        );
    }

    #[test]
    fn names_and_stages() {
        let s = json(b"we<b", "term", b"{}");
        assert!(s.contains(r#""service":"we\u003cb","stage":"term""#), "{s}");
        json(b"caf\xc3\xa9", "1234", b"x");
        json(b"bad\xff", "run", b"x");
    }

    #[test]
    fn text_records() {
        let mut out = Vec::new();
        Formatter::default().text(&mut out, &Source::new(b"a", "log"), TS, b"{\"a\":1}\r");
        assert_eq!(out, b"2026-11-24T13:15:30.676Z a/log: {\"a\":1}\r\n");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -- --ignored --nocapture record_speed`: ns per typical line.
    #[test]
    #[ignore]
    fn record_speed() {
        let line = br#"{"level":"info","svc":"s1","i":123456,"msg":"GET /api/v1/items/123 status=200 dur_ms=42 user=u1234 trace=00000000deadbeef"}"#;
        let src = Source::new(b"s1", "run");
        let mut f = Formatter::default();
        let mut out = Vec::with_capacity(1 << 20);
        let ts = *b"2026-11-24T13:15:30.676Z";
        let n = 2_000_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            f.json(&mut out, &src, &ts, line);
            if out.len() > 1 << 19 {
                out.clear();
            }
        }
        let json_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for _ in 0..n {
            f.text(&mut out, &src, &ts, line);
            if out.len() > 1 << 19 {
                out.clear();
            }
        }
        let text_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let mut data = Vec::new();
        for _ in 0..10_000 {
            data.extend_from_slice(line);
            data.push(b'\n');
        }
        let mut sp = crate::output::lines::LineSplitter::new();
        let t = std::time::Instant::now();
        let mut count = 0;
        for _ in 0..200 {
            for chunk in data.chunks(65536) {
                sp.feed(chunk, |l| count += l.len());
            }
        }
        let split_ns = t.elapsed().as_nanos() as f64 / 2_000_000.0;
        eprintln!(
            "json {json_ns:.1} ns/line, text {text_ns:.1} ns/line, split {split_ns:.1} ns/line ({count})"
        );
    }
}
