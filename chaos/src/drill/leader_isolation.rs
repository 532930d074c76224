//! Scenario `leader-isolation`: blackhole the primary leader's outgoing peer links only
//! (it still hears its peers): a gray failure. A new leader must be elected and served from.

use ledger_cluster::launcher::LocalCluster;
use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;
use crate::proxy::LinkState;
use crate::proxy::Mode;

pub async fn leader_isolation(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    let leader = env.leader("primary").await?;
    for link in env.outgoing_peer_links_of(&leader) {
        link.set(LinkState { forward: Mode::Blackhole, backward: Mode::Pass, delay: act.config.zone_delay });
    }
    let fault_ms = env.event(format!("blackhole leader {}'s outgoing peer links (one way)", leader.1));
    env.note_if_not_leader(&leader).await;
    let cluster = &env.cluster;
    LocalCluster::poll("a new leader", WAIT, || async {
        let leader_now = cluster.leader("primary", std::time::Duration::from_secs(1)).await.ok()?;
        (leader_now != leader).then_some(())
    })
    .await?;
    env.event("new leader elected");
    sleep(act.third).await;
    for link in env.outgoing_peer_links_of(&leader) {
        link.heal();
    }
    env.event("links healed");
    sleep(act.third).await;
    Ok(Aftermath::primary(act.workload.stop(WAIT).await, fault_ms))
}
