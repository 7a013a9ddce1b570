//! Reading a request head: the glue around httparse, what the header fields say about the
//! body and the connection, and the refusal table for what is not accepted (the target's own
//! rules are `target`'s, the Host's `host`'s).
//!
//! Pure functions over the bytes the loop lends: no I/O, no allocation, no state kept between
//! calls. It must never accept a head that frames its body two ways (request smuggling), and
//! never answer anything itself: it says what to answer, or why not.

use std::mem::MaybeUninit;

use super::host::valid_host;
use super::target;

/// Header fields accepted in one request head, like nginx's and hyper's defaults; one more is
/// answered 431.
pub const MAX_HEADERS: usize = 100;

/// Empty lines accepted before a request line. RFC 9112 §2.2 asks a server to ignore at least
/// one (old clients send a CRLF after a POST body); hyper and nginx accept a few. One more is
/// answered 400 (its reason names the number), so a client cannot keep a connection busy on
/// empty lines alone.
pub const MAX_EMPTY_LINES: usize = 8;

/// The longest method accepted. The longest registered ones (`UPDATEREDIRECTREF`,
/// `BASELINE-CONTROL`) are under 20 bytes; a longer token is no method this server could know,
/// and is answered 501 as soon as it passes this, rather than read up to `--max-header` and
/// answered 414 (the target is not what is long).
pub const MAX_METHOD: usize = 32;

/// A request that gets an error response.
pub(super) struct Refusal {
    /// The status line's code and reason, e.g. `400 Bad Request`.
    pub status: &'static str,
    /// The one line of the answer's body, saying what was wrong.
    pub reason: &'static str,
}

pub(super) fn refusal(status: &'static str, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

pub(super) const BAD_REQUEST: &str = "400 Bad Request";
pub(super) const TOO_LARGE: &str = "413 Content Too Large";

/// What the answer says about the connection: what the request's version and `Connection`
/// field asked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: nothing to say.
    #[default]
    Persist,
    /// HTTP/1.0 that asked to persist: `Connection: keep-alive`.
    KeepAlive,
    /// `Connection: close`, and the connection closes after this answer.
    Close,
}

/// A complete head that is accepted: what answering it needs. Borrows the input.
pub(super) struct Head<'a> {
    /// Bytes of the head, from the request line to its empty line.
    pub len: usize,
    pub method: &'a str,
    /// What a request without a body says: the target's path after its `/`, query dropped,
    /// still percent-encoded (checked; see `target::push_decoded`).
    pub path: &'a [u8],
    /// Bytes of `path` percent-decoded.
    pub decoded_len: usize,
    /// The request may ask for test-backend controls (issue 17): its target has a query, or a
    /// field's name starts with `x-` (any case). Its head is read again for them then, off the
    /// common path (`controlled`): one flag keeps a `Head` as small as it was.
    pub controls: bool,
    /// A field named `Upgrade` came: the head is read again for a WebSocket upgrade (`upgrade`).
    pub upgrade: bool,
    /// What the request asked of its connection.
    pub connection: ConnectionHeader,
    /// `Expect: 100-continue` from a client that understands 100.
    pub expect_continue: bool,
    /// The body is chunked; otherwise it is `length` bytes.
    pub chunked: bool,
    /// Content-Length, at most `--max-body`; 0 without one.
    pub length: u64,
    /// `OPTIONS`: answered 204 with `Allow`.
    pub options: bool,
    /// `HEAD`: answered with the echo's head alone.
    pub head_only: bool,
}

