//! The binary and signals: SIGTERM closes the listeners and drains the open connections until
//! they close or `--shutdown-timeout` passes, then exits 0; a second signal ends it at once.
//! SIGINT does the same.

mod common;

use std::time::{Duration, Instant};

use common::{expect_eof, expect_refused, roundtrip, ServerProcess, TIMEOUT};

/// Bounds an exit that must not wait for the shutdown timeout (60 s in these tests).
const PROMPTLY: Duration = Duration::from_secs(10);

fn serve(shutdown_timeout: &str) -> ServerProcess {
    ServerProcess::serve(&["--shutdown-timeout", shutdown_timeout])
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
    let mut client = server.connect();
    roundtrip(&mut client, b"before");

    terminate_and_wait_for_drain(&mut server);
    expect_refused(server.addr());
    roundtrip(&mut client, b"during");

    drop(client);
    server.expect_exit(0, PROMPTLY);
}

#[test]
fn the_shutdown_timeout_cuts_a_client_that_stays_open_then_exits_0() {
    let mut server = serve("1");
    let mut client = server.connect();
    roundtrip(&mut client, b"staying");

    let signalled = Instant::now();
    terminate_and_wait_for_drain(&mut server);
    server.expect_exit(0, TIMEOUT);
    let took = signalled.elapsed();
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
    roundtrip(&mut client, b"staying");

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
