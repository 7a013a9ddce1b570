//! saythat: the socket-programming lesson's prefixed-echo server, made a daemon.
//!
//! A map of the crate:
//! - [`config`]: every limit and default, named and documented in one place.
//! - [`framing`]: the protocol interface the loop drives, and the protocols (chunk, line echo);
//!   pure, no I/O.
//! - `connection`: one client's socket, bounded output, protocol session and state; decides its
//!   own poll interest.
//! - `event_loop`: the single-threaded mio readiness loop; knows no protocol. Its turn (`mod.rs`)
//!   composes rooms that keep their own state: `accept` (listeners, accept budget, EMFILE
//!   pause, refusing when full), `drive` (a connection's bytes: read → protocol → write, close,
//!   linger), `timers` (the lazy timer heap), `lifecycle` (signals, lame duck, drain, shutdown)
//!   and `side` (the admin endpoint's and agent check's loops, driven by the first loop).
//! - `group`: what the loops of one server share: the stop request ([`ServerHandle`]) and the
//!   open-connection count.
//! - [`metrics`]: what each loop counts, published once per turn, summed for a scrape and for
//!   the exit [`Summary`].
//! - `admin`: `--metrics-listen`, `/metrics` and `/healthz` on the first loop, through the HTTP
//!   framing's parser.
//! - `agent`: `--agent-listen`, HAProxy's agent check (`up ready` or `drain`) on the first loop.
//! - [`server`]: binds, runs `--workers` loops, watches signals, sums them up.
//! - [`systemd`]: socket activation (serve on the sockets systemd passes) and readiness
//!   notification (`READY=1`, `STOPPING=1`, `EXTEND_TIMEOUT_USEC`); no libsystemd.
//! - [`client`]: `saythat send`, a blocking client like the lesson's.
//! - [`load`]: `saythat load`, the load generator: its mio loop, latency histogram and report.
//! - [`ws_client`]: the client side of WebSocket both speak (`send --ws`, `load --framing ws`):
//!   the upgrade and its check, masked frame headers, the server's headers decoded; pure.
//! - [`tls_client`]: the client side of TLS both speak (`send --tls`, `load --tls`): the
//!   `--tls*` flags and the rustls `ClientConfig` they make; no I/O.
//!
//! Imports run one way: `server` → `event_loop` → `connection` / [`framing`] → [`config`] /
//! `group` / [`metrics`]. [`systemd`], `admin` and `agent` are used by `server` (and `systemd`
//! by `event_loop`) and import neither.

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
pub mod systemd;
pub mod tls_client;
pub mod transport;
pub mod ws_client;

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
