//! HTTP mode, the answers and the connection semantics of the wire contract
//! (the README's HTTP mode section): the lesson's two examples, HEAD, OPTIONS, the exact header bytes,
//! keep-alive and close, HTTP/1.0, pipelining, a request dribbled a byte at a time, chunked
//! bodies, 100-continue and the idle timeout, all over real loopback sockets and byte for byte
//! (only the `Date` value is masked, after its format is checked).
//!
//! The refusals are in http_errors.rs, the large and many-client cases in http_limits.rs, and
//! real clients this project did not write in http_clients.rs.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::http::*;
use common::{expect_eof, read_to_eof, send, show, TestServer, PREFIX};
use saythat::Config;

// ---------------------------------------------------------------------------------------------
// Answers

#[test]
fn lesson_post_body_is_answered_with_the_prefix() {
    let server = start_http();
    let mut client = server.connect();
    let request = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 35\r\n\r\nHello? anyone is there? I am client";
    send(&mut client, request);
    let expected = [
        b"HTTP/1.1 200 OK\r\n".as_slice(),
        b"Server: saythat/",
        env!("CARGO_PKG_VERSION").as_bytes(),
        b"\r\nDate: ",
        MASK,
        b"\r\nContent-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: 48\r\n",
        b"\r\n",
        b"You say that Hello? anyone is there? I am client",
    ]
    .concat();
    expect_answer(&mut client, &expected);
    // Built by hand above, and by the helper the other tests use: they agree.
    assert_eq!(
        expected,
        ok(b"You say that Hello? anyone is there? I am client")
    );
}

#[test]
fn lesson_get_path_is_percent_decoded() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"GET /Hello%3F%20anyone HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &ok(b"You say that Hello? anyone"),
    );
}

#[test]
fn get_query_string_is_dropped() {
    let server = start_http();
    let mut client = server.connect();
    exchange(&mut client, &get("/hi?x=1"), &ok(b"You say that hi"));
    exchange(&mut client, &get("/?x=1"), &ok(b"You say that "));
    exchange(&mut client, &get("/a%3Fb?c%3Fd"), &ok(b"You say that a?b"));
}

#[test]
fn percent_decoding_takes_either_case_and_nothing_else() {
    let server = start_http();
    let mut client = server.connect();
    // Either case of hex; `+` is not a space outside forms; `%2F` is a slash; any byte value.
    exchange(
        &mut client,
        &get("/%3f%3F%41+b"),
        &ok(b"You say that ??A+b"),
    );
    exchange(&mut client, &get("/a%2Fb/c"), &ok(b"You say that a/b/c"));
    exchange(&mut client, &get("/%00%ff"), &ok(b"You say that \0\xff"));
}

#[test]
fn every_answer_carries_the_exact_header_bytes() {
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, &get("/x"));
    let response = read_response(&mut client, false);
    let expected = format!(
        "HTTP/1.1 200 OK\r\nServer: saythat/{}\r\nDate: DDD, DD MMM YYYY HH:MM:SS GMT\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        response.head == expected.as_bytes(),
        "head \"{}\"",
        show(&response.head)
    );
    assert_eq!(response.body, b"You say that x");
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, &get("/Hello%3F%20anyone"));
    let get_answer = read_response(&mut client, false);
    send(
        &mut client,
        b"HEAD /Hello%3F%20anyone HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let head_answer = read_response(&mut client, true);
    assert!(
        head_answer.head == get_answer.head,
        "HEAD \"{}\" vs GET \"{}\"",
        show(&head_answer.head),
        show(&get_answer.head)
    );
    assert_eq!(head_answer.head, ok_head(26, Conn::Persist));
    // No body came: the next bytes on the connection are the next answer.
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));

    // A HEAD with a body: the body is read and dropped, the length is what GET would say.
    exchange(
        &mut client,
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        &ok_head(18, Conn::Persist),
    );
    exchange(&mut client, &get("/again"), &ok(b"You say that again"));
}

