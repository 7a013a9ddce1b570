//! One connection's TLS session on rustls's unbuffered API, fed by the loop's readiness like the
//! plain socket. Ciphertext is read into a buffer the loop's thread shares and decrypted there;
//! the connection keeps bytes of its own only while rustls still needs them (a record cut by a
//! read, a handshake message in pieces). Records are sealed into a shared scratch and written at
//! once; only what the socket did not take is kept, in a buffer that exists only then. Must
//! never hold more than one record's plaintext and one write's worth of sealed records
//! (`--max-pending`), never treat a full socket as an error, and never let a peer's bytes panic
//! or spin the loop: they end its connection with an alert.
//!
//! rustls 0.23 still copies each decrypted record into a `Vec` of its own, and seals each
//! record into one before copying it to our buffer: those two allocations per message are
//! rustls's, and stay until its API lends the caller's buffers all the way through.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError};

use super::tls_io::{
    invalid, seal, send_held, take, Kept, RECORD_OVERHEAD, RECORD_PLAINTEXT, SHARED, SHARED_READ,
    WRITE_BATCH,
};

/// The answer to a plain HTTP request on a TLS port in HTTP mode, as nginx gives it: a TLS
/// alert would read as garbage to the client that sent it.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 51\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use https:// to reach it.\n";

/// Socket reads one read of plaintext may make without any plaintext coming out (about 8 records'
/// worth, a read budget's), so a peer sending records that carry none cannot hold the loop.
const MAX_READS_WITHOUT_PLAINTEXT: usize = 8;

/// What a connection's own ciphertext buffer starts at, when rustls leaves bytes behind.
const INCOMING_SMALL: usize = 4096;

/// The most a connection's own ciphertext buffer grows to: a handshake message rustls joins from records
/// (64 KiB at most) and one more record (16 KiB of plaintext and TLS 1.2's 2 KiB of expansion).
/// Past it the peer is refused.
const INCOMING_MAX: usize = 0x1_0004 + 5 + 16 * 1024 + 2048;

/// The first bytes a connection sent, kept while the handshake has not begun, to tell a plain
/// HTTP request from garbage.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub(super) bytes: [u8; 8],
    pub(super) len: usize,
}

impl Head {
    /// Keeps the first of `bytes` while the head is not full.
    #[inline]
    fn note(&mut self, bytes: &[u8]) {
        if self.len == self.bytes.len() {
            return;
        }
        let take = bytes.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
    }

    pub(super) fn looks_like_http(&self) -> bool {
        let head = &self.bytes[..self.len];
        let method = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
        method >= 3 && head.get(method) == Some(&b' ')
    }
}

