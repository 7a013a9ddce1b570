//! What a load connection sends, as pure functions: no I/O. Messages are regenerated from a
//! seed, so no connection stores what it sent (in WebSocket its frame's mask key too), and
//! payload bytes never equal the prefix's first byte, so an echo answer stream parses one way
//! only however the server cut it.
//!
//! The checkers (`check.rs`, `http.rs`) read it to know what must come back; it must never know
//! about them, nor store a message.

use std::net::SocketAddr;

use super::expect::Expect;
use crate::framing::ws::frame::{unmask, Opcode};
use crate::ws_client::{client_header, MAX_CLIENT_HEADER};

/// Bytes messages are made of before the prefix's first byte is taken out: printable, so error
/// descriptions read well, and without `\n`, which only ends a line in line framing.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

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
    pub(super) chunk: bool,
    /// Line framing: a message's last byte is the `\n`.
    line: bool,
    /// Payload bytes per message: the whole message in the echo framings, the path or the body
    /// of a request in HTTP.
    pub(super) size: u32,
    /// Byte `r` of a hash stands for `map[r]`: `ALPHABET` without the prefix's first byte,
    /// spread over the 256 values once, so a payload byte is one load, with no division.
    map: [u8; 256],
    /// HTTP framing: the request bytes around every payload.
    pub(super) request: Option<RequestShape>,
    /// WebSocket framing: the frame around every payload.
    pub(super) ws: Option<WsShape>,
    /// Bytes written per message: `size`, plus the request around it in HTTP or the frame
    /// header in WebSocket.
    wire_size: u32,
    /// HTTP: the right answers, as `--query` asks them.
    pub(super) expect: Expect,
}

impl Protocol {
    /// The protocol of `framing`; `method`, `host` and `query` only shape HTTP requests,
    /// `ws_text` only WebSocket messages. The error is why the server would refuse the query's
    /// controls, or why its answers cannot be checked.
    pub(crate) fn new(
        prefix: &[u8],
        framing: LoadFraming,
        size: u32,
        method: HttpMethod,
        host: SocketAddr,
        query: Option<&str>,
        ws_text: bool,
    ) -> Result<Self, String> {
        let expect = Expect::new(query, prefix.len(), size)?;
        let alphabet: Vec<u8> = ALPHABET
            .iter()
            .copied()
            .filter(|&b| prefix.first() != Some(&b))
            .collect();
        // Multiply-shift: each letter stands for 7 or 8 of the 256 byte values.
        let map = std::array::from_fn(|r| alphabet[(r * alphabet.len()) >> 8]);
        let request = match framing {
            LoadFraming::Http => Some(RequestShape::new(method, host, size, query)),
            _ => None,
        };
        let ws = (framing == LoadFraming::Ws).then(|| WsShape::new(size, ws_text));
        let around =
            request.as_ref().map_or(0, RequestShape::len) + ws.as_ref().map_or(0, WsShape::len);
        Ok(Protocol {
            prefix: prefix.to_vec(),
            chunk: framing == LoadFraming::Chunk,
            line: framing == LoadFraming::Line,
            size,
            map,
            // A request's head is a few dozen bytes, a frame header 14 at most, and `size` at
            // most `MAX_SIZE`.
            wire_size: size.saturating_add(u32::try_from(around).unwrap_or(u32::MAX)),
            request,
            ws,
            expect,
        })
    }

