//! What a server did: each event loop counts into its own [`Summary`] (no shared writes on the
//! message path), and the server adds them up at exit.
//!
//! It only counts; it must never do I/O or hold a lock on the message path.

/// What a server did, logged at exit and returned by [`crate::Server::run`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub rejected_full: u64,
    pub closed_idle: u64,
    /// Connections still open when the shutdown timeout ran out (or at a second signal).
    pub cut_at_shutdown: u64,
    /// The most connections open at once, over all workers.
    pub peak_connections: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Summary {
    /// Adds another loop's counts; the peak is the server's own and is set by the caller.
    pub(crate) fn add(&mut self, other: &Summary) {
        self.accepted += other.accepted;
        self.rejected_full += other.rejected_full;
        self.closed_idle += other.closed_idle;
        self.cut_at_shutdown += other.cut_at_shutdown;
        self.peak_connections = self.peak_connections.max(other.peak_connections);
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}
