//! Every chaos drill in its short, seeded form (what `ledger-chaos run --all` runs), on real
//! processes with every link through a fault proxy: each must pass every invariant and the
//! regulatory RPO/RTO targets. The summary table is printed (`--nocapture`) and the reports are
//! kept in the target directory.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ledger_chaos::drill;
use ledger_chaos::drill::DrillConfig;
use ledger_chaos::drill::Scenario;
use ledger_cluster::process::NodeLauncher;
use ledger_tests::node_bin;

/// Goal: all nine drills pass in their short form, and every report's RPO figures are
/// measured. Method: `drill::run_many` with 6 s of load each, seed 1, WAN delay 20 ms between
/// the sites and 1 ms between zones; then each report's RPO is recomputed from the drill's
/// files ([`must_report_measured_rpo`]).
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
    };
    let reports = drill::run_many(&Scenario::ALL, &base).await;
    let summary = drill::summary_markdown(&reports);
    eprintln!("{summary}\nreports in {}", report_dir.display());
    for report in &reports {
        assert!(report.passed, "drill {} failed: {:#?}", report.scenario, report);
    }
    // The site-loss drill first: the one that may lose acknowledged transfers.
    let mut order: Vec<Scenario> = Scenario::ALL.to_vec();
    order.sort_by_key(|s| *s != Scenario::PrimarySiteLoss);
    for scenario in order {
        must_report_measured_rpo(&report_dir.join(scenario.name()), scenario);
    }
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
