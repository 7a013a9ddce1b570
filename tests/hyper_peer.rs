//! The hyper peer (`examples/peer/hyper_echo.rs`) answers what saythat's HTTP contract says
//! saythat answers, body byte for byte, so `scripts/wrk.sh` compares like with like. Spoken to
//! over real sockets with plain `std::net`; responses are parsed here just enough to check the
//! status, the headers the contract names, and the exact body.

#[path = "../examples/peer/hyper_echo.rs"]
mod hyper_echo;

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::thread;

use common::{connect, read_to_eof, send, show, PREFIX};

/// The methods an OPTIONS answer must list.
const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

fn start() -> SocketAddr {
    hyper_echo::spawn(([127, 0, 0, 1], 0).into(), PREFIX.to_vec()).expect("start the hyper peer")
}

/// PREFIX followed by `said`.
fn said(said: &[u8]) -> Vec<u8> {
    [PREFIX, said].concat()
}

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    /// Names lowercased, in the order sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self.headers.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} sent twice: {self:?}");
        first
    }

    /// Checks a 200 with the contract's Content-Type, a Date, and exactly `body`.
    #[track_caller]
    fn expect_ok(&self, body: &[u8]) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{self:?}"
        );
        assert!(self.header("date").is_some(), "no Date: {self:?}");
        assert!(
            self.body == body,
            "expected body \"{}\", got \"{}\"",
            show(body),
            show(&self.body)
        );
    }
}

/// A client connection reading responses one at a time, so pipelined answers can be split.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client {
            reader: BufReader::new(connect(addr)),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        send(self.reader.get_mut(), bytes);
    }

    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("read a head line");
        let text = String::from_utf8(line).expect("a UTF-8 head line");
        text.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("head line {text:?} does not end in CRLF"))
            .to_string()
    }

    #[track_caller]
    fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.reader.read_exact(&mut bytes).expect("read a body");
        bytes
    }

    /// Reads one response; `head` says it answers a HEAD, so it has no body whatever it says.
    #[track_caller]
    fn response(&mut self, head: bool) -> Response {
        let status_line = self.line();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status / 100 == 1 {
            return response;
        }
        if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = self.line();
                let size = usize::from_str_radix(&size, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
                if size == 0 {
                    assert_eq!(self.line(), "", "no trailers expected");
                    break;
                }
                let chunk = self.exact(size);
                response.body.extend_from_slice(&chunk);
                assert_eq!(self.line(), "", "chunk not followed by CRLF");
            }
        } else {
            let length: usize = response
                .header("content-length")
                .unwrap_or_else(|| panic!("neither Content-Length nor chunked: {response:?}"))
                .parse()
                .expect("a numeric Content-Length");
            response.body = self.exact(length);
        }
        response
    }

    /// Checks the server has closed, with nothing more sent.
    #[track_caller]
    fn expect_eof(mut self) {
        let mut rest = self.reader.buffer().to_vec();
        rest.extend(read_to_eof(self.reader.get_mut()));
        assert!(
            rest.is_empty(),
            "more after the answer: \"{}\"",
            show(&rest)
        );
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: peer\r\n\r\n").into_bytes()
}

