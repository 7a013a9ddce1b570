//! What a load connection must get back: the checker of its answer stream, as pure functions:
//! no I/O. `Checker` is what a connection holds; this file holds the echo framings' checker;
//! HTTP's, framed by headers, is in `http.rs`, and WebSocket's, framed by frames, in `ws.rs`.
//!
//! It must never accept a byte other than the one expected.

use super::fault::{context, quote, unasked, Fault, Fed, Statuses};
use super::http::HttpChecker;
use super::message::{seed, Protocol};
use super::ws::WsChecker;
use crate::framing::http::control::ResetAt;

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

/// Where an answer stream starts, and starts again after every complete answer.
fn answer_start(proto: &Protocol) -> At {
    if proto.prefix.is_empty() {
        At::Payload { may_split: false }
    } else {
        At::Prefix(0)
    }
}

/// Checks one connection's answer stream byte for byte, however the server cut it.
#[derive(Clone, Debug)]
pub(crate) enum Checker {
    Echo(EchoChecker),
    Http(HttpChecker),
    Ws(WsChecker),
}

impl Checker {
    pub(crate) fn new(proto: &Protocol) -> Self {
        match (&proto.request, &proto.ws) {
            (Some(_), _) => Checker::Http(HttpChecker::default()),
            (None, Some(_)) => Checker::Ws(WsChecker::new()),
            (None, None) => Checker::Echo(EchoChecker::new(proto)),
        }
    }

    /// WebSocket: the upgrade request a new connection writes to `host` before any message.
    pub(crate) fn upgrade_request(&self, host: std::net::SocketAddr) -> Option<Vec<u8>> {
        match self {
            Checker::Ws(c) => Some(c.upgrade_request(host)),
            Checker::Echo(_) | Checker::Http(_) => None,
        }
    }

    /// Payload bytes of the oldest message in flight received so far.
    pub(crate) fn partial(&self, proto: &Protocol) -> u32 {
        match self {
            Checker::Echo(c) => c.off,
            Checker::Http(c) => c.partial(proto),
            Checker::Ws(c) => c.partial(proto),
        }
    }

    /// HTTP: whether a reset now falls where `--query`'s `reset` asks one (`HttpChecker::
    /// reset_fits`); never in the other framings, which ask for none.
    pub(crate) fn reset_fits(&self, at: ResetAt) -> bool {
        match self {
            Checker::Http(c) => c.reset_fits(at),
            Checker::Echo(_) | Checker::Ws(_) => false,
        }
    }

    /// Checks `data`, the next bytes from connection `conn`, whose oldest message in flight is
    /// `seq` and which has `in_flight` messages awaiting an answer. In HTTP each final answer's
    /// status is counted in `statuses`.
    pub(crate) fn feed(
        &mut self,
        proto: &Protocol,
        conn: u64,
        seq: u64,
        in_flight: usize,
        data: &[u8],
        statuses: &mut Statuses,
    ) -> Fed {
        match self {
            Checker::Echo(c) => c.feed(proto, conn, seq, in_flight, data),
            Checker::Http(c) => c.feed(proto, conn, seq, in_flight, data, statuses),
            Checker::Ws(c) => c.feed(proto, conn, seq, in_flight, data),
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
            at: answer_start(proto),
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
                                self.at = answer_start(proto);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::message::LoadFraming;

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
    fn chunk_answers_cut_anywhere_are_accepted() {
        let p = Protocol::echo(PREFIX, LoadFraming::Chunk, 3000);
        let msg = p.message(seed(7, 0));
        let stream = chunked(PREFIX, &msg, &[1024, 2048, 2049]);
        // Deliver the stream itself in odd pieces too: the checker keeps its place across reads.
        let mut c = Checker::new(&p);
        let mut done = 0;
        for piece in stream.chunks(37) {
            let fed = c.feed(&p, 7, 0, 1, piece, &mut Statuses::default());
            assert_eq!(fed.error, None);
            done += fed.completed;
        }
        assert_eq!(done, 1);
    }

    #[test]
    fn a_wrong_byte_is_described() {
        let p = Protocol::echo(PREFIX, LoadFraming::Chunk, 8);
        let mut stream = chunked(PREFIX, &p.message(seed(3, 5)), &[]);
        stream[15] = b'X';
        let fed = Checker::new(&p).feed(&p, 3, 5, 1, &stream, &mut Statuses::default());
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
        let p = Protocol::echo(PREFIX, LoadFraming::Chunk, 8);
        let msg = p.message(seed(0, 0));
        let mut stream = PREFIX.to_vec();
        stream.extend_from_slice(PREFIX);
        stream.extend_from_slice(&msg);
        assert!(Checker::new(&p)
            .feed(&p, 0, 0, 1, &stream, &mut Statuses::default())
            .error
            .is_some());
    }

    #[test]
    fn line_framing_allows_no_prefix_inside_an_answer() {
        let p = Protocol::echo(PREFIX, LoadFraming::Line, 8);
        let msg = p.message(seed(0, 0));
        let ok = chunked(PREFIX, &msg, &[]);
        assert_eq!(
            Checker::new(&p)
                .feed(&p, 0, 0, 1, &ok, &mut Statuses::default())
                .completed,
            1
        );
        let split = chunked(PREFIX, &msg, &[3]);
        assert!(Checker::new(&p)
            .feed(&p, 0, 0, 1, &split, &mut Statuses::default())
            .error
            .is_some());
    }

    #[test]
    fn pipelined_answers_complete_in_order_and_extra_bytes_are_wrong() {
        let p = Protocol::echo(b"", LoadFraming::Chunk, 5);
        let mut stream = Vec::new();
        for s in 10..13 {
            stream.extend_from_slice(&p.message(seed(4, s)));
        }
        let mut c = Checker::new(&p);
        assert_eq!(
            c.feed(&p, 4, 10, 3, &stream, &mut Statuses::default())
                .completed,
            3
        );
        let fed = c.feed(&p, 4, 13, 0, b"z", &mut Statuses::default());
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
            let p = Protocol::echo(PREFIX, LoadFraming::Chunk, size);
            let msg = p.message(seed(9, 0));
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < msg.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let stream = chunked(PREFIX, &msg, &cuts);
            let mut c = Checker::new(&p);
            let mut done = 0;
            for piece in stream.chunks(delivery) {
                let fed = c.feed(&p, 9, 0, 1, piece, &mut Statuses::default());
                proptest::prop_assert_eq!(fed.error, None);
                done += fed.completed;
            }
            proptest::prop_assert_eq!(done, 1);

            let mut bad = stream.clone();
            let i = flip_at % bad.len();
            proptest::prop_assume!(bad[i] != flip_to);
            bad[i] = flip_to;
            let fed = Checker::new(&p).feed(&p, 9, 0, 1, &bad, &mut Statuses::default());
            // A changed byte may turn payload into a valid-looking prefix start; the stream is
            // then still wrong, just noticed a few bytes later, or it ends incomplete.
            proptest::prop_assert!(fed.error.is_some() || fed.completed == 0);
        }
    }

    #[test]
    fn an_answer_to_another_message_is_wrong() {
        let p = Protocol::echo(PREFIX, LoadFraming::Line, 32);
        let stale = chunked(PREFIX, &p.message(seed(1, 0)), &[]);
        assert!(Checker::new(&p)
            .feed(&p, 1, 1, 1, &stale, &mut Statuses::default())
            .error
            .is_some());
        let other = chunked(PREFIX, &p.message(seed(2, 0)), &[]);
        assert!(Checker::new(&p)
            .feed(&p, 1, 0, 1, &other, &mut Statuses::default())
            .error
            .is_some());
    }
}
