//! The SSH-user policy of `equinix ssh-users remediate`: a TOML file of `[[allow]]` rules
//! saying which usernames (globs) may be on which devices (uuid globs) or metros (the keys
//! of the user's `metroStatusMap`). An association no rule allows is to be detached.
//!
//! ```toml
//! [[allow]]
//! id = "noc"                      # optional; named in the report
//! users = ["noc-*", "netops"]     # username globs (`*` any run, `?` one character)
//! devices = ["*"]                 # device uuid globs
//! reason = "the NOC runs every edge device"
//!
//! [[allow]]
//! users = ["vendor-??"]
//! metros = ["da1.*", "SV"]        # metroStatusMap keys of the user
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use sshfleet_core::files::{LineIndex, LoadError, TextFile};
use sshfleet_core::glob::glob;
use sshfleet_equinix::SshUser;

/// Largest policy file read (thousands of rules fit in far less).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// A policy that cannot be used; the run is refused (exit 2) before any request.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{}, line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}, line {line}: allow rule {rule}: `{field}` {problem}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        rule: String,
        field: &'static str,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    allow: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Option<String>,
    users: Option<Vec<Spanned<String>>>,
    devices: Option<Vec<Spanned<String>>>,
    metros: Option<Vec<Spanned<String>>>,
    /// For the reviewer only.
    #[serde(rename = "reason")]
    _reason: Option<String>,
}

/// One checked rule: a user it names may stay on the devices and metros it names.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// `id`, else `#N` (its place in the file).
    label: String,
    users: Vec<String>,
    devices: Vec<String>,
    metros: Vec<String>,
}

/// A loaded policy and the fingerprint of its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// SHA-256 (hex) of the file's bytes: a saved plan names the policy it was made with.
    pub fingerprint: String,
}

