//! Access to a report file for reading it back: opening it and telling its format, its lines
//! with a length cap, its CSV cells, and the error that says where a file is wrong. The one
//! parser of the records is [`super::replay`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::csv_writer::FORMULA_TRIGGERS;

/// Longest line or cell accepted from a report file (a record is well under 8 KiB).
pub(super) const MAX_LINE: u64 = 1 << 20;

/// A report that cannot be read back, with where.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the report {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}, {where_}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        /// `line N` or `record N`.
        where_: String,
        reason: String,
    },
}

/// At most the first 40 characters of `s`, for a message.
pub(super) fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Opens a report and tells its format by its first byte that is not white space (`[` a
/// JSON array, `{` JSON Lines, anything else CSV; `None`: an empty file), the reader left at
/// that byte.
pub(super) fn open_report(path: &Path) -> Result<(BufReader<File>, Option<u8>), ReadError> {
    let io_err = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    loop {
        let buf = reader.fill_buf().map_err(io_err)?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let byte = buf[i];
                reader.consume(i);
                return Ok((reader, Some(byte)));
            }
            None if buf.is_empty() => return Ok((reader, None)),
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

pub(super) fn malformed(path: &Path, where_: String, reason: impl ToString) -> ReadError {
    ReadError::Malformed {
        path: path.to_owned(),
        where_,
        reason: reason.to_string(),
    }
}

/// Calls `each` with every line of a JSON Lines file that is not blank, and its name for
/// messages (`line 12`). A line longer than [`MAX_LINE`] is an error, not a memory bill.
pub(super) fn for_each_line(
    path: &Path,
    reader: impl BufRead,
    mut each: impl FnMut(&[u8], &dyn Fn() -> String) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let mut reader = reader.take(0);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        reader.set_limit(MAX_LINE);
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let where_ = || format!("line {number}");
        if !line.ends_with(b"\n") && n as u64 >= MAX_LINE {
            return Err(malformed(path, where_(), "line longer than 1 MiB"));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        each(&line, &where_)?;
    }
}

/// The CSV writer prefixes cells that would start a spreadsheet formula with `'`; undo it.
pub(super) fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_TRIGGERS) => rest,
        _ => cell,
    }
}

/// A CSV report's reader, past its header, and the header. A file without `address` and
/// `status` columns is not a report sshfleet wrote.
pub(super) fn csv_report<R: Read>(
    path: &Path,
    reader: R,
) -> Result<(csv::Reader<R>, csv::StringRecord), ReadError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header = csv
        .headers()
        .map_err(|e| malformed(path, "line 1".into(), e))?
        .clone();
    let has = |name: &str| header.iter().any(|h| h == name);
    if !(has("address") && has("status")) {
        return Err(malformed(
            path,
            "line 1".into(),
            "not an sshfleet report: no address and status columns",
        ));
    }
    Ok((csv, header))
}
