//! `LedgerState`: one generation of the ledger state, as docs/storage-design.md and
//! ARCHITECTURE.md "Storage" describe it.
//!
//! In memory: accounts (in copy-on-write shards, see [`Accounts`]), the positions of each
//! account's history rows, currency totals,
//! pending expiries, the meta, the site log, `last_applied` and the membership, and three
//! indexes into the segment logs. On disk, append-only: every transfer version, every history
//! row and every journal record, each a framed record in its [`SegmentLog`]. Nothing here is
//! fsynced on apply: the Raft log is the write-ahead log, and a checkpoint (the in-memory part,
//! encoded, plus each log's length) is what makes a state durable.
//!
//! A generation is opened from its newest checkpoint: each log is truncated to the length the
//! checkpoint recorded (bytes after it came from applies that the Raft log will redo) and the
//! indexes are rebuilt from the logs' key files from their base (see `segment`; the records
//! themselves where a key file falls short). A reset (DR resync) starts the
//! logical content of every log at its current end (`base`); the bytes before it stay on disk
//! until the generation is replaced by a snapshot install.
//!
//! Memory per transfer: the id index (a 64-bit fingerprint and a position, about 24 bytes in
//! a hash map), two history positions (16 bytes), and one journal position per command.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::hash_map;
use std::hash::BuildHasher;
use std::hash::Hasher;
use std::path::Path;
use std::sync::Arc;

use foldhash::quality::FixedState;
use ledger_core::account::Account;
use ledger_core::codec;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::journal::JournalRecord;
use ledger_core::journal::SiteLogEntry;
use ledger_core::money::Currency;
use ledger_core::store::Changes;
use ledger_core::store::CurrencyTotals;
use ledger_core::store::Expiry;
use ledger_core::store::LedgerMeta;
use ledger_core::store::LedgerRead;
use ledger_core::transfer::HistoryEntry;
use ledger_core::transfer::Transfer;
use serde::Deserialize;
use serde::Serialize;

use super::StoreError;
use super::segment;
use super::segment::KeyOf;
use super::segment::SegmentLog;
use super::segment::SegmentReader;
use crate::raft::types::LogId;
use crate::raft::types::StoredMembership;

/// Segment files roll at this size.
pub const ROLL_BYTES: u64 = 256 * 1024 * 1024;

/// The three segment logs of a generation, by position in `LedgerState::logs`.
pub const TRANSFERS: usize = 0;
pub const HISTORY: usize = 1;
pub const JOURNAL: usize = 2;
pub const LOG_NAMES: [&str; 3] = ["transfers", "history", "journal"];

/// What each log's key files keep of a record (see `segment`): the transfer's id, the history
/// row's account, nothing of a journal record (its position is all the rebuild needs).
pub const KEY_OF: [KeyOf; 3] = [string_key_len, string_key_len, segment::no_key];

/// A transfer record starts with the transfer's id, a history record with the account's (a
/// record that does not is left keyless, and the rebuild reports it as corrupt).
fn string_key_len(record: &[u8]) -> usize {
    codec::string_prefix_len(record).unwrap_or(0)
}

/// Where a log's current content starts (after a reset) and ends, as a checkpoint records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub base: u64,
    pub len: u64,
}

/// The checkpoint format's version, first in every checkpoint body.
const CHECKPOINT_VERSION: u16 = 1;

/// A checkpoint body as it is read back. Field order is the format: it must match
/// [`CheckpointOut`].
#[derive(Deserialize)]
pub struct CheckpointIn {
    version: u16,
    pub snapshot_id: String,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    meta: LedgerMeta,
    totals: BTreeMap<Currency, CurrencyTotals>,
    expiries: BTreeSet<Expiry>,
    site_log: Vec<SiteLogEntry>,
    pub cuts: [Cut; 3],
    accounts: Vec<Account>,
}

/// The state as of one instant, to be encoded as a checkpoint body without the state's lock:
/// the accounts are shared shards (no copy until the apply writes to one), the rest is small
/// and copied. Field order is the format: it must match [`CheckpointIn`].
#[derive(Serialize)]
pub struct CheckpointCut {
    version: u16,
    snapshot_id: String,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    meta: LedgerMeta,
    totals: BTreeMap<Currency, CurrencyTotals>,
    expiries: BTreeSet<Expiry>,
    site_log: Vec<SiteLogEntry>,
    cuts: [Cut; 3],
    accounts: AccountsCut,
}

impl CheckpointCut {
    pub fn snapshot_id(&self) -> &str {
        &self.snapshot_id
    }

    /// Hands the checkpoint body to `sink` in chunks, in order (O(accounts): call it off the
    /// apply path; [`super::checkpoint::write`] writes them to the file as they come).
    pub fn encode_to(&self, sink: &mut dyn FnMut(&[u8])) {
        codec::encode_to(self, sink);
    }
}

/// The account shards of a cut, encoded as one sequence of accounts.
struct AccountsCut {
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Serialize for AccountsCut {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for held in self.shards.iter().flat_map(|shard| shard.iter()) {
            seq.serialize_element(&*held.account)?;
        }
        seq.end()
    }
}

pub fn decode_checkpoint(bytes: &[u8]) -> Result<CheckpointIn, StoreError> {
    let body: CheckpointIn =
        codec::decode(bytes).map_err(|e| StoreError::Corrupt { what: "checkpoint", detail: e.to_string() })?;
    if body.version != CHECKPOINT_VERSION {
        return Err(StoreError::Corrupt { what: "checkpoint", detail: format!("unknown version {}", body.version) });
    }
    Ok(body)
}

/// One shard of accounts: a table of shared accounts found by their own id (no second copy of
/// the id as a key). An entry is a pointer and a number: the table's empty slots cost 16 bytes,
/// not an account, and copying the shard for a cut copies pointers.
type Shard = hashbrown::HashTable<Held>;

/// An account in the table, and its slot: the number of its history row positions in
/// [`LedgerState`]'s `history`. Slots are given in order of arrival and never reused (accounts
/// are never removed but by a reset, which starts a new table): the apply finds an account's
/// positions through the lookup it does anyway, not through a second map keyed by its id (two
/// more cache-missing lookups per transfer at a million accounts).
#[derive(Clone)]
struct Held {
    account: Arc<Account>,
    slot: u32,
}

/// Account shards: enough that copying one is a small step, few enough that a cut is cheap.
const ACCOUNT_SHARDS: usize = 256;

