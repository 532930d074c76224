//! `JournalShipper`: on the leader of a standby site, streams the active site's journal from
//! our head + 1 and proposes the records into our own Raft log, batch by batch. The state
//! machine re-applies each record and checks its hash (`ledger_core::site_ops::ship`); a
//! mismatch halts shipping with an alarm, never a silent continuation.
//!
//! Any reachable node of the upstream site will do: the shipper rotates through the upstream
//! endpoints on failure. When leadership moves, the new leader's shipper starts from its own
//! applied head, so nothing is skipped and a record shipped twice is recognised (same seq,
//! same hash) and ignored. The active site only serves reads to us: a slow or absent standby
//! never slows its commits.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::journal::JournalRecord;
use ledger_core::limits::ENTRY_BYTES_MAX;
use ledger_core::site::SiteRole;
use ledger_proto::v1 as pb;
use ledger_proto::v1::audit_client::AuditClient;
use ledger_proto::v1::cluster_client::ClusterClient;

use super::DrMonitor;
use super::Lag;
use crate::raft::clock::now_ms;
use crate::raft::replica::Replica;
use crate::transport::Transport;

/// Records per proposed entry, at most (also bounded by `ENTRY_BYTES_MAX`).
const SHIP_BATCH_RECORDS_MAX: usize = 256;
/// How long to wait for more records before proposing what arrived.
const SHIP_LINGER_MS: u64 = 5;
/// How often the upstream head is sampled for the lag.
const LAG_SAMPLE_MS: u64 = 500;
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Decodes a streamed record from its canonical bytes (the readable fields are not trusted).
fn decode_record(expected_seq: u64, record: &pb::JournalRecord) -> Result<JournalRecord, String> {
    let decoded: JournalRecord = ledger_core::codec::decode(&record.canonical).map_err(|e| e.to_string())?;
    if decoded.seq != expected_seq {
        return Err(format!("expected seq {expected_seq}, the stream sent {}", decoded.seq));
    }
    Ok(decoded)
}

pub struct JournalShipper {
    pub replica: Arc<Replica>,
    pub transport: Transport,
    pub monitor: Arc<DrMonitor>,
}

#[derive(Debug, thiserror::Error)]
enum ShipError {
    #[error("upstream {0}: {1}")]
    Upstream(String, String),
    #[error("no longer the leader of a standby")]
    NotShipping,
    #[error("shipping halted: {0}")]
    Halted(String),
}

