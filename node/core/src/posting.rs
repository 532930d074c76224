//! The posting rules: what each ledger command does to accounts, transfers, history and
//! expiries (`execute`), and the checks that need no state (`check_envelope`,
//! `validate_transfer`, `validate_new_account`, `write_refusal`).
//!
//! Deterministic and IO-free: the same commands at the same ledger times give the same bytes
//! on every replica of both sites. Business rejections are [`ResultCode`] values; a broken
//! invariant panics, because a crashed replica is better than a diverged one. The dispatcher
//! over posting rules and site operations is `ledger::apply`.

use std::collections::HashSet;

use rust_decimal::Decimal;

use crate::account::Account;
use crate::account::AccountAction;
use crate::account::AccountStatus;
use crate::account::AccountUpdate;
use crate::account::Balance;
use crate::account::NewAccount;
use crate::codec;
use crate::command::Command;
use crate::command::Envelope;
use crate::command::ItemResult;
use crate::command::Outcome;
use crate::command::Refusal;
use crate::id::AccountId;
use crate::id::TransferId;
use crate::limits;
use crate::money;
use crate::money::AmountError;
use crate::money::Currency;
use crate::pii::Sealed;
use crate::reject::ResultCode;
use crate::site::SiteRole;
use crate::site::SiteState;
use crate::store::Expiry;
use crate::store::LedgerRead;
use crate::store::Overlay;
use crate::transfer::HistoryEffect;
use crate::transfer::HistoryEntry;
use crate::transfer::NewTransfer;
use crate::transfer::Side;
use crate::transfer::Transfer;
use crate::transfer::TransferKind;
use crate::transfer::TransferState;

/// Whole-command checks that need no state: caller, batch size, encoded size.
pub fn check_envelope(envelope: &Envelope) -> Option<Refusal> {
    if envelope.caller.is_empty() || envelope.caller.len() > limits::CALLER_BYTES_MAX {
        return Some(Refusal::CallerInvalid);
    }
    let items = envelope.command.item_count();
    let batched = matches!(
        envelope.command,
        Command::CreateAccounts(_) | Command::UpdateAccounts(_) | Command::CreateTransfers { .. }
    );
    if batched && (items == 0 || items > limits::BATCH_ITEMS_MAX) {
        return Some(Refusal::BatchSize { items, max: limits::BATCH_ITEMS_MAX });
    }
    let bytes = codec::encoded_len(&envelope.command);
    if bytes > limits::COMMAND_BYTES_MAX {
        return Some(Refusal::CommandTooLarge { bytes, max: limits::COMMAND_BYTES_MAX });
    }
    None
}

/// Why `site` refuses ledger writes now, if it does.
pub fn write_refusal(site: &SiteState) -> Option<Refusal> {
    if site.writable() {
        return None;
    }
    if site.role == SiteRole::Uninitialized {
        return Some(Refusal::SiteNotWritable {
            site: "(not bootstrapped)".into(),
            role: site.role.name().into(),
            active_site: "(unknown)".into(),
            epoch: 0,
        });
    }
    let role = if site.role == SiteRole::Active && site.active_epoch > site.epoch {
        "superseded (another site is active at a higher epoch)".to_string()
    } else if site.fenced {
        "fenced".to_string()
    } else {
        site.role.name().to_string()
    };
    let active_site =
        if site.active_site.is_empty() { "(not known yet)".to_string() } else { site.active_site.clone() };
    Some(Refusal::SiteNotWritable {
        site: site.name.clone(),
        role,
        active_site,
        epoch: site.active_epoch.max(site.epoch),
    })
}

