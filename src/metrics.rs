//! What a server did and is doing: each event loop counts into plain [`Counters`] it owns (no
//! shared writes, no atomics on the message path), its protocol counts the messages it answers
//! ([`ProtocolCounts`]), and once per turn of its loop, when `--metrics-listen` is on, the loop
//! publishes both into its own [`Published`] slot. A scrape adds the slots up ([`Snapshot`]);
//! the exit [`Summary`] is made from the same counters.
//!
//! It only counts; it must never do I/O, lock, or write a value another thread also writes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connection ended, as `saythat_connections_closed_total{reason}` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (or asked to close, e.g. `Connection: close`), and every answer was
    /// written.
    Client,
    /// Silent for `--idle-timeout`.
    Idle,
    /// The peer reset the connection (ECONNRESET, EPIPE).
    Reset,
    /// Any other I/O error.
    Error,
    /// Still open when the shutdown timeout ran out, or at a second signal.
    Shutdown,
    /// Closed by us during the drain at a message boundary, idle, with every answer written and
    /// a clean FIN (HTTP: after an answer that said `Connection: close` for the drain).
    Drain,
    /// Line framing: a line longer than `--max-line` got its error line.
    LineTooLong,
    /// HTTP: a request got an error response (4xx/5xx) and the connection closed after it.
    HttpError,
    /// We reset the connection (`SO_LINGER` 0) because the protocol asked to
    /// ([`crate::framing::Next::Reset`]): a fault injected on purpose.
    Aborted,
    /// WebSocket: pinged after `--ws-ping` of silence, the client sent nothing within
    /// `--idle-timeout`, and got a close 1001.
    WsPingTimeout,
    /// TLS: the peer broke the protocol (garbage instead of a ClientHello, a plain HTTP request,
    /// a refused client certificate, a bad record, a close during the handshake) and got an
    /// alert.
    TlsError,
    /// TLS: the handshake did not complete within `--handshake-timeout`.
    HandshakeTimeout,
}

impl CloseReason {
    pub const ALL: [CloseReason; 12] = [
        CloseReason::Client,
        CloseReason::Idle,
        CloseReason::Reset,
        CloseReason::Error,
        CloseReason::Shutdown,
        CloseReason::Drain,
        CloseReason::LineTooLong,
        CloseReason::HttpError,
        CloseReason::Aborted,
        CloseReason::WsPingTimeout,
        CloseReason::TlsError,
        CloseReason::HandshakeTimeout,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Idle => "idle",
            CloseReason::Reset => "reset",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Drain => "drain",
            CloseReason::LineTooLong => "line_too_long",
            CloseReason::HttpError => "http_error",
            CloseReason::Aborted => "aborted",
            CloseReason::WsPingTimeout => "ws_ping_timeout",
            CloseReason::TlsError => "tls_error",
            CloseReason::HandshakeTimeout => "handshake_timeout",
        }
    }

    /// The reason of a failed read or write: a reset by the peer, a peer that broke TLS (the
    /// transport's errors are the only `InvalidData` a socket gives), or an error of ours.
    pub fn of_io_error(e: &std::io::Error) -> CloseReason {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, InvalidData};
        match e.kind() {
            ConnectionReset | BrokenPipe | ConnectionAborted => CloseReason::Reset,
            InvalidData => CloseReason::TlsError,
            _ => CloseReason::Error,
        }
    }
}

/// Why `accept` failed, as `saythat_accept_errors_total{kind}` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// Out of file descriptors (EMFILE, ENFILE): accepting pauses until one is free.
    Emfile,
    /// Anything else (an aborted connection, out of memory).
    Other,
}

impl AcceptError {
    pub const ALL: [AcceptError; 2] = [AcceptError::Emfile, AcceptError::Other];

    pub fn label(self) -> &'static str {
        match self {
            AcceptError::Emfile => "emfile",
            AcceptError::Other => "other",
        }
    }
}

