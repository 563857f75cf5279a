//! Primitive field readers and writers: one byte, two and four byte
//! integers, variable byte integers, UTF-8 strings, binary data and string
//! pairs (MQTT 5.0 §1.5; the same layouts serve 3.1 and 3.1.1).
//!
//! Reading happens through [`Reader`], a cursor over the frozen bytes of one
//! whole packet, so strings and binary fields are `Bytes::slice`s of it (no
//! copy). A field that runs past the end of the packet (or of the property
//! block being read) is malformed: the fixed header already said how long
//! the packet is, so running short is never "incomplete".

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::varint::{read_varint, write_varint};
use crate::Error;

/// Longest string or binary field: its length is a two byte integer.
pub const MAX_FIELD_LEN: usize = u16::MAX as usize;

const SHORT: Error = Error::Malformed("field runs past the end of the packet");

/// A cursor over `buf[pos..end]`.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf[start..]`.
    #[inline]
    pub(crate) fn new(buf: &'a Bytes, start: usize) -> Self {
        Reader {
            buf,
            pos: start,
            end: buf.len(),
        }
    }

    /// Bytes left before the end.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    /// Errs with `Malformed` unless every byte was consumed: trailing bytes
    /// mean the remaining length and the content disagree.
    #[inline]
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), Error> {
        if self.pos == self.end {
            Ok(())
        } else {
            Err(Error::Malformed(what))
        }
    }

    /// Splits off a reader over the next `len` bytes (a property block) and
    /// advances past them.
    #[inline]
    pub(crate) fn sub(&mut self, len: usize) -> Result<Reader<'a>, Error> {
        if len > self.remaining() {
            return Err(Error::Malformed(
                "property length past the end of the packet",
            ));
        }
        let sub = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + len,
        };
        self.pos += len;
        Ok(sub)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        if self.pos >= self.end {
            return Err(SHORT);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        if self.remaining() < 2 {
            return Err(SHORT);
        }
        let v = u16::from_be_bytes([self.buf[self.pos], self.buf[self.pos + 1]]);
        self.pos += 2;
        Ok(v)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        if self.remaining() < 4 {
            return Err(SHORT);
        }
        let p = self.pos;
        let v = u32::from_be_bytes([
            self.buf[p],
            self.buf[p + 1],
            self.buf[p + 2],
            self.buf[p + 3],
        ]);
        self.pos += 4;
        Ok(v)
    }

    /// A variable byte integer; one cut short by the end is malformed.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u32, Error> {
        match read_varint(&self.buf[self.pos..self.end]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(Error::Incomplete(_)) => Err(SHORT),
            Err(e) => Err(e),
        }
    }

    /// `len` raw bytes as a zero-copy slice.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, Error> {
        if len > self.remaining() {
            return Err(SHORT);
        }
        let b = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }

    /// The next byte, without consuming it.
    #[inline]
    pub(crate) fn peek_u8(&self) -> Option<u8> {
        if self.pos < self.end {
            Some(self.buf[self.pos])
        } else {
            None
        }
    }

    /// Skips `n` bytes the caller has already looked at with `peek_u8`.
    #[inline]
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    /// Where the next read starts, as an offset into the packet's bytes.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Binary data: two byte length, then the bytes.
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<Bytes, Error> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A UTF-8 encoded string: well-formed UTF-8 without U+0000.
    #[inline]
    pub(crate) fn string(&mut self) -> Result<ByteString, Error> {
        let raw = self.binary()?;
        to_string(raw)
    }

    /// A string whose bytes must also avoid `+` and `#`: a topic name.
    /// Returns `Error::Protocol` for a wildcard (MQTT-3.3.2-2), which maps to
    /// reason code 0x82; the malformed cases stay `Malformed`.
    #[inline]
    pub(crate) fn topic_name(&mut self) -> Result<ByteString, Error> {
        let raw = self.binary()?;
        // One SIMD pass for the three forbidden bytes; UTF-8 continuation
        // bytes are >= 0x80 so they can never be mistaken for any of them.
        if memchr::memchr3(0, b'+', b'#', &raw).is_some() {
            if raw.contains(&0) {
                return Err(Error::Malformed("string contains U+0000"));
            }
            return Err(Error::Protocol("wildcard in topic name"));
        }
        ByteString::try_from(raw).map_err(|_| Error::Malformed("string is not valid UTF-8"))
    }

    /// A UTF-8 string pair (user property).
    #[inline]
    pub(crate) fn string_pair(&mut self) -> Result<(ByteString, ByteString), Error> {
        let k = self.string()?;
        let v = self.string()?;
        Ok((k, v))
    }
}

