//! TLS at its edges (issue 19), black box over loopback, for any correct transport: records
//! that carry no plaintext (KeyUpdates, empty padded records) cannot hold the loop nor lose the
//! message behind them, and another client stays served while one floods them; more than
//! `--max-pending` right behind the handshake comes back whole, and a slow reader costs about the
//! cap; a ClientHello larger than one read completes, one announcing more than rustls's limit is
//! refused as `tls_error`; half a record then the FIN ends cleanly.
//!
//! rustls's own limits shape these tests (rustls 0.23): a server takes at most 32 KeyUpdates in
//! a row without application data (`TooManyKeyUpdateRequests`, after BoringSSL's
//! `kMaxKeyUpdates`) and at most 32 empty records in a row (`TooManyEmptyFragments`), and takes
//! a handshake message of at most 0xffff bytes (it refuses a longer one from its header). A KeyUpdate is 27 bytes on the wire, so 32 of
//! them fit one read; rustls's client never sends an empty or padded record. To send records
//! that carry nothing and fill many reads, a test holds the session's keys (rustls's
//! `dangerous_extract_secrets`) and seals the records itself: up to 16 KiB of padding each.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{report, show, wait_for, ServerProcess, TestServer, PREFIX, TIMEOUT};
use rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, ConnectionTrafficSecrets, ContentType, ProtocolVersion,
    RootCertStore, StreamOwned, SupportedCipherSuite,
};
use saythat::config::FramingKind;
use saythat::Config;
use tls::{
    assert_ended, closed_total, expect_closed, server_config, tls_connect, tls_read_exact,
    tls_read_to_end, tls_send_expect, Pki,
};

/// How many records with nothing in them, or KeyUpdates, rustls's server takes in a row.
const RUSTLS_IN_A_ROW: usize = 32;

/// The largest TLSInnerPlaintext (RFC 8446, 5.2): 2^14 bytes of content or padding, and the type.
const MAX_INNER: usize = (1 << 14) + 1;

/// The longest one answer may keep a client waiting while another floods: generous, so the
/// test is not timed, only stuck-proof.
const FAIR: Duration = Duration::from_secs(5);

/// The line framing's answer to each of `lines`, concatenated.
fn answers(lines: &[u8]) -> Vec<u8> {
    lines
        .split_inclusive(|b| *b == b'\n')
        .flat_map(|line| [PREFIX, line].concat())
        .collect()
}

/// A new client session, not yet connected, trusting `pki`'s CA.
fn client_conn(config: Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(config, ServerName::try_from("127.0.0.1").unwrap()).unwrap()
}

/// A socket to `addr` with the TLS tests' timeouts.
fn socket_to(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(tls::TLS_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(tls::TLS_TIMEOUT)).unwrap();
    socket
}

/// The records `conn` has queued, as bytes for the wire.
fn queued(conn: &mut ClientConnection) -> Vec<u8> {
    let mut bytes = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut bytes).unwrap();
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// A session whose keys the test holds

/// The sending half: seals records as the test writes them, padding and all.
struct Sealer {
    encrypter: Box<dyn MessageEncrypter>,
    seq: u64,
}

impl Sealer {
    /// A record whose TLSInnerPlaintext is `inner` followed by one zero. rustls's encrypter
    /// appends the type it is given; type 0 reads as padding, so `inner` carries its own.
    fn seal(&mut self, inner: &[u8]) -> Vec<u8> {
        let message = OutboundPlainMessage {
            typ: ContentType::from(0),
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(inner),
        };
        let record = self.encrypter.encrypt(message, self.seq).unwrap();
        self.seq += 1;
        record.encode()
    }

    /// A record of application data.
    fn data(&mut self, data: &[u8]) -> Vec<u8> {
        self.seal(&[data, &[u8::from(ContentType::ApplicationData)]].concat())
    }

