//! The test-backend controls (issue 17): what a request may ask of its answer (a status, a
//! delay, a size, extra headers, a slow body, faults, a JSON description), read from its query
//! and its `X-Saythat-*` headers in fortio's syntax (`grammar`), and drawn once per request.
//!
//! Pure: it never touches a socket or the session. It must never panic on any input, never
//! accept a value past `--max-delay` or `--max-size` (a 400 that names the flag instead, never a
//! silent clip), and never let a header through that could break the answer's framing.

mod grammar;

use std::time::Duration;

pub(crate) use grammar::query_pairs;
use grammar::{
    parse_delay, parse_drip, parse_millis, parse_set_header, parse_size, parse_status, percent,
    trim, weighted, Control, WHOLE,
};
pub use grammar::{
    ControlError, ControlLimits, Drip, MAX_CHOICES, MAX_DRIP_BYTES, MAX_SET_HEADERS,
    MAX_SET_HEADER_NAME, MAX_SET_HEADER_VALUE,
};

/// Where a `reset` aborts the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetAt {
    /// Before the answer's head: the client sees a reset instead of an answer.
    BeforeHead,
    /// Halfway through the body: the client sees a head and a truncated body.
    MidBody,
}

/// One request's draw of its controls: what its answer is to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The answer's status (200 unless asked otherwise).
    pub status: u16,
    /// How long to wait before the answer's head.
    pub delay: Duration,
    /// The body's exact length (the echo, then filler), or `None` for the echo as it is.
    pub size: Option<u64>,
    /// Extra response headers, in the order asked, already validated.
    pub headers: Vec<(String, String)>,
    /// Send the body in pieces, chunked.
    pub drip: Option<Drip>,
    /// Answer with `Connection: close` and close after it.
    pub close: bool,
    /// Abort with a TCP reset there instead of answering.
    pub reset: Option<ResetAt>,
    /// The body is the request's JSON description instead of the echo.
    pub json: bool,
}

/// What a request asks of its answer: every control it carries, parsed and bounded, before the
/// draw. `Default` is no control at all and allocates nothing.
///
/// The same control given twice keeps the later value, except that a value from a header wins
/// over one from the query whatever their order (as mendhak's echo server does): a client that
/// cannot change a URL can still override it. `header` controls add up from both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controls {
    status: Vec<(u16, u32)>,
    delay: Vec<(Duration, u32)>,
    size: Vec<(u64, u32)>,
    headers: Vec<(String, String)>,
    drip: Option<Drip>,
    /// The share of answers that close, in millionths.
    close: Option<u32>,
    /// The share of answers reset, in millionths, and where.
    reset: Option<(u32, ResetAt)>,
    json: bool,
    /// The single controls set from a header, which a query value does not replace: one bit per
    /// `Control` (its discriminant).
    from_header: u16,
}

/// Where a value came from, for which wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Query,
    Header,
}

impl Controls {
    /// Adds every control of a query (the raw text after `?`, percent-encoded, `+` a space, as
    /// HTML forms and Go's `ParseQuery` read it), in order. Parameters that name no control are
    /// ordinary query text and ignored.
    pub fn add_query(&mut self, query: &[u8], limits: &ControlLimits) -> Result<(), ControlError> {
        for (key, value) in query_pairs(query) {
            if let Some(control) = Control::from_query_key(&key) {
                self.add(control, &value, Source::Query, limits)?;
            }
        }
        Ok(())
    }

    /// Adds one request header if it is a control: `Ok(true)` if it was (`X-Saythat-<Name>` in
    /// any case, or an alias: `x-set-response-status-code`, `x-set-response-delay-ms`,
    /// `X-Echo-Set-Header: K:V,K2:V2`), `Ok(false)` for any other header.
    pub fn add_header(
        &mut self,
        name: &[u8],
        value: &[u8],
        limits: &ControlLimits,
    ) -> Result<bool, ControlError> {
        match Control::from_header_name(name) {
            Some(control) => self
                .add(control, value, Source::Header, limits)
                .map(|()| true),
            None => Ok(false),
        }
    }

