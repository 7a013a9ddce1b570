//! What the event loops of one server share: the stop request (running, lame duck, drain, abort)
//! and the wakers that deliver it, and the count of open connections that `--max-conns` limits
//! over all of them.
//!
//! Shared state is touched once per connection (accept, close) or per request, never per
//! message, so `--workers` loops do not contend on the message path.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::warn;
use mio::Waker;

use crate::metrics::Published;

// The stop request, in the order it only ever rises.

/// Serving.
pub(crate) const RUNNING: u8 = 0;
/// Lame duck (`--drain-delay`): still accepting and serving, while health checks say draining,
/// so a load balancer stops sending new clients. The first loop keeps its end and then raises
/// `DRAIN`.
pub(crate) const LAME_DUCK: u8 = 1;
/// Listeners closed; open connections may finish until the shutdown timeout.
pub(crate) const DRAIN: u8 = 2;
/// Every connection closed now.
pub(crate) const ABORT: u8 = 3;

/// At most one "server full" warning per this long for the whole process; the refusals in
/// between are counted into the next one.
const FULL_WARN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Group {
    request: AtomicU8,
    wakers: Box<[Waker]>,
    /// Connections open over all loops: taken at accept, given back at close.
    open: AtomicUsize,
    /// The most ever open at once.
    peak: AtomicUsize,
    /// Loops still running; the first one, which watches the signals, waits for the others.
    running: AtomicUsize,
    max_conns: usize,
    /// How long a shutdown is a lame duck before the drain (`--drain-delay`); zero drains at once.
    drain_delay: Duration,
    /// What to say when full: which limit, and what to do about it.
    full_hint: &'static str,
    /// When the last "server full" warning was logged, and refusals since.
    full_warning: Mutex<(Option<Instant>, u64)>,
    /// Each loop's counters, published by that loop once per turn when `--metrics-listen` is
    /// on, summed by a scrape.
    pub(crate) published: Box<[Published]>,
}

impl Group {
    pub(crate) fn new(wakers: Vec<Waker>, max_conns: usize) -> Group {
        Group {
            request: AtomicU8::new(RUNNING),
            open: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            running: AtomicUsize::new(wakers.len()),
            max_conns,
            drain_delay: Duration::ZERO,
            full_hint: "server full: refused {since} connection(s) at the limit of {max} (raise --max-conns)",
            full_warning: Mutex::new((None, 0)),
            published: wakers.iter().map(|_| Published::default()).collect(),
            wakers: wakers.into(),
        }
    }

    /// A shutdown starts with a lame duck of `delay` (`--drain-delay`) before the drain.
    pub(crate) fn with_drain_delay(self, delay: Duration) -> Group {
        Group {
            drain_delay: delay,
            ..self
        }
    }

    /// The group of the admin endpoint's loop (`--metrics-listen`): no other loop, its own
    /// connection limit, never stopped (it ends with the loop that drives it).
    pub(crate) fn admin(max_conns: usize) -> Group {
        Group {
            full_hint: "metrics endpoint full: refused {since} connection(s) at its limit of {max}",
            ..Group::new(Vec::new(), max_conns)
        }
    }

    /// The group of the agent check's loop (`--agent-listen`), like the admin endpoint's.
    pub(crate) fn agent(max_conns: usize) -> Group {
        Group {
            full_hint: "agent check full: refused {since} connection(s) at its limit of {max}",
            ..Group::new(Vec::new(), max_conns)
        }
    }

    pub(crate) fn request(&self) -> u8 {
        self.request.load(Ordering::Acquire)
    }

    pub(crate) fn drain_delay(&self) -> Duration {
        self.drain_delay
    }

    /// The first signal: a lame duck of `--drain-delay` if there is one, else the drain at once.
    pub(crate) fn shutdown(&self) {
        self.raise(if self.drain_delay.is_zero() {
            DRAIN
        } else {
            LAME_DUCK
        });
    }

    /// Stop accepting; open connections may finish until the shutdown timeout. Raised by the
    /// first loop when the lame duck is over.
    pub(crate) fn drain(&self) {
        self.raise(DRAIN);
    }

    /// Close every connection now.
    pub(crate) fn abort(&self) {
        self.raise(ABORT);
    }

    fn raise(&self, request: u8) {
        self.request.fetch_max(request, Ordering::AcqRel);
        for waker in self.wakers.iter() {
            // A loop that already exited needs no waking.
            let _ = waker.wake();
        }
    }

    /// Loops still running.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// A loop has ended (or panicked): the first loop, which may be waiting for the others to
    /// stop watching the signals, is woken to see it.
    pub(crate) fn loop_ended(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        if let Some(first) = self.wakers.first() {
            let _ = first.wake();
        }
    }

    pub(crate) fn max_conns(&self) -> usize {
        self.max_conns
    }

    /// Takes a place for a new connection, or `false` when `--max-conns` are open.
    pub(crate) fn try_open(&self) -> bool {
        let open = self.open.fetch_add(1, Ordering::AcqRel);
        if open >= self.max_conns {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.peak.fetch_max(open + 1, Ordering::Relaxed);
        true
    }

    /// Gives back the place of a closed connection.
    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Counts a refusal at the limit and logs it, at most once a second for the process.
    pub(crate) fn refused_full(&self, now: Instant) {
        let mut guard = self
            .full_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, since) = &mut *guard;
        *since += 1;
        if last.is_none_or(|at| now.saturating_duration_since(at) >= FULL_WARN_EVERY) {
            let message = self.full_hint.replace("{since}", &since.to_string());
            warn!("{}", message.replace("{max}", &self.max_conns.to_string()));
            *last = Some(now);
            *since = 0;
        }
    }
}

/// Stops a running server from another thread, without signals.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    pub(crate) group: Arc<Group>,
}

impl ServerHandle {
    /// Like SIGTERM: with `--drain-delay`, serve on as a lame duck for that long while health
    /// checks say draining; then stop accepting, let open connections finish until the shutdown
    /// timeout.
    pub fn shutdown(&self) {
        self.group.shutdown();
    }

    /// Like a second signal: close every connection now.
    pub fn abort(&self) {
        self.group.abort();
    }
}
