//! `ledger-cluster status`: every node of every site in one table (or JSON). A node that
//! refuses the caller (its certificate or role) is marked `refused`, so that the command can
//! fail on it instead of showing the cluster as merely unreachable.

use std::time::Duration;

use ledger_client::ClientConfig;
use ledger_client::ClientError;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use serde::Serialize;

use crate::topology::Topology;

#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub site: String,
    pub node_id: u64,
    pub zone: String,
    pub endpoint: String,
    pub reachable: bool,
    /// The node refused us (a certificate it does not accept, a role that may not ask): a
    /// final answer, unlike a node that is down.
    pub refused: bool,
    pub error: String,
    pub raft_role: String,
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    /// The node's last snapshot (checkpoint) and the index its Raft log is purged up to.
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub journal_seq: u64,
    pub journal_hash: String,
    pub journal_time_ms: u64,
    pub site_role: String,
    pub epoch: u64,
    pub fenced: bool,
    pub active_site: String,
    pub watermark_seq: u64,
    pub watermark_time_ms: u64,
    pub halted: String,
    pub dr_lag_records: u64,
    pub dr_lag_ms: u64,
    pub dr_lag_alarm: bool,
    pub dr_throttled: bool,
    /// Bytes used by the node's data directory (its own count).
    pub data_dir_bytes: u64,
    /// Resident memory of the node process (0 where the platform does not say).
    pub resident_bytes: u64,
    /// Start-up of the node process: the checkpoint it opened (its last applied index, 0 for
    /// none), the commit index persisted before the restart, and the log entries re-applied
    /// up to that index so far.
    pub checkpoint_index_at_start: u64,
    pub committed_index_at_start: u64,
    pub entries_reapplied_at_start: u64,
    /// What the node's in-memory state holds: transfer ids indexed, accounts, history rows
    /// indexed.
    pub transfers_indexed: u64,
    pub accounts: u64,
    pub history_rows_indexed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteSummary {
    pub site: String,
    pub role: String,
    pub epoch: u64,
    pub leader_id: u64,
    pub journal_seq: u64,
    pub journal_hash: String,
    pub nodes_up: usize,
    pub nodes: usize,
    /// The site's DR lag as its leader measured it: for a standby, behind its upstream; for
    /// the active site, the standby furthest behind.
    pub dr_lag_records: u64,
    pub dr_lag_ms: u64,
    pub dr_lag_alarm: bool,
    pub dr_throttled: bool,
    /// Set on a standby whose shipping halted.
    pub halted: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    pub sites: Vec<SiteSummary>,
    pub nodes: Vec<NodeRow>,
}

/// How long each node gets to answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks every node of the topology for its status ([`STATUS_TIMEOUT`] each, in parallel).
pub async fn gather(topology: &Topology, config: &ClientConfig) -> ClusterStatus {
    let mut tasks = Vec::new();
    for site in &topology.sites {
        for node in &site.nodes {
            let client =
                LedgerClient::new(ClientConfig { endpoints: vec![node.client_addr.clone()], ..config.clone() });
            let (site, node) = (site.name.clone(), node.clone());
            tasks.push(tokio::spawn(async move {
                let status = match client {
                    Ok(client) => client.status_once(STATUS_TIMEOUT).await,
                    Err(e) => Err(e),
                };
                row(&site, node.id, &node.zone, &node.client_addr, status)
            }));
        }
    }
    let mut nodes = Vec::new();
    for task in tasks {
        nodes.push(task.await.expect("status task does not panic"));
    }
    let sites = topology
        .sites
        .iter()
        .map(|site| {
            let rows: Vec<&NodeRow> = nodes.iter().filter(|r| r.site == site.name && r.reachable).collect();
            let best = rows.iter().max_by_key(|r| (r.journal_seq, r.raft_role == "leader"));
            let leader = rows.iter().find(|r| r.raft_role == "leader").copied();
            SiteSummary {
                site: site.name.clone(),
                role: best.map_or("unreachable".into(), |r| r.site_role.clone()),
                epoch: best.map_or(0, |r| r.epoch),
                leader_id: rows.iter().find(|r| r.raft_role == "leader").map_or(0, |r| r.node_id),
                journal_seq: best.map_or(0, |r| r.journal_seq),
                journal_hash: best.map_or(String::new(), |r| r.journal_hash.clone()),
                nodes_up: rows.len(),
                nodes: site.nodes.len(),
                dr_lag_records: leader.map_or(0, |r| r.dr_lag_records),
                dr_lag_ms: leader.map_or(0, |r| r.dr_lag_ms),
                dr_lag_alarm: leader.is_some_and(|r| r.dr_lag_alarm),
                dr_throttled: leader.is_some_and(|r| r.dr_throttled),
                halted: best.map_or(String::new(), |r| r.halted.clone()),
            }
        })
        .collect();
    ClusterStatus { sites, nodes }
}

