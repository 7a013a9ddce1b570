//! The event loop: one thread, one `mio::Poll`, non-blocking listeners and a `Slab` of
//! connections keyed by their token, all edge-triggered.
//!
//! It accepts, reads into one buffer shared by every connection, hands the bytes to the [`Framer`] and
//! writes the answers; it never knows which framing is in use. It must never block, never
//! busy-loop (not even out of file descriptors), and never let one client starve the others or
//! grow memory without bound.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::config::{Config, ACCEPT_BUDGET, FD_EXHAUSTED_BACKOFF, LINGER, MAX_READ, READ_BUDGET};
use crate::connection::{Connection, Io, Phase};
use crate::framing::{Framer, Status};
use crate::server::{ServerHandle, Summary, ABORT, RUNNING};

/// Wakes the loop for a [`ServerHandle`] request. The special tokens live at the top of `usize`,
/// far above any slab key.
pub(crate) const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 2;

/// Which listener a token names, if any.
fn listener_index(token: Token) -> Option<usize> {
    let index = LISTENER_BASE.checked_sub(token.0)?;
    (index < MAX_LISTENERS).then_some(index)
}
/// At most this many `--listen` addresses, so listener tokens never meet slab keys.
pub const MAX_LISTENERS: usize = 64;
/// Events taken from one `epoll_wait`.
const EVENT_CAPACITY: usize = 1024;
/// Output buffers kept for reuse, so a connection that fills its socket now and then does not
/// allocate each time, while an idle server holds only a few.
const POOL_LIMIT: usize = 64;
/// Stale timer entries tolerated beyond twice the open connections before the heap is swept.
const TIMER_SLACK: usize = 1024;
/// At most one "server full" warning per this long; the others are counted into it.
const FULL_WARN_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Listener {
    pub socket: TcpListener,
    pub addr: SocketAddr,
}

/// One event loop with its own poll, listeners and connections; `--workers N` runs N of them,
/// sharing nothing but the shutdown request.
pub(crate) struct Worker {
    poll: Poll,
    listeners: Vec<Listener>,
    connections: Slab<Connection>,
    framer: Framer,
    max_pending: usize,
    /// This worker's share of `--max-conns`.
    max_conns: usize,
    /// The total, for the message a refused client reads.
    max_conns_total: usize,
    idle_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    /// Every worker's waker and the shared shutdown request.
    group: Option<ServerHandle>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// The one read buffer, shared by every connection: reads are answered before the next one.
    read_buf: Box<[u8]>,
    /// Answers to one connection's reads of this turn, written with one syscall.
    answers: Vec<u8>,
    pool: Vec<Vec<u8>>,
    /// Tokens whose readiness was not used up this turn (read budget, accept budget); they are
    /// served next turn without waiting, because edge-triggered epoll will not report them again.
    ready: VecDeque<Token>,
    /// (deadline, slab key, connection id): idle and linger deadlines, checked lazily. Activity
    /// only stamps `last_active`; the heap is touched when an entry comes due, so the timer costs
    /// nothing per message and O(log n) per connection per timeout period.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Slots of connections closed this turn, freed once the turn's events are all handled.
    dead: Vec<usize>,
    open: usize,
    next_id: u64,
    accept_paused_until: Option<Instant>,
    /// Accept failed for want of descriptors; warned once, cleared by the next successful accept.
    out_of_fds: bool,
    /// The time of this turn of the loop, read once after each poll.
    now: Instant,
    drain_deadline: Option<Instant>,
    last_full_warning: Option<Instant>,
    full_since_warning: u64,
    summary: Summary,
}

