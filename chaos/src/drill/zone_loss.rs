//! Scenario `zone-loss`: kill every primary node of one (seeded) zone under load, restart
//! them later. Two zones of three keep a quorum: the primary serves on.

use ledger_cluster::launcher::NodeKey;
use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn zone_loss(env: &mut Env, mut act: Act<'_>) -> Result<Aftermath, DrillError> {
    let zones = ["a", "b", "c"];
    let zone = zones[act.pick(3) as usize];
    let victims: Vec<NodeKey> = env
        .cluster
        .topology
        .site("primary")
        .expect("primary")
        .nodes
        .iter()
        .filter(|n| n.zone == zone)
        .map(|n| ("primary".to_string(), n.id))
        .collect();
    for key in &victims {
        env.cluster.kill(key);
    }
    let fault_ms = env.event(format!("zone {zone} lost: kill -9 {victims:?}"));
    env.leader("primary").await?;
    sleep(act.third).await;
    for key in &victims {
        env.cluster.start(key)?;
    }
    env.event(format!("zone {zone} back"));
    sleep(act.third).await;
    Ok(Aftermath::primary(act.workload.stop(WAIT).await, fault_ms))
}
