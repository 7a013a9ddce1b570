//! Chunk echo, the lesson's protocol: every read of up to 1024 bytes is a message, answered by
//! the prefix and the bytes.
//!
//! It keeps nothing between reads, so a connection's session is empty; it must never answer a
//! chunk differently from how the lesson's `recv(1024)` loop would have read it.

use super::{Answers, Next, Protocol, ProtocolCounts};
use crate::config::{MAX_READ, READ_SIZE};

/// The rules of chunk echo, shared by a loop's connections.
#[derive(Debug, Clone)]
pub struct Chunk {
    prefix: Box<[u8]>,
    counts: ProtocolCounts,
}

impl Chunk {
    pub fn new(prefix: &[u8]) -> Chunk {
        Chunk {
            prefix: prefix.into(),
            counts: ProtocolCounts::default(),
        }
    }
}

impl Protocol for Chunk {
    type Session = ();

    /// Whole chunks that fit in `room` with their prefixes (at least one): answering the read
    /// overshoots the room by at most one chunk and its prefix.
    fn read_len(&self, _: &(), room: usize) -> usize {
        (room / (READ_SIZE + self.prefix.len()) * READ_SIZE).clamp(READ_SIZE, MAX_READ)
    }

    fn on_read(&mut self, _: &mut (), input: &[u8], answers: &mut Answers<'_>) -> Next {
        // One read syscall may take several chunks; each is answered exactly as if it had been
        // a read of its own.
        self.counts.messages += input.len().div_ceil(READ_SIZE) as u64;
        for chunk in input.chunks(READ_SIZE) {
            answers.push(&self.prefix);
            answers.push(chunk);
        }
        Next::Continue
    }

    fn on_writable(&mut self, _: &mut (), _: &mut Answers<'_>) -> Next {
        Next::Continue
    }

    fn on_eof(&mut self, _: &mut (), _: &mut Answers<'_>) {}

    /// Every read is a whole message: a chunk connection is always between messages.
    fn at_boundary(&self, _: &()) -> bool {
        true
    }

    fn counts(&self) -> &ProtocolCounts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testing::feed;
    use std::time::Instant;

    const P: &[u8] = b"You say that ";

    #[test]
    fn prefixes_each_read_verbatim() {
        let (out, _) = feed(&mut Chunk::new(P), &[b"a\0\xff", b"You say that "], true);
        assert_eq!(out, b"You say that a\0\xffYou say that You say that ");
    }

    #[test]
    fn counts_a_message_per_chunk() {
        let mut chunk = Chunk::new(P);
        feed(&mut chunk, &[b"a", &[b'x'; 2 * READ_SIZE + 1]], true);
        assert_eq!(chunk.counts().messages, 4);
    }

    #[test]
    fn answers_a_large_read_in_1024_byte_chunks() {
        let input: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (out, _) = feed(&mut Chunk::new(b">"), &[&input], true);
        let expected = [
            &b">"[..],
            &input[..1024],
            b">",
            &input[1024..2048],
            b">",
            &input[2048..],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn read_len_keeps_the_answers_near_the_room() {
        let mut chunk = Chunk::new(P);
        for room in [0, 1000, 1037, 5000, 65536, 1 << 30] {
            let input = vec![b'x'; chunk.read_len(&(), room)];
            let mut out = Vec::new();
            chunk.on_read(
                &mut (),
                &input,
                &mut Answers::new(&mut out, room, Instant::now()),
            );
            let bound = room.max(READ_SIZE + P.len()) + READ_SIZE + P.len();
            assert!(
                out.len() <= bound,
                "room {room}: {} answer bytes, bound {bound}",
                out.len()
            );
        }
    }
}
