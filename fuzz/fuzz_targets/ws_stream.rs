//! Fuzzes the WebSocket echo (`WebSocket` through the `Protocol` interface, as the event loop
//! drives it) with arbitrary client bytes cut into fuzzer-chosen reads under fuzzer-chosen
//! output rooms. It must never panic, never answer past a call's room by more than one read's
//! worth, pause only with the room spent, write only well-formed server frames (unmasked, no
//! RSV bits, known opcodes, control frames whole and short), keep text answers UTF-8, close
//! with valid codes only, and give the same messages, pongs, close and end however the bytes
//! are cut and whatever the rooms.
//!
//! Input: byte 0 picks `--max-message` and the prefix, bytes 1..5 the read lengths (cycled,
//! 0: all the rest), bytes 5..9 the rooms (cycled: 1 + n × 8, 255 unlimited), the rest is the wire.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use saythat::framing::ws::WebSocket;
use saythat::framing::{Answers, Next, Protocol};

/// Bytes of the input that steer the run rather than feed the protocol.
const HEADER: usize = 9;
const MAX_MESSAGES: [u64; 4] = [0, 10, 300, 1 << 24];
const PREFIXES: [&str; 3] = ["", "> ", "κόσμε "];

/// What a client reads: messages (opcode, payload), control frames, and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    frames: Vec<(u8, Vec<u8>)>,
    next: Next,
}

/// Feeds `pieces` as the loop would, each read after the pauses are answered, each call with
/// the next room. Returns the answers and the first `Next` that ends the connection.
fn drive<'a>(
    ws: &mut WebSocket,
    pieces: impl Iterator<Item = &'a [u8]>,
    mut room: impl FnMut() -> usize,
) -> (Vec<u8>, Next) {
    let mut session = Default::default();
    let mut out = Vec::new();
    let now = Instant::now();
    let check = |next: Next, before: usize, room: usize, out: &Vec<u8>, input: usize| {
        let grown = out.len() - before;
        if next == Next::Pause {
            assert!(grown >= room, "paused with room left ({grown} < {room})");
        }
        // A call may start a frame under the room and finish the read's piece of it.
        assert!(
            grown <= room.saturating_add(input + 200),
            "{grown} bytes answered into a room of {room} for {input} bytes"
        );
    };
    let mut next = Next::Continue;
    for piece in pieces {
        while next == Next::Pause {
            let (before, r) = (out.len(), room());
            next = ws.on_writable(&mut session, &mut Answers::new(&mut out, r, now));
            check(next, before, r, &out, 16 * 1024);
        }
        if next != Next::Continue {
            return (out, next);
        }
        let (before, r) = (out.len(), room());
        next = ws.on_read(&mut session, piece, &mut Answers::new(&mut out, r, now));
        check(next, before, r, &out, piece.len());
    }
    while next == Next::Pause {
        next = ws.on_writable(&mut session, &mut Answers::new(&mut out, usize::MAX, now));
    }
    (out, next)
}

/// Parses the answers as a client would, checking each frame.
fn read(mut out: &[u8], prefix: &str, next: Next) -> Read {
    let mut frames = Vec::new();
    let mut message: Option<(u8, Vec<u8>)> = None;
    while !out.is_empty() {
        assert!(out.len() >= 2, "a cut frame header");
        let (b0, b1) = (out[0], out[1]);
        assert_eq!(b0 & 0x70, 0, "RSV bits in an answer");
        assert_eq!(b1 & 0x80, 0, "a masked answer");
        let (len, head) = match b1 {
            126 => (u16::from_be_bytes([out[2], out[3]]) as usize, 4),
            127 => (u64::from_be_bytes(out[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        let (fin, op) = (b0 & 0x80 != 0, b0 & 0x0F);
        let end = (head + len).min(out.len());
        let payload = &out[head..end];
        match op {
            0x8 | 0x9 | 0xA => {
                assert!(fin && len <= 125, "a fragmented or long control frame");
                if op == 0x8 && len >= 2 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    assert!(
                        matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999),
                        "close code {code}"
                    );
                }
                frames.push((op, payload.to_vec()));
            }
            0x0..=0x2 => {
                assert_eq!(end, head + len, "a cut data frame");
                assert_eq!(op == 0, message.is_some(), "fragmentation broken");
                let m = message.get_or_insert((op, Vec::new()));
                m.1.extend_from_slice(payload);
                if fin {
                    let (op, payload) = message.take().unwrap();
                    assert!(payload.starts_with(prefix.as_bytes()));
                    if op == 1 {
                        assert!(std::str::from_utf8(&payload).is_ok(), "a text answer not UTF-8");
                    }
                    frames.push((op, payload));
                }
            }
            _ => panic!("opcode {op} answered"),
        }
        out = &out[end..];
    }
    Read { frames, next }
}

/// Cuts `wire` into pieces whose lengths cycle through `codes` (0: all the rest).
fn pieces<'a>(wire: &'a [u8], codes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = wire;
    let mut code = codes.iter().cycle();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = match *code.next()? {
            0 => rest.len(),
            n => usize::from(n).min(rest.len()),
        };
        let (piece, after) = rest.split_at(len);
        rest = after;
        Some(piece)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let max_message = MAX_MESSAGES[usize::from(data[0] & 3)];
    let prefix = PREFIXES[usize::from(data[0] >> 2) % PREFIXES.len()];
    let codes = &data[1..5];
    let rooms = &data[5..9];
    let wire = &data[HEADER..];
    let mut ws = WebSocket::new(prefix.as_bytes(), max_message).expect("UTF-8 prefixes");

    let (out, next) = drive(&mut ws, std::iter::once(wire), || usize::MAX);
    let whole = read(&out, prefix, next);
    let mut room = rooms.iter().cycle().map(|&r| match r {
        255 => usize::MAX,
        n => 1 + usize::from(n) * 8,
    });
    let (out, next) = drive(&mut ws, pieces(wire, codes), || room.next().unwrap_or(0));
    let split = read(&out, prefix, next);
    assert_eq!(whole, split, "cutting the wire or the rooms changed the answers");
});
