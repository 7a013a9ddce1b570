//! `saythat load`: a load generator that verifies every answer byte for byte while it measures.
//!
//! It exists so the server's throughput, latency and 19,000-connection figures come from the
//! project's own tool, on mio loops like the server's (one per `--threads`). It must never count
//! an answer it did not verify, and never run without an end: every run is bounded in time.

mod check;
mod conn;
mod fault;
mod http;
mod message;
mod report;
mod worker;

use std::error::Error;
use std::fmt;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{FramingKind, DEFAULT_PREFIX, MAX_PREFIX, RESERVED_FDS};
pub use message::HttpMethod;
use message::Protocol;
pub use report::LoadReport;
use report::{human_us, new_histogram, RunFacts, Tally};
use worker::{Share, Snapshot};

/// Non-blocking connects in progress at once over all threads. It keeps the handshakes under way
/// below a server's accept backlog (saythat's is 4096): SYNs beyond it are dropped, and the
/// kernel retries each only a second later.
pub const MAX_CONNECTS_IN_FLIGHT: usize = 512;
/// Wait before a connection is opened again after its connect failed or the server closed it.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Largest `--conns`: connections to one address each need their own source port, so no more
/// than 65,535 could ever open; the bound also caps what the connection table allocates.
pub const MAX_CONNS: u32 = 65_535;
/// Largest `--size`: messages are regenerated rather than stored, so this bounds time, not memory.
pub const MAX_SIZE: u32 = 16 * 1024 * 1024;
/// Largest `--pipeline`: the per-connection record of messages in flight grows with it.
pub const MAX_PIPELINE: u32 = 1024;
/// Largest `--threads`; more loops than cores only adds switching.
pub const MAX_THREADS: u32 = 256;
/// Longest `--duration`, `--warmup` or `--timeout` in seconds (a day): every run ends, and the
/// run's deadlines (at most three days ahead) always fit in an `Instant`.
pub const MAX_SECONDS: f64 = 86_400.0;
/// Shortest `--timeout` in seconds: timeouts are looked for every millisecond at best, so a
/// shorter one could not be told apart.
pub const MIN_TIMEOUT_SECS: f64 = 0.001;
/// Largest `--rate` in messages/s, far beyond what one machine's loopback carries; it keeps the
/// schedule's message numbers (rate times seconds) well inside a `u64`.
pub const MAX_RATE: f64 = 1e9;
/// Error descriptions kept in the report; the rest are only counted.
pub const MAX_ERROR_SAMPLES: usize = 5;
/// How often the live progress line is redrawn.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Slowest pass over all connections looking for timeouts; shorter `--timeout`s get a quarter of
/// themselves, so a timeout is noticed at most 25% late.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Options of `saythat load`; each flag can also come from a `SAYTHAT_LOAD_*` variable.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Address of the server to load.
    #[arg(
        long,
        value_name = "ADDR",
        env = "SAYTHAT_LOAD_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,

    /// Connections kept open at once (the fd limit is raised to its hard limit to allow them).
    /// Past about 14,000 to one address Linux is slower to find each a source port (19,000 took
    /// 4.5 s on 2 cores): give --warmup that long. At most 65,535 (one source port each).
    #[arg(long, value_name = "N", env = "SAYTHAT_LOAD_CONNS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNS)))]
    pub conns: u32,

    /// Bytes per message; in line framing the last one is the `\n`; in HTTP the request's path
    /// (GET) or body (POST), its head not counted.
    #[arg(long, value_name = "BYTES", env = "SAYTHAT_LOAD_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SIZE)))]
    pub size: u32,

    /// Seconds measured, after the warmup (more than 0, at most a day).
    #[arg(long, value_name = "SECS", env = "SAYTHAT_LOAD_DURATION", default_value_t = 10.0,
          value_parser = parse_duration)]
    pub duration: f64,

    /// Seconds of load before measuring: answers are checked but not counted in the figures
    /// (at most a day).
    #[arg(long, value_name = "SECS", env = "SAYTHAT_LOAD_WARMUP", default_value_t = 2.0,
          value_parser = parse_warmup)]
    pub warmup: f64,

    /// Messages in flight per connection; above 1 needs line or http framing, or an empty prefix.
    #[arg(long, value_name = "K", env = "SAYTHAT_LOAD_PIPELINE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PIPELINE)))]
    pub pipeline: u32,

    /// How the server cuts input into messages: every read (`chunk`), every line (`line`), or
    /// HTTP/1.1 requests (`http`), each answered `200 OK` with the prefix and the message.
    #[arg(
        long,
        value_enum,
        env = "SAYTHAT_LOAD_FRAMING",
        default_value = "chunk"
    )]
    pub framing: FramingKind,

    /// With `--framing http`: send each message as the path of a GET (`GET /MESSAGE`), or as
    /// the body of a POST.
    #[arg(long, value_enum, env = "SAYTHAT_LOAD_METHOD", default_value = "get")]
    pub method: HttpMethod,

    /// The prefix the server puts before every answer; empty for a plain echo server.
    #[arg(long, value_name = "STR", env = "SAYTHAT_LOAD_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,

    /// Total messages per second over all connections (open loop; latency counts from each
    /// message's intended send time). Without it, each connection sends as fast as answers come.
    /// At most 1e9.
    #[arg(long, value_name = "MSGS_PER_S", env = "SAYTHAT_LOAD_RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Print the report as one JSON object instead of text.
    #[arg(long, env = "SAYTHAT_LOAD_JSON")]
    pub json: bool,

    /// Independent load loops (threads); connections are split among them.
    #[arg(long, value_name = "N", env = "SAYTHAT_LOAD_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_THREADS)))]
    pub threads: u32,

    /// Stop after this many measured messages in total (or at the end of --duration if sooner).
    #[arg(long, value_name = "N", env = "SAYTHAT_LOAD_MESSAGES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,

    /// Close each connection and open it again after every N messages (connection churn).
    #[arg(long, value_name = "N", env = "SAYTHAT_LOAD_RECONNECT",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconnect: Option<u64>,

    /// Seconds to wait for a connect or a complete answer; past it, it counts as an error
    /// (connect failure or timeout) and the connection is opened again (0.001 to a day). Also the
    /// longest wait, at the end of the run, for the answers still due.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_LOAD_TIMEOUT", default_value_t = 5.0,
          value_parser = parse_timeout)]
    pub timeout: f64,
}

