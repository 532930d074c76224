//! The simulated client: the chaos workload's own client loop (`workload::run_client`) posting
//! to a node's real `LedgerService` in process, through the simulated network's delays and
//! losses. A lost request or reply is an unknown outcome, retried with the same ids.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ledger_client::proto as pb;
use ledger_client::proto::ledger_server::Ledger;

use super::net::SimNet;
use super::node::EPOCH_MS;
use super::node::Services;
use super::node::SimNode;
use crate::workload::TransferSink;

/// Longest a simulated client waits for one answer (a real client's deadline).
const CALL_TIMEOUT: Duration = Duration::from_secs(12);

pub struct SimClient {
    pub nodes: Arc<Vec<SimNode>>,
    pub net: Arc<SimNet>,
    pub start: tokio::time::Instant,
    preferred: AtomicU64,
}

impl SimClient {
    pub fn new(nodes: Arc<Vec<SimNode>>, net: Arc<SimNet>, start: tokio::time::Instant, first: u64) -> SimClient {
        SimClient { nodes, net, start, preferred: AtomicU64::new(first) }
    }

    fn target(&self) -> &SimNode {
        &self.nodes[(self.preferred.load(Ordering::Relaxed) % self.nodes.len() as u64) as usize]
    }

    fn next_node(&self) {
        self.preferred.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls `call` on the preferred node through the simulated network; on any failure the
    /// next call goes to the next node.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: FnOnce(Services) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let node = self.target();
        let result = tokio::time::timeout(CALL_TIMEOUT, async {
            tokio::time::sleep(self.net.delay()).await;
            if self.net.lose() {
                return std::future::pending().await;
            }
            let (Some(service), Some(incarnation)) = (node.services(), self.net.incarnation(node.setup.id)) else {
                return Err(format!("node {} is down", node.setup.id));
            };
            // A crash resets the connection: the call ends, its outcome unknown.
            let reply = tokio::select! {
                reply = call(service) => reply,
                () = self.net.until_down(node.setup.id, incarnation) => {
                    return Err(format!("node {}: connection reset (crashed)", node.setup.id));
                }
            };
            if self.net.lose() || !node.is_up() {
                return std::future::pending().await;
            }
            tokio::time::sleep(self.net.delay()).await;
            reply.map(tonic::Response::into_inner).map_err(|status| format!("node {}: {status}", node.setup.id))
        })
        .await
        .unwrap_or_else(|_| Err(format!("node {}: no answer in {CALL_TIMEOUT:?}", node.setup.id)));
        if result.is_err() {
            self.next_node();
        }
        result
    }
}

impl TransferSink for SimClient {
    async fn create_transfers(&self, transfers: Vec<pb::NewTransfer>) -> Result<pb::CreateTransfersResponse, String> {
        let request = pb::CreateTransfersRequest { transfers, atomic: false };
        self.call(|s| async move { s.ledger.create_transfers(tonic::Request::new(request)).await }).await
    }

    fn endpoint(&self) -> String {
        format!("node-{}", self.target().setup.id)
    }

    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.start.elapsed().as_millis() as u64
    }
}
