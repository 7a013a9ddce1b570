//! Shared helpers for the black-box tests: start a server (in process on a thread, or the
//! `saythat` binary as a child process for what only a separate process shows: exit codes,
//! signals, RSS, CPU time, descriptors) on a free loopback port, talk to it with plain
//! `std::net`, check answer streams byte for byte, and fail with a precise message.
//!
//! Every wait here is bounded, so a broken server fails a test instead of hanging the suite, and
//! nothing sleeps to wait for readiness: tests wait on sockets, channels and the binary's stderr,
//! or poll a condition with `wait_for`. Checks are `#[track_caller]`: a failure names the test's
//! line, not this file's.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod http;
pub mod ws;

use std::error::Error;
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use saythat::config::READ_SIZE;
use saythat::load::{self, LoadArgs, LoadReport};
use saythat::{Config, Server, ServerHandle, Summary};

/// The longest any one wait may take: generous, because the machine is noisy and has two cores,
/// yet short enough that a server that never answers fails the test quickly.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long `TestServer::shutdown` waits for `run()` once every client has closed: well under
/// the default 10 s shutdown timeout, so a connection the server failed to notice closing fails
/// the test instead of being cut quietly when the timeout ends the drain.
pub const DRAINED: Duration = Duration::from_secs(5);

/// The default answer prefix.
pub const PREFIX: &[u8] = b"You say that ";

/// Every environment variable the binary reads, removed from spawned commands so the developer's
/// environment cannot change what a test sees.
const SAYTHAT_VARS: &[&str] = &[
    "SAYTHAT_LISTEN",
    "SAYTHAT_METRICS_LISTEN",
    "SAYTHAT_AGENT_LISTEN",
    "SAYTHAT_PREFIX",
    "SAYTHAT_FRAMING",
    "SAYTHAT_MAX_LINE",
    "SAYTHAT_MAX_HEADER",
    "SAYTHAT_MAX_BODY",
    "SAYTHAT_HEADER_TIMEOUT",
    "SAYTHAT_MAX_PENDING",
    "SAYTHAT_MAX_CONNS",
    "SAYTHAT_IDLE_TIMEOUT",
    "SAYTHAT_SHUTDOWN_TIMEOUT",
    "SAYTHAT_DRAIN_DELAY",
    "SAYTHAT_WORKERS",
    "SAYTHAT_REUSE_PORT",
    "SAYTHAT_INSTANCE",
    "SAYTHAT_HTTP_DEFAULTS",
    "SAYTHAT_MAX_DELAY",
    "SAYTHAT_MAX_SIZE",
    "SAYTHAT_NO_CONTROLS",
    "SAYTHAT_TRUST_PROXY",
    "SAYTHAT_ADDR",
    "SAYTHAT_TIMEOUT",
];

/// The variables of systemd's socket activation and readiness protocols, removed too, so a suite
/// run under systemd does not hand its sockets or its notifications to the servers it starts.
const SYSTEMD_VARS: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// `bytes` as escaped ASCII, for failure messages.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// The default answer to `message`.
pub fn answer(message: &[u8]) -> Vec<u8> {
    [PREFIX, message].concat()
}

// ---------------------------------------------------------------------------------------------
// In-process servers

/// A library server running `run()` on its own thread; aborted when dropped, so a failed test
/// leaves no thread serving.
pub struct TestServer {
    /// Every listen address, in the order of `Config::listen`, port 0 resolved.
    pub addrs: Vec<SocketAddr>,
    pub handle: ServerHandle,
    /// The connection limit the server resolved (`Server::max_conns()`).
    pub max_conns: usize,
    /// The `--metrics-listen` addresses, port 0 resolved (`Server::metrics_addrs()`).
    pub metrics: Vec<SocketAddr>,
    /// The `--agent-listen` addresses, port 0 resolved (`Server::agent_addrs()`).
    pub agent: Vec<SocketAddr>,
    done: Receiver<io::Result<Summary>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds `config` and runs the server on a thread; panics if it cannot bind.
    #[track_caller]
    pub fn start(config: &Config) -> TestServer {
        match TestServer::try_start(config) {
            Ok(server) => server,
            Err(e) => panic!("cannot start a server on {:?}: {e}", config.listen),
        }
    }

