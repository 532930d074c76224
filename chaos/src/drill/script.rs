//! What a scenario's script receives from the drill and what it hands back: the common part
//! of a drill (start, load, converge, check, measure, report) lives in `drill/mod.rs`, each
//! scenario's faults and operator commands in its own module between the two. Plain data.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::drill::config::DrillConfig;
use crate::workload::History;
use crate::workload::Workload;

/// A scenario's inputs: the load is running and has run for one `third` of the load phase.
pub struct Act<'a> {
    pub config: &'a DrillConfig,
    /// The running workload: the script stops it (and returns its history) when its load
    /// phase is over.
    pub workload: Workload,
    /// A third of the load phase: scripts pace their faults in thirds.
    pub third: Duration,
    /// State of the seeded choice of victims ([`Act::pick`]).
    rng: u64,
}

impl<'a> Act<'a> {
    pub fn new(config: &'a DrillConfig, workload: Workload) -> Act<'a> {
        Act { config, workload, third: config.duration / 3, rng: config.seed }
    }

    /// A seeded choice in `0..n` (xorshift of the drill's seed), so a drill replays with its
    /// seed.
    pub fn pick(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }
}

/// A scenario's results, for the checker and the measurements.
pub struct Aftermath {
    /// The workload's acknowledgement history.
    pub history: History,
    /// Wall-clock ms of the fault (RTO counts from here).
    pub fault_ms: u64,
    /// The site that must serve writes after the fault.
    pub serving_site: &'static str,
    /// Acknowledged ids a failback's reconciliation report lists as lost: the checker excuses
    /// them from "acknowledged means present" (they still count as lost in the RPO).
    pub reconciled: BTreeSet<String>,
}

impl Aftermath {
    /// A fault inside the primary site: the primary serves again, nothing is reconciled.
    pub fn primary(history: History, fault_ms: u64) -> Aftermath {
        Aftermath { history, fault_ms, serving_site: "primary", reconciled: BTreeSet::new() }
    }
}
