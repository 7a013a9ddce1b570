//! The event loop: one thread, one `mio::Poll`, non-blocking listeners and a `Slab` of
//! connections keyed by their token, all edge-triggered.
//!
//! It accepts, reads into one buffer shared by every connection, hands the bytes to its
//! [`Protocol`] and writes the answers; it never knows which protocol that is. It must never
//! block, never busy-loop (not even out of file descriptors), and never let one client starve
//! the others or grow memory without bound.
//!
//! The [`Worker`] here is the turn: poll, dispatch each event to the room that owns its token,
//! then the end-of-turn chores and the publish. The rooms keep their own state, and none calls
//! back into the worker:
//! - `accept`: the listeners, the accept budget, the out-of-descriptors pause, the refusal when
//!   full; it hands each accepted socket to a closure.
//! - `drive`: the connections and the path of their bytes (read → protocol → write, settle,
//!   close, linger), with what they share.
//! - `drain`: which connections the drain may close between two messages, and which it did.
//! - `ready`: the connections served next turn without waiting for an event.
//! - `slots`: the slab the connections live in, their ids, the open count, the slots freed at
//!   the end of a turn.
//! - `tally`: what the loop counts, published once per turn.
//! - `timers`: the lazy timer heap the connections' deadlines wait on.
//! - `alarm`: the timerfd that wakes the loop at its next deadline.
//! - `lifecycle`: signals, lame duck, drain, shutdown; it says what the loop must do next.
//! - `side`: with `--metrics-listen` or `--agent-listen`, the first loop also drives [`Side`]
//!   loops, the admin endpoint's and the agent check's: each a `Worker` on a poll of its own,
//!   which this loop's poll watches and whose turns it runs after its own, paced so that they
//!   take a small bounded share of its thread. Same thread, and nothing of them on the echo's
//!   message path.

mod accept;
mod alarm;
mod drain;
mod drive;
mod lifecycle;
mod ready;
mod side;
mod slots;
mod tally;
mod timers;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::info;
use mio::{Events, Poll, Token};

use crate::config::Config;
use crate::framing::Protocol;
use crate::group::Group;
use crate::metrics::Counters;
use crate::systemd::DrainNotices;
use crate::transport::TlsServer;
pub(crate) use accept::Listener;
use accept::{listener_index, Acceptor};
use alarm::Alarm;
use drive::Connections;
use lifecycle::{Lifecycle, Step};
use side::Sides;
pub(crate) use side::{Side, SideLoop};

/// Wakes the loop for a [`crate::ServerHandle`] request. The special tokens live at the top of
/// `usize`, far above any slab key; the listeners' come next, below them.
pub(crate) const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
/// The poll of a side loop (the admin endpoint's, the agent check's) has events.
const SIDE: Token = Token(usize::MAX - 2);
/// The loop's next deadline has come.
const ALARM: Token = Token(usize::MAX - 3);
/// Events taken from one `epoll_wait`.
const EVENT_CAPACITY: usize = 1024;

/// One event loop with its own poll, listeners and connections; `--workers N` runs N of them,
/// sharing only their [`Group`].
pub(crate) struct Worker<P: Protocol> {
    acceptor: Acceptor,
    alarm: Alarm,
    conns: Connections<P>,
    lifecycle: Lifecycle,
    sides: Sides,
    group: Arc<Group>,
    /// This loop's slot in the group's published metrics, when `--metrics-listen` is on.
    publish_to: Option<usize>,
}

impl<P: Protocol> Worker<P> {
    /// A worker serving `listeners`, already bound, on `poll`, whose waker the group holds.
    pub(crate) fn new(
        config: &Config,
        poll: Poll,
        listeners: Vec<Listener>,
        group: Arc<Group>,
        protocol: P,
    ) -> io::Result<Worker<P>> {
        Ok(Worker {
            acceptor: Acceptor::new(poll.registry(), listeners)?,
            alarm: Alarm::new(poll.registry(), ALARM)?,
            conns: Connections::new(config, poll, group.clone(), protocol),
            lifecycle: Lifecycle::new(config.shutdown_timeout()),
            sides: Sides::default(),
            group,
            publish_to: None,
        })
    }

    /// Makes this loop the one that keeps the lame duck's end and then raises the drain for all:
    /// the first loop, which also watches the signals.
    pub(crate) fn keep_lame_duck(&mut self) {
        self.lifecycle.lead();
    }

    /// Serves this loop's connections over TLS with `tls`, if given.
    pub(crate) fn serve_tls(&mut self, tls: Option<Arc<TlsServer>>) {
        self.conns.serve_tls(tls);
    }

    /// Makes SIGHUP reload `tls`; for the loop that watches the signals.
    pub(crate) fn reload_on_hup(&mut self, tls: Arc<TlsServer>) {
        self.lifecycle.reload_on_hup(tls);
    }

    /// Publishes this loop's counters, once per turn, into slot `index` of the group's.
    pub(crate) fn publish_as(&mut self, index: usize) {
        self.publish_to = Some(index);
    }

    /// Drives `side` from this loop's turns: its poll is watched by this one's, so it needs no
    /// thread, and its connections never meet this loop's on the message path.
    pub(crate) fn drive_side(&mut self, side: Box<dyn Side>) -> io::Result<()> {
        self.sides.add(self.conns.registry(), SIDE, side)
    }

