//! The event loop: one thread, one `mio::Poll`, non-blocking listeners and a `Slab` of
//! connections keyed by their token, all edge-triggered.
//!
//! It accepts, reads into one buffer shared by every connection, hands the bytes to its
//! [`Protocol`] and writes the answers; it never knows which protocol that is. It must never
//! block, never busy-loop (not even out of file descriptors), and never let one client starve
//! the others or grow memory without bound.
//!
//! With `--metrics-listen` or `--agent-listen`, the first loop also drives [`Side`] loops, the
//! admin endpoint's and the agent check's: each a `Worker` on a poll of its own, which this
//! loop's poll watches and whose turns it runs after its own. Same thread, and nothing of them
//! on the echo's message path.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::{
    Config, ACCEPT_BUDGET, DRAIN_QUIET, FD_EXHAUSTED_BACKOFF, LINGER, MAX_LISTENERS, MAX_READ,
    READ_BUDGET,
};
use crate::connection::{Connection, Input, Phase, Pool, READ_INTEREST};
use crate::framing::{Answers, Next, Protocol};
use crate::group::{Group, ABORT, LAME_DUCK, RUNNING};
use crate::metrics::{AcceptError, CloseReason, Counters};
use crate::systemd::DrainNotices;

/// Wakes the loop for a [`crate::ServerHandle`] request. The special tokens live at the top of
/// `usize`, far above any slab key.
pub(crate) const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
/// The poll of a side loop (the admin endpoint's, the agent check's) has events.
const SIDE: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 3;

/// Which listener a token names, if any.
fn listener_index(token: Token) -> Option<usize> {
    let index = LISTENER_BASE.checked_sub(token.0)?;
    (index < MAX_LISTENERS).then_some(index)
}
/// Events taken from one `epoll_wait`.
const EVENT_CAPACITY: usize = 1024;
/// Stale timer entries tolerated beyond twice the open connections before the heap is swept.
const TIMER_SLACK: usize = 1024;
/// The answers buffer shared by the loop's connections is freed after a turn that grew it past
/// this (an unterminated line of up to `--max-line` handed over at end of input), so one large
/// answer does not pin its memory to the loop.
const ANSWERS_KEEP: usize = 4 * READ_BUDGET;

pub(crate) struct Listener {
    pub socket: TcpListener,
    pub addr: SocketAddr,
    /// On the ready list: its accept budget ran out with connections still waiting. A listener
    /// is served from the list or from its event, never both in one turn.
    queued: bool,
}

impl Listener {
    pub(crate) fn new(socket: TcpListener, addr: SocketAddr) -> Listener {
        Listener {
            socket,
            addr,
            queued: false,
        }
    }
}

