//! `LogStore`: the Raft log in append-only segment files, and the vote, committed and
//! last-purged ids in sled; implements openraft's `RaftLogStorage`.
//!
//! Why not sled: an append through sled was a per-key insert plus sled's flush (threads it
//! starts per flush) plus an `fdatasync` of its database file: 2.8 ms on average on a loaded
//! leader, against 0.4 ms for an `fdatasync` of an appended file. openraft 0.9's core waits for
//! each append's fsync before anything else, so that time bounded the entries per second.
//!
//! Files: `<data>/raft-log/<first index, 20 digits>.log`, each a run of frames `len: u32 LE ‖
//! crc32: u32 LE ‖ encoded entry` (the crc over `len ‖ entry`, as `segment.rs` frames), entry
//! `first + k` being the `k`-th frame. The writer rolls to a new file at the first append after
//! a file passed [`ROLL_BYTES`].
//!
//! Durability contract:
//! - `append` writes the frames (readable at once), then calls the flush callback only after
//!   `fdatasync` of the file (and of the directory, for a new file) returned: an entry openraft
//!   counts toward a quorum is on disk.
//! - `save_vote` returns only once the vote is on disk (sled flush + `fdatasync`): a lost vote
//!   allows a double vote.
//! - `save_committed` is not synced: it only lets a restarting node re-apply sooner.
//! - `truncate` removes the later files and syncs the directory, then shortens the file that
//!   keeps a prefix and syncs it: a crash in between leaves the log whole (the old tail back, or
//!   the new one), never with a hole.
//! - `purge` never goes past the state machine's last durable checkpoint (asserted), records
//!   `last_purged` durably, then deletes the files wholly at or below it; entries at or below
//!   `last_purged` still in a kept file are never read, and are dropped at start-up.
//!
//! Start-up walks the frame headers of every file, checks the files follow each other without
//! a gap, and verifies every frame of the last file: a torn append (a crash before its fsync,
//! never acknowledged) ends the log at the last whole frame, and the file is cut there. A frame
//! that fails its crc anywhere else is corruption, reported when it is read.
//!
//! The last `LOG_CACHE_ENTRIES` entries are also kept in memory (their payloads are shared
//! `Arc`s), so the leader's replication streams read what they just appended without decoding
//! it again.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
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
use super::io_err;
use super::off_the_workers;
use super::segment;
use super::segment::FrameFault;
use super::segment::checked_frame;
use super::sync_dir;
use super::timed_sync;
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

/// A log file takes appends until it holds this many bytes; the next append starts a new one.
/// The purge frees space a file at a time, so this is also the most a purge leaves behind.
pub const ROLL_BYTES: u64 = 32 * 1024 * 1024;

/// Frame header: length and crc32 (the segment logs' frame).
const FRAME_HEADER_BYTES: usize = segment::FRAME_HEADER_BYTES as usize;

/// Recent entries kept in memory for replication reads.
const LOG_CACHE_ENTRIES: usize = 1024;

/// Most bytes of entries one `limited_get_log_entries` returns (plus the entry that crosses
/// it), so an AppendEntries arrives well within a heartbeat interval on a loaded machine
/// (openraft 0.9 cancels it after one; see `NodeConfig::openraft`). Entries are at most
/// 240 KiB each.
const READ_BATCH_BYTES_MAX: usize = 512 * 1024;

#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    /// Holds the vote, committed and last-purged ids (`raft_meta`).
    db: SledDb,
    meta: sled::Tree,
    roll_bytes: u64,
    files: RwLock<Files>,
    /// Last committed index, as openraft told us; for status and metrics.
    committed_index: Arc<AtomicU64>,
    /// The most recent entries, contiguous, by index.
    cache: Mutex<BTreeMap<u64, Entry>>,
    /// The state machine's newest durable checkpoint index: `purge` never goes past it.
    purge_ceiling: Arc<AtomicU64>,
}

