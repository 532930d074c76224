//! Times a node's start-up at size: applies `transfers` transfers over `accounts` accounts to a
//! fresh store (entries of 6 × 100, as the batcher proposes them), writes a checkpoint, closes
//! the store, then opens it again and prints how long the open took. The open's
//! `state rebuilt` log line breaks it down.
//!
//! `cargo run --release -p ledger-benches --example reopen_state -- 1000000 10000000 [dir]`:
//! with a `dir` that already holds a store, only the reopen runs (so it can be repeated).

use ledger_benches::Workload;
use ledger_benches::entry;
use ledger_benches::setup_state_machine;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COMMANDS: usize = 6;
const BATCH: usize = 100;

fn main() {
    tracing_subscriber::fmt().with_env_filter("ledger_node=info").init();
    let mut args = std::env::args().skip(1);
    let accounts: usize = args.next().map_or(1_000_000, |n| n.parse().expect("accounts: a number"));
    let transfers: usize = args.next().map_or(10_000_000, |n| n.parse().expect("transfers: a number"));
    let kept = args.next().map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    if !dir.join("state").exists() {
        std::fs::create_dir_all(&dir).expect("data dir");
        let started = std::time::Instant::now();
        runtime.block_on(async {
            let (_log, mut sm, mut index) = setup_state_machine(&dir, accounts).await;
            let mut workload = Workload::new(accounts);
            for _ in 0..transfers.div_ceil(COMMANDS * BATCH) {
                index += 1;
                let commands = (0..COMMANDS).map(|_| workload.command(BATCH)).collect();
                sm.apply(vec![entry(index, commands)]).await.expect("entry applies");
            }
            sm.get_snapshot_builder().await.build_snapshot().await.expect("checkpoint");
        });
        println!("built {transfers} transfers over {accounts} accounts in {:?}", started.elapsed());
    }
    let started = std::time::Instant::now();
    let store = ledger_node::store::open(&dir, 128 * 1024 * 1024).expect("reopen");
    println!("reopened in {:?}", started.elapsed());
    drop(store);
}
