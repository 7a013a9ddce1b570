//! The TLS side of a server: [`TlsServer`] holds the certificate every new connection gets,
//! swapped whole at a reload, and starts each connection's session ([`TlsStream`], in
//! tls_stream.rs). A reload that fails must never drop the certificate in use.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use log::info;
use rustls::crypto::CryptoProvider;
use rustls::server::UnbufferedServerConnection;
use rustls::ServerConfig;

use super::certs::{server_config, TlsError, TlsFiles};
use super::tls_stream::TlsStream;
use super::Transport;
use crate::config::{Config, FlagError, FramingKind};

/// The TLS servers of the echo listeners (`--tls-cert`) and of the metrics endpoint
/// (`--metrics-tls`), shared by every loop and reloaded together at SIGHUP.
#[derive(Debug, Default, Clone)]
pub struct Tls {
    pub echo: Option<Arc<TlsServer>>,
    pub metrics: Option<Arc<TlsServer>>,
}

impl Tls {
    /// What the flags ask for; a usage error names the flag and the file.
    pub fn from_config(config: &Config) -> Result<Tls, FlagError> {
        let http = config.framing == FramingKind::Http;
        let echo = TlsServer::from_config(config, http, true)?.map(Arc::new);
        // The metrics endpoint asks no client certificate: a scrape is read-only.
        let metrics = match config.metrics_tls {
            true => TlsServer::from_config(config, true, false)?.map(Arc::new),
            false => None,
        };
        if let Some(tls) = &echo {
            let mutual = match tls.mutual() {
                true => "; client certificates required",
                false => "",
            };
            info!(
                "TLS on the echo listeners with {} (reloaded at SIGHUP){mutual}",
                tls.files.cert.display()
            );
        }
        Ok(Tls { echo, metrics })
    }
}

/// The TLS side of a server: what every new connection's handshake uses, reloadable.
#[derive(Debug)]
pub struct TlsServer {
    files: TlsFiles,
    /// HTTP mode: ALPN `http/1.1`, and a plain HTTP request is answered 400.
    http: bool,
    /// What TLS holds per connection at most (plaintext per record and per write): `--max-pending`.
    max_pending: usize,
    /// `--handshake-timeout`.
    handshake_timeout: Duration,
    provider: Arc<CryptoProvider>,
    /// Read at each accept, replaced whole by a reload: a connection keeps the config it
    /// started with.
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsServer {
    /// The TLS server the flags ask for, if any: `--tls-cert` and `--tls-key` (with
    /// `--tls-client-ca` when `mutual`) read and checked, for HTTP mode when `http`. A flag
    /// without its pair, or a file that cannot serve, is a usage error naming the flag and file.
    fn from_config(
        config: &Config,
        http: bool,
        mutual: bool,
    ) -> Result<Option<TlsServer>, FlagError> {
        let (cert, key) = match (&config.tls_cert, &config.tls_key) {
            (None, None) => {
                let needs = if config.tls_client_ca.is_some() {
                    Some("--tls-client-ca")
                } else if config.metrics_tls {
                    Some("--metrics-tls")
                } else {
                    None
                };
                return match needs {
                    None => Ok(None),
                    Some(flag) => Err(FlagError {
                        flag,
                        message: "needs --tls-cert and --tls-key".to_string(),
                    }),
                };
            }
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (Some(_), None) => return Err(missing("--tls-key", "--tls-cert")),
            (None, Some(_)) => return Err(missing("--tls-cert", "--tls-key")),
        };
        let files = TlsFiles {
            cert,
            key,
            client_ca: config.tls_client_ca.clone().filter(|_| mutual),
        };
        let timeout = Duration::from_secs(config.handshake_timeout);
        let tls = TlsServer::new(files, http, config.max_pending as usize, timeout);
        tls.map(Some).map_err(|e| FlagError {
            flag: e.flag,
            message: e.message,
        })
    }

    /// Reads and checks the files; a usage error names the flag, the file and what is wrong.
    pub fn new(
        files: TlsFiles,
        http: bool,
        max_pending: usize,
        handshake_timeout: Duration,
    ) -> Result<TlsServer, TlsError> {
        let provider = super::certs::provider();
        let config = server_config(&files, http, &provider, SystemTime::now())?;
        Ok(TlsServer {
            files,
            http,
            max_pending,
            handshake_timeout,
            provider,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the same files again; new handshakes use them from now. On failure the old ones
    /// stay, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files, self.http, &self.provider, SystemTime::now())?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// Whether client certificates are required.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The transport of a connection accepted at `now`: a new server-side TLS session.
    pub fn accept(&self, now: Instant) -> Result<Transport, rustls::Error> {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let conn = UnbufferedServerConnection::new(config)?;
        let until = now + self.handshake_timeout;
        let stream = TlsStream::new(conn, self.max_pending, until, self.http);
        Ok(Transport::Tls(Box::new(stream)))
    }
}

fn missing(flag: &'static str, given: &str) -> FlagError {
    FlagError {
        flag,
        message: format!("is needed with {given} (give both, or neither)"),
    }
}
