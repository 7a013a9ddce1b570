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
    /// What few connections need ([`Aside`]); `None` otherwise, so the others pay one pointer.
    pub(super) aside: Option<Box<Aside>>,
    /// The connection ends on an error response. For the metrics' close reason; never reset.
    pub(super) failed: bool,
    /// Empty lines dropped before the request line of the next request (at most
    /// `MAX_EMPTY_LINES`).
    pub(super) empty_lines: u8,
    /// Requests ended on this connection: the one in progress is the next, for a `format=json`
    /// description.
    pub(super) requests: u32,
}

/// A connection's rarer state, one at a time, boxed in [`HttpSession::aside`]: one pointer for
/// both keeps every connection 8 bytes smaller than a box each did.
#[derive(Debug)]
pub(super) enum Aside {
    /// The answer to a request whose body spans reads, until it is handed out.
    Held(Held),
    /// After a `101 Switching Protocols`, the WebSocket this connection speaks from then on (no
    /// request, so no held answer, comes after it).
    Ws(WsSession),
}

impl HttpSession {
    /// The held answer, if a request's body spans reads.
    #[inline]
    pub(super) fn hold(&self) -> Option<&Held> {
        match self.aside.as_deref() {
            Some(Aside::Held(held)) => Some(held),
            _ => None,
        }
    }

    /// No held answer any more (a WebSocket stays).
    #[inline]
    pub(super) fn drop_hold(&mut self) {
        if let Some(Aside::Held(_)) = self.aside.as_deref() {
            self.aside = None;
        }
    }

    /// The WebSocket, once the connection upgraded.
    #[inline]
    pub(super) fn ws(&self) -> Option<&WsSession> {
        match self.aside.as_deref() {
            Some(Aside::Ws(ws)) => Some(ws),
            _ => None,
        }
    }
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