/// Validates `raw` as an MQTT UTF-8 string (MQTT-1.5.4-1, -2): well-formed
/// and free of U+0000. Other non-characters are allowed, as the spec permits.
#[inline]
pub(crate) fn to_string(raw: Bytes) -> Result<ByteString, Error> {
    if raw.contains(&0) {
        return Err(Error::Malformed("string contains U+0000"));
    }
    ByteString::try_from(raw).map_err(|_| Error::Malformed("string is not valid UTF-8"))
}

/// Encoded size of a string or binary field.
#[inline]
pub(crate) fn field_len(len: usize) -> usize {
    2 + len
}

#[inline]
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) -> Result<(), Error> {
    if data.len() > MAX_FIELD_LEN {
        return Err(Error::Malformed("string or binary field over 65,535 bytes"));
    }
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
    Ok(())
}

#[inline]
pub(crate) fn put_string(buf: &mut BytesMut, s: &str) -> Result<(), Error> {
    put_binary(buf, s.as_bytes())
}

#[inline]
pub(crate) fn put_varint(buf: &mut BytesMut, v: usize) -> Result<(), Error> {
    if v > crate::MAX_REMAINING_LENGTH {
        return Err(Error::Malformed("variable byte integer over 268,435,455"));
    }
    write_varint(buf, v as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_primitive() {
        let b = Bytes::from_static(&[
            0x07, // u8
            0x01, 0x02, // u16
            0x00, 0x00, 0x01, 0x00, // u32
            0x80, 0x01, // varint 128
            0x00, 0x02, b'h', b'i', // string
            0x00, 0x01, 0xff, // binary
            0xaa, 0xbb, // two more
        ]);
        let mut r = Reader::new(&b, 0);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u32(), Ok(256));
        assert_eq!(r.varint(), Ok(128));
        assert_eq!(r.string().map(|s| s.to_string()), Ok("hi".to_string()));
        assert_eq!(r.binary(), Ok(Bytes::from_static(&[0xff])));
        assert_eq!(r.position(), 16);
        assert_eq!(r.take(2), Ok(Bytes::from_static(&[0xaa, 0xbb])));
        assert!(r.finish("trailing").is_ok());
    }

    #[test]
    fn short_fields_are_malformed_not_incomplete() {
        let b = Bytes::from_static(&[0x00, 0x05, b'a']);
        assert!(matches!(
            Reader::new(&b, 0).string(),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(Reader::new(&b, 2).u16(), Err(Error::Malformed(_))));
        assert!(matches!(Reader::new(&b, 3).u8(), Err(Error::Malformed(_))));
        let v = Bytes::from_static(&[0x80, 0x80]);
        assert!(matches!(
            Reader::new(&v, 0).varint(),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn strings_reject_nul_and_bad_utf8_but_allow_noncharacters() {
        let nul = Bytes::from_static(&[0x00, 0x02, b'a', 0x00]);
        assert_eq!(
            Reader::new(&nul, 0).string(),
            Err(Error::Malformed("string contains U+0000"))
        );
        let bad = Bytes::from_static(&[0x00, 0x02, 0xc3, 0x28]);
        assert_eq!(
            Reader::new(&bad, 0).string(),
            Err(Error::Malformed("string is not valid UTF-8"))
        );
        // U+FFFE is a non-character that MQTT allows.
        let nonchar = Bytes::from_static(&[0x00, 0x03, 0xef, 0xbf, 0xbe]);
        assert_eq!(
            Reader::new(&nonchar, 0).string().map(|s| s.to_string()),
            Ok("\u{FFFE}".to_string())
        );
    }

    #[test]
    fn topic_name_rejects_wildcards() {
        let plus = Bytes::from_static(&[0x00, 0x03, b'a', b'/', b'+']);
        assert!(matches!(
            Reader::new(&plus, 0).topic_name(),
            Err(Error::Protocol(_))
        ));
        let hash = Bytes::from_static(&[0x00, 0x01, b'#']);
        assert!(matches!(
            Reader::new(&hash, 0).topic_name(),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn writers_refuse_oversized_fields() {
        let mut buf = BytesMut::new();
        let big = vec![b'a'; MAX_FIELD_LEN + 1];
        assert!(put_binary(&mut buf, &big).is_err());
        assert!(put_binary(&mut buf, &big[..MAX_FIELD_LEN]).is_ok());
        assert_eq!(buf.len(), MAX_FIELD_LEN + 2);
    }
}
