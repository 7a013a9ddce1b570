//! HTTP mode at size: a 64 MiB body held and answered whole by the real binary within its bound,
//! a thousand keep-alive clients at once, and pipelines far longer than the output cap.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::http::*;
use common::{report, show, ServerProcess, TestServer, PREFIX};
use saythat::Config;

/// The streamed body: 64 MiB.
const BIG: usize = 64 << 20;
/// The body repeats a block of this prime length, so a byte out of place, lost or repeated
/// compares unequal at once while both sides work on slices (memcmp), fast even unoptimised.
const BLOCK: usize = 1_000_003;
/// The most the server's RSS may grow while streaming the body through.
const MAX_RSS_GROWTH: u64 = BIG as u64 + (8 << 20);

fn block() -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Reads a head a byte at a time, so nothing after it is taken.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("reading the head: {other:?} after \"{}\"", show(&head)),
        }
    }
    head
}

#[test]
fn a_64_mib_body_is_held_and_answered_whole_within_its_bound() {
    // Issue 21: an answer waits for its whole body, so a 64 MiB body costs its answer held
    // (prefix + body + a head) once, not the output cap; this test used to assert that it
    // streamed through in a few MiB, which hung clients that write the whole body first.
    let mut server = ServerProcess::serve_measured(&http_args(&["--max-body", &BIG.to_string()]));
    let mut client = server.connect();
    // Warm-up: the loop's buffers reach their working size on a body of several reads.
    let warm = vec![b'w'; 256 * 1024];
    exchange(&mut client, &post(&warm), &ok(&[PREFIX, &warm].concat()));
    let baseline = server.anon_rss_bytes();

    let block = Arc::new(block());
    let mut writer = client.try_clone().expect("clone the stream");
    let body = Arc::clone(&block);
    let started = Instant::now();
    let sender = thread::spawn(move || {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {BIG}\r\n\r\n");
        writer.write_all(head.as_bytes())?;
        let (mut sent, mut at) = (0, 0);
        while sent < BIG {
            let n = (BIG - sent).min(BLOCK - at).min(256 * 1024);
            writer.write_all(&body[at..at + n])?;
            sent += n;
            at = (at + n) % BLOCK;
        }
        Ok::<_, std::io::Error>(())
    });

    let head = read_head(&mut client);
    assert_answers(&head, &ok_head(PREFIX.len() + BIG, Conn::Persist));
    let mut prefix = [0u8; PREFIX.len()];
    client.read_exact(&mut prefix).expect("the prefix");
    assert_eq!(prefix, PREFIX);

    let mut buf = vec![0u8; 256 * 1024];
    let (mut got, mut at) = (0, 0);
    let mut peak = baseline;
    let mut next_sample = 0;
    while got < BIG {
        let want = (BIG - got).min(buf.len());
        let n = match client.read(&mut buf[..want]) {
            Ok(0) => panic!("the server closed after {got} of {BIG} body bytes"),
            Ok(n) => n,
            Err(e) => panic!("reading the body failed after {got} bytes: {e}"),
        };
        let mut checked = 0;
        while checked < n {
            let run = (n - checked).min(BLOCK - at);
            assert!(
                buf[checked..checked + run] == block[at..at + run],
                "the echoed body differs within bytes {}..{}",
                got + checked,
                got + checked + run
            );
            checked += run;
            at = (at + run) % BLOCK;
        }
        got += n;
        if got >= next_sample {
            peak = peak.max(server.anon_rss_bytes());
            next_sample += 1 << 20;
        }
    }
    sender.join().expect("the writer").expect("send the body");
    let elapsed = started.elapsed();
    peak = peak.max(server.anon_rss_bytes());
    // Still a working keep-alive connection.
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
    server.assert_alive("after holding 64 MiB");

    let growth = peak.saturating_sub(baseline);
    report(
        "http.stream_64mib_secs",
        format!("{:.2}", elapsed.as_secs_f64()),
    );
    report("http.stream_rss_growth_bytes", growth);
    assert!(
        growth < MAX_RSS_GROWTH,
        "the server's RSS grew from {baseline} to {peak} bytes while streaming {BIG} bytes"
    );
}

