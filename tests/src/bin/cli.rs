//! `ledger` (the CLI), built for the integration tests: the very module tree of the `ledger`
//! binary (`client/src/bin/ledger/cli/`), mounted here because cargo hands a test the paths of
//! its own package's binaries only.

#[path = "../../../client/src/bin/ledger/cli/mod.rs"]
mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    cli::main()
}
