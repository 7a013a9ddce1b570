//! What one load thread records: the counts of answers, errors and closes, and the latencies.
//!
//! It exists so every figure the report will show is counted in one place, each with its rule
//! (what is measured, what is an error, what is only counted). It never does I/O and never
//! decides what happens to a connection: the loop does, then tells it here.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::conn::{InFlight, Phase, Slot};
use super::error::LoadError;
use super::fault::{Fault, Statuses};
use super::plan::Plan;
use super::progress::Snapshot;
use super::report::{new_histogram, Tally};
use crate::describe;

/// Why a connection is closed (after which it is opened again while the run lasts).
pub(crate) enum Close {
    /// A wrong or unexpected byte (in HTTP also a status other than 200 or a `Connection:
    /// close`), described: the stream is out of sync, or the server means to close it.
    Wrong(Fault, String),
    /// No complete answer within `--timeout`.
    Timeout,
    /// The server closed the connection (`None`) or it failed.
    Peer(Option<io::Error>),
    /// WebSocket: the server sent a close frame with this code; counted as a `Peer` close.
    WebSocket(u16),
    /// `--reconnect`: it carried its share of messages.
    Churn,
    /// HTTP: a fault `--query` asked for ended the connection: the server's close after an
    /// answer that said `Connection: close`, or a reset where `reset` asks one.
    Asked(Asked),
}

/// The faults `--query` may ask of a test backend, which end a connection without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// The server closed after an answer that said `Connection: close` (`close=N`).
    Close,
    /// The server reset the connection instead of the oldest answer in flight, or inside its
    /// body (`reset=N`, `reset=N:body`).
    Reset,
}

/// What a thread counted by its end.
pub(crate) struct Outcome {
    pub tally: Tally,
    pub hist: Histogram<u64>,
    /// `--tls`: the handshake latencies (µs) of the measured window.
    pub handshakes: Histogram<u64>,
    /// When its loop stopped (at the latest the run's end).
    pub ended: Instant,
    /// The first connect failure, in words, for the error when none ever succeeded.
    pub connect_error: Option<String>,
}

/// One thread's counts and latency histogram (µs).
pub(crate) struct Record {
    tally: Tally,
    hist: Histogram<u64>,
    handshakes: Histogram<u64>,
}

impl Record {
    pub(crate) fn new() -> Result<Self, LoadError> {
        Ok(Record {
            tally: Tally::default(),
            hist: new_histogram()?,
            handshakes: new_histogram()?,
        })
    }

    /// A connection connected; the first time for its slot (`first`) it counts as connected.
    pub(crate) fn connected(&mut self, first: bool) {
        if first {
            self.tally.conns_connected += 1;
        }
    }

    /// Some connection ever connected.
    pub(crate) fn connected_any(&self) -> bool {
        self.tally.conns_connected > 0
    }

    /// Connection `id` could not connect to `plan.addr` at `now`.
    pub(crate) fn connect_failed(&mut self, id: u64, plan: &Plan, e: &io::Error, now: Instant) {
        self.tally.connect_failures += 1;
        // Past the warmup the server was asked for this connection and did not take it: the
        // load the run was to measure was not carried (a server gone, refusing, or its backlog
        // overflowing), so it is an error, as a lost answer is.
        if now >= plan.measure_start {
            self.tally.connect_errors += 1;
            let at = now.saturating_duration_since(plan.start);
            let what = format!(
                "conn {id}: cannot connect to {} after the warmup: {}",
                plan.addr,
                describe(e)
            );
            self.tally.sample(at, what);
        }
    }

    /// `--tls`: a handshake whose connect started at `since` is done at `now`; counted, with its
    /// latency, when it ends inside the measured window.
    pub(crate) fn handshake(&mut self, since: Instant, now: Instant, plan: &Plan) {
        if now >= plan.measure_start && now < plan.end {
            self.tally.handshakes += 1;
            let us = now.saturating_duration_since(since).as_micros();
            self.handshakes
                .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
        }
    }

    /// `n` bytes written inside the measured window.
    pub(crate) fn sent(&mut self, n: usize) {
        self.tally.sent_bytes += n as u64;
    }

    /// `n` bytes read inside the measured window.
    pub(crate) fn received(&mut self, n: usize) {
        self.tally.received_bytes += n as u64;
    }

    /// Where the answers' statuses are counted.
    pub(crate) fn statuses(&mut self) -> &mut Statuses {
        &mut self.tally.statuses
    }

    /// An answer said `Connection: close`, as `--query` asked: the server closes after it.
    pub(crate) fn asked_close(&mut self) {
        self.tally.faults_close += 1;
    }

    /// Message `m`'s answer is complete and right at `now`.
    pub(crate) fn answered(&mut self, m: &InFlight, now: Instant) {
        self.tally.answered += 1;
        if m.measured {
            self.tally.messages += 1;
            self.latency(m, now);
        }
    }

    fn latency(&mut self, m: &InFlight, now: Instant) {
        let us = now.saturating_duration_since(m.origin).as_micros();
        self.hist
            .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
    }

