//! How a loop stops: signals (the first drains, a second aborts, the same one again at once is
//! the same request), the lame duck's clock (`--drain-delay`), the drain and its deadline
//! (`--shutdown-timeout`), systemd's stop notices; and the signals that must not stop it (SIGHUP,
//! SIGUSR1, SIGUSR2), each handled on purpose rather than left to kill the process.
//! A state machine that tells the loop what to do next ([`Step`]); it never touches a socket or a
//! connection, and costs one atomic load per turn while the server runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Interest, Registry, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook_mio::v1_0::Signals;

use crate::group::{Group, ABORT, DRAIN, LAME_DUCK, RUNNING};
use crate::systemd::DrainNotices;
use crate::transport::TlsServer;

/// The signals the first loop watches. SIGINT, SIGTERM and SIGQUIT stop the server (nginx's
/// SIGQUIT is its graceful shutdown, and saythat's SIGTERM already is one); SIGHUP, SIGUSR1 and
/// SIGUSR2 are logged and the server serves on, where their default action would kill it on the
/// spot with no drain and no summary (a terminal hang-up, a logrotate-style `kill -HUP`).
const WATCHED: [i32; 6] = [SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2];

/// A stopping signal of the same number as the first, taken this soon after it, is the same
/// request sent twice, not a second one, and is ignored. GNU `timeout` signals its child and then
/// its own process group, so saythat gets the signal twice: 80 to 180 µs apart here (strace on
/// `timeout 0.2 sleep 5`), and the loop takes the second at most one turn after the first, which
/// on a busy machine can mean a few ms. A person pressing Ctrl-C again on purpose is far slower
/// than this (keyboard auto-repeat alone waits about 250 ms before its first repeat), so a
/// deliberate second signal still aborts.
pub(crate) const DUPLICATE_SIGNAL_WINDOW: Duration = Duration::from_millis(100);

/// What the loop must do at the end of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Serve as before: running, or a lame duck.
    Serve,
    /// Close the listeners and start the drain, then ask again; `after_lame_duck` when this loop
    /// kept the lame duck's clock and it has run out.
    StartDrain { after_lame_duck: bool },
    /// Draining: let the open connections finish.
    Drain,
    /// Close every connection now: a second signal, an abort, or the drain's deadline.
    CloseAll,
    /// Nothing is open: the loop may end.
    Done,
}

/// One loop's part in the shutdown.
pub(super) struct Lifecycle {
    /// The `WATCHED` signals, on the first loop only. Watched here rather than on a thread of
    /// their own: a second thread would make glibc wrap every read and write in its
    /// thread-cancellation bookkeeping (about 60 instructions per message).
    signals: Option<Signals>,
    /// The first stopping signal and when this loop took it, to tell a duplicate
    /// (`DUPLICATE_SIGNAL_WINDOW`) from a second signal.
    first_stop: Option<(i32, Instant)>,
    /// What systemd is told during a drain (`$NOTIFY_SOCKET`), on the first loop only.
    systemd: Option<DrainNotices>,
    /// The first loop keeps the lame duck's end (`--drain-delay`) and then raises the drain.
    leads: bool,
    /// The listeners are closed: the drain has begun.
    draining: bool,
    /// When the shutdown must move on without an event: the lame duck's end (on the first loop,
    /// before the drain), then the drain's end (`--shutdown-timeout`).
    stop_at: Option<Instant>,
    shutdown_timeout: Duration,
    /// What SIGHUP reloads: the TLS certificate, key and client CAs, if TLS is on.
    reload: Vec<Arc<TlsServer>>,
}

impl Lifecycle {
    pub fn new(shutdown_timeout: Duration) -> Lifecycle {
        Lifecycle {
            signals: None,
            first_stop: None,
            systemd: None,
            leads: false,
            draining: false,
            stop_at: None,
            shutdown_timeout,
            reload: Vec::new(),
        }
    }

    /// Makes SIGHUP reload `tls` from its files (the echo's, and the metrics endpoint's when it
    /// has its own).
    pub fn reload_on_hup(&mut self, tls: Arc<TlsServer>) {
        self.reload.push(tls);
    }

    /// Makes this loop the one that keeps the lame duck's end and then raises the drain for all.
    pub fn lead(&mut self) {
        self.leads = true;
    }

