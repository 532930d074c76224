//! `ledger bench`: a closed-loop load generator.
//!
//! Opens `accounts` accounts (no balance limits, so every transfer can succeed), then runs
//! `concurrency` workers that each send one batch of `batch` single-phase transfers, wait for
//! the answer, and send the next, for `duration` or until `transfers` were newly committed
//! (whichever comes first). Reports committed transfers per second and the latency of each
//! request (one batch) at p50/p99/p999.
//!
//! With a `rate`, the run is paced: each worker sends on a fixed schedule so that all of them
//! together offer `rate` transfers per second, and latency is measured from the scheduled send
//! time, not the actual one. A server that falls behind is then charged for the queueing it
//! causes (no coordinated omission), which is what "p99 at half the maximum rate" needs.
//!
//! For a sustained run (issue 10) two more measurements can ride along:
//! - an `interval`: committed transfers per interval, as a timeline, so that the last
//!   interval's throughput can be compared with the first's;
//! - `reads_per_s`: a reader, apart from the writers, sends `GetAccountHistory` (a random bench
//!   account, the first [`HISTORY_PAGE_ROWS`] rows) and `LookupTransfers` ([`LOOKUP_BATCH_IDS`]
//!   random ids this run committed earlier) in turn, on a fixed schedule, and reports each
//!   RPC's latency apart (from the scheduled send time, like a paced writer), never mixed into
//!   the write latency.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use futures::StreamExt;
use ledger_proto::v1 as pb;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::ClientError;
use crate::LedgerClient;

/// Accounts per `CreateAccounts` request when opening the bench accounts.
const OPEN_ACCOUNTS_BATCH: usize = 500;
/// `CreateAccounts` requests in flight at once when opening the bench accounts.
const OPEN_ACCOUNTS_IN_FLIGHT: usize = 8;
/// Rows per `GetAccountHistory` page the reader asks for.
pub const HISTORY_PAGE_ROWS: u32 = 100;
/// Ids per `LookupTransfers` request the reader sends (the server takes up to 500).
pub const LOOKUP_BATCH_IDS: usize = 100;
/// Reads the reader keeps in flight at most; a read due while that many are outstanding is not
/// sent but counted (`skipped`), so that a stalled cluster does not pile up tasks without bound.
const READS_IN_FLIGHT_MAX: usize = 256;

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub concurrency: usize,
    pub batch: usize,
    /// How long to run; `None` runs until `transfers` (one of the two is required).
    pub duration: Option<Duration>,
    /// Stop once this many transfers were newly committed. Workers check before each request,
    /// so up to `concurrency * batch` more may commit from requests already in flight.
    pub transfers: Option<u64>,
    pub accounts: usize,
    pub currency: String,
    /// Prefix of the account ids. Passing an earlier run's id reuses its accounts.
    pub run_id: String,
    /// Prefix of the transfer ids: unique per invocation, so that reusing a run's accounts
    /// never reuses its transfer ids (those would be idempotent replays, not new transfers).
    pub transfer_prefix: String,
    /// Offered load in transfers per second across all workers; `None` runs closed-loop.
    pub rate: Option<f64>,
    /// Width of the committed-throughput timeline's buckets; `None` for no timeline.
    pub interval: Option<Duration>,
    /// Reads per second (both RPCs together) while writing; `None` for no reader.
    pub reads_per_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// The percentiles of `latencies_us`, which this sorts.
    fn of(latencies_us: &mut [u64]) -> Latency {
        latencies_us.sort_unstable();
        let mean_ms = if latencies_us.is_empty() {
            0.0
        } else {
            latencies_us.iter().sum::<u64>() as f64 / latencies_us.len() as f64 / 1000.0
        };
        Latency {
            p50_ms: percentile(latencies_us, 500),
            p90_ms: percentile(latencies_us, 900),
            p99_ms: percentile(latencies_us, 990),
            p999_ms: percentile(latencies_us, 999),
            max_ms: latencies_us.last().map_or(0.0, |us| *us as f64 / 1000.0),
            mean_ms,
        }
    }
}