    /// An application data record of `data` padded to `wire` bytes on the wire (its 5-byte
    /// header, the inner plaintext, ChaCha20-Poly1305's 16-byte tag).
    fn padded(&mut self, data: &[u8], wire: usize) -> Vec<u8> {
        let mut inner = vec![0; wire - 5 - 16 - 1];
        inner[..data.len()].copy_from_slice(data);
        inner[data.len()] = u8::from(ContentType::ApplicationData);
        let record = self.seal(&inner);
        assert_eq!(record.len(), wire);
        record
    }

    /// An application data record with no data and all the padding TLS allows: 16 KiB that
    /// carry nothing.
    fn empty(&mut self) -> Vec<u8> {
        self.padded(&[], 5 + MAX_INNER + 16)
    }
}

/// The receiving half: opens the server's records, skipping tickets and KeyUpdates.
struct Opener {
    socket: TcpStream,
    decrypter: Box<dyn MessageDecrypter>,
    seq: u64,
    /// Ciphertext read and not yet a whole record.
    records: Vec<u8>,
    /// Plaintext opened and not yet taken.
    plain: Vec<u8>,
}

impl Opener {
    /// The application data of the next records, at least one byte; an alert or the end of
    /// the stream is an error.
    fn read_some(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if !self.plain.is_empty() {
                return Ok(std::mem::take(&mut self.plain));
            }
            let whole = self.records.len() >= 5
                && self.records.len()
                    >= 5 + usize::from(u16::from_be_bytes([self.records[3], self.records[4]]));
            if !whole {
                let mut chunk = [0; 32 * 1024];
                match self.socket.read(&mut chunk)? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => self.records.extend_from_slice(&chunk[..n]),
                }
                continue;
            }
            let len = 5 + usize::from(u16::from_be_bytes([self.records[3], self.records[4]]));
            let mut record: Vec<u8> = self.records.drain(..len).collect();
            let typ = ContentType::from(record[0]);
            let message =
                InboundOpaqueMessage::new(typ, ProtocolVersion::TLSv1_2, &mut record[5..]);
            let plain = self
                .decrypter
                .decrypt(message, self.seq)
                .map_err(io::Error::other)?;
            self.seq += 1;
            match plain.typ {
                ContentType::ApplicationData => self.plain.extend_from_slice(plain.payload),
                ContentType::Alert => {
                    return Err(io::Error::other(format!("an alert: {:?}", plain.payload)))
                }
                _ => {}
            }
        }
    }

    /// Exactly `n` bytes of application data.
    #[track_caller]
    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self.read_some() {
                Ok(bytes) => got.extend(bytes),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    panic!(
                        "{} of {n} bytes, then nothing for {:?}",
                        got.len(),
                        tls::TLS_TIMEOUT
                    )
                }
                Err(e) => panic!("{} of {n} bytes, then: {e}", got.len()),
            }
        }
        self.plain = got.split_off(n);
        got
    }
}

/// A TLS 1.3 session with `addr` (line framing) whose keys the test holds.
fn keyed_session(addr: SocketAddr, pki: &Pki) -> (Sealer, TcpStream, Opener) {
    keyed_session_on(socket_to(addr), pki)
}

