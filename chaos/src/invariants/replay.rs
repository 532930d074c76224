//! Balances equal an independent replay of the journal: an auditor folds each record's
//! command and recorded outcome (without the ledger's rules) and must reach every node's
//! balances. Source: docs/security.md (audit: the journal verifies offline); TigerBeetle's VOPR checks
//! replicas against a reference model.

use ledger_client::audit::replay::Replay;

use super::CheckInput;
use super::Verdict;

const NAME: &str = "balances equal a replay of the journal";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    if input.active.is_empty() {
        return Verdict::fail(NAME, "no active node");
    }
    let mut records = 0;
    let mut accounts = 0;
    // Each node against a replay of its own journal: the views are read at one point per node.
    for view in input.active.iter().chain(input.standbys) {
        let mut replay = Replay::default();
        for record in &view.journal {
            if let Err(e) = replay.apply(record) {
                return Verdict::fail(NAME, format!("{}/{}: {e}", view.site, view.node_id));
            }
        }
        records = records.max(replay.records);
        accounts = accounts.max(replay.accounts.len());
        for (id, columns) in &view.balances {
            let Some(expected) = replay.accounts.get(id) else {
                return Verdict::fail(
                    NAME,
                    format!("{}/{}: account {id} is not in the journal", view.site, view.node_id),
                );
            };
            let want =
                [expected.debits_posted, expected.debits_pending, expected.credits_posted, expected.credits_pending];
            if *columns != want {
                return Verdict::fail(
                    NAME,
                    format!("{}/{}: account {id} has {columns:?}, the journal says {want:?}", view.site, view.node_id),
                );
            }
        }
    }
    Verdict::pass(
        NAME,
        format!(
            "up to {records} records replayed; {accounts} accounts match on {} nodes",
            input.active.len() + input.standbys.len()
        ),
    )
}
