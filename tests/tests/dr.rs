//! Disaster recovery on real processes: a primary site and a DR site of three nodes each,
//! every link between them through a fault proxy. Shipping after a link cut, switchover and
//! back under load, loss of the whole primary site with a forced promotion and a failback
//! with reconciliation, a DR leader killed while shipping, fencing of a partitioned primary,
//! and the RPO guardrail (alarm, throttle).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use ledger_chaos::workload::History;
use ledger_chaos::workload::Workload;
use ledger_chaos::workload::WorkloadConfig;
use ledger_chaos::workload::wall_ms;
use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::audit::decode_record;
use ledger_client::proto as pb;
use ledger_cluster::dr;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use ledger_core::journal::JournalRecord;
use ledger_tests::*;

fn accounts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dr-acct-{i}")).collect()
}

fn with_bank(accounts: &[String]) -> Vec<String> {
    let mut all = accounts.to_vec();
    all.push("bank".into());
    all
}

async fn open_accounts(client: &LedgerClient, accounts: &[String]) {
    let mut new = vec![account("bank", "EUR")];
    new.extend(accounts.iter().map(|id| deposit_account(id, "EUR")));
    must_create_accounts(client, new).await;
    let funding = accounts.iter().map(|id| transfer(&format!("fund-{id}"), "bank", id, "500.00")).collect();
    let r = client.create_transfers(funding, true).await.expect("fund");
    assert!(codes(&r.results).iter().all(|c| c == "ok"));
}

fn workload(client: LedgerClient, accounts: &[String], run_id: &str, seed: u64) -> Workload {
    Workload::start(
        vec![client],
        WorkloadConfig {
            clients: 4,
            batch: 4,
            accounts: accounts.to_vec(),
            pending_every: 7,
            pause: Duration::from_millis(10),
            run_id: run_id.into(),
            seed,
        },
    )
}

async fn status_of(test: &TestCluster, site: &str) -> pb::NodeStatus {
    test.dr_sites("operator-1").status(site).await.expect("site status")
}

fn site_keys(test: &TestCluster, site: &str) -> Vec<NodeKey> {
    test.cluster.site_keys(site)
}

/// Waits until every node of both sites holds the same journal head.
async fn wait_all_heads_equal(test: &TestCluster) -> pb::JournalHead {
    let mut all = site_keys(test, "primary");
    all.extend(site_keys(test, "dr"));
    test.wait_heads_equal(&all).await
}

/// Goal: the DR site ships the primary's journal, falls behind while its link is cut (the
/// primary keeps committing, its lag shows it), and catches up when the link is restored:
/// every node of both sites ends with the same chain head.
/// Method: workload through the primary; blackhole the DR->primary link for 3 s; heal.
#[tokio::test(flavor = "multi_thread")]
async fn dr_catches_up_after_link_cut() {
    let test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let accounts = accounts(8);
    open_accounts(&test.client(), &accounts).await;
    let load = workload(test.client(), &accounts, "cut", 11);
    tokio::time::sleep(Duration::from_secs(1)).await;
    test.cut("dr", "primary");
    let cut_at = Instant::now();
    // The primary keeps committing; its watcher sees the standby fall behind.
    let lag = LocalCluster::poll("the primary to see DR lag", DEADLINE, || async {
        let lag = status_of(&test, "primary").await.site?.dr_lag?;
        (lag.records > 0 && lag.ms > 500).then_some(lag)
    })
    .await
    .expect("lag observed");
    eprintln!("lag after {} ms of cut link: {} records, {} ms", cut_at.elapsed().as_millis(), lag.records, lag.ms);
    tokio::time::sleep(Duration::from_secs(2)).await;
    test.heal("dr", "primary");
    let history = load.stop(Duration::from_secs(30)).await;
    assert!(history.ok().filter(|a| a.acked_at_ms > wall_ms() - 4000).count() > 0, "writes kept flowing while cut");
    let head = wait_all_heads_equal(&test).await;
    eprintln!("caught up to seq {} after the link was restored", head.seq);
    let lag = LocalCluster::poll("the lag to clear", DEADLINE, || async {
        let lag = status_of(&test, "primary").await.site?.dr_lag?;
        (lag.records == 0).then_some(lag)
    })
    .await
    .expect("lag clears");
    assert!(!lag.alarm);
    must_pass_invariants(&test, &site_keys(&test, "primary"), &site_keys(&test, "dr"), &with_bank(&accounts), &history)
        .await;
}