    /// Binds `config` and runs the server on a thread. Connecting right away is fine: the
    /// listeners are bound (and listening) before `run` starts.
    pub fn try_start(config: &Config) -> Result<TestServer, Box<dyn Error + Send + Sync>> {
        let server = Server::bind(config)?;
        let addrs = server.local_addrs();
        let handle = server.handle();
        let max_conns = server.max_conns();
        let metrics = server.metrics_addrs();
        let agent = server.agent_addrs();
        let (tx, done) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("saythat-server".into())
            .spawn(move || {
                let _ = tx.send(server.run());
            })?;
        Ok(TestServer {
            addrs,
            handle,
            max_conns,
            metrics,
            agent,
            done,
            thread: Some(thread),
        })
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    #[track_caller]
    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Whether `run` has returned (or its thread died).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for `run` to return, at most `within`, and gives its summary.
    #[track_caller]
    pub fn wait(mut self, within: Duration) -> Summary {
        let result = match self.done.recv_timeout(within) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                panic!("the server's run() did not return within {within:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the server thread panicked"),
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        match result {
            Ok(summary) => summary,
            Err(e) => panic!("the server's run() failed: {e}"),
        }
    }

    /// A graceful shutdown once every client has closed: `run` must return within `DRAINED`.
    #[track_caller]
    pub fn shutdown(self) -> Summary {
        self.handle.shutdown();
        self.wait(DRAINED)
    }

    /// Closes everything now and waits for `run` to return.
    #[track_caller]
    pub fn abort(self) -> Summary {
        self.handle.abort();
        self.wait(TIMEOUT)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A blocking client with `TIMEOUT` on reads and writes and Nagle off, so every write leaves at
/// once as its own segment.
pub fn try_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `try_connect`, failing the test if it cannot.
#[track_caller]
pub fn connect(addr: SocketAddr) -> TcpStream {
    match try_connect(addr) {
        Ok(stream) => stream,
        Err(e) => panic!("cannot connect to {addr}: {e}"),
    }
}

/// Checks that a new connection to `addr` is refused: not accepted, and not left waiting.
#[track_caller]
pub fn expect_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("a new connection to {addr} should be refused, got: {e}"),
        Ok(_) => panic!("a new connection to {addr} was accepted"),
    }
}

/// Writes all of `bytes` in one `write_all`.
#[track_caller]
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes) {
        panic!("cannot send \"{}\": {e}", show(bytes));
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One read that gives up at `deadline`. The stream's read timeout is `TIMEOUT` again afterwards,
/// so a plain read after a short wait (`expect_silence`) does not inherit the short one.
fn read_before(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    let result = loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    // Only fails on a descriptor that is gone, which the read has already reported.
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    result
}

/// Reads exactly `n` bytes (never more), or says why not: EOF, an error, or `TIMEOUT`.
pub fn try_read_exact(stream: &mut TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = vec![0; n];
    let mut filled = 0;
    while filled < n {
        match read_before(stream, &mut got[filled..], deadline) {
            Ok(0) => {
                return Err(format!(
                    "the server closed the connection after {filled} of {n} expected bytes: \"{}\"",
                    show(&got[..filled])
                ))
            }
            Ok(k) => filled += k,
            Err(e) if is_timeout(&e) => {
                return Err(format!(
                    "only {filled} of {n} expected bytes arrived within {TIMEOUT:?}: \"{}\"",
                    show(&got[..filled])
                ))
            }
            Err(e) => {
                return Err(format!(
                    "reading failed ({e}) after {filled} of {n} expected bytes: \"{}\"",
                    show(&got[..filled])
                ))
            }
        }
    }
    Ok(got)
}

/// Reads exactly `n` bytes (never more); fails on EOF, an error, or `TIMEOUT`.
#[track_caller]
pub fn read_exact_timeout(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    match try_read_exact(stream, n) {
        Ok(got) => got,
        Err(e) => panic!("{e}"),
    }
}

/// Reads until the server closes; fails on a reset, an error, or `TIMEOUT`.
#[track_caller]
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match read_before(stream, &mut buf, deadline) {
            Ok(0) => return got,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if is_timeout(&e) => panic!(
                "no end of stream within {TIMEOUT:?}; {} bytes read: \"{}\"",
                got.len(),
                show(&got)
            ),
            Err(e) => panic!(
                "reading to the end failed ({e}) after {} bytes: \"{}\"",
                got.len(),
                show(&got)
            ),
        }
    }
}

