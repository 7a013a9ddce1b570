//! What a valid request is answered with, decided at its head: the route's answer, `204` to
//! OPTIONS, the echo's head alone to HEAD, or the prefix and the echo of its path or body; and
//! the part of it written at once (the rest follows the body, which `body` streams).
//!
//! It sees only heads the parser accepted and writes into whatever [`Answers`] it is lent (the
//! output, or a held answer). It must never read a body, hold state, nor allocate.

use super::budget::HELD_FULL;
use super::request::{self, ConnectionHeader, Head, Refusal};
use super::response::{Heads, Length, Reply};
use super::route::{Route, Routed};
use super::session::HttpSession;
use super::target::push_decoded;
use super::upgrade;
use crate::framing::{Answers, Next};

/// How the request `head` is answered, `routed` being what the route chose for it.
#[inline(always)]
pub(super) fn reply(head: &Head<'_>, routed: Option<&Routed>) -> Reply {
    if routed.is_some() {
        Reply::Routed
    } else if head.options {
        Reply::Options
    } else if head.head_only {
        Reply::HeadOnly
    } else {
        Reply::Echo
    }
}

/// The bytes of content the answer will carry after its head, as known at the head (what a held
/// answer reserves): the route's, or the prefix and the body for an echo.
pub(super) fn content_len(
    head: &Head<'_>,
    routed: Option<&Routed>,
    reply: Reply,
    prefix: &[u8],
) -> u64 {
    match (routed, reply) {
        (Some(routed), _) => routed.len as u64,
        (None, Reply::Echo) => prefix.len() as u64 + head.length,
        (None, _) => 0,
    }
}

/// Writes what is answered at the request's head into `out`, with `prefix` starting an echo;
/// returns the status written, 0 when the answer waits for a chunked body.
#[inline(always)]
pub(super) fn write_head<R: Route>(
    head: &Head<'_>,
    routed: Option<Routed>,
    connection: ConnectionHeader,
    prefix: &[u8],
    route: &mut R,
    heads: &mut Heads,
    out: &mut Answers<'_>,
) -> u16 {
    if let Some(routed) = routed {
        let length = Length::Typed(routed.content_type, routed.len as u64);
        heads.write(out, routed.status, length, connection);
        if !head.head_only {
            route.body(out);
        }
        routed
            .status
            .get(..3)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    } else if head.chunked {
        // Answered as the chunks arrive (echo) or once they all have.
        0
    } else if head.options {
        heads.write(out, "204 No Content", Length::NoContent, connection);
        204
    } else {
        let has_body = head.length > 0;
        let said = if has_body {
            head.length
        } else {
            head.decoded_len as u64
        };
        let answer_len = prefix.len() as u64 + said;
        heads.write(out, "200 OK", Length::Bytes(answer_len), connection);
        if !head.head_only {
            out.push(prefix);
            if !has_body {
                push_decoded(out, head.path, head.decoded_len);
            }
        }
        200
    }
}

/// Answers an error: one line saying what was wrong, then the connection closes. To a HEAD
/// the line is not sent (RFC 9110 §9.3.2); `Content-Length` still gives its length, as a
/// HEAD answer's may (RFC 9110 §8.6), the same head a GET would get.
pub(super) fn refuse(
    heads: &mut Heads,
    session: &mut HttpSession,
    answers: &mut Answers<'_>,
    refusal: Refusal,
) -> Next {
    let body_len = refusal.reason.len() as u64 + 1;
    let length = if refusal.status == HELD_FULL {
        Length::RetryAfter(body_len)
    } else {
        upgrade::refusal_length(refusal.status, body_len)
    };
    heads.write(answers, refusal.status, length, ConnectionHeader::Close);
    let head_only = session.answer.reply == Reply::HeadOnly || request::is_head(&session.held);
    if !head_only {
        answers.push(refusal.reason.as_bytes());
        answers.push(b"\n");
    }
    session.failed = true;
    session.held = Vec::new();
    session.drop_hold();
    session.end_request();
    Next::Close
}
