//! The ready list: connections whose readiness was not used up in a turn (the read budget ran
//! out, a protocol held answers back, a lingering close has bytes to read away), served in the
//! next turn without waiting for an event, because edge-triggered epoll will not report them
//! again. [`Ready`] holds their keys, each once; it never drives a connection itself, and never
//! hands out a connection closed since, nor a newer one that took its slot.

use std::collections::VecDeque;

use super::slots::Slots;
use crate::connection::{Connection, Phase};

/// Slab keys of connections to serve next turn; a connection's `queued` says it is here.
#[derive(Debug, Default)]
pub(super) struct Ready {
    keys: VecDeque<usize>,
}

impl Ready {
    /// Puts the connection in `key` on the list, once.
    pub fn queue<S>(&mut self, conn: &mut Connection<S>, key: usize) {
        if !conn.queued {
            conn.queued = true;
            self.keys.push_back(key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many wait now: a turn serves these, and those queued while they are served wait for
    /// the next turn.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Takes the next key off the list, if its connection still waits (it is off the list from
    /// now): one closed since it was queued is skipped, and so is a newer one that took its
    /// slot, which was never queued. `None` at the end of the list or of `left`.
    pub fn next<S>(&mut self, slots: &mut Slots<S>, left: &mut usize) -> Option<usize> {
        while *left > 0 {
            *left -= 1;
            let key = self.keys.pop_front()?;
            if let Some(conn) = slots.get_mut(key) {
                if conn.queued && conn.phase != Phase::Dead {
                    conn.queued = false;
                    return Some(key);
                }
            }
        }
        None
    }
}
