//! The server as a user and a test see it: bind the `--listen` addresses, start `--workers`
//! event loops on them, stop them with a [`ServerHandle`] or a signal, and sum up what they did.
//!
//! Workers share only their group (the stop request and the open-connection count): each has
//! its own poll, slab and listening sockets (bound with `SO_REUSEPORT`, so the kernel spreads
//! connections). Nothing here may sit on the per-message path.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Poll, Waker};

use crate::admin::Endpoint;
use crate::agent::Agent;
use crate::config::{
    Config, FramingKind, LISTEN_BACKLOG, MAX_ADMIN_CONNS, MAX_AGENT_CONNS, MAX_LISTENERS,
    RESERVED_FDS,
};
use crate::event_loop::{Listener, SideLoop, Worker, WAKER};
use crate::framing::http::Backend;
use crate::framing::{Chunk, Http, Line, Protocol};
use crate::group::{Group, ServerHandle};
use crate::metrics::{Counters, Summary};
use crate::systemd::{DrainNotices, Notifier};
use crate::transport::Tls;

mod http;

use http::{admin_limits, backend, check_controls, http_limits};

/// A listen address that could not be bound, with the cause and what to do about it.
#[derive(Debug)]
pub struct ListenError {
    pub addr: SocketAddr,
    pub source: io::Error,
    /// The flag that gave the address: `--listen`, `--metrics-listen` or `--agent-listen`.
    pub flag: &'static str,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = self.flag;
        let hint = match self.source.kind() {
            io::ErrorKind::AddrInUse => {
                &format!("address already in use (is another server running? choose another address with {flag})")
            }
            io::ErrorKind::PermissionDenied => {
                &format!("permission denied (ports below 1024 need privileges; choose a port above 1024 with {flag})")
            }
            io::ErrorKind::AddrNotAvailable => {
                "address not available (it is not an address of this machine; try 127.0.0.1 or [::1])"
            }
            _ => "",
        };
        if hint.is_empty() {
            write!(
                f,
                "cannot listen on {}: {} (check the address given to {flag})",
                self.addr,
                crate::describe(&self.source)
            )
        } else {
            write!(f, "cannot listen on {}: {hint}", self.addr)
        }
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// One event loop, ready to run on a thread; it knows its protocol, the server does not.
trait Runner: Send {
    fn watch_signals(&mut self) -> io::Result<()>;
    fn notify_systemd(&mut self, notices: DrainNotices);
    fn run(self: Box<Self>) -> io::Result<Counters>;
}

impl<P: Protocol + Send> Runner for Worker<P>
where
    P::Session: Send,
{
    fn watch_signals(&mut self) -> io::Result<()> {
        Worker::watch_signals(self)
    }

    fn notify_systemd(&mut self, notices: DrainNotices) {
        Worker::notify_systemd(self, notices)
    }

    fn run(self: Box<Self>) -> io::Result<Counters> {
        Worker::run(*self)
    }
}

fn runner<P: Protocol + Send + 'static>(worker: Worker<P>) -> Box<dyn Runner>
where
    P::Session: Send,
{
    Box::new(worker)
}

/// A bound, not yet running server: one or more workers on the same addresses.
pub struct Server {
    workers: Vec<Box<dyn Runner>>,
    addrs: Vec<SocketAddr>,
    /// The `--metrics-listen` addresses bound (port 0 resolved), served by the first worker.
    metrics_addrs: Vec<SocketAddr>,
    /// The `--agent-listen` addresses bound (port 0 resolved), served by the first worker.
    agent_addrs: Vec<SocketAddr>,
    handle: ServerHandle,
    /// Told `READY=1` once every loop runs, when saythat runs under systemd.
    notifier: Option<Notifier>,
}

/// What becomes one worker: its poll, its echo listeners, and for the first the admin
/// endpoint's (`--metrics-listen`) and the agent check's (`--agent-listen`) listeners.
struct Bound {
    poll: Poll,
    listeners: Vec<Listener>,
    admin: Vec<Listener>,
    agent: Vec<Listener>,
    /// The TLS servers every worker shares (`--tls-cert`, `--metrics-tls`).
    tls: Tls,
}

impl Server {
    /// Binds every `--listen` address (once per worker) and raises the file-descriptor limit.
    /// Nothing is accepted until [`Server::run`].
    pub fn bind(config: &Config) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        if config.listen.is_empty() || config.listen.len() > MAX_LISTENERS {
            return Err(format!("give between 1 and {MAX_LISTENERS} --listen addresses").into());
        }
        let count = config.workers.max(1) as usize;
        // One socket per worker needs SO_REUSEPORT; --reuse-port also lets another process join.
        let shared = count > 1 || config.reuse_port;
        let mut addrs = config.listen.clone();
        let mut sets = Vec::with_capacity(count);
        for _ in 0..count {
            let mut listeners = Vec::with_capacity(addrs.len());
            for addr in addrs.iter_mut() {
                let socket = listen(*addr, shared).map_err(|source| ListenError {
                    addr: *addr,
                    source,
                    flag: "--listen",
                })?;
                // Port 0 is resolved by the first worker; the others join the port it got.
                *addr = socket.local_addr()?;
                listeners.push(Listener::new(socket, *addr));
            }
            sets.push(listeners);
        }
        Server::start(config, sets, addrs)
    }

