//! Waves and a failure budget (`--waves 1,10,5%,25%,100%`, `--max-failures N|P%`): the
//! writes go out canary first, each wave written and verified before the next starts, and the
//! run stops before the next wave once the failed writes and verifications exceed the
//! budget. Waves take devices in a stable order that spreads over sites, so a canary wave is
//! not one site's cameras.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One wave's size: a count of devices, or a share of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Count(usize),
    /// Percent of the plan's writes, 1–100, rounded up.
    Percent(u8),
}

/// The waves asked for, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waves(pub Vec<Size>);

impl Default for Waves {
    /// One wave of everything: what a run without `--waves` does.
    fn default() -> Waves {
        Waves(vec![Size::Percent(100)])
    }
}

impl FromStr for Waves {
    type Err = String;

    fn from_str(text: &str) -> Result<Waves, String> {
        let mut sizes = Vec::new();
        for part in text.split(',').map(str::trim) {
            let size = match part.strip_suffix('%') {
                Some(p) => match p.trim().parse::<u8>() {
                    Ok(p @ 1..=100) => Size::Percent(p),
                    _ => return Err(format!("wave {part:?}: a percentage is 1% to 100%")),
                },
                None => match part.parse::<usize>() {
                    Ok(n) if n > 0 => Size::Count(n),
                    _ => {
                        return Err(format!(
                            "wave {part:?}: give a device count (10) or a share of the plan (25%)"
                        ))
                    }
                },
            };
            sizes.push(size);
        }
        if sizes.is_empty() {
            return Err("no waves given".to_owned());
        }
        Ok(Waves(sizes))
    }
}

impl fmt::Display for Waves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| match s {
                Size::Count(n) => n.to_string(),
                Size::Percent(p) => format!("{p}%"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Waves {
    /// The waves left once the first `done` have gone (a run continued after a stop); all
    /// of the rest in one wave when none are left.
    pub fn after(&self, done: usize) -> Waves {
        let left: Vec<Size> = self.0.iter().skip(done).copied().collect();
        if left.is_empty() {
            Waves::default()
        } else {
            Waves(left)
        }
    }

    /// The wave sizes for a plan of `total` writes: each wave as asked (a percentage of the
    /// total, rounded up), never past what is left, and the last wave takes the rest.
    pub fn sizes(&self, total: usize) -> Vec<usize> {
        let mut left = total;
        let mut out = Vec::new();
        for (i, size) in self.0.iter().enumerate() {
            if left == 0 {
                break;
            }
            let n = match *size {
                Size::Count(n) => n,
                Size::Percent(p) => (total * usize::from(p)).div_ceil(100).max(1),
            };
            let n = if i + 1 == self.0.len() {
                left
            } else {
                n.min(left)
            };
            out.push(n);
            left -= n;
        }
        out
    }
}

/// How many failed writes and verifications the run tolerates before it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Count(usize),
    /// Percent of the plan's writes (0–100), rounded down.
    Percent(u8),
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Budget, String> {
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p @ 0..=100) => Ok(Budget::Percent(p)),
                _ => Err(format!(
                    "--max-failures {text:?}: a percentage is 0% to 100%"
                )),
            },
            None => text
                .parse()
                .map(Budget::Count)
                .map_err(|_| format!("--max-failures {text:?}: give a count (3) or a share (2%)")),
        }
    }
}

impl Budget {
    /// The failures allowed in a plan of `total` writes.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            Budget::Count(n) => n,
            Budget::Percent(p) => total * usize::from(p) / 100,
        }
    }
}

/// Orders items so that consecutive ones come from different sites where possible: sites
/// in name order, each site's items in their given order, taken one from each in turn.
pub fn spread_over_sites<T>(items: Vec<T>, site: impl Fn(&T) -> &str) -> Vec<T> {
    let mut by_site: BTreeMap<String, std::collections::VecDeque<T>> = BTreeMap::new();
    for item in items {
        by_site
            .entry(site(&item).to_owned())
            .or_default()
            .push_back(item);
    }
    let mut out = Vec::new();
    loop {
        let mut took = false;
        for queue in by_site.values_mut() {
            if let Some(item) = queue.pop_front() {
                out.push(item);
                took = true;
            }
        }
        if !took {
            return out;
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn wave_sizes_follow_the_list_and_the_last_takes_the_rest() {
        let waves: Waves = "1,10,5%,25%,100%".parse().unwrap();
        assert_eq!(waves.sizes(200), vec![1, 10, 10, 50, 129]);
        assert_eq!(waves.sizes(5), vec![1, 4]);
        assert_eq!(waves.sizes(0), Vec::<usize>::new());
        // A list that does not reach the total: the last wave takes the rest.
        assert_eq!("2,3".parse::<Waves>().unwrap().sizes(20), vec![2, 18]);
        assert_eq!(Waves::default().sizes(7), vec![7]);
        for bad in ["", "0", "101%", "x", "5,,6", "-1"] {
            assert!(bad.parse::<Waves>().is_err(), "{bad:?}");
        }
        assert_eq!(waves.to_string(), "1,10,5%,25%,100%");
        assert_eq!(waves.after(3).to_string(), "25%,100%");
        assert_eq!(waves.after(5), Waves::default());
    }

    #[test]
    fn budgets_count_or_share() {
        assert_eq!("3".parse::<Budget>().unwrap().allowed(100), 3);
        assert_eq!("2%".parse::<Budget>().unwrap().allowed(250), 5);
        assert_eq!("0%".parse::<Budget>().unwrap().allowed(250), 0);
        assert!("120%".parse::<Budget>().is_err());
        assert!("many".parse::<Budget>().is_err());
    }

    #[test]
    fn canary_waves_spread_over_sites() {
        let items = vec![("a", 1), ("a", 2), ("a", 3), ("b", 4), ("c", 5), ("b", 6)];
        let order: Vec<i32> = spread_over_sites(items, |i| i.0)
            .into_iter()
            .map(|i| i.1)
            .collect();
        assert_eq!(order, vec![1, 4, 5, 2, 6, 3]);
    }
}