/// The accounts, in copy-on-write shards. A checkpoint cut takes the shard pointers (O(shards)
/// under the lock instead of encoding a million accounts there: that paused the apply for 1 to
/// 3 s); the apply copies a shard (its pointers) the first time it writes to it while a cut
/// still holds it, and writes a new account in place of the one the cut shares. The cut is
/// encoded on another thread and then dropped: a checkpoint costs one table of pointers per
/// shard and one copy of each account written meanwhile, not a copy of every account.
struct Accounts {
    /// One hash per id, for both the shard (bits 32..40) and the slot within it: the table
    /// uses the low bits for the slot and the top seven as its tag, so the shard takes neither.
    hasher: foldhash::quality::RandomState,
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Accounts {
    fn new() -> Accounts {
        Accounts {
            hasher: foldhash::quality::RandomState::default(),
            shards: (0..ACCOUNT_SHARDS).map(|_| Arc::new(Shard::new())).collect(),
            len: 0,
        }
    }

    fn hash(&self, id: &AccountId) -> u64 {
        self.hasher.hash_one(id)
    }

    fn shard(hash: u64) -> usize {
        ((hash >> 32) % ACCOUNT_SHARDS as u64) as usize
    }

    fn held(&self, id: &AccountId) -> Option<&Held> {
        let hash = self.hash(id);
        self.shards[Self::shard(hash)].find(hash, |h| h.account.id == *id)
    }

    fn get(&self, id: &AccountId) -> Option<&Account> {
        self.held(id).map(|h| &*h.account)
    }

    /// The account's slot (see [`Held`]).
    fn slot(&self, id: &AccountId) -> Option<u32> {
        self.held(id).map(|h| h.slot)
    }

    /// Writes `account` over the one with its id, or adds it in the next slot; returns its slot.
    fn insert(&mut self, account: Account) -> u32 {
        let hash = self.hash(&account.id);
        let hasher = &self.hasher;
        let shard = Arc::make_mut(&mut self.shards[Self::shard(hash)]);
        match shard.entry(hash, |h| h.account.id == account.id, |h| hasher.hash_one(&h.account.id)) {
            // In place unless a cut shares it: most writes allocate nothing.
            hashbrown::hash_table::Entry::Occupied(mut entry) => {
                let held = entry.get_mut();
                match Arc::get_mut(&mut held.account) {
                    Some(shared_with_nobody) => *shared_with_nobody = account,
                    None => held.account = Arc::new(account),
                }
                held.slot
            }
            hashbrown::hash_table::Entry::Vacant(entry) => {
                let slot = u32::try_from(self.len).expect("fewer than 2^32 accounts");
                entry.insert(Held { account: Arc::new(account), slot });
                self.len += 1;
                slot
            }
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn values(&self) -> impl Iterator<Item = &Account> {
        self.all().map(|h| &*h.account)
    }

    fn all(&self) -> impl Iterator<Item = &Held> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    fn cut(&self) -> AccountsCut {
        AccountsCut { shards: self.shards.clone(), len: self.len }
    }
}

/// A hasher for keys that already are fingerprints, in a table of the transfer index: the
/// fingerprint less its top byte (which picked the table, so it is the same for every key of
/// one table) shifted up, its low byte repeated below, then rotated left by `rotate` bits.
#[derive(Default)]
struct Prehashed {
    value: u64,
    rotate: u32,
}

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.value
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.value = self.value.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.value = ((n << 8) | (n & 0xFF)).rotate_left(self.rotate);
    }
}

/// Builds [`Prehashed`] hashers. `rebuild` sizes each table once at `2^k` buckets and rotates
/// by `k`: a table's first probe (the hash's low bits) then comes from the fingerprint's top
/// bits below the table's byte, so fingerprints inserted in ascending order fill it front to
/// back; when the table doubles later, the next probe bit is a low fingerprint bit, as varied
/// as any. A table grown by inserts in any order rotates by 32, its probes and control bytes
/// from middle bits.
#[derive(Clone, Copy)]
struct TopBitsFirst(u32);

impl Default for TopBitsFirst {
    fn default() -> Self {
        TopBitsFirst(32)
    }
}

impl BuildHasher for TopBitsFirst {
    type Hasher = Prehashed;
    fn build_hasher(&self) -> Prehashed {
        Prehashed { value: 0, rotate: self.0 }
    }
}

/// The transfer index's tables; a fingerprint's top byte picks one. One table doubled in one
/// step on the apply path: at 1.8 M transfers the rehash stopped an apply for 155 ms (at 10 M,
/// about a second). Fingerprints are uniform, so the tables cross their thresholds over a
/// spread of transfers, each with a 256th of the work.
const INDEX_SHARDS: usize = 256;

type IndexShards = Vec<HashMap<u64, u64, TopBitsFirst>>;

fn index_shards() -> IndexShards {
    (0..INDEX_SHARDS).map(|_| HashMap::default()).collect()
}

fn shard_of(fingerprint: u64) -> usize {
    (fingerprint >> 56) as usize
}

/// Transfer id → position of its newest version. Keyed by a 64-bit fingerprint of the id
/// (foldhash's quality hash under the generation's random seed, which stays on the node's disk,
/// so nobody outside can aim collisions, and the segments' fingerprint files stay valid across
/// restarts); a fingerprint shared by two ids is settled by reading the stored id, and the later
/// id goes to `collided`, keyed by the id itself.
struct TransferIndex<S = FixedState> {
    keys: S,
    by_fingerprint: IndexShards,
    collided: HashMap<TransferId, u64>,
}

fn stored_transfer_id(log: &SegmentLog, position: u64) -> TransferId {
    let bytes = must_read(log, "transfer", position);
    codec::decode_prefix(&bytes).unwrap_or_else(|e| panic!("corrupt transfer id at {position}: {e}"))
}

impl<S: BuildHasher + Sync> TransferIndex<S> {
    fn new(keys: S) -> Self {
        TransferIndex { keys, by_fingerprint: index_shards(), collided: HashMap::new() }
    }

    fn clear(&mut self) {
        self.by_fingerprint = index_shards();
        self.collided = HashMap::new();
    }

    fn len(&self) -> usize {
        self.by_fingerprint.iter().map(HashMap::len).sum::<usize>() + self.collided.len()
    }

    fn fingerprint(&self, id: &TransferId) -> u64 {
        self.fingerprint_of(id.as_str().as_bytes())
    }

    fn fingerprint_of(&self, id: &[u8]) -> u64 {
        self.keys.hash_one(id)
    }

