//! Applies a fixed run of entries to a fresh state machine and exits: the deterministic twin of
//! `cargo bench`'s `state_machine/6x100`, for instruction counts that noise does not move.
//!
//! `cargo build --release -p ledger-benches --example apply_entries`, then
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*apply_chunk*'
//! target/release/examples/apply_entries 200` and divide the total by 200 × 600 transfers.
//!
//! A second argument sets the accounts (default 10,000, as `cargo bench`): at 1,000,000 the
//! account table no longer fits the caches, as in the sustained run.

use ledger_benches::Workload;
use ledger_benches::entry;
use ledger_benches::setup_state_machine;
use openraft::storage::RaftStateMachine;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: usize = 10_000;
const COMMANDS: usize = 6;
const BATCH: usize = 100;

fn main() {
    let entries: u64 = std::env::args().nth(1).map_or(200, |n| n.parse().expect("entries: a number"));
    let accounts: usize = std::env::args().nth(2).map_or(ACCOUNTS, |n| n.parse().expect("accounts: a number"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_log, mut sm, mut index) = runtime.block_on(setup_state_machine(dir.path(), accounts));
    let mut workload = Workload::new(accounts);
    let run: Vec<_> = (0..entries)
        .map(|_| {
            index += 1;
            entry(index, (0..COMMANDS).map(|_| workload.command(BATCH)).collect())
        })
        .collect();
    let started = std::time::Instant::now();
    runtime.block_on(async {
        for entry in run {
            sm.apply(vec![entry]).await.expect("entry applies");
        }
    });
    let elapsed = started.elapsed();
    let transfers = entries as usize * COMMANDS * BATCH;
    println!("{transfers} transfers in {elapsed:?}: {:.0}/s", transfers as f64 / elapsed.as_secs_f64());
}
