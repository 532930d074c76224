//! `ledger`: the command-line client. See `ledger_client::cli`.

/// mimalloc: glibc malloc's fragmentation showed up as ~25% of a node's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    ledger_client::cli::main()
}
