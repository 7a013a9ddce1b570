//! Heap allocations per message over TLS in steady state (issue 19): a counting global allocator
//! (dhat's, so no unsafe code here) watches the whole process while rustls clients echo
//! messages over chunk framing after warm-up, 64 B and 1024 B, one record each way.
//!
//! The count cannot be 0: rustls 0.23 allocates once per record it seals (the encrypter returns
//! an owned record) and once per record it decrypts (each record's plaintext is copied into a
//! `Vec`), on the client as on the server, buffered API or unbuffered. So the test asserts what
//! is left for saythat: the whole process makes at most those 4 per message (client: seal and
//! decrypt; server: decrypt and seal), i.e. the server's own code adds none. The day rustls
//! lends the caller's buffers all the way through, the figure drops and the bound still holds.
//!
//! One test per file: the allocator counts every thread of this test binary.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{Read, Write};

use common::{answer, show, TestServer};
use saythat::config::FramingKind;
use saythat::Config;
use tls::{tls_connect, Pki, TlsClient};

#[global_allocator]
static COUNTING: dhat::Alloc = dhat::Alloc;

/// rustls's own allocations per echoed message, both ends in this process: one record sealed and
/// one decrypted by the client, the same by the server.
const RUSTLS_PER_MESSAGE: u64 = 4;

/// Sends `message` on every client and reads each answer into `got`, `rounds` times, checking
/// it is `expected`; nothing here allocates but rustls.
fn echo(clients: &mut [TlsClient], message: &[u8], expected: &[u8], got: &mut [u8], rounds: u64) {
    for _ in 0..rounds {
        for client in clients.iter_mut() {
            client.write_all(message).expect("send");
            client.flush().expect("send");
        }
        for client in clients.iter_mut() {
            client.read_exact(got).expect("read the answer");
            assert!(got == expected, "wrong answer: {}", show(got));
        }
    }
}

#[test]
fn tls_echo_allocates_only_rustls_records() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let pki = Pki::new();
    for size in [64, 1024] {
        let server = TestServer::start(&Config {
            framing: FramingKind::Chunk,
            tls_cert: Some(pki.cert.clone()),
            tls_key: Some(pki.key.clone()),
            ..Config::loopback()
        });
        let config = pki.client(&[], None);
        let mut clients: Vec<TlsClient> = (0..10)
            .map(|_| tls_connect(server.addr(), config.clone()).expect("handshake"))
            .collect();
        let message = vec![b'p'; size];
        let expected = answer(&message);
        let mut got = vec![0; expected.len()];
        // Warm-up: the handshakes' leftovers (session tickets) are read, and the loop's and
        // rustls's buffers reach their working size.
        echo(&mut clients, &message, &expected, &mut got, 200);
        let before = dhat::HeapStats::get().total_blocks;
        let rounds = 1_000;
        echo(&mut clients, &message, &expected, &mut got, rounds);
        let grown = dhat::HeapStats::get().total_blocks - before;
        let messages = rounds * clients.len() as u64;
        eprintln!(
            "{size} B over TLS: {grown} allocations for {messages} messages ({:.3} each, both ends)",
            grown as f64 / messages as f64
        );
        assert!(
            grown <= RUSTLS_PER_MESSAGE * messages,
            "{size} B over TLS: {grown} allocations while echoing {messages} messages: more than \
             rustls's {RUSTLS_PER_MESSAGE} per message, so the server allocates per message"
        );
        drop(clients);
        server.abort();
    }
}