    /// A stored transfer's fingerprint, from its key (or its record: the id is the front of both).
    fn fingerprint_of_key(&self, key: &[u8]) -> Result<u64, StoreError> {
        let (id, _) = codec::first_string(key).ok_or_else(|| StoreError::Corrupt {
            what: "transfer record",
            detail: "does not start with a transfer id".into(),
        })?;
        Ok(self.fingerprint_of(id))
    }

    /// Rebuilds the index from the transfer log's fingerprint runs from `base` (at start-up:
    /// see [`SegmentLog::fingerprint_runs`]). Returns the segments whose key files fell short.
    ///
    /// One map insert per record, in log order, was most of a 10 M-transfer start-up: each a
    /// cache miss in a table of hundreds of megabytes, which also grew by rehashing. Instead
    /// the segments' runs, each sorted by `(fingerprint, position)`, are merged (a stable sort
    /// finds the runs and merges them) and inserted in that order into a table sized once whose
    /// first probe is the fingerprint's top bits ([`TopBitsFirst`]), so the inserts sweep each
    /// table front to back. Pairs sharing a fingerprint (versions of one transfer, or two ids
    /// colliding) are settled by the ids stored at their positions, as `insert` does.
    fn rebuild(&mut self, log: &SegmentLog, base: u64, seed: u64) -> Result<Vec<u64>, StoreError> {
        self.clear();
        let started = std::time::Instant::now();
        let segment::FingerprintRuns { runs, short, loaded } =
            log.fingerprint_runs(base, log.len(), seed, &|key| self.fingerprint_of_key(key))?;
        let mut pairs: Vec<(u64, u64)> = runs.concat();
        // 16 bytes per transfer: not held through the sort and the inserts.
        drop(runs);
        let read = started.elapsed();
        pairs.sort();
        let sorted = started.elapsed();
        // Each table sized for its share. The bucket count std's map (hashbrown) takes for n
        // entries: the next power of two of 8/7 of them. Were it another, the order would still
        // sweep the table in runs.
        let mut from = 0;
        for (shard, table) in self.by_fingerprint.iter_mut().enumerate() {
            let to = from + pairs[from..].partition_point(|(fingerprint, _)| shard_of(*fingerprint) == shard);
            let buckets = ((to - from).max(8) * 8 / 7).next_power_of_two() as u64;
            *table = HashMap::with_capacity_and_hasher(to - from, TopBitsFirst(buckets.trailing_zeros()));
            from = to;
        }
        let mut rest = pairs.as_slice();
        while let Some(((fingerprint, position), _)) = rest.split_first() {
            // Counted, not binary-searched: runs are short and the slice is long.
            let run = rest.iter().take_while(|(other, _)| other == fingerprint).count();
            if run == 1 {
                self.by_fingerprint[shard_of(*fingerprint)].insert(*fingerprint, *position);
            } else {
                for (_, position) in &rest[..run] {
                    self.insert(&stored_transfer_id(log, *position), *position, log);
                }
            }
            rest = &rest[run..];
        }
        tracing::info!(
            ids = pairs.len(),
            segments_from_fingerprint_files = loaded,
            read_ms = read.as_millis() as u64,
            sort_ms = (sorted - read).as_millis() as u64,
            insert_ms = (started.elapsed() - sorted).as_millis() as u64,
            "transfer index rebuilt"
        );
        Ok(short)
    }

    fn get(&self, id: &TransferId, log: &SegmentLog) -> Option<u64> {
        if let Some(position) = self.collided.get(id) {
            return Some(*position);
        }
        let fingerprint = self.fingerprint(id);
        let position = *self.by_fingerprint[shard_of(fingerprint)].get(&fingerprint)?;
        (stored_transfer_id(log, position) == *id).then_some(position)
    }

    fn insert(&mut self, id: &TransferId, position: u64, log: &SegmentLog) {
        if let Some(at) = self.collided.get_mut(id) {
            *at = position;
            return;
        }
        let fingerprint = self.fingerprint(id);
        match self.by_fingerprint[shard_of(fingerprint)].entry(fingerprint) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
            }
            hash_map::Entry::Occupied(mut slot) => {
                if stored_transfer_id(log, *slot.get()) == *id {
                    slot.insert(position);
                } else {
                    tracing::info!(transfer = %id, "transfer id fingerprint collision; indexed by id");
                    self.collided.insert(id.clone(), position);
                }
            }
        }
    }
}

/// Positions of each account's history rows, by the account's slot (row `i` at `[i - 1]`).
type HistoryPositions = Vec<Vec<u64>>;

/// Each account's history row positions, from the history log's fingerprint runs from `base`
/// (see [`SegmentLog::fingerprint_runs`]), without a map lookup per row (20 M rows took 18-20 s
/// that way, mostly cache misses): each segment's run is sorted by the fingerprint of the row's
/// key (the account id's encoding), then position, so the accounts, sorted by the fingerprint
/// of their ids, take from each run in turn the slice of their own fingerprint: in segment
/// order, that is position order. `None` if two accounts share a fingerprint (then
/// [`history_by_lookup`]). Also returns the segments whose key files fell short. A row no
/// account claims is corruption; a count that differs from the balance record is caught by the
/// caller's check.
fn sorted_history(
    accounts: &Accounts,
    runs: segment::FingerprintRuns,
    fingerprint: &(dyn Fn(&[u8]) -> u64 + Sync),
) -> Result<Option<(HistoryPositions, Vec<u64>)>, StoreError> {
    let started = std::time::Instant::now();
    let mut key = Vec::new();
    let mut owners: Vec<(u64, &Held)> = accounts
        .all()
        .filter(|h| h.account.history_len > 0)
        .map(|h| {
            // The id's encoding, as a history record starts with it (without a Vec per account).
            key.clear();
            codec::encode_onto(&h.account.id, &mut key);
            (fingerprint(&key), h)
        })
        .collect();
    owners.sort_unstable_by_key(|(fp, _)| *fp);
    if owners.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Ok(None);
    }
    let read = started.elapsed();
    let orphan = |position: u64| StoreError::Corrupt {
        what: "history record",
        detail: format!("at {position}: a row of an account that has none in the checkpoint"),
    };
    let mut history = vec![Vec::new(); accounts.len()];
    let mut next = vec![0; runs.runs.len()];
    for (fp, held) in owners {
        let mut positions = Vec::with_capacity(held.account.history_len as usize);
        for (run, next) in runs.runs.iter().zip(&mut next) {
            if let Some((row_fp, position)) = run.get(*next)
                && *row_fp < fp
            {
                return Err(orphan(*position));
            }
            // Counted, not binary-searched: a binary search over the remaining rows for each
            // of a million accounts was a few cache-missing probes per row of the run.
            let taken = run[*next..].iter().take_while(|(row_fp, _)| *row_fp == fp).count();
            positions.extend(run[*next..*next + taken].iter().map(|(_, p)| *p));
            *next += taken;
        }
        history[held.slot as usize] = positions;
    }
    for (run, next) in runs.runs.iter().zip(&next) {
        if let Some((_, position)) = run.get(*next) {
            return Err(orphan(*position));
        }
    }
    tracing::info!(
        rows = history.iter().map(Vec::len).sum::<usize>(),
        segments_from_fingerprint_files = runs.loaded,
        owners_ms = read.as_millis() as u64,
        split_ms = (started.elapsed() - read).as_millis() as u64,
        "history positions rebuilt"
    );
    Ok(Some((history, runs.short)))
}

