//! One load thread: a mio loop over its share of the connections, from first connect to the end.
//!
//! The loop fits on a screen: housekeeping (connects, the `--rate` schedule, timeouts), poll, then
//! a match on the connection's phase. It must never block, never read or write more than the
//! messages in flight call for, and always stop by itself: at the run's end it starts nothing
//! more (with `--rate`, nothing but the messages that fell due before the end) and waits at most
//! `--timeout` for the answers still due, which are timeouts past that.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::conn::{Phase, Slot};
use super::error::LoadError;
use super::fault::Fault;
use super::plan::Plan;
use super::progress::{Snapshot, PROGRESS_INTERVAL};
use super::report::{new_histogram, Tally};
use super::schedule::Schedule;
use super::RECONNECT_BACKOFF;
use crate::describe;

/// Bytes asked of one read(2), into the loop's one shared buffer: connections have none.
const READ_BUF: usize = 64 * 1024;
/// Bytes generated for one write(2), into the loop's one shared buffer.
const WRITE_BUF: usize = 64 * 1024;
/// Readiness events taken from one poll.
const EVENTS_CAPACITY: usize = 1024;
/// With `--rate`, messages are handed out this long before they are due, because epoll wakes the
/// loop in whole milliseconds (mio rounds a shorter timeout up): without it a message would go out
/// up to 1 ms late, and that lateness, the tool's own, would be charged to the server.
const SCHEDULE_LOOKAHEAD: Duration = Duration::from_millis(1);
/// `--rate` messages handed out in one turn of the loop; past it the loop polls without waiting
/// and goes on, so an absurd rate cannot starve the connections' I/O.
const MAX_DUE_PER_TURN: u32 = 4096;

/// The connections and budget one thread owns.
pub(crate) struct Share {
    pub thread: usize,
    /// Id of the first connection; the thread owns `first_id..first_id + conns`.
    pub first_id: u64,
    pub conns: usize,
    /// This thread's part of `--messages`.
    pub budget: Option<u64>,
}

/// What a thread counted by its end.
pub(crate) struct Outcome {
    pub tally: Tally,
    pub hist: Histogram<u64>,
    /// When its loop stopped (at the latest the run's end).
    pub ended: Instant,
    /// The first connect failure, in words, for the error when none ever succeeded.
    pub connect_error: Option<String>,
}

/// Why a connection is closed (after which it is opened again while the run lasts).
enum Close {
    /// A wrong or unexpected byte (in HTTP also a status other than 200 or a `Connection:
    /// close`), described: the stream is out of sync, or the server means to close it.
    Wrong(Fault, String),
    /// No complete answer within `--timeout`.
    Timeout,
    /// The server closed the connection (`None`) or it failed.
    Peer(Option<io::Error>),
    /// `--reconnect`: it carried its share of messages.
    Churn,
}

struct Worker {
    plan: Arc<Plan>,
    thread: usize,
    slots: Vec<Slot>,
    /// Connections to open as soon as fewer than `connects_per_thread` connects are in progress.
    ready: VecDeque<usize>,
    /// Connections to open again once their time comes; the times only grow along the queue,
    /// since each is "now" plus the same back-off.
    backoff: VecDeque<(usize, Instant)>,
    connecting: usize,
    /// Slots whose connect failed at least once; with none ever connected, all of them failing
    /// ends the thread early rather than retrying a dead address for the whole run.
    failed_slots: usize,
    /// What is left of this thread's `--messages`.
    budget: Option<u64>,
    /// Messages in flight on this thread's connections: once the run ends, or with `--messages`
    /// once the budget is spent, the thread ends when these are answered or lost.
    outstanding: u64,
    /// With `--rate`: the index in the whole run's schedule of the next message to hand out.
    next_due: u64,
    /// Handing out `--rate` messages stopped at `MAX_DUE_PER_TURN`, so poll must not wait.
    behind: bool,
    next_sweep: Instant,
    next_progress: Instant,
    progress: Option<Sender<Snapshot>>,
    tally: Tally,
    hist: Histogram<u64>,
    connect_error: Option<String>,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
}

