//! One client connection: its socket, the answers waiting to be written, and where it is in its
//! life. It decides its own poll interest from that state, so the loop only reregisters on change.
//!
//! A connection never blocks, never holds more than about `max_pending` bytes of answers, and
//! holds no buffer at all while idle: the loop lends it one only while output is waiting.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use crate::framing::Partial;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and answering.
    Open,
    /// The peer shut down its write side: flush every answer, then close.
    PeerDone,
    /// We decided to close (line too long, shutdown deadline): flush, then linger.
    Closing,
    /// Our FIN is sent; drain what the peer still sends until it closes or the linger ends, so
    /// our last line is read rather than lost to a reset.
    Lingering { until: Instant },
    /// Closed; the slot is freed at the end of this turn of the loop, so no event still queued in
    /// this turn's batch can reach a newer connection that reuses it.
    Dead,
}

/// What a read or write did to the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Io {
    /// It went as far as it could; nothing more to do now.
    Done,
    /// The peer is gone (reset, broken pipe, error): close quietly.
    Gone,
}

#[derive(Debug)]
pub struct Connection {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    /// Distinguishes this connection from earlier ones in the same slab slot (timer entries).
    pub id: u64,
    pub phase: Phase,
    /// Start of an unfinished line (line framing).
    pub partial: Partial,
    /// Answers not yet written, from `written` on. Empty and capacity-free unless output waits.
    output: Vec<u8>,
    written: usize,
    /// Readiness seen but not consumed: the read stopped at the budget or the output cap, and
    /// edge-triggered epoll will not tell us again.
    pub unread: bool,
    /// The peer's FIN was reported (EPOLLRDHUP): a short read no longer proves the socket drained,
    /// because the zero-byte read that reports end-of-stream is still to come.
    pub peer_fin_seen: bool,
    /// Reading paused at the output cap; resumes when output drains below half of it.
    pub paused: bool,
    /// Queued in the loop's ready list, so it is queued at most once.
    pub queued: bool,
    /// Interest currently registered with the poll.
    pub registered: Interest,
    /// Earliest deadline this connection has in the loop's timer heap.
    pub timer_at: Option<Instant>,
    pub last_active: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Connection {
    pub fn new(socket: TcpStream, peer: SocketAddr, id: u64, now: Instant) -> Connection {
        Connection {
            socket,
            peer,
            id,
            phase: Phase::Open,
            partial: Partial::default(),
            output: Vec::new(),
            written: 0,
            unread: false,
            peer_fin_seen: false,
            paused: false,
            queued: false,
            registered: Interest::READABLE,
            timer_at: None,
            last_active: now,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Answer bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    /// Whether the next turn should read from this socket.
    pub fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Open => !self.paused,
            Phase::Lingering { .. } => true,
            Phase::PeerDone | Phase::Closing | Phase::Dead => false,
        }
    }

    /// The interest that matches the state, or `None` when the connection has nothing left to do
    /// and should be closed. WRITABLE only while output waits: an always-writable socket would
    /// otherwise wake the loop for nothing.
    pub fn interest(&self) -> Option<Interest> {
        let write = self.pending() > 0;
        match (self.wants_read(), write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// One read into the loop's shared buffer.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.socket.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Sends `answer`: written straight to the socket when nothing else waits (the common case,
    /// which costs one write and no copy), and whatever the socket does not take is kept in a
    /// buffer taken from `pool`.
    pub fn send(&mut self, answer: &[u8], pool: &mut Vec<Vec<u8>>) -> Io {
        if answer.is_empty() {
            return Io::Done;
        }
        let mut taken = 0;
        if self.pending() == 0 {
            match write_some(&mut self.socket, answer) {
                Ok(n) => taken = n,
                Err(_) => return Io::Gone,
            }
            self.bytes_out += taken as u64;
        }
        if taken < answer.len() {
            if self.output.capacity() == 0 {
                self.output = pool.pop().unwrap_or_default();
            }
            self.output.extend_from_slice(&answer[taken..]);
        }
        Io::Done
    }

    /// Writes waiting output until the socket is full; gives the buffer back to `pool` once empty.
    pub fn flush(&mut self, pool: &mut Vec<Vec<u8>>, pool_limit: usize) -> Io {
        if self.pending() > 0 {
            match write_some(&mut self.socket, &self.output[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    self.bytes_out += n as u64;
                }
                Err(_) => return Io::Gone,
            }
        }
        if self.pending() == 0 && self.output.capacity() > 0 {
            let mut buffer = std::mem::take(&mut self.output);
            self.written = 0;
            if pool.len() < pool_limit {
                buffer.clear();
                pool.push(buffer);
            }
        }
        Io::Done
    }

    /// Sends our FIN, keeping the socket open to drain what the peer still sends.
    pub fn shutdown_write(&self) {
        // The peer may already be gone; then the close that follows is all that is left to do.
        let _ = self.socket.shutdown(Shutdown::Write);
    }
}

/// Writes as much of `data` as the socket takes without blocking. A short write means the send
/// buffer is full, exactly like WouldBlock, so no further write is tried: on an edge-triggered
/// socket WRITABLE will fire once space frees up.
fn write_some(socket: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut total = 0;
    while total < data.len() {
        match socket.write(&data[total..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                total += n;
                if total < data.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}
