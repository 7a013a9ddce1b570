//! `--workers N`: several event loops on one address through SO_REUSEPORT, stopped together.

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use saythat::Config;

#[test]
fn two_workers_answer_every_client_and_stop_together() {
    let config = Config {
        workers: 2,
        ..Config::loopback()
    };
    let server = TestServer::start(&config);
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let mut stream = server.connect();
            send(&mut stream, format!("client {i}").as_bytes());
            (i, stream)
        })
        .collect();
    for (i, mut stream) in clients {
        expect_bytes(&mut stream, &answer(format!("client {i}").as_bytes()));
    }
    let summary = server.abort();
    assert_eq!(
        summary.accepted, 200,
        "the workers' summaries must add up: {summary:?}"
    );
}

#[test]
fn the_connection_limit_is_over_all_workers() {
    let config = Config {
        workers: 2,
        max_conns: Some(4),
        ..Config::loopback()
    };
    let server = TestServer::start(&config);
    // The kernel spreads connections by hash, so one worker may see more than its half of the
    // limit: whoever is refused must be told the total, and at least the shares are served.
    let mut answered = 0;
    let mut streams = Vec::new();
    for i in 0..8 {
        let mut stream = server.connect();
        send(&mut stream, b"x");
        let expected = answer(b"x");
        let got = read_exact_timeout(&mut stream, expected.len().min(36));
        if got.starts_with(b"ERR") {
            let rest = read_to_eof(&mut stream);
            assert_eq!(
                [got, rest].concat(),
                b"ERR server full (max 4 connections)\n",
                "client {i}"
            );
        } else {
            assert_eq!(got, expected, "client {i}");
            answered += 1;
        }
        streams.push(stream);
    }
    assert!(
        (2..=4).contains(&answered),
        "{answered} of 8 clients served with a limit of 4"
    );
    server.abort();
}

#[test]
fn the_binary_runs_one_thread_per_worker_and_exits_0_on_sigterm() {
    let mut server = ServerProcess::serve(&["--workers", "3"]);
    let threads = fs::read_dir(format!("/proc/{}/task", server.pid()))
        .expect("read /proc/PID/task")
        .count();
    assert_eq!(threads, 3, "three workers should run on three threads");
    let mut stream = server.connect();
    roundtrip(&mut stream, b"hi");
    drop(stream);
    server.signal("TERM");
    server.expect_exit(0, Duration::from_secs(10));
}
