//! Backpressure: a client that writes without reading costs the server at most `max_pending`
//! bytes of answers; past that the server stops reading, TCP flow control stalls the client, and
//! once the client reads it gets every answer, in order, nothing lost.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    fill_pattern, read_exact_timeout, report, roundtrip, send, tcp_mem_max, tcp_queues, wait_for,
    AnswerChecker, ServerProcess, TestServer, PREFIX,
};
use saythat::config::READ_SIZE;
use saythat::Config;

const MAX_PENDING: u32 = 64 * 1024;
/// No byte accepted for this long means the writes have stalled.
const STALL: Duration = Duration::from_millis(750);
/// Answer bytes the server may hold beyond `max_pending`: it checks the cap before each read, and
/// one read of READ_SIZE bytes adds one answer.
const ONE_ANSWER: u64 = (READ_SIZE + PREFIX.len()) as u64;

/// What flow control alone lets a non-reader get accepted when the server stops reading at
/// `max_pending`: full kernel buffers all along the path (the client's send buffer, the server's
/// receive buffer, the server's send buffer and the client's receive buffer, each at most its
/// sysctl maximum) plus the server's own cap. Measured here (tcp_wmem max 4 MiB, tcp_rmem max
/// 32 MiB): 8 to 15 MiB, mostly the two 4 MiB send buffers plus a receive buffer the server's
/// fast early reads autotuned to a few MiB.
fn flow_control_bound() -> u64 {
    let (wmem, rmem) = (tcp_mem_max("tcp_wmem"), tcp_mem_max("tcp_rmem"));
    2 * wmem + 2 * rmem + u64::from(MAX_PENDING) + ONE_ANSWER
}

/// Writes the pattern `seed` with non-blocking writes until `limit` bytes or until no byte was
/// accepted for `STALL`; returns the bytes accepted.
fn push_until_stalled(stream: &mut TcpStream, seed: u64, limit: u64) -> u64 {
    stream.set_nonblocking(true).unwrap();
    let mut buf = vec![0; 64 * 1024];
    let mut written = 0u64;
    let mut last_progress = Instant::now();
    while written < limit {
        let len = buf.len().min((limit - written) as usize);
        fill_pattern(seed, written, &mut buf[..len]);
        match stream.write(&buf[..len]) {
            Ok(n) => {
                written += n as u64;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if last_progress.elapsed() >= STALL {
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("non-reader: write failed after {written} bytes: {e}"),
        }
    }
    stream.set_nonblocking(false).unwrap();
    written
}

/// Reads answers until they carry `payload` bytes of the pattern `seed`, checking each byte.
fn read_answers(stream: &mut TcpStream, seed: u64, payload: u64, what: &str) -> AnswerChecker {
    let mut checker = AnswerChecker::new(seed);
    let mut buf = vec![0; 64 * 1024];
    while checker.payload < payload {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "{what}: EOF after {} of {payload} payload bytes",
                checker.payload
            ),
            Ok(n) => {
                if let Err(e) = checker.feed(&buf[..n]) {
                    panic!("{what}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: {e} after {} of {payload} payload bytes",
                checker.payload
            ),
        }
    }
    checker
}

#[test]
fn a_non_reader_is_stalled_by_flow_control_and_loses_nothing() {
    let server = TestServer::start(&Config {
        max_pending: MAX_PENDING,
        ..Config::loopback()
    });
    let bound = flow_control_bound();
    // Far more than any buffers on the path hold: a server that kept reading would take it all.
    let attempt = (2 * bound).max(100 << 20);
    let mut hog = server.connect();
    let written = push_until_stalled(&mut hog, 1, attempt);
    report("backpressure.accepted_bytes", written);
    assert!(
        written < bound,
        "the non-reader got {written} of {attempt} bytes accepted, more than the kernel buffers \
         on the path and max_pending hold ({bound}): the server kept reading although its \
         answers were not read"
    );

    // The precise form: the answers to what the server read, less what it handed back to the
    // kernel, are what it holds itself, and that must stay within max_pending and one answer.
    // Every answer carries at most READ_SIZE bytes, so the answers are at least the bytes read
    // plus a prefix per READ_SIZE. Bytes in flight that both ends count only make this looser,
    // never a false failure.
    let (client, server_side) = (hog.local_addr().unwrap(), server.addr());
    let (client_tx, client_rx) =
        tcp_queues(client, server_side).expect("the client socket in /proc/net/tcp");
    let (server_tx, server_rx) =
        tcp_queues(server_side, client).expect("the server socket in /proc/net/tcp");
    let read_by_server = written.saturating_sub(client_tx + server_rx);
    let handed_back = server_tx + client_rx;
    let answers_at_least =
        read_by_server + PREFIX.len() as u64 * read_by_server.div_ceil(READ_SIZE as u64);
    let held = answers_at_least.saturating_sub(handed_back);
    report("backpressure.read_by_server", read_by_server);
    report("backpressure.held_by_server_at_least", held);
    assert!(
        held <= u64::from(MAX_PENDING) + ONE_ANSWER,
        "the server read {read_by_server} bytes (at least {answers_at_least} answer bytes) but \
         handed only {handed_back} answer bytes to the kernel, so it holds at least {held} \
         bytes, more than max_pending {MAX_PENDING} and one answer (queues: client tx \
         {client_tx} rx {client_rx}, server tx {server_tx} rx {server_rx})"
    );

    // The stalled connection holds no one else up.
    let mut other = server.connect();
    for i in 0..20 {
        let started = Instant::now();
        roundtrip(&mut other, format!("ping {i}").as_bytes());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "another client waited {:?} for answer {i} while one client was stalled",
            started.elapsed()
        );
    }

    // Reading now releases everything the server accepted, byte for byte and in order.
    let checker = read_answers(&mut hog, 1, written, "the non-reader, reading at last");
    assert!(checker.at_boundary(), "the answers end inside an answer");
    hog.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    match hog.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "{} unexpected bytes after every answer: {:?}",
            rest.len(),
            String::from_utf8_lossy(&rest[..rest.len().min(64)])
        ),
        Err(e) => panic!("the non-reader: {e} instead of EOF after its answers"),
    }
    drop(other);
    drop(hog);
    let summary = server.shutdown();
    assert_eq!(
        summary.bytes_in,
        written
            + (0..20)
                .map(|i| format!("ping {i}").len() as u64)
                .sum::<u64>(),
        "the server's count of bytes read"
    );
}

