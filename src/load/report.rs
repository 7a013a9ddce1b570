//! The figures of a load run: counted per thread, merged, then shown as text or JSON.
//!
//! The report is the tool's only output, so it names its units and says what each count means;
//! it must never present a figure from unverified answers or from outside the measured window.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::error::LoadError;
use super::fault::Statuses;

/// Error descriptions kept in the report; the rest are only counted.
pub const MAX_ERROR_SAMPLES: usize = 5;
/// Smallest latency the histogram tells apart, in µs.
const LATENCY_LOW_US: u64 = 1;
/// Largest latency recorded exactly, in µs (60 s); longer ones are recorded as this. A message
/// waits at most `--timeout` for its answer, plus its queueing behind `--rate`'s schedule.
pub(crate) const LATENCY_HIGH_US: u64 = 60_000_000;
/// Significant digits kept: 3 means a latency is known to 0.1%.
const LATENCY_SIGFIG: u8 = 3;

const MIB: f64 = 1024.0 * 1024.0;

/// An empty latency histogram in µs.
pub(crate) fn new_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(LATENCY_LOW_US, LATENCY_HIGH_US, LATENCY_SIGFIG)
        .map_err(|e| LoadError::internal("cannot create the latency histogram", e))
}

/// Counts kept by one load thread and summed over all of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    /// Measured messages answered correctly.
    pub messages: u64,
    /// All messages answered correctly, warmup included (for the live rate).
    pub answered: u64,
    /// Bytes written and read inside the measured window.
    pub sent_bytes: u64,
    pub received_bytes: u64,
    pub wrong: u64,
    /// HTTP: answers whose status was not `200 OK`.
    pub bad_status: u64,
    /// HTTP: answers saying `Connection: close`.
    pub connection_close: u64,
    pub timeouts: u64,
    pub closed_early: u64,
    /// Closes by the server with nothing lost: not errors.
    pub closed_idle: u64,
    /// With `--rate`: messages due in the measured window and never sent.
    pub not_sent: u64,
    pub connect_failures: u64,
    /// Of `connect_failures`, those after the warmup: errors.
    pub connect_errors: u64,
    pub reconnects: u64,
    pub conns_connected: u64,
    pub conns_open_at_end: u64,
    /// `--tls`: handshakes done inside the measured window.
    pub handshakes: u64,
    /// HTTP: final answers by status, warmup included.
    pub statuses: Statuses,
    /// HTTP: faults `--query` asked for, warmup included: answers saying `Connection: close`,
    /// resets where asked, and the pipelined messages lost behind either. Not errors.
    pub faults_close: u64,
    pub faults_reset: u64,
    pub faults_lost: u64,
    /// The first errors, each with when it happened since the start.
    pub samples: Vec<(Duration, String)>,
}

impl Tally {
    pub(crate) fn errors(&self) -> u64 {
        self.wrong
            + self.bad_status
            + self.connection_close
            + self.timeouts
            + self.closed_early
            + self.not_sent
            + self.connect_errors
    }

    /// Keeps `what` if fewer than `MAX_ERROR_SAMPLES` errors were kept so far.
    pub(crate) fn sample(&mut self, at: Duration, what: String) {
        if self.samples.len() < MAX_ERROR_SAMPLES {
            log::debug!("{what}");
            self.samples.push((at, what));
        }
    }

    pub(crate) fn add(&mut self, other: Tally) {
        self.messages += other.messages;
        self.answered += other.answered;
        self.sent_bytes += other.sent_bytes;
        self.received_bytes += other.received_bytes;
        self.wrong += other.wrong;
        self.bad_status += other.bad_status;
        self.connection_close += other.connection_close;
        self.timeouts += other.timeouts;
        self.closed_early += other.closed_early;
        self.closed_idle += other.closed_idle;
        self.not_sent += other.not_sent;
        self.connect_failures += other.connect_failures;
        self.connect_errors += other.connect_errors;
        self.reconnects += other.reconnects;
        self.conns_connected += other.conns_connected;
        self.conns_open_at_end += other.conns_open_at_end;
        self.handshakes += other.handshakes;
        self.statuses.add(&other.statuses);
        self.faults_close += other.faults_close;
        self.faults_reset += other.faults_reset;
        self.faults_lost += other.faults_lost;
        self.samples.extend(other.samples);
        self.samples.sort_by_key(|(at, _)| *at);
        self.samples.truncate(MAX_ERROR_SAMPLES);
    }
}

