//! WebSocket helpers for the black-box tests of `--framing http`'s upgrade: RFC 6455's example
//! handshake, masked client frames, and a reader of the server's (unmasked) frames.

use std::io::{Read, Write};
use std::net::TcpStream;

use saythat::framing::ws::frame::client_frame;

use super::TIMEOUT;

/// The mask every test client frame uses.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// RFC 6455 §1.3's example key and the accept value it must get.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPTED: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                            Connection: Upgrade\r\nSec-WebSocket-Accept: \
                            s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// An upgrade request with `version` and `key`.
pub fn upgrade_request(version: &str, key: &str) -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client frame whose first byte is `first` (FIN, RSV, opcode).
pub fn cf(first: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(first, payload, MASK)
}

/// Upgrades `stream`, sending `first` in the same write as the request; checks the 101.
pub fn upgrade(mut stream: TcpStream, first: &[u8]) -> TcpStream {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(&[upgrade_request("13", KEY), first.to_vec()].concat())
        .unwrap();
    let mut head = vec![0; ACCEPTED.len()];
    stream.read_exact(&mut head).expect("the 101");
    assert_eq!(String::from_utf8_lossy(&head), ACCEPTED);
    stream
}

/// Reads one server frame: (first byte, payload). Server frames are never masked.
pub fn frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0; 2];
    stream.read_exact(&mut h).expect("a frame header");
    assert_eq!(h[1] & 0x80, 0, "a server frame is not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut n = [0; 2];
            stream.read_exact(&mut n).unwrap();
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0; len as usize];
    stream.read_exact(&mut payload).expect("a frame payload");
    (h[0], payload)
}
