//! A controlled answer (issue 17): the answer to a request that asked, by its query or its
//! `X-Saythat-*` fields (or by `--http-defaults`), for a status, a delay, a size, extra fields,
//! a slow body, a fault or a JSON description of itself. It is staged, not written: the echo is
//! kept until the request is complete, then the request's drawn [`Plan`] says what goes out,
//! when (on the loop's timers, through `Next::Wait`) and how (under the output cap, in drips, or
//! cut by a reset).
//!
//! It keeps the echo (or the description) and nothing more: a `size` past the echo and every
//! `drip` are written from a static filler. It must never sleep, never write before its request
//! is complete, and never keep a buffer the `--max-held` budget did not grant.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::budget::{HeldBudget, Kept};
use super::chunked::{ChunkError, ChunkedDecoder};
use super::control::{ControlError, Plan, ResetAt};
use super::describe::Description;
use super::request::{self, refusal, ConnectionHeader, Refusal, BAD_REQUEST, TOO_LARGE};
use super::response::{chunk_size_line, end_head, Heads};
use super::setup::Backend;
use super::target;
use crate::framing::{Answers, Next, Origin};

/// One line of the filler a `size` past the echo is made of, repeated: a client that checks
/// a body sees where each byte came from.
pub const FILLER_LINE: &[u8; 64] =
    b"saythat filler 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ\n";
const FILLER_LEN: usize = 4096;
/// The filler, `FILLER_LINE` over and over: every body past its echo is written from here.
static FILLER: [u8; FILLER_LEN] = filler();

const fn filler() -> [u8; FILLER_LEN] {
    let mut bytes = [0; FILLER_LEN];
    let mut at = 0;
    while at < FILLER_LEN {
        bytes[at] = FILLER_LINE[at % FILLER_LINE.len()];
        at += 1;
    }
    bytes
}

/// What the request said that its answer shows: the echo's start, and the request's body.
enum Content {
    /// The echo: the prefix, then the decoded path or the body.
    Echo,
    /// The description of the request, the `request`th on its connection: its head is kept,
    /// its body collected, described once the body is in and the loop has said which
    /// connection it came on (`who`: its peer, id, and the subject of its client certificate).
    Json {
        head: Vec<u8>,
        request: u32,
        who: Option<(Option<SocketAddr>, u64, Option<Box<str>>)>,
    },
    /// A refused control's line (`400`); the request's body is read and dropped.
    Refused,
}

/// The request's body still to come, read into the content (or dropped).
#[derive(Debug)]
enum Rest {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Where a staged answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The request's body is on its way.
    Body,
    /// Complete, to be described: the loop says which connection it came on only to a
    /// protocol's deadline (so the message path never pays for it), so a deadline due at once
    /// is asked for first (`Some` since then).
    Describing(Option<Instant>),
    /// Complete: the answer's head waits until then.
    Delayed(Instant),
    /// The head is out: the body goes out as room allows; this many bytes of it so far.
    Sending(u64),
    /// The head is out: the body goes out in drips, the next at this time; this many bytes so
    /// far.
    Dripping(Instant, u64),
}

/// What a call into a staged answer came to.
pub(super) enum Step {
    /// This many bytes of the input were the request's body; the loop is to do this (read more
    /// of the body, wait, pause for room, reset) before the answer goes on.
    Hold(usize, Next),
    /// The body ended after this many bytes, and the answer is all out; what it said of the
    /// connection (`Close`: it closes after it).
    Done(usize, ConnectionHeader),
    /// The request gets this error response instead (its body broke its framing, or the
    /// budget had no room for it).
    Refused(Refusal),
}

/// What a staged answer needs of the protocol, lent for a call.
pub(super) struct Lent<'a> {
    pub heads: &'a mut Heads,
    pub backend: &'a Backend,
    pub max_body: u64,
    pub body_timeout: Option<Duration>,
    pub draining: bool,
}