/// The result of `saythat load`. Serialised as one JSON object with these field names; latencies
/// are in µs, rates per second, sizes in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The server address loaded.
    pub addr: String,
    /// `chunk`, `line` or `http`.
    pub framing: String,
    /// With `http` framing, the request method (`get` or `post`); `null` otherwise.
    pub method: Option<String>,
    /// Bytes per message (in HTTP the path or body, the heads not counted).
    pub size: u32,
    /// Messages in flight per connection.
    pub pipeline: u32,
    /// Load threads (independent loops).
    pub threads: u32,
    /// The requested total rate in messages/s with `--rate` (open loop), `null` in closed loop.
    pub rate: Option<f64>,
    /// `--conns`.
    pub conns_requested: u32,
    /// Connections that were established at least once.
    pub conns_connected: u64,
    /// Connections open when the run ended.
    pub conns_open_at_end: u64,
    /// Seconds before the measured window.
    pub warmup_s: f64,
    /// `--timeout`: the longest wait for a connect or an answer, and at the end for the last
    /// answers.
    pub timeout_s: f64,
    /// Seconds measured (shorter than `--duration` when `--messages` ended the run).
    pub duration_s: f64,
    /// Messages sent in the measured window and answered correctly.
    pub messages: u64,
    pub messages_per_s: f64,
    /// Bytes written to the server in the measured window (HTTP request heads included).
    pub sent_bytes: u64,
    /// Bytes read from the server in the measured window, and after it the answers to messages
    /// sent in it (HTTP answer heads included).
    pub received_bytes: u64,
    pub sent_mib_per_s: f64,
    pub received_mib_per_s: f64,
    /// Latency of the measured messages in µs: from the actual send, or from the intended send
    /// time with `--rate`, to the last byte of the answer. A message that timed out counts with
    /// how long it had waited, so a server that stops answering shows here too.
    pub latency_mean_us: f64,
    pub latency_p50_us: u64,
    pub latency_p90_us: u64,
    pub latency_p99_us: u64,
    pub latency_p999_us: u64,
    pub latency_max_us: u64,
    /// `wrong + bad_status + connection_close + timeouts + closed_early + not_sent +
    /// connect_errors`, over the whole run (warmup included: a wrong answer is never noise; a
    /// failed connect only after it).
    pub errors: u64,
    /// Answers with a wrong or unexpected byte; in HTTP also answer heads that do not frame the
    /// expected body (a malformed head or chunk, a wrong or missing Content-Length).
    pub wrong: u64,
    /// HTTP: answers with a status other than `200 OK` (when `--query` carries a `status`
    /// control, other than those it can draw); each closes its connection, which is
    /// reconnected. 0 in the echo framings.
    pub bad_status: u64,
    /// HTTP: answers saying `Connection: close`, when every request asked to keep the connection
    /// alive and `--query` asked for no `close` (those are `faults_asked.close`); each closes its
    /// connection, which is reconnected. 0 in the echo framings.
    pub connection_close: u64,
    /// Connections on which a message waited `--timeout` without a complete answer; each is then
    /// reconnected. At the end of the run no message starts, and those still in flight get up to
    /// `--timeout` more: the ones left are timeouts too.
    pub timeouts: u64,
    /// Connections the server closed or reset while answers were still due, or before it had
    /// answered anything on them (with `--rate`, even before a message was sent): a server or
    /// proxy dropping connections it was given fails its clients. A close or reset `--query`
    /// asked for is not one (`faults_asked`). Each is reconnected.
    pub closed_early: u64,
    /// Connections the server closed or reset after answering on them, with nothing in flight.
    /// Not an error: nothing was lost, a server may close idle connections (an idle timeout, a
    /// drain), and the messages that follow go on a new connection, so any delay shows in their
    /// latency (and with `--rate` as `not_sent`). Each is reconnected.
    pub closed_idle: u64,
    /// With `--rate` (open loop): messages due in the measured window that were never sent,
    /// because their connection was still waiting for earlier answers (`--pipeline`), closed or
    /// connecting. Each is an error: the schedule is the load asked for. 0 in closed loop.
    pub not_sent: u64,
    /// Connect attempts that failed or timed out (each retried after a short back-off), the
    /// warmup's included.
    pub connect_failures: u64,
    /// Of `connect_failures`, those that failed once the warmup was over: each is an error. A
    /// connection the server would not take (refused, unreachable, no handshake within
    /// `--timeout`) means the load asked for was not carried, as wrk counts its "connect" socket
    /// errors; during the warmup failures are only counted, so a server still starting or a large
    /// `--conns` still ramping up (SYNs dropped past the backlog) does not fail the run.
    pub connect_errors: u64,
    /// Connections closed and opened again: `--reconnect` churn, and after every error while the
    /// run lasts.
    pub reconnects: u64,
    /// Whether the run spoke TLS (`--tls`); the three `handshake` fields are 0 without it.
    pub tls: bool,
    /// `--tls`: TLS handshakes completed inside the measured window (every connect is a full
    /// handshake: no session is resumed), and per second of it.
    pub handshakes: u64,
    pub handshakes_per_s: f64,
    /// `--tls`: the latency of those handshakes in µs, from the connect's start to the
    /// handshake's end (TCP's round trip included, as a client sees it).
    pub handshake_p50_us: u64,
    pub handshake_p99_us: u64,
    /// HTTP: the final answers received by status code (`{"200": 9000, "503": 1000}`), warmup
    /// included, right or not (a status other than 200 is `bad_status` unless `--query` asked
    /// for it); interim `1xx` answers are not counted (a `1xx` asked for is a final answer).
    /// Empty in the echo framings.
    pub statuses: BTreeMap<u16, u64>,
    /// HTTP: the faults `--query` asked for (`close=N`, `reset=N`, `reset=N:body`), as they
    /// came, warmup included. None is an error; each ends its connection, which is reconnected.
    pub faults_asked: FaultsAsked,
    /// The first few errors, each with when it happened.
    pub first_errors: Vec<String>,
}