/// What one event loop counts about its connections. Plain integers, written by that loop only;
/// [`Published`] is how other threads see them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Connections open now.
    pub open: u64,
    pub accepted: u64,
    /// Connections refused at `--max-conns`.
    pub refused_full: u64,
    /// Connections closed, by [`CloseReason`] (indexed by its discriminant).
    pub closed: [u64; CloseReason::ALL.len()],
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Answer bytes waiting to be written now.
    pub pending: u64,
    /// Times a connection stopped being read because its answers or its protocol waited for
    /// the client to read (output at `--max-pending`).
    pub pauses: u64,
    /// Failed accepts, by [`AcceptError`].
    pub accept_errors: [u64; AcceptError::ALL.len()],
}

impl Counters {
    #[inline]
    pub fn close(&mut self, reason: CloseReason) {
        self.closed[reason as usize] += 1;
    }

    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize]
    }

    fn add(&mut self, other: &Counters) {
        self.open += other.open;
        self.accepted += other.accepted;
        self.refused_full += other.refused_full;
        add_each(&mut self.closed, &other.closed);
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.pending += other.pending;
        self.pauses += other.pauses;
        add_each(&mut self.accept_errors, &other.accept_errors);
    }
}

fn add_each(into: &mut [u64], from: &[u64]) {
    for (into, from) in into.iter_mut().zip(from) {
        *into += from;
    }
}

/// HTTP status codes one loop tells apart: room for the codes saythat answers itself and the
/// 16 weighted choices of a `status` control (issue 17); a loop that answered more distinct
/// codes than this counts the rest under the last one.
pub const STATUS_SLOTS: usize = 32;

/// What a protocol counts itself, since only it knows where messages end: one per loop, in the
/// protocol's rules, written only by that loop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProtocolCounts {
    /// Answers: chunks, lines, HTTP responses (error responses included, `100 Continue` not).
    pub messages: u64,
    /// HTTP responses by status code: `(code, count)`, codes in the order first answered, a
    /// code of 0 marking the free slots.
    pub responses: [(u16, u64); STATUS_SLOTS],
    /// What HTTP's test-backend controls did.
    pub controls: ControlCounts,
    /// What the WebSocket echo did (a protocol that upgrades to it counts into its own).
    pub ws: WsCounts,
}

/// The close codes the WebSocket metrics tell apart, by number: those RFC 6455 §7.4.1 defines
/// for the wire, and 1005, which it reserves to report a close frame without a code. Any other
/// (a library's or an application's 3000-4999, an invalid one) is `other`, so the label set
/// stays bounded whatever clients send.
pub const WS_CLOSE_CODES: [u16; 10] = [1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1011];
/// The `code` label of each slot of [`WsCounts`]'s close counts: [`WS_CLOSE_CODES`], then
/// `other`.
pub const WS_CLOSE_LABELS: [&str; WS_CLOSE_CODES.len() + 1] = [
    "1000", "1001", "1002", "1003", "1005", "1007", "1008", "1009", "1010", "1011", "other",
];
const WS_CLOSE_SLOTS: usize = WS_CLOSE_LABELS.len();
/// The fields of [`WsCounts`] as one array, for publishing.
const WS_FIELDS: usize = 6 + 2 * WS_CLOSE_SLOTS;

/// What the WebSocket echo counts: connections upgraded and ended, data messages and their
/// payload bytes each way, close frames each way by code. Written by the message path of
/// WebSocket connections only (a few increments per read); other connections never touch it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WsCounts {
    /// Connections that upgraded; those still open are `opened - ended`.
    pub opened: u64,
    pub ended: u64,
    /// Data messages (text or binary) the clients began, counted at their first frame.
    pub messages_in: u64,
    /// Data messages answered whole (the last answer frame of each).
    pub messages_out: u64,
    /// Payload bytes of the clients' data frames.
    pub bytes_in: u64,
    /// Payload bytes of the answers' data frames, prefix included.
    pub bytes_out: u64,
    /// Close frames sent, by [`WS_CLOSE_LABELS`] slot.
    pub closes_sent: [u64; WS_CLOSE_SLOTS],
    /// Close frames received, by [`WS_CLOSE_LABELS`] slot.
    pub closes_received: [u64; WS_CLOSE_SLOTS],
}

