//! The peer saythat is measured against: a minimal tokio echo server with the same prefix and
//! the same chunk framing (each read of up to 1024 bytes answered by prefix + those bytes), on a
//! current-thread runtime, i.e. one worker thread like saythat's one loop.
//!
//! Shared by `examples/tokio_peer.rs` (for scripts) and `benches/roundtrip.rs`. It must stay the
//! idiomatic minimal server, not be tuned past what a tokio user would write.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Binds `addr` on a fresh current-thread runtime in a new thread; returns the bound address.
pub fn spawn(addr: SocketAddr, prefix: Vec<u8>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(serve(listener, prefix));
    });
    Ok(local)
}

/// Accepts forever, a task per connection.
pub async fn serve(listener: std::net::TcpListener, prefix: Vec<u8>) {
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    let prefix: std::sync::Arc<[u8]> = prefix.into();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(echo(socket, prefix.clone()));
    }
}

async fn echo(mut socket: TcpStream, prefix: std::sync::Arc<[u8]>) {
    let mut input = [0u8; 1024];
    let mut answer = Vec::with_capacity(prefix.len() + input.len());
    loop {
        let n = match socket.read(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        answer.clear();
        answer.extend_from_slice(&prefix);
        answer.extend_from_slice(&input[..n]);
        if socket.write_all(&answer).await.is_err() {
            return;
        }
    }
}
