//! Issue 17: HTTP mode as a test backend. A request asks, by its query or its `X-Saythat-*`
//! fields (and the aliases other echo servers use), for a status, a delay, a size, extra fields,
//! a slow body, a fault or a JSON description of itself; every answer is checked here byte for
//! byte over loopback, alone and in the combinations that interact, with the refusals' exact
//! bodies, pipelining behind a delay, the drain, and a thousand delays on one loop.

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::http::*;
use common::{
    connect, read_exact_timeout, read_to_eof, send, show, ServerProcess, TestServer, PREFIX,
};
use saythat::framing::http::control::{ControlLimits, Controls};

/// `HTTP/1.1 STATUS`, `Server`, the masked `Date`, then `fields` (each ending in CRLF) and the
/// empty line.
fn head(status: &str, fields: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nServer: saythat/{}\r\nDate: {}\r\n{fields}\r\n",
        env!("CARGO_PKG_VERSION"),
        std::str::from_utf8(MASK).unwrap()
    )
    .into_bytes()
}

/// A whole answer of `status` whose body is `body`, told by Content-Length.
fn answer(status: &str, body: &[u8], more: &str) -> Vec<u8> {
    let fields = format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{more}",
        body.len()
    );
    [head(status, &fields), body.to_vec()].concat()
}

/// The echo of `path` (decoded), as the body of a plain answer.
fn echo(path: &str) -> Vec<u8> {
    [PREFIX, path.as_bytes()].concat()
}

/// The filler a `size` past the echo is made of, from its first byte.
fn filler(len: usize) -> Vec<u8> {
    let line = b"saythat filler 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ\n";
    line.iter().copied().cycle().take(len).collect()
}

/// `GET target` with extra header `fields` (each ending in CRLF).
fn get_with(target: &str, fields: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: a\r\n{fields}\r\n").into_bytes()
}

/// Sends `request` on a new connection and reads one answer (`head_only`: no body).
fn ask(server: &TestServer, request: &[u8], head_only: bool) -> Response {
    let mut client = server.connect();
    send(&mut client, request);
    read_response(&mut client, head_only)
}

/// The whole answer as it came, the date masked.
fn whole(response: &Response) -> Vec<u8> {
    let body = if response.wire.is_empty() {
        &response.body
    } else {
        &response.wire
    };
    [response.head.clone(), body.clone()].concat()
}

/// Checks a response read by `read_response` (its date masked) is exactly `expected`.
#[track_caller]
fn same(got: &Response, expected: &[u8]) {
    assert_eq!(show(&whole(got)), show(expected));
}

/// Checks the head of a response read by `read_response` is exactly `expected`.
#[track_caller]
fn same_head(got: &Response, expected: &[u8]) {
    assert_eq!(show(&got.head), show(expected));
}

/// Reads until the end of the stream, or a reset: the bytes read, and how it ended.
fn read_until_end(stream: &mut TcpStream) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e.kind())),
        }
    }
}

/// The 400 body a refused control gets, as the control grammar words it.
fn refusal_line(query: &str) -> String {
    let mut controls = Controls::default();
    match controls.add_query(query.as_bytes(), &ControlLimits::default()) {
        Err(e) => e.to_string(),
        Ok(()) => panic!("{query} is accepted"),
    }
}

#[test]
fn status_keeps_the_echo_as_the_body() {
    let server = start_http();
    let got = ask(&server, &get("/hello?status=503"), false);
    same(&got, &answer("503 Service Unavailable", &echo("hello"), ""));
    let got = ask(&server, &get("/teapot?status=418"), false);
    same(&got, &answer("418 I'm a teapot", &echo("teapot"), ""));
    // A code without a registered reason keeps the space, as RFC 9112 allows.
    let got = ask(&server, &get("/x?status=599"), false);
    same(&got, &answer("599 ", &echo("x"), ""));
}

