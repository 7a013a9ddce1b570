//! The heads of answers, written straight into the connection's output: the status line,
//! `Server`, the cached `Date`, how the length is told, what is said of the connection; the 100
//! Continue; and the chunks of a chunked answer.
//!
//! It counts every head it writes by status. It must never allocate per answer, and never write
//! a body: what follows a head is the caller's to write.

use super::date::DateCache;
use super::request::ConnectionHeader;
use crate::framing::{Answers, ProtocolCounts};

/// The methods `OPTIONS` lists. Every method token is answered, but these are the ones that mean
/// something to an echo.
const ALLOW: &[u8] = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const TEXT: &[u8] = b"\r\nContent-Type: text/plain; charset=utf-8";
/// The body of the refusal at the connection limit, around the limit.
const FULL_BODY: [&[u8]; 2] = [b"server full (max ", b" connections)\n"];

/// What a request is answered with.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reply {
    /// The prefix and the body, or the path.
    #[default]
    Echo,
    /// HEAD: the echo's head, no body; a request body is read and dropped.
    HeadOnly,
    /// OPTIONS: 204 with `Allow`; a request body is read and dropped.
    Options,
    /// Answered by the route, at once; a request body is read and dropped.
    Routed,
}

/// The answer to the request in progress.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Answer {
    pub reply: Reply,
    pub connection: ConnectionHeader,
    /// The status of the head written (and counted) for this request so far, 0 while none is:
    /// an answer withdrawn because its body broke a rule is uncounted by it. A chunked echo's
    /// head waits for the first chunk.
    pub status: u16,
}

/// How an answer's length is told.
pub(super) enum Length {
    Bytes(u64),
    /// A routed answer's: its own `Content-Type`, and its length.
    Typed(&'static str, u64),
    Chunked,
    /// 204: neither.
    NoContent,
    /// A refusal of this many bytes that the client may try again in a second (503).
    RetryAfter(u64),
}

/// What every answer head needs, shared by a loop's connections: the fixed start of a `200 OK`,
/// the `Date` of this second, and the count of answers by status.
#[derive(Debug, Clone)]
pub(super) struct Heads {
    /// `HTTP/1.1 200 OK`, `Server`, `X-Served-By` with `--instance`, and the start of `Date`,
    /// written as one piece: naming the instance costs an answer nothing but its bytes.
    ok_head: Box<[u8]>,
    date: DateCache,
    /// Responses answered, by status.
    counts: ProtocolCounts,
}

impl Heads {
    /// Heads that name `instance` (already checked to be a field value) in `X-Served-By`.
    pub(super) fn new(instance: Option<&str>) -> Heads {
        let served_by = instance.map_or(String::new(), |name| format!("X-Served-By: {name}\r\n"));
        let ok_head = format!(
            "HTTP/1.1 200 OK\r\nServer: saythat/{}\r\n{served_by}Date: ",
            env!("CARGO_PKG_VERSION")
        );
        Heads {
            ok_head: ok_head.into_bytes().into(),
            date: DateCache::default(),
            counts: ProtocolCounts::default(),
        }
    }

    pub(super) fn counts(&self) -> &ProtocolCounts {
        &self.counts
    }

    /// The counts, for what a controlled answer did beside its status.
    pub(super) fn counts_mut(&mut self) -> &mut ProtocolCounts {
        &mut self.counts
    }

    /// Writes (and counts) the start of a controlled answer's head, of any status: the status
    /// line, `Server`, `X-Served-By`, `Date`. The caller writes its other fields and ends it with
    /// [`end_head`].
    pub(super) fn write_start(&mut self, answers: &mut Answers<'_>, status: u16) {
        self.counts.response(status);
        answers.push(b"HTTP/1.1 ");
        answers.push(itoa::Buffer::new().format(status).as_bytes());
        answers.push(b" ");
        answers.push(reason(status).as_bytes());
        answers.push(&self.ok_head[b"HTTP/1.1 200 OK".len()..]);
        answers.push(self.date.at(answers.now()));
    }

    /// Uncounts the head written for `answer`, if any: it will not go out.
    pub(super) fn withdraw(&mut self, answer: &mut Answer) {
        if answer.status != 0 {
            self.counts.withdraw(answer.status);
            answer.status = 0;
        }
    }