/// One event loop with its own poll, listeners and connections; `--workers N` runs N of them,
/// sharing only their [`Group`].
pub(crate) struct Worker<P: Protocol> {
    poll: Poll,
    listeners: Vec<Listener>,
    connections: Slab<Connection<P::Session>>,
    protocol: P,
    group: Arc<Group>,
    /// SIGINT and SIGTERM, on the first loop only. Watched here rather than on a thread of
    /// their own: a second thread would make glibc wrap every read and write in its
    /// thread-cancellation bookkeeping (about 60 instructions per message).
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// What systemd is told during a drain (`$NOTIFY_SOCKET`), on the first loop only.
    systemd: Option<DrainNotices>,
    max_pending: usize,
    idle_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    /// The one read buffer, shared by every connection: reads are answered before the next one.
    read_buf: Box<[u8]>,
    /// Answers to one connection's reads of this turn, written with one syscall.
    answers: Vec<u8>,
    /// Output buffers lent to connections whose socket is full.
    pool: Pool,
    /// Tokens whose readiness was not used up this turn (read budget, accept budget, a protocol
    /// with answers held back); they are served next turn without waiting, because
    /// edge-triggered epoll will not report them again.
    ready: VecDeque<Token>,
    /// (deadline, slab key, connection id): idle, linger and protocol deadlines, checked lazily.
    /// Activity only stamps `last_active`; the heap is touched when an entry comes due, so the
    /// timer costs nothing per message and O(log n) per connection per timeout period.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Slots of connections closed this turn, freed once the turn's events are all handled.
    dead: Vec<usize>,
    /// Connections open in this loop.
    open: usize,
    next_id: u64,
    accept_paused_until: Option<Instant>,
    /// Accept failed for want of descriptors; warned once, cleared by the next successful accept.
    out_of_fds: bool,
    /// The time of this turn of the loop, read once after each poll.
    now: Instant,
    /// The first loop keeps the lame duck's end (`--drain-delay`) and then raises the drain.
    leads: bool,
    /// The listeners are closed: the drain has begun.
    draining: bool,
    /// Connections this loop closed at a message boundary for the drain, by id, until their
    /// lingering close ends: they count as `drain`. A set beside the slab rather than a field,
    /// so a connection stays as small as it was; empty until the drain.
    parting: HashSet<u64>,
    /// When the shutdown must move on without an event: the lame duck's end (on the first loop,
    /// before the drain), then the drain's end (`--shutdown-timeout`).
    stop_at: Option<Instant>,
    /// What this loop did, counted here and nowhere else (see [`crate::metrics`]).
    counters: Counters,
    /// This loop's slot in the group's published metrics, when `--metrics-listen` is on.
    publish_to: Option<usize>,
    /// A counter that changes per connection rather than per message (accepts, refusals,
    /// closes, pauses, accept errors) changed since the last publish: only then are they stored.
    cold_changed: bool,
    /// Loops of their own that this one drives (the admin endpoint's and the agent check's, on
    /// the first worker), whether one of their polls reported events this turn, and when the
    /// first of them needs a turn without one (known after each of their turns, since only
    /// their turns change it). They share the one `SIDE` token: each turn of theirs costs every
    /// one of them a poll that returns at once, which their light traffic allows.
    sides: Vec<Box<dyn Side>>,
    side_woke: bool,
    side_at: Option<Instant>,
}

