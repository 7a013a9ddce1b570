//! WebSocket (RFC 6455), the protocol a request upgrades to: the opening handshake
//! ([`handshake`]), the frame codec ([`frame`]), text validation ([`utf8`]) and here the echo
//! itself, [`WebSocket`]: every text or binary message answered by a message of the same type
//! whose payload is the prefix and the payload, pings by pongs, a close by a close.
//!
//! A message is echoed piece by piece as its bytes arrive, each piece an answer frame of its own
//! (the first carries the prefix), so a 16 MiB message costs the output cap, never 16 MiB. A
//! session never holds a payload: only a partial frame header (inline), the bytes of one read
//! that found the output full, and a few counters. It must never allocate per message, nor
//! answer a message differently however TCP splits it (the answer frames may differ, the
//! messages they carry may not).

pub mod frame;
pub mod handshake;
mod keepalive;
pub mod utf8;

use std::time::{Duration, Instant};

use super::{Answers, CloseReason, Next, Origin, Protocol, ProtocolCounts};
use crate::config::MAX_READ;
use crate::metrics::WsCounts;
use frame::{
    close_code_valid, encode_header, unmask, FrameHeader, HeaderReader, Opcode, MAX_CONTROL,
    PROTOCOL_ERROR,
};
use utf8::Utf8;

/// `--max-message`'s default: the largest message a client may send, prefix not counted. Larger
/// ones are refused with 1009 as soon as a frame header says so.
pub const DEFAULT_MAX_MESSAGE: u64 = 16 * 1024 * 1024;

/// How long the server waits for the client's close after sending its own (at the drain or on
/// an error) before closing the connection anyway.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Close codes the server sends (RFC 6455 §7.4.1).
const GOING_AWAY: u16 = 1001;
const INVALID_DATA: u16 = 1007;
const TOO_BIG: u16 = 1009;

/// The rules of the WebSocket echo, shared by a loop's connections.
#[derive(Debug, Clone)]
pub struct WebSocket {
    /// Put before every answered message's payload; UTF-8, so text answers stay text.
    prefix: Box<[u8]>,
    /// The largest message a client may send (`--max-message`).
    max_message: u64,
    /// When the drain began: from then on each connection gets a going-away close at its next
    /// message boundary.
    draining: Option<Instant>,
    /// How long a WebSocket may be silent before it is pinged (`--ws-ping`; `None`: never).
    ping: Option<Duration>,
    counts: ProtocolCounts,
}

/// How a WebSocket session ended, for [`Protocol::close_reason`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Still open, or closed by the client's close frame.
    #[default]
    Client,
    /// We sent a going-away close for the drain.
    Drain,
    /// We refused what the client sent, with a close code.
    Refused,
    /// We sent a going-away close at the idle timeout, the client silent since its last frame.
    Idle,
    /// Likewise, but the client was pinged meanwhile and did not answer.
    Unanswered,
}

/// One WebSocket connection's state between reads. Small and without heap memory while idle;
/// its held read allocates only when a read found the output full, and is let go after.
#[derive(Debug, Default)]
pub struct WsSession {
    /// The start of a frame header cut by the end of a read.
    head: HeaderReader,
    /// The frame whose payload is being read.
    frame: Option<FrameHeader>,
    /// Its payload bytes still to come.
    remaining: u64,
    /// The data message in progress (`Text` or `Binary`), between its first and last frame.
    message: Option<Opcode>,
    /// Its payload bytes so far, against `--max-message`.
    message_len: u64,
    /// An answer frame of this message went out: the next is a continuation, without prefix.
    answered: bool,
    /// The text message's UTF-8 so far.
    text: Utf8,
    /// The client's close frame being read: its code bytes, how many came, and its reason's
    /// UTF-8 so far. A close may come between a text message's fragments, hence a second
    /// validator.
    close_code: [u8; 2],
    close_got: u8,
    close_text: Utf8,
    /// We sent our close and wait until then for the client's; its other frames are skipped.
    closing: Option<Instant>,
    ending: Ending,
    /// When the client's last bytes were read (`None` before the upgrade completed), and
    /// whether we pinged it since (`--ws-ping`): a session is pinged once per silence.
    heard: Option<Instant>,
    pinged: bool,
    /// The unanswered rest of a read that found the output full (at most one read).
    held: Vec<u8>,
}

impl WsSession {
    /// Nothing of a frame or message is in progress, nor held back.
    fn idle(&self) -> bool {
        self.frame.is_none()
            && self.head.is_empty()
            && self.message.is_none()
            && self.held.is_empty()
    }
}

impl WebSocket {
    /// Messages are answered `prefix` + payload; a message over `max_message` bytes is refused.
    /// The prefix must be UTF-8, since it starts text answers too.
    pub fn new(prefix: &[u8], max_message: u64) -> Result<WebSocket, String> {
        if let Err(e) = std::str::from_utf8(prefix) {
            return Err(format!(
                "the prefix is not UTF-8 (at byte {}), so WebSocket text answers would be \
                 invalid: give a UTF-8 --prefix",
                e.valid_up_to()
            ));
        }
        Ok(WebSocket {
            prefix: prefix.into(),
            max_message,
            draining: None,
            ping: None,
            counts: ProtocolCounts::default(),
        })
    }

