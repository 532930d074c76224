//! Where a node's time goes when it applies transfers, stage by stage, per transfer:
//!
//! - `rules`: the pure ledger (`ledger::apply` on an in-memory store): validation, balances,
//!   history rows, the journal record and its SHA-256 link;
//! - `state_machine`: the same commands through the sled state machine as one Raft entry
//!   (rules + encoding + one sled batch), which every replica runs for every entry;
//! - `segments_design`: the apply of docs/storage-design.md (issue 10), not yet the node's:
//!   the rules over in-memory accounts, then every transfer version, history page and journal
//!   record encoded and appended to `SegmentLog`s (buffered, no fsync: the Raft log is the
//!   WAL), with an in-memory id index. It measures what that design can reach per core.
//!
//! The entry shapes are those the batcher builds under `ledger bench` load: a 60 KiB entry
//! holds about six 100-transfer commands, or many single-transfer commands.
//!
//! Run: `cargo bench -p ledger-benches` (add `-- --quick` for a shorter run).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::hash::Hash;
use std::hash::Hasher;
use std::sync::Arc;

use criterion::BatchSize;
use criterion::Criterion;
use criterion::Throughput;
use criterion::criterion_group;
use criterion::criterion_main;
use ledger_benches::START_MS;
use ledger_benches::Workload;
use ledger_benches::setup_commands;
use ledger_core::account::Account;
use ledger_core::codec;
use ledger_core::command::Envelope;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::journal::JournalRecord;
use ledger_core::ledger;
use ledger_core::money::Currency;
use ledger_core::store::Changes;
use ledger_core::store::CurrencyTotals;
use ledger_core::store::Expiry;
use ledger_core::store::LedgerMeta;
use ledger_core::store::LedgerRead;
use ledger_core::store::MemStore;
use ledger_core::store::Overlay;
use ledger_core::transfer::HistoryEntry;
use ledger_core::transfer::Transfer;
use ledger_node::raft::types::Entry;
use ledger_node::raft::types::Payload;
use ledger_node::store::segment::SegmentLog;
use openraft::EntryPayload;
use openraft::LogId;
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

fn entry(index: u64, commands: Vec<Envelope>) -> Entry {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Payload::Commands {
            proposed_at_ms: START_MS + index,
            commands: Arc::new(commands),
        }),
    }
}

