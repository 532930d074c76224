//! `ledger-chaos`: drills against local clusters. See `ledger_chaos`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    anyhow::bail!("ledger-chaos drills are not built yet; the workload and checker are in the library")
}
