//! Storage conformance: the sled stores pass openraft's own `Suite`, and a few contracts the
//! suite does not cover (checksums, generations) are checked here.

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;

use super::LedgerStateMachine;
use super::LogStore;
use crate::raft::types::StorageError;
use crate::raft::types::TypeConfig;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, LedgerStateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, LedgerStateMachine), StorageError> {
        // The suite purges the log store with no state machine behind it, so the purge
        // ceiling (the state machine's durable checkpoint) is lifted here; the ceiling has its
        // own test below.
        let dir = tempfile::tempdir().expect("temp dir");
        let db = super::SledDb::open(dir.path(), 16 * 1024 * 1024).expect("open sled");
        let no_ceiling = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        // Small files, so that the suite's appends, truncates and purges cross file bounds.
        let log =
            LogStore::open_rolling_at(db.clone(), &dir.path().join("raft-log"), no_ceiling, 256).expect("log store");
        let sm = LedgerStateMachine::open(&dir.path().join("state"), db, Default::default(), 0).expect("state");
        Ok((dir, log, sm))
    }
}

/// Goal: the log store and the state machine meet every openraft storage contract.
/// Method: openraft's conformance suite, each case on a fresh temp dir (it makes its own
/// runtime, hence a plain `#[test]`).
#[test]
fn sled_store_passes_openraft_suite() {
    Suite::test_all(SledBuilder).expect("openraft storage suite");
}

/// Goal: a log entry whose bytes changed on disk is reported as corruption, not decoded.
#[test]
fn corrupted_log_entry_is_detected() {
    use openraft::EntryPayload;
    use openraft::LogId;
    let entry = crate::raft::types::Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 5),
        payload: EntryPayload::Blank,
    };
    let mut value = Vec::new();
    super::log::encode_frame(&entry, &mut value);
    assert!(super::log::decode_frame(5, &value).is_ok());
    let last = value.len() - 1;
    value[last] ^= 0x01;
    assert!(super::log::decode_frame(5, &value).is_err());
    // An entry read back at the wrong index is corruption too.
    let mut value = Vec::new();
    super::log::encode_frame(&entry, &mut value);
    assert!(super::log::decode_frame(6, &value).is_err());
}

fn blank_entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<crate::raft::types::Entry> {
    indexes
        .map(|index| crate::raft::types::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
            payload: openraft::EntryPayload::Blank,
        })
        .collect()
}

/// A log store over `dir` rolling files at 100 bytes (a few blank entries), its purge
/// unbounded. A reopen right after a drop retries for a while: sled's flusher thread can still
/// hold the database's file lock.
fn small_file_log(dir: &std::path::Path) -> LogStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let db = loop {
        match super::SledDb::open(dir, 16 * 1024 * 1024) {
            Ok(db) => break db,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "sled still locked");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen sled: {e}"),
        }
    };
    let no_ceiling = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    LogStore::open_rolling_at(db, &dir.join("raft-log"), no_ceiling, 100).unwrap()
}

fn log_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("raft-log")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Goal: the Raft log's files survive a restart whole, across file bounds, after truncates and
/// purges: the same entries, the same last and purged ids; the purge frees whole files.
/// Method: append 0..=40 four entries at a time over small files, truncate at 30 and at 25,
/// append 25..=35 of a later term, purge to 12, reopen, compare.
#[tokio::test]
async fn the_raft_log_reopens_whole_after_truncates_and_purges() {
    use openraft::RaftLogReader;
    use openraft::storage::RaftLogStorage;
    use openraft::storage::RaftLogStorageExt;

    let dir = tempfile::tempdir().unwrap();
    let mut log = small_file_log(dir.path());
    for chunk in blank_entries(0..=40, 1).chunks(4) {
        log.blocking_append(chunk.to_vec()).await.unwrap();
    }
    let files_before = log_files(dir.path()).len();
    assert!(files_before >= 4, "{files_before} files");
    log.truncate(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 30)).await.unwrap();
    log.truncate(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 25)).await.unwrap();
    assert_eq!(log.get_log_state().await.unwrap().last_log_id.unwrap().index, 24);
    log.blocking_append(blank_entries(25..=35, 2)).await.unwrap();
    log.purge(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 12)).await.unwrap();
    assert!(log_files(dir.path()).len() < files_before, "the purge removed files");
    let expected = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(expected.first().unwrap().log_id.index, 13, "purged entries are not read");
    assert_eq!(expected.len(), 23);
    assert_eq!(expected[12].log_id.leader_id.term, 2, "entry 25 is the later term's");
    let state = log.get_log_state().await.unwrap();
    drop(log);

    let mut log = small_file_log(dir.path());
    assert_eq!(log.get_log_state().await.unwrap(), state);
    assert_eq!(log.try_get_log_entries(0..100).await.unwrap(), expected);
    // Purged past its end (a follower installing a snapshot), the log is empty and goes on.
    log.purge(openraft::LogId::new(openraft::CommittedLeaderId::new(2, 1), 50)).await.unwrap();
    assert!(log_files(dir.path()).is_empty());
    log.blocking_append(blank_entries(51..=52, 2)).await.unwrap();
    drop(log);
    let mut log = small_file_log(dir.path());
    let state = log.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id.unwrap().index, state.last_log_id.unwrap().index), (50, 52));
}

