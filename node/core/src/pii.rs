//! Personal data as the ledger sees it: sealed (encrypted) bytes it never opens.
//!
//! The node seals holder name, national id and card number with AES-256-GCM before a command
//! is proposed, so plaintext never reaches the Raft log, the state, the journal or a snapshot.
//! This module only carries the ciphertext and offers the masking rules used for display.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// A personal-data value encrypted by the node's security layer.
///
/// The nonce is derived from the key and the plaintext (a synthetic IV), so sealing the same
/// value twice gives the same bytes and an idempotent retry of `CreateAccounts` matches.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Which data key sealed it; old keys stay readable after a rotation.
    pub key_id: u32,
    pub nonce: [u8; 12],
    /// Ciphertext with the 16-byte GCM tag appended.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    // Ciphertext is not secret, but there is nothing useful to print either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(key {}, {} bytes)", self.key_id, self.ciphertext.len())
    }
}

/// The three personal-data fields an account may carry, each optional. Boxed: an account
/// without them (most ledger-internal accounts) carries three null pointers instead of 120
/// bytes, at a million accounts in memory; the encoding is the same as unboxed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPii {
    pub holder_name: Option<Box<Sealed>>,
    pub national_id: Option<Box<Sealed>>,
    pub card_number: Option<Box<Sealed>>,
}

/// Masks a card number as `6222 **** **** 0123`: the first four and last four digits stay.
pub fn mask_card_number(card: &str) -> String {
    let digits: Vec<char> = card.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 8 {
        return "*".repeat(digits.len().max(4));
    }
    let mut out = String::new();
    for (i, d) in digits.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        if i < 4 || i >= digits.len() - 4 {
            out.push(*d);
        } else {
            out.push('*');
        }
    }
    out
}

/// Masks a national id, keeping only its last three characters.
pub fn mask_national_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let keep = chars.len().min(3);
    let hidden = chars.len() - keep;
    let mut out = "*".repeat(hidden.max(3));
    out.extend(&chars[chars.len() - keep..]);
    out
}

/// Masks a name word by word, keeping each word's first letter: `J*** D**`.
pub fn mask_name(name: &str) -> String {
    name.split_whitespace()
        .map(|word| {
            let mut chars = word.chars();
            let first = chars.next().map(String::from).unwrap_or_default();
            first + &"*".repeat(chars.count().max(1))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_card_number("6222 1234 5678 0123"), "6222 **** **** 0123");
        assert_eq!(mask_card_number("6222123456780123"), "6222 **** **** 0123");
        assert_eq!(mask_card_number("123"), "****");
        assert_eq!(mask_national_id("AB123456789"), "********789");
        assert_eq!(mask_national_id("12"), "***12");
        assert_eq!(mask_name("Jane Doe"), "J*** D**");
        assert_eq!(mask_name("X"), "X*");
    }
}
