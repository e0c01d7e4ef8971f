//! Change windows (`--window HH:MM-HH:MM[,TZ]`): device writes start only inside the window,
//! which may cross midnight. `TZ` is `UTC` (the default) or a fixed offset such as `+02:00`;
//! named zones would need the system's time zone database, which sshfleet does not read.

use std::fmt;
use std::str::FromStr;

const DAY_MINUTES: i64 = 24 * 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Minutes after local midnight.
    start: i64,
    end: i64,
    /// Local time minus UTC, in minutes.
    offset: i64,
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
        let offset = offset(zone).ok_or_else(|| {
            format!("--window: time zone {zone:?} is not UTC or a fixed offset like +02:00 (named zones are not supported)")
        })?;
        Ok(Window { start, end, offset })
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
        let local = (unix_ms.div_euclid(60_000) + self.offset).rem_euclid(DAY_MINUTES);
        if self.start < self.end {
            (self.start..self.end).contains(&local)
        } else {
            local >= self.start || local < self.end
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
        let sign = if self.offset < 0 { '-' } else { '+' };
        write!(
            f,
            "{}-{},UTC{sign}{}",
            hm(self.start),
            hm(self.end),
            hm(self.offset.abs())
        )
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
    fn bad_windows_say_why() {
        for bad in [
            "",
            "22:00",
            "25:00-01:00",
            "10:00-10:00",
            "9:00-17:00",
            "09:00-17:00,Europe/Oslo",
            "09:00-17:00,+15:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?}");
        }
    }
}
