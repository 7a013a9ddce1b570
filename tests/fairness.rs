//! Fairness: a connection streaming flat out must not starve one doing small round trips; the
//! loop's per-connection read budget gives every ready connection its turn.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{fill_pattern, read_answers_to_eof, report, roundtrip, wait_for, TestServer};
use saythat::Config;

const PING_PONG_FOR: Duration = Duration::from_secs(1);
/// A starved connection would get next to none; an unstarved one gets thousands here.
const MIN_ROUND_TRIPS: u32 = 100;

#[test]
fn a_flat_out_stream_does_not_starve_a_ping_pong() {
    let server = TestServer::start(&Config::loopback());
    let stream = server.connect();
    let mut writer_side = stream.try_clone().unwrap();
    let mut reader_side = stream;
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));

    let writer = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut chunk = [0u8; 1024];
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                fill_pattern(7, sent, &mut chunk);
                if let Err(e) = writer_side.write_all(&chunk) {
                    panic!("streamer: write failed after {sent} bytes: {e}");
                }
                sent += chunk.len() as u64;
            }
            writer_side.shutdown(Shutdown::Write).unwrap();
            sent
        })
    };
    let reader = {
        let checked = Arc::clone(&checked);
        thread::spawn(move || {
            read_answers_to_eof(&mut reader_side, 7, &checked)
                .unwrap_or_else(|e| panic!("streamer's answers: {e}"))
        })
    };

    // The stream is flowing before the ping-pong starts.
    wait_for(
        Duration::from_secs(5),
        "the streamer's first answers",
        || (checked.load(Ordering::Relaxed) > 64 * 1024).then_some(()),
    );

    let mut pinger = server.connect();
    let streamed_before = checked.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut round_trips = 0u32;
    while started.elapsed() < PING_PONG_FOR {
        let msg = format!("ping {round_trips}");
        roundtrip(&mut pinger, msg.as_bytes());
        round_trips += 1;
    }
    let streamed_during = checked.load(Ordering::Relaxed) - streamed_before;

    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().expect("the streamer's writer");
    let received = reader.join().expect("the streamer's reader");
    report("fairness.round_trips_per_s", round_trips);
    report("fairness.streamed_bytes_during_ping_pong", streamed_during);
    assert_eq!(
        received, sent,
        "the streamer got answers for every byte it sent"
    );
    assert!(
        round_trips > MIN_ROUND_TRIPS,
        "only {round_trips} round trips in {PING_PONG_FOR:?} beside a streamer (want more than \
         {MIN_ROUND_TRIPS}): the ping-pong connection is starved"
    );
    assert!(
        streamed_during > 1024 * 1024,
        "the streamer moved only {streamed_during} bytes during the ping-pong, so it did not \
         compete with it"
    );
    drop(pinger);
    server.shutdown();
}
