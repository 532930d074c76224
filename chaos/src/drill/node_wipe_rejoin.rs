//! Scenario `node-wipe-rejoin`: stop a primary follower, wipe its data dir and restart it
//! empty under the same id: it rejoins by snapshot.

use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn node_wipe_rejoin(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    let leader = env.leader("primary").await?;
    let victim = ("primary".to_string(), (1..=3).find(|id| *id != leader.1).expect("a follower"));
    env.cluster.stop(&victim);
    env.cluster.wipe(&victim)?;
    let fault_ms = env.event(format!("stop follower {} and wipe its data dir", victim.1));
    sleep(act.third).await;
    env.cluster.start(&victim)?;
    env.event(format!("restarted wiped node {}", victim.1));
    sleep(act.third).await;
    let history = act.workload.stop(WAIT).await;
    let status = env.cluster.status(&victim).await?;
    env.notes.push(format!("wiped node's snapshot index after rejoining: {}", status.snapshot_index));
    Ok(Aftermath::primary(history, fault_ms))
}