    /// Makes SIGINT, SIGTERM and SIGQUIT stop every loop: the first drains, any later one aborts
    /// (but a duplicate, see `lifecycle`); SIGHUP, SIGUSR1 and SIGUSR2 only log. This loop then
    /// runs until every other loop has ended, so a second signal is honoured whichever loop is
    /// still draining.
    pub(crate) fn watch_signals(&mut self) -> io::Result<()> {
        self.lifecycle.watch_signals(self.conns.registry(), SIGNALS)
    }

    /// Tells systemd `STOPPING=1` at the first signal and extends its stop timeout while the
    /// drain goes on; for the loop that watches the signals.
    pub(crate) fn notify_systemd(&mut self, notices: DrainNotices) {
        self.lifecycle.notify_systemd(notices);
    }

    /// Serves until the group is stopped and every connection is done; returns what it counted.
    pub(crate) fn run(mut self) -> io::Result<Counters> {
        let _ended = Ended(self.group.clone());
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The other workers stop too, so the process never half-serves.
                self.group.abort();
                return Err(e);
            }
            self.turn(&events);
            let done = self.shutdown_step();
            // Before the side loops' turn: a scrape they answer sees all this loop did before.
            self.publish();
            self.sides.turns(Instant::now);
            if done && self.lifecycle.may_end(&self.group) {
                break;
            }
        }
        Ok(self.conns.into_counters())
    }

    /// One turn's work after a poll: its events, what was left over, due timers, freed slots.
    #[inline]
    fn turn(&mut self, events: &Events) {
        let now = self.conns.begin_turn();
        let conns = &mut self.conns;
        for event in events.iter() {
            match event.token() {
                WAKER => {}
                ALARM => self.alarm.rang(),
                SIGNALS => self.lifecycle.take_signals(&self.group),
                SIDE => self.sides.wake(),
                token => match listener_index(token) {
                    Some(i) => self.acceptor.on_event(i, now, |new| conns.admit(new)),
                    None => conns.on_event(token.0, event),
                },
            }
        }
        conns.serve_ready();
        self.acceptor.serve_queued(now, |new| conns.admit(new));
        conns.expire_timers(now, self.lifecycle.draining());
        // Only once the closed sockets' slots are freed are their descriptors free to accept into.
        if conns.free_dead() {
            self.acceptor.descriptor_freed(now);
        }
        self.acceptor.resume(now, |new| conns.admit(new));
    }

    /// Carries out what the lifecycle asks at the end of a turn; true once the loop may end.
    fn shutdown_step(&mut self) -> bool {
        let now = self.conns.now();
        loop {
            match self.lifecycle.step(&self.group, now, self.conns.open()) {
                Step::Serve | Step::Drain => return false,
                Step::StartDrain { after_lame_duck } => self.start_drain(now, after_lame_duck),
                Step::CloseAll => {
                    self.conns.close_all();
                    self.conns.free_dead();
                    return true;
                }
                Step::Done => return true,
            }
        }
    }

    /// Closes the listeners, so new connections fail at once instead of waiting, and lets the
    /// connections know the drain has begun.
    fn start_drain(&mut self, now: Instant, after_lame_duck: bool) {
        self.acceptor.close(self.conns.registry());
        if after_lame_duck {
            // Logged once this loop's listeners are closed; the other loops, woken, close theirs
            // in their next turn.
            info!("lame duck over: the listeners are closed");
        }
        self.conns.start_drain(now);
        if self.conns.open() > 0 {
            info!(
                "draining {} connection(s) for up to {:?}",
                self.conns.open(),
                self.lifecycle.shutdown_timeout()
            );
        }
    }

    /// Makes this turn's counts visible to a scrape: once per turn, never per message.
    fn publish(&mut self) {
        if let Some(slot) = self.publish_to.and_then(|i| self.group.published.get(i)) {
            self.conns.publish(slot);
        }
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.conns.poll(events, timeout)
    }

    /// How long the next poll may wait: not at all while work is left, else until an event,
    /// the alarm set for the first deadline among them.
    fn poll_timeout(&mut self) -> Option<Duration> {
        // From the last turn's time, not a fresh clock read: a side loop due a few microseconds
        // (a turn's length) from now waits for the alarm, which rings on time.
        let now = self.conns.now();
        if self.conns.has_ready() || self.acceptor.has_queued() || self.sides.due(now) {
            return Some(Duration::ZERO);
        }
        let at = [self.deadline(), self.sides.next_at()]
            .into_iter()
            .flatten()
            .min();
        match self.alarm.set(at) {
            true => None,
            // Rounded up: epoll counts whole milliseconds, and waking early would spin.
            false => at.map(|at| at.saturating_duration_since(now) + Duration::from_millis(1)),
        }
    }

    /// When this loop must wake without an event: its first timer, the end of an accept pause,
    /// of the lame duck or of the drain, systemd's next notice.
    fn deadline(&self) -> Option<Instant> {
        [
            self.conns.next_timer(),
            self.acceptor.paused_until(),
            self.lifecycle.wake_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The time of the last turn.
    fn turn_time(&self) -> Instant {
        self.conns.now()
    }

    /// When this loop needs a turn without an event: at once if it has work left, else its
    /// deadline.
    fn next_turn(&self) -> Option<Instant> {
        if self.conns.has_ready() || self.acceptor.has_queued() {
            Some(self.conns.now())
        } else {
            self.deadline()
        }
    }

    fn poll_fd(&self) -> std::os::fd::RawFd {
        self.conns.poll_fd()
    }
}

/// Tells the group a loop has ended, however it ends (a panic included), so the signal watcher
/// does not wait for it.
struct Ended(Arc<Group>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.loop_ended();
    }
}
