//! `saythat load --query`: the query text sent with every HTTP request, the answers counted by
//! status and checked against the controls it carries (a status only among those asked, a body
//! of a size asked, a JSON description of the request sent), and a query the server would refuse
//! refused with exit 2. The faults a query asks for (`close`, `reset`) are counted apart, and
//! are no errors; a `--timeout` shorter than the delays asked is refused with exit 2.
//!
//! Against saythat's own HTTP framing (a test backend that acts on the controls, and drops the
//! query from the echo) and against tiny std servers that record what they were sent or answer
//! wrong on purpose. Every byte goes to 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use common::{load_ok, parse_load, run_to_end, saythat, ServerProcess, TestServer, TIMEOUT};
use saythat::framing::http::FILLER_LINE;
use saythat::load::{self, LoadArgs, LoadReport};
use saythat::{Config, FramingKind};

const PREFIX: &[u8] = b"You say that ";
/// An answer starting with this is the bytes after it, then a TCP reset.
const RESET: &[u8] = b"RESET:";
const QUERY: &str = "delay=10ms&status=503:10";

/// An HTTP run of 4 connections for up to 30 s with no warmup against `addr`, changed by `extra`
/// flags.
fn args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
    let addr = addr.to_string();
    let mut argv = vec!["load", "--addr", &addr, "--framing", "http"];
    for default in [["--warmup", "0"], ["--duration", "30"], ["--conns", "4"]] {
        if !extra.contains(&default[0]) {
            argv.extend(default);
        }
    }
    argv.extend(extra);
    parse_load(&argv).expect("the test's flags parse")
}

fn statuses(pairs: &[(u16, u64)]) -> BTreeMap<u16, u64> {
    pairs.iter().copied().collect()
}

/// A server on a free loopback port that reads each request (its head, and a Content-Length
/// body), reports its request line on `lines`, and answers what `answer` makes of the `n`-th
/// request of the connection and its message (the body, else the path between `/` and `?`).
fn serve(lines: Option<Sender<String>>, answer: fn(usize, &[u8]) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound listener");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_nodelay(true);
            let lines = lines.clone();
            thread::spawn(move || http_echo(stream, lines, answer));
        }
    });
    addr
}

fn http_echo(s: TcpStream, lines: Option<Sender<String>>, answer: fn(usize, &[u8]) -> Vec<u8>) {
    let Ok(mut out) = s.try_clone() else { return };
    let mut input = BufReader::new(s);
    let mut line = String::new();
    for n in 0.. {
        line.clear();
        if !matches!(input.read_line(&mut line), Ok(1..)) {
            return;
        }
        if let Some(tx) = &lines {
            let _ = tx.send(line.clone());
        }
        let target = line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut length = 0;
        loop {
            let mut field = String::new();
            if !matches!(input.read_line(&mut field), Ok(1..)) {
                return;
            }
            if field == "\r\n" {
                break;
            }
            if let Some(v) = field.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if input.read_exact(&mut body).is_err() {
            return;
        }
        let path = target.split('?').next().unwrap_or("/");
        let message = match length {
            0 => path.trim_start_matches('/').as_bytes().to_vec(),
            _ => body,
        };
        let answer = answer(n, &message);
        if let Some(before) = answer.strip_prefix(RESET) {
            // Whatever comes before the reset, then the reset itself (SO_LINGER 0).
            let _ = out.write_all(before);
            let _ = socket2::SockRef::from(&out).set_linger(Some(Duration::ZERO));
            return;
        }
        if out.write_all(&answer).is_err() {
            return;
        }
    }
}

/// The echo of `message` with status `status` (code and reason).
fn echo(status: &str, message: &[u8]) -> Vec<u8> {
    let body = [PREFIX, message].concat();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), &body].concat()
}

/// Answers every 5th request of a connection `503 Service Unavailable`, the rest `200 OK`,
/// each with the echo, keeping the connection: as a test backend asked `status=503:20` does.
fn flaky(n: usize, message: &[u8]) -> Vec<u8> {
    match n % 5 {
        4 => echo("503 Service Unavailable", message),
        _ => echo("200 OK", message),
    }
}

fn ok(_: usize, message: &[u8]) -> Vec<u8> {
    echo("200 OK", message)
}

