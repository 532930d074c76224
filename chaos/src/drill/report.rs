//! A drill's report and how it is written: `report.json`, `report.md`, and the summary table
//! of several drills. It formats figures measured elsewhere (RPO by [`crate::rpo::measure`],
//! RTO from the acknowledgement history); it must not compute or invent any of them.

use std::path::Path;

use serde::Serialize;

use crate::invariants::Verdict;
use crate::rpo::Rpo;

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

impl Target {
    /// A target met when it was measured and is within `limit_s`.
    pub fn new(name: &str, limit_s: f64, measured_s: Option<f64>) -> Target {
        Target { name: name.into(), limit_s, measured_s, met: measured_s.is_some_and(|m| m <= limit_s) }
    }
}

/// Every figure is a measurement of this run; `None` means it was not measured (the drill did
/// not run to its end, or the scenario has no such figure).
#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub duration_s: f64,
    pub events: Vec<Event>,
    pub acknowledged: Option<usize>,
    pub acknowledged_ok: Option<usize>,
    pub failed_attempts: Option<u64>,
    /// Acknowledged transfers missing from the active site's final journal ([`Rpo`]).
    pub rpo_lost_transfers: Option<usize>,
    /// Span of their acknowledgements, first to last, both ends included ([`Rpo::span_s`]):
    /// 0 exactly when none is missing.
    pub rpo_s: Option<f64>,
    /// The measurement both come from (first and last lost acknowledgement, the lost ids).
    pub rpo: Option<Rpo>,
    /// Seconds from the fault to the first acknowledged write served by the right site.
    pub rto_s: Option<f64>,
    pub regulatory: Vec<Target>,
    pub stretch: Vec<Target>,
    pub verdicts: Vec<Verdict>,
    pub passed: bool,
    pub notes: Vec<String>,
}

pub fn fmt_s(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.2} s"))
}

fn fmt_n<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or("n/a".to_string(), |v| v.to_string())
}

fn markdown(report: &DrillReport) -> String {
    let mut out = format!("# Drill `{}` (seed {})\n\n{}\n\n", report.scenario, report.seed, report.description);
    out.push_str(&format!(
        "**{}** · acknowledged {} ({} ok) · failed attempts {} · RPO {} ({} acknowledged transfers lost) · RTO {}\n\n",
        if report.passed { "PASS" } else { "FAIL" },
        fmt_n(report.acknowledged),
        fmt_n(report.acknowledged_ok),
        fmt_n(report.failed_attempts),
        fmt_s(report.rpo_s),
        fmt_n(report.rpo_lost_transfers),
        fmt_s(report.rto_s)
    ));
    out.push_str(
        "RPO is measured: acknowledged transfers missing from the active site's final journal, and the span of their acknowledgements (first to last, both ends included).\n",
    );
    if let Some(rpo) = report.rpo.as_ref().filter(|r| r.lost_transfers > 0) {
        out.push_str(&format!(
            "Lost transfers were acknowledged from wall ms {} to {}; the first {} of them: {}\n",
            fmt_n(rpo.first_lost_ack_ms),
            fmt_n(rpo.last_lost_ack_ms),
            rpo.lost_ids.len(),
            rpo.lost_ids.join(", ")
        ));
    }
    out.push_str("\n| t (ms) | event |\n|---:|---|\n");
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

/// Writes `report.json` and `report.md` under `dir`.
pub fn write(dir: &Path, report: &DrillReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report).expect("report serializes"))?;
    std::fs::write(dir.join("report.md"), markdown(report))
}

/// The one-line verdict of a drill (for progress output).
pub fn one_line(report: &DrillReport) -> String {
    format!(
        "{} (RPO {}, lost {}, RTO {})",
        if report.passed { "PASS" } else { "FAIL" },
        fmt_s(report.rpo_s),
        fmt_n(report.rpo_lost_transfers),
        fmt_s(report.rto_s)
    )
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
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.seed,
            if r.passed { "PASS" } else { "FAIL" },
            fmt_n(r.acknowledged_ok),
            fmt_s(r.rpo_s),
            fmt_n(r.rpo_lost_transfers),
            fmt_s(r.rto_s),
            all(&r.regulatory),
            all(&r.stretch),
            invariants
        ));
    }
    out
}

/// Writes `summary.md` and `summary.json` under `dir`.
pub fn write_summary(dir: &Path, reports: &[DrillReport]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.md"), summary_markdown(reports))?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(reports).expect("reports serialize"))
}
