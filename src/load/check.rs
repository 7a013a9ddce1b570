//! What a load connection sends and what it must get back, as pure functions: no I/O.
//!
//! Messages are regenerated from a seed, so no connection stores what it sent, and payload bytes
//! never equal the prefix's first byte, so an echo answer stream parses one way only however the
//! server cut it. This file holds the echo framings' checker; HTTP's, framed by headers, is in
//! `http.rs`. It must never accept a byte other than the one expected.

use std::net::SocketAddr;

use super::http::{HttpChecker, HttpMethod, RequestShape};
use crate::config::FramingKind;

/// Bytes messages are made of before the prefix's first byte is taken out: printable, so error
/// descriptions read well, and without `\n`, which only ends a line in line framing.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Received bytes quoted before a wrong byte in an error description.
const CONTEXT: usize = 24;

/// The 64-bit finaliser of splitmix64: spreads a counter over all bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The seed of message `seq` of connection `conn`: differs per message and per connection, so an
/// answer that is duplicated, stale or meant for another connection does not match.
pub(crate) fn seed(conn: u64, seq: u64) -> u64 {
    mix(mix(conn.wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ seq)
}

/// The wire protocol as the load generator sees it: the messages it sends and how answers look.
#[derive(Debug)]
pub(crate) struct Protocol {
    /// Bytes the server puts before every answer (or every answered read in chunk framing; in
    /// HTTP, before the body).
    pub(super) prefix: Vec<u8>,
    /// Chunk framing: the server may cut a message's answer into several prefixed pieces.
    chunk: bool,
    /// Line framing: a message's last byte is the `\n`.
    line: bool,
    /// Payload bytes per message: the whole message in the echo framings, the path or the body
    /// of a request in HTTP.
    size: u32,
    /// `ALPHABET` without the prefix's first byte.
    alphabet: Vec<u8>,
    /// HTTP framing: the request bytes around every payload.
    request: Option<RequestShape>,
    /// Bytes written per message: `size`, plus the request around it in HTTP.
    wire_size: u32,
}

impl Protocol {
    /// The protocol of `framing`; `method` and `host` only shape HTTP requests.
    pub(crate) fn new(
        prefix: &[u8],
        framing: FramingKind,
        size: u32,
        method: HttpMethod,
        host: SocketAddr,
    ) -> Self {
        let alphabet = ALPHABET
            .iter()
            .copied()
            .filter(|&b| prefix.first() != Some(&b))
            .collect();
        let request = match framing {
            FramingKind::Chunk | FramingKind::Line => None,
            FramingKind::Http => Some(RequestShape::new(method, host, size)),
        };
        let around = request.as_ref().map_or(0, RequestShape::len);
        Protocol {
            prefix: prefix.to_vec(),
            chunk: framing == FramingKind::Chunk,
            line: framing == FramingKind::Line,
            size,
            alphabet,
            // A request's head is a few dozen bytes and `size` at most `MAX_SIZE`.
            wire_size: size.saturating_add(u32::try_from(around).unwrap_or(u32::MAX)),
            request,
        }
    }

    /// The protocol of an echo framing (unit tests).
    #[cfg(test)]
    pub(crate) fn echo(prefix: &[u8], framing: FramingKind, size: u32) -> Self {
        let host = SocketAddr::from(([127, 0, 0, 1], 8080));
        Protocol::new(prefix, framing, size, HttpMethod::Get, host)
    }

    /// Payload bytes per message.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Bytes written per message, request head included.
    pub(crate) fn wire_size(&self) -> u32 {
        self.wire_size
    }

    /// HTTP: the length of every answer's body, prefix and payload.
    pub(super) fn body_len(&self) -> u64 {
        self.prefix.len() as u64 + u64::from(self.size)
    }

    /// Byte `off` of the payload with this seed.
    pub(super) fn byte(&self, seed: u64, off: u32) -> u8 {
        self.bytes(seed, off).next().unwrap_or(b'\n')
    }

    /// The message's bytes from `from` on. One hash gives eight bytes: generating and checking
    /// payloads must cost the load generator far less than the server spends answering them.
    fn bytes(&self, seed: u64, from: u32) -> impl Iterator<Item = u8> + '_ {
        let mut block = (u32::MAX, 0u64);
        (from..self.size).map(move |off| {
            if self.line && off + 1 == self.size {
                return b'\n';
            }
            if block.0 != off / 8 {
                block = (off / 8, mix(seed ^ u64::from(off / 8)));
            }
            let r = (block.1 >> (off % 8 * 8)) as u8;
            // Multiply-shift maps the byte onto the alphabet without a division.
            self.alphabet[(usize::from(r) * self.alphabet.len()) >> 8]
        })
    }

    /// Writes bytes `from..from + out.len()` of the message with this seed into `out`: in HTTP
    /// the request, its head around the payload.
    pub(crate) fn fill(&self, seed: u64, from: u32, out: &mut [u8]) {
        let Some(request) = &self.request else {
            return self.fill_payload(seed, from, out);
        };
        // The request is three parts in a row; each fills what of `out` falls on it.
        let (before, after) = (&request.before[..], &request.after[..]);
        let payload_end = before.len() + self.size as usize;
        let (mut at, mut k) = (from as usize, 0);
        if at < before.len() {
            let n = (before.len() - at).min(out.len());
            out[..n].copy_from_slice(&before[at..at + n]);
            (at, k) = (at + n, n);
        }
        if at < payload_end && k < out.len() {
            let n = (payload_end - at).min(out.len() - k);
            let off = (at - before.len()) as u32;
            self.fill_payload(seed, off, &mut out[k..k + n]);
            (at, k) = (at + n, k + n);
        }
        if k < out.len() {
            let after = after.get(at - payload_end..).unwrap_or_default();
            let n = after.len().min(out.len() - k);
            out[k..k + n].copy_from_slice(&after[..n]);
        }
    }

    /// Writes payload bytes `from..from + out.len()` of the message with this seed into `out`.
    fn fill_payload(&self, seed: u64, from: u32, out: &mut [u8]) {
        for (b, expected) in out.iter_mut().zip(self.bytes(seed, from)) {
            *b = expected;
        }
    }

    /// Where `got`, read from payload byte `from` of the message with this seed on, first differs.
    pub(super) fn mismatch(&self, seed: u64, from: u32, got: &[u8]) -> Option<usize> {
        got.iter()
            .zip(self.bytes(seed, from))
            .position(|(&g, e)| g != e)
    }

    /// The whole payload with this seed (tests; the loop uses `fill`).
    #[cfg(test)]
    pub(crate) fn message(&self, seed: u64) -> Vec<u8> {
        let mut m = vec![0; self.size as usize];
        self.fill_payload(seed, 0, &mut m);
        m
    }

    /// Where an answer stream starts, and starts again after every complete answer.
    fn answer_start(&self) -> At {
        if self.prefix.is_empty() {
            At::Payload { may_split: false }
        } else {
            At::Prefix(0)
        }
    }
}