#[test]
fn the_query_follows_the_path_of_every_get_and_the_slash_of_every_post() {
    for method in ["get", "post"] {
        let (tx, rx) = mpsc::channel();
        let addr = serve(Some(tx), ok);
        let flags = ["--method", method, "--query", QUERY, "--messages", "40"];
        let report = load_ok(&args(addr, &flags));
        assert_eq!((report.messages, report.errors), (40, 0), "{report}");
        let lines: Vec<String> = rx.try_iter().collect();
        assert_eq!(lines.len(), 40, "{lines:?}");
        for line in &lines {
            let target = line.split(' ').nth(1).unwrap_or_default();
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            assert_eq!(query, QUERY, "{line:?}");
            match method {
                "get" => assert_eq!(path.len(), 1 + 64, "the message is the path: {line:?}"),
                _ => assert_eq!(path, "/", "{line:?}"),
            }
            assert!(line.ends_with(" HTTP/1.1\r\n"), "{line:?}");
        }
    }
}

/// saythat obeys the controls (issue 17): about one answer in ten is a 503, each counted, none
/// an error; every request went out exactly.
#[test]
fn against_saythat_the_controls_are_obeyed_and_counted_and_the_requests_are_exact() {
    let server = TestServer::start(&Config {
        framing: FramingKind::Http,
        ..Config::loopback()
    });
    let flags = ["--query", QUERY, "--pipeline", "4", "--messages", "2000"];
    let report = load_ok(&args(server.addr(), &flags));
    assert_eq!((report.messages, report.errors), (2000, 0), "{report}");
    let (ok, unavailable) = (report.statuses.get(&200), report.statuses.get(&503));
    let (ok, unavailable) = (ok.copied().unwrap_or(0), unavailable.copied().unwrap_or(0));
    assert_eq!(ok + unavailable, 2000, "only 200 and 503: {report}");
    // 10 % of 2,000 is 200, give or take 13 (one standard deviation): far outside is a bug.
    assert!((80..=320).contains(&unavailable), "{report}");
    // Every request went out once, whole: its head with `?QUERY`, and the 64-byte path.
    let host = format!("Host: {}\r\n", server.addr());
    let request = "GET /? HTTP/1.1\r\n".len() + QUERY.len() + host.len() + 2 + 64;
    assert_eq!(report.sent_bytes, 2000 * request as u64, "{report}");
    let json = serde_json::to_value(&report).expect("a report serialises");
    let expected = serde_json::json!({"200": ok, "503": unavailable});
    assert_eq!(json["statuses"], expected, "{json}");
    let text = report.to_string();
    let line = format!("statuses    200: {ok}, 503: {unavailable}");
    assert!(text.contains(&line), "{text}");
}

#[test]
fn with_a_status_control_another_status_is_counted_and_no_error() {
    // One connection, so its every 5th answer of the 400 is a 503.
    let flags = [
        "--query",
        "status=503:20",
        "--conns",
        "1",
        "--pipeline",
        "2",
        "--messages",
        "400",
    ];
    let report = load_ok(&args(serve(None, flaky), &flags));
    assert_eq!((report.messages, report.errors), (400, 0), "{report}");
    assert_eq!(report.reconnects, 0, "kept alive: {report}");
    assert_eq!(
        report.statuses,
        statuses(&[(200, 320), (503, 80)]),
        "{report}"
    );
    let json = serde_json::to_value(&report).expect("a report serialises");
    assert_eq!(json["statuses"], serde_json::json!({"200": 320, "503": 80}));
}

#[test]
fn without_a_status_control_another_status_is_a_counted_bad_status() {
    for query in [None, Some("delay=10ms")] {
        let mut flags = vec!["--duration", "0.5"];
        if let Some(query) = query {
            flags.extend(["--query", query]);
        }
        let report = load_ok(&args(serve(None, flaky), &flags));
        assert!(report.bad_status > 0, "{query:?}: {report}");
        assert_eq!(report.errors, report.bad_status, "{query:?}: {report}");
        assert_eq!(
            report.statuses.get(&503),
            Some(&report.bad_status),
            "each 503 is counted, and is the bad status: {report}"
        );
        // Four 200s before each 503 on a connection, and at most four more on each of the 4
        // connections the run ended before their 503.
        let oks = report.statuses.get(&200).copied().unwrap_or(0);
        let bad = report.bad_status;
        assert!(oks >= 4 * bad && oks <= 4 * bad + 16, "{report}");
        assert_eq!(report.statuses.len(), 2, "{report}");
    }
}

