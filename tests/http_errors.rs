//! HTTP mode, the refusals: every row of the error table of the wire contract
//! (the HTTP mode section of the README), one test per input. Each request is followed in the same write by a
//! complete second request, `GET /smuggled`, which must never be answered: the server answers
//! exactly one error (status line, the usual fields, `Connection: close`, a one-line body), then
//! closes cleanly (a lingering close: the client reads EOF, not a reset), and still serves the
//! next connection.

mod common;

use std::time::{Duration, Instant};

use common::http::*;
use common::{read_exact_timeout, read_to_eof, send, show, TestServer};
use saythat::Config;

const BAD: &str = "400 Bad Request";
const HEAD_TOO_LONG: &str = "431 Request Header Fields Too Large";
const TOO_LARGE: &str = "413 Content Too Large";
const VERSION: &str = "505 HTTP Version Not Supported";

fn small_body_limit() -> Config {
    Config {
        max_body: 16,
        ..http_config()
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes: 431, 414, 413

#[test]
fn head_longer_than_max_header_is_431() {
    // Complete, in one write, but 9 KiB of fields under the default 8 KiB limit.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n",
        "a".repeat(9000)
    );
    refused(request.as_bytes(), HEAD_TOO_LONG);
}

#[test]
fn head_that_never_ends_is_431_once_past_max_header() {
    let server = TestServer::start(&Config {
        max_header: 1024,
        ..http_config()
    });
    let mut client = server.connect();
    send(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n");
    // Field after field, never the empty line: refused once the head passes 1024 bytes.
    for i in 0..40 {
        let field = format!("X-Field-{i}: {}\r\n", "v".repeat(30));
        if !write_unless_closed(&mut client, field.as_bytes()) {
            break;
        }
    }
    expect_refusal(&mut client, HEAD_TOO_LONG);
}

/// Writes `bytes`; `false` if the server has already closed the connection (its refusal then
/// waits to be read). Any other failure fails the test.
#[track_caller]
fn write_unless_closed(stream: &mut std::net::TcpStream, bytes: &[u8]) -> bool {
    use std::io::{ErrorKind, Write};
    match stream.write_all(bytes) {
        Ok(()) => true,
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => false,
        Err(e) => panic!("cannot send \"{}\": {e}", show(bytes)),
    }
}

#[test]
fn a_large_max_header_admits_heads_longer_than_one_read() {
    // 40 KiB of fields and a 30 KiB request line: each head takes several reads to arrive.
    let server = TestServer::start(&Config {
        max_header: 65536,
        ..http_config()
    });
    let mut client = server.connect();
    let fields = format!(
        "GET /big%20head HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "f".repeat(40 * 1024)
    );
    exchange(
        &mut client,
        fields.as_bytes(),
        &ok(b"You say that big head"),
    );
    let path = "p".repeat(30 * 1024);
    exchange(
        &mut client,
        &get(&format!("/{path}")),
        &ok(format!("You say that {path}").as_bytes()),
    );
    exchange(&mut client, &get("/small"), &ok(b"You say that small"));
}

#[test]
fn a_hundred_header_fields_are_accepted() {
    let server = start_http();
    let mut client = server.connect();
    let mut request = String::from("GET /fields HTTP/1.1\r\nHost: a\r\n");
    for i in 1..100 {
        request.push_str(&format!("X-{i}: v\r\n"));
    }
    request.push_str("\r\n");
    exchange(&mut client, request.as_bytes(), &ok(b"You say that fields"));
}

#[test]
fn more_than_a_hundred_header_fields_are_431() {
    let mut request = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 1..=100 {
        request.push_str(&format!("X-{i}: v\r\n"));
    }
    request.push_str("\r\n");
    refused(request.as_bytes(), HEAD_TOO_LONG);
}

#[test]
fn request_line_longer_than_max_header_is_414() {
    let request = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    refused(request.as_bytes(), "414 URI Too Long");
}

#[test]
fn request_line_still_arriving_past_max_header_is_414() {
    // No request may follow here: it would continue the request line.
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, format!("GET /{}", "a".repeat(9000)).as_bytes());
    expect_refusal(&mut client, "414 URI Too Long");
}

#[test]
fn content_length_over_max_body_is_413() {
    refused_with(
        &small_body_limit(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n",
        TOO_LARGE,
    );
}

#[test]
fn content_length_at_max_body_is_accepted() {
    let server = TestServer::start(&small_body_limit());
    let mut client = server.connect();
    exchange(
        &mut client,
        &post(b"exactly 16 bytes"),
        &ok(b"You say that exactly 16 bytes"),
    );
}

#[test]
fn chunked_body_whose_first_chunk_passes_max_body_is_413() {
    refused_with(
        &small_body_limit(),
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n",
        TOO_LARGE,
    );
}

#[test]
fn chunked_body_that_passes_max_body_in_the_same_read_is_413() {
    // Nothing has gone out yet when the second chunk passes the limit: the answer begun for the
    // first chunk is withdrawn and the client gets a proper 413.
    refused_with(
        &small_body_limit(),
        &[
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"a\r\n0123456789\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
        ]
        .concat(),
        TOO_LARGE,
    );
}

#[test]
fn chunked_body_that_passes_max_body_after_a_read_is_413_and_nothing_else() {
    // Issue 16 ("Incomplete bodies") and 21: the answer waits for the whole body, so the first
    // chunk gets nothing (it used to get a 200 and its echo at once, then a cut answer); the
    // chunk past --max-body gets a proper 413, and nothing is answered after it.
    let server = TestServer::start(&small_body_limit());
    let mut client = server.connect();
    send(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    );
    common::expect_silence(&mut client, Duration::from_millis(300));
    send(
        &mut client,
        &[&b"a\r\n0123456789\r\n0\r\n\r\n"[..], SMUGGLED].concat(),
    );
    expect_refusal(&mut client, TOO_LARGE);
}

#[test]
fn an_incomplete_body_gets_no_200_and_408_at_the_body_timeout() {
    // Content-Length 10 with 5 sent, and chunks without the last one: nothing until
    // --body-timeout, then 408 (nothing of the answer went out).
    for wire in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ] {
        let server = TestServer::start(&Config {
            body_timeout: 1,
            ..http_config()
        });
        let mut client = server.connect();
        let started = Instant::now();
        send(&mut client, wire);
        expect_refusal(&mut client, "408 Request Timeout");
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(3),
            "408 after {after:?} (body timeout 1 s)"
        );
    }
}

