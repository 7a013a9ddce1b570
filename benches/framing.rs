//! Framing throughput: how fast chunk and line framing turn input into answers, without sockets.
//! Inputs are fed in 1024-byte reads, as the server reads them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Instant;

use saythat::config::{DEFAULT_PREFIX, READ_SIZE};
use saythat::framing::{Answers, Chunk, Line, Protocol};

/// A stream of `count` messages of `size` bytes, each ending in `\n`.
fn stream(size: usize, count: usize) -> Vec<u8> {
    let mut line: Vec<u8> = (0..size - 1).map(|i| b'a' + (i % 26) as u8).collect();
    line.push(b'\n');
    line.repeat(count)
}

/// Feeds `input` in 1024-byte reads, as the server reads it.
fn answer_stream<P: Protocol>(protocol: &mut P, input: &[u8], answers: &mut Vec<u8>) {
    let mut session = P::Session::default();
    let now = Instant::now();
    for read in input.chunks(READ_SIZE) {
        answers.clear();
        let mut out = Answers::new(answers, usize::MAX, now);
        protocol.on_read(&mut session, black_box(read), &mut out);
        black_box(&answers);
    }
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    let prefix = DEFAULT_PREFIX.as_bytes();
    for (name, size) in [("64B", 64), ("1024B", 1024)] {
        let input = stream(size, (1 << 20) / size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        let mut answers = Vec::with_capacity(64 * 1024);
        let mut chunk = Chunk::new(prefix);
        group.bench_function(format!("Chunk/{name} lines, 1 MiB stream"), |b| {
            b.iter(|| answer_stream(&mut chunk, &input, &mut answers))
        });
        let mut line = Line::new(prefix, 8192);
        group.bench_function(format!("Line/{name} lines, 1 MiB stream"), |b| {
            b.iter(|| answer_stream(&mut line, &input, &mut answers))
        });
    }
    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
