//! The binary and signals: SIGTERM closes the listeners and drains the open connections until
//! they close or `--shutdown-timeout` passes, then exits 0; a second signal ends it at once.
//! SIGINT does the same. The drain closes a connection idle between messages by itself, so the
//! clients that must stay open here hold half a line (line framing).

mod common;

use std::time::{Duration, Instant};

use common::{expect_eof, expect_refused, roundtrip, send, send_expect, ServerProcess, TIMEOUT};

/// Bounds an exit that must not wait for the shutdown timeout (60 s in these tests).
const PROMPTLY: Duration = Duration::from_secs(10);

fn serve(shutdown_timeout: &str) -> ServerProcess {
    ServerProcess::serve(&["--framing", "line", "--shutdown-timeout", shutdown_timeout])
}

/// A client answered once and now in the middle of its next line.
fn half_a_line(server: &ServerProcess) -> std::net::TcpStream {
    let mut client = server.connect();
    roundtrip(&mut client, b"before\n");
    send(&mut client, b"dur");
    client
}

/// Sends SIGTERM and waits until the server says it drains, which it logs after closing its
/// listeners.
fn terminate_and_wait_for_drain(server: &mut ServerProcess) {
    server.signal("TERM");
    server.wait_for_line("draining 1 connection(s)");
}

#[test]
fn sigterm_refuses_new_connections_serves_open_ones_then_exits_0() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    terminate_and_wait_for_drain(&mut server);
    expect_refused(server.addr());
    send_expect(&mut client, b"ing\n", b"You say that during\n");
    // Between messages now: the drain closes it with a clean end of stream, and the process
    // exits without waiting for the timeout.
    expect_eof(&mut client);
    drop(client);
    server.expect_exit(0, PROMPTLY);
}

#[test]
fn the_shutdown_timeout_cuts_a_client_that_stays_open_then_exits_0() {
    let mut server = serve("1");
    let mut client = half_a_line(&server);

    let signalled = Instant::now();
    terminate_and_wait_for_drain(&mut server);
    server.expect_exit(0, TIMEOUT);
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "exited {took:?} after SIGTERM, before the 1 s shutdown timeout"
    );
    expect_eof(&mut client);
    assert_eq!(
        server.count_lines("0 closed between messages by the drain, 1 cut at shutdown"),
        1,
        "{}",
        server.stderr()
    );
}

#[test]
fn a_second_sigterm_during_the_drain_exits_0_at_once() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    terminate_and_wait_for_drain(&mut server);
    server.signal("TERM");
    server.expect_exit(0, PROMPTLY);
    expect_eof(&mut client);
}

#[test]
fn sigint_with_no_connection_exits_0_at_once() {
    let mut server = serve("60");
    server.signal("INT");
    server.expect_exit(0, PROMPTLY);
}
