//! One client connection: its socket and transport (plain or TLS), its bounded output, its
//! protocol session, and one explicit state for where it is in its life and what its socket's
//! readiness still promises.
//! It decides its own poll interest from that state, so the loop only reregisters on change.
//!
//! A connection never blocks, never holds much more than `--max-pending` bytes of answers (the
//! output buffer is compacted, never grown past about twice that), and holds no output buffer
//! at all while nothing waits: the loop lends it one from a small pool.

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::metrics::Counters;
use crate::transport::Transport;

/// Output buffers up to this capacity go back to the pool when drained; larger ones, grown
/// behind a slow reader under a large `--max-pending`, are freed, so an idle server returns to
/// its baseline memory.
pub const POOL_BUFFER_MAX: usize = 64 * 1024;
/// Output buffers kept for reuse, so a connection that fills its socket now and then does not
/// allocate each time, while an idle server holds at most this many of `POOL_BUFFER_MAX`.
pub const POOL_LIMIT: usize = 64;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and answering.
    Open,
    /// Not reading: the output reached `--max-pending` (the client reads slower than it sends)
    /// or the protocol holds answers it has no room for. Resumes below half the cap.
    Paused,
    /// The peer shut down its write side: flush every answer, then close.
    PeerDone,
    /// We decided to close (an error answer): flush, then linger.
    Closing,
    /// Our FIN is sent; drain what the peer still sends until it closes or `LINGER` has passed
    /// since `last_active` (stamped on entry, and not by the reads that follow), so our last
    /// answer is read rather than lost to a reset.
    Lingering,
    /// Closed; the slot is freed at the end of this turn of the loop, so no event still queued in
    /// this turn's batch can reach a newer connection that reuses it.
    Dead,
    /// Not reading: the protocol's answer waits for its time (an HTTP `delay`, a `drip`'s next
    /// piece). Resumes when the protocol's deadline has passed and it says so.
    /// Last, so the phases before it keep the values the message path tests.
    Waiting,
}

/// What the socket's edge-triggered readiness still promises. Epoll reports an edge once, so
/// readiness not used up must be remembered here until it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Read to the end: nothing to read until the next edge.
    Drained,
    /// Readable: read until a short read or WouldBlock. A short read proves the socket drained,
    /// since any byte arriving after it raises a new edge.
    Ready,
    /// Readable, but a short read proves nothing: read until WouldBlock or end of stream. Set
    /// when the peer's FIN was reported (the zero-byte read that reports it is still owed) or
    /// urgent data arrived (a read stops short at the urgent mark with data still queued).
    ReadyUntilWouldBlock,
}

/// Answers not yet written: `buf[written..]`. A connection has one only while output waits,
/// lent from the loop's pool, so an idle connection pays a pointer for it.
#[derive(Debug, Default)]
pub struct Output {
    buf: Vec<u8>,
    written: usize,
}

/// Drained output buffers kept by the loop for the next connection whose socket fills up.
pub type Pool = Vec<Box<Output>>;

