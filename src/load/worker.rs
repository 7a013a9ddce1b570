//! One load thread: a mio loop over its share of the connections, from first connect to the end.
//!
//! The loop fits on a screen: housekeeping (connects, the `--rate` schedule, timeouts), poll, then
//! a match on the connection's phase. It composes the rooms beside it (`Dialer` opens
//! connections, `Cursor` hands out the schedule, `Record` counts, `Feed` reports progress) and
//! keeps the path of a connection's bytes. It must never block, never read or write more than the
//! messages in flight call for, and always stop by itself: at the run's end it starts nothing
//! more (with `--rate`, nothing but the messages that fell due before the end) and waits at most
//! `--timeout` for the answers still due, which are timeouts past that.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use rustls::ClientConnection;

use super::conn::{Phase, Slot};
use super::dial::{connect_failure, Dialed, Dialer};
use super::error::LoadError;
use super::fault::Fault;
use super::plan::Plan;
use super::progress::{Feed, Snapshot};
use super::record::{asked, Close, Outcome, Record};
use super::schedule::Cursor;
use super::tls;
use crate::tls_client::describe_handshake_error;

/// Bytes asked of one read(2), into the loop's one shared buffer: connections have none.
const READ_BUF: usize = 64 * 1024;
/// Bytes generated for one write(2), into the loop's one shared buffer.
const WRITE_BUF: usize = 64 * 1024;
/// Readiness events taken from one poll.
const EVENTS_CAPACITY: usize = 1024;

/// The connections and budget one thread owns.
pub(crate) struct Share {
    pub thread: usize,
    /// Id of the first connection; the thread owns `first_id..first_id + conns`.
    pub first_id: u64,
    pub conns: usize,
    /// This thread's part of `--messages`.
    pub budget: Option<u64>,
}

