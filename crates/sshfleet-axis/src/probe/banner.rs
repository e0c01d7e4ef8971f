//! The server's identification line (RFC 4253 §4.2): found among at most a few lines, each
//! at most 255 bytes with its CRLF, and sanitised before it goes anywhere near a report.

/// Longest line accepted, CR LF included (RFC 4253 §4.2).
pub const MAX_LINE_BYTES: usize = 255;

/// Lines read before giving up on an identification line, it included. The RFC lets a
/// server send other lines first; a few are plenty, and the bound keeps a chatty or hostile
/// port from holding the probe.
pub const MAX_LINES: usize = 32;

/// What the server's bytes came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identification {
    /// The identification line, sanitised, without its line end.
    Line(String),
    /// Bytes came, but no identification line: why not.
    NotSsh(&'static str),
    /// Not one byte before the deadline.
    Silent,
    /// Closed (or reset) before sending anything.
    ClosedSilently,
}

/// Scans the bytes of a connection, chunk by chunk, for the identification line. The bytes
/// live in the caller's `[u8; MAX_LINE_BYTES]`, of which `len` hold an unfinished line.
#[derive(Debug, Default)]
pub(crate) struct IdentScan {
    len: usize,
    lines: usize,
    received_any: bool,
    outcome: Option<Identification>,
}

impl IdentScan {
    pub(super) fn wants_more(&self) -> bool {
        self.outcome.is_none()
    }

