//! The Raft network over gRPC: openraft's `RaftNetworkFactory`/`RaftNetwork` on the client
//! side, and the shared peer-client cache used for write forwarding and read indexes.
//!
//! Payloads are versioned postcard encodings of openraft's own request types; a reply carries
//! `Result<Response, RaftError>` as the remote Raft returned it. A gRPC status is only ever a
//! transport failure: `UNAVAILABLE` (refused, reset, unreachable) becomes `Unreachable`, so
//! openraft backs off instead of retrying on every heartbeat.
//!
//! The peer clients also remember which peers this node could not reach over the Raft
//! protocol RPCs: a node cut off from the leader (a leader isolated one way, which learns of
//! its successor but cannot send to it) refuses to forward writes and read-index requests to
//! it at once, so the client goes to the leader directly instead of waiting out a timeout.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use ledger_core::codec;
use ledger_proto::v1::peer::RaftRequest;
use ledger_proto::v1::peer::SnapshotPart;
use openraft::OptionalSend;
use openraft::StorageIOError;
use openraft::error::Fatal;
use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::Backoff;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::raft::types::Member;
use crate::raft::types::NodeId;
use crate::raft::types::Snapshot;
use crate::raft::types::SnapshotMeta;
use crate::raft::types::TypeConfig;
use crate::raft::types::Vote;
use crate::raft::wire::PeerCallError;
use crate::raft::wire::PeerMethod;
use crate::raft::wire::PeerWire;
use crate::store::snapshot;

/// Backoff for an unreachable peer: from 100 ms, doubling, capped at 500 ms. Heartbeats share
/// the replication stream and are dropped during a backoff, so the cap stays well under the
/// leader lease (1 s and up): with 2 s, a follower that failed a few RPCs in a row (a busy
/// moment) could hear nothing for a whole lease and campaign.
const BACKOFF_START_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 500;
/// How long after a failed Raft RPC to a peer (with no success since) forwarded writes and
/// read-index requests to it are refused without trying.
const SHUN_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Bytes of snapshot stream per `SnapshotPart` message, and how many parts the reader may
/// have ready ahead of the network: 8 MiB in flight, well under the 16 MiB message limit.
const SNAPSHOT_PART_BYTES: usize = 2 * 1024 * 1024;
const SNAPSHOT_PARTS_AHEAD: usize = 4;

/// The first part of a snapshot stream: the leader's vote, the snapshot's meta, and the
/// stream's length (the receiver installs nothing that came short).
pub type SnapshotHead = (Vote, SnapshotMeta, u64);

/// Peer channels, cached per (node, address): openraft asks for a client per replication
/// stream, per election and per read-index round.
pub struct PeerClients {
    pub cluster: String,
    pub self_id: NodeId,
    wire: Arc<dyn PeerWire>,
    /// Address overrides by node id (fault proxies in chaos drills).
    routes: BTreeMap<NodeId, String>,
    reach: Mutex<HashMap<NodeId, Reach>>,
    /// Snapshots being sent, or sent a moment ago: the log after each is kept (see
    /// [`PeerClients::log_held_from`]).
    sending_snapshots: Mutex<Vec<SnapshotSend>>,
}

/// A snapshot sent to `target` whose last entry is `index`; `ended` once the send returned.
#[derive(Clone, Copy, Debug)]
struct SnapshotSend {
    target: NodeId,
    index: u64,
    ended: Option<Instant>,
}

/// How long after a snapshot send the log after it stays, unless the follower got past it.
/// Covers the moment between the follower's install and the leader replicating the next
/// entries, and an election in between (a new leader starts replicating from scratch).
const LOG_HELD_AFTER_SEND: Duration = Duration::from_secs(60);

/// Keeps the Raft log after a snapshot being sent (see [`PeerClients::hold_log_after`]).
pub struct LogHold<'a> {
    clients: &'a PeerClients,
    target: NodeId,
    index: u64,
}

impl Drop for LogHold<'_> {
    fn drop(&mut self) {
        let mut sending = self.clients.sending_snapshots.lock().expect("lock is never poisoned");
        if let Some(send) =
            sending.iter_mut().find(|s| s.target == self.target && s.index == self.index && s.ended.is_none())
        {
            send.ended = Some(Instant::now());
        }
    }
}

