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
