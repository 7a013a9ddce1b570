//! `saythat send --tls` and `saythat load --tls` against a small rustls server each test starts
//! (a thread per connection, `ServerConnection` over a std `TcpListener` on 127.0.0.1:0) that
//! answers with saythat's own framings (chunk, line, HTTP and its WebSocket upgrade), with
//! certificates made in the test by rcgen: a trusted CA, a wrong one, a self-signed leaf, and a
//! client certificate for mutual TLS.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{load_ok, parse_load, run_to_end, saythat, TIMEOUT};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use saythat::framing::{Answers, Chunk, Http, HttpLimits, Line, Next, Protocol};
use saythat::load::{self, LoadArgs, LoadErrorKind};

const PREFIX: &[u8] = b"You say that ";

/// A CA that signs test certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a P-256 key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a self-signed CA"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (IP addresses or DNS names): its DER and key.
    fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, KeyPair) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("a P-256 key");
        let cert = params.signed_by(&key, &self.issuer).expect("a signed leaf");
        (cert.der().clone(), key)
    }
}

fn der_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server config presenting `chain`; with `client_ca`, a client certificate it signed is
/// required.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&Ca>,
) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.issuer.der().clone()).expect("a CA root");
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("a server cert");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The server for 127.0.0.1 signed by `ca`.
fn signed_server(ca: &Ca, client_ca: Option<&Ca>) -> Arc<ServerConfig> {
    let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"]);
    server_config(
        vec![cert, ca.issuer.der().clone()],
        der_key(&key),
        client_ca,
    )
}

/// Serves TLS on a free loopback port, each connection on its own thread answered by the
/// protocol `make` returns; counts the handshakes done.
fn serve<P: Protocol + 'static>(
    config: Arc<ServerConfig>,
    make: fn() -> P,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handshakes);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_nodelay(true);
            let (config, counted) = (Arc::clone(&config), Arc::clone(&counted));
            thread::spawn(move || {
                let _ = echo(stream, config, make(), &counted);
            });
        }
    });
    (addr, handshakes)
}

/// One connection: the handshake, then every read answered by the protocol, until the client's
/// close_notify (answered with ours) or its close.
fn echo<P: Protocol>(
    mut sock: TcpStream,
    config: Arc<ServerConfig>,
    mut protocol: P,
    handshakes: &AtomicUsize,
) -> std::io::Result<()> {
    sock.set_read_timeout(Some(TIMEOUT))?;
    let mut conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut tls = StreamOwned::new(conn, sock);
    let mut session = P::Session::default();
    let mut buf = [0u8; 1024];
    let mut out = Vec::new();
    loop {
        let n = match tls.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        out.clear();
        let mut answers = Answers::new(&mut out, usize::MAX, Instant::now());
        let next = match n {
            0 => {
                protocol.on_eof(&mut session, &mut answers);
                Next::Close
            }
            n => protocol.on_read(&mut session, &buf[..n], &mut answers),
        };
        tls.write_all(&out)?;
        if matches!(next, Next::Close | Next::CloseNow | Next::Reset) {
            tls.conn.send_close_notify();
            return tls.flush();
        }
    }
}

fn chunk() -> Chunk {
    Chunk::new(PREFIX)
}

fn line() -> Line {
    Line::new(PREFIX, 8192)
}

fn http() -> Http {
    Http::new(
        PREFIX,
        HttpLimits::new(8192, 1 << 20, Duration::from_secs(10)),
    )
}

/// A fresh directory for this test's PEM files.
fn pem_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("saythat-tls-{}-{test}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).expect("write a PEM file");
    path.to_string_lossy().into_owned()
}