/// The log's files, oldest first, and what openraft's `LogState` reports.
struct Files {
    list: VecDeque<LogFile>,
    purged: Option<LogId>,
    /// The last entry's id; `None` when the log holds no entry above `purged`.
    last: Option<LogId>,
}

struct LogFile {
    first: u64,
    path: PathBuf,
    /// Shared with the append's fsync, which runs on a blocking thread after the lock is
    /// released.
    file: Arc<File>,
    /// Where each frame starts: entry `first + k` at `starts[k]`.
    starts: Vec<u64>,
    len: u64,
}

impl LogFile {
    /// One past the index of its last entry.
    fn end(&self) -> u64 {
        self.first + self.starts.len() as u64
    }

    /// Entries `[from, to)`, which this file holds.
    fn read(&self, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let (start, end) = self.span(from, to);
        let mut bytes = vec![0; (end - start) as usize];
        self.file.read_exact_at(&mut bytes, start).map_err(io_err(&self.path))?;
        let mut entries = Vec::with_capacity((to - from) as usize);
        let mut at = 0;
        for index in from..to {
            let (entry, size) = decode_frame(index, &bytes[at..])?;
            entries.push(entry);
            at += size;
        }
        Ok(entries)
    }

    /// The byte range of the frames of entries `[from, to)` (within this file).
    fn span(&self, from: u64, to: u64) -> (u64, u64) {
        let start = self.starts[(from - self.first) as usize];
        let end = if to >= self.end() { self.len } else { self.starts[(to - self.first) as usize] };
        (start, end)
    }
}

fn read_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt { what: "raft log entry", detail }
}

fn file_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// Appends `entry` to `out` as a frame.
pub(crate) fn encode_frame(entry: &Entry, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    codec::encode_onto(entry, out);
    let len = u32::try_from(out.len() - at - FRAME_HEADER_BYTES).expect("an entry is under 4 GiB");
    let crc = segment::frame_crc(len, &out[at + FRAME_HEADER_BYTES..]);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The frame's length field, if `bytes` start with a header.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().expect("4 bytes")) as usize)
}

/// Decodes the frame at the front of `bytes` as entry `index`; returns it and the frame's size.
pub(crate) fn decode_frame(index: u64, bytes: &[u8]) -> Result<(Entry, usize), StoreError> {
    let (body, size) = checked_frame(bytes).map_err(|fault| match fault {
        FrameFault::Short => corrupt(format!("entry {index}: frame of {} bytes is cut short", bytes.len())),
        FrameFault::Checksum => corrupt(format!("entry {index} fails its checksum")),
    })?;
    let entry: Entry = codec::decode(body).map_err(|e| corrupt(format!("entry {index}: {e}")))?;
    if entry.log_id.index != index {
        return Err(corrupt(format!("entry stored at {index} has index {}", entry.log_id.index)));
    }
    Ok((entry, size))
}

impl LogStore {
    /// Opens the log under `dir` (created if missing) with its ids in `db`. `purge_ceiling` is
    /// the index of the state machine's newest durable checkpoint: the log is never purged past
    /// it.
    pub fn open(db: SledDb, dir: &Path, purge_ceiling: Arc<AtomicU64>) -> Result<Self, StoreError> {
        Self::open_rolling_at(db, dir, purge_ceiling, ROLL_BYTES)
    }

