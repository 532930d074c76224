//! `NodeConfig`: everything a node needs, read from one TOML file and validated once.
//! Every limit is explicit, with its unit last in the name.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid TOML in {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Raft node id, unique within the site (>= 1).
    pub node_id: u64,
    /// The site this node belongs to (e.g. `primary`, `dr`).
    pub site: String,
    /// The zone within the site (e.g. `a`).
    pub zone: String,
    /// Name of the Raft group; peers refuse RPCs for another group. Defaults to the site name.
    #[serde(default)]
    pub cluster: String,
    /// Address advertised to clients, and the one the client listener binds.
    pub client_addr: String,
    /// Address advertised to peers, and the one the peer listener binds.
    pub peer_addr: String,
    /// Prometheus `/metrics` over plain HTTP; none if empty.
    #[serde(default)]
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    /// Data keys sealing personal data at rest (see `security::pii`).
    pub data_key_file: PathBuf,
    /// Plaintext gRPC with no client authentication. Development only.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub raft: RaftTiming,
    #[serde(default)]
    pub limits: Limits,
    /// Peer address overrides by node id, used instead of the address in Raft membership.
    /// The chaos harness routes each link through its own fault proxy this way.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    #[serde(default)]
    pub dr: DrConfig,
    /// Failpoints to arm (tests only; see `failpoint.rs` for the names). Empty in production.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failpoints: Vec<String>,
}

/// Disaster recovery: the other sites, and the RPO guardrail.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrConfig {
    /// Client endpoints of the nodes of every other site. The active site's leader watches
    /// them for a higher epoch (fencing) and for the standbys' watermarks (lag).
    pub peer_sites: Vec<String>,
    /// Over this lag (ledger-time span of records a standby lacks) status and metrics alarm.
    pub lag_budget_ms: u64,
    /// The hard ceiling of the lag; at most the regulatory RPO (5 minutes).
    pub lag_ceiling_ms: u64,
    /// Refuse new writes on the active site while the lag is within 10% of the ceiling, so it
    /// never passes it (availability traded for RPO).
    pub throttle: bool,
}

/// The regulatory RPO: no configured ceiling may exceed it.
pub const RPO_REGULATORY_MS: u64 = 5 * 60 * 1000;

impl Default for DrConfig {
    fn default() -> Self {
        DrConfig { peer_sites: Vec::new(), lag_budget_ms: 5_000, lag_ceiling_ms: RPO_REGULATORY_MS, throttle: false }
    }
}

/// PEM files for mutual TLS.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signs every node and client certificate.
    pub ca: PathBuf,
    /// This node's certificate and key (used as server and as client to peers).
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Raft timing. Defaults suit one host with noisy fsync (see docs/operations.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Deadline of one snapshot chunk RPC; the last chunk installs the whole state inside it
    /// (openraft 0.9 answers it once the install is done), so it must cover an install of the
    /// largest state: at 10 M transfers that is minutes, and a 30 s deadline made the leader
    /// drop the send at the last chunk and start over, forever. A peer that is down fails its
    /// chunk at once (unreachable), so only a hung one waits this long.
    pub install_snapshot_timeout_ms: u64,
    /// Build a snapshot, which writes a state checkpoint, after this many entries since the
    /// last one, or after `snapshot_every_transfers`, whichever comes first.
    pub snapshot_every_entries: u64,
    /// Build a snapshot once this many transfer records were written since the last one. This
    /// is what bounds a restart's re-apply: an entry holds one transfer under light load and
    /// up to ~1,200 under full load, so entries alone let it swing from seconds to tens of
    /// seconds (585,000 transfers, 9.5 s under load, at 400 entries). Against a checkpoint's
    /// cost: at 1 M accounts, 124 MB written and 1-6 s of one core to encode it, about every
    /// 20 s at full load. Staggered per node like the entries. 0 turns it off.
    pub snapshot_every_transfers: u64,
    /// Entries kept below a snapshot so that slightly lagging followers catch up from the log.
    /// Counted in entries, which are small under light load: with 1,000, a follower restarted
    /// after `kill -9` at 10 M transfers (an open of ~15 s under half load) still catches up
    /// from the log; with 400 the leader had purged past it and sent a 9 GB snapshot.
    pub keep_entries_after_snapshot: u64,
    pub purge_batch_entries: u64,
    pub snapshot_chunk_bytes: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 100,
            election_min_ms: 1000,
            election_max_ms: 2000,
            install_snapshot_timeout_ms: 600_000,
            snapshot_every_entries: 1_000,
            snapshot_every_transfers: 250_000,
            keep_entries_after_snapshot: 1_000,
            purge_batch_entries: 256,
            snapshot_chunk_bytes: 1024 * 1024,
        }
    }
}

/// Limits of the write and read paths.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A write not applied within this time fails with an unknown outcome (safe to retry with
    /// the same ids).
    pub write_timeout_ms: u64,
    /// Deadline of a linearizable read barrier.
    pub read_timeout_ms: u64,
    /// Most commands the batcher puts into one Raft entry (also bounded by 240 KiB).
    pub entry_commands_max: usize,
    /// Entries proposed but not yet applied, at most. While all are in flight, new commands
    /// queue and the next entry takes all of them (group commit). 2, not 4: openraft 0.9's core
    /// fsyncs one entry at a time, so more entries in flight only cut the same commands into
    /// more fsyncs and messages. Measured on three nodes (`benches/cluster.sh single-site`, same
    /// sitting): batch 1 7,911 -> 9,247/s (8 gave 6,735-7,136), p99 at half rate 176 -> 84 ms,
    /// batch 100 unchanged.
    pub in_flight_entries_max: usize,
    /// Commands queued for the batcher, at most; beyond it writes fail with RESOURCE_EXHAUSTED.
    pub queue_commands_max: usize,
    /// sled page cache.
    pub sled_cache_bytes: u64,
    /// Largest gRPC message, both directions.
    pub grpc_message_bytes_max: usize,
    /// Concurrent client streams per connection.
    pub grpc_concurrent_streams_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            write_timeout_ms: 10_000,
            read_timeout_ms: 5_000,
            entry_commands_max: 512,
            in_flight_entries_max: 2,
            queue_commands_max: 20_000,
            sled_cache_bytes: 128 * 1024 * 1024,
            grpc_message_bytes_max: 16 * 1024 * 1024,
            grpc_concurrent_streams_max: 1024,
        }
    }
}

