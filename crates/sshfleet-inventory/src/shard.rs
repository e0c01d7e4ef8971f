//! Splitting one inventory across N scanners (`--shard K/N`, Kubernetes Indexed Jobs) by a
//! stable hash, so that every row lands in exactly one shard on every machine and every run.

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;

/// The environment of a Kubernetes Indexed Job pod. Kubernetes sets the index itself; the
/// count has to be set in the pod template (it is not exposed to the pod otherwise).
const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
const COUNT_VAR: &str = "JOB_COMPLETIONS";

/// Shard `index` of `count`, 0-based like `JOB_COMPLETION_INDEX`.
///
/// Shards partition the inventory: run shards `0/N` .. `N-1/N` and every device is scanned
/// exactly once. Their JSON Lines outputs concatenate into one report (`cat shard-*.jsonl`);
/// CSV outputs would repeat the header and JSON outputs are separate arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("shard count must be at least 1".to_owned());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (shards are numbered 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard of a Kubernetes Indexed Job pod, from `JOB_COMPLETION_INDEX` and
    /// `JOB_COMPLETIONS`. `None` outside such a pod; an error when the pair is incomplete or
    /// malformed, because scanning the whole fleet from every pod is never what was meant.
    /// `var` looks a variable up (the process environment, or a test's).
    pub fn from_env(var: impl Fn(&str) -> Option<OsString>) -> Option<Result<Shard, String>> {
        from_vars(var(INDEX_VAR), var(COUNT_VAR))
    }

    /// Whether the row with this key belongs to this shard. See [`shard_hash`].
    pub fn contains(&self, key: &str) -> bool {
        // A count of 0 cannot come from `new` or `parse`; treat it like one shard.
        self.count <= 1 || shard_hash(key) % u64::from(self.count) == u64::from(self.index)
    }
}

fn from_vars(index: Option<OsString>, count: Option<OsString>) -> Option<Result<Shard, String>> {
    let index = index?;
    Some(shard_from_vars(&index, count.as_deref()))
}

fn shard_from_vars(
    index: &std::ffi::OsStr,
    count: Option<&std::ffi::OsStr>,
) -> Result<Shard, String> {
    let index = env_number(INDEX_VAR, index)?;
    let count = count.ok_or_else(|| {
        format!(
            "{INDEX_VAR} is set but {COUNT_VAR} is not; set {COUNT_VAR} to the job's completions in the pod template, or pass --shard K/N"
        )
    })?;
    let count = env_number(COUNT_VAR, count)?;
    Shard::new(index, count).map_err(|why| format!("{INDEX_VAR}/{COUNT_VAR}: {why}"))
}

fn env_number(var: &str, value: &std::ffi::OsStr) -> Result<u32, String> {
    value
        .to_str()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("{var}={} is not a number", value.to_string_lossy()))
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, for example `0/4` .. `3/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let malformed = || format!("invalid shard {s:?}: expected K/N with 0 <= K < N, like 0/4");
        let (index, count) = s.trim().split_once('/').ok_or_else(malformed)?;
        let index = index.trim().parse::<u32>().map_err(|_| malformed())?;
        let count = count.trim().parse::<u32>().map_err(|_| malformed())?;
        Shard::new(index, count).map_err(|why| format!("invalid shard {s:?}: {why}"))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a 64 of the key. Fixed here (not `std`'s randomly seeded hasher) because every shard
/// of a run, on any machine or version, must agree on where a row goes.
pub fn shard_hash(key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(index: Option<&str>, count: Option<&str>) -> Option<Result<Shard, String>> {
        from_vars(index.map(OsString::from), count.map(OsString::from))
    }

    #[test]
    fn parses_k_of_n() {
        assert_eq!("0/4".parse::<Shard>(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(" 3 / 4 ".parse::<Shard>(), Ok(Shard { index: 3, count: 4 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
    }

    #[test]
    fn refuses_bad_shards() {
        for bad in ["4/4", "1/0", "0/0", "-1/4", "a/4", "1", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} was accepted");
        }
        let why = "4/4".parse::<Shard>().err().unwrap_or_default();
        assert!(why.contains("numbered 0 to 3"), "{why}");
    }

    #[test]
    fn reads_indexed_job_environment() {
        assert_eq!(vars(None, None), None);
        assert_eq!(vars(None, Some("4")), None);
        assert_eq!(
            vars(Some("2"), Some("4")),
            Some(Ok(Shard { index: 2, count: 4 }))
        );
        let missing = vars(Some("2"), None);
        assert!(matches!(missing, Some(Err(ref why)) if why.contains("JOB_COMPLETIONS is not")));
        assert!(matches!(vars(Some("4"), Some("4")), Some(Err(_))));
        assert!(matches!(vars(Some("x"), Some("4")), Some(Err(_))));
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(shard_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(shard_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(shard_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_key_lands_in_exactly_one_shard() {
        for count in 1..=7 {
            for n in 0..500 {
                let key = format!("http://10.0.{}.{}:80", n / 256, n % 256);
                let hits = (0..count)
                    .filter(|&index| Shard { index, count }.contains(&key))
                    .count();
                assert_eq!(hits, 1, "{key} in {count} shards");
            }
        }
    }
}
