//! What HTTP mode is told at startup: its limits (`--max-header`, `--max-body`, the timeouts,
//! `--max-held`) and what its test-backend controls need (issue 17). Plain values, built by the
//! server from the flags (config must not import the framing); nothing here changes once a loop
//! runs.

use std::sync::Arc;
use std::time::Duration;

use super::budget::HeldBudget;
use super::control::{ControlLimits, Controls};

/// The limits of HTTP mode, from `--max-header`, `--max-body`, `--header-timeout`,
/// `--body-timeout` and `--max-held`.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Longest request head (request line and header fields).
    pub max_header: usize,
    /// Largest request body, by Content-Length or chunks.
    pub max_body: u64,
    /// Time a started head has to complete.
    pub header_timeout: Duration,
    /// Most time between two reads of a body (`None`: no limit).
    pub body_timeout: Option<Duration>,
    /// The budget for held answers, shared by every loop of the process.
    pub held: Arc<HeldBudget>,
    /// The largest WebSocket message a client may send after an upgrade (`--max-message`).
    pub max_message: u64,
    /// How long a WebSocket may be silent before it is pinged (`--ws-ping`; `None`: never).
    pub ws_ping: Option<Duration>,
}

impl HttpLimits {
    /// Limits with a budget of `max_held` bytes of its own and a 60 s body timeout, for tests
    /// and tools that drive one protocol.
    pub fn new(max_header: usize, max_body: u64, header_timeout: Duration) -> HttpLimits {
        HttpLimits {
            max_header,
            max_body,
            header_timeout,
            body_timeout: Some(Duration::from_secs(60)),
            held: Arc::new(HeldBudget::new(u64::MAX)),
            max_message: crate::framing::ws::DEFAULT_MAX_MESSAGE,
            ws_ping: None,
        }
    }
}

/// What the controls need beside a request: `--no-controls`, `--max-delay`, `--max-size`,
/// `--http-defaults`, `--instance`, `--trust-proxy`, and which loop this is.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Controls are read (`--no-controls` turns them off: a query is only query text).
    pub enabled: bool,
    pub limits: ControlLimits,
    /// The controls of a request that carries none (`--http-defaults`).
    pub defaults: Option<Controls>,
    /// The name every answer's `X-Served-By` gives, and a description's `instance`.
    pub instance: Option<String>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` a description believes (`--trust-proxy`).
    pub trusted: Vec<ipnet::IpNet>,
    /// This loop's index among the workers, for a description.
    pub worker: usize,
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            enabled: true,
            limits: ControlLimits::default(),
            defaults: None,
            instance: None,
            trusted: Vec::new(),
            worker: 0,
        }
    }
}
