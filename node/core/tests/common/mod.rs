//! A test harness around the pure ledger: a [`MemStore`] fed through [`ledger::apply`], with
//! ledger time under the test's control, and every invariant the crate promises checked after
//! every command (conservation, constraints, totals, the journal hash chain, history rows, the
//! expiry index, and the balances rebuilt from the stored transfers).
//!
//! Shared by `rules.rs` and `properties.rs`; each uses a different part of it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;

use ledger_core::Decimal;
use ledger_core::account::Account;
use ledger_core::account::AccountAction;
use ledger_core::account::AccountFlags;
use ledger_core::account::AccountUpdate;
use ledger_core::account::Balance;
use ledger_core::account::NewAccount;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::command::Outcome;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::invariant;
use ledger_core::journal;
use ledger_core::journal::JournalHead;
use ledger_core::ledger;
use ledger_core::money::Currency;
use ledger_core::pii::AccountPii;
use ledger_core::reject::ResultCode;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_core::site::SiteState;
use ledger_core::store::CurrencyTotals;
use ledger_core::store::Expiry;
use ledger_core::store::MemStore;
use ledger_core::store::Overlay;
use ledger_core::transfer::HistoryEntry;
use ledger_core::transfer::NewTransfer;
use ledger_core::transfer::Transfer;
use ledger_core::transfer::TransferKind;
use ledger_core::transfer::TransferState;

/// Ledger time of the first command (an arbitrary, realistic epoch-milliseconds value).
pub const START_MS: u64 = 1_700_000_000_000;

pub const NO_FLAGS: AccountFlags =
    AccountFlags { debits_must_not_exceed_credits: false, credits_must_not_exceed_debits: false };
/// A customer deposit account: may not be debited past its credits (plus overdraft).
pub const DEBITS_LIMITED: AccountFlags =
    AccountFlags { debits_must_not_exceed_credits: true, credits_must_not_exceed_debits: false };
/// A loan-like account: may not be credited past its debits.
pub const CREDITS_LIMITED: AccountFlags =
    AccountFlags { debits_must_not_exceed_credits: false, credits_must_not_exceed_debits: true };

/// A bootstrapped ledger in memory, applying one command at a time at a controllable time.
pub struct Ledger {
    pub mem: MemStore,
    /// The time the next command is stamped with (the leader's clock).
    pub now_ms: u64,
    /// Raft index of the last command handed to `apply`.
    pub raft_index: u64,
    pub caller: String,
    /// A transcript written by [`Ledger::step`] and [`Ledger::note_balances`], for `expect!`.
    pub log: String,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    /// A ledger whose site `primary` is bootstrapped as active at epoch 1 (journal seq 1).
    pub fn new() -> Ledger {
        let mut ledger = Ledger::uninitialized();
        let outcome = ledger.apply(bootstrap("primary", SiteRole::Active));
        assert!(matches!(outcome, Outcome::Site(_)), "bootstrap failed: {outcome:?}");
        assert_eq!(ledger.mem.journal.len(), 1);
        ledger
    }

    /// A ledger whose site was never bootstrapped: it refuses every ledger write.
    pub fn uninitialized() -> Ledger {
        Ledger { mem: MemStore::new(), now_ms: START_MS, raft_index: 0, caller: "test".into(), log: String::new() }
    }

    /// Moves the leader's clock forward.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// The ledger clock: the time of the last journaled command.
    pub fn ledger_time_ms(&self) -> u64 {
        self.mem.meta.journal.ledger_time_ms
    }

    /// Applies `command` stamped with the current time.
    pub fn apply(&mut self, command: Command) -> Outcome {
        self.apply_stamped(command, self.now_ms)
    }

    /// Applies `command` as the leader stamped it, which may be behind the ledger clock.
    pub fn apply_stamped(&mut self, command: Command, proposed_time_ms: u64) -> Outcome {
        let envelope = Envelope { caller: self.caller.clone(), command };
        self.apply_envelope(&envelope, proposed_time_ms)
    }

