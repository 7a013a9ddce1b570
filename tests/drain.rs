//! The drain closes what it can without cutting anything: a connection idle at a message
//! boundary (nothing of a message held, no answer waiting, nothing unread), quiet for
//! `--drain-quiet` (250 ms unless given), gets a clean end of stream after all its answers, long before
//! `--shutdown-timeout`; one in the middle of a message is closed only once the message is
//! answered; an HTTP request that arrives during the drain is answered `Connection: close`.
//! The shutdown timeout here is a minute, so a server that waited for it fails every test.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::AtomicU64;
use std::thread;
use std::time::{Duration, Instant};

use common::http::*;
use common::*;
use saythat::config::DEFAULT_DRAIN_QUIET_MS;
use saythat::{Config, FramingKind};

/// `--drain-quiet`'s default.
const DRAIN_QUIET: Duration = Duration::from_millis(DEFAULT_DRAIN_QUIET_MS);

/// Far below the one-minute shutdown timeout, far above `DRAIN_QUIET` and the lingering close.
const PROMPTLY: Duration = Duration::from_secs(5);

fn config(framing: FramingKind) -> Config {
    Config {
        framing,
        shutdown_timeout: 60,
        ..Config::loopback()
    }
}

/// Chunk echo: idle clients, one with its last answer still unread, all get every answer and
/// then a clean end of stream (`read_to_eof` fails on a reset), and `run()` returns well before
/// the shutdown timeout with nothing cut.
#[test]
fn idle_connections_get_their_answers_then_a_clean_end_of_stream() {
    let server = TestServer::start(&config(FramingKind::Chunk));
    let mut clients: Vec<TcpStream> = (0..5).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        roundtrip(client, format!("hello {i}").as_bytes());
    }
    // Its answer waits in the socket when the drain starts.
    let asked = Instant::now();
    send(&mut clients[0], b"last words");
    server.handle.shutdown();
    assert_eq!(read_to_eof(&mut clients[0]), answer(b"last words"));
    for client in &mut clients[1..] {
        expect_eof(client);
    }
    let took = asked.elapsed();
    assert!(
        took >= DRAIN_QUIET && took < PROMPTLY,
        "the idle clients were closed {took:?} after the shutdown"
    );
    drop(clients);
    let summary = server.wait(PROMPTLY);
    assert_eq!(summary.closed_at_drain, 5, "closed between messages");
    assert_eq!(summary.cut_at_shutdown, 0, "cut at shutdown");
}

/// `--drain-quiet` sets how long an idle connection stays during the drain: 3 s, twelve times
/// the default, holds an idle client that long, and a client that sends within it is answered.
#[test]
fn drain_quiet_sets_how_long_an_idle_connection_stays() {
    let quiet = Duration::from_secs(3);
    let server = TestServer::start(&Config {
        drain_quiet: quiet.as_millis() as u64,
        ..config(FramingKind::Chunk)
    });
    let mut idle = server.connect();
    let mut talking = server.connect();
    // The idle client's quiet runs from its last message, before the shutdown.
    let last_message = Instant::now();
    roundtrip(&mut idle, b"hello");
    roundtrip(&mut talking, b"hello");
    let asked = Instant::now();
    server.handle.shutdown();
    // Past the default's quiet time the client still talks: answered, not parted.
    thread::sleep(4 * DRAIN_QUIET);
    assert!(
        asked.elapsed() < quiet,
        "the machine took too long to test this"
    );
    roundtrip(&mut talking, b"still here");
    expect_eof(&mut idle);
    let took = last_message.elapsed();
    assert!(
        took >= quiet && took < quiet + PROMPTLY,
        "the idle client was closed {took:?} after its last message, with --drain-quiet {quiet:?}"
    );
    expect_eof(&mut talking);
    drop((idle, talking));
    let summary = server.wait(PROMPTLY);
    assert_eq!(summary.closed_at_drain, 2, "closed between messages");
}

/// Line echo: a connection holding half a line is not closed, however long it waits; once the
/// line completes it is answered, then closed. An idle one beside it is closed at once.
#[test]
fn a_partial_line_keeps_its_connection_until_it_is_answered() {
    let server = TestServer::start(&config(FramingKind::Line));
    let mut partial = server.connect();
    send_expect(&mut partial, b"one\nhalf a li", b"You say that one\n");
    let mut idle = server.connect();
    roundtrip(&mut idle, b"idle\n");
    server.handle.shutdown();
    expect_eof(&mut idle);
    expect_silence(&mut partial, 3 * DRAIN_QUIET);
    send(&mut partial, b"ne\n");
    assert_eq!(read_to_eof(&mut partial), b"You say that half a line\n");
    drop((idle, partial));
    let summary = server.wait(PROMPTLY);
    assert_eq!(summary.closed_at_drain, 2, "closed between messages");
    assert_eq!(summary.cut_at_shutdown, 0, "cut at shutdown");
}