/// The history log's fingerprint runs from `base`, for [`sorted_history`] (read on their own
/// thread while the account table fills).
fn history_runs(
    log: &SegmentLog,
    base: u64,
    seed: u64,
    fingerprint: &(dyn Fn(&[u8]) -> u64 + Sync),
) -> Result<segment::FingerprintRuns, StoreError> {
    log.fingerprint_runs(base, log.len(), seed, &|key| history_fingerprint(fingerprint, key))
}

/// A history row's fingerprint, from its key (or its record: the account id is the front of
/// both): `fingerprint` of the id's encoding, as [`sorted_history`] takes each account's.
fn history_fingerprint(fingerprint: &(dyn Fn(&[u8]) -> u64 + Sync), key: &[u8]) -> Result<u64, StoreError> {
    let len = codec::string_prefix_len(key).ok_or_else(|| StoreError::Corrupt {
        what: "history record",
        detail: "does not start with an account id".into(),
    })?;
    Ok(fingerprint(&key[..len]))
}

/// Each account's history row positions by one lookup per row: what [`sorted_history`] falls
/// back to. Each account's vector is sized from its balance record (the logs are cut to the
/// checkpoint, so the count is exact, and checked by the caller).
fn history_by_lookup(
    accounts: &Accounts,
    history: &mut HistoryPositions,
    log: &SegmentLog,
    base: u64,
) -> Result<Vec<u64>, StoreError> {
    *history = vec![Vec::new(); accounts.len()];
    for held in accounts.all() {
        history[held.slot as usize].reserve_exact(held.account.history_len as usize);
    }
    log.for_each_key(base, log.len(), &mut |position, bytes| {
        let account: AccountId = codec::decode_prefix(bytes)
            .map_err(|e| StoreError::Corrupt { what: "history record", detail: format!("at {position}: {e}") })?;
        let Some(held) = accounts.held(&account).filter(|h| h.account.history_len > 0) else {
            return Err(StoreError::Corrupt {
                what: "history record",
                detail: format!("at {position}: a row of {account}, which has none in the checkpoint"),
            });
        };
        history[held.slot as usize].push(position);
        Ok(())
    })
}

/// A record we wrote that cannot be read back means the disk lied: stop rather than diverge.
fn must_read(log: &SegmentLog, what: &str, position: u64) -> Vec<u8> {
    log.read(position).unwrap_or_else(|e| panic!("cannot read the {what} record at {position}: {e}"))
}

fn must_decode<T: serde::de::DeserializeOwned>(what: &str, position: u64, bytes: &[u8]) -> T {
    codec::decode(bytes).unwrap_or_else(|e| panic!("corrupt {what} record at {position}: {e}"))
}

/// Records located under the state's lock and read after it is released, so a long read never
/// holds back the apply's write lock: the records it names were flushed and never move.
pub struct Located {
    reader: SegmentReader,
    positions: Vec<u64>,
}

impl Located {
    /// The history rows located, checked to belong to `account`.
    pub fn history(self, account: &AccountId) -> Vec<HistoryEntry> {
        self.positions
            .iter()
            .map(|&position| {
                let bytes = must_read_from(&self.reader, "history", position);
                let (owner, row): (AccountId, HistoryEntry) = must_decode("history", position, &bytes);
                assert_eq!(&owner, account, "history position of {account} holds a row of {owner}");
                row
            })
            .collect()
    }

    /// The journal records located.
    pub fn journal(self) -> Vec<JournalRecord> {
        self.positions
            .iter()
            .map(|&position| must_decode("journal", position, &must_read_from(&self.reader, "journal", position)))
            .collect()
    }
}

fn must_read_from(reader: &SegmentReader, what: &str, position: u64) -> Vec<u8> {
    reader.read(position).unwrap_or_else(|e| panic!("cannot read the {what} record at {position}: {e}"))
}

/// `Changes` with their records encoded, ready to append (encoding needs no lock). Every
/// record is encoded into one buffer (`bytes`), each kept as its end offset: one growing
/// allocation per commit instead of one per record.
pub struct Prepared {
    changes: Changes,
    bytes: Vec<u8>,
    /// (id, end of its record in `bytes`).
    transfers: Vec<(TransferId, usize)>,
    /// (whose row, row index, end of `(account, row)` in `bytes`).
    history: Vec<(Owner, u64, usize)>,
    /// (seq, end of the record in `bytes`).
    journal: Vec<(u64, usize)>,
}

impl Prepared {
    pub fn new(mut changes: Changes) -> Prepared {
        // Sized for the whole apply up front (a journal record carries its command's items):
        // growing it by doubling copied every record encoded so far.
        let journal_bytes: usize = changes.journal.iter().map(|r| 1024 + 256 * r.command.item_count()).sum();
        let mut bytes = Vec::with_capacity(256 * (changes.transfers.len() + changes.history.len()) + journal_bytes);
        let transfers = std::mem::take(&mut changes.transfers)
            .into_iter()
            .map(|(id, transfer)| (id, codec::encode_onto(&transfer, &mut bytes)))
            .collect();
        // Found here, off the state's lock, in the small map of this apply's accounts.
        let history = std::mem::take(&mut changes.history)
            .into_iter()
            .map(|(account, row)| {
                let end = codec::encode_onto(&(&account, &row), &mut bytes);
                let owner = match changes.accounts.get_index_of(&account) {
                    Some(written) => Owner::Written(written),
                    None => Owner::Other(account),
                };
                (owner, row.index, end)
            })
            .collect();
        let journal = std::mem::take(&mut changes.journal)
            .into_iter()
            .map(|record| (record.seq, codec::encode_onto(&record, &mut bytes)))
            .collect();
        Prepared { changes, bytes, transfers, history, journal }
    }
}