    /// Applies one envelope, commits its changes, and checks the command's postconditions and
    /// every invariant.
    pub fn apply_envelope(&mut self, envelope: &Envelope, proposed_time_ms: u64) -> Outcome {
        self.raft_index += 1;
        let head_before = self.mem.meta.journal;
        let journal_len_before = self.mem.journal.len();
        let mut overlay = Overlay::new(&self.mem);
        let outcome = ledger::apply(&mut overlay, envelope, proposed_time_ms, self.raft_index);
        let changes = overlay.into_changes();
        if outcome.is_refused() {
            assert!(changes.is_empty(), "a refused command wrote {changes:?}");
        }
        self.mem.commit(changes);

        if let Outcome::Items(items) = &outcome {
            assert_eq!(items.len(), envelope.command.item_count(), "one result per item");
        }
        if outcome.is_refused() || self.mem.meta.site.role != SiteRole::Active {
            assert_eq!(self.mem.journal.len(), journal_len_before, "only an active site journals");
            assert_eq!(self.mem.meta.journal, head_before);
        } else {
            assert_eq!(self.mem.journal.len(), journal_len_before + 1, "one record per applied command");
            let record = self.mem.journal.last().expect("just appended");
            assert_eq!(record.seq, head_before.seq + 1);
            assert_eq!(record.prev_hash, head_before.hash);
            assert_eq!(record.caller, envelope.caller);
            assert_eq!(record.command, envelope.command);
            assert_eq!(record.outcome, outcome);
            assert_eq!(record.ledger_time_ms, head_before.ledger_time_ms.max(proposed_time_ms));
            assert_eq!(record.origin.raft_index, self.raft_index);
            assert_eq!(self.mem.meta.journal, record.head());
        }
        self.check_invariants();
        outcome
    }

    /// Every invariant the ledger promises, over the whole store.
    pub fn check_invariants(&self) {
        check_store(&self.mem);
    }

    // --- Shorthands -------------------------------------------------------------------------

    /// Creates an account, asserting it is new and accepted.
    pub fn must_create_account(&mut self, id: &str, currency: &str, flags: AccountFlags) {
        self.must_create(NewAccount { flags, ..new_account(id, currency) });
    }

    /// Creates an account from a full request, asserting it is new and accepted.
    pub fn must_create(&mut self, new: NewAccount) {
        let outcome = self.apply(Command::CreateAccounts(vec![new.clone()]));
        assert_eq!(show(&outcome), "ok", "creating account {}", new.id);
        assert!(self.account(new.id.as_str()).matches(&new));
    }

    /// Applies one transfer alone, asserting it is newly accepted.
    pub fn must_transfer(&mut self, transfer: NewTransfer) {
        let id = transfer.id.clone();
        let outcome = self.apply(transfers(vec![transfer]));
        assert_eq!(show(&outcome), "ok", "transfer {id}");
    }

    /// Applies one transfer alone and returns its result as `show` prints it.
    pub fn try_transfer(&mut self, transfer: NewTransfer) -> String {
        show(&self.apply(transfers(vec![transfer])))
    }

    pub fn account(&self, id: &str) -> Account {
        self.mem.accounts.get(&AccountId::new(id)).unwrap_or_else(|| panic!("no account {id}")).clone()
    }

    pub fn transfer(&self, id: &str) -> Transfer {
        self.mem.transfers.get(&TransferId::new(id)).unwrap_or_else(|| panic!("no transfer {id}")).clone()
    }

    pub fn has_transfer(&self, id: &str) -> bool {
        self.mem.transfers.contains_key(&TransferId::new(id))
    }

    /// `(debits_posted, debits_pending, credits_posted, credits_pending)` as strings.
    pub fn balances(&self, id: &str) -> (String, String, String, String) {
        let b = self.account(id).balance;
        (
            b.debits_posted.to_string(),
            b.debits_pending.to_string(),
            b.credits_posted.to_string(),
            b.credits_pending.to_string(),
        )
    }

    pub fn history(&self, id: &str) -> Vec<HistoryEntry> {
        self.mem.history_of(&AccountId::new(id), 1, usize::MAX)
    }

    /// Everything but the journal (and the journal head in the meta): what a replay must not
    /// change.
    pub fn book(&self) -> Book {
        Book {
            accounts: self.mem.accounts.clone(),
            transfers: self.mem.transfers.clone(),
            expiries: self.mem.expiries.clone(),
            history: self.mem.history.clone(),
            totals: self.mem.totals.clone(),
            site: self.mem.meta.site.clone(),
        }
    }

    // --- Transcripts ------------------------------------------------------------------------

    /// Applies `command` and writes `label => outcome` to the transcript.
    pub fn step(&mut self, label: &str, command: Command) -> Outcome {
        let outcome = self.apply(command);
        writeln!(self.log, "{label:<44} => {}", show(&outcome)).unwrap();
        outcome
    }

    /// Writes a free line to the transcript.
    pub fn note(&mut self, line: &str) {
        writeln!(self.log, "{line}").unwrap();
    }

    /// Writes the balance columns of `ids` to the transcript.
    pub fn note_balances(&mut self, ids: &[&str]) {
        for id in ids {
            let line = format!("    {}", show_balance(id, &self.account(id).balance));
            self.note(&line);
        }
    }

    pub fn take_log(&mut self) -> String {
        std::mem::take(&mut self.log)
    }
}