impl Worker {
    /// A worker serving `listeners`, already bound; returns it with its waker.
    pub(crate) fn new(
        config: &Config,
        listeners: Vec<Listener>,
        max_conns: usize,
        max_conns_total: usize,
    ) -> io::Result<(Worker, Waker)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let mut listeners = listeners;
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut listener.socket,
                Token(LISTENER_BASE - i),
                Interest::READABLE,
            )?;
        }
        let framer = Framer::new(
            config.framing,
            config.prefix.as_bytes(),
            config.max_line as usize,
        );
        let worker = Worker {
            read_buf: vec![0; MAX_READ].into(),
            poll,
            listeners,
            connections: Slab::new(),
            framer,
            max_pending: config.max_pending as usize,
            max_conns,
            max_conns_total,
            idle_timeout: config.idle_timeout(),
            shutdown_timeout: config.shutdown_timeout(),
            group: None,
            signals: None,
            answers: Vec::new(),
            pool: Vec::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            dead: Vec::new(),
            open: 0,
            next_id: 0,
            accept_paused_until: None,
            out_of_fds: false,
            now: Instant::now(),
            drain_deadline: None,
            last_full_warning: None,
            full_since_warning: 0,
            summary: Summary::default(),
        };
        Ok((worker, waker))
    }

    pub(crate) fn join_group(&mut self, group: ServerHandle) {
        self.group = Some(group);
    }

    /// Makes SIGINT and SIGTERM stop every worker: the first drains, the second aborts.
    pub(crate) fn watch_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    fn request(&self) -> u8 {
        self.group
            .as_ref()
            .map_or(RUNNING, |group| group.request.load(Ordering::SeqCst))
    }

    /// Serves until stopped by the group's [`ServerHandle`] and every connection is done.
    pub(crate) fn run(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The other workers stop too, so the process never half-serves.
                if let Some(group) = &self.group {
                    group.abort();
                }
                return Err(e);
            }
            self.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    SIGNALS => self.take_signals(),
                    token => match listener_index(token) {
                        Some(index) => self.accept(index),
                        None => self.on_event(token.0, event),
                    },
                }
            }
            self.serve_ready();
            let now = self.now;
            self.expire_timers(now);
            // After free_dead: only then are the closed sockets' descriptors free to accept into.
            self.free_dead();
            self.resume_accepting(now);
            if self.shutdown_step(now) {
                break;
            }
        }
        Ok(self.summary)
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        [timer, self.accept_paused_until, self.drain_deadline]
            .into_iter()
            .flatten()
            .min()
            // Rounded up: epoll counts whole milliseconds, and waking early would spin.
            .map(|at| at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn accept(&mut self, index: usize) {
        if self.accept_paused_until.is_some() || self.drain_deadline.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((socket, peer)) => self.admit(socket, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The backlog is empty: an out-of-descriptors episode is over only now, not
                    // at the first accept after a close, or churn at the limit would warn per close.
                    if self.out_of_fds {
                        self.out_of_fds = false;
                        info!("accepting connections again");
                    }
                    return;
                }
                Err(e) if is_transient_accept_error(&e) => debug!("accept: {e}"),
                Err(e) => {
                    // Out of file descriptors (EMFILE/ENFILE) or memory: the pending connection
                    // stays in the backlog and epoll would report it again at once, so stop
                    // accepting for a moment instead of spinning.
                    if !self.out_of_fds {
                        self.out_of_fds = true;
                        warn!(
                            "cannot accept on {}: {e}; pausing accepts until a connection closes \
                             (raise `ulimit -n` or lower --max-conns)",
                            listener.addr
                        );
                    }
                    self.accept_paused_until = Some(self.now + FD_EXHAUSTED_BACKOFF);
                    return;
                }
            }
        }
        self.ready.push_back(Token(LISTENER_BASE - index));
    }

    /// Retries accepting once the back-off has passed or a connection closed.
    fn resume_accepting(&mut self, now: Instant) {
        match self.accept_paused_until {
            Some(until) if now >= until => {
                self.accept_paused_until = None;
                (0..self.listeners.len()).for_each(|i| self.accept(i));
            }
            _ => {}
        }
    }

    fn admit(&mut self, mut socket: TcpStream, peer: SocketAddr) {
        if self.open >= self.max_conns {
            self.reject_full(socket);
            return;
        }
        let now = self.now;
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        // Answers are written as soon as they are ready; Nagle would hold pipelined ones back
        // for the peer's delayed ACK.
        let _ = socket.set_nodelay(true);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            warn!("cannot register the connection from {peer}: {e}; closing it");
            return;
        }
        debug!("connected with {peer}");
        let id = self.next_id;
        self.next_id += 1;
        let mut conn = Connection::new(socket, peer, id, now);
        if let Some(idle) = self.idle_timeout {
            conn.timer_at = Some(now + idle);
            self.timers.push(Reverse((now + idle, key, id)));
        }
        entry.insert(conn);
        self.open += 1;
        self.summary.accepted += 1;
        self.summary.peak_connections = self.summary.peak_connections.max(self.open);
    }

    /// Tells a connection past `--max-conns` why, and closes it.
    fn reject_full(&mut self, mut socket: TcpStream) {
        self.summary.rejected_full += 1;
        self.full_since_warning += 1;
        let now = self.now;
        if self
            .last_full_warning
            .is_none_or(|at| now.duration_since(at) >= FULL_WARN_EVERY)
        {
            warn!(
                "server full: refused {} connection(s) at the limit of {} (raise --max-conns)",
                self.full_since_warning, self.max_conns_total
            );
            self.last_full_warning = Some(now);
            self.full_since_warning = 0;
        }
        let line = format!(
            "ERR server full (max {} connections)\n",
            self.max_conns_total
        );
        let _ = socket.write(line.as_bytes());
        let _ = socket.shutdown(std::net::Shutdown::Write);
        // Whatever the client already sent is read away, so closing sends a FIN rather than a
        // reset that could destroy the line above before the client reads it.
        let mut budget = 16;
        while budget > 0 && matches!(socket.read(&mut self.read_buf[..]), Ok(n) if n > 0) {
            budget -= 1;
        }
    }

    fn on_event(&mut self, key: usize, event: &Event) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Dead {
            return;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            conn.unread = true;
        }
        if event.is_read_closed() {
            conn.peer_fin_seen = true;
        }
        self.drive(key);
    }

    /// Serves the tokens left over from last turn.
    fn serve_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            if let Some(index) = listener_index(token) {
                self.accept(index);
                continue;
            }
            // A connection closed since it was queued is skipped, and so is a newer one that
            // took its slot: that one was never queued.
            let key = token.0;
            if let Some(conn) = self.connections.get_mut(key) {
                if conn.queued && conn.phase != Phase::Dead {
                    conn.queued = false;
                    self.drive(key);
                }
            }
        }
    }

    /// Does everything a connection can do now: write what waits, read and answer within its
    /// budget, then bring its poll interest in line or close it.
    fn drive(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        let before = conn.bytes_out;
        if conn.flush(&mut self.pool, POOL_LIMIT) == Io::Gone {
            return self.close(key, "write failed");
        }
        if conn.bytes_out != before {
            conn.last_active = self.now;
        }
        self.resume_reading(key);
        let conn = &mut self.connections[key];
        if conn.unread && conn.wants_read() {
            if let Io::Gone = self.read_and_answer(key) {
                return self.close(key, "read failed");
            }
            self.resume_reading(key);
        }
        self.settle(key);
    }

    /// Reading resumes once the output has drained below half the cap; the hysteresis keeps a
    /// slow reader from costing a reregister per write. What was left unread is read next turn.
    fn resume_reading(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        if conn.paused && conn.pending() <= self.max_pending / 2 {
            conn.paused = false;
            if conn.unread {
                queue(&mut self.ready, conn, key);
            }
        }
    }

    fn read_and_answer(&mut self, key: usize) -> Io {
        let conn = &mut self.connections[key];
        let lingering = matches!(conn.phase, Phase::Lingering { .. });
        self.answers.clear();
        let mut budget = READ_BUDGET;
        loop {
            if conn.pending() + self.answers.len() >= self.max_pending {
                // Stop reading until the client reads: the kernel's buffers fill and TCP flow
                // control slows the sender, instead of our memory growing.
                conn.paused = true;
                break;
            }
            if budget == 0 {
                queue(&mut self.ready, conn, key);
                break;
            }
            let room = self.max_pending - (conn.pending() + self.answers.len());
            let want = self.framer.read_len(room).min(self.read_buf.len());
            let n = match conn.read(&mut self.read_buf[..want]) {
                Ok(0) => {
                    conn.unread = false;
                    if !lingering {
                        self.framer.finish(&mut conn.partial, &mut self.answers);
                    }
                    conn.phase = Phase::PeerDone;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.unread = false;
                    break;
                }
                Err(e) => {
                    debug!("reading from {}: {e}", conn.peer);
                    return Io::Gone;
                }
            };
            budget = budget.saturating_sub(n);
            conn.bytes_in += n as u64;
            if lingering {
                continue;
            }
            let status =
                self.framer
                    .answer(&mut conn.partial, &self.read_buf[..n], &mut self.answers);
            if status == Status::Close {
                conn.phase = Phase::Closing;
                conn.unread = false;
                break;
            }
            // A short read drained the socket: any byte arriving after it raises a new edge. Once
            // the peer's FIN was seen, the zero-byte read that reports it is still owed.
            if n < want && !conn.peer_fin_seen {
                conn.unread = false;
                break;
            }
        }
        if budget < READ_BUDGET {
            conn.last_active = self.now;
        }
        conn.send(&self.answers, &mut self.pool)
    }

    /// Moves a connection on after I/O: closes it when done, lingers after our last word,
    /// reregisters when its interest changed.
    fn settle(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        if conn.pending() == 0 {
            match conn.phase {
                Phase::PeerDone => return self.close(key, "closed by peer"),
                Phase::Closing => {
                    conn.shutdown_write();
                    let until = self.now + LINGER;
                    conn.phase = Phase::Lingering { until };
                    conn.unread = true;
                    if conn.timer_at.is_none_or(|at| until < at) {
                        conn.timer_at = Some(until);
                        self.timers.push(Reverse((until, key, conn.id)));
                    }
                    // Whatever already waits in the socket is read away now.
                    return self.drive(key);
                }
                _ => {}
            }
        }
        let Some(interest) = conn.interest() else {
            return self.close(key, "nothing left to do");
        };
        if interest != conn.registered {
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.socket, Token(key), interest)
            {
                debug!("reregistering {}: {e}", conn.peer);
                return self.close(key, "reregister failed");
            }
            conn.registered = interest;
        }
    }

    fn close(&mut self, key: usize, why: &str) {
        let conn = &mut self.connections[key];
        if conn.phase == Phase::Dead {
            return;
        }
        debug!(
            "closed {} ({why}): {} bytes in, {} bytes out",
            conn.peer, conn.bytes_in, conn.bytes_out
        );
        self.summary.bytes_in += conn.bytes_in;
        self.summary.bytes_out += conn.bytes_out;
        conn.phase = Phase::Dead;
        let _ = self.poll.registry().deregister(&mut conn.socket);
        self.dead.push(key);
        self.open -= 1;
        // A freed descriptor is the end of an out-of-descriptors episode.
        if self.accept_paused_until.is_some() {
            self.accept_paused_until = Some(self.now);
        }
    }

    fn free_dead(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        for key in self.dead.drain(..) {
            self.connections.remove(key);
        }
        // A closed connection's timer entry stays in the heap until it comes due, which under
        // churn would hold one entry per connection of the last idle-timeout period (minutes of
        // them). Dropping the stale ones once they outnumber the live ones keeps the heap within
        // twice the open connections, at an amortised O(1) per close.
        if self.timers.len() > 2 * self.open + TIMER_SLACK {
            let connections = &self.connections;
            self.timers.retain(|&Reverse((at, key, id))| {
                connections
                    .get(key)
                    .is_some_and(|conn| conn.id == id && conn.timer_at == Some(at))
            });
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, key, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.connections.get_mut(key) else {
                continue;
            };
            if conn.id != id || conn.timer_at != Some(at) || conn.phase == Phase::Dead {
                continue;
            }
            conn.timer_at = None;
            let linger_end = match conn.phase {
                Phase::Lingering { until } => Some(until),
                _ => None,
            };
            let idle_end = self.idle_timeout.map(|idle| conn.last_active + idle);
            if linger_end.is_some_and(|until| until <= now) {
                self.close(key, "linger over");
            } else if idle_end.is_some_and(|end| end <= now) {
                self.summary.closed_idle += 1;
                self.close(key, "idle timeout");
            } else if let Some(next) = [linger_end, idle_end].into_iter().flatten().min() {
                conn.timer_at = Some(next);
                self.timers.push(Reverse((next, key, id)));
            }
        }
    }

    fn take_signals(&mut self) {
        let (Some(signals), Some(group)) = (self.signals.as_mut(), self.group.as_ref()) else {
            return;
        };
        for signal in signals.pending() {
            if group.request.load(Ordering::SeqCst) == RUNNING {
                info!("received signal {signal}: draining connections");
                group.shutdown();
            } else {
                info!("received signal {signal}: closing every connection now");
                group.abort();
            }
        }
    }

    /// Carries out a shutdown request; true once the loop should end.
    fn shutdown_step(&mut self, now: Instant) -> bool {
        let request = self.request();
        if request == RUNNING {
            return false;
        }
        if self.drain_deadline.is_none() {
            // Closing the listeners makes new connections fail at once instead of waiting.
            for mut listener in self.listeners.drain(..) {
                let _ = self.poll.registry().deregister(&mut listener.socket);
            }
            self.ready.retain(|&token| listener_index(token).is_none());
            self.accept_paused_until = None;
            self.drain_deadline = Some(now + self.shutdown_timeout);
            if self.open > 0 {
                info!(
                    "draining {} connection(s) for up to {:?}",
                    self.open, self.shutdown_timeout
                );
            }
        }
        if self.open == 0 {
            return true;
        }
        if request >= ABORT || self.drain_deadline.is_some_and(|deadline| now >= deadline) {
            let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
            for key in keys {
                if self.connections[key].phase != Phase::Dead {
                    self.summary.cut_at_shutdown += 1;
                    self.close(key, "shutdown");
                }
            }
            self.free_dead();
            return true;
        }
        false
    }
}

/// Puts a connection with unread input on the list served next turn, once.
fn queue(ready: &mut VecDeque<Token>, conn: &mut Connection, key: usize) {
    if !conn.queued {
        conn.queued = true;
        ready.push_back(Token(key));
    }
}

/// Errors from `accept` that concern only the one connection being accepted.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
    ) || matches!(
        e.raw_os_error(),
        Some(71 /* EPROTO */) | Some(110 /* ETIMEDOUT */)
    )
}