    /// Pings a WebSocket silent for `every` (`None`: never).
    pub fn with_ping(mut self, every: Option<Duration>) -> WebSocket {
        self.ping = every;
        self
    }

    /// A connection upgraded at `now`: its session, counted open until [`Protocol::on_close`].
    pub fn open(&mut self, now: Instant) -> WsSession {
        self.counts.ws.opened += 1;
        WsSession {
            heard: Some(now),
            ..WsSession::default()
        }
    }

    /// Answers the frames in `input`, advancing it past what was answered. Stops with the
    /// `Next` to return: `Pause` leaves unanswered bytes in `input`.
    fn drive(
        &mut self,
        s: &mut WsSession,
        input: &mut &[u8],
        answers: &mut Answers<'_>,
    ) -> Result<(), Next> {
        loop {
            if let Some(header) = s.frame {
                let take = usize::try_from(s.remaining).map_or(input.len(), |r| r.min(input.len()));
                let (piece, rest) = input.split_at(take);
                *input = rest;
                let at = header.len - s.remaining;
                s.remaining -= take as u64;
                self.payload(s, header, piece, at, answers)?;
                if s.remaining > 0 {
                    return Ok(());
                }
                s.frame = None;
                self.frame_end(s, header, answers)?;
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            // No frame starts past the cap, or a pipelining client would grow the output
            // without bound; a frame already begun is answered as far as this read goes.
            if s.head.is_empty() && answers.is_full() {
                return Err(Next::Pause);
            }
            match s.head.read(input) {
                Err(violation) => {
                    // The stream cannot be followed past a broken header: close at once, with
                    // a close frame unless ours went out already.
                    if s.closing.is_none() {
                        self.close_frame(answers, violation.code, violation.reason);
                        s.ending = Ending::Refused;
                    }
                    return Err(Next::Close);
                }
                Ok(None) => return Ok(()),
                Ok(Some((header, used))) => {
                    *input = &input[used..];
                    s.frame = Some(header);
                    s.remaining = header.len;
                    self.frame_start(s, header, answers)?;
                }
            }
        }
    }

    /// A frame header was read; its payload follows.
    fn frame_start(
        &mut self,
        s: &mut WsSession,
        header: FrameHeader,
        answers: &mut Answers<'_>,
    ) -> Result<(), Next> {
        if s.closing.is_some() {
            // Only the client's close is awaited now (its code read for the counts); anything
            // else is skipped.
            return match header.opcode {
                Opcode::Close if header.len >= 2 => {
                    s.close_got = 0;
                    Ok(())
                }
                Opcode::Close => {
                    self.received_close((header.len == 1).then_some(0));
                    Err(Next::Close)
                }
                _ => Ok(()),
            };
        }
        match header.opcode {
            Opcode::Continuation if s.message.is_none() => {
                return self.refuse(s, PROTOCOL_ERROR, "continuation without a message", answers)
            }
            Opcode::Text | Opcode::Binary if s.message.is_some() => {
                return self.refuse(s, PROTOCOL_ERROR, "new message inside a message", answers)
            }
            Opcode::Text | Opcode::Binary => {
                self.counts.ws.messages_in += 1;
                s.message = Some(header.opcode);
                s.message_len = 0;
                s.answered = false;
                s.text = Utf8::default();
            }
            Opcode::Continuation => {}
            Opcode::Ping => {
                // The pong's payload follows as the ping's arrives: nothing else is answered
                // before the ping's payload has all come.
                let (head, used) = encode_header(true, Opcode::Pong, header.len);
                answers.push(&head[..used]);
                return Ok(());
            }
            Opcode::Pong => return Ok(()),
            Opcode::Close => {
                if header.len == 1 {
                    self.received_close(Some(0));
                    self.close_frame(answers, PROTOCOL_ERROR, "close payload of 1 byte");
                    s.ending = Ending::Refused;
                    return Err(Next::Close);
                }
                s.close_got = 0;
                s.close_text = Utf8::default();
                return Ok(());
            }
        }
        s.message_len = s.message_len.saturating_add(header.len);
        if s.message_len > self.max_message {
            return self.refuse(s, TOO_BIG, "message over --max-message", answers);
        }
        Ok(())
    }

    /// `piece` of the current frame's payload arrived, `at` bytes into it, still masked.
    fn payload(
        &mut self,
        s: &mut WsSession,
        header: FrameHeader,
        piece: &[u8],
        at: u64,
        answers: &mut Answers<'_>,
    ) -> Result<(), Next> {
        if s.closing.is_some() && header.opcode != Opcode::Close {
            return Ok(());
        }
        match header.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                self.counts.ws.bytes_in += piece.len() as u64;
                let last = header.fin && s.remaining == 0;
                if piece.is_empty() && !last {
                    return Ok(());
                }
                let Some(kind) = s.message else {
                    return Ok(());
                };
                let start = answers.len();
                let (opcode, prefix) = match s.answered {
                    false => (kind, &self.prefix[..]),
                    true => (Opcode::Continuation, &[][..]),
                };
                let len = (prefix.len() + piece.len()) as u64;
                let (head, used) = encode_header(last, opcode, len);
                answers.push(&head[..used]);
                answers.push(prefix);
                let bytes = answers.push_mut(piece);
                unmask(bytes, header.mask, at);
                if kind == Opcode::Text
                    && (s.text.feed(bytes).is_err() || last && s.text.finish().is_err())
                {
                    answers.truncate(start);
                    return self.refuse(
                        s,
                        INVALID_DATA,
                        "invalid UTF-8 in a text message",
                        answers,
                    );
                }
                s.answered = true;
                self.counts.ws.bytes_out += len;
                if last {
                    s.message = None;
                    self.counts.message();
                    self.counts.ws.messages_out += 1;
                }
            }
            Opcode::Ping => unmask(answers.push_mut(piece), header.mask, at),
            Opcode::Pong => {}
            Opcode::Close => {
                let mut buf = [0u8; MAX_CONTROL as usize];
                let bytes = &mut buf[..piece.len()];
                bytes.copy_from_slice(piece);
                unmask(bytes, header.mask, at);
                let code_bytes = usize::from(2 - s.close_got.min(2)).min(bytes.len());
                let (code, reason) = bytes.split_at(code_bytes);
                for &b in code {
                    s.close_code[usize::from(s.close_got)] = b;
                    s.close_got += 1;
                }
                if s.closing.is_none() && s.close_text.feed(reason).is_err() {
                    self.received_close(Some(u16::from_be_bytes(s.close_code)));
                    self.close_frame(answers, INVALID_DATA, "invalid UTF-8 in a close reason");
                    s.ending = Ending::Refused;
                    return Err(Next::Close);
                }
            }
        }
        Ok(())
    }

    /// The current frame's payload has all come.
    fn frame_end(
        &mut self,
        s: &mut WsSession,
        header: FrameHeader,
        answers: &mut Answers<'_>,
    ) -> Result<(), Next> {
        let code = (s.close_got > 0).then(|| u16::from_be_bytes(s.close_code));
        if s.closing.is_some() {
            if header.opcode == Opcode::Close {
                self.received_close(code);
                return Err(Next::Close);
            }
            return Ok(());
        }
        match header.opcode {
            Opcode::Close => {
                self.received_close(code);
                s.ending = Ending::Client;
                let Some(code) = code else {
                    // No code: the answer has none either.
                    let (head, used) = encode_header(true, Opcode::Close, 0);
                    answers.push(&head[..used]);
                    self.counts.ws.closes_sent[WsCounts::close_slot(None)] += 1;
                    return Err(Next::Close);
                };
                if !close_code_valid(code) {
                    s.ending = Ending::Refused;
                    self.close_frame(answers, PROTOCOL_ERROR, "invalid close code");
                } else if s.close_text.finish().is_err() {
                    s.ending = Ending::Refused;
                    self.close_frame(answers, INVALID_DATA, "invalid UTF-8 in a close reason");
                } else {
                    self.close_frame(answers, code, "");
                }
                Err(Next::Close)
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation
                if header.fin && self.draining.is_some() =>
            {
                // The drain's message boundary.
                self.server_close(s, GOING_AWAY, "going away", answers);
                s.ending = Ending::Drain;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Refuses what the client sent with `code`, then waits for its close (the frames stay
    /// readable: only their content was wrong).
    fn refuse(
        &mut self,
        s: &mut WsSession,
        code: u16,
        reason: &'static str,
        answers: &mut Answers<'_>,
    ) -> Result<(), Next> {
        self.server_close(s, code, reason, answers);
        s.ending = Ending::Refused;
        Ok(())
    }

    /// Sends our close and waits a bounded time for the client's.
    fn server_close(
        &mut self,
        s: &mut WsSession,
        code: u16,
        reason: &str,
        answers: &mut Answers<'_>,
    ) {
        self.close_frame(answers, code, reason);
        s.message = None;
        s.closing = Some(answers.now() + CLOSE_WAIT);
    }

    /// A close frame with `code` and `reason` (ASCII, at most 123 bytes), counted.
    fn close_frame(&mut self, answers: &mut Answers<'_>, code: u16, reason: &str) {
        let (head, used) = encode_header(true, Opcode::Close, 2 + reason.len() as u64);
        answers.push(&head[..used]);
        answers.push(&code.to_be_bytes());
        answers.push(reason.as_bytes());
        self.counts.ws.closes_sent[WsCounts::close_slot(Some(code))] += 1;
    }

    /// Counts the client's close frame with `code` (`None`: without one; an invalid code, or
    /// a payload too short for one, counts as `other`).
    fn received_close(&mut self, code: Option<u16>) {
        let slot = match code {
            Some(code) if !close_code_valid(code) => WsCounts::close_slot(Some(0)),
            code => WsCounts::close_slot(code),
        };
        self.counts.ws.closes_received[slot] += 1;
    }
}

impl Protocol for WebSocket {
    type Session = WsSession;

    /// As much as the room allows: frame headers and the prefix may take the answers a little
    /// past it, and a read that finds the output full is held until the client catches up.
    fn read_len(&self, _: &WsSession, room: usize) -> usize {
        room.clamp(1, MAX_READ)
    }

    fn on_read(&mut self, s: &mut WsSession, input: &[u8], answers: &mut Answers<'_>) -> Next {
        s.heard = Some(answers.now());
        s.pinged = false;
        if !s.held.is_empty() {
            // Reads come only once nothing is held back; should one come, order is kept.
            s.held.extend_from_slice(input);
            return self.on_writable(s, answers);
        }
        let mut rest = input;
        match self.drive(s, &mut rest, answers) {
            Ok(()) => Next::Continue,
            Err(Next::Pause) => {
                s.held.extend_from_slice(rest);
                Next::Pause
            }
            Err(next) => next,
        }
    }

    fn on_writable(&mut self, s: &mut WsSession, answers: &mut Answers<'_>) -> Next {
        if s.held.is_empty() {
            return Next::Continue;
        }
        let mut held = std::mem::take(&mut s.held);
        let mut rest = &held[..];
        match self.drive(s, &mut rest, answers) {
            Ok(()) => Next::Continue,
            Err(Next::Pause) => {
                let answered = held.len() - rest.len();
                held.drain(..answered);
                s.held = held;
                Next::Pause
            }
            Err(next) => next,
        }
    }

    /// The client is gone: a message it left unfinished gets no answer.
    fn on_eof(&mut self, _: &mut WsSession, _: &mut Answers<'_>) {}

    /// Between messages, nothing held, and no closing handshake under way.
    fn at_boundary(&self, s: &WsSession) -> bool {
        s.idle() && s.closing.is_none()
    }

    /// Nothing is answered differently from now; each connection is closed with a going-away
    /// close at its next message boundary (see [`Protocol::deadline`]).
    fn on_drain(&mut self) {
        self.draining = Some(Instant::now());
    }

    /// The end of the wait for the client's close; during the drain, now for a connection at a
    /// message boundary, so it gets its going-away close; else its keep-alive ping's time.
    fn deadline(&self, s: &WsSession) -> Option<Instant> {
        match (s.closing, self.draining) {
            (Some(until), _) => Some(until),
            (None, Some(since)) if s.idle() => Some(since),
            _ => self.ping_at(s),
        }
    }

    fn on_deadline(
        &mut self,
        s: &mut WsSession,
        answers: &mut Answers<'_>,
        _: Option<Origin<'_>>,
    ) -> Next {
        match s.closing {
            Some(until) if answers.now() >= until => Next::Close,
            Some(_) => Next::Continue,
            None if self.draining.is_some() && s.idle() => {
                self.server_close(s, GOING_AWAY, "going away", answers);
                s.ending = Ending::Drain;
                Next::Continue
            }
            None => {
                self.ping_if_due(s, answers);
                Next::Continue
            }
        }
    }

    fn on_idle(&mut self, s: &mut WsSession, answers: &mut Answers<'_>) {
        self.idle_close(s, answers);
    }

    fn on_close(&mut self, _: &mut WsSession) {
        self.counts.ws.ended += 1;
    }

    fn counts(&self) -> &ProtocolCounts {
        &self.counts
    }

    /// The close handshake's side: the client's, or ours at the drain or the idle timeout. A
    /// refusal (a close code of ours) counts as the client's until the metrics learn
    /// WebSocket's reasons.
    fn close_reason(&self, s: &WsSession) -> CloseReason {
        match s.ending {
            Ending::Client | Ending::Refused => CloseReason::Client,
            Ending::Drain => CloseReason::Drain,
            Ending::Idle => CloseReason::Idle,
            Ending::Unanswered => CloseReason::WsPingTimeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testing::feed;
    use proptest::prelude::*;

    const P: &[u8] = b"You say that ";
    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    /// A masked client frame whose first byte is `first` (FIN, RSV, opcode).
    fn cf(first: u8, payload: &[u8]) -> Vec<u8> {
        frame::client_frame(first, payload, MASK)
    }

    /// A server frame, as it should be answered.
    fn sf(first: u8, payload: &[u8]) -> Vec<u8> {
        let (head, used) = encode_header(
            first & 0x80 != 0,
            opcode(first & 0x0F),
            payload.len() as u64,
        );
        [&head[..used], payload].concat()
    }

    fn opcode(bits: u8) -> Opcode {
        match bits {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            _ => Opcode::Pong,
        }
    }

    fn close(code: u16, reason: &str) -> Vec<u8> {
        sf(0x88, &[&code.to_be_bytes()[..], reason.as_bytes()].concat())
    }

    fn ws() -> WebSocket {
        WebSocket::new(P, DEFAULT_MAX_MESSAGE).unwrap()
    }

    fn run(ws: &mut WebSocket, input: &[u8]) -> (Vec<u8>, Next) {
        feed(ws, &[input], false)
    }

    #[test]
    fn text_and_binary_are_answered_in_kind_behind_the_prefix() {
        let input = [cf(0x81, b"Hello"), cf(0x82, &[0, 1, 2])].concat();
        let mut ws = ws();
        assert_eq!(
            run(&mut ws, &input),
            (
                [
                    sf(0x81, b"You say that Hello"),
                    sf(0x82, b"You say that \0\x01\x02")
                ]
                .concat(),
                Next::Continue
            )
        );
        assert_eq!(ws.counts().messages, 2);
    }

    #[test]
    fn an_empty_prefix_is_an_exact_echo_and_empty_messages_are_answered() {
        let mut ws = WebSocket::new(b"", 100).unwrap();
        let input = [cf(0x81, b""), cf(0x82, b"x")].concat();
        assert_eq!(
            run(&mut ws, &input).0,
            [sf(0x81, b""), sf(0x82, b"x")].concat()
        );
    }

    #[test]
    fn a_prefix_that_is_not_utf8_is_refused_at_start() {
        let err = WebSocket::new(b"ab\xff", 100).unwrap_err();
        assert!(err.contains("not UTF-8 (at byte 2)"), "{err}");
    }

    /// Fragments are answered as they come, the prefix with the first.
    #[test]
    fn a_fragmented_message_is_echoed_fragment_by_fragment() {
        let input = [cf(0x01, b"Hel"), cf(0x00, b""), cf(0x80, b"lo")].concat();
        let mut ws = ws();
        assert_eq!(
            run(&mut ws, &input).0,
            [sf(0x01, b"You say that Hel"), sf(0x80, b"lo")].concat()
        );
        assert_eq!(ws.counts().messages, 1);
    }

    /// A frame cut across reads is answered a piece per read: exact bytes.
    #[test]
    fn a_frame_cut_across_reads_is_answered_piece_by_piece() {
        let frame = cf(0x82, b"abcdefgh");
        let mut ws = WebSocket::new(b">", 100).unwrap();
        let (out, next) = feed(&mut ws, &[&frame[..3], &frame[3..9], &frame[9..]], false);
        assert_eq!(next, Next::Continue);
        assert_eq!(out, [sf(0x02, b">abc"), sf(0x80, b"defgh")].concat());
    }

    #[test]
    fn a_ping_is_answered_at_once_even_between_fragments_and_a_pong_not_at_all() {
        let input = [
            cf(0x01, b"one "),
            cf(0x89, b"are you there"),
            cf(0x8A, b"unsolicited"),
            cf(0x80, b"two"),
        ]
        .concat();
        let (out, next) = run(&mut ws(), &input);
        assert_eq!(next, Next::Continue);
        assert_eq!(
            out,
            [
                sf(0x01, b"You say that one "),
                sf(0x8A, b"are you there"),
                sf(0x80, b"two")
            ]
            .concat()
        );
        // A ping cut across reads: the pong follows it piece by piece, one frame.
        let ping = cf(0x89, b"0123456789");
        let (out, _) = feed(&mut ws(), &[&ping[..8], &ping[8..12], &ping[12..]], false);
        assert_eq!(out, sf(0x8A, b"0123456789"));
    }

    #[test]
    fn the_clients_close_is_echoed_with_its_code_then_closed() {
        let (out, next) = run(
            &mut ws(),
            &[cf(0x82, b"x"), cf(0x88, b"\x03\xe8bye")].concat(),
        );
        assert_eq!(next, Next::Close);
        assert_eq!(out, [sf(0x82, b"You say that x"), close(1000, "")].concat());
        // No code: no code back.
        assert_eq!(run(&mut ws(), &cf(0x88, b"")), (sf(0x88, b""), Next::Close));
        // Application codes, and a close between fragments.
        let input = [cf(0x01, b"a"), cf(0x88, &[0x0F, 0xA0])].concat();
        let (out, next) = run(&mut ws(), &input);
        assert_eq!(
            (&out[out.len() - 4..], next),
            (&close(4000, "")[..], Next::Close)
        );
        // Bytes after the close are not read.
        let (out, _) = run(&mut ws(), &[cf(0x88, b""), cf(0x81, b"late")].concat());
        assert_eq!(out, sf(0x88, b""));
    }

    #[test]
    fn bad_close_payloads_are_refused() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            let (out, next) = run(&mut ws(), &cf(0x88, &code.to_be_bytes()));
            assert_eq!(
                (out, next),
                (close(1002, "invalid close code"), Next::Close),
                "{code}"
            );
        }
        assert_eq!(
            run(&mut ws(), &cf(0x88, b"\x03")),
            (close(1002, "close payload of 1 byte"), Next::Close)
        );
        assert_eq!(
            run(&mut ws(), &cf(0x88, b"\x03\xe8ok\xff")),
            (close(1007, "invalid UTF-8 in a close reason"), Next::Close)
        );
        // A reason cut inside a character.
        assert_eq!(
            run(&mut ws(), &cf(0x88, b"\x03\xe8\xe2\x82")),
            (close(1007, "invalid UTF-8 in a close reason"), Next::Close)
        );
        // A valid reason, cut across reads.
        let frame = cf(0x88, &[&[0x03, 0xe8][..], "κόσμε".as_bytes()].concat());
        let (out, next) = feed(
            &mut ws(),
            &[&frame[..7], &frame[7..10], &frame[10..]],
            false,
        );
        assert_eq!((out, next), (close(1000, ""), Next::Close));
    }

    /// A header the stream cannot be followed past: a close frame and the end, at once.
    #[test]
    fn a_broken_header_is_answered_1002_and_closed_at_once() {
        let cases: [(Vec<u8>, &str); 6] = [
            (
                vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
                "client frame not masked",
            ),
            (cf(0xC1, b"x"), "reserved bits set without an extension"),
            (cf(0x83, b"x"), "unknown opcode"),
            (cf(0x09, b"x"), "fragmented control frame"),
            (cf(0x89, &[0; 126]), "control frame over 125 bytes"),
            (
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
                "64-bit frame length with its top bit set",
            ),
        ];
        for (input, reason) in cases {
            // A message answered before, the refusal after it.
            let input = [cf(0x81, b"ok"), input].concat();
            let (out, next) = run(&mut ws(), &input);
            assert_eq!(next, Next::Close, "{reason}");
            assert_eq!(
                out,
                [sf(0x81, b"You say that ok"), close(1002, reason)].concat()
            );
        }
    }

    /// The frames are sound, their order is not: the close, then the client's close awaited.
    #[test]
    fn fragmentation_rules_are_refused_then_the_clients_close_awaited() {
        let mut ws = ws();
        let mut session = WsSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let mut call = |ws: &mut WebSocket, s: &mut WsSession, input: &[u8]| {
            ws.on_read(s, input, &mut Answers::new(&mut out, usize::MAX, now))
        };
        assert_eq!(call(&mut ws, &mut session, &cf(0x80, b"x")), Next::Continue);
        assert_eq!(ws.deadline(&session), Some(now + CLOSE_WAIT));
        assert!(!ws.at_boundary(&session));
        // Frames before the client's close are skipped, pings too.
        assert_eq!(call(&mut ws, &mut session, &cf(0x89, b"?")), Next::Continue);
        assert_eq!(call(&mut ws, &mut session, &cf(0x81, b"y")), Next::Continue);
        assert_eq!(
            call(&mut ws, &mut session, &cf(0x88, b"\x03\xe8")),
            Next::Close
        );
        assert_eq!(out, close(1002, "continuation without a message"));
        // A broken header while waiting ends it too, without a second close.
        let (out, next) = run(
            &mut self::ws(),
            &[cf(0x80, b"x"), vec![0x81, 0x01, b'!']].concat(),
        );
        assert_eq!(
            (out, next),
            (close(1002, "continuation without a message"), Next::Close)
        );

        let input = [cf(0x01, b"a"), cf(0x81, b"b")].concat();
        let (out, next) = run(&mut self::ws(), &input);
        assert_eq!(next, Next::Continue);
        assert_eq!(
            out,
            [
                sf(0x01, b"You say that a"),
                close(1002, "new message inside a message")
            ]
            .concat()
        );
    }

    #[test]
    fn the_wait_for_the_clients_close_is_bounded() {
        let mut ws = ws();
        let mut session = WsSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        ws.on_read(
            &mut session,
            &cf(0x80, b"x"),
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        let early = now + CLOSE_WAIT / 2;
        let mut answers = Answers::new(&mut out, usize::MAX, early);
        assert_eq!(
            ws.on_deadline(&mut session, &mut answers, None),
            Next::Continue
        );
        let late = now + CLOSE_WAIT;
        let mut answers = Answers::new(&mut out, usize::MAX, late);
        assert_eq!(
            ws.on_deadline(&mut session, &mut answers, None),
            Next::Close
        );
        assert_eq!(out, close(1002, "continuation without a message"));
    }

    #[test]
    fn invalid_utf8_in_text_is_1007_at_the_first_bad_byte() {
        // The bad byte in the first fragment: refused before the message ends, its piece unanswered.
        let input = [
            cf(0x81, b"fine"),
            cf(0x01, b"\xce\xba\xf4\x90"),
            cf(0x80, b"x"),
        ]
        .concat();
        let (out, next) = run(&mut ws(), &input);
        assert_eq!(next, Next::Continue);
        assert_eq!(
            out,
            [
                sf(0x81, b"You say that fine"),
                close(1007, "invalid UTF-8 in a text message")
            ]
            .concat()
        );
        // A character cut between fragments is fine; cut at the message's end is not.
        let euro = "€".as_bytes();
        let input = [cf(0x01, &euro[..2]), cf(0x80, &euro[2..])].concat();
        let (out, _) = run(&mut WebSocket::new(b"", 100).unwrap(), &input);
        assert_eq!(out, [sf(0x01, &euro[..2]), sf(0x80, &euro[2..])].concat());
        let (out, _) = run(
            &mut WebSocket::new(b"", 100).unwrap(),
            &cf(0x81, &euro[..2]),
        );
        assert_eq!(out, close(1007, "invalid UTF-8 in a text message"));
        // Binary is never checked.
        let (out, _) = run(&mut WebSocket::new(b"", 100).unwrap(), &cf(0x82, b"\xff"));
        assert_eq!(out, sf(0x82, b"\xff"));
    }

    #[test]
    fn a_message_over_max_message_is_1009_at_the_header() {
        let mut ws = WebSocket::new(b"", 10).unwrap();
        let (out, _) = run(&mut ws, &[cf(0x82, &[1; 10]), cf(0x82, &[2; 11])].concat());
        assert_eq!(
            out,
            [
                sf(0x82, &[1; 10]),
                close(1009, "message over --max-message")
            ]
            .concat()
        );
        // Over it across fragments: the first is answered, the second refused.
        let (out, _) = run(&mut ws, &[cf(0x02, &[1; 6]), cf(0x80, &[2; 6])].concat());
        assert_eq!(
            out,
            [sf(0x02, &[1; 6]), close(1009, "message over --max-message")].concat()
        );
    }

    /// A read that finds the output full is held, and answered once it drains, in order.
    #[test]
    fn a_full_output_pauses_and_the_rest_is_answered_after() {
        let input: Vec<u8> = (0..20u8).flat_map(|i| cf(0x82, &[i; 10])).collect();
        let (whole, _) = run(&mut ws(), &input);
        let mut ws = ws();
        let mut session = WsSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let mut next = ws.on_read(&mut session, &input, &mut Answers::new(&mut out, 50, now));
        assert_eq!(next, Next::Pause);
        // Two answers of 25 bytes fit under 50; a third would start past it.
        assert_eq!(out.len(), 50);
        // Then three a turn: each starts under the room of 60.
        assert!(!ws.at_boundary(&session));
        let mut turns = 0;
        while next == Next::Pause {
            next = ws.on_writable(&mut session, &mut Answers::new(&mut out, 60, now));
            turns += 1;
        }
        assert_eq!((next, turns), (Next::Continue, 6));
        assert_eq!(out, whole);
        assert!(ws.at_boundary(&session));
        assert_eq!(session.held.capacity(), 0, "the held read is let go");
    }

    /// A large message goes through a read at a time, never held whole.
    #[test]
    fn a_large_message_is_streamed_not_held() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let frame = cf(0x82, &payload);
        let mut ws = ws();
        let mut session = WsSession::default();
        let mut out = Vec::new();
        let mut echoed = Vec::new();
        for read in frame.chunks(MAX_READ) {
            out.clear();
            let next = ws.on_read(
                &mut session,
                read,
                &mut Answers::new(&mut out, MAX_READ, Instant::now()),
            );
            assert_eq!(next, Next::Continue);
            assert!(out.len() <= MAX_READ + P.len() + MAX_SERVER_HEADER_FOR_TEST);
            assert_eq!(session.held.capacity(), 0);
            // Each answer is whole frames: strip their headers.
            let mut rest = &out[..];
            while !rest.is_empty() {
                let (len, head) = match rest[1] {
                    126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                    n => (n as usize, 2),
                };
                echoed.extend_from_slice(&rest[head..head + len]);
                rest = &rest[head + len..];
            }
        }
        assert_eq!(echoed, [P, &payload].concat());
        assert!(ws.at_boundary(&session));
    }

    const MAX_SERVER_HEADER_FOR_TEST: usize = frame::MAX_SERVER_HEADER;

    #[test]
    fn the_drain_closes_at_the_next_message_boundary() {
        let mut ws = ws();
        let now = Instant::now();
        let mut idle = WsSession::default();
        let mut busy = WsSession::default();
        let mut out = Vec::new();
        let answers = |out: &mut Vec<u8>| -> Vec<u8> { std::mem::take(out) };
        ws.on_read(
            &mut busy,
            &cf(0x02, b"part"),
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        out.clear();
        assert_eq!(ws.deadline(&idle), None);
        ws.on_drain();
        // Idle: due now, and answered 1001 when it comes.
        let due = ws.deadline(&idle).expect("a deadline for the idle session");
        assert!(due <= Instant::now());
        let next = ws.on_deadline(
            &mut idle,
            &mut Answers::new(&mut out, usize::MAX, now),
            None,
        );
        assert_eq!(
            (answers(&mut out), next),
            (close(1001, "going away"), Next::Continue)
        );
        assert_eq!(ws.deadline(&idle), Some(now + CLOSE_WAIT));
        assert_eq!(ws.close_reason(&idle), CloseReason::Drain);
        // Mid-message: no deadline until the message ends, then the close follows its answer.
        assert!(!ws.at_boundary(&busy));
        assert_eq!(ws.deadline(&busy), None);
        let next = ws.on_read(
            &mut busy,
            &cf(0x80, b"!"),
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!(next, Next::Continue);
        assert_eq!(
            answers(&mut out),
            [sf(0x80, b"!"), close(1001, "going away")].concat()
        );
        // The client's close ends it.
        let next = ws.on_read(
            &mut busy,
            &cf(0x88, b"\x03\xe9"),
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!((out.len(), next), (0, Next::Close));
    }

    #[test]
    fn an_idle_session_is_small_and_holds_no_heap_memory() {
        let size = std::mem::size_of::<WsSession>();
        println!("size_of::<WsSession>() = {size}");
        assert!(size <= 128, "WsSession is {size} bytes");
        let mut ws = ws();
        let mut session = WsSession::default();
        let input = [
            cf(0x01, b"a"),
            cf(0x89, b"p"),
            cf(0x80, b"b"),
            cf(0x82, b"c"),
        ]
        .concat();
        let mut out = Vec::new();
        let mut boundaries = Vec::new();
        let mut read = 0;
        for piece in input.chunks(3) {
            ws.on_read(
                &mut session,
                piece,
                &mut Answers::new(&mut out, usize::MAX, Instant::now()),
            );
            read += piece.len();
            if ws.at_boundary(&session) {
                boundaries.push(read);
            }
        }
        // Frames of 7 bytes: the fragmented message (with its ping) ends at 21, the next at 28;
        // every other cut is inside a header, a payload or a message.
        assert_eq!(boundaries, [21, 28]);
        assert_eq!(session.held.capacity(), 0);
    }

    /// Server frames parsed back into what a client reads: whole messages (type, payload),
    /// control frames, and the last frame if cut. Messages cut by a close are left out.
    fn messages(mut out: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut read = Vec::new();
        let mut message: Option<(u8, Vec<u8>)> = None;
        while out.len() >= 2 {
            let (len, head) = match out[1] {
                126 => (u16::from_be_bytes([out[2], out[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(out[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let (fin, op) = (out[0] & 0x80 != 0, out[0] & 0x0F);
            let payload = &out[head..(head + len).min(out.len())];
            if op >= 8 {
                read.push((op, payload.to_vec()));
            } else {
                let m = message.get_or_insert((op, Vec::new()));
                m.1.extend_from_slice(payload);
                if fin {
                    read.extend(message.take());
                }
            }
            out = &out[(head + len).min(out.len())..];
        }
        read
    }

    /// Client frames, mostly valid, with now and then a rule broken.
    fn client_stream() -> impl Strategy<Value = Vec<u8>> {
        let frame = (
            prop_oneof![
                8 => Just(0x81u8), 6 => Just(0x82), 3 => Just(0x01), 3 => Just(0x80),
                2 => Just(0x00), 3 => Just(0x89), 1 => Just(0x8A), 1 => Just(0x88),
                1 => any::<u8>(),
            ],
            prop_oneof![
                4 => "[a-zé€𝄞]{0,12}".prop_map(String::into_bytes),
                2 => prop::collection::vec(any::<u8>(), 0..8),
                1 => prop::collection::vec(any::<u8>(), 120..300),
            ],
            0..20u8,
        )
            .prop_map(|(first, payload, fault)| {
                let mut bytes = cf(first, &payload);
                if fault == 0 {
                    bytes[1] &= 0x7F; // unmasked
                }
                bytes
            });
        prop_oneof![
            9 => prop::collection::vec(frame, 0..12).prop_map(|f| f.concat()),
            1 => prop::collection::vec(any::<u8>(), 0..200),
        ]
    }

    proptest! {
        /// However the input is cut into reads, the client reads the same messages, pongs
        /// and close, and the connection ends the same way; nothing panics.
        #[test]
        fn any_cut_gives_the_same_answers(
            input in client_stream(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            at.sort_unstable();
            at.push(input.len());
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in at {
                pieces.push(&input[start..cut]);
                start = cut;
            }
            let mut ws = WebSocket::new(b"> ", 200).unwrap();
            let (whole, whole_next) = feed(&mut ws, &[&input], true);
            let (split, split_next) = feed(&mut ws, &pieces, true);
            prop_assert_eq!(split_next, whole_next);
            prop_assert_eq!(messages(&split), messages(&whole));
        }
    }
}
