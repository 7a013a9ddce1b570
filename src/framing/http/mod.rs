//! HTTP/1.1, the chapter the lesson builds toward: every request is answered `200 OK` with the
//! prefix and what the client said (its body, or its path), on the same loop as the echo
//! protocols, keep-alive and pipelined, strict about what it accepts.
//!
//! This file is the [`Protocol`] impl and a connection's session: where a request starts and
//! ends, what is held between reads, the header timeout. The parts it composes, each pure and
//! none calling back here: `request` reads and checks a head (`target` its target, `host` its
//! Host), `answer` decides what a request is answered with, `response` writes answer heads,
//! `body` streams a body into its answer (`chunked` decodes chunks), `held` keeps the answer to
//! a body that spans reads, `date` keeps the `Date`, `route` lets another endpoint answer.
//!
//! Heads are parsed by `httparse` straight from the bytes the loop lends; a connection holds
//! input only for a head that has not completed (at most `--max-header` bytes) or, after a
//! pause, the requests its answers had no room for.
//!
//! An answer never starts before its request is complete: a request whose body arrives in the
//! same read as its head is answered straight into the loop's output, as any other; one whose
//! body spans reads has its answer held in a buffer of the session's own (`Held`) until the
//! body is in, reserved against a budget shared by every loop ([`HeldBudget`], `--max-held`),
//! then handed out in pieces no larger than the output's room. So a client that writes a whole
//! body before it reads (nginx, HAProxy, many libraries) gets its whole answer, the answer does
//! not depend on how TCP split the request, and a body that breaks its framing is refused, never
//! answered in part. It must never panic on any input, never allocate per request when a request
//! comes in one read, and never answer anything after an error response.

mod answer;
mod body;
mod budget;
mod chunked;
pub mod control;
mod controlled;
mod date;
pub mod describe;
mod held;
mod host;
mod request;
mod response;
mod route;
mod session;
mod setup;
mod staged;
mod target;
mod upgrade;

use std::time::Instant;

use body::{Body, StagedBox, Streamed};
pub use budget::HeldBudget;
pub use chunked::{ChunkError, ChunkedDecoder};
use controlled::Controller;
pub use date::DateCache;
use held::{Held, HeldStep};
pub use request::MAX_HEADERS;
use request::{refusal, ConnectionHeader, Refusal, BAD_REQUEST, MAX_EMPTY_LINES};
use response::{Answer, Heads, Reply, CONTINUE};
pub use route::{Echo, Route, Routed};
use session::Aside;
pub use session::HttpSession;
pub use setup::{Backend, HttpLimits};
use staged::Step;
pub use staged::FILLER_LINE;

use super::ws::WebSocket;
use super::{Answers, CloseReason, Next, Origin, Protocol, ProtocolCounts};
use crate::config::MAX_READ;

/// The rules of HTTP mode, and the `Date` the loop's connections share; `R` answers the
/// requests it routes, the rest are echoed.
#[derive(Debug, Clone)]
pub struct Http<R = Echo> {
    prefix: Box<[u8]>,
    limits: HttpLimits,
    /// The answers' heads, the `Date` they share and their counts by status.
    heads: Heads,
    route: R,
    /// The server drains: every answer from now on says `Connection: close`, and its
    /// connection closes after it (clients open a new one elsewhere).
    draining: bool,
    /// The test-backend controls (issue 17): which requests have them, and what they need.
    controls: Controller,
    /// The WebSocket echo a request may upgrade to; with a prefix that is not UTF-8 (which
    /// the server refuses at start), every upgrade is refused.
    ws: WebSocket,
    /// Heads parsed, complete or not: what a head trickled in pieces costs, for the tests.
    #[cfg(test)]
    parses: usize,
}

impl Http {
    pub fn new(prefix: &[u8], limits: HttpLimits) -> Http {
        Http::with_route(prefix, limits, Echo)
    }
}

impl<R: Route> Http<R> {
    /// HTTP mode whose requests `route` may answer in place of the echo.
    pub fn with_route(prefix: &[u8], limits: HttpLimits, route: R) -> Http<R> {
        Http {
            prefix: prefix.into(),
            controls: Controller::new(Backend::default(), prefix, &limits),
            ws: WebSocket::new(
                String::from_utf8_lossy(prefix).as_bytes(),
                limits.max_message,
            )
            .expect("a lossy string is UTF-8")
            .with_ping(limits.ws_ping),
            limits,
            heads: Heads::new(None),
            route,
            draining: false,
            #[cfg(test)]
            parses: 0,
        }
    }

