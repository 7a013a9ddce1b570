//! The WebSocket upgrade of `saythat serve --framing http` (issue 18), over real sockets
//! against the binary: saythat's own clients (`send --ws`, `load --framing ws`), and a raw std
//! client that writes the RFC 6455 handshake and frames byte by byte and reads every answer
//! frame back: the 101 and its refusals, the echo, control frames, the close codes, a drain.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use clap::Parser;
use common::{read_to_eof, run_to_end, saythat, ServerProcess, TIMEOUT};
use saythat::framing::ws::frame::unmask;
use saythat::load::{self, LoadArgs};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// RFC 6455 §1.3's example key and the accept value it must get.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPTED: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\nSec-WebSocket-Accept: \
                        s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn serve(extra: &[&str]) -> ServerProcess {
    ServerProcess::serve(&[&["--framing", "http"], extra].concat())
}

/// An upgrade request with `version` and `key`.
fn upgrade_request(version: &str, key: &str) -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client frame whose first byte is `first` (FIN, RSV, opcode).
fn cf(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], MASK, 0);
    out
}

/// Connects and upgrades, sending `first` in the same write as the request; checks the 101.
fn upgraded(server: &ServerProcess, first: &[u8]) -> TcpStream {
    let mut stream = server.connect();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(&[upgrade_request("13", KEY), first.to_vec()].concat())
        .unwrap();
    let mut head = vec![0; ACCEPTED.len()];
    stream.read_exact(&mut head).expect("the 101");
    assert_eq!(String::from_utf8_lossy(&head), ACCEPTED);
    stream
}

/// Reads one server frame: (first byte, payload). Server frames are never masked.
fn frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0; 2];
    stream.read_exact(&mut h).expect("a frame header");
    assert_eq!(h[1] & 0x80, 0, "a server frame is not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut n = [0; 2];
            stream.read_exact(&mut n).unwrap();
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0; len as usize];
    stream.read_exact(&mut payload).expect("a frame payload");
    (h[0], payload)
}

/// Reads answer frames until one has FIN: (opcode of the first, the whole payload).
fn message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let (first, mut payload) = frame(stream);
    let mut fin = first & 0x80 != 0;
    while !fin {
        let (next, more) = frame(stream);
        assert_eq!(next & 0x0f, 0, "a continuation");
        payload.extend_from_slice(&more);
        fin = next & 0x80 != 0;
    }
    (first & 0x0f, payload)
}

/// A close frame's code.
fn close_code(stream: &mut TcpStream) -> u16 {
    let (first, payload) = frame(stream);
    assert_eq!(first, 0x88, "a close frame, got {payload:?}");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn the_rfc_example_upgrades_and_text_and_binary_are_echoed_behind_the_prefix() {
    let server = serve(&[]);
    // The first frame rides in the same write as the upgrade request: it is the WebSocket's.
    let mut ws = upgraded(&server, &cf(0x81, b"Hello"));
    assert_eq!(message(&mut ws), (1, b"You say that Hello".to_vec()));
    ws.write_all(&cf(0x82, &[0, 1, 255])).unwrap();
    assert_eq!(message(&mut ws), (2, b"You say that \0\x01\xff".to_vec()));
    // A message is echoed piece by piece as it arrives; a ping between two fragments is
    // answered at once, between the answer's pieces.
    ws.write_all(&[cf(0x01, b"frag"), cf(0x89, b"hb")].concat())
        .unwrap();
    assert_eq!(frame(&mut ws), (0x01, b"You say that frag".to_vec()));
    assert_eq!(frame(&mut ws), (0x8a, b"hb".to_vec()));
    ws.write_all(&cf(0x80, b"ment")).unwrap();
    assert_eq!(frame(&mut ws), (0x80, b"ment".to_vec()));
    // The close is echoed with its code, then the server closes.
    ws.write_all(&cf(0x88, &1000u16.to_be_bytes())).unwrap();
    assert_eq!(close_code(&mut ws), 1000);
    assert_eq!(read_to_eof(&mut ws), b"");
}

#[test]
fn a_bad_key_is_400_and_version_8_is_426_naming_13() {
    let server = serve(&[]);
    let mut stream = server.connect();
    stream
        .write_all(&upgrade_request("13", "c2hvcnQ="))
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_eof(&mut stream)).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nSec-WebSocket-Key must be 16 bytes in base64 (24 characters)\n"),
        "{answer}"
    );

    let mut stream = server.connect();
    stream.write_all(&upgrade_request("8", KEY)).unwrap();
    let answer = String::from_utf8_lossy(&read_to_eof(&mut stream)).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("\r\nSec-WebSocket-Version: 13\r\n"),
        "{answer}"
    );

    // Another protocol's upgrade is plain HTTP, answered as ever.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_eof(&mut stream)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("You say that x"), "{answer}");
}

