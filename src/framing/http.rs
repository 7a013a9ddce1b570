//! HTTP/1.1, the chapter the lesson builds toward: every request is answered `200 OK` with the
//! prefix and what the client said (its body, or its path), on the same loop as the echo
//! protocols, keep-alive and pipelined, strict about what it accepts.
//!
//! Heads are parsed by `httparse` straight from the bytes the loop lends; a connection holds
//! input only for a head that has not completed (at most `--max-header` bytes) or, after a
//! pause, the requests its answers had no room for. Bodies are never held: they are echoed as
//! they arrive. It must never panic on any input, never allocate per request in steady state,
//! and never answer anything after an error response.

mod chunked;
mod date;

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

pub use chunked::{ChunkError, ChunkedDecoder};
pub use date::DateCache;

use super::{Answers, CloseReason, Next, Protocol, ProtocolCounts};
use crate::config::MAX_READ;

/// Header fields accepted in one request head, like nginx's and hyper's defaults; one more is
/// answered 431.
pub const MAX_HEADERS: usize = 100;
/// A held head buffer that grew past this is released once the head is answered, so one long
/// head does not pin its memory to the connection.
const KEEP_HELD_CAPACITY: usize = 4096;
/// The methods `OPTIONS` lists. Every method token is answered, but these are the ones that mean
/// something to an echo.
const ALLOW: &[u8] = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const TEXT: &[u8] = b"\r\nContent-Type: text/plain; charset=utf-8";

/// The limits of HTTP mode, from `--max-header`, `--max-body` and `--header-timeout`.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Longest request head (request line and header fields).
    pub max_header: usize,
    /// Largest request body, by Content-Length or chunks.
    pub max_body: u64,
    /// Time a started head has to complete.
    pub header_timeout: Duration,
}

/// What answers a valid request in place of the echo: another endpoint served with this
/// framing's parser, limits and refusals (the admin endpoint of `--metrics-listen`). [`Echo`]
/// routes nothing, so every request is echoed.
pub trait Route {
    /// The answer to `method` on `path` (the target's path after its `/`, query dropped, not
    /// percent-decoded), or `None` to echo the request. A routed request's body is read and
    /// dropped.
    fn route(&mut self, method: &str, path: &[u8]) -> Option<Routed>;

    /// Writes the body of the answer [`Route::route`] just gave (not for HEAD).
    fn body(&mut self, answers: &mut Answers<'_>);
}

/// An answer chosen by a [`Route`]: its status, type and length; the body follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// The status line's code and reason, e.g. `404 Not Found`.
    pub status: &'static str,
    pub content_type: &'static str,
    /// Bytes of the body.
    pub len: usize,
}

/// HTTP mode's own answers: every request echoed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Route for Echo {
    #[inline(always)]
    fn route(&mut self, _: &str, _: &[u8]) -> Option<Routed> {
        None
    }

    fn body(&mut self, _: &mut Answers<'_>) {}
}

/// The rules of HTTP mode, and the `Date` the loop's connections share; `R` answers the
/// requests it routes, the rest are echoed.
#[derive(Debug, Clone)]
pub struct Http<R = Echo> {
    prefix: Box<[u8]>,
    limits: HttpLimits,
    date: DateCache,
    /// `HTTP/1.1 200 OK`, `Server` and the start of `Date`, written as one piece.
    ok_head: Box<[u8]>,
    /// Responses answered, by status.
    counts: ProtocolCounts,
    route: R,
    /// The server drains: every answer from now on says `Connection: close`, and its
    /// connection closes after it (clients open a new one elsewhere).
    draining: bool,
}

/// A connection's HTTP state between reads. Between requests it holds no heap memory.
#[derive(Debug, Default)]
pub struct HttpSession {
    /// Input not processed yet: a head that has not completed, or after a pause, the requests
    /// whose answers had no room. It always starts at the beginning of a request.
    held: Vec<u8>,
    /// What the next bytes are.
    body: Body,
    /// What the request is answered with.
    reply: Reply,
    /// The answer's head is out. A chunked answer's waits for the first chunk, so a first chunk
    /// that breaks a rule still gets a proper error response.
    started: bool,
    connection: ConnectionHeader,
    /// The connection ends on an error: a refusal, or a body that broke its framing after the
    /// answer had started. For the metrics' close reason; never reset.
    failed: bool,
}

/// What a request is answered with.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Reply {
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

/// What the next bytes of a connection are. Small, since every connection has one: the
/// decoder is 24 bytes.
#[derive(Debug)]
enum Body {
    /// A request head; since when one has been arriving, for `--header-timeout`.
    Head(Option<Instant>),
    /// This many body bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
}

impl Default for Body {
    fn default() -> Self {
        Body::Head(None)
    }
}

impl HttpSession {
    /// When the head being received started arriving, if one is.
    fn head_started(&self) -> Option<Instant> {
        match self.body {
            Body::Head(started) => started,
            _ => None,
        }
    }

    /// Ready for the next request.
    fn end_request(&mut self) {
        self.body = Body::Head(None);
        self.reply = Reply::Echo;
        self.started = false;
        self.connection = ConnectionHeader::Persist;
    }
}

