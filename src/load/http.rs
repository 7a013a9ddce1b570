//! HTTP/1.1 for `saythat load --framing http`: the checker of the answers, pure like `check.rs`:
//! no I/O. The requests it answers are shaped in `message.rs`.
//!
//! Unlike the echo framings, answers are framed by their heads, so the checker parses: heads with
//! httparse straight from the bytes read (a connection holds bytes only for a head split across
//! reads), bodies compared as they stream, never stored. It must never allocate per answer in
//! steady state, and never pass anything but `HTTP/1.1 200 OK` (or a status `--query` asked
//! for), a body of exactly the prefix and the message (or as `--query` asks: a size, the echo
//! then filler; a JSON description of the request), none with 1xx, 204 and 304, and a
//! connection kept alive (unless `--query` asks for closes: then an answer saying `Connection:
//! close` is right, and the last one on its connection).

use super::described::check_description;
use super::expect::Expect;
use super::fault::{context, escape, quote, unasked, Fault, Fed, Statuses};
use super::message::{seed, Protocol};
use crate::framing::http::control::ResetAt;
use crate::framing::http::FILLER_LINE;

/// Longest answer head accepted. saythat's are about 150 bytes and hyper's less; one longer than
/// this is wrong rather than held, so a server cannot grow a connection's buffer without bound.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Header fields parsed in one answer head (on the stack); saythat sends 4 or 5.
const MAX_HEADERS: usize = 32;
/// A head buffer that grew past this is released once its head is parsed, so one long head does
/// not pin its memory to the connection; a typical split head stays well under it.
const KEEP_HEAD_CAPACITY: usize = 1024;
/// Hex digits in a chunk size: 16 fill a `u64`, one more could overflow.
const MAX_CHUNK_DIGITS: u32 = 16;
/// A description buffer that grew past this is released once checked, as `KEEP_HEAD_CAPACITY`;
/// a description of a message of the default 64 bytes is about 500.
const KEEP_JSON_CAPACITY: usize = 4096;
/// Head bytes quoted when a head does not parse: enough for a status line and a field or two.
const MAX_QUOTED: usize = 64;

/// Where the checker is in the answer being received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Part {
    /// The head: bytes held in `HttpChecker::head` if it started in an earlier read.
    #[default]
    Head,
    /// A body of the Content-Length announced, one of the lengths expected.
    Length(u64),
    /// A chunked body.
    Chunked(Chunk),
}

/// Where a chunked body's decoder is (RFC 9112 section 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// In the chunk size's hex digits: the value and digit count so far.
    Size {
        size: u64,
        digits: u32,
    },
    /// In a chunk extension, ignored up to its CR.
    Ext {
        size: u64,
    },
    /// The CR of the size line came; its LF is next.
    SizeLf {
        size: u64,
    },
    /// This many data bytes of the chunk to come.
    Data {
        left: u64,
    },
    /// The chunk's data is complete: its CR and LF are next.
    DataCr,
    DataLf,
    /// After the last chunk, in the trailer section: at the start of a line or inside one.
    Trailer {
        line_start: bool,
    },
    /// A trailer line's CR came: its LF ends a field (`last: false`) or the answer.
    TrailerLf {
        last: bool,
    },
}

/// A wrong answer found at byte `at` of the bytes being fed.
struct Bad {
    fault: Fault,
    at: usize,
    what: String,
}

impl Bad {
    fn wrong(at: usize, what: String) -> Self {
        Bad {
            fault: Fault::Wrong,
            at,
            what,
        }
    }
}

/// How a complete head says its body is framed.
enum Framing {
    Length(u64),
    Chunked,
    /// An interim `1xx` answer (RFC 9110 section 15.2): a head alone, the final answer to the
    /// same request still to come.
    Interim,
    /// A `204` or `304` answer, or an interim status asked for as the final one, with a `status`
    /// control: a head alone, and complete (RFC 9110 sections 15.3.5 and 15.4.5).
    Empty,
}

/// Checks one connection's HTTP answers: every one `200 OK` (or a status asked for), kept alive,
/// framed by a Content-Length equal to an expected body's or chunked, its body exactly the prefix
/// and the message (or as asked).
#[derive(Clone, Debug, Default)]
pub(crate) struct HttpChecker {
    /// The start of a head that did not complete in one read; empty otherwise (keeping its
    /// capacity, so a connection allocates for it once). At most `MAX_HEAD` bytes.
    head: Vec<u8>,
    part: Part,
    /// Bytes of the expected body (the prefix, then the payload) matched so far.
    off: u64,
    /// With `format=json`: the description being received, parsed once complete; empty
    /// otherwise (keeping its capacity). At most `Expect::max_len` bytes.
    json: Vec<u8>,
    /// Bytes of this stream checked so far, to say where an error was.
    received: u64,
    /// The answer being received says `Connection: close`, as `--query` asked.
    closing: bool,
}

impl HttpChecker {
    /// Payload bytes of the answer being received matched so far.
    pub(crate) fn partial(&self, proto: &Protocol) -> u32 {
        let payload = self.off.saturating_sub(proto.prefix.len() as u64);
        // Past the echo (a `size` control), the whole payload is in.
        u32::try_from(payload).map_or(proto.size, |p| p.min(proto.size))
    }

    /// Whether a reset now falls where `at` asks one: before any byte of the oldest answer
    /// in flight (`BeforeHead`), or inside its body (`MidBody`).
    pub(crate) fn reset_fits(&self, at: ResetAt) -> bool {
        match at {
            ResetAt::BeforeHead => self.part == Part::Head && self.head.is_empty(),
            ResetAt::MidBody => matches!(self.part, Part::Length(_) | Part::Chunked(_)),
        }
    }

