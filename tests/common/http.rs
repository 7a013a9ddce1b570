//! HTTP helpers for the black-box tests of `--framing http`: the exact bytes of the answers the
//! wire contract (the README's HTTP mode section) promises, with each `Date` value checked and masked, a
//! reader for one response at a time, and a strict decoder of chunked answers.
//!
//! Expected answers are built from the contract, never from the server's code, so a change of
//! header order, spelling or framing fails a test.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use saythat::{Config, FramingKind};

use super::{read_to_eof, send, show, TestServer, TIMEOUT};

/// A `Date` value is an IMF-fixdate, always this long.
pub const DATE_LEN: usize = 29;
/// What every checked `Date` value is replaced with before answers are compared.
pub const MASK: &[u8; DATE_LEN] = b"DDD, DD MMM YYYY HH:MM:SS GMT";
/// A complete request appended after a refused one: it must never be answered.
pub const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
/// What OPTIONS lists.
pub const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// A loopback configuration in HTTP mode.
pub fn http_config() -> Config {
    Config {
        framing: FramingKind::Http,
        ..Config::loopback()
    }
}

/// An in-process server in HTTP mode with the defaults.
pub fn start_http() -> TestServer {
    TestServer::start(&http_config())
}

/// `--listen 127.0.0.1:0 --framing http` and `extra`, for the binary.
pub fn http_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [&["--framing", "http"], extra].concat()
}

/// What the answer says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// HTTP/1.1 keep-alive: no `Connection` field.
    Persist,
    /// `Connection: keep-alive` (an HTTP/1.0 client that asked to persist).
    KeepAlive,
    /// `Connection: close`, and the connection closes after the answer.
    Close,
}

impl Conn {
    fn field(self) -> &'static str {
        match self {
            Conn::Persist => "",
            Conn::KeepAlive => "Connection: keep-alive\r\n",
            Conn::Close => "Connection: close\r\n",
        }
    }
}

/// `Server` and the masked `Date`, the fields every answer starts with.
fn common_fields() -> String {
    format!(
        "Server: saythat/{}\r\nDate: {}\r\n",
        env!("CARGO_PKG_VERSION"),
        std::str::from_utf8(MASK).unwrap()
    )
}

/// The head of a 200 answer of `len` body bytes.
pub fn ok_head(len: usize, conn: Conn) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\n{}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len}\r\n{}\r\n",
        common_fields(),
        conn.field()
    )
    .into_bytes()
}

/// A whole 200 answer whose body is `body`, on a persistent connection.
pub fn ok(body: &[u8]) -> Vec<u8> {
    ok_conn(body, Conn::Persist)
}

/// A whole 200 answer whose body is `body`.
pub fn ok_conn(body: &[u8], conn: Conn) -> Vec<u8> {
    [&ok_head(body.len(), conn)[..], body].concat()
}

/// The head of a chunked 200 answer (to a chunked request).
pub fn chunked_head(conn: Conn) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\n{}Content-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        common_fields(),
        conn.field()
    )
    .into_bytes()
}

/// The whole 204 answer to OPTIONS.
pub fn options_answer(conn: Conn) -> Vec<u8> {
    format!(
        "HTTP/1.1 204 No Content\r\n{}Allow: {ALLOW}\r\n{}\r\n",
        common_fields(),
        conn.field()
    )
    .into_bytes()
}

/// The head of an error answer with a body of `len` bytes.
pub fn error_head(status: &str, len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        common_fields(),
    )
    .into_bytes()
}

/// `POST /` with `body` and a Content-Length.
pub fn post(body: &[u8]) -> Vec<u8> {
    [
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat()
}

/// `GET target` over HTTP/1.1.
pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
}

/// `body` in the chunked coding, cut into chunks of the given sizes (cycled), with the last
/// chunk and an empty trailer section.
pub fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = body;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
        rest = tail;
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// Checks that `date` is an IMF-fixdate (it parses, and formats back to itself) within a minute
/// of now.
fn check_date(date: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(date).map_err(|_| format!("not ASCII: {}", show(date)))?;
    let parsed = httpdate::parse_http_date(text).map_err(|e| format!("{text:?}: {e}"))?;
    if httpdate::fmt_http_date(parsed) != text {
        return Err(format!("{text:?} is not in the IMF-fixdate format"));
    }
    let now = SystemTime::now();
    let off = now
        .duration_since(parsed)
        .or_else(|_| parsed.duration_since(now))
        .unwrap_or_default();
    if off > Duration::from_secs(60) {
        return Err(format!("{text:?} is {off:?} away from now"));
    }
    Ok(())
}

