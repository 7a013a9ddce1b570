//! `saythat send`: the lesson's client. Connects, sends a message (or streams stdin, like `nc`),
//! half-closes, and copies every answer to stdout until the server closes. With `--ws` it speaks
//! WebSocket instead: each message (the argument, or each line of stdin) a text message, each
//! answer printed on a line of its own as it comes.
//!
//! Plain blocking `std::net`, because one connection needs no event loop. It must never wait
//! without a bound while it is the one expecting an answer.

use std::fmt;
use std::fs::{File, FileType};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::str::FromStr;
use std::thread;
use std::time::Duration;

use crate::framing::ws::frame::{unmask, Opcode};
use crate::ws_client::{
    check_upgrade, client_header, decode_server_header, escape, new_key, upgrade_request,
    ServerFrame, MAX_UPGRADE_HEAD,
};

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

    /// Speak WebSocket to this address (`HOST:PORT`) or URL (`ws://HOST[:PORT][/PATH]`) instead
    /// of --addr: the argument, or each line of stdin, is sent as a text message, and each answer
    /// printed on a line of its own. No TLS (`wss://`).
    #[arg(long, value_name = "ADDR|URL")]
    pub ws: Option<WsTarget>,

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
    let fail = |what, source| SendError {
        addr: addr.to_string(),
        what,
        source,
        timeout,
    };
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

/// The longest line of stdin `send --ws` sends as one message: saythat's default
/// `--max-message` (16 MiB). It bounds what a line costs in memory.
pub const MAX_WS_LINE: usize = 16 * 1024 * 1024;
/// Frames read, after our close, while waiting for the server's close: enough for the answers
/// still on their way, and a bound on a server that never closes.
const CLOSE_WAIT_FRAMES: usize = 64;
/// The close code `send --ws` ends with: a normal closure (RFC 6455 §7.4.1).
const NORMAL_CLOSURE: u16 = 1000;

/// Where `send --ws` speaks WebSocket: `HOST:PORT` or `ws://HOST[:PORT][/PATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsTarget {
    /// `HOST:PORT`: what is resolved and connected to, and the upgrade's `Host` field.
    pub authority: String,
    /// The upgrade request's target: the URL's path and query, `/` when it gives none.
    pub path: String,
}

impl FromStr for WsTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORMS: &str = "give HOST:PORT or ws://HOST[:PORT][/PATH]";
        if s.starts_with("wss://") {
            return Err(format!(
                "wss:// (WebSocket over TLS) is not spoken by send --ws; {FORMS}"
            ));
        }
        let (rest, url) = match s.strip_prefix("ws://") {
            Some(rest) => (rest, true),
            None if s.contains("://") => return Err(format!("{s:?} is not a ws:// URL; {FORMS}")),
            None => (s, false),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if !url && !path.is_empty() {
            return Err(format!("{s:?} has a path: write it as ws://{s}"));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if let Some(c) = path.chars().find(|&c| !c.is_ascii_graphic() || c == '#') {
            return Err(format!(
                "{c:?} cannot be sent in a request target: percent-encode it (e.g. %20 for a \
                 space)"
            ));
        }
        let authority = match authority.rsplit_once(':') {
            _ if authority.is_empty() => return Err(format!("{s:?} has no host; {FORMS}")),
            Some((host, port)) if !host.ends_with(':') && port.parse::<u16>().is_ok() => {
                authority.to_string()
            }
            // The default port of ws:// (RFC 6455 §3); a bare address must name its port.
            _ if url => format!("{authority}:80"),
            _ => return Err(format!("{s:?} has no port; {FORMS}")),
        };
        Ok(WsTarget { authority, path })
    }
}

impl fmt::Display for WsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.authority, self.path)
    }
}

