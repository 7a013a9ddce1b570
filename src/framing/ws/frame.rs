//! The frame codec of RFC 6455 §5, server side: a client frame's header decoded incrementally
//! from bytes that may end anywhere, payload bytes unmasked by their position in the payload (so
//! a payload split across reads unmasks right), and a server frame's header encoded.
//!
//! Sans-IO and bounded: a partial header is at most [`MAX_HEADER`] bytes, kept inline; it never
//! holds a payload, never allocates, and refuses what a client must not send (RFC 6455 §5.1-5.5)
//! with the close code to answer, before any of that frame's payload is looked at.

/// Longest frame header: 2 bytes, a 64-bit length and a mask key.
pub const MAX_HEADER: usize = 14;

/// Longest server frame header: no mask key.
pub const MAX_SERVER_HEADER: usize = 10;

/// Longest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL: u64 = 125;

/// A frame's kind (RFC 6455 §5.2); the reserved opcodes are refused when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
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

    /// Close, ping and pong: at most 125 bytes, never fragmented, allowed between fragments.
    pub fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

/// A decoded client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The last frame of its message (always set on control frames).
    pub fin: bool,
    pub opcode: Opcode,
    /// The client's masking key (RFC 6455 §5.3).
    pub mask: [u8; 4],
    /// Payload length.
    pub len: u64,
}

/// A frame the client must not send, and the close code that answers it (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    /// One line for the close frame's reason: ASCII, well under the 123 bytes it may take.
    pub reason: &'static str,
}

/// Protocol error (RFC 6455 §7.4.1).
pub const PROTOCOL_ERROR: u16 = 1002;

const fn protocol(reason: &'static str) -> Violation {
    Violation {
        code: PROTOCOL_ERROR,
        reason,
    }
}

/// The result of looking at the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The header is not whole yet; nothing wrong so far.
    Incomplete,
    /// A whole header of `size` bytes.
    Header { header: FrameHeader, size: usize },
}

