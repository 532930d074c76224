//! Every chaos drill in its short, seeded form (what `ledger-chaos run --all` runs), on real
//! processes with every link through a fault proxy: each must pass every invariant and the
//! regulatory RPO/RTO targets. The summary table is printed (`--nocapture`) and the reports are
//! kept in the target directory. The crash storm has a test of its own.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ledger_chaos::drill;
use ledger_chaos::drill::DrillConfig;
use ledger_chaos::drill::Scenario;
use ledger_cluster::process::NodeLauncher;
use ledger_tests::node_bin;

/// Goal: every drill but the crash storm (below) passes in its short form, and every report's
/// RPO figures are measured. Method: `drill::run_many` with 6 s of load each, seed 1, WAN delay
/// 20 ms between the sites and 1 ms between zones; then each report's RPO is recomputed from
/// the drill's files ([`must_report_measured_rpo`]).
#[tokio::test(flavor = "multi_thread")]
async fn all_drills_pass_in_short_form() {
    let _serial = ledger_tests::SERIAL.lock().await;
    let report_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-drills");
    let _ = std::fs::remove_dir_all(&report_dir);
    let base = DrillConfig {
        scenario: Scenario::LeaderKill,
        duration: Duration::from_secs(6),
        seed: 1,
        report_dir: report_dir.clone(),
        wan_delay: Duration::from_millis(20),
        zone_delay: Duration::from_millis(1),
        launcher: NodeLauncher::program(node_bin!()),
        kills: drill::CRASH_STORM_KILLS,
    };
    let scenarios: Vec<Scenario> = Scenario::ALL.into_iter().filter(|s| *s != Scenario::CrashStorm).collect();
    let reports = drill::run_many(&scenarios, &base).await;
    let summary = drill::summary_markdown(&reports);
    eprintln!("{summary}\nreports in {}", report_dir.display());
    for report in &reports {
        assert!(report.passed, "drill {} failed: {:#?}", report.scenario, report);
    }
    // The site-loss drill first: the one that may lose acknowledged transfers.
    let mut order = scenarios;
    order.sort_by_key(|s| *s != Scenario::PrimarySiteLoss);
    for scenario in order {
        must_report_measured_rpo(&report_dir.join(scenario.name()), scenario);
    }
}

/// Goal (issue 10): crash consistency under kill -9. Nodes killed at random moments, as their
/// snapshot builds (checkpoints) come due, wiped so that they rejoin by snapshot, and killed
/// again while they receive it or catch up, lose no acknowledged transfer, and every node of
/// both sites ends with the same journal and with balances that a replay of it reproduces.
/// Method: the `crash-storm` drill in its CI form: 20 kills, seed 11, 2 s of load before the
/// first and after the last, snapshots every 40 entries keeping 50. It must pass every
/// invariant (after every node reports the same journal head, seq and hash: chains verify on
/// all six nodes, every acknowledged transfer is present, none is applied twice, balances equal
/// a replay, money is conserved) and its RPO must be 0; its events must show the 20 kills and,
/// for this seed, kills of the leader, kills as a checkpoint was due, wipes and re-kills while
/// rejoining. Soak form: `ledger-chaos run --scenario crash-storm --kills 300`.
#[tokio::test(flavor = "multi_thread")]
async fn crash_storm_loses_nothing_and_leaves_every_node_equal() {
    let _serial = ledger_tests::SERIAL.lock().await;
    let report_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-crash-storm");
    let _ = std::fs::remove_dir_all(&report_dir);
    let config = DrillConfig {
        scenario: Scenario::CrashStorm,
        duration: Duration::from_secs(6),
        seed: 11,
        report_dir: report_dir.clone(),
        wan_delay: Duration::from_millis(20),
        zone_delay: Duration::from_millis(1),
        launcher: NodeLauncher::program(node_bin!()),
        kills: drill::CRASH_STORM_KILLS,
    };
    let started = std::time::Instant::now();
    let report = drill::run(&config)
        .await
        .unwrap_or_else(|e| panic!("crash-storm could not run to its end: {e}; see {}", report_dir.display()));
    eprintln!(
        "crash-storm: {} in {:.0} s; report in {}",
        drill::one_line(&report),
        started.elapsed().as_secs_f64(),
        report_dir.display()
    );
    for note in &report.notes {
        eprintln!("{note}");
    }
    assert!(report.passed, "crash-storm failed: {report:#?}");
    assert_eq!(report.rpo_lost_transfers, Some(0), "no acknowledged transfer lost: {report:#?}");
    let chains = report.verdicts.iter().find(|v| v.property == "hash chains agree").expect("the chains verdict");
    assert!(chains.detail.starts_with("6 nodes"), "every node of both sites was checked: {}", chains.detail);
    let events = |what: &str| report.events.iter().filter(|e| e.what.contains(what)).count();
    let kills = events("kill -9 node");
    assert_eq!(kills, drill::CRASH_STORM_KILLS as usize, "{:#?}", report.events);
    assert!(events("(leader)") >= 1, "the leader was killed at least once: {:#?}", report.events);
    assert!(events("as its snapshot build is due") >= 1, "a kill aimed at a checkpoint: {:#?}", report.events);
    assert!(events("wiped node") >= 1, "a node was wiped: {:#?}", report.events);
    assert!(events("again") >= 1, "a node was killed again while rejoining: {:#?}", report.events);
    assert_eq!(
        events("rejoined at applied index"),
        kills - events(" again "),
        "every victim rejoined: {:#?}",
        report.events
    );
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The earliest acknowledgement time of each `ok` acknowledgement in `history.jsonl` whose id
/// `is_lost` says is lost, read field by field (not through the workload's types).
fn lost_acks(dir: &Path, is_lost: impl Fn(&str) -> bool) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).expect("history.jsonl");
    let mut lost: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let ack: serde_json::Value = serde_json::from_str(line).expect("an acknowledgement");
        let id = ack["id"].as_str().expect("id");
        let at = ack["acked_at_ms"].as_u64().expect("acked_at_ms");
        if ack["result"] == "ok" && is_lost(id) {
            let first = lost.entry(id.to_string()).or_insert(at);
            *first = (*first).min(at);
        }
    }
    lost
}