/// An error of the WebSocket protocol itself (a refused upgrade, a frame the RFC forbids).
fn protocol(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Sends `input` to `target` over a WebSocket, each message (the whole of a `Message`, each
/// line of a `Stream`, without its line end) as a text message, and prints each answer's
/// payload followed by a newline, then closes the WebSocket (code 1000).
pub fn send_ws(
    target: &WsTarget,
    timeout: Duration,
    input: Input<'_>,
    out: &mut dyn Write,
) -> Result<Received, SendError> {
    let fail = |what, source| SendError {
        addr: target.to_string(),
        what,
        source,
        timeout,
    };
    let addrs = target
        .authority
        .to_socket_addrs()
        .map_err(|e| fail("resolve", e))?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| fail("connect", last))?;
    let configured = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.set_nodelay(true));
    configured.map_err(|e| fail("configure", e))?;
    let mut ws = WsConn {
        reader: BufReader::new(stream),
    };
    ws.upgrade(target)
        .map_err(|e| fail("upgrade to WebSocket at", e))?;
    let mut received = Received::default();
    match input {
        Input::Message(message) => {
            if std::str::from_utf8(message).is_err() {
                let what = "the message is not UTF-8, which a text message must be".to_string();
                return Err(fail("send to", protocol(what)));
            }
            ws.exchange(message, out, &mut received, &fail)?;
        }
        Input::Stream(reader) => {
            let mut lines = BufReader::new(reader);
            let mut line = Vec::new();
            for n in 1.. {
                line.clear();
                let limit = MAX_WS_LINE as u64 + 1;
                let got = (&mut lines)
                    .take(limit)
                    .read_until(b'\n', &mut line)
                    .map_err(|e| fail("read stdin for", e))?;
                if got == 0 {
                    break;
                }
                if line.len() > MAX_WS_LINE {
                    let what = format!("line {n} of stdin is over {MAX_WS_LINE} bytes");
                    return Err(fail("send to", protocol(what)));
                }
                let end = line.len() - usize::from(line.ends_with(b"\n"));
                let end = end - usize::from(line[..end].ends_with(b"\r"));
                if std::str::from_utf8(&line[..end]).is_err() {
                    let what =
                        format!("line {n} of stdin is not UTF-8, which a text message must be");
                    return Err(fail("send to", protocol(what)));
                }
                ws.exchange(&line[..end], out, &mut received, &fail)?;
            }
        }
    }
    ws.close();
    Ok(received)
}

/// One upgraded connection of `send --ws`.
struct WsConn {
    /// Buffered: the frames right after the `101` may come in its read.
    reader: BufReader<TcpStream>,
}

impl WsConn {
    /// Sends the upgrade request and reads the `101`, leaving what follows it buffered.
    fn upgrade(&mut self, target: &WsTarget) -> io::Result<()> {
        let key = new_key();
        let request = upgrade_request(&target.authority, &target.path, &key);
        self.reader.get_mut().write_all(&request)?;
        let mut head = Vec::new();
        loop {
            let buffered = self.reader.fill_buf()?;
            if buffered.is_empty() {
                return Err(protocol(
                    "the server closed the connection before answering the upgrade".to_string(),
                ));
            }
            let had = head.len();
            let take = buffered.len().min(MAX_UPGRADE_HEAD - had);
            head.extend_from_slice(&buffered[..take]);
            match check_upgrade(&head, &key).map_err(protocol)? {
                None => self.reader.consume(take),
                Some(len) => {
                    // The head before these bytes was incomplete, so it ends among them.
                    self.reader.consume(len.saturating_sub(had));
                    return Ok(());
                }
            }
        }
    }

