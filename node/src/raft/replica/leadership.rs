//! Leadership: the monitor that publishes a lost quorum and campaigns early when the leader
//! falls silent, and the planned leadership transfer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ServerState;

use super::Replica;
use crate::raft::clock::jitter;
use crate::raft::error::MembershipError;
use crate::raft::types::Member;
use crate::raft::types::NodeId;
use crate::raft::wire::PeerMethod;

/// How much longer than the leader lease the election watchdog waits (see
/// [`Replica::monitor_leadership`]).
const WATCHDOG_MARGIN: Duration = Duration::from_millis(200);

impl Replica {
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
            let (leading, lost) = {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                let leading = m.current_leader == Some(self.id);
                (leading, m.millis_since_quorum_ack.filter(|ms| leading && *ms > self.election_max.as_millis() as u64))
            };
            self.quorum_lost.send_if_modified(|current| {
                let changed = current.is_some() != lost.is_some();
                *current = lost;
                changed
            });
            if leading {
                // A leader hears itself: once deposed, it waits a whole lease like any follower
                // instead of campaigning at once on the age of its last contact as a follower
                // (a deposed leader of 4 minutes did, 257 s "silent").
                self.leader_contacted();
                continue;
            }
            if !self.resume_elections_if_due() {
                continue;
            }
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
        if self.transferring.swap(true, Ordering::AcqRel) {
            return Err(MembershipError::Invalid("a leadership transfer is already in progress".into()));
        }
        // From here on the guard restores proposals and heartbeats however this ends: a
        // result, an error, or the caller dropping this future (its deadline passed or it
        // disconnected), which would otherwise leave the leader refusing every write and
        // silent to its followers.
        let _resume = TransferGuard { replica: self };
        self.raft.runtime_config().heartbeat(false);
        self.transfer_leader_inner(target, &member).await
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

/// Ends a leadership transfer when dropped: heartbeats resume and the leader proposes again.
struct TransferGuard<'a> {
    replica: &'a Replica,
}

impl Drop for TransferGuard<'_> {
    fn drop(&mut self) {
        self.replica.raft.runtime_config().heartbeat(true);
        let was_transferring = self.replica.transferring.swap(false, Ordering::AcqRel);
        assert!(was_transferring, "one transfer guard per transfer");
    }
}
