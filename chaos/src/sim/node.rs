//! One simulated node: the real `runtime::Core` (store on real files, openraft, batcher,
//! replica, timers) and the real `LedgerService` and `PeerService`, over the simulated wire and
//! a clock of its own. A crash stops everything at once; a restart reopens the same data dir.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ledger_node::api::auth::Auth;
use ledger_node::api::cluster::ClusterService;
use ledger_node::api::ledger::LedgerService;
use ledger_node::api::peer::PeerService;
use ledger_node::config::Limits;
use ledger_node::config::NodeConfig;
use ledger_node::config::RaftTiming;
use ledger_node::dr::DrMonitor;
use ledger_node::raft::clock::Clock;
use ledger_node::raft::replica::Replica;
use ledger_node::raft::types::Member;
use ledger_node::raft::types::NodeId;
use ledger_node::runtime::Core;
use ledger_node::security::pii::KeyRing;

use super::net::SimNet;

/// The simulated wall clock starts here (2026-06-01T00:00:00Z): ledger times look real.
pub const EPOCH_MS: u64 = 1_780_272_000_000;

/// What every node of a simulated cluster is given.
#[derive(Clone, Debug)]
pub struct NodeSetup {
    pub id: NodeId,
    pub data_dir: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// openraft's election timeout is drawn from `[min, min + 1)`, so this node's timeout is
    /// exactly `election_ms` whatever openraft's own random draw (which the seed cannot reach).
    pub election_ms: u64,
    pub snapshot_every_entries: u64,
    pub keep_entries_after_snapshot: u64,
}

impl NodeSetup {
    pub fn member(id: NodeId) -> Member {
        Member { zone: format!("z{id}"), client_addr: format!("sim-{id}:7100"), peer_addr: format!("sim-{id}:7200") }
    }

    pub fn config(&self) -> NodeConfig {
        let member = NodeSetup::member(self.id);
        NodeConfig {
            node_id: self.id,
            site: "primary".into(),
            zone: member.zone,
            cluster: "primary".into(),
            client_addr: member.client_addr,
            peer_addr: member.peer_addr,
            metrics_addr: String::new(),
            data_dir: self.data_dir.clone(),
            data_key_file: self.key_file.clone(),
            insecure: true,
            tls: None,
            raft: RaftTiming {
                heartbeat_ms: 100,
                election_min_ms: self.election_ms,
                election_max_ms: self.election_ms + 1,
                install_snapshot_timeout_ms: 30_000,
                snapshot_every_entries: self.snapshot_every_entries,
                snapshot_every_transfers: 0,
                keep_entries_after_snapshot: self.keep_entries_after_snapshot,
                purge_batch_entries: 16,
                snapshot_chunk_bytes: 64 * 1024,
            },
            limits: Limits { sled_cache_bytes: 4 * 1024 * 1024, ..Limits::default() },
            routes: BTreeMap::new(),
            dr: Default::default(),
            failpoints: Vec::new(),
        }
    }
}

/// The client-facing services of a node that is up, called in process.
#[derive(Clone)]
pub struct Services {
    pub ledger: Arc<LedgerService>,
    pub cluster: Arc<ClusterService>,
}

/// A node that is up.
struct Running {
    core: Core,
    services: Services,
}

pub struct SimNode {
    pub setup: NodeSetup,
    /// Added to the simulated time on this node's clock (a clock jump changes it).
    pub skew_ms: Arc<AtomicI64>,
    running: Mutex<Option<Running>>,
    last: Mutex<Option<std::sync::Weak<Replica>>>,
    /// How many times it was started.
    pub starts: std::sync::atomic::AtomicU64,
}

impl SimNode {
    pub fn new(setup: NodeSetup) -> SimNode {
        SimNode {
            setup,
            skew_ms: Arc::new(AtomicI64::new(0)),
            running: Mutex::new(None),
            last: Mutex::new(None),
            starts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().expect("lock is never poisoned")
    }

    pub fn is_up(&self) -> bool {
        self.running().is_some()
    }

    /// This node's clock: simulated time since the start, from [`EPOCH_MS`], plus its skew.
    fn clock(&self, start: tokio::time::Instant) -> Clock {
        let skew = self.skew_ms.clone();
        Arc::new(move || {
            let now = EPOCH_MS + start.elapsed().as_millis() as u64;
            now.saturating_add_signed(skew.load(Ordering::Relaxed))
        })
    }

    /// Starts the node (its data dir may hold an earlier run's state). A crashed incarnation
    /// may still hold the store for a moment (a request in flight): retried for a while.
    pub async fn start(&self, net: &Arc<SimNet>, start: tokio::time::Instant) -> Result<(), String> {
        let config = self.setup.config();
        let mut last_error = String::new();
        for _ in 0..100 {
            match Core::start(&config, net.wire(self.setup.id), self.clock(start)).await {
                Ok(core) => {
                    // The step checks read openraft's metrics, which hold a blank vote until the
                    // core has loaded the stored one and reported once: the node counts as up
                    // from then on.
                    let mut reported = core.replica.raft.metrics();
                    let _ = tokio::time::timeout(Duration::from_secs(5), reported.changed()).await;
                    let replica = core.replica.clone();
                    let keys = KeyRing::load(&config.data_key_file).map_err(|e| e.to_string())?;
                    let monitor = Arc::new(DrMonitor::new(config.dr.clone()));
                    let services = Services {
                        ledger: Arc::new(LedgerService {
                            replica: replica.clone(),
                            auth: Auth::Insecure,
                            keys,
                            monitor: monitor.clone(),
                        }),
                        cluster: Arc::new(ClusterService {
                            replica: replica.clone(),
                            auth: Auth::Insecure,
                            site: config.site.clone(),
                            version: ledger_node::runtime::VERSION,
                            monitor,
                        }),
                    };
                    let peer = Arc::new(PeerService { replica, cluster: config.cluster.clone(), auth: Auth::Insecure });
                    *self.running() = Some(Running { core, services });
                    net.set_up(self.setup.id, peer);
                    self.starts.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // Who still holds the last incarnation (a future in flight that outlived the crash).
        let held = self.last.lock().expect("lock is never poisoned").as_ref().map_or(0, std::sync::Weak::strong_count);
        Err(format!(
            "node {} did not restart: {last_error} ({held} references to its last incarnation remain)",
            self.setup.id
        ))
    }

    /// Stops the node at once: unreachable from now on, its tasks and its Raft core stopped.
    pub async fn crash(&self, net: &SimNet) {
        net.set_down(self.setup.id);
        let Some(running) = self.running().take() else { return };
        running.core.stop_tasks();
        let raft = running.core.replica.raft.clone();
        *self.last.lock().expect("lock is never poisoned") = Some(Arc::downgrade(&running.core.replica));
        drop(running);
        let _ = raft.shutdown().await;
    }

    pub fn replica(&self) -> Option<Arc<Replica>> {
        self.running().as_ref().map(|r| r.core.replica.clone())
    }

    pub fn services(&self) -> Option<Services> {
        self.running().as_ref().map(|r| r.services.clone())
    }
}

/// Writes a data key file shared by the simulated nodes.
pub fn write_key_file(path: &Path) -> Result<(), String> {
    ledger_node::security::pii::DataKeys::generate_file(path).map_err(|e| format!("key file: {e}"))
}
