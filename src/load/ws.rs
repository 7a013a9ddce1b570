//! What a WebSocket load connection must get back (`--framing ws`): first the `101` to its
//! upgrade, then, message after message, an answer of the type sent whose payload is the prefix
//! and the message, as pure functions: no I/O.
//!
//! An answer is checked byte for byte however the server frames it: split across reads, cut into
//! continuation frames (saythat echoes a message piece by piece as it arrives), with pings or
//! pongs between the pieces. It holds no payload: only a partial frame header inline, and until
//! the upgrade is answered the head read so far (at most `MAX_UPGRADE_HEAD` bytes). It must never
//! accept an answer of the wrong type or length, a byte off, or a frame RFC 6455 forbids.

use std::net::SocketAddr;

use super::fault::{context, quote, Fault, Fed};
use super::message::{seed, Protocol};
use crate::framing::ws::frame::Opcode;
use crate::ws_client::{
    check_upgrade, new_key, upgrade_request, Key, ServerFrame, ServerHeaderReader, MAX_UPGRADE_HEAD,
};

/// The code a close frame without one stands for (RFC 6455 §7.1.5).
const NO_CODE: u16 = 1005;

/// Where the checker is in the frame stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// A frame header comes next (maybe the rest of one begun).
    Header,
    /// Payload of a data frame of the answer: `left` bytes of it; `fin` when it ends the message.
    Data { left: u64, fin: bool },
    /// Payload of a ping or pong, skipped: load connections are never idle, so a server's
    /// keep-alive ping is not answered.
    Skip { left: u64 },
    /// Payload of a close frame: its code is read from the first two bytes.
    Close { left: u64, code: u16, got: u8 },
}

/// A WebSocket load connection's upgrade and answer stream.
#[derive(Clone, Debug)]
pub(crate) struct WsChecker {
    /// The `Sec-WebSocket-Key` this connection sends; the `101` must answer it.
    key: Key,
    /// Until the upgrade is answered, its head so far; `None` once it was.
    head: Option<Vec<u8>>,
    header: ServerHeaderReader,
    at: At,
    /// Bytes of the oldest unanswered message's answer (prefix and payload) matched so far.
    off: u64,
    /// A data frame without FIN was seen: the answer goes on in continuation frames.
    in_message: bool,
    /// Bytes of the frame stream checked so far, to say where an error was.
    received: u64,
}

impl WsChecker {
    /// A checker for a new connection, with a fresh key.
    pub(crate) fn new() -> Self {
        WsChecker {
            key: new_key(),
            head: Some(Vec::new()),
            header: ServerHeaderReader::default(),
            at: At::Header,
            off: 0,
            in_message: false,
            received: 0,
        }
    }

    /// The upgrade request this connection writes first, to `host`.
    pub(crate) fn upgrade_request(&self, host: SocketAddr) -> Vec<u8> {
        upgrade_request(&host.to_string(), "/", &self.key)
    }

    /// Payload bytes of the oldest message in flight received so far.
    pub(crate) fn partial(&self, proto: &Protocol) -> u32 {
        let payload = self.off.saturating_sub(proto.prefix.len() as u64);
        u32::try_from(payload).unwrap_or(u32::MAX)
    }

    /// `Checker::feed` for WebSocket: the `101`'s head until it is whole, then frames.
    pub(crate) fn feed(
        &mut self,
        proto: &Protocol,
        conn: u64,
        seq: u64,
        in_flight: usize,
        mut data: &[u8],
    ) -> Fed {
        let mut fed = Fed::default();
        if let Some(head) = &mut self.head {
            let had = head.len();
            head.extend_from_slice(&data[..data.len().min(MAX_UPGRADE_HEAD - had)]);
            match check_upgrade(head, &self.key) {
                Ok(None) => return fed,
                Ok(Some(len)) => {
                    // The head before these bytes was incomplete, so it ends among them.
                    data = &data[len.saturating_sub(had)..];
                    self.head = None;
                    fed.upgraded = true;
                }
                Err(why) => {
                    let what = format!("conn {conn}: the WebSocket upgrade failed: {why}");
                    fed.error = Some((Fault::Wrong, what));
                    return fed;
                }
            }
        }
        let mut frames = Frames {
            proto,
            conn,
            seq,
            in_flight,
            fed,
        };
        let mut i = 0;
        while i < data.len() && frames.fed.error.is_none() && frames.fed.closed.is_none() {
            let taken = self.step(&mut frames, data, i);
            i += taken;
            self.received += taken as u64;
        }
        frames.fed
    }

