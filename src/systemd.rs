//! Running under systemd without linking libsystemd: socket activation (serve on the listening
//! sockets the service manager passes, instead of binding) and readiness notification
//! (`sd_notify`'s datagrams: `READY=1`, `STOPPING=1`, `EXTEND_TIMEOUT_USEC`, `STATUS`).
//!
//! It runs once at start, and once a second on the first loop while a drain goes on; it must
//! never sit on the message path, and a notification must never block a loop.
//!
//! **Taking the inherited sockets.** Turning descriptor 3 into an owned socket needs
//! `OwnedFd::from_raw_fd`, which is `unsafe`, and saythat has no `unsafe`. The [`listenfd`] crate
//! (1.x; small, libc only, used by actix and the systemfd tool) does that step: it checks that
//! the descriptor is a TCP socket (`SO_TYPE` is `SOCK_STREAM`, the family `AF_INET` or
//! `AF_INET6`), marks it close-on-exec and hands back a `std::net::TcpListener`. saythat
//! checks the rest itself: `LISTEN_PID` must be its own pid (listenfd alone would also take
//! descriptors when `LISTEN_PID` is missing, which systemd never does), `listen(2)` must have
//! been called (`SO_ACCEPTCONN`), and the socket is made non-blocking. The three variables
//! are then unset, as `sd_listen_fds(1)` does, so no child inherits them.
//!
//! **With `--listen`.** Inherited sockets replace the addresses: the `.socket` unit says where
//! saythat listens. An explicit `--listen` (flag or `SAYTHAT_LISTEN`) beside them is refused
//! as a usage error, because saythat would bind that address itself, which is the very
//! "address already in use" at each restart that activation exists to avoid, or a second
//! address that systemd does not hold across restarts; which one was meant cannot be guessed.
//!
//! **With `--workers N`.** An inherited socket is one socket, and systemd cannot make N of them
//! with `SO_REUSEPORT` for one `ListenStream=`. Every loop serves its own duplicate (`dup(2)`)
//! of every inherited socket. A new connection then wakes every loop and one `accept` wins (the
//! others get `EAGAIN`): a wasted wake-up per loop per burst of connections, nothing per
//! message, and the spread among loops is less even than `SO_REUSEPORT`'s hash.
//!
//! **At SIGTERM** each loop closes its own copy, as without activation; systemd keeps its own,
//! so a client that connects after that waits in the socket's backlog for the next process
//! instead of being refused.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{self, UnixDatagram};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::config::MAX_LISTENERS;

/// The first inherited descriptor: systemd passes `LISTEN_FDS` of them from here on.
pub const LISTEN_FDS_START: i32 = 3;
/// The variables of the socket-activation protocol, unset once read.
const LISTEN_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];
/// listenfd's own extension (a first descriptor other than 3); systemd never sets it, and a
/// stray one would make listenfd take the wrong descriptors.
const LISTENFD_FIRST_FD: &str = "LISTEN_FDS_FIRST_FD";
/// The name of a socket whose `LISTEN_FDNAMES` entry is missing, as libsystemd says.
const UNKNOWN_NAME: &str = "unknown";

/// How often the first loop extends systemd's stop timeout while a drain goes on.
pub const EXTEND_EVERY: Duration = Duration::from_secs(1);
/// How far each extension reaches: five periods, so a loop late by a few turns on a busy
/// machine is not killed, while a hung one is within seconds (the drain itself is bounded by
/// `--shutdown-timeout`, and `TimeoutStopSec=` still applies as a floor).
pub const EXTEND_BY: Duration = Duration::from_secs(5);

/// One listening socket passed by the service manager.
#[derive(Debug)]
pub struct Inherited {
    /// Its descriptor number (3 onwards).
    pub fd: i32,
    /// Its `LISTEN_FDNAMES` entry (`FileDescriptorName=`, by default the `.socket` unit's name),
    /// or `unknown`.
    pub name: String,
    /// The address it is bound to.
    pub addr: SocketAddr,
    /// The socket: listening, non-blocking, close-on-exec.
    pub listener: TcpListener,
}

/// Sockets passed to saythat that it cannot serve, or a flag that contradicts them.
#[derive(Debug)]
pub struct ActivationError {
    message: String,
    usage: bool,
}

impl ActivationError {
    fn new(message: String) -> ActivationError {
        ActivationError {
            message,
            usage: false,
        }
    }

