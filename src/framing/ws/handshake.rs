//! The opening handshake of RFC 6455 §4.2, server side: whether a parsed HTTP request asks to
//! upgrade to a WebSocket, and either the `Sec-WebSocket-Accept` value of the `101` or the
//! refusal (status and one-line reason) the HTTP protocol answers instead.
//!
//! Pure: it reads the request's fields as httparse gives them and writes into caller-owned
//! bytes; it never allocates, never does I/O, and never offers an extension
//! (permessage-deflate is declined by leaving `Sec-WebSocket-Extensions` out of the `101`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use httparse::Header;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version there is (RFC 6455 §4.1); a `426` names it.
pub const VERSION: &str = "13";

/// Length of a valid `Sec-WebSocket-Key`: base64 of 16 bytes, with its padding.
const KEY_LEN: usize = 24;

/// The `Sec-WebSocket-Accept` value: base64 of a SHA-1, always 28 ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptKey([u8; 28]);

impl AcceptKey {
    /// The value as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text (it is base64, so ASCII).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Why an upgrade request is refused, and how: the HTTP status and a one-line reason for the
/// body. A `426` must also carry `Sec-WebSocket-Version: 13` (see [`Refusal::upgrade_required`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

impl Refusal {
    fn bad(reason: &'static str) -> Refusal {
        Refusal {
            status: 400,
            reason,
        }
    }