/// A TLS 1.3 session over `socket` (to a line framing server) whose keys the test holds: one
/// line is exchanged first through rustls, so the server's tickets are read, then the keys are
/// taken.
fn keyed_session_on(socket: TcpStream, pki: &Pki) -> (Sealer, TcpStream, Opener) {
    // ChaCha20-Poly1305: aws-lc's TLS 1.3 AES-GCM sealing key insists on starting at sequence
    // number 0, and the keys are taken mid-session.
    let suite = aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256;
    let provider = CryptoProvider {
        cipher_suites: vec![suite],
        ..aws_lc_rs::default_provider()
    };
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_secret_extraction = true;
    let mut client = StreamOwned::new(client_conn(Arc::new(config)), socket);
    while client.conn.is_handshaking() {
        client.conn.complete_io(&mut client.sock).unwrap();
    }
    tls_send_expect(&mut client, b"keys\n", b"You say that keys\n");
    let secrets = client.conn.dangerous_extract_secrets().unwrap();
    let SupportedCipherSuite::Tls13(suite) = suite else {
        unreachable!("a TLS 1.3 suite")
    };
    let keys = |secrets| match secrets {
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => unreachable!("ChaCha20-Poly1305 was the only suite offered"),
    };
    let (tx_seq, tx) = secrets.tx;
    let (rx_seq, rx) = secrets.rx;
    let ((tx_key, tx_iv), (rx_key, rx_iv)) = (keys(tx), keys(rx));
    let sealer = Sealer {
        encrypter: suite.aead_alg.encrypter(tx_key, tx_iv),
        seq: tx_seq,
    };
    let opener = Opener {
        socket: client.sock.try_clone().unwrap(),
        decrypter: suite.aead_alg.decrypter(rx_key, rx_iv),
        seq: rx_seq,
        records: Vec::new(),
        plain: Vec::new(),
    };
    (sealer, client.sock, opener)
}

/// One round of a flood: as many empty 16 KiB records as rustls takes in a row (128 reads'
/// worth of ciphertext at rustls's 4 KiB per read), then the line `m{round}`.
fn flood_round(sealer: &mut Sealer, round: usize) -> Vec<u8> {
    let mut flight = Vec::new();
    for _ in 0..RUSTLS_IN_A_ROW {
        flight.extend(sealer.empty());
    }
    flight.extend(sealer.data(format!("m{round}\n").as_bytes()));
    flight
}

/// The answers to rounds `0..rounds` of a flood.
fn flood_answers(rounds: usize) -> Vec<u8> {
    let lines: String = (0..rounds).map(|round| format!("m{round}\n")).collect();
    answers(lines.as_bytes())
}

/// Sets the flag when dropped, so a failing test stops the threads it started.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Records that carry no plaintext

/// 32 KeyUpdates (as many as rustls takes in a row) and a line, in one flight, then nothing:
/// the line is answered, through the server's own KeyUpdate.
#[test]
fn key_updates_then_a_line_in_one_flight_get_the_answer() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"before\n", b"You say that before\n");
    for _ in 0..RUSTLS_IN_A_ROW {
        client.conn.refresh_traffic_keys().unwrap();
    }
    client.conn.writer().write_all(b"after\n").unwrap();
    let flight = queued(&mut client.conn);
    client.sock.write_all(&flight).unwrap();
    let got = tls_read_exact(&mut client, b"You say that after\n".len());
    assert_eq!(show(&got), "You say that after\\n");
    tls_send_expect(&mut client, b"again\n", b"You say that again\n");
}

/// One KeyUpdate more than rustls takes in a row ends the connection as `tls_error`, at once:
/// never a hang, never an answer.
#[test]
fn one_key_update_past_rustls_limit_ends_as_tls_error() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    for _ in 0..=RUSTLS_IN_A_ROW {
        client.conn.refresh_traffic_keys().unwrap();
    }
    client.conn.writer().write_all(b"after\n").unwrap();
    let flight = queued(&mut client.conn);
    client.sock.write_all(&flight).unwrap();
    let (got, end) = tls_read_to_end(&mut client);
    assert!(got.is_empty(), "answered: {}", show(&got));
    let e = end.expect_err("an alert, not a clean end");
    assert_ended(&e);
    expect_closed(&server, "tls_error", 1);
}

/// Empty records of exactly 4 KiB (rustls's read size, so each read takes one), 14 of them and
/// a line in one write of 57 KiB, which loopback delivers at once (one socket event), then
/// nothing: the line is answered. The transport's cap on reads without plaintext (8 today) stops
/// halfway, so the rest is answered only if the transport comes back to it without a socket
/// event. Four rounds, each after the last one's answer.
#[test]
fn empty_records_past_the_read_cap_then_a_line_lose_nothing() {
    const EMPTY: usize = 14;
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let (mut sealer, mut socket, mut opener) = keyed_session(server.addr(), &pki);
    for round in 0..4 {
        let line = format!("round {round}\n");
        let mut flight = Vec::new();
        for _ in 0..EMPTY {
            flight.extend(sealer.padded(&[], 4096));
        }
        flight.extend(sealer.data(line.as_bytes()));
        socket.write_all(&flight).unwrap();
        let expected = answers(line.as_bytes());
        assert_eq!(show(&opener.read_exact(expected.len())), show(&expected));
    }
}

