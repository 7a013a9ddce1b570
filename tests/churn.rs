//! Churn: thousands of short connections, and connections reset mid-way (SO_LINGER 0), leave the
//! server answering every client correctly, each its own answers, and holding no descriptor for a
//! connection that is gone.

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::{
    answer, connect, expect_bytes, expect_bytes_then_eof, send, wait_for, ServerProcess, TestServer,
};
use saythat::Config;

/// One short connection: a message, a half-close, and exactly its answer then EOF.
fn short_connection(addr: SocketAddr, msg: &[u8]) {
    let mut c = connect(addr);
    send(&mut c, msg);
    c.shutdown(Shutdown::Write).unwrap();
    expect_bytes_then_eof(&mut c, &answer(msg));
}

/// A connection reset by its client (SO_LINGER 0) after sending `len` bytes, without reading.
fn aborted_connection(addr: SocketAddr, len: usize) {
    let mut c = connect(addr);
    if len > 0 {
        // The server may already have answered and the reset may race the write: both fine.
        let _ = c.write_all(&vec![b'r'; len]);
    }
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
}

/// Aborted connections of assorted sizes (nothing, one read, many reads, more than the server
/// can answer before its socket fills) interleaved with short ones that must stay correct.
fn aborts_interleaved(addr: SocketAddr, rounds: usize) {
    const ABORT_SIZES: [usize; 4] = [0, 10, 5000, 300_000];
    for i in 0..rounds {
        aborted_connection(addr, ABORT_SIZES[i % ABORT_SIZES.len()]);
        short_connection(addr, format!("between aborts {i}").as_bytes());
    }
}

/// Many clients at once, each sending a distinct payload: every answer reaches its own client.
fn concurrent_distinct_payloads(addr: SocketAddr, clients: usize) {
    let mut streams: Vec<(TcpStream, Vec<u8>)> = (0..clients)
        .map(|i| {
            let c = connect(addr);
            // Distinct in content and length, so a crossed or merged answer shows.
            let msg = format!("client {i} says {}", "z".repeat(i % 37)).into_bytes();
            (c, msg)
        })
        .collect();
    for (c, msg) in &mut streams {
        send(c, msg);
    }
    for (c, msg) in streams.iter_mut().rev() {
        expect_bytes(c, &answer(msg));
    }
}

#[test]
fn three_thousand_short_connections_in_a_row() {
    let server = TestServer::start(&Config::loopback());
    for i in 0..3000 {
        short_connection(server.addr(), format!("short connection {i}").as_bytes());
    }
    let summary = server.shutdown();
    assert_eq!(summary.accepted, 3000, "accepted");
    assert_eq!(summary.cut_at_shutdown, 0, "connections left open");
}

#[test]
fn resets_interleaved_with_normal_connections_and_each_answer_to_its_client() {
    let server = TestServer::start(&Config {
        shutdown_timeout: 2,
        ..Config::loopback()
    });
    aborts_interleaved(server.addr(), 400);
    concurrent_distinct_payloads(server.addr(), 200);
    server.handle.shutdown();
    let summary = server.wait(Duration::from_secs(5));
    assert_eq!(summary.accepted, 400 * 2 + 200, "accepted");
    // Every client is closed (the final batch when it was dropped); one still open at the end
    // of the drain is a reset connection the server never closed.
    assert_eq!(
        summary.cut_at_shutdown, 0,
        "connections still open at the end of a 2 s drain, after every client had gone"
    );
}

#[test]
fn the_binary_holds_no_descriptor_for_a_closed_or_reset_connection() {
    let server = ServerProcess::serve(&[]);
    let baseline = server.fd_count();
    for i in 0..500 {
        short_connection(server.addr(), format!("short {i}").as_bytes());
    }
    aborts_interleaved(server.addr(), 250);
    concurrent_distinct_payloads(server.addr(), 200);
    // The final batch is closed here, by dropping it in the call above.
    let mut last = 0;
    wait_for(
        Duration::from_secs(5),
        &format!("the server's descriptors back to {baseline}"),
        || {
            last = server.fd_count();
            (last == baseline).then_some(())
        },
    );
    // Still serving afterwards.
    short_connection(server.addr(), b"after the churn");
}
