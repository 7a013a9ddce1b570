//! The loop's wake-up at its next deadline: a timerfd its poll watches, so `epoll_wait` itself
//! always waits without a timeout.
//!
//! Why not `epoll_wait`'s timeout: with one, the kernel arms and cancels a timer around every
//! sleep, and a loop that sleeps between most messages (any server below its capacity) pays
//! that per message: 0.1-1.0 µs, up to 7 % of a 64 B TLS echo's CPU at 50,000 messages/s. The
//! timerfd is armed only when the deadline moves, which the lazy timer heap makes rare (a
//! connection's later deadlines wait behind the earliest).
//!
//! Must never let the loop sleep past a deadline: an alarm that rang is forgotten, so the next
//! turn arms it again for whatever is then the earliest. Nor spin on one that stays due: a
//! deadline asked for again after it rang (a turn should have taken it; if one did not) rings
//! no sooner than `RETRY` later, as epoll's timeout, rounded up to a millisecond, did.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use log::warn;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// The least wait for a deadline that already rang and is asked for again.
const RETRY: Duration = Duration::from_millis(1);

/// A one-shot timer on the monotonic clock (`Instant`'s), registered edge-triggered: each
/// expiry is one event, whether or not its count was read.
#[derive(Debug)]
pub(super) struct Alarm {
    fd: OwnedFd,
    /// When it rings, if armed and not rung since.
    armed: Option<Instant>,
    /// The last deadline it rang for, once that deadline had come.
    rang_for: Option<Instant>,
    /// Setting it failed once (and was logged): the loop waits with a timeout instead.
    failed: bool,
}

impl Alarm {
    /// A disarmed alarm whose ring is an event for `token` on `registry`.
    pub(super) fn new(registry: &Registry, token: Token) -> io::Result<Alarm> {
        let flags = TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC;
        let fd = timerfd_create(TimerfdClockId::Monotonic, flags)?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Alarm {
            fd,
            armed: None,
            rang_for: None,
            failed: false,
        })
    }

    /// Makes the alarm ring at `at` (`None`: never). A syscall only when `at` moved since the
    /// last call or the alarm rang. False if the timerfd refused (never seen: it takes any time
    /// we give it), logged once: the caller then waits with the poll's own timeout.
    #[inline]
    pub(super) fn set(&mut self, at: Option<Instant>) -> bool {
        if at == self.armed {
            return true;
        }
        match self.arm(at) {
            Ok(()) => {
                self.armed = at;
                true
            }
            Err(e) => {
                if !self.failed {
                    warn!(
                        "cannot set the event loop's timerfd ({e}); waiting with epoll's timeout"
                    );
                    self.failed = true;
                }
                false
            }
        }
    }

    fn arm(&self, at: Option<Instant>) -> io::Result<()> {
        let value = match at {
            Some(at) => wait_for(at, Instant::now(), self.rang_for),
            None => Duration::ZERO,
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec::try_from(value).map_err(|_| io::ErrorKind::InvalidInput)?,
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }

    /// The alarm's event came: it is no longer armed. (An event from before the last re-arm
    /// may still come, for a deadline not yet due: that one is armed again as it was.)
    pub(super) fn rang(&mut self) {
        if let Some(at) = self.armed.take() {
            if at <= Instant::now() {
                self.rang_for = Some(at);
            }
        }
    }
}

