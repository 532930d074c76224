//! `SledStateMachine`: the ledger state on sled, implementing openraft's `RaftStateMachine`,
//! and `StateReader`, the read side the API uses.
//!
//! Applying entries runs the pure ledger (`ledger_core::ledger::apply`) over an overlay of the
//! current state tree, then writes the overlay's changes, `last_applied` and the membership in
//! one `apply_batch`: a crash leaves the state at an entry boundary and openraft re-applies
//! from there. State writes are not synced here; the next log append's sync covers them, and
//! `purge` syncs before dropping entries that could rebuild them.
//!
//! State trees are generations (`sm_<gen>`): installing a snapshot fills `sm_<gen+1>`, syncs,
//! flips `current_gen` in `sm_meta`, syncs, then retires the old generation, so a crash at any
//! point leaves one complete generation current. A retired generation's tree is dropped only
//! once no reader holds it (readers pin the generation they started with, see [`StateView`]);
//! sled answers reads of a dropped tree with `CollectionNotFound`, or loops in an iterator.
//! Generations left over by a crash are dropped at start-up.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use ledger_core::account::Account;
use ledger_core::codec;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::journal::JournalHead;
use ledger_core::journal::JournalRecord;
use ledger_core::journal::SiteLogEntry;
use ledger_core::ledger;
use ledger_core::money::Currency;
use ledger_core::site_ops;
use ledger_core::site_ops::Shipped;
use ledger_core::store::Changes;
use ledger_core::store::CurrencyTotals;
use ledger_core::store::Expiry;
use ledger_core::store::LedgerMeta;
use ledger_core::store::LedgerRead;
use ledger_core::store::Overlay;
use ledger_core::transfer::HistoryEntry;
use ledger_core::transfer::Transfer;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::StorageIOError;
use openraft::storage::RaftStateMachine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::SledDb;
use super::StoreError;
use super::keys;
use super::snapshot;
use crate::raft::types::Applied;
use crate::raft::types::CommandResult;
use crate::raft::types::Entry;
use crate::raft::types::LogId;
use crate::raft::types::Payload;
use crate::raft::types::ShipReport;
use crate::raft::types::Snapshot;
use crate::raft::types::SnapshotMeta;
use crate::raft::types::StorageError;
use crate::raft::types::StoredMembership;
use crate::raft::types::TypeConfig;

const CURRENT_GEN: &[u8] = b"current_gen";
const SNAPSHOT: &[u8] = b"snapshot";
/// Entries applied per sled batch; bounds the overlay when a restarting node re-applies a
/// long stretch of log.
const APPLY_CHUNK_ENTRIES: usize = 64;
/// Most history rows in one stored page (~110 bytes each: pages stay far below 64 KiB).
const HISTORY_PAGE_ROWS_MAX: usize = 256;

fn tree_name(generation: u64) -> String {
    format!("sm_{generation}")
}

fn sm_read_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snapshot_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

/// Decodes a value of our own state. A value we wrote that does not decode means the disk or
/// sled lied: stop rather than diverge.
fn must_decode<T: DeserializeOwned>(what: &str, key: &[u8], bytes: &[u8]) -> T {
    match codec::decode(bytes) {
        Ok(value) => value,
        Err(e) => panic!("corrupt {what} at key {}: {e}", String::from_utf8_lossy(key)),
    }
}

fn must_get(tree: &sled::Tree, key: &[u8]) -> Option<sled::IVec> {
    match tree.get(key) {
        Ok(value) => value,
        Err(e) => panic!("sled read failed at key {}: {e}", String::from_utf8_lossy(key)),
    }
}

fn get_decoded<T: DeserializeOwned>(tree: &sled::Tree, what: &str, key: &[u8]) -> Option<T> {
    must_get(tree, key).map(|bytes| must_decode(what, key, &bytes))
}

/// The ledger's read interface over one state tree.
pub(crate) struct SledLedger<'a> {
    tree: &'a sled::Tree,
}