/// Runs one load thread until the run's end, `--messages`, or giving up on connecting.
pub(crate) fn run(
    plan: Arc<Plan>,
    share: Share,
    progress: Option<Sender<Snapshot>>,
) -> Result<Outcome, LoadError> {
    let mut poll = Poll::new().map_err(|e| LoadError::internal("cannot create an epoll", e))?;
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut w = Worker::new(plan, share, progress)?;
    let mut now = Instant::now();
    while !w.finished(now) {
        w.housekeeping(poll.registry(), now);
        if let Err(e) = poll.poll(&mut events, Some(w.next_wakeup(now))) {
            if e.kind() != ErrorKind::Interrupted {
                return Err(LoadError::internal("cannot wait for socket readiness", e));
            }
        }
        for event in events.iter() {
            let idx = event.token().0;
            now = Instant::now();
            // A short read means drained unless the event also reports the end of the stream.
            let ending = event.is_read_closed() || event.is_error();
            match w.slots.get(idx).map(|s| s.phase) {
                Some(Phase::Connecting { .. }) => {
                    let readable = event.is_readable() || ending;
                    w.on_connect_ready(poll.registry(), idx, readable, ending, now)
                }
                Some(Phase::Open) => w.on_ready(poll.registry(), idx, ending, now),
                // Closed earlier in this batch: the event was for a socket that is gone.
                Some(Phase::Waiting) | None => {}
            }
        }
        now = Instant::now();
    }
    Ok(w.finish(now))
}

impl Worker {
    fn new(
        plan: Arc<Plan>,
        share: Share,
        progress: Option<Sender<Snapshot>>,
    ) -> Result<Worker, LoadError> {
        let slots = (0..share.conns)
            .map(|k| Slot::new(share.first_id + k as u64, &plan))
            .collect();
        Ok(Worker {
            thread: share.thread,
            slots,
            ready: (0..share.conns).collect(),
            backoff: VecDeque::new(),
            connecting: 0,
            failed_slots: 0,
            budget: share.budget,
            outstanding: 0,
            next_due: 0,
            behind: false,
            next_sweep: plan.start + plan.sweep,
            next_progress: plan.start + PROGRESS_INTERVAL,
            progress,
            tally: Tally::default(),
            hist: new_histogram()?,
            connect_error: None,
            read_buf: vec![0; READ_BUF],
            write_buf: vec![0; WRITE_BUF],
            plan,
        })
    }

    fn finished(&self, now: Instant) -> bool {
        let gave_up = self.tally.conns_connected == 0 && self.failed_slots == self.slots.len();
        let done = (now >= self.plan.end && !self.due_left()) || self.budget == Some(0);
        gave_up || (done && self.outstanding == 0) || now >= self.plan.wait_end
    }

    /// With `--rate`: messages due before the end may not all be handed out yet, e.g. when the
    /// loop woke after the end; `hand_out_due` then hands them out, and `startable` lets them go.
    /// `next_due` may name another thread's connection, which `hand_out_due` skips, so this can
    /// say true once more than needed, never less.
    fn due_left(&self) -> bool {
        let due = |s: &Schedule| s.due_at(self.next_due);
        !self.slots.is_empty()
            && self
                .plan
                .schedule
                .as_ref()
                .and_then(due)
                .is_some_and(|due| due < self.plan.end)
    }

