//! Scenario `crash-storm`: under load, kill -9 a primary node picked by the drill's seed
//! (leader or follower) again and again, `--kills` times in all. Each kill lands at a random
//! moment or just as the victim's next snapshot build is due (each build writes a checkpoint of
//! its state machine); one victim in four also loses its data dir and must rejoin by snapshot
//! (as a new member, see below); one restarted victim in three is killed again at once, while
//! it receives its snapshot or catches up. Every victim is restarted and must rejoin (reach the commit index its leader
//! had when it came back) before the next kill, so at most one node is ever down and a quorum
//! always holds every acknowledged write. A node that exits without being killed fails the
//! drill. The checker then runs over every node of both sites, as after every drill, with
//! equal journal heads (seq and hash) first: chains verify, every acknowledged transfer is
//! present exactly once, balances equal an independent replay of the journal.
//!
//! Nodes build a snapshot every 40 entries and keep 50 below it, sent in 256 KiB chunks
//! ([`Scenario::snapshot_cadence`](crate::drill::Scenario::snapshot_cadence)), so checkpoints
//! come about every second under load and a node down for a couple of seconds needs a snapshot.
//!
//! A wiped node is removed from the group while it is down and added back as a new learner,
//! a voter again only once it caught up (docs/operations.md): a voter restarted empty under its
//! old id can vote for a candidate whose log lacks writes that it had itself acknowledged, and
//! that candidate can win and overwrite them. (An earlier version of this drill restarted wiped
//! nodes as voters: openraft's `LogIdList::purge` assertion then caught a follower holding an
//! entry of a later term than the snapshot its new leader sent, i.e. two diverged logs.)
//!
//! CI runs the short form (20 kills, `tests/tests/chaos.rs`); the soak form runs hundreds:
//!
//! ```text
//! ledger-chaos run --scenario crash-storm --kills 300 --seed 7 --report crash-storm-report
//! ledger-chaos soak --minutes 60 --kills 100
//! ```

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;

use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use tokio::time::sleep;

use crate::drill::config::WAIT;
use crate::drill::env::DrillError;
use crate::drill::env::Env;
use crate::drill::script::Act;
use crate::drill::script::Aftermath;

/// Longest random wait before a kill "at any moment".
const ANY_MOMENT_MS_MAX: u64 = 1_500;
/// Longest random wait, once a restarted victim serves, before it is killed again.
const RE_KILL_MS_MAX: u64 = 600;
/// How long to wait for a victim's next snapshot build to be due; under load it takes well
/// under a second.
const CHECKPOINT_DUE_WAIT: Duration = Duration::from_secs(10);
/// How long the leader waits for a wiped node to catch up as a learner, per attempt, and how
/// many attempts (it may be killed again meanwhile).
const ADD_BACK_CATCH_UP: Duration = Duration::from_secs(30);
const ADD_BACK_ATTEMPTS: u32 = 6;

/// What the storm did, for the report's notes.
#[derive(Debug, Default)]
struct Tally {
    kills: u32,
    leader_kills: u32,
    at_checkpoint: u32,
    /// A checkpoint was to be aimed at, but none came due in time: killed anyway.
    checkpoint_not_due: u32,
    wipes: u32,
    re_kills: u32,
    /// Re-kills of a wiped victim that had not yet installed its snapshot.
    re_kills_before_snapshot: u32,
    /// Re-kills of a victim still behind its leader's commit index.
    re_kills_behind: u32,
    /// Snapshot index of each wiped victim once it rejoined (it rejoined by that snapshot).
    wiped_rejoined_at: Vec<u64>,
}

