//! Reconciliation after a failover: comparing two sites' journals. The branch point (the
//! last record both hold), the records of one site the other lacks, and the reconciliation
//! report of a failback (one row per item of each record past the branch point, with its
//! status) written as JSON and CSV.
//!
//! Pure over journal records already read: it must not talk to nodes (`dr.rs` reads the
//! journals and drives the sites) and must not import `dr.rs`, which imports it.

use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;

use ledger_core::command::Command;
use ledger_core::command::Outcome;
use ledger_core::journal::JournalRecord;
use ledger_core::transfer::TransferKind;
use serde::Serialize;

/// One row of a reconciliation report: an item of a record lost in the failover.
#[derive(Clone, Debug, Serialize)]
pub struct ReconciliationRow {
    pub seq: u64,
    pub ledger_time_ms: u64,
    pub origin_site: String,
    pub origin_epoch: u64,
    pub caller: String,
    pub command: String,
    /// Transfer or account id ("" for records without items).
    pub id: String,
    pub kind: String,
    pub debit_account_id: String,
    pub credit_account_id: String,
    pub amount: String,
    pub currency: String,
    pub pending_id: String,
    pub result: String,
    /// "lost": applied on the old site only, to reconcile; "present_on_active_site": the same
    /// transfer was resubmitted and applied on the active site (nothing to do);
    /// "not_applied": rejected on the old site (informational).
    pub status: String,
}

/// What the old site holds past the branch point, compared with the active site.
#[derive(Clone, Debug)]
pub struct Reconciliation {
    /// The last seq both sites hold identically.
    pub branch_seq: u64,
    /// Records of the old site after the branch point: lost in the failover.
    pub lost_records: u64,
    /// Transfer items among them applied on the old site and not on the active site.
    pub lost_transfers_applied: u64,
    /// Transfers of the old site's tail that were resubmitted and applied on the active site.
    pub resubmitted_transfers: u64,
    pub rows: Vec<ReconciliationRow>,
}

/// How many leading records `a` and `b` share (same hash at the same position). Both start at
/// seq 1; by the hash chain, the first difference ends what they share.
pub fn shared_prefix(a: &[JournalRecord], b: &[JournalRecord]) -> u64 {
    let shared = a.iter().zip(b).take_while(|(x, y)| x.hash == y.hash).count();
    debug_assert!(a.iter().zip(b).take(shared).all(|(x, y)| x.seq == y.seq));
    shared as u64
}

/// Records of `old` that `new` does not hold: those past their shared prefix. Both journals
/// start at seq 1.
pub fn records_missing(old: &[JournalRecord], new: &[JournalRecord]) -> u64 {
    let shared = shared_prefix(old, new);
    assert!(shared <= old.len() as u64);
    old.len() as u64 - shared
}

/// Compares the journal of the old site (which lost a failover) with the active site's, both
/// from seq 1. The branch point is at most the record before the active site's promotion
/// (`epoch_changed_at_seq`).
pub fn reconcile(old: &[JournalRecord], active: &[JournalRecord], epoch_changed_at_seq: u64) -> Reconciliation {
    let shared = shared_prefix(old, active);
    let branch_seq = shared.min(epoch_changed_at_seq.saturating_sub(1));
    let lost: Vec<&JournalRecord> = old.iter().filter(|r| r.seq > branch_seq).collect();
    let on_active = applied_transfer_ids(active);
    let mut rows: Vec<ReconciliationRow> = lost.iter().flat_map(|r| rows_of(r)).collect();
    for row in &mut rows {
        let applied_here = row.result == "ok";
        row.status = match (row.command.as_str(), applied_here, on_active.contains(row.id.as_str())) {
            ("create_transfers", true, true) => "present_on_active_site",
            ("create_transfers", true, false) => "lost",
            ("create_transfers", false, _) => "not_applied",
            (_, true, _) => "lost",
            _ => "not_applied",
        }
        .into();
    }
    let transfers_with =
        |status: &str| rows.iter().filter(|r| r.command == "create_transfers" && r.status == status).count() as u64;
    let lost_transfers_applied = transfers_with("lost");
    let resubmitted_transfers = transfers_with("present_on_active_site");
    assert!(branch_seq <= shared);
    Reconciliation { branch_seq, lost_records: lost.len() as u64, lost_transfers_applied, resubmitted_transfers, rows }
}

