//! `ledger-node`, built for the integration tests.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger_node::cli::run_node(ledger_node::cli::NodeArgs::parse())
}