/// Goal: a torn append (a crash before its fsync, so never acknowledged) is cut off at start-up,
/// and the log goes on from the last whole entry; a damaged entry in an earlier file is
/// reported as corruption when read, not decoded.
/// Method: append 0..=39 one entry per append, then damage the last file's tail (cut
/// mid-frame; then a flipped byte in the last frame), reopen each time; then flip a byte of
/// the first file's first entry.
#[tokio::test]
async fn a_torn_last_append_is_cut_off_at_start_up() {
    use openraft::RaftLogReader;
    use openraft::storage::RaftLogStorage;
    use openraft::storage::RaftLogStorageExt;

    let dir = tempfile::tempdir().unwrap();
    let mut log = small_file_log(dir.path());
    for entry in blank_entries(0..=39, 1) {
        log.blocking_append([entry]).await.unwrap();
    }
    drop(log);
    let last = log_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(len - 3).unwrap();
    let mut log = small_file_log(dir.path());
    assert_eq!(log.get_log_state().await.unwrap().last_log_id.unwrap().index, 38, "the cut frame is gone");
    log.blocking_append(blank_entries(39..=39, 2)).await.unwrap();
    drop(log);

    let last = log_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let end = bytes.len() - 1;
    bytes[end] ^= 0x40;
    std::fs::write(&last, &bytes).unwrap();
    let mut log = small_file_log(dir.path());
    assert_eq!(log.get_log_state().await.unwrap().last_log_id.unwrap().index, 38, "the altered frame is gone");
    assert_eq!(log.try_get_log_entries(0..39).await.unwrap().len(), 39);
    assert!(std::fs::metadata(&last).unwrap().len() < bytes.len() as u64, "the file was cut");
    drop(log);

    let first = log_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[12] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    let mut log = small_file_log(dir.path());
    assert!(log_files(dir.path()).len() >= 2, "the first file is not the last");
    let read = log.try_get_log_entries(0..9).await;
    assert!(read.is_err(), "a damaged entry is corruption: {read:?}");
}

/// A state machine on a temp dir holding a small ledger: site `p` (active), accounts `a` and
/// `b`, and 308 transfers from `a` to `b` over entries 2..=4 (so `a` has several history pages).
async fn must_small_ledger() -> (tempfile::TempDir, LedgerStateMachine) {
    use std::sync::Arc;

    use ledger_core::account::NewAccount;
    use ledger_core::command::Command;
    use ledger_core::command::Envelope;
    use ledger_core::site::SiteCommand;
    use ledger_core::site::SiteRole;
    use ledger_core::transfer::NewTransfer;
    use openraft::EntryPayload;
    use openraft::LogId;
    use openraft::storage::RaftStateMachine;

    use crate::raft::types::Entry;
    use crate::raft::types::Payload;

    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = super::open(dir.path(), 16 * 1024 * 1024).unwrap();
    let envelope = |command| Envelope { caller: "test".into(), command };
    let entry = |index: u64, commands: Vec<Envelope>| Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Payload::Commands { proposed_at_ms: 1000 + index, commands: Arc::new(commands) }),
    };
    let account = |id: &str| NewAccount {
        id: id.into(),
        currency: "EUR".into(),
        flags: Default::default(),
        overdraft_limit: None,
        code: 0,
        pii: Default::default(),
    };
    let transfers = |from: usize, n: usize| {
        let transfers = (from..from + n)
            .map(|i| NewTransfer::posted(&format!("t{i}"), "a", "b", ledger_core::Decimal::ONE))
            .collect();
        envelope(Command::CreateTransfers { transfers, atomic: false })
    };
    let bootstrap = envelope(Command::Site(SiteCommand::Bootstrap {
        name: "p".into(),
        role: SiteRole::Active,
        epoch: 1,
        upstream: vec![],
        dual_control: false,
    }));
    let accounts = envelope(Command::CreateAccounts(vec![account("a"), account("b")]));
    sm.apply(vec![entry(1, vec![bootstrap, accounts])]).await.unwrap();
    // 3 + 300 (two pages: 256 + 44) + 5 rows per account.
    sm.apply(vec![entry(2, vec![transfers(0, 3)])]).await.unwrap();
    sm.apply(vec![entry(3, vec![transfers(3, 300)])]).await.unwrap();
    sm.apply(vec![entry(4, vec![transfers(303, 5)])]).await.unwrap();
    (dir, sm)
}

