//! `ledger-node`: one node of the replicated bank ledger. See `ledger_node::cli`.

use clap::Parser;

/// mimalloc: glibc malloc's fragmentation showed up as ~25% of a node's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger_node::cli::run_node(ledger_node::cli::NodeArgs::parse())
}
