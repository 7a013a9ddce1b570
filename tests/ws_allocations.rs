//! Zero heap allocations per WebSocket message in steady state, without sockets: a counting
//! global allocator (dhat's, so no unsafe code here) watches `WebSocket` answer 10,000 rounds of
//! text, binary, fragmented and large messages, pings between fragments, cut across reads as
//! the server reads them, into an answer buffer allocated up front.
//!
//! One test per file: the allocator counts every thread of this test binary.

use std::time::Instant;

use saythat::framing::ws::frame::{encode_header, unmask, Opcode};
use saythat::framing::ws::{WebSocket, WsSession, DEFAULT_MAX_MESSAGE};
use saythat::framing::{Answers, Next, Protocol};

#[global_allocator]
static COUNTING: dhat::Alloc = dhat::Alloc;

const MASK: [u8; 4] = [1, 2, 3, 4];

/// A masked client frame.
fn client_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let (head, used) = encode_header(fin, opcode, payload.len() as u64);
    let mut frame = head[..used].to_vec();
    frame[1] |= 0x80;
    frame.extend_from_slice(&MASK);
    let start = frame.len();
    frame.extend_from_slice(payload);
    unmask(&mut frame[start..], MASK, 0);
    frame
}

#[test]
fn steady_state_websocket_echo_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let round = [
        client_frame(true, Opcode::Binary, &[7; 64]),
        client_frame(true, Opcode::Text, "κόσμε, 64 bytes or so".as_bytes()),
        client_frame(false, Opcode::Text, "a fragment cut inside €".as_bytes()),
        client_frame(true, Opcode::Ping, b"between fragments"),
        client_frame(true, Opcode::Continuation, b" and its end"),
        client_frame(true, Opcode::Binary, &[9; 5000]),
    ]
    .concat();
    // Reads of 1000 bytes cut headers, payloads and characters at shifting places.
    let stream = round.repeat(8);
    let mut ws = WebSocket::new(b"You say that ", DEFAULT_MAX_MESSAGE).expect("a UTF-8 prefix");
    let mut session = WsSession::default();
    let mut out = Vec::with_capacity(64 * 1024);
    let now = Instant::now();
    let answer_all = |ws: &mut WebSocket, session: &mut WsSession, out: &mut Vec<u8>| {
        for read in stream.chunks(1000) {
            out.clear();
            let next = ws.on_read(session, read, &mut Answers::new(out, usize::MAX, now));
            assert_eq!(next, Next::Continue);
        }
    };
    answer_all(&mut ws, &mut session, &mut out);
    let before = dhat::HeapStats::get().total_blocks;
    // 4 messages a round, 32 a stream: 313 streams are 10,016 messages.
    for _ in 0..313 {
        answer_all(&mut ws, &mut session, &mut out);
    }
    let grown = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(ws.counts().messages, 32 * (1 + 313));
    assert_eq!(grown, 0, "{grown} allocations for 10,000 messages");
    assert!(ws.at_boundary(&session));
}