/// The account a history row of a [`Prepared`] belongs to.
enum Owner {
    /// The account at this index of the changes' accounts (a row's account nearly always is
    /// one: a row changes its account's row count).
    Written(usize),
    /// An account the changes do not write, found in the table at commit.
    Other(AccountId),
}

pub struct LedgerState {
    accounts: Accounts,
    /// Positions of each account's history rows by its slot (row `i` at `[i - 1]`); as long as
    /// the account table; rebuilt at start-up, never in a checkpoint.
    history: HistoryPositions,
    totals: BTreeMap<Currency, CurrencyTotals>,
    expiries: BTreeSet<Expiry>,
    meta: LedgerMeta,
    site_log: Vec<SiteLogEntry>,
    /// Position of journal record `seq` at `journal[seq - 1]`.
    journal: Vec<u64>,
    transfers: TransferIndex,
    /// History positions held, summed over `accounts` (kept as a count: the status and the
    /// metrics read it every second, and a walk over a million accounts is not free).
    history_rows: usize,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    logs: [SegmentLog; 3],
    bases: [u64; 3],
    /// The generation's fingerprint seed: the transfer index's key, and the key of the
    /// segments' fingerprint files.
    seed: u64,
}

/// The generation's fingerprint seed, `fingerprint.seed` in its directory: random, made by the
/// generation's first open. If it is lost or damaged a new one is made, and the fingerprint
/// files written under the old one are computed again (they name their seed).
fn fingerprint_seed(dir: &Path) -> Result<u64, StoreError> {
    let path = dir.join("fingerprint.seed");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(seed) = <[u8; 8]>::try_from(bytes.as_slice())
    {
        return Ok(u64::from_le_bytes(seed));
    }
    std::fs::create_dir_all(dir).map_err(super::io_err(dir))?;
    // std's SipHash keys come from the operating system's randomness.
    let seed = std::hash::RandomState::new().hash_one(std::time::SystemTime::now());
    let temporary = path.with_extension("seed.tmp");
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        std::io::Write::write_all(&mut file, &seed.to_le_bytes())?;
        file.sync_all()
    });
    written.map_err(super::io_err(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(super::io_err(&path))?;
    super::sync_dir(dir)?;
    Ok(seed)
}

/// The fingerprint files a checkpoint's writer makes for the segments sealed since the last
/// (see `segment`), off the apply path: what [`LedgerState::unfingerprinted`] returns.
pub struct Unfingerprinted {
    seed: u64,
    transfers: Vec<segment::SealedSegment>,
    history: Vec<segment::SealedSegment>,
}

impl Unfingerprinted {
    /// Writes the files; returns how many. A segment whose key file does not cover it is
    /// left to the next start-up.
    pub fn save(self) -> Result<usize, StoreError> {
        let keys = FixedState::with_seed(self.seed);
        let transfers = TransferIndex::new(keys.clone());
        let mut saved = 0;
        for sealed in &self.transfers {
            saved += usize::from(sealed.save_fingerprints(self.seed, &|key| transfers.fingerprint_of_key(key))?);
        }
        let fingerprint = |key: &[u8]| keys.hash_one(key);
        for sealed in &self.history {
            saved += usize::from(sealed.save_fingerprints(self.seed, &|key| history_fingerprint(&fingerprint, key))?);
        }
        Ok(saved)
    }
}

impl LedgerState {
    /// Opens the generation in `dir` at `checkpoint` (none: the empty state), truncating its
    /// logs to the checkpoint's lengths and rebuilding the indexes from them.
    pub fn open(dir: &Path, checkpoint: Option<CheckpointIn>) -> Result<LedgerState, StoreError> {
        let open = |i: usize| SegmentLog::open(&dir.join(LOG_NAMES[i]), ROLL_BYTES, KEY_OF[i]);
        let mut logs = [open(TRANSFERS)?, open(HISTORY)?, open(JOURNAL)?];
        let seed = fingerprint_seed(dir)?;
        let body = match checkpoint {
            Some(body) => body,
            None => {
                for log in &mut logs {
                    log.truncate(0)?;
                }
                return Ok(LedgerState {
                    accounts: Accounts::new(),
                    history: Vec::new(),
                    totals: BTreeMap::new(),
                    expiries: BTreeSet::new(),
                    meta: LedgerMeta::default(),
                    site_log: Vec::new(),
                    journal: Vec::new(),
                    transfers: TransferIndex::new(FixedState::with_seed(seed)),
                    history_rows: 0,
                    last_applied: None,
                    membership: StoredMembership::default(),
                    logs,
                    bases: [0; 3],
                    seed,
                });
            }
        };
        let started = std::time::Instant::now();
        for (i, log) in logs.iter_mut().enumerate() {
            let cut = body.cuts[i];
            if log.len() < cut.len || cut.base > cut.len {
                return Err(StoreError::Corrupt {
                    what: "segment log",
                    detail: format!(
                        "{}: {} bytes on disk, the checkpoint names [{}, {})",
                        LOG_NAMES[i],
                        log.len(),
                        cut.base,
                        cut.len
                    ),
                });
            }
            log.truncate(cut.len)?;
        }
        let truncated = started.elapsed();
        let mut state = LedgerState {
            accounts: Accounts::new(),
            history: Vec::new(),
            totals: body.totals,
            expiries: body.expiries,
            meta: body.meta,
            site_log: body.site_log,
            journal: Vec::new(),
            transfers: TransferIndex::new(FixedState::with_seed(seed)),
            history_rows: 0,
            last_applied: body.last_applied,
            membership: body.membership,
            logs,
            bases: body.cuts.map(|cut| cut.base),
            seed,
        };
        let [accounts, transfers, history, journal] = state.rebuild_indexes(body.accounts)?;
        tracing::info!(
            truncate_ms = truncated.as_millis() as u64,
            accounts_ms = accounts.as_millis() as u64,
            transfers_ms = transfers.as_millis() as u64,
            history_ms = history.as_millis() as u64,
            journal_ms = journal.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "state rebuilt"
        );
        Ok(state)
    }

    /// Fills the account table from the checkpoint's `accounts`, rebuilds the transfer,
    /// history and journal indexes from the logs' fingerprint and key files (and from the
    /// records where a key file falls short, rewriting it), and checks them against what the
    /// in-memory state says they must hold.
    /// Returns when the accounts were in and the transfer and history rebuilds (in parallel)
    /// ended, and how long the journal's took after them.
    fn rebuild_indexes(&mut self, accounts_in: Vec<Account>) -> Result<[std::time::Duration; 4], StoreError> {
        let LedgerState { accounts, history, journal, transfers, history_rows, logs, bases, meta, seed, .. } = self;
        let [transfer_log, history_log, journal_log] = &*logs;
        let seed = *seed;
        let started = std::time::Instant::now();
        // The id index is independent of the accounts and the history positions: one thread
        // for it, one for those (at 10 M transfers each takes seconds, mostly cache misses in
        // maps of millions of entries).
        let fingerprints = FixedState::with_seed(seed);
        let fingerprint = |key: &[u8]| fingerprints.hash_one(key);
        let (transfers_built, history_built, accounts_done) = std::thread::scope(|scope| {
            let transfers_thread = scope.spawn(|| {
                let short = transfers.rebuild(transfer_log, bases[TRANSFERS], seed);
                (short, started.elapsed())
            });
            let runs_thread = scope.spawn(|| {
                let runs = history_runs(history_log, bases[HISTORY], seed, &fingerprint);
                (runs, started.elapsed())
            });
            for account in accounts_in {
                accounts.insert(account);
            }
            let accounts_done = started.elapsed();
            let (runs, runs_done) = runs_thread.join().expect("the history runs' read does not panic");
            tracing::info!(ms = runs_done.as_millis() as u64, "history fingerprint runs read");
            let short = match runs.and_then(|runs| sorted_history(accounts, runs, &fingerprint)) {
                Ok(Some((positions, short))) => {
                    *history = positions;
                    Ok(short)
                }
                // Two account ids share a fingerprint (odds about 2^-64 per pair of accounts,
                // a generation's seed; it stays with the generation): the slower way, one
                // lookup per row.
                Ok(None) => {
                    tracing::info!("account fingerprints collide; rebuilding history positions by lookup");
                    history_by_lookup(accounts, history, history_log, bases[HISTORY])
                }
                Err(e) => Err(e),
            };
            *history_rows = history.iter().map(Vec::len).sum();
            let history_built = (short, started.elapsed());
            (transfers_thread.join().expect("the transfer index rebuild does not panic"), history_built, accounts_done)
        });
        let (short_transfers, transfers_done) = (transfers_built.0?, transfers_built.1);
        let (short_history, history_done) = (history_built.0?, history_built.1);
        let short_journal = journal_log.for_each_key(bases[JOURNAL], journal_log.len(), &mut |position, _| {
            journal.push(position);
            Ok(())
        })?;
        let journal_done = started.elapsed();
        // Paired assertions: the logs hold exactly what the checkpointed state counts.
        for Held { account, slot } in accounts.all() {
            let rows = history.get(*slot as usize).map_or(0, Vec::len);
            if rows as u64 != account.history_len {
                return Err(StoreError::Corrupt {
                    what: "history log",
                    detail: format!(
                        "account {} has {rows} rows in the log, {} in its balance record",
                        account.id, account.history_len
                    ),
                });
            }
        }
        if journal.len() as u64 != meta.journal.seq {
            return Err(StoreError::Corrupt {
                what: "journal log",
                detail: format!("{} records in the log, the head is at seq {}", journal.len(), meta.journal.seq),
            });
        }
        for (log, short) in logs.iter_mut().zip([short_transfers, short_history, short_journal]) {
            if !short.is_empty() {
                log.rewrite_keys(&short)?;
            }
        }
        Ok([accounts_done, transfers_done, history_done, journal_done - transfers_done.max(history_done)])
    }

    pub fn last_applied(&self) -> Option<LogId> {
        self.last_applied
    }

    pub fn membership(&self) -> &StoredMembership {
        &self.membership
    }

    /// Commits one batch of applied entries: appends the records, then updates the maps and
    /// indexes, then `last_applied`. Called under the generation's write lock, so readers see
    /// all of it or none. The appended bytes are handed to the kernel, not fsynced.
    pub fn commit(
        &mut self,
        prepared: Prepared,
        last_applied: Option<LogId>,
        membership: Option<StoredMembership>,
    ) -> Result<(), StoreError> {
        let Prepared { changes, bytes, transfers, history, journal } = prepared;
        let mut start = 0;
        let mut record = |end: usize| {
            let slice = &bytes[start..end];
            start = end;
            slice
        };
        if changes.reset {
            self.accounts = Accounts::new();
            self.history = Vec::new();
            self.history_rows = 0;
            self.totals.clear();
            self.expiries.clear();
            self.journal = Vec::new();
            self.transfers.clear();
            for (i, log) in self.logs.iter().enumerate() {
                self.bases[i] = log.len();
            }
        }
        for entry in changes.site_log {
            assert_eq!(entry.seq, self.site_log.len() as u64 + 1, "site log stays contiguous");
            self.site_log.push(entry);
        }
        let mut slots = Vec::with_capacity(changes.accounts.len());
        for (id, account) in changes.accounts {
            debug_assert_eq!(id, account.id);
            let slot = self.accounts.insert(account);
            if slot as usize == self.history.len() {
                self.history.push(Vec::new());
            }
            slots.push(slot);
        }
        for (id, end) in transfers {
            let position = self.logs[TRANSFERS].append(record(end))?;
            self.transfers.insert(&id, position, &self.logs[TRANSFERS]);
        }
        for (expiry, added) in changes.expiries {
            if added {
                self.expiries.insert(expiry);
            } else {
                self.expiries.remove(&expiry);
            }
        }
        for (owner, index, end) in history {
            let position = self.logs[HISTORY].append(record(end))?;
            let slot = match owner {
                Owner::Written(written) => slots[written],
                Owner::Other(account) => {
                    self.accounts.slot(&account).unwrap_or_else(|| panic!("history row of unknown {account}"))
                }
            };
            let rows = &mut self.history[slot as usize];
            assert_eq!(index, rows.len() as u64 + 1, "history rows are contiguous");
            rows.push(position);
            self.history_rows += 1;
        }
        self.totals.extend(changes.totals);
        for (seq, end) in journal {
            assert_eq!(seq, self.journal.len() as u64 + 1, "journal stays contiguous");
            let position = self.logs[JOURNAL].append(record(end))?;
            self.journal.push(position);
        }
        assert_eq!(start, bytes.len(), "every encoded record was appended");
        if let Some(meta) = changes.meta {
            self.meta = meta;
        }
        assert_eq!(self.journal.len() as u64, self.meta.journal.seq, "journal positions match the head");
        if let Some(membership) = membership {
            self.membership = membership;
        }
        if last_applied.is_some() {
            self.last_applied = last_applied;
        }
        for log in &mut self.logs {
            log.flush()?;
        }
        Ok(())
    }

    /// Each log's cut as of now (all appended bytes flushed).
    pub fn cuts(&self) -> [Cut; 3] {
        [0, 1, 2].map(|i| Cut { base: self.bases[i], len: self.logs[i].len() })
    }

    /// The state as it is now, for a checkpoint: O(shards + pending expiries + site log),
    /// never O(accounts); [`CheckpointCut::encode`] does the O(accounts) part.
    /// The sealed segments of the transfer and history logs that have no fingerprint file yet.
    pub fn unfingerprinted(&self) -> Unfingerprinted {
        Unfingerprinted {
            seed: self.seed,
            transfers: self.logs[TRANSFERS].unfingerprinted(),
            history: self.logs[HISTORY].unfingerprinted(),
        }
    }

    pub fn checkpoint_cut(&self, snapshot_id: String) -> CheckpointCut {
        CheckpointCut {
            version: CHECKPOINT_VERSION,
            snapshot_id,
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            meta: self.meta.clone(),
            totals: self.totals.clone(),
            expiries: self.expiries.clone(),
            site_log: self.site_log.clone(),
            cuts: self.cuts(),
            accounts: self.accounts.cut(),
        }
    }

    /// Handles that make every flushed byte of the three logs durable when synced.
    pub fn sync_handles(&self) -> Result<Vec<(std::path::PathBuf, std::fs::File)>, StoreError> {
        let mut handles = Vec::new();
        for log in &self.logs {
            handles.extend(log.sync_handles()?);
        }
        Ok(handles)
    }

    pub fn log(&self, which: usize) -> &SegmentLog {
        &self.logs[which]
    }

    /// Number of transfer ids indexed, accounts held and history positions held (for memory
    /// reports).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.transfers.len(), self.accounts.len(), self.history_rows)
    }

    /// Where history rows of `account` from `from_index` (1-based), at most `limit`, are:
    /// located under the lock, read by [`Located::history`] after it is released.
    pub fn locate_history(&self, account: &AccountId, from_index: u64, limit: usize) -> Located {
        let from = from_index.max(1) as usize - 1;
        let positions = match self.accounts.slot(account) {
            Some(slot) => self.history[slot as usize].iter().skip(from).take(limit).copied().collect(),
            None => Vec::new(),
        };
        Located { reader: self.logs[HISTORY].reader(), positions }
    }

    /// Where journal records from `from_seq`, at most `limit`, are (see [`Located::journal`]).
    pub fn locate_journal(&self, from_seq: u64, limit: usize) -> Located {
        let from = from_seq.max(1) as usize - 1;
        let positions = self.journal.iter().skip(from).take(limit).copied().collect();
        Located { reader: self.logs[JOURNAL].reader(), positions }
    }

    /// Every account, in id order (O(accounts)).
    pub fn accounts(&self) -> Vec<Account> {
        let mut accounts: Vec<Account> = self.accounts.values().cloned().collect();
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        accounts
    }

    /// Site log entries from `from_seq`, at most `limit`.
    pub fn site_log(&self, from_seq: u64, limit: usize) -> Vec<SiteLogEntry> {
        let from = from_seq.max(1) as usize - 1;
        self.site_log.iter().skip(from).take(limit).cloned().collect()
    }
}

