//! The drain's say in a connection's life: when a connection may be closed between two messages
//! (idle at a message boundary for `--drain-quiet`), whether a look finds it still quiet, and which
//! connections it parted, so that their close counts as `drain`. A [`Drain`] decides and
//! remembers; it never closes, reads or writes a connection itself (a one-byte peek excepted),
//! and costs nothing before the drain.

use std::collections::HashSet;
use std::io;
use std::time::{Duration, Instant};

use super::slots::Slots;
use super::timers::Timers;
use crate::connection::{Connection, Phase};
use crate::framing::Protocol;

/// The connections the drain parted, until their close.
#[derive(Debug)]
pub(super) struct Drain {
    /// Connections closed at a message boundary for the drain, by id, until their lingering
    /// close ends: they count as `drain`. A set beside the slab rather than a field, so a
    /// connection stays as small as it was; empty until the drain.
    parting: HashSet<u64>,
    /// `--drain-quiet`: how long a connection idle at a message boundary stays.
    quiet: Duration,
}

/// What a look at a connection idle at a message boundary found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// Nothing arrived: close it with our FIN and the lingering close after it, as after a
    /// protocol's last word. From now it counts as parted.
    Part,
    /// Something waits to be read (input, the peer's FIN or an error; the read finds out
    /// which): a byte would be lost to the FIN, so it is read and answered first, and looked at
    /// again `again`.
    ReadFirst { again: Instant },
}

impl Drain {
    pub fn new(quiet: Duration) -> Drain {
        Drain {
            parting: HashSet::new(),
            quiet,
        }
    }

    /// During the drain, when to look at a connection again: one idle at a message boundary (the
    /// protocol holds nothing, no answer waits, nothing is left to read) may be closed once it
    /// has been quiet for `--drain-quiet`; one busy or in the middle of a message is looked at
    /// again after that long; one already closing needs no look.
    pub fn look_at<P: Protocol>(
        &self,
        protocol: &P,
        conn: &Connection<P::Session>,
        now: Instant,
    ) -> Option<Instant> {
        match conn.phase {
            Phase::Open if Drain::at_boundary(protocol, conn) => {
                Some(conn.last_active + self.quiet)
            }
            Phase::Open | Phase::Paused | Phase::Waiting => Some(now + self.quiet),
            Phase::PeerDone | Phase::Closing | Phase::Lingering | Phase::Dead => None,
        }
    }

    /// Whether an open connection is idle at a message boundary: the protocol holds nothing of
    /// a message, no answer waits, nothing is left to read. Closing it cuts nothing.
    pub fn at_boundary<P: Protocol>(protocol: &P, conn: &Connection<P::Session>) -> bool {
        conn.all_sent::<false>()
            && !conn.has_input::<false>()
            && !conn.queued
            && protocol.at_boundary(&conn.session)
    }

    /// The drain begins: every connection gets a look on `timers`, which from now on closes
    /// those idle at a message boundary; activity only moves the look later, as with idle
    /// timeouts.
    pub fn start<P: Protocol>(
        &self,
        protocol: &P,
        slots: &mut Slots<P::Session>,
        timers: &mut Timers,
        now: Instant,
    ) {
        for (key, conn) in slots.iter_mut() {
            if let Some(at) = self.look_at(protocol, conn, now) {
                timers.arm(&mut conn.timer_at, at, key, conn.id);
            }
        }
    }

    /// The look [`Drain::look_at`] set came due at `now` and found the connection idle at a
    /// boundary: parts it, unless a byte arrived since its last read.
    pub fn look<S>(&mut self, conn: &Connection<S>, now: Instant) -> Look {
        match conn.socket.peek(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.parting.insert(conn.id);
                Look::Part
            }
            _ => Look::ReadFirst {
                again: now + self.quiet,
            },
        }
    }

    /// Connection `id`, in its lingering close, has closed: true if the drain parted it, and
    /// then its close counts as `drain`.
    pub fn parted(&mut self, id: u64) -> bool {
        self.parting.remove(&id)
    }
}
