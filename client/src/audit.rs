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

/// An auditor's independent replay of a journal: balances and transfer states rebuilt from
/// each record's command and recorded outcome alone, without the ledger's rules. If the nodes'
/// balances equal this replay, the state is what the journal says it is.
pub mod replay {
    use std::collections::BTreeMap;

    use ledger_core::command::Command;
    use ledger_core::command::Outcome;
    use ledger_core::journal::JournalRecord;
    use ledger_core::transfer::TransferKind;
    use rust_decimal::Decimal;

    /// The four balance columns of one account.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Columns {
        pub debits_posted: Decimal,
        pub debits_pending: Decimal,
        pub credits_posted: Decimal,
        pub credits_pending: Decimal,
    }

    #[derive(Clone, Debug)]
    struct Reservation {
        debit: String,
        credit: String,
        amount: Decimal,
    }

    /// What the replay found wrong with the journal itself.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum ReplayError {
        #[error("seq {seq}: {what}")]
        Inconsistent { seq: u64, what: String },
    }

    #[derive(Debug, Default)]
    pub struct Replay {
        pub accounts: BTreeMap<String, Columns>,
        pub currencies: BTreeMap<String, String>,
        /// Every transfer id applied, with the seq that applied it.
        pub applied: BTreeMap<String, u64>,
        pending: BTreeMap<String, Reservation>,
        pub records: u64,
    }

    impl Replay {
        fn columns(&mut self, seq: u64, id: &str) -> Result<&mut Columns, ReplayError> {
            self.accounts
                .get_mut(id)
                .ok_or_else(|| ReplayError::Inconsistent { seq, what: format!("transfer on unknown account {id}") })
        }

        fn release(&mut self, seq: u64, r: &Reservation) -> Result<(), ReplayError> {
            self.columns(seq, &r.debit)?.debits_pending -= r.amount;
            self.columns(seq, &r.credit)?.credits_pending -= r.amount;
            Ok(())
        }

        fn mark_applied(&mut self, seq: u64, id: &str) -> Result<(), ReplayError> {
            if let Some(first) = self.applied.insert(id.to_string(), seq) {
                return Err(ReplayError::Inconsistent {
                    seq,
                    what: format!("transfer {id} applied twice (first at {first})"),
                });
            }
            Ok(())
        }

        /// Folds one record (records must come in seq order).
        pub fn apply(&mut self, record: &JournalRecord) -> Result<(), ReplayError> {
            let seq = record.seq;
            self.records += 1;
            let items = match &record.outcome {
                Outcome::Items(items) => items.as_slice(),
                _ => &[],
            };
            let fresh_ok = |i: usize| items.get(i).is_some_and(|r| r.code.is_ok() && !r.replayed);
            match &record.command {
                Command::CreateAccounts(accounts) => {
                    for (i, a) in accounts.iter().enumerate() {
                        if fresh_ok(i) {
                            self.accounts.insert(a.id.0.clone(), Columns::default());
                            self.currencies.insert(a.id.0.clone(), a.currency.clone());
                        }
                    }
                }
                Command::CreateTransfers { transfers, .. } => {
                    for (i, t) in transfers.iter().enumerate() {
                        if !fresh_ok(i) {
                            continue;
                        }
                        self.mark_applied(seq, &t.id.0)?;
                        match &t.kind {
                            TransferKind::Posted => {
                                self.columns(seq, &t.debit_account_id.0)?.debits_posted += t.amount;
                                self.columns(seq, &t.credit_account_id.0)?.credits_posted += t.amount;
                            }
                            TransferKind::Pending { .. } => {
                                self.columns(seq, &t.debit_account_id.0)?.debits_pending += t.amount;
                                self.columns(seq, &t.credit_account_id.0)?.credits_pending += t.amount;
                                let r = Reservation {
                                    debit: t.debit_account_id.0.clone(),
                                    credit: t.credit_account_id.0.clone(),
                                    amount: t.amount,
                                };
                                self.pending.insert(t.id.0.clone(), r);
                            }
                            TransferKind::PostPending { pending_id } | TransferKind::VoidPending { pending_id } => {
                                let r =
                                    self.pending.remove(&pending_id.0).ok_or_else(|| ReplayError::Inconsistent {
                                        seq,
                                        what: format!("{} resolves {} which is not pending", t.id, pending_id),
                                    })?;
                                self.release(seq, &r)?;
                                if matches!(t.kind, TransferKind::PostPending { .. }) {
                                    let amount = if t.amount.is_zero() { r.amount } else { t.amount };
                                    self.columns(seq, &r.debit)?.debits_posted += amount;
                                    self.columns(seq, &r.credit)?.credits_posted += amount;
                                }
                            }
                        }
                    }
                }
                Command::ExpirePending => {
                    if let Outcome::Expired(ids) = &record.outcome {
                        for id in ids {
                            let r = self.pending.remove(&id.0).ok_or_else(|| ReplayError::Inconsistent {
                                seq,
                                what: format!("expiry of {id} which is not pending"),
                            })?;
                            self.release(seq, &r)?;
                        }
                    }
                }
                Command::UpdateAccounts(_) | Command::Site(_) | Command::Admin(_) => {}
            }
            Ok(())
        }

        /// Per currency: (debits, credits) summed over posted and pending columns separately.
        pub fn totals(&self) -> BTreeMap<String, (Decimal, Decimal, Decimal, Decimal)> {
            let mut totals: BTreeMap<String, (Decimal, Decimal, Decimal, Decimal)> = BTreeMap::new();
            for (id, c) in &self.accounts {
                let currency = self.currencies.get(id).cloned().unwrap_or_default();
                let t = totals.entry(currency).or_default();
                t.0 += c.debits_posted;
                t.1 += c.credits_posted;
                t.2 += c.debits_pending;
                t.3 += c.credits_pending;
            }
            totals
        }
    }
}
