//! `LineSplitter`: a byte stream cut into lines, the way the contract (§4) defines them.
//!
//! A line ends at `\n`; one `\r` right before it is dropped; empty lines are dropped; the last
//! partial line comes out at EOF ([`LineSplitter::finish`]). A line longer than [`MAX_RECORD`]
//! comes out as consecutive pieces of at most that size, so memory per stream stays bounded and
//! nothing is lost. Pure: no I/O, no allocation for lines that arrive whole within one read.

/// The longest piece of a line handed out at once (64 KiB).
pub const MAX_RECORD: usize = 64 * 1024;

/// A held-back line buffer up to this capacity is kept for reuse; a bigger one is freed.
const KEEP: usize = 4096;

#[derive(Default)]
pub struct LineSplitter {
    /// The start of a line whose end has not arrived yet (at most `MAX_RECORD` bytes).
    carry: Vec<u8>,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Bytes held back waiting for the end of their line.
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// Feeds one read's bytes; `emit` gets every complete line (and every full piece of an
    /// over-long one) in order.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        if !self.carry.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    self.push_carry(&data[..nl], &mut emit);
                    let mut line = std::mem::take(&mut self.carry);
                    emit_line(&line, &mut emit);
                    // Keep a small buffer for the next partial line; give a big one back (a
                    // service that once printed a long line must not cost 128 KiB for ever).
                    if line.capacity() <= KEEP {
                        line.clear();
                        self.carry = line;
                    }
                    data = &data[nl + 1..];
                }
                None => {
                    self.push_carry(data, &mut emit);
                    return;
                }
            }
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let line = &data[start..nl];
            if line.len() > MAX_RECORD {
                let rest = emit_pieces(line, &mut emit);
                emit_line(rest, &mut emit);
            } else {
                emit_line(line, &mut emit);
            }
            start = nl + 1;
        }
        if start < data.len() {
            self.push_carry(&data[start..], &mut emit);
        }
    }

    /// End of stream: the partial last line, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        let line = std::mem::take(&mut self.carry);
        emit_line(&line, &mut emit);
    }

    /// Appends to the held-back line, handing out full pieces once it grows past the limit.
    fn push_carry(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.carry.extend_from_slice(data);
        if self.carry.len() > MAX_RECORD {
            let consumed = self.carry.len() - emit_pieces(&self.carry, emit).len();
            self.carry.drain(..consumed);
        }
    }
}

/// A complete line: one `\r` before the newline dropped, empty lines dropped.
fn emit_line(line: &[u8], emit: &mut impl FnMut(&[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.is_empty() {
        emit(line);
    }
}

/// Hands out pieces while more than `MAX_RECORD` bytes remain; returns the rest (at most
/// `MAX_RECORD` bytes, possibly the end of the line still to come). A piece never ends inside a
/// UTF-8 character: the cut moves back to the character's first byte (at most 3 bytes).
fn emit_pieces<'a>(mut line: &'a [u8], emit: &mut impl FnMut(&[u8])) -> &'a [u8] {
    while line.len() > MAX_RECORD {
        let cut = utf8_cut(line, MAX_RECORD);
        emit(&line[..cut]);
        line = &line[cut..];
    }
    line
}

