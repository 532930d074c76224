//! The invariant checker: one file per property, each citing where it comes from. Every
//! check reads what nodes serve over the API (journals and balances); none trusts a node's
//! own summary of itself.

pub mod acked;
pub mod chains;
pub mod conservation;
pub mod constraints;
pub mod idempotency;
pub mod replay;

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use ledger_client::LedgerClient;
use ledger_client::audit;
use ledger_client::proto as pb;
use ledger_core::journal::JournalRecord;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::workload::History;

/// What one node serves: its whole journal and the balances of the accounts under test.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub site: String,
    pub node_id: u64,
    pub journal: Vec<JournalRecord>,
    /// (debits_posted, debits_pending, credits_posted, credits_pending) by account id.
    pub balances: BTreeMap<String, [Decimal; 4]>,
    /// Accounts with `debits_must_not_exceed_credits`, with their overdraft limit.
    pub debit_limited: BTreeMap<String, Decimal>,
    /// Accounts with `credits_must_not_exceed_debits`.
    pub credit_limited: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("client: {0}")]
    Client(#[from] ledger_client::ClientError),
    #[error("stream: {0}")]
    Stream(#[from] tonic::Status),
    #[error("audit: {0}")]
    Audit(#[from] audit::AuditError),
    #[error("bad decimal {0:?}")]
    Decimal(String),
}

fn decimal(text: &str) -> Result<Decimal, CollectError> {
    text.parse().map_err(|_| CollectError::Decimal(text.to_string()))
}

/// Reads a node's journal and the balances of `accounts`, with local reads (what the node
/// has), at one consistent point: if the node applied more records (a pending expiry, say)
/// between reading its journal and its balances, the rest of the journal is read and the
/// balances again, until both describe the same journal head.
pub async fn collect(site: &str, node: &LedgerClient, accounts: &[String]) -> Result<NodeView, CollectError> {
    let status = node.status_once(std::time::Duration::from_secs(5)).await?;
    let mut view = NodeView {
        site: site.to_string(),
        node_id: status.node_id,
        journal: Vec::new(),
        balances: BTreeMap::new(),
        debit_limited: BTreeMap::new(),
        credit_limited: BTreeSet::new(),
    };
    for _ in 0..20 {
        let mut stream = node.read_journal(view.journal.len() as u64 + 1, 0, false).await?;
        while let Some(record) = stream.message().await? {
            view.journal.push(audit::decode_record(view.journal.len() as u64, &record)?);
        }
        let read_at = read_balances(node, accounts, &mut view).await?;
        if read_at == view.journal.len() as u64 {
            break;
        }
    }
    Ok(view)
}

/// Reads the balances of `accounts` into `view`; returns the journal seq they were read at
/// (`u64::MAX` if the pages were read at different points).
async fn read_balances(node: &LedgerClient, accounts: &[String], view: &mut NodeView) -> Result<u64, CollectError> {
    view.balances.clear();
    view.debit_limited.clear();
    view.credit_limited.clear();
    let mut read_at = None;
    for chunk in accounts.chunks(500) {
        let response = node.lookup_accounts(chunk.to_vec(), pb::ReadConsistency::Local).await?;
        let seq = response.read.map_or(0, |r| r.journal_seq);
        if read_at.is_some_and(|at| at != seq) {
            read_at = Some(u64::MAX);
        } else if read_at.is_none() {
            read_at = Some(seq);
        }
        for a in response.accounts {
            let flags = a.flags.unwrap_or_default();
            if flags.debits_must_not_exceed_credits {
                let limit = if a.overdraft_limit.is_empty() { Decimal::ZERO } else { decimal(&a.overdraft_limit)? };
                view.debit_limited.insert(a.id.clone(), limit);
            }
            if flags.credits_must_not_exceed_debits {
                view.credit_limited.insert(a.id.clone());
            }
            let columns = [
                decimal(&a.debits_posted)?,
                decimal(&a.debits_pending)?,
                decimal(&a.credits_posted)?,
                decimal(&a.credits_pending)?,
            ];
            view.balances.insert(a.id, columns);
        }
    }
    Ok(read_at.unwrap_or(u64::MAX))
}

/// One property's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub property: &'static str,
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    pub fn pass(property: &'static str, detail: impl Into<String>) -> Verdict {
        Verdict { property, passed: true, detail: detail.into() }
    }

    pub fn fail(property: &'static str, detail: impl Into<String>) -> Verdict {
        Verdict { property, passed: false, detail: detail.into() }
    }
}

/// What the checker looks at after a drill.
pub struct CheckInput<'a> {
    /// Every node of the site whose journal is the book of record now (the active site).
    pub active: &'a [NodeView],
    /// Nodes of standby sites: their journals must be prefixes of the active one.
    pub standbys: &'a [NodeView],
    pub history: &'a History,
    /// Acknowledged ids lost in a site failover (inside the RPO window) and listed in the
    /// reconciliation report: excused from "acknowledged means present".
    pub reconciled: &'a BTreeSet<String>,
}

/// Runs every check.
pub fn check_all(input: &CheckInput<'_>) -> Vec<Verdict> {
    vec![
        chains::check(input),
        replay::check(input),
        conservation::check(input),
        constraints::check(input),
        acked::check(input),
        idempotency::check(input),
    ]
}
