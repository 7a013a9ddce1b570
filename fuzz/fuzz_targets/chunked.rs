//! Fuzzes the chunked-body decoder with arbitrary bytes cut at fuzzer-chosen points: it must
//! never panic, must give the same body, the same bytes used and the same verdict however the
//! wire is cut, and must never hand out more body than `max_body`.
//!
//! Input: byte 0 picks `max_body`, bytes 1..5 the piece lengths (cycled), the rest is the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saythat::framing::http::{ChunkError, ChunkedDecoder};

/// Bytes of the input that steer the run rather than feed the decoder.
const HEADER: usize = 5;
/// Body limits worth telling apart: none, tiny, around a chunk, the CLI's default and largest.
const MAX_BODIES: [u64; 6] = [0, 1, 16, 1000, 1 << 20, 1 << 40];

/// What decoding a wire gave: the body handed out, and the verdict with how much was used.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    body: Vec<u8>,
    /// `Ok(used)` as the server would see it: the bytes before the next request.
    result: Result<usize, ChunkError>,
    done: bool,
}

/// Feeds `pieces` one call each as the HTTP framing does: it stops at the first error or once
/// the body is done (what follows belongs to the next request).
fn decode<'a>(pieces: impl Iterator<Item = &'a [u8]>, max_body: u64) -> Decoded {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut used = 0;
    for piece in pieces {
        let result = decoder.decode(piece, max_body, |data| body.extend_from_slice(data));
        assert!(
            body.len() as u64 <= max_body,
            "{} body bytes handed out past max_body {max_body}",
            body.len()
        );
        match result {
            Ok(n) => {
                assert!(n <= piece.len(), "used {n} of a {}-byte piece", piece.len());
                used += n;
                if n < piece.len() {
                    assert!(
                        decoder.is_done(),
                        "stopped short of a piece's end before done"
                    );
                    break;
                }
                if decoder.is_done() {
                    break;
                }
            }
            Err(e) => {
                assert!(!decoder.is_done(), "an error after the body was done");
                return Decoded {
                    body,
                    result: Err(e),
                    done: false,
                };
            }
        }
    }
    Decoded {
        body,
        result: Ok(used),
        done: decoder.is_done(),
    }
}

/// Cuts `wire` into pieces whose lengths cycle through `codes` (0: all the rest).
fn pieces<'a>(wire: &'a [u8], codes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = wire;
    let mut code = codes.iter().cycle();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = match *code.next()? {
            0 => rest.len(),
            n => usize::from(n).min(rest.len()),
        };
        let (piece, after) = rest.split_at(len);
        rest = after;
        Some(piece)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let max_body = MAX_BODIES[usize::from(data[0]) % MAX_BODIES.len()];
    let codes = &data[1..HEADER];
    let wire = &data[HEADER..];

    let whole = decode(std::iter::once(wire), max_body);
    let split = decode(pieces(wire, codes), max_body);
    assert_eq!(whole, split, "cutting the wire changed the decoding");
    if let Ok(used) = whole.result {
        assert!(used <= wire.len());
        assert!(
            whole.done || used == wire.len(),
            "all input is used until the body is done"
        );
    }
    // The body is the wire's data bytes: never more than the wire.
    assert!(whole.body.len() <= wire.len());
});