/// Goal: history rows stored in pages (one page per account per apply) read back contiguous
/// from any index, across page boundaries, with any limit.
/// Method: apply three entries of transfers between two accounts through the state machine,
/// so each account gets several pages, then read every (from, limit) window.
#[tokio::test]
async fn history_pages_read_back_from_any_index() {
    use ledger_core::id::AccountId;

    let (_dir, sm) = must_small_ledger().await;
    let reader = sm.reader();
    let a = AccountId::new("a");
    assert_eq!(reader.account(&a).unwrap().history_len, 308);
    for from in [0, 1, 2, 3, 4, 5, 100, 258, 259, 260, 303, 304, 308, 309] {
        for limit in [1, 2, 7, 256, 1000] {
            let rows = reader.history(&a, from, limit);
            let first = from.max(1);
            let expected: Vec<u64> = (first..=308).take(limit).collect();
            let got: Vec<u64> = rows.iter().map(|r| r.index).collect();
            assert_eq!(got, expected, "from {from} limit {limit}");
        }
    }
    assert!(reader.history(&AccountId::new("b"), 1, 10).iter().all(|r| r.transfer_id.as_str().starts_with('t')));
    assert!(reader.history(&AccountId::new("nobody"), 1, 10).is_empty());
}

/// Goal (issue 9, defect 4): installing a snapshot never pulls the state out from under a
/// reader. Readers (the API, the ledger timer, the DR shipper and watcher) hold the state they
/// started with until they finish; a dropped sled tree would make their next read panic.
/// Method: a thread reads journal, history and accounts in a loop through one `StateReader`
/// while the state machine installs its own snapshot 40 times; the thread must not panic and
/// must always see the whole ledger (the snapshot holds the same state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_install_keeps_concurrent_readers_working() {
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering;

    use ledger_core::id::AccountId;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;

    let (_dir, mut sm) = must_small_ledger().await;
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    drop(snapshot);
    let reader = sm.reader();
    let n_records = reader.journal(1, 1000).len();
    assert!(n_records >= 4);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let reading = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let a = AccountId::new("a");
            let mut n_reads = 0u64;
            while !stop.load(Ordering::Relaxed) || n_reads == 0 {
                assert_eq!(reader.journal(1, 1000).len(), n_records, "every record is readable");
                assert_eq!(reader.history(&a, 1, 1000).len(), 308);
                assert_eq!(reader.account(&a).expect("account a").history_len, 308);
                n_reads += 1;
            }
            n_reads
        })
    };
    for _ in 0..40 {
        let current = sm.get_current_snapshot().await.unwrap().expect("a snapshot was built");
        sm.install_snapshot(&current.meta, current.snapshot).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let n_reads = reading.join().expect("the reader thread did not panic");
    assert!(n_reads > 0);
    // A reader taken after the installs reads the installed generation.
    assert_eq!(sm.reader().journal(1, 1000).len(), n_records);
}

