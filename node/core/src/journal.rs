//! The journal: the replicated, hash-chained book of record.
//!
//! Every applied command appends one record with a contiguous `seq`. A record's hash is
//! `SHA-256(prev_hash || canonical body)`, where the body is every field but `hash` itself,
//! encoded with [`crate::codec`]. The first record's `prev_hash` is 32 zero bytes. Records are
//! never purged with the Raft log: the journal is what auditors verify, what the DR site ships,
//! and what reconciliation reports are cut from.

use serde::Deserialize;
use serde::Serialize;
use sha2::Digest;
use sha2::Sha256;

use crate::codec;
use crate::command::Command;
use crate::command::Outcome;

/// A SHA-256 digest.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Hash> {
        let bytes = hex::decode(s).ok()?;
        Some(Hash(bytes.try_into().ok()?))
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Where a record was first applied: the site, its epoch and the Raft log index there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub site: String,
    pub epoch: u64,
    pub raft_index: u64,
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub seq: u64,
    pub ledger_time_ms: u64,
    pub origin: Origin,
    pub caller: String,
    pub command: Command,
    pub outcome: Outcome,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// The fields covered by the hash, borrowed for encoding.
#[derive(Serialize)]
struct RecordBody<'a> {
    seq: u64,
    ledger_time_ms: u64,
    origin: &'a Origin,
    caller: &'a str,
    command: &'a Command,
    outcome: &'a Outcome,
    prev_hash: &'a Hash,
}

impl JournalRecord {
    /// Builds a record and seals it with its hash.
    pub fn seal(
        seq: u64,
        ledger_time_ms: u64,
        origin: Origin,
        caller: String,
        command: Command,
        outcome: Outcome,
        prev_hash: Hash,
    ) -> JournalRecord {
        assert!(seq >= 1, "journal seq starts at 1");
        assert!(!outcome.is_refused(), "refused commands are not journaled");
        let mut record =
            JournalRecord { seq, ledger_time_ms, origin, caller, command, outcome, prev_hash, hash: Hash::GENESIS };
        record.hash = record.compute_hash();
        record
    }

    /// Recomputes the hash from the other fields.
    pub fn compute_hash(&self) -> Hash {
        let body = RecordBody {
            seq: self.seq,
            ledger_time_ms: self.ledger_time_ms,
            origin: &self.origin,
            caller: &self.caller,
            command: &self.command,
            outcome: &self.outcome,
            prev_hash: &self.prev_hash,
        };
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.0);
        codec::encode_to(&body, &mut |chunk| hasher.update(chunk));
        Hash(hasher.finalize().into())
    }

    pub fn head(&self) -> JournalHead {
        JournalHead { seq: self.seq, hash: self.hash, ledger_time_ms: self.ledger_time_ms }
    }
}

/// The last record of a journal: what replicas compare to prove they hold the same book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHead {
    /// 0 for an empty journal.
    pub seq: u64,
    /// `Hash::GENESIS` for an empty journal.
    pub hash: Hash,
    pub ledger_time_ms: u64,
}

/// What is wrong with a record in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// `seq` is not the previous seq + 1.
    Gap { expected_seq: u64, found_seq: u64 },
    /// `prev_hash` is not the previous record's hash.
    BrokenLink { seq: u64 },
    /// The stored hash does not match the record's content: the record was altered.
    Tampered { seq: u64, stored: Hash, computed: Hash },
    /// Ledger time went backwards.
    TimeWentBack { seq: u64 },
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainError::Gap { expected_seq, found_seq } => {
                write!(f, "gap: expected seq {expected_seq}, found {found_seq}")
            }
            ChainError::BrokenLink { seq } => {
                write!(f, "seq {seq}: prev_hash does not match the previous record's hash")
            }
            ChainError::Tampered { seq, stored, computed } => {
                write!(f, "seq {seq}: content does not match its hash (stored {stored}, computed {computed})")
            }
            ChainError::TimeWentBack { seq } => write!(f, "seq {seq}: ledger time went backwards"),
        }
    }
}

impl std::error::Error for ChainError {}

/// Checks that `record` correctly follows `prev` (the head before it).
pub fn check_link(prev: &JournalHead, record: &JournalRecord) -> Result<(), ChainError> {
    if record.seq != prev.seq + 1 {
        return Err(ChainError::Gap { expected_seq: prev.seq + 1, found_seq: record.seq });
    }
    let computed = record.compute_hash();
    if computed != record.hash {
        return Err(ChainError::Tampered { seq: record.seq, stored: record.hash, computed });
    }
    if record.prev_hash != prev.hash {
        return Err(ChainError::BrokenLink { seq: record.seq });
    }
    if record.ledger_time_ms < prev.ledger_time_ms {
        return Err(ChainError::TimeWentBack { seq: record.seq });
    }
    Ok(())
}

/// Verifies a whole chain from `start` (the head before the first record; default for
/// genesis). Returns the final head, or the first bad record.
pub fn verify_chain<'a>(
    start: JournalHead,
    records: impl IntoIterator<Item = &'a JournalRecord>,
) -> Result<JournalHead, ChainError> {
    let mut head = start;
    for record in records {
        check_link(&head, record)?;
        head = record.head();
    }
    Ok(head)
}

/// What a site log entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteEvent {
    Site(crate::site::SiteCommand),
    Admin(crate::command::AdminEvent),
}

/// One entry of a site's own log: every site operation and admin event performed on this site,
/// hash-chained like the journal. Unlike the journal it is not shipped: it is this site's
/// record of what was done to it (a standby's operations cannot be journal records, or its
/// journal would stop being a prefix of the active site's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteLogEntry {
    pub seq: u64,
    pub ledger_time_ms: u64,
    pub caller: String,
    pub event: SiteEvent,
    /// The site after the event.
    pub site: crate::site::SiteState,
    /// Journal seq of the record of the same event, when it was also journaled (0 otherwise).
    pub journal_seq: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
}

#[derive(Serialize)]
struct SiteLogBody<'a> {
    seq: u64,
    ledger_time_ms: u64,
    caller: &'a str,
    event: &'a SiteEvent,
    site: &'a crate::site::SiteState,
    journal_seq: u64,
    prev_hash: &'a Hash,
}

impl SiteLogEntry {
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        seq: u64,
        ledger_time_ms: u64,
        caller: String,
        event: SiteEvent,
        site: crate::site::SiteState,
        journal_seq: u64,
        prev_hash: Hash,
    ) -> SiteLogEntry {
        assert!(seq >= 1);
        let mut entry =
            SiteLogEntry { seq, ledger_time_ms, caller, event, site, journal_seq, prev_hash, hash: Hash::GENESIS };
        entry.hash = entry.compute_hash();
        entry
    }

    pub fn compute_hash(&self) -> Hash {
        let body = SiteLogBody {
            seq: self.seq,
            ledger_time_ms: self.ledger_time_ms,
            caller: &self.caller,
            event: &self.event,
            site: &self.site,
            journal_seq: self.journal_seq,
            prev_hash: &self.prev_hash,
        };
        let mut hasher = Sha256::new();
        hasher.update(b"site-log");
        hasher.update(self.prev_hash.0);
        codec::encode_to(&body, &mut |chunk| hasher.update(chunk));
        Hash(hasher.finalize().into())
    }

    pub fn head(&self) -> JournalHead {
        JournalHead { seq: self.seq, hash: self.hash, ledger_time_ms: self.ledger_time_ms }
    }
}