/// Goal: a client whose endpoint rotation runs into the standby site comes back to the
/// active site (regression: after asking every endpoint for the active site, the client kept
/// its rotation offset and landed on the standby again until its deadline).
/// Method: a client whose endpoints are, in order, a dead address, a DR node and a primary
/// node; one write must succeed well within the client's retry deadline.
#[tokio::test(flavor = "multi_thread")]
async fn client_rotating_into_the_standby_finds_the_active_site() {
    let test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let accounts = accounts(2);
    open_accounts(&test.client(), &accounts).await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let dr_node = test.cluster.topology.site("dr").unwrap().endpoints()[0].clone();
    let primary_node = test.cluster.topology.site("primary").unwrap().endpoints()[0].clone();
    let client = LedgerClient::new(ClientConfig {
        retry_deadline: Duration::from_secs(10),
        ..test.cluster.client_config_as("writer", vec![dead, dr_node, primary_node.clone()]).unwrap()
    })
    .unwrap();
    let started = Instant::now();
    let r = client
        .create_transfers(vec![transfer("via-rotation", "bank", &accounts[0], "1.00")], false)
        .await
        .expect("the client finds the active site");
    assert_eq!(codes(&r.results), ["ok"]);
    assert_eq!(client.preferred_endpoint(), primary_node, "the client now prefers the active site");
    eprintln!("written after {} ms", started.elapsed().as_millis());
}

/// The whole journal of one node.
async fn journal_of(test: &TestCluster, key: &NodeKey) -> Vec<JournalRecord> {
    let mut stream = test.node_client(key).read_journal(1, 0, false).await.expect("read journal");
    let mut records = Vec::new();
    while let Some(record) = stream.message().await.expect("journal record") {
        records.push(decode_record(records.len() as u64, &record).expect("decodable record"));
    }
    records
}

/// Records of site `old` that site `new` lacks, computed here: each node of `old` (read
/// first) against the longest journal among `new`'s nodes (read after, so it holds anything
/// `old` shipped from `new`): the records past the prefix they share (same hash at the same
/// seq), the most of any node of `old`.
async fn records_missing(test: &TestCluster, old: &str, new: &str) -> u64 {
    let mut old_journals = Vec::new();
    for key in site_keys(test, old) {
        old_journals.push(journal_of(test, &key).await);
    }
    let mut longest = Vec::new();
    for key in site_keys(test, new) {
        let journal = journal_of(test, &key).await;
        if journal.len() > longest.len() {
            longest = journal;
        }
    }
    old_journals
        .iter()
        .map(|journal| {
            let shared = journal.iter().zip(&longest).take_while(|(a, b)| a.hash == b.hash).count();
            (journal.len() - shared) as u64
        })
        .max()
        .unwrap_or(0)
}