    /// `Checker::feed` for HTTP: answers complete one after the other, however they were cut.
    pub(crate) fn feed(
        &mut self,
        proto: &Protocol,
        conn: u64,
        mut seq: u64,
        in_flight: usize,
        data: &[u8],
        statuses: &mut Statuses,
    ) -> Fed {
        let mut fed = Fed::default();
        let mut msg_seed = seed(conn, seq);
        let mut i = 0;
        while i < data.len() {
            if fed.completed == in_flight {
                fed.error = Some(unasked(conn, self.received, data, i));
                return fed;
            }
            let rest = &data[i..];
            let step = match self.part {
                Part::Head => self.head(proto, rest, statuses),
                Part::Length(len) => self.length_body(proto, msg_seed, len, rest),
                Part::Chunked(chunk) => self.chunked_body(proto, msg_seed, chunk, rest),
            };
            let step = step.and_then(|(taken, done)| match done {
                true => self.finish(proto, msg_seed, taken).map(|()| (taken, done)),
                false => Ok((taken, done)),
            });
            let (taken, done) = match step {
                Ok(step) => step,
                Err(bad) => {
                    let lead = match bad.fault {
                        Fault::Wrong => "wrong answer to",
                        Fault::BadStatus | Fault::ConnectionClose => "answer to",
                    };
                    let at = self.received + bad.at as u64;
                    let what = format!(
                        "conn {conn}: {lead} message {seq} at answer byte {at}: {}",
                        bad.what
                    );
                    fed.error = Some((bad.fault, what));
                    return fed;
                }
            };
            i += taken;
            self.received += taken as u64;
            if done {
                fed.completed += 1;
                seq = seq.wrapping_add(1);
                msg_seed = seed(conn, seq);
                self.part = Part::Head;
                self.off = 0;
                if self.closing {
                    // The server closes after this answer: nothing may follow it.
                    fed.closing = true;
                    if i < data.len() {
                        let what = format!(
                            "conn {conn}: answer byte {} arrived after an answer that said \
                             `Connection: close`: got {} after \"{}\"",
                            self.received,
                            quote(data[i]),
                            context(data, i)
                        );
                        fed.error = Some((Fault::Wrong, what));
                    }
                    return fed;
                }
            }
        }
        fed
    }

    /// Takes head bytes from `rest`: returns how many, and whether the answer is complete (only
    /// a 204 or 304 is: otherwise a body follows). A final answer's status is counted.
    fn head(
        &mut self,
        proto: &Protocol,
        rest: &[u8],
        statuses: &mut Statuses,
    ) -> Result<(usize, bool), Bad> {
        let held = self.head.len();
        let parsed = if held == 0 {
            // The usual case: the whole head is in this read, parsed where it lies.
            parse_head(rest, proto, statuses)
        } else {
            let take = rest.len().min(MAX_HEAD - held);
            self.head.extend_from_slice(&rest[..take]);
            parse_head(&self.head, proto, statuses)
        };
        let (len, framing, closing) = match parsed {
            Ok(Some(complete)) => complete,
            Ok(None) => {
                if held == 0 && rest.len() < MAX_HEAD {
                    self.head.extend_from_slice(rest);
                } else if held == 0 || self.head.len() == MAX_HEAD {
                    return Err(Bad::wrong(
                        0,
                        format!("the head is longer than the {MAX_HEAD} bytes allowed"),
                    ));
                }
                return Ok((rest.len(), false));
            }
            Err(bad) => return Err(bad),
        };
        if self.head.capacity() > KEEP_HEAD_CAPACITY {
            self.head = Vec::new();
        }
        self.head.clear();
        let complete = matches!(framing, Framing::Empty);
        self.closing = closing;
        self.part = match framing {
            Framing::Length(len) => Part::Length(len),
            Framing::Chunked => Part::Chunked(Chunk::Size { size: 0, digits: 0 }),
            // Interim: skipped, the next head is the same request's. Empty: the next is the next
            // request's.
            Framing::Interim | Framing::Empty => Part::Head,
        };
        // The head ends inside `rest`: the held bytes never held its end.
        Ok((len.saturating_sub(held), complete))
    }