/// One client: opens a connection, waits for all the others to have theirs, sends three
/// requests one after another and checks each answer, then waits until all have finished
/// before closing, so all are open at once.
async fn keep_alive_client(
    addr: std::net::SocketAddr,
    id: usize,
    connected: Arc<tokio::sync::Barrier>,
    finished: Arc<tokio::sync::Barrier>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("client {id}: cannot connect: {e}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    connected.wait().await;
    for round in 0..3 {
        let said = format!("client {id} round {round}");
        let request = if round == 1 {
            post(said.as_bytes())
        } else {
            get(&format!("/client%20{id}%20round%20{round}"))
        };
        let expected = ok(format!("You say that {said}").as_bytes());
        stream
            .write_all(&request)
            .await
            .unwrap_or_else(|e| panic!("client {id} round {round}: cannot send: {e}"));
        let mut got = vec![0u8; expected.len()];
        stream
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("client {id} round {round}: {e}"));
        assert_answers(&got, &expected);
    }
    finished.wait().await;
}

#[test]
fn a_thousand_keep_alive_clients_at_once() {
    const CLIENTS: usize = 1000;
    let server = TestServer::start(&http_config());
    let addr = server.addr();
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let connected = Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let finished = Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let mut clients = tokio::task::JoinSet::new();
        for id in 0..CLIENTS {
            let (connected, finished) = (Arc::clone(&connected), Arc::clone(&finished));
            clients.spawn(keep_alive_client(addr, id, connected, finished));
        }
        let all = async {
            while let Some(done) = clients.join_next().await {
                if let Err(e) = done {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("every client done within 20 s");
    });
    let elapsed = started.elapsed();
    let summary = server.shutdown();
    report(
        "http.thousand_clients_secs",
        format!("{:.2}", elapsed.as_secs_f64()),
    );
    assert_eq!(summary.accepted, CLIENTS as u64, "accepted");
    assert_eq!(summary.peak_connections, CLIENTS, "all open at once");
    assert!(
        elapsed < Duration::from_secs(5),
        "{CLIENTS} clients × 3 requests took {elapsed:?}"
    );
}

#[test]
fn pipelines_far_past_the_output_cap_are_answered_in_order() {
    // 5,000 requests written at once, answers ~150 times the 4 KiB output cap: the server pauses,
    // holds the requests it has no room for, and answers them all, in order, as the client reads.
    const REQUESTS: usize = 5000;
    let server = TestServer::start(&Config {
        max_pending: 4096,
        ..http_config()
    });
    let mut client = server.connect();
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for i in 0..REQUESTS {
        let said = format!("number {i}");
        if i % 3 == 0 {
            requests.extend_from_slice(&post(said.as_bytes()));
        } else if i % 3 == 1 {
            requests.extend_from_slice(
                &[
                    &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                    &chunked(said.as_bytes(), &[said.len()]),
                ]
                .concat(),
            );
        } else {
            requests.extend_from_slice(&get(&format!("/number%20{i}")));
        }
        if i % 3 == 1 {
            // Chunked answers: the prefix chunk, then the body as one chunk, however reads
            // split it (an answer waits for a body that spans reads, then goes out as one
            // chunk), so the answer's bytes are known.
            expected.extend_from_slice(&chunked_head(Conn::Persist));
            expected.extend_from_slice(b"d\r\nYou say that \r\n");
            expected.extend_from_slice(&chunked(said.as_bytes(), &[said.len()]));
        } else {
            expected.extend_from_slice(&ok(format!("You say that {said}").as_bytes()));
        }
    }
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || writer.write_all(&requests));
    expect_answer(&mut client, &expected);
    sender
        .join()
        .expect("the writer")
        .expect("send the pipeline");
    exchange(&mut client, &get("/done"), &ok(b"You say that done"));
}

/// `n` mixed requests (GET, POST, chunked POST of one-byte chunks) and their exact answers.
fn mixed_pipeline(n: usize, tag: &str) -> (Vec<u8>, Vec<u8>) {
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let said = format!("{tag} {i}");
        match i % 3 {
            0 => {
                requests.extend_from_slice(&post(said.as_bytes()));
                expected.extend_from_slice(&ok(format!("You say that {said}").as_bytes()));
            }
            1 => {
                requests.extend_from_slice(
                    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                // One chunk: held or not, its answer is the prefix's chunk and one more.
                requests.extend_from_slice(&chunked(said.as_bytes(), &[said.len()]));
                expected.extend_from_slice(&chunked_head(Conn::Persist));
                expected.extend_from_slice(b"d\r\nYou say that \r\n");
                expected.extend_from_slice(&chunked(said.as_bytes(), &[said.len()]));
            }
            _ => {
                requests.extend_from_slice(&get(&format!("/{}", said.replace(' ', "%20"))));
                expected.extend_from_slice(&ok(format!("You say that {said}").as_bytes()));
            }
        }
    }
    (requests, expected)
}

