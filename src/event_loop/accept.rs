//! Taking new connections: the listeners, one accept budget per listener per turn, the pause when
//! out of file descriptors, the refusal past `--max-conns`. The [`Acceptor`] hands each accepted
//! socket (or failure) to its caller and never admits a connection itself; it must never spin
//! on a backlog it cannot take (EMFILE), nor give a listener two budgets in one turn.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::config::{ACCEPT_BUDGET, FD_EXHAUSTED_BACKOFF, MAX_LISTENERS};
use crate::metrics::AcceptError;

/// Listener `i` has token `LISTENER_BASE - i`, just below the loop's other special tokens at
/// the top of `usize`, far above any slab key.
pub(super) const LISTENER_BASE: usize = usize::MAX - 4;

// The queued listeners are the bits of a u64.
const _: () = assert!(MAX_LISTENERS <= u64::BITS as usize);

/// Which listener a token names, if any.
pub(super) fn listener_index(token: Token) -> Option<usize> {
    let index = LISTENER_BASE.checked_sub(token.0)?;
    (index < MAX_LISTENERS).then_some(index)
}

/// A bound listening socket and the address it serves, for the messages.
pub(crate) struct Listener {
    pub socket: TcpListener,
    pub addr: SocketAddr,
}

impl Listener {
    pub(crate) fn new(socket: TcpListener, addr: SocketAddr) -> Listener {
        Listener { socket, addr }
    }
}

/// What one `accept` gave: a connection to admit, or a failure to count.
pub(super) type Accepted = Result<(TcpStream, SocketAddr), AcceptError>;

/// One loop's listeners and the state of accepting on them.
pub(super) struct Acceptor {
    /// Closed (emptied) when the drain begins.
    listeners: Vec<Listener>,
    /// Bit `i`: listener `i` spent its accept budget with connections still waiting, and is
    /// served next turn without an event, because edge-triggered epoll will not report it again.
    /// A listener is served from here or from its event, never both in one turn.
    queued: u64,
    /// Accepting is paused until then: the process ran out of file descriptors.
    paused_until: Option<Instant>,
    /// Accept failed for want of descriptors; warned once, cleared once the backlog is empty.
    out_of_fds: bool,
    /// Connections accepted from one listener per turn: `ACCEPT_BUDGET`, a side loop's fewer.
    budget: usize,
}

impl Acceptor {
    /// Accepts on `listeners`, registered in `registry` under their tokens.
    pub fn new(registry: &Registry, mut listeners: Vec<Listener>) -> io::Result<Acceptor> {
        for (i, listener) in listeners.iter_mut().enumerate() {
            registry.register(
                &mut listener.socket,
                Token(LISTENER_BASE - i),
                Interest::READABLE,
            )?;
        }
        Ok(Acceptor {
            listeners,
            queued: 0,
            paused_until: None,
            out_of_fds: false,
            budget: ACCEPT_BUDGET,
        })
    }

    /// Accepts at most `budget` connections from one listener per turn, at least one.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget.max(1);
    }

    /// A listener has an event: accepts up to the budget, unless it is queued (it gets its
    /// budget from [`Acceptor::serve_queued`] this turn, and only there).
    pub fn on_event(&mut self, index: usize, now: Instant, admit: impl FnMut(Accepted)) {
        if self.queued & (1 << index) == 0 {
            self.accept(index, now, admit);
        }
    }

    /// Gives the listeners queued last turn their budget.
    pub fn serve_queued(&mut self, now: Instant, mut admit: impl FnMut(Accepted)) {
        // Taken first: a listener that spends this budget too is queued again, for next turn.
        let mut queued = std::mem::take(&mut self.queued);
        while queued != 0 {
            let index = queued.trailing_zeros() as usize;
            queued &= queued - 1;
            self.accept(index, now, &mut admit);
        }
    }

    /// A listener is waiting for next turn.
    pub fn has_queued(&self) -> bool {
        self.queued != 0
    }

    /// When accepting resumes by itself, if it is paused.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// A connection closed, freeing a descriptor: that ends an out-of-descriptors pause.
    pub fn descriptor_freed(&mut self, now: Instant) {
        if self.paused_until.is_some() {
            self.paused_until = Some(now);
        }
    }

    /// Retries accepting once the back-off has passed or a descriptor was freed.
    pub fn resume(&mut self, now: Instant, mut admit: impl FnMut(Accepted)) {
        match self.paused_until {
            Some(until) if now >= until => {
                self.paused_until = None;
                (0..self.listeners.len()).for_each(|i| self.accept(i, now, &mut admit));
            }
            _ => {}
        }
    }

    /// Closes the listeners, so new connections fail at once instead of waiting: the drain.
    pub fn close(&mut self, registry: &Registry) {
        for mut listener in self.listeners.drain(..) {
            let _ = registry.deregister(&mut listener.socket);
        }
        self.queued = 0;
        self.paused_until = None;
    }

    /// Accepts up to the budget; a listener with connections left waiting is queued, once.
    fn accept(&mut self, index: usize, now: Instant, mut admit: impl FnMut(Accepted)) {
        if self.paused_until.is_some() {
            return;
        }
        for _ in 0..self.budget {
            // None once closed for the drain.
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok(accepted) => admit(Ok(accepted)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The backlog is empty: an out-of-descriptors episode is over only now, not
                    // at the first accept after a close, or churn at the limit would warn per close.
                    if self.out_of_fds {
                        self.out_of_fds = false;
                        info!("accepting connections again");
                    }
                    return;
                }
                Err(e) if is_transient_accept_error(&e) => {
                    admit(Err(AcceptError::Other));
                    debug!("accept: {e}");
                }
                Err(e) => {
                    let kind = match e.raw_os_error() {
                        Some(24 /* EMFILE */) | Some(23 /* ENFILE */) => AcceptError::Emfile,
                        _ => AcceptError::Other,
                    };
                    admit(Err(kind));
                    // Out of file descriptors (EMFILE/ENFILE) or memory: the pending connection
                    // stays in the backlog and epoll would report it again at once, so stop
                    // accepting for a moment instead of spinning.
                    if !self.out_of_fds {
                        self.out_of_fds = true;
                        warn!(
                            "cannot accept on {}: {e}; pausing accepts until a connection closes \
                             (raise `ulimit -n` or lower --max-conns)",
                            listener.addr
                        );
                    }
                    self.paused_until = Some(now + FD_EXHAUSTED_BACKOFF);
                    return;
                }
            }
        }
        if index < self.listeners.len() {
            self.queued |= 1 << index;
        }
    }
}

