//! Client-chosen identifiers. A transfer id is also its idempotency key.

use std::fmt;

use compact_str::CompactString;
use serde::Deserialize;
use serde::Serialize;

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

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub CompactString);

        impl $name {
            pub fn new(id: impl Into<CompactString>) -> Self {
                $name(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn check(&self) -> Result<(), IdError> {
                check_id(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(CompactString::new(s))
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
}