    /// Whether no control was given (then `--http-defaults` applies, if any).
    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
            && self.delay.is_empty()
            && self.size.is_empty()
            && self.headers.is_empty()
            && self.drip.is_none()
            && self.close.is_none()
            && self.reset.is_none()
            && !self.json
    }

    /// One request's draw of the weighted choices. Choices of 100 % use no randomness.
    pub fn draw(&self, rng: &mut fastrand::Rng) -> Plan {
        Plan {
            status: pick(&self.status, rng).unwrap_or(200),
            delay: pick(&self.delay, rng).unwrap_or(Duration::ZERO),
            size: pick(&self.size, rng),
            headers: self.headers.clone(),
            drip: self.drip,
            close: self.close.is_some_and(|share| chance(share, rng)),
            reset: self
                .reset
                .and_then(|(share, at)| chance(share, rng).then_some(at)),
            json: self.json,
        }
    }

    /// Every status a draw can give, sorted: 200 among them when the weights leave a rest.
    pub fn statuses(&self) -> Vec<u16> {
        let mut statuses = possible(&self.status);
        if leaves_rest(&self.status) {
            statuses.push(200);
        }
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }

    /// Every size a draw can ask for, sorted; when [`Controls::size_rest`], the echo's own
    /// length too.
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes = possible(&self.size);
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Whether a draw may leave the body the echo (no `size`, or weights that leave a rest).
    pub fn size_rest(&self) -> bool {
        leaves_rest(&self.size)
    }

    /// Whether the body is the request's JSON description.
    pub fn json(&self) -> bool {
        self.json
    }

    /// The longest delay a draw can give (zero without `delay`).
    pub fn max_delay(&self) -> Duration {
        possible(&self.delay).into_iter().max().unwrap_or_default()
    }

    /// The `drip` asked, if any.
    pub fn drip(&self) -> Option<Drip> {
        self.drip
    }

    /// Whether a draw can answer with `Connection: close` (a `close` share above 0).
    pub fn may_close(&self) -> bool {
        self.close.is_some_and(|share| share > 0)
    }

    /// Where a draw can reset the connection, if a `reset` share above 0 asks for it.
    pub fn may_reset(&self) -> Option<ResetAt> {
        self.reset.filter(|&(share, _)| share > 0).map(|(_, at)| at)
    }

    fn add(
        &mut self,
        control: Control,
        value: &[u8],
        source: Source,
        limits: &ControlLimits,
    ) -> Result<(), ControlError> {
        let value = trim(value);
        let text = std::str::from_utf8(value).map_err(|_| control.malformed(value))?;
        match control {
            Control::Header => return self.add_headers(control, [text]),
            Control::EchoSetHeader => {
                let fields = text.split(',').map(str::trim).filter(|kv| !kv.is_empty());
                return self.add_headers(control, fields);
            }
            _ => {}
        }
        // The bit of the field the value sets: an alias shares its control's.
        let field = match control {
            Control::StatusCode => Control::Status,
            Control::DelayMs => Control::Delay,
            other => other,
        };
        let keep = source == Source::Header || self.from_header & field.bit() == 0;
        match control {
            Control::Status | Control::StatusCode => {
                let status = weighted(control, text, |one| parse_status(control, one))?;
                if keep {
                    self.status = status;
                }
            }
            Control::Delay => {
                let delay = weighted(control, text, |one| parse_delay(control, one, limits))?;
                if keep {
                    self.delay = delay;
                }
            }
            Control::DelayMs => {
                let delay = parse_millis(control, text, limits)?;
                if keep {
                    self.delay = vec![(delay, WHOLE)];
                }
            }
            Control::Size => {
                let size = weighted(control, text, |one| parse_size(control, one, limits))?;
                if keep {
                    self.size = size;
                }
            }
            Control::Drip => {
                let drip = parse_drip(control, text, limits)?;
                if keep {
                    self.drip = Some(drip);
                }
            }
            Control::Close => {
                let share = percent(text).ok_or_else(|| control.malformed(value))?;
                if keep {
                    self.close = Some(share);
                }
            }
            Control::Reset => {
                let (share, at) = match text.split_once(':') {
                    None => (text, ResetAt::BeforeHead),
                    Some((share, "body")) => (share, ResetAt::MidBody),
                    Some(_) => return Err(control.malformed(value)),
                };
                let share = percent(share).ok_or_else(|| control.malformed(value))?;
                if keep {
                    self.reset = Some((share, at));
                }
            }
            Control::Format => {
                if text != "json" {
                    return Err(control.malformed(value));
                }
                self.json = true;
            }
            Control::Header | Control::EchoSetHeader => {}
        }
        if source == Source::Header {
            self.from_header |= field.bit();
        }
        Ok(())
    }

    /// Validates and adds `Name:Value` fields, within `MAX_SET_HEADERS` in all.
    fn add_headers<'a>(
        &mut self,
        control: Control,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ControlError> {
        for field in fields {
            let (name, value) = parse_set_header(control, field)?;
            if self.headers.len() == MAX_SET_HEADERS {
                return Err(control.error(format!(
                    "more than {MAX_SET_HEADERS} headers asked for; ask for at most \
                     {MAX_SET_HEADERS}"
                )));
            }
            self.headers.push((name.to_string(), value.to_string()));
        }
        Ok(())
    }
}

