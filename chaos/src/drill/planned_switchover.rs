//! Scenario `planned-switchover`: `dr switchover` under load with two operators' approvals:
//! the DR site becomes active and serves, losing nothing.

use std::collections::BTreeSet;

use ledger_cluster::dr;
use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn planned_switchover(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    let request = format!("switchover-{}", act.config.seed);
    let names = vec!["primary".to_string(), "dr".to_string()];
    dr::approve(&env.operator("operator-1")?, &names, &request, "switchover").await?;
    dr::approve(&env.operator("operator-2")?, &names, &request, "switchover").await?;
    env.event("two operators approved the switchover");
    let fault_ms = env.event("dr switchover primary -> dr");
    let report = dr::switchover(&env.operator("operator-1")?, "primary", "dr", &request).await?;
    env.event(format!(
        "switchover done in {} ms: dr active at epoch {}; {} records of primary missing from dr (measured)",
        report.total_ms, report.new_epoch, report.records_lost
    ));
    sleep(act.third * 2).await;
    let history = act.workload.stop(WAIT).await;
    Ok(Aftermath { history, fault_ms, serving_site: "dr", reconciled: BTreeSet::new() })
}