    /// [`LogStore::open`] with files rolled at `roll_bytes` (tests use small files).
    pub fn open_rolling_at(
        db: SledDb,
        dir: &Path,
        purge_ceiling: Arc<AtomicU64>,
        roll_bytes: u64,
    ) -> Result<Self, StoreError> {
        let meta = db.tree("raft_meta")?;
        let committed: Option<LogId> = read_meta::<Option<LogId>>(&meta, COMMITTED)?.flatten();
        let purged: Option<LogId> = read_meta(&meta, LAST_PURGED)?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (list, last) = load_files(dir, purged)?;
        Ok(LogStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                db,
                meta,
                roll_bytes,
                files: RwLock::new(Files { list, purged, last }),
                committed_index: Arc::new(AtomicU64::new(committed.map_or(0, |c| c.index))),
                cache: Mutex::new(BTreeMap::new()),
                purge_ceiling,
            }),
        })
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
            let ceiling = self.shared.purge_ceiling.load(Ordering::Acquire);
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
        self.shared.meta.insert(LAST_PURGED, codec::encode(&log_id)).map_err(write_err)?;
        self.shared.db.sync().await.map_err(write_err)?;
        self.shared.cache.lock().expect("lock is never poisoned").retain(|index, _| *index > log_id.index);
        let removed: Vec<PathBuf> = {
            let mut files = self.shared.files.write().expect("lock is never poisoned");
            files.purged = Some(log_id);
            if files.last.is_some_and(|last| last.index <= log_id.index) {
                files.last = None;
            }
            let mut removed = Vec::new();
            while files.list.front().is_some_and(|f| f.end() <= log_id.index + 1) {
                removed.push(files.list.pop_front().expect("a front file").path);
            }
            removed
        };
        // Deleted after `last_purged` is durable: a file that comes back after a crash holds
        // only purged entries, which the start-up drops.
        for path in removed {
            std::fs::remove_file(&path).map_err(io_err(&path)).map_err(write_err)?;
        }
        Ok(())
    }

    /// The index the log is purged up to, if any.
    pub fn last_purged_index(&self) -> Option<u64> {
        self.shared.files.read().expect("lock is never poisoned").purged.map(|p| p.index)
    }

    /// Shared view of the committed index, for status and metrics.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.shared.committed_index.clone()
    }

    /// The entries of `[start, end)` if the cache holds all of them.
    fn cached(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let cache = self.shared.cache.lock().expect("lock is never poisoned");
        let first = *cache.keys().next()?;
        let last = *cache.keys().next_back()?;
        if start < first || end > last + 1 || start >= end {
            return None;
        }
        Some(cache.range(start..end).map(|(_, e)| e.clone()).collect())
    }

    /// The entries of `range` that the log holds (not purged), stopping after the entry that
    /// reaches `bytes_max`.
    fn read_range(&self, range: impl RangeBounds<u64>, bytes_max: usize) -> Result<Vec<Entry>, StoreError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i + 1,
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(entries) = self.cached(start, end) {
            return Ok(entries);
        }
        // Read under the lock: a truncate cuts files under the write lock, so a reader never
        // reads a frame that is being cut or rewritten (a deposed leader's replication task
        // can still be reading when the new leader's entries truncate its log).
        let files = self.shared.files.read().expect("lock is never poisoned");
        let start = start.max(files.purged.map_or(0, |p| p.index + 1));
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        for file in &files.list {
            let (from, to) = (start.max(file.first), end.min(file.end()));
            if from >= to {
                continue;
            }
            // Stop after the entry that reaches `bytes_max`.
            let mut stop = from;
            while stop < to && bytes < bytes_max as u64 {
                let (a, b) = file.span(stop, stop + 1);
                bytes += b - a;
                stop += 1;
            }
            entries.extend(file.read(from, stop)?);
            if bytes >= bytes_max as u64 {
                break;
            }
        }
        Ok(entries)
    }

    /// Writes `entries` as frames after the last one (a new file first if the last is full);
    /// returns the file to fsync and whether the directory needs one too.
    fn write(&self, entries: &[Entry]) -> Result<(Arc<File>, bool), StoreError> {
        let mut frames = Vec::with_capacity(entries.len() * 256);
        let mut starts = Vec::with_capacity(entries.len());
        for (k, entry) in entries.iter().enumerate() {
            assert_eq!(entry.log_id.index, entries[0].log_id.index + k as u64, "appended entries are contiguous");
            starts.push(frames.len() as u64);
            encode_frame(entry, &mut frames);
        }
        let first = entries[0].log_id.index;
        let mut files = self.shared.files.write().expect("lock is never poisoned");
        // An empty log that was never purged starts anywhere (openraft's first entry is 0).
        if let Some(last) = files.last.or(files.purged) {
            assert_eq!(first, last.index + 1, "an append continues the log: no hole, no overlap (truncate first)");
        }
        let created = files.list.back().is_none_or(|f| f.len >= self.shared.roll_bytes);
        if created {
            let path = file_path(&self.shared.dir, first);
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_err(&path))?;
            files.list.push_back(LogFile { first, path, file: Arc::new(file), starts: Vec::new(), len: 0 });
        }
        let file = files.list.back_mut().expect("a file to append to");
        file.file.write_all_at(&frames, file.len).map_err(io_err(&file.path))?;
        file.starts.extend(starts.iter().map(|s| file.len + s));
        file.len += frames.len() as u64;
        let handle = file.file.clone();
        files.last = Some(entries[entries.len() - 1].log_id);
        Ok((handle, created))
    }

    /// Removes the entries from `index` on (a truncate), under the write lock so that no
    /// reader sees a file while it is cut. The later files go first (and the directory is
    /// synced), then the kept file is cut and synced: a crash in between leaves the old tail
    /// whole, never a hole.
    fn cut_from(&self, index: u64) -> Result<(), StoreError> {
        let mut files = self.shared.files.write().expect("lock is never poisoned");
        let mut removed = false;
        while files.list.back().is_some_and(|f| f.first >= index) {
            let file = files.list.pop_back().expect("a back file");
            std::fs::remove_file(&file.path).map_err(io_err(&file.path))?;
            removed = true;
        }
        if removed {
            sync_dir(&self.shared.dir)?;
        }
        if let Some(file) = files.list.back_mut()
            && index < file.end()
        {
            let (cut, _) = file.span(index, index + 1);
            file.file.set_len(cut).map_err(io_err(&file.path))?;
            file.file.sync_all().map_err(io_err(&file.path))?;
            file.starts.truncate((index - file.first) as usize);
            file.len = cut;
        }
        files.last = last_id(&files.list)?;
        Ok(())
    }

    fn remember(&self, entries: Vec<Entry>) {
        let mut cache = self.shared.cache.lock().expect("lock is never poisoned");
        for entry in entries {
            // Keep the cache contiguous: a gap (after a truncate or purge) restarts it.
            if cache.keys().next_back().is_some_and(|last| *last + 1 != entry.log_id.index) {
                cache.clear();
            }
            cache.insert(entry.log_id.index, entry);
        }
        while cache.len() > LOG_CACHE_ENTRIES {
            cache.pop_first();
        }
    }
}

