//! Storage conformance: the sled stores pass openraft's own `Suite`, and a few contracts the
//! suite does not cover (checksums, generations) are checked here.

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;

use super::SledLogStore;
use super::SledStateMachine;
use crate::raft::types::StorageError;
use crate::raft::types::TypeConfig;

struct SledBuilder;

impl StoreBuilder<TypeConfig, SledLogStore, SledStateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, SledLogStore, SledStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = super::open(dir.path(), 16 * 1024 * 1024).expect("open store");
        Ok((dir, log, sm))
    }
}

/// Goal: the sled log store and state machine meet every openraft storage contract.
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
    let mut value = super::log::encode_entry(&entry);
    assert!(super::log::decode_entry(5, &value).is_ok());
    let last = value.len() - 1;
    value[last] ^= 0x01;
    assert!(super::log::decode_entry(5, &value).is_err());
    // An entry read back at the wrong index is corruption too.
    let value = super::log::encode_entry(&entry);
    assert!(super::log::decode_entry(6, &value).is_err());
}

/// Goal: history rows stored in pages (one page per account per apply) read back contiguous
/// from any index, across page boundaries, with any limit.
/// Method: apply three entries of transfers between two accounts through the state machine,
/// so each account gets several pages, then read every (from, limit) window.
#[tokio::test]
async fn history_pages_read_back_from_any_index() {
    use std::sync::Arc;

    use ledger_core::account::NewAccount;
    use ledger_core::command::Command;
    use ledger_core::command::Envelope;
    use ledger_core::id::AccountId;
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