/// One empty record more than rustls takes in a row (33, then a line) ends the connection as
/// `tls_error`, at once: never a hang, never an answer.
#[test]
fn one_empty_record_past_rustls_limit_ends_as_tls_error() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let (mut sealer, mut socket, mut opener) = keyed_session(server.addr(), &pki);
    let mut flight = Vec::new();
    for _ in 0..=RUSTLS_IN_A_ROW {
        flight.extend(sealer.padded(&[], 64));
    }
    flight.extend(sealer.data(b"after\n"));
    socket.write_all(&flight).unwrap();
    let e = opener
        .read_some()
        .expect_err("an alert or the end, not an answer");
    assert_ended(&e);
    expect_closed(&server, "tls_error", 1);
}

/// While one client floods empty 16 KiB records (with a line every 32 of them), another's
/// ping-pong keeps being answered, each within `FAIR`; the flood goes on until the pings are
/// done, so a loop held by the flood fails here. Then every line of the flood is answered.
#[test]
fn a_flood_of_empty_records_leaves_another_client_served() {
    const PINGS: usize = 20;
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let (mut sealer, mut socket, mut opener) = keyed_session(server.addr(), &pki);
    let mut pinger = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flooder = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        thread::spawn(move || -> io::Result<(usize, bool)> {
            let started = Instant::now();
            let mut round = 0;
            // Bounded, should the pings never end.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < 6 * FAIR {
                socket.write_all(&flood_round(&mut sealer, round))?;
                round += 1;
                sent.store(round, Ordering::Relaxed);
            }
            Ok((round, stop.load(Ordering::Relaxed)))
        })
    };
    let stopping = StopOnDrop(Arc::clone(&stop));
    wait_for(TIMEOUT, "two rounds of the flood sent", || {
        (sent.load(Ordering::Relaxed) >= 2).then_some(())
    });
    let mut slowest = Duration::ZERO;
    for i in 0..PINGS {
        let ping = format!("ping {i}\n");
        let started = Instant::now();
        tls_send_expect(&mut pinger, ping.as_bytes(), &answers(ping.as_bytes()));
        let took = started.elapsed();
        assert!(took < FAIR, "ping {i} took {took:?} behind the flood");
        slowest = slowest.max(took);
    }
    drop(stopping);
    let (rounds, stopped) = flooder.join().unwrap().expect("the flood's writes");
    report("tls_limits.flood_rounds", rounds);
    report("tls_limits.slowest_ping_us", slowest.as_micros());
    assert!(
        stopped,
        "the flood ran out of time ({rounds} rounds) before the pings were done"
    );
    let expected = flood_answers(rounds);
    assert_eq!(show(&opener.read_exact(expected.len())), show(&expected));
}

// ---------------------------------------------------------------------------------------------
// 2. More than `--max-pending` right behind the handshake

/// The small cap of these tests: the 64 KiB a client sends is 16 times it.
const SMALL_CAP: u32 = 4096;

/// 64 KiB of 64-byte lines, numbered.
fn numbered_lines() -> Vec<u8> {
    (0..1024)
        .flat_map(|i| format!("line {i:04} {}\n", "x".repeat(53)).into_bytes())
        .collect()
}

