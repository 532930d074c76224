//! The `Cluster` service: status, forming a site's Raft group, membership and leadership.
//! Every change is recorded in the journal with the operator's identity.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use ledger_core::command::AdminEvent;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::command::Outcome;
use ledger_core::command::Refusal;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_core::site::SiteState;
use ledger_proto::ErrorCode;
use ledger_proto::v1 as pb;
use ledger_proto::v1::cluster_server::Cluster;
use openraft::ServerState;
use tonic::Request;
use tonic::Response;

use super::auth::Auth;
use super::convert;
use super::status::ApiError;
use super::status::ApiResult;
use crate::dr::DrMonitor;
use crate::raft::replica::Replica;
use crate::raft::types::Member;
use crate::security::authz::Action;
use crate::security::authz::Caller;

/// Default wait for a new learner to catch up before it is made a voter.
const CATCH_UP_TIMEOUT_MS_DEFAULT: u64 = 60_000;

pub struct ClusterService {
    pub replica: Arc<Replica>,
    pub auth: Auth,
    pub site: String,
    pub version: &'static str,
    pub monitor: Arc<DrMonitor>,
}

fn member_from_proto(m: &pb::Member) -> Result<(u64, Member), ApiError> {
    if m.node_id == 0 || m.client_addr.is_empty() || m.peer_addr.is_empty() || m.zone.is_empty() {
        return Err(ApiError::invalid(
            ErrorCode::MemberInvalid,
            format!("member {m:?} needs node_id >= 1, zone, client_addr and peer_addr"),
        ));
    }
    Ok((m.node_id, Member { zone: m.zone.clone(), client_addr: m.client_addr.clone(), peer_addr: m.peer_addr.clone() }))
}

impl ClusterService {
    fn site_info(&self, site: &SiteState) -> pb::SiteInfo {
        pb::SiteInfo {
            name: if site.name.is_empty() { self.site.clone() } else { site.name.clone() },
            role: site.role.name().into(),
            epoch: site.epoch,
            fenced: site.fenced,
            active_site: site.active_site.clone(),
            active_epoch: site.active_epoch,
            upstream: site.upstream.clone(),
            watermark_seq: site.watermark.seq,
            watermark_time_ms: site.watermark.ledger_time_ms,
            halted: site.watermark.halted.clone().unwrap_or_default(),
            dual_control: site.dual_control,
            data_key_id: site.data_key_id,
            dr_lag: Some(self.monitor.to_proto()),
            epoch_changed_at_seq: site.epoch_changed_at_seq,
        }
    }

    /// Records an admin event in the journal (best effort: the change itself already happened
    /// in Raft; a failure to record is reported to the operator).
    async fn record(&self, caller: &Caller, event: AdminEvent) -> Result<(), ApiError> {
        let envelope = Envelope { caller: caller.name.clone(), command: Command::Admin(event) };
        let result = self.replica.write(envelope).await?;
        match result.outcome {
            Outcome::Refused(Refusal::SiteNotWritable { .. }) => Ok(()),
            Outcome::Refused(refusal) => Err(ApiError::Refused(refusal)),
            _ => Ok(()),
        }
    }

