//! `saythat send --ws` (the binary): messages from the argument or stdin lines sent as text
//! messages to the tokio-tungstenite peer and to a raw std server that pings and fragments,
//! each answer printed on a line; a refused upgrade or a dead address exits 1 saying why.

mod common;

#[path = "../examples/peer/tungstenite_echo.rs"]
mod tungstenite_echo;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::mpsc;
use std::thread;

use common::{run_to_end, saythat, TIMEOUT};
use saythat::framing::ws::frame::{encode_header, unmask, Opcode};
use saythat::framing::ws::handshake::{accept_key, switching_protocols};

fn tungstenite_peer() -> SocketAddr {
    tungstenite_echo::spawn(([127, 0, 0, 1], 0).into(), "You say that ".to_string())
        .expect("start the tokio-tungstenite peer")
}

fn send(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut argv = vec!["send", "--timeout", "5"];
    argv.extend(args);
    run_to_end(saythat(&argv), stdin, TIMEOUT)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_argument_and_each_stdin_line_are_answered_on_a_line() {
    let addr = tungstenite_peer().to_string();
    let output = send(&["--ws", &addr, "hello"], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "You say that hello\n");

    let url = format!("ws://{addr}/any/path?x=1");
    let output = send(&["--ws", &url], Some(b"one\ntwo\r\n\nlast"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "You say that one\nYou say that two\nYou say that \nYou say that last\n"
    );
}

/// A server frame.
fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let (h, n) = encode_header(fin, opcode, payload.len() as u64);
    [&h[..n], payload].concat()
}

/// Reads one masked client frame: its opcode and unmasked payload (short frames only).
fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 6];
    stream.read_exact(&mut h).expect("a frame header");
    assert_eq!(h[1] & 0x80, 0x80, "client frames are masked");
    let len = usize::from(h[1] & 0x7F);
    assert!(len < 126, "a short frame");
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).expect("a frame payload");
    unmask(&mut payload, [h[2], h[3], h[4], h[5]], 0);
    (h[0], payload)
}

/// Accepts one connection, upgrades it, and answers its one message after a ping, in two
/// fragments; sends what it saw of the client (the message, the pong, the close) on `seen`.
fn pinging_server(seen: mpsc::Sender<(u8, Vec<u8>)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept send's connection");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            stream.read_exact(&mut byte).expect("the upgrade request");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key");
        let mut out = Vec::new();
        switching_protocols(&accept_key(key.trim().as_bytes()), &mut out);
        stream.write_all(&out).expect("write the 101");
        let message = read_frame(&mut stream);
        let _ = seen.send(message.clone());
        stream
            .write_all(&frame(true, Opcode::Ping, b"still there?"))
            .expect("write the ping");
        let _ = seen.send(read_frame(&mut stream));
        let answer = [b"[".as_slice(), &message.1, b"]"].concat();
        let (first, rest) = answer.split_at(3);
        stream
            .write_all(&frame(false, Opcode::Text, first))
            .expect("write the first fragment");
        stream
            .write_all(&frame(true, Opcode::Continuation, rest))
            .expect("write the last fragment");
        let _ = seen.send(read_frame(&mut stream));
        let _ = stream.write_all(&frame(true, Opcode::Close, &[0x03, 0xE8]));
    });
    addr
}

#[test]
fn a_ping_is_answered_by_a_pong_and_a_fragmented_answer_printed_whole() {
    let (tx, rx) = mpsc::channel();
    let addr = pinging_server(tx).to_string();
    let output = send(&["--ws", &addr, "hi there"], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "[hi there]\n");
    let seen: Vec<(u8, Vec<u8>)> = rx.try_iter().collect();
    assert_eq!(
        seen,
        [
            (0x81, b"hi there".to_vec()),
            (0x8A, b"still there?".to_vec()),
            (0x88, vec![0x03, 0xE8]),
        ]
    );
}

#[test]
fn a_refused_upgrade_or_no_server_exits_1_saying_why() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address").to_string();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let output = send(&["--ws", &addr, "hi"], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("cannot upgrade to WebSocket at ws://{addr}/"))
            && err.contains("\"HTTP/1.1 400 Bad Request\" instead of 101"),
        "{err}"
    );
    assert!(output.stdout.is_empty());

    let output = send(&["--ws", "127.0.0.1:9", "hi"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot connect to ws://127.0.0.1:9/"));
    // wss:// is WebSocket over TLS (tests/tls_client.rs); --tls cannot make a ws:// URL so.
    let output = send(&["--ws", "wss://127.0.0.1:9/", "hi"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot connect to wss://127.0.0.1:9/"));
    let output = send(&["--tls", "--ws", "ws://127.0.0.1:9/", "hi"], None);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(stderr(&output).contains("write it wss://"));
}