    /// Everything driven by time rather than readiness.
    fn housekeeping(&mut self, reg: &Registry, now: Instant) {
        self.hand_out_due(reg, now);
        while let Some(&(idx, at)) = self.backoff.front() {
            if at > now {
                break;
            }
            self.backoff.pop_front();
            self.ready.push_back(idx);
        }
        // Once the run has ended a new connection would carry nothing.
        while self.connecting < self.plan.connects_per_thread && now < self.plan.end {
            let Some(idx) = self.ready.pop_front() else {
                break;
            };
            self.connect(reg, idx, now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + self.plan.sweep;
            self.sweep(now);
        }
        if let (Some(tx), true) = (&self.progress, now >= self.next_progress) {
            self.next_progress = now + PROGRESS_INTERVAL;
            // The receiver only goes away once every thread has ended; nothing to do if it did.
            let _ = tx.send(Snapshot {
                thread: self.thread,
                answered: self.tally.answered,
                errors: self.tally.errors(),
                hist: self.hist.clone(),
            });
        }
    }

    fn next_wakeup(&self, now: Instant) -> Duration {
        let end = match now < self.plan.end {
            true => self.plan.end,
            false => self.plan.wait_end,
        };
        let mut at = end.min(self.next_sweep);
        if self.progress.is_some() {
            at = at.min(self.next_progress);
        }
        if let Some(&(_, t)) = self.backoff.front() {
            at = at.min(t);
        }
        let due = |s: &Schedule| s.due_at(self.next_due);
        if let Some(due) = self
            .plan
            .schedule
            .as_ref()
            .and_then(due)
            .filter(|&due| due < self.plan.end)
        {
            at = at.min(due.checked_sub(SCHEDULE_LOOKAHEAD).unwrap_or(now));
        }
        if self.behind {
            at = now;
        }
        at.saturating_duration_since(now)
    }

    /// With `--rate`: makes due the messages of this thread's connections whose time comes within
    /// `SCHEDULE_LOOKAHEAD`.
    /// Message `i` of the run goes to connection `i % conns`; other threads' are skipped.
    fn hand_out_due(&mut self, reg: &Registry, now: Instant) {
        let Some(schedule) = self.plan.schedule else {
            return;
        };
        if self.slots.is_empty() {
            return;
        }
        let n = self.plan.conns;
        let lo = self.slots.first().map_or(0, |s| s.id);
        let hi = lo + self.slots.len() as u64;
        let mut handed = 0;
        self.behind = false;
        loop {
            let c = self.next_due % n;
            if c < lo || c >= hi {
                // Jump to this thread's first connection in this round or the next one.
                let skip = if c < lo { lo - c } else { n - c + lo };
                self.next_due = self.next_due.saturating_add(skip);
                continue;
            }
            // Not due yet, or never: after the run's end, or too far ahead to represent.
            match schedule.due_at(self.next_due) {
                Some(due) if due <= now + SCHEDULE_LOOKAHEAD && due < self.plan.end => {}
                _ => return,
            }
            if handed == MAX_DUE_PER_TURN {
                self.behind = true;
                return;
            }
            handed += 1;
            self.next_due += 1;
            let idx = (c - lo) as usize;
            self.slots[idx].due += 1;
            if self.slots[idx].phase == Phase::Open && !self.slots[idx].writable_interest {
                self.send(reg, idx, now);
            }
        }
    }

    fn connect(&mut self, reg: &Registry, idx: usize, now: Instant) {
        let mut sock = match TcpStream::connect(self.plan.addr) {
            Ok(sock) => sock,
            Err(e) => return self.connect_failed(idx, &e, now),
        };
        // WRITABLE reports the connect's outcome; it stays registered until output is drained.
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = reg.register(&mut sock, Token(idx), interest) {
            return self.connect_failed(idx, &e, now);
        }
        let slot = &mut self.slots[idx];
        slot.sock = Some(sock);
        slot.phase = Phase::Connecting { since: now };
        slot.writable_interest = true;
        self.connecting += 1;
    }

    /// A connecting socket is ready: connected, failed, or (spuriously) neither yet. `readable`
    /// and `ending` are what else the event reports: the server's first bytes or its close.
    fn on_connect_ready(
        &mut self,
        reg: &Registry,
        idx: usize,
        readable: bool,
        ending: bool,
        now: Instant,
    ) {
        let slot = &mut self.slots[idx];
        let Some(sock) = slot.sock.as_ref() else {
            return;
        };
        // mio's recipe: take_error first, then peer_addr says whether the connect completed.
        let outcome = match sock.take_error() {
            Ok(None) => sock.peer_addr().map(|_| ()),
            Ok(Some(e)) | Err(e) => Err(e),
        };
        let closed = match outcome {
            Ok(()) => None,
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            // A reset (a broken pipe once a FIN came first) is only reported once the connect has
            // succeeded, a refusal being `ConnectionRefused`: the server accepted the connection
            // and dropped it at once, which is its close, not a connect failure.
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                Some(e)
            }
            Err(e) => return self.connect_failed(idx, &e, now),
        };
        // Small messages must not wait for Nagle's algorithm; without it they still arrive.
        if let Err(e) = sock.set_nodelay(true) {
            log::debug!("conn {}: cannot set TCP_NODELAY: {e}", slot.id);
        }
        slot.phase = Phase::Open;
        if !slot.ever_connected {
            slot.ever_connected = true;
            self.tally.conns_connected += 1;
        }
        self.connecting -= 1;
        match closed {
            Some(e) => self.close(idx, Close::Peer(Some(e)), now),
            // Edge-triggered: what came with the connect is not reported again, so read it now.
            // It may be the server's close before the first message is even sent.
            None if readable => self.on_ready(reg, idx, ending, now),
            None => self.send(reg, idx, now),
        }
    }

