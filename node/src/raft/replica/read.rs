//! Linearizable reads: the leader's read index (one heartbeat round to a quorum), then wait
//! until this node applied it.

use std::time::Duration;

use openraft::error::CheckIsLeaderError;
use openraft::error::RaftError;
use tokio::time::Instant as TokioInstant;

use super::Replica;
use crate::raft::error::ReadError;
use crate::raft::wire::PeerCallError;
use crate::raft::wire::PeerMethod;

impl Replica {
    /// Waits until this node has applied everything acknowledged before the call (leader read
    /// index). Returns the applied index reached.
    pub async fn read_barrier(&self) -> Result<u64, ReadError> {
        let deadline = TokioInstant::now() + self.read_timeout;
        let timeout_ms = self.read_timeout.as_millis() as u64;
        match tokio::time::timeout_at(deadline, self.read_barrier_until(deadline)).await {
            Ok(result) => result,
            Err(_) => Err(ReadError::Timeout(timeout_ms)),
        }
    }

    async fn read_barrier_until(&self, deadline: TokioInstant) -> Result<u64, ReadError> {
        let mut metrics = self.raft.metrics();
        loop {
            let leader = metrics.borrow().current_leader;
            let read_index = match leader {
                Some(leader_id) if leader_id == self.id => match self.read_index_local().await {
                    Ok(index) => Some(index),
                    Err(ReadError::NoLeader) => None,
                    Err(e) => return Err(e),
                },
                Some(leader_id) => {
                    let member = self.member_of(leader_id).ok_or(ReadError::NoLeader)?;
                    let remaining = deadline.saturating_duration_since(TokioInstant::now());
                    let reply: Result<Result<u64, ReadError>, _> =
                        self.peers.call(leader_id, &member, PeerMethod::ReadIndex, &(), remaining).await;
                    match reply {
                        Ok(Ok(index)) => Some(index),
                        Ok(Err(ReadError::NoLeader)) => None,
                        Ok(Err(e)) => return Err(e),
                        Err(e @ PeerCallError::Shunned { .. }) => return Err(ReadError::Peer(e.to_string())),
                        Err(e) if e.is_unreachable() => None,
                        Err(e) => return Err(ReadError::Peer(e.to_string())),
                    }
                }
                None => None,
            };
            if let Some(index) = read_index {
                let remaining = deadline.saturating_duration_since(TokioInstant::now());
                return match self.raft.wait(Some(remaining)).applied_index_at_least(Some(index), "read barrier").await {
                    Ok(m) => Ok(m.last_applied.map_or(0, |l| l.index)),
                    Err(openraft::metrics::WaitError::ShuttingDown) => Err(ReadError::Shutdown),
                    Err(openraft::metrics::WaitError::Timeout(..)) => {
                        Err(ReadError::Timeout(self.read_timeout.as_millis() as u64))
                    }
                };
            }
            // Raft stopped (the node is shutting down): `changed` fails at once, and retrying
            // would spin until the deadline.
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(100), metrics.changed()).await {
                return Err(ReadError::Shutdown);
            }
        }
    }

    /// On the leader: confirms leadership with a quorum and returns the read index.
    pub async fn read_index_local(&self) -> Result<u64, ReadError> {
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _applied)) => Ok(read_log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(ReadError::NoLeader),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(ReadError::QuorumLost),
            Err(RaftError::Fatal(_)) => Err(ReadError::Shutdown),
        }
    }
}
