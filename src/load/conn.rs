//! One load connection's state: its socket, the messages it has in flight, what it expects back.
//!
//! Kept small on purpose, since 19,000 of them must fit: it holds no message bytes, because a
//! message is regenerated from its seed whenever it is written (in HTTP its checker may hold the
//! start of an answer head split across reads). It never does I/O itself (the
//! loop in `worker.rs` does) and never has more than `--pipeline` messages in flight.

use std::collections::VecDeque;
use std::time::Instant;

use mio::net::TcpStream;
use rustls::ClientConnection;

use super::check::Checker;
use super::message::seed;
use super::plan::Plan;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No socket: queued for a connect attempt.
    Waiting,
    /// A non-blocking connect is in progress since then.
    Connecting { since: Instant },
    /// `--tls`: connected, the handshake under way; `since` is when the connect started, which
    /// is where the handshake latency counts from.
    Handshaking { since: Instant },
    /// WebSocket: connected, the upgrade request written then; no message goes before its `101`.
    Upgrading { since: Instant },
    /// Connected: sending messages and checking answers.
    Open,
    /// HTTP: an answer said `Connection: close`, as `--query` asked, then: nothing more is
    /// sent, and the server's close is awaited (within `--timeout`).
    Closing { since: Instant },
}

/// A message whose first byte was written and whose answer is not complete yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFlight {
    /// Its number on this connection slot (across reconnects): with the slot's id, its seed.
    pub seq: u64,
    /// When its first byte was written: `--timeout` counts from here.
    pub sent_at: Instant,
    /// Where its latency counts from: `sent_at`, or with `--rate` its intended send time if that
    /// was earlier.
    pub origin: Instant,
    /// Sent in the measured window, so it counts in the figures.
    pub measured: bool,
}

/// One of the `--conns` connections, kept across reconnects.
#[derive(Debug)]
pub(crate) struct Slot {
    /// This connection's number in the whole run: it seeds the messages and names it in errors.
    pub id: u64,
    pub sock: Option<TcpStream>,
    /// `--tls`: the socket's TLS state, from the connect to the close (boxed: rustls's state is
    /// large, and a plain run keeps only the pointer's room).
    pub tls: Option<Box<ClientConnection>>,
    pub phase: Phase,
    /// WRITABLE is registered: a connect is in progress, or a write stopped at WouldBlock with
    /// output pending.
    pub writable_interest: bool,
    pub checker: Checker,
    /// Oldest first; at most `--pipeline` entries.
    pub in_flight: VecDeque<InFlight>,
    /// Bytes of the newest message in flight already written (all of it once complete).
    pub written: u32,
    /// The `seq` of the next message to start.
    pub next_seq: u64,
    /// Messages started on the current socket, for `--reconnect`.
    pub started_here: u64,
    /// An answer completed on the current socket: once it did, a close by the server with
    /// nothing in flight ends a connection that served, rather than one it refused.
    pub answered_here: bool,
    /// With `--rate`: messages of this connection's schedule that are due, and those started.
    pub due: u64,
    pub issued: u64,
    pub ever_connected: bool,
    pub ever_failed: bool,
}

impl Slot {
    pub(crate) fn new(id: u64, plan: &Plan) -> Self {
        Slot {
            id,
            sock: None,
            tls: None,
            phase: Phase::Waiting,
            writable_interest: false,
            checker: Checker::new(&plan.proto),
            in_flight: VecDeque::new(),
            written: 0,
            next_seq: 0,
            started_here: 0,
            answered_here: false,
            due: 0,
            issued: 0,
            ever_connected: false,
            ever_failed: false,
        }
    }

    /// Bytes of the newest message in flight still to be written.
    fn unwritten(&self, plan: &Plan) -> u32 {
        match self.in_flight.back() {
            Some(_) => plan.proto.wire_size() - self.written,
            None => 0,
        }
    }

