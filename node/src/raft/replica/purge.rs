//! The Raft log purge, and the checkpoints by transfers written. openraft 0.9 purges the log below each new snapshot by itself, also
//! while an older snapshot is being sent to a follower: that follower then installs it, finds
//! the entries after it gone, and needs another snapshot, and where a send outlasts a
//! checkpoint interval (10 M transfers) it never catches up. openraft's own purge is off
//! (`max_in_snapshot_log_to_keep` is infinite, see `config.rs`) and the replica purges instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Replica;
use crate::raft::types::NodeId;

/// How often the purge point is looked at.
const PURGE_EVERY: Duration = Duration::from_millis(100);

impl Replica {
    /// Until the task is aborted or Raft stops: purges the log up to `keep` entries below the
    /// newest snapshot (a durable checkpoint: the log is never purged past it), never past the
    /// last entry of a snapshot this node is sending, nor past where a follower it sent one to
    /// in the last minute has got, and at least `batch` entries at a time.
    pub async fn keep_log_purged(self: Arc<Self>, keep: u64, batch: u64) {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asked = 0;
        loop {
            tick.tick().await;
            let (snapshot, purged, matched) = {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                let matched: BTreeMap<NodeId, u64> = m
                    .replication
                    .iter()
                    .flat_map(|r| r.iter())
                    .filter_map(|(id, log_id)| Some((*id, log_id.as_ref()?.index)))
                    .collect();
                (m.snapshot.map(|l| l.index), m.purged.map_or(0, |l| l.index), matched)
            };
            let Some(snapshot) = snapshot else { continue };
            let mut upto = snapshot.saturating_sub(keep);
            if let Some(held) = self.peers.log_held_from(|id| matched.get(&id).copied()) {
                upto = upto.min(held);
            }
            if upto == 0 || upto < purged.max(asked) + batch.max(1) {
                continue;
            }
            if let Err(e) = self.raft.trigger().purge_log(upto).await {
                tracing::debug!(error = %e, "log purge stopped: Raft is down");
                return;
            }
            asked = upto;
        }
    }
}

/// How often the transfers written since the last checkpoint are looked at.
const CHECKPOINT_CHECK_EVERY: Duration = Duration::from_millis(200);

impl Replica {
    /// Until the task is aborted or Raft stops: asks openraft for a snapshot (which writes a
    /// checkpoint) once `every` transfer records were written since the last one. openraft's
    /// own policy counts entries, and an entry holds from one transfer to ~1,200: this bounds
    /// what a restart re-applies in transfers, whatever the load. A request while a snapshot is
    /// being built is ignored by openraft; the count restarts at each checkpoint cut.
    pub async fn keep_checkpointing(self: Arc<Self>, every: u64) {
        let mut tick = tokio::time::interval(CHECKPOINT_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.reader.transfers_since_checkpoint() < every {
                continue;
            }
            if let Err(e) = self.raft.trigger().snapshot().await {
                tracing::debug!(error = %e, "checkpoint trigger stopped: Raft is down");
                return;
            }
        }
    }
}