    /// Writes an answer's status line and header fields.
    pub(super) fn write(
        &mut self,
        answers: &mut Answers<'_>,
        status: &str,
        length: Length,
        connection: ConnectionHeader,
    ) {
        if status.starts_with("200") {
            self.counts.response(200);
            answers.push(&self.ok_head);
        } else {
            let code = status.get(..3).and_then(|code| code.parse().ok());
            self.counts.response(code.unwrap_or(0));
            answers.push(b"HTTP/1.1 ");
            answers.push(status.as_bytes());
            answers.push(&self.ok_head[b"HTTP/1.1 200 OK".len()..]);
        }
        answers.push(self.date.at(answers.now()));
        match length {
            Length::Typed(content_type, n) => {
                answers.push(b"\r\nContent-Type: ");
                answers.push(content_type.as_bytes());
                answers.push(b"\r\nContent-Length: ");
                answers.push(itoa::Buffer::new().format(n).as_bytes());
            }
            Length::Bytes(n) => {
                answers.push(TEXT);
                answers.push(b"\r\nContent-Length: ");
                answers.push(itoa::Buffer::new().format(n).as_bytes());
            }
            Length::RetryAfter(n) => {
                answers.push(TEXT);
                answers.push(b"\r\nContent-Length: ");
                answers.push(itoa::Buffer::new().format(n).as_bytes());
                answers.push(b"\r\nRetry-After: 1");
            }
            Length::Chunked => {
                answers.push(TEXT);
                answers.push(b"\r\nTransfer-Encoding: chunked");
            }
            Length::NoContent => {
                answers.push(b"\r\nAllow: ");
                answers.push(ALLOW);
            }
        }
        end_head(answers, connection);
    }

    /// Writes the whole answer to a client refused at the connection limit (`max_conns` open):
    /// `503` with `Retry-After: 1` and `Connection: close`, and a one-line body saying why, as
    /// nginx and HAProxy refuse. Counted like any other answer.
    pub(super) fn write_full(&mut self, answers: &mut Answers<'_>, max_conns: usize) {
        let mut buffer = itoa::Buffer::new();
        let max = buffer.format(max_conns);
        let body_len = FULL_BODY[0].len() + max.len() + FULL_BODY[1].len();
        self.counts.response(503);
        answers.push(b"HTTP/1.1 503 Service Unavailable");
        answers.push(&self.ok_head[b"HTTP/1.1 200 OK".len()..]);
        answers.push(self.date.at(answers.now()));
        answers.push(b"\r\nRetry-After: 1");
        answers.push(TEXT);
        answers.push(b"\r\nContent-Length: ");
        answers.push(itoa::Buffer::new().format(body_len).as_bytes());
        end_head(answers, ConnectionHeader::Close);
        answers.push(FULL_BODY[0]);
        answers.push(max.as_bytes());
        answers.push(FULL_BODY[1]);
    }

    /// Writes the head of a chunked `200 OK` echo, and the prefix as its first chunk.
    pub(super) fn write_chunked(
        &mut self,
        answers: &mut Answers<'_>,
        connection: ConnectionHeader,
        prefix: &[u8],
    ) {
        self.counts.response(200);
        answers.push(&self.ok_head);
        answers.push(self.date.at(answers.now()));
        answers.push(TEXT);
        answers.push(b"\r\nTransfer-Encoding: chunked");
        end_head(answers, connection);
        // An empty chunk would end the answer: an empty prefix gets none.
        if !prefix.is_empty() {
            push_chunk(answers, prefix);
        }
    }
}

/// The `Connection` field, if any, and the empty line that ends a head.
#[inline(always)]
pub(super) fn end_head(answers: &mut Answers<'_>, connection: ConnectionHeader) {
    match connection {
        ConnectionHeader::Persist => answers.push(b"\r\n\r\n"),
        ConnectionHeader::KeepAlive => answers.push(b"\r\nConnection: keep-alive\r\n\r\n"),
        ConnectionHeader::Close => answers.push(b"\r\nConnection: close\r\n\r\n"),
    }
}

/// One chunk of a chunked answer.
pub(super) fn push_chunk(answers: &mut Answers<'_>, data: &[u8]) {
    let mut line = [0u8; 18];
    answers.push(chunk_size_line(data.len(), &mut line));
    answers.push(data);
    answers.push(b"\r\n");
}

/// The size line of a chunk of `n` bytes (hex digits and CRLF), written at the end of `line`.
pub(super) fn chunk_size_line(mut n: usize, line: &mut [u8; 18]) -> &[u8] {
    let mut at = line.len() - 2;
    line[at..].copy_from_slice(b"\r\n");
    loop {
        at -= 1;
        line[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &line[at..]
}

/// The reason phrase of `status` (RFC 9110's, and a few others clients know); empty for a code
/// without one, as RFC 9112 allows.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => "",
    }
}