struct Worker {
    plan: Arc<Plan>,
    thread: usize,
    slots: Vec<Slot>,
    dial: Dialer,
    /// With `--rate`: this thread's place in the schedule.
    cursor: Option<Cursor>,
    /// What is left of this thread's `--messages`.
    budget: Option<u64>,
    /// Messages in flight on this thread's connections: once the run ends, or with `--messages`
    /// once the budget is spent, the thread ends when these are answered or lost.
    outstanding: u64,
    next_sweep: Instant,
    feed: Feed,
    record: Record,
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
                Some(Phase::Handshaking { .. }) => w.on_handshake_ready(poll.registry(), idx, now),
                Some(Phase::Open | Phase::Upgrading { .. } | Phase::Closing { .. }) => {
                    w.on_ready(poll.registry(), idx, ending, now)
                }
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
            dial: Dialer::new(share.conns, plan.connects_per_thread),
            cursor: plan
                .schedule
                .map(|s| Cursor::new(s, share.first_id, share.conns)),
            budget: share.budget,
            outstanding: 0,
            next_sweep: plan.start + plan.sweep,
            feed: Feed::new(progress, plan.start),
            record: Record::new()?,
            read_buf: vec![0; READ_BUF],
            write_buf: vec![0; WRITE_BUF],
            plan,
        })
    }

    fn finished(&self, now: Instant) -> bool {
        let gave_up = !self.record.connected_any() && self.dial.all_failed();
        // With `--rate`, messages due before the end may not all be handed out yet, e.g. when
        // the loop woke after the end: `hand_out_due` hands them out, and `startable` lets them go.
        let due_left = self
            .cursor
            .as_ref()
            .is_some_and(|c| c.left_before(self.plan.end));
        let done = (now >= self.plan.end && !due_left) || self.budget == Some(0);
        gave_up || (done && self.outstanding == 0) || now >= self.plan.wait_end
    }

    /// Everything driven by time rather than readiness.
    fn housekeeping(&mut self, reg: &Registry, now: Instant) {
        self.hand_out_due(reg, now);
        // Once the run has ended a new connection would carry nothing.
        while now < self.plan.end {
            let Some(idx) = self.dial.next(now) else {
                break;
            };
            self.connect(reg, idx, now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + self.plan.sweep;
            self.sweep(now);
        }
        let (record, thread) = (&self.record, self.thread);
        self.feed.tick(now, || record.snapshot(thread));
    }

    fn next_wakeup(&self, now: Instant) -> Duration {
        let end = match now < self.plan.end {
            true => self.plan.end,
            false => self.plan.wait_end,
        };
        let due = self
            .cursor
            .as_ref()
            .and_then(|c| c.wakeup(now, self.plan.end));
        [self.feed.wakeup(), self.dial.wakeup(), due]
            .into_iter()
            .flatten()
            .fold(end.min(self.next_sweep), Instant::min)
            .saturating_duration_since(now)
    }

    /// With `--rate`: makes due the messages of this thread's connections whose time has come, and
    /// sends them on the connections that can.
    fn hand_out_due(&mut self, reg: &Registry, now: Instant) {
        let end = self.plan.end;
        if let Some(cursor) = &mut self.cursor {
            cursor.begin_turn();
        }
        while let Some(idx) = self.cursor.as_mut().and_then(|c| c.next_due(now, end)) {
            let slot = &mut self.slots[idx];
            slot.due += 1;
            if slot.phase == Phase::Open && !slot.writable_interest {
                self.send(reg, idx, now);
            }
        }
    }

    fn connect(&mut self, reg: &Registry, idx: usize, now: Instant) {
        match self.dial.open(self.plan.addr, reg, idx) {
            Ok(sock) => {
                let slot = &mut self.slots[idx];
                slot.sock = Some(sock);
                slot.phase = Phase::Connecting { since: now };
                slot.writable_interest = true;
            }
            Err(e) => self.connect_failed(idx, &e, now),
        }
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
        let since = match slot.phase {
            Phase::Connecting { since } => since,
            _ => now,
        };
        let closed = match self.dial.outcome(sock, self.plan.tls.is_some()) {
            Dialed::Pending => return,
            Dialed::Connected => None,
            Dialed::ClosedAtOnce(e) => Some(e),
            Dialed::Failed(e) => return self.connect_failed(idx, &e, now),
        };
        // Small messages must not wait for Nagle's algorithm; without it they still arrive.
        if let Err(e) = sock.set_nodelay(true) {
            log::debug!("conn {}: cannot set TCP_NODELAY: {e}", slot.id);
        }
        if let (Some((config, name)), None) = (&self.plan.tls, &closed) {
            match ClientConnection::new(Arc::clone(config), name.clone()) {
                Ok(tls) => slot.tls = Some(Box::new(tls)),
                Err(e) => {
                    let e = io::Error::other(describe_handshake_error(&e));
                    return self.connect_failed(idx, &e, now);
                }
            }
            slot.phase = Phase::Handshaking { since };
            return self.on_handshake_ready(reg, idx, now);
        }
        self.established(reg, idx, closed, readable, ending, now);
    }

    /// `--tls`: the handshake moves on; once done the connection is established, and the
    /// plaintext rustls may already hold is read, since no event will come for it.
    fn on_handshake_ready(&mut self, reg: &Registry, idx: usize, now: Instant) {
        let slot = &mut self.slots[idx];
        let (Some(tls), Some(sock), Phase::Handshaking { since }) =
            (slot.tls.as_deref_mut(), slot.sock.as_mut(), slot.phase)
        else {
            return;
        };
        match tls::handshake(tls, sock) {
            Ok(true) => {
                self.dial.handshaken();
                self.record.handshake(since, now, &self.plan);
                self.established(reg, idx, None, true, false, now);
            }
            Ok(false) => {
                let wants = tls.wants_write();
                if let Err(e) = self.set_writable(reg, idx, wants) {
                    self.connect_failed(idx, &e, now);
                }
            }
            Err(e) => self.connect_failed(idx, &e, now),
        }
    }

    /// A connection is established (connected, and with `--tls` its handshake done), or was
    /// closed by the server at once (`closed`): it opens for messages.
    fn established(
        &mut self,
        reg: &Registry,
        idx: usize,
        closed: Option<io::Error>,
        readable: bool,
        ending: bool,
        now: Instant,
    ) {
        let slot = &mut self.slots[idx];
        slot.phase = Phase::Open;
        self.record.connected(!slot.ever_connected);
        slot.ever_connected = true;
        if closed.is_none() {
            if let Err(why) = self.upgrade(idx, now) {
                return self.close(idx, why, now);
            }
        }
        match closed {
            Some(e) => self.close(idx, Close::Peer(Some(e)), now),
            // Edge-triggered: what came with the connect is not reported again, so read it now.
            // It may be the server's close before the first message is even sent.
            None if readable => self.on_ready(reg, idx, ending, now),
            None => self.send(reg, idx, now),
        }
    }

    /// WebSocket: writes the upgrade request of a connection just connected; its messages wait
    /// for the `101` (`Phase::Upgrading`). Other framings have nothing to write first.
    fn upgrade(&mut self, idx: usize, now: Instant) -> Result<(), Close> {
        let plan = &*self.plan;
        let slot = &mut self.slots[idx];
        let (Some(request), Some(sock)) = (slot.checker.upgrade_request(plan.addr), &mut slot.sock)
        else {
            return Ok(());
        };
        // A new connection's send buffer (4 KiB at the least on Linux) takes the request's ~170
        // bytes whole: a short write means the connection failed, not that it is full. Over TLS
        // rustls takes it whole, and what the socket does not is sent with the messages.
        let written = match slot.tls.as_deref_mut() {
            Some(tls) => tls.writer().write_all(&request).map(|()| request.len()),
            None => loop {
                match sock.write(&request) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    other => break other,
                }
            },
        };
        match written {
            Ok(n) if n == request.len() => {}
            Ok(n) => {
                let why = format!("only {n} of the upgrade request's {} bytes", request.len());
                return Err(Close::Peer(Some(io::Error::new(ErrorKind::WriteZero, why))));
            }
            Err(e) => return Err(Close::Peer(Some(e))),
        }
        if now >= plan.measure_start && now < plan.end {
            self.record.sent(request.len());
        }
        slot.phase = Phase::Upgrading { since: now };
        Ok(())
    }

    fn connect_failed(&mut self, idx: usize, e: &io::Error, now: Instant) {
        let plan = &*self.plan;
        let slot = &mut self.slots[idx];
        log::debug!("conn {}: cannot connect to {}: {e}", slot.id, plan.addr);
        let handshake = matches!(slot.phase, Phase::Handshaking { .. });
        let connecting = handshake || matches!(slot.phase, Phase::Connecting { .. });
        let why = || connect_failure(e, handshake);
        self.dial
            .failed(idx, connecting, !slot.ever_failed, why, now);
        slot.ever_failed = true;
        self.outstanding = self.outstanding.saturating_sub(slot.reset_stream(plan));
        self.record.connect_failed(slot.id, plan, e, now);
    }

    /// An open connection is ready: read the answers, then send what may be sent.
    fn on_ready(&mut self, reg: &Registry, idx: usize, stream_ending: bool, now: Instant) {
        if let Err(why) = self.receive(idx, stream_ending, now) {
            return self.close(idx, why, now);
        }
        match self.slots[idx].phase {
            // Nothing more goes on a connection the server is closing.
            Phase::Closing { .. } => {}
            _ if self.slots[idx].churn_due(&self.plan) => self.close(idx, Close::Churn, now),
            _ => self.send(reg, idx, now),
        }
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
        let mut tls_drained = false;
        loop {
            let read = match slot.tls.as_deref_mut() {
                Some(tls) => tls::read(
                    tls,
                    sock,
                    &mut self.read_buf,
                    !stream_ending,
                    &mut tls_drained,
                ),
                None => sock.read(&mut self.read_buf),
            };
            let n = match read {
                Ok(0) => return Err(Close::Peer(None)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Close::Peer(Some(e))),
            };
            if measuring {
                self.record.received(n);
            }
            if let Phase::Closing { .. } = slot.phase {
                let what = format!(
                    "conn {}: {n} byte(s) arrived after an answer that said `Connection: close`",
                    slot.id
                );
                return Err(Close::Wrong(Fault::Wrong, what));
            }
            let front = slot.in_flight.front().map_or(slot.next_seq, |m| m.seq);
            let fed = slot.checker.feed(
                &plan.proto,
                slot.id,
                front,
                slot.in_flight.len(),
                &self.read_buf[..n],
                self.record.statuses(),
            );
            if fed.completed > 0 {
                slot.answered_here = true;
            }
            for m in slot
                .in_flight
                .drain(..fed.completed.min(slot.in_flight.len()))
            {
                self.record.answered(&m, now);
                self.outstanding = self.outstanding.saturating_sub(1);
            }
            if let Some((fault, what)) = fed.error {
                return Err(Close::Wrong(fault, what));
            }
            if fed.upgraded {
                slot.phase = Phase::Open;
            }
            if fed.closing {
                // Asked by --query: the server's close comes next, read as an end of stream.
                self.record.asked_close();
                slot.phase = Phase::Closing { since: now };
            }
            if let Some(code) = fed.closed {
                return Err(Close::WebSocket(code));
            }
            // The kernel gave less than asked, so it had no more: another edge-triggered event
            // comes when more arrives. Not so for an end of stream that is already queued, nor
            // over TLS, where a short read is one record's plaintext (`tls::read` tells there).
            if n < self.read_buf.len() && !stream_ending && slot.tls.is_none() {
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
            // Over TLS, new plaintext waits until rustls's records are all out: what it buffers
            // stays one write's worth.
            if let (Some(tls), Some(sock)) = (slot.tls.as_deref_mut(), slot.sock.as_mut()) {
                match tls::flush(tls, sock) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                    Err(e) => return Err(Close::Peer(Some(e))),
                }
            }
            let start = slot.startable(plan, now, self.budget);
            let n = slot.fill(plan, start, &mut self.write_buf);
            let Some(sock) = slot.sock.as_mut().filter(|_| n > 0) else {
                return Ok(false);
            };
            let wrote = match slot.tls.as_deref_mut() {
                Some(tls) => tls.writer().write(&self.write_buf[..n]),
                None => sock.write(&self.write_buf[..n]),
            };
            match wrote {
                Ok(0) => return Err(Close::Peer(Some(ErrorKind::WriteZero.into()))),
                Ok(written) => {
                    if measuring {
                        self.record.sent(written);
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
                Phase::Upgrading { since } | Phase::Closing { since }
                    if now.duration_since(since) >= timeout =>
                {
                    self.close(idx, Close::Timeout, now);
                }
                Phase::Handshaking { since } if now.duration_since(since) >= timeout => {
                    let why = "no TLS handshake within --timeout";
                    self.connect_failed(idx, &io::Error::new(ErrorKind::TimedOut, why), now);
                }
                Phase::Open => {
                    if let Some(m) = slot.in_flight.front() {
                        if now.duration_since(m.sent_at) >= timeout {
                            self.close(idx, Close::Timeout, now);
                        }
                    }
                }
                Phase::Connecting { .. }
                | Phase::Handshaking { .. }
                | Phase::Upgrading { .. }
                | Phase::Closing { .. }
                | Phase::Waiting => {}
            }
        }
    }

    /// Closes a connection, counts why, and queues it to be opened again while the run lasts.
    fn close(&mut self, idx: usize, why: Close, now: Instant) {
        let plan = &*self.plan;
        let slot = &mut self.slots[idx];
        let why = asked(slot, plan, why);
        // A timeout was waited for already, and churn or a fault asked for is no failure: none
        // backs off.
        let back_off = !matches!(why, Close::Timeout | Close::Churn | Close::Asked(_));
        if let (Some(tls), Some(sock)) = (slot.tls.as_deref_mut(), slot.sock.as_mut()) {
            tls::close_notify(tls, sock);
        }
        self.record.closed(slot, why, plan, now);
        // Dropping the socket closes it, which also takes it out of the epoll set.
        self.outstanding = self.outstanding.saturating_sub(slot.reset_stream(plan));
        // Once the run has ended it stays closed: it would carry nothing.
        if now >= plan.end {
            return;
        }
        self.record.reconnect();
        self.dial.again(idx, back_off, now);
    }

    fn finish(mut self, now: Instant) -> Outcome {
        let plan = &*self.plan;
        let open = self.slots.iter().filter(|s| s.phase == Phase::Open).count() as u64;
        // Left only when `wait_end` came: each has waited at least `--timeout`, as the sweep would
        // have found had it come round once more.
        for slot in self.slots.iter().filter(|s| !s.in_flight.is_empty()) {
            self.record.timed_out(slot, plan, now);
        }
        // With `--rate`: the messages due in the measured window that were never sent, their
        // connection still waiting for answers, closed or connecting. The open loop's schedule is
        // the load asked for, so each is an error, unless `--messages` did not ask for it.
        if let Some(schedule) = &plan.schedule {
            let conns = self.slots.iter().map(|s| (s.id, s.issued));
            let mut not_sent = schedule.not_sent(plan.measure_start, plan.end, conns);
            if let Some(left) = self.budget {
                not_sent = not_sent.min(left);
            }
            let at = plan.end.saturating_duration_since(plan.start);
            self.record.not_sent(not_sent, at);
        }
        // Dropping the slots closes every socket.
        drop(std::mem::take(&mut self.slots));
        let connect_error = self.dial.into_first_error();
        self.record.finish(open, now.min(plan.end), connect_error)
    }
}
