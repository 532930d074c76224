//! `Replica`: one node's handle on the replicated ledger. The API calls it to write, to read
//! linearizably, and to change membership; it decides locally whether to propose (leader),
//! forward (follower, hop limit 1) or wait (election in progress).
//!
//! openraft 0.9 never steps a partitioned leader down, so the replica refuses writes itself
//! when it is leader but has not heard from a quorum for longer than the election timeout, and
//! every write has a deadline after which its outcome is "unknown" (safe to retry: ids are
//! idempotency keys).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use ledger_core::command::Envelope;
use ledger_core::journal::JournalRecord;
use openraft::ChangeMembers;
use openraft::ServerState;
use openraft::error::CheckIsLeaderError;
use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;

use crate::raft::batcher::Batcher;
use crate::raft::network::PeerCallError;
use crate::raft::network::PeerClients;
use crate::raft::network::PeerMethod;
use crate::raft::types::CommandResult;
use crate::raft::types::Member;
use crate::raft::types::NodeId;
use crate::raft::types::Payload;
use crate::raft::types::Raft;
use crate::raft::types::RaftMetrics;
use crate::raft::types::ShipReport;
use crate::store::StateReader;

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

pub struct Replica {
    pub id: NodeId,
    pub member: Member,
    pub raft: Raft,
    pub reader: StateReader,
    pub peers: Arc<PeerClients>,
    batcher: Batcher,
    committed_index: Arc<AtomicU64>,
    write_timeout: Duration,
    read_timeout: Duration,
    election_max: Duration,
    /// Set during a leadership transfer: this leader proposes nothing new.
    transferring: AtomicBool,
    /// When this node last accepted an AppendEntries (heartbeat or entries) from a leader, or
    /// last started an election.
    leader_contact: Mutex<Instant>,
    /// While this node leads without having heard from a quorum for longer than the election
    /// timeout: the milliseconds since the last quorum acknowledgement. Kept by
    /// [`Replica::monitor_leadership`], awaited by every pending write.
    quorum_lost: watch::Sender<Option<u64>>,
    pub started: Instant,
}