/// Parses and checks the head at the start of `input`. `Ok(None)`: it has not completed yet
/// (and is within `max_header`).
///
/// Inlined into its one caller, as it was when it was part of that caller: an outlined call
/// would return the whole `Head` through memory on every request.
#[inline(always)]
pub(super) fn parse(
    input: &[u8],
    max_header: usize,
    max_body: u64,
) -> Result<Option<Head<'_>>, Refusal> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(input, &mut fields) {
        Ok(httparse::Status::Complete(len)) if len <= max_header => len,
        Ok(httparse::Status::Complete(_)) => return Err(too_long(input, max_header)),
        Ok(httparse::Status::Partial) if input.len() > max_header => {
            return Err(too_long(input, max_header))
        }
        Ok(httparse::Status::Partial) => return partial(input),
        // httparse knows HTTP/1.0 and 1.1 only: the rest is read here, off the common path.
        Err(httparse::Error::Version) => return other_version(input, max_header, max_body),
        Err(e) => return Err(parse_error(e)),
    };
    let version = request.version.unwrap_or(1);
    let method = request.method.unwrap_or("GET");
    let target = request.path.unwrap_or("/");
    accept(head_len, version, method, target, request.headers, max_body)
}

/// Checks a parsed head: what its fields say about its framing and its connection, its Host,
/// its target. `version` is the minor version, 0 or 1.
#[inline(always)]
fn accept<'a>(
    head_len: usize,
    version: u8,
    method: &'a str,
    target: &'a str,
    headers: &[httparse::Header<'_>],
    max_body: u64,
) -> Result<Option<Head<'a>>, Refusal> {
    if method.len() > MAX_METHOD {
        return Err(method_too_long());
    }
    let fields = Fields::read(headers)?;

    if fields.hosts != 1 && (version == 1 || fields.hosts > 1) {
        return Err(refusal(
            BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    // With an absolute-form target, the target's authority is the host and the Host field is
    // ignored (RFC 9112 §3.2.2; it is still required above, as RFC 9112 §3.2 says).
    match (target::authority(target), fields.host) {
        (Some(authority), _) if !valid_host(authority) => {
            return Err(refusal(
                BAD_REQUEST,
                "the request target's authority is not a valid host",
            ))
        }
        (None, Some(host)) if !valid_host(host) && (version == 1 || !host.is_empty()) => {
            return Err(refusal(BAD_REQUEST, "the Host header is not a valid host"))
        }
        _ => {}
    }
    let expect_continue = match fields.said & (EXPECT_CONTINUE | EXPECT_OTHER) {
        0 => false,
        // HTTP/1.0 clients cannot understand 100; RFC 9110 says to ignore it from them.
        EXPECT_CONTINUE => version == 1,
        _ => {
            return Err(refusal(
                "417 Expectation Failed",
                "only Expect: 100-continue is understood",
            ))
        }
    };
    let connection = if fields.has(CLOSE) || (version == 0 && !fields.has(KEEP_ALIVE)) {
        ConnectionHeader::Close
    } else if version == 0 {
        ConnectionHeader::KeepAlive
    } else {
        ConnectionHeader::Persist
    };
    let chunked = match fields.said & OTHER_CODINGS {
        0 => false,
        _ if fields.length.is_some() => {
            return Err(refusal(
                BAD_REQUEST,
                "Transfer-Encoding and Content-Length together are refused (request smuggling)",
            ))
        }
        _ if version == 0 => {
            return Err(refusal(
                BAD_REQUEST,
                "Transfer-Encoding is not allowed in HTTP/1.0",
            ))
        }
        CHUNKED_ONLY => true,
        NOT_FINAL_CHUNKED => {
            return Err(refusal(
                BAD_REQUEST,
                "Transfer-Encoding must end in a single chunked",
            ))
        }
        _ => {
            return Err(refusal(
                "501 Not Implemented",
                "only the chunked transfer coding is implemented",
            ))
        }
    };
    let length = fields.length.unwrap_or(0);
    if length > max_body {
        return Err(refusal(TOO_LARGE, "the body is larger than --max-body"));
    }
    let options = method == "OPTIONS";
    let head_only = method == "HEAD";
    if target == "*" && !options {
        return Err(refusal(
            BAD_REQUEST,
            "only OPTIONS may have * as its target",
        ));
    }
    if !target.is_ascii() {
        return Err(refusal(
            BAD_REQUEST,
            "the request target must be ASCII (percent-encode the rest)",
        ));
    }
    let (path, decoded_len, query) =
        target::echo_path(target).map_err(|why| refusal(BAD_REQUEST, why))?;
    Ok(Some(Head {
        len: head_len,
        method,
        path,
        decoded_len,
        controls: query | fields.has(X_FIELD),
        upgrade: fields.has(UPGRADE),
        connection,
        expect_continue,
        chunked,
        length,
        options,
        head_only,
    }))
}

/// A head that has not completed: wait for more, unless what has come is already a method
/// longer than any known.
#[cold]
fn partial(input: &[u8]) -> Result<Option<Head<'_>>, Refusal> {
    let line = &input[empty_lines(input).0..];
    if line.len() > MAX_METHOD && memchr::memchr(b' ', &line[..=MAX_METHOD]).is_none() {
        return Err(method_too_long());
    }
    Ok(None)
}

fn method_too_long() -> Refusal {
    refusal(
        "501 Not Implemented",
        "the method is longer than any this server knows",
    )
}

/// The request line's version is not `HTTP/1.0` or `HTTP/1.1` (httparse's `Version` error).
/// RFC 9112 §2.3: a version is `HTTP/` DIGIT `.` DIGIT and nothing else; anything else is a
/// malformed request line (400), a whole one of a major version other than 1 is 505, and a
/// later HTTP/1 minor version is answered as HTTP/1.1.
///
/// httparse has read the method and the target before it looked at the version, so the line
/// is `method SP target SP rest`; a space in the target shows as a space in `rest`.
#[cold]
#[inline(never)]
fn other_version(
    input: &[u8],
    max_header: usize,
    max_body: u64,
) -> Result<Option<Head<'_>>, Refusal> {
    let start = empty_lines(input).0;
    let bad = |why| Err(refusal(BAD_REQUEST, why));
    let text = &input[start..];
    let line_end = memchr::memchr(b'\n', text);
    let line = &text[..line_end.unwrap_or(text.len())];
    // Read as bytes, not text: whether a bad byte is in sight must not change the reason.
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(rest)) = (parts.next(), parts.next(), parts.next())
    else {
        return bad("bad request line");
    };
    let so_far = rest.strip_suffix(b"\r").unwrap_or(rest);
    let version = if line_end.is_some() { so_far } else { rest };
    let pattern = |at: usize, b: u8| match at {
        0..=4 => b == b"HTTP/"[at],
        6 => b == b'.',
        _ => b.is_ascii_digit(),
    };
    let well_formed = |v: &[u8]| v.iter().enumerate().all(|(at, &b)| pattern(at, b));
    let like_a_version = |start: &[u8]| b"HTTP"[..start.len()].eq_ignore_ascii_case(start);
    let undecided =
        (so_far.len() <= 8 && well_formed(so_far)) || (rest.len() < 4 && like_a_version(rest));
    if line_end.is_none() && undecided {
        // Perhaps a version still arriving (`HTTP/2` may become `HTTP/2.0`), or too little
        // of what follows the space to tell a version from more of the target.
        return if input.len() > max_header {
            Err(too_long(input, max_header))
        } else {
            Ok(None)
        };
    }
    if version.len() != 8 || !well_formed(version) {
        // Said from the first bytes after the space alone, so the reason is the same however
        // the line arrives: what does not start like a version is more of the target.
        return bad(if like_a_version(&rest[..rest.len().min(4)]) {
            "the HTTP version must be HTTP/ DIGIT . DIGIT"
        } else {
            "whitespace inside the request target"
        });
    }
    if !version.starts_with(b"HTTP/1.") {
        return Err(refusal(
            "505 HTTP Version Not Supported",
            "only HTTP/1.0 and HTTP/1.1 are supported",
        ));
    }
    // httparse has checked both as tokens (ASCII) before it looked at the version.
    let (Ok(method), Ok(target)) = (std::str::from_utf8(method), std::str::from_utf8(target))
    else {
        return bad("bad request line");
    };
    // HTTP/1.2 and later minor versions: answered as HTTP/1.1, which they must understand.
    let fields_at = start + line.len() + 1;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (fields_len, count) = match httparse::parse_headers(&input[fields_at..], &mut fields) {
        Ok(httparse::Status::Complete((len, read))) if fields_at + len <= max_header => {
            (len, read.len())
        }
        Ok(httparse::Status::Complete(_)) => return Err(too_long(input, max_header)),
        Ok(httparse::Status::Partial) if input.len() > max_header => {
            return Err(too_long(input, max_header))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(parse_error(e)),
    };
    accept(
        fields_at + fields_len,
        1,
        method,
        target,
        &fields[..count],
        max_body,
    )
}

