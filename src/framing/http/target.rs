//! The request target (RFC 9112 §3.2): its form (origin, absolute, `*`), the host an
//! absolute-form one names, and the path a request without a body is answered with,
//! percent-decoded.
//!
//! Pure functions over the target httparse read; no allocation. It must never pass a bad
//! escape through (the client's bug would be hidden), and never scan a plain path twice: this
//! runs on every request.

use crate::framing::Answers;

/// Why a target is answered 400: the caller's reason line.
type Bad = &'static str;

/// The authority of an absolute-form target (`http://host:port/...`), which is the request's
/// host in place of its Host field; `None` for the other forms.
#[inline(always)]
pub(super) fn authority(target: &str) -> Option<&[u8]> {
    if target.as_bytes().first() == Some(&b'/') {
        return None;
    }
    strip_scheme(target).map(|rest| {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        &rest.as_bytes()[..end]
    })
}

/// What a request without a body said: its target's path after the leading `/`, query dropped,
/// and its length percent-decoded (a `%` not followed by two hex digits is refused: the
/// `percent-encoding` crate passes such bytes through, which hides a client's bug); and whether
/// a query follows (where test-backend controls are asked, issue 17).
///
/// One pass finds the first `?` or `%`; for a path with no escape, the common case, that is all
/// there is to know, so the path is not scanned again, here or when it is written.
#[inline(always)]
pub(super) fn echo_path(target: &str) -> Result<(&[u8], usize, bool), Bad> {
    let path = match target.strip_prefix('/') {
        Some(path) => path.as_bytes(),
        None => other_form_path(target)?,
    };
    match memchr::memchr2(b'?', b'%', path) {
        None => Ok((path, path.len(), false)),
        Some(at) if path[at] == b'?' => Ok((&path[..at], at, true)),
        Some(at) => escaped_path(path, at),
    }
}

/// The path of a target that does not start with `/`: `*` (OPTIONS) has none; an absolute-form
/// one (RFC 9112 §3.2.2), which servers must accept, has the part after its authority.
#[cold]
fn other_form_path(target: &str) -> Result<&[u8], Bad> {
    if target == "*" {
        Ok(b"")
    } else if let Some(rest) = strip_scheme(target) {
        Ok(rest
            .find('/')
            .map_or("", |slash| &rest[slash + 1..])
            .as_bytes())
    } else {
        Err("the request target must start with /")
    }
}

/// `echo_path` for a path with a `%` at `first`, before any `?`: the path up to its query,
/// every escape checked, and its decoded length.
#[cold]
#[inline(never)]
fn escaped_path(path: &[u8], first: usize) -> Result<(&[u8], usize, bool), Bad> {
    let end = memchr::memchr(b'?', &path[first..]).map_or(path.len(), |at| first + at);
    let query = end < path.len();
    let path = &path[..end];
    let mut escapes = 0;
    // An escape's two digits are hex, never `%`, so every `%` found starts an escape.
    for at in memchr::memchr_iter(b'%', &path[first..]) {
        let pair = path.get(first + at + 1..first + at + 3);
        if !pair.is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit)) {
            return Err("bad percent-encoding in the request target");
        }
        escapes += 1;
    }
    Ok((path, path.len() - 2 * escapes, query))
}

fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

/// Writes `path` percent-decoded (already checked by `echo_path`), in runs between escapes;
/// `decoded_len` long, which says whether it has any.
#[inline(always)]
pub(super) fn push_decoded(answers: &mut Answers<'_>, path: &[u8], decoded_len: usize) {
    if decoded_len == path.len() {
        answers.push(path);
    } else {
        push_unescaped(answers, path);
    }
}

#[cold]
#[inline(never)]
fn push_unescaped(answers: &mut Answers<'_>, path: &[u8]) {
    let mut rest = path;
    while let Some(at) = memchr::memchr(b'%', rest) {
        answers.push(&rest[..at]);
        let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        answers.push(&[hex(rest[at + 1]) << 4 | hex(rest[at + 2])]);
        rest = &rest[at + 3..];
    }
    answers.push(rest);
}