/// 1xx, 204 and 304 have no body (RFC 9110), nor a length; the connection goes on after them.
#[test]
fn statuses_without_a_body_send_none() {
    let server = start_http();
    let mut client = server.connect();
    for (status, line) in [
        (204, "204 No Content"),
        (304, "304 Not Modified"),
        (103, "103 Early Hints"),
    ] {
        send(&mut client, &get(&format!("/x?status={status}")));
        let got = read_response(&mut client, true);
        same_head(&got, &head(line, ""));
    }
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
}

#[test]
fn size_pads_the_echo_with_filler_or_cuts_it() {
    let server = start_http();
    let got = ask(&server, &get("/hello?size=100"), false);
    let body = [echo("hello"), filler(100 - echo("hello").len())].concat();
    same(&got, &answer("200 OK", &body, ""));
    let got = ask(&server, &get("/hello?size=5"), false);
    same(&got, &answer("200 OK", b"You s", ""));
    let got = ask(&server, &get("/hello?size=0"), false);
    same(&got, &answer("200 OK", b"", ""));
    // Far past the filler's own length, every byte where the pattern puts it.
    let got = ask(&server, &get("/?size=1048576"), false);
    assert_eq!(got.body.len(), 1 << 20);
    assert_eq!(
        got.body,
        [PREFIX.to_vec(), filler((1 << 20) - PREFIX.len())].concat()
    );
    // A HEAD is told the length a GET would get, and no body.
    let got = ask(
        &server,
        b"HEAD /hello?size=100 HTTP/1.1\r\nHost: a\r\n\r\n",
        true,
    );
    let fields = "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 100\r\n";
    same_head(&got, &head("200 OK", fields));
}

#[test]
fn header_adds_fields_whose_values_may_hold_commas() {
    let server = start_http();
    let got = ask(
        &server,
        &get("/x?header=A:1&header=B:x,%20y&header=X-Cache:HIT"),
        false,
    );
    let expected = answer("200 OK", &echo("x"), "A: 1\r\nB: x, y\r\nX-Cache: HIT\r\n");
    same(&got, &expected);
}

#[test]
fn the_controls_come_as_fields_too_in_any_case() {
    let server = start_http();
    let fields = "X-Saythat-Status: 503\r\nx-saythat-size: 20\r\nX-SAYTHAT-HEADER: A:b\r\n";
    let got = ask(&server, &get_with("/hi", fields), false);
    let body = [echo("hi"), filler(20 - echo("hi").len())].concat();
    same(&got, &answer("503 Service Unavailable", &body, "A: b\r\n"));
}

/// mendhak's `x-set-response-status-code` / `x-set-response-delay-ms` (field or query), and the
/// Gateway API's `X-Echo-Set-Header`, so existing suites work unchanged.
#[test]
fn the_aliases_of_other_echo_servers_work() {
    let server = start_http();
    let got = ask(
        &server,
        &get_with("/a", "x-set-response-status-code: 429\r\n"),
        false,
    );
    same(&got, &answer("429 Too Many Requests", &echo("a"), ""));
    let got = ask(&server, &get("/a?x-set-response-status-code=502"), false);
    same(&got, &answer("502 Bad Gateway", &echo("a"), ""));
    let sent = Instant::now();
    let got = ask(
        &server,
        &get_with("/a", "X-Set-Response-Delay-Ms: 150\r\n"),
        false,
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(150),
        "answered early"
    );
    same(&got, &answer("200 OK", &echo("a"), ""));
    let got = ask(&server, &get("/a?x-set-response-delay-ms=10"), false);
    same(&got, &answer("200 OK", &echo("a"), ""));
    let got = ask(
        &server,
        &get_with("/a", "X-Echo-Set-Header: K:V, K2:V2\r\n"),
        false,
    );
    same(&got, &answer("200 OK", &echo("a"), "K: V\r\nK2: V2\r\n"));
}

