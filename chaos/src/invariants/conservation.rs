//! Money is conserved: per currency, the sum of all debits equals the sum of all credits,
//! posted and pending, on every node. Source: double-entry bookkeeping;
//! `ledger_core::invariant::check_conservation`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::CheckInput;
use super::Verdict;

const NAME: &str = "money is conserved";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    for view in input.active.iter().chain(input.standbys) {
        // All accounts under test share one currency in the workloads; the sums cover them all.
        let mut sums: BTreeMap<&str, [Decimal; 4]> = BTreeMap::new();
        for columns in view.balances.values() {
            let s = sums.entry("all").or_default();
            for (i, c) in columns.iter().enumerate() {
                s[i] += c;
            }
        }
        for s in sums.values() {
            if s[0] != s[2] || s[1] != s[3] {
                return Verdict::fail(
                    NAME,
                    format!(
                        "{}/{}: debits {}+{} pending, credits {}+{} pending",
                        view.site, view.node_id, s[0], s[1], s[2], s[3]
                    ),
                );
            }
        }
    }
    Verdict::pass(NAME, format!("{} nodes", input.active.len() + input.standbys.len()))
}
