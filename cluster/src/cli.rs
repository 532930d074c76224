//! The `ledger-cluster` command line (the `ledger-cluster` binary calls [`main`]): start a
//! local cluster, show its status, operate it. Also runs a node (`ledger-cluster node`), so
//! that `up` needs no other binary.
//!
//! Every command that talks to nodes ends, with a message and exit status 1, on the first
//! refusal (a wrong role, a certificate the nodes do not accept, an operation that does not
//! fit): the client never retries a refusal, and retries anything else only up to its retry
//! deadline. `--json` prints one JSON document (JSON Lines for `site-log`) on stdout.

use std::path::Path;
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
use clap::ArgMatches;
use clap::CommandFactory;
use clap::FromArgMatches;
use clap::Parser;
use clap::Subcommand;
use clap::parser::ValueSource;
use ledger_client::ClientConfig;
use ledger_client::ClientError;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_client::tls::ProbeError;
use serde_json::json;

/// The identity an operator command presents when nothing else names one.
const DEFAULT_IDENTITY: &str = "operator-1";

/// Printed under `--help`.
const IDENTITY_HELP: &str = "\
Identity (the client certificate presented to the nodes; its organizational unit is the role):
  --as NAME                 <data>/certs/clients/NAME.{pem,key}, with <data>/certs/ca.pem
  --ca, --cert, --key       these files (or LEDGER_CA, LEDGER_CERT, LEDGER_KEY)
  neither                   --as operator-1
An explicit --as wins over LEDGER_CA/LEDGER_CERT/LEDGER_KEY in the environment (which README
has a shell set to the writer for `ledger`); --as together with --ca/--cert/--key flags is an
error. A refusal (e.g. a role that may not run the command) ends the command at once with exit
status 1, naming the role needed and the identity presented.";

#[derive(Parser, Debug)]
#[command(name = "ledger-cluster", version, about = "Run and operate ledger clusters", after_help = IDENTITY_HELP)]
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
    /// Present the client certificate `<data>/certs/clients/NAME` [default: operator-1, unless
    /// --ca/--cert/--key or LEDGER_CA/LEDGER_CERT/LEDGER_KEY name one]. Beats those variables.
    #[arg(long = "as", global = true, value_name = "NAME")]
    identity: Option<String>,
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
        /// How long the leader waits for the learner to catch up before making it a voter
        /// [default: the node's, 60 s]; a node rejoining a large ledger by snapshot may need more.
        #[arg(long)]
        catch_up_timeout_secs: Option<u64>,
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

/// Who the command presents itself as, resolved once from the flags and the environment.
#[derive(Clone, Debug)]
enum Identity {
    /// `--insecure`: plaintext, no certificate.
    Insecure,
    /// A certificate, its key and the CA; `name` for messages.
    Files { ca: PathBuf, cert: PathBuf, key: PathBuf, name: String, origin: String },
}

impl Identity {
    /// The identity of `cli`: see [`IDENTITY_HELP`]. An error only when the flags contradict
    /// each other.
    fn resolve(cli: &Cli, matches: &ArgMatches) -> anyhow::Result<Identity> {
        if cli.insecure {
            return Ok(Identity::Insecure);
        }
        let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let files_on_command_line: Vec<&str> =
            ["ca", "cert", "key"].into_iter().filter(|id| from_command_line(id)).collect();
        if let Some(name) = &cli.identity {
            anyhow::ensure!(
                files_on_command_line.is_empty(),
                "--as {name} and --{} both name the identity to present: pass one or the other",
                files_on_command_line.join("/--")
            );
            return Ok(Identity::named(&cli.data, name, format!("--as {name}")));
        }
        match (&cli.ca, &cli.cert, &cli.key) {
            (None, None, None) => {
                Ok(Identity::named(&cli.data, DEFAULT_IDENTITY, "the default; --as NAME for another".to_string()))
            }
            (Some(ca), Some(cert), Some(key)) => {
                let origin = |id: &str, env: &str| {
                    if from_command_line(id) { format!("--{id}") } else { env.to_string() }
                };
                let (cert_origin, key_origin) = (origin("cert", "LEDGER_CERT"), origin("key", "LEDGER_KEY"));
                anyhow::ensure!(
                    cert_origin.starts_with("--") == key_origin.starts_with("--"),
                    "the certificate comes from {cert_origin} but the key from {key_origin}: a certificate and its \
                     key go together"
                );
                let name = cert.file_stem().map_or_else(|| cert.display().to_string(), |s| s.to_string_lossy().into());
                Ok(Identity::Files {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                    name,
                    origin: format!("{cert_origin}={}", cert.display()),
                })
            }
            _ => anyhow::bail!("--ca, --cert and --key go together (flags or LEDGER_CA, LEDGER_CERT, LEDGER_KEY)"),
        }
    }

