//! Client-chosen identifiers. A transfer id is also its idempotency key.

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::hash::Hasher;

use arrayvec::ArrayString;
use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use crate::limits::ID_BYTES_MAX;

/// Why an id string is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong,
    InvalidCharacter,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => write!(f, "must not be empty"),
            IdError::TooLong => write!(f, "must be at most {ID_BYTES_MAX} bytes"),
            IdError::InvalidCharacter => {
                write!(f, "may only contain ASCII letters, digits and . _ : -")
            }
        }
    }
}

/// Checks an id: 1..=64 bytes of `[A-Za-z0-9._:-]`. The small alphabet keeps ids safe in keys,
/// logs, CSV reports and URLs without escaping.
pub fn check_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > ID_BYTES_MAX {
        return Err(IdError::TooLong);
    }
    let valid = id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !valid {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

/// An id's text: in place up to [`ID_BYTES_MAX`] bytes, which holds every valid id, so that
/// cloning or comparing one touches no heap; on the heap beyond, for an over-long id held only
/// until it is rejected with its own text. Ids of 25 to 64 bytes (a UUID is 36) used to be a
/// heap allocation for each clone, and each comparison a cache miss in the heap: at a million
/// accounts that was a fifth of the apply (malloc 13 %, memcmp 9 %).
#[derive(Clone)]
enum IdText {
    Inline(ArrayString<ID_BYTES_MAX>),
    Heap(Box<str>),
}

impl IdText {
    fn new(text: &str) -> IdText {
        match ArrayString::from(text) {
            Ok(inline) => IdText::Inline(inline),
            Err(_) => IdText::Heap(text.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            IdText::Inline(inline) => inline.as_str(),
            IdText::Heap(heap) => heap,
        }
    }
}

/// Serde visitor for an id's text (borrowed or not, as the format gives it).
struct IdVisitor;

impl serde::de::Visitor<'_> for IdVisitor {
    type Value = IdText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IdText, E> {
        Ok(IdText::new(text))
    }
}

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        /// Compared, ordered, hashed, shown and encoded as its text (encoded as a string, as
        /// before the text moved in place).
        #[derive(Clone)]
        pub struct $name(IdText);

        impl $name {
            pub fn new(id: impl AsRef<str>) -> Self {
                $name(IdText::new(id.as_ref()))
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
            pub fn check(&self) -> Result<(), IdError> {
                check_id(self.as_str())
            }
            pub fn is_empty(&self) -> bool {
                self.as_str().is_empty()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new("")
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.as_str()).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor).map($name)
            }
        }
    };
}

id_type!(AccountId, "Client-chosen account id.");
id_type!(TransferId, "Client-chosen transfer id, also the idempotency key.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert_eq!(check_id("acc-1:eur_main.2"), Ok(()));
        assert_eq!(check_id(""), Err(IdError::Empty));
        assert_eq!(check_id(&"a".repeat(64)), Ok(()));
        assert_eq!(check_id(&"a".repeat(65)), Err(IdError::TooLong));
        assert_eq!(check_id("a b"), Err(IdError::InvalidCharacter));
        assert_eq!(check_id("é"), Err(IdError::InvalidCharacter));
        assert_eq!(check_id("a/b"), Err(IdError::InvalidCharacter));
    }

    /// Goal: an id holds any text, valid or not, and behaves as that text: equal, ordered,
    /// hashed and encoded alike whether it is in place (up to 64 bytes) or on the heap.
    #[test]
    fn ids_behave_as_their_text_at_any_length() {
        use std::hash::BuildHasher;
        let hasher = std::hash::RandomState::new();
        for text in ["", "a", &"b".repeat(24), &"c".repeat(25), &"d".repeat(64), &"e".repeat(65), &"é".repeat(40)] {
            let id = AccountId::new(text);
            assert_eq!(id.as_str(), text);
            assert_eq!(id.to_string(), text);
            assert_eq!(format!("{id:?}"), format!("AccountId({text:?})"));
            assert_eq!(hasher.hash_one(&id), hasher.hash_one(text));
            let encoded = crate::codec::encode(&id);
            assert_eq!(encoded, crate::codec::encode(&text.to_string()), "encoded as a string");
            assert_eq!(crate::codec::decode::<AccountId>(&encoded).unwrap(), id);
            assert_eq!(id.clone(), id);
        }
        let long = "a".repeat(70);
        let mut ids: Vec<TransferId> = ["b", "a", &long, "ab"].map(TransferId::new).to_vec();
        ids.sort();
        let texts: Vec<&str> = ids.iter().map(TransferId::as_str).collect();
        let mut sorted = vec!["b", "a", &long, "ab"];
        sorted.sort();
        assert_eq!(texts, sorted);
        assert_eq!(AccountId::default().as_str(), "");
        assert!(std::mem::size_of::<AccountId>() <= 72, "{}", std::mem::size_of::<AccountId>());
    }
}