impl LedgerRead for SledLedger<'_> {
    fn account(&self, id: &AccountId) -> Option<Account> {
        get_decoded(self.tree, "account", &keys::account(id))
    }

    fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        get_decoded(self.tree, "transfer", &keys::transfer(id))
    }

    fn totals(&self, currency: Currency) -> CurrencyTotals {
        get_decoded(self.tree, "totals", &keys::totals(currency)).unwrap_or_default()
    }

    fn due_expiries(&self, now_ms: u64, limit: usize) -> Vec<Expiry> {
        let mut due = Vec::new();
        for item in self.tree.scan_prefix([keys::EXPIRY]) {
            let (key, _) = item.unwrap_or_else(|e| panic!("sled scan failed: {e}"));
            let (expires_at_ms, transfer_id) =
                keys::parse_expiry(&key).unwrap_or_else(|| panic!("corrupt expiry key {key:?}"));
            if expires_at_ms > now_ms || due.len() == limit {
                break;
            }
            due.push(Expiry { expires_at_ms, transfer_id });
        }
        due
    }

    fn meta(&self) -> LedgerMeta {
        get_decoded(self.tree, "ledger meta", keys::META_LEDGER).unwrap_or_default()
    }

    fn journal_record(&self, seq: u64) -> Option<JournalRecord> {
        get_decoded(self.tree, "journal record", &keys::journal(seq))
    }
}

fn put<T: Serialize + ?Sized>(batch: &mut sled::Batch, key: &[u8], value: &T) {
    batch.insert(key, codec::encode(value));
}

/// Turns ledger changes into one sled batch. A reset (resync) first removes every key of the
/// ledger state from `tree`, in the same batch, so the discard and the new state are atomic.
fn changes_to_batch(tree: &sled::Tree, changes: Changes, batch: &mut sled::Batch) {
    if changes.reset {
        for prefix in keys::LEDGER_PREFIXES {
            for key in tree.scan_prefix([*prefix]).keys() {
                batch.remove(key.unwrap_or_else(|e| panic!("sled scan failed: {e}")));
            }
        }
    }
    for entry in &changes.site_log {
        put(batch, &keys::site_log(entry.seq), entry);
    }
    for (id, account) in &changes.accounts {
        put(batch, &keys::account(id), account);
    }
    for (id, transfer) in &changes.transfers {
        put(batch, &keys::transfer(id), transfer);
    }
    for (expiry, added) in &changes.expiries {
        let key = keys::expiry(expiry.expires_at_ms, &expiry.transfer_id);
        if *added {
            batch.insert(key, &[]);
        } else {
            batch.remove(key);
        }
    }
    // History rows are stored in pages: all rows one apply adds to an account, keyed by the
    // first row's index. One sled insert per account touched instead of one per row.
    let mut pages: BTreeMap<&AccountId, Vec<&HistoryEntry>> = BTreeMap::new();
    for (account, row) in &changes.history {
        let rows = pages.entry(account).or_default();
        if let Some(last) = rows.last() {
            assert_eq!(row.index, last.index + 1, "history rows of {account} are contiguous");
        }
        rows.push(row);
    }
    for (account, rows) in pages {
        for page in rows.chunks(HISTORY_PAGE_ROWS_MAX) {
            put(batch, &keys::history(account, page[0].index), page);
        }
    }
    for (currency, totals) in &changes.totals {
        put(batch, &keys::totals(*currency), totals);
    }
    for record in &changes.journal {
        let value = codec::encode(record);
        assert!(value.len() < 64 * 1024, "journal record {} is {} bytes", record.seq, value.len());
        batch.insert(keys::journal(record.seq), value);
    }
    if let Some(meta) = &changes.meta {
        put(batch, keys::META_LEDGER, meta);
    }
}

/// One generation of the state: its number and its tree. Shared (`Arc`) by the state machine
/// and every reader that pinned it.
struct Current {
    generation: u64,
    tree: sled::Tree,
}

/// The current generation; a snapshot install swaps in the next one.
type CurrentCell = Arc<RwLock<Arc<Current>>>;