/// The cut for a piece that would end at `at`: moved back to the start of the UTF-8 character
/// that `line[at]` continues, when `line[lead..=at]` is the start of one (a lead byte, then
/// continuation bytes). Only bytes up to `at` decide, so the cut is the same however the stream
/// was split into reads (the rest of the character may not have arrived yet).
fn utf8_cut(line: &[u8], at: usize) -> usize {
    // Walk back over at most 3 continuation bytes to the lead byte that owns line[at].
    let mut lead = at;
    while lead > at.saturating_sub(3) && line[lead] & 0xC0 == 0x80 {
        lead -= 1;
    }
    if lead == at {
        return at;
    }
    let width = match line[lead] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return at, // not a lead byte: invalid UTF-8, any cut is as good
    };
    if lead + width > at { lead } else { at }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l.to_vec()));
        }
        s.finish(|l| out.push(l.to_vec()));
        out
    }

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn edges() {
        assert_eq!(split(&[b""]), lines(&[]));
        assert_eq!(split(&[b"\n"]), lines(&[]));
        assert_eq!(split(&[b"\r\n"]), lines(&[]));
        assert_eq!(split(&[b"\n\n\n"]), lines(&[]));
        assert_eq!(split(&[b"a\n"]), lines(&["a"]));
        assert_eq!(split(&[b"a\r\n"]), lines(&["a"]));
        assert_eq!(split(&[b"a\r\r\n"]), lines(&["a\r"]));
        assert_eq!(split(&[b"a\rb\n"]), lines(&["a\rb"]));
        assert_eq!(split(&[b"a"]), lines(&["a"]));
        assert_eq!(split(&[b"a\r"]), lines(&["a"]));
        assert_eq!(split(&[b"a\nb"]), lines(&["a", "b"]));
        assert_eq!(split(&[b"a\n\nb\n"]), lines(&["a", "b"]));
    }

    #[test]
    fn lines_across_reads() {
        assert_eq!(split(&[b"ab", b"c\nd", b"e\n"]), lines(&["abc", "de"]));
        assert_eq!(split(&[b"a\r", b"\nb"]), lines(&["a", "b"]));
        assert_eq!(split(&[b"a", b"", b"\n"]), lines(&["a"]));
        assert_eq!(split(&[b"x", b"\n\n", b"y"]), lines(&["x", "y"]));
    }

    #[test]
    fn invalid_utf8_passes_through() {
        assert_eq!(
            split(&[b"\xff\xfe\n\x00\n"]),
            vec![b"\xff\xfe".to_vec(), b"\x00".to_vec()]
        );
    }

    fn long_case(len: usize, chunk: usize) -> Vec<usize> {
        let mut data = vec![b'x'; len];
        data.push(b'\n');
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        let out = split(&chunks);
        assert_eq!(out.concat(), vec![b'x'; len]);
        out.iter().map(|l| l.len()).collect()
    }

    #[test]
    fn exactly_64k_is_one_record() {
        assert_eq!(long_case(MAX_RECORD, 1 << 20), vec![MAX_RECORD]);
        assert_eq!(long_case(MAX_RECORD, 4096), vec![MAX_RECORD]);
        assert_eq!(long_case(MAX_RECORD - 1, 7), vec![MAX_RECORD - 1]);
    }

    #[test]
    fn over_64k_is_cut() {
        assert_eq!(long_case(MAX_RECORD + 1, 1 << 20), vec![MAX_RECORD, 1]);
        assert_eq!(long_case(MAX_RECORD + 1, 4096), vec![MAX_RECORD, 1]);
        assert_eq!(long_case(3 * MAX_RECORD, 1000), vec![MAX_RECORD; 3]);
        assert_eq!(long_case(1 << 20, 65536), vec![MAX_RECORD; 16]);
    }

    #[test]
    fn cut_keeps_crlf_semantics() {
        let mut data = vec![b'x'; MAX_RECORD];
        data.extend_from_slice(b"\r\n");
        assert_eq!(
            split(&[&data]).iter().map(|l| l.len()).collect::<Vec<_>>(),
            vec![MAX_RECORD]
        );
        assert_eq!(split(&[&data[..MAX_RECORD + 1], b"\n"]).len(), 1);
    }

    #[test]
    fn cut_does_not_split_utf8() {
        // 65535 ASCII bytes then "é" (2 bytes): the cut at 65536 would split it.
        let mut data = vec![b'a'; MAX_RECORD - 1];
        data.extend_from_slice("é".as_bytes());
        data.extend_from_slice(b"z\n");
        for chunk in [1 << 20, 1000] {
            let out = split(&data.chunks(chunk).collect::<Vec<_>>());
            assert_eq!(out[0].len(), MAX_RECORD - 1);
            assert_eq!(out[1], "éz".as_bytes());
        }
    }

    #[test]
    fn cut_is_the_same_whatever_the_reads() {
        // A 4-byte character straddling the 64 KiB cut, arriving in every possible split.
        let mut data = vec![b'a'; MAX_RECORD - 2];
        data.extend_from_slice("😀".as_bytes());
        data.extend_from_slice(b"z\n");
        let whole = split(&[&data]);
        assert_eq!(whole[0].len(), MAX_RECORD - 2);
        for at in MAX_RECORD - 4..MAX_RECORD + 4 {
            assert_eq!(split(&[&data[..at], &data[at..]]), whole, "split at {at}");
        }
    }

    #[test]
    fn long_line_buffer_is_given_back() {
        let mut s = LineSplitter::new();
        let mut n = 0;
        let long = vec![b'x'; 3 * MAX_RECORD];
        for chunk in long.chunks(1000) {
            s.feed(chunk, |l| n += l.len());
        }
        assert!(s.carry.capacity() > KEEP);
        s.feed(b"\nshort", |l| n += l.len());
        assert!(s.carry.capacity() <= KEEP, "{}", s.carry.capacity());
        assert_eq!(n, 3 * MAX_RECORD);
    }

    #[test]
    fn bounded_memory() {
        let mut s = LineSplitter::new();
        let mut n = 0;
        for _ in 0..100 {
            s.feed(&[b'y'; 10_000], |l| n += l.len());
            assert!(s.pending() <= MAX_RECORD);
        }
        s.finish(|l| n += l.len());
        assert_eq!(n, 1_000_000);
    }
}