impl WsCounts {
    /// The slot of close code `code` (`None`: a close frame without one, counted as 1005).
    pub fn close_slot(code: Option<u16>) -> usize {
        let code = code.unwrap_or(1005);
        (WS_CLOSE_CODES.iter().position(|&c| c == code)).unwrap_or(WS_CLOSE_SLOTS - 1)
    }

    fn to_array(self) -> [u64; WS_FIELDS] {
        let mut all = [0; WS_FIELDS];
        all[..6].copy_from_slice(&[
            self.opened,
            self.ended,
            self.messages_in,
            self.messages_out,
            self.bytes_in,
            self.bytes_out,
        ]);
        all[6..6 + WS_CLOSE_SLOTS].copy_from_slice(&self.closes_sent);
        all[6 + WS_CLOSE_SLOTS..].copy_from_slice(&self.closes_received);
        all
    }

    fn from_array(all: [u64; WS_FIELDS]) -> WsCounts {
        let slots = |from: usize| std::array::from_fn(|i| all[from + i]);
        WsCounts {
            opened: all[0],
            ended: all[1],
            messages_in: all[2],
            messages_out: all[3],
            bytes_in: all[4],
            bytes_out: all[5],
            closes_sent: slots(6),
            closes_received: slots(6 + WS_CLOSE_SLOTS),
        }
    }

    fn add(&mut self, other: &WsCounts) {
        let mut sum = self.to_array();
        add_each(&mut sum, &other.to_array());
        *self = WsCounts::from_array(sum);
    }

    /// WebSocket connections open now.
    pub fn open(&self) -> u64 {
        self.opened.saturating_sub(self.ended)
    }
}

/// What HTTP's test-backend controls (issue 17) did: answers delayed and dripped, and the
/// faults injected, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlCounts {
    /// Answers whose head waited for a `delay`.
    pub delayed: u64,
    /// Answers whose body went out in `drip`s.
    pub dripped: u64,
    /// Connections reset (`reset`), before the head or halfway through the body.
    pub resets: u64,
    /// Answers that closed their connection because a `close` control drew it.
    pub closes: u64,
}

impl ControlCounts {
    fn to_array(self) -> [u64; 4] {
        [self.delayed, self.dripped, self.resets, self.closes]
    }

    fn from_array([delayed, dripped, resets, closes]: [u64; 4]) -> ControlCounts {
        ControlCounts {
            delayed,
            dripped,
            resets,
            closes,
        }
    }

    fn add(&mut self, other: &ControlCounts) {
        let mut sum = self.to_array();
        add_each(&mut sum, &other.to_array());
        *self = ControlCounts::from_array(sum);
    }
}

impl ProtocolCounts {
    /// One more answer.
    #[inline]
    pub fn message(&mut self) {
        self.messages += 1;
    }

    /// One more HTTP response (and answer) with status `code`.
    pub fn response(&mut self, code: u16) {
        self.messages += 1;
        let last = STATUS_SLOTS - 1;
        let slot = (0..last)
            .find(|&i| self.responses[i].0 == code || self.responses[i].0 == 0)
            .unwrap_or(last);
        let (slot_code, count) = &mut self.responses[slot];
        if *slot_code == 0 {
            *slot_code = code;
        }
        *count += 1;
    }

    /// Uncounts a response counted by `response` and then withdrawn before it was sent.
    pub fn withdraw(&mut self, code: u16) {
        self.messages = self.messages.saturating_sub(1);
        if let Some((_, count)) = self.responses.iter_mut().find(|(slot, _)| *slot == code) {
            *count = count.saturating_sub(1);
        }
    }

