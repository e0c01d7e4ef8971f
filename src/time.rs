//! Wall-clock timestamps in RFC 3339 UTC, without a calendar dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_rfc3339() -> String {
    format_rfc3339_millis(now_unix_ms())
}

/// Now in milliseconds since the Unix epoch (0 before it).
pub fn now_unix_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_rfc3339_millis(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send in `Retry-After`.
/// Out-of-range fields and instants no clock can hold are `None`, never a panic.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|name| *name == month)? as i64 + 1;
    let in_range = (1..=31).contains(&day)
        && (0..=9999).contains(&year)
        && (0..24).contains(&h)
        && (0..60).contains(&m)
        && (0..=60).contains(&s);
    if !in_range {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(secs).ok()?))
}

/// A calendar date `YYYY-MM-DD` as days since 1970-01-01; `None` for anything else,
/// including dates that do not exist (`2027-02-30`).
pub fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    let year: i64 = text[0..4].parse().ok()?;
    let month: i64 = text[5..7].parse().ok()?;
    let day: i64 = text[8..10].parse().ok()?;
    if !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // Round-trips only when the day exists in that month.
    (civil_from_days(days) == (year, month as u32, day as u32)).then_some(days)
}

/// An RFC 3339 instant (`2026-12-03T17:55:17.763Z`, fraction optional, `Z` or an offset
/// such as `+01:00`) as Unix milliseconds; sub-millisecond digits are dropped. `None` for
/// anything else, including days and times that do not exist.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let days = parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't'])?;
    let bytes = rest.as_bytes();
    let shaped = bytes.len() >= 8
        && bytes[2] == b':'
        && bytes[5] == b':'
        && [0, 1, 3, 4, 6, 7]
            .iter()
            .all(|&i| bytes[i].is_ascii_digit());
    if !shaped {
        return None;
    }
    let field = |at: usize| i64::from(bytes[at] - b'0') * 10 + i64::from(bytes[at + 1] - b'0');
    let (h, m, s) = (field(0), field(3), field(6));
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut rest = &rest[8..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, b) in fraction.bytes().take(3).enumerate().take(digits) {
            millis += i64::from(b - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = rest.get(1..)?.as_bytes();
            let ok = zone.len() == 5
                && zone[2] == b':'
                && [0, 1, 3, 4].iter().all(|&i| zone[i].is_ascii_digit());
            if !ok {
                return None;
            }
            let (zh, zm) = (
                i64::from(zone[0] - b'0') * 10 + i64::from(zone[1] - b'0'),
                i64::from(zone[3] - b'0') * 10 + i64::from(zone[4] - b'0'),
            );
            if zh > 23 || zm > 59 {
                return None;
            }
            sign * (zh * 60 + zm)
        }
    };
    let secs = days * 86_400 + h * 3600 + m * 60 + s - offset_minutes * 60;
    secs.checked_mul(1000)?.checked_add(millis)
}

/// Today (UTC) as days since 1970-01-01.
pub fn today() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs() / 86_400).unwrap_or(i64::MAX)
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian); years 0..=9999 only.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A duration as a person reads an age: `45s`, `12m`, `5h`, `3d`.
pub fn human_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7_199 => format!("{}m", secs / 60),
        7_200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict_and_must_exist() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2027-03-31"), Some(20_908));
        assert_eq!(parse_date("2028-02-29").map(|d| d - 20_908), Some(335));
        for bad in [
            "2027-02-29",
            "2027-13-01",
            "2027-00-10",
            "2027-04-31",
            "2027-3-31",
            "27-03-31",
            "2027/03/31",
            "2027-03-31T00:00",
            "",
            "yesterday",
            "+027-03-31",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_instants_round_trip_and_odd_ones_are_refused() {
        for text in [
            "2026-12-03T17:55:17.763Z",
            "1970-01-01T00:00:00.000Z",
            "2028-02-29T23:59:59.999Z",
        ] {
            let ms = parse_rfc3339_ms(text);
            assert_eq!(ms.map(format_rfc3339_millis).as_deref(), Some(text));
        }
        let at = parse_rfc3339_ms("2026-12-03T17:55:17.763Z");
        assert_eq!(parse_rfc3339_ms("2026-12-03T18:55:17.7631+01:00"), at);
        assert_eq!(
            parse_rfc3339_ms("2026-12-03T17:55:17Z").map(|ms| ms % 1000),
            Some(0)
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        for bad in [
            "",
            "2026-12-03",
            "2026-12-03 17:55:17Z",
            "2026-12-03T17:55:17",
            "2026-12-03T24:00:00Z",
            "2026-12-03T17:60:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-03T17:55:17.Z",
            "2026-12-03T17:55:17.763Zjunk",
            "2026-12-03T17:55:17+1:00",
            "2026-12-03T1:55:17Z",
            "2026-12-03T17:55:17.763\u{e9}",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_http_dates_and_refuses_absurd_ones() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for absurd in [
            "Fri, 31 Dec 99999999 23:59:59 GMT",
            "Fri, 31 Dec 9223372036854775807 23:59:59 GMT",
            "Fri, 99 Dec 2026 23:59:59 GMT",
            "Fri, 31 Dec 2026 99:59:59 GMT",
            "Thu, 01 Jan 1969 00:00:00 GMT",
            "Fri, 31 Foo 2026 23:59:59 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(absurd), None, "{absurd}");
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(1_795_435_200_123),
            "2026-11-23T12:00:00.123Z"
        );
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
