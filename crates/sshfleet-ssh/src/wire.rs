//! SSH's data types (RFC 4251 §5) read from and written to byte buffers, every read bounded by
//! the buffer it reads: a length that runs past the end is an error, never a panic.

use crate::Malformed;

/// Reads SSH data types from one message, front to back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(crate) fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if len > self.rest.len() {
            return Err(Malformed::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn byte(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn boolean(&mut self, what: &'static str) -> Result<bool, Malformed> {
        Ok(self.byte(what)? != 0)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `string`: a length and that many bytes.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let len = usize::try_from(self.u32(what)?).map_err(|_| Malformed::Truncated(what))?;
        self.bytes(len, what)
    }

    /// A `name-list`: comma-separated US-ASCII names. Empty names and non-printable bytes are
    /// refused rather than carried into a report.
    pub(crate) fn name_list(&mut self, what: &'static str) -> Result<Vec<String>, Malformed> {
        let raw = self.string(what)?;
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        if raw.len() > crate::MAX_NAME_LIST_BYTES {
            return Err(Malformed::TooLong(what));
        }
        raw.split(|&b| b == b',')
            .map(|name| {
                if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(Malformed::BadName(what));
                }
                Ok(String::from_utf8_lossy(name).into_owned())
            })
            .collect()
    }

    /// An `mpint` as its unsigned magnitude, leading zeros stripped. A negative value (the top
    /// bit set without a zero byte in front) is refused: no field read here may be negative.
    pub(crate) fn mpint(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let raw = self.string(what)?;
        if raw.first().is_some_and(|&b| b & 0x80 != 0) {
            return Err(Malformed::Negative(what));
        }
        let skip = raw.iter().take_while(|&&b| b == 0).count();
        Ok(&raw[skip..])
    }
}

/// Builds one SSH message.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer::default()
    }

    pub(crate) fn byte(&mut self, b: u8) -> &mut Writer {
        self.buf.push(b);
        self
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Writer {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Writer {
        self.raw(&v.to_be_bytes())
    }

    /// A `string`. Everything this crate writes is far below 4 GiB; a longer one is cut to
    /// the length field's limit rather than written with a wrong length.
    pub(crate) fn string(&mut self, bytes: &[u8]) -> &mut Writer {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len);
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
        self.raw(&bytes[..take])
    }

    pub(crate) fn name_list<S: AsRef<str>>(&mut self, names: &[S]) -> &mut Writer {
        let joined = names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(",");
        self.string(joined.as_bytes())
    }

    /// An unsigned magnitude as an `mpint`: leading zeros dropped, a zero byte added when the
    /// top bit is set.
    pub(crate) fn mpint(&mut self, magnitude: &[u8]) -> &mut Writer {
        let skip = magnitude.iter().take_while(|&&b| b == 0).count();
        let digits = &magnitude[skip..];
        if digits.first().is_some_and(|&b| b & 0x80 != 0) {
            let mut padded = Vec::with_capacity(digits.len() + 1);
            padded.push(0);
            padded.extend_from_slice(digits);
            self.string(&padded)
        } else {
            self.string(digits)
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_longer_than_the_message_is_truncated_not_a_panic() {
        let mut r = Reader::new(&[0, 0, 0, 9, b'a']);
        assert_eq!(r.string("s"), Err(Malformed::Truncated("s")));
    }

    #[test]
    fn mpints_round_trip_with_the_sign_byte() {
        let mut w = Writer::new();
        w.mpint(&[0, 0, 0x80, 1]).mpint(&[0x7f]).mpint(&[]);
        let bytes = w.into_bytes();
        assert_eq!(&bytes[..7], &[0, 0, 0, 3, 0, 0x80, 1]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.mpint("a"), Ok(&[0x80, 1][..]));
        assert_eq!(r.mpint("b"), Ok(&[0x7f][..]));
        assert_eq!(r.mpint("c"), Ok(&[][..]));
    }

    #[test]
    fn a_negative_mpint_is_refused() {
        let mut r = Reader::new(&[0, 0, 0, 1, 0x80]);
        assert_eq!(r.mpint("m"), Err(Malformed::Negative("m")));
    }

    #[test]
    fn name_lists_refuse_empty_names_and_control_bytes() {
        let mut w = Writer::new();
        w.string(b"a,,b")
            .string(b"a,\x1b[2J")
            .string(b"curve25519-sha256,ext-info-s");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.name_list("x"), Err(Malformed::BadName("x")));
        assert_eq!(r.name_list("y"), Err(Malformed::BadName("y")));
        assert_eq!(
            r.name_list("z"),
            Ok(vec![
                "curve25519-sha256".to_owned(),
                "ext-info-s".to_owned()
            ])
        );
    }
}
