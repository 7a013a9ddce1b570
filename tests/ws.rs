//! The WebSocket upgrade of `saythat serve --framing http` (issue 18), over real sockets
//! against the binary: saythat's own clients (`send --ws`, `load --framing ws`), and a raw std
//! client that writes the RFC 6455 handshake and frames byte by byte and reads every answer
//! frame back: the 101 and its refusals, the echo, control frames, the close codes, a drain;
//! then the Autobahn|Testsuite's situations section by section (`autobahn_*`), which CI runs in
//! place of the suite (`scripts/autobahn.sh` runs the suite itself where Python can fetch it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use clap::Parser;
use common::ws::{cf, frame, upgrade, upgrade_request, KEY, MASK};
use common::{read_to_eof, run_to_end, saythat, ServerProcess, TIMEOUT};
use saythat::load::{self, LoadArgs};

fn serve(extra: &[&str]) -> ServerProcess {
    ServerProcess::serve(&[&["--framing", "http"], extra].concat())
}

/// Connects and upgrades, sending `first` in the same write as the request; checks the 101.
fn upgraded(server: &ServerProcess, first: &[u8]) -> TcpStream {
    upgrade(server.connect(), first)
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

// The Autobahn|Testsuite's situations, section by section (cases 1.* to 10.*), for CI, which
// cannot run the suite itself (scripts/autobahn.sh does, and diffs its verdicts). Against an
// exact echo (`--prefix ''`) as the suite runs; the case numbers are the suite's.

/// An exact-echo server, as the Autobahn suite is run against.
fn echo_server() -> ServerProcess {
    serve(&["--prefix", ""])
}

/// Writes `bytes` in writes of `chop` bytes each (the suite's "chops"), so the server reads
/// headers, payloads and characters cut anywhere.
fn write_chops(ws: &mut TcpStream, bytes: &[u8], chop: usize) {
    ws.set_nodelay(true).unwrap();
    for piece in bytes.chunks(chop) {
        ws.write_all(piece).unwrap();
    }
}

/// The next frame is a close with `code`.
#[track_caller]
fn expect_close(ws: &mut TcpStream, code: u16, case: &str) {
    let (first, payload) = frame(ws);
    assert_eq!(first, 0x88, "{case}: a close frame, got {payload:?}");
    assert_eq!(
        u16::from_be_bytes([payload[0], payload[1]]),
        code,
        "{case}: the close code"
    );
}

/// After the server's close: writes `tail` and our close (the server may be gone already, or
/// wait for it), and checks that nothing more comes before the end: no echo, no pong.
#[track_caller]
fn end(ws: &mut TcpStream, tail: &[u8], case: &str) {
    let _ = ws.write_all(&[tail, &cf(0x88, &1000u16.to_be_bytes())].concat());
    let mut rest = Vec::new();
    // A reset is an end too: the server may have closed before our close came.
    let _ = ws.read_to_end(&mut rest);
    assert_eq!(rest, b"", "{case}: nothing after the close");
}

/// Data frames not final (what came before a bad byte), then a close: (their payload, the code).
fn echo_then_close(ws: &mut TcpStream) -> (Vec<u8>, u16) {
    let mut echoed = Vec::new();
    loop {
        match frame(ws) {
            (0x01 | 0x00, payload) => echoed.extend_from_slice(&payload),
            (0x88, payload) => return (echoed, u16::from_be_bytes([payload[0], payload[1]])),
            (first, payload) => panic!("a data frame or the close, got {first:x}: {payload:?}"),
        }
    }
}

/// A control frame read between a message's data frames: (first byte, payload, the message's
/// bytes read before it).
type Between = (u8, Vec<u8>, usize);

/// Data frames up to FIN, the control frames between them kept apart: (opcode, payload, the
/// control frames).
fn message_and_controls(ws: &mut TcpStream) -> (u8, Vec<u8>, Vec<Between>) {
    let (mut opcode, mut payload, mut controls) = (None, Vec::new(), Vec::new());
    loop {
        let (first, bytes) = frame(ws);
        if first & 0x08 != 0 {
            controls.push((first, bytes, payload.len()));
            continue;
        }
        assert_eq!(
            first & 0x0f != 0,
            opcode.is_none(),
            "opcode only on the first"
        );
        opcode.get_or_insert(first & 0x0f);
        payload.extend_from_slice(&bytes);
        if first & 0x80 != 0 {
            return (opcode.unwrap(), payload, controls);
        }
    }
}

/// `len` bytes of text (ASCII) or binary.
fn payload_of(len: usize, text: bool) -> Vec<u8> {
    match text {
        true => (0..len).map(|i| b'a' + (i % 26) as u8).collect(),
        false => (0..len).map(|i| (i * 7 % 256) as u8).collect(),
    }
}

/// Cases 1.*: text and binary messages at the lengths where the length field changes size.
#[test]
fn autobahn_1_framing_every_length_boundary_is_echoed_exactly() {
    let server = echo_server();
    let mut ws = upgraded(&server, b"");
    for (first, text) in [(0x81u8, true), (0x82, false)] {
        for len in [0, 125, 126, 127, 128, 65535, 65536] {
            let payload = payload_of(len, text);
            ws.write_all(&cf(first, &payload)).unwrap();
            assert_eq!(message(&mut ws), (first & 0x0f, payload), "length {len}");
        }
        // 1.1.8 and 1.2.8: 64 KiB in chops of 997 bytes.
        let payload = payload_of(65536, text);
        write_chops(&mut ws, &cf(first, &payload), 997);
        assert_eq!(message(&mut ws), (first & 0x0f, payload), "in chops");
    }
    ws.write_all(&cf(0x88, &1000u16.to_be_bytes())).unwrap();
    expect_close(&mut ws, 1000, "1.*");
    end(&mut ws, b"", "1.*");
}

/// Cases 2.*: pings answered with their payload, at once and in order; pongs ignored; a ping
/// over 125 bytes fails the connection.
#[test]
fn autobahn_2_pings_are_answered_with_their_payload_and_pongs_ignored() {
    let server = echo_server();
    let mut ws = upgraded(&server, &cf(0x89, b""));
    assert_eq!(frame(&mut ws), (0x8a, Vec::new()), "2.1");
    for (case, payload) in [("2.2", &b"Hello, world!"[..]), ("2.3", &[0, 255, 254, 1])] {
        ws.write_all(&cf(0x89, payload)).unwrap();
        assert_eq!(frame(&mut ws), (0x8a, payload.to_vec()), "{case}");
    }
    let full = payload_of(125, false);
    ws.write_all(&cf(0x89, &full)).unwrap();
    assert_eq!(frame(&mut ws), (0x8a, full.clone()), "2.4");
    write_chops(&mut ws, &cf(0x89, &full), 1);
    assert_eq!(frame(&mut ws), (0x8a, full), "2.6");
    // 2.7, 2.8: unsolicited pongs get no answer; the next answer is the text's echo.
    ws.write_all(&[cf(0x8a, b""), cf(0x8a, b"unsolicited"), cf(0x81, b"after")].concat())
        .unwrap();
    assert_eq!(message(&mut ws), (1, b"after".to_vec()), "2.7, 2.8");
    // 2.9: a pong, then a ping: only the ping is answered.
    ws.write_all(&[cf(0x8a, b"pong"), cf(0x89, b"ping")].concat())
        .unwrap();
    assert_eq!(frame(&mut ws), (0x8a, b"ping".to_vec()), "2.9");
    // 2.10, 2.11: ten pings in one write, then in chops of one byte: ten pongs in order.
    let pings: Vec<u8> = (0..10)
        .flat_map(|i| cf(0x89, format!("ping {i}").as_bytes()))
        .collect();
    for chop in [pings.len(), 1] {
        write_chops(&mut ws, &pings, chop);
        for i in 0..10 {
            assert_eq!(
                frame(&mut ws),
                (0x8a, format!("ping {i}").into_bytes()),
                "2.10"
            );
        }
    }
    // 2.5: 126 bytes of ping payload.
    let mut ws = upgraded(&server, &cf(0x89, &[b'x'; 126]));
    expect_close(&mut ws, 1002, "2.5");
    end(&mut ws, b"", "2.5");
}

/// Cases 3.*: a reserved bit set, with no extension agreed, fails the connection at once,
/// after the answers to what came before and with no answer to what came after.
#[test]
fn autobahn_3_reserved_bits_fail_the_connection() {
    let server = echo_server();
    let close_1000 = 1000u16.to_be_bytes();
    let frames: [(u8, &[u8]); 4] = [
        (0x1, b"text"),
        (0x2, b"\x00bin"),
        (0x9, b"ping"),
        (0x8, &close_1000),
    ];
    for rsv in 1..=7u8 {
        let (opcode, payload) = frames[usize::from(rsv) % frames.len()];
        let case = format!("3.{rsv}: RSV = {rsv} on opcode {opcode}");
        let input = [
            cf(0x81, b"before"),
            cf(0x80 | rsv << 4 | opcode, payload),
            cf(0x89, b"after"),
        ]
        .concat();
        let mut ws = upgraded(&server, b"");
        // Odd bits in one write, even ones octet by octet.
        write_chops(&mut ws, &input, if rsv % 2 == 1 { input.len() } else { 1 });
        assert_eq!(message(&mut ws), (1, b"before".to_vec()), "{case}");
        expect_close(&mut ws, 1002, &case);
        end(&mut ws, b"", &case);
    }
}

/// Cases 4.*: the reserved opcodes, data (3-7) and control (11-15), fail the connection.
#[test]
fn autobahn_4_reserved_opcodes_fail_the_connection() {
    let server = echo_server();
    for opcode in (3..=7u8).chain(11..=15) {
        let case = format!("4.*: opcode {opcode}");
        let input = [
            cf(0x81, b"before"),
            cf(0x80 | opcode, b"reserved"),
            cf(0x89, b"after"),
        ]
        .concat();
        let mut ws = upgraded(&server, b"");
        write_chops(
            &mut ws,
            &input,
            if opcode % 2 == 1 { input.len() } else { 1 },
        );
        assert_eq!(message(&mut ws), (1, b"before".to_vec()), "{case}");
        expect_close(&mut ws, 1002, &case);
        end(&mut ws, b"", &case);
    }
}

/// Cases 5.* and 10.1.1: fragmented messages echoed whole, control frames answered between
/// fragments, and the rules of fragmentation enforced.
#[test]
fn autobahn_5_fragmentation_rules_and_pings_between_fragments() {
    let server = echo_server();
    let mut ws = upgraded(&server, b"");
    // 5.3-5.5: a text message in two fragments, in one write, by frame and by octet.
    let two = [cf(0x01, b"fragment1"), cf(0x80, b"fragment2")].concat();
    for chop in [two.len(), 17, 1] {
        write_chops(&mut ws, &two, chop);
        assert_eq!(
            message(&mut ws),
            (1, b"fragment1fragment2".to_vec()),
            "5.3-5.5"
        );
    }
    // 5.6-5.8: a ping between the fragments is answered before the message ends.
    let with_ping = [
        cf(0x01, b"fragment1"),
        cf(0x89, b"pongme!"),
        cf(0x80, b"fragment2"),
    ]
    .concat();
    for chop in [with_ping.len(), 1] {
        write_chops(&mut ws, &with_ping, chop);
        let (opcode, payload, controls) = message_and_controls(&mut ws);
        assert_eq!(
            (opcode, payload),
            (1, b"fragment1fragment2".to_vec()),
            "5.6-5.8"
        );
        assert_eq!(controls, [(0x8a, b"pongme!".to_vec(), 9)], "5.6-5.8");
    }
    // 5.19, 5.20: pings between several fragments of a binary message.
    let frames = [
        cf(0x02, b"f1"),
        cf(0x00, b"f2"),
        cf(0x89, b"p1"),
        cf(0x00, b"f3"),
        cf(0x89, b"p2"),
        cf(0x80, b"f4"),
    ]
    .concat();
    ws.write_all(&frames).unwrap();
    let (opcode, payload, controls) = message_and_controls(&mut ws);
    assert_eq!((opcode, payload), (2, b"f1f2f3f4".to_vec()), "5.19");
    assert_eq!(
        controls,
        [(0x8a, b"p1".to_vec(), 4), (0x8a, b"p2".to_vec(), 6)],
        "5.19"
    );
    // 10.1.1: 64 KiB of text in fragments of 1300 bytes.
    let text = payload_of(65536, true);
    let pieces: Vec<&[u8]> = text.chunks(1300).collect();
    let last = pieces.len() - 1;
    let fragmented: Vec<u8> = pieces
        .iter()
        .enumerate()
        .flat_map(|(i, piece)| {
            let first = match (i, i == last) {
                (0, _) => 0x01,
                (_, false) => 0x00,
                (_, true) => 0x80,
            };
            cf(first, piece)
        })
        .collect();
    ws.write_all(&fragmented).unwrap();
    assert_eq!(message(&mut ws), (1, text), "10.1.1");

    // Broken rules: (case, input, what is echoed before the close).
    let cases: [(&str, Vec<u8>, &[u8]); 7] = [
        (
            "5.1: a fragmented ping",
            [cf(0x09, b"frag"), cf(0x80, b"ment")].concat(),
            b"",
        ),
        (
            "5.2: a fragmented pong",
            [cf(0x0a, b"frag"), cf(0x80, b"ment")].concat(),
            b"",
        ),
        (
            "5.9: a continuation, not final, without a message",
            [cf(0x00, b"orphan"), cf(0x01, b"frag1"), cf(0x80, b"frag2")].concat(),
            b"",
        ),
        (
            "5.12: a final continuation without a message",
            [cf(0x80, b"orphan"), cf(0x01, b"frag1"), cf(0x80, b"frag2")].concat(),
            b"",
        ),
        (
            "5.15: a continuation after the message ended",
            [
                cf(0x01, b"frag1"),
                cf(0x80, b"frag2"),
                cf(0x00, b"frag3"),
                cf(0x81, b"x"),
            ]
            .concat(),
            b"frag1frag2",
        ),
        (
            "5.18: a second text frame inside the message",
            [cf(0x01, b"frag1"), cf(0x81, b"frag2")].concat(),
            b"frag1",
        ),
        (
            "5.18 binary: a binary frame inside a text message",
            [cf(0x01, b"frag1"), cf(0x82, b"frag2")].concat(),
            b"frag1",
        ),
    ];
    for (case, input, echoed) in cases {
        let mut ws = upgraded(&server, &input);
        let mut got = Vec::new();
        while got.len() < echoed.len() {
            let (first, payload) = frame(&mut ws);
            assert!(first & 0x08 == 0, "{case}: {first:x} before the echo");
            got.extend_from_slice(&payload);
        }
        assert_eq!(got, echoed, "{case}");
        expect_close(&mut ws, 1002, case);
        end(&mut ws, b"", case);
    }
}

/// Cases 6.*, valid: text with characters of every length, at the edges of the code space, in
/// one frame, a frame per byte, and in chops of one byte.
#[test]
fn autobahn_6_valid_utf8_is_echoed_however_it_is_cut() {
    let server = echo_server();
    let mut ws = upgraded(&server, b"");
    let texts = [
        "",
        "Hello-µ@ßöäüàá-UTF-8!!",
        "κόσμε",
        "\u{0}\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}",
        "\u{d7ff}\u{e000}\u{fffd}\u{fffe}",
        "𝄞 €",
    ];
    for text in texts {
        let bytes = text.as_bytes();
        ws.write_all(&cf(0x81, bytes)).unwrap();
        assert_eq!(message(&mut ws), (1, bytes.to_vec()), "{text:?} whole");
        write_chops(&mut ws, &cf(0x81, bytes), 1);
        assert_eq!(message(&mut ws), (1, bytes.to_vec()), "{text:?} chopped");
        if bytes.len() > 1 {
            let last = bytes.len() - 1;
            let frames: Vec<u8> = bytes
                .iter()
                .enumerate()
                .flat_map(|(i, b)| {
                    cf(
                        [0x01, 0x00, 0x80][usize::from(i > 0) + usize::from(i == last)],
                        &[*b],
                    )
                })
                .collect();
            ws.write_all(&frames).unwrap();
            assert_eq!(
                message(&mut ws),
                (1, bytes.to_vec()),
                "{text:?} a frame a byte"
            );
        }
    }
}

/// Cases 6.*, invalid: closed 1007, and at the first byte that cannot be UTF-8, before the rest
/// of the frame or the message has come.
#[test]
fn autobahn_6_invalid_utf8_fails_fast_with_1007() {
    let server = echo_server();
    let invalid: [&[u8]; 9] = [
        b"\x80",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xed\xbf\xbf",
        b"\xf4\x90\x80\x80",
        b"\xfe",
        b"\xce\xba\xe1\xbd",
        b"Hello\xff",
    ];
    for bad in invalid {
        let case = format!("6.*: {bad:x?}");
        let mut ws = upgraded(&server, &cf(0x81, bad));
        let (echoed, code) = echo_then_close(&mut ws);
        assert!(bad.starts_with(&echoed), "{case}: {echoed:x?} echoed");
        assert_eq!(code, 1007, "{case}");
        end(&mut ws, b"", &case);
    }
    // 6.4.3: the bad byte in a frame's middle, octet by octet: closed before the frame's end
    // is sent, with at most the bytes before the first that cannot be UTF-8 echoed. `f4` may
    // still start a code point, so it is echoed when it comes alone in a read (a text message's
    // pieces may cut a code point; only the whole message must be UTF-8); `90` cannot follow it.
    let valid = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    let echoable = [&valid[..], b"\xf4"].concat();
    let frame_bytes = cf(0x81, &[&valid[..], b"\xf4\x90\x80\x80edited"].concat());
    let (head, rest) = frame_bytes.split_at(6 + valid.len() + 2);
    let mut ws = upgraded(&server, b"");
    write_chops(&mut ws, head, 1);
    let (echoed, code) = echo_then_close(&mut ws);
    assert!(echoable.starts_with(&echoed), "6.4.3: {echoed:x?} echoed");
    assert_eq!(code, 1007, "6.4.3");
    end(&mut ws, rest, "6.4.3");
    // 6.4.1: the bad bytes in a message's second fragment: closed before the third is sent.
    let mut ws = upgraded(&server, &cf(0x01, "κόσμε".as_bytes()));
    assert_eq!(frame(&mut ws), (0x01, "κόσμε".as_bytes().to_vec()), "6.4.1");
    ws.write_all(&cf(0x00, b"\xf4\x90\x80\x80")).unwrap();
    expect_close(&mut ws, 1007, "6.4.1");
    end(&mut ws, &cf(0x80, b"edited"), "6.4.1");
}

/// Cases 7.*: the closing handshake: the client's close echoed with its code and the TCP close
/// after it, nothing answered after a close, close payloads and codes checked.
#[test]
fn autobahn_7_closing_handshake_codes_and_payloads() {
    let server = echo_server();
    let close = |code: u16, reason: &[u8]| cf(0x88, &[&code.to_be_bytes()[..], reason].concat());
    // 7.1.1-7.1.5: what follows the client's close is not answered.
    let cases: [(&str, Vec<u8>, &[u8]); 5] = [
        (
            "7.1.1",
            [cf(0x81, b"Hello"), close(1000, b"")].concat(),
            b"Hello",
        ),
        ("7.1.2", [close(1000, b""), close(1000, b"")].concat(), b""),
        ("7.1.3", [close(1000, b""), cf(0x89, b"ping")].concat(), b""),
        (
            "7.1.4",
            [close(1000, b""), cf(0x81, b"Hello")].concat(),
            b"",
        ),
        (
            "7.1.5",
            [
                cf(0x01, b"fragment1"),
                close(1000, b""),
                cf(0x80, b"fragment2"),
            ]
            .concat(),
            b"fragment1",
        ),
    ];
    for (case, input, echoed) in cases {
        let mut ws = upgraded(&server, &input);
        let mut got = Vec::new();
        while got.len() < echoed.len() {
            got.extend_from_slice(&frame(&mut ws).1);
        }
        assert_eq!(got, echoed, "{case}");
        expect_close(&mut ws, 1000, case);
        end(&mut ws, b"", case);
    }
    // 7.1.6: 256 KiB, a close and a ping back to back: the message whole, the close, no pong.
    let big = payload_of(256 << 10, true);
    let mut ws = upgraded(&server, b"");
    let mut writer = ws.try_clone().unwrap();
    let input = [cf(0x81, &big), close(1000, b""), cf(0x89, b"ping")].concat();
    let writing = std::thread::spawn(move || writer.write_all(&input));
    assert_eq!(message(&mut ws), (1, big), "7.1.6");
    expect_close(&mut ws, 1000, "7.1.6");
    end(&mut ws, b"", "7.1.6");
    let _ = writing.join();

    // 7.3.1: a close without payload is answered by one without payload.
    let mut ws = upgraded(&server, &cf(0x88, b""));
    assert_eq!(frame(&mut ws), (0x88, Vec::new()), "7.3.1");
    end(&mut ws, b"", "7.3.1");
    // Close payloads: (case, input, the code answered).
    let long_reason = vec![b'*'; 123];
    let cases: [(&str, Vec<u8>, u16); 6] = [
        ("7.3.2: 1 byte", cf(0x88, b"\x03"), 1002),
        ("7.3.3: a code", close(1000, b""), 1000),
        (
            "7.3.4: a code and a reason",
            close(1000, b"Hello World!"),
            1000,
        ),
        (
            "7.3.5: a reason of 123 bytes",
            close(1000, &long_reason),
            1000,
        ),
        (
            "7.3.6: a reason of 124 bytes",
            close(1000, &[b'*'; 124]),
            1002,
        ),
        (
            "7.5.1: a reason not UTF-8",
            close(
                1000,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
            ),
            1007,
        ),
    ];
    for (case, input, code) in cases {
        let mut ws = upgraded(&server, &input);
        expect_close(&mut ws, code, case);
        end(&mut ws, b"", case);
    }
    // 7.7.*: the codes a peer may send are echoed; 7.9.* and 7.13.*: others are 1002.
    let valid = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ];
    let invalid = [
        0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for (code, answer) in valid
        .iter()
        .map(|&c| (c, c))
        .chain(invalid.iter().map(|&c| (c, 1002)))
    {
        let case = format!("7.7/7.9/7.13: close code {code}");
        let mut ws = upgraded(&server, &close(code, b""));
        expect_close(&mut ws, answer, &case);
        end(&mut ws, b"", &case);
    }
}

/// Cases 9.*: big messages, whole and fragmented, up to the 16 MiB `--max-message` default
/// (one byte more is 1009), and many messages in flight.
#[test]
fn autobahn_9_big_messages_up_to_16_mib_and_many_in_flight() {
    let server = echo_server();
    // 9.1.6: 16 MiB of text in one frame, the default limit exactly.
    let big = payload_of(16 << 20, true);
    let mut ws = upgraded(&server, b"");
    let mut writer = ws.try_clone().unwrap();
    let input = cf(0x81, &big);
    let writing = std::thread::spawn(move || writer.write_all(&input));
    assert!(
        message(&mut ws) == (1, big),
        "9.1.6: the 16 MiB echo differs"
    );
    writing.join().unwrap().unwrap();
    // 9.4.*: 4 MiB of binary in fragments of 64 KiB.
    let big = payload_of(4 << 20, false);
    let pieces: Vec<&[u8]> = big.chunks(64 << 10).collect();
    let last = pieces.len() - 1;
    let input: Vec<u8> = pieces
        .iter()
        .enumerate()
        .flat_map(|(i, piece)| {
            cf(
                [0x02, 0x00, 0x80][usize::from(i > 0) + usize::from(i == last)],
                piece,
            )
        })
        .collect();
    let mut writer = ws.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&input));
    assert!(
        message(&mut ws) == (2, big),
        "9.4.*: the 4 MiB echo differs"
    );
    writing.join().unwrap().unwrap();
    // 9.7.*, 9.8.*: 1000 messages of 256 bytes in flight at once, echoed in order.
    let input: Vec<u8> = (0..1000u32)
        .flat_map(|i| cf(0x82, &[&i.to_be_bytes()[..], &[0x5a; 252]].concat()))
        .collect();
    let mut writer = ws.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&input));
    for i in 0..1000u32 {
        assert_eq!(
            message(&mut ws),
            (2, [&i.to_be_bytes()[..], &[0x5a; 252]].concat()),
            "9.7"
        );
    }
    writing.join().unwrap().unwrap();
    // One byte over the limit: refused at the header.
    ws.write_all(&[0x81, 0xff]).unwrap();
    ws.write_all(&((16u64 << 20) + 1).to_be_bytes()).unwrap();
    ws.write_all(&MASK).unwrap();
    expect_close(&mut ws, 1009, "16 MiB + 1");
}
