//! The lazy timer heap: idle timeouts, lingering closes, protocol deadlines and the drain's looks,
//! in one min-heap touched when an entry comes due, never per message (activity only stamps a
//! connection's `last_active`). An entry must never wake a newer connection that reuses a slot:
//! it names the connection's id and the time it was armed for.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::connection::Connection;
use crate::framing::Protocol;

/// Stale timer entries tolerated beyond twice the open connections before the heap is swept.
const TIMER_SLACK: usize = 1024;

/// One timer: connection `id`, in slab slot `key`, wants a look at `at`. Ordered by time first
/// (the fields' order), so the heap gives the earliest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    pub at: Instant,
    pub key: usize,
    pub id: u64,
}

impl Entry {
    /// Still wanted by a connection of `id` whose next timer is `timer_at`: not a connection
    /// closed since (another id in the slot), nor a timer moved since (another time).
    pub fn is_for(&self, id: u64, timer_at: Option<Instant>) -> bool {
        self.id == id && timer_at == Some(self.at)
    }
}

/// The min-heap of [`Entry`]s. A connection's own `timer_at` says which of its entries is
/// current; the others are stale and skipped when they come due, or swept in bulk.
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    /// Sets the timer of connection `id` in `key` to `at`, whatever `timer_at` held.
    pub fn set(&mut self, timer_at: &mut Option<Instant>, at: Instant, key: usize, id: u64) {
        *timer_at = Some(at);
        self.heap.push(Reverse(Entry { at, key, id }));
    }

    /// Makes sure the connection is looked at by `at`: sets its timer unless an earlier one is
    /// already set (that look arms the next).
    pub fn arm(&mut self, timer_at: &mut Option<Instant>, at: Instant, key: usize, id: u64) {
        if timer_at.is_none_or(|timer| at < timer) {
            self.set(timer_at, at, key, id);
        }
    }

    /// Makes sure the loop wakes by the protocol's deadline for a connection, if it has one
    /// earlier than the connection's next timer. Inlined into the read path, as it was there.
    #[inline]
    pub fn arm_deadline<P: Protocol>(
        &mut self,
        protocol: &P,
        conn: &mut Connection<P::Session>,
        key: usize,
    ) {
        if let Some(at) = protocol.deadline(&conn.session) {
            self.arm(&mut conn.timer_at, at, key, conn.id);
        }
    }

    /// When the first entry comes due, stale or not: waking for a stale one costs a turn, which
    /// is cheaper than finding it.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.at)
    }

    /// Takes the first entry due by `now`, stale or not (the caller checks with
    /// [`Entry::is_for`]).
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    /// A closed connection's entry stays in the heap until it comes due, which under churn would
    /// hold one entry per connection of the last idle-timeout period (minutes of them). Once the
    /// entries outnumber twice the `open` connections (and a slack), the stale ones are dropped:
    /// those for which `current` says no. That keeps the heap within about twice the open
    /// connections, at an amortised O(1) per close.
    pub fn sweep(&mut self, open: usize, mut current: impl FnMut(&Entry) -> bool) {
        if self.heap.len() > 2 * open + TIMER_SLACK {
            self.heap.retain(|Reverse(entry)| current(entry));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_come_due_in_time_order_and_not_before() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut timers = Timers::default();
        let mut slots = [None; 3];
        timers.set(&mut slots[0], at(30), 0, 10);
        timers.set(&mut slots[1], at(10), 1, 11);
        timers.set(&mut slots[2], at(20), 2, 12);
        assert_eq!(timers.next(), Some(at(10)));

        assert_eq!(timers.pop_due(at(5)), None, "nothing is due yet");
        let due: Vec<usize> = std::iter::from_fn(|| timers.pop_due(at(25)))
            .map(|entry| entry.key)
            .collect();
        assert_eq!(due, [1, 2]);
        assert_eq!(timers.next(), Some(at(30)));
        assert_eq!(timers.pop_due(at(30)).map(|e| e.key), Some(0));
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn arm_keeps_the_earlier_timer() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut slot = None;
        timers.arm(&mut slot, t0 + Duration::from_secs(2), 0, 1);
        timers.arm(&mut slot, t0 + Duration::from_secs(5), 0, 1);
        assert_eq!(
            slot,
            Some(t0 + Duration::from_secs(2)),
            "a later one is not armed"
        );
        assert_eq!(timers.len(), 1);
        timers.arm(&mut slot, t0 + Duration::from_secs(1), 0, 1);
        assert_eq!(slot, Some(t0 + Duration::from_secs(1)));
        // The 2 s entry is stale now: the connection's slot names 1 s.
        let first = timers.pop_due(t0 + Duration::from_secs(3)).unwrap();
        assert!(first.is_for(1, slot));
        let second = timers.pop_due(t0 + Duration::from_secs(3)).unwrap();
        assert!(
            !second.is_for(1, slot),
            "a moved timer's old entry is stale"
        );
    }

    #[test]
    fn an_entry_of_a_closed_connection_is_stale_in_its_reused_slot() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut old = None;
        timers.set(&mut old, t0, 7, 1);
        // Slot 7 now holds connection 2, armed for the same instant.
        let new = Some(t0);
        let entry = timers.pop_due(t0).unwrap();
        assert!(!entry.is_for(2, new));
    }

    #[test]
    fn stale_entries_are_swept_only_past_twice_the_open_connections_and_the_slack() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut slot = None;
        for id in 0..(TIMER_SLACK + 4) as u64 {
            timers.set(&mut slot, t0, id as usize, id);
        }
        let live = |entry: &Entry| entry.id < 2;
        // Two open connections: 4 + the slack entries are tolerated.
        timers.sweep(2, live);
        assert_eq!(timers.len(), TIMER_SLACK + 4, "within the slack: no sweep");
        timers.set(&mut slot, t0, 0, 0);
        timers.sweep(2, live);
        assert_eq!(
            timers.len(),
            3,
            "only the live connections' entries are kept"
        );
    }
}
