//! Drills: a primary site (three zones) and a DR site on loopback, every link through a fault
//! proxy (zone delay inside a site, WAN delay between sites), a workload recording every
//! acknowledgement, one scripted disaster, the operator commands SREs run, and the checker.
//! Each drill ends with a report: the faults and their times, RPO and RTO measured from the
//! acknowledgements, every invariant's verdict, and PASS/FAIL against the regulatory targets
//! (RPO <= 5 min, RTO <= 30 min) with our stretch targets beside them.
//!
//! This module owns the part every drill shares (start, load, converge, check, measure,
//! report); each scenario's script is a function in its own module, the report's format is
//! in `report`, and the plain data they share in `config`, `env` and `script`, so no module
//! imports one that imports it back.
//!
//! RPO is measured the same way in every drill, by [`crate::rpo::measure`]: the acknowledged
//! transfers missing from the active site's final journal, and the span of their
//! acknowledgements. The ids that journal applies are kept beside the history
//! (`final-transfers.txt` next to `history.jsonl`), so anyone can recompute it.

mod config;
mod env;
mod report;
mod script;

mod crash_storm;
mod dr_link_cut;
mod leader_isolation;
mod leader_kill;
mod leader_pause;
mod minority_partition;
mod node_wipe_rejoin;
mod planned_switchover;
mod primary_site_loss;
mod zone_loss;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

pub use config::CRASH_STORM_KILLS;
pub use config::DrillConfig;
pub use config::RPO_REGULATORY_S;
pub use config::RPO_STRETCH_SITE_S;
pub use config::RTO_REGULATORY_S;
pub use config::RTO_STRETCH_LEADER_S;
pub use config::RTO_STRETCH_SITE_S;
pub use config::Scenario;
pub use config::SnapshotCadence;
pub use config::WORKLOAD_ATTEMPT_TIMEOUT;
pub use env::DrillError;
pub use env::Env;
pub use report::DrillReport;
pub use report::Event;
pub use report::Target;
pub use report::summary_markdown;

use crate::invariants::Verdict;
use crate::rpo;
use crate::workload::History;
use crate::workload::Workload;
use crate::workload::WorkloadConfig;
use script::Act;
use script::Aftermath;

/// The file, next to `history.jsonl`, listing the ids of the transfers the active site's
/// final journal applies (one a line, sorted): with the history, what the RPO is computed from.
pub const FINAL_TRANSFERS_FILE: &str = "final-transfers.txt";

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

/// Runs `scenario`'s script.
async fn act(scenario: Scenario, env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    match scenario {
        Scenario::LeaderKill => leader_kill::leader_kill(env, act).await,
        Scenario::ZoneLoss => zone_loss::zone_loss(env, act).await,
        Scenario::MinorityPartition => minority_partition::minority_partition(env, act).await,
        Scenario::LeaderIsolation => leader_isolation::leader_isolation(env, act).await,
        Scenario::LeaderPause => leader_pause::leader_pause(env, act).await,
        Scenario::NodeWipeRejoin => node_wipe_rejoin::node_wipe_rejoin(env, act).await,
        Scenario::DrLinkCut => dr_link_cut::dr_link_cut(env, act).await,
        Scenario::PlannedSwitchover => planned_switchover::planned_switchover(env, act).await,
        Scenario::PrimarySiteLoss => primary_site_loss::primary_site_loss(env, act).await,
        Scenario::CrashStorm => crash_storm::crash_storm(env, act).await,
    }
}

fn write_final_transfers(path: &Path, present: &BTreeSet<String>) -> std::io::Result<()> {
    let mut text = String::with_capacity(present.len() * 32);
    for id in present {
        text.push_str(id);
        text.push('\n');
    }
    std::fs::write(path, text)
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
    let script = Act::new(config, workload);
    tokio::time::sleep(script.third).await;
    let scenario = config.scenario;
    let Aftermath { history, fault_ms, serving_site, reconciled } = act(scenario, &mut env, script).await?;
    env.converge().await?;
    history.write_jsonl(&config.report_dir.join("history.jsonl"))?;
    let history = History { acks: History::read_jsonl(&config.report_dir.join("history.jsonl"))?.acks, ..history };
    let checked = env.check(&history, &reconciled).await?;
    write_final_transfers(&config.report_dir.join(FINAL_TRANSFERS_FILE), &checked.present)?;
    let rpo = rpo::measure(&history, &checked.present.iter().map(String::as_str).collect());
    let rto = rto_s(&history, fault_ms, &env.site_endpoints(serving_site));
    let mut regulatory = vec![Target::new("RPO", RPO_REGULATORY_S, Some(rpo.span_s()))];
    if scenario.needs_rto() {
        regulatory.push(Target::new("RTO", RTO_REGULATORY_S, rto));
    }
    let mut stretch = Vec::new();
    if scenario.is_site_loss() {
        stretch.push(Target::new("RPO (site loss, scripted promote)", RPO_STRETCH_SITE_S, Some(rpo.span_s())));
        stretch.push(Target::new("RTO (site loss, scripted promote)", RTO_STRETCH_SITE_S, rto));
    } else if scenario.loses_leader() {
        stretch.push(Target::new("RTO (leader lost inside the site)", RTO_STRETCH_LEADER_S, rto));
    }
    let passed = checked.verdicts.iter().all(|v| v.passed) && regulatory.iter().all(|t| t.met);
    let report = DrillReport {
        scenario: scenario.name().into(),
        description: scenario.description().into(),
        seed: config.seed,
        duration_s: config.duration.as_secs_f64(),
        events: env.events.clone(),
        acknowledged: Some(history.acks.len()),
        acknowledged_ok: Some(history.ok().count()),
        failed_attempts: Some(history.failed_attempts),
        rpo_lost_transfers: Some(rpo.lost_transfers),
        rpo_s: Some(rpo.span_s()),
        rpo: Some(rpo),
        rto_s: if scenario.needs_rto() { rto } else { None },
        regulatory,
        stretch,
        verdicts: checked.verdicts,
        passed,
        notes: env.notes.clone(),
    };
    report::write(&config.report_dir, &report)?;
    env.cluster.stop_all();
    Ok(report)
}

/// The report of a drill that could not run to its end: it measured nothing, so every figure
/// is absent.
fn unfinished(config: &DrillConfig, error: &DrillError) -> DrillReport {
    DrillReport {
        scenario: config.scenario.name().into(),
        description: config.scenario.description().into(),
        seed: config.seed,
        duration_s: config.duration.as_secs_f64(),
        events: Vec::new(),
        acknowledged: None,
        acknowledged_ok: None,
        failed_attempts: None,
        rpo_lost_transfers: None,
        rpo_s: None,
        rpo: None,
        rto_s: None,
        regulatory: Vec::new(),
        stretch: Vec::new(),
        verdicts: vec![Verdict::fail("the drill ran to its end", error.to_string())],
        passed: false,
        notes: vec![format!("error: {error}")],
    }
}

/// The one-line verdict of a drill, for progress output.
pub fn one_line(report: &DrillReport) -> String {
    report::one_line(report)
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
                let report = unfinished(&config, &e);
                let _ = report::write(&config.report_dir, &report);
                report
            }
        };
        eprintln!("drill {}: {}", report.scenario, report::one_line(&report));
        reports.push(report);
    }
    let _ = report::write_summary(&base.report_dir, &reports);
    reports
}