    /// The count of responses with status `code`.
    pub fn responses(&self, code: u16) -> u64 {
        self.responses
            .iter()
            .filter(|(c, _)| *c == code)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One loop's counters as other threads see them: relaxed atomics, each stored by that loop
/// only (a store, never a read-modify-write), once per turn. Aligned to its own cache lines, so
/// loops publishing side by side do not slow each other.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Published {
    open: AtomicU64,
    accepted: AtomicU64,
    refused_full: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pending: AtomicU64,
    pauses: AtomicU64,
    accept_errors: [AtomicU64; AcceptError::ALL.len()],
    messages: AtomicU64,
    /// The status codes of `responses`, slot by slot (0: a free slot).
    codes: [AtomicU64; STATUS_SLOTS],
    responses: [AtomicU64; STATUS_SLOTS],
    /// [`ControlCounts`], in its field order.
    controls: [AtomicU64; 4],
    /// [`WsCounts`], in its array order: the totals, then the close codes (two arrays, since
    /// `Default` stops at 32 elements).
    ws_totals: [AtomicU64; 6],
    ws_closes: [AtomicU64; WS_FIELDS - 6],
}

impl Published {
    /// Stores this loop's current values. Called by the owning loop only.
    pub fn store(&self, counters: &Counters, protocol: &ProtocolCounts) {
        self.store_hot(counters, protocol, None);
        self.store_cold(counters);
    }

    /// Stores the values that change per message (and the open count), with the counts of the
    /// protocol connections upgrade to, if any (its messages are added to the protocol's). The
    /// owning loop only.
    pub fn store_hot(
        &self,
        counters: &Counters,
        protocol: &ProtocolCounts,
        upgraded: Option<&ProtocolCounts>,
    ) {
        let c = counters;
        self.open.store(c.open, Relaxed);
        self.bytes_in.store(c.bytes_in, Relaxed);
        self.bytes_out.store(c.bytes_out, Relaxed);
        self.pending.store(c.pending, Relaxed);
        let upgraded_messages = upgraded.map_or(0, |u| u.messages);
        self.messages
            .store(protocol.messages + upgraded_messages, Relaxed);
        // Only a loop where a connection upgraded has WebSocket counts to store.
        let ws = upgraded.map_or(&protocol.ws, |u| &u.ws);
        if ws.opened != 0 {
            let all = ws.to_array();
            store_each(&self.ws_totals, &all[..6]);
            store_each(&self.ws_closes, &all[6..]);
        }
        // Only a protocol that answered statuses has any to store.
        for (i, &(code, count)) in protocol.responses.iter().enumerate() {
            if code == 0 {
                break;
            }
            self.codes[i].store(u64::from(code), Relaxed);
            self.responses[i].store(count, Relaxed);
        }
        store_each(&self.controls, &protocol.controls.to_array());
    }

    /// Stores the values that change per connection: accepts, refusals, closes, pauses, accept
    /// errors. The owning loop only, when one of them changed.
    pub fn store_cold(&self, counters: &Counters) {
        let c = counters;
        self.accepted.store(c.accepted, Relaxed);
        self.refused_full.store(c.refused_full, Relaxed);
        store_each(&self.closed, &c.closed);
        self.pauses.store(c.pauses, Relaxed);
        store_each(&self.accept_errors, &c.accept_errors);
    }

    /// The values last stored.
    pub fn load(&self) -> (Counters, ProtocolCounts) {
        let counters = Counters {
            open: self.open.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            refused_full: self.refused_full.load(Relaxed),
            closed: load_each(&self.closed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            pending: self.pending.load(Relaxed),
            pauses: self.pauses.load(Relaxed),
            accept_errors: load_each(&self.accept_errors),
        };
        let mut protocol = ProtocolCounts {
            messages: self.messages.load(Relaxed),
            controls: ControlCounts::from_array(load_each(&self.controls)),
            ws: WsCounts::from_array(std::array::from_fn(|i| match i {
                0..6 => self.ws_totals[i].load(Relaxed),
                _ => self.ws_closes[i - 6].load(Relaxed),
            })),
            ..ProtocolCounts::default()
        };
        for (slot, (code, count)) in protocol
            .responses
            .iter_mut()
            .zip(self.codes.iter().zip(&self.responses))
        {
            // A code stored before its count: a count read with a code of 0 is skipped.
            *slot = (code.load(Relaxed) as u16, count.load(Relaxed));
        }
        (counters, protocol)
    }
}

fn store_each(into: &[AtomicU64], from: &[u64]) {
    for (into, &from) in into.iter().zip(from) {
        into.store(from, Relaxed);
    }
}

fn load_each<const N: usize>(from: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| from[i].load(Relaxed))
}

/// Every loop's published values, added up for a scrape; open connections are kept per loop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub total: Counters,
    pub protocol: ProtocolCounts,
    /// Open connections of each loop, in worker order.
    pub open_per_worker: Vec<u64>,
}