impl LoadReport {
    /// Messages whose answer was wrong or never came: a correct server under a sane load has none,
    /// so `saythat load` exits 1 when this is not 0.
    pub fn wrong_answers(&self) -> u64 {
        self.errors
    }

    /// Why the run failed, in one line with a hint, or `None` when it passed: every answer right
    /// and at least one measured. A run that measured nothing proves nothing, so it fails too.
    /// `saythat load` prints this and exits 1.
    pub fn failure(&self) -> Option<String> {
        if self.messages == 0 {
            let what = match self.errors {
                0 => format!(
                    "no message was answered in the {:.2} s measured",
                    self.duration_s
                ),
                n => format!(
                    "no message sent in the {:.2} s measured was answered right within --timeout \
                     ({n} error(s) in the report)",
                    self.duration_s
                ),
            };
            return Some(format!(
                "no answer was measured: {what}; is the server running and answering on {}? \
                 raise --timeout (now {} s) if it answers slowly, or --duration if connecting \
                 takes longer",
                self.addr, self.timeout_s
            ));
        }
        let n = self.errors;
        let what = match (n, self.connect_errors) {
            (0, _) => return None,
            (n, c) if c == n => format!(
                "{c} connect(s) failed after the warmup: the server stopped taking connections \
                 (is it still running on {}?)",
                self.addr
            ),
            (_, 0) => "answers wrong or missing".to_string(),
            (_, c) => {
                format!("answers wrong or missing, and {c} connect(s) failed after the warmup")
            }
        };
        Some(format!(
            "{n} error(s): {what} (see the errors line and the first errors in the report)"
        ))
    }

