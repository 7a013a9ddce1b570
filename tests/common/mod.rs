//! Shared helpers for the black-box tests: start a server (in process, or the `saythat` binary)
//! on a free loopback port, talk to it with plain `std::net`, and fail with a precise message.
//!
//! Every wait here is bounded by a deadline, so a broken server fails a test instead of hanging
//! the suite, and nothing sleeps: tests wait on sockets, channels and the binary's stderr.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::error::Error;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use saythat::{Config, Server, ServerHandle, Summary};

/// The longest any one wait may take: generous, because the machine is noisy and has two cores,
/// yet short enough that a server that never answers fails the test quickly.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The default answer prefix.
pub const PREFIX: &[u8] = b"You say that ";

/// Every environment variable the binary reads, removed from spawned commands so the developer's
/// environment cannot change what a test sees.
const SAYTHAT_VARS: &[&str] = &[
    "SAYTHAT_LISTEN",
    "SAYTHAT_PREFIX",
    "SAYTHAT_FRAMING",
    "SAYTHAT_MAX_LINE",
    "SAYTHAT_MAX_PENDING",
    "SAYTHAT_MAX_CONNS",
    "SAYTHAT_IDLE_TIMEOUT",
    "SAYTHAT_SHUTDOWN_TIMEOUT",
    "SAYTHAT_WORKERS",
    "SAYTHAT_ADDR",
    "SAYTHAT_TIMEOUT",
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

/// A library server running on its own thread; aborted when dropped.
pub struct TestServer {
    pub addrs: Vec<SocketAddr>,
    pub handle: ServerHandle,
    done: Receiver<io::Result<Summary>>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `config` and runs the server on a thread; panics if it cannot bind.
pub fn start(config: &Config) -> TestServer {
    try_start(config)
        .unwrap_or_else(|e| panic!("cannot start a server on {:?}: {e}", config.listen))
}

/// Binds `config` and runs the server on a thread. Connecting right away is fine: the listeners
/// are bound (and listening) before `run` starts.
pub fn try_start(config: &Config) -> Result<TestServer, Box<dyn Error + Send + Sync>> {
    let server = Server::bind(config)?;
    let addrs = server.local_addrs();
    let handle = server.handle();
    let (tx, done) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("saythat-server".into())
        .spawn(move || {
            let _ = tx.send(server.run());
        })?;
    Ok(TestServer {
        addrs,
        handle,
        done,
        thread: Some(thread),
    })
}

impl TestServer {
    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Whether `run` has returned (or its thread died).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for `run` to return, at most `within`, and gives its summary.
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
        result.unwrap_or_else(|e| panic!("the server's run() failed: {e}"))
    }

    /// Closes everything now and waits for `run` to return.
    pub fn stop(self) -> Summary {
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
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .and_then(|()| stream.set_nodelay(true))
        .unwrap_or_else(|e| panic!("cannot configure the connection to {addr}: {e}"));
    stream
}

/// Writes all of `bytes` in one `write_all`.
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .write_all(bytes)
        .unwrap_or_else(|e| panic!("cannot send {:?}: {e}", show(bytes)));
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One read that gives up at `deadline`.
fn read_before(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads exactly `n` bytes (never more); fails on EOF, an error, or `TIMEOUT`.
pub fn read_exact_timeout(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = vec![0; n];
    let mut filled = 0;
    while filled < n {
        match read_before(stream, &mut got[filled..], deadline) {
            Ok(0) => panic!(
                "the server closed the connection after {filled} of {n} expected bytes: \"{}\"",
                show(&got[..filled])
            ),
            Ok(k) => filled += k,
            Err(e) if is_timeout(&e) => panic!(
                "only {filled} of {n} expected bytes arrived within {TIMEOUT:?}: \"{}\"",
                show(&got[..filled])
            ),
            Err(e) => panic!(
                "reading failed ({e}) after {filled} of {n} expected bytes: \"{}\"",
                show(&got[..filled])
            ),
        }
    }
    got
}

/// Reads until the server closes; fails on a reset, an error, or `TIMEOUT`.
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
pub fn expect_bytes(stream: &mut TcpStream, expected: &[u8]) {
    let got = read_exact_timeout(stream, expected.len());
    assert!(
        got == expected,
        "expected \"{}\", got \"{}\"",
        show(expected),
        show(&got)
    );
}

/// Sends `message` and checks the answer is exactly `expected`.
pub fn roundtrip(stream: &mut TcpStream, message: &[u8], expected: &[u8]) {
    send(stream, message);
    expect_bytes(stream, expected);
}

/// Checks that the next read reports the end of the stream (not data, a reset or a timeout).
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

/// Checks that nothing arrives for `quiet`. Only the later exact-bytes checks prove the absence
/// of an answer; this catches a premature one early and says so.
pub fn expect_silence(stream: &mut TcpStream, quiet: Duration) {
    let mut buf = [0u8; 1024];
    match read_before(stream, &mut buf, Instant::now() + quiet) {
        Err(e) if is_timeout(&e) => {}
        Ok(0) => panic!("expected no answer yet, but the server closed the connection"),
        Ok(n) => panic!("expected no answer yet, got \"{}\"", show(&buf[..n])),
        Err(e) => panic!("expected no answer yet, got an error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The binary

/// `saythat ARGS...` with no `SAYTHAT_*` variable from the environment and logging at info.
pub fn saythat(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saythat"));
    cmd.args(args).env("RUST_LOG", "info");
    for var in SAYTHAT_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Sends `signal` (e.g. `"TERM"`) to process `pid` with kill(1).
pub fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill -{signal} {pid}: {e}"));
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// A running `saythat serve`, its address read from its `listening on` line; killed when dropped.
pub struct BinServer {
    pub addr: SocketAddr,
    child: Child,
    /// Lines of stderr as they come; closed at the end of stderr, i.e. when the process exits.
    lines: Receiver<String>,
    /// Every stderr line seen so far, for failure messages.
    seen: Vec<String>,
}

impl BinServer {
    /// Spawns `cmd` (a `saythat serve ...` listening on port 0) and waits for its first
    /// `listening on ADDR` line.
    pub fn start(mut cmd: Command) -> BinServer {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if tx.send(text).is_err() {
                    return;
                }
                line.clear();
            }
        });
        let mut server = BinServer {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            lines,
            seen: Vec::new(),
        };
        let line = server.wait_for_line("listening on ");
        let text = line
            .split("listening on ")
            .nth(1)
            .unwrap_or_default()
            .trim();
        server.addr = text
            .parse()
            .unwrap_or_else(|e| panic!("cannot parse the address in {line:?}: {e}"));
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Waits at most `TIMEOUT` for a stderr line containing `needle`, and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no stderr line with {needle:?} within {TIMEOUT:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the server exited ({:?}) before a stderr line with {needle:?}; stderr:\n{}",
                    self.child.wait(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits at most `within` for the process to exit (its stderr ends then) and gives its status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "the server did not exit within {within:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("cannot wait for the server: {e}"))
    }

    /// Every stderr line seen so far.
    pub fn stderr(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for BinServer {
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
