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

/// Encoded length without keeping the bytes.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    1 + postcard::experimental::serialized_size(value).expect("postcard sizing cannot fail")
}
