//! The run's plan: the options checked against each other and turned into what the load threads
//! share read-only (what to send, the clock's marks, the `--rate` schedule, the bounds).
//!
//! It exists so every option is refused or accepted before any socket opens or any fd limit
//! changes, including options built in code rather than parsed. It must never do I/O, but for
//! reading the files `--tls-ca`, `--tls-cert` and `--tls-key` name.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::args::{
    check_query, check_rate, duration_secs, timeout_secs, warmup_secs, LoadArgs, MAX_CONNS,
    MAX_PIPELINE, MAX_SIZE, MAX_THREADS,
};
use super::dial::MAX_CONNECTS_IN_FLIGHT;
use super::error::LoadError;
use super::message::{HttpMethod, LoadFraming, Protocol};
use super::schedule::Schedule;
use crate::config::MAX_PREFIX;
use crate::tls_client::{TlsClient, TlsConfigError, ALPN_HTTP1};

/// Slowest pass over all connections looking for timeouts; shorter `--timeout`s get a quarter of
/// themselves, so a timeout is noticed at most 25% late.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

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

/// Refuses a `--timeout` (`secs`, converted to `timeout`) that is not longer than the longest
/// answer `--query` asks for: those answers would all be counted as timeouts.
fn check_timeout(proto: &Protocol, timeout: Duration, secs: f64) -> Result<(), LoadError> {
    let (delay, drips) = proto.expect.longest_wait();
    let dripping = drips.map_or(Duration::ZERO, |(pieces, every)| {
        u32::try_from(pieces)
            .ok()
            .and_then(|n| every.checked_mul(n))
            .unwrap_or(Duration::MAX)
    });
    let longest = delay.saturating_add(dripping);
    if longest < timeout {
        return Ok(());
    }
    let (what, asked) = match drips {
        None => ("largest delay", format!("{longest:?} in --query")),
        Some((pieces, every)) => (
            "longest answer",
            format!(
                "{longest:?} in --query (a delay of up to {delay:?}, then {pieces} drip(s) of the \
                 longest body, one every {every:?})"
            ),
        ),
    };
    Err(LoadError::invalid(
        format!("--timeout {secs}s is not longer than the {what} asked"),
        asked,
        "raise --timeout above it (an answer slower than --timeout is a timeout error)",
    ))
}

/// Everything the load threads share, checked and converted from `LoadArgs`; read-only.
#[derive(Debug)]
pub(crate) struct Plan {
    pub addr: SocketAddr,
    /// What to send and what to expect back.
    pub proto: Protocol,
    /// Messages in flight per connection, 1..=`MAX_PIPELINE`.
    pub pipeline: u32,
    /// With `--rate` (open loop), when each message is due; `None` for closed loop.
    pub schedule: Option<Schedule>,
    /// All connections of the run, over every thread.
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
    /// `--tls`: the config every connection shares, and the name its server must carry.
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Plan {
    /// Checks every option before any socket is opened.
    pub(super) fn new(args: &LoadArgs, threads: u32, start: Instant) -> Result<Plan, LoadError> {
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
        if args.pipeline > 1 && args.framing == LoadFraming::Chunk && !args.prefix.is_empty() {
            return Err(LoadError::invalid(
                format!("cannot use --pipeline {}", args.pipeline),
                "in chunk framing the server may answer several pipelined messages with one \
                 prefix, so the answers cannot be checked",
                "use --framing line, http or ws, an empty --prefix '', or --pipeline 1",
            ));
        }
        if args.method != HttpMethod::Get && args.framing != LoadFraming::Http {
            return Err(LoadError::invalid(
                "cannot use --method post",
                "only HTTP requests have a method",
                "add --framing http, or leave --method out",
            ));
        }
        if let Some(query) = &args.query {
            if args.framing != LoadFraming::Http {
                return Err(LoadError::invalid(
                    "cannot use --query",
                    "only HTTP requests have a query",
                    "add --framing http, or leave --query out",
                ));
            }
            check_query(query).map_err(|cause| {
                LoadError::invalid(format!("invalid --query {query:?}"), cause, "")
            })?;
        }
        if args.ws_text && args.framing != LoadFraming::Ws {
            return Err(LoadError::invalid(
                "cannot use --ws-text",
                "only WebSocket messages are text or binary",
                "add --framing ws, or leave --ws-text out",
            ));
        }
        // The query's controls are read as the server reads them: one it refuses would be
        // answered `400` every time.
        let proto = Protocol::new(
            args.prefix.as_bytes(),
            args.framing,
            args.size,
            args.method,
            args.addr,
            args.query.as_deref(),
            args.ws_text,
        )
        .map_err(|cause| {
            let query = args.query.as_deref().unwrap_or_default();
            LoadError::invalid(format!("invalid --query {query:?}"), cause, "")
        })?;
        check_timeout(&proto, timeout, args.timeout)?;
        let measure_start = later(start, warmup, "the warmup")?;
        let end = later(measure_start, duration, "the measured time")?;
        let tls = tls_for(args).map_err(|e| LoadError::invalid("cannot use TLS", e.0, ""))?;
        Ok(Plan {
            addr: args.addr,
            proto,
            pipeline: args.pipeline,
            schedule: args
                .rate
                .map(|rate| Schedule::new(rate, args.conns.into(), start)),
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
            tls,
        })
    }

    /// The same plan with its clock started at `start`.
    pub(super) fn starting_at(self, start: Instant) -> Result<Plan, LoadError> {
        let shift = start.saturating_duration_since(self.start);
        Ok(Plan {
            start,
            schedule: self.schedule.map(|s| s.starting_at(start)),
            measure_start: later(self.measure_start, shift, "the warmup")?,
            end: later(self.end, shift, "the measured time")?,
            wait_end: later(self.wait_end, shift, "the wait for the last answers")?,
            ..self
        })
    }
}

/// The TLS client of `--tls`, offering ALPN `http/1.1` where the framing is HTTP's (ws included).
/// Resumption is off, so `--reconnect` measures full handshakes.
fn tls_for(
    args: &LoadArgs,
) -> Result<Option<(Arc<ClientConfig>, ServerName<'static>)>, TlsConfigError> {
    let alpn: &[&[u8]] = match args.framing {
        LoadFraming::Http | LoadFraming::Ws => &[ALPN_HTTP1],
        _ => &[],
    };
    let Some(client) = TlsClient::from_args(&args.tls, alpn)? else {
        return Ok(None);
    };
    let name = client.server_name(&args.addr.ip().to_string())?;
    let mut config = (*client.config).clone();
    config.resumption = Resumption::disabled();
    Ok(Some((Arc::new(config), name)))
}