#[test]
fn an_output_cap_of_one_byte_still_answers_everything() {
    // --max-pending 1: every read is one byte or a little more, every answer overshoots the cap.
    let server = TestServer::start(&Config {
        max_pending: 1,
        ..http_config()
    });
    let mut client = server.connect();
    let (requests, expected) = mixed_pipeline(300, "tiny cap");
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || writer.write_all(&requests));
    expect_answer(&mut client, &expected);
    sender
        .join()
        .expect("the writer")
        .expect("send the pipeline");
    let body = vec![b'q'; 100_000];
    let mut writer = client.try_clone().expect("clone the stream");
    let request = post(&body);
    let sender = thread::spawn(move || writer.write_all(&request));
    expect_answer(&mut client, &ok(&[PREFIX, &body].concat()));
    sender.join().expect("the writer").expect("send the body");
}

#[test]
fn a_half_closed_client_gets_every_pipelined_answer_then_eof() {
    // The client sends a long pipeline and shuts down its write side at once: every request is
    // still answered, past the output cap, and then the server closes.
    let server = TestServer::start(&Config {
        max_pending: 4096,
        ..http_config()
    });
    let mut client = server.connect();
    let (requests, expected) = mixed_pipeline(600, "half closed");
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || {
        writer.write_all(&requests)?;
        writer.shutdown(std::net::Shutdown::Write)
    });
    let got = common::read_to_eof(&mut client);
    sender
        .join()
        .expect("the writer")
        .expect("send the pipeline");
    assert_eq!(count_answers(&got), 600, "answers before EOF");
    assert_answers(&got, &expected);
}

#[test]
fn a_16_mib_chunked_body_of_large_chunks_is_echoed() {
    const LEN: usize = 16 << 20;
    let server = TestServer::start(&Config {
        max_body: LEN as u64,
        ..http_config()
    });
    let mut client = server.connect();
    let block = block();
    let body: Vec<u8> = block.iter().copied().cycle().take(LEN).collect();
    // Chunks larger than a read, and a last one that ends exactly at --max-body.
    let wire = [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        &chunked(&body, &[1 << 20, 12_345, 3 << 20]),
    ]
    .concat();
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || writer.write_all(&wire));
    let response = read_response(&mut client, false);
    sender.join().expect("the writer").expect("send the body");
    assert_eq!(response.head, chunked_head(Conn::Persist));
    assert!(response.body.len() == PREFIX.len() + LEN && response.body[PREFIX.len()..] == body[..]);
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
}

#[test]
fn a_refusal_held_behind_the_output_cap_comes_after_every_answer() {
    // The bad request is read while the answers before it wait for room: it is refused in its
    // turn, after all of them, and nothing after it is answered.
    let server = TestServer::start(&Config {
        max_pending: 4096,
        ..http_config()
    });
    let mut client = server.connect();
    let (mut requests, expected) = mixed_pipeline(600, "before the error");
    requests.extend_from_slice(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n");
    requests.extend_from_slice(SMUGGLED);
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || writer.write_all(&requests));
    let got = common::read_to_eof(&mut client);
    sender
        .join()
        .expect("the writer")
        .expect("send the pipeline");
    assert!(got.len() > expected.len(), "only {} bytes", got.len());
    assert_answers(&got[..expected.len()], &expected);
    let rest = mask_dates(&got[expected.len()..]);
    let head = error_head("505 HTTP Version Not Supported", 0);
    let fixed = head.len() - "0\r\nConnection: close\r\n\r\n".len();
    assert!(
        rest.starts_with(&head[..fixed]) && count_answers(&rest) == 1,
        "after the answers: \"{}\"",
        show(&rest)
    );
    assert!(!contains(&got, b"smuggled"));
}

#[test]
fn the_binary_takes_its_http_limits_from_its_flags() {
    let server = ServerProcess::serve(&http_args(&[
        "--max-header",
        "256",
        "--max-body",
        "16",
        "--header-timeout",
        "1",
    ]));
    let mut client = server.connect();
    exchange(
        &mut client,
        &post(b"exactly 16 bytes"),
        &ok(b"You say that exactly 16 bytes"),
    );

    let mut client = server.connect();
    common::send(&mut client, &post(b"seventeen bytes!!"));
    expect_refusal(&mut client, "413 Content Too Large");

    let mut client = server.connect();
    let long = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "x".repeat(256)
    );
    common::send(&mut client, long.as_bytes());
    expect_refusal(&mut client, "431 Request Header Fields Too Large");

    let mut client = server.connect();
    let started = Instant::now();
    common::send(&mut client, b"GET / HTTP/1.1\r\n");
    expect_refusal(&mut client, "408 Request Timeout");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "408 after {after:?} (--header-timeout 1)"
    );
}