#[test]
fn a_connection_that_sends_nothing_gets_408_at_the_header_timeout() {
    // Issue 16.3: the request deadline starts at accept, not at the first byte.
    let server = TestServer::start(&Config {
        header_timeout: 1,
        ..http_config()
    });
    let mut client = server.connect();
    let started = Instant::now();
    expect_refusal(&mut client, "408 Request Timeout");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "408 after {after:?} (header timeout 1 s, idle timeout 300 s)"
    );
}

#[test]
fn a_half_head_after_a_pause_gets_408_at_the_header_timeout() {
    // Issue 16.4: pipeline enough to pause the protocol, end with half a head, read every
    // answer, go quiet: the 408 comes at --header-timeout (the timer was never armed after the
    // pause, so the close came at --idle-timeout, or never with 0), counted as an HTTP error.
    for idle_timeout in [300, 0] {
        let server = TestServer::start(&Config {
            header_timeout: 1,
            idle_timeout,
            max_pending: 4096,
            ..http_config()
        });
        let mut client = server.connect();
        // A first request, then quiet past the header timeout: the timer armed at accept has
        // come and gone, so only the re-arming after the pause can bring the 408.
        exchange(&mut client, &get("/first"), &ok(b"You say that first"));
        common::expect_silence(&mut client, Duration::from_millis(1500));
        let gets = get("/x").repeat(400);
        let started = Instant::now();
        send(
            &mut client,
            &[&gets[..], b"GET /half HTTP/1.1\r\nHo"].concat(),
        );
        let answer = ok(b"You say that x");
        let all = read_exact_timeout(&mut client, answer.len() * 400);
        assert_answers(&all, &answer.repeat(400));
        expect_refusal(&mut client, "408 Request Timeout");
        let after = started.elapsed();
        assert!(
            after < Duration::from_secs(4),
            "408 after {after:?} (header timeout 1 s, idle timeout {idle_timeout})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Content-Length and Transfer-Encoding: 400, 501, and no smuggling

#[test]
fn content_length_not_digits_is_400() {
    for value in ["abc", "+5", "-1", "5 5", "0x5", "", "5;"] {
        let request = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\nhello");
        let reason = refused(request.as_bytes(), BAD);
        assert!(!reason.is_empty(), "Content-Length: {value:?}");
    }
}

#[test]
fn content_length_overflow_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_twice_with_different_values_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        BAD,
    );
}

#[test]
fn content_length_twice_with_the_same_value_is_accepted() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        &ok(b"You say that hello"),
    );
}

