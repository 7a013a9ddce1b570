//! The TLS files (`--tls-cert`, `--tls-key`, `--tls-client-ca`) read and checked into a rustls
//! `ServerConfig`, at start and at each SIGHUP. Every failure names the flag, the file and what
//! is wrong with it, so a usage error at start (exit 2) or a failed reload says what to fix.
//! It must never accept a key that does not match its certificate, nor an expired certificate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// The ALPN protocol HTTP mode offers: saythat speaks HTTP/1.1 only.
pub const ALPN_HTTP: &[u8] = b"http/1.1";

/// Where the certificate, its key and the client CAs are read from, each time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    pub key: PathBuf,
    /// PEM: the CAs a client certificate must chain to (mutual TLS), if any.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS files cannot be used: which flag, which file, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub flag: &'static str,
    pub message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.message)
    }
}

impl std::error::Error for TlsError {}

fn error(flag: &'static str, message: String) -> TlsError {
    TlsError { flag, message }
}

/// The crypto provider every config is built with: rustls's default (aws-lc-rs), named
/// rather than looked up, so another crate enabling a second provider cannot make it ambiguous.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks `files` into a server config: TLS 1.2 and 1.3 only, the provider's default
/// suites, client certificates required when `client_ca` is set, ALPN `http/1.1` when `http`.
/// Certificates are checked against `now` for expiry.
pub fn server_config(
    files: &TlsFiles,
    http: bool,
    provider: &Arc<CryptoProvider>,
    now: SystemTime,
) -> Result<ServerConfig, TlsError> {
    let chain = read_certs("--tls-cert", &files.cert)?;
    check_dates("--tls-cert", &files.cert, &chain, now)?;
    let key = read_key(&files.key)?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => error(
            "--tls-key",
            format!(
                "the key in {} does not match the certificate in {} (give the key the \
                 certificate was issued for)",
                files.key.display(),
                files.cert.display()
            ),
        ),
        e => error(
            "--tls-key",
            format!("cannot use the key in {}: {e}", files.key.display()),
        ),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| error("--tls-cert", format!("the TLS provider refuses: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider, now)?),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    if http {
        config.alpn_protocols = vec![ALPN_HTTP.to_vec()];
    }
    Ok(config)
}

/// The verifier of client certificates: they must chain to a CA in `path`.
fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
    now: SystemTime,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    const FLAG: &str = "--tls-client-ca";
    let cas = read_certs(FLAG, path)?;
    check_dates(FLAG, path, &cas, now)?;
    let mut roots = RootCertStore::empty();
    for (index, ca) in cas.into_iter().enumerate() {
        roots.add(ca).map_err(|e| {
            let which = index + 1;
            error(
                FLAG,
                format!(
                    "certificate {which} in {} is not a usable CA: {e}",
                    path.display()
                ),
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| {
            error(
                FLAG,
                format!("cannot verify clients with {}: {e}", path.display()),
            )
        })
}

fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| error(flag, format!("cannot read {}: {e}", path.display())))
}

/// Every CERTIFICATE block of the PEM file at `path`, in order; at least one.
fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(flag, format!("{} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            flag,
            format!(
                "{} holds no certificate (a PEM `BEGIN CERTIFICATE` block)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const FLAG: &str = "--tls-key";
    let pem = read_file(FLAG, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => error(
            FLAG,
            format!(
                "{} holds no private key (a PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or \
                 `BEGIN EC PRIVATE KEY` block)",
                path.display()
            ),
        ),
        e => error(FLAG, format!("{} is not valid PEM: {e}", path.display())),
    })
}

/// Refuses a certificate that has expired or is not valid yet at `now`.
fn check_dates(
    flag: &'static str,
    path: &Path,
    certs: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<(), TlsError> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    for (index, der) in certs.iter().enumerate() {
        let which = index + 1;
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            error(
                flag,
                format!(
                    "certificate {which} in {} cannot be parsed: {e}",
                    path.display()
                ),
            )
        })?;
        let validity = cert.validity();
        if validity.not_after.timestamp() < now {
            return Err(error(
                flag,
                format!(
                    "certificate {which} in {} ({}) expired on {} (renew it)",
                    path.display(),
                    cert.subject(),
                    validity.not_after
                ),
            ));
        }
        if validity.not_before.timestamp() > now {
            return Err(error(
                flag,
                format!(
                    "certificate {which} in {} ({}) is not valid before {} (check the clock)",
                    path.display(),
                    cert.subject(),
                    validity.not_before
                ),
            ));
        }
    }
    Ok(())
}
