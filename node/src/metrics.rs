//! Prometheus metrics: the recorder, the gauges refreshed from Raft and the state, and the
//! plain-HTTP `/metrics` endpoint.
//!
//! Names (all prefixed `ledger_`): `raft_term`, `raft_leader_id`, `raft_is_leader`,
//! `raft_last_log_index`, `raft_commit_index`, `raft_applied_index`, `raft_snapshot_index`,
//! `raft_millis_since_quorum_ack`, `journal_seq`, `ledger_time_ms`,
//! `request_duration_seconds{rpc}` (histogram), `transfer_results_total{code}`,
//! `batch_commands` (histogram of commands per Raft entry), `state_transfers_indexed`,
//! `state_accounts`, `state_history_rows_indexed`, `resident_bytes`; from the store
//! `log_fsync_duration_seconds`, `apply_duration_seconds` (one apply chunk),
//! `checkpoint_cut_seconds` (applies paused), `checkpoint_write_seconds`, `checkpoint_bytes`;
//! and the DR metrics of `dr/`.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::Matcher;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_exporter_prometheus::PrometheusHandle;
use openraft::ServerState;
use tokio::net::TcpListener;

use crate::raft::replica::Replica;

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const REFRESH_MS: u64 = 1000;

/// Installs the process-wide recorder. Call once per process.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("seconds".into()), LATENCY_BUCKETS_SECONDS)?
        .set_buckets_for_metric(Matcher::Full("ledger_batch_commands".into()), BATCH_BUCKETS)?
        .install_recorder()
}

/// Refreshes the Raft and journal gauges every second, until the task is dropped.
pub fn spawn_refresh(replica: Arc<Replica>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(REFRESH_MS));
        loop {
            tick.tick().await;
            let m = replica.metrics();
            metrics::gauge!("ledger_raft_term").set(m.current_term as f64);
            metrics::gauge!("ledger_raft_leader_id").set(m.current_leader.unwrap_or(0) as f64);
            metrics::gauge!("ledger_raft_is_leader").set(if m.state == ServerState::Leader { 1.0 } else { 0.0 });
            metrics::gauge!("ledger_raft_last_log_index").set(m.last_log_index.unwrap_or(0) as f64);
            metrics::gauge!("ledger_raft_commit_index").set(replica.committed_index() as f64);
            metrics::gauge!("ledger_raft_applied_index").set(m.last_applied.map_or(0, |l| l.index) as f64);
            metrics::gauge!("ledger_raft_snapshot_index").set(m.snapshot.map_or(0, |l| l.index) as f64);
            metrics::gauge!("ledger_raft_millis_since_quorum_ack").set(m.millis_since_quorum_ack.unwrap_or(0) as f64);
            let head = replica.reader.journal_head();
            metrics::gauge!("ledger_journal_seq").set(head.seq as f64);
            metrics::gauge!("ledger_ledger_time_ms").set(head.ledger_time_ms as f64);
            let (transfers, accounts, history_rows) = replica.reader.sizes();
            metrics::gauge!("ledger_state_transfers_indexed").set(transfers as f64);
            metrics::gauge!("ledger_state_accounts").set(accounts as f64);
            metrics::gauge!("ledger_state_history_rows_indexed").set(history_rows as f64);
            metrics::gauge!("ledger_resident_bytes").set(resident_bytes() as f64);
        }
    })
}

/// Resident memory of this process, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Serves `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