    /// HTTP mode with the test-backend controls `backend` sets up (`--instance`, ...).
    pub fn with_backend(mut self, backend: Backend) -> Http<R> {
        self.heads = Heads::new(backend.instance.as_deref());
        self.controls = Controller::new(backend, &self.prefix, &self.limits);
        self
    }

    /// Answers an error and closes: [`answer::refuse`] with this protocol's heads.
    fn refuse(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>, r: Refusal) -> Next {
        answer::refuse(&mut self.heads, session, answers, r)
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
        // Where the answer to the request in progress starts in `answers`.
        let mut mark = answers.len();
        loop {
            if let Some(Aside::Held(held)) = session.aside.as_deref_mut() {
                let step = held.take(
                    &input[at..],
                    &mut session.body,
                    &mut session.answer,
                    self.limits.max_body,
                    &self.prefix,
                    &mut self.heads,
                    answers,
                );
                match step {
                    HeldStep::More(used) => return (at + used, Next::Continue),
                    HeldStep::Pause(used) => return (at + used, Next::Pause),
                    HeldStep::Done(used) => {
                        session.aside = None;
                        at += used;
                    }
                    HeldStep::Refused(refused) => {
                        return (input.len(), self.refuse(session, answers, refused))
                    }
                }
            } else if let Body::Head(_) = session.body {
                if at == input.len() {
                    return (at, Next::Continue);
                }
                if answers.is_full() {
                    return (at, Next::Pause);
                }
                if matches!(input[at], b'\r' | b'\n') {
                    // Dropped as they come, so they are never parsed again with what follows.
                    let (skip, lines) = request::empty_lines(&input[at..]);
                    let lines = u8::try_from(lines).unwrap_or(u8::MAX);
                    session.empty_lines = session.empty_lines.saturating_add(lines);
                    if usize::from(session.empty_lines) > MAX_EMPTY_LINES {
                        let refused = refusal(
                            BAD_REQUEST,
                            "more than 8 empty lines before the request line",
                        );
                        return (input.len(), self.refuse(session, answers, refused));
                    }
                    if skip > 0 {
                        at += skip;
                        continue;
                    }
                    // A CR whose LF has not come yet, or a bare CR that `start` refuses.
                }
                match self.start(session, &input[at..], answers) {
                    Ok(Some((used, answer_at))) => {
                        session.empty_lines = 0;
                        at += used;
                        mark = answer_at;
                        if !matches!(session.body, Body::Head(_)) {
                            continue;
                        }
                        if session.ws().is_some() {
                            return (at, Next::Continue);
                        }
                    }
                    Ok(None) => return (at, Next::Continue),
                    Err(refused) => {
                        if request::is_head(&input[at..]) {
                            session.answer.reply = Reply::HeadOnly;
                        }
                        return (input.len(), self.refuse(session, answers, refused));
                    }
                }
            } else {
                let streamed = body::stream(
                    &mut session.body,
                    &mut session.answer,
                    &input[at..],
                    self.limits.max_body,
                    &self.prefix,
                    &mut self.heads,
                    answers,
                    None,
                );
                match streamed {
                    Streamed::More(used) => {
                        // The body spans reads (a chunked one: a Content-Length one is held
                        // from its head): its answer so far is held until it is complete.
                        if let Err(refused) = self.hold_answer(session, mark, answers) {
                            return (input.len(), self.refuse(session, answers, refused));
                        }
                        return (at + used, Next::Continue);
                    }
                    Streamed::Done(used) => at += used,
                    Streamed::Refused(refused) => {
                        self.withdraw(session, mark, answers);
                        return (input.len(), self.refuse(session, answers, refused));
                    }
                    // Told apart from the body's framings here, not before them: a plain
                    // request's head is then found with one compare.
                    Streamed::Staged => match self.step_staged(session, &input[at..], answers) {
                        Step::Hold(used, next) => return (at + used, next),
                        Step::Done(used, close) => {
                            (at, session.answer.connection) = (at + used, close);
                        }
                        Step::Refused(no) => {
                            return (input.len(), self.refuse(session, answers, no))
                        }
                    },
                }
            }
            // The request is answered in full.
            let close = session.answer.connection == ConnectionHeader::Close;
            session.end_request();
            if close {
                return (input.len(), Next::Close);
            }
        }
    }