/// Where the checker is in the answer stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Prefix bytes come next; this many of them matched already. Every answer starts with one:
    /// with one message in flight the server's first read of a message starts a new answer, and
    /// pipelining in chunk framing is only allowed without a prefix.
    Prefix(usize),
    /// Payload bytes come next. `may_split`: a new prefix may come instead (chunk framing, not
    /// right after a prefix, since the server never answers an empty read).
    Payload { may_split: bool },
}

/// What kind of wrong answer was found, for the report's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A byte other than the one expected; in HTTP also a head that does not frame the expected
    /// body (a wrong Content-Length, no length at all, a malformed head or chunk).
    Wrong,
    /// HTTP: a status other than `200 OK`.
    BadStatus,
    /// HTTP: `Connection: close` in an answer, on a connection every request asked to keep.
    ConnectionClose,
}

/// What feeding received bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Messages whose answer is now complete, oldest first.
    pub completed: usize,
    /// The first wrong answer, described; the bytes after it were not looked at.
    pub error: Option<(Fault, String)>,
}

/// Checks one connection's answer stream byte for byte, however the server cut it.
#[derive(Clone, Debug)]
pub(crate) enum Checker {
    Echo(EchoChecker),
    Http(HttpChecker),
}

impl Checker {
    pub(crate) fn new(proto: &Protocol) -> Self {
        match proto.request {
            None => Checker::Echo(EchoChecker::new(proto)),
            Some(_) => Checker::Http(HttpChecker::default()),
        }
    }

