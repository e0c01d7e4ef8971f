//! `--limit`: narrows a run to part of its inventory without writing a new one. Selectors
//! are `site=NAME`, `name=GLOB` (`*` any run, `?` one character), `tag=TAG` or an address;
//! a comma list matches a device matching any of them. Limits given in several places (a
//! plan's or journal's recorded limit, then the command line) all apply: `;` joins them in
//! the recorded form, and a device must match each.

use std::fmt;
use std::str::FromStr;

use super::Device;

/// One selector of a `--limit` list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selector {
    Site(String),
    Name(String),
    Tag(String),
    Address(String),
}

impl Selector {
    fn matches(&self, device: &Device) -> bool {
        match self {
            Selector::Site(site) => device.site == *site,
            Selector::Name(glob) => glob_matches(glob, &device.name),
            Selector::Tag(tag) => device.tags.split([';', ',', ' ']).any(|t| t.trim() == tag),
            Selector::Address(address) => {
                device.address == *address || device.target.key() == *address
            }
        }
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Selector, String> {
        let text = text.trim();
        let value = |v: &str, what: &str| {
            let v = v.trim();
            match v.is_empty() {
                true => Err(format!("--limit {text:?}: give a {what} after '='")),
                false => Ok(v.to_owned()),
            }
        };
        match text.split_once('=') {
            Some(("site", v)) => value(v, "site").map(Selector::Site),
            Some(("name", v)) => value(v, "name or glob").map(Selector::Name),
            Some(("tag", v)) => value(v, "tag").map(Selector::Tag),
            Some((kind, _)) => Err(format!(
                "--limit {text:?}: {kind:?} is not a selector (site=NAME, name=GLOB, tag=TAG or an address)"
            )),
            None if text.is_empty() => Err("--limit: an empty selector".to_owned()),
            None => Ok(Selector::Address(text.to_owned())),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Site(v) => write!(f, "site={v}"),
            Selector::Name(v) => write!(f, "name={v}"),
            Selector::Tag(v) => write!(f, "tag={v}"),
            Selector::Address(v) => f.write_str(v),
        }
    }
}

/// Which devices a run covers: every group must match, a group matches when any of its
/// selectors does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    groups: Vec<Vec<Selector>>,
}

impl Limit {
    /// The limit of `--limit` flags (each a comma list), all one group; `None` without any.
    pub fn from_flags(flags: &[String]) -> Result<Option<Limit>, String> {
        let mut group = Vec::new();
        for flag in flags {
            for part in flag.split(',') {
                group.push(part.parse()?);
            }
        }
        Ok((!group.is_empty()).then(|| Limit {
            groups: vec![group],
        }))
    }

    /// Devices must match this limit and `other`.
    pub fn and(mut self, other: Limit) -> Limit {
        for group in other.groups {
            if !self.groups.contains(&group) {
                self.groups.push(group);
            }
        }
        self
    }

    pub fn matches(&self, device: &Device) -> bool {
        self.groups
            .iter()
            .all(|group| group.iter().any(|s| s.matches(device)))
    }
}

impl FromStr for Limit {
    type Err = String;

    /// The recorded form: groups joined by `;`, each a comma list.
    fn from_str(text: &str) -> Result<Limit, String> {
        let mut groups = Vec::new();
        for group in text.split(';') {
            let selectors = group.split(',').map(str::parse).collect::<Result<_, _>>()?;
            groups.push(selectors);
        }
        Ok(Limit { groups })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            for (j, selector) in group.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{selector}")?;
            }
        }
        Ok(())
    }
}

/// `*` matches any run of characters, `?` one; everything else itself. Linear in the text
/// for each star (the usual backtracking to the last star only).
fn glob_matches(glob: &str, text: &str) -> bool {
    let (glob, text): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == '*')
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn device(address: &str, name: &str, site: &str, tags: &str) -> Device {
        let text = format!("address,name,site,tags\n{address},{name},{site},{tags}\n");
        let inventory = crate::parse(text.as_bytes(), &crate::InventoryOptions::default()).unwrap();
        let device = inventory.rows.devices().next().unwrap();
        device
    }

    #[test]
    fn globs_match_whole_names() {
        for (glob, text, expected) in [
            ("cam-*", "cam-01", true),
            ("cam-??", "cam-01", true),
            ("cam-?", "cam-01", false),
            ("*-01", "cam-01", true),
            ("*a*b*", "xaxxbx", true),
            ("*a*b", "xaxxbx", false),
            ("lobby", "lobby-2", false),
            ("*", "", true),
        ] {
            assert_eq!(glob_matches(glob, text), expected, "{glob} {text}");
        }
    }

    #[test]
    fn a_list_matches_any_and_recorded_limits_all() {
        let cam = device("10.0.0.1", "cam-01", "oslo", "outdoor;ptz");
        let limit = Limit::from_flags(&["site=bergen,tag=ptz".into()])
            .unwrap()
            .unwrap();
        assert!(limit.matches(&cam));
        let narrowed = limit.clone().and("name=door-*".parse().unwrap());
        assert!(!narrowed.matches(&cam));
        assert_eq!(narrowed.to_string(), "site=bergen,tag=ptz;name=door-*");
        assert_eq!(narrowed.to_string().parse::<Limit>().unwrap(), narrowed);
        assert!(Limit::from_flags(&["10.0.0.1".into()])
            .unwrap()
            .unwrap()
            .matches(&cam));
        assert!(!Limit::from_flags(&["site=osl".into()])
            .unwrap()
            .unwrap()
            .matches(&cam));
        assert_eq!(Limit::from_flags(&[]).unwrap(), None);
        for bad in ["site=", "colour=red", "a,,b"] {
            assert!(Limit::from_flags(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
