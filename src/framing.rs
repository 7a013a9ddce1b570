//! Framing: how a connection's byte stream is cut into messages, and what each one is answered.
//!
//! Pure functions over byte slices, so they are unit- and property-tested without sockets and
//! the event loop never needs to know which framing is in use (HTTP/1.1 will be a third).
//! Framing must never do I/O, never allocate per message, and never hold more than `max_line`
//! bytes of a connection's input.

use crate::config::{FramingKind, MAX_READ, READ_SIZE};

/// What the connection should do once an input has been answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything complete was answered; more input is welcome (a partial line may be kept).
    Incomplete,
    /// The input broke a rule: the last answer is an error line; stop reading, flush, close.
    Close,
}

/// A connection's framing state between reads: the start of a line whose `\n` has not come yet.
/// Empty, and holding no heap memory, for every idle connection and every chunk connection.
#[derive(Debug, Default)]
pub struct Partial {
    line: Vec<u8>,
}

/// The rules of one server: which framing, the prefix, the line limit. Shared by all connections.
#[derive(Debug, Clone)]
pub struct Framer {
    kind: FramingKind,
    prefix: Box<[u8]>,
    max_line: usize,
    too_long: Box<[u8]>,
}

/// A partial line whose buffer grew past this is released once it is answered, so one long line
/// does not pin its memory to the connection for good.
const KEEP_PARTIAL_CAPACITY: usize = 4096;

impl Framer {
    pub fn new(kind: FramingKind, prefix: &[u8], max_line: usize) -> Framer {
        Framer {
            kind,
            prefix: prefix.into(),
            max_line,
            too_long: format!("ERR line too long (max {max_line} bytes)\n")
                .into_bytes()
                .into(),
        }
    }

    /// How many bytes to read when `room` answer bytes may still be produced: every chunk costs
    /// a prefix, and in line framing every input byte could be a line of its own, so the read
    /// shrinks with the room. Answering it overshoots `room` by at most a chunk and a prefix, or
    /// in line framing a prefix, a line (`max_line`) and the error line.
    pub fn read_len(&self, room: usize) -> usize {
        match self.kind {
            FramingKind::Chunk => {
                (room / (READ_SIZE + self.prefix.len()) * READ_SIZE).clamp(READ_SIZE, MAX_READ)
            }
            FramingKind::Line => (room / (self.prefix.len() + 1)).clamp(1, MAX_READ),
        }
    }

    /// Answers every complete message in `input` by appending to `out`.
    pub fn answer(&self, partial: &mut Partial, input: &[u8], out: &mut Vec<u8>) -> Status {
        match self.kind {
            FramingKind::Chunk => {
                // One read syscall may take several chunks; each is answered exactly as if it had
                // been a read of its own, as the lesson's `recv(1024)` loop would have read it.
                for chunk in input.chunks(READ_SIZE) {
                    out.extend_from_slice(&self.prefix);
                    out.extend_from_slice(chunk);
                }
                Status::Incomplete
            }
            FramingKind::Line => self.answer_lines(partial, input, out),
        }
    }

    /// The peer will send no more: answers an unterminated last line as it is.
    pub fn finish(&self, partial: &mut Partial, out: &mut Vec<u8>) {
        if !partial.line.is_empty() {
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(&partial.line);
            partial.release();
        }
    }

    fn answer_lines(&self, partial: &mut Partial, input: &[u8], out: &mut Vec<u8>) -> Status {
        let mut rest = input;
        if !partial.line.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                if partial.line.len() + rest.len() > self.max_line {
                    return self.refuse(partial, out);
                }
                partial.line.extend_from_slice(rest);
                return Status::Incomplete;
            };
            let (head, tail) = rest.split_at(end + 1);
            if partial.line.len() + head.len() > self.max_line {
                return self.refuse(partial, out);
            }
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(&partial.line);
            out.extend_from_slice(head);
            partial.release();
            rest = tail;
        }
        // The common case: whole lines answered straight from the read buffer, no copy kept.
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(end + 1);
            if line.len() > self.max_line {
                return self.refuse(partial, out);
            }
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(line);
            rest = tail;
        }
        if rest.len() > self.max_line {
            return self.refuse(partial, out);
        }
        partial.line.extend_from_slice(rest);
        Status::Incomplete
    }

    fn refuse(&self, partial: &mut Partial, out: &mut Vec<u8>) -> Status {
        partial.line = Vec::new();
        out.extend_from_slice(&self.too_long);
        Status::Close
    }
}

