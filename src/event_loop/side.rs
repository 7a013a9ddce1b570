//! Side loops: the admin endpoint's and the agent check's, each a [`Worker`] on a poll of its own
//! that the first loop's poll watches under one token, driven by that loop's turns instead of a
//! thread. They must never sit on the echo's message path, nor cost it more than a small bounded
//! share of its thread, whatever their clients do: they get a turn only when their polls had
//! events or a deadline came, after the driving loop's own, at most one per
//! `SIDE_TURN_INTERVAL`, and after a turn that took `d` none for `SIDE_REST × d` (5% of the
//! thread at most). Each turn of theirs reads at most `SIDE_TURN_BUDGET` bytes and accepts at
//! most `SIDE_ACCEPT_BUDGET` connections per listener; a connection stops being read once
//! `SIDE_MAX_PENDING` answer bytes wait for it. Their few slots are kept for health checks: short
//! idle deadlines, and when full the oldest idle connection makes room for the new one.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use log::debug;
use mio::{Events, Interest, Registry, Token};

use super::{Worker, EVENT_CAPACITY};
use crate::config::{
    SIDE_ACCEPT_BUDGET, SIDE_IDLE_TIMEOUT, SIDE_MAX_PENDING, SIDE_REST, SIDE_TURN_BUDGET,
    SIDE_TURN_INTERVAL,
};
use crate::framing::Protocol;

/// A loop driven by another's turns: its poll is registered in the driving loop's, which gives
/// it a turn when that poll has events or its deadline has come.
pub(crate) trait Side: Send {
    /// The descriptor of its poll, for the driving loop to watch.
    fn poll_fd(&self) -> RawFd;
    /// When it must have a turn without an event: the time of its last turn if it has work
    /// left (connections on its ready list, more events than one turn took), else its first
    /// timer.
    fn next(&self) -> Option<Instant>;
    /// One turn: its events, taken without waiting, then its leftovers and timers.
    fn turn(&mut self);
}

/// A [`Worker`] run as a [`Side`]: its own connections, listeners, limits and timers, on the
/// driving loop's thread. It never stops by itself; it ends when the driving loop does.
pub(crate) struct SideLoop<P: Protocol> {
    worker: Worker<P>,
    events: Events,
    /// The last turn took a full batch: more events may wait, and an edge-triggered poll will
    /// not report them again.
    more: bool,
}

impl<P: Protocol> SideLoop<P> {
    /// Drives `worker` as a side loop, bounded as one: at most [`SIDE_TURN_BUDGET`] bytes read
    /// and [`SIDE_ACCEPT_BUDGET`] connections accepted per listener per turn, at most
    /// [`SIDE_MAX_PENDING`] answer bytes waiting per connection, connections silent
    /// for [`SIDE_IDLE_TIMEOUT`] closed, and when full the oldest idle one closed to admit a new
    /// one.
    pub(crate) fn new(mut worker: Worker<P>) -> SideLoop<P> {
        (worker.conns).bound_as_side(SIDE_TURN_BUDGET, SIDE_MAX_PENDING, SIDE_IDLE_TIMEOUT);
        worker.acceptor.set_budget(SIDE_ACCEPT_BUDGET);
        SideLoop {
            worker,
            events: Events::with_capacity(EVENT_CAPACITY),
            more: false,
        }
    }
}

impl<P: Protocol + Send> Side for SideLoop<P>
where
    P::Session: Send,
{
    fn poll_fd(&self) -> RawFd {
        self.worker.poll_fd()
    }

    fn next(&self) -> Option<Instant> {
        if self.more {
            Some(self.worker.turn_time())
        } else {
            self.worker.next_turn()
        }
    }

    fn turn(&mut self) {
        if let Err(e) = self.worker.poll(&mut self.events, Some(Duration::ZERO)) {
            // Interrupted, or a failure that the next turn reports again: nothing is lost.
            debug!("polling the side loop: {e}");
            return;
        }
        self.more = self.events.iter().count() >= EVENT_CAPACITY;
        self.worker.turn(&self.events);
    }
}

