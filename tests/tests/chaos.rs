//! Every chaos drill in its short, seeded form (what `ledger-chaos run --all` runs), on real
//! processes with every link through a fault proxy: each must pass every invariant and the
//! regulatory RPO/RTO targets. The summary table is printed (`--nocapture`) and the reports are
//! kept in the target directory.

use std::time::Duration;

use ledger_chaos::drill;
use ledger_chaos::drill::DrillConfig;
use ledger_chaos::drill::Scenario;
use ledger_cluster::process::NodeLauncher;
use ledger_tests::node_bin;

/// Goal: all nine drills pass in their short form. Method: `drill::run_many` with 6 s of load
/// each, seed 1, WAN delay 20 ms between the sites and 1 ms between zones.
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
}
