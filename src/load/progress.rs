//! The live progress line: what the load threads send while they run, and its drawing on stderr.
//!
//! It exists only for a person watching a terminal: nothing here counts in the report. It must
//! never slow the load threads (they send a snapshot at most once a `PROGRESS_INTERVAL`, and
//! only when stderr is a terminal) nor draw anywhere but stderr.

use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plan::Plan;
use super::report::{human_us, new_histogram};

/// How often the live progress line is redrawn.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What a thread has counted so far, for the live progress line.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub thread: usize,
    pub answered: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

/// A load thread's end of the line: a snapshot at most every `PROGRESS_INTERVAL`, and none at
/// all when no line is drawn.
pub(crate) struct Feed {
    tx: Option<Sender<Snapshot>>,
    next: Instant,
}

impl Feed {
    /// Sends on `tx`, if any, from one interval after `start`.
    pub(crate) fn new(tx: Option<Sender<Snapshot>>, start: Instant) -> Self {
        Feed {
            tx,
            next: start + PROGRESS_INTERVAL,
        }
    }

    /// Sends `snapshot()` if one is due at `now`.
    pub(crate) fn tick(&mut self, now: Instant, snapshot: impl FnOnce() -> Snapshot) {
        if let (Some(tx), true) = (&self.tx, now >= self.next) {
            self.next = now + PROGRESS_INTERVAL;
            // The receiver only goes away once every thread has ended; nothing to do if it did.
            let _ = tx.send(snapshot());
        }
    }

    /// When the next snapshot is due, if any is sent.
    pub(crate) fn wakeup(&self) -> Option<Instant> {
        self.tx.as_ref().map(|_| self.next)
    }
}

/// Draws the live line on stderr from the threads' snapshots until every thread has finished.
pub(super) fn show_progress(plan: &Plan, rx: &mpsc::Receiver<Snapshot>, threads: usize) {
    let total = plan.end.saturating_duration_since(plan.start);
    let bar =
        ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut latest: Vec<Option<Snapshot>> = vec![None; threads];
    let (mut last_answered, mut last_at) = (0, plan.start);
    let mut next_draw = Instant::now() + PROGRESS_INTERVAL;
    loop {
        match rx.recv_timeout(PROGRESS_INTERVAL) {
            Ok(snap) => {
                let t = snap.thread;
                if let Some(slot) = latest.get_mut(t) {
                    *slot = Some(snap);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now < next_draw {
            continue;
        }
        // Snapshots come about once an interval, not exactly: a little slack draws on each.
        next_draw = now + PROGRESS_INTERVAL * 9 / 10;
        let (mut answered, mut errors) = (0, 0);
        let mut p99 = new_histogram().ok();
        for snap in latest.iter().flatten() {
            answered += snap.answered;
            errors += snap.errors;
            if let Some(h) = p99.as_mut() {
                // A failed merge only loses the live p99; the report merges again.
                let _ = h.add(&snap.hist);
            }
        }
        let secs = now.duration_since(last_at).as_secs_f64();
        let rate = (answered - last_answered.min(answered)) as f64 / secs.max(1e-3);
        (last_answered, last_at) = (answered, now);
        let p99 = match p99 {
            Some(h) if !h.is_empty() => human_us(h.value_at_quantile(0.99)),
            _ => "-".to_string(),
        };
        let phase = if now < plan.measure_start {
            " (warmup)"
        } else {
            ""
        };
        bar.set_position(now.duration_since(plan.start).as_millis() as u64);
        bar.set_message(format!(
            "{rate:.0} msg/s, p99 {p99}, {errors} errors{phase}"
        ));
    }
    bar.finish_and_clear();
}