#[test]
fn options_is_204_with_allow_and_no_length() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n",
        &options_answer(Conn::Persist),
    );
    exchange(
        &mut client,
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        &options_answer(Conn::Persist),
    );
    // A body is read and dropped.
    exchange(
        &mut client,
        b"OPTIONS / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        &options_answer(Conn::Persist),
    );
    exchange(&mut client, &get("/after"), &ok(b"You say that after"));
    // Byte for byte, from the spec: no Content-Length (nor Content-Type).
    let expected = format!(
        "HTTP/1.1 204 No Content\r\nServer: saythat/{}\r\nDate: DDD, DD MMM YYYY HH:MM:SS GMT\r\n\
         Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    send(
        &mut client,
        b"OPTIONS /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    expect_answer_then_eof(&mut client, expected.as_bytes());
}

#[test]
fn other_methods_are_answered_like_get_and_post() {
    let server = start_http();
    let mut client = server.connect();
    for method in ["PUT", "PATCH", "DELETE", "BREW"] {
        exchange(
            &mut client,
            format!("{method} /{method} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
            &ok(format!("You say that {method}").as_bytes()),
        );
        exchange(
            &mut client,
            format!("{method} / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc").as_bytes(),
            &ok(b"You say that abc"),
        );
    }
}

#[test]
fn absolute_form_target_is_echoed_by_its_path() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"GET http://example.com/abs%21?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
        &ok(b"You say that abs!"),
    );
}

#[test]
fn empty_prefix_is_a_plain_echo() {
    let server = TestServer::start(&Config {
        prefix: String::new(),
        ..http_config()
    });
    let mut client = server.connect();
    exchange(
        &mut client,
        &get("/Hello%3F%20anyone"),
        &ok(b"Hello? anyone"),
    );
    exchange(&mut client, &post(b"plain echo"), &ok(b"plain echo"));
    exchange(&mut client, &get("/"), &ok(b""));
    // Chunked: no empty chunk for the empty prefix (it would end the answer).
    let request = [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"5\r\nhello\r\n0\r\n\r\n",
    ]
    .concat();
    let expected = [&chunked_head(Conn::Persist)[..], b"5\r\nhello\r\n0\r\n\r\n"].concat();
    exchange(&mut client, &request, &expected);
    exchange(&mut client, &get("/next"), &ok(b"next"));
}

#[test]
fn binary_body_bytes_pass_through_verbatim() {
    let server = start_http();
    let mut client = server.connect();
    let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    exchange(&mut client, &post(&body), &ok(&[PREFIX, &body].concat()));
}

// ---------------------------------------------------------------------------------------------
// Connections

#[test]
fn http11_persists_and_answers_in_order() {
    let server = start_http();
    let mut client = server.connect();
    exchange(&mut client, &get("/one"), &ok(b"You say that one"));
    exchange(&mut client, &post(b"two"), &ok(b"You say that two"));
    exchange(&mut client, &get("/three"), &ok(b"You say that three"));
    drop(client);
    let summary = server.shutdown();
    assert_eq!(summary.accepted, 1, "one connection for three requests");
}

#[test]
fn connection_close_is_answered_then_closed() {
    let server = start_http();
    let mut client = server.connect();
    send(
        &mut client,
        b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    expect_answer_then_eof(&mut client, &ok_conn(b"You say that bye", Conn::Close));

    // Among other options, in any case.
    let mut client = server.connect();
    send(
        &mut client,
        b"GET /bye HTTP/1.1\r\nHost: a\r\nconnection: Upgrade, CLOSE\r\n\r\n",
    );
    expect_answer_then_eof(&mut client, &ok_conn(b"You say that bye", Conn::Close));
}

#[test]
fn http10_closes_after_its_answer() {
    let server = start_http();
    let mut client = server.connect();
    // HTTP/1.0 needs no Host.
    send(&mut client, b"GET /old HTTP/1.0\r\n\r\n");
    expect_answer_then_eof(&mut client, &ok_conn(b"You say that old", Conn::Close));

    let mut client = server.connect();
    send(
        &mut client,
        b"POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\nbody",
    );
    expect_answer_then_eof(&mut client, &ok_conn(b"You say that body", Conn::Close));
}

#[test]
fn http10_keep_alive_persists() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        &ok_conn(b"You say that one", Conn::KeepAlive),
    );
    exchange(
        &mut client,
        b"POST / HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\ntwo",
        &ok_conn(b"You say that two", Conn::KeepAlive),
    );
    // Without it, the next one ends the connection.
    send(&mut client, b"GET /three HTTP/1.0\r\n\r\n");
    expect_answer_then_eof(&mut client, &ok_conn(b"You say that three", Conn::Close));
}