    /// Watches the `WATCHED` signals under `token` in `registry`.
    pub fn watch_signals(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        let mut signals = Signals::new(WATCHED)?;
        registry.register(&mut signals, token, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Tells systemd `STOPPING=1` at the first signal and extends its stop timeout while the
    /// drain goes on.
    pub fn notify_systemd(&mut self, notices: DrainNotices) {
        self.systemd = Some(notices);
    }

    /// Takes the signals that arrived: raises the group's request for each stopping one, logs
    /// the others.
    pub fn take_signals(&mut self, group: &Group) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let now = Instant::now();
        for signal in signals.pending() {
            if signal == SIGHUP && !self.reload.is_empty() {
                reload(&self.reload);
                continue;
            }
            on_signal(group, &mut self.first_stop, signal, now);
        }
    }

    /// The listeners are closed: the drain has begun.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// How long the drain may last (`--shutdown-timeout`).
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// When the loop must wake for the shutdown without an event: the end of the lame duck or
    /// of the drain, or systemd's next notice.
    pub fn wake_at(&self) -> Option<Instant> {
        let notice = self.systemd.as_ref().and_then(DrainNotices::due);
        [self.stop_at, notice].into_iter().flatten().min()
    }

    /// Whether a loop done with its connections may end: the signal watcher stays until it is
    /// the last loop running, so a second signal is honoured whichever loop is still draining.
    pub fn may_end(&self, group: &Group) -> bool {
        self.signals.is_none() || group.running() == 1
    }

    /// What the loop must do now, with `open` connections, given the group's request.
    #[inline]
    pub fn step(&mut self, group: &Group, now: Instant, open: usize) -> Step {
        let request = group.request();
        if request == RUNNING {
            return Step::Serve;
        }
        // From the first signal on, the lame duck included: systemd hears STOPPING at once and
        // has its stop timeout extended while the process is on its way out.
        if let Some(notices) = self.systemd.as_mut() {
            notices.draining(now, group.open());
        }
        if !self.draining {
            if request == LAME_DUCK {
                // Serving as before; only the first loop watches the clock.
                if !self.leads || !self.lame_duck_over(group, now) {
                    return Step::Serve;
                }
                return self.start_drain(now, true);
            }
            return self.start_drain(now, false);
        }
        if open == 0 {
            return Step::Done;
        }
        if request >= ABORT || self.stop_at.is_some_and(|deadline| now >= deadline) {
            return Step::CloseAll;
        }
        Step::Drain
    }

    fn start_drain(&mut self, now: Instant, after_lame_duck: bool) -> Step {
        self.draining = true;
        self.stop_at = Some(later(now, self.shutdown_timeout));
        Step::StartDrain { after_lame_duck }
    }

    /// The first loop's lame duck: starts its clock, and once `--drain-delay` has passed raises
    /// the drain for every loop; true then.
    fn lame_duck_over(&mut self, group: &Group, now: Instant) -> bool {
        let delay = group.drain_delay();
        match self.stop_at {
            None => {
                info!(
                    "lame duck for {delay:?}: accepting and serving as before while health checks \
                     say draining"
                );
                // From now, not from this turn's start, which may precede the request.
                self.stop_at = Some(later(Instant::now(), delay));
                false
            }
            Some(end) if now < end => false,
            Some(_) => {
                group.drain();
                true
            }
        }
    }
}

/// SIGHUP with TLS on: reads the certificate, key and client CAs again; a failure keeps the
/// ones in use and says why. Connections open keep the session they started with.
fn reload(servers: &[Arc<TlsServer>]) {
    for tls in servers {
        match tls.reload() {
            Ok(()) => info!("received SIGHUP: TLS certificate reloaded; new handshakes use it"),
            Err(e) => {
                warn!("received SIGHUP: cannot reload TLS ({e}); keeping the certificate in use")
            }
        }
    }
}

/// A signal taken at `now`. A stopping one: the first starts the shutdown (a lame duck or the
/// drain), the same one again within `DUPLICATE_SIGNAL_WINDOW` is ignored, any other later one
/// aborts. The others are logged, and the server serves on.
fn on_signal(group: &Group, first_stop: &mut Option<(i32, Instant)>, signal: i32, now: Instant) {
    let name = signal_name(signal);
    match signal {
        SIGHUP => {
            info!("received {name}: nothing to reload (TLS is off); serving on");
            return;
        }
        SIGUSR1 => {
            // Two atomic loads: cheap enough to answer at any time, even in a drain.
            info!(
                "received {name}: {} connection(s) open, {}; serving on",
                group.open(),
                state(group.request())
            );
            return;
        }
        SIGUSR2 => {
            info!("received {name}: ignored (it has no use yet); serving on");
            return;
        }
        _ => {}
    }
    if group.request() == RUNNING {
        *first_stop = Some((signal, now));
        if group.drain_delay().is_zero() {
            info!("received {name}: draining connections");
        } else {
            info!("received {name}: lame duck, then draining connections");
        }
        group.shutdown();
        return;
    }
    if let Some((first, at)) = *first_stop {
        let since = now.saturating_duration_since(at);
        if first == signal && since < DUPLICATE_SIGNAL_WINDOW {
            info!(
                "received {name} again {since:?} after the first: the same request sent twice \
                 (as `timeout` does), ignored; a second signal later than \
                 {DUPLICATE_SIGNAL_WINDOW:?} closes every connection"
            );
            return;
        }
    }
    info!("received {name}: closing every connection now");
    group.abort();
}

/// The shutdown state `request` in words, for SIGUSR1's status line.
fn state(request: u8) -> &'static str {
    match request {
        RUNNING => "running",
        LAME_DUCK => "a lame duck",
        DRAIN => "draining",
        _ => "closing every connection",
    }
}

/// A watched signal's name.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGQUIT => "SIGQUIT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        _ => "a signal",
    }
}

