//! The `--rate` schedule: when each message of the run is due, and each thread's place in it.
//!
//! It exists so the open loop's timing (message `i` of the run is due at `start + i / rate` and
//! goes to connection `i % conns`) is written once, for the loop that hands messages out, the
//! connection that dates them and the count of those never sent. It does no I/O, and it must
//! never hand a message out more than `SCHEDULE_LOOKAHEAD` before it is due.

use std::time::{Duration, Instant};

/// With `--rate`, messages are handed out this long before they are due, because epoll wakes the
/// loop in whole milliseconds (mio rounds a shorter timeout up): without it a message would go out
/// up to 1 ms late, and that lateness, the tool's own, would be charged to the server.
const SCHEDULE_LOOKAHEAD: Duration = Duration::from_millis(1);
/// `--rate` messages handed out in one turn of the loop; past it the loop polls without waiting
/// and goes on, so an absurd rate cannot starve the connections' I/O.
const MAX_DUE_PER_TURN: u32 = 4096;

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

    /// Of the messages due from `from` to before `to`, those the connections never sent, given
    /// each connection's id and how many of its messages it sent (`issued`): a connection sends
    /// its messages in order, so those from `issued` on were not.
    pub(crate) fn not_sent(
        &self,
        from: Instant,
        to: Instant,
        conns: impl Iterator<Item = (u64, u64)>,
    ) -> u64 {
        let (first, end) = (self.first_due_from(from), self.first_due_from(to));
        let mut not_sent: u64 = 0;
        for (id, issued) in conns {
            let sent_from = issued.max(self.share_below(first, id));
            let due = self.share_below(end, id);
            not_sent = not_sent.saturating_add(due.saturating_sub(sent_from));
        }
        not_sent
    }
}

/// One thread's place in the schedule: the next message of the run to hand out, skipping those
/// of other threads' connections.
pub(crate) struct Cursor {
    schedule: Schedule,
    /// The thread's connections are `lo..hi` of the run's.
    lo: u64,
    hi: u64,
    /// The index in the whole run's schedule of the next message to hand out.
    next: u64,
    /// Messages handed out this turn of the loop, at most `MAX_DUE_PER_TURN`.
    handed: u32,
    /// Handing out stopped at `MAX_DUE_PER_TURN`, so poll must not wait.
    behind: bool,
}

impl Cursor {
    /// The place of the thread owning connections `first_id..first_id + conns`, at the start.
    pub(crate) fn new(schedule: Schedule, first_id: u64, conns: usize) -> Self {
        Cursor {
            schedule,
            lo: first_id,
            hi: first_id + conns as u64,
            next: 0,
            handed: 0,
            behind: false,
        }
    }

    /// A new turn of the loop: `MAX_DUE_PER_TURN` more may be handed out.
    pub(crate) fn begin_turn(&mut self) {
        self.handed = 0;
        self.behind = false;
    }

    /// Hands out the next message due within `SCHEDULE_LOOKAHEAD` of `now` and before `end`:
    /// returns its connection's index in the thread's share, or `None` when none is yet (or
    /// this turn handed out its most).
    pub(crate) fn next_due(&mut self, now: Instant, end: Instant) -> Option<usize> {
        if self.lo == self.hi {
            return None;
        }
        let n = self.schedule.conns;
        loop {
            let c = self.next % n;
            if c < self.lo || c >= self.hi {
                // Jump to this thread's first connection in this round or the next one.
                let skip = if c < self.lo {
                    self.lo - c
                } else {
                    n - c + self.lo
                };
                self.next = self.next.saturating_add(skip);
                continue;
            }
            // Not due yet, or never: after the run's end, or too far ahead to represent.
            match self.schedule.due_at(self.next) {
                Some(due) if due <= now + SCHEDULE_LOOKAHEAD && due < end => {}
                _ => return None,
            }
            if self.handed == MAX_DUE_PER_TURN {
                self.behind = true;
                return None;
            }
            self.handed += 1;
            self.next += 1;
            return Some((c - self.lo) as usize);
        }
    }

    /// Messages due before `end` may not all be handed out yet, e.g. when the loop woke after
    /// the end; `next_due` then hands them out. `next` may name another thread's connection,
    /// which `next_due` skips, so this can say true once more than needed, never less.
    pub(crate) fn left_before(&self, end: Instant) -> bool {
        self.lo < self.hi && self.schedule.due_at(self.next).is_some_and(|due| due < end)
    }

