//! Scale: the real binary holds 19,000 connections at once, answers each its own message, and
//! spends little memory on each. The server must be another process: this one cannot hold both
//! ends of 19,000 connections within a 20,000-descriptor limit.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{answer, expect_bytes, report, roundtrip, send, try_connect, ServerProcess};

const WANTED: u64 = 19_000;
/// Descriptors this process keeps for itself beyond the connections.
const SPARE_FDS: u64 = 64;
/// Connections opened, and then written and read, per batch, so the server's accept backlog
/// never overflows.
const BATCH: usize = 500;
/// A guard, not a benchmark: the figure itself is reported by a script.
const MAX_RSS_PER_CONNECTION: u64 = 2048;

fn message(round: u32, i: usize) -> Vec<u8> {
    format!("round {round} conn {i}").into_bytes()
}

/// Writes each connection its message for `round`, then reads and checks every answer.
fn exchange(streams: &mut [TcpStream], offset: usize, round: u32) {
    for (i, c) in streams.iter_mut().enumerate() {
        send(c, &message(round, offset + i));
    }
    for (i, c) in streams.iter_mut().enumerate() {
        expect_bytes(c, &answer(&message(round, offset + i)));
    }
}

#[test]
fn nineteen_thousand_connections_each_answered_in_little_memory() {
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    let count = WANTED.min(limit.saturating_sub(SPARE_FDS)) as usize;
    if (count as u64) < WANTED {
        eprintln!(
            "scale: the descriptor limit is {limit}, so {count} connections instead of {WANTED}"
        );
    }

    // The child inherits the raised limit; the server raises its own to the hard limit too, and
    // its default connection limit (hard limit less 64) is above `count`.
    let mut server = ServerProcess::serve(&[]);
    let mut warm = server.connect();
    roundtrip(&mut warm, b"warm up");
    let baseline = server.rss_bytes();

    let started = Instant::now();
    let mut streams: Vec<TcpStream> = Vec::with_capacity(count);
    while streams.len() < count {
        let offset = streams.len();
        let n = BATCH.min(count - offset);
        for i in 0..n {
            let c = try_connect(server.addr()).unwrap_or_else(|e| {
                panic!(
                    "connection {} of {count}: {e}; server stderr:\n{}",
                    offset + i,
                    server.stderr()
                )
            });
            streams.push(c);
        }
        exchange(&mut streams[offset..], offset, 0);
    }
    let opened_in = started.elapsed();
    let rss = server.rss_bytes();
    server.assert_alive(&format!("holding {count} connections"));

    // Every connection is still served, all open at once.
    for offset in (0..count).step_by(BATCH) {
        let end = (offset + BATCH).min(count);
        exchange(&mut streams[offset..end], offset, 1);
    }
    roundtrip(&mut warm, b"still here");

    let per_connection = rss.saturating_sub(baseline) / count as u64;
    report("scale.connections", count);
    report("scale.rss_baseline_bytes", baseline);
    report("scale.rss_bytes", rss);
    report("scale.rss_per_connection_bytes", per_connection);
    report(
        "scale.open_and_answer_secs",
        format!("{:.2}", opened_in.as_secs_f64()),
    );
    report(
        "scale.total_secs",
        format!("{:.2}", started.elapsed().as_secs_f64()),
    );
    assert!(
        per_connection < MAX_RSS_PER_CONNECTION,
        "the server's RSS grew from {baseline} to {rss} bytes for {count} connections: \
         {per_connection} bytes each (at most {MAX_RSS_PER_CONNECTION})"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{count} connections took {:?}",
        started.elapsed()
    );
}