    /// Parses the head at the start of `input` and answers it (the body, if any, follows):
    /// straight into `answers`, or, when a Content-Length body goes on past `input`, into a held
    /// answer reserved in the budget (refused 503 when it has no room). Returns the head's
    /// length and where its answer starts in `answers`; `Ok(None)`: the head is not complete yet.
    fn start(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Result<Option<(usize, usize)>, Refusal> {
        #[cfg(test)]
        {
            self.parses += 1;
        }
        let Some(head) = request::parse(input, self.limits.max_header, self.limits.max_body)?
        else {
            return Ok(None);
        };
        if head.upgrade && self.upgrade(session, input, head.len, answers)? {
            return Ok(Some((head.len, answers.len())));
        }
        let connection = if self.draining {
            ConnectionHeader::Close
        } else {
            head.connection
        };
        let has_body = head.chunked || head.length > 0;
        let routed = self.route.route(head.method, head.path);
        // Decided now, so that nothing of the head need live past the answer written below.
        let controlled = self.controls.wanted(&head) && routed.is_none();
        let reply = answer::reply(&head, routed.as_ref());
        // A Content-Length body that goes on past this read: its answer is held, and its size
        // is known now, so the budget says yes or no before anything is said or read.
        let spans = !head.chunked && head.length > (input.len() - head.len) as u64;
        let mut held = None;
        if spans {
            let content = answer::content_len(&head, routed.as_ref(), reply, &self.prefix);
            held = Some(Held::reserve(content, &self.limits.held, answers.now())?);
        }
        // `100 Continue` goes out alone, when the body is about to be read: nothing of it came
        // with the head.
        if head.expect_continue && has_body && head.len == input.len() {
            answers.push(CONTINUE);
        }
        let mark = answers.len();
        let (prefix, route, heads) = (&self.prefix, &mut self.route, &mut self.heads);
        let status = match held.as_mut() {
            Some(held) => {
                let out = &mut held.answers(answers.now());
                answer::write_head(&head, routed, connection, prefix, route, heads, out)
            }
            None => answer::write_head(&head, routed, connection, prefix, route, heads, answers),
        };
        session.body = if head.chunked {
            Body::Chunked(ChunkedDecoder::new())
        } else if head.length > 0 {
            Body::Length(head.length)
        } else {
            Body::Head(None)
        };
        session.answer = Answer {
            reply,
            connection,
            status,
        };
        if let Some(held) = held {
            session.aside = Some(Box::new(Aside::Held(held)));
        }
        // With controls (rare), the answer just written gives way to a staged one: writing it
        // first keeps this path as lean as it was.
        if controlled {
            let number = session.requests.wrapping_add(1);
            let (answer, heads) = (&mut session.answer, &mut self.heads);
            if let Some(staged) = self
                .controls
                .stage(input, number, heads, answer, mark, answers)
            {
                (session.body, session.aside) = (Body::Staged(StagedBox::new(staged?)), None);
            }
        }
        Ok(Some((head.len, mark)))
    }

    /// Answers what `session.held` holds, keeping what is left of it in place.
    fn answer_held(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        let mut held = std::mem::take(&mut session.held);
        let (used, next) = self.process(session, &held, answers);
        if next != Next::Close && next != Next::CloseNow {
            held.drain(..used);
            session.held = held;
        }
        self.settle(session, next, answers)
    }

    /// After a call: forgets an answered head's buffer and timer, starts the timer for a head
    /// that has not completed.
    fn settle(&mut self, session: &mut HttpSession, next: Next, answers: &mut Answers<'_>) -> Next {
        match next {
            Next::Continue if session.held.is_empty() => {
                // An idle keep-alive connection holds no heap memory, whatever its last head
                // needed: a head over one segment comes in pieces on a real network.
                if session.held.capacity() > 0 {
                    session.held = Vec::new();
                }
                if let Body::Head(started) = &mut session.body {
                    *started = None;
                }
            }
            Next::Continue => {
                if session.ws().is_some() {
                    return self.enter(session, answers);
                }
                if session.held.len() > self.limits.max_header {
                    let refused = request::too_long(&session.held, self.limits.max_header);
                    return self.refuse(session, answers, refused);
                }
                if let Body::Head(started) = &mut session.body {
                    started.get_or_insert(answers.now());
                }
            }
            // The wait is ours, not the client's.
            Next::Pause | Next::Wait => {
                if let Body::Head(started) = &mut session.body {
                    *started = None;
                }
            }
            // The last word is said: no head is awaited any more, so no timer may answer 408.
            Next::Close | Next::CloseNow | Next::Reset => {
                session.held = Vec::new();
                session.drop_hold();
                if let Body::Head(started) = &mut session.body {
                    *started = None;
                }
            }
        }
        next
    }

    /// [`Protocol::deadline`] of a connection that upgraded, holds an answer, or is in a body
    /// or a staged answer.
    #[inline(never)]
    fn other_deadline(&self, session: &HttpSession) -> Option<Instant> {
        if let Some((ws, s)) = self.upgraded_ref(session) {
            return ws.deadline(s);
        }
        if let Some(held) = session.hold() {
            return held.deadline(self.limits.body_timeout);
        }
        match &session.body {
            Body::Head(started) => {
                started.and_then(|at| at.checked_add(self.limits.header_timeout))
            }
            Body::Staged(staged) => staged.get().deadline(self.limits.body_timeout),
            _ => None,
        }
    }
}

impl<R: Route> Protocol for Http<R> {
    type Session = HttpSession;