/// Raft entries per AppendEntries (see `NodeConfig::openraft`).
pub const APPEND_ENTRIES_MAX: u64 = 8;

/// Entries between the snapshots of node `node_id` when the site's setting is `every` (see
/// [`NodeConfig::snapshot_interval`]).
pub fn staggered_snapshot_interval(every: u64, node_id: u64) -> u64 {
    every + every / 8 * (node_id % 4)
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        if config.cluster.is_empty() {
            config.cluster = config.site.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.node_id == 0 {
            return bad("node_id must be >= 1".into());
        }
        if ledger_core::id::check_id(&self.site).is_err() || self.site.len() > ledger_core::site::SITE_NAME_BYTES_MAX {
            return bad(format!("site {:?} must be a short id", self.site));
        }
        if self.zone.is_empty() {
            return bad("zone must not be empty".into());
        }
        if self.insecure == self.tls.is_some() {
            return bad("set exactly one of `insecure = true` or a [tls] section".into());
        }
        let r = &self.raft;
        if !(r.heartbeat_ms > 0 && r.heartbeat_ms < r.election_min_ms && r.election_min_ms < r.election_max_ms) {
            return bad("raft timing needs 0 < heartbeat_ms < election_min_ms < election_max_ms".into());
        }
        let l = &self.limits;
        if l.entry_commands_max == 0 || l.in_flight_entries_max == 0 || l.queue_commands_max == 0 {
            return bad("limits must be positive".into());
        }
        let dr = &self.dr;
        if dr.lag_ceiling_ms == 0 || dr.lag_ceiling_ms > RPO_REGULATORY_MS || dr.lag_budget_ms > dr.lag_ceiling_ms {
            return bad(format!(
                "dr needs 0 < lag_budget_ms <= lag_ceiling_ms <= {RPO_REGULATORY_MS} (the regulatory RPO)"
            ));
        }
        for (id, addr) in &self.routes {
            if id.parse::<u64>().is_err() || addr.is_empty() {
                return bad(format!("route {id:?} = {addr:?} must map a node id to an address"));
            }
        }
        if let Some(unknown) = self.failpoints.iter().find(|name| !crate::failpoint::ALL.contains(&name.as_str())) {
            return bad(format!("unknown failpoint {unknown:?}; known: {:?}", crate::failpoint::ALL));
        }
        Ok(())
    }

    /// The peer address overrides by node id.
    pub fn route_overrides(&self) -> BTreeMap<u64, String> {
        self.routes.iter().filter_map(|(id, addr)| Some((id.parse().ok()?, addr.clone()))).collect()
    }

    /// Entries between this node's snapshots (checkpoints): `snapshot_every_entries`, plus an
    /// eighth of it per node id modulo 4. Nodes of a site apply the same entries, so with one
    /// interval all of them encoded and fsynced a checkpoint at the same moment; with 1 M
    /// accounts that was three 100 MB checkpoints at once on two cores, heartbeats missed and
    /// the leader deposed (docs/benchmarks.md section 0). Different periods keep them apart.
    pub fn snapshot_interval(&self) -> u64 {
        staggered_snapshot_interval(self.raft.snapshot_every_entries, self.node_id)
    }

    /// Transfers written between this node's snapshots, staggered like
    /// [`NodeConfig::snapshot_interval`]; `None` when off.
    pub fn snapshot_transfers_interval(&self) -> Option<u64> {
        let every = self.raft.snapshot_every_transfers;
        (every > 0).then(|| staggered_snapshot_interval(every, self.node_id))
    }

    /// The openraft configuration.
    pub fn openraft(&self) -> openraft::Config {
        let r = &self.raft;
        openraft::Config {
            cluster_name: self.cluster.clone(),
            heartbeat_interval: r.heartbeat_ms,
            election_timeout_min: r.election_min_ms,
            election_timeout_max: r.election_max_ms,
            install_snapshot_timeout: r.install_snapshot_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_interval()),
            // openraft's own purge is off: `Replica::keep_log_purged` purges to
            // `keep_entries_after_snapshot` below the newest snapshot, and never past a
            // snapshot being sent (openraft would).
            max_in_snapshot_log_to_keep: u64::MAX,
            purge_batch_size: r.purge_batch_entries,
            snapshot_max_chunk_size: r.snapshot_chunk_bytes,
            // At most 8 entries, and about 512 KiB (`log.rs`), per AppendEntries. openraft 0.9 cancels an
            // AppendEntries after one heartbeat interval; a follower on a loaded machine could
            // not receive 64 entries (3.8 MB over TLS) in 100 ms, so every retry was cancelled
            // before it arrived and the follower, hearing nothing, campaigned (issue 10's 1 M
            // account runs).
            max_payload_entries: APPEND_ENTRIES_MAX,
            ..Default::default()
        }
    }
}
