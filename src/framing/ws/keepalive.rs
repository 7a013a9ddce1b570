//! Keep-alive (`--ws-ping`) and the idle timeout's last word: a WebSocket silent for the ping
//! interval gets one ping, on its protocol deadline; one still silent at the loop's idle timeout
//! (which runs again from the ping) gets a close 1001 before the loop closes it.
//!
//! It costs a WebSocket a store per read, and a connection that never upgraded nothing; it must
//! never allocate, never ping a session twice for one silence (its deadline would be due at
//! once, again and again), and never send anything once our close is out.

use std::time::Instant;

use super::frame::{encode_header, Opcode};
use super::{Ending, WebSocket, WsSession, GOING_AWAY};
use crate::framing::Answers;

/// The keep-alive ping's payload: small, and telling who sent it to one reading a capture. Any
/// frame from the client answers it, a pong with any payload included.
pub const PING_PAYLOAD: &[u8] = b"saythat";

impl WebSocket {
    /// When the session's keep-alive ping is due: `--ws-ping` after the client's last bytes,
    /// unless it was pinged since, or a read waits for room (the client is not silent: we are
    /// not reading it).
    pub(super) fn ping_at(&self, s: &WsSession) -> Option<Instant> {
        let every = self.ping?;
        if s.pinged || !s.held.is_empty() {
            return None;
        }
        s.heard?.checked_add(every)
    }

    /// Pings the session if its ping is due by now (a deadline may come early or for another
    /// reason).
    pub(super) fn ping_if_due(&mut self, s: &mut WsSession, answers: &mut Answers<'_>) {
        if self.ping_at(s).is_some_and(|at| at <= answers.now()) {
            let (head, used) = encode_header(true, Opcode::Ping, PING_PAYLOAD.len() as u64);
            answers.push(&head[..used]);
            answers.push(PING_PAYLOAD);
            s.pinged = true;
        }
    }