/// `saythat load` (the binary) with `argv`, which must be a usage error (exit 2): its standard
/// error.
#[track_caller]
fn usage_error(argv: &[&str]) -> String {
    let output = run_to_end(saythat(argv), None, TIMEOUT);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{argv:?}: {}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout: {:?}\nstderr: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_query_that_is_not_query_text_or_without_http_is_refused_with_exit_2() {
    for (query, framing, says) in [
        ("a b", "http", "a space at byte 1"),
        ("a\r\nb", "http", "'\\r' at byte 1"),
        ("a\nb", "http", "'\\n' at byte 1"),
        ("delay=1ms#x", "http", "`#` at byte 9"),
        ("é=1", "http", "'é' at byte 0"),
        ("", "http", "it is empty"),
        ("?status=503", "http", "give the text after the `?`"),
        ("status=503", "chunk", "only HTTP requests have a query"),
    ] {
        let argv = [
            "load",
            "--addr",
            "127.0.0.1:9",
            "--framing",
            framing,
            "--query",
            query,
        ];
        let stderr = usage_error(&argv);
        assert!(
            stderr.contains("--query") && stderr.contains(says),
            "{query:?}: {stderr}"
        );
    }
    let long = "a".repeat(4097);
    let argv = ["load", "--framing", "http", "--query", &long];
    assert!(usage_error(&argv).contains("at most 4096"));
}

#[test]
fn a_query_built_in_code_meets_the_same_checks() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut a = args(addr, &[]);
    a.query = Some("a b".to_string());
    let err = load::run(&a).expect_err("a space is no query text");
    assert!(err.to_string().contains("a space at byte 1"), "{err}");
    a.query = Some("status=503".to_string());
    a.framing = load::LoadFraming::Chunk;
    let err = load::run(&a).expect_err("no query in echo");
    assert!(err.to_string().contains("cannot use --query"), "{err}");
}

/// The echo of `message` cut or padded (with saythat's filler) to `len` bytes, `200 OK`.
fn sized(len: usize, message: &[u8]) -> Vec<u8> {
    let mut body = [PREFIX, message].concat();
    let filler = FILLER_LINE
        .iter()
        .cycle()
        .take(len.saturating_sub(body.len()));
    body.extend(filler);
    body.truncate(len);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
    [head.as_bytes(), &body].concat()
}

/// A JSON description of `GET /PATH` with no body, `200 OK`, as a test backend's `format=json`.
fn described(path: &str) -> Vec<u8> {
    let json = serde_json::json!({
        "method": "GET", "target": format!("{path}?format=json"), "path": path,
        "query": [["format", "json"]], "version": "HTTP/1.1", "body": "", "worker": 0
    });
    let body = serde_json::to_vec(&json).expect("JSON");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), &body].concat()
}

/// Runs 200 messages on one connection against a server answering with `answer`, asking
/// `query`: the report.
fn run_asking(query: &str, answer: fn(usize, &[u8]) -> Vec<u8>) -> LoadReport {
    run_for(query, answer, "30")
}

/// `run_asking` for answers that never pass: half a second is errors enough.
fn run_failing(query: &str, answer: fn(usize, &[u8]) -> Vec<u8>) -> LoadReport {
    run_for(query, answer, "0.5")
}

fn run_for(query: &str, answer: fn(usize, &[u8]) -> Vec<u8>, secs: &str) -> LoadReport {
    let flags = [
        "--query",
        query,
        "--conns",
        "1",
        "--messages",
        "200",
        "--duration",
        secs,
    ];
    match load::run(&args(serve(None, answer), &flags)) {
        Ok(report) => {
            println!("{report}");
            report
        }
        Err(e) => panic!("the run could not start: {e}"),
    }
}

/// The run failed with `errors` of one kind, and its first error says `says`.
fn assert_failed(report: &LoadReport, says: &str) {
    assert!(report.failure().is_some(), "{report}");
    assert!(report.errors > 0, "{report}");
    let first = report.first_errors.first().expect("an error sampled");
    assert!(first.contains(says), "{first}\n{report}");
}

