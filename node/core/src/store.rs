//! What the ledger reads and what it writes, without saying where either lives.
//!
//! [`LedgerRead`] is the read side the rules need (point lookups and due expiries). The ledger
//! never writes to a backend: it writes into an [`Overlay`], whose [`Changes`] the caller then
//! commits atomically (the node commits them with `last_applied` in one sled batch;
//! [`MemStore`] commits them into maps). An atomic transfer batch runs in a child overlay that
//! is merged only if every item succeeded.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::account::Account;
use crate::account::Balance;
use crate::command::Envelope;
use crate::command::Outcome;
use crate::id::AccountId;
use crate::id::TransferId;
use crate::journal::JournalHead;
use crate::journal::JournalRecord;
use crate::journal::Origin;
use crate::journal::SiteLogEntry;
use crate::money::Currency;
use crate::site::SiteState;
use crate::transfer::HistoryEntry;
use crate::transfer::Transfer;

/// A pending transfer's place in the expiry index, ordered by time then id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Expiry {
    pub expires_at_ms: u64,
    pub transfer_id: TransferId,
}

/// State that is not per account or transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMeta {
    /// The journal head; its `ledger_time_ms` is the ledger clock (it never goes back).
    pub journal: JournalHead,
    pub site: SiteState,
    /// The site log head (its time is this site's clock when the journal was reset).
    pub site_log: JournalHead,
}

impl LedgerMeta {
    /// The ledger clock: never goes back, also across a journal reset (resync).
    pub fn clock_ms(&self) -> u64 {
        self.journal.ledger_time_ms.max(self.site_log.ledger_time_ms)
    }
}

/// Per-currency sums of every account's balance columns. Debits equal credits at all times.
pub type CurrencyTotals = Balance;

/// The reads the ledger rules need.
pub trait LedgerRead {
    fn account(&self, id: &AccountId) -> Option<Account>;
    fn transfer(&self, id: &TransferId) -> Option<Transfer>;
    fn totals(&self, currency: Currency) -> CurrencyTotals;
    /// Expiries at or before `now_ms`, oldest first, at most `limit`.
    fn due_expiries(&self, now_ms: u64, limit: usize) -> Vec<Expiry>;
    fn meta(&self) -> LedgerMeta;
    /// The journal record at `seq`, if present.
    fn journal_record(&self, seq: u64) -> Option<JournalRecord>;
}

/// Everything one or more commands wrote, to be committed atomically.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// In the order first written (deterministic: the same commands write in the same order).
    pub accounts: WrittenMap<AccountId, Account>,
    /// In the order first written.
    pub transfers: WrittenMap<TransferId, Transfer>,
    /// `true` adds the expiry, `false` removes it.
    pub expiries: BTreeMap<Expiry, bool>,
    /// New history rows, in order; `(account, row)` with contiguous row indexes per account.
    pub history: Vec<(AccountId, HistoryEntry)>,
    pub totals: BTreeMap<Currency, CurrencyTotals>,
    /// New journal records, contiguous.
    pub journal: Vec<JournalRecord>,
    pub meta: Option<LedgerMeta>,
    /// New site log entries, contiguous.
    pub site_log: Vec<SiteLogEntry>,
    /// The ledger state and journal before these changes are discarded (resync). The site log
    /// and the meta survive.
    pub reset: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.transfers.is_empty()
            && self.expiries.is_empty()
            && self.history.is_empty()
            && self.totals.is_empty()
            && self.journal.is_empty()
            && self.meta.is_none()
            && self.site_log.is_empty()
            && !self.reset
    }

    /// Applies `later` on top of `self` (later writes win).
    pub fn merge(&mut self, later: Changes) {
        if later.reset {
            let site_log = std::mem::take(&mut self.site_log);
            *self = Changes { reset: true, site_log, ..Changes::default() };
        }
        if let (Some(last), Some(first)) = (self.site_log.last(), later.site_log.first()) {
            assert_eq!(first.seq, last.seq + 1, "merged site logs must be contiguous");
        }
        self.site_log.extend(later.site_log);
        self.accounts.extend(later.accounts);
        self.transfers.extend(later.transfers);
        self.expiries.extend(later.expiries);
        self.history.extend(later.history);
        self.totals.extend(later.totals);
        if let (Some(last), Some(first)) = (self.journal.last(), later.journal.first()) {
            assert_eq!(first.seq, last.seq + 1, "merged journals must be contiguous");
        }

        self.journal.extend(later.journal);
        if later.meta.is_some() {
            self.meta = later.meta;
        }
    }
}

