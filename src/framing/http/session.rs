//! A connection's HTTP state between reads (`HttpSession`): what is held of its input, what the
//! next bytes are, how the request in progress is answered, and what outlives a request (its
//! number, whether the connection failed). It must hold no heap memory between requests: a
//! staged answer is owned by its `Body`, freed when the request ends or the connection closes.

use super::body::Body;
use super::held::Held;
use super::response::Answer;
use crate::framing::ws::WsSession;

/// A connection's HTTP state between reads. Between requests it holds no heap memory.
#[derive(Debug, Default)]
pub struct HttpSession {
    /// Input not processed yet: a head that has not completed, or after a pause, the requests
    /// whose answers had no room. It always starts at the beginning of a request.
    pub(super) held: Vec<u8>,
    /// What the next bytes are.
    pub(super) body: Body,
    /// How the request in progress is answered.
    pub(super) answer: Answer,
    /// The answer to a request whose body spans reads, until it is handed out; `None` otherwise
    /// (boxed: a connection that never sends such a body pays one pointer).
    pub(super) hold: Option<Box<Held>>,
    /// The connection ends on an error response. For the metrics' close reason; never reset.
    pub(super) failed: bool,
    /// Empty lines dropped before the request line of the next request (at most
    /// `MAX_EMPTY_LINES`).
    pub(super) empty_lines: u8,
    /// Requests ended on this connection: the one in progress is the next, for a `format=json`
    /// description.
    pub(super) requests: u32,
    /// After a `101 Switching Protocols`, the WebSocket this connection speaks from then on
    /// (boxed: a connection that never upgrades pays one pointer).
    pub(super) ws: Option<Box<WsSession>>,
}

impl HttpSession {
    /// Ready for the next request; a staged answer, if any, is freed.
    #[inline]
    pub(super) fn end_request(&mut self) {
        self.body = Body::Head(None);
        self.answer = Answer::default();
        self.requests = self.requests.wrapping_add(1);
    }
}
