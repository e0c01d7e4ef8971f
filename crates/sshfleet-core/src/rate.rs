//! A rate as the flags spell it (`50/s`, `600/m`, `90/m`, plain `7` per second) and the
//! governor quota that paces it exactly: one cell every `per / count`, never rounded to a
//! whole number per second.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::Quota;

/// The period a rate counts in. An enum, not a `Duration`, so that a `Rate` stays 8 bytes
/// in the argument structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Per {
    Second,
    Minute,
}

impl Per {
    const fn duration(self) -> Duration {
        match self {
            Per::Second => Duration::from_secs(1),
            Per::Minute => Duration::from_secs(60),
        }
    }
}

/// `count` events per second or per minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    count: NonZeroU32,
    per: Per,
}

impl Rate {
    /// `count` per second.
    pub const fn per_second(count: NonZeroU32) -> Rate {
        Rate {
            count,
            per: Per::Second,
        }
    }

    /// `count` per minute.
    pub const fn per_minute(count: NonZeroU32) -> Rate {
        Rate {
            count,
            per: Per::Minute,
        }
    }

    pub fn count(self) -> NonZeroU32 {
        self.count
    }

    /// The period `count` is counted in: a second or a minute.
    pub fn per(self) -> Duration {
        self.per.duration()
    }

    /// The time between two events: exactly `per / count`.
    pub fn spacing(self) -> Duration {
        self.per() / self.count.get()
    }

    /// Events in one second, rounded up, at least one: the default burst, and how many
    /// may be under way at once.
    pub fn per_second_ceil(self) -> NonZeroU32 {
        let per_ms = self.per().as_millis().max(1);
        let in_second = (u128::from(self.count.get()) * 1000).div_ceil(per_ms);
        let in_second = u32::try_from(in_second).unwrap_or(u32::MAX);
        NonZeroU32::new(in_second).unwrap_or(NonZeroU32::MIN)
    }

    /// A quota replenishing one cell every [`Rate::spacing`], with a burst of one second's
    /// worth ([`Rate::per_second_ceil`]), as `Quota::per_second` has for whole rates.
    /// Callers that want another burst set it with `allow_burst`.
    pub fn quota(self) -> Quota {
        let burst = self.per_second_ceil();
        // The spacing is never zero (at most u32::MAX per second is 0.23 ns, which is zero
        // nanoseconds): fall back to the fastest quota governor has for that case.
        Quota::with_period(self.spacing())
            .map_or_else(|| Quota::per_second(self.count), |q| q.allow_burst(burst))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per {
            Per::Second => "s",
            Per::Minute => "m",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `50/s`, `600/m` (also `/sec`, `/min`), or a plain number per second; not zero.
    fn from_str(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        let (number, unit) = text.split_once('/').unwrap_or((text, "s"));
        let per = match unit.trim() {
            "s" | "sec" => Per::Second,
            "m" | "min" => Per::Minute,
            other => return Err(format!("unknown rate unit {other:?} (use /s or /m)")),
        };
        let value: u32 = number
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate {text:?} (try 5/s)"))?;
        let count =
            NonZeroU32::new(value).ok_or_else(|| format!("rate {text:?} must be above zero"))?;
        Ok(Rate { count, per })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "test inputs are literals")]
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn rate_per_minute_is_exact() {
        let quota = rate("90/m").quota();
        assert_eq!(
            quota.replenish_interval(),
            Duration::from_nanos(666_666_666)
        );
        assert_eq!(quota.burst_size().get(), 2);
        let quota = rate("30/m").quota();
        assert_eq!(quota.replenish_interval(), Duration::from_secs(2));
        assert_eq!(quota.burst_size().get(), 1);
        assert_eq!(
            rate("600/m").quota().replenish_interval(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn rate_per_second_matches_governor() {
        let five = NonZeroU32::new(5).unwrap();
        assert_eq!(rate("5/s").quota(), Quota::per_second(five));
        assert_eq!(rate("5").quota(), Quota::per_second(five));
        assert_eq!(Rate::per_second(five).quota(), Quota::per_second(five));
        assert_eq!(
            rate(" 50 / sec ").quota().replenish_interval(),
            Duration::from_millis(20)
        );
        assert_eq!(rate("7/min"), Rate::per_minute(NonZeroU32::new(7).unwrap()));
    }

    #[test]
    fn rate_refuses_zero_and_bad_units() {
        for bad in [
            "0/s", "0/m", "0", "", "/s", "5/h", "5/ms", "-1/s", "1.5/s", "x/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} was accepted");
        }
        assert!("5/h"
            .parse::<Rate>()
            .unwrap_err()
            .contains("unknown rate unit"));
    }

    #[test]
    fn rate_display_round_trips() {
        for text in ["5/s", "90/m", "30/m", "4294967295/s"] {
            assert_eq!(rate(text).to_string(), text);
            assert_eq!(rate(&rate(text).to_string()), rate(text));
        }
        assert_eq!(rate("7").to_string(), "7/s");
    }

    #[test]
    fn rate_in_one_second() {
        assert_eq!(rate("90/m").per_second_ceil().get(), 2);
        assert_eq!(rate("1/m").per_second_ceil().get(), 1);
        assert_eq!(rate("4294967295/s").per_second_ceil().get(), u32::MAX);
        assert_eq!(rate("90/m").per(), Duration::from_secs(60));
        assert_eq!(rate("90/m").count().get(), 90);
    }
}
