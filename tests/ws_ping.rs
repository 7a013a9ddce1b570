//! WebSocket keep-alive (`--ws-ping`) and the WebSocket metrics (issue 18), against the binary
//! over raw sockets: the ping comes after the silence asked for, any answer keeps the connection,
//! silence closes it with 1001 at the idle timeout counted `ws_ping_timeout`, the flag's bounds
//! are usage errors, and `/metrics` counts a known exchange exactly.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::ws::{cf, frame, upgrade};
use common::{read_to_eof, run_to_end, saythat, wait_for, ServerProcess, TIMEOUT};

/// The ping saythat sends: FIN + ping, 7 bytes of payload.
const PING: (u8, &[u8]) = (0x89, b"saythat");

/// `--ws-ping 1 --idle-timeout 2`, and metrics.
fn serve() -> ServerProcess {
    ServerProcess::serve(&[
        "--framing",
        "http",
        "--ws-ping",
        "1",
        "--idle-timeout",
        "2",
        "--metrics-listen",
        "127.0.0.1:0",
    ])
}

/// Connects and upgrades; checks the 101.
fn upgraded(addr: SocketAddr) -> TcpStream {
    upgrade(TcpStream::connect(addr).expect("connecting"), &[])
}

/// Reads the next frame, which must be saythat's ping; returns how long it took.
#[track_caller]
fn expect_ping(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let (first, payload) = frame(stream);
    assert_eq!((first, payload.as_slice()), PING);
    start.elapsed()
}

/// `/metrics`, as `series → value`.
fn scrape(addr: SocketAddr) -> HashMap<String, u64> {
    let mut stream = TcpStream::connect(addr).expect("connecting to the metrics");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_to_eof(&mut stream)).expect("UTF-8 metrics");
    let body = text.split("\r\n\r\n").nth(1).expect("a body");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[track_caller]
fn value(samples: &HashMap<String, u64>, series: &str) -> u64 {
    match samples.get(series) {
        Some(&n) => n,
        None => panic!("no series {series} in the scrape"),
    }
}

#[test]
fn a_silent_websocket_is_pinged_and_an_answer_keeps_it() {
    let server = serve();
    let mut ws = upgraded(server.addr());
    // Silence since the upgrade: the ping comes after a second, not before.
    let waited = expect_ping(&mut ws);
    assert!(
        waited >= Duration::from_millis(900),
        "pinged after {waited:?}"
    );
    // A pong is an answer: the next silence gets the next ping, then a message answers it,
    // and the connection outlives the idle timeout (2 s) many times over.
    let start = Instant::now();
    ws.write_all(&cf(0x8a, b"saythat")).unwrap();
    assert!(expect_ping(&mut ws) >= Duration::from_millis(900));
    ws.write_all(&cf(0x81, b"still here")).unwrap();
    assert_eq!(frame(&mut ws), (0x81, b"You say that still here".to_vec()));
    for _ in 0..2 {
        expect_ping(&mut ws);
        ws.write_all(&cf(0x8a, b"")).unwrap();
    }
    assert!(start.elapsed() > Duration::from_secs(2));
    ws.write_all(&cf(0x81, b"hi")).unwrap();
    assert_eq!(frame(&mut ws), (0x81, b"You say that hi".to_vec()));
    // Our close ends it, as ever.
    ws.write_all(&cf(0x88, &1000u16.to_be_bytes())).unwrap();
    assert_eq!(frame(&mut ws), (0x88, 1000u16.to_be_bytes().to_vec()));
    assert_eq!(read_to_eof(&mut ws), b"");
}

