//! What a loop counts ([`Counters`]), and whether the counts that change per connection rather
//! than per message changed since the last publish. The message path adds to the counters
//! directly; a [`Tally`] never costs it more than that, and publishes once per turn, never per
//! message.

use crate::framing::ProtocolCounts;
use crate::metrics::{Counters, Published};

#[derive(Debug)]
pub(super) struct Tally {
    /// What this loop did, counted here and nowhere else (see [`crate::metrics`]).
    pub counters: Counters,
    /// A counter that changes per connection rather than per message (accepts, refusals,
    /// closes, pauses, accept errors) changed since the last publish: only then are they stored.
    cold_changed: bool,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counters: Counters::default(),
            cold_changed: true,
        }
    }
}

impl Tally {
    /// The counters, to change one that changes per connection rather than per message.
    pub fn cold(&mut self) -> &mut Counters {
        self.cold_changed = true;
        &mut self.counters
    }

    /// Makes this turn's counts visible to a scrape in `slot`, with `open` connections, the
    /// protocol's counts and those of the protocol its connections upgrade to, if any.
    pub fn publish(
        &mut self,
        slot: &Published,
        open: usize,
        protocol: &ProtocolCounts,
        upgraded: Option<&ProtocolCounts>,
    ) {
        self.counters.open = open as u64;
        slot.store_hot(&self.counters, protocol, upgraded);
        if std::mem::take(&mut self.cold_changed) {
            slot.store_cold(&self.counters);
        }
    }

    /// What this loop counted, with `open` connections still open, for the summary.
    pub fn into_counters(self, open: usize) -> Counters {
        Counters {
            open: open as u64,
            ..self.counters
        }
    }
}