/// The bytes and the number of the empty lines (CRLF or a bare LF) at the start of `input`. A
/// CR at its very end is not counted: its LF has not come yet.
pub(super) fn empty_lines(input: &[u8]) -> (usize, usize) {
    let (mut at, mut lines) = (0, 0);
    loop {
        match input.get(at..at + 2) {
            Some([b'\r', b'\n']) => at += 2,
            _ if input.get(at) == Some(&b'\n') => at += 1,
            _ => return (at, lines),
        }
        lines += 1;
    }
}

/// The request that `input` starts is a HEAD: its error answer has no body (RFC 9110 §9.3.2).
pub(super) fn is_head(input: &[u8]) -> bool {
    input[empty_lines(input).0..].starts_with(b"HEAD ")
}

/// 431, or 414 when the request line alone is past `max_header`, or 501 when its method is.
pub(super) fn too_long(head: &[u8], max_header: usize) -> Refusal {
    let head = &head[..head.len().min(max_header + 1)];
    let line = &head[empty_lines(head).0..];
    if line.len() > MAX_METHOD && memchr::memchr(b' ', &line[..=MAX_METHOD]).is_none() {
        return method_too_long();
    }
    let line_end = memchr::memchr(b'\n', head);
    if line_end.is_none_or(|end| end >= max_header) {
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

/// A head can only end where an empty line starts.
pub(super) fn has_head_end(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\n\r\n").is_some()
        || memchr::memmem::find(bytes, b"\n\n").is_some()
}

/// What the header fields of a request say about its framing and its connection.
#[derive(Default)]
struct Fields<'h> {
    hosts: usize,
    /// The value of the last Host field (there must be one only).
    host: Option<&'h [u8]>,
    length: Option<u64>,
    /// What the other fields said, a bit each (`CLOSE`, ...): one byte, so that the inlined
    /// checks after `Fields::read` hold one register, not six.
    said: u8,
}

// `Fields::said`: Connection's `close` and `keep-alive`, a name starting with `x-`, a field
// named `Upgrade`, `Expect: 100-continue`, another expectation (one is enough for 417).
const CLOSE: u8 = 1;
const KEEP_ALIVE: u8 = 1 << 1;
const X_FIELD: u8 = 1 << 2;
const UPGRADE: u8 = 1 << 3;
const EXPECT_CONTINUE: u8 = 1 << 4;
const EXPECT_OTHER: u8 = 1 << 5;
// Its top two bits, Transfer-Encoding's codings, when there is one: `chunked` once and nothing
// else; a last coding not `chunked`, or `chunked` more than once; others before a final
// `chunked` (e.g. `gzip, chunked`).
const CHUNKED_ONLY: u8 = 1 << 6;
const NOT_FINAL_CHUNKED: u8 = 2 << 6;
const OTHER_CODINGS: u8 = 3 << 6;

impl Fields<'_> {
    fn has(&self, bit: u8) -> bool {
        self.said & bit != 0
    }
}

