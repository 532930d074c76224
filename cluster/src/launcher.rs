//! `LocalCluster`: every site of a topology as local processes, with their data under one
//! root folder. Used by `ledger-cluster up`, the integration tests and the chaos drills.
//!
//! Layout under the root: `keys/data-keys.toml` (shared by all nodes, so every site can open
//! personal data), and per node `<site>/node-<id>/{node.toml, data/, node.log}`.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_node::config::DrConfig;
use ledger_node::config::Limits;
use ledger_node::config::NodeConfig;
use ledger_node::config::RaftTiming;
use ledger_node::config::TlsFiles;
use ledger_node::security::pii::DataKeys;

use crate::certs::CertsDir;
use crate::process::NodeLauncher;
use crate::process::NodeProcess;
use crate::process::ProcessError;
use crate::topology::NodeSpec;
use crate::topology::SiteSpec;
use crate::topology::Topology;

/// A node's place: (site name, node id).
pub type NodeKey = (String, u64);

/// A free loopback port for a node to listen on, below the kernel's ephemeral range (32768+
/// on Linux): a node restarted on the same port must not find it taken by some outgoing
/// connection's ephemeral port in the meantime, which a port picked by binding port 0 can be.
///
/// The ports of one process never repeat (until `SPAN` of them were handed out): the start is
/// drawn once per process and the stride is prime to `SPAN`, so the sequence is a permutation.
/// (Drawing a fresh start on every call handed the same port to two nodes of one cluster now
/// and then: a drill's node failed with "Address already in use".)
pub fn node_port() -> u16 {
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: OnceLock<u64> = OnceLock::new();
    const LOW: u64 = 10_000;
    const SPAN: u64 = 22_000;
    const STRIDE: u64 = 104_729;
    // SPAN = 2^4 * 5^3 * 11; STRIDE is prime and none of those.
    const _: () = assert!(!STRIDE.is_multiple_of(2) && !STRIDE.is_multiple_of(5) && !STRIDE.is_multiple_of(11));
    const _: () = assert!(SPAN == 16 * 125 * 11);
    let seed = *SEED.get_or_init(|| {
        u64::from(std::process::id()) * 7919
            + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64)
    });
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (seed + n * STRIDE) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Grace period for a clean shutdown before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("io on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Process(#[from] ProcessError),
    #[error("no node {0:?} in the topology")]
    UnknownNode(NodeKey),
    #[error("client: {0}")]
    Client(#[from] ledger_client::ClientError),
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout { what: String, ms: u64 },
    #[error("{0}")]
    Other(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io { path: path.display().to_string(), source }
}

/// Adjusts every generated node configuration (timings for tests, routes for fault proxies).
pub type ConfigHook = Box<dyn Fn(&NodeKey, &mut NodeConfig) + Send + Sync>;

/// Transport security of a local cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Mutual TLS 1.3 with development certificates under `<root>/certs`.
    Tls,
    /// Plaintext, every caller admin. Development only.
    Insecure,
}

pub struct LocalCluster {
    pub root: PathBuf,
    pub topology: Topology,
    launcher: NodeLauncher,
    procs: BTreeMap<NodeKey, NodeProcess>,
    hook: Option<ConfigHook>,
    /// `None` when insecure.
    pub certs: Option<CertsDir>,
    /// The client identity this handle's clients present (a name under `certs/clients`).
    pub identity: String,
    /// Upstream endpoints a standby site is bootstrapped with, instead of the active site's
    /// client endpoints (fault proxies in tests and drills).
    pub upstreams: BTreeMap<String, Vec<String>>,
}

impl LocalCluster {
    /// Prepares `root` (creating it, the data keys and, with TLS, the certificates if needed).
    /// Starts nothing.
    pub fn new(
        root: &Path,
        topology: Topology,
        launcher: NodeLauncher,
        security: Security,
    ) -> Result<LocalCluster, ClusterError> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let keys_dir = root.join("keys");
        std::fs::create_dir_all(&keys_dir).map_err(io_err(&keys_dir))?;
        let key_file = keys_dir.join("data-keys.toml");
        if !key_file.exists() {
            DataKeys::generate_file(&key_file).map_err(io_err(&key_file))?;
        }
        let certs = match security {
            Security::Insecure => None,
            Security::Tls => {
                let certs = CertsDir::new(root.join("certs"));
                let nodes: Vec<NodeKey> =
                    topology.sites.iter().flat_map(|s| s.nodes.iter().map(|n| (s.name.clone(), n.id))).collect();
                certs.ensure_all(&nodes).map_err(|e| ClusterError::Other(e.to_string()))?;
                Some(certs)
            }
        };
        Ok(LocalCluster {
            root: root.to_path_buf(),
            topology,
            launcher,
            procs: BTreeMap::new(),
            hook: None,
            certs,
            identity: "admin".into(),
            upstreams: BTreeMap::new(),
        })
    }

    /// The same cluster seen by another client identity (e.g. `writer`, `operator-1`).
    pub fn client_config_as(&self, identity: &str, endpoints: Vec<String>) -> Result<ClientConfig, ClusterError> {
        let mut config = ClientConfig::insecure(endpoints);
        if let Some(certs) = &self.certs {
            let files = certs.client(identity);
            config.tls = Some(
                ledger_client::tls::client_tls(&files.ca, &files.cert, &files.key)
                    .map_err(|e| ClusterError::Other(e.to_string()))?,
            );
        }
        Ok(config)
    }

    pub fn is_tls(&self) -> bool {
        self.certs.is_some()
    }

    pub fn with_hook(mut self, hook: ConfigHook) -> LocalCluster {
        self.hook = Some(hook);
        self
    }

    pub fn keys(&self) -> Vec<NodeKey> {
        self.topology.sites.iter().flat_map(|s| s.nodes.iter().map(|n| (s.name.clone(), n.id))).collect()
    }

    pub fn site_keys(&self, site: &str) -> Vec<NodeKey> {
        self.keys().into_iter().filter(|(s, _)| s == site).collect()
    }

    fn spec(&self, key: &NodeKey) -> Result<(&SiteSpec, &NodeSpec), ClusterError> {
        let site = self.topology.site(&key.0).ok_or_else(|| ClusterError::UnknownNode(key.clone()))?;
        let node = site.node(key.1).ok_or_else(|| ClusterError::UnknownNode(key.clone()))?;
        Ok((site, node))
    }

    pub fn node_dir(&self, key: &NodeKey) -> PathBuf {
        self.root.join(&key.0).join(format!("node-{}", key.1))
    }

    pub fn data_dir(&self, key: &NodeKey) -> PathBuf {
        self.node_dir(key).join("data")
    }

    pub fn log_path(&self, key: &NodeKey) -> PathBuf {
        self.node_dir(key).join("node.log")
    }

    pub fn data_key_file(&self) -> PathBuf {
        self.root.join("keys").join("data-keys.toml")
    }

    /// The configuration a node is started with.
    pub fn node_config(&self, key: &NodeKey) -> Result<NodeConfig, ClusterError> {
        let (site, node) = self.spec(key)?;
        let mut config = NodeConfig {
            node_id: node.id,
            site: site.name.clone(),
            zone: node.zone.clone(),
            cluster: site.name.clone(),
            client_addr: node.client_addr.clone(),
            peer_addr: node.peer_addr.clone(),
            metrics_addr: node.metrics_addr.clone(),
            data_dir: self.data_dir(key),
            data_key_file: self.data_key_file(),
            insecure: self.certs.is_none(),
            tls: self.certs.as_ref().map(|certs| {
                let files = certs.node(&site.name, node.id);
                TlsFiles { ca: files.ca, cert: files.cert, key: files.key }
            }),
            raft: RaftTiming::default(),
            limits: Limits::default(),
            routes: BTreeMap::new(),
            dr: DrConfig {
                peer_sites: self
                    .topology
                    .sites
                    .iter()
                    .filter(|s| s.name != site.name)
                    .flat_map(|s| s.endpoints())
                    .collect(),
                ..DrConfig::default()
            },
            failpoints: Vec::new(),
        };
        if let Some(hook) = &self.hook {
            hook(key, &mut config);
        }
        Ok(config)
    }

    fn write_config(&self, key: &NodeKey) -> Result<PathBuf, ClusterError> {
        let config = self.node_config(key)?;
        let dir = self.node_dir(key);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join("node.toml");
        let text = toml::to_string_pretty(&config).map_err(|e| ClusterError::Other(e.to_string()))?;
        std::fs::write(&path, text).map_err(io_err(&path))?;
        Ok(path)
    }

    /// Starts one node (writing its configuration first).
    pub fn start(&mut self, key: &NodeKey) -> Result<u32, ClusterError> {
        if let Some(proc) = self.procs.get_mut(key)
            && proc.is_running()
        {
            return Ok(proc.pid());
        }
        let config = self.write_config(key)?;
        let proc = NodeProcess::start(&self.launcher, &config, &self.log_path(key))?;
        let pid = proc.pid();
        self.procs.insert(key.clone(), proc);
        Ok(pid)
    }

    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        for key in self.keys() {
            self.start(&key)?;
        }
        Ok(())
    }

    pub fn pid(&self, key: &NodeKey) -> Option<u32> {
        self.procs.get(key).map(NodeProcess::pid)
    }

    pub fn is_running(&mut self, key: &NodeKey) -> bool {
        self.procs.get_mut(key).is_some_and(NodeProcess::is_running)
    }

    /// How the node's process ended, if it has.
    pub fn exit_status(&mut self, key: &NodeKey) -> Option<std::process::ExitStatus> {
        self.procs.get_mut(key).and_then(NodeProcess::exit_status)
    }

    /// kill -9.
    pub fn kill(&mut self, key: &NodeKey) {
        if let Some(proc) = self.procs.remove(key) {
            proc.kill();
        }
    }

    /// SIGTERM, then SIGKILL after `STOP_GRACE`. Returns whether it stopped cleanly.
    pub fn stop(&mut self, key: &NodeKey) -> bool {
        match self.procs.remove(key) {
            Some(proc) => proc.stop(STOP_GRACE),
            None => true,
        }
    }

    /// Stops every node (in parallel) and returns the keys that did not stop cleanly.
    pub fn stop_all(&mut self) -> Vec<NodeKey> {
        let procs = std::mem::take(&mut self.procs);
        let handles: Vec<_> =
            procs.into_iter().map(|(key, proc)| std::thread::spawn(move || (key, proc.stop(STOP_GRACE)))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).filter(|(_, clean)| !clean).map(|(key, _)| key).collect()
    }

    pub fn pause(&mut self, key: &NodeKey) -> Result<(), ClusterError> {
        self.procs.get_mut(key).ok_or_else(|| ClusterError::UnknownNode(key.clone()))?.pause()?;
        Ok(())
    }

    pub fn resume(&mut self, key: &NodeKey) -> Result<(), ClusterError> {
        self.procs.get_mut(key).ok_or_else(|| ClusterError::UnknownNode(key.clone()))?.resume()?;
        Ok(())
    }

    /// Deletes a stopped node's data directory (a lost disk).
    pub fn wipe(&mut self, key: &NodeKey) -> Result<(), ClusterError> {
        assert!(!self.is_running(key), "wipe a node only while it is stopped");
        let dir = self.data_dir(key);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    fn client_config(&self, endpoints: Vec<String>) -> ClientConfig {
        self.client_config_as(&self.identity, endpoints).expect("client certificates exist for the identity")
    }

    /// A client of every node of `site`.
    pub fn site_client(&self, site: &str) -> Result<LedgerClient, ClusterError> {
        let spec = self.topology.site(site).ok_or_else(|| ClusterError::Other(format!("no site {site}")))?;
        Ok(LedgerClient::new(self.client_config(spec.endpoints()))?)
    }

    /// A client of one node only.
    pub fn node_client(&self, key: &NodeKey) -> Result<LedgerClient, ClusterError> {
        let (_, node) = self.spec(key)?;
        Ok(LedgerClient::new(self.client_config(vec![node.client_addr.clone()]))?)
    }

    /// A client of every endpoint of every site, active site first.
    pub fn client(&self) -> Result<LedgerClient, ClusterError> {
        Ok(LedgerClient::new(self.client_config(self.topology.all_endpoints()))?)
    }

    /// Status of one node, one attempt.
    pub async fn status(&self, key: &NodeKey) -> Result<pb::NodeStatus, ClusterError> {
        Ok(self.node_client(key)?.status_once(Duration::from_secs(2)).await?)
    }

    /// Polls `f` every 50 ms until it returns `Some`, or fails after `timeout`.
    pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = f().await {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout { what: what.to_string(), ms: timeout.as_millis() as u64 });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every given node answers `Status`.
    pub async fn wait_serving(&self, keys: &[NodeKey], timeout: Duration) -> Result<(), ClusterError> {
        for key in keys {
            Self::poll(&format!("node {key:?} to serve"), timeout, || async { self.status(key).await.ok() }).await?;
        }
        Ok(())
    }

    /// Forms every site whose nodes are all pristine: Bootstrap on the site's first node with
    /// every node of the site as a voter. Sites already formed are left alone.
    pub async fn bootstrap(&self) -> Result<(), ClusterError> {
        for site in &self.topology.sites {
            let ids: Vec<u64> = site.nodes.iter().map(|n| n.id).collect();
            self.bootstrap_site(&site.name, &ids).await?;
        }
        Ok(())
    }

    /// Forms `site` with the nodes `ids` as voters, unless one of them is already formed.
    /// A standby site gets the active site's endpoints as its upstream.
    pub async fn bootstrap_site(&self, site_name: &str, ids: &[u64]) -> Result<(), ClusterError> {
        let site = self.topology.site(site_name).ok_or_else(|| ClusterError::Other(format!("no site {site_name}")))?;
        let keys: Vec<NodeKey> = ids.iter().map(|id| (site.name.clone(), *id)).collect();
        for key in &keys {
            let status = self.status(key).await?;
            if !status.members.is_empty() || status.site.as_ref().is_some_and(|s| s.role != "uninitialized") {
                return Ok(());
            }
        }
        let members = site
            .nodes
            .iter()
            .filter(|n| ids.contains(&n.id))
            .map(|n| pb::Member {
                node_id: n.id,
                zone: n.zone.clone(),
                client_addr: n.client_addr.clone(),
                peer_addr: n.peer_addr.clone(),
                voter: true,
                matched_index: 0,
            })
            .collect();
        let upstream = match (site.role.as_str(), self.upstreams.get(&site.name)) {
            ("standby", Some(upstream)) => upstream.clone(),
            ("standby", None) => self.topology.active_site().endpoints(),
            _ => Vec::new(),
        };
        let request = pb::BootstrapRequest {
            site: site.name.clone(),
            role: site.role.clone(),
            epoch: 1,
            members,
            upstream,
            dual_control: self.is_tls(),
        };
        let response = self.node_client(&keys[0])?.bootstrap(request).await?;
        tracing::info!(site = %site.name, formed = response.formed, message = %response.message, "bootstrap");
        Ok(())
    }

    /// Waits until every site has a leader known to all its running nodes and a site role.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        let keys: Vec<NodeKey> = self.keys().into_iter().filter(|k| self.procs.contains_key(k)).collect();
        for site in self.topology.sites.clone() {
            let site_keys: Vec<&NodeKey> = keys.iter().filter(|k| k.0 == site.name).collect();
            Self::poll(&format!("site {} to have a leader and a role", site.name), timeout, || async {
                let mut leader = None;
                for key in &site_keys {
                    let status = self.status(key).await.ok()?;
                    let role = status.site.as_ref().map(|s| s.role.clone()).unwrap_or_default();
                    if status.leader_id == 0 || role == "uninitialized" || leader.is_some_and(|l| l != status.leader_id)
                    {
                        return None;
                    }
                    leader = Some(status.leader_id);
                }
                Some(())
            })
            .await?;
        }
        Ok(())
    }

    /// The current leader of `site`, as its nodes agree.
    pub async fn leader(&self, site: &str, timeout: Duration) -> Result<NodeKey, ClusterError> {
        let keys = self.site_keys(site);
        Self::poll(&format!("a leader in site {site}"), timeout, || async {
            for key in &keys {
                if let Ok(status) = self.status(key).await
                    && status.raft_role == "leader"
                {
                    return Some((site.to_string(), status.node_id));
                }
            }
            None
        })
        .await
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Dropping the handles kills any process still running (see `NodeProcess::drop`).
        self.procs.clear();
    }
}

#[cfg(test)]
mod tests {
    /// Goal: the ports one process hands out never repeat, so no two nodes (or a node and its
    /// metrics listener) of one cluster share one. Method: take 3,000 and count them.
    #[test]
    fn node_ports_never_repeat_in_a_process() {
        let ports: Vec<u16> = (0..3_000).map(|_| super::node_port()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| (10_000..32_000).contains(p)), "below the ephemeral range");
    }
}
