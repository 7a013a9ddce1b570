//! Every limit and default of `saythat serve`, named and documented in one place.
//!
//! The same struct is the `serve` command line (each flag also read from a `SAYTHAT_*`
//! environment variable) and the library's configuration, so tests, benches and the binary can
//! never disagree about a default. It only describes; it must never open a socket.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// The lesson's port and address: loopback only, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The lesson's answer prefix.
pub const DEFAULT_PREFIX: &str = "You say that ";
/// The largest chunk answered in chunk framing: the lesson's `recv(1024)`.
pub const READ_SIZE: usize = 1024;
/// The most one read syscall takes. The loop shares one buffer of this size, so it costs nothing
/// per connection. It is larger than a chunk so that one read takes everything a client has sent
/// (a 1024-byte message, 16 pipelined lines): then a short read proves the socket drained, and no
/// second read is paid for WouldBlock.
pub const MAX_READ: usize = 16 * 1024;
/// Bytes read from one connection in one turn of the loop before the others get theirs.
pub const READ_BUDGET: usize = 32 * 1024;
/// Connections accepted from one listener in one turn of the loop, so a connection storm cannot
/// starve the connections already open.
pub const ACCEPT_BUDGET: usize = 256;
/// File descriptors kept out of the connection limit: listeners, each loop's epoll and alarm
/// (a timerfd), the signal pipe, logging.
pub const RESERVED_FDS: u64 = 64;
/// How long accepting pauses after the process ran out of file descriptors, unless a connection
/// closes first and frees one.
pub const FD_EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);
/// After the framing ends a connection with an error line (line too long), the server shuts down
/// its write side and drains what the client still sends for this long, so the client reads the
/// error line instead of a reset.
pub const LINGER: Duration = Duration::from_secs(2);
/// The longest `--prefix`: the answers to one read are bounded by its size times the prefix length.
pub const MAX_PREFIX: usize = 4096;
/// `--drain-quiet`'s default, in milliseconds. During the drain, a connection idle at a message
/// boundary (nothing of a message held, no answer waiting, nothing unread) is closed once it has
/// been quiet this long: longer than a round trip on most paths (intercontinental ones take 150
/// to 250 ms), so that a request-response client which has just read its answer has sent the
/// next message, which then gets its answer rather than our FIN; short enough that idle clients
/// are gone long before `--shutdown-timeout`. A client silent longer than this between two
/// messages may see the end of the stream instead of an answer, as it would from any server that
/// closes idle connections.
pub const DEFAULT_DRAIN_QUIET_MS: u64 = 250;
/// The longest `--drain-quiet`: a minute, beyond which the shutdown timeout decides anyway.
pub const MAX_DRAIN_QUIET_MS: u64 = 60_000;
/// Connections the admin endpoint (`--metrics-listen`) serves at once: a Prometheus server or
/// two, a load balancer's health checks, a person with curl. More are refused at accept, so a
/// flood of them cannot take the descriptors the echo connections need; they fit in
/// `RESERVED_FDS`' margin.
pub const MAX_ADMIN_CONNS: usize = 32;
/// Connections the agent check (`--agent-listen`) serves at once: HAProxy opens one per server
/// line per check, and each lasts a line. More are refused at accept, within `RESERVED_FDS`.
pub const MAX_AGENT_CONNS: usize = 16;
/// How long a connection to the admin endpoint or the agent check may stay silent, from accept
/// and between requests, before it is closed: health checkers and Prometheus send their request
/// at once after connecting and reconnect for the next one if they must, so anything silent this
/// long holds a slot a health check needs. Short because these ports have few slots; when they
/// are all taken anyway, the oldest idle connection is closed to admit a new one.
pub const SIDE_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The admin endpoint's `--header-timeout`, if that is longer: a request head trickled in holds
/// one of its few slots at most this long (answered 408).
pub const SIDE_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes the admin endpoint and the agent check read in one of their turns, all connections
/// together (about 50 pipelined `HEAD /metrics`, four of a Prometheus server's requests): their
/// turns run on the first echo loop's thread, so this bounds what their clients can cost that
/// loop's turn. What is left waits for the next turn on the side loop's own ready list.
pub const SIDE_TURN_BUDGET: usize = 1024;
/// The side loops take at most one turn per this: their polls may have events every turn of
/// the loop that drives them (a client pipelining requests), and each of their turns costs a
/// poll, a read and a write whatever it carries. A health check or scrape waits at most about
/// this (epoll's whole milliseconds make it up to twice this when the echo is idle).
pub const SIDE_TURN_INTERVAL: Duration = Duration::from_millis(1);
/// After a turn that took `d`, the side loops rest at least `SIDE_REST × d` before the next: so
/// whatever their turns cost (a fresh scrape with 10,000 connections open, answers of several
/// KiB), they take at most 1 / (1 + `SIDE_REST`) of the driving loop's thread, 5%.
pub const SIDE_REST: u32 = 19;
/// Connections a side loop accepts from one listener in one of its turns: a few, so a storm of
/// connections to the metrics or agent port costs the echo a few accepts (and evictions) per
/// `SIDE_TURN_INTERVAL`, not `ACCEPT_BUDGET` of them.
pub const SIDE_ACCEPT_BUDGET: usize = 4;
/// Answer bytes that may wait per side-loop connection (under `--max-pending`, if smaller): a
/// few scrapes (about 3 KiB each). A client that pipelines `GET /metrics` and reads slowly is
/// read no further past it, so a side turn writes at most this, plus one answer, per connection,
/// and their memory is bounded by their slots, not by `--max-pending`.
pub const SIDE_MAX_PENDING: usize = 16 * 1024;
/// How long the admin endpoint reuses the text of its last scrape: scrapes within this of one
/// another get the same text, so a client that scrapes as fast as it can costs one encoding a
/// second, not one per request. Prometheus scrapes every 15 s or more.
pub const SCRAPE_CACHE: Duration = Duration::from_secs(1);
/// At most this many listeners per loop (`--listen`, the sockets systemd passes, or
/// `--metrics-listen` and `--agent-listen` for the side loops'), so listener tokens never meet
/// slab keys.
pub const MAX_LISTENERS: usize = 64;
/// Backlog handed to `listen(2)`; the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

