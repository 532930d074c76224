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
    /// Set when a shipped record did not reproduce its hash (or did not follow our head):
    /// shipping stops until an operator intervenes. Never cleared silently.
    pub halted: Option<String>,
}

/// One operator's approval of a site operation (dual control).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub request_id: String,
    /// The operation approved: "switchover", "promote", "failback" or "rotate_key".
    pub action: String,
    pub caller: String,
    pub at_ms: u64,
}

/// Approvals older than this (in ledger time) no longer count.
pub const APPROVAL_WINDOW_MS: u64 = 15 * 60 * 1000;
/// Approvals kept, at most (oldest dropped first).
pub const APPROVALS_MAX: usize = 64;
/// Longest request id of a dual-control operation.
pub const REQUEST_ID_BYTES_MAX: usize = 64;

/// A site's replicated view of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteState {
    /// This site's name (e.g. `primary`, `dr`).
    pub name: String,
    pub role: SiteRole,
    /// The epoch of this site's own (last) active period.
    pub epoch: u64,
    /// Set on an active site that an operator fenced (planned switchover): it takes no writes.
    pub fenced: bool,
    /// The site that is active as far as this site knows, and at which epoch. An active site
    /// that learns of a higher epoch elsewhere stops writing (fencing).
    pub active_site: String,
    pub active_epoch: u64,
    /// Client endpoints of the site a standby ships from.
    pub upstream: Vec<String>,
    /// Journal seq at which the current role began on this site.
    pub epoch_changed_at_seq: u64,
    /// Standby: how far the shipped journal got.
    pub watermark: ShipWatermark,
    /// Site operations (promote, switchover, failback, key rotation) need two operators.
    pub dual_control: bool,
    /// Recent approvals, oldest first.
    pub approvals: Vec<Approval>,
    /// The data key that seals new personal data (0: the newest key in the node's file).
    pub data_key_id: u32,
}

impl SiteState {
    /// Whether this site may apply client writes now.
    pub fn writable(&self) -> bool {
        self.role == SiteRole::Active && !self.fenced && self.active_epoch <= self.epoch
    }

    /// The highest epoch this site has seen, its own or another site's.
    pub fn epoch_seen(&self) -> u64 {
        self.epoch.max(self.active_epoch)
    }
}

/// Operations on the site itself. Each is recorded in the site log of the site that performs
/// it, and is also a journal record when the site is active after it. New variants are
/// appended so that recorded logs keep decoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteCommand {
    /// First command of a new site: its name, role, epoch, upstream (standby) and whether site
    /// operations need two operators.
    Bootstrap { name: String, role: SiteRole, epoch: u64, upstream: Vec<String>, dual_control: bool },
    /// An active site stops taking writes (first step of a planned switchover).
    Fence,
    /// Lift a fence (abort a switchover).
    Unfence,
    /// A standby becomes the active site at `epoch`, higher than any epoch it has seen.
    /// `forced`: the old primary did not agree (failover); the watermark is the RPO point.
    Promote { epoch: u64, forced: bool, request_id: String },
    /// A fenced active site becomes a standby of `active_site` (planned switchover), keeping
    /// its journal: the new active site's journal continues it.
    Demote { active_site: String, epoch: u64, upstream: Vec<String>, request_id: String },
    /// A site becomes a standby of `active_site` from scratch: its ledger state and journal
    /// are discarded (after the operator exported the records past the branch point) and
    /// re-shipped from seq 1 (failback of a site that lost a failover).
    Resync { active_site: String, epoch: u64, upstream: Vec<String>, request_id: String },
    /// This site learned that `active_site` is active at a higher epoch: it stops writing.
    ObserveEpoch { active_site: String, epoch: u64 },
    /// One operator approves `request_id` for `action` (dual control).
    Approve { request_id: String, action: String },
    /// New personal data is sealed with data key `key_id` from now on.
    RotateKey { key_id: u32, request_id: String },
}

impl SiteCommand {
    pub fn name(&self) -> &'static str {
        match self {
            SiteCommand::Bootstrap { .. } => "bootstrap",
            SiteCommand::Fence => "fence",
            SiteCommand::Unfence => "unfence",
            SiteCommand::Promote { .. } => "promote",
            SiteCommand::Demote { .. } => "demote",
            SiteCommand::Resync { .. } => "resync",
            SiteCommand::ObserveEpoch { .. } => "observe_epoch",
            SiteCommand::Approve { .. } => "approve",
            SiteCommand::RotateKey { .. } => "rotate_key",
        }
    }
}
