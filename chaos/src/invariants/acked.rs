//! No acknowledged transfer is lost: every transfer the workload saw acknowledged as applied
//! is applied in the active site's journal, except those lost inside the RPO window of a site
//! failover, which must each appear in the reconciliation report. Source: ARCHITECTURE.md
//! "Architecture invariants" (an acknowledged transfer is on disk on a quorum) and
//! docs/operations.md "Drills"; Jepsen's "acknowledged writes survive".

use super::CheckInput;
use super::Verdict;
use crate::rpo::applied_transfer_ids;

const NAME: &str = "every acknowledged transfer is present";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    let Some(reference) = input.active.iter().max_by_key(|v| v.journal.len()) else {
        return Verdict::fail(NAME, "no active node");
    };
    // Ids applied (fresh or replayed Ok) according to the journal: the same "present" as the
    // RPO measurement.
    let applied = applied_transfer_ids(&reference.journal);
    let mut missing = Vec::new();
    let mut excused = 0;
    let mut checked = 0;
    for ack in input.history.ok() {
        checked += 1;
        if applied.contains(ack.id.as_str()) {
            continue;
        }
        if input.reconciled.contains(&ack.id) {
            excused += 1;
            continue;
        }
        missing.push(ack.id.clone());
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(10).collect();
        return Verdict::fail(NAME, format!("{} acknowledged transfers missing, e.g. {shown:?}", missing.len()));
    }
    Verdict::pass(NAME, format!("{checked} acknowledged; {excused} lost in the RPO window and reconciled"))
}