/// Goal: nothing we store ends up in sled's blob files, which sled never fsyncs.
/// Method: write thousands of near-maximal values (as Raft entries and journal records are)
/// into one tree, sync, and look at `blobs/`.
#[test]
fn no_blob_files_under_full_size_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = super::SledDb::open(dir.path(), 16 * 1024 * 1024).unwrap();
    let tree = db.tree("raft_log").unwrap();
    let value = vec![0x5a; super::VALUE_BYTES_MAX - 16];
    for i in 0..2000u64 {
        tree.insert(i.to_be_bytes(), value.as_slice()).unwrap();
        if i % 100 == 0 {
            db.sync_blocking().unwrap();
        }
    }
    db.sync_blocking().unwrap();
    let blobs = std::fs::read_dir(dir.path().join("sled/blobs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blobs, 0, "pages spilled into unsynced blob files");
}

/// Goal (issue 9, defect 4): a reader that pinned the state before a snapshot install keeps
/// reading that state, whole, after the install (sled answers reads of a dropped tree with
/// `CollectionNotFound` and loops in iterators: before the fix the background tasks panicked);
/// the replaced generation is dropped once its last reader is gone, and at restart.
/// Method: pin a view, install the node's own snapshot twice, read through the old view, drop
/// it, apply once more, and look at which generations sled still has.
#[tokio::test]
async fn a_pinned_view_outlives_a_snapshot_install_then_its_generation_is_dropped() {
    use ledger_core::id::AccountId;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;

    let (dir, mut sm) = must_small_ledger().await;
    drop(sm.get_snapshot_builder().await.build_snapshot().await.unwrap());
    let reader = sm.reader();
    let n_records = reader.journal(1, 1000).len();
    let view = reader.view();
    assert_eq!(view.generation(), 1);
    for _ in 0..2 {
        let current = sm.get_current_snapshot().await.unwrap().expect("a snapshot was built");
        sm.install_snapshot(&current.meta, current.snapshot).await.unwrap();
    }
    assert_eq!(reader.view().generation(), 3, "new readers see the installed generation");
    assert_eq!(sm.generations(), vec![1, 3], "generation 1 is pinned, 2 had no reader");
    assert_eq!(view.journal(1, 1000).len(), n_records, "the pinned generation reads whole");
    assert_eq!(view.history(&AccountId::new("a"), 1, 1000).len(), 308);
    assert_eq!(view.meta().journal, reader.meta().journal, "the snapshot holds the same state");
    drop(view);
    sm.apply(Vec::<crate::raft::types::Entry>::new()).await.unwrap();
    assert_eq!(sm.generations(), vec![3], "the unpinned generation is dropped");
    // A restart drops any generation a crash left behind and opens the current one.
    drop((reader, sm));
    let (_log, sm) = super::open(dir.path(), 16 * 1024 * 1024).unwrap();
    assert_eq!(sm.generations(), vec![3]);
    assert_eq!(sm.reader().journal(1, 1000).len(), n_records);
}

/// Goal: a restart opens the state at its newest durable checkpoint, not at what was applied
/// in memory after it, and re-applying the log after the checkpoint yields the same state, bit
/// for bit (journal, history, transfers); bytes appended after the checkpoint are cut off.
/// Method: the small ledger, a checkpoint at entry 4, two more entries applied, then a reopen
/// of the same directory: `applied_state` must be entry 4; re-applying entries 5 and 6 must
/// give the journal and history the first process had.
#[tokio::test]
async fn a_restart_opens_the_checkpoint_and_reapplies_the_log_after_it() {
    use std::sync::Arc;

    use ledger_core::command::Command;
    use ledger_core::command::Envelope;
    use ledger_core::id::AccountId;
    use ledger_core::id::TransferId;
    use ledger_core::transfer::NewTransfer;
    use openraft::EntryPayload;
    use openraft::LogId;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;

    use crate::raft::types::Entry;
    use crate::raft::types::Payload;

    let (dir, mut sm) = must_small_ledger().await;
    let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(4));
    let later = |index: u64, from: usize| Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Payload::Commands {
            proposed_at_ms: 1000 + index,
            commands: Arc::new(vec![Envelope {
                caller: "test".into(),
                command: Command::CreateTransfers {
                    transfers: (from..from + 50)
                        .map(|i| NewTransfer::posted(&format!("t{i}"), "b", "a", ledger_core::Decimal::ONE))
                        .collect(),
                    atomic: false,
                },
            }]),
        }),
    };
    let tail = vec![later(5, 1000), later(6, 2000)];
    sm.apply(tail.clone()).await.unwrap();
    let reader = sm.reader();
    let journal = reader.journal(1, 10_000);
    let history = reader.history(&AccountId::new("a"), 1, 10_000);
    assert_eq!(history.len(), 408);
    let transfer = reader.transfer(&TransferId::new("t2049")).expect("last transfer");
    drop((reader, sm));

    let (log, mut sm) = super::open(dir.path(), 16 * 1024 * 1024).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(4), "the state opens at its checkpoint");
    let reader = sm.reader();
    assert_eq!(reader.journal(1, 10_000).len(), journal.len() - 2, "records after the checkpoint are cut off");
    assert!(reader.transfer(&TransferId::new("t2049")).is_none());
    sm.apply(tail).await.unwrap();
    assert_eq!(reader.journal(1, 10_000), journal, "re-applied journal is the same, byte for byte");
    assert_eq!(reader.history(&AccountId::new("a"), 1, 10_000), history);
    assert_eq!(reader.transfer(&TransferId::new("t2049")), Some(transfer.clone()));
    assert_eq!(reader.transfer(&TransferId::new("t7")).map(|t| t.request.id), Some(TransferId::new("t7")));

    // The indexes come from the key files beside the segments; a data dir without them (written
    // before they existed, or with them lost) opens the same from the records, and gets them back.
    sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    drop((reader, sm, log));
    let keys = key_files(dir.path());
    assert!(keys.len() >= 3, "a key file per segment: {keys:?}");
    for path in &keys {
        std::fs::remove_file(path).unwrap();
    }
    let (_log, sm) = super::open(dir.path(), 16 * 1024 * 1024).unwrap();
    let reader = sm.reader();
    assert_eq!(reader.journal(1, 10_000), journal);
    assert_eq!(reader.history(&AccountId::new("a"), 1, 10_000), history);
    assert_eq!(reader.transfer(&TransferId::new("t2049")), Some(transfer));
    assert_eq!(key_files(dir.path()), keys, "the key files are rewritten");
}