/// Reads exactly `expected.len()` bytes and checks they are `expected`.
#[track_caller]
pub fn expect_bytes(stream: &mut TcpStream, expected: &[u8]) {
    // A failed read names what was awaited, which tells apart the clients of a loop.
    let got = match try_read_exact(stream, expected.len()) {
        Ok(got) => got,
        Err(e) => panic!("expecting \"{}\": {e}", show(expected)),
    };
    assert!(
        got == expected,
        "expected \"{}\", got \"{}\"",
        show(expected),
        show(&got)
    );
}

/// Reads until the server closes and checks that it sent exactly `expected` (a reset fails).
#[track_caller]
pub fn expect_bytes_then_eof(stream: &mut TcpStream, expected: &[u8]) {
    let got = read_to_eof(stream);
    assert!(
        got == expected,
        "expected \"{}\" then EOF, got \"{}\"",
        show(expected),
        show(&got)
    );
}

/// Sends `message` and checks the answer is exactly `expected`.
#[track_caller]
pub fn send_expect(stream: &mut TcpStream, message: &[u8], expected: &[u8]) {
    send(stream, message);
    expect_bytes(stream, expected);
}

/// Sends `message` and checks the answer is exactly the default one, `answer(message)`.
#[track_caller]
pub fn roundtrip(stream: &mut TcpStream, message: &[u8]) {
    send_expect(stream, message, &answer(message));
}

/// Checks that the next read reports the end of the stream (not data, a reset or a timeout).
#[track_caller]
pub fn expect_eof(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    match read_before(stream, &mut buf, Instant::now() + TIMEOUT) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected the end of the stream, got \"{}\"",
            show(&buf[..n])
        ),
        Err(e) => panic!("expected the end of the stream, got an error: {e}"),
    }
}

