//! The `Ledger` service: accounts and transfers.
//!
//! A write request is converted item by item; items that cannot even be parsed or fail the
//! stateless rules get their code here and are not proposed (bad input changes nothing; for
//! an atomic batch that means nothing is proposed at all). The rest become one command, applied
//! through Raft, and the ledger's per-item results are merged back in request order.

use std::sync::Arc;
use std::time::Instant;

use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::command::ItemResult;
use ledger_core::command::Outcome;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::ledger;
use ledger_core::limits;
use ledger_core::reject::ResultCode;
use ledger_proto::ErrorCode;
use ledger_proto::v1 as pb;
use ledger_proto::v1::ledger_server::Ledger;
use tonic::Request;
use tonic::Response;

use super::auth::Auth;
use super::convert;
use super::status::ApiError;
use super::status::ApiResult;
use crate::dr::DrMonitor;
use crate::raft::replica::Replica;
use crate::raft::types::CommandResult;
use crate::security::authz::Action;
use crate::security::authz::Caller;
use crate::security::pii::KeyRing;

pub struct LedgerService {
    pub replica: Arc<Replica>,
    pub auth: Auth,
    pub keys: Arc<KeyRing>,
    pub monitor: Arc<DrMonitor>,
}

fn check_batch_len(n: usize, what: &str) -> Result<(), ApiError> {
    if n == 0 || n > limits::BATCH_ITEMS_MAX {
        return Err(ApiError::invalid(
            ErrorCode::BatchSize,
            format!("{what}: {n} items; a batch must have between 1 and {}", limits::BATCH_ITEMS_MAX),
        ));
    }
    Ok(())
}

fn observe(rpc: &'static str, started: Instant) {
    metrics::histogram!("ledger_request_duration_seconds", "rpc" => rpc).record(started.elapsed().as_secs_f64());
}

/// One write request on its way through the pipeline every write RPC shares: *prepare* (parse
/// and check each item without state), *propose* the valid items as one command, *merge* the
/// ledger's per-item results with the codes of the items refused up front, in request order.
struct WriteBatch<T> {
    /// Item ids in request order, for the results.
    ids: Vec<String>,
    /// `(request index, item)` to propose.
    valid: Vec<(usize, T)>,
    /// Code per request index, for items refused before proposing.
    refused: Vec<Option<ResultCode>>,
}

impl<T> WriteBatch<T> {
    fn prepare(ids: Vec<String>, items: impl IntoIterator<Item = Result<T, ResultCode>>) -> WriteBatch<T> {
        let mut valid = Vec::new();
        let mut refused = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Ok(item) => {
                    valid.push((index, item));
                    refused.push(None);
                }
                Err(code) => refused.push(Some(code)),
            }
        }
        assert_eq!(refused.len(), ids.len(), "one id per item");
        WriteBatch { ids, valid, refused }
    }

    /// The results in request order: `applied[i]` for the i-th proposed item, the up-front
    /// code for the others.
    fn merge(&self, proposed: &[usize], applied: &[ItemResult]) -> Vec<pb::ItemResult> {
        assert_eq!(proposed.len(), applied.len(), "one ledger result per proposed item");
        let mut codes: Vec<Option<ItemResult>> = self.refused.iter().map(|c| c.map(ItemResult::new)).collect();
        for (index, result) in proposed.iter().zip(applied) {
            assert!(codes[*index].is_none(), "an item is refused up front or proposed, not both");
            codes[*index] = Some(*result);
        }
        let results: Vec<ItemResult> =
            codes.into_iter().map(|c| c.expect("every item is refused up front or proposed")).collect();
        self.to_proto(&results)
    }

    fn to_proto(&self, results: &[ItemResult]) -> Vec<pb::ItemResult> {
        assert_eq!(results.len(), self.ids.len());
        self.ids
            .iter()
            .zip(results)
            .enumerate()
            .map(|(index, (id, result))| pb::ItemResult {
                index: index as u32,
                id: id.clone(),
                code: convert::result_code(result.code),
                replayed: result.replayed,
            })
            .collect()
    }
}