    /// A flag combination that cannot work (exit 2), rather than a socket that is wrong (exit 1).
    pub fn is_usage(&self) -> bool {
        self.usage
    }
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ActivationError {}

/// Takes the listening sockets of systemd's socket activation, if `LISTEN_PID` is this process:
/// none (an empty list) when saythat was not socket-activated. `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` are unset whatever they held.
///
/// It changes the environment, so it must be called before any thread is started.
pub fn take_listeners() -> Result<Vec<Inherited>, ActivationError> {
    let [pid, fds, names] = LISTEN_VARS.map(std::env::var_os);
    let result = match passed_names(pid.as_deref(), fds.as_deref(), names, std::process::id()) {
        Ok(names) if names.is_empty() => Ok(Vec::new()),
        Ok(names) => take(names),
        Err(e) => Err(e),
    };
    for var in LISTEN_VARS {
        std::env::remove_var(var);
    }
    result
}

/// The names of the sockets passed to the process `our_pid`, one per descriptor from 3 on, read
/// from the values of `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`; empty when none are
/// passed to it.
fn passed_names(
    pid: Option<&OsStr>,
    fds: Option<&OsStr>,
    names: Option<OsString>,
    our_pid: u32,
) -> Result<Vec<String>, ActivationError> {
    // Variables meant for another process (a parent that did not unset them) are not ours.
    if pid.and_then(|pid| pid.to_str()?.parse::<u32>().ok()) != Some(our_pid) {
        return Ok(Vec::new());
    }
    let Some(fds) = fds else {
        return Ok(Vec::new());
    };
    let count = fds
        .to_str()
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            ActivationError::new(format!(
                "LISTEN_FDS={} is not a number of descriptors (check the service manager that \
                 started saythat)",
                fds.to_string_lossy()
            ))
        })?;
    if count > MAX_LISTENERS {
        return Err(ActivationError::new(format!(
            "{count} sockets were passed (LISTEN_FDS); saythat serves at most {MAX_LISTENERS} \
             (give the .socket unit fewer ListenStream= lines)"
        )));
    }
    let names = names.map(|names| names.to_string_lossy().into_owned());
    let mut names: Vec<String> = match names.as_deref().map(|n| n.split(':')) {
        // A list of another length is the service manager's mistake: the names only label logs.
        Some(list) if list.clone().count() == count => list.map(str::to_string).collect(),
        _ => Vec::new(),
    };
    names.resize(count, UNKNOWN_NAME.to_string());
    Ok(names)
}

/// Takes the passed descriptors, in order, and checks each is a listening TCP socket.
fn take(names: Vec<String>) -> Result<Vec<Inherited>, ActivationError> {
    std::env::remove_var(LISTENFD_FIRST_FD);
    let mut passed = listenfd::ListenFd::from_env();
    let mut taken = Vec::with_capacity(names.len());
    for (index, name) in names.into_iter().enumerate() {
        let fd = LISTEN_FDS_START + index as i32;
        let refuse = |why: String| {
            ActivationError::new(format!(
                "cannot serve on the socket passed as fd {fd} ({name}): {why} (saythat serves \
                 TCP: the .socket unit takes ListenStream= addresses only, and Accept=no)"
            ))
        };
        let listener = match passed.take_tcp_listener(index) {
            Ok(Some(listener)) => listener,
            Ok(None) => return Err(refuse("it was not passed".into())),
            Err(e) => return Err(refuse(crate::describe(&e))),
        };
        let socket = socket2::Socket::from(listener);
        let addr = check_listening(&socket).map_err(refuse)?;
        taken.push(Inherited {
            fd,
            name,
            addr,
            listener: socket.into(),
        });
    }
    Ok(taken)
}

/// Checks an inherited TCP socket listens and readies it as saythat's own listeners are; gives
/// the address it is bound to.
fn check_listening(socket: &socket2::Socket) -> Result<SocketAddr, String> {
    let failed = |what: &str, e: io::Error| format!("cannot {what}: {}", crate::describe(&e));
    #[cfg(target_os = "linux")]
    if !socket
        .is_listener()
        .map_err(|e| failed("read SO_ACCEPTCONN", e))?
    {
        return Err("it is not listening (listen() was not called on it)".into());
    }
    let addr = socket
        .local_addr()
        .map_err(|e| failed("read its address", e))?
        .as_socket()
        .ok_or("it is not an IPv4 or IPv6 socket")?;
    socket
        .set_nonblocking(true)
        .map_err(|e| failed("make it non-blocking", e))?;
    socket
        .set_cloexec(true)
        .map_err(|e| failed("make it close-on-exec", e))?;
    // As on the sockets saythat binds: urgent bytes stay in the stream (accepted sockets
    // inherit it).
    socket
        .set_out_of_band_inline(true)
        .map_err(|e| failed("set SO_OOBINLINE", e))?;
    Ok(addr)
}