#[test]
fn content_length_list_form_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_and_transfer_encoding_together_are_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        BAD,
    );
    // In the other order.
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn transfer_encoding_chunked_then_identity_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn transfer_encoding_whose_final_coding_is_not_chunked_is_400() {
    for value in [
        "gzip",
        "identity",
        "chunked, chunked",
        "chunked\r\nTransfer-Encoding: gzip",
    ] {
        let request =
            format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {value}\r\n\r\n0\r\n\r\n");
        refused(request.as_bytes(), BAD);
    }
}

#[test]
fn transfer_encoding_gzip_then_chunked_is_501() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "501 Not Implemented",
    );
}

#[test]
fn transfer_encoding_in_http10_is_400() {
    refused(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        BAD,
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed chunked framing: 400

fn chunked_request(body: &[u8]) -> Vec<u8> {
    [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        body,
    ]
    .concat()
}

#[test]
fn chunk_size_not_hex_is_400() {
    refused(&chunked_request(b"zz\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_size_overflow_is_400() {
    refused(
        &chunked_request(b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        BAD,
    );
}

#[test]
fn chunk_size_of_u64_max_is_413() {
    // Sixteen hex digits fit a u64, and are far past --max-body.
    refused(
        &chunked_request(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        TOO_LARGE,
    );
}

#[test]
fn chunk_data_without_its_crlf_is_400() {
    // All in one write: the server has the whole malformed body before it answers anything.
    refused(&chunked_request(b"5\r\nhelloXX0\r\n\r\n"), BAD);
}

#[test]
fn chunk_extension_longer_than_1024_bytes_is_400() {
    let body = format!("1;ext={}\r\na\r\n0\r\n\r\n", "e".repeat(1100));
    refused(&chunked_request(body.as_bytes()), BAD);
}

#[test]
fn trailers_longer_than_8192_bytes_are_400() {
    let body = format!("0\r\nX-Trailer: {}\r\n\r\n", "t".repeat(9000));
    refused(&chunked_request(body.as_bytes()), BAD);
}

#[test]
fn chunk_size_line_ending_in_bare_lf_is_400() {
    refused(&chunked_request(b"5\nhello\r\n0\r\n\r\n"), BAD);
}

// ---------------------------------------------------------------------------------------------
// Host and header syntax: 400

#[test]
fn http11_without_host_is_400() {
    refused(b"GET / HTTP/1.1\r\n\r\n", BAD);
}

#[test]
fn two_host_headers_are_400() {
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BAD);
}

#[test]
fn http10_with_two_host_headers_is_400() {
    refused(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", BAD);
}

#[test]
fn space_before_colon_is_400() {
    refused(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", BAD);
}

#[test]
fn obs_fold_is_400() {
    refused(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        BAD,
    );
}

#[test]
fn bare_cr_in_a_value_is_400() {
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", BAD);
}

#[test]
fn bare_cr_as_a_line_end_is_400() {
    refused(b"GET / HTTP/1.1\rHost: a\r\n\r\n", BAD);
}

#[test]
fn nul_in_a_value_is_400() {
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", BAD);
}

#[test]
fn control_byte_in_a_value_is_400() {
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", BAD);
}

#[test]
fn target_not_starting_with_a_slash_is_400() {
    refused(b"GET hi HTTP/1.1\r\nHost: a\r\n\r\n", BAD);
}

#[test]
fn star_target_for_get_is_400() {
    refused(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", BAD);
}

// ---------------------------------------------------------------------------------------------
// Versions and not HTTP: 505, 400

#[test]
fn http2_preface_is_505() {
    refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VERSION);
}

#[test]
fn http20_and_http30_and_http09_are_505() {
    for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let request = format!("GET / {version}\r\nHost: a\r\n\r\n");
        refused(request.as_bytes(), VERSION);
    }
}

/// RFC 9112 §2.3: a later HTTP/1 minor version is answered as HTTP/1.1 (keep-alive included).
#[test]
fn http12_and_http19_are_served_as_http11() {
    let server = start_http();
    let mut client = server.connect();
    for version in ["HTTP/1.2", "HTTP/1.9"] {
        let request = format!("GET /later {version}\r\nHost: a\r\n\r\n");
        exchange(&mut client, request.as_bytes(), &ok(b"You say that later"));
    }
    // Its fields are read as ever: a Content-Length body is echoed.
    exchange(
        &mut client,
        b"POST / HTTP/1.2\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        &ok(b"You say that hi"),
    );
}

#[test]
fn http12_without_host_is_400() {
    refused(b"GET / HTTP/1.2\r\n\r\n", BAD);
}

#[test]
fn malformed_versions_are_400_not_505() {
    for version in [
        "HTTP/1",
        "HTTP/01.01",
        "HTTP/ 1.1",
        "http/1.1",
        "HTTP/1.1.1",
        "HTTP/1.10",
        "HTTP/a.b",
        "HTTPS/1.1",
        "HTTP/1.1x",
    ] {
        let request = format!("GET / {version}\r\nHost: a\r\n\r\n");
        let reason = refused(request.as_bytes(), BAD);
        // `HTTP/1.1` then more is a line that does not end where it should.
        assert!(
            reason == "the HTTP version must be HTTP/ DIGIT . DIGIT"
                || reason == "bad line ending in the request head",
            "{version}: {reason}"
        );
    }
}

#[test]
fn a_version_in_pieces_is_read_once_whole() {
    // `HTTP/2` may yet become `HTTP/2.0` (505) or stay malformed (400): wait for the line.
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, b"GET / HTTP/2");
    common::expect_silence(&mut client, Duration::from_millis(200));
    send(
        &mut client,
        &[&b"\r\nHost: a\r\n\r\n"[..], SMUGGLED].concat(),
    );
    expect_refusal(&mut client, BAD);
}

#[test]
fn tls_client_hello_is_400() {
    // The first bytes of a TLS 1.2/1.3 ClientHello: a handshake record, then the hello.
    let hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x8a, 0x1f, 0x3c, 0x00,
        0x52, 0x97, 0x11, 0xe2, 0x5b, 0x6d, 0x0a, 0x0d, 0x0a, 0x0d, 0x0a,
    ];
    refused(hello, BAD);
}

// ---------------------------------------------------------------------------------------------
// Expect, percent-encoding, the header timeout

#[test]
fn unknown_expectation_is_417() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 5\r\n\r\nhello",
        "417 Expectation Failed",
    );
}

#[test]
fn bad_percent_encoding_is_400() {
    for target in ["/a%zz", "/a%2", "/%", "/%G0"] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        refused(request.as_bytes(), BAD);
    }
}

#[test]
fn head_not_complete_within_the_header_timeout_is_408() {
    let server = TestServer::start(&Config {
        header_timeout: 1,
        ..http_config()
    });
    let mut client = server.connect();
    let started = Instant::now();
    send(&mut client, b"GET /slow HTTP/1.1\r\nHo");
    expect_refusal(&mut client, "408 Request Timeout");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "408 after {after:?} (header timeout 1 s)"
    );
}

