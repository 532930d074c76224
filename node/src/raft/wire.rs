//! What carries a peer RPC from this node to another: gRPC over the transport in production
//! ([`GrpcWire`]), an in-memory network with injected faults in the simulator
//! (`ledger-chaos sim`). Everything above it (the Raft network, write forwarding, read
//! indexes, snapshot streaming, the shunning of unreachable peers) is the same code in both.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use ledger_proto::v1::peer::RaftReply;
use ledger_proto::v1::peer::RaftRequest;
use ledger_proto::v1::peer::SnapshotPart;
use ledger_proto::v1::peer::raft_peer_client::RaftPeerClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::raft::types::NodeId;
use crate::transport::Transport;

/// Which peer RPC.
#[derive(Clone, Copy, Debug)]
pub enum PeerMethod {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Propose,
    ReadIndex,
    Campaign,
}

/// A transport failure or an undecodable reply.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    #[error("peer {target} at {addr}: {status}")]
    Status { target: NodeId, addr: String, status: tonic::Status },
    #[error("peer {target}: bad address: {reason}")]
    Address { target: NodeId, reason: String },
    #[error("peer {target}: undecodable reply: {reason}")]
    Decode { target: NodeId, reason: String },
    #[error("peer {target} was unreachable {failed_ms_ago} ms ago and has not answered since")]
    Shunned { target: NodeId, failed_ms_ago: u64 },
}

impl PeerCallError {
    /// Refused, reset or unreachable: back off rather than retry at once.
    pub fn is_unreachable(&self) -> bool {
        match self {
            PeerCallError::Status { status, .. } => {
                matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown)
            }
            PeerCallError::Address { .. } | PeerCallError::Shunned { .. } => true,
            PeerCallError::Decode { .. } => false,
        }
    }
}

/// One peer RPC's answer, as the remote service returned it or as the wire failed it.
pub type WireFuture = Pin<Box<dyn Future<Output = Result<RaftReply, PeerCallError>> + Send>>;

/// Carries peer RPCs. A failure the caller should treat as "not reached" is a
/// `PeerCallError::Status` with `UNAVAILABLE` (see [`PeerCallError::is_unreachable`]).
pub trait PeerWire: Send + Sync {
    /// Sends `request` for `method` to `target` at `addr`; the answer must come within
    /// `timeout`.
    fn unary(
        &self,
        target: NodeId,
        addr: &str,
        method: PeerMethod,
        request: RaftRequest,
        timeout: Duration,
    ) -> WireFuture;

    /// Streams a snapshot to `target` at `addr`: `parts` in order, the first carrying the
    /// request (see `PeerClients::stream_snapshot`).
    fn stream(&self, target: NodeId, addr: &str, parts: mpsc::Receiver<SnapshotPart>) -> WireFuture;
}

/// Peer RPCs over gRPC, one lazily connecting channel per address.
pub struct GrpcWire {
    transport: Transport,
    message_bytes_max: usize,
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcWire {
    pub fn new(transport: Transport, message_bytes_max: usize) -> GrpcWire {
        GrpcWire { transport, message_bytes_max, channels: Mutex::new(HashMap::new()) }
    }

    fn client(&self, target: NodeId, addr: &str) -> Result<RaftPeerClient<Channel>, PeerCallError> {
        let mut channels = self.channels.lock().expect("lock is never poisoned");
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self
                    .transport
                    .channel(addr)
                    .map_err(|e| PeerCallError::Address { target, reason: e.to_string() })?;
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(RaftPeerClient::new(channel)
            .max_decoding_message_size(self.message_bytes_max)
            .max_encoding_message_size(self.message_bytes_max))
    }
}

impl PeerWire for GrpcWire {
    fn unary(
        &self,
        target: NodeId,
        addr: &str,
        method: PeerMethod,
        request: RaftRequest,
        timeout: Duration,
    ) -> WireFuture {
        let client = self.client(target, addr);
        let addr = addr.to_string();
        Box::pin(async move {
            let mut client = client?;
            let mut req = tonic::Request::new(request);
            req.set_timeout(timeout);
            let reply = match method {
                PeerMethod::AppendEntries => client.append_entries(req).await,
                PeerMethod::Vote => client.vote(req).await,
                PeerMethod::InstallSnapshot => client.install_snapshot(req).await,
                PeerMethod::Propose => client.propose(req).await,
                PeerMethod::ReadIndex => client.read_index(req).await,
                PeerMethod::Campaign => client.campaign(req).await,
            };
            reply.map(tonic::Response::into_inner).map_err(|status| PeerCallError::Status { target, addr, status })
        })
    }

    fn stream(&self, target: NodeId, addr: &str, parts: mpsc::Receiver<SnapshotPart>) -> WireFuture {
        let client = self.client(target, addr);
        let addr = addr.to_string();
        Box::pin(async move {
            let reply = client?.stream_snapshot(tokio_stream::wrappers::ReceiverStream::new(parts)).await;
            reply.map(tonic::Response::into_inner).map_err(|status| PeerCallError::Status { target, addr, status })
        })
    }
}
