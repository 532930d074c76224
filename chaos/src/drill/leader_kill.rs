//! Scenario `leader-kill`: kill -9 the primary's leader under load, wait for a new leader,
//! restart the old one. The primary must keep every acknowledged transfer and serve again
//! within the leader-loss RTO.

use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn leader_kill(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    let leader = env.leader("primary").await?;
    env.cluster.kill(&leader);
    let fault_ms = env.event(format!("kill -9 primary leader {}", leader.1));
    env.leader("primary").await?;
    env.event("new primary leader elected");
    sleep(act.third).await;
    env.cluster.start(&leader)?;
    env.event(format!("restarted node {}", leader.1));
    sleep(act.third).await;
    Ok(Aftermath::primary(act.workload.stop(WAIT).await, fault_ms))
}
