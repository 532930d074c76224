//! Canonical binary encoding: one version byte, then postcard.
//!
//! Used for everything that is hashed, replicated or stored: journal records, Raft payloads,
//! sled values. postcard is deterministic for our types (no maps with unspecified order, no
//! floats), which the journal hash chain relies on.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bumped whenever an encoded type changes incompatibly.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    Empty,
    UnknownVersion(u8),
    Malformed(String),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Empty => write!(f, "empty value"),
            CodecError::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            CodecError::Malformed(e) => write!(f, "malformed value: {e}"),
        }
    }
}

impl std::error::Error for CodecError {}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let out = vec![FORMAT_VERSION];
    postcard::to_extend(value, out).expect("postcard encoding into a Vec cannot fail")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if *version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(*version));
    }
    postcard::from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// Decodes only the first value of an [`encode`]d record (postcard lays fields out in order,
/// so the first field of the first field is at the front): the id of a stored transfer,
/// without decoding the transfer.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if *version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(*version));
    }
    postcard::take_from_bytes(body).map(|(value, _)| value).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// The length of the front of an [`encode`]d record that holds its first value, when that
/// value is a string: the version byte, the length varint and the string's bytes (the id of a
/// stored transfer, the account of a history row). `None` if the bytes do not start that way.
pub fn string_prefix_len(bytes: &[u8]) -> Option<usize> {
    first_string(bytes).map(|(_, end)| end)
}

/// The bytes of the string an [`encode`]d record starts with, and where its encoding ends
/// (see [`string_prefix_len`]); not checked to be UTF-8.
pub fn first_string(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let (version, body) = bytes.split_first()?;
    if *version != FORMAT_VERSION {
        return None;
    }
    let mut n: u64 = 0;
    for (i, byte) in body.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let start = 2 + i;
            let end = start.checked_add(usize::try_from(n).ok()?)?;
            return bytes.get(start..end).map(|string| (string, end));
        }
    }
    None
}

/// Feeds exactly the bytes of [`encode`]`(value)` to `sink`, in order, without building them:
/// the journal hashes records this way, with no allocation (a 60 KiB entry's records used to
/// be encoded into growing `Vec`s only to be hashed and dropped).
pub fn encode_to<T: Serialize + ?Sized>(value: &T, sink: &mut dyn FnMut(&[u8])) {
    sink(&[FORMAT_VERSION]);
    let flavor = ChunkFlavor { sink, buf: [0; CHUNK_BYTES], len: 0 };
    postcard::serialize_with_flavor(value, flavor).expect("postcard encoding into a sink cannot fail");
}

/// [`encode`]s `value` onto the end of `out` (no buffer of its own: the records of an apply are
/// encoded one after the other into one buffer); returns the new length of `out`.
pub fn encode_onto<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> usize {
    out.push(FORMAT_VERSION);
    postcard::serialize_with_flavor(value, VecTail(out)).expect("postcard encoding onto a Vec cannot fail");
    out.len()
}

/// A postcard flavor that appends to a borrowed `Vec`.
struct VecTail<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for VecTail<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Bytes [`encode_to`] gathers before handing them to its sink.
const CHUNK_BYTES: usize = 1024;

/// A postcard flavor that hands the encoding to a sink in chunks of up to `CHUNK_BYTES`.
struct ChunkFlavor<'a> {
    sink: &'a mut dyn FnMut(&[u8]),
    buf: [u8; CHUNK_BYTES],
    len: usize,
}

impl ChunkFlavor<'_> {
    #[cold]
    fn drain(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl postcard::ser_flavors::Flavor for ChunkFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.len == CHUNK_BYTES {
            self.drain();
        }
        self.buf[self.len] = byte;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if self.len + bytes.len() > CHUNK_BYTES {
            self.drain();
        }
        if bytes.len() >= CHUNK_BYTES {
            (self.sink)(bytes);
        } else {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<()> {
        self.drain();
        Ok(())
    }
}

/// Encoded length without keeping the bytes.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    1 + postcard::experimental::serialized_size(value).expect("postcard sizing cannot fail")
}

