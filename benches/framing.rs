//! Framing throughput: how fast chunk and line framing turn input into answers, without sockets.
//! Inputs are fed in 1024-byte reads, as the server reads them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use saythat::config::{FramingKind, DEFAULT_PREFIX, READ_SIZE};
use saythat::framing::{Framer, Partial};

/// A stream of `count` messages of `size` bytes, each ending in `\n`.
fn stream(size: usize, count: usize) -> Vec<u8> {
    let mut line: Vec<u8> = (0..size - 1).map(|i| b'a' + (i % 26) as u8).collect();
    line.push(b'\n');
    line.repeat(count)
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    for (name, size) in [("64B", 64), ("1024B", 1024)] {
        let input = stream(size, (1 << 20) / size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        for kind in [FramingKind::Chunk, FramingKind::Line] {
            let framer = Framer::new(kind, DEFAULT_PREFIX.as_bytes(), 8192);
            let mut answers = Vec::with_capacity(64 * 1024);
            group.bench_function(format!("{kind:?}/{name} lines, 1 MiB stream"), |b| {
                b.iter(|| {
                    let mut partial = Partial::default();
                    for read in input.chunks(READ_SIZE) {
                        answers.clear();
                        framer.answer(&mut partial, black_box(read), &mut answers);
                        black_box(&answers);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
