//! `--metrics-listen`: `/metrics` counts exactly what a known workload did (connections,
//! messages, bytes each way, a refusal when full, an idle close, closes by reason, HTTP
//! statuses); `/healthz` says 503 from the moment a drain starts while the metrics listener
//! keeps answering until the process exits; the endpoint is as strict as the HTTP framing (bad
//! requests, slowloris, 404) and a crowd of its connections does not disturb the echo.
//!
//! Scrapes are plain `std::net` HTTP/1.1 requests. A loop publishes its counters at the end of
//! every turn, before the endpoint's turn, so a scrape sent after a client saw an answer counts
//! that answer: the exact checks need no waiting (one worker).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use saythat::config::MAX_ADMIN_CONNS;
use saythat::{Config, FramingKind};

/// The answer to one request on a new connection: status line, head, body.
struct Response {
    status: String,
    head: String,
    body: String,
}

/// Sends `request` on a new connection and reads the answer to the end (`Connection: close`
/// requests, or an error that closes).
#[track_caller]
fn request(addr: SocketAddr, request: &str) -> Response {
    let mut stream = connect(addr);
    send(&mut stream, request.as_bytes());
    let raw = String::from_utf8(read_to_eof(&mut stream)).expect("UTF-8");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Response {
        status: head.lines().next().unwrap_or_default().to_string(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

#[track_caller]
fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: saythat\r\nConnection: close\r\n\r\n"),
    )
}

/// Every sample of a scrape: `name{labels}` to its value.
#[track_caller]
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, "HTTP/1.1 200 OK", "{}", response.head);
    assert!(
        response
            .head
            .contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{}",
        response.head
    );
    response
        .body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value = value.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
            (series.to_string(), value)
        })
        .collect()
}

/// The value of `series` in `samples`, failing with the scrape when absent.
#[track_caller]
fn value(samples: &HashMap<String, f64>, series: &str) -> u64 {
    match samples.get(series) {
        Some(&v) => v as u64,
        None => panic!("no {series} in the scrape: {samples:#?}"),
    }
}

