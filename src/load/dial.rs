//! Dialing: which of a thread's connections to open next, how many connects are in progress, the
//! back-off before opening one again, and mio's recipe for telling how a connect ended.
//!
//! It exists so the loop only asks "which connection now?" and "did it connect?". It knows
//! connections by their index only, counts no figure for the report (the loop's `Record` does),
//! and must never block nor keep more than its share of `MAX_CONNECTS_IN_FLIGHT` connects going.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// Non-blocking connects in progress at once over all threads, with `--tls` until their TLS
/// handshake is done. It keeps the handshakes under way below a server's accept backlog
/// (saythat's is 4096): SYNs beyond it are dropped, and the kernel retries each only a second
/// later; and a TLS server answers handshakes one at a time, so more at once only waits longer.
pub const MAX_CONNECTS_IN_FLIGHT: usize = 512;
/// Wait before a connection is opened again after its connect failed or the server closed it.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// How a connect in progress stands when its socket reports readiness.
pub(crate) enum Dialed {
    /// Not finished yet: the event was spurious.
    Pending,
    /// Connected.
    Connected,
    /// Connected, and the server closed or reset it at once (it accepted, then dropped it): its
    /// close, not a connect failure.
    ClosedAtOnce(io::Error),
    /// The connect failed.
    Failed(io::Error),
}

/// One thread's connections as far as opening them goes, by index.
pub(crate) struct Dialer {
    /// Connections to open as soon as fewer than `limit` connects are in progress.
    ready: VecDeque<usize>,
    /// Connections to open again once their time comes; the times only grow along the queue,
    /// since each is "now" plus the same back-off.
    backoff: VecDeque<(usize, Instant)>,
    /// Connects in progress.
    connecting: usize,
    /// This thread's part of `MAX_CONNECTS_IN_FLIGHT`.
    limit: usize,
    /// Connections whose connect failed at least once, of `conns`: with none ever connected, all
    /// of them failing ends the thread early rather than retrying a dead address for the run.
    failed: usize,
    conns: usize,
    /// The first connect failure, in words, for the error when none ever succeeded.
    first_error: Option<String>,
}

impl Dialer {
    /// `conns` connections, all to be opened, at most `limit` connects at once.
    pub(crate) fn new(conns: usize, limit: usize) -> Self {
        Dialer {
            ready: (0..conns).collect(),
            backoff: VecDeque::new(),
            connecting: 0,
            limit,
            failed: 0,
            conns,
            first_error: None,
        }
    }

    /// The next connection to open now, if a connect may start: its back-off ended or it never
    /// waited, and fewer than the limit are in progress.
    pub(crate) fn next(&mut self, now: Instant) -> Option<usize> {
        while let Some(&(idx, at)) = self.backoff.front() {
            if at > now {
                break;
            }
            self.backoff.pop_front();
            self.ready.push_back(idx);
        }
        if self.connecting < self.limit {
            self.ready.pop_front()
        } else {
            None
        }
    }

    /// Starts a non-blocking connect for connection `idx`, registered under its index.
    pub(crate) fn open(
        &mut self,
        addr: SocketAddr,
        reg: &Registry,
        idx: usize,
    ) -> io::Result<TcpStream> {
        let mut sock = TcpStream::connect(addr)?;
        // WRITABLE reports the connect's outcome; it stays registered until output is drained.
        reg.register(
            &mut sock,
            Token(idx),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.connecting += 1;
        Ok(sock)
    }

    /// How the connect on `sock` stands, by mio's recipe: `take_error` first, then `peer_addr`
    /// says whether it completed. A connect that ended counts out of those in progress, unless
    /// a TLS handshake follows it (`handshake`): then `handshaken` or `failed` does.
    pub(crate) fn outcome(&mut self, sock: &TcpStream, handshake: bool) -> Dialed {
        let outcome = match sock.take_error() {
            Ok(None) => sock.peer_addr().map(|_| ()),
            Ok(Some(e)) | Err(e) => Err(e),
        };
        let dialed = match outcome {
            Ok(()) => Dialed::Connected,
            Err(e) if e.kind() == ErrorKind::NotConnected => return Dialed::Pending,
            // A reset (a broken pipe once a FIN came first) is only reported once the connect has
            // succeeded, a refusal being `ConnectionRefused`: the server accepted the connection
            // and dropped it at once, which is its close, not a connect failure.
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                Dialed::ClosedAtOnce(e)
            }
            Err(e) => Dialed::Failed(e),
        };
        let handshake_follows = handshake && matches!(dialed, Dialed::Connected);
        if !matches!(dialed, Dialed::Failed(_)) && !handshake_follows {
            self.connecting -= 1;
        }
        dialed
    }

    /// A TLS handshake that followed a connect is done: the connect no longer counts as in
    /// progress.
    pub(crate) fn handshaken(&mut self) {
        self.connecting -= 1;
    }

    /// Connection `idx` could not connect (`connecting`: its connect, or the TLS handshake after
    /// it, was in progress; `first`: its first failure ever): it is opened again after the
    /// back-off.
    pub(crate) fn failed(
        &mut self,
        idx: usize,
        connecting: bool,
        first: bool,
        why: impl FnOnce() -> String,
        now: Instant,
    ) {
        if connecting {
            self.connecting -= 1;
        }
        if first {
            self.failed += 1;
        }
        self.first_error.get_or_insert_with(why);
        self.backoff.push_back((idx, now + RECONNECT_BACKOFF));
    }

    /// Connection `idx` was closed: it is opened again after the back-off, or at once.
    pub(crate) fn again(&mut self, idx: usize, back_off: bool, now: Instant) {
        if back_off {
            self.backoff.push_back((idx, now + RECONNECT_BACKOFF));
        } else {
            self.ready.push_back(idx);
        }
    }

    /// Every connection failed to connect at least once: with none ever connected, the address
    /// is dead.
    pub(crate) fn all_failed(&self) -> bool {
        self.failed == self.conns
    }

    /// When the first back-off ends.
    pub(crate) fn wakeup(&self) -> Option<Instant> {
        self.backoff.front().map(|&(_, at)| at)
    }

    /// The first connect failure, in words.
    pub(crate) fn into_first_error(self) -> Option<String> {
        self.first_error
    }
}

/// A failed connect in words, with what to check, for the error of a run in which none ever
/// succeeded (`handshake`: the TCP connect went through and the TLS handshake after it failed).
/// A refused or unreachable address asks whether the server runs there; a handshake that
/// timed out or was cut, whether it speaks TLS; a TLS error (`InvalidData`) carries its own hint
/// (`tls_client::describe_handshake_error`), which the server being down would only contradict.
pub(crate) fn connect_failure(e: &io::Error, handshake: bool) -> String {
    let hint = match (handshake, e.kind()) {
        (false, _) => "is saythat serve running on that address?",
        (true, ErrorKind::InvalidData) => return crate::describe(e),
        (true, _) => "is the server speaking TLS on that port?",
    };
    format!("{}; {hint}", crate::describe(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_connect_says_what_to_check_and_a_tls_error_keeps_its_own_hint() {
        let refused = io::Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(
            connect_failure(&refused, false),
            "connection refused; is saythat serve running on that address?"
        );
        let cut = io::Error::from(ErrorKind::ConnectionReset);
        assert_eq!(
            connect_failure(&cut, true),
            "connection reset; is the server speaking TLS on that port?"
        );
        let tls = io::Error::new(ErrorKind::InvalidData, "bad certificate (give --tls-ca)");
        assert_eq!(
            connect_failure(&tls, true),
            "bad certificate (give --tls-ca)"
        );
    }
}