/// What kind of failure stopped a load run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The options contradict each other or are out of range.
    InvalidArgs,
    /// The process may not open enough file descriptors for `--conns`.
    FdLimit,
    /// No connection to the server ever succeeded.
    Connect,
    /// The operating system refused something the loop needs (threads, epoll).
    Internal,
}

/// Why `saythat load` could not run; displays as one line: what failed, the cause, a hint.
#[derive(Debug)]
pub struct LoadError {
    kind: LoadErrorKind,
    what: String,
    cause: String,
    hint: &'static str,
}

impl LoadError {
    pub fn kind(&self) -> LoadErrorKind {
        self.kind
    }

    fn invalid(what: impl Into<String>, cause: impl Into<String>, hint: &'static str) -> Self {
        LoadError {
            kind: LoadErrorKind::InvalidArgs,
            what: what.into(),
            cause: cause.into(),
            hint,
        }
    }

    pub(crate) fn internal(what: &str, cause: impl fmt::Display) -> Self {
        LoadError {
            kind: LoadErrorKind::Internal,
            what: what.to_string(),
            cause: cause.to_string(),
            hint: "the system may be out of memory, threads or file descriptors",
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)?;
        if !self.hint.is_empty() {
            write!(f, "; {}", self.hint)?;
        }
        Ok(())
    }
}

impl Error for LoadError {}

/// Checks a number of seconds against `min` (itself allowed unless `strict`) and `MAX_SECONDS`
/// and converts it; NaN and infinities fail too. Shared by the flags' parsers and `Plan::new`, so
/// a `LoadArgs` built in code meets the same bounds as the command line.
fn secs_within(secs: f64, min: f64, strict: bool) -> Result<Duration, String> {
    let above = if strict { secs > min } else { secs >= min };
    let d = Duration::try_from_secs_f64(secs).ok();
    match d {
        Some(d) if above && secs <= MAX_SECONDS => Ok(d),
        _ if strict => Err(format!(
            "it must be more than {min} and at most {MAX_SECONDS} seconds"
        )),
        _ => Err(format!(
            "it must be between {min} and {MAX_SECONDS} seconds"
        )),
    }
}

fn duration_secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, 0.0, true)
}

fn warmup_secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, 0.0, false)
}

fn timeout_secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, MIN_TIMEOUT_SECS, false)
}

fn check_rate(rate: f64) -> Result<f64, String> {
    // NaN fails the comparison.
    if rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "it must be a number of messages per second above 0 and at most {MAX_RATE}"
        ))
    }
}

/// Parses a flag's number and checks it with `check`.
fn parse_number<T>(s: &str, check: fn(f64) -> Result<T, String>) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    check(v).map(|_| v)
}

