//! The way from HTTP to WebSocket (issue 18): a request with an `Upgrade` field is read again
//! here, off the common path, and a WebSocket upgrade is answered `101 Switching Protocols` or
//! refused (400 with the reason, 426 naming version 13); after the `101` the connection's
//! session speaks WebSocket, each [`Protocol`] call passed to it ([`Http::upgraded`]).
//!
//! It must never cost a request without an `Upgrade` field more than the flag `request` sets,
//! and never answer HTTP on a connection that upgraded: bytes read after the upgrade request
//! belong to the WebSocket.

use std::mem::MaybeUninit;

use super::request::{refusal, Refusal, BAD_REQUEST, MAX_HEADERS};
use super::response::{Answer, Length};
use super::{Aside, HttpSession, Route};
use crate::framing::ws::{handshake, WebSocket, WsSession};
use crate::framing::{Answers, Http, Next, Protocol};

/// The status of a refusal that must name the version spoken (RFC 6455 §4.4).
pub(super) const UPGRADE_REQUIRED: &str = "426 Upgrade Required";

/// The refusal for a handshake's status.
fn refused(no: handshake::Refusal) -> Refusal {
    let status = if no.upgrade_required() {
        UPGRADE_REQUIRED
    } else {
        BAD_REQUEST
    };
    refusal(status, no.reason)
}

/// The length a refusal's answer head gives: a 426 also says which version is spoken.
pub(super) fn refusal_length(status: &str, body_len: u64) -> Length {
    if status == UPGRADE_REQUIRED {
        Length::UpgradeRequired(body_len)
    } else {
        Length::Bytes(body_len)
    }
}

impl<R: Route> Http<R> {
    /// The head of `head_len` bytes at the start of `input` has an `Upgrade` field (only its
    /// length is passed: a `Head` passed by reference would be spilled to memory on every
    /// request, since its parse is inlined into the caller): if it asks for a
    /// WebSocket, writes the `101` and makes `session` a WebSocket one (`Ok(true)`) or refuses
    /// it; `Ok(false)`: another upgrade (e.g. `h2c`), which plain HTTP answers, ignoring it.
    #[cold]
    #[inline(never)]
    pub(super) fn upgrade(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        head_len: usize,
        answers: &mut Answers<'_>,
    ) -> Result<bool, Refusal> {
        if !R::WEBSOCKET {
            return Ok(false);
        }
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        // The head parsed once already: it parses the same again.
        if request
            .parse_with_uninit_headers(&input[..head_len], &mut fields)
            .is_err()
            || !handshake::is_upgrade(request.headers)
        {
            return Ok(false);
        }
        let (method, minor) = (request.method.unwrap_or(""), request.version.unwrap_or(1));
        let key = handshake::accept(method, minor, request.headers).map_err(refused)?;
        if std::str::from_utf8(&self.prefix).is_err() {
            return Err(refusal(
                BAD_REQUEST,
                "WebSocket is off: the server's --prefix is not UTF-8",
            ));
        }
        let mut head101 = Vec::with_capacity(160);
        handshake::switching_protocols(&key, &mut head101);
        answers.push(&head101);
        session.answer = Answer::default();
        session.aside = Some(Box::new(Aside::Ws(self.ws.open(answers.now()))));
        Ok(true)
    }

    /// The WebSocket a connection upgraded to and its rules, once it has upgraded.
    #[inline]
    pub(super) fn upgraded<'a>(
        &'a mut self,
        session: &'a mut HttpSession,
    ) -> Option<(&'a mut WebSocket, &'a mut WsSession)> {
        match session.aside.as_deref_mut() {
            Some(Aside::Ws(s)) => Some((&mut self.ws, s)),
            _ => None,
        }
    }

    /// [`Http::upgraded`], to look.
    #[inline]
    pub(super) fn upgraded_ref<'a>(
        &'a self,
        session: &'a HttpSession,
    ) -> Option<(&'a WebSocket, &'a WsSession)> {
        match session.aside.as_deref() {
            Some(Aside::Ws(s)) => Some((&self.ws, s)),
            _ => None,
        }
    }

    /// The connection just upgraded with bytes left after its upgrade request (held): they are
    /// the WebSocket's first, answered now.
    #[cold]
    pub(super) fn enter(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        let first = std::mem::take(&mut session.held);
        match self.upgraded(session) {
            Some((ws, s)) => ws.on_read(s, &first, answers),
            None => Next::Close,
        }
    }
}
