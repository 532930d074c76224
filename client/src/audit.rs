//! Auditor-side journal checks, independent of the node: decode each record from its
//! canonical bytes, recompute the hash chain, and check that the readable fields agree with
//! the canonical ones.

use ledger_core::codec;
use ledger_core::journal::ChainError;
use ledger_core::journal::JournalHead;
use ledger_core::journal::JournalRecord;
use ledger_core::journal::check_link;
use ledger_proto::v1 as pb;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("record at position {position}: undecodable canonical bytes: {reason}")]
    Undecodable { position: u64, reason: String },
    #[error("seq {seq}: readable field {field} disagrees with the canonical record")]
    FieldMismatch { seq: u64, field: &'static str },
    #[error("{0}")]
    Chain(#[from] ChainError),
}

/// Decodes a streamed record and checks its readable fields against its canonical bytes.
pub fn decode_record(position: u64, record: &pb::JournalRecord) -> Result<JournalRecord, AuditError> {
    let decoded: JournalRecord =
        codec::decode(&record.canonical).map_err(|e| AuditError::Undecodable { position, reason: e.to_string() })?;
    let seq = decoded.seq;
    let checks: [(&'static str, bool); 5] = [
        ("seq", record.seq == decoded.seq),
        ("ledger_time_ms", record.ledger_time_ms == decoded.ledger_time_ms),
        ("hash", record.hash == decoded.hash.0),
        ("prev_hash", record.prev_hash == decoded.prev_hash.0),
        ("origin_site", record.origin_site == decoded.origin.site),
    ];
    for (field, ok) in checks {
        if !ok {
            return Err(AuditError::FieldMismatch { seq, field });
        }
    }
    Ok(decoded)
}

/// Follows a chain record by record.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    pub head: JournalHead,
    pub records: u64,
}

impl ChainVerifier {
    /// Starts after `head` (genesis by default).
    pub fn after(head: JournalHead) -> ChainVerifier {
        ChainVerifier { head, records: 0 }
    }

    pub fn push(&mut self, record: &JournalRecord) -> Result<(), ChainError> {
        check_link(&self.head, record)?;
        self.head = record.head();
        self.records += 1;
        Ok(())
    }
}
