//! HTTP mode against clients this project did not write: `curl` (skipped, with a note, where it
//! is not installed) and the `ureq` crate. They must get the answers the wire contract promises,
//! reuse a kept-alive connection, and read refusals rather than resets.

mod common;

use std::process::Command;
use std::time::Duration;

use common::http::*;
use common::{run_to_end, show, TestServer};

/// `curl -sS --max-time 5 ARGS...` with `stdin`; `None` (after a note) where curl is missing.
fn curl(args: &[&str], stdin: Option<&[u8]>) -> Option<Vec<u8>> {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed: skipping this check");
        return None;
    }
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5"]).args(args);
    // The environment must not send curl through a proxy or change its defaults.
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "CURL_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", "/nonexistent");
    let out = run_to_end(cmd, stdin, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

#[test]
fn curl_get() {
    let server = start_http();
    let Some(out) = curl(&[&url(&server, "/Hello%3F%20anyone")], None) else {
        return;
    };
    assert_eq!(show(&out), "You say that Hello? anyone");
    // With the head: exactly the contract's bytes.
    let Some(out) = curl(&["-i", &url(&server, "/hi?x=1")], None) else {
        return;
    };
    assert_answers(&out, &ok(b"You say that hi"));
}

#[test]
fn curl_post() {
    let server = start_http();
    let Some(out) = curl(
        &[
            "--data-binary",
            "Hello? anyone is there? I am client",
            &url(&server, "/"),
        ],
        None,
    ) else {
        return;
    };
    assert_eq!(
        show(&out),
        "You say that Hello? anyone is there? I am client"
    );
}

#[test]
fn curl_chunked_upload() {
    let server = start_http();
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let Some(out) = curl(
        &[
            "-i",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            &url(&server, "/"),
        ],
        Some(&body),
    ) else {
        return;
    };
    let head = chunked_head(Conn::Persist);
    assert!(out.len() > head.len(), "\"{}\"", show(&out));
    assert_answers(&out[..head.len()], &head);
    // curl decodes the chunks: the rest is the body itself.
    assert!(
        out[head.len()..] == [common::PREFIX, &body].concat(),
        "the echoed body differs: {} bytes",
        out.len() - head.len()
    );
}

#[test]
fn curl_head() {
    let server = start_http();
    let Some(out) = curl(&["-I", &url(&server, "/Hello%3F%20anyone")], None) else {
        return;
    };
    assert_answers(&out, &ok_head(26, Conn::Persist));
}

#[test]
fn curl_expect_100_continue_and_keep_alive() {
    let server = start_http();
    let body = vec![b'c'; 200_000];
    // Two transfers on one command line: curl reuses the connection.
    let Some(out) = curl(
        &[
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            "@-",
            &url(&server, "/"),
            "--next",
            &url(&server, "/second"),
        ],
        Some(&body),
    ) else {
        return;
    };
    let expected = [common::PREFIX, &body, b"You say that second"].concat();
    assert!(
        out == expected,
        "got {} bytes: \"{}...\"",
        out.len(),
        show(&out[..out.len().min(64)])
    );
    let summary = server.shutdown();
    assert_eq!(summary.accepted, 1, "curl reused its connection");
}

#[test]
fn curl_reads_a_refusal() {
    let server = start_http();
    let Some(out) = curl(
        &[
            "-i",
            "-H",
            "Expect: something",
            "--data-binary",
            "body",
            &url(&server, "/"),
        ],
        None,
    ) else {
        return;
    };
    let masked = mask_dates(&out);
    let head = error_head("417 Expectation Failed", 0);
    let head = &head[..head.len() - "0\r\nConnection: close\r\n\r\n".len()];
    assert!(
        masked.starts_with(head) && masked.ends_with(b"\n"),
        "\"{}\"",
        show(&out)
    );
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn ureq_get_and_post_on_one_connection() {
    let server = start_http();
    let agent = agent();

    let mut response = agent
        .get(url(&server, "/Hello%3F%20anyone"))
        .call()
        .expect("GET");
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["server"],
        format!("saythat/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["content-length"], "26");
    let date = headers["date"].to_str().expect("an ASCII Date");
    assert!(httpdate::parse_http_date(date).is_ok(), "Date: {date}");
    let body = response.body_mut().read_to_string().expect("the body");
    assert_eq!(body, "You say that Hello? anyone");

    let mut response = agent
        .post(url(&server, "/"))
        .send("Hello? anyone is there? I am client")
        .expect("POST");
    assert_eq!(response.status(), 200);
    let body = response.body_mut().read_to_string().expect("the body");
    assert_eq!(body, "You say that Hello? anyone is there? I am client");

    let response = agent.head(url(&server, "/hi")).call().expect("HEAD");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "15");

    drop(agent);
    let summary = server.shutdown();
    assert_eq!(summary.accepted, 1, "ureq reused its connection");
}

#[test]
fn ureq_chunked_post() {
    let server = start_http();
    let body: Vec<u8> = (0..50_000u32).map(|i| b'A' + (i % 26) as u8).collect();
    // A reader of unknown length is sent chunked.
    let mut response = agent()
        .post(url(&server, "/"))
        .send(ureq::SendBody::from_reader(&mut &body[..]))
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let got = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .expect("the body");
    assert!(
        got == [common::PREFIX, &body].concat(),
        "{} bytes",
        got.len()
    );
}

#[test]
fn ureq_reads_a_refusal() {
    let server = start_http();
    let mut response = agent()
        .get(url(&server, "/a%zz"))
        .call()
        .expect("an answer");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["connection"], "close");
    let body = response.body_mut().read_to_string().expect("the body");
    assert!(
        body.ends_with('\n') && body.lines().count() == 1,
        "{body:?}"
    );
}