/// Accounts and transfers written, by id, in the order first written. Hash maps because the
/// posting rules look an account up and write it back twice per transfer (string-keyed
/// `BTreeMap`s spent most of that time comparing ids); insertion-ordered, so that what reaches
/// the output does not depend on the per-process hash seed and replicas reach the same bytes
/// without sorting (sorting a chunk's ids by their bytes was a tenth of the apply, as bench and
/// real ids share long prefixes).
pub type WrittenMap<K, V> = indexmap::IndexMap<K, V, foldhash::quality::RandomState>;

/// Reads through pending [`Changes`] to a base, and collects writes.
pub struct Overlay<'a> {
    base: &'a dyn LedgerRead,
    /// Everything written.
    changes: Changes,
    /// The base's meta, read once (the base cannot change while it is borrowed).
    base_meta: OnceCell<LedgerMeta>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn LedgerRead) -> Self {
        Overlay { base, changes: Changes::default(), base_meta: OnceCell::new() }
    }

    /// Everything written, accounts and transfers in the order first written.
    pub fn into_changes(self) -> Changes {
        self.changes
    }

    pub fn put_account(&mut self, account: Account) {
        match self.changes.accounts.get_mut(&account.id) {
            Some(slot) => *slot = account,
            None => {
                self.changes.accounts.insert(account.id.clone(), account);
            }
        }
    }

    pub fn put_transfer(&mut self, transfer: Transfer) {
        match self.changes.transfers.get_mut(&transfer.request.id) {
            Some(slot) => *slot = transfer,
            None => {
                self.changes.transfers.insert(transfer.request.id.clone(), transfer);
            }
        }
    }

    /// Makes room for the writes of `n_transfers` more transfers (two accounts and two history
    /// rows each), so that a batch does not grow the maps and the history step by step.
    pub fn reserve_transfers(&mut self, n_transfers: usize) {
        self.changes.transfers.reserve(n_transfers);
        self.changes.accounts.reserve(2 * n_transfers);
        self.changes.history.reserve(2 * n_transfers);
    }

    pub fn add_expiry(&mut self, expiry: Expiry) {
        self.changes.expiries.insert(expiry, true);
    }

    pub fn remove_expiry(&mut self, expiry: Expiry) {
        self.changes.expiries.insert(expiry, false);
    }

    pub fn push_history(&mut self, account: AccountId, row: HistoryEntry) {
        self.changes.history.push((account, row));
    }

    pub fn put_totals(&mut self, currency: Currency, totals: CurrencyTotals) {
        self.changes.totals.insert(currency, totals);
    }

    /// The current meta, borrowed: the written one, else the base's (read once).
    pub fn meta_ref(&self) -> &LedgerMeta {
        match &self.changes.meta {
            Some(meta) => meta,
            None => self.base_meta.get_or_init(|| self.base.meta()),
        }
    }

    /// The meta to change in place; it becomes part of the changes.
    fn meta_mut(&mut self) -> &mut LedgerMeta {
        if self.changes.meta.is_none() {
            let meta = match self.base_meta.take() {
                Some(meta) => meta,
                None => self.base.meta(),
            };
            self.changes.meta = Some(meta);
        }
        self.changes.meta.as_mut().expect("just set")
    }

    pub fn append_site_log(&mut self, entry: SiteLogEntry) {
        let meta = self.meta_mut();
        assert_eq!(entry.seq, meta.site_log.seq + 1, "site log must stay contiguous");
        assert_eq!(entry.prev_hash, meta.site_log.hash, "site log must stay chained");
        meta.site_log = entry.head();
        self.changes.site_log.push(entry);
    }

    /// Discards every account, transfer, expiry, history row, total and journal record (resync).
    /// The site log and meta stay; the journal head goes back to genesis.
    pub fn reset(&mut self) {
        let mut meta = self.meta();
        let site_log = std::mem::take(&mut self.changes.site_log);
        self.changes = Changes { reset: true, site_log, ..Changes::default() };
        meta.site_log.ledger_time_ms = meta.clock_ms();
        meta.journal = JournalHead::default();
        self.changes.meta = Some(meta);
    }

    /// Applies `later` (a child overlay's changes) on top of this overlay's (later writes win),
    /// as [`Changes::merge`] does.
    pub fn merge(&mut self, later: Changes) {
        self.changes.merge(later);
    }

    pub fn append_journal(&mut self, record: JournalRecord) {
        let meta = self.meta_mut();
        assert_eq!(record.seq, meta.journal.seq + 1, "journal must stay contiguous");
        assert_eq!(record.prev_hash, meta.journal.hash, "journal must stay chained");
        meta.journal = record.head();
        self.changes.journal.push(record);
    }

    /// Appends the journal record of `envelope` with `outcome`, under this site's name and
    /// epoch, chained to the current head. Returns its seq.
    pub fn journal_command(&mut self, envelope: &Envelope, outcome: Outcome, time: u64, raft_index: u64) -> u64 {
        let meta = self.meta_ref();
        let seq = meta.journal.seq + 1;
        let origin = Origin { site: meta.site.name.clone(), epoch: meta.site.epoch, raft_index };
        let record = JournalRecord::seal(
            seq,
            time,
            origin,
            envelope.caller.clone(),
            envelope.command.clone(),
            outcome,
            meta.journal.hash,
        );
        self.append_journal(record);
        assert_eq!(self.meta_ref().journal.seq, seq);
        seq
    }

    pub fn put_meta(&mut self, meta: LedgerMeta) {
        self.changes.meta = Some(meta);
    }
}