/// `n` requests, each a GET or a POST (alternating), numbered so a reordering shows.
fn pipeline(n: usize, close_at: Option<usize>) -> (Vec<u8>, Vec<u8>) {
    let mut requests = Vec::new();
    let mut answers = Vec::new();
    for i in 1..=n {
        let close = close_at == Some(i);
        let conn_field = if close { "Connection: close\r\n" } else { "" };
        let said = format!("request {i}");
        if i % 2 == 0 {
            requests.extend_from_slice(
                format!(
                    "POST / HTTP/1.1\r\nHost: a\r\n{conn_field}Content-Length: {}\r\n\r\n{said}",
                    said.len()
                )
                .as_bytes(),
            );
        } else {
            requests.extend_from_slice(
                format!("GET /request%20{i} HTTP/1.1\r\nHost: a\r\n{conn_field}\r\n").as_bytes(),
            );
        }
        if close_at.is_none_or(|at| i <= at) {
            let conn = if close { Conn::Close } else { Conn::Persist };
            answers.extend_from_slice(&ok_conn(format!("You say that {said}").as_bytes(), conn));
        }
    }
    (requests, answers)
}

#[test]
fn a_hundred_pipelined_requests_are_answered_in_order() {
    let server = start_http();
    let mut client = server.connect();
    let (requests, answers) = pipeline(100, None);
    send(&mut client, &requests);
    expect_answer(&mut client, &answers);
    // And the connection is still good.
    exchange(&mut client, &get("/more"), &ok(b"You say that more"));
}

#[test]
fn connection_close_inside_a_pipeline_ends_it_there() {
    let server = start_http();
    let mut client = server.connect();
    let (requests, answers) = pipeline(100, Some(50));
    send(&mut client, &requests);
    let got = read_to_eof(&mut client);
    assert_eq!(count_answers(&got), 50, "answers: \"{}\"", show(&got));
    assert_answers(&got, &answers);
}

#[test]
fn a_request_dribbled_one_byte_per_write_is_answered() {
    let server = start_http();
    let mut client = server.connect();
    let body = b"Hello? anyone is there? I am client";
    // The head, then the body, then a second request, every byte its own segment (TCP_NODELAY).
    let wire = [&post(body)[..], &get("/and%20more")].concat();
    for byte in &wire {
        client.write_all(&[*byte]).expect("write one byte");
    }
    let expected = [
        &ok(&[PREFIX, body].concat())[..],
        &ok(b"You say that and more"),
    ]
    .concat();
    expect_answer(&mut client, &expected);
}

#[test]
fn a_chunked_request_dribbled_one_byte_per_write_is_answered() {
    let server = start_http();
    let mut client = server.connect();
    let body = b"dribbled chunked body";
    let wire = [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        &chunked(body, &[4, 7]),
    ]
    .concat();
    for byte in &wire {
        client.write_all(&[*byte]).expect("write one byte");
    }
    let response = read_response(&mut client, false);
    assert_eq!(response.head, chunked_head(Conn::Persist));
    assert!(
        response.body == [PREFIX, body].concat(),
        "body \"{}\"",
        show(&response.body)
    );
    exchange(&mut client, &get("/next"), &ok(b"You say that next"));
}

#[test]
fn a_chunked_request_gets_a_chunked_answer_exactly() {
    let server = start_http();
    let mut client = server.connect();
    let request =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let expected = [
        &chunked_head(Conn::Persist)[..],
        b"d\r\nYou say that \r\n",
        b"5\r\nhello\r\n",
        b"0\r\n\r\n",
    ]
    .concat();
    exchange(&mut client, request, &expected);
    // Extensions and trailers are accepted and dropped, upper-case hex too.
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nA;name=value\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
    let response = read_response_after(&mut client, request);
    assert_eq!(response.head, chunked_head(Conn::Persist));
    assert_eq!(response.body, b"You say that 0123456789");
    exchange(&mut client, &get("/next"), &ok(b"You say that next"));
}