fn parse_duration(s: &str) -> Result<f64, String> {
    parse_number(s, duration_secs)
}

fn parse_warmup(s: &str) -> Result<f64, String> {
    parse_number(s, warmup_secs)
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    parse_number(s, timeout_secs)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    parse_number(s, check_rate)
}

/// `from + d`, or an error naming the time that does not fit the clock. With every time at most
/// `MAX_SECONDS` it always fits; this keeps an `Instant` overflow from ever being a panic.
fn later(from: Instant, d: Duration, what: &str) -> Result<Instant, LoadError> {
    from.checked_add(d).ok_or_else(|| {
        LoadError::invalid(
            format!("cannot plan {what}"),
            format!("{d:?} from now is past what this system's clock can represent"),
            "give shorter --warmup, --duration or --timeout",
        )
    })
}

/// Everything the load threads share, checked and converted from `LoadArgs`; read-only.
#[derive(Debug)]
pub(crate) struct Plan {
    pub addr: SocketAddr,
    /// What to send and what to expect back.
    pub proto: Protocol,
    /// Messages in flight per connection, 1..=`MAX_PIPELINE`.
    pub pipeline: u32,
    /// Total messages per second (open loop), or `None` for closed loop.
    pub rate: Option<f64>,
    /// All connections of the run, over every thread: the `--rate` schedule's modulus.
    pub conns: u64,
    /// Messages per connection before it is closed and opened again.
    pub reconnect: Option<u64>,
    /// Longest wait for a connect or a complete answer.
    pub timeout: Duration,
    /// How often connections are checked against `timeout`.
    pub sweep: Duration,
    /// This thread's part of `MAX_CONNECTS_IN_FLIGHT`.
    pub connects_per_thread: usize,
    /// When the run started, the warmup ended, and the run ends: no message starts after `end`.
    pub start: Instant,
    pub measure_start: Instant,
    pub end: Instant,
    /// `end` + `timeout`: the latest the loops wait for the answers to messages sent before
    /// `end`. Every message still in flight then has waited at least `timeout`.
    pub wait_end: Instant,
    /// Threads send progress snapshots: stderr is a terminal to draw on.
    pub progress: bool,
}

