//! Serialised items past what is kept in memory, in an unnamed temporary file: made with
//! `tempfile::tempfile()` in the temporary directory (`O_TMPFILE` where the system has it,
//! else a random name opened with `O_EXCL` and `0600`, unlinked at once), so it follows no
//! symlink, has no name another process could open, and is gone with the process whatever
//! way it ends; then made `0600` (`O_TMPFILE` leaves the umask's mode). Items are
//! written whole, each after its length, straight to the file (no buffer that could fail
//! later, unseen), and read back once, in the order written.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

/// Largest item accepted (a held record is a few KiB).
const MAX_ITEM: usize = 16 << 20;

/// How the file is made: [`tempfile::tempfile`], or a test's own.
pub(crate) type Opener = fn() -> io::Result<File>;

/// One spill file: written until [`Spill::next`] first reads, then read to its end.
#[derive(Debug)]
pub(crate) struct Spill {
    opener: Opener,
    state: State,
    /// Items written whole.
    written: u64,
}

#[derive(Debug)]
enum State {
    Unopened,
    Writing(File),
    Reading(BufReader<File>),
    /// Nothing more to read (or the file is gone after a failure).
    Done,
}

impl Default for Spill {
    fn default() -> Spill {
        Spill::new(private_tempfile)
    }
}

/// An unnamed temporary file only its owner may read or write.
fn private_tempfile() -> io::Result<File> {
    let file = tempfile::tempfile().map_err(|e| {
        let dir = std::env::temp_dir();
        io::Error::new(
            e.kind(),
            format!(
                "cannot make a temporary file in {} (set TMPDIR to a writable directory): {e}",
                dir.display()
            ),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl Spill {
    pub(crate) fn new(opener: Opener) -> Spill {
        Spill {
            opener,
            state: State::Unopened,
            written: 0,
        }
    }

    /// Items written whole so far (not yet read back).
    #[cfg(test)]
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Appends `item`. On an error the item is not in the file (what reads back stops before
    /// it), and the caller keeps it.
    pub(crate) fn push(&mut self, item: &[u8]) -> io::Result<()> {
        if let State::Unopened = self.state {
            self.state = State::Writing((self.opener)()?);
        }
        let State::Writing(file) = &mut self.state else {
            return Err(io::Error::other("the spill file is being read back"));
        };
        let len = u32::try_from(item.len())
            .ok()
            .filter(|_| item.len() <= MAX_ITEM)
            .ok_or_else(|| io::Error::other(format!("an item of {} bytes", item.len())))?;
        let mut framed = Vec::with_capacity(item.len().saturating_add(4));
        framed.extend_from_slice(&len.to_le_bytes());
        framed.extend_from_slice(item);
        file.write_all(&framed)?;
        self.written = self.written.saturating_add(1);
        Ok(())
    }

    /// The next item written, in order; `None` after the last one. An error ends the
    /// reading (the items after it cannot be told apart).
    pub(crate) fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.written == 0 {
            self.state = State::Done;
            return Ok(None);
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        let mut reader = match state {
            State::Writing(mut file) => {
                file.seek(SeekFrom::Start(0))?;
                BufReader::with_capacity(256 * 1024, file)
            }
            State::Reading(reader) => reader,
            State::Unopened | State::Done => return Ok(None),
        };
        let mut len = [0u8; 4];
        reader.read_exact(&mut len)?;
        let len = usize::try_from(u32::from_le_bytes(len))
            .ok()
            .filter(|&n| n <= MAX_ITEM)
            .ok_or_else(|| io::Error::other("an item longer than any written"))?;
        let mut item = vec![0u8; len];
        reader.read_exact(&mut item)?;
        self.written -= 1;
        self.state = State::Reading(reader);
        Ok(Some(item))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn items_come_back_in_order_and_the_file_has_no_name() {
        let mut spill = Spill::default();
        assert_eq!(spill.next().unwrap(), None, "nothing written, no file");
        let mut spill = Spill::default();
        for item in [&b"one"[..], b"", b"three\n\0"] {
            spill.push(item).unwrap();
        }
        assert_eq!(spill.written(), 3);
        let back: Vec<Vec<u8>> = std::iter::from_fn(|| spill.next().unwrap()).collect();
        assert_eq!(back, [b"one".to_vec(), Vec::new(), b"three\n\0".to_vec()]);
        assert_eq!(spill.next().unwrap(), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_file_is_private_and_unlinked() {
        use std::os::unix::fs::PermissionsExt;
        let mut spill = Spill::default();
        spill.push(b"x").unwrap();
        let State::Writing(file) = &spill.state else {
            panic!("not opened")
        };
        let meta = file.metadata().unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o077,
            0,
            "not readable by others"
        );
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 0, "no name");
    }

    #[test]
    fn a_file_that_refuses_writes_says_so_and_keeps_nothing() {
        fn read_only() -> io::Result<File> {
            let file = tempfile::NamedTempFile::new()?;
            File::open(file.path())
        }
        let mut spill = Spill::new(read_only);
        assert!(spill.push(b"x").is_err());
        assert_eq!(spill.written(), 0);
        assert_eq!(spill.next().unwrap(), None);
    }
}
