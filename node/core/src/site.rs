//! The site a Raft group belongs to: its name, role and epoch, as replicated inside that group.
//!
//! A site is `Active` (takes writes, is the journal's source) or `Standby` (applies the active
//! site's journal records and refuses writes). The epoch is a fencing number that only grows:
//! every promotion increments it, and a site that has seen a higher epoch never writes at a
//! lower one. Site state is local to a site's Raft group; it is not part of the book that the
//! journal hash chain covers, but every site operation that changes it is itself a journal
//! record on the site that performs it.

use serde::Deserialize;
use serde::Serialize;

/// Longest site or zone name.
pub const SITE_NAME_BYTES_MAX: usize = 32;

/// Most upstream endpoints a standby keeps.
pub const UPSTREAM_ENDPOINTS_MAX: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteRole {
    /// Not bootstrapped yet: refuses writes.
    #[default]
    Uninitialized,
    Active,
    Standby,
}

impl SiteRole {
    pub fn name(self) -> &'static str {
        match self {
            SiteRole::Uninitialized => "uninitialized",
            SiteRole::Active => "active",
            SiteRole::Standby => "standby",
        }
    }
}

/// Where the shipped journal of a standby stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipWatermark {
    /// Last journal seq received from upstream and re-applied here.
    pub seq: u64,
    /// Ledger time of that record on the upstream site.
    pub ledger_time_ms: u64,
    /// Set when a shipped record did not reproduce its hash: shipping stops until an operator
    /// intervenes. Never cleared silently.
    pub halted: Option<String>,
}

/// A site's replicated view of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteState {
    /// This site's name (e.g. `primary`, `dr`).
    pub name: String,
    pub role: SiteRole,
    pub epoch: u64,
    /// Set on an active site that an operator fenced (planned switchover): it takes no writes.
    pub fenced: bool,
    /// The site that is active as far as this site knows, and at which epoch.
    pub active_site: String,
    pub active_epoch: u64,
    /// Client endpoints of the site a standby ships from.
    pub upstream: Vec<String>,
    /// The last epoch-changing operation: seq in this site's journal where it happened.
    pub epoch_changed_at_seq: u64,
    /// Journal seq up to which this site's journal is shared with the active site it follows
    /// (the branch point after a forced promotion elsewhere).
    pub watermark: ShipWatermark,
}

impl SiteState {
    /// Whether this site may apply client writes now.
    pub fn writable(&self) -> bool {
        self.role == SiteRole::Active && !self.fenced && self.active_epoch <= self.epoch
    }
}

/// Operations on the site itself. Each is a journal record on the site that performs it.
/// (The DR operations, fence, promote and follow, extend this enum; new variants are appended
/// so that recorded journals keep decoding.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteCommand {
    /// First command of a new site: its name, role and epoch.
    Bootstrap { name: String, role: SiteRole, epoch: u64, upstream: Vec<String> },
}

impl SiteCommand {
    pub fn name(&self) -> &'static str {
        match self {
            SiteCommand::Bootstrap { .. } => "bootstrap",
        }
    }
}
