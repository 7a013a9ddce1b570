//! The `--rate` schedule: when each message of the run is due, as pure arithmetic on the clock.
//!
//! It exists so the open loop's timing (message `i` of the run is due at `start + i / rate` and
//! goes to connection `i % conns`) is written once, for the loop that hands messages out, the
//! connection that dates them and the count of those never sent. It does no I/O and keeps no
//! counter, and it must never round a due time earlier than the arithmetic says.

use std::time::{Duration, Instant};

/// The open loop's timetable: `rate` messages per second over all `conns` connections from
/// `start`. Only a run with `--rate` has one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    /// Messages per second over the whole run, above 0 and at most `MAX_RATE`.
    rate: f64,
    /// All connections of the run, over every thread: the schedule's modulus.
    conns: u64,
    /// When message 0 is due: the run's start.
    start: Instant,
}

impl Schedule {
    pub(crate) fn new(rate: f64, conns: u64, start: Instant) -> Self {
        Schedule { rate, conns, start }
    }

    /// The same timetable with message 0 due at `start`.
    pub(crate) fn starting_at(self, start: Instant) -> Self {
        Schedule { start, ..self }
    }

    /// When message `i` of the whole run is due, `start + i / rate`; `None` when that is too far
    /// ahead to represent, so never.
    pub(crate) fn due_at(&self, i: u64) -> Option<Instant> {
        Duration::try_from_secs_f64(i as f64 / self.rate)
            .ok()
            .and_then(|d| self.start.checked_add(d))
    }

    /// The number of the first message of the run due at `at` or later, so also how many are due
    /// before `at`. A binary search: `due_at` only grows with `i`.
    pub(crate) fn first_due_from(&self, at: Instant) -> u64 {
        let (mut lo, mut hi) = (0, u64::MAX);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.due_at(mid).is_some_and(|due| due < at) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// How many of the messages numbered below `i` in the run go to connection `id` (those
    /// numbered `id`, `id + conns`, ...).
    pub(crate) fn share_below(&self, i: u64, id: u64) -> u64 {
        i.saturating_sub(id).div_ceil(self.conns)
    }

    /// When the `j`-th message of connection `id` is due. Message `i` of the run goes to
    /// connection `i % conns`, so that is message `j * conns + id`.
    pub(crate) fn intended(&self, id: u64, j: u64) -> Option<Instant> {
        self.due_at(j.saturating_mul(self.conns).saturating_add(id))
    }
}
