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
                            self.accounts.insert(a.id.as_str().to_string(), Columns::default());
                            self.currencies.insert(a.id.as_str().to_string(), a.currency.clone());
                        }
                    }
                }
                Command::CreateTransfers { transfers, .. } => {
                    for (i, t) in transfers.iter().enumerate() {
                        if !fresh_ok(i) {
                            continue;
                        }
                        self.mark_applied(seq, t.id.as_str())?;
                        match &t.kind {
                            TransferKind::Posted => {
                                self.columns(seq, t.debit_account_id.as_str())?.debits_posted += t.amount;
                                self.columns(seq, t.credit_account_id.as_str())?.credits_posted += t.amount;
                            }
                            TransferKind::Pending { .. } => {
                                self.columns(seq, t.debit_account_id.as_str())?.debits_pending += t.amount;
                                self.columns(seq, t.credit_account_id.as_str())?.credits_pending += t.amount;
                                let r = Reservation {
                                    debit: t.debit_account_id.as_str().to_string(),
                                    credit: t.credit_account_id.as_str().to_string(),
                                    amount: t.amount,
                                };
                                self.pending.insert(t.id.as_str().to_string(), r);
                            }
                            TransferKind::PostPending { pending_id } | TransferKind::VoidPending { pending_id } => {
                                let r = self.pending.remove(pending_id.as_str()).ok_or_else(|| {
                                    ReplayError::Inconsistent {
                                        seq,
                                        what: format!("{} resolves {} which is not pending", t.id, pending_id),
                                    }
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
                            let r = self.pending.remove(id.as_str()).ok_or_else(|| ReplayError::Inconsistent {
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

/// `ledger journal verify`: everything an auditor checks about a journal, from a node or an
/// exported file.
pub mod verify {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use ledger_core::journal::JournalHead;
    use ledger_proto::v1 as pb;
    use serde::Serialize;

    use super::ChainVerifier;
    use super::decode_record;
    use super::replay::Replay;
    use crate::ClientConfig;
    use crate::LedgerClient;

    /// The first record that does not verify.
    #[derive(Clone, Debug, Serialize)]
    pub struct BadRecord {
        /// 0-based position in the stream or file (line number - 1).
        pub position: u64,
        /// The seq the record claims, when it could be read.
        pub seq: Option<u64>,
        pub reason: String,
    }

    /// How another node's head relates to the verified chain.
    #[derive(Clone, Debug, Serialize)]
    pub struct NodeHead {
        pub endpoint: String,
        pub site: String,
        pub role: String,
        pub seq: u64,
        pub hash: String,
        /// "same head", "prefix (N behind)", "ahead (N records not verified)", "DIVERGES at
        /// seq S", or "unreachable: ...".
        pub verdict: String,
        pub agrees: bool,
    }

    #[derive(Clone, Debug, Default, Serialize)]
    pub struct VerifyReport {
        pub records: u64,
        pub head_seq: u64,
        pub head_hash: String,
        pub first_bad: Option<BadRecord>,
        /// Per currency: debits and credits summed from the replay (posted, pending).
        pub conservation: Vec<String>,
        pub conserved: bool,
        pub accounts_replayed: usize,
        /// Accounts whose balances on the node differ from the replay.
        pub balance_mismatches: Vec<String>,
        pub balances_checked: usize,
        pub nodes: Vec<NodeHead>,
    }

    impl VerifyReport {
        pub fn ok(&self) -> bool {
            self.first_bad.is_none()
                && self.conserved
                && self.balance_mismatches.is_empty()
                && self.nodes.iter().all(|n| n.agrees)
        }
    }

    /// Verifies a sequence of records (from a stream or a file) from genesis.
    #[derive(Default)]
    pub struct Verifier {
        chain: ChainVerifier,
        replay: Replay,
        hashes: Vec<[u8; 32]>,
        pub report: VerifyReport,
    }

    impl Verifier {
        /// Checks one more record; returns false once a bad record was found.
        pub fn push(&mut self, position: u64, record: &pb::JournalRecord) -> bool {
            if self.report.first_bad.is_some() {
                return false;
            }
            let bad = |reason: String| BadRecord { position, seq: Some(record.seq), reason };
            let decoded = match decode_record(position, record) {
                Ok(decoded) => decoded,
                Err(e) => {
                    self.report.first_bad = Some(bad(e.to_string()));
                    return false;
                }
            };
            if let Err(e) = self.chain.push(&decoded) {
                self.report.first_bad = Some(bad(e.to_string()));
                return false;
            }
            if let Err(e) = self.replay.apply(&decoded) {
                self.report.first_bad = Some(bad(format!("replay: {e}")));
                return false;
            }
            self.hashes.push(decoded.hash.0);
            true
        }

        pub fn head(&self) -> JournalHead {
            self.chain.head
        }

        /// Closes the chain check: conservation from the replay.
        pub fn finish(&mut self) {
            let head = self.chain.head;
            self.report.records = self.chain.records;
            self.report.head_seq = head.seq;
            self.report.head_hash = head.hash.to_hex();
            self.report.accounts_replayed = self.replay.accounts.len();
            self.report.conserved = true;
            self.report.conservation.clear();
            for (currency, (dp, cp, dq, cq)) in self.replay.totals() {
                let ok = dp == cp && dq == cq;
                self.report.conserved &= ok;
                self.report.conservation.push(format!(
                    "{currency}: posted debits {dp} credits {cp}; pending debits {dq} credits {cq}{}",
                    if ok { "" } else { "  NOT CONSERVED" }
                ));
            }
        }

        /// Compares the replay with a node's balances (linearizable reads of every account).
        pub async fn check_balances(&mut self, node: &LedgerClient) -> Result<bool, crate::ClientError> {
            let ids: Vec<String> = self.replay.accounts.keys().cloned().collect();
            self.report.balance_mismatches.clear();
            self.report.balances_checked = 0;
            for chunk in ids.chunks(500) {
                let response = node.lookup_accounts(chunk.to_vec(), pb::ReadConsistency::Linearizable).await?;
                if response.read.as_ref().is_some_and(|r| r.journal_seq > self.chain.head.seq) {
                    return Ok(false); // the node moved on: read the rest of the journal first
                }
                for a in &response.accounts {
                    let want = &self.replay.accounts[&a.id];
                    let got = [&a.debits_posted, &a.debits_pending, &a.credits_posted, &a.credits_pending];
                    let wanted = [want.debits_posted, want.debits_pending, want.credits_posted, want.credits_pending];
                    let same = got.iter().zip(wanted).all(|(g, w)| g.parse::<rust_decimal::Decimal>().ok() == Some(w));
                    self.report.balances_checked += 1;
                    if !same {
                        self.report.balance_mismatches.push(format!("{}: node {got:?}, journal {wanted:?}", a.id));
                    }
                }
                for id in &response.not_found {
                    self.report.balance_mismatches.push(format!("{id}: in the journal, not on the node"));
                }
            }
            Ok(true)
        }

        /// Asks each endpoint for its head and places it against the verified chain.
        pub async fn compare_heads(&mut self, config: &ClientConfig, endpoints: &[String]) {
            let mut nodes = Vec::new();
            for endpoint in endpoints {
                let client =
                    match LedgerClient::new(ClientConfig { endpoints: vec![endpoint.clone()], ..config.clone() }) {
                        Ok(client) => client,
                        Err(e) => {
                            nodes.push(unreachable(endpoint, e.to_string()));
                            continue;
                        }
                    };
                let status = match client.status_once(Duration::from_secs(3)).await {
                    Ok(status) => status,
                    Err(e) => {
                        nodes.push(unreachable(endpoint, e.to_string()));
                        continue;
                    }
                };
                let head = status.journal_head.clone().unwrap_or_default();
                let site = status.site.clone().unwrap_or_default();
                let verified = self.hashes.len() as u64;
                let (verdict, agrees) = if head.seq == 0 {
                    ("empty journal".to_string(), true)
                } else if head.seq > verified {
                    (format!("ahead ({} records not verified)", head.seq - verified), true)
                } else if self.hashes[head.seq as usize - 1].as_slice() != head.hash.as_slice() {
                    (format!("DIVERGES at or before seq {}", head.seq), false)
                } else if head.seq == verified {
                    ("same head".to_string(), true)
                } else {
                    (format!("prefix ({} behind)", verified - head.seq), true)
                };
                nodes.push(NodeHead {
                    endpoint: endpoint.clone(),
                    site: site.name,
                    role: site.role,
                    seq: head.seq,
                    hash: hex::encode(&head.hash),
                    verdict,
                    agrees,
                });
            }
            self.report.nodes = nodes;
        }
    }

    fn unreachable(endpoint: &str, error: String) -> NodeHead {
        NodeHead {
            endpoint: endpoint.into(),
            site: String::new(),
            role: String::new(),
            seq: 0,
            hash: String::new(),
            verdict: format!("unreachable: {error}"),
            agrees: true,
        }
    }

    /// Reads exported JSON Lines back as records (the canonical bytes carry everything).
    pub fn parse_export_line(line: &str) -> Result<pb::JournalRecord, String> {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let hex_field =
            |name: &str| hex::decode(value[name].as_str().unwrap_or("")).map_err(|e| format!("{name}: {e}"));
        Ok(pb::JournalRecord {
            seq: value["seq"].as_u64().unwrap_or(0),
            ledger_time_ms: value["ledger_time_ms"].as_u64().unwrap_or(0),
            origin_site: value["origin_site"].as_str().unwrap_or("").into(),
            origin_epoch: value["origin_epoch"].as_u64().unwrap_or(0),
            origin_raft_index: value["origin_raft_index"].as_u64().unwrap_or(0),
            caller: value["caller"].as_str().unwrap_or("").into(),
            command_type: value["command_type"].as_str().unwrap_or("").into(),
            prev_hash: hex_field("prev_hash")?,
            hash: hex_field("hash")?,
            canonical: hex_field("canonical")?,
        })
    }

    /// Balances by account from the replay, for reports.
    pub fn replayed_balances(verifier: &Verifier) -> BTreeMap<String, [String; 4]> {
        verifier
            .replay
            .accounts
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    [
                        c.debits_posted.to_string(),
                        c.debits_pending.to_string(),
                        c.credits_posted.to_string(),
                        c.credits_pending.to_string(),
                    ],
                )
            })
            .collect()
    }
}
