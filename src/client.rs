//! `saythat send`: the lesson's client. Connects, sends a message (or streams stdin, like `nc`),
//! half-closes, and copies every answer to stdout until the server closes. With `--ws` it speaks
//! WebSocket instead (`ws.rs`).
//!
//! Plain blocking `std::net`, because one connection needs no event loop. It must never wait
//! without a bound while it is the one expecting an answer.

use std::fmt;
use std::fs::{File, FileType};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::thread;
use std::time::Duration;

mod tls;
mod ws;

pub use tls::send_tls;
pub use ws::{send_ws, WsTarget, MAX_WS_LINE};

/// The lesson's message.
pub const DEFAULT_MESSAGE: &str = "Hello? anyone is there? I am client";

/// The longest `--timeout`: an hour. A connect or an answer that takes longer is a hang, not a
/// slow network, and the bound keeps every deadline computed from it far from overflow.
pub const MAX_TIMEOUT_SECS: u64 = 60 * 60;

/// The MESSAGE that streams stdin whatever it is (a terminal included), as `cat -` reads it.
pub const STDIN_ARG: &str = "-";

#[derive(clap::Args, Clone, Debug)]
pub struct SendArgs {
    /// Address of the saythat server.
    #[arg(long, value_name = "ADDR", env = "SAYTHAT_ADDR", default_value = crate::config::DEFAULT_LISTEN)]
    pub addr: SocketAddr,

    /// Seconds to wait for the connection, and for each answer once everything is sent (1 to
    /// 3600).
    #[arg(long, value_name = "SECS", env = "SAYTHAT_TIMEOUT", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub timeout: u64,

    /// Speak WebSocket to this address (`HOST:PORT`) or URL (`ws://HOST[:PORT][/PATH]`, or
    /// `wss://` over TLS) instead of --addr: the argument, or each line of stdin, is sent as a
    /// text message, and each answer printed on a line of its own. `HOST:PORT` with --tls is
    /// wss.
    #[arg(long, value_name = "ADDR|URL")]
    pub ws: Option<WsTarget>,

    #[command(flatten)]
    pub tls: crate::tls_client::TlsArgs,

    /// What to send; `-` streams stdin. Without it, stdin is streamed when it is a pipe, a socket
    /// or a file (an empty one is an empty message: nothing is sent and nothing comes back), and
    /// the lesson's message is sent when stdin is a terminal, /dev/null or closed.
    pub message: Option<String>,
}

/// Whether stdin carries a message that ends: a pipe, a socket (as `socat EXEC:` gives) or a
/// regular file. A terminal, /dev/null or another device, a directory, or a closed stdin carries
/// none, so `send` without MESSAGE under systemd (stdin is /dev/null) or with stdin closed sends
/// the lesson's message instead of an empty one.
pub fn stdin_carries_data() -> bool {
    // fstat(2) of fd 0 through a duplicate: std gives metadata only through an owned `File`, and
    // the duplicate keeps this free of `unsafe`. A closed fd 0 fails the dup (std reopens a
    // closed fd 0 on /dev/null at start anyway, which gives the same answer).
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| File::from(fd).metadata())
        .is_ok_and(|meta| carries_data(meta.file_type()))
}

fn carries_data(kind: FileType) -> bool {
    kind.is_fifo() || kind.is_socket() || kind.is_file()
}

/// Where the bytes to send come from.
pub enum Input<'a> {
    Message(&'a [u8]),
    /// Streamed as it arrives; the connection is half-closed at its end. If the server closes
    /// first, the rest is not waited for.
    Stream(Box<dyn Read + Send>),
}

/// What went wrong talking to the server, with the address and a hint.
#[derive(Debug)]
pub struct SendError {
    /// The address, or with `--ws` the URL, talked to.
    addr: String,
    what: &'static str,
    source: io::Error,
    timeout: Duration,
}

