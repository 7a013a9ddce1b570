//! A held answer: the answer to an HTTP request whose body spans reads, kept until the body is
//! complete and then handed out under the output cap, its buffer reserved in the process-wide
//! budget (`--max-held`, `budget`). The session owns one while such a
//! body is in progress and lends it the body's bytes; it writes only into its own buffer until
//! the body is complete. It must never grow a buffer the budget did not grant, nor keep a
//! reservation once its answer is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{self, Body, Streamed};
use super::budget::{held_full, HeldBudget};
use super::request::Refusal;
use super::response::{chunk_size_line, Answer, Heads, Reply};
use super::{Aside, HttpSession, Route};
use crate::framing::{Answers, Http};

/// Room for an answer's head and the framing around a held chunked echo (the prefix's chunk
/// and the data's chunk-size line), beyond the prefix and the body.
const HEAD_SLACK: usize = 512;

/// A held answer is moved down in its buffer, and the buffer shrunk, once this much of it has
/// been handed out (and half of it): a slow reader's answer gives its memory back as it goes, and
/// each byte is moved at most once on average.
const HAND_OUT_SHRINK: usize = 64 * 1024;

/// What taking input into a held answer came to.
pub(super) enum HeldStep {
    /// This many bytes of the input were body (all of it); more is to come.
    More(usize),
    /// The body ended after this many bytes, and its answer is being handed out: the rest waits.
    Pause(usize),
    /// The body ended after this many bytes, and its answer is all out: the caller drops it.
    Done(usize),
    /// The request gets this error response instead (its head, if one was written, is
    /// uncounted).
    Refused(Refusal),
}

/// The answer to a request whose body spans reads, held until the body is complete, then handed
/// out. Its buffer's capacity is reserved in the budget; dropping it (the connection closed, the
/// request refused) gives the reservation back.
#[derive(Debug)]
pub(super) struct Held {
    /// The answer: in wire format up to `raw_at`; after it, a chunked echo's body data as it came,
    /// framed as one chunk once the body is complete.
    out: Vec<u8>,
    raw_at: usize,
    /// Bytes of `out` handed out so far, once the body is complete.
    sent: usize,
    /// The body is complete: `out` is being handed out.
    done: bool,
    /// When body bytes last arrived (or reading resumed), for `--body-timeout`.
    last_read: Instant,
    /// Bytes reserved in `budget`: the capacity of `out`.
    reserved: u64,
    budget: Arc<HeldBudget>,
}

impl Held {
    /// An empty held answer for a request whose Content-Length body goes on past the read of its
    /// head: room for `content` bytes of answer and its head, reserved before anything is said
    /// or read, or a 503 when the budget has no room.
    #[cold]
    pub(super) fn reserve(
        content: u64,
        budget: &Arc<HeldBudget>,
        now: Instant,
    ) -> Result<Held, Refusal> {
        let capacity = content.saturating_add(HEAD_SLACK as u64);
        let capacity = usize::try_from(capacity).map_err(|_| held_full())?;
        if !budget.try_reserve(capacity as u64) {
            return Err(held_full());
        }
        Ok(Held {
            out: Vec::with_capacity(capacity),
            raw_at: 0,
            sent: 0,
            done: false,
            last_read: now,
            reserved: capacity as u64,
            budget: budget.clone(),
        })
    }

    /// The held answer of a chunked request whose body goes on past this read, from its answer so
    /// far (`started`, our own bytes; the caller takes them out of the output), or a 503 when the
    /// budget has no room. A chunked echo's chunks so far (`echo`, after its head and, if
    /// `prefix_chunk`, the prefix's chunk) become raw data again, so the held answer's data goes
    /// out as one chunk whatever the reads were.
    #[cold]
    pub(super) fn take_over(
        started: &[u8],
        echo: bool,
        prefix_chunk: bool,
        budget: &Arc<HeldBudget>,
        now: Instant,
    ) -> Result<Held, Refusal> {
        let mut out = started.to_vec();
        let mut raw_at = out.len();
        if echo {
            raw_at = head_and_prefix_len(&out, prefix_chunk);
            let data = own_chunks_data(&out[raw_at..]);
            out.truncate(raw_at);
            out.extend_from_slice(&data);
        }
        let reserved = out.capacity() as u64;
        if !budget.try_reserve(reserved) {
            return Err(held_full());
        }
        Ok(Held {
            out,
            raw_at,
            sent: 0,
            done: false,
            last_read: now,
            reserved,
            budget: budget.clone(),
        })
    }

