//! Loopback round trips through the real server started in-process on port 0, next to the same
//! round trips through a minimal tokio echo server (one worker thread, same prefix), so the
//! report shows the two side by side from the same run.

#[path = "../examples/peer/tokio_echo.rs"]
mod tokio_echo;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use saythat::config::DEFAULT_PREFIX;
use saythat::{Config, Server};

/// Connections in the batch round trip.
const BATCH: usize = 32;

fn start_saythat() -> SocketAddr {
    let server = Server::bind(&Config::loopback()).expect("bind saythat on 127.0.0.1:0");
    let addr = server.local_addrs()[0];
    std::thread::spawn(move || server.run());
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the server under test");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// Sends `message` on every stream, then reads every answer in full.
fn round_trip(streams: &mut [TcpStream], message: &[u8], answer: &mut [u8]) {
    for stream in streams.iter_mut() {
        stream.write_all(message).expect("send");
    }
    for stream in streams.iter_mut() {
        stream.read_exact(answer).expect("answer");
    }
}

fn roundtrip(c: &mut Criterion) {
    let servers = [
        ("saythat", start_saythat()),
        (
            "tokio",
            tokio_echo::spawn(([127, 0, 0, 1], 0).into(), DEFAULT_PREFIX.into())
                .expect("bind the tokio peer"),
        ),
    ];
    let mut group = c.benchmark_group("roundtrip");
    for (conns, size) in [(1, 64), (1, 1024), (BATCH, 64)] {
        let message = vec![b'x'; size];
        let mut answer = vec![0u8; DEFAULT_PREFIX.len() + size];
        group.throughput(Throughput::Elements(conns as u64));
        for (name, addr) in servers {
            let mut streams: Vec<TcpStream> = (0..conns).map(|_| connect(addr)).collect();
            let id = BenchmarkId::new(name, format!("{conns} conn x {size} B"));
            group.bench_function(id, |b| {
                b.iter(|| round_trip(&mut streams, &message, &mut answer))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