    /// As much as the room allows: requests whose answers do not fit are held until they do.
    /// While a body's answer is held, its bytes go there rather than to the output, so reads go
    /// on at full size (the hold is bounded by `--max-body` and `--max-held`).
    fn read_len(&self, session: &HttpSession, room: usize) -> usize {
        if let Some((ws, s)) = self.upgraded_ref(session) {
            return ws.read_len(s, room);
        }
        if session.hold().is_some() {
            return MAX_READ;
        }
        room.clamp(1, MAX_READ)
    }

    fn on_read(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Next {
        if let Some((ws, s)) = self.upgraded(session) {
            return ws.on_read(s, input, answers);
        }
        if session.held.is_empty() {
            let (used, next) = self.process(session, input, answers);
            if matches!(next, Next::Continue | Next::Pause | Next::Wait) {
                session.held.extend_from_slice(&input[used..]);
            }
            return self.settle(session, next, answers);
        }
        // Reads come only while no pause holds requests back, so what is held is the start of
        // a head. Parsing it again only when an empty line may have arrived keeps a head sent a
        // byte at a time from costing a parse per byte.
        let old = session.held.len();
        session.held.extend_from_slice(input);
        if !request::has_head_end(&session.held[old.saturating_sub(3)..]) {
            return self.settle(session, Next::Continue, answers);
        }
        self.answer_held(session, answers)
    }

    fn on_writable(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        if let Some((ws, s)) = self.upgraded(session) {
            return ws.on_writable(s, answers);
        }
        match session.aside.as_deref_mut() {
            Some(Aside::Held(held)) if held.is_done() => {}
            Some(Aside::Held(held)) => {
                held.resume(answers.now());
                if session.held.is_empty() {
                    return Next::Continue;
                }
            }
            _ if session.held.is_empty() && !matches!(session.body, Body::Staged(_)) => {
                return Next::Continue
            }
            _ => {}
        }
        self.answer_held(session, answers)
    }

    /// The header timeout runs from accept, as nginx's `client_header_timeout` does for a
    /// connection's first request: one that sends nothing is answered 408 and closed then, not at
    /// `--idle-timeout`. Between requests, `--idle-timeout` keeps idle keep-alive connections.
    fn on_open(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) -> Next {
        session.body = Body::Head(Some(answers.now()));
        Next::Continue
    }

    fn on_eof(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) {
        // A request cut short by the client gets no answer: the client is gone.
        if let Some((ws, s)) = self.upgraded(session) {
            ws.on_eof(s, answers);
        }
    }

    /// A head's `--header-timeout`, or a held body's `--body-timeout` from its last bytes, or
    /// when a staged answer goes on.
    ///
    /// Asked after every read: inlined there for a connection between requests or in a head,
    /// the rest out of line.
    #[inline(always)]
    fn deadline(&self, session: &HttpSession) -> Option<Instant> {
        if let (Body::Head(started), None) = (&session.body, &session.aside) {
            return started.and_then(|at| at.checked_add(self.limits.header_timeout));
        }
        self.other_deadline(session)
    }

    /// A stalled head or body gets 408: nothing of its answer went out (it is held until the
    /// body is complete), so the client can be told.
    fn on_deadline(
        &mut self,
        session: &mut HttpSession,
        answers: &mut Answers<'_>,
        origin: Option<Origin<'_>>,
    ) -> Next {
        if let Some((ws, s)) = self.upgraded(session) {
            return ws.on_deadline(s, answers, origin);
        }
        if let Body::Staged(staged) = &mut session.body {
            staged.get_mut().meet(origin);
            // A staged answer's time has come (or its body's): it goes on, then what follows.
            return self.answer_held(session, answers);
        }
        let why = match session.hold() {
            Some(held) if !held.is_done() => {
                "the request body stalled for longer than --body-timeout"
            }
            Some(_) => return Next::Continue,
            None if session.body.head_started().is_some() => {
                "the request head did not complete within --header-timeout"
            }
            None => return Next::Continue,
        };
        self.heads.withdraw(&mut session.answer);
        self.refuse(session, answers, refusal("408 Request Timeout", why))
    }

    /// Between requests: nothing held, no body in progress, no answer held.
    fn at_boundary(&self, session: &HttpSession) -> bool {
        if let Some((ws, s)) = self.upgraded_ref(session) {
            return ws.at_boundary(s);
        }
        session.held.is_empty() && matches!(session.body, Body::Head(_)) && session.hold().is_none()
    }

    fn on_drain(&mut self) {
        self.draining = true;
        self.ws.on_drain();
    }

    /// HTTP clients read `503` with `Retry-After: 1`, not an echo framing's `ERR` line, which
    /// they would report as a malformed status line.
    fn refusal(&mut self, max_conns: usize, answers: &mut Answers<'_>) {
        self.heads.write_full(answers, max_conns);
    }

    fn counts(&self) -> &ProtocolCounts {
        self.heads.counts()
    }

    /// The WebSocket's, which counts apart: its messages are not HTTP responses.
    fn upgraded_counts(&self) -> Option<&ProtocolCounts> {
        Some(self.ws.counts())
    }

    /// A WebSocket's close 1001; HTTP closes an idle connection silently, as servers do.
    fn on_idle(&mut self, session: &mut HttpSession, answers: &mut Answers<'_>) {
        if let Some((ws, s)) = self.upgraded(session) {
            ws.on_idle(s, answers);
        }
    }

    fn on_close(&mut self, session: &mut HttpSession) {
        if let Some((ws, s)) = self.upgraded(session) {
            ws.on_close(s);
        }
    }

    /// During the drain, a connection that ends after an answer (which said `Connection:
    /// close`) ends for the drain.
    fn close_reason(&self, session: &HttpSession) -> CloseReason {
        if let Some((ws, s)) = self.upgraded_ref(session) {
            return ws.close_reason(s);
        }
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
    use std::sync::Arc;
    use std::time::Duration;

    const P: &[u8] = b"You say that ";

    fn http(max_header: usize, max_body: u64) -> Http {
        Http::new(
            P,
            HttpLimits::new(max_header, max_body, Duration::from_secs(10)),
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
            HttpLimits::new(8192, 0, Duration::from_secs(10)),
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

    /// Issue 16.5: a head that came in pieces needed a held buffer; once it is answered the
    /// buffer's memory goes too (its capacity, not only its length), whatever its size.
    #[test]
    fn a_head_in_pieces_leaves_no_capacity_behind() {
        let mut http = http(8192, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let field = format!("X-Cookie: {}\r\n", "c".repeat(3000));
        let wire = format!("GET /a HTTP/1.1\r\nHost: a\r\n{field}\r\n");
        let (first, second) = wire.as_bytes().split_at(1400);
        for piece in [first, second] {
            let next = http.on_read(
                &mut session,
                piece,
                &mut Answers::new(&mut out, usize::MAX, now),
            );
            assert_eq!(next, Next::Continue);
        }
        assert_eq!(mask_dates(&out), ok(b"a"));
        assert_eq!(session.held.capacity(), 0);
    }

    /// Issue 16.7: a head trickled two bytes at a time is parsed once its end has come, not
    /// once per piece, and the empty lines before it are dropped as they come, never parsed
    /// again with what follows.
    #[test]
    fn a_head_in_pieces_is_parsed_once() {
        let mut http = http(1 << 20, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let fields: String = (0..90)
            .map(|i| format!("X-{i}: {}\r\n", "v".repeat(40)))
            .collect();
        let wire = format!(
            "{}GET /a HTTP/1.1\r\nHost: a\r\n{fields}\r\n",
            "\r\n".repeat(MAX_EMPTY_LINES)
        );
        for piece in wire.as_bytes().chunks(2) {
            let next = http.on_read(
                &mut session,
                piece,
                &mut Answers::new(&mut out, usize::MAX, now),
            );
            assert_eq!(next, Next::Continue, "{}", out.escape_ascii());
        }
        assert_eq!(mask_dates(&out), ok(b"a"));
        // Once when its first piece came with nothing held (it could have been whole), once
        // when its end had come.
        assert_eq!(http.parses, 2, "{} pieces", wire.len() / 2);
        assert!(session.held.is_empty());
    }

    /// A few empty lines before a request line are ignored (RFC 9112 §2.2); past
    /// `MAX_EMPTY_LINES` the request is refused, however they arrive.
    #[test]
    fn empty_lines_before_a_request_are_bounded() {
        for split in [1, 2, 3, 1000] {
            let wire = format!(
                "{}GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
                "\r\n".repeat(MAX_EMPTY_LINES)
            );
            let pieces: Vec<&[u8]> = wire.as_bytes().chunks(split).collect();
            let (out, next) = feed(&mut http(8192, 100), &pieces, usize::MAX);
            assert_eq!((out, next), (ok(b"a"), Next::Continue), "split {split}");
            let wire = format!("\n{wire}");
            let pieces: Vec<&[u8]> = wire.as_bytes().chunks(split).collect();
            let (out, next) = feed(&mut http(8192, 100), &pieces, usize::MAX);
            assert_eq!(next, Next::Close, "split {split}");
            assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
            assert!(out.ends_with(b"\r\n\r\nmore than 8 empty lines before the request line\n"));
        }
    }

    /// An error answer to HEAD has the head a GET's would have, and no body.
    #[test]
    fn an_error_answer_to_head_has_no_body() {
        for wire in [
            &b"HEAD / HTTP/1.1\r\n\r\n"[..],
            b"\r\nHEAD / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let (out, next) = feed(&mut http(8192, 100), &[wire], usize::MAX);
            assert_eq!(next, Next::Close);
            let out = String::from_utf8_lossy(&out);
            assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
            assert!(out.contains("\r\nContent-Length: "), "{out}");
            assert!(out.ends_with("\r\nConnection: close\r\n\r\n"), "{out}");
        }
    }

    /// Found by fuzzing: a head that came in two reads started the header timer, and the
    /// request's `Connection: close` ended the connection without stopping it, so a 408 could
    /// follow the last answer.
    #[test]
    fn the_last_answer_stops_the_header_timer() {
        let mut http = http(8192, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let first = http.on_read(
            &mut session,
            b"GET / HT",
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!(first, Next::Continue);
        assert!(http.deadline(&session).is_some());
        let last = http.on_read(
            &mut session,
            b"TP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            &mut Answers::new(&mut out, usize::MAX, now),
        );
        assert_eq!(last, Next::Close);
        assert_eq!(http.deadline(&session), None);
        assert!(session.held.is_empty());
    }

    /// Issue 20's input (the fuzz plan's 13 bytes, then what the client sent): a chunked POST
    /// whose second chunk carries an extension and then breaks the framing. Whole it was
    /// refused 400; split, a 200 and the first chunk went out and the answer was cut. Now every
    /// split, at one cut or two, gets the whole run's answer.
    #[test]
    fn issue_20_every_split_gets_the_same_answer() {
        let input = b"\x05\x05\x02\x01\x01\x01\x09\xff\xff\xff\xff\x00\x00\
            POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nheoll\r\n\
            6;ext=\"v\"\r\n \r\n0\r\n\r\nworld\r\n0/1.1\r\nHost: a\x00\xff\x09- \x01\x00\x00\x00\
            \xd0/1.1\r\nHost: st: \n";
        assert_eq!(input.len(), 146);
        let wire = &input[13..];
        let mut http = http(8192, 1 << 20);
        let (whole, next) = feed(&mut http, &[wire], usize::MAX);
        assert_eq!(next, Next::Close);
        assert!(
            whole.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
            "{}",
            whole.escape_ascii()
        );
        for first in 0..=wire.len() {
            for second in first..=wire.len() {
                for room in [1, 64, usize::MAX] {
                    let (split, next) = feed(&mut http, &split(wire, &[first, second]), room);
                    assert_eq!(next, Next::Close, "cut at {first} and {second}");
                    assert_eq!(
                        unchunk(&split),
                        unchunk(&whole),
                        "cut at {first} and {second}, room {room}"
                    );
                }
            }
        }
    }

    /// A Content-Length body over several reads: nothing goes out until it is complete, its
    /// answer is reserved in the budget, then handed out in pieces no larger than the room, and
    /// the reservation comes back.
    #[test]
    fn an_answer_waits_for_its_body_then_goes_out_in_pieces() {
        let budget = Arc::new(HeldBudget::new(1 << 20));
        let mut http = Http::new(
            P,
            HttpLimits {
                held: budget.clone(),
                ..HttpLimits::new(8192, 1 << 20, Duration::from_secs(10))
            },
        );
        let body = vec![b'b'; 100_000];
        let head = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut session = HttpSession::default();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut read = |http: &mut Http, session: &mut HttpSession, input: &[u8], room| {
            let next = http.on_read(session, input, &mut Answers::new(&mut out, room, now));
            (next, std::mem::take(&mut out))
        };
        let (next, said) = read(
            &mut http,
            &mut session,
            &[head.as_bytes(), &body[..10]].concat(),
            4096,
        );
        assert_eq!((next, said.len()), (Next::Continue, 0));
        assert!(budget.left() < (1 << 20) - 100_000, "reserved at the head");
        assert_eq!(http.deadline(&session), Some(now + Duration::from_secs(60)));
        let (next, said) = read(&mut http, &mut session, &body[10..50_000], 4096);
        assert_eq!((next, said.len()), (Next::Continue, 0));
        let get = b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
        let (mut next, mut answered) = read(
            &mut http,
            &mut session,
            &[&body[50_000..], &get[..]].concat(),
            4096,
        );
        assert_eq!(next, Next::Pause);
        assert_eq!(answered.len(), 4096);
        while next == Next::Pause {
            let mut piece = Vec::new();
            next = http.on_writable(&mut session, &mut Answers::new(&mut piece, 4096, now));
            assert!(piece.len() <= 4096 + 512, "{} bytes at once", piece.len());
            answered.extend_from_slice(&piece);
        }
        assert_eq!(next, Next::Continue);
        assert_eq!(mask_dates(&answered), [ok(&body), ok(b"after")].concat());
        assert_eq!(budget.left(), 1 << 20, "the reservation came back");
        assert!(http.at_boundary(&session));
        assert_eq!(http.deadline(&session), None);
    }

    /// `100 Continue` goes out alone when the head came without its body, and the answer only
    /// once the body is in.
    #[test]
    fn continue_goes_out_alone_and_the_answer_after_the_body() {
        let mut http = http(8192, 1 << 20);
        let (out, next) = feed(
            &mut http,
            &[b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"],
            usize::MAX,
        );
        assert_eq!((out.as_slice(), next), (CONTINUE, Next::Continue));
        for cut in 0..5 {
            let (out, _) = feed(
                &mut http,
                &[
                    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                    &b"hello"[..cut],
                    &b"hello"[cut..],
                ],
                usize::MAX,
            );
            assert_eq!(out, [CONTINUE, &ok(b"hello")].concat(), "cut at {cut}");
        }
    }

    /// An incomplete body gets no 200: Content-Length 10 with 5 sent, or chunks without the
    /// last one, answer nothing, and their `--body-timeout` answers 408, counted an error.
    #[test]
    fn an_incomplete_body_gets_408_at_its_body_timeout() {
        for wire in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ] {
            let mut http = http(8192, 1 << 20);
            let mut session = HttpSession::default();
            let mut out = Vec::new();
            let now = Instant::now();
            let next = http.on_read(
                &mut session,
                wire,
                &mut Answers::new(&mut out, usize::MAX, now),
            );
            assert_eq!((next, out.len()), (Next::Continue, 0));
            assert_eq!(http.deadline(&session), Some(now + Duration::from_secs(60)));
            let next = http.on_deadline(
                &mut session,
                &mut Answers::new(&mut out, usize::MAX, now),
                None,
            );
            assert_eq!(next, Next::Close);
            assert!(
                out.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"),
                "{}",
                out.escape_ascii()
            );
            assert_eq!(http.close_reason(&session), CloseReason::HttpError);
            assert_eq!(http.counts().responses(200), 0);
        }
    }

    /// A staged answer keeps its echo under `--max-held`, and what it reserved comes back however
    /// it ends: answered in full, or with its connection closed while it waits for its delay.
    #[test]
    fn a_staged_answer_gives_back_what_it_kept() {
        let full = 1 << 20;
        let budget = Arc::new(HeldBudget::new(full));
        let mut http = Http::new(
            P,
            HttpLimits {
                held: budget.clone(),
                ..HttpLimits::new(8192, 1 << 20, Duration::from_secs(10))
            },
        );
        let (out, _) = feed(
            &mut http,
            &[b"GET /abcd?status=201 HTTP/1.1\r\nHost: a\r\n\r\n"],
            usize::MAX,
        );
        assert!(
            out.starts_with(b"HTTP/1.1 201 Created\r\n") && out.ends_with(b"abcd"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(budget.left(), full, "answered in full");

        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let next = http.on_read(
            &mut session,
            b"GET /abcd?delay=10s HTTP/1.1\r\nHost: a\r\n\r\n",
            &mut Answers::new(&mut out, usize::MAX, Instant::now()),
        );
        assert_eq!((next, out.len()), (Next::Wait, 0));
        assert!(
            budget.left() < full,
            "the echo is kept while the answer waits"
        );
        drop(session);
        assert_eq!(budget.left(), full, "closed while it waited");
    }

    /// A Content-Length request whose answer does not fit in what is left of the budget gets
    /// 503 with Retry-After at its head; a chunked body that outgrows it mid-body too, and
    /// what it had reserved comes back.
    #[test]
    fn past_the_budget_a_request_gets_503() {
        let budget = Arc::new(HeldBudget::new(2048));
        let mut http = Http::new(
            P,
            HttpLimits {
                held: budget.clone(),
                ..HttpLimits::new(8192, 1 << 20, Duration::from_secs(10))
            },
        );
        let (out, next) = feed(
            &mut http,
            &[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\nabc"],
            usize::MAX,
        );
        assert_eq!(next, Next::Close);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
        // A small body spanning reads fits.
        let (out, _) = feed(
            &mut http,
            &[
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab",
                b"cd",
            ],
            usize::MAX,
        );
        assert_eq!(out, ok(b"abcd"));
        let chunk = [b"400\r\n".as_slice(), &[b'x'; 1024], b"\r\n"].concat();
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (out, next) = feed(&mut http, &[head, &chunk, &chunk, &chunk], usize::MAX);
        assert_eq!(next, Next::Close);
        assert!(
            out.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"),
            "{}",
            out.escape_ascii()
        );
        assert_eq!(budget.left(), 2048);
        assert_eq!(http.counts().responses(200), 1);
    }

    /// A held chunked echo is the same answer, framed as one chunk.
    #[test]
    fn a_held_chunked_echo_is_one_chunk() {
        let mut http = http(8192, 1 << 20);
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let expected = format!(
            "HTTP/1.1 200 OK\r\nServer: saythat/{}\r\nDate: D\r\nContent-Type: text/plain; \
             charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nYou say that \r\n\
             5\r\nabcde\r\n0\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let first = [&head[..], b"3\r\nabc\r\n1\r\nd\r\n"].concat();
        for pieces in [
            &[&head[..], b"3\r\nabc\r\n", b"2\r\nde\r\n0\r\n\r\n"][..],
            &[&first, b"1\r\ne\r\n0\r\n\r\n"],
            &[&first, b"1\r\ne\r\n0\r\n", b"\r\n"],
        ] {
            let (out, _) = feed(&mut http, pieces, usize::MAX);
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
    }

    /// The header timeout runs from accept: a connection that says nothing gets 408 then.
    #[test]
    fn the_header_timeout_runs_from_accept() {
        let mut http = http(8192, 1 << 20);
        let mut session = HttpSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        http.on_open(&mut session, &mut Answers::new(&mut out, usize::MAX, now));
        assert_eq!(http.deadline(&session), Some(now + Duration::from_secs(10)));
        let next = http.on_deadline(
            &mut session,
            &mut Answers::new(&mut out, usize::MAX, now),
            None,
        );
        assert_eq!(next, Next::Close);
        assert!(out.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
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
        let next = http.on_deadline(
            &mut session,
            &mut Answers::new(&mut out, usize::MAX, now),
            None,
        );
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
