//! Drills: a primary site (three zones) and a DR site on loopback, every link through a fault
//! proxy (zone delay inside a site, WAN delay between sites), a workload recording every
//! acknowledgement, one scripted disaster, the operator commands SREs run, and the checker.
//! Each drill ends with a report: the faults and their times, RPO and RTO measured from the
//! acknowledgements, every invariant's verdict, and PASS/FAIL against the regulatory targets
//! (RPO <= 5 min, RTO <= 30 min) with our stretch targets beside them.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::dr;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use ledger_cluster::launcher::Security;
use ledger_cluster::process::NodeLauncher;
use ledger_cluster::topology::NodeSpec;
use ledger_cluster::topology::SiteSpec;
use ledger_cluster::topology::Topology;
use serde::Serialize;

use crate::invariants;
use crate::invariants::Verdict;
use crate::proxy::FaultProxy;
use crate::proxy::LinkState;
use crate::proxy::Mode;
use crate::workload::History;
use crate::workload::Workload;
use crate::workload::WorkloadConfig;
use crate::workload::wall_ms;

/// Regulatory targets for the loss of the primary site.
pub const RPO_REGULATORY_S: f64 = 300.0;
pub const RTO_REGULATORY_S: f64 = 1800.0;
/// Our own targets: a site loss with a scripted promotion, and a leader lost inside a site.
pub const RPO_STRETCH_SITE_S: f64 = 1.0;
pub const RTO_STRETCH_SITE_S: f64 = 10.0;
pub const RTO_STRETCH_LEADER_S: f64 = 3.0;
/// Per-attempt timeout of the workload's client (writes take tens of ms in the drills).
pub const WORKLOAD_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Deadline of every wait inside a drill.
const WAIT: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Scenario {
    LeaderKill,
    ZoneLoss,
    MinorityPartition,
    LeaderIsolation,
    LeaderPause,
    NodeWipeRejoin,
    DrLinkCut,
    PlannedSwitchover,
    PrimarySiteLoss,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::LeaderKill,
        Scenario::ZoneLoss,
        Scenario::MinorityPartition,
        Scenario::LeaderIsolation,
        Scenario::LeaderPause,
        Scenario::NodeWipeRejoin,
        Scenario::DrLinkCut,
        Scenario::PlannedSwitchover,
        Scenario::PrimarySiteLoss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LeaderKill => "leader-kill",
            Scenario::ZoneLoss => "zone-loss",
            Scenario::MinorityPartition => "minority-partition",
            Scenario::LeaderIsolation => "leader-isolation",
            Scenario::LeaderPause => "leader-pause",
            Scenario::NodeWipeRejoin => "node-wipe-rejoin",
            Scenario::DrLinkCut => "dr-link-cut",
            Scenario::PlannedSwitchover => "planned-switchover",
            Scenario::PrimarySiteLoss => "primary-site-loss",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn description(self) -> &'static str {
        match self {
            Scenario::LeaderKill => "kill -9 the primary's leader under load, restart it later",
            Scenario::ZoneLoss => "kill every primary node of one zone under load, restart them later",
            Scenario::MinorityPartition => "cut one primary follower off its peers (both ways), heal",
            Scenario::LeaderIsolation => "blackhole the primary leader's outgoing peer links only (one way), heal",
            Scenario::LeaderPause => "SIGSTOP the primary leader, SIGCONT it a few seconds later",
            Scenario::NodeWipeRejoin => "stop a primary follower, wipe its data dir, restart: it rejoins by snapshot",
            Scenario::DrLinkCut => "cut the links between the sites, heal: the DR site catches up",
            Scenario::PlannedSwitchover => "dr switchover under load (two operators approve): zero loss",
            Scenario::PrimarySiteLoss => {
                "kill the whole primary site under load, dr promote --force, keep writing, bring the old site back, dr failback"
            }
        }
    }

    /// Losing the whole primary site (regulatory targets apply in full), or something inside
    /// one site.
    fn is_site_loss(self) -> bool {
        self == Scenario::PrimarySiteLoss
    }

    /// Scenarios in which the primary loses its leader (the RTO stretch target applies).
    fn loses_leader(self) -> bool {
        matches!(self, Scenario::LeaderKill | Scenario::LeaderIsolation | Scenario::LeaderPause)
    }
}

