//! A request's body as it streams in, by Content-Length or in chunks (decoded by `chunked.rs`):
//! echoed as it arrives (a chunked body as chunks), or read and dropped when something else
//! answers the request; and the end of the answer once the body is complete.
//!
//! It must never hold body bytes, and never let a body that breaks its framing get anything but
//! an error response in place of its answer, or, once that answer is out, a cut connection.

use std::time::Instant;

use super::chunked::{ChunkError, ChunkedDecoder};
use super::request::{refusal, Refusal, BAD_REQUEST, TOO_LARGE};
use super::response::{push_chunk, Answer, Heads, Length, Reply};
use crate::framing::Answers;

/// What the next bytes of a connection are. Small, since every connection has one: the
/// decoder is 24 bytes.
#[derive(Debug)]
pub(super) enum Body {
    /// A request head; since when one has been arriving, for `--header-timeout`.
    Head(Option<Instant>),
    /// This many body bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
}

impl Default for Body {
    fn default() -> Self {
        Body::Head(None)
    }
}

impl Body {
    /// When the head being received started arriving, if one is.
    pub(super) fn head_started(&self) -> Option<Instant> {
        match self {
            Body::Head(started) => *started,
            _ => None,
        }
    }
}

/// What streaming a body's bytes came to.
pub(super) enum Streamed {
    /// This many bytes of the input were body (all of it); more is to come.
    More(usize),
    /// The body ended after this many bytes of the input, and its answer is complete.
    Done(usize),
    /// The body broke its framing before its answer went out: what this call answered is
    /// withdrawn, and the request gets this error response instead.
    Refused(Refusal),
    /// It broke its framing after its answer went out in an earlier write: the only honest end
    /// is to cut the answer short, which every client reports as an incomplete response.
    Cut,
}

/// Streams `input`, which starts inside the body `body` of the request `answer` answers, into
/// that answer. A body is at most `max_body` bytes; `prefix` starts an echo.
///
/// Inlined into its one caller, the per-request loop, as it was when it was part of it.
#[inline(always)]
pub(super) fn stream(
    body: &mut Body,
    answer: &mut Answer,
    input: &[u8],
    max_body: u64,
    prefix: &[u8],
    heads: &mut Heads,
    answers: &mut Answers<'_>,
) -> Streamed {
    match body {
        // No body is in progress: none of the input is one.
        Body::Head(_) => Streamed::More(0),
        Body::Length(remaining) => {
            let take = (*remaining).min(input.len() as u64) as usize;
            if answer.reply == Reply::Echo {
                answers.push(&input[..take]);
            }
            *remaining -= take as u64;
            if *remaining > 0 {
                Streamed::More(take)
            } else {
                Streamed::Done(take)
            }
        }
        Body::Chunked(decoder) => {
            let Answer {
                reply, connection, ..
            } = *answer;
            let echo = reply == Reply::Echo;
            // Answers of this call may be withdrawn: an error found further on in the same
            // read still gets a proper error response instead of a cut-short 200.
            let (mark, was_started) = (answers.len(), answer.started);
            let mut head_due = echo && !answer.started;
            let result = decoder.decode(input, max_body, |data| {
                if echo {
                    if head_due {
                        heads.write_chunked(answers, connection, prefix);
                        head_due = false;
                    }
                    push_chunk(answers, data);
                }
            });
            if echo && !head_due {
                answer.started = true;
            }
            let used = match result {
                Ok(used) => used,
                Err(e) if !was_started => {
                    if answer.started {
                        // The 200 begun in this call is withdrawn, and uncounted.
                        heads.withdraw_ok();
                    }
                    answers.truncate(mark);
                    return Streamed::Refused(match e {
                        ChunkError::TooLarge => {
                            refusal(TOO_LARGE, "the chunked body is larger than --max-body")
                        }
                        ChunkError::Malformed(why) => refusal(BAD_REQUEST, why),
                    });
                }
                Err(_) => return Streamed::Cut,
            };
            if !decoder.is_done() {
                return Streamed::More(used);
            }
            // HEAD's and OPTIONS' answers wait for the whole body too, so a malformed one is
            // refused rather than answered.
            match reply {
                Reply::Echo => {
                    if !answer.started {
                        heads.write_chunked(answers, connection, prefix);
                    }
                    answers.push(b"0\r\n\r\n");
                }
                Reply::HeadOnly => heads.write(answers, "200 OK", Length::Chunked, connection),
                Reply::Options => {
                    heads.write(answers, "204 No Content", Length::NoContent, connection)
                }
                Reply::Routed => {}
            }
            Streamed::Done(used)
        }
    }
}
