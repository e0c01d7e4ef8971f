//! The simulator's own statement of which Axis advisories apply to the AXIS OS versions its
//! cameras report, for the truth file. Written out here from the advisories' CVE records, with
//! its own version comparison: it shares nothing with the client's advisory code, so a
//! misreading of a range on either side shows in every truth comparison.

/// One advisory: its id, whether exploiting it needs an SSH login, and the affected ranges
/// (`from` up to before `fixed`, one per AXIS OS track).
struct Advisory {
    id: &'static str,
    needs_ssh: bool,
    affected: &'static [(&'static str, &'static str)],
}

/// The advisories of `inputs/axis-advisories.toml`, in its order, restated.
const TABLE: [Advisory; 10] = [
    Advisory {
        id: "CVE-2026-9063",
        needs_ssh: false,
        affected: &[("12.0.0", "12.11.80"), ("13.0.0", "13.0.14")],
    },
    Advisory {
        id: "CVE-2026-1185",
        needs_ssh: true,
        affected: &[("12.0.0", "12.10.36")],
    },
    Advisory {
        id: "CVE-2026-0541",
        needs_ssh: false,
        affected: &[("12.0.0", "12.9.32")],
    },
    Advisory {
        id: "CVE-2026-0802",
        needs_ssh: false,
        affected: &[("12.0.0", "12.9.33")],
    },
    Advisory {
        id: "CVE-2026-0804",
        needs_ssh: false,
        affected: &[("12.0.0", "12.10.4")],
    },
    Advisory {
        id: "CVE-2025-9524",
        needs_ssh: false,
        affected: &[
            ("6.50.0", "6.50.5.21"),
            ("7.0.0", "8.40.89"),
            ("9.0.0", "9.80.123"),
            ("10.0.0", "10.12.305"),
            ("11.0.0", "11.11.177"),
            ("12.0.0", "12.7.11"),
        ],
    },
    Advisory {
        id: "CVE-2025-0324",
        needs_ssh: false,
        affected: &[("11.8.0", "11.11.140"), ("12.0.0", "12.3.33")],
    },
    Advisory {
        id: "CVE-2025-0325",
        needs_ssh: false,
        affected: &[
            ("6.50.0", "6.50.5.21"),
            ("7.0.0", "8.40.74"),
            ("9.0.0", "9.80.100"),
            ("10.0.0", "10.12.278"),
            ("11.0.0", "11.11.142"),
            ("12.0.0", "12.4.28"),
        ],
    },
    Advisory {
        id: "CVE-2025-0358",
        needs_ssh: false,
        affected: &[("12.0.0", "12.4.0")],
    },
    Advisory {
        id: "CVE-2025-0361",
        needs_ssh: false,
        affected: &[("11.11.0", "11.11.141"), ("12.0.0", "12.3.56")],
    },
];

/// A version as four numbers (missing ones 0); `None` for anything but two to four plain
/// numbers joined by dots.
fn parts(version: &str) -> Option<[u64; 4]> {
    let mut out = [0u64; 4];
    let mut n = 0;
    for piece in version.split('.') {
        if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) || n == 4 {
            return None;
        }
        out[n] = piece.parse().ok()?;
        n += 1;
    }
    (n >= 2).then_some(out)
}

/// What the advisories say of a camera reporting `firmware`: the ids that apply and those of
/// them that need SSH; `None` when `firmware` is no AXIS OS version.
pub(crate) fn applying(firmware: &str) -> Option<(Vec<&'static str>, Vec<&'static str>)> {
    let version = parts(firmware)?;
    let mut ids = Vec::new();
    let mut ssh = Vec::new();
    for advisory in &TABLE {
        let hit = advisory.affected.iter().any(|(from, fixed)| {
            matches!((parts(from), parts(fixed)), (Some(f), Some(x)) if f <= version && version < x)
        });
        if hit {
            ids.push(advisory.id);
            if advisory.needs_ssh {
                ssh.push(advisory.id);
            }
        }
    }
    Some((ids, ssh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_versions_fall_inside_beside_and_after_the_ssh_advisory() {
        let ssh_of = |v| applying(v).map(|(_, ssh)| ssh);
        assert_eq!(ssh_of("12.2.62"), Some(vec!["CVE-2026-1185"]));
        assert_eq!(ssh_of("12.10.35"), Some(vec!["CVE-2026-1185"]));
        assert_eq!(ssh_of("12.10.36"), Some(vec![]));
        assert_eq!(applying("12.11.80"), Some((vec![], vec![])));
        assert_eq!(
            applying("10.12.114").map(|(ids, _)| ids),
            Some(vec!["CVE-2025-9524", "CVE-2025-0325"])
        );
        assert_eq!(applying("12.2.62").map(|(ids, _)| ids.len()), Some(10));
        assert_eq!(applying("12.5.1-beta"), None);
        assert!(parts("1.2.3.4.5").is_none());
    }
}