    fn named(data: &Path, name: &str, origin: String) -> Identity {
        let files = CertsDir::new(data.join("certs")).client(name);
        Identity::Files { ca: files.ca, cert: files.cert, key: files.key, name: name.to_string(), origin }
    }

    /// A short name: the `--as` name or the certificate file's stem.
    fn name(&self) -> &str {
        match self {
            Identity::Insecure => "insecure",
            Identity::Files { name, .. } => name,
        }
    }

    /// For messages: the name and where it came from.
    fn describe(&self) -> String {
        match self {
            Identity::Insecure => "no certificate (--insecure)".into(),
            Identity::Files { name, cert, origin, .. } => format!("{name} ({}, from {origin})", cert.display()),
        }
    }
}

/// One run of the command line: the flags and the identity they name (resolved up front, but
/// an error only for the commands that talk to nodes).
struct Invocation {
    cli: Cli,
    identity: Result<Identity, String>,
}

impl Invocation {
    fn identity(&self) -> anyhow::Result<&Identity> {
        self.identity.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The client configuration the CLI flags describe.
    fn client_config(&self, endpoints: Vec<String>) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::insecure(endpoints);
        match self.identity()? {
            Identity::Insecure => {}
            Identity::Files { ca, cert, key, .. } => {
                config.tls = Some(ledger_client::tls::client_tls(ca, cert, key).context(
                    "no client certificate (pass --insecure for a plaintext cluster, or --data/--as/--ca/--cert/--key)",
                )?);
            }
        }
        Ok(config)
    }

    /// Fails at once if the nodes refuse our certificate at the TLS handshake, which calls
    /// would only see as broken connections (see `ledger_client::tls`).
    async fn check_accepted(&self) -> anyhow::Result<()> {
        if let Identity::Files { ca, cert, key, .. } = self.identity()? {
            ledger_client::tls::check_accepted(&self.topology()?.all_endpoints(), ca, cert, key).await?;
        }
        Ok(())
    }

    fn topology(&self) -> anyhow::Result<Topology> {
        Ok(match &self.cli.topology {
            Some(path) => Topology::load(path)?,
            None => Topology::default_local(),
        })
    }

    /// Prints `value` as JSON with `--json`, else `text`.
    fn print(&self, value: serde_json::Value, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.cli.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("{}", text());
        }
        Ok(())
    }

    fn print_report<T: serde::Serialize>(&self, report: &T, text: String) -> anyhow::Result<()> {
        self.print(serde_json::to_value(report)?, || text)
    }
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

fn steps_text(steps: &[dr::Step]) -> String {
    steps.iter().map(|s| format!("  {:<10} {:>7} ms  {}", s.step, s.ms, s.detail)).collect::<Vec<_>>().join("\n")
}

