//! `ledger bench`: the load generator of `ledger_client::bench`, its flags and its report.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ledger_client::bench;

use super::Context;
use super::unique_id;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Transfers per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
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
}

pub async fn run(context: &Context, args: &BenchArgs) -> anyhow::Result<i32> {
    let config = bench::BenchConfig {
        concurrency: args.concurrency,
        batch: args.batch,
        duration: Duration::from_secs(args.duration),
        accounts: args.accounts,
        currency: args.currency.clone(),
        run_id: args.run_id.clone().unwrap_or_else(|| unique_id("bench")),
        transfer_prefix: unique_id("t"),
        rate: args.rate,
    };
    if config.accounts < 2 || config.concurrency == 0 || config.batch == 0 {
        bail!("bench needs --accounts >= 2, --concurrency >= 1, --batch >= 1");
    }
    if config.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
        bail!("bench --rate must be a positive number of transfers per second");
    }
    eprintln!("opening {} accounts ...", config.accounts);
    bench::open_accounts(&context.client, &config).await?;
    eprintln!("running {} workers x batch {} for {} s ...", config.concurrency, config.batch, args.duration);
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
    }
    Ok(if report.request_errors == 0 { 0 } else { 1 })
}
