//! `ledger` (the CLI), built for the integration tests.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    ledger_client::cli::main()
}
