//! A connection's HTTP state between reads (`HttpSession`): what is held of its input, what the
//! next bytes are, how the request in progress is answered, and what outlives a request (its
//! number, whether the connection failed). It must hold no heap memory between requests, and
//! frees a staged answer (which a `Body` does not drop) when its request ends or the
//! connection closes.

use std::mem::ManuallyDrop;

use super::body::Body;
use super::held::Held;
use super::response::Answer;

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
}

impl HttpSession {
    /// Ready for the next request. A staged answer is freed first ([`HttpSession::free_staged`]):
    /// replacing the `Body` stays a plain store on every request.
    #[inline]
    pub(super) fn end_request(&mut self) {
        debug_assert!(
            !matches!(self.body, Body::Staged(_)),
            "a staged answer left behind"
        );
        self.body = Body::Head(None);
        self.answer = Answer::default();
        self.requests = self.requests.wrapping_add(1);
    }

    /// Frees the staged answer of the request in progress, if it has one: its answer is out, or
    /// will never be.
    #[cold]
    pub(super) fn free_staged(&mut self) {
        if let Body::Staged(staged) = std::mem::replace(&mut self.body, Body::Head(None)) {
            drop(ManuallyDrop::into_inner(staged));
        }
    }
}

impl Drop for HttpSession {
    /// A connection closed with a staged answer frees it (a `Body` does not).
    fn drop(&mut self) {
        self.free_staged();
    }
}
