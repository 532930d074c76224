//! Scenario `primary-site-loss`: kill the whole primary site under load, `dr promote --force`,
//! keep writing on the DR site, bring the old site back with its data, `dr failback`. The
//! transfers the DR site never received are lost: each must be in the reconciliation report.

use ledger_cluster::dr;
use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn primary_site_loss(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    let config = act.config;
    for key in env.cluster.site_keys("primary") {
        env.cluster.kill(&key);
    }
    let fault_ms = env.event("primary site lost: kill -9 every primary node");
    let request = format!("failover-{}", config.seed);
    let names = vec!["dr".to_string()];
    dr::approve(&env.operator("operator-1")?, &names, &request, "promote").await?;
    dr::approve(&env.operator("operator-2")?, &names, &request, "promote").await?;
    env.event("two operators approved the promotion");
    let promoted = dr::promote_force(&env.operator("operator-1")?, "dr", &request).await?;
    env.event(format!(
        "dr promote --force: active at epoch {}; RPO point seq {} at ledger time {} ({} ms before the fault)",
        promoted.new_epoch,
        promoted.rpo_seq,
        promoted.rpo_ledger_time_ms,
        fault_ms as i128 - promoted.rpo_ledger_time_ms as i128
    ));
    sleep(act.third).await;
    let history = act.workload.stop(WAIT).await;
    env.event("load stopped");
    for key in env.cluster.site_keys("primary") {
        env.cluster.start(&key)?;
    }
    env.event("old primary site back (its data intact)");
    let request = format!("failback-{}", config.seed);
    let names = vec!["primary".to_string(), "dr".to_string()];
    dr::approve(&env.operator("operator-1")?, &names, &request, "failback").await?;
    dr::approve(&env.operator("operator-2")?, &names, &request, "failback").await?;
    let report_dir = config.report_dir.join("reconciliation");
    let failback = dr::failback(&env.operator("operator-1")?, "primary", "dr", &request, &report_dir).await?;
    env.event(format!(
        "dr failback: branch seq {}, {} lost transfers reported, resynced in {} ms",
        failback.branch_seq, failback.lost_transfers_applied, failback.total_ms
    ));
    let reconciled = failback
        .rows
        .iter()
        .filter(|r| r.command == "create_transfers" && r.status == "lost")
        .map(|r| r.id.clone())
        .collect();
    Ok(Aftermath { history, fault_ms, serving_site: "dr", reconciled })
}
