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
    CrashStorm,
}

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Scenario::LeaderKill,
        Scenario::ZoneLoss,
        Scenario::MinorityPartition,
        Scenario::LeaderIsolation,
        Scenario::LeaderPause,
        Scenario::NodeWipeRejoin,
        Scenario::DrLinkCut,
        Scenario::PlannedSwitchover,
        Scenario::PrimarySiteLoss,
        Scenario::CrashStorm,
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
            Scenario::CrashStorm => "crash-storm",
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
            Scenario::CrashStorm => {
                "kill -9 random primary nodes again and again under load (--kills), during checkpoints and snapshot installs, some wiped"
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
    /// How many times `crash-storm` kills a node (the other scenarios ignore it).
    pub kills: u32,
}

/// How often nodes build a snapshot (each one a checkpoint of the state machine), how much
/// log they keep below it, and the chunk size snapshots are sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotCadence {
    pub every_entries: u64,
    pub keep_entries: u64,
    pub chunk_bytes: u64,
}

impl Scenario {
    /// Every drill builds snapshots often enough that a node down for a few seconds rejoins by
    /// one. `crash-storm` builds one about every second under load, so that kills land during
    /// checkpoints, and keeps little more log than that, so that a node down for a couple of
    /// seconds installs a snapshot; smaller chunks stretch the install over more RPCs for a
    /// kill to land in. (Keeping less than a snapshot install takes under load would have
    /// a wiped node install one snapshot after another: the log past each is purged by the
    /// time it is installed.)
    pub fn snapshot_cadence(self) -> SnapshotCadence {
        match self {
            Scenario::CrashStorm => SnapshotCadence { every_entries: 40, keep_entries: 50, chunk_bytes: 256 * 1024 },
            _ => SnapshotCadence { every_entries: 200, keep_entries: 50, chunk_bytes: 1024 * 1024 },
        }
    }
}

/// Kills of `crash-storm` unless told otherwise: its CI form.
pub const CRASH_STORM_KILLS: u32 = 20;
