//! Why a replica operation failed: writes, linearizable reads, membership changes.
//! `WriteError` and `ReadError` cross the peer RPCs (forwarded writes, read index), hence serde.

use serde::Deserialize;
use serde::Serialize;

use crate::raft::types::NodeId;

/// Why a write did not produce a result. Crosses the peer `Propose` RPC, hence serde.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    #[error("this node is not the leader (leader: {leader_id:?})")]
    NotLeader { leader_id: Option<NodeId> },
    #[error("no leader is known (election or leadership transfer in progress)")]
    NoLeader,
    #[error("the leader has not heard from a quorum for {millis_since_quorum_ack} ms; refusing writes")]
    QuorumLost { millis_since_quorum_ack: u64 },
    #[error(
        "this node cannot reach leader {leader_id} (last Raft RPC to it failed {failed_ms_ago} ms ago); nothing was applied, send the write to the leader"
    )]
    LeaderUnreachable { leader_id: NodeId, failed_ms_ago: u64 },
    #[error("write queue is full; retry later")]
    Overloaded,
    #[error("outcome unknown ({reason}); retry with the same ids")]
    OutcomeUnknown { reason: String },
    #[error("node is shutting down")]
    Shutdown,
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a linearizable read barrier failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReadError {
    #[error("no leader is known (election in progress)")]
    NoLeader,
    #[error("the leader cannot reach a quorum")]
    QuorumLost,
    #[error("read barrier not reached within {0} ms")]
    Timeout(u64),
    #[error("node is shutting down")]
    Shutdown,
    #[error("peer error: {0}")]
    Peer(String),
}

/// Why a membership or leadership operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("this node is not the leader; send it to node {leader_id:?} ({leader_addr})")]
    NotLeader { leader_id: Option<NodeId>, leader_addr: String },
    #[error("{0}")]
    Invalid(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("raft: {0}")]
    Raft(String),
}