/// The side loops one loop drives, and when they may and must have their next turn. They share
/// one token: each turn of theirs costs every one of them a poll that returns at once, which
/// their light traffic allows. They are paced together: at most one turn per
/// [`SIDE_TURN_INTERVAL`], and after a turn that took `d`, a rest of [`SIDE_REST`] × `d`.
#[derive(Default)]
pub(super) struct Sides {
    loops: Vec<Box<dyn Side>>,
    /// One of their polls reported events since their last turn. Kept until they have it: the
    /// driving poll reports a side poll's events once (edge-triggered), however long they wait.
    woke: bool,
    /// When the first of them needs a turn without an event (known after each of their turns,
    /// since only their turns change it).
    want_at: Option<Instant>,
    /// No turn of theirs before this: the pace.
    rest_until: Option<Instant>,
}

impl Sides {
    /// Drives `side` from now on: its poll is watched under `token` in `registry`.
    pub fn add(
        &mut self,
        registry: &Registry,
        token: Token,
        side: Box<dyn Side>,
    ) -> std::io::Result<()> {
        let fd = side.poll_fd();
        registry.register(&mut mio::unix::SourceFd(&fd), token, Interest::READABLE)?;
        self.loops.push(side);
        Ok(())
    }

    /// One of their polls has events.
    pub fn wake(&mut self) {
        self.woke = true;
    }

    /// A turn of theirs is due at `now`: events wait or a deadline came, and their rest is over.
    pub fn due(&self, now: Instant) -> bool {
        let rested = self.rest_until.is_none_or(|rest| rest <= now);
        rested && (self.woke || self.want_at.is_some_and(|at| at <= now))
    }

    /// When they need a turn, if not at once: the end of their rest when events wait, else their
    /// first deadline, not before that rest is over. The driving loop wakes then, so events that
    /// come during a rest wait without a busy loop.
    pub fn next_at(&self) -> Option<Instant> {
        if self.woke {
            return self.rest_until;
        }
        let at = self.want_at?;
        Some(self.rest_until.map_or(at, |rest| at.max(rest)))
    }

