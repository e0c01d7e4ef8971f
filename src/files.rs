//! Small text files read whole (waiver files, policies): refused past a size cap, and never
//! read past it, even when the file grows while it is read.

use std::io::{self, Read as _};
use std::path::Path;

/// Why a capped file was not read.
#[derive(Debug)]
pub enum CappedError {
    Io(io::Error),
    /// Larger than the cap: its size in bytes, at least.
    TooBig(u64),
}

/// The file's text, when it holds at most `max` bytes of UTF-8.
pub fn read_capped(path: &Path, max: u64) -> Result<String, CappedError> {
    let file = std::fs::File::open(path).map_err(CappedError::Io)?;
    let declared = file.metadata().map_err(CappedError::Io)?.len();
    if declared > max {
        return Err(CappedError::TooBig(declared));
    }
    let mut text = String::new();
    let read = file
        .take(max.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(CappedError::Io)?;
    match u64::try_from(read) {
        Ok(n) if n <= max => Ok(text),
        _ => Err(CappedError::TooBig(max.saturating_add(1))),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_capped(&path, 4).unwrap(), "abcd");
        assert!(matches!(read_capped(&path, 3), Err(CappedError::TooBig(4))));
        assert!(matches!(
            read_capped(&dir.path().join("none"), 4),
            Err(CappedError::Io(_))
        ));
    }
}