fn read_response_after(client: &mut std::net::TcpStream, request: &[u8]) -> Response {
    send(client, request);
    read_response(client, false)
}

#[test]
fn chunked_bodies_of_many_chunks_are_echoed_whole() {
    let server = start_http();
    let mut client = server.connect();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let wire = [&head[..], &chunked(&body, &[1, 100, 4096, 17, 65536, 3])].concat();
    // Written by another thread: the answer streams back while the body still arrives.
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = std::thread::spawn(move || writer.write_all(&wire).expect("send the body"));
    let response = read_response(&mut client, false);
    sender.join().expect("the writer");
    assert_eq!(response.head, chunked_head(Conn::Persist));
    assert!(
        response.body == [PREFIX, &body].concat(),
        "the echoed body differs ({} bytes vs {})",
        response.body.len(),
        PREFIX.len() + body.len()
    );
    // The answer's first chunk is the prefix alone.
    assert!(
        response.wire.starts_with(b"d\r\nYou say that \r\n"),
        "\"{}\"",
        show(&response.wire[..64.min(response.wire.len())])
    );
    let (decoded, used) = decode_chunked(&response.wire).expect("a well-formed chunked answer");
    assert_eq!(
        (decoded, used),
        (response.body.clone(), response.wire.len())
    );

    // Chunked with Connection: close: the answer ends with the last chunk, then EOF.
    send(
        &mut client,
        &[
            &b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &chunked(b"last words", &[4]),
        ]
        .concat(),
    );
    let got = read_to_eof(&mut client);
    let head = chunked_head(Conn::Close);
    assert_answers(&got[..head.len().min(got.len())], &head);
    let (decoded, used) = decode_chunked(&got[head.len()..]).expect("a chunked answer");
    assert_eq!(decoded, b"You say that last words");
    assert_eq!(used, got.len() - head.len(), "bytes after the last chunk");
}

#[test]
fn an_empty_chunked_body_is_answered_with_the_prefix() {
    let server = start_http();
    let mut client = server.connect();
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let expected = [
        &chunked_head(Conn::Persist)[..],
        b"d\r\nYou say that \r\n0\r\n\r\n",
    ]
    .concat();
    exchange(&mut client, request, &expected);
}

#[test]
fn expect_100_continue_waits_for_the_body() {
    let server = start_http();
    let mut client = server.connect();
    send(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 35\r\n\r\n",
    );
    common::expect_bytes(&mut client, b"HTTP/1.1 100 Continue\r\n\r\n");
    exchange(
        &mut client,
        b"Hello? anyone is there? I am client",
        &ok(b"You say that Hello? anyone is there? I am client"),
    );

    // Chunked too.
    send(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    common::expect_bytes(&mut client, b"HTTP/1.1 100 Continue\r\n\r\n");
    send(&mut client, b"3\r\nabc\r\n0\r\n\r\n");
    let response = read_response(&mut client, false);
    assert_eq!(response.head, chunked_head(Conn::Persist));
    assert_eq!(response.body, b"You say that abc");
}

#[test]
fn expect_100_continue_with_the_body_already_sent_gets_no_100() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        &ok(b"You say that hello"),
    );
    // No body at all: nothing to continue.
    exchange(
        &mut client,
        b"GET /nobody HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        &ok(b"You say that nobody"),
    );
    // HTTP/1.0 cannot understand 100: ignored, even with the body still to come (the answer
    // may start before it; the exact bytes show no 100 among them).
    send(
        &mut client,
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    send(&mut client, b"hi");
    expect_answer_then_eof(&mut client, &ok_conn(b"You say that hi", Conn::Close));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_by_the_idle_timeout() {
    let server = TestServer::start(&Config {
        idle_timeout: 1,
        ..http_config()
    });
    let mut client = server.connect();
    exchange(&mut client, &get("/once"), &ok(b"You say that once"));
    let answered = Instant::now();
    expect_eof(&mut client);
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(3),
        "closed after {idle:?} idle (idle timeout 1 s)"
    );
    let summary = server.shutdown();
    assert_eq!(summary.closed_idle, 1, "closed_idle");
}