/// A client writes 64 KiB (16 times `--max-pending`) before its handshake completes, so rustls
/// sends it right behind its Finished, then only reads: every answer comes back, byte for byte.
/// The server gets plaintext it cannot answer yet with the handshake's last bytes, and must come
/// back to it when its output drains, with no socket event to say so.
#[test]
fn more_than_max_pending_right_behind_the_finished_comes_back_whole() {
    let pki = Pki::new();
    let server = TestServer::start(&Config {
        max_pending: SMALL_CAP,
        ..server_config(&pki, FramingKind::Line)
    });
    let mut conn = client_conn(pki.client(&[], None));
    conn.set_buffer_limit(None);
    let lines = numbered_lines();
    conn.writer().write_all(&lines).unwrap();
    let mut client = StreamOwned::new(conn, socket_to(server.addr()));
    while client.conn.is_handshaking() {
        let hello = queued(&mut client.conn);
        client.sock.write_all(&hello).unwrap();
        let n = client.conn.read_tls(&mut client.sock).unwrap();
        assert!(n > 0, "the server closed during the handshake");
        client.conn.process_new_packets().unwrap();
    }
    // The Finished and the lines, in one write.
    let flight = queued(&mut client.conn);
    assert!(
        flight.len() > lines.len(),
        "a flight of {} bytes",
        flight.len()
    );
    client.sock.write_all(&flight).unwrap();
    let expected = answers(&lines);
    let got = tls_read_exact(&mut client, expected.len());
    assert_eq!(show(&got), show(&expected));
}

/// The same 64 KiB written in one go once the handshake is done, then only reads: every answer
/// comes back, byte for byte.
#[test]
fn more_than_max_pending_after_the_handshake_comes_back_whole() {
    let pki = Pki::new();
    let server = TestServer::start(&Config {
        max_pending: SMALL_CAP,
        ..server_config(&pki, FramingKind::Line)
    });
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    client.conn.set_buffer_limit(None);
    let lines = numbered_lines();
    client.conn.writer().write_all(&lines).unwrap();
    let flight = queued(&mut client.conn);
    client.sock.write_all(&flight).unwrap();
    let expected = answers(&lines);
    let got = tls_read_exact(&mut client, expected.len());
    assert_eq!(show(&got), show(&expected));
}

/// A client writes lines flat out for 3 s over TLS and reads the answers at 2 MiB/s, with
/// `--max-pending` 4 KiB: the binary's RSS grows by less than the bound of
/// tests/backpressure.rs's plain non-reader (8 MiB). What a connection may hold is its output
/// (the cap and one read's answers), rustls's outgoing records (its buffer limit, the same cap,
/// and a record), rustls's decrypted plaintext (16 KiB) and one record being read (16 KiB):
/// under 128 KiB; the rest of the bound is the allocator's. A server that read on regardless
/// would take the writer's hundreds of MiB. Every answer read is checked, byte for byte.
#[test]
fn a_slow_reader_behind_a_small_max_pending_costs_about_the_cap() {
    const BOUND: u64 = 8 << 20;
    const READ_RATE: f64 = 2.0 * 1024.0 * 1024.0;
    let pki = Pki::new();
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let cap = SMALL_CAP.to_string();
    let server = ServerProcess::serve(&[
        "--framing",
        "line",
        "--max-pending",
        &cap,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    let mut warm = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut warm, b"warm up\n", b"You say that warm up\n");
    let baseline = server.rss_bytes();

    let (mut sealer, mut socket, mut opener) = keyed_session(server.addr(), &pki);
    let line = [&[b'a'; 63][..], b"\n"].concat();
    let block = line.repeat(255);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        socket
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        thread::spawn(move || {
            let mut sent = 0u64;
            'flood: while !stop.load(Ordering::Relaxed) {
                // A record goes out whole, or the session would be out of step.
                let record = sealer.data(&block);
                let mut at = 0;
                while at < record.len() {
                    match socket.write(&record[at..]) {
                        Ok(n) => at += n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            // Stopped: the reader is gone, and the server with it may be.
                            if stop.load(Ordering::Relaxed) {
                                break 'flood;
                            }
                        }
                        Err(_) => break 'flood,
                    }
                }
                sent += block.len() as u64;
            }
            sent
        })
    };
    let stopping = StopOnDrop(Arc::clone(&stop));
    let answer = answers(&line);
    let started = Instant::now();
    let mut received = 0u64;
    let mut peak = baseline;
    while started.elapsed() < Duration::from_secs(3) {
        let due = Duration::from_secs_f64(received as f64 / READ_RATE);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
        let got = match opener.read_some() {
            Ok(got) => got,
            Err(e) => panic!("the slow reader, after {received} bytes: {e}"),
        };
        for (i, byte) in got.iter().enumerate() {
            let at = (received + i as u64) % answer.len() as u64;
            assert_eq!(
                *byte,
                answer[at as usize],
                "answer byte {}",
                received + i as u64
            );
        }
        received += got.len() as u64;
        peak = peak.max(server.rss_bytes());
    }
    drop(stopping);
    let sent = writer.join().unwrap();
    let growth = peak.saturating_sub(baseline);
    report("tls_limits.slow_reader_received", received);
    report("tls_limits.slow_reader_sent", sent);
    report("tls_limits.slow_reader_rss_growth", growth);
    assert!(
        received > 1 << 20,
        "the reader got only {received} bytes in 3 s"
    );
    assert!(
        growth < BOUND,
        "the server's RSS grew by {growth} bytes (from {baseline}) behind a slow TLS reader \
         (read {received}, sent {sent}) with --max-pending {SMALL_CAP}"
    );
    tls_send_expect(&mut warm, b"still there?\n", b"You say that still there?\n");
}

