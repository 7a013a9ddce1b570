//! The options of `saythat load` as the command line gives them, and each flag's bounds.
//!
//! It exists so the CLI's contract (names, defaults, `SAYTHAT_LOAD_*` variables, ranges) reads in
//! one place. It only parses: combining the options and converting them is `plan.rs`'s, and it
//! must never open a socket or start a clock.

use std::net::SocketAddr;
use std::time::Duration;

use super::message::{HttpMethod, LoadFraming};
use crate::config::DEFAULT_PREFIX;

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
/// Longest `--query`, in bytes: a query of controls is a few dozen bytes; this keeps a request
/// head well under saythat's default `--max-header` of 8 KiB.
pub const MAX_QUERY: usize = 4096;
/// Largest `--rate` in messages/s, far beyond what one machine's loopback carries; it keeps the
/// schedule's message numbers (rate times seconds) well inside a `u64`.
pub const MAX_RATE: f64 = 1e9;
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
    /// (GET) or body (POST), its head not counted; in WebSocket the payload, its frame header
    /// not counted.
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

    /// Messages in flight per connection; above 1 needs line, http or ws framing, or an empty
    /// prefix.
    #[arg(long, value_name = "K", env = "SAYTHAT_LOAD_PIPELINE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PIPELINE)))]
    pub pipeline: u32,

    /// How the server cuts input into messages: every read (`chunk`), every line (`line`),
    /// HTTP/1.1 requests (`http`), each answered `200 OK` with the prefix and the message, or
    /// WebSocket messages (`ws`, after an upgrade per connection), each answered by a message of
    /// the same type with the prefix and the message.
    #[arg(
        long,
        value_enum,
        env = "SAYTHAT_LOAD_FRAMING",
        default_value = "chunk"
    )]
    pub framing: LoadFraming,

    /// With `--framing ws`: send text messages instead of binary ones.
    #[arg(long, env = "SAYTHAT_LOAD_WS_TEXT")]
    pub ws_text: bool,

    /// With `--framing http`: send each message as the path of a GET (`GET /MESSAGE`), or as
    /// the body of a POST.
    #[arg(long, value_enum, env = "SAYTHAT_LOAD_METHOD", default_value = "get")]
    pub method: HttpMethod,

    /// With `--framing http`: query text sent with every request, as `?STRING` after its path
    /// (e.g. `delay=10ms&status=503:10`, a test backend's controls). Visible ASCII without `#`
    /// (percent-encode the rest), at most 4096 bytes. Its controls are read as the server reads
    /// them (one it would refuse exits 2) and every answer is checked against them: a status
    /// among those asked, a body of a size asked, a JSON description of the request sent. Each
    /// status is counted in the report.
    #[arg(long, value_name = "STRING", env = "SAYTHAT_LOAD_QUERY", value_parser = parse_query)]
    pub query: Option<String>,

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

    /// Close each connection and open it again after every N messages (connection churn; with
    /// --tls, a full handshake each time: no session is resumed).
    #[arg(long, value_name = "N", env = "SAYTHAT_LOAD_RECONNECT",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconnect: Option<u64>,

    /// Seconds to wait for a connect or a complete answer; past it, it counts as an error
    /// (connect failure or timeout) and the connection is opened again (0.001 to a day). Also the
    /// longest wait, at the end of the run, for the answers still due.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_LOAD_TIMEOUT", default_value_t = 5.0,
          value_parser = parse_timeout)]
    pub timeout: f64,

    /// TLS (`--tls` and the flags beside it, read from no variable): every framing runs over
    /// it unchanged, ws as wss; the report adds the handshakes, per second and their latency.
    #[command(flatten)]
    pub tls: crate::tls_client::TlsArgs,
}

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

pub(super) fn duration_secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, 0.0, true)
}

pub(super) fn warmup_secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, 0.0, false)
}

pub(super) fn timeout_secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, MIN_TIMEOUT_SECS, false)
}

pub(super) fn check_rate(rate: f64) -> Result<f64, String> {
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

/// Checks `--query` is query text that fits a request line as it is: visible ASCII, no `#`
/// (it would end the query), not empty, at most `MAX_QUERY` bytes. A leading `?` is refused
/// rather than sent twice.
pub(super) fn check_query(query: &str) -> Result<(), String> {
    if query.is_empty() {
        return Err("it is empty: leave --query out to send no query".to_string());
    }
    if query.len() > MAX_QUERY {
        return Err(format!(
            "it is {} bytes and at most {MAX_QUERY} are sent",
            query.len()
        ));
    }
    if query.starts_with('?') {
        return Err("give the text after the `?`: it is added before the query".to_string());
    }
    let bad = query
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_graphic() || c == '#');
    match bad {
        Some((at, c)) => {
            let what = match c {
                ' ' => "a space".to_string(),
                '#' => "`#`".to_string(),
                c => format!("{c:?}"),
            };
            Err(format!(
                "{what} at byte {at} cannot be sent in a query (no space, control character, `#` \
                 or non-ASCII): percent-encode it, e.g. %20 for a space, %23 for `#`"
            ))
        }
        None => Ok(()),
    }
}

fn parse_query(s: &str) -> Result<String, String> {
    check_query(s).map(|()| s.to_string())
}