#[test]
fn the_binary_rss_stays_flat_while_a_non_reader_pushes() {
    let mut server = ServerProcess::serve_measured(&["--max-pending", "65536"]);
    let mut warm = server.connect();
    roundtrip(&mut warm, b"warm up");
    let baseline = server.anon_rss_bytes();

    let mut hog = server.connect();
    hog.set_nonblocking(true).unwrap();
    let mut buf = vec![b'x'; 64 * 1024];
    let mut written = 0u64;
    let mut peak = baseline;
    let started = Instant::now();
    let mut next_sample = started;
    while started.elapsed() < Duration::from_secs(2) {
        match hog.write(&buf) {
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("non-reader: write failed after {written} bytes: {e}"),
        }
        if Instant::now() >= next_sample {
            peak = peak.max(server.anon_rss_bytes());
            next_sample += Duration::from_millis(50);
        }
        buf[0] = buf[0].wrapping_add(1);
    }
    peak = peak.max(server.anon_rss_bytes());
    server.assert_alive("while a client pushed without reading");
    roundtrip(&mut warm, b"still there?");
    let growth = peak.saturating_sub(baseline);
    report("backpressure.binary_rss_baseline", baseline);
    report("backpressure.binary_rss_growth", growth);
    report("backpressure.binary_pushed", written);
    assert!(
        growth < 8 * 1024 * 1024,
        "the server's memory grew by {growth} bytes (from {baseline}) while a non-reader pushed \
         {written} bytes"
    );
}

#[test]
fn one_byte_writes_get_fourteen_bytes_each() {
    let server = TestServer::start(&Config::loopback());
    let mut client = server.connect();
    let mut total = 0;
    for i in 0..200u32 {
        let byte = b'a' + (i % 26) as u8;
        send(&mut client, &[byte]);
        let answer = read_exact_timeout(&mut client, PREFIX.len() + 1);
        assert_eq!(
            answer,
            [PREFIX, &[byte]].concat(),
            "answer to one-byte message {i}"
        );
        total += answer.len();
    }
    assert_eq!(total, 200 * 14, "14 answer bytes per byte sent");
    drop(client);
    let summary = server.shutdown();
    assert_eq!((summary.bytes_in, summary.bytes_out), (200, 200 * 14));
}