// ---------------------------------------------------------------------------------------------
// 3. A ClientHello larger than one read

/// Sends a ClientHello offering `names` ALPN names of 200 bytes (the server, in line mode,
/// offers none, so it ignores them) in one write, of at least `at_least` bytes: the handshake
/// completes and a line is answered.
fn a_large_client_hello_completes(names: usize, at_least: usize) {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut config = (*pki.client(&[], None)).clone();
    config.alpn_protocols = (0..names)
        .map(|i| format!("{i:03}{}", "p".repeat(197)).into_bytes())
        .collect();
    let mut conn = client_conn(Arc::new(config));
    let hello = queued(&mut conn);
    assert!(hello.len() > at_least, "a hello of {} bytes", hello.len());
    let mut socket = socket_to(server.addr());
    socket.write_all(&hello).unwrap();
    let mut client = StreamOwned::new(conn, socket);
    while client.conn.is_handshaking() {
        client.conn.complete_io(&mut client.sock).unwrap();
    }
    tls_send_expect(&mut client, b"big hello\n", b"You say that big hello\n");
}

/// A 48 KiB ClientHello (240 ALPN names, under rustls's 0xffff) cut into records of 4 bytes:
/// 108 KiB on the wire, more than the ~82 KiB a connection keeps for one handshake message in
/// pieces (`INCOMING_MAX` in src/transport/tls_stream.rs, whose record headers it keeps too):
/// refused as `tls_error`, never a buffer that grows with what the peer sends, and the server
/// serves the next client.
#[test]
fn a_handshake_message_in_tiny_records_past_the_kept_bound_ends_as_tls_error() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut config = (*pki.client(&[], None)).clone();
    config.alpn_protocols = (0..240)
        .map(|i| format!("{i:03}{}", "p".repeat(197)).into_bytes())
        .collect();
    let hello = queued(&mut client_conn(Arc::new(config)));
    let mut message = Vec::new();
    let mut rest = &hello[..];
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        message.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    let tiny: Vec<u8> = message
        .chunks(4)
        .flat_map(|chunk| [&[0x16, 0x03, 0x01, 0x00, chunk.len() as u8][..], chunk].concat())
        .collect();
    assert!(tiny.len() > 100 * 1024, "{} bytes on the wire", tiny.len());
    let mut socket = socket_to(server.addr());
    // The server may stop reading, and reset, before the last byte.
    let _ = socket.write_all(&tiny);
    let mut got = Vec::new();
    match socket.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "no end after a hello in {} bytes of records: {e}",
            tiny.len()
        ),
    }
    assert!(got.is_empty() || got[0] == 21, "{}", show(&got));
    expect_closed(&server, "tls_error", 1);
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"next\n", b"You say that next\n");
}

