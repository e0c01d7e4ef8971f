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
    /// The waves left for `count` writes when `resume` says where an earlier run stopped: the
    /// sizes cut from the earlier run's total, the wave under way short of what it wrote, and
    /// the last wave taking whatever remains (devices may have needed a write since, or no
    /// longer). Without waves left (a stop after the last one), one wave of them all.
    pub fn left(&self, resume: Resume, count: usize) -> (usize, Vec<(usize, usize)>) {
        let total = resume.total.unwrap_or(count).max(count);
        let mut sizes: Vec<(usize, usize)> = self
            .sizes(total)
            .into_iter()
            .enumerate()
            .skip(resume.first_wave)
            .collect();
        if sizes.is_empty() {
            sizes.push((resume.first_wave, count));
        }
        if let Some(first) = sizes.first_mut() {
            first.1 = first.1.saturating_sub(resume.done_in_first);
        }
        let mut left = count;
        let last = sizes.len() - 1;
        for (i, (_, size)) in sizes.iter_mut().enumerate() {
            *size = if i == last { left } else { (*size).min(left) };
            left -= *size;
        }
        sizes.retain(|&(_, size)| size > 0);
        (total, sizes)
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

/// Where a run takes up the waves of the run it continues, from their journal: after a
/// budget stop at the next wave, after a crash or a stop request inside the wave that was
/// under way, with the writes it had left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Waves already gone through (0: start at the first).
    pub first_wave: usize,
    /// The planned writes the waves were cut from; `None`: this run's own plan.
    pub total: Option<usize>,
    /// Writes of wave `first_wave` already made.
    pub done_in_first: usize,
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
pub fn spread_over_sites<T, S: Ord>(items: Vec<T>, site: impl Fn(&T) -> S) -> Vec<T> {
    let mut by_site: BTreeMap<S, std::collections::VecDeque<T>> = BTreeMap::new();
    for item in items {
        by_site.entry(site(&item)).or_default().push_back(item);
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

    fn waves(text: &str) -> Waves {
        text.parse().unwrap()
    }

    #[test]
    fn a_fresh_run_cuts_every_wave_from_its_own_plan() {
        let (total, left) = waves("1,10%,100%").left(Resume::default(), 50);
        assert_eq!((total, left), (50, vec![(0, 1), (1, 5), (2, 44)]));
    }

    #[test]
    fn a_crash_inside_a_wave_resumes_it_with_what_it_had_left() {
        // 50 planned, waves 1, 5, 44; the crash came after 3 writes of wave 2 (index 1).
        let resume = Resume {
            first_wave: 1,
            total: Some(50),
            done_in_first: 3,
        };
        // 1 + 3 written: 46 left.
        let (total, left) = waves("1,10%,100%").left(resume, 46);
        assert_eq!((total, left), (50, vec![(1, 2), (2, 44)]));
        // The wave had finished (all 5 written) before the next began: it is skipped.
        let done = Resume {
            done_in_first: 5,
            ..resume
        };
        assert_eq!(waves("1,10%,100%").left(done, 44).1, vec![(2, 44)]);
    }

    #[test]
    fn fewer_or_more_writes_than_planned_still_go_out_once_each() {
        let resume = Resume {
            first_wave: 1,
            total: Some(50),
            done_in_first: 0,
        };
        // Devices fixed by hand since: fewer writes than the waves had room for.
        assert_eq!(waves("1,10%,100%").left(resume, 3).1, vec![(1, 3)]);
        // A budget stop after the last wave: one wave of what is left.
        let past = Resume {
            first_wave: 3,
            ..resume
        };
        assert_eq!(waves("1,10%,100%").left(past, 7).1, vec![(3, 7)]);
        let sum: usize = waves("2,4,25%,100%")
            .left(resume, 60)
            .1
            .iter()
            .map(|w| w.1)
            .sum();
        assert_eq!(sum, 60);
    }

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
