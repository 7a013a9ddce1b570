//! The client side of RFC 6455 that saythat's own clients speak (`send --ws` and `load --framing
//! ws`): the upgrade request and the check of the `101` that answers it, masked client frame
//! headers, and the server's frame headers decoded across reads.
//!
//! Pure and bounded: no I/O, a partial frame header kept inline, an upgrade answer's head at most
//! [`MAX_UPGRADE_HEAD`] bytes. It must never accept what RFC 6455 forbids a server to send (a
//! masked frame, reserved bits, unknown opcodes, long or fragmented control frames): a client
//! that checks a server must be no more lenient than the server is with its clients.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::framing::ws::frame::{encode_header, Opcode, MAX_CONTROL, MAX_SERVER_HEADER};
use crate::framing::ws::handshake::accept_key;

/// Longest head of an answer to an upgrade: a `101` is a few lines; a refusal's head is under
/// saythat's default `--max-header` (8 KiB) too. Past it, the answer is refused unread.
pub const MAX_UPGRADE_HEAD: usize = 8192;
/// Header fields parsed in an upgrade's answer; more fail the check (a `101` has three).
const MAX_UPGRADE_FIELDS: usize = 32;
/// Longest client frame header: 2 bytes, a 64-bit length and the mask key.
pub const MAX_CLIENT_HEADER: usize = 14;
/// Characters of the server's answer quoted in an error.
const QUOTED: usize = 80;

/// A `Sec-WebSocket-Key`: base64 of 16 random bytes, 24 ASCII characters.
pub type Key = [u8; 24];

/// A fresh random `Sec-WebSocket-Key` (fastrand: the key only proves the server read the
/// request, RFC 6455 §4.1 asks nothing stronger of it).
pub fn new_key() -> Key {
    let raw: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let mut key = [0u8; 24];
    // 16 bytes always encode to 24: the slice is exactly large enough.
    let _ = STANDARD.encode_slice(raw, &mut key);
    key
}

/// The upgrade request for `path` on `host` (the `Host` field, `HOST:PORT`), with `key`.
pub fn upgrade_request(host: &str, path: &str, key: &Key) -> Vec<u8> {
    let key = std::str::from_utf8(key).unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the start of the answer to an upgrade sent with `key`: `Ok(None)` while its head is
/// not whole, the head's length once it is a valid `101` (what follows is WebSocket frames), or
/// why it is not, quoting the server's status line.
pub fn check_upgrade(head: &[u8], key: &Key) -> Result<Option<usize>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_UPGRADE_FIELDS];
    let mut answer = httparse::Response::new(&mut fields);
    let len = match answer.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if head.len() < MAX_UPGRADE_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(format!(
                "the answer's head is over {MAX_UPGRADE_HEAD} bytes: \"{}\"",
                first_line(head)
            ))
        }
        Err(e) => {
            return Err(format!(
                "the answer is not HTTP ({e}): \"{}\"",
                first_line(head)
            ))
        }
    };
    if answer.code != Some(101) {
        return Err(format!(
            "the server answered \"{}\" instead of 101 Switching Protocols (does it speak \
             WebSocket on this address?)",
            first_line(head)
        ));
    }
    let fields = &*answer.headers;
    let has = |name: &str, token: &[u8]| {
        values(fields, name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    if !has("upgrade", b"websocket") {
        return Err("the 101 does not say `Upgrade: websocket`".to_string());
    }
    if !has("connection", b"upgrade") {
        return Err("the 101 does not say `Connection: Upgrade`".to_string());
    }
    let expected = accept_key(key);
    match values(fields, "sec-websocket-accept").next() {
        None => return Err("the 101 has no Sec-WebSocket-Accept".to_string()),
        Some(v) if v.trim_ascii() == expected.as_bytes() => {}
        Some(v) => {
            return Err(format!(
                "the 101's Sec-WebSocket-Accept is \"{}\" where the key sent calls for \"{}\"",
                escape(v),
                expected.as_str()
            ))
        }
    }
    // None was offered: one in the answer would change what the frames mean.
    for name in ["sec-websocket-extensions", "sec-websocket-protocol"] {
        if let Some(v) = values(fields, name).next() {
            return Err(format!(
                "the 101 accepts {name} \"{}\", which was not asked for",
                escape(v)
            ));
        }
    }
    Ok(Some(len))
}

/// The values of every field named `name` (any case).
fn values<'a>(
    fields: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |f| f.name.eq_ignore_ascii_case(name))
        .map(|f| f.value)
}