/// Checks that nothing arrives for `quiet`, the end of the stream included. Where an answer is
/// still to come, only the later exact-bytes checks prove its absence; this catches a premature
/// one early and says so.
#[track_caller]
pub fn expect_silence(stream: &mut TcpStream, quiet: Duration) {
    let mut buf = [0u8; 1024];
    match read_before(stream, &mut buf, Instant::now() + quiet) {
        Err(e) if is_timeout(&e) => {}
        Ok(0) => panic!("expected silence for {quiet:?}, but the server closed the connection"),
        Ok(n) => panic!(
            "expected silence for {quiet:?}, got \"{}\"",
            show(&buf[..n])
        ),
        Err(e) => panic!("expected silence for {quiet:?}, got an error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Chunk-framed answer streams, checked byte for byte

/// Payload bytes never contain `Y`, the prefix's first byte, so a decoder can find where every
/// answer starts however the server cut the stream into reads.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_.,:;ABCDEFGHIJKLMNOPQRSTUVWXZ";

/// The `offset`-th byte of the payload stream number `seed`: deterministic, so a reader checks
/// what a writer sent without sharing a buffer, and distinct per seed, so crossed answers show.
pub fn pattern_byte(seed: u64, offset: u64) -> u8 {
    let mut x = offset
        .wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    ALPHABET[(x % ALPHABET.len() as u64) as usize]
}

pub fn fill_pattern(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, offset + i as u64);
    }
}

/// Checks a chunk-framed answer stream incrementally: every answer is the prefix and then 1 to
/// READ_SIZE payload bytes, and the payload bytes are exactly the pattern `seed` from offset 0.
pub struct AnswerChecker {
    seed: u64,
    /// Payload bytes checked so far.
    pub payload: u64,
    /// Answers (prefixes) seen so far.
    pub answers: u64,
    /// Position inside the current prefix, or `None` while inside a payload chunk.
    in_prefix: Option<usize>,
    chunk_len: usize,
    /// Answer bytes consumed, for error messages.
    consumed: u64,
}

impl AnswerChecker {
    pub fn new(seed: u64) -> AnswerChecker {
        AnswerChecker {
            seed,
            payload: 0,
            answers: 0,
            in_prefix: Some(0),
            chunk_len: 0,
            consumed: 0,
        }
    }

    /// Feeds answer bytes; `Err` says where the stream first went wrong.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        for &b in bytes {
            let at = self.consumed;
            self.consumed += 1;
            match self.in_prefix {
                Some(i) => {
                    if b != PREFIX[i] {
                        return Err(format!(
                            "answer byte {at}: expected prefix byte {:?}, got {:?}",
                            PREFIX[i] as char, b as char
                        ));
                    }
                    if i + 1 == PREFIX.len() {
                        self.in_prefix = None;
                        self.chunk_len = 0;
                        self.answers += 1;
                    } else {
                        self.in_prefix = Some(i + 1);
                    }
                }
                None if b == PREFIX[0] && self.chunk_len > 0 => {
                    self.in_prefix = Some(1);
                }
                None => {
                    let want = pattern_byte(self.seed, self.payload);
                    if b != want {
                        return Err(format!(
                            "answer byte {at} (payload byte {}): expected {:?}, got {:?}",
                            self.payload, want as char, b as char
                        ));
                    }
                    self.payload += 1;
                    self.chunk_len += 1;
                    if self.chunk_len > READ_SIZE {
                        return Err(format!(
                            "answer {} carries more than {READ_SIZE} payload bytes",
                            self.answers
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// True when the stream ends cleanly: not inside a prefix, not inside an empty answer.
    pub fn at_boundary(&self) -> bool {
        self.in_prefix == Some(0) || (self.in_prefix.is_none() && self.chunk_len > 0)
    }
}

/// Reads the answers to the pattern `seed` until the server closes, checking every byte and
/// adding each payload byte checked to `progress` at once (another thread may be watching).
/// Gives the payload bytes answered, or where the stream first went wrong.
pub fn read_answers_to_eof(
    stream: &mut TcpStream,
    seed: u64,
    progress: &AtomicU64,
) -> Result<u64, String> {
    let mut checker = AnswerChecker::new(seed);
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let before = checker.payload;
                checker.feed(&buf[..n])?;
                progress.fetch_add(checker.payload - before, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "{e} after {} payload bytes answered",
                    checker.payload
                ))
            }
        }
    }
    if !checker.at_boundary() {
        return Err("the answers end inside an answer".into());
    }
    Ok(checker.payload)
}

// ---------------------------------------------------------------------------------------------
// The binary

/// `saythat ARGS...` with no `SAYTHAT_*` variable from the environment and logging at info.
pub fn saythat(args: &[&str]) -> Command {
    saythat_under(&[], args)
}

/// `saythat ARGS...` run by `wrapper` (e.g. `prlimit --nofile=64:64`), which must exec it, so
/// the child's pid is the server's.
pub fn saythat_under(wrapper: &[&str], args: &[&str]) -> Command {
    let binary = env!("CARGO_BIN_EXE_saythat");
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(binary);
            cmd
        }
        None => Command::new(binary),
    };
    cmd.args(args).env("RUST_LOG", "info");
    for var in SAYTHAT_VARS.iter().chain(SYSTEMD_VARS) {
        cmd.env_remove(var);
    }
    cmd
}

/// What the stderr reader thread has collected.
#[derive(Default)]
struct StderrLog {
    lines: Vec<String>,
    /// Stderr has closed, i.e. the process has exited.
    ended: bool,
}

/// A running `saythat serve` as a child process, its address read from its `listening on` line,
/// its stderr collected line by line; killed when dropped.
pub struct ServerProcess {
    addr: SocketAddr,
    child: Child,
    /// Filled by a reader thread, which notifies the condvar at each line and at the end.
    stderr: Arc<(Mutex<StderrLog>, Condvar)>,
    /// Lines `wait_for_line` has looked at: each wait sees only the lines after the last match.
    scanned: usize,
}

impl ServerProcess {
    /// `saythat serve --listen 127.0.0.1:0 ARGS...`, started as by `start`.
    #[track_caller]
    pub fn serve(args: &[&str]) -> ServerProcess {
        ServerProcess::serve_under(&[], args)
    }

