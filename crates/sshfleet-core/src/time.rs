//! Wall-clock time: one clock ([`now`]) and one instant type ([`jiff::Timestamp`]), written
//! and read as RFC 3339 UTC (`2026-12-03T17:55:17.763Z`) and as Unix milliseconds where a
//! file has always held an integer. Calendar arithmetic is jiff's; this module only pins the
//! shapes the project writes and accepts, which are stricter than jiff's own parsers.

use std::time::Duration;

pub use jiff::civil::Date;
pub use jiff::Timestamp;

/// The one wall clock. Code that needs another "now" in tests takes a [`Timestamp`]
/// argument instead of calling this.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_rfc3339() -> String {
    format_rfc3339(now())
}

/// Now in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    now().as_millisecond()
}

/// An instant as RFC 3339 UTC with millisecond precision, the form every file holds.
pub(crate) fn format_rfc3339(at: Timestamp) -> String {
    format!("{at:.3}")
}

/// Unix milliseconds as RFC 3339 UTC with millisecond precision; an instant beyond jiff's
/// range (years -9999..=9999) is written as the nearest one it holds.
pub fn format_rfc3339_millis(unix_ms: i64) -> String {
    format_rfc3339(from_unix_ms(unix_ms))
}

/// Unix milliseconds as an instant, saturating at jiff's range.
pub(crate) fn from_unix_ms(unix_ms: i64) -> Timestamp {
    Timestamp::from_millisecond(unix_ms).unwrap_or(if unix_ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send in `Retry-After`.
/// The weekday is not checked against the date. Out-of-range fields and instants before 1970
/// are `None`, never a panic; a date after jiff's last instant is that instant (forever).
pub fn parse_http_date(text: &str) -> Option<Timestamp> {
    let (_weekday, rest) = text.trim().split_once(' ')?;
    let at = jiff::civil::DateTime::strptime("%d %b %Y %H:%M:%S GMT", rest.trim_start()).ok()?;
    if at.year() < 1970 {
        return None;
    }
    Some(
        jiff::tz::Offset::UTC
            .to_timestamp(at)
            .unwrap_or(Timestamp::MAX),
    )
}

/// A calendar date `YYYY-MM-DD`; `None` for any other shape and for dates that do not
/// exist (`2027-02-30`).
pub fn parse_date(text: &str) -> Option<Date> {
    if !shaped(text.as_bytes(), b"9999-99-99") {
        return None;
    }
    text.parse().ok()
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
pub fn days_between(from: Date, to: Date) -> i64 {
    to.duration_since(from).as_secs() / 86_400
}

/// An RFC 3339 instant (`2026-12-03T17:55:17.763Z`, fraction optional, `Z` or an offset
/// such as `+01:00`). `None` for anything else, including days, times and offsets that do
/// not exist and the looser forms jiff would accept (a space for `T`, no seconds, no offset).
pub(crate) fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let (whole, fraction, zone) = rfc3339_parts(text)?;
    match fraction {
        // jiff holds nanoseconds; finer digits say nothing a millisecond can keep.
        Some(digits) if digits.len() > 9 => format!("{whole}.{}{zone}", &digits[..9]).parse(),
        _ => text.parse(),
    }
    .ok()
}

/// `parse_rfc3339` as Unix milliseconds; sub-millisecond digits are dropped.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    parse_rfc3339(text).map(Timestamp::as_millisecond)
}

/// Today (UTC).
pub fn today() -> Date {
    now().to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// Whether `text` is `pattern` with each `9` standing for one ASCII digit.
fn shaped(text: &[u8], pattern: &[u8]) -> bool {
    text.len() == pattern.len()
        && text.iter().zip(pattern).all(|(t, p)| match p {
            b'9' => t.is_ascii_digit(),
            _ => t == p,
        })
}

/// The RFC 3339 `date-time` grammar split as (`YYYY-MM-DDTHH:MM:SS`, fraction digits,
/// `Z` or `±HH:MM`); `T` and `Z` in either case, offsets within a day.
fn rfc3339_parts(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let (whole, mut zone) = (text.get(..19)?, text.get(19..)?);
    let bytes = whole.as_bytes();
    let whole_shaped = shaped(&bytes[..10], b"9999-99-99")
        && matches!(bytes[10], b'T' | b't')
        && shaped(&bytes[11..], b"99:99:99");
    let mut fraction = None;
    if let Some(rest) = zone.strip_prefix('.') {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        fraction = Some(rest.get(..digits).filter(|d| !d.is_empty())?);
        zone = rest.get(digits..)?;
    }
    let zone_shaped = matches!(zone, "Z" | "z")
        || zone.strip_prefix(['+', '-']).is_some_and(|hm| {
            shaped(hm.as_bytes(), b"99:99") && hm[..2] <= *"23" && hm[3..] <= *"59"
        });
    (whole_shaped && zone_shaped).then_some((whole, fraction, zone))
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
        let epoch = Date::constant(1970, 1, 1);
        let days = |text| parse_date(text).map(|d| days_between(epoch, d));
        assert_eq!(days("1970-01-01"), Some(0));
        assert_eq!(days("2027-03-31"), Some(20_908));
        assert_eq!(days("2028-02-29").map(|d| d - 20_908), Some(335));
        assert_eq!(days("1969-12-31"), Some(-1));
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
            "20270331",
            "2027-W13-3",
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
        assert_eq!(
            parse_rfc3339_ms("2026-12-03t17:55:17.7631234567891z"),
            at,
            "lower case and digits beyond nanoseconds"
        );
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
            "2026-12-03T17:55:17+24:00",
            "2026-12-03T17:55:17+01:60",
            "2026-12-03T17:55:17+01:00:00",
            "2026-12-03T17:55Z",
            "2026-12-03T17:55:17,763Z",
            "20261203T175517Z",
            "2026-12-03T17:55:17Z[UTC]",
            "2026-12-03T1:55:17Z",
            "2026-12-03T17:55:17.763\u{e9}",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_http_dates_and_refuses_absurd_ones() {
        let at = |text| parse_http_date(text).map(Timestamp::as_second);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(at("Tue, 29 Feb 2000 00:00:00 GMT"), Some(951_782_400));
        assert_eq!(
            at("Mon, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777),
            "a wrong weekday is no reason to ignore the date"
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(Timestamp::MAX),
            "beyond the last instant jiff holds is forever, not nothing"
        );
        for absurd in [
            "Fri, 31 Dec 99999999 23:59:59 GMT",
            "Fri, 31 Dec 9223372036854775807 23:59:59 GMT",
            "Fri, 99 Dec 2026 23:59:59 GMT",
            "Fri, 31 Dec 2026 99:59:59 GMT",
            "Thu, 01 Jan 1969 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 GMT junk",
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