async fn run_dr(inv: &Invocation, cmd: &DrCmd) -> anyhow::Result<()> {
    let topology = inv.topology()?;
    let sites = dr::Sites::new(topology.clone(), inv.client_config(Vec::new())?, Duration::from_secs(120));
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
            let value = json!({
                "site": site, "role": info.role, "fenced": info.fenced, "epoch": info.epoch,
                "journal_seq": response.journal_seq, "elapsed_ms": response.elapsed_ms,
            });
            inv.print(value, || {
                format!(
                    "{site}: {} {}at epoch {} ({} ms)",
                    info.role,
                    if info.fenced { "fenced " } else { "" },
                    info.epoch,
                    response.elapsed_ms
                )
            })?;
        }
        DrCmd::Approve { request_id, action, sites: names } => {
            let names =
                if names.is_empty() { topology.sites.iter().map(|s| s.name.clone()).collect() } else { names.clone() };
            let recorded = dr::approve(&sites, &names, request_id, action)
                .await
                .map_err(|e| anyhow::Error::from(e).context(format!("approval of {request_id}")))?;
            let who = inv.identity()?.name().to_string();
            let value = json!({"identity": who, "request_id": request_id, "action": action, "sites": recorded});
            inv.print(value, || format!("{who} approved {request_id} for {action} on {}", recorded.join(", ")))?;
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
                "switchover {from} -> {to} done in {} ms: {from} fenced at seq {}, {to} active at epoch {} from seq {}, records lost (measured): {}\n{}",
                report.total_ms,
                report.fenced_at_seq,
                report.new_epoch,
                report.promoted_at_seq,
                report.records_lost,
                steps_text(&report.steps)
            );
            inv.print_report(&report, text)?;
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
            inv.print_report(&report, text)?;
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
            inv.print_report(&brief, text)?;
        }
    }
    Ok(())
}

/// The leader's client endpoint of `site` (membership operations must go to the leader).
async fn leader_client(inv: &Invocation, topology: &Topology, site: &str) -> anyhow::Result<LedgerClient> {
    let spec = topology.site(site).with_context(|| format!("no site {site} in the topology"))?;
    let any = LedgerClient::new(inv.client_config(spec.endpoints())?)?;
    let status = any.status().await?;
    anyhow::ensure!(!status.leader_client_addr.is_empty(), "site {site} has no leader right now");
    Ok(LedgerClient::new(inv.client_config(vec![status.leader_client_addr])?)?)
}

