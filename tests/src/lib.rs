//! The integration-test harness: real node processes on loopback, each with its own sled data
//! directory, talking real gRPC. No mocks.
//!
//! Every test that starts a cluster holds [`SERIAL`] for its lifetime: the CI machine has two
//! cores, and two clusters elections-timing against each other make tests flaky, not faster.
//! A cluster is killed (by pid) when its [`TestCluster`] drops; if the test panicked, the
//! data and node logs are kept and their tails printed.

use std::collections::BTreeMap;

use std::path::PathBuf;
use std::time::Duration;

use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use ledger_cluster::launcher::Security;
use ledger_cluster::process::NodeLauncher;
use ledger_cluster::topology::NodeSpec;
use ledger_cluster::topology::SiteSpec;
use ledger_cluster::topology::Topology;
use ledger_node::config::NodeConfig;

pub use ledger_cluster::launcher::ClusterError;

/// Path of the node binary built for these tests (expands in the test crate).
#[macro_export]
macro_rules! node_bin {
    () => {
        env!("CARGO_BIN_EXE_ledger-test-node")
    };
}

/// One cluster at a time per test process.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous deadline for anything a cluster must reach (CI is a noisy 2-core machine).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A site to start: name, role, number of nodes.
#[derive(Clone, Debug)]
pub struct SiteShape {
    pub name: &'static str,
    pub role: &'static str,
    pub nodes: usize,
}

/// What to start.
pub struct Spec {
    pub sites: Vec<SiteShape>,
    /// Adjusts each node's configuration after the test defaults.
    pub tweak: Option<ledger_cluster::launcher::ConfigHook>,
    /// Route every link between sites (shipping, watching) through fault proxies.
    pub proxied_sites: bool,
}

impl Spec {
    /// One active site of `n` nodes in zones a, b, c, ...
    pub fn single_site(n: usize) -> Spec {
        Spec { sites: vec![SiteShape { name: "primary", role: "active", nodes: n }], tweak: None, proxied_sites: false }
    }

    /// An active `primary` and a standby `dr` site of three nodes each, their links through
    /// fault proxies.
    pub fn primary_and_dr() -> Spec {
        Spec {
            sites: vec![
                SiteShape { name: "primary", role: "active", nodes: 3 },
                SiteShape { name: "dr", role: "standby", nodes: 3 },
            ],
            tweak: None,
            proxied_sites: true,
        }
    }

    pub fn with_tweak(mut self, tweak: impl Fn(&NodeKey, &mut NodeConfig) + Send + Sync + 'static) -> Spec {
        self.tweak = Some(Box::new(tweak));
        self
    }
}

fn addr() -> String {
    format!("127.0.0.1:{}", ledger_cluster::launcher::node_port())
}

/// A topology of fresh loopback addresses.
pub fn topology(shapes: &[SiteShape]) -> Topology {
    let zones = ["a", "b", "c", "d", "e", "f", "g"];
    let sites = shapes
        .iter()
        .map(|shape| SiteSpec {
            name: shape.name.into(),
            role: shape.role.into(),
            nodes: (1..=shape.nodes as u64)
                .map(|id| NodeSpec {
                    id,
                    zone: format!("{}-{}", shape.name, zones[(id as usize - 1) % zones.len()]),
                    client_addr: addr(),
                    peer_addr: addr(),
                    metrics_addr: addr(),
                })
                .collect(),
        })
        .collect();
    let topology = Topology { sites };
    topology.validate().expect("generated topology is valid");
    topology
}

/// For every ordered pair of sites, one fault proxy per node of the second (its client port).
async fn site_links(topology: &Topology) -> BTreeMap<(String, String), Vec<ledger_chaos::proxy::FaultProxy>> {
    use ledger_chaos::proxy::FaultProxy;
    use ledger_chaos::proxy::LinkState;
    let mut links = BTreeMap::new();
    for from in &topology.sites {
        for to in topology.sites.iter().filter(|s| s.name != from.name) {
            let mut proxies = Vec::new();
            for node in &to.nodes {
                proxies.push(
                    FaultProxy::start(&node.client_addr, LinkState::healthy(Duration::ZERO)).await.expect("proxy"),
                );
            }
            links.insert((from.name.clone(), to.name.clone()), proxies);
        }
    }
    links
}

impl TestCluster {
    /// Blackholes every link from `from` to `to` (one way).
    pub fn cut(&self, from: &str, to: &str) {
        for proxy in &self.links[&(from.to_string(), to.to_string())] {
            proxy.partition();
        }
    }

    /// Heals every link from `from` to `to`.
    pub fn heal(&self, from: &str, to: &str) {
        for proxy in &self.links[&(from.to_string(), to.to_string())] {
            proxy.heal();
        }
    }