#[test]
fn delay_holds_the_answer_back_and_nothing_comes_before() {
    let server = start_http();
    let mut client = server.connect();
    let sent = Instant::now();
    send(&mut client, &get("/slow?delay=300ms"));
    common::expect_silence(&mut client, Duration::from_millis(200));
    let got = read_response(&mut client, false);
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "answered early"
    );
    same(&got, &answer("200 OK", &echo("slow"), ""));
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
}

#[test]
fn drip_sends_the_body_in_timed_chunks() {
    let server = start_http();
    let mut client = server.connect();
    let sent = Instant::now();
    // 17 bytes of echo in pieces of 4: five pieces, 50 ms apart, the first 50 ms after the head.
    send(&mut client, &get("/drip?drip=4:50ms"));
    let got = read_response(&mut client, false);
    assert!(
        sent.elapsed() >= Duration::from_millis(250),
        "dripped too fast"
    );
    let fields = "Content-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n";
    same_head(&got, &head("200 OK", fields));
    assert_eq!(show(&got.wire), "4\\r\\nYou \\r\\n4\\r\\nsay \\r\\n4\\r\\nthat\\r\\n4\\r\\n dri\\r\\n1\\r\\np\\r\\n0\\r\\n\\r\\n");
    // With a size: filler, dripped as well.
    send(&mut client, &get("/?drip=1000:1ms&size=2500"));
    let got = read_response(&mut client, false);
    assert_eq!(
        got.body,
        [PREFIX.to_vec(), filler(2500 - PREFIX.len())].concat()
    );
    // An HTTP/1.0 client cannot read chunks: the pieces go unframed, by Content-Length.
    send(
        &mut client,
        b"GET /old?drip=5:1ms HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let got = read_response(&mut client, false);
    assert_eq!(got.body, echo("old"));
    assert!(
        contains(&got.head, b"Content-Length: 16\r\n"),
        "{}",
        show(&got.head)
    );
}

#[test]
fn close_says_so_and_closes() {
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, &get("/bye?close=100"));
    let got = read_to_eof(&mut client);
    assert_answers(
        &got,
        &answer("200 OK", &echo("bye"), "Connection: close\r\n"),
    );
    // close=0 never closes.
    let mut client = server.connect();
    exchange(
        &mut client,
        &get("/stay?close=0"),
        &ok(b"You say that stay"),
    );
    exchange(&mut client, &get("/again"), &ok(b"You say that again"));
}

#[test]
fn reset_before_the_head_is_a_reset_and_nothing_else() {
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, &get("/x?reset=100"));
    let (got, end) = read_until_end(&mut client);
    assert_eq!(show(&got), "");
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
}

#[test]
fn reset_mid_body_cuts_the_body_halfway() {
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, &get("/x?reset=100:body&size=1000"));
    let (got, end) = read_until_end(&mut client);
    let full = answer(
        "200 OK",
        &[echo("x"), filler(1000 - echo("x").len())].concat(),
        "",
    );
    let head_len = full.len() - 1000;
    assert_answers(&got, &full[..head_len + 500]);
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
}

/// A request that asks for nothing among other answers is answered as it always was; earlier
/// answers of a pipeline reach the client before a reset does.
#[test]
fn answers_before_a_reset_are_written_first() {
    let server = start_http();
    let mut client = server.connect();
    send(
        &mut client,
        &[get("/one"), get("/two?reset=100"), get("/never")].concat(),
    );
    let (got, end) = read_until_end(&mut client);
    assert_answers(&got, &ok(b"You say that one"));
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
}

