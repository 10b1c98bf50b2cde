//! Just enough JSON for the output path: is this line one JSON object, where are its top-level
//! `service`/`stage`/`logged` members, and how to write a string as JSON.
//!
//! Pure and allocation-free per line. The scanner accepts what `serde_json` accepts as one object
//! (RFC 8259, UTF-8, nesting up to 127 levels), except numbers of magnitude 1e308 and more
//! (serde_json and Go refuse those beyond f64, with some rounding near the limit), so a record
//! dinit writes always parses; the fuzz target `json_scan` holds it to that.

/// Nesting limit: `serde_json` (recursion limit 128) accepts at most 127 levels.
const MAX_DEPTH: usize = 127;

/// One top-level member of an object: `text[start..end]` runs from just after the `{` or `,`
/// before it to just before the `,` or `}` after it (surrounding whitespace included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub start: usize,
    pub end: usize,
    pub reserved: bool,
}

/// What [`scan_object`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Object {
    /// The object without surrounding whitespace: `line[start..end]`, `line[start] == b'{'`.
    pub start: usize,
    pub end: usize,
    /// Whether it has at least one member.
    pub has_members: bool,
    /// Whether a member has one of dinit's keys (then `members` lists every member).
    pub has_reserved: bool,
}

/// Is `line` (surrounding JSON whitespace allowed) exactly one JSON object? When it has one of
/// dinit's keys, `members` is filled with its top-level members (cleared first); a reused Vec
/// keeps this allocation-free.
pub fn scan_object(line: &[u8], members: &mut Vec<Member>) -> Option<Object> {
    members.clear();
    let obj = scan(line, None)?;
    if obj.has_reserved {
        // Rare: a second pass notes where each member is, so the colliding ones can be dropped.
        scan(line, Some(members))?;
    }
    Some(obj)
}

fn scan(line: &[u8], mut members: Option<&mut Vec<Member>>) -> Option<Object> {
    let start = skip_ws(line, 0);
    if line.get(start) != Some(&b'{') {
        return None;
    }
    let mut end = line.len();
    while end > start && is_ws(line[end - 1]) {
        end -= 1;
    }
    if end <= start + 1 || line[end - 1] != b'}' {
        return None;
    }
    let text = &line[..end];
    let mut s = Scanner::new(text, start + 1);
    let mut has_reserved = false;
    let mut has_members = false;
    s.ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        let mut member_start = start + 1;
        loop {
            s.ws();
            let key_start = s.pos;
            let escaped = s.string()?;
            let key = &text[key_start + 1..s.pos - 1];
            let reserved = if escaped {
                is_reserved_escaped(key)
            } else {
                is_reserved(key)
            };
            has_reserved |= reserved;
            s.ws();
            s.expect(b':')?;
            s.ws();
            s.member_value(1)?;
            s.ws();
            if let Some(m) = members.as_deref_mut() {
                m.push(Member {
                    start: member_start,
                    end: s.pos,
                    reserved,
                });
            }
            has_members = true;
            match s.next()? {
                b',' => member_start = s.pos,
                b'}' => break,
                _ => return None,
            }
        }
    }
    if s.pos != end {
        return None; // `{"a":1} {"b":2}`: two values, not one object
    }
    Some(Object {
        start,
        end,
        has_members,
        has_reserved,
    })
}

fn is_reserved(key: &[u8]) -> bool {
    // Spelled out rather than `RESERVED.contains`: a match compares lengths, then words.
    matches!(key, b"service" | b"stage" | b"logged")
}

/// A key written with escapes is still that key once decoded.
fn is_reserved_escaped(raw_key: &[u8]) -> bool {
    // A key written with escapes (`"serv\u0069ce"`) is still that key once decoded. Rare: decode
    // into a small stack buffer; anything longer than the longest reserved key cannot match.
    let mut buf = [0u8; 8];
    let mut n = 0;
    let mut i = 0;
    while i < raw_key.len() {
        let c = if raw_key[i] == b'\\' {
            let (c, used) = match raw_key.get(i + 1) {
                Some(b'u') => match raw_key.get(i + 2..i + 6).and_then(hex4) {
                    Some(cp) if cp < 0x80 => (cp as u8, 6),
                    _ => return false,
                },
                Some(&e) => (unescape_simple(e), 2),
                None => return false,
            };
            i += used;
            c
        } else {
            i += 1;
            raw_key[i - 1]
        };
        if n == buf.len() {
            return false;
        }
        buf[n] = c;
        n += 1;
    }
    is_reserved(&buf[..n])
}

fn unescape_simple(e: u8) -> u8 {
    match e {
        b'n' => b'\n',
        b't' => b'\t',
        b'r' => b'\r',
        b'b' => 8,
        b'f' => 12,
        other => other,
    }
}

