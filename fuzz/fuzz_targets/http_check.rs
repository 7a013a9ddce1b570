//! The plan and checks of the HTTP fuzz targets, shared by `http_stream` and `http_over_tls`
//! (which takes each read through the TLS transport first). HTTP mode is driven through the
//! `Protocol` interface the way the event loop drives it: reads cut and rooms chosen by the fuzzer, `on_writable` after every pause (and now and then
//! for a slow reader), `on_deadline` once the clock passes `deadline()`, `on_eof` at the end.
//!
//! Checked on every run: no panic; a call's answers stay within its room plus one answer plus
//! the input it could use; `Pause` only with the room spent; a pause always ends; an error
//! response is the last answer of a call that returns `Close`, and nothing is answered after
//! `Close` (not even by a deadline the loop still holds). And differentially: the answers are
//! the same whether the bytes come whole, cut, or cut under tight rooms, up to what may
//! legitimately differ (the `Date`, an interim `100 Continue`, and where chunks of a chunked
//! echo are cut).
//!
//! Input: a 13-byte header (below, `Plan`) then the bytes the client sends.
//!
//! Known findings, each with its input in `fuzz/regressions/http_stream/`, fail the run until
//! they are fixed; to fuzz past one, name it in `SAYTHAT_FUZZ_TOLERATE` (comma-separated):
//! - `late-deadline` (fixed): a head that arrived in several reads kept its `--header-timeout`
//!   after the request was answered with `Close`, so the loop's timer answered a 408 after the
//!   last word.
//!
//! - `split-chunked` (fixed, issue 20): a chunked body that broke a rule after a read was
//!   refused whole but cut short when split, since the answer to its first chunks had gone out.
//!   An answer now waits for its whole body, so however the body is split, the answer is the
//!   same: no body streams, and nothing forgives a difference there.
//!
//! By design, not findings: a head that arrives in several reads is parsed again only once an
//! empty line may have arrived (so a head dribbled a byte at a time costs one parse, not one per
//! byte). A malformed head that the whole run refuses at once (400, 505, or 501 for a method
//! longer than any known) is then refused by a cut run at its end, at `--max-header`
//! (414/431/501) or not at all before EOF; `lazy_head` accepts exactly that difference. Empty
//! lines before a request line are dropped as they come and counted (more than 8 are 400), so a
//! cut run may not have counted the last of them by EOF: the same difference.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use memchr::memmem;
use saythat::framing::{Answers, Http, HttpLimits, Next, Protocol};

/// Bytes of the input that steer the run rather than feed the protocol.
const HEADER: usize = 13;
/// `--max-header` values: the CLI's least, a few small ones that long heads reach, the default.
const MAX_HEADERS: [usize; 6] = [64, 80, 128, 256, 1024, 8192];
/// `--max-body` values: none, tiny, around a request, the default, the CLI's largest.
const MAX_BODIES: [u64; 7] = [0, 1, 7, 64, 1024, 1 << 20, 1 << 40];
const PREFIXES: [&[u8]; 4] = [b"", b"> ", b"You say that ", b"x"];
/// A room without limit, or a read of all that is left.
const UNLIMITED: usize = usize::MAX;
/// What one answer may add past the room, beside the input bytes it echoes (a body, or a path,
/// which comes from the head): a `100 Continue`, the longest status line and header fields with
/// an error's reason (~330 bytes), the framing of a chunk begun in an earlier call; and (added
/// where used) the prefix twice, as a chunked answer's first chunk and as its own.
const ANSWER_SLACK: usize = 512;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const DATE_LEN: usize = 29;

/// How a run is steered, from the input's header:
/// - 0: `--max-header`; 1: `--max-body`; 2: prefix (low 2 bits), `--header-timeout` (high bits);
/// - 3..7: read lengths, cycled (0: all that is left, 1..=200 as is, above: (n - 200) × 256);
/// - 7..11: rooms, cycled (1 + n², 255: unlimited);
/// - 11: bit `step % 8`: the clock passes the deadline after that read;
/// - 12: bit `step % 8`: the loop calls `on_writable` after that read, as for a slow reader.
struct Plan<'a> {
    limits: HttpLimits,
    prefix: &'static [u8],
    reads: &'a [u8],
    rooms: &'a [u8],
    deadlines: u8,
    writables: u8,
    stream: &'a [u8],
}

