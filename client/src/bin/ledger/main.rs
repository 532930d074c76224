//! `ledger`: the command-line client of the ledger. The command line itself is the `cli`
//! module tree beside this file (one module per subcommand).

mod cli;

/// mimalloc: glibc malloc's fragmentation showed up as ~25% of a node's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    cli::main()
}
