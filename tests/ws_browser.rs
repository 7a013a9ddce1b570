//! A real browser against the WebSocket echo (issue 18): headless Chromium loads a page that
//! opens `ws://ADDR/` on the `saythat` binary, sends a text and a binary message, writes the
//! echoes into the DOM, closes with 1000, and the test reads the DOM Chromium dumps.
//!
//! The page is served by the test, and held open until the page reports that its WebSocket has
//! closed (or `HOLD` passes): Chromium dumps the DOM at the load event, so the load must wait
//! for the echo, without any sleep. Chromium is not on CI's machine: without it the test says
//! it was skipped and passes, unless `SAYTHAT_BROWSER_REQUIRED` is set (`scripts/browser.sh`
//! sets it), when it fails.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{run_to_end, ServerProcess, PREFIX};

/// The longest the page is held open waiting for its WebSocket to end.
const HOLD: Duration = Duration::from_secs(20);

/// The longest Chromium may take, start to dump.
const BROWSER: Duration = Duration::from_secs(60);

/// The text message the page sends: not ASCII only, so UTF-8 goes through the browser too.
const TEXT: &str = "hello from Chromium, 20 €";

/// The binary message the page sends.
const BINARY: [u8; 5] = [0, 1, 127, 128, 255];

/// Chromium's program: `$CHROMIUM`, or the first of its usual names on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The page: it shows each echo in its own element, then the close.
fn page(ws_addr: &str) -> String {
    let bytes: Vec<String> = BINARY.iter().map(u8::to_string).collect();
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>saythat</title></head><body>
<p id="text">no text echo</p><p id="binary">no binary echo</p><p id="close">not closed</p>
<script>
const show = (id, what) => {{ document.getElementById(id).textContent = what; }};
const hex = (buffer) => Array.from(new Uint8Array(buffer),
  (b) => b.toString(16).padStart(2, '0')).join(' ');
const ws = new WebSocket('ws://{ws_addr}/');
ws.binaryType = 'arraybuffer';
let answers = 0;
ws.onopen = () => {{ ws.send({TEXT:?}); ws.send(new Uint8Array([{bytes}])); }};
ws.onmessage = (event) => {{
  if (typeof event.data === 'string') show('text', 'text: ' + event.data);
  else show('binary', 'binary: ' + hex(event.data));
  if (++answers === 2) ws.close(1000, 'done');
}};
ws.onclose = (event) => {{
  show('close', `closed ${{event.code}} clean=${{event.wasClean}}`);
  fetch('/done');
}};
</script>
"#,
        bytes = bytes.join(", ")
    )
}

/// Serves `page` at `/` on `listener`, the document left open until `/done` is asked for (or
/// `HOLD` passes); anything else is a 404. Runs for the rest of the test process.
fn serve_page(listener: TcpListener, page: String) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let done_rx = Arc::new(Mutex::new(done_rx));
    let page = Arc::new(page);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (page, done_tx, done_rx) = (page.clone(), done_tx.clone(), done_rx.clone());
            // A connection a browser opens ahead and never uses must not hold up the others.
            thread::spawn(move || answer(stream, &page, &done_tx, &done_rx));
        }
    });
}

/// Answers one request on `stream`.
fn answer(mut stream: TcpStream, page: &str, done_tx: &Sender<()>, done_rx: &Mutex<Receiver<()>>) {
    let _ = stream.set_read_timeout(Some(HOLD));
    let mut reader = BufReader::new(stream.try_clone().expect("a clone of the page's stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the head, bounded by the read timeout and the lines a browser sends.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let head = |status: &str, kind: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nCache-Control: no-store\r\n\
             Connection: close\r\n\r\n"
        )
    };
    match path {
        "/" => {
            let _ = stream.write_all(head("200 OK", "text/html; charset=utf-8").as_bytes());
            let _ = stream.write_all(page.as_bytes());
            let _ = stream.flush();
            let _ = done_rx.lock().unwrap().recv_timeout(HOLD);
            let _ = stream.write_all(b"</body></html>\n");
        }
        "/done" => {
            let _ = stream.write_all(head("204 No Content", "text/plain").as_bytes());
            let _ = done_tx.send(());
        }
        _ => {
            let _ = stream.write_all(head("404 Not Found", "text/plain").as_bytes());
        }
    }
}

#[test]
fn chromium_sends_text_and_binary_and_shows_the_echoes_and_a_clean_close() {
    let Some(chromium) = find_chromium() else {
        let why = "no chromium, chromium-browser or google-chrome on PATH, and CHROMIUM unset";
        if std::env::var_os("SAYTHAT_BROWSER_REQUIRED").is_some() {
            panic!("the browser test needs Chromium: {why}");
        }
        // Straight to stderr: the test harness captures print macros of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "ws_browser: SKIPPED, the browser test did not run: {why} (scripts/browser.sh \
             runs it and fails without Chromium)"
        );
        return;
    };
    let server = ServerProcess::serve(&["--framing", "http"]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the page");
    let page_url = format!("http://{}/", listener.local_addr().unwrap());
    serve_page(listener, page(&server.addr().to_string()));

    let profile = std::env::temp_dir().join(format!("saythat-chromium-{}", std::process::id()));
    let mut cmd = Command::new(&chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
    ])
    .arg("--disable-background-networking")
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(&page_url);
    let output = run_to_end(cmd, None, BROWSER);
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    let context = format!(
        "{} exited {:?}; its DOM:\n{dom}\nits stderr:\n{}",
        chromium.display(),
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );

    let prefix = String::from_utf8(PREFIX.to_vec()).unwrap();
    assert!(
        dom.contains(&format!("<p id=\"text\">text: {prefix}{TEXT}</p>")),
        "{context}"
    );
    let hex: Vec<String> = [PREFIX, &BINARY[..]]
        .concat()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        dom.contains(&format!("<p id=\"binary\">binary: {}</p>", hex.join(" "))),
        "{context}"
    );
    assert!(
        dom.contains("<p id=\"close\">closed 1000 clean=true</p>"),
        "{context}"
    );
}