/// Refuses an explicit `--listen` beside inherited sockets (see the module doc for why).
pub fn check_listen_flag(
    inherited: &[Inherited],
    listen_given: bool,
) -> Result<(), ActivationError> {
    if inherited.is_empty() || !listen_given {
        return Ok(());
    }
    let passed: Vec<String> = inherited.iter().map(|s| s.addr.to_string()).collect();
    Err(ActivationError {
        message: format!(
            "--listen (or SAYTHAT_LISTEN) cannot be given with sockets passed by the service \
             manager ({}): the .socket unit says where saythat listens; remove one of the two",
            passed.join(", ")
        ),
        usage: true,
    })
}

// ---------------------------------------------------------------------------------------------
// Readiness notification

/// Sends `sd_notify` datagrams to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
/// namespace). Non-blocking: systemd reads its socket at once, and a datagram it has no room
/// for is dropped with a warning rather than stalling a loop.
#[derive(Clone, Debug)]
pub struct Notifier {
    socket: Arc<UnixDatagram>,
    addr: net::SocketAddr,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`, or `None` when it is unset or empty. An address saythat
    /// cannot use (a relative path, `vsock:`) is warned about and ignored: serving matters more
    /// than telling systemd so, which will then say the start timed out.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty())?;
        match Notifier::to(&value) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                warn!(
                    "NOTIFY_SOCKET={}: {e}; systemd will not hear that saythat is ready",
                    value.to_string_lossy()
                );
                None
            }
        }
    }

    /// A notifier for a `NOTIFY_SOCKET` value.
    pub fn to(value: &OsStr) -> io::Result<Notifier> {
        let addr = notify_address(value)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket: Arc::new(socket),
            addr,
        })
    }

    /// Sends one notification (newline-separated `KEY=VALUE` lines).
    pub fn notify(&self, message: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
    }

    /// `READY=1` with `MAINPID` and a `STATUS` naming the addresses served.
    pub fn ready(&self, addrs: &[SocketAddr]) {
        self.send(&ready_message(std::process::id(), addrs), "READY=1");
    }

    fn send(&self, message: &str, what: &str) {
        if let Err(e) = self.notify(message) {
            warn!(
                "cannot tell systemd {what} through NOTIFY_SOCKET: {}",
                crate::describe(&e)
            );
        }
    }
}

/// What a `NOTIFY_SOCKET` value names: an absolute path, or `@name` in the abstract namespace.
fn notify_address(value: &OsStr) -> io::Result<net::SocketAddr> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => net::SocketAddr::from_pathname(value),
        #[cfg(target_os = "linux")]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            net::SocketAddr::from_abstract_name(&bytes[1..])
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path or an @abstract socket name (other kinds, e.g. vsock:, are \
             not supported)",
        )),
    }
}

fn ready_message(pid: u32, addrs: &[SocketAddr]) -> String {
    let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    format!(
        "READY=1\nMAINPID={pid}\nSTATUS=serving on {}",
        addrs.join(", ")
    )
}

fn draining_status(open: usize) -> String {
    let s = if open == 1 { "" } else { "s" };
    format!("STATUS=draining {open} connection{s}")
}

fn stopping_message(open: usize) -> String {
    format!("STOPPING=1\n{}", draining_status(open))
}

fn extend_message(by: Duration, open: usize) -> String {
    format!(
        "EXTEND_TIMEOUT_USEC={}\n{}",
        by.as_micros(),
        draining_status(open)
    )
}

/// What the signal-watching loop tells systemd while it stops: `STOPPING=1` once, then
/// `EXTEND_TIMEOUT_USEC` every [`EXTEND_EVERY`] for as long as the drain goes on. It costs
/// nothing before the drain: the loop asks it only once stopping, and it has no timer until then.
#[derive(Debug)]
pub(crate) struct DrainNotices {
    notifier: Notifier,
    /// When the next extension is due; `None` until `STOPPING=1` is sent.
    next_extend: Option<Instant>,
}

impl DrainNotices {
    pub(crate) fn new(notifier: Notifier) -> DrainNotices {
        DrainNotices {
            notifier,
            next_extend: None,
        }
    }

    /// When the loop must wake for the next notice, if it must.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next_extend
    }

    /// Called at each turn of a drain with the connections still open over all loops.
    pub(crate) fn draining(&mut self, now: Instant, open: usize) {
        match self.next_extend {
            None => self.notifier.send(&stopping_message(open), "STOPPING=1"),
            Some(at) if now >= at => {
                // Repeated a second later if it is lost, so a failure is only worth a debug line.
                if let Err(e) = self.notifier.notify(&extend_message(EXTEND_BY, open)) {
                    debug!("cannot extend systemd's stop timeout: {e}");
                }
            }
            Some(_) => return,
        }
        self.next_extend = Some(now + EXTEND_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pid: &str, fds: Option<&str>, names: Option<&str>) -> Vec<String> {
        passed_names(
            Some(OsStr::new(pid)),
            fds.map(OsStr::new),
            names.map(OsString::from),
            42,
        )
        .expect("valid variables")
    }

    #[test]
    fn sockets_are_taken_only_when_listen_pid_is_ours() {
        assert_eq!(names("42", Some("2"), Some("a:b")), ["a", "b"]);
        assert!(names("41", Some("2"), Some("a:b")).is_empty());
        assert!(names("", Some("2"), None).is_empty());
        assert!(names("42x", Some("2"), None).is_empty());
        assert!(passed_names(None, Some(OsStr::new("2")), None, 42)
            .unwrap()
            .is_empty());
        assert!(names("42", None, None).is_empty());
        assert!(names("42", Some("0"), None).is_empty());
    }

    #[test]
    fn missing_or_miscounted_names_are_unknown() {
        assert_eq!(names("42", Some("2"), None), ["unknown", "unknown"]);
        assert_eq!(names("42", Some("2"), Some("a")), ["unknown", "unknown"]);
        assert_eq!(names("42", Some("1"), Some("")), [""]);
    }

    #[test]
    fn a_bad_count_is_an_error_naming_the_variable() {
        for fds in ["x", "-1", "65"] {
            let e = passed_names(Some(OsStr::new("7")), Some(OsStr::new(fds)), None, 7)
                .expect_err(fds)
                .to_string();
            assert!(e.contains("LISTEN_FDS"), "{fds}: {e}");
        }
    }

    #[test]
    fn messages_carry_the_fields_systemd_reads() {
        let addrs = [
            "127.0.0.1:8080".parse().unwrap(),
            "[::1]:8080".parse().unwrap(),
        ];
        assert_eq!(
            ready_message(7, &addrs),
            "READY=1\nMAINPID=7\nSTATUS=serving on 127.0.0.1:8080, [::1]:8080"
        );
        assert_eq!(
            stopping_message(1),
            "STOPPING=1\nSTATUS=draining 1 connection"
        );
        assert_eq!(
            extend_message(Duration::from_secs(5), 0),
            "EXTEND_TIMEOUT_USEC=5000000\nSTATUS=draining 0 connections"
        );
    }

    #[test]
    fn notify_socket_values_are_paths_or_abstract_names() {
        let path = notify_address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let abstract_ = notify_address(OsStr::new("@saythat/notify")).unwrap();
            assert_eq!(abstract_.as_abstract_name(), Some(&b"saythat/notify"[..]));
        }
        for bad in ["run/notify", "vsock:2:1234", ""] {
            assert!(notify_address(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    /// STOPPING once at the first turn of the drain, then one extension per period, however
    /// often the loop turns in between.
    #[test]
    fn drain_notices_stop_once_then_extend_every_period() {
        let dir = std::env::temp_dir().join(format!("saythat-notices-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        receiver.set_nonblocking(true).unwrap();
        let mut notices = DrainNotices::new(Notifier::to(path.as_os_str()).unwrap());
        let received = || {
            let mut buf = [0u8; 256];
            let mut all = Vec::new();
            while let Ok(n) = receiver.recv(&mut buf) {
                all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            all
        };

        let start = Instant::now();
        assert_eq!(notices.due(), None, "no timer before the drain");
        notices.draining(start, 3);
        notices.draining(start + Duration::from_millis(500), 2);
        assert_eq!(received(), [stopping_message(3)]);
        assert_eq!(notices.due(), Some(start + EXTEND_EVERY));
        notices.draining(start + EXTEND_EVERY, 2);
        notices.draining(start + EXTEND_EVERY + Duration::from_millis(1), 2);
        assert_eq!(received(), [extend_message(EXTEND_BY, 2)]);
        assert_eq!(notices.due(), Some(start + 2 * EXTEND_EVERY));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