    /// Gives them a turn if one is due; `clock` tells the time, before and after it, for the
    /// rest that follows.
    #[inline]
    pub fn turns(&mut self, clock: impl Fn() -> Instant) {
        if self.loops.is_empty() {
            return;
        }
        let start = clock();
        if !self.due(start) {
            return;
        }
        self.woke = false;
        for side in self.loops.iter_mut() {
            side.turn();
        }
        let end = clock();
        let took = end.saturating_duration_since(start);
        self.rest_until = Some((start + SIDE_TURN_INTERVAL).max(end + took * SIDE_REST));
        self.want_at = self.loops.iter().filter_map(|side| side.next()).min();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A clock the test moves, shared with the fake sides whose turns take time on it.
    #[derive(Clone)]
    struct Clock(Arc<Mutex<Instant>>);

    impl Clock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    /// A side whose every turn takes `cost` on the clock; it counts its turns and wants one
    /// again at once when `busy` (work left on its ready list).
    struct Fake {
        clock: Clock,
        cost: Duration,
        busy: bool,
        turns: Arc<Mutex<u32>>,
    }

    impl Side for Fake {
        fn poll_fd(&self) -> RawFd {
            -1
        }
        fn next(&self) -> Option<Instant> {
            self.busy.then(|| self.clock.now())
        }
        fn turn(&mut self) {
            *self.turns.lock().unwrap() += 1;
            self.clock.advance(self.cost);
        }
    }

    /// Sides with one fake of `cost` per turn, its clock, and its turn count.
    fn sides(cost: Duration, busy: bool) -> (Sides, Clock, Arc<Mutex<u32>>) {
        let clock = Clock(Arc::new(Mutex::new(Instant::now())));
        let turns = Arc::new(Mutex::new(0));
        let fake = Fake {
            clock: clock.clone(),
            cost,
            busy,
            turns: turns.clone(),
        };
        let sides = Sides {
            loops: vec![Box::new(fake)],
            ..Sides::default()
        };
        (sides, clock, turns)
    }

    /// Their polls have events at every turn of the driving loop (a pipelining scraper), a turn
    /// every 10 µs for 100 ms: they get one turn per interval, not one per driving turn.
    #[test]
    fn events_every_driving_turn_get_one_side_turn_per_interval() {
        let (mut sides, clock, turns) = sides(Duration::ZERO, false);
        let step = Duration::from_micros(10);
        let driving_turns = 10_000;
        for _ in 0..driving_turns {
            sides.wake();
            let c = clock.clone();
            sides.turns(move || c.now());
            clock.advance(step);
        }
        let span = step * driving_turns;
        let most = (span.as_micros() / SIDE_TURN_INTERVAL.as_micros()) as u32;
        assert_eq!(
            *turns.lock().unwrap(),
            most,
            "one turn per interval over {span:?}"
        );
    }

    /// A side with work always left (more pipelined requests than a turn's budget) is paced the
    /// same way, without any event.
    #[test]
    fn work_left_is_served_once_per_interval() {
        let (mut sides, clock, turns) = sides(Duration::ZERO, true);
        sides.wake();
        for _ in 0..1000 {
            let c = clock.clone();
            sides.turns(move || c.now());
            clock.advance(Duration::from_micros(100));
        }
        // 100 ms at one turn a millisecond.
        assert_eq!(*turns.lock().unwrap(), 100);
    }

    /// Turns that take long (a fresh scrape with many connections open) are followed by a rest
    /// 19 times as long: the sides' share of the clock stays within 1 / (1 + SIDE_REST).
    #[test]
    fn long_turns_rest_in_proportion_and_keep_the_share_small() {
        let cost = Duration::from_micros(300);
        let (mut sides, clock, turns) = sides(cost, true);
        let start = clock.now();
        sides.wake();
        for _ in 0..100_000 {
            let c = clock.clone();
            sides.turns(move || c.now());
            clock.advance(Duration::from_micros(10));
        }
        let span = clock.now() - start;
        let turns = *turns.lock().unwrap();
        assert!(turns > 1, "{turns} turns");
        // Each turn but the last is followed by its whole rest within the span.
        assert!(
            cost * (turns - 1) * (1 + SIDE_REST) <= span,
            "{turns} turns of {cost:?} in {span:?}"
        );
        // Each turn is followed by its rest, no more: (cost + 19 cost) apart, to the 10 µs step.
        let apart = cost * (1 + SIDE_REST) + Duration::from_micros(10);
        assert!(span / turns <= apart, "{turns} turns in {span:?}");
    }

    /// Events that come during the rest are kept: the driving loop is told when to wake for
    /// them (not at once: no busy loop), and they get their turn then, with no new event.
    #[test]
    fn events_during_the_rest_wait_for_its_end_without_a_busy_loop() {
        let (mut sides, clock, turns) = sides(Duration::ZERO, false);
        assert_eq!(sides.next_at(), None, "nothing to do");
        let t0 = clock.now();
        sides.wake();
        assert!(sides.due(t0), "the first events are served at once");
        let c = clock.clone();
        sides.turns(move || c.now());
        assert_eq!(*turns.lock().unwrap(), 1);
        assert_eq!(sides.next_at(), None, "nothing to do after the turn");

        clock.advance(SIDE_TURN_INTERVAL / 2);
        sides.wake();
        assert!(!sides.due(clock.now()), "events during the rest wait");
        assert_eq!(sides.next_at(), Some(t0 + SIDE_TURN_INTERVAL));
        let c = clock.clone();
        sides.turns(move || c.now());
        assert_eq!(*turns.lock().unwrap(), 1, "no turn during the rest");

        clock.advance(SIDE_TURN_INTERVAL / 2);
        assert!(sides.due(clock.now()));
        let c = clock.clone();
        sides.turns(move || c.now());
        assert_eq!(
            *turns.lock().unwrap(),
            2,
            "the kept events' turn at the rest's end"
        );
        assert_eq!(sides.next_at(), None);
    }
}