/// Goal: planned switchover under load loses no acknowledged transfer; the old primary
/// becomes the standby of the new active site; writes continue there (the client follows the
/// active site on its own); a second switchover brings everything back.
#[tokio::test(flavor = "multi_thread")]
async fn switchover_under_load_and_back() {
    let test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let accounts = accounts(8);
    open_accounts(&test.client(), &accounts).await;
    let load = workload(test.client(), &accounts, "sw", 12);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A single operator cannot switch over.
    let sites = test.dr_sites("operator-1");
    let refused = dr::switchover(&sites, "primary", "dr", "sw-1").await.expect_err("one operator is not enough");
    assert!(refused.to_string().contains("dual control"), "{refused}");
    assert!(!status_of(&test, "primary").await.site.unwrap().fenced, "an aborted switchover unfences");

    test.approve_twice("sw-1", "switchover", &["primary", "dr"]).await;
    let first = dr::switchover(&sites, "primary", "dr", "sw-1").await.expect("switchover");
    let switched_at = wall_ms();
    eprintln!("switchover primary -> dr: {} ms {:?}", first.total_ms, first.steps);
    assert_eq!(first.records_lost, 0);
    assert_eq!(first.records_lost, records_missing(&test, "primary", "dr").await, "records_lost is measured");
    let primary = status_of(&test, "primary").await.site.unwrap();
    let dr_site = status_of(&test, "dr").await.site.unwrap();
    assert_eq!((primary.role.as_str(), primary.active_site.as_str()), ("standby", "dr"));
    assert_eq!((dr_site.role.as_str(), dr_site.epoch), ("active", first.new_epoch));
    tokio::time::sleep(Duration::from_secs(2)).await;

    test.approve_twice("sw-2", "switchover", &["primary", "dr"]).await;
    let second = dr::switchover(&sites, "dr", "primary", "sw-2").await.expect("switchover back");
    let back_at = wall_ms();
    eprintln!("switchover dr -> primary: {} ms", second.total_ms);
    assert!(second.new_epoch > first.new_epoch);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let history = load.stop(Duration::from_secs(30)).await;
    let acked_on = |from: u64, to: u64| history.ok().filter(|a| a.acked_at_ms > from && a.acked_at_ms < to).count();
    assert!(acked_on(switched_at, back_at) > 0, "writes were acknowledged while dr was active");
    assert!(acked_on(back_at, u64::MAX) > 0, "writes were acknowledged after switching back");
    assert_eq!(status_of(&test, "primary").await.site.unwrap().role, "active");
    assert_eq!(status_of(&test, "dr").await.site.unwrap().role, "standby");
    wait_all_heads_equal(&test).await;
    must_pass_invariants(&test, &site_keys(&test, "primary"), &site_keys(&test, "dr"), &with_bank(&accounts), &history)
        .await;
}

/// Ids of the reconciliation report rows with status "lost".
fn lost_ids(report: &dr::FailbackReport) -> BTreeSet<String> {
    report.rows.iter().filter(|r| r.command == "create_transfers" && r.status == "lost").map(|r| r.id.clone()).collect()
}