    /// Checks bytes from `data[i]` on as far as the current part of the stream goes; returns how
    /// many it took (all it looked at, the wrong one included on an error).
    fn step(&mut self, f: &mut Frames<'_>, data: &[u8], i: usize) -> usize {
        let rest = &data[i..];
        match self.at {
            At::Header => match self.header.read(rest) {
                Ok(None) => rest.len(),
                Ok(Some((frame, used))) => {
                    if let Err(what) = self.start(f, frame) {
                        f.fed.error = Some((Fault::Wrong, format!("conn {}: {what}", f.conn)));
                    }
                    used
                }
                Err(what) => {
                    let at = self.received;
                    let what = format!(
                        "conn {}: the server sent {what}, at answer byte {at}, awaiting message {}",
                        f.conn, f.seq
                    );
                    f.fed.error = Some((Fault::Wrong, what));
                    rest.len()
                }
            },
            At::Data { left, fin } => {
                let n = left.min(rest.len() as u64) as usize;
                if let Some((k, what, expected)) = self.mismatch(f, &rest[..n]) {
                    let at = i + k;
                    f.fed.error = Some((
                        Fault::Wrong,
                        format!(
                            "conn {}: wrong answer to message {} at message byte {}: expected {what} {}, got {} after \"{}\"",
                            f.conn,
                            f.seq,
                            self.off + k as u64,
                            quote(expected),
                            quote(data[at]),
                            context(data, at),
                        ),
                    ));
                    return k + 1;
                }
                self.off += n as u64;
                self.at = At::Data {
                    left: left - n as u64,
                    fin,
                };
                if left == n as u64 {
                    self.at = At::Header;
                    if fin {
                        self.complete(f);
                    }
                }
                n
            }
            At::Skip { left } => {
                let n = left.min(rest.len() as u64);
                self.at = match left - n {
                    0 => At::Header,
                    left => At::Skip { left },
                };
                n as usize
            }
            At::Close {
                mut left,
                mut code,
                mut got,
            } => {
                let n = left.min(rest.len() as u64) as usize;
                for &b in &rest[..n] {
                    if got < 2 {
                        code = (code << 8) | u16::from(b);
                        got += 1;
                    }
                }
                left -= n as u64;
                self.at = At::Close { left, code, got };
                if left == 0 {
                    f.fed.closed = Some(if got == 2 { code } else { NO_CODE });
                }
                n
            }
        }
    }

    /// A whole frame header came: checks it against what the answer may be, and what follows.
    fn start(&mut self, f: &mut Frames<'_>, frame: ServerFrame) -> Result<(), String> {
        let (seq, want) = (
            f.seq,
            f.proto.ws.as_ref().map_or(Opcode::Binary, |w| w.opcode),
        );
        match frame.opcode {
            Opcode::Ping | Opcode::Pong => {
                self.at = At::Skip { left: frame.len };
            }
            Opcode::Close => {
                self.at = At::Close {
                    left: frame.len,
                    code: 0,
                    got: 0,
                };
                if frame.len == 0 {
                    f.fed.closed = Some(NO_CODE);
                }
                return Ok(());
            }
            Opcode::Continuation if !self.in_message => {
                return Err(format!(
                    "a continuation frame came with no message begun, awaiting the answer to \
                     message {seq}"
                ));
            }
            Opcode::Text | Opcode::Binary if self.in_message => {
                return Err(format!(
                    "a new {:?} message began inside the answer to message {seq}, which must go \
                     on in continuation frames",
                    frame.opcode
                ));
            }
            Opcode::Text | Opcode::Binary if f.fed.completed == f.in_flight => {
                return Err(format!(
                    "a {:?} message came with no message awaiting an answer (answer byte {})",
                    frame.opcode, self.received
                ));
            }
            Opcode::Text | Opcode::Binary if frame.opcode != want => {
                return Err(format!(
                    "the answer to message {seq} is a {:?} message; a {want:?} message was sent",
                    frame.opcode
                ));
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                let total = f.proto.prefix.len() as u64 + u64::from(f.proto.size());
                let end = self.off.saturating_add(frame.len);
                if end > total || (frame.fin && end < total) {
                    let how = if end > total { "longer" } else { "shorter" };
                    return Err(format!(
                        "the answer to message {seq} is {how} than the {total} bytes of prefix \
                         and message: a {}frame of {} bytes after {} ends at byte {end}",
                        if frame.fin { "final " } else { "" },
                        frame.len,
                        self.off
                    ));
                }
                self.in_message = !frame.fin;
                self.at = At::Data {
                    left: frame.len,
                    fin: frame.fin,
                };
                if frame.len == 0 {
                    self.at = At::Header;
                    if frame.fin {
                        self.complete(f);
                    }
                }
            }
        }
        Ok(())
    }

