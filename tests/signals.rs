//! The binary and signals: SIGTERM closes the listeners and drains the open connections until
//! they close or `--shutdown-timeout` passes, then exits 0; a second signal ends it at once.
//! SIGINT does the same.

mod common;

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{answer, expect_eof, kill, roundtrip, saythat, BinServer, TIMEOUT};

/// Bounds an exit that must not wait for the shutdown timeout (60 s in these tests).
const PROMPTLY: Duration = Duration::from_secs(10);

fn serve(shutdown_timeout: &str) -> BinServer {
    BinServer::start(saythat(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-timeout",
        shutdown_timeout,
    ]))
}

/// Sends SIGTERM and waits until the server says it drains, which it logs after closing its
/// listeners.
fn terminate_and_wait_for_drain(server: &mut BinServer) {
    kill(server.pid(), "TERM");
    server.wait_for_line("draining 1 connection(s)");
}

#[test]
fn sigterm_refuses_new_connections_serves_open_ones_then_exits_0() {
    let mut server = serve("60");
    let mut client = server.connect();
    roundtrip(&mut client, b"before", &answer(b"before"));

    terminate_and_wait_for_drain(&mut server);
    match TcpStream::connect_timeout(&server.addr, TIMEOUT) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("a new connection during the drain should be refused, got: {e}"),
        Ok(_) => panic!("a new connection during the drain was accepted"),
    }
    roundtrip(&mut client, b"during", &answer(b"during"));

    drop(client);
    let status = server.wait_exit(PROMPTLY);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn the_shutdown_timeout_cuts_a_client_that_stays_open_then_exits_0() {
    let mut server = serve("1");
    let mut client = server.connect();
    roundtrip(&mut client, b"staying", &answer(b"staying"));

    let signalled = Instant::now();
    terminate_and_wait_for_drain(&mut server);
    let status = server.wait_exit(TIMEOUT);
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        server.stderr()
    );
    assert!(
        took >= Duration::from_secs(1),
        "exited {took:?} after SIGTERM, before the 1 s shutdown timeout"
    );
    expect_eof(&mut client);
}

#[test]
fn a_second_sigterm_during_the_drain_exits_0_at_once() {
    let mut server = serve("60");
    let mut client = server.connect();
    roundtrip(&mut client, b"staying", &answer(b"staying"));

    terminate_and_wait_for_drain(&mut server);
    kill(server.pid(), "TERM");
    let status = server.wait_exit(PROMPTLY);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        server.stderr()
    );
    expect_eof(&mut client);
}

#[test]
fn sigint_with_no_connection_exits_0_at_once() {
    let mut server = serve("60");
    kill(server.pid(), "INT");
    let status = server.wait_exit(PROMPTLY);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        server.stderr()
    );
}
