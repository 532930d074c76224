//! `ledger-cluster`, built for the integration tests.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger_cluster::cli::main()
}
