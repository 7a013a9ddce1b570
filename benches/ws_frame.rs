//! The WebSocket frame codec, without sockets: decoding client headers, unmasking payloads, and
//! the whole echo (`WebSocket` on a stream of masked frames fed in 1024-byte reads, as the
//! server reads them).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use saythat::config::{DEFAULT_PREFIX, READ_SIZE};
use saythat::framing::ws::frame::{decode_header, encode_header, unmask, Opcode};
use saythat::framing::ws::{WebSocket, DEFAULT_MAX_MESSAGE};
use saythat::framing::{Answers, Protocol};

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A masked client binary frame of `size` payload bytes.
fn client_frame(size: usize) -> Vec<u8> {
    let (head, used) = encode_header(true, Opcode::Binary, size as u64);
    let mut frame = head[..used].to_vec();
    frame[1] |= 0x80;
    frame.extend_from_slice(&MASK);
    let start = frame.len();
    frame.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    unmask(&mut frame[start..], MASK, 0);
    frame
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_frame");
    for size in [64usize, 1024] {
        let frame = client_frame(size);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("decode_header/{size}B frame"), |b| {
            b.iter(|| decode_header(black_box(&frame)))
        });
    }
    for size in [64usize, 1024, 64 * 1024] {
        let mut payload = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("unmask/{size}B"), |b| {
            b.iter(|| unmask(black_box(&mut payload), MASK, 3))
        });
    }
    group.finish();
}

/// Feeds `input` in 1024-byte reads to a WebSocket session.
fn answer_stream(ws: &mut WebSocket, input: &[u8], answers: &mut Vec<u8>) {
    let mut session = Default::default();
    let now = Instant::now();
    for read in input.chunks(READ_SIZE) {
        answers.clear();
        let mut out = Answers::new(answers, usize::MAX, now);
        ws.on_read(&mut session, black_box(read), &mut out);
        black_box(&answers);
    }
}

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_echo");
    for size in [64usize, 1024] {
        let input = client_frame(size).repeat((1 << 20) / size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        let mut answers = Vec::with_capacity(64 * 1024);
        let mut ws = WebSocket::new(DEFAULT_PREFIX.as_bytes(), DEFAULT_MAX_MESSAGE)
            .expect("the default prefix is UTF-8");
        group.bench_function(format!("WebSocket/{size}B binary, 1 MiB stream"), |b| {
            b.iter(|| answer_stream(&mut ws, &input, &mut answers))
        });
    }
    group.finish();
}

criterion_group!(benches, codec, echo);
criterion_main!(benches);