/// The answer's first line, escaped and cut to `QUOTED` characters.
fn first_line(head: &[u8]) -> String {
    let line = head.split(|&b| b == b'\r' || b == b'\n').next();
    let mut quoted = escape(line.unwrap_or_default());
    if quoted.len() > QUOTED {
        quoted.truncate(QUOTED);
        quoted.push_str("...");
    }
    quoted
}

/// Bytes as printable ASCII, escaped like a Rust byte string.
pub fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

/// A client frame header (RFC 6455 §5.2): the server's shape with the mask bit and key added.
pub fn client_header(
    fin: bool,
    opcode: Opcode,
    len: u64,
    mask: [u8; 4],
) -> ([u8; MAX_CLIENT_HEADER], usize) {
    let (server, n) = encode_header(fin, opcode, len);
    let mut out = [0u8; MAX_CLIENT_HEADER];
    out[..n].copy_from_slice(&server[..n]);
    out[1] |= 0x80;
    out[n..n + 4].copy_from_slice(&mask);
    (out, n + 4)
}

/// Bytes of a client frame header for a payload of `len` bytes.
pub fn client_header_len(len: u64) -> usize {
    encode_header(true, Opcode::Binary, len).1 + 4
}

/// A decoded server frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFrame {
    /// The last frame of its message (always set on control frames).
    pub fin: bool,
    pub opcode: Opcode,
    /// Payload length.
    pub len: u64,
}

/// The opcode of these bits, or `None` for a reserved one.
fn opcode(bits: u8) -> Option<Opcode> {
    Some(match bits {
        0x0 => Opcode::Continuation,
        0x1 => Opcode::Text,
        0x2 => Opcode::Binary,
        0x8 => Opcode::Close,
        0x9 => Opcode::Ping,
        0xA => Opcode::Pong,
        _ => return None,
    })
}

/// Decodes the server frame header at the start of `bytes`: the header and its size, `None`
/// while it is not whole, or the rule it breaks, found at the first byte that breaks it.
pub fn decode_server_header(bytes: &[u8]) -> Result<Option<(ServerFrame, usize)>, String> {
    let Some(&b0) = bytes.first() else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(format!(
            "a frame with reserved bits set ({:#04x}) though no extension was agreed",
            b0 & 0x70
        ));
    }
    let opcode = opcode(b0 & 0x0F)
        .ok_or_else(|| format!("a frame with the reserved opcode {:#x}", b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(format!("a fragmented control frame ({opcode:?})"));
    }
    let Some(&b1) = bytes.get(1) else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("a masked frame (a server must not mask)".to_string());
    }
    let (len_bytes, short) = match b1 & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    if opcode.is_control() && short.is_none_or(|n| n > MAX_CONTROL) {
        return Err(format!("a control frame ({opcode:?}) over 125 bytes"));
    }
    if len_bytes == 8 && bytes.get(2).is_some_and(|&b| b & 0x80 != 0) {
        return Err("a 64-bit frame length with its top bit set".to_string());
    }
    let size = 2 + len_bytes;
    let Some(len_field) = bytes.get(2..size) else {
        return Ok(None);
    };
    let len = short.unwrap_or_else(|| {
        len_field
            .iter()
            .fold(0u64, |len, &b| (len << 8) | u64::from(b))
    });
    Ok(Some((ServerFrame { fin, opcode, len }, size)))
}

/// A server frame header read across reads: the bytes of a header not whole yet, kept inline.
#[derive(Debug, Default, Clone)]
pub struct ServerHeaderReader {
    held: [u8; MAX_SERVER_HEADER],
    len: u8,
}