#[derive(Clone, Debug)]
pub struct DrillConfig {
    pub scenario: Scenario,
    /// Length of the load phase (the fault happens inside it).
    pub duration: Duration,
    pub seed: u64,
    /// Where the report, the history and the cluster's data and logs go.
    pub report_dir: PathBuf,
    /// One-way delay between the sites.
    pub wan_delay: Duration,
    /// One-way delay between the zones of a site (and to clients).
    pub zone_delay: Duration,
    pub launcher: NodeLauncher,
}

/// A fault (or operator action) and when it happened.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Milliseconds since the drill's load began.
    pub at_ms: u64,
    pub wall_ms: u64,
    pub what: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub limit_s: f64,
    pub measured_s: Option<f64>,
    pub met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub duration_s: f64,
    pub events: Vec<Event>,
    pub acknowledged: usize,
    pub acknowledged_ok: usize,
    pub failed_attempts: u64,
    /// Acknowledged transfers lost (only a site loss may lose any: inside its RPO window,
    /// each in the reconciliation report).
    pub rpo_lost_transfers: usize,
    /// Seconds of acknowledged writes at risk: from the RPO point (the last record the DR site
    /// held) to the fault. 0 when nothing could be lost.
    pub rpo_s: f64,
    /// Seconds from the fault to the first acknowledged write served by the right site.
    pub rto_s: Option<f64>,
    pub regulatory: Vec<Target>,
    pub stretch: Vec<Target>,
    pub verdicts: Vec<Verdict>,
    pub passed: bool,
    pub notes: Vec<String>,
}

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
    started: Instant,
    events: Vec<Event>,
    notes: Vec<String>,
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
        std::fs::create_dir_all(&config.report_dir)?;
        let root = config.report_dir.join("cluster");
        let mut cluster = LocalCluster::new(&root, topology.clone(), config.launcher.clone(), Security::Tls)?
            .with_hook(Box::new(move |key, node| {
                node.raft.heartbeat_ms = 100;
                node.raft.election_min_ms = 500;
                node.raft.election_max_ms = 1000;
                node.raft.snapshot_every_entries = 200;
                node.raft.keep_entries_after_snapshot = 50;
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
    fn site_endpoints(&self, site: &str) -> BTreeSet<String> {
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

    fn event(&mut self, what: impl Into<String>) -> u64 {
        let wall = wall_ms();
        let what = what.into();
        tracing::info!(%what, "drill event");
        self.events.push(Event { at_ms: self.started.elapsed().as_millis() as u64, wall_ms: wall, what });
        wall
    }

    /// The leader a majority of the site's running nodes agree on, and which says so itself.
    async fn leader(&self, site: &str) -> Result<NodeKey, DrillError> {
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
    async fn note_if_not_leader(&mut self, key: &NodeKey) {
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
    fn peer_links_of(&self, key: &NodeKey) -> Vec<&FaultProxy> {
        self.net
            .peer
            .iter()
            .filter(|((site, from, to), _)| *site == key.0 && (*from == key.1 || *to == key.1))
            .map(|(_, p)| p)
            .collect()
    }

    fn outgoing_peer_links_of(&self, key: &NodeKey) -> Vec<&FaultProxy> {
        self.net.peer.iter().filter(|((site, from, _), _)| *site == key.0 && *from == key.1).map(|(_, p)| p).collect()
    }

    fn site_links(&self) -> Vec<&FaultProxy> {
        self.net.sites.values().flatten().collect()
    }

    /// Waits until every running node of `active` and of the other site hold the same head.
    async fn converge(&mut self) -> Result<(), DrillError> {
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
    async fn check(&self, history: &History, reconciled: &BTreeSet<String>) -> Result<Vec<Verdict>, DrillError> {
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
        Ok(invariants::check_all(&input))
    }
}

/// RTO: from `fault_ms` to the first acknowledgement, served by `site_endpoints`, of a
/// request first sent after the fault: when a client that starts after the disaster is served
/// again. (Requests in flight at the fault can complete right after it and say nothing about
/// recovery.)
fn rto_s(history: &History, fault_ms: u64, site_endpoints: &BTreeSet<String>) -> Option<f64> {
    history
        .ok()
        .filter(|a| site_endpoints.contains(&a.endpoint) && a.sent_at_ms >= fault_ms)
        .map(|a| a.acked_at_ms)
        .min()
        .map(|t| (t - fault_ms) as f64 / 1000.0)
}

async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Runs one drill and writes its report (JSON, Markdown) and history under `report_dir`.
pub async fn run(config: &DrillConfig) -> Result<DrillReport, DrillError> {
    let mut env = Env::start(config).await?;
    let writer = env.workload_client()?;
    let workload = Workload::start(
        vec![writer],
        WorkloadConfig {
            clients: 6,
            batch: 4,
            accounts: env.accounts.clone(),
            pending_every: 9,
            pause: Duration::from_millis(5),
            run_id: format!("{}-{}", config.scenario.name(), config.seed),
            seed: config.seed,
        },
    );
    env.started = Instant::now();
    env.event("load started");
    let third = config.duration / 3;
    sleep(third).await;
    let mut rng = config.seed;
    let mut pick = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut reconciled = BTreeSet::new();
    let fault_ms;
    let mut right_site = "primary";
    let mut rpo_s = 0.0;
    let mut rpo_lost = 0;
    let scenario = config.scenario;
    let history = match scenario {
        Scenario::LeaderKill => {
            let leader = env.leader("primary").await?;
            env.cluster.kill(&leader);
            fault_ms = env.event(format!("kill -9 primary leader {}", leader.1));
            env.leader("primary").await?;
            env.event("new primary leader elected");
            sleep(third).await;
            env.cluster.start(&leader)?;
            env.event(format!("restarted node {}", leader.1));
            sleep(third).await;
            workload.stop(WAIT).await
        }
        Scenario::ZoneLoss => {
            let zones = ["a", "b", "c"];
            let zone = zones[pick(3) as usize];
            let victims: Vec<NodeKey> = env
                .cluster
                .topology
                .site("primary")
                .expect("primary")
                .nodes
                .iter()
                .filter(|n| n.zone == zone)
                .map(|n| ("primary".to_string(), n.id))
                .collect();
            for key in &victims {
                env.cluster.kill(key);
            }
            fault_ms = env.event(format!("zone {zone} lost: kill -9 {victims:?}"));
            env.leader("primary").await?;
            sleep(third).await;
            for key in &victims {
                env.cluster.start(key)?;
            }
            env.event(format!("zone {zone} back"));
            sleep(third).await;
            workload.stop(WAIT).await
        }
        Scenario::MinorityPartition => {
            let leader = env.leader("primary").await?;
            let followers: Vec<u64> = (1..=3).filter(|id| *id != leader.1).collect();
            let victim = ("primary".to_string(), followers[pick(2) as usize]);
            for link in env.peer_links_of(&victim) {
                link.partition();
            }
            fault_ms = env.event(format!("partition follower {} from its peers (both ways)", victim.1));
            sleep(third).await;
            for link in env.peer_links_of(&victim) {
                link.heal();
            }
            env.event("partition healed");
            sleep(third).await;
            workload.stop(WAIT).await
        }
        Scenario::LeaderIsolation => {
            let leader = env.leader("primary").await?;
            for link in env.outgoing_peer_links_of(&leader) {
                link.set(LinkState { forward: Mode::Blackhole, backward: Mode::Pass, delay: config.zone_delay });
            }
            fault_ms = env.event(format!("blackhole leader {}'s outgoing peer links (one way)", leader.1));
            env.note_if_not_leader(&leader).await;
            let cluster = &env.cluster;
            LocalCluster::poll("a new leader", WAIT, || async {
                let leader_now = cluster.leader("primary", Duration::from_secs(1)).await.ok()?;
                (leader_now != leader).then_some(())
            })
            .await?;
            env.event("new leader elected");
            sleep(third).await;
            for link in env.outgoing_peer_links_of(&leader) {
                link.heal();
            }
            env.event("links healed");
            sleep(third).await;
            workload.stop(WAIT).await
        }
        Scenario::LeaderPause => {
            let leader = env.leader("primary").await?;
            env.cluster.pause(&leader)?;
            fault_ms = env.event(format!("SIGSTOP leader {}", leader.1));
            sleep(third.max(Duration::from_secs(3))).await;
            env.cluster.resume(&leader)?;
            env.event(format!("SIGCONT node {}", leader.1));
            sleep(third).await;
            workload.stop(WAIT).await
        }
        Scenario::NodeWipeRejoin => {
            let leader = env.leader("primary").await?;
            let victim = ("primary".to_string(), (1..=3).find(|id| *id != leader.1).expect("a follower"));
            env.cluster.stop(&victim);
            env.cluster.wipe(&victim)?;
            fault_ms = env.event(format!("stop follower {} and wipe its data dir", victim.1));
            sleep(third).await;
            env.cluster.start(&victim)?;
            env.event(format!("restarted wiped node {}", victim.1));
            sleep(third).await;
            let history = workload.stop(WAIT).await;
            let status = env.cluster.status(&victim).await?;
            env.notes.push(format!("wiped node's snapshot index after rejoining: {}", status.snapshot_index));
            history
        }
        Scenario::DrLinkCut => {
            for link in env.site_links() {
                link.partition();
            }
            fault_ms = env.event("cut every link between the sites (both ways)");
            sleep(third).await;
            for link in env.site_links() {
                link.heal();
            }
            env.event("links between the sites healed");
            sleep(third).await;
            workload.stop(WAIT).await
        }
        Scenario::PlannedSwitchover => {
            let request = format!("switchover-{}", config.seed);
            let names = vec!["primary".to_string(), "dr".to_string()];
            dr::approve(&env.operator("operator-1")?, &names, &request, "switchover").await?;
            dr::approve(&env.operator("operator-2")?, &names, &request, "switchover").await?;
            env.event("two operators approved the switchover");
            fault_ms = env.event("dr switchover primary -> dr");
            let report = dr::switchover(&env.operator("operator-1")?, "primary", "dr", &request).await?;
            env.event(format!("switchover done in {} ms: dr active at epoch {}", report.total_ms, report.new_epoch));
            right_site = "dr";
            sleep(third * 2).await;
            workload.stop(WAIT).await
        }
        Scenario::PrimarySiteLoss => {
            for key in env.cluster.site_keys("primary") {
                env.cluster.kill(&key);
            }
            fault_ms = env.event("primary site lost: kill -9 every primary node");
            right_site = "dr";
            let request = format!("failover-{}", config.seed);
            let names = vec!["dr".to_string()];
            dr::approve(&env.operator("operator-1")?, &names, &request, "promote").await?;
            dr::approve(&env.operator("operator-2")?, &names, &request, "promote").await?;
            env.event("two operators approved the promotion");
            let promoted = dr::promote_force(&env.operator("operator-1")?, "dr", &request).await?;
            env.event(format!(
                "dr promote --force: active at epoch {}; RPO point seq {} at ledger time {}",
                promoted.new_epoch, promoted.rpo_seq, promoted.rpo_ledger_time_ms
            ));
            rpo_s = fault_ms.saturating_sub(promoted.rpo_ledger_time_ms) as f64 / 1000.0;
            sleep(third).await;
            let history = workload.stop(WAIT).await;
            env.event("load stopped");
            for key in env.cluster.site_keys("primary") {
                env.cluster.start(&key)?;
            }
            env.event("old primary site back (its data intact)");
            let request = format!("failback-{}", config.seed);
            let names = vec!["primary".to_string(), "dr".to_string()];
            dr::approve(&env.operator("operator-1")?, &names, &request, "failback").await?;
            dr::approve(&env.operator("operator-2")?, &names, &request, "failback").await?;
            let report_dir = config.report_dir.join("reconciliation");
            let failback = dr::failback(&env.operator("operator-1")?, "primary", "dr", &request, &report_dir).await?;
            env.event(format!(
                "dr failback: branch seq {}, {} lost transfers reported, resynced in {} ms",
                failback.branch_seq, failback.lost_transfers_applied, failback.total_ms
            ));
            reconciled = failback
                .rows
                .iter()
                .filter(|r| r.command == "create_transfers" && r.status == "lost")
                .map(|r| r.id.clone())
                .collect();
            rpo_lost = history.ok().filter(|a| reconciled.contains(&a.id)).count();
            history
        }
    };
    env.converge().await?;
    history.write_jsonl(&config.report_dir.join("history.jsonl"))?;
    let history = History { acks: History::read_jsonl(&config.report_dir.join("history.jsonl"))?.acks, ..history };
    let verdicts = env.check(&history, &reconciled).await?;
    let rto = rto_s(&history, fault_ms, &env.site_endpoints(right_site));
    let needs_rto = scenario.loses_leader()
        || matches!(scenario, Scenario::ZoneLoss | Scenario::PlannedSwitchover | Scenario::PrimarySiteLoss);
    let target = |name: &str, limit_s: f64, measured_s: Option<f64>| Target {
        name: name.into(),
        limit_s,
        measured_s,
        met: measured_s.is_some_and(|m| m <= limit_s),
    };
    let mut regulatory = vec![target("RPO", RPO_REGULATORY_S, Some(rpo_s))];
    if needs_rto {
        regulatory.push(target("RTO", RTO_REGULATORY_S, rto));
    }
    let mut stretch = Vec::new();
    if scenario.is_site_loss() {
        stretch.push(target("RPO (site loss, scripted promote)", RPO_STRETCH_SITE_S, Some(rpo_s)));
        stretch.push(target("RTO (site loss, scripted promote)", RTO_STRETCH_SITE_S, rto));
    } else if scenario.loses_leader() {
        stretch.push(target("RTO (leader lost inside the site)", RTO_STRETCH_LEADER_S, rto));
    }
    let passed = verdicts.iter().all(|v| v.passed) && regulatory.iter().all(|t| t.met);
    let report = DrillReport {
        scenario: scenario.name().into(),
        description: scenario.description().into(),
        seed: config.seed,
        duration_s: config.duration.as_secs_f64(),
        events: env.events.clone(),
        acknowledged: history.acks.len(),
        acknowledged_ok: history.ok().count(),
        failed_attempts: history.failed_attempts,
        rpo_lost_transfers: rpo_lost,
        rpo_s,
        rto_s: if needs_rto { rto } else { None },
        regulatory,
        stretch,
        verdicts,
        passed,
        notes: env.notes.clone(),
    };
    write_report(&config.report_dir, &report)?;
    env.cluster.stop_all();
    Ok(report)
}

fn fmt_s(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.2} s"))
}

fn markdown(report: &DrillReport) -> String {
    let mut out = format!("# Drill `{}` (seed {})\n\n{}\n\n", report.scenario, report.seed, report.description);
    out.push_str(&format!(
        "**{}** · acknowledged {} ({} ok) · failed attempts {} · RPO {:.2} s ({} acknowledged transfers lost) · RTO {}\n\n",
        if report.passed { "PASS" } else { "FAIL" },
        report.acknowledged,
        report.acknowledged_ok,
        report.failed_attempts,
        report.rpo_s,
        report.rpo_lost_transfers,
        fmt_s(report.rto_s)
    ));
    out.push_str("| t (ms) | event |\n|---:|---|\n");
    for e in &report.events {
        out.push_str(&format!("| {} | {} |\n", e.at_ms, e.what));
    }
    out.push_str("\n| target | limit | measured | met |\n|---|---:|---:|---|\n");
    for (kind, targets) in [("regulatory", &report.regulatory), ("stretch", &report.stretch)] {
        for t in targets {
            out.push_str(&format!(
                "| {kind}: {} | {:.0} s | {} | {} |\n",
                t.name,
                t.limit_s,
                fmt_s(t.measured_s),
                if t.met { "PASS" } else { "FAIL" }
            ));
        }
    }
    out.push_str("\n| invariant | verdict | detail |\n|---|---|---|\n");
    for v in &report.verdicts {
        out.push_str(&format!("| {} | {} | {} |\n", v.property, if v.passed { "PASS" } else { "FAIL" }, v.detail));
    }
    for note in &report.notes {
        out.push_str(&format!("\n{note}\n"));
    }
    out
}

fn write_report(dir: &Path, report: &DrillReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report).expect("report serializes"))?;
    std::fs::write(dir.join("report.md"), markdown(report))
}

/// The summary of several drills, as a Markdown table.
pub fn summary_markdown(reports: &[DrillReport]) -> String {
    let mut out = String::from(
        "| drill | seed | result | acked ok | RPO | lost | RTO | regulatory | stretch | invariants |\n|---|---:|---|---:|---:|---:|---:|---|---|---|\n",
    );
    for r in reports {
        let all = |targets: &[Target]| {
            if targets.is_empty() {
                "n/a".to_string()
            } else if targets.iter().all(|t| t.met) {
                "PASS".into()
            } else {
                "FAIL".into()
            }
        };
        let invariants = format!("{}/{}", r.verdicts.iter().filter(|v| v.passed).count(), r.verdicts.len());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} s | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.seed,
            if r.passed { "PASS" } else { "FAIL" },
            r.acknowledged_ok,
            r.rpo_s,
            r.rpo_lost_transfers,
            fmt_s(r.rto_s),
            all(&r.regulatory),
            all(&r.stretch),
            invariants
        ));
    }
    out
}

