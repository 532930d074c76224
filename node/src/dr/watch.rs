//! `SiteWatcher`: on every node of an active site, polls every node of the other sites (each
//! node measures the lag itself, so any node can refuse writes when throttling; only the
//! leader proposes).
//!
//! - A site that is active at a higher epoch than any we have seen means we were failed over:
//!   we propose `ObserveEpoch`, after which our state machine refuses every write (fencing).
//!   A partitioned old primary does this as soon as it can reach the new active site again.
//! - A standby that follows us reports its watermark: the records it lacks and their
//!   ledger-time span are the DR lag (the RPO exposure). While no standby answers, the lag
//!   keeps growing from the last watermark seen, so an unreachable DR site raises the alarm
//!   and, with throttling on, stops writes before the lag passes the ceiling.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_proto::v1 as pb;
use ledger_proto::v1::cluster_client::ClusterClient;

use super::DrMonitor;
use super::Lag;
use crate::raft::clock::now_ms;
use crate::raft::replica::Replica;
use crate::transport::Transport;

const POLL_MS: u64 = 500;
const RPC_TIMEOUT: Duration = Duration::from_secs(1);

pub struct SiteWatcher {
    pub replica: Arc<Replica>,
    pub transport: Transport,
    pub monitor: Arc<DrMonitor>,
}

impl SiteWatcher {
    pub async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(POLL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The best watermark a standby reported: (seq, its ledger time).
        let mut watermark: Option<(u64, u64)> = None;
        let mut last_heard_ms = 0;
        loop {
            tick.tick().await;
            let meta = self.replica.reader.meta();
            if meta.site.role != SiteRole::Active {
                watermark = None;
                continue;
            }
            let mut heard = false;
            for endpoint in &self.monitor.config.peer_sites {
                let Some(status) = self.status(endpoint).await else { continue };
                let site = status.site.unwrap_or_default();
                if site.role == "active"
                    && site.name != meta.site.name
                    && site.epoch > meta.site.epoch_seen()
                    && self.replica.is_leader()
                {
                    self.observe(&site.name, site.epoch).await;
                }
                if site.role == "standby" && site.active_site == meta.site.name {
                    heard = true;
                    let seen = (site.watermark_seq, site.watermark_time_ms);
                    watermark = Some(watermark.map_or(seen, |w| w.max(seen)));
                }
            }
            if self.monitor.config.peer_sites.is_empty() {
                continue;
            }
            if heard {
                last_heard_ms = now_ms();
            }
            // Lag against our head: what the best standby lacks, as a span of ledger time.
            let head = meta.journal;
            let (dr_seq, dr_time) = watermark.unwrap_or((0, 0));
            let records = head.seq.saturating_sub(dr_seq);
            let oldest_missing_ms = if records == 0 {
                None
            } else {
                // The standby holds up to dr_seq; the oldest record it lacks is dr_seq + 1.
                let oldest_missing = self.replica.reader.journal(dr_seq + 1, 1);
                Some(oldest_missing.first().map_or(dr_time, |r| r.ledger_time_ms.max(dr_time)))
            };
            let ms = oldest_missing_ms.map_or(0, |since| head.ledger_time_ms.saturating_sub(since));
            self.monitor.set(Lag {
                records,
                ms,
                upstream_head_seq: head.seq,
                measured_at_ms: last_heard_ms,
                oldest_missing_ms,
            });
        }
    }

    async fn status(&self, endpoint: &str) -> Option<pb::NodeStatus> {
        let channel = self.transport.channel(endpoint).ok()?;
        let mut request = tonic::Request::new(pb::StatusRequest {});
        request.set_timeout(RPC_TIMEOUT);
        ClusterClient::new(channel).status(request).await.ok().map(|r| r.into_inner())
    }

    async fn observe(&self, active_site: &str, epoch: u64) {
        tracing::warn!(active_site, epoch, "another site is active at a higher epoch: fencing this site");
        let envelope = Envelope {
            caller: "site-watcher".into(),
            command: Command::Site(SiteCommand::ObserveEpoch { active_site: active_site.to_string(), epoch }),
        };
        if let Err(e) = self.replica.write(envelope).await {
            tracing::error!(error = %e, "could not record the higher epoch; will retry");
        }
    }
}