/// The combination that interacts most: the head waits for the delay, then a 503 says it will
/// close, its body drips, and the connection closes after it.
#[test]
fn delay_status_drip_and_close_together() {
    let server = start_http();
    let mut client = server.connect();
    let sent = Instant::now();
    send(
        &mut client,
        &get("/all?delay=200ms&status=503&drip=8:30ms&close=100"),
    );
    let got = read_to_eof(&mut client);
    // 200 ms, then 16 bytes in 2 drips 30 ms apart.
    assert!(
        sent.elapsed() >= Duration::from_millis(260),
        "{:?}",
        sent.elapsed()
    );
    let fields = "Content-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n";
    let body = "8\r\nYou say \r\n8\r\nthat all\r\n0\r\n\r\n";
    assert_answers(
        &got,
        &[
            head("503 Service Unavailable", fields),
            body.as_bytes().to_vec(),
        ]
        .concat(),
    );
}

/// Pipelined requests behind a delayed one wait for it (the connection stops reading), and
/// come back in order.
#[test]
fn pipelined_requests_wait_behind_a_delay_in_order() {
    let server = start_http();
    let mut client = server.connect();
    let sent = Instant::now();
    let pipeline = [
        get("/a?delay=200ms"),
        get("/b"),
        get("/c?status=201"),
        post(b"d"),
    ]
    .concat();
    send(&mut client, &pipeline);
    let expected = [
        ok(b"You say that a"),
        ok(b"You say that b"),
        answer("201 Created", &echo("c"), ""),
        ok(b"You say that d"),
    ]
    .concat();
    let got = read_exact_timeout(&mut client, expected.len());
    assert!(
        sent.elapsed() >= Duration::from_millis(200),
        "answered early"
    );
    assert_answers(&got, &expected);
}

/// A request body is read in full before a controlled answer goes out, however it arrives.
#[test]
fn a_body_is_echoed_under_its_controls_however_it_arrives() {
    let server = start_http();
    let mut client = server.connect();
    let request = b"POST /?status=202 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
    // In two pieces, the body cut, 50 ms apart.
    send(&mut client, &request[..request.len() - 5]);
    thread::sleep(Duration::from_millis(50));
    send(&mut client, &request[request.len() - 5..]);
    let got = read_response(&mut client, false);
    same(
        &got,
        &answer("202 Accepted", b"You say that hello world", ""),
    );
    // Chunked, with a size shorter than the echo.
    let head = "POST /?size=16 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    send(
        &mut client,
        &[head.as_bytes(), &chunked(b"hello world", &[3])].concat(),
    );
    let got = read_response(&mut client, false);
    same(&got, &answer("200 OK", b"You say that hel", ""));
}

/// Every refusal is a 400 whose body is the control's own line; it is not a protocol error, so
/// the connection goes on (a body sent with it is read and dropped).
#[test]
fn a_refused_control_is_a_400_with_its_line_and_the_connection_goes_on() {
    let server = start_http();
    let mut client = server.connect();
    let queries = [
        "status=abc",
        "status=600",
        "status=503:60,429:50",
        "delay=5parsecs",
        "delay=20s",
        "size=lots",
        "size=2000000",
        "header=no-colon",
        "header=Bad%20Name:x",
        "header=A:x%0d%0aInjected:1",
        "drip=0:10ms",
        "drip=16",
        "close=101",
        "reset=5:head",
        "format=xml",
    ];
    for query in queries {
        let line = refusal_line(query);
        send(&mut client, &get(&format!("/x?{query}")));
        let got = read_response(&mut client, false);
        same(&got, &answer("400 Bad Request", line.as_bytes(), ""));
    }
    // Two of the exact texts, as the README gives them.
    assert_eq!(
        refusal_line("delay=5parsecs"),
        "control delay: \"5parsecs\" is not a duration; use 150ms, 2s, 10us or weighted \
         1ms:50,10ms:45 (percent)\n"
    );
    assert_eq!(
        refusal_line("delay=20s"),
        "control delay: 20s is past --max-delay 10s; raise --max-delay or ask for less\n"
    );
    // A body with a refused control is dropped, and the next request is answered.
    let request = b"POST /?status=nope HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    send(&mut client, request);
    let got = read_response(&mut client, false);
    assert_eq!(got.body, refusal_line("status=nope").as_bytes());
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
}