/// A client that sends without pause and reads a little slower than the server answers keeps
/// answers pending for ever, between half the cap and the cap. The server must reuse the written
/// front of its output buffer rather than keep every byte it ever sent, and give the memory back
/// once the client leaves. Run at `--max-pending` 8 MiB so loopback's own buffers cannot hide it.
#[test]
fn a_slow_reader_costs_about_the_cap_and_leaving_gives_it_back() {
    const CAP: u64 = 8 << 20;
    const READ_RATE: u64 = 20 << 20; // bytes per second
    /// Bytes read behind a full buffer: many times the cap, so the buffer is reused many times.
    const BEHIND: u64 = 8 * CAP;
    /// Enough for BEHIND at READ_RATE many times over, on however loaded a machine.
    const LIMIT: Duration = Duration::from_secs(60);
    let mut server = ServerProcess::serve_measured(&["--max-pending", &CAP.to_string()]);
    let mut warm = server.connect();
    roundtrip(&mut warm, b"warm up");
    let baseline = server.anon_rss_bytes();

    let mut reader = server.connect();
    let mut writer = reader.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writing = stop.clone();
    let sender = thread::spawn(move || {
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        writer
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while !stop_writing.load(std::sync::atomic::Ordering::Relaxed) {
            match writer.write(&block) {
                Ok(n) => sent += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        sent
    });
    // The reader reads only while the server holds half the cap or more, so the server is
    // behind however fast a loaded machine lets it answer (at a fixed pace alone, a server
    // slower than the pace held nothing and the check below checked nothing), and paced, so it
    // seldom empties the buffer.
    let started = Instant::now();
    let mut buf = vec![0; 256 * 1024];
    let (mut received, mut waits) = (0u64, 0u64);
    let mut pace = (Instant::now(), 0u64);
    let mut peak = baseline;
    while received < BEHIND {
        assert!(
            started.elapsed() < LIMIT,
            "in {LIMIT:?} the server held half the cap for only {received} bytes read \
             (baseline {baseline}, peak {peak})"
        );
        let rss = server.anon_rss_bytes();
        peak = peak.max(rss);
        if rss < baseline + CAP / 2 {
            waits += 1;
            thread::sleep(Duration::from_millis(1));
            pace = (Instant::now(), 0);
            continue;
        }
        let due = pace.0 + Duration::from_secs_f64(pace.1 as f64 / READ_RATE as f64);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        match reader.read(&mut buf) {
            Ok(0) => panic!("the server closed the slow reader"),
            Ok(n) => {
                received += n as u64;
                pace.1 += n as u64;
            }
            Err(e) => panic!("the slow reader: {e}"),
        }
    }
    peak = peak.max(server.anon_rss_bytes());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // Leaving: nothing more to send, every answer read, so the server drains the buffer (and
    // hands it back to its pool, or frees it) before it closes.
    reader.shutdown(Shutdown::Write).unwrap();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) => panic!("the slow reader, reading its last answers: {e}"),
        }
    }
    drop(reader);
    let growth = peak.saturating_sub(baseline);
    report("backpressure.slow_reader_received", received);
    report("backpressure.slow_reader_sent", sent);
    report("backpressure.slow_reader_waits", waits);
    report(
        "backpressure.slow_reader_seconds",
        started.elapsed().as_secs_f64(),
    );
    report("backpressure.slow_reader_rss_growth", growth);
    // Twice the cap: the buffer's capacity doubles past the cap, and is touched to the end
    // before its written front is reused.
    assert!(
        growth < 2 * CAP + (8 << 20),
        "the server's memory grew by {growth} bytes (from {baseline}) behind a slow reader that \
         read {received} bytes, with --max-pending {CAP}"
    );

    // Gone with the client: nothing large is pooled, and with the mmap threshold fixed the
    // allocator hands a freed buffer back to the kernel at once. The bound is the cap: the old pool kept
    // every byte ever sent, 64 MiB and more here.
    roundtrip(&mut warm, b"still there?");
    let after = wait_for(
        Duration::from_secs(10),
        &format!(
            "the server's memory back under {} (its baseline and the cap)",
            baseline + CAP
        ),
        || {
            let rss = server.anon_rss_bytes();
            (rss < baseline + CAP).then_some(rss)
        },
    );
    report("backpressure.slow_reader_rss_after", after);
    server.assert_alive("after the slow reader left");
}
