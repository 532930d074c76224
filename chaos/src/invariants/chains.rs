//! Hash chains agree: every node's journal verifies from genesis, and no two nodes (active or
//! standby, either site) hold different records at the same seq: of any two journals, the
//! shorter is a prefix of the longer. (Callers wait for equal heads first; views read a moment
//! apart may still differ in length if the active site appended, e.g. a pending expiry.)
//! Source: docs/journal.md and ARCHITECTURE.md "Sites, epochs and the two logs" (the DR
//! ledger is always a prefix).

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
    // Views are read one node after the other while the active site may still append (a
    // pending expiry), so a node read later can be a few records longer than the reference:
    // the shorter of the two must be a prefix of the longer.
    for view in input.active.iter().chain(input.standbys) {
        let n = view.journal.len().min(reference.journal.len());
        if view.journal[..n] != reference.journal[..n] {
            let first = (0..n).find(|i| view.journal[*i] != reference.journal[*i]).map_or(0, |i| i as u64 + 1);
            return Verdict::fail(
                NAME,
                format!(
                    "{}/{} journal differs from {}/{}'s at seq {first}",
                    view.site, view.node_id, reference.site, reference.node_id
                ),
            );
        }
    }
    let head = heads.first().map(|(_, h)| *h).unwrap_or_default();
    Verdict::pass(NAME, format!("{} nodes; head seq {} {}", heads.len(), head.seq, &head.hash.to_hex()[..16]))
}