impl JournalShipper {
    /// Runs forever; does work only while this node leads a standby site.
    pub async fn run(self) {
        let mut next_upstream = 0usize;
        loop {
            let site = self.replica.reader.meta().site;
            let shipping = self.replica.is_leader()
                && site.role == SiteRole::Standby
                && site.watermark.halted.is_none()
                && !site.upstream.is_empty();
            if !shipping {
                metrics::gauge!("ledger_dr_halted").set(if site.watermark.halted.is_some() { 1.0 } else { 0.0 });
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let upstream = site.upstream[next_upstream % site.upstream.len()].clone();
            match self.ship_from(&upstream).await {
                Ok(()) => {}
                Err(ShipError::Halted(reason)) => {
                    metrics::gauge!("ledger_dr_halted").set(1.0);
                    tracing::error!(%reason, "DR shipping halted; an operator must investigate (status shows the reason)");
                }
                Err(ShipError::NotShipping) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "shipping from upstream failed; trying the next endpoint");
                    next_upstream += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn still_shipping(&self) -> bool {
        let site = self.replica.reader.meta().site;
        self.replica.is_leader() && site.role == SiteRole::Standby && site.watermark.halted.is_none()
    }

    async fn ship_from(&self, upstream: &str) -> Result<(), ShipError> {
        let err = |e: &dyn std::fmt::Display| ShipError::Upstream(upstream.to_string(), e.to_string());
        let channel = self.transport.channel(upstream).map_err(|e| err(&e))?;
        // Only ship from a site that is active at an epoch at least the one we follow.
        let mut cluster = ClusterClient::new(channel.clone());
        let mut request = tonic::Request::new(pb::StatusRequest {});
        request.set_timeout(RPC_TIMEOUT);
        let status = cluster.status(request).await.map_err(|e| err(&e))?.into_inner();
        let their = status.site.unwrap_or_default();
        let ours = self.replica.reader.meta().site;
        if their.role != "active" || their.epoch < ours.active_epoch {
            return Err(err(&format!(
                "site {} is {} at epoch {}; we follow epoch {}",
                their.name, their.role, their.epoch, ours.active_epoch
            )));
        }
        let from = self.replica.reader.journal_head().seq + 1;
        let mut audit = AuditClient::new(channel).max_decoding_message_size(MESSAGE_BYTES_MAX);
        let mut stream = audit
            .read_journal(pb::ReadJournalRequest { from_seq: from, limit: 0, follow: true })
            .await
            .map_err(|e| err(&e))?
            .into_inner();
        tracing::info!(%upstream, from, "shipping the journal");
        let mut lag_tick = tokio::time::interval(Duration::from_millis(LAG_SAMPLE_MS));
        let mut position = from;
        loop {
            // Wait for the next record, sampling the lag meanwhile.
            let first = tokio::select! {
                message = stream.message() => match message {
                    Ok(Some(record)) => record,
                    Ok(None) => return Err(err(&"journal stream ended")),
                    Err(e) => return Err(err(&e)),
                },
                _ = lag_tick.tick() => {
                    if !self.still_shipping() {
                        return Err(ShipError::NotShipping);
                    }
                    self.sample_lag(&mut cluster).await;
                    continue;
                }
            };
            let mut batch = vec![decode_record(position, &first).map_err(|e| err(&e))?];
            let mut bytes = first.canonical.len();
            position += 1;
            while batch.len() < SHIP_BATCH_RECORDS_MAX {
                let next = tokio::time::timeout(Duration::from_millis(SHIP_LINGER_MS), stream.message()).await;
                let Ok(message) = next else { break };
                let record = match message {
                    Ok(Some(record)) => record,
                    Ok(None) => break,
                    Err(e) => return Err(err(&e)),
                };
                bytes += record.canonical.len();
                batch.push(decode_record(position, &record).map_err(|e| err(&e))?);
                position += 1;
                if bytes + 1024 > ENTRY_BYTES_MAX {
                    break;
                }
            }
            self.propose(batch).await?;
        }
    }

    /// Proposes records in entries that stay under the entry size limit.
    async fn propose(&self, records: Vec<JournalRecord>) -> Result<(), ShipError> {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for record in records {
            let size = ledger_core::codec::encoded_len(&record);
            if !chunk.is_empty() && bytes + size + 1024 > ENTRY_BYTES_MAX {
                self.propose_chunk(std::mem::take(&mut chunk)).await?;
                bytes = 0;
            }
            bytes += size;
            chunk.push(record);
        }
        if !chunk.is_empty() {
            self.propose_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn propose_chunk(&self, records: Vec<JournalRecord>) -> Result<(), ShipError> {
        let n = records.len();
        let report = self.replica.propose_shipped(records).await.map_err(|e| {
            if self.still_shipping() {
                ShipError::Upstream("(local raft)".into(), e.to_string())
            } else {
                ShipError::NotShipping
            }
        })?;
        metrics::counter!("ledger_dr_shipped_records_total").increment(report.applied);
        if let Some(reason) = report.halted {
            return Err(ShipError::Halted(reason));
        }
        if report.ignored.is_some() {
            return Err(ShipError::NotShipping);
        }
        tracing::debug!(n, applied = report.applied, duplicates = report.duplicates, "shipped");
        Ok(())
    }

    /// The lag behind the upstream head: records we lack and their ledger-time span.
    async fn sample_lag(&self, cluster: &mut ClusterClient<tonic::transport::Channel>) {
        let mut request = tonic::Request::new(pb::StatusRequest {});
        request.set_timeout(RPC_TIMEOUT);
        let Ok(status) = cluster.status(request).await else { return };
        let head = status.into_inner().journal_head.unwrap_or_default();
        let ours = self.replica.reader.meta();
        let records = head.seq.saturating_sub(ours.journal.seq);
        let ms = if records > 0 { head.ledger_time_ms.saturating_sub(ours.site.watermark.ledger_time_ms) } else { 0 };
        self.monitor.set(Lag {
            records,
            ms,
            upstream_head_seq: head.seq,
            measured_at_ms: now_ms(),
            oldest_missing_ms: None,
        });
    }
}
