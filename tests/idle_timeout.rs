//! `--idle-timeout`: a connection that sends and receives nothing for that long is closed and
//! counted; one that keeps talking is never closed; 0 keeps idle connections forever.

mod support;

use std::io::{self, Read};
use std::thread;
use std::time::{Duration, Instant};

use saythat::Config;
use support::{connect, round_trip, TestServer};

#[test]
fn an_idle_connection_is_closed_and_a_talking_one_is_kept() {
    let server = TestServer::start(Config {
        idle_timeout: 1,
        ..Config::loopback()
    });

    let opened = Instant::now();
    let mut idle = connect(server.addr);
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

    let mut talker = connect(server.addr);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        round_trip(
            &mut talker,
            format!("still here {i}").as_bytes(),
            &format!("the talking connection at {:?}", started.elapsed()),
        );
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
    let summary = server.stop();
    assert_eq!(summary.closed_idle, 1, "closed_idle");
    assert_eq!(summary.accepted, 2, "accepted");
}

#[test]
fn idle_timeout_zero_keeps_idle_connections() {
    let server = TestServer::start(Config {
        idle_timeout: 0,
        ..Config::loopback()
    });
    let mut idle = connect(server.addr);
    round_trip(&mut idle, b"hello", "before idling");
    // Nothing may arrive, EOF included, while the connection idles well past 1 s.
    idle.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut buf = [0u8; 64];
    match idle.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        Ok(0) => panic!("an idle connection was closed although idle_timeout is 0"),
        Ok(n) => panic!(
            "an idle connection got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("an idle connection with idle_timeout 0: {e}"),
    }
    idle.set_read_timeout(Some(support::IO_TIMEOUT)).unwrap();
    round_trip(&mut idle, b"after idling", "after 2.5 s idle");
    drop(idle);
    let summary = server.stop();
    assert_eq!(summary.closed_idle, 0, "closed_idle with idle_timeout 0");
}
