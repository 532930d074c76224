//! Scenario `leader-pause`: SIGSTOP the primary leader, SIGCONT it a few seconds later. A
//! paused leader is detected only by timeouts; the old leader must not serve stale writes.

use std::time::Duration;

use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn leader_pause(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    let leader = env.leader("primary").await?;
    env.cluster.pause(&leader)?;
    let fault_ms = env.event(format!("SIGSTOP leader {}", leader.1));
    sleep(act.third.max(Duration::from_secs(3))).await;
    env.cluster.resume(&leader)?;
    env.event(format!("SIGCONT node {}", leader.1));
    sleep(act.third).await;
    Ok(Aftermath::primary(act.workload.stop(WAIT).await, fault_ms))
}
