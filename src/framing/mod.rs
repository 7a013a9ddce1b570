//! The protocol interface: how a connection's bytes become answers. The event loop drives a
//! [`Protocol`] through it without knowing which one it is: the lesson's chunk echo
//! ([`chunk`]), line echo ([`line`](mod@line)) and HTTP/1.1 ([`http`]), each a file of this folder
//! but HTTP, a folder of its own (the protocol and its session, the request, the response, the
//! body). WebSocket ([`ws`], a folder too: handshake, frame codec, UTF-8 validation, session) is
//! what an HTTP request may upgrade to; it is not entered from HTTP yet.
//!
//! A protocol is pure: it never does I/O, never blocks, never allocates per message in steady
//! state, and never holds more of a connection's input than its documented bound. Incomplete
//! input is a normal state, not an error.

pub mod chunk;
pub mod http;
pub mod line;
pub mod ws;

use std::net::SocketAddr;
use std::time::Instant;

pub use crate::metrics::{CloseReason, ProtocolCounts};
pub use chunk::Chunk;
pub use http::{Http, HttpLimits};
pub use line::Line;

/// What the loop should do with a connection after a call into its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep reading and answering.
    Continue,
    /// Stop reading: the protocol holds input or answers it has no room for under the output
    /// cap. The loop calls [`Protocol::on_writable`] once the output has drained below half of
    /// it, and reads again when that returns `Continue`.
    Pause,
    /// Stop reading until the protocol's deadline ([`Protocol::deadline`]): an answer waits
    /// for its time (issue 17's `delay`, a `drip`'s next piece). The answers of this call are
    /// written; then the loop neither reads nor calls the protocol until that deadline, calls
    /// [`Protocol::on_deadline`] then, and reads again (first what arrived meanwhile) once that
    /// returns anything but `Wait`. Idle and drain timers still run.
    Wait,
    /// The last answer is the protocol's last word (an error): stop reading, write what waits,
    /// then close with a lingering close, so the peer reads it rather than a reset.
    Close,
    /// Close at once; whatever waits to be written is dropped.
    CloseNow,
    /// Abort with a TCP reset (`SO_LINGER` 0), so that a client's retry logic can be tested
    /// (issue 17's `reset` fault): stop reading, write what waits (the answers of this call
    /// included, after any written before) as far as the socket takes it at once, without
    /// waiting for room, then close. The peer reads those bytes, then `ECONNRESET` rather than
    /// the end of the stream. What the socket did not take is dropped, and so may be what it
    /// took but had not sent yet: that is what a reset does. Counted as
    /// [`CloseReason::Aborted`]. To reset before any answer, append none.
    Reset,
}

/// A protocol's view of one connection's answers: where it appends them, how much room is
/// left under the connection's output cap, and the time of this turn of the loop.
pub struct Answers<'a> {
    out: &'a mut Vec<u8>,
    /// `out` may grow to this length before the protocol should pause.
    limit: usize,
    now: Instant,
}

/// The connection a protocol answers, for the rare answer that describes it (HTTP's
/// `format=json`): its id on its loop, and its socket, whose peer is asked for on demand (a
/// syscall), so a connection keeps no copy of it. The loop says it to
/// [`Protocol::on_deadline`] only, off the message path: a protocol that needs it asks for a
/// deadline due at once.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub id: u64,
    socket: &'a mio::net::TcpStream,
    /// Who the peer proved to be, if its transport asked (the subject of a TLS client
    /// certificate).
    identity: Option<&'a str>,
}

impl<'a> Origin<'a> {
    pub fn new(id: u64, socket: &'a mio::net::TcpStream) -> Origin<'a> {
        Origin {
            id,
            socket,
            identity: None,
        }
    }

    /// The same origin, with the identity its transport established.
    pub fn with_identity(self, identity: Option<&'a str>) -> Origin<'a> {
        Origin { identity, ..self }
    }

    /// Who the peer proved to be, if anyone asked.
    pub fn identity(&self) -> Option<&'a str> {
        self.identity
    }

    /// The peer's address, `None` once the peer is gone.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.socket.peer_addr().ok()
    }
}