    /// Builds the report from the merged counts and histogram of a run.
    pub(crate) fn new(
        run: RunFacts,
        tally: Tally,
        hist: &Histogram<u64>,
        handshakes: &Histogram<u64>,
        measured: Duration,
    ) -> LoadReport {
        let secs = measured.as_secs_f64();
        let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        let (mean, q) = if hist.is_empty() {
            (0.0, [0; 4])
        } else {
            let q = [0.5, 0.9, 0.99, 0.999].map(|q| hist.value_at_quantile(q));
            (hist.mean(), q)
        };
        LoadReport {
            addr: run.addr,
            framing: run.framing,
            method: run.method,
            size: run.size,
            pipeline: run.pipeline,
            threads: run.threads,
            rate: run.rate,
            conns_requested: run.conns,
            conns_connected: tally.conns_connected,
            conns_open_at_end: tally.conns_open_at_end,
            warmup_s: run.warmup_s,
            timeout_s: run.timeout_s,
            duration_s: secs,
            messages: tally.messages,
            messages_per_s: per_s(tally.messages as f64),
            sent_bytes: tally.sent_bytes,
            received_bytes: tally.received_bytes,
            sent_mib_per_s: per_s(tally.sent_bytes as f64 / MIB),
            received_mib_per_s: per_s(tally.received_bytes as f64 / MIB),
            latency_mean_us: mean,
            latency_p50_us: q[0],
            latency_p90_us: q[1],
            latency_p99_us: q[2],
            latency_p999_us: q[3],
            latency_max_us: if hist.is_empty() { 0 } else { hist.max() },
            errors: tally.errors(),
            wrong: tally.wrong,
            bad_status: tally.bad_status,
            connection_close: tally.connection_close,
            timeouts: tally.timeouts,
            closed_early: tally.closed_early,
            closed_idle: tally.closed_idle,
            not_sent: tally.not_sent,
            connect_failures: tally.connect_failures,
            connect_errors: tally.connect_errors,
            reconnects: tally.reconnects,
            tls: run.tls,
            handshakes: tally.handshakes,
            handshakes_per_s: per_s(tally.handshakes as f64),
            handshake_p50_us: quantile(handshakes, 0.5),
            handshake_p99_us: quantile(handshakes, 0.99),
            statuses: tally.statuses.by_code(),
            faults_asked: FaultsAsked {
                close: tally.faults_close,
                reset: tally.faults_reset,
                lost: tally.faults_lost,
            },
            first_errors: tally
                .samples
                .into_iter()
                .map(|(at, what)| format!("at {:.3} s: {what}", at.as_secs_f64()))
                .collect(),
        }
    }
}

/// The faults a test backend was asked for by `--query`, counted as they came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultsAsked {
    /// Answers saying `Connection: close` (asked by `close`), each right and counted in
    /// `messages` (when measured); the server closed after each.
    pub close: u64,
    /// Resets where `reset` asks one, instead of the answer (before its head, or inside its
    /// body with `reset=N:body`): the message is neither answered nor an error.
    pub reset: u64,
    /// Messages pipelined behind a close or a reset asked, lost with their connection (with
    /// `--pipeline` above 1).
    pub lost: u64,
}

/// What the run was asked to do, repeated in the report.
pub(crate) struct RunFacts {
    pub addr: String,
    pub framing: String,
    pub method: Option<String>,
    pub size: u32,
    pub pipeline: u32,
    pub threads: u32,
    pub rate: Option<f64>,
    pub conns: u32,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub tls: bool,
}

/// The `q` quantile of `hist`, 0 when it is empty.
fn quantile(hist: &Histogram<u64>, q: f64) -> u64 {
    match hist.is_empty() {
        true => 0,
        false => hist.value_at_quantile(q),
    }
}

