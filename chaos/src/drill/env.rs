//! A drill's environment: both sites on loopback with every link through a fault proxy, the
//! clients and operator handles that reach them, the drill's event log, and the checker run
//! over every node at the end. Scenarios act on it; it must not know any scenario.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::dr;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use ledger_cluster::launcher::Security;
use ledger_cluster::topology::NodeSpec;
use ledger_cluster::topology::SiteSpec;
use ledger_cluster::topology::Topology;

use crate::drill::config::DrillConfig;
use crate::drill::config::WAIT;
use crate::drill::config::WORKLOAD_ATTEMPT_TIMEOUT;
use crate::drill::report::Event;
use crate::invariants;
use crate::invariants::Verdict;
use crate::proxy::FaultProxy;
use crate::proxy::LinkState;
use crate::rpo;
use crate::workload::History;
use crate::workload::wall_ms;

/// Every link of a drill, through proxies.
struct Network {
    /// Raft links inside a site: (site, from node, to node).
    peer: BTreeMap<(String, u64, u64), FaultProxy>,
    /// Links between sites: (from site, to site) -> one proxy per node of `to` (client port).
    sites: BTreeMap<(String, String), Vec<FaultProxy>>,
    /// Client links: one proxy per node (client port).
    client: BTreeMap<NodeKey, FaultProxy>,
}

pub struct Env {
    pub cluster: LocalCluster,
    net: Network,
    pub accounts: Vec<String>,
    /// When the load began: events are timed from here.
    pub started: Instant,
    pub events: Vec<Event>,
    pub notes: Vec<String>,
}

/// What the checker found at the end of a drill.
pub struct Checked {
    pub verdicts: Vec<Verdict>,
    /// Ids of the transfers the active site's final journal applies (its longest node's).
    pub present: BTreeSet<String>,
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", ledger_cluster::launcher::node_port())
}