/// The files under `dir`, checked, with the entries at or below `purged` dropped and a torn
/// last append cut off; and the last entry's id.
fn load_files(dir: &Path, purged: Option<LogId>) -> Result<(VecDeque<LogFile>, Option<LogId>), StoreError> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let name = entry.map_err(io_err(dir))?.file_name();
        if let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok()) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let keep_from = purged.map_or(0, |p| p.index + 1);
    let mut list: VecDeque<LogFile> = VecDeque::new();
    let n_files = firsts.len();
    for (k, first) in firsts.into_iter().enumerate() {
        let path = file_path(dir, first);
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
        let is_last = k + 1 == n_files;
        let (starts, len) = if is_last { verified_frames(&file, &path)? } else { frame_starts(&file, &path)? };
        let log_file = LogFile { first, path, file: Arc::new(file), starts, len };
        if let Some(previous) = list.back()
            && previous.end() != first
        {
            return Err(corrupt(format!(
                "{} starts at entry {first} but the file before it ends at {}",
                log_file.path.display(),
                previous.end()
            )));
        }
        if log_file.starts.is_empty() || log_file.end() <= keep_from {
            // Only purged entries, or a file created by an append that never reached it.
            std::fs::remove_file(&log_file.path).map_err(io_err(&log_file.path))?;
            continue;
        }
        if is_last && log_file.file.metadata().map_err(io_err(&log_file.path))?.len() > log_file.len {
            tracing::warn!(path = %log_file.path.display(), entries = log_file.starts.len(), "cutting a torn append off the Raft log (it was never acknowledged)");
            log_file.file.set_len(log_file.len).map_err(io_err(&log_file.path))?;
            log_file.file.sync_all().map_err(io_err(&log_file.path))?;
        }
        list.push_back(log_file);
    }
    if let Some(front) = list.front()
        && let Some(purged) = purged
        && front.first > purged.index + 1
    {
        return Err(corrupt(format!(
            "the log starts at entry {} but is purged only up to {}",
            front.first, purged.index
        )));
    }
    let last = last_id(&list)?;
    Ok((list, last))
}