/// `bytes` with every `Date` value checked and replaced with `MASK`.
#[track_caller]
pub fn mask_dates(bytes: &[u8]) -> Vec<u8> {
    let mut masked = bytes.to_vec();
    for at in date_offsets(bytes) {
        let end = (at + DATE_LEN).min(bytes.len());
        if let Err(e) = check_date(&bytes[at..end]) {
            panic!("bad Date value at byte {at} ({e}) in \"{}\"", show(bytes));
        }
        if end - at == DATE_LEN {
            masked[at..end].copy_from_slice(MASK);
        }
    }
    masked
}

/// Where the value of every `Date` field of a run of answers starts.
pub fn date_offsets(bytes: &[u8]) -> Vec<usize> {
    const FIELD: &[u8] = b"\r\nDate: ";
    bytes
        .windows(FIELD.len())
        .enumerate()
        .filter(|(_, w)| *w == FIELD)
        .map(|(i, _)| i + FIELD.len())
        .collect()
}

/// Checks `got`, dates masked, is exactly `expected` (built with `MASK`).
#[track_caller]
pub fn assert_answers(got: &[u8], expected: &[u8]) {
    let masked = mask_dates(got);
    assert!(
        masked == expected,
        "expected \"{}\"\n     got \"{}\"",
        show(expected),
        show(&masked)
    );
}

/// Reads exactly `expected.len()` bytes and checks them, dates masked.
#[track_caller]
pub fn expect_answer(stream: &mut TcpStream, expected: &[u8]) {
    let got = match super::try_read_exact(stream, expected.len()) {
        Ok(got) => got,
        Err(e) => panic!("expecting \"{}\": {e}", show(expected)),
    };
    assert_answers(&got, expected);
}

/// Reads until a clean end of stream and checks everything read, dates masked.
#[track_caller]
pub fn expect_answer_then_eof(stream: &mut TcpStream, expected: &[u8]) {
    let got = read_to_eof(stream);
    assert_answers(&got, expected);
}

/// Sends `request` and checks the answer, dates masked; the connection stays open.
#[track_caller]
pub fn exchange(stream: &mut TcpStream, request: &[u8], expected: &[u8]) {
    send(stream, request);
    expect_answer(stream, expected);
}

/// How many answers `bytes` holds: status lines (`HTTP/1.x NNN `) anywhere, so a smuggled
/// answer cannot hide inside a body.
pub fn count_answers(bytes: &[u8]) -> usize {
    bytes
        .windows(b"HTTP/1.1 200 ".len())
        .filter(|w| {
            w.starts_with(b"HTTP/1.")
                && w[7].is_ascii_digit()
                && w[8] == b' '
                && w[9..12].iter().all(u8::is_ascii_digit)
                && w[12] == b' '
        })
        .count()
}

/// Reads an error answer to the end of the stream and checks it is exactly one answer: `status`,
/// the fields every answer has, `Connection: close`, a one-line plain-text body ending in `\n`,
/// then a clean EOF (a reset fails). Returns the body line, without its `\n`.
#[track_caller]
pub fn expect_refusal(stream: &mut TcpStream, status: &str) -> String {
    let got = read_to_eof(stream);
    let masked = mask_dates(&got);
    let head_end = match masked.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => at + 4,
        None => panic!("expected a {status} answer, got \"{}\"", show(&got)),
    };
    let body = &masked[head_end..];
    let expected_head = error_head(status, body.len());
    assert!(
        masked[..head_end] == expected_head[..],
        "expected a {status} answer whose body is the rest of the stream:\n  expected head \"{}\"\n  got \"{}\"",
        show(&expected_head),
        show(&masked)
    );
    let line_ok = body.len() >= 2
        && body.ends_with(b"\n")
        && body[..body.len() - 1]
            .iter()
            .all(|b| (0x20..0x7f).contains(b));
    assert!(
        line_ok,
        "the body of a {status} answer must be one non-empty line of plain text ending in \\n, got \"{}\"",
        show(body)
    );
    assert!(
        count_answers(&got) == 1 && !contains(&got, b"smuggled"),
        "more than one answer after a {status}: \"{}\"",
        show(&got)
    );
    String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A server with `config` gets `request` and then `SMUGGLED` in one write, and must answer
/// exactly one `status` refusal then close cleanly; afterwards it still serves a new connection.
/// Returns the refusal's body line.
#[track_caller]
pub fn refused_with(config: &Config, request: &[u8], status: &str) -> String {
    let server = TestServer::start(config);
    let mut client = server.connect();
    send(&mut client, &[request, SMUGGLED].concat());
    let reason = expect_refusal(&mut client, status);
    let mut next = server.connect();
    exchange(
        &mut next,
        &get("/still%20here"),
        &ok(b"You say that still here"),
    );
    reason
}

/// `refused_with` the default HTTP configuration.
#[track_caller]
pub fn refused(request: &[u8], status: &str) -> String {
    refused_with(&http_config(), request, status)
}

