//! The process-wide budget of held answers (`--max-held`): every answer kept in memory until its
//! request is complete (a held answer, `held`; a staged one, `staged`) reserves its buffer here
//! before it grows and gives it back as it shrinks or goes, and a request whose answer does not
//! fit is refused `503`. It must never let the reservations pass the budget, and costs a request
//! that keeps no answer nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::request::{refusal, Refusal};

/// The 503 for a request whose answer does not fit in what is left of `--max-held`.
pub(super) const HELD_FULL: &str = "503 Service Unavailable";

/// Bytes of held answers the whole process may keep (`--max-held`), reserved before a held
/// answer's buffer grows and given back as it shrinks or goes: one atomic, touched only by
/// requests whose bodies span reads, and by requests with controls.
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

/// The answer to a request whose held answer would not fit in what is left of `--max-held`.
pub(super) fn held_full() -> Refusal {
    refusal(
        HELD_FULL,
        "the server holds as many answers as --max-held allows; try again",
    )
}

/// The content of a staged answer as far as it is shown (`keep` bytes at most), and the length
/// of all of it, with its buffer's capacity reserved in the `--max-held` budget.
#[derive(Debug)]
pub(super) struct Kept {
    pub bytes: Vec<u8>,
    /// Bytes of content seen, kept or not.
    pub seen: u64,
    keep: u64,
    /// Bytes reserved in `budget`: the capacity of `bytes`.
    reserved: u64,
    budget: Arc<HeldBudget>,
    /// The budget refused to grow `bytes`.
    full: bool,
}

impl Kept {
    pub(super) fn new(keep: u64, budget: Arc<HeldBudget>) -> Kept {
        Kept {
            bytes: Vec::new(),
            seen: 0,
            keep,
            reserved: 0,
            budget,
            full: false,
        }
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        let room = self.keep.saturating_sub(self.bytes.len() as u64);
        let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if take == 0 || self.full {
            return;
        }
        let want = self.bytes.len() + take;
        if want > self.bytes.capacity() {
            // Doubling, within what is kept at most.
            let keep = usize::try_from(self.keep).unwrap_or(usize::MAX);
            let capacity = want.max((self.bytes.capacity() * 2).min(keep));
            let more = (capacity - self.bytes.capacity()) as u64;
            if !self.budget.try_reserve(more) {
                self.full = true;
                return;
            }
            self.bytes.reserve_exact(capacity - self.bytes.len());
            self.reserved += more;
        }
        self.bytes.extend_from_slice(&data[..take]);
    }

    /// Makes `data` all the content there is.
    pub(super) fn replace(&mut self, data: &[u8]) {
        self.bytes.clear();
        self.seen = 0;
        self.push(data);
    }

    /// A 503 once the budget has refused a byte.
    pub(super) fn check(&self) -> Result<(), Refusal> {
        match self.full {
            true => Err(held_full()),
            false => Ok(()),
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}