fn hex4(h: &[u8]) -> Option<u32> {
    let mut v = 0;
    for &b in h {
        v = v * 16 + (b as char).to_digit(16)?;
    }
    Some(v)
}

/// Bytes scanned per block when looking for the end of a plain run in a string.
const BLOCK: usize = 64;

/// Bit k set where `block[k]` ends a plain ASCII run in a string: `"`, `\\`, a control character
/// or a non-ASCII byte (as signed bytes, those from 0x80 are negative, so one comparison finds
/// both).
#[cfg(target_arch = "x86_64")]
fn stop_mask(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::*;
    let mut mask = 0u64;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics run on every x86_64 CPU;
    // each load reads the 16 bytes of one `chunk` (loadu needs no alignment).
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let space = _mm_set1_epi8(0x20);
        for (k, chunk) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let stop = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmplt_epi8(v, space),
            );
            mask |= (_mm_movemask_epi8(stop) as u16 as u64) << (16 * k);
        }
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
fn stop_mask(block: &[u8; BLOCK]) -> u64 {
    stop_mask_portable(block)
}

/// [`stop_mask`] for other architectures, one byte at a time (on x86_64, the tests hold the
/// SSE2 version to it).
#[cfg(any(not(target_arch = "x86_64"), test))]
fn stop_mask_portable(block: &[u8; BLOCK]) -> u64 {
    let mut mask = 0u64;
    for (k, &c) in block.iter().enumerate() {
        let stop = c == b'"' || c == b'\\' || (c as i8) < 0x20;
        mask |= (stop as u64) << k;
    }
    mask
}

/// The length of the valid UTF-8 character at the start of `b` (its first byte is >= 0x80).
fn utf8_char(b: &[u8]) -> Option<usize> {
    let width = match b[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    std::str::from_utf8(b.get(..width)?).ok().map(|_| width)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && is_ws(t[i]) {
        i += 1;
    }
    i
}

struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    /// The stop mask of the block at `text[block..]` (`usize::MAX`: none yet). The scan only
    /// moves forward, so one block is all there is to remember.
    block: usize,
    mask: u64,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a [u8], pos: usize) -> Self {
        Scanner {
            text,
            pos,
            block: usize::MAX,
            mask: 0,
        }
    }

    /// The first byte at or after `i` that ends a plain run in a string (see [`stop_mask`]), or
    /// `None` when the text ends first.
    #[inline(always)]
    fn next_stop(&mut self, mut i: usize) -> Option<usize> {
        loop {
            let base = i - i % BLOCK;
            if self.block != base {
                if i >= self.text.len() {
                    return None;
                }
                self.load_block(base);
            }
            // Bits past the end of the text are zero (last block) or stops found past it
            // (padded short text): either way the answer below is `None`.
            let m = self.mask >> (i - base);
            if m != 0 {
                let at = i + m.trailing_zeros() as usize;
                return (at < self.text.len()).then_some(at);
            }
            i = base + BLOCK;
        }
    }

    /// Computes the stop mask of the block at `base` (< the text's length). Kept out of line:
    /// it runs once per 64 bytes, and inlined, its setup would run for every string.
    #[inline(never)]
    fn load_block(&mut self, base: usize) {
        let t = self.text;
        self.block = base;
        self.mask = if let Some(b) = t.get(base..base + BLOCK) {
            stop_mask(b.try_into().unwrap_or(&[0; BLOCK]))
        } else if t.len() >= BLOCK {
            // The last, short block: the mask of the last full 64 bytes, shifted so that bit 0
            // is `base` again (no copy, and nothing past the end).
            let last = t.len() - BLOCK;
            stop_mask(t[last..].try_into().unwrap_or(&[0; BLOCK])) >> (base - last)
        } else {
            // A text shorter than a block: zeros past its end count as stops (and are then
            // found to be past the end).
            let mut padded = [0u8; BLOCK];
            padded[..t.len()].copy_from_slice(t);
            stop_mask(&padded)
        };
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    #[inline(always)]
    fn ws(&mut self) {
        // Every JSON whitespace byte is <= b' ': one comparison settles the common no-space case.
        if self.text.get(self.pos).is_some_and(|&b| b > b' ') {
            return;
        }
        self.pos = skip_ws(self.text, self.pos);
    }

    /// A value inside an object or array: strings and numbers, the most common, without the
    /// call into the recursive [`Scanner::value`].
    #[inline(always)]
    fn member_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.value(depth),
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            self.member_value(depth)?;
            self.ws();
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.member_value(depth)?;
            self.ws();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.text.get(self.pos..self.pos + word.len())? == word {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        let exponent = matches!(self.peek(), Some(b'e' | b'E'));
        if exponent {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = &self.text[start..self.pos];
        // Valid JSON, but serde_json (like Go's encoding/json) refuses numbers beyond f64
        // ("number out of range", and it rounds values near the limit up): such a line is kept
        // as `msg` text so that every record parses. Only long numbers or exponents can be that
        // big, so the common case is not parsed.
        if text.len() > 18 || exponent {
            let v: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
            if v.abs() >= 1e308 {
                return None;
            }
        }
        Some(())
    }

    /// A string starting at `pos` (the opening quote), valid UTF-8 inside. Returns whether it
    /// has escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        if self.peek() != Some(b'"') {
            return None;
        }
        // Plain ASCII up to the closing quote is the common case: one jump.
        let at = self.next_stop(self.pos + 1)?;
        if self.text[at] == b'"' {
            self.pos = at + 1;
            return Some(false);
        }
        self.string_rest(at)
    }

    /// The rest of a string from its first escape, control or non-ASCII byte at `i`.
    #[inline(never)]
    fn string_rest(&mut self, mut i: usize) -> Option<bool> {
        let t = self.text;
        let mut escaped = false;
        loop {
            match *t.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *t.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            self.pos = i + 2;
                            self.unicode_escape()?;
                            i = self.pos;
                        }
                        _ => return None,
                    }
                }
                b if b < 0x20 => return None, // a control character
                // The only other stop: a byte from 0x80, the start of a UTF-8 character.
                _ => i += utf8_char(&t[i..])?,
            }
            // Then jump over the next plain run.
            i = self.next_stop(i)?;
        }
    }

    /// After `\u`: four hex digits; a surrogate must be a high one followed by `\u` and a low one
    /// (serde_json rejects lone surrogates).
    fn unicode_escape(&mut self) -> Option<()> {
        let cp = hex4(self.text.get(self.pos..self.pos + 4)?)?;
        self.pos += 4;
        match cp {
            0xD800..=0xDBFF => {
                if self.text.get(self.pos..self.pos + 2)? != b"\\u" {
                    return None;
                }
                let low = hex4(self.text.get(self.pos + 2..self.pos + 6)?)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                self.pos += 6;
                Some(())
            }
            0xDC00..=0xDFFF => None,
            _ => Some(()),
        }
    }
}

