//! Shared helpers for the limit tests: an in-process server on a thread, the real binary as a
//! child process (for what only a separate process shows: RSS, CPU time, descriptors), clients
//! with timeouts everywhere, and a decoder that checks chunk-framed answers byte for byte.
//!
//! Nothing here sleeps to wait for readiness: every wait is a bounded poll that fails with a
//! message saying what did not happen.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use saythat::config::READ_SIZE;
use saythat::{Config, Server, ServerHandle, Summary};

/// The default answer prefix.
pub const PREFIX: &[u8] = b"You say that ";
/// How long any single read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
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

/// A server running `run()` on its own thread.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub max_conns: usize,
    done: mpsc::Receiver<io::Result<Summary>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: Config) -> TestServer {
        let server = Server::bind(&config).expect("bind a loopback server on port 0");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let max_conns = server.max_conns();
        let (tx, done) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("saythat-server".into())
            .spawn(move || {
                let _ = tx.send(server.run());
            })
            .expect("spawn the server thread");
        TestServer {
            addr,
            handle,
            max_conns,
            done,
            thread: Some(thread),
        }
    }

    /// Waits for `run()` to return after a shutdown was requested, at most `limit`.
    pub fn join(mut self, limit: Duration) -> Summary {
        let result = self.done.recv_timeout(limit).unwrap_or_else(|_| {
            panic!("run() did not return within {limit:?} of the shutdown request")
        });
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread panicked");
        }
        result.expect("run() returned an error")
    }

    /// Graceful shutdown, then the summary; every client must already be closed.
    pub fn stop(self) -> Summary {
        self.handle.shutdown();
        self.join(Duration::from_secs(5))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failed test must not leave a thread serving; its result no longer matters.
        self.handle.abort();
    }
}

/// A blocking client with read and write timeouts and Nagle off.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `n` bytes, failing with `what` on EOF, error or timeout.
pub fn read_n(stream: &mut TcpStream, n: usize, what: &str) -> Vec<u8> {
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match stream.read(&mut buf[got..]) {
            Ok(0) => panic!(
                "{what}: EOF after {got} of {n} bytes: {:?}",
                String::from_utf8_lossy(&buf[..got])
            ),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: {e} after {got} of {n} bytes: {:?}",
                String::from_utf8_lossy(&buf[..got])
            ),
        }
    }
    buf
}

/// Sends one message and checks that its answer is exactly the prefix and the message.
pub fn round_trip(stream: &mut TcpStream, msg: &[u8], what: &str) {
    stream
        .write_all(msg)
        .unwrap_or_else(|e| panic!("{what}: sending {:?}: {e}", String::from_utf8_lossy(msg)));
    let answer = read_n(stream, PREFIX.len() + msg.len(), what);
    let expected = [PREFIX, msg].concat();
    assert!(
        answer == expected,
        "{what}: expected {:?}, got {:?}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(&answer)
    );
}

/// Reads until EOF, failing if more than `limit` bytes or no EOF within the read timeout.
pub fn read_to_eof(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                assert!(out.len() < 1 << 20, "{what}: more than 1 MiB and no EOF");
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: {e} before EOF, after {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

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

/// The real `saythat serve` as a child process, its stderr collected line by line.
pub struct ServerProcess {
    pub child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `saythat serve --listen 127.0.0.1:0 ARGS` (under `wrapper` when given, e.g.
    /// `prlimit --nofile=64:64`) and waits for its `listening on` line.
    pub fn start(wrapper: &[&str], args: &[&str]) -> ServerProcess {
        let binary = env!("CARGO_BIN_EXE_saythat");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {wrapper:?} {binary}: {e}"));
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let lines = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut server = ServerProcess {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let addr = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(addr) => addr,
            Err(_) => panic!(
                "the server logged no `listening on` line within 10 s; stderr: {:?}",
                server.stderr_lines()
            ),
        };
        server.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address {addr:?} in `listening on`: {e}"));
        server
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Fails if the process has exited.
    pub fn assert_alive(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the server exited ({status}) {when}; stderr: {:?}",
                self.stderr_lines()
            );
        }
    }

    pub fn rss_bytes(&self) -> u64 {
        vm_rss_bytes(self.pid)
    }

    pub fn fd_count(&self) -> usize {
        self.fds().len()
    }

    /// The open descriptor numbers (some may be inherited from the test harness, e.g. cargo's
    /// jobserver pipe, and lie above a lowered limit).
    pub fn fds(&self) -> Vec<u64> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("read /proc/PID/fd")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
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

/// VmRSS of a process, in bytes.
pub fn vm_rss_bytes(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Prints a measured figure only when `SAYTHAT_TEST_REPORT` is set, so tests stay silent on
/// success while a script can still collect what they observed.
pub fn report(name: &str, value: impl std::fmt::Display) {
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
