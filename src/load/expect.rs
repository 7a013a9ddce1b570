//! What `--query` asks of every HTTP answer, read once at startup with the server's own control
//! parser: which final statuses are right, which body lengths, whether the body is the
//! request's JSON description, which faults (a close, a reset) are asked, and the longest an
//! answer may take (issue 17).
//!
//! It exists so the checker (`http.rs`) asks one question per answer, not the query. It is pure
//! and decides nothing about bytes; it must never accept a query the server would refuse, since
//! every request of the run would then be answered `400`.

use std::time::Duration;

use crate::config::{MAX_DELAY_LIMIT, MAX_SIZE_LIMIT};
use crate::framing::http::control::{ControlError, ControlLimits, Controls, Drip, ResetAt};

/// The limits a query is read under: the highest `--max-delay` and `--max-size` a server can be
/// given, so the load generator refuses only what no saythat would serve (a server with lower
/// bounds answers `400`, which is then a bad status naming them).
const LIMITS: ControlLimits = ControlLimits {
    max_delay: MAX_DELAY_LIMIT,
    max_size: MAX_SIZE_LIMIT,
};

/// The right answers to the run's requests: without `--query`, `200` and the echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect {
    /// Final statuses that are right answers, sorted (at most `MAX_CHOICES` and 200).
    statuses: Vec<u16>,
    /// Body lengths a `size` control asks for, sorted; empty without one.
    sizes: Vec<u64>,
    /// A draw may leave the body the echo (no `size`, or weights that leave a rest).
    echo: bool,
    /// `format=json`: the body is the request's description.
    json: bool,
    /// The echo's length: the prefix and the message.
    echo_len: u64,
    /// The longest description a request of the run can get (`json_max`).
    json_max: u64,
    /// `close`: an answer saying `Connection: close` is right, and the server closes after it.
    close: bool,
    /// `reset`: the server may reset the connection there instead of answering.
    reset: Option<ResetAt>,
    /// The longest `delay` a draw can give.
    max_delay: Duration,
    /// The `drip` asked: the body comes in pieces, one every `every`.
    drip: Option<Drip>,
}

/// Why a query's answers cannot be checked, though the server would take it.
pub(crate) const JSON_AND_SIZE: &str = "with both `format=json` and `size` the JSON description \
     is cut or padded to the size, so it cannot be parsed: leave one of them out";

impl Expect {
    /// Reads the controls of `query` (the text after `?`), as the server will, for messages of
    /// `size` bytes answered with `prefix_len` bytes before them. The error is the server's own
    /// `400` line, or `JSON_AND_SIZE`.
    pub(crate) fn new(query: Option<&str>, prefix_len: usize, size: u32) -> Result<Expect, String> {
        let mut controls = Controls::default();
        if let Some(query) = query {
            controls
                .add_query(query.as_bytes(), &LIMITS)
                .map_err(|e: ControlError| e.to_string().trim_end().to_string())?;
        }
        let expect = Expect {
            statuses: controls.statuses(),
            sizes: controls.sizes(),
            echo: controls.size_rest(),
            json: controls.json(),
            echo_len: prefix_len as u64 + u64::from(size),
            json_max: json_max(size, query.map_or(0, str::len)),
            close: controls.may_close(),
            reset: controls.may_reset(),
            max_delay: controls.max_delay(),
            drip: controls.drip(),
        };
        if expect.json && !expect.sizes.is_empty() {
            return Err(JSON_AND_SIZE.to_string());
        }
        Ok(expect)
    }

    /// Whether a final answer with status `code` is right.
    pub(crate) fn allows(&self, code: u16) -> bool {
        self.statuses.binary_search(&code).is_ok()
    }

    /// Whether an answer with status `code` has no body: `1xx` (an asked one is final), `204`
    /// and `304` (RFC 9110 sections 15.2, 15.3.5, 15.4.5).
    pub(crate) fn bodiless(code: u16) -> bool {
        code < 200 || code == 204 || code == 304
    }

    /// The body is the request's JSON description.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// An answer saying `Connection: close` is right: the server closes after it.
    pub(crate) fn close(&self) -> bool {
        self.close
    }