    /// The protocol of an echo framing (unit tests).
    #[cfg(test)]
    pub(crate) fn echo(prefix: &[u8], framing: LoadFraming, size: u32) -> Self {
        let host = SocketAddr::from(([127, 0, 0, 1], 8080));
        Protocol::new(prefix, framing, size, HttpMethod::Get, host, None, false)
            .expect("no query, nothing to refuse")
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

    /// Byte `off` of the payload with this seed (`\n` past its end).
    #[inline]
    pub(super) fn byte(&self, seed: u64, off: u32) -> u8 {
        if off >= self.size || self.newline_at(off, 1).is_some() {
            return b'\n';
        }
        self.block(seed, off / 8)[off as usize % 8]
    }

    /// Payload bytes `8 * index..8 * index + 8` with this seed, but for line framing's final
    /// `\n`. One hash gives eight bytes: generating and checking payloads must cost the load
    /// generator far less than the server spends answering them.
    #[inline]
    fn block(&self, seed: u64, index: u32) -> [u8; 8] {
        let hash = mix(seed ^ u64::from(index));
        let mut block = [0; 8];
        for (i, b) in block.iter_mut().enumerate() {
            *b = self.map[usize::from((hash >> (8 * i)) as u8)];
        }
        block
    }

    /// Line framing: where the message's final `\n` falls in `len` payload bytes from `from`.
    #[inline]
    fn newline_at(&self, from: u32, len: usize) -> Option<usize> {
        let at = self.size.checked_sub(1)?.checked_sub(from)? as usize;
        (self.line && at < len).then_some(at)
    }

    /// Writes bytes `from..from + out.len()` of the message with this seed into `out`: in HTTP
    /// the request, its head around the payload; in WebSocket the frame.
    pub(crate) fn fill(&self, seed: u64, from: u32, out: &mut [u8]) {
        if let Some(ws) = &self.ws {
            return self.fill_frame(ws, seed, from, out);
        }
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

    /// `fill` in WebSocket: the frame header, its mask key, then the payload masked with it.
    fn fill_frame(&self, ws: &WsShape, seed: u64, from: u32, out: &mut [u8]) {
        let mask = ws.mask(seed);
        let mut head = [0u8; MAX_CLIENT_HEADER];
        let h = ws.header.len();
        head[..h].copy_from_slice(&ws.header);
        head[h..h + 4].copy_from_slice(&mask);
        let head = &head[..h + 4];
        let (at, mut k) = (from as usize, 0);
        if at < head.len() {
            k = (head.len() - at).min(out.len());
            out[..k].copy_from_slice(&head[at..at + k]);
        }
        if k < out.len() {
            let off = (at + k - head.len()) as u32;
            self.fill_payload(seed, off, &mut out[k..]);
            unmask(&mut out[k..], mask, u64::from(off));
        }
    }

    /// Writes payload bytes `from..from + out.len()` of the message with this seed into `out`
    /// (none past the payload's end), a block of eight at a time.
    fn fill_payload(&self, seed: u64, from: u32, out: &mut [u8]) {
        let len = out.len().min(self.size.saturating_sub(from) as usize);
        let (start, mut index) = (from as usize % 8, from / 8);
        let head = ((8 - start) % 8).min(len);
        let (first, rest) = out[..len].split_at_mut(head);
        if head > 0 {
            first.copy_from_slice(&self.block(seed, index)[start..start + head]);
            index += 1;
        }
        let (blocks, tail) = rest.as_chunks_mut::<8>();
        for block in blocks {
            *block = self.block(seed, index);
            index += 1;
        }
        if !tail.is_empty() {
            let n = tail.len();
            tail.copy_from_slice(&self.block(seed, index)[..n]);
        }
        if let Some(at) = self.newline_at(from, len) {
            out[at] = b'\n';
        }
    }

    /// Where `got`, read from payload byte `from` of the message with this seed on, first differs
    /// (bytes past the payload's end are not compared).
    #[inline]
    pub(super) fn mismatch(&self, seed: u64, from: u32, got: &[u8]) -> Option<usize> {
        let len = got.len().min(self.size.saturating_sub(from) as usize);
        match self.newline_at(from, len) {
            // Line framing's `\n` is the payload's last byte: nothing after it is compared.
            Some(at) => self
                .mismatch_blocks(seed, from, &got[..at])
                .or((got[at] != b'\n').then_some(at)),
            None => self.mismatch_blocks(seed, from, &got[..len]),
        }
    }

    /// [`Protocol::mismatch`] without line framing's `\n`: whole blocks compared as one word.
    fn mismatch_blocks(&self, seed: u64, from: u32, got: &[u8]) -> Option<usize> {
        let differs = |got: &[u8], want: &[u8]| got.iter().zip(want).position(|(g, w)| g != w);
        let (start, mut index) = (from as usize % 8, from / 8);
        let head = ((8 - start) % 8).min(got.len());
        let (first, rest) = got.split_at(head);
        if head > 0 {
            if let Some(k) = differs(first, &self.block(seed, index)[start..start + head]) {
                return Some(k);
            }
            index += 1;
        }
        let (blocks, tail) = rest.as_chunks::<8>();
        for (i, block) in blocks.iter().enumerate() {
            let want = self.block(seed, index);
            if *block != want {
                return differs(block, &want).map(|k| head + 8 * i + k);
            }
            index += 1;
        }
        if tail.is_empty() {
            return None;
        }
        differs(tail, &self.block(seed, index)).map(|k| head + 8 * blocks.len() + k)
    }

    /// The whole payload with this seed (tests; the loop uses `fill`).
    #[cfg(test)]
    pub(crate) fn message(&self, seed: u64) -> Vec<u8> {
        let mut m = vec![0; self.size as usize];
        self.fill_payload(seed, 0, &mut m);
        m
    }
}

/// The frame every WebSocket message goes in: one unfragmented, masked frame of `size` bytes.
#[derive(Debug)]
pub(crate) struct WsShape {
    /// Text or binary: what every message is sent as, and what every answer must be.
    pub opcode: Opcode,
    /// The frame header before its mask key: the same for every message, all of one size.
    header: Box<[u8]>,
    /// Mixed into a message's seed to give its frame's mask key. The key is regenerated like the
    /// payload, so a frame written in pieces keeps its key, and this random salt (fastrand, per
    /// run) keeps the keys unpredictable to the server, as RFC 6455 §10.3 asks.
    salt: u64,
}

impl WsShape {
    fn new(size: u32, text: bool) -> Self {
        let opcode = if text { Opcode::Text } else { Opcode::Binary };
        let (header, n) = client_header(true, opcode, u64::from(size), [0; 4]);
        WsShape {
            opcode,
            header: header[..n - 4].into(),
            salt: fastrand::u64(..),
        }
    }

    /// Bytes of a frame besides its payload.
    fn len(&self) -> usize {
        self.header.len() + 4
    }

    /// The mask key of the message with this seed.
    pub(super) fn mask(&self, seed: u64) -> [u8; 4] {
        (mix(seed ^ self.salt) as u32).to_ne_bytes()
    }
}

/// How the load generator frames its messages: the server's framings, and WebSocket.
///
/// Its own type rather than `serve`'s `FramingKind`: WebSocket is not a `--framing` of `serve`
/// (a server's HTTP framing upgrades to it), but a load run must say which it speaks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadFraming {
    /// Every read is a message, answered by the prefix and what was read.
    #[default]
    Chunk,
    /// Every `\n`-terminated line is a message.
    Line,
    /// HTTP/1.1 requests, each answered `200 OK` with the prefix and the message.
    Http,
    /// WebSocket: an upgrade (`GET /`) per connection, then each message a masked frame,
    /// answered by a message of the same type carrying the prefix and the message.
    Ws,
}

/// The request method of `saythat load --framing http`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET /MESSAGE`: the message is the path, answered `PREFIX MESSAGE`.
    #[default]
    Get,
    /// `POST /` with the message as a Content-Length body, answered `PREFIX BODY`.
    Post,
}

