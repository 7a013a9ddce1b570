//! `saythat send --tls`: the same conversation as `send`, over rustls. The handshake is done
//! first, bounded by `--timeout`; then, as over plain TCP, one thread sends (the message, or
//! stdin as it comes) and ends with `close_notify` and a half-close, while this one prints the
//! answers until the server closes.
//!
//! The two threads share the TLS state behind a mutex, held only to encrypt or decrypt, never
//! across a blocking read or write of the socket, so a server that stops reading while it
//! answers cannot stall the answers. It must never print a byte that failed TLS's checks.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use super::{finish_sending, Input, Received, SendError};
use crate::tls_client::{describe_handshake_error, TlsClient};

/// Bytes of stdin encrypted at once: rustls's largest record's worth.
const CHUNK: usize = 16 * 1024;

/// A TLS failure as an I/O error, in words with a hint.
fn tls_error(e: &rustls::Error) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, describe_handshake_error(e))
}

/// A handshake I/O error: rustls's own errors come wrapped in `InvalidData`, told with a hint.
fn handshake_error(e: io::Error) -> io::Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_error(tls),
        None => e,
    }
}

/// Does the handshake on a connected blocking socket, bounded by its timeouts.
pub(super) fn handshake(
    sock: &mut TcpStream,
    tls: &TlsClient,
    name: ServerName<'static>,
) -> io::Result<ClientConnection> {
    let mut conn =
        ClientConnection::new(Arc::clone(&tls.config), name).map_err(|e| tls_error(&e))?;
    while conn.is_handshaking() {
        conn.complete_io(sock).map_err(handshake_error)?;
    }
    Ok(conn)
}

fn lock(conn: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
    // A panic elsewhere cannot leave rustls's state half-changed in a way that matters here: the
    // process is about to report it and end.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `input` to `addr` over TLS, verifying the server as `name`, and copies the answers to
/// `out` until the server closes; `send`'s contract otherwise.
pub fn send_tls(
    addr: SocketAddr,
    timeout: Duration,
    tls: &TlsClient,
    name: ServerName<'static>,
    input: Input<'_>,
    out: &mut dyn Write,
) -> Result<Received, SendError> {
    let fail = SendError::at(addr, timeout);
    let mut sock = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("connect", e))?;
    let configured = sock
        .set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .and_then(|()| sock.set_nodelay(true));
    configured.map_err(|e| fail("configure", e))?;
    let conn =
        handshake(&mut sock, tls, name).map_err(|e| fail("complete the TLS handshake with", e))?;
    // Until everything is sent, a slow stdin may keep the connection quiet (`finish_sending`).
    sock.set_read_timeout(None)
        .map_err(|e| fail("configure", e))?;
    let conn = Arc::new(Mutex::new(conn));
    let writer = match input {
        Input::Message(bytes) => {
            let sent = encrypt_and_send(&conn, &sock, bytes)
                .and_then(|()| end_and_half_close(&conn, &sock, timeout));
            if let Err(e) = sent {
                // TLS 1.3 servers judge a client certificate after the client's last handshake
                // message, so a refusal can first show as a broken pipe: the alert that came
                // with it says why.
                let _ = sock.set_read_timeout(Some(timeout));
                return Err(match print_answers(&conn, &sock, &mut io::sink(), &fail) {
                    Err(refused) if refused.source.kind() == ErrorKind::InvalidData => refused,
                    _ => fail("send to", e),
                });
            }
            None
        }
        Input::Stream(mut reader) => {
            let sock = sock.try_clone().map_err(|e| fail("configure", e))?;
            let conn = Arc::clone(&conn);
            Some(thread::spawn(move || -> io::Result<()> {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    encrypt_and_send(&conn, &sock, &buf[..n])?;
                }
                end_and_half_close(&conn, &sock, timeout)
            }))
        }
    };
    let received = print_answers(&conn, &sock, out, &fail)?;
    // As over plain TCP: a stream still being read is not waited for once the server closed.
    if let Some(writer) = writer.filter(|w| w.is_finished()) {
        match writer.join() {
            Ok(result) => result.map_err(|e| fail("send to", e))?,
            Err(_) => {
                let e = io::Error::other("the stdin thread panicked");
                return Err(fail("send to", e));
            }
        }
    }
    Ok(received)
}

/// Encrypts `bytes` (none: only what rustls has queued) and writes the records, the lock
/// released before the write.
fn encrypt_and_send(
    conn: &Mutex<ClientConnection>,
    sock: &TcpStream,
    bytes: &[u8],
) -> io::Result<()> {
    let mut records = Vec::new();
    {
        let mut conn = lock(conn);
        // rustls bounds what it buffers: take the bytes a piece at a time, flushing between.
        let mut rest = bytes;
        loop {
            while conn.wants_write() {
                conn.write_tls(&mut records)?;
            }
            if rest.is_empty() {
                break;
            }
            match conn.writer().write(rest)? {
                0 => return Err(ErrorKind::WriteZero.into()),
                n => rest = &rest[n..],
            }
        }
    }
    let mut sock = sock;
    sock.write_all(&records)
}

/// Tells the server the message is complete: `close_notify`, then the half-close that also
/// bounds the wait for answers from now on.
fn end_and_half_close(
    conn: &Mutex<ClientConnection>,
    sock: &TcpStream,
    timeout: Duration,
) -> io::Result<()> {
    lock(conn).send_close_notify();
    encrypt_and_send(conn, sock, &[])?;
    finish_sending(sock, timeout)
}

/// Reads records until the server closes, printing what they decrypt to.
fn print_answers(
    conn: &Mutex<ClientConnection>,
    sock: &TcpStream,
    out: &mut dyn Write,
    fail: &dyn Fn(&'static str, io::Error) -> SendError,
) -> Result<Received, SendError> {
    let mut wire = vec![0u8; CHUNK + 1024];
    let mut plain = Vec::new();
    let mut received = Received::default();
    let mut sock = sock;
    loop {
        let n = match sock.read(&mut wire) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail("read", e)),
        };
        let ended =
            decrypt(&mut lock(conn), &wire[..n], &mut plain).map_err(|e| fail("read", e))?;
        if let Some(&last) = plain.last() {
            received.bytes += plain.len() as u64;
            received.last_byte = Some(last);
            out.write_all(&plain)
                .and_then(|()| out.flush())
                .map_err(|e| fail("print the answer of", e))?;
            plain.clear();
        }
        if ended {
            return Ok(received);
        }
    }
}

/// Feeds `wire` (empty: the end of the stream) to rustls and appends the plaintext to `plain`;
/// returns whether the server has closed.
fn decrypt(conn: &mut ClientConnection, mut wire: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
    let at_end = wire.is_empty();
    loop {
        // An empty slice tells rustls of the end of the stream.
        conn.read_tls(&mut wire)?;
        conn.process_new_packets().map_err(|e| tls_error(&e))?;
        match conn.reader().read_to_end(plain) {
            // close_notify: the server is done.
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                log::warn!("the server closed without a TLS close_notify: its last answer may be cut short");
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
        if wire.is_empty() {
            return Ok(at_end);
        }
    }
}
