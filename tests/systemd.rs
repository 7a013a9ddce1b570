//! Running in production, through the binary: systemd socket activation (through
//! `systemd-socket-activate` where it is installed, and everywhere through `sh`, which passes a
//! socket the test made as fd 3), readiness notification on a datagram socket the test binds,
//! the hand-over of a port with `--reuse-port`, and the units in contrib/ (`systemd-analyze
//! verify` where it is installed). No running systemd is needed.
//!
//! Passing a socket as fd 3 without `unsafe` (no `pre_exec`, no `dup2` here): the socket is the
//! child's stdin, and `sh -c 'exec 3<&0 0</dev/null; export LISTEN_PID=$$ ...; exec saythat'`
//! moves it to fd 3 and execs saythat, so `$$` (the shell's pid) is the server's pid.

mod common;

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Bounds an exit that must not wait for a shutdown timeout (60 s in these tests).
const PROMPTLY: Duration = Duration::from_secs(10);

/// `saythat serve --listen ADDR ARGS...`, started and waited for (its `listening on` line).
fn serve_on(addr: &str, args: &[&str]) -> ServerProcess {
    let args = [&["serve", "--listen", addr], args].concat();
    ServerProcess::start(saythat(&args))
}

/// Sends SIGTERM, waits for the exit summary and gives the connections it says were served.
#[track_caller]
fn stop_and_count_served(server: &mut ServerProcess) -> u64 {
    server.signal("TERM");
    let line = server.wait_for_line("shut down: served ");
    let count = line
        .split("shut down: served ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok());
    match count {
        Some(count) => {
            server.expect_exit(0, PROMPTLY);
            count
        }
        None => panic!("no connection count in {line:?}"),
    }
}

/// A listening socket on a free loopback port, as a `.socket` unit holds one.
fn listening_socket() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener")
}

// ---------------------------------------------------------------------------------------------
// Socket activation

/// Moves stdin to fd 3, sets the activation variables for the shell's own pid (which `exec`
/// keeps) and execs the program named by `$0` with the arguments after it.
const PASS_STDIN_AS_FD3: &str = r#"exec 3<&0 0</dev/null; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=echo; exec "$0" "$@""#;

/// `saythat ARGS...` given `socket` as fd 3, as systemd starts it; not waited for.
fn spawn_activated(socket: impl Into<OwnedFd>, args: &[&str]) -> ServerProcess {
    let cmd = saythat_under(&["sh", "-c", PASS_STDIN_AS_FD3], args);
    ServerProcess::spawn(cmd, Stdio::from(socket.into()))
}

/// `saythat serve ARGS...` serving a copy of `listener` (the test keeps its own, as systemd
/// does), once it says it listens.
#[track_caller]
fn serve_activated(listener: &TcpListener, args: &[&str]) -> ServerProcess {
    let copy = listener.try_clone().expect("duplicate the listener");
    let mut server = spawn_activated(copy, &[&["serve"], args].concat());
    server.wait_for_line("socket activation: serving fd 3 (echo)");
    let addr = server.wait_listening();
    assert_eq!(addr, listener.local_addr().unwrap(), "the address served");
    server
}

/// The `flags:` of a descriptor of a process, from /proc/PID/fdinfo (octal).
fn fd_flags(pid: u32, fd: u32) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/fdinfo/{fd}: {e}"));
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .unwrap_or_else(|| panic!("no flags in /proc/{pid}/fdinfo/{fd}: {info}"));
    u32::from_str_radix(flags.trim(), 8).expect("octal flags")
}

/// From Linux's `<asm-generic/fcntl.h>`: /proc shows the descriptor's flags with these bits.
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u32 = 0o2000000;