    /// Serves on listening sockets made elsewhere (the service manager's, a test's) instead of
    /// binding `--listen`: every worker serves every socket, each through its own duplicate
    /// (with `--workers N`, a new connection wakes every loop and one accept wins). Stopping
    /// closes only those duplicates and the sockets given: a copy kept elsewhere (systemd's)
    /// still listens, and holds the clients that connect in the meantime for the next process.
    pub fn with_listeners(
        config: &Config,
        sockets: Vec<std::net::TcpListener>,
    ) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        if sockets.is_empty() || sockets.len() > MAX_LISTENERS {
            return Err(format!("give between 1 and {MAX_LISTENERS} listening sockets").into());
        }
        let count = config.workers.max(1) as usize;
        let mut addrs = Vec::with_capacity(sockets.len());
        for socket in &sockets {
            socket.set_nonblocking(true)?;
            addrs.push(socket.local_addr()?);
        }
        let mut sets = Vec::with_capacity(count);
        for _ in 1..count {
            let mut listeners = Vec::with_capacity(sockets.len());
            for (socket, &addr) in sockets.iter().zip(&addrs) {
                let copy = socket
                    .try_clone()
                    .map_err(|e| format!("cannot duplicate the socket of {addr}: {e}"))?;
                listeners.push(Listener::new(TcpListener::from_std(copy), addr));
            }
            sets.push(listeners);
        }
        // The first worker serves the sockets themselves, so one worker uses no duplicate.
        let originals = sockets.into_iter().zip(&addrs);
        let originals =
            originals.map(|(socket, &addr)| Listener::new(TcpListener::from_std(socket), addr));
        sets.insert(0, originals.collect());
        Server::start(config, sets, addrs)
    }

    /// Starts a worker on each set of listeners (one set per worker, the same addresses).
    fn start(
        config: &Config,
        sets: Vec<Vec<Listener>>,
        addrs: Vec<SocketAddr>,
    ) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        if config.metrics_listen.len() > MAX_LISTENERS {
            return Err(format!("give at most {MAX_LISTENERS} --metrics-listen addresses").into());
        }
        if config.agent_listen.len() > MAX_LISTENERS {
            return Err(format!("give at most {MAX_LISTENERS} --agent-listen addresses").into());
        }
        check_controls(config)?;
        let tls = Tls::from_config(config)?;
        let count = sets.len();
        let max_conns = connection_limit(config.max_conns);
        let mut bound = Vec::with_capacity(count);
        for listeners in sets {
            let poll = Poll::new().map_err(event_loop_error)?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(event_loop_error)?;
            bound.push((
                Bound {
                    poll,
                    listeners,
                    admin: Vec::new(),
                    agent: Vec::new(),
                    tls: tls.clone(),
                },
                waker,
            ));
        }
        // The admin endpoint and the agent check are served by the first worker only, on
        // sockets of their own.
        bound[0].0.admin = side_listeners(&config.metrics_listen, "--metrics-listen")?;
        bound[0].0.agent = side_listeners(&config.agent_listen, "--agent-listen")?;
        let metrics_addrs = bound[0].0.admin.iter().map(|l| l.addr).collect();
        let agent_addrs = bound[0].0.agent.iter().map(|l| l.addr).collect();
        let (rest, wakers): (Vec<_>, Vec<_>) = bound.into_iter().unzip();
        let group = Arc::new(Group::new(wakers, max_conns).with_drain_delay(config.drain_delay()));
        let mut workers = Vec::with_capacity(count);
        // One value for every loop: its budget for held answers is the process's.
        let http_limits = http_limits(config);
        for (index, bound) in rest.into_iter().enumerate() {
            let prefix = config.prefix.as_bytes();
            let publish = !config.metrics_listen.is_empty();
            let worker = match config.framing {
                FramingKind::Chunk => {
                    worker(config, bound, &group, Chunk::new(prefix), index, publish)
                }
                FramingKind::Line => worker(
                    config,
                    bound,
                    &group,
                    Line::new(prefix, config.max_line as usize),
                    index,
                    publish,
                ),
                FramingKind::Http => worker(
                    config,
                    bound,
                    &group,
                    Http::new(prefix, http_limits.clone()).with_backend(backend(config, index)?),
                    index,
                    publish,
                ),
            };
            workers.push(worker.map_err(event_loop_error)?);
        }
        Ok(Server {
            workers,
            addrs,
            metrics_addrs,
            agent_addrs,
            handle: ServerHandle { group },
            notifier: None,
        })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The `--metrics-listen` addresses actually bound (port 0 resolved); empty when off.
    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.metrics_addrs.clone()
    }

    /// The `--agent-listen` addresses actually bound (port 0 resolved); empty when off.
    pub fn agent_addrs(&self) -> Vec<SocketAddr> {
        self.agent_addrs.clone()
    }

    /// The connection limit in force, over all workers.
    pub fn max_conns(&self) -> usize {
        self.handle.group.max_conns()
    }

    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Makes SIGINT, SIGTERM and SIGQUIT stop the server: the first drains (after the lame duck
    /// of `--drain-delay`), the second aborts (the same one again within 100 ms is taken as a
    /// duplicate and ignored); SIGHUP, SIGUSR1 and SIGUSR2 are logged and the server serves on.
    /// The first worker watches them until every worker has ended, so a second signal is
    /// honoured whichever worker is still draining.
    pub fn watch_signals(&mut self) -> io::Result<()> {
        self.workers[0].watch_signals()
    }

    /// Tells systemd (`$NOTIFY_SOCKET`) `READY=1` once every worker runs, `STOPPING=1` at the
    /// first signal, and extends its stop timeout while the drain goes on.
    pub fn notify_systemd(&mut self, notifier: Notifier) {
        self.workers[0].notify_systemd(DrainNotices::new(notifier.clone()));
        self.notifier = Some(notifier);
    }

    /// Serves until stopped by a [`ServerHandle`] or a signal and every connection is done; with
    /// several workers, each runs on its own thread and this returns when all have finished.
    pub fn run(mut self) -> io::Result<Summary> {
        let first = self.workers.remove(0);
        let mut threads = Vec::with_capacity(self.workers.len());
        for (i, worker) in self.workers.into_iter().enumerate() {
            let spawned = thread::Builder::new()
                .name(format!("saythat-loop-{}", i + 1))
                .spawn(move || worker.run());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // The workers already running must not be left serving on their own.
                    self.handle.abort();
                    return Err(io::Error::other(format!(
                        "cannot start a worker thread: {e}"
                    )));
                }
            }
        }
        // Logged once every worker is up, so whoever waits for this line finds them all running.
        for addr in &self.addrs {
            info!("listening on {addr}");
        }
        for addr in &self.metrics_addrs {
            info!("metrics on http://{addr}/metrics");
        }
        for addr in &self.agent_addrs {
            info!("agent check on {addr}");
        }
        if let Some(notifier) = &self.notifier {
            notifier.ready(&self.addrs);
        }
        if !threads.is_empty() {
            info!(
                "{} workers, {} connections at most",
                threads.len() + 1,
                self.handle.group.max_conns()
            );
        }
        let mut summary = Summary::default();
        let mut failure = None;
        let results = std::iter::once(first.run()).chain(threads.into_iter().map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")))
        }));
        for (i, result) in results.enumerate() {
            match result {
                Ok(counters) => {
                    debug!("worker {i}: {counters:?}");
                    summary.add(&counters);
                }
                Err(e) => {
                    // A failed loop has stopped the others already; a panicked one is only seen here.
                    self.handle.abort();
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        summary.peak_connections = self.handle.group.peak();
        let s = &summary;
        info!(
            "shut down: served {} connection(s) (peak {} at once, {} refused as full, {} closed idle, \
             {} closed between messages by the drain, {} cut at shutdown); {} bytes in, {} bytes out",
            s.accepted, s.peak_connections, s.rejected_full, s.closed_idle, s.closed_at_drain, s.cut_at_shutdown, s.bytes_in, s.bytes_out
        );
        Ok(summary)
    }
}

/// Worker `index`, serving `protocol` on its listeners. The first keeps the lame duck's end
/// and drives the admin endpoint's and the agent check's loops, if any (each on its own poll,
/// watched by this worker's, so the echo's message path never meets them); every worker
/// publishes its counters when `publish`.
fn worker<P>(
    config: &Config,
    bound: Bound,
    group: &Arc<Group>,
    protocol: P,
    index: usize,
    publish: bool,
) -> io::Result<Box<dyn Runner>>
where
    P: Protocol + Send + 'static,
    P::Session: Send,
{
    let Bound {
        poll,
        listeners,
        admin,
        agent,
        tls,
    } = bound;
    let mut worker = Worker::new(config, poll, listeners, group.clone(), protocol)?;
    worker.serve_tls(tls.echo.clone());
    if index == 0 {
        worker.keep_lame_duck();
        for server in tls.echo.iter().chain(&tls.metrics) {
            worker.reload_on_hup(server.clone());
        }
    }
    if publish {
        worker.publish_as(index);
    }
    if !admin.is_empty() {
        let endpoint = Endpoint::new(group.clone(), config.framing);
        let mut admin = Worker::new(
            config,
            Poll::new()?,
            admin,
            Arc::new(Group::admin(MAX_ADMIN_CONNS)),
            // Not a test backend: its requests ask for nothing.
            Http::with_route(b"", admin_limits(config), endpoint).with_backend(Backend {
                enabled: false,
                ..Backend::default()
            }),
        )?;
        admin.serve_tls(tls.metrics.clone());
        worker.drive_side(Box::new(SideLoop::new(admin)))?;
    }
    if !agent.is_empty() {
        let agent = Worker::new(
            config,
            Poll::new()?,
            agent,
            Arc::new(Group::agent(MAX_AGENT_CONNS)),
            Agent::new(group.clone()),
        )?;
        worker.drive_side(Box::new(SideLoop::new(agent)))?;
    }
    Ok(runner(worker))
}

/// The first worker's listeners for a side loop, bound from the addresses of `flag`.
fn side_listeners(addrs: &[SocketAddr], flag: &'static str) -> Result<Vec<Listener>, ListenError> {
    addrs
        .iter()
        .map(|&addr| {
            let error = |source| ListenError { addr, source, flag };
            let socket = listen(addr, false).map_err(error)?;
            let addr = socket.local_addr().map_err(error)?;
            Ok(Listener::new(socket, addr))
        })
        .collect()
}

fn event_loop_error(e: io::Error) -> String {
    format!(
        "cannot create the event loop (epoll): {}",
        crate::describe(&e)
    )
}

/// A non-blocking listening socket with our backlog; IPv6 sockets take IPv6 only, so
/// `[::]:8080` and `0.0.0.0:8080` can both be given. `shared` sockets (one per worker, or
/// `--reuse-port`) use `SO_REUSEPORT`, and the kernel spreads new connections among them.
pub(crate) fn listen(addr: SocketAddr, shared: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Lets a restarted server bind while old connections sit in TIME_WAIT; a running server
    // still holds the address, so a second one fails with AddrInUse as it should.
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    // Urgent (out-of-band) bytes stay in the stream and are answered like any other byte, so
    // nothing a client sends is lost; accepted sockets inherit this.
    socket.set_out_of_band_inline(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Raises the soft file-descriptor limit to the hard one, as redis does, and derives the
/// connection limit from it unless `--max-conns` was given.
fn connection_limit(requested: Option<u32>) -> usize {
    let fds = rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|e| {
        warn!("cannot read or raise the file-descriptor limit: {e}; assuming 1024");
        1024
    });
    let allowed = fds.saturating_sub(RESERVED_FDS).max(1);
    match requested {
        None => allowed as usize,
        Some(n) => {
            if u64::from(n) > allowed {
                warn!(
                    "--max-conns {n} is above what the file-descriptor limit ({fds}) allows; past \
                     about {allowed} connections new ones wait in the backlog (raise `ulimit -n`)"
                );
            }
            n as usize
        }
    }
}