/// A latency in µs, in the unit that keeps it short: `850 µs`, `1.25 ms`, `2.50 s`.
pub(crate) fn human_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.rate {
            Some(rate) => format!("open loop at {rate} msg/s"),
            None => "closed loop".to_string(),
        };
        let method = match &self.method {
            Some(m) => format!(" ({})", m.to_uppercase()),
            None => String::new(),
        };
        writeln!(
            f,
            "saythat load: {}, {} framing{method}, {} B messages, pipeline {}, {mode}, {} thread(s)",
            self.addr, self.framing, self.size, self.pipeline, self.threads
        )?;
        writeln!(
            f,
            "  duration    {:.2} s measured after {:.2} s warmup",
            self.duration_s, self.warmup_s
        )?;
        writeln!(
            f,
            "  messages    {} ({:.1}/s)",
            self.messages, self.messages_per_s
        )?;
        writeln!(
            f,
            "  throughput  {:.2} MiB/s sent, {:.2} MiB/s received",
            self.sent_mib_per_s, self.received_mib_per_s
        )?;
        writeln!(
            f,
            "  latency     p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
            human_us(self.latency_p50_us),
            human_us(self.latency_p90_us),
            human_us(self.latency_p99_us),
            human_us(self.latency_p999_us),
            human_us(self.latency_max_us)
        )?;
        writeln!(
            f,
            "  conns       {} requested, {} connected, {} open at end, {} connect failures, {} closed idle by the server, {} reconnects",
            self.conns_requested,
            self.conns_connected,
            self.conns_open_at_end,
            self.connect_failures,
            self.closed_idle,
            self.reconnects
        )?;
        if self.tls {
            writeln!(
                f,
                "  tls         {} handshakes ({:.1}/s), handshake p50 {}, p99 {} (from connect)",
                self.handshakes,
                self.handshakes_per_s,
                human_us(self.handshake_p50_us),
                human_us(self.handshake_p99_us)
            )?;
        }
        if self.method.is_some() {
            let statuses: Vec<String> = self
                .statuses
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            let statuses = match statuses.is_empty() {
                true => "none".to_string(),
                false => statuses.join(", "),
            };
            // Counted over the whole run, as errors are: a status is never warmup noise.
            let warmup = match self.warmup_s > 0.0 {
                true => " (warmup included)",
                false => "",
            };
            writeln!(f, "  statuses    {statuses}{warmup}")?;
            let asked = self.faults_asked;
            if asked != FaultsAsked::default() {
                writeln!(
                    f,
                    "  faults      asked by --query, not errors: {} close, {} reset, {} pipelined \
                     message(s) lost with them{warmup}",
                    asked.close, asked.reset, asked.lost
                )?;
            }
        }
        // The HTTP kinds only where they can happen, so the echo framings' line stays as it was.
        let http = match self.method {
            Some(_) => format!(
                ", {} bad status, {} connection close",
                self.bad_status, self.connection_close
            ),
            None => String::new(),
        };
        write!(
            f,
            "  errors      {} ({} wrong{http}, {} timeouts, {} closed early, {} not sent, {} connects failed)",
            self.errors,
            self.wrong,
            self.timeouts,
            self.closed_early,
            self.not_sent,
            self.connect_errors
        )?;
        for e in &self.first_errors {
            write!(f, "\n    {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{human_us, new_histogram, LoadReport, RunFacts, Tally};

    fn report(tally: Tally) -> LoadReport {
        let facts = RunFacts {
            addr: "127.0.0.1:8080".to_string(),
            framing: "chunk".to_string(),
            method: None,
            size: 64,
            pipeline: 1,
            threads: 1,
            rate: None,
            conns: 1,
            warmup_s: 0.0,
            timeout_s: 5.0,
            tls: false,
        };
        let hist = new_histogram().expect("a histogram");
        LoadReport::new(facts, tally, &hist, &hist, Duration::from_secs(1))
    }

    #[test]
    fn a_run_fails_unless_it_measured_answers_and_no_errors() {
        let passed = Tally {
            messages: 5,
            ..Tally::default()
        };
        assert_eq!(report(passed.clone()).failure(), None);
        let nothing = report(Tally::default()).failure().unwrap_or_default();
        assert_eq!(
            nothing,
            "no answer was measured: no message was answered in the 1.00 s measured; is the \
             server running and answering on 127.0.0.1:8080? raise --timeout (now 5 s) if it \
             answers slowly, or --duration if connecting takes longer"
        );
        let lost = Tally {
            timeouts: 2,
            ..Tally::default()
        };
        let lost = report(lost).failure().unwrap_or_default();
        assert!(lost.starts_with("no answer was measured: no message sent in the 1.00 s measured was answered right within --timeout (2 error(s) in the report)"), "{lost}");
        let wrong = Tally {
            wrong: 1,
            ..passed.clone()
        };
        let wrong = report(wrong).failure().unwrap_or_default();
        assert!(wrong.starts_with("1 error(s)"), "{wrong}");
    }

    #[test]
    fn connects_failing_after_the_warmup_fail_the_run_and_say_so() {
        let gone = Tally {
            messages: 5,
            connect_failures: 7,
            connect_errors: 3,
            ..Tally::default()
        };
        let gone = report(gone);
        assert_eq!(gone.errors, 3);
        assert_eq!(
            gone.failure().unwrap_or_default(),
            "3 error(s): 3 connect(s) failed after the warmup: the server stopped taking \
             connections (is it still running on 127.0.0.1:8080?) (see the errors line and the \
             first errors in the report)"
        );
        assert!(
            gone.to_string()
                .contains("errors      3 (0 wrong, 0 timeouts, 0 closed early, 0 not sent, 3 connects failed)"),
            "{gone}"
        );
        let both = Tally {
            messages: 5,
            timeouts: 1,
            connect_errors: 2,
            ..Tally::default()
        };
        let both = report(both).failure().unwrap_or_default();
        assert!(
            both.starts_with("3 error(s): answers wrong or missing, and 2 connect(s) failed"),
            "{both}"
        );
    }

    #[test]
    fn latencies_read_in_a_short_unit() {
        assert_eq!(human_us(850), "850 µs");
        assert_eq!(human_us(1_250), "1.25 ms");
        assert_eq!(human_us(2_500_000), "2.50 s");
    }
}
