//! Zero heap allocations per message in steady state: a counting global allocator (dhat's, so no
//! unsafe code here) watches the whole process while clients echo 10,000 messages after warm-up,
//! with `--metrics-listen` off and on (its loop publishes every turn, and was scraped).
//!
//! One test per file: the allocator counts every thread of this test binary.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

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
    let metrics = [vec![], vec![SocketAddr::from(([127, 0, 0, 1], 0))]];
    for ((framing, message, depth), metrics_listen) in metrics
        .iter()
        .flat_map(|m| cases.map(|case| (case, m.clone())))
    {
        let server = TestServer::start(&Config {
            framing,
            metrics_listen,
            ..Config::loopback()
        });
        // A scrape before the count: the endpoint's buffers exist, as in a server being watched.
        for addr in &server.metrics {
            let mut scrape = connect(*addr);
            scrape
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .expect("scrape");
            let mut text = Vec::new();
            scrape.read_to_end(&mut text).expect("scrape");
            assert!(text.starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
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
            grown,
            0,
            "{framing:?} framing, metrics {}: {grown} allocations while echoing {messages} \
             messages",
            if server.metrics.is_empty() {
                "off"
            } else {
                "on"
            }
        );
        drop(streams);
        server.abort();
    }
}