impl Plan {
    /// Checks every option before any socket is opened.
    fn new(args: &LoadArgs, threads: u32, start: Instant) -> Result<Plan, LoadError> {
        let secs = |flag: &str, v: f64, check: fn(f64) -> Result<Duration, String>| {
            check(v).map_err(|cause| LoadError::invalid(format!("invalid --{flag} {v}"), cause, ""))
        };
        let duration = secs("duration", args.duration, duration_secs)?;
        let warmup = secs("warmup", args.warmup, warmup_secs)?;
        let timeout = secs("timeout", args.timeout, timeout_secs)?;
        let range = |flag: &str, v: u64, max: u64| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(LoadError::invalid(
                    format!("invalid --{flag} {v}"),
                    format!("it must be between 1 and {max}"),
                    "",
                ))
            }
        };
        range("conns", args.conns.into(), MAX_CONNS.into())?;
        range("size", args.size.into(), MAX_SIZE.into())?;
        range("pipeline", args.pipeline.into(), MAX_PIPELINE.into())?;
        range("threads", args.threads.into(), MAX_THREADS.into())?;
        if let Some(n) = args.messages {
            range("messages", n, u64::MAX)?;
        }
        if let Some(n) = args.reconnect {
            range("reconnect", n, u64::MAX)?;
        }
        if let Some(rate) = args.rate {
            check_rate(rate)
                .map_err(|cause| LoadError::invalid(format!("invalid --rate {rate}"), cause, ""))?;
        }
        if args.prefix.len() > MAX_PREFIX {
            return Err(LoadError::invalid(
                "invalid --prefix",
                format!(
                    "it is {} bytes and the server allows at most {MAX_PREFIX}",
                    args.prefix.len()
                ),
                "",
            ));
        }
        if args.pipeline > 1 && args.framing == FramingKind::Chunk && !args.prefix.is_empty() {
            return Err(LoadError::invalid(
                format!("cannot use --pipeline {}", args.pipeline),
                "in chunk framing the server may answer several pipelined messages with one \
                 prefix, so the answers cannot be checked",
                "use --framing line or http, an empty --prefix '', or --pipeline 1",
            ));
        }
        if args.method != HttpMethod::Get && args.framing != FramingKind::Http {
            return Err(LoadError::invalid(
                "cannot use --method post",
                "only HTTP requests have a method",
                "add --framing http, or leave --method out",
            ));
        }
        let measure_start = later(start, warmup, "the warmup")?;
        let end = later(measure_start, duration, "the measured time")?;
        Ok(Plan {
            addr: args.addr,
            proto: Protocol::new(
                args.prefix.as_bytes(),
                args.framing,
                args.size,
                args.method,
                args.addr,
            ),
            pipeline: args.pipeline,
            rate: args.rate,
            conns: args.conns.into(),
            reconnect: args.reconnect,
            timeout,
            sweep: (timeout / 4).clamp(Duration::from_millis(1), MAX_SWEEP_INTERVAL),
            connects_per_thread: MAX_CONNECTS_IN_FLIGHT.div_ceil(threads as usize),
            start,
            measure_start,
            end,
            wait_end: later(end, timeout, "the wait for the last answers")?,
            progress: io::stderr().is_terminal(),
        })
    }

    /// The same plan with its clock started at `start`.
    fn starting_at(self, start: Instant) -> Result<Plan, LoadError> {
        let shift = start.saturating_duration_since(self.start);
        Ok(Plan {
            start,
            measure_start: later(self.measure_start, shift, "the warmup")?,
            end: later(self.end, shift, "the measured time")?,
            wait_end: later(self.wait_end, shift, "the wait for the last answers")?,
            ..self
        })
    }

    /// With `--rate`: when message `i` of the whole run is due, `start + i / rate`; `None` when
    /// that is too far ahead to represent, so never.
    pub(crate) fn due_at(&self, i: u64) -> Option<Instant> {
        let rate = self.rate.unwrap_or(f64::INFINITY);
        Duration::try_from_secs_f64(i as f64 / rate)
            .ok()
            .and_then(|d| self.start.checked_add(d))
    }

    /// With `--rate`: the number of the first message of the run due at `at` or later, so also
    /// how many are due before `at`. A binary search: `due_at` only grows with `i`.
    pub(crate) fn first_due_from(&self, at: Instant) -> u64 {
        let (mut lo, mut hi) = (0, u64::MAX);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.due_at(mid).is_some_and(|due| due < at) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// With `--rate`: how many of the messages numbered below `i` in the run go to connection
    /// `id` (those numbered `id`, `id + conns`, ...).
    pub(crate) fn share_below(&self, i: u64, id: u64) -> u64 {
        i.saturating_sub(id).div_ceil(self.conns)
    }

    /// With `--rate`: when the `j`-th message of connection `id` is due. Message `i` of the run
    /// goes to connection `i % conns`, so that is message `j * conns + id`.
    pub(crate) fn intended(&self, id: u64, j: u64) -> Option<Instant> {
        self.due_at(j.saturating_mul(self.conns).saturating_add(id))
    }
}

/// Raises the soft fd limit to the hard one and checks `conns` fit under it.
fn ensure_fds(conns: u32) -> Result<(), LoadError> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| LoadError {
        kind: LoadErrorKind::FdLimit,
        what: "cannot raise the file-descriptor limit".to_string(),
        cause: e.to_string(),
        hint: "check `ulimit -n`",
    })?;
    let needed = u64::from(conns) + RESERVED_FDS;
    if needed > limit {
        return Err(LoadError {
            kind: LoadErrorKind::FdLimit,
            what: format!("cannot open {conns} connections"),
            cause: format!(
                "that needs {needed} file descriptors ({RESERVED_FDS} kept for the process) and \
                 the limit is {limit}"
            ),
            hint:
                "raise the hard limit (`ulimit -Hn`, limits.conf or LimitNOFILE) or lower --conns",
        });
    }
    Ok(())
}