/// A ClientHello of some 12 KiB (60 ALPN names, as large as post-quantum key shares make
/// them), three of rustls's 4 KiB reads and more: the handshake completes.
#[test]
fn a_client_hello_larger_than_one_read_completes() {
    a_large_client_hello_completes(60, 12 * 1024);
}

/// A ClientHello of some 48 KiB (240 ALPN names), in one write: twelve of rustls's 4 KiB reads
/// and more, past the transport's cap on reads without plaintext (8 today), with no socket event
/// after the first: the handshake completes only if the transport comes back to the rest.
#[test]
fn a_client_hello_past_the_read_cap_completes() {
    a_large_client_hello_completes(240, 48 * 1024);
}

/// A ClientHello announcing 128 KiB, past the 0xffff bytes rustls takes for a handshake message,
/// sent whole: refused (rustls reads the length in the message's header; the transport's own
/// bound on what a connection keeps, `INCOMING_MAX` in src/transport/tls_stream.rs, is the
/// backstop), the connection ends (an alert, the end or a reset, never a hang), counted as
/// `tls_error`, and the server serves the next client.
#[test]
fn a_handshake_message_over_rustls_limit_ends_as_tls_error() {
    const ANNOUNCED: usize = 128 * 1024;
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let hello = queued(&mut client_conn(pki.client(&[], None)));
    let first = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    assert_eq!(hello.len(), 5 + first, "rustls's hello in one record");
    let mut body = hello[5 + 4..].to_vec();
    body.resize(ANNOUNCED, 0);
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let message = [&[1, len[1], len[2], len[3]][..], &body].concat();
    let big: Vec<u8> = message
        .chunks(1 << 14)
        .flat_map(|chunk| {
            let len = u16::try_from(chunk.len()).unwrap().to_be_bytes();
            [&[0x16, 0x03, 0x01, len[0], len[1]][..], chunk].concat()
        })
        .collect();
    let mut socket = socket_to(server.addr());
    // The server may stop reading, and reset, before the last byte.
    let _ = socket.write_all(&big);
    let mut got = Vec::new();
    match socket.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no end after a hello of {} bytes: {e}", big.len()),
    }
    assert!(got.is_empty() || got[0] == 21, "{}", show(&got));
    expect_closed(&server, "tls_error", 1);
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"next\n", b"You say that next\n");
}

// ---------------------------------------------------------------------------------------------
// 4. Half a record, then the FIN

/// After a line answered, a client sends half of the next record and its FIN, with no
/// `close_notify`: nothing of that record is answered, the server ends the connection (its
/// end arrives, not a hang), counts it once, as `client` (a FIN) or `tls_error` (a record cut
/// short), and another client connected all along is still served.
#[test]
fn half_a_record_then_the_fin_ends_cleanly() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut other = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut other, b"before\n", b"You say that before\n");
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"one\n", b"You say that one\n");
    client.conn.writer().write_all(b"never whole\n").unwrap();
    let record = queued(&mut client.conn);
    client.sock.write_all(&record[..record.len() / 2]).unwrap();
    client.sock.shutdown(Shutdown::Write).unwrap();
    let (got, end) = tls_read_to_end(&mut client);
    assert!(got.is_empty(), "answered: {}", show(&got));
    if let Err(e) = end {
        assert_ended(&e);
    }
    let metrics = server.metrics[0];
    wait_for(TIMEOUT, "one close, as client or tls_error", || {
        (closed_total(metrics, "client") + closed_total(metrics, "tls_error") == 1).then_some(())
    });
    assert_eq!(closed_total(metrics, "error"), 0);
    tls_send_expect(&mut other, b"after\n", b"You say that after\n");
}