pub struct SledStateMachine {
    db: SledDb,
    sm_meta: sled::Tree,
    current: CurrentCell,
    /// Generations replaced by a snapshot install, dropped once no reader holds them.
    retired: Vec<Arc<Current>>,
    snapshot_dir: PathBuf,
    /// Files being received by `begin_receiving_snapshot`, removed after install.
    incoming: Vec<PathBuf>,
    head: watch::Sender<JournalHead>,
    applied_index: Arc<AtomicU64>,
    snapshot_counter: u64,
}

impl SledStateMachine {
    pub fn new(db: SledDb) -> Result<Self, StoreError> {
        let sm_meta = db.tree("sm_meta")?;
        let generation: u64 = match sm_meta.get(CURRENT_GEN)? {
            Some(bytes) => {
                codec::decode(&bytes).map_err(|e| StoreError::Corrupt { what: "sm_meta", detail: e.to_string() })?
            }
            None => 1,
        };
        let tree = db.tree(&tree_name(generation))?;
        // Generations retired before a crash or a shutdown (no reader survives a restart).
        for name in db.tree_names() {
            let stale = name.strip_prefix("sm_").and_then(|g| g.parse::<u64>().ok()).is_some_and(|g| g != generation);
            if stale {
                db.drop_tree(&name)?;
                tracing::info!(tree = %name, "dropped a retired state generation");
            }
        }
        let snapshot_dir = db.dir().join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|source| StoreError::Io { path: snapshot_dir.clone(), source })?;
        // Partial files of an interrupted receive or dump are garbage.
        for entry in
            std::fs::read_dir(&snapshot_dir).map_err(|source| StoreError::Io { path: snapshot_dir.clone(), source })?
        {
            let path = entry.map_err(|source| StoreError::Io { path: snapshot_dir.clone(), source })?.path();
            if path.extension().is_some_and(|e| e == "tmp" || e == "incoming") {
                let _ = std::fs::remove_file(&path);
            }
        }
        let ledger = SledLedger { tree: &tree };
        let head = ledger.meta().journal;
        let applied: Option<LogId> = get_decoded::<Option<LogId>>(&tree, "applied", keys::META_APPLIED).flatten();
        let (head_tx, _) = watch::channel(head);
        Ok(SledStateMachine {
            db,
            sm_meta,
            current: Arc::new(RwLock::new(Arc::new(Current { generation, tree }))),
            retired: Vec::new(),
            snapshot_dir,
            incoming: Vec::new(),
            head: head_tx,
            applied_index: Arc::new(AtomicU64::new(applied.map_or(0, |a| a.index))),
            snapshot_counter: 0,
        })
    }

    /// The read side, for the API.
    pub fn reader(&self) -> StateReader {
        StateReader {
            current: self.current.clone(),
            head: self.head.subscribe(),
            applied_index: self.applied_index.clone(),
            db: self.db.clone(),
        }
    }

    fn tree(&self) -> sled::Tree {
        self.current.read().expect("lock is never poisoned").tree.clone()
    }

    /// Drops the trees of retired generations that no reader holds any more. A retired
    /// generation is never current again, so once only `retired` holds it nobody can pin it.
    fn reap_retired(&mut self) -> Result<(), StoreError> {
        let current = self.current.read().expect("lock is never poisoned").generation;
        for retired in std::mem::take(&mut self.retired) {
            // `try_unwrap` succeeds only for the last holder, and synchronizes with every other
            // holder's drop (so their reads of the tree happened before we drop it).
            match Arc::try_unwrap(retired) {
                Ok(generation) => {
                    assert_ne!(generation.generation, current);
                    self.db.drop_tree(&tree_name(generation.generation))?;
                }
                Err(held) => self.retired.push(held),
            }
        }
        Ok(())
    }

    /// The generations whose trees exist (current and retired but still held), for tests.
    #[cfg(test)]
    pub(crate) fn generations(&self) -> Vec<u64> {
        let mut generations: Vec<u64> = self
            .db
            .tree_names()
            .iter()
            .filter_map(|name| name.strip_prefix("sm_").and_then(|g| g.parse().ok()))
            .collect();
        generations.sort_unstable();
        generations
    }

    fn apply_chunk(&mut self, tree: &sled::Tree, entries: Vec<Entry>) -> Result<Vec<Applied>, StorageError> {
        let base = SledLedger { tree };
        let mut overlay = Overlay::new(&base);
        let mut replies = Vec::with_capacity(entries.len());
        let mut last_applied = None;
        let mut membership = None;
        for entry in entries {
            last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => replies.push(Applied::default()),
                EntryPayload::Normal(Payload::Shipped { records }) => {
                    let mut report = ShipReport::default();
                    for record in records.iter() {
                        match site_ops::ship(&mut overlay, record) {
                            Shipped::Applied => report.applied += 1,
                            Shipped::Duplicate => report.duplicates += 1,
                            Shipped::Ignored(reason) => {
                                report.ignored = Some(reason);
                                break;
                            }
                            Shipped::Halted(reason) => {
                                tracing::error!(seq = record.seq, %reason, "DR shipping HALTED");
                                report.halted = Some(reason);
                                break;
                            }
                        }
                    }
                    replies.push(Applied { results: Vec::new(), shipped: Some(report) });
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    replies.push(Applied::default());
                }
                EntryPayload::Normal(Payload::Commands { proposed_at_ms, commands }) => {
                    let mut results = Vec::with_capacity(commands.len());
                    for envelope in commands.iter() {
                        let seq_before = overlay.meta().journal.seq;
                        let outcome = ledger::apply(&mut overlay, envelope, proposed_at_ms, entry.log_id.index);
                        let head = overlay.meta().journal;
                        let journaled = head.seq > seq_before;
                        assert!(head.seq <= seq_before + 1, "one record per command at most");
                        results.push(CommandResult {
                            outcome,
                            journal_seq: if journaled { head.seq } else { 0 },
                            ledger_time_ms: head.ledger_time_ms.max(proposed_at_ms),
                            raft_index: entry.log_id.index,
                        });
                    }
                    replies.push(Applied { results, shipped: None });
                }
            }
        }
        let changes = overlay.into_changes();
        let new_head = changes.meta.as_ref().map(|m| m.journal);
        let mut batch = sled::Batch::default();
        changes_to_batch(tree, changes, &mut batch);
        put(&mut batch, keys::META_APPLIED, &last_applied);
        if let Some(membership) = &membership {
            put(&mut batch, keys::META_MEMBERSHIP, membership);
        }
        tree.apply_batch(batch).map_err(sm_write_err)?;
        // Paired assertion: what we meant to write is what sled now reads back.
        let stored: Option<LogId> = get_decoded::<Option<LogId>>(tree, "applied", keys::META_APPLIED).flatten();
        assert_eq!(stored, last_applied, "last_applied reads back as written");
        if let Some(applied) = last_applied {
            self.applied_index.store(applied.index, Ordering::Release);
        }
        if let Some(head) = new_head {
            self.head.send_replace(head);
        }
        Ok(replies)
    }

    fn snapshot_path(&self, snapshot_id: &str) -> PathBuf {
        self.snapshot_dir.join(format!("{snapshot_id}.snap"))
    }

    fn current_snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        match self.sm_meta.get(SNAPSHOT).map_err(sm_read_err)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes).map_err(sm_read_err)?)),
        }
    }

    /// Records `meta` as the current snapshot and deletes every other snapshot file.
    fn set_current_snapshot(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        self.sm_meta.insert(SNAPSHOT, codec::encode(meta)).map_err(snapshot_err)?;
        self.db.sync_blocking().map_err(snapshot_err)?;
        let keep = self.snapshot_path(&meta.snapshot_id);
        for entry in std::fs::read_dir(&self.snapshot_dir).map_err(snapshot_err)? {
            let path = entry.map_err(snapshot_err)?.path();
            if path.extension().is_some_and(|e| e == "snap") && path != keep {
                std::fs::remove_file(&path).map_err(snapshot_err)?;
            }
        }
        Ok(())
    }
}