pub(crate) fn execute(store: &mut Overlay<'_>, command: &Command, time: u64, seq: u64) -> Outcome {
    let outcome = match command {
        Command::CreateAccounts(accounts) => Outcome::Items(create_accounts(store, accounts, time, seq)),
        Command::UpdateAccounts(updates) => Outcome::Items(update_accounts(store, updates)),
        Command::CreateTransfers { transfers, atomic } => {
            Outcome::Items(create_transfers(store, transfers, *atomic, time, seq))
        }
        Command::ExpirePending => Outcome::Expired(expire_pending(store, time, seq)),
        Command::Admin(_) | Command::Site(_) => unreachable!("site and admin commands are applied by site_ops"),
    };
    if let Outcome::Items(items) = &outcome {
        assert_eq!(items.len(), command.item_count(), "one result per item");
    }
    outcome
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// Stateless checks of a new account, in precedence order.
pub fn validate_new_account(new: &NewAccount) -> Result<Currency, ResultCode> {
    if new.id.check().is_err() {
        return Err(ResultCode::IdInvalid);
    }
    let currency = Currency::parse(&new.currency).ok_or(ResultCode::CurrencyUnknown)?;
    if new.flags.debits_must_not_exceed_credits && new.flags.credits_must_not_exceed_debits {
        return Err(ResultCode::FlagsMutuallyExclusive);
    }
    if let Some(limit) = new.overdraft_limit {
        let valid = new.flags.debits_must_not_exceed_credits
            && !limit.is_sign_negative()
            && limit.normalize().scale() <= currency.scale()
            && limit <= money::amount_max();
        if !valid {
            return Err(ResultCode::OverdraftLimitInvalid);
        }
    }
    let pii_len_ok = |field: &Option<Box<Sealed>>| {
        // GCM adds a 16-byte tag to the plaintext.
        field.as_ref().is_none_or(|s| s.ciphertext.len() <= limits::PII_BYTES_MAX + 16)
    };
    if !(pii_len_ok(&new.pii.holder_name) && pii_len_ok(&new.pii.national_id) && pii_len_ok(&new.pii.card_number)) {
        return Err(ResultCode::PersonalDataTooLong);
    }
    Ok(currency)
}

/// Ids already seen in a batch (membership only: its order is never observed).
type SeenIds<'b, T> = HashSet<&'b T, foldhash::fast::RandomState>;

fn create_accounts(store: &mut Overlay<'_>, accounts: &[NewAccount], time: u64, seq: u64) -> Vec<ItemResult> {
    let mut seen = SeenIds::default();
    let mut results = Vec::with_capacity(accounts.len());
    for new in accounts {
        let result = create_account(store, new, &mut seen, time, seq);
        results.push(result);
    }
    results
}

fn create_account<'b>(
    store: &mut Overlay<'_>,
    new: &'b NewAccount,
    seen: &mut SeenIds<'b, AccountId>,
    time: u64,
    seq: u64,
) -> ItemResult {
    let currency = match validate_new_account(new) {
        Ok(currency) => currency,
        Err(code) => return ItemResult::new(code),
    };
    if !seen.insert(&new.id) {
        return ItemResult::new(ResultCode::IdDuplicateInBatch);
    }
    if let Some(existing) = store.account(&new.id) {
        if existing.matches(new) {
            return ItemResult::replay(ResultCode::Ok);
        }
        return ItemResult::new(ResultCode::IdConflict);
    }
    let zero = money::zero(currency);
    let account = Account {
        id: new.id.clone(),
        currency,
        flags: new.flags,
        overdraft_limit: new.overdraft_limit.map(|limit| money::canonical(limit, currency)),
        code: new.code,
        pii: new.pii.clone(),
        status: AccountStatus::Open,
        balance: Balance { debits_posted: zero, debits_pending: zero, credits_posted: zero, credits_pending: zero },
        created_at_ms: time,
        created_seq: seq,
        history_len: 0,
    };
    assert!(account.matches(new));
    assert!(account.constraints_hold());
    store.put_account(account);
    ItemResult::new(ResultCode::Ok)
}