    /// A `426 Upgrade Required`: the answer must name the version this server speaks in a
    /// `Sec-WebSocket-Version: 13` header (RFC 6455 §4.4).
    pub fn upgrade_required(&self) -> bool {
        self.status == 426
    }
}

/// Whether a request asks for a WebSocket at all (`Upgrade` lists `websocket`): such a request
/// is answered by [`accept`], a `101` or a refusal, and never as a plain HTTP request.
pub fn is_upgrade(headers: &[Header<'_>]) -> bool {
    values(headers, "upgrade").any(|v| has_token(v, b"websocket"))
}

/// Checks an upgrade request (RFC 6455 §4.2.1) given its method, its HTTP minor version (`1`
/// for HTTP/1.1) and its header fields: the accept value for the `101`, or the refusal.
pub fn accept(method: &str, minor: u8, headers: &[Header<'_>]) -> Result<AcceptKey, Refusal> {
    if method != "GET" {
        return Err(Refusal::bad("a WebSocket upgrade must be a GET"));
    }
    if minor < 1 {
        return Err(Refusal::bad("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !is_upgrade(headers) {
        return Err(Refusal::bad("Upgrade must list websocket"));
    }
    if !values(headers, "connection").any(|v| has_token(v, b"upgrade")) {
        return Err(Refusal::bad("Connection must list upgrade"));
    }
    match single(headers, "sec-websocket-version") {
        Single::None => return Err(Refusal::bad("Sec-WebSocket-Version is missing")),
        Single::Many => return Err(Refusal::bad("Sec-WebSocket-Version is given twice")),
        Single::One(v) if trim(v) == VERSION.as_bytes() => {}
        Single::One(_) => {
            return Err(Refusal {
                status: 426,
                reason: "only WebSocket version 13 is spoken",
            })
        }
    }
    let key = match single(headers, "sec-websocket-key") {
        Single::None => return Err(Refusal::bad("Sec-WebSocket-Key is missing")),
        Single::Many => return Err(Refusal::bad("Sec-WebSocket-Key is given twice")),
        Single::One(v) => trim(v),
    };
    // 24 characters decode to at most 18 bytes; a valid key is exactly 16.
    let mut raw = [0u8; 18];
    if key.len() != KEY_LEN || STANDARD.decode_slice(key, &mut raw) != Ok(16) {
        return Err(Refusal::bad(
            "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)",
        ));
    }
    Ok(accept_key(key))
}

/// `base64(SHA-1(key + GUID))`, the value that proves the server read the key (RFC 6455 §1.3).
pub fn accept_key(key: &[u8]) -> AcceptKey {
    let digest = Sha1::new().chain_update(key).chain_update(GUID).finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to 28: the slice is exactly large enough.
    let _ = STANDARD.encode_slice(digest, &mut out);
    AcceptKey(out)
}

/// The head of the `101 Switching Protocols` answer for `key`, with no extension: the bytes the
/// HTTP protocol writes before handing the connection to [`super::WebSocket`].
pub fn switching_protocols(key: &AcceptKey, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The values of every field named `name` (lowercase), in order.
fn values<'a>(headers: &'a [Header<'a>], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

enum Single<'a> {
    None,
    One(&'a [u8]),
    Many,
}

/// The value of a field that must appear at most once.
fn single<'a>(headers: &'a [Header<'a>], name: &'a str) -> Single<'a> {
    let mut found = values(headers, name);
    match (found.next(), found.next()) {
        (None, _) => Single::None,
        (Some(v), None) => Single::One(v),
        (Some(_), Some(_)) => Single::Many,
    }
}

/// Whether a comma-separated token list holds `token`, in any case.
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|item| trim(item).eq_ignore_ascii_case(token))
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn h<'a>(name: &'a str, value: &'a [u8]) -> Header<'a> {
        Header { name, value }
    }

    fn good() -> Vec<Header<'static>> {
        vec![
            h("Host", b"example.com"),
            h("Upgrade", b"websocket"),
            h("Connection", b"Upgrade"),
            h("Sec-WebSocket-Key", KEY),
            h("Sec-WebSocket-Version", b"13"),
        ]
    }

    fn with(name: &'static str, value: &'static [u8]) -> Vec<Header<'static>> {
        let mut headers: Vec<_> = good()
            .into_iter()
            .filter(|x| !x.name.eq_ignore_ascii_case(name))
            .collect();
        if !value.is_empty() {
            headers.push(h(name, value));
        }
        headers
    }

    /// RFC 6455 §1.3's example pair.
    #[test]
    fn the_rfc_example_key_gives_its_accept_value() {
        assert_eq!(accept_key(KEY).as_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            accept("GET", 1, &good()).map(|k| k.as_bytes().to_vec()),
            Ok(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_vec())
        );
    }

    #[test]
    fn the_101_names_no_extension() {
        let mut out = Vec::new();
        let headers = with("Sec-WebSocket-Extensions", b"permessage-deflate");
        switching_protocols(&accept("GET", 1, &headers).unwrap(), &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn token_lists_in_any_case_are_accepted() {
        let mut headers = with("Connection", b"keep-alive, UPGRADE");
        headers.retain(|x| x.name != "Upgrade");
        headers.push(h("upgrade", b"h2c , WebSocket"));
        assert!(is_upgrade(&headers));
        assert!(accept("GET", 1, &headers).is_ok());
        // Connection given as two fields.
        let mut headers = with("Connection", b"keep-alive");
        headers.push(h("connection", b"upgrade"));
        assert!(accept("GET", 1, &headers).is_ok());
    }

    fn refusal(result: Result<AcceptKey, Refusal>) -> (u16, &'static str) {
        let r = result.expect_err("refused");
        (r.status, r.reason)
    }

    #[test]
    fn each_missing_or_bad_field_is_a_400_with_its_reason() {
        let cases: [(Vec<Header<'static>>, &str); 8] = [
            (with("Upgrade", b""), "Upgrade must list websocket"),
            (
                with("Upgrade", b"websockets"),
                "Upgrade must list websocket",
            ),
            (
                with("Connection", b"keep-alive"),
                "Connection must list upgrade",
            ),
            (
                with("Sec-WebSocket-Version", b""),
                "Sec-WebSocket-Version is missing",
            ),
            (
                with("Sec-WebSocket-Key", b""),
                "Sec-WebSocket-Key is missing",
            ),
            (
                // 15 bytes.
                with("Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAA"),
                "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)",
            ),
            (
                with("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ!!"),
                "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)",
            ),
            (
                // 24 characters, but 17 bytes' worth.
                with("Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAAAAA="),
                "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)",
            ),
        ];
        for (headers, reason) in cases {
            assert_eq!(refusal(accept("GET", 1, &headers)), (400, reason));
        }
        assert_eq!(
            refusal(accept("POST", 1, &good())),
            (400, "a WebSocket upgrade must be a GET")
        );
        assert_eq!(
            refusal(accept("GET", 0, &good())),
            (400, "a WebSocket upgrade needs HTTP/1.1")
        );
        let mut twice = good();
        twice.push(h("Sec-WebSocket-Key", KEY));
        assert_eq!(
            refusal(accept("GET", 1, &twice)),
            (400, "Sec-WebSocket-Key is given twice")
        );
    }

    #[test]
    fn another_version_is_a_426() {
        for version in [&b"8"[..], b"14", b"13, 8"] {
            let r = accept("GET", 1, &with("Sec-WebSocket-Version", version)).unwrap_err();
            assert_eq!((r.status, r.upgrade_required()), (426, true));
        }
        assert!(!refusal_of(&with("Connection", b"close")).upgrade_required());
    }

    fn refusal_of(headers: &[Header<'_>]) -> Refusal {
        accept("GET", 1, headers).unwrap_err()
    }

    #[test]
    fn a_plain_request_is_no_upgrade() {
        assert!(!is_upgrade(&[h("Connection", b"upgrade")]));
        assert!(!is_upgrade(&[]));
    }
}