/// Committed transfers in one interval of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Start of the interval, seconds from the start of the run (after the accounts opened).
    pub t_s: f64,
    /// Length of the interval: the bench's interval, shorter for the last one.
    pub duration_s: f64,
    /// Transfers newly committed by answers received in the interval.
    pub transfers: u64,
    pub transfers_per_s: f64,
    /// The slowest answer received in the interval (ms): where a stall falls in the run.
    pub max_latency_ms: f64,
}

/// One read RPC's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReadStats {
    /// Answered or failed (skipped reads are not sent, so not counted here).
    pub requests: u64,
    pub errors: u64,
    /// History rows returned, or transfers found.
    pub items: u64,
    /// Looked-up ids the node did not know (0 for history). Ids of a batch whose write failed
    /// may be among them.
    pub not_found: u64,
    pub requests_per_s: f64,
    /// From the scheduled send time to the answer, answered requests only.
    pub latency: Option<Latency>,
}

/// What the reader measured while the writers ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadReport {
    /// Offered reads per second, both RPCs together.
    pub target_per_s: f64,
    pub history_page_rows: u32,
    pub lookup_batch_ids: usize,
    /// Reads due but not sent: a lookup before this run committed anything, or any read while
    /// [`READS_IN_FLIGHT_MAX`] were outstanding.
    pub skipped: u64,
    pub get_account_history: ReadStats,
    pub lookup_transfers: ReadStats,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub concurrency: usize,
    pub batch: usize,
    pub accounts: usize,
    /// Offered load (transfers/s) of a paced run; absent for a closed-loop run.
    pub target_rate: Option<f64>,
    /// The `--transfers` target (present only when one was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_transfers: Option<u64>,
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
    /// The timeline's interval (present only with an interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    /// Committed transfers per interval, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelinePoint>>,
    /// transfers/s of the last full interval over the first's (present with two full
    /// intervals or more): issue 10 asks for at least 0.75.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_vs_first_interval: Option<f64>,
    /// The reader's figures (present only with a read rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<ReadReport>,
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

/// The id of worker `worker`'s `n`th transfer (from 1).
pub fn transfer_id(prefix: &str, worker: usize, n: u64) -> String {
    format!("{prefix}-{worker}-{n}")
}

/// Opens the bench accounts (idempotent: rerunning with the same run id reuses them), in
/// requests of [`OPEN_ACCOUNTS_BATCH`], [`OPEN_ACCOUNTS_IN_FLIGHT`] at a time (a million
/// accounts one request after the other took minutes).
pub async fn open_accounts(client: &LedgerClient, config: &BenchConfig) -> Result<(), ClientError> {
    let chunks: Vec<Vec<pb::NewAccount>> = (0..config.accounts)
        .map(|i| pb::NewAccount {
            id: account_id(&config.run_id, i),
            currency: config.currency.clone(),
            ..Default::default()
        })
        .collect::<Vec<_>>()
        .chunks(OPEN_ACCOUNTS_BATCH)
        .map(<[pb::NewAccount]>::to_vec)
        .collect();
    let mut responses = futures::stream::iter(chunks.into_iter().map(|accounts| client.create_accounts(accounts)))
        .buffer_unordered(OPEN_ACCOUNTS_IN_FLIGHT);
    while let Some(response) = responses.next().await {
        let response = response?;
        if let Some(bad) = response.results.iter().find(|r| r.code != pb::ResultCode::Ok as i32) {
            tracing::warn!(id = %bad.id, code = bad.code, "bench account not created");
        }
    }
    Ok(())
}

/// Committed transfers counted per interval of the run: bucket `i` holds the answers received
/// in `[i * interval, (i + 1) * interval)` from the start.
#[derive(Clone, Debug, PartialEq)]
struct CommitTimeline {
    interval: Duration,
    counts: Vec<u64>,
    /// The slowest answer per bucket, in microseconds.
    max_us: Vec<u64>,
}

