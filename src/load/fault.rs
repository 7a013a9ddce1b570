//! What a checker reports about an answer stream: the kinds of wrong answer, what feeding bytes
//! found, and the descriptions of wrong bytes.
//!
//! Shared by the echo checker (`check.rs`), HTTP's (`http.rs`) and WebSocket's (`ws.rs`), which
//! all import it and none of which it knows; it must never decide what is right, only say what
//! was found.

/// Received bytes quoted before a wrong byte in an error description.
const CONTEXT: usize = 24;

/// What kind of wrong answer was found, for the report's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A byte other than the one expected; in HTTP also a head that does not frame the expected
    /// body (a wrong Content-Length, no length at all, a malformed head or chunk); in WebSocket
    /// also a refused upgrade, a frame of the wrong type or length, or one the RFC forbids.
    Wrong,
    /// HTTP: a status other than `200 OK`, or than those `--query` asked for.
    BadStatus,
    /// HTTP: `Connection: close` in an answer, on a connection every request asked to keep,
    /// and that no `close` control in `--query` asked the server to close.
    ConnectionClose,
}

/// What feeding received bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Messages whose answer is now complete, oldest first.
    pub completed: usize,
    /// The first wrong answer, described; the bytes after it were not looked at.
    pub error: Option<(Fault, String)>,
    /// WebSocket: the `101` came, right: messages may be sent from now on.
    pub upgraded: bool,
    /// HTTP: the last answer completed said `Connection: close`, as `--query` asked: the server
    /// closes the connection next, and no other answer comes on it.
    pub closing: bool,
    /// WebSocket: the server sent a close frame, with this code (1005 for none); the bytes after
    /// it were not looked at, and the connection is done.
    pub closed: Option<u16>,
}

/// How many final HTTP answers came with each status code, in the order first seen. A run sees
/// one or a few; codes are three digits, so at most 900 entries, ever.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Statuses(Vec<(u16, u64)>);

impl Statuses {
    /// One more answer with status `code`.
    pub(crate) fn count(&mut self, code: u16) {
        self.add_n(code, 1);
    }

    fn add_n(&mut self, code: u16, n: u64) {
        match self.0.iter_mut().find(|(c, _)| *c == code) {
            Some((_, count)) => *count += n,
            None => self.0.push((code, n)),
        }
    }

    /// Adds another's counts to these.
    pub(crate) fn add(&mut self, other: &Statuses) {
        for &(code, n) in &other.0 {
            self.add_n(code, n);
        }
    }

    /// The counts by status, lowest first.
    pub(crate) fn by_code(&self) -> std::collections::BTreeMap<u16, u64> {
        self.0.iter().copied().collect()
    }
}

/// The error for `data[i]`, answer byte `received` of connection `conn`, arriving while no
/// message awaits an answer.
pub(super) fn unasked(conn: u64, received: u64, data: &[u8], i: usize) -> (Fault, String) {
    let what = format!(
        "conn {conn}: answer byte {received} arrived with no message awaiting an answer: got {} after \"{}\"",
        quote(data[i]),
        context(data, i),
    );
    (Fault::Wrong, what)
}

/// One byte, quoted and escaped.
pub(super) fn quote(b: u8) -> String {
    format!("'{}'", std::ascii::escape_default(b))
}

/// Up to `CONTEXT` received bytes ending with `data[i]`, escaped.
pub(super) fn context(data: &[u8], i: usize) -> String {
    escape(&data[i.saturating_sub(CONTEXT - 1)..=i])
}

/// Bytes as printable ASCII, escaped like a Rust byte string.
pub(crate) fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}