#[test]
fn answers_as_the_query_asks_pass_and_others_fail_naming_what_is_wrong() {
    // Statuses: 503 asked, 500 not.
    let report = run_asking("status=503:20", flaky);
    assert_eq!((report.messages, report.errors), (200, 0), "{report}");
    let report = run_failing("status=503:20", |n, m| match n % 5 {
        4 => echo("500 Internal Server Error", m),
        _ => echo("200 OK", m),
    });
    assert_eq!(report.bad_status, report.errors, "{report}");
    assert_failed(
        &report,
        "status `500 Internal Server Error` where 200 or 503 (asked by --query) was expected",
    );

    // Sizes: 5 and 100 asked, with a rest of the echo (13 + 64 bytes); 99 is none of them.
    let report = run_asking("size=5:30,100:30", |n, m| match n % 3 {
        0 => sized(5, m),
        1 => sized(100, m),
        _ => sized(77, m),
    });
    assert_eq!((report.messages, report.errors), (200, 0), "{report}");
    let report = run_failing("size=5:30,100:30", |n, m| {
        sized(if n < 3 { 100 } else { 99 }, m)
    });
    assert_eq!(report.wrong, report.errors, "{report}");
    assert_failed(
        &report,
        "`Content-Length: 99` where 77 (prefix and message) or one of 5, 100 (asked by size) \
         was expected",
    );
    // A right length with the echo's bytes wrong.
    let report = run_failing("size=100", |_, m| {
        let mut answer = sized(100, m);
        let at = answer.len() - 100 + 20;
        answer[at] = b'#';
        answer
    });
    assert_failed(&report, "got '#'");

    // A JSON description: of the request sent, or of another path, or no JSON at all.
    let report = run_asking("format=json", |_, m| {
        described(&format!("/{}", String::from_utf8_lossy(m)))
    });
    assert_eq!((report.messages, report.errors), (200, 0), "{report}");
    let report = run_failing("format=json", |_, _| described("/elsewhere"));
    assert_failed(&report, "the JSON description's path is \"/elsewhere\"");
    let report = run_failing("format=json", ok);
    assert_failed(&report, "the JSON description does not parse");
}

#[test]
fn a_query_whose_controls_the_server_would_refuse_exits_2_with_the_servers_reason() {
    for (query, says) in [
        ("status=abc", "control status"),
        ("delay=5parsecs", "control delay"),
        ("status=503:60,429:60", "control status"),
        ("size=-1", "control size"),
        ("format=json&size=10", "leave one of them out"),
    ] {
        let argv = [
            "load",
            "--addr",
            "127.0.0.1:9",
            "--framing",
            "http",
            "--query",
            query,
        ];
        let stderr = usage_error(&argv);
        assert!(
            stderr.contains(&format!("invalid --query {query:?}")) && stderr.contains(says),
            "{query}: {stderr}"
        );
    }
}

#[test]
fn against_saythat_answers_as_asked_pass_and_both_statuses_are_counted() {
    let server = TestServer::start(&Config {
        framing: FramingKind::Http,
        ..Config::loopback()
    });
    let flags = [
        "--query",
        "status=503:50",
        "--pipeline",
        "4",
        "--messages",
        "2000",
    ];
    let report = load_ok(&args(server.addr(), &flags));
    assert_eq!((report.messages, report.errors), (2000, 0), "{report}");
    let (oks, unavailable) = (report.statuses[&200], report.statuses[&503]);
    assert!(oks + unavailable >= 2000, "{report}");
    // Half of each, drawn: the two differ by about 45 (one standard deviation); by 400 almost
    // never.
    assert!(oks.abs_diff(unavailable) < 400, "{report}");

    // Each other control the checker reads, alone and together, by GET and POST.
    for (method, query) in [
        ("get", "size=8:30,300:30"),
        ("post", "size=5000&status=503:10"),
        ("get", "format=json"),
        ("post", "format=json&status=201:50"),
        ("get", "status=204:40,304:20,103:10"),
        ("post", "drip=50:1ms&size=120:50"),
        ("get", "delay=1ms&status=503:25,429:25&size=1:50"),
    ] {
        let flags = ["--method", method, "--query", query, "--messages", "200"];
        let report = load_ok(&args(server.addr(), &flags));
        assert_eq!(
            (report.messages, report.errors),
            (200, 0),
            "{query}: {report}"
        );
    }
}