/// What the answer says about the connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: nothing to say.
    #[default]
    Persist,
    /// HTTP/1.0 that asked to persist: `Connection: keep-alive`.
    KeepAlive,
    /// `Connection: close`, and the connection closes after this answer.
    Close,
}

/// How an answer's length is told.
enum Length {
    Bytes(u64),
    /// A routed answer's: its own `Content-Type`, and its length.
    Typed(&'static str, u64),
    Chunked,
    /// 204: neither.
    NoContent,
}

/// A request that gets an error response.
struct Refusal {
    status: &'static str,
    reason: &'static str,
}

fn refusal(status: &'static str, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

const BAD_REQUEST: &str = "400 Bad Request";
const TOO_LARGE: &str = "413 Content Too Large";

impl Http {
    pub fn new(prefix: &[u8], limits: HttpLimits) -> Http {
        Http::with_route(prefix, limits, Echo)
    }
}

impl<R: Route> Http<R> {
    /// HTTP mode whose requests `route` may answer in place of the echo.
    pub fn with_route(prefix: &[u8], limits: HttpLimits, route: R) -> Http<R> {
        let ok_head = format!(
            "HTTP/1.1 200 OK\r\nServer: saythat/{}\r\nDate: ",
            env!("CARGO_PKG_VERSION")
        );
        Http {
            prefix: prefix.into(),
            limits,
            date: DateCache::default(),
            ok_head: ok_head.into_bytes().into(),
            counts: ProtocolCounts::default(),
            route,
            draining: false,
        }
    }

    /// Writes an answer's status line and header fields.
    fn head(
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
            Length::Chunked => {
                answers.push(TEXT);
                answers.push(b"\r\nTransfer-Encoding: chunked");
            }
            Length::NoContent => {
                answers.push(b"\r\nAllow: ");
                answers.push(ALLOW);
            }
        }
        match connection {
            ConnectionHeader::Persist => answers.push(b"\r\n\r\n"),
            ConnectionHeader::KeepAlive => answers.push(b"\r\nConnection: keep-alive\r\n\r\n"),
            ConnectionHeader::Close => answers.push(b"\r\nConnection: close\r\n\r\n"),
        }
    }

    /// Answers an error: one line saying what was wrong, then the connection closes.
    fn refuse(
        &mut self,
        session: &mut HttpSession,
        answers: &mut Answers<'_>,
        refusal: Refusal,
    ) -> Next {
        let body_len = refusal.reason.len() as u64 + 1;
        self.head(
            answers,
            refusal.status,
            Length::Bytes(body_len),
            ConnectionHeader::Close,
        );
        answers.push(refusal.reason.as_bytes());
        answers.push(b"\n");
        session.failed = true;
        session.held = Vec::new();
        session.end_request();
        Next::Close
    }

    /// 431, or 414 when the request line alone is past the limit.
    fn too_long(&self, head: &[u8]) -> Refusal {
        let line_end = memchr::memchr(b'\n', &head[..head.len().min(self.limits.max_header + 1)]);
        if line_end.is_none_or(|end| end >= self.limits.max_header) {
            refusal(
                "414 URI Too Long",
                "the request line is longer than --max-header",
            )
        } else {
            refusal(
                "431 Request Header Fields Too Large",
                "the request head is longer than --max-header",
            )
        }
    }

    /// Answers requests from `input`, which starts at a request boundary or inside the body of
    /// the request in progress. Returns how much of `input` was used and what the loop should
    /// do; unused input is a head that has not completed (`Continue`) or requests waiting for
    /// room (`Pause`).
    fn process(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> (usize, Next) {
        let mut at = 0;
        loop {
            match &mut session.body {
                Body::Length(remaining) => {
                    let take = (*remaining).min((input.len() - at) as u64) as usize;
                    if session.reply == Reply::Echo {
                        answers.push(&input[at..at + take]);
                    }
                    at += take;
                    *remaining -= take as u64;
                    if *remaining > 0 {
                        return (at, Next::Continue);
                    }
                }
                Body::Chunked(decoder) => {
                    let (reply, connection) = (session.reply, session.connection);
                    let echo = reply == Reply::Echo;
                    // Answers of this call may be withdrawn: an error found further on in the
                    // same read still gets a proper error response instead of a cut-short 200.
                    let (mark, was_started) = (answers.len(), session.started);
                    let mut head_due = echo && !session.started;
                    let (prefix, ok_head, date, counts) = (
                        &self.prefix,
                        &self.ok_head,
                        &mut self.date,
                        &mut self.counts,
                    );
                    let result = decoder.decode(&input[at..], self.limits.max_body, |data| {
                        if echo {
                            if head_due {
                                write_chunked_head(
                                    answers, ok_head, date, counts, connection, prefix,
                                );
                                head_due = false;
                            }
                            push_chunk(answers, data);
                        }
                    });
                    let done = decoder.is_done();
                    if echo && !head_due {
                        session.started = true;
                    }
                    match result {
                        Ok(used) => at += used,
                        Err(e) if !was_started => {
                            if session.started {
                                // The 200 begun in this call is withdrawn, and uncounted.
                                self.counts.withdraw(200);
                            }
                            answers.truncate(mark);
                            let refused = match e {
                                ChunkError::TooLarge => {
                                    refusal(TOO_LARGE, "the chunked body is larger than --max-body")
                                }
                                ChunkError::Malformed(why) => refusal(BAD_REQUEST, why),
                            };
                            return (input.len(), self.refuse(session, answers, refused));
                        }
                        // The answer went out in an earlier write: the only honest end is to cut
                        // it short, which every client reports as an incomplete response.
                        Err(_) => {
                            session.failed = true;
                            return (input.len(), Next::Close);
                        }
                    }
                    if !done {
                        return (at, Next::Continue);
                    }
                    // HEAD's and OPTIONS' answers wait for the whole body too, so a malformed
                    // one is refused rather than answered.
                    match reply {
                        Reply::Echo => {
                            if !session.started {
                                write_chunked_head(
                                    answers, ok_head, date, counts, connection, prefix,
                                );
                            }
                            answers.push(b"0\r\n\r\n");
                        }
                        Reply::HeadOnly => {
                            self.head(answers, "200 OK", Length::Chunked, connection)
                        }
                        Reply::Options => {
                            self.head(answers, "204 No Content", Length::NoContent, connection)
                        }
                        Reply::Routed => {}
                    }
                }
                Body::Head(_) => {
                    if at == input.len() {
                        return (at, Next::Continue);
                    }
                    if answers.is_full() {
                        return (at, Next::Pause);
                    }
                    match self.start(session, &input[at..], answers) {
                        Ok(Some(used)) => {
                            at += used;
                            if !matches!(session.body, Body::Head(_)) {
                                continue;
                            }
                        }
                        Ok(None) => return (at, Next::Continue),
                        Err(refused) => {
                            return (input.len(), self.refuse(session, answers, refused))
                        }
                    }
                }
            }
            // The request is answered in full.
            let close = session.connection == ConnectionHeader::Close;
            session.end_request();
            if close {
                return (input.len(), Next::Close);
            }
        }
    }

    /// Parses the head at the start of `input` and answers it (the body, if any, follows).
    /// `Ok(None)`: the head is not complete yet.
    fn start(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Result<Option<usize>, Refusal> {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        let head_len = match request.parse_with_uninit_headers(input, &mut fields) {
            Ok(httparse::Status::Complete(len)) if len <= self.limits.max_header => len,
            Ok(httparse::Status::Complete(_)) => return Err(self.too_long(input)),
            Ok(httparse::Status::Partial) if input.len() > self.limits.max_header => {
                return Err(self.too_long(input))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(parse_error(e)),
        };
        let version = request.version.unwrap_or(1);
        let method = request.method.unwrap_or("GET");
        let target = request.path.unwrap_or("/");
        let fields = Fields::read(request.headers)?;

        if fields.hosts != 1 && (version == 1 || fields.hosts > 1) {
            return Err(refusal(
                BAD_REQUEST,
                "an HTTP/1.1 request needs exactly one Host header",
            ));
        }
        let expect_continue = match fields.expect {
            Expect::None => false,
            // HTTP/1.0 clients cannot understand 100; RFC 9110 says to ignore it from them.
            Expect::Continue => version == 1,
            Expect::Other => {
                return Err(refusal(
                    "417 Expectation Failed",
                    "only Expect: 100-continue is understood",
                ))
            }
        };
        let connection = if fields.close || self.draining || (version == 0 && !fields.keep_alive) {
            ConnectionHeader::Close
        } else if version == 0 {
            ConnectionHeader::KeepAlive
        } else {
            ConnectionHeader::Persist
        };
        let chunked =
            match fields.transfer {
                Transfer::None => false,
                _ if fields.length.is_some() => return Err(refusal(
                    BAD_REQUEST,
                    "Transfer-Encoding and Content-Length together are refused (request smuggling)",
                )),
                _ if version == 0 => {
                    return Err(refusal(
                        BAD_REQUEST,
                        "Transfer-Encoding is not allowed in HTTP/1.0",
                    ))
                }
                Transfer::ChunkedOnly => true,
                Transfer::NotFinalChunked => {
                    return Err(refusal(
                        BAD_REQUEST,
                        "Transfer-Encoding must end in a single chunked",
                    ))
                }
                Transfer::OtherCodings => {
                    return Err(refusal(
                        "501 Not Implemented",
                        "only the chunked transfer coding is implemented",
                    ))
                }
            };
        let length = fields.length.unwrap_or(0);
        if length > self.limits.max_body {
            return Err(refusal(TOO_LARGE, "the body is larger than --max-body"));
        }
        let has_body = chunked || length > 0;
        let options = method == "OPTIONS";
        let head_only = method == "HEAD";
        if target == "*" && !options {
            return Err(refusal(
                BAD_REQUEST,
                "only OPTIONS may have * as its target",
            ));
        }
        let path = echo_path(target)?;
        let decoded = decoded_len(path)?;

        if expect_continue && has_body && head_len == input.len() {
            answers.push(CONTINUE);
        }
        let routed = self.route.route(method, path);
        let reply = if routed.is_some() {
            Reply::Routed
        } else if options {
            Reply::Options
        } else if head_only {
            Reply::HeadOnly
        } else {
            Reply::Echo
        };
        if let Some(routed) = routed {
            let length = Length::Typed(routed.content_type, routed.len as u64);
            self.head(answers, routed.status, length, connection);
            if !head_only {
                self.route.body(answers);
            }
        } else if chunked {
            // Answered as the chunks arrive (echo) or once they all have.
        } else if options {
            self.head(answers, "204 No Content", Length::NoContent, connection);
        } else {
            let said = if has_body { length } else { decoded as u64 };
            let answer_len = self.prefix.len() as u64 + said;
            self.head(answers, "200 OK", Length::Bytes(answer_len), connection);
            if !head_only {
                answers.push(&self.prefix);
                if !has_body {
                    push_decoded(answers, path);
                }
            }
        }
        session.body = if chunked {
            Body::Chunked(ChunkedDecoder::new())
        } else if length > 0 {
            Body::Length(length)
        } else {
            Body::Head(None)
        };
        session.reply = reply;
        // A routed answer is out already: a bad body after it can only cut the connection.
        session.started = reply == Reply::Routed;
        session.connection = connection;
        Ok(Some(head_len))
    }

    /// Answers what `session.held` holds, keeping what is left of it in place.
    fn answer_held(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        let mut held = std::mem::take(&mut session.held);
        let (used, next) = self.process(session, &held, answers);
        if next == Next::Close || next == Next::CloseNow {
            return next;
        }
        held.drain(..used);
        session.held = held;
        self.settle(session, next, answers)
    }

    /// After a call: forgets an answered head's buffer and timer, starts the timer for a head
    /// that has not completed.
    fn settle(&mut self, session: &mut HttpSession, next: Next, answers: &mut Answers<'_>) -> Next {
        match next {
            Next::Continue if session.held.is_empty() => {
                if session.held.capacity() > KEEP_HELD_CAPACITY {
                    session.held = Vec::new();
                }
                if let Body::Head(started) = &mut session.body {
                    *started = None;
                }
            }
            Next::Continue => {
                if session.held.len() > self.limits.max_header {
                    let refused = self.too_long(&session.held);
                    return self.refuse(session, answers, refused);
                }
                if let Body::Head(started) = &mut session.body {
                    started.get_or_insert(answers.now());
                }
            }
            // The wait is ours, not the client's.
            Next::Pause => {
                if let Body::Head(started) = &mut session.body {
                    *started = None;
                }
            }
            Next::Close | Next::CloseNow => {}
        }
        next
    }
}

fn write_chunked_head(
    answers: &mut Answers<'_>,
    ok_head: &[u8],
    date: &mut DateCache,
    counts: &mut ProtocolCounts,
    connection: ConnectionHeader,
    prefix: &[u8],
) {
    counts.response(200);
    answers.push(ok_head);
    answers.push(date.at(answers.now()));
    answers.push(TEXT);
    answers.push(b"\r\nTransfer-Encoding: chunked");
    match connection {
        ConnectionHeader::Persist => answers.push(b"\r\n\r\n"),
        ConnectionHeader::KeepAlive => answers.push(b"\r\nConnection: keep-alive\r\n\r\n"),
        ConnectionHeader::Close => answers.push(b"\r\nConnection: close\r\n\r\n"),
    }
    // An empty chunk would end the answer: an empty prefix gets none.
    if !prefix.is_empty() {
        push_chunk(answers, prefix);
    }
}

/// One chunk of a chunked answer.
fn push_chunk(answers: &mut Answers<'_>, data: &[u8]) {
    let mut size = [0u8; 18];
    let mut at = size.len() - 2;
    size[at..].copy_from_slice(b"\r\n");
    let mut n = data.len();
    loop {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    answers.push(&size[at..]);
    answers.push(data);
    answers.push(b"\r\n");
}

/// What the header fields of a request say about its framing and its connection.
#[derive(Default)]
struct Fields {
    hosts: usize,
    length: Option<u64>,
    transfer: Transfer,
    close: bool,
    keep_alive: bool,
    expect: Expect,
}

#[derive(Default, PartialEq, Eq)]
enum Transfer {
    #[default]
    None,
    /// `chunked`, once, and nothing else.
    ChunkedOnly,
    /// Codings whose last is not `chunked`, or `chunked` more than once.
    NotFinalChunked,
    /// Other codings before a final `chunked` (e.g. `gzip, chunked`).
    OtherCodings,
}

#[derive(Default, PartialEq, Eq)]
enum Expect {
    #[default]
    None,
    Continue,
    Other,
}

impl Fields {
    fn read(headers: &[httparse::Header<'_>]) -> Result<Fields, Refusal> {
        let mut fields = Fields::default();
        let (mut fields_seen, mut chunked, mut codings, mut last_chunked) = (0, 0, 0, false);
        for header in headers {
            let name = header.name;
            let value = header.value;
            if name.eq_ignore_ascii_case("host") {
                fields.hosts += 1;
            } else if name.eq_ignore_ascii_case("content-length") {
                let length = parse_length(value)?;
                if fields.length.is_some_and(|seen| seen != length) {
                    return Err(refusal(
                        BAD_REQUEST,
                        "Content-Length given twice with different values",
                    ));
                }
                fields.length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                fields_seen += 1;
                for coding in list(value) {
                    codings += 1;
                    last_chunked = coding.eq_ignore_ascii_case(b"chunked");
                    chunked += usize::from(last_chunked);
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for option in list(value) {
                    fields.close |= option.eq_ignore_ascii_case(b"close");
                    fields.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                // One expectation not understood is enough for 417, whatever else is asked.
                if !trim(value).eq_ignore_ascii_case(b"100-continue") {
                    fields.expect = Expect::Other;
                } else if fields.expect == Expect::None {
                    fields.expect = Expect::Continue;
                }
            }
        }
        fields.transfer = match (codings, chunked, last_chunked) {
            // An empty Transfer-Encoding is still one: ignoring it would frame the body by a
            // Content-Length that a proxy in front may have read differently.
            (0, _, _) if fields_seen == 0 => Transfer::None,
            (1, 1, true) => Transfer::ChunkedOnly,
            (_, 1, true) => Transfer::OtherCodings,
            _ => Transfer::NotFinalChunked,
        };
        Ok(fields)
    }
}

/// `Content-Length`: digits only (no sign, no list, no spaces inside), within a u64.
fn parse_length(value: &[u8]) -> Result<u64, Refusal> {
    let digits = trim(value);
    let bad = || refusal(BAD_REQUEST, "Content-Length must be a number of bytes");
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(bad)
}

/// The non-empty elements of a comma-separated field value.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|item| !item.is_empty())
}

fn trim(value: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

fn parse_error(e: httparse::Error) -> Refusal {
    match e {
        httparse::Error::Version => refusal(
            "505 HTTP Version Not Supported",
            "only HTTP/1.0 and HTTP/1.1 are supported",
        ),
        httparse::Error::TooManyHeaders => refusal(
            "431 Request Header Fields Too Large",
            "more than 100 header fields",
        ),
        httparse::Error::HeaderName => refusal(BAD_REQUEST, "bad header field name"),
        httparse::Error::HeaderValue => refusal(BAD_REQUEST, "bad header field value"),
        httparse::Error::NewLine => refusal(BAD_REQUEST, "bad line ending in the request head"),
        httparse::Error::Token => refusal(BAD_REQUEST, "not an HTTP request"),
        _ => refusal(BAD_REQUEST, "bad request line"),
    }
}

/// What a request without a body said: its target's path after the leading `/`, query dropped.
fn echo_path(target: &str) -> Result<&[u8], Refusal> {
    let path = if let Some(path) = target.strip_prefix('/') {
        path
    } else if target == "*" {
        ""
    } else if let Some(rest) = strip_scheme(target) {
        // absolute-form (RFC 9112 §3.2.2), which servers must accept.
        rest.find('/').map_or("", |slash| &rest[slash + 1..])
    } else {
        return Err(refusal(BAD_REQUEST, "the request target must start with /"));
    };
    let path = path.as_bytes();
    let end = memchr::memchr(b'?', path).unwrap_or(path.len());
    Ok(&path[..end])
}

fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

/// The length of `path` percent-decoded; a `%` not followed by two hex digits is refused (the
/// `percent-encoding` crate passes such bytes through, which hides a client's bug).
fn decoded_len(path: &[u8]) -> Result<usize, Refusal> {
    let mut escapes = 0;
    // An escape's two digits are hex, never `%`, so every `%` found starts an escape.
    for at in memchr::memchr_iter(b'%', path) {
        let pair = path.get(at + 1..at + 3);
        if !pair.is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit)) {
            return Err(refusal(
                BAD_REQUEST,
                "bad percent-encoding in the request target",
            ));
        }
        escapes += 1;
    }
    Ok(path.len() - 2 * escapes)
}

/// Writes `path` percent-decoded (already checked by `decoded_len`), in runs between escapes.
fn push_decoded(answers: &mut Answers<'_>, path: &[u8]) {
    let mut rest = path;
    while let Some(at) = memchr::memchr(b'%', rest) {
        answers.push(&rest[..at]);
        let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        answers.push(&[hex(rest[at + 1]) << 4 | hex(rest[at + 2])]);
        rest = &rest[at + 3..];
    }
    answers.push(rest);
}

/// A head can only end where an empty line starts.
fn has_head_end(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\n\r\n").is_some()
        || memchr::memmem::find(bytes, b"\n\n").is_some()
}

impl<R: Route> Protocol for Http<R> {
    type Session = HttpSession;

    /// As much as the room allows: requests whose answers do not fit are held until they do.
    fn read_len(&self, _: &HttpSession, room: usize) -> usize {
        room.clamp(1, MAX_READ)
    }

    fn on_read(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Next {
        if session.held.is_empty() {
            let (used, next) = self.process(session, input, answers);
            if matches!(next, Next::Continue | Next::Pause) {
                session.held.extend_from_slice(&input[used..]);
            }
            return self.settle(session, next, answers);
        }
        // Reads come only while no pause holds requests back, so what is held is the start of
        // a head. Parsing it again only when an empty line may have arrived keeps a head sent a
        // byte at a time from costing a parse per byte.
        let old = session.held.len();
        session.held.extend_from_slice(input);
        if !has_head_end(&session.held[old.saturating_sub(3)..]) {
            return self.settle(session, Next::Continue, answers);
        }
        self.answer_held(session, answers)
    }

    fn on_writable(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        if session.held.is_empty() {
            return Next::Continue;
        }
        self.answer_held(session, answers)
    }

    fn on_eof(&mut self, _: &mut HttpSession, _: &mut Answers<'_>) {
        // A request cut short by the client gets no answer: the client is gone.
    }

    fn deadline(&self, session: &HttpSession) -> Option<Instant> {
        session
            .head_started()
            .and_then(|started| started.checked_add(self.limits.header_timeout))
    }

    fn on_deadline(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        if session.head_started().is_none() {
            return Next::Continue;
        }
        self.refuse(
            session,
            answers,
            refusal(
                "408 Request Timeout",
                "the request head did not complete within --header-timeout",
            ),
        )
    }

    /// Between requests: nothing held, no body in progress.
    fn at_boundary(&self, session: &HttpSession) -> bool {
        session.held.is_empty() && matches!(session.body, Body::Head(_))
    }

    fn on_drain(&mut self) {
        self.draining = true;
    }

    fn counts(&self) -> &ProtocolCounts {
        &self.counts
    }

    /// During the drain, a connection that ends after an answer (which said `Connection:
    /// close`) ends for the drain.
    fn close_reason(&self, session: &HttpSession) -> CloseReason {
        if session.failed {
            CloseReason::HttpError
        } else if self.draining {
            CloseReason::Drain
        } else {
            CloseReason::Client
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &[u8] = b"You say that ";

    fn http(max_header: usize, max_body: u64) -> Http {
        Http::new(
            P,
            HttpLimits {
                max_header,
                max_body,
                header_timeout: Duration::from_secs(10),
            },
        )
    }

    /// Replaces each Date value, which follows the wall clock, by `D`.
    fn mask_dates(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(at) = memchr::memmem::find(rest, b"Date: ") {
            out.extend_from_slice(&rest[..at + 6]);
            out.push(b'D');
            rest = &rest[(at + 6 + date::DATE_LEN).min(rest.len())..];
        }
        out.extend_from_slice(rest);
        out
    }

    /// Feeds `pieces` as reads with `room` per call, answering held requests whenever the
    /// protocol pauses, as the loop does; checks the session's bounds after every call.
    fn feed(http: &mut Http, pieces: &[&[u8]], room: usize) -> (Vec<u8>, Next) {
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in pieces {
            let mut next =
                http.on_read(&mut session, piece, &mut Answers::new(&mut out, room, now));
            while next == Next::Pause {
                assert!(session.held.len() <= http.limits.max_header + MAX_READ + piece.len());
                next = http.on_writable(&mut session, &mut Answers::new(&mut out, room, now));
            }
            assert!(
                session.held.len() <= http.limits.max_header,
                "{} bytes held after a call",
                session.held.len()
            );
            if next != Next::Continue {
                return (mask_dates(&out), next);
            }
        }
        http.on_eof(&mut session, &mut Answers::new(&mut out, room, now));
        (mask_dates(&out), Next::Continue)
    }

    fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts {
            pieces.push(&data[start..cut]);
            start = cut;
        }
        pieces.push(&data[start..]);
        pieces
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nServer: saythat/{}\r\nDate: D\r\nContent-Type: text/plain; \
             charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            P.len() + body.len()
        )
        .into_bytes();
        answer.extend_from_slice(P);
        answer.extend_from_slice(body);
        answer
    }

    /// Between requests only: not while a head is partial, nor while a body is on its way; and
    /// once the server drains, every answer says `Connection: close` and ends the connection.
    #[test]
    fn at_a_boundary_between_requests_and_close_once_draining() {
        let mut http = http(8192, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let mut read = |http: &mut Http, session: &mut HttpSession, input: &[u8]| {
            http.on_read(session, input, &mut Answers::new(&mut out, usize::MAX, now))
        };
        assert!(http.at_boundary(&session));
        read(&mut http, &mut session, b"GET /a HTTP/1.1\r\nHost: a\r\n");
        assert!(!http.at_boundary(&session), "a partial head");
        read(&mut http, &mut session, b"\r\n");
        assert!(http.at_boundary(&session));
        read(
            &mut http,
            &mut session,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab",
        );
        assert!(!http.at_boundary(&session), "a body on its way");
        assert_eq!(read(&mut http, &mut session, b"cd"), Next::Continue);
        assert!(http.at_boundary(&session));
        assert_eq!(http.close_reason(&session), CloseReason::Client);

        http.on_drain();
        let next = read(
            &mut http,
            &mut session,
            b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(next, Next::Close);
        assert!(
            mask_dates(&out).ends_with(b"Connection: close\r\n\r\nYou say that b"),
            "{}",
            out.escape_ascii()
        );
        assert_eq!(http.close_reason(&session), CloseReason::Drain);
    }

    #[test]
    fn answers_the_path_or_the_body() {
        let mut http = http(8192, 1 << 20);
        let wire = b"GET /Hello%3F%20anyone?x=1 HTTP/1.1\r\nHost: a\r\n\r\n\
                     POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let (out, next) = feed(&mut http, &[wire], usize::MAX);
        assert_eq!(next, Next::Continue);
        assert_eq!(out, [ok(b"Hello? anyone"), ok(b"hello")].concat());
    }

    #[test]
    fn a_chunked_request_is_answered_chunked() {
        let mut http = http(8192, 1 << 20);
        let wire = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n0\r\n\r\n";
        let (out, _) = feed(&mut http, &[wire], usize::MAX);
        let expected = format!(
            "HTTP/1.1 200 OK\r\nServer: saythat/{}\r\nDate: D\r\nContent-Type: text/plain; \
             charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nYou say that \r\n\
             5\r\nhello\r\n0\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }

    /// Answers `/hi` itself; the rest is echoed.
    #[derive(Debug, Clone)]
    struct Hi;

    impl Route for Hi {
        fn route(&mut self, _: &str, path: &[u8]) -> Option<Routed> {
            (path == b"hi").then_some(Routed {
                status: "404 Not Found",
                content_type: "text/x",
                len: 3,
            })
        }

        fn body(&mut self, answers: &mut Answers<'_>) {
            answers.push(b"hi\n");
        }
    }

    /// A routed request gets the route's answer (no body for HEAD), its body is read and
    /// dropped, and the requests around it are answered as always.
    #[test]
    fn a_route_answers_in_place_of_the_echo() {
        let mut http = Http::with_route(P, http(8192, 1 << 20).limits, Hi);
        let wire = b"GET /hi?x HTTP/1.1\r\nHost: a\r\n\r\n\
                     HEAD /hi HTTP/1.1\r\nHost: a\r\n\r\n\
                     POST /hi HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody\
                     GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let next = http.on_read(
            &mut session,
            wire,
            &mut Answers::new(&mut out, usize::MAX, Instant::now()),
        );
        assert_eq!(next, Next::Continue);
        let routed = format!(
            "HTTP/1.1 404 Not Found\r\nServer: saythat/{}\r\nDate: D\r\nContent-Type: text/x\r\n\
             Content-Length: 3\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let expected = [
            routed.as_bytes(),
            b"hi\n",
            routed.as_bytes(),
            routed.as_bytes(),
            b"hi\n",
            &ok(b"a"),
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&mask_dates(&out)),
            String::from_utf8_lossy(&expected)
        );
    }

    /// Every response is counted by status, and a refusal makes the close an HTTP error.
    #[test]
    fn responses_are_counted_and_a_refusal_is_an_error() {
        let mut http = http(8192, 1 << 20);
        let wire = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
                     POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n\
                     OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let next = http.on_read(
            &mut session,
            wire,
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!(next, Next::Continue);
        assert_eq!(http.close_reason(&session), CloseReason::Client);
        let next = http.on_read(
            &mut session,
            b"GET / HTTP/1.1\r\n\r\n",
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!(next, Next::Close);
        assert_eq!(http.close_reason(&session), CloseReason::HttpError);
        let counts = http.counts();
        assert_eq!(
            (
                counts.messages,
                counts.responses(200),
                counts.responses(204),
                counts.responses(400)
            ),
            (4, 2, 1, 1)
        );
    }

    #[test]
    fn nothing_is_answered_after_an_error() {
        let mut http = http(8192, 1 << 20);
        let wire = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
                     GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
        let (out, next) = feed(&mut http, &[wire], usize::MAX);
        assert_eq!(next, Next::Close);
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(memchr::memmem::find(&out, b"smuggled").is_none());
        assert_eq!(memchr::memmem::find_iter(&out, b"HTTP/1.1").count(), 1);
    }

    /// With a 4 KiB prefix, 200 pipelined GETs answer far more than the room: the requests
    /// past it are held and answered once there is room again, all of them, in order.
    #[test]
    fn pipelined_answers_past_the_room_wait_for_room() {
        let mut http = Http::new(
            &[b'p'; 4096],
            HttpLimits {
                max_header: 8192,
                max_body: 0,
                header_timeout: Duration::from_secs(10),
            },
        );
        let request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let wire = request.repeat(200);
        let mut session = HttpSession::default();
        let now = Instant::now();
        let mut one = Vec::new();
        http.on_read(
            &mut session,
            request,
            &mut Answers::new(&mut one, usize::MAX, now),
        );
        let room = 64 * 1024;
        let mut out = Vec::new();
        let mut next = http.on_read(&mut session, &wire, &mut Answers::new(&mut out, room, now));
        let mut answered = out.len();
        let mut pauses = 0;
        while next == Next::Pause {
            pauses += 1;
            out.clear();
            next = http.on_writable(&mut session, &mut Answers::new(&mut out, room, now));
            assert!(out.len() <= room + 8192, "{} bytes in one call", out.len());
            answered += out.len();
        }
        assert_eq!(next, Next::Continue);
        assert!(pauses >= 10, "{pauses} pauses");
        assert_eq!(answered, 200 * one.len());
        assert!(session.held.is_empty());
    }

    /// An idle keep-alive connection holds no heap memory.
    #[test]
    fn nothing_is_held_between_requests() {
        let mut http = http(8192, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in [&b"GET /a HTTP/1.1\r\nHo"[..], b"st: a\r\n\r\n"] {
            http.on_read(
                &mut session,
                piece,
                &mut Answers::new(&mut out, usize::MAX, now),
            );
        }
        assert!(session.held.is_empty());
        assert!(matches!(session.body, Body::Head(None)));
        assert_eq!(mask_dates(&out), ok(b"a"));
    }

    #[test]
    fn a_head_that_stalls_gets_408_at_its_deadline() {
        let mut http = http(8192, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        http.on_read(
            &mut session,
            b"GET / HTTP/1.1\r\n",
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!(http.deadline(&session), Some(now + Duration::from_secs(10)));
        let next = http.on_deadline(&mut session, &mut Answers::new(&mut out, usize::MAX, now));
        assert_eq!(next, Next::Close);
        assert!(out.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    }

    /// A well-formed stream of GETs, Content-Length POSTs and chunked POSTs.
    fn requests() -> impl Strategy<Value = Vec<u8>> {
        let one = prop_oneof![
            "[a-z0-9%]{0,12}".prop_map(|path| {
                let path = path.replace('%', "%25");
                format!("GET /{path}?q=1 HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
            }),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|body| {
                let mut wire = format!(
                    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                wire.extend_from_slice(&body);
                wire
            }),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 0..4)
                .prop_map(|chunks| {
                    let mut wire =
                        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            .to_vec();
                    for chunk in chunks {
                        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        wire.extend_from_slice(&chunk);
                        wire.extend_from_slice(b"\r\n");
                    }
                    wire.extend_from_slice(b"0\r\n\r\n");
                    wire
                }),
        ];
        proptest::collection::vec(one, 1..6).prop_map(|requests| requests.concat())
    }

    /// The chunks of a chunked answer depend on how the request's chunks arrived; what they
    /// carry does not. Decodes every chunked answer to its body.
    fn unchunk(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(at) = memchr::memmem::find(rest, b"Transfer-Encoding: chunked\r\n\r\n") {
            let head_end = at + b"Transfer-Encoding: chunked\r\n\r\n".len();
            out.extend_from_slice(&rest[..head_end]);
            let mut decoder = ChunkedDecoder::new();
            let mut body = Vec::new();
            let used = decoder
                .decode(&rest[head_end..], u64::MAX, |data| {
                    body.extend_from_slice(data)
                })
                .expect("a chunked answer");
            out.extend_from_slice(&body);
            rest = &rest[head_end + used..];
        }
        out.extend_from_slice(rest);
        out
    }

    proptest! {
        /// However TCP splits valid requests, and however little room there is, the same
        /// answers come out.
        #[test]
        fn answers_do_not_depend_on_splits_or_room(
            wire in requests(),
            cuts in proptest::collection::vec(0usize..1000, 0..8),
            room in 1usize..400,
        ) {
            let mut http = http(8192, 1 << 20);
            let (whole, next) = feed(&mut http, &[&wire], usize::MAX);
            prop_assert_eq!(next, Next::Continue);
            let (pieces, next) = feed(&mut http, &split(&wire, &cuts), room);
            prop_assert_eq!(next, Next::Continue);
            prop_assert_eq!(unchunk(&pieces), unchunk(&whole));
        }

        /// Arbitrary bytes, split anywhere: never a panic, never more held than the limits
        /// (checked in `feed`), and an error is the last answer.
        #[test]
        fn arbitrary_bytes_are_handled(
            wire in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b':'), any::<u8>()], 0..600),
            prefix in prop_oneof![Just(b"GET / HTTP/1.1\r\n".to_vec()), Just(Vec::new())],
            cuts in proptest::collection::vec(0usize..700, 0..8),
            room in 1usize..400,
        ) {
            let mut http = http(256, 100);
            let wire = [prefix, wire].concat();
            let (out, next) = feed(&mut http, &split(&wire, &cuts), room);
            let error = [&b"HTTP/1.1 4"[..], b"HTTP/1.1 5"]
                .iter()
                .filter_map(|status| memchr::memmem::find(&out, status))
                .min();
            if let Some(at) = error {
                prop_assert_eq!(next, Next::Close);
                prop_assert!(out.ends_with(b"\n"));
                for status in [&b"HTTP/1.1 1"[..], b"HTTP/1.1 2"] {
                    prop_assert!(memchr::memmem::find(&out[at..], status).is_none(), "an answer after an error");
                }
            }
        }
    }
}