    /// Compares body bytes from `rest` with the expected body: the Content-Length `len` was
    /// checked, so the answer is complete exactly when `len` bytes came.
    fn length_body(
        &mut self,
        proto: &Protocol,
        msg_seed: u64,
        len: u64,
        rest: &[u8],
    ) -> Result<(usize, bool), Bad> {
        let left = len - self.off;
        let run = &rest[..usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()))];
        self.match_body(proto, msg_seed, run)?;
        Ok((run.len(), self.off == len))
    }

    /// The answer is complete, after `taken` more bytes: a description is parsed and checked.
    fn finish(&mut self, proto: &Protocol, msg_seed: u64, taken: usize) -> Result<(), Bad> {
        if !proto.expect.json() {
            return Ok(());
        }
        let checked = check_description(proto, msg_seed, &self.json);
        if self.json.capacity() > KEEP_JSON_CAPACITY {
            self.json = Vec::new();
        }
        self.json.clear();
        checked.map_err(|what| Bad::wrong(taken.saturating_sub(1), what))
    }

    /// Decodes chunked body bytes from `rest`: data runs are compared with the expected body,
    /// framing bytes are taken one at a time (a few per chunk).
    fn chunked_body(
        &mut self,
        proto: &Protocol,
        msg_seed: u64,
        chunk: Chunk,
        rest: &[u8],
    ) -> Result<(usize, bool), Bad> {
        let max = proto.expect.max_len();
        if let Chunk::Data { left } = chunk {
            let room = left.min(max - self.off);
            if room == 0 {
                return Err(Bad::wrong(
                    0,
                    format!(
                        "the chunked body is longer than {max} bytes, where {} was expected",
                        proto.expect.lengths()
                    ),
                ));
            }
            let run = &rest[..usize::try_from(room).map_or(rest.len(), |r| r.min(rest.len()))];
            self.match_body(proto, msg_seed, run)?;
            let left = left - run.len() as u64;
            self.part = Part::Chunked(match left {
                0 => Chunk::DataCr,
                left => Chunk::Data { left },
            });
            return Ok((run.len(), false));
        }
        let b = rest[0];
        let next = match (chunk, b) {
            (Chunk::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                if digits == MAX_CHUNK_DIGITS {
                    return Err(Bad::wrong(0, "a chunk size overflows 64 bits".to_string()));
                }
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                Chunk::Size {
                    size: size << 4 | digit,
                    digits: digits + 1,
                }
            }
            (Chunk::Size { size, digits: 1.. }, b';' | b' ' | b'\t') => Chunk::Ext { size },
            (Chunk::Size { size, digits: 1.. } | Chunk::Ext { size }, b'\r') => {
                Chunk::SizeLf { size }
            }
            (Chunk::Ext { size }, _) if b != b'\n' => Chunk::Ext { size },
            (Chunk::SizeLf { size: 0 }, b'\n') => {
                if !proto.expect.length_ok(self.off) {
                    return Err(Bad::wrong(
                        0,
                        format!(
                            "the chunked body ended after {} bytes, where {} was expected",
                            self.off,
                            proto.expect.lengths()
                        ),
                    ));
                }
                Chunk::Trailer { line_start: true }
            }
            (Chunk::SizeLf { size }, b'\n') => Chunk::Data { left: size },
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::Trailer { line_start }, b'\r') => Chunk::TrailerLf { last: line_start },
            (Chunk::Trailer { .. }, _) if b != b'\n' => Chunk::Trailer { line_start: false },
            (Chunk::TrailerLf { last: true }, b'\n') => return Ok((1, true)),
            (Chunk::TrailerLf { last: false }, b'\n') => Chunk::Trailer { line_start: true },
            _ => {
                return Err(Bad::wrong(
                    0,
                    format!(
                        "malformed chunked body: got {} after \"{}\"",
                        quote(b),
                        context(rest, 0)
                    ),
                ))
            }
        };
        self.part = Part::Chunked(next);
        Ok((1, false))
    }

    /// Compares `got` with the expected body from `off` on (the prefix, then the payload; past
    /// them, a `size` control's filler) and moves `off` past it. A description is kept whole,
    /// to be parsed at its end.
    fn match_body(&mut self, proto: &Protocol, msg_seed: u64, got: &[u8]) -> Result<(), Bad> {
        if proto.expect.json() {
            self.json.extend_from_slice(got);
            self.off += got.len() as u64;
            return Ok(());
        }
        // The echo's bytes: a `size` short of it cuts it, one past it adds saythat's filler
        // after it, `FILLER_LINE` over and over from the echo's end.
        let echo = proto.body_len().saturating_sub(self.off);
        let (got, filler) =
            got.split_at(usize::try_from(echo).map_or(got.len(), |e| e.min(got.len())));
        let past = (self.off + got.len() as u64).saturating_sub(proto.body_len());
        let line = FILLER_LINE.len() as u64;
        let wrong_filler = filler
            .iter()
            .zip(past..)
            .position(|(&b, k)| b != FILLER_LINE[(k % line) as usize]);
        if let Some(p) = wrong_filler {
            let expected = FILLER_LINE[((past + p as u64) % line) as usize];
            return Err(Bad::wrong(
                got.len() + p,
                format!(
                    "expected filler byte {} (a size past the echo), got {} after \"{}\"",
                    quote(expected),
                    quote(filler[p]),
                    context(filler, p)
                ),
            ));
        }
        let prefix = &proto.prefix[..];
        let mut k = 0;
        let mut wrong = None;
        if let Some(want) = usize::try_from(self.off)
            .ok()
            .and_then(|off| prefix.get(off..))
        {
            let n = want.len().min(got.len());
            match got[..n].iter().zip(want).position(|(g, w)| g != w) {
                Some(p) => wrong = Some((p, "prefix byte", want[p])),
                None => k = n,
            }
        }
        if wrong.is_none() && k < got.len() {
            // Past the prefix: `off + k` is at least its length, and at most a `u32` past it.
            let from = (self.off + k as u64 - prefix.len() as u64) as u32;
            if let Some(p) = proto.mismatch(msg_seed, from, &got[k..]) {
                wrong = Some((k + p, "payload byte", proto.byte(msg_seed, from + p as u32)));
            }
        }
        if let Some((p, what, expected)) = wrong {
            return Err(Bad::wrong(
                p,
                format!(
                    "expected body {what} {}, got {} after \"{}\"",
                    quote(expected),
                    quote(got[p]),
                    context(got, p)
                ),
            ));
        }
        self.off += (got.len() + filler.len()) as u64;
        Ok(())
    }
}

