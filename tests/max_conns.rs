//! `--max-conns`: one connection past the limit is told why and closed, the others are served
//! as before, and a freed slot is given to the next client.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use saythat::Config;
use support::{connect, read_to_eof, round_trip, wait_for, TestServer};

const FULL: &[u8] = b"ERR server full (max 3 connections)\n";

#[test]
fn the_connection_past_the_limit_is_told_and_closed_and_a_freed_slot_is_reused() {
    let server = TestServer::start(Config {
        max_conns: Some(3),
        ..Config::loopback()
    });
    assert_eq!(server.max_conns, 3, "Server::max_conns() with max_conns 3");

    let mut admitted: Vec<_> = (0..3)
        .map(|i| {
            let mut c = connect(server.addr);
            round_trip(
                &mut c,
                format!("first {i}").as_bytes(),
                "an admitted client",
            );
            c
        })
        .collect();

    let mut fourth = connect(server.addr);
    let got = read_to_eof(&mut fourth, "the fourth client");
    assert!(
        got == FULL,
        "the fourth client: expected exactly {:?} then EOF, got {:?}",
        String::from_utf8_lossy(FULL),
        String::from_utf8_lossy(&got)
    );

    // A client that speaks first still reads the reason, not a reset: the server reads away
    // what it sent before closing.
    for i in 0..20 {
        let mut eager = connect(server.addr);
        eager.write_all(&vec![b'z'; 1 + i * 300]).unwrap();
        let got = read_to_eof(&mut eager, "a refused client that sent data first");
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
        round_trip(
            c,
            format!("again {i}").as_bytes(),
            "an admitted client after a refusal",
        );
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
            let mut c = connect(server.addr);
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
    let rest = support::read_n(&mut fifth, support::PREFIX.len(), "the fifth client");
    assert_eq!(
        [&b"Y"[..], &rest].concat(),
        b"You say that x",
        "the fifth client's first answer"
    );
    round_trip(&mut fifth, b"and more", "the fifth client");
    for (i, c) in admitted.iter_mut().enumerate() {
        round_trip(
            c,
            format!("still {i}").as_bytes(),
            "an admitted client at the end",
        );
    }

    drop(fifth);
    drop(admitted);
    let summary = server.stop();
    assert_eq!(
        summary.accepted, 4,
        "accepted: three, then one in the freed slot"
    );
    assert_eq!(summary.rejected_full, 21 + refusals, "rejected_full");
    assert_eq!(summary.peak_connections, 3, "peak_connections");
}