/// Count and span (first to last acknowledgement, both ends included, in ms) of lost acks.
fn count_and_span_ms(lost: &BTreeMap<String, u64>) -> (u64, u64) {
    match (lost.values().min(), lost.values().max()) {
        (Some(first), Some(last)) => (lost.len() as u64, last - first + 1),
        _ => (0, 0),
    }
}

/// Goal: a drill's RPO figures are measured, not written down. Method: recompute them here
/// from the drill's own files: the `ok` acknowledgements of `history.jsonl` missing from the
/// ids the active site's final journal applies (`final-transfers.txt`), and, after a site
/// loss, first from the reconciliation report's lost transfers; the report's
/// `rpo_lost_transfers` and `rpo_s` must equal them.
fn must_report_measured_rpo(dir: &Path, scenario: Scenario) {
    let report = read_json(&dir.join("report.json"));
    let reported_count = report["rpo_lost_transfers"].as_u64().expect("rpo_lost_transfers is measured");
    let reported_span_ms = (report["rpo_s"].as_f64().expect("rpo_s is measured") * 1000.0).round() as u64;
    if scenario == Scenario::PrimarySiteLoss {
        let reconciliation = read_json(&dir.join("reconciliation/reconciliation.json"));
        let reconciled: BTreeSet<&str> = reconciliation["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["command"] == "create_transfers" && r["status"] == "lost")
            .map(|r| r["id"].as_str().expect("id"))
            .collect();
        let (count, span_ms) = count_and_span_ms(&lost_acks(dir, |id| reconciled.contains(id)));
        eprintln!("{}: {count} acknowledged transfers reconciled as lost, over {span_ms} ms", scenario.name());
        assert_eq!(reported_count, count, "{}: lost transfers per the reconciliation report", scenario.name());
        assert_eq!(reported_span_ms, span_ms, "{}: RPO span per the reconciliation report", scenario.name());
    }
    let final_transfers = std::fs::read_to_string(dir.join("final-transfers.txt")).expect("final transfers");
    let present: BTreeSet<&str> = final_transfers.lines().collect();
    let (count, span_ms) = count_and_span_ms(&lost_acks(dir, |id| !present.contains(id)));
    assert_eq!(reported_count, count, "{}: acknowledged transfers missing from the final journal", scenario.name());
    assert_eq!(reported_span_ms, span_ms, "{}: span of their acknowledgements", scenario.name());
}
