//! No balance constraint is violated: an account with `debits_must_not_exceed_credits` never
//! has debits (posted + pending) above credits plus its overdraft limit; one with
//! `credits_must_not_exceed_debits` never has credits above debits. Source: the account flags
//! of TigerBeetle's `state_machine.zig`; `ledger_core::invariant`.

use super::CheckInput;
use super::Verdict;

const NAME: &str = "no balance constraint violated";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    for view in input.active.iter().chain(input.standbys) {
        for (id, limit) in &view.debit_limited {
            let [dp, dq, cp, _] = view.balances[id];
            if dp + dq > cp + limit {
                return Verdict::fail(
                    NAME,
                    format!(
                        "{}/{}: {id} debits {dp}+{dq} exceed credits {cp} + limit {limit}",
                        view.site, view.node_id
                    ),
                );
            }
        }
        for id in &view.credit_limited {
            let [dp, _, cp, cq] = view.balances[id];
            if cp + cq > dp {
                return Verdict::fail(
                    NAME,
                    format!("{}/{}: {id} credits {cp}+{cq} exceed debits {dp}", view.site, view.node_id),
                );
            }
        }
    }
    Verdict::pass(NAME, "every limited account within its limit on every node")
}
