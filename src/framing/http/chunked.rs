//! The chunked transfer coding of a request body (RFC 9112 §7.1), decoded as it arrives.
//!
//! A small state machine over byte slices: it keeps a few counters, never the body, and never
//! more than the current chunk's size line or trailer line is long. It is strict: CRLF line
//! ends only, at least one hex digit, sizes that overflow or pass the body limit refused, chunk
//! extensions checked against their grammar (RFC 9112 §7.1.1), bounded and then ignored,
//! trailers bounded and ignored. A proxy in front that reads a malformed extension differently
//! would frame the body differently: refusing it closes a smuggling door.

/// The longest chunk-size line accepted, extensions included. Real clients send none; a long
/// one is an attack on the parser.
pub const MAX_CHUNK_LINE: u32 = 1024;
/// Trailer bytes accepted after the last chunk; trailers are read and dropped.
pub const MAX_TRAILERS: u32 = 8192;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Not the chunked coding: what is wrong, in a few words for the error response.
    Malformed(&'static str),
    /// The chunks add up to more than the body limit.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size; `digits` so far.
    Size {
        digits: u8,
    },
    /// Whitespace after the size's digits or after an extension's value (`BWS`): only a `;`
    /// may follow, never the line's end (`5 \r\n` is refused).
    BeforeSemicolon,
    /// After a `;` and any whitespace: an extension's name must start.
    ExtNameStart,
    /// Inside an extension's name (a token).
    ExtName,
    /// Whitespace after an extension's name: `=` or `;` may follow.
    AfterExtName,
    /// After `=` and any whitespace: the value must start (a token or a quoted string).
    ExtValueStart,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value.
    Quoted,
    /// After a backslash in a quoted string: the escaped byte.
    QuotedPair,
    /// After a quoted string's closing quote.
    AfterQuoted,
    /// CR of a size line seen; LF must follow.
    SizeLf,
    /// Inside chunk data, `size` bytes to go.
    Data,
    /// After a chunk's data: CR, then LF.
    DataCr,
    DataLf,
    /// After the last chunk's size line: a trailer line starts here, or the final CRLF.
    TrailerStart,
    /// Inside a trailer line, up to its CR.
    Trailer,
    /// CR of a trailer line seen; LF must follow.
    TrailerLf,
    /// CR at the start of a line after the last chunk: the body ends with the LF.
    EndLf,
    Done,
}