/// What a pass over rustls's states is for.
enum Want<'a> {
    /// Plaintext into this buffer.
    Read(&'a mut [u8]),
    /// This plaintext sealed and sent.
    Write(&'a [u8]),
    /// Our `close_notify` sealed and sent.
    Close,
}

/// Where a pass over rustls's states stopped.
enum Got {
    /// Plaintext copied out (0: the peer's `close_notify`).
    Read(usize),
    /// Plaintext taken.
    Wrote(usize),
    /// rustls needs more ciphertext first.
    Blocked,
}

/// What one socket read gave.
enum Filled {
    /// Plaintext, already decrypted into the caller's buffer.
    Plaintext(usize),
    /// Ciphertext kept: bytes read, bytes asked.
    Socket(usize, usize),
}

/// One connection's TLS session.
pub struct TlsStream {
    conn: UnbufferedServerConnection,
    /// Ciphertext rustls left (a record cut by a read, records past the caller's buffer, a
    /// handshake message in pieces): `incoming[start..filled]`, read on into until rustls has
    /// used it all, then freed. Its length is its capacity: what rustls left, grown (to 4 KiB
    /// at least) to the end of the record it cuts, or doubled while a handshake message needs
    /// more records.
    incoming: Vec<u8>,
    start: usize,
    filled: usize,
    /// Plaintext decrypted and not yet handed out: a record longer than the caller's buffer,
    /// or records rustls decrypted while we wrote. Empty on the common path.
    rest: Kept,
    /// Sealed records the socket did not take yet (and the handshake's). Empty, with no
    /// memory, on the common path; while it is not, `write` takes nothing more.
    held: Kept,
    /// Plaintext per record, and per socket write: `--max-pending` caps both.
    record: usize,
    batch: usize,
    /// When the handshake must be done (`--handshake-timeout` from accept); `None` once done.
    handshake_until: Option<Instant>,
    /// The last read found the socket empty (it would block, or read short when that proves
    /// it drained).
    socket_drained: bool,
    /// `incoming` still held bytes after the last plaintext handed out: maybe whole records.
    records_ready: bool,
    /// The peer's `close_notify` arrived: every read from now on is the end of the stream.
    peer_closed: bool,
    /// ... and that end is not yet handed out.
    eof_pending: bool,
    /// The socket said end of stream.
    socket_eof: bool,
    /// rustls failed and its alert is out: nothing more goes through.
    failed: bool,
    /// The last read stopped before the socket's end after `MAX_READS_WITHOUT_PLAINTEXT`.
    more: bool,
    /// The subject of the client's certificate, read once the handshake is done (mutual TLS
    /// only: no certificate, no string).
    subject: Option<Box<str>>,
    http: bool,
    head: Head,
}

impl std::fmt::Debug for TlsStream {
    // rustls's unbuffered connection has no `Debug`; the state is what a log line needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.handshake_until.is_some())
            .field("ciphertext", &(self.filled - self.start))
            .field("plaintext", &(self.rest.buf.len() - self.rest.at))
            .field("held", &(self.held.buf.len() - self.held.at))
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}

impl TlsStream {
    /// A new server-side session: `max_pending` caps the plaintext per record and per write.
    pub(super) fn new(
        conn: UnbufferedServerConnection,
        max_pending: usize,
        handshake_until: Instant,
        http: bool,
    ) -> TlsStream {
        TlsStream {
            conn,
            incoming: Vec::new(),
            start: 0,
            filled: 0,
            rest: Kept::default(),
            held: Kept::default(),
            record: max_pending.clamp(1, RECORD_PLAINTEXT),
            batch: max_pending.clamp(1, WRITE_BATCH),
            handshake_until: Some(handshake_until),
            socket_drained: false,
            records_ready: false,
            peer_closed: false,
            eof_pending: false,
            socket_eof: false,
            failed: false,
            more: false,
            subject: None,
            http,
            head: Head::default(),
        }
    }

    /// Plaintext into `buf`: what is decrypted first, else ciphertext read and decrypted until
    /// plaintext comes out or the socket is empty (WouldBlock).
    #[inline(never)]
    pub(super) fn read(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut [u8],
        trust_short: bool,
    ) -> io::Result<usize> {
        self.socket_drained = false;
        self.more = false;
        if !self.rest.is_empty() {
            return Ok(take(&mut self.rest, buf));
        }
        if self.peer_closed {
            self.eof_pending = false;
            return Ok(0);
        }
        let mut reads = 0;
        loop {
            // With no ciphertext left, rustls has nothing to say: every pass runs until it
            // needs input, and plaintext or an alert to send comes only from a record.
            if self.start < self.filled {
                if let Got::Read(n) = self.advance_kept(socket, Want::Read(buf))? {
                    return Ok(n);
                }
            }
            self.records_ready = false;
            if self.socket_drained {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.socket_eof {
                return self.unclean_end();
            }
            if reads == MAX_READS_WITHOUT_PLAINTEXT {
                // Records with nothing to hand out (handshake, alerts, empty ones) must not hold
                // the loop: the rest is read next turn.
                self.more = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            reads += 1;
            let read = match self.start < self.filled {
                true => self.fill(socket),
                false => self.read_shared(socket, buf, trust_short),
            };
            match read {
                Ok(Filled::Plaintext(n)) => return Ok(n),
                Ok(Filled::Socket(0, _)) => self.socket_eof = true,
                Ok(Filled::Socket(n, asked)) => self.socket_drained = trust_short && n < asked,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket_drained = true;
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The common case, nothing kept: one socket read into the loop's shared buffer, decrypted
    /// from there into `buf`. Only what rustls leaves (a record cut by the read, records past
    /// `buf`) is copied into this connection's own buffer.
    fn read_shared(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut [u8],
        trust_short: bool,
    ) -> io::Result<Filled> {
        SHARED.with_borrow_mut(|shared| {
            if shared.len() < SHARED_READ {
                shared.resize(SHARED_READ, 0);
            }
            let n = socket.read(&mut shared[..])?;
            self.head.note(&shared[..n]);
            if n == 0 {
                return Ok(Filled::Socket(0, shared.len()));
            }
            self.socket_drained = trust_short && n < shared.len();
            let (got, used) = self.advance(socket, &mut shared[..n], Want::Read(buf))?;
            if used < n {
                self.incoming = shared[used..n].to_vec();
                self.start = 0;
                self.filled = n - used;
            }
            Ok(match got {
                Got::Read(plain) => Filled::Plaintext(plain),
                _ => Filled::Socket(n, shared.len()),
            })
        })
    }

    /// One socket read into this connection's own buffer, behind what it keeps (made room for
    /// first).
    fn fill(&mut self, socket: &mut TcpStream) -> io::Result<Filled> {
        if self.start > 0 {
            self.incoming.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.filled == self.incoming.len() {
            // rustls needs all the buffer holds before it can go on: one whole record, or the
            // records of one handshake message.
            let grown = wanted(&self.incoming).clamp(INCOMING_SMALL, INCOMING_MAX);
            if grown == self.incoming.len() {
                return Err(invalid(
                    "a TLS record or handshake message larger than rustls allows",
                ));
            }
            self.incoming.resize(grown, 0);
        }
        let space = &mut self.incoming[self.filled..];
        let asked = space.len();
        let n = socket.read(space)?;
        let (start, end) = (self.filled, self.filled + n);
        self.filled = end;
        self.head.note(&self.incoming[start..end]);
        Ok(Filled::Socket(n, asked))
    }

    /// [`TlsStream::advance`] over this connection's own buffer; freed once rustls used it all.
    fn advance_kept(&mut self, socket: &mut TcpStream, want: Want<'_>) -> io::Result<Got> {
        if self.start == self.filled {
            // Nothing kept (every write, most of the time): rustls keeps every byte it still
            // needs, so none of its state points into a buffer.
            return Ok(self.advance(socket, &mut [], want)?.0);
        }
        let mut kept = std::mem::take(&mut self.incoming);
        let result = self.advance(socket, &mut kept[self.start..self.filled], want);
        self.incoming = kept;
        let (got, used) = result?;
        self.start += used;
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
            self.incoming = Vec::new();
        }
        Ok(got)
    }

    /// Drives rustls over `incoming` until it gives what `want` asks, or needs more: handshake
    /// records are sealed into `held` and written, records decrypted are copied out (as many
    /// as `buf` takes; the rest kept when `want` is not a read), plaintext is sealed and
    /// written. Gives where it stopped and the bytes of `incoming` rustls is done with.
    fn advance(
        &mut self,
        socket: &mut TcpStream,
        incoming: &mut [u8],
        mut want: Want<'_>,
    ) -> io::Result<(Got, usize)> {
        if self.failed {
            return Err(invalid("the TLS session failed"));
        }
        let mut at = 0;
        let mut plain = 0;
        loop {
            let status = self.conn.process_tls_records(&mut incoming[at..]);
            let discard = status.discard;
            let mut got = None;
            match status.state {
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    // One record per pass: rustls yields the next one at the next pass.
                    if let Some(record) = traffic.next_record() {
                        let payload = record.map_err(invalid)?.payload;
                        match &mut want {
                            Want::Read(buf)
                                if self.rest.is_empty() && payload.len() <= buf.len() - plain =>
                            {
                                buf[plain..plain + payload.len()].copy_from_slice(payload);
                                plain += payload.len();
                            }
                            _ => self.rest.buf.extend_from_slice(payload),
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let held = &mut self.held.buf;
                    let at = held.len();
                    let need = match encode.encode(&mut []) {
                        Err(EncodeError::InsufficientSize(size)) => size.required_size,
                        _ => 0,
                    };
                    held.resize(at + need, 0);
                    let n = encode.encode(&mut held[at..]).unwrap_or(0);
                    held.truncate(at + n);
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // What the socket does not take waits in `held` for WRITABLE.
                    send_held(&mut self.held, socket)?;
                    transmit.done();
                }
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    got = Some(match &want {
                        Want::Read(_) => Got::Blocked,
                        Want::Write(_) if !self.held.is_empty() => Got::Wrote(0),
                        Want::Write(data) => {
                            let limits = (self.record, self.batch);
                            Got::Wrote(seal(&mut traffic, data, limits, socket, &mut self.held)?)
                        }
                        Want::Close => {
                            let held = &mut self.held.buf;
                            let at = held.len();
                            held.resize(at + RECORD_OVERHEAD, 0);
                            let n = traffic.queue_close_notify(&mut held[at..]).unwrap_or(0);
                            held.truncate(at + n);
                            send_held(&mut self.held, socket)?;
                            Got::Wrote(0)
                        }
                    });
                }
                Ok(ConnectionState::BlockedHandshake) => got = Some(Got::Blocked),
                Ok(ConnectionState::PeerClosed) => {
                    // Edge-triggered: noted for every read from now on. We may still write.
                    self.peer_closed = true;
                    self.eof_pending = true;
                }
                Ok(ConnectionState::Closed) => {
                    self.peer_closed = true;
                    self.eof_pending = true;
                    got = Some(Got::Blocked);
                }
                Ok(_) => return Err(invalid("early data, which this server never accepts")),
                Err(e) => {
                    at += discard;
                    return Err(self.fail(socket, &mut incoming[at..], e));
                }
            }
            at += discard;
            if self.handshake_until.is_some() && !self.conn.is_handshaking() {
                self.handshake_done();
            }
            let Want::Read(buf) = &mut want else {
                match got {
                    Some(got) => return Ok((got, at)),
                    None => continue,
                }
            };
            // A read stops at the first of: rustls needs input, `buf` is full (a record kept),
            // the peer's end, or no ciphertext left (nothing more can come out of none).
            let have = plain > 0 || !self.rest.is_empty();
            let done = got.is_some() || self.peer_closed || at == incoming.len();
            if have && (done || !self.rest.is_empty() || plain == buf.len()) {
                let n = match plain {
                    0 => take(&mut self.rest, buf),
                    n => n,
                };
                self.records_ready = at < incoming.len();
                return Ok((Got::Read(n), at));
            }
            if self.peer_closed {
                self.eof_pending = false;
                return Ok((Got::Read(0), at));
            }
            if let Some(got) = got {
                return Ok((got, at));
            }
        }
    }

    /// The peer broke the protocol: it hears why (an alert, or a 400 if it spoke plain HTTP),
    /// and the error ends the connection as `tls_error`. `incoming` is what rustls has not
    /// discarded.
    #[cold]
    fn fail(&mut self, socket: &mut TcpStream, incoming: &mut [u8], e: rustls::Error) -> io::Error {
        if self.http && self.conn.is_handshaking() && self.head.looks_like_http() {
            // Best effort: the connection ends here either way.
            let _ = socket.write(PLAIN_HTTP_ANSWER);
            return invalid("a plain HTTP request on the TLS port (answered 400)");
        }
        // The alert rustls queued comes out at the next pass, before it would look at the
        // ciphertext again (which would fail again): one pass, no more.
        self.failed = true;
        let status = self.conn.process_tls_records(incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state {
            let mut alert = [0; RECORD_OVERHEAD];
            if let Ok(n) = encode.encode(&mut alert) {
                self.held.buf.extend_from_slice(&alert[..n]);
            }
        }
        // Best effort: the connection ends here either way.
        let _ = send_held(&mut self.held, socket);
        invalid(e)
    }

    /// The peer closed without `close_notify`: an error while the handshake is unfinished, else
    /// the end of the stream (an echo has no length a truncation could cut short unseen).
    fn unclean_end(&mut self) -> io::Result<usize> {
        if self.conn.is_handshaking() {
            return Err(invalid("the peer closed during the TLS handshake"));
        }
        Ok(0)
    }

    /// The handshake just completed: no deadline any more, and the client's certificate, if
    /// any, is read for its subject.
    #[cold]
    fn handshake_done(&mut self) {
        self.handshake_until = None;
        let first = self
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first());
        if let Some(Ok((_, cert))) = first.map(|der| x509_parser::parse_x509_certificate(der)) {
            self.subject = Some(cert.subject().to_string().into());
        }
    }

    pub(super) fn peer_identity(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Whether the last read left the socket empty.
    pub(super) fn socket_drained(&self) -> bool {
        self.socket_drained
    }

    /// Seals as much of `data` as one write's batches take and writes it; `Ok(0)` while sealed
    /// records wait for the socket (backpressure: the rest waits in our output) or the
    /// handshake holds plaintext back.
    #[inline(never)]
    pub(super) fn write(&mut self, socket: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
        if !self.held.is_empty() && send_held(&mut self.held, socket)? {
            return Ok(0);
        }
        match self.advance_kept(socket, Want::Write(data))? {
            Got::Wrote(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Writes the records held until the socket would block; true if it did.
    #[inline(never)]
    pub(super) fn flush(&mut self, socket: &mut TcpStream) -> io::Result<bool> {
        send_held(&mut self.held, socket)
    }

    pub(super) fn wants_write(&self) -> bool {
        !self.held.is_empty()
    }

    pub(super) fn holds_input(&self) -> bool {
        !self.rest.is_empty() || self.eof_pending || self.more || self.records_ready
    }

    /// Seals `close_notify` and writes it if the socket takes it now.
    pub(super) fn close_notify(&mut self, socket: &mut TcpStream) {
        // Best effort: the FIN follows either way.
        let _ = self.advance_kept(socket, Want::Close);
    }

    pub(super) fn handshake_deadline(&self) -> Option<Instant> {
        self.handshake_until
    }
}

/// What a full buffer of kept ciphertext must grow to for rustls to go on: the end of the record
/// it cuts, read from that record's header (a 16 KiB record takes 16 KiB, not the next power of
/// two), or twice as much when it holds only whole records (a handshake message in pieces) or
/// too little of a header to tell.
fn wanted(kept: &[u8]) -> usize {
    let mut at = 0;
    while let Some(header) = kept.get(at..at + 5) {
        let end = at + 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
        if end > kept.len() {
            return end;
        }
        at = end;
    }
    kept.len() * 2
}

#[cfg(test)]
mod tests {
    use super::{wanted, Head};

    fn record(len: u16) -> Vec<u8> {
        let mut record = vec![0x17, 0x03, 0x03];
        record.extend_from_slice(&len.to_be_bytes());
        record.resize(5 + usize::from(len), 0xAB);
        record
    }

    /// A cut record grows the buffer to its end; whole records or a cut header double it.
    #[test]
    fn the_buffer_grows_to_the_end_of_the_record_it_cuts() {
        let big = record(16_640);
        assert_eq!(wanted(&big[..9000]), 16_645);
        let mut two = record(300);
        two.extend_from_slice(&big[..4000]);
        assert_eq!(wanted(&two), 305 + 16_645);
        let whole = [record(100), record(200)].concat();
        assert_eq!(wanted(&whole), 2 * 310);
        assert_eq!(wanted(&big[..3]), 6);
    }

    fn head(bytes: &[u8]) -> Head {
        let mut head = Head::default();
        let len = bytes.len().min(head.bytes.len());
        head.bytes[..len].copy_from_slice(&bytes[..len]);
        head.len = len;
        head
    }

    /// A plain HTTP request is told from a ClientHello and from garbage by its first bytes.
    #[test]
    fn a_plain_http_request_is_told_by_its_method() {
        for request in [
            &b"GET / HTTP/1.1"[..],
            b"POST /x",
            b"OPTIONS * HTTP/1.1",
            b"PUT ",
        ] {
            assert!(head(request).looks_like_http(), "{request:?}");
        }
        for other in [
            &[0x16, 0x03, 0x01, 0x02, 0x00][..],
            b"get / x",
            b"GE",
            b"AB /",
            b"\0\0\0",
        ] {
            assert!(!head(other).looks_like_http(), "{other:?}");
        }
    }
}
