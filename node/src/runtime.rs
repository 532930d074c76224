//! Wiring only: builds store -> raft -> replica -> services, runs them until shutdown, and
//! shuts down in order (servers first, then Raft, so no RPC reaches a stopped core).
//! Takes its listeners and shutdown signal as arguments: it never binds sockets or reads the
//! environment.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::ledger;
use ledger_proto::v1::audit_server::AuditServer;
use ledger_proto::v1::cluster_server::ClusterServer;
use ledger_proto::v1::ledger_server::LedgerServer;
use ledger_proto::v1::peer::raft_peer_server::RaftPeerServer;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::api::audit::AuditService;
use crate::api::auth::Auth;
use crate::api::cluster::ClusterService;
use crate::api::ledger::LedgerService;
use crate::api::peer::PeerService;
use crate::config::NodeConfig;
use crate::dr::DrMonitor;
use crate::dr::ship::JournalShipper;
use crate::dr::watch::SiteWatcher;
use crate::raft::batcher::Batcher;
use crate::raft::batcher::BatcherLimits;
use crate::raft::clock::Clock;
use crate::raft::clock::wall_clock;
use crate::raft::network::PeerClients;
use crate::raft::network::PeerNetwork;
use crate::raft::replica::Replica;
use crate::raft::types::Member;
use crate::raft::types::Raft;
use crate::raft::wire::GrpcWire;
use crate::raft::wire::PeerWire;
use crate::security::pii::KeyRing;
use crate::security::tls;
use crate::security::tls::TlsMaterial;
use crate::store;
use crate::transport::Transport;

/// How often the leader's ledger timer looks for due pending transfers.
const LEDGER_TIMER_MS: u64 = 200;

