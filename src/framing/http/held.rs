//! A held answer: the answer to an HTTP request whose body spans reads, kept until the body is
//! complete and then handed out under the output cap, and the process-wide budget
//! (`--max-held`) every held answer reserves its buffer from. It must never grow a buffer the
//! budget did not grant, nor keep a reservation once its answer is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Answers;

/// A held answer is moved down in its buffer, and the buffer shrunk, once this much of it has
/// been handed out (and half of it): a slow reader's answer gives its memory back as it goes, and
/// each byte is moved at most once on average.
const HAND_OUT_SHRINK: usize = 64 * 1024;

/// Bytes of held answers the whole process may keep (`--max-held`), reserved before a held
/// answer's buffer grows and given back as it shrinks or goes: one atomic, touched only by
/// requests whose bodies span reads.
#[derive(Debug)]
pub struct HeldBudget {
    /// Bytes not reserved.
    left: AtomicU64,
}

impl HeldBudget {
    pub fn new(bytes: u64) -> HeldBudget {
        HeldBudget {
            left: AtomicU64::new(bytes),
        }
    }

    /// Takes `bytes` from the budget if that many are left.
    pub(super) fn try_reserve(&self, bytes: u64) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    pub(super) fn release(&self, bytes: u64) {
        self.left.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Bytes not reserved, for tests and metrics.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Acquire)
    }
}

/// The answer to a request whose body spans reads, held until the body is complete, then handed
/// out. Its buffer's capacity is reserved in the budget; dropping it (the connection closed, the
/// request refused) gives the reservation back.
#[derive(Debug)]
pub(super) struct Held {
    /// The answer: in wire format up to `raw_at`; after it, a chunked echo's body data as it came,
    /// framed as one chunk once the body is complete.
    pub(super) out: Vec<u8>,
    pub(super) raw_at: usize,
    /// Bytes of `out` handed out so far, once the body is complete.
    pub(super) sent: usize,
    /// The body is complete: `out` is being handed out.
    pub(super) done: bool,
    /// When body bytes last arrived (or reading resumed), for `--body-timeout`.
    pub(super) last_read: Instant,
    /// Bytes reserved in `budget`: the capacity of `out`.
    pub(super) reserved: u64,
    pub(super) budget: Arc<HeldBudget>,
}

impl Held {
    /// Makes `out`'s capacity `capacity` (when larger), if the budget allows.
    pub(super) fn grow_to(&mut self, capacity: usize) -> bool {
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
    pub(super) fn hand_out(&mut self, answers: &mut Answers<'_>) -> bool {
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
pub(super) fn head_and_prefix_len(answer: &[u8], prefix_chunk: bool) -> usize {
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
pub(super) fn own_chunks_data(bytes: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some((range, end)) = own_chunk(bytes, at) {
        data.extend_from_slice(&bytes[range]);
        at = end;
    }
    data
}