impl Partial {
    fn release(&mut self) {
        if self.line.capacity() > KEEP_PARTIAL_CAPACITY {
            self.line = Vec::new();
        } else {
            self.line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &[u8] = b"You say that ";

    fn feed(framer: &Framer, pieces: &[&[u8]], eof: bool) -> (Vec<u8>, Status) {
        let mut partial = Partial::default();
        let mut out = Vec::new();
        for piece in pieces {
            if framer.answer(&mut partial, piece, &mut out) == Status::Close {
                return (out, Status::Close);
            }
        }
        if eof {
            framer.finish(&mut partial, &mut out);
        }
        (out, Status::Incomplete)
    }

    #[test]
    fn chunk_prefixes_each_read_verbatim() {
        let framer = Framer::new(FramingKind::Chunk, P, 8192);
        let (out, _) = feed(&framer, &[b"a\0\xff", b"You say that "], true);
        assert_eq!(out, b"You say that a\0\xffYou say that You say that ");
    }

    #[test]
    fn chunk_answers_a_large_read_in_1024_byte_chunks() {
        let framer = Framer::new(FramingKind::Chunk, b">", 8192);
        let input: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (out, _) = feed(&framer, &[&input], true);
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
    fn chunk_read_len_keeps_the_answers_near_the_room() {
        let framer = Framer::new(FramingKind::Chunk, P, 8192);
        for room in [0, 1000, 1037, 5000, 65536, 1 << 30] {
            let input = vec![b'x'; framer.read_len(room)];
            let (out, _) = feed(&framer, &[&input], false);
            let bound = room.max(READ_SIZE + P.len()) + READ_SIZE + P.len();
            assert!(
                out.len() <= bound,
                "room {room}: {} answer bytes, bound {bound}",
                out.len()
            );
        }
    }

    #[test]
    fn line_joins_pieces_and_answers_tail_at_eof() {
        let framer = Framer::new(FramingKind::Line, P, 8192);
        let (out, status) = feed(&framer, &[b"he", b"llo\nwor", b"ld\n", b"tail"], true);
        assert_eq!(status, Status::Incomplete);
        assert_eq!(
            out,
            b"You say that hello\nYou say that world\nYou say that tail"
        );
    }

    #[test]
    fn line_at_the_limit_passes_one_past_is_refused() {
        let framer = Framer::new(FramingKind::Line, b">", 4);
        let (out, status) = feed(&framer, &[b"abc\n", b"ab", b"c\n"], false);
        assert_eq!(
            (out.as_slice(), status),
            (&b">abc\n>abc\n"[..], Status::Incomplete)
        );

        let (out, status) = feed(&framer, &[b"ok\nabcd", b"\n"], false);
        assert_eq!(status, Status::Close);
        assert_eq!(out, b">ok\nERR line too long (max 4 bytes)\n");

        let (_, status) = feed(&framer, &[b"abcde"], false);
        assert_eq!(
            status,
            Status::Close,
            "a tail already past the limit is refused at once"
        );
    }

    #[test]
    fn read_len_bounds_the_answers_to_the_worst_read() {
        let framer = Framer::new(FramingKind::Line, P, 64);
        for room in [0, 1, 13, 14, 1000, 65536, 1 << 30] {
            let newlines = vec![b'\n'; framer.read_len(room)];
            let mut partial = Partial::default();
            let mut out = Vec::new();
            framer.answer(&mut partial, &[b'x'; 63], &mut out);
            framer.answer(&mut partial, &newlines, &mut out);
            let bound = room.max(P.len() + 1) + P.len() + 64;
            assert!(
                out.len() <= bound,
                "room {room}: {} answer bytes, bound {bound}",
                out.len()
            );
        }
    }

    proptest! {
        /// However TCP splits a stream, line framing answers the same bytes.
        #[test]
        fn line_answers_do_not_depend_on_splits(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let framer = Framer::new(FramingKind::Line, P, 64);
            let whole = feed(&framer, &[&data], true);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&data[start..cut]);
                start = cut;
            }
            pieces.push(&data[start..]);
            prop_assert_eq!(feed(&framer, &pieces, true), whole);
        }

        /// Without a limit hit, removing every prefix from the answers gives back the input.
        #[test]
        fn line_answers_carry_every_byte(lines in proptest::collection::vec("[a-z]{0,20}", 0..20)) {
            let framer = Framer::new(FramingKind::Line, b"", 64);
            let data = lines.join("\n");
            let (out, _) = feed(&framer, &[data.as_bytes()], true);
            prop_assert_eq!(out, data.into_bytes());
        }
    }
}