/// One response, read from a stream that may carry more after it.
#[derive(Debug)]
pub struct Response {
    /// The head, CRLF CRLF included, dates masked.
    pub head: Vec<u8>,
    /// The body, decoded if it was chunked.
    pub body: Vec<u8>,
    /// The chunked body as it came on the wire, size lines and all; empty if not chunked.
    pub wire: Vec<u8>,
}

/// Reads one byte; fails on EOF, an error or `TIMEOUT` (counted from `deadline`).
#[track_caller]
fn read_byte(stream: &mut TcpStream, deadline: Instant, so_far: &[u8]) -> u8 {
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no complete response within {TIMEOUT:?}: \"{}\"",
            show(so_far)
        );
        stream.set_read_timeout(Some(left)).expect("set a timeout");
        match stream.read(&mut byte) {
            Ok(1) => return byte[0],
            Ok(_) => panic!("the server closed inside a response: \"{}\"", show(so_far)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a response failed ({e}): \"{}\"", show(so_far)),
        }
    }
}

/// Reads one line, CRLF included, a byte at a time (so nothing after the response is taken).
#[track_caller]
fn read_line(stream: &mut TcpStream, deadline: Instant, wire: &mut Vec<u8>) -> Vec<u8> {
    let start = wire.len();
    while !wire[start..].ends_with(b"\r\n") {
        let b = read_byte(stream, deadline, wire);
        wire.push(b);
    }
    wire[start..].to_vec()
}

/// Reads exactly one response, head by bytes, body by its Content-Length or chunks; a response
/// to HEAD (`head_only`), a 204 or a 1xx has no body. Reads no byte past it.
#[track_caller]
pub fn read_response(stream: &mut TcpStream, head_only: bool) -> Response {
    let deadline = Instant::now() + TIMEOUT;
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        let b = read_byte(stream, deadline, &raw);
        raw.push(b);
    }
    let head = mask_dates(&raw);
    let text = String::from_utf8_lossy(&head).into_owned();
    let field = |name: &str| {
        text.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(": "))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
    };
    let status: u16 = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in \"{}\"", show(&raw)));
    let mut response = Response {
        head,
        body: Vec::new(),
        wire: Vec::new(),
    };
    if head_only || status == 204 || status < 200 {
        return response;
    }
    if field("transfer-encoding").as_deref() == Some("chunked") {
        let mut wire = Vec::new();
        loop {
            let line = read_line(stream, deadline, &mut wire);
            let size_text = std::str::from_utf8(&line[..line.len() - 2]).unwrap_or("?");
            let size = usize::from_str_radix(size_text, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line \"{}\"", show(&line)));
            if size == 0 {
                let end = read_line(stream, deadline, &mut wire);
                assert_eq!(
                    end,
                    b"\r\n",
                    "the server sent trailers: \"{}\"",
                    show(&wire)
                );
                break;
            }
            let data = read_exact_before(stream, size + 2, deadline, &wire);
            assert!(
                data.ends_with(b"\r\n"),
                "chunk data not followed by CRLF: \"{}\"",
                show(&data)
            );
            response.body.extend_from_slice(&data[..size]);
            wire.extend_from_slice(&data);
        }
        response.wire = wire;
    } else {
        let len: usize = field("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in \"{}\"", show(&raw)));
        response.body = read_exact_before(stream, len, deadline, &raw);
    }
    response
}

#[track_caller]
fn read_exact_before(
    stream: &mut TcpStream,
    n: usize,
    deadline: Instant,
    so_far: &[u8],
) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "a body did not arrive within {TIMEOUT:?}");
        stream.set_read_timeout(Some(left)).expect("set a timeout");
        match stream.read(&mut got[filled..]) {
            Ok(0) => panic!(
                "the server closed after {filled} of {n} body bytes; before them: \"{}\"",
                show(so_far)
            ),
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a body failed ({e}) after {filled} of {n} bytes"),
        }
    }
    got
}

/// Decodes a chunked body at the start of `wire`, strictly (lower- or upper-case hex, no
/// extensions, no trailers, CRLF everywhere): the body, and how many bytes it took.
pub fn decode_chunked(wire: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = wire[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("no chunk size line at byte {at}: \"{}\"", show(&wire[at..])))?;
        let size_text = std::str::from_utf8(&wire[at..at + line_end]).unwrap_or("?");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?} at byte {at}"))?;
        at += line_end + 2;
        if size == 0 {
            if wire.get(at..at + 2) != Some(b"\r\n") {
                return Err(format!(
                    "no final CRLF at byte {at}: \"{}\"",
                    show(&wire[at..])
                ));
            }
            return Ok((body, at + 2));
        }
        let data = wire
            .get(at..at + size)
            .ok_or_else(|| format!("a chunk of {size} bytes is cut short at byte {at}"))?;
        body.extend_from_slice(data);
        at += size;
        if wire.get(at..at + 2) != Some(b"\r\n") {
            return Err(format!("chunk data not followed by CRLF at byte {at}"));
        }
        at += 2;
    }
}