// The upper bounds of the flags. A value past one is a usage error (exit 2) naming the range, so
// a typo cannot panic the server later (`Instant + Duration` overflowed with u64::MAX seconds) or
// let one client take the machine's memory.

/// The largest `--max-line`: 1 MiB. An unterminated line is held in memory up to `max_line` bytes
/// per connection, so the worst case is `max_conns × max_line`; a longer line is not the kind of
/// message this protocol is for.
pub const MAX_LINE_LIMIT: u32 = 1024 * 1024;
/// The largest `--max-pending`: 1 GiB, 16,384 times the default. Unread answers cost up to this
/// per connection, so the worst case is `max_conns × max_pending`; the u32's 4 GiB would let one
/// client that never reads take a machine. The floor stays 1: the loop honours any cap (it reads
/// at least a byte and overshoots by at most one answer), so a tiny one costs only throughput.
pub const MAX_PENDING_LIMIT: u32 = 1024 * 1024 * 1024;
/// The largest `--max-conns`: 16 Mi. No process holds that many descriptors (Linux's default
/// `fs.nr_open` is 1 Mi, and each socket costs the kernel kilobytes), so more is a typo; a value
/// above the descriptor limit is allowed, and warned about at start.
pub const MAX_CONNS_LIMIT: u32 = 16 * 1024 * 1024;
/// The most `--workers`: each is a thread, an epoll instance and a listening socket per address,
/// and more than one per core does not help.
pub const MAX_WORKERS: u32 = 1024;
/// The longest `--idle-timeout`: one week. Each connection's deadline is now plus this, which
/// must not overflow; a connection silent for a week is dead in every useful sense, and 0 keeps
/// idle connections forever.
pub const MAX_IDLE_TIMEOUT_SECS: u64 = 7 * 24 * 60 * 60;
/// The longest `--shutdown-timeout`: one hour. The drain's deadline is the signal's time plus
/// this, which must not overflow; supervisors give up long before (systemd's default
/// `TimeoutStopSec` is 90 s).
pub const MAX_SHUTDOWN_TIMEOUT_SECS: u64 = 60 * 60;