impl<P: Protocol> Worker<P> {
    /// A worker serving `listeners`, already bound, on `poll`, whose waker the group holds.
    pub(crate) fn new(
        config: &Config,
        poll: Poll,
        mut listeners: Vec<Listener>,
        group: Arc<Group>,
        protocol: P,
    ) -> io::Result<Worker<P>> {
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut listener.socket,
                Token(LISTENER_BASE - i),
                Interest::READABLE,
            )?;
        }
        Ok(Worker {
            read_buf: vec![0; MAX_READ].into(),
            poll,
            listeners,
            connections: Slab::new(),
            protocol,
            group,
            signals: None,
            systemd: None,
            max_pending: config.max_pending as usize,
            idle_timeout: config.idle_timeout(),
            shutdown_timeout: config.shutdown_timeout(),
            answers: Vec::new(),
            pool: Pool::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            dead: Vec::new(),
            open: 0,
            next_id: 0,
            accept_paused_until: None,
            out_of_fds: false,
            now: Instant::now(),
            leads: false,
            draining: false,
            parting: HashSet::new(),
            stop_at: None,
            counters: Counters::default(),
            publish_to: None,
            cold_changed: true,
            sides: Vec::new(),
            side_woke: false,
            side_at: None,
        })
    }

    /// Makes this loop the one that keeps the lame duck's end and then raises the drain for all:
    /// the first loop, which also watches the signals.
    pub(crate) fn keep_lame_duck(&mut self) {
        self.leads = true;
    }

    /// Publishes this loop's counters, once per turn, into slot `index` of the group's.
    pub(crate) fn publish_as(&mut self, index: usize) {
        self.publish_to = Some(index);
    }

    /// Drives `side` from this loop's turns: its poll is watched by this one's, so it needs no
    /// thread, and its connections never meet this loop's on the message path.
    pub(crate) fn drive_side(&mut self, side: Box<dyn Side>) -> io::Result<()> {
        let fd = side.poll_fd();
        self.poll
            .registry()
            .register(&mut mio::unix::SourceFd(&fd), SIDE, Interest::READABLE)?;
        self.sides.push(side);
        Ok(())
    }

    /// Makes SIGINT and SIGTERM stop every loop: the first drains, any later one aborts. This
    /// loop then runs until every other loop has ended, so a second signal is honoured
    /// whichever loop is still draining.
    pub(crate) fn watch_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Tells systemd `STOPPING=1` at the first signal and extends its stop timeout while the
    /// drain goes on; for the loop that watches the signals.
    pub(crate) fn notify_systemd(&mut self, notices: DrainNotices) {
        self.systemd = Some(notices);
    }

    /// Serves until the group is stopped and every connection is done; returns what it counted.
    pub(crate) fn run(mut self) -> io::Result<Counters> {
        let _ended = Ended(self.group.clone());
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The other workers stop too, so the process never half-serves.
                self.group.abort();
                return Err(e);
            }
            self.turn(&events);
            let done = self.shutdown_step(self.now);
            // Before the side loops' turn: a scrape they answer sees all this loop did before.
            self.publish();
            if !self.sides.is_empty() {
                self.side_turns();
            }
            // The signal watcher stays until it is the last loop running.
            if done && (self.signals.is_none() || self.group.running() == 1) {
                break;
            }
        }
        self.counters.open = self.open as u64;
        Ok(self.counters)
    }

    /// Gives the side loops a turn when one of their polls had events or a deadline has come.
    fn side_turns(&mut self) {
        let due = self.side_at.is_some_and(|at| at <= self.now);
        if std::mem::take(&mut self.side_woke) || due {
            for side in self.sides.iter_mut() {
                side.turn();
            }
            self.side_at = self.sides.iter().filter_map(|side| side.next()).min();
        }
    }

    /// One turn's work after a poll: its events, what was left over, due timers, freed slots.
    #[inline]
    fn turn(&mut self, events: &Events) {
        self.now = Instant::now();
        for event in events.iter() {
            match event.token() {
                WAKER => {}
                SIGNALS => self.take_signals(),
                SIDE => self.side_woke = true,
                token => match listener_index(token) {
                    Some(index) => self.on_listener_event(index),
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
    }

    /// Makes this turn's counts visible to a scrape: once per turn, never per message.
    fn publish(&mut self) {
        if let Some(slot) = self.publish_to.and_then(|i| self.group.published.get(i)) {
            self.counters.open = self.open as u64;
            slot.store_hot(&self.counters, self.protocol.counts());
            if std::mem::take(&mut self.cold_changed) {
                slot.store_cold(&self.counters);
            }
        }
    }

    fn take_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        for signal in signals.pending() {
            if self.group.request() == RUNNING {
                if self.group.drain_delay().is_zero() {
                    info!("received signal {signal}: draining connections");
                } else {
                    info!("received signal {signal}: lame duck, then draining connections");
                }
                self.group.shutdown();
            } else {
                info!("received signal {signal}: closing every connection now");
                self.group.abort();
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() || self.side_at.is_some_and(|at| at <= now) {
            return Some(Duration::ZERO);
        }
        let notice = self.systemd.as_ref().and_then(DrainNotices::due);
        [self.deadline(), self.side_at, notice]
            .into_iter()
            .flatten()
            .min()
            // Rounded up: epoll counts whole milliseconds, and waking early would spin.
            .map(|at| at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    /// When this loop must wake without an event: its first timer, the end of an accept pause,
    /// of the lame duck or of the drain.
    fn deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        [timer, self.accept_paused_until, self.stop_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_listener_event(&mut self, index: usize) {
        // A queued listener gets its budget from the ready list this turn, and only there.
        if !self.listeners.get(index).is_some_and(|l| l.queued) {
            self.accept(index);
        }
    }

    /// Accepts up to the budget; a listener with connections left waiting is queued, once.
    fn accept(&mut self, index: usize) {
        if self.accept_paused_until.is_some() || self.draining {
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
                Err(e) if is_transient_accept_error(&e) => {
                    self.counters.accept_errors[AcceptError::Other as usize] += 1;
                    self.cold_changed = true;
                    debug!("accept: {e}");
                }
                Err(e) => {
                    let kind = match e.raw_os_error() {
                        Some(24 /* EMFILE */) | Some(23 /* ENFILE */) => AcceptError::Emfile,
                        _ => AcceptError::Other,
                    };
                    self.counters.accept_errors[kind as usize] += 1;
                    self.cold_changed = true;
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
        if let Some(listener) = self.listeners.get_mut(index) {
            if !listener.queued {
                listener.queued = true;
                self.ready.push_back(Token(LISTENER_BASE - index));
            }
        }
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
        if !self.group.try_open() {
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
            .register(&mut socket, Token(key), READ_INTEREST)
        {
            warn!("cannot register the connection from {peer}: {e}; closing it");
            self.group.closed();
            return;
        }
        debug!("connected with {peer}");
        let id = self.next_id;
        self.next_id += 1;
        let mut conn = Connection::new(socket, id, now);
        if let Some(at) = self.idle_timeout.and_then(|idle| now.checked_add(idle)) {
            conn.timer_at = Some(at);
            self.timers.push(Reverse((at, key, id)));
        }
        entry.insert(conn);
        self.open += 1;
        self.counters.accepted += 1;
        self.cold_changed = true;
        self.greet(key);
    }

    /// Lets the protocol speak first on a new connection; echo protocols say nothing, and then
    /// this costs a call that does nothing, once per connection.
    fn greet(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        self.answers.clear();
        let next = self.protocol.on_open(
            &mut conn.session,
            &mut Answers::new(&mut self.answers, self.max_pending, self.now),
        );
        if next != Next::Continue || !self.answers.is_empty() {
            self.carry_out(key, next);
        }
    }

    /// Tells a connection past `--max-conns` why, and closes it.
    fn reject_full(&mut self, mut socket: TcpStream) {
        self.counters.refused_full += 1;
        self.cold_changed = true;
        self.group.refused_full(self.now);
        let line = format!(
            "ERR server full (max {} connections)\n",
            self.group.max_conns()
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
        if event.is_read_closed() || event.is_priority() {
            conn.input = Input::ReadyUntilWouldBlock;
        } else if (event.is_readable() || event.is_error()) && conn.input == Input::Drained {
            conn.input = Input::Ready;
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
                if let Some(listener) = self.listeners.get_mut(index) {
                    listener.queued = false;
                    self.accept(index);
                }
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

    /// Does everything a connection can do now: write what waits, let a paused protocol answer
    /// what it held back once there is room, read and answer within the budget, then bring the
    /// connection's phase and poll interest in line.
    fn drive(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        match conn.flush(&mut self.pool, &mut self.counters) {
            Ok(0) => {}
            Ok(_) => conn.last_active = self.now,
            Err(e) => {
                debug!("writing to {}: {e}", conn.peer());
                return self.close(key, CloseReason::of_io_error(&e));
            }
        }
        self.answers.clear();
        let mut next = Next::Continue;
        // Hysteresis: reading resumes only below half the cap, so a slow reader does not cost a
        // reregister per write.
        if conn.phase == Phase::Paused && conn.pending() <= self.max_pending / 2 {
            conn.phase = Phase::Open;
            let room = self.max_pending - conn.pending();
            next = self.protocol.on_writable(
                &mut conn.session,
                &mut Answers::new(&mut self.answers, room, self.now),
            );
        }
        if next == Next::Continue && conn.reading() && conn.input != Input::Drained {
            next = match self.read_and_answer(key) {
                Ok(next) => next,
                Err(e) => {
                    debug!("reading from {}: {e}", self.connections[key].peer());
                    return self.close(key, CloseReason::of_io_error(&e));
                }
            };
        }
        let conn = &mut self.connections[key];
        match next {
            Next::Continue => {}
            Next::Pause => {
                if conn.phase == Phase::Open {
                    conn.phase = Phase::Paused;
                    self.counters.pauses += 1;
                    self.cold_changed = true;
                }
            }
            Next::Close => {
                if conn.phase != Phase::PeerDone {
                    conn.phase = Phase::Closing;
                }
            }
            Next::CloseNow => {
                let reason = self.protocol.close_reason(&conn.session);
                return self.close(key, reason);
            }
        }
        if let Err(e) = conn.send(&mut self.answers, &mut self.pool, &mut self.counters) {
            debug!("writing to {}: {e}", conn.peer());
            return self.close(key, CloseReason::of_io_error(&e));
        }
        if self.answers.capacity() > ANSWERS_KEEP {
            self.answers = Vec::new();
        }
        self.settle(key);
    }

    /// Reads and answers until the socket is drained, the read budget is spent or the output is
    /// at the cap; returns what the protocol asked for.
    fn read_and_answer(&mut self, key: usize) -> io::Result<Next> {
        // One slab lookup for the whole loop: the fields are borrowed apart.
        let Worker {
            connections,
            protocol,
            answers,
            read_buf,
            ready,
            timers,
            max_pending,
            now,
            counters,
            ..
        } = self;
        let conn = &mut connections[key];
        let lingering = conn.phase == Phase::Lingering;
        let mut budget = READ_BUDGET;
        loop {
            let used = conn.pending() + answers.len();
            if used >= *max_pending {
                // Stop reading until the client reads: the kernel's buffers fill and TCP flow
                // control slows the sender, instead of our memory growing.
                return Ok(Next::Pause);
            }
            if budget == 0 {
                queue(ready, conn, key);
                return Ok(Next::Continue);
            }
            let room = *max_pending - used;
            let want = protocol.read_len(&conn.session, room).min(read_buf.len());
            let n = match conn.read(&mut read_buf[..want]) {
                Ok(0) => {
                    conn.input = Input::Drained;
                    if lingering {
                        // The peer read our last word and closed: the linger is over.
                        return Ok(Next::CloseNow);
                    }
                    let mut answers = Answers::new(answers, room, *now);
                    protocol.on_eof(&mut conn.session, &mut answers);
                    conn.phase = Phase::PeerDone;
                    return Ok(Next::Continue);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.input = Input::Drained;
                    return Ok(Next::Continue);
                }
                Err(e) => return Err(e),
            };
            budget = budget.saturating_sub(n);
            counters.bytes_in += n as u64;
            if !lingering {
                conn.last_active = *now;
                let mut answers = Answers::new(answers, room, *now);
                let next = protocol.on_read(&mut conn.session, &read_buf[..n], &mut answers);
                arm_deadline(protocol, conn, timers, key);
                if next != Next::Continue {
                    return Ok(next);
                }
            }
            if n < want && conn.input == Input::Ready {
                conn.input = Input::Drained;
                return Ok(Next::Continue);
            }
        }
    }

    /// Moves a connection on after I/O: closes it when done, lingers after our last word,
    /// queues it when it can go on without a new event, reregisters when its interest changed.
    fn settle(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        let drained = conn.pending() == 0;
        match conn.phase {
            Phase::PeerDone if drained => return self.close(key, CloseReason::Client),
            Phase::Closing if drained => {
                linger(conn, key, self.now, &mut self.ready, &mut self.timers)
            }
            // The answers went out at once: the protocol may answer what it held back.
            Phase::Paused if conn.pending() <= self.max_pending / 2 => {
                queue(&mut self.ready, conn, key)
            }
            _ => {}
        }
        let interest = conn.interest();
        if interest != conn.registered {
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.socket, Token(key), interest)
            {
                debug!("reregistering {}: {e}", conn.peer());
                return self.close(key, CloseReason::Error);
            }
            conn.registered = interest;
        }
    }

    /// Closes a connection for `why`; after the protocol's last word (an error answer), the
    /// protocol's reason stands, however the linger ends, unless the shutdown cut it.
    fn close(&mut self, key: usize, why: CloseReason) {
        let conn = &mut self.connections[key];
        let reason = match conn.phase {
            Phase::Dead => return,
            Phase::Closing | Phase::Lingering if why != CloseReason::Shutdown => {
                if self.parting.remove(&conn.id) {
                    CloseReason::Drain
                } else {
                    self.protocol.close_reason(&conn.session)
                }
            }
            _ => why,
        };
        debug!("closed {} ({})", conn.peer(), reason.label());
        self.counters.close(reason);
        self.cold_changed = true;
        self.counters.pending -= conn.pending() as u64;
        conn.phase = Phase::Dead;
        let _ = self.poll.registry().deregister(&mut conn.socket);
        self.dead.push(key);
        self.open -= 1;
        self.group.closed();
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
            let linger_end = (conn.phase == Phase::Lingering).then(|| conn.last_active + LINGER);
            let idle_end = self
                .idle_timeout
                .and_then(|idle| conn.last_active.checked_add(idle));
            // A protocol's deadline concerns what it still awaits from the client, which ends
            // once the connection stops reading (closing, lingering, peer done).
            let protocol_end = matches!(conn.phase, Phase::Open | Phase::Paused)
                .then(|| self.protocol.deadline(&conn.session))
                .flatten();
            let part_at = if self.draining {
                parting_at(&self.protocol, conn, now)
            } else {
                None
            };
            if linger_end.is_some_and(|until| until <= now) {
                // Whatever the reason, close() keeps the protocol's.
                self.close(key, CloseReason::Client);
            } else if idle_end.is_some_and(|end| end <= now) {
                self.close(key, CloseReason::Idle);
            } else if protocol_end.is_some_and(|end| end <= now) {
                self.on_protocol_deadline(key);
            } else if part_at.is_some_and(|at| at <= now) {
                self.part(key);
            } else if let Some(next) = [linger_end, idle_end, protocol_end, part_at]
                .into_iter()
                .flatten()
                .min()
            {
                conn.timer_at = Some(next);
                self.timers.push(Reverse((next, key, id)));
            }
        }
    }

    /// Closes a connection idle at a message boundary during the drain with our FIN and the
    /// lingering close after it, as after a protocol's last word: the client reads every answer
    /// and then the end of the stream. A byte that arrived since the last read would be lost to
    /// the FIN, so a connection with anything to read is read and answered first, and looked at
    /// again after `DRAIN_QUIET`.
    fn part(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        match conn.socket.peek(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => {
                // Input, the peer's FIN or an error: the read finds out which.
                conn.input = Input::ReadyUntilWouldBlock;
                queue(&mut self.ready, conn, key);
                let at = self.now + DRAIN_QUIET;
                conn.timer_at = Some(at);
                self.timers.push(Reverse((at, key, conn.id)));
                return;
            }
        }
        debug!("closing {} between messages for the drain", conn.peer());
        self.parting.insert(conn.id);
        // Reading as before, nothing to write: the poll interest stays.
        linger(conn, key, self.now, &mut self.ready, &mut self.timers);
    }

    /// The protocol's own deadline passed (e.g. a request head that did not complete in time):
    /// its answer goes out like any other.
    fn on_protocol_deadline(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        self.answers.clear();
        let room = self.max_pending.saturating_sub(conn.pending());
        let next = self.protocol.on_deadline(
            &mut conn.session,
            &mut Answers::new(&mut self.answers, room, self.now),
        );
        self.carry_out(key, next);
    }

    /// Does what the protocol asked after a call outside a read (a new connection, a deadline),
    /// and writes its answers like any other.
    fn carry_out(&mut self, key: usize, next: Next) {
        let conn = &mut self.connections[key];
        match next {
            Next::CloseNow => {
                let reason = self.protocol.close_reason(&conn.session);
                return self.close(key, reason);
            }
            Next::Close => conn.phase = Phase::Closing,
            Next::Pause if conn.phase == Phase::Open => {
                conn.phase = Phase::Paused;
                self.counters.pauses += 1;
                self.cold_changed = true;
            }
            Next::Pause | Next::Continue => {}
        }
        if let Err(e) = conn.send(&mut self.answers, &mut self.pool, &mut self.counters) {
            debug!("writing to {}: {e}", conn.peer());
            return self.close(key, CloseReason::of_io_error(&e));
        }
        arm_deadline(&self.protocol, conn, &mut self.timers, key);
        self.settle(key);
    }

    /// The first loop's lame duck: starts its clock, and once `--drain-delay` has passed raises
    /// the drain for every loop; true then.
    fn lame_duck_over(&mut self, now: Instant) -> bool {
        let delay = self.group.drain_delay();
        match self.stop_at {
            None => {
                info!(
                    "lame duck for {delay:?}: accepting and serving as before while health checks \
                     say draining"
                );
                // From now, not from this turn's start, which may precede the request.
                self.stop_at = Some(later(Instant::now(), delay));
                false
            }
            Some(end) if now < end => false,
            Some(_) => {
                self.group.drain();
                true
            }
        }
    }

    /// Closes the listeners, so new connections fail at once instead of waiting, and starts the
    /// drain's clock.
    fn start_drain(&mut self, now: Instant, after_lame_duck: bool) {
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        if after_lame_duck {
            // Logged once this loop's listeners are closed; the other loops, woken, close theirs
            // in their next turn.
            info!("lame duck over: the listeners are closed");
        }
        self.ready.retain(|&token| listener_index(token).is_none());
        self.accept_paused_until = None;
        self.draining = true;
        self.stop_at = Some(later(now, self.shutdown_timeout));
        self.protocol.on_drain();
        // Every connection gets a look on the timer heap, which from now on closes those idle
        // at a message boundary; activity only moves the look later, as with idle timeouts.
        for (key, conn) in self.connections.iter_mut() {
            if let Some(at) = parting_at(&self.protocol, conn, now) {
                if conn.timer_at.is_none_or(|timer| at < timer) {
                    conn.timer_at = Some(at);
                    self.timers.push(Reverse((at, key, conn.id)));
                }
            }
        }
        if self.open > 0 {
            info!(
                "draining {} connection(s) for up to {:?}",
                self.open, self.shutdown_timeout
            );
        }
    }

    /// Carries out a shutdown request; true once the loop should end.
    fn shutdown_step(&mut self, now: Instant) -> bool {
        let mut request = self.group.request();
        if request == RUNNING {
            return false;
        }
        // From the first signal on, the lame duck included: systemd hears STOPPING at once and
        // has its stop timeout extended while the process is on its way out.
        if let Some(notices) = self.systemd.as_mut() {
            notices.draining(now, self.group.open());
        }
        if request == LAME_DUCK {
            // Serving as before; only the first loop watches the clock.
            if !self.leads || !self.lame_duck_over(now) {
                return false;
            }
            self.start_drain(now, true);
            request = self.group.request();
        }
        if !self.draining {
            self.start_drain(now, false);
        }
        if self.open == 0 {
            return true;
        }
        if request >= ABORT || self.stop_at.is_some_and(|deadline| now >= deadline) {
            let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
            for key in keys {
                if self.connections[key].phase != Phase::Dead {
                    self.close(key, CloseReason::Shutdown);
                }
            }
            self.free_dead();
            return true;
        }
        false
    }
}

/// A loop driven by another's turns instead of a thread of its own: the admin endpoint's and
/// the agent check's, on the first worker. Its poll is registered in the driving loop's, which gives it a turn when
/// that poll has events or its deadline has come.
pub(crate) trait Side: Send {
    /// The descriptor of its poll, for the driving loop to watch.
    fn poll_fd(&self) -> std::os::fd::RawFd;
    /// When it must have a turn without an event: the time of its last turn if it has work
    /// left (connections on its ready list, more events than one turn took), else its first
    /// timer.
    fn next(&self) -> Option<Instant>;
    /// One turn: its events, taken without waiting, then its leftovers and timers.
    fn turn(&mut self);
}

/// A [`Worker`] run as a [`Side`]: its own connections, listeners, limits and timers, on the
/// driving loop's thread. It never stops by itself; it ends when the driving loop does.
pub(crate) struct SideLoop<P: Protocol> {
    worker: Worker<P>,
    events: Events,
    /// The last turn took a full batch: more events may wait, and an edge-triggered poll will
    /// not report them again.
    more: bool,
}

impl<P: Protocol> SideLoop<P> {
    pub(crate) fn new(worker: Worker<P>) -> SideLoop<P> {
        SideLoop {
            worker,
            events: Events::with_capacity(EVENT_CAPACITY),
            more: false,
        }
    }
}

impl<P: Protocol + Send> Side for SideLoop<P>
where
    P::Session: Send,
{
    fn poll_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.worker.poll.as_raw_fd()
    }

    fn next(&self) -> Option<Instant> {
        if self.more || !self.worker.ready.is_empty() {
            Some(self.worker.now)
        } else {
            self.worker.deadline()
        }
    }

    fn turn(&mut self) {
        if let Err(e) = self
            .worker
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
        {
            // Interrupted, or a failure that the next turn reports again: nothing is lost.
            debug!("polling the side loop: {e}");
            return;
        }
        self.more = self.events.iter().count() >= EVENT_CAPACITY;
        self.worker.turn(&self.events);
    }
}

/// Tells the group a loop has ended, however it ends (a panic included), so the signal watcher
/// does not wait for it.
struct Ended(Arc<Group>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.loop_ended();
    }
}

/// Makes sure the timer heap wakes the loop by the protocol's deadline for a connection, if it
/// has one earlier than the connection's next timer.
fn arm_deadline<P: Protocol>(
    protocol: &P,
    conn: &mut Connection<P::Session>,
    timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    key: usize,
) {
    if let Some(at) = protocol.deadline(&conn.session) {
        if conn.timer_at.is_none_or(|timer| at < timer) {
            conn.timer_at = Some(at);
            timers.push(Reverse((at, key, conn.id)));
        }
    }
}

/// During the drain, when to look at a connection again: one idle at a message boundary (the
/// protocol holds nothing, no answer waits, nothing is left to read) is closed once it has been
/// quiet for `DRAIN_QUIET`; one busy or in the middle of a message is looked at again after that
/// long; one already closing needs no look.
fn parting_at<P: Protocol>(
    protocol: &P,
    conn: &Connection<P::Session>,
    now: Instant,
) -> Option<Instant> {
    match conn.phase {
        Phase::Open
            if conn.pending() == 0
                && conn.input == Input::Drained
                && !conn.queued
                && protocol.at_boundary(&conn.session) =>
        {
            Some(conn.last_active + DRAIN_QUIET)
        }
        Phase::Open | Phase::Paused => Some(now + DRAIN_QUIET),
        Phase::PeerDone | Phase::Closing | Phase::Lingering | Phase::Dead => None,
    }
}

/// `now + delay`; a time past what an Instant can hold is a year away, which is no deadline.
fn later(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

/// Our last word is written: sends our FIN and drains what the peer still sends until it closes
/// or `LINGER` has passed, so it reads that word rather than a reset.
fn linger<S>(
    conn: &mut Connection<S>,
    key: usize,
    now: Instant,
    ready: &mut VecDeque<Token>,
    timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
) {
    conn.shutdown_write();
    conn.last_active = now;
    let until = now + LINGER;
    conn.phase = Phase::Lingering;
    // Whatever already waits in the socket is read away next turn.
    conn.input = Input::ReadyUntilWouldBlock;
    queue(ready, conn, key);
    if conn.timer_at.is_none_or(|at| until < at) {
        conn.timer_at = Some(until);
        timers.push(Reverse((until, key, conn.id)));
    }
}

/// Puts a connection on the list served next turn, once.
fn queue<S>(ready: &mut VecDeque<Token>, conn: &mut Connection<S>, key: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::Chunk;

    /// A listener is served once per turn, from its event or from the ready list, and is on the
    /// list at most once: a connection storm gets one accept budget per turn, not one more per
    /// edge.
    #[test]
    fn a_listener_gets_one_accept_budget_per_turn() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let socket = crate::server::listen(addr, false).expect("listen");
        let addr = socket.local_addr().unwrap();
        let poll = Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), WAKER).unwrap();
        let group = Arc::new(Group::new(vec![waker], 10_000));
        let listeners = vec![Listener::new(socket, addr)];
        let mut worker =
            Worker::new(&Config::loopback(), poll, listeners, group, Chunk::new(b"")).unwrap();
        let _clients: Vec<_> = (0..3 * ACCEPT_BUDGET)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();

        // Turn 1: the listener's event.
        worker.on_listener_event(0);
        assert_eq!(worker.open, ACCEPT_BUDGET);
        // Turn 2: a new edge from the storm, and the listener queued from turn 1.
        worker.on_listener_event(0);
        worker.serve_ready();
        assert_eq!(worker.open, 2 * ACCEPT_BUDGET, "one budget in turn 2");
        assert_eq!(worker.ready.len(), 1, "the listener is queued once");
        // Turn 3 takes the rest.
        worker.serve_ready();
        assert_eq!(worker.open, 3 * ACCEPT_BUDGET);
    }
}