    /// The oldest message's answer is whole: the next one is checked from its start.
    fn complete(&mut self, f: &mut Frames<'_>) {
        self.off = 0;
        self.in_message = false;
        f.fed.completed += 1;
        f.seq = f.seq.wrapping_add(1);
    }

    /// Where `run`, the answer's bytes from `self.off` on, first differs from the prefix and
    /// payload: its index, what it is, and the byte expected.
    fn mismatch(&self, f: &Frames<'_>, run: &[u8]) -> Option<(usize, &'static str, u8)> {
        let (proto, plen) = (f.proto, f.proto.prefix.len() as u64);
        let mut k = 0;
        if self.off < plen {
            let want = &proto.prefix[self.off as usize..];
            k = want.len().min(run.len());
            if let Some(p) = run[..k].iter().zip(want).position(|(g, w)| g != w) {
                return Some((p, "prefix byte", want[p]));
            }
        }
        if k < run.len() {
            let msg_seed = seed(f.conn, f.seq);
            let from = (self.off + k as u64 - plen) as u32;
            if let Some(p) = proto.mismatch(msg_seed, from, &run[k..]) {
                let expected = proto.byte(msg_seed, from + p as u32);
                return Some((k + p, "payload byte", expected));
            }
        }
        None
    }
}

/// What one `feed` works with: the connection, the message whose answer comes next, and what it
/// found so far.
struct Frames<'a> {
    proto: &'a Protocol,
    conn: u64,
    seq: u64,
    in_flight: usize,
    fed: Fed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::ws::frame::{decode_header, encode_header, unmask, Decoded};
    use crate::framing::ws::handshake::{accept_key, switching_protocols};
    use crate::load::message::HttpMethod;
    use crate::load::message::LoadFraming;
    use crate::ws_client::decode_server_header;

    const PREFIX: &[u8] = b"You say that ";

    fn proto(size: u32, text: bool) -> Protocol {
        let host = "127.0.0.1:8080".parse().expect("an address");
        Protocol::new(
            PREFIX,
            LoadFraming::Ws,
            size,
            HttpMethod::Get,
            host,
            None,
            text,
        )
        .expect("no query")
    }

    /// An upgraded checker.
    fn upgraded() -> WsChecker {
        let mut c = WsChecker::new();
        c.head = None;
        c
    }

    /// A server frame.
    fn frame(fin: bool, op: Opcode, payload: &[u8]) -> Vec<u8> {
        let (h, n) = encode_header(fin, op, payload.len() as u64);
        [&h[..n], payload].concat()
    }

    /// The answer to message `seq` of `conn` cut at `cuts` into frames, a ping after the first.
    fn answer(p: &Protocol, conn: u64, seq: u64, cuts: &[usize]) -> Vec<u8> {
        let op = p.ws.as_ref().expect("ws").opcode;
        let whole = [PREFIX, &p.message(seed(conn, seq))].concat();
        let mut out = Vec::new();
        let mut from = 0;
        let ends: Vec<usize> = cuts.iter().copied().chain([whole.len()]).collect();
        for (k, &to) in ends.iter().enumerate() {
            let op = if k == 0 { op } else { Opcode::Continuation };
            out.extend(frame(k + 1 == ends.len(), op, &whole[from..to]));
            if k == 0 {
                out.extend(frame(true, Opcode::Ping, b"hi"));
            }
            from = to;
        }
        out
    }

    fn feed_all(c: &mut WsChecker, p: &Protocol, seq: u64, in_flight: usize, stream: &[u8]) -> Fed {
        c.feed(p, 4, seq, in_flight, stream)
    }

    #[test]
    fn the_frame_sent_is_masked_and_fills_in_any_pieces() {
        let p = proto(300, false);
        let whole = {
            let mut out = vec![0; p.wire_size() as usize];
            p.fill(seed(1, 2), 0, &mut out);
            out
        };
        // The server's decoder, which requires the mask, reads the header.
        let Ok(Decoded::Header { header, size }) = decode_header(&whole) else {
            panic!("not a client frame header: {:?}", &whole[..8]);
        };
        assert!(header.fin && header.opcode == Opcode::Binary && header.len == 300);
        assert_eq!(size, 8);
        let mut payload = whole[size..].to_vec();
        unmask(&mut payload, header.mask, 0);
        assert_eq!(payload, p.message(seed(1, 2)));
        for piece in 1..40 {
            let mut out = vec![0; whole.len()];
            for (k, part) in out.chunks_mut(piece).enumerate() {
                p.fill(seed(1, 2), (k * piece) as u32, part);
            }
            assert_eq!(out, whole, "filled in pieces of {piece}");
        }
        let text = proto(5, true);
        let mut out = vec![0; text.wire_size() as usize];
        text.fill(seed(1, 2), 0, &mut out);
        assert_eq!(&out[..2], &[0x81, 0x85]);
    }

    #[test]
    fn the_upgrade_then_fragmented_answers_pass_in_any_pieces() {
        let p = proto(40, false);
        let mut c = WsChecker::new();
        let mut stream = Vec::new();
        switching_protocols(&accept_key(&c.key), &mut stream);
        for seq in 0..3 {
            stream.extend(answer(&p, 4, seq, &[3, 13, 20]));
        }
        for piece in 1..stream.len() {
            c = WsChecker {
                key: c.key,
                ..WsChecker::new()
            };
            let (mut done, mut upgraded) = (0, false);
            for part in stream.chunks(piece) {
                let fed = feed_all(&mut c, &p, done as u64, 3 - done, part);
                assert_eq!(fed.error, None, "pieces of {piece}");
                upgraded |= fed.upgraded;
                done += fed.completed;
            }
            assert!(upgraded);
            assert_eq!(done, 3, "pieces of {piece}");
        }
    }

    #[test]
    fn a_wrong_byte_type_or_length_is_named() {
        let p = proto(8, false);
        let mut bad = answer(&p, 4, 0, &[]);
        // After the 2-byte header, the prefix's 13 bytes and 6 of the payload's.
        bad[2 + 19] = b'#';
        let err = feed_all(&mut upgraded(), &p, 0, 1, &bad)
            .error
            .expect("a wrong byte")
            .1;
        assert!(
            err.contains("message byte 19") && err.contains("got '#'"),
            "{err}"
        );

        let text = proto(8, true);
        let err = feed_all(&mut upgraded(), &text, 0, 1, &answer(&p, 4, 0, &[]))
            .error
            .expect("binary for text")
            .1;
        assert!(
            err.contains("is a Binary message; a Text message was sent"),
            "{err}"
        );

        let whole = [PREFIX, &p.message(seed(4, 0))].concat();
        let short = frame(true, Opcode::Binary, &whole[..whole.len() - 1]);
        let err = feed_all(&mut upgraded(), &p, 0, 1, &short)
            .error
            .expect("short")
            .1;
        assert!(err.contains("shorter than the 21 bytes"), "{err}");
        let long = frame(
            false,
            Opcode::Binary,
            &[whole.clone(), b"x".to_vec()].concat(),
        );
        assert!(feed_all(&mut upgraded(), &p, 0, 1, &long).error.is_some());

        let two_starts = [
            frame(false, Opcode::Binary, &whole[..3]),
            frame(true, Opcode::Binary, &whole[3..]),
        ]
        .concat();
        let err = feed_all(&mut upgraded(), &p, 0, 1, &two_starts)
            .error
            .expect("restart")
            .1;
        assert!(err.contains("continuation frames"), "{err}");
        let stray = frame(true, Opcode::Continuation, &whole);
        assert!(feed_all(&mut upgraded(), &p, 0, 1, &stray).error.is_some());
        let unasked = feed_all(
            &mut upgraded(),
            &p,
            0,
            0,
            &frame(true, Opcode::Binary, &whole),
        );
        assert!(unasked
            .error
            .expect("unasked")
            .1
            .contains("no message awaiting"));
        let masked = [0x82, 0x80 | 21, 0, 0, 0, 0];
        let err = feed_all(&mut upgraded(), &p, 0, 1, &masked)
            .error
            .expect("masked")
            .1;
        assert!(err.contains("masked frame"), "{err}");
    }

    #[test]
    fn a_close_ends_the_stream_with_its_code_and_a_refusal_is_quoted() {
        let p = proto(8, false);
        let close = frame(true, Opcode::Close, &[0x03, 0xE9, b'b', b'y', b'e']);
        for cut in 0..close.len() {
            let mut c = upgraded();
            let first = feed_all(&mut c, &p, 0, 1, &close[..cut]);
            assert_eq!(first.closed, None);
            assert_eq!(feed_all(&mut c, &p, 0, 1, &close[cut..]).closed, Some(1001));
        }
        let bare = frame(true, Opcode::Close, b"");
        assert_eq!(
            feed_all(&mut upgraded(), &p, 0, 1, &bare).closed,
            Some(NO_CODE)
        );

        let mut c = WsChecker::new();
        let fed = feed_all(
            &mut c,
            &p,
            0,
            0,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        let err = fed.error.expect("not an upgrade").1;
        assert!(
            err.contains("upgrade failed") && err.contains("\"HTTP/1.1 200 OK\""),
            "{err}"
        );
        assert!(!fed.upgraded);
    }

    proptest::proptest! {
        /// However the server frames an answer and the kernel delivers it, it passes, and any one
        /// changed byte is caught (or leaves the answer incomplete).
        #[test]
        fn any_framing_passes_and_any_changed_byte_is_caught(
            size in 1u32..600,
            cuts in proptest::collection::vec(0usize..620, 0..5),
            delivery in 1usize..300,
            flip_at in proptest::num::usize::ANY,
            flip_to in proptest::num::u8::ANY,
        ) {
            let p = proto(size, false);
            let total = PREFIX.len() + size as usize;
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= total).collect();
            cuts.sort_unstable();
            let stream = answer(&p, 4, 9, &cuts);
            let mut c = upgraded();
            let mut done = 0;
            for piece in stream.chunks(delivery) {
                let fed = feed_all(&mut c, &p, 9, 1, piece);
                proptest::prop_assert_eq!(fed.error, None);
                done += fed.completed;
            }
            proptest::prop_assert_eq!(done, 1);

            let mut bad = stream.clone();
            let i = flip_at % bad.len();
            proptest::prop_assume!(bad[i] != flip_to);
            bad[i] = flip_to;
            // A ping changed into a pong, or its payload changed, changes nothing the answer
            // carries.
            let in_ping = {
                let first = decode_server_header(&stream).ok().flatten().map(|(f, n)| n + f.len as usize);
                first.is_some_and(|end| i >= end && i < end + 4)
            };
            proptest::prop_assume!(!in_ping);
            let fed = feed_all(&mut upgraded(), &p, 9, 1, &bad);
            proptest::prop_assert!(fed.error.is_some() || fed.completed == 0 || fed.closed.is_some());
        }
    }
}