impl CommitTimeline {
    fn new(interval: Duration) -> CommitTimeline {
        assert!(!interval.is_zero(), "a timeline needs a positive interval");
        CommitTimeline { interval, counts: Vec::new(), max_us: Vec::new() }
    }

    /// Counts `n` commits answered `elapsed` after the start, `latency_us` after it was due.
    fn add(&mut self, elapsed: Duration, n: u64, latency_us: u64) {
        let bucket = (elapsed.as_nanos() / self.interval.as_nanos()) as usize;
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
            self.max_us.resize(bucket + 1, 0);
        }
        self.counts[bucket] += n;
        self.max_us[bucket] = self.max_us[bucket].max(latency_us);
    }

    fn merge(&mut self, other: &CommitTimeline) {
        assert_eq!(self.interval, other.interval);
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
            self.max_us.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        for (mine, theirs) in self.max_us.iter_mut().zip(&other.max_us) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The timeline of a run that lasted `elapsed`: one point per interval begun, the last one
    /// cut at `elapsed` (a bucket past `elapsed`, which a commit answered at its very end can
    /// open, is folded into the last point).
    fn points(&self, elapsed: Duration) -> Vec<TimelinePoint> {
        let interval_s = self.interval.as_secs_f64();
        let elapsed_s = elapsed.as_secs_f64();
        let n_points = ((elapsed.as_nanos().div_ceil(self.interval.as_nanos())) as usize).max(1);
        let mut counts = self.counts.clone();
        let mut max_us = self.max_us.clone();
        if counts.len() > n_points {
            let beyond: u64 = counts.drain(n_points..).sum();
            counts[n_points - 1] += beyond;
            let beyond = max_us.drain(n_points..).max().unwrap_or(0);
            max_us[n_points - 1] = max_us[n_points - 1].max(beyond);
        }
        counts.resize(n_points, 0);
        max_us.resize(n_points, 0);
        let points: Vec<TimelinePoint> = counts
            .iter()
            .enumerate()
            .zip(&max_us)
            .map(|((i, transfers), max_us)| {
                let t_s = i as f64 * interval_s;
                let duration_s = (elapsed_s - t_s).clamp(0.0, interval_s);
                let transfers_per_s = if duration_s > 0.0 { *transfers as f64 / duration_s } else { 0.0 };
                let max_latency_ms = *max_us as f64 / 1000.0;
                TimelinePoint { t_s, duration_s, transfers: *transfers, transfers_per_s, max_latency_ms }
            })
            .collect();
        debug_assert_eq!(points.iter().map(|p| p.transfers).sum::<u64>(), self.counts.iter().sum::<u64>());
        points
    }
}

/// transfers/s of the last full interval over the first's; `None` with fewer than two full
/// intervals or an idle first one. An interval is full when it lasted the whole interval (to
/// a millisecond): the last one of a run usually does not, and a few seconds' worth would say
/// little about the last minute.
fn last_vs_first(points: &[TimelinePoint], interval: Duration) -> Option<f64> {
    let full_s = interval.as_secs_f64() - 0.001;
    let mut full = points.iter().filter(|p| p.duration_s >= full_s);
    let first = full.next()?;
    let last = full.next_back()?;
    (first.transfers_per_s > 0.0).then(|| last.transfers_per_s / first.transfers_per_s)
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
    /// Newly committed per interval, with an interval.
    timeline: Option<CommitTimeline>,
}

impl WorkerStats {
    /// Counts one answer's items: a replayed item is never a new commit, whatever its code.
    /// Returns the new commits.
    fn tally(&mut self, results: &[pb::ItemResult]) -> u64 {
        let ok_before = self.ok;
        for r in results {
            if r.replayed {
                self.replayed += 1;
            } else if r.code == pb::ResultCode::Ok as i32 {
                self.ok += 1;
            } else {
                self.rejected += 1;
            }
        }
        self.ok - ok_before
    }
}

