//! Files sshfleet reads whole and writes whole.
//!
//! Reading: small text files (waiver files, policies, plans) are refused past a size cap
//! before a byte is read (their size first), and never read past it, even when the file
//! grows while it is read; [`LineIndex`] finds the line of an offset in them at once.
//!
//! Writing: every output written whole (plans, metrics, HTML pages, merged reports) goes
//! through a [`Staged`] temporary created exclusively (`O_EXCL`, a random name, in the
//! destination's directory, so a planted symbolic link or file is never followed nor
//! reused), synced, then renamed over the destination: a reader sees the old file or the
//! new one, never a part, and a run killed half-way leaves only a hidden `.NAME.*.tmp`.

use std::fs::File;
use std::io::{self, Read as _, Write};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

/// Why a capped file was not read.
#[derive(Debug)]
pub enum CappedError {
    Io(io::Error),
    /// Larger than the cap: its size in bytes, at least.
    TooBig(u64),
}

/// The file's text, when it holds at most `max` bytes of UTF-8: its size is checked before
/// anything is read, and the read stops at the cap whatever the size said.
pub fn read_capped(path: &Path, max: u64) -> Result<String, CappedError> {
    let file = File::open(path).map_err(CappedError::Io)?;
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

/// What a capped text file is called in messages: `the policy`, `a policy file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextFile {
    /// As in "cannot read the policy …".
    pub name: &'static str,
    /// As in "… more than the 4 MiB a policy file may hold".
    pub one: &'static str,
    /// The cap, in bytes.
    pub max: u64,
}

/// A capped text file that was not read: its path, what it is, and why.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub file: TextFile,
    pub kind: CappedError,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.kind {
            CappedError::Io(source) => {
                write!(f, "cannot read the {} {path}: {source}", self.file.name)
            }
            CappedError::TooBig(size) => write!(
                f,
                "{path}: {size} bytes, more than the {} MiB {} may hold",
                self.file.max >> 20,
                self.file.one
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CappedError::Io(source) => Some(source),
            CappedError::TooBig(_) => None,
        }
    }
}

/// The text of `path`, read as [`read_capped`] reads it, at most `file.max` bytes.
pub fn load_capped(path: &Path, file: TextFile) -> Result<String, LoadError> {
    read_capped(path, file.max).map_err(|kind| LoadError {
        path: path.to_owned(),
        file,
        kind,
    })
}

/// The line numbers of a text's byte offsets, found by a binary search over where its
/// lines start (built once: a file of many entries is located in linear time overall).
pub struct LineIndex {
    /// Offsets just after each `\n`.
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let starts = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i.saturating_add(1))
            .collect();
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// The 1-based line holding byte `offset` (the last line past the end).
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.len);
        self.starts
            .partition_point(|&start| start <= offset)
            .saturating_add(1)
    }
}

/// Writes `bytes` to `path` whole: through a [`Staged`] temporary beside it, synced and
/// renamed into place. On failure the destination is as it was and the temporary is gone.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut staged = Staged::beside(path)?;
    staged.write_all(bytes)?;
    staged.commit()
}

/// A file being written to take the place of `path` once complete: a temporary created
/// exclusively in `path`'s directory (`.NAME.XXXXXX.tmp`, mode 0666 less the umask, like
/// any new file). [`Staged::commit`] syncs it and renames it over `path`; dropped without a
/// commit, it is removed and `path` is untouched.
pub struct Staged {
    file: File,
    temp: TempPath,
    path: PathBuf,
}

impl Staged {
    /// Creates the temporary for `path`.
    pub fn beside(path: &Path) -> io::Result<Staged> {
        let (dir, name) = split(path);
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        builder.permissions(new_file_permissions());
        let named: NamedTempFile = builder.tempfile_in(dir)?;
        let (file, temp) = named.into_parts();
        Ok(Staged {
            file,
            temp,
            path: path.to_owned(),
        })
    }

