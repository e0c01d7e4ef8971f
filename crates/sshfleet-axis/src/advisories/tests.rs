//! The shipped advisories, the file format's checks, combining a user's file, and which
//! advisories apply to real AXIS OS versions.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::*;

fn builtin() -> Advisories {
    Advisories::builtin().unwrap()
}

fn ids(advisories: &[&Advisory]) -> Vec<String> {
    advisories.iter().map(|a| a.id.clone()).collect()
}

#[test]
fn the_shipped_file_parses_and_every_advisory_names_its_source() {
    let all = builtin();
    assert!(all.len() >= 10, "{} advisories", all.len());
    for a in all.iter() {
        assert!(a.source.starts_with("https://"), "{}: {}", a.id, a.source);
        assert!(!a.affected.is_empty(), "{}", a.id);
        assert!(!a.summary.is_empty() && a.summary.len() <= 240, "{}", a.id);
        if let Some(url) = &a.advisory {
            assert!(url.starts_with("https://www.axis.com/"), "{}: {url}", a.id);
        }
    }
    let file = parse(BUILTIN, BUILTIN_ORIGIN).unwrap();
    assert_eq!(file.mode, Mode::Extend, "the built-in file sets no mode");
}

#[test]
fn the_ssh_advisory_of_the_issue_is_shipped_as_its_record_says() {
    let all = builtin();
    let a = all.get("CVE-2026-1185").unwrap();
    assert!(a.needs_ssh);
    assert_eq!(a.affected.len(), 1);
    assert_eq!(a.affected[0].to_string(), "12.0.0 up to before 12.10.36");
    let ssh_ones: Vec<&str> = all
        .iter()
        .filter(|a| a.needs_ssh)
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(ssh_ones, ["CVE-2026-1185"]);
}

/// (version as reported, advisory, applies?) against the shipped ranges, read from the
/// CVE records: each row sits at or next to a range's edge, on every track.
const TABLE: &[(&str, &str, bool)] = &[
    ("12.10.35", "CVE-2026-1185", true),
    ("12.10.36", "CVE-2026-1185", false),
    ("12.0.0", "CVE-2026-1185", true),
    ("12.2.62", "CVE-2026-1185", true),
    ("13.0.4", "CVE-2026-1185", false),
    ("11.11.73", "CVE-2026-1185", false),
    ("10.12.114", "CVE-2026-1185", false),
    // The newest: the only one with a range on the 13 track.
    ("12.11.79", "CVE-2026-9063", true),
    ("12.11.80", "CVE-2026-9063", false),
    ("13.0.4", "CVE-2026-9063", true),
    ("13.0.14", "CVE-2026-9063", false),
    ("11.11.73", "CVE-2026-9063", false),
    ("12.10.3", "CVE-2026-0804", true),
    ("12.10.4", "CVE-2026-0804", false),
    ("12.9.31", "CVE-2026-0541", true),
    ("12.9.32", "CVE-2026-0541", false),
    ("12.9.32", "CVE-2026-0802", true),
    ("12.9.33", "CVE-2026-0802", false),
    ("11.11.73", "CVE-2026-0802", false),
    // port.cgi: fixed on every track, each at its own version.
    ("6.50.5.20", "CVE-2025-9524", true),
    ("6.50.5.21", "CVE-2025-9524", false),
    ("8.40.88", "CVE-2025-9524", true),
    ("8.40.89", "CVE-2025-9524", false),
    ("9.80.3.8", "CVE-2025-9524", true),
    ("9.80.123", "CVE-2025-9524", false),
    ("10.12.114", "CVE-2025-9524", true),
    ("10.12.304", "CVE-2025-9524", true),
    ("10.12.305", "CVE-2025-9524", false),
    ("11.11.176", "CVE-2025-9524", true),
    ("11.11.177", "CVE-2025-9524", false),
    ("12.7.10", "CVE-2025-9524", true),
    ("12.7.11", "CVE-2025-9524", false),
    ("13.0.4", "CVE-2025-9524", false),
    ("5.51.7.4", "CVE-2025-9524", false),
    // Device Configuration: only 11.8 onwards and 12 were ever affected.
    ("11.7.57", "CVE-2025-0324", false),
    ("11.8.0", "CVE-2025-0324", true),
    ("11.11.73", "CVE-2025-0324", true),
    ("11.11.140", "CVE-2025-0324", false),
    ("10.12.114", "CVE-2025-0324", false),
    ("12.3.32", "CVE-2025-0324", true),
    ("12.3.33", "CVE-2025-0324", false),
    ("9.80.99", "CVE-2025-0325", true),
    ("9.80.100", "CVE-2025-0325", false),
    ("10.12.277", "CVE-2025-0325", true),
    ("10.12.278", "CVE-2025-0325", false),
    ("12.4.27", "CVE-2025-0325", true),
    ("12.4.28", "CVE-2025-0325", false),
    ("12.3.99", "CVE-2025-0358", true),
    ("12.4.0", "CVE-2025-0358", false),
    ("11.11.73", "CVE-2025-0358", false),
    ("11.10.61", "CVE-2025-0361", false),
    ("11.11.0", "CVE-2025-0361", true),
    ("11.11.141", "CVE-2025-0361", false),
    ("12.3.55", "CVE-2025-0361", true),
    ("12.3.56", "CVE-2025-0361", false),
];