    fn connect_failed(&mut self, idx: usize, e: &io::Error, now: Instant) {
        let slot = &mut self.slots[idx];
        log::debug!(
            "conn {}: cannot connect to {}: {e}",
            slot.id,
            self.plan.addr
        );
        if matches!(slot.phase, Phase::Connecting { .. }) {
            self.connecting -= 1;
        }
        if !slot.ever_failed {
            slot.ever_failed = true;
            self.failed_slots += 1;
        }
        self.outstanding = self
            .outstanding
            .saturating_sub(slot.reset_stream(&self.plan));
        self.tally.connect_failures += 1;
        // Past the warmup the server was asked for this connection and did not take it: the
        // load the run was to measure was not carried (a server gone, refusing, or its backlog
        // overflowing), so it is an error, as a lost answer is.
        if now >= self.plan.measure_start {
            self.tally.connect_errors += 1;
            let at = now.saturating_duration_since(self.plan.start);
            let what = format!(
                "conn {}: cannot connect to {} after the warmup: {}",
                slot.id,
                self.plan.addr,
                describe(e)
            );
            self.tally.sample(at, what);
        }
        self.connect_error.get_or_insert_with(|| describe(e));
        self.backoff.push_back((idx, now + RECONNECT_BACKOFF));
    }

    /// An open connection is ready: read the answers, then send what may be sent.
    fn on_ready(&mut self, reg: &Registry, idx: usize, stream_ending: bool, now: Instant) {
        if let Err(why) = self.receive(idx, stream_ending, now) {
            return self.close(idx, why, now);
        }
        if self.slots[idx].churn_due(&self.plan) {
            return self.close(idx, Close::Churn, now);
        }
        self.send(reg, idx, now);
    }

    /// Reads and checks answers until the socket is drained.
    fn receive(&mut self, idx: usize, stream_ending: bool, now: Instant) -> Result<(), Close> {
        let plan = &*self.plan;
        let slot = &mut self.slots[idx];
        let Some(sock) = slot.sock.as_mut() else {
            return Ok(());
        };
        // Answers read after the end are to messages sent before it.
        let measuring = now >= plan.measure_start;
        loop {
            let n = match sock.read(&mut self.read_buf) {
                Ok(0) => return Err(Close::Peer(None)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Close::Peer(Some(e))),
            };
            if measuring {
                self.tally.received_bytes += n as u64;
            }
            let front = slot.in_flight.front().map_or(slot.next_seq, |m| m.seq);
            let fed = slot.checker.feed(
                &plan.proto,
                slot.id,
                front,
                slot.in_flight.len(),
                &self.read_buf[..n],
            );
            if fed.completed > 0 {
                slot.answered_here = true;
            }
            for m in slot
                .in_flight
                .drain(..fed.completed.min(slot.in_flight.len()))
            {
                self.tally.answered += 1;
                self.outstanding = self.outstanding.saturating_sub(1);
                if m.measured {
                    self.tally.messages += 1;
                    let us = now.saturating_duration_since(m.origin).as_micros();
                    self.hist
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                }
            }
            if let Some((fault, what)) = fed.error {
                return Err(Close::Wrong(fault, what));
            }
            // The kernel gave less than asked, so it had no more: another edge-triggered event
            // comes when more arrives. Not so for an end of stream that is already queued.
            if n < self.read_buf.len() && !stream_ending {
                return Ok(());
            }
        }
    }