fn drill_topology() -> Topology {
    let site = |name: &str, role: &str, zones: [&str; 3]| SiteSpec {
        name: name.into(),
        role: role.into(),
        nodes: zones
            .iter()
            .enumerate()
            .map(|(i, zone)| NodeSpec {
                id: i as u64 + 1,
                zone: zone.to_string(),
                client_addr: free_addr(),
                peer_addr: free_addr(),
                metrics_addr: free_addr(),
            })
            .collect(),
    };
    Topology {
        sites: vec![site("primary", "active", ["a", "b", "c"]), site("dr", "standby", ["dr-a", "dr-b", "dr-c"])],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("cluster: {0}")]
    Cluster(#[from] ledger_cluster::launcher::ClusterError),
    #[error("client: {0}")]
    Client(#[from] ledger_client::ClientError),
    #[error("operator command: {0}")]
    Dr(#[from] dr::DrError),
    #[error("collecting node views: {0}")]
    Collect(#[from] invariants::CollectError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl Env {
    /// Starts both sites with every link proxied, forms them, opens and funds the accounts.
    pub async fn start(config: &DrillConfig) -> Result<Env, DrillError> {
        let topology = drill_topology();
        let zone = LinkState::healthy(config.zone_delay);
        let wan = LinkState::healthy(config.wan_delay);
        let mut net = Network { peer: BTreeMap::new(), sites: BTreeMap::new(), client: BTreeMap::new() };
        for site in &topology.sites {
            for from in &site.nodes {
                for to in site.nodes.iter().filter(|n| n.id != from.id) {
                    let proxy = FaultProxy::start(&to.peer_addr, zone).await?;
                    net.peer.insert((site.name.clone(), from.id, to.id), proxy);
                }
                net.client.insert((site.name.clone(), from.id), FaultProxy::start(&from.client_addr, zone).await?);
            }
            for other in topology.sites.iter().filter(|s| s.name != site.name) {
                let mut proxies = Vec::new();
                for node in &other.nodes {
                    proxies.push(FaultProxy::start(&node.client_addr, wan).await?);
                }
                net.sites.insert((site.name.clone(), other.name.clone()), proxies);
            }
        }
        let routes: BTreeMap<(String, u64), BTreeMap<String, String>> =
            net.peer.iter().fold(BTreeMap::new(), |mut routes, ((site, from, to), proxy)| {
                routes.entry((site.clone(), *from)).or_default().insert(to.to_string(), proxy.addr());
                routes
            });
        let site_links: BTreeMap<(String, String), Vec<String>> =
            net.sites.iter().map(|(k, proxies)| (k.clone(), proxies.iter().map(FaultProxy::addr).collect())).collect();
        let peer_sites = site_links.clone();
        let cadence = config.scenario.snapshot_cadence();
        std::fs::create_dir_all(&config.report_dir)?;
        // `events.log` is this drill's alone (see [`Env::event`]).
        let _ = std::fs::remove_file(config.report_dir.join("events.log"));
        let root = config.report_dir.join("cluster");
        let mut cluster = LocalCluster::new(&root, topology.clone(), config.launcher.clone(), Security::Tls)?
            .with_hook(Box::new(move |key, node| {
                node.raft.heartbeat_ms = 100;
                node.raft.election_min_ms = 500;
                node.raft.election_max_ms = 1000;
                node.raft.snapshot_every_entries = cadence.every_entries;
                node.raft.keep_entries_after_snapshot = cadence.keep_entries;
                node.raft.snapshot_chunk_bytes = cadence.chunk_bytes;
                node.raft.install_snapshot_timeout_ms = 20_000;
                node.limits.sled_cache_bytes = 32 * 1024 * 1024;
                node.limits.write_timeout_ms = 8_000;
                node.routes = routes.get(key).cloned().unwrap_or_default();
                node.dr.peer_sites = peer_sites
                    .iter()
                    .filter(|((from, _), _)| *from == key.0)
                    .flat_map(|(_, addrs)| addrs.clone())
                    .collect();
            }));
        cluster.upstreams.insert("dr".into(), site_links[&("dr".to_string(), "primary".to_string())].clone());
        cluster.start_all()?;
        let keys = cluster.keys();
        cluster.wait_serving(&keys, WAIT).await?;
        cluster.bootstrap().await?;
        cluster.wait_ready(WAIT).await?;
        let mut env = Env {
            cluster,
            net,
            accounts: (0..16).map(|i| format!("acct-{i}")).collect(),
            started: Instant::now(),
            events: Vec::new(),
            notes: Vec::new(),
        };
        env.open_accounts().await?;
        Ok(env)
    }

    async fn open_accounts(&mut self) -> Result<(), DrillError> {
        let client = self.client_as("writer")?;
        let mut accounts = vec![pb::NewAccount { id: "bank".into(), currency: "EUR".into(), ..Default::default() }];
        accounts.extend(self.accounts.iter().map(|id| pb::NewAccount {
            id: id.clone(),
            currency: "EUR".into(),
            flags: Some(pb::AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: false,
            }),
            ..Default::default()
        }));
        client.create_accounts(accounts).await?;
        let funding = self
            .accounts
            .iter()
            .map(|id| pb::NewTransfer {
                id: format!("fund-{id}"),
                debit_account_id: "bank".into(),
                credit_account_id: id.clone(),
                amount: "1000.00".into(),
                ..Default::default()
            })
            .collect();
        client.create_transfers(funding, true).await?;
        Ok(())
    }

    /// A client of every node of both sites, through the client proxies, active site first.
    pub fn client_as(&self, identity: &str) -> Result<LedgerClient, DrillError> {
        Ok(LedgerClient::new(self.client_config_as(identity)?)?)
    }

    fn client_config_as(&self, identity: &str) -> Result<ClientConfig, DrillError> {
        let mut endpoints = Vec::new();
        for site in ["primary", "dr"] {
            endpoints.extend(self.net.client.iter().filter(|((s, _), _)| s == site).map(|(_, p)| p.addr()));
        }
        Ok(self.cluster.client_config_as(identity, endpoints)?)
    }

    /// The workload's client: a core system that gives each attempt [`WORKLOAD_ATTEMPT_TIMEOUT`]
    /// before trying another node. A hung node (paused, or a gray failure) is only ever
    /// detected by a timeout, so this bounds how long a client stays with one; retrying is
    /// safe because transfer ids are idempotency keys.
    pub fn workload_client(&self) -> Result<LedgerClient, DrillError> {
        let mut config = self.client_config_as("writer")?;
        config.attempt_timeout = WORKLOAD_ATTEMPT_TIMEOUT;
        Ok(LedgerClient::new(config)?)
    }

    /// Endpoints (client proxies) of `site`.
    pub fn site_endpoints(&self, site: &str) -> BTreeSet<String> {
        self.net.client.iter().filter(|((s, _), _)| s == site).map(|(_, p)| p.addr()).collect()
    }

    /// The DR operator commands as `identity`, shipping through the site-link proxies.
    pub fn operator(&self, identity: &str) -> Result<dr::Sites, DrillError> {
        let mut sites =
            dr::Sites::new(self.cluster.topology.clone(), self.cluster.client_config_as(identity, Vec::new())?, WAIT);
        sites.upstream_routes = self
            .net
            .sites
            .iter()
            .map(|(k, proxies)| (k.clone(), proxies.iter().map(FaultProxy::addr).collect()))
            .collect();
        Ok(sites)
    }

    /// Records a fault or an operator action. It is also appended to `events.log` beside the
    /// report as it happens, so that a drill which cannot run to its end still tells what it
    /// did (its report then has no events).
    pub fn event(&mut self, what: impl Into<String>) -> u64 {
        let wall = wall_ms();
        let what = what.into();
        tracing::info!(%what, "drill event");
        let at_ms = self.started.elapsed().as_millis() as u64;
        if let Some(dir) = self.cluster.root.parent() {
            use std::io::Write;
            let appended = std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join("events.log"))
                .and_then(|mut f| writeln!(f, "{at_ms} {wall} {what}"));
            if let Err(e) = appended {
                tracing::warn!(error = %e, "could not append to events.log");
            }
        }
        self.events.push(Event { at_ms, wall_ms: wall, what });
        wall
    }

    /// The leader a majority of the site's running nodes agree on, and which says so itself.
    pub async fn leader(&self, site: &str) -> Result<NodeKey, DrillError> {
        let keys: Vec<NodeKey> =
            self.cluster.site_keys(site).into_iter().filter(|k| self.cluster.pid(k).is_some()).collect();
        let cluster = &self.cluster;
        Ok(LocalCluster::poll(&format!("a stable leader in {site}"), WAIT, || async {
            let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
            let mut claims = BTreeSet::new();
            for key in &keys {
                let Ok(status) = cluster.status(key).await else { continue };
                if status.leader_id != 0 {
                    *votes.entry(status.leader_id).or_default() += 1;
                }
                if status.raft_role == "leader" {
                    claims.insert(status.node_id);
                }
            }
            let (leader, n) = votes.into_iter().max_by_key(|(_, n)| *n)?;
            (n * 2 > self.cluster.site_keys(site).len() && claims.contains(&leader)).then(|| (site.to_string(), leader))
        })
        .await?)
    }

    /// Notes whether `key` was still the leader right after a fault meant for the leader.
    pub async fn note_if_not_leader(&mut self, key: &NodeKey) {
        if let Ok(status) = self.cluster.status(key).await
            && status.raft_role != "leader"
        {
            self.notes.push(format!(
                "node {} was no longer the leader when the fault hit (it is {}): the drill did not isolate the leader",
                key.1, status.raft_role
            ));
        }
    }

    /// Both directions of every Raft link of `key`.
    pub fn peer_links_of(&self, key: &NodeKey) -> Vec<&FaultProxy> {
        self.net
            .peer
            .iter()
            .filter(|((site, from, to), _)| *site == key.0 && (*from == key.1 || *to == key.1))
            .map(|(_, p)| p)
            .collect()
    }

    pub fn outgoing_peer_links_of(&self, key: &NodeKey) -> Vec<&FaultProxy> {
        self.net.peer.iter().filter(|((site, from, _), _)| *site == key.0 && *from == key.1).map(|(_, p)| p).collect()
    }

    pub fn site_links(&self) -> Vec<&FaultProxy> {
        self.net.sites.values().flatten().collect()
    }

    /// Waits until every running node of `active` and of the other site hold the same head.
    pub async fn converge(&mut self) -> Result<(), DrillError> {
        let keys: Vec<NodeKey> = self.cluster.keys().into_iter().filter(|k| self.cluster.pid(k).is_some()).collect();
        let cluster = &self.cluster;
        LocalCluster::poll("every node to hold the same journal head", WAIT, || async {
            let mut heads = BTreeSet::new();
            for key in &keys {
                let head = cluster.status(key).await.ok()?.journal_head?;
                heads.insert((head.seq, head.hash));
            }
            (heads.len() == 1).then_some(())
        })
        .await?;
        Ok(())
    }

    /// Runs the checker over every running node; the active site is whichever is active.
    /// Also returns what the active site's final journal applies, for the RPO measurement.
    pub async fn check(&self, history: &History, reconciled: &BTreeSet<String>) -> Result<Checked, DrillError> {
        let mut accounts = self.accounts.clone();
        accounts.push("bank".into());
        let mut active = Vec::new();
        let mut standbys = Vec::new();
        for key in self.cluster.keys() {
            if self.cluster.pid(&key).is_none() {
                continue;
            }
            let client = self.cluster.node_client(&key)?;
            let status = client.status_once(Duration::from_secs(5)).await?;
            let view = invariants::collect(&key.0, &client, &accounts).await?;
            if status.site.is_some_and(|s| s.role == "active") {
                active.push(view);
            } else {
                standbys.push(view);
            }
        }
        let input = invariants::CheckInput { active: &active, standbys: &standbys, history, reconciled };
        let verdicts = invariants::check_all(&input);
        // The same reference as the "every acknowledged transfer is present" invariant.
        let present = active
            .iter()
            .max_by_key(|v| v.journal.len())
            .map(|reference| rpo::applied_transfer_ids(&reference.journal).into_iter().map(String::from).collect())
            .unwrap_or_default();
        Ok(Checked { verdicts, present })
    }
}