/// Runs the load described by `args` against a server and reports what it measured.
///
/// Errors only when the run could not happen at all (bad options, too few file descriptors, no
/// connection ever succeeded); wrong or missing answers are in the report
/// (`LoadReport::failure`).
pub fn run(args: &LoadArgs) -> Result<LoadReport, LoadError> {
    // More threads than connections would leave some with nothing to do.
    let threads = args.threads.min(args.conns).max(1);
    // Options are checked before the fd limit is touched, so a bad one fails without side effects.
    let plan = Plan::new(args, threads, Instant::now())?;
    ensure_fds(args.conns)?;
    let plan = Arc::new(plan.starting_at(Instant::now())?);

    let (tx, rx) = mpsc::channel::<Snapshot>();
    let mut handles = Vec::with_capacity(threads as usize);
    for t in 0..threads {
        // Contiguous shares: thread t owns connections lo..hi; --messages is split the same way.
        let (lo, hi) = (
            share_of(plan.conns, t, threads),
            share_of(plan.conns, t + 1, threads),
        );
        let budget = args.messages.map(|m| {
            let part = |x: u64| (u128::from(m) * u128::from(x) / u128::from(plan.conns)) as u64;
            part(hi) - part(lo)
        });
        let share = Share {
            thread: t as usize,
            first_id: lo,
            conns: (hi - lo) as usize,
            budget,
        };
        let (plan, tx) = (Arc::clone(&plan), plan.progress.then(|| tx.clone()));
        let handle = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || worker::run(plan, share, tx))
            .map_err(|e| LoadError::internal("cannot start a load thread", e))?;
        handles.push(handle);
    }
    drop(tx);
    if plan.progress {
        show_progress(&plan, &rx, threads as usize);
    }

    let mut tally = Tally::default();
    let mut hist = new_histogram()?;
    let mut ended = plan.measure_start;
    let mut connect_error = None;
    for handle in handles {
        let outcome = handle
            .join()
            .map_err(|_| LoadError::internal("a load thread failed", "it panicked"))??;
        hist.add(&outcome.hist).map_err(|e| {
            LoadError::internal("cannot merge latency histograms", format!("{e:?}"))
        })?;
        tally.add(outcome.tally);
        ended = ended.max(outcome.ended);
        connect_error = connect_error.or(outcome.connect_error);
    }
    if tally.conns_connected == 0 {
        return Err(LoadError {
            kind: LoadErrorKind::Connect,
            what: format!("cannot connect to {}", plan.addr),
            cause: connect_error.unwrap_or_else(|| "no connection was established".to_string()),
            hint: "is saythat serve running on that address?",
        });
    }
    let name = |v: Option<clap::builder::PossibleValue>| {
        v.map_or_else(String::new, |v| v.get_name().to_string())
    };
    let facts = RunFacts {
        addr: args.addr.to_string(),
        framing: name(args.framing.to_possible_value()),
        method: (args.framing == FramingKind::Http).then(|| name(args.method.to_possible_value())),
        size: args.size,
        pipeline: args.pipeline,
        threads,
        rate: args.rate,
        conns: args.conns,
        warmup_s: args.warmup,
        timeout_s: args.timeout,
    };
    let measured = ended.saturating_duration_since(plan.measure_start);
    Ok(LoadReport::new(facts, tally, &hist, measured))
}

/// The first connection id of thread `t`'s share, for `threads` even shares of `conns`.
fn share_of(conns: u64, t: u32, threads: u32) -> u64 {
    conns * u64::from(t) / u64::from(threads)
}

/// Draws the live line on stderr from the threads' snapshots until every thread has finished.
fn show_progress(plan: &Plan, rx: &mpsc::Receiver<Snapshot>, threads: usize) {
    let total = plan.end.saturating_duration_since(plan.start);
    let bar =
        ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut latest: Vec<Option<Snapshot>> = vec![None; threads];
    let (mut last_answered, mut last_at) = (0, plan.start);
    let mut next_draw = Instant::now() + PROGRESS_INTERVAL;
    loop {
        match rx.recv_timeout(PROGRESS_INTERVAL) {
            Ok(snap) => {
                let t = snap.thread;
                if let Some(slot) = latest.get_mut(t) {
                    *slot = Some(snap);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now < next_draw {
            continue;
        }
        // Snapshots come about once an interval, not exactly: a little slack draws on each.
        next_draw = now + PROGRESS_INTERVAL * 9 / 10;
        let (mut answered, mut errors) = (0, 0);
        let mut p99 = new_histogram().ok();
        for snap in latest.iter().flatten() {
            answered += snap.answered;
            errors += snap.errors;
            if let Some(h) = p99.as_mut() {
                // A failed merge only loses the live p99; the report merges again.
                let _ = h.add(&snap.hist);
            }
        }
        let secs = now.duration_since(last_at).as_secs_f64();
        let rate = (answered - last_answered.min(answered)) as f64 / secs.max(1e-3);
        (last_answered, last_at) = (answered, now);
        let p99 = match p99 {
            Some(h) if !h.is_empty() => human_us(h.value_at_quantile(0.99)),
            _ => "-".to_string(),
        };
        let phase = if now < plan.measure_start {
            " (warmup)"
        } else {
            ""
        };
        bar.set_position(now.duration_since(plan.start).as_millis() as u64);
        bar.set_message(format!(
            "{rate:.0} msg/s, p99 {p99}, {errors} errors{phase}"
        ));
    }
    bar.finish_and_clear();
}