    fn members(&self) -> Vec<pb::Member> {
        let metrics = self.replica.metrics();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, member)| pb::Member {
                node_id: *id,
                zone: member.zone.clone(),
                client_addr: member.client_addr.clone(),
                peer_addr: member.peer_addr.clone(),
                voter: voters.contains(id),
                matched_index: metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map_or(0, |l| l.index),
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, request: Request<pb::StatusRequest>) -> ApiResult<pb::NodeStatus> {
        self.auth.authorize(&request, Action::ReadStatus)?;
        let m = self.replica.metrics();
        let meta = self.replica.reader.meta();
        let site = &meta.site;
        let raft_role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let leader_client_addr =
            m.current_leader.and_then(|id| self.replica.member_of(id)).map(|l| l.client_addr).unwrap_or_default();
        let startup = self.replica.reader.startup();
        let (transfers_indexed, accounts, history_rows) = self.replica.reader.sizes();
        Ok(Response::new(pb::NodeStatus {
            node_id: self.replica.id,
            zone: self.replica.member.zone.clone(),
            client_addr: self.replica.member.client_addr.clone(),
            peer_addr: self.replica.member.peer_addr.clone(),
            raft_role: raft_role.into(),
            raft_term: m.current_term,
            leader_id: m.current_leader.unwrap_or(0),
            leader_client_addr,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: self.replica.committed_index(),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
            members: self.members(),
            journal_head: Some(convert::journal_head_to_proto(&meta.journal)),
            site: Some(self.site_info(site)),
            millis_since_quorum_ack: m.millis_since_quorum_ack.unwrap_or(0),
            uptime_ms: self.replica.started.elapsed().as_millis() as u64,
            version: self.version.into(),
            data_dir_bytes: self.replica.reader.size_on_disk(),
            checkpoint_index_at_start: startup.checkpoint_index,
            committed_index_at_start: startup.committed_at_start,
            entries_reapplied_at_start: startup.reapplied.load(std::sync::atomic::Ordering::Relaxed),
            transfers_indexed: transfers_indexed as u64,
            accounts: accounts as u64,
            history_rows_indexed: history_rows as u64,
            resident_bytes: crate::metrics::resident_bytes(),
        }))
    }