/// A controlled answer, from its request's head until its last byte is out.
#[derive(Debug)]
pub(super) struct Staged {
    plan: Plan,
    content: Content,
    /// The echo's or the description's bytes, as far as the answer shows them.
    kept: Kept,
    rest: Rest,
    /// A HEAD: the head alone goes out.
    head_only: bool,
    /// HTTP/1.1: a drip may go chunked (an HTTP/1.0 client gets it by Content-Length).
    chunked_ok: bool,
    /// What the request asked of its connection; `Close` once the answer closes it.
    connection: ConnectionHeader,
    /// Bytes of body the answer sends, once its head is out.
    body_len: u64,
    stage: Stage,
    /// When body bytes last arrived, for `--body-timeout`.
    last_read: Instant,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Content::Echo => "Echo",
            Content::Json { .. } => "Json",
            Content::Refused => "Refused",
        })
    }
}

/// What a staged request is, from its head.
pub(super) struct Request<'a> {
    /// The whole head.
    pub head: &'a [u8],
    /// The target's path, still percent-encoded (checked).
    pub path: &'a [u8],
    pub head_only: bool,
    /// What the answer is to say of the connection.
    pub connection: ConnectionHeader,
    /// Content-Length, or 0.
    pub length: u64,
    pub chunked: bool,
    pub now: Instant,
}

impl<'a> Request<'a> {
    /// The request of `head`, at the start of `input`. Built on the controlled path only, from
    /// the head's fields: a head passed by reference to a call would live in memory on every
    /// request, not in registers.
    #[inline(always)]
    pub fn of(
        head: &request::Head<'a>,
        input: &'a [u8],
        connection: ConnectionHeader,
        now: Instant,
    ) -> Request<'a> {
        Request {
            head: &input[..head.len],
            path: head.path,
            head_only: head.head_only,
            connection,
            length: head.length,
            chunked: head.chunked,
            now,
        }
    }
}

impl Staged {
    /// Stages the answer `plan` (or the refusal `refused`) asks for the request `request`;
    /// `Err` when `--max-held` has no room for its echo.
    pub(super) fn new(
        request: &Request<'_>,
        prefix: &[u8],
        plan: Result<Plan, ControlError>,
        number: u32,
        budget: &Arc<HeldBudget>,
    ) -> Result<Box<Staged>, Refusal> {
        let rest = if request.chunked {
            Rest::Chunked(ChunkedDecoder::new())
        } else if request.length > 0 {
            Rest::Length(request.length)
        } else {
            Rest::None
        };
        let has_body = !matches!(rest, Rest::None);
        let budget = budget.clone();
        let (plan, content, kept) = match plan {
            Ok(plan) if plan.json => {
                let head = request.head.to_vec();
                let content = Content::Json {
                    head,
                    request: number,
                    who: None,
                };
                (plan, content, Kept::new(u64::MAX, budget))
            }
            Ok(plan) => {
                // How much of the echo the answer shows: none of it to a HEAD, at most `size`.
                let keep = match plan.size {
                    _ if request.head_only => 0,
                    Some(size) => size,
                    None => u64::MAX,
                };
                let mut kept = Kept::new(keep, budget);
                kept.push(prefix);
                if !has_body {
                    push_decoded(&mut kept, request.path);
                }
                (plan, Content::Echo, kept)
            }
            Err(refused) => {
                // Its line alone, whatever the request's body says.
                let line = refused.to_string();
                let mut kept = Kept::new(line.len() as u64, budget);
                kept.push(line.as_bytes());
                (refused_plan(), Content::Refused, kept)
            }
        };
        kept.check()?;
        Ok(Box::new(Staged {
            plan,
            content,
            kept,
            rest,
            head_only: request.head_only,
            chunked_ok: version(request.head) != b"HTTP/1.0",
            connection: request.connection,
            body_len: 0,
            stage: Stage::Body,
            last_read: request.now,
        }))
    }

    /// The loop says which connection the request came on (to a deadline): kept for its
    /// description, if it is to be described now.
    pub(super) fn meet(&mut self, origin: Option<Origin<'_>>) {
        if let (Stage::Describing(Some(_)), Content::Json { who, .. }) =
            (self.stage, &mut self.content)
        {
            *who =
                origin.map(|origin| (origin.peer(), origin.id, origin.identity().map(Box::from)));
        }
    }

    /// When the loop must call again: the body's `--body-timeout`, the delay's end, the next
    /// drip; `None` while the answer waits for room only.
    #[inline(never)]
    pub(super) fn deadline(&self, body_timeout: Option<Duration>) -> Option<Instant> {
        match self.stage {
            Stage::Body => body_timeout.and_then(|timeout| self.last_read.checked_add(timeout)),
            Stage::Delayed(at) | Stage::Dripping(at, _) | Stage::Describing(Some(at)) => Some(at),
            Stage::Sending(_) | Stage::Describing(None) => None,
        }
    }

