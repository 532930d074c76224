//! Scenario `minority-partition`: cut one (seeded) primary follower off its peers, both
//! ways, then heal: the majority serves on and the follower catches up.

use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn minority_partition(env: &mut Env, mut act: Act<'_>) -> Result<Aftermath, DrillError> {
    let leader = env.leader("primary").await?;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader.1).collect();
    let victim = ("primary".to_string(), followers[act.pick(2) as usize]);
    for link in env.peer_links_of(&victim) {
        link.partition();
    }
    let fault_ms = env.event(format!("partition follower {} from its peers (both ways)", victim.1));
    sleep(act.third).await;
    for link in env.peer_links_of(&victim) {
        link.heal();
    }
    env.event("partition healed");
    sleep(act.third).await;
    Ok(Aftermath::primary(act.workload.stop(WAIT).await, fault_ms))
}