impl<'a> Plan<'a> {
    fn parse(data: &'a [u8]) -> Option<Plan<'a>> {
        if data.len() < HEADER {
            return None;
        }
        Some(Plan {
            limits: HttpLimits::new(
                MAX_HEADERS[usize::from(data[0]) % MAX_HEADERS.len()],
                MAX_BODIES[usize::from(data[1]) % MAX_BODIES.len()],
                Duration::from_secs(1 + u64::from(data[2] >> 2) % 10),
            ),
            prefix: PREFIXES[usize::from(data[2] & 3)],
            reads: &data[3..7],
            rooms: &data[7..11],
            deadlines: data[11],
            writables: data[12],
            stream: &data[HEADER..],
        })
    }

    fn read_len(&self, step: usize) -> usize {
        match self.reads[step % self.reads.len()] {
            0 => UNLIMITED,
            n @ 1..=200 => usize::from(n),
            n => (usize::from(n) - 200) * 256,
        }
    }

    fn room(&self, step: usize) -> usize {
        match self.rooms[step % self.rooms.len()] {
            255 => UNLIMITED,
            n => 1 + usize::from(n) * usize::from(n),
        }
    }

    /// What one call may answer past its room, beside the input it uses.
    fn slack(&self) -> usize {
        ANSWER_SLACK + 2 * self.prefix.len()
    }
}

/// How the client's bytes reach the protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// One read, unlimited room.
    Whole,
    /// The plan's reads, unlimited room.
    Split,
    /// The plan's reads, rooms, deadlines and slow-reader calls.
    Tight,
}

/// What a run answered.
struct Run {
    answers: Vec<u8>,
    /// The run ended in a 408 from `on_deadline` (left out of `answers`): its answers are a
    /// prefix of the others'.
    timed_out: bool,
}

/// One connection, driven as `event_loop.rs` drives it.
struct Driver<'p> {
    plan: &'p Plan<'p>,
    http: Http,
    session: <Http as Protocol>::Session,
    now: Instant,
    /// The wall clock when the run began, less a second: a genuine `Date` is no older.
    wall_start: SystemTime,
    answers: Vec<u8>,
}