/// Unknown parameters are ordinary query text; a request with none of the controls is answered
/// as it always was.
#[test]
fn other_query_text_is_ignored() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        &get("/q?foo=bar&statusx=1"),
        &ok(b"You say that q"),
    );
    exchange(
        &mut client,
        &get_with("/q", "X-Other: 1\r\n"),
        &ok(b"You say that q"),
    );
}

#[test]
fn format_json_describes_the_request() {
    let server = start_http();
    let mut client = server.connect();
    exchange(&mut client, &get("/first"), &ok(b"You say that first"));
    let request = "POST /p%20ath?format=json&a=1&a=2&b=%C3%A9 HTTP/1.1\r\nHost: a\r\n\
                   X-Odd-Case: one\r\nx-odd-case: two\r\nContent-Length: 4\r\n\r\nbody";
    send(&mut client, request.as_bytes());
    let got = read_response(&mut client, false);
    assert!(
        contains(&got.head, b"Content-Type: application/json\r\n"),
        "{}",
        show(&got.head)
    );
    let json: serde_json::Value = serde_json::from_slice(&got.body).expect("JSON");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["target"], "/p%20ath?format=json&a=1&a=2&b=%C3%A9");
    assert_eq!(json["path"], "/p ath");
    assert_eq!(
        json["query"],
        serde_json::json!([["format", "json"], ["a", "1"], ["a", "2"], ["b", "é"]])
    );
    assert_eq!(json["version"], "HTTP/1.1");
    assert_eq!(
        json["headers"],
        serde_json::json!([
            ["Host", "a"],
            ["X-Odd-Case", "one"],
            ["x-odd-case", "two"],
            ["Content-Length", "4"]
        ])
    );
    assert_eq!(json["body"], "body");
    assert_eq!(json["client"], "127.0.0.1");
    assert_eq!(json["peer"], client.local_addr().unwrap().to_string());
    // The second request on this connection.
    assert_eq!(json["request"], 2);
    assert_eq!(json["worker"], 0);
    assert_eq!(json["instance"], serde_json::Value::Null);
    // The same connection id for the next request on it, the next number.
    send(&mut client, &get("/?format=json"));
    let again: serde_json::Value =
        serde_json::from_slice(&read_response(&mut client, false).body).unwrap();
    assert_eq!(again["connection"], json["connection"]);
    assert_eq!(again["request"], 3);
    // Another connection has another id.
    let other = ask(&server, &get("/?format=json"), false);
    let other: serde_json::Value = serde_json::from_slice(&other.body).unwrap();
    assert_ne!(other["connection"], json["connection"]);
    assert_eq!(other["request"], 1);
}

/// A drain answers a request whose delay is running when it starts, with `Connection: close`,
/// then the server ends.
#[test]
fn a_drain_answers_a_delayed_request_when_its_delay_ends() {
    let server = start_http();
    let mut client = server.connect();
    let sent = Instant::now();
    send(&mut client, &get("/late?delay=400ms"));
    thread::sleep(Duration::from_millis(50));
    server.handle.shutdown();
    let got = read_to_eof(&mut client);
    assert!(
        sent.elapsed() >= Duration::from_millis(400),
        "answered early"
    );
    assert_answers(
        &got,
        &answer("200 OK", &echo("late"), "Connection: close\r\n"),
    );
    server.wait(common::DRAINED);
}

/// A thousand delayed answers on one loop: each a timer entry and a session, no thread; all come
/// back, in time (a generous bound: this is the small version of scripts/controls.sh).
#[test]
fn a_thousand_concurrent_delays_on_one_worker_are_all_answered() {
    const CLIENTS: usize = 1000;
    let delay = Duration::from_millis(200);
    let server = start_http();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.addr())).collect();
    let sent = Instant::now();
    for (i, client) in clients.iter_mut().enumerate() {
        send(client, &get(&format!("/{i}?delay=200ms")));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let expected = ok(format!("You say that {i}").as_bytes());
        assert_answers(&read_exact_timeout(client, expected.len()), &expected);
    }
    let took = sent.elapsed();
    assert!(took >= delay, "answered early");
    assert!(
        took < delay + Duration::from_secs(5),
        "{CLIENTS} delays took {took:?}"
    );
}

