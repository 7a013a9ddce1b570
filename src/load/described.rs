//! `format=json` for `saythat load --query`: the JSON description a test backend answers with,
//! checked against the request that was sent (its method, its path, its body).
//!
//! Pure, like the checkers: the caller collects the description's bytes. It must never panic
//! on whatever the server sent, and never allocate for a description without escapes.

use std::borrow::Cow;

use serde::Deserialize;

use super::fault::escape;
use super::message::{HttpMethod, Protocol};

/// Bytes of a wrong description, or of a wrong field, quoted in an error.
const MAX_QUOTED: usize = 64;

/// The fields of a description that the load generator knows the value of; the others (the
/// client's address, the connection's number) it does not check.
#[derive(Deserialize)]
struct Described<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    /// The decoded path, without the query.
    #[serde(borrow)]
    path: Cow<'a, str>,
    /// The request's body, as UTF-8 text (a message is letters and digits).
    #[serde(borrow)]
    body: Cow<'a, str>,
}

/// Checks `json` is the description of the request carrying the message with seed `msg_seed`:
/// `GET /MESSAGE` with no body, or `POST /` with the message as its body. The error says which
/// field is wrong, quoting it.
pub(crate) fn check_description(
    proto: &Protocol,
    msg_seed: u64,
    json: &[u8],
) -> Result<(), String> {
    let d: Described<'_> = serde_json::from_slice(json).map_err(|e| {
        format!(
            "the JSON description does not parse ({e}): \"{}\"",
            escape(&json[..json.len().min(MAX_QUOTED)])
        )
    })?;
    let is_message = |s: &str| {
        s.len() == proto.size as usize && proto.mismatch(msg_seed, 0, s.as_bytes()).is_none()
    };
    let method = proto.request.as_ref().map_or(HttpMethod::Get, |r| r.method);
    let (name, path_ok, body_ok) = match method {
        HttpMethod::Get => (
            "GET",
            d.path.strip_prefix('/').is_some_and(is_message),
            d.body.is_empty(),
        ),
        HttpMethod::Post => ("POST", d.path == "/", is_message(&d.body)),
    };
    let wrong = |field: &str, value: &str, sent: &str| {
        let quoted = escape(&value.as_bytes()[..value.len().min(MAX_QUOTED)]);
        format!("the JSON description's {field} is \"{quoted}\" where {sent} was sent")
    };
    if d.method != name {
        return Err(wrong("method", &d.method, name));
    }
    if !path_ok {
        let sent = match method {
            HttpMethod::Get => "`/` and the message",
            HttpMethod::Post => "`/`",
        };
        return Err(wrong("path", &d.path, sent));
    }
    if !body_ok {
        let sent = match method {
            HttpMethod::Get => "no body",
            HttpMethod::Post => "the message",
        };
        return Err(wrong("body", &d.body, sent));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::message::{seed, LoadFraming};

    fn proto(method: HttpMethod) -> Protocol {
        let host = "127.0.0.1:8080".parse().expect("an address");
        Protocol::new(
            b"> ",
            LoadFraming::Http,
            16,
            method,
            host,
            Some("format=json"),
            false,
        )
        .expect("a query the server takes")
    }

    /// A description as saythat writes one, with `method`, `path` and `body`.
    fn description(method: &str, path: &str, body: &str) -> Vec<u8> {
        let json = serde_json::json!({
            "method": method, "target": format!("{path}?format=json"), "path": path,
            "query": [["format", "json"]], "version": "HTTP/1.1",
            "headers": [["Host", "127.0.0.1:8080"]], "body": body, "body_encoding": "utf-8",
            "client": "127.0.0.1", "peer": "127.0.0.1:5000", "connection": 3, "request": 1,
            "instance": null, "worker": 0
        });
        serde_json::to_vec(&json).expect("JSON")
    }

    fn message(p: &Protocol, s: u64) -> String {
        String::from_utf8(p.message(seed(1, s))).expect("letters and digits")
    }

    #[test]
    fn the_description_of_the_request_sent_passes() {
        let get = proto(HttpMethod::Get);
        let m = message(&get, 0);
        let json = description("GET", &format!("/{m}"), "");
        assert_eq!(check_description(&get, seed(1, 0), &json), Ok(()));
        let post = proto(HttpMethod::Post);
        let json = description("POST", "/", &m);
        assert_eq!(check_description(&post, seed(1, 0), &json), Ok(()));
        // An escaped string is decoded before it is compared.
        let escaped = format!("{{\"method\":\"G\\u0045T\",\"path\":\"/{m}\",\"body\":\"\"}}");
        assert_eq!(
            check_description(&get, seed(1, 0), escaped.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_field_or_no_json_is_named() {
        let get = proto(HttpMethod::Get);
        let m = message(&get, 0);
        let other = message(&get, 1);
        for (json, says) in [
            (
                description("POST", &format!("/{m}"), ""),
                "method is \"POST\"",
            ),
            (description("GET", &format!("/{other}"), ""), "path is"),
            (description("GET", &format!("/{m}x"), ""), "path is"),
            (description("GET", &m, ""), "path is"),
            (description("GET", &format!("/{m}"), "x"), "body is \"x\""),
            (b"You say that".to_vec(), "does not parse"),
            (b"{\"method\":\"GET\"}".to_vec(), "does not parse"),
            (b"{\"method\":\"GET\",".to_vec(), "does not parse"),
        ] {
            let err = check_description(&get, seed(1, 0), &json).expect_err(says);
            assert!(err.contains(says), "{says}: {err}");
        }
        let post = proto(HttpMethod::Post);
        let err = check_description(&post, seed(1, 0), &description("POST", "/", &other));
        assert!(err.expect_err("another message").contains("body is"));
    }
}