/// How long from `now` until the alarm rings for `at`: its time, but never zero (a zero
/// it_value disarms the timer: a deadline already due rings after 1 ns) and never sooner than
/// `RETRY` for a deadline no later than the one it last rang for (`rang_for`).
fn wait_for(at: Instant, now: Instant, rang_for: Option<Instant>) -> Duration {
    let least = match rang_for {
        Some(rang) if at <= rang => RETRY,
        _ => Duration::from_nanos(1),
    };
    at.saturating_duration_since(now).max(least)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    const ALARM: Token = Token(7);

    fn alarm() -> (Poll, Alarm) {
        let poll = Poll::new().unwrap();
        let alarm = Alarm::new(poll.registry(), ALARM).unwrap();
        (poll, alarm)
    }

    fn rings_within(poll: &mut Poll, wait: Duration) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(wait)).unwrap();
        events.iter().any(|e| e.token() == ALARM)
    }

    #[test]
    fn rings_at_its_deadline_and_again_once_rearmed() {
        let (mut poll, mut alarm) = alarm();
        let start = Instant::now();
        assert!(alarm.set(Some(start + Duration::from_millis(30))));
        assert!(rings_within(&mut poll, Duration::from_secs(5)));
        assert!(start.elapsed() >= Duration::from_millis(30), "rang early");
        alarm.rang();
        // Edge-triggered and never read: the next expiry is still an event of its own.
        assert!(alarm.set(Some(Instant::now() + Duration::from_millis(10))));
        assert!(rings_within(&mut poll, Duration::from_secs(5)));
    }

    #[test]
    fn a_due_deadline_rings_at_once_and_none_disarms() {
        let (mut poll, mut alarm) = alarm();
        assert!(alarm.set(Some(Instant::now() - Duration::from_millis(5))));
        assert!(rings_within(&mut poll, Duration::from_secs(5)));
        alarm.rang();
        assert!(alarm.set(Some(Instant::now() + Duration::from_millis(20))));
        assert!(alarm.set(None));
        assert!(!rings_within(&mut poll, Duration::from_millis(100)));
    }

    /// A deadline asked for again after it rang (a turn that did not take it) waits `RETRY`
    /// instead of ringing at once, turn after turn; a later one, or a first one, is not held.
    #[test]
    fn a_deadline_that_stays_due_waits_a_retry_and_no_other_is_held() {
        let now = Instant::now();
        let rang = now - Duration::from_millis(5);
        assert_eq!(wait_for(rang, now, Some(rang)), RETRY);
        assert_eq!(
            wait_for(rang - Duration::from_millis(1), now, Some(rang)),
            RETRY
        );
        assert_eq!(wait_for(rang, now, None), Duration::from_nanos(1));
        let soon = now + Duration::from_micros(10);
        assert_eq!(wait_for(soon, now, Some(rang)), Duration::from_micros(10));
        assert_eq!(wait_for(now, now, Some(rang)), Duration::from_nanos(1));
    }

    /// A stale ring (from before a re-arm, its deadline not yet due) holds nothing back: the
    /// deadline is armed again as it was.
    #[test]
    fn a_stale_ring_is_no_retry() {
        let (_poll, mut alarm) = alarm();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(alarm.set(Some(later)));
        alarm.rang();
        assert_eq!(alarm.rang_for, None);
        assert_eq!(alarm.armed, None);
        let due = Instant::now() - Duration::from_millis(1);
        assert!(alarm.set(Some(due)));
        alarm.rang();
        assert_eq!(alarm.rang_for, Some(due));
    }

    /// The same through the timerfd: the ring for a deadline asked again comes `RETRY` later.
    #[test]
    fn a_deadline_that_stays_due_does_not_spin() {
        let (mut poll, mut alarm) = alarm();
        let due = Instant::now() - Duration::from_millis(5);
        assert!(alarm.set(Some(due)));
        assert!(rings_within(&mut poll, Duration::from_secs(5)));
        alarm.rang();
        let again = Instant::now();
        assert!(alarm.set(Some(due)));
        assert!(rings_within(&mut poll, Duration::from_secs(5)));
        let waited = again.elapsed();
        assert!(waited >= RETRY, "rang again after {waited:?}");
    }

    #[test]
    fn a_moved_deadline_replaces_the_old_one() {
        let (mut poll, mut alarm) = alarm();
        let start = Instant::now();
        assert!(alarm.set(Some(start + Duration::from_secs(60))));
        assert!(alarm.set(Some(start + Duration::from_millis(20))));
        assert!(rings_within(&mut poll, Duration::from_secs(5)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