/// Sends `request` on a new connection to `server` (the binary) and reads one answer.
fn ask_process(server: &ServerProcess, request: &[u8], head_only: bool) -> Response {
    let mut client = server.connect();
    send(&mut client, request);
    read_response(&mut client, head_only)
}

/// `--no-controls`: a query is only query text again, a field only a field.
#[test]
fn no_controls_ignores_them() {
    let server = ServerProcess::serve(&http_args(&["--no-controls"]));
    let got = ask_process(&server, &get("/x?status=503&delay=5s&reset=100"), false);
    same(&got, &ok(b"You say that x"));
    let got = ask_process(&server, &get_with("/x", "X-Saythat-Status: 503\r\n"), false);
    same(&got, &ok(b"You say that x"));
}

/// `--http-defaults` applies to a request without controls of its own, and only to it.
#[test]
fn http_defaults_apply_only_to_requests_without_controls() {
    let server = ServerProcess::serve(&http_args(&["--http-defaults", "status=503&header=D:1"]));
    let got = ask_process(&server, &get("/plain"), false);
    same(
        &got,
        &answer("503 Service Unavailable", &echo("plain"), "D: 1\r\n"),
    );
    // Ordinary query text is no control: the defaults still apply.
    let got = ask_process(&server, &get("/q?foo=1"), false);
    same(
        &got,
        &answer("503 Service Unavailable", &echo("q"), "D: 1\r\n"),
    );
    // A request with a control of its own gets only its own.
    let got = ask_process(&server, &get("/own?status=201"), false);
    same(&got, &answer("201 Created", &echo("own"), ""));
}

