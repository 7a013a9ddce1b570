//! Zero heap allocations per message in steady state: a counting global allocator (dhat's, so no
//! unsafe code here) watches the whole process while clients echo 10,000 messages after warm-up.
//!
//! One test per file: the allocator counts every thread of this test binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use saythat::{Config, FramingKind};

#[global_allocator]
static COUNTING: dhat::Alloc = dhat::Alloc;

/// Sends `rounds` batches on every stream, then reads every answer, into buffers allocated up
/// front so the client side allocates nothing while counted.
fn echo(
    streams: &mut [TcpStream],
    batch: &[u8],
    expected: &[u8],
    rounds: usize,
    answer: &mut [u8],
) {
    for _ in 0..rounds {
        for stream in streams.iter_mut() {
            stream.write_all(batch).expect("send");
        }
        for stream in streams.iter_mut() {
            stream.read_exact(answer).expect("read the answers");
            assert!(answer == expected, "wrong answer: {}", show(answer));
        }
    }
}

#[test]
fn steady_state_echo_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let cases = [
        (FramingKind::Chunk, &b"ping, 64 bytes or so"[..], 1),
        (FramingKind::Line, &b"a line\n"[..], 16),
    ];
    for (framing, message, depth) in cases {
        let server = TestServer::start(&Config {
            framing,
            ..Config::loopback()
        });
        let mut streams: Vec<TcpStream> = (0..10).map(|_| server.connect()).collect();
        let batch = message.repeat(depth);
        let expected = answer(message).repeat(depth);
        let mut got = vec![0; expected.len()];
        // Warm-up: the loop's event list, answer buffer and slab reach their working size.
        echo(&mut streams, &batch, &expected, 200, &mut got);
        let before = dhat::HeapStats::get().total_blocks;
        let rounds = 10_000 / (streams.len() * depth) + 1;
        echo(&mut streams, &batch, &expected, rounds, &mut got);
        let grown = dhat::HeapStats::get().total_blocks - before;
        let messages = rounds * streams.len() * depth;
        assert_eq!(
            grown, 0,
            "{framing:?} framing: {grown} allocations while echoing {messages} messages"
        );
        drop(streams);
        server.abort();
    }
}
