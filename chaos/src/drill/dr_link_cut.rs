//! Scenario `dr-link-cut`: cut every link between the sites, both ways, then heal: the
//! primary serves on and the DR site catches up.

use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

pub async fn dr_link_cut(env: &mut Env, act: Act<'_>) -> Result<Aftermath, DrillError> {
    for link in env.site_links() {
        link.partition();
    }
    let fault_ms = env.event("cut every link between the sites (both ways)");
    sleep(act.third).await;
    for link in env.site_links() {
        link.heal();
    }
    env.event("links between the sites healed");
    sleep(act.third).await;
    Ok(Aftermath::primary(act.workload.stop(WAIT).await, fault_ms))
}
