//! A workload of concurrent clients posting single-phase and two-phase transfers among a set
//! of accounts. Every acknowledged item is recorded with its wall-clock acknowledgement time;
//! the checker reads this history.
//!
//! A batch whose call fails is resent with the same ids until it is acknowledged or the
//! workload stops: what is sent and never acknowledged may or may not exist, and the checker
//! only requires that it exists at most once.

use std::future::Future;
use std::time::Duration;

use ledger_client::LedgerClient;
use ledger_client::bench::Rng;
use ledger_client::proto as pb;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// Transfers per request.
    pub batch: usize,
    /// Accounts to move money among (all in one currency).
    pub accounts: Vec<String>,
    /// One in `pending_every` transfers is two-phase (0: none).
    pub pending_every: u64,
    /// Pause between requests of one client (0: closed loop).
    pub pause: Duration,
    /// Prefix of every id; distinct per run.
    pub run_id: String,
    pub seed: u64,
}

/// One acknowledged item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub id: String,
    /// "posted", "pending", "post_pending", "void_pending".
    pub kind: String,
    pub debit: String,
    pub credit: String,
    pub amount: String,
    pub pending_id: String,
    /// Result name ("ok", "exceeds_credits", ...).
    pub result: String,
    pub replayed: bool,
    pub journal_seq: u64,
    /// When the batch was first sent (it may have been resent until acknowledged).
    pub sent_at_ms: u64,
    pub acked_at_ms: u64,
    /// The workload client that sent it.
    pub client: usize,
    /// The endpoint that answered.
    pub endpoint: String,
}

/// What the workload did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub acks: Vec<Ack>,
    /// Requests sent, including retries.
    pub attempts: u64,
    /// Attempts that failed (timeouts, unavailable, ...).
    pub failed_attempts: u64,
    /// Ids sent in batches that were never acknowledged.
    pub unacked: Vec<String>,
}

impl History {
    pub fn ok(&self) -> impl Iterator<Item = &Ack> {
        self.acks.iter().filter(|a| a.result == "ok")
    }

    /// Acknowledgements after `t_ms` (wall clock).
    pub fn first_ok_after(&self, t_ms: u64) -> Option<u64> {
        self.ok().map(|a| a.acked_at_ms).filter(|at| *at >= t_ms).min()
    }

    /// Reads a history written by [`History::write_jsonl`] (acks only).
    pub fn read_jsonl(path: &std::path::Path) -> std::io::Result<History> {
        let text = std::fs::read_to_string(path)?;
        let mut history = History::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let ack: Ack = serde_json::from_str(line).map_err(std::io::Error::other)?;
            history.acks.push(ack);
        }
        Ok(history)
    }

    pub fn write_jsonl(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for ack in &self.acks {
            writeln!(out, "{}", serde_json::to_string(ack).expect("ack serializes"))?;
        }
        out.flush()
    }
}

fn result_name(code: i32) -> String {
    pb::ResultCode::try_from(code)
        .map(|c| c.as_str_name().trim_start_matches("RESULT_CODE_").to_lowercase())
        .unwrap_or_else(|_| format!("code_{code}"))
}

/// Where a workload client sends its batches: a gRPC [`LedgerClient`] against real processes,
/// or the simulator's in-process client (`sim::SimClient`).
pub trait TransferSink: Send + Sync + 'static {
    /// Posts a batch (not atomic), as `CreateTransfers`.
    fn create_transfers(
        &self,
        transfers: Vec<pb::NewTransfer>,
    ) -> impl Future<Output = Result<pb::CreateTransfersResponse, String>> + Send;

    /// The node that answered (or will be tried) now.
    fn endpoint(&self) -> String;

    /// Milliseconds since the Unix epoch, for the acknowledgement times.
    fn now_ms(&self) -> u64 {
        wall_ms()
    }
}

impl TransferSink for LedgerClient {
    async fn create_transfers(&self, transfers: Vec<pb::NewTransfer>) -> Result<pb::CreateTransfersResponse, String> {
        LedgerClient::create_transfers(self, transfers, false).await.map_err(|e| e.to_string())
    }

    fn endpoint(&self) -> String {
        self.preferred_endpoint()
    }
}

/// A running workload; [`Workload::stop`] returns its history.
pub struct Workload {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<History>>,
}

impl Workload {
    /// Starts `config.clients` client tasks; client `i` uses `clients[i % clients.len()]`.
    pub fn start(clients: Vec<LedgerClient>, config: WorkloadConfig) -> Workload {
        assert!(!clients.is_empty());
        let sinks = (0..config.clients).map(|i| clients[i % clients.len()].fork()).collect();
        Workload::start_with(sinks, config)
    }