/// Every acknowledged transfer is on the active site or "lost" in the report, never both.
async fn check_acks_against_report(
    test: &TestCluster,
    history: &History,
    report: &dr::FailbackReport,
) -> BTreeSet<String> {
    let lost = lost_ids(report);
    let ok: Vec<String> = history.ok().filter(|a| !a.replayed).map(|a| a.id.clone()).collect();
    let dr_client = test.site_client("dr");
    let mut present = BTreeSet::new();
    for chunk in ok.chunks(500) {
        let found =
            dr_client.lookup_transfers(chunk.to_vec(), pb::ReadConsistency::Linearizable).await.expect("lookup");
        present.extend(
            found
                .transfers
                .into_iter()
                .filter(|t| t.result == pb::ResultCode::Ok as i32)
                .map(|t| t.request.unwrap().id),
        );
    }
    let missing: Vec<&String> = ok.iter().filter(|id| !present.contains(*id) && !lost.contains(*id)).collect();
    let both: Vec<&String> = ok.iter().filter(|id| present.contains(*id) && lost.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged transfers neither on the active site nor in the report: {missing:?}");
    assert!(both.is_empty(), "acknowledged transfers both on the active site and reported lost: {both:?}");
    eprintln!("{} acknowledged: {} on the active site, {} reported lost", ok.len(), present.len(), lost.len());
    lost
}

/// Goal: the whole primary site is killed under load. `promote --force` makes the DR site
/// active with what it had (the report names the RPO point); writes continue there. When the
/// old primary returns it takes no writes (lower epoch); failback exports its records past the
/// branch point as a reconciliation report and resyncs it as a standby. Every acknowledged
/// transfer is on the active site or in the report, none in both, none missing.
#[tokio::test(flavor = "multi_thread")]
async fn primary_site_loss_promote_force_then_failback() {
    let mut test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let accounts = accounts(8);
    open_accounts(&test.client(), &accounts).await;
    let load = workload(test.client(), &accounts, "loss", 13);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = wall_ms();
    for key in site_keys(&test, "primary") {
        test.cluster.kill(&key);
    }
    test.approve_twice("fo-1", "promote", &["dr"]).await;
    let promoted = dr::promote_force(&test.dr_sites("operator-1"), "dr", "fo-1").await.expect("promote --force");
    eprintln!(
        "promoted dr at epoch {}; RPO point seq {} ({} ms before the kill)",
        promoted.new_epoch,
        promoted.rpo_seq,
        killed_at.saturating_sub(promoted.rpo_ledger_time_ms)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let history = load.stop(Duration::from_secs(30)).await;
    let rto_ms = history.first_ok_after(killed_at).expect("writes resumed on the DR site") - killed_at;
    eprintln!("first acknowledged write on dr {rto_ms} ms after the primary site was killed");

    // The old primary comes back with its data: it must not take writes (lower epoch).
    for key in site_keys(&test, "primary") {
        test.cluster.start(&key).expect("restart primary node");
    }
    let fenced = LocalCluster::poll("the old primary to learn the higher epoch", DEADLINE, || async {
        let site = test.dr_sites("operator-1").status("primary").await.ok()?.site?;
        (site.active_epoch >= promoted.new_epoch).then_some(site)
    })
    .await
    .expect("old primary fenced");
    assert_eq!(fenced.active_site, "dr");
    let e = test
        .site_client("primary")
        .create_transfers(vec![transfer("after-return", "bank", &accounts[0], "1.00")], false)
        .await
        .expect_err("the old primary refuses writes");
    assert_eq!(e.error_code(), "site_not_writable", "{e}");

    test.approve_twice("fb-1", "failback", &["primary", "dr"]).await;
    let report_dir = test.root().join("reconciliation");
    let report =
        dr::failback(&test.dr_sites("operator-2"), "primary", "dr", "fb-1", &report_dir).await.expect("failback");
    eprintln!(
        "failback: branch {} lost records {} lost transfers {} resubmitted {}; {} ms",
        report.branch_seq,
        report.lost_records,
        report.lost_transfers_applied,
        report.resubmitted_transfers,
        report.total_ms
    );
    assert!(std::path::Path::new(&report.json_report).exists() && std::path::Path::new(&report.csv_report).exists());
    let csv = std::fs::read_to_string(&report.csv_report).unwrap();
    assert!(csv.starts_with("seq,ledger_time_ms,"));
    let lost = check_acks_against_report(&test, &history, &report).await;
    assert_eq!(status_of(&test, "primary").await.site.unwrap().role, "standby");
    wait_all_heads_equal(&test).await;
    let active = site_keys(&test, "dr");
    let standbys = site_keys(&test, "primary");
    let mut views = Vec::new();
    for key in &active {
        views.push(
            ledger_chaos::invariants::collect(&key.0, &test.node_client(key), &with_bank(&accounts)).await.unwrap(),
        );
    }
    let mut standby_views = Vec::new();
    for key in &standbys {
        standby_views.push(
            ledger_chaos::invariants::collect(&key.0, &test.node_client(key), &with_bank(&accounts)).await.unwrap(),
        );
    }
    let input = ledger_chaos::invariants::CheckInput {
        active: &views,
        standbys: &standby_views,
        history: &history,
        reconciled: &lost,
    };
    let verdicts = ledger_chaos::invariants::check_all(&input);
    assert!(verdicts.iter().all(|v| v.passed), "{verdicts:#?}");

    // The RPO, as every drill measures it (acknowledged transfers missing from the active
    // site's final journal), equals what the reconciliation report says was lost.
    let reference = views.iter().max_by_key(|v| v.journal.len()).expect("an active node");
    let rpo = ledger_chaos::rpo::measure(&history, &ledger_chaos::rpo::applied_transfer_ids(&reference.journal));
    let mut lost_acked: BTreeMap<&str, u64> = BTreeMap::new();
    for ack in history.ok().filter(|a| lost.contains(&a.id)) {
        let first = lost_acked.entry(ack.id.as_str()).or_insert(ack.acked_at_ms);
        *first = (*first).min(ack.acked_at_ms);
    }
    let span_ms = match (lost_acked.values().min(), lost_acked.values().max()) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    };
    eprintln!("RPO: {} acknowledged transfers lost over {} ms", rpo.lost_transfers, rpo.span_ms);
    assert_eq!((rpo.lost_transfers, rpo.span_ms), (lost_acked.len(), span_ms), "{rpo:?}");
}

/// Goal: the DR site's leader is killed while it ships; a new DR leader resumes from its own
/// head without gaps or duplicates (each shipped record is hash-checked against the chain).
#[tokio::test(flavor = "multi_thread")]
async fn dr_leader_killed_while_shipping() {
    let mut test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let accounts = accounts(8);
    open_accounts(&test.client(), &accounts).await;
    let load = workload(test.client(), &accounts, "drk", 14);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dr_leader = test.leader("dr").await;
    test.cluster.kill(&dr_leader);
    let new_leader = test.leader("dr").await;
    assert_ne!(new_leader, dr_leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    test.cluster.start(&dr_leader).expect("restart");
    let history = load.stop(Duration::from_secs(30)).await;
    let head = wait_all_heads_equal(&test).await;
    let dr_status = status_of(&test, "dr").await.site.unwrap();
    assert!(dr_status.halted.is_empty(), "shipping never halted: {}", dr_status.halted);
    assert_eq!(dr_status.watermark_seq, head.seq);
    must_pass_invariants(&test, &site_keys(&test, "primary"), &site_keys(&test, "dr"), &with_bank(&accounts), &history)
        .await;
}

/// Goal: fencing. A primary partitioned from the DR site (not killed) keeps taking writes
/// while the DR site is promoted; when the partition heals it learns the higher epoch and
/// never accepts another write. Its writes during the partition are in the failback report.
#[tokio::test(flavor = "multi_thread")]
async fn partitioned_primary_is_fenced_when_it_reconnects() {
    let test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let accounts = accounts(6);
    open_accounts(&test.client(), &accounts).await;
    wait_all_heads_equal(&test).await;
    test.cut("dr", "primary");
    test.cut("primary", "dr");
    // The primary, cut off, still takes writes from clients that reach it.
    let primary_client = test.site_client("primary");
    let mut during = Vec::new();
    for i in 0..5 {
        let id = format!("during-partition-{i}");
        let r =
            primary_client.create_transfers(vec![transfer(&id, "bank", &accounts[0], "1.00")], false).await.unwrap();
        assert_eq!(codes(&r.results), ["ok"]);
        during.push(id);
    }
    test.approve_twice("fo-2", "promote", &["dr"]).await;
    let promoted = dr::promote_force(&test.dr_sites("operator-1"), "dr", "fo-2").await.expect("promote --force");
    let r = test.site_client("dr").create_transfers(vec![transfer("on-dr", "bank", &accounts[1], "1.00")], false).await;
    assert_eq!(codes(&r.expect("dr takes writes").results), ["ok"]);

    test.heal("dr", "primary");
    test.heal("primary", "dr");
    LocalCluster::poll("the primary to learn the higher epoch", DEADLINE, || async {
        let site = test.dr_sites("operator-1").status("primary").await.ok()?.site?;
        (site.active_epoch >= promoted.new_epoch).then_some(())
    })
    .await
    .expect("fenced after reconnecting");
    let strict = LedgerClient::new(ClientConfig {
        retry_deadline: Duration::from_secs(1),
        ..test.cluster.client_config_as("writer", test.cluster.topology.site("primary").unwrap().endpoints()).unwrap()
    })
    .unwrap();
    for i in 0..10 {
        let e = strict
            .create_transfers(vec![transfer(&format!("after-fence-{i}"), "bank", &accounts[0], "1.00")], false)
            .await
            .expect_err("a fenced primary takes no write");
        assert_eq!(e.error_code(), "site_not_writable", "{e}");
    }
    test.approve_twice("fb-2", "failback", &["primary", "dr"]).await;
    let report = dr::failback(&test.dr_sites("operator-1"), "primary", "dr", "fb-2", &test.root().join("rec"))
        .await
        .expect("failback");
    let lost = lost_ids(&report);
    for id in &during {
        assert!(lost.contains(id), "{id} (acknowledged by the partitioned primary) is in the report");
    }
    assert!(!lost.iter().any(|id| id.starts_with("after-fence")), "nothing was accepted after the fence");
}

/// A client of the primary site that gives up after one second (to observe refusals).
fn impatient_primary_client(test: &TestCluster) -> LedgerClient {
    LedgerClient::new(ClientConfig {
        retry_deadline: Duration::from_secs(1),
        ..test.cluster.client_config_as("writer", test.cluster.topology.site("primary").unwrap().endpoints()).unwrap()
    })
    .unwrap()
}

/// Goal: the RPO guardrail. With the DR link cut, the primary's lag passes the budget and
/// status and metrics raise the alarm; without throttling, writes continue.
#[tokio::test(flavor = "multi_thread")]
async fn lag_over_budget_raises_the_alarm() {
    let spec = Spec::primary_and_dr().with_tweak(|_, config| {
        config.dr.lag_budget_ms = 500;
        config.dr.lag_ceiling_ms = 60_000;
    });
    let test = TestCluster::start(node_bin!(), spec).await;
    let accounts = accounts(4);
    let client = impatient_primary_client(&test);
    open_accounts(&client, &accounts).await;
    test.cut("dr", "primary");
    let mut n = 0;
    let lag = loop {
        n += 1;
        let r =
            client.create_transfers(vec![transfer(&format!("alarm-{n}"), "bank", &accounts[0], "0.01")], false).await;
        assert_eq!(codes(&r.expect("no throttling: writes continue").results), ["ok"]);
        let lag = status_of(&test, "primary").await.site.unwrap().dr_lag.unwrap();
        if lag.alarm {
            break lag;
        }
        assert!(n < 2000, "the alarm never rose");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(lag.ms > 500 && lag.records > 0, "{lag:?}");
    let leader = test.leader("primary").await;
    let metrics = scrape_metrics(&test, &leader).await;
    assert!(metrics.contains("ledger_dr_lag_alarm 1"), "metric alarm raised");
    test.heal("dr", "primary");
    LocalCluster::poll("the alarm to clear", DEADLINE, || async {
        let lag = status_of(&test, "primary").await.site?.dr_lag?;
        (!lag.alarm).then_some(())
    })
    .await
    .expect("alarm clears after catch-up");
}

/// Goal: with throttling on, the primary refuses new writes before the lag reaches the hard
/// ceiling, so the lag never exceeds it; once the DR site catches up, writes are accepted.
#[tokio::test(flavor = "multi_thread")]
async fn throttling_keeps_lag_under_the_ceiling() {
    let spec = Spec::primary_and_dr().with_tweak(|key, config| {
        config.dr.lag_budget_ms = 300;
        config.dr.lag_ceiling_ms = 2_000;
        config.dr.throttle = key.0 == "primary";
    });
    let test = TestCluster::start(node_bin!(), spec).await;
    let accounts = accounts(4);
    let client = impatient_primary_client(&test);
    open_accounts(&client, &accounts).await;
    test.cut("dr", "primary");
    let started = Instant::now();
    let mut max_lag_ms = 0;
    let mut refused = 0;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(5) {
        n += 1;
        match client.create_transfers(vec![transfer(&format!("thr-{n}"), "bank", &accounts[0], "0.01")], false).await {
            Ok(r) => assert_eq!(codes(&r.results), ["ok"]),
            Err(e) => {
                assert_eq!(e.error_code(), "dr_lag_ceiling", "{e}");
                refused += 1;
            }
        }
        let lag = status_of(&test, "primary").await.site.unwrap().dr_lag.unwrap();
        max_lag_ms = max_lag_ms.max(lag.ms);
    }
    eprintln!("{refused} writes refused; max lag {max_lag_ms} ms (ceiling 2000)");
    assert!(refused > 0, "writes were throttled");
    assert!(max_lag_ms <= 2_000, "the lag never exceeded the ceiling: {max_lag_ms}");
    test.heal("dr", "primary");
    let attempt = std::sync::atomic::AtomicU64::new(0);
    LocalCluster::poll("writes to be accepted again", DEADLINE, || async {
        let i = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        client
            .create_transfers(vec![transfer(&format!("thr-after-{i}"), "bank", &accounts[0], "0.01")], false)
            .await
            .ok()
            .filter(|r| codes(&r.results) == ["ok"])
    })
    .await
    .expect("writes resume after catch-up");
}

async fn scrape_metrics(test: &TestCluster, key: &NodeKey) -> String {
    let addr = test.cluster.topology.site(&key.0).unwrap().node(key.1).unwrap().metrics_addr.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        body
    })
    .await
    .unwrap()
}
