//! How an oracle reads its fuzz input.
//!
//! The first byte chooses: even, the rest is handed to the parser as it is
//! ([`Input::Raw`]); odd, the rest is a list of [`Edit`]s applied to a valid
//! object ([`Input::Edits`]). Random bytes rarely get past a frame's domain
//! string, let alone an AEAD; edits to a valid object reach every check.

use std::borrow::Cow;

/// Fuzz input, decoded.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Bytes for the parser.
    Raw(&'a [u8]),
    /// Encoded edits to a valid object (four bytes each, see [`Edit`]).
    Edits(&'a [u8]),
}

impl<'a> Input<'a> {
    /// Decodes `data`.
    pub fn of(data: &'a [u8]) -> Self {
        match data.split_first() {
            Some((mode, rest)) if mode & 1 == 1 => Self::Edits(rest),
            Some((_, rest)) => Self::Raw(rest),
            None => Self::Raw(&[]),
        }
    }

    /// The bytes to parse: the raw bytes, or `valid` with the edits applied.
    pub fn bytes(self, valid: &[u8]) -> Cow<'a, [u8]> {
        match self {
            Self::Raw(bytes) => Cow::Borrowed(bytes),
            Self::Edits(edits) => Cow::Owned(apply_edits(valid, edits)),
        }
    }
}

/// One change to a byte string. Positions wrap around its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// XOR the byte at `at` with `mask`.
    Xor {
        /// Where.
        at: u16,
        /// What to flip (0 changes nothing).
        mask: u8,
    },
    /// Insert `value` before `at`.
    Insert {
        /// Where.
        at: u16,
        /// The new byte.
        value: u8,
    },
    /// Remove the byte at `at`.
    Remove {
        /// Where.
        at: u16,
    },
    /// Keep only the first `at` bytes.
    Truncate {
        /// The new length.
        at: u16,
    },
}

impl Edit {
    fn decode(chunk: [u8; 4]) -> Self {
        let at = u16::from_be_bytes([chunk[1], chunk[2]]);
        match chunk[0] % 4 {
            0 => Self::Xor { at, mask: chunk[3] },
            1 => Self::Insert {
                at,
                value: chunk[3],
            },
            2 => Self::Remove { at },
            _ => Self::Truncate { at },
        }
    }

    fn encode(self) -> [u8; 4] {
        let (op, at, value) = match self {
            Self::Xor { at, mask } => (0, at, mask),
            Self::Insert { at, value } => (1, at, value),
            Self::Remove { at } => (2, at, 0),
            Self::Truncate { at } => (3, at, 0),
        };
        let [hi, lo] = at.to_be_bytes();
        [op, hi, lo, value]
    }

    fn apply(self, bytes: &mut Vec<u8>) {
        let wrap = |at: u16, len: usize| usize::from(at) % len.max(1);
        match self {
            Self::Xor { at, mask } => {
                let at = wrap(at, bytes.len());
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= mask;
                }
            }
            Self::Insert { at, value } => {
                let at = usize::from(at) % (bytes.len() + 1);
                bytes.insert(at, value);
            }
            Self::Remove { at } => {
                if !bytes.is_empty() {
                    let at = wrap(at, bytes.len());
                    bytes.remove(at);
                }
            }
            Self::Truncate { at } => {
                let at = usize::from(at) % (bytes.len() + 1);
                bytes.truncate(at);
            }
        }
    }
}

/// `original` with the encoded `edits` applied in order (a trailing
/// partial edit is ignored).
pub fn apply_edits(original: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for chunk in edits.chunks_exact(4) {
        let chunk = [chunk[0], chunk[1], chunk[2], chunk[3]];
        Edit::decode(chunk).apply(&mut bytes);
    }
    bytes
}

/// Fuzz input handing `bytes` to the parser as they are.
pub fn raw(bytes: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(bytes.len() + 1);
    data.push(0);
    data.extend_from_slice(bytes);
    data
}

/// Fuzz input applying `edits` to the oracle's valid object.
pub fn edits(edits: &[Edit]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + 4 * edits.len());
    data.push(1);
    for edit in edits {
        data.extend_from_slice(&edit.encode());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_round_trip_and_apply() {
        let list = [
            Edit::Xor { at: 1, mask: 0xff },
            Edit::Insert { at: 0, value: 7 },
            Edit::Remove { at: 3 },
            Edit::Truncate { at: 2 },
        ];
        let data = edits(&list);
        let Input::Edits(encoded) = Input::of(&data) else {
            panic!("odd first byte means edits");
        };
        // [1, 2, 3, 4] -> [1, 253, 3, 4] -> [7, 1, 253, 3, 4] -> [7, 1, 253, 4] -> [7, 1]
        assert_eq!(apply_edits(&[1, 2, 3, 4], encoded), vec![7, 1]);
        assert!(matches!(Input::of(&raw(b"x")), Input::Raw(b"x")));
    }

    #[test]
    fn positions_wrap_and_empty_input_is_safe() {
        assert_eq!(
            apply_edits(&[0, 0], &edits(&[Edit::Xor { at: 3, mask: 1 }])[1..]),
            vec![0, 1]
        );
        assert_eq!(
            apply_edits(&[], &edits(&[Edit::Remove { at: 9 }])[1..]),
            b""
        );
        assert!(matches!(Input::of(&[]), Input::Raw(&[])));
    }
}