fn closed(samples: &HashMap<String, f64>, reason: &str) -> u64 {
    value(
        samples,
        &format!("saythat_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

fn metrics_config() -> Config {
    Config {
        metrics_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..Config::loopback()
    }
}

/// N connections, M messages each, then one refused when full: every counter moved by exactly
/// that, and by the closes once the clients leave.
#[test]
fn a_scrape_counts_exactly_what_was_done() {
    const N: usize = 3;
    const M: usize = 5;
    let server = TestServer::start(&Config {
        max_conns: Some(N as u32),
        ..metrics_config()
    });
    let metrics = server.metrics[0];
    let before = scrape(metrics);
    assert_eq!(value(&before, "saythat_connections_accepted_total"), 0);
    assert_eq!(value(&before, "saythat_connections_open{worker=\"0\"}"), 0);

    let mut clients: Vec<TcpStream> = (0..N).map(|_| server.connect()).collect();
    let (mut sent, mut answered) = (0, 0);
    for round in 0..M {
        for (i, client) in clients.iter_mut().enumerate() {
            // A round trip each: every read is one message.
            let message = format!("message {round} of client {i}").repeat(round + 1);
            roundtrip(client, message.as_bytes());
            sent += message.len();
            answered += PREFIX.len() + message.len();
        }
    }
    let mut refused = server.connect();
    expect_bytes_then_eof(&mut refused, b"ERR server full (max 3 connections)\n");

    let during = scrape(metrics);
    for (series, expected) in [
        ("saythat_connections_open{worker=\"0\"}", N),
        ("saythat_connections_accepted_total", N),
        ("saythat_connections_refused_total{reason=\"full\"}", 1),
        ("saythat_messages_total", N * M),
        ("saythat_bytes_received_total", sent),
        ("saythat_bytes_sent_total", answered),
        ("saythat_pending_bytes", 0),
        ("saythat_accept_errors_total{kind=\"emfile\"}", 0),
    ] {
        assert_eq!(value(&during, series), expected as u64, "{series}");
    }
    for reason in ["client", "idle", "reset", "error", "shutdown"] {
        assert_eq!(closed(&during, reason), 0, "closed for {reason}");
    }
    let build = format!(
        "saythat_build_info{{version=\"{}\",framing=\"chunk\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&during, &build), 1);
    assert!(value(&during, "process_open_fds") >= (N + 3) as u64);
    assert!(value(&during, "process_resident_memory_bytes") > 0);
    assert!(during.contains_key("process_cpu_seconds_total"));
    assert!(value(&during, "process_start_time_seconds") > 1_600_000_000);

    drop(clients);
    let after = wait_for(TIMEOUT, "the clients' closes counted", || {
        let samples = scrape(metrics);
        (closed(&samples, "client") == N as u64).then_some(samples)
    });
    assert_eq!(value(&after, "saythat_connections_open{worker=\"0\"}"), 0);
    assert_eq!(value(&after, "saythat_messages_total"), (N * M) as u64);
    // Its own scrapes are not echo traffic.
    assert_eq!(
        value(&after, "saythat_connections_accepted_total"),
        N as u64
    );

    let summary = server.shutdown();
    assert_eq!(summary.bytes_in, sent as u64, "the exit summary agrees");
    assert_eq!(summary.bytes_out, answered as u64);
    assert_eq!(summary.rejected_full, 1);
}

/// A connection silent for `--idle-timeout` is counted as an idle close, and messages are
/// counted per line in line framing, the too-long one closing as `line_too_long`.
#[test]
fn idle_and_line_too_long_closes_have_their_reasons() {
    let server = TestServer::start(&Config {
        idle_timeout: 1,
        framing: FramingKind::Line,
        max_line: 16,
        ..metrics_config()
    });
    let metrics = server.metrics[0];
    let mut idle = server.connect();
    send_expect(
        &mut idle,
        b"one\ntwo\n",
        b"You say that one\nYou say that two\n",
    );
    expect_eof(&mut idle);
    let samples = scrape(metrics);
    assert_eq!(closed(&samples, "idle"), 1);
    assert_eq!(value(&samples, "saythat_messages_total"), 2);

    let mut long = server.connect();
    send(&mut long, b"short\nthis line is far too long\n");
    expect_bytes_then_eof(
        &mut long,
        b"You say that short\nERR line too long (max 16 bytes)\n",
    );
    drop(long);
    let samples = wait_for(TIMEOUT, "the refused line's close counted", || {
        let samples = scrape(metrics);
        (closed(&samples, "line_too_long") == 1).then_some(samples)
    });
    assert_eq!(value(&samples, "saythat_messages_total"), 3);
    assert_eq!(closed(&samples, "client"), 0);
    assert_eq!(closed(&samples, "idle"), 1);
}

/// HTTP mode: responses by status, and a refused request closes as `http_error` while one that
/// asked to close closes as `client`.
#[test]
fn http_responses_are_counted_by_status() {
    let server = TestServer::start(&Config {
        framing: FramingKind::Http,
        ..metrics_config()
    });
    let metrics = server.metrics[0];
    for path in ["/a", "/b"] {
        assert_eq!(get(server.addr(), path).status, "HTTP/1.1 200 OK");
    }
    let bad = request(server.addr(), "GET /x HTTP/1.1\r\n\r\n");
    assert_eq!(bad.status, "HTTP/1.1 400 Bad Request");
    let samples = wait_for(TIMEOUT, "the three closes counted", || {
        let samples = scrape(metrics);
        (closed(&samples, "client") + closed(&samples, "http_error") == 3).then_some(samples)
    });
    assert_eq!(
        value(&samples, "saythat_http_responses_total{code=\"200\"}"),
        2
    );
    assert_eq!(
        value(&samples, "saythat_http_responses_total{code=\"400\"}"),
        1
    );
    assert_eq!(value(&samples, "saythat_messages_total"), 3);
    assert_eq!(closed(&samples, "http_error"), 1);
    assert_eq!(closed(&samples, "client"), 2);
}

/// The endpoint is as strict as the HTTP framing: HEAD has no body, anything else is 404, bad
/// input gets the framing's refusals, a stalled head 408; and a crowd of its connections past
/// its limit does not disturb the echo, which is answered all the while.
#[test]
fn the_endpoint_is_strict_and_a_crowd_of_it_does_not_disturb_the_echo() {
    let server = TestServer::start(&Config {
        header_timeout: CROWD_HEADER_TIMEOUT.as_secs(),
        ..metrics_config()
    });
    let metrics = server.metrics[0];
    let head = request(
        metrics,
        "HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, "HTTP/1.1 200 OK");
    assert!(head.body.is_empty(), "a body for HEAD: {:?}", head.body);
    let ok = get(metrics, "/healthz");
    assert_eq!(
        (ok.status.as_str(), ok.body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    for path in ["/", "/metrics/x", "/nope"] {
        let response = get(metrics, path);
        assert_eq!(response.status, "HTTP/1.1 404 Not Found", "{path}");
        assert_eq!(response.body, "not found\n");
    }
    let post = request(
        metrics,
        "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(post.status, "HTTP/1.1 404 Not Found");
    for (wire, status) in [
        ("GET /metrics HTTP/1.1\r\n\r\n", "400 Bad Request"),
        (
            "GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n",
            "505 HTTP Version Not Supported",
        ),
        ("hello\r\n\r\n", "400 Bad Request"),
    ] {
        let response = request(metrics, wire);
        assert_eq!(response.status, format!("HTTP/1.1 {status}"), "{wire:?}");
        assert!(response.head.contains("\r\nConnection: close"), "{wire:?}");
    }
    // Slowloris: a head that does not complete within --header-timeout.
    let mut slow = connect(metrics);
    send(&mut slow, b"GET /metrics HTTP/1.1\r\nHost: a\r\n");
    let answer = String::from_utf8(read_to_eof(&mut slow)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer:?}"
    );

    // A crowd on the metrics listener, past its limit, each sending half a head.
    let mut echo = server.connect();
    let mut crowd = Vec::new();
    for i in 0..300 {
        let connecting = Instant::now();
        if let Ok(mut c) = try_connect(metrics) {
            let _ = c.write_all(b"GET /metrics HTTP/1.1\r\n");
            crowd.push((connecting, c));
        }
        if i % 10 == 0 {
            roundtrip(&mut echo, format!("still here {i}").as_bytes());
        }
    }
    roundtrip(&mut echo, b"and after the crowd");
    let seen = crowd.len();
    let held = crowd_held(crowd);
    report("metrics.crowd", format!("{held:?}"));
    assert!(
        held.refused > 0 && held.refused + held.timed_out + held.reset == seen,
        "{held:?} of {seen}"
    );
    assert!(
        held.most_at_once <= MAX_ADMIN_CONNS,
        "{} of the crowd held at once, more than the {MAX_ADMIN_CONNS} slots ({held:?})",
        held.most_at_once
    );
    let samples = wait_for(TIMEOUT, "the endpoint answers again", || {
        try_connect(metrics).ok().map(|_| scrape(metrics))
    });
    assert_eq!(value(&samples, "saythat_connections_accepted_total"), 1);
    assert_eq!(value(&samples, "saythat_messages_total"), 31);
}

/// The endpoint's header timeout in the crowd's test: short, so the slowloris and the admitted
/// part of the crowd are answered 408 soon (under the side loops' own `SIDE_HEADER_TIMEOUT`).
const CROWD_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// What became of a crowd of half heads on the admin endpoint, each read to its end.
#[derive(Debug)]
struct CrowdHeld {
    /// Refused at accept, full, with a 503 saying so.
    refused: usize,
    /// Admitted, then answered 408 when the head was overdue.
    timed_out: usize,
    /// Reset before a word: a refusal whose close crossed the half head (nothing is known).
    reset: usize,
    /// The most admitted connections certainly held at one moment.
    most_at_once: usize,
}

/// Reads every connection of the crowd (each with the instant before its connect) to its end
/// and counts how many the endpoint must have held at once. Clocks alone cannot say when the
/// server accepted a connection, but an admitted one answered 408 was held, its head
/// incomplete and so not evictable, for the header timeout `H` from its accept; that
/// accept came after the client began to connect (`s`), and at least `H` before the client read
/// the 408 (`r`). So it was held all through `[r - H, s + H]`, less `SLACK` at each end for the
/// loop's clock, taken at the start of the turn that accepts. This never counts a connection
/// the server did not hold, however slowly a loaded machine let it accept or answer; a server
/// that admits the whole crowd has nearly all of it in those spans at once.
fn crowd_held(crowd: Vec<(Instant, TcpStream)>) -> CrowdHeld {
    const H: Duration = CROWD_HEADER_TIMEOUT;
    const SLACK: Duration = Duration::from_millis(250);
    let mut held = CrowdHeld {
        refused: 0,
        timed_out: 0,
        reset: 0,
        most_at_once: 0,
    };
    // +1 where a span certainly held begins, -1 where it ends.
    let mut edges = Vec::new();
    for (i, (connecting, mut c)) in crowd.into_iter().enumerate() {
        let (answer, reset) = read_to_end_or_reset(&mut c);
        let read = Instant::now();
        let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
        match (line, reset) {
            (b"HTTP/1.1 503 Service Unavailable", _) => held.refused += 1,
            (b"HTTP/1.1 408 Request Timeout", false) => {
                held.timed_out += 1;
                let (from, to) = (read - H + SLACK, connecting + H - SLACK);
                if from < to {
                    edges.push((from, 1));
                    edges.push((to, -1));
                }
            }
            (b"", true) => held.reset += 1,
            _ => panic!(
                "crowd connection {i}: neither refused nor timed out: {:?} (reset: {reset})",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    // Ends sort before beginnings at the same instant: spans that only touch do not overlap.
    edges.sort();
    let mut at_once = 0i64;
    for (_, step) in edges {
        at_once += step;
        held.most_at_once = held.most_at_once.max(at_once as usize);
    }
    held
}

/// Reads `c` until the server closes or resets it (bounded by its `TIMEOUT` read timeout);
/// gives what came and whether a reset ended it.
fn read_to_end_or_reset(c: &mut TcpStream) -> (Vec<u8>, bool) {
    let (mut got, mut buf) = (Vec::new(), [0u8; 1024]);
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, false),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!("reading a crowd connection: {e} after {got:?}"),
        }
    }
}

/// The binary stays single-threaded. SIGTERM with a client still connected: /healthz says 503
/// at once, the echo listener is closed, the metrics listener keeps answering through the drain, and the process exits once
/// the client leaves.
#[test]
fn healthz_says_draining_during_a_drain_and_metrics_answer_until_exit() {
    let mut server =
        ServerProcess::serve(&["--metrics-listen", "127.0.0.1:0", "--framing", "line"]);
    let metrics = server.metrics_addr();
    let mut client = server.connect();
    // Then half a line, which keeps the connection through the drain until the test ends it.
    send_expect(&mut client, b"before\ndur", b"You say that before\n");
    // One thread with one worker, the endpoint included: a second would make glibc add its
    // cancellation bookkeeping to every recv and send.
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .map(|tasks| tasks.count())
        .unwrap_or(1);
    assert_eq!(threads, 1, "threads of saythat serve --metrics-listen");
    let ok = get(metrics, "/healthz");
    assert_eq!(
        (ok.status.as_str(), ok.body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );

    server.signal("TERM");
    server.wait_for_line("draining 1 connection(s)");
    let draining = get(metrics, "/healthz");
    assert_eq!(draining.status, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(draining.body, "draining\n");
    expect_refused(server.addr());
    // The draining connection is still served and counted, and so are the scrapes.
    send_expect(&mut client, b"ing\nmo", b"You say that during\n");
    for _ in 0..3 {
        let samples = scrape(metrics);
        assert_eq!(value(&samples, "saythat_connections_open{worker=\"0\"}"), 1);
        assert_eq!(value(&samples, "saythat_messages_total"), 2);
    }
    drop(client);
    server.expect_exit(0, TIMEOUT);
    expect_refused(metrics);
}

/// A metrics address that cannot be bound fails the start with the same message as a `--listen`
/// one, naming the flag to change.
#[test]
fn a_metrics_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let error = match TestServer::try_start(&Config {
        metrics_listen: vec![addr],
        ..Config::loopback()
    }) {
        Ok(_) => panic!("a server started on {addr}, which is taken"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        error,
        format!(
            "cannot listen on {addr}: address already in use (is another server running? choose \
             another address with --metrics-listen)"
        )
    );
}

/// A scrape's shape: its `# HELP` and `# TYPE` lines as they are, and each sample's series (its
/// name and labels) without its value, in order.
fn shape(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| match line.starts_with('#') {
            true => line.to_string(),
            false => line
                .rsplit_once(' ')
                .map_or(line, |(series, _)| series)
                .to_string(),
        })
        .collect()
}

/// The README's sample scrape (in Monitoring, after "A scrape after") is a real one: the same
/// metrics with the same help, types and label sets, in the same order, as a scrape of the
/// library's server; only the values may differ. So the sample cannot drift from the code.
#[test]
fn the_readme_sample_scrape_has_the_shape_of_a_real_one() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let sample = readme
        .split_once("A scrape after")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("a ``` block after \"A scrape after\" in README.md");
    let server = TestServer::start(&metrics_config());
    roundtrip(&mut server.connect(), b"counted");
    let real = get(server.metrics[0], "/metrics");
    assert_eq!(real.status, "HTTP/1.1 200 OK", "{}", real.head);
    assert_eq!(
        shape(sample),
        shape(&real.body),
        "README.md's sample scrape differs from a real one:\n{}",
        real.body
    );
}

/// More silent sockets than the admin endpoint has slots (32): the oldest idle one makes room
/// for each newcomer, so `/healthz` still answers 200 at once, and so does a scrape.
#[test]
fn healthz_answers_at_once_behind_more_silent_sockets_than_slots() {
    use saythat::config::SIDE_IDLE_TIMEOUT;
    let server = TestServer::start(&metrics_config());
    let metrics = server.metrics[0];
    let connecting = Instant::now();
    let silent: Vec<TcpStream> = (0..MAX_ADMIN_CONNS + 8).map(|_| connect(metrics)).collect();
    // A health checker's request, answered while every silent socket is still open. The
    // endpoint accepts in order, so it comes to the request with every slot taken by a silent
    // socket: a 200 means one made room for it, unless one had already idled out, which none
    // can do before SIDE_IDLE_TIMEOUT after it connected. (A fixed bound shorter than that,
    // which this was, only measured how fast a loaded machine accepts 41 connections.)
    let ok = get(metrics, "/healthz");
    let took = connecting.elapsed();
    assert_eq!(
        (ok.status.as_str(), ok.body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n"),
        "{}",
        ok.head
    );
    assert!(
        took < SIDE_IDLE_TIMEOUT,
        "/healthz was answered {took:?} after the silent sockets connected: a slot may have \
         been freed by their idle timeout ({SIDE_IDLE_TIMEOUT:?}) rather than made for it"
    );
    let samples = scrape(metrics);
    assert!(samples.contains_key("saythat_connections_accepted_total"));
    drop(silent);
}

/// A client pipelining `HEAD /metrics` as fast as it can beside echo traffic that turns the
/// loop over and over: the endpoint gets at most one turn per `SIDE_TURN_INTERVAL`, each reading
/// at most `SIDE_TURN_BUDGET` bytes, so the scraper's answers are bounded by the time it ran, not
/// by how often the echo turned the loop; meanwhile the echo and `/healthz` are answered.
#[test]
fn a_pipelining_scraper_gets_one_bounded_turn_per_interval_and_healthz_still_answers() {
    use saythat::config::{SIDE_TURN_BUDGET, SIDE_TURN_INTERVAL};
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    const REQUEST: &[u8] = b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\n";
    let server = TestServer::start(&metrics_config());
    let metrics = server.metrics[0];
    let mut echo = server.connect();
    roundtrip(&mut echo, b"before");

    let started = std::time::Instant::now();
    let scraper = connect(metrics);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (mut scraper, stop) = (scraper.try_clone().unwrap(), stop.clone());
        std::thread::spawn(move || {
            let batch = REQUEST.repeat(64);
            while !stop.load(Ordering::Relaxed) && scraper.write_all(&batch).is_ok() {}
        })
    };
    let reader = {
        let (mut scraper, answered) = (scraper.try_clone().unwrap(), answered.clone());
        std::thread::spawn(move || {
            // Answers counted by their status line, which a read may cut: the tail of each read
            // is kept for the next.
            let (mut answers, mut held, mut buf) = (0, Vec::new(), vec![0u8; 64 * 1024]);
            while let Ok(n) = scraper.read(&mut buf) {
                if n == 0 {
                    break;
                }
                held.extend_from_slice(&buf[..n]);
                answers += held.windows(ANSWER.len()).filter(|w| *w == ANSWER).count();
                answered.store(answers, Ordering::Relaxed);
                held.drain(..held.len().saturating_sub(ANSWER.len() - 1));
            }
            (answers, std::time::Instant::now())
        })
    };

    // Echo round trips turn the loop thousands of times while the scraper pipelines.
    let mut round_trips = 0;
    while started.elapsed() < Duration::from_millis(300) {
        roundtrip(&mut echo, format!("echo {round_trips}").as_bytes());
        round_trips += 1;
    }
    let ok = get(metrics, "/healthz");
    assert_eq!(
        (ok.status.as_str(), ok.body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n"),
        "{}",
        ok.head
    );
    // A side turn that a loaded machine preempted is followed by a rest 19 times as long, which
    // may outlast the echo's 300 ms: the scraper's first answer is awaited, not assumed. Its
    // bound below grows with the time the reader ran, so waiting cannot make it fail.
    wait_for(TIMEOUT, "the scraper's first answer", || {
        (answered.load(Ordering::Relaxed) > 0).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    scraper.shutdown(std::net::Shutdown::Both).unwrap();
    writer.join().unwrap();
    let (answers, ended) = reader.join().unwrap();
    let ran = ended - started;

    // Turns start at least an interval apart; each reads at most the budget, and a request
    // is answered once it was read whole.
    let turns = (ran.as_nanos() / SIDE_TURN_INTERVAL.as_nanos()) as usize + 1;
    let most = turns * SIDE_TURN_BUDGET / REQUEST.len() + 1;
    eprintln!("{answers} answers in {ran:?} (at most {most}), {round_trips} echo round trips");
    assert!(answers > 0, "the scraper was never answered");
    assert!(
        answers <= most,
        "{answers} answers in {ran:?} (at most {most}) beside {round_trips} echo round trips"
    );
    roundtrip(&mut echo, b"after");
}

/// Under a /proc mounted with `subset=pid` (what `ProcSubset=pid` in the shipped unit gives: no
/// /proc/stat), every process series is still scraped. Needs root and unshare(1); skipped,
/// saying why, without them.
#[test]
fn process_metrics_survive_a_proc_without_stat() {
    const MOUNT: &str = "mount -t proc -o subset=pid proc /proc && test ! -e /proc/stat";
    let wrapper = [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "sh",
        "-c",
    ];
    let probe = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(MOUNT)
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED: cannot mount a /proc with subset=pid here (needs root and a kernel \
                 >= 5.8): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run unshare(1): {e}");
            return;
        }
    }
    // sh runs the server as $0 with its arguments, once /proc is remounted.
    let script = format!("{MOUNT} && exec \"$0\" \"$@\"");
    let mut server = ServerProcess::serve_under(
        &[&wrapper[..], &[script.as_str()]].concat(),
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = server.metrics_addr();
    let samples = scrape(metrics);
    for series in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(samples.contains_key(series), "no {series}: {samples:#?}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = samples["process_start_time_seconds"];
    assert!(started <= now + 1.0 && started > now - 120.0, "{started}");
    // Dropped: killed, and with it (--kill-child) the server in its namespace.
}

/// The admin port is not an echo: a WebSocket upgrade asked of it is ignored (RFC 9110 §7.8
/// lets a server do so) and the request answered as any other, never `101`.
#[test]
fn the_admin_port_ignores_a_websocket_upgrade() {
    let server = TestServer::start(&metrics_config());
    let mut client = common::connect(server.metrics[0]);
    client
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Connection: close\r\n\r\n",
        )
        .expect("write");
    let answer = String::from_utf8_lossy(&common::read_to_eof(&mut client)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(!answer.contains("Sec-WebSocket-Accept"), "{answer}");
}