    /// Writes the unwritten rest of the newest message and any messages that may start, until
    /// there is nothing more or the socket is full; WRITABLE is registered only in the latter case.
    fn send(&mut self, reg: &Registry, idx: usize, now: Instant) {
        match self.write_out(idx, now) {
            Ok(wants_writable) => {
                if let Err(e) = self.set_writable(reg, idx, wants_writable) {
                    self.close(idx, Close::Peer(Some(e)), now);
                }
            }
            Err(why) => self.close(idx, why, now),
        }
    }

    /// The writing half of `send`: returns whether output is left pending.
    fn write_out(&mut self, idx: usize, now: Instant) -> Result<bool, Close> {
        let plan = &*self.plan;
        let measuring = now >= plan.measure_start && now < plan.end;
        let slot = &mut self.slots[idx];
        loop {
            let start = slot.startable(plan, now, self.budget);
            let n = slot.fill(plan, start, &mut self.write_buf);
            let Some(sock) = slot.sock.as_mut().filter(|_| n > 0) else {
                return Ok(false);
            };
            match sock.write(&self.write_buf[..n]) {
                Ok(0) => return Err(Close::Peer(Some(ErrorKind::WriteZero.into()))),
                Ok(written) => {
                    if measuring {
                        self.tally.sent_bytes += written as u64;
                    }
                    self.outstanding += slot.commit(plan, written, now, &mut self.budget);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::Peer(Some(e))),
            }
        }
    }

    /// Registers WRITABLE exactly while output is pending (a reregister only on a change).
    fn set_writable(&mut self, reg: &Registry, idx: usize, wants: bool) -> io::Result<()> {
        let slot = &mut self.slots[idx];
        let Some(sock) = slot.sock.as_mut() else {
            return Ok(());
        };
        if slot.writable_interest != wants {
            let interest = match wants {
                true => Interest::READABLE | Interest::WRITABLE,
                false => Interest::READABLE,
            };
            reg.reregister(sock, Token(idx), interest)?;
            slot.writable_interest = wants;
        }
        Ok(())
    }