/// Every segment key file under `dir`, sorted.
fn key_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(key_files(&path));
        } else if path.extension().is_some_and(|e| e == "keys") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Goal: the Raft log is never purged past the last durable checkpoint: the entries above it
/// are what rebuilds the state after a crash.
/// Method: append entries 1..=10 to a log store whose state machine has a checkpoint at 0
/// (none), purge to 5 with no time to wait for a checkpoint: the store must refuse (panic)
/// before deleting anything.
#[tokio::test]
#[should_panic(expected = "past the last durable checkpoint")]
async fn the_log_is_never_purged_past_the_durable_checkpoint() {
    use openraft::EntryPayload;
    use openraft::LogId;
    use openraft::storage::RaftLogStorageExt;

    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm) = super::open(dir.path(), 16 * 1024 * 1024).unwrap();
    let entries: Vec<crate::raft::types::Entry> = (1..=10)
        .map(|index| crate::raft::types::Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        })
        .collect();
    log.blocking_append(entries).await.unwrap();
    log.purge_within(LogId::new(openraft::CommittedLeaderId::new(1, 1), 5), std::time::Duration::ZERO).await.unwrap();
}

/// Goal (issue 10): a checkpoint holds the state as of its cut, although the apply goes on
/// between the cut and the write (the cut shares the account shards; the apply copies a shard
/// before changing it), and the history positions, which no checkpoint holds, are rebuilt.
/// Method: the small ledger; take the builder (the cut) at entry 4, apply entry 5 (50 transfers
/// b → a), then build: the checkpoint's accounts must be those of entry 4; a reopen must find
/// entry 4's balances and history, and the live state entry 5's.
#[tokio::test]
async fn a_checkpoint_holds_the_state_of_its_cut_while_the_apply_goes_on() {
    use std::sync::Arc;

    use ledger_core::command::Command;
    use ledger_core::command::Envelope;
    use ledger_core::id::AccountId;
    use ledger_core::transfer::NewTransfer;
    use openraft::EntryPayload;
    use openraft::LogId;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;

    use crate::raft::types::Entry;
    use crate::raft::types::Payload;

    let (dir, mut sm) = must_small_ledger().await;
    let a = AccountId::new("a");
    let at_cut = sm.reader().account(&a).expect("account a");
    let mut builder = sm.get_snapshot_builder().await;
    let entry = Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 5),
        payload: EntryPayload::Normal(Payload::Commands {
            proposed_at_ms: 1005,
            commands: Arc::new(vec![Envelope {
                caller: "test".into(),
                command: Command::CreateTransfers {
                    transfers: (0..50)
                        .map(|i| NewTransfer::posted(&format!("u{i}"), "b", "a", ledger_core::Decimal::ONE))
                        .collect(),
                    atomic: false,
                },
            }]),
        }),
    };
    sm.apply(vec![entry]).await.unwrap();
    let live = sm.reader().account(&a).expect("account a");
    assert_ne!(live, at_cut, "entry 5 changed account a");
    assert_eq!(live.history_len, at_cut.history_len + 50);
    let built = builder.build_snapshot().await.unwrap();
    assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(4));
    assert_eq!(sm.reader().account(&a), Some(live.clone()), "the build left the live state alone");
    drop(sm);

    let (_log, sm) = super::open(dir.path(), 16 * 1024 * 1024).unwrap();
    let reader = sm.reader();
    assert_eq!(reader.account(&a), Some(at_cut.clone()), "the checkpoint holds the cut's account");
    assert_eq!(reader.history(&a, 1, 10_000).len() as u64, at_cut.history_len);
    assert_eq!(reader.sizes().2 as u64, at_cut.history_len * 2, "history rows counted at start-up");
}

