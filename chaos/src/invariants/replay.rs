//! Balances equal an independent replay of the journal: an auditor folds each record's
//! command and recorded outcome (without the ledger's rules) and must reach every node's
//! balances. Source: DESIGN.md "Auditors ... verifiable offline"; TigerBeetle's VOPR checks
//! replicas against a reference model.

use ledger_client::audit::replay::Replay;

use super::CheckInput;
use super::Verdict;

const NAME: &str = "balances equal a replay of the journal";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    let Some(reference) = input.active.iter().max_by_key(|v| v.journal.len()) else {
        return Verdict::fail(NAME, "no active node");
    };
    let mut replay = Replay::default();
    for record in &reference.journal {
        if let Err(e) = replay.apply(record) {
            return Verdict::fail(NAME, e.to_string());
        }
    }
    for view in input.active {
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
            "{} records replayed; {} accounts match on {} nodes",
            replay.records,
            replay.accounts.len(),
            input.active.len()
        ),
    )
}