impl<'p> Driver<'p> {
    fn new(plan: &'p Plan<'p>) -> Driver<'p> {
        Driver {
            plan,
            http: Http::new(plan.prefix, plan.limits.clone()),
            session: Default::default(),
            now: Instant::now(),
            wall_start: SystemTime::now() - Duration::from_secs(1),
            answers: Vec::new(),
        }
    }

    /// Makes one call with `room` and checks what every call must keep to; returns what the
    /// call returned and how many bytes it answered.
    fn call(
        &mut self,
        room: usize,
        f: impl FnOnce(&mut Http, &mut <Http as Protocol>::Session, &mut Answers<'_>) -> Next,
    ) -> (Next, usize) {
        let mut out = Vec::new();
        let next = f(
            &mut self.http,
            &mut self.session,
            &mut Answers::new(&mut out, room, self.now),
        );
        if next == Next::Pause {
            assert!(
                out.len() >= room,
                "Pause with {} of {room} room bytes used",
                out.len()
            );
        }
        if let Some(late) = response_starts(&out, self.wall_start)
            .filter(|&at| at >= room)
            .nth(1)
        {
            panic!(
                "a second response started at byte {late}, past the room of {room}: only one \
                 answer may overshoot the cap"
            );
        }
        if let Some(end) = refusal_end(&out, self.wall_start) {
            assert_eq!(end, out.len(), "answered after an error response");
            assert_eq!(next, Next::Close, "an error response without Close");
        }
        self.answers.extend_from_slice(&out);
        (next, out.len())
    }

    /// After `Close`: the loop keeps the connection while the answers drain and it lingers, and
    /// still calls `on_deadline` if the protocol keeps a deadline. It must answer nothing.
    fn after_close(&mut self) {
        if let Some(at) = self.http.deadline(&self.session) {
            self.now = self.now.max(at);
            let before = self.answers.len();
            let (_, answered) = self.call(UNLIMITED, |http, session, answers| {
                http.on_deadline(session, answers, None)
            });
            // Tolerated, it must not also count as a difference between the runs.
            self.answers.truncate(before);
            assert!(
                answered == 0 || tolerated("late-deadline"),
                "on_deadline answered {answered} bytes after Close (a deadline outlived the connection's last word)"
            );
        }
    }

    fn run(mut self, schedule: Schedule, carry: &mut dyn FnMut(&[u8]) -> Vec<u8>) -> Run {
        let plan = self.plan;
        let mut rest = plan.stream;
        let mut step = 0;
        while !rest.is_empty() {
            let tight = schedule == Schedule::Tight;
            let room = if tight { plan.room(step) } else { UNLIMITED };
            let mut len = match schedule {
                Schedule::Whole => UNLIMITED,
                Schedule::Split | Schedule::Tight => plan.read_len(step),
            };
            if tight {
                // The loop reads at most what the protocol asks for.
                len = len.min(self.http.read_len(&self.session, room));
            }
            let (piece, after) = rest.split_at(len.min(rest.len()));
            rest = after;
            let carried = carry(piece);
            let piece = carried.as_slice();

            // A read, then the pauses it causes, as one cycle: what the cycle may answer is
            // bounded by its rooms, an answer's slack per call, and the input it could use (the
            // piece, and a held head of at most max_header).
            let mut allowed = piece.len() + plan.limits.max_header;
            let mut answered = 0;
            let (mut next, n) = self.call(room, |http, session, answers| {
                http.on_read(session, piece, answers)
            });
            allowed = allowed.saturating_add(room).saturating_add(plan.slack());
            answered += n;
            let writable_anyway = tight && plan.writables & (1 << (step % 8)) != 0;
            if next == Next::Continue && writable_anyway {
                // The loop paused reading for a client that reads too slowly.
                next = Next::Pause;
            }
            let mut pauses = 0;
            while next == Next::Pause {
                // Each call with fresh room starts at least one held request or hands out at
                // least a byte of a held answer, so a pause ends within as many calls as there
                // are held bytes and bytes answered.
                pauses += 1;
                assert!(
                    pauses <= piece.len() + plan.limits.max_header + answered + 2,
                    "a pause that never ends"
                );
                let room = if tight {
                    plan.room(step + pauses)
                } else {
                    UNLIMITED
                };
                let (n_next, n) = self.call(room, |http, session, answers| {
                    http.on_writable(session, answers)
                });
                next = n_next;
                allowed = allowed.saturating_add(room).saturating_add(plan.slack());
                answered += n;
            }
            assert!(
                answered <= allowed,
                "a read of {} bytes answered {answered} bytes, more than the {allowed} its rooms allow",
                piece.len()
            );
            if matches!(next, Next::Close | Next::CloseNow) {
                self.after_close();
                return Run {
                    answers: self.answers,
                    timed_out: false,
                };
            }

            // Time passes; with the plan's bit, past the deadline the protocol keeps.
            self.now += Duration::from_millis(10);
            if tight && plan.deadlines & (1 << (step % 8)) != 0 {
                if let Some(at) = self.http.deadline(&self.session) {
                    self.now = self.now.max(at);
                    let before = self.answers.len();
                    let (next, answered) = self.call(UNLIMITED, |http, session, answers| {
                        http.on_deadline(session, answers, None)
                    });
                    assert!(
                        answered <= plan.slack(),
                        "a deadline answered {answered} bytes"
                    );
                    if matches!(next, Next::Close | Next::CloseNow) {
                        let timed_out = answered > 0;
                        self.after_close();
                        // The 408 is this run's own: the others were never that slow.
                        self.answers.truncate(before);
                        return Run {
                            answers: self.answers,
                            timed_out,
                        };
                    }
                }
            }
            step += 1;
        }
        self.call(UNLIMITED, |http, session, answers| {
            http.on_eof(session, answers);
            Next::Continue
        });
        Run {
            answers: self.answers,
            timed_out: false,
        }
    }
}

/// A known finding named in `SAYTHAT_FUZZ_TOLERATE` is not reported.
fn tolerated(finding: &str) -> bool {
    static TOLERATE: OnceLock<String> = OnceLock::new();
    TOLERATE
        .get_or_init(|| std::env::var("SAYTHAT_FUZZ_TOLERATE").unwrap_or_default())
        .split(',')
        .any(|name| name.trim() == finding)
}

/// Where the error response starting somewhere in `out` ends, if there is one: a status line
/// of 4xx or 5xx, our `Server`, a `Date` of this run (so echoed body bytes that merely look like
/// one are not taken for it), `Content-Length` and `Connection: close`, then its one-line body,
/// or nothing at all when it answers a HEAD (RFC 9110 §9.3.2: the head alone, its
/// `Content-Length` still the line's).
fn refusal_end(out: &[u8], wall_start: SystemTime) -> Option<usize> {
    memmem::find_iter(out, b"HTTP/1.1 ").find_map(|at| refusal_at(out, at, wall_start))
}

