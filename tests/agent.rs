//! `--agent-listen`: HAProxy's agent check. Each connection gets one line at accept, without
//! sending anything (HAProxy sends nothing unless `agent-send` is set): `up ready` while serving,
//! `drain` from the first signal on, through the lame duck and the drain, until the process
//! exits; then a clean close. It runs on the first loop's thread, with a small connection limit.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use saythat::Config;

/// The agent's answer on a new connection that sends nothing, read to a clean end of stream.
#[track_caller]
fn agent_says(agent: SocketAddr) -> String {
    let mut stream = connect(agent);
    String::from_utf8(read_to_eof(&mut stream)).expect("UTF-8")
}

/// The agent's word follows the server's life: `up ready` before the signal, `drain` at once
/// from it (the lame duck, while the echo listener still serves new clients) and through the
/// drain (the echo listener closed, a client still held) until the process exits. One thread
/// serves the echo, the metrics and the agent.
#[test]
fn the_agent_says_up_then_drain_from_the_first_signal_until_exit() {
    let mut server = ServerProcess::serve(&[
        "--framing",
        "line",
        "--metrics-listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--drain-delay",
        "2",
        "--shutdown-timeout",
        "60",
    ]);
    let agent = server.agent_addr();
    assert_eq!(server.threads(), 1, "threads of saythat serve");
    assert_eq!(agent_says(agent), "up ready\n");
    // A line the agent sends (`agent-send`) is read and dropped; the answer is the same and the
    // close is clean, not a reset.
    let mut sending = connect(agent);
    send(&mut sending, b"backend/server1\n");
    expect_bytes_then_eof(&mut sending, b"up ready\n");

    // Held in the middle of a line, so nothing ends it before the test does.
    let mut held = server.connect();
    send(&mut held, b"a line not fin");

    server.signal("TERM");
    server.wait_for_line("lame duck for 2s");
    assert_eq!(agent_says(agent), "drain\n");
    let mut newcomer = server.connect();
    send_expect(&mut newcomer, b"served\n", b"You say that served\n");
    drop(newcomer);

    server.wait_for_line("lame duck over");
    expect_refused(server.addr());
    for _ in 0..3 {
        assert_eq!(agent_says(agent), "drain\n");
    }
    send_expect(&mut held, b"ished\n", b"You say that a line not finished\n");
    drop(held);
    server.expect_exit(0, TIMEOUT);
    expect_refused(agent);
}

/// Without a lame duck the agent says `drain` from the signal too, while the drain lasts.
#[test]
fn the_agent_says_drain_during_a_drain_without_a_lame_duck() {
    let server = TestServer::start(&Config {
        agent_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        framing: saythat::FramingKind::Line,
        shutdown_timeout: 60,
        ..Config::loopback()
    });
    let agent = server.agent[0];
    assert_eq!(agent_says(agent), "up ready\n");
    let mut held = server.connect();
    send(&mut held, b"half");
    server.handle.shutdown();
    wait_for(TIMEOUT, "the echo listener closed", || {
        try_connect(server.addr()).is_err().then_some(())
    });
    assert_eq!(agent_says(agent), "drain\n");
    send_expect(&mut held, b"\n", b"You say that half\n");
    drop(held);
    server.wait(DRAINED);
}

/// More silent agent connections than its `MAX_AGENT_CONNS` slots: each new one still reads
/// `up ready` and a clean end of stream (the oldest idle one makes room, and a refusal is the
/// agent's word too), and the echo is not disturbed.
#[test]
fn more_silent_agent_connections_than_slots_still_get_up_ready() {
    let server = TestServer::start(&Config {
        agent_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..Config::loopback()
    });
    let agent = server.agent[0];
    // Never read and never closed: each holds a slot on the server until it is closed there.
    let silent: Vec<_> = (0..2 * saythat::config::MAX_AGENT_CONNS)
        .map(|_| connect(agent))
        .collect();
    for i in 0..4 {
        let mut stream = connect(agent);
        let got = read_to_eof(&mut stream);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "up ready\n",
            "agent connection {i}"
        );
    }
    let mut client = server.connect();
    roundtrip(&mut client, b"echo still served");
    drop(silent);
    wait_for(
        Duration::from_secs(5),
        "the agent after the silent ones left",
        || {
            let mut stream = connect(agent);
            (read_to_eof(&mut stream) == b"up ready\n").then_some(())
        },
    );
}
