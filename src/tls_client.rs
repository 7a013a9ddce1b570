//! The client side of TLS for `send` and `load`: the `--tls*` flags, and the rustls
//! `ClientConfig` they make (rustls's default crypto provider, aws-lc-rs; nothing links OpenSSL).
//!
//! It exists so both tools trust, present and name certificates the same way, and so every
//! mistake in a flag or a file is a usage error at start naming the file and what to do. It
//! never does I/O on a connection, and never turns verification off unless `--tls-insecure`
//! says so, which still checks the handshake's signatures.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The ALPN protocol HTTP and WebSocket offer, as saythat's server does in HTTP mode.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The TLS flags of `saythat send` and `saythat load`. None reads the environment: the server's
/// `SAYTHAT_TLS_CERT`/`SAYTHAT_TLS_KEY`, set for `serve`, must never make a client present the
/// server's own certificate.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Speak TLS 1.2 or 1.3 (rustls) to the server. Without --tls-ca or --tls-insecure the
    /// server's certificate must chain to the Mozilla root CAs built in (webpki-roots), as a
    /// public certificate does. Any other --tls-* flag implies it.
    #[arg(long)]
    pub tls: bool,

    /// Trust the CA certificates in this PEM file (and only them) for the server's certificate,
    /// e.g. the ca.pem of scripts/tls-cert.sh.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Accept any server certificate, for self-signed test certificates only: the connection is
    /// encrypted but the server is not authenticated (anyone in the path can pose as it). The
    /// handshake's signatures are still checked.
    #[arg(long, conflicts_with = "tls_ca")]
    pub tls_insecure: bool,

    /// Present this client certificate (a PEM chain, the leaf first) for mutual TLS; with
    /// --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// The name the server's certificate must carry, also sent as SNI (a DNS name or an IP
    /// address). Defaults to the host given (with --addr, its IP address).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl TlsArgs {
    /// Whether TLS was asked for, by --tls or by any other --tls-* flag.
    pub fn enabled(&self) -> bool {
        self.tls
            || self.tls_ca.is_some()
            || self.tls_insecure
            || self.tls_cert.is_some()
            || self.tls_server_name.is_some()
    }
}

/// A `--tls*` flag or file that cannot be used: a usage error (exit 2), naming the flag, the
/// file, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError(pub String);

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsConfigError {}

/// What a client needs to open TLS connections: the config, shared by every connection, and the
/// name to verify.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    name: Option<ServerName<'static>>,
}

impl TlsClient {
    /// The client `args` ask for, offering `alpn` (empty: no ALPN), or `None` without TLS.
    pub fn from_args(args: &TlsArgs, alpn: &[&[u8]]) -> Result<Option<TlsClient>, TlsConfigError> {
        if !args.enabled() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError(format!("cannot set up TLS: {e}")))?;
        let builder = match (&args.tls_ca, args.tls_insecure) {
            (_, true) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
            (Some(path), false) => builder.with_root_certificates(ca_roots(path)?),
            (None, false) => {
                let roots = webpki_roots::TLS_SERVER_ROOTS.iter().cloned();
                builder.with_root_certificates(RootCertStore::from_iter(roots))
            }
        };
        let mut config = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "--tls-cert", "the client certificate")?;
                let key_der = private_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    TlsConfigError(format!(
                        "cannot use the client certificate {} with the key {}: {e} (give the key \
                         that belongs to --tls-cert's first certificate)",
                        cert.display(),
                        key.display()
                    ))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = match &args.tls_server_name {
            Some(name) => Some(parse_name(name, "--tls-server-name")?),
            None => None,
        };
        Ok(Some(TlsClient {
            config: Arc::new(config),
            name,
        }))
    }

    /// The name to verify and send as SNI: `--tls-server-name`, else `host` (a DNS name or an IP
    /// address, IPv6 with or without brackets).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsConfigError> {
        match &self.name {
            Some(name) => Ok(name.clone()),
            None => parse_name(
                host.trim_start_matches('[').trim_end_matches(']'),
                "the host",
            ),
        }
    }
}

fn parse_name(name: &str, what: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_string()).map_err(|e| {
        TlsConfigError(format!(
            "{what} {name:?} is not a DNS name nor an IP address ({e}); give the name the \
             server's certificate carries with --tls-server-name"
        ))
    })
}

/// The certificates of the PEM file `path` (`flag`'s, holding `what`): at least one.
fn certificates(
    path: &Path,
    flag: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bad = |why: String| {
        TlsConfigError(format!(
            "cannot use {} ({flag}): {why}; give a PEM file of {what}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(pem_error(&e, "CERTIFICATE")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_error(&e, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(bad("it holds no CERTIFICATE block".to_string()));
    }
    Ok(certs)
}

fn ca_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "--tls-ca", "CA certificates")? {
        roots.add(cert).map_err(|e| {
            TlsConfigError(format!(
                "cannot trust a certificate of {} (--tls-ca): {e}; give the PEM of the CA that \
                 signed the server's certificate",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsConfigError(format!(
            "cannot use {} (--tls-key): {}; give the client certificate's private key in PEM \
             (PKCS#8, PKCS#1 or SEC1)",
            path.display(),
            pem_error(&e, "PRIVATE KEY")
        ))
    })
}

/// Why a PEM file expected to hold a `label` block could not be used.
fn pem_error(e: &rustls::pki_types::pem::Error, label: &str) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => crate::describe(io),
        Error::NoItemsFound => format!("it holds no {label} block"),
        other => format!("it is not valid PEM ({other:?})"),
    }
}

/// `--tls-insecure`: any certificate is taken, but the handshake must still be signed by the key
/// of the certificate the server sent, so the connection is encrypted to whoever holds it.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A failed handshake in words, with what to do: most often the certificate is not trusted.
pub fn describe_handshake_error(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    let hint = match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a CA trusted here: give its CA with \
             --tls-ca FILE, or --tls-insecure for a self-signed test certificate"
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server's certificate does not carry the name asked for: give the name it \
             carries with --tls-server-name"
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the server's certificate has expired: renew it"
        }
        Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
        | Error::AlertReceived(rustls::AlertDescription::BadCertificate)
        | Error::AlertReceived(rustls::AlertDescription::UnknownCA) => {
            "the server refused the client certificate: it asks for mutual TLS, give one its \
             CAs trust with --tls-cert and --tls-key"
        }
        Error::InvalidMessage(_) => "is the server speaking TLS on that port?",
        _ => "is the server speaking TLS on that port, with a certificate trusted here?",
    };
    format!("{e} ({hint})")
}
