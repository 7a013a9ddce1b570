//! TLS over a connection's socket with rustls, fed by the loop's readiness like the plain
//! socket: ciphertext is read until the socket would block or plaintext is ready, decrypted, and
//! handed out; plaintext written is encrypted into rustls's buffer (bounded by `--max-pending`)
//! and written until the socket is full. [`TlsServer`] holds the certificate every new
//! connection gets, swapped whole at a reload. A full rustls buffer is backpressure, never an
//! error or a panic; a peer's bad bytes end its connection with an alert, never the loop.

use std::io::{self, Read, Write};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use log::info;
use mio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::{ServerConfig, ServerConnection};

use super::certs::{server_config, TlsError, TlsFiles};
use super::Transport;
use crate::config::{Config, FlagError, FramingKind};

/// The answer to a plain HTTP request on a TLS port in HTTP mode, as nginx gives it: a TLS
/// alert would read as garbage to the client that sent it.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 51\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use https:// to reach it.\n";

/// Socket reads one read of plaintext may make without any plaintext coming out (about 8 records'
/// worth, a read budget's), so a peer sending records that carry none cannot hold the loop.
const MAX_READS_WITHOUT_PLAINTEXT: usize = 8;

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
    /// rustls's buffer limit per connection: `--max-pending`.
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
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(self.max_pending.max(1)));
        Ok(Transport::Tls(Box::new(TlsStream {
            conn,
            handshake_until: Some(now + self.handshake_timeout),
            socket_drained: false,
            buffered: 0,
            closed: false,
            more: false,
            subject: None,
            http: self.http,
            head: Head::default(),
        })))
    }
}

fn missing(flag: &'static str, given: &str) -> FlagError {
    FlagError {
        flag,
        message: format!("is needed with {given} (give both, or neither)"),
    }
}

/// The first bytes a connection sent, kept while the handshake has not begun, to tell a plain
/// HTTP request from garbage.
#[derive(Debug, Default)]
struct Head {
    bytes: [u8; 8],
    len: usize,
}

impl Head {
    fn looks_like_http(&self) -> bool {
        let head = &self.bytes[..self.len];
        let method = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
        method >= 3 && head.get(method) == Some(&b' ')
    }
}

/// One connection's TLS session.
#[derive(Debug)]
pub struct TlsStream {
    conn: ServerConnection,
    /// When the handshake must be done (`--handshake-timeout` from accept); `None` once done.
    handshake_until: Option<Instant>,
    /// The last read found the socket empty (it would block, or read short when that proves
    /// it drained).
    socket_drained: bool,
    /// Plaintext decrypted and not yet handed out.
    buffered: usize,
    /// The peer's `close_notify` arrived and its end of stream is not yet handed out.
    closed: bool,
    /// The last read stopped before the socket's end after `MAX_READS_WITHOUT_PLAINTEXT`.
    more: bool,
    /// The subject of the client's certificate, read once the handshake is done (mutual TLS
    /// only: no certificate, no string).
    subject: Option<Box<str>>,
    http: bool,
    head: Head,
}

/// The socket as rustls reads it, noting a short read and the first bytes.
struct Counted<'a> {
    socket: &'a mut TcpStream,
    short: bool,
    head: &'a mut Head,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.socket.read(buf)?;
        self.short = n < buf.len();
        if self.head.len < self.head.bytes.len() {
            let take = n.min(self.head.bytes.len() - self.head.len);
            self.head.bytes[self.head.len..self.head.len + take].copy_from_slice(&buf[..take]);
            self.head.len += take;
        }
        Ok(n)
    }
}

impl TlsStream {
    /// Plaintext into `buf`: what rustls holds first, else ciphertext read and decrypted until
    /// plaintext comes out or the socket is empty (WouldBlock).
    #[inline(never)]
    pub(super) fn read(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut [u8],
        trust_short: bool,
    ) -> io::Result<usize> {
        self.socket_drained = false;
        self.more = false;
        let mut reads = 0;
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => {
                    self.buffered = self.buffered.saturating_sub(n);
                    if n == 0 {
                        self.closed = false;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.unclean_end(),
                Err(e) => return Err(e),
            }
            if self.socket_drained {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if reads == MAX_READS_WITHOUT_PLAINTEXT {
                // Records with nothing to hand out (handshake, alerts, empty ones) must not hold
                // the loop: the rest is read next turn.
                self.more = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            reads += 1;
            let mut counted = Counted {
                socket,
                short: false,
                head: &mut self.head,
            };
            match self.conn.read_tls(&mut counted) {
                // The end of the stream: the reader says whether it was announced.
                Ok(0) => {}
                Ok(_) => self.socket_drained = trust_short && counted.short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.socket_drained = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.process(socket)?;
        }
    }

    /// Decrypts what was read, and writes what the handshake answers.
    fn process(&mut self, socket: &mut TcpStream) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.buffered = state.plaintext_bytes_to_read();
                self.closed |= state.peer_has_closed();
                if self.handshake_until.is_some() && !self.conn.is_handshaking() {
                    self.handshake_done();
                }
            }
            Err(e) => return Err(self.fail(socket, e)),
        }
        self.flush(socket).map(|_| ())
    }