    /// A handle for the DR operator commands, acting as `identity`.
    pub fn dr_sites(&self, identity: &str) -> ledger_cluster::dr::Sites {
        ledger_cluster::dr::Sites::new(
            self.cluster.topology.clone(),
            self.cluster.client_config_as(identity, Vec::new()).expect("client config"),
            DEADLINE,
        )
    }

    /// Two operators approve `request_id` for `action` on every site.
    pub async fn approve_twice(&self, request_id: &str, action: &str, sites: &[&str]) {
        let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
        for operator in ["operator-1", "operator-2"] {
            let recorded = ledger_cluster::dr::approve(&self.dr_sites(operator), &sites, request_id, action)
                .await
                .expect("approval recorded");
            assert_eq!(recorded, sites);
        }
    }
}

/// Test timings: faster than production defaults, slow enough for a loaded CI machine.
pub fn test_defaults(config: &mut NodeConfig) {
    config.raft.heartbeat_ms = 100;
    config.raft.election_min_ms = 800;
    config.raft.election_max_ms = 1600;
    config.raft.install_snapshot_timeout_ms = 20_000;
    config.limits.sled_cache_bytes = 32 * 1024 * 1024;
    config.limits.write_timeout_ms = 8_000;
}

pub struct TestCluster {
    pub cluster: LocalCluster,
    /// Fault proxies between sites: `(from, to)` -> one proxy per node of `to` (its client
    /// port), used by every node of `from`.
    pub links: BTreeMap<(String, String), Vec<ledger_chaos::proxy::FaultProxy>>,
    dir: Option<tempfile::TempDir>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl TestCluster {
    /// Starts every node, forms the sites, and waits until each has a leader.
    pub async fn start(node_bin: &str, spec: Spec) -> TestCluster {
        let serial = SERIAL.lock().await;
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
        let dir = tempfile::Builder::new().prefix("ledger-test-").tempdir().expect("temp dir");
        let topology = topology(&spec.sites);
        let links = if spec.proxied_sites { site_links(&topology).await } else { BTreeMap::new() };
        let link_addrs: BTreeMap<(String, String), Vec<String>> =
            links.iter().map(|(k, proxies)| (k.clone(), proxies.iter().map(|p| p.addr()).collect())).collect();
        let tweak = spec.tweak;
        let peer_addrs = link_addrs.clone();
        let mut cluster =
            LocalCluster::new(dir.path(), topology.clone(), NodeLauncher::program(node_bin), Security::Tls)
                .expect("prepare cluster")
                .with_hook(Box::new(move |key, config| {
                    test_defaults(config);
                    if !peer_addrs.is_empty() {
                        config.dr.peer_sites = peer_addrs
                            .iter()
                            .filter(|((from, _), _)| *from == key.0)
                            .flat_map(|(_, addrs)| addrs.clone())
                            .collect();
                    }
                    if let Some(tweak) = &tweak {
                        tweak(key, config);
                    }
                }));
        let active = topology.active_site().name.clone();
        for site in topology.sites.iter().filter(|s| s.role == "standby") {
            if let Some(addrs) = link_addrs.get(&(site.name.clone(), active.clone())) {
                cluster.upstreams.insert(site.name.clone(), addrs.clone());
            }
        }
        let mut test = TestCluster { cluster, links, dir: Some(dir), _serial: serial };
        test.cluster.start_all().expect("start nodes");
        let keys = test.cluster.keys();
        test.cluster.wait_serving(&keys, DEADLINE).await.expect("nodes serve");
        test.cluster.bootstrap().await.expect("bootstrap");
        test.cluster.wait_ready(DEADLINE).await.expect("sites ready");
        test
    }

    pub fn root(&self) -> PathBuf {
        self.cluster.root.clone()
    }

    pub fn key(&self, site: &str, id: u64) -> NodeKey {
        (site.to_string(), id)
    }

    /// A client of every node of the active site (and the others after them).
    pub fn client(&self) -> LedgerClient {
        self.cluster.client().expect("client")
    }

    pub fn site_client(&self, site: &str) -> LedgerClient {
        self.cluster.site_client(site).expect("client")
    }

    pub fn node_client(&self, key: &NodeKey) -> LedgerClient {
        self.cluster.node_client(key).expect("client")
    }

    pub async fn leader(&self, site: &str) -> NodeKey {
        self.cluster.leader(site, DEADLINE).await.expect("a leader")
    }

    pub async fn status(&self, key: &NodeKey) -> pb::NodeStatus {
        self.cluster.status(key).await.expect("status")
    }

    /// Polls until every listed node reports the same journal head; returns it.
    pub async fn wait_heads_equal(&self, keys: &[NodeKey]) -> pb::JournalHead {
        LocalCluster::poll("equal journal heads", DEADLINE, || async {
            let mut heads = Vec::new();
            for key in keys {
                heads.push(self.cluster.status(key).await.ok()?.journal_head?);
            }
            heads.windows(2).all(|w| w[0] == w[1]).then(|| heads[0].clone())
        })
        .await
        .expect("journal heads converge")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let logs: Vec<(NodeKey, PathBuf)> =
            self.cluster.keys().into_iter().map(|k| (k.clone(), self.cluster.log_path(&k))).collect();
        self.cluster.stop_all();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("test failed: cluster data and logs kept in {}", kept.display());
            }
            for (key, path) in logs {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {}/{} log tail ---", key.0, key.1);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request builders and assertions.

pub fn account(id: &str, currency: &str) -> pb::NewAccount {
    pb::NewAccount { id: id.into(), currency: currency.into(), ..Default::default() }
}

/// An account whose debits may not exceed its credits (a customer deposit account).
pub fn deposit_account(id: &str, currency: &str) -> pb::NewAccount {
    pb::NewAccount {
        flags: Some(pb::AccountFlags { debits_must_not_exceed_credits: true, credits_must_not_exceed_debits: false }),
        ..account(id, currency)
    }
}

pub fn transfer(id: &str, from: &str, to: &str, amount: &str) -> pb::NewTransfer {
    pb::NewTransfer {
        id: id.into(),
        debit_account_id: from.into(),
        credit_account_id: to.into(),
        amount: amount.into(),
        ..Default::default()
    }
}

pub fn pending(id: &str, from: &str, to: &str, amount: &str, timeout_ms: u64) -> pb::NewTransfer {
    pb::NewTransfer { kind: pb::TransferKind::Pending as i32, timeout_ms, ..transfer(id, from, to, amount) }
}

pub fn post(id: &str, pending_id: &str, amount: &str) -> pb::NewTransfer {
    pb::NewTransfer {
        id: id.into(),
        amount: amount.into(),
        kind: pb::TransferKind::PostPending as i32,
        pending_id: pending_id.into(),
        ..Default::default()
    }
}

pub fn void(id: &str, pending_id: &str) -> pb::NewTransfer {
    pb::NewTransfer {
        id: id.into(),
        kind: pb::TransferKind::VoidPending as i32,
        pending_id: pending_id.into(),
        ..Default::default()
    }
}

/// Result codes by name, in item order, with `(replayed)` marks.
pub fn codes(results: &[pb::ItemResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| {
            let name = pb::ResultCode::try_from(r.code)
                .map(|c| c.as_str_name().trim_start_matches("RESULT_CODE_").to_lowercase())
                .unwrap_or_else(|_| format!("code_{}", r.code));
            if r.replayed { format!("{name} (replayed)") } else { name }
        })
        .collect()
}

/// Opens accounts and asserts every one was created (or already existed identically).
pub async fn must_create_accounts(client: &LedgerClient, accounts: Vec<pb::NewAccount>) {
    let n = accounts.len();
    let response = client.create_accounts(accounts).await.expect("create accounts");
    assert_eq!(response.results.len(), n);
    for r in &response.results {
        assert_eq!(r.code, pb::ResultCode::Ok as i32, "account {} not created: {:?}", r.id, codes(&response.results));
    }
}

/// Balances of accounts by id: (debits_posted, debits_pending, credits_posted, credits_pending).
pub async fn balances(client: &LedgerClient, ids: &[String]) -> BTreeMap<String, [String; 4]> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let response = client.lookup_accounts(chunk.to_vec(), pb::ReadConsistency::Linearizable).await.expect("lookup");
        assert!(response.not_found.is_empty(), "missing accounts {:?}", response.not_found);
        for a in response.accounts {
            out.insert(a.id.clone(), [a.debits_posted, a.debits_pending, a.credits_posted, a.credits_pending]);
        }
    }
    out
}

/// Reads every node's journal and balances and runs the chaos checker's invariants over them,
/// panicking with every failed verdict.
pub async fn must_pass_invariants(
    test: &TestCluster,
    active: &[NodeKey],
    standbys: &[NodeKey],
    accounts: &[String],
    history: &ledger_chaos::workload::History,
) -> Vec<ledger_chaos::invariants::Verdict> {
    use ledger_chaos::invariants;
    let mut active_views = Vec::new();
    for key in active {
        active_views
            .push(invariants::collect(&key.0, &test.node_client(key), accounts).await.expect("collect node view"));
    }
    let mut standby_views = Vec::new();
    for key in standbys {
        standby_views
            .push(invariants::collect(&key.0, &test.node_client(key), accounts).await.expect("collect node view"));
    }
    let reconciled = Default::default();
    let input =
        invariants::CheckInput { active: &active_views, standbys: &standby_views, history, reconciled: &reconciled };
    let verdicts = invariants::check_all(&input);
    let failed: Vec<_> = verdicts.iter().filter(|v| !v.passed).collect();
    assert!(failed.is_empty(), "invariants failed: {failed:#?}");
    verdicts
}

impl TestCluster {
    /// Starts only the first `n` nodes of the (single) site and forms the group with them.
    pub async fn start_partial(node_bin: &str, spec: Spec, n: usize) -> TestCluster {
        let serial = SERIAL.lock().await;
        let dir = tempfile::Builder::new().prefix("ledger-test-").tempdir().expect("temp dir");
        let topology = topology(&spec.sites);
        let tweak = spec.tweak;
        let cluster = LocalCluster::new(dir.path(), topology, NodeLauncher::program(node_bin), Security::Tls)
            .expect("prepare cluster")
            .with_hook(Box::new(move |key, config| {
                test_defaults(config);
                if let Some(tweak) = &tweak {
                    tweak(key, config);
                }
            }));
        let mut test = TestCluster { cluster, links: BTreeMap::new(), dir: Some(dir), _serial: serial };
        let site = test.cluster.topology.sites[0].name.clone();
        let keys: Vec<NodeKey> = test.cluster.site_keys(&site).into_iter().take(n).collect();
        for key in &keys {
            test.cluster.start(key).expect("start node");
        }
        test.cluster.wait_serving(&keys, DEADLINE).await.expect("nodes serve");
        let ids: Vec<u64> = keys.iter().map(|k| k.1).collect();
        test.cluster.bootstrap_site(&site, &ids).await.expect("bootstrap");
        test.cluster.wait_ready(DEADLINE).await.expect("site ready");
        test
    }
}

// ---------------------------------------------------------------------------------------------
// The command-line tools (`ledger`, `ledger-cluster`) run as processes against a test cluster.

/// A finished command-line run.
#[derive(Debug)]
pub struct CliRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `program` with `args` and the environment `env` (the `LEDGER_*` variables of the
/// test process are removed first), killing it if it has not exited within `limit`; panics
/// then, with what it printed.
pub fn run_cli_within(program: &str, args: &[String], env: &[(&str, String)], limit: Duration) -> CliRun {
    use std::io::Read;
    use std::process::Stdio;
    let mut command = std::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("LEDGER_") {
            command.env_remove(&name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let started = std::time::Instant::now();
    let mut child = command.spawn().expect("start the command");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (status, killed) = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break (status, false);
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            break (child.wait().expect("reap the command"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = CliRun {
        success: status.success(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        elapsed: started.elapsed(),
    };
    assert!(!killed, "`{} {}` still running after {limit:?}, killed: {run:#?}", program, args.join(" "));
    run
}

impl TestCluster {
    /// Writes the topology to `<root>/topology.toml` for `ledger-cluster --topology`.
    pub fn topology_file(&self) -> PathBuf {
        let path = self.root().join("topology.toml");
        let text = toml::to_string(&self.cluster.topology).expect("topology serializes");
        std::fs::write(&path, text).expect("write the topology file");
        path
    }

    /// `ledger-cluster` flags for this cluster (`--data`, `--topology`), before any others.
    pub fn cluster_cli_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "--data".to_string(),
            self.root().display().to_string(),
            "--topology".to_string(),
            self.topology_file().display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// `ledger` flags presenting the client certificate `identity` to every node of every
    /// site, before any others.
    pub fn ledger_cli_args(&self, identity: &str, args: &[&str]) -> Vec<String> {
        let files = self.cluster.certs.as_ref().expect("a TLS cluster").client(identity);
        let mut all = vec![
            "--endpoints".to_string(),
            self.cluster.topology.all_endpoints().join(","),
            "--ca".to_string(),
            files.ca.display().to_string(),
            "--cert".to_string(),
            files.cert.display().to_string(),
            "--key".to_string(),
            files.key.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// `LEDGER_CA`, `LEDGER_CERT` and `LEDGER_KEY` naming the client certificate `identity`.
    pub fn identity_env(&self, identity: &str) -> Vec<(&'static str, String)> {
        let files = self.cluster.certs.as_ref().expect("a TLS cluster").client(identity);
        vec![
            ("LEDGER_CA", files.ca.display().to_string()),
            ("LEDGER_CERT", files.cert.display().to_string()),
            ("LEDGER_KEY", files.key.display().to_string()),
        ]
    }
}
