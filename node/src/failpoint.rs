//! Failpoints: named places where a test makes the node fail on purpose (a panic, an injected
//! storage error), to check that the node fails the way the architecture says it must.
//!
//! They are armed once at start-up from `NodeConfig::failpoints` and never change afterwards.
//! An unarmed failpoint costs one lookup in an empty set. Production configurations leave the
//! list empty; `NodeConfig::validate` refuses names it does not know.

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Panics inside the leader's ledger timer task at its first tick (fail-stop test).
pub const LEDGER_TIMER_PANIC: &str = "ledger-timer-panic";

/// Every failpoint the node knows.
pub const ALL: &[&str] = &[LEDGER_TIMER_PANIC];

static ARMED: OnceLock<BTreeSet<String>> = OnceLock::new();

/// Arms `names` for the life of the process. A second call must arm the same set (one node
/// per process).
pub fn arm(names: &[String]) {
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert!(set.iter().all(|name| ALL.contains(&name.as_str())), "unknown failpoint in {set:?}");
    let armed = ARMED.get_or_init(|| set.clone());
    assert_eq!(*armed, set, "failpoints are armed once per process");
}

/// Whether `name` is armed.
pub fn armed(name: &str) -> bool {
    debug_assert!(ALL.contains(&name), "unknown failpoint {name}");
    ARMED.get().is_some_and(|set| set.contains(name))
}
