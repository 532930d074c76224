//! What a drill is asked to do: the scenarios, a drill's configuration, and the targets and
//! deadlines every drill is held to. Plain data: it must not start processes or talk to nodes.

use std::path::PathBuf;
use std::time::Duration;

use ledger_cluster::process::NodeLauncher;
use serde::Serialize;

/// Regulatory targets for the loss of the primary site.
pub const RPO_REGULATORY_S: f64 = 300.0;
pub const RTO_REGULATORY_S: f64 = 1800.0;
/// Our own targets: a site loss with a scripted promotion, and a leader lost inside a site.
pub const RPO_STRETCH_SITE_S: f64 = 1.0;
pub const RTO_STRETCH_SITE_S: f64 = 10.0;
pub const RTO_STRETCH_LEADER_S: f64 = 3.0;
/// Per-attempt timeout of the workload's client (writes take tens of ms in the drills).
pub const WORKLOAD_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Deadline of every wait inside a drill.
pub const WAIT: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Scenario {
    LeaderKill,
    ZoneLoss,
    MinorityPartition,
    LeaderIsolation,
    LeaderPause,
    NodeWipeRejoin,
    DrLinkCut,
    PlannedSwitchover,
    PrimarySiteLoss,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::LeaderKill,
        Scenario::ZoneLoss,
        Scenario::MinorityPartition,
        Scenario::LeaderIsolation,
        Scenario::LeaderPause,
        Scenario::NodeWipeRejoin,
        Scenario::DrLinkCut,
        Scenario::PlannedSwitchover,
        Scenario::PrimarySiteLoss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LeaderKill => "leader-kill",
            Scenario::ZoneLoss => "zone-loss",
            Scenario::MinorityPartition => "minority-partition",
            Scenario::LeaderIsolation => "leader-isolation",
            Scenario::LeaderPause => "leader-pause",
            Scenario::NodeWipeRejoin => "node-wipe-rejoin",
            Scenario::DrLinkCut => "dr-link-cut",
            Scenario::PlannedSwitchover => "planned-switchover",
            Scenario::PrimarySiteLoss => "primary-site-loss",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn description(self) -> &'static str {
        match self {
            Scenario::LeaderKill => "kill -9 the primary's leader under load, restart it later",
            Scenario::ZoneLoss => "kill every primary node of one zone under load, restart them later",
            Scenario::MinorityPartition => "cut one primary follower off its peers (both ways), heal",
            Scenario::LeaderIsolation => "blackhole the primary leader's outgoing peer links only (one way), heal",
            Scenario::LeaderPause => "SIGSTOP the primary leader, SIGCONT it a few seconds later",
            Scenario::NodeWipeRejoin => "stop a primary follower, wipe its data dir, restart: it rejoins by snapshot",
            Scenario::DrLinkCut => "cut the links between the sites, heal: the DR site catches up",
            Scenario::PlannedSwitchover => "dr switchover under load (two operators approve): zero loss",
            Scenario::PrimarySiteLoss => {
                "kill the whole primary site under load, dr promote --force, keep writing, bring the old site back, dr failback"
            }
        }
    }

    /// Losing the whole primary site (regulatory targets apply in full), or something inside
    /// one site.
    pub fn is_site_loss(self) -> bool {
        self == Scenario::PrimarySiteLoss
    }

    /// Scenarios in which the primary loses its leader (the RTO stretch target applies).
    pub fn loses_leader(self) -> bool {
        matches!(self, Scenario::LeaderKill | Scenario::LeaderIsolation | Scenario::LeaderPause)
    }

    /// Scenarios whose report states an RTO: the site that must serve writes stops serving
    /// them for a while.
    pub fn needs_rto(self) -> bool {
        self.loses_leader()
            || matches!(self, Scenario::ZoneLoss | Scenario::PlannedSwitchover | Scenario::PrimarySiteLoss)
    }
}

#[derive(Clone, Debug)]
pub struct DrillConfig {
    pub scenario: Scenario,
    /// Length of the load phase (the fault happens inside it).
    pub duration: Duration,
    pub seed: u64,
    /// Where the report, the history and the cluster's data and logs go.
    pub report_dir: PathBuf,
    /// One-way delay between the sites.
    pub wan_delay: Duration,
    /// One-way delay between the zones of a site (and to clients).
    pub zone_delay: Duration,
    pub launcher: NodeLauncher,
}
