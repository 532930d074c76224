//! Crash points of the state machine's storage (issue 10): a node that aborts at any step of
//! writing a checkpoint (one per snapshot build), or at either crash point of a snapshot
//! install, comes back from what it left on disk: it catches up, holds the same journal as the
//! others, and every acknowledged transfer is there once.
//!
//! The crashes are the node's own failpoints (`ledger_node::failpoint`), armed on one
//! follower through its configuration: the process aborts (SIGABRT) just before that step of the
//! first checkpoint it writes, or at that point of the first snapshot it installs. The armed
//! node is restarted without them, on the same data dir.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use ledger_chaos::workload::Ack;
use ledger_chaos::workload::History;
use ledger_chaos::workload::wall_ms;
use ledger_client::LedgerClient;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use ledger_node::failpoint;
use ledger_tests::*;

/// Nodes build a snapshot (and write a checkpoint) every this many entries.
const SNAPSHOT_EVERY_ENTRIES: u64 = 20;
/// Entries kept below a snapshot: a node this far behind needs a snapshot.
const KEEP_ENTRIES_AFTER_SNAPSHOT: u64 = 5;
/// Longest wait for an armed node to reach its crash point while transfers are written: a
/// checkpoint comes every 20 entries, one entry per write, so a few seconds at most.
const CRASH_WAIT: Duration = Duration::from_secs(30);

/// How the armed node is brought to its crash point.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// Stopped (SIGTERM) and restarted armed: it crashes at its next checkpoint.
    Restart,
    /// Stopped, its data dir deleted, restarted armed: it must install a snapshot. (It comes
    /// back under its old id, still a voter: safe here only because the leader stays up and
    /// nobody campaigns meanwhile; see docs/operations.md "Membership".)
    Wipe,
    /// Stopped until the leader purged its log past the node's, restarted armed: it must
    /// install a snapshot over its own older state.
    Lag,
}

/// Failpoints each node is started with, by node id; the configuration hook reads it at
/// every start.
type Armed = Arc<Mutex<BTreeMap<u64, Vec<String>>>>;

/// A 3-node site whose follower `victim` is crashed on purpose, with the transfers it
/// acknowledged.
struct Rig {
    test: TestCluster,
    armed: Armed,
    victim: NodeKey,
    client: LedgerClient,
    accounts: Vec<String>,
    history: History,
    n_writes: u64,
}

impl Rig {
    async fn start() -> Rig {
        let armed: Armed = Arc::default();
        let hook_armed = armed.clone();
        let spec = Spec::single_site(3).with_tweak(move |key, config| {
            config.raft.snapshot_every_entries = SNAPSHOT_EVERY_ENTRIES;
            config.raft.keep_entries_after_snapshot = KEEP_ENTRIES_AFTER_SNAPSHOT;
            config.raft.purge_batch_entries = 1;
            config.failpoints = hook_armed.lock().expect("not poisoned").get(&key.1).cloned().unwrap_or_default();
        });
        let test = TestCluster::start(node_bin!(), spec).await;
        let client = test.site_client("primary");
        let accounts: Vec<String> = (0..4).map(|i| format!("acct-{i}")).collect();
        let mut new = vec![account("bank", "EUR")];
        new.extend(accounts.iter().map(|id| deposit_account(id, "EUR")));
        must_create_accounts(&client, new).await;
        let leader = test.leader("primary").await;
        let victim = test.cluster.site_keys("primary").into_iter().find(|k| *k != leader).expect("a follower");
        let mut rig = Rig { test, armed, victim, client, accounts, history: History::default(), n_writes: 0 };
        // Enough entries that the leader has built snapshots and purged its log: a wiped node
        // can only rejoin by snapshot.
        for _ in 0..3 * SNAPSHOT_EVERY_ENTRIES {
            rig.must_write("warm-up").await;
        }
        let leader = rig.test.leader("primary").await;
        LocalCluster::poll("the leader to purge its log", DEADLINE, || async {
            (rig.test.cluster.status(&leader).await.ok()?.purged_index > 0).then_some(())
        })
        .await
        .expect("the leader purges its log after a snapshot");
        rig
    }