fn row(site: &str, node_id: u64, zone: &str, endpoint: &str, status: Result<pb::NodeStatus, ClientError>) -> NodeRow {
    let mut row = NodeRow {
        site: site.into(),
        node_id,
        zone: zone.into(),
        endpoint: endpoint.into(),
        reachable: false,
        refused: false,
        error: String::new(),
        raft_role: "-".into(),
        term: 0,
        leader_id: 0,
        commit_index: 0,
        applied_index: 0,
        last_log_index: 0,
        snapshot_index: 0,
        purged_index: 0,
        journal_seq: 0,
        journal_hash: String::new(),
        journal_time_ms: 0,
        site_role: "-".into(),
        epoch: 0,
        fenced: false,
        active_site: String::new(),
        watermark_seq: 0,
        watermark_time_ms: 0,
        halted: String::new(),
        dr_lag_records: 0,
        dr_lag_ms: 0,
        dr_lag_alarm: false,
        dr_throttled: false,
        data_dir_bytes: 0,
        resident_bytes: 0,
        checkpoint_index_at_start: 0,
        committed_index_at_start: 0,
        entries_reapplied_at_start: 0,
        transfers_indexed: 0,
        accounts: 0,
        history_rows_indexed: 0,
    };
    match status {
        Err(e) => {
            row.refused = e.is_final();
            row.error = e.to_string();
        }
        Ok(s) => {
            let head = s.journal_head.unwrap_or_default();
            let site = s.site.unwrap_or_default();
            row.reachable = true;
            row.raft_role = s.raft_role;
            row.term = s.raft_term;
            row.leader_id = s.leader_id;
            row.commit_index = s.commit_index;
            row.applied_index = s.applied_index;
            row.last_log_index = s.last_log_index;
            row.snapshot_index = s.snapshot_index;
            row.purged_index = s.purged_index;
            row.journal_seq = head.seq;
            row.journal_hash = hex::encode(&head.hash);
            row.journal_time_ms = head.ledger_time_ms;
            row.site_role = site.role;
            row.epoch = site.epoch;
            row.fenced = site.fenced;
            row.active_site = site.active_site;
            row.watermark_seq = site.watermark_seq;
            row.watermark_time_ms = site.watermark_time_ms;
            row.halted = site.halted;
            let lag = site.dr_lag.unwrap_or_default();
            row.dr_lag_records = lag.records;
            row.dr_lag_ms = lag.ms;
            row.dr_lag_alarm = lag.alarm;
            row.dr_throttled = lag.throttled;
            row.data_dir_bytes = s.data_dir_bytes;
            row.resident_bytes = s.resident_bytes;
            row.checkpoint_index_at_start = s.checkpoint_index_at_start;
            row.committed_index_at_start = s.committed_index_at_start;
            row.entries_reapplied_at_start = s.entries_reapplied_at_start;
            row.transfers_indexed = s.transfers_indexed;
            row.accounts = s.accounts;
            row.history_rows_indexed = s.history_rows_indexed;
        }
    }
    row
}

/// The status as a text table.
pub fn render(status: &ClusterStatus) -> String {
    let mut out = String::new();
    for site in &status.sites {
        let alarm = match (site.dr_throttled, site.dr_lag_alarm, site.halted.is_empty()) {
            (_, _, false) => format!("  HALTED: {}", site.halted),
            (true, _, _) => "  THROTTLED (lag at ceiling)".to_string(),
            (false, true, _) => "  ALARM (lag over budget)".to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "site {:<8} {:<8} epoch {:<3} leader {:<3} journal {:<8} {}  nodes up {}/{}  dr lag {} records / {:.1} s{}\n",
            site.site,
            site.role,
            site.epoch,
            site.leader_id,
            site.journal_seq,
            &site.journal_hash.get(..16).unwrap_or(""),
            site.nodes_up,
            site.nodes,
            site.dr_lag_records,
            site.dr_lag_ms as f64 / 1000.0,
            alarm
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<8} {:>4} {:<5} {:<16} {:<10} {:>5} {:>6} {:>8} {:>8} {:>8} {:<16} {:<8} {:>5}\n",
        "SITE",
        "NODE",
        "ZONE",
        "ENDPOINT",
        "RAFT",
        "TERM",
        "LEADER",
        "COMMIT",
        "APPLIED",
        "JOURNAL",
        "HEAD",
        "ROLE",
        "EPOCH"
    ));
    for r in &status.nodes {
        if !r.reachable {
            out.push_str(&format!(
                "{:<8} {:>4} {:<5} {:<16} {}: {}\n",
                r.site,
                r.node_id,
                r.zone,
                r.endpoint,
                if r.refused { "REFUSED" } else { "unreachable" },
                r.error
            ));
            continue;
        }
        out.push_str(&format!(
            "{:<8} {:>4} {:<5} {:<16} {:<10} {:>5} {:>6} {:>8} {:>8} {:>8} {:<16} {:<8} {:>5}\n",
            r.site,
            r.node_id,
            r.zone,
            r.endpoint,
            r.raft_role,
            r.term,
            r.leader_id,
            r.commit_index,
            r.applied_index,
            r.journal_seq,
            r.journal_hash.get(..16).unwrap_or(""),
            if r.fenced { format!("{}*", r.site_role) } else { r.site_role.clone() },
            r.epoch
        ));
    }
    out.push_str(&render_storage(status));
    out
}

/// Mebibytes, one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// Each reachable node's size and start-up: data dir, resident memory, what its state indexes,
/// its last snapshot and purged log index, and where its last start began (checkpoint, commit
/// index, entries re-applied).
fn render_storage(status: &ClusterStatus) -> String {
    let mut out = format!(
        "\n{:<8} {:>4} {:>10} {:>9} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12} {:>10}\n",
        "SITE",
        "NODE",
        "DATA MiB",
        "RSS MiB",
        "ACCOUNTS",
        "TRANSFERS",
        "HISTORY",
        "SNAPSHOT",
        "PURGED",
        "CKPT@START",
        "COMMIT@START",
        "REAPPLIED"
    );
    for r in status.nodes.iter().filter(|r| r.reachable) {
        out.push_str(&format!(
            "{:<8} {:>4} {:>10} {:>9} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12} {:>10}\n",
            r.site,
            r.node_id,
            mib(r.data_dir_bytes),
            mib(r.resident_bytes),
            r.accounts,
            r.transfers_indexed,
            r.history_rows_indexed,
            r.snapshot_index,
            r.purged_index,
            r.checkpoint_index_at_start,
            r.committed_index_at_start,
            r.entries_reapplied_at_start
        ));
    }
    out
}
