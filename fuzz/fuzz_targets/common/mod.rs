//! Helpers shared by the fuzz targets (each target includes this with `mod common;`).
#![allow(dead_code)]

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// The top-level members of a JSON object in the order written, duplicates kept (a
/// `serde_json::Map` would merge them).
#[derive(Debug, PartialEq)]
pub struct Entries(pub Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = map.next_entry::<String, serde_json::Value>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// `Some(entries)` when `bytes` is one JSON object for serde_json, `None` for anything else.
pub fn object_entries(bytes: &[u8]) -> Result<Option<Entries>, serde_json::Error> {
    match serde_json::from_slice::<serde_json::Value>(bytes)? {
        serde_json::Value::Object(_) => serde_json::from_slice::<Entries>(bytes).map(Some),
        _ => Ok(None),
    }
}

/// The largest magnitude of a number in `json` (which serde_json accepted, so it is valid JSON),
/// each read with Rust's `str::parse::<f64>` as dinit reads them; 0 without numbers.
pub fn max_abs_number(json: &[u8]) -> f64 {
    let mut max = 0f64;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i += 1;
                while json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let text = std::str::from_utf8(&json[start..i]).unwrap();
                max = max.max(text.parse::<f64>().unwrap().abs());
            }
            _ => i += 1,
        }
    }
    max
}

/// dinit keeps a line with a number this big (or bigger) as `msg` text, even when serde_json
/// would still read it: serde_json refuses numbers beyond f64 and rounds some just below the
/// limit up (2fc4892), so the scanner draws the line well before.
pub const HUGE: f64 = 1e308;

pub const RESERVED: [&str; 3] = ["service", "stage", "logged"];

/// A small cursor over the fuzzer's bytes; reads past the end give zeros / empty slices.
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// Bytes -> text the way Go's `utf8.DecodeRune` walks them: each byte that does not start a
/// well-formed character becomes one U+FFFD (unlike `String::from_utf8_lossy`, which replaces a
/// truncated sequence such as `e2 82` with one U+FFFD).
pub fn go_decode(b: &[u8]) -> String {
    go_decode_runes(b)
        .into_iter()
        .map(|c| c.unwrap_or('\u{FFFD}'))
        .collect()
}

/// Go's `json.Marshal` of a string (before Go 1.22, which added `\b` and `\f`): `"` and `\` and
/// `\n` `\r` `\t` short-escaped, other control characters and `<` `>` `&` U+2028 U+2029 as
/// `\u00XX`/`\u20XX`, invalid bytes as `\ufffd`, everything else as is.
pub fn go_json_string(b: &[u8]) -> String {
    let mut out = String::from("\"");
    for c in go_decode_runes(b) {
        match c {
            None => out.push_str("\\ufffd"),
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some(c)
                if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            Some(c) => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The characters of `b`, `None` for each byte that does not start a well-formed one.
fn go_decode_runes(b: &[u8]) -> Vec<Option<char>> {
    let mut v = Vec::new();
    let mut i = 0;
    'outer: while i < b.len() {
        for w in 1..=4 {
            if let Some(Ok(s)) = b.get(i..i + w).map(std::str::from_utf8) {
                let mut cs = s.chars();
                if let (Some(c), None) = (cs.next(), cs.next()) {
                    v.push(Some(c));
                    i += w;
                    continue 'outer;
                }
            }
        }
        v.push(None);
        i += 1;
    }
    v
}
