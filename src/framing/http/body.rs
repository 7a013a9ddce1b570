//! A request's body as it streams in, by Content-Length or in chunks (decoded by `chunked.rs`):
//! echoed as it arrives (a chunked body as chunks), or read and dropped when something else
//! answers the request; and the end of the answer once the body is complete.
//!
//! It never holds body bytes itself: it writes into whatever [`Answers`] it is lent (the loop's
//! output, or the session's held answer while a body spans reads). A body that breaks its
//! framing gets an error response in place of its answer, never a cut one.

use std::time::Instant;

use super::chunked::{ChunkError, ChunkedDecoder};
use super::request::{refusal, Refusal, BAD_REQUEST, TOO_LARGE};
use super::response::{push_chunk, Answer, Heads, Length, Reply};
use super::staged::Staged;
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
    /// A request with test-backend controls (issue 17): its body, if any, is read into its
    /// staged answer, which goes out once the request is complete and the controls say so.
    /// Owned here, so it is freed with the `Body` that holds it, whatever replaces it.
    Staged(StagedBox),
}

/// A staged answer, owned by its [`Body::Staged`]. Freed out of line: every request replaces
/// its `Body`, and that costs a compare and no call while the free of a staged answer stays
/// out of the way (inlined, it kept the whole drop of a `Body` out of line: 26 instructions
/// per request).
#[derive(Debug)]
pub(super) struct StagedBox(Option<Box<Staged>>);

impl StagedBox {
    pub(super) fn new(staged: Box<Staged>) -> StagedBox {
        StagedBox(Some(staged))
    }

    pub(super) fn get(&self) -> &Staged {
        // `None` only inside `drop`.
        self.0
            .as_deref()
            .expect("a staged answer until it is dropped")
    }

    pub(super) fn get_mut(&mut self) -> &mut Staged {
        self.0
            .as_deref_mut()
            .expect("a staged answer until it is dropped")
    }
}

impl Drop for StagedBox {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(staged) = self.0.take() {
            free(staged);
        }
    }
}

#[cold]
#[inline(never)]
fn free(staged: Box<Staged>) {
    drop(staged);
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
    /// The body broke its framing: the request gets this error response instead of its answer,
    /// which the caller withdraws (it never went out: an answer waits for its whole body).
    Refused(Refusal),
    /// The request has a staged answer, which reads its body itself: nothing was read here.
    Staged,
}

/// Streams `input`, which starts inside the body `body` of the request `answer` answers, into
/// that answer. A body is at most `max_body` bytes; `prefix` starts an echo.
///
/// `raw` is `Some` while the answer is held (its body spans reads): a chunked echo's data is then
/// appended as it is, to be framed as one chunk once the body is complete, so a body sent in
/// tiny chunks does not cost six bytes held per byte; the position where the raw data starts is
/// written there. The terminating chunk is then the caller's to write.
///
/// Inlined into its one caller, the per-request loop, as it was when it was part of it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn stream(
    body: &mut Body,
    answer: &mut Answer,
    input: &[u8],
    max_body: u64,
    prefix: &[u8],
    heads: &mut Heads,
    answers: &mut Answers<'_>,
    mut raw: Option<&mut usize>,
) -> Streamed {
    match body {
        // No body is in progress: none of the input is one.
        Body::Head(_) => Streamed::More(0),
        // The caller's, through the staged answer.
        Body::Staged(_) => Streamed::Staged,
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
            let held = raw.is_some();
            let mut head_due = echo && answer.status == 0;
            let result = decoder.decode(input, max_body, |data| {
                if echo {
                    if head_due {
                        heads.write_chunked(answers, connection, prefix);
                        head_due = false;
                        if let Some(at) = raw.as_deref_mut() {
                            *at = answers.len();
                        }
                    }
                    if held {
                        answers.push(data);
                    } else {
                        push_chunk(answers, data);
                    }
                }
            });
            if echo && !head_due {
                answer.status = 200;
            }
            let used = match result {
                Ok(used) => used,
                Err(e) => {
                    return Streamed::Refused(match e {
                        ChunkError::TooLarge => {
                            refusal(TOO_LARGE, "the chunked body is larger than --max-body")
                        }
                        ChunkError::Malformed(why) => refusal(BAD_REQUEST, why),
                    })
                }
            };
            if !decoder.is_done() {
                return Streamed::More(used);
            }
            // HEAD's and OPTIONS' answers wait for the whole body too, so a malformed one is
            // refused rather than answered.
            match reply {
                Reply::Echo => {
                    if answer.status == 0 {
                        heads.write_chunked(answers, connection, prefix);
                        answer.status = 200;
                        if let Some(at) = raw {
                            *at = answers.len();
                        }
                    }
                    if !held {
                        answers.push(b"0\r\n\r\n");
                    }
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
