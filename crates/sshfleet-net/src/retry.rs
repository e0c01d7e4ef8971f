//! Retry policy shared by the camera session, the Equinix client and its token source:
//! exponential backoff with jitter, one `Retry-After` rule (seconds or HTTP-date, capped),
//! waits that end on a stop signal, and the User-Agent every request carries.

use std::time::Duration;

use sshfleet_core::time::Timestamp;

use http::{header, HeaderMap};

use sshfleet_core::shutdown::Shutdown;

/// Sent with every request, to cameras and to the API alike.
pub const USER_AGENT: &str = concat!("sshfleet/", env!("CARGO_PKG_VERSION"));

/// Longest wait a server may ask for with `Retry-After`; a longer one is not waited for
/// (the call fails at once and says so).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Retries and their waits: exponential from `base` with jitter, capped at `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Extra tries after a 429, a 5xx or a transport failure (the last two: idempotent only).
    pub retries: u32,
    pub base: Duration,
    /// Longest wait; a `Retry-After` beyond it is not waited for (the call fails instead).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            retries: 4,
            base: Duration::from_millis(500),
            max: MAX_RETRY_AFTER,
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt + 1`: what the server asked for (plus up to
    /// 10 % so that clients told the same instant do not return together), else
    /// `base * 2^attempt`, half fixed and half random. Never longer than `max` plus its jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            let asked = asked.min(self.max);
            return asked.saturating_add(jitter(asked / 10));
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        exp / 2 + jitter(exp / 2)
    }

    /// Whether a server's `Retry-After` is short enough to wait for.
    pub fn accepts(&self, retry_after: Option<Duration>) -> bool {
        retry_after.map_or(true, |asked| asked <= self.max)
    }
}

/// A uniformly random duration in `[0, max)`.
pub fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(fastrand::u64(..nanos))
}

/// The wait a server asks for with `Retry-After`, as delta-seconds or an HTTP date; a date in
/// the past is no wait. Any value is accepted without overflow: callers cap it.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_from(headers, sshfleet_core::time::now())
}

/// [`retry_after`] against a given clock.
pub(crate) fn retry_after_from(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // More seconds than a u64 holds: as good as forever.
        return Some(Duration::MAX);
    }
    let at = sshfleet_core::time::parse_http_date(text)?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or_default())
}

/// How a [`pause`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paused {
    Elapsed,
    /// The stop signal fired first.
    Stopped,
}

/// Waits `wait`, or less if `stop` fires first: no wait outlives a stop request.
pub async fn pause(wait: Duration, stop: &Shutdown) -> Paused {
    let mut stop = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => Paused::Elapsed,
        () = stop.wait() => Paused::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::RETRY_AFTER, v);
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Timestamp::from_second(784_111_777).unwrap_or(Timestamp::UNIX_EPOCH); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after_from(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_from(&headers("Sun, 06 Nov 1994 08:50:37 GMT"), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after_from(&headers("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(retry_after_from(&headers("soon"), now), None);
        assert_eq!(retry_after_from(&HeaderMap::new(), now), None);
    }

    #[test]
    fn hostile_retry_after_values_never_overflow() {
        let backoff = Backoff::default();
        for value in [
            "18446744073709551615",
            "99999999999999999999999999",
            "999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let asked = retry_after(&headers(value));
            assert!(
                !backoff.accepts(asked),
                "{value}: {asked:?} must be refused"
            );
            // Even when a caller waits anyway, the wait is capped.
            let wait = backoff.delay(0, asked);
            assert!(wait <= backoff.max + backoff.max / 10, "{value}: {wait:?}");
        }
        // Dates no calendar here can hold are unreadable: ignored, as if not sent.
        for value in [
            "Fri, 31 Dec 99999999 23:59:59 GMT",
            "Fri, 31 Dec 292277026596 23:59:59 GMT",
        ] {
            assert_eq!(retry_after(&headers(value)), None, "{value}");
        }
    }

    #[test]
    fn waits_are_capped_and_jittered_within_bounds() {
        let backoff = Backoff {
            retries: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        for attempt in 0..40 {
            let wait = backoff.delay(attempt, None);
            assert!(wait <= Duration::from_secs(8), "{attempt}: {wait:?}");
        }
        let wait = backoff.delay(0, Some(Duration::from_secs(5)));
        assert!(wait >= Duration::from_secs(5) && wait < Duration::from_millis(5_500));
        assert!(backoff.accepts(Some(Duration::from_secs(8))));
        assert!(!backoff.accepts(Some(Duration::from_secs(9))));
        assert!(backoff.accepts(None));
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_the_server() {
        let backoff = Backoff::default();
        for attempt in 0..6 {
            let d = backoff.delay(attempt, None);
            let full = (backoff.base * (1 << attempt)).min(backoff.max);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        let asked = Duration::from_secs(3);
        let d = backoff.delay(0, Some(asked));
        assert!(d >= asked && d <= asked + asked / 10);
        assert!(!backoff.accepts(Some(Duration::from_secs(3600))));
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        assert!(jitter(Duration::MAX) < Duration::MAX);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(10)) < Duration::from_millis(10));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_on_the_stop_signal() {
        let (trigger, stop) = sshfleet_core::shutdown::channel();
        let started = tokio::time::Instant::now();
        let waiting = tokio::spawn(async move { pause(Duration::from_secs(86_400), &stop).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.trigger();
        assert_eq!(waiting.await.ok(), Some(Paused::Stopped));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            pause(Duration::from_secs(3), &Shutdown::never()).await,
            Paused::Elapsed
        );
    }
}
