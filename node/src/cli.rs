//! The `ledger-node` command line, shared by the `ledger-node` binary and the multi-call
//! `ledger-cluster node` subcommand: parses flags, sets up logging, binds the listeners and
//! runs the node until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use crate::config::NodeConfig;
use crate::runtime;

/// A node of the replicated bank ledger.
#[derive(Parser, Debug, Clone)]
#[command(name = "ledger-node", version)]
pub struct NodeArgs {
    /// Node configuration (TOML); see docs/operations.md.
    #[arg(long)]
    pub config: PathBuf,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn,h2=warn,tower=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn bind(addr: &str, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding the {what} listener on {addr}"))
}

/// Fail-stop: a panic anywhere in the node, a spawned task included (tokio would otherwise
/// keep the process running without it: pending transfers would stop expiring, fencing would
/// stop), reports itself and aborts the process. A crashed replica beats a diverged or a
/// half-working one; its supervisor restarts it and Raft brings it back.
fn fail_stop_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!(panic = %info, "a task panicked: stopping the node (fail-stop)");
        std::process::abort();
    }));
}

/// Runs a node process to completion.
pub fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    fail_stop_on_panic();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = NodeConfig::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        if config.insecure {
            tracing::warn!("INSECURE MODE: plaintext gRPC, no client authentication; every caller is admin");
        }
        let listeners = runtime::Listeners {
            client: bind(&config.client_addr, "client").await?,
            peer: bind(&config.peer_addr, "peer").await?,
            metrics: if config.metrics_addr.is_empty() {
                None
            } else {
                Some(bind(&config.metrics_addr, "metrics").await?)
            },
        };
        let metrics = crate::metrics::install().context("installing the metrics recorder")?;
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
        };
        runtime::run(config, listeners, Some(metrics), shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}