impl SendError {
    /// What makes the errors of one exchange with `addr`: each names the step that failed.
    fn at(
        addr: impl fmt::Display,
        timeout: Duration,
    ) -> impl Fn(&'static str, io::Error) -> SendError {
        let addr = addr.to_string();
        move |what, source| SendError {
            addr: addr.clone(),
            what,
            source,
            timeout,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (addr, secs) = (&self.addr, self.timeout.as_secs());
        match (self.what, self.source.kind()) {
            ("connect", io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => write!(
                f,
                "cannot connect to {addr}: no answer within {secs} s (is saythat serve running on \
                 that address? raise --timeout for a slow network)"
            ),
            ("connect", _) => write!(
                f,
                "cannot connect to {addr}: {} (is saythat serve running on that address?)",
                crate::describe(&self.source)
            ),
            (
                "complete the TLS handshake with",
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock,
            ) => write!(
                f,
                "no TLS handshake with {addr} within {secs} s (is the server speaking TLS on \
                 that port? raise --timeout for a slow network)"
            ),
            ("read", io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => write!(
                f,
                "no answer from {addr} within {secs} s (is the server overloaded? raise --timeout)"
            ),
            (what, _) => write!(f, "cannot {what} {addr}: {}", crate::describe(&self.source)),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// What the server answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub last_byte: Option<u8>,
}

/// Sends `input` to `addr` and copies the answers to `out` until the server closes, then returns
/// at once: a stream's thread still waiting for input is detached, not joined.
pub fn send(
    addr: SocketAddr,
    timeout: Duration,
    input: Input<'_>,
    out: &mut dyn Write,
) -> Result<Received, SendError> {
    let fail = SendError::at(addr, timeout);
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("connect", e))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| fail("configure", e))?;
    let writer = match input {
        Input::Message(bytes) => {
            (&stream).write_all(bytes).map_err(|e| fail("send to", e))?;
            finish_sending(&stream, timeout).map_err(|e| fail("send to", e))?;
            None
        }
        Input::Stream(mut reader) => {
            let stream = stream.try_clone().map_err(|e| fail("configure", e))?;
            Some(thread::spawn(move || -> io::Result<()> {
                io::copy(&mut reader, &mut &stream)?;
                finish_sending(&stream, timeout)
            }))
        }
    };
    let mut buf = [0u8; 8192];
    let mut received = Received::default();
    loop {
        match (&stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received.bytes += n as u64;
                received.last_byte = Some(buf[n - 1]);
                out.write_all(&buf[..n])
                    .and_then(|()| out.flush())
                    .map_err(|e| fail("print the answer of", e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail("read", e)),
        }
    }
    // The server has closed, so nothing more can reach it: a stream that has not ended (e.g.
    // `(sleep 8) | saythat send`) must not keep us waiting. Its thread, blocked reading stdin, is
    // left behind and ends with the process. One that has finished reports how sending went.
    match writer {
        Some(writer) if writer.is_finished() => match writer.join() {
            Ok(result) => result.map_err(|e| fail("send to", e))?,
            Err(_) => {
                return Err(fail(
                    "send to",
                    io::Error::other("the stdin thread panicked"),
                ))
            }
        },
        _ => {}
    }
    Ok(received)
}

/// Half-closes, so the server knows the message is complete, and from then on bounds the wait
/// for answers (before that, a slow stdin may legitimately keep the connection quiet).
fn finish_sending(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(timeout))?;
    match stream.shutdown(Shutdown::Write) {
        // The server may have closed first (e.g. after an error line); its answers still count.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn carries(file: &File) -> bool {
        carries_data(file.metadata().expect("fstat").file_type())
    }

    #[test]
    fn pipes_and_files_carry_data_and_devices_do_not() {
        assert!(!carries(&File::open("/dev/null").expect("open /dev/null")));
        let exe = std::env::current_exe().expect("the test binary's path");
        assert!(carries(&File::open(exe).expect("open a regular file")));
        let mut child = Command::new("true")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn true");
        let pipe = child.stdout.take().expect("stdout is piped");
        let pipe = File::from(std::os::fd::OwnedFd::from(pipe));
        assert!(carries(&pipe));
        let _ = child.wait();
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let socket = File::from(std::os::fd::OwnedFd::from(socket));
        assert!(carries(&socket));
    }
}