    /// Writes one transfer (one Raft entry) and records its acknowledgement; resends the same
    /// id until it is acknowledged.
    async fn must_write(&mut self, label: &str) {
        self.n_writes += 1;
        let id = format!("{label}-{}", self.n_writes);
        let to = self.accounts[self.n_writes as usize % self.accounts.len()].clone();
        let sent_at_ms = wall_ms();
        let deadline = Instant::now() + DEADLINE;
        let response = loop {
            match self.client.create_transfers(vec![transfer(&id, "bank", &to, "1.00")], false).await {
                Ok(response) => break response,
                Err(e) => {
                    assert!(Instant::now() < deadline, "transfer {id} not acknowledged within {DEADLINE:?}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(codes(&response.results), ["ok"], "transfer {id}");
        self.history.acks.push(Ack {
            id,
            kind: "posted".into(),
            debit: "bank".into(),
            credit: to,
            amount: "1.00".into(),
            pending_id: String::new(),
            result: "ok".into(),
            replayed: response.results[0].replayed,
            journal_seq: response.commit.map_or(0, |c| c.journal_seq),
            sent_at_ms,
            acked_at_ms: wall_ms(),
            client: 0,
            endpoint: self.client.preferred_endpoint(),
        });
    }

    /// Brings the victim to `failpoint` the given `way`, writes until its process exits, and
    /// checks it aborted there. Returns how many transfers it took.
    async fn crash_at(&mut self, name: &'static str, way: Way) -> u64 {
        let victim = self.victim.clone();
        let last_log_index = self.test.status(&victim).await.last_log_index;
        assert!(self.test.cluster.stop(&victim), "node {} stops cleanly on SIGTERM", victim.1);
        match way {
            Way::Restart => {}
            Way::Wipe => self.test.cluster.wipe(&victim).expect("wipe"),
            Way::Lag => {
                let leader = self.test.leader("primary").await;
                while self.test.status(&leader).await.purged_index <= last_log_index {
                    self.must_write(name).await;
                }
            }
        }
        let log_path = self.test.cluster.log_path(&victim);
        let log_before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        self.armed.lock().expect("not poisoned").insert(victim.1, vec![name.to_string()]);
        self.test.cluster.start(&victim).expect("restart armed");
        let started = Instant::now();
        let writes_before = self.n_writes;
        let status = loop {
            if let Some(status) = self.test.cluster.exit_status(&victim) {
                break status;
            }
            assert!(
                started.elapsed() < CRASH_WAIT,
                "node {} armed with {name} ({way:?}) still runs {CRASH_WAIT:?} and {} transfers later: the failpoint never fired",
                victim.1,
                self.n_writes - writes_before
            );
            self.must_write(name).await;
        };
        self.armed.lock().expect("not poisoned").remove(&victim.1);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let new_log = log.get(log_before..).unwrap_or_default();
        assert_eq!(
            status.signal(),
            Some(nix::sys::signal::Signal::SIGABRT as i32),
            "node {} armed with {name} aborts: {status:?}; its log:\n{new_log}",
            victim.1
        );
        assert!(
            new_log.contains(&format!("failpoint {name}")),
            "node {} aborted at {name}; its log:\n{new_log}",
            victim.1
        );
        self.n_writes - writes_before
    }

    /// Restarts the victim without failpoints on its data dir and checks it rejoins: it applies
    /// what the leader applied, every node reports the same journal head (seq and hash), and
    /// the checker passes over all three (chains, every acknowledged transfer present once,
    /// balances equal a replay of the journal, conservation). Returns its status then.
    async fn must_recover(&mut self) -> ledger_client::proto::NodeStatus {
        let victim = self.victim.clone();
        self.test.cluster.start(&victim).expect("restart without failpoints");
        let leader = self.test.leader("primary").await;
        let target = self.test.status(&leader).await.applied_index;
        let cluster = &self.test.cluster;
        let status = LocalCluster::poll(&format!("node {} to catch up to {target}", victim.1), DEADLINE, || async {
            let status = cluster.status(&victim).await.ok()?;
            (status.applied_index >= target).then_some(status)
        })
        .await
        .unwrap_or_else(|e| {
            let exited = self.test.cluster.exit_status(&victim);
            panic!("node {} did not come back: {e}; exit status {exited:?}", victim.1)
        });
        let all = self.test.cluster.site_keys("primary");
        let head = self.test.wait_heads_equal(&all).await;
        let mut accounts = self.accounts.clone();
        accounts.push("bank".into());
        must_pass_invariants(&self.test, &all, &[], &accounts, &self.history).await;
        assert!(self.test.cluster.is_running(&victim), "node {} still runs after the checks", victim.1);
        assert!(head.seq > 0);
        status
    }
}

/// Goal (issue 10): a crash at any step of writing a checkpoint (before the temporary file is
/// written, before it is synced, before it is renamed into place, before its directory is
/// synced) loses nothing: the node restarts from what it left on disk, catches up, and holds
/// the same journal as the others, with every acknowledged transfer once.
/// Method: a 3-node site building a snapshot every 20 entries (keeping 5); for each crash point
/// in `failpoint::CHECKPOINT_CRASHES`, restart one follower armed with it, write transfers
/// one entry each until its process exits, check it aborted there (SIGABRT, the failpoint's
/// log line), restart it without failpoints on the same data dir, wait until it applied what
/// the leader applied and all three report the same journal head, and run the chaos checker
/// over all three with every transfer acknowledged so far.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_crashed_at_any_checkpoint_step_recovers() {
    let started = Instant::now();
    let mut rig = Rig::start().await;
    for name in failpoint::CHECKPOINT_CRASHES {
        let case = Instant::now();
        let writes = rig.crash_at(name, Way::Restart).await;
        let status = rig.must_recover().await;
        eprintln!(
            "{name}: crashed after {writes} transfers, recovered to applied index {} (snapshot {}) in {:.1} s",
            status.applied_index,
            status.snapshot_index,
            case.elapsed().as_secs_f64()
        );
    }
    eprintln!("checkpoint crash points: {:.1} s in all", started.elapsed().as_secs_f64());
}

/// Goal (issue 10): a crash during a snapshot install, before the new state's checkpoint exists
/// or after it is durable but before the old state is removed, loses nothing: the node
/// restarts on what it left, rejoins, and holds the same journal as the others.
/// Method: a 3-node site building a snapshot every 20 entries (keeping 5), whose leader has
/// purged its log; for each install crash point, twice: a follower wiped, and a follower
/// stopped until the leader purged its log past the follower's, so that either must install a
/// snapshot; restart it armed, write until its process exits, check it aborted there, restart
/// it without failpoints on the same data dir, and check as for the checkpoint crash points;
/// it must then hold a snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_crashed_while_installing_a_snapshot_recovers() {
    let started = Instant::now();
    let mut rig = Rig::start().await;
    for name in
        [failpoint::SNAPSHOT_INSTALL_CRASH_BEFORE_CHECKPOINT, failpoint::SNAPSHOT_INSTALL_CRASH_AFTER_CHECKPOINT]
    {
        for way in [Way::Wipe, Way::Lag] {
            let case = Instant::now();
            let writes = rig.crash_at(name, way).await;
            let status = rig.must_recover().await;
            assert!(status.snapshot_index > 0, "node {} rejoined holding a snapshot: {status:?}", rig.victim.1);
            eprintln!(
                "{name} ({way:?}): crashed after {writes} transfers, recovered to applied index {} (snapshot {}) in {:.1} s",
                status.applied_index,
                status.snapshot_index,
                case.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!("snapshot install crash points: {:.1} s in all", started.elapsed().as_secs_f64());
}