    /// Payload bytes of the oldest message in flight received so far.
    pub(crate) fn partial(&self, proto: &Protocol) -> u32 {
        match self {
            Checker::Echo(c) => c.off,
            Checker::Http(c) => c.partial(proto),
        }
    }

    /// Checks `data`, the next bytes from connection `conn`, whose oldest message in flight is
    /// `seq` and which has `in_flight` messages awaiting an answer.
    pub(crate) fn feed(
        &mut self,
        proto: &Protocol,
        conn: u64,
        seq: u64,
        in_flight: usize,
        data: &[u8],
    ) -> Fed {
        match self {
            Checker::Echo(c) => c.feed(proto, conn, seq, in_flight, data),
            Checker::Http(c) => c.feed(proto, conn, seq, in_flight, data),
        }
    }
}

/// The echo framings' checker: answers are the prefix and the payload, cut anywhere in chunk
/// framing.
#[derive(Clone, Debug)]
pub(crate) struct EchoChecker {
    at: At,
    /// Payload bytes of the oldest message in flight already matched.
    off: u32,
    /// Bytes of this stream checked so far, to say where an error was.
    received: u64,
}

impl EchoChecker {
    fn new(proto: &Protocol) -> Self {
        EchoChecker {
            at: proto.answer_start(),
            off: 0,
            received: 0,
        }
    }

    /// `Checker::feed` for the echo framings. Runs of prefix or payload bytes are compared at
    /// once; only the bytes where an answer may split are looked at alone.
    fn feed(
        &mut self,
        proto: &Protocol,
        conn: u64,
        mut seq: u64,
        in_flight: usize,
        data: &[u8],
    ) -> Fed {
        let mut fed = Fed::default();
        let mut msg_seed = seed(conn, seq);
        let mut i = 0;
        while i < data.len() {
            if fed.completed == in_flight {
                fed.error = Some(unasked(conn, self.received, data, i));
                return fed;
            }
            let rest = &data[i..];
            let (taken, wrong) = match self.at {
                At::Prefix(n) => {
                    let want = &proto.prefix[n..];
                    let run = &rest[..want.len().min(rest.len())];
                    match run.iter().zip(want).position(|(g, w)| g != w) {
                        Some(k) => (k, Some(("prefix byte", want[k]))),
                        None => {
                            self.at = if n + run.len() == proto.prefix.len() {
                                At::Payload { may_split: false }
                            } else {
                                At::Prefix(n + run.len())
                            };
                            (run.len(), None)
                        }
                    }
                }
                At::Payload { may_split: true } if rest[0] == proto.prefix[0] => {
                    self.at = if proto.prefix.len() == 1 {
                        At::Payload { may_split: false }
                    } else {
                        At::Prefix(1)
                    };
                    (1, None)
                }
                At::Payload { .. } => {
                    let mut run = &rest[..((proto.size - self.off) as usize).min(rest.len())];
                    // Payload never holds the prefix's first byte: where one is, a piece ends.
                    if proto.chunk && !proto.prefix.is_empty() {
                        if let Some(end) =
                            memchr::memchr(proto.prefix[0], run).filter(|&end| end > 0)
                        {
                            run = &run[..end];
                        }
                    }
                    match proto.mismatch(msg_seed, self.off, run) {
                        Some(k) => (
                            k,
                            Some(("payload byte", proto.byte(msg_seed, self.off + k as u32))),
                        ),
                        None => {
                            self.off += run.len() as u32;
                            if self.off == proto.size {
                                self.off = 0;
                                fed.completed += 1;
                                seq = seq.wrapping_add(1);
                                msg_seed = seed(conn, seq);
                                self.at = proto.answer_start();
                            } else {
                                self.at = At::Payload {
                                    may_split: proto.chunk && !proto.prefix.is_empty(),
                                };
                            }
                            (run.len(), None)
                        }
                    }
                }
            };
            if let Some((what, expected)) = wrong {
                let at = i + taken;
                fed.error = Some((
                    Fault::Wrong,
                    format!(
                        "conn {conn}: wrong answer to message {seq} at answer byte {}: expected {what} {}, got {} after \"{}\"",
                        self.received + taken as u64,
                        quote(expected),
                        quote(data[at]),
                        context(data, at),
                    ),
                ));
                return fed;
            }
            i += taken;
            self.received += taken as u64;
        }
        fed
    }
}