/// Parses an answer head from the start of `buf`: `None` while it is incomplete, else its length,
/// how its body is framed and whether it says `Connection: close` (only when `--query` asks
/// for it: else that is an error), or what is wrong with it. The status and the body's length
/// must be ones `proto.expect` allows. A complete final head's status is counted in `statuses`,
/// right or not.
fn parse_head(
    buf: &[u8],
    proto: &Protocol,
    statuses: &mut Statuses,
) -> Result<Option<(usize, Framing, bool)>, Bad> {
    let expect = &proto.expect;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => {
            let seen = &buf[..buf.len().min(MAX_QUOTED)];
            return Err(Bad::wrong(
                0,
                format!("the head does not parse ({e}): \"{}\"", escape(seen)),
            ));
        }
    };
    let code = response.code.unwrap_or(0);
    let reason = response.reason.unwrap_or("");
    // A client must take any number of interim answers before the final one, even unasked
    // (RFC 9110 section 15.2: a `100 Continue` sent without `Expect`, a `103 Early Hints`). They
    // have no body. `101 Switching Protocols` is final: it ends HTTP on the connection, which
    // no request here asked for. A `1xx` a `status` control asked for is the final answer.
    if (100..200).contains(&code) && code != 101 && !expect.allows(code) {
        return Ok(Some((len, Framing::Interim, false)));
    }
    statuses.count(code);
    // The statuses a `status` control asks for are right answers, with the same body (the
    // echo) unless the status has none.
    if !expect.allows(code) {
        return Err(Bad {
            fault: Fault::BadStatus,
            at: 0,
            what: format!(
                "status `{code} {reason}` where {} was expected",
                expect.statuses()
            ),
        });
    }
    if response.version != Some(1) || (code == 200 && reason != "OK") {
        let version = response.version.unwrap_or(0);
        return Err(Bad::wrong(
            0,
            format!("status line `HTTP/1.{version} {code} {reason}` where `HTTP/1.1 200 OK` was expected"),
        ));
    }
    let close = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    if close && !expect.close() {
        return Err(Bad {
            fault: Fault::ConnectionClose,
            at: 0,
            what: "`Connection: close` where the connection was to be kept alive".to_string(),
        });
    }
    if Expect::bodiless(code) {
        return Ok(Some((len, Framing::Empty, close)));
    }
    let (mut length, mut chunked) = (None, None);
    for h in response.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = digits(value).ok_or_else(|| {
                Bad::wrong(
                    0,
                    format!("`Content-Length: {}` is not a length", escape(value)),
                )
            })?;
            if length.is_some_and(|l| l != n) {
                return Err(Bad::wrong(0, "two different Content-Length".to_string()));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding frames the body; a later field's codings come after.
            let last = value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some((last.trim_ascii().eq_ignore_ascii_case(b"chunked"), value));
        }
    }
    let framing =
        match (length, chunked) {
            (Some(_), Some(_)) => {
                return Err(Bad::wrong(
                    0,
                    "both Content-Length and Transfer-Encoding".to_string(),
                ))
            }
            (Some(n), None) if !expect.length_ok(n) => {
                return Err(Bad::wrong(
                    0,
                    format!(
                        "`Content-Length: {n}` where {} was expected",
                        expect.lengths()
                    ),
                ))
            }
            (Some(n), None) => Framing::Length(n),
            (None, Some((true, _))) => Framing::Chunked,
            (None, Some((false, value))) => {
                return Err(Bad::wrong(
                    0,
                    format!(
                        "`Transfer-Encoding: {}` does not end with chunked",
                        escape(value)
                    ),
                ))
            }
            (None, None) => return Err(Bad::wrong(
                0,
                "neither Content-Length nor chunked: the body would end only with the connection"
                    .to_string(),
            )),
        };
    Ok(Some((len, framing, close)))
}

