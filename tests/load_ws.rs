//! `saythat load --framing ws` against WebSocket servers the tests start themselves: the
//! tokio-tungstenite peer (`examples/peer/tungstenite_echo.rs`, a real server), and a raw std
//! one (a thread per connection) that cuts every answer into small frames written one by one,
//! with pings between them, and answers wrong on purpose when asked. Every byte goes to
//! 127.0.0.1; each run lasts about 1 s.

#[path = "../examples/peer/tungstenite_echo.rs"]
mod tungstenite_echo;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use clap::Parser;
use saythat::framing::ws::frame::{encode_header, unmask, Opcode};
use saythat::framing::ws::handshake::{accept_key, switching_protocols};
use saythat::load::{self, LoadArgs, LoadErrorKind, LoadReport};

const PREFIX: &str = "You say that ";

/// `LoadArgs` parsed like the command line, so the tests also cover the flags' parsers.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

/// A WebSocket run of 4 connections for 1 second with no warmup against `addr`, changed by
/// `extra` flags.
fn args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
    let addr = addr.to_string();
    let mut argv = vec!["load", "--addr", &addr, "--framing", "ws"];
    argv.extend(["--warmup", "0", "--duration", "1", "--conns", "4"]);
    argv.extend(extra);
    Cli::try_parse_from(argv)
        .expect("the test's flags parse")
        .load
}

fn run(args: &LoadArgs) -> LoadReport {
    match load::run(args) {
        Ok(report) => {
            // Shown with `--nocapture`, or when the test fails.
            println!("{report}");
            report
        }
        Err(e) => panic!("the run could not happen: {e}"),
    }
}

fn assert_clean(report: &LoadReport) {
    assert_eq!(report.failure(), None, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.messages > 0, "{report}");
}

fn tungstenite_peer() -> SocketAddr {
    tungstenite_echo::spawn(([127, 0, 0, 1], 0).into(), PREFIX.to_string())
        .expect("start the tokio-tungstenite peer")
}

#[test]
fn binary_messages_against_tokio_tungstenite_pass() {
    let report = run(&args(tungstenite_peer(), &["--size", "64"]));
    assert_clean(&report);
    assert_eq!(report.framing, "ws");
}

#[test]
fn pipelined_large_text_messages_against_tokio_tungstenite_pass() {
    let flags = ["--ws-text", "--pipeline", "16", "--size", "70000"];
    assert_clean(&run(&args(tungstenite_peer(), &flags)));
}

#[test]
fn open_loop_with_churn_upgrades_every_new_connection() {
    let flags = ["--rate", "400", "--reconnect", "5"];
    let report = run(&args(tungstenite_peer(), &flags));
    assert_clean(&report);
    // About 400 messages in 1 s, 5 per connection: each reconnect upgraded again.
    assert!(report.reconnects >= 40, "{report}");
}

/// How the raw peer answers each message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Prefix and payload, same type, in frames of at most `PIECE` payload bytes.
    Right,
    /// As `Right` with the answer's last byte changed.
    WrongByte,
    /// As `Right` with text and binary swapped.
    WrongType,
    /// The upgrade is refused: `400 Bad Request`.
    Refuse,
}

/// Payload bytes per frame of the raw peer's answers: a 64-byte message's answer takes 11.
const PIECE: usize = 7;

/// Starts the raw peer answering as `how`; it lives until the test process ends.
fn raw_peer(how: Answer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // Each frame is a small write of its own: Nagle would merge them.
            let _ = stream.set_nodelay(true);
            thread::spawn(move || {
                let _ = raw_echo(stream, how);
            });
        }
    });
    addr
}

