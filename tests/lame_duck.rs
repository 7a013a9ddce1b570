//! Lame duck (`--drain-delay`): from the first signal (or `ServerHandle::shutdown()`) health
//! checks say draining while the echo listeners still accept and serve new clients for the
//! delay; then the listeners close and the drain goes on as without it. A second signal still
//! ends everything at once.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use saythat::Config;

/// Bounds an exit that must not wait for the shutdown timeout or the lame duck (60 s here).
const PROMPTLY: Duration = Duration::from_secs(5);

/// The status line of `GET /healthz` on the admin endpoint.
#[track_caller]
fn healthz(metrics: SocketAddr) -> String {
    let mut stream = connect(metrics);
    send(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nHost: saythat\r\nConnection: close\r\n\r\n",
    );
    let raw = String::from_utf8(read_to_eof(&mut stream)).expect("UTF-8");
    raw.lines().next().unwrap_or_default().to_string()
}

/// SIGTERM with `--drain-delay 2`: /healthz says 503 at once, yet the echo listener accepts and
/// serves a new client, and the old one too, until the delay has passed; then it is closed, the
/// drain closes the idle clients, and the process exits 0.
#[test]
fn healthz_flips_at_the_signal_while_the_listener_still_serves_new_clients() {
    let mut server = ServerProcess::serve(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--drain-delay",
        "2",
        "--shutdown-timeout",
        "60",
    ]);
    let metrics = server.metrics_addr();
    let mut old = server.connect();
    roundtrip(&mut old, b"before");
    assert_eq!(healthz(metrics), "HTTP/1.1 200 OK");

    let signalled = Instant::now();
    server.signal("TERM");
    server.wait_for_line("lame duck for 2s");
    assert_eq!(healthz(metrics), "HTTP/1.1 503 Service Unavailable");
    let mut new = server.connect();
    roundtrip(&mut new, b"new in the lame duck");
    roundtrip(&mut old, b"old in the lame duck");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the checks above took the whole lame duck; the test proves nothing on a machine this slow"
    );

    server.wait_for_line("lame duck over");
    let lasted = signalled.elapsed();
    assert!(
        lasted >= Duration::from_secs(2),
        "the listener closed {lasted:?} after SIGTERM, before the 2 s --drain-delay"
    );
    expect_refused(server.addr());
    assert_eq!(healthz(metrics), "HTTP/1.1 503 Service Unavailable");
    // Both idle between messages: the drain closes them cleanly, and the process exits.
    expect_eof(&mut old);
    expect_eof(&mut new);
    drop((old, new));
    server.expect_exit(0, TIMEOUT);
}

/// A second signal during the lame duck closes every connection and exits at once, long before
/// the 60 s delay.
#[test]
fn a_second_signal_ends_the_lame_duck_at_once() {
    let mut server = ServerProcess::serve(&["--drain-delay", "60", "--shutdown-timeout", "60"]);
    let mut client = server.connect();
    roundtrip(&mut client, b"staying");
    server.signal("TERM");
    server.wait_for_line("lame duck for 60s");
    roundtrip(&mut client, b"still served");
    server.signal("INT");
    server.expect_exit(0, PROMPTLY);
    assert_eq!(server.count_lines("closing every connection now"), 1);
    expect_eof(&mut client);
}

/// `ServerHandle::shutdown()` starts the same lame duck, over every worker: new connections are
/// accepted and served for the delay, then refused by every worker's listener (with
/// `SO_REUSEPORT` a listener left open would take some of them), and `run()` returns once the
/// clients have gone.
#[test]
fn the_handle_starts_a_lame_duck_over_every_worker() {
    let server = TestServer::start(&Config {
        drain_delay: 1,
        shutdown_timeout: 60,
        workers: 3,
        ..Config::loopback()
    });
    let mut old = server.connect();
    roundtrip(&mut old, b"before");
    let asked = Instant::now();
    server.handle.shutdown();
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut client = server.connect();
        roundtrip(&mut client, format!("new {i}").as_bytes());
        clients.push(client);
    }
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the clients above took the whole lame duck; the test proves nothing on a machine this slow"
    );
    // A probe that connects is accepted (and counted) by the server; it closes at once.
    let mut probes = 0;
    wait_for(TIMEOUT, "every listener closed after the lame duck", || {
        match TcpStream::connect_timeout(&server.addr(), TIMEOUT) {
            Ok(_) => {
                probes += 1;
                None
            }
            Err(_) => Some(()),
        }
    });
    let lasted = asked.elapsed();
    assert!(
        lasted >= Duration::from_secs(1),
        "a listener closed {lasted:?} after shutdown(), before the 1 s delay"
    );
    for _ in 0..20 {
        expect_refused(server.addr());
    }
    drop((old, clients));
    let summary = server.wait(DRAINED);
    // A probe still in a listener's backlog when it closed was never accepted.
    assert!(
        (7..=7 + probes).contains(&summary.accepted),
        "accepted {} connections: 7 clients and at most {probes} probes",
        summary.accepted
    );
    assert_eq!(summary.cut_at_shutdown, 0, "connections cut at shutdown");
}
