//! Key layout of the state tree. One prefix byte per kind; multi-part keys use big-endian
//! integers so that byte order is numeric order, and `0x00` separators, which no id contains
//! (ids are `[A-Za-z0-9._:-]`).

use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::money::Currency;

pub const ACCOUNT: u8 = b'a';
pub const TOTALS: u8 = b'c';
pub const HISTORY: u8 = b'h';
pub const JOURNAL: u8 = b'j';
pub const TRANSFER: u8 = b't';
pub const EXPIRY: u8 = b'x';
pub const SITE_LOG: u8 = b's';

/// Prefixes of the ledger state that a resync discards (the site log and meta stay).
pub const LEDGER_PREFIXES: &[u8] = &[ACCOUNT, TOTALS, HISTORY, JOURNAL, TRANSFER, EXPIRY];

/// The ledger's meta (journal head, site state).
pub const META_LEDGER: &[u8] = b"m:ledger";
/// The last applied Raft log id.
pub const META_APPLIED: &[u8] = b"m:applied";
/// The last applied membership.
pub const META_MEMBERSHIP: &[u8] = b"m:membership";

fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

pub fn account(id: &AccountId) -> Vec<u8> {
    prefixed(ACCOUNT, id.as_str().as_bytes())
}

pub fn transfer(id: &TransferId) -> Vec<u8> {
    prefixed(TRANSFER, id.as_str().as_bytes())
}

pub fn totals(currency: Currency) -> Vec<u8> {
    prefixed(TOTALS, currency.code().as_bytes())
}

pub fn journal(seq: u64) -> Vec<u8> {
    prefixed(JOURNAL, &seq.to_be_bytes())
}

pub fn site_log(seq: u64) -> Vec<u8> {
    prefixed(SITE_LOG, &seq.to_be_bytes())
}

pub fn expiry(expires_at_ms: u64, id: &TransferId) -> Vec<u8> {
    let mut key = prefixed(EXPIRY, &expires_at_ms.to_be_bytes());
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// Splits an expiry key back into (time, transfer id).
pub fn parse_expiry(key: &[u8]) -> Option<(u64, TransferId)> {
    if key.len() < 9 || key[0] != EXPIRY {
        return None;
    }
    let at = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let id = std::str::from_utf8(&key[9..]).ok()?;
    Some((at, TransferId::new(id)))
}

pub fn history_prefix(account: &AccountId) -> Vec<u8> {
    let mut key = prefixed(HISTORY, account.as_str().as_bytes());
    key.push(0);
    key
}

/// The key of the history page whose first row is `index`.
pub fn history(account: &AccountId, index: u64) -> Vec<u8> {
    let mut key = history_prefix(account);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Raft log key: the index, big-endian.
pub fn log_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub fn parse_log_index(key: &[u8]) -> u64 {
    u64::from_be_bytes(key.try_into().expect("raft log keys are 8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_order() {
        let id = TransferId::new("t-1");
        let key = expiry(42, &id);
        assert_eq!(parse_expiry(&key), Some((42, id.clone())));
        assert!(expiry(41, &TransferId::new("zzz")) < expiry(42, &TransferId::new("a")));
        assert!(journal(255) < journal(256));
        let a = AccountId::new("a");
        let ab = AccountId::new("a-b");
        // Rows of `a` sort before rows of `a-b`, and stay contiguous.
        assert!(history(&a, u64::MAX) < history(&ab, 0));
        assert!(history(&a, 1).starts_with(&history_prefix(&a)));
        assert!(!history(&ab, 1).starts_with(&history_prefix(&a)));
        assert_eq!(parse_log_index(&log_index(7)), 7);
    }
}