    /// Takes `input` (which starts inside the request's body, if one is still to come) and
    /// moves the answer on as far as it can now.
    pub(super) fn step(
        &mut self,
        input: &[u8],
        answers: &mut Answers<'_>,
        lent: &mut Lent<'_>,
    ) -> Step {
        let now = answers.now();
        let mut used = 0;
        if self.stage == Stage::Body {
            match self.take_body(input, lent.max_body) {
                Ok((n, false)) => {
                    if n > 0 {
                        self.last_read = now;
                    } else if self.deadline(lent.body_timeout).is_some_and(|at| at <= now) {
                        let why = "the request body stalled for longer than --body-timeout";
                        return Step::Refused(refusal("408 Request Timeout", why));
                    }
                    return Step::Hold(n, Next::Continue);
                }
                Ok((n, true)) => used = n,
                Err(refused) => return Step::Refused(refused),
            }
            self.stage = match self.content {
                Content::Json { .. } => Stage::Describing(None),
                _ => Stage::Delayed(now + self.plan.delay),
            };
        }
        loop {
            match self.stage {
                Stage::Body => return Step::Hold(used, Next::Continue),
                Stage::Describing(None) => {
                    self.stage = Stage::Describing(Some(now));
                    return Step::Hold(used, Next::Wait);
                }
                Stage::Describing(Some(_)) => {
                    if let Content::Json { head, request, who } = &self.content {
                        let (peer, id, subject) = who.clone().unwrap_or_default();
                        let who = (peer, id, *request, subject.as_deref());
                        let description = describe(head, &self.kept.bytes, who, lent.backend);
                        self.kept.replace(&description);
                        if let Err(refused) = self.kept.check() {
                            return Step::Refused(refused);
                        }
                    }
                    self.stage = Stage::Delayed(now + self.plan.delay);
                }
                Stage::Delayed(at) if at > now => return Step::Hold(used, Next::Wait),
                Stage::Delayed(_) => {
                    if let Some(next) = self.head(answers, lent) {
                        return Step::Hold(used, next);
                    }
                }
                Stage::Sending(sent) => return self.send(used, sent, answers, lent),
                Stage::Dripping(at, _) if at > now => return Step::Hold(used, Next::Wait),
                Stage::Dripping(_, sent) => return self.drip(used, sent, answers, lent),
            }
        }
    }