    /// `serve`, run by `wrapper` (e.g. `prlimit --nofile=64:64`, which execs the server).
    #[track_caller]
    pub fn serve_under(wrapper: &[&str], args: &[&str]) -> ServerProcess {
        let args = [&["serve", "--listen", "127.0.0.1:0"], args].concat();
        ServerProcess::start(saythat_under(wrapper, &args))
    }

    /// `serve`, for a test that measures the server's memory (`anon_rss_bytes`): glibc's malloc
    /// keeps its first mmap threshold (128 KiB). By default it raises the threshold to the size
    /// of each large block freed, up to 32 MiB, and the trim threshold to twice that, so once an
    /// output buffer of a few MiB is freed the next ones come from the brk heap, and freed, stay
    /// resident: RSS then counts the allocator's cache, which varies with the order in which a
    /// loaded machine lets things happen, not what the server holds.
    #[track_caller]
    pub fn serve_measured(args: &[&str]) -> ServerProcess {
        let args = [&["serve", "--listen", "127.0.0.1:0"], args].concat();
        let mut cmd = saythat(&args);
        cmd.env("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072");
        ServerProcess::start(cmd)
    }

    /// Spawns `cmd` (a `saythat serve ...` listening on port 0) and waits for its first
    /// `listening on ADDR` line.
    #[track_caller]
    pub fn start(cmd: Command) -> ServerProcess {
        let mut server = ServerProcess::spawn(cmd, Stdio::null());
        server.wait_listening();
        server
    }

