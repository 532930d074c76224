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

/// Crash points of the checkpoint protocol (store/checkpoint.rs): the process aborts, as a
/// power cut would stop it, just before that step of the first checkpoint it writes.
pub const CHECKPOINT_CRASH_BEFORE_WRITE_TMP: &str = "checkpoint-crash-before-write-tmp";
pub const CHECKPOINT_CRASH_BEFORE_SYNC_TMP: &str = "checkpoint-crash-before-sync-tmp";
pub const CHECKPOINT_CRASH_BEFORE_RENAME: &str = "checkpoint-crash-before-rename";
pub const CHECKPOINT_CRASH_BEFORE_SYNC_DIR: &str = "checkpoint-crash-before-sync-dir";
/// Crash points of a snapshot install: after the new generation's segments are written and
/// synced but before its checkpoint exists; and after the new generation is durable but
/// before the old one is removed.
pub const SNAPSHOT_INSTALL_CRASH_BEFORE_CHECKPOINT: &str = "snapshot-install-crash-before-checkpoint";
pub const SNAPSHOT_INSTALL_CRASH_AFTER_CHECKPOINT: &str = "snapshot-install-crash-after-checkpoint";

/// A node that received a whole snapshot stream waits `SNAPSHOT_RECEIVE_SLOW_MS` before
/// installing it (a slow disk or a large state, at test size).
pub const SNAPSHOT_RECEIVE_SLOW: &str = "snapshot-receive-slow";
pub const SNAPSHOT_RECEIVE_SLOW_MS: u64 = 3_000;

/// The checkpoint protocol's crash points, in the order of its steps.
pub const CHECKPOINT_CRASHES: &[&str] = &[
    CHECKPOINT_CRASH_BEFORE_WRITE_TMP,
    CHECKPOINT_CRASH_BEFORE_SYNC_TMP,
    CHECKPOINT_CRASH_BEFORE_RENAME,
    CHECKPOINT_CRASH_BEFORE_SYNC_DIR,
];

/// Every failpoint the node knows.
pub const ALL: &[&str] = &[
    LEDGER_TIMER_PANIC,
    CHECKPOINT_CRASH_BEFORE_WRITE_TMP,
    CHECKPOINT_CRASH_BEFORE_SYNC_TMP,
    CHECKPOINT_CRASH_BEFORE_RENAME,
    CHECKPOINT_CRASH_BEFORE_SYNC_DIR,
    SNAPSHOT_INSTALL_CRASH_BEFORE_CHECKPOINT,
    SNAPSHOT_INSTALL_CRASH_AFTER_CHECKPOINT,
    SNAPSHOT_RECEIVE_SLOW,
];

static ARMED: OnceLock<BTreeSet<String>> = OnceLock::new();

/// Arms `names` for the life of the process. A second call must arm the same set (one node
/// per process).
pub fn arm(names: &[String]) {
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert!(set.iter().all(|name| ALL.contains(&name.as_str())), "unknown failpoint in {set:?}");
    let armed = ARMED.get_or_init(|| set.clone());
    assert_eq!(*armed, set, "failpoints are armed once per process");
}

/// Aborts the process if `name` is armed: the crash a test asked for, at this exact step.
/// Logged first so the test can tell this crash from any other.
pub fn crash_if_armed(name: &str) {
    if armed(name) {
        tracing::error!(failpoint = name, "failpoint: crashing the process here");
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Whether `name` is armed.
pub fn armed(name: &str) -> bool {
    debug_assert!(ALL.contains(&name), "unknown failpoint {name}");
    ARMED.get().is_some_and(|set| set.contains(name))
}
