//! The `Date` header's value (RFC 9110 IMF-fixdate), formatted at most once a second per event
//! loop rather than per response.
//!
//! It reads the wall clock only when a second may have passed, and never allocates.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// `Sun, 06 Nov 1994 08:49:37 GMT`: always 29 bytes.
pub const DATE_LEN: usize = 29;

/// The current second, formatted.
#[derive(Debug, Clone)]
pub struct DateCache {
    text: [u8; DATE_LEN],
    /// When the wall clock next turns a second; `None` before the first use.
    refresh_at: Option<Instant>,
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            text: [b' '; DATE_LEN],
            refresh_at: None,
        }
    }
}

impl DateCache {
    /// The date at `now`, the time of this turn of the loop.
    pub fn at(&mut self, now: Instant) -> &[u8; DATE_LEN] {
        if self.refresh_at.is_none_or(|at| now >= at) {
            let wall = SystemTime::now();
            let date = httpdate::HttpDate::from(wall);
            // An IMF-fixdate is always 29 bytes, so the write fits exactly.
            let _ = write!(&mut self.text[..], "{date}");
            let into_second = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(Duration::ZERO, |d| {
                    Duration::from_nanos(u64::from(d.subsec_nanos()))
                });
            self.refresh_at = Some(now + (Duration::from_secs(1) - into_second));
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_an_imf_fixdate_and_keeps_it_within_the_second() {
        let mut cache = DateCache::default();
        let now = Instant::now();
        let first = *cache.at(now);
        let text = std::str::from_utf8(&first).unwrap();
        let parsed = httpdate::parse_http_date(text).expect("an IMF-fixdate");
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age < Duration::from_secs(2), "{text} is {age:?} old");
        assert!(text.ends_with(" GMT"), "{text}");
        assert_eq!(*cache.at(now), first, "the same turn reuses it");
        let later = now + Duration::from_secs(2);
        let next = std::str::from_utf8(cache.at(later)).unwrap().to_string();
        assert!(httpdate::parse_http_date(&next).unwrap() >= parsed);
    }
}
