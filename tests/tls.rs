//! TLS on the echo listeners (issue 19), in process over loopback: every framing works over it
//! unchanged (chunk, line, HTTP keep-alive with ALPN, WebSocket), mutual TLS accepts the CA's
//! clients and refuses the others, bad peers end cleanly under their close reason (garbage, a
//! plain HTTP request, a stalled handshake) while a ClientHello sent byte by byte succeeds, a
//! slow reader stays bounded, and the drain says `close_notify` before its FIN.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{tcp_mem_max, TestServer, PREFIX, TIMEOUT};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use saythat::config::FramingKind;
use saythat::Config;
use tls::{
    expect_closed, server_config, tls_connect, tls_read_exact, tls_read_to_end, tls_send_expect,
    Pki,
};

#[test]
fn chunk_and_line_echo_over_tls() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Chunk));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"hello", b"You say that hello");
    tls_send_expect(&mut client, b"again", b"You say that again");

    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(
        &mut client,
        b"one\ntwo\nthr",
        b"You say that one\nYou say that two\n",
    );
    tls_send_expect(&mut client, b"ee\n", b"You say that three\n");
}

/// Large batches of lines, in full 16 KiB records that socket reads cut and that are longer
/// than one read of plaintext, echo byte for byte; with a small `--max-pending` too, which caps
/// the records the server seals and what it holds.
#[test]
fn records_cut_across_reads_echo_exactly() {
    let pki = Pki::new();
    for max_pending in [64 * 1024, 3000] {
        let server = TestServer::start(&Config {
            max_pending,
            ..server_config(&pki, FramingKind::Line)
        });
        let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
        let mut length = 1;
        for _ in 0..20 {
            let (mut batch, mut expected) = (Vec::new(), Vec::new());
            while batch.len() < 48 * 1024 {
                let line = [vec![b'a' + (length % 26) as u8; length], b"\n".to_vec()].concat();
                batch.extend_from_slice(&line);
                expected.extend_from_slice(&[PREFIX, &line].concat());
                length = length * 7 % 8000 + 1;
            }
            client.write_all(&batch).unwrap();
            client.flush().unwrap();
            assert!(tls_read_exact(&mut client, expected.len()) == expected);
        }
    }
}

#[test]
fn http_keep_alive_over_tls_with_alpn() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Http));
    let mut client = tls_connect(server.addr(), pki.client(&[b"http/1.1"], None)).unwrap();
    assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for path in ["/first", "/second"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        client.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.extend(tls_read_exact(&mut client, 1));
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("a Content-Length")
            .parse()
            .unwrap();
        let body = tls_read_exact(&mut client, length);
        assert_eq!(body, format!("You say that {}", &path[1..]).as_bytes());
    }
}

#[test]
fn websocket_over_tls() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Http));
    let mut client = tls_connect(server.addr(), pki.client(&[b"http/1.1"], None)).unwrap();
    client
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let accepted = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_eq!(
        tls_read_exact(&mut client, accepted.len())
            .escape_ascii()
            .to_string(),
        accepted.escape_ascii().to_string()
    );
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"Hello".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    let mut expected = vec![0x81, 18];
    expected.extend_from_slice(b"You say that Hello");
    tls_send_expect(&mut client, &frame, &expected);
}

#[test]
fn mutual_tls_accepts_the_cas_clients_and_refuses_others() {
    let pki = Pki::new();
    let server = TestServer::start(&Config {
        tls_client_ca: Some(pki.ca_file.clone()),
        ..server_config(&pki, FramingKind::Chunk)
    });
    let identity = pki.client_identity("client-1");
    let mut client = tls_connect(server.addr(), pki.client(&[], Some(identity))).unwrap();
    tls_send_expect(&mut client, b"hi", b"You say that hi");

    // No certificate: refused in the handshake (over TLS 1.3 the client learns it at its
    // first read).
    let refused = tls_connect(server.addr(), pki.client(&[], None)).and_then(|mut client| {
        client.write_all(b"hi")?;
        client.read(&mut [0; 64])
    });
    assert!(
        refused.is_err(),
        "a client without a certificate got {refused:?}"
    );
    // A certificate from another CA.
    let other = Pki::new();
    let stranger = pki.client(&[], Some(other.client_identity("stranger")));
    let refused = tls_connect(server.addr(), stranger).and_then(|mut client| {
        client.write_all(b"hi")?;
        client.read(&mut [0; 64])
    });
    assert!(refused.is_err(), "a stranger's certificate got {refused:?}");
    expect_closed(&server, "tls_error", 2);
}

