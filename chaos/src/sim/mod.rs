//! The simulator: whole clusters of real node code (`runtime::Core`: openraft, the store, the
//! ledger, the batcher, the replica's timers, and the real `LedgerService`/`PeerService`
//! handlers) in one thread, on tokio's paused clock, over a simulated network, driven by one
//! seed. The seed chooses the cluster's timings, the workload, and a schedule of faults:
//! message loss, delay, duplication, one-way and two-way partitions of any shape, crashes and
//! restarts, clock jumps, and leadership transfers asked by an operator. Checks run every
//! 250 ms of simulated time (vote durability, journal prefix agreement, conservation) and at
//! the end (the chaos checker's invariants over every node's journal and the workload's
//! history, after a liveness phase).
//!
//! What it does not cover yet (see ARCHITECTURE.md, "Simulator"): the store runs on real
//! files (a crash loses nothing the page cache holds), the DR site and site operations, and a
//! linearizability check of reads. Runs are not bit-exact: the seed fixes the faults, the
//! timings and the workload, but tokio's `select!` draws from its own unseeded generator, so
//! two runs of one seed can interleave tasks differently. A failing seed usually fails again.

pub mod client;
pub mod net;
pub mod node;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ledger_client::bench::Rng;
use ledger_client::proto as pb;
use ledger_client::proto::cluster_server::Cluster;
use ledger_client::proto::ledger_server::Ledger;
use ledger_core::money::Currency;
use ledger_node::raft::types::NodeId;
use rust_decimal::Decimal;

use self::client::SimClient;
use self::net::NetStats;
use self::net::SimNet;
use self::net::Weather;
use self::node::NodeSetup;
use self::node::SimNode;
use crate::invariants;
use crate::invariants::CheckInput;
use crate::invariants::NodeView;
use crate::invariants::Verdict;
use crate::workload::Workload;
use crate::workload::WorkloadConfig;

/// How one seed runs.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: u64,
    /// Simulated milliseconds of load under faults.
    pub chaos_ms: u64,
    /// After the faults are healed, the cluster must commit a new write within this.
    pub liveness_ms: u64,
    /// Parent of the seed's data dirs (removed at the end).
    pub dir: PathBuf,
    /// Sabotage, to show the checkers catch what they claim: a crashed node comes back with
    /// an empty data dir (its log and its vote lost), which Raft cannot survive unnoticed.
    pub amnesia: bool,
}

impl SimOptions {
    pub fn new(seed: u64, dir: &Path) -> SimOptions {
        SimOptions { seed, nodes: 3, chaos_ms: 12_000, liveness_ms: 20_000, dir: dir.to_path_buf(), amnesia: false }
    }
}

/// What one seed did and found.
#[derive(Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub verdicts: Vec<Verdict>,
    /// What happened, in simulated time: the faults that fired, leaders elected, failures.
    pub trace: Vec<String>,
    pub acked: usize,
    pub unacked: usize,
    pub net: NetStats,
    pub sim_ms: u64,
    pub crashes: u64,
}

impl SeedReport {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| !v.passed)
    }
}

/// The trace of one seed, stamped with simulated time.
#[derive(Clone)]
struct Trace {
    start: tokio::time::Instant,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Trace {
    fn log(&self, line: impl AsRef<str>) {
        let at = self.start.elapsed().as_millis();
        self.lines.lock().expect("lock is never poisoned").push(format!("{at:>7} ms  {}", line.as_ref()));
    }
}

/// Runs one seed on a fresh single-threaded runtime with a paused clock.
pub fn run_seed(options: &SimOptions) -> SeedReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let dir = options.dir.join(format!("seed-{}", options.seed));
    let _ = std::fs::remove_dir_all(&dir);
    let report = runtime.block_on(simulate(options, &dir));
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// Where seeds keep their data dirs by default: memory (`/dev/shm`) if the machine has it, as
/// the simulated disk needs no real fsync; the temp dir otherwise.
pub fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    base.join(format!("ledger-sim-{}", std::process::id()))
}

