//! UTC timestamps with milliseconds (`2026-11-24T13:15:30.676Z`), formatted once per millisecond.
//!
//! Records take the time once per read from a pipe, not once per line: every line of one read
//! was processed in the same instant, and the formatted text is reused until the millisecond
//! changes.

use std::time::{SystemTime, UNIX_EPOCH};

pub const TS_LEN: usize = 24;

pub struct Clock {
    last_ms: i64,
    text: [u8; TS_LEN],
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            last_ms: i64::MIN,
            text: [0; TS_LEN],
        }
    }

    /// The current time's text.
    pub fn now(&mut self) -> [u8; TS_LEN] {
        let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            // A clock before 1970 is a broken clock; print the epoch rather than fail.
            Err(_) => 0,
        };
        if ms != self.last_ms {
            self.last_ms = ms;
            self.text = format_ms(ms);
        }
        self.text
    }
}

/// Milliseconds since the epoch -> `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_ms(ms: i64) -> [u8; TS_LEN] {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let dt =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (year, month, day) = (
        dt.year().clamp(0, 9999) as u32,
        u8::from(dt.month()) as u32,
        dt.day() as u32,
    );
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let put = |out: &mut [u8; TS_LEN], at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut out, 0, 4, year);
    put(&mut out, 5, 2, month);
    put(&mut out, 8, 2, day);
    put(&mut out, 11, 2, dt.hour() as u32);
    put(&mut out, 14, 2, dt.minute() as u32);
    put(&mut out, 17, 2, dt.second() as u32);
    put(&mut out, 20, 3, milli);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: i64) -> String {
        String::from_utf8(format_ms(ms).to_vec()).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(s(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(s(1_764_000_000_676), "2025-11-24T16:00:00.676Z");
        assert_eq!(s(951_782_400_999), "2000-02-29T00:00:00.999Z");
        assert_eq!(s(4_102_444_799_001), "2099-12-31T23:59:59.001Z");
    }

    #[test]
    fn cached_within_a_millisecond() {
        let mut c = Clock::new();
        let a = c.now();
        assert_eq!(a.len(), TS_LEN);
        assert_eq!(a[23], b'Z');
        assert_eq!(a[10], b'T');
    }
}
