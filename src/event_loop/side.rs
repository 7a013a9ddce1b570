//! Side loops: the admin endpoint's and the agent check's, each a [`Worker`] on a poll of its own
//! that the first loop's poll watches under one token, driven by that loop's turns instead of a
//! thread. They must never sit on the echo's message path: they get a turn only when their polls
//! had events or a deadline came, after the driving loop's own, and each turn of theirs reads
//! at most `SIDE_TURN_BUDGET` bytes, whatever their clients send, so they cost the echo a small
//! bounded share of a turn. Their few slots are kept for health checks: short idle deadlines,
//! and when full the oldest idle connection makes room for the new one.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use log::debug;
use mio::{Events, Interest, Registry, Token};

use super::{Worker, EVENT_CAPACITY};
use crate::config::{SIDE_IDLE_TIMEOUT, SIDE_TURN_BUDGET};
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
    /// per turn, connections silent for [`SIDE_IDLE_TIMEOUT`] closed, and when full the oldest
    /// idle one closed to admit a new one.
    pub(crate) fn new(mut worker: Worker<P>) -> SideLoop<P> {
        (worker.conns).bound_as_side(SIDE_TURN_BUDGET, SIDE_IDLE_TIMEOUT);
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

/// The side loops one loop drives, whether one of their polls reported events this turn, and
/// when the first of them needs a turn without one (known after each of their turns, since only
/// their turns change it). They share one token: each turn of theirs costs every one of them a
/// poll that returns at once, which their light traffic allows.
#[derive(Default)]
pub(super) struct Sides {
    loops: Vec<Box<dyn Side>>,
    woke: bool,
    next_at: Option<Instant>,
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

    /// A turn of theirs is due without waiting.
    pub fn due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|at| at <= now)
    }

    /// When one of them needs a turn without an event.
    pub fn next_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// Gives them a turn when one of their polls had events or a deadline has come.
    #[inline]
    pub fn turns(&mut self, now: Instant) {
        if self.loops.is_empty() {
            return;
        }
        if std::mem::take(&mut self.woke) || self.due(now) {
            for side in self.loops.iter_mut() {
                side.turn();
            }
            self.next_at = self.loops.iter().filter_map(|side| side.next()).min();
        }
    }
}