#[test]
fn header_timeout_counts_from_the_first_byte_of_the_head() {
    // Bytes keep coming, but the head does not complete: trickling does not extend the deadline.
    let server = TestServer::start(&Config {
        header_timeout: 1,
        ..http_config()
    });
    let mut client = server.connect();
    let started = Instant::now();
    send(&mut client, b"GET / HTTP/1.1\r\n");
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let line = format!("X-{i}: v\r\n");
        if !write_unless_closed(&mut client, line.as_bytes()) {
            break;
        }
        i += 1;
        // Waiting up to 100 ms for the answer paces the trickle, and ends it once the 408 is in.
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set a timeout");
        if client.peek(&mut [0u8; 1]).is_ok() {
            break;
        }
    }
    client
        .set_read_timeout(Some(common::TIMEOUT))
        .expect("set a timeout");
    expect_refusal(&mut client, "408 Request Timeout");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "408 after {after:?} of trickling (header timeout 1 s)"
    );
}

// ---------------------------------------------------------------------------------------------
// Edges around the table

#[test]
fn empty_transfer_encoding_is_400() {
    // A Transfer-Encoding field without a coding has no final chunked: not a request to read
    // as bodiless (another server in front may read the field differently).
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn empty_transfer_encoding_with_content_length_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: ,\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn an_error_after_answered_pipelined_requests_ends_the_pipeline() {
    let server = start_http();
    let mut client = server.connect();
    let request = [
        &get("/first")[..],
        &post(b"second"),
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        SMUGGLED,
    ]
    .concat();
    send(&mut client, &request);
    let got = read_to_eof(&mut client);
    let answered = [&ok(b"You say that first")[..], &ok(b"You say that second")].concat();
    assert!(got.len() > answered.len(), "\"{}\"", show(&got));
    assert_answers(&got[..answered.len()], &answered);
    let rest = mask_dates(&got[answered.len()..]);
    let head = error_head(VERSION, rest.len() - error_head(VERSION, 0).len() - 1);
    assert!(
        rest.starts_with(&head) && !contains(&got, b"smuggled"),
        "\"{}\"",
        show(&got)
    );
    assert_eq!(count_answers(&got), 3);
}

#[test]
fn a_refused_body_still_being_sent_is_drained_so_the_client_reads_the_refusal() {
    // The client sends a 1 MiB body after a head the server refuses (413): the lingering close
    // reads it away, so the client's writes succeed and it reads the 413 and EOF, not a reset.
    let server = TestServer::start(&small_body_limit());
    let mut client = server.connect();
    let mut writer = client.try_clone().expect("clone the stream");
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n")?;
        writer.write_all(&vec![b'b'; 1 << 20])
    });
    expect_refusal(&mut client, TOO_LARGE);
    sender
        .join()
        .expect("the writer")
        .expect("the whole body was taken while the server lingered");
}