fn state_machine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("state_machine");
    for (commands, batch) in SHAPES {
        // A fresh database per shape, with the node's default cache, so shapes do not share
        // pages.
        let dir = tempfile::tempdir().expect("temp dir");
        let (_log, mut sm) = ledger_node::store::open(dir.path(), 128 * 1024 * 1024).expect("open store");
        let mut index = 0;
        runtime.block_on(async {
            for envelope in setup_commands(ACCOUNTS) {
                index += 1;
                sm.apply(vec![entry(index, vec![envelope])]).await.expect("setup applies");
            }
        });
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

/// The state of docs/storage-design.md, reduced to what the apply touches: accounts, totals,
/// expiries and meta in memory; transfers, history and journal appended to segments, found
/// through in-memory indexes.
struct SegmentsDesign {
    accounts: HashMap<AccountId, Account>,
    totals: BTreeMap<Currency, CurrencyTotals>,
    expiries: BTreeSet<Expiry>,
    meta: LedgerMeta,
    /// Id fingerprint -> position of the transfer's newest version.
    transfer_index: HashMap<u64, u64>,
    /// Account -> position of its newest history page.
    history_head: HashMap<AccountId, u64>,
    journal_positions: Vec<u64>,
    transfers: SegmentLog,
    history: SegmentLog,
    journal: SegmentLog,
}

fn fingerprint(id: &TransferId) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

impl SegmentsDesign {
    fn open(dir: &std::path::Path) -> SegmentsDesign {
        let roll = 256 * 1024 * 1024;
        SegmentsDesign {
            accounts: HashMap::new(),
            totals: BTreeMap::new(),
            expiries: BTreeSet::new(),
            meta: LedgerMeta::default(),
            transfer_index: HashMap::new(),
            history_head: HashMap::new(),
            journal_positions: Vec::new(),
            transfers: SegmentLog::open(&dir.join("transfers"), roll).expect("segments"),
            history: SegmentLog::open(&dir.join("history"), roll).expect("segments"),
            journal: SegmentLog::open(&dir.join("journal"), roll).expect("segments"),
        }
    }

    fn commit(&mut self, changes: Changes) {
        assert!(!changes.reset);
        self.accounts.extend(changes.accounts);
        self.totals.extend(changes.totals);
        for (expiry, added) in changes.expiries {
            if added {
                self.expiries.insert(expiry);
            } else {
                self.expiries.remove(&expiry);
            }
        }
        for (id, transfer) in changes.transfers {
            let position = self.transfers.append(&codec::encode(&transfer)).expect("append");
            self.transfer_index.insert(fingerprint(&id), position);
        }
        // One page per account per commit, linked to the account's previous page.
        let mut pages: BTreeMap<AccountId, Vec<HistoryEntry>> = BTreeMap::new();
        for (account, row) in changes.history {
            pages.entry(account).or_default().push(row);
        }
        for (account, rows) in pages {
            let previous = self.history_head.get(&account).copied();
            let position = self.history.append(&codec::encode(&(previous, rows))).expect("append");
            self.history_head.insert(account, position);
        }
        for record in changes.journal {
            self.journal_positions.push(self.journal.append(&codec::encode(&record)).expect("append"));
        }
        if let Some(meta) = changes.meta {
            self.meta = meta;
        }
        self.transfers.flush().expect("flush");
        self.history.flush().expect("flush");
        self.journal.flush().expect("flush");
    }
}

impl LedgerRead for SegmentsDesign {
    fn account(&self, id: &AccountId) -> Option<Account> {
        self.accounts.get(id).cloned()
    }

    fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        let position = self.transfer_index.get(&fingerprint(id))?;
        let transfer: Transfer = codec::decode(&self.transfers.read(*position).expect("read")).expect("decode");
        (transfer.request.id == *id).then_some(transfer)
    }

    fn totals(&self, currency: Currency) -> CurrencyTotals {
        self.totals.get(&currency).cloned().unwrap_or_default()
    }

    fn due_expiries(&self, now_ms: u64, limit: usize) -> Vec<Expiry> {
        self.expiries.iter().take_while(|e| e.expires_at_ms <= now_ms).take(limit).cloned().collect()
    }

    fn meta(&self) -> LedgerMeta {
        self.meta.clone()
    }

    fn journal_record(&self, seq: u64) -> Option<JournalRecord> {
        let position = self.journal_positions.get(seq.checked_sub(1)? as usize)?;
        Some(codec::decode(&self.journal.read(*position).expect("read")).expect("decode"))
    }
}

fn segments_design(c: &mut Criterion) {
    let mut group = c.benchmark_group("segments_design");
    for (commands, batch) in SHAPES {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = SegmentsDesign::open(dir.path());
        for (i, envelope) in setup_commands(ACCOUNTS).iter().enumerate() {
            let mut overlay = Overlay::new(&state);
            ledger::apply(&mut overlay, envelope, START_MS, i as u64 + 1);
            let changes = overlay.into_changes();
            state.commit(changes);
        }
        group.throughput(Throughput::Elements((commands * batch) as u64));
        let mut workload = Workload::new(ACCOUNTS);
        let mut index = 1_000u64;
        group.bench_function(format!("{commands}x{batch}"), |b| {
            b.iter_batched(
                || (0..commands).map(|_| workload.command(batch)).collect::<Vec<_>>(),
                |envelopes| {
                    // One Raft entry: the rules over one overlay, then one commit.
                    index += 1;
                    let mut overlay = Overlay::new(&state);
                    for envelope in &envelopes {
                        ledger::apply(&mut overlay, envelope, START_MS + index, index);
                    }
                    let changes = overlay.into_changes();
                    state.commit(changes);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, rules, state_machine, segments_design);
criterion_main!(benches);