    /// Connection `slot` is closed at `now` for `why`; a timeout is counted by `timed_out`.
    pub(crate) fn closed(&mut self, slot: &Slot, why: Close, plan: &Plan, now: Instant) {
        let at = now.saturating_duration_since(plan.start);
        let (id, unanswered) = (slot.id, slot.in_flight.len());
        match why {
            Close::Wrong(fault, what) => {
                match fault {
                    Fault::Wrong => self.tally.wrong += 1,
                    Fault::BadStatus => self.tally.bad_status += 1,
                    Fault::ConnectionClose => self.tally.connection_close += 1,
                }
                self.tally.sample(at, what);
            }
            Close::Timeout => self.timed_out(slot, plan, now),
            // A close that loses messages, or that comes before the server answered anything on
            // the connection (it refused to serve it: a proxy whose backend is down, a restart),
            // fails the clients, so it is an error even with no message sent yet (`--rate`).
            Close::Peer(_) | Close::WebSocket(_) if unanswered > 0 || !slot.answered_here => {
                self.tally.closed_early += 1;
                let how = match why {
                    Close::Peer(Some(e)) => format!("the connection failed ({})", describe(&e)),
                    Close::WebSocket(code) => {
                        format!("the server closed the WebSocket (close code {code})")
                    }
                    _ => "the server closed the connection".to_string(),
                };
                let when = match unanswered {
                    0 => "before its first answer".to_string(),
                    n => format!("with {n} message(s) unanswered"),
                };
                self.tally.sample(at, format!("conn {id}: {how} {when}"));
            }
            // A server may close a connection it has served once it is idle (saythat's
            // --idle-timeout, a drain): nothing was lost and the next messages go on a new one,
            // any delay showing in their latency. Counted, so it is seen, but not an error.
            Close::Peer(_) | Close::WebSocket(_) => self.tally.closed_idle += 1,
            Close::Churn => {}
            // The close was counted with its answer. Messages pipelined behind the answer it
            // ended were lost to it, as a client of such a backend would lose them: counted,
            // not errors.
            Close::Asked(Asked::Close) => self.tally.faults_lost += unanswered as u64,
            // The oldest message in flight was answered by the reset asked; any behind it lost.
            Close::Asked(Asked::Reset) => {
                self.tally.faults_reset += 1;
                self.tally.faults_lost += unanswered.saturating_sub(1) as u64;
            }
        }
    }

    /// A closed connection is opened again.
    pub(crate) fn reconnect(&mut self) {
        self.tally.reconnects += 1;
    }

    /// Counts a connection whose oldest message waited `--timeout` without a complete answer, and
    /// records how long its measured messages have waited so far: their answers never came, but a
    /// stalled server must still show in the latency figures, at least by this much.
    pub(crate) fn timed_out(&mut self, slot: &Slot, plan: &Plan, now: Instant) {
        self.tally.timeouts += 1;
        let at = now.saturating_duration_since(plan.start);
        match slot.phase {
            Phase::Upgrading { .. } => {
                let what = format!(
                    "conn {}: no answer to the WebSocket upgrade within {:?}",
                    slot.id, plan.timeout
                );
                self.tally.sample(at, what);
            }
            Phase::Closing { .. } => {
                let what = format!(
                    "conn {}: the server said `Connection: close` and did not close within {:?}",
                    slot.id, plan.timeout
                );
                self.tally.sample(at, what);
            }
            Phase::Waiting | Phase::Connecting { .. } | Phase::Handshaking { .. } | Phase::Open => {
            }
        }
        if let Some(m) = slot.in_flight.front() {
            let what = format!(
                "conn {}: no complete answer to message {} within {:?} ({} of its {} payload bytes received)",
                slot.id,
                m.seq,
                plan.timeout,
                slot.checker.partial(&plan.proto),
                plan.proto.size()
            );
            self.tally
                .sample(now.saturating_duration_since(plan.start), what);
        }
        for m in slot.in_flight.iter().filter(|m| m.measured) {
            self.latency(m, now);
        }
    }

    /// With `--rate`: `n` messages due in the measured window were never sent, as of `at`.
    pub(crate) fn not_sent(&mut self, n: u64, at: Duration) {
        if n > 0 {
            self.tally.not_sent += n;
            let what = format!(
                "{n} message(s) due by the end were never sent: their connections were still \
                 waiting for answers, closed or connecting"
            );
            self.tally.sample(at, what);
        }
    }

    /// The counts so far of thread `thread`, for the live progress line.
    pub(crate) fn snapshot(&self, thread: usize) -> Snapshot {
        Snapshot {
            thread,
            answered: self.tally.answered,
            errors: self.tally.errors(),
            hist: self.hist.clone(),
        }
    }

    /// The thread's outcome, its loop having stopped at `ended` with `open` connections open.
    pub(crate) fn finish(
        mut self,
        open: u64,
        ended: Instant,
        connect_error: Option<String>,
    ) -> Outcome {
        self.tally.conns_open_at_end = open;
        Outcome {
            tally: self.tally,
            hist: self.hist,
            handshakes: self.handshakes,
            ended,
            connect_error,
        }
    }
}

/// `why`, or the fault `--query` asked for that it is: the end of a connection closing after an
/// answer that said `Connection: close` (however it ends: a FIN, or a reset for the requests it
/// did not read), or a reset that falls where `reset` asks one, with a message in flight. Any
/// other close or reset stays what it is.
pub(crate) fn asked(slot: &Slot, plan: &Plan, why: Close) -> Close {
    match (&why, slot.phase) {
        (Close::Peer(_), Phase::Closing { .. }) => Close::Asked(Asked::Close),
        (Close::Peer(Some(e)), Phase::Open)
            if e.kind() == io::ErrorKind::ConnectionReset
                && !slot.in_flight.is_empty()
                && plan
                    .proto
                    .expect
                    .reset()
                    .is_some_and(|at| slot.checker.reset_fits(at)) =>
        {
            Close::Asked(Asked::Reset)
        }
        _ => why,
    }
}