pub async fn crash_storm(env: &mut Env, mut act: Act<'_>) -> Result<Aftermath, DrillError> {
    let kills = act.config.kills;
    let every = act.config.scenario.snapshot_cadence().every_entries;
    let primary = env.cluster.site_keys("primary");
    let mut tally = Tally::default();
    let mut fault_ms = None;
    while tally.kills < kills {
        let victim = primary[act.pick(primary.len() as u64) as usize].clone();
        let leader = env.leader("primary").await?;
        let role = if leader == victim { "leader" } else { "follower" };
        let moment = if act.pick(2) == 0 {
            match checkpoint_due(env, &victim, every).await? {
                Some(status) => {
                    tally.at_checkpoint += 1;
                    format!("as its snapshot build is due (applied {}, last snapshot {})", status.0, status.1)
                }
                None => {
                    tally.checkpoint_not_due += 1;
                    "no snapshot build came due in time: killed anyway".to_string()
                }
            }
        } else {
            let ms = act.pick(ANY_MOMENT_MS_MAX);
            sleep(Duration::from_millis(ms)).await;
            format!("at a random moment ({ms} ms)")
        };
        env.cluster.kill(&victim);
        let at = env.event(format!("kill -9 node {} ({role}) {moment}", victim.1));
        fault_ms.get_or_insert(at);
        tally.kills += 1;
        tally.leader_kills += u32::from(leader == victim);
        let wiped = act.pick(4) == 0;
        if wiped {
            env.cluster.wipe(&victim)?;
            tally.wipes += 1;
            let survivor_leader = remove_member(env, &victim).await?;
            env.event(format!(
                "wiped node {}'s data dir and removed it from the group (node {} leads the two others)",
                victim.1, survivor_leader.1
            ));
        }
        env.cluster.start(&victim)?;
        env.event(format!("restarted node {}", victim.1));
        // A wiped node comes back as a new learner, a voter again only once it caught up.
        let added = if wiped {
            let others = primary
                .iter()
                .filter(|k| **k != victim)
                .map(|k| env.cluster.node_client(k))
                .collect::<Result<_, _>>()?;
            Some(tokio::spawn(add_back(others, member(env, &victim)?)))
        } else {
            None
        };
        if tally.kills < kills && act.pick(3) == 0 {
            let delay_ms = act.pick(RE_KILL_MS_MAX);
            let (what, before_snapshot, behind) = kill_while_rejoining(env, &victim, wiped, delay_ms).await?;
            env.event(format!("kill -9 node {} again {what}", victim.1));
            tally.kills += 1;
            tally.re_kills += 1;
            tally.re_kills_before_snapshot += u32::from(before_snapshot);
            tally.re_kills_behind += u32::from(behind);
            env.cluster.start(&victim)?;
            env.event(format!("restarted node {}", victim.1));
        }
        if let Some(added) = added {
            added.await.map_err(|e| DrillError::Other(format!("adding node {} back: {e}", victim.1)))??;
            env.event(format!("node {} caught up as a learner and is a voter again", victim.1));
        }
        let status = wait_rejoined(env, &victim).await?;
        if wiped {
            tally.wiped_rejoined_at.push(status.snapshot_index);
        }
        env.event(format!(
            "node {} rejoined at applied index {} (snapshot {})",
            victim.1, status.applied_index, status.snapshot_index
        ));
        must_all_run(env)?;
    }
    sleep(act.third).await;
    let history = act.workload.stop(WAIT).await;
    must_all_run(env)?;
    let leader = env.leader("primary").await?;
    let leader_status =
        LocalCluster::poll("the leader's status", WAIT, || async { env.cluster.status(&leader).await.ok() }).await?;
    if tally.wiped_rejoined_at.contains(&0) {
        return Err(DrillError::Other(format!(
            "a wiped node rejoined without holding a snapshot: {:?}",
            tally.wiped_rejoined_at
        )));
    }
    env.notes.push(format!(
        "crash-storm: {} kills ({} of the leader; {} as a snapshot build was due, {} aimed at one that never came due; \
         {} again while rejoining, {} of them before a wiped node's snapshot was installed and {} while behind its leader); \
         {} wipes, each rejoined by snapshot (at indexes {:?}); the leader ends at applied index {} with its last snapshot at {} \
         (one every {every} entries)",
        tally.kills,
        tally.leader_kills,
        tally.at_checkpoint,
        tally.checkpoint_not_due,
        tally.re_kills,
        tally.re_kills_before_snapshot,
        tally.re_kills_behind,
        tally.wipes,
        tally.wiped_rejoined_at,
        leader_status.applied_index,
        leader_status.snapshot_index,
    ));
    Ok(Aftermath::primary(history, fault_ms.unwrap_or_else(crate::workload::wall_ms)))
}