/// One draw among weighted choices; `None` for the rest (or no choice at all).
fn pick<T: Copy>(choices: &[(T, u32)], rng: &mut fastrand::Rng) -> Option<T> {
    match choices {
        [] => None,
        [(value, WHOLE)] => Some(*value),
        _ => {
            let mut ticket = rng.u32(0..WHOLE);
            for &(value, weight) in choices {
                if ticket < weight {
                    return Some(value);
                }
                ticket -= weight;
            }
            None
        }
    }
}

/// Whether a share (in millionths) of answers is hit this time.
fn chance(share: u32, rng: &mut fastrand::Rng) -> bool {
    match share {
        0 => false,
        WHOLE.. => true,
        _ => rng.u32(0..WHOLE) < share,
    }
}

/// The values a draw can give (weight above 0).
fn possible<T: Copy>(choices: &[(T, u32)]) -> Vec<T> {
    choices
        .iter()
        .filter(|(_, weight)| *weight > 0)
        .map(|&(value, _)| value)
        .collect()
}

/// Whether a draw can give none of the choices.
fn leaves_rest<T>(choices: &[(T, u32)]) -> bool {
    choices.iter().map(|(_, weight)| weight).sum::<u32>() < WHOLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> ControlLimits {
        ControlLimits::default()
    }

    fn query(text: &str) -> Result<Controls, ControlError> {
        let mut controls = Controls::default();
        controls.add_query(text.as_bytes(), &limits())?;
        Ok(controls)
    }

    fn refusal(text: &str) -> String {
        query(text).expect_err(text).to_string()
    }

    fn plan(text: &str) -> Plan {
        query(text)
            .expect(text)
            .draw(&mut fastrand::Rng::with_seed(7))
    }

    #[test]
    fn no_query_and_unknown_parameters_are_no_control() {
        for text in [
            "",
            "a=1&b=2",
            "&&",
            "status_x=1",
            "Status=503",
            "json",
            "=5",
        ] {
            let controls = query(text).expect(text);
            assert!(controls.is_empty(), "{text}");
            assert_eq!(controls, Controls::default(), "{text}");
        }
        let plan = Controls::default().draw(&mut fastrand::Rng::with_seed(1));
        assert_eq!(
            plan,
            Plan {
                status: 200,
                delay: Duration::ZERO,
                size: None,
                headers: vec![],
                drip: None,
                close: false,
                reset: None,
                json: false,
            }
        );
    }

    #[test]
    fn each_single_form_is_drawn_as_asked() {
        assert_eq!(plan("status=503").status, 503);
        assert_eq!(plan("delay=150ms").delay, Duration::from_millis(150));
        assert_eq!(plan("delay=2s").delay, Duration::from_secs(2));
        assert_eq!(plan("delay=10us").delay, Duration::from_micros(10));
        assert_eq!(plan("delay=1.5s").delay, Duration::from_millis(1500));
        assert_eq!(plan("size=1024").size, Some(1024));
        assert_eq!(plan("size=0").size, Some(0));
        assert_eq!(
            plan("drip=16:100ms").drip,
            Some(Drip {
                bytes: 16,
                every: Duration::from_millis(100)
            })
        );
        assert!(plan("close=100").close);
        assert!(!plan("close=0").close);
        assert_eq!(plan("reset=100").reset, Some(ResetAt::BeforeHead));
        assert_eq!(plan("reset=100:body").reset, Some(ResetAt::MidBody));
        assert_eq!(plan("reset=0:body").reset, None);
        assert!(plan("format=json").json);
        assert_eq!(
            plan("x-set-response-status-code=404&x-set-response-delay-ms=250"),
            Plan {
                status: 404,
                delay: Duration::from_millis(250),
                ..plan("")
            }
        );
        // Controls combine with each other and with ordinary parameters.
        let all = plan("q=x&status=418&delay=1ms&size=3&close=100&format=json&header=A:1");
        assert_eq!(
            (all.status, all.size, all.close, all.json),
            (418, Some(3), true, true)
        );
        assert_eq!(all.delay, Duration::from_millis(1));
        assert_eq!(all.headers, vec![("A".to_string(), "1".to_string())]);
    }

    #[test]
    fn values_are_form_decoded() {
        let headers = plan("header=X-A:hello+world%2C%20again&header=X-B%3Ab%26c").headers;
        assert_eq!(
            headers,
            vec![
                ("X-A".to_string(), "hello world, again".to_string()),
                ("X-B".to_string(), "b&c".to_string()),
            ]
        );
        assert_eq!(plan("%73tatus=%35%303").status, 503);
        let pairs: Vec<_> = query_pairs(b"a=1&&b&c=%zz&=d&e=a=b")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"".to_vec()),
            (b"c".to_vec(), b"%zz".to_vec()),
            (b"".to_vec(), b"d".to_vec()),
            (b"e".to_vec(), b"a=b".to_vec()),
        ];
        assert_eq!(pairs, expected);
    }

    #[test]
    fn headers_keep_commas_colons_and_order_and_add_up() {
        let headers = plan("header=A:1&header=B:x,y&header=C: http://x:80 &header=D:").headers;
        let expected = [("A", "1"), ("B", "x,y"), ("C", "http://x:80"), ("D", "")];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(headers, expected);

        let mut controls = query("header=A:1").unwrap();
        assert!(controls
            .add_header(b"X-Echo-Set-Header", b"K:V, K2: V2 ,", &limits())
            .unwrap());
        assert!(controls
            .add_header(b"x-saythat-header", b"Z: a,b", &limits())
            .unwrap());
        let names: Vec<_> = controls
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(names, ["A=1", "K=V", "K2=V2", "Z=a,b"]);
    }

    #[test]
    fn header_names_in_any_case_and_aliases_are_controls_others_are_not() {
        let mut controls = Controls::default();
        let l = limits();
        assert!(controls
            .add_header(b"X-SayThat-Status", b"503", &l)
            .unwrap());
        assert!(controls
            .add_header(b"x-SAYTHAT-delay", b" 2ms ", &l)
            .unwrap());
        assert!(controls
            .add_header(b"X-Saythat-Format", b"json", &l)
            .unwrap());
        for other in [
            &b"X-Saythat-"[..],
            b"X-Saythat-Nope",
            b"X-Forwarded-For",
            b"x-saythat",
            b"X-Set-Response-Status",
            b"Host",
        ] {
            assert!(
                !controls.add_header(other, b"junk", &l).unwrap(),
                "{other:?}"
            );
        }
        let drawn = controls.draw(&mut fastrand::Rng::with_seed(3));
        assert_eq!(
            (drawn.status, drawn.delay, drawn.json),
            (503, Duration::from_millis(2), true)
        );

        let mut mendhak = Controls::default();
        assert!(mendhak
            .add_header(b"X-Set-Response-Status-Code", b"401", &l)
            .unwrap());
        assert!(mendhak
            .add_header(b"x-set-response-delay-ms", b"1000", &l)
            .unwrap());
        let drawn = mendhak.draw(&mut fastrand::Rng::with_seed(3));
        assert_eq!((drawn.status, drawn.delay), (401, Duration::from_secs(1)));
    }

    #[test]
    fn later_values_replace_earlier_ones_and_a_header_wins_over_the_query() {
        assert_eq!(plan("status=500&status=502").status, 502);
        assert_eq!(
            plan("status=500&x-set-response-status-code=404").status,
            404
        );
        let l = limits();
        // The header first, then the query: the header still wins.
        let mut controls = Controls::default();
        controls
            .add_header(b"X-Saythat-Status", b"503", &l)
            .unwrap();
        controls.add_query(b"status=404&delay=1s", &l).unwrap();
        // The query first, then the header.
        let mut other = Controls::default();
        other.add_query(b"status=404&delay=1s", &l).unwrap();
        other.add_header(b"X-Saythat-Status", b"503", &l).unwrap();
        for controls in [controls, other] {
            let drawn = controls.draw(&mut fastrand::Rng::with_seed(3));
            assert_eq!((drawn.status, drawn.delay), (503, Duration::from_secs(1)));
        }
        // The alias sets the same control as its header.
        let mut alias = Controls::default();
        alias
            .add_header(b"x-set-response-delay-ms", b"5", &l)
            .unwrap();
        alias.add_query(b"delay=1s", &l).unwrap();
        assert_eq!(
            alias.draw(&mut fastrand::Rng::new()).delay,
            Duration::from_millis(5)
        );
        // A query value a header overrides is still checked.
        let mut checked = Controls::default();
        checked.add_header(b"X-Saythat-Status", b"503", &l).unwrap();
        assert!(checked.add_query(b"status=abc", &l).is_err());
    }

    #[test]
    fn weighted_choices_are_drawn_in_their_shares() {
        let controls =
            query("status=503:10,429:1.5&delay=1ms:50,10ms:45,1s:5&size=1024:10,64:90").unwrap();
        assert_eq!(controls.statuses(), [200, 429, 503]);
        assert_eq!(controls.sizes(), [64, 1024]);
        assert!(!controls.size_rest());
        let mut rng = fastrand::Rng::with_seed(17);
        let draws = 100_000;
        let mut count = std::collections::HashMap::new();
        for _ in 0..draws {
            let plan = controls.draw(&mut rng);
            *count.entry(("status", plan.status as u64)).or_insert(0) += 1;
            *count
                .entry(("delay", plan.delay.as_micros() as u64))
                .or_insert(0) += 1;
            *count.entry(("size", plan.size.unwrap())).or_insert(0) += 1;
        }
        let share = |key, value| f64::from(count[&(key, value)]) / f64::from(draws) * 100.0;
        for (key, value, expected) in [
            ("status", 503, 10.0),
            ("status", 429, 1.5),
            ("status", 200, 88.5),
            ("delay", 1_000, 50.0),
            ("delay", 10_000, 45.0),
            ("delay", 1_000_000, 5.0),
            ("size", 1024, 10.0),
            ("size", 64, 90.0),
        ] {
            let got = share(key, value);
            assert!(
                (got - expected).abs() < 0.6,
                "{key} {value}: {got}% for {expected}%"
            );
        }
        assert_eq!(count.keys().filter(|(key, _)| *key == "status").count(), 3);
    }

    #[test]
    fn what_a_draw_can_give_is_listed() {
        assert_eq!(Controls::default().statuses(), [200]);
        assert!(Controls::default().sizes().is_empty());
        assert!(Controls::default().size_rest());
        assert_eq!(query("status=503").unwrap().statuses(), [503]);
        assert_eq!(query("status=503:100").unwrap().statuses(), [503]);
        assert_eq!(query("status=503:0,404:100").unwrap().statuses(), [404]);
        assert_eq!(query("status=503:60,503:40").unwrap().statuses(), [503]);
        let sizes = query("size=5:50").unwrap();
        assert_eq!((sizes.sizes(), sizes.size_rest()), (vec![5], true));
        assert!(query("format=json").unwrap().json());
        assert!(!query("status=200").unwrap().json());
        // Exactly 100 % in all, from parts that do not add up exactly in binary.
        assert_eq!(
            query("status=500:33.3,501:33.3,502:33.4")
                .unwrap()
                .statuses(),
            [500, 501, 502]
        );
    }

    #[test]
    fn malformed_values_are_refused_naming_the_control_and_the_form() {
        let cases = [
            (
                "delay=5parsecs",
                "control delay: \"5parsecs\" is not a duration; use 150ms, 2s, 10us or weighted \
                 1ms:50,10ms:45 (percent)\n",
            ),
            (
                "status=abc",
                "control status: \"abc\" is not a status; use 503 (100 to 599), or weighted \
                 503:10,429:1.5 (percent; the rest 200)\n",
            ),
            (
                "status=600",
                "control status: \"600\" is not a status; use 503 (100 to 599), or weighted \
                 503:10,429:1.5 (percent; the rest 200)\n",
            ),
            (
                "status=0503",
                "control status: \"0503\" is not a status; use 503 (100 to 599), or weighted \
                 503:10,429:1.5 (percent; the rest 200)\n",
            ),
            (
                "status=503:x",
                "control status: \"503:x\" is not a status; use 503 (100 to 599), or weighted \
                 503:10,429:1.5 (percent; the rest 200)\n",
            ),
            (
                "status=503:10,429",
                "control status: \"503:10,429\" is not a status; use 503 (100 to 599), or \
                 weighted 503:10,429:1.5 (percent; the rest 200)\n",
            ),
            (
                "status=",
                "control status: \"\" is not a status; use 503 (100 to 599), or weighted \
                 503:10,429:1.5 (percent; the rest 200)\n",
            ),
            (
                "size=-1",
                "control size: \"-1\" is not a size; use 1024 (bytes), or weighted \
                 1024:10,64:90 (percent; the rest echo)\n",
            ),
            (
                "size=1k",
                "control size: \"1k\" is not a size; use 1024 (bytes), or weighted \
                 1024:10,64:90 (percent; the rest echo)\n",
            ),
            (
                "header=NoColon",
                "control header: \"NoColon\" is not a header; use Name:Value, a token of at \
                 most 128 bytes and a value of at most 1024 without control characters\n",
            ),
            (
                "header=Bad Name:1",
                "control header: \"Bad Name:1\" is not a header; use Name:Value, a token of at \
                 most 128 bytes and a value of at most 1024 without control characters\n",
            ),
            (
                "header=X:a%0D%0ASet-Cookie:b",
                "control header: \"X:a\\r\\nSet-Cookie:b\" is not a header; use Name:Value, a \
                 token of at most 128 bytes and a value of at most 1024 without control \
                 characters\n",
            ),
            (
                "header=X:a%00",
                "control header: \"X:a\\0\" is not a header; use Name:Value, a token of at most \
                 128 bytes and a value of at most 1024 without control characters\n",
            ),
            (
                "header=X:%FF",
                "control header: \"X:\u{FFFD}\" is not a header; use Name:Value, a token of at \
                 most 128 bytes and a value of at most 1024 without control characters\n",
            ),
            (
                "drip=16",
                "control drip: \"16\" is not a drip; use BYTES:INTERVAL, e.g. 16:100ms (1 to \
                 16384 bytes)\n",
            ),
            (
                "drip=0:1ms",
                "control drip: \"0:1ms\" is not a drip; use BYTES:INTERVAL, e.g. 16:100ms (1 to \
                 16384 bytes)\n",
            ),
            (
                "drip=16385:1ms",
                "control drip: \"16385:1ms\" is not a drip; use BYTES:INTERVAL, e.g. 16:100ms (1 \
                 to 16384 bytes)\n",
            ),
            (
                "close=101",
                "control close: \"101\" is not a percent; use a percent from 0 to 100, e.g. 5\n",
            ),
            (
                "close=yes",
                "control close: \"yes\" is not a percent; use a percent from 0 to 100, e.g. 5\n",
            ),
            (
                "reset=5:head",
                "control reset: \"5:head\" is not a percent; use a percent from 0 to 100, then \
                 :body to reset mid-body, e.g. 5 or 5:body\n",
            ),
            (
                "format=xml",
                "control format: \"xml\" is not a format; use json\n",
            ),
            (
                "x-set-response-delay-ms=1s",
                "control x-set-response-delay-ms: \"1s\" is not a duration; use a number of \
                 milliseconds, e.g. 150\n",
            ),
            (
                "x-set-response-status-code=99",
                "control x-set-response-status-code: \"99\" is not a status; use 503 (100 to \
                 599), or weighted 503:10,429:1.5 (percent; the rest 200)\n",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(refusal(text), expected, "{text}");
        }
        let echo = Controls::default()
            .add_header(b"X-Echo-Set-Header", b"A:1,B", &limits())
            .unwrap_err();
        assert_eq!(
            echo.to_string(),
            "control x-echo-set-header: \"B\" is not a header; use Name:Value,Name2:Value2, \
             tokens of at most 128 bytes and values of at most 1024 without control characters \
             or commas\n"
        );
        assert_eq!(echo.control(), "x-echo-set-header");
    }

    #[test]
    fn values_past_a_bound_name_the_flag() {
        let cases = [
            (
                "delay=20s",
                "control delay: 20s is past --max-delay 10s; raise --max-delay or ask for less\n",
            ),
            (
                "delay=1ms:50,10001ms:1",
                "control delay: 10001ms is past --max-delay 10s; raise --max-delay or ask for \
                 less\n",
            ),
            (
                "x-set-response-delay-ms=10001",
                "control x-set-response-delay-ms: 10001ms is past --max-delay 10s; raise \
                 --max-delay or ask for less\n",
            ),
            (
                "drip=1:11s",
                "control drip: 11s is past --max-delay 10s; raise --max-delay or ask for less\n",
            ),
            (
                "size=1048577",
                "control size: 1048577 is past --max-size 1048576; raise --max-size or ask for \
                 less\n",
            ),
            (
                "status=503:80,429:70",
                "control status: \"503:80,429:70\" weighs 150% in all, past 100%; weights are \
                 percents of the answers, and the rest are answered 200\n",
            ),
            (
                "delay=1ms:50.5,2ms:49.6",
                "control delay: \"1ms:50.5,2ms:49.6\" weighs 100.1% in all, past 100%; weights \
                 are percents of the answers, and the rest are not delayed\n",
            ),
            (
                "size=1:100,2:0.0001",
                "control size: \"1:100,2:0.0001\" weighs 100.0001% in all, past 100%; weights \
                 are percents of the answers, and the rest echo\n",
            ),
            (
                "status=200:1,201:1,202:1,203:1,204:1,205:1,206:1,207:1,208:1,226:1,300:1,301:1,\
                 302:1,303:1,304:1,305:1,307:1",
                "control status: \"200:1,201:1,202:1,203:1,204:1,205:1,206:1,207:1,208:1,226:1,\
                 300:\"… has more than 16 choices; ask for at most 16\n",
            ),
            (
                "header=Content-Length:5",
                "control header: \"Content-Length\" frames the answer and is the server's to \
                 set; use size, drip or close instead\n",
            ),
            (
                "header=connection:close",
                "control header: \"connection\" frames the answer and is the server's to set; \
                 use size, drip or close instead\n",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(refusal(text), expected, "{text}");
        }
        let many = "header=A:1&".repeat(MAX_SET_HEADERS);
        assert_eq!(query(&many).unwrap().headers.len(), MAX_SET_HEADERS);
        assert_eq!(
            refusal(&format!("{many}header=B:2")),
            "control header: more than 32 headers asked for; ask for at most 32\n"
        );
        let long = format!("header={}:1", "N".repeat(MAX_SET_HEADER_NAME + 1));
        assert!(
            refusal(&long).starts_with("control header: \"NNN"),
            "{long}"
        );
        let long = format!("header=N:{}", "v".repeat(MAX_SET_HEADER_VALUE + 1));
        assert!(refusal(&long).ends_with("without control characters\n"));
        let wider = ControlLimits {
            max_delay: Duration::from_secs(60),
            max_size: 2 << 20,
        };
        let mut controls = Controls::default();
        controls
            .add_query(b"delay=20s&size=2097152&drip=1:1m", &wider)
            .unwrap();
        assert_eq!(controls.draw(&mut fastrand::Rng::new()).size, Some(2 << 20));
    }

    /// What every accepted control must satisfy, whatever the input.
    fn assert_within(controls: &Controls, limits: &ControlLimits) {
        fn total<T>(choices: &[(T, u32)]) -> u32 {
            choices.iter().map(|(_, w)| w).sum()
        }
        assert!(total(&controls.status) <= WHOLE);
        assert!(total(&controls.delay) <= WHOLE);
        assert!(total(&controls.size) <= WHOLE);
        for choices in [
            controls.status.len(),
            controls.delay.len(),
            controls.size.len(),
        ] {
            assert!(choices <= MAX_CHOICES);
        }
        assert!(controls.status.iter().all(|(s, _)| (100..=599).contains(s)));
        assert!(controls.delay.iter().all(|(d, _)| *d <= limits.max_delay));
        assert!(controls.size.iter().all(|(s, _)| *s <= limits.max_size));
        assert!(controls.headers.len() <= MAX_SET_HEADERS);
        for (name, value) in &controls.headers {
            assert!(!name.is_empty() && name.len() <= MAX_SET_HEADER_NAME);
            assert!(name.bytes().all(grammar::is_tchar));
            assert!(value.len() <= MAX_SET_HEADER_VALUE);
            assert!(!value.bytes().any(|b| b < b' ' && b != b'\t' || b == 0x7f));
            assert!(!value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']));
        }
        if let Some(drip) = controls.drip {
            assert!((1..=MAX_DRIP_BYTES).contains(&drip.bytes));
            assert!(drip.every <= limits.max_delay);
        }
        assert!(controls.close.is_none_or(|c| c <= WHOLE));
        assert!(controls.reset.is_none_or(|(r, _)| r <= WHOLE));
        let plan = controls.draw(&mut fastrand::Rng::with_seed(5));
        assert!((100..=599).contains(&plan.status));
        assert!(plan.delay <= limits.max_delay);
        assert!(plan.size.is_none_or(|s| s <= limits.max_size));
        assert!(controls.statuses().contains(&plan.status));
    }

    /// Query text made of controls and near-misses, so the parsers are reached, not only the
    /// key lookup.
    fn control_query() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("status"),
            Just("delay"),
            Just("size"),
            Just("header"),
            Just("drip"),
            Just("close"),
            Just("reset"),
            Just("format"),
            Just("x-set-response-status-code"),
            Just("x-set-response-delay-ms"),
            Just("other"),
        ];
        // Numbers, durations and percents near the bounds, alone or weighted, often accepted;
        // and anything of the grammar's alphabet, mostly refused.
        let number = prop_oneof![0u64..1000, 1_000_000u64..5_000_000].prop_map(|n| n.to_string());
        let unit = prop_oneof![Just(""), Just("ms"), Just("s"), Just("us"), Just("m")];
        let one = prop_oneof![
            number.clone(),
            (number.clone(), unit).prop_map(|(n, u)| format!("{n}{u}")),
            "[A-Za-z-]{1,8}:([ -~]|%0[0-9A-F]|%7F|%C3%A9){0,12}",
            (0u8..110, 0u8..10).prop_map(|(whole, tenth)| format!("{whole}.{tenth}")),
        ];
        let value = prop_oneof![
            one.clone(),
            prop::collection::vec((one, 0u8..60), 1..5).prop_map(|choices| {
                let choices: Vec<_> = choices.iter().map(|(v, w)| format!("{v}:{w}")).collect();
                choices.join(",")
            }),
            "[0-9a-zA-Z:,.%+ _-]{0,24}".prop_map(|v| v.to_string()),
        ];
        prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    proptest! {
        #[test]
        fn arbitrary_queries_never_panic_and_what_is_accepted_is_in_bounds(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            text in control_query(),
            max_delay_ms in 0u64..20_000,
            max_size in 0u64..4_000_000,
        ) {
            let limits = ControlLimits { max_delay: Duration::from_millis(max_delay_ms), max_size };
            // The whole query, and each of its parameters alone (most queries hold a refused
            // one, which would hide what the others were accepted as).
            let alone = text.split('&').map(str::as_bytes);
            for input in [&bytes[..], text.as_bytes()].into_iter().chain(alone) {
                let mut controls = Controls::default();
                match controls.add_query(input, &limits) {
                    Ok(()) => assert_within(&controls, &limits),
                    Err(e) => {
                        let body = e.to_string();
                        prop_assert!(body.ends_with('\n'));
                        prop_assert_eq!(body.matches('\n').count(), 1);
                        prop_assert!(body.starts_with("control "));
                        prop_assert!(body.len() < 512, "{}", body);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_headers_never_panic_and_what_is_accepted_is_in_bounds(
            name in prop_oneof![
                Just(b"X-Saythat-Status".to_vec()), Just(b"x-saythat-delay".to_vec()),
                Just(b"X-SAYTHAT-SIZE".to_vec()), Just(b"X-Saythat-Header".to_vec()),
                Just(b"X-Saythat-Drip".to_vec()), Just(b"X-Saythat-Close".to_vec()),
                Just(b"X-Saythat-Reset".to_vec()), Just(b"X-Saythat-Format".to_vec()),
                Just(b"X-Echo-Set-Header".to_vec()), Just(b"x-set-response-delay-ms".to_vec()),
                Just(b"x-set-response-status-code".to_vec()),
                prop::collection::vec(any::<u8>(), 0..32),
            ],
            value in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                "[0-9a-zA-Z:,. \t-]{0,24}".prop_map(String::into_bytes),
            ],
        ) {
            let limits = ControlLimits::default();
            let mut controls = Controls::default();
            match controls.add_header(&name, &value, &limits) {
                Ok(true) => assert_within(&controls, &limits),
                Ok(false) => prop_assert!(controls.is_empty()),
                Err(e) => prop_assert!(e.to_string().ends_with('\n')),
            }
        }
    }
}
