//! `--max-conns`: one connection past the limit is told why and closed, the others are served
//! as before, and a freed slot is given to the next client.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::http::{exchange, get, http_config, mask_dates, ok, MASK};
use common::{
    expect_bytes_then_eof, read_exact_timeout, read_to_eof, roundtrip, send, show, wait_for,
    TestServer, PREFIX,
};
use saythat::Config;

const FULL: &[u8] = b"ERR server full (max 3 connections)\n";

#[test]
fn the_connection_past_the_limit_is_told_and_closed_and_a_freed_slot_is_reused() {
    let server = TestServer::start(&Config {
        max_conns: Some(3),
        ..Config::loopback()
    });
    assert_eq!(server.max_conns, 3, "Server::max_conns() with max_conns 3");

    let mut admitted: Vec<_> = (0..3)
        .map(|i| {
            let mut c = server.connect();
            roundtrip(&mut c, format!("first {i}").as_bytes());
            c
        })
        .collect();

    let mut fourth = server.connect();
    expect_bytes_then_eof(&mut fourth, FULL);

    // A client that speaks first still reads the reason, not a reset: the server reads away
    // what it sent before closing.
    for i in 0..20 {
        let mut eager = server.connect();
        send(&mut eager, &vec![b'z'; 1 + i * 300]);
        let got = read_to_eof(&mut eager);
        assert!(
            got == FULL,
            "refused client {i}, which sent {} bytes first: expected exactly {:?} then EOF, got \
             {:?}",
            1 + i * 300,
            String::from_utf8_lossy(FULL),
            String::from_utf8_lossy(&got)
        );
    }

    for (i, c) in admitted.iter_mut().enumerate() {
        roundtrip(c, format!("again {i}").as_bytes());
    }

    // The server learns of the close when it reads the FIN, so the slot frees a moment later.
    drop(admitted.remove(0));
    let mut refusals = 0;
    let mut fifth = wait_for(
        Duration::from_secs(5),
        "a client accepted after one of the three closed",
        || {
            // Refused clients get the error line, or a reset when "x" came after the server read
            // away what was sent; both count as refusals.
            let mut c = server.connect();
            let mut first = [0u8; 1];
            match c.write_all(b"x").and_then(|()| c.read_exact(&mut first)) {
                Ok(()) if first[0] == b'Y' => Some(c),
                _ => {
                    refusals += 1;
                    None
                }
            }
        },
    );
    // The one byte read was the answer's first; the rest of "You say that x" follows.
    let rest = read_exact_timeout(&mut fifth, PREFIX.len());
    assert_eq!(
        [&b"Y"[..], &rest].concat(),
        b"You say that x",
        "the fifth client's first answer"
    );
    roundtrip(&mut fifth, b"and more");
    for (i, c) in admitted.iter_mut().enumerate() {
        roundtrip(c, format!("still {i}").as_bytes());
    }

    drop(fifth);
    drop(admitted);
    let summary = server.shutdown();
    assert_eq!(
        summary.accepted, 4,
        "accepted: three, then one in the freed slot"
    );
    assert_eq!(summary.rejected_full, 21 + refusals, "rejected_full");
    assert_eq!(summary.peak_connections, 3, "peak_connections");
}

/// In HTTP mode the refusal is HTTP: `503` with `Retry-After: 1`, `Connection: close` and a
/// one-line body, never the echo framings' `ERR` line, which an HTTP client reports as a bad
/// status line. A client that sent its request first reads the same.
#[test]
fn an_http_client_past_the_limit_reads_503_with_retry_after() {
    let server = TestServer::start(&Config {
        max_conns: Some(1),
        ..http_config()
    });
    let mut admitted = server.connect();
    exchange(&mut admitted, &get("/hello"), &ok(b"You say that hello"));

    let body = "server full (max 1 connections)\n";
    let expected = format!(
        "HTTP/1.1 503 Service Unavailable\r\nServer: saythat/{}\r\nDate: {}\r\nRetry-After: 1\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        env!("CARGO_PKG_VERSION"),
        String::from_utf8_lossy(MASK),
        body.len()
    );
    for eager in [false, true] {
        let mut refused = server.connect();
        if eager {
            send(&mut refused, &get("/first"));
        }
        let got = read_to_eof(&mut refused);
        assert_eq!(
            show(&mask_dates(&got)),
            show(expected.as_bytes()),
            "the refusal (request sent first: {eager})"
        );
    }
    exchange(&mut admitted, &get("/again"), &ok(b"You say that again"));
    drop(admitted);
    let summary = server.shutdown();
    assert_eq!(summary.rejected_full, 2, "rejected_full");
}