/// The outcome of the last Raft protocol RPCs to one peer.
#[derive(Clone, Copy, Debug, Default)]
struct Reach {
    last_ok: Option<Instant>,
    last_failure: Option<Instant>,
}

impl PeerClients {
    pub fn new(
        cluster: String,
        self_id: NodeId,
        wire: Arc<dyn PeerWire>,
        routes: BTreeMap<NodeId, String>,
    ) -> Arc<PeerClients> {
        Arc::new(PeerClients {
            cluster,
            self_id,
            wire,
            routes,
            reach: Mutex::new(HashMap::new()),
            sending_snapshots: Mutex::new(Vec::new()),
        })
    }

    /// Whether the last Raft protocol RPC to `target` failed, less than
    /// [`SHUN_AFTER_FAILURE`] ago, with no success since: how long ago it failed.
    pub fn unreachable(&self, target: NodeId) -> Option<Duration> {
        let reach = *self.reach.lock().expect("lock is never poisoned").get(&target)?;
        let failed = reach.last_failure?;
        if reach.last_ok.is_some_and(|ok| ok >= failed) {
            return None;
        }
        let ago = failed.elapsed();
        (ago < SHUN_AFTER_FAILURE).then_some(ago)
    }

    /// Records the outcome of a Raft protocol RPC. Forwarded writes and read indexes are not
    /// recorded: they can time out because the leader is slow, not unreachable.
    fn record(&self, target: NodeId, method: PeerMethod, ok: bool) {
        if !matches!(method, PeerMethod::AppendEntries | PeerMethod::Vote | PeerMethod::InstallSnapshot) {
            return;
        }
        let mut reach = self.reach.lock().expect("lock is never poisoned");
        let entry = reach.entry(target).or_default();
        if ok {
            entry.last_ok = Some(Instant::now());
        } else {
            entry.last_failure = Some(Instant::now());
        }
    }

    fn address(&self, target: NodeId, member: &Member) -> String {
        self.routes.get(&target).cloned().unwrap_or_else(|| member.peer_addr.clone())
    }

    /// Marks a snapshot to `target` whose last entry is `index` as being sent. The log after
    /// it is held while the send runs and for a while after (see [`Self::log_held_from`]).
    pub fn hold_log_after(&self, target: NodeId, index: u64) -> LogHold<'_> {
        self.sending_snapshots.lock().expect("lock is never poisoned").push(SnapshotSend {
            target,
            index,
            ended: None,
        });
        LogHold { clients: self, target, index }
    }

    /// How far the log must stay for the snapshots being sent or sent less than
    /// `LOG_HELD_AFTER_SEND` ago: from a send in progress, its last index; after a send, the
    /// follower's `matched` index (not below the snapshot's), so the log it still needs stays
    /// while it catches up. Otherwise the follower that installs the snapshot can find the
    /// entries it needs next purged and need another snapshot (at 2 M transfers a wiped
    /// follower took three in a row; at 10 M, where a send outlasts a checkpoint interval, it
    /// never caught up).
    pub fn log_held_from(&self, matched: impl Fn(NodeId) -> Option<u64>) -> Option<u64> {
        let mut sending = self.sending_snapshots.lock().expect("lock is never poisoned");
        sending.retain(|send| send.ended.is_none_or(|ended| ended.elapsed() < LOG_HELD_AFTER_SEND));
        sending
            .iter()
            .map(|send| match send.ended {
                None => send.index,
                Some(_) => matched(send.target).map_or(send.index, |m| m.max(send.index)),
            })
            .min()
    }

    /// Streams a snapshot to `target`: `head` first, then `len` bytes read from `source` (on
    /// a blocking thread, a few parts ahead of the network). Returns the receiver's answer
    /// once it has installed the snapshot, or refused the vote in `head`.
    pub async fn stream_snapshot(
        &self,
        target: NodeId,
        member: &Member,
        head: &SnapshotHead,
        mut source: Box<dyn std::io::Read + Send>,
    ) -> Result<Result<SnapshotResponse<NodeId>, Fatal<NodeId>>, PeerCallError> {
        let addr = self.address(target, member);
        let (parts, receiver) = tokio::sync::mpsc::channel(SNAPSHOT_PARTS_AHEAD);
        let request =
            RaftRequest { cluster: self.cluster.clone(), from: self.self_id, to: target, payload: codec::encode(head) };
        parts.try_send(SnapshotPart { request: Some(request), data: Vec::new() }).expect("a new channel has room");
        // Ends when the stream is read or the call is over (the receiver dropped). A read error
        // ends the stream short, and the follower refuses a short stream.
        let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            loop {
                let mut data = vec![0; SNAPSHOT_PART_BYTES];
                let mut filled = 0;
                while filled < data.len() {
                    match source.read(&mut data[filled..])? {
                        0 => break,
                        n => filled += n,
                    }
                }
                if filled == 0 {
                    return Ok(());
                }
                data.truncate(filled);
                if parts.blocking_send(SnapshotPart { request: None, data }).is_err() {
                    return Ok(());
                }
            }
        });
        let reply = self.wire.stream(target, &addr, receiver).await;
        if let Ok(Err(e)) = reading.await {
            tracing::warn!(target, error = %e, "reading the snapshot stream failed; the follower refuses it");
        }
        if reply.as_ref().map_or_else(PeerCallError::is_unreachable, |_| true) {
            self.record(target, PeerMethod::InstallSnapshot, reply.is_ok());
        }
        codec::decode(&reply?.payload).map_err(|e| PeerCallError::Decode { target, reason: e.to_string() })
    }

    /// Calls `method` on `target` with an encoded request; decodes the reply as `Resp`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        member: &Member,
        method: PeerMethod,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        if matches!(method, PeerMethod::Propose | PeerMethod::ReadIndex)
            && let Some(ago) = self.unreachable(target)
        {
            return Err(PeerCallError::Shunned { target, failed_ms_ago: ago.as_millis() as u64 });
        }
        let addr = self.address(target, member);
        let request = RaftRequest {
            cluster: self.cluster.clone(),
            from: self.self_id,
            to: target,
            payload: codec::encode(request),
        };
        let reply = self.wire.unary(target, &addr, method, request, timeout).await;
        let unreachable = matches!(&reply, Err(PeerCallError::Status { status, .. }) if matches!(status.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown | tonic::Code::DeadlineExceeded));
        if reply.is_ok() || unreachable {
            self.record(target, method, reply.is_ok());
        }
        codec::decode(&reply?.payload).map_err(|e| PeerCallError::Decode { target, reason: e.to_string() })
    }
}