#[test]
fn expect_100_continue_over_max_body_is_413_without_100() {
    refused_with(
        &small_body_limit(),
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n",
        TOO_LARGE,
    );
}

#[test]
fn head_of_exactly_max_header_bytes_is_accepted_and_one_more_is_431() {
    let config = Config {
        max_header: 256,
        ..http_config()
    };
    let head = |len: usize| {
        let start = "GET /edge HTTP/1.1\r\nHost: a\r\nX-Pad: ";
        let pad = len - start.len() - "\r\n\r\n".len();
        format!("{start}{}\r\n\r\n", "p".repeat(pad))
    };
    let server = TestServer::start(&config);
    let mut client = server.connect();
    let exact = head(256);
    assert_eq!(exact.len(), 256);
    exchange(&mut client, exact.as_bytes(), &ok(b"You say that edge"));
    // Split just before its end: held, then completed.
    send(&mut client, &exact.as_bytes()[..255]);
    exchange(&mut client, b"\n", &ok(b"You say that edge"));
    refused_with(&config, head(257).as_bytes(), HEAD_TOO_LONG);
}

#[test]
fn options_with_a_malformed_chunked_body_is_400() {
    refused(
        b"OPTIONS / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        BAD,
    );
}

#[test]
fn head_with_a_malformed_chunked_body_is_400_without_a_body() {
    refused_head(
        b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        BAD,
        "a chunk size must be hex digits",
    );
}

