//! Where a node's time goes when it applies transfers, stage by stage, per transfer:
//!
//! - `rules`: the pure ledger (`ledger::apply` on an in-memory store): validation, balances,
//!   history rows, the journal record and its SHA-256 link;
//! - `state_machine`: the same commands through the node's state machine as one Raft entry
//!   (rules over the in-memory state, then every transfer version, history row and journal
//!   record encoded and appended to the segment logs, no fsync: ARCHITECTURE.md "Storage"),
//!   which every replica runs for every entry.
//!
//! The entry shapes are those the batcher built under `ledger bench` load with 60 KiB entries: an entry
//! holds about six 100-transfer commands, or many single-transfer commands.
//!
//! Run: `cargo bench -p ledger-benches` (add `-- --quick` for a shorter run).

use criterion::BatchSize;
use criterion::Criterion;
use criterion::Throughput;
use criterion::criterion_group;
use criterion::criterion_main;
use ledger_benches::START_MS;
use ledger_benches::Workload;
use ledger_benches::entry;
use ledger_benches::setup_commands;
use ledger_benches::setup_state_machine;
use ledger_core::ledger;
use ledger_core::store::MemStore;
use ledger_core::store::Overlay;
use openraft::storage::RaftStateMachine;

/// The allocator the node binaries use, so that allocation costs match theirs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: usize = 10_000;
/// (commands per entry, transfers per command)
const SHAPES: [(usize, usize); 2] = [(6, 100), (64, 1)];

fn rules(c: &mut Criterion) {
    let mut store = MemStore::new();
    for (i, envelope) in setup_commands(ACCOUNTS).iter().enumerate() {
        let mut overlay = Overlay::new(&store);
        ledger::apply(&mut overlay, envelope, START_MS, i as u64 + 1);
        let changes = overlay.into_changes();
        store.commit(changes);
    }
    let mut group = c.benchmark_group("rules");
    for (commands, batch) in SHAPES {
        group.throughput(Throughput::Elements((commands * batch) as u64));
        let mut workload = Workload::new(ACCOUNTS);
        group.bench_function(format!("{commands}x{batch}"), |b| {
            b.iter_batched(
                || (0..commands).map(|_| workload.command(batch)).collect::<Vec<_>>(),
                |envelopes| {
                    // Applied to a fresh overlay over the same base each time: the rules'
                    // cost without the in-memory store growing under the benchmark.
                    let mut overlay = Overlay::new(&store);
                    for envelope in &envelopes {
                        ledger::apply(&mut overlay, envelope, START_MS + 1, 1_000);
                    }
                    overlay.into_changes()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn state_machine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("state_machine");
    for (commands, batch) in SHAPES {
        // A fresh data dir per shape.
        let dir = tempfile::tempdir().expect("temp dir");
        let (_log, mut sm, mut index) = runtime.block_on(setup_state_machine(dir.path(), ACCOUNTS));
        group.throughput(Throughput::Elements((commands * batch) as u64));
        let mut workload = Workload::new(ACCOUNTS);
        group.bench_function(format!("{commands}x{batch}"), |b| {
            b.iter_batched(
                || {
                    index += 1;
                    entry(index, (0..commands).map(|_| workload.command(batch)).collect())
                },
                |entry| runtime.block_on(sm.apply(vec![entry])).expect("entry applies"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, rules, state_machine);
criterion_main!(benches);
