//! `ledger bench`: a closed-loop load generator.
//!
//! Opens `accounts` accounts (no balance limits, so every transfer can succeed), then runs
//! `concurrency` workers that each send one batch of `batch` single-phase transfers, wait for
//! the answer, and send the next, for `duration`. Reports committed transfers per second and
//! the latency of each request (one batch) at p50/p99/p999.
//!
//! With a `rate`, the run is paced: each worker sends on a fixed schedule so that all of them
//! together offer `rate` transfers per second, and latency is measured from the scheduled send
//! time, not the actual one. A server that falls behind is then charged for the queueing it
//! causes (no coordinated omission), which is what "p99 at half the maximum rate" needs.

use std::time::Duration;
use std::time::Instant;

use ledger_proto::v1 as pb;
use serde::Serialize;

use crate::ClientError;
use crate::LedgerClient;

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub concurrency: usize,
    pub batch: usize,
    pub duration: Duration,
    pub accounts: usize,
    pub currency: String,
    /// Prefix of the account ids. Passing an earlier run's id reuses its accounts.
    pub run_id: String,
    /// Prefix of the transfer ids: unique per invocation, so that reusing a run's accounts
    /// never reuses its transfer ids (those would be idempotent replays, not new transfers).
    pub transfer_prefix: String,
    /// Offered load in transfers per second across all workers; `None` runs closed-loop.
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub concurrency: usize,
    pub batch: usize,
    pub accounts: usize,
    /// Offered load (transfers/s) of a paced run; absent for a closed-loop run.
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    /// Transfers newly committed by this run: the only ones `transfers_per_s` counts.
    pub transfers_ok: u64,
    pub transfers_rejected: u64,
    /// Answers that replayed an earlier result (`replayed`: the id existed before this run's
    /// request), counted apart and never as committed.
    pub transfers_replayed: u64,
    pub request_errors: u64,
    pub transfers_per_s: f64,
    pub requests_per_s: f64,
    pub latency: Latency,
    pub endpoints: Vec<String>,
}

/// xorshift64*: a small seeded generator, enough to pick account pairs and amounts in load
/// generators (`ledger bench`, the chaos workload, the micro-benchmarks); not for anything
/// secret.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (a zero seed would stay zero, so the low bit is set).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Nearest-rank percentile, `per_mille` in thousandths (990 = p99), in integers so that p99.9
/// of 1000 samples is the 999th, not a float rounding away.
fn percentile(sorted_us: &[u64], per_mille: usize) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (per_mille * sorted_us.len()).div_ceil(1000);
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

pub fn account_id(run_id: &str, i: usize) -> String {
    format!("{run_id}-acct-{i}")
}

/// Opens the bench accounts (idempotent: rerunning with the same run id reuses them).
pub async fn open_accounts(client: &LedgerClient, config: &BenchConfig) -> Result<(), ClientError> {
    let ids: Vec<String> = (0..config.accounts).map(|i| account_id(&config.run_id, i)).collect();
    for chunk in ids.chunks(500) {
        let accounts = chunk
            .iter()
            .map(|id| pb::NewAccount { id: id.clone(), currency: config.currency.clone(), ..Default::default() })
            .collect();
        let response = client.create_accounts(accounts).await?;
        if let Some(bad) = response.results.iter().find(|r| r.code != pb::ResultCode::Ok as i32) {
            tracing::warn!(id = %bad.id, code = bad.code, "bench account not created");
        }
    }
    Ok(())
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u64>,
    requests: u64,
    /// Newly committed.
    ok: u64,
    rejected: u64,
    /// Answered from an earlier result of the same id.
    replayed: u64,
    errors: u64,
}

impl WorkerStats {
    /// Counts one answer's items: a replayed item is never a new commit, whatever its code.
    fn tally(&mut self, results: &[pb::ItemResult]) {
        for r in results {
            if r.replayed {
                self.replayed += 1;
            } else if r.code == pb::ResultCode::Ok as i32 {
                self.ok += 1;
            } else {
                self.rejected += 1;
            }
        }
    }
}

