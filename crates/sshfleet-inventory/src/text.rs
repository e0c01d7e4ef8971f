//! Cell text made safe to show: values quoted for messages, cells of bad rows echoed into
//! reports, both cleaned and cut short.

use std::fmt;

/// How much of a cell an invalid row keeps, in characters.
const MAX_ECHO_CHARS: usize = 256;

/// How much of a value an error message quotes, in characters.
const MAX_QUOTE_CHARS: usize = 64;

/// A value for an error message: at most `MAX_QUOTE_CHARS` characters, shown quoted and
/// escaped (`"a\"b\n"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted(String);

impl Quoted {
    pub fn new(value: &str) -> Quoted {
        Quoted(truncate_chars(value.chars(), MAX_QUOTE_CHARS))
    }

    /// The value as kept: unescaped, cut short (ending in `…`) when it was long.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_debug())
    }
}

/// A value for an error message: quoted, escaped, at most [`MAX_QUOTE_CHARS`] characters.
pub(crate) fn quoted(value: &str) -> String {
    Quoted::new(value).to_string()
}

/// A cell of a bad row, made safe to copy into a report: lossy UTF-8, trimmed, control
/// characters shown as escapes (`sshfleet_core::inert`), at most [`MAX_ECHO_CHARS`] characters.
pub(super) fn echo_cell(cell: Option<&[u8]>) -> String {
    let text = String::from_utf8_lossy(cell.unwrap_or_default());
    sshfleet_core::inert::shorten(text.trim(), MAX_ECHO_CHARS).into_owned()
}

/// Keeps at most `max` characters; a cut is marked with `…` (counted in `max`).
fn truncate_chars(chars: impl Iterator<Item = char>, max: usize) -> String {
    let mut chars = chars.peekable();
    let mut out = String::new();
    let mut kept = 0usize;
    while let Some(c) = chars.next() {
        kept = kept.saturating_add(1);
        if kept == max && chars.peek().is_some() {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_short_and_escaped() {
        assert_eq!(quoted("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quoted(&"x".repeat(100)).chars().count(), 64 + 2);
        assert_eq!(Quoted::new(&"x".repeat(100)).as_str().chars().count(), 64);
        assert_eq!(truncate_chars("abc".chars(), 3), "abc");
        assert_eq!(truncate_chars("abcd".chars(), 3), "ab…");
    }

    #[test]
    fn echoed_cells_are_clean_and_short() {
        assert_eq!(echo_cell(Some(b" a\0b ")), "a\\u{0}b");
        assert_eq!(echo_cell(Some(b"caf\xE9")), "caf\u{FFFD}");
        assert_eq!(echo_cell(None), "");
        assert_eq!(
            echo_cell(Some("n".repeat(300).as_bytes())).chars().count(),
            256
        );
    }
}
