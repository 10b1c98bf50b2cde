//! Named deadlines -> the next poll timeout. Pure.
//!
//! A timer is never cancelled: when it fires, its handler checks that the state it was armed for
//! still holds (the process it would kill may have ended). That keeps arming O(log n) and the
//! state machine the only place that knows what is current.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

struct Entry<T> {
    at: Instant,
    seq: u64,
    what: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct Timers<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Timers<T> {
    pub fn arm(&mut self, at: Instant, what: T) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            what,
        }));
    }

    /// How long the poll may sleep: until the earliest deadline (`None`: no deadline).
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(e)| e.at.saturating_duration_since(now))
    }

    /// The next expired timer, earliest first, in arming order among equals.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.0.at <= now {
            self.heap.pop().map(|Reverse(e)| e.what)
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        assert_eq!(t.timeout(t0), None);
        t.arm(t0 + Duration::from_millis(30), "c");
        t.arm(t0 + Duration::from_millis(10), "a");
        t.arm(t0 + Duration::from_millis(10), "b");
        assert_eq!(t.timeout(t0), Some(Duration::from_millis(10)));
        assert_eq!(t.pop_expired(t0), None);
        let later = t0 + Duration::from_millis(20);
        assert_eq!(t.pop_expired(later), Some("a"));
        assert_eq!(t.pop_expired(later), Some("b"));
        assert_eq!(t.pop_expired(later), None);
        assert_eq!(t.timeout(later), Some(Duration::from_millis(10)));
        assert_eq!(t.timeout(t0 + Duration::from_secs(1)), Some(Duration::ZERO));
        assert_eq!(t.len(), 1);
    }
}
