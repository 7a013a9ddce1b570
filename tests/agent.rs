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

/// At most `MAX_AGENT_CONNS` agent connections at once: one more is told the limit and closed,
/// and the echo is not disturbed.
#[test]
fn agent_connections_past_the_limit_are_refused() {
    let server = TestServer::start(&Config {
        agent_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..Config::loopback()
    });
    let agent = server.agent[0];
    // Answered, then held open by not closing: each lingers on the server for up to 2 s.
    let held: Vec<_> = (0..saythat::config::MAX_AGENT_CONNS)
        .map(|_| {
            let mut stream = connect(agent);
            expect_bytes(&mut stream, b"up ready\n");
            stream
        })
        .collect();
    let mut one_more = connect(agent);
    let refusal = format!(
        "ERR server full (max {} connections)\n",
        saythat::config::MAX_AGENT_CONNS
    );
    expect_bytes_then_eof(&mut one_more, refusal.as_bytes());
    let mut client = server.connect();
    roundtrip(&mut client, b"echo still served");
    drop(held);
    wait_for(
        Duration::from_secs(5),
        "a place for the agent again",
        || {
            let mut stream = connect(agent);
            (read_to_eof(&mut stream) == b"up ready\n").then_some(())
        },
    );
}
