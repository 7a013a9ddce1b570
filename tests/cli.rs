//! The command line: `serve`'s start-up errors, exit codes and environment, and `send` against a
//! running server and a closed port, with each kind of stdin.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    answer, run_to_end, saythat, send_expect, wait_for_open, ServerProcess, TestServer, TIMEOUT,
};
use saythat::Config;

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout: {:?}\nstderr: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_second_server_on_a_taken_address_exits_1_with_a_hint() {
    let first = ServerProcess::serve(&[]);
    let addr = first.addr().to_string();
    let output = run_to_end(saythat(&["serve", "--listen", &addr]), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let expected = format!(
        "error: cannot listen on {addr}: address already in use (is another server running? \
         choose another address with --listen)"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|line| line == expected),
        "no stderr line is exactly {expected:?}\n{}",
        describe(&output)
    );
}

#[test]
fn a_usage_error_exits_2() {
    let output = run_to_end(saythat(&["serve", "--framing", "nope"]), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--framing"),
        "the usage error should name the flag\n{}",
        describe(&output)
    );
}

#[test]
fn a_value_past_a_flags_range_is_a_usage_error_naming_the_flag_and_the_range() {
    let huge = u64::MAX.to_string();
    // (the flag, a value past its range, the range the message must state)
    let serve: &[(&str, &str, &str)] = &[
        ("--idle-timeout", "604801", "0..=604800"),
        ("--idle-timeout", &huge, "0..=604800"),
        ("--shutdown-timeout", "3601", "0..=3600"),
        ("--shutdown-timeout", &huge, "0..=3600"),
        ("--drain-delay", "3601", "0..=3600"),
        ("--drain-delay", &huge, "0..=3600"),
        ("--max-line", "1048577", "1..=1048576"),
        ("--max-pending", "1073741825", "1..=1073741824"),
        ("--max-conns", "16777217", "1..=16777216"),
        ("--workers", "1025", "1..=1024"),
    ];
    let send: &[(&str, &str, &str)] = &[
        ("--timeout", "3601", "1..=3600"),
        ("--timeout", &huge, "1..=3600"),
    ];
    // A value wrongly accepted runs a server on a free port, or a send to a closed one: either
    // fails the exit status check.
    let serve = serve
        .iter()
        .map(|case| (&["serve", "--listen", "127.0.0.1:0"][..], case));
    let send = send
        .iter()
        .map(|case| (&["send", "--addr", "127.0.0.1:9", "hi"][..], case));
    for (command, &(flag, value, range)) in serve.chain(send) {
        let args = [command, &[flag, value]].concat();
        let output = run_to_end(saythat(&args), None, TIMEOUT);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}\n{}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(range),
            "the usage error for {args:?} should name {flag} and {range}\n{}",
            describe(&output)
        );
    }
    // The environment is held to the same ranges.
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("SAYTHAT_IDLE_TIMEOUT", &huge);
    let output = run_to_end(cmd, None, TIMEOUT);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--idle-timeout"),
        "{}",
        describe(&output)
    );
}

