//! Disaster recovery: the standby's journal shipper and the active site's watcher, and the
//! lag they measure (the RPO exposure).
//!
//! - `ship.rs`: on the leader of a standby site, the `JournalShipper` streams the active
//!   site's journal from our head + 1 and proposes the records into our own Raft log, where
//!   the state machine re-applies and hash-checks each one.
//! - `watch.rs`: on the leader of an active site, the `SiteWatcher` polls the other sites:
//!   one active at a higher epoch fences us; the standbys' watermarks give the lag.
//! - this file: `DrMonitor`, the lag as last measured, shared with the API (status,
//!   throttling) and metrics.

pub mod ship;
pub mod watch;

use std::sync::Mutex;

use ledger_proto::v1 as pb;

use crate::config::DrConfig;

/// A measurement older than this is not "fresh" (the other side stopped answering).
const FRESH_MS: u64 = 3_000;

/// The lag as last measured.
#[derive(Clone, Debug, Default)]
pub struct Lag {
    pub records: u64,
    pub ms: u64,
    pub upstream_head_seq: u64,
    /// Wall clock of the last successful measurement.
    pub measured_at_ms: u64,
    /// Ledger time of the oldest record the standby lacks (active site's view), if any.
    pub oldest_missing_ms: Option<u64>,
}

/// The DR lag shared between the shipper or watcher and the API.
pub struct DrMonitor {
    pub config: DrConfig,
    lag: Mutex<Lag>,
}

impl DrMonitor {
    pub fn new(config: DrConfig) -> DrMonitor {
        DrMonitor { config, lag: Mutex::new(Lag::default()) }
    }

    pub fn set(&self, lag: Lag) {
        metrics::gauge!("ledger_dr_lag_records").set(lag.records as f64);
        metrics::gauge!("ledger_dr_lag_seconds").set(lag.ms as f64 / 1000.0);
        metrics::gauge!("ledger_dr_lag_alarm").set(if lag.ms > self.config.lag_budget_ms { 1.0 } else { 0.0 });
        *self.lag.lock().expect("lock is never poisoned") = lag;
    }

    /// Grows the lag while no measurement arrives: `head_*` is our own journal head and
    /// `watermark_*` the last the other side was known to hold.
    pub fn lag(&self) -> Lag {
        self.lag.lock().expect("lock is never poisoned").clone()
    }

    /// Whether a write accepted now would take the lag within 10% of the ceiling: the lag a
    /// new record adds is measured from the oldest record the standby lacks to now, so the
    /// refusal comes before the ceiling, not after a measurement notices it was passed.
    pub fn throttled(&self) -> bool {
        if !self.config.throttle {
            return false;
        }
        let lag = self.lag();
        let Some(oldest_missing_ms) = lag.oldest_missing_ms else { return false };
        let margin = self.config.lag_ceiling_ms / 10;
        crate::raft::clock::now_ms().saturating_sub(oldest_missing_ms) + margin >= self.config.lag_ceiling_ms
    }

    pub fn to_proto(&self) -> pb::DrLag {
        let lag = self.lag();
        let now = crate::raft::clock::now_ms();
        pb::DrLag {
            records: lag.records,
            ms: lag.ms,
            alarm: lag.ms > self.config.lag_budget_ms,
            throttled: self.throttled(),
            upstream_head_seq: lag.upstream_head_seq,
            measured_at_ms: lag.measured_at_ms,
            fresh: lag.measured_at_ms + FRESH_MS >= now,
            budget_ms: self.config.lag_budget_ms,
            ceiling_ms: self.config.lag_ceiling_ms,
        }
    }
}