/// What the workers and the reader share while the run lasts.
struct Shared {
    /// Transfers newly committed so far, by every worker.
    committed: AtomicU64,
    /// Per worker, the `n` of its last transfer in an answered request: its ids up to there
    /// were answered (the reader looks them up).
    answered: Vec<AtomicU64>,
}

impl Shared {
    fn new(concurrency: usize) -> Shared {
        Shared { committed: AtomicU64::new(0), answered: (0..concurrency).map(|_| AtomicU64::new(0)).collect() }
    }
}

/// When a run stops: at a deadline, at a commit target, or at whichever comes first.
#[derive(Clone, Copy, Debug)]
struct Stop {
    deadline: Option<Instant>,
    transfers: Option<u64>,
}

impl Stop {
    fn reached(&self, shared: &Shared) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.transfers.is_some_and(|t| shared.committed.load(Ordering::Relaxed) >= t)
    }
}

async fn worker(
    client: LedgerClient,
    config: BenchConfig,
    worker: usize,
    started: Instant,
    stop: Stop,
    shared: Arc<Shared>,
) -> WorkerStats {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut stats = WorkerStats { timeline: config.interval.map(CommitTimeline::new), ..WorkerStats::default() };
    let mut n = 0u64;
    // A paced worker sends request k at `first + k * interval`; workers are staggered across
    // one interval so that the cluster sees a steady stream, not bursts.
    let interval = config.rate.map(|rate| Duration::from_secs_f64((config.concurrency * config.batch) as f64 / rate));
    let first =
        Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(worker as f64 / config.concurrency as f64));
    let mut requests_sent = 0u32;
    while !stop.reached(&shared) {
        let scheduled = match interval {
            Some(interval) => {
                let at = first + interval * requests_sent;
                if stop.deadline.is_some_and(|deadline| at >= deadline) {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                if stop.reached(&shared) {
                    break;
                }
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
                    id: transfer_id(&config.transfer_prefix, worker, n),
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
                let latency_us = scheduled.elapsed().as_micros() as u64;
                stats.latencies_us.push(latency_us);
                let committed = stats.tally(&response.results);
                shared.committed.fetch_add(committed, Ordering::Relaxed);
                shared.answered[worker].store(n, Ordering::Relaxed);
                if let Some(timeline) = &mut stats.timeline {
                    timeline.add(started.elapsed(), committed, latency_us);
                }
            }
            Err(e) => {
                stats.errors += 1;
                tracing::warn!(error = %e, "bench request failed");
            }
        }
    }
    stats
}

/// Which read RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadKind {
    History,
    Lookup,
}

/// One read's outcome: its latency (µs from its scheduled time), items and ids not found; or
/// that it failed.
type ReadOutcome = (ReadKind, Result<(u64, u64, u64), ClientError>);

/// Tallies read outcomes per RPC.
#[derive(Default)]
struct ReadTally {
    history: (ReadStats, Vec<u64>),
    lookup: (ReadStats, Vec<u64>),
}

impl ReadTally {
    fn add(&mut self, (kind, outcome): ReadOutcome) {
        let (stats, latencies_us) = match kind {
            ReadKind::History => &mut self.history,
            ReadKind::Lookup => &mut self.lookup,
        };
        stats.requests += 1;
        match outcome {
            Ok((latency_us, items, not_found)) => {
                latencies_us.push(latency_us);
                stats.items += items;
                stats.not_found += not_found;
            }
            Err(e) => {
                stats.errors += 1;
                tracing::warn!(error = %e, ?kind, "bench read failed");
            }
        }
    }