/// The bytes of every request before and after its payload. Requests are keep-alive HTTP/1.1
/// (no `Connection` header), and the payload is letters and digits, so a path needs no
/// percent-encoding; `--query`, checked as query text, follows the path as it is.
#[derive(Debug)]
pub(crate) struct RequestShape {
    pub before: Box<[u8]>,
    pub after: Box<[u8]>,
    /// For a JSON description of the request, which names its method.
    pub method: HttpMethod,
}

impl RequestShape {
    pub(crate) fn new(
        method: HttpMethod,
        host: SocketAddr,
        size: u32,
        query: Option<&str>,
    ) -> Self {
        let query = query.map_or(String::new(), |q| format!("?{q}"));
        let (before, after) = match method {
            HttpMethod::Get => (
                "GET /".to_string(),
                format!("{query} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            ),
            HttpMethod::Post => (
                format!("POST /{query} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n"),
                String::new(),
            ),
        };
        RequestShape {
            before: before.into_bytes().into(),
            after: after.into_bytes().into(),
            method,
        }
    }

    /// Bytes of a request besides its payload.
    pub(crate) fn len(&self) -> usize {
        self.before.len() + self.after.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &[u8] = b"You say that ";

    fn proto(method: HttpMethod, size: u32) -> Protocol {
        let host = "127.0.0.1:8080".parse().expect("an address");
        Protocol::new(PREFIX, LoadFraming::Http, size, method, host, None, false).expect("no query")
    }

    /// The whole request of message `seq` on connection `conn`, filled in one go.
    fn request(p: &Protocol, conn: u64, seq: u64) -> Vec<u8> {
        let mut out = vec![0; p.wire_size() as usize];
        p.fill(seed(conn, seq), 0, &mut out);
        out
    }
    #[test]
    fn payload_never_contains_the_prefix_start_nor_a_stray_newline() {
        for framing in [LoadFraming::Chunk, LoadFraming::Line] {
            let p = Protocol::echo(b"a", framing, 500);
            for s in 0..50 {
                let m = p.message(seed(1, s));
                assert!(!m.contains(&b'a'));
                let body = if framing == LoadFraming::Line {
                    assert_eq!(m.last(), Some(&b'\n'));
                    &m[..m.len() - 1]
                } else {
                    &m[..]
                };
                assert!(!body.contains(&b'\n'));
            }
        }
    }
    /// Payload byte `off` as first defined, one hash per byte, read by multiply-shift straight
    /// off `alphabet`: the block-wise code must give the same bytes.
    fn reference(alphabet: &[u8], line: bool, size: u32, seed: u64, off: u32) -> u8 {
        if off >= size || (line && off + 1 == size) {
            return b'\n';
        }
        let r = (mix(seed ^ u64::from(off / 8)) >> (off % 8 * 8)) as u8;
        alphabet[(usize::from(r) * alphabet.len()) >> 8]
    }

    /// Every start and length around every block edge and the payload's end, for small sizes:
    /// filled, compared (a flipped byte found where it is) and read byte by byte, as the
    /// reference has them.
    #[test]
    fn blocks_give_the_bytes_one_at_a_time_would() {
        for (prefix, line, seed) in [(b"Y", false, 1), (b"a", true, u64::MAX), (b"7", false, 99)]
            .into_iter()
            .chain([(b"-", true, 0x1234_5678_9abc_def0)])
        {
            let alphabet: Vec<u8> = ALPHABET
                .iter()
                .copied()
                .filter(|&b| b != prefix[0])
                .collect();
            let framing = if line {
                LoadFraming::Line
            } else {
                LoadFraming::Chunk
            };
            for size in 1u32..=24 {
                let p = Protocol::echo(prefix, framing, size);
                for from in 0u32..=26 {
                    for len in 0usize..=28 {
                        let mut out = vec![0xff; len];
                        p.fill_payload(seed, from, &mut out);
                        let filled = len.min(size.saturating_sub(from) as usize);
                        let case = format!("size {size}, from {from}, len {len}, line {line}");
                        for (k, &b) in out.iter().enumerate() {
                            let off = from + k as u32;
                            let want = match k < filled {
                                true => reference(&alphabet, line, size, seed, off),
                                false => 0xff,
                            };
                            assert_eq!(b, want, "{case}: byte {k} filled");
                            assert_eq!(
                                p.byte(seed, off),
                                reference(&alphabet, line, size, seed, off)
                            );
                        }
                        assert_eq!(p.mismatch(seed, from, &out), None, "{case}");
                        if filled > 0 {
                            let at = (size as usize + len) % filled;
                            out[at] ^= 0x20;
                            assert_eq!(p.mismatch(seed, from, &out), Some(at), "{case}: flipped");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn messages_differ_per_connection_and_per_message() {
        let p = Protocol::echo(PREFIX, LoadFraming::Chunk, 16);
        assert_ne!(p.message(seed(1, 0)), p.message(seed(1, 1)));
        assert_ne!(p.message(seed(1, 0)), p.message(seed(2, 0)));
    }
    #[test]
    fn get_and_post_requests_are_exact_and_fill_in_any_pieces() {
        let get = proto(HttpMethod::Get, 20);
        let msg = get.message(seed(1, 0));
        assert!(
            msg.iter().all(u8::is_ascii_alphanumeric),
            "a path needs no escaping"
        );
        let expected = [
            b"GET /",
            &msg[..],
            b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        ]
        .concat();
        assert_eq!(request(&get, 1, 0), expected);

        let post = proto(HttpMethod::Post, 20);
        let head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 20\r\n\r\n";
        assert_eq!(request(&post, 1, 0), [&head[..], &msg[..]].concat());

        let host = "127.0.0.1:8080".parse().expect("an address");
        let query = Some("delay=10ms&status=503:10");
        let get_q = Protocol::new(
            PREFIX,
            LoadFraming::Http,
            20,
            HttpMethod::Get,
            host,
            query,
            false,
        )
        .expect("a query of controls");
        let expected = [
            b"GET /",
            &msg[..],
            b"?delay=10ms&status=503:10 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        ]
        .concat();
        assert_eq!(request(&get_q, 1, 0), expected);
        let post_q = Protocol::new(
            PREFIX,
            LoadFraming::Http,
            20,
            HttpMethod::Post,
            host,
            query,
            false,
        )
        .expect("a query of controls");
        let head = b"POST /?delay=10ms&status=503:10 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                     Content-Length: 20\r\n\r\n";
        assert_eq!(request(&post_q, 1, 0), [&head[..], &msg[..]].concat());

        for p in [&get, &post, &get_q, &post_q] {
            let whole = request(p, 1, 0);
            for piece in 1..whole.len() {
                let mut out = vec![0; whole.len()];
                for (k, part) in out.chunks_mut(piece).enumerate() {
                    p.fill(seed(1, 0), (k * piece) as u32, part);
                }
                assert_eq!(out, whole, "filled in pieces of {piece}");
            }
        }
    }
}
