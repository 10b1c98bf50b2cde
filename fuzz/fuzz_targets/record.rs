//! `record::Formatter` (JSON and text records) and `clock::format_ms`.
//!
//! Input: `[name_len] [name…] [stage_sel] [stage…] [ms: 8 bytes LE] [line…]`. The name is any
//! bytes; `stage_sel` < 5 picks `run`, `log`, `term`, `finish`, `1234`, otherwise the stage is the
//! next `(stage_sel - 5) % 32` bytes, lossily decoded; the timestamp is `format_ms(ms)`; the line
//! is the rest without `\n` (a `LineSplitter` line never has one).
//!
//! Checked, JSON mode: one line ending in `\n`; one JSON object (serde_json) whose last three
//! members are `service` (the name, invalid bytes as U+FFFD), `stage`, `logged` (the timestamp),
//! each of those keys exactly once; no duplicate key unless the program's own object had one;
//! - a line that is an object: its other members, in order, with their values; with no dinit key
//!   in it, byte for byte the object as written (spacing kept) minus its `}`, then the fields;
//! - any other line (also one with a number beyond f64, `1e400`, which serde_json refuses):
//!   byte for byte `{"msg":<line as Go escapes it>,<fields>}`; an object holding a number of
//!   magnitude 1e308 or more may come out either way.
//!
//! Text mode: byte for byte `<ts> <name>/<stage>: <line>\n`. The timestamp: 24 bytes
//! `YYYY-MM-DDTHH:MM:SS.mmmZ`, equal to a civil-calendar model for years 1970..=9999.
#![no_main]

mod common;

use common::{Bytes, Entries, RESERVED};
use dinit::output::clock::format_ms;
use dinit::output::record::{Formatter, Source};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const STAGES: [&str; 5] = ["run", "log", "term", "finish", "1234"];

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let name_len = b.u8() as usize;
    let name = b.take(name_len).to_vec();
    let sel = b.u8();
    let stage = match STAGES.get(sel as usize) {
        Some(s) => s.to_string(),
        None => String::from_utf8_lossy(b.take((sel as usize - 5) % 32)).into_owned(),
    };
    let mut ms = [0u8; 8];
    let t = b.take(8);
    ms[..t.len()].copy_from_slice(t);
    let ms = i64::from_le_bytes(ms);
    let mut line = b.rest().to_vec();
    line.retain(|&c| c != b'\n');

    let ts = format_ms(ms);
    check_ts(ms, &ts);
    let ts_str = std::str::from_utf8(&ts).unwrap();

    let src = Source::new(&name, &stage);
    let mut label = name.clone();
    label.push(b'/');
    label.extend_from_slice(stage.as_bytes());
    assert_eq!(src.label(), &label[..]);
    let mut f = Formatter::default();

    // Text: byte for byte; appended to what the buffer already holds.
    let mut out = b"old".to_vec();
    f.text(&mut out, &src, &ts, &line);
    let mut want = b"old".to_vec();
    want.extend_from_slice(&ts);
    want.push(b' ');
    want.extend_from_slice(&name);
    want.push(b'/');
    want.extend_from_slice(stage.as_bytes());
    want.extend_from_slice(b": ");
    want.extend_from_slice(&line);
    want.push(b'\n');
    assert!(
        out == want,
        "text record {:?}",
        String::from_utf8_lossy(&out)
    );

    // JSON.
    let mut out = b"old\n".to_vec();
    f.json(&mut out, &src, &ts, &line);
    assert_eq!(&out[..4], b"old\n", "json must append");
    let rec = &out[4..];
    assert_eq!(rec.last(), Some(&b'\n'), "record does not end in a newline");
    let rec = &rec[..rec.len() - 1];
    assert!(!rec.contains(&b'\n'), "record is more than one line");
    let fields = format!(
        "\"service\":{},\"stage\":{},\"logged\":\"{ts_str}\"}}",
        common::go_json_string(&name),
        common::go_json_string(stage.as_bytes())
    );

    // A line that is not an object for serde_json (also one with a number beyond f64, `1e400`,
    // which RFC 8259 allows but serde_json refuses) must become a `msg` record. An object with a
    // number of magnitude 1e308 or more may too (2fc4892).
    let mut input_obj = common::object_entries(&line).ok().flatten();
    let msg = format!("{{\"msg\":{},{fields}", common::go_json_string(&line));
    if input_obj.is_some() && common::max_abs_number(&line) >= common::HUGE && rec == msg.as_bytes()
    {
        input_obj = None;
    }
    let got = match serde_json::from_slice::<Entries>(rec) {
        Ok(e) => e,
        Err(e) => panic!(
            "record is not a JSON object ({e}): {:?}",
            String::from_utf8_lossy(rec)
        ),
    };
    let n = got.0.len();
    assert!(n >= 3, "record without dinit's fields");
    let tail = &got.0[n - 3..];
    assert_eq!(
        tail[0],
        ("service".into(), Value::String(common::go_decode(&name)))
    );
    assert_eq!(tail[1], ("stage".into(), Value::String(stage.clone())));
    assert_eq!(tail[2], ("logged".into(), Value::String(ts_str.into())));
    for k in RESERVED {
        assert_eq!(
            got.0.iter().filter(|(g, _)| g == k).count(),
            1,
            "key {k} not exactly once"
        );
    }

    match input_obj {
        None => {
            assert!(
                rec == msg.as_bytes(),
                "msg record {:?} != {msg:?}",
                String::from_utf8_lossy(rec)
            );
        }
        Some(input) => {
            let kept: Vec<_> = input
                .0
                .iter()
                .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
                .cloned()
                .collect();
            assert_eq!(&got.0[..n - 3], &kept[..], "the program's members changed");
            if !has_duplicates(&input) {
                assert!(
                    !has_duplicates(&got),
                    "duplicate keys in {:?}",
                    String::from_utf8_lossy(rec)
                );
            }
            if kept.len() == input.0.len() {
                // No dinit key in it: the object exactly as written.
                let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
                let s = line.iter().position(|b| !is_ws(b)).unwrap();
                let e = line.iter().rposition(|b| !is_ws(b)).unwrap();
                let mut want = line[s..e].to_vec(); // without the `}` at `e`
                if !input.0.is_empty() {
                    want.push(b',');
                }
                want.extend_from_slice(fields.as_bytes());
                assert!(
                    rec == &want[..],
                    "object record {:?} != {:?}",
                    String::from_utf8_lossy(rec),
                    String::from_utf8_lossy(&want)
                );
            } else {
                assert!(rec.ends_with(fields.as_bytes()));
            }
        }
    }
});

fn has_duplicates(e: &Entries) -> bool {
    let mut keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

fn check_ts(ms: i64, ts: &[u8; 24]) {
    for (i, &c) in ts.iter().enumerate() {
        let ok = match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        };
        assert!(ok, "timestamp {:?} for {ms}", String::from_utf8_lossy(ts));
    }
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if (0..=MAX_MS).contains(&ms) {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let want = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3_600_000,
            rem / 60_000 % 60,
            rem / 1000 % 60,
            rem % 1000
        );
        assert_eq!(std::str::from_utf8(ts).unwrap(), want, "timestamp for {ms}");
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 -> (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