impl Output {
    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    fn append(&mut self, bytes: &[u8]) {
        // Reuse the written front before growing: behind a reader that keeps up only partly,
        // `written` never returns to zero by itself, and the buffer would keep every byte ever
        // sent. Compacting only when the buffer would otherwise grow moves each byte at most
        // about once, and keeps the capacity within twice the most ever pending.
        if self.written > 0 && self.buf.len() + bytes.len() > self.buf.capacity() {
            self.buf.drain(..self.written);
            self.written = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
}

/// Gives a drained output back to the pool, or frees it if it grew large.
fn release(mut output: Box<Output>, pool: &mut Pool) {
    if output.buf.capacity() <= POOL_BUFFER_MAX && pool.len() < POOL_LIMIT {
        output.buf.clear();
        output.written = 0;
        pool.push(output);
    }
}

#[derive(Debug)]
pub struct Connection<S> {
    pub socket: TcpStream,
    /// What carries the bytes over the socket: plain TCP, or a TLS session.
    pub transport: Transport,
    /// Distinguishes this connection from earlier ones in the same slab slot (timer entries).
    pub id: u64,
    pub phase: Phase,
    pub input: Input,
    /// On the loop's list of connections served next turn, so it is put there at most once.
    pub queued: bool,
    /// Interest currently registered with the poll.
    pub registered: Interest,
    /// Earliest deadline this connection has in the loop's timer heap.
    pub timer_at: Option<Instant>,
    pub last_active: Instant,
    output: Option<Box<Output>>,
    /// The protocol's state for this connection.
    pub session: S,
}

/// Interest while reading: PRIORITY too, because urgent data must end our trust in short reads.
pub const READ_INTEREST: Interest = Interest::READABLE.add(Interest::PRIORITY);

impl<S: Default> Connection<S> {
    pub fn new(socket: TcpStream, transport: Transport, id: u64, now: Instant) -> Connection<S> {
        Connection {
            socket,
            transport,
            id,
            phase: Phase::Open,
            input: Input::Drained,
            queued: false,
            registered: READ_INTEREST,
            timer_at: None,
            last_active: now,
            output: None,
            session: S::default(),
        }
    }
}

impl<S> Connection<S> {
    /// Answer bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.output.as_ref().map_or(0, |output| output.pending())
    }

    /// Whether everything written was sent: no output waits, here or inside the transport.
    /// `PLAIN` (here and below): the caller knows the transport is plain TCP and it is not
    /// looked at; false is always right.
    #[inline]
    pub fn all_sent<const PLAIN: bool>(&self) -> bool {
        self.pending() == 0 && !self.transport.wants_write::<PLAIN>()
    }

    /// Input may wait without a new event: the socket's readiness is not used up, or the
    /// transport holds plaintext (TLS records decrypted and not yet handed out).
    #[inline]
    pub fn has_input<const PLAIN: bool>(&self) -> bool {
        self.input != Input::Drained || self.transport.holds_input::<PLAIN>()
    }

    /// Whether the connection reads from its socket in this phase.
    pub fn reading(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Lingering)
    }

    /// The interest that matches the state. WRITABLE only while output waits (ours or the
    /// transport's): an always-writable socket would otherwise wake the loop for nothing. A
    /// connection paused with nothing pending is on the ready list and keeps what it has.
    #[inline]
    pub fn interest<const PLAIN: bool>(&self) -> Interest {
        match (self.reading(), !self.all_sent::<PLAIN>()) {
            (true, true) => READ_INTEREST.add(Interest::WRITABLE),
            (true, false) => READ_INTEREST,
            (false, true) => Interest::WRITABLE,
            (false, false) => self.registered,
        }
    }

    /// Brings the poll's interest in `registry` in line with [`Connection::interest`]; a
    /// syscall only when it changed.
    #[inline]
    pub fn reregister<const PLAIN: bool>(
        &mut self,
        registry: &Registry,
        key: usize,
    ) -> io::Result<()> {
        let interest = self.interest::<PLAIN>();
        if interest != self.registered {
            registry.reregister(&mut self.socket, Token(key), interest)?;
            self.registered = interest;
        }
        Ok(())
    }

    /// One read of plaintext into the loop's shared buffer.
    #[inline]
    pub fn read<const PLAIN: bool>(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let trust_short = self.input == Input::Ready;
        (self.transport).read::<PLAIN>(&mut self.socket, buf, trust_short)
    }

    /// Sends the loop's `answers`: written straight to the socket when nothing else waits (the
    /// common case: one write, no copy), and whatever the socket does not take is kept. A large
    /// remainder takes the `answers` buffer itself rather than a copy; the loop allocates a new
    /// one on its next use. Bytes written and kept are counted into `counters`.
    #[inline]
    pub fn send<const PLAIN: bool>(
        &mut self,
        answers: &mut Vec<u8>,
        pool: &mut Pool,
        counters: &mut Counters,
    ) -> io::Result<()> {
        let mut taken = 0;
        if self.pending() == 0 {
            taken = (self.transport).write::<PLAIN>(&mut self.socket, answers)?;
            counters.bytes_out += taken as u64;
            if taken == answers.len() {
                return Ok(());
            }
        }
        counters.pending += (answers.len() - taken) as u64;
        self.keep(answers, taken, pool);
        Ok(())
    }

    /// Keeps what the socket did not take of `answers`.
    #[cold]
    fn keep(&mut self, answers: &mut Vec<u8>, taken: usize, pool: &mut Pool) {
        let output = self
            .output
            .get_or_insert_with(|| pool.pop().unwrap_or_default());
        if answers.len() - taken > POOL_BUFFER_MAX && output.buf.capacity() == 0 {
            output.buf = std::mem::take(answers);
            output.written = taken;
        } else {
            output.append(&answers[taken..]);
        }
    }