/// The state a replay must leave untouched.
#[derive(Clone, Debug, PartialEq)]
pub struct Book {
    pub accounts: BTreeMap<AccountId, Account>,
    pub transfers: BTreeMap<TransferId, Transfer>,
    pub expiries: BTreeSet<Expiry>,
    pub history: BTreeMap<(AccountId, u64), HistoryEntry>,
    pub totals: BTreeMap<Currency, CurrencyTotals>,
    pub site: SiteState,
}

/// Checks every invariant of a store; panics with the first violation.
pub fn check_store(mem: &MemStore) {
    let accounts = || mem.accounts.values();
    if let Err(v) = invariant::check_conservation(accounts()) {
        panic!("conservation: {v}");
    }
    if let Err(v) = invariant::check_constraints(accounts()) {
        panic!("constraints: {v}");
    }
    if let Err(v) = invariant::check_totals(accounts(), &mem.totals) {
        panic!("totals: {v}");
    }
    // The kept totals balance on their own, and name no currency without accounts.
    let sums = invariant::sum_by_currency(accounts());
    for (currency, totals) in &mem.totals {
        assert_eq!(totals.debits_posted, totals.credits_posted, "{currency} posted totals");
        assert_eq!(totals.debits_pending, totals.credits_pending, "{currency} pending totals");
        assert!(sums.contains_key(currency), "{currency} has totals but no account");
    }
    match journal::verify_chain(JournalHead::default(), &mem.journal) {
        Ok(head) => assert_eq!(head, mem.meta.journal, "the journal head in meta is the chain's last record"),
        Err(e) => panic!("journal chain: {e}"),
    }

    // History: rows 1..=history_len per account, the last one showing the current balance.
    for account in accounts() {
        let rows = mem.history_of(&account.id, 0, usize::MAX);
        assert_eq!(rows.len() as u64, account.history_len, "history length of {}", account.id);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.index, i as u64 + 1, "history of {} is contiguous from 1", account.id);
            assert!(row.journal_seq >= account.created_seq && row.journal_seq <= mem.meta.journal.seq);
        }
        if let Some(last) = rows.last() {
            assert_eq!(last.balance, account.balance, "last history row of {} shows its balance", account.id);
        }
    }
    assert!(mem.history.keys().all(|(id, _)| mem.accounts.contains_key(id)), "history of an unknown account");

    // Transfers: the stored shape matches the result, and the book rebuilds from them.
    let mut rebuilt: BTreeMap<AccountId, Balance> = BTreeMap::new();
    let mut indexed = BTreeSet::new();
    for (id, t) in &mem.transfers {
        assert_eq!(*id, t.request.id);
        assert!(t.journal_seq >= 1 && t.journal_seq <= mem.meta.journal.seq);
        if t.result != ResultCode::Ok {
            assert_eq!(t.state, TransferState::Rejected, "{id}");
            assert!(t.amount.is_zero() && t.currency.is_none() && t.expires_at_ms.is_none(), "{id}");
            continue;
        }
        assert_ne!(t.state, TransferState::Rejected, "{id}");
        let currency = t.currency.expect("an accepted transfer has a currency");
        assert_eq!(t.amount.scale(), currency.scale(), "{id}: amounts are stored at the currency's scale");
        assert_eq!(mem.accounts[&t.debit_account_id].currency, currency);
        assert_eq!(mem.accounts[&t.credit_account_id].currency, currency);
        let (debit_delta, credit_delta) = match &t.state {
            TransferState::Posted => {
                let posted = Balance { debits_posted: t.amount, ..Balance::default() };
                (posted, Balance { credits_posted: t.amount, ..Balance::default() })
            }
            TransferState::Pending => {
                assert!(matches!(t.request.kind, TransferKind::Pending { .. }));
                if let Some(expires_at_ms) = t.expires_at_ms {
                    indexed.insert(Expiry { expires_at_ms, transfer_id: id.clone() });
                }
                let reserved = Balance { debits_pending: t.amount, ..Balance::default() };
                (reserved, Balance { credits_pending: t.amount, ..Balance::default() })
            }
            TransferState::PendingPosted { posted_amount, by } => {
                assert!(*posted_amount <= t.amount && mem.transfers[by].amount == *posted_amount);
                (Balance::default(), Balance::default())
            }
            TransferState::PendingVoided { by } => {
                assert!(mem.transfers[by].amount.is_zero());
                (Balance::default(), Balance::default())
            }
            TransferState::PendingExpired => {
                assert!(t.expires_at_ms.is_some_and(|at| at <= mem.meta.journal.ledger_time_ms));
                (Balance::default(), Balance::default())
            }
            TransferState::Rejected => unreachable!(),
        };
        add_balance(rebuilt.entry(t.debit_account_id.clone()).or_default(), &debit_delta);
        add_balance(rebuilt.entry(t.credit_account_id.clone()).or_default(), &credit_delta);
    }
    assert_eq!(indexed, mem.expiries, "the expiry index holds exactly the pending transfers with a timeout");
    for account in accounts() {
        let expected = rebuilt.get(&account.id).copied().unwrap_or_default();
        let b = &account.balance;
        let same = b.debits_posted == expected.debits_posted
            && b.debits_pending == expected.debits_pending
            && b.credits_posted == expected.credits_posted
            && b.credits_pending == expected.credits_pending;
        assert!(same, "{}: balance {b:?} but its transfers add up to {expected:?}", account.id);
        let scale = account.currency.scale();
        let scales = [b.debits_posted, b.debits_pending, b.credits_posted, b.credits_pending].map(|d| d.scale());
        assert!(scales.iter().all(|s| *s == scale), "{}: columns at scale {scales:?}", account.id);
    }
}