/// Where the error response that ends `out` starts, and its status.
fn last_refusal(out: &[u8], wall_start: SystemTime) -> Option<(usize, &[u8])> {
    memmem::find_iter(out, b"HTTP/1.1 ")
        .find(|&at| refusal_at(out, at, wall_start) == Some(out.len()))
        .map(|at| (at, &out[at + 9..at + 12]))
}

/// The by-design difference for heads parsed lazily: the whole run's last answer refuses a malformed head that the
/// other run never parsed (it answered nothing more, or 414/431 once the head passed
/// `--max-header`), and before that they agree.
fn lazy_head(whole: &[u8], other: &[u8], wall_start: SystemTime) -> bool {
    let Some((at, b"400" | b"431" | b"501" | b"505")) = last_refusal(whole, wall_start) else {
        return false;
    };
    let other_end = match last_refusal(other, wall_start) {
        Some((end, b"414" | b"431" | b"501")) => end,
        _ => other.len(),
    };
    same_answers(
        &normalize(&whole[..at]),
        &normalize(&other[..other_end]),
        false,
    )
    .is_ok()
}

/// Where our responses start in `out`: a status line, then our `Server` and a `Date` of this
/// run (so echoed body bytes that merely look like a response are not taken for one).
fn response_starts(out: &[u8], wall_start: SystemTime) -> impl Iterator<Item = usize> + '_ {
    memmem::find_iter(out, b"HTTP/1.1 ").filter(move |&at| head_at(out, at, wall_start).is_some())
}

/// The response head at `at`: its status and where its `Date` ends.
fn head_at(out: &[u8], at: usize, wall_start: SystemTime) -> Option<(&[u8], usize)> {
    let rest = out[at..].strip_prefix(b"HTTP/1.1 ")?;
    let status = rest.get(..4)?;
    if !status[..3].iter().all(u8::is_ascii_digit) || status[3] != b' ' {
        return None;
    }
    let line_end = memmem::find(rest, b"\r\n")?;
    let rest = rest[line_end..].strip_prefix(b"\r\nServer: saythat/")?;
    let date_at = memmem::find(rest.get(..32)?, b"\r\nDate: ")? + b"\r\nDate: ".len();
    let date = std::str::from_utf8(rest.get(date_at..date_at + DATE_LEN)?).ok()?;
    let date = httpdate::parse_http_date(date).ok()?;
    if date < wall_start || date > SystemTime::now() + Duration::from_secs(1) {
        return None;
    }
    Some((&status[..3], out.len() - rest.len() + date_at + DATE_LEN))
}

fn refusal_at(out: &[u8], at: usize, wall_start: SystemTime) -> Option<usize> {
    let (status, date_end) = head_at(out, at, wall_start)?;
    if !matches!(status[0], b'4' | b'5') {
        return None;
    }
    let rest = out[date_end..].strip_prefix(
        b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ".as_slice(),
    )?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let length: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b"\r\nConnection: close\r\n\r\n".as_slice())?;
    // An error answer is written whole in one call: nothing after its head is a HEAD's.
    if rest.is_empty() {
        return Some(out.len());
    }
    if rest.len() < length {
        return None;
    }
    Some(out.len() - rest.len() + length)
}