#[test]
fn an_unmasked_frame_is_closed_1002_and_invalid_utf8_1007() {
    let server = serve(&[]);
    let mut ws = upgraded(&server, &[0x81, 0x02, b'h', b'i']);
    assert_eq!(close_code(&mut ws), 1002);

    let mut ws = upgraded(&server, &cf(0x81, b"ok \xff"));
    assert_eq!(close_code(&mut ws), 1007);
}

#[test]
fn a_message_over_max_message_is_closed_1009_and_4_mib_are_echoed_whole() {
    let server = serve(&["--prefix", "", "--max-message", "8388608"]);
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let mut ws = upgraded(&server, b"");
    let sent = cf(0x82, &big);
    // Written from a thread: the echo comes back while the message still goes out.
    let mut writer = ws.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&sent));
    assert_eq!(message(&mut ws), (2, big));
    writing.join().unwrap().unwrap();
    assert!(
        server.rss_bytes() < 64 << 20,
        "RSS {} bytes after a 4 MiB message",
        server.rss_bytes()
    );

    let mut ws = upgraded(&server, b"");
    // A header that announces 9 MiB is refused at once.
    ws.write_all(&[0x82, 0xff]).unwrap();
    ws.write_all(&(9u64 << 20).to_be_bytes()).unwrap();
    ws.write_all(&MASK).unwrap();
    assert_eq!(close_code(&mut ws), 1009);
}

#[test]
fn the_drain_sends_close_1001() {
    let server = serve(&[]);
    let mut ws = upgraded(&server, &cf(0x81, b"x"));
    assert_eq!(message(&mut ws), (1, b"You say that x".to_vec()));
    server.signal("TERM");
    assert_eq!(close_code(&mut ws), 1001);
    ws.write_all(&cf(0x88, &1001u16.to_be_bytes())).unwrap();
    assert_eq!(read_to_eof(&mut ws), b"");
}

#[test]
fn send_ws_and_load_ws_against_the_binary() {
    let server = serve(&[]);
    let addr = server.addr().to_string();
    let output = run_to_end(
        saythat(&["send", "--timeout", "5", "--ws", &addr, "hello"]),
        None,
        TIMEOUT,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "You say that hello\n"
    );

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }
    let argv = ["load", "--addr", &addr, "--framing", "ws", "--warmup", "0"];
    let args = Cli::try_parse_from(argv.iter().chain(&["--duration", "1", "--conns", "4"]))
        .expect("the flags parse")
        .load;
    let report = load::run(&args).expect("the run happens");
    assert_eq!(report.failure(), None, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.messages > 100, "{report}");
}

#[test]
fn a_prefix_that_is_not_utf8_is_refused_at_start() {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = saythat(&["serve", "--listen", "127.0.0.1:0", "--framing", "http"]);
    cmd.arg("--prefix")
        .arg(std::ffi::OsStr::from_bytes(b"\xff say "));
    let output = run_to_end(cmd, None, TIMEOUT);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid UTF-8"), "{stderr}");
}