/// Builds snapshots from a copy taken while applies were paused.
pub struct SledSnapshotBuilder {
    /// The dumped file and its meta, or the error the dump hit.
    dumped: Result<(SnapshotMeta, PathBuf), StoreError>,
    sm_meta: sled::Tree,
    db: SledDb,
    snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SledSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (meta, path) = match &self.dumped {
            Ok(dumped) => dumped.clone(),
            Err(e) => return Err(StorageIOError::write_snapshot(None, &io::Error::other(e.to_string())).into()),
        };
        // Make it current (durably) before it can justify a log purge.
        self.sm_meta.insert(SNAPSHOT, codec::encode(&meta)).map_err(snapshot_err)?;
        self.db.sync().await.map_err(snapshot_err)?;
        for entry in std::fs::read_dir(&self.snapshot_dir).map_err(snapshot_err)? {
            let other = entry.map_err(snapshot_err)?.path();
            if other.extension().is_some_and(|e| e == "snap") && other != path {
                let _ = std::fs::remove_file(&other);
            }
        }
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log = ?meta.last_log_id, "snapshot built");
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for SledStateMachine {
    type SnapshotBuilder = SledSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let tree = self.tree();
        let applied: Option<LogId> = get_decoded::<Option<LogId>>(&tree, "applied", keys::META_APPLIED).flatten();
        let membership: StoredMembership = get_decoded(&tree, "membership", keys::META_MEMBERSHIP).unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        if !self.retired.is_empty() {
            self.reap_retired().map_err(sm_write_err)?;
        }
        let tree = self.tree();
        let mut replies = Vec::new();
        let mut chunk = Vec::with_capacity(APPLY_CHUNK_ENTRIES);
        for entry in entries {
            chunk.push(entry);
            if chunk.len() == APPLY_CHUNK_ENTRIES {
                replies.extend(self.apply_chunk(&tree, std::mem::take(&mut chunk))?);
            }
        }
        if !chunk.is_empty() {
            replies.extend(self.apply_chunk(&tree, chunk)?);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Runs between applies: dump now, so the file matches `last_applied` exactly (sled has
        // no point-in-time view to read later).
        self.snapshot_counter += 1;
        let tree = self.tree();
        let counter = self.snapshot_counter;
        let snapshot_dir = self.snapshot_dir.clone();
        let dumped = tokio::task::spawn_blocking(move || -> Result<(SnapshotMeta, PathBuf), StoreError> {
            let applied: Option<LogId> = get_decoded::<Option<LogId>>(&tree, "applied", keys::META_APPLIED).flatten();
            let membership: StoredMembership =
                get_decoded(&tree, "membership", keys::META_MEMBERSHIP).unwrap_or_default();
            let snapshot_id = match applied {
                Some(log_id) => {
                    format!("{}-{}-{}-{counter}", log_id.leader_id.term, log_id.leader_id.node_id, log_id.index)
                }
                None => format!("0-0-0-{counter}"),
            };
            let path = snapshot_dir.join(format!("{snapshot_id}.snap"));
            let n_keys = snapshot::dump(&tree, &path)?;
            tracing::debug!(%snapshot_id, n_keys, "state dumped for snapshot");
            Ok((SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id }, path))
        })
        .await
        .expect("snapshot dump does not panic");
        SledSnapshotBuilder {
            dumped,
            sm_meta: self.sm_meta.clone(),
            db: self.db.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = self.snapshot_dir.join(format!("{nanos}.incoming"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(snapshot_err)?;
        self.incoming.push(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let mut file = snapshot.into_std().await;
        let generation = self.current.read().expect("lock is never poisoned").generation + 1;
        let new_tree = self.db.tree(&tree_name(generation)).map_err(snapshot_err)?;
        new_tree.clear().map_err(snapshot_err)?;
        let target = self.snapshot_path(&meta.snapshot_id);
        let db = self.db.clone();
        let loaded_tree = new_tree.clone();
        let copy_path = target.clone();
        // Load into the new generation and keep a copy of the file as our current snapshot.
        let loaded = tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
            use std::io::Seek;
            file.seek(io::SeekFrom::Start(0)).map_err(|source| StoreError::Io { path: copy_path.clone(), source })?;
            let n_keys = snapshot::load(&mut file, &loaded_tree, &copy_path)?;
            file.seek(io::SeekFrom::Start(0)).map_err(|source| StoreError::Io { path: copy_path.clone(), source })?;
            let tmp = copy_path.with_extension("tmp");
            let mut out = std::fs::File::create(&tmp).map_err(|source| StoreError::Io { path: tmp.clone(), source })?;
            io::copy(&mut file, &mut out).map_err(|source| StoreError::Io { path: tmp.clone(), source })?;
            out.sync_all().map_err(|source| StoreError::Io { path: tmp.clone(), source })?;
            std::fs::rename(&tmp, &copy_path).map_err(|source| StoreError::Io { path: copy_path.clone(), source })?;
            snapshot::sync_dir(copy_path.parent().expect("in a directory"))?;
            db.sync_blocking()?;
            Ok(n_keys)
        })
        .await
        .expect("snapshot load does not panic");
        let n_keys = match loaded {
            Ok(n) => n,
            Err(e) => {
                let _ = self.db.drop_tree(&tree_name(generation));
                return Err(snapshot_err(e));
            }
        };
        let applied: Option<LogId> = get_decoded::<Option<LogId>>(&new_tree, "applied", keys::META_APPLIED).flatten();
        assert_eq!(applied, meta.last_log_id, "snapshot content and meta disagree on last_applied");
        // Flip the generation durably, then drop the old one.
        self.sm_meta.insert(CURRENT_GEN, codec::encode(&generation)).map_err(snapshot_err)?;
        self.db.sync().await.map_err(snapshot_err)?;
        let old = {
            let mut current = self.current.write().expect("lock is never poisoned");
            std::mem::replace(&mut *current, Arc::new(Current { generation, tree: new_tree.clone() }))
        };
        assert_eq!(old.generation + 1, generation, "generations follow each other");
        self.retired.push(old);
        self.reap_retired().map_err(snapshot_err)?;
        self.set_current_snapshot(meta)?;
        for path in self.incoming.drain(..) {
            let _ = std::fs::remove_file(path);
        }
        let head = SledLedger { tree: &new_tree }.meta().journal;
        self.applied_index.store(applied.map_or(0, |a| a.index), Ordering::Release);
        self.head.send_replace(head);
        tracing::info!(snapshot = %meta.snapshot_id, n_keys, journal_seq = head.seq, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self.current_snapshot_meta()? else {
            return Ok(None);
        };
        let path = self.snapshot_path(&meta.snapshot_id);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}

/// Reads of the applied state, for the API. Reads see whole applied batches per key, never a
/// half-applied entry's value. Each call reads the current generation; a caller that makes
/// several reads that must agree with each other takes a [`StateView`].
#[derive(Clone)]
pub struct StateReader {
    current: CurrentCell,
    head: watch::Receiver<JournalHead>,
    applied_index: Arc<AtomicU64>,
    db: SledDb,
}

/// The state of one generation, pinned: a snapshot installed meanwhile does not pull it away
/// (its tree is dropped only after every view of it is gone). Hold it for one request, not
/// for long: it keeps a replaced generation on disk.
pub struct StateView {
    current: Arc<Current>,
}

impl StateReader {
    /// Pins the current generation.
    pub fn view(&self) -> StateView {
        StateView { current: self.current.read().expect("lock is never poisoned").clone() }
    }

    pub fn account(&self, id: &AccountId) -> Option<Account> {
        self.view().account(id)
    }

    pub fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        self.view().transfer(id)
    }

    pub fn meta(&self) -> LedgerMeta {
        self.view().meta()
    }

    pub fn totals(&self, currency: Currency) -> CurrencyTotals {
        self.view().totals(currency)
    }

    /// The earliest pending expiry (ledger time), if any.
    pub fn next_expiry(&self) -> Option<u64> {
        self.view().next_expiry()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// History rows of `account` from `from_index` (1-based), at most `limit`.
    pub fn history(&self, account: &AccountId, from_index: u64, limit: usize) -> Vec<HistoryEntry> {
        self.view().history(account, from_index, limit)
    }

    /// Journal records from `from_seq`, at most `limit`.
    pub fn journal(&self, from_seq: u64, limit: usize) -> Vec<JournalRecord> {
        self.view().journal(from_seq, limit)
    }

    /// Every account, in id order (for invariant checks and exports; O(accounts)).
    pub fn accounts(&self) -> Vec<Account> {
        self.view().accounts()
    }

    /// Site log entries from `from_seq`, at most `limit`.
    pub fn site_log(&self, from_seq: u64, limit: usize) -> Vec<SiteLogEntry> {
        self.view().site_log(from_seq, limit)
    }

    /// Follows the journal head as entries are applied.
    pub fn subscribe_head(&self) -> watch::Receiver<JournalHead> {
        self.head.clone()
    }

    pub fn journal_head(&self) -> JournalHead {
        *self.head.borrow()
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk()
    }
}

impl StateView {
    fn ledger(&self) -> SledLedger<'_> {
        SledLedger { tree: &self.current.tree }
    }

    pub fn generation(&self) -> u64 {
        self.current.generation
    }

    pub fn account(&self, id: &AccountId) -> Option<Account> {
        self.ledger().account(id)
    }

    pub fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        self.ledger().transfer(id)
    }

    pub fn meta(&self) -> LedgerMeta {
        self.ledger().meta()
    }

    pub fn totals(&self, currency: Currency) -> CurrencyTotals {
        self.ledger().totals(currency)
    }

    pub fn next_expiry(&self) -> Option<u64> {
        ledger::next_expiry(&self.ledger())
    }

    /// History rows of `account` from `from_index` (1-based), at most `limit`.
    pub fn history(&self, account: &AccountId, from_index: u64, limit: usize) -> Vec<HistoryEntry> {
        let tree = &self.current.tree;
        let prefix = keys::history_prefix(account);
        let from_index = from_index.max(1);
        // The page holding `from_index` starts at or before it.
        let start = match tree.range(prefix.clone()..=keys::history(account, from_index)).next_back() {
            Some(item) => item.unwrap_or_else(|e| panic!("sled scan failed: {e}")).0.to_vec(),
            None => prefix.clone(),
        };
        let mut rows = Vec::with_capacity(limit);
        for item in tree.range(start..) {
            let (key, value) = item.unwrap_or_else(|e| panic!("sled scan failed: {e}"));
            if !key.starts_with(&prefix) || rows.len() >= limit {
                break;
            }
            let page: Vec<HistoryEntry> = must_decode("history page", &key, &value);
            rows.extend(page.into_iter().filter(|row| row.index >= from_index).take(limit - rows.len()));
        }
        rows
    }

    /// Journal records from `from_seq`, at most `limit`.
    pub fn journal(&self, from_seq: u64, limit: usize) -> Vec<JournalRecord> {
        let end = keys::journal(u64::MAX);
        self.current
            .tree
            .range(keys::journal(from_seq.max(1))..end)
            .take(limit)
            .map(|item| {
                let (key, value) = item.unwrap_or_else(|e| panic!("sled scan failed: {e}"));
                must_decode("journal record", &key, &value)
            })
            .collect()
    }

    /// Every account, in id order (O(accounts)).
    pub fn accounts(&self) -> Vec<Account> {
        self.current
            .tree
            .scan_prefix([keys::ACCOUNT])
            .map(|item| {
                let (key, value) = item.unwrap_or_else(|e| panic!("sled scan failed: {e}"));
                must_decode("account", &key, &value)
            })
            .collect()
    }

    /// Site log entries from `from_seq`, at most `limit`.
    pub fn site_log(&self, from_seq: u64, limit: usize) -> Vec<SiteLogEntry> {
        self.current
            .tree
            .range(keys::site_log(from_seq.max(1))..keys::site_log(u64::MAX))
            .take(limit)
            .map(|item| {
                let (key, value) = item.unwrap_or_else(|e| panic!("sled scan failed: {e}"));
                must_decode("site log entry", &key, &value)
            })
            .collect()
    }
}
