//! The loop trusts a short read to mean "drained" instead of paying a read for WouldBlock. That
//! is only sound because epoll raises a new edge for bytes that arrive after the read: these
//! tests send bytes back to back, so some land between the server's short read and its next
//! wait, and every one must still be answered (a lost edge hangs the client into its timeout).

mod common;

use std::io::Read;

use common::*;
use saythat::{Config, FramingKind};

/// Reads answers until `want` payload bytes have come, checking each starts with the prefix.
fn read_payload(stream: &mut std::net::TcpStream, want: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while payload.len() < want {
        let n = stream.read(&mut buf).unwrap_or_else(|e| {
            panic!(
                "waiting for {want} payload bytes, got {}: {e} (a lost edge?)",
                payload.len()
            )
        });
        assert!(
            n > 0,
            "the server closed after {} of {want} payload bytes",
            payload.len()
        );
        raw.extend_from_slice(&buf[..n]);
        // Payload bytes are never 'Y', so every 'Y' starts a prefix.
        while let Some(start) = raw.iter().position(|&b| b == b'Y') {
            assert_eq!(start, 0, "bytes before a prefix: {}", show(&raw));
            if raw.len() < PREFIX.len() {
                break;
            }
            assert!(raw.starts_with(PREFIX), "not a prefix: {}", show(&raw));
            let end = raw[PREFIX.len()..]
                .iter()
                .position(|&b| b == b'Y')
                .map_or(raw.len(), |i| i + PREFIX.len());
            payload.extend_from_slice(&raw[PREFIX.len()..end]);
            raw.drain(..end);
        }
    }
    payload
}

#[test]
fn bytes_arriving_right_after_a_short_read_are_answered() {
    let server = TestServer::start(&Config::loopback());
    let mut stream = server.connect();
    let mut sent = Vec::new();
    for i in 0..2000u32 {
        // Two segments back to back: the second often arrives while the server handles the first.
        let first = format!("a{i}-");
        let second = format!("b{i}.");
        send(&mut stream, first.as_bytes());
        send(&mut stream, second.as_bytes());
        sent.extend_from_slice(first.as_bytes());
        sent.extend_from_slice(second.as_bytes());
        if i % 100 == 99 {
            let got = read_payload(&mut stream, sent.len());
            assert_eq!(show(&got), show(&sent));
            sent.clear();
        }
    }
}

#[test]
fn a_line_split_right_after_a_short_read_is_answered() {
    let server = TestServer::start(&Config {
        framing: FramingKind::Line,
        ..Config::loopback()
    });
    let mut stream = server.connect();
    for i in 0..2000u32 {
        let line = format!("line {i}\n");
        let (head, tail) = line.as_bytes().split_at(3);
        send(&mut stream, head);
        send(&mut stream, tail);
        expect_bytes(&mut stream, &answer(line.as_bytes()));
    }
}

/// TCP urgent data: a read stops short at the urgent mark while data is still queued behind it,
/// and no new edge follows, so "a short read means drained" would leave the rest unanswered
/// until the client half-closed. The server is stopped while the three pieces arrive, so they
/// are all queued at its first read. The urgent byte stays in the stream (SO_OOBINLINE).
#[test]
fn urgent_data_does_not_stall_the_connection() {
    for (framing, expected) in [
        ("line", &b"You say that abcXdef\n"[..]),
        // The reads stop at the mark: "abc", then "Xdef\n".
        ("chunk", &b"You say that abcYou say that Xdef\n"[..]),
    ] {
        let server = ServerProcess::serve(&["--framing", framing]);
        let mut stream = server.connect();
        send_expect(&mut stream, b"hi\n", &answer(b"hi\n"));
        server.signal("STOP");
        send(&mut stream, b"abc");
        socket2::SockRef::from(&stream)
            .send_out_of_band(b"X")
            .expect("send the urgent byte");
        send(&mut stream, b"def\n");
        // All eight bytes queued at the stopped server's socket (loopback may deliver them
        // later than the sends return, on a loaded machine well later than a fixed sleep).
        let (server_side, client_side) = (server.addr(), stream.local_addr().unwrap());
        wait_for(TIMEOUT, "the three pieces queued at the server", || {
            let (_, queued) = tcp_queues(server_side, client_side)?;
            (queued >= 8).then_some(())
        });
        server.signal("CONT");
        let got = try_read_exact(&mut stream, expected.len()).unwrap_or_else(|e| {
            panic!("{framing} framing: the data after the urgent byte went unanswered: {e}")
        });
        assert_eq!(show(&got), show(expected), "{framing} framing");
    }
}