    /// Reads the request's body from `input`: how many bytes were its, and whether it is done.
    fn take_body(&mut self, input: &[u8], max_body: u64) -> Result<(usize, bool), Refusal> {
        let kept = &mut self.kept;
        // A refusal's body is read and dropped: its content is its line.
        let drop = matches!(self.content, Content::Refused);
        let taken = match &mut self.rest {
            Rest::None => return Ok((0, true)),
            Rest::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                if !drop {
                    kept.push(&input[..take]);
                }
                *left -= take as u64;
                (take, *left == 0)
            }
            Rest::Chunked(decoder) => {
                let used = decoder
                    .decode(input, max_body, |data| {
                        if !drop {
                            kept.push(data)
                        }
                    })
                    .map_err(|e| match e {
                        ChunkError::TooLarge => {
                            refusal(TOO_LARGE, "the chunked body is larger than --max-body")
                        }
                        ChunkError::Malformed(why) => refusal(BAD_REQUEST, why),
                    })?;
                (used, decoder.is_done())
            }
        };
        self.kept.check()?;
        if taken.1 {
            self.rest = Rest::None;
        }
        Ok(taken)
    }

    /// The answer's head goes out (or a reset instead); the body is to follow. Returns what
    /// the loop must do first, if anything.
    fn head(&mut self, answers: &mut Answers<'_>, lent: &mut Lent<'_>) -> Option<Next> {
        let counts = &mut lent.heads.counts_mut().controls;
        if !self.plan.delay.is_zero() {
            counts.delayed += 1;
        }
        if self.plan.reset == Some(ResetAt::BeforeHead) {
            counts.resets += 1;
            return Some(Next::Reset);
        }
        if self.plan.close {
            counts.closes += 1;
            self.connection = ConnectionHeader::Close;
        } else if lent.draining {
            self.connection = ConnectionHeader::Close;
        }
        let status = self.plan.status;
        let total = self.total();
        let bodiless = status < 200 || status == 204 || status == 304;
        let drip_body = self.plan.drip.is_some() && !bodiless;
        let chunked = drip_body && self.chunked_ok;
        lent.heads.write_start(answers, status);
        if !bodiless {
            answers.push(match self.content {
                Content::Json { .. } => b"\r\nContent-Type: application/json",
                _ => b"\r\nContent-Type: text/plain; charset=utf-8",
            });
            if chunked {
                answers.push(b"\r\nTransfer-Encoding: chunked");
            } else {
                answers.push(b"\r\nContent-Length: ");
                answers.push(itoa::Buffer::new().format(total).as_bytes());
            }
        }
        for (name, value) in &self.plan.headers {
            answers.push(b"\r\n");
            answers.push(name.as_bytes());
            answers.push(b": ");
            answers.push(value.as_bytes());
        }
        end_head(answers, self.connection);
        // No body (a reset "halfway through" it comes right after the head), or all of it.
        self.body_len = if self.head_only || bodiless { 0 } else { total };
        match self.plan.drip {
            // Unframed, by Content-Length, to an HTTP/1.0 client (`chunked_ok`).
            Some(drip) if drip_body && !self.head_only => {
                lent.heads.counts_mut().controls.dripped += 1;
                self.stage = Stage::Dripping(answers.now() + drip.every, 0);
            }
            _ => self.stage = Stage::Sending(0),
        }
        None
    }

    /// Bytes of the answer's body, as its head tells them (a HEAD's too).
    fn total(&self) -> u64 {
        match self.content {
            Content::Refused => self.kept.bytes.len() as u64,
            _ => self.plan.size.unwrap_or(self.kept.seen),
        }
    }

    /// Where the body stops: its end, or its middle for a `reset` there.
    fn stop(&self) -> u64 {
        match self.plan.reset {
            Some(ResetAt::MidBody) => self.body_len / 2,
            _ => self.body_len,
        }
    }

    /// The body as room allows.
    fn send(
        &mut self,
        used: usize,
        sent: u64,
        answers: &mut Answers<'_>,
        lent: &mut Lent<'_>,
    ) -> Step {
        let stop = self.stop();
        let piece = (stop - sent).min(answers.room().max(1) as u64);
        self.push_body(answers, sent, piece);
        let sent = sent + piece;
        if sent < stop {
            self.stage = Stage::Sending(sent);
            return Step::Hold(used, Next::Pause);
        }
        self.end(used, lent)
    }

    /// The next drip, then a wait for the one after.
    fn drip(
        &mut self,
        used: usize,
        sent: u64,
        answers: &mut Answers<'_>,
        lent: &mut Lent<'_>,
    ) -> Step {
        let Some(drip) = self.plan.drip else {
            return self.end(used, lent);
        };
        let now = answers.now();
        if answers.is_full() {
            // The client reads slower than we drip: this drip waits for the next turn of it.
            self.stage = Stage::Dripping(now + drip.every, sent);
            return Step::Hold(used, Next::Wait);
        }
        let stop = self.stop();
        let piece = (stop - sent).min(u64::from(drip.bytes));
        if piece > 0 {
            if self.chunked_ok {
                let mut line = [0u8; 18];
                answers.push(chunk_size_line(piece as usize, &mut line));
                self.push_body(answers, sent, piece);
                answers.push(b"\r\n");
            } else {
                self.push_body(answers, sent, piece);
            }
        }
        let sent = sent + piece;
        if sent < stop {
            self.stage = Stage::Dripping(now + drip.every, sent);
            return Step::Hold(used, Next::Wait);
        }
        if self.chunked_ok && self.plan.reset != Some(ResetAt::MidBody) {
            answers.push(b"0\r\n\r\n");
        }
        self.end(used, lent)
    }

    /// The body went out as far as it goes: the answer is done, or a reset cuts it here.
    fn end(&mut self, used: usize, lent: &mut Lent<'_>) -> Step {
        if self.plan.reset == Some(ResetAt::MidBody) {
            lent.heads.counts_mut().controls.resets += 1;
            return Step::Hold(used, Next::Reset);
        }
        Step::Done(used, self.connection)
    }

    /// Writes `len` bytes of the body from `from`: the kept content, then the filler.
    fn push_body(&self, answers: &mut Answers<'_>, from: u64, len: u64) {
        let content = &self.kept.bytes;
        let (mut at, end) = (from, from + len);
        if (at as usize) < content.len() {
            let upto = (end as usize).min(content.len());
            answers.push(&content[at as usize..upto]);
            at = upto as u64;
        }
        while at < end {
            let offset = ((at - content.len() as u64) % FILLER_LEN as u64) as usize;
            let take = ((end - at) as usize).min(FILLER_LEN - offset);
            answers.push(&FILLER[offset..offset + take]);
            at += take as u64;
        }
    }
}