    /// Spawns `cmd` with `stdin` (e.g. a socket to pass on), collecting its stderr, without
    /// waiting for anything: `wait_listening` then reads the address.
    #[track_caller]
    pub fn spawn(mut cmd: Command, stdin: Stdio) -> ServerProcess {
        cmd.stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot spawn {cmd:?}: {e}"),
        };
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new((Mutex::new(StderrLog::default()), Condvar::new()));
        let log = Arc::clone(&stderr);
        thread::spawn(move || {
            let (lock, changed) = &*log;
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            // Lossy, so a stray non-UTF-8 byte cannot end the collection early.
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                lock.lock().unwrap().lines.push(text);
                changed.notify_all();
                line.clear();
            }
            lock.lock().unwrap().ended = true;
            changed.notify_all();
        });
        ServerProcess {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            stderr,
            scanned: 0,
        }
    }

    /// Waits for the next `listening on ADDR` line and takes ADDR as the server's address.
    #[track_caller]
    pub fn wait_listening(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on ");
        let text = line
            .split("listening on ")
            .nth(1)
            .unwrap_or_default()
            .trim();
        self.addr = match text.parse() {
            Ok(addr) => addr,
            Err(e) => panic!("cannot parse the address in {line:?}: {e}"),
        };
        self.addr
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the `metrics on http://ADDR/metrics` line (`--metrics-listen`), which
    /// the server logs after its `listening on` lines.
    #[track_caller]
    pub fn metrics_addr(&mut self) -> SocketAddr {
        let line = self.wait_for_line("metrics on http://");
        let text = line.split("metrics on http://").nth(1).unwrap_or_default();
        let text = text.trim().trim_end_matches("/metrics");
        match text.parse() {
            Ok(addr) => addr,
            Err(e) => panic!("cannot parse the address in {line:?}: {e}"),
        }
    }

    /// The address of the `agent check on ADDR` line (`--agent-listen`), which the server logs
    /// after its `listening on` and `metrics on` lines.
    #[track_caller]
    pub fn agent_addr(&mut self) -> SocketAddr {
        let line = self.wait_for_line("agent check on ");
        let text = line.split("agent check on ").nth(1).unwrap_or_default();
        match text.trim().parse() {
            Ok(addr) => addr,
            Err(e) => panic!("cannot parse the address in {line:?}: {e}"),
        }
    }

    /// The threads of the process, from /proc.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|tasks| tasks.count())
            .unwrap_or(1)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    #[track_caller]
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Every stderr line so far, for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr.0.lock().unwrap().lines.join("\n")
    }

    /// How many stderr lines so far contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        let log = self.stderr.0.lock().unwrap();
        log.lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits at most `TIMEOUT` for a stderr line after the last one matched that contains
    /// `needle`, and returns it.
    #[track_caller]
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let (lock, changed) = &*self.stderr;
        let mut log = lock.lock().unwrap();
        loop {
            while self.scanned < log.lines.len() {
                self.scanned += 1;
                let line = &log.lines[self.scanned - 1];
                if line.contains(needle) {
                    return line.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if log.ended {
                let lines = log.lines.join("\n");
                drop(log);
                panic!(
                    "the server exited ({:?}) before a stderr line with {needle:?}; \
                     stderr:\n{lines}",
                    self.child.wait()
                );
            }
            if left.is_zero() {
                panic!(
                    "no stderr line with {needle:?} within {TIMEOUT:?}; stderr so far:\n{}",
                    log.lines.join("\n")
                );
            }
            log = changed.wait_timeout(log, left).unwrap().0;
        }
    }

    /// Sends `signal` (e.g. `"TERM"`) to the server with kill(1).
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        let status = match Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
        {
            Ok(status) => status,
            Err(e) => panic!("cannot run kill -{signal} {pid}: {e}"),
        };
        assert!(status.success(), "kill -{signal} {pid} failed: {status}");
    }

    /// Waits at most `within` for the process to exit (its stderr ends then) and gives its status.
    #[track_caller]
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let (lock, changed) = &*self.stderr;
        let log = lock.lock().unwrap();
        let (log, _) = changed
            .wait_timeout_while(log, within, |log| !log.ended)
            .unwrap();
        if !log.ended {
            panic!(
                "the server did not exit within {within:?}; stderr so far:\n{}",
                log.lines.join("\n")
            );
        }
        drop(log);
        match self.child.wait() {
            Ok(status) => status,
            Err(e) => panic!("cannot wait for the server: {e}"),
        }
    }

    /// Waits at most `within` for the process to exit and checks it exited with `code`.
    #[track_caller]
    pub fn expect_exit(&mut self, code: i32, within: Duration) {
        let status = self.wait_exit(within);
        assert_eq!(
            status.code(),
            Some(code),
            "exit status; stderr:\n{}",
            self.stderr()
        );
    }

    /// Fails if the process has exited.
    #[track_caller]
    pub fn assert_alive(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the server exited ({status}) {when}; stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// VmRSS, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// RssAnon, in bytes: the memory the server allocated, without the pages of its binary and
    /// libraries, which the kernel evicts and faults back in as the page cache comes and goes.
    pub fn anon_rss_bytes(&self) -> u64 {
        self.status_bytes("RssAnon:")
    }

    /// The `field` line of /proc/PID/status, in bytes (it gives kB).
    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("a {field} line in /proc/PID/status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} in kB"));
        kib * 1024
    }

    pub fn fd_count(&self) -> usize {
        self.fds().len()
    }

    /// The open descriptor numbers (some may be inherited from the test harness, e.g. cargo's
    /// jobserver pipe, and lie above a lowered limit).
    pub fn fds(&self) -> Vec<u64> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // The command name (field 2) may hold spaces; the fields after its `)` are plain.
        let rest = &stat[stat.rfind(')').expect("a `)` in /proc/PID/stat") + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        // `rest` starts at field 3, so field N is at index N - 3.
        let utime: u64 = fields[14 - 3].parse().expect("utime");
        let stime: u64 = fields[15 - 3].parse().expect("stime");
        utime + stime
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to its end with `stdin` (or none) and collects its output; fails if it does not
/// exit within `within`.
pub fn run_to_end(mut cmd: Command, stdin: Option<&[u8]>, within: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Small inputs only: the pipe takes them without the child reading.
        pipe.write_all(input)
            .unwrap_or_else(|e| panic!("cannot write stdin of {cmd:?}: {e}"));
    }
    let (tx, rx) = mpsc::channel();
    let out = collect(child.stdout.take().expect("stdout is piped"), 1, tx.clone());
    let err = collect(child.stderr.take().expect("stderr is piped"), 2, tx);
    let deadline = Instant::now() + within;
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((1, bytes)) => stdout = Some(bytes),
            Ok((_, bytes)) => stderr = Some(bytes),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = (out.join(), err.join());
                let partial: Vec<(u8, Vec<u8>)> = rx.try_iter().collect();
                panic!(
                    "{cmd:?} did not exit within {within:?}; its output: {:?}",
                    partial
                        .iter()
                        .map(|(_, bytes)| String::from_utf8_lossy(bytes))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("cannot wait for {cmd:?}: {e}"));
    Output {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    }
}

