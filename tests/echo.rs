//! Chunk framing, the lesson's contract: every read of up to 1024 bytes is answered by the prefix
//! and exactly those bytes, whatever they are, to every client at once.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Barrier;
use std::thread;

use common::{
    answer, connect, expect_bytes_then_eof, read_exact_timeout, read_to_eof, roundtrip, send,
    send_expect, show, TestServer, PREFIX,
};
use saythat::Config;

/// Payload bytes for the chunk tests: every byte value but `Y`, so the `Y` of each prefix marks
/// where a chunk's answer starts.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match (i * 31 % 251) as u8 {
            b'Y' => b'Z',
            b => b,
        })
        .collect()
}

/// Splits chunk answers to a payload without `Y` into their payloads, checking each is the prefix
/// followed by 1..=1024 bytes.
fn split_chunks(answers: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = answers;
    while !rest.is_empty() {
        assert!(
            rest.starts_with(PREFIX),
            "answer {} does not start with the prefix: \"{}\"",
            chunks.len(),
            show(&rest[..rest.len().min(64)])
        );
        rest = &rest[PREFIX.len()..];
        let end = rest.iter().position(|&b| b == b'Y').unwrap_or(rest.len());
        assert!(
            (1..=1024).contains(&end),
            "answer {} carries {end} bytes; a chunk answer carries 1 to 1024",
            chunks.len()
        );
        chunks.push(&rest[..end]);
        rest = &rest[end..];
    }
    chunks
}

#[test]
fn lesson_message_gets_the_exact_answer() {
    let server = TestServer::start(&Config::loopback());
    let mut client = server.connect();
    send(&mut client, b"Hello? anyone is there? I am client");

    // Like the lesson's client: reads of up to 1024 bytes until the whole answer is in.
    let expected = b"You say that Hello? anyone is there? I am client";
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < expected.len() {
        match client.read(&mut buf) {
            Ok(0) => panic!("the server closed after \"{}\"", show(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the answer failed ({e}) after \"{}\"", show(&got)),
        }
    }
    assert_eq!(expected.len(), 48);
    assert!(
        got == expected,
        "expected \"{}\", got \"{}\"",
        show(expected),
        show(&got)
    );
}

#[test]
fn binary_bytes_pass_through_verbatim() {
    let server = TestServer::start(&Config::loopback());
    let mut client = server.connect();
    let every_byte: Vec<u8> = (0..=255).collect();
    let messages: &[&[u8]] = &[
        b"\0",
        b"\xff",
        b"a\0b\xffc",
        b"\xc3\x28 invalid UTF-8 \xed\xa0\x80",
        b"\r\n",
        PREFIX,
        &every_byte,
    ];
    for message in messages {
        roundtrip(&mut client, message);
    }
}

#[test]
fn empty_prefix_is_plain_echo() {
    let config = Config {
        prefix: String::new(),
        ..Config::loopback()
    };
    let server = TestServer::start(&config);
    let mut client = server.connect();
    for message in [&b"hello"[..], b"\0\xff", b"You say that "] {
        send_expect(&mut client, message, message);
    }
}

#[test]
fn large_write_comes_back_as_prefixed_chunks_of_at_most_1024_bytes() {
    let server = TestServer::start(&Config::loopback());
    let mut client = server.connect();
    let data = payload(3000);
    send(&mut client, &data);
    client.shutdown(Shutdown::Write).expect("half-close");

    let answers = read_to_eof(&mut client);
    let chunks = split_chunks(&answers);
    assert!(
        chunks.len() >= 3,
        "3000 bytes need at least 3 chunks of 1024, got {}",
        chunks.len()
    );
    assert!(
        chunks.concat() == data,
        "the chunks' payloads do not add up to the 3000 bytes sent"
    );
}

#[test]
fn half_close_after_a_message_gets_its_answer_then_eof() {
    let server = TestServer::start(&Config::loopback());
    let mut client = server.connect();
    send(&mut client, b"last words");
    client.shutdown(Shutdown::Write).expect("half-close");
    expect_bytes_then_eof(&mut client, &answer(b"last words"));
}

/// The client sends far more than the server may hold as pending answers before it reads any,
/// then half-closes: the server must stop reading, drain, resume, and still answer every byte
/// before it closes.
#[test]
fn half_close_with_answers_backed_up_gets_every_answer_then_eof() {
    let config = Config {
        max_pending: 4096,
        ..Config::loopback()
    };
    let server = TestServer::start(&config);
    let mut client = server.connect();
    let data = payload(1 << 20);
    let writer = {
        let mut client = client.try_clone().expect("clone the client");
        let data = data.clone();
        thread::spawn(move || {
            client.write_all(&data)?;
            client.shutdown(Shutdown::Write)
        })
    };
    let answers = read_to_eof(&mut client);
    writer
        .join()
        .expect("the writer thread")
        .expect("sending 1 MiB and half-closing");
    let chunks = split_chunks(&answers);
    assert!(
        chunks.concat() == data,
        "the chunks' payloads do not add up to the 1 MiB sent ({} bytes in {} chunks)",
        chunks.iter().map(|c| c.len()).sum::<usize>(),
        chunks.len()
    );
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_own_answer() {
    const CLIENTS: usize = 200;
    let server = TestServer::start(&Config::loopback());
    // Connected up front, so every client is open before any of them speaks.
    let clients: Vec<_> = (0..CLIENTS).map(|_| connect(server.addr())).collect();
    let barrier = Barrier::new(CLIENTS);
    let failures: Vec<String> = thread::scope(|scope| {
        let threads: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut client)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let message = format!("client {i:03} of {CLIENTS} speaking");
                    let expected = answer(message.as_bytes());
                    barrier.wait();
                    client
                        .write_all(message.as_bytes())
                        .map_err(|e| e.to_string())?;
                    let got = read_exact_timeout(&mut client, expected.len());
                    if got != expected {
                        return Err(format!(
                            "client {i}: expected \"{}\", got \"{}\"",
                            show(&expected),
                            show(&got)
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| match t.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("client {i}: its thread panicked")),
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let summary = server.abort();
    assert_eq!(summary.accepted, CLIENTS as u64, "connections accepted");
}