impl Snapshot {
    pub fn of(loops: &[Published]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for published in loops {
            let (counters, protocol) = published.load();
            snapshot.total.add(&counters);
            snapshot.open_per_worker.push(counters.open);
            snapshot.protocol.messages += protocol.messages;
            snapshot.protocol.controls.add(&protocol.controls);
            snapshot.protocol.ws.add(&protocol.ws);
            for (code, count) in protocol.responses {
                if code != 0 {
                    add_response(&mut snapshot.protocol, code, count);
                }
            }
        }
        snapshot
    }
}

fn add_response(counts: &mut ProtocolCounts, code: u16, count: u64) {
    match counts
        .responses
        .iter_mut()
        .find(|(c, _)| *c == code || *c == 0)
    {
        Some(slot) => *slot = (code, slot.1 + count),
        None => counts.responses[STATUS_SLOTS - 1].1 += count,
    }
}

/// What a server did, logged at exit and returned by [`crate::Server::run`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub rejected_full: u64,
    pub closed_idle: u64,
    /// Connections still open when the shutdown timeout ran out (or at a second signal).
    pub cut_at_shutdown: u64,
    /// Connections the drain closed cleanly at a message boundary.
    pub closed_at_drain: u64,
    /// The most connections open at once, over all workers.
    pub peak_connections: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Summary {
    /// Adds a loop's counts; the peak is the server's own and is set by the caller.
    pub(crate) fn add(&mut self, counters: &Counters) {
        self.accepted += counters.accepted;
        self.rejected_full += counters.refused_full;
        self.closed_idle += counters.closed(CloseReason::Idle);
        self.cut_at_shutdown += counters.closed(CloseReason::Shutdown);
        self.closed_at_drain += counters.closed(CloseReason::Drain);
        self.bytes_in += counters.bytes_in;
        self.bytes_out += counters.bytes_out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_code() {
        let mut counts = ProtocolCounts::default();
        for code in [200, 200, 404, 200, 400] {
            counts.response(code);
        }
        assert_eq!(counts.messages, 5);
        assert_eq!(counts.responses(200), 3);
        assert_eq!(counts.responses(404), 1);
        assert_eq!(counts.responses(400), 1);
        assert_eq!(counts.responses(503), 0);
    }

    #[test]
    fn more_codes_than_slots_are_kept_in_the_last() {
        let mut counts = ProtocolCounts::default();
        for code in 100..100 + STATUS_SLOTS as u16 + 3 {
            counts.response(code);
        }
        let total: u64 = counts.responses.iter().map(|(_, n)| n).sum();
        assert_eq!(total, STATUS_SLOTS as u64 + 3);
    }

    #[test]
    fn a_snapshot_adds_every_loop() {
        let loops = [Published::default(), Published::default()];
        let mut a = Counters {
            open: 2,
            accepted: 5,
            bytes_in: 100,
            ..Counters::default()
        };
        a.close(CloseReason::Idle);
        let mut pa = ProtocolCounts::default();
        pa.response(200);
        pa.response(400);
        loops[0].store(&a, &pa);
        let b = Counters {
            open: 1,
            accepted: 1,
            bytes_in: 10,
            ..Counters::default()
        };
        let mut pb = ProtocolCounts::default();
        pb.response(400);
        loops[1].store(&b, &pb);
        let snapshot = Snapshot::of(&loops);
        assert_eq!(snapshot.open_per_worker, [2, 1]);
        assert_eq!(snapshot.total.accepted, 6);
        assert_eq!(snapshot.total.bytes_in, 110);
        assert_eq!(snapshot.total.closed(CloseReason::Idle), 1);
        assert_eq!(snapshot.protocol.messages, 3);
        assert_eq!(snapshot.protocol.responses(400), 2);
        assert_eq!(snapshot.protocol.responses(200), 1);
    }
}
