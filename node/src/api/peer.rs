//! The `RaftPeer` service, on the peer port: openraft RPCs, write forwarding, read indexes and
//! leadership hand-over. Requests for another Raft group or another node are refused (a leader
//! replicating to itself through a wrong address would otherwise panic openraft).

use std::sync::Arc;

use ledger_core::codec;
use ledger_core::command::Envelope;
use ledger_proto::v1::peer::RaftReply;
use ledger_proto::v1::peer::RaftRequest;
use ledger_proto::v1::peer::SnapshotPart;
use ledger_proto::v1::peer::raft_peer_server::RaftPeer;
use openraft::error::Fatal;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use crate::api::auth::Auth;
use crate::raft::network::SnapshotHead;
use crate::raft::replica::Replica;
use crate::raft::types::NodeId;
use crate::raft::types::Snapshot;
use crate::raft::types::TypeConfig;
use crate::store::snapshot::StreamCheck;

/// How often a snapshot chunk call that is still running (installing) renews the leader
/// contact that keeps this node from campaigning.
const INSTALL_CONTACT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub struct PeerService {
    pub replica: Arc<Replica>,
    pub cluster: String,
    pub auth: Auth,
}

impl PeerService {
    fn open<T: DeserializeOwned>(&self, request: Request<RaftRequest>) -> Result<(NodeId, T), Status> {
        self.auth.require_node(&request)?;
        self.check(request.into_inner())
    }

