//! The DR operator commands, as functions: `ledger-cluster dr ...` calls them, and so do the
//! chaos drills, so drills exercise exactly what SREs run.
//!
//! - [`approve`]: one operator approves a request id for an action on every reachable site
//!   (dual control: promote, switchover and failback need two different operators).
//! - [`switchover`]: planned, zero loss: fence the active site, wait until the standby holds
//!   every record, promote it (epoch + 1), demote the old active site to its standby.
//! - [`promote_force`]: the active site is gone: promote the standby with what it has, and
//!   report the RPO point (last shipped seq and its ledger time).
//! - [`failback`]: the old active site is back: fence it if it still thinks it is active,
//!   find the branch point, export its records past it as a reconciliation report (JSON and
//!   CSV), then resync it from the active site as a standby.
//!
//! Comparing journals (branch point, missing records, the report's rows and files) is in
//! [`crate::reconcile`], which does no IO and does not import this module; this module reads
//! the journals and drives the sites. Every figure in a report here is measured.

use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::audit::decode_record;
use ledger_client::proto as pb;
use ledger_core::journal::JournalRecord;
use serde::Serialize;

use crate::reconcile;
pub use crate::reconcile::ReconciliationRow;
use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum DrError {
    #[error("no site {0} in the topology")]
    UnknownSite(String),
    #[error("{0}")]
    Client(#[from] ledger_client::ClientError),
    #[error("journal stream: {0}")]
    Stream(#[from] tonic::Status),
    #[error("audit: {0}")]
    Audit(#[from] ledger_client::audit::AuditError),
    #[error("{0}")]
    Precondition(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("{0}")]
    Io(#[from] reconcile::WriteError),
}

/// How the operator reaches the sites.
#[derive(Clone)]
pub struct Sites {
    pub topology: Topology,
    /// A client configuration without endpoints (TLS identity of the operator).
    pub config: ClientConfig,
    /// Deadline of each waiting step.
    pub timeout: Duration,
    /// The endpoints a standby site `.0` ships from when site `.1` becomes its upstream,
    /// when not `.1`'s client endpoints (fault proxies in drills). Empty in production.
    pub upstream_routes: std::collections::BTreeMap<(String, String), Vec<String>>,
}

/// One timed step of an operation.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub step: String,
    pub ms: u64,
    pub detail: String,
}

struct Steps {
    started: Instant,
    last: Instant,
    steps: Vec<Step>,
}

impl Steps {
    fn new() -> Steps {
        let now = Instant::now();
        Steps { started: now, last: now, steps: Vec::new() }
    }

    fn done(&mut self, step: &str, detail: impl Into<String>) {
        let now = Instant::now();
        self.steps.push(Step { step: step.into(), ms: (now - self.last).as_millis() as u64, detail: detail.into() });
        self.last = now;
    }

    fn total_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

impl Sites {
    pub fn new(topology: Topology, config: ClientConfig, timeout: Duration) -> Sites {
        Sites { topology, config, timeout, upstream_routes: Default::default() }
    }

    /// Where standby `from` ships from when `to` is active.
    fn upstream(&self, from: &str, to: &str) -> Result<Vec<String>, DrError> {
        match self.upstream_routes.get(&(from.to_string(), to.to_string())) {
            Some(route) => Ok(route.clone()),
            None => self.endpoints(to),
        }
    }

    fn endpoints(&self, site: &str) -> Result<Vec<String>, DrError> {
        Ok(self.topology.site(site).ok_or_else(|| DrError::UnknownSite(site.into()))?.endpoints())
    }

    /// A client of every node of `site` (writes and site operations are forwarded to its
    /// leader by whichever node answers).
    pub fn client(&self, site: &str) -> Result<LedgerClient, DrError> {
        Ok(LedgerClient::new(ClientConfig { endpoints: self.endpoints(site)?, ..self.config.clone() })?)
    }

    /// The status of the best-informed reachable node of `site` (highest applied index).
    pub async fn status(&self, site: &str) -> Result<pb::NodeStatus, DrError> {
        Ok(self.best_node(site).await?.1)
    }

    /// A client of one node, no failover.
    fn node_client(&self, endpoint: &str) -> Result<LedgerClient, DrError> {
        Ok(LedgerClient::new(ClientConfig { endpoints: vec![endpoint.to_string()], ..self.config.clone() })?)
    }

    /// The best-informed reachable node of `site` (highest applied index): its endpoint and
    /// status.
    async fn best_node(&self, site: &str) -> Result<(String, pb::NodeStatus), DrError> {
        let mut best: Option<(String, pb::NodeStatus)> = None;
        let mut last_error = None;
        for endpoint in self.endpoints(site)? {
            match self.node_client(&endpoint)?.status_once(Duration::from_secs(2)).await {
                Ok(status) => {
                    if best.as_ref().is_none_or(|(_, b)| status.applied_index > b.applied_index) {
                        best = Some((endpoint, status));
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (best, last_error) {
            (Some(best), _) => Ok(best),
            (None, Some(e)) => Err(e.into()),
            (None, None) => Err(DrError::Precondition(format!("site {site} has no nodes"))),
        }
    }

    /// Runs one site operation on `site`.
    pub async fn operate(
        &self,
        site: &str,
        request: pb::SiteOperationRequest,
    ) -> Result<pb::SiteOperationResponse, DrError> {
        let client = self.client(site)?;
        Ok(client.site_operation(request).await?)
    }

    async fn poll<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, DrError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = f().await {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(DrError::Timeout(self.timeout, what.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn site_of(status: &pb::NodeStatus) -> pb::SiteInfo {
    status.site.clone().unwrap_or_default()
}

fn head_of(status: &pb::NodeStatus) -> pb::JournalHead {
    status.journal_head.clone().unwrap_or_default()
}

/// Records one operator's approval of `request_id` for `action` on every site of
/// `site_names`, in order (retrying a site that has no leader yet until the step deadline; a
/// refusal ends it at once). Returns the sites that recorded it; fails if one could not.
pub async fn approve(
    sites: &Sites,
    site_names: &[String],
    request_id: &str,
    action: &str,
) -> Result<Vec<String>, DrError> {
    let mut recorded = Vec::new();
    for site in site_names {
        let request = pb::SiteOperationRequest {
            kind: pb::SiteOperationKind::Approve as i32,
            request_id: request_id.into(),
            action: action.into(),
            ..Default::default()
        };
        let deadline = Instant::now() + sites.timeout;
        loop {
            match sites.operate(site, request.clone()).await {
                Ok(_) => break,
                // A refusal is final (a wrong role, a bad request id, an unknown action): asking
                // again gets the same answer. Anything else (a site electing a leader) is retried.
                Err(DrError::Client(e)) if !e.is_final() && Instant::now() < deadline => {
                    tracing::warn!(site = %site, error = %e, "approval not recorded yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        recorded.push(site.clone());
    }
    Ok(recorded)
}

#[derive(Clone, Debug, Serialize)]
pub struct SwitchoverReport {
    pub from: String,
    pub to: String,
    /// The old active site's last journal seq (its fence record).
    pub fenced_at_seq: u64,
    pub new_epoch: u64,
    /// The new active site's first record (its promotion).
    pub promoted_at_seq: u64,
    /// Records of the old active site that the new one does not hold, measured after the
    /// switch ([`records_missing`]): 0 unless something is wrong, since the switch waits
    /// until the standby holds every record up to the fence.
    pub records_lost: u64,
    pub total_ms: u64,
    pub steps: Vec<Step>,
}

/// Planned switchover from the active site `from` to its standby `to`.
pub async fn switchover(sites: &Sites, from: &str, to: &str, request_id: &str) -> Result<SwitchoverReport, DrError> {
    let mut steps = Steps::new();
    let before = sites.status(from).await?;
    let target = sites.status(to).await?;
    if site_of(&before).role != "active" || site_of(&target).role != "standby" || site_of(&target).active_site != from {
        return Err(DrError::Precondition(format!(
            "switchover needs {from} active and {to} its standby; they are {} and {} (following {:?})",
            site_of(&before).role,
            site_of(&target).role,
            site_of(&target).active_site
        )));
    }
    let fence = pb::SiteOperationRequest { kind: pb::SiteOperationKind::Fence as i32, ..Default::default() };
    let fenced = sites.operate(from, fence).await?;
    let fenced_head = fenced.journal_head.unwrap_or_default();
    steps.done("fence", format!("{from} fenced at seq {}", fenced_head.seq));

    sites
        .poll(&format!("{to} to hold every record up to seq {}", fenced_head.seq), || async {
            let status = sites.status(to).await.ok()?;
            (head_of(&status) == fenced_head).then_some(())
        })
        .await?;
    steps.done("catch-up", format!("{to} holds seq {}", fenced_head.seq));

    let epoch = site_of(&before).epoch.max(site_of(&target).epoch).max(site_of(&target).active_epoch) + 1;
    let promote = pb::SiteOperationRequest {
        kind: pb::SiteOperationKind::Promote as i32,
        epoch,
        forced: false,
        request_id: request_id.into(),
        ..Default::default()
    };
    let promoted = match sites.operate(to, promote).await {
        Ok(promoted) => promoted,
        Err(e) => {
            // Abort: the old active site takes writes again; nothing changed elsewhere.
            let unfence =
                pb::SiteOperationRequest { kind: pb::SiteOperationKind::Unfence as i32, ..Default::default() };
            let unfenced = sites.operate(from, unfence).await;
            return Err(DrError::Precondition(format!(
                "switchover aborted: promoting {to} failed ({e}); {from} {}",
                if unfenced.is_ok() {
                    "is unfenced and active again"
                } else {
                    "could NOT be unfenced: run `dr unfence`"
                }
            )));
        }
    };
    steps.done("promote", format!("{to} active at epoch {epoch}, record {}", promoted.journal_seq));

    let demote = pb::SiteOperationRequest {
        kind: pb::SiteOperationKind::Demote as i32,
        epoch,
        active_site: to.into(),
        upstream: sites.upstream(from, to)?,
        request_id: request_id.into(),
        ..Default::default()
    };
    sites.operate(from, demote).await?;
    steps.done("demote", format!("{from} standby of {to}"));
    let records_lost = records_missing(sites, from, to).await?;
    steps.done("verify", format!("{records_lost} records of {from} missing from {to}"));
    Ok(SwitchoverReport {
        from: from.into(),
        to: to.into(),
        fenced_at_seq: fenced_head.seq,
        new_epoch: epoch,
        promoted_at_seq: promoted.journal_seq,
        records_lost,
        total_ms: steps.total_ms(),
        steps: steps.steps,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct PromoteReport {
    pub site: String,
    pub new_epoch: u64,
    /// The RPO point: the last record shipped from the lost site, and its ledger time.
    pub rpo_seq: u64,
    pub rpo_ledger_time_ms: u64,
    /// Records known to be missing (from the last lag measurement, if any).
    pub lag_records_last_seen: u64,
    pub lag_ms_last_seen: u64,
    pub promoted_at_seq: u64,
    pub total_ms: u64,
    pub steps: Vec<Step>,
}

/// Failover: promote the standby `site` without the active site's consent.
pub async fn promote_force(sites: &Sites, site: &str, request_id: &str) -> Result<PromoteReport, DrError> {
    let mut steps = Steps::new();
    let status = sites.status(site).await?;
    let info = site_of(&status);
    if info.role != "standby" {
        return Err(DrError::Precondition(format!("site {site} is {}, not a standby", info.role)));
    }
    let lag = info.dr_lag.unwrap_or_default();
    let epoch = info.epoch.max(info.active_epoch) + 1;
    let promote = pb::SiteOperationRequest {
        kind: pb::SiteOperationKind::Promote as i32,
        epoch,
        forced: true,
        request_id: request_id.into(),
        ..Default::default()
    };
    let promoted = sites.operate(site, promote).await?;
    let after = promoted.site.clone().unwrap_or_default();
    steps.done("promote", format!("{site} active at epoch {epoch}"));
    Ok(PromoteReport {
        site: site.into(),
        new_epoch: epoch,
        rpo_seq: after.watermark_seq,
        rpo_ledger_time_ms: after.watermark_time_ms,
        lag_records_last_seen: lag.records,
        lag_ms_last_seen: lag.ms,
        promoted_at_seq: promoted.journal_seq,
        total_ms: steps.total_ms(),
        steps: steps.steps,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct FailbackReport {
    pub old_site: String,
    pub active_site: String,
    pub epoch: u64,
    /// The last seq both sites hold identically.
    pub branch_seq: u64,
    /// Records of the old site after the branch point: lost in the failover.
    pub lost_records: u64,
    /// Transfer items among them applied on the old site and not on the active site: the
    /// transfers lost in the failover, each a row with status "lost".
    pub lost_transfers_applied: u64,
    /// Transfers of the old site's tail that were resubmitted and applied on the active site.
    pub resubmitted_transfers: u64,
    pub json_report: String,
    pub csv_report: String,
    pub total_ms: u64,
    pub steps: Vec<Step>,
    pub rows: Vec<ReconciliationRow>,
}

/// The whole journal of `site` from `from_seq`.
async fn read_records(sites: &Sites, site: &str, from_seq: u64) -> Result<Vec<JournalRecord>, DrError> {
    collect_records(sites.client(site)?, from_seq, 0).await
}

/// Up to `limit` records (0: all) from `from_seq`, decoded, from whichever node `client` reaches.
async fn collect_records(client: LedgerClient, from_seq: u64, limit: u64) -> Result<Vec<JournalRecord>, DrError> {
    let mut stream = client.read_journal(from_seq, limit, false).await?;
    let mut records = Vec::new();
    while let Some(record) = stream.message().await? {
        records.push(decode_record(records.len() as u64, &record)?);
    }
    Ok(records)
}

/// Records of site `old` that site `new` does not hold, measured from their journals: `old`'s
/// head (its best-informed node's) is looked up in `new`'s best-informed node, read after it.
/// The same hash at the same seq proves, by the hash chain, that `new` holds every record of
/// `old`; otherwise both journals are read and `old`'s records past what they share counted.
pub async fn records_missing(sites: &Sites, old: &str, new: &str) -> Result<u64, DrError> {
    let (old_endpoint, old_status) = sites.best_node(old).await?;
    let old_head = head_of(&old_status);
    if old_head.seq == 0 {
        return Ok(0);
    }
    let (new_endpoint, _) = sites.best_node(new).await?;
    let at_head = collect_records(sites.node_client(&new_endpoint)?, old_head.seq, 1).await?;
    if at_head.first().is_some_and(|r| r.seq == old_head.seq && r.hash.0.as_slice() == old_head.hash.as_slice()) {
        return Ok(0);
    }
    let old_records = collect_records(sites.node_client(&old_endpoint)?, 1, 0).await?;
    let new_records = collect_records(sites.node_client(&new_endpoint)?, 1, 0).await?;
    let missing = reconcile::records_missing(&old_records, &new_records);
    tracing::warn!(old, new, missing, "records of the old active site are missing from the new one");
    Ok(missing)
}

/// Failback of `old` (the site that lost a failover) under `active`: fence, export what
/// diverged, resync. The reports go to `report_dir`.
pub async fn failback(
    sites: &Sites,
    old: &str,
    active: &str,
    request_id: &str,
    report_dir: &Path,
) -> Result<FailbackReport, DrError> {
    let mut steps = Steps::new();
    let active_status = sites.status(active).await?;
    let active_site = site_of(&active_status);
    if active_site.role != "active" || active_site.fenced {
        return Err(DrError::Precondition(format!("site {active} is not the active site ({})", active_site.role)));
    }
    let epoch = active_site.epoch;
    // 1. The old site must take no more writes: record the higher epoch there if needed.
    let old_status = sites.status(old).await?;
    let old_site = site_of(&old_status);
    if old_site.role == "active" && old_site.active_epoch < epoch {
        let observe = pb::SiteOperationRequest {
            kind: pb::SiteOperationKind::ObserveEpoch as i32,
            epoch,
            active_site: active.into(),
            ..Default::default()
        };
        // Its own watcher may record the epoch first: then the site already refuses writes.
        if let Err(e) = sites.operate(old, observe).await {
            let now = site_of(&sites.status(old).await?);
            if now.active_epoch < epoch {
                return Err(e);
            }
        }
    }
    steps.done("fence", format!("{old} knows {active} is active at epoch {epoch}"));

    // 2. The branch point: the last seq both journals share, at most the record before the
    //    active site's promotion.
    let old_records = read_records(sites, old, 1).await?;
    let active_records = read_records(sites, active, 1).await?;
    let reconciliation = reconcile::reconcile(&old_records, &active_records, active_site.epoch_changed_at_seq);
    let branch_seq = reconciliation.branch_seq;
    steps.done(
        "branch",
        format!("sites share seq 1..={branch_seq}; {} records of {old} after it", reconciliation.lost_records),
    );

    let mut report = FailbackReport {
        old_site: old.into(),
        active_site: active.into(),
        epoch,
        branch_seq,
        lost_records: reconciliation.lost_records,
        lost_transfers_applied: reconciliation.lost_transfers_applied,
        resubmitted_transfers: reconciliation.resubmitted_transfers,
        json_report: String::new(),
        csv_report: String::new(),
        total_ms: 0,
        steps: Vec::new(),
        rows: reconciliation.rows,
    };
    let (json, csv) = reconcile::write_report(report_dir, &report, &report.rows)?;
    report.json_report = json.display().to_string();
    report.csv_report = csv.display().to_string();
    // Rewrite with the paths filled in.
    reconcile::write_report(report_dir, &report, &report.rows)?;
    steps.done("export", format!("reconciliation report in {}", report_dir.display()));

    // 3. Resync the old site as a standby of the active one.
    let resync = pb::SiteOperationRequest {
        kind: pb::SiteOperationKind::Resync as i32,
        epoch,
        active_site: active.into(),
        upstream: sites.upstream(old, active)?,
        request_id: request_id.into(),
        ..Default::default()
    };
    sites.operate(old, resync).await?;
    steps.done("resync", format!("{old} is a standby of {active}, reshipping from seq 1"));
    let target = head_of(&sites.status(active).await?).seq;
    sites
        .poll(&format!("{old} to reship up to seq {target}"), || async {
            let status = sites.status(old).await.ok()?;
            (head_of(&status).seq >= target).then_some(())
        })
        .await?;
    steps.done("reship", format!("{old} holds seq {target}"));
    report.total_ms = steps.total_ms();
    report.steps = steps.steps;
    reconcile::write_report(report_dir, &report, &report.rows)?;
    Ok(report)
}