/// A client that has answers waiting (it reads slower than it sends, output at the cap) is
/// closed only once every answer is written and read; every byte it sent is answered.
#[test]
fn a_connection_with_answers_waiting_is_closed_only_after_they_are_read() {
    const SENT: u64 = 1024 * 1024;
    let server = TestServer::start(&config(FramingKind::Chunk));
    let mut reader = server.connect();
    let mut writer = reader.try_clone().unwrap();
    let writing = thread::spawn(move || {
        let mut buf = [0u8; 1024];
        for offset in (0..SENT).step_by(buf.len()) {
            fill_pattern(7, offset, &mut buf);
            writer.write_all(&buf).expect("write");
        }
    });
    // Nothing read yet: the server has paused behind the unread answers.
    wait_for(TIMEOUT, "the server paused behind unread answers", || {
        let local = reader.local_addr().ok()?;
        let (_, unread) = tcp_queues(local, server.addr())?;
        (unread > 64 * 1024).then_some(())
    });
    server.handle.shutdown();
    let answered = read_answers_to_eof(&mut reader, 7, &AtomicU64::new(0))
        .unwrap_or_else(|e| panic!("the answers: {e}"));
    writing.join().expect("the writer");
    assert_eq!(answered, SENT, "payload bytes answered");
    let _ = reader.shutdown(Shutdown::Both);
    let summary = server.wait(PROMPTLY);
    assert_eq!(summary.closed_at_drain, 1, "closed between messages");
    assert_eq!(summary.cut_at_shutdown, 0, "cut at shutdown");
}

/// HTTP: a keep-alive connection between requests is closed cleanly by the drain; a request
/// that arrives during the drain is answered with `Connection: close`, then the connection
/// closes.
#[test]
fn an_http_request_during_the_drain_is_answered_connection_close() {
    let server = TestServer::start(&config(FramingKind::Http));
    let mut between = server.connect();
    exchange(&mut between, &get("/first"), &ok(b"You say that first"));
    let mut late = server.connect();
    exchange(&mut late, &get("/before"), &ok(b"You say that before"));
    // The next request's head, not complete yet: the drain must not close this one.
    let request = get("/during");
    let (head, end) = request.split_at(request.len() - 2);
    send(&mut late, head);
    server.handle.shutdown();
    // Its end of stream proves the drain has begun.
    expect_eof(&mut between);
    send(&mut late, end);
    expect_answer_then_eof(&mut late, &ok_conn(b"You say that during", Conn::Close));
    drop((between, late));
    let summary = server.wait(PROMPTLY);
    assert_eq!(summary.closed_at_drain, 2, "closed between requests");
    assert_eq!(summary.cut_at_shutdown, 0, "cut at shutdown");
}

/// The binary, with SIGTERM and metrics: the drain's closes are counted as `drain` (once their
/// lingering close ends, when the client closes too), and the process exits as soon as the last
/// connection, held by half a line until then, is answered and closed.
#[test]
fn the_binary_counts_drain_closes_and_exits_when_they_are_done() {
    let mut server = ServerProcess::serve(&[
        "--framing",
        "line",
        "--metrics-listen",
        "127.0.0.1:0",
        "--shutdown-timeout",
        "60",
    ]);
    let metrics = server.metrics_addr();
    let mut clients: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for client in &mut clients {
        roundtrip(client, b"hi\n");
    }
    let mut held = server.connect();
    send(&mut held, b"half");
    // Accepted, not still in the backlog, which the drain would lose with the listener.
    wait_for_open(metrics, 4);
    let signalled = Instant::now();
    server.signal("TERM");
    for mut client in clients {
        expect_eof(&mut client);
    }
    let drained = "saythat_connections_closed_total{reason=\"drain\"} 3";
    wait_for(TIMEOUT, "3 drain closes in a scrape", || {
        let mut scrape = connect(metrics);
        send(
            &mut scrape,
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        let text = String::from_utf8(read_to_eof(&mut scrape)).unwrap();
        text.lines().any(|line| line == drained).then_some(())
    });
    send(&mut held, b" a line\n");
    assert_eq!(read_to_eof(&mut held), b"You say that half a line\n");
    drop(held);
    server.expect_exit(0, PROMPTLY);
    assert!(signalled.elapsed() < PROMPTLY);
    assert_eq!(
        server.count_lines("4 closed between messages by the drain, 0 cut at shutdown"),
        1,
        "{}",
        server.stderr()
    );
}