#[test]
fn advisories_apply_by_the_ranges_of_each_track() {
    let all = builtin();
    for &(version, id, expected) in TABLE {
        let found = all.for_firmware(version).unwrap();
        let applies = found.iter().any(|a| a.id == id);
        assert_eq!(applies, expected, "{id} on AXIS OS {version}");
    }
}

#[test]
fn a_fix_on_one_track_says_nothing_about_another() {
    let all = builtin();
    // 11.11.177 has the port.cgi fix; 10.12.300, released later, does not.
    assert!(!all
        .for_firmware("11.11.177")
        .unwrap()
        .iter()
        .any(|a| a.id == "CVE-2025-9524"));
    assert!(all
        .for_firmware("10.12.300")
        .unwrap()
        .iter()
        .any(|a| a.id == "CVE-2025-9524"));
    // A version past every fix of its track has none of them.
    assert!(all.for_firmware("11.11.177").unwrap().is_empty());
}

#[test]
fn a_firmware_text_that_is_not_a_version_matches_nothing_and_says_so() {
    let all = builtin();
    for text in ["12.2.62-beta", "SSH-2.0-OpenSSH_9.6", "", "unknown"] {
        let err = all.for_firmware(text).unwrap_err();
        assert!(
            err.to_string().contains("not an AXIS OS version"),
            "{text:?}"
        );
    }
}

fn bad(text: &str) -> String {
    parse(text, "user.toml").unwrap_err().to_string()
}

const GOOD: &str = r#"
[[advisory]]
id = "CVE-2099-0001"
needs_ssh = true
summary = "Made up for a test."
affected = [{ from = "11.0.0", fixed = "11.11.200" }, { from = "12.0.0", fixed = "12.9.0" }]
source = "https://example.com/CVE-2099-0001"
"#;

/// (text in [`GOOD`], replaced by, what the message must say).
const WRONG: &[(&str, &str, &str)] = &[
    ("[[advisory]]", "[[advisories]]", "unknown field"),
    (
        "needs_ssh = true",
        "needs_ssh = true\nseverity = 9",
        "unknown field",
    ),
    (
        "fixed = \"12.9.0\" }",
        "fixed = \"12.9.0\", to = \"1.0\" }",
        "unknown field",
    ),
    (
        "needs_ssh = true\n",
        "",
        "line 2: advisory CVE-2099-0001: `needs_ssh` is missing",
    ),
    ("needs_ssh = true", "needs_ssh = \"yes\"", "line 4"),
    (
        "\"12.9.0\"",
        "\"12.9.0-rc1\"",
        "line 6: advisory CVE-2099-0001: `fixed` \"12.9.0-rc1\"",
    ),
    (
        "\"12.9.0\"",
        "\"11.9.0\"",
        "`from` 12.0.0 is not before `fixed` 11.9.0",
    ),
    ("\"12.0.0\"", "\"11.5.0\"", "overlaps"),
    ("CVE-2099-0001\"", "2099-0001\"", "must be a CVE id"),
    (
        "https://example",
        "http://example",
        "`source` must be an https:// address",
    ),
    ("affected = [{", "affected = []\nx = [{", "unknown field"),
    (
        "summary = \"Made up for a test.\"",
        "summary = \"two\\nlines\"",
        "one line",
    ),
    (
        "summary = \"Made up for a test.\"\n",
        "",
        "`summary` is missing",
    ),
];