/// Tells a connection past `--max-conns` why, in the protocol's words (`refusal`, written by
/// [`crate::framing::Protocol::refusal`]), and closes it; `scratch` takes whatever the client
/// already sent.
pub(super) fn refuse_full(mut socket: TcpStream, refusal: &[u8], scratch: &mut [u8]) {
    let _ = socket.write(refusal);
    let _ = socket.shutdown(std::net::Shutdown::Write);
    // Whatever the client already sent is read away, so closing sends a FIN rather than a
    // reset that could destroy the line above before the client reads it.
    let mut budget = 16;
    while budget > 0 && matches!(socket.read(scratch), Ok(n) if n > 0) {
        budget -= 1;
    }
}

/// Errors from `accept` that concern only the one connection being accepted.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
    ) || matches!(
        e.raw_os_error(),
        Some(71 /* EPROTO */) | Some(110 /* ETIMEDOUT */)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SIDE_ACCEPT_BUDGET;
    use mio::Poll;

    /// A listener is served once per turn, from its event or from the queue, and is queued at
    /// most once: a connection storm gets one accept budget per turn, not one more per edge.
    #[test]
    fn a_listener_gets_one_accept_budget_per_turn() {
        storm_takes_three_turns(ACCEPT_BUDGET);
    }

    /// A side loop's listener takes its few a turn, and the rest of a storm waits in the
    /// backlog for the next turns.
    #[test]
    fn a_side_loops_listener_gets_its_small_budget_per_turn() {
        storm_takes_three_turns(SIDE_ACCEPT_BUDGET);
    }

    /// Three budgets' worth of clients connect at once to an acceptor of `budget`: each turn
    /// accepts exactly `budget` of them.
    fn storm_takes_three_turns(budget: usize) {
        // A backlog that holds the whole storm (std's bind gives 128): bound here rather than
        // with the server's `listen`, so the loop does not import the server, even in tests.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        socket.listen(4 * budget as i32).expect("listen");
        socket.set_nonblocking(true).unwrap();
        let socket = TcpListener::from_std(socket.into());
        let addr = socket.local_addr().unwrap();
        let poll = Poll::new().unwrap();
        let mut acceptor =
            Acceptor::new(poll.registry(), vec![Listener::new(socket, addr)]).unwrap();
        acceptor.set_budget(budget);
        let _clients: Vec<_> = (0..3 * budget)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let mut open = Vec::new();
        let now = Instant::now();

        // Turn 1: the listener's event.
        acceptor.on_event(0, now, |accepted| open.push(accepted.expect("accept")));
        assert_eq!(open.len(), budget);
        assert_eq!(acceptor.queued, 1, "the listener is queued");
        // Turn 2: a new edge from the storm, and the listener queued from turn 1.
        acceptor.on_event(0, now, |accepted| open.push(accepted.expect("accept")));
        acceptor.serve_queued(now, |accepted| open.push(accepted.expect("accept")));
        assert_eq!(open.len(), 2 * budget, "one budget in turn 2");
        assert_eq!(acceptor.queued, 1, "the listener is queued once");
        // Turn 3 takes the rest.
        acceptor.serve_queued(now, |accepted| open.push(accepted.expect("accept")));
        assert_eq!(open.len(), 3 * budget);
    }
}
