//! Membership: forming the group, adding a node (learner, then voter), removing one.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;

use super::Replica;
use crate::raft::error::MembershipError;
use crate::raft::types::Member;
use crate::raft::types::NodeId;

impl Replica {
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

    pub(super) fn require_leader(&self) -> Result<(), MembershipError> {
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
}
