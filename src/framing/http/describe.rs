//! `format=json`: the request as the server saw it, as one JSON object (method, target, path,
//! query pairs, version, headers in arrival order and case, body, client address, peer,
//! connection id, request number, instance, worker), for people debugging a proxy in front.
//!
//! It only borrows and writes: the caller bounds the body (`--max-body`) and owns the buffer. It
//! must never trust `Forwarded` or `X-Forwarded-For` from a peer outside `--trust-proxy`.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use ipnet::IpNet;
use percent_encoding::percent_decode_str;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use super::control::query_pairs;

/// The `Content-Type` of a description.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// One request, borrowed from the session, to be described.
#[derive(Debug, Clone, Copy)]
pub struct Description<'a> {
    pub method: &'a str,
    /// The request target as sent (origin, absolute, authority or asterisk form).
    pub target: &'a str,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: &'a [httparse::Header<'a>],
    /// The whole body, as the echo would have it.
    pub body: &'a [u8],
    /// The address of the socket's other end.
    pub peer: SocketAddr,
    /// The subject of the client's TLS certificate (mutual TLS), if it presented one.
    pub client_certificate: Option<&'a str>,
    /// The connection's id, the same for every request on it.
    pub connection: u64,
    /// This request's number on its connection, from 1.
    pub request: u64,
    /// `--instance`, if given.
    pub instance: Option<&'a str>,
    /// The index of the loop that served it, from 0.
    pub worker: usize,
}

impl Description<'_> {
    /// Appends the description, one JSON object and `"\n"`, to `out`; `trusted` is
    /// `--trust-proxy`, which decides whether forwarding headers name the client.
    pub fn write_json(&self, trusted: &[IpNet], out: &mut Vec<u8>) {
        let (path, query) = split_target(self.target);
        let (body, body_encoding) = match std::str::from_utf8(self.body) {
            Ok(text) => (Cow::Borrowed(text), "utf-8"),
            Err(_) => (
                Cow::Owned(base64::engine::general_purpose::STANDARD.encode(self.body)),
                "base64",
            ),
        };
        let json = Json {
            method: self.method,
            target: self.target,
            path: percent_decode_str(path).decode_utf8_lossy(),
            query: query_pairs(query.as_bytes())
                .map(|(key, value)| [lossy(key), lossy(value)])
                .collect(),
            version: if self.version == 0 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            headers: Headers(self.headers),
            body,
            body_encoding,
            client: client_addr(self.peer, self.headers, trusted),
            peer: self.peer,
            client_certificate: self.client_certificate,
            connection: self.connection,
            request: self.request,
            instance: self.instance,
            worker: self.worker,
        };
        // Writing to a Vec cannot fail, and every field serializes (strings, numbers).
        let _ = serde_json::to_writer(&mut *out, &json);
        out.push(b'\n');
    }
}

/// The description's fields, in the order they are written.
#[derive(Serialize)]
struct Json<'a> {
    method: &'a str,
    target: &'a str,
    path: Cow<'a, str>,
    query: Vec<[Cow<'a, str>; 2]>,
    version: &'static str,
    headers: Headers<'a>,
    body: Cow<'a, str>,
    body_encoding: &'static str,
    client: IpAddr,
    peer: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate: Option<&'a str>,
    connection: u64,
    request: u64,
    instance: Option<&'a str>,
    worker: usize,
}

/// Headers as `[name, value]` pairs, in arrival order and case (a map would lose duplicates).
struct Headers<'a>(&'a [httparse::Header<'a>]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for header in self.0 {
            seq.serialize_element(&[header.name, &String::from_utf8_lossy(header.value)])?;
        }
        seq.end()
    }
}

fn lossy(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// The target's path (still encoded) and query: `/a?b` gives `/a` and `b`; an absolute-form
/// target loses its scheme and authority (`http://h/a?b` gives `/a`); `*` and an
/// authority-form target are their own path.
fn split_target(target: &str) -> (&str, &str) {
    let (before, query) = target.split_once('?').unwrap_or((target, ""));
    let path = match before.split_once("://") {
        Some((_, rest)) if !before.starts_with('/') => rest.find('/').map_or("/", |at| &rest[at..]),
        _ => before,
    };
    (path, query)
}

/// The client's address: the peer, unless the peer is inside a `--trust-proxy` net. Then the
/// `for=` of `Forwarded` (RFC 7239), else `X-Forwarded-For` (every field of the name, in
/// order), is walked from the right, the nearest hop first: the first address outside every
/// trusted net is the client. When every hop is trusted, the leftmost is; a hop that is not an
/// address (`unknown`, an obfuscated `_name`, garbage) ends the walk at the last address it
/// reached. IPv4-mapped IPv6 addresses are taken as IPv4.
pub fn client_addr(
    peer: SocketAddr,
    headers: &[httparse::Header<'_>],
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip().to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let mut hops = forwarded_for(headers);
    if hops.is_empty() {
        hops = x_forwarded_for(headers);
    }
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(ip) => client = *ip,
            Some(ip) => return *ip,
            None => break,
        }
    }
    client
}