    /// Finds connects and answers that took longer than `--timeout`.
    fn sweep(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            match slot.phase {
                Phase::Connecting { since } if now.duration_since(since) >= timeout => {
                    self.connect_failed(idx, &ErrorKind::TimedOut.into(), now);
                }
                Phase::Open => {
                    if let Some(m) = slot.in_flight.front() {
                        if now.duration_since(m.sent_at) >= timeout {
                            self.close(idx, Close::Timeout, now);
                        }
                    }
                }
                Phase::Connecting { .. } | Phase::Waiting => {}
            }
        }
    }

    /// Closes a connection, counts why, and queues it to be opened again while the run lasts.
    fn close(&mut self, idx: usize, why: Close, now: Instant) {
        let plan = &*self.plan;
        let slot = &mut self.slots[idx];
        let at = now.saturating_duration_since(plan.start);
        let (id, unanswered) = (slot.id, slot.in_flight.len());
        let mut back_off = true;
        match why {
            Close::Wrong(fault, what) => {
                match fault {
                    Fault::Wrong => self.tally.wrong += 1,
                    Fault::BadStatus => self.tally.bad_status += 1,
                    Fault::ConnectionClose => self.tally.connection_close += 1,
                }
                self.tally.sample(at, what);
            }
            Close::Timeout => {
                back_off = false;
                timed_out(&mut self.tally, &mut self.hist, slot, plan, now);
            }
            // A close that loses messages, or that comes before the server answered anything on
            // the connection (it refused to serve it: a proxy whose backend is down, a restart),
            // fails the clients, so it is an error even with no message sent yet (`--rate`).
            Close::Peer(e) if unanswered > 0 || !slot.answered_here => {
                self.tally.closed_early += 1;
                let how = match e {
                    None => "the server closed the connection".to_string(),
                    Some(e) => format!("the connection failed ({})", describe(&e)),
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
            Close::Peer(_) => self.tally.closed_idle += 1,
            Close::Churn => back_off = false,
        }
        // Dropping the socket closes it, which also takes it out of the epoll set.
        self.outstanding = self.outstanding.saturating_sub(slot.reset_stream(plan));
        // Once the run has ended it stays closed: it would carry nothing.
        if now >= plan.end {
            return;
        }
        self.tally.reconnects += 1;
        if back_off {
            self.backoff.push_back((idx, now + RECONNECT_BACKOFF));
        } else {
            self.ready.push_back(idx);
        }
    }

    /// With `--rate`: counts the messages due in the measured window that were never sent, their
    /// connection still waiting for answers, closed or connecting. The open loop's schedule is
    /// the load asked for, so each is an error, unless `--messages` did not ask for it.
    fn count_not_sent(&mut self) {
        let plan = &*self.plan;
        let Some(schedule) = &plan.schedule else {
            return;
        };
        let (first, end) = (
            schedule.first_due_from(plan.measure_start),
            schedule.first_due_from(plan.end),
        );
        let mut not_sent: u64 = 0;
        for slot in &self.slots {
            // A connection sends its messages in order: those from `issued` on were never sent.
            let from = slot.issued.max(schedule.share_below(first, slot.id));
            let due = schedule.share_below(end, slot.id);
            not_sent = not_sent.saturating_add(due.saturating_sub(from));
        }
        if let Some(left) = self.budget {
            not_sent = not_sent.min(left);
        }
        if not_sent > 0 {
            self.tally.not_sent += not_sent;
            let what = format!(
                "{not_sent} message(s) due by the end were never sent: their connections were \
                 still waiting for answers, closed or connecting"
            );
            self.tally
                .sample(plan.end.saturating_duration_since(plan.start), what);
        }
    }

    fn finish(mut self, now: Instant) -> Outcome {
        self.tally.conns_open_at_end =
            self.slots.iter().filter(|s| s.phase == Phase::Open).count() as u64;
        // Left only when `wait_end` came: each has waited at least `--timeout`, as the sweep would
        // have found had it come round once more.
        for slot in self.slots.iter().filter(|s| !s.in_flight.is_empty()) {
            timed_out(&mut self.tally, &mut self.hist, slot, &self.plan, now);
        }
        self.count_not_sent();
        // Dropping the slots closes every socket.
        drop(std::mem::take(&mut self.slots));
        Outcome {
            tally: self.tally,
            hist: self.hist,
            ended: now.min(self.plan.end),
            connect_error: self.connect_error,
        }
    }
}

/// Counts a connection whose oldest message waited `--timeout` without a complete answer, and
/// records how long its measured messages have waited so far: their answers never came, but a
/// stalled server must still show in the latency figures, at least by this much.
fn timed_out(tally: &mut Tally, hist: &mut Histogram<u64>, slot: &Slot, plan: &Plan, now: Instant) {
    tally.timeouts += 1;
    if let Some(m) = slot.in_flight.front() {
        let what = format!(
            "conn {}: no complete answer to message {} within {:?} ({} of its {} payload bytes received)",
            slot.id,
            m.seq,
            plan.timeout,
            slot.checker.partial(&plan.proto),
            plan.proto.size()
        );
        tally.sample(now.saturating_duration_since(plan.start), what);
    }
    for m in slot.in_flight.iter().filter(|m| m.measured) {
        let us = now.saturating_duration_since(m.origin).as_micros();
        hist.saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
    }
}
