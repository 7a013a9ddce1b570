//! Running in production, through the binary: the hand-over of a port with `--reuse-port`.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Bounds an exit that must not wait for a shutdown timeout (60 s in these tests).
const PROMPTLY: Duration = Duration::from_secs(10);

/// `saythat serve --listen ADDR ARGS...`, started and waited for (its `listening on` line).
fn serve_on(addr: &str, args: &[&str]) -> ServerProcess {
    let args = [&["serve", "--listen", addr], args].concat();
    ServerProcess::start(saythat(&args))
}

/// Sends SIGTERM, waits for the exit summary and gives the connections it says were served.
#[track_caller]
fn stop_and_count_served(server: &mut ServerProcess) -> u64 {
    server.signal("TERM");
    let line = server.wait_for_line("shut down: served ");
    let count = line
        .split("shut down: served ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok());
    match count {
        Some(count) => {
            server.expect_exit(0, PROMPTLY);
            count
        }
        None => panic!("no connection count in {line:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// --reuse-port

/// Two processes with `--reuse-port` bind the same port, and the kernel spreads the clients over
/// both; one without the flag cannot join them (nor could they join it).
#[test]
fn two_processes_with_reuse_port_share_a_port_and_both_accept() {
    let mut a = ServerProcess::serve(&["--reuse-port"]);
    let addr = a.addr().to_string();
    // The environment variable does what the flag does, as a unit file would set it.
    let mut cmd = saythat(&["serve", "--listen", &addr]);
    cmd.env("SAYTHAT_REUSE_PORT", "1");
    let mut b = ServerProcess::start(cmd);
    assert_eq!(b.addr(), a.addr());

    let refused = run_to_end(saythat(&["serve", "--listen", &addr]), None, TIMEOUT);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a server without --reuse-port must not join the port; stderr:\n{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Kept open together, so each has its own source port for the kernel's hash.
    const CLIENTS: u64 = 64;
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| a.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        roundtrip(client, format!("client {i}").as_bytes());
    }
    drop(clients);
    let (served_a, served_b) = (stop_and_count_served(&mut a), stop_and_count_served(&mut b));
    assert_eq!(served_a + served_b, CLIENTS, "a: {served_a}, b: {served_b}");
    // Both at 0 or 64 by chance is 2 in 2^64.
    assert!(
        served_a > 0 && served_b > 0,
        "both must accept: a served {served_a}, b served {served_b}"
    );
}

/// The hand-over: B starts on A's port, A is told to stop; A's open client is still served
/// while A drains, and every new client is answered (by B) without a refusal.
#[test]
fn a_new_process_takes_over_the_port_while_the_old_one_drains() {
    let mut a = ServerProcess::serve(&["--reuse-port", "--shutdown-timeout", "60"]);
    let addr = a.addr().to_string();
    let mut old_client = a.connect();
    roundtrip(&mut old_client, b"before the hand-over");

    let mut b = serve_on(&addr, &["--reuse-port"]);
    a.signal("TERM");
    a.wait_for_line("draining 1 connection(s)");
    // A's listener is closed now: only B's is left on the port.
    for i in 0..20 {
        let mut client = connect(a.addr());
        roundtrip(&mut client, format!("new client {i}").as_bytes());
    }
    roundtrip(&mut old_client, b"during the hand-over");
    drop(old_client);
    a.expect_exit(0, PROMPTLY);
    assert_eq!(
        a.count_lines("shut down: served 1 connection(s)"),
        1,
        "A must have served only the old client; stderr:\n{}",
        a.stderr()
    );
    assert_eq!(stop_and_count_served(&mut b), 20);
}