/// Appends `s` as a JSON string with its quotes, escaped as Go's `json.Marshal` does, so that a
/// service name comes out byte for byte as tozd/dinit writes it: `"` `\` and control characters
/// escaped, `<` `>` `&` U+2028 U+2029 as `\u` escapes, each invalid UTF-8 byte as `\ufffd`.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        escape_valid(out, chunk.valid());
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// 1 where an ASCII byte needs an escape.
static NEEDS_ESCAPE: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t
};

fn escape_valid(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let escape: Option<&[u8]> = if c < 0x80 {
            if !NEEDS_ESCAPE[c as usize] {
                i += 1;
                continue;
            }
            match c {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                _ => None,
            }
        } else if c == 0xE2
            && b.get(i + 1) == Some(&0x80)
            && matches!(b.get(i + 2), Some(0xA8 | 0xA9))
        {
            out.extend_from_slice(&b[run..i]);
            out.extend_from_slice(if b[i + 2] == 0xA8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
            run = i;
            continue;
        } else {
            i += 1;
            continue;
        };
        out.extend_from_slice(&b[run..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Option<Object> {
        scan_object(s.as_bytes(), &mut Vec::new())
    }

    fn agrees_with_serde(s: &[u8]) {
        let ours = scan_object(s, &mut Vec::new()).is_some();
        let theirs = matches!(
            serde_json::from_slice::<serde_json::Value>(s),
            Ok(serde_json::Value::Object(_))
        );
        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(s));
    }

    #[test]
    fn accepts_objects() {
        for s in [
            "{}",
            "{ }",
            " {} ",
            "\t{\"a\":1}\r",
            r#"{"a":[1,2.5,-0.1e+3,true,false,null,{"b":"c"}]}"#,
            r#"{"esc":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
            r#"{"a":1,"a":2}"#,
            "{\"é\":\"ü\"}",
        ] {
            assert!(obj(s).is_some(), "{s}");
            agrees_with_serde(s.as_bytes());
        }
    }

    #[test]
    fn rejects_non_objects() {
        for s in [
            "",
            "{",
            "}",
            "[1]",
            "1",
            "\"s\"",
            "{not json}",
            "{\"a\":1} {\"b\":2}",
            "{\"a\":1,}",
            "{\"a\"}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":-}",
            "{\"a\":tru}",
            "{\"a\":\"\t\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{'a':1}",
            "{\"a\":1}}",
            "{\"a\":[1,]}",
            "{\"a\":NaN}",
        ] {
            assert!(obj(s).is_none(), "{s}");
            agrees_with_serde(s.as_bytes());
        }
        agrees_with_serde(b"{\"a\":\"\xff\"}");
        for big in [
            "1e400",
            "-1e400",
            "1.7976931348623158e308",
            &"9".repeat(400),
        ] {
            assert!(obj(&format!("{{\"a\":{big}}}")).is_none(), "{big}");
        }
        for fine in ["1e300", "1e-400", "12345678901234567890", "0.000001", "-0"] {
            let s = format!("{{\"a\":{fine}}}");
            assert!(obj(&s).is_some(), "{fine}");
            agrees_with_serde(s.as_bytes());
        }
        agrees_with_serde(b"{\"a\":1}\x00");
    }

    /// The string scan works in 64-byte blocks (the last one read from the text's end, or
    /// padded when the whole text is shorter): every length and every position of a byte that
    /// ends a plain run, across block edges, agrees with serde_json.
    #[test]
    fn strings_across_block_edges() {
        for prefix in [0usize, 1, 5, 60, 63, 64, 65] {
            for len in 0..140 {
                let pad = "p".repeat(prefix);
                let plain = "a".repeat(len);
                agrees_with_serde(format!("{{\"{pad}\":\"{plain}\"}}").as_bytes());
                for at in (0..len).step_by(7).chain([len.saturating_sub(1)]) {
                    for special in [
                        &b"\\n"[..],
                        b"\\u00e9",
                        b"\xc3\xa9",
                        b"\x01",
                        b"\"",
                        b"\\",
                        b"\xff",
                    ] {
                        let mut v = format!("{{\"{pad}\":\"").into_bytes();
                        v.extend_from_slice(&plain.as_bytes()[..at]);
                        v.extend_from_slice(special);
                        v.extend_from_slice(&plain.as_bytes()[at..]);
                        v.extend_from_slice(b"\"}");
                        agrees_with_serde(&v);
                    }
                }
            }
        }
    }

    #[test]
    fn stop_masks_agree() {
        let mut block = [b'a'; BLOCK];
        for b in 0..=255u8 {
            for at in [0, 1, 15, 16, 31, 32, 47, 48, 63] {
                block[at] = b;
                let want = stop_mask_portable(&block);
                assert_eq!(stop_mask(&block), want, "byte {b:#04x} at {at}");
                let stop = b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
                assert_eq!(want, (stop as u64) << at, "byte {b:#04x} at {at}");
                block[at] = b'a';
            }
        }
        // Every byte value once, in shifting positions.
        for shift in 0..4 {
            let block: [u8; BLOCK] = std::array::from_fn(|k| (k * 4 + shift) as u8);
            assert_eq!(stop_mask(&block), stop_mask_portable(&block));
        }
    }

    #[test]
    fn depth_limit_matches_serde() {
        for depth in [126, 127, 128, 129, 130] {
            let s = format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
            agrees_with_serde(s.as_bytes());
        }
    }

    #[test]
    fn members_and_reserved_keys() {
        let line = br#" {"a":1, "service" : "x","b":{"stage":2}, "logg\u0065d":3} "#;
        let mut m = Vec::new();
        let o = scan_object(line, &mut m).unwrap();
        assert!(o.has_reserved && o.has_members);
        let texts: Vec<(&str, bool)> = m
            .iter()
            .map(|m| {
                (
                    std::str::from_utf8(&line[m.start..m.end]).unwrap(),
                    m.reserved,
                )
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                ("\"a\":1", false),
                (" \"service\" : \"x\"", true),
                ("\"b\":{\"stage\":2}", false),
                (" \"logg\\u0065d\":3", true)
            ]
        );
        let o = obj("{\"services\":1}").unwrap();
        assert!(!o.has_reserved);
        assert!(!obj("{}").unwrap().has_members);
    }

    fn esc(s: &[u8]) -> String {
        let mut v = Vec::new();
        write_string(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(esc(b"web"), r#""web""#);
        assert_eq!(esc(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(esc(b"<a&b>"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(
            esc(b"\n\r\t\x01\x1b\x7f"),
            "\"\\n\\r\\t\\u0001\\u001b\x7f\""
        );
        assert_eq!(esc("é\u{2028}\u{2029}".as_bytes()), "\"é\\u2028\\u2029\"");
        assert_eq!(esc(b"a\xffb\xe2\x82"), r#""a\ufffdb\ufffd\ufffd""#);
        assert_eq!(esc(b""), r#""""#);
    }

    #[test]
    fn escaped_strings_parse_back() {
        for s in [
            &b"plain"[..],
            b"\x00\x1f\"\\",
            b"\xff\xfe",
            "日本\u{2028}".as_bytes(),
        ] {
            let v: serde_json::Value = serde_json::from_str(&esc(s)).unwrap();
            assert_eq!(v.as_str().unwrap(), String::from_utf8_lossy(s));
        }
    }
}