    /// The loop's idle timeout: a close 1001, the RFC 6455 §7.4.1 code for an endpoint going
    /// away, which Jetty also sends at its idle timeout (Python's `websockets` sends 1011, an
    /// internal error, which it is not), then the lingering close without waiting for the
    /// client's close: it has not said a thing since the ping. Nothing once our close is out.
    pub(super) fn idle_close(&mut self, s: &mut WsSession, answers: &mut Answers<'_>) {
        if s.closing.is_some() {
            return;
        }
        let (ending, reason) = match s.pinged {
            true => (Ending::Unanswered, "ping unanswered"),
            false => (Ending::Idle, "idle timeout"),
        };
        self.close_frame(answers, GOING_AWAY, reason);
        s.ending = ending;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::framing::ws::frame::client_frame;
    use crate::framing::{CloseReason, Next, Protocol};

    const EVERY: Duration = Duration::from_secs(10);

    fn cf(first: u8, payload: &[u8]) -> Vec<u8> {
        client_frame(first, payload, [1, 2, 3, 4])
    }

    fn close(code: u16, reason: &str) -> Vec<u8> {
        let mut out = vec![0x88, 2 + reason.len() as u8];
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
        out
    }

    /// Calls `on_deadline` at `at`: what it answered, and what it returned.
    fn deadline_at(ws: &mut WebSocket, s: &mut WsSession, at: Instant) -> (Vec<u8>, Next) {
        let mut out = Vec::new();
        let next = ws.on_deadline(s, &mut Answers::new(&mut out, usize::MAX, at), None);
        (out, next)
    }

    fn idle_at(ws: &mut WebSocket, s: &mut WsSession, at: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        ws.on_idle(s, &mut Answers::new(&mut out, usize::MAX, at));
        out
    }

    #[test]
    fn a_silent_session_is_pinged_once_and_any_frame_starts_the_silence_again() {
        let mut ws = WebSocket::new(b"", 100).unwrap().with_ping(Some(EVERY));
        let t0 = Instant::now();
        let mut s = ws.open(t0);
        assert_eq!(ws.deadline(&s), Some(t0 + EVERY));
        // Early: nothing.
        assert_eq!(
            deadline_at(&mut ws, &mut s, t0 + EVERY / 2),
            (vec![], Next::Continue)
        );
        let ping = [&[0x89, 7][..], PING_PAYLOAD].concat();
        let late = t0 + EVERY + Duration::from_millis(3);
        assert_eq!(
            deadline_at(&mut ws, &mut s, late),
            (ping.clone(), Next::Continue)
        );
        // Pinged: no deadline until the client says something, so none is due again at once.
        assert_eq!(ws.deadline(&s), None);
        assert_eq!(deadline_at(&mut ws, &mut s, late), (vec![], Next::Continue));
        // A pong (any frame would do) answers it; the next silence is counted from it.
        let t1 = late + Duration::from_secs(1);
        let mut out = Vec::new();
        let next = ws.on_read(
            &mut s,
            &cf(0x8A, PING_PAYLOAD),
            &mut Answers::new(&mut out, usize::MAX, t1),
        );
        assert_eq!((out, next), (vec![], Next::Continue));
        assert_eq!(ws.deadline(&s), Some(t1 + EVERY));
        assert_eq!(
            deadline_at(&mut ws, &mut s, t1 + EVERY),
            (ping, Next::Continue)
        );
    }

    #[test]
    fn without_ping_nothing_is_due_and_a_session_from_default_is_never_pinged() {
        let mut ws = WebSocket::new(b"", 100).unwrap();
        let s = ws.open(Instant::now());
        assert_eq!(ws.deadline(&s), None);
        let ws = WebSocket::new(b"", 100).unwrap().with_ping(Some(EVERY));
        assert_eq!(ws.deadline(&WsSession::default()), None);
    }

    #[test]
    fn the_idle_timeout_sends_1001_saying_why_and_counts_the_reason() {
        let mut ws = WebSocket::new(b"", 100).unwrap().with_ping(Some(EVERY));
        let t0 = Instant::now();
        let mut silent = ws.open(t0);
        assert_eq!(
            idle_at(&mut ws, &mut silent, t0),
            close(1001, "idle timeout")
        );
        assert_eq!(ws.close_reason(&silent), CloseReason::Idle);

        let mut pinged = ws.open(t0);
        deadline_at(&mut ws, &mut pinged, t0 + EVERY);
        assert_eq!(
            idle_at(&mut ws, &mut pinged, t0),
            close(1001, "ping unanswered")
        );
        assert_eq!(ws.close_reason(&pinged), CloseReason::WsPingTimeout);

        // Our close is out already (a refusal): nothing more, the loop closes it.
        let mut refused = ws.open(t0);
        let mut out = Vec::new();
        ws.on_read(
            &mut refused,
            &cf(0x80, b"x"),
            &mut Answers::new(&mut out, usize::MAX, t0),
        );
        assert_eq!(out, close(1002, "continuation without a message"));
        assert_eq!(ws.deadline(&refused), Some(t0 + super::super::CLOSE_WAIT));
        assert_eq!(idle_at(&mut ws, &mut refused, t0), b"");
        let sent = ws.counts().ws.closes_sent;
        assert_eq!((sent[1], sent[2]), (2, 1), "1001 twice, 1002 once");
    }

    #[test]
    fn messages_bytes_and_close_codes_are_counted_each_way() {
        let mut ws = WebSocket::new(b"> ", 100).unwrap();
        let t0 = Instant::now();
        let mut s = ws.open(t0);
        let input = [
            cf(0x81, b"abc"),
            cf(0x02, b"de"),
            cf(0x89, b"ping"),
            cf(0x80, b"f"),
            cf(0x88, &4001u16.to_be_bytes()),
        ]
        .concat();
        let mut out = Vec::new();
        let next = ws.on_read(&mut s, &input, &mut Answers::new(&mut out, usize::MAX, t0));
        assert_eq!(next, Next::Close);
        ws.on_close(&mut s);
        let c = ws.counts().ws;
        let other = c.closes_sent.len() - 1;
        assert_eq!(
            (c.opened, c.ended, c.messages_in, c.messages_out),
            (1, 1, 2, 2)
        );
        assert_eq!((c.bytes_in, c.bytes_out), (6, 2 + 3 + 2 + 2 + 1));
        assert_eq!((c.closes_received[other], c.closes_sent[other]), (1, 1));
        assert_eq!(c.closes_sent.iter().sum::<u64>(), 1);
        assert_eq!(c.open(), 0);
    }
}