/// The longest `--drain-delay`: one hour, like `--shutdown-timeout`. The lame duck's end is the
/// signal's time plus this, which must not overflow; a balancer that needs longer than an hour to
/// notice a server going away is misconfigured.
pub const MAX_DRAIN_DELAY_SECS: u64 = 60 * 60;

/// The largest `--max-header`: 1 MiB. A head that has not completed is held per connection, so
/// the worst case is `max_conns × max_header`; real clients send a few hundred bytes.
pub const MAX_HEADER_LIMIT: u32 = 1024 * 1024;
/// The largest `--max-body`: 1 TiB. A body's answer is held until the body is complete, so
/// memory is bounded by `--max-held` for the process, not by this.
pub const MAX_BODY_LIMIT: u64 = 1 << 40;
/// The longest `--header-timeout`: one hour, so its deadline cannot overflow.
pub const MAX_HEADER_TIMEOUT_SECS: u64 = 60 * 60;
/// The longest `--body-timeout`: one hour, like `--header-timeout`.
pub const MAX_BODY_TIMEOUT_SECS: u64 = 60 * 60;
/// The default `--max-held`: 256 MiB, room for 256 answers to bodies of the default
/// `--max-body` (1 MiB) at once, a fraction of any server's memory; a proxy that buffers
/// uploads sends them whole, so only concurrent uploads count, not open connections.
pub const DEFAULT_MAX_HELD: u64 = 256 * 1024 * 1024;
/// The largest `--max-held`: 1 TiB, like `--max-body`; it bounds memory, so larger is a typo.
pub const MAX_HELD_LIMIT: u64 = 1 << 40;
/// `--max-message`'s default, 16 MiB (the framing's own default is the same).
pub const DEFAULT_MAX_MESSAGE: u64 = 16 * 1024 * 1024;

/// The longest `--ws-ping`: one hour, like `--header-timeout`, so a ping's deadline cannot
/// overflow; proxies drop silent connections after tens of seconds, so a keep-alive is far
/// shorter than this.
pub const MAX_WS_PING_SECS: u64 = 60 * 60;

/// The default `--max-delay`: 10 s, the longest wait a request's `delay` (or `drip` interval)
/// may ask for. Each delayed answer holds its connection and a timer entry, no more, so the bound
/// is about what a test means (go-httpbin's is 10 s too), not about memory.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(10);
/// The longest `--max-delay`: one hour, like `--shutdown-timeout`, so a delay's deadline cannot
/// overflow.
pub const MAX_DELAY_LIMIT: Duration = Duration::from_secs(60 * 60);
/// The default `--max-size`: 1 MiB, the largest body a request's `size` may ask for. Bodies are
/// written from a static filler, so the bound is about bandwidth, not memory.
pub const DEFAULT_MAX_SIZE: u64 = 1024 * 1024;
/// The largest `--max-size`: 1 TiB, like `--max-body`.
pub const MAX_SIZE_LIMIT: u64 = 1 << 40;
/// The longest `--instance`: it is a header value on every answer, and a name, not a document.
pub const MAX_INSTANCE: usize = 255;
/// The longest `--http-defaults`: a query of controls, read once at start.
pub const MAX_HTTP_DEFAULTS: usize = 4096;
/// The longest `--handshake-timeout`: one hour, like `--header-timeout`, so its deadline cannot
/// overflow.
pub const MAX_HANDSHAKE_TIMEOUT_SECS: u64 = 60 * 60;
/// Most `--trust-proxy` nets: each forwarding hop is matched against every one.
pub const MAX_TRUSTED_NETS: usize = 64;