/// The plan of a refused control's answer: a plain `400`, nothing else asked.
fn refused_plan() -> Plan {
    Plan {
        status: 400,
        delay: Duration::ZERO,
        size: None,
        headers: Vec::new(),
        drip: None,
        close: false,
        reset: None,
        json: false,
    }
}

/// Appends `path` percent-decoded (already checked).
fn push_decoded(kept: &mut Kept, path: &[u8]) {
    let mut decoded = Vec::with_capacity(path.len());
    // A decoded length that is not the path's: its escapes, if any, are decoded.
    let answers = &mut Answers::new(&mut decoded, usize::MAX, Instant::now());
    target::push_decoded(answers, path, usize::MAX);
    kept.push(&decoded);
}

/// The version of the request line at the start of `head` (its last word).
fn version(head: &[u8]) -> &[u8] {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.rsplit(|&b| b == b' ').next().unwrap_or_default()
}

/// The JSON description of the request whose head is `head` and body `body`, which came from
/// `peer` on connection `id` of its loop, the `request`th on it, with a client certificate of
/// `subject` if it presented one.
fn describe(
    head: &[u8],
    body: &[u8],
    (peer, id, request, subject): (Option<SocketAddr>, u64, u32, Option<&str>),
    backend: &Backend,
) -> Vec<u8> {
    let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).unwrap_or_default();
    let mut words = line.trim_end_matches('\r').splitn(3, ' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let mut fields = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
    let rest = head.get(line_end + 1..).unwrap_or_default();
    let headers = match httparse::parse_headers(rest, &mut fields) {
        Ok(httparse::Status::Complete((_, read))) => read,
        _ => &[],
    };
    let description = Description {
        method,
        target,
        version: u8::from(version(head) != b"HTTP/1.0"),
        headers,
        body,
        peer: peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        client_certificate: subject,
        connection: id,
        request: u64::from(request),
        instance: backend.instance.as_deref(),
        worker: backend.worker,
    };
    let mut out = Vec::new();
    description.write_json(&backend.trusted, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::http::control::Drip;
    use proptest::prelude::*;

    const PREFIX: &[u8] = b"You say that ";

    fn plan() -> Plan {
        Plan {
            status: 200,
            ..refused_plan()
        }
    }

    /// Stages `plan` for `GET /path` and drives it as the loop would, each call an hour after
    /// the last (so every wait is over), with `room` under the output cap per call: the
    /// answer's head, its body as sent over all the calls, and what the last call asked.
    fn run(plan: Plan, path: &str, room: usize) -> (String, Vec<u8>, Next) {
        let head = format!("GET /{path} HTTP/1.1\r\nHost: a\r\n\r\n");
        let request = Request {
            head: head.as_bytes(),
            path: path.as_bytes(),
            head_only: false,
            connection: ConnectionHeader::Persist,
            length: 0,
            chunked: false,
            now: Instant::now(),
        };
        let budget = Arc::new(HeldBudget::new(u64::MAX));
        let Ok(mut staged) = Staged::new(&request, PREFIX, Ok(plan), 1, &budget) else {
            panic!("no room in an unbounded budget");
        };
        let (mut heads, backend) = (Heads::new(None), Backend::default());
        let (mut out, mut now) = (Vec::new(), Instant::now());
        for _ in 0..100_000 {
            now += Duration::from_secs(3600);
            let mut lent = Lent {
                heads: &mut heads,
                backend: &backend,
                max_body: 1 << 20,
                body_timeout: None,
                draining: false,
            };
            // What waited is written before each call, as the loop does: all the room is free.
            let before = out.len();
            let mut answers = Answers::new(&mut out, room, now);
            let next = match staged.step(&[], &mut answers, &mut lent) {
                Step::Hold(_, next) if next != Next::Reset => {
                    assert!(out.len() > before || next == Next::Wait, "no progress");
                    continue;
                }
                Step::Hold(_, next) => next,
                Step::Done(_, _) => Next::Continue,
                Step::Refused(refused) => panic!("refused: {}", refused.reason),
            };
            let at = memchr::memmem::find(&out, b"\r\n\r\n").map_or(0, |at| at + 4);
            let body = out.split_off(at);
            return (String::from_utf8_lossy(&out).into_owned(), body, next);
        }
        panic!("the answer never ended");
    }

    /// A body of `size` bytes: `echo`, cut, or followed by the filler.
    fn sized(echo: &[u8], size: usize) -> Vec<u8> {
        let mut body = echo[..echo.len().min(size)].to_vec();
        let filler = FILLER_LINE.iter().copied().cycle();
        body.extend(filler.take(size - body.len()));
        body
    }

    /// The data of a chunked body, strictly framed.
    fn dechunk(mut wire: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            let line = memchr::memmem::find(wire, b"\r\n").expect("a size line");
            let size = std::str::from_utf8(&wire[..line]).expect("hex");
            let size = usize::from_str_radix(size, 16).expect("hex");
            wire = &wire[line + 2..];
            if size == 0 {
                assert_eq!(wire, b"\r\n", "the end of the body");
                return data;
            }
            data.extend_from_slice(&wire[..size]);
            assert_eq!(&wire[size..size + 2], b"\r\n");
            wire = &wire[size + 2..];
        }
    }

    proptest! {
        /// Any size, any room: exactly `size` bytes, the echo then the filler from where the
        /// echo ends, across the filler's own length, in pieces no larger than the room.
        #[test]
        fn a_size_is_the_echo_then_the_filler(size in 0usize..20_000, room in 1usize..5000) {
            let plan = Plan { size: Some(size as u64), ..plan() };
            let (head, body, next) = run(plan, "hi", room);
            prop_assert!(head.contains(&format!("\r\nContent-Length: {size}\r\n")), "{}", head);
            prop_assert_eq!(next, Next::Continue);
            prop_assert_eq!(body, sized(b"You say that hi", size));
        }

        /// Dripped, the same body in chunks of at most the drip's bytes.
        #[test]
        fn a_drip_is_the_same_body_in_pieces(size in 0usize..3000, bytes in 1u32..700) {
            let drip = Drip { bytes, every: Duration::from_millis(10) };
            let plan = Plan { size: Some(size as u64), drip: Some(drip), ..plan() };
            let (head, body, _) = run(plan, "", usize::MAX);
            prop_assert!(head.contains("\r\nTransfer-Encoding: chunked\r\n"), "{}", head);
            prop_assert_eq!(dechunk(&body), sized(PREFIX, size));
        }

        /// A reset mid-body comes after exactly half the body.
        #[test]
        fn a_reset_mid_body_cuts_it_in_half(size in 0usize..5000) {
            let plan = Plan { size: Some(size as u64), reset: Some(ResetAt::MidBody), ..plan() };
            let (_, body, next) = run(plan, "x", usize::MAX);
            prop_assert_eq!(next, Next::Reset);
            prop_assert_eq!(body, sized(b"You say that x", size)[..size / 2].to_vec());
        }
    }

    #[test]
    fn statuses_without_a_body_have_no_length_and_unknown_codes_no_reason() {
        for (status, line) in [
            (204, "HTTP/1.1 204 No Content\r\n"),
            (599, "HTTP/1.1 599 \r\n"),
        ] {
            let plan = Plan {
                status,
                size: Some(10),
                ..plan()
            };
            let (head, body, _) = run(plan, "x", usize::MAX);
            assert!(head.starts_with(line), "{head}");
            assert_eq!(head.contains("Content-Length"), status == 599, "{head}");
            assert_eq!(body.len(), if status == 599 { 10 } else { 0 });
        }
    }
}
