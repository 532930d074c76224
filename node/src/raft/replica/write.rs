//! The write path: propose on the leader through the batcher, forward from a follower (hop
//! limit 1), and the standby leader's shipped entries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ledger_core::command::Envelope;
use ledger_core::journal::JournalRecord;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use tokio::time::Instant as TokioInstant;

use super::Replica;
use crate::raft::error::WriteError;
use crate::raft::types::CommandResult;
use crate::raft::types::Payload;
use crate::raft::types::ShipReport;
use crate::raft::wire::PeerCallError;
use crate::raft::wire::PeerMethod;

/// Longest wait for one forwarded write (the leader may be partitioned from us).
const FORWARD_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

impl Replica {
    /// Applies one command through Raft: proposed here if this node leads, forwarded to the
    /// leader otherwise. Returns once it is applied (on the leader) or fails.
    pub async fn write(&self, envelope: Envelope) -> Result<CommandResult, WriteError> {
        let deadline = TokioInstant::now() + self.write_timeout;
        match tokio::time::timeout_at(deadline, self.write_until(envelope, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(WriteError::OutcomeUnknown {
                reason: format!("not applied within {} ms", self.write_timeout.as_millis()),
            }),
        }
    }

    async fn write_until(&self, envelope: Envelope, deadline: TokioInstant) -> Result<CommandResult, WriteError> {
        let mut metrics = self.raft.metrics();
        loop {
            let leader = metrics.borrow().current_leader;
            let retry = match leader {
                Some(leader_id) if leader_id == self.id => match self.propose_local(envelope.clone()).await {
                    Err(WriteError::NotLeader { .. }) => true,
                    other => return other,
                },
                Some(leader_id) => {
                    let Some(member) = self.member_of(leader_id) else {
                        return Err(WriteError::NotLeader { leader_id: Some(leader_id) });
                    };
                    // One forwarding attempt is bounded: a leader we cannot reach (a partition)
                    // must not hold the caller for the whole write deadline; the client
                    // retries elsewhere (the ids make that safe).
                    let remaining =
                        deadline.saturating_duration_since(TokioInstant::now()).min(FORWARD_ATTEMPT_TIMEOUT);
                    let call = self.peers.call(leader_id, &member, PeerMethod::Propose, &envelope, remaining);
                    let Ok(forwarded) = tokio::time::timeout(remaining, call).await else {
                        return Err(WriteError::OutcomeUnknown {
                            reason: format!("forwarding to leader {leader_id} timed out"),
                        });
                    };
                    let forwarded: Result<Result<CommandResult, WriteError>, _> = forwarded;
                    match forwarded {
                        Ok(Err(WriteError::NotLeader { .. } | WriteError::NoLeader)) => true,
                        Err(PeerCallError::Shunned { target, failed_ms_ago }) => {
                            return Err(WriteError::LeaderUnreachable { leader_id: target, failed_ms_ago });
                        }
                        Ok(result) => return result,
                        Err(e) if e.is_unreachable() => {
                            tracing::debug!(error = %e, "leader unreachable; waiting for a new one");
                            true
                        }

                        Err(e) => return Err(WriteError::Internal(e.to_string())),
                    }
                }
                None => true,
            };
            if retry {
                // Wait for the next metrics change (a new leader), but poll at least every
                // 100 ms: an unreachable leader may not change metrics for a while.
                // Raft stopped (the node is shutting down): `changed` fails at once, and this
                // loop would spin a core until the deadline (the simulator found it).
                if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(100), metrics.changed()).await {
                    return Err(WriteError::Shutdown);
                }
                if TokioInstant::now() >= deadline {
                    return Err(WriteError::OutcomeUnknown { reason: "no leader accepted the write in time".into() });
                }
            }
        }
    }

    /// Proposes on this node, which must be the leader (peer `Propose` calls this: hop limit 1).
    pub async fn propose_local(&self, envelope: Envelope) -> Result<CommandResult, WriteError> {
        if self.transferring.load(Ordering::Acquire) {
            return Err(WriteError::NoLeader);
        }
        {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if m.current_leader != Some(self.id) {
                return Err(WriteError::NotLeader { leader_id: m.current_leader });
            }
            if let Some(ms) = m.millis_since_quorum_ack
                && ms > self.election_max.as_millis() as u64
            {
                return Err(WriteError::QuorumLost { millis_since_quorum_ack: ms });
            }
        }
        let mut quorum_lost = self.quorum_lost.subscribe();
        let receiver = self.batcher.submit(envelope)?;
        // A write already proposed waits for its entry to commit; if this leader loses its
        // quorum meanwhile (it is partitioned, and a new leader may already serve the other
        // side), the caller learns it at once instead of at the write deadline, and retries
        // at another node. The outcome is unknown (the entry may still commit), which the ids
        // make safe to retry.
        //
        // Likewise when leadership moves while the write is pending: it is not forwarded from
        // here, as this node may be the one cut off from the others (a leader isolated one
        // way learns of its successor but cannot reach it); the caller retries at the new
        // leader directly.
        tokio::select! {
            result = receiver => match result {
                Ok(Err(WriteError::NotLeader { leader_id })) => Err(WriteError::OutcomeUnknown {
                    reason: match leader_id {
                        Some(id) => format!("leadership moved to node {id} while the write was pending"),
                        None => "this node lost leadership while the write was pending".into(),
                    },
                }),
                Ok(result) => result,
                Err(_) => Err(WriteError::Shutdown),
            },
            Ok(ms) = quorum_lost.wait_for(Option::is_some) => Err(WriteError::OutcomeUnknown {
                reason: format!(
                    "the leader lost contact with its quorum ({} ms without an acknowledgement) while the write was pending",
                    ms.unwrap_or_default()
                ),
            }),
        }
    }

    /// Proposes shipped journal records as one entry (standby leader only) and returns what
    /// the state machine made of them.
    pub async fn propose_shipped(&self, records: Vec<JournalRecord>) -> Result<ShipReport, WriteError> {
        let payload = Payload::Shipped { records: Arc::new(records) };
        match tokio::time::timeout(self.write_timeout, self.raft.client_write(payload)).await {
            Err(_) => Err(WriteError::OutcomeUnknown { reason: "shipped entry not applied in time".into() }),
            Ok(Ok(response)) => Ok(response.data.shipped.unwrap_or_default()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(WriteError::NotLeader { leader_id: f.leader_id })
            }
            Ok(Err(e)) => Err(WriteError::Internal(e.to_string())),
        }
    }
}
