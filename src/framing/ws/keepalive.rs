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