/// Goal (issue 10): serving a snapshot copies nothing and pauses no apply: the current
/// snapshot is a manifest of the checkpoint and segment files (at 10 M transfers assembling
/// the stream took 27–35 s on the state-machine task); the stream it names, written to a file
/// as a follower receives it, installs the same state on a fresh node; and a stream cut short
/// anywhere is refused, leaving the follower as it was.
/// Method: the small ledger with a checkpoint; read the manifest's stream as the peer network
/// does; install it, and prefixes of it, on fresh state machines.
#[tokio::test]
async fn the_current_snapshot_is_a_manifest_and_the_stream_it_names_installs() {
    use std::io::Read;

    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;

    let (dir, mut sm) = must_small_ledger().await;
    assert!(sm.get_current_snapshot().await.unwrap().is_none(), "no checkpoint yet");
    let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let head = sm.reader().journal_head();
    let current = sm.get_current_snapshot().await.unwrap().expect("a checkpoint exists");
    assert_eq!(current.meta, built.meta);
    let manifest = current.snapshot.into_std().await;
    let manifest_len = manifest.metadata().unwrap().len();
    assert!(manifest_len < 4096, "a manifest, not a copy of the state: {manifest_len} bytes");
    let (mut stream, len) = super::snapshot::open(manifest, std::path::Path::new("manifest")).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, len, "the announced length is the stream's");
    assert!(len > 10 * manifest_len, "the stream holds the state: {len} bytes");
    assert!(walk(dir.path()).iter().all(|p| p.metadata().unwrap().len() < len), "no file holds the whole stream");

    // The receiver's check accepts the stream in parts of any size, and refuses it cut short
    // or with any byte changed.
    let check = |bytes: &[u8], part: usize| -> Result<(), String> {
        let mut check = super::snapshot::StreamCheck::default();
        for chunk in bytes.chunks(part) {
            check.feed(chunk)?;
        }
        check.finish()
    };
    for part in [1, 7, 4096, bytes.len()] {
        assert_eq!(check(&bytes, part), Ok(()), "parts of {part} bytes");
    }
    for cut in [0, 17, len / 2, len - 1] {
        assert!(check(&bytes[..cut as usize], 4096).is_err(), "cut at {cut}");
    }
    let mut positions: Vec<usize> = (0..64).collect();
    positions.extend((1..200).map(|i| i * bytes.len() / 200));
    positions.push(bytes.len() - 1);
    for at in positions {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        assert!(check(&damaged, 4096).is_err(), "byte {at} of {len} changed");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(check(&longer, 4096).is_err(), "a byte after the end");

    let receive = |bytes: &[u8]| {
        let follower_dir = tempfile::tempdir().unwrap();
        let (_log, follower) = super::open(follower_dir.path(), 16 * 1024 * 1024).unwrap();
        let path = follower_dir.path().join("received");
        std::fs::write(&path, bytes).unwrap();
        (follower_dir, _log, follower, path)
    };
    let (_follower_dir, _log, mut follower, path) = receive(&bytes);
    let file = tokio::fs::File::open(&path).await.unwrap();
    follower.install_snapshot(&current.meta, Box::new(file)).await.expect("the stream installs");
    assert_eq!(follower.reader().journal_head(), head);
    assert_eq!(follower.reader().meta(), sm.reader().meta());

    for cut in [0, 1, 40, len / 3, len / 2, len - 9, len - 1] {
        let (_follower_dir, _log, mut follower, path) = receive(&bytes[..cut as usize]);
        let before = follower.reader().journal_head();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let result = follower.install_snapshot(&current.meta, Box::new(file)).await;
        assert!(result.is_err(), "a stream cut at {cut} of {len} bytes was installed");
        assert_eq!(follower.reader().journal_head(), before, "cut at {cut}: the follower is unchanged");
        assert_eq!(follower.generations(), vec![1], "cut at {cut}: no generation left behind");
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
