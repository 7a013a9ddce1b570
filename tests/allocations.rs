//! Zero heap allocations per message in steady state: a counting global allocator (dhat's, so no
//! unsafe code here) watches the whole process while clients echo 10,000 messages after warm-up,
//! in every framing: chunk, line, HTTP (keep-alive GETs, 16 pipelined GETs, 64-byte POSTs) and
//! WebSocket (HTTP upgraded before warm-up; 64-byte binary messages, one and 16 in flight), with
//! `--metrics-listen` off and on (its loop publishes every turn, and was scraped).
//! `tests/ws_allocations.rs` covers the WebSocket codec's harder paths (fragments, pings between
//! them, text, large messages cut across reads) without sockets.
//!
//! One test per file: the allocator counts every thread of this test binary.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use common::http::{date_offsets, get, mask_dates, ok, post, DATE_LEN};
use common::*;
use saythat::{Config, FramingKind};

#[global_allocator]
static COUNTING: dhat::Alloc = dhat::Alloc;

/// Sends `rounds` batches on every stream, then reads every answer, into buffers allocated up
/// front so the client side allocates nothing while counted. The `Date` values of HTTP answers
/// (at `dates`) change each second: they are copied from `expected` before comparing (their
/// format is checked on the warm-up's answers).
fn echo(
    streams: &mut [TcpStream],
    batch: &[u8],
    expected: &[u8],
    dates: &[usize],
    rounds: usize,
    answer: &mut [u8],
) {
    for _ in 0..rounds {
        for stream in streams.iter_mut() {
            stream.write_all(batch).expect("send");
        }
        for stream in streams.iter_mut() {
            stream.read_exact(answer).expect("read the answers");
            for &at in dates {
                answer[at..at + DATE_LEN].copy_from_slice(&expected[at..at + DATE_LEN]);
            }
            assert!(answer == expected, "wrong answer: {}", show(answer));
        }
    }
}

/// A masked client frame: one 64-byte binary message.
fn ws_binary(payload: &[u8; 64]) -> Vec<u8> {
    let mask = [0x5a, 0x0f, 0xf0, 0x33];
    let masked = payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m);
    [&[0x82, 0x80 | 64][..], &mask]
        .concat()
        .into_iter()
        .chain(masked)
        .collect()
}

/// Upgrades `stream` to a WebSocket and reads the `101` head, byte by byte so no frame is taken.
fn upgrade(stream: &mut TcpStream) {
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("send the upgrade");
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the 101");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"),
        "{}",
        show(&head)
    );
}

#[test]
fn steady_state_echo_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let said = [b'p'; 64];
    let http_post = post(&said);
    let http_answer = ok(&[PREFIX, &said].concat());
    let ws_message = ws_binary(&said);
    // Unmasked, one frame: 77 bytes of payload fit the 7-bit length.
    let ws_answer = [&[0x82, 77][..], PREFIX, &said].concat();
    let cases = [
        (
            "chunk",
            FramingKind::Chunk,
            answer(b"ping, 64 bytes or so"),
            &b"ping, 64 bytes or so"[..],
            1,
        ),
        (
            "line",
            FramingKind::Line,
            answer(b"a line\n"),
            b"a line\n",
            16,
        ),
        (
            "HTTP keep-alive GET",
            FramingKind::Http,
            ok(b"You say that ping"),
            &get("/ping")[..],
            1,
        ),
        (
            "HTTP 16 pipelined GETs",
            FramingKind::Http,
            ok(b"You say that ping"),
            &get("/ping")[..],
            16,
        ),
        (
            "HTTP 64-byte POST",
            FramingKind::Http,
            http_answer.clone(),
            &http_post[..],
            1,
        ),
        (
            "HTTP 16 pipelined 64-byte POSTs",
            FramingKind::Http,
            http_answer,
            &http_post[..],
            16,
        ),
        (
            "WebSocket 64-byte binary",
            FramingKind::Http,
            ws_answer.clone(),
            &ws_message[..],
            1,
        ),
        (
            "WebSocket 16 pipelined 64-byte binary",
            FramingKind::Http,
            ws_answer,
            &ws_message[..],
            16,
        ),
    ];
    let metrics = [vec![], vec![SocketAddr::from(([127, 0, 0, 1], 0))]];
    for ((label, framing, one_answer, message, depth), metrics_listen) in metrics
        .iter()
        .flat_map(|m| cases.iter().map(move |case| (case.clone(), m.clone())))
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
        if label.starts_with("WebSocket") {
            streams.iter_mut().for_each(upgrade);
        }
        let batch = message.repeat(depth);
        let expected = one_answer.repeat(depth);
        let dates = date_offsets(&expected);
        let mut got = vec![0; expected.len()];
        // Warm-up: the loop's event list, answer buffer and slab reach their working size.
        for stream in streams.iter_mut() {
            stream.write_all(&batch).expect("send");
            stream.read_exact(&mut got).expect("read the answers");
            assert!(mask_dates(&got) == expected, "{label}: {}", show(&got));
        }
        echo(&mut streams, &batch, &expected, &dates, 200, &mut got);
        let before = dhat::HeapStats::get().total_blocks;
        let mut rounds = 10_000 / (streams.len() * depth) + 1;
        echo(&mut streams, &batch, &expected, &dates, rounds, &mut got);
        // HTTP answers carry a Date cached per second: go on until the wall clock has turned a
        // second while counted, so its refresh is counted too.
        let second = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        let first_second = second();
        while framing == FramingKind::Http && second() == first_second {
            echo(&mut streams, &batch, &expected, &dates, 10, &mut got);
            rounds += 10;
        }
        let grown = dhat::HeapStats::get().total_blocks - before;
        let messages = rounds * streams.len() * depth;
        assert_eq!(
            grown,
            0,
            "{label} ({framing:?} framing), metrics {}: {grown} allocations while echoing \
             {messages} messages",
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