impl LedgerRead for LedgerState {
    fn account(&self, id: &AccountId) -> Option<Account> {
        self.accounts.get(id).cloned()
    }

    fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        let position = self.transfers.get(id, &self.logs[TRANSFERS])?;
        let bytes = must_read(&self.logs[TRANSFERS], "transfer", position);
        Some(must_decode("transfer", position, &bytes))
    }

    fn totals(&self, currency: Currency) -> CurrencyTotals {
        self.totals.get(&currency).copied().unwrap_or_default()
    }

    fn due_expiries(&self, now_ms: u64, limit: usize) -> Vec<Expiry> {
        self.expiries.iter().take_while(|e| e.expires_at_ms <= now_ms).take(limit).cloned().collect()
    }

    fn meta(&self) -> LedgerMeta {
        self.meta.clone()
    }

    fn journal_record(&self, seq: u64) -> Option<JournalRecord> {
        let position = *self.journal.get(seq.checked_sub(1)? as usize)?;
        let bytes = must_read(&self.logs[JOURNAL], "journal", position);
        Some(must_decode("journal", position, &bytes))
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::transfer::NewTransfer;
    use std::hash::BuildHasherDefault;

    use super::*;

    fn account(id: &str, history_len: u64) -> Account {
        Account {
            id: AccountId::new(id),
            currency: Currency::parse("EUR").unwrap(),
            flags: Default::default(),
            overdraft_limit: None,
            code: 0,
            pii: Default::default(),
            status: Default::default(),
            balance: Default::default(),
            created_at_ms: 0,
            created_seq: 0,
            history_len,
        }
    }

    fn row(index: u64) -> HistoryEntry {
        HistoryEntry {
            index,
            transfer_id: TransferId::new(format!("t{index}")),
            journal_seq: 0,
            ledger_time_ms: 0,
            side: ledger_core::transfer::Side::Debit,
            effect: ledger_core::transfer::HistoryEffect::Posted,
            amount: ledger_core::Decimal::ONE,
            balance: Default::default(),
        }
    }

    /// A state with 40 accounts (`a0`..`a39`, account `ai` with `i % 7` rows, interleaved over
    /// five commits, so that its rows are scattered through the history log).
    fn state_with_history(dir: &Path) -> LedgerState {
        let mut state = LedgerState::open(dir, None).unwrap();
        let rows_of = |i: u64| i % 7;
        let mut changes = Changes::default();
        for i in 0..40 {
            changes.accounts.insert(AccountId::new(format!("a{i}")), account(&format!("a{i}"), rows_of(i)));
        }
        state.commit(Prepared::new(changes), None, None).unwrap();
        for round in 1..=6 {
            let mut changes = Changes::default();
            for i in (0..40).rev().filter(|i| rows_of(*i) >= round) {
                changes.history.push((AccountId::new(format!("a{i}")), row(round)));
            }
            state.commit(Prepared::new(changes), None, None).unwrap();
        }
        state
    }

    /// Goal: the start-up rebuild of history positions by sorting fingerprints gives each
    /// account exactly its rows in order, as the lookup rebuild and the apply do; when two
    /// accounts share a fingerprint it declines (the caller then uses the lookup rebuild),
    /// and a row no account has in the checkpoint is corruption either way.
    #[test]
    fn history_positions_rebuild_by_sorting_and_by_lookup_alike() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_with_history(dir.path());
        let applied = state.history.clone();
        assert_eq!(applied.iter().map(Vec::len).sum::<usize>(), (0..40u64).map(|i| i % 7).sum::<u64>() as usize);
        let log = &state.logs[HISTORY];
        let seeded = FixedState::with_seed(5);
        let runs = |log: &SegmentLog, seed| history_runs(log, 0, seed, &|key| seeded.hash_one(key)).unwrap();
        let (sorted, short) =
            sorted_history(&state.accounts, runs(log, 5), &|key| seeded.hash_one(key)).unwrap().unwrap();
        assert_eq!((sorted, short), (applied.clone(), vec![]));
        let mut by_lookup = Vec::new();
        history_by_lookup(&state.accounts, &mut by_lookup, log, 0).unwrap();
        assert_eq!(by_lookup, applied);
        assert!(sorted_history(&state.accounts, runs(log, 7), &|_| 7).unwrap().is_none(), "every account collides");

        // The same rows over many small segments: one run per segment, merged per account,
        // first computed (and saved), then from the fingerprint files.
        let small_dir = tempfile::tempdir().unwrap();
        let mut small = SegmentLog::open(small_dir.path(), 512, KEY_OF[HISTORY]).unwrap();
        for (_, row) in log.scan(0).unwrap() {
            small.append(&row).unwrap();
        }
        small.flush().unwrap();
        let mut by_lookup = Vec::new();
        history_by_lookup(&state.accounts, &mut by_lookup, &small, 0).unwrap();
        assert_eq!(small.unfingerprinted().len(), small.len() as usize / 512, "many sealed segments");
        for _ in 0..2 {
            let (sorted, _) =
                sorted_history(&state.accounts, runs(&small, 5), &|key| seeded.hash_one(key)).unwrap().unwrap();
            assert_eq!(sorted, by_lookup);
            assert!(small.unfingerprinted().is_empty(), "the rebuild wrote the sealed segments' files");
        }

        // An account the checkpoint does not have rows for, with a row in the log.
        let mut accounts = Accounts::new();
        for account in state.accounts.values().filter(|a| a.id.as_str() != "a6") {
            accounts.insert(account.clone());
        }
        accounts.insert(account("a6", 0));
        let err = sorted_history(&accounts, runs(log, 5), &|key| seeded.hash_one(key)).unwrap_err();
        assert!(err.to_string().contains("has none in the checkpoint"), "{err}");
        let err = history_by_lookup(&accounts, &mut by_lookup, log, 0).unwrap_err();
        assert!(err.to_string().contains("has none in the checkpoint"), "{err}");
    }

    /// A posted transfer of 1 from `a` to `b`, at journal seq `seq` (and ledger time `seq`).
    fn posted_transfer(id: &str, seq: u64) -> Transfer {
        Transfer {
            request: NewTransfer::posted(id, "a", "b", ledger_core::Decimal::ONE),
            result: ledger_core::reject::ResultCode::Ok,
            state: ledger_core::transfer::TransferState::Posted,
            debit_account_id: AccountId::new("a"),
            credit_account_id: AccountId::new("b"),
            currency: None,
            amount: ledger_core::Decimal::ONE,
            ledger_time_ms: seq,
            journal_seq: seq,
            expires_at_ms: None,
        }
    }

    /// Goal: the start-up rebuild of the transfer id index (sorted by bucket, inserted in one
    /// sweep) finds every id at its newest version, as the apply's index does, also when
    /// every id shares one fingerprint (then the stored ids settle it).
    /// Method: a transfer log with ids written once, twice and three times; rebuild it with
    /// the per-process keyed fingerprint and with a fingerprint that is always 7.
    #[test]
    fn the_transfer_index_rebuild_finds_each_id_at_its_newest_version() {
        #[derive(Default)]
        struct Seven;
        impl Hasher for Seven {
            fn finish(&self) -> u64 {
                7
            }
            fn write(&mut self, _: &[u8]) {}
        }
        let dir = tempfile::tempdir().unwrap();
        // Small segments: several runs, the sealed ones read from their fingerprint files
        // the second time.
        let mut log = SegmentLog::open(dir.path(), 200, KEY_OF[TRANSFERS]).unwrap();
        let mut newest = BTreeMap::new();
        for (n, id) in ["t1", "t2", "t1", "t3", "t2", "t1", "t4"].iter().enumerate() {
            let transfer = posted_transfer(id, n as u64 + 1);
            newest.insert(TransferId::new(*id), log.append(&codec::encode(&transfer)).unwrap());
        }
        log.flush().unwrap();
        let check = |index: &dyn Fn(&TransferId) -> Option<u64>| {
            for (id, position) in &newest {
                assert_eq!(index(id), Some(*position), "{id}");
            }
            assert_eq!(index(&TransferId::new("t5")), None);
        };
        assert!(log.unfingerprinted().len() >= 2, "several sealed segments");
        for _ in 0..2 {
            let mut keyed = TransferIndex::new(FixedState::with_seed(3));
            assert_eq!(keyed.rebuild(&log, 0, 3).unwrap(), Vec::<u64>::new());
            assert_eq!(keyed.len(), 4);
            check(&|id| keyed.get(id, &log));
            assert!(log.unfingerprinted().is_empty());
        }
        let mut colliding = TransferIndex::new(BuildHasherDefault::<Seven>::default());
        colliding.rebuild(&log, 0, 7).unwrap();
        assert_eq!((colliding.len(), colliding.collided.len()), (4, 3), "one id keeps the fingerprint");
        check(&|id| colliding.get(id, &log));
    }

    /// Goal: the start-up scan reads a transfer's id from the front of its record, without
    /// decoding the rest; this holds only while `Transfer` starts with `request.id`.
    #[test]
    fn a_stored_transfer_starts_with_its_id() {
        let transfer = posted_transfer("t-42", 1);
        let id: TransferId = codec::decode_prefix(&codec::encode(&transfer)).unwrap();
        assert_eq!(id, TransferId::new("t-42"));
        let row = (&AccountId::new("acc-1"), 5u64);
        let account: AccountId = codec::decode_prefix(&codec::encode(&row)).unwrap();
        assert_eq!(account, AccountId::new("acc-1"));
    }
}
