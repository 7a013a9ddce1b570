//! `--idle-timeout`: a connection that sends and receives nothing for that long is closed and
//! counted; one that keeps talking is never closed; 0 keeps idle connections forever.

mod common;

use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use common::{expect_silence, roundtrip, TestServer};
use saythat::Config;

#[test]
fn an_idle_connection_is_closed_and_a_talking_one_is_kept() {
    let server = TestServer::start(&Config {
        idle_timeout: 1,
        ..Config::loopback()
    });

    let opened = Instant::now();
    let mut idle = server.connect();
    let idle_thread = thread::spawn(move || {
        let mut buf = [0u8; 64];
        match idle.read(&mut buf) {
            Ok(0) => opened.elapsed(),
            Ok(n) => panic!(
                "the idle connection got {:?} instead of EOF",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!(
                "the idle connection: {e} after {:?} instead of EOF (idle timeout 1 s)",
                opened.elapsed()
            ),
        }
    });

    let mut talker = server.connect();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        roundtrip(&mut talker, format!("still here {i}").as_bytes());
        i += 1;
        thread::sleep(Duration::from_millis(200));
    }

    let closed_after = idle_thread.join().expect("the idle connection's reader");
    assert!(
        closed_after >= Duration::from_millis(900),
        "the idle connection was closed after {closed_after:?}, before its 1 s idle timeout"
    );
    assert!(
        closed_after < Duration::from_secs(3),
        "the idle connection was closed only after {closed_after:?} (idle timeout 1 s)"
    );

    drop(talker);
    let summary = server.shutdown();
    assert_eq!(summary.closed_idle, 1, "closed_idle");
    assert_eq!(summary.accepted, 2, "accepted");
}

#[test]
fn idle_timeout_zero_keeps_idle_connections() {
    let server = TestServer::start(&Config {
        idle_timeout: 0,
        ..Config::loopback()
    });
    let mut idle = server.connect();
    roundtrip(&mut idle, b"hello");
    // Nothing may arrive, EOF included, while the connection idles well past 1 s.
    expect_silence(&mut idle, Duration::from_millis(2500));
    roundtrip(&mut idle, b"after idling");
    drop(idle);
    let summary = server.shutdown();
    assert_eq!(summary.closed_idle, 0, "closed_idle with idle_timeout 0");
}

/// A protocol deadline (an HTTP `delay`) used to consume the connection's timer: with no
/// deadline after it, the idle timeout never came. It comes, from the delayed answer.
#[test]
fn a_connection_is_closed_idle_after_a_delayed_answer() {
    let server = TestServer::start(&Config {
        idle_timeout: 1,
        framing: saythat::config::FramingKind::Http,
        ..Config::loopback()
    });
    let mut stream = server.connect();
    stream.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    let request = b"GET /?delay=200ms HTTP/1.1\r\nHost: a\r\n\r\n";
    std::io::Write::write_all(&mut stream, request).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // The answer, then the end of the stream at the idle timeout.
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) => panic!(
            "no end of stream after {:?} ({e}); read {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&answer)
        ),
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1100),
        "closed after {closed_after:?}: the idle timeout runs from the delayed answer"
    );
    assert_eq!(server.shutdown().closed_idle, 1, "closed_idle");
}