impl ServerHeaderReader {
    /// Reads on from `input`: the header and how many bytes of `input` it took once whole, or
    /// `None` when all of `input` went into a header still partial.
    pub fn read(&mut self, input: &[u8]) -> Result<Option<(ServerFrame, usize)>, String> {
        let had = usize::from(self.len);
        if had == 0 {
            // The usual case: a whole header in the input, decoded in place.
            let found = decode_server_header(input)?;
            if found.is_none() {
                // Incomplete means shorter than a header: it fits.
                self.held[..input.len()].copy_from_slice(input);
                self.len = input.len() as u8;
            }
            return Ok(found);
        }
        let take = input.len().min(MAX_SERVER_HEADER - had);
        self.held[had..had + take].copy_from_slice(&input[..take]);
        let found = decode_server_header(&self.held[..had + take]);
        self.len = match &found {
            Ok(None) => (had + take) as u8,
            _ => 0,
        };
        Ok(found?.map(|(frame, size)| (frame, size - had)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What saythat (`switching_protocols`) answers to `key`.
    fn switching(key: &Key) -> Vec<u8> {
        let mut out = Vec::new();
        crate::framing::ws::handshake::switching_protocols(&accept_key(key), &mut out);
        out
    }

    #[test]
    fn the_request_carries_a_fresh_key_and_the_101_for_it_passes_in_any_pieces() {
        let key = new_key();
        assert_ne!(key, new_key());
        assert_eq!(STANDARD.decode(key).map(|raw| raw.len()), Ok(16));
        let request = String::from_utf8(upgrade_request("127.0.0.1:80", "/", &key)).expect("utf8");
        assert!(request.starts_with("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n"));
        assert!(request.contains(&format!(
            "Sec-WebSocket-Key: {}\r\n",
            std::str::from_utf8(&key).expect("ascii")
        )));
        let mut answer = switching(&key);
        let head_len = answer.len();
        answer.extend_from_slice(b"\x82\x01x");
        for cut in 0..head_len {
            assert_eq!(
                check_upgrade(&answer[..cut], &key),
                Ok(None),
                "cut at {cut}"
            );
        }
        assert_eq!(check_upgrade(&answer, &key), Ok(Some(head_len)));
    }

    #[test]
    fn a_refusal_or_a_wrong_accept_is_described() {
        let key = new_key();
        let refused = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        let err = check_upgrade(refused, &key).expect_err("a 400");
        assert!(
            err.contains("\"HTTP/1.1 400 Bad Request\" instead of 101"),
            "{err}"
        );
        let other = switching(&new_key());
        let err = check_upgrade(&other, &key).expect_err("another key's accept");
        assert!(err.contains("Sec-WebSocket-Accept is"), "{err}");
        let no_upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n";
        assert!(check_upgrade(no_upgrade, &key)
            .expect_err("no Upgrade")
            .contains("Upgrade: websocket"));
        let mut deflate = switching(&key);
        deflate.truncate(deflate.len() - 2);
        deflate.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
        assert!(check_upgrade(&deflate, &key)
            .expect_err("an extension")
            .contains("permessage-deflate"));
        let endless = vec![b'a'; MAX_UPGRADE_HEAD];
        assert!(check_upgrade(&endless, &key).is_err());
    }

    #[test]
    fn client_headers_have_the_mask_bit_and_key_for_each_length_form() {
        let mask = [1, 2, 3, 4];
        let (h, n) = client_header(true, Opcode::Text, 5, mask);
        assert_eq!(&h[..n], &[0x81, 0x85, 1, 2, 3, 4]);
        let (h, n) = client_header(true, Opcode::Binary, 300, mask);
        assert_eq!(&h[..n], &[0x82, 0xFE, 1, 44, 1, 2, 3, 4]);
        let (h, n) = client_header(false, Opcode::Binary, 1 << 16, mask);
        assert_eq!(&h[..n], &[0x02, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]);
        for len in [0, 125, 126, 65_535, 65_536] {
            assert_eq!(
                client_header_len(len),
                client_header(true, Opcode::Text, len, mask).1
            );
        }
    }

    #[test]
    fn server_headers_decode_across_any_cut_and_forbidden_ones_fail() {
        for (fin, op, len) in [
            (true, Opcode::Text, 5u64),
            (false, Opcode::Binary, 300),
            (true, Opcode::Continuation, 70_000),
            (true, Opcode::Ping, 125),
        ] {
            let (bytes, n) = encode_header(fin, op, len);
            let want = ServerFrame {
                fin,
                opcode: op,
                len,
            };
            for cut in 0..=n {
                let mut r = ServerHeaderReader::default();
                let first = r.read(&bytes[..cut]).expect("valid");
                let got = match first {
                    Some(found) => found,
                    None => r.read(&bytes[cut..n]).expect("valid").expect("whole"),
                };
                let took = if first.is_some() { n } else { n - cut };
                assert_eq!(got, (want, took), "cut at {cut}");
            }
        }
        for (bad, says) in [
            (&[0xC2u8, 0x00][..], "reserved bits"),
            (&[0x83, 0x00], "reserved opcode"),
            (&[0x09, 0x00], "fragmented control"),
            (&[0x82, 0x80], "masked"),
            (&[0x89, 126], "over 125"),
            (&[0x82, 127, 0x80], "top bit"),
        ] {
            let err = decode_server_header(bad).expect_err(says);
            assert!(err.contains(says), "{err}");
        }
    }
}
