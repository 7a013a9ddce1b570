//! The peer saythat is measured against: a minimal tokio echo server with the same prefix and
//! the same framings (chunk: each read of up to 1024 bytes answered by prefix + those bytes;
//! line: each `\n` line answered by prefix + the line), on a current-thread runtime, i.e. one
//! worker thread like saythat's one loop.
//!
//! Shared by `examples/tokio_peer.rs` (for scripts) and `benches/roundtrip.rs`. It must stay the
//! idiomatic minimal server, not be tuned past what a tokio user would write.

use std::net::SocketAddr;
use std::sync::Arc;

use saythat::config::FramingKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes per read, saythat's `READ_SIZE`, so both servers make the same number of reads.
const READ_SIZE: usize = 1024;
/// Longest line kept while waiting for its `\n` (saythat's default `--max-line`); a longer one
/// closes the connection, so a client cannot grow the peer's memory without bound.
const MAX_LINE: usize = 8192;

/// Binds `addr` and serves chunk framing; see `spawn_with`.
#[allow(dead_code)] // Only the bench uses the chunk-only form.
pub fn spawn(addr: SocketAddr, prefix: Vec<u8>) -> std::io::Result<SocketAddr> {
    spawn_with(addr, prefix, FramingKind::Chunk)
}

/// Binds `addr` on a fresh current-thread runtime in a new thread; returns the bound address.
pub fn spawn_with(
    addr: SocketAddr,
    prefix: Vec<u8>,
    framing: FramingKind,
) -> std::io::Result<SocketAddr> {
    if framing == FramingKind::Http {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the tokio peer speaks chunk and line framing; use examples/hyper_peer.rs for HTTP",
        ));
    }
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(serve(listener, prefix, framing));
    });
    Ok(local)
}

/// Accepts forever, a task per connection.
pub async fn serve(listener: std::net::TcpListener, prefix: Vec<u8>, framing: FramingKind) {
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    let prefix: Arc<[u8]> = prefix.into();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        match framing {
            FramingKind::Chunk => tokio::spawn(echo_chunks(socket, prefix.clone())),
            FramingKind::Line => tokio::spawn(echo_lines(socket, prefix.clone())),
            // Refused by spawn_with: examples/hyper_peer.rs is the HTTP peer.
            FramingKind::Http => return,
        };
    }
}

/// Answers each read with one `write_all` and a `flush` (a no-op on a `TcpStream`; over
/// tokio-rustls, what sends the record: the TLS peer, `examples/hyper_rustls_peer.rs`, uses this).
pub async fn echo_chunks<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S, prefix: Arc<[u8]>) {
    let mut input = [0u8; READ_SIZE];
    let mut answer = Vec::with_capacity(prefix.len() + input.len());
    loop {
        let n = match socket.read(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        answer.clear();
        answer.extend_from_slice(&prefix);
        answer.extend_from_slice(&input[..n]);
        if socket.write_all(&answer).await.is_err() || socket.flush().await.is_err() {
            return;
        }
    }
}

/// Answers every complete line of a read with one `write_all`; keeps the unterminated tail for
/// the next read, and answers it as it is when the client half-closes (as saythat does).
async fn echo_lines(mut socket: TcpStream, prefix: Arc<[u8]>) {
    let mut input = [0u8; READ_SIZE];
    let mut pending = Vec::new();
    let mut answer = Vec::new();
    loop {
        let n = match socket.read(&mut input).await {
            Ok(0) => {
                if !pending.is_empty() {
                    answer.clear();
                    answer.extend_from_slice(&prefix);
                    answer.extend_from_slice(&pending);
                    let _ = socket.write_all(&answer).await;
                }
                return;
            }
            Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&input[..n]);
        answer.clear();
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + i + 1;
            answer.extend_from_slice(&prefix);
            answer.extend_from_slice(&pending[start..end]);
            start = end;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            return;
        }
        if !answer.is_empty() && socket.write_all(&answer).await.is_err() {
            return;
        }
    }
}
