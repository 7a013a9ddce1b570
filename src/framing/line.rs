//! Line echo: every `\n`-terminated line is a message, answered by the prefix and the line; an
//! unterminated last line is answered as it is when the peer half-closes.
//!
//! Whole lines are answered straight from the read buffer. A connection holds input only for a
//! line whose `\n` has not come yet (at most `--max-line` bytes) and, when a long prefix would
//! take its answers past the output cap, the rest of one read until the client catches up. It
//! must never hold more than that, and never answer a line differently however TCP splits it.

use super::{Answers, CloseReason, Next, Protocol, ProtocolCounts};
use crate::config::MAX_READ;

/// A held line whose buffer grew past this is released once answered, so one long line does
/// not pin its memory to the connection for good.
const KEEP_HELD_CAPACITY: usize = 4096;

/// The rules of line echo, shared by a loop's connections.
#[derive(Debug, Clone)]
pub struct Line {
    prefix: Box<[u8]>,
    max_line: usize,
    too_long: Box<[u8]>,
    counts: ProtocolCounts,
}

/// A line connection's input not answered yet. Empty, holding no heap memory, for a connection
/// that never split a line; otherwise the prefix followed by that input: the start of a line
/// whose `\n` has not come, and after a pause, the whole lines that did not fit under the output
/// cap. The prefix is stored in front so an unterminated last line is answered by handing this
/// buffer over, not by copying it.
#[derive(Debug, Default)]
pub struct LineSession {
    held: Vec<u8>,
}

/// How far [`Line::answer_lines`] got.
enum Progress {
    /// Every whole line was answered; this many bytes of input were.
    Done(usize),
    /// The output cap was reached with whole lines left; this many bytes were answered.
    Full(usize),
    /// A line is longer than `--max-line`.
    TooLong,
}

impl Line {
    pub fn new(prefix: &[u8], max_line: usize) -> Line {
        Line {
            prefix: prefix.into(),
            max_line,
            too_long: format!("ERR line too long (max {max_line} bytes)\n")
                .into_bytes()
                .into(),
            counts: ProtocolCounts::default(),
        }
    }

    /// Answers the whole lines at the start of `input`, until the output cap.
    fn answer_lines(&mut self, input: &[u8], answers: &mut Answers<'_>) -> Progress {
        let mut rest = input;
        let mut lines = 0;
        let progress = loop {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                break Progress::Done(input.len() - rest.len());
            };
            if answers.is_full() {
                break Progress::Full(input.len() - rest.len());
            }
            let (line, tail) = rest.split_at(end + 1);
            if line.len() > self.max_line {
                break Progress::TooLong;
            }
            answers.push(&self.prefix);
            answers.push(line);
            lines += 1;
            rest = tail;
        };
        self.counts.messages += lines;
        progress
    }

    /// Keeps `rest`, not answered yet, behind the prefix.
    fn hold(&self, held: &mut Vec<u8>, rest: &[u8]) {
        held.clear();
        held.extend_from_slice(&self.prefix);
        held.extend_from_slice(rest);
    }

    fn refuse(&self, session: &mut LineSession, answers: &mut Answers<'_>) -> Next {
        session.held = Vec::new();
        answers.push(&self.too_long);
        Next::Close
    }
}

/// Empties `held`, letting go of a buffer that one long line made large.
fn release(held: &mut Vec<u8>) {
    if held.capacity() > KEEP_HELD_CAPACITY {
        *held = Vec::new();
    } else {
        held.clear();
    }
}

impl Protocol for Line {
    type Session = LineSession;

    /// As much as the room allows: a long prefix may still take the answers past it, and then
    /// the rest of the read is held until the client catches up.
    fn read_len(&self, _: &LineSession, room: usize) -> usize {
        room.clamp(1, MAX_READ)
    }

