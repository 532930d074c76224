//! The `Audit` service: the journal, in order, as stored (auditors and the DR site read it).

use std::sync::Arc;

use ledger_proto::v1 as pb;
use ledger_proto::v1::audit_server::Audit;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::auth::Auth;
use super::convert;
use super::status::ApiResult;
use crate::raft::replica::Replica;
use crate::security::authz::Action;

/// Records read from sled per step of a journal stream.
const STREAM_CHUNK_RECORDS: usize = 256;
/// Site log entries per page.
const SITE_LOG_PAGE_MAX: usize = 1000;
/// Records buffered per stream before the reader waits for the client (backpressure).
const STREAM_BUFFER_RECORDS: usize = 1024;

pub struct AuditService {
    pub replica: Arc<Replica>,
    pub auth: Auth,
}

#[tonic::async_trait]
impl Audit for AuditService {
    type ReadJournalStream = ReceiverStream<Result<pb::JournalRecord, Status>>;

    async fn read_journal(&self, request: Request<pb::ReadJournalRequest>) -> ApiResult<Self::ReadJournalStream> {
        self.auth.authorize(&request, Action::ReadJournal)?;
        let request = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_RECORDS);
        let reader = self.replica.reader.clone();
        let mut next = request.from_seq.max(1);
        let limit = if request.limit == 0 { u64::MAX } else { request.limit };
        tokio::spawn(async move {
            let mut head = reader.subscribe_head();
            let mut sent = 0u64;
            while sent < limit {
                let want = (limit - sent).min(STREAM_CHUNK_RECORDS as u64) as usize;
                let chunk = {
                    let reader = reader.clone();
                    tokio::task::spawn_blocking(move || reader.journal(next, want))
                        .await
                        .expect("journal read does not panic")
                };
                if chunk.is_empty() {
                    if !request.follow {
                        return;
                    }
                    // Wait for the head to move past what we sent (or the client to leave).
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                for record in chunk {
                    assert_eq!(record.seq, next, "journal reads are contiguous");
                    next += 1;
                    sent += 1;
                    if tx.send(Ok(convert::journal_record_to_proto(&record))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn read_site_log(&self, request: Request<pb::ReadSiteLogRequest>) -> ApiResult<pb::ReadSiteLogResponse> {
        self.auth.authorize(&request, Action::ReadSiteLog)?;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => SITE_LOG_PAGE_MAX,
            n => (n as usize).min(SITE_LOG_PAGE_MAX),
        };
        let entries = self.replica.reader.site_log(request.from_seq, limit);
        Ok(Response::new(pb::ReadSiteLogResponse { entries: entries.iter().map(convert::site_log_to_proto).collect() }))
    }

    async fn get_journal_head(&self, request: Request<pb::GetJournalHeadRequest>) -> ApiResult<pb::JournalHead> {
        self.auth.authorize(&request, Action::ReadJournalHead)?;
        Ok(Response::new(convert::journal_head_to_proto(&self.replica.reader.journal_head())))
    }
}