    /// The answer's buffer, to write its head into: uncapped, as its capacity is reserved.
    pub(super) fn answers(&mut self, now: Instant) -> Answers<'_> {
        Answers::new(&mut self.out, usize::MAX, now)
    }

    /// The body is complete and the answer is being handed out.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// Reading resumes after a wait of ours: the body's clock starts again.
    pub(super) fn resume(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// When a body still coming has stalled for `timeout`; none once it is complete.
    pub(super) fn deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        match self.done {
            false => timeout.and_then(|timeout| self.last_read.checked_add(timeout)),
            true => None,
        }
    }

    /// Takes `input`, which starts inside the body `body` of the request `answer` answers (a
    /// body of at most `max_body` bytes, echoed after `prefix`), into this answer; once the body
    /// is complete, hands the answer out into `answers` as room allows.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take(
        &mut self,
        input: &[u8],
        body: &mut Body,
        answer: &mut Answer,
        max_body: u64,
        prefix: &[u8],
        heads: &mut Heads,
        answers: &mut Answers<'_>,
    ) -> HeldStep {
        let mut used = 0;
        if !self.done {
            let now = answers.now();
            let echo_chunks = answer.reply == Reply::Echo && matches!(body, Body::Chunked(_));
            if echo_chunks {
                // Room for this read's data, the head and the last chunk's framing; the
                // buffer doubles, up to what the largest body's answer needs.
                let slack = HEAD_SLACK + prefix.len();
                let want = self.out.len() + input.len() + slack;
                if want > self.out.capacity() {
                    let max_body = usize::try_from(max_body).unwrap_or(usize::MAX);
                    let largest = self.raw_at.saturating_add(max_body).saturating_add(slack);
                    let capacity = want.max(self.out.capacity().saturating_mul(2).min(largest));
                    if !self.grow_to(capacity) {
                        heads.withdraw(answer);
                        return HeldStep::Refused(held_full());
                    }
                }
            }
            let streamed = body::stream(
                body,
                answer,
                input,
                max_body,
                prefix,
                heads,
                &mut Answers::new(&mut self.out, usize::MAX, now),
                Some(&mut self.raw_at),
            );
            if !input.is_empty() {
                self.last_read = now;
            }
            match streamed {
                Streamed::More(n) => return HeldStep::More(n),
                Streamed::Refused(refused) => {
                    heads.withdraw(answer);
                    return HeldStep::Refused(refused);
                }
                Streamed::Done(n) => used = n,
                // A held answer and a staged one are never a request's both.
                Streamed::Staged => used = 0,
            }
            if echo_chunks {
                self.frame_raw_data();
            }
            self.done = true;
        }
        if self.hand_out(answers) {
            HeldStep::Done(used)
        } else {
            HeldStep::Pause(used)
        }
    }

    /// A complete chunked echo: the data since `raw_at` becomes one chunk, then the last chunk.
    fn frame_raw_data(&mut self) {
        let data = self.out.len() - self.raw_at;
        if data > 0 {
            let mut line = [0u8; 18];
            let size = chunk_size_line(data, &mut line);
            self.out
                .splice(self.raw_at..self.raw_at, size.iter().copied());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"0\r\n\r\n");
    }

    /// Makes `out`'s capacity `capacity` (when larger), if the budget allows.
    fn grow_to(&mut self, capacity: usize) -> bool {
        let more = capacity.saturating_sub(self.out.capacity());
        if more == 0 {
            return true;
        }
        if !self.budget.try_reserve(more as u64) {
            return false;
        }
        // `reserve_exact` asks the allocator for exactly this capacity.
        self.out.reserve_exact(capacity - self.out.len());
        self.reserved += more as u64;
        true
    }

    /// Hands out the next piece of a complete answer, as much as `answers` has room for (at
    /// least a byte); true once all of it is out. A buffer mostly handed out is shrunk, and its
    /// reservation given back, as it goes.
    fn hand_out(&mut self, answers: &mut Answers<'_>) -> bool {
        let piece = answers.room().max(1).min(self.out.len() - self.sent);
        answers.push(&self.out[self.sent..self.sent + piece]);
        self.sent += piece;
        if self.sent == self.out.len() {
            return true;
        }
        if self.sent >= HAND_OUT_SHRINK && self.sent * 2 >= self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
            self.out.shrink_to_fit();
            let capacity = self.out.capacity() as u64;
            self.budget.release(self.reserved.saturating_sub(capacity));
            self.reserved = self.reserved.min(capacity);
        }
        false
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

/// The length of a chunked echo's head and, if `prefix_chunk`, the prefix's chunk after it, at
/// the start of `answer` (our own bytes).
fn head_and_prefix_len(answer: &[u8], prefix_chunk: bool) -> usize {
    let head = memchr::memmem::find(answer, b"\r\n\r\n").map_or(answer.len(), |at| at + 4);
    if !prefix_chunk {
        return head;
    }
    own_chunk(answer, head).map_or(answer.len(), |(_, end)| end)
}