    /// Sends `message` as a text message and prints its answer, answering pings meanwhile.
    fn exchange(
        &mut self,
        message: &[u8],
        out: &mut dyn Write,
        received: &mut Received,
        fail: &dyn Fn(&'static str, io::Error) -> SendError,
    ) -> Result<(), SendError> {
        self.write_frame(Opcode::Text, message)
            .map_err(|e| fail("send to", e))?;
        let mut in_message = false;
        loop {
            let frame = self.read_header().map_err(|e| fail("read", e))?;
            match frame.opcode {
                Opcode::Ping => {
                    let payload = self.read_control(frame).map_err(|e| fail("read", e))?;
                    self.write_frame(Opcode::Pong, &payload)
                        .map_err(|e| fail("send to", e))?;
                    continue;
                }
                Opcode::Pong => {
                    self.read_control(frame).map_err(|e| fail("read", e))?;
                    continue;
                }
                Opcode::Close => {
                    let payload = self.read_control(frame).map_err(|e| fail("read", e))?;
                    let what = format!(
                        "the server closed the WebSocket ({}) before answering",
                        close_reason(&payload)
                    );
                    return Err(fail("read", protocol(what)));
                }
                Opcode::Text | Opcode::Binary if !in_message => {}
                Opcode::Continuation if in_message => {}
                op => {
                    let what = format!(
                        "the server sent a {op:?} frame {} message",
                        if in_message { "inside a" } else { "with no" }
                    );
                    return Err(fail("read", protocol(what)));
                }
            }
            self.copy_payload(frame.len, out, received, fail)?;
            if frame.fin {
                break;
            }
            in_message = true;
        }
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .map_err(|e| fail("print the answer of", e))?;
        received.bytes += 1;
        received.last_byte = Some(b'\n');
        Ok(())
    }

    /// Writes one whole frame of `opcode`, masked with a fresh key.
    fn write_frame(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let mask = fastrand::u32(..).to_ne_bytes();
        let (head, n) = client_header(true, opcode, payload.len() as u64, mask);
        let mut frame = Vec::with_capacity(n + payload.len());
        frame.extend_from_slice(&head[..n]);
        frame.extend_from_slice(payload);
        unmask(&mut frame[n..], mask, 0);
        self.reader.get_mut().write_all(&frame)
    }

    /// Reads the next frame's header, checked as RFC 6455 requires of a server's.
    fn read_header(&mut self) -> io::Result<ServerFrame> {
        let mut head = [0u8; 10];
        self.read_exact(&mut head[..2])?;
        let more = match head[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        self.read_exact(&mut head[2..2 + more])?;
        match decode_server_header(&head[..2 + more]).map_err(protocol)? {
            Some((frame, _)) => Ok(frame),
            None => Err(protocol("a frame header cut short".to_string())),
        }
    }

    /// Reads a control frame's payload (at most 125 bytes, the header was checked).
    fn read_control(&mut self, frame: ServerFrame) -> io::Result<Vec<u8>> {
        let mut payload = vec![0u8; frame.len as usize];
        self.read_exact(&mut payload)?;
        Ok(payload)
    }

    /// `read_exact`, an end of stream told as the server's close.
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.reader.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                protocol("the server closed the connection before the answer was whole".to_string())
            }
            _ => e,
        })
    }

    /// Copies `len` bytes of payload to `out` as they come.
    fn copy_payload(
        &mut self,
        mut len: u64,
        out: &mut dyn Write,
        received: &mut Received,
        fail: &dyn Fn(&'static str, io::Error) -> SendError,
    ) -> Result<(), SendError> {
        let mut buf = [0u8; 8192];
        while len > 0 {
            let n = (buf.len() as u64).min(len) as usize;
            self.read_exact(&mut buf[..n])
                .map_err(|e| fail("read", e))?;
            out.write_all(&buf[..n])
                .map_err(|e| fail("print the answer of", e))?;
            received.bytes += n as u64;
            len -= n as u64;
        }
        Ok(())
    }

    /// Sends a normal close and waits, within the read timeout and `CLOSE_WAIT_FRAMES`, for the
    /// server's. Every answer is in by now, so a server that closes otherwise fails nothing.
    fn close(&mut self) {
        if self
            .write_frame(Opcode::Close, &NORMAL_CLOSURE.to_be_bytes())
            .is_err()
        {
            return;
        }
        for _ in 0..CLOSE_WAIT_FRAMES {
            let Ok(frame) = self.read_header() else {
                return;
            };
            let mut sink = io::sink();
            let skipped = io::copy(&mut (&mut self.reader).take(frame.len), &mut sink);
            if frame.opcode == Opcode::Close || skipped.is_err() {
                return;
            }
        }
    }
}

/// A close frame's payload in words: its code and reason.
fn close_reason(payload: &[u8]) -> String {
    match payload {
        [] => "no close code".to_string(),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            match reason {
                [] => format!("close code {code}"),
                r => format!("close code {code}: \"{}\"", escape(r)),
            }
        }
        [_] => "a close payload of one byte".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_targets_are_addresses_or_ws_urls() {
        let parse = |s: &str| s.parse::<WsTarget>().map(|t| t.to_string());
        assert_eq!(
            parse("127.0.0.1:8080"),
            Ok("ws://127.0.0.1:8080/".to_string())
        );
        assert_eq!(
            parse("ws://localhost"),
            Ok("ws://localhost:80/".to_string())
        );
        assert_eq!(
            parse("ws://[::1]:9/a/b?x=1"),
            Ok("ws://[::1]:9/a/b?x=1".to_string())
        );
        assert_eq!(parse("ws://h:1?x"), Ok("ws://h:1/?x".to_string()));
        for (bad, says) in [
            ("wss://h:1/", "TLS"),
            ("http://h:1/", "not a ws:// URL"),
            ("127.0.0.1", "no port"),
            ("h:1/x", "has a path"),
            ("ws://", "no host"),
            ("ws://h:1/a b", "percent-encode"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(close_reason(&[0x03, 0xE9, b'b']), "close code 1001: \"b\"");
    }
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