    fn on_read(
        &mut self,
        session: &mut LineSession,
        input: &[u8],
        answers: &mut Answers<'_>,
    ) -> Next {
        let mut input = input;
        if !session.held.is_empty() {
            // Reads come only while nothing is held back by a pause, so what is held is the
            // start of one line.
            let started = session.held.len() - self.prefix.len();
            let Some(end) = memchr::memchr(b'\n', input) else {
                if started + input.len() > self.max_line {
                    return self.refuse(session, answers);
                }
                session.held.extend_from_slice(input);
                return Next::Continue;
            };
            if started + end + 1 > self.max_line {
                return self.refuse(session, answers);
            }
            answers.push(&session.held);
            answers.push(&input[..=end]);
            self.counts.message();
            release(&mut session.held);
            input = &input[end + 1..];
        }
        match self.answer_lines(input, answers) {
            Progress::TooLong => self.refuse(session, answers),
            Progress::Full(answered) => {
                self.hold(&mut session.held, &input[answered..]);
                Next::Pause
            }
            Progress::Done(answered) => {
                let rest = &input[answered..];
                if rest.len() > self.max_line {
                    return self.refuse(session, answers);
                }
                if !rest.is_empty() {
                    self.hold(&mut session.held, rest);
                }
                Next::Continue
            }
        }
    }

    fn on_writable(&mut self, session: &mut LineSession, answers: &mut Answers<'_>) -> Next {
        if session.held.is_empty() {
            return Next::Continue;
        }
        let skip = self.prefix.len();
        let (answered, next) = match self.answer_lines(&session.held[skip..], answers) {
            Progress::TooLong => return self.refuse(session, answers),
            Progress::Full(answered) => (answered, Next::Pause),
            Progress::Done(answered) => {
                if session.held.len() - skip - answered > self.max_line {
                    return self.refuse(session, answers);
                }
                (answered, Next::Continue)
            }
        };
        let held = &mut session.held;
        if held.len() == skip + answered {
            release(held);
        } else {
            held.copy_within(skip + answered.., skip);
            held.truncate(held.len() - answered);
        }
        next
    }

    fn on_eof(&mut self, session: &mut LineSession, answers: &mut Answers<'_>) {
        if !session.held.is_empty() {
            answers.push_owned(&mut session.held);
            self.counts.message();
            release(&mut session.held);
        }
    }

    /// No partial line held (nor whole lines held back by a pause).
    fn at_boundary(&self, session: &LineSession) -> bool {
        session.held.is_empty()
    }

    fn counts(&self) -> &ProtocolCounts {
        &self.counts
    }