/// How long a stopping node lets in-flight requests finish before it drops them (a client
/// that keeps its connection open, or a write waiting out its timeout, would otherwise hold a
/// SIGTERM for as long as it likes; supervisors kill after 30-90 s). A dropped write is
/// answered by nothing and retried by its client under the same transfer id.
const SERVER_DRAIN_SECS: u64 = 5;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The sockets a node serves on, bound by the caller.
pub struct Listeners {
    pub client: TcpListener,
    pub peer: TcpListener,
    pub metrics: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("data keys: {0}")]
    Keys(#[from] crate::security::pii::PiiError),
    #[error("tls: {0}")]
    Tls(#[from] crate::security::tls::TlsError),
    #[error("raft configuration: {0}")]
    RaftConfig(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("serving {what}: {detail}")]
    Serve { what: &'static str, detail: String },
}

/// Runs a node until `shutdown` resolves or Raft stops on a fatal error.
pub async fn run(
    config: NodeConfig,
    listeners: Listeners,
    metrics_handle: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    crate::failpoint::arm(&config.failpoints);
    let keys = KeyRing::load(&config.data_key_file)?;
    let key_reload = keys.clone().spawn_reload();
    let tls = match &config.tls {
        Some(files) => {
            let material = TlsMaterial::load(files)?;
            Some((material.server_config()?, material.client_config()))
        }
        None => None,
    };
    let (transport, auth) = match &tls {
        Some((_, client)) => (Transport::tls(client.clone()), Auth::Tls),
        None => (Transport::plaintext(), Auth::Insecure),
    };
    let wire = Arc::new(GrpcWire::new(transport.clone(), config.limits.grpc_message_bytes_max));
    let core = Core::start(&config, wire, wall_clock()).await?;
    let replica = core.replica.clone();
    let raft = replica.raft.clone();

    let monitor = Arc::new(DrMonitor::new(config.dr.clone()));
    let shipper = tokio::spawn(
        JournalShipper { replica: replica.clone(), transport: transport.clone(), monitor: monitor.clone() }.run(),
    );
    let watcher = tokio::spawn(
        SiteWatcher { replica: replica.clone(), transport: transport.clone(), monitor: monitor.clone() }.run(),
    );
    let refresh = crate::metrics::spawn_refresh(replica.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let message_max = config.limits.grpc_message_bytes_max;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    crate::api::health::init(&health_reporter).await;
    let health = tokio::spawn(crate::api::health::follow(health_reporter, replica.clone(), monitor.clone()));
    let (reflection, reflection_v1alpha) =
        crate::api::health::reflection().map_err(|e| NodeError::Serve { what: "reflection", detail: e.to_string() })?;
    let ledger_service =
        LedgerService { replica: replica.clone(), auth: auth.clone(), keys: keys.clone(), monitor: monitor.clone() };
    let cluster_service = ClusterService {
        replica: replica.clone(),
        auth: auth.clone(),
        site: config.site.clone(),
        version: VERSION,
        monitor: monitor.clone(),
    };
    let audit_service = AuditService { replica: replica.clone(), auth: auth.clone() };
    let client_router = Server::builder()
        .max_concurrent_streams(config.limits.grpc_concurrent_streams_max)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(
            LedgerServer::new(ledger_service)
                .max_decoding_message_size(message_max)
                .max_encoding_message_size(message_max),
        )
        .add_service(
            ClusterServer::new(cluster_service)
                .max_decoding_message_size(message_max)
                .max_encoding_message_size(message_max),
        )
        .add_service(
            AuditServer::new(audit_service)
                .max_decoding_message_size(message_max)
                .max_encoding_message_size(message_max),
        );
    let peer_service = PeerService { replica: replica.clone(), cluster: config.cluster.clone(), auth: auth.clone() };
    let peer_router = Server::builder().add_service(
        RaftPeerServer::new(peer_service).max_decoding_message_size(message_max).max_encoding_message_size(message_max),
    );
    let (client_task, peer_task) = match &tls {
        Some((server_config, _)) => (
            tokio::spawn(client_router.serve_with_incoming_shutdown(
                tls::incoming(listeners.client, server_config.clone()),
                stopped(stop_rx.clone()),
            )),
            tokio::spawn(peer_router.serve_with_incoming_shutdown(
                tls::incoming(listeners.peer, server_config.clone()),
                stopped(stop_rx.clone()),
            )),
        ),
        None => (
            tokio::spawn(
                client_router.serve_with_incoming_shutdown(incoming(listeners.client), stopped(stop_rx.clone())),
            ),
            tokio::spawn(peer_router.serve_with_incoming_shutdown(incoming(listeners.peer), stopped(stop_rx.clone()))),
        ),
    };
    let metrics_task = match (listeners.metrics, metrics_handle) {
        (Some(listener), Some(handle)) => {
            Some(tokio::spawn(crate::metrics::serve(listener, handle, stopped(stop_rx.clone()))))
        }
        _ => None,
    };
    tracing::info!(
        node_id = config.node_id,
        site = %config.site,
        zone = %config.zone,
        client = %config.client_addr,
        peer = %config.peer_addr,
        "node serving"
    );

    // Run until asked to stop, or until Raft dies (a storage error is fatal).
    let mut metrics = raft.metrics();
    let fatal = async {
        loop {
            if let Err(fatal) = &metrics.borrow().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "raft metrics closed".to_string();
            }
        }
    };
    let result = tokio::select! {
        () = shutdown => Ok(()),
        fatal = fatal => Err(NodeError::Raft(format!("raft stopped: {fatal}"))),
    };

    tracing::info!("shutting down: servers first, then raft");
    let _ = stop_tx.send(true);
    core.stop_tasks();
    refresh.abort();
    health.abort();
    shipper.abort();
    watcher.abort();
    key_reload.abort();
    let drain = tokio::time::Instant::now() + Duration::from_secs(SERVER_DRAIN_SECS);
    for (what, mut task) in [("client server", client_task), ("peer server", peer_task)] {
        match tokio::time::timeout_at(drain, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(what, error = %e, "server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(what, error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!(
                    what,
                    secs = SERVER_DRAIN_SECS,
                    "requests still in flight at the drain deadline; dropped"
                );
                task.abort();
            }
        }
    }
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    let raft_stopping = std::time::Instant::now();
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    tracing::info!(raft_ms = raft_stopping.elapsed().as_millis() as u64, "raft stopped");
    result
}

/// Accepted connections with Nagle off (`serve_with_incoming` ignores tonic's own setting).
fn incoming(listener: TcpListener) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    })
}