/// Decimals in canonical encodings as their 16-byte binary form (`Decimal::serialize`):
/// exact, fixed size, and an order of magnitude cheaper than text. Use as
/// `#[serde(with = "crate::codec::decimal")]`.
pub mod decimal {
    use rust_decimal::Decimal;
    use serde::Deserialize;
    use serde::Deserializer;
    use serde::Serialize;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let bytes = <[u8; 16]>::deserialize(deserializer)?;
        from_bytes(bytes).ok_or_else(|| serde::de::Error::custom("invalid decimal bytes"))
    }

    /// Checks the flags word (scale <= 28, only the sign bit besides it) before decoding.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Decimal> {
        let valid = bytes[0] == 0 && bytes[1] == 0 && bytes[2] <= 28 && bytes[3] & 0x7F == 0;
        valid.then(|| Decimal::deserialize(bytes))
    }

    /// `Option<Decimal>` in the same form.
    pub mod option {
        use rust_decimal::Decimal;
        use serde::Deserialize;
        use serde::Deserializer;
        use serde::Serialize;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
            value.map(|d| d.serialize()).serialize(serializer)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
            match Option::<[u8; 16]>::deserialize(deserializer)? {
                None => Ok(None),
                Some(bytes) => {
                    super::from_bytes(bytes).map(Some).ok_or_else(|| serde::de::Error::custom("invalid decimal bytes"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Goal: `encode_to` hands out exactly the bytes of `encode`, and `encode_onto` appends
    /// exactly them after what a buffer already holds, for values smaller and larger than a
    /// chunk, with strings longer than a chunk.
    #[test]
    fn encode_to_feeds_exactly_the_encoded_bytes() {
        let values: Vec<Vec<String>> = vec![
            vec![],
            vec!["a".into()],
            (0..500).map(|i| format!("item-{i}")).collect(),
            vec!["x".repeat(5000), "y".into(), "z".repeat(1023)],
        ];
        for value in values {
            let mut fed = Vec::new();
            super::encode_to(&value, &mut |chunk| fed.extend_from_slice(chunk));
            assert_eq!(fed, super::encode(&value));
            let mut onto = b"before".to_vec();
            assert_eq!(super::encode_onto(&value, &mut onto), onto.len());
            assert_eq!((&onto[..6], &onto[6..]), (&b"before"[..], &fed[..]));
        }
    }

    /// Goal: `string_prefix_len` finds exactly the encoded first string of a record (short and
    /// long length varints), and nothing in bytes that do not start with one.
    #[test]
    fn string_prefix_len_covers_the_first_string() {
        for id in ["t", "t-42", &"x".repeat(64), &"y".repeat(300)] {
            let record = super::encode(&(id, 7u64, "tail"));
            let len = super::string_prefix_len(&record).unwrap();
            assert_eq!(len, super::encode(&id).len());
            assert_eq!(super::decode_prefix::<String>(&record[..len]).unwrap(), id);
            assert_eq!(super::first_string(&record), Some((id.as_bytes(), len)));
        }
        assert_eq!(super::string_prefix_len(&[]), None);
        assert_eq!(super::string_prefix_len(&[super::FORMAT_VERSION, 5, b'a']), None, "runs past the end");
        assert_eq!(super::string_prefix_len(&[super::FORMAT_VERSION.wrapping_add(1), 0]), None);
    }

    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::Deserialize;
    use serde::Serialize;

    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Amounts {
        #[serde(with = "decimal")]
        a: Decimal,
        #[serde(with = "decimal::option")]
        b: Option<Decimal>,
    }

    #[test]
    fn decimals_round_trip_exactly_with_scale() {
        for text in ["0", "10.50", "-3.125", "79228162514264337593543950335", "0.0000000000000000000000000001"] {
            let value = Amounts { a: Decimal::from_str(text).unwrap(), b: Some(Decimal::from_str(text).unwrap()) };
            let back: Amounts = decode(&encode(&value)).unwrap();
            assert_eq!(back, value);
            assert_eq!(back.a.to_string(), text, "scale is kept");
        }
        let none = Amounts { a: Decimal::ONE, b: None };
        assert_eq!(decode::<Amounts>(&encode(&none)).unwrap(), none);
        let mut bad = Decimal::ONE.serialize();
        bad[2] = 29;
        assert!(decimal::from_bytes(bad).is_none());
    }
}