/// Whether a policy lets a user stay on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The first rule that allows it.
    Allowed {
        rule: String,
    },
    NotAllowed,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = sshfleet_core::files::load_capped(
            path,
            TextFile {
                name: "policy",
                one: "a policy file",
                max: MAX_FILE_BYTES,
            },
        )?;
        Policy::parse(path, &text)
    }

    /// Parses `text` (the file `path`); the first problem refuses the whole policy.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        let lines = LineIndex::new(text);
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            path: path.to_owned(),
            line: lines.line_of(e.span().map_or(0, |s| s.start)),
            message: sshfleet_core::inert::message(e.message().trim_end()),
        })?;
        if file.allow.is_empty() {
            return Err(PolicyError::Syntax {
                path: path.to_owned(),
                line: 1,
                message: "no [[allow]] rule: such a policy would detach every user".into(),
            });
        }
        let mut rules = Vec::with_capacity(file.allow.len());
        for (i, spanned) in file.allow.into_iter().enumerate() {
            let line = lines.line_of(spanned.span().start);
            let raw = spanned.into_inner();
            let label = raw
                .id
                .clone()
                .filter(|id| !id.trim().is_empty())
                .unwrap_or_else(|| format!("#{}", i + 1));
            let rule =
                raw.check(label.clone(), line, &lines)
                    .map_err(|bad| PolicyError::Invalid {
                        path: path.to_owned(),
                        line: bad.line,
                        rule: label,
                        field: bad.field,
                        problem: bad.problem,
                    })?;
            rules.push(rule);
        }
        let fingerprint = sshfleet_core::hash::sha256_hex(text.as_bytes());
        Ok(Policy { rules, fingerprint })
    }

    /// The first rule that lets `user` stay on `device`: its username matches one of the
    /// rule's `users`, and the device one of its `devices` or one of the user's metros one
    /// of its `metros`. Every comparison ignores ASCII case.
    pub fn verdict(&self, user: &SshUser, device: &str) -> Verdict {
        let matches_any = |patterns: &[String], text: &str| {
            let text = text.to_ascii_lowercase();
            patterns.iter().any(|p| glob(p, &text))
        };
        let rule = self.rules.iter().find(|rule| {
            matches_any(&rule.users, &user.username)
                && (matches_any(&rule.devices, device)
                    || user
                        .metros
                        .iter()
                        .any(|(m, _)| matches_any(&rule.metros, m)))
        });
        match rule {
            Some(rule) => Verdict::Allowed {
                rule: rule.label.clone(),
            },
            None => Verdict::NotAllowed,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A field of a rule that is missing or wrong, and where.
struct Bad {
    line: usize,
    field: &'static str,
    problem: String,
}

impl RawRule {
    fn check(self, label: String, line: usize, lines: &LineIndex) -> Result<Rule, Bad> {
        let missing = |field, problem: &str| Bad {
            line,
            field,
            problem: problem.to_owned(),
        };
        let users = self
            .users
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("users", "is missing or empty"))?;
        let users = patterns("users", users, lines)?;
        let devices = patterns("devices", self.devices.unwrap_or_default(), lines)?;
        let metros = patterns("metros", self.metros.unwrap_or_default(), lines)?;
        if devices.is_empty() && metros.is_empty() {
            return Err(missing(
                "devices",
                "or `metros` must name at least one glob (`devices = [\"*\"]` for every device)",
            ));
        }
        Ok(Rule {
            label,
            users,
            devices,
            metros,
        })
    }
}

/// The globs of `field`, lower-cased; an empty one or one with a character class or
/// alternatives (`[…]`, `{…}`, which these globs do not support) is refused with its line.
fn patterns(
    field: &'static str,
    raw: Vec<Spanned<String>>,
    lines: &LineIndex,
) -> Result<Vec<String>, Bad> {
    raw.into_iter()
        .map(|spanned| {
            let line = lines.line_of(spanned.span().start);
            let pattern = spanned.into_inner();
            let problem = if pattern.trim().is_empty() {
                Some("holds an empty glob".to_owned())
            } else if pattern.contains(['[', ']', '{', '}']) {
                Some(format!(
                    "glob {pattern:?}: only `*` and `?` are supported, not classes or alternatives"
                ))
            } else if pattern.chars().any(char::is_control) {
                Some(format!("glob {pattern:?} holds a control character"))
            } else {
                None
            };
            match problem {
                Some(problem) => Err(Bad {
                    line,
                    field,
                    problem,
                }),
                None => Ok(pattern.to_ascii_lowercase()),
            }
        })
        .collect()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_equinix::PodStatus;

    const GOOD: &str = r#"
[[allow]]
id = "noc"
users = ["noc-*", "NetOps"]
devices = ["*"]
reason = "the NOC runs every edge device"

[[allow]]
users = ["vendor-??"]
devices = ["aaaa-*"]
metros = ["da1.*"]
"#;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(Path::new("policy.toml"), text)
    }

    fn user(name: &str, metros: &[&str]) -> SshUser {
        SshUser {
            uuid: "u1".into(),
            username: name.into(),
            device_uuids: Some(vec!["aaaa-1".into()]),
            metros: metros
                .iter()
                .map(|m| ((*m).to_owned(), PodStatus::Active))
                .collect(),
        }
    }

    fn allowed_by(policy: &Policy, name: &str, metros: &[&str], device: &str) -> Option<String> {
        match policy.verdict(&user(name, metros), device) {
            Verdict::Allowed { rule } => Some(rule),
            Verdict::NotAllowed => None,
        }
    }

    #[test]
    fn an_association_stays_when_any_rule_allows_it() {
        let policy = parse(GOOD).unwrap();
        assert_eq!(policy.len(), 2);
        let noc = Some("noc".to_owned());
        assert_eq!(allowed_by(&policy, "noc-alice", &[], "ffff-9"), noc);
        // Usernames, devices and metros compare without ASCII case.
        assert_eq!(allowed_by(&policy, "netops", &[], "x"), noc);
        assert_eq!(allowed_by(&policy, "NOC-bob", &[], "x"), noc);
        let second = Some("#2".to_owned());
        assert_eq!(allowed_by(&policy, "vendor-ab", &[], "AAAA-7"), second);
        // By metro: on any device, when one of the user's metros matches.
        assert_eq!(
            allowed_by(&policy, "vendor-ab", &["DA1.pod1"], "zz"),
            second
        );
        assert_eq!(allowed_by(&policy, "vendor-ab", &["sv5.pod1"], "zz"), None);
        // `?` is exactly one character; an unnamed user is never allowed.
        assert_eq!(allowed_by(&policy, "vendor-abc", &[], "aaaa-1"), None);
        assert_eq!(
            allowed_by(&policy, "mallory", &["da1.pod1"], "aaaa-1"),
            None
        );
    }

    #[test]
    fn the_sample_policy_of_the_readme_parses() {
        let sample = include_str!("../../../../inputs/equinix-policy.toml");
        let policy = parse(sample).unwrap();
        assert_eq!(policy.len(), 3);
        assert_eq!(
            allowed_by(&policy, "vendor-ab", &["da1.pod1"], "x"),
            Some("vendor-dallas".to_owned())
        );
    }

    #[test]
    fn the_fingerprint_follows_the_bytes() {
        let a = parse(GOOD).unwrap();
        assert_eq!(a.fingerprint, parse(GOOD).unwrap().fingerprint);
        let b = parse(&GOOD.replace("vendor-??", "vendor-?")).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    fn refusal(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_malformed_policy_names_the_file_the_line_and_the_field() {
        let unknown = refusal("[[allow]]\nusers = [\"a\"]\ndevices = [\"*\"]\nuserz = [\"b\"]\n");
        assert!(unknown.starts_with("policy.toml, line 4: "), "{unknown}");
        assert!(unknown.contains("userz"), "{unknown}");
        let missing = refusal("\n[[allow]]\ndevices = [\"*\"]\n");
        assert_eq!(
            missing,
            "policy.toml, line 2: allow rule #1: `users` is missing or empty"
        );
        let neither = refusal("[[allow]]\nid = \"x\"\nusers = [\"a\"]\n");
        assert!(
            neither.starts_with("policy.toml, line 1: allow rule x: `devices` or `metros`"),
            "{neither}"
        );
        let class = refusal("[[allow]]\nusers = [\"a\",\n  \"b[0-9]\"]\ndevices = [\"*\"]\n");
        assert!(
            class.starts_with("policy.toml, line 3: allow rule #1: `users` glob \"b[0-9]\""),
            "{class}"
        );
        let empty = refusal("[[allow]]\nusers = [\"a\"]\nmetros = [\"\"]\n");
        assert!(
            empty.starts_with("policy.toml, line 3: allow rule #1: `metros` holds an empty"),
            "{empty}"
        );
        let toml = refusal("[[allow]]\nusers = [\"a\"\ndevices = 3\n");
        assert!(toml.starts_with("policy.toml, line "), "{toml}");
        let typed = refusal("[[allow]]\nusers = \"a\"\ndevices = [\"*\"]\n");
        assert!(typed.starts_with("policy.toml, line 2: "), "{typed}");
        assert!(refusal("").contains("no [[allow]] rule"));
    }
}