impl<'h> Fields<'h> {
    fn read(headers: &[httparse::Header<'h>]) -> Result<Fields<'h>, Refusal> {
        let mut fields = Fields::default();
        let (mut fields_seen, mut chunked, mut codings, mut last_chunked) = (0, 0, 0, false);
        for header in headers {
            let name = header.name.as_bytes();
            let value = header.value;
            // The length picks the one name a field can be, so each is compared with one.
            let known = match name.len() {
                4 => is_name(name, b"host"),
                6 => is_name(name, b"expect"),
                7 => {
                    fields.said |= UPGRADE * u8::from(is_name(name, b"upgrade"));
                    false
                }
                10 => is_name(name, b"connection"),
                14 => is_name(name, b"content-length"),
                17 => is_name(name, b"transfer-encoding"),
                _ => false,
            };
            if !known {
                // An `x-` name may be a control (issue 17), read again off the common path.
                fields.said |=
                    X_FIELD * u8::from(name.get(1) == Some(&b'-') && name[0] | 0x20 == b'x');
                continue;
            }
            if name.len() == 4 {
                fields.hosts += 1;
                // httparse has trimmed the whitespace around it.
                fields.host = Some(value);
            } else if name.len() == 14 {
                let length = parse_length(value)?;
                if fields.length.is_some_and(|seen| seen != length) {
                    return Err(refusal(
                        BAD_REQUEST,
                        "Content-Length given twice with different values",
                    ));
                }
                fields.length = Some(length);
            } else if name.len() == 17 {
                fields_seen += 1;
                for coding in list(value) {
                    codings += 1;
                    last_chunked = coding.eq_ignore_ascii_case(b"chunked");
                    chunked += usize::from(last_chunked);
                }
            } else if name.len() == 10 {
                for option in list(value) {
                    fields.said |= CLOSE * u8::from(option.eq_ignore_ascii_case(b"close"));
                    fields.said |=
                        KEEP_ALIVE * u8::from(option.eq_ignore_ascii_case(b"keep-alive"));
                }
            } else {
                // One expectation not understood is enough for 417, whatever else is asked.
                fields.said |= if trim(value).eq_ignore_ascii_case(b"100-continue") {
                    EXPECT_CONTINUE
                } else {
                    EXPECT_OTHER
                };
            }
        }
        fields.said |= match (codings, chunked, last_chunked) {
            // An empty Transfer-Encoding is still one: ignoring it would frame the body by a
            // Content-Length that a proxy in front may have read differently.
            (0, _, _) if fields_seen == 0 => 0,
            (1, 1, true) => CHUNKED_ONLY,
            (_, 1, true) => OTHER_CODINGS,
            _ => NOT_FINAL_CHUNKED,
        };
        Ok(fields)
    }
}

/// Whether the field name `name` is `lower` (lowercase letters and `-`, at least 4 bytes) in any
/// case, compared a word at a time. Setting bit 5 of a byte lowercases a letter and maps no other
/// token byte onto a letter or `-` (only CR, never in a name, becomes `-`), and httparse has
/// checked that a name is a token.
#[inline(always)]
fn is_name(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() {
        return false;
    }
    let len = name.len();
    if len < 8 {
        let word =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let lowered = |at: usize| word(name, at) | 0x2020_2020;
        return lowered(0) == word(lower, 0) && lowered(len - 4) == word(lower, len - 4);
    }
    let word = |b: &[u8], at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    // Whole words from the start, then the last word (overlapping the one before it).
    let mut at = 0;
    while at + 8 < len {
        if word(name, at) | 0x2020_2020_2020_2020 != word(lower, at) {
            return false;
        }
        at += 8;
    }
    word(name, len - 8) | 0x2020_2020_2020_2020 == word(lower, len - 8)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte httparse lets into a field name (a token), in every place of every name read:
    /// `is_name` says what `eq_ignore_ascii_case` says.
    #[test]
    fn a_name_is_known_in_any_case_and_no_other_token_is() {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let names: [&[u8]; 5] = [
            b"host",
            b"expect",
            b"connection",
            b"content-length",
            b"transfer-encoding",
        ];
        for lower in names {
            assert!(is_name(&lower.to_ascii_uppercase(), lower));
            for at in 0..lower.len() {
                for b in (0..=255u8).filter(|&b| token(b)) {
                    let mut name = lower.to_vec();
                    name[at] = b;
                    assert_eq!(
                        is_name(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{:?} against {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(lower)
                    );
                }
            }
            assert!(!is_name(&lower[1..], lower), "a shorter name");
        }
    }
}
