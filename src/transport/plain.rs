//! Plain TCP: reads and writes go straight to the socket, one syscall each in the common case.
//! It must never loop on a full socket nor retry anything but an interrupted call.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// One read into `buf`.
#[inline]
pub(super) fn read(socket: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match socket.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Writes as much of `data` as the socket takes without blocking. A short write means the send
/// buffer is full, exactly like WouldBlock, so no further write is tried: on an edge-triggered
/// socket WRITABLE will fire once space frees up. One `write` in the common case; the error
/// kinds are looked at only on an error, out of the hot path.
#[inline]
pub(super) fn write_some(socket: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    loop {
        match socket.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) => match write_error(e) {
                Some(result) => return result,
                None => continue,
            },
        }
    }
}

/// What a failed write means: `None` to retry it (interrupted), `Ok(0)` when the socket is
/// full, the error otherwise.
#[cold]
fn write_error(e: io::Error) -> Option<io::Result<usize>> {
    match e.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock => Some(Ok(0)),
        _ => Some(Err(e)),
    }
}
