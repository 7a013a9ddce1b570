//! The peer saythat's TLS is measured against: hyper (HTTP mode) or the tokio chunk echo, each
//! over tokio-rustls, on a current-thread runtime (one thread, like saythat's one loop):
//!
//!     cargo run --release --example hyper_rustls_peer -- 127.0.0.1:0 'You say that ' http \
//!         tls/server.pem tls/server.key
//!
//! `http` answers as `examples/hyper_peer.rs` does (keep-alive HTTPS, ALPN `http/1.1` offered as
//! saythat offers it); `chunk` echoes each read behind the prefix as `examples/tokio_peer.rs`
//! does. The certificate file holds the chain (leaf first), the key is PEM (PKCS#8, PKCS#1 or
//! SEC1), as `saythat serve --tls-cert/--tls-key` take them; rustls's defaults otherwise (TLS 1.2
//! and 1.3, its safe suites, its default provider aws-lc-rs, session tickets as it sets them).
//! Prints `listening on ADDR` on stderr, like `saythat serve`, and serves until killed. It must stay
//! the idiomatic minimal server, not be tuned past what a tokio-rustls user would write.

#[path = "peer/hyper_echo.rs"]
#[allow(dead_code)] // The TLS peer takes its answer, not its plain listener.
mod hyper_echo;
#[path = "peer/tokio_echo.rs"]
#[allow(dead_code)] // The TLS peer takes its chunk echo, not its plain listener.
mod tokio_echo;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const USAGE: &str = "usage: hyper_rustls_peer ADDR PREFIX http|chunk CERT_PEM KEY_PEM";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Http,
    Chunk,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, prefix, mode, cert, key] = &args[..] else {
        eprintln!("error: five arguments wanted\n{USAGE}");
        std::process::exit(2);
    };
    let mode = match mode.as_str() {
        "http" => Mode::Http,
        "chunk" => Mode::Chunk,
        other => {
            eprintln!("error: unknown mode {other:?}; give http or chunk\n{USAGE}");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| {
        eprintln!("error: {addr:?} is not an address ({e}); give e.g. 127.0.0.1:8443\n{USAGE}");
        std::process::exit(2);
    });
    let config = server_config(cert, key, mode).unwrap_or_else(|e| {
        eprintln!("error: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .unwrap_or_else(|e| {
            eprintln!("error: cannot listen on {addr}: {}", saythat::describe(&e));
            std::process::exit(1);
        });
    let local = listener.local_addr().expect("a bound address");
    // One write, so a script reading the log never sees half the line.
    let line = format!("listening on {local}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(serve(listener, prefix.clone().into_bytes(), config, mode));
}

/// The server's rustls configuration from the PEM files, with ALPN `http/1.1` in HTTP mode.
fn server_config(cert: &str, key: &str, mode: Mode) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {key}: {e}"))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a server: {e}"))?;
    if mode == Mode::Http {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(config)
}

/// Accepts forever, a task per connection: the handshake, then hyper or the chunk echo.
async fn serve(
    listener: std::net::TcpListener,
    prefix: Vec<u8>,
    config: rustls::ServerConfig,
    mode: Mode,
) {
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let body_prefix = Bytes::from(prefix.clone());
    let chunk_prefix: Arc<[u8]> = prefix.into();
    let mut http = http1::Builder::new();
    http.keep_alive(true).pipeline_flush(true);
    let http = Arc::new(http);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let acceptor = acceptor.clone();
        let (body_prefix, chunk_prefix, http) =
            (body_prefix.clone(), chunk_prefix.clone(), http.clone());
        tokio::spawn(async move {
            // A failed handshake (a scanner, a client that gave up) ends only this connection.
            let Ok(stream) = acceptor.accept(socket).await else {
                return;
            };
            match mode {
                Mode::Chunk => tokio_echo::echo_chunks(stream, chunk_prefix).await,
                Mode::Http => {
                    let service =
                        service_fn(move |request| hyper_echo::answer(request, body_prefix.clone()));
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}