async fn worker(client: LedgerClient, config: BenchConfig, worker: usize, deadline: Instant) -> WorkerStats {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut stats = WorkerStats::default();
    let mut n = 0u64;
    // A paced worker sends request k at `first + k * interval`; workers are staggered across
    // one interval so that the cluster sees a steady stream, not bursts.
    let interval = config.rate.map(|rate| Duration::from_secs_f64((config.concurrency * config.batch) as f64 / rate));
    let first =
        Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(worker as f64 / config.concurrency as f64));
    let mut requests_sent = 0u32;
    while Instant::now() < deadline {
        let scheduled = match interval {
            Some(interval) => {
                let at = first + interval * requests_sent;
                if at >= deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        requests_sent += 1;
        let transfers: Vec<pb::NewTransfer> = (0..config.batch)
            .map(|_| {
                n += 1;
                let accounts = config.accounts as u64;
                let debit = rng.below(accounts);
                let credit = ((debit + 1 + rng.below(accounts - 1)) % accounts) as usize;
                let debit = debit as usize;
                pb::NewTransfer {
                    id: format!("{}-{worker}-{n}", config.transfer_prefix),
                    debit_account_id: account_id(&config.run_id, debit),
                    credit_account_id: account_id(&config.run_id, credit),
                    amount: "1.00".into(),
                    ..Default::default()
                }
            })
            .collect();
        let result = client.create_transfers(transfers, false).await;
        stats.requests += 1;
        match result {
            Ok(response) => {
                stats.latencies_us.push(scheduled.elapsed().as_micros() as u64);
                stats.tally(&response.results);
            }
            Err(e) => {
                stats.errors += 1;
                tracing::warn!(error = %e, "bench request failed");
            }
        }
    }
    stats
}

/// Runs the benchmark. The accounts must exist (see [`open_accounts`]).
pub async fn run(client: &LedgerClient, config: &BenchConfig) -> BenchReport {
    assert!(config.accounts >= 2, "need at least two accounts");
    assert!(config.concurrency >= 1 && config.batch >= 1);
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> =
        (0..config.concurrency).map(|w| tokio::spawn(worker(client.clone(), config.clone(), w, deadline))).collect();
    let mut latencies = Vec::new();
    let (mut requests, mut ok, mut rejected, mut replayed, mut errors) = (0, 0, 0, 0, 0);
    for task in tasks {
        let stats = task.await.expect("bench worker does not panic");
        latencies.extend(stats.latencies_us);
        requests += stats.requests;
        ok += stats.ok;
        rejected += stats.rejected;
        replayed += stats.replayed;
        errors += stats.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let mean_ms =
        if latencies.is_empty() { 0.0 } else { latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / 1000.0 };
    BenchReport {
        concurrency: config.concurrency,
        batch: config.batch,
        accounts: config.accounts,
        target_rate: config.rate,
        duration_s: elapsed,
        requests,
        transfers_ok: ok,
        transfers_rejected: rejected,
        transfers_replayed: replayed,
        request_errors: errors,
        transfers_per_s: ok as f64 / elapsed,
        requests_per_s: requests as f64 / elapsed,
        latency: Latency {
            p50_ms: percentile(&latencies, 500),
            p90_ms: percentile(&latencies, 900),
            p99_ms: percentile(&latencies, 990),
            p999_ms: percentile(&latencies, 999),
            max_ms: latencies.last().map_or(0.0, |us| *us as f64 / 1000.0),
            mean_ms,
        },
        endpoints: client.endpoints(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 500), 500.0);
        assert_eq!(percentile(&v, 990), 990.0);
        assert_eq!(percentile(&v, 999), 999.0);
        assert_eq!(percentile(&v, 1000), 1000.0);
        assert_eq!(percentile(&[], 500), 0.0);
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }

    /// Goal (issue 10): a replayed answer is never counted as a committed transfer, whatever
    /// its code (a rerun with an earlier run's ids once reported 66,000/s of replays).
    #[test]
    fn replayed_answers_are_counted_apart_from_commits() {
        let item =
            |code: pb::ResultCode, replayed: bool| pb::ItemResult { code: code as i32, replayed, ..Default::default() };
        let mut stats = WorkerStats::default();
        stats.tally(&[
            item(pb::ResultCode::Ok, false),
            item(pb::ResultCode::Ok, true),
            item(pb::ResultCode::ExceedsCredits, true),
            item(pb::ResultCode::ExceedsCredits, false),
        ]);
        assert_eq!((stats.ok, stats.replayed, stats.rejected), (1, 2, 1));
    }
}
