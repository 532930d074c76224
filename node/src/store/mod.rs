//! Storage: the Raft log in append-only files (`log.rs`) with its vote and ids on sled, the
//! ledger state in memory and in append-only segment logs with checkpoints (`state.rs`,
//! `ledger_state.rs`). The ONLY module that touches the disk or imports sled (architecture
//! invariant, checked by the `tidy` test).
//!
//! One sled database per node (`<data>/sled`), with one tree, `raft_meta`: the vote, the
//! committed log id, the last purged log id. The Raft log is under `<data>/raft-log`, the
//! ledger state under `<data>/state` (see `log.rs` and `state.rs` for their contracts).
//!
//! Durability contract (see ARCHITECTURE.md "Storage"): sled's own flush uses
//! `sync_file_range`, which does not reach a drive's volatile cache, so [`SledDb::sync`]
//! flushes sled and then `fdatasync`s the database file.
//!
//! sled writes any log item larger than `segment_size / 4` to a separate blob file that it
//! never fsyncs. That threshold applies to whole *pages*, not just values: when sled
//! consolidates a leaf it writes the full node, up to 17 items. We use 8 MiB segments (2 MiB
//! threshold) and keep every value under 64 KiB, so a leaf never spills (the
//! `no_blob_files_under_full_size_values` test holds this); the values sled holds now are a
//! few bytes each.

pub mod checkpoint;
pub mod ledger_state;
pub mod log;
pub mod segment;
pub mod snapshot;
pub mod state;

use std::fs::File;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

pub use log::LogStore;
pub use state::LedgerStateMachine;
pub use state::StateReader;
pub use state::StateView;

/// A storage failure. Any of these inside Raft storage is fatal for the node.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("io on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// Maps an I/O error to a [`StoreError`] naming the file.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Makes a directory's entries durable (a created, renamed or removed file in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Writes `len` bytes of `file` from `offset` to the disk, waits for them, and drops them from
/// the page cache (Linux `sync_file_range` and `posix_fadvise(DONTNEED)`; elsewhere nothing).
/// Not durability: pacing and memory.
/// - Pacing: a large write left to the kernel piles up dirty pages, and the next fsync on the
///   same disk (every Raft log append commits the file system's journal, which waits for the
///   data it orders) queues behind the burst: the nodes of one host stalled together for
///   30-170 ms that way. Written back in small steps, without a journal commit, the burst
///   never forms.
/// - Memory: what goes through here (segments, checkpoints) is written once and rarely read
///   again. Left cached, the page cache grows by a kilobyte per transfer and every write lands
///   in a page the kernel has to find first: on the VMs we measure on, a never-used page cost
///   ten times the copy into a reused one (buffered writes at 250-300 MB/s against 3.6 GB/s),
///   a third of the apply's time in the cluster. Dropped once on disk, the same pages are used
///   again. A read of a dropped record goes to the disk.
#[allow(unsafe_code)] // two system calls that neither nix nor rustix wraps
pub(crate) fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // A length of 0 means "to the end of the file" to both calls: never what a caller means.
    if len == 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let (offset, len) = (offset as libc::off64_t, len as libc::off64_t);
        // SAFETY: a plain system call on a descriptor `file` keeps open for the call.
        if unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above. Advice only: it returns an error number instead of setting errno.
        let advised = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) };
        if advised != 0 {
            return Err(io::Error::from_raw_os_error(advised));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
    Ok(())
}

/// Bytes written between two write-backs ([`write_back`]), by a [`PacedFile`] and by the
/// segment logs' writeback thread.
pub(crate) const WRITE_BACK_STEP_BYTES: u64 = 1024 * 1024;

/// A file written from its start, written back to the disk every [`WRITE_BACK_STEP_BYTES`] on the
/// way (see [`write_back`]): for the large files a node writes beside its Raft log
/// (checkpoints, fingerprint files), so that their final fsync finds little left to write.
pub(crate) struct PacedFile<'a> {
    file: &'a File,
    written: u64,
    written_back: u64,
}