/// How the byte stream of a connection is cut into messages that each get an answer.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingKind {
    /// Every read of up to 1024 bytes is one message (the lesson's behaviour).
    Chunk,
    /// Every `\n`-terminated line is one message.
    Line,
    /// HTTP/1.1: every request is answered `200 OK` with the prefix and its body (or its path).
    Http,
}

/// Configuration of one `saythat serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct Config {
    /// Address to listen on; repeat for several (IPv4 or IPv6, e.g. `[::1]:8080`). Port 0 picks a
    /// free port. `0.0.0.0:8080` exposes the server to the network.
    #[arg(long = "listen", value_name = "ADDR", env = "SAYTHAT_LISTEN", value_delimiter = ',',
          default_value = DEFAULT_LISTEN)]
    pub listen: Vec<SocketAddr>,

    /// Serve Prometheus metrics (`GET /metrics`) and a health check (`GET /healthz`, 503 once a
    /// shutdown starts) over HTTP/1.1 on this address, whatever the framing; repeat for several.
    /// Off unless given. It has no authentication: keep it on loopback or a trusted network.
    #[arg(
        long = "metrics-listen",
        value_name = "ADDR",
        env = "SAYTHAT_METRICS_LISTEN",
        value_delimiter = ','
    )]
    pub metrics_listen: Vec<SocketAddr>,

    /// Answer HAProxy's agent check on this address: one line, `up ready` while serving and
    /// `drain` from the first SIGINT, SIGTERM or SIGQUIT on, then the connection closes. Repeat
    /// for several; off unless given.
    #[arg(
        long = "agent-listen",
        value_name = "ADDR",
        env = "SAYTHAT_AGENT_LISTEN",
        value_delimiter = ','
    )]
    pub agent_listen: Vec<SocketAddr>,

    /// Bytes put before every answer. Empty makes saythat a plain RFC 862 echo server.
    #[arg(long, value_name = "STR", env = "SAYTHAT_PREFIX", default_value = DEFAULT_PREFIX,
          value_parser = parse_prefix)]
    pub prefix: String,

    /// How input is cut into messages: every read (`chunk`), every `\n`-terminated line
    /// (`line`), or HTTP/1.1 requests (`http`).
    #[arg(long, value_enum, env = "SAYTHAT_FRAMING", default_value = "chunk")]
    pub framing: FramingKind,

    /// Longest line in line framing, in bytes (newline included), 1 to 1048576; a longer one gets
    /// an error line and the connection is closed.
    #[arg(long, value_name = "N", env = "SAYTHAT_MAX_LINE", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LINE_LIMIT)))]
    pub max_line: u32,

    /// HTTP: longest request head (request line and header fields), 64 to 1048576 bytes; longer
    /// is answered 431 (414 when the request line alone is).
    #[arg(long, value_name = "BYTES", env = "SAYTHAT_MAX_HEADER", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(64..=i64::from(MAX_HEADER_LIMIT)))]
    pub max_header: u32,

    /// HTTP: largest request body in bytes (like nginx's client_max_body_size), at most 1 TiB;
    /// larger is answered 413. A body's answer is held until the body is complete (see
    /// `--max-held`).
    #[arg(long, value_name = "BYTES", env = "SAYTHAT_MAX_BODY", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(0..=MAX_BODY_LIMIT))]
    pub max_body: u64,

    /// HTTP: seconds a request head has to complete (1 to 3600), from accept for a connection's
    /// first request (one that sends nothing too) and from its first byte for the next ones; a
    /// slower one is answered 408 and the connection closed.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=MAX_HEADER_TIMEOUT_SECS))]
    pub header_timeout: u64,

    /// HTTP: seconds a request body may go without a byte arriving (nginx's
    /// client_body_timeout), 0 (none) to 3600; a stalled body is answered 408 and the connection
    /// closed.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_BODY_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=MAX_BODY_TIMEOUT_SECS))]
    pub body_timeout: u64,

    /// HTTP: bytes of answers the process may hold while their request bodies arrive, 0 to 1 TiB
    /// (every loop shares it). A request whose answer does not fit in what is left is answered
    /// 503 with `Retry-After`.
    #[arg(long, value_name = "BYTES", env = "SAYTHAT_MAX_HELD", default_value_t = DEFAULT_MAX_HELD,
          value_parser = clap::value_parser!(u64).range(0..=MAX_HELD_LIMIT))]
    pub max_held: u64,

    /// HTTP, after a WebSocket upgrade: the largest message a client may send, 1 to 1 TiB bytes
    /// (prefix not counted); a larger one is refused with close code 1009. Messages are echoed
    /// as they arrive, never held whole, so this bounds no memory: it is a policy.
    #[arg(long, value_name = "BYTES", env = "SAYTHAT_MAX_MESSAGE", default_value_t = DEFAULT_MAX_MESSAGE,
          value_parser = clap::value_parser!(u64).range(1..=MAX_HELD_LIMIT))]
    pub max_message: u64,

    /// HTTP, after a WebSocket upgrade: ping a WebSocket that has been silent (nothing heard
    /// from the client) for this many seconds, 0 (off) to 3600; a client that then sends
    /// nothing at all, pong or other, within `--idle-timeout` is closed with close code 1001.
    /// Must be shorter than a nonzero `--idle-timeout`.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_WS_PING", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_WS_PING_SECS))]
    pub ws_ping: u64,

    /// Answer bytes a connection may have waiting to be written, 1 to 1073741824 (1 GiB); at this
    /// cap the server stops reading from it until half has drained, so a client that never reads
    /// costs at most this.
    #[arg(long, value_name = "BYTES", env = "SAYTHAT_MAX_PENDING", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PENDING_LIMIT)))]
    pub max_pending: u32,

    /// Most connections served at once, 1 to 16777216; one more is told `ERR server full` (in
    /// HTTP, `503`) and closed. Default: the file-descriptor limit (raised to its hard limit at
    /// start) less 64.
    #[arg(long, value_name = "N", env = "SAYTHAT_MAX_CONNS",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNS_LIMIT)))]
    pub max_conns: Option<u32>,

    /// Close connections that sent and received nothing for this many seconds (0: never), at most
    /// 604800 (a week).
    #[arg(long, value_name = "SECS", env = "SAYTHAT_IDLE_TIMEOUT", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=MAX_IDLE_TIMEOUT_SECS))]
    pub idle_timeout: u64,

    /// Independent event loops, 1 to 1024, each on its own thread with its own listening socket
    /// (`SO_REUSEPORT`): the kernel spreads connections among them. One per core at most helps.
    #[arg(long, value_name = "N", env = "SAYTHAT_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WORKERS)))]
    pub workers: u32,

    /// Set `SO_REUSEPORT` on the listening sockets even with one worker, so a new saythat can
    /// start on the same address before this one stops (a hand-over with no refused client).
    /// Every process sharing the port needs it, and must run as the same user.
    #[arg(long, env = "SAYTHAT_REUSE_PORT",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub reuse_port: bool,

    /// Once the drain starts (at SIGINT, SIGTERM or SIGQUIT, after `--drain-delay`), how many
    /// seconds open connections may finish before they are closed, at most 3600.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_SHUTDOWN_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=MAX_SHUTDOWN_TIMEOUT_SECS))]
    pub shutdown_timeout: u64,

    /// Lame duck: after the first SIGINT, SIGTERM or SIGQUIT, keep accepting and serving for this
    /// many seconds while health checks say draining (`/healthz` 503, agent `drain`), so a load
    /// balancer stops sending new clients before the listeners close; then drain as usual. At
    /// most 3600; 0 drains at once.
    #[arg(long, value_name = "SECS", env = "SAYTHAT_DRAIN_DELAY", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_DRAIN_DELAY_SECS))]
    pub drain_delay: u64,

    /// During the drain, close a connection once it has been quiet this many milliseconds
    /// between two messages (1 to 60000): longer than your clients' round trip plus think time,
    /// so a client between two requests sends its next one rather than meeting our FIN. Busy
    /// connections finish within `--shutdown-timeout` either way.
    #[arg(long, value_name = "MS", env = "SAYTHAT_DRAIN_QUIET",
          default_value_t = DEFAULT_DRAIN_QUIET_MS,
          value_parser = clap::value_parser!(u64).range(1..=MAX_DRAIN_QUIET_MS))]
    pub drain_quiet: u64,

    /// HTTP: name this server in every answer (`X-Served-By: NAME`) and in `format=json`, so a
    /// test behind a balancer sees which instance answered; `host` takes the machine's hostname.
    /// At most 255 visible characters. Off unless given: answers keep their size.
    #[arg(long, value_name = "NAME", env = "SAYTHAT_INSTANCE", value_parser = parse_instance)]
    pub instance: Option<String>,

    /// HTTP: controls applied to every request that carries none, as a query (e.g.
    /// `delay=10ms:90,1s:10&status=503:1`), so a backend is made slow or flaky without touching
    /// its clients. Checked at start against `--max-delay` and `--max-size`.
    #[arg(long = "http-defaults", value_name = "QUERY", env = "SAYTHAT_HTTP_DEFAULTS",
          value_parser = parse_http_defaults)]
    pub http_defaults: Option<String>,

    /// HTTP: the longest `delay` (and `drip` interval) a request may ask for, e.g. `10s`,
    /// `500ms`, at most 1h; past it a request is answered 400 naming this flag.
    #[arg(long = "max-delay", value_name = "DUR", env = "SAYTHAT_MAX_DELAY", default_value = "10s",
          value_parser = parse_max_delay)]
    pub max_delay: Duration,

    /// HTTP: the largest body `size` a request may ask for, 0 to 1 TiB; past it a request is
    /// answered 400 naming this flag.
    #[arg(long = "max-size", value_name = "BYTES", env = "SAYTHAT_MAX_SIZE",
          default_value_t = DEFAULT_MAX_SIZE,
          value_parser = clap::value_parser!(u64).range(0..=MAX_SIZE_LIMIT))]
    pub max_size: u64,

    /// HTTP: turn every control off: the query and `X-Saythat-*` headers are ordinary text, and
    /// `--http-defaults` is not applied.
    #[arg(long = "no-controls", env = "SAYTHAT_NO_CONTROLS",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_controls: bool,

    /// HTTP: a proxy whose `Forwarded` / `X-Forwarded-For` names the client in `format=json`
    /// (an address, or a net such as `10.0.0.0/8`); repeat for several, at most 64. None by
    /// default: a forwarding header is never trusted unless its sender is.
    #[arg(long = "trust-proxy", value_name = "CIDR", env = "SAYTHAT_TRUST_PROXY",
          value_delimiter = ',', value_parser = parse_trust_proxy)]
    pub trust_proxy: Vec<IpNet>,

    /// Speak TLS (1.2 and 1.3) on every `--listen` address with this certificate: a PEM file,
    /// the server's certificate first, then its chain. Needs `--tls-key`. Reloaded at SIGHUP.
    #[arg(long = "tls-cert", value_name = "FILE", env = "SAYTHAT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    #[arg(long = "tls-key", value_name = "FILE", env = "SAYTHAT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: clients must present a certificate that chains to a CA in this PEM file;
    /// others are refused in the handshake. Reloaded at SIGHUP.
    #[arg(
        long = "tls-client-ca",
        value_name = "FILE",
        env = "SAYTHAT_TLS_CLIENT_CA"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// TLS: seconds a connection has, from accept, to complete its handshake (1 to 3600);
    /// a slower one is closed (`handshake_timeout`).
    #[arg(long = "handshake-timeout", value_name = "SECS", env = "SAYTHAT_HANDSHAKE_TIMEOUT",
          default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=MAX_HANDSHAKE_TIMEOUT_SECS))]
    pub handshake_timeout: u64,

    /// Serve `--metrics-listen` over TLS too, with `--tls-cert` (its clients are not asked for
    /// a certificate). Plain by default: a Prometheus scrape over loopback.
    #[arg(long = "metrics-tls", env = "SAYTHAT_METRICS_TLS",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub metrics_tls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is an address")],
            metrics_listen: Vec::new(),
            agent_listen: Vec::new(),
            prefix: DEFAULT_PREFIX.to_string(),
            framing: FramingKind::Chunk,
            max_line: 8192,
            max_header: 8192,
            max_body: 1024 * 1024,
            header_timeout: 10,
            body_timeout: 60,
            max_held: DEFAULT_MAX_HELD,
            max_message: DEFAULT_MAX_MESSAGE,
            ws_ping: 0,
            max_pending: 64 * 1024,
            max_conns: None,
            idle_timeout: 300,
            workers: 1,
            reuse_port: false,
            shutdown_timeout: 10,
            drain_delay: 0,
            drain_quiet: DEFAULT_DRAIN_QUIET_MS,
            instance: None,
            http_defaults: None,
            max_delay: DEFAULT_MAX_DELAY,
            max_size: DEFAULT_MAX_SIZE,
            no_controls: false,
            trust_proxy: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            handshake_timeout: 10,
            metrics_tls: false,
        }
    }
}