/// openraft's factory of per-target network clients.
#[derive(Clone)]
pub struct PeerNetwork {
    pub clients: Arc<PeerClients>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerConnection {
        PeerConnection { target, member: node.clone(), clients: self.clients.clone() }
    }
}

pub struct PeerConnection {
    target: NodeId,
    member: Member,
    clients: Arc<PeerClients>,
}

impl PeerConnection {
    async fn raft_call<Req, Resp, E>(
        &self,
        method: PeerMethod,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned + std::error::Error,
    {
        let result: Result<Result<Resp, RaftError<NodeId, E>>, PeerCallError> =
            self.clients.call(self.target, &self.member, method, request, option.hard_ttl()).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e) if e.is_unreachable() => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.raft_call(PeerMethod::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.raft_call(PeerMethod::InstallSnapshot, &rpc, &option).await
    }

    /// The whole snapshot in one gRPC client stream, read from the files the state machine's
    /// manifest names (`store/snapshot.rs`): no copy is assembled first, and the parts are
    /// pipelined instead of one chunk per round trip. `option.hard_ttl()` (the
    /// `install_snapshot_timeout`) bounds the send and the follower's install together.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let meta = snapshot.meta;
        let file = snapshot.snapshot.into_std().await;
        let origin = std::path::PathBuf::from(format!("snapshot {}", meta.snapshot_id));
        let (source, len) = tokio::task::spawn_blocking(move || snapshot::open(file, &origin))
            .await
            .expect("opening a snapshot does not panic")
            .map_err(|e| {
                StreamingError::StorageError(StorageIOError::read_snapshot(Some(meta.signature()), &e).into())
            })?;
        let started = Instant::now();
        let _hold = self.clients.hold_log_after(self.target, meta.last_log_id.map_or(0, |l| l.index));
        let head = (vote, meta.clone(), len);
        let sending = self.clients.stream_snapshot(self.target, &self.member, &head, source);
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = tokio::time::timeout(option.hard_ttl(), sending) => result,
        };
        let result = match result {
            Err(_) => {
                return Err(StreamingError::Timeout(openraft::error::Timeout {
                    action: openraft::network::RPCTypes::InstallSnapshot,
                    id: self.clients.self_id,
                    target: self.target,
                    timeout: option.hard_ttl(),
                }));
            }
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(fatal))) => Err(StreamingError::RemoteError(RemoteError::new(self.target, fatal))),
            Ok(Err(e)) if e.is_unreachable() => Err(StreamingError::Unreachable(Unreachable::new(&e))),
            Ok(Err(e)) => Err(StreamingError::Network(NetworkError::new(&e))),
        };
        tracing::info!(
            target = self.target,
            snapshot = %meta.snapshot_id,
            bytes = len,
            ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "snapshot streamed"
        );
        result
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.raft_call(PeerMethod::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        let delays = std::iter::successors(Some(BACKOFF_START_MS), |ms| Some((ms * 2).min(BACKOFF_MAX_MS)))
            .map(Duration::from_millis);
        Backoff::new(delays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Arc<PeerClients> {
        PeerClients::new(
            "test".into(),
            1,
            Arc::new(crate::raft::wire::GrpcWire::new(crate::transport::Transport::plaintext(), 1 << 20)),
            BTreeMap::new(),
        )
    }

    fn member() -> Member {
        // Nothing listens here: a call that got as far as connecting would fail as unreachable.
        Member { zone: "a".into(), client_addr: "127.0.0.1:1".into(), peer_addr: "127.0.0.1:1".into() }
    }

    #[test]
    fn a_failed_raft_rpc_marks_the_peer_unreachable_until_one_succeeds() {
        let clients = clients();
        assert!(clients.unreachable(2).is_none(), "never called: not unreachable");
        clients.record(2, PeerMethod::AppendEntries, false);
        assert!(clients.unreachable(2).is_some());
        assert!(clients.unreachable(3).is_none(), "per peer");
        clients.record(2, PeerMethod::Vote, true);
        assert!(clients.unreachable(2).is_none(), "a later success clears it");
    }

    #[test]
    fn forwarded_writes_and_read_indexes_do_not_count() {
        let clients = clients();
        clients.record(2, PeerMethod::Propose, false);
        clients.record(2, PeerMethod::ReadIndex, false);
        assert!(clients.unreachable(2).is_none(), "a slow leader is not an unreachable one");
        clients.record(2, PeerMethod::AppendEntries, false);
        clients.record(2, PeerMethod::Propose, true);
        assert!(clients.unreachable(2).is_some(), "only Raft protocol RPCs clear it");
    }

    #[test]
    fn the_log_after_a_snapshot_is_held_while_its_follower_catches_up() {
        let clients = clients();
        let matched = |_| Some(90);
        assert_eq!(clients.log_held_from(matched), None, "nothing sent");
        let to_2 = clients.hold_log_after(2, 100);
        let to_3 = clients.hold_log_after(3, 120);
        assert_eq!(clients.log_held_from(matched), Some(100), "the lowest send in progress");
        drop(to_2);
        assert_eq!(clients.log_held_from(matched), Some(100), "sent, node 2 not past it yet");
        assert_eq!(clients.log_held_from(|id| (id == 2).then_some(110)), Some(110), "node 2 catching up");
        assert_eq!(clients.log_held_from(|id| (id == 2).then_some(130)), Some(120), "node 3's send holds");
        drop(to_3);
        assert_eq!(clients.log_held_from(|_| None), Some(100), "neither heard from since");
        assert_eq!(clients.log_held_from(|_| Some(500)), Some(500), "both caught up: held only where they are");
    }

    #[tokio::test]
    async fn a_forward_to_an_unreachable_peer_fails_at_once_without_connecting() {
        let clients = clients();
        clients.record(2, PeerMethod::AppendEntries, false);
        let started = Instant::now();
        let result: Result<(), PeerCallError> =
            clients.call(2, &member(), PeerMethod::Propose, &(), Duration::from_secs(5)).await;
        assert!(matches!(result, Err(PeerCallError::Shunned { target: 2, .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // Raft protocol RPCs still go out (they are how the peer is found reachable again).
        let result: Result<(), PeerCallError> =
            clients.call(2, &member(), PeerMethod::Vote, &(), Duration::from_secs(5)).await;
        assert!(matches!(result, Err(PeerCallError::Status { .. })), "{result:?}");
    }
}
