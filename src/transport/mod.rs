//! What carries a connection's bytes under the protocols: plain TCP, or TLS (rustls) when
//! `--tls-cert` is given. [`Transport`] is the small interface `connection.rs` drives: read
//! plaintext, write plaintext, flush what the transport itself holds, and say whether it holds
//! input or output the socket's readiness does not show.
//!
//! Plain TCP must cost nothing: it is a unit variant that goes straight to the socket, and the
//! methods on the message path take `PLAIN`, true where the caller looked once per event and
//! knows the transport is plain, so that path reads no transport at all. The transport never
//! parses a protocol, never blocks, and never holds more than a bounded buffer (TLS's is
//! `--max-pending` and one record, tls_stream.rs).

mod certs;
mod plain;
mod tls;
mod tls_io;
mod tls_stream;

use std::io;
use std::time::Instant;

use mio::net::TcpStream;

pub use certs::{TlsError, TlsFiles};
pub use tls::{Tls, TlsServer};
pub use tls_stream::TlsStream;

/// How a connection's bytes travel.
#[derive(Debug)]
pub enum Transport {
    /// Straight to the socket.
    Plain,
    /// Through a rustls session, boxed so a plain connection stays as small as it was.
    Tls(Box<TlsStream>),
}

impl Transport {
    /// One read of plaintext into `buf`: `Ok(0)` at the end of the stream, WouldBlock when
    /// nothing is left. `trust_short` says whether a short socket read proves it drained (the
    /// edge was not a FIN or urgent data), so TLS reads no further after one; plain TCP never
    /// asks.
    #[inline]
    pub fn read<const PLAIN: bool>(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut [u8],
        trust_short: bool,
    ) -> io::Result<usize> {
        if known_plain::<PLAIN>(self) {
            return plain::read(socket, buf);
        }
        match self {
            Transport::Plain => plain::read(socket, buf),
            Transport::Tls(tls) => tls.read(socket, buf, trust_short),
        }
    }

    /// After a read shorter than asked, whether nothing is left to read until the next socket
    /// event: always over plain TCP; over TLS only if the socket itself read short or would
    /// block (a short read of plaintext may be the end of a record while more records wait in
    /// the socket) and rustls holds nothing either (a `close_notify` not yet handed out).
    #[inline]
    pub fn short_read_drained<const PLAIN: bool>(&self) -> bool {
        if known_plain::<PLAIN>(self) {
            return true;
        }
        match self {
            Transport::Plain => true,
            Transport::Tls(tls) => tls.socket_drained() && !tls.holds_input(),
        }
    }

    /// Writes as much of `data` as the transport takes without blocking; `Ok(0)` when full.
    #[inline]
    pub fn write<const PLAIN: bool>(
        &mut self,
        socket: &mut TcpStream,
        data: &[u8],
    ) -> io::Result<usize> {
        if known_plain::<PLAIN>(self) {
            return plain::write_some(socket, data);
        }
        match self {
            Transport::Plain => plain::write_some(socket, data),
            Transport::Tls(tls) => tls.write(socket, data),
        }
    }

    /// Writes what the transport itself holds (TLS records) until the socket is full.
    #[inline]
    pub fn flush(&mut self, socket: &mut TcpStream) -> io::Result<()> {
        match self {
            Transport::Plain => Ok(()),
            Transport::Tls(tls) => tls.flush(socket).map(|_| ()),
        }
    }

    /// Bytes held inside the transport wait for the socket: the poll must report WRITABLE.
    #[inline]
    pub fn wants_write<const PLAIN: bool>(&self) -> bool {
        if known_plain::<PLAIN>(self) {
            return false;
        }
        match self {
            Transport::Plain => false,
            Transport::Tls(tls) => tls.wants_write(),
        }
    }

    /// Plaintext already decrypted waits inside the transport: no socket event will announce
    /// it, so the connection must be served again without one.
    #[inline]
    pub fn holds_input<const PLAIN: bool>(&self) -> bool {
        if known_plain::<PLAIN>(self) {
            return false;
        }
        match self {
            Transport::Plain => false,
            Transport::Tls(tls) => tls.holds_input(),
        }
    }

    /// Whether this is plain TCP: the one look per event that lets the message path pass
    /// `PLAIN`.
    #[inline]
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain)
    }

    /// Says the end of our stream inside the transport (TLS `close_notify`), before the FIN.
    pub fn close_notify(&mut self, socket: &mut TcpStream) {
        if let Transport::Tls(tls) = self {
            tls.close_notify(socket);
        }
    }

    /// Who the peer proved to be: the subject of its TLS client certificate (mutual TLS).
    pub fn peer_identity(&self) -> Option<&str> {
        match self {
            Transport::Plain => None,
            Transport::Tls(tls) => tls.peer_identity(),
        }
    }

    /// When the transport's own setup (the TLS handshake) must have completed.
    pub fn handshake_deadline(&self) -> Option<Instant> {
        match self {
            Transport::Plain => None,
            Transport::Tls(tls) => tls.handshake_deadline(),
        }
    }
}

/// `PLAIN`: the caller knows `transport` is plain, so the methods above skip their match (a
/// load and a branch each, several per message). Checked in debug builds.
#[inline(always)]
fn known_plain<const PLAIN: bool>(transport: &Transport) -> bool {
    debug_assert!(
        !PLAIN || transport.is_plain(),
        "PLAIN passed for a TLS transport"
    );
    PLAIN
}