    /// Where the next read goes: the rest of the line buffer (never empty while
    /// [`wants_more`](Self::wants_more), since a full buffer without a line end ends the scan).
    pub(super) fn room<'a>(&self, buf: &'a mut [u8; MAX_LINE_BYTES]) -> &'a mut [u8] {
        buf.get_mut(self.len..).unwrap_or_default()
    }

    /// `n` bytes were read into [`room`](Self::room).
    pub(super) fn received(&mut self, buf: &mut [u8; MAX_LINE_BYTES], n: usize) {
        self.received_any |= n > 0;
        self.len = self.len.saturating_add(n).min(MAX_LINE_BYTES);
        while let Some(end) = buf[..self.len].iter().position(|&b| b == b'\n') {
            let line = &buf[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b"SSH-") {
                self.outcome = Some(Identification::Line(sanitise(line)));
                return;
            }
            self.lines += 1;
            if self.lines >= MAX_LINES {
                self.outcome = Some(Identification::NotSsh(
                    "no identification line among the first lines",
                ));
                return;
            }
            // Keep what follows the line end for the next line.
            let next = end + 1;
            buf.copy_within(next..self.len, 0);
            self.len -= next;
        }
        if self.len == MAX_LINE_BYTES {
            self.outcome = Some(Identification::NotSsh(
                "a line longer than 255 bytes (an endless line?)",
            ));
        }
    }

    /// The peer closed the connection, or it failed.
    pub(super) fn ended(&mut self) {
        self.outcome = Some(if self.received_any {
            Identification::NotSsh("closed before a complete identification line")
        } else {
            Identification::ClosedSilently
        });
    }

    pub(super) fn deadline_passed(&mut self) {
        self.outcome = Some(if self.received_any {
            Identification::NotSsh("no complete identification line within the deadline")
        } else {
            Identification::Silent
        });
    }

    /// `filtered` when nothing at all answered; any answer, even a close, means `open`.
    pub(super) fn port_state(&self) -> sshfleet_core::model::PortState {
        match self.outcome {
            Some(Identification::Silent) => sshfleet_core::model::PortState::Filtered,
            _ => sshfleet_core::model::PortState::Open,
        }
    }

    /// Why an open port has no banner, for the log.
    pub(super) fn note(&self) -> Option<&'static str> {
        match self.outcome {
            Some(Identification::NotSsh(why)) => Some(why),
            Some(Identification::ClosedSilently) => Some("closed without sending anything"),
            _ => None,
        }
    }

    pub(super) fn into_banner(self) -> Option<String> {
        match self.outcome {
            Some(Identification::Line(line)) => Some(line),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(super) fn outcome(&self) -> Option<&Identification> {
        self.outcome.as_ref()
    }
}

/// Printable ASCII (space to `~`) kept, every other byte replaced by `?`, at most
/// [`MAX_LINE_BYTES`] characters: no terminal escapes, no line breaks, no NULs, no
/// non-ASCII look-alikes. CSV formula neutralising and HTML escaping are the writers' job.
pub fn sanitise(line: &[u8]) -> String {
    line.iter()
        .take(MAX_LINE_BYTES)
        .map(|&b| match b {
            b' '..=b'~' => char::from(b),
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshfleet_core::model::PortState;

    /// Feeds `chunks` as successive reads, then `end` if the scan still wants more.
    fn scan(chunks: &[&[u8]], end: fn(&mut IdentScan)) -> IdentScan {
        let mut scan = IdentScan::default();
        let mut buf = [0u8; MAX_LINE_BYTES];
        for chunk in chunks {
            let mut rest = *chunk;
            while scan.wants_more() && !rest.is_empty() {
                let room = scan.room(&mut buf);
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                scan.received(&mut buf, n);
            }
        }
        if scan.wants_more() {
            end(&mut scan);
        }
        scan
    }

    fn line(text: &str) -> Option<Identification> {
        Some(Identification::Line(text.to_owned()))
    }

    #[test]
    fn an_openssh_line_is_the_banner_with_crlf_or_lf() {
        let s = scan(&[b"SSH-2.0-OpenSSH_8.9\r\n\0\0\0\x14"], IdentScan::ended);
        assert_eq!(s.outcome(), line("SSH-2.0-OpenSSH_8.9").as_ref());
        assert_eq!(s.port_state(), PortState::Open);
        assert_eq!(s.note(), None);
        let s = scan(&[b"SSH-1.99-Cisco-1.25\n"], IdentScan::ended);
        assert_eq!(s.into_banner().as_deref(), Some("SSH-1.99-Cisco-1.25"));
    }

    #[test]
    fn a_line_trickled_byte_by_byte_is_found() {
        let bytes = b"SSH-2.0-dropbear_2022.83\r\n";
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let s = scan(&chunks, IdentScan::deadline_passed);
        assert_eq!(s.outcome(), line("SSH-2.0-dropbear_2022.83").as_ref());
    }

    #[test]
    fn lines_before_the_identification_are_skipped_up_to_a_bound() {
        let s = scan(
            &[b"Welcome\r\n=cmd|' /C calc'!A0\r\n", b"\r\nSSH-2.0-x\r\n"],
            IdentScan::ended,
        );
        assert_eq!(s.outcome(), line("SSH-2.0-x").as_ref());
        let chatter = "hello\r\n".repeat(MAX_LINES);
        let s = scan(&[chatter.as_bytes(), b"SSH-2.0-late\r\n"], IdentScan::ended);
        assert!(
            matches!(s.outcome(), Some(Identification::NotSsh(_))),
            "{s:?}"
        );
        assert_eq!(s.port_state(), PortState::Open);
        assert_eq!(s.into_banner(), None);
    }

    #[test]
    fn the_line_limit_counts_the_crlf() {
        let longest = format!("SSH-2.0-{}\r\n", "a".repeat(MAX_LINE_BYTES - 10));
        assert_eq!(longest.len(), MAX_LINE_BYTES);
        let s = scan(&[longest.as_bytes()], IdentScan::ended);
        assert_eq!(s.into_banner().map(|b| b.len()), Some(MAX_LINE_BYTES - 2));
        let too_long = format!("SSH-2.0-{}\r\n", "a".repeat(MAX_LINE_BYTES - 9));
        let s = scan(&[too_long.as_bytes()], IdentScan::ended);
        assert!(
            matches!(s.outcome(), Some(Identification::NotSsh(_))),
            "{s:?}"
        );
    }

    #[test]
    fn an_endless_line_ends_the_scan_at_the_limit() {
        let endless = vec![b'A'; 10 * MAX_LINE_BYTES];
        let mut s = IdentScan::default();
        let mut buf = [0u8; MAX_LINE_BYTES];
        let mut fed = 0;
        while s.wants_more() {
            let room = s.room(&mut buf);
            assert!(!room.is_empty());
            let n = room.len().min(7);
            room[..n].copy_from_slice(&endless[fed..fed + n]);
            fed += n;
            s.received(&mut buf, n);
        }
        assert_eq!(fed, MAX_LINE_BYTES, "never more than one line is read");
        assert_eq!(
            s.note(),
            Some("a line longer than 255 bytes (an endless line?)")
        );
    }

    #[test]
    fn silence_is_filtered_and_a_silent_close_is_open() {
        let s = scan(&[], IdentScan::deadline_passed);
        assert_eq!(s.outcome(), Some(&Identification::Silent));
        assert_eq!(s.port_state(), PortState::Filtered);
        let s = scan(&[], IdentScan::ended);
        assert_eq!(s.outcome(), Some(&Identification::ClosedSilently));
        assert_eq!(s.port_state(), PortState::Open);
        let s = scan(&[b"SSH-2.0-cut"], IdentScan::deadline_passed);
        assert!(matches!(s.outcome(), Some(Identification::NotSsh(_))));
        assert_eq!(s.port_state(), PortState::Open);
        let s = scan(&[b"HTTP/1.1 400 Bad Request\r\n\r\n"], IdentScan::ended);
        assert_eq!(s.into_banner(), None);
    }

    #[test]
    fn hostile_bytes_are_replaced() {
        let hostile = b"SSH-2.0-\x1b[2J\x07<script>alert(1)</script>\x00\xc3\xa9\ttab";
        assert_eq!(
            sanitise(hostile),
            "SSH-2.0-?[2J?<script>alert(1)</script>????tab"
        );
        let s = scan(&[b"SSH-2.0-a\rb\r\n"], IdentScan::ended);
        assert_eq!(s.into_banner().as_deref(), Some("SSH-2.0-a?b"));
        assert_eq!(sanitise(&[b'x'; 1000]).len(), MAX_LINE_BYTES);
    }
}