async fn up(inv: &Invocation, data: &std::path::Path, insecure: bool) -> anyhow::Result<()> {
    let topology = inv.topology()?;
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
    let writer = cluster.certs.as_ref().map(|certs| certs.client("writer"));
    if inv.cli.json {
        let sites: Vec<_> = topology
            .sites
            .iter()
            .map(|s| json!({"site": s.name, "role": s.role, "endpoints": s.endpoints()}))
            .collect();
        let value = json!({
            "ready": true, "nodes": keys.len(), "ms": started.elapsed().as_millis() as u64, "sites": sites,
            "data": data.display().to_string(),
            "certs": cluster.certs.as_ref().map(|c| c.dir.display().to_string()),
            "writer": writer.as_ref().map(|w| json!({
                "ca": w.ca.display().to_string(), "cert": w.cert.display().to_string(), "key": w.key.display().to_string(),
            })),
        });
        println!("{value}");
    } else {
        for site in &topology.sites {
            println!("{} ({}): {}", site.name, site.role, site.endpoints().join(" "));
        }
        println!("data, configs and logs: {}", data.display());
        if let (Some(certs), Some(writer)) = (&cluster.certs, &writer) {
            println!(
                "client certificates: {}/clients (one per role); e.g.\n  export LEDGER_CA={} LEDGER_CERT={} LEDGER_KEY={}",
                certs.dir.display(),
                writer.ca.display(),
                writer.cert.display(),
                writer.key.display()
            );
        }
        println!(
            "ready: {} nodes in {} ms; Ctrl-C or SIGTERM stops them all",
            keys.len(),
            started.elapsed().as_millis()
        );
    }
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

async fn run(inv: &Invocation) -> anyhow::Result<()> {
    let cli = &inv.cli;
    let talks_to_nodes = !matches!(
        cli.command,
        Command::Up | Command::Certs { .. } | Command::Keys(KeysCmd::Add { .. }) | Command::Node(_)
    );
    if talks_to_nodes {
        inv.check_accepted().await?;
    }
    match &cli.command {
        Command::Up => up(inv, &cli.data, cli.insecure).await,
        Command::Certs { out } => {
            let topology = inv.topology()?;
            let certs = CertsDir::new(out);
            let nodes: Vec<(String, u64)> =
                topology.sites.iter().flat_map(|s| s.nodes.iter().map(|n| (s.name.clone(), n.id))).collect();
            certs.ensure_all(&nodes)?;
            let node_certs: Vec<_> = nodes
                .iter()
                .map(|(site, id)| json!({"site": site, "node_id": id, "cert": certs.node(site, *id).cert.display().to_string()}))
                .collect();
            let clients: Vec<_> = crate::certs::CLIENT_IDENTITIES
                .iter()
                .map(|(name, role)| json!({"name": name, "role": role, "cert": certs.client(name).cert.display().to_string()}))
                .collect();
            let value = json!({"ca": certs.ca_path().display().to_string(), "nodes": node_certs, "clients": clients});
            inv.print(value, || {
                let mut lines = vec![format!("CA: {}", certs.ca_path().display())];
                for (site, id) in &nodes {
                    lines.push(format!("node {site}/{id}: {}", certs.node(site, *id).cert.display()));
                }
                for (name, role) in crate::certs::CLIENT_IDENTITIES {
                    lines.push(format!("client {name} (role {role}): {}", certs.client(name).cert.display()));
                }
                lines.join("\n")
            })
        }
        Command::Status => {
            let topology = inv.topology()?;
            let status = status::gather(&topology, &inv.client_config(Vec::new())?).await;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status::render(&status));
            }
            if let Some(refused) = status.nodes.iter().find(|n| n.refused) {
                anyhow::bail!(
                    "{} of {} nodes refused this identity; {}/{}: {}",
                    status.nodes.iter().filter(|n| n.refused).count(),
                    status.nodes.len(),
                    refused.site,
                    refused.node_id,
                    refused.error
                );
            }
            anyhow::ensure!(status.nodes.iter().any(|n| n.reachable), "no node of the topology answered");
            Ok(())
        }
        Command::AddNode { site, id, zone, client_addr, peer_addr, learner_only, catch_up_timeout_secs } => {
            let topology = inv.topology()?;
            let client = leader_client(inv, &topology, site).await?;
            let node = pb::Member {
                node_id: *id,
                zone: zone.clone(),
                client_addr: client_addr.clone(),
                peer_addr: peer_addr.clone(),
                voter: !learner_only,
                matched_index: 0,
            };
            let response = client
                .add_node(pb::AddNodeRequest {
                    node: Some(node),
                    learner_only: *learner_only,
                    catch_up_timeout_ms: catch_up_timeout_secs.map_or(0, |s| s.saturating_mul(1000)),
                })
                .await?;
            let value = json!({
                "site": site, "node_id": id, "voter": !learner_only, "elapsed_ms": response.elapsed_ms,
                "members": members_json(&response.members),
            });
            inv.print(value, || format!("added node {id} to {site} in {} ms", response.elapsed_ms))
        }
        Command::RemoveNode { site, id } => {
            let topology = inv.topology()?;
            let response = leader_client(inv, &topology, site).await?.remove_node(*id).await?;
            let value = json!({
                "site": site, "node_id": id, "elapsed_ms": response.elapsed_ms,
                "members": members_json(&response.members),
            });
            inv.print(value, || format!("removed node {id} from {site} in {} ms", response.elapsed_ms))
        }
        Command::TransferLeader { site, to } => {
            let topology = inv.topology()?;
            let response = leader_client(inv, &topology, site).await?.transfer_leader(*to).await?;
            let value =
                json!({"site": site, "new_leader_id": response.new_leader_id, "elapsed_ms": response.elapsed_ms});
            inv.print(value, || {
                format!("leader of {site} is now node {} ({} ms)", response.new_leader_id, response.elapsed_ms)
            })
        }
        Command::Dr(cmd) => run_dr(inv, cmd).await,
        Command::Keys(KeysCmd::Add { file }) => {
            let path = file.clone().unwrap_or_else(|| cli.data.join("keys").join("data-keys.toml"));
            let id = ledger_node::security::pii::DataKeys::rotate_file(&path)?;
            let value = json!({"key_id": id, "file": path.display().to_string()});
            inv.print(value, || {
                format!(
                    "added data key {id} to {}; run `keys rotate --key-id {id}` once every node has it",
                    path.display()
                )
            })
        }
        Command::Keys(KeysCmd::Rotate { key_id, request_id }) => {
            let topology = inv.topology()?;
            let sites = dr::Sites::new(topology.clone(), inv.client_config(Vec::new())?, Duration::from_secs(60));
            let mut rotated = Vec::new();
            for site in &topology.sites {
                let request = pb::SiteOperationRequest {
                    kind: pb::SiteOperationKind::RotateKey as i32,
                    key_id: *key_id,
                    request_id: request_id.clone(),
                    ..Default::default()
                };
                let response = sites.operate(&site.name, request).await?;
                let info = response.site.unwrap_or_default();
                if !cli.json {
                    println!(
                        "{}: new personal data sealed with key {} ({} ms)",
                        site.name, info.data_key_id, response.elapsed_ms
                    );
                }
                rotated.push(
                    json!({"site": site.name, "data_key_id": info.data_key_id, "elapsed_ms": response.elapsed_ms}),
                );
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&json!({"key_id": key_id, "sites": rotated}))?);
            }
            Ok(())
        }
        Command::SiteLog { site } => {
            let topology = inv.topology()?;
            let spec = topology.site(site).with_context(|| format!("no site {site}"))?;
            let client = LedgerClient::new(inv.client_config(spec.endpoints())?)?;
            let log = client.read_site_log(1, 1000).await?;
            for e in &log.entries {
                if cli.json {
                    println!(
                        "{}",
                        json!({"seq": e.seq, "ledger_time_ms": e.ledger_time_ms, "caller": e.caller, "event": e.event,
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

fn members_json(members: &[pb::Member]) -> Vec<serde_json::Value> {
    members
        .iter()
        .map(|m| json!({"node_id": m.node_id, "zone": m.zone, "client_addr": m.client_addr, "voter": m.voter}))
        .collect()
}

/// The error that ends a command, each cause once (a wrapper that repeats its source's text
/// adds nothing), and for a refusal of our identity, which identity that was.
fn report(error: &anyhow::Error, identity: Option<&Identity>) {
    let mut text = String::new();
    for cause in error.chain() {
        let line = cause.to_string();
        if !text.contains(&line) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&line);
        }
    }
    eprintln!("error: {text}");
    let who = identity.map_or_else(|| "?".to_string(), Identity::describe);
    let client_error = error.chain().find_map(|e| e.downcast_ref::<ClientError>());
    let tls_refused = error.chain().any(|e| e.downcast_ref::<ProbeError>().is_some());
    match client_error {
        Some(e) if e.is_identity_refusal() => {
            eprintln!("note: presented {who}; a refusal is final and was not retried");
        }
        Some(e) if e.is_final() => eprintln!("note: a refusal is final and was not retried"),
        _ if tls_refused => eprintln!(
            "note: presented {who}; it must be signed by the CA that signed the nodes' certificates, and --ca must \
             be that CA"
        ),
        _ => {}
    }
}

/// Runs the `ledger-cluster` CLI with the process arguments. A command that fails prints its
/// error and exits with status 1.
pub fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Node(args) = cli.command {
        return ledger_node::cli::run_node(args);
    }
    let identity = Identity::resolve(&cli, &matches).map_err(|e| format!("{e:#}"));
    let invocation = Invocation { cli, identity };
    if let Err(e) = tool_runtime()?.block_on(run(&invocation)) {
        report(&e, invocation.identity.as_ref().ok());
        std::process::exit(1);
    }
    Ok(())
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