fn send(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut argv = vec!["send", "--timeout", "5"];
    argv.extend(args);
    run_to_end(saythat(&argv), stdin, TIMEOUT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn send_tls_prints_the_echo_of_the_argument_and_of_stdin() {
    let ca = Ca::new("saythat test CA");
    let dir = pem_dir("send");
    let ca_pem = write(&dir, "ca.pem", &ca.pem());
    let (addr, handshakes) = serve(signed_server(&ca, None), chunk);
    let addr = addr.to_string();
    let out = send(
        &["--tls", "--tls-ca", &ca_pem, "--addr", &addr, "hello"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that hello");

    let (addr, _) = serve(signed_server(&ca, None), line);
    let addr = addr.to_string();
    // --tls-ca alone implies --tls.
    let out = send(
        &["--tls-ca", &ca_pem, "--addr", &addr, "-"],
        Some(b"one\ntwo\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that one\nYou say that two\n");
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}

#[test]
fn send_wss_speaks_websocket_over_tls() {
    let ca = Ca::new("saythat test CA");
    let dir = pem_dir("wss");
    let ca_pem = write(&dir, "ca.pem", &ca.pem());
    let (addr, _) = serve(signed_server(&ca, None), http);
    let url = format!("wss://{addr}/");
    let out = send(&["--tls-ca", &ca_pem, "--ws", &url, "hello"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that hello\n");
    // A bare HOST:PORT with --tls is wss too.
    let addr = addr.to_string();
    let out = send(&["--tls-ca", &ca_pem, "--ws", &addr, "-"], Some(b"a\nb\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that a\nYou say that b\n");
}

#[test]
fn a_server_the_ca_did_not_sign_fails_the_handshake_saying_what_to_do() {
    let (ca, wrong) = (Ca::new("saythat test CA"), Ca::new("another CA"));
    let dir = pem_dir("wrong-ca");
    let wrong_pem = write(&dir, "wrong.pem", &wrong.pem());
    let (addr, handshakes) = serve(signed_server(&ca, None), chunk);
    let addr = addr.to_string();
    let out = send(&["--tls-ca", &wrong_pem, "--addr", &addr, "hello"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("TLS handshake"), "{err}");
    assert!(err.contains("give its CA with --tls-ca"), "{err}");
    assert!(out.stdout.is_empty());
    // Without --tls-ca the built-in roots do not know a test CA either.
    let out = send(&["--tls", "--addr", &addr, "hello"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--tls-insecure"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);

    let args = load_args(&addr, &["--tls-ca", &wrong_pem]);
    let err = load::run(&args).expect_err("no handshake can succeed");
    assert_eq!(err.kind(), LoadErrorKind::Connect, "{err}");
    assert!(
        err.to_string().contains("not signed by a CA trusted here"),
        "{err}"
    );
    // The server answered the handshake: asking whether it runs there would mislead.
    assert!(
        !err.to_string().contains("running on that address"),
        "{err}"
    );
}

#[test]
fn unusable_tls_files_are_usage_errors_naming_the_file() {
    let dir = pem_dir("files");
    let missing = dir.join("missing.pem").to_string_lossy().into_owned();
    let out = send(&["--tls-ca", &missing, "--addr", "127.0.0.1:9", "x"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(&missing) && err.contains("--tls-ca"), "{err}");
    let empty = write(&dir, "empty.pem", "not a certificate\n");
    let out = send(&["--tls-ca", &empty, "--addr", "127.0.0.1:9", "x"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no CERTIFICATE"),
        "{}",
        text(&out.stderr)
    );
    let out = send(&["--tls-cert", &empty, "--addr", "127.0.0.1:9", "x"], None);
    assert_eq!(out.status.code(), Some(2), "--tls-cert needs --tls-key");
    // A client certificate with another key than its own.
    let (cert, _) = Ca::new("saythat test CA").leaf(&["saythat-client"]);
    let cert = write(&dir, "client.pem", &pem("CERTIFICATE", &cert));
    let other = KeyPair::generate().expect("a key").serialize_pem();
    let other = write(&dir, "other.key", &other);
    let argv = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &other,
        "--addr",
        "127.0.0.1:9",
        "x",
    ];
    let out = send(&argv, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&other) && err.contains("give the key that belongs"),
        "{err}"
    );
    let argv = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &cert,
        "--addr",
        "127.0.0.1:9",
        "x",
    ];
    let out = send(&argv, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no PRIVATE KEY block"),
        "{}",
        text(&out.stderr)
    );
    let out = load_cli(&["--tls-ca", &missing, "--addr", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&missing),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tls_insecure_takes_a_self_signed_certificate() {
    let key = KeyPair::generate().expect("a key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("a self-signed cert");
    let config = server_config(vec![cert.der().clone()], der_key(&key), None);
    let (addr, _) = serve(config, chunk);
    let addr = addr.to_string();
    let out = send(&["--tls-insecure", "--addr", &addr, "hi"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that hi");
    let report = load_ok(&load_args(&addr, &["--tls-insecure", "--messages", "50"]));
    assert_eq!((report.messages, report.errors), (50, 0), "{report}");
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let ca = Ca::new("saythat test CA");
    let dir = pem_dir("mtls");
    let ca_pem = write(&dir, "ca.pem", &ca.pem());
    let (cert, key) = ca.leaf(&["saythat-client"]);
    let cert_pem = write(&dir, "client.pem", &pem("CERTIFICATE", &cert));
    let key_pem = write(&dir, "client.key", &key.serialize_pem());
    let (addr, _) = serve(signed_server(&ca, Some(&ca)), chunk);
    let addr = addr.to_string();
    let mtls = [
        "--tls-ca",
        &ca_pem,
        "--tls-cert",
        &cert_pem,
        "--tls-key",
        &key_pem,
    ];
    let mut argv = mtls.to_vec();
    argv.extend(["--addr", &addr, "hello"]);
    let out = send(&argv, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that hello");
    let out = send(&["--tls-ca", &ca_pem, "--addr", &addr, "hello"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("client certificate"),
        "{}",
        text(&out.stderr)
    );
    let mut argv = mtls.to_vec();
    argv.extend(["--messages", "40"]);
    let report = load_ok(&load_args(&addr, &argv));
    assert_eq!((report.messages, report.errors), (40, 0), "{report}");
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A run of 4 connections, no warmup, against `addr`, changed by `extra` flags. Each test ends
/// it with `--messages`: the 30 s are only a bound (a debug build's rustls is slow, and the
/// tests share the machine).
fn load_args(addr: &str, extra: &[&str]) -> LoadArgs {
    let mut argv = vec!["load", "--addr", addr, "--warmup", "0", "--duration", "30"];
    argv.extend(["--conns", "4"]);
    argv.extend(extra);
    parse_load(&argv).expect("the test's flags parse")
}

fn load_cli(args: &[&str]) -> Output {
    let mut argv = vec!["load", "--warmup", "0", "--duration", "1"];
    argv.extend(args);
    run_to_end(saythat(&argv), None, TIMEOUT)
}

#[test]
fn load_tls_completes_every_framing_and_counts_the_handshakes() {
    let ca = Ca::new("saythat test CA");
    let dir = pem_dir("load");
    let ca_pem = write(&dir, "ca.pem", &ca.pem());
    let (chunk_addr, served) = serve(signed_server(&ca, None), chunk);
    let (line_addr, _) = serve(signed_server(&ca, None), line);
    let (http_addr, _) = serve(signed_server(&ca, None), http);
    let runs: [(&SocketAddr, &[&str]); 5] = [
        (&chunk_addr, &["--size", "3000"]),
        (&line_addr, &["--framing", "line", "--pipeline", "8"]),
        (&http_addr, &["--framing", "http"]),
        (
            &http_addr,
            &["--framing", "http", "--method", "post", "--size", "20000"],
        ),
        (&http_addr, &["--framing", "ws", "--pipeline", "4"]),
    ];
    let mut chunk_connected = 0;
    for (addr, extra) in runs {
        let addr = addr.to_string();
        let mut argv = vec!["--tls-ca", &ca_pem, "--messages", "200"];
        argv.extend(extra);
        let report = load_ok(&load_args(&addr, &argv));
        assert_eq!(
            (report.messages, report.errors),
            (200, 0),
            "{extra:?}: {report}"
        );
        assert!(report.tls, "{report}");
        // The 200 messages may all be answered before the last of the 4 connections is through
        // its handshake (a run ends at its count, not when every connection is up), so what
        // must hold is one handshake for each connection that connected, none failed.
        let connected = report.conns_connected;
        assert!((1..=4).contains(&connected), "{extra:?}: {report}");
        assert_eq!(report.connect_failures, 0, "{extra:?}: {report}");
        assert_eq!(report.handshakes, connected, "{extra:?}: {report}");
        assert!(report.handshake_p50_us > 0, "{report}");
        let counted = format!("{connected} handshakes");
        assert!(report.to_string().contains(&counted), "{report}");
        if chunk_connected == 0 {
            chunk_connected = connected;
        }
    }
    // The server's side of a TLS 1.3 handshake ends with the client's Finished, which the
    // client sends as its own side ends: the server counts exactly the client's handshakes,
    // each soon after the client did.
    let deadline = Instant::now() + TIMEOUT;
    while (served.load(Ordering::SeqCst) as u64) < chunk_connected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(served.load(Ordering::SeqCst) as u64, chunk_connected);
}

#[test]
fn load_tls_reconnect_makes_a_handshake_per_connection() {
    let ca = Ca::new("saythat test CA");
    let dir = pem_dir("reconnect");
    let ca_pem = write(&dir, "ca.pem", &ca.pem());
    let (addr, served) = serve(signed_server(&ca, None), http);
    let addr = addr.to_string();
    let argv = [
        "--tls-ca",
        &ca_pem,
        "--framing",
        "http",
        "--messages",
        "200",
        "--reconnect",
        "5",
    ];
    let report = load_ok(&load_args(&addr, &argv));
    assert_eq!((report.messages, report.errors), (200, 0), "{report}");
    // 200 messages, 5 per connection: 40 handshakes, and a few more for the connections
    // reopened at the end, when the budget was spent while others still waited for answers.
    let most = 4 + report.reconnects;
    assert!((40..=most).contains(&report.handshakes), "{report}");
    assert!(report.handshakes_per_s > 0.0, "{report}");
    let json = serde_json::to_value(&report).expect("the report serialises");
    assert_eq!(json["handshakes"], report.handshakes, "{json}");
    assert!(json["handshake_p99_us"].as_u64() >= json["handshake_p50_us"].as_u64());
    assert!(served.load(Ordering::SeqCst) >= 40);
}

#[test]
fn a_server_not_speaking_tls_is_told_apart_from_a_silent_one() {
    // saythat itself, plain: it echoes the ClientHello behind its prefix, which is no record.
    let plain = common::TestServer::start(&saythat::Config::loopback());
    let addr = plain.addr().to_string();
    let out = send(&["--tls-insecure", "--addr", &addr, "hi"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("is the server speaking TLS on that port?"),
        "{err}"
    );

    // A server that accepts and never answers: the handshake is bounded by --timeout.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = silent.local_addr().expect("an address").to_string();
    let held = thread::spawn(move || silent.accept().map(|(s, _)| s));
    let argv = [
        "send",
        "--timeout",
        "1",
        "--tls-insecure",
        "--addr",
        &addr,
        "hi",
    ];
    let out = run_to_end(saythat(&argv), None, TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("no TLS handshake with") && err.contains("within 1 s"),
        "{err}"
    );
    drop(held.join());
}

#[test]
fn tls_server_name_verifies_a_certificate_for_another_name() {
    let ca = Ca::new("saythat test CA");
    let dir = pem_dir("name");
    let ca_pem = write(&dir, "ca.pem", &ca.pem());
    let (cert, key) = ca.leaf(&["echo.saythat.test"]);
    let config = server_config(vec![cert], der_key(&key), None);
    let (addr, _) = serve(config, chunk);
    let addr = addr.to_string();
    let out = send(&["--tls-ca", &ca_pem, "--addr", &addr, "hi"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("give the name it carries with --tls-server-name"),
        "{err}"
    );
    let named = [
        "--tls-ca",
        &ca_pem,
        "--tls-server-name",
        "echo.saythat.test",
    ];
    let mut argv = named.to_vec();
    argv.extend(["--addr", &addr, "hi"]);
    let out = send(&argv, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You say that hi");
    let mut argv = named.to_vec();
    argv.extend(["--messages", "20"]);
    let report = load_ok(&load_args(&addr, &argv));
    assert_eq!((report.messages, report.errors), (20, 0), "{report}");
}