/// A client that connected before saythat started is answered once it runs: the socket
/// listened all along. saythat serves fd 3 itself (no rebinding), non-blocking and close-on-exec.
#[test]
fn a_socket_passed_as_fd_3_is_served_without_binding() {
    let listener = listening_socket();
    let addr = listener.local_addr().unwrap();
    let mut early = connect(addr);
    send(&mut early, b"before saythat ran");

    let mut server = serve_activated(
        &listener,
        &[
            "--shutdown-timeout",
            "60",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics = server.metrics_addr();
    expect_bytes(&mut early, &answer(b"before saythat ran"));
    roundtrip(&mut connect(addr), b"a second client");
    // The second client is closed, but the server counts it until its loop reads that close:
    // the count the drain logs is 1 only once the server says so.
    wait_for_open(metrics, 1);

    let flags = fd_flags(server.pid(), 3);
    assert!(flags & O_NONBLOCK != 0, "fd 3 is blocking: flags {flags:o}");
    assert!(
        flags & O_CLOEXEC != 0,
        "fd 3 is not close-on-exec: flags {flags:o}"
    );

    server.signal("TERM");
    server.wait_for_line("draining 1 connection(s)");
    drop(early);
    server.expect_exit(0, PROMPTLY);
}

/// At SIGTERM saythat closes only its copy of the socket: the service manager's still listens,
/// so a client that connects during the drain is not refused but waits in the backlog, and the
/// next process answers it. The client already open is served to the end meanwhile.
#[test]
fn at_sigterm_a_new_client_waits_in_the_socket_for_the_next_process() {
    let listener = listening_socket();
    let addr = listener.local_addr().unwrap();
    // Line framing, and half a line held: the drain closes idle connections at a message
    // boundary, and this one must stay open through it.
    let mut first = serve_activated(
        &listener,
        &["--framing", "line", "--shutdown-timeout", "60"],
    );
    let mut open = connect(addr);
    roundtrip(&mut open, b"before the restart\n");
    send(&mut open, b"still served ");

    first.signal("TERM");
    first.wait_for_line("draining 1 connection(s)");
    let mut waiting = connect(addr);
    send(&mut waiting, b"during the restart\n");
    expect_silence(&mut waiting, Duration::from_millis(200));
    send(&mut open, b"while draining\n");
    expect_bytes(&mut open, &answer(b"still served while draining\n"));
    drop(open);
    first.expect_exit(0, PROMPTLY);
    assert_eq!(
        first.count_lines("served 1 connection(s)"),
        1,
        "{}",
        first.stderr()
    );

    let mut second = serve_activated(&listener, &["--framing", "line"]);
    expect_bytes(&mut waiting, &answer(b"during the restart\n"));
    drop(waiting);
    assert_eq!(stop_and_count_served(&mut second), 1);
}

/// With `--workers 2` both loops serve the one inherited socket (each its own duplicate).
#[test]
fn every_worker_serves_the_inherited_socket() {
    let listener = listening_socket();
    let addr = listener.local_addr().unwrap();
    let mut server = serve_activated(&listener, &["--workers", "2"]);
    const CLIENTS: u64 = 100;
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        roundtrip(client, format!("client {i}").as_bytes());
    }
    drop(clients);
    assert_eq!(stop_and_count_served(&mut server), CLIENTS);
}

/// The `.socket` unit says where saythat listens: an address given as well, by flag or
/// environment, is a usage error naming the passed socket, not a second listener.
#[test]
fn an_explicit_listen_beside_an_inherited_socket_is_a_usage_error() {
    let listener = listening_socket();
    let addr = listener.local_addr().unwrap();
    let by_flag = spawn_activated(
        listener.try_clone().unwrap(),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let by_env = {
        let mut cmd = saythat_under(&["sh", "-c", PASS_STDIN_AS_FD3], &["serve"]);
        cmd.env("SAYTHAT_LISTEN", "127.0.0.1:0");
        let copy = listener.try_clone().unwrap();
        ServerProcess::spawn(cmd, Stdio::from(OwnedFd::from(copy)))
    };
    for mut server in [by_flag, by_env] {
        server.expect_exit(2, TIMEOUT);
        let expected = format!(
            "error: --listen (or SAYTHAT_LISTEN) cannot be given with sockets passed by the \
             service manager ({addr}): the .socket unit says where saythat listens; remove one \
             of the two"
        );
        assert_eq!(server.count_lines(&expected), 1, "{}", server.stderr());
    }
}

/// What is passed as fd 3 must be a listening TCP socket; anything else is refused at start
/// (exit 1) with a line naming the descriptor, its name and what is wrong.
#[test]
fn a_passed_descriptor_that_is_not_a_listening_tcp_socket_is_refused() {
    use socket2::{Domain, Socket, Type};
    let bound_only = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    bound_only
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let cases: Vec<(OwnedFd, &str)> = vec![
        (bound_only.into(), "it is not listening"),
        (
            UdpSocket::bind("127.0.0.1:0").unwrap().into(),
            "fd 3 is not a valid tcp socket",
        ),
        (
            std::fs::File::open("/dev/null").unwrap().into(),
            "fd 3 is not a socket",
        ),
    ];
    for (fd, why) in cases {
        let mut server = spawn_activated(fd, &["serve"]);
        server.expect_exit(1, TIMEOUT);
        let expected = format!("error: cannot serve on the socket passed as fd 3 (echo): {why}");
        assert_eq!(server.count_lines(&expected), 1, "{}", server.stderr());
    }
}

/// Variables meant for another process (`LISTEN_PID` is not saythat's) are not followed:
/// saythat binds `--listen` as usual.
#[test]
fn sockets_passed_to_another_pid_are_ignored() {
    let listener = listening_socket();
    let script = r#"exec 3<&0 0</dev/null; export LISTEN_PID=1 LISTEN_FDS=1; exec "$0" "$@""#;
    let cmd = saythat_under(&["sh", "-c", script], &["serve", "--listen", "127.0.0.1:0"]);
    let copy = listener.try_clone().unwrap();
    let mut server = ServerProcess::spawn(cmd, Stdio::from(OwnedFd::from(copy)));
    let addr = server.wait_listening();
    assert_ne!(addr, listener.local_addr().unwrap(), "{}", server.stderr());
    roundtrip(&mut connect(addr), b"bound by saythat");
    assert_eq!(
        server.count_lines("socket activation"),
        0,
        "{}",
        server.stderr()
    );
}

/// Set in the child process of the next test, which runs the test after it alone.
const CHILD: &str = "SAYTHAT_TEST_TAKE_LISTENERS";

/// saythat unsets `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` once it has the sockets. A
/// process cannot see another's current environment (/proc/PID/environ keeps the one it was
/// started with), so this test runs its own binary under the fd-3 wrapper, where
/// `take_listeners_child` calls the library function and reports what it took and what is left.
#[test]
fn the_activation_variables_are_unset_once_the_sockets_are_taken() {
    let listener = listening_socket();
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(PASS_STDIN_AS_FD3).arg(&exe);
    cmd.args([
        "--exact",
        "take_listeners_child",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(CHILD, "1")
        .stdin(Stdio::from(OwnedFd::from(listener.try_clone().unwrap())));
    let output = run_bounded(cmd);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        "taken: fd 3 (echo) {} left: []",
        listener.local_addr().unwrap()
    );
    assert!(
        output.status.success() && stdout.contains(&expected),
        "no {expected:?} printed; {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn take_listeners_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let taken = saythat::systemd::take_listeners().expect("take the passed socket");
    let left: Vec<&str> = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
        .into_iter()
        .filter(|var| std::env::var_os(var).is_some())
        .collect();
    for socket in &taken {
        println!(
            "taken: fd {} ({}) {} left: {left:?}",
            socket.fd, socket.name, socket.addr
        );
    }
}

/// Runs `cmd` to its end, at most `TIMEOUT`.
fn run_bounded(mut cmd: Command) -> std::process::Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not end within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Where `systemd-socket-activate` is installed, if it is.
fn socket_activate() -> Option<&'static str> {
    [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|path| Path::new(path).exists())
}

/// systemd's own tool listens, execs saythat at the first connection with `LISTEN_FDS`,
/// `LISTEN_PID` and `LISTEN_FDNAMES` set, and saythat answers that connection and the next.
#[test]
fn systemd_socket_activate_starts_saythat_on_its_socket() {
    let Some(tool) = socket_activate() else {
        eprintln!("skipped: systemd-socket-activate is not installed (apt-get install systemd)");
        return;
    };
    // A free port: bound, then dropped for the tool to bind.
    let addr = listening_socket().local_addr().unwrap();
    let listen = addr.to_string();
    let cmd = saythat_under(
        &[tool, "--listen", &listen, "--fdname=echo"],
        &["serve", "--workers", "2"],
    );
    let mut server = ServerProcess::spawn(cmd, Stdio::null());
    server.wait_for_line(&format!("Listening on {listen}"));
    // The tool execs saythat at the first connection; it waits in the backlog meanwhile.
    let mut first = connect(addr);
    send(&mut first, b"first");
    let line = server.wait_for_line("socket activation: serving fd 3 (echo)");
    assert!(line.ends_with(&format!("bound to {listen}")), "{line}");
    assert_eq!(server.wait_listening(), addr);
    expect_bytes(&mut first, &answer(b"first"));
    roundtrip(&mut connect(addr), b"second");
    drop(first);
    assert_eq!(stop_and_count_served(&mut server), 2);
}

// ---------------------------------------------------------------------------------------------
// Readiness notification

/// A datagram socket standing in for systemd's notification socket.
struct NotifySocket {
    socket: UnixDatagram,
    /// What `NOTIFY_SOCKET` says: a path, or `@name` in the abstract namespace.
    value: OsString,
    /// The directory of a path socket, removed at drop.
    dir: Option<PathBuf>,
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

impl NotifySocket {
    fn unique() -> String {
        let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
        format!("saythat-notify-{}-{n}", std::process::id())
    }

    fn at_path() -> NotifySocket {
        let dir = std::env::temp_dir().join(NotifySocket::unique());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
        NotifySocket::ready(socket, path.into_os_string(), Some(dir))
    }

    fn abstract_() -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        let name = NotifySocket::unique();
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("bind an abstract socket");
        NotifySocket::ready(socket, format!("@{name}").into(), None)
    }

    fn ready(socket: UnixDatagram, value: OsString, dir: Option<PathBuf>) -> NotifySocket {
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        NotifySocket { socket, value, dir }
    }

    /// The next notification as its `KEY=VALUE` lines, in order.
    #[track_caller]
    fn next(&self) -> Vec<(String, String)> {
        let mut buf = [0u8; 4096];
        let n = match self.socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => panic!("no notification within {TIMEOUT:?}: {e}"),
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        text.lines()
            .map(|line| match line.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => panic!("a notification line without `=`: {text:?}"),
            })
            .collect()
    }

    /// Notifications already sent, without waiting.
    fn rest(&self) -> Vec<Vec<(String, String)>> {
        self.socket.set_nonblocking(true).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            all.push(fields(&text));
        }
        all
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An `EXTEND_TIMEOUT_USEC` notification: its extension, checked to outlast the period between
/// two of them, and its status.
#[track_caller]
fn extension(message: &[(String, String)]) -> String {
    match message {
        [(key, usec), (status, text)] if key == "EXTEND_TIMEOUT_USEC" && status == "STATUS" => {
            let usec: u64 = usec.parse().expect("microseconds");
            assert!(
                usec > 1_000_000,
                "an extension of {usec} µs is shorter than its period"
            );
            text.clone()
        }
        other => panic!("expected EXTEND_TIMEOUT_USEC and STATUS, got {other:?}"),
    }
}

/// Ready once listening (with the pid and the address), stopping at SIGTERM with the count of
/// connections to drain, then extensions while they drain, their status following the count.
fn readiness_and_stop_are_notified(notify: NotifySocket) {
    let mut cmd = saythat(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-timeout",
        "60",
        "--framing",
        "line",
    ]);
    cmd.env("NOTIFY_SOCKET", &notify.value);
    let mut server = ServerProcess::start(cmd);
    let pid = server.pid().to_string();
    let status = format!("serving on {}", server.addr());
    assert_eq!(
        notify.next(),
        pairs(&[("READY", "1"), ("MAINPID", &pid), ("STATUS", &status)])
    );

    let mut clients = [server.connect(), server.connect()];
    // Each holds half a line, so the drain does not close them at a message boundary.
    for client in clients.iter_mut() {
        roundtrip(client, b"before SIGTERM\n");
        send(client, b"while ");
    }
    server.signal("TERM");
    assert_eq!(
        notify.next(),
        pairs(&[("STOPPING", "1"), ("STATUS", "draining 2 connections")])
    );
    // The drain lasts until the clients close: at least one extension comes first.
    assert_eq!(extension(&notify.next()), "draining 2 connections");
    let [one, mut other] = clients;
    drop(one);
    send(&mut other, b"draining\n");
    expect_bytes(&mut other, &answer(b"while draining\n"));
    // The status follows the count within a period or two.
    let deadline = Instant::now() + TIMEOUT;
    while extension(&notify.next()) != "draining 1 connection" {
        assert!(
            Instant::now() < deadline,
            "the status never said 1 connection"
        );
    }
    drop(other);
    server.expect_exit(0, PROMPTLY);
    for message in notify.rest() {
        extension(&message);
    }
}

#[test]
fn readiness_and_stop_are_notified_to_a_socket_path() {
    readiness_and_stop_are_notified(NotifySocket::at_path());
}

#[test]
fn readiness_and_stop_are_notified_to_an_abstract_socket() {
    readiness_and_stop_are_notified(NotifySocket::abstract_());
}

/// With nothing to drain, STOPPING is the last word, and no timer keeps the process alive.
#[test]
fn an_idle_server_says_stopping_and_exits() {
    let notify = NotifySocket::at_path();
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0", "--workers", "2"]);
    cmd.env("NOTIFY_SOCKET", &notify.value);
    let mut server = ServerProcess::start(cmd);
    assert_eq!(notify.next()[0], ("READY".to_string(), "1".to_string()));
    server.signal("TERM");
    assert_eq!(
        notify.next(),
        pairs(&[("STOPPING", "1"), ("STATUS", "draining 0 connections")])
    );
    server.expect_exit(0, PROMPTLY);
    assert_eq!(notify.rest(), Vec::<Vec<(String, String)>>::new());
}

/// An address saythat cannot notify is warned about; it serves all the same.
#[test]
fn an_unusable_notify_socket_is_warned_about_and_saythat_serves() {
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("NOTIFY_SOCKET", "vsock:2:1234");
    let server = ServerProcess::start(cmd);
    roundtrip(&mut server.connect(), b"served anyway");
    assert_eq!(
        server.count_lines("NOTIFY_SOCKET=vsock:2:1234: not an absolute path"),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// --reuse-port

/// Two processes with `--reuse-port` bind the same port, and the kernel spreads the clients over
/// both; one without the flag cannot join them (nor could they join it).
#[test]
fn two_processes_with_reuse_port_share_a_port_and_both_accept() {
    let mut a = ServerProcess::serve(&["--reuse-port"]);
    let addr = a.addr().to_string();
    // The environment variable does what the flag does, as a unit file would set it.
    let mut cmd = saythat(&["serve", "--listen", &addr]);
    cmd.env("SAYTHAT_REUSE_PORT", "1");
    let mut b = ServerProcess::start(cmd);
    assert_eq!(b.addr(), a.addr());

    let refused = run_to_end(saythat(&["serve", "--listen", &addr]), None, TIMEOUT);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a server without --reuse-port must not join the port; stderr:\n{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Kept open together, so each has its own source port for the kernel's hash.
    const CLIENTS: u64 = 64;
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| a.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        roundtrip(client, format!("client {i}").as_bytes());
    }
    drop(clients);
    let (served_a, served_b) = (stop_and_count_served(&mut a), stop_and_count_served(&mut b));
    assert_eq!(served_a + served_b, CLIENTS, "a: {served_a}, b: {served_b}");
    // Both at 0 or 64 by chance is 2 in 2^64.
    assert!(
        served_a > 0 && served_b > 0,
        "both must accept: a served {served_a}, b served {served_b}"
    );
}

/// The hand-over: B starts on A's port, A is told to stop; A's open client is still served
/// while A drains, and every new client is answered (by B) without a refusal.
#[test]
fn a_new_process_takes_over_the_port_while_the_old_one_drains() {
    // Line framing, and half a line held through the drain: an old client idle at a message
    // boundary would be closed by the drain once the 20 new clients took longer than
    // DRAIN_QUIET, which a busy machine allows.
    let mut a = ServerProcess::serve(&[
        "--reuse-port",
        "--shutdown-timeout",
        "60",
        "--framing",
        "line",
    ]);
    let addr = a.addr().to_string();
    let mut old_client = a.connect();
    roundtrip(&mut old_client, b"before the hand-over\n");
    send(&mut old_client, b"during ");

    let mut b = serve_on(&addr, &["--reuse-port", "--framing", "line"]);
    a.signal("TERM");
    a.wait_for_line("draining 1 connection(s)");
    // A's listener is closed now: only B's is left on the port.
    for i in 0..20 {
        let mut client = connect(a.addr());
        roundtrip(&mut client, format!("new client {i}\n").as_bytes());
    }
    send(&mut old_client, b"the hand-over\n");
    expect_bytes(&mut old_client, &answer(b"during the hand-over\n"));
    drop(old_client);
    a.expect_exit(0, PROMPTLY);
    assert_eq!(
        a.count_lines("shut down: served 1 connection(s)"),
        1,
        "A must have served only the old client; stderr:\n{}",
        a.stderr()
    );
    assert_eq!(stop_and_count_served(&mut b), 20);
}

// ---------------------------------------------------------------------------------------------
// contrib/

/// The value of `key=` in a unit file (the last one given).
fn directive<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .rev()
        .find_map(|line| line.strip_prefix(&prefix))
}

/// The units in contrib/ pass `systemd-analyze verify` (where it is installed), with
/// `ExecStart=` pointing at the binary just built, and stop later than saythat's own drain.
#[test]
fn the_contrib_units_verify_and_give_the_drain_its_time() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let read = |name: &str| {
        std::fs::read_to_string(contrib.join(name))
            .unwrap_or_else(|e| panic!("cannot read contrib/{name}: {e}"))
    };
    let (service, socket) = (read("saythat.service"), read("saythat.socket"));
    assert_eq!(directive(&service, "Type"), Some("notify"));
    assert_eq!(directive(&socket, "ListenStream"), Some("127.0.0.1:8080"));
    let exec = directive(&service, "ExecStart").expect("an ExecStart= line");
    let shutdown: u64 = exec
        .split_once("--shutdown-timeout ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .expect("--shutdown-timeout SECS in ExecStart=");
    let delay: u64 = exec
        .split_once("--drain-delay ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    let stop: u64 = directive(&service, "TimeoutStopSec")
        .and_then(|secs| secs.parse().ok())
        .expect("TimeoutStopSec= in seconds");
    assert!(
        stop > delay + shutdown,
        "TimeoutStopSec={stop} must exceed --drain-delay {delay} + --shutdown-timeout {shutdown}"
    );

    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|path| Path::new(path).exists())
    else {
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    // verify checks that ExecStart= names an executable: the binary just built.
    let dir = std::env::temp_dir().join(format!("saythat-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let binary = env!("CARGO_BIN_EXE_saythat");
    let service = service.replace("/usr/local/bin/saythat", binary);
    std::fs::write(dir.join("saythat.service"), service).unwrap();
    std::fs::write(dir.join("saythat.socket"), socket).unwrap();
    let mut cmd = Command::new(analyze);
    cmd.arg("verify")
        .arg(dir.join("saythat.socket"))
        .arg(dir.join("saythat.service"));
    let output = run_bounded(cmd);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
