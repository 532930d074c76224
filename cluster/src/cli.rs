//! The `ledger-cluster` command line (the `ledger-cluster` binary calls [`main`]): start a
//! local cluster, show its status, operate it. Also runs a node (`ledger-cluster node`), so
//! that `up` needs no other binary.

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use crate::certs::CertsDir;
use crate::dr;
use crate::launcher::LocalCluster;
use crate::launcher::Security;
use crate::process::NodeLauncher;
use crate::status;
use crate::topology::Topology;
use anyhow::Context;
use clap::Parser;
use clap::Subcommand;
use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;

#[derive(Parser, Debug)]
#[command(name = "ledger-cluster", version, about = "Run and operate ledger clusters")]
struct Cli {
    /// Topology file (default: the embedded local topology, primary + DR on loopback).
    #[arg(long, global = true)]
    topology: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The `up` data folder, where the development certificates are (`<data>/certs`).
    #[arg(long, global = true, default_value = "ledger-data")]
    data: PathBuf,
    /// Which client certificate of `<data>/certs/clients` to present.
    #[arg(long = "as", global = true, default_value = "operator-1")]
    identity: String,
    /// CA, certificate and key to present instead of `--data`/`--as`.
    #[arg(long, env = "LEDGER_CA", global = true)]
    ca: Option<PathBuf>,
    #[arg(long, env = "LEDGER_CERT", global = true)]
    cert: Option<PathBuf>,
    #[arg(long, env = "LEDGER_KEY", global = true)]
    key: Option<PathBuf>,
    /// Plaintext, no client certificate (clusters started with `up --insecure`).
    #[arg(long, global = true)]
    insecure: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start every node of the topology on this machine, form the sites, and run until
    /// Ctrl-C or SIGTERM, then stop every node.
    Up,
    /// Make a development CA, node certificates and one client certificate per role.
    Certs {
        #[arg(long)]
        out: PathBuf,
    },
    /// Status of every node of every site.
    Status,
    /// Add a node to a site (learner, then voter).
    AddNode {
        #[arg(long)]
        site: String,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        client_addr: String,
        #[arg(long)]
        peer_addr: String,
        #[arg(long)]
        learner_only: bool,
    },
    /// Remove a node from a site.
    RemoveNode {
        #[arg(long)]
        site: String,
        #[arg(long)]
        id: u64,
    },
    /// Move a site's leadership to another voter.
    TransferLeader {
        #[arg(long)]
        site: String,
        #[arg(long)]
        to: u64,
    },
    /// Disaster recovery: approvals, switchover, failover, failback.
    #[command(subcommand)]
    Dr(DrCmd),
    /// Data keys sealing personal data at rest.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// This site's own log of site operations and admin events.
    SiteLog {
        #[arg(long)]
        site: String,
    },
    /// Run one node (used by `up`; same flags as `ledger-node`).
    #[command(hide = true)]
    Node(ledger_node::cli::NodeArgs),
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Add a fresh key to the key file (`<data>/keys/data-keys.toml`, or `--file`). Nodes
    /// reload it within seconds; it seals nothing until `rotate`.
    Add {
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Make every site seal new personal data with key `--key-id` (dual control: two
    /// operators approve `--request-id` for `rotate_key` first). Old keys still open old data.
    Rotate {
        #[arg(long)]
        key_id: u32,
        #[arg(long)]
        request_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum DrCmd {
    /// Stop the active site taking writes (what a switchover does first).
    Fence {
        #[arg(long)]
        site: String,
    },
    /// Let a fenced active site take writes again (abort a switchover).
    Unfence {
        #[arg(long)]
        site: String,
    },
    /// Approve a request id for an action, as the operator of `--as` (dual control: two
    /// different operators must approve before the operation runs).
    Approve {
        #[arg(long)]
        request_id: String,
        /// switchover, promote, failback or rotate_key.
        #[arg(long)]
        action: String,
        /// Sites to record the approval on (default: every site of the topology).
        #[arg(long, value_delimiter = ',')]
        sites: Vec<String>,
    },
    /// Planned switchover, zero loss: fence the active site, wait until the standby holds
    /// every record, promote it, make the old active site its standby.
    Switchover {
        /// Default: the site that is active now.
        #[arg(long)]
        from: Option<String>,
        /// Default: the standby of `from`.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        request_id: String,
    },
    /// The active site is lost: promote the standby with what it has and print the RPO point.
    Promote {
        /// Required: this skips the old active site's consent.
        #[arg(long)]
        force: bool,
        /// Default: the standby site.
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        request_id: String,
    },
    /// The old active site is back: fence it, export its records past the branch point as a
    /// reconciliation report (JSON and CSV), resync it as a standby of the active site.
    Failback {
        /// The site that lost the failover.
        #[arg(long)]
        old: String,
        /// Default: the site that is active now.
        #[arg(long)]
        active: Option<String>,
        #[arg(long)]
        request_id: String,
        /// Folder for reconciliation.json and reconciliation.csv.
        #[arg(long)]
        report_dir: PathBuf,
    },
}

/// The site whose nodes report `role` (live, not from the topology file).
async fn site_with_role(sites: &dr::Sites, role: &str) -> anyhow::Result<String> {
    for site in &sites.topology.sites {
        if let Ok(status) = sites.status(&site.name).await
            && status.site.as_ref().is_some_and(|s| s.role == role)
        {
            return Ok(site.name.clone());
        }
    }
    anyhow::bail!("no reachable site is {role}")
}

fn print_report<T: serde::Serialize>(cli: &Cli, report: &T, text: String) -> anyhow::Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

fn steps_text(steps: &[dr::Step]) -> String {
    steps.iter().map(|s| format!("  {:<10} {:>7} ms  {}", s.step, s.ms, s.detail)).collect::<Vec<_>>().join("\n")
}

async fn run_dr(cli: &Cli, cmd: &DrCmd) -> anyhow::Result<()> {
    let topology = topology(cli)?;
    let sites = dr::Sites::new(topology.clone(), client_config(cli, Vec::new())?, Duration::from_secs(120));
    match cmd {
        DrCmd::Fence { site } | DrCmd::Unfence { site } => {
            let kind = if matches!(cmd, DrCmd::Fence { .. }) {
                pb::SiteOperationKind::Fence
            } else {
                pb::SiteOperationKind::Unfence
            };
            let response =
                sites.operate(site, pb::SiteOperationRequest { kind: kind as i32, ..Default::default() }).await?;
            let info = response.site.unwrap_or_default();
            println!(
                "{site}: {} {}at epoch {} ({} ms)",
                info.role,
                if info.fenced { "fenced " } else { "" },
                info.epoch,
                response.elapsed_ms
            );
        }
        DrCmd::Approve { request_id, action, sites: names } => {
            let names =
                if names.is_empty() { topology.sites.iter().map(|s| s.name.clone()).collect() } else { names.clone() };
            let recorded = dr::approve(&sites, &names, request_id, action).await?;
            println!("{} approved {request_id} for {action} on {}", cli.identity, recorded.join(", "));
        }
        DrCmd::Switchover { from, to, request_id } => {
            let from = match from {
                Some(from) => from.clone(),
                None => site_with_role(&sites, "active").await?,
            };
            let to = match to {
                Some(to) => to.clone(),
                None => site_with_role(&sites, "standby").await?,
            };
            let report = dr::switchover(&sites, &from, &to, request_id).await?;
            let text = format!(
                "switchover {from} -> {to} done in {} ms: {from} fenced at seq {}, {to} active at epoch {} from seq {}, no records lost\n{}",
                report.total_ms,
                report.fenced_at_seq,
                report.new_epoch,
                report.promoted_at_seq,
                steps_text(&report.steps)
            );
            print_report(cli, &report, text)?;
        }
        DrCmd::Promote { force, site, request_id } => {
            anyhow::ensure!(*force, "promote skips the active site's consent: pass --force (or use switchover)");
            let site = match site {
                Some(site) => site.clone(),
                None => site_with_role(&sites, "standby").await?,
            };
            let report = dr::promote_force(&sites, &site, request_id).await?;
            let text = format!(
                "{site} promoted to active at epoch {} in {} ms\nRPO point: seq {} at ledger time {} ms (last lag seen: {} records, {} ms)",
                report.new_epoch,
                report.total_ms,
                report.rpo_seq,
                report.rpo_ledger_time_ms,
                report.lag_records_last_seen,
                report.lag_ms_last_seen
            );
            print_report(cli, &report, text)?;
        }
        DrCmd::Failback { old, active, request_id, report_dir } => {
            let active = match active {
                Some(active) => active.clone(),
                None => site_with_role(&sites, "active").await?,
            };
            let report = dr::failback(&sites, old, &active, request_id, report_dir).await?;
            let mut brief = report.clone();
            brief.rows.clear();
            let text = format!(
                "failback of {old} under {active} done in {} ms: branch at seq {}, {} records ({} applied transfers) exported to {} and {}\n{}",
                report.total_ms,
                report.branch_seq,
                report.lost_records,
                report.lost_transfers_applied,
                report.json_report,
                report.csv_report,
                steps_text(&report.steps)
            );
            print_report(cli, &brief, text)?;
        }
    }
    Ok(())
}

fn topology(cli: &Cli) -> anyhow::Result<Topology> {
    Ok(match &cli.topology {
        Some(path) => Topology::load(path)?,
        None => Topology::default_local(),
    })
}

/// The client configuration the CLI flags describe.
fn client_config(cli: &Cli, endpoints: Vec<String>) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::insecure(endpoints);
    if cli.insecure {
        return Ok(config);
    }
    let (ca, cert, key) = match (&cli.ca, &cli.cert, &cli.key) {
        (Some(ca), Some(cert), Some(key)) => (ca.clone(), cert.clone(), key.clone()),
        (None, None, None) => {
            let files = CertsDir::new(cli.data.join("certs")).client(&cli.identity);
            (files.ca, files.cert, files.key)
        }
        _ => anyhow::bail!("--ca, --cert and --key go together"),
    };
    config.tls = Some(ledger_client::tls::client_tls(&ca, &cert, &key).context(
        "no client certificate (pass --insecure for a plaintext cluster, or --data/--as/--ca/--cert/--key)",
    )?);
    Ok(config)
}

/// The leader's client endpoint of `site` (membership operations must go to the leader).
async fn leader_client(cli: &Cli, topology: &Topology, site: &str) -> anyhow::Result<LedgerClient> {
    let spec = topology.site(site).with_context(|| format!("no site {site} in the topology"))?;
    let any = LedgerClient::new(client_config(cli, spec.endpoints())?)?;
    let status = any.status().await?;
    anyhow::ensure!(!status.leader_client_addr.is_empty(), "site {site} has no leader right now");
    Ok(LedgerClient::new(client_config(cli, vec![status.leader_client_addr])?)?)
}

async fn up(cli: &Cli, data: &std::path::Path, insecure: bool) -> anyhow::Result<()> {
    let topology = topology(cli)?;
    let launcher = NodeLauncher::this_executable()?;
    let security = if insecure { Security::Insecure } else { Security::Tls };
    let mut cluster = LocalCluster::new(data, topology.clone(), launcher, security)?;
    if insecure {
        eprintln!("WARNING: --insecure: plaintext gRPC, no client authentication, every caller is admin");
    }
    let started = Instant::now();
    cluster.start_all()?;
    let keys = cluster.keys();
    let result: anyhow::Result<()> = async {
        cluster.wait_serving(&keys, Duration::from_secs(30)).await?;
        cluster.bootstrap().await?;
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("cluster did not come up: {e:#}; logs under {}", data.display());
        cluster.stop_all();
        return Err(e);
    }
    for site in &topology.sites {
        println!("{} ({}): {}", site.name, site.role, site.endpoints().join(" "));
    }
    println!("data, configs and logs: {}", data.display());
    if let Some(certs) = &cluster.certs {
        let writer = certs.client("writer");
        println!(
            "client certificates: {}/clients (one per role); e.g.\n  export LEDGER_CA={} LEDGER_CERT={} LEDGER_KEY={}",
            certs.dir.display(),
            writer.ca.display(),
            writer.cert.display(),
            writer.key.display()
        );
    }
    println!("ready: {} nodes in {} ms; Ctrl-C or SIGTERM stops them all", keys.len(), started.elapsed().as_millis());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = watch.tick() => {
                for key in &keys {
                    if cluster.pid(key).is_some() && !cluster.is_running(key) {
                        eprintln!("node {}/{} exited; see {}", key.0, key.1, cluster.log_path(key).display());
                        cluster.kill(key);
                    }
                }
            }
        }
    }
    eprintln!("stopping {} nodes ...", keys.len());
    let unclean = cluster.stop_all();
    if unclean.is_empty() {
        eprintln!("all nodes stopped");
    } else {
        eprintln!("nodes killed after the grace period: {unclean:?}");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Up => up(&cli, &cli.data, cli.insecure).await,
        Command::Certs { out } => {
            let topology = topology(&cli)?;
            let certs = CertsDir::new(out);
            let nodes: Vec<(String, u64)> =
                topology.sites.iter().flat_map(|s| s.nodes.iter().map(|n| (s.name.clone(), n.id))).collect();
            certs.ensure_all(&nodes)?;
            println!("CA: {}", certs.ca_path().display());
            for (site, id) in &nodes {
                println!("node {site}/{id}: {}", certs.node(site, *id).cert.display());
            }
            for (name, role) in crate::certs::CLIENT_IDENTITIES {
                println!("client {name} (role {role}): {}", certs.client(name).cert.display());
            }
            Ok(())
        }
        Command::Status => {
            let topology = topology(&cli)?;
            let status = status::gather(&topology, &client_config(&cli, Vec::new())?).await;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status::render(&status));
            }
            Ok(())
        }
        Command::AddNode { site, id, zone, client_addr, peer_addr, learner_only } => {
            let topology = topology(&cli)?;
            let client = leader_client(&cli, &topology, site).await?;
            let node = pb::Member {
                node_id: *id,
                zone: zone.clone(),
                client_addr: client_addr.clone(),
                peer_addr: peer_addr.clone(),
                voter: !learner_only,
                matched_index: 0,
            };
            let response = client
                .add_node(pb::AddNodeRequest { node: Some(node), learner_only: *learner_only, catch_up_timeout_ms: 0 })
                .await?;
            println!("added node {id} to {site} in {} ms", response.elapsed_ms);
            Ok(())
        }
        Command::RemoveNode { site, id } => {
            let topology = topology(&cli)?;
            let response = leader_client(&cli, &topology, site).await?.remove_node(*id).await?;
            println!("removed node {id} from {site} in {} ms", response.elapsed_ms);
            Ok(())
        }
        Command::TransferLeader { site, to } => {
            let topology = topology(&cli)?;
            let response = leader_client(&cli, &topology, site).await?.transfer_leader(*to).await?;
            println!("leader of {site} is now node {} ({} ms)", response.new_leader_id, response.elapsed_ms);
            Ok(())
        }
        Command::Dr(cmd) => run_dr(&cli, cmd).await,
        Command::Keys(KeysCmd::Add { file }) => {
            let path = file.clone().unwrap_or_else(|| cli.data.join("keys").join("data-keys.toml"));
            let id = ledger_node::security::pii::DataKeys::rotate_file(&path)?;
            println!(
                "added data key {id} to {}; run `keys rotate --key-id {id}` once every node has it",
                path.display()
            );
            Ok(())
        }
        Command::Keys(KeysCmd::Rotate { key_id, request_id }) => {
            let topology = topology(&cli)?;
            let sites = dr::Sites::new(topology.clone(), client_config(&cli, Vec::new())?, Duration::from_secs(60));
            for site in &topology.sites {
                let request = pb::SiteOperationRequest {
                    kind: pb::SiteOperationKind::RotateKey as i32,
                    key_id: *key_id,
                    request_id: request_id.clone(),
                    ..Default::default()
                };
                let response = sites.operate(&site.name, request).await?;
                let info = response.site.unwrap_or_default();
                println!(
                    "{}: new personal data sealed with key {} ({} ms)",
                    site.name, info.data_key_id, response.elapsed_ms
                );
            }
            Ok(())
        }
        Command::SiteLog { site } => {
            let topology = topology(&cli)?;
            let spec = topology.site(site).with_context(|| format!("no site {site}"))?;
            let client = LedgerClient::new(client_config(&cli, spec.endpoints())?)?;
            let log = client.read_site_log(1, 1000).await?;
            for e in &log.entries {
                if cli.json {
                    println!(
                        "{}",
                        serde_json::json!({"seq": e.seq, "ledger_time_ms": e.ledger_time_ms, "caller": e.caller, "event": e.event,
                            "detail": e.detail, "journal_seq": e.journal_seq, "hash": hex::encode(&e.hash)})
                    );
                } else {
                    println!(
                        "{:>4} t={} {:<14} by {:<16} journal {:<6} {}",
                        e.seq, e.ledger_time_ms, e.event, e.caller, e.journal_seq, e.detail
                    );
                }
            }
            Ok(())
        }
        Command::Node(_) => unreachable!("handled before the runtime starts"),
    }
}

/// Runs the `ledger-cluster` CLI with the process arguments.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Node(args) = cli.command {
        return ledger_node::cli::run_node(args);
    }
    tool_runtime()?.block_on(run(cli))
}

/// What an operator tool's process needs before it talks to nodes (`ledger-cluster`,
/// `ledger-chaos`): warnings and errors to stderr (`LEDGER_LOG` to change), rustls' crypto
/// provider, and a tokio runtime.
pub fn tool_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
