//! The path of a connection's bytes: read → protocol → write, settle its phase and interest,
//! pause and resume, close and linger. [`Connections`] holds a loop's connections and what they
//! share (read and answers buffers, output pool, ready list, timers). It must never block, never
//! allocate per message, never read past a budget, and never know which protocol it drives.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Poll, Registry, Token};

mod expire;

use super::accept::{refuse_full, Accepted};
use super::drain::Drain;
use super::ready::Ready;
use super::slots::Slots;
use super::tally::Tally;
use super::timers::Timers;
use crate::config::{Config, LINGER, MAX_READ, READ_BUDGET};
use crate::connection::{Connection, Input, Phase, Pool, READ_INTEREST};
use crate::framing::{Answers, Next, Protocol};
use crate::group::Group;
use crate::metrics::{CloseReason, Counters, Published};
use crate::transport::{TlsServer, Transport};

/// The answers buffer shared by the loop's connections is freed after a turn that grew it past
/// this (an unterminated line of up to `--max-line` handed over at end of input), so one large
/// answer does not pin its memory to the loop.
const ANSWERS_KEEP: usize = 4 * READ_BUDGET;

/// A loop's connections, in a slab keyed by their token, and what they share.
pub(super) struct Connections<P: Protocol> {
    /// The loop's poll, in which the connections are registered. The worker waits on it and
    /// lends its registry to the acceptor, the lifecycle and the side loops; it lives here so
    /// that a reregister on the message path reaches it without an argument passed down.
    poll: Poll,
    slots: Slots<P::Session>,
    protocol: P,
    group: Arc<Group>,
    max_pending: usize,
    idle_timeout: Option<Duration>,
    /// The one read buffer, shared by every connection: reads are answered before the next one.
    read_buf: Box<[u8]>,
    /// Answers to one connection's reads of this turn, written with one syscall.
    answers: Vec<u8>,
    /// Output buffers lent to connections whose socket is full.
    pool: Pool,
    /// Connections served next turn without waiting for an event.
    ready: Ready,
    /// Idle, linger and protocol deadlines, and the drain's looks, checked lazily.
    timers: Timers,
    /// Which connections the drain may close, and which it did.
    drain: Drain,
    /// The time of this turn of the loop, read once after each poll.
    now: Instant,
    /// What this loop counted.
    tally: Tally,
    /// Bytes read from all connections in one turn; the echo loops' is unbounded, a side loop's
    /// small (see [`Connections::bound_as_side`]). What is left waits on the ready list.
    turn_budget: usize,
    /// What is left of `turn_budget` this turn.
    turn_left: usize,
    /// When full, close the oldest idle connection to admit a new one (a side loop's: its
    /// health checks must get in whatever silent clients hold).
    evict_idle: bool,
    /// `--tls-cert`: every connection accepted speaks TLS with this server's certificate.
    tls: Option<Arc<TlsServer>>,
}

impl<P: Protocol> Connections<P> {
    pub fn new(config: &Config, poll: Poll, group: Arc<Group>, protocol: P) -> Connections<P> {
        Connections {
            poll,
            slots: Slots::default(),
            protocol,
            group,
            max_pending: config.max_pending as usize,
            idle_timeout: config.idle_timeout(),
            read_buf: vec![0; MAX_READ].into(),
            answers: Vec::new(),
            pool: Pool::new(),
            ready: Ready::default(),
            timers: Timers::default(),
            drain: Drain::new(config.drain_quiet()),
            now: Instant::now(),
            tally: Tally::default(),
            turn_budget: usize::MAX,
            turn_left: usize::MAX,
            evict_idle: false,
            tls: None,
        }
    }

    /// Serves every connection accepted from now over TLS with `tls`, if given.
    pub fn serve_tls(&mut self, tls: Option<Arc<TlsServer>>) {
        self.tls = tls;
    }