/// `serve --help` states what the server does: the stopping signals include SIGQUIT, a first
/// request's head is timed from accept (`tests/http_limits.rs` checks the 408), and a connection
/// past `--max-conns` is refused in HTTP's words too.
#[test]
fn serve_help_says_what_the_server_does() {
    let output = run_to_end(saythat(&["serve", "--help"]), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    let says: &[(&str, &str)] = &[
        (
            "--header-timeout",
            "from accept for a connection's first request",
        ),
        ("--agent-listen", "SIGINT, SIGTERM or SIGQUIT"),
        ("--shutdown-timeout", "SIGINT, SIGTERM or SIGQUIT"),
        ("--drain-delay", "SIGINT, SIGTERM or SIGQUIT"),
        ("--max-conns", "(in HTTP, `503`)"),
    ];
    for &(flag, text) in says {
        let start = help
            .find(&format!("      {flag} <"))
            .unwrap_or_else(|| panic!("{flag} is not in serve --help:\n{help}"));
        let rest = &help[start + flag.len() + 6..];
        let entry = &rest[..rest.find("\n      --").unwrap_or(rest.len())];
        assert!(
            entry.contains(text),
            "serve --help should say {text:?} for {flag}:\n{entry}"
        );
    }
}

#[test]
fn serve_and_send_work_at_the_largest_values_allowed() {
    let mut server = ServerProcess::serve(&[
        "--idle-timeout",
        "604800",
        "--shutdown-timeout",
        "3600",
        "--max-line",
        "1048576",
        "--max-pending",
        "1073741824",
        "--max-conns",
        "16777216",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let metrics = server.metrics_addr();
    // The first connection sets an idle deadline, a week from now.
    let mut client = server.connect();
    send_expect(&mut client, b"hi", b"You say that hi");
    let addr = server.addr().to_string();
    let output = run_to_end(
        saythat(&["send", "--addr", &addr, "--timeout", "3600", "hi"]),
        None,
        TIMEOUT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(output.stdout, answer(b"hi"), "{}", describe(&output));
    // `send` has closed its connection, but the server counts it until its loop reads that
    // close: the drain below must find only `client`.
    wait_for_open(metrics, 1);
    // SIGTERM sets the drain deadline, an hour from now; the client's close ends the drain.
    server.signal("TERM");
    server.wait_for_line("draining 1 connection(s)");
    drop(client);
    server.expect_exit(0, TIMEOUT);
}

#[test]
fn the_prefix_comes_from_the_environment() {
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("SAYTHAT_PREFIX", "> ");
    let server = ServerProcess::start(cmd);
    let mut client = server.connect();
    send_expect(&mut client, b"hi", b"> hi");
}

#[test]
fn send_to_a_closed_port_exits_1_with_a_hint() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().expect("its address")
    };
    let addr = addr.to_string();
    let output = run_to_end(saythat(&["send", "--addr", &addr, "hi"]), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in [
        &format!("cannot connect to {addr}")[..],
        "is saythat serve running on that address?",
    ] {
        assert!(
            stderr.contains(part),
            "stderr lacks {part:?}\n{}",
            describe(&output)
        );
    }
    assert!(output.stdout.is_empty(), "{}", describe(&output));
}

#[test]
fn send_prints_the_answer_to_its_message() {
    let server = TestServer::start(&Config::loopback());
    let addr = server.addr().to_string();
    let output = run_to_end(saythat(&["send", "--addr", &addr, "hi"]), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(output.stdout, answer(b"hi"), "{}", describe(&output));
}

#[test]
fn send_streams_stdin() {
    let server = TestServer::start(&Config::loopback());
    let addr = server.addr().to_string();
    let output = run_to_end(saythat(&["send", "--addr", &addr]), Some(b"hi\n"), TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(output.stdout, answer(b"hi\n"), "{}", describe(&output));
}

/// The lesson's message, answered with the default prefix.
const DEFAULT_ANSWER: &[u8] = b"You say that Hello? anyone is there? I am client";

#[test]
fn send_with_stdin_at_dev_null_or_closed_sends_the_lessons_message() {
    let server = TestServer::start(&Config::loopback());
    let addr = server.addr().to_string();
    // As under systemd (stdin is /dev/null) ...
    let dev_null = saythat(&["send", "--addr", &addr]);
    // ... and under a supervisor that closed fd 0: the shell closes it before exec.
    let mut closed = Command::new("sh");
    closed
        .args(["-c", r#"exec "$0" "$@" <&-"#, env!("CARGO_BIN_EXE_saythat")])
        .args(["send", "--addr", &addr])
        .env_remove("SAYTHAT_TIMEOUT");
    for cmd in [dev_null, closed] {
        // No input: run_to_end gives the child /dev/null as its stdin.
        let output = run_to_end(cmd, None, TIMEOUT);
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        assert_eq!(output.stdout, DEFAULT_ANSWER, "{}", describe(&output));
    }
}

#[test]
fn send_with_an_empty_pipe_or_dash_sends_an_empty_message() {
    let server = TestServer::start(&Config::loopback());
    let addr = server.addr().to_string();
    // An empty pipe is an empty message: nothing is sent, so nothing is answered.
    let output = run_to_end(saythat(&["send", "--addr", &addr]), Some(b""), TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    // `-` streams stdin whatever it is, even /dev/null.
    let output = run_to_end(saythat(&["send", "--addr", &addr, "-"]), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
}

#[test]
fn send_exits_when_the_server_closes_although_stdin_stays_open() {
    /// How long `send` may take to exit once the server has closed its connection.
    const PROMPTLY: Duration = Duration::from_secs(2);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("its address").to_string();
    // A server that answers one line and closes: it has nothing more to say, as one closing
    // idle connections would.
    let (closed_tx, closed_rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept send's connection");
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("set a read timeout");
        let mut line = [0u8; 3];
        stream.read_exact(&mut line).expect("read send's line");
        stream.write_all(b"You say that ").expect("answer");
        stream.write_all(&line).expect("answer");
        drop(stream);
        let _ = closed_tx.send(Instant::now());
    });

    let mut child = saythat(&["send", "--addr", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn saythat send");
    // Held open until the end of the test, like `(echo hi; sleep 30) | saythat send`.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(b"hi\n").expect("write send's stdin");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (out_tx, out_rx) = mpsc::channel();
    // Stdout ends when the process exits.
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        let _ = out_tx.send(bytes);
    });

    let closed_at = closed_rx
        .recv_timeout(TIMEOUT)
        .expect("the test server should get send's line and close");
    let left = PROMPTLY.saturating_sub(closed_at.elapsed());
    let Ok(printed) = out_rx.recv_timeout(left) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("send still ran {PROMPTLY:?} after the server closed: it waits for stdin's end");
    };
    let status = child.wait().expect("wait for send");
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(printed, b"You say that hi\n", "stderr: {stderr}");
    drop(stdin);
}

#[test]
fn send_to_a_server_that_never_answers_exits_1_after_its_timeout() {
    // Accepts (through the kernel's backlog) and never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = silent.local_addr().expect("its address").to_string();
    let started = std::time::Instant::now();
    let output = run_to_end(
        saythat(&["send", "--addr", &addr, "--timeout", "1", "hi"]),
        None,
        TIMEOUT,
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("no answer from {addr} within 1 s")),
        "{}",
        describe(&output)
    );
    assert!(
        started.elapsed() < TIMEOUT,
        "send outlived its --timeout: {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn load_exits_0_when_every_answer_is_right_and_2_on_bad_flags() {
    let server = TestServer::start(&Config::loopback());
    let addr = server.addr().to_string();
    let args = [
        "load",
        "--addr",
        &addr,
        "--conns",
        "4",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--json",
    ];
    let output = run_to_end(saythat(&args), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    assert!(report["messages"].as_u64() > Some(0), "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");

    let output = run_to_end(
        saythat(&["load", "--addr", &addr, "--pipeline", "4"]),
        None,
        TIMEOUT,
    );
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--pipeline"),
        "{}",
        describe(&output)
    );
}

#[test]
fn load_refuses_out_of_range_values_with_exit_2() {
    for bad in [
        ["--duration", "18446744073709551615"],
        ["--rate", "1e300"],
        ["--conns", "0"],
        ["--conns", "100000"],
        ["--timeout", "0"],
        ["--method", "post"],
    ] {
        let argv = [&["load", "--addr", "127.0.0.1:9"][..], &bad].concat();
        let output = run_to_end(saythat(&argv), None, TIMEOUT);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(bad[0]),
            "{bad:?}: {}",
            describe(&output)
        );
    }
}

#[test]
fn load_with_more_conns_than_descriptors_exits_1_with_a_hint() {
    // prlimit execs saythat with a hard limit of 64 descriptors, which load cannot raise.
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_saythat"))
        .args(["load", "--addr", "127.0.0.1:9", "--conns", "100"]);
    let output = run_to_end(cmd, None, TIMEOUT);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in [
        "cannot open 100 connections",
        "the limit is 64",
        "lower --conns",
    ] {
        assert!(
            stderr.contains(part),
            "stderr lacks {part:?}\n{}",
            describe(&output)
        );
    }
}

/// `saythat load --json` against `addr` for `duration` seconds with a 0.5 s timeout: its output
/// and its report (`Null` when stdout is not one JSON object).
fn load_json(addr: &str, duration: &str) -> (Output, serde_json::Value) {
    let args = [
        "load",
        "--addr",
        addr,
        "--conns",
        "2",
        "--duration",
        duration,
        "--warmup",
        "0",
        "--timeout",
        "0.5",
        "--json",
    ];
    let output = run_to_end(saythat(&args), None, TIMEOUT);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_default();
    (output, report)
}

/// Checks that `load` exited 1 saying that no answer was measured, with the hint.
#[track_caller]
fn assert_nothing_measured(output: &Output, addr: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in [
        "no answer was measured",
        &format!("is the server running and answering on {addr}?")[..],
        "raise --timeout (now 0.5 s)",
    ] {
        assert!(
            stderr.contains(part),
            "stderr lacks {part:?}\n{}",
            describe(output)
        );
    }
}

#[test]
fn load_exits_1_with_a_hint_when_no_answer_was_measured() {
    // The kernel completes the connects into the backlog; nothing ever reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = silent.local_addr().expect("its address").to_string();
    let (output, report) = load_json(&addr, "0.3");
    assert_nothing_measured(&output, &addr);
    assert_eq!(report["messages"].as_u64(), Some(0), "{report}");
    assert_eq!(report["timeouts"].as_u64(), Some(2), "{report}");
    drop(silent);
}

#[test]
fn load_against_a_stopped_server_exits_1() {
    let server = ServerProcess::serve(&[]);
    server.signal("STOP");
    let addr = server.addr().to_string();
    let (output, report) = load_json(&addr, "0.3");
    server.signal("CONT");
    assert_nothing_measured(&output, &addr);
    assert_eq!(report["timeouts"].as_u64(), Some(2), "{report}");
    assert!(
        report["latency_max_us"].as_u64() >= Some(500_000),
        "{report}"
    );
}

#[test]
fn load_against_a_server_stopped_mid_run_exits_1() {
    let server = ServerProcess::serve(&[]);
    let pid = server.pid().to_string();
    // The server stops 0.3 s into the 1 s run and never answers again.
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Command::new("kill").args(["-STOP", &pid]).status()
    });
    let addr = server.addr().to_string();
    let (output, report) = load_json(&addr, "1");
    let stopped = stopper.join().expect("the stopper thread ends");
    assert!(stopped.is_ok_and(|s| s.success()), "kill -STOP failed");
    server.signal("CONT");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(report["timeouts"].as_u64() >= Some(1), "{report}");
    // Each connection's last message waited at least the timeout.
    assert!(
        report["latency_max_us"].as_u64() >= Some(500_000),
        "{report}"
    );
}

/// A `GET` with `Connection: close` to an HTTP server process, answered by 200.
fn expect_http_ok(server: &ServerProcess) {
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hi HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("send a GET");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn the_test_backend_flags_are_accepted_from_the_command_line_and_the_environment() {
    let server = ServerProcess::serve(&[
        "--framing",
        "http",
        "--instance",
        "web-1",
        "--http-defaults",
        "?delay=1ms&header=X-Default:a,b",
        "--max-delay",
        "1500ms",
        "--max-size",
        "2048",
        "--trust-proxy",
        "10.0.0.0/8",
        "--trust-proxy",
        "::1",
        "--no-controls",
    ]);
    expect_http_ok(&server);
    // `host` is the hostname; the bounds let --http-defaults ask for more than the defaults do.
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0", "--framing", "http"]);
    cmd.env("SAYTHAT_INSTANCE", "host")
        .env("SAYTHAT_HTTP_DEFAULTS", "delay=20s&size=2000000")
        .env("SAYTHAT_MAX_DELAY", "1m")
        .env("SAYTHAT_MAX_SIZE", "2000000")
        .env("SAYTHAT_TRUST_PROXY", "127.0.0.1,fd00::/8")
        .env("SAYTHAT_NO_CONTROLS", "true");
    let server = ServerProcess::start(cmd);
    expect_http_ok(&server);
}

#[test]
fn the_controls_flags_apply_to_http_only_and_say_so() {
    let server = ServerProcess::serve(&["--instance", "web-1", "--trust-proxy", "::1"]);
    // Logged before the `listening on` line the start waited for.
    let warning = "--instance, --http-defaults, --no-controls and --trust-proxy apply to \
                   --framing http only; they are ignored";
    assert_eq!(server.count_lines(warning), 1, "{}", server.stderr());
    let mut client = server.connect();
    send_expect(&mut client, b"hi", b"You say that hi");
}

#[test]
fn a_bad_test_backend_flag_exits_2_with_its_message() {
    let long = "n".repeat(256);
    let huge_query = format!("delay=1ms&{}", "a".repeat(4096));
    // (the arguments after `serve --listen 127.0.0.1:0 --framing http`, what stderr must hold)
    let cases: &[(&[&str], &str)] = &[
        (
            &["--http-defaults", "delay=5parsecs"],
            "error: --http-defaults: control delay: \"5parsecs\" is not a duration; use 150ms, \
             2s, 10us or weighted 1ms:50,10ms:45 (percent)",
        ),
        (
            &["--http-defaults", "delay=20s"],
            "error: --http-defaults: control delay: 20s is past --max-delay 10s; raise \
             --max-delay or ask for less",
        ),
        (
            &["--max-size", "100", "--http-defaults", "size=101"],
            "error: --http-defaults: control size: 101 is past --max-size 100; raise --max-size \
             or ask for less",
        ),
        (
            &["--http-defaults", "status=503:80,429:30"],
            "error: --http-defaults: control status: \"503:80,429:30\" weighs 110% in all, past \
             100%; weights are percents of the answers, and the rest are answered 200",
        ),
        (&["--http-defaults", &huge_query], "error: invalid value"),
        (
            &["--max-delay", "2h"],
            "error: invalid value '2h' for '--max-delay <DUR>': 2h is past the longest allowed, \
             1h",
        ),
        (
            &["--max-delay", "soon"],
            "error: invalid value 'soon' for '--max-delay <DUR>': \"soon\" is not a duration: \
             use e.g. 10s, 500ms or 1m",
        ),
        (
            &["--max-size", "1099511627777"],
            "error: invalid value '1099511627777' for '--max-size <BYTES>': 1099511627777 is not \
             in 0..=1099511627776",
        ),
        (
            &["--trust-proxy", "10.0.0.0/33"],
            "error: invalid value '10.0.0.0/33' for '--trust-proxy <CIDR>': \"10.0.0.0/33\" is \
             not an address or a net: use e.g. 10.0.0.0/8 or ::1",
        ),
        (
            &["--instance", "web\r\nX-Evil: 1"],
            "\"web\\r\\nX-Evil: 1\" is not an instance name",
        ),
        (
            &["--instance", ""],
            "error: invalid value '' for '--instance <NAME>': \"\" is not an instance name: use \
             1 to 255 visible ASCII characters (it is sent as a header), or host for the hostname",
        ),
        (&["--instance", &long], "is not an instance name"),
        (
            &["--no-controls=maybe"],
            "error: unexpected value 'maybe' for '--no-controls'",
        ),
    ];
    for &(args, expected) in cases {
        let args = [
            &["serve", "--listen", "127.0.0.1:0", "--framing", "http"],
            args,
        ]
        .concat();
        let output = run_to_end(saythat(&args), None, TIMEOUT);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}\n{}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "stderr should hold {expected:?} for {args:?}\n{}",
            describe(&output)
        );
    }
    // From the environment too, naming the flag.
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0", "--framing", "http"]);
    cmd.env("SAYTHAT_HTTP_DEFAULTS", "status=abc");
    let output = run_to_end(cmd, None, TIMEOUT);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("error: --http-defaults: control status: \"abc\""),
        "{}",
        describe(&output)
    );
}