/// Sends `bytes` and our FIN on a plain socket, and reads what the server answers until it
/// closes.
fn plain_exchange(server: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(server.addr()).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket.write_all(bytes).unwrap();
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    match socket.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no end after {bytes:?}: {e}"),
    }
    got
}

#[test]
fn garbage_and_plain_http_end_as_tls_errors() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Http));
    // Garbage: a fatal alert (content type 21), then the end.
    let got = plain_exchange(&server, &[0x42; 64]);
    assert_eq!(got.first(), Some(&21), "expected an alert, got {got:?}");
    // A plain HTTP request: a 400 it can read, not an alert.
    let got = plain_exchange(&server, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    assert!(got.contains("https://"), "{got}");
    // A ClientHello cut short by the client's FIN.
    let got = plain_exchange(&server, &[0x16, 0x03, 0x01, 0x00]);
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    expect_closed(&server, "tls_error", 3);
    // The server still serves.
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    client
        .write_all(b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, end) = tls_read_to_end(&mut client);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    end.expect("the server's close_notify after Connection: close");
}

#[test]
fn a_client_hello_sent_byte_by_byte_succeeds() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Chunk));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(pki.client(&[], None), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    let mut socket = TcpStream::connect(server.addr()).unwrap();
    socket.set_nodelay(true).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    for byte in &hello {
        socket.write_all(&[*byte]).unwrap();
        // Each byte in a segment of its own, so each is a read of its own.
        thread::sleep(Duration::from_millis(1));
    }
    let mut client = rustls::StreamOwned::new(conn, socket);
    tls_send_expect(&mut client, b"slowly", b"You say that slowly");
}

#[test]
fn a_stalled_handshake_times_out() {
    let pki = Pki::new();
    let server = TestServer::start(&Config {
        handshake_timeout: 1,
        ..server_config(&pki, FramingKind::Chunk)
    });
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    silent.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.set_read_timeout(Some(TIMEOUT)).unwrap();
    half.write_all(&[0x16, 0x03, 0x01]).unwrap();
    for socket in [&mut silent, &mut half] {
        let mut got = Vec::new();
        let _ = socket.read_to_end(&mut got);
    }
    assert!(started.elapsed() >= Duration::from_secs(1), "closed early");
    expect_closed(&server, "handshake_timeout", 2);
}

#[test]
fn a_close_without_close_notify_ends_like_a_fin() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"one\n", b"You say that one\n");
    // A line, then the TCP FIN with no close_notify: the line is answered, then the end.
    client.write_all(b"two\n").unwrap();
    client.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, end) = tls_read_to_end(&mut client);
    assert_eq!(got, b"You say that two\n");
    end.expect("the server's close_notify");
    expect_closed(&server, "client", 1);
}

#[test]
fn the_drain_sends_close_notify_before_the_fin() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Chunk));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut client, b"hi", b"You say that hi");
    server.handle.shutdown();
    let (got, end) = tls_read_to_end(&mut client);
    assert!(got.is_empty(), "{got:?}");
    // UnexpectedEof here would mean a FIN without close_notify.
    end.expect("close_notify before the FIN");
    let summary = server.wait(TIMEOUT);
    assert_eq!(summary.closed_at_drain, 1);
}

