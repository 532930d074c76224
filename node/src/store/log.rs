//! `SledLogStore`: the Raft log and vote, implementing openraft's `RaftLogStorage`.
//!
//! Durability contract:
//! - `append` makes the entries readable at once, and calls the flush callback only after
//!   [`SledDb::sync`] returned: an entry openraft counts toward a quorum is on disk.
//! - `save_vote` returns only once the vote is on disk (a lost vote allows a double vote).
//! - `save_committed` is not synced: it only lets a restarting node re-apply sooner.
//! - `purge` never goes past the state machine's last durable checkpoint (asserted), records
//!   `last_purged` durably, then deletes.
//!
//! Each entry is stored as `crc32 || encoded entry`; a mismatch on read is reported as
//! corruption instead of being decoded.
//!
//! The last `LOG_CACHE_ENTRIES` entries are also kept in memory (their payloads are shared
//! `Arc`s), so the leader's replication streams read what they just appended without decoding
//! it again from sled.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use ledger_core::codec;
use openraft::LogState;
use openraft::RaftLogReader;
use openraft::StorageIOError;
use openraft::storage::LogFlushed;
use openraft::storage::RaftLogStorage;

use super::SledDb;
use super::StoreError;
use crate::raft::types::Entry;
use crate::raft::types::LogId;
use crate::raft::types::StorageError;
use crate::raft::types::TypeConfig;
use crate::raft::types::Vote;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Longest a purge waits for the state machine's checkpoint to reach it (a snapshot install
/// of a large state on a slow disk).
const PURGE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(600);

/// Raft log keys: the index, big-endian, so byte order is index order.
fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn parse_log_key(key: &[u8]) -> u64 {
    u64::from_be_bytes(key.try_into().expect("raft log keys are 8 bytes"))
}

/// Recent entries kept in memory for replication reads.
const LOG_CACHE_ENTRIES: usize = 1024;

/// Most bytes of entries one `limited_get_log_entries` returns, so an AppendEntries stays far
/// below the gRPC message limit (entries are at most 64 KiB each).
const READ_BATCH_BYTES_MAX: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct SledLogStore {
    db: SledDb,
    log: sled::Tree,
    meta: sled::Tree,
    /// Last committed index, as openraft told us; for status and metrics.
    committed_index: Arc<AtomicU64>,
    /// The most recent entries, contiguous, by index.
    cache: Arc<Mutex<BTreeMap<u64, Entry>>>,
    /// The state machine's newest durable checkpoint index: `purge` never goes past it.
    purge_ceiling: Arc<AtomicU64>,
}

fn read_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

pub(crate) fn encode_entry(entry: &Entry) -> Vec<u8> {
    let body = codec::encode(entry);
    let mut value = Vec::with_capacity(4 + body.len());
    value.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    value.extend_from_slice(&body);
    value
}

pub(crate) fn decode_entry(index: u64, value: &[u8]) -> Result<Entry, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { what: "raft log entry", detail };
    if value.len() < 5 {
        return Err(corrupt(format!("entry {index} is {} bytes", value.len())));
    }
    let (crc, body) = value.split_at(4);
    let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != stored {
        return Err(corrupt(format!("entry {index} fails its checksum")));
    }
    let entry: Entry = codec::decode(body).map_err(|e| corrupt(format!("entry {index}: {e}")))?;
    if entry.log_id.index != index {
        return Err(corrupt(format!("entry stored at {index} has index {}", entry.log_id.index)));
    }
    Ok(entry)
}

impl SledLogStore {
    /// `purge_ceiling` is the index of the state machine's newest durable checkpoint: the log
    /// is never purged past it.
    pub fn new(db: SledDb, purge_ceiling: Arc<AtomicU64>) -> Result<Self, StoreError> {
        let log = db.tree("raft_log")?;
        let meta = db.tree("raft_meta")?;
        let committed: Option<LogId> = read_meta::<Option<LogId>>(&meta, COMMITTED)?.flatten();
        let committed_index = Arc::new(AtomicU64::new(committed.map_or(0, |c| c.index)));
        Ok(SledLogStore { db, log, meta, committed_index, cache: Arc::new(Mutex::new(BTreeMap::new())), purge_ceiling })
    }