fn commit_info(result: &CommandResult) -> pb::CommitInfo {
    pb::CommitInfo {
        journal_seq: result.journal_seq,
        ledger_time_ms: result.ledger_time_ms,
        raft_index: result.raft_index,
    }
}

impl LedgerService {
    /// Refuses early when this site cannot take writes (the state machine checks again), or
    /// when the RPO guardrail throttles writes because the DR lag neared its ceiling.
    fn check_writable(&self) -> Result<(), ApiError> {
        if let Some(refusal) = ledger::write_refusal(&self.replica.reader.meta().site) {
            return Err(ApiError::Refused(refusal));
        }
        if self.monitor.throttled() {
            let lag = self.monitor.lag();
            metrics::counter!("ledger_dr_throttled_writes_total").increment(1);
            return Err(ApiError::Throttled {
                lag_ms: lag.ms,
                lag_records: lag.records,
                ceiling_ms: self.monitor.config.lag_ceiling_ms,
            });
        }
        Ok(())
    }

    /// The shared write pipeline (see [`WriteBatch`]): refuses a whole atomic batch that has
    /// an item refused up front (the ledger's own rule, without proposing), proposes the
    /// valid items as `command(items)`, and merges the results.
    async fn write<T>(
        &self,
        caller: &Caller,
        mut batch: WriteBatch<T>,
        atomic: bool,
        command: impl FnOnce(Vec<T>) -> Command,
    ) -> Result<(Vec<pb::ItemResult>, pb::CommitInfo), ApiError> {
        if atomic && let Some(first_bad) = batch.refused.iter().position(Option::is_some) {
            let code = batch.refused[first_bad].expect("position of a refused item");
            let results = ledger::atomic_refused_up_front(batch.ids.len(), first_bad, code);
            return Ok((batch.to_proto(&results), pb::CommitInfo::default()));
        }
        let (proposed, items): (Vec<usize>, Vec<T>) = std::mem::take(&mut batch.valid).into_iter().unzip();
        if items.is_empty() {
            return Ok((batch.merge(&[], &[]), pb::CommitInfo::default()));
        }
        let result = self.propose(caller, command(items)).await?;
        Ok((batch.merge(&proposed, result.outcome.items()), commit_info(&result)))
    }

    async fn propose(&self, caller: &Caller, command: Command) -> Result<CommandResult, ApiError> {
        let envelope = Envelope { caller: caller.name.clone(), command };
        // Refuse what the ledger would refuse anyway (size, caller) before spending an entry.
        if let Some(refusal) = ledger::check_envelope(&envelope) {
            return Err(ApiError::Refused(refusal));
        }
        let result = self.replica.write(envelope).await?;
        if let Outcome::Refused(refusal) = &result.outcome {
            return Err(ApiError::Refused(refusal.clone()));
        }
        Ok(result)
    }

    fn read_info(&self, consistency: i32, applied_index: u64) -> pb::ReadInfo {
        let meta = self.replica.reader.meta();
        pb::ReadInfo {
            consistency,
            node_id: self.replica.id,
            applied_index,
            journal_seq: meta.journal.seq,
            ledger_time_ms: meta.journal.ledger_time_ms,
            site: meta.site.name.clone(),
            site_role: meta.site.role.name().to_string(),
            epoch: meta.site.epoch,
            watermark_seq: meta.site.watermark.seq,
            watermark_time_ms: meta.site.watermark.ledger_time_ms,
        }
    }

