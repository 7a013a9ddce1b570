//! The server as a user and a test see it: bind the `--listen` addresses, start `--workers`
//! event loops on them, stop them with a [`ServerHandle`] or a signal, and sum up what they did.
//!
//! Workers share nothing but the shutdown request: each has its own poll, slab and listening
//! sockets (bound with `SO_REUSEPORT`, so the kernel spreads connections). Nothing here may sit
//! on the per-message path.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::Waker;

use crate::config::{Config, LISTEN_BACKLOG, RESERVED_FDS};
use crate::event_loop::{Listener, Worker, MAX_LISTENERS};

pub(crate) const RUNNING: u8 = 0;
const DRAIN: u8 = 1;
pub(crate) const ABORT: u8 = 2;

/// A listen address that could not be bound, with the cause and what to do about it.
#[derive(Debug)]
pub struct ListenError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.source.kind() {
            io::ErrorKind::AddrInUse => {
                "address already in use (is another server running? choose another address with --listen)"
            }
            io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges; choose a port above 1024 with --listen)"
            }
            io::ErrorKind::AddrNotAvailable => {
                "address not available (it is not an address of this machine; try 127.0.0.1 or [::1])"
            }
            _ => "",
        };
        if hint.is_empty() {
            write!(
                f,
                "cannot listen on {}: {} (check the address given to --listen)",
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

/// Stops a running server from another thread, without signals.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    wakers: Arc<[Waker]>,
    pub(crate) request: Arc<AtomicU8>,
}

impl ServerHandle {
    /// Like SIGTERM: stop accepting, let open connections finish until the shutdown timeout.
    pub fn shutdown(&self) {
        self.request.fetch_max(DRAIN, Ordering::SeqCst);
        self.wake();
    }

    /// Like a second signal: close every connection now.
    pub fn abort(&self) {
        self.request.fetch_max(ABORT, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        for waker in self.wakers.iter() {
            // A worker that already exited needs no waking.
            let _ = waker.wake();
        }
    }
}

/// What a server did, logged at exit and returned by [`Server::run`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub rejected_full: u64,
    pub closed_idle: u64,
    /// Connections still open when the shutdown timeout ran out (or at a second signal).
    pub cut_at_shutdown: u64,
    /// The most connections open at once (with several workers, the sum of each one's peak).
    pub peak_connections: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.accepted += other.accepted;
        self.rejected_full += other.rejected_full;
        self.closed_idle += other.closed_idle;
        self.cut_at_shutdown += other.cut_at_shutdown;
        self.peak_connections += other.peak_connections;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// A bound, not yet running server: one or more workers on the same addresses.
pub struct Server {
    workers: Vec<Worker>,
    addrs: Vec<SocketAddr>,
    max_conns: usize,
    handle: ServerHandle,
}

impl Server {
    /// Binds every `--listen` address (once per worker) and raises the file-descriptor limit.
    /// Nothing is accepted until [`Server::run`].
    pub fn bind(config: &Config) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        if config.listen.is_empty() || config.listen.len() > MAX_LISTENERS {
            return Err(format!("give between 1 and {MAX_LISTENERS} --listen addresses").into());
        }
        let count = config.workers.max(1) as usize;
        let shared = count > 1;
        let max_conns = connection_limit(config.max_conns);
        let mut addrs = config.listen.clone();
        let mut workers = Vec::with_capacity(count);
        let mut wakers = Vec::with_capacity(count);
        for index in 0..count {
            let mut listeners = Vec::with_capacity(addrs.len());
            for addr in addrs.iter_mut() {
                let socket = listen(*addr, shared).map_err(|source| ListenError {
                    addr: *addr,
                    source,
                })?;
                // Port 0 is resolved by the first worker; the others join the port it got.
                *addr = socket.local_addr()?;
                listeners.push(Listener {
                    socket,
                    addr: *addr,
                });
            }
            // Each worker takes its share of the limit, the first ones the remainder.
            let share = max_conns / count + usize::from(index < max_conns % count);
            let (worker, waker) =
                Worker::new(config, listeners, share.max(1), max_conns).map_err(|e| {
                    format!(
                        "cannot create the event loop (epoll): {}",
                        crate::describe(&e)
                    )
                })?;
            workers.push(worker);
            wakers.push(waker);
        }
        let handle = ServerHandle {
            wakers: wakers.into(),
            request: Arc::new(AtomicU8::new(RUNNING)),
        };
        for worker in &mut workers {
            worker.join_group(handle.clone());
        }
        Ok(Server {
            workers,
            addrs,
            max_conns,
            handle,
        })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The connection limit in force, over all workers.
    pub fn max_conns(&self) -> usize {
        self.max_conns
    }

    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Makes SIGINT and SIGTERM stop the server: the first drains, the second aborts.
    pub fn watch_signals(&mut self) -> io::Result<()> {
        self.workers[0].watch_signals()
    }

    /// Serves until stopped by a [`ServerHandle`] or a signal and every connection is done; with
    /// several workers, each runs on its own thread and this returns when all have finished.
    pub fn run(mut self) -> io::Result<Summary> {
        let first = self.workers.remove(0);
        let mut others = Vec::with_capacity(self.workers.len());
        for (i, worker) in self.workers.into_iter().enumerate() {
            let spawned = thread::Builder::new()
                .name(format!("saythat-worker-{}", i + 1))
                .spawn(move || worker.run());
            match spawned {
                Ok(thread) => others.push(thread),
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
        if !others.is_empty() {
            info!(
                "{} workers, {} connections at most",
                others.len() + 1,
                self.max_conns
            );
        }
        let mut summary = Summary::default();
        let mut failure = None;
        let results = std::iter::once(first.run()).chain(others.into_iter().map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")))
        }));
        for (i, result) in results.enumerate() {
            match result {
                Ok(part) => {
                    debug!("worker {i}: {part:?}");
                    summary.add(&part);
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
        let s = &summary;
        info!(
            "shut down: served {} connection(s) (peak {} at once, {} refused as full, {} closed idle, \
             {} cut at shutdown); {} bytes in, {} bytes out",
            s.accepted, s.peak_connections, s.rejected_full, s.closed_idle, s.cut_at_shutdown, s.bytes_in, s.bytes_out
        );
        Ok(summary)
    }
}

/// A non-blocking listening socket with our backlog; IPv6 sockets take IPv6 only, so
/// `[::]:8080` and `0.0.0.0:8080` can both be given. `shared` sockets (one per worker) use
/// `SO_REUSEPORT`, and the kernel spreads new connections among them.
fn listen(addr: SocketAddr, shared: bool) -> io::Result<TcpListener> {
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