/// Decodes one chunked body. Small (24 bytes): every HTTP connection has room for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line, or of all trailers so far.
    line: u32,
    /// The size being read from a size line, then the bytes of the chunk's data still to come.
    size: u64,
    /// Data bytes of all chunks so far, checked against the body limit.
    total: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            line: 0,
            size: 0,
            total: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// The whole body, trailers and final CRLF included, has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, handing every run of body data to `data` as it goes; returns how
    /// many bytes were used. Fewer than `input.len()` only once the body is done: the rest
    /// belongs to the next request.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
        max_body: u64,
        mut data: impl FnMut(&'a [u8]),
    ) -> Result<usize, ChunkError> {
        use ChunkError::Malformed;
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            match self.state {
                State::Data => {
                    let take = self.size.min((input.len() - at) as u64) as usize;
                    data(&input[at..at + take]);
                    at += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Done => return Ok(at),
                State::Size { digits } => match hex_value(byte) {
                    Some(value) => {
                        if digits >= 16 {
                            return Err(ChunkError::Malformed("chunk size too long"));
                        }
                        self.size = self.size << 4 | u64::from(value);
                        self.state = State::Size { digits: digits + 1 };
                    }
                    None if digits == 0 => {
                        return Err(ChunkError::Malformed("a chunk size must be hex digits"))
                    }
                    None => match byte {
                        b'\r' => self.state = State::SizeLf,
                        b';' => self.state = State::ExtNameStart,
                        b' ' | b'\t' => self.state = State::BeforeSemicolon,
                        b'\n' => return Err(Malformed("a chunk size line must end in CRLF")),
                        _ => return Err(Malformed("a chunk size must be hex digits")),
                    },
                },
                State::BeforeSemicolon => match byte {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::ExtNameStart,
                    _ => return Err(Malformed("whitespace in a chunk size line must lead to ;")),
                },
                State::ExtNameStart => match byte {
                    b' ' | b'\t' => {}
                    b if is_tchar(b) => self.state = State::ExtName,
                    _ => return Err(Malformed("a chunk extension needs a name")),
                },
                State::ExtName | State::AfterExtName => match byte {
                    b if is_tchar(b) && self.state == State::ExtName => {}
                    b' ' | b'\t' => self.state = State::AfterExtName,
                    b'=' => self.state = State::ExtValueStart,
                    b';' => self.state = State::ExtNameStart,
                    b'\r' if self.state == State::ExtName => self.state = State::SizeLf,
                    _ => return Err(Malformed("bad byte in a chunk extension")),
                },
                State::ExtValueStart => match byte {
                    b' ' | b'\t' => {}
                    b'"' => self.state = State::Quoted,
                    b if is_tchar(b) => self.state = State::ExtToken,
                    _ => return Err(Malformed("a chunk extension's = needs a value")),
                },
                State::ExtToken | State::AfterQuoted => match byte {
                    b if is_tchar(b) && self.state == State::ExtToken => {}
                    b' ' | b'\t' => self.state = State::BeforeSemicolon,
                    b';' => self.state = State::ExtNameStart,
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(Malformed("bad byte in a chunk extension")),
                },
                State::Quoted => match byte {
                    b'"' => self.state = State::AfterQuoted,
                    b'\\' => self.state = State::QuotedPair,
                    // qdtext: whitespace, visible bytes but `"` and `\`, obs-text.
                    b' ' | b'\t' => {}
                    b if is_visible(b) => {}
                    _ => return Err(Malformed("bad byte in a chunk extension")),
                },
                State::QuotedPair => match byte {
                    b' ' | b'\t' => self.state = State::Quoted,
                    b if is_visible(b) => self.state = State::Quoted,
                    _ => return Err(Malformed("bad byte in a chunk extension")),
                },
                State::SizeLf => {
                    if byte != b'\n' {
                        return Err(ChunkError::Malformed("a chunk size line must end in CRLF"));
                    }
                    self.total = self.total.saturating_add(self.size);
                    if self.total > max_body {
                        return Err(ChunkError::TooLarge);
                    }
                    self.line = 0;
                    self.state = match self.size {
                        0 => State::TrailerStart,
                        _ => State::Data,
                    };
                }
                State::DataCr => {
                    if byte != b'\r' {
                        return Err(ChunkError::Malformed("chunk data must end in CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if byte != b'\n' {
                        return Err(ChunkError::Malformed("chunk data must end in CRLF"));
                    }
                    self.state = State::Size { digits: 0 };
                    self.size = 0;
                }
                State::TrailerStart => {
                    self.state = match byte {
                        b'\r' => State::EndLf,
                        b if is_visible(b) => State::Trailer,
                        _ => return Err(ChunkError::Malformed("bad byte in a trailer")),
                    }
                }
                State::Trailer => match byte {
                    b'\r' => self.state = State::TrailerLf,
                    b' ' | b'\t' => {}
                    b if is_visible(b) => {}
                    _ => return Err(ChunkError::Malformed("bad byte in a trailer")),
                },
                State::TrailerLf | State::EndLf => {
                    if byte != b'\n' {
                        return Err(ChunkError::Malformed("a trailer line must end in CRLF"));
                    }
                    self.state = match self.state {
                        State::EndLf => State::Done,
                        _ => State::TrailerStart,
                    };
                }
            }
            at += 1;
            if self.in_size_line() {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err(ChunkError::Malformed("chunk size line too long"));
                }
            } else if matches!(self.state, State::Trailer | State::TrailerLf | State::EndLf) {
                self.line += 1;
                if self.line > MAX_TRAILERS {
                    return Err(ChunkError::Malformed("trailers too long"));
                }
            }
        }
        Ok(at)
    }

    /// The state is inside a chunk-size line, whose length is bounded by `MAX_CHUNK_LINE`.
    fn in_size_line(&self) -> bool {
        !matches!(
            self.state,
            State::Data
                | State::DataCr
                | State::DataLf
                | State::TrailerStart
                | State::Trailer
                | State::TrailerLf
                | State::EndLf
                | State::Done
        )
    }
}