    /// Waits for the consistency the request asks for; returns the applied index read at.
    ///
    /// A linearizable read must reflect every write acknowledged before it, and only the
    /// active site acknowledges writes: a standby (or a fenced or superseded site) ships the
    /// journal asynchronously, so its copy may miss acknowledged writes. Such a site refuses a
    /// linearizable read with `site_not_active`, naming the active site as a write refusal
    /// does (the Rust client follows it); a `LOCAL` read is served anywhere, labelled with the
    /// site's watermark.
    async fn read_point(&self, consistency: i32) -> Result<u64, ApiError> {
        match pb::ReadConsistency::try_from(consistency) {
            Ok(pb::ReadConsistency::Linearizable) => {
                if let Some(refusal) = ledger::write_refusal(&self.replica.reader.meta().site) {
                    return Err(ApiError::ReadNotActive(refusal));
                }
                Ok(self.replica.read_barrier().await?)
            }
            Ok(pb::ReadConsistency::Local) => Ok(self.replica.reader.applied_index()),
            Err(_) => {
                Err(ApiError::invalid(ErrorCode::ConsistencyInvalid, format!("unknown read consistency {consistency}")))
            }
        }
    }
}

#[tonic::async_trait]
impl Ledger for LedgerService {
    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> ApiResult<pb::CreateAccountsResponse> {
        let started = Instant::now();
        let caller = self.auth.authorize(&request, Action::WriteLedger)?;
        let request = request.into_inner();
        check_batch_len(request.accounts.len(), "accounts")?;
        self.check_writable()?;
        let key_id = self.replica.reader.meta().site.data_key_id;
        let keys = self.keys.get();
        if key_id != 0 && !keys.has(key_id) {
            return Err(ApiError::DataKeyMissing { key_id }.into());
        }
        let ids = request.accounts.iter().map(|a| a.id.clone()).collect();
        let batch = WriteBatch::prepare(
            ids,
            request.accounts.iter().map(|a| {
                let new = convert::new_account(a, &keys, key_id)?;
                ledger::validate_new_account(&new)?;
                Ok(new)
            }),
        );
        let (results, commit) = self.write(&caller, batch, false, Command::CreateAccounts).await?;
        observe("CreateAccounts", started);
        Ok(Response::new(pb::CreateAccountsResponse { results, commit: Some(commit) }))
    }