/// RFC 9110 §9.3.2: an answer to HEAD carries no content, an error's included. Its head is the
/// one a GET would get, `Content-Length` of the line it would carry included (RFC 9110 §8.6).
#[track_caller]
fn refused_head(request: &[u8], status: &str, reason: &str) {
    let server = start_http();
    let mut client = server.connect();
    send(&mut client, &[request, SMUGGLED].concat());
    let got = mask_dates(&read_to_eof(&mut client));
    assert_eq!(
        show(&got),
        show(&error_head(status, reason.len() + 1)),
        "{}",
        show(request)
    );
    let mut next = server.connect();
    exchange(&mut next, &get("/still"), &ok(b"You say that still"));
}

#[test]
fn head_errors_have_no_body() {
    refused_head(
        b"HEAD / HTTP/1.1\r\n\r\n",
        BAD,
        "an HTTP/1.1 request needs exactly one Host header",
    );
    refused_head(
        b"HEAD / HTTP/1.1\r\nHost: a@b\r\n\r\n",
        BAD,
        "the Host header is not a valid host",
    );
    refused_head(
        b"HEAD / HTTP/2.0\r\nHost: a\r\n\r\n",
        VERSION,
        "only HTTP/1.0 and HTTP/1.1 are supported",
    );
    refused_head(
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n",
        TOO_LARGE,
        "the body is larger than --max-body",
    );
}

#[test]
fn malformed_chunk_after_a_good_one_in_the_same_write_is_400() {
    refused(&chunked_request(b"5\r\nhello\r\nzz\r\n\r\n"), BAD);
}

#[test]
fn an_unknown_expectation_beside_100_continue_is_417() {
    // Every expectation must be met; a second Expect field must not hide the first.
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        "417 Expectation Failed",
    );
}

#[test]
fn an_idle_keep_alive_connection_gets_no_408() {
    // The header timeout runs from a head's first byte: between requests nothing is due.
    let server = TestServer::start(&Config {
        header_timeout: 1,
        ..http_config()
    });
    let mut client = server.connect();
    exchange(&mut client, &get("/one"), &ok(b"You say that one"));
    common::expect_silence(&mut client, Duration::from_millis(1500));
    exchange(&mut client, &get("/two"), &ok(b"You say that two"));
}

// ---------------------------------------------------------------------------------------------
// Chunk extensions: the grammar of RFC 9112 §7.1.1, or 400