    /// Where the server may reset the connection instead of answering, if `reset` asks it.
    pub(crate) fn reset(&self) -> Option<ResetAt> {
        self.reset
    }

    /// The longest an answer may take by what the query asks, before the loop and the network
    /// add theirs: the longest delay before the head, and with `drip` a piece of the longest
    /// body after each interval. Its parts: the delay, and the drips (their number and
    /// interval).
    pub(crate) fn longest_wait(&self) -> (Duration, Option<(u64, Duration)>) {
        let drips = self.drip.map(|d| {
            let pieces = self.max_len().div_ceil(u64::from(d.bytes.max(1)));
            (pieces, d.every)
        });
        (self.max_delay, drips)
    }

    /// Whether a body of `len` bytes is right: one of the sizes asked, or the echo's length
    /// when a draw may leave it; a description of at most `json_max` bytes.
    pub(crate) fn length_ok(&self, len: u64) -> bool {
        if self.json {
            return len <= self.json_max;
        }
        self.sizes.binary_search(&len).is_ok() || (self.echo && len == self.echo_len)
    }

    /// The longest right body, to bound a chunked one as it comes.
    pub(crate) fn max_len(&self) -> u64 {
        if self.json {
            return self.json_max;
        }
        let echo = if self.echo { self.echo_len } else { 0 };
        self.sizes.last().map_or(echo, |&max| max.max(echo))
    }

    /// The right lengths in words, for an error: `77 (prefix and message)`, `one of 64, 1024
    /// (asked by size)`, or both.
    pub(crate) fn lengths(&self) -> String {
        if self.json {
            return format!("a JSON description of at most {} bytes", self.json_max);
        }
        let echo = format!("{} (prefix and message)", self.echo_len);
        let sizes: Vec<String> = self.sizes.iter().map(u64::to_string).collect();
        let sizes = match sizes.len() {
            1 => format!("{} (asked by size)", sizes[0]),
            _ => format!("one of {} (asked by size)", sizes.join(", ")),
        };
        match (self.echo, self.sizes.is_empty()) {
            (true, true) => echo,
            (true, false) => format!("{echo} or {sizes}"),
            (false, _) => sizes,
        }
    }

    /// The right statuses in words, for an error: `` `200 OK` `` or `200, 429 or 503 (asked by
    /// --query)`.
    pub(crate) fn statuses(&self) -> String {
        if self.statuses == [200] {
            return "`200 OK`".to_string();
        }
        let codes: Vec<String> = self.statuses.iter().map(u16::to_string).collect();
        let listed = match codes.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => codes.concat(),
        };
        format!("{listed} (asked by --query)")
    }
}

/// Bytes a description holds besides the message and the query, generously: the Host header,
/// the addresses, the numbers, the instance's name (at most 255 bytes), the field names.
const JSON_SLACK: u64 = 4096;