/// The error for `data[i]`, answer byte `received` of connection `conn`, arriving while no
/// message awaits an answer.
pub(super) fn unasked(conn: u64, received: u64, data: &[u8], i: usize) -> (Fault, String) {
    let what = format!(
        "conn {conn}: answer byte {received} arrived with no message awaiting an answer: got {} after \"{}\"",
        quote(data[i]),
        context(data, i),
    );
    (Fault::Wrong, what)
}

/// One byte, quoted and escaped.
pub(super) fn quote(b: u8) -> String {
    format!("'{}'", std::ascii::escape_default(b))
}

/// Up to `CONTEXT` received bytes ending with `data[i]`, escaped.
pub(super) fn context(data: &[u8], i: usize) -> String {
    escape(&data[i.saturating_sub(CONTEXT - 1)..=i])
}

/// Bytes as printable ASCII, escaped like a Rust byte string.
pub(crate) fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &[u8] = b"You say that ";

    /// What a chunk server answers to `msg` when its reads end at `cuts`.
    fn chunked(prefix: &[u8], msg: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&msg.len())) {
            out.extend_from_slice(prefix);
            out.extend_from_slice(&msg[from..to]);
            from = to;
        }
        out
    }

    #[test]
    fn payload_never_contains_the_prefix_start_nor_a_stray_newline() {
        for framing in [FramingKind::Chunk, FramingKind::Line] {
            let p = Protocol::echo(b"a", framing, 500);
            for s in 0..50 {
                let m = p.message(seed(1, s));
                assert!(!m.contains(&b'a'));
                let body = if framing == FramingKind::Line {
                    assert_eq!(m.last(), Some(&b'\n'));
                    &m[..m.len() - 1]
                } else {
                    &m[..]
                };
                assert!(!body.contains(&b'\n'));
            }
        }
    }

    #[test]
    fn messages_differ_per_connection_and_per_message() {
        let p = Protocol::echo(PREFIX, FramingKind::Chunk, 16);
        assert_ne!(p.message(seed(1, 0)), p.message(seed(1, 1)));
        assert_ne!(p.message(seed(1, 0)), p.message(seed(2, 0)));
    }

    #[test]
    fn chunk_answers_cut_anywhere_are_accepted() {
        let p = Protocol::echo(PREFIX, FramingKind::Chunk, 3000);
        let msg = p.message(seed(7, 0));
        let stream = chunked(PREFIX, &msg, &[1024, 2048, 2049]);
        // Deliver the stream itself in odd pieces too: the checker keeps its place across reads.
        let mut c = Checker::new(&p);
        let mut done = 0;
        for piece in stream.chunks(37) {
            let fed = c.feed(&p, 7, 0, 1, piece);
            assert_eq!(fed.error, None);
            done += fed.completed;
        }
        assert_eq!(done, 1);
    }

    #[test]
    fn a_wrong_byte_is_described() {
        let p = Protocol::echo(PREFIX, FramingKind::Chunk, 8);
        let mut stream = chunked(PREFIX, &p.message(seed(3, 5)), &[]);
        stream[15] = b'X';
        let fed = Checker::new(&p).feed(&p, 3, 5, 1, &stream);
        let (fault, err) = fed.error.expect("the corruption is found");
        assert_eq!(fault, Fault::Wrong);
        assert!(err.contains("conn 3") && err.contains("message 5"), "{err}");
        assert!(
            err.contains("answer byte 15") && err.contains("got 'X'"),
            "{err}"
        );
    }

    #[test]
    fn a_prefix_where_payload_must_be_is_wrong() {
        let p = Protocol::echo(PREFIX, FramingKind::Chunk, 8);
        let msg = p.message(seed(0, 0));
        let mut stream = PREFIX.to_vec();
        stream.extend_from_slice(PREFIX);
        stream.extend_from_slice(&msg);
        assert!(Checker::new(&p).feed(&p, 0, 0, 1, &stream).error.is_some());
    }

    #[test]
    fn line_framing_allows_no_prefix_inside_an_answer() {
        let p = Protocol::echo(PREFIX, FramingKind::Line, 8);
        let msg = p.message(seed(0, 0));
        let ok = chunked(PREFIX, &msg, &[]);
        assert_eq!(Checker::new(&p).feed(&p, 0, 0, 1, &ok).completed, 1);
        let split = chunked(PREFIX, &msg, &[3]);
        assert!(Checker::new(&p).feed(&p, 0, 0, 1, &split).error.is_some());
    }

    #[test]
    fn pipelined_answers_complete_in_order_and_extra_bytes_are_wrong() {
        let p = Protocol::echo(b"", FramingKind::Chunk, 5);
        let mut stream = Vec::new();
        for s in 10..13 {
            stream.extend_from_slice(&p.message(seed(4, s)));
        }
        let mut c = Checker::new(&p);
        assert_eq!(c.feed(&p, 4, 10, 3, &stream).completed, 3);
        let fed = c.feed(&p, 4, 13, 0, b"z");
        assert!(fed
            .error
            .expect("unexpected")
            .1
            .contains("no message awaiting"));
    }

    proptest::proptest! {
        /// However the server cuts its answers and the kernel delivers them, a correct stream
        /// passes, and changing any one byte of it is caught.
        #[test]
        fn any_cut_passes_and_any_changed_byte_is_caught(
            size in 1u32..3000,
            cuts in proptest::collection::vec(1usize..3000, 0..6),
            delivery in 1usize..2000,
            flip_at in proptest::num::usize::ANY,
            flip_to in proptest::num::u8::ANY,
        ) {
            let p = Protocol::echo(PREFIX, FramingKind::Chunk, size);
            let msg = p.message(seed(9, 0));
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < msg.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let stream = chunked(PREFIX, &msg, &cuts);
            let mut c = Checker::new(&p);
            let mut done = 0;
            for piece in stream.chunks(delivery) {
                let fed = c.feed(&p, 9, 0, 1, piece);
                proptest::prop_assert_eq!(fed.error, None);
                done += fed.completed;
            }
            proptest::prop_assert_eq!(done, 1);

            let mut bad = stream.clone();
            let i = flip_at % bad.len();
            proptest::prop_assume!(bad[i] != flip_to);
            bad[i] = flip_to;
            let fed = Checker::new(&p).feed(&p, 9, 0, 1, &bad);
            // A changed byte may turn payload into a valid-looking prefix start; the stream is
            // then still wrong, just noticed a few bytes later, or it ends incomplete.
            proptest::prop_assert!(fed.error.is_some() || fed.completed == 0);
        }
    }

    #[test]
    fn an_answer_to_another_message_is_wrong() {
        let p = Protocol::echo(PREFIX, FramingKind::Line, 32);
        let stale = chunked(PREFIX, &p.message(seed(1, 0)), &[]);
        assert!(Checker::new(&p).feed(&p, 1, 1, 1, &stale).error.is_some());
        let other = chunked(PREFIX, &p.message(seed(2, 0)), &[]);
        assert!(Checker::new(&p).feed(&p, 1, 0, 1, &other).error.is_some());
    }
}
