//! Issue 21's server part: an HTTP answer waits for its request. A client that writes a whole
//! body before it reads (nginx, HAProxy, many libraries) gets the whole answer, in memory
//! bounded by the answer held once (`--max-body`) and by `--max-held` for the process; a slow
//! reader of a held answer costs the output cap on top, not the answer twice; `100 Continue`
//! goes out alone, and nothing more until the body is in; past `--max-held`, 503 at the head.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use common::http::*;
use common::{expect_silence, read_exact_timeout, read_to_eof, report, send, ServerProcess};
use common::{TestServer, PREFIX};
use saythat::Config;

const BODY: usize = 4 << 20;
/// RSS the server may grow by beyond the answer it holds: its read buffer, its output cap,
/// allocator slack.
const SLACK: u64 = 4 << 20;

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_client_that_writes_a_4_mib_body_before_reading_gets_all_of_it() {
    let mut server = ServerProcess::serve_measured(&http_args(&["--max-body", "8388608"]));
    let mut client = server.connect();
    let warm = vec![b'w'; 64 * 1024];
    exchange(&mut client, &post(&warm), &ok(&[PREFIX, &warm].concat()));
    let baseline = server.anon_rss_bytes();
    let body = body(BODY);
    // The whole request is written before a byte is read: this hung once the echo's output
    // reached --max-pending (the server stopped reading, the client never read).
    client
        .write_all(&post(&body))
        .expect("send the whole request");
    let peak = server.anon_rss_bytes();
    let expected = ok(&[PREFIX, &body].concat());
    let got = read_exact_timeout(&mut client, expected.len());
    assert_answers(&got, &expected);
    let growth = peak.saturating_sub(baseline);
    report("http.held_4mib_rss_growth_bytes", growth);
    assert!(
        growth < BODY as u64 + SLACK,
        "RSS grew {growth} bytes holding a {BODY}-byte answer"
    );
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
    server.assert_alive("after a held 4 MiB answer");
}

#[test]
fn a_slow_reader_of_a_held_answer_costs_the_output_cap_not_the_answer_twice() {
    let server = ServerProcess::serve_measured(&http_args(&["--max-body", "33554432"]));
    let mut client = server.connect();
    let warm = vec![b'w'; 64 * 1024];
    exchange(&mut client, &post(&warm), &ok(&[PREFIX, &warm].concat()));
    let baseline = server.anon_rss_bytes();
    let len = 16 << 20;
    let body = body(len);
    let mut writer = client.try_clone().expect("clone the stream");
    let request = post(&body);
    let sender = thread::spawn(move || writer.write_all(&request));
    sender.join().expect("the writer").expect("send the body");
    let expected = ok(&[PREFIX, &body].concat());
    let mut got = Vec::with_capacity(expected.len());
    let mut buf = [0u8; 64 * 1024];
    let mut peak = server.anon_rss_bytes();
    let mut reads = 0;
    while got.len() < expected.len() {
        let n = client.read(&mut buf).expect("read the answer");
        assert!(n > 0, "EOF after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads % 16 == 0 {
            // About 64 KiB every millisecond: far slower than loopback.
            thread::sleep(Duration::from_millis(16));
            peak = peak.max(server.anon_rss_bytes());
        }
    }
    assert_answers(&got, &expected);
    let growth = peak.saturating_sub(baseline);
    report("http.held_slow_reader_rss_growth_bytes", growth);
    assert!(
        growth < len as u64 + SLACK,
        "RSS grew {growth} bytes while a slow reader took a {len}-byte held answer"
    );
}

#[test]
fn continue_goes_out_alone_and_the_answer_only_once_the_body_is_in() {
    let server = TestServer::start(&http_config());
    let mut client = server.connect();
    send(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let interim = read_exact_timeout(&mut client, b"HTTP/1.1 100 Continue\r\n\r\n".len());
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    // Nothing until the first body byte: HAProxy took a final answer here as the server
    // giving up on the request.
    expect_silence(&mut client, Duration::from_millis(300));
    send(&mut client, b"hel");
    expect_silence(&mut client, Duration::from_millis(300));
    send(&mut client, b"lo");
    let expected = ok(b"You say that hello");
    assert_answers(&read_exact_timeout(&mut client, expected.len()), &expected);
}

#[test]
fn past_max_held_a_request_gets_503_with_retry_after_at_its_head() {
    let server = TestServer::start(&Config {
        max_held: 64 * 1024,
        max_body: 1 << 20,
        ..http_config()
    });
    let mut client = server.connect();
    send(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nfirst bytes",
    );
    let got = String::from_utf8_lossy(&read_to_eof(&mut client)).into_owned();
    assert!(
        got.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && got.contains("\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"),
        "{got:?}"
    );
    // A body that fits is held and answered as always.
    let mut next = server.connect();
    let small = body(30_000);
    let request = post(&small);
    send(&mut next, &request[..request.len() - 10]);
    send(&mut next, &request[request.len() - 10..]);
    let expected = ok(&[PREFIX, &small].concat());
    assert_answers(&read_exact_timeout(&mut next, expected.len()), &expected);
}