/// The answers with what may legitimately differ between runs made equal: every `Date`
/// masked, every interim `100 Continue` dropped (it is sent only when a head arrives without
/// its body).
fn normalize(answers: &[u8]) -> Vec<u8> {
    let mut masked = answers.to_vec();
    let mut from = 0;
    while let Some(at) = memmem::find(&masked[from..], b"Date: ") {
        let start = from + at + b"Date: ".len();
        let end = (start + DATE_LEN).min(masked.len());
        masked[start..end].fill(b'#');
        from = end;
    }
    let mut out = Vec::with_capacity(masked.len());
    let mut rest = masked.as_slice();
    while let Some(at) = memmem::find(rest, CONTINUE) {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at + CONTINUE.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Compares two normalized transcripts, where the chunks of a chunked echo may be cut
/// differently (each read's data goes out as its own chunk). They are walked in step; where they
/// part, both must be at a chunk-size line, and from there the chunk data is compared byte for
/// byte whatever the chunk sizes, until both end a chunk at the same byte. `other_may_stop`:
/// `other` may be a prefix of `whole`.
fn same_answers(whole: &[u8], other: &[u8], other_may_stop: bool) -> Result<(), String> {
    let (mut i, mut j) = (0, 0);
    // Chunk data bytes left on each side while out of step; both 0 when in step.
    let (mut left_w, mut left_o) = (0usize, 0usize);
    loop {
        if left_w == 0 && left_o == 0 {
            let common = whole[i..]
                .iter()
                .zip(&other[j..])
                .take_while(|(a, b)| a == b)
                .count();
            i += common;
            j += common;
            if j == other.len() && (i == whole.len() || other_may_stop) {
                return Ok(());
            }
            // Back to the start of the chunk-size line they part in (the bytes before are the
            // same on both sides).
            let back = whole[..i]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            let start = i - back;
            if start == 0 || whole[start - 1] != b'\n' {
                return Err(format!("they part at byte {i} of the whole run's answers"));
            }
            let (size_w, after_w) = chunk_line(whole, start)
                .ok_or_else(|| format!("the whole run has no chunk line at byte {start}"))?;
            let (size_o, after_o) = chunk_line(other, j - back)
                .ok_or_else(|| format!("the other run has no chunk line at byte {}", j - back))?;
            if size_w == 0 || size_o == 0 {
                return Err(format!("a chunked echo ends early near byte {start}"));
            }
            (i, j, left_w, left_o) = (after_w, after_o, size_w, size_o);
            continue;
        }
        // Out of step: a side whose chunk is done must go on with another.
        if left_w == 0 {
            (left_w, i) = next_chunk(whole, i).ok_or("the whole run's echo ends first")?;
        }
        if left_o == 0 {
            match next_chunk(other, j) {
                Some((left, at)) => (left_o, j) = (left, at),
                None if other_may_stop && j == other.len() => return Ok(()),
                None => return Err(format!("the other run's echo ends first, at byte {j}")),
            }
        }
        let n = left_w.min(left_o);
        let data_o = other.get(j..j + n);
        if other_may_stop && data_o.is_none() && whole[i..].starts_with(&other[j..]) {
            return Ok(());
        }
        if whole.get(i..i + n) != data_o {
            return Err(format!(
                "chunk data differs at byte {i} of the whole run's answers"
            ));
        }
        (i, j, left_w, left_o) = (i + n, j + n, left_w - n, left_o - n);
    }
}

/// A chunk-size line at `at`: its size and where its data starts.
fn chunk_line(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    let size =
        usize::from_str_radix(std::str::from_utf8(&bytes[at..at + digits]).ok()?, 16).ok()?;
    bytes[at + digits..]
        .starts_with(b"\r\n")
        .then_some((size, at + digits + 2))
}

/// The CRLF ending a chunk's data at `at`, then the next chunk's size line, of a non-zero size.
fn next_chunk(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if !bytes.get(at..)?.starts_with(b"\r\n") {
        return None;
    }
    chunk_line(bytes, at + 2).filter(|&(size, _)| size > 0)
}

/// Runs the input's plan whole, split and under tight rooms, each read's bytes taken to the
/// protocol by `carry` (the identity, or a transport that must hand them out unchanged), checks
/// every invariant above, and returns the three runs' answers, normalized.
pub fn check(data: &[u8], carry: &mut dyn FnMut(&[u8]) -> Vec<u8>) -> Option<[Vec<u8>; 3]> {
    let plan = Plan::parse(data)?;
    let wall_start = SystemTime::now() - Duration::from_secs(1);
    let whole = Driver::new(&plan).run(Schedule::Whole, carry);
    let split = Driver::new(&plan).run(Schedule::Split, carry);
    let tight = Driver::new(&plan).run(Schedule::Tight, carry);
    let whole_n = normalize(&whole.answers);
    for (name, run) in [("split", &split), ("tight", &tight)] {
        if let Err(why) = same_answers(&whole_n, &normalize(&run.answers), run.timed_out) {
            if lazy_head(&whole.answers, &run.answers, wall_start) {
                continue;
            }
            panic!(
                "the {name} run answered differently from the whole run: {why}\n\
                 whole: {:?}\n{name}: {:?}",
                String::from_utf8_lossy(&whole.answers),
                String::from_utf8_lossy(&run.answers)
            );
        }
    }
    Some([
        whole_n,
        normalize(&split.answers),
        normalize(&tight.answers),
    ])
}
