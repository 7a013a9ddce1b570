//! Which requests have test-backend controls (issue 17), and what they ask: the cheap look a
//! request without any pays (a query, an `x-` field name, `--http-defaults`), then, off the
//! common path, the controls read from the query and the fields and drawn into a [`Plan`] for
//! a staged answer. It must never cost a request without controls more than that look, nor let a
//! refused control be anything but a `400` with its line.

use super::body::Body;
use super::control::{ControlError, Controls, Plan};
use super::request::{self, Refusal};
use super::response::{Answer, Heads, Reply};
use super::setup::{Backend, HttpLimits};
use super::staged::{Lent, Request, Staged, Step};
use super::{HttpSession, Route};
use crate::framing::{Answers, Http, Next};

/// Which requests have controls, how they are drawn, and what their staged answers need: a
/// loop's.
#[derive(Debug)]
pub(super) struct Controller {
    pub backend: Backend,
    /// Requests that may carry controls (a query, an `x-` field) are looked at: not with
    /// `--no-controls`.
    some: bool,
    /// Every request is, for `--http-defaults`.
    all: bool,
    /// Draws the weighted choices.
    rng: fastrand::Rng,
    /// The echo's prefix, and HTTP mode's limits (`--max-body`, `--body-timeout`, the
    /// `--max-held` budget).
    prefix: Box<[u8]>,
    limits: HttpLimits,
}

impl Clone for Controller {
    /// A clone draws its own sequence.
    fn clone(&self) -> Self {
        Controller::new(self.backend.clone(), &self.prefix, &self.limits)
    }
}

impl Controller {
    pub fn new(backend: Backend, prefix: &[u8], limits: &HttpLimits) -> Controller {
        Controller {
            some: backend.enabled,
            all: backend.enabled && backend.defaults.is_some(),
            backend,
            rng: fastrand::Rng::new(),
            prefix: prefix.into(),
            limits: limits.clone(),
        }
    }

    /// Whether the request of `head` may have controls: what a request without any pays.
    #[inline(always)]
    pub fn wanted(&self, head: &request::Head<'_>) -> bool {
        // Without short cuts: a branch less on the message path.
        self.all | (self.some & head.controls)
    }

    /// What a staged answer needs for a call: the heads to write (and count) with, and whether
    /// the server drains.
    pub fn lend<'a>(&'a self, heads: &'a mut Heads, draining: bool) -> Lent<'a> {
        Lent {
            heads,
            backend: &self.backend,
            max_body: self.limits.max_body,
            body_timeout: self.limits.body_timeout,
            draining,
        }
    }

    /// The staged answer of the request at the start of `input`, the `number`th on its
    /// connection, if it has controls after all (or defaults apply), in place of the `answer`
    /// written for it from `mark` on in `answers` (withdrawn, uncounted); `Err` when the
    /// `--max-held` budget has no room for its echo. A refused control is a staged `400`.
    #[cold]
    #[inline(never)]
    pub fn stage(
        &mut self,
        input: &[u8],
        number: u32,
        heads: &mut Heads,
        answer: &mut Answer,
        mark: usize,
        answers: &mut Answers<'_>,
    ) -> Option<Result<Box<Staged>, Refusal>> {
        // Read again (it was accepted a moment ago), so the common path keeps no head around.
        let (max_header, max_body) = (self.limits.max_header, self.limits.max_body);
        let head = request::parse(input, max_header, max_body).ok().flatten()?;
        let request = Request::of(&head, input, answer.connection, answers.now());
        let plan = plan_for(&self.backend, request.head, &mut self.rng)?;
        heads.withdraw(answer);
        answers.truncate(mark);
        answer.reply = if request.head_only {
            Reply::HeadOnly
        } else {
            Reply::Echo
        };
        Some(Staged::new(
            &request,
            &self.prefix,
            plan,
            number,
            &self.limits.held,
        ))
    }
}

impl<R: Route> Http<R> {
    /// Moves the staged answer of the request in progress on with `input` (out of line: a
    /// request without controls never comes here).
    #[cold]
    #[inline(never)]
    pub(super) fn step_staged(
        &mut self,
        session: &mut HttpSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Step {
        let Body::Staged(staged) = &mut session.body else {
            return Step::Hold(0, Next::Continue);
        };
        let lent = &mut self.controls.lend(&mut self.heads, self.draining);
        staged.get_mut().step(input, answers, lent)
    }
}

/// The controls of the request whose head is `head` (all of it: request line and fields), or
/// `None` when it carries none and no defaults apply: then it is answered as any other.
fn plan_for(
    backend: &Backend,
    head: &[u8],
    rng: &mut fastrand::Rng,
) -> Option<Result<Plan, ControlError>> {
    let mut controls = Controls::default();
    let limits = &backend.limits;
    if let Some(query) = query(head) {
        if let Err(e) = controls.add_query(query, limits) {
            return Some(Err(e));
        }
    }
    for (name, value) in fields(head).iter().flatten() {
        if name.first().is_some_and(|b| b | 0x20 == b'x') {
            if let Err(e) = controls.add_header(name, value, limits) {
                return Some(Err(e));
            }
        }
    }
    match &backend.defaults {
        _ if !controls.is_empty() => Some(Ok(controls.draw(rng))),
        Some(defaults) => Some(Ok(defaults.draw(rng))),
        None => None,
    }
}

/// The query of the target of the request line at the start of `head` (an accepted one: the
/// target is its second word), after the first `?`, as sent.
fn query(head: &[u8]) -> Option<&[u8]> {
    let line = &head[..memchr::memchr(b'\n', head).unwrap_or(head.len())];
    let target = line.split(|&b| b == b' ').nth(1)?;
    let at = memchr::memchr(b'?', target)?;
    Some(&target[at + 1..])
}

/// The header fields of a complete, accepted head, as httparse reads them past the request
/// line (whatever its version); `None` if they do not parse again.
pub(super) fn fields(head: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let start = memchr::memchr(b'\n', head)? + 1;
    let mut fields = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
    match httparse::parse_headers(&head[start..], &mut fields) {
        Ok(httparse::Status::Complete((_, read))) => {
            Some(read.iter().map(|f| (f.name.as_bytes(), f.value)).collect())
        }
        _ => None,
    }
}
