//! Change windows (`--window HH:MM-HH:MM[,TZ]`): device writes start only inside the window,
//! which may cross midnight. `TZ` is `UTC` (the default), a fixed offset such as `+02:00`, or
//! an IANA zone name such as `Europe/Stockholm`, whose offset (daylight saving time included)
//! is taken at each instant asked about: the system's zoneinfo when it has the zone, else the
//! database built into sshfleet.

use std::fmt;
use std::str::FromStr;

const DAY_MINUTES: i64 = 24 * 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Minutes after local midnight.
    start: i64,
    end: i64,
    zone: Zone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Zone {
    /// Local time minus UTC, in minutes.
    Fixed(i64),
    Named(jiff::tz::TimeZone),
}

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Window, String> {
        let (span, zone) = match text.split_once(',') {
            Some((span, zone)) => (span.trim(), zone.trim()),
            None => (text.trim(), "UTC"),
        };
        let (start, end) = span.split_once('-').ok_or_else(|| {
            format!("--window {text:?}: give HH:MM-HH:MM[,TZ], e.g. 22:00-05:00,+01:00")
        })?;
        let start = minutes(start.trim())
            .ok_or_else(|| format!("--window: {start:?} is not a time HH:MM"))?;
        let end =
            minutes(end.trim()).ok_or_else(|| format!("--window: {end:?} is not a time HH:MM"))?;
        if start == end {
            return Err(format!(
                "--window {text:?} is empty (it starts when it ends)"
            ));
        }
        let zone = match offset(zone) {
            Some(minutes) => Zone::Fixed(minutes),
            None => Zone::Named(named(zone)?),
        };
        Ok(Window { start, end, zone })
    }
}

fn minutes(text: &str) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// An IANA zone (`Europe/Stockholm`); anything else says what a zone may be.
fn named(zone: &str) -> Result<jiff::tz::TimeZone, String> {
    let shaped = !zone.is_empty()
        && zone.len() <= 64
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
    let found = shaped.then(|| jiff::tz::TimeZone::get(zone).ok()).flatten();
    found.ok_or_else(|| {
        format!("--window: time zone {zone:?} is not UTC, a fixed offset like +02:00 or a known IANA zone like Europe/Stockholm")
    })
}

fn offset(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("utc") || zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let zone = zone.strip_prefix("UTC").unwrap_or(zone);
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let total = minutes(rest)?;
    (total <= 14 * 60).then_some(sign * total)
}

impl Window {
    /// Whether `unix_ms` falls inside the window.
    pub fn contains(&self, unix_ms: i64) -> bool {
        let local = (unix_ms.div_euclid(60_000) + self.offset_at(unix_ms)).rem_euclid(DAY_MINUTES);
        if self.start < self.end {
            (self.start..self.end).contains(&local)
        } else {
            local >= self.start || local < self.end
        }
    }

    /// Local time minus UTC at `unix_ms`, in minutes.
    fn offset_at(&self, unix_ms: i64) -> i64 {
        match &self.zone {
            Zone::Fixed(minutes) => *minutes,
            Zone::Named(tz) => jiff::Timestamp::from_millisecond(unix_ms)
                .map(|at| i64::from(tz.to_offset(at).seconds()) / 60)
                .unwrap_or(0),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{},", hm(self.start), hm(self.end))?;
        match &self.zone {
            Zone::Fixed(offset) => {
                let sign = if *offset < 0 { '-' } else { '+' };
                write!(f, "UTC{sign}{}", hm(offset.abs()))
            }
            Zone::Named(tz) => f.write_str(tz.iana_name().unwrap_or("?")),
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    /// 2026-12-03 at `h:m` UTC, in Unix milliseconds.
    fn at(h: i64, m: i64) -> i64 {
        (20_790 * 86_400 + h * 3600 + m * 60) * 1000
    }

    #[test]
    fn windows_cross_midnight_and_shift_by_their_offset() {
        let night: Window = "22:00-05:00".parse().unwrap();
        assert!(night.contains(at(23, 30)) && night.contains(at(4, 59)));
        assert!(!night.contains(at(5, 0)) && !night.contains(at(12, 0)));
        assert!(night.contains(at(22, 0)));
        let day: Window = "09:00-17:00,+02:00".parse().unwrap();
        // 09:00 at UTC+2 is 07:00 UTC.
        assert!(day.contains(at(7, 0)) && !day.contains(at(6, 59)) && !day.contains(at(15, 0)));
        let west: Window = "09:00-17:00,UTC-05:00".parse().unwrap();
        assert!(west.contains(at(14, 0)) && !west.contains(at(13, 59)));
        assert_eq!(day.to_string(), "09:00-17:00,UTC+02:00");
    }

    #[test]
    fn named_zones_follow_daylight_saving_time() {
        let oslo: Window = "09:00-17:00,Europe/Oslo".parse().unwrap();
        // December: UTC+1, so 09:00 in Oslo is 08:00 UTC.
        assert!(oslo.contains(at(8, 0)) && !oslo.contains(at(7, 59)));
        assert!(oslo.contains(at(15, 59)) && !oslo.contains(at(16, 0)));
        // 2026-07-01, summer: UTC+2, so 09:00 in Oslo is 07:00 UTC.
        let july = |h: i64, m: i64| ((20_635 * 86_400) + h * 3600 + m * 60) * 1000;
        assert!(oslo.contains(july(7, 0)) && !oslo.contains(july(6, 59)));
        assert!(!oslo.contains(july(15, 0)));
        assert_eq!(oslo.to_string(), "09:00-17:00,Europe/Oslo");
        let err = "09:00-17:00,Europe/Nowhere".parse::<Window>().unwrap_err();
        assert!(err.contains("IANA zone"), "{err}");
    }

    #[test]
    fn bad_windows_say_why() {
        for bad in [
            "",
            "22:00",
            "25:00-01:00",
            "10:00-10:00",
            "9:00-17:00",
            "09:00-17:00,Europe/Nowhere",
            "09:00-17:00,../../etc/passwd",
            "09:00-17:00,+15:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?}");
        }
    }
}