/// The id of the last entry `list` holds.
fn last_id(list: &VecDeque<LogFile>) -> Result<Option<LogId>, StoreError> {
    match list.back() {
        Some(file) => Ok(file.read(file.end() - 1, file.end())?.pop().map(|e| e.log_id)),
        None => Ok(None),
    }
}

/// The frame starts of a file that later files follow (so it was whole when they were made),
/// from its headers alone; and its length.
fn frame_starts(file: &File, path: &Path) -> Result<(Vec<u64>, u64), StoreError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut starts = Vec::new();
    let mut at = 0;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    while at < len {
        file.read_exact_at(&mut header, at).map_err(io_err(path))?;
        let size = FRAME_HEADER_BYTES as u64 + frame_len(&header).expect("a header") as u64;
        if at + size > len {
            return Err(corrupt(format!("{}: the frame at byte {at} runs past the end", path.display())));
        }
        starts.push(at);
        at += size;
    }
    Ok((starts, len))
}

/// The frame starts of the last file, each frame's crc checked, up to the first frame that is
/// cut short or fails its crc (a torn append); and the length they cover.
fn verified_frames(file: &File, path: &Path) -> Result<(Vec<u64>, u64), StoreError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(io_err(path))?;
    let mut starts = Vec::new();
    let mut at = 0usize;
    while let Ok((_, size)) = checked_frame(&bytes[at..]) {
        starts.push(at as u64);
        at += size;
    }
    Ok((starts, at as u64))
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

impl RaftLogReader<TypeConfig> for LogStore {
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

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let files = self.shared.files.read().expect("lock is never poisoned");
        Ok(LogState { last_purged_log_id: files.purged, last_log_id: files.last.or(files.purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.shared.meta.insert(VOTE, codec::encode(vote)).map_err(|e| StorageIOError::write_vote(&e))?;
        self.shared.db.sync().await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_meta(&self.shared.meta, VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.shared.meta.insert(COMMITTED, codec::encode(&committed)).map_err(write_err)?;
        self.shared.committed_index.store(committed.map_or(0, |c| c.index), Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(read_meta::<Option<LogId>>(&self.shared.meta, COMMITTED).map_err(read_err)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Entries at or below the purge point are in the state machine already: openraft's
        // start-up purges a log that is behind the state machine, and its storage suite then
        // appends below that point.
        let purged = self.last_purged_index();
        let entries: Vec<Entry> = entries.into_iter().filter(|e| purged.is_none_or(|p| e.log_id.index > p)).collect();
        if entries.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let (file, created) = self.write(&entries).map_err(write_err)?;
        self.remember(entries);
        // Durable before openraft may count these entries toward a quorum.
        let dir = self.shared.dir.clone();
        let synced = timed_sync(move || {
            if created {
                sync_dir(&dir)?;
            }
            file.sync_data().map_err(io_err(&dir))
        })
        .await;
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
        self.shared.cache.lock().expect("lock is never poisoned").retain(|i, _| *i < log_id.index);
        off_the_workers(|| self.cut_from(log_id.index)).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.purge_within(log_id, PURGE_WAIT_MAX).await
    }
}