/// `saythat load --json` (the binary) against `addr` with `--query query` and `extra` flags, by
/// default 4 connections, no warmup, 400 messages within 30 s: its exit code and report.
fn load_binary(addr: SocketAddr, query: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let addr = addr.to_string();
    let mut argv = vec![
        "load",
        "--addr",
        &addr,
        "--framing",
        "http",
        "--query",
        query,
        "--json",
    ];
    for default in [
        ["--warmup", "0"],
        ["--duration", "30"],
        ["--conns", "4"],
        ["--messages", "400"],
    ] {
        if !extra.contains(&default[0]) {
            argv.extend(default);
        }
    }
    argv.extend(extra);
    let output = run_to_end(saythat(&argv), None, Duration::from_secs(60));
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{query}: no JSON report ({e}): {}", describe(&output)));
    println!("{query} {extra:?}: {report}");
    (output.status.code(), report)
}

/// A count of the report.
fn count(report: &serde_json::Value, field: &str) -> u64 {
    field
        .split('.')
        .fold(report, |v, key| &v[key])
        .as_u64()
        .unwrap_or_else(|| panic!("no count {field} in {report}"))
}

/// The closes and resets `saythat serve` is asked for are right: counted in `faults_asked`, none
/// an error, each connection opened again, about the share asked, and the run goes on to its
/// 400 messages. Pipelined messages behind a fault are lost with it, counted too.
#[test]
fn against_saythat_asked_closes_and_resets_are_counted_apart_and_the_run_goes_on() {
    let server = ServerProcess::serve(&["--framing", "http"]);
    for (query, fault) in [
        ("close=30", "close"),
        ("reset=30", "reset"),
        ("reset=30:body", "reset"),
        ("reset=30:body&size=3000&drip=1000:1ms", "reset"),
        ("close=30&status=204:50", "close"),
    ] {
        for pipeline in ["1", "4"] {
            let (code, r) = load_binary(server.addr(), query, &["--pipeline", pipeline]);
            assert_eq!((code, count(&r, "errors")), (Some(0), 0), "{query}: {r}");
            let (messages, faults) = (
                count(&r, "messages"),
                count(&r, &format!("faults_asked.{fault}")),
            );
            let lost = count(&r, "faults_asked.lost");
            // Every message sent was answered, or ended by the fault asked, or lost behind one.
            let ended = if fault == "reset" { faults } else { 0 };
            assert_eq!(messages + ended + lost, 400, "{query}: {r}");
            if pipeline == "1" {
                assert_eq!(lost, 0, "{query}: nothing pipelined: {r}");
                // 30 % asked of 400: about 120, give or take 9 (one standard deviation).
                let of = if fault == "reset" { 400 } else { messages };
                assert!(
                    (of * 15 / 100..=of * 45 / 100).contains(&faults),
                    "{query}: {r}"
                );
            }
            assert!(count(&r, "reconnects") + 4 >= faults, "{query}: {r}");
            let other = if fault == "close" { "reset" } else { "close" };
            assert_eq!(
                count(&r, &format!("faults_asked.{other}")),
                0,
                "{query}: {r}"
            );
        }
    }
    // Every answer closes: each of the 400 is still answered, one per connection opened.
    let (code, r) = load_binary(server.addr(), "close=100", &[]);
    assert_eq!((code, count(&r, "errors")), (Some(0), 0), "{r}");
    assert_eq!(count(&r, "messages"), 400, "{r}");
    assert_eq!(count(&r, "faults_asked.close"), 400, "{r}");
    assert!(count(&r, "reconnects") >= 396, "{r}");
    // The text report has its own line for them.
    let addr = server.addr().to_string();
    let argv = [
        "load",
        "--addr",
        &addr,
        "--framing",
        "http",
        "--query",
        "reset=50",
        "--warmup",
        "0",
        "--conns",
        "2",
        "--messages",
        "100",
    ];
    let output = run_to_end(saythat(&argv), None, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.trim_start().starts_with("faults"));
    let line = line.unwrap_or_else(|| panic!("no faults line: {text}"));
    assert!(
        line.contains("asked by --query, not errors: 0 close, ")
            && line.contains(" reset, 0 pipelined message(s) lost with them"),
        "{line}"
    );
}

/// A close or a reset the query did not ask for is still an error: saythat made to fault every
/// third answer or so by `--http-defaults` (applied to requests carrying no control, as these
/// carry `x=1` only).
#[test]
fn faults_the_query_did_not_ask_for_are_errors() {
    for (defaults, field) in [
        ("reset=30", "closed_early"),
        ("close=30", "connection_close"),
    ] {
        let server = ServerProcess::serve(&["--framing", "http", "--http-defaults", defaults]);
        let (code, r) = load_binary(server.addr(), "x=1", &["--duration", "1"]);
        assert_eq!(code, Some(1), "{defaults}: {r}");
        assert!(count(&r, field) > 0, "{defaults}: {r}");
        assert_eq!(count(&r, "errors"), count(&r, field), "{defaults}: {r}");
        assert_eq!(
            r["faults_asked"],
            serde_json::json!({"close": 0, "reset": 0, "lost": 0})
        );
    }
}