/// Reads `pipe` to its end on a thread and sends the bytes, tagged, to `tx`.
fn collect(
    mut pipe: impl Read + Send + 'static,
    tag: u8,
    tx: mpsc::Sender<(u8, Vec<u8>)>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send((tag, bytes));
    })
}

// ---------------------------------------------------------------------------------------------
// Waiting, measuring, reporting

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`. For conditions
/// nothing signals (a count in /proc, a thread's progress); anything with a socket or a channel
/// waits on that instead.
#[track_caller]
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The connections open now by the server's own count: `saythat_connections_open` summed over
/// its loops, from a scrape of `metrics` (a `--metrics-listen` address).
#[track_caller]
pub fn open_connections(metrics: SocketAddr) -> u64 {
    let mut scrape = connect(metrics);
    send(
        &mut scrape,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&read_to_eof(&mut scrape)).into_owned();
    text.lines()
        .filter(|line| line.starts_with("saythat_connections_open{"))
        .map(
            |line| match line.rsplit_once(' ').map(|(_, n)| n.parse::<u64>()) {
                Some(Ok(n)) => n,
                _ => panic!("not a sample line: {line:?}"),
            },
        )
        .sum()
}

/// Waits until the server counts exactly `n` connections open. A client closed by the test is
/// still counted until the server's loop has read its end of stream, so a test that closes one
/// and then asks for a count (a SIGTERM's `draining N connection(s)`) waits here first; so does
/// one that needs a client accepted, not still in the backlog, before the listeners close.
#[track_caller]
pub fn wait_for_open(metrics: SocketAddr, n: u64) {
    let what = format!("{n} connection(s) open, by the server's count");
    wait_for(TIMEOUT, &what, || {
        (open_connections(metrics) == n).then_some(())
    });
}

/// Prints a measured figure only when `SAYTHAT_TEST_REPORT` is set, so tests stay silent on
/// success while a script can still collect what they observed.
pub fn report(name: &str, value: impl Display) {
    if std::env::var_os("SAYTHAT_TEST_REPORT").is_some() {
        eprintln!("REPORT {name} = {value}");
    }
}

/// The send and receive queues (bytes not yet acknowledged by the peer, bytes not yet read by
/// the application) of the IPv4 TCP socket `local` -> `remote`, from /proc/net/tcp.
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    fn hex_addr(addr: SocketAddr) -> Option<String> {
        match addr {
            // /proc/net/tcp prints the address as the native-endian u32 of its network bytes.
            SocketAddr::V4(a) => Some(format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(a.ip().octets()),
                a.port()
            )),
            SocketAddr::V6(_) => None,
        }
    }
    let (local, remote) = (hex_addr(local)?, hex_addr(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// The third value (the maximum) of a `/proc/sys/net/ipv4/tcp_rmem`-style sysctl.
pub fn tcp_mem_max(name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .unwrap_or_else(|e| panic!("read /proc/sys/net/ipv4/{name}: {e}"));
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no maximum in {name}: {text:?}"))
}

/// `saythat load`'s flags, parsed as the command line parses them.
#[derive(clap::Parser)]
struct LoadCli {
    #[command(flatten)]
    load: LoadArgs,
}

/// `argv` (from `load` on) parsed as `saythat load` parses it, so the tests also cover the flags'
/// parsers.
pub fn parse_load(argv: &[&str]) -> Result<LoadArgs, clap::Error> {
    <LoadCli as clap::Parser>::try_parse_from(argv).map(|cli| cli.load)
}

/// The load run `args` asks for; a failed run fails the test. The report is printed (shown with
/// `--nocapture`, or when the test fails).
pub fn load_ok(args: &LoadArgs) -> LoadReport {
    match load::run(args) {
        Ok(report) => {
            println!("{report}");
            report
        }
        Err(e) => panic!("the run failed: {e}"),
    }
}
