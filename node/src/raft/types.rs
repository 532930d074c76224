//! The openraft type configuration: what a Raft entry carries and what applying it returns.

use std::fmt;
use std::sync::Arc;

use ledger_core::command::Envelope;
use ledger_core::command::Outcome;
use ledger_core::journal::JournalRecord;
use serde::Deserialize;
use serde::Serialize;

/// A node as Raft membership records it: where to reach it and which zone it is in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub zone: String,
    /// Address of the client services (`Ledger`, `Cluster`, `Audit`).
    pub client_addr: String,
    /// Address of the `RaftPeer` service.
    pub peer_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.zone, self.peer_addr)
    }
}

/// What one Raft entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Client and operator commands grouped by the leader's batcher (group commit), stamped
    /// with the leader's clock when proposed.
    /// The commands are shared (`Arc`): openraft clones entries for every replication stream
    /// and the log cache, and a deep copy of a 240 KiB batch each time would be waste.
    Commands { proposed_at_ms: u64, commands: Arc<Vec<Envelope>> },
    /// Journal records shipped from the active site, re-applied on this standby in order.
    Shipped { records: Arc<Vec<JournalRecord>> },
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Commands { proposed_at_ms, commands } => {
                write!(f, "commands(n={}, t={proposed_at_ms})", commands.len())
            }
            Payload::Shipped { records } => write!(f, "shipped(n={})", records.len()),
        }
    }
}

/// The result of one command of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub outcome: Outcome,
    /// Journal seq of its record; 0 if it was refused (not journaled).
    pub journal_seq: u64,
    pub ledger_time_ms: u64,
    pub raft_index: u64,
}

/// What applying one entry returns: one result per command (empty for blank and membership
/// entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub results: Vec<CommandResult>,
    /// For a `Shipped` entry: what became of its records.
    pub shipped: Option<ShipReport>,
}

/// What applying a `Shipped` entry did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipReport {
    pub applied: u64,
    pub duplicates: u64,
    /// Why records were ignored (not a standby, shipping halted), if any were.
    pub ignored: Option<String>,
    /// Set if shipping halted on one of these records.
    pub halted: Option<String>,
}

openraft::declare_raft_types!(
    /// The ledger's Raft types.
    pub TypeConfig:
        D = Payload,
        R = Applied,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Member>;