impl<'a> Answers<'a> {
    /// Answers appended to `out`, of which `room` more bytes fit under the output cap.
    pub fn new(out: &'a mut Vec<u8>, room: usize, now: Instant) -> Answers<'a> {
        let limit = out.len().saturating_add(room);
        Answers { out, limit, now }
    }

    #[inline]
    pub fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Appends `bytes` and lends them back, to be changed where they landed (a WebSocket
    /// payload is unmasked in the answer, not copied twice).
    #[inline]
    pub fn push_mut(&mut self, bytes: &[u8]) -> &mut [u8] {
        let start = self.out.len();
        self.out.extend_from_slice(bytes);
        &mut self.out[start..]
    }

    /// Appends `buffer` and leaves it empty. When nothing else was answered yet, the buffer
    /// itself is handed over: a large held answer (an unterminated last line) is not copied.
    pub fn push_owned(&mut self, buffer: &mut Vec<u8>) {
        if self.out.is_empty() {
            std::mem::swap(self.out, buffer);
        } else {
            self.out.extend_from_slice(buffer);
        }
        buffer.clear();
    }

    /// The output cap is reached: a protocol stops answering here and returns [`Next::Pause`]
    /// (one message past the cap is allowed, so a message is never split).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.out.len() >= self.limit
    }

    /// Answer bytes that still fit under the output cap.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.out.len())
    }

    /// The time of this turn of the loop, for deadlines a protocol keeps itself.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Withdraws the answers appended after the first `len` bytes: a protocol that finds an
    /// error further on in the same input answers the error instead of a cut-short answer.
    pub fn truncate(&mut self, len: usize) {
        self.out.truncate(len);
    }

    /// The answer bytes appended after the first `from`: a protocol that finds a request's
    /// answer must wait (its body spans reads) moves them into a buffer of its own, then
    /// withdraws them with [`Answers::truncate`].
    pub fn tail(&self, from: usize) -> &[u8] {
        self.out.get(from..).unwrap_or_default()
    }

    /// Answer bytes appended so far in this turn.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

/// A protocol the event loop drives. One value per event loop holds the rules (prefix, limits)
/// and whatever the loop's connections share (a cached `Date`); each connection has a
/// [`Protocol::Session`] of its own.
pub trait Protocol {
    /// A connection's state between calls. `Default` is a new connection's; an idle connection's
    /// should hold no heap memory, since there may be tens of thousands of them.
    type Session: Default;

    /// How many bytes to read next when `room` answer bytes still fit under the output cap, so
    /// answering one read overshoots the cap by at most one message.
    fn read_len(&self, session: &Self::Session, room: usize) -> usize;