    /// Writes waiting output until the socket is full, and returns the buffer once drained;
    /// gives the bytes written (counted into `counters` too).
    #[inline]
    pub fn flush<const PLAIN: bool>(
        &mut self,
        pool: &mut Pool,
        counters: &mut Counters,
    ) -> io::Result<usize> {
        // The common case, nothing waits anywhere, costs a compare (two over TLS).
        if self.output.is_none() && !self.transport.wants_write::<PLAIN>() {
            return Ok(0);
        }
        self.flush_waiting(pool, counters)
    }

    #[inline(never)]
    fn flush_waiting(&mut self, pool: &mut Pool, counters: &mut Counters) -> io::Result<usize> {
        self.transport.flush(&mut self.socket)?;
        let Some(output) = self.output.as_mut() else {
            return Ok(0);
        };
        let mut n = 0;
        if output.pending() > 0 {
            n = (self.transport).write::<false>(&mut self.socket, &output.buf[output.written..])?;
            output.written += n;
            counters.bytes_out += n as u64;
            counters.pending -= n as u64;
        }
        if output.pending() == 0 {
            if let Some(output) = self.output.take() {
                release(output, pool);
            }
        }
        Ok(n)
    }

    /// Sends our FIN (after TLS's `close_notify`), keeping the socket open to drain what the
    /// peer still sends.
    pub fn shutdown_write(&mut self) {
        self.transport.close_notify(&mut self.socket);
        // The peer may already be gone; then the close that follows is all that is left to do.
        let _ = self.socket.shutdown(Shutdown::Write);
    }

    /// Makes the close that follows a TCP reset (`SO_LINGER` 0): the kernel sends RST rather
    /// than FIN and drops what it has not sent, so the peer's next read fails with
    /// `ECONNRESET` once it has read what arrived before.
    pub fn abort(&self) {
        // The peer may already be gone; then the close that follows is all that is left to do.
        let _ = socket2::SockRef::from(&self.socket).set_linger(Some(Duration::ZERO));
    }

    /// The peer's address for a log line, read only when that line is printed.
    pub fn peer(&self) -> String {
        self.socket.peer_addr().map_or_else(
            |_| "a disconnected peer".to_string(),
            |addr| addr.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Behind a reader that takes a bit less than is sent, the buffer is compacted instead of
    /// keeping every byte ever written.
    #[test]
    fn output_stays_bounded_behind_a_partial_reader() {
        let mut output = Output::default();
        let chunk = vec![7u8; 4096];
        let mut most_pending = 0;
        for _ in 0..10_000 {
            output.append(&chunk);
            // The reader takes a bit less than was sent, until about 64 KiB wait.
            let take = if output.pending() > 64 * 1024 {
                4096
            } else {
                4000
            };
            output.written += take.min(output.pending());
            most_pending = most_pending.max(output.pending());
        }
        assert!(
            output.buf.capacity() <= 2 * (most_pending + chunk.len()),
            "capacity {} for at most {} pending",
            output.buf.capacity(),
            most_pending
        );
    }

    /// A large answer the socket does not take (an unterminated line handed over at end of
    /// input) becomes the output buffer itself: it is held once, not copied.
    #[test]
    fn a_large_remainder_is_kept_without_a_copy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        socket2::SockRef::from(&socket)
            .set_send_buffer_size(4096)
            .unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut conn: Connection<()> = Connection::new(
            TcpStream::from_std(socket),
            Transport::Plain,
            0,
            Instant::now(),
        );
        let mut answers = vec![b'x'; 4 * POOL_BUFFER_MAX];
        let at = answers.as_ptr();
        let mut pool = Pool::new();
        let mut counters = Counters::default();
        conn.send::<true>(&mut answers, &mut pool, &mut counters)
            .unwrap();
        assert!(
            conn.pending() > POOL_BUFFER_MAX,
            "the socket took {} bytes",
            counters.bytes_out
        );
        assert_eq!(counters.pending, conn.pending() as u64);
        assert_eq!(
            conn.output.as_ref().expect("output waits").buf.as_ptr(),
            at,
            "the answers buffer became the output"
        );
        assert_eq!(answers.capacity(), 0);
    }

    #[test]
    fn large_buffers_are_not_pooled() {
        let mut pool = Pool::new();
        let mut output = Box::<Output>::default();
        output.append(&vec![0; POOL_BUFFER_MAX + 1]);
        release(output, &mut pool);
        assert!(pool.is_empty());
        let mut output = Box::<Output>::default();
        output.append(&[0; 100]);
        release(output, &mut pool);
        assert_eq!(pool.len(), 1);
        assert!(pool[0].buf.is_empty() && pool[0].written == 0);
    }
}