/// Every 4th answer of a connection reset before its head, else the echo.
fn reset_before_head(n: usize, message: &[u8]) -> Vec<u8> {
    match n % 4 {
        3 => RESET.to_vec(),
        _ => echo("200 OK", message),
    }
}

/// Every 4th answer of a connection reset after its head and half its body, else the echo.
fn reset_mid_body(n: usize, message: &[u8]) -> Vec<u8> {
    let answer = echo("200 OK", message);
    match n % 4 {
        3 => [RESET, &answer[..answer.len() - 20]].concat(),
        _ => answer,
    }
}

/// A reset is asked for where the query says: before the head (`reset=N`) or in the body
/// (`reset=N:body`), each counted against a server resetting there; elsewhere it is an error.
#[test]
fn a_reset_counts_as_asked_only_where_the_query_asks_it() {
    for (query, answer, asked) in [
        (
            "reset=25",
            reset_before_head as fn(usize, &[u8]) -> Vec<u8>,
            true,
        ),
        ("reset=25:body", reset_mid_body, true),
        ("reset=25", reset_mid_body, false),
        ("reset=25:body", reset_before_head, false),
        ("close=25", reset_before_head, false),
    ] {
        let (code, r) = load_binary(serve(None, answer), query, &["--duration", "2"]);
        if asked {
            assert_eq!((code, count(&r, "errors")), (Some(0), 0), "{query}: {r}");
            assert_eq!(
                count(&r, "messages") + count(&r, "faults_asked.reset"),
                400,
                "{r}"
            );
            // Each 4th on a connection: a quarter of 400, less up to 3 on each connection
            // the budget ran out on before its next reset.
            let resets = count(&r, "faults_asked.reset");
            assert!((97..=100).contains(&resets), "each 4th: {r}");
        } else {
            assert_eq!(code, Some(1), "{query}: {r}");
            assert!(count(&r, "closed_early") > 0, "{query}: {r}");
            assert_eq!(count(&r, "faults_asked.reset"), 0, "{query}: {r}");
            let first = r["first_errors"][0].as_str().unwrap_or_default();
            assert!(first.contains("the connection failed"), "{query}: {first}");
        }
    }
}

/// A `--timeout` no longer than the longest answer the query asks for would count each of those
/// as a timeout: refused at start with exit 2, saying by how much and what to do.
#[test]
fn a_timeout_not_longer_than_the_delay_asked_is_refused_with_exit_2() {
    for (query, timeout, says) in [
        (
            "delay=2s",
            "1",
            "--timeout 1s is not longer than the largest delay asked: 2s in --query; raise \
             --timeout",
        ),
        (
            "delay=10ms:90,2s:10&status=503:5",
            "2",
            "--timeout 2s is not longer than the largest delay asked: 2s in --query; raise \
             --timeout",
        ),
        (
            "x-set-response-delay-ms=1500",
            "0.5",
            "--timeout 0.5s is not longer than the largest delay asked: 1.5s in --query",
        ),
        (
            "delay=1s&drip=10:100ms&size=100",
            "2",
            "--timeout 2s is not longer than the longest answer asked: 2s in --query (a delay \
             of up to 1s, then 10 drip(s) of the longest body, one every 100ms); raise --timeout",
        ),
    ] {
        let argv = [
            "load",
            "--addr",
            "127.0.0.1:9",
            "--framing",
            "http",
            "--query",
            query,
            "--timeout",
            timeout,
        ];
        let stderr = usage_error(&argv);
        assert!(stderr.contains(says), "{query}: {stderr}");
    }
    // A longer one runs, and its delayed answers all come.
    let server = ServerProcess::serve(&["--framing", "http"]);
    let (code, r) = load_binary(
        server.addr(),
        "delay=200ms",
        &["--timeout", "0.5", "--messages", "8"],
    );
    assert_eq!(
        (code, count(&r, "errors"), count(&r, "messages")),
        (Some(0), 0, 8),
        "{r}"
    );
}