/// The `for=` of every element of every `Forwarded` field, left to right (`None`: not an
/// address). Elements without `for=` are no hop.
fn forwarded_for(headers: &[httparse::Header<'_>]) -> Vec<Option<IpAddr>> {
    fields(headers, "forwarded")
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node(value.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// Every hop of every `X-Forwarded-For` field, left to right (`None`: not an address).
fn x_forwarded_for(headers: &[httparse::Header<'_>]) -> Vec<Option<IpAddr>> {
    fields(headers, "x-forwarded-for")
        .flat_map(|value| value.split(','))
        .map(|hop| node(hop.trim()))
        .collect()
}

/// The values of the fields called `name` (any case), those that are UTF-8.
fn fields<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |header| header.name.eq_ignore_ascii_case(name))
        .filter_map(|header| std::str::from_utf8(header.value).ok())
}

/// An address from a hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:80`.
fn node(text: &str) -> Option<IpAddr> {
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn header<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    fn describe(description: &Description<'_>, trusted: &[IpNet]) -> Value {
        let mut out = b"before".to_vec();
        description.write_json(trusted, &mut out);
        assert!(out.starts_with(b"before{"), "appends");
        assert!(out.ends_with(b"}\n"), "one object and a newline");
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out[6..]).expect("valid JSON")
    }

    fn request<'a>(headers: &'a [httparse::Header<'a>], body: &'a [u8]) -> Description<'a> {
        Description {
            method: "POST",
            target: "/a%20b/c?x=1&y=%C3%A9+z&x=2&flag",
            version: 1,
            headers,
            body,
            peer: "127.0.0.1:40000".parse().unwrap(),
            client_certificate: None,
            connection: 7,
            request: 3,
            instance: None,
            worker: 2,
        }
    }

    #[test]
    fn every_field_is_described_in_order() {
        let headers = [
            header("Host", "example"),
            header("x-ODD-case", "1"),
            header("Accept", "a"),
            header("ACCEPT", "b, c"),
        ];
        let mut out = Vec::new();
        request(&headers, b"hello").write_json(&[], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"method\":\"POST\",\"target\":\"/a%20b/c?x=1&y=%C3%A9+z&x=2&flag\",\
             \"path\":\"/a b/c\",\"query\":[[\"x\",\"1\"],[\"y\",\"é z\"],[\"x\",\"2\"],\
             [\"flag\",\"\"]],\"version\":\"HTTP/1.1\",\"headers\":[[\"Host\",\"example\"],\
             [\"x-ODD-case\",\"1\"],[\"Accept\",\"a\"],[\"ACCEPT\",\"b, c\"]],\
             \"body\":\"hello\",\"body_encoding\":\"utf-8\",\"client\":\"127.0.0.1\",\
             \"peer\":\"127.0.0.1:40000\",\"connection\":7,\"request\":3,\"instance\":null,\
             \"worker\":2}\n"
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_base64_and_the_instance_is_named() {
        let body = [0xff, 0x00, b'a', 0xc3];
        let description = Description {
            instance: Some("web-1"),
            version: 0,
            target: "http://example:8080/p?q=1",
            method: "GET",
            ..request(&[], &body)
        };
        let json = describe(&description, &[]);
        assert_eq!(json["body"], "/wBhww==");
        assert_eq!(json["body_encoding"], "base64");
        assert_eq!(json["instance"], "web-1");
        assert_eq!(json["version"], "HTTP/1.0");
        assert_eq!(json["path"], "/p");
        assert_eq!(json["query"], json!([["q", "1"]]));
        assert_eq!(json["headers"], json!([]));
        let empty = describe(&request(&[], b""), &[]);
        assert_eq!(
            (&empty["body"], &empty["body_encoding"]),
            (&json!(""), &json!("utf-8"))
        );
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("/"), ("/", ""));
        assert_eq!(split_target("/a?"), ("/a", ""));
        assert_eq!(split_target("/a?b?c"), ("/a", "b?c"));
        assert_eq!(split_target("/x://y"), ("/x://y", ""));
        assert_eq!(split_target("http://h"), ("/", ""));
        assert_eq!(split_target("https://h:1/p/q?r"), ("/p/q", "r"));
        assert_eq!(split_target("*"), ("*", ""));
        assert_eq!(split_target("h:443"), ("h:443", ""));
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    fn client(peer: &str, headers: &[httparse::Header<'_>], trusted: &[&str]) -> String {
        client_addr(peer.parse().unwrap(), headers, &nets(trusted)).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let xff = [header("X-Forwarded-For", "203.0.113.9")];
        assert_eq!(client("198.51.100.1:5", &xff, &[]), "198.51.100.1");
        assert_eq!(
            client("198.51.100.1:5", &xff, &["10.0.0.0/8"]),
            "198.51.100.1"
        );
        let forwarded = [header("Forwarded", "for=203.0.113.9")];
        assert_eq!(
            client("[2001:db8::5]:5", &forwarded, &["10.0.0.0/8"]),
            "2001:db8::5"
        );
        // Unless told, no address is trusted, loopback included.
        assert_eq!(client("127.0.0.1:5", &xff, &[]), "127.0.0.1");
    }

    #[test]
    fn a_trusted_peer_s_forwarding_is_walked_from_the_right_past_trusted_hops() {
        let trusted = ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"];
        let xff = [
            header("X-Forwarded-For", "192.0.2.1, 203.0.113.9"),
            header("x-forwarded-for", "10.1.1.1"),
        ];
        // The client lied about 192.0.2.1; 203.0.113.9 is the first hop no trusted proxy is.
        assert_eq!(client("127.0.0.1:5", &xff, &trusted), "203.0.113.9");
        let all_trusted = [header("X-Forwarded-For", "10.9.9.9,10.1.1.1")];
        assert_eq!(client("127.0.0.1:5", &all_trusted, &trusted), "10.9.9.9");
        let none: [httparse::Header<'_>; 0] = [];
        assert_eq!(client("127.0.0.1:5", &none, &trusted), "127.0.0.1");
        let garbage = [header("X-Forwarded-For", "203.0.113.9, unknown, 10.1.1.1")];
        assert_eq!(client("127.0.0.1:5", &garbage, &trusted), "10.1.1.1");
        let ports = [header("X-Forwarded-For", "[2001:db8::7]:443, 10.1.1.1:80")];
        assert_eq!(client("[fd00::1]:5", &ports, &trusted), "2001:db8::7");
        // An IPv4 peer over a dual-stack socket is matched as IPv4.
        assert_eq!(
            client("[::ffff:10.0.0.1]:5", &all_trusted, &trusted),
            "10.9.9.9"
        );
        assert_eq!(client("[::ffff:192.0.2.3]:5", &none, &[]), "192.0.2.3");
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_its_nodes_are_read() {
        let trusted = ["10.0.0.0/8"];
        let both = [
            header("X-Forwarded-For", "192.0.2.1"),
            header(
                "Forwarded",
                "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
            ),
            header("forwarded", "proto=https, for=10.2.2.2"),
        ];
        assert_eq!(client("10.0.0.1:5", &both, &trusted), "2001:db8:cafe::17");
        let obfuscated = [header(
            "Forwarded",
            "for=192.0.2.60, for=_hidden, for=10.2.2.2",
        )];
        assert_eq!(client("10.0.0.1:5", &obfuscated, &trusted), "10.2.2.2");
        // A Forwarded field without for= leaves X-Forwarded-For to say.
        let no_for = [
            header("Forwarded", "proto=https"),
            header("X-Forwarded-For", "192.0.2.1"),
        ];
        assert_eq!(client("10.0.0.1:5", &no_for, &trusted), "192.0.2.1");
    }

    #[test]
    fn the_description_names_the_client_and_the_ipv6_peer() {
        let headers = [header("X-Forwarded-For", "192.0.2.1")];
        let description = Description {
            peer: "[::1]:9000".parse().unwrap(),
            client_certificate: None,
            ..request(&headers, b"")
        };
        let trusted = describe(&description, &nets(&["::1/128"]));
        assert_eq!(trusted["client"], "192.0.2.1");
        assert_eq!(trusted["peer"], "[::1]:9000");
        let untrusted = describe(&description, &[]);
        assert_eq!(untrusted["client"], "::1");
    }
}