/// `--instance`: every HTTP answer says which instance gave it, controlled or not, refusals
/// and OPTIONS included; `format=json` names it.
#[test]
fn instance_names_itself_on_every_answer() {
    let server = ServerProcess::serve(&http_args(&["--instance", "east-1"]));
    let served = |head: &[u8]| {
        contains(head, b"\r\nServer: saythat/") && contains(head, b"\r\nX-Served-By: east-1\r\n")
    };
    let mut client = server.connect();
    send(&mut client, &get("/plain"));
    let got = read_response(&mut client, false);
    assert!(served(&got.head), "{}", show(&got.head));
    assert_eq!(got.body, echo("plain"));
    send(&mut client, &get("/x?status=503"));
    assert!(served(&read_response(&mut client, false).head));
    send(&mut client, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(served(&read_response(&mut client, true).head));
    send(&mut client, &get("/?format=json"));
    let json: serde_json::Value =
        serde_json::from_slice(&read_response(&mut client, false).body).unwrap();
    assert_eq!(json["instance"], "east-1");
    send(&mut client, b"GET /x HTTP/1.1\r\n\r\n");
    let got = read_to_eof(&mut client);
    assert!(served(&got), "{}", show(&got));
    assert!(got.starts_with(b"HTTP/1.1 400 "), "{}", show(&got));
}

/// A description names the client behind a proxy only when the peer is a trusted one.
#[test]
fn format_json_believes_forwarded_for_only_from_a_trusted_proxy() {
    let request = get_with("/?format=json", "X-Forwarded-For: 203.0.113.7\r\n");
    let client_of = |server: &ServerProcess| {
        let got = ask_process(server, &request, false);
        let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        json["client"].as_str().unwrap_or_default().to_string()
    };
    let untrusting = ServerProcess::serve(&http_args(&[]));
    assert_eq!(client_of(&untrusting), "127.0.0.1");
    let trusting = ServerProcess::serve(&http_args(&["--trust-proxy", "127.0.0.0/8"]));
    assert_eq!(client_of(&trusting), "203.0.113.7");
}

/// `--max-delay` and `--max-size` bound the controls: past them, a 400 that names the flag.
#[test]
fn the_bounds_are_the_flags_and_the_refusal_names_them() {
    let server = ServerProcess::serve(&http_args(&["--max-delay", "1s", "--max-size", "1000"]));
    let got = ask_process(&server, &get("/x?delay=2s"), false);
    let line = "control delay: 2s is past --max-delay 1s; raise --max-delay or ask for less\n";
    same(&got, &answer("400 Bad Request", line.as_bytes(), ""));
    let got = ask_process(&server, &get("/x?size=1001"), false);
    assert!(
        got.head.starts_with(b"HTTP/1.1 400 "),
        "{}",
        show(&got.head)
    );
    assert!(contains(&got.body, b"--max-size"), "{}", show(&got.body));
    let got = ask_process(&server, &get("/x?size=1000"), false);
    assert_eq!(got.body.len(), 1000);
}

/// The value of the sample `series` (name and labels) in a scrape of `metrics`, 0 if absent.
fn sample(metrics: std::net::SocketAddr, series: &str) -> u64 {
    let mut scrape = connect(metrics);
    send(
        &mut scrape,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&read_to_eof(&mut scrape)).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// `/metrics` counts what the controls did: delays served, drips, resets and closes, and the
/// statuses they asked for.
#[test]
fn the_metrics_count_delays_drips_and_faults() {
    let server = TestServer::start(&saythat::Config {
        metrics_listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))],
        ..http_config()
    });
    let mut client = server.connect();
    exchange(&mut client, &get("/a?delay=10ms"), &ok(b"You say that a"));
    send(&mut client, &get("/b?drip=100:1ms&status=503"));
    read_response(&mut client, false);
    send(&mut client, &get("/c?close=100"));
    read_to_eof(&mut client);
    let mut client = server.connect();
    send(&mut client, &get("/d?reset=100"));
    assert_eq!(
        read_until_end(&mut client).1,
        Err(ErrorKind::ConnectionReset)
    );
    let metrics = server.metrics[0];
    let expected = [
        ("saythat_http_delayed_total", 1),
        ("saythat_http_dripped_total", 1),
        ("saythat_http_faults_total{kind=\"reset\"}", 1),
        ("saythat_http_faults_total{kind=\"close\"}", 1),
        ("saythat_http_responses_total{code=\"503\"}", 1),
        ("saythat_connections_closed_total{reason=\"aborted\"}", 1),
    ];
    common::wait_for(common::TIMEOUT, "the controls counted", || {
        expected
            .iter()
            .all(|&(series, n)| sample(metrics, series) == n)
            .then_some(())
    });
}

/// A staged request's body that stalls gets 408 after `--body-timeout`, as any other's.
#[test]
fn a_stalled_body_with_controls_times_out() {
    let server = ServerProcess::serve(&http_args(&["--body-timeout", "1"]));
    let mut client = server.connect();
    send(
        &mut client,
        b"POST /?status=201 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhal",
    );
    let got = read_to_eof(&mut client);
    assert!(got.starts_with(b"HTTP/1.1 408 "), "{}", show(&got));
    assert!(contains(&got, b"--body-timeout"), "{}", show(&got));
}

/// `--idle-timeout` still counts while an answer waits: nothing is read or written meanwhile,
/// so a delay past it closes the connection, unanswered.
#[test]
fn the_idle_timeout_still_applies_during_a_delay() {
    let server = ServerProcess::serve(&http_args(&["--idle-timeout", "1"]));
    let mut client = server.connect();
    let sent = Instant::now();
    send(&mut client, &get("/x?delay=5s"));
    let (got, _) = read_until_end(&mut client);
    assert_eq!(show(&got), "");
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
