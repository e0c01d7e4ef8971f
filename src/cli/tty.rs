//! The person at the keyboard: confirmations are asked on the controlling terminal
//! (`/dev/tty`) and answered from it, whatever stdin, stdout and stderr are — a run piped
//! through `2>&1 | tee log` still asks. What was typed before a question is discarded, so
//! that a `yes` typed ahead never answers a question not yet shown.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};

/// The longest answer read.
const MAX_ANSWER: u64 = 1024;

fn open() -> Option<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
}

/// Asks `question` on the terminal: true only for `yes` (any case), typed after it was
/// asked. No terminal, or one that fails, is a no.
pub(super) fn ask(question: &str) -> bool {
    let Some(mut tty) = open() else {
        return false;
    };
    discard_type_ahead(&tty);
    if write!(tty, "{question}")
        .and_then(|()| tty.flush())
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let mut reader = BufReader::new((&tty).take(MAX_ANSWER));
    if reader.read_line(&mut answer).is_err() {
        return false;
    }
    answer.trim().eq_ignore_ascii_case("yes")
}

#[cfg(unix)]
fn discard_type_ahead(tty: &File) {
    let _ = rustix::termios::tcflush(tty, rustix::termios::QueueSelector::IFlush);
}

#[cfg(not(unix))]
fn discard_type_ahead(_: &File) {}