/// Decodes the client frame header at the start of `bytes`, failing at the first byte that
/// breaks a rule, whether or not the rest of the header has come.
pub fn decode_header(bytes: &[u8]) -> Result<Decoded, Violation> {
    let Some(&b0) = bytes.first() else {
        return Ok(Decoded::Incomplete);
    };
    if b0 & 0x70 != 0 {
        return Err(protocol("reserved bits set without an extension"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(protocol("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(protocol("fragmented control frame"));
    }
    let Some(&b1) = bytes.get(1) else {
        return Ok(Decoded::Incomplete);
    };
    if b1 & 0x80 == 0 {
        return Err(protocol("client frame not masked"));
    }
    let (len_bytes, short) = match b1 & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    if opcode.is_control() && short.is_none_or(|n| n > MAX_CONTROL) {
        return Err(protocol("control frame over 125 bytes"));
    }
    if len_bytes == 8 && bytes.get(2).is_some_and(|&b| b & 0x80 != 0) {
        return Err(protocol("64-bit frame length with its top bit set"));
    }
    let size = 2 + len_bytes + 4;
    let Some(rest) = bytes.get(2..size) else {
        return Ok(Decoded::Incomplete);
    };
    let (len_field, mask) = rest.split_at(len_bytes);
    let len = short.unwrap_or_else(|| {
        len_field
            .iter()
            .fold(0u64, |len, &b| (len << 8) | u64::from(b))
    });
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    Ok(Decoded::Header {
        header: FrameHeader {
            fin,
            opcode,
            mask,
            len,
        },
        size,
    })
}

/// A client frame header read across reads: the bytes of a header not whole yet, kept inline.
#[derive(Debug, Default, Clone)]
pub struct HeaderReader {
    held: [u8; MAX_HEADER],
    len: u8,
}

impl HeaderReader {
    /// Whether part of a header is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads on from `input`: the header and how many bytes of `input` it took once whole, or
    /// `None` when all of `input` went into a header still partial.
    pub fn read(&mut self, input: &[u8]) -> Result<Option<(FrameHeader, usize)>, Violation> {
        if self.len == 0 {
            // The usual case: a whole header in the input, decoded in place.
            return match decode_header(input)? {
                Decoded::Header { header, size } => Ok(Some((header, size))),
                Decoded::Incomplete => {
                    self.held[..input.len()].copy_from_slice(input);
                    self.len = input.len() as u8;
                    Ok(None)
                }
            };
        }
        let had = usize::from(self.len);
        let take = input.len().min(MAX_HEADER - had);
        self.held[had..had + take].copy_from_slice(&input[..take]);
        match decode_header(&self.held[..had + take]) {
            Err(violation) => {
                self.len = 0;
                Err(violation)
            }
            Ok(Decoded::Header { header, size }) => {
                self.len = 0;
                Ok(Some((header, size - had)))
            }
            Ok(Decoded::Incomplete) => {
                self.len = (had + take) as u8;
                Ok(None)
            }
        }
    }
}

/// Unmasks (or masks: it is its own inverse) `bytes`, which start `at` bytes into a payload
/// masked with `mask`.
pub fn unmask(bytes: &mut [u8], mask: [u8; 4], at: u64) {
    // The key as seen from the first byte of `bytes`.
    let r = at as usize;
    let key = [
        mask[r & 3],
        mask[(r + 1) & 3],
        mask[(r + 2) & 3],
        mask[(r + 3) & 3],
    ];
    // Eight bytes at a time: the key repeats every four, so it lines up with every word.
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = bytes.chunks_exact_mut(8);
    for chunk in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A server frame header (unmasked, RFC 6455 §5.1): the bytes and how many of them are used.
pub fn encode_header(fin: bool, opcode: Opcode, len: u64) -> ([u8; MAX_SERVER_HEADER], usize) {
    let mut out = [0u8; MAX_SERVER_HEADER];
    out[0] = if fin { 0x80 } else { 0 } | opcode as u8;
    let used = match len {
        0..=125 => {
            out[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&len.to_be_bytes());
            10
        }
    };
    (out, used)
}

/// A whole masked client frame: `first` is its first byte as given (FIN, RSV bits and opcode, so
/// a test can send what a conformant client never would), then the length, `mask` and the
/// payload masked with it. For tests and tools; the load generator writes headers with
/// `ws_client::client_header` and allocates nothing.
pub fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let (header, n) = encode_header(true, Opcode::Binary, payload.len() as u64);
    let mut out = Vec::with_capacity(n + 4 + payload.len());
    out.extend_from_slice(&header[..n]);
    out[0] = first;
    out[1] |= 0x80;
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], mask, 0);
    out
}

/// Whether a close frame may carry `code` (RFC 6455 §7.4): the codes a peer may send, as IANA's
/// registry lists them today (1012-1014, service restart, try again later and bad gateway, were
/// registered after the RFC; a proxy or a restarting server sends them), not 1004-1006 or 1015,
/// which are never sent, and the ranges left to libraries and applications.
pub fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        super::client_frame(first, payload, MASK)
    }

    /// RFC 6455 §5.7: a single-frame masked text message "Hello".
    #[test]
    fn the_rfc_masked_hello_decodes() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let Ok(Decoded::Header { header, size }) = decode_header(&bytes) else {
            panic!("a header");
        };
        assert_eq!(
            header,
            FrameHeader {
                fin: true,
                opcode: Opcode::Text,
                mask: MASK,
                len: 5
            }
        );
        let mut payload = bytes[size..].to_vec();
        unmask(&mut payload, header.mask, 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn lengths_of_7_16_and_64_bits() {
        for len in [0usize, 125, 126, 0xFFFF, 0x10000] {
            let frame = client_frame(0x82, &vec![0; len]);
            let Ok(Decoded::Header { header, size }) = decode_header(&frame) else {
                panic!("a header for {len}");
            };
            assert_eq!((header.len, size), (len as u64, frame.len() - len));
        }
        let mut big = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        big.extend_from_slice(&MASK);
        let Ok(Decoded::Header { header, .. }) = decode_header(&big) else {
            panic!("a header");
        };
        assert_eq!(header.len, i64::MAX as u64);
    }

    #[test]
    fn each_rule_has_its_refusal_at_the_first_byte_that_breaks_it() {
        let refusals: [(&[u8], &str); 8] = [
            (&[0xC1], "reserved bits set without an extension"),
            (&[0xA1], "reserved bits set without an extension"),
            (&[0x91], "reserved bits set without an extension"),
            (&[0x83], "unknown opcode"),
            (&[0x8B], "unknown opcode"),
            (&[0x09], "fragmented control frame"),
            (&[0x81, 0x05], "client frame not masked"),
            (&[0x89, 0xFE], "control frame over 125 bytes"),
        ];
        for (bytes, reason) in refusals {
            assert_eq!(
                decode_header(bytes),
                Err(Violation { code: 1002, reason }),
                "{bytes:x?}"
            );
        }
        assert_eq!(
            decode_header(&[0x82, 0xFF, 0x80]).map_err(|v| v.reason),
            Err("64-bit frame length with its top bit set")
        );
        // 125 bytes of control payload are fine.
        assert!(decode_header(&client_frame(0x89, &[0; 125])).is_ok());
    }

    #[test]
    fn a_header_split_anywhere_reads_the_same() {
        let frame = client_frame(0x02, &vec![7; 300]);
        let whole = decode_header(&frame).unwrap();
        for cut in 0..8 {
            let mut reader = HeaderReader::default();
            let first = reader.read(&frame[..cut]).unwrap();
            assert!(first.is_none(), "cut {cut}");
            assert_eq!(reader.is_empty(), cut == 0);
            let Some((header, used)) = reader.read(&frame[cut..]).unwrap() else {
                panic!("whole at cut {cut}");
            };
            assert_eq!(
                Decoded::Header {
                    header,
                    size: used + cut
                },
                whole
            );
            assert!(reader.is_empty());
        }
        // One byte at a time.
        let mut reader = HeaderReader::default();
        for (i, b) in frame[..7].iter().enumerate() {
            assert_eq!(reader.read(&[*b]), Ok(None), "byte {i}");
        }
        assert_eq!(
            reader.read(&frame[7..]).unwrap().map(|(_, used)| used),
            Some(1)
        );
    }

    #[test]
    fn a_split_header_fails_as_soon_as_it_breaks_a_rule() {
        let mut reader = HeaderReader::default();
        assert_eq!(reader.read(&[0x81]), Ok(None));
        assert_eq!(
            reader.read(&[0x05, 1, 2]).map_err(|v| v.reason),
            Err("client frame not masked")
        );
    }

    #[test]
    fn unmasking_by_position_matches_unmasking_whole() {
        let plain: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut masked = plain.clone();
        unmask(&mut masked, MASK, 0);
        for cuts in [[0, 1], [3, 17], [8, 9], [999, 1000], [5, 500]] {
            let mut pieces = masked.clone();
            let (a, rest) = pieces.split_at_mut(cuts[0]);
            let (b, c) = rest.split_at_mut(cuts[1] - cuts[0]);
            unmask(a, MASK, 0);
            unmask(b, MASK, cuts[0] as u64);
            unmask(c, MASK, cuts[1] as u64);
            assert_eq!(pieces, plain, "{cuts:?}");
        }
    }

    #[test]
    fn server_headers_use_the_shortest_length() {
        let cases: [(bool, Opcode, u64, &[u8]); 5] = [
            (true, Opcode::Text, 5, &[0x81, 5]),
            (false, Opcode::Binary, 126, &[0x02, 126, 0, 126]),
            (true, Opcode::Continuation, 0xFFFF, &[0x80, 126, 0xFF, 0xFF]),
            (
                true,
                Opcode::Binary,
                0x10000,
                &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0],
            ),
            (true, Opcode::Close, 2, &[0x88, 2]),
        ];
        for (fin, opcode, len, expected) in cases {
            let (bytes, used) = encode_header(fin, opcode, len);
            assert_eq!(&bytes[..used], expected);
        }
    }

    #[test]
    fn close_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(close_code_valid(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!close_code_valid(code), "{code}");
        }
    }
}
