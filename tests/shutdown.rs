//! Stopping the library server with its handle: `shutdown` drains like SIGTERM, `abort` closes
//! everything now like a second signal.

mod common;

use std::io::{self, Read};
use std::time::Duration;

use common::{
    expect_refused, read_to_eof, roundtrip, send, send_expect, TestServer, PREFIX, TIMEOUT,
};
use saythat::{Config, FramingKind};

/// Bounds "promptly": far below the shutdown timeout these tests configure, so a server that
/// waited for the timeout instead would fail.
const PROMPTLY: Duration = Duration::from_secs(5);

fn config() -> Config {
    Config {
        shutdown_timeout: 60,
        ..Config::loopback()
    }
}

/// Line framing, so the client can stay in the middle of a line: the drain closes a connection
/// idle between messages by itself (tests/drain.rs).
#[test]
fn shutdown_refuses_new_connections_and_serves_open_ones_until_they_are_done() {
    let server = TestServer::start(&Config {
        framing: FramingKind::Line,
        ..config()
    });
    let mut client = server.connect();
    // Answered, so accepted: a connection still in the backlog would be lost with the listener.
    send_expect(&mut client, b"before\nduri", b"You say that before\n");

    server.handle.shutdown();
    // The request is set before these bytes leave, so the loop turn that answers the first sees
    // it and closes the listeners at its end; the answer to the second proves that turn is over.
    // Each leaves half a line behind, which keeps the connection open.
    send_expect(&mut client, b"ng 1\nduri", b"You say that during 1\n");
    send_expect(&mut client, b"ng 2\nla", b"You say that during 2\n");

    expect_refused(server.addr());
    assert!(
        !server.is_finished(),
        "run() returned while a connection was still open"
    );

    // The last line completes: answered, then closed between messages.
    send(&mut client, b"st\n");
    assert_eq!(read_to_eof(&mut client), b"You say that last\n");
    drop(client);
    let summary = server.wait(TIMEOUT);
    assert_eq!(summary.accepted, 1, "connections accepted");
    assert_eq!(summary.closed_at_drain, 1, "closed between messages");
    assert_eq!(summary.cut_at_shutdown, 0, "connections cut at shutdown");
    let sent = "before\nduring 1\nduring 2\nlast\n".len() as u64;
    assert_eq!(summary.bytes_in, sent, "bytes in");
    assert_eq!(
        summary.bytes_out,
        sent + 4 * PREFIX.len() as u64,
        "bytes out"
    );
}

#[test]
fn shutdown_with_no_connection_returns_at_once() {
    let server = TestServer::start(&config());
    server.handle.shutdown();
    server.wait(PROMPTLY);
}

#[test]
fn abort_closes_open_connections_and_returns_promptly() {
    let server = TestServer::start(&config());
    let mut clients = [server.connect(), server.connect()];
    for client in &mut clients {
        roundtrip(client, b"ping");
    }

    server.handle.abort();
    let summary = server.wait(PROMPTLY);
    assert_eq!(summary.cut_at_shutdown, 2, "connections cut at shutdown");

    for client in &mut clients {
        let mut buf = [0u8; 64];
        match client.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("expected the connection closed, read {n} bytes"),
            Err(e) => panic!("expected the connection closed, got: {e}"),
        }
    }
}
