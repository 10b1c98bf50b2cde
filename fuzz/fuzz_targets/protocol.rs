//! `control::protocol::parse` and `Request::to_json`.
//!
//! Input: any bytes, used twice: as a request line, and as the choices that build a `Request`.
//!
//! Checked: `parse` never panics; what it accepts is a JSON object for serde_json, and a
//! request it returns survives `to_json` -> `parse` unchanged (`to_json` writes one line of
//! valid JSON); a `Request` built from valid parts (`up`/`down`/`restart`/`signal` with at least
//! one service, a signal in 1..SIGRTMAX) round-trips through `to_json` -> `parse`, and one built
//! from invalid parts (no services, signal out of range) is refused. `parse_signal` never panics
//! and gives only valid signals.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use dinit::control::protocol::{Request, parse, parse_signal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok(r) = parse(input) {
        assert!(
            matches!(
                serde_json::from_slice::<serde_json::Value>(input),
                Ok(serde_json::Value::Object(_))
            ),
            "parse accepted a non-object"
        );
        round_trip(&r);
    }
    if let Ok(s) = std::str::from_utf8(input)
        && let Some(n) = parse_signal(s)
    {
        assert!(n > 0 && n < libc_sigrtmax(), "parse_signal({s:?}) = {n}");
    }
    let mut u = Unstructured::new(input);
    if let Ok((r, valid)) = build(&mut u) {
        if valid {
            round_trip(&r);
        } else {
            assert!(
                parse(r.to_json().as_bytes()).is_err(),
                "accepted invalid {r:?}"
            );
        }
    }
});

fn round_trip(r: &Request) {
    let line = r.to_json();
    assert!(!line.contains('\n'), "to_json wrote more than one line");
    assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
    assert_eq!(
        parse(line.as_bytes()).as_ref(),
        Ok(r),
        "round trip of {line}"
    );
}

fn libc_sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// A request from the fuzzer's choices, and whether `parse` must accept it.
fn build(u: &mut Unstructured) -> Result<(Request, bool)> {
    let services: Vec<String> = Vec::arbitrary(u)?;
    let has = !services.is_empty();
    Ok(match u.int_in_range(0..=6u8)? {
        0 => (Request::Status { services }, true),
        1 => (Request::Check { services }, true),
        2 => (Request::Up { services }, has),
        3 => (Request::Down { services }, has),
        4 => (Request::Restart { services }, has),
        5 => {
            let signal = if bool::arbitrary(u)? {
                u.int_in_range(1..=64)?
            } else {
                i32::arbitrary(u)?
            };
            let valid = has && signal > 0 && signal < libc_sigrtmax();
            (Request::Signal { signal, services }, valid)
        }
        _ => (Request::Shutdown, true),
    })
}