#[test]
fn chunk_extension_that_is_a_bare_semicolon_is_400() {
    refused(&chunked_request(b"5;\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_extension_name_with_a_bad_byte_is_400() {
    refused(&chunked_request(b"5;bad[=x\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn whitespace_after_a_chunk_size_without_an_extension_is_400() {
    refused(&chunked_request(b"5 \r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_extensions_that_match_the_grammar_are_accepted() {
    let server = start_http();
    let mut client = server.connect();
    for line in [&b"5;a=b"[..], b"5 ; a = \"q\\\"x\""] {
        let body = [line, b"\r\nhello\r\n0\r\n\r\n"].concat();
        send(&mut client, &chunked_request(&body));
        let answer = read_response(&mut client, false);
        assert_eq!(answer.body, b"You say that hello", "{}", show(line));
    }
}

// ---------------------------------------------------------------------------------------------
// Host (RFC 9112 §3.2, RFC 3986 host [":" port]): 400

#[test]
fn invalid_host_values_are_400() {
    for host in [
        "a b",
        "a@b",
        "user@host",
        "a/b",
        "host/path",
        "[::1",
        "a, b",
        "a,b",
        "a:b:c",
        "a:8x",
        "a\"b",
        "a{b",
        "[zz]",
        "[::1]x",
        "%zz",
        ":80",
        "[::1%eth0]",
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let reason = refused(request.as_bytes(), BAD);
        assert_eq!(reason, "the Host header is not a valid host", "{host}");
    }
}

#[test]
fn an_empty_host_in_http11_is_400() {
    refused(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", BAD);
    refused(b"GET / HTTP/1.1\r\nHost: \r\n\r\n", BAD);
}

#[test]
fn non_ascii_host_is_400() {
    refused("GET / HTTP/1.1\r\nHost: caf\u{e9}\r\n\r\n".as_bytes(), BAD);
}

#[test]
fn valid_host_values_are_accepted() {
    let server = start_http();
    let mut client = server.connect();
    for host in [
        "a",
        "localhost:8080",
        "127.0.0.1",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "[2001:db8::192.0.2.1]",
        "[v1.fe80::a+en1]",
        "my-host.example_~!$&'()*+;=",
        "a%20b",
        "a:",
        "xn--caf-dma.example",
    ] {
        let request = format!("GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n");
        exchange(&mut client, request.as_bytes(), &ok(b"You say that h"));
    }
    // HTTP/1.0 need not name a host; an empty Host then says nothing.
    let mut old = server.connect();
    send(&mut old, b"GET /h HTTP/1.0\r\nHost:\r\n\r\n");
    assert_eq!(
        show(&mask_dates(&read_to_eof(&mut old))),
        show(&ok_conn(b"You say that h", Conn::Close))
    );
}

/// RFC 9112 §3.2.2: with an absolute-form target the target's authority is the host; the Host
/// field is still required in HTTP/1.1, but its value is ignored.
#[test]
fn an_absolute_form_target_s_authority_wins_over_host() {
    let server = start_http();
    let mut client = server.connect();
    exchange(
        &mut client,
        b"GET http://example.com:80/abs HTTP/1.1\r\nHost: not valid\r\n\r\n",
        &ok(b"You say that abs"),
    );
    refused(b"GET http://example.com/abs HTTP/1.1\r\n\r\n", BAD);
    for target in [
        "http://user@a/abs",
        "http:///abs",
        "http://a b/abs",
        "https://a,b/",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let reason = refused(request.as_bytes(), BAD);
        assert!(
            reason == "the request target's authority is not a valid host"
                || reason == "whitespace inside the request target",
            "{target}: {reason}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The request line: the target, the method, empty lines before it

#[test]
fn a_space_inside_the_target_is_400_not_505() {
    let reason = refused(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", BAD);
    assert_eq!(reason, "whitespace inside the request target");
}

#[test]
fn a_tab_inside_the_target_is_400() {
    refused(b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", BAD);
}

#[test]
fn non_ascii_bytes_in_the_target_are_400() {
    let reason = refused("GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes(), BAD);
    assert_eq!(
        reason,
        "the request target must be ASCII (percent-encode the rest)"
    );
    refused(b"GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", BAD);
}

#[test]
fn a_100_kb_method_is_501_not_414() {
    let server = start_http();
    let mut client = server.connect();
    let method = "A".repeat(100 * 1024);
    let request = format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
    // Refused long before it has all come: the rest may meet a closed socket.
    write_unless_closed(&mut client, request.as_bytes());
    let reason = expect_refusal(&mut client, "501 Not Implemented");
    assert_eq!(reason, "the method is longer than any this server knows");
}

#[test]
fn a_method_longer_than_any_known_is_501() {
    let request = format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(33));
    refused(request.as_bytes(), "501 Not Implemented");
}

#[test]
fn a_few_empty_lines_before_a_request_are_ignored() {
    let server = start_http();
    let mut client = server.connect();
    let request = [&b"\r\n\n\r\n\r\n\r\n\r\n\r\n\r\n"[..], &get("/after")].concat();
    exchange(&mut client, &request, &ok(b"You say that after"));
    // Counted per request: the next may have as many.
    exchange(&mut client, &request, &ok(b"You say that after"));
}

#[test]
fn more_than_8_empty_lines_before_a_request_are_400() {
    let request = [&b"\r\n".repeat(9)[..], &get("/after")].concat();
    let reason = refused(&request, BAD);
    assert_eq!(reason, "more than 8 empty lines before the request line");
}

#[test]
fn content_length_over_max_body_stays_413() {
    // Deliberate: the suite expects 400, nginx answers 413 too (see the README).
    let reason = refused_with(
        &small_body_limit(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n",
        TOO_LARGE,
    );
    assert_eq!(reason, "the body is larger than --max-body");
}
