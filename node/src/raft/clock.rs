//! Time, read in one place: the wall clock the leader stamps into entries, and per-node
//! jitter for election timing. The ledger itself never reads a clock: it sees only the times
//! stamped here. Durations and deadlines use `tokio::time::Instant` throughout, so that the
//! simulator (`ledger-chaos sim`), which runs whole clusters on tokio's paused clock, moves
//! every timer of a node together.

use std::sync::Arc;
use std::time::Duration;

use crate::raft::types::NodeId;

/// Milliseconds since the Unix epoch, as a node reads it. Production nodes read the system
/// clock ([`wall_clock`]); the simulator gives each node its own, which it can skew or jump.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Milliseconds since the Unix epoch: the leader's clock, stamped into entries.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The system clock as a [`Clock`].
pub fn wall_clock() -> Clock {
    Arc::new(now_ms)
}

/// A pseudo-random duration below `spread`, different per node and per call.
pub fn jitter(id: NodeId, spread: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(nanos) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let spread_ms = spread.as_millis() as u64;
    if spread_ms == 0 { Duration::ZERO } else { Duration::from_millis((mixed >> 11) % spread_ms) }
}