/// What a run of many seeds found.
#[derive(Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub failed: Vec<u64>,
    pub acked: u64,
    pub crashes: u64,
    pub messages: u64,
    pub sim_ms: u64,
    pub wall: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let minutes = self.wall.as_secs_f64() / 60.0;
        write!(
            f,
            "sim: {} seeds, {} failed{}; {} acknowledged transfers, {} crashes, {} messages, {:.0} simulated s in {:.1} s ({:.0} seeds/min)",
            self.seeds,
            self.failed.len(),
            if self.failed.is_empty() { String::new() } else { format!(" ({:?})", self.failed) },
            self.acked,
            self.crashes,
            self.messages,
            self.sim_ms as f64 / 1000.0,
            self.wall.as_secs_f64(),
            if minutes > 0.0 { self.seeds as f64 / minutes } else { 0.0 },
        )
    }
}

/// Runs `seeds` on `jobs` threads (each seed on its own runtime, with `template`'s other
/// options); `on_report` sees every report as it finishes. Removes `template.dir` at the end.
pub fn run_many(
    seeds: std::ops::Range<u64>,
    jobs: usize,
    template: &SimOptions,
    on_report: impl Fn(&SeedReport) + Sync,
) -> Summary {
    let dir = &template.dir;
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let report = run_seed(&SimOptions { seed, ..template.clone() });
                    on_report(&report);
                    let mut summary = summary.lock().expect("lock is never poisoned");
                    summary.seeds += 1;
                    if !report.passed() {
                        summary.failed.push(seed);
                    }
                    summary.acked += report.acked as u64;
                    summary.crashes += report.crashes;
                    summary.messages += report.net.messages;
                    summary.sim_ms += report.sim_ms;
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(dir);
    let mut summary = summary.into_inner().expect("lock is never poisoned");
    summary.failed.sort_unstable();
    summary.wall = started.elapsed();
    summary
}

/// Prints a seed's result: one line if it passed (and its trace if `trace`); its failures,
/// its trace and the command that replays it if it failed.
pub fn print_report(report: &SeedReport, trace: bool, options: &SimOptions) {
    let failed = !report.passed();
    if trace || failed {
        for line in &report.trace {
            println!("  seed {}: {line}", report.seed);
        }
    }
    if failed {
        for failure in report.failures() {
            println!("FAIL seed {}: {}: {}", report.seed, failure.property, failure.detail);
        }
        println!(
            "replay: cargo run --release -p ledger-chaos -- sim --seed {} --chaos-ms {}{}",
            report.seed,
            options.chaos_ms,
            if options.amnesia { " --sabotage-amnesia" } else { "" }
        );
    } else {
        println!(
            "ok   seed {}: {} acknowledged, {} unacknowledged, {} crashes, {} messages ({} lost, {} cut, {} duplicated), {} simulated ms",
            report.seed,
            report.acked,
            report.unacked,
            report.crashes,
            report.net.messages,
            report.net.lost,
            report.net.cut,
            report.net.duplicated,
            report.sim_ms
        );
    }
}

/// The accounts the workload moves money among (each funded from `bank`).
const ACCOUNTS: usize = 6;

