//! The binary framing of every sealed object and every signed or
//! authenticated transcript: a domain string followed by length-prefixed
//! fields.
//!
//! Each field is a big-endian `u32` length and the bytes; integers are
//! fixed 8-byte big-endian. The encoding is injective (no two field lists
//! give the same bytes), which is what makes it safe to sign and to use as
//! AEAD associated data. [`Reader`] never panics and rejects truncated or
//! trailing input, so it can face bytes from the network.

use crate::ProtoError;

/// Builds a transcript or a frame.
#[derive(Debug, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts with `domain`, which names the structure and its version.
    pub fn new(domain: &str) -> Self {
        let mut writer = Self {
            buf: Vec::with_capacity(128),
        };
        writer.put(domain.as_bytes());
        writer
    }

    fn put(&mut self, bytes: &[u8]) {
        // Fields are bounded by the 48 MB code limit; a field over 4 GiB is
        // a programming error, not input.
        let len = u32::try_from(bytes.len()).expect("field longer than 4 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a length-prefixed byte field.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        self.put(bytes);
        self
    }

    /// Appends a length-prefixed UTF-8 field.
    pub fn str(self, text: &str) -> Self {
        self.bytes(text.as_bytes())
    }

    /// Appends a fixed-width integer.
    pub fn u64(mut self, value: u64) -> Self {
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Parses what a [`Writer`] produced.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`, which must begin with `domain`.
    pub fn new(bytes: &'a [u8], domain: &str) -> Result<Self, ProtoError> {
        let mut reader = Self { rest: bytes };
        if reader.bytes()? != domain.as_bytes() {
            return Err(ProtoError::Malformed("unexpected object type or version"));
        }
        Ok(reader)
    }

    /// The domain `bytes` begin with, which names the structure and its
    /// version; the rest is not looked at.
    pub fn domain(bytes: &'a [u8]) -> Result<&'a [u8], ProtoError> {
        Self { rest: bytes }.bytes()
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtoError> {
        if self.rest.len() < len {
            return Err(ProtoError::Malformed("truncated"));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// Reads a length-prefixed byte field.
    pub fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.take(4)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        self.take(len)
    }

    /// Reads a length-prefixed field of exactly `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        self.bytes()?
            .try_into()
            .map_err(|_| ProtoError::Malformed("field of the wrong length"))
    }

    /// Reads a length-prefixed UTF-8 field.
    pub fn str(&mut self) -> Result<&'a str, ProtoError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| ProtoError::Malformed("text is not UTF-8"))
    }

    /// Reads a fixed-width integer.
    pub fn u64(&mut self) -> Result<u64, ProtoError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
    }

    /// Succeeds only if everything was read.
    pub fn finish(self) -> Result<(), ProtoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fields() {
        let bytes = Writer::new("test/v1")
            .bytes(b"abc")
            .str("é")
            .u64(7)
            .bytes(&[9; 32])
            .finish();
        let mut reader = Reader::new(&bytes, "test/v1").expect("domain");
        assert_eq!(reader.bytes().expect("bytes"), b"abc");
        assert_eq!(reader.str().expect("str"), "é");
        assert_eq!(reader.u64().expect("u64"), 7);
        assert_eq!(reader.array::<32>().expect("array"), [9; 32]);
        reader.finish().expect("nothing left");
    }

    #[test]
    fn rejects_wrong_domain_truncation_and_trailing_bytes() {
        let bytes = Writer::new("a/v1").bytes(b"xyz").finish();
        assert!(Reader::new(&bytes, "b/v1").is_err());
        let mut truncated = Reader::new(&bytes[..bytes.len() - 1], "a/v1").expect("domain");
        assert!(truncated.bytes().is_err());
        let mut long = bytes.clone();
        long.push(0);
        let mut reader = Reader::new(&long, "a/v1").expect("domain");
        reader.bytes().expect("field");
        assert!(reader.finish().is_err());
        let mut reader = Reader::new(&bytes, "a/v1").expect("domain");
        assert!(reader.array::<4>().is_err(), "length mismatch");
    }

    #[test]
    fn encoding_is_injective_across_field_boundaries() {
        let a = Writer::new("d").bytes(b"ab").bytes(b"c").finish();
        let b = Writer::new("d").bytes(b"a").bytes(b"bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect();
            if let Ok(mut reader) = Reader::new(&junk, "x") {
                let _ = reader.bytes();
                let _ = reader.u64();
            }
        }
    }
}
