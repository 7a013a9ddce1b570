//! The WebSocket peer saythat is measured against: a minimal tokio-tungstenite echo server with
//! the same prefix, on a current-thread runtime, i.e. one worker thread like saythat's one loop.
//! Every text or binary message is answered by a message of the same type whose payload is the
//! prefix and the payload; pings are answered by tungstenite itself, a close by a close.
//!
//! Shared by `examples/tungstenite_peer.rs` (for scripts) and the tests. It must stay the
//! idiomatic minimal server a tokio-tungstenite user would write, not be tuned.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// Binds `addr` on a fresh current-thread runtime in a new thread; returns the bound address.
/// The prefix is text, so a text answer stays valid UTF-8.
pub fn spawn(addr: SocketAddr, prefix: String) -> std::io::Result<SocketAddr> {
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
pub async fn serve(listener: std::net::TcpListener, prefix: String) {
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    let prefix: Arc<str> = prefix.into();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(echo(socket, prefix.clone()));
    }
}

async fn echo(socket: TcpStream, prefix: Arc<str>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let answer = match message {
            Message::Text(text) => Message::text(format!("{prefix}{}", text.as_str())),
            Message::Binary(data) => Message::binary([prefix.as_bytes(), &data].concat()),
            // Pings are answered and a close echoed by tungstenite as the stream is read.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
        };
        if ws.send(answer).await.is_err() {
            return;
        }
    }
}