/// Removes `key` from its group through the leader of the others; returns that leader. An
/// attempt that fails (an election meanwhile, a timeout) is made again until [`WAIT`] passes;
/// one that finds `key` no longer a member means an earlier attempt did it.
async fn remove_member(env: &Env, key: &NodeKey) -> Result<NodeKey, DrillError> {
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = env.leader(&key.0).await?;
        match env.cluster.node_client(&leader)?.remove_node(key.1).await {
            Ok(response) if !response.members.iter().any(|m| m.node_id == key.1) => return Ok(leader),
            Ok(response) => {
                return Err(DrillError::Other(format!("node {} still a member: {:?}", key.1, response.members)));
            }
            Err(e) if e.to_string().contains("is not a member") => return Ok(leader),
            Err(e) if Instant::now() < deadline => {
                tracing::info!(node = key.1, error = %e, "removing the node: trying again");
                sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How `key` is named in the group's membership (its addresses from the topology).
fn member(env: &Env, key: &NodeKey) -> Result<pb::Member, DrillError> {
    let node = env
        .cluster
        .topology
        .site(&key.0)
        .and_then(|site| site.node(key.1))
        .ok_or_else(|| DrillError::Other(format!("no node {key:?} in the topology")))?;
    Ok(pb::Member {
        node_id: node.id,
        zone: node.zone.clone(),
        client_addr: node.client_addr.clone(),
        peer_addr: node.peer_addr.clone(),
        voter: true,
        matched_index: 0,
    })
}

/// Adds a wiped node back through whichever of `others` leads: as a learner, until it caught
/// up (by snapshot), then as a voter. It may be killed and restarted meanwhile: an attempt
/// that fails (it timed out, or asked a node that does not lead) is made again, on the next
/// node, with the same request (adding a node that is already a learner adds it again).
async fn add_back(others: Vec<LedgerClient>, node: pb::Member) -> Result<(), DrillError> {
    let mut attempts = 0;
    loop {
        let site = &others[attempts as usize % others.len()];
        attempts += 1;
        let request = pb::AddNodeRequest {
            node: Some(node.clone()),
            learner_only: false,
            catch_up_timeout_ms: ADD_BACK_CATCH_UP.as_millis() as u64,
        };
        match site.add_node(request).await {
            Ok(response) if response.members.iter().any(|m| m.node_id == node.node_id && m.voter) => return Ok(()),
            Ok(response) => {
                return Err(DrillError::Other(format!(
                    "node {} added back but not a voter: {:?}",
                    node.node_id, response.members
                )));
            }
            Err(e) if attempts < ADD_BACK_ATTEMPTS => {
                tracing::info!(node = node.node_id, error = %e, "adding the node back: trying again");
                sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Polls `key` until its next snapshot build is due (it applied its staggered interval of
/// `every` entries, `ledger_node::config::staggered_snapshot_interval`, past its last
/// snapshot: openraft's `LogsSinceLast` starts one then, and the node reports the new
/// snapshot only once it is built), and returns (applied, snapshot) index; `None` if none came
/// due within [`CHECKPOINT_DUE_WAIT`].
async fn checkpoint_due(env: &Env, key: &NodeKey, every: u64) -> Result<Option<(u64, u64)>, DrillError> {
    let client = env.cluster.node_client(key)?;
    let deadline = Instant::now() + CHECKPOINT_DUE_WAIT;
    while Instant::now() < deadline {
        if let Ok(status) = client.status_once(Duration::from_secs(1)).await
            && status.applied_index
                >= status.snapshot_index + ledger_node::config::staggered_snapshot_interval(every, key.1)
        {
            return Ok(Some((status.applied_index, status.snapshot_index)));
        }
        sleep(Duration::from_millis(2)).await;
    }
    Ok(None)
}

/// Waits until the restarted `key` serves, waits `delay_ms` more and kills it. Returns how it
/// was caught, whether it was a wiped node that had not installed its snapshot yet, and whether
/// it was behind its leader's commit index.
async fn kill_while_rejoining(
    env: &mut Env,
    key: &NodeKey,
    wiped: bool,
    delay_ms: u64,
) -> Result<(String, bool, bool), DrillError> {
    let client = env.cluster.node_client(key)?;
    LocalCluster::poll(&format!("restarted node {} to serve", key.1), WAIT, || async {
        client.status_once(Duration::from_secs(1)).await.ok()
    })
    .await?;
    sleep(Duration::from_millis(delay_ms)).await;
    let status = client.status_once(Duration::from_secs(1)).await.ok();
    let commit = leader_commit(env, &key.0).await;
    env.cluster.kill(key);
    let Some(status) = status else {
        return Ok((format!("{delay_ms} ms after it first served (it did not answer just before)"), false, false));
    };
    let before_snapshot = wiped && status.applied_index == 0;
    let behind = commit.is_some_and(|c| status.applied_index < c);
    let what = if before_snapshot {
        format!("{delay_ms} ms after it first served, wiped and still waiting for or installing its snapshot")
    } else if behind {
        format!(
            "{delay_ms} ms after it first served, while catching up (applied {} of {})",
            status.applied_index,
            commit.unwrap_or_default()
        )
    } else {
        format!("{delay_ms} ms after it first served, already caught up (applied {})", status.applied_index)
    };
    Ok((what, before_snapshot, behind))
}

/// The commit index of whichever node of `site` says it leads, if one answers.
async fn leader_commit(env: &Env, site: &str) -> Option<u64> {
    for key in env.cluster.site_keys(site) {
        if let Ok(status) = env.cluster.status(&key).await
            && status.raft_role == "leader"
        {
            return Some(status.commit_index);
        }
    }
    None
}

/// Waits until `key` knows a leader and has applied the commit index a leader had once `key`
/// served again; returns its status then.
async fn wait_rejoined(env: &Env, key: &NodeKey) -> Result<pb::NodeStatus, DrillError> {
    let target = LocalCluster::poll(&format!("a leader of {}", key.0), WAIT, || leader_commit(env, &key.0)).await?;
    let client: LedgerClient = env.cluster.node_client(key)?;
    let status = LocalCluster::poll(&format!("node {} to rejoin (apply index {target})", key.1), WAIT, || async {
        let status = client.status_once(Duration::from_secs(1)).await.ok()?;
        (status.leader_id != 0 && status.applied_index >= target).then_some(status)
    })
    .await?;
    Ok(status)
}

/// Fails the drill if any node's process has exited: during a crash storm only the drill
/// kills, and it restarts every node it kills before it checks.
fn must_all_run(env: &mut Env) -> Result<(), DrillError> {
    let mut exited = BTreeMap::new();
    for key in env.cluster.keys() {
        if !env.cluster.is_running(&key) {
            let status = env.cluster.exit_status(&key);
            exited.insert(key.clone(), format!("{status:?}; log {}", env.cluster.log_path(&key).display()));
        }
    }
    if exited.is_empty() {
        Ok(())
    } else {
        Err(DrillError::Other(format!("nodes exited without being killed: {exited:?}")))
    }
}