fn update_accounts(store: &mut Overlay<'_>, updates: &[AccountUpdate]) -> Vec<ItemResult> {
    let mut seen = SeenIds::default();
    updates
        .iter()
        .map(|update| {
            if update.id.check().is_err() {
                return ItemResult::new(ResultCode::IdInvalid);
            }
            if !seen.insert(&update.id) {
                return ItemResult::new(ResultCode::IdDuplicateInBatch);
            }
            let Some(mut account) = store.account(&update.id) else {
                return ItemResult::new(ResultCode::AccountNotFound);
            };
            let target = match (update.action, account.status) {
                (AccountAction::Close, AccountStatus::Closed) => return ItemResult::replay(ResultCode::Ok),
                (_, AccountStatus::Closed) => return ItemResult::new(ResultCode::AccountClosed),
                (AccountAction::Freeze, AccountStatus::Frozen) => return ItemResult::replay(ResultCode::Ok),
                (AccountAction::Unfreeze, AccountStatus::Open) => return ItemResult::replay(ResultCode::Ok),
                (AccountAction::Freeze, _) => AccountStatus::Frozen,
                (AccountAction::Unfreeze, _) => AccountStatus::Open,
                (AccountAction::Close, _) => {
                    let b = &account.balance;
                    if !b.debits_pending.is_zero() || !b.credits_pending.is_zero() {
                        return ItemResult::new(ResultCode::AccountHasPending);
                    }
                    if b.debits_posted != b.credits_posted {
                        return ItemResult::new(ResultCode::AccountBalanceNotZero);
                    }
                    AccountStatus::Closed
                }
            };
            account.status = target;
            store.put_account(account);
            ItemResult::new(ResultCode::Ok)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Transfers

fn amount_code(error: AmountError) -> ResultCode {
    match error {
        AmountError::NotPositive => ResultCode::AmountNotPositive,
        AmountError::TooPrecise => ResultCode::AmountTooPrecise,
        AmountError::TooLarge => ResultCode::AmountTooLarge,
    }
}

/// Stateless checks of a transfer, in precedence order.
pub fn validate_transfer(t: &NewTransfer) -> Result<(), ResultCode> {
    if t.id.check().is_err() {
        return Err(ResultCode::IdInvalid);
    }
    let currency = match &t.currency {
        Some(code) => Some(Currency::parse(code).ok_or(ResultCode::CurrencyUnknown)?),
        None => None,
    };
    let pending_id = t.kind.pending_id();
    match pending_id {
        None => {
            if t.debit_account_id.check().is_err() {
                return Err(ResultCode::DebitAccountIdInvalid);
            }
            if t.credit_account_id.check().is_err() {
                return Err(ResultCode::CreditAccountIdInvalid);
            }
            if t.debit_account_id == t.credit_account_id {
                return Err(ResultCode::AccountsMustBeDifferent);
            }
        }
        Some(pending_id) => {
            // Accounts are optional for post/void; when given they must be well formed.
            if !t.debit_account_id.is_empty() && t.debit_account_id.check().is_err() {
                return Err(ResultCode::DebitAccountIdInvalid);
            }
            if !t.credit_account_id.is_empty() && t.credit_account_id.check().is_err() {
                return Err(ResultCode::CreditAccountIdInvalid);
            }
            if !t.debit_account_id.is_empty() && t.debit_account_id == t.credit_account_id {
                return Err(ResultCode::AccountsMustBeDifferent);
            }
            if pending_id.check().is_err() {
                return Err(ResultCode::PendingIdInvalid);
            }
            if *pending_id == t.id {
                return Err(ResultCode::PendingIdMustBeDifferent);
            }
        }
    }
    // Precision depends on the currency: checked here only when the transfer names it, and
    // against the accounts' currency when applied (a state-dependent, stored rejection).
    let zero_allowed = pending_id.is_some();
    if !(zero_allowed && t.amount.is_zero()) {
        let scale = currency.map_or(u32::MAX, |c| c.scale());
        money::check_amount(t.amount, scale).map_err(amount_code)?;
    }
    if t.reference.len() > limits::REFERENCE_BYTES_MAX {
        return Err(ResultCode::ReferenceTooLong);
    }
    if let TransferKind::Pending { timeout_ms: Some(timeout) } = t.kind
        && (timeout == 0 || timeout > limits::PENDING_TIMEOUT_MS_MAX)
    {
        return Err(ResultCode::TimeoutInvalid);
    }
    Ok(())
}

fn create_transfers(
    store: &mut Overlay<'_>,
    transfers: &[NewTransfer],
    atomic: bool,
    time: u64,
    seq: u64,
) -> Vec<ItemResult> {
    // Items that may be stored with their result: well formed, first of their id in the batch.
    let mut seen = SeenIds::with_capacity_and_hasher(transfers.len(), Default::default());
    let mut stateless: Vec<Result<(), ResultCode>> = Vec::with_capacity(transfers.len());
    for t in transfers {
        let check = validate_transfer(t)
            .and_then(|()| if seen.insert(&t.id) { Ok(()) } else { Err(ResultCode::IdDuplicateInBatch) });
        stateless.push(check);
    }
    store.reserve_transfers(transfers.len());
    if !atomic {
        return transfers
            .iter()
            .zip(stateless)
            .map(|(t, check)| match check {
                Err(code) => ItemResult::new(code),
                Ok(()) => transfer_or_record_rejection(store, t, time, seq),
            })
            .collect();
    }
    create_transfers_atomic(store, transfers, stateless, time, seq)
}

/// Runs one transfer; a state-dependent rejection is stored so that a replay of the same id
/// returns it.
fn transfer_or_record_rejection(store: &mut Overlay<'_>, t: &NewTransfer, time: u64, seq: u64) -> ItemResult {
    match try_transfer(store, t, time, seq) {
        TransferAttempt::Replayed(result) => result,
        TransferAttempt::Conflict => ItemResult::new(ResultCode::IdConflict),
        TransferAttempt::Applied => ItemResult::new(ResultCode::Ok),
        TransferAttempt::Rejected(code) => {
            store.put_transfer(rejected(t, code, time, seq));
            ItemResult::new(code)
        }
    }
}

fn create_transfers_atomic(
    store: &mut Overlay<'_>,
    transfers: &[NewTransfer],
    stateless: Vec<Result<(), ResultCode>>,
    time: u64,
    seq: u64,
) -> Vec<ItemResult> {
    // A stateless failure fails the chain before any state is read; nothing is stored, as the
    // API would have refused the batch before proposing it (the same rule answers both).
    if let Some(first_bad) = stateless.iter().position(|c| c.is_err()) {
        let code = stateless[first_bad].unwrap_err();
        return atomic_refused_up_front(transfers.len(), first_bad, code);
    }
    let mut failed: Option<(usize, ResultCode)> = None;
    let mut results = Vec::with_capacity(transfers.len());
    let child_changes = {
        let mut child = Overlay::new(store);
        for (i, t) in transfers.iter().enumerate() {
            match try_transfer(&mut child, t, time, seq) {
                TransferAttempt::Applied => results.push(ItemResult::new(ResultCode::Ok)),
                // A replayed success keeps the chain going; a replayed rejection fails it.
                TransferAttempt::Replayed(result) if result.code.is_ok() => results.push(result),
                TransferAttempt::Replayed(result) => {
                    failed = Some((i, result.code));
                    break;
                }
                TransferAttempt::Conflict => {
                    failed = Some((i, ResultCode::IdConflict));
                    break;
                }
                TransferAttempt::Rejected(code) => {
                    failed = Some((i, code));
                    break;
                }
            }
        }
        child.into_changes()
    };
    let Some((failed_index, failed_code)) = failed else {
        store.merge(child_changes);
        return results;
    };
    // Roll back: the child's writes are dropped.
    drop(child_changes);
    rolled_back(store, transfers, failed_index, failed_code, time, seq)
}

/// The results of an atomic batch refused before any state is read, because item `first_bad`
/// fails the stateless checks ([`validate_transfer`], or an id repeated in the batch) with
/// `code`: that item carries its code, every other item `LinkedEventFailed`, and nothing is
/// looked up or stored. Stateless checks come before idempotency, as in TigerBeetle: a batch
/// with a malformed item never reaches the ledger's state. The API answers exactly this
/// without proposing the batch; the ledger answers it for such a batch that reaches it anyway.
pub fn atomic_refused_up_front(n_items: usize, first_bad: usize, code: ResultCode) -> Vec<ItemResult> {
    assert!(first_bad < n_items);
    assert!(!code.is_ok());
    (0..n_items).map(|i| ItemResult::new(if i == first_bad { code } else { ResultCode::LinkedEventFailed })).collect()
}

/// Results of an atomic chain that failed on state, the same on every replay: an id that
/// existed before the batch keeps its original result (identical body) or is `IdConflict`
/// (different body); every other item gets `failed_code` (the failing one) or
/// `LinkedEventFailed`, and is stored with it so that a replay of the batch returns it.
fn rolled_back(
    store: &mut Overlay<'_>,
    transfers: &[NewTransfer],
    failed_index: usize,
    failed_code: ResultCode,
    time: u64,
    seq: u64,
) -> Vec<ItemResult> {
    assert!(failed_index < transfers.len());
    let mut seen = SeenIds::default();
    let mut results = Vec::with_capacity(transfers.len());
    for (i, t) in transfers.iter().enumerate() {
        let code = if i == failed_index { failed_code } else { ResultCode::LinkedEventFailed };
        // Every item passed the stateless checks (ids valid, none repeated).
        assert!(seen.insert(&t.id), "ids are unique in a chain that reached the state");
        if let Some(existing) = store.transfer(&t.id) {
            let result = if existing.request == *t {
                ItemResult::replay(existing.result)
            } else {
                ItemResult::new(ResultCode::IdConflict)
            };
            results.push(result);
            continue;
        }
        store.put_transfer(rejected(t, code, time, seq));
        results.push(ItemResult::new(code));
    }
    assert!(results.iter().any(|r| !r.code.is_ok()), "a failed chain has a failed item");
    results
}

enum TransferAttempt {
    Applied,
    Replayed(ItemResult),
    Conflict,
    Rejected(ResultCode),
}

fn rejected(t: &NewTransfer, code: ResultCode, time: u64, seq: u64) -> Transfer {
    assert!(!code.is_ok());
    Transfer {
        request: t.clone(),
        result: code,
        state: TransferState::Rejected,
        debit_account_id: AccountId::default(),
        credit_account_id: AccountId::default(),
        currency: None,
        amount: Decimal::ZERO,
        ledger_time_ms: time,
        journal_seq: seq,
        expires_at_ms: None,
    }
}

/// Tries one stateless-valid transfer against the state.
fn try_transfer(store: &mut Overlay<'_>, t: &NewTransfer, time: u64, seq: u64) -> TransferAttempt {
    if let Some(existing) = store.transfer(&t.id) {
        if existing.request == *t {
            return TransferAttempt::Replayed(ItemResult::replay(existing.result));
        }
        return TransferAttempt::Conflict;
    }
    let result = match &t.kind {
        TransferKind::Posted | TransferKind::Pending { .. } => post_new(store, t, time, seq),
        TransferKind::PostPending { pending_id } => resolve_pending(store, t, pending_id, true, time, seq),
        TransferKind::VoidPending { pending_id } => resolve_pending(store, t, pending_id, false, time, seq),
    };
    match result {
        Ok(()) => TransferAttempt::Applied,
        Err(code) => TransferAttempt::Rejected(code),
    }
}

/// A single-phase or pending transfer.
fn post_new(store: &mut Overlay<'_>, t: &NewTransfer, time: u64, seq: u64) -> Result<(), ResultCode> {
    let mut debit = store.account(&t.debit_account_id).ok_or(ResultCode::DebitAccountNotFound)?;
    let mut credit = store.account(&t.credit_account_id).ok_or(ResultCode::CreditAccountNotFound)?;
    let currency = debit.currency;
    if credit.currency != currency {
        return Err(ResultCode::CurrencyMismatch);
    }
    if t.currency.as_deref().is_some_and(|c| c != currency.code()) {
        return Err(ResultCode::CurrencyMismatch);
    }
    money::check_amount(t.amount, currency.scale()).map_err(amount_code)?;
    check_status_for_new(&debit, &credit)?;
    let amount = money::canonical(t.amount, currency);
    let pending = matches!(t.kind, TransferKind::Pending { .. });
    let mut totals = store.totals(currency);
    if pending {
        debit.balance.debits_pending = add(debit.balance.debits_pending, amount)?;
        credit.balance.credits_pending = add(credit.balance.credits_pending, amount)?;
        totals.debits_pending = add(totals.debits_pending, amount)?;
        totals.credits_pending = add(totals.credits_pending, amount)?;
    } else {
        debit.balance.debits_posted = add(debit.balance.debits_posted, amount)?;
        credit.balance.credits_posted = add(credit.balance.credits_posted, amount)?;
        totals.debits_posted = add(totals.debits_posted, amount)?;
        totals.credits_posted = add(totals.credits_posted, amount)?;
    }
    check_limits(&debit, &credit)?;
    let expires_at_ms = match t.kind {
        TransferKind::Pending { timeout_ms: Some(timeout) } => Some(time.saturating_add(timeout)),
        _ => None,
    };
    let effect = if pending { HistoryEffect::Reserved } else { HistoryEffect::Posted };
    write_history(store, &mut debit, Side::Debit, &t.id, effect, amount, time, seq);
    write_history(store, &mut credit, Side::Credit, &t.id, effect, amount, time, seq);
    if let Some(expires_at_ms) = expires_at_ms {
        store.add_expiry(Expiry { expires_at_ms, transfer_id: t.id.clone() });
    }
    store.put_transfer(Transfer {
        request: t.clone(),
        result: ResultCode::Ok,
        state: if pending { TransferState::Pending } else { TransferState::Posted },
        debit_account_id: debit.id.clone(),
        credit_account_id: credit.id.clone(),
        currency: Some(currency),
        amount,
        ledger_time_ms: time,
        journal_seq: seq,
        expires_at_ms,
    });
    commit_accounts(store, debit, credit, currency, totals);
    Ok(())
}

fn check_status_for_new(debit: &Account, credit: &Account) -> Result<(), ResultCode> {
    if debit.status == AccountStatus::Closed {
        return Err(ResultCode::DebitAccountClosed);
    }
    if credit.status == AccountStatus::Closed {
        return Err(ResultCode::CreditAccountClosed);
    }
    if debit.status == AccountStatus::Frozen {
        return Err(ResultCode::DebitAccountFrozen);
    }
    if credit.status == AccountStatus::Frozen {
        return Err(ResultCode::CreditAccountFrozen);
    }
    Ok(())
}

fn add(a: Decimal, b: Decimal) -> Result<Decimal, ResultCode> {
    a.checked_add(b).ok_or(ResultCode::BalanceOverflow)
}

fn sub(a: Decimal, b: Decimal) -> Decimal {
    let result = a - b;
    assert!(!result.is_sign_negative(), "a balance column went negative: {a} - {b}");
    result
}

/// The balance constraints of both accounts after a change.
fn check_limits(debit: &Account, credit: &Account) -> Result<(), ResultCode> {
    let d = &debit.balance;
    if debit.flags.debits_must_not_exceed_credits {
        let allowed = d.credits_posted + debit.overdraft_limit.unwrap_or_default();
        if d.debits_posted + d.debits_pending > allowed {
            return Err(ResultCode::ExceedsCredits);
        }
    }
    let c = &credit.balance;
    if credit.flags.credits_must_not_exceed_debits && c.credits_posted + c.credits_pending > c.debits_posted {
        return Err(ResultCode::ExceedsDebits);
    }
    Ok(())
}

/// Post (in full or part) or void a pending transfer.
fn resolve_pending(
    store: &mut Overlay<'_>,
    t: &NewTransfer,
    pending_id: &TransferId,
    post: bool,
    time: u64,
    seq: u64,
) -> Result<(), ResultCode> {
    let mut pending = store.transfer(pending_id).ok_or(ResultCode::PendingTransferNotFound)?;
    let is_pending_kind = matches!(pending.request.kind, TransferKind::Pending { .. });
    if !is_pending_kind || !pending.result.is_ok() {
        return Err(ResultCode::PendingTransferNotPending);
    }
    match pending.state {
        TransferState::Pending => {}
        TransferState::PendingPosted { .. } => return Err(ResultCode::PendingTransferAlreadyPosted),
        TransferState::PendingVoided { .. } => return Err(ResultCode::PendingTransferAlreadyVoided),
        TransferState::PendingExpired => return Err(ResultCode::PendingTransferExpired),
        TransferState::Posted | TransferState::Rejected => {
            unreachable!("an accepted pending transfer is never in state {:?}", pending.state)
        }
    }
    if pending.expires_at_ms.is_some_and(|at| at <= time) {
        return Err(ResultCode::PendingTransferExpired);
    }
    let currency = pending.currency.expect("an accepted transfer has a currency");
    let mut debit = store.account(&pending.debit_account_id).expect("pending transfer's debit account exists");
    let mut credit = store.account(&pending.credit_account_id).expect("pending transfer's credit account exists");
    if post {
        check_status_for_new(&debit, &credit)?;
    }
    let mismatch = (!t.debit_account_id.is_empty() && t.debit_account_id != pending.debit_account_id)
        || (!t.credit_account_id.is_empty() && t.credit_account_id != pending.credit_account_id)
        || t.currency.as_deref().is_some_and(|c| c != currency.code());
    if mismatch {
        return Err(ResultCode::PendingTransferMismatch);
    }
    let posted_amount = if post {
        if t.amount.is_zero() {
            pending.amount
        } else {
            money::check_amount(t.amount, currency.scale()).map_err(amount_code)?;
            if t.amount > pending.amount {
                return Err(ResultCode::PostAmountExceedsPending);
            }
            money::canonical(t.amount, currency)
        }
    } else {
        if !t.amount.is_zero() && t.amount != pending.amount {
            return Err(ResultCode::PendingTransferMismatch);
        }
        money::zero(currency)
    };
    let mut totals = store.totals(currency);
    release(&mut debit.balance, &mut credit.balance, &mut totals, pending.amount);
    debit.balance.debits_posted = add(debit.balance.debits_posted, posted_amount)?;
    credit.balance.credits_posted = add(credit.balance.credits_posted, posted_amount)?;
    totals.debits_posted = add(totals.debits_posted, posted_amount)?;
    totals.credits_posted = add(totals.credits_posted, posted_amount)?;
    check_limits(&debit, &credit)?;

    let effect = if post { HistoryEffect::PendingPosted } else { HistoryEffect::Voided };
    let history_amount = if post { posted_amount } else { pending.amount };
    write_history(store, &mut debit, Side::Debit, &t.id, effect, history_amount, time, seq);
    write_history(store, &mut credit, Side::Credit, &t.id, effect, history_amount, time, seq);
    if let Some(expires_at_ms) = pending.expires_at_ms {
        store.remove_expiry(Expiry { expires_at_ms, transfer_id: pending.request.id.clone() });
    }
    pending.state = if post {
        TransferState::PendingPosted { posted_amount, by: t.id.clone() }
    } else {
        TransferState::PendingVoided { by: t.id.clone() }
    };
    store.put_transfer(pending.clone());
    store.put_transfer(Transfer {
        request: t.clone(),
        result: ResultCode::Ok,
        state: TransferState::Posted,
        debit_account_id: pending.debit_account_id.clone(),
        credit_account_id: pending.credit_account_id.clone(),
        currency: Some(currency),
        amount: posted_amount,
        ledger_time_ms: time,
        journal_seq: seq,
        expires_at_ms: None,
    });
    commit_accounts(store, debit, credit, currency, totals);
    Ok(())
}

fn release(debit: &mut Balance, credit: &mut Balance, totals: &mut Balance, amount: Decimal) {
    debit.debits_pending = sub(debit.debits_pending, amount);
    credit.credits_pending = sub(credit.credits_pending, amount);
    totals.debits_pending = sub(totals.debits_pending, amount);
    totals.credits_pending = sub(totals.credits_pending, amount);
}

/// Releases pending transfers whose timeout has passed in ledger time.
fn expire_pending(store: &mut Overlay<'_>, time: u64, seq: u64) -> Vec<TransferId> {
    let due = store.due_expiries(time, limits::EXPIRIES_PER_COMMAND_MAX);
    let mut expired = Vec::with_capacity(due.len());
    for expiry in due {
        let mut pending = store.transfer(&expiry.transfer_id).expect("an indexed expiry has its transfer");
        assert_eq!(pending.state, TransferState::Pending, "only pending transfers are indexed");
        assert_eq!(pending.expires_at_ms, Some(expiry.expires_at_ms));
        let currency = pending.currency.expect("an accepted transfer has a currency");
        let mut debit = store.account(&pending.debit_account_id).expect("debit account exists");
        let mut credit = store.account(&pending.credit_account_id).expect("credit account exists");
        let mut totals = store.totals(currency);
        release(&mut debit.balance, &mut credit.balance, &mut totals, pending.amount);
        let id = pending.request.id.clone();
        write_history(store, &mut debit, Side::Debit, &id, HistoryEffect::Expired, pending.amount, time, seq);
        write_history(store, &mut credit, Side::Credit, &id, HistoryEffect::Expired, pending.amount, time, seq);
        store.remove_expiry(expiry);
        pending.state = TransferState::PendingExpired;
        store.put_transfer(pending);
        commit_accounts(store, debit, credit, currency, totals);
        expired.push(id);
    }
    expired
}

#[allow(clippy::too_many_arguments)]
fn write_history(
    store: &mut Overlay<'_>,
    account: &mut Account,
    side: Side,
    transfer_id: &TransferId,
    effect: HistoryEffect,
    amount: Decimal,
    time: u64,
    seq: u64,
) {
    account.history_len += 1;
    store.push_history(
        account.id.clone(),
        HistoryEntry {
            index: account.history_len,
            transfer_id: transfer_id.clone(),
            journal_seq: seq,
            ledger_time_ms: time,
            side,
            effect,
            amount,
            balance: account.balance,
        },
    );
}

/// Writes both accounts and the currency totals, asserting the invariants that must hold after
/// every change: balance constraints and debits == credits per currency.
fn commit_accounts(store: &mut Overlay<'_>, debit: Account, credit: Account, currency: Currency, totals: Balance) {
    assert!(debit.constraints_hold(), "debit account {} violates its constraints", debit.id);
    assert!(credit.constraints_hold(), "credit account {} violates its constraints", credit.id);
    assert_eq!(totals.debits_posted, totals.credits_posted, "posted debits != credits in {currency}");
    assert_eq!(totals.debits_pending, totals.credits_pending, "pending debits != credits in {currency}");
    store.put_account(debit);
    store.put_account(credit);
    store.put_totals(currency, totals);
}

/// The earliest pending expiry, for the leader's ledger timer.
pub fn next_expiry(store: &dyn LedgerRead) -> Option<u64> {
    store.due_expiries(u64::MAX, 1).first().map(|e| e.expires_at_ms)
}