/// The longest description of a request of `size` message bytes with `query`: the message is in
/// the target, the path and (POST) the body, letters and digits that need no escaping; the query
/// is in the target and again decoded into pairs, each at most twice as long escaped.
fn json_max(size: u32, query: usize) -> u64 {
    3 * u64::from(size) + 4 * query as u64 + JSON_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `query` asks of the answers to 64-byte messages after a 13-byte prefix.
    fn expect(query: &str) -> Expect {
        Expect::new(Some(query), 13, 64).expect("a query the server takes")
    }

    #[test]
    fn statuses_are_the_asked_ones_with_200_for_the_rest() {
        let none = Expect::new(None, 13, 64).expect("no query");
        assert!(none.allows(200) && !none.allows(503));
        assert_eq!(none.statuses(), "`200 OK`");

        let some = expect("delay=1ms&status=503:10,429:1.5");
        for (code, right) in [
            (200, true),
            (429, true),
            (503, true),
            (500, false),
            (204, false),
        ] {
            assert_eq!(some.allows(code), right, "{code}");
        }
        assert_eq!(some.statuses(), "200, 429 or 503 (asked by --query)");
        let all = expect("x-set-response-status-code=418");
        assert!(all.allows(418) && !all.allows(200));
        assert_eq!(all.statuses(), "418 (asked by --query)");
        // Weights of 100 % in all leave no 200.
        assert!(!expect("status=503:60,502:40").allows(200));
    }

    #[test]
    fn lengths_are_the_asked_sizes_and_the_echo_when_a_draw_may_leave_it() {
        let plain = Expect::new(None, 13, 64).expect("no query");
        assert!(plain.length_ok(77) && !plain.length_ok(76) && !plain.length_ok(78));
        assert_eq!(plain.max_len(), 77);
        assert_eq!(plain.lengths(), "77 (prefix and message)");

        let one = expect("size=1024");
        assert!(one.length_ok(1024) && !one.length_ok(77));
        assert_eq!(one.lengths(), "1024 (asked by size)");
        assert_eq!(one.max_len(), 1024);
        assert_eq!(expect("size=10").max_len(), 10);

        let some = expect("size=10:50,1024:10");
        for (len, right) in [(10, true), (1024, true), (77, true), (11, false)] {
            assert_eq!(some.length_ok(len), right, "{len}");
        }
        assert_eq!(
            some.lengths(),
            "77 (prefix and message) or one of 10, 1024 (asked by size)"
        );
        assert_eq!(some.max_len(), 1024);
        assert!(!expect("size=10:50,20:50").length_ok(77));

        let json = expect("format=json");
        let max = json_max(64, "format=json".len());
        assert!(json.json() && json.length_ok(max) && !json.length_ok(max + 1));
        assert_eq!(json.max_len(), max);
    }

    #[test]
    fn a_query_the_server_refuses_is_refused_with_its_line() {
        for (query, says) in [
            ("status=abc", "control status"),
            ("delay=5parsecs", "control delay"),
            ("status=503:60,429:60", "control status"),
            ("delay=2h", "control delay"),
            ("format=xml", "control format"),
        ] {
            let err = Expect::new(Some(query), 13, 64).expect_err(query);
            assert!(err.contains(says), "{query}: {err}");
            assert!(!err.ends_with('\n'), "{err:?}");
        }
        let err = Expect::new(Some("format=json&size=10"), 13, 64).expect_err("unparseable");
        assert_eq!(err, JSON_AND_SIZE);
        // Ordinary query text is no control.
        let plain = expect("a=1&statusx=3&x=status");
        assert_eq!(plain.statuses, [200]);
        assert!(plain.sizes.is_empty() && plain.echo && !plain.json);
    }

    #[test]
    fn faults_and_the_longest_wait_are_those_asked() {
        let none = Expect::new(None, 13, 64).expect("no query");
        assert!(!none.close() && none.reset().is_none());
        assert_eq!(none.longest_wait(), (Duration::ZERO, None));
        let some = expect("close=5&reset=1:body&delay=10ms:90,2s:10");
        assert!(some.close());
        assert_eq!(some.reset(), Some(ResetAt::MidBody));
        assert_eq!(some.longest_wait(), (Duration::from_secs(2), None));
        assert_eq!(expect("reset=3").reset(), Some(ResetAt::BeforeHead));
        // A share of 0 asks for nothing.
        let zero = expect("close=0&reset=0&delay=1s:0");
        assert!(!zero.close() && zero.reset().is_none());
        assert_eq!(zero.longest_wait(), (Duration::ZERO, None));
        // A drip of the longest body: 100 bytes in pieces of 30 is 4 drips; the echo is 77.
        let drip = expect("x-set-response-delay-ms=5&drip=30:1ms&size=100:50");
        let wait = (
            Duration::from_millis(5),
            Some((4, Duration::from_millis(1))),
        );
        assert_eq!(drip.longest_wait(), wait);
    }

    #[test]
    fn bodiless_statuses() {
        for code in [100, 103, 204, 304] {
            assert!(Expect::bodiless(code), "{code}");
        }
        for code in [200, 201, 205, 404, 503] {
            assert!(!Expect::bodiless(code), "{code}");
        }
    }
}