/// One chunk of our own framing at `at`: its data's range and where it ends.
fn own_chunk(bytes: &[u8], at: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let line = memchr::memmem::find(bytes.get(at..)?, b"\r\n")?;
    let size = std::str::from_utf8(&bytes[at..at + line]).ok()?;
    let size = usize::from_str_radix(size, 16).ok()?;
    let data = at + line + 2;
    let end = data.checked_add(size)?.checked_add(2)?;
    (end <= bytes.len()).then_some((data..data + size, end))
}

/// The data of the chunks of our own framing in `bytes`, run together.
fn own_chunks_data(bytes: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some((range, end)) = own_chunk(bytes, at) {
        data.extend_from_slice(&bytes[range]);
        at = end;
    }
    data
}

impl<R: Route> Http<R> {
    /// Withdraws the answer to the request in progress, which starts at `mark` in `answers`
    /// and has not gone out, and uncounts it.
    pub(super) fn withdraw(
        &mut self,
        session: &mut HttpSession,
        mark: usize,
        answers: &mut Answers<'_>,
    ) {
        self.heads.withdraw(&mut session.answer);
        answers.truncate(mark);
    }

    /// A chunked body goes on past this read: moves its answer so far (from `mark`) out of
    /// `answers` into a held answer, or refuses the request when the budget has no room.
    #[cold]
    pub(super) fn hold_answer(
        &mut self,
        session: &mut HttpSession,
        mark: usize,
        answers: &mut Answers<'_>,
    ) -> Result<(), Refusal> {
        let echo = session.answer.reply == Reply::Echo && session.answer.status == 200;
        let prefix_chunk = !self.prefix.is_empty();
        let budget = &self.limits.held;
        match Held::take_over(
            answers.tail(mark),
            echo,
            prefix_chunk,
            budget,
            answers.now(),
        ) {
            Ok(held) => {
                answers.truncate(mark);
                session.aside = Some(Box::new(Aside::Held(held)));
                Ok(())
            }
            Err(refused) => {
                self.withdraw(session, mark, answers);
                Err(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::http::budget::HELD_FULL;
    use crate::framing::http::ChunkedDecoder;

    #[test]
    fn a_held_answer_reserves_its_buffer_and_gives_it_back() {
        let budget = Arc::new(HeldBudget::new(10_000));
        let now = Instant::now();
        let held = Held::reserve(100, &budget, now).unwrap_or_else(|_| panic!("refused"));
        assert_eq!(budget.left(), 10_000 - 100 - HEAD_SLACK as u64);
        let refused = Held::reserve(10_000, &budget, now).err().map(|r| r.status);
        assert_eq!(refused, Some(HELD_FULL), "past what is left of the budget");
        drop(held);
        assert_eq!(budget.left(), 10_000);
    }

    /// A chunked echo taken over after two chunks in the output, then completed in one more
    /// read, goes out as the prefix's chunk and one chunk of all the data.
    #[test]
    fn a_chunked_echo_taken_over_goes_out_as_one_chunk() {
        let budget = Arc::new(HeldBudget::new(1 << 20));
        let now = Instant::now();
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice();
        let started = [head, b"3\r\npre\r\n2\r\nab\r\n"].concat();
        let mut held = Held::take_over(&started, true, true, &budget, now)
            .unwrap_or_else(|_| panic!("refused"));
        let mut body = Body::Chunked(ChunkedDecoder::new());
        let mut answer = Answer {
            reply: Reply::Echo,
            connection: Default::default(),
            status: 200,
        };
        let mut heads = Heads::new(None);
        let input = b"1\r\nc\r\n0\r\n\r\nGET";
        let mut out = Vec::new();
        let step = held.take(
            input,
            &mut body,
            &mut answer,
            1 << 20,
            b"pre",
            &mut heads,
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert!(matches!(step, HeldStep::Done(used) if used == input.len() - 3));
        assert_eq!(out, [head, b"3\r\npre\r\n3\r\nabc\r\n0\r\n\r\n"].concat());
    }

    /// A complete answer goes out in pieces no larger than the room, at least a byte each.
    #[test]
    fn a_complete_answer_is_handed_out_as_room_allows() {
        let budget = Arc::new(HeldBudget::new(1 << 20));
        let now = Instant::now();
        let mut held = Held::reserve(10, &budget, now).unwrap_or_else(|_| panic!("refused"));
        held.answers(now).push(b"0123456789");
        held.done = true;
        let mut out = Vec::new();
        assert!(!held.hand_out(&mut Answers::new(&mut out, 4, now)));
        assert_eq!(out, b"0123");
        assert!(!held.hand_out(&mut Answers::new(&mut out, 0, now)));
        assert_eq!(out, b"01234", "a byte even with no room");
        assert!(held.hand_out(&mut Answers::new(&mut out, 100, now)));
        assert_eq!(out, b"0123456789");
    }
}