fn post(body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST / HTTP/1.1\r\nHost: peer\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

#[test]
fn without_a_body_the_path_is_said_percent_decoded_without_the_query() {
    let mut client = Client::new(start());
    for (path, expected) in [
        ("/Hello%3F%20anyone", &b"Hello? anyone"[..]),
        ("/hi?x=1", b"hi"),
        ("/", b""),
        ("/a/b%2Fc%00%ff", b"a/b/c\0\xff"),
    ] {
        client.send(&get(path));
        let response = client.response(false);
        response.expect_ok(&said(expected));
        let length = said(expected).len().to_string();
        assert_eq!(response.header("content-length"), Some(length.as_str()));
    }
}

#[test]
fn a_body_is_said_byte_for_byte() {
    let mut client = Client::new(start());
    let every_byte: Vec<u8> = (0..=255).collect();
    for body in [&b"Hello? anyone is there? I am client"[..], &every_byte] {
        client.send(&post(body));
        let response = client.response(false);
        response.expect_ok(&said(body));
        let length = said(body).len().to_string();
        assert_eq!(response.header("content-length"), Some(length.as_str()));
    }
    // An empty body counts as none: the path is said.
    client.send(b"POST /empty HTTP/1.1\r\nHost: peer\r\nContent-Length: 0\r\n\r\n");
    client.response(false).expect_ok(&said(b"empty"));
}

#[test]
fn a_chunked_body_is_answered_chunked() {
    let mut client = Client::new(start());
    client.send(
        b"PUT /ignored HTTP/1.1\r\nHost: peer\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nHello\r\n8\r\n, world!\r\n0\r\nX-Trailer: dropped\r\n\r\n",
    );
    let response = client.response(false);
    response.expect_ok(&said(b"Hello, world!"));
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-length"), None);
    // The connection goes on.
    client.send(&get("/next"));
    client.response(false).expect_ok(&said(b"next"));
}

#[test]
fn a_large_body_is_streamed_back_whole() {
    let addr = start();
    let mut client = Client::new(addr);
    let body: Vec<u8> = (0..4 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    // Written from a thread: the peer answers while the body is still arriving, and neither
    // side may stall the other on full socket buffers.
    let mut writer = client
        .reader
        .get_ref()
        .try_clone()
        .expect("clone the socket");
    let request = post(&body);
    let sender = thread::spawn(move || send(&mut writer, &request));
    let response = client.response(false);
    sender.join().expect("the sender");
    response.expect_ok(&said(&body));
}

#[test]
fn head_has_get_headers_and_no_body() {
    let mut client = Client::new(start());
    // Pipelined: if HEAD sent a body, the GET's answer would not start where it should.
    client.send(
        &[
            &b"HEAD /Hello%3F%20anyone HTTP/1.1\r\nHost: peer\r\n\r\n"[..],
            &get("/Hello%3F%20anyone"),
        ]
        .concat(),
    );
    let head = client.response(true);
    let get = client.response(false);
    get.expect_ok(&said(b"Hello? anyone"));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.header("content-length"), get.header("content-length"));
}

#[test]
fn options_is_204_with_allow() {
    let mut client = Client::new(start());
    client.send(b"OPTIONS /anything HTTP/1.1\r\nHost: peer\r\n\r\n");
    let response = client.response(false);
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(response.header("allow"), Some(ALLOW));
    assert_eq!(response.header("content-length"), None);
    client.send(&get("/after"));
    client.response(false).expect_ok(&said(b"after"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut client = Client::new(start());
    let requests: Vec<u8> = (0..16).flat_map(|i| get(&format!("/{i}"))).collect();
    client.send(&requests);
    for i in 0..16 {
        client
            .response(false)
            .expect_ok(&said(i.to_string().as_bytes()));
    }
}

#[test]
fn expect_continue_gets_100_first() {
    let mut client = Client::new(start());
    client.send(
        b"POST / HTTP/1.1\r\nHost: peer\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(client.response(false).status, 100);
    client.send(b"hi");
    client.response(false).expect_ok(&said(b"hi"));
}

#[test]
fn connection_close_is_honoured() {
    let mut client = Client::new(start());
    client.send(b"GET /bye HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n");
    let response = client.response(false);
    response.expect_ok(&said(b"bye"));
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_eof();
}

#[test]
fn bad_percent_encoding_is_400_and_closes() {
    for path in ["/bad%zz", "/short%4", "/end%"] {
        let mut client = Client::new(start());
        client.send(&get(path));
        let response = client.response(false);
        assert_eq!(response.status, 400, "{path}: {response:?}");
        assert_eq!(response.header("connection"), Some("close"));
        assert!(response.body.ends_with(b"\n"), "{response:?}");
        client.expect_eof();
    }
}

#[test]
fn percent_decoding_refuses_only_malformed_escapes() {
    assert_eq!(
        hyper_echo::percent_decoded("a%41%2f%2F+b"),
        Some(b"aA//+b".to_vec())
    );
    assert_eq!(hyper_echo::percent_decoded(""), Some(Vec::new()));
    for bad in ["%", "%4", "%g0", "a%0g", "%%41"] {
        assert_eq!(hyper_echo::percent_decoded(bad), None, "{bad:?}");
    }
}
