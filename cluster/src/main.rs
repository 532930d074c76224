//! `ledger-cluster`: run and operate ledger clusters. See `ledger_cluster::cli`.

/// mimalloc: glibc malloc's fragmentation showed up as ~25% of a node's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger_cluster::cli::main()
}
