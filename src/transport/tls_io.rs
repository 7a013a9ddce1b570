//! The bytes around a TLS session (tls_stream.rs): the buffers a loop's thread shares among its
//! connections (ciphertext read, records sealed), the bytes a connection keeps only while it
//! must, and sealing plaintext into records written at once. Nothing here keeps memory per
//! connection beyond what waits, and nothing blocks: a full socket leaves bytes kept.

use std::cell::RefCell;
use std::io::{self, Write};

use mio::net::TcpStream;
use rustls::server::ServerConnectionData;
use rustls::unbuffered::{EncryptError, InsufficientSizeError, WriteTraffic};

/// The most plaintext one record carries (TLS's limit; `--max-pending` may cap it lower).
pub(super) const RECORD_PLAINTEXT: usize = 16 * 1024;

/// Plaintext sealed for one socket write (`--max-pending` may cap it lower): four full
/// records, one syscall.
pub(super) const WRITE_BATCH: usize = 4 * RECORD_PLAINTEXT;

/// Room a record needs beyond its plaintext (header, content type, nonce, tag; 29 B at most
/// with the default suites); rustls says when it needs more, and the scratch grows.
pub(super) const RECORD_OVERHEAD: usize = 64;

/// One socket read into the shared buffer: a whole record of the largest kind (16 KiB of
/// plaintext and TLS 1.2's 2 KiB of expansion, behind its 5-byte header).
pub(super) const SHARED_READ: usize = 5 + 16 * 1024 + 2048;

thread_local! {
    /// Where ciphertext lands when a connection keeps none (the common case): a connection
    /// keeps its own buffer only for what rustls leaves, so an idle one holds none.
    pub(super) static SHARED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Records sealed for one socket write, shared by the loop's connections (one thread, one
    /// loop): `WRITE_BATCH` and its records' overhead at most.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes kept in a buffer with a read position: `buf[at..]` waits.
#[derive(Debug, Default)]
pub(super) struct Kept {
    pub(super) buf: Vec<u8>,
    pub(super) at: usize,
}

impl Kept {
    pub(super) fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }

    /// Marks `n` more bytes used; once all are, gives the memory back if it grew past `keep`.
    pub(super) fn consume(&mut self, n: usize, keep: usize) {
        self.at += n;
        if self.is_empty() {
            self.at = 0;
            self.buf.clear();
            if self.buf.capacity() > keep {
                self.buf = Vec::new();
            }
        }
    }
}

/// Seals `data` into the thread's scratch, `limits.1` of plaintext per socket write in
/// records of `limits.0`, and writes each batch; what the socket does not take of a batch is
/// kept in `held`, and what it sealed counts as taken. Gives the plaintext taken.
pub(super) fn seal(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    data: &[u8],
    (record, batch): (usize, usize),
    socket: &mut TcpStream,
    held: &mut Kept,
) -> io::Result<usize> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut taken = 0;
        while taken < data.len() {
            let end = data.len().min(taken + batch);
            let mut sealed = 0;
            while taken < end {
                let piece = &data[taken..end.min(taken + record)];
                let need = sealed + piece.len() + RECORD_OVERHEAD;
                if scratch.len() < need {
                    scratch.resize(need, 0);
                }
                match traffic.encrypt(piece, &mut scratch[sealed..]) {
                    Ok(n) => sealed += n,
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) => {
                        scratch.resize(sealed + required_size, 0);
                        continue;
                    }
                    Err(e) => return Err(invalid(e)),
                }
                taken += piece.len();
            }
            let sent = send(socket, &scratch[..sealed])?;
            if sent < sealed {
                held.buf.extend_from_slice(&scratch[sent..sealed]);
                break;
            }
        }
        Ok(taken)
    })
}

/// Hands out plaintext kept in `rest`.
pub(super) fn take(rest: &mut Kept, buf: &mut [u8]) -> usize {
    let kept = &rest.buf[rest.at..];
    let n = kept.len().min(buf.len());
    buf[..n].copy_from_slice(&kept[..n]);
    rest.consume(n, RECORD_PLAINTEXT);
    n
}

/// Writes what `held` keeps until the socket would block; true if it did.
pub(super) fn send_held(held: &mut Kept, socket: &mut TcpStream) -> io::Result<bool> {
    if held.is_empty() {
        return Ok(false);
    }
    let n = send(socket, &held.buf[held.at..])?;
    held.consume(n, 0);
    Ok(!held.is_empty())
}

/// Writes `bytes` until done or the socket would block; gives the bytes written.
fn send(socket: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < bytes.len() {
        match socket.write(&bytes[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

pub(super) fn invalid<E: Into<Box<dyn std::error::Error + Send + Sync>>>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
