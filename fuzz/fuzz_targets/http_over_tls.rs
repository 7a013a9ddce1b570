//! Fuzzes HTTP mode over saythat's server-side TLS transport, to show the seam between them
//! holds: each read of the plan (`http_check.rs`, the same input as `http_stream`) is written
//! by an in-memory rustls client as TLS records into a loopback socket, read back as plaintext
//! through `Transport::read` (the crate's public API, as `connection.rs` reads it), and only
//! that plaintext reaches `Http`. rustls itself is fuzzed upstream; this fuzzes nothing new in
//! it.
//!
//! Checked on every run: everything `http_stream` checks, on the plaintext TLS handed out; the
//! plaintext of each read is exactly the bytes the client sent (nothing added, lost, reordered
//! or held back to a later read); and the answers are the same as `http_stream`'s for the same
//! plaintext and cuts (the `Date` aside).
//!
//! One certificate (rcgen, made once per process) and one TLS session over one loopback pair
//! serve every input: a handshake per input would cost more than the input, and a new pair per
//! input would use up the ephemeral ports. The session carries only bytes, and every byte is
//! compared, so what an input leaves behind would show as a difference in the next.
#![no_main]

mod http_check;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use saythat::transport::{TlsFiles, TlsServer, Transport};

/// Tries of a read that would block before the loopback is taken to have lost bytes (each
/// try yields; loopback bytes are there as soon as the write returns, so one try is the rule).
const MAX_EMPTY_READS: usize = 10_000;

/// The client and server ends of one TLS session over a loopback pair.
struct Pipe {
    client: ClientConnection,
    client_socket: TcpStream,
    server: Transport,
    server_socket: mio::net::TcpStream,
}

impl Pipe {
    fn new() -> Pipe {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a self-signed certificate");
        let dir = std::env::temp_dir().join(format!("saythat-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder for the certificate");
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert.cert.pem()).expect("the certificate written");
        std::fs::write(&files.key, cert.signing_key.serialize_pem()).expect("the key written");
        let tls = TlsServer::new(files, true, 1 << 20, Duration::from_secs(10))
            .expect("saythat's TLS server");
        let _ = std::fs::remove_dir_all(&dir);

        let mut roots = RootCertStore::empty();
        roots.add(cert.cert.der().clone()).expect("the root");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("a server name");
        let client = ClientConnection::new(Arc::new(config), name).expect("a client session");

        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let client_socket = TcpStream::connect(listener.local_addr().expect("its address"))
            .expect("a loopback connection");
        let (server_socket, _) = listener.accept().expect("the accepted connection");
        client_socket.set_nonblocking(true).expect("non-blocking");
        // Each read's records go out at once, not held by Nagle for the last one's ACK.
        client_socket.set_nodelay(true).expect("TCP_NODELAY");
        server_socket.set_nonblocking(true).expect("non-blocking");
        let mut pipe = Pipe {
            client,
            client_socket,
            server: tls.accept(Instant::now()).expect("a server session"),
            server_socket: mio::net::TcpStream::from_std(server_socket),
        };
        let mut tries = 0;
        while pipe.client.is_handshaking() {
            tries += 1;
            assert!(tries < MAX_EMPTY_READS, "the handshake never completes");
            pipe.client_flush();
            match pipe
                .server
                .read::<false>(&mut pipe.server_socket, &mut [0; 64], false)
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("the server handed out {other:?} during the handshake"),
            }
            pipe.server
                .flush(&mut pipe.server_socket)
                .expect("server flush");
            pipe.client_drain();
            std::thread::yield_now();
        }
        pipe
    }

    /// Writes every record the client holds into the socket.
    fn client_flush(&mut self) {
        while self.client.wants_write() {
            match self.client.write_tls(&mut self.client_socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("the client's write failed: {e}"),
            }
        }
    }

    /// Takes what the server sent the client (handshake, session tickets): the server writes
    /// nothing else, since the answers go to the fuzz driver, not back over TLS.
    fn client_drain(&mut self) {
        loop {
            match self.client.read_tls(&mut self.client_socket) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(_) => {
                    let state = self
                        .client
                        .process_new_packets()
                        .expect("the server's records");
                    let mut plain = Vec::new();
                    let _ = self.client.reader().read_to_end(&mut plain);
                    assert!(
                        plain.is_empty() && !state.peer_has_closed(),
                        "the server sent {} bytes of plaintext, or closed",
                        plain.len()
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("the client's read failed: {e}"),
            }
        }
    }

    /// Sends `piece` as the client's TLS records, and returns the plaintext the server's
    /// transport hands out for it, checked to be the same bytes and no more.
    fn carry(&mut self, piece: &[u8]) -> Vec<u8> {
        self.client
            .writer()
            .write_all(piece)
            .expect("the client takes the piece");
        self.client_flush();
        let mut out = Vec::with_capacity(piece.len());
        let mut buf = [0; 16 * 1024];
        let mut empty = 0;
        while out.len() < piece.len() {
            match self.server.read::<false>(&mut self.server_socket, &mut buf, true) {
                Ok(0) => panic!("the transport ended the stream after {} bytes", out.len()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    empty += 1;
                    assert!(
                        empty < MAX_EMPTY_READS,
                        "the transport held back {} of {} bytes",
                        piece.len() - out.len(),
                        piece.len()
                    );
                    std::thread::yield_now();
                }
                Err(e) => panic!("the transport failed: {e}"),
            }
        }
        assert_eq!(out, piece, "the transport changed the plaintext");
        assert!(
            !self.server.holds_input::<false>(),
            "the transport holds input past the piece"
        );
        self.client_drain();
        out
    }
}

thread_local! {
    static PIPE: RefCell<Option<Pipe>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some(plain) = http_check::check(data, &mut |piece| piece.to_vec()) else {
        return;
    };
    PIPE.with(|pipe| {
        let mut pipe = pipe.borrow_mut();
        let pipe = pipe.get_or_insert_with(Pipe::new);
        let over_tls = http_check::check(data, &mut |piece| pipe.carry(piece))
            .expect("the same plan parses the same");
        for (run, (plain, tls)) in ["whole", "split", "tight"]
            .iter()
            .zip(plain.iter().zip(&over_tls))
        {
            assert!(
                plain == tls,
                "the {run} run answered differently over TLS\nplain: {:?}\nTLS: {:?}",
                String::from_utf8_lossy(plain),
                String::from_utf8_lossy(tls)
            );
        }
    });
});