    /// `purge`, waiting at most `wait` for the checkpoint to reach `log_id` (see there).
    pub(crate) async fn purge_within(&mut self, log_id: LogId, wait: std::time::Duration) -> Result<(), StorageError> {
        // The log is never purged past the last durable checkpoint: the entries above it are
        // what rebuilds the state after a crash, and a `last_purged` past it would leave a
        // restarted node with neither. openraft purges only below its newest snapshot, and a
        // snapshot is reported built only once its checkpoint is durable; but on a follower it
        // orders the purge for an installed snapshot at the same time as the install, which
        // runs on the state machine's task. So a purge past the ceiling waits for the
        // install's checkpoint (bounded; then fail-stop).
        let deadline = std::time::Instant::now() + wait;
        loop {
            let ceiling = self.purge_ceiling.load(Ordering::Acquire);
            if log_id.index <= ceiling {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "purge to {} past the last durable checkpoint {ceiling} (waited {wait:?})",
                log_id.index
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.meta.insert(LAST_PURGED, codec::encode(&log_id)).map_err(write_err)?;
        self.db.sync().await.map_err(write_err)?;
        self.cache.lock().expect("lock is never poisoned").retain(|index, _| *index > log_id.index);
        let mut batch = sled::Batch::default();
        for key in self.log.range(..=log_key(log_id.index)).keys() {
            batch.remove(key.map_err(write_err)?);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        Ok(())
    }

    /// The index the log is purged up to, if any.
    pub fn last_purged_index(&self) -> Result<Option<u64>, StoreError> {
        let purged: Option<LogId> = read_meta(&self.meta, LAST_PURGED)?;
        Ok(purged.map(|p| p.index))
    }

    /// Shared view of the committed index, for status and metrics.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed_index.clone()
    }

    /// The entries of `[start, end)` if the cache holds all of them.
    fn cached(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let cache = self.cache.lock().expect("lock is never poisoned");
        let first = *cache.keys().next()?;
        let last = *cache.keys().next_back()?;
        if start < first || end > last + 1 || start >= end {
            return None;
        }
        Some(cache.range(start..end).map(|(_, e)| e.clone()).collect())
    }

    fn read_range(&self, range: impl RangeBounds<u64>, bytes_max: usize) -> Result<Vec<Entry>, StoreError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Some(*i),
            Bound::Excluded(i) => Some(i + 1),
            Bound::Unbounded => None,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        if let (Some(start), Some(end)) = (start, end)
            && let Some(entries) = self.cached(start, end)
        {
            return Ok(entries);
        }
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        let mut bytes = 0;
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (key, value) = item?;
            let index = parse_log_key(&key);
            bytes += value.len();
            entries.push(decode_entry(index, &value)?);
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(entries)
    }
}

fn read_meta<T: serde::de::DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            what: "raft meta",
            detail: format!("{}: {e}", String::from_utf8_lossy(key)),
        }),
    }
}

impl RaftLogReader<TypeConfig> for SledLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range(range, usize::MAX).map_err(read_err)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        // Returns at least one entry for a non-empty range whose first entry exists.
        self.read_range(start..end, READ_BATCH_BYTES_MAX).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = SledLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = read_meta(&self.meta, LAST_PURGED).map_err(read_err)?;
        let last = match self.log.last().map_err(read_err)? {
            Some((key, value)) => Some(decode_entry(parse_log_key(&key), &value).map_err(read_err)?.log_id),
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.meta.insert(VOTE, codec::encode(vote)).map_err(|e| StorageIOError::write_vote(&e))?;
        self.db.sync().await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_meta(&self.meta, VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.meta.insert(COMMITTED, codec::encode(&committed)).map_err(write_err)?;
        self.committed_index.store(committed.map_or(0, |c| c.index), Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(read_meta::<Option<LogId>>(&self.meta, COMMITTED).map_err(read_err)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        let mut last_index = None;
        let mut cached = Vec::new();
        for entry in entries {
            if let Some(prev) = last_index {
                assert_eq!(entry.log_id.index, prev + 1, "appended entries are contiguous");
            }
            last_index = Some(entry.log_id.index);
            batch.insert(&log_key(entry.log_id.index), encode_entry(&entry));
            cached.push(entry);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        {
            let mut cache = self.cache.lock().expect("lock is never poisoned");
            for entry in cached {
                // Keep the cache contiguous: a gap (after a truncate) restarts it.
                if cache.keys().next_back().is_some_and(|last| *last + 1 != entry.log_id.index) {
                    cache.clear();
                }
                cache.insert(entry.log_id.index, entry);
            }
            while cache.len() > LOG_CACHE_ENTRIES {
                cache.pop_first();
            }
        }
        // Durable before openraft may count these entries toward a quorum.
        let synced = self.db.sync().await;
        match synced {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                return Err(write_err(e));
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.cache.lock().expect("lock is never poisoned").retain(|index, _| *index < log_id.index);
        let mut batch = sled::Batch::default();
        for key in self.log.range(log_key(log_id.index)..).keys() {
            batch.remove(key.map_err(write_err)?);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        self.db.sync().await.map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.purge_within(log_id, PURGE_WAIT_MAX).await
    }
}
