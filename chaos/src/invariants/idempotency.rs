//! Every transfer is applied at most once: no id is applied fresh by two journal records, and
//! an acknowledged retry answered "replayed" never changed a balance (the replay check covers
//! balances). Source: ARCHITECTURE.md "Decisions" (transfer ids are idempotency keys);
//! TigerBeetle's exactly-once transfer ids.

use std::collections::BTreeMap;

use ledger_core::command::Command;
use ledger_core::command::Outcome;

use super::CheckInput;
use super::Verdict;

const NAME: &str = "no transfer applied twice";

pub fn check(input: &CheckInput<'_>) -> Verdict {
    let Some(reference) = input.active.iter().max_by_key(|v| v.journal.len()) else {
        return Verdict::fail(NAME, "no active node");
    };
    let mut fresh: BTreeMap<&str, u64> = BTreeMap::new();
    let mut replays = 0u64;
    for record in &reference.journal {
        if let (Command::CreateTransfers { transfers, .. }, Outcome::Items(items)) = (&record.command, &record.outcome)
        {
            for (t, r) in transfers.iter().zip(items) {
                if !r.code.is_ok() {
                    continue;
                }
                if r.replayed {
                    replays += 1;
                    if !fresh.contains_key(t.id.as_str()) {
                        return Verdict::fail(
                            NAME,
                            format!("seq {}: {} replayed before it was ever applied", record.seq, t.id),
                        );
                    }
                    continue;
                }
                if let Some(first) = fresh.insert(t.id.as_str(), record.seq) {
                    return Verdict::fail(
                        NAME,
                        format!("{} applied at seq {first} and again at seq {}", t.id, record.seq),
                    );
                }
            }
        }
    }
    let acked_twice = {
        let mut seen = std::collections::BTreeSet::new();
        input.history.ok().filter(|a| !a.replayed).filter(|a| !seen.insert(a.id.as_str())).count()
    };
    if acked_twice > 0 {
        return Verdict::fail(NAME, format!("{acked_twice} ids acknowledged as freshly applied more than once"));
    }
    Verdict::pass(NAME, format!("{} applied once each; {replays} replays answered from the stored result", fresh.len()))
}
