//! The command line: `serve`'s start-up errors, exit codes and environment, and `send` against a
//! running server and a closed port.

mod common;

use std::net::TcpListener;
use std::process::Output;

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
