//! `load --tls`: one connection's TLS, driven sans-IO the way rustls's mio examples do
//! (`read_tls` → `process_new_packets` → `reader()`; `writer()` → `write_tls`), so the loop in
//! `worker.rs` reads and writes plaintext as it would a socket.
//!
//! It exists to keep rustls's calls in one place with the socket's contract: `read` drains like
//! a socket read (`Ok(0)` the server closed, `WouldBlock` nothing more until an event), `flush`
//! stops at a full socket. It must never buffer more than rustls's own bounded buffers, and
//! never report a connection drained while rustls still holds plaintext, since no socket event
//! would come for it.

use std::io::{self, ErrorKind, Read};

use mio::net::TcpStream;
use rustls::ClientConnection;

use crate::tls_client::describe_handshake_error;

/// A rustls error in words, after sending the alert it queued (best effort) to tell the server.
fn failed(tls: &mut ClientConnection, sock: &mut TcpStream, e: &rustls::Error) -> io::Error {
    let _ = flush(tls, sock);
    io::Error::new(ErrorKind::InvalidData, describe_handshake_error(e))
}

/// Writes the records rustls has queued until there are none (`Ok`) or the socket is full
/// (`WouldBlock`).
pub(crate) fn flush(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Moves the handshake on with what the socket has: `Ok(true)` once it is done, `Ok(false)`
/// while it waits for the server (or, if `tls.wants_write()`, for room in the socket).
pub(crate) fn handshake(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<bool> {
    loop {
        match flush(tls, sock) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
        if !tls.is_handshaking() {
            return Ok(true);
        }
        match tls.read_tls(sock) {
            Ok(0) => {
                let why = "the server closed the connection during the TLS handshake (is it \
                           speaking TLS on that port? does it ask for a client certificate?)";
                return Err(io::Error::new(ErrorKind::UnexpectedEof, why));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            return Err(failed(tls, sock, &e));
        }
    }
}

/// Reads plaintext into `buf` as a socket read would: `Ok(0)` when the server closed (with or
/// without `close_notify`), `WouldBlock` once both rustls and the socket are drained.
///
/// `drained` carries over the calls one readiness event makes. A socket read that came up short
/// sets it (when `trust_short`: no end of stream is queued behind the bytes), and once rustls
/// has handed out what that read brought, the read that would only say `WouldBlock` is saved:
/// edge-triggered, the kernel tells of what arrives later. That read is one syscall per answer,
/// about a tenth of the generator's CPU per message.
pub(crate) fn read(
    tls: &mut ClientConnection,
    sock: &mut TcpStream,
    buf: &mut [u8],
    trust_short: bool,
    drained: &mut bool,
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock && *drained => return Err(e),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            // The server closed without close_notify: a close like any other to the checkers,
            // which tell an answer cut short.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut noted = Noted { sock, short: false };
        match tls.read_tls(&mut noted) {
            // rustls now knows of the end: the next `reader()` call says how it ended.
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        *drained = trust_short && noted.short;
        if let Err(e) = tls.process_new_packets() {
            return Err(failed(tls, sock, &e));
        }
    }
}

/// The socket as rustls reads it, noting whether the read gave bytes but fewer than asked.
struct Noted<'a> {
    sock: &'a mut TcpStream,
    short: bool,
}

impl Read for Noted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n > 0 && n < buf.len();
        Ok(n)
    }
}

/// Tells the server this side is done (before a `--reconnect` close, or any other), best
/// effort: the socket is closed right after, whatever this achieves.
pub(crate) fn close_notify(tls: &mut ClientConnection, sock: &mut TcpStream) {
    tls.send_close_notify();
    let _ = flush(tls, sock);
}
