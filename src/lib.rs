//! saythat: the socket-programming lesson's prefixed-echo server, made a daemon.
//!
//! A map of the crate:
//! - [`config`]: every limit and default, named and documented in one place.
//! - [`framing`]: the protocol interface the loop drives, and the protocols (chunk, line echo);
//!   pure, no I/O.
//! - `connection`: one client's socket, bounded output, protocol session and state; decides its
//!   own poll interest.
//! - `event_loop`: the single-threaded mio readiness loop; accepts, dispatches, knows no protocol.
//! - `group`: what the loops of one server share: the stop request ([`ServerHandle`]) and the
//!   open-connection count.
//! - [`metrics`]: what each loop counts, published once per turn, summed for a scrape and for
//!   the exit [`Summary`].
//! - `admin`: `--metrics-listen`, `/metrics` and `/healthz` on the first loop, through the HTTP
//!   framing's parser.
//! - `agent`: `--agent-listen`, HAProxy's agent check (`up ready` or `drain`) on the first loop.
//! - [`server`]: binds, runs `--workers` loops, watches signals, sums them up.
//! - [`client`]: `saythat send`, a blocking client like the lesson's.
//! - [`load`]: `saythat load`, the load generator: its mio loop, latency histogram and report.

mod admin;
mod agent;
pub mod client;
pub mod config;
mod connection;
mod event_loop;
pub mod framing;
mod group;
pub mod load;
pub mod metrics;
pub mod server;

pub use config::{Config, FramingKind};
pub use group::ServerHandle;
pub use metrics::Summary;
pub use server::{ListenError, Server};

/// An I/O error as a short lowercase cause for our one-line messages ("connection refused"),
/// without the raw "(os error 111)" that tells a user nothing more.
pub fn describe(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(end) => &text[..end],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}