    // `startable`, `fill` and `commit` run on every write from `worker.rs`: marked `#[inline]` so
    // that whether they are inlined there does not flip with unrelated changes (it cost the
    // generator 52 instructions per message once, by callgrind).
    /// How many new messages may start now: bounded by `--pipeline`, `--reconnect`, the `--rate`
    /// schedule and what is left of this thread's `--messages` budget.
    #[inline]
    pub(crate) fn startable(&self, plan: &Plan, now: Instant, budget: Option<u64>) -> u64 {
        if self.phase != Phase::Open {
            return 0;
        }
        // Past the end nothing new starts, except with `--rate` the messages that fell due before
        // it (`due` counts no other): late because the connection waited for an answer or the
        // loop woke late, they go out now and count from when they were due, as they would
        // mid-run, instead of being charged as never sent.
        if now >= plan.end && plan.schedule.is_none() {
            return 0;
        }
        let mut n = u64::from(plan.pipeline).saturating_sub(self.in_flight.len() as u64);
        if let Some(every) = plan.reconnect {
            n = n.min(every.saturating_sub(self.started_here));
        }
        if plan.schedule.is_some() {
            n = n.min(self.due.saturating_sub(self.issued));
        }
        // Only measured messages spend the budget; before the window opens nothing is measured
        // in closed loop, and with --rate being conservative here costs nothing.
        if let Some(left) = budget {
            if plan.schedule.is_some() || now >= plan.measure_start {
                n = n.min(left);
            }
        }
        n
    }

    /// Writes into `buf` the rest of the newest message, then up to `start` new messages, as far as
    /// `buf` goes; returns the byte count. Changes nothing: `commit` does, for what was written.
    #[inline]
    pub(crate) fn fill(&self, plan: &Plan, start: u64, buf: &mut [u8]) -> usize {
        let size = plan.proto.wire_size() as usize;
        let mut n = 0;
        if let Some(last) = self.in_flight.back() {
            let take = (self.unwritten(plan) as usize).min(buf.len());
            plan.proto
                .fill(seed(self.id, last.seq), self.written, &mut buf[..take]);
            n = take;
        }
        for seq in (self.next_seq..).take(start as usize) {
            if n == buf.len() {
                break;
            }
            let take = size.min(buf.len() - n);
            plan.proto
                .fill(seed(self.id, seq), 0, &mut buf[n..n + take]);
            n += take;
        }
        n
    }

    /// Records that the first `n` bytes of the last `fill` were written at `now`: messages whose
    /// first byte went out are in flight from now. Returns how many messages that started; the
    /// measured ones among them each spent one unit of `budget`.
    #[inline]
    pub(crate) fn commit(
        &mut self,
        plan: &Plan,
        mut n: usize,
        now: Instant,
        budget: &mut Option<u64>,
    ) -> u64 {
        let size = plan.proto.wire_size();
        let rest = self.unwritten(plan) as usize;
        let take = rest.min(n);
        self.written += take as u32;
        n -= take;
        let mut started = 0;
        while n > 0 {
            let origin = match &plan.schedule {
                // Sent early (see `SCHEDULE_LOOKAHEAD`), it counts from its actual send; sent
                // late because the connection was busy, from when it should have gone.
                Some(schedule) => {
                    let at = schedule.intended(self.id, self.issued);
                    self.issued += 1;
                    at.map_or(now, |at| at.min(now))
                }
                None => now,
            };
            let is_measured = origin >= plan.measure_start;
            started += 1;
            if is_measured {
                if let Some(left) = budget {
                    *left = left.saturating_sub(1);
                }
            }
            self.in_flight.push_back(InFlight {
                seq: self.next_seq,
                sent_at: now,
                origin,
                measured: is_measured,
            });
            self.next_seq += 1;
            self.started_here += 1;
            let take = (size as usize).min(n);
            self.written = take as u32;
            n -= take;
        }
        started
    }

    /// Forgets the current socket's stream, after it closed: returns how many messages were
    /// still in flight and are now lost.
    pub(crate) fn reset_stream(&mut self, plan: &Plan) -> u64 {
        let lost = self.in_flight.len() as u64;
        self.sock = None;
        self.tls = None;
        self.phase = Phase::Waiting;
        self.writable_interest = false;
        self.checker = Checker::new(&plan.proto);
        self.in_flight.clear();
        self.written = 0;
        self.started_here = 0;
        self.answered_here = false;
        lost
    }

    /// `--reconnect`: every message this socket may carry was sent and answered.
    pub(crate) fn churn_due(&self, plan: &Plan) -> bool {
        plan.reconnect
            .is_some_and(|every| self.started_here >= every && self.in_flight.is_empty())
    }
}