/// A client that writes lines over TLS and does not read: the server stops reading at
/// `--max-pending` (ours plus rustls's buffer), so what the client gets accepted is bounded by
/// the kernel's buffers, as over plain TCP; then it reads every answer, in order.
#[test]
fn a_slow_reader_over_tls_stays_bounded() {
    let pki = Pki::new();
    let server = TestServer::start(&server_config(&pki, FramingKind::Line));
    let mut client = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    let max_pending = u64::from(Config::default().max_pending);
    // Kernel buffers both ways (as in tests/backpressure.rs), our output and rustls's buffer,
    // the client's own rustls buffer, and TLS's overhead.
    let bound = 2 * tcp_mem_max("tcp_wmem") + 2 * tcp_mem_max("tcp_rmem") + 4 * max_pending;
    let line = [&[b'a'; 99][..], b"\n"].concat();
    client
        .sock
        .set_write_timeout(Some(Duration::from_millis(750)))
        .unwrap();
    let mut accepted = 0u64;
    let stalled = loop {
        assert!(
            accepted <= bound,
            "the client got {accepted} bytes accepted without reading, past {bound}"
        );
        accepted += client.conn.writer().write(&line).unwrap() as u64;
        match client.conn.write_tls(&mut client.sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break accepted
            }
            Err(e) => panic!("writing: {e}"),
        }
    };
    assert!(stalled > max_pending, "stalled at {stalled} bytes");
    // Now read every answer while the rest goes out.
    let lines = stalled / line.len() as u64;
    let answer = [PREFIX, &line].concat();
    let mut expected = lines * answer.len() as u64;
    let sent_whole = stalled % line.len() as u64 == 0;
    if !sent_whole {
        // The last line was taken in part: finish it.
        let rest = line.len() - (stalled % line.len() as u64) as usize;
        client
            .conn
            .writer()
            .write_all(&line[line.len() - rest..])
            .unwrap();
        expected += answer.len() as u64;
    }
    client.sock.set_nonblocking(true).unwrap();
    let mut got = 0u64;
    let mut buf = vec![0; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < expected {
        assert!(
            Instant::now() < deadline,
            "{got} of {expected} answer bytes"
        );
        let mut moved = false;
        while client.conn.wants_write() {
            match client.conn.write_tls(&mut client.sock) {
                Ok(_) => moved = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("writing: {e}"),
            }
        }
        match client.conn.read_tls(&mut client.sock) {
            Ok(0) => panic!("the server closed after {got} of {expected} bytes"),
            Ok(_) => {
                client.conn.process_new_packets().unwrap();
                moved = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading: {e}"),
        }
        loop {
            match client.conn.reader().read(&mut buf) {
                Ok(n) if n > 0 => {
                    for (i, byte) in buf[..n].iter().enumerate() {
                        let at = ((got + i as u64) % answer.len() as u64) as usize;
                        assert_eq!(*byte, answer[at], "answer byte {}", got + i as u64);
                    }
                    got += n as u64;
                }
                _ => break,
            }
        }
        if !moved {
            thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn metrics_tls_serves_the_metrics_endpoint_over_tls() {
    let pki = Pki::new();
    // Mutual TLS on the echo asks the metrics endpoint's clients for nothing.
    let server = TestServer::start(&Config {
        metrics_tls: true,
        tls_client_ca: Some(pki.ca_file.clone()),
        ..server_config(&pki, FramingKind::Chunk)
    });
    let mut client = tls_connect(server.metrics[0], pki.client(&[b"http/1.1"], None)).unwrap();
    assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, end) = tls_read_to_end(&mut client);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(
        got.contains("saythat_connections_closed_total{reason=\"tls_error\"}"),
        "{got}"
    );
    end.expect("close_notify");
    // Plain HTTP to it is refused with a 400.
    let mut socket = TcpStream::connect(server.metrics[0]).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
}

#[test]
fn a_full_tls_server_closes_without_a_plaintext_refusal() {
    let pki = Pki::new();
    let server = TestServer::start(&Config {
        max_conns: Some(1),
        ..server_config(&pki, FramingKind::Line)
    });
    let mut first = tls_connect(server.addr(), pki.client(&[], None)).unwrap();
    tls_send_expect(&mut first, b"in\n", b"You say that in\n");
    // Plaintext `ERR server full` would read as garbage to a TLS client: it gets the end only.
    let got = plain_exchange(&server, b"");
    assert!(got.is_empty(), "{:?}", got.escape_ascii().to_string());
    tls_send_expect(&mut first, b"still\n", b"You say that still\n");
}

#[test]
fn format_json_names_the_client_certificate_under_mutual_tls() {
    let pki = Pki::new();
    let server = TestServer::start(&Config {
        tls_client_ca: Some(pki.ca_file.clone()),
        ..server_config(&pki, FramingKind::Http)
    });
    let identity = pki.client_identity("client-7");
    let mut client =
        tls_connect(server.addr(), pki.client(&[b"http/1.1"], Some(identity))).unwrap();
    client
        .write_all(b"GET /?format=json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = tls_read_to_end(&mut client);
    let got = String::from_utf8_lossy(&got);
    let body = got.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body.trim()).expect(&got);
    assert_eq!(json["client_certificate"], "CN=client-7", "{json}");
    // Without mutual TLS, the field is absent.
    let server = TestServer::start(&server_config(&pki, FramingKind::Http));
    let mut client = tls_connect(server.addr(), pki.client(&[b"http/1.1"], None)).unwrap();
    client
        .write_all(b"GET /?format=json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = tls_read_to_end(&mut client);
    let got = String::from_utf8_lossy(&got);
    let body = got.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body.trim()).expect(&got);
    assert!(json.get("client_certificate").is_none(), "{json}");
}
