//! `json::scan_object` against serde_json, and `json::write_string` against a model of Go's
//! `json.Marshal`.
//!
//! Input: any bytes (one line as a program wrote it).
//!
//! Checked:
//! - `scan_object` says "object" only when `serde_json::from_slice::<Value>` parses the bytes as
//!   an object (both allow surrounding JSON whitespace), so every record dinit writes parses;
//!   and it does whenever serde_json does, unless the object holds a number of magnitude 1e308
//!   or more (which dinit keeps as text: serde_json refuses numbers beyond f64);
//! - `start..end` is the object without that whitespace (`{` … `}`);
//! - `has_members` is "at least one member", `has_reserved` is "a top-level key, once decoded, is
//!   `service`, `stage` or `logged`" (keys read by serde_json, in order, duplicates kept);
//! - with a reserved key, `members` cut `{…}` into its members exactly: consecutive, separated by
//!   the `,` between them, ending at the closing `}`; each member's text, wrapped in `{}`, parses
//!   as that one member (same key, same value), and `reserved` marks exactly the dinit keys;
//!   without one, `members` is empty; a reused, dirty `members` Vec gives the same answer;
//! - `write_string` of the bytes is byte for byte Go's escaping, and parses back as the text.
#![no_main]

mod common;

use common::{Entries, RESERVED};
use dinit::output::json::{Member, scan_object, write_string};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    check_write_string(line);

    let mut members = Vec::new();
    let ours = scan_object(line, &mut members);
    let theirs = common::object_entries(line).ok().flatten();
    let (obj, entries) = match (ours, theirs) {
        (None, None) => return,
        (Some(o), Some(e)) => (o, e),
        // dinit keeps a line with a number near or beyond the f64 limit as text (2fc4892).
        (None, Some(_)) if common::max_abs_number(line) >= common::HUGE => return,
        (o, e) => panic!(
            "scan_object {} but serde_json {} for {:?} ({:?})",
            if o.is_some() { "accepts" } else { "rejects" },
            if e.is_some() { "accepts" } else { "rejects" },
            String::from_utf8_lossy(line),
            serde_json::from_slice::<serde_json::Value>(line).map(|_| ()),
        ),
    };
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    assert!(obj.start < obj.end && obj.end <= line.len());
    assert_eq!(line[obj.start], b'{');
    assert_eq!(line[obj.end - 1], b'}');
    assert!(
        line[..obj.start].iter().all(is_ws),
        "leading non-whitespace"
    );
    assert!(line[obj.end..].iter().all(is_ws), "trailing non-whitespace");
    assert_eq!(obj.has_members, !entries.0.is_empty(), "has_members");
    let reserved_keys = entries
        .0
        .iter()
        .filter(|(k, _)| RESERVED.contains(&k.as_str()))
        .count();
    assert_eq!(obj.has_reserved, reserved_keys > 0, "has_reserved");

    if obj.has_reserved {
        check_members(line, obj.start, obj.end, &members, &entries);
    } else {
        assert!(members.is_empty(), "members listed without a reserved key");
    }

    // The Vec is cleared first: a dirty one gives the same answer.
    let mut dirty = vec![
        Member {
            start: 7,
            end: 3,
            reserved: true
        };
        3
    ];
    let again = scan_object(line, &mut dirty);
    assert_eq!(again.as_ref(), Some(&obj));
    assert_eq!(dirty, members);
});

fn check_members(line: &[u8], start: usize, end: usize, members: &[Member], entries: &Entries) {
    assert_eq!(members.len(), entries.0.len(), "one Member per member");
    let mut expect_start = start + 1;
    for (i, (m, (key, value))) in members.iter().zip(&entries.0).enumerate() {
        assert_eq!(
            m.start, expect_start,
            "member {i} does not start after the separator"
        );
        assert!(m.start <= m.end && m.end < end);
        let sep = if i + 1 == members.len() { b'}' } else { b',' };
        assert_eq!(
            line[m.end], sep,
            "member {i} not followed by {:?}",
            sep as char
        );
        expect_start = m.end + 1;
        let mut one = b"{".to_vec();
        one.extend_from_slice(&line[m.start..m.end]);
        one.push(b'}');
        let parsed: Entries = serde_json::from_slice(&one).unwrap_or_else(|e| {
            panic!(
                "member {i} {:?} is not a member: {e}",
                String::from_utf8_lossy(&one)
            )
        });
        assert_eq!(parsed.0.len(), 1);
        assert_eq!(&parsed.0[0].0, key, "member {i}: key");
        assert_eq!(&parsed.0[0].1, value, "member {i}: value");
        assert_eq!(
            m.reserved,
            RESERVED.contains(&key.as_str()),
            "member {i} ({key:?}): reserved"
        );
    }
    assert_eq!(expect_start, end, "members do not reach the closing brace");
}

fn check_write_string(s: &[u8]) {
    let mut out = b"prefix".to_vec();
    write_string(&mut out, s);
    assert_eq!(&out[..6], b"prefix", "write_string must append");
    let out = &out[6..];
    let text = std::str::from_utf8(out).expect("write_string wrote invalid UTF-8");
    assert_eq!(
        text,
        common::go_json_string(s),
        "not Go's escaping of {s:?}"
    );
    let back: String = serde_json::from_str(text).expect("write_string wrote invalid JSON");
    assert_eq!(back, common::go_decode(s));
}
