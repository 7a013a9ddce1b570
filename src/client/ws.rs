//! `saythat send --ws`: the argument, or each line of stdin, sent as a text message over a
//! WebSocket, each answer printed on a line of its own as it comes, then a normal close.
//!
//! Blocking like the rest of `send`, every read bounded by `--timeout`; the protocol's pure
//! pieces are `ws_client`'s. It must never hold more than one line of stdin (`MAX_WS_LINE`) nor
//! buffer an answer: payloads go to stdout as they are read.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::{Input, Received, SendError};
use crate::framing::ws::frame::{unmask, Opcode};
use crate::tls_client::TlsClient;
use crate::ws_client::{
    check_upgrade, client_header, decode_server_header, escape, new_key, upgrade_request,
    ServerFrame, MAX_UPGRADE_HEAD,
};

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
    /// `wss://` (`Some(true)`), `ws://` (`Some(false)`), or a bare `HOST:PORT` (`None`), which
    /// `--tls` makes wss.
    pub tls: Option<bool>,
}

impl FromStr for WsTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORMS: &str = "give HOST:PORT, ws://HOST[:PORT][/PATH] or wss://HOST[:PORT][/PATH]";
        let (rest, tls) = match (s.strip_prefix("ws://"), s.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, Some(false)),
            (_, Some(rest)) => (rest, Some(true)),
            _ if s.contains("://") => return Err(format!("{s:?} is not a ws:// URL; {FORMS}")),
            _ => (s, None),
        };
        let url = tls.is_some();
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
            // The default ports of ws:// and wss:// (RFC 6455 §3); a bare address must name its
            // port.
            _ if tls == Some(true) => format!("{authority}:443"),
            _ if url => format!("{authority}:80"),
            _ => return Err(format!("{s:?} has no port; {FORMS}")),
        };
        Ok(WsTarget {
            authority,
            path,
            tls,
        })
    }
}

impl WsTarget {
    /// The host of `authority`, IPv6 without its brackets: the name TLS verifies by default.
    pub fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(host, _)| host);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl fmt::Display for WsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.tls {
            Some(true) => "wss",
            _ => "ws",
        };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

/// An error of the WebSocket protocol itself (a refused upgrade, a frame the RFC forbids).
fn protocol(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Sends `input` to `target` over a WebSocket (over TLS with `tls`: the client and the name to
/// verify), each message (the whole of a `Message`, each
/// line of a `Stream`, without its line end) as a text message, and prints each answer's
/// payload followed by a newline, then closes the WebSocket (code 1000).
pub fn send_ws(
    target: &WsTarget,
    tls: Option<(&TlsClient, ServerName<'static>)>,
    timeout: Duration,
    input: Input<'_>,
    out: &mut dyn Write,
) -> Result<Received, SendError> {
    let fail = SendError::at(&target, timeout);
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
    let mut stream = stream.ok_or_else(|| fail("connect", last))?;
    let configured = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.set_nodelay(true));
    configured.map_err(|e| fail("configure", e))?;
    let stream = match tls {
        None => Stream::Plain(stream),
        Some((client, name)) => {
            let conn = super::tls::handshake(&mut stream, client, name)
                .map_err(|e| fail("complete the TLS handshake with", e))?;
            Stream::Tls(Box::new(StreamOwned::new(conn, stream)))
        }
    };
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

/// The socket of `send --ws`, or with wss its TLS stream (boxed: rustls's state is large).
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One upgraded connection of `send --ws`.
struct WsConn {
    /// Buffered: the frames right after the `101` may come in its read.
    reader: BufReader<Stream>,
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
        assert_eq!(
            parse("wss://localhost/p"),
            Ok("wss://localhost:443/p".to_string())
        );
        let v6: WsTarget = "wss://[::1]:9/".parse().expect("a wss URL");
        assert_eq!((v6.host(), v6.tls), ("::1", Some(true)));
        for (bad, says) in [
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
}