    async fn bootstrap(&self, request: Request<pb::BootstrapRequest>) -> ApiResult<pb::BootstrapResponse> {
        let caller = self.auth.authorize(&request, Action::OperateCluster)?;
        let request = request.into_inner();
        if request.site != self.site {
            return Err(ApiError::invalid(
                ErrorCode::SiteMismatch,
                format!("this node belongs to site {:?}, not {:?}", self.site, request.site),
            )
            .into());
        }
        let role = match request.role.as_str() {
            "active" => SiteRole::Active,
            "standby" => SiteRole::Standby,
            other => {
                return Err(ApiError::invalid(
                    ErrorCode::RoleInvalid,
                    format!("role {other:?} is not active or standby"),
                )
                .into());
            }
        };
        let mut members = BTreeMap::new();
        for m in &request.members {
            let (id, member) = member_from_proto(m)?;
            if members.insert(id, member).is_some() {
                return Err(ApiError::invalid(ErrorCode::MemberInvalid, format!("node {id} listed twice")).into());
            }
        }
        let formed = self.replica.initialize(members).await?;
        let command = Command::Site(SiteCommand::Bootstrap {
            name: request.site.clone(),
            role,
            epoch: request.epoch,
            upstream: request.upstream.clone(),
            dual_control: request.dual_control,
        });
        let result = self.replica.write(Envelope { caller: caller.name.clone(), command }).await?;
        let message = match &result.outcome {
            Outcome::Site(site) => {
                format!("site {} bootstrapped as {} at epoch {}", site.name, site.role.name(), site.epoch)
            }
            Outcome::Refused(Refusal::SiteOperation { reason }) if !formed => reason.clone(),
            Outcome::Refused(refusal) => return Err(ApiError::Refused(refusal.clone()).into()),
            other => return Err(ApiError::Internal(format!("unexpected bootstrap outcome {other:?}")).into()),
        };
        tracing::info!(caller = %caller.name, %message, "bootstrap");
        Ok(Response::new(pb::BootstrapResponse { formed: matches!(result.outcome, Outcome::Site(_)), message }))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> ApiResult<pb::MembershipResponse> {
        let caller = self.auth.authorize(&request, Action::OperateCluster)?;
        let started = Instant::now();
        let request = request.into_inner();
        let node = request.node.ok_or_else(|| ApiError::invalid(ErrorCode::MemberInvalid, "node is required"))?;
        let (id, member) = member_from_proto(&node)?;
        let timeout_ms =
            if request.catch_up_timeout_ms == 0 { CATCH_UP_TIMEOUT_MS_DEFAULT } else { request.catch_up_timeout_ms };
        self.replica.add_node(id, member.clone(), request.learner_only, Duration::from_millis(timeout_ms)).await?;
        self.record(
            &caller,
            AdminEvent::NodeAdded {
                node_id: id,
                zone: member.zone,
                addr: member.peer_addr,
                voter: !request.learner_only,
            },
        )
        .await?;
        Ok(Response::new(pb::MembershipResponse {
            members: self.members(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }))
    }

    async fn remove_node(&self, request: Request<pb::RemoveNodeRequest>) -> ApiResult<pb::MembershipResponse> {
        let caller = self.auth.authorize(&request, Action::OperateCluster)?;
        let started = Instant::now();
        let node_id = request.into_inner().node_id;
        self.replica.remove_node(node_id).await?;
        self.record(&caller, AdminEvent::NodeRemoved { node_id }).await?;
        Ok(Response::new(pb::MembershipResponse {
            members: self.members(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }))
    }

    async fn site_operation(&self, request: Request<pb::SiteOperationRequest>) -> ApiResult<pb::SiteOperationResponse> {
        let caller = self.auth.authorize(&request, Action::OperateSite)?;
        let started = Instant::now();
        let r = request.into_inner();
        let kind = pb::SiteOperationKind::try_from(r.kind).map_err(|_| {
            ApiError::invalid(ErrorCode::OperationInvalid, format!("unknown site operation {}", r.kind))
        })?;
        let command = match kind {
            pb::SiteOperationKind::Unspecified => {
                return Err(ApiError::invalid(ErrorCode::OperationInvalid, "a site operation kind is required").into());
            }
            pb::SiteOperationKind::Fence => SiteCommand::Fence,
            pb::SiteOperationKind::Unfence => SiteCommand::Unfence,
            pb::SiteOperationKind::Promote => {
                SiteCommand::Promote { epoch: r.epoch, forced: r.forced, request_id: r.request_id.clone() }
            }
            pb::SiteOperationKind::Demote => SiteCommand::Demote {
                active_site: r.active_site.clone(),
                epoch: r.epoch,
                upstream: r.upstream.clone(),
                request_id: r.request_id.clone(),
            },
            pb::SiteOperationKind::Resync => SiteCommand::Resync {
                active_site: r.active_site.clone(),
                epoch: r.epoch,
                upstream: r.upstream.clone(),
                request_id: r.request_id.clone(),
            },
            pb::SiteOperationKind::ObserveEpoch => {
                SiteCommand::ObserveEpoch { active_site: r.active_site.clone(), epoch: r.epoch }
            }
            pb::SiteOperationKind::Approve => {
                SiteCommand::Approve { request_id: r.request_id.clone(), action: r.action.clone() }
            }
            pb::SiteOperationKind::RotateKey => {
                SiteCommand::RotateKey { key_id: r.key_id, request_id: r.request_id.clone() }
            }
        };
        let name = command.name();
        let result =
            self.replica.write(Envelope { caller: caller.name.clone(), command: Command::Site(command) }).await?;
        let site = match result.outcome {
            Outcome::Site(site) => site,
            Outcome::Refused(refusal) => return Err(ApiError::Refused(refusal).into()),
            other => return Err(ApiError::Internal(format!("unexpected site outcome {other:?}")).into()),
        };
        tracing::warn!(caller = %caller.name, operation = name, role = site.role.name(), epoch = site.epoch, "site operation");
        Ok(Response::new(pb::SiteOperationResponse {
            site: Some(self.site_info(&site)),
            journal_seq: result.journal_seq,
            elapsed_ms: started.elapsed().as_millis() as u64,
            journal_head: Some(convert::journal_head_to_proto(&self.replica.reader.journal_head())),
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> ApiResult<pb::TransferLeaderResponse> {
        let caller = self.auth.authorize(&request, Action::OperateCluster)?;
        let started = Instant::now();
        let target = request.into_inner().target_node_id;
        let from = self.replica.id;
        let new_leader = self.replica.transfer_leader(target).await?;
        self.record(&caller, AdminEvent::LeaderTransferred { from, to: new_leader }).await?;
        Ok(Response::new(pb::TransferLeaderResponse {
            new_leader_id: new_leader,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }))
    }
}
