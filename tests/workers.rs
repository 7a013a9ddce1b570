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

/// One count of open connections over all workers: however the kernel spreads clients, exactly
/// `--max-conns` are served at once, and whoever is refused is told the total.
#[test]
fn the_connection_limit_is_over_all_workers() {
    for (workers, limit) in [(2, 4), (4, 1), (3, 5)] {
        let server = TestServer::start(&Config {
            workers,
            max_conns: Some(limit),
            ..Config::loopback()
        });
        let mut served = Vec::new();
        let mut refused = 0;
        for i in 0..limit + 6 {
            let mut stream = server.connect();
            let message = format!("client {i}");
            send(&mut stream, message.as_bytes());
            let expected = answer(message.as_bytes());
            let got = read_exact_timeout(&mut stream, 3);
            if got == b"ERR" {
                let rest = read_to_eof(&mut stream);
                assert_eq!(
                    [got, rest].concat(),
                    format!("ERR server full (max {limit} connections)\n").into_bytes(),
                    "client {i}"
                );
                refused += 1;
            } else {
                let rest = read_exact_timeout(&mut stream, expected.len() - 3);
                assert_eq!([got, rest].concat(), expected, "client {i}");
                served.push(stream);
            }
        }
        assert_eq!(
            (served.len(), refused),
            (limit as usize, 6),
            "{workers} workers, --max-conns {limit}"
        );
        // A closed connection gives its place back, whichever worker had it.
        drop(served.pop());
        wait_for(TIMEOUT, "a freed place", || {
            let mut stream = server.connect();
            send(&mut stream, b"again");
            let got = read_exact_timeout(&mut stream, 3);
            (got != b"ERR").then_some(stream)
        });
        server.abort();
    }
}

/// Threads by name (as /proc shows them, cut at 15 bytes).
fn thread_names(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc/PID/task")
        .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn the_binary_runs_one_thread_per_worker_and_exits_0_on_sigterm() {
    let mut server = ServerProcess::serve(&["--workers", "3"]);
    // A thread names itself once it runs, so its name may show a moment after the log line.
    let expected = ["saythat", "saythat-loop-1", "saythat-loop-2"];
    wait_for(TIMEOUT, "three threads named as expected", || {
        let mut names = thread_names(server.pid());
        names.sort();
        (names == expected).then_some(())
    });
    let mut stream = server.connect();
    roundtrip(&mut stream, b"hi");
    drop(stream);
    server.signal("TERM");
    server.expect_exit(0, Duration::from_secs(10));
}

/// The second signal ends a draining server at once, whichever worker holds the clients: the
/// signals are watched until every worker has ended, not only while the first one runs. With
/// one client and four workers, the client is most often on a worker other than the first;
/// three rounds make a server that only listened on the first worker fail almost surely.
#[test]
fn a_second_signal_ends_the_drain_whichever_worker_holds_the_client() {
    for _ in 0..3 {
        let mut server = ServerProcess::serve(&[
            "--workers",
            "4",
            "--shutdown-timeout",
            "60",
            "--framing",
            "line",
        ]);
        let mut stream = server.connect();
        roundtrip(&mut stream, b"a line\n");
        // In the middle of a line from now on, which the drain does not cut.
        send(&mut stream, b"half of another");
        server.signal("TERM");
        server.wait_for_line("draining");
        std::thread::sleep(Duration::from_millis(200));
        server.signal("TERM");
        server.expect_exit(0, Duration::from_secs(5));
        assert_eq!(server.count_lines("closing every connection now"), 1);
        expect_eof(&mut stream);
    }
}

/// "server full" is logged at most once a second for the whole process, not once per worker.
#[test]
fn the_full_warning_is_rate_limited_over_all_workers() {
    let server = ServerProcess::serve(&["--workers", "4", "--max-conns", "1"]);
    let started = std::time::Instant::now();
    let mut held = server.connect();
    roundtrip(&mut held, b"the one");
    for _ in 0..40 {
        let mut stream = server.connect();
        assert_eq!(
            read_to_eof(&mut stream),
            b"ERR server full (max 1 connections)\n"
        );
    }
    let seconds = started.elapsed().as_secs() as usize;
    let warnings = server.count_lines("server full");
    assert!(
        (1..=1 + seconds).contains(&warnings),
        "{warnings} warnings in {seconds} s; stderr:\n{}",
        server.stderr()
    );
}