    /// A request for this node of this group, decoded.
    fn check<T: DeserializeOwned>(&self, request: RaftRequest) -> Result<(NodeId, T), Status> {
        if request.cluster != self.cluster {
            return Err(Status::failed_precondition(format!(
                "this node belongs to raft group {:?}, not {:?}",
                self.cluster, request.cluster
            )));
        }
        if request.to != self.replica.id {
            return Err(Status::failed_precondition(format!(
                "this is node {}, not node {} (wrong address in membership?)",
                self.replica.id, request.to
            )));
        }
        let payload = codec::decode(&request.payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable peer request: {e}")))?;
        Ok((request.from, payload))
    }
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftReply>, Status> {
    Ok(Response::new(RaftReply { payload: codec::encode(value) }))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (_, rpc): (_, AppendEntriesRequest<TypeConfig>) = self.open(request)?;
        // A request from the leader we follow (or a newer one) is contact, as in Raft, whether
        // or not we answer in time. The leader gives up on an AppendEntries after one heartbeat
        // interval and this handler is then dropped: counting contact only on an answer made a
        // follower whose disk was busy for a moment (a 100 MB checkpoint at 1 M accounts)
        // campaign against a healthy leader (docs/benchmarks.md section 0).
        let current = self.replica.raft.metrics().borrow().vote;
        if rpc.vote.is_committed() && rpc.vote >= current {
            self.replica.leader_contacted();
        }
        let response = self.replica.raft.append_entries(rpc).await;
        // From the current leader (a deposed one gets HigherVote): it is alive.
        if matches!(&response, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.replica.leader_contacted();
        }
        reply(&response)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (_, rpc): (_, VoteRequest<NodeId>) = self.open(request)?;
        reply(&self.replica.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (_, rpc): (_, InstallSnapshotRequest<TypeConfig>) = self.open(request)?;
        // A snapshot chunk is the leader talking to us, like an AppendEntries; the last chunk
        // also installs the whole state before it returns, which can take longer than a lease.
        // Without this the follower campaigned in the middle of every large install, deposed
        // the leader and restarted the transfer (the crash-storm soak found it). Contact is
        // renewed while the call runs, and once more if the leader's vote was accepted.
        let vote = rpc.vote;
        self.replica.leader_contacted();
        let response = renewing(self.replica.raft.install_snapshot(rpc), || self.replica.leader_contacted()).await;
        if matches!(&response, Ok(r) if r.vote == vote) {
            self.replica.leader_contacted();
        }
        reply(&response)
    }

    async fn stream_snapshot(&self, request: Request<Streaming<SnapshotPart>>) -> Result<Response<RaftReply>, Status> {
        self.auth.require_node(&request)?;
        self.receive_snapshot(request.into_inner()).await
    }

    async fn propose(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (_, envelope): (_, Envelope) = self.open(request)?;
        reply(&self.replica.propose_local(envelope).await)
    }

    async fn read_index(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (_, ()): (_, ()) = self.open(request)?;
        reply(&self.replica.read_index_local().await)
    }

    async fn campaign(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (from, ()): (_, ()) = self.open(request)?;
        tracing::info!(from, "asked to campaign for leadership");
        let result: Result<(), String> = self.replica.raft.trigger().elect().await.map_err(|e| e.to_string());
        reply(&result)
    }
}

impl PeerService {
    /// Receives a snapshot stream (`StreamSnapshot`, whatever carried it): the first part
    /// carries the request, the rest the snapshot's bytes, checked as they arrive, then
    /// installed.
    pub async fn receive_snapshot(
        &self,
        mut parts: impl Stream<Item = Result<SnapshotPart, Status>> + Unpin + Send,
    ) -> Result<Response<RaftReply>, Status> {
        use tokio::io::AsyncWriteExt;

        let head = parts.next().await.transpose()?.and_then(|part| part.request);
        let head = head.ok_or_else(|| Status::invalid_argument("a snapshot stream starts with its request"))?;
        let (from, (vote, meta, len)): (NodeId, SnapshotHead) = self.check(head)?;
        // A deposed leader is answered at once, before it sends gigabytes (openraft's install
        // checks the vote again).
        let mine = self.replica.raft.metrics().borrow().vote;
        if vote < mine {
            return reply(&Ok::<_, Fatal<NodeId>>(SnapshotResponse { vote: mine }));
        }
        let receiving = self.replica.receiving_snapshot();
        let started = std::time::Instant::now();
        let mut file = self
            .replica
            .raft
            .begin_receiving_snapshot()
            .await
            .map_err(|e| Status::unavailable(format!("cannot receive a snapshot now: {e}")))?;
        let mut received = 0u64;
        // Checked as it arrives: a damaged stream handed to the install would fail it, and a
        // failed install is a storage error that stops this node.
        let mut check = StreamCheck::default();
        let copied: Result<(), Status> = async {
            while let Some(part) = parts.next().await.transpose()? {
                received += part.data.len() as u64;
                if received > len {
                    return Err(Status::invalid_argument(format!("snapshot stream longer than its {len} bytes")));
                }
                check.feed(&part.data).map_err(|e| {
                    Status::data_loss(format!("damaged snapshot stream at byte {received} of {len}: {e}"))
                })?;
                file.write_all(&part.data).await.map_err(|e| Status::internal(format!("writing the snapshot: {e}")))?;
                receiving.renew();
            }
            if received != len {
                return Err(Status::aborted(format!("snapshot stream ended at {received} of {len} bytes")));
            }
            check.finish().map_err(|e| Status::data_loss(format!("damaged snapshot stream: {e}")))?;
            file.flush().await.map_err(|e| Status::internal(format!("writing the snapshot: {e}")))
        }
        .await;
        if let Err(status) = copied {
            // Free the space now; the state machine removes the file at its next install.
            let _ = file.set_len(0).await;
            tracing::warn!(from, snapshot = %meta.snapshot_id, received, len, %status, "snapshot stream refused");
            return Err(status);
        }
        let received_ms = started.elapsed().as_millis() as u64;
        if crate::failpoint::armed(crate::failpoint::SNAPSHOT_RECEIVE_SLOW) {
            tracing::warn!(snapshot = %meta.snapshot_id, "failpoint: holding a received snapshot before installing it");
            let hold = std::time::Duration::from_millis(crate::failpoint::SNAPSHOT_RECEIVE_SLOW_MS);
            renewing(tokio::time::sleep(hold), || receiving.renew()).await;
        }
        let snapshot_id = meta.snapshot_id.clone();
        let install = self.replica.raft.install_full_snapshot(vote, Snapshot { meta, snapshot: file });
        let response = renewing(install, || receiving.renew()).await;
        tracing::info!(
            from,
            snapshot = %snapshot_id,
            bytes = len,
            received_ms,
            installed_ms = started.elapsed().as_millis() as u64 - received_ms,
            ok = response.is_ok(),
            "snapshot received"
        );
        reply(&response)
    }
}

/// Awaits `call`, calling `renew` every `INSTALL_CONTACT_EVERY` while it runs: an install
/// (or a held stream) outlasting a lease must not read as the leader gone silent.
async fn renewing<F: std::future::Future>(call: F, renew: impl Fn()) -> F::Output {
    tokio::pin!(call);
    loop {
        tokio::select! {
            output = &mut call => return output,
            () = tokio::time::sleep(INSTALL_CONTACT_EVERY) => renew(),
        }
    }
}