    /// The only line this protocol refuses is one too long.
    fn close_reason(&self, _: &LineSession) -> CloseReason {
        CloseReason::LineTooLong
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testing::feed;
    use proptest::prelude::*;
    use std::time::Instant;

    const P: &[u8] = b"You say that ";

    #[test]
    fn joins_pieces_and_answers_the_tail_at_eof() {
        let mut line = Line::new(P, 8192);
        let (out, next) = feed(&mut line, &[b"he", b"llo\nwor", b"ld\n", b"tail"], true);
        assert_eq!(next, Next::Continue);
        assert_eq!(
            out,
            b"You say that hello\nYou say that world\nYou say that tail"
        );
    }

    /// Every answered line is a message, however it was split, the tail at EOF included.
    #[test]
    fn counts_a_message_per_answered_line() {
        let mut line = Line::new(P, 8192);
        feed(&mut line, &[b"a\nb", b"c\nd\ne\n", b"tail"], true);
        assert_eq!(line.counts().messages, 5);
    }

    #[test]
    fn a_line_at_the_limit_passes_one_past_is_refused() {
        let mut line = Line::new(b">", 4);
        let (out, next) = feed(&mut line, &[b"abc\n", b"ab", b"c\n"], false);
        assert_eq!(
            (out.as_slice(), next),
            (&b">abc\n>abc\n"[..], Next::Continue)
        );

        let (out, next) = feed(&mut line, &[b"ok\nabcd", b"\n"], false);
        assert_eq!(next, Next::Close);
        assert_eq!(out, b">ok\nERR line too long (max 4 bytes)\n");

        let (_, next) = feed(&mut line, &[b"abcde"], false);
        assert_eq!(
            next,
            Next::Close,
            "a tail already past the limit is refused at once"
        );
    }

    /// Between lines only when nothing is held: not while a line waits for its `\n`, nor while
    /// whole lines wait for room after a pause.
    #[test]
    fn at_a_boundary_only_when_no_line_is_held() {
        let mut line = Line::new(P, 8192);
        let mut session = LineSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        assert!(line.at_boundary(&session));
        let mut read = |line: &mut Line, session: &mut LineSession, input: &[u8], room| {
            line.on_read(session, input, &mut Answers::new(&mut out, room, now))
        };
        read(&mut line, &mut session, b"one\ntw", usize::MAX);
        assert!(!line.at_boundary(&session), "half a line held");
        read(&mut line, &mut session, b"o\n", usize::MAX);
        assert!(line.at_boundary(&session));
        assert_eq!(read(&mut line, &mut session, b"a\nb\nc\n", 1), Next::Pause);
        assert!(!line.at_boundary(&session), "whole lines held by a pause");
    }

    #[test]
    fn the_unterminated_tail_is_handed_over_without_a_copy() {
        let mut line = Line::new(P, 1 << 20);
        let mut session = LineSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let tail = vec![b'x'; 100_000];
        line.on_read(
            &mut session,
            &tail,
            &mut Answers::new(&mut out, 1 << 20, now),
        );
        let held_at = session.held.as_ptr();
        line.on_eof(&mut session, &mut Answers::new(&mut out, 1 << 20, now));
        assert_eq!(
            out.as_ptr(),
            held_at,
            "the held buffer itself became the answer"
        );
        assert_eq!(out, [P, &tail[..]].concat());
        assert_eq!(session.held.capacity(), 0);
    }

    /// A long prefix makes the answers many times the input: the lines past the room are held
    /// and answered by `on_writable` once there is room again, never more than about the room
    /// at a time.
    #[test]
    fn answers_past_the_room_wait_for_room() {
        let prefix = vec![b'p'; 4096];
        let mut line = Line::new(&prefix, 8192);
        let mut session = LineSession::default();
        let now = Instant::now();
        let room = 64 * 1024;
        let input = b"a\n".repeat(1000);
        let mut answered = Vec::new();
        let mut out = Vec::new();
        let mut next = line.on_read(&mut session, &input, &mut Answers::new(&mut out, room, now));
        let mut turns = 0;
        loop {
            assert!(
                out.len() <= room + prefix.len() + 2,
                "{} bytes in one turn",
                out.len()
            );
            answered.append(&mut out);
            if next == Next::Continue {
                break;
            }
            assert_eq!(next, Next::Pause);
            turns += 1;
            next = line.on_writable(&mut session, &mut Answers::new(&mut out, room, now));
        }
        assert!(turns > 10, "{turns} pauses");
        let expected: Vec<u8> = (0..1000)
            .flat_map(|_| [&prefix[..], b"a\n"].concat())
            .collect();
        assert_eq!(answered, expected);
        assert_eq!(session.held.len(), 0);
    }

    #[test]
    fn read_len_follows_the_room() {
        let line = Line::new(&[b'p'; 4096], 64);
        let session = LineSession::default();
        assert_eq!(line.read_len(&session, 0), 1);
        assert_eq!(line.read_len(&session, 1000), 1000);
        assert_eq!(line.read_len(&session, 1 << 30), MAX_READ);
    }

    /// Feeds `pieces` with `room` per turn, answering held lines whenever the protocol pauses.
    fn feed_in_room(line: &mut Line, pieces: &[&[u8]], room: usize) -> (Vec<u8>, Next) {
        let mut session = LineSession::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in pieces {
            let mut next =
                line.on_read(&mut session, piece, &mut Answers::new(&mut out, room, now));
            while next == Next::Pause {
                next = line.on_writable(&mut session, &mut Answers::new(&mut out, room, now));
            }
            if next != Next::Continue {
                return (out, next);
            }
        }
        line.on_eof(&mut session, &mut Answers::new(&mut out, room, now));
        (out, Next::Continue)
    }

    proptest! {
        /// However TCP splits a stream, and however little room there is, line echo answers
        /// the same bytes.
        #[test]
        fn answers_do_not_depend_on_splits_or_room(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
            room in 1usize..200,
        ) {
            let mut line = Line::new(P, 64);
            let whole = feed(&mut line, &[&data], true);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&data[start..cut]);
                start = cut;
            }
            pieces.push(&data[start..]);
            prop_assert_eq!(feed_in_room(&mut line, &pieces, room), whole);
        }

        /// Without a limit hit, removing every prefix from the answers gives back the input.
        #[test]
        fn answers_carry_every_byte(lines in proptest::collection::vec("[a-z]{0,20}", 0..20)) {
            let data = lines.join("\n");
            let (out, _) = feed(&mut Line::new(b"", 64), &[data.as_bytes()], true);
            prop_assert_eq!(out, data.into_bytes());
        }
    }
}