/// A decimal number of digits only, or `None` (empty, another byte, past `u64`).
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let d = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::message::HttpMethod;
    use crate::load::message::LoadFraming;

    const PREFIX: &[u8] = b"You say that ";
    const HOST: &str = "127.0.0.1:8080";

    fn proto(method: HttpMethod, size: u32) -> Protocol {
        let host = HOST.parse().expect("an address");
        Protocol::new(PREFIX, LoadFraming::Http, size, method, host, None, false).expect("no query")
    }

    /// `proto` with `query` sent, and its controls asked of the answers.
    fn proto_asking(method: HttpMethod, size: u32, query: &str) -> Protocol {
        let host = HOST.parse().expect("an address");
        Protocol::new(
            PREFIX,
            LoadFraming::Http,
            size,
            method,
            host,
            Some(query),
            false,
        )
        .expect("a query the server takes")
    }

    /// The body every answer to message `seq` on connection `conn` must have.
    fn body(p: &Protocol, conn: u64, seq: u64) -> Vec<u8> {
        [PREFIX, &p.message(seed(conn, seq))].concat()
    }

    /// saythat's answer to a keep-alive request, byte for byte as the HTTP spec gives it.
    fn saythat_answer(body: &[u8]) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nServer: saythat/0.1.0\r\nDate: Wed, 25 Nov 2026 13:30:12 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body].concat()
    }

    /// hyper's answer: lowercase names, its own order, no Server.
    fn hyper_answer(body: &[u8]) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
             date: Wed, 25 Nov 2026 13:30:12 GMT\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body].concat()
    }

    /// A chunked answer whose body is cut at `cuts`, with a chunk extension and a trailer.
    fn chunked_answer(body: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&body.len())) {
            if to > from {
                out.extend_from_slice(format!("{:X};x=y\r\n", to - from).as_bytes());
                out.extend_from_slice(&body[from..to]);
                out.extend_from_slice(b"\r\n");
                from = to;
            }
        }
        out.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
        out
    }

    /// A chunked answer as `chunked_answer`, without chunk extensions or trailers.
    fn bare_chunked_answer(body: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&body.len())) {
            if to > from {
                out.extend_from_slice(format!("{:x}\r\n", to - from).as_bytes());
                out.extend_from_slice(&body[from..to]);
                out.extend_from_slice(b"\r\n");
                from = to;
            }
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    /// Feeds `stream` to a new checker in pieces of `piece` bytes, `in_flight` messages from
    /// `seq` 0 on connection 1 awaiting answers: the answers completed and the first error.
    fn feed_in_pieces(
        p: &Protocol,
        stream: &[u8],
        piece: usize,
        in_flight: usize,
    ) -> (usize, Option<(Fault, String)>) {
        feed_counting(p, stream, piece, in_flight, &mut Statuses::default())
    }

    /// `feed_in_pieces`, counting the answers' statuses in `statuses`.
    fn feed_counting(
        p: &Protocol,
        stream: &[u8],
        piece: usize,
        in_flight: usize,
        statuses: &mut Statuses,
    ) -> (usize, Option<(Fault, String)>) {
        let mut c = HttpChecker::default();
        let mut done = 0;
        for bytes in stream.chunks(piece) {
            let fed = c.feed(p, 1, done as u64, in_flight - done, bytes, statuses);
            done += fed.completed;
            if fed.error.is_some() {
                return (done, fed.error);
            }
        }
        (done, None)
    }

    #[test]
    fn saythat_and_hyper_answers_pass_pipelined_and_cut_anywhere() {
        let p = proto(HttpMethod::Get, 64);
        for answer in [saythat_answer, hyper_answer] {
            let stream: Vec<u8> = (0..3).flat_map(|s| answer(&body(&p, 1, s))).collect();
            for piece in [1, 2, 7, 100, stream.len()] {
                assert_eq!(feed_in_pieces(&p, &stream, piece, 3), (3, None));
            }
        }
    }

    #[test]
    fn chunked_answers_pass_with_extensions_and_trailers() {
        let p = proto(HttpMethod::Post, 100);
        let stream: Vec<u8> = (0..2)
            .flat_map(|s| chunked_answer(&body(&p, 1, s), &[5, 13, 50]))
            .collect();
        for piece in [1, 3, stream.len()] {
            assert_eq!(feed_in_pieces(&p, &stream, piece, 2), (2, None));
        }
    }

    /// The fault and description found in answer `stream` to one message of `p`.
    fn fault(p: &Protocol, stream: &[u8]) -> (Fault, String) {
        let (done, error) = feed_in_pieces(p, stream, stream.len(), 1);
        assert_eq!(done, 0);
        error.expect("the answer is refused")
    }

    #[test]
    fn another_status_or_a_close_is_its_own_fault() {
        let p = proto(HttpMethod::Get, 8);
        let err = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        let (kind, what) = fault(&p, err);
        assert_eq!(kind, Fault::BadStatus);
        assert!(
            what.contains("status `500 Internal Server Error`"),
            "{what}"
        );

        let good = body(&p, 1, 0);
        let closing = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nconnection: Close\r\n\r\n",
            good.len()
        );
        let (kind, what) = fault(&p, &[closing.as_bytes(), &good].concat());
        assert_eq!(kind, Fault::ConnectionClose);
        assert!(what.contains("Connection: close"), "{what}");
    }

    /// `answer` with `Connection: close` after its status line.
    fn closing(answer: &[u8]) -> Vec<u8> {
        let line = answer.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
        [&answer[..line], b"Connection: close\r\n", &answer[line..]].concat()
    }

    #[test]
    fn an_asked_close_is_a_right_answer_and_the_last_on_its_connection() {
        let p = proto_asking(HttpMethod::Get, 8, "close=20&status=204:50");
        for last in [
            closing(&saythat_answer(&body(&p, 1, 1))),
            closing(&chunked_answer(&body(&p, 1, 1), &[3])),
            closing(b"HTTP/1.1 204 No Content\r\n\r\n"),
        ] {
            let stream = [saythat_answer(&body(&p, 1, 0)), last.clone()].concat();
            for piece in [1, 7, stream.len()] {
                let mut c = HttpChecker::default();
                let (mut done, mut closed) = (0, false);
                for bytes in stream.chunks(piece) {
                    let fed = c.feed(
                        &p,
                        1,
                        done as u64,
                        3 - done,
                        bytes,
                        &mut Statuses::default(),
                    );
                    assert_eq!(fed.error, None, "{piece}");
                    assert!(!closed || fed.completed == 0, "nothing after the close");
                    done += fed.completed;
                    closed |= fed.closing;
                }
                assert_eq!((done, closed), (2, true), "{piece}: {last:?}");
            }
            // Bytes after it are wrong: the server said it would close.
            let more = [last, saythat_answer(&body(&p, 1, 2))].concat();
            let fed = HttpChecker::default().feed(&p, 1, 1, 2, &more, &mut Statuses::default());
            assert_eq!(fed.completed, 1);
            assert!(fed.closing);
            let (kind, what) = fed.error.expect("bytes after the close");
            assert_eq!(kind, Fault::Wrong);
            assert!(
                what.contains("after an answer that said `Connection: close`"),
                "{what}"
            );
        }
        // Without `close` asked it is still its own fault.
        let p = proto_asking(HttpMethod::Get, 8, "reset=20");
        let (kind, _) = fault(&p, &closing(&saythat_answer(&body(&p, 1, 0))));
        assert_eq!(kind, Fault::ConnectionClose);
    }

    #[test]
    fn a_reset_fits_before_an_answer_or_inside_its_body_as_asked() {
        let p = proto(HttpMethod::Get, 8);
        let answer = saythat_answer(&body(&p, 1, 0));
        let head = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(0)
            + 4;
        let fits = |fed: usize| {
            let mut c = HttpChecker::default();
            c.feed(&p, 1, 0, 1, &answer[..fed], &mut Statuses::default());
            (
                c.reset_fits(ResetAt::BeforeHead),
                c.reset_fits(ResetAt::MidBody),
            )
        };
        assert_eq!(fits(0), (true, false));
        assert_eq!(fits(5), (false, false), "inside the head");
        assert_eq!(fits(head), (false, true), "the head, no body yet");
        assert_eq!(fits(head + 3), (false, true));
        // A whole answer: the next one has not begun.
        let mut c = HttpChecker::default();
        c.feed(&p, 1, 0, 2, &answer, &mut Statuses::default());
        assert!(c.reset_fits(ResetAt::BeforeHead) && !c.reset_fits(ResetAt::MidBody));
    }

    /// An answer of `status` (code and reason) with `body`, by Content-Length.
    fn status_answer(status: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body].concat()
    }

    #[test]
    fn asked_statuses_are_right_and_each_is_counted() {
        let p = proto_asking(
            HttpMethod::Get,
            8,
            "delay=1ms&status=503:10,204:5,304:5,103:1",
        );
        // The echo with 200 and 503; 1xx asked, 204 and 304 have no body, whatever their head
        // says.
        let stream = [
            saythat_answer(&body(&p, 1, 0)),
            status_answer("503 Service Unavailable", &body(&p, 1, 1)),
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n".to_vec(),
            b"HTTP/1.1 103 Early Hints\r\n\r\n".to_vec(),
            saythat_answer(&body(&p, 1, 5)),
        ]
        .concat();
        for piece in [1, 7, stream.len()] {
            let mut statuses = Statuses::default();
            let fed = feed_counting(&p, &stream, piece, 6, &mut statuses);
            assert_eq!(fed, (6, None), "in pieces of {piece}");
            let counted: Vec<_> = statuses.by_code().into_iter().collect();
            assert_eq!(counted, [(103, 1), (200, 2), (204, 1), (304, 1), (503, 1)]);
        }
        // A status not asked for is bad, named with those that were.
        for status in [
            "500 Internal Server Error",
            "599 Whatever",
            "600 Beyond",
            "429 Slow",
        ] {
            let (kind, what) = fault(&p, &status_answer(status, &body(&p, 1, 0)));
            assert_eq!(kind, Fault::BadStatus, "{status}");
            let asked = "where 103, 200, 204, 304 or 503 (asked by --query) was expected";
            assert!(
                what.contains(&format!("status `{status}` {asked}")),
                "{what}"
            );
        }
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(fault(&p, switching).0, Fault::BadStatus);
        // Still wrong: a wrong body, and a 200 that is not `OK`.
        let mut wrong = status_answer("503 Service Unavailable", &body(&p, 1, 0));
        *wrong.last_mut().expect("a body") = b'#';
        assert_eq!(fault(&p, &wrong).0, Fault::Wrong);
        assert_eq!(
            fault(&p, &status_answer("200 Fine", &body(&p, 1, 0))).0,
            Fault::Wrong
        );
        // Weights of 100 % leave no 200.
        let p = proto_asking(HttpMethod::Get, 8, "x-set-response-status-code=418");
        let (kind, what) = fault(&p, &saythat_answer(&body(&p, 1, 0)));
        assert_eq!(kind, Fault::BadStatus);
        assert!(what.contains("where 418 (asked by --query)"), "{what}");
    }

    #[test]
    fn without_a_status_control_another_status_is_counted_and_bad() {
        for query in [
            None,
            Some("delay=1ms"),
            Some("xstatus=503"),
            Some("a=status"),
        ] {
            let host = HOST.parse().expect("an address");
            let p = Protocol::new(
                PREFIX,
                LoadFraming::Http,
                8,
                HttpMethod::Get,
                host,
                query,
                false,
            )
            .expect("a query the server takes");
            let stream = [
                saythat_answer(&body(&p, 1, 0)),
                status_answer("503 Service Unavailable", &body(&p, 1, 1)),
            ]
            .concat();
            let mut statuses = Statuses::default();
            let (done, error) = feed_counting(&p, &stream, stream.len(), 2, &mut statuses);
            assert_eq!(done, 1, "{query:?}");
            let (kind, what) = error.expect("a bad status");
            assert_eq!(kind, Fault::BadStatus, "{query:?}");
            assert!(what.contains("where `200 OK` was expected"), "{what}");
            let counted: Vec<_> = statuses.by_code().into_iter().collect();
            assert_eq!(counted, [(200, 1), (503, 1)], "{query:?}");
        }
    }

    /// The echo cut to `len` bytes, or padded with saythat's filler.
    fn sized(mut echo: Vec<u8>, len: usize) -> Vec<u8> {
        let filler = FILLER_LINE
            .iter()
            .cycle()
            .take(len.saturating_sub(echo.len()));
        echo.extend(filler);
        echo.truncate(len);
        echo
    }

    /// What a body is made of the echo.
    type Shape = fn(Vec<u8>) -> Vec<u8>;

    /// Answers to messages 0.. of connection 1: each answer made by `answer` of the body its
    /// shape makes of the echo of its message.
    fn answers_of(p: &Protocol, bodies: &[Shape], answer: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut stream = Vec::new();
        for (s, body_of) in bodies.iter().enumerate() {
            stream.extend_from_slice(&answer(&body_of(body(p, 1, s as u64))));
        }
        stream
    }

    #[test]
    fn a_size_is_a_body_of_that_length_the_echo_first_by_length_or_chunked() {
        // The echo is 21 bytes (13 of prefix, 8 of message): 5 cuts it, 100 pads it.
        let p = proto_asking(HttpMethod::Get, 8, "size=100:50,5:40");
        let cut: Shape = |echo| echo[..5].to_vec();
        let padded: Shape = |echo| sized(echo, 100);
        let whole: Shape = |echo| echo;
        let bodies = [cut, padded, whole, padded, cut];
        for answer in [saythat_answer, |b: &[u8]| chunked_answer(b, &[3])] {
            let stream = answers_of(&p, &bodies, answer);
            for piece in [1, 9, stream.len()] {
                assert_eq!(feed_in_pieces(&p, &stream, piece, 5), (5, None), "{piece}");
            }
        }
        // Another length, by Content-Length or chunked, is wrong and names the lengths asked.
        let lengths = "21 (prefix and message) or one of 5, 100 (asked by size)";
        let mut long = body(&p, 1, 0);
        long = sized(long, 101);
        let (kind, what) = fault(&p, &saythat_answer(&long));
        assert_eq!(kind, Fault::Wrong);
        assert!(
            what.contains(&format!("`Content-Length: 101` where {lengths}")),
            "{what}"
        );
        let what = fault(&p, &chunked_answer(&long, &[50])).1;
        assert!(
            what.contains(&format!("longer than 100 bytes, where {lengths}")),
            "{what}"
        );
        let what = fault(&p, &chunked_answer(&long[..99], &[50])).1;
        assert!(
            what.contains(&format!("ended after 99 bytes, where {lengths}")),
            "{what}"
        );
        // The echo's bytes are checked in a cut or padded body.
        for at in [2, 15] {
            let mut wrong = padded(body(&p, 1, 0));
            wrong[at] = b'#';
            let what = fault(&p, &saythat_answer(&wrong)).1;
            assert!(what.contains("got '#'"), "{what}");
        }
        // So is the filler after it, from the echo's end on, however the body is cut.
        let mut wrong = padded(body(&p, 1, 0));
        wrong[90] = b'#';
        for answer in [saythat_answer(&wrong), chunked_answer(&wrong, &[30, 60])] {
            for piece in [1, 17, answer.len()] {
                let (done, error) = feed_in_pieces(&p, &answer, piece, 1);
                let what = error.expect("a wrong filler byte").1;
                assert_eq!(done, 0);
                let expected = quote(FILLER_LINE[(90 - 21) % FILLER_LINE.len()]);
                assert!(
                    what.contains(&format!("expected filler byte {expected}")),
                    "{what}"
                );
            }
        }
        // Without a rest, the echo's own length is no answer.
        let p = proto_asking(HttpMethod::Post, 8, "size=100");
        let what = fault(&p, &saythat_answer(&body(&p, 1, 0))).1;
        assert!(what.contains("where 100 (asked by size)"), "{what}");
    }

    /// A description of `method` on `path` with `body`, shaped as saythat writes one.
    fn described(method: &str, path: &str, body: &str) -> Vec<u8> {
        let json = serde_json::json!({
            "method": method, "target": format!("{path}?format=json"), "path": path,
            "query": [["format", "json"]], "version": "HTTP/1.1", "headers": [["Host", HOST]],
            "body": body, "body_encoding": "utf-8", "client": "127.0.0.1",
            "peer": "127.0.0.1:4000", "connection": 1, "request": 1, "instance": null,
            "worker": 0
        });
        let mut out = serde_json::to_vec(&json).expect("JSON");
        out.push(b'\n');
        out
    }

    #[test]
    fn a_json_description_is_parsed_and_checked_however_it_comes() {
        let p = proto_asking(HttpMethod::Get, 16, "format=json&status=503:50");
        let message = |s: u64| String::from_utf8(p.message(seed(1, s))).expect("text");
        let stream = [
            saythat_answer(&described("GET", &format!("/{}", message(0)), "")),
            status_answer(
                "503 Service Unavailable",
                &described("GET", &format!("/{}", message(1)), ""),
            ),
            chunked_answer(&described("GET", &format!("/{}", message(2)), ""), &[7, 40]),
        ]
        .concat();
        for piece in [1, 13, stream.len()] {
            assert_eq!(feed_in_pieces(&p, &stream, piece, 3), (3, None), "{piece}");
        }
        // Message 1's description where message 0's is due; the echo; a description cut short.
        let other = described("GET", &format!("/{}", message(1)), "");
        let (kind, what) = fault(&p, &saythat_answer(&other));
        assert_eq!(kind, Fault::Wrong);
        assert!(what.contains("conn 1: wrong answer to message 0"), "{what}");
        assert!(what.contains("the JSON description's path is"), "{what}");
        let echo = saythat_answer(&body(&p, 1, 0));
        assert!(fault(&p, &echo).1.contains("does not parse"));
        let whole = described("GET", &format!("/{}", message(0)), "");
        let cut = saythat_answer(&whole[..whole.len() - 3]);
        assert!(fault(&p, &cut).1.contains("does not parse"));
        // The buffer is emptied between answers, so a description after a good one parses.
        let c = &mut HttpChecker::default();
        let first = saythat_answer(&whole);
        let fed = c.feed(&p, 1, 0, 2, &first, &mut Statuses::default());
        assert_eq!((fed.completed, fed.error), (1, None));
        assert!(c.json.is_empty());
    }

    #[test]
    fn interim_answers_before_the_final_one_are_skipped_however_they_are_cut() {
        let p = proto(HttpMethod::Post, 64);
        let interim: &[&[u8]] = &[
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
        ];
        for lead in interim {
            let stream: Vec<u8> = (0..3)
                .flat_map(|s| [lead.to_vec(), saythat_answer(&body(&p, 1, s))].concat())
                .collect();
            for piece in [1, 5, 30, stream.len()] {
                assert_eq!(feed_in_pieces(&p, &stream, piece, 3), (3, None), "{lead:?}");
            }
        }
    }

    #[test]
    fn switching_protocols_is_a_bad_status_not_an_interim_answer() {
        let p = proto(HttpMethod::Get, 8);
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let (kind, what) = fault(&p, head);
        assert_eq!(kind, Fault::BadStatus);
        assert!(what.contains("status `101 Switching Protocols`"), "{what}");
    }

    #[test]
    fn heads_that_do_not_frame_the_expected_body_are_wrong() {
        let p = proto(HttpMethod::Get, 8);
        let good = body(&p, 1, 0);
        let n = good.len();
        for (head, says) in [
            (
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", n + 1),
                "Content-Length",
            ),
            ("HTTP/1.1 200 OK\r\n\r\n".to_string(), "neither"),
            (
                format!("HTTP/1.0 200 OK\r\nContent-Length: {n}\r\n\r\n"),
                "status line",
            ),
            (
                format!("HTTP/1.1 200 Fine\r\nContent-Length: {n}\r\n\r\n"),
                "status line",
            ),
            (
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nContent-Length: 3\r\n\r\n"),
                "two",
            ),
            (
                format!("HTTP/1.1 200 OK\r\nContent-Length: +{n}\r\n\r\n"),
                "not a length",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".to_string(),
                "chunked",
            ),
            (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n"
                ),
                "both",
            ),
            (
                "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n".to_string(),
                "does not parse",
            ),
        ] {
            let (kind, what) = fault(&p, &[head.as_bytes(), &good].concat());
            assert_eq!(kind, Fault::Wrong, "{head:?}");
            assert!(what.contains(says), "{head:?}: {what}");
        }
    }

    #[test]
    fn a_wrong_body_byte_is_described() {
        let p = proto(HttpMethod::Get, 16);
        let mut stream = saythat_answer(&body(&p, 1, 0));
        let last = stream.len() - 1;
        stream[last] = b'#';
        let (kind, what) = fault(&p, &stream);
        assert_eq!(kind, Fault::Wrong);
        assert!(
            what.contains("conn 1") && what.contains("message 0"),
            "{what}"
        );
        assert!(
            what.contains("payload byte") && what.contains("got '#'"),
            "{what}"
        );
        assert!(what.contains(&format!("answer byte {last}")), "{what}");
    }

    #[test]
    fn chunked_bodies_of_the_wrong_length_or_framing_are_wrong() {
        let p = proto(HttpMethod::Get, 16);
        let good = body(&p, 1, 0);
        let short = chunked_answer(&good[..good.len() - 1], &[]);
        assert!(fault(&p, &short).1.contains("ended after"));
        let long = chunked_answer(&[&good[..], b"x"].concat(), &[]);
        assert!(fault(&p, &long).1.contains("longer than"));
        let mut bad_crlf = chunked_answer(&good, &[]);
        let at = bad_crlf.len() - b"\r\n0\r\nx-trailer: 1\r\n\r\n".len();
        bad_crlf[at] = b'x';
        assert!(fault(&p, &bad_crlf).1.contains("malformed chunked"));
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n";
        assert!(fault(&p, huge).1.contains("overflows"));
    }

    #[test]
    fn a_head_past_the_limit_is_wrong_however_it_arrives() {
        let p = proto(HttpMethod::Get, 8);
        let mut head = b"HTTP/1.1 200 OK\r\nx-filler: ".to_vec();
        head.resize(MAX_HEAD + 1, b'x');
        for piece in [head.len(), 1000] {
            let (done, error) = feed_in_pieces(&p, &head, piece, 1);
            assert_eq!(done, 0);
            let (kind, what) = error.expect("refused");
            assert_eq!(kind, Fault::Wrong);
            assert!(what.contains("longer than"), "{what}");
        }
    }

    #[test]
    fn bytes_after_the_last_answer_are_unasked() {
        let p = proto(HttpMethod::Get, 8);
        let stream = [saythat_answer(&body(&p, 1, 0)), b"HTTP".to_vec()].concat();
        let (done, error) = feed_in_pieces(&p, &stream, stream.len(), 1);
        assert_eq!(done, 1);
        assert!(error.expect("refused").1.contains("no message awaiting"));
    }

    #[test]
    fn a_split_head_is_held_once_and_the_buffer_keeps_its_size() {
        let p = proto(HttpMethod::Get, 8);
        let mut c = HttpChecker::default();
        let mut capacity = None;
        for seq in 0..50 {
            // Every answer is cut inside its head, at a different place.
            let answer = saythat_answer(&body(&p, 1, seq));
            let (first, second) = answer.split_at(20 + seq as usize);
            assert_eq!(
                c.feed(&p, 1, seq, 1, first, &mut Statuses::default())
                    .completed,
                0
            );
            assert_eq!(
                c.feed(&p, 1, seq, 1, second, &mut Statuses::default())
                    .completed,
                1
            );
            assert!(c.head.is_empty());
            assert_eq!(
                *capacity.get_or_insert(c.head.capacity()),
                c.head.capacity()
            );
        }
    }

    proptest::proptest! {
        /// Answers as a query of statuses and sizes asks, by length or chunked, pass however
        /// they are cut; one byte more or less in any of them is caught.
        #[test]
        fn asked_sizes_and_statuses_pass_however_cut(
            picks in proptest::collection::vec((0usize..3, 0usize..3, proptest::bool::ANY), 1..6),
            delivery in 1usize..200,
            off_by_one in proptest::option::of((0usize..6, proptest::bool::ANY)),
        ) {
            let p = proto_asking(HttpMethod::Post, 20, "status=503:30,404:30&size=3:20,150:20");
            let statuses = ["200 OK", "503 Service Unavailable", "404 Not Found"];
            let sizes = [3, 150, 33];
            let mut stream = Vec::new();
            for (s, &(status, size, chunked)) in picks.iter().enumerate() {
                let mut b = body(&p, 1, s as u64);
                let mut len = sizes[size];
                if let Some((_, more)) = off_by_one.filter(|&(which, _)| which == s) {
                    len = if more { len + 1 } else { len - 1 };
                }
                b = sized(b, len);
                let head = if chunked {
                    format!("HTTP/1.1 {}\r\nTransfer-Encoding: chunked\r\n\r\n", statuses[status])
                } else {
                    format!("HTTP/1.1 {}\r\nContent-Length: {len}\r\n\r\n", statuses[status])
                };
                stream.extend_from_slice(head.as_bytes());
                if chunked {
                    stream.extend_from_slice(format!("{len:x}\r\n").as_bytes());
                    stream.extend_from_slice(&b);
                    stream.extend_from_slice(b"\r\n0\r\n\r\n");
                } else {
                    stream.extend_from_slice(&b);
                }
            }
            let n = picks.len();
            let (done, error) = feed_in_pieces(&p, &stream, delivery, n);
            match off_by_one {
                Some((which, _)) if which < n => proptest::prop_assert!(error.is_some() || done < n),
                _ => proptest::prop_assert_eq!((done, error), (n, None)),
            }
        }

        /// Pipelined answers pass however they are cut, and changing any one byte is caught
        /// (or leaves the answers incomplete).
        #[test]
        fn any_cut_passes_and_any_changed_byte_is_caught(
            size in 1u32..300,
            chunked in proptest::bool::ANY,
            cuts in proptest::collection::vec(1usize..300, 0..4),
            delivery in 1usize..500,
            flip_at in proptest::num::usize::ANY,
            flip_to in proptest::num::u8::ANY,
        ) {
            let p = proto(HttpMethod::Post, size);
            // The bytes the checker vouches for: the status line, the length, and everything
            // after the head but chunk extensions and trailers. Other header fields (Date,
            // Server) may say anything.
            let (mut stream, mut checked) = (Vec::new(), Vec::new());
            for s in 0..3 {
                let b = body(&p, 1, s);
                let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c < b.len()).collect();
                cuts.sort_unstable();
                let answer = if chunked { bare_chunked_answer(&b, &cuts) } else { saythat_answer(&b) };
                let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                let length = answer.windows(16).position(|w| w == b"Content-Length: ");
                let digits = length.map_or(0..0, |at| at + 16..at + 16 + b.len().to_string().len());
                let at = stream.len();
                checked.extend((0..15).chain(digits).chain(head_end..answer.len()).map(|k| at + k));
                stream.extend_from_slice(&answer);
            }
            proptest::prop_assert_eq!(feed_in_pieces(&p, &stream, delivery, 3), (3, None));

            let mut bad = stream.clone();
            let i = checked[flip_at % checked.len()];
            proptest::prop_assume!(bad[i] != flip_to);
            bad[i] = flip_to;
            let (done, error) = feed_in_pieces(&p, &bad, delivery, 3);
            proptest::prop_assert!(error.is_some() || done < 3);
        }
    }
}