    /// Another handle on the temporary, for a writer that owns its file (a report format).
    pub fn handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Where the file goes when committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the temporary and renames it over the destination (then syncs the directory,
    /// where it can be opened, so that the rename survives a power cut).
    pub fn commit(self) -> io::Result<()> {
        let path = self.path.clone();
        self.commit_to(&path)
    }

    /// As [`Staged::commit`], to another destination (a report cut short goes to
    /// `NAME.partial`, never under its own name).
    pub fn commit_to(self, destination: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        drop(self.file);
        self.temp.persist(destination).map_err(|e| e.error)?;
        let (dir, _) = split(destination);
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Whether two paths name one file: the same device and inode where both exist (a hard
/// link, a symbolic link or another spelling of the path), else the same canonical
/// directory and name (two outputs not created yet). Anything but a regular file (the
/// terminal, `/dev/null`, a pipe) is never the same file as anything: writing it twice
/// destroys nothing.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.is_file() && b.is_file() && same_inode(&a, &b),
        (Err(_), Err(_)) => match (resolved(a), resolved(b)) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        _ => false,
    }
}

#[cfg(unix)]
fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_inode(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// A path not created yet, spelled canonically: its directory resolved, then its name.
fn resolved(path: &Path) -> Option<PathBuf> {
    let (dir, _) = split(path);
    let name = path.file_name()?;
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}

/// The files a run reads and must keep, and the files it writes, each named by the flag
/// that gave it; [`RunFiles::check`] refuses an output that would destroy one of them.
#[derive(Default)]
pub struct RunFiles<'a> {
    kept: Vec<(&'static str, &'a Path)>,
    written: Vec<(&'static str, &'a Path)>,
}

/// An output that would overwrite a file the run needs, or another output.
#[derive(Debug, thiserror::Error)]
#[error("{written} {}{}", path.display(), what)]
pub struct Clash {
    written: &'static str,
    path: PathBuf,
    what: String,
}

impl<'a> RunFiles<'a> {
    /// A file the run reads or keeps (the inventory, a plan, a history); absent is fine.
    pub fn kept(&mut self, flag: &'static str, path: Option<&'a Path>) -> &mut Self {
        if let Some(path) = path {
            self.kept.push((flag, path));
        }
        self
    }

    /// A file the run writes; `-` (stdout) and absent are left out.
    pub fn written(&mut self, flag: &'static str, path: Option<&'a Path>) -> &mut Self {
        if let Some(path) = path.filter(|p| p.as_os_str() != "-") {
            self.written.push((flag, path));
        }
        self
    }

    /// The first output that is a kept file or another output.
    pub fn check(&self) -> Result<(), Clash> {
        for (i, &(flag, path)) in self.written.iter().enumerate() {
            let clash = |what: String| Clash {
                written: flag,
                path: path.to_owned(),
                what,
            };
            if let Some((kept, _)) = self.kept.iter().find(|(_, k)| same_file(path, k)) {
                return Err(clash(format!(
                    " is the {kept} file of this run: writing it would destroy it; give another path"
                )));
            }
            let earlier = self.written.get(..i).unwrap_or_default();
            if let Some((other, _)) = earlier.iter().find(|(_, o)| same_file(path, o)) {
                return Err(clash(format!(
                    " is also given to {other}: each output needs a file of its own"
                )));
            }
        }
        Ok(())
    }
}

/// A path's directory (`.` for a bare name) and file name.
fn split(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "output".to_owned(), |n| n.to_string_lossy().into_owned());
    (dir, name)
}

/// Read and write for everyone the umask lets: the mode `File::create` gives a new file.
#[cfg(unix)]
fn new_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::Permissions::from_mode(0o666)
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

    #[test]
    fn a_capped_file_that_is_not_read_says_what_it_is_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, vec![b'#'; (1 << 20) + 1]).unwrap();
        let file = TextFile {
            name: "waivers",
            one: "a waiver file",
            max: 1 << 20,
        };
        let too_big = load_capped(&path, file).unwrap_err().to_string();
        assert!(
            too_big.ends_with("w.toml: 1048577 bytes, more than the 1 MiB a waiver file may hold"),
            "{too_big}"
        );
        let missing = load_capped(&dir.path().join("none"), file).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read the waivers "));
        assert!(std::error::Error::source(&missing).is_some());
    }

    #[test]
    fn lines_are_found_by_offset() {
        let text = "a\nbc\n\nd";
        let index = LineIndex::new(text);
        let lines: Vec<usize> = (0..=text.len() + 3).map(|i| index.line_of(i)).collect();
        assert_eq!(lines, [1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 4]);
        assert_eq!(LineIndex::new("").line_of(7), 1);
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.html");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the file itself: {names:?}");
        assert!(write_atomically(&dir.path().join("no/such.prom"), b"x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symbolic_link_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("m.prom");
        // Every name the old scheme could pick, and the output itself, point at the victim.
        let pid = std::process::id();
        for planted in [format!(".m.prom.{pid}.tmp"), "m.prom".to_owned()] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        write_atomically(&path, b"metrics").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "metrics");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    fn a_staged_file_dropped_uncommitted_leaves_the_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "old").unwrap();
        let mut staged = Staged::beside(&path).unwrap();
        staged.write_all(b"half").unwrap();
        drop(staged);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
