//! AXIS OS versions as cameras report them (`10.12.114`, `9.80.3.8`), parsed strictly and
//! compared part by part as numbers.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Longest version text echoed back in a message.
const MAX_SHOWN_CHARS: usize = 64;

/// An AXIS OS version as a camera reports it: two to four decimal numbers joined by dots
/// (`10.12.114`, `9.80.3.8`), nothing else. Missing parts compare as 0, so `9.80.3` and
/// `9.80.3.0` are the same version; parts compare as numbers (`10.12.99` < `10.12.114`).
#[derive(Clone, Copy, Debug)]
pub struct AxisOsVersion {
    parts: [u32; 4],
    /// How many parts were written (2 to 4), for display.
    written: usize,
}

/// A version text that is not an AXIS OS version: it matches no advisory, and says so.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{shown:?} is not an AXIS OS version (two to four numbers joined by dots, like 11.11.73): \
     no advisory is matched to it"
)]
pub struct VersionError {
    /// The text, printable ASCII only and cut to a bounded length.
    shown: String,
}

impl VersionError {
    fn new(text: &str) -> VersionError {
        let shown = text
            .chars()
            .take(MAX_SHOWN_CHARS)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        VersionError { shown }
    }
}

impl FromStr for AxisOsVersion {
    type Err = VersionError;

    /// Strict: surrounding spaces are ignored, but any suffix (`-beta`, `_rc1`), prefix (`v`),
    /// empty part, leading zero, sign, non-ASCII digit or number past `u32` is refused.
    fn from_str(text: &str) -> Result<AxisOsVersion, VersionError> {
        let bad = || VersionError::new(text);
        let mut parts = [0u32; 4];
        let mut written = 0;
        for piece in text.trim().split('.') {
            let slot = parts.get_mut(written).ok_or_else(bad)?;
            *slot = version_part(piece).ok_or_else(bad)?;
            written += 1;
        }
        if written < 2 {
            return Err(bad());
        }
        Ok(AxisOsVersion { parts, written })
    }
}

/// One part of a version: ASCII digits, no leading zero (but `0` itself), within `u32`.
fn version_part(piece: &str) -> Option<u32> {
    let digits = !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = piece.len() > 1 && piece.starts_with('0');
    if !digits || leading_zero {
        return None;
    }
    piece.parse().ok()
}

impl PartialEq for AxisOsVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for AxisOsVersion {}

impl PartialOrd for AxisOsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AxisOsVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for AxisOsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.parts.get(..self.written).unwrap_or(&self.parts);
        for (i, part) in shown.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn v(text: &str) -> AxisOsVersion {
        text.parse().unwrap()
    }

    #[test]
    fn versions_cameras_report_parse_and_print_as_written() {
        for text in [
            "10.12.114",
            "11.11.73",
            "9.80.3.8",
            "12.2.62",
            "13.0.4",
            "6.50.5.21",
            "5.51",
            "12.0.0",
            "0.0",
            "4294967295.1",
        ] {
            assert_eq!(v(text).to_string(), text, "{text}");
        }
        assert_eq!(v(" 10.12.114\n").to_string(), "10.12.114");
    }

    #[test]
    fn anything_but_two_to_four_plain_numbers_is_refused_and_says_so() {
        for text in [
            "",
            "   ",
            "12",
            "10.12.114-beta",
            "10.12.114_beta",
            "11.10.61 beta",
            "v10.12.114",
            "AXIS OS 10.12.114",
            "10..12",
            "10.12.",
            ".10.12",
            "1.2.3.4.5",
            "10.012.1",
            "+10.12.1",
            "-1.0",
            "10.12.x",
            "10,12,114",
            "\u{ff11}\u{ff10}.12.1",
            "4294967296.1",
            "10.12.114?",
            "SSH-2.0-OpenSSH_9.6",
            "OpenSSH_8.4p1",
            "dropbear_2022.83",
        ] {
            let err = text.parse::<AxisOsVersion>().unwrap_err();
            let said = err.to_string();
            assert!(
                said.contains("is not an AXIS OS version"),
                "{text:?}: {said}"
            );
            assert!(said.contains("no advisory is matched"), "{text:?}: {said}");
        }
    }

    #[test]
    fn a_hostile_version_text_is_echoed_printable_and_bounded() {
        let text = format!("\u{1b}[31m{}", "9".repeat(10_000));
        let said = text.parse::<AxisOsVersion>().unwrap_err().to_string();
        assert!(!said.contains('\u{1b}'));
        assert!(said.len() < 300, "{} bytes", said.len());
    }

    #[test]
    fn versions_compare_part_by_part_as_numbers() {
        let ascending = [
            "6.50.5.20",
            "6.50.5.21",
            "8.40.89",
            "9.80.3",
            "9.80.3.8",
            "9.80.100",
            "10.12.99",
            "10.12.114",
            "11.11.73",
            "11.11.140",
            "12.2.62",
            "12.10.35",
            "12.10.36",
            "13.0.4",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("9.80.3"), v("9.80.3.0"));
        assert_eq!(v("12.4"), v("12.4.0"));
    }
}