    /// Each RPC's figures over a run of `elapsed_s`.
    fn finish(self, elapsed_s: f64) -> (ReadStats, ReadStats) {
        let finish = |(mut stats, mut latencies_us): (ReadStats, Vec<u64>)| {
            stats.requests_per_s = if elapsed_s > 0.0 { stats.requests as f64 / elapsed_s } else { 0.0 };
            stats.latency = (!latencies_us.is_empty()).then(|| Latency::of(&mut latencies_us));
            stats
        };
        (finish(self.history), finish(self.lookup))
    }
}

/// Up to [`LOOKUP_BATCH_IDS`] ids of transfers the workers have had answered, picked at random;
/// empty before any answer.
fn ids_to_look_up(rng: &mut Rng, prefix: &str, answered: &[AtomicU64]) -> Vec<String> {
    let workers: Vec<(usize, u64)> =
        answered.iter().enumerate().map(|(w, n)| (w, n.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect();
    if workers.is_empty() {
        return Vec::new();
    }
    (0..LOOKUP_BATCH_IDS)
        .map(|_| {
            let (worker, answered) = workers[rng.below(workers.len() as u64) as usize];
            transfer_id(prefix, worker, 1 + rng.below(answered))
        })
        .collect()
}

/// The reader: every `1 / reads_per_s` it sends one read, `GetAccountHistory` and
/// `LookupTransfers` in turn, each as its own task (so a slow answer does not delay the next
/// send), until `stop` changes; then waits for the reads in flight.
async fn reader(
    client: LedgerClient,
    config: BenchConfig,
    reads_per_s: f64,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReadReport {
    let period = Duration::from_secs_f64(1.0 / reads_per_s);
    let started = Instant::now();
    let mut rng = Rng::new(0xD1B5_4A32_D192_ED03);
    let mut in_flight: JoinSet<ReadOutcome> = JoinSet::new();
    let mut tally = ReadTally::default();
    let mut skipped = 0u64;
    let mut k = 0u32;
    loop {
        let at = started + period * k;
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = stop.changed() => break,
        }
        while let Some(done) = in_flight.try_join_next() {
            tally.add(done.expect("bench read does not panic"));
        }
        let kind = if k.is_multiple_of(2) { ReadKind::History } else { ReadKind::Lookup };
        k += 1;
        if in_flight.len() >= READS_IN_FLIGHT_MAX {
            skipped += 1;
            continue;
        }
        let client = client.clone();
        match kind {
            ReadKind::History => {
                let account = account_id(&config.run_id, rng.below(config.accounts as u64) as usize);
                in_flight.spawn(async move {
                    let result = client
                        .account_history(&account, 1, HISTORY_PAGE_ROWS, pb::ReadConsistency::Linearizable)
                        .await
                        .map(|page| (at.elapsed().as_micros() as u64, page.rows.len() as u64, 0));
                    (kind, result)
                });
            }
            ReadKind::Lookup => {
                let ids = ids_to_look_up(&mut rng, &config.transfer_prefix, &shared.answered);
                if ids.is_empty() {
                    skipped += 1;
                    continue;
                }
                in_flight.spawn(async move {
                    let result = client
                        .lookup_transfers(ids, pb::ReadConsistency::Linearizable)
                        .await
                        .map(|r| (at.elapsed().as_micros() as u64, r.transfers.len() as u64, r.not_found.len() as u64));
                    (kind, result)
                });
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        tally.add(done.expect("bench read does not panic"));
    }
    let (get_account_history, lookup_transfers) = tally.finish(started.elapsed().as_secs_f64());
    ReadReport {
        target_per_s: reads_per_s,
        history_page_rows: HISTORY_PAGE_ROWS,
        lookup_batch_ids: LOOKUP_BATCH_IDS,
        skipped,
        get_account_history,
        lookup_transfers,
    }
}

/// Runs the benchmark. The accounts must exist (see [`open_accounts`]).
pub async fn run(client: &LedgerClient, config: &BenchConfig) -> BenchReport {
    assert!(config.accounts >= 2, "need at least two accounts");
    assert!(config.concurrency >= 1 && config.batch >= 1);
    assert!(config.duration.is_some() || config.transfers.is_some(), "a run needs a duration or a transfer target");
    assert!(config.reads_per_s.is_none_or(|r| r.is_finite() && r > 0.0));
    let shared = Arc::new(Shared::new(config.concurrency));
    let started = Instant::now();
    let stop = Stop { deadline: config.duration.map(|d| started + d), transfers: config.transfers };
    let (stop_reader, reader_stopped) = tokio::sync::watch::channel(false);
    // The reader has its own channels, so that its reads never queue behind the writers'.
    let reader = config
        .reads_per_s
        .map(|r| tokio::spawn(reader(client.fork(), config.clone(), r, shared.clone(), reader_stopped)));
    let tasks: Vec<_> = (0..config.concurrency)
        .map(|w| tokio::spawn(worker(client.clone(), config.clone(), w, started, stop, shared.clone())))
        .collect();
    let mut latencies = Vec::new();
    let (mut requests, mut ok, mut rejected, mut replayed, mut errors) = (0, 0, 0, 0, 0);
    let mut timeline = config.interval.map(CommitTimeline::new);
    for task in tasks {
        let stats = task.await.expect("bench worker does not panic");
        latencies.extend(stats.latencies_us);
        requests += stats.requests;
        ok += stats.ok;
        rejected += stats.rejected;
        replayed += stats.replayed;
        errors += stats.errors;
        if let (Some(all), Some(mine)) = (&mut timeline, &stats.timeline) {
            all.merge(mine);
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_reader.send(true);
    let reads = match reader {
        Some(reader) => Some(reader.await.expect("bench reader does not panic")),
        None => None,
    };
    assert_eq!(ok, shared.committed.load(Ordering::Relaxed));
    let elapsed_s = elapsed.as_secs_f64();
    let timeline = timeline.map(|t| t.points(elapsed));
    BenchReport {
        concurrency: config.concurrency,
        batch: config.batch,
        accounts: config.accounts,
        target_rate: config.rate,
        target_transfers: config.transfers,
        duration_s: elapsed_s,
        requests,
        transfers_ok: ok,
        transfers_rejected: rejected,
        transfers_replayed: replayed,
        request_errors: errors,
        transfers_per_s: ok as f64 / elapsed_s,
        requests_per_s: requests as f64 / elapsed_s,
        latency: Latency::of(&mut latencies),
        endpoints: client.endpoints(),
        interval_s: config.interval.map(|i| i.as_secs_f64()),
        last_vs_first_interval: match (&timeline, config.interval) {
            (Some(points), Some(interval)) => last_vs_first(points, interval),
            _ => None,
        },
        timeline,
        reads,
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
        let committed = stats.tally(&[
            item(pb::ResultCode::Ok, false),
            item(pb::ResultCode::Ok, true),
            item(pb::ResultCode::ExceedsCredits, true),
            item(pb::ResultCode::ExceedsCredits, false),
        ]);
        assert_eq!((stats.ok, stats.replayed, stats.rejected), (1, 2, 1));
        assert_eq!(committed, 1, "the commit target and the timeline count new commits only");
    }

    /// Goal (issue 10, sustained run): each commit lands in the interval its answer arrived in,
    /// the workers' timelines add up (each interval's slowest answer is the slower worker's),
    /// and the last, partial interval is cut at the end of the run (its rate over its own
    /// length, not a whole interval's). Method: two workers' commits
    /// at chosen instants of a 2.5 s run in 1 s intervals.
    #[test]
    fn commits_are_bucketed_by_interval_and_the_last_one_is_partial() {
        let ms = Duration::from_millis;
        let mut a = CommitTimeline::new(ms(1000));
        a.add(ms(0), 100, 4_000);
        a.add(ms(999), 100, 9_000);
        a.add(ms(1000), 50, 2_000);
        let mut b = CommitTimeline::new(ms(1000));
        b.add(ms(1500), 0, 70_000);
        b.add(ms(2400), 30, 1_500);
        a.merge(&b);
        let points = a.points(ms(2500));
        let summary: Vec<(f64, f64, u64, f64, f64)> =
            points.iter().map(|p| (p.t_s, p.duration_s, p.transfers, p.transfers_per_s, p.max_latency_ms)).collect();
        assert_eq!(
            summary,
            vec![(0.0, 1.0, 200, 200.0, 9.0), (1.0, 1.0, 50, 50.0, 70.0), (2.0, 0.5, 30, 60.0, 1.5)],
            "each interval's slowest answer, from either worker"
        );
        assert_eq!(last_vs_first(&points, ms(1000)), Some(0.25), "the partial last interval is left out");

        // A commit answered as the run ended (bucket 3 of a 3 s run) is folded into the last
        // point; an idle interval still has its point.
        let mut c = CommitTimeline::new(ms(1000));
        c.add(ms(10), 7, 1_000);
        c.add(ms(3000), 1, 5_000);
        let points = c.points(ms(3000));
        assert_eq!(points.iter().map(|p| p.transfers).collect::<Vec<_>>(), vec![7, 0, 1]);
        assert_eq!(points.iter().map(|p| p.max_latency_ms).collect::<Vec<_>>(), vec![1.0, 0.0, 5.0]);
        assert_eq!(last_vs_first(&points, ms(1000)), Some(1.0 / 7.0));
        assert_eq!(last_vs_first(&points[..1], ms(1000)), None, "one full interval compares with nothing");
        assert_eq!(CommitTimeline::new(ms(1000)).points(ms(0)).len(), 1);
    }

    /// Goal (issue 10): each read RPC's latency is its own, never mixed with the other's or
    /// with the writes', and failures are counted but take no latency sample. Method: tally
    /// outcomes of both kinds and check each one's nearest-rank percentiles.
    #[test]
    fn read_latencies_are_reported_per_rpc() {
        let mut tally = ReadTally::default();
        for i in 1..=1000u64 {
            tally.add((ReadKind::History, Ok((i * 1000, 100, 0))));
        }
        tally.add((ReadKind::Lookup, Ok((5_000, 99, 1))));
        tally.add((ReadKind::Lookup, Ok((9_000, 100, 0))));
        tally.add((ReadKind::Lookup, Err(ClientError::NoEndpoints)));
        let (history, lookup) = tally.finish(10.0);
        assert_eq!((history.requests, history.errors, history.items, history.not_found), (1000, 0, 100_000, 0));
        let h = history.latency.unwrap();
        assert_eq!((h.p50_ms, h.p99_ms, h.p999_ms, h.max_ms), (500.0, 990.0, 999.0, 1000.0));
        assert_eq!(history.requests_per_s, 100.0);
        assert_eq!((lookup.requests, lookup.errors, lookup.items, lookup.not_found), (3, 1, 199, 1));
        let l = lookup.latency.unwrap();
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms, l.mean_ms), (5.0, 9.0, 9.0, 7.0));
        let (idle, _) = ReadTally::default().finish(1.0);
        assert_eq!(idle.latency, None, "no answer, no percentiles");
    }

    /// Goal: the reader looks up only ids the workers have had answered. Method: two workers,
    /// one answered up to its 3rd transfer, one not at all.
    #[test]
    fn lookups_pick_answered_ids_only() {
        let answered = [AtomicU64::new(0), AtomicU64::new(3)];
        let mut rng = Rng::new(11);
        let ids = ids_to_look_up(&mut rng, "t", &answered);
        assert_eq!(ids.len(), LOOKUP_BATCH_IDS);
        assert!(ids.iter().all(|id| ["t-1-1", "t-1-2", "t-1-3"].contains(&id.as_str())), "{ids:?}");
        assert!(ids_to_look_up(&mut rng, "t", &[AtomicU64::new(0)]).is_empty());
    }
}
