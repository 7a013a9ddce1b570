//! What a connection's timer coming due does: the TLS handshake's end, the idle timeout (after
//! the protocol's last word, if it has one), the end of a lingering close, a protocol's
//! deadline, the drain's looks. Only
//! on the timer, never on the message path; it must never close a connection before its time,
//! nor leave one without a timer while it waits for one.

use std::time::Instant;

use log::debug;

use super::{linger, Connections};
use crate::config::LINGER;
use crate::connection::{Input, Phase};
use crate::event_loop::drain::Look;
use crate::framing::{Answers, Next, Origin, Protocol};
use crate::metrics::CloseReason;

impl<P: Protocol> Connections<P> {
    /// Looks at the connections whose timer came due by `now`: closes the idle, ends lingering
    /// closes, passes protocol deadlines on, and `draining`, parts those idle at a message
    /// boundary; any other gets its next timer.
    pub fn expire_timers(&mut self, now: Instant, draining: bool) {
        while let Some(entry) = self.timers.pop_due(now) {
            let key = entry.key;
            let Some(conn) = self.slots.get_mut(key) else {
                continue;
            };
            if !entry.is_for(conn.id, conn.timer_at) || conn.phase == Phase::Dead {
                continue;
            }
            conn.timer_at = None;
            let handshake_end = conn.transport.handshake_deadline();
            let linger_end = (conn.phase == Phase::Lingering).then(|| conn.last_active + LINGER);
            let idle_end = self
                .idle_timeout
                .and_then(|idle| conn.last_active.checked_add(idle));
            // A protocol's deadline concerns what it still awaits from the client, which ends
            // once the connection stops reading (closing, lingering, peer done).
            let protocol_end = matches!(conn.phase, Phase::Open | Phase::Paused | Phase::Waiting)
                .then(|| self.protocol.deadline(&conn.session))
                .flatten();
            let part_at = draining
                .then(|| self.drain.look_at(&self.protocol, conn, now))
                .flatten();
            if handshake_end.is_some_and(|end| end <= now) {
                debug!("the TLS handshake with {} timed out", conn.peer());
                self.close(key, CloseReason::HandshakeTimeout);
            } else if linger_end.is_some_and(|until| until <= now) {
                // Whatever the reason, close() keeps the protocol's.
                self.close(key, CloseReason::Client);
            } else if idle_end.is_some_and(|end| end <= now) {
                self.close_idle(key);
            } else if protocol_end.is_some_and(|end| end <= now) {
                self.on_protocol_deadline(key);
            } else if part_at.is_some_and(|at| at <= now) {
                self.part(key);
            } else if let Some(next) = [handshake_end, linger_end, idle_end, protocol_end, part_at]
                .into_iter()
                .flatten()
                .min()
            {
                self.timers.set(&mut conn.timer_at, next, key, entry.id);
            }
        }
    }

    /// The drain begins: the protocol hears it, and every connection gets a look.
    pub fn start_drain(&mut self, now: Instant) {
        self.protocol.on_drain();
        self.drain
            .start(&self.protocol, &mut self.slots, &mut self.timers, now);
    }

    /// Closes a connection idle at a message boundary during the drain with our FIN and the
    /// lingering close after it, as after a protocol's last word: the client reads every answer
    /// and then the end of the stream; or reads and answers first what it finds waiting.
    fn part(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        match self.drain.look(conn, self.now) {
            Look::Part => {
                debug!("closing {} between messages for the drain", conn.peer());
                // Reading as before, nothing to write: the poll interest stays.
                linger(conn, key, self.now, &mut self.ready, &mut self.timers);
            }
            Look::ReadFirst { again } => {
                conn.input = Input::ReadyUntilWouldBlock;
                self.ready.queue(conn, key);
                self.timers.set(&mut conn.timer_at, again, key, conn.id);
            }
        }
    }

    /// The protocol's own deadline passed (e.g. a request head that did not complete in time):
    /// its answer goes out like any other.
    fn on_protocol_deadline(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        self.answers.clear();
        let room = self.max_pending.saturating_sub(conn.pending());
        let next = self.protocol.on_deadline(
            &mut conn.session,
            &mut Answers::new(&mut self.answers, room, self.now),
            Some(Origin::new(conn.id, &conn.socket).with_identity(conn.transport.peer_identity())),
        );
        if !self.answers.is_empty() {
            // The server's word: the idle timeout runs again from it.
            conn.last_active = self.now;
        }
        if conn.phase == Phase::Waiting && next != Next::Wait {
            // The wait is over: read again, first what arrived meanwhile.
            conn.phase = Phase::Open;
            if conn.has_input::<false>() {
                self.ready.queue(conn, key);
            }
        }
        self.timers.arm_deadline(&self.protocol, conn, key);
        // This entry was the connection's timer: without another deadline, the idle timeout
        // must still come (the protocol's deadlines are not its only ones).
        if let Some(idle_end) =
            (self.idle_timeout).and_then(|idle| conn.last_active.checked_add(idle))
        {
            self.timers.arm(&mut conn.timer_at, idle_end, key, conn.id);
        }
        self.answer::<false>(key, next);
    }

    /// Silent for the idle timeout: closed, after the protocol's last word if it has one (a
    /// WebSocket's close frame) and the connection can still take it (reading, nothing waiting
    /// to be written); otherwise at once.
    #[cold]
    fn close_idle(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        if !matches!(conn.phase, Phase::Open | Phase::Waiting) || conn.pending() > 0 {
            return self.close(key, CloseReason::Idle);
        }
        self.answers.clear();
        let room = self.max_pending;
        let mut answers = Answers::new(&mut self.answers, room, self.now);
        self.protocol.on_idle(&mut conn.session, &mut answers);
        if self.answers.is_empty() {
            return self.close(key, CloseReason::Idle);
        }
        self.answer::<false>(key, Next::Close);
        // A last word the socket did not take (a peer that stopped reading) waits at most a
        // linger; then the idle check finds the connection closing and closes it.
        if let Some(conn) = self.slots.get_mut(key) {
            if conn.phase == Phase::Closing {
                let until = self.now + LINGER;
                self.timers.arm(&mut conn.timer_at, until, key, conn.id);
            }
        }
    }
}
