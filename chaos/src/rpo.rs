//! RPO, measured: the acknowledged transfers that are missing from the book of record at the
//! end, and the span of their acknowledgement times. Every drill's report and the DR tests take
//! their RPO from [`measure`]; no figure here is written down, each is counted.
//!
//! - *Lost*: a transfer the workload saw acknowledged as applied (`result == "ok"`) whose id the
//!   final journal of the active site does not apply.
//! - *Span*: from the first to the last acknowledgement of the lost transfers, in whole
//!   milliseconds, both ends included: one lost transfer spans 1 ms, so the span is 0 exactly
//!   when nothing was lost.
//!
//! It owns the arithmetic only: callers read the final journal (the checker already does) and
//! pass the ids it applies; nothing here talks to a node.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use ledger_core::command::Command;
use ledger_core::command::Outcome;
use ledger_core::journal::JournalRecord;
use serde::Serialize;

use crate::workload::History;

/// Lost ids kept in a measurement, first acknowledged first: enough to start a reconciliation
/// by hand, small enough for a report even when a broken drill loses everything.
pub const LOST_IDS_KEPT_MAX: usize = 100;

/// What [`measure`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rpo {
    /// Acknowledged transfers (distinct ids) the final journal does not apply.
    pub lost_transfers: usize,
    /// Wall-clock ms of the first and the last acknowledgement of a lost transfer.
    pub first_lost_ack_ms: Option<u64>,
    pub last_lost_ack_ms: Option<u64>,
    /// `last - first + 1` ms (both ends included); 0 exactly when nothing was lost.
    pub span_ms: u64,
    /// The first [`LOST_IDS_KEPT_MAX`] lost ids, in acknowledgement order.
    pub lost_ids: Vec<String>,
}

impl Rpo {
    pub fn span_s(&self) -> f64 {
        self.span_ms as f64 / 1000.0
    }
}

/// The RPO of a run: every `ok` acknowledgement of `history` whose id `present` lacks is lost.
/// `present` is what the book of record applies at the end ([`applied_transfer_ids`] of the
/// active site's final journal).
pub fn measure(history: &History, present: &BTreeSet<&str>) -> Rpo {
    // Earliest acknowledgement of each lost id (an id is acknowledged once by the workload;
    // a second acknowledgement would be a replay of the same transfer).
    let mut lost: BTreeMap<&str, u64> = BTreeMap::new();
    for ack in history.ok().filter(|a| !present.contains(a.id.as_str())) {
        let at = lost.entry(ack.id.as_str()).or_insert(ack.acked_at_ms);
        *at = (*at).min(ack.acked_at_ms);
    }
    let first_lost_ack_ms = lost.values().copied().min();
    let last_lost_ack_ms = lost.values().copied().max();
    let span_ms = match (first_lost_ack_ms, last_lost_ack_ms) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    };
    let mut in_ack_order: Vec<(u64, &str)> = lost.iter().map(|(id, at)| (*at, *id)).collect();
    in_ack_order.sort_unstable();
    let rpo = Rpo {
        lost_transfers: lost.len(),
        first_lost_ack_ms,
        last_lost_ack_ms,
        span_ms,
        lost_ids: in_ack_order.iter().take(LOST_IDS_KEPT_MAX).map(|(_, id)| id.to_string()).collect(),
    };
    assert_eq!(rpo.span_ms == 0, rpo.lost_transfers == 0, "a zero span means nothing was lost");
    assert!(rpo.lost_ids.len() <= rpo.lost_transfers);
    rpo
}

/// Ids of the transfers `journal` applies (ok, fresh or replayed): what "present" means for
/// [`measure`] and for the "every acknowledged transfer is present" invariant.
pub fn applied_transfer_ids(journal: &[JournalRecord]) -> BTreeSet<&str> {
    let mut applied = BTreeSet::new();
    for record in journal {
        if let (Command::CreateTransfers { transfers, .. }, Outcome::Items(items)) = (&record.command, &record.outcome)
        {
            for (t, r) in transfers.iter().zip(items) {
                if r.code.is_ok() {
                    applied.insert(t.id.as_str());
                }
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Ack;

    fn ack(id: &str, result: &str, acked_at_ms: u64) -> Ack {
        Ack {
            id: id.into(),
            kind: "posted".into(),
            debit: "a".into(),
            credit: "b".into(),
            amount: "1.00".into(),
            pending_id: String::new(),
            result: result.into(),
            replayed: false,
            journal_seq: 0,
            sent_at_ms: acked_at_ms.saturating_sub(5),
            acked_at_ms,
            client: 0,
            endpoint: "127.0.0.1:1".into(),
        }
    }

    fn history(acks: Vec<Ack>) -> History {
        History { acks, ..History::default() }
    }

    /// Goal: one acknowledged transfer missing from the final journal is one lost transfer,
    /// with a 1 ms span at its acknowledgement time. Method: four acknowledgements, three
    /// present (one of the absent is a rejection, which is not a lost transfer).
    #[test]
    fn one_missing_ack_is_one_lost_transfer() {
        let h = history(vec![
            ack("t1", "ok", 1_000),
            ack("t2", "ok", 1_010),
            ack("t3", "ok", 1_020),
            ack("t4", "exceeds_credits", 1_030),
        ]);
        let present: BTreeSet<&str> = ["t1", "t3"].into();
        let rpo = measure(&h, &present);
        assert_eq!(
            rpo,
            Rpo {
                lost_transfers: 1,
                first_lost_ack_ms: Some(1_010),
                last_lost_ack_ms: Some(1_010),
                span_ms: 1,
                lost_ids: vec!["t2".into()],
            }
        );
    }

    /// Goal: the span runs from the first to the last lost acknowledgement, both included,
    /// whatever the order of the history. Method: three lost among five, out of order.
    #[test]
    fn span_is_first_to_last_lost_ack_inclusive() {
        let h = history(vec![
            ack("t5", "ok", 2_400),
            ack("t1", "ok", 2_000),
            ack("t2", "ok", 2_100),
            ack("t4", "ok", 2_300),
            ack("t3", "ok", 2_200),
        ]);
        let present: BTreeSet<&str> = ["t1", "t3"].into();
        let rpo = measure(&h, &present);
        assert_eq!(rpo.lost_transfers, 3);
        assert_eq!((rpo.first_lost_ack_ms, rpo.last_lost_ack_ms), (Some(2_100), Some(2_400)));
        assert_eq!(rpo.span_ms, 301);
        assert_eq!(rpo.lost_ids, ["t2", "t4", "t5"]);
    }

    /// Goal: nothing missing is an RPO of zero transfers and a zero span.
    #[test]
    fn nothing_missing_is_zero() {
        let h = history(vec![ack("t1", "ok", 10), ack("t2", "ok", 20)]);
        let present: BTreeSet<&str> = ["t1", "t2"].into();
        let rpo = measure(&h, &present);
        assert_eq!((rpo.lost_transfers, rpo.span_ms, rpo.first_lost_ack_ms), (0, 0, None));
        assert!(rpo.lost_ids.is_empty());
    }
}