    async fn update_accounts(
        &self,
        request: Request<pb::UpdateAccountsRequest>,
    ) -> ApiResult<pb::UpdateAccountsResponse> {
        let started = Instant::now();
        let caller = self.auth.authorize(&request, Action::WriteLedger)?;
        let request = request.into_inner();
        check_batch_len(request.updates.len(), "updates")?;
        self.check_writable()?;
        let ids = request.updates.iter().map(|u| u.id.clone()).collect();
        let batch = WriteBatch::prepare(ids, request.updates.iter().map(convert::account_update));
        let (results, commit) = self.write(&caller, batch, false, Command::UpdateAccounts).await?;
        observe("UpdateAccounts", started);
        Ok(Response::new(pb::UpdateAccountsResponse { results, commit: Some(commit) }))
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> ApiResult<pb::CreateTransfersResponse> {
        let started = Instant::now();
        let caller = self.auth.authorize(&request, Action::WriteLedger)?;
        let request = request.into_inner();
        check_batch_len(request.transfers.len(), "transfers")?;
        self.check_writable()?;
        let ids = request.transfers.iter().map(|t| t.id.clone()).collect();
        // Every stateless check the ledger makes, an id repeated in the batch included, so that
        // no request with a stateless failure reaches the ledger as an atomic batch.
        let mut seen = std::collections::BTreeSet::new();
        let batch = WriteBatch::prepare(
            ids,
            request.transfers.iter().map(|t| {
                let new = convert::new_transfer(t)?;
                ledger::validate_transfer(&new)?;
                if !seen.insert(new.id.clone()) {
                    return Err(ResultCode::IdDuplicateInBatch);
                }
                Ok(new)
            }),
        );
        let atomic = request.atomic;
        let (results, commit) =
            self.write(&caller, batch, atomic, |transfers| Command::CreateTransfers { transfers, atomic }).await?;
        for r in &results {
            let name = ResultCode::from_u32(r.code as u32).map_or("unknown", |c| c.name());
            metrics::counter!("ledger_transfer_results_total", "code" => name).increment(1);
        }
        observe("CreateTransfers", started);
        Ok(Response::new(pb::CreateTransfersResponse { results, commit: Some(commit) }))
    }

    async fn lookup_accounts(
        &self,
        request: Request<pb::LookupAccountsRequest>,
    ) -> ApiResult<pb::LookupAccountsResponse> {
        let started = Instant::now();
        let caller = self.auth.authorize(&request, Action::ReadLedger)?;
        let reveal = caller.may(Action::ReadPersonalData);
        let keys = self.keys.get();
        let request = request.into_inner();
        check_batch_len(request.ids.len(), "ids")?;
        let applied = self.read_point(request.consistency).await?;
        let mut accounts = Vec::new();
        let mut not_found = Vec::new();
        for id in &request.ids {
            match self.replica.reader.account(&AccountId::new(id.clone())) {
                Some(account) => accounts.push(convert::account_to_proto(&account, &keys, reveal)),
                None => not_found.push(id.clone()),
            }
        }
        observe("LookupAccounts", started);
        Ok(Response::new(pb::LookupAccountsResponse {
            accounts,
            not_found,
            read: Some(self.read_info(request.consistency, applied)),
        }))
    }

    async fn lookup_transfers(
        &self,
        request: Request<pb::LookupTransfersRequest>,
    ) -> ApiResult<pb::LookupTransfersResponse> {
        let started = Instant::now();
        self.auth.authorize(&request, Action::ReadLedger)?;
        let request = request.into_inner();
        check_batch_len(request.ids.len(), "ids")?;
        let applied = self.read_point(request.consistency).await?;
        let mut transfers = Vec::new();
        let mut not_found = Vec::new();
        for id in &request.ids {
            match self.replica.reader.transfer(&TransferId::new(id.clone())) {
                Some(transfer) => transfers.push(convert::transfer_to_proto(&transfer)),
                None => not_found.push(id.clone()),
            }
        }
        observe("LookupTransfers", started);
        Ok(Response::new(pb::LookupTransfersResponse {
            transfers,
            not_found,
            read: Some(self.read_info(request.consistency, applied)),
        }))
    }

    async fn get_account_history(
        &self,
        request: Request<pb::GetAccountHistoryRequest>,
    ) -> ApiResult<pb::GetAccountHistoryResponse> {
        let started = Instant::now();
        self.auth.authorize(&request, Action::ReadLedger)?;
        let request = request.into_inner();
        let account_id = AccountId::new(request.account_id.clone());
        if account_id.check().is_err() {
            return Err(ApiError::invalid(
                ErrorCode::IdInvalid,
                format!("account id {:?} is not a valid id", request.account_id),
            )
            .into());
        }
        let limit = match request.limit {
            0 => 100,
            n if n as usize > limits::HISTORY_PAGE_MAX => {
                return Err(ApiError::invalid(
                    ErrorCode::LimitInvalid,
                    format!("limit {n} is above the page maximum {}", limits::HISTORY_PAGE_MAX),
                )
                .into());
            }
            n => n as usize,
        };
        let applied = self.read_point(request.consistency).await?;
        let Some(account) = self.replica.reader.account(&account_id) else {
            return Err(ApiError::NotFound(format!("account {account_id} does not exist")).into());
        };
        let from = request.from_index.max(1);
        let rows = self.replica.reader.history(&account_id, from, limit);
        let next_index = match rows.last() {
            Some(last) if last.index < account.history_len => last.index + 1,
            _ => 0,
        };
        observe("GetAccountHistory", started);
        Ok(Response::new(pb::GetAccountHistoryResponse {
            rows: rows.iter().map(convert::history_to_proto).collect(),
            next_index,
            read: Some(self.read_info(request.consistency, applied)),
        }))
    }
}
