//! Commands (what is proposed through Raft and journaled) and their outcomes.

use serde::Deserialize;
use serde::Serialize;

use crate::account::AccountUpdate;
use crate::account::NewAccount;
use crate::id::TransferId;
use crate::reject::ResultCode;
use crate::site::SiteCommand;
use crate::site::SiteState;
use crate::transfer::NewTransfer;

/// One client or operator request. Each applied command is one journal record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateAccounts(Vec<NewAccount>),
    UpdateAccounts(Vec<AccountUpdate>),
    /// `atomic`: all transfers succeed or none does (a linked chain).
    CreateTransfers {
        transfers: Vec<NewTransfer>,
        atomic: bool,
    },
    /// Proposed by the leader's ledger timer when a pending transfer's timeout has passed.
    ExpirePending,
    Site(SiteCommand),
    /// An administrative event recorded for audit (membership change, key rotation, ...).
    Admin(AdminEvent),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateAccounts(_) => "create_accounts",
            Command::UpdateAccounts(_) => "update_accounts",
            Command::CreateTransfers { .. } => "create_transfers",
            Command::ExpirePending => "expire_pending",
            Command::Site(_) => "site",
            Command::Admin(_) => "admin",
        }
    }

    /// Whether this command changes the ledger (and so needs a writable site).
    pub fn is_ledger_write(&self) -> bool {
        matches!(
            self,
            Command::CreateAccounts(_)
                | Command::UpdateAccounts(_)
                | Command::CreateTransfers { .. }
                | Command::ExpirePending
        )
    }

    /// Number of items, for batch limits.
    pub fn item_count(&self) -> usize {
        match self {
            Command::CreateAccounts(items) => items.len(),
            Command::UpdateAccounts(items) => items.len(),
            Command::CreateTransfers { transfers, .. } => transfers.len(),
            _ => 0,
        }
    }
}

/// An administrative event. The cluster change has already happened in Raft when it is
/// recorded; the record says who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminEvent {
    NodeAdded {
        node_id: u64,
        zone: String,
        addr: String,
        voter: bool,
    },
    NodeRemoved {
        node_id: u64,
    },
    LeaderTransferred {
        from: u64,
        to: u64,
    },
    /// A dual-control approval of `request_id` for `action` (see the security layer).
    Approval {
        request_id: String,
        action: String,
    },
    /// A new data key became the one used for new personal data.
    KeyRotated {
        key_id: u32,
    },
    /// Shipping from the active site stopped on this standby (divergence or a record that
    /// did not reproduce); logged by the state machine itself.
    ShippingHalted {
        reason: String,
    },
}

/// A command with the identity of whoever asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The caller's identity (client certificate name, or `insecure` without TLS).
    pub caller: String,
    pub command: Command,
}

/// Result of one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub code: ResultCode,
    /// The id existed with an identical body: this is the original result, nothing changed.
    pub replayed: bool,
}

impl ItemResult {
    pub fn new(code: ResultCode) -> Self {
        ItemResult { code, replayed: false }
    }
    pub fn replay(code: ResultCode) -> Self {
        ItemResult { code, replayed: true }
    }
}

/// Why a whole command was refused without being applied or journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The site is not active, is fenced, or knows of a higher epoch elsewhere.
    SiteNotWritable { site: String, role: String, active_site: String, epoch: u64 },
    /// The batch is empty or has more than the documented number of items.
    BatchSize { items: usize, max: usize },
    /// The encoded command is over the size limit.
    CommandTooLarge { bytes: usize, max: usize },
    /// The caller identity is empty or too long.
    CallerInvalid,
    /// A site operation that does not fit the site's current state (e.g. promote an active
    /// site, or an epoch that is not higher than every epoch seen).
    SiteOperation { reason: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SiteNotWritable { site, role, active_site, epoch } => write!(
                f,
                "site {site} is {role} and takes no writes; the active site is {active_site} at epoch {epoch}"
            ),
            Refusal::BatchSize { items, max } => {
                write!(f, "batch has {items} items; it must have between 1 and {max}")
            }
            Refusal::CommandTooLarge { bytes, max } => {
                write!(f, "batch encodes to {bytes} bytes; the limit is {max}")
            }
            Refusal::CallerInvalid => write!(f, "caller identity is empty or too long"),
            Refusal::SiteOperation { reason } => write!(f, "{reason}"),
        }
    }
}

/// Outcome of one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// One result per item, in request order.
    Items(Vec<ItemResult>),
    /// Pending transfers released by expiry.
    Expired(Vec<TransferId>),
    /// The site state after a site operation.
    Site(SiteState),
    /// An admin event was recorded.
    Recorded,
    /// Nothing applied, nothing journaled.
    Refused(Refusal),
}

impl Outcome {
    pub fn is_refused(&self) -> bool {
        matches!(self, Outcome::Refused(_))
    }

    pub fn items(&self) -> &[ItemResult] {
        match self {
            Outcome::Items(items) => items,
            _ => &[],
        }
    }
}