/// `now + delay`; a time past what an Instant can hold is a year away, which is no deadline.
fn later(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn a_running_server_serves() {
        let group = Group::new(Vec::new(), 10);
        let mut lifecycle = Lifecycle::new(TIMEOUT);
        assert_eq!(lifecycle.step(&group, Instant::now(), 3), Step::Serve);
        assert!(!lifecycle.draining());
        assert_eq!(lifecycle.wake_at(), None);
    }

    #[test]
    fn the_lame_duck_serves_until_its_delay_then_drains_until_nothing_is_open() {
        let delay = Duration::from_secs(5);
        let group = Group::new(Vec::new(), 10).with_drain_delay(delay);
        let mut lifecycle = Lifecycle::new(TIMEOUT);
        lifecycle.lead();
        on_signal(&group, &mut None, SIGTERM, Instant::now());
        assert_eq!(group.request(), LAME_DUCK);

        let start = Instant::now();
        assert_eq!(
            lifecycle.step(&group, start, 2),
            Step::Serve,
            "the clock starts"
        );
        let end = lifecycle.wake_at().expect("wakes at the lame duck's end");
        assert!(end >= start + delay);
        assert_eq!(
            lifecycle.step(&group, end - Duration::from_millis(1), 2),
            Step::Serve
        );

        assert_eq!(
            lifecycle.step(&group, end, 2),
            Step::StartDrain {
                after_lame_duck: true
            }
        );
        assert_eq!(group.request(), DRAIN, "raised for every loop");
        assert!(lifecycle.draining());
        assert_eq!(lifecycle.wake_at(), Some(end + TIMEOUT));
        assert_eq!(lifecycle.step(&group, end, 2), Step::Drain);
        assert_eq!(lifecycle.step(&group, end + TIMEOUT, 2), Step::CloseAll);
        assert_eq!(lifecycle.step(&group, end + TIMEOUT, 0), Step::Done);
    }

    #[test]
    fn a_loop_that_does_not_lead_waits_out_the_lame_duck() {
        let group = Group::new(Vec::new(), 10).with_drain_delay(Duration::from_secs(5));
        let mut lifecycle = Lifecycle::new(TIMEOUT);
        group.shutdown();
        let late = Instant::now() + Duration::from_secs(60);
        assert_eq!(lifecycle.step(&group, late, 1), Step::Serve);
        assert_eq!(lifecycle.wake_at(), None, "no clock of its own");
        group.drain();
        assert_eq!(
            lifecycle.step(&group, late, 1),
            Step::StartDrain {
                after_lame_duck: false
            }
        );
        assert_eq!(lifecycle.step(&group, late, 1), Step::Drain);
    }

    #[test]
    fn a_second_signal_closes_everything() {
        let group = Group::new(Vec::new(), 10);
        let mut lifecycle = Lifecycle::new(TIMEOUT);
        let now = Instant::now();
        let mut first = None;
        on_signal(&group, &mut first, SIGTERM, now);
        assert_eq!(group.request(), DRAIN, "no drain delay: the drain at once");
        assert_eq!(
            lifecycle.step(&group, now, 4),
            Step::StartDrain {
                after_lame_duck: false
            }
        );
        assert_eq!(lifecycle.step(&group, now, 4), Step::Drain);
        on_signal(&group, &mut first, SIGINT, now);
        assert_eq!(group.request(), ABORT, "another signal, however soon");
        assert_eq!(lifecycle.step(&group, now, 4), Step::CloseAll);
        assert_eq!(lifecycle.step(&group, now, 0), Step::Done);
    }

    #[test]
    fn the_same_signal_again_within_the_window_is_ignored_and_later_aborts() {
        for later in [DRAIN, LAME_DUCK] {
            let delay = if later == DRAIN { 0 } else { 5 };
            let group = Group::new(Vec::new(), 10).with_drain_delay(Duration::from_secs(delay));
            let (mut first, now) = (None, Instant::now());
            on_signal(&group, &mut first, SIGTERM, now);
            assert_eq!(group.request(), later);
            let soon = now + DUPLICATE_SIGNAL_WINDOW - Duration::from_millis(1);
            on_signal(&group, &mut first, SIGTERM, soon);
            assert_eq!(group.request(), later, "a duplicate, as `timeout` sends");
            on_signal(&group, &mut first, SIGTERM, now + DUPLICATE_SIGNAL_WINDOW);
            assert_eq!(group.request(), ABORT, "a second signal");
        }
    }

    #[test]
    fn hup_usr1_and_usr2_never_stop_the_server_and_quit_drains() {
        let group = Group::new(Vec::new(), 10);
        let (mut first, now) = (None, Instant::now());
        for signal in [SIGHUP, SIGUSR1, SIGUSR2] {
            on_signal(&group, &mut first, signal, now);
            assert_eq!(group.request(), RUNNING, "{}", signal_name(signal));
        }
        on_signal(&group, &mut first, SIGQUIT, now);
        assert_eq!(group.request(), DRAIN, "SIGQUIT: nginx's graceful shutdown");
        for signal in [SIGHUP, SIGUSR1, SIGUSR2] {
            on_signal(&group, &mut first, signal, now + Duration::from_secs(1));
            assert_eq!(group.request(), DRAIN, "not a second signal");
        }
    }
}