fn add_balance(sum: &mut Balance, delta: &Balance) {
    sum.debits_posted += delta.debits_posted;
    sum.debits_pending += delta.debits_pending;
    sum.credits_posted += delta.credits_posted;
    sum.credits_pending += delta.credits_pending;
}

// --- Printing --------------------------------------------------------------------------------

/// An outcome as one line: item codes (with `(replayed)`), expired ids, or the refusal.
pub fn show(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Items(items) => {
            items
                .iter()
                .map(|item| {
                    if item.replayed {
                        format!("{} (replayed)", item.code.name())
                    } else {
                        item.code.name().to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        Outcome::Expired(ids) => {
            format!("expired [{}]", ids.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(", "))
        }
        Outcome::Site(site) => format!("site {} {} epoch {}", site.name, site.role.name(), site.epoch),
        Outcome::Recorded => "recorded".to_string(),
        Outcome::Refused(refusal) => format!("refused: {refusal}"),
    }
}

pub fn show_balance(id: &str, b: &Balance) -> String {
    format!(
        "{id:<8} debits {} (pending {})  credits {} (pending {})",
        b.debits_posted, b.debits_pending, b.credits_posted, b.credits_pending
    )
}

// --- Builders --------------------------------------------------------------------------------

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("bad decimal {s:?}: {e}"))
}

pub fn bootstrap(name: &str, role: SiteRole) -> Command {
    Command::Site(SiteCommand::Bootstrap {
        name: name.into(),
        role,
        epoch: 1,
        upstream: vec!["upstream:1".into()],
        dual_control: false,
    })
}

/// A plain account (no flags, no overdraft, no personal data, code 100).
pub fn new_account(id: &str, currency: &str) -> NewAccount {
    NewAccount {
        id: AccountId::new(id),
        currency: currency.into(),
        flags: NO_FLAGS,
        overdraft_limit: None,
        code: 100,
        pii: AccountPii::default(),
    }
}

/// A deposit account with an overdraft limit.
pub fn overdraft_account(id: &str, currency: &str, limit: &str) -> NewAccount {
    NewAccount { flags: DEBITS_LIMITED, overdraft_limit: Some(dec(limit)), ..new_account(id, currency) }
}

/// A single-phase transfer.
pub fn posted(id: &str, debit: &str, credit: &str, amount: &str) -> NewTransfer {
    NewTransfer { code: 1, ..NewTransfer::posted(id, debit, credit, dec(amount)) }
}

/// A pending transfer, expiring `timeout_ms` after it is applied (never for `None`).
pub fn pending(id: &str, debit: &str, credit: &str, amount: &str, timeout_ms: Option<u64>) -> NewTransfer {
    NewTransfer { kind: TransferKind::Pending { timeout_ms }, ..posted(id, debit, credit, amount) }
}

/// Posts `pending_id`: `amount` "0" for the full amount. Accounts left empty.
pub fn post(id: &str, pending_id: &str, amount: &str) -> NewTransfer {
    NewTransfer {
        kind: TransferKind::PostPending { pending_id: TransferId::new(pending_id) },
        ..posted(id, "", "", amount)
    }
}

/// Voids `pending_id`. Accounts left empty, amount zero.
pub fn void(id: &str, pending_id: &str) -> NewTransfer {
    NewTransfer {
        kind: TransferKind::VoidPending { pending_id: TransferId::new(pending_id) },
        ..posted(id, "", "", "0")
    }
}

/// A non-atomic batch of transfers.
pub fn transfers(items: Vec<NewTransfer>) -> Command {
    Command::CreateTransfers { transfers: items, atomic: false }
}

/// An atomic batch of transfers.
pub fn atomic(items: Vec<NewTransfer>) -> Command {
    Command::CreateTransfers { transfers: items, atomic: true }
}

pub fn accounts(items: Vec<NewAccount>) -> Command {
    Command::CreateAccounts(items)
}

pub fn update(id: &str, action: AccountAction) -> Command {
    Command::UpdateAccounts(vec![AccountUpdate { id: AccountId::new(id), action }])
}