impl LedgerRead for Overlay<'_> {
    fn account(&self, id: &AccountId) -> Option<Account> {
        match self.changes.accounts.get(id) {
            Some(account) => Some(account.clone()),
            None if self.changes.reset => None,
            None => self.base.account(id),
        }
    }

    fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        match self.changes.transfers.get(id) {
            Some(transfer) => Some(transfer.clone()),
            None if self.changes.reset => None,
            None => self.base.transfer(id),
        }
    }

    fn totals(&self, currency: Currency) -> CurrencyTotals {
        match self.changes.totals.get(&currency) {
            Some(totals) => *totals,
            None if self.changes.reset => CurrencyTotals::default(),
            None => self.base.totals(currency),
        }
    }

    fn journal_record(&self, seq: u64) -> Option<JournalRecord> {
        if let Some(first) = self.changes.journal.first()
            && seq >= first.seq
        {
            return self.changes.journal.get((seq - first.seq) as usize).cloned();
        }
        if self.changes.reset {
            return None;
        }
        self.base.journal_record(seq)
    }

    fn due_expiries(&self, now_ms: u64, limit: usize) -> Vec<Expiry> {
        let removed = self.changes.expiries.values().filter(|added| !**added).count();
        let base_due = if self.changes.reset { Vec::new() } else { self.base.due_expiries(now_ms, limit + removed) };
        let mut due: BTreeSet<Expiry> =
            base_due.into_iter().filter(|e| self.changes.expiries.get(e) != Some(&false)).collect();
        for (expiry, added) in &self.changes.expiries {
            if *added && expiry.expires_at_ms <= now_ms {
                due.insert(expiry.clone());
            }
        }
        due.into_iter().take(limit).collect()
    }

    fn meta(&self) -> LedgerMeta {
        self.meta_ref().clone()
    }
}

/// The whole ledger in memory: the reference backend for tests, property tests and the
/// simulation tier. The node's sled backend must behave identically.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    pub accounts: BTreeMap<AccountId, Account>,
    pub transfers: BTreeMap<TransferId, Transfer>,
    pub expiries: BTreeSet<Expiry>,
    pub history: BTreeMap<(AccountId, u64), HistoryEntry>,
    pub totals: BTreeMap<Currency, CurrencyTotals>,
    pub journal: Vec<JournalRecord>,
    pub site_log: Vec<SiteLogEntry>,
    pub meta: LedgerMeta,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn commit(&mut self, changes: Changes) {
        if changes.reset {
            self.accounts.clear();
            self.transfers.clear();
            self.expiries.clear();
            self.history.clear();
            self.totals.clear();
            self.journal.clear();
        }
        for entry in changes.site_log {
            assert_eq!(entry.seq, self.site_log.len() as u64 + 1);
            self.site_log.push(entry);
        }
        self.accounts.extend(changes.accounts);
        self.transfers.extend(changes.transfers);
        for (expiry, added) in changes.expiries {
            if added {
                self.expiries.insert(expiry);
            } else {
                self.expiries.remove(&expiry);
            }
        }
        for (account, row) in changes.history {
            let key = (account, row.index);
            assert!(!self.history.contains_key(&key), "history rows are written once");
            self.history.insert(key, row);
        }
        self.totals.extend(changes.totals);
        for record in changes.journal {
            assert_eq!(record.seq, self.journal.len() as u64 + 1);
            self.journal.push(record);
        }
        if let Some(meta) = changes.meta {
            self.meta = meta;
        }
    }

    /// History rows of an account from `from_index`, at most `limit`.
    pub fn history_of(&self, account: &AccountId, from_index: u64, limit: usize) -> Vec<HistoryEntry> {
        self.history
            .range((account.clone(), from_index)..)
            .take_while(|((a, _), _)| a == account)
            .take(limit)
            .map(|(_, row)| row.clone())
            .collect()
    }
}

impl LedgerRead for MemStore {
    fn account(&self, id: &AccountId) -> Option<Account> {
        self.accounts.get(id).cloned()
    }

    fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        self.transfers.get(id).cloned()
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
        self.journal.get(seq.checked_sub(1)? as usize).cloned()
    }
}