    /// The peer broke the protocol: it hears why (an alert, or a 400 if it spoke plain HTTP),
    /// and the error ends the connection as `tls_error`.
    #[cold]
    fn fail(&mut self, socket: &mut TcpStream, e: rustls::Error) -> io::Error {
        if self.http && self.conn.is_handshaking() && self.head.looks_like_http() {
            // Best effort: the connection ends here either way.
            let _ = socket.write(PLAIN_HTTP_ANSWER);
            return io::Error::new(
                io::ErrorKind::InvalidData,
                "a plain HTTP request on the TLS port (answered 400)",
            );
        }
        let _ = self.flush(socket);
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// The peer closed without `close_notify`: an error while the handshake is unfinished, else
    /// the end of the stream (an echo has no length a truncation could cut short unseen).
    fn unclean_end(&mut self) -> io::Result<usize> {
        if self.conn.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer closed during the TLS handshake",
            ));
        }
        Ok(0)
    }

    /// The handshake just completed: no deadline any more, and the client's certificate, if
    /// any, is read for its subject.
    #[cold]
    fn handshake_done(&mut self) {
        self.handshake_until = None;
        let first = self
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first());
        if let Some(Ok((_, cert))) = first.map(|der| x509_parser::parse_x509_certificate(der)) {
            self.subject = Some(cert.subject().to_string().into());
        }
    }

    pub(super) fn peer_identity(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Whether the last read left the socket empty.
    pub(super) fn socket_drained(&self) -> bool {
        self.socket_drained
    }

    /// Takes as much of `data` as rustls's buffer holds, and writes records until the socket
    /// is full; `Ok(0)` when the buffer is full: backpressure, the rest waits in our output.
    #[inline(never)]
    pub(super) fn write(&mut self, socket: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        let mut refused = false;
        loop {
            let n = self.conn.writer().write(&data[taken..])?;
            taken += n;
            let full = self.flush(socket)?;
            if taken == data.len() || full {
                return Ok(taken);
            }
            // Nothing taken, and the socket took every record: the buffer has room now, so try
            // again, or no WRITABLE edge would ever come for the rest. Refused twice, the
            // handshake holds the plaintext back until it completes.
            if n == 0 {
                if refused {
                    return Ok(taken);
                }
                refused = true;
            }
        }
    }

    /// Writes the records rustls holds until the socket would block; true if it did.
    #[inline(never)]
    pub(super) fn flush(&mut self, socket: &mut TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    pub(super) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    pub(super) fn holds_input(&self) -> bool {
        self.buffered > 0 || self.closed || self.more
    }

    /// Queues `close_notify` and writes it if the socket takes it now.
    pub(super) fn close_notify(&mut self, socket: &mut TcpStream) {
        self.conn.send_close_notify();
        // Best effort: the FIN follows either way.
        let _ = self.flush(socket);
    }

    pub(super) fn handshake_deadline(&self) -> Option<Instant> {
        self.handshake_until
    }
}

#[cfg(test)]
mod tests {
    use super::Head;

    fn head(bytes: &[u8]) -> Head {
        let mut head = Head::default();
        let len = bytes.len().min(head.bytes.len());
        head.bytes[..len].copy_from_slice(&bytes[..len]);
        head.len = len;
        head
    }

    /// A plain HTTP request is told from a ClientHello and from garbage by its first bytes.
    #[test]
    fn a_plain_http_request_is_told_by_its_method() {
        for request in [
            &b"GET / HTTP/1.1"[..],
            b"POST /x",
            b"OPTIONS * HTTP/1.1",
            b"PUT ",
        ] {
            assert!(head(request).looks_like_http(), "{request:?}");
        }
        for other in [
            &[0x16, 0x03, 0x01, 0x02, 0x00][..],
            b"get / x",
            b"GE",
            b"AB /",
            b"\0\0\0",
        ] {
            assert!(!head(other).looks_like_http(), "{other:?}");
        }
    }
}
