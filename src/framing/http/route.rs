//! The hook that lets another endpoint be served with HTTP mode's parser, limits and refusals
//! (the admin endpoint of `--metrics-listen`): a [`Route`] answers the requests it knows, the
//! rest are echoed.
//!
//! A route only chooses an answer and writes its body; it must never see a request that was
//! refused, and never write a head: the framing writes those.

use crate::framing::Answers;

/// What answers a valid request in place of the echo: another endpoint served with this
/// framing's parser, limits and refusals (the admin endpoint of `--metrics-listen`). [`Echo`]
/// routes nothing, so every request is echoed.
pub trait Route {
    /// The answer to `method` on `path` (the target's path after its `/`, query dropped, not
    /// percent-decoded), or `None` to echo the request. A routed request's body is read and
    /// dropped.
    fn route(&mut self, method: &str, path: &[u8]) -> Option<Routed>;

    /// Writes the body of the answer [`Route::route`] just gave (not for HEAD).
    fn body(&mut self, answers: &mut Answers<'_>);

    /// Whether a request may upgrade to the WebSocket echo here. An endpoint of its own (the
    /// admin port's) says no: its `Upgrade` field is ignored, as RFC 9110 §7.8 allows, and the
    /// request is answered as any other.
    const WEBSOCKET: bool = true;
}

/// An answer chosen by a [`Route`]: its status, type and length; the body follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// The status line's code and reason, e.g. `404 Not Found`.
    pub status: &'static str,
    pub content_type: &'static str,
    /// Bytes of the body.
    pub len: usize,
}

/// HTTP mode's own answers: every request echoed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Route for Echo {
    #[inline(always)]
    fn route(&mut self, _: &str, _: &[u8]) -> Option<Routed> {
        None
    }

    fn body(&mut self, _: &mut Answers<'_>) {}
}