impl Replica {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: NodeId,
        member: Member,
        raft: Raft,
        reader: StateReader,
        peers: Arc<PeerClients>,
        batcher: Batcher,
        committed_index: Arc<AtomicU64>,
        write_timeout: Duration,
        read_timeout: Duration,
        election_max: Duration,
    ) -> Replica {
        Replica {
            id,
            member,
            raft,
            reader,
            peers,
            batcher,
            committed_index,
            write_timeout,
            read_timeout,
            election_max,
            transferring: AtomicBool::new(false),
            leader_contact: Mutex::new(Instant::now()),
            quorum_lost: watch::Sender::new(None),
            started: Instant::now(),
        }
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    pub fn committed_index(&self) -> u64 {
        self.committed_index.load(Ordering::Relaxed)
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Notes that a leader's AppendEntries was accepted (for [`Replica::monitor_leadership`]).
    pub fn leader_contacted(&self) {
        *self.leader_contact.lock().expect("lock is never poisoned") = Instant::now();
    }

    /// Every 50 ms, until the task is aborted:
    ///
    /// - as leader, publishes whether it lost its quorum (see `quorum_lost`), so that pending
    ///   writes fail fast without each polling the metrics;
    /// - as follower, starts an election as soon as the leader has been silent for a little
    ///   longer than its lease, instead of openraft 0.9's lease + this node's election timeout
    ///   (drawn once at start, up to `election_max`). Followers refuse votes while the lease
    ///   runs, so nobody can win earlier; `WATCHDOG_MARGIN` keeps a leadership transfer's
    ///   chosen candidate (asked to campaign 50 ms after the lease) ahead, and a fresh random
    ///   spread per attempt keeps the followers from campaigning at the same instant.
    pub async fn monitor_leadership(self: Arc<Self>, election_min: Duration) {
        let spread = self.election_max.saturating_sub(election_min) / 2;
        let draw = || self.election_max + WATCHDOG_MARGIN + jitter(self.id, spread);
        let mut threshold = draw();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let lost = {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                m.millis_since_quorum_ack
                    .filter(|ms| m.current_leader == Some(self.id) && *ms > self.election_max.as_millis() as u64)
            };
            self.quorum_lost.send_if_modified(|current| {
                let changed = current.is_some() != lost.is_some();
                *current = lost;
                changed
            });
            let silent = self.leader_contact.lock().expect("lock is never poisoned").elapsed();
            if silent < threshold {
                continue;
            }
            let eligible = {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                let membership = m.membership_config.membership();
                m.state == ServerState::Follower
                    && membership.voter_ids().any(|id| id == self.id)
                    && membership.voter_ids().count() > 1
            };
            if !eligible {
                continue;
            }
            tracing::info!(
                silent_ms = silent.as_millis() as u64,
                "no leader heard past its lease: starting an election"
            );
            if let Err(e) = self.raft.trigger().elect().await {
                tracing::debug!(error = %e, "could not start an election");
            }
            self.leader_contacted();
            threshold = draw();
        }
    }

    /// The member record of `node_id` in the current membership.
    pub fn member_of(&self, node_id: NodeId) -> Option<Member> {
        self.raft.metrics().borrow().membership_config.membership().get_node(&node_id).cloned()
    }

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
                let _ = tokio::time::timeout(Duration::from_millis(100), metrics.changed()).await;
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
            let _ = tokio::time::timeout(Duration::from_millis(100), metrics.changed()).await;
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

    /// Forms the Raft group with `members` (all voters). Returns false if it was already formed.
    pub async fn initialize(&self, members: BTreeMap<NodeId, Member>) -> Result<bool, MembershipError> {
        if !members.contains_key(&self.id) {
            return Err(MembershipError::Invalid(format!("members must include this node ({})", self.id)));
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(MembershipError::Raft(e.to_string())),
        }
    }

    fn require_leader(&self) -> Result<(), MembershipError> {
        if self.is_leader() {
            return Ok(());
        }
        let leader_id = self.metrics().current_leader;
        let leader_addr = leader_id.and_then(|id| self.member_of(id)).map(|m| m.client_addr).unwrap_or_default();
        Err(MembershipError::NotLeader { leader_id, leader_addr })
    }

    fn map_write_err(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> MembershipError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|m| m.client_addr).unwrap_or_default(),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => MembershipError::Invalid(c.to_string()),
            RaftError::Fatal(f) => MembershipError::Raft(f.to_string()),
        }
    }

    /// Adds `node_id` as a learner, waits until it caught up, then (unless `learner_only`)
    /// makes it a voter.
    pub async fn add_node(
        &self,
        node_id: NodeId,
        member: Member,
        learner_only: bool,
        catch_up: Duration,
    ) -> Result<(), MembershipError> {
        self.require_leader()?;
        let add = self.raft.add_learner(node_id, member, true);
        match tokio::time::timeout(catch_up, add).await {
            Ok(result) => {
                result.map_err(Self::map_write_err)?;
            }
            Err(_) => return Err(MembershipError::Timeout(catch_up.as_millis() as u64)),
        }
        if !learner_only {
            let voters = BTreeSet::from([node_id]);
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(voters), false)
                .await
                .map_err(Self::map_write_err)?;
        }
        Ok(())
    }

    /// Removes `node_id` (voter or learner) from the group.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<(), MembershipError> {
        self.require_leader()?;
        let membership = self.metrics().membership_config.membership().clone();
        let is_voter = membership.voter_ids().any(|id| id == node_id);
        let is_node = membership.get_node(&node_id).is_some();
        if !is_node {
            return Err(MembershipError::Invalid(format!("node {node_id} is not a member")));
        }
        if is_voter {
            if membership.voter_ids().count() <= 1 {
                return Err(MembershipError::Invalid("cannot remove the last voter".into()));
            }
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([node_id])), false)
                .await
                .map_err(Self::map_write_err)?;
        } else {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false)
                .await
                .map_err(Self::map_write_err)?;
        }
        Ok(())
    }

    /// Hands leadership to `target`: stop proposing and heartbeating so the followers' leader
    /// lease expires, wait until `target` has every entry, ask it to campaign, and wait for it
    /// to win. Heartbeats and proposals resume whatever happens.
    pub async fn transfer_leader(&self, target: NodeId) -> Result<NodeId, MembershipError> {
        self.require_leader()?;
        if target == self.id {
            return Ok(self.id);
        }
        let membership = self.metrics().membership_config.membership().clone();
        if !membership.voter_ids().any(|id| id == target) {
            return Err(MembershipError::Invalid(format!("node {target} is not a voter")));
        }
        let member = membership.get_node(&target).cloned().expect("voters have nodes");
        self.transferring.store(true, Ordering::Release);
        self.raft.runtime_config().heartbeat(false);
        let result = self.transfer_leader_inner(target, &member).await;
        self.raft.runtime_config().heartbeat(true);
        self.transferring.store(false, Ordering::Release);
        result
    }

    async fn transfer_leader_inner(&self, target: NodeId, member: &Member) -> Result<NodeId, MembershipError> {
        let lease = self.election_max;
        let wait = self.raft.wait(Some(lease * 4));
        // The target must hold every entry, or it cannot win.
        wait.metrics(
            |m| {
                let last = m.last_log_index;
                m.replication.as_ref().and_then(|r| r.get(&target).cloned()).flatten().map(|l| l.index) >= last
            },
            "target caught up",
        )
        .await
        .map_err(|e| MembershipError::Raft(e.to_string()))?;
        // Followers reject votes while the leader lease (election_timeout_max) is valid.
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        let campaigned: Result<Result<(), String>, _> =
            self.peers.call(target, member, PeerMethod::Campaign, &(), lease).await;
        match campaigned {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(MembershipError::Raft(e)),
            Err(e) => return Err(MembershipError::Raft(e.to_string())),
        }
        let m = self
            .raft
            .wait(Some(lease * 3))
            .metrics(|m| m.current_leader.is_some() && m.current_leader != Some(self.id), "new leader")
            .await
            .map_err(|_| MembershipError::Timeout((lease * 3).as_millis() as u64))?;
        Ok(m.current_leader.expect("checked above"))
    }
}

/// How much longer than the leader lease the election watchdog waits (see
/// [`Replica::monitor_leadership`]).
const WATCHDOG_MARGIN: Duration = Duration::from_millis(200);

/// A pseudo-random duration below `spread`, different per node and per call.
fn jitter(id: NodeId, spread: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(nanos) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let spread_ms = spread.as_millis() as u64;
    if spread_ms == 0 { Duration::ZERO } else { Duration::from_millis((mixed >> 11) % spread_ms) }
}

/// Longest wait for one forwarded write (the leader may be partitioned from us).
const FORWARD_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Milliseconds since the Unix epoch: the leader's clock, stamped into entries.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
