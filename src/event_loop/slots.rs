//! Where a loop's connections live: a slab keyed by their token, the id that tells a connection
//! from an earlier one in the same slot, the count of those open, and the slots of those closed
//! this turn, freed only once the turn's events are all handled. [`Slots`] keeps them; it never
//! reads, writes or closes a socket, and never frees a slot an event of this turn may still name.

use std::ops::{Index, IndexMut};
use std::time::Instant;

use mio::net::TcpStream;
use slab::Slab;

use super::timers::Timers;
use crate::connection::{Connection, Phase};
use crate::transport::Transport;

/// A loop's connections by slab key (their token).
#[derive(Debug)]
pub(super) struct Slots<S> {
    slab: Slab<Connection<S>>,
    /// Slots of connections closed this turn, freed once the turn's events are all handled.
    dead: Vec<usize>,
    /// Connections open (in the slab and not dead).
    open: usize,
    next_id: u64,
}

impl<S> Default for Slots<S> {
    fn default() -> Self {
        Slots {
            slab: Slab::new(),
            dead: Vec::new(),
            open: 0,
            next_id: 0,
        }
    }
}

impl<S> Slots<S> {
    /// The key the next connection will get: its token, to register it under first.
    pub fn next_key(&self) -> usize {
        self.slab.vacant_key()
    }

    /// A new connection on `socket`, in the slot [`Slots::next_key`] named, with a new id.
    pub fn insert(&mut self, socket: TcpStream, transport: Transport, now: Instant) -> usize
    where
        S: Default,
    {
        let id = self.next_id;
        self.next_id += 1;
        self.open += 1;
        self.slab
            .insert(Connection::new(socket, transport, id, now))
    }

    #[inline]
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Connection<S>> {
        self.slab.get_mut(key)
    }

    pub fn open(&self) -> usize {
        self.open
    }

    /// The keys of the connections not closed yet.
    pub fn live_keys(&self) -> Vec<usize> {
        let live = self
            .slab
            .iter()
            .filter(|(_, conn)| conn.phase != Phase::Dead);
        live.map(|(key, _)| key).collect()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Connection<S>)> {
        self.slab.iter_mut()
    }

    /// Among the connections `idle` says yes to, the one silent the longest. Scans the slab:
    /// only side loops, with a few dozen connections, ask.
    pub fn idle_longest(&self, idle: impl Fn(&Connection<S>) -> bool) -> Option<usize> {
        (self.slab.iter())
            .filter(|(_, conn)| idle(conn))
            .min_by_key(|(_, conn)| conn.last_active)
            .map(|(key, _)| key)
    }

    /// The connection in `key` is closed: dead now, its slot freed at the end of the turn.
    pub fn retire(&mut self, key: usize) {
        self.slab[key].phase = Phase::Dead;
        self.dead.push(key);
        self.open -= 1;
    }

    /// Frees the slots of the connections closed this turn, and lets `timers` drop the entries
    /// of closed connections; true if there were any (their descriptors are free to accept
    /// into only now).
    pub fn free_dead(&mut self, timers: &mut Timers) -> bool {
        if self.dead.is_empty() {
            return false;
        }
        for key in self.dead.drain(..) {
            self.slab.remove(key);
        }
        let slab = &self.slab;
        timers.sweep(self.open, |entry| {
            slab.get(entry.key)
                .is_some_and(|conn| entry.is_for(conn.id, conn.timer_at))
        });
        true
    }
}

impl<S> Index<usize> for Slots<S> {
    type Output = Connection<S>;

    #[inline]
    fn index(&self, key: usize) -> &Connection<S> {
        &self.slab[key]
    }
}

impl<S> IndexMut<usize> for Slots<S> {
    #[inline]
    fn index_mut(&mut self, key: usize) -> &mut Connection<S> {
        &mut self.slab[key]
    }
}
