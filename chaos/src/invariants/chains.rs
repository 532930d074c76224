//! Hash chains agree: every node's journal verifies from genesis, and every node's journal
//! (active or standby) is a prefix of the longest active one: no two replicas ever hold
//! different records at the same seq. (Callers wait for equal heads first; a node may still be
//! a few records behind if the leader appended, e.g. a pending expiry, while views were read.)
//! Source: DESIGN.md "The journal" and "Async DR" (the DR ledger is always a prefix).

use ledger_core::journal::JournalHead;
use ledger_core::journal::verify_chain;

use super::CheckInput;
use super::Verdict;

const NAME: &str = "hash chains agree";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    let mut heads = Vec::new();
    for view in input.active.iter().chain(input.standbys) {
        match verify_chain(JournalHead::default(), &view.journal) {
            Ok(head) => heads.push((view, head)),
            Err(e) => return Verdict::fail(NAME, format!("{}/{}: {e}", view.site, view.node_id)),
        }
    }
    let Some(reference) = input.active.iter().max_by_key(|v| v.journal.len()) else {
        return Verdict::fail(NAME, "no active node to compare with");
    };
    for view in input.active.iter().chain(input.standbys) {
        let n = view.journal.len();
        if n > reference.journal.len() || view.journal[..] != reference.journal[..n] {
            return Verdict::fail(
                NAME,
                format!("{}/{} journal (len {n}) is not a prefix of the active site's", view.site, view.node_id),
            );
        }
    }
    let head = heads.first().map(|(_, h)| *h).unwrap_or_default();
    Verdict::pass(NAME, format!("{} nodes; head seq {} {}", heads.len(), head.seq, &head.hash.to_hex()[..16]))
}