/// The parts of a node that do not face a socket: store, Raft, batcher, replica, and their
/// background tasks (ledger timer, election watchdog, checkpoints, log purge). [`run`] adds the
/// servers, TLS and the DR site tasks around it; the simulator (`ledger-chaos sim`) runs it as
/// it is, over its own wire and clocks.
pub struct Core {
    pub replica: Arc<Replica>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Core {
    pub async fn start(config: &NodeConfig, wire: Arc<dyn PeerWire>, clock: Clock) -> Result<Core, NodeError> {
        let (log_store, state_machine) = store::open(&config.data_dir, config.limits.sled_cache_bytes)?;
        let committed_index = log_store.committed_index();
        let reader = state_machine.reader();
        let peers = PeerClients::new(config.cluster.clone(), config.node_id, wire, config.route_overrides());
        let raft_config = Arc::new(config.openraft().validate().map_err(|e| NodeError::RaftConfig(e.to_string()))?);
        let raft =
            Raft::new(config.node_id, raft_config, PeerNetwork { clients: peers.clone() }, log_store, state_machine)
                .await
                .map_err(|e| NodeError::Raft(e.to_string()))?;
        let batcher = Batcher::spawn(
            raft.clone(),
            BatcherLimits {
                entry_commands_max: config.limits.entry_commands_max,
                in_flight_entries_max: config.limits.in_flight_entries_max,
                queue_commands_max: config.limits.queue_commands_max,
            },
            clock.clone(),
        );
        let member = Member {
            zone: config.zone.clone(),
            client_addr: config.client_addr.clone(),
            peer_addr: config.peer_addr.clone(),
        };
        let replica = Arc::new(Replica::new(
            config.node_id,
            member,
            raft,
            reader,
            peers,
            batcher,
            committed_index,
            Duration::from_millis(config.limits.write_timeout_ms),
            Duration::from_millis(config.limits.read_timeout_ms),
            Duration::from_millis(config.raft.election_max_ms),
        ));
        let mut tasks = vec![
            tokio::spawn(ledger_timer(replica.clone(), clock)),
            tokio::spawn(replica.clone().monitor_leadership(Duration::from_millis(config.raft.election_min_ms))),
            tokio::spawn(
                replica
                    .clone()
                    .keep_log_purged(config.raft.keep_entries_after_snapshot, config.raft.purge_batch_entries),
            ),
        ];
        if let Some(every) = config.snapshot_transfers_interval() {
            tasks.push(tokio::spawn(replica.clone().keep_checkpointing(every)));
        }
        Ok(Core { replica, tasks })
    }

    /// Stops the background tasks; Raft keeps running until `raft.shutdown()`.
    pub fn stop_tasks(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// On the leader of an active site: proposes `ExpirePending` whenever a pending transfer's
/// timeout has passed, so expiry happens in ledger time even without traffic.
async fn ledger_timer(replica: Arc<Replica>, clock: Clock) {
    let mut tick = tokio::time::interval(Duration::from_millis(LEDGER_TIMER_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if crate::failpoint::armed(crate::failpoint::LEDGER_TIMER_PANIC) {
            panic!("failpoint {}: the ledger timer panics", crate::failpoint::LEDGER_TIMER_PANIC);
        }
        if !replica.is_leader() || ledger::write_refusal(&replica.reader.meta().site).is_some() {
            continue;
        }
        let due = replica.reader.next_expiry().is_some_and(|at| at <= clock());
        if !due {
            continue;
        }
        let envelope = Envelope { caller: "ledger-timer".into(), command: Command::ExpirePending };
        if let Err(e) = replica.write(envelope).await {
            tracing::debug!(error = %e, "expiry proposal failed; will retry");
        }
    }
}
