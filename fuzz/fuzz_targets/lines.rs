//! `LineSplitter` against a reference model of contract §4's line splitting.
//!
//! Input: `[n_cuts] [cut codes…] [n_runs % 5] [runs: pos_lo pos_hi byte len_code]… [data…]`.
//! The stream is `data` with each run (a byte repeated, with lengths around 64 KiB and 128 KiB,
//! so that short inputs reach the long-line path) inserted at its position. It is fed
//! (A) in one read, (B) in reads whose sizes cycle through the cut codes (byte by byte when there
//! are none, or only empty reads, and the stream is short), then `finish`.
//!
//! Checked: (A) equals the model exactly; (B) equals (A) exactly: the result does not depend on
//! how the stream was cut into reads; after every read at most 64 KiB is held back; no piece is
//! empty or longer than 64 KiB (and, through the model, none contains `\n`).
#![no_main]

mod common;

use dinit::output::lines::{LineSplitter, MAX_RECORD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut b = common::Bytes(input);
    let n_cuts = b.u8() as usize;
    let cuts: Vec<usize> = b.take(n_cuts).iter().map(|&c| read_size(c)).collect();
    let n_runs = (b.u8() % 5) as usize;
    let runs: Vec<(u16, u8, usize)> = (0..n_runs)
        .map(|_| {
            let pos = u16::from_le_bytes([b.u8(), b.u8()]);
            (pos, b.u8(), run_len(b.u8()))
        })
        .collect();
    let stream = build_stream(b.rest(), &runs);

    let model = model(&stream);
    let model_pieces: Vec<Vec<u8>> = model.iter().flatten().cloned().collect();

    // (A) one read.
    let whole = split(&stream, &[usize::MAX]);
    if whole != model_pieces {
        panic!(
            "one read: splitter {:?} != model {:?}",
            summary(&whole),
            summary(&model_pieces)
        );
    }

    // (B) many reads.
    // Without cut codes (or with only empty reads, which make no progress): byte by byte, or
    // for a long stream (where that is slow) odd sizes.
    let sizes = match cuts.iter().all(|&c| c == 0) {
        false => cuts,
        true if stream.len() <= 4096 => vec![1],
        true => vec![4093, 1, 2, 3],
    };
    let chunked = split(&stream, &sizes);
    if chunked != whole {
        panic!(
            "reads of {:?}: splitter {:?} != one read {:?}",
            &sizes[..sizes.len().min(16)],
            summary(&chunked),
            summary(&whole)
        );
    }
});

/// A read size from one cut code: 0 (an empty read), 1..=127, about 1 KiB steps, or within
/// 8 bytes of 64 KiB.
fn read_size(c: u8) -> usize {
    match c {
        0..=127 => c as usize,
        128..=191 => (c as usize - 128) * 1024 + 1,
        _ => MAX_RECORD - 8 + (c as usize % 16),
    }
}

/// A run length: within 8 bytes of 64 KiB or of 128 KiB, 1 KiB steps, or short.
fn run_len(c: u8) -> usize {
    match c {
        0..=63 => MAX_RECORD - 8 + (c as usize % 16),
        64..=127 => 2 * MAX_RECORD - 8 + (c as usize % 16),
        128..=191 => (c as usize - 128) * 1024,
        _ => c as usize - 192,
    }
}

fn build_stream(data: &[u8], runs: &[(u16, u8, usize)]) -> Vec<u8> {
    let mut at: Vec<(usize, u8, usize)> = runs
        .iter()
        .map(|&(pos, byte, len)| (pos as usize % (data.len() + 1), byte, len))
        .collect();
    at.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(data.len() + at.iter().map(|r| r.2).sum::<usize>());
    let mut from = 0;
    for (pos, byte, len) in at {
        out.extend_from_slice(&data[from..pos]);
        out.resize(out.len() + len, byte);
        from = pos;
    }
    out.extend_from_slice(&data[from..]);
    out
}

fn split(stream: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut s = LineSplitter::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    let check = |l: &[u8], out: &mut Vec<Vec<u8>>| {
        assert!(!l.is_empty(), "empty piece");
        assert!(l.len() <= MAX_RECORD, "piece of {} bytes", l.len());
        out.push(l.to_vec());
    };
    loop {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let (read, r) = rest.split_at(n);
        rest = r;
        s.feed(read, |l| check(l, &mut out));
        assert!(s.pending() <= MAX_RECORD, "{} bytes held back", s.pending());
        if rest.is_empty() {
            break;
        }
    }
    s.finish(|l| check(l, &mut out));
    assert_eq!(s.pending(), 0);
    out
}

/// The contract's lines, each as its pieces: split at `\n`, one `\r` before it dropped (also at
/// EOF), empty lines dropped, the rest after the last `\n` is a line too; a line longer than
/// 64 KiB is cut into pieces of at most 64 KiB, each cut moved back (at most 3 bytes) to the start
/// of a UTF-8 character that it would otherwise split ([`model_cut`]).
fn model(stream: &[u8]) -> Vec<Vec<Vec<u8>>> {
    // Split at every `\n` (memchr: a byte loop here would cost more than the splitter itself).
    let mut parts = Vec::new();
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', stream) {
        parts.push(&stream[start..nl]);
        start = nl + 1;
    }
    parts.push(&stream[start..]);
    parts
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|mut l| {
            let mut pieces = Vec::new();
            while l.len() > MAX_RECORD {
                let cut = model_cut(l, MAX_RECORD);
                pieces.push(l[..cut].to_vec());
                l = &l[cut..];
            }
            pieces.push(l.to_vec());
            pieces
        })
        .collect()
}

/// `at`, or, when `line[at]` continues a UTF-8 character whose lead byte is at most 3 bytes
/// back (only continuation bytes between them, the lead byte's width reaching `at`), that lead
/// byte. Only bytes up to `at` decide, so the cut does not depend on what has arrived after it.
/// (Until 2fc4892 the cut moved only for a well-formed character, which needed the bytes after
/// `at`: a read ending inside the character gave a different cut, the bug `utf8-cut`.)
fn model_cut(line: &[u8], at: usize) -> usize {
    let continuation = |b: u8| b & 0xC0 == 0x80;
    if !continuation(line[at]) {
        return at;
    }
    for p in (at.saturating_sub(3)..at).rev() {
        if !continuation(line[p]) {
            let width = match line[p] {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return at, // not a lead byte
            };
            return if p + width > at { p } else { at };
        }
    }
    at // more than 3 continuation bytes: not one character
}

/// Piece lengths and the first bytes, short enough to read in a crash report.
fn summary(pieces: &[Vec<u8>]) -> Vec<String> {
    pieces
        .iter()
        .take(20)
        .map(|p| {
            let tail = &p[p.len().saturating_sub(4)..];
            format!(
                "{}:{:?}..{:?}",
                p.len(),
                String::from_utf8_lossy(&p[..p.len().min(12)]),
                tail
            )
        })
        .collect()
}