    /// Starts one client task per sink (`config.clients` is not used).
    pub fn start_with<S: TransferSink>(sinks: Vec<S>, config: WorkloadConfig) -> Workload {
        assert!(!sinks.is_empty() && config.accounts.len() >= 2 && config.batch >= 1);
        let (stop, stopped) = watch::channel(false);
        let tasks = sinks
            .into_iter()
            .enumerate()
            .map(|(i, sink)| tokio::spawn(run_client(sink, config.clone(), i, stopped.clone())))
            .collect();
        Workload { stop, tasks }
    }

    /// Stops sending new batches; a batch in flight is retried until acknowledged or `drain`
    /// passes. Returns the merged history.
    pub async fn stop(self, drain: Duration) -> History {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + drain;
        let mut history = History::default();
        for task in self.tasks {
            let remaining = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
            match tokio::time::timeout(remaining, task).await {
                Ok(Ok(h)) => {
                    history.acks.extend(h.acks);
                    history.attempts += h.attempts;
                    history.failed_attempts += h.failed_attempts;
                    history.unacked.extend(h.unacked);
                }
                Ok(Err(e)) => panic!("workload client panicked: {e}"),
                Err(_) => tracing::warn!("a workload client did not finish draining"),
            }
        }
        history.acks.sort_by_key(|a| a.acked_at_ms);
        history
    }
}

async fn run_client<S: TransferSink>(
    client: S,
    config: WorkloadConfig,
    index: usize,
    stopped: watch::Receiver<bool>,
) -> History {
    let mut rng = Rng::new(config.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index as u64 + 1)) | 1);
    let mut history = History::default();
    let mut n = 0u64;
    // Pending transfers this client created and has not resolved: (id, debit, credit, amount).
    let mut open_pending: Vec<String> = Vec::new();
    let accounts = &config.accounts;
    while !*stopped.borrow() {
        let mut batch = Vec::with_capacity(config.batch);
        for _ in 0..config.batch {
            n += 1;
            let id = format!("{}-c{index}-{n}", config.run_id);
            let roll = rng.below(100);
            let t = if config.pending_every > 0 && !open_pending.is_empty() && roll < 15 {
                let pending_id = open_pending.swap_remove(rng.below(open_pending.len() as u64) as usize);
                if roll < 10 {
                    pb::NewTransfer { id, kind: pb::TransferKind::PostPending as i32, pending_id, ..Default::default() }
                } else {
                    pb::NewTransfer { id, kind: pb::TransferKind::VoidPending as i32, pending_id, ..Default::default() }
                }
            } else {
                let debit = rng.below(accounts.len() as u64) as usize;
                let credit = (debit + 1 + rng.below(accounts.len() as u64 - 1) as usize) % accounts.len();
                let cents = 1 + rng.below(2_000);
                let pending = config.pending_every > 0 && n.is_multiple_of(config.pending_every);
                pb::NewTransfer {
                    id,
                    debit_account_id: accounts[debit].clone(),
                    credit_account_id: accounts[credit].clone(),
                    amount: format!("{}.{:02}", cents / 100, cents % 100),
                    kind: if pending { pb::TransferKind::Pending } else { pb::TransferKind::Posted } as i32,
                    timeout_ms: if pending { 1_000 + rng.below(20_000) } else { 0 },
                    ..Default::default()
                }
            };
            batch.push(t);
        }
        // Send until acknowledged (same ids every time), or give up once stopped for long.
        let mut give_up_at: Option<Instant> = None;
        let sent_at_ms = client.now_ms();
        loop {
            history.attempts += 1;
            match client.create_transfers(batch.clone()).await {
                Ok(response) => {
                    let at = client.now_ms();
                    let endpoint = client.endpoint();
                    let seq = response.commit.map_or(0, |c| c.journal_seq);
                    for (t, r) in batch.iter().zip(&response.results) {
                        let result = result_name(r.code);
                        if result == "ok" && t.kind == pb::TransferKind::Pending as i32 {
                            open_pending.push(t.id.clone());
                        }
                        history.acks.push(Ack {
                            id: t.id.clone(),
                            kind: pb::TransferKind::try_from(t.kind)
                                .map(|k| k.as_str_name().trim_start_matches("TRANSFER_KIND_").to_lowercase())
                                .unwrap_or_default(),
                            debit: t.debit_account_id.clone(),
                            credit: t.credit_account_id.clone(),
                            amount: t.amount.clone(),
                            pending_id: t.pending_id.clone(),
                            result,
                            replayed: r.replayed,
                            journal_seq: seq,
                            sent_at_ms,
                            acked_at_ms: at,
                            client: index,
                            endpoint: endpoint.clone(),
                        });
                    }
                    break;
                }
                Err(e) => {
                    history.failed_attempts += 1;
                    tracing::debug!(client = index, error = %e, "workload request failed; resending the same ids");
                    if *stopped.borrow() {
                        let at = *give_up_at.get_or_insert_with(|| Instant::now() + Duration::from_secs(20));
                        if Instant::now() >= at {
                            history.unacked.extend(batch.iter().map(|t| t.id.clone()));
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if !config.pause.is_zero() {
            tokio::time::sleep(config.pause).await;
        }
    }
    history
}