#[test]
fn a_wrong_file_is_refused_with_its_line_and_what_is_wrong() {
    assert!(parse(GOOD, "user.toml").is_ok());
    for &(from, to, expected) in WRONG {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "{from:?} is not in the sample");
        let said = bad(&text);
        assert!(said.contains(expected), "{to:?}: {said}");
        assert!(said.starts_with("user.toml"), "{said}");
    }
    let twice = format!("{GOOD}{GOOD}");
    assert!(bad(&twice).contains("line 9: advisory CVE-2099-0001: the same id is used twice"));
    assert!(bad(&format!("mode = \"merge\"\n{GOOD}")).contains("line 1"));
    assert!(bad("[[advisory]]\nid = \"CVE-2099-0002\"\nneeds_ssh = false\nsummary = \"s\"\nsource = \"https://e.com\"\naffected = []\n").contains("1 to 32 ranges"));
}

fn user_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("advisories.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn a_user_file_extends_the_built_in_set_and_its_same_id_replaces() {
    let corrected = r#"
[[advisory]]
id = "CVE-2026-1185"
needs_ssh = true
summary = "Local correction."
affected = [{ from = "12.0.0", fixed = "12.11.0" }]
source = "https://example.com/ours"
"#;
    let (_dir, path) = user_file(&format!("{GOOD}{corrected}"));
    let builtin = builtin();
    let all = Advisories::load(Some(&path)).unwrap();
    assert_eq!(all.len(), builtin.len() + 1);
    assert_eq!(
        all.get("CVE-2026-1185").unwrap().summary,
        "Local correction."
    );
    // The corrected range reaches past the built-in fix (12.10.36); the new one adds 11.11.
    let has = |set: &Advisories, version: &str, id: &str| {
        ids(&set.for_firmware(version).unwrap()).contains(&id.to_owned())
    };
    assert!(has(&all, "12.10.40", "CVE-2026-1185"));
    assert!(!has(&builtin, "12.10.40", "CVE-2026-1185"));
    assert!(has(&all, "11.11.180", "CVE-2099-0001"));
    assert!(!has(&all, "10.12.114", "CVE-2099-0001"));
    let order = |set: &Advisories| set.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    let (before, after) = (order(&builtin), order(&all));
    assert_eq!(after[..before.len()], before[..], "replaced in place");
    assert_eq!(after.last().unwrap(), "CVE-2099-0001", "new ones after");
}

#[test]
fn a_user_file_in_replace_mode_is_the_whole_set() {
    let (_dir, path) = user_file(&format!("mode = \"replace\"\n{GOOD}"));
    let all = Advisories::load(Some(&path)).unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["CVE-2099-0001"]
    );
    assert!(all
        .for_firmware("12.2.62")
        .unwrap()
        .iter()
        .all(|a| a.id == "CVE-2099-0001"));
    assert!(
        all.for_firmware("10.12.114").unwrap().is_empty(),
        "no range on 10.12"
    );
}

#[test]
fn an_unreadable_or_oversized_user_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    let said = Advisories::load(Some(&missing)).unwrap_err().to_string();
    assert!(
        said.contains("cannot read the advisories") && said.contains("none.toml"),
        "{said}"
    );
    let big = format!("{GOOD}{}", "#".repeat(1 << 20));
    let (_dir, path) = user_file(&big);
    let said = Advisories::load(Some(&path)).unwrap_err().to_string();
    assert!(said.contains("more than the 1 MiB"), "{said}");
}
