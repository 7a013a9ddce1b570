//! TLS for the tests: a CA made on the spot (rcgen), the server's certificate and key written to
//! files for `--tls-cert` / `--tls-key`, client certificates signed by the same CA, and a rustls
//! client that trusts it. Included with `#[path]` by the TLS tests only, so the other test
//! binaries do not build it.

#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How long a TLS test waits for any read.
pub const TLS_TIMEOUT: Duration = Duration::from_secs(10);

pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// A test's CA and the files the server reads, in a directory of its own, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: CertifiedIssuer<'static, KeyPair>,
    /// The server's certificate (PEM, leaf then CA) and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's certificate, for `--tls-client-ca`.
    pub ca_file: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Pki {
    /// A new CA, and a server certificate for 127.0.0.1 and localhost named `server-1`.
    pub fn new() -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "saythat-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "saythat test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            ca_file: dir.join("ca.pem"),
            dir,
            ca,
        };
        fs::write(&pki.ca_file, pki.ca.pem()).unwrap();
        pki.write_server("server-1");
        pki
    }

    /// A certificate for 127.0.0.1 and localhost named `name`, signed by the CA, with its key.
    pub fn leaf(&self, name: &str) -> (rcgen::Certificate, KeyPair) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert, key)
    }

    /// (Re)writes the server's files with a new certificate named `name`; returns its DER.
    pub fn write_server(&self, name: &str) -> Vec<u8> {
        let (cert, key) = self.leaf(name);
        fs::write(&self.cert, cert.pem() + &self.ca.pem()).unwrap();
        fs::write(&self.key, key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    /// A file in the test's directory holding `text`.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// A client certificate chain and key signed by the CA, for mutual TLS.
    pub fn client_identity(
        &self,
        name: &str,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (cert, key) = self.leaf(name);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }

    /// A client config trusting the CA, offering `alpn`, presenting `identity` if given.
    pub fn client(
        &self,
        alpn: &[&[u8]],
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A TLS client connected to `addr` for 127.0.0.1; the handshake completes or fails here.
pub fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(TLS_TIMEOUT))?;
    socket.set_write_timeout(Some(TLS_TIMEOUT))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, socket);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Reads exactly `n` bytes of plaintext.
#[track_caller]
pub fn tls_read_exact(stream: &mut TlsClient, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    if let Err(e) = stream.read_exact(&mut got) {
        panic!("reading {n} bytes over TLS: {e}");
    }
    got
}

/// Sends `message` and expects `expected` back, byte for byte.
#[track_caller]
pub fn tls_send_expect(stream: &mut TlsClient, message: &[u8], expected: &[u8]) {
    stream.write_all(message).unwrap();
    stream.flush().unwrap();
    let got = tls_read_exact(stream, expected.len());
    assert_eq!(
        got.escape_ascii().to_string(),
        expected.escape_ascii().to_string()
    );
}

/// Reads plaintext until the stream ends; the error if it did not end cleanly (`close_notify`).
pub fn tls_read_to_end(stream: &mut TlsClient) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// `GET /metrics` on `addr` (plain): the value of `saythat_connections_closed_total{reason}`.
pub fn closed_total(addr: SocketAddr, reason: &str) -> u64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TLS_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let needle = format!("saythat_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&needle))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in the scrape:\n{text}"))
}

/// A loopback config serving TLS with `pki`'s files, and metrics to count the closes.
pub fn server_config(pki: &Pki, framing: saythat::FramingKind) -> saythat::Config {
    saythat::Config {
        framing,
        tls_cert: Some(pki.cert.clone()),
        tls_key: Some(pki.key.clone()),
        metrics_listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..saythat::Config::loopback()
    }
}

/// Waits until the scrape counts `n` closes for `reason`.
#[track_caller]
pub fn expect_closed(server: &crate::common::TestServer, reason: &str, n: u64) {
    let metrics = server.metrics[0];
    crate::common::wait_for(
        crate::common::TIMEOUT,
        &format!("{n} close(s) as {reason}"),
        || (closed_total(metrics, reason) == n).then_some(()),
    );
}

/// `e` ended a read with the connection's end (an alert, a reset, the FIN), not a timeout: a
/// server that hung would have given WouldBlock or TimedOut after `TLS_TIMEOUT`.
#[track_caller]
pub fn assert_ended(e: &io::Error) {
    assert!(
        !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "no end within {TLS_TIMEOUT:?}: {e}"
    );
}
