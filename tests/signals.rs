//! The binary and signals: SIGTERM closes the listeners and drains the open connections until
//! they close or `--shutdown-timeout` passes, then exits 0; a second signal ends it at once, but
//! the same signal again within `DUPLICATE_SIGNAL_WINDOW` (100 ms), as `timeout` sends it, is
//! ignored. SIGINT and SIGQUIT do the same. SIGHUP, SIGUSR1 and SIGUSR2 are logged and the server
//! serves on. The drain closes a connection idle between messages by itself, so the clients that
//! must stay open here hold half a line (line framing).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{
    expect_eof, expect_refused, roundtrip, saythat_under, send, send_expect, ServerProcess, TIMEOUT,
};

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
fn another_signal_during_the_drain_exits_0_at_once_however_soon() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    terminate_and_wait_for_drain(&mut server);
    // Not the same signal, so no duplicate: a person's Ctrl-C after a `kill`.
    server.signal("INT");
    server.expect_exit(0, PROMPTLY);
    expect_eof(&mut client);
}

#[test]
fn sigint_with_no_connection_exits_0_at_once() {
    let mut server = serve("60");
    server.signal("INT");
    server.expect_exit(0, PROMPTLY);
}

/// The summary the server logs as it exits, with `drained` connections closed between messages
/// by the drain and `cut` cut at shutdown.
fn summary(drained: usize, cut: usize) -> String {
    format!("{drained} closed between messages by the drain, {cut} cut at shutdown")
}

#[test]
fn the_same_sigterm_twice_1_ms_apart_is_one_request_and_drains() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    // Each kill(1) is its own process, so the second signal usually comes after the idle server
    // has taken the first (`received SIGTERM again ... ignored`): without the window it would be
    // a second signal. On a busy machine the two may still arrive as one, which drains too.
    server.signal("TERM");
    thread::sleep(Duration::from_millis(1));
    server.signal("TERM");
    server.wait_for_line("draining 1 connection(s)");
    send_expect(&mut client, b"ing\n", b"You say that during\n");
    expect_eof(&mut client);
    drop(client);
    server.expect_exit(0, PROMPTLY);
    assert_eq!(server.count_lines(&summary(1, 0)), 1, "{}", server.stderr());
}

#[test]
fn the_same_sigterm_again_300_ms_later_closes_everything() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    terminate_and_wait_for_drain(&mut server);
    thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    server.expect_exit(0, PROMPTLY);
    expect_eof(&mut client);
    assert_eq!(
        server.count_lines("received SIGTERM: closing every connection now"),
        1,
        "{}",
        server.stderr()
    );
    assert_eq!(server.count_lines(&summary(0, 1)), 1, "{}", server.stderr());
}

#[test]
fn under_timeout_its_double_sigterm_drains() {
    // `timeout` forks: the server is its child, and `timeout` signals it, then its own group.
    let cmd = saythat_under(
        &["timeout", "2"],
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--framing",
            "line",
            "--shutdown-timeout",
            "60",
        ],
    );
    let mut server = ServerProcess::start(cmd);
    let mut client = half_a_line(&server);

    server.wait_for_line("draining 1 connection(s)");
    send_expect(&mut client, b"ing\n", b"You say that during\n");
    expect_eof(&mut client);
    // `timeout` exits 124 when it had to stop its command.
    server.expect_exit(124, PROMPTLY);
    assert_eq!(
        server.count_lines("closing every connection now"),
        0,
        "{}",
        server.stderr()
    );
    assert_eq!(server.count_lines(&summary(1, 0)), 1, "{}", server.stderr());
}

#[test]
fn hup_usr1_and_usr2_are_logged_and_the_server_serves_on() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    for (signal, says) in [
        ("HUP", "received SIGHUP: nothing to reload"),
        (
            "USR1",
            "received SIGUSR1: 1 connection(s) open, running; serving on",
        ),
        ("USR2", "received SIGUSR2: ignored"),
    ] {
        server.signal(signal);
        server.wait_for_line(says);
        server.assert_alive(&format!("after SIG{signal}"));
        // The connection that was open is served on, and a new one is taken.
        let mut other = server.connect();
        roundtrip(&mut other, b"still there\n");
    }
    send_expect(&mut client, b"ing\n", b"You say that during\n");
    // None of them counted as a first signal: the next SIGTERM is one, and drains.
    send(&mut client, b"dur");
    terminate_and_wait_for_drain(&mut server);
    send_expect(&mut client, b"ing\n", b"You say that during\n");
    expect_eof(&mut client);
    server.expect_exit(0, PROMPTLY);
}

#[test]
fn sigquit_drains_like_sigterm_with_its_summary() {
    let mut server = serve("60");
    let mut client = half_a_line(&server);

    server.signal("QUIT");
    server.wait_for_line("received SIGQUIT: draining connections");
    server.wait_for_line("draining 1 connection(s)");
    expect_refused(server.addr());
    send_expect(&mut client, b"ing\n", b"You say that during\n");
    expect_eof(&mut client);
    drop(client);
    server.expect_exit(0, PROMPTLY);
    assert_eq!(server.count_lines(&summary(1, 0)), 1, "{}", server.stderr());
}
