//! Line framing: every `\n`-terminated line is answered once it is complete, however TCP split
//! it; an unterminated tail is answered at half-close; a line over `max_line` gets an error line
//! and the connection closes cleanly.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::{
    expect_bytes, expect_bytes_then_eof, expect_eof, expect_silence, roundtrip, send, send_expect,
    TestServer,
};
use saythat::{Config, FramingKind};

/// How long a test listens for an answer that must not come. It only catches a premature answer
/// early; the exact bytes read afterwards are what prove there was none.
const QUIET: Duration = Duration::from_millis(100);

fn line_config() -> Config {
    Config {
        framing: FramingKind::Line,
        ..Config::loopback()
    }
}

/// Lines of at most 16 bytes: short enough to overrun in one small write.
fn short_lines() -> Config {
    Config {
        max_line: 16,
        ..line_config()
    }
}

#[test]
fn a_line_split_across_writes_is_answered_once_complete() {
    let server = TestServer::start(&line_config());
    let mut client = server.connect();

    send(&mut client, b"hel");
    expect_silence(&mut client, QUIET);
    send_expect(&mut client, b"lo\nwor", b"You say that hello\n");
    expect_silence(&mut client, QUIET);
    send_expect(&mut client, b"ld\n", b"You say that world\n");
}

#[test]
fn several_lines_in_one_write_are_answered_separately() {
    let server = TestServer::start(&line_config());
    let mut client = server.connect();
    send_expect(
        &mut client,
        b"one\ntwo\n\nthree\r\n",
        b"You say that one\nYou say that two\nYou say that \nYou say that three\r\n",
    );
}

#[test]
fn the_unterminated_tail_is_answered_at_half_close_then_eof() {
    let server = TestServer::start(&line_config());
    let mut client = server.connect();
    send_expect(&mut client, b"whole\ntai", b"You say that whole\n");
    send(&mut client, b"l");
    client.shutdown(Shutdown::Write).expect("half-close");
    expect_bytes(&mut client, b"You say that tail");
    expect_eof(&mut client);
}

#[test]
fn a_line_at_max_line_is_answered() {
    let server = TestServer::start(&short_lines());
    let mut client = server.connect();
    let line = b"fifteen bytes!!\n";
    assert_eq!(line.len(), 16);
    roundtrip(&mut client, line);
    send(&mut client, b"split ");
    expect_silence(&mut client, QUIET);
    send_expect(
        &mut client,
        b"at byte16\n",
        b"You say that split at byte16\n",
    );
}

#[test]
fn a_line_over_max_line_gets_an_error_line_then_eof() {
    let server = TestServer::start(&short_lines());
    let mut client = server.connect();
    send(&mut client, &[&b"short\n"[..], &[b'x'; 40]].concat());
    let expected = b"You say that short\nERR line too long (max 16 bytes)\n";
    // A reset instead of the end of the stream fails here: the server must linger.
    expect_bytes_then_eof(&mut client, expected);
}

/// A client still sending after its line was refused must read the error line and a clean end of
/// stream, not a reset that destroys them: the server drains what it still receives.
#[test]
fn a_client_still_sending_after_the_error_reads_it_and_a_clean_eof() {
    let server = TestServer::start(&short_lines());
    let mut client = server.connect();
    send(&mut client, &[b'x'; 40]);
    for _ in 0..16 {
        // The server may already have closed its side; what counts is what the client reads.
        let _ = client.write_all(&[b'y'; 4096]);
    }
    expect_bytes_then_eof(&mut client, b"ERR line too long (max 16 bytes)\n");
}

/// With a prefix of 4096 bytes every one-byte line is answered by 4,097 bytes: the answers to
/// one read can be thousands of times the cap. The lines past it wait in the connection until
/// the client has read enough, and every one is answered, in order.
#[test]
fn a_long_prefix_answers_every_line_within_the_cap() {
    let prefix = "p".repeat(4096);
    let server = TestServer::start(&Config {
        prefix: prefix.clone(),
        ..line_config()
    });
    let mut stream = server.connect();
    let lines = 20_000;
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&b"a\n".repeat(lines)).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let expected = [prefix.as_bytes(), b"a\n"].concat().repeat(lines);
    expect_bytes_then_eof(&mut stream, &expected);
    sender.join().unwrap();
}