impl Config {
    /// A configuration listening on a free loopback port, as tests and benches want.
    pub fn loopback() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ..Config::default()
        }
    }

    /// `None` when idle connections are kept forever.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout))
    }

    /// `None` when WebSockets are not pinged.
    pub fn ws_ping(&self) -> Option<Duration> {
        (self.ws_ping > 0).then(|| Duration::from_secs(self.ws_ping))
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    pub fn drain_delay(&self) -> Duration {
        Duration::from_secs(self.drain_delay)
    }

    pub fn drain_quiet(&self) -> Duration {
        Duration::from_millis(self.drain_quiet)
    }
}

/// A flag whose value is checked when the server starts, because reading it takes a part of the
/// server that `config` must not import (`--http-defaults`, read by the HTTP framing): a usage
/// error all the same (exit 2), naming the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    pub flag: &'static str,
    pub message: String,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.message)
    }
}

impl std::error::Error for FlagError {}

/// Visible ASCII and spaces inside: what an HTTP header value and a JSON string both carry
/// without escaping or surprise.
fn printable(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b))
        && !text.starts_with(' ')
        && !text.ends_with(' ')
}

fn parse_instance(name: &str) -> Result<String, String> {
    let name = if name == "host" {
        hostname()?
    } else {
        name.to_string()
    };
    if name.is_empty() || name.len() > MAX_INSTANCE || !printable(&name) {
        return Err(format!(
            "{name:?} is not an instance name: use 1 to {MAX_INSTANCE} visible ASCII characters \
             (it is sent as a header), or host for the hostname"
        ));
    }
    Ok(name)
}