/// Runs `scenarios` one after the other; a drill that cannot run at all is a failed report.
pub async fn run_many(scenarios: &[Scenario], base: &DrillConfig) -> Vec<DrillReport> {
    let mut reports = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let config = DrillConfig {
            scenario: *scenario,
            seed: base.seed.wrapping_add(i as u64),
            report_dir: base.report_dir.join(scenario.name()),
            ..base.clone()
        };
        eprintln!("drill {} (seed {}) ...", scenario.name(), config.seed);
        let report = match run(&config).await {
            Ok(report) => report,
            Err(e) => {
                eprintln!("drill {} could not run to its end: {e}", scenario.name());
                let report = DrillReport {
                    scenario: scenario.name().into(),
                    description: scenario.description().into(),
                    seed: config.seed,
                    duration_s: config.duration.as_secs_f64(),
                    events: Vec::new(),
                    acknowledged: 0,
                    acknowledged_ok: 0,
                    failed_attempts: 0,
                    rpo_lost_transfers: 0,
                    rpo_s: 0.0,
                    rto_s: None,
                    regulatory: Vec::new(),
                    stretch: Vec::new(),
                    verdicts: vec![Verdict::fail("the drill ran to its end", e.to_string())],
                    passed: false,
                    notes: vec![format!("error: {e}")],
                };
                let _ = write_report(&config.report_dir, &report);
                report
            }
        };
        eprintln!(
            "drill {}: {} (RPO {:.2} s, lost {}, RTO {})",
            report.scenario,
            if report.passed { "PASS" } else { "FAIL" },
            report.rpo_s,
            report.rpo_lost_transfers,
            fmt_s(report.rto_s)
        );
        reports.push(report);
    }
    let _ = std::fs::create_dir_all(&base.report_dir);
    let _ = std::fs::write(base.report_dir.join("summary.md"), summary_markdown(&reports));
    let _ = std::fs::write(
        base.report_dir.join("summary.json"),
        serde_json::to_string_pretty(&reports).expect("reports serialize"),
    );
    reports
}