fn rows_of(record: &JournalRecord) -> Vec<ReconciliationRow> {
    let base = ReconciliationRow {
        seq: record.seq,
        ledger_time_ms: record.ledger_time_ms,
        origin_site: record.origin.site.clone(),
        origin_epoch: record.origin.epoch,
        caller: record.caller.clone(),
        command: record.command.name().into(),
        id: String::new(),
        kind: String::new(),
        debit_account_id: String::new(),
        credit_account_id: String::new(),
        amount: String::new(),
        currency: String::new(),
        pending_id: String::new(),
        result: String::new(),
        status: String::new(),
    };
    let items = record.outcome.items();
    let result = |i: usize| {
        items
            .get(i)
            .map_or(String::new(), |r| if r.replayed { format!("{} (replayed)", r.code) } else { r.code.to_string() })
    };
    match &record.command {
        Command::CreateTransfers { transfers, .. } => transfers
            .iter()
            .enumerate()
            .map(|(i, t)| ReconciliationRow {
                id: t.id.to_string(),
                kind: t.kind.name().into(),
                debit_account_id: t.debit_account_id.to_string(),
                credit_account_id: t.credit_account_id.to_string(),
                amount: t.amount.to_string(),
                currency: t.currency.clone().unwrap_or_default(),
                pending_id: match &t.kind {
                    TransferKind::PostPending { pending_id } | TransferKind::VoidPending { pending_id } => {
                        pending_id.to_string()
                    }
                    _ => String::new(),
                },
                result: result(i),
                ..base.clone()
            })
            .collect(),
        Command::CreateAccounts(accounts) => accounts
            .iter()
            .enumerate()
            .map(|(i, a)| ReconciliationRow {
                id: a.id.to_string(),
                kind: "account".into(),
                currency: a.currency.clone(),
                result: result(i),
                ..base.clone()
            })
            .collect(),
        Command::UpdateAccounts(updates) => updates
            .iter()
            .enumerate()
            .map(|(i, u)| ReconciliationRow {
                id: u.id.to_string(),
                kind: format!("{:?}", u.action).to_lowercase(),
                result: result(i),
                ..base.clone()
            })
            .collect(),
        Command::ExpirePending => match &record.outcome {
            Outcome::Expired(ids) => ids
                .iter()
                .map(|id| ReconciliationRow {
                    id: id.to_string(),
                    kind: "expired".into(),
                    result: "ok".into(),
                    ..base.clone()
                })
                .collect(),
            _ => vec![base],
        },
        Command::Site(_) | Command::Admin(_) => vec![base],
    }
}

/// Ids of transfers applied (ok, fresh) by these records.
fn applied_transfer_ids(records: &[JournalRecord]) -> BTreeSet<&str> {
    let mut ids = BTreeSet::new();
    for record in records {
        if let (Command::CreateTransfers { transfers, .. }, Outcome::Items(items)) = (&record.command, &record.outcome)
        {
            for (t, r) in transfers.iter().zip(items) {
                if r.code.is_ok() {
                    ids.insert(t.id.as_str());
                }
            }
        }
    }
    ids
}

/// A report file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the report {path}: {source}")]
pub struct WriteError {
    pub path: String,
    pub source: std::io::Error,
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value.to_string() }
}

/// Writes `report` as `reconciliation.json` and its `rows` as `reconciliation.csv` under `dir`.
pub fn write_report<T: Serialize>(
    dir: &Path,
    report: &T,
    rows: &[ReconciliationRow],
) -> Result<(PathBuf, PathBuf), WriteError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| WriteError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json_path = dir.join("reconciliation.json");
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    let csv_path = dir.join("reconciliation.csv");
    let mut csv = String::from(
        "seq,ledger_time_ms,origin_site,origin_epoch,caller,command,id,kind,debit_account_id,credit_account_id,amount,currency,pending_id,result,status\n",
    );
    for r in rows {
        let fields = [
            r.seq.to_string(),
            r.ledger_time_ms.to_string(),
            r.origin_site.clone(),
            r.origin_epoch.to_string(),
            r.caller.clone(),
            r.command.clone(),
            r.id.clone(),
            r.kind.clone(),
            r.debit_account_id.clone(),
            r.credit_account_id.clone(),
            r.amount.clone(),
            r.currency.clone(),
            r.pending_id.clone(),
            r.result.clone(),
            r.status.clone(),
        ];
        csv.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        csv.push('\n');
    }
    std::fs::write(&csv_path, csv).map_err(io(&csv_path))?;
    Ok((json_path, csv_path))
}

#[cfg(test)]
mod tests {
    use ledger_core::id::TransferId;
    use ledger_core::journal::Hash;
    use ledger_core::journal::Origin;

    use super::*;

    /// A chain of expiry records of `site`, one per name, from seq 1.
    fn chain(site: &str, names: &[&str]) -> Vec<JournalRecord> {
        let mut prev = Hash::GENESIS;
        let mut records = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let seq = i as u64 + 1;
            let record = JournalRecord::seal(
                seq,
                1_000 + seq,
                Origin { site: site.into(), epoch: 1, raft_index: seq },
                "test".into(),
                Command::ExpirePending,
                Outcome::Expired(vec![TransferId::from(*name)]),
                prev,
            );
            prev = record.hash;
            records.push(record);
        }
        records
    }

    /// Goal: the records of the old site that the new one lacks are counted, not assumed.
    /// Method: the new site shares the first four records, then has its own fifth and sixth;
    /// the old site's fifth record is missing from it.
    #[test]
    fn records_missing_counts_the_old_sites_tail() {
        let old = chain("primary", &["a", "b", "c", "d", "e"]);
        let mut new = chain("primary", &["a", "b", "c", "d"]);
        let branch = chain("primary", &["a", "b", "c", "d", "x", "y"]);
        new.extend(branch[4..].iter().cloned());
        assert_eq!(shared_prefix(&old, &new), 4);
        assert_eq!(records_missing(&old, &new), 1);
        assert_eq!(records_missing(&new, &old), 2);
    }

    /// Goal: a new site that holds every record of the old one (and more) lacks none.
    #[test]
    fn nothing_missing_when_the_new_site_holds_the_old_prefix() {
        let old = chain("primary", &["a", "b", "c"]);
        let new = chain("primary", &["a", "b", "c", "d"]);
        assert_eq!(records_missing(&old, &new), 0);
        assert_eq!(records_missing(&[], &new), 0);
    }
}
