//! `saythat load`: a load generator that verifies every answer byte for byte while it measures.
//!
//! It exists so the server's throughput, latency and 19,000-connection figures come from the
//! project's own tool, on mio loops like the server's (one per `--threads`). It must never count
//! an answer it did not verify, and never run without an end: every run is bounded in time.
//!
//! A run, file by file: `args.rs` the flags and their bounds; `plan.rs` checks them together and
//! fixes the clock's marks, with `schedule.rs` the `--rate` timetable; this file starts one
//! `worker.rs` loop per thread over its share of the connections. The loop composes `dial.rs`
//! (opening connections, the back-off), `tls.rs` (`--tls`: a connection's rustls state, driven
//! sans-IO), `conn.rs` (one connection: `message.rs` what it sends,
//! `check.rs`/`http.rs`/`ws.rs` what must come back, `fault.rs` how a wrong answer is told),
//! `record.rs` (the counts and latencies) and `progress.rs` (the live line). The threads'
//! records merge into `report.rs`. `error.rs` is why a run could not happen at all.

mod args;
mod check;
mod conn;
mod described;
mod dial;
mod error;
mod expect;
mod fault;
mod http;
mod message;
mod plan;
mod progress;
mod record;
mod report;
mod schedule;
mod tls;
mod worker;
mod ws;

use std::sync::{mpsc, Arc};
use std::time::Instant;

use clap::ValueEnum;

use crate::config::RESERVED_FDS;
pub use args::{
    LoadArgs, MAX_CONNS, MAX_PIPELINE, MAX_RATE, MAX_SECONDS, MAX_SIZE, MAX_THREADS,
    MIN_TIMEOUT_SECS,
};
pub use dial::{MAX_CONNECTS_IN_FLIGHT, RECONNECT_BACKOFF};
pub use error::{LoadError, LoadErrorKind};
pub use message::{HttpMethod, LoadFraming};
use plan::Plan;
use progress::{show_progress, Snapshot};
use report::{new_histogram, RunFacts, Tally};
pub use report::{FaultsAsked, LoadReport, MAX_ERROR_SAMPLES};
use worker::Share;

/// Raises the soft fd limit to the hard one and checks `conns` fit under it.
fn ensure_fds(conns: u32) -> Result<(), LoadError> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| {
        LoadError::new(
            LoadErrorKind::FdLimit,
            "cannot raise the file-descriptor limit",
            e.to_string(),
            "check `ulimit -n`",
        )
    })?;
    let needed = u64::from(conns) + RESERVED_FDS;
    if needed > limit {
        return Err(LoadError::new(
            LoadErrorKind::FdLimit,
            format!("cannot open {conns} connections"),
            format!(
                "that needs {needed} file descriptors ({RESERVED_FDS} kept for the process) and \
                 the limit is {limit}"
            ),
            "raise the hard limit (`ulimit -Hn`, limits.conf or LimitNOFILE) or lower --conns",
        ));
    }
    Ok(())
}

/// Runs the load described by `args` against a server and reports what it measured.
///
/// Errors only when the run could not happen at all (bad options, too few file descriptors, no
/// connection ever succeeded); wrong or missing answers are in the report
/// (`LoadReport::failure`).
pub fn run(args: &LoadArgs) -> Result<LoadReport, LoadError> {
    // More threads than connections would leave some with nothing to do.
    let threads = args.threads.min(args.conns).max(1);
    // Options are checked before the fd limit is touched, so a bad one fails without side effects.
    let plan = Plan::new(args, threads, Instant::now())?;
    ensure_fds(args.conns)?;
    let plan = Arc::new(plan.starting_at(Instant::now())?);

    let (tx, rx) = mpsc::channel::<Snapshot>();
    let mut handles = Vec::with_capacity(threads as usize);
    for t in 0..threads {
        // Contiguous shares: thread t owns connections lo..hi; --messages is split the same way.
        let (lo, hi) = (
            share_of(plan.conns, t, threads),
            share_of(plan.conns, t + 1, threads),
        );
        let budget = args.messages.map(|m| {
            let part = |x: u64| (u128::from(m) * u128::from(x) / u128::from(plan.conns)) as u64;
            part(hi) - part(lo)
        });
        let share = Share {
            thread: t as usize,
            first_id: lo,
            conns: (hi - lo) as usize,
            budget,
        };
        let (plan, tx) = (Arc::clone(&plan), plan.progress.then(|| tx.clone()));
        let handle = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || worker::run(plan, share, tx))
            .map_err(|e| LoadError::internal("cannot start a load thread", e))?;
        handles.push(handle);
    }
    drop(tx);
    if plan.progress {
        show_progress(&plan, &rx, threads as usize);
    }

    let mut tally = Tally::default();
    let mut hist = new_histogram()?;
    let mut handshakes = new_histogram()?;
    let mut ended = plan.measure_start;
    let mut connect_error = None;
    for handle in handles {
        let outcome = handle
            .join()
            .map_err(|_| LoadError::internal("a load thread failed", "it panicked"))??;
        hist.add(&outcome.hist).map_err(|e| {
            LoadError::internal("cannot merge latency histograms", format!("{e:?}"))
        })?;
        handshakes.add(&outcome.handshakes).map_err(|e| {
            LoadError::internal("cannot merge handshake histograms", format!("{e:?}"))
        })?;
        tally.add(outcome.tally);
        ended = ended.max(outcome.ended);
        connect_error = connect_error.or(outcome.connect_error);
    }
    if tally.conns_connected == 0 {
        return Err(LoadError::new(
            LoadErrorKind::Connect,
            format!("cannot connect to {}", plan.addr),
            connect_error.unwrap_or_else(|| {
                "no connection was established; is saythat serve running on that address?".into()
            }),
            "",
        ));
    }
    let name = |v: Option<clap::builder::PossibleValue>| {
        v.map_or_else(String::new, |v| v.get_name().to_string())
    };
    let facts = RunFacts {
        addr: args.addr.to_string(),
        framing: name(args.framing.to_possible_value()),
        method: (args.framing == LoadFraming::Http).then(|| name(args.method.to_possible_value())),
        size: args.size,
        pipeline: args.pipeline,
        threads,
        rate: args.rate,
        conns: args.conns,
        warmup_s: args.warmup,
        timeout_s: args.timeout,
        tls: plan.tls.is_some(),
    };
    let measured = ended.saturating_duration_since(plan.measure_start);
    Ok(LoadReport::new(facts, tally, &hist, &handshakes, measured))
}

/// The first connection id of thread `t`'s share, for `threads` even shares of `conns`.
fn share_of(conns: u64, t: u32, threads: u32) -> u64 {
    conns * u64::from(t) / u64::from(threads)
}