/// The machine's hostname, as the kernel has it.
fn hostname() -> Result<String, String> {
    let path = "/proc/sys/kernel/hostname";
    std::fs::read_to_string(path)
        .map(|name| name.trim().to_string())
        .map_err(|e| {
            format!("cannot read the hostname from {path} ({e}); give a name instead of host")
        })
}

fn parse_http_defaults(query: &str) -> Result<String, String> {
    if query.len() > MAX_HTTP_DEFAULTS {
        return Err(format!(
            "the query is {} bytes; at most {MAX_HTTP_DEFAULTS} are allowed",
            query.len()
        ));
    }
    Ok(query.trim_start_matches('?').to_string())
}

fn parse_max_delay(text: &str) -> Result<Duration, String> {
    let delay = humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 10s, 500ms or 1m"))?;
    if delay > MAX_DELAY_LIMIT {
        return Err(format!("{text} is past the longest allowed, 1h"));
    }
    Ok(delay)
}

/// A net (`10.0.0.0/8`, `fd00::/8`) or one address (`127.0.0.1`, `::1`).
fn parse_trust_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a net: use e.g. 10.0.0.0/8 or ::1"))
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if s.len() > MAX_PREFIX {
        return Err(format!(
            "the prefix is {} bytes; at most {MAX_PREFIX} are allowed",
            s.len()
        ));
    }
    Ok(s.to_string())
}