    /// Bounds this loop as a side loop's: at most `turn_budget` bytes read per turn and
    /// `max_pending` answer bytes waiting per connection (under `--max-pending`), connections
    /// closed after `idle` without a word (from accept, and between requests), and the oldest
    /// idle one closed to admit a new one when full.
    pub fn bound_as_side(&mut self, turn_budget: usize, max_pending: usize, idle: Duration) {
        self.turn_budget = turn_budget;
        self.max_pending = self.max_pending.min(max_pending);
        self.turn_left = turn_budget;
        self.idle_timeout = Some(idle);
        self.evict_idle = true;
    }

    /// Waits for events, up to `timeout`.
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.poll.poll(events, timeout)
    }

    /// Where the loop's other sources (listeners, signals, side loops) are registered.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The descriptor of the poll, for a loop that drives this one as a side loop.
    pub fn poll_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.poll.as_raw_fd()
    }

    /// Starts a turn: reads the time once for all it does.
    #[inline]
    pub fn begin_turn(&mut self) -> Instant {
        self.now = Instant::now();
        self.turn_left = self.turn_budget;
        self.now
    }

    /// The time of this turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn open(&self) -> usize {
        self.slots.open()
    }

    /// Connections wait on the ready list: the next turn must not wait for an event.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// When the first timer comes due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Makes this turn's counts visible to a scrape in `slot`: once per turn, never per message.
    pub fn publish(&mut self, slot: &Published) {
        let protocol = &self.protocol;
        (self.tally).publish(
            slot,
            self.slots.open(),
            protocol.counts(),
            protocol.upgraded_counts(),
        );
    }

    /// What this loop counted, for the summary once it ends.
    pub fn into_counters(self) -> Counters {
        self.tally.into_counters(self.slots.open())
    }

    /// Takes what a listener gave: a new connection, or a failure to count.
    pub fn admit(&mut self, accepted: Accepted) {
        match accepted {
            Ok((socket, peer)) => self.admit_socket(socket, peer),
            Err(kind) => {
                self.tally.cold().accept_errors[kind as usize] += 1;
            }
        }
    }

    fn admit_socket(&mut self, mut socket: TcpStream, peer: SocketAddr) {
        let admitted = self.group.try_open() || (self.evict_idle && self.evict_oldest_idle());
        if !admitted {
            self.tally.cold().refused_full += 1;
            self.group.refused_full(self.now);
            self.answers.clear();
            let mut answers = Answers::new(&mut self.answers, self.max_pending, self.now);
            // Over TLS the refusal would be garbage before a handshake: the close says it all.
            if self.tls.is_none() {
                self.protocol.refusal(self.group.max_conns(), &mut answers);
            }
            refuse_full(socket, &self.answers, &mut self.read_buf[..]);
            return;
        }
        let transport = match &self.tls {
            None => Transport::Plain,
            Some(tls) => match tls.accept(self.now) {
                Ok(transport) => transport,
                Err(e) => {
                    warn!("cannot start TLS with {peer}: {e}; closing the connection");
                    self.group.closed();
                    return;
                }
            },
        };
        let key = self.slots.next_key();
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
        let key = self.slots.insert(socket, transport, self.now);
        self.tally.cold().accepted += 1;
        self.greet(key);
        self.arm_first(key);
    }

    /// A new connection's idle timeout or TLS handshake's end, unless the protocol's deadline
    /// comes first (HTTP's header timeout): one timer entry per new connection, as the look at
    /// the first arms the next; an idle entry pushed as well would only wait, stale, in the heap
    /// (32 bytes per idle HTTP connection). Out of line, so that the loop's own code is compiled
    /// as before.
    #[inline(never)]
    fn arm_first(&mut self, key: usize) {
        let Some(conn) = self.slots.get_mut(key) else {
            return;
        };
        let idle_end = self
            .idle_timeout
            .and_then(|idle| self.now.checked_add(idle));
        if let Some(at) = [idle_end, conn.transport.handshake_deadline()]
            .into_iter()
            .flatten()
            .min()
        {
            self.timers.arm(&mut conn.timer_at, at, key, conn.id);
        }
    }

    /// Full, closes the connection idle the longest (lingering after our last word, or between
    /// messages with nothing held, unread or unwritten) and takes its place; false when none is
    /// idle. Scans the slab: only side loops, with a few dozen connections, do this.
    fn evict_oldest_idle(&mut self) -> bool {
        let protocol = &self.protocol;
        let oldest = self.slots.idle_longest(|conn| match conn.phase {
            Phase::Lingering => true,
            Phase::Open => Drain::at_boundary(protocol, conn),
            _ => false,
        });
        let Some(key) = oldest else {
            return false;
        };
        debug!("full: closing {}, idle the longest", self.slots[key].peer());
        self.close(key, CloseReason::Idle);
        self.group.try_open()
    }

    /// Lets the protocol speak first on a new connection; echo protocols say nothing, and then
    /// this costs a call that does nothing, once per connection.
    fn greet(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        self.answers.clear();
        let next = self.protocol.on_open(
            &mut conn.session,
            &mut Answers::new(&mut self.answers, self.max_pending, self.now),
        );
        // A deadline may start at accept (HTTP's header timeout).
        self.timers.arm_deadline(&self.protocol, conn, key);
        if next != Next::Continue || !self.answers.is_empty() {
            self.answer::<false>(key, next);
        }
    }

    /// A connection's socket has an event.
    pub fn on_event(&mut self, key: usize, event: &Event) {
        let Some(conn) = self.slots.get_mut(key) else {
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
        let plain = conn.transport.is_plain();
        self.drive(key, plain);
    }

    /// Serves the connections left over from last turn.
    pub fn serve_ready(&mut self) {
        let mut left = self.ready.len();
        while let Some(key) = self.ready.next(&mut self.slots, &mut left) {
            let plain = self.slots[key].transport.is_plain();
            self.drive(key, plain);
        }
    }

    /// Does everything a connection can do now: write what waits, let a paused protocol answer
    /// what it held back once there is room, read and answer within the budget, then bring the
    /// connection's phase and poll interest in line.
    #[inline]
    fn drive(&mut self, key: usize, plain: bool) {
        // The one look at the transport per event: over plain TCP the path below reads it no
        // more (`PLAIN`, see transport/mod.rs), which is what keeps plain TCP's cost where it
        // was before TLS.
        if plain {
            self.drive_as::<true>(key)
        } else {
            self.drive_as::<false>(key)
        }
    }

    fn drive_as<const PLAIN: bool>(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        match conn.flush::<PLAIN>(&mut self.pool, &mut self.tally.counters) {
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
            // What the protocol awaits may have changed (a held head's timer starts again once
            // the answers before it are out): every call into it is followed by a look at its
            // deadline, or a head left incomplete after a pause would never time out.
            self.timers.arm_deadline(&self.protocol, conn, key);
        }
        if next == Next::Continue && conn.reading() && conn.has_input::<PLAIN>() {
            next = match self.read_and_answer::<PLAIN>(key) {
                Ok(next) => next,
                Err(e) => {
                    debug!("reading from {}: {e}", self.slots[key].peer());
                    return self.close(key, CloseReason::of_io_error(&e));
                }
            };
        }
        self.answer::<PLAIN>(key, next);
    }

    /// Does what the protocol asked after a call into it, writes its answers, then settles the
    /// connection.
    #[inline]
    fn answer<const PLAIN: bool>(&mut self, key: usize, next: Next) {
        let conn = &mut self.slots[key];
        match next {
            Next::Continue => {}
            Next::Pause => {
                if conn.phase == Phase::Open {
                    conn.phase = Phase::Paused;
                    self.tally.cold().pauses += 1;
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
            Next::Reset => return self.reset(key),
            Next::Wait => conn.phase = Phase::Waiting,
        }
        if let Err(e) =
            (conn).send::<PLAIN>(&mut self.answers, &mut self.pool, &mut self.tally.counters)
        {
            debug!("writing to {}: {e}", conn.peer());
            return self.close(key, CloseReason::of_io_error(&e));
        }
        if self.answers.capacity() > ANSWERS_KEEP {
            self.answers = Vec::new();
        }
        self.settle::<PLAIN>(key);
    }

    /// Reads and answers until the socket is drained, the read budget is spent or the output is
    /// at the cap; returns what the protocol asked for.
    fn read_and_answer<const PLAIN: bool>(&mut self, key: usize) -> io::Result<Next> {
        // One slab lookup for the whole loop: the fields are borrowed apart.
        let Connections {
            slots,
            protocol,
            answers,
            read_buf,
            ready,
            timers,
            max_pending,
            now,
            tally,
            turn_left,
            ..
        } = self;
        let conn = &mut slots[key];
        let lingering = conn.phase == Phase::Lingering;
        let mut budget = READ_BUDGET;
        loop {
            let used = conn.pending() + answers.len();
            if used >= *max_pending {
                // Stop reading until the client reads: the kernel's buffers fill and TCP flow
                // control slows the sender, instead of our memory growing.
                return Ok(Next::Pause);
            }
            if budget == 0 || *turn_left == 0 {
                ready.queue(conn, key);
                return Ok(Next::Continue);
            }
            let room = *max_pending - used;
            let want = (protocol.read_len(&conn.session, room).min(read_buf.len())).min(*turn_left);
            let n = match conn.read::<PLAIN>(&mut read_buf[..want]) {
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
                    if conn.transport.holds_input::<PLAIN>() {
                        // The transport stopped short of the socket's end (TLS records that
                        // carried no plaintext): the rest waits for the next turn.
                        ready.queue(conn, key);
                    }
                    return Ok(Next::Continue);
                }
                Err(e) => return Err(e),
            };
            budget = budget.saturating_sub(n);
            *turn_left -= n;
            tally.counters.bytes_in += n as u64;
            if !lingering {
                conn.last_active = *now;
                let mut answers = Answers::new(answers, room, *now);
                let next = protocol.on_read(&mut conn.session, &read_buf[..n], &mut answers);
                timers.arm_deadline(protocol, conn, key);
                if next != Next::Continue {
                    return Ok(next);
                }
            }
            if n < want
                && conn.input == Input::Ready
                && conn.transport.short_read_drained::<PLAIN>()
            {
                conn.input = Input::Drained;
                return Ok(Next::Continue);
            }
        }
    }

    /// Moves a connection on after I/O: closes it when done, lingers after our last word,
    /// queues it when it can go on without a new event, reregisters when its interest changed.
    fn settle<const PLAIN: bool>(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        let drained = conn.all_sent::<PLAIN>();
        match conn.phase {
            Phase::PeerDone if drained => {
                conn.transport.close_notify(&mut conn.socket);
                return self.close(key, CloseReason::Client);
            }
            Phase::Closing if drained => {
                linger(conn, key, self.now, &mut self.ready, &mut self.timers)
            }
            // The answers went out at once: the protocol may answer what it held back.
            Phase::Paused if conn.pending() <= self.max_pending / 2 => self.ready.queue(conn, key),
            _ => {}
        }
        if let Err(e) = conn.reregister::<PLAIN>(self.poll.registry(), key) {
            debug!("reregistering {}: {e}", conn.peer());
            self.close(key, CloseReason::Error);
        }
    }

    /// Closes a connection for `why`; after the protocol's last word (an error answer), the
    /// protocol's reason stands, however the linger ends, unless the shutdown cut it.
    fn close(&mut self, key: usize, why: CloseReason) {
        let conn = &mut self.slots[key];
        let reason = match conn.phase {
            Phase::Dead => return,
            Phase::Closing | Phase::Lingering if why != CloseReason::Shutdown => {
                if self.drain.parted(conn.id) {
                    CloseReason::Drain
                } else {
                    self.protocol.close_reason(&conn.session)
                }
            }
            _ => why,
        };
        debug!("closed {} ({})", conn.peer(), reason.label());
        self.protocol.on_close(&mut conn.session);
        self.tally.cold().close(reason);
        self.tally.counters.pending -= conn.pending() as u64;
        let _ = self.poll.registry().deregister(&mut conn.socket);
        self.slots.retire(key);
        self.group.closed();
    }

    /// The protocol asked for a reset: writes what waits, older output first, as far as the
    /// socket takes it now, then closes with RST instead of FIN.
    #[cold]
    fn reset(&mut self, key: usize) {
        let conn = &mut self.slots[key];
        let written =
            (conn.send::<false>(&mut self.answers, &mut self.pool, &mut self.tally.counters))
                .and_then(|()| conn.flush::<false>(&mut self.pool, &mut self.tally.counters));
        if let Err(e) = written {
            // The connection ends here either way.
            debug!("writing to {} before its reset: {e}", conn.peer());
        }
        debug!("resetting {} as the protocol asked", conn.peer());
        conn.abort();
        self.close(key, CloseReason::Aborted);
    }

    /// Closes every connection still open, for the shutdown.
    pub fn close_all(&mut self) {
        for key in self.slots.live_keys() {
            self.close(key, CloseReason::Shutdown);
        }
    }

    /// Frees the slots of the connections closed this turn; true if there were any (their
    /// descriptors are free to accept into only now).
    pub fn free_dead(&mut self) -> bool {
        self.slots.free_dead(&mut self.timers)
    }
}

/// Our last word is written: sends our FIN and drains what the peer still sends until it closes
/// or `LINGER` has passed, so it reads that word rather than a reset.
fn linger<S>(
    conn: &mut Connection<S>,
    key: usize,
    now: Instant,
    ready: &mut Ready,
    timers: &mut Timers,
) {
    conn.shutdown_write();
    conn.last_active = now;
    let until = now + LINGER;
    conn.phase = Phase::Lingering;
    // Whatever already waits in the socket is read away next turn.
    conn.input = Input::ReadyUntilWouldBlock;
    ready.queue(conn, key);
    timers.arm(&mut conn.timer_at, until, key, conn.id);
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use mio::{Poll, Waker};

    use crate::config::Config;
    use crate::event_loop::{Listener, Worker, WAKER};
    use crate::framing::{Answers, Next, Origin, Protocol, ProtocolCounts};
    use crate::group::Group;
    use crate::metrics::{CloseReason, Counters};

    /// Answers the first read with `say`, and asks for a reset in the same call.
    struct Abort {
        say: &'static [u8],
        counts: ProtocolCounts,
    }

    impl Protocol for Abort {
        type Session = ();

        fn read_len(&self, _: &(), room: usize) -> usize {
            room.max(1)
        }

        fn on_read(&mut self, _: &mut (), _: &[u8], answers: &mut Answers<'_>) -> Next {
            answers.push(self.say);
            Next::Reset
        }

        fn on_writable(&mut self, _: &mut (), _: &mut Answers<'_>) -> Next {
            Next::Continue
        }

        fn on_eof(&mut self, _: &mut (), _: &mut Answers<'_>) {}

        fn at_boundary(&self, _: &()) -> bool {
            true
        }

        fn counts(&self) -> &ProtocolCounts {
            &self.counts
        }
    }

    /// Serves `Abort { say }` on a loop of its own, sends one message, and returns what the
    /// client read before the stream ended, how it ended, and what the loop counted.
    fn reset_after(say: &'static [u8]) -> (Vec<u8>, Result<(), ErrorKind>, Counters) {
        let listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let group = Arc::new(Group::new(vec![waker], 16));
        let listeners = vec![Listener::new(listener, addr)];
        let protocol = Abort {
            say,
            counts: ProtocolCounts::default(),
        };
        let worker = Worker::new(
            &Config::loopback(),
            poll,
            listeners,
            group.clone(),
            protocol,
        );
        let serving = thread::spawn(move || worker.unwrap().run());

        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.write_all(b"hello").unwrap();
        let (mut got, mut buf) = (Vec::new(), [0u8; 64]);
        let end = loop {
            match client.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e.kind()),
            }
        };
        group.abort();
        let counters = serving.join().unwrap().unwrap();
        (got, end, counters)
    }

    /// `Next::Reset` with answers: the client reads them, then a reset rather than the end of
    /// the stream, and the close counts as `aborted`.
    #[test]
    fn a_reset_writes_the_answers_first_then_resets() {
        let (got, end, counters) = reset_after(b"partial");
        assert_eq!(got.escape_ascii().to_string(), "partial");
        assert_eq!(end, Err(ErrorKind::ConnectionReset));
        assert_eq!(counters.closed(CloseReason::Aborted), 1);
        assert_eq!(counters.bytes_out, 7);
    }

    /// How long `Later` makes its first answer wait.
    const LATER: Duration = Duration::from_millis(100);

    /// Holds its first answer back `LATER` with `Next::Wait`, then answers what it reads; reads
    /// that come during the wait (the loop must make none) are answered `EARLY`.
    struct Later {
        counts: ProtocolCounts,
    }

    impl Protocol for Later {
        /// When the held answer is due, and whether it was given.
        type Session = (Option<Instant>, bool);

        fn read_len(&self, _: &Self::Session, room: usize) -> usize {
            room.max(1)
        }

        fn on_read(
            &mut self,
            due: &mut Self::Session,
            input: &[u8],
            out: &mut Answers<'_>,
        ) -> Next {
            match due {
                (None, false) => {
                    due.0 = Some(out.now() + LATER);
                    return Next::Wait;
                }
                (Some(_), _) => out.push(b"EARLY;"),
                (None, true) => out.push(input),
            }
            Next::Continue
        }

        fn on_writable(&mut self, _: &mut Self::Session, _: &mut Answers<'_>) -> Next {
            Next::Continue
        }

        fn on_eof(&mut self, _: &mut Self::Session, _: &mut Answers<'_>) {}

        fn at_boundary(&self, due: &Self::Session) -> bool {
            due.0.is_none()
        }

        fn deadline(&self, due: &Self::Session) -> Option<Instant> {
            due.0
        }

        fn on_deadline(
            &mut self,
            due: &mut Self::Session,
            out: &mut Answers<'_>,
            _: Option<Origin<'_>>,
        ) -> Next {
            *due = (None, true);
            out.push(b"late;");
            Next::Continue
        }

        fn counts(&self) -> &ProtocolCounts {
            &self.counts
        }
    }

    /// `Next::Wait`: nothing is read while the answer waits (what the client sends meanwhile is
    /// read after it, in order), and the answer comes on the timer, not before.
    #[test]
    fn a_wait_stops_reading_until_the_deadline() {
        let listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let group = Arc::new(Group::new(vec![waker], 16));
        let protocol = Later {
            counts: ProtocolCounts::default(),
        };
        let listeners = vec![Listener::new(listener, addr)];
        let worker = Worker::new(
            &Config::loopback(),
            poll,
            listeners,
            group.clone(),
            protocol,
        );
        let serving = thread::spawn(move || worker.unwrap().run());

        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let sent = Instant::now();
        client.write_all(b"a").unwrap();
        // Sent while the first answer waits: it must wait behind it.
        thread::sleep(Duration::from_millis(20));
        client.write_all(b"b;").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < b"late;b;".len() {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(got.escape_ascii().to_string(), "late;b;");
        assert!(sent.elapsed() >= LATER, "answered before its time");
        group.abort();
        serving.join().unwrap().unwrap();
    }

    /// `Next::Reset` with no answer: the client reads nothing but the reset.
    #[test]
    fn a_reset_without_answers_is_only_a_reset() {
        let (got, end, counters) = reset_after(b"");
        assert_eq!(got, b"");
        assert_eq!(end, Err(ErrorKind::ConnectionReset));
        assert_eq!(counters.closed(CloseReason::Aborted), 1);
        assert_eq!(counters.closed(CloseReason::Client), 0);
    }
}