    /// When the loop must wake to hand out the next message before `end`: at once when this turn
    /// stopped at its most.
    pub(crate) fn wakeup(&self, now: Instant, end: Instant) -> Option<Instant> {
        if self.behind {
            return Some(now);
        }
        let due = self.schedule.due_at(self.next).filter(|&due| due < end)?;
        Some(due.checked_sub(SCHEDULE_LOOKAHEAD).unwrap_or(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Everything `next_due` hands out at `now` before `end`, as connection indices.
    fn hand_out(cursor: &mut Cursor, now: Instant, end: Instant) -> Vec<usize> {
        cursor.begin_turn();
        std::iter::from_fn(|| cursor.next_due(now, end)).collect()
    }

    #[test]
    fn a_thread_gets_only_its_own_connections_messages_in_order() {
        // 1,000 messages/s over 5 connections; this thread owns connections 2 and 3.
        let start = Instant::now();
        let schedule = Schedule::new(1000.0, 5, start);
        let mut cursor = Cursor::new(schedule, 2, 2);
        let end = start + Duration::from_secs(1);
        // Due by 9.5 ms (8.5 ms plus the lookahead): messages 0..=9, of which 2, 3, 7 and 8 are
        // ours.
        let now = start + Duration::from_micros(8_500);
        assert_eq!(hand_out(&mut cursor, now, end), vec![0, 1, 0, 1]);
        assert_eq!(hand_out(&mut cursor, now, end), Vec::<usize>::new());
        // The next is message 12, due at 12 ms: wake 1 ms before it.
        assert_eq!(cursor.wakeup(now, end), Some(start + ms(11)));
        assert_eq!(hand_out(&mut cursor, start + ms(11), end), vec![0]);
    }

    #[test]
    fn nothing_due_at_or_after_the_end_is_handed_out() {
        let start = Instant::now();
        let mut cursor = Cursor::new(Schedule::new(1000.0, 1, start), 0, 1);
        let end = start + ms(3);
        assert_eq!(hand_out(&mut cursor, start + ms(10), end), vec![0, 0, 0]);
        assert!(!cursor.left_before(end));
        assert_eq!(cursor.wakeup(start + ms(10), end), None);
    }

    #[test]
    fn a_turn_hands_out_at_most_its_share_then_asks_to_be_woken_at_once() {
        let start = Instant::now();
        let mut cursor = Cursor::new(Schedule::new(1e9, 1, start), 0, 1);
        let (now, end) = (start + ms(1), start + Duration::from_secs(1));
        assert_eq!(
            hand_out(&mut cursor, now, end).len(),
            MAX_DUE_PER_TURN as usize
        );
        assert_eq!(cursor.wakeup(now, end), Some(now));
        assert!(cursor.left_before(end));
        assert_eq!(
            hand_out(&mut cursor, now, end).len(),
            MAX_DUE_PER_TURN as usize
        );
    }

    #[test]
    fn a_thread_with_no_connections_has_nothing_due() {
        let start = Instant::now();
        let mut cursor = Cursor::new(Schedule::new(1000.0, 4, start), 4, 0);
        let end = start + Duration::from_secs(1);
        assert_eq!(hand_out(&mut cursor, end, end), Vec::<usize>::new());
        assert!(!cursor.left_before(end));
    }

    #[test]
    fn messages_never_sent_are_those_due_in_the_window_from_each_connections_issued_on() {
        // 100 messages/s over 2 connections: in 100 ms..200 ms messages 10..=19 are due, five
        // each (connection 0: its 5th to 9th, connection 1: its 5th to 9th).
        let start = Instant::now();
        let schedule = Schedule::new(100.0, 2, start);
        let (from, to) = (start + ms(100), start + ms(200));
        // Connection 0 sent up to its 7th (so 3 not sent), connection 1 sent all of them.
        assert_eq!(
            schedule.not_sent(from, to, [(0, 7), (1, 10)].into_iter()),
            3
        );
        // Sending fewer than were due before the window does not count those as not sent.
        assert_eq!(
            schedule.not_sent(from, to, [(0, 0), (1, 0)].into_iter()),
            10
        );
        assert_eq!(schedule.intended(1, 5), schedule.due_at(11));
    }
}