async fn simulate(options: &SimOptions, dir: &Path) -> SeedReport {
    let start = tokio::time::Instant::now();
    let trace = Trace { start, lines: Arc::new(Mutex::new(Vec::new())) };
    let mut rng = Rng::new(options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let mut verdicts = Vec::new();
    let net = SimNet::new(rng.below(u64::MAX));
    let votes = trace.clone();
    net.set_tracer(Box::new(move |line| votes.log(line)));
    let nodes = match setup_nodes(options, dir, &mut rng) {
        Ok(nodes) => Arc::new(nodes),
        Err(e) => return failed_setup(options, e, trace),
    };
    for node in nodes.iter() {
        trace.log(format!(
            "node {} election timeout {} ms, snapshot every {} entries, keeps {}",
            node.setup.id,
            node.setup.election_ms,
            node.setup.snapshot_every_entries,
            node.setup.keep_entries_after_snapshot
        ));
        if let Err(e) = node.start(&net, start).await {
            return failed_setup(options, e, trace);
        }
    }
    let admin = SimClient::new(nodes.clone(), net.clone(), start, 0);
    if let Err(e) = bootstrap(&admin, &nodes).await {
        return failed_setup(options, format!("bootstrap: {e}"), trace);
    }
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct-{i}")).collect();
    if let Err(e) = open_accounts(&admin, &accounts).await {
        return failed_setup(options, format!("opening accounts: {e}"), trace);
    }
    trace.log("accounts opened and funded; load and faults start");

    // Checks every 250 ms of simulated time, for the whole run.
    let step_failures = Arc::new(Mutex::new(BTreeMap::<&'static str, String>::new()));
    let stepper = tokio::spawn(check_steps(nodes.clone(), step_failures.clone(), trace.clone()));

    let clients = 2 + rng.below(4) as usize;
    let sinks = (0..clients).map(|i| SimClient::new(nodes.clone(), net.clone(), start, i as u64)).collect();
    let workload = Workload::start_with(
        sinks,
        WorkloadConfig {
            clients,
            batch: 1 + rng.below(6) as usize,
            accounts: accounts.clone(),
            pending_every: [0, 3, 7][rng.below(3) as usize],
            pause: Duration::from_millis(10 + rng.below(90)),
            run_id: format!("s{}", options.seed),
            seed: options.seed,
        },
    );

    let crashes = run_faults(&nodes, &net, &mut rng, options, start, &trace).await;

    // Heal: calm network, every link up, every node running, clocks as they are.
    net.set_weather(Weather::CALM);
    net.heal();
    for node in nodes.iter() {
        if !node.is_up()
            && let Err(e) = node.start(&net, start).await
        {
            verdicts.push(Verdict::fail("restart", e));
        }
    }
    trace.log("healed: calm network, all links, all nodes up");
    let healed_at = start.elapsed();

    // Liveness: a new write commits within the bound.
    let probe = SimClient::new(nodes.clone(), net.clone(), start, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(options.liveness_ms);
    let mut live = None;
    let mut n = 0;
    while tokio::time::Instant::now() < deadline {
        n += 1;
        let transfer = pb::NewTransfer {
            id: format!("s{}-probe-{n}", options.seed),
            debit_account_id: "bank".into(),
            credit_account_id: accounts[0].clone(),
            amount: "0.01".into(),
            ..Default::default()
        };
        let request = pb::CreateTransfersRequest { transfers: vec![transfer], atomic: false };
        match probe.call(|s| async move { s.ledger.create_transfers(tonic::Request::new(request)).await }).await {
            Ok(_) => {
                live = Some(start.elapsed() - healed_at);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    verdicts.push(match live {
        Some(after) => Verdict::pass("liveness", format!("a write committed {} ms after healing", after.as_millis())),
        None => Verdict::fail("liveness", format!("no write committed within {} ms of healing", options.liveness_ms)),
    });

    let history = workload.stop(Duration::from_secs(30)).await;
    trace.log(format!(
        "load stopped: {} acknowledged, {} attempts, {} failed attempts, {} never acknowledged",
        history.acks.len(),
        history.attempts,
        history.failed_attempts,
        history.unacked.len()
    ));
    let converged = converge(&nodes, Duration::from_secs(30)).await;
    verdicts.push(match &converged {
        Ok(seq) => Verdict::pass("convergence", format!("every node applied journal seq {seq}")),
        Err(e) => Verdict::fail("convergence", e.clone()),
    });
    stepper.abort();
    for (property, detail) in step_failures.lock().expect("lock is never poisoned").iter() {
        verdicts.push(Verdict::fail(property, detail.clone()));
    }
    let views: Vec<NodeView> = nodes.iter().filter_map(|n| view(n, &accounts)).collect();
    verdicts.extend(invariants::check_all(&CheckInput {
        active: &views,
        standbys: &[],
        history: &history,
        reconciled: &BTreeSet::new(),
    }));
    for failure in verdicts.iter().filter(|v| !v.passed) {
        trace.log(format!("FAILED {}: {}", failure.property, failure.detail));
    }
    for node in nodes.iter() {
        node.crash(&net).await;
    }
    let lines = trace.lines.lock().expect("lock is never poisoned").clone();
    SeedReport {
        seed: options.seed,
        verdicts,
        trace: lines,
        acked: history.acks.len(),
        unacked: history.unacked.len(),
        net: net.stats(),
        sim_ms: start.elapsed().as_millis() as u64,
        crashes,
    }
}

fn failed_setup(options: &SimOptions, error: String, trace: Trace) -> SeedReport {
    trace.log(format!("FAILED setup: {error}"));
    let lines = trace.lines.lock().expect("lock is never poisoned").clone();
    SeedReport {
        seed: options.seed,
        verdicts: vec![Verdict::fail("setup", error)],
        trace: lines,
        acked: 0,
        unacked: 0,
        net: NetStats::default(),
        sim_ms: trace.start.elapsed().as_millis() as u64,
        crashes: 0,
    }
}

fn setup_nodes(options: &SimOptions, dir: &Path, rng: &mut Rng) -> Result<Vec<SimNode>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key_file = dir.join("data-keys.toml");
    node::write_key_file(&key_file)?;
    Ok((1..=options.nodes)
        .map(|id| {
            SimNode::new(NodeSetup {
                id,
                data_dir: dir.join(format!("node-{id}")),
                key_file: key_file.clone(),
                election_ms: 600 + rng.below(1_000),
                snapshot_every_entries: 20 + rng.below(200),
                keep_entries_after_snapshot: rng.below(40),
            })
        })
        .collect())
}

/// Forms the cluster and bootstraps it as the active site `primary` (what `ledger-cluster up`
/// asks of a new site's first node), retrying until it took.
async fn bootstrap(client: &SimClient, nodes: &[SimNode]) -> Result<(), String> {
    let members: Vec<pb::Member> = nodes
        .iter()
        .map(|n| {
            let member = NodeSetup::member(n.setup.id);
            pb::Member {
                node_id: n.setup.id,
                zone: member.zone,
                client_addr: member.client_addr,
                peer_addr: member.peer_addr,
                voter: true,
                matched_index: 0,
            }
        })
        .collect();
    let mut last = String::new();
    for _ in 0..50 {
        let request = pb::BootstrapRequest {
            site: "primary".into(),
            role: "active".into(),
            epoch: 1,
            members: members.clone(),
            upstream: Vec::new(),
            dual_control: false,
        };
        match client.call(|s| async move { s.cluster.bootstrap(tonic::Request::new(request)).await }).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

/// Opens `bank` and the workload's accounts, and funds each from `bank`, retrying through
/// leader elections.
async fn open_accounts(client: &SimClient, accounts: &[String]) -> Result<(), String> {
    let mut new_accounts = vec![pb::NewAccount { id: "bank".into(), currency: "EUR".into(), ..Default::default() }];
    new_accounts.extend(accounts.iter().map(|id| pb::NewAccount {
        id: id.clone(),
        currency: "EUR".into(),
        flags: Some(pb::AccountFlags { debits_must_not_exceed_credits: true, credits_must_not_exceed_debits: false }),
        ..Default::default()
    }));
    let funding: Vec<pb::NewTransfer> = accounts
        .iter()
        .map(|id| pb::NewTransfer {
            id: format!("fund-{id}"),
            debit_account_id: "bank".into(),
            credit_account_id: id.clone(),
            amount: "1000.00".into(),
            ..Default::default()
        })
        .collect();
    let mut last = String::new();
    for _ in 0..100 {
        let request = pb::CreateAccountsRequest { accounts: new_accounts.clone() };
        match client.call(|s| async move { s.ledger.create_accounts(tonic::Request::new(request)).await }).await {
            Ok(_) => break,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..100 {
        let request = pb::CreateTransfersRequest { transfers: funding.clone(), atomic: true };
        match client.call(|s| async move { s.ledger.create_transfers(tonic::Request::new(request)).await }).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

/// Fires faults for `chaos_ms` of simulated time; returns the number of crashes.
async fn run_faults(
    nodes: &Arc<Vec<SimNode>>,
    net: &Arc<SimNet>,
    rng: &mut Rng,
    options: &SimOptions,
    start: tokio::time::Instant,
    trace: &Trace,
) -> u64 {
    let end = tokio::time::Instant::now() + Duration::from_millis(options.chaos_ms);
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.setup.id).collect();
    // Crashed nodes and when they come back.
    let mut down: BTreeMap<NodeId, tokio::time::Instant> = BTreeMap::new();
    let mut crashes = 0;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(1_400))).await;
        let now = tokio::time::Instant::now();
        let due: Vec<NodeId> = down.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for id in due {
            down.remove(&id);
            if options.amnesia {
                let _ = std::fs::remove_dir_all(&nodes[(id - 1) as usize].setup.data_dir);
                trace.log(format!("sabotage: node {id} lost its data dir"));
            }
            match nodes[(id - 1) as usize].start(net, start).await {
                Ok(()) => trace.log(format!("restart node {id}")),
                Err(e) => trace.log(format!("restart node {id} failed: {e}")),
            }
        }
        let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
        match rng.below(100) {
            0..=19 => {
                let id = pick(rng);
                if nodes[(id - 1) as usize].is_up() {
                    nodes[(id - 1) as usize].crash(net).await;
                    crashes += 1;
                    let back = Duration::from_millis(300 + rng.below(4_000));
                    down.insert(id, tokio::time::Instant::now() + back);
                    trace.log(format!("crash node {id} (back in {} ms)", back.as_millis()));
                }
            }
            20..=29 => {
                let id = pick(rng);
                for other in ids.iter().filter(|o| **o != id) {
                    net.cut(id, *other);
                    net.cut(*other, id);
                }
                trace.log(format!("isolate node {id} both ways"));
            }
            30..=39 => {
                let id = pick(rng);
                let outbound = rng.below(2) == 0;
                for other in ids.iter().filter(|o| **o != id) {
                    if outbound { net.cut(id, *other) } else { net.cut(*other, id) }
                }
                trace.log(format!(
                    "isolate node {id} one way ({})",
                    if outbound { "it cannot send" } else { "it cannot hear" }
                ));
            }
            40..=47 => {
                let (from, to) = (pick(rng), pick(rng));
                if from != to {
                    net.cut(from, to);
                    trace.log(format!("cut link {from} -> {to}"));
                }
            }
            48..=67 => {
                net.heal();
                trace.log("heal all links");
            }
            68..=84 => {
                let weather = Weather {
                    delay_ms: {
                        let low = rng.below(20);
                        (low, low + rng.below(80))
                    },
                    loss_per_mille: [0, 10, 50, 200][rng.below(4) as usize],
                    duplicate_per_mille: [0, 20, 100][rng.below(3) as usize],
                };
                net.set_weather(weather);
                trace.log(format!("weather {weather:?}"));
            }
            85..=92 => {
                net.set_weather(Weather::CALM);
                trace.log("calm network");
            }
            93..=95 => {
                // An operator hands leadership over (a planned maintenance), while everything
                // else goes on.
                let target = pick(rng);
                let leader = nodes.iter().find(|n| n.replica().is_some_and(|r| r.is_leader()));
                if let Some(services) = leader.and_then(SimNode::services) {
                    let from = leader.map_or(0, |n| n.setup.id);
                    trace.log(format!("operator: transfer leadership {from} -> {target}"));
                    let trace = trace.clone();
                    tokio::spawn(async move {
                        let request = pb::TransferLeaderRequest { target_node_id: target };
                        match services.cluster.transfer_leader(tonic::Request::new(request)).await {
                            Ok(r) => trace.log(format!("operator: node {} leads now", r.into_inner().new_leader_id)),
                            Err(status) => trace.log(format!("operator: transfer refused: {}", status.message())),
                        }
                    });
                }
            }
            _ => {
                let id = pick(rng);
                let jump = rng.below(120_000) as i64 - 60_000;
                nodes[(id - 1) as usize].skew_ms.fetch_add(jump, Ordering::Relaxed);
                trace.log(format!("clock of node {id} jumps {jump:+} ms"));
            }
        }
    }
    crashes
}

/// Vote durability, journal agreement and conservation, every 250 ms of simulated time. The
/// first failure of each property is kept (with when it happened).
async fn check_steps(nodes: Arc<Vec<SimNode>>, failures: Arc<Mutex<BTreeMap<&'static str, String>>>, trace: Trace) {
    let mut leaders: BTreeMap<u64, NodeId> = BTreeMap::new();
    let mut votes: BTreeMap<NodeId, ledger_node::raft::types::Vote> = BTreeMap::new();
    let fail = |property: &'static str, detail: String| {
        let mut failures = failures.lock().expect("lock is never poisoned");
        if !failures.contains_key(property) {
            trace.log(format!("step check {property} failed: {detail}"));
            failures.insert(property, format!("at {} ms: {detail}", trace.start.elapsed().as_millis()));
        }
    };
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let replicas: Vec<_> = nodes.iter().filter_map(|n| n.replica()).collect();
        for replica in &replicas {
            let metrics = replica.metrics();
            // A node's vote never goes back, across crashes too (it is fsynced before any
            // answer that depends on it): a vote that did would allow a double vote.
            match votes.get(&replica.id) {
                Some(seen) if metrics.vote < *seen => fail(
                    "vote durability",
                    format!("node {}'s vote went back from {seen} to {}", replica.id, metrics.vote),
                ),
                _ => {
                    votes.insert(replica.id, metrics.vote);
                }
            }
            // openraft 0.9's leader id is (term, node id), so two candidates can both win one
            // term, in increasing node-id order (only the greater can commit: a quorum has
            // moved past the lesser). Traced, not a failure; agreement is checked below.
            if replica.is_leader() {
                let term = metrics.current_term;
                if leaders.get(&term) != Some(&replica.id) {
                    let also = leaders.insert(term, replica.id);
                    trace.log(match also {
                        Some(other) => format!("node {} leads term {term} too (after node {other})", replica.id),
                        None => format!("node {} leads term {term}", replica.id),
                    });
                }
            }
        }
        // Journals agree on their common prefix: the record at the shortest head is the same.
        let heads: Vec<_> = replicas.iter().map(|r| (r.id, r.reader.journal_head())).collect();
        if let Some(&(_, shortest)) = heads.iter().min_by_key(|(_, h)| h.seq)
            && shortest.seq > 0
        {
            let at = shortest.seq;
            let hashes: BTreeSet<_> = replicas
                .iter()
                .filter_map(|r| r.reader.journal(at, 1).first().map(|rec| (rec.hash, r.id)))
                .map(|(hash, _)| hash)
                .collect();
            if hashes.len() > 1 {
                fail("journal agreement", format!("nodes hold different records at seq {at}: {heads:?}"));
            }
        }
        // Conservation: in every currency, debits equal credits on every node.
        for replica in &replicas {
            let totals = replica.reader.totals(Currency::parse("EUR").expect("EUR is a currency"));
            if totals.debits_posted != totals.credits_posted || totals.debits_pending != totals.credits_pending {
                fail("conservation", format!("node {}: {totals:?}", replica.id));
            }
        }
    }
}

/// Waits until every node applied the same journal head; returns its seq.
async fn converge(nodes: &[SimNode], within: Duration) -> Result<u64, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let heads: Vec<_> = nodes.iter().filter_map(|n| n.replica().map(|r| (r.id, r.reader.journal_head()))).collect();
        if heads.len() == nodes.len() && heads.windows(2).all(|w| w[0].1 == w[1].1) {
            return Ok(heads[0].1.seq);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("after {within:?} the nodes' journal heads differ: {heads:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the checker needs from one node: its journal and balances, read from its state.
fn view(node: &SimNode, accounts: &[String]) -> Option<NodeView> {
    let replica = node.replica()?;
    let journal = replica.reader.journal(1, usize::MAX);
    let mut balances = BTreeMap::new();
    let mut debit_limited = BTreeMap::new();
    let mut credit_limited = BTreeSet::new();
    for account in replica.reader.accounts() {
        let id = account.id.to_string();
        if !accounts.contains(&id) && id != "bank" {
            continue;
        }
        let b = &account.balance;
        if account.flags.debits_must_not_exceed_credits {
            debit_limited.insert(id.clone(), account.overdraft_limit.unwrap_or(Decimal::ZERO));
        }
        if account.flags.credits_must_not_exceed_debits {
            credit_limited.insert(id.clone());
        }
        balances.insert(id, [b.debits_posted, b.debits_pending, b.credits_posted, b.credits_pending]);
    }
    Some(NodeView { site: "primary".into(), node_id: replica.id, journal, balances, debit_limited, credit_limited })
}
