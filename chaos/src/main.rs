//! `ledger-chaos`: disaster drills against local clusters, with RPO/RTO reports.
//!
//! ```text
//! ledger-chaos list
//! ledger-chaos run --scenario leader-kill --duration 30 --seed 7 --report chaos-report
//! ledger-chaos run --all --duration 12 --report chaos-report
//! ledger-chaos run --scenario crash-storm --kills 300 --seed 7 --report crash-storm-report
//! ledger-chaos soak --minutes 60
//! ledger-chaos sim --seeds 1000          # the simulator; `--seed S` replays one with its trace
//! ```
//! Exits non-zero when an invariant is violated or a regulatory target is missed.

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use clap::Parser;
use clap::Subcommand;
use ledger_chaos::drill;
use ledger_chaos::drill::DrillConfig;
use ledger_chaos::drill::Scenario;
use ledger_chaos::sim;
use ledger_cluster::process::NodeLauncher;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "ledger-chaos", version, about = "Disaster drills with RPO/RTO reports")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The drills and what each does.
    List,
    /// Run one drill (--scenario) or all of them (--all).
    Run {
        #[arg(long, conflicts_with = "all")]
        scenario: Option<String>,
        #[arg(long)]
        all: bool,
        /// Seconds of load, inside which the fault happens.
        #[arg(long, default_value_t = 12)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "chaos-report")]
        report: PathBuf,
        /// One-way delay between the sites, ms.
        #[arg(long, default_value_t = 20)]
        wan_delay_ms: u64,
        /// One-way delay between zones (and to clients), ms.
        #[arg(long, default_value_t = 1)]
        zone_delay_ms: u64,
        /// Kills of the `crash-storm` scenario (hundreds for a soak).
        #[arg(long, default_value_t = drill::CRASH_STORM_KILLS)]
        kills: u32,
    },
    /// Random drills with random seeds until the time is up; every seed is printed so a
    /// failure can be replayed with `run --scenario NAME --seed N`.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Seed of the sequence of drills (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value = "chaos-soak")]
        report: PathBuf,
        /// Kills of each `crash-storm` drill.
        #[arg(long, default_value_t = drill::CRASH_STORM_KILLS)]
        kills: u32,
    },
    /// The seeded whole-cluster simulator: real node code on a simulated network, clock and
    /// schedule of faults, many seeds per minute. A failing seed prints the command that
    /// replays it.
    Sim {
        /// Seeds to run: `first-seed`, `first-seed + 1`, ...
        #[arg(long, default_value_t = 100, conflicts_with = "seed")]
        seeds: u64,
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Run this one seed and print its trace.
        #[arg(long)]
        seed: Option<u64>,
        /// Simulated milliseconds of load under faults per seed.
        #[arg(long, default_value_t = 12_000)]
        chaos_ms: u64,
        /// Seeds run at once, each on its own thread (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Where the seeds' data dirs go (default: /dev/shm if there is one, else the temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print every seed's trace, not only failing ones.
        #[arg(long)]
        trace: bool,
        /// Sabotage: crashed nodes come back with an empty data dir. The checkers must fail.
        #[arg(long)]
        sabotage_amnesia: bool,
    },
    /// Run one node (the drills start nodes through this binary).
    #[command(hide = true)]
    Node(ledger_node::cli::NodeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => return ledger_node::cli::run_node(args),
        Command::Sim { seeds, first_seed, seed, chaos_ms, jobs, dir, trace, sabotage_amnesia } => {
            let (first, count, trace) = match seed {
                Some(seed) => (seed, 1, true),
                None => (first_seed, seeds, trace),
            };
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let options = sim::SimOptions {
                chaos_ms,
                amnesia: sabotage_amnesia,
                ..sim::SimOptions::new(first, &dir.unwrap_or_else(sim::default_dir))
            };
            let summary = sim::run_many(first..first + count, jobs, &options, |report| {
                sim::print_report(report, trace, &options)
            });
            println!("{summary}");
            std::process::exit(if summary.failed.is_empty() { 0 } else { 1 });
        }
        _ => {}
    }
    let runtime = ledger_cluster::cli::tool_runtime()?;
    runtime.block_on(async move {
        match cli.command {
            Command::List => {
                for scenario in Scenario::ALL {
                    println!("{:<20} {}", scenario.name(), scenario.description());
                }
                Ok(())
            }
            Command::Run { scenario, all, duration, seed, report, wan_delay_ms, zone_delay_ms, kills } => {
                let scenarios: Vec<Scenario> = if all {
                    Scenario::ALL.to_vec()
                } else {
                    let name = scenario.ok_or_else(|| anyhow::anyhow!("pass --scenario NAME or --all"))?;
                    vec![Scenario::parse(&name).ok_or_else(|| anyhow::anyhow!("unknown scenario {name}; see `list`"))?]
                };
                let base = DrillConfig {
                    scenario: scenarios[0],
                    duration: Duration::from_secs(duration),
                    seed,
                    report_dir: report.clone(),
                    wan_delay: Duration::from_millis(wan_delay_ms),
                    zone_delay: Duration::from_millis(zone_delay_ms),
                    launcher: NodeLauncher::this_executable()?,
                    kills,
                };
                let reports = drill::run_many(&scenarios, &base).await;
                println!("{}", drill::summary_markdown(&reports));
                println!("reports in {}", report.display());
                if reports.iter().all(|r| r.passed) { Ok(()) } else { anyhow::bail!("a drill failed") }
            }
            Command::Soak { minutes, duration, seed, report, kills } => {
                let mut state = seed.unwrap_or_else(ledger_chaos::workload::wall_ms) | 1;
                let deadline = Instant::now() + Duration::from_secs(minutes * 60);
                let mut n = 0;
                while Instant::now() < deadline {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let scenario = Scenario::ALL[(state % Scenario::ALL.len() as u64) as usize];
                    let drill_seed = state >> 8;
                    n += 1;
                    println!("soak #{n}: {} --seed {drill_seed}", scenario.name());
                    let config = DrillConfig {
                        scenario,
                        duration: Duration::from_secs(duration),
                        seed: drill_seed,
                        report_dir: report.join(format!("{n:04}-{}", scenario.name())),
                        wan_delay: Duration::from_millis(20),
                        zone_delay: Duration::from_millis(1),
                        launcher: NodeLauncher::this_executable()?,
                        kills,
                    };
                    let result = drill::run(&config).await;
                    match result {
                        Ok(r) if r.passed => println!("  {}", drill::one_line(&r)),
                        Ok(_) | Err(_) => {
                            println!(
                                "  FAIL: replay with `ledger-chaos run --scenario {} --seed {drill_seed} --duration {duration} --kills {kills}`; report in {}",
                                scenario.name(),
                                config.report_dir.display()
                            );
                            anyhow::bail!("soak stopped at a failed drill");
                        }
                    }
                }
                println!("soak: {n} drills passed");
                Ok(())
            }
            Command::Node(_) | Command::Sim { .. } => unreachable!("handled above"),
        }
    })
}