impl<'a> PacedFile<'a> {
    pub(crate) fn new(file: &'a File) -> PacedFile<'a> {
        PacedFile { file, written: 0, written_back: 0 }
    }
}

impl io::Write for PacedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let step = buf.len().min(WRITE_BACK_STEP_BYTES as usize);
        let n = io::Write::write(&mut self.file, &buf[..step])?;
        self.written += n as u64;
        if self.written - self.written_back >= WRITE_BACK_STEP_BYTES {
            write_back(self.file, self.written_back, self.written - self.written_back)?;
            self.written_back = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A Raft log fsync at least this long is logged: half the shortest election timeout we ship.
const SLOW_FSYNC: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs `sync` off the async workers and records it as a Raft log fsync
/// (`ledger_log_fsync_duration_seconds`, etcd's `wal_fsync_duration_seconds`): openraft 0.9's
/// core waits for it on every append, so a slow disk stalls heartbeats too, and one over
/// [`SLOW_FSYNC`] is logged.
pub(crate) async fn timed_sync(
    sync: impl FnOnce() -> Result<(), StoreError> + Send + 'static,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let synced = tokio::task::spawn_blocking(sync).await.expect("fsync task does not panic");
    let took = started.elapsed();
    metrics::histogram!("ledger_log_fsync_duration_seconds").record(took.as_secs_f64());
    if took >= SLOW_FSYNC {
        tracing::warn!(ms = took.as_millis() as u64, "slow Raft log fsync (the disk is saturated or failing)");
    }
    synced
}

/// sled segment size: large enough that no page ever spills into an unsynced blob file.
pub const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// The largest value we store; leaves of 17 such values stay under `SEGMENT_BYTES / 4`.
pub const VALUE_BYTES_MAX: usize = 64 * 1024;
const _: () = assert!(17 * (VALUE_BYTES_MAX + 1024) < SEGMENT_BYTES / 4);

/// The node's sled database and the file handle used to fsync it.
#[derive(Clone)]
pub struct SledDb {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    dir: PathBuf,
    /// `<dir>/db`, the file holding sled's log and pages; `fdatasync` on it after a flush.
    db_file: File,
}

impl SledDb {
    /// Opens (or creates) the database under `dir/sled`.
    ///
    /// `cache_bytes` bounds sled's page cache; sled's RSS can reach several times this.
    /// The background flush is left at sled's default as a backstop only: durability comes from
    /// the explicit [`SledDb::sync`] calls of the log store.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledDb, StoreError> {
        let sled_dir = dir.join("sled");
        std::fs::create_dir_all(&sled_dir).map_err(|source| StoreError::Io { path: sled_dir.clone(), source })?;
        let db = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .segment_size(SEGMENT_BYTES)
            .flush_every_ms(Some(500))
            .open()?;
        let db_path = sled_dir.join("db");
        let db_file = File::open(&db_path).map_err(|source| StoreError::Io { path: db_path, source })?;
        Ok(SledDb { inner: Arc::new(Inner { db, dir: dir.to_path_buf(), db_file }) })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// Makes every write so far durable: sled flush (write-out with `sync_file_range`), then
    /// `fdatasync` of the database file (reaches the drive's cache flush). Timed as a Raft log
    /// fsync: it holds the vote and the purge point.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        timed_sync(move || {
            inner.db.flush()?;
            inner.db_file.sync_data().map_err(io_err(&inner.dir.join("sled/db")))
        })
        .await
    }

    /// Same as [`SledDb::sync`], for blocking contexts.
    pub fn sync_blocking(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        self.inner.db_file.sync_data().map_err(io_err(&self.inner.dir.join("sled/db")))
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

/// Runs CPU-bound or blocking storage work (an apply of thousands of transfers, a checkpoint
/// cut of a million accounts, a Raft log truncate's fsyncs) without holding an async worker:
/// on a multi-threaded runtime the worker's queue, including the task it just woke, moves to
/// another thread meanwhile. Without it, Raft's own tasks (heartbeats, vote replies) waited
/// behind the apply, on two cores for long enough that followers campaigned
/// (docs/benchmarks.md section 0).
pub(crate) fn off_the_workers<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Where a node with data dir `data` keeps its Raft log's files.
pub(crate) fn raft_log_dir(data: &Path) -> PathBuf {
    data.join("raft-log")
}

/// Opens the log store and the state machine of a node under `dir`.
///
/// Refuses to open a node whose state checkpoint is older than its Raft log's purge point (the
/// entries that would rebuild the state are gone): that is a damaged data dir, and the message
/// says to wipe it so the node rejoins by snapshot.
pub fn open(dir: &Path, cache_bytes: u64) -> Result<(LogStore, LedgerStateMachine), StoreError> {
    let db = SledDb::open(dir, cache_bytes)?;
    let purge_ceiling = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let log = LogStore::open(db.clone(), &raft_log_dir(dir), purge_ceiling.clone())?;
    let committed_at_start = log.committed_index().load(std::sync::atomic::Ordering::Acquire);
    let sm = LedgerStateMachine::open(&dir.join("state"), db, purge_ceiling, committed_at_start)?;
    let checkpoint = sm.reader().startup().checkpoint_index;
    if let Some(purged) = log.last_purged_index()
        && purged > checkpoint
    {
        return Err(StoreError::Corrupt {
            what: "data dir",
            detail: format!(
                "the state checkpoint is at index {checkpoint} but the Raft log is purged up to {purged}: \
                 the entries between are gone; wipe {} so this node rejoins by snapshot",
                dir.display()
            ),
        });
    }
    Ok((log, sm))
}

#[cfg(test)]
mod tests;
