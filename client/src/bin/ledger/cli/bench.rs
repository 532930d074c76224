//! `ledger bench`: the load generator of `ledger_client::bench`, its flags and its report.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ledger_client::bench;

use super::Context;
use super::unique_id;

/// `--duration` when neither it nor `--transfers` is given.
const DURATION_S_DEFAULT: u64 = 30;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Transfers per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seconds [default: 30, or no limit with --transfers]. With both, the run stops at
    /// whichever comes first.
    #[arg(long)]
    duration: Option<u64>,
    /// Stop once this many transfers were newly committed (up to concurrency x batch more may
    /// commit from requests already in flight).
    #[arg(long)]
    transfers: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Account id prefix; unique per run by default. Give an earlier run's id to reuse its
    /// accounts; transfer ids are always new, so a rerun never counts replays as commits.
    #[arg(long)]
    run_id: Option<String>,
    /// Offered load in transfers/s: pace the workers instead of running closed-loop, and
    /// measure latency from each request's scheduled send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Report committed transfers per interval of this many seconds (a timeline; `timeline`
    /// and `last_vs_first_interval` in the JSON).
    #[arg(long)]
    interval_secs: Option<u64>,
    /// While writing, also read at this many requests/s (GetAccountHistory and
    /// LookupTransfers in turn, linearizable), each RPC's latency reported apart (`reads`).
    #[arg(long)]
    reads_per_s: Option<f64>,
}

pub async fn run(context: &Context, args: &BenchArgs) -> anyhow::Result<i32> {
    let duration = match (args.duration, args.transfers) {
        (Some(seconds), _) => Some(Duration::from_secs(seconds)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(DURATION_S_DEFAULT)),
    };
    let config = bench::BenchConfig {
        concurrency: args.concurrency,
        batch: args.batch,
        duration,
        transfers: args.transfers,
        accounts: args.accounts,
        currency: args.currency.clone(),
        run_id: args.run_id.clone().unwrap_or_else(|| unique_id("bench")),
        transfer_prefix: unique_id("t"),
        rate: args.rate,
        interval: args.interval_secs.map(Duration::from_secs),
        reads_per_s: args.reads_per_s,
    };
    if config.accounts < 2 || config.concurrency == 0 || config.batch == 0 {
        bail!("bench needs --accounts >= 2, --concurrency >= 1, --batch >= 1");
    }
    if config.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
        bail!("bench --rate must be a positive number of transfers per second");
    }
    if config.transfers == Some(0) {
        bail!("bench --transfers must be at least 1");
    }
    if args.interval_secs == Some(0) {
        bail!("bench --interval-secs must be at least 1");
    }
    if config.reads_per_s.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("bench --reads-per-s must be a positive number of reads per second");
    }
    eprintln!("opening {} accounts ...", config.accounts);
    bench::open_accounts(&context.client, &config).await?;
    let until = match (config.duration, config.transfers) {
        (Some(d), Some(t)) => format!("for {} s or {t} transfers", d.as_secs()),
        (Some(d), None) => format!("for {} s", d.as_secs()),
        (None, Some(t)) => format!("until {t} transfers"),
        (None, None) => unreachable!("a duration or a transfer target, checked above"),
    };
    eprintln!("running {} workers x batch {} {until} ...", config.concurrency, config.batch);
    let report = bench::run(&context.client, &config).await;
    if context.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "transfers/s {:.0}  requests/s {:.0}  ok {}  rejected {}  replayed {}  errors {}",
            report.transfers_per_s,
            report.requests_per_s,
            report.transfers_ok,
            report.transfers_rejected,
            report.transfers_replayed,
            report.request_errors
        );
        let l = &report.latency;
        println!(
            "request latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}  mean {:.2}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
        );
        for p in report.timeline.iter().flatten() {
            println!(
                "  t {:>7.0} s  +{:>6.1} s  transfers {:>10}  transfers/s {:.0}",
                p.t_s, p.duration_s, p.transfers, p.transfers_per_s
            );
        }
        if let Some(ratio) = report.last_vs_first_interval {
            println!("last full interval / first: {ratio:.3}");
        }
        if let Some(reads) = &report.reads {
            for (name, stats) in
                [("GetAccountHistory", &reads.get_account_history), ("LookupTransfers", &reads.lookup_transfers)]
            {
                let latency = stats.latency.as_ref().map_or("no answers".to_string(), |l| {
                    format!("p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}", l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms)
                });
                println!(
                    "{name}: {} requests ({:.1}/s), {} errors, {} not found; latency ms: {latency}",
                    stats.requests, stats.requests_per_s, stats.errors, stats.not_found
                );
            }
            if reads.skipped > 0 {
                println!("reads not sent: {}", reads.skipped);
            }
        }
    }
    let read_errors = report.reads.as_ref().map_or(0, |r| r.get_account_history.errors + r.lookup_transfers.errors);
    Ok(if report.request_errors == 0 && read_errors == 0 { 0 } else { 1 })
}
