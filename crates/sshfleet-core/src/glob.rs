//! Glob match with `*` (any run) and `?` (one character), for the selectors of waivers and
//! of the Equinix policy.

/// Glob match with `*` and `?`, iteratively (no backtracking blow-up on hostile patterns).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_without_backtracking_blowup() {
        assert!(glob("lobby-*", "lobby-north"));
        assert!(glob("*", ""));
        assert!(glob("cam-??", "cam-07"));
        assert!(!glob("cam-??", "cam-7"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        // Exponential for a backtracking matcher; linear-ish here.
        let long = "a".repeat(5000);
        assert!(!glob("*a*a*a*a*a*a*a*a*b", &long));
        assert!(glob("*a*a*a*a*a*a*a*a*", &long));
    }
}