#[test]
fn an_unanswered_ping_closes_with_1001_at_the_idle_timeout() {
    let mut server = serve();
    let metrics = server.metrics_addr();
    let mut ws = upgraded(server.addr());
    ws.write_all(&cf(0x82, b"x")).unwrap();
    assert_eq!(frame(&mut ws), (0x82, b"You say that x".to_vec()));
    expect_ping(&mut ws);
    // Nothing from the client: the idle timeout, from the ping, ends it with a close 1001.
    let start = Instant::now();
    let (first, payload) = frame(&mut ws);
    let waited = start.elapsed();
    assert_eq!(
        (first, payload),
        (
            0x88,
            [&1001u16.to_be_bytes()[..], b"ping unanswered"].concat()
        )
    );
    assert!(
        waited >= Duration::from_millis(1900),
        "closed after {waited:?}"
    );
    assert_eq!(read_to_eof(&mut ws), b"");
    let samples = wait_for(TIMEOUT, "the close counted", || {
        let samples = scrape(metrics);
        let closed = r#"saythat_connections_closed_total{reason="ws_ping_timeout"}"#;
        (value(&samples, closed) == 1).then_some(samples)
    });
    assert_eq!(
        value(
            &samples,
            r#"saythat_connections_closed_total{reason="idle"}"#
        ),
        0
    );
    assert_eq!(
        value(&samples, r#"saythat_ws_closes_sent_total{code="1001"}"#),
        1
    );
    assert_eq!(value(&samples, "saythat_ws_connections_open"), 0);
}

#[test]
fn the_metrics_count_a_known_exchange_exactly() {
    let mut server =
        ServerProcess::serve(&["--framing", "http", "--metrics-listen", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    let mut ws = upgraded(server.addr());
    // Three messages: 5 bytes of text, 3 of binary, 4 in two fragments with a ping between.
    ws.write_all(&cf(0x81, b"Hello")).unwrap();
    ws.write_all(&cf(0x82, &[1, 2, 3])).unwrap();
    ws.write_all(&[cf(0x01, b"fr"), cf(0x89, b"p"), cf(0x80, b"ag")].concat())
        .unwrap();
    assert_eq!(frame(&mut ws), (0x81, b"You say that Hello".to_vec()));
    assert_eq!(
        frame(&mut ws),
        (0x82, b"You say that \x01\x02\x03".to_vec())
    );
    assert_eq!(frame(&mut ws), (0x01, b"You say that fr".to_vec()));
    assert_eq!(frame(&mut ws), (0x8a, b"p".to_vec()));
    assert_eq!(frame(&mut ws), (0x80, b"ag".to_vec()));
    // A second WebSocket closes with an application's code, echoed: `other` each way.
    let mut other = upgraded(server.addr());
    other.write_all(&cf(0x88, &4000u16.to_be_bytes())).unwrap();
    assert_eq!(frame(&mut other), (0x88, 4000u16.to_be_bytes().to_vec()));
    assert_eq!(read_to_eof(&mut other), b"");
    // A third sends invalid UTF-8 and gets 1007, then closes without a code.
    let mut bad = upgraded(server.addr());
    bad.write_all(&cf(0x81, b"\xff")).unwrap();
    assert_eq!(frame(&mut bad).0, 0x88);
    bad.write_all(&cf(0x88, b"")).unwrap();
    assert_eq!(read_to_eof(&mut bad), b"");

    let samples = wait_for(TIMEOUT, "both closes counted", || {
        let samples = scrape(metrics);
        (value(&samples, "saythat_ws_connections_open") == 1).then_some(samples)
    });
    let expected: &[(&str, u64)] = &[
        ("saythat_ws_messages_received_total", 4),
        ("saythat_ws_messages_sent_total", 3),
        ("saythat_ws_bytes_received_total", 5 + 3 + 4 + 1),
        ("saythat_ws_bytes_sent_total", 3 * 13 + 5 + 3 + 4),
        ("saythat_messages_total", 3),
        (r#"saythat_ws_closes_received_total{code="1000"}"#, 0),
        (r#"saythat_ws_closes_received_total{code="1005"}"#, 1),
        (r#"saythat_ws_closes_received_total{code="other"}"#, 1),
        (r#"saythat_ws_closes_sent_total{code="other"}"#, 1),
        (r#"saythat_ws_closes_sent_total{code="1007"}"#, 1),
        (r#"saythat_ws_closes_sent_total{code="1001"}"#, 0),
    ];
    let got: Vec<(&str, u64)> = (expected.iter())
        .map(|&(series, _)| (series, value(&samples, series)))
        .collect();
    assert_eq!(got, expected);
    // The first one's close is counted each way; then none is open.
    ws.write_all(&cf(0x88, &1000u16.to_be_bytes())).unwrap();
    assert_eq!(frame(&mut ws), (0x88, 1000u16.to_be_bytes().to_vec()));
    assert_eq!(read_to_eof(&mut ws), b"");
    let samples = wait_for(TIMEOUT, "the last close counted", || {
        let samples = scrape(metrics);
        (value(&samples, "saythat_ws_connections_open") == 0).then_some(samples)
    });
    assert_eq!(
        value(&samples, r#"saythat_ws_closes_received_total{code="1000"}"#),
        1
    );
    assert_eq!(
        value(&samples, r#"saythat_ws_closes_sent_total{code="1000"}"#),
        1
    );
}

#[test]
fn a_ws_ping_not_shorter_than_the_idle_timeout_or_past_an_hour_is_a_usage_error() {
    let serve = |args: &[&str], env: Option<&str>| {
        let mut cmd = saythat(&[&["serve", "--listen", "127.0.0.1:0"], args].concat());
        if let Some(value) = env {
            cmd.env("SAYTHAT_WS_PING", value);
        }
        let output = run_to_end(cmd, None, TIMEOUT);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        stderr
    };
    let stderr = serve(&["--ws-ping", "300"], None);
    assert!(
        stderr.contains("--ws-ping: 300 s is not shorter than --idle-timeout (300 s)"),
        "{stderr}"
    );
    let stderr = serve(&["--idle-timeout", "10"], Some("20"));
    assert!(
        stderr.contains("not shorter than --idle-timeout (10 s)"),
        "{stderr}"
    );
    for value in ["3601", "x", "1s"] {
        let stderr = serve(&["--ws-ping", value], None);
        assert!(stderr.contains("--ws-ping"), "{value}: {stderr}");
    }
}
