//! Text from devices and inputs made inert before a terminal or a spreadsheet shows it: the
//! one sanitiser that stderr messages, `-v` logs, summaries, tables and CSV cells share.
//! Control characters and bidirectional overrides become visible escapes (`\u{1b}`, `\n`),
//! and lines quoted from input are cut to a bounded length.

use std::borrow::Cow;
use std::fmt;

/// The longest line of input a message quotes, in characters (the rest becomes `…`).
pub(crate) const MAX_LINE_CHARS: usize = 200;

/// The longest line of a whole message (its own words and what it quotes), in characters.
pub(crate) const MAX_MESSAGE_LINE_CHARS: usize = 1000;

/// Whether `c` must not reach a terminal or a cell as it is: C0 and C1 controls, DEL, and
/// the bidirectional embeddings, overrides and isolates that reorder what is shown.
fn is_active(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c => write!(out, "\\u{{{:x}}}", u32::from(c)),
    }
}

/// `text` with every active character (see above) shown as an escape; borrowed when there
/// is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_active) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = Inert(text).write_to(&mut out);
    Cow::Owned(out)
}

/// A line of input for a message: escaped, and cut to `MAX_LINE_CHARS` characters (counted
/// before escaping) with `…` when longer.
pub fn line(text: &str) -> Cow<'_, str> {
    shorten(text, MAX_LINE_CHARS)
}

/// `text` escaped and cut to `max` characters, the cut marked with `…`.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => escape(text),
        Some((end, _)) => {
            let kept = &text[..end];
            let kept = match kept.char_indices().last() {
                Some((last, _)) if max > 0 => &kept[..last],
                _ => kept,
            };
            Cow::Owned(format!("{}…", escape(kept)))
        }
    }
}

/// A message that may quote input (a parser's error with the offending line): every line
/// escaped and cut to `MAX_MESSAGE_LINE_CHARS`, so that a 3 MB line costs at most a few
/// KiB of stderr, and nothing in it reaches the terminal as a control sequence.
pub fn message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    for (i, l) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&shorten(l, MAX_MESSAGE_LINE_CHARS));
    }
    out
}

/// Shows a string escaped, without allocating: `tracing::info!(site = %Inert(&site))`.
#[derive(Clone, Copy, Debug)]
pub struct Inert<'a>(pub &'a str);

impl Inert<'_> {
    fn write_to(self, out: &mut impl fmt::Write) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(is_active) {
            out.write_str(&rest[..at])?;
            let Some(c) = rest[at..].chars().next() else {
                break;
            };
            push_escaped(out, c)?;
            rest = &rest[at + c.len_utf8()..];
        }
        out.write_str(rest)
    }
}

impl fmt::Display for Inert<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_overrides_become_visible_escapes() {
        assert_eq!(escape("hq north"), "hq north");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("hq\tnorth"), "hq\\tnorth");
        assert_eq!(escape("a\u{1b}[31mred\r\n"), "a\\u{1b}[31mred\\r\\n");
        assert_eq!(
            escape("x\u{7f}\u{9b}\u{202e}y"),
            "x\\u{7f}\\u{9b}\\u{202e}y"
        );
        assert_eq!(escape("Tromsø ✓"), "Tromsø ✓");
        assert_eq!(Inert("a\u{1b}b").to_string(), "a\\u{1b}b");
    }

    #[test]
    fn long_lines_are_cut_with_an_ellipsis() {
        assert_eq!(shorten("abcd", 3), "ab…");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("ééé\u{1b}x", 4), "ééé…");
        let long = "x".repeat(3 << 20);
        assert_eq!(line(&long).chars().count(), MAX_LINE_CHARS);
        let text = format!("error at line 1\n1 | {long}\n  | ^");
        let shown = message(&text);
        assert!(shown.len() < 1100, "{}", shown.len());
        assert_eq!(shown.lines().count(), 3);
        assert!(shown.ends_with("\n  | ^"));
    }
}