/// One connection of the raw peer: the upgrade, then an answer per message until a close or EOF.
fn raw_echo(mut stream: TcpStream, how: Answer) -> std::io::Result<()> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or_default()
        .trim()
        .to_string();
    if how == Answer::Refuse {
        return stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    }
    let mut answer = Vec::new();
    switching_protocols(&accept_key(key.as_bytes()), &mut answer);
    stream.write_all(&answer)?;
    loop {
        let mut h = [0u8; 2];
        stream.read_exact(&mut h)?;
        let mut len = u64::from(h[1] & 0x7F);
        if len >= 126 {
            let mut ext = vec![0u8; if len == 126 { 2 } else { 8 }];
            stream.read_exact(&mut ext)?;
            len = ext.iter().fold(0, |n, &b| (n << 8) | u64::from(b));
        }
        let mut mask = [0u8; 4];
        stream.read_exact(&mut mask)?;
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload)?;
        unmask(&mut payload, mask, 0);
        let opcode = match (h[0] & 0x0F, how) {
            (0x8, _) => return stream.write_all(&frame(true, Opcode::Close, &[0x03, 0xE8])),
            (0x1, Answer::WrongType) => Opcode::Binary,
            (0x2, Answer::WrongType) | (0x1, _) => Opcode::Text,
            _ => Opcode::Binary,
        };
        let mut whole = [PREFIX.as_bytes(), &payload].concat();
        if how == Answer::WrongByte {
            *whole.last_mut().expect("not empty") = b'#';
        }
        let pieces: Vec<&[u8]> = whole.chunks(PIECE).collect();
        for (k, piece) in pieces.iter().enumerate() {
            let op = if k == 0 { opcode } else { Opcode::Continuation };
            stream.write_all(&frame(k + 1 == pieces.len(), op, piece))?;
            if k == 0 {
                stream.write_all(&frame(true, Opcode::Ping, b"are you there"))?;
            }
        }
    }
}

/// A server frame.
fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let (h, n) = encode_header(fin, opcode, payload.len() as u64);
    [&h[..n], payload].concat()
}

#[test]
fn fragmented_answers_split_across_reads_with_pings_between_pass() {
    let addr = raw_peer(Answer::Right);
    assert_clean(&run(&args(addr, &["--pipeline", "4"])));
    assert_clean(&run(&args(addr, &["--ws-text", "--size", "300"])));
}

#[test]
fn a_wrong_byte_fails_the_run_and_is_named() {
    let report = run(&args(raw_peer(Answer::WrongByte), &["--size", "20"]));
    assert!(report.failure().is_some() && report.wrong > 0, "{report}");
    let first = &report.first_errors[0];
    assert!(
        first.contains("wrong answer to message 0 at message byte 32")
            && first.contains("expected payload byte")
            && first.contains("got '#'"),
        "{first}"
    );
}

#[test]
fn an_answer_of_the_wrong_type_fails_the_run_and_is_named() {
    let report = run(&args(raw_peer(Answer::WrongType), &["--ws-text"]));
    assert!(report.failure().is_some() && report.wrong > 0, "{report}");
    let first = &report.first_errors[0];
    assert!(
        first.contains("the answer to message 0 is a Binary message; a Text message was sent"),
        "{first}"
    );
}

#[test]
fn a_refused_upgrade_fails_the_run_quoting_the_answer() {
    let report = run(&args(raw_peer(Answer::Refuse), &[]));
    assert!(report.failure().is_some() && report.wrong > 0, "{report}");
    assert_eq!(report.messages, 0, "{report}");
    let first = &report.first_errors[0];
    assert!(
        first.contains("the WebSocket upgrade failed")
            && first.contains("\"HTTP/1.1 400 Bad Request\" instead of 101"),
        "{first}"
    );
}

#[test]
fn ws_text_without_ws_framing_is_refused() {
    let addr: SocketAddr = ([127, 0, 0, 1], 9).into();
    let mut a = args(addr, &["--ws-text"]);
    a.framing = load::LoadFraming::Line;
    let err = load::run(&a).expect_err("text needs WebSocket");
    assert_eq!(err.kind(), LoadErrorKind::InvalidArgs);
    assert!(err.to_string().contains("add --framing ws"), "{err}");
}
