//! The command line: `serve`'s start-up errors, exit codes and environment, and `send` against a
//! running server and a closed port.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};

use common::{answer, run_to_end, saythat, send_expect, ServerProcess, TestServer, TIMEOUT};
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