/// A `tchar` of RFC 9110 §5.6.2: the bytes a token (an extension's name or value) is made of.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A visible ASCII byte, or an obs-text byte (0x80 and up) as field values may hold.
fn is_visible(byte: u8) -> bool {
    (0x21..=0x7e).contains(&byte) || byte >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `pieces` one after another; returns the body and the bytes left after it.
    fn decode(pieces: &[&[u8]], max_body: u64) -> Result<(Vec<u8>, Vec<u8>, bool), ChunkError> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut rest = Vec::new();
        for piece in pieces {
            let used = decoder.decode(piece, max_body, |data| body.extend_from_slice(data))?;
            rest.extend_from_slice(&piece[used..]);
        }
        Ok((body, rest, decoder.is_done()))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let wire = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET /";
        assert_eq!(
            decode(&[wire], 100),
            Ok((b"hello world".to_vec(), b"GET /".to_vec(), true))
        );
    }

    #[test]
    fn refuses_what_is_not_the_chunked_coding() {
        for (wire, why) in [
            (&b"x\r\n"[..], "a chunk size must be hex digits"),
            (b"5\nhello\r\n", "a chunk size line must end in CRLF"),
            (b"5\r\nhelloX", "chunk data must end in CRLF"),
            (b"5\r\nhello\rX", "chunk data must end in CRLF"),
            (b"0\r\nbad\0trailer", "bad byte in a trailer"),
            (b"0\r\n\rX", "a trailer line must end in CRLF"),
            (b"1;a\x00\r\n", "bad byte in a chunk extension"),
            (b"5;\r\n", "a chunk extension needs a name"),
            (b"5; \r\n", "a chunk extension needs a name"),
            (b"5;;a\r\n", "a chunk extension needs a name"),
            (b"5;=x\r\n", "a chunk extension needs a name"),
            (b"5;bad[=x\r\n", "bad byte in a chunk extension"),
            (b"5;a=\r\n", "a chunk extension's = needs a value"),
            (b"5;a=[\r\n", "a chunk extension's = needs a value"),
            (b"5;a=b[\r\n", "bad byte in a chunk extension"),
            (b"5;a b\r\n", "bad byte in a chunk extension"),
            (b"5;a \r\n", "bad byte in a chunk extension"),
            (b"5;a=\"x\"y\r\n", "bad byte in a chunk extension"),
            (b"5;a=\"x\r\n", "bad byte in a chunk extension"),
            (b"5;a=\"\\\x01\"\r\n", "bad byte in a chunk extension"),
            (b"5 \r\n", "whitespace in a chunk size line must lead to ;"),
            (b"5\t\r\n", "whitespace in a chunk size line must lead to ;"),
            (b"5 x\r\n", "whitespace in a chunk size line must lead to ;"),
            (
                b"5;a=b \r\n",
                "whitespace in a chunk size line must lead to ;",
            ),
            (b"5x\r\nhello\r\n", "a chunk size must be hex digits"),
            (b"10000000000000000\r\n", "chunk size too long"),
        ] {
            assert_eq!(
                decode(&[wire], u64::MAX),
                Err(ChunkError::Malformed(why)),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    /// `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, token or quoted-string values.
    #[test]
    fn extensions_that_match_the_grammar_are_ignored() {
        for line in [
            &b"5;a"[..],
            b"5;a=b",
            b"5 ; a = b",
            b"5\t;\ta\t=\t\"q\\\"x\"",
            b"5 ; a = \"q\\\"x\"",
            b"5;a=\"\";b;c=\"; \\\\\" ; d=e",
            b"5;a=\"\xc3\xa9\"",
            b"5;!#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~",
        ] {
            let wire = [line, b"\r\nhello\r\n0\r\n\r\n"].concat();
            assert_eq!(
                decode(&[&wire], 100),
                Ok((b"hello".to_vec(), Vec::new(), true)),
                "{}",
                line.escape_ascii()
            );
        }
    }

    #[test]
    fn bounds_sizes_extensions_and_trailers() {
        assert_eq!(
            decode(&[b"ffffffffffffffff\r\n"], u64::MAX).map(|r| r.2),
            Ok(false)
        );
        assert_eq!(
            decode(&[b"5\r\nhello\r\n6\r\n"], 10),
            Err(ChunkError::TooLarge)
        );
        let long_ext = [&b"1;"[..], &vec![b'a'; MAX_CHUNK_LINE as usize]].concat();
        assert_eq!(
            decode(&[&long_ext], 100),
            Err(ChunkError::Malformed("chunk size line too long"))
        );
        let long_trailer = [&b"0\r\nX: "[..], &vec![b'a'; MAX_TRAILERS as usize]].concat();
        assert_eq!(
            decode(&[&long_trailer], 100),
            Err(ChunkError::Malformed("trailers too long"))
        );
    }

    proptest! {
        /// However the wire is split, the same body comes out and the same bytes are left.
        #[test]
        fn splits_do_not_matter(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let mut wire = Vec::new();
            for chunk in &chunks {
                wire.extend_from_slice(format!("{:X}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\nNEXT");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&wire[start..cut]);
                start = cut;
            }
            pieces.push(&wire[start..]);
            let expected: Vec<u8> = chunks.concat();
            prop_assert_eq!(decode(&pieces, u64::MAX), Ok((expected, b"NEXT".to_vec(), true)));
        }

        /// Arbitrary bytes never panic the decoder, and it never claims more than it was given.
        #[test]
        fn arbitrary_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut decoder = ChunkedDecoder::new();
            if let Ok(used) = decoder.decode(&bytes, 1000, |_| {}) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