    /// Answers `input`, just read from the socket.
    fn on_read(
        &mut self,
        session: &mut Self::Session,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Next;

    /// The output drained below half the cap after this protocol returned [`Next::Pause`]:
    /// answer what it held back. Also called after the loop paused reading for a client that
    /// reads too slowly; a protocol holding nothing returns `Continue`.
    fn on_writable(&mut self, session: &mut Self::Session, answers: &mut Answers<'_>) -> Next;

    /// The peer will send no more: answer what is held (an unterminated last line). The
    /// connection closes once the answers are written.
    fn on_eof(&mut self, session: &mut Self::Session, answers: &mut Answers<'_>);

    /// A connection was just accepted: the protocol may speak first (HAProxy's agent check
    /// reads without sending anything). Called once per connection, before any read; its
    /// answers are written at once. Echo protocols wait for the client and say nothing.
    fn on_open(&mut self, _session: &mut Self::Session, _answers: &mut Answers<'_>) -> Next {
        Next::Continue
    }

    /// Whether the connection is between messages: nothing of a message is held (no partial
    /// line, no request head or body in progress), so closing it now cuts nothing the client
    /// sent. Asked during the drain, on a timer, never per message; the loop checks for itself
    /// that no answer waits to be written and nothing waits to be read.
    fn at_boundary(&self, session: &Self::Session) -> bool;

    /// The server has started draining (its listeners are closed). A protocol that can tell a
    /// client an answer is its last (HTTP's `Connection: close`) does so from now on. Called
    /// once per loop.
    fn on_drain(&mut self) {}

    /// The next deadline this protocol keeps for the connection (a request head that must
    /// complete in time, a keep-alive ping due after a silence), or `None`. Asked after each
    /// call, and kept while the connection is idle; the loop calls [`Protocol::on_deadline`]
    /// once it has passed. Once that call is made, it must move on (or be `None`), or the loop
    /// would call again at once.
    fn deadline(&self, _session: &Self::Session) -> Option<Instant> {
        None
    }

    /// A deadline from [`Protocol::deadline`] has passed. `origin` is the connection (`None`
    /// when no loop drives the protocol, in tests). What it answers is the server's word, so
    /// the idle timeout runs again from it (a WebSocket's keep-alive ping, a delayed answer).
    fn on_deadline(
        &mut self,
        _session: &mut Self::Session,
        _answers: &mut Answers<'_>,
        _origin: Option<Origin<'_>>,
    ) -> Next {
        Next::Continue
    }

    /// Tells a client accepted past the connection limit (`max_conns` open) why it is refused,
    /// in this protocol's own words, before the loop closes it: a client of an echo framing
    /// reads `ERR server full (max N connections)`, an HTTP client a `503`. Called once per
    /// refused connection, never on the message path.
    fn refusal(&mut self, max_conns: usize, answers: &mut Answers<'_>) {
        answers.push(b"ERR server full (max ");
        answers.push(itoa::Buffer::new().format(max_conns).as_bytes());
        answers.push(b" connections)\n");
    }

    /// What this protocol counted over the loop's connections: the messages it answered (only
    /// it knows where they end) and, for HTTP, the responses by status. Read once per turn of
    /// the loop, so counting costs the message path an increment.
    fn counts(&self) -> &ProtocolCounts;

    /// What the protocol connections upgrade to counted (HTTP's WebSocket), kept apart from
    /// [`Protocol::counts`] because that protocol keeps its own; `None` for a protocol nothing
    /// upgrades to. Read with it, once per turn.
    fn upgraded_counts(&self) -> Option<&ProtocolCounts> {
        None
    }

    /// The connection has been silent for the idle timeout and is closed now: a protocol may
    /// append a last word (a WebSocket's close frame), which is written before a lingering
    /// close; [`Protocol::close_reason`] then says why it ended. Appending nothing closes it at
    /// once as [`CloseReason::Idle`]. Called on the timer, only while the connection reads and
    /// nothing waits to be written, never on the message path.
    fn on_idle(&mut self, _session: &mut Self::Session, _answers: &mut Answers<'_>) {}

    /// The connection is closed, whatever the reason; its session is dropped after. For what
    /// a protocol counts of its open sessions. Called once per connection, never per message.
    fn on_close(&mut self, _session: &mut Self::Session) {}

    /// Why a connection ended after this protocol closed it ([`Next::Close`] or
    /// [`Next::CloseNow`]), however the close that followed went: an error answer, or the
    /// client's own request to close.
    fn close_reason(&self, _session: &Self::Session) -> CloseReason {
        CloseReason::Client
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Drives a protocol as the loop would, without sockets.
    use super::*;

    /// Feeds `pieces` one read each, with unlimited room, then end of input if `eof`. Returns
    /// the answers and the first `Next` that was not `Continue`.
    pub fn feed<P: Protocol>(protocol: &mut P, pieces: &[&[u8]], eof: bool) -> (Vec<u8>, Next) {
        let mut session = P::Session::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in pieces {
            let next = protocol.on_read(
                &mut session,
                piece,
                &mut Answers::new(&mut out, usize::MAX, now),
            );
            if next != Next::Continue {
                return (out, next);
            }
        }
        if eof {
            protocol.on_eof(&mut session, &mut Answers::new(&mut out, usize::MAX, now));
        }
        (out, Next::Continue)
    }
}
