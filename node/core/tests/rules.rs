//! The posting rules as named scenarios: commands in, outcomes and balances out.
//!
//! Each test opens with its goal. Tables of outcomes and balances are `expect!` snapshots;
//! every snapshot was checked by hand against the rules (a snapshot must never record a bug).
//! The harness in `common` checks every invariant after every command, so each scenario is
//! also a conservation, constraints, totals, history and hash-chain check.

mod common;

use std::str::FromStr;

use common::*;
use expect_test::expect;
use ledger_core::Decimal;
use ledger_core::account::AccountAction;
use ledger_core::account::AccountFlags;
use ledger_core::account::AccountStatus;
use ledger_core::account::AccountUpdate;
use ledger_core::account::NewAccount;
use ledger_core::codec;
use ledger_core::command::AdminEvent;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::command::ItemResult;
use ledger_core::command::Outcome;
use ledger_core::command::Refusal;
use ledger_core::journal;
use ledger_core::journal::ChainError;
use ledger_core::journal::Hash;
use ledger_core::journal::JournalHead;
use ledger_core::journal::JournalRecord;
use ledger_core::ledger;
use ledger_core::limits;
use ledger_core::pii::AccountPii;
use ledger_core::pii::Sealed;
use ledger_core::reject::ResultCode;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_core::transfer::HistoryEffect;
use ledger_core::transfer::NewTransfer;
use ledger_core::transfer::Side;
use ledger_core::transfer::TransferState;

const BOTH_FLAGS: AccountFlags =
    AccountFlags { debits_must_not_exceed_credits: true, credits_must_not_exceed_debits: true };

fn sealed(len: usize) -> Sealed {
    Sealed { key_id: 1, nonce: [7; 12], ciphertext: vec![0xAB; len] }
}

fn with_currency(mut t: NewTransfer, currency: &str) -> NewTransfer {
    t.currency = Some(currency.into());
    t
}

fn with_reference(mut t: NewTransfer, len: usize) -> NewTransfer {
    t.reference = "r".repeat(len);
    t
}

fn with_accounts(mut t: NewTransfer, debit: &str, credit: &str) -> NewTransfer {
    t.debit_account_id = debit.into();
    t.credit_account_id = credit.into();
    t
}

fn with_amount(mut t: NewTransfer, amount: &str) -> NewTransfer {
    t.amount = dec(amount);
    t
}

/// Ids of stored transfers whose result is a rejection, with the code.
fn stored_rejections(l: &Ledger) -> String {
    l.mem
        .transfers
        .values()
        .filter(|t| !t.result.is_ok())
        .map(|t| format!("{}={}", t.request.id, t.result))
        .collect::<Vec<_>>()
        .join(" ")
}

// -------------------------------------------------------------------------------------------
// Accounts

// Goal: every account-creation rule, one request per command, as a table of request -> result.
#[test]
fn account_creation_rules() {
    let mut l = Ledger::new();
    let id_64 = "a".repeat(64);
    let id_65 = "a".repeat(65);
    let rows: Vec<(&str, NewAccount)> = vec![
        ("plain EUR account", new_account("alice", "EUR")),
        ("the same request again", new_account("alice", "EUR")),
        ("same id, other currency", new_account("alice", "USD")),
        ("same id, other code", NewAccount { code: 7, ..new_account("alice", "EUR") }),
        ("same id, a balance flag added", NewAccount { flags: DEBITS_LIMITED, ..new_account("alice", "EUR") }),
        ("unknown currency XXX", new_account("bob", "XXX")),
        ("lower-case currency eur", new_account("bob", "eur")),
        ("both balance flags", NewAccount { flags: BOTH_FLAGS, ..new_account("bob", "EUR") }),
        ("overdraft -1.00", overdraft_account("bob", "EUR", "-1.00")),
        ("overdraft 0.001 in EUR", overdraft_account("bob", "EUR", "0.001")),
        ("overdraft 0.5 in JPY", overdraft_account("bob", "JPY", "0.5")),
        ("overdraft above the amount maximum", overdraft_account("bob", "EUR", "1000000000000000.01")),
        (
            "overdraft without a balance flag",
            NewAccount { overdraft_limit: Some(dec("10.00")), ..new_account("bob", "EUR") },
        ),
        (
            "overdraft with the credits flag",
            NewAccount { flags: CREDITS_LIMITED, overdraft_limit: Some(dec("10.00")), ..new_account("bob", "EUR") },
        ),
        ("overdraft 50.00 in EUR", overdraft_account("bob", "EUR", "50.00")),
        ("overdraft 0 in EUR", overdraft_account("carol", "EUR", "0")),
        ("overdraft 10.500 in EUR (trailing zero)", overdraft_account("carla", "EUR", "10.500")),
        ("overdraft 1000 in JPY", overdraft_account("dave", "JPY", "1000")),
        ("id empty", new_account("", "EUR")),
        ("id of 64 bytes", new_account(&id_64, "EUR")),
        ("id of 65 bytes", new_account(&id_65, "EUR")),
        ("id with a space", new_account("a b", "EUR")),
        ("id with a slash", new_account("a/b", "EUR")),
        ("id with a non-ASCII letter", new_account("café", "EUR")),
        ("id with every allowed kind of character", new_account("Acc-1:eur_main.2", "EUR")),
        ("bad id and unknown currency", new_account("a b", "XXX")),
        ("unknown currency and both flags", NewAccount { flags: BOTH_FLAGS, ..new_account("x", "XXX") }),
        (
            "both flags and a bad overdraft",
            NewAccount { flags: BOTH_FLAGS, overdraft_limit: Some(dec("-1")), ..new_account("x", "EUR") },
        ),
        (
            "holder name at the limit (128 + tag)",
            NewAccount {
                pii: AccountPii {
                    holder_name: Some(Box::new(sealed(limits::PII_BYTES_MAX + 16))),
                    ..AccountPii::default()
                },
                ..new_account("erin", "EUR")
            },
        ),
        (
            "card number one byte over the limit",
            NewAccount {
                pii: AccountPii {
                    card_number: Some(Box::new(sealed(limits::PII_BYTES_MAX + 17))),
                    ..AccountPii::default()
                },
                ..new_account("frank", "EUR")
            },
        ),
        ("same id, other personal data", new_account("erin", "EUR")),
    ];
    for (label, new) in rows {
        l.step(label, accounts(vec![new]));
    }
    expect![[r#"
        plain EUR account                            => ok
        the same request again                       => ok (replayed)
        same id, other currency                      => id_conflict
        same id, other code                          => id_conflict
        same id, a balance flag added                => id_conflict
        unknown currency XXX                         => currency_unknown
        lower-case currency eur                      => currency_unknown
        both balance flags                           => flags_mutually_exclusive
        overdraft -1.00                              => overdraft_limit_invalid
        overdraft 0.001 in EUR                       => overdraft_limit_invalid
        overdraft 0.5 in JPY                         => overdraft_limit_invalid
        overdraft above the amount maximum           => overdraft_limit_invalid
        overdraft without a balance flag             => overdraft_limit_invalid
        overdraft with the credits flag              => overdraft_limit_invalid
        overdraft 50.00 in EUR                       => ok
        overdraft 0 in EUR                           => ok
        overdraft 10.500 in EUR (trailing zero)      => ok
        overdraft 1000 in JPY                        => ok
        id empty                                     => id_invalid
        id of 64 bytes                               => ok
        id of 65 bytes                               => id_invalid
        id with a space                              => id_invalid
        id with a slash                              => id_invalid
        id with a non-ASCII letter                   => id_invalid
        id with every allowed kind of character      => ok
        bad id and unknown currency                  => id_invalid
        unknown currency and both flags              => currency_unknown
        both flags and a bad overdraft               => flags_mutually_exclusive
        holder name at the limit (128 + tag)         => ok
        card number one byte over the limit          => personal_data_too_long
        same id, other personal data                 => id_conflict
    "#]]
    .assert_eq(&l.take_log());

    // The stored account: open, zero balances at the currency's scale, stamped with its command.
    let alice = l.account("alice");
    assert_eq!(alice.status, AccountStatus::Open);
    assert_eq!(alice.created_seq, 2, "seq 1 is the bootstrap");
    assert_eq!(alice.created_at_ms, START_MS);
    assert_eq!(alice.history_len, 0);
    assert_eq!(l.balances("alice"), ("0.00".into(), "0.00".into(), "0.00".into(), "0.00".into()));
    assert_eq!(l.balances("dave"), ("0".into(), "0".into(), "0".into(), "0".into()));
    assert_eq!(l.account("bob").overdraft_limit, Some(dec("50.00")));
    assert!(!l.mem.accounts.contains_key(&"x".into()));
}

// Goal: several accounts in one command: each item gets its own result, a repeated id is
// rejected after the first, and replaying the whole batch changes nothing.
#[test]
fn account_batches() {
    let mut l = Ledger::new();
    let batch = vec![
        new_account("alpha", "EUR"),
        new_account("beta", "JPY"),
        new_account("alpha", "EUR"),
        new_account("gamma", "XXX"),
        new_account("gamma", "EUR"),
        NewAccount { code: 9, ..new_account("beta", "JPY") },
    ];
    l.step("mixed batch", accounts(batch.clone()));
    let book = l.book();
    l.step("the same batch again", accounts(batch));
    assert_eq!(l.book(), book);
    l.step("an empty id and a duplicate of it", accounts(vec![new_account("", "EUR"), new_account("", "EUR")]));
    expect![[r#"
        mixed batch                                  => ok, ok, id_duplicate_in_batch, currency_unknown, ok, id_duplicate_in_batch
        the same batch again                         => ok (replayed), ok (replayed), id_duplicate_in_batch, currency_unknown, ok (replayed), id_duplicate_in_batch
        an empty id and a duplicate of it            => id_invalid, id_invalid
    "#]]
    .assert_eq(&l.take_log());
    assert_eq!(l.account("beta").code, 100, "the first item of an id wins");
    assert_eq!(l.account("gamma").currency.code(), "EUR");
}

// Goal: the status rules of accounts: freeze, unfreeze and close, and what each status blocks.
#[test]
fn frozen_and_closed_accounts() {
    let mut l = Ledger::new();
    for id in ["a", "b", "c", "d", "e", "f"] {
        l.must_create_account(id, "EUR", NO_FLAGS);
    }
    l.must_transfer(posted("fund", "b", "a", "100.00"));
    l.must_transfer(pending("p1", "a", "b", "10.00", None));
    l.must_transfer(pending("p2", "b", "a", "10.00", None));

    l.step("freeze a", update("a", AccountAction::Freeze));
    l.step("freeze a again", update("a", AccountAction::Freeze));
    l.step("a -> b while a is frozen", transfers(vec![posted("t1", "a", "b", "1.00")]));
    l.step("b -> a while a is frozen", transfers(vec![posted("t2", "b", "a", "1.00")]));
    l.step("pending a -> b while a is frozen", transfers(vec![pending("t3", "a", "b", "1.00", None)]));
    l.step("post p1 (debit a frozen)", transfers(vec![post("t4", "p1", "0")]));
    l.step("post p2 (credit a frozen)", transfers(vec![post("t5", "p2", "0")]));
    l.step("void p1 (debit a frozen)", transfers(vec![void("t6", "p1")]));
    l.note_balances(&["a", "b"]);
    l.step("unfreeze a", update("a", AccountAction::Unfreeze));
    l.step("unfreeze a again", update("a", AccountAction::Unfreeze));
    l.step("post p2 again, new id", transfers(vec![post("t7", "p2", "0")]));
    l.step("a -> b", transfers(vec![posted("t8", "a", "b", "1.00")]));
    l.note_balances(&["a", "b"]);

    l.step("pending a -> b", transfers(vec![pending("p3", "a", "b", "5.00", None)]));
    l.step("close a with a pending debit", update("a", AccountAction::Close));
    l.step("void it", transfers(vec![void("t9", "p3")]));
    l.step("close a with a balance", update("a", AccountAction::Close));
    l.step("empty a", transfers(vec![posted("t10", "a", "b", "109.00")]));
    l.note_balances(&["a"]);
    l.step("close a", update("a", AccountAction::Close));
    l.step("close a again", update("a", AccountAction::Close));
    l.step("freeze closed a", update("a", AccountAction::Freeze));
    l.step("unfreeze closed a", update("a", AccountAction::Unfreeze));
    l.step("a -> b from closed a", transfers(vec![posted("t11", "a", "b", "1.00")]));
    l.step("b -> a to closed a", transfers(vec![posted("t12", "b", "a", "1.00")]));
    l.step("pending b -> a to closed a", transfers(vec![pending("t13", "b", "a", "1.00", None)]));
    l.step("re-create a (same request)", accounts(vec![new_account("a", "EUR")]));

    l.step("freeze c (zero balance)", update("c", AccountAction::Freeze));
    l.step("close frozen c", update("c", AccountAction::Close));
    l.step("freeze b", update("b", AccountAction::Freeze));
    l.step("frozen b -> closed c", transfers(vec![posted("t14", "b", "c", "1.00")]));
    l.step("closed c -> frozen b", transfers(vec![posted("t15", "c", "b", "1.00")]));
    l.step("frozen b -> open d", transfers(vec![posted("t16", "b", "d", "1.00")]));
    l.step("open d -> frozen b", transfers(vec![posted("t17", "d", "b", "1.00")]));

    l.step("update an unknown account", update("nobody", AccountAction::Freeze));
    l.step("update a malformed id", update("no body", AccountAction::Freeze));
    let freeze_then_unfreeze = Command::UpdateAccounts(vec![
        AccountUpdate { id: "d".into(), action: AccountAction::Freeze },
        AccountUpdate { id: "d".into(), action: AccountAction::Unfreeze },
    ]);
    l.step("freeze and unfreeze d in one batch", freeze_then_unfreeze);

    // Expiry still releases a reservation on a frozen account.
    l.step("pending e -> f, 1 s timeout", transfers(vec![pending("p4", "e", "f", "3.00", Some(1_000))]));
    l.step("freeze e", update("e", AccountAction::Freeze));
    l.step("freeze f", update("f", AccountAction::Freeze));
    l.note_balances(&["e", "f"]);
    l.advance(1_000);
    l.step("expire pending", Command::ExpirePending);
    l.note_balances(&["e", "f"]);
    expect![[r#"
        freeze a                                     => ok
        freeze a again                               => ok (replayed)
        a -> b while a is frozen                     => debit_account_frozen
        b -> a while a is frozen                     => credit_account_frozen
        pending a -> b while a is frozen             => debit_account_frozen
        post p1 (debit a frozen)                     => debit_account_frozen
        post p2 (credit a frozen)                    => credit_account_frozen
        void p1 (debit a frozen)                     => ok
            a        debits 0.00 (pending 0.00)  credits 100.00 (pending 10.00)
            b        debits 100.00 (pending 10.00)  credits 0.00 (pending 0.00)
        unfreeze a                                   => ok
        unfreeze a again                             => ok (replayed)
        post p2 again, new id                        => ok
        a -> b                                       => ok
            a        debits 1.00 (pending 0.00)  credits 110.00 (pending 0.00)
            b        debits 110.00 (pending 0.00)  credits 1.00 (pending 0.00)
        pending a -> b                               => ok
        close a with a pending debit                 => account_has_pending
        void it                                      => ok
        close a with a balance                       => account_balance_not_zero
        empty a                                      => ok
            a        debits 110.00 (pending 0.00)  credits 110.00 (pending 0.00)
        close a                                      => ok
        close a again                                => ok (replayed)
        freeze closed a                              => account_closed
        unfreeze closed a                            => account_closed
        a -> b from closed a                         => debit_account_closed
        b -> a to closed a                           => credit_account_closed
        pending b -> a to closed a                   => credit_account_closed
        re-create a (same request)                   => ok (replayed)
        freeze c (zero balance)                      => ok
        close frozen c                               => ok
        freeze b                                     => ok
        frozen b -> closed c                         => credit_account_closed
        closed c -> frozen b                         => debit_account_closed
        frozen b -> open d                           => debit_account_frozen
        open d -> frozen b                           => credit_account_frozen
        update an unknown account                    => account_not_found
        update a malformed id                        => id_invalid
        freeze and unfreeze d in one batch           => ok, id_duplicate_in_batch
        pending e -> f, 1 s timeout                  => ok
        freeze e                                     => ok
        freeze f                                     => ok
            e        debits 0.00 (pending 3.00)  credits 0.00 (pending 0.00)
            f        debits 0.00 (pending 0.00)  credits 0.00 (pending 3.00)
        expire pending                               => expired [p4]
            e        debits 0.00 (pending 0.00)  credits 0.00 (pending 0.00)
            f        debits 0.00 (pending 0.00)  credits 0.00 (pending 0.00)
    "#]]
    .assert_eq(&l.take_log());
    assert_eq!(l.account("a").status, AccountStatus::Closed);
    assert_eq!(l.account("b").status, AccountStatus::Frozen);
    assert_eq!(l.account("c").status, AccountStatus::Closed);
    assert_eq!(l.account("d").status, AccountStatus::Frozen);
}

// -------------------------------------------------------------------------------------------
// Single-phase transfers

// Goal: every stateless and state-dependent rule of a single-phase transfer, one transfer per
// command, then the balances (only the accepted rows moved money) and which rejections are
// stored for idempotency (the state-dependent ones).
#[test]
fn single_phase_transfer_rules() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_create_account("u", "USD", NO_FLAGS);
    l.must_create_account("j", "JPY", NO_FLAGS);
    l.must_create_account("k", "JPY", NO_FLAGS);
    let rows: Vec<(&str, NewTransfer)> = vec![
        ("10.00 EUR a -> b", posted("t01", "a", "b", "10.00")),
        ("debit account missing", posted("t02", "nobody", "b", "1.00")),
        ("credit account missing", posted("t03", "a", "nobody", "1.00")),
        ("both accounts missing", posted("t04", "x", "y", "1.00")),
        ("same account on both sides", posted("t05", "a", "a", "1.00")),
        ("EUR a -> USD u", posted("t06", "a", "u", "1.00")),
        ("USD u -> EUR a", posted("t07", "u", "a", "1.00")),
        ("currency USD on EUR accounts", with_currency(posted("t08", "a", "b", "1.00"), "USD")),
        ("currency XXX", with_currency(posted("t09", "a", "b", "1.00"), "XXX")),
        ("currency EUR on EUR accounts", with_currency(posted("t10", "a", "b", "1.00"), "EUR")),
        ("amount 0", posted("t11", "a", "b", "0")),
        ("amount -5.00", posted("t12", "a", "b", "-5.00")),
        ("amount 0.001 EUR", posted("t13", "a", "b", "0.001")),
        ("amount 0.010 EUR (trailing zero)", posted("t14", "a", "b", "0.010")),
        ("amount 1.5 JPY", posted("t15", "j", "k", "1.5")),
        ("amount 1.5 with currency JPY", with_currency(posted("t16", "j", "k", "1.5"), "JPY")),
        ("amount 1.0 JPY (trailing zero)", posted("t17", "j", "k", "1.0")),
        ("amount 0.0001 with currency EUR", with_currency(posted("t18", "a", "b", "0.0001"), "EUR")),
        ("amount 10^15 EUR (the maximum)", posted("t19", "a", "b", "1000000000000000")),
        ("amount 10^15 + 0.01 EUR", posted("t20", "a", "b", "1000000000000000.01")),
        ("amount 10^15 + 1 JPY", posted("t21", "j", "k", "1000000000000001")),
        ("reference of 128 bytes", with_reference(posted("t22", "a", "b", "1.00"), 128)),
        ("reference of 129 bytes", with_reference(posted("t23", "a", "b", "1.00"), 129)),
        ("transfer id empty", posted("", "a", "b", "1.00")),
        ("transfer id with a space", posted("t 24", "a", "b", "1.00")),
        ("debit id with a slash", posted("t25", "a/1", "b", "1.00")),
        ("credit id empty", posted("t26", "a", "", "1.00")),
        ("pending with timeout 0", pending("t27", "a", "b", "1.00", Some(0))),
        ("pending with timeout of a year + 1 day", pending("t28", "a", "b", "1.00", Some(367 * 86_400_000))),
        ("pending with timeout of 366 days", pending("t29", "a", "b", "1.00", Some(limits::PENDING_TIMEOUT_MS_MAX))),
        ("bad id and amount 0", posted("t 30", "a", "b", "0")),
        ("amount 0 and reference too long", with_reference(posted("t31", "a", "b", "0"), 129)),
        ("currency mismatch and too precise", posted("t32", "a", "j", "0.001")),
        ("missing debit and same accounts", posted("t33", "zz", "zz", "1.00")),
    ];
    for (label, t) in rows {
        l.step(label, transfers(vec![t]));
    }
    l.note_balances(&["a", "b", "j", "k", "u"]);
    let stored = stored_rejections(&l);
    l.note(&format!("stored rejections: {stored}"));
    expect![[r#"
        10.00 EUR a -> b                             => ok
        debit account missing                        => debit_account_not_found
        credit account missing                       => credit_account_not_found
        both accounts missing                        => debit_account_not_found
        same account on both sides                   => accounts_must_be_different
        EUR a -> USD u                               => currency_mismatch
        USD u -> EUR a                               => currency_mismatch
        currency USD on EUR accounts                 => currency_mismatch
        currency XXX                                 => currency_unknown
        currency EUR on EUR accounts                 => ok
        amount 0                                     => amount_not_positive
        amount -5.00                                 => amount_not_positive
        amount 0.001 EUR                             => amount_too_precise
        amount 0.010 EUR (trailing zero)             => ok
        amount 1.5 JPY                               => amount_too_precise
        amount 1.5 with currency JPY                 => amount_too_precise
        amount 1.0 JPY (trailing zero)               => ok
        amount 0.0001 with currency EUR              => amount_too_precise
        amount 10^15 EUR (the maximum)               => ok
        amount 10^15 + 0.01 EUR                      => amount_too_large
        amount 10^15 + 1 JPY                         => amount_too_large
        reference of 128 bytes                       => ok
        reference of 129 bytes                       => reference_too_long
        transfer id empty                            => id_invalid
        transfer id with a space                     => id_invalid
        debit id with a slash                        => debit_account_id_invalid
        credit id empty                              => credit_account_id_invalid
        pending with timeout 0                       => timeout_invalid
        pending with timeout of a year + 1 day       => timeout_invalid
        pending with timeout of 366 days             => ok
        bad id and amount 0                          => id_invalid
        amount 0 and reference too long              => amount_not_positive
        currency mismatch and too precise            => currency_mismatch
        missing debit and same accounts              => accounts_must_be_different
            a        debits 1000000000000012.01 (pending 1.00)  credits 0.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 1000000000000012.01 (pending 1.00)
            j        debits 1 (pending 0)  credits 0 (pending 0)
            k        debits 0 (pending 0)  credits 1 (pending 0)
            u        debits 0.00 (pending 0.00)  credits 0.00 (pending 0.00)
        stored rejections: t02=debit_account_not_found t03=credit_account_not_found t04=debit_account_not_found t06=currency_mismatch t07=currency_mismatch t08=currency_mismatch t13=amount_too_precise t15=amount_too_precise t32=currency_mismatch
    "#]]
    .assert_eq(&l.take_log());
    // Amounts are stored at the currency's scale.
    assert_eq!(l.transfer("t14").amount.to_string(), "0.01");
    assert_eq!(l.transfer("t17").amount.to_string(), "1");
    assert_eq!(l.transfer("t01").state, TransferState::Posted);
}

// Goal: the balance flags: debits_must_not_exceed_credits (with and without an overdraft
// limit, which allows exactly up to the limit) and credits_must_not_exceed_debits, with
// pending amounts counting against both.
#[test]
fn balance_limits() {
    let mut l = Ledger::new();
    l.must_create_account("bank", "EUR", NO_FLAGS);
    l.must_create_account("cust", "EUR", DEBITS_LIMITED);
    l.must_create(overdraft_account("od", "EUR", "50.00"));
    l.must_create_account("loan", "EUR", CREDITS_LIMITED);
    let rows: Vec<(&str, NewTransfer)> = vec![
        ("cust pays 0.01 with nothing", posted("c1", "cust", "bank", "0.01")),
        ("bank credits cust 100.00", posted("c2", "bank", "cust", "100.00")),
        ("cust pays 100.01", posted("c3", "cust", "bank", "100.01")),
        ("cust pays 100.00", posted("c4", "cust", "bank", "100.00")),
        ("cust pays 0.01 more", posted("c5", "cust", "bank", "0.01")),
        ("od pays 50.00 (its whole overdraft)", posted("o1", "od", "bank", "50.00")),
        ("od pays 0.01 more", posted("o2", "od", "bank", "0.01")),
        ("bank credits od 10.00", posted("o3", "bank", "od", "10.00")),
        ("od pays 10.00", posted("o4", "od", "bank", "10.00")),
        ("od pays 0.01", posted("o5", "od", "bank", "0.01")),
        ("bank credits od 5.00", posted("o6", "bank", "od", "5.00")),
        ("od reserves 5.00", pending("o7", "od", "bank", "5.00", None)),
        ("od pays 0.01 (the reservation counts)", posted("o8", "od", "bank", "0.01")),
        ("void the reservation", void("o9", "o7")),
        ("od pays 5.00", posted("o10", "od", "bank", "5.00")),
        ("bank credits loan 0.01 before any debit", posted("l1", "bank", "loan", "0.01")),
        ("loan pays out 500.00", posted("l2", "loan", "bank", "500.00")),
        ("bank credits loan 500.00 (repaid)", posted("l3", "bank", "loan", "500.00")),
        ("bank credits loan 0.01 more", posted("l4", "bank", "loan", "0.01")),
        ("loan pays out 100.00", posted("l5", "loan", "bank", "100.00")),
        ("bank reserves a 100.00 credit to loan", pending("l6", "bank", "loan", "100.00", None)),
        ("bank credits loan 0.01 (reservation counts)", posted("l7", "bank", "loan", "0.01")),
        ("empty cust pays loan: debit rule first", posted("x1", "cust", "loan", "1.00")),
    ];
    for (label, t) in rows {
        l.step(label, transfers(vec![t]));
    }
    l.note_balances(&["bank", "cust", "od", "loan"]);
    expect![[r#"
        cust pays 0.01 with nothing                  => exceeds_credits
        bank credits cust 100.00                     => ok
        cust pays 100.01                             => exceeds_credits
        cust pays 100.00                             => ok
        cust pays 0.01 more                          => exceeds_credits
        od pays 50.00 (its whole overdraft)          => ok
        od pays 0.01 more                            => exceeds_credits
        bank credits od 10.00                        => ok
        od pays 10.00                                => ok
        od pays 0.01                                 => exceeds_credits
        bank credits od 5.00                         => ok
        od reserves 5.00                             => ok
        od pays 0.01 (the reservation counts)        => exceeds_credits
        void the reservation                         => ok
        od pays 5.00                                 => ok
        bank credits loan 0.01 before any debit      => exceeds_debits
        loan pays out 500.00                         => ok
        bank credits loan 500.00 (repaid)            => ok
        bank credits loan 0.01 more                  => exceeds_debits
        loan pays out 100.00                         => ok
        bank reserves a 100.00 credit to loan        => ok
        bank credits loan 0.01 (reservation counts)  => exceeds_debits
        empty cust pays loan: debit rule first       => exceeds_credits
            bank     debits 615.00 (pending 100.00)  credits 765.00 (pending 0.00)
            cust     debits 100.00 (pending 0.00)  credits 100.00 (pending 0.00)
            od       debits 65.00 (pending 0.00)  credits 15.00 (pending 0.00)
            loan     debits 600.00 (pending 0.00)  credits 500.00 (pending 100.00)
    "#]]
    .assert_eq(&l.take_log());
}

// -------------------------------------------------------------------------------------------
// Idempotency

// Goal: a transfer id is an idempotency key: an identical replay returns the original result
// (even a stored rejection after the funds arrived) and changes nothing; a different body under
// the same id is id_conflict and never overwrites; a stateless rejection does not take the id.
#[test]
fn transfer_idempotency() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_create_account("cust", "EUR", DEBITS_LIMITED);
    l.step("t1 a -> b 10.00", transfers(vec![posted("t1", "a", "b", "10.00")]));
    let book = l.book();
    l.step("t1 again", transfers(vec![posted("t1", "a", "b", "10.00")]));
    l.step("t1 again, amount written 10.0", transfers(vec![posted("t1", "a", "b", "10.0")]));
    assert_eq!(l.book(), book, "replays change nothing");
    l.step("t1 with amount 10.01", transfers(vec![posted("t1", "a", "b", "10.01")]));
    l.step("t1 with accounts swapped", transfers(vec![posted("t1", "b", "a", "10.00")]));
    l.step("t1 with a reference", transfers(vec![with_reference(posted("t1", "a", "b", "10.00"), 3)]));
    l.step("t1 with another code", transfers(vec![NewTransfer { code: 2, ..posted("t1", "a", "b", "10.00") }]));
    l.step("t1 as a pending transfer", transfers(vec![pending("t1", "a", "b", "10.00", None)]));
    l.step("t1 with currency EUR given", transfers(vec![with_currency(posted("t1", "a", "b", "10.00"), "EUR")]));
    assert_eq!(l.book(), book, "conflicts change nothing");
    assert_eq!(l.transfer("t1").request, posted("t1", "a", "b", "10.00"));

    l.step("t2 cust -> b 5.00 (cust is empty)", transfers(vec![posted("t2", "cust", "b", "5.00")]));
    l.step("fund cust 100.00", transfers(vec![posted("t3", "a", "cust", "100.00")]));
    l.step("t2 again (now funded)", transfers(vec![posted("t2", "cust", "b", "5.00")]));
    l.step("t2 with amount 6.00", transfers(vec![posted("t2", "cust", "b", "6.00")]));
    l.step("t2's body under a new id", transfers(vec![posted("t4", "cust", "b", "5.00")]));

    l.step("t5 with amount 0", transfers(vec![posted("t5", "a", "b", "0")]));
    l.step("t5 again", transfers(vec![posted("t5", "a", "b", "0")]));
    l.step("t5 with a valid amount", transfers(vec![posted("t5", "a", "b", "1.00")]));
    l.note_balances(&["a", "b", "cust"]);
    expect![[r#"
        t1 a -> b 10.00                              => ok
        t1 again                                     => ok (replayed)
        t1 again, amount written 10.0                => ok (replayed)
        t1 with amount 10.01                         => id_conflict
        t1 with accounts swapped                     => id_conflict
        t1 with a reference                          => id_conflict
        t1 with another code                         => id_conflict
        t1 as a pending transfer                     => id_conflict
        t1 with currency EUR given                   => id_conflict
        t2 cust -> b 5.00 (cust is empty)            => exceeds_credits
        fund cust 100.00                             => ok
        t2 again (now funded)                        => exceeds_credits (replayed)
        t2 with amount 6.00                          => id_conflict
        t2's body under a new id                     => ok
        t5 with amount 0                             => amount_not_positive
        t5 again                                     => amount_not_positive
        t5 with a valid amount                       => ok
            a        debits 111.00 (pending 0.00)  credits 0.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 16.00 (pending 0.00)
            cust     debits 5.00 (pending 0.00)  credits 100.00 (pending 0.00)
    "#]]
    .assert_eq(&l.take_log());
    assert_eq!(l.transfer("t2").result, ResultCode::ExceedsCredits);
    assert_eq!(l.transfer("t2").state, TransferState::Rejected);
}

// Goal: replaying a whole batch (non-atomic with every kind of item, atomic that succeeded,
// atomic that failed) changes nothing but the journal, and gives the same codes, marked
// replayed where the item was stored.
#[test]
fn replayed_batches_change_nothing() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_create_account("cust", "EUR", DEBITS_LIMITED);
    l.must_transfer(posted("old", "a", "b", "1.00"));
    let mixed = transfers(vec![
        posted("m1", "a", "b", "2.00"),
        pending("m2", "a", "b", "3.00", Some(60_000)),
        post("m3", "m2", "1.00"),
        posted("m4", "cust", "b", "1.00"),
        posted("m5", "a", "b", "0"),
        posted("old", "a", "b", "9.00"),
        posted("m1", "a", "b", "2.00"),
        posted("m6", "a", "nobody", "1.00"),
    ]);
    let ok_chain = atomic(vec![posted("s1", "a", "b", "1.00"), posted("s2", "b", "cust", "1.00")]);
    let failed_chain = atomic(vec![posted("f1", "a", "b", "1.00"), posted("f2", "cust", "b", "5.00")]);
    for (name, command) in [("mixed", mixed), ("ok chain", ok_chain), ("failed chain", failed_chain)] {
        let first = l.step(name, command.clone());
        let book = l.book();
        let seq = l.mem.meta.journal.seq;
        let again = l.step(&format!("{name} again"), command);
        assert_eq!(l.book(), book, "{name}: a replay changes no account, transfer, history or expiry");
        assert_eq!(l.mem.meta.journal.seq, seq + 1, "{name}: a replay is journaled");
        let codes = |o: &Outcome| o.items().iter().map(|i| i.code).collect::<Vec<_>>();
        assert_eq!(codes(&first), codes(&again), "{name}: same codes");
    }
    expect![[r#"
        mixed                                        => ok, ok, ok, exceeds_credits, amount_not_positive, id_conflict, id_duplicate_in_batch, credit_account_not_found
        mixed again                                  => ok (replayed), ok (replayed), ok (replayed), exceeds_credits (replayed), amount_not_positive, id_conflict, id_duplicate_in_batch, credit_account_not_found (replayed)
        ok chain                                     => ok, ok
        ok chain again                               => ok (replayed), ok (replayed)
        failed chain                                 => linked_event_failed, exceeds_credits
        failed chain again                           => linked_event_failed (replayed), exceeds_credits (replayed)
    "#]]
    .assert_eq(&l.take_log());
}

// -------------------------------------------------------------------------------------------
// Two-phase transfers

// Goal: pending transfers reserve, then post (in full or part) or void exactly once; every
// wrong reference to a pending transfer gets its own code.
#[test]
fn two_phase_rules() {
    let mut l = Ledger::new();
    l.must_create_account("bank", "EUR", NO_FLAGS);
    l.must_create_account("a", "EUR", DEBITS_LIMITED);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_transfer(posted("fund", "bank", "a", "100.00"));

    l.step("p1: a reserves 30.00 for b", transfers(vec![pending("p1", "a", "b", "30.00", None)]));
    l.note_balances(&["a", "b"]);
    l.step("a pays 70.01 (30.00 is reserved)", transfers(vec![posted("x1", "a", "b", "70.01")]));
    l.step("post p1 in full", transfers(vec![post("q1", "p1", "0")]));
    l.note_balances(&["a", "b"]);
    l.step("post p1 again, new id", transfers(vec![post("q2", "p1", "0")]));
    l.step("void p1 after its post", transfers(vec![void("q3", "p1")]));
    l.step("the post q1 again", transfers(vec![post("q1", "p1", "0")]));

    l.step("p2: a reserves 40.00", transfers(vec![pending("p2", "a", "b", "40.00", None)]));
    l.step("post 25.00 of p2", transfers(vec![post("q4", "p2", "25.00")]));
    l.note_balances(&["a", "b"]);

    l.step("p3: a reserves 10.00", transfers(vec![pending("p3", "a", "b", "10.00", None)]));
    l.step("post 10.01 of p3", transfers(vec![post("q5", "p3", "10.01")]));
    l.step("post 0.001 of p3", transfers(vec![post("q6", "p3", "0.001")]));
    l.step("post -1.00 of p3", transfers(vec![post("q7", "p3", "-1.00")]));
    l.step("void p3 naming 5.00", transfers(vec![with_amount(void("q8", "p3"), "5.00")]));
    l.step("post p3 naming debit b", transfers(vec![with_accounts(post("q9", "p3", "0"), "b", "")]));
    l.step("post p3 naming credit bank", transfers(vec![with_accounts(post("q10", "p3", "0"), "", "bank")]));
    l.step("post p3 naming currency USD", transfers(vec![with_currency(post("q11", "p3", "0"), "USD")]));
    l.step("post p3 naming a and a", transfers(vec![with_accounts(post("q12", "p3", "0"), "a", "a")]));
    l.step("post p3 naming a bad debit id", transfers(vec![with_accounts(post("q13", "p3", "0"), "a b", "")]));
    l.step("void p3", transfers(vec![void("q14", "p3")]));
    l.note_balances(&["a", "b"]);
    l.step("void p3 again, new id", transfers(vec![void("q15", "p3")]));
    l.step("post p3 after its void", transfers(vec![post("q16", "p3", "0")]));

    l.step("post an unknown id", transfers(vec![post("q17", "nope", "0")]));
    l.step("void an unknown id", transfers(vec![void("q18", "nope")]));
    l.step("post a single-phase transfer", transfers(vec![post("q19", "fund", "0")]));
    l.step("void a post", transfers(vec![void("q20", "q1")]));
    l.step("p4: a reserves 1000.00 (rejected)", transfers(vec![pending("p4", "a", "b", "1000.00", None)]));
    l.step("post the rejected p4", transfers(vec![post("q21", "p4", "0")]));
    l.step("post a malformed pending id", transfers(vec![post("q22", "p 4", "0")]));
    l.step("post itself", transfers(vec![post("q23", "q23", "0")]));

    l.step("p5: a reserves 2.00", transfers(vec![pending("p5", "a", "b", "2.00", None)]));
    let full_post = with_currency(with_accounts(post("q24", "p5", "2.00"), "a", "b"), "EUR");
    l.step("post p5 naming everything right", transfers(vec![full_post]));
    l.step("p6: a reserves 3.00", transfers(vec![pending("p6", "a", "b", "3.00", None)]));
    l.step("void p6 naming 3.00", transfers(vec![with_amount(void("q25", "p6"), "3.00")]));
    l.note_balances(&["a", "b"]);
    expect![[r#"
        p1: a reserves 30.00 for b                   => ok
            a        debits 0.00 (pending 30.00)  credits 100.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 0.00 (pending 30.00)
        a pays 70.01 (30.00 is reserved)             => exceeds_credits
        post p1 in full                              => ok
            a        debits 30.00 (pending 0.00)  credits 100.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 30.00 (pending 0.00)
        post p1 again, new id                        => pending_transfer_already_posted
        void p1 after its post                       => pending_transfer_already_posted
        the post q1 again                            => ok (replayed)
        p2: a reserves 40.00                         => ok
        post 25.00 of p2                             => ok
            a        debits 55.00 (pending 0.00)  credits 100.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 55.00 (pending 0.00)
        p3: a reserves 10.00                         => ok
        post 10.01 of p3                             => post_amount_exceeds_pending
        post 0.001 of p3                             => amount_too_precise
        post -1.00 of p3                             => amount_not_positive
        void p3 naming 5.00                          => pending_transfer_mismatch
        post p3 naming debit b                       => pending_transfer_mismatch
        post p3 naming credit bank                   => pending_transfer_mismatch
        post p3 naming currency USD                  => pending_transfer_mismatch
        post p3 naming a and a                       => accounts_must_be_different
        post p3 naming a bad debit id                => debit_account_id_invalid
        void p3                                      => ok
            a        debits 55.00 (pending 0.00)  credits 100.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 55.00 (pending 0.00)
        void p3 again, new id                        => pending_transfer_already_voided
        post p3 after its void                       => pending_transfer_already_voided
        post an unknown id                           => pending_transfer_not_found
        void an unknown id                           => pending_transfer_not_found
        post a single-phase transfer                 => pending_transfer_not_pending
        void a post                                  => pending_transfer_not_pending
        p4: a reserves 1000.00 (rejected)            => exceeds_credits
        post the rejected p4                         => pending_transfer_not_pending
        post a malformed pending id                  => pending_id_invalid
        post itself                                  => pending_id_must_be_different
        p5: a reserves 2.00                          => ok
        post p5 naming everything right              => ok
        p6: a reserves 3.00                          => ok
        void p6 naming 3.00                          => ok
            a        debits 57.00 (pending 0.00)  credits 100.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 57.00 (pending 0.00)
    "#]]
    .assert_eq(&l.take_log());

    assert_eq!(l.transfer("p1").state, TransferState::PendingPosted { posted_amount: dec("30.00"), by: "q1".into() });
    assert_eq!(l.transfer("p2").state, TransferState::PendingPosted { posted_amount: dec("25.00"), by: "q4".into() });
    assert_eq!(l.transfer("p3").state, TransferState::PendingVoided { by: "q14".into() });
    assert_eq!(l.transfer("q1").amount.to_string(), "30.00");
    assert_eq!(l.transfer("q4").amount.to_string(), "25.00");
    assert_eq!(l.transfer("q14").amount.to_string(), "0.00");
    assert_eq!(l.transfer("q4").debit_account_id.as_str(), "a", "a post is resolved to the pending's accounts");
}

// Goal: a pending transfer times out in ledger time: posting or voiding at or after its expiry
// is pending_transfer_expired even before ExpirePending runs; ExpirePending then releases it
// (state pending_expired), a bounded number per command, oldest first.
#[test]
fn pending_timeouts() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    let t0 = l.now_ms;
    l.step(
        "p1, p2 1 s; p3 2 s; p4 never",
        transfers(vec![
            pending("p1", "a", "b", "1.00", Some(1_000)),
            pending("p2", "a", "b", "2.00", Some(1_000)),
            pending("p3", "a", "b", "3.00", Some(2_000)),
            pending("p4", "a", "b", "4.00", None),
        ]),
    );
    assert_eq!(l.transfer("p1").expires_at_ms, Some(t0 + 1_000));
    assert_eq!(ledger::next_expiry(&l.mem), Some(t0 + 1_000));
    l.advance(999);
    l.step("at +999 ms: expire pending", Command::ExpirePending);
    l.step("at +999 ms: post p1", transfers(vec![post("q1", "p1", "0")]));
    l.advance(1);
    l.step("at +1000 ms: post p2", transfers(vec![post("q2", "p2", "0")]));
    l.step("at +1000 ms: void p2", transfers(vec![void("q3", "p2")]));
    assert_eq!(l.transfer("p2").state, TransferState::Pending, "not released until ExpirePending");
    l.note_balances(&["a", "b"]);
    l.step("at +1000 ms: expire pending", Command::ExpirePending);
    l.note_balances(&["a", "b"]);
    l.step("at +1000 ms: expire pending again", Command::ExpirePending);
    l.step("at +1000 ms: post p2 once expired", transfers(vec![post("q4", "p2", "0")]));
    l.step("at +1000 ms: void p2 once expired", transfers(vec![void("q5", "p2")]));
    assert_eq!(ledger::next_expiry(&l.mem), Some(t0 + 2_000));
    l.advance(5_000);
    l.step("at +6000 ms: expire pending", Command::ExpirePending);
    assert_eq!(ledger::next_expiry(&l.mem), None, "p4 has no timeout");
    l.advance(limits::PENDING_TIMEOUT_MS_MAX);
    l.step("a year later: expire pending", Command::ExpirePending);
    l.step("a year later: post p4", transfers(vec![post("q6", "p4", "0")]));
    l.note_balances(&["a", "b"]);
    expect![[r#"
        p1, p2 1 s; p3 2 s; p4 never                 => ok, ok, ok, ok
        at +999 ms: expire pending                   => expired []
        at +999 ms: post p1                          => ok
        at +1000 ms: post p2                         => pending_transfer_expired
        at +1000 ms: void p2                         => pending_transfer_expired
            a        debits 1.00 (pending 9.00)  credits 0.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 1.00 (pending 9.00)
        at +1000 ms: expire pending                  => expired [p2]
            a        debits 1.00 (pending 7.00)  credits 0.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 1.00 (pending 7.00)
        at +1000 ms: expire pending again            => expired []
        at +1000 ms: post p2 once expired            => pending_transfer_expired
        at +1000 ms: void p2 once expired            => pending_transfer_expired
        at +6000 ms: expire pending                  => expired [p3]
        a year later: expire pending                 => expired []
        a year later: post p4                        => ok
            a        debits 5.00 (pending 0.00)  credits 0.00 (pending 0.00)
            b        debits 0.00 (pending 0.00)  credits 5.00 (pending 0.00)
    "#]]
    .assert_eq(&l.take_log());
    assert_eq!(l.transfer("p2").state, TransferState::PendingExpired);
    assert_eq!(l.transfer("p3").state, TransferState::PendingExpired);
    assert_eq!(l.transfer("q2").result, ResultCode::PendingTransferExpired);

    // One ExpirePending releases at most EXPIRIES_PER_COMMAND_MAX, oldest first.
    let n = limits::EXPIRIES_PER_COMMAND_MAX + 10;
    let many: Vec<NewTransfer> =
        (0..n).map(|i| pending(&format!("m{i:03}"), "a", "b", "0.01", Some(1 + (n - i) as u64))).collect();
    l.apply(transfers(many));
    l.advance(10_000);
    let Outcome::Expired(first) = l.apply(Command::ExpirePending) else { panic!("expected Expired") };
    assert_eq!(first.len(), limits::EXPIRIES_PER_COMMAND_MAX);
    assert_eq!(first[0].as_str(), format!("m{:03}", n - 1), "the earliest expiry first");
    let Outcome::Expired(rest) = l.apply(Command::ExpirePending) else { panic!("expected Expired") };
    assert_eq!(rest.len(), 10);
    assert_eq!(rest.last().unwrap().as_str(), "m000");
    assert!(l.mem.expiries.is_empty());
}

// Goal: the ledger clock is max(previous ledger time, the leader's stamp): a command stamped
// earlier than the clock runs at the clock, so an expired pending transfer stays expired and a
// timeout counts from the clock.
#[test]
fn ledger_time_never_goes_back() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    let t0 = l.now_ms;
    l.must_transfer(pending("p", "a", "b", "1.00", Some(1_000)));
    let admin = Command::Admin(AdminEvent::KeyRotated { key_id: 2 });
    assert_eq!(l.apply_stamped(admin, t0 + 5_000), Outcome::Recorded);
    assert_eq!(l.ledger_time_ms(), t0 + 5_000);

    let outcome = l.apply_stamped(transfers(vec![post("q", "p", "0")]), t0 + 10);
    assert_eq!(show(&outcome), "pending_transfer_expired");
    assert_eq!(l.ledger_time_ms(), t0 + 5_000, "a stamp behind the clock does not move it back");
    assert_eq!(l.mem.journal.last().unwrap().ledger_time_ms, t0 + 5_000);
    assert_eq!(l.transfer("q").ledger_time_ms, t0 + 5_000);

    let outcome = l.apply_stamped(transfers(vec![pending("p2", "a", "b", "1.00", Some(100))]), t0 + 20);
    assert_eq!(show(&outcome), "ok");
    assert_eq!(l.transfer("p2").expires_at_ms, Some(t0 + 5_100), "a timeout counts from the ledger clock");

    let outcome = l.apply_stamped(Command::ExpirePending, t0 + 30);
    assert_eq!(show(&outcome), "expired [p]");
    let outcome = l.apply_stamped(Command::ExpirePending, t0 + 5_100);
    assert_eq!(show(&outcome), "expired [p2]");
    assert!(l.mem.journal.windows(2).all(|w| w[0].ledger_time_ms <= w[1].ledger_time_ms));
}

// -------------------------------------------------------------------------------------------
// Atomic batches

// Goal: an atomic batch applies all its transfers or none: the failing item gets its code, the
// others linked_event_failed, no balance or history moves, and a replay returns the same.
#[test]
fn atomic_batches() {
    let mut l = Ledger::new();
    l.must_create_account("bank", "EUR", NO_FLAGS);
    l.must_create_account("a", "EUR", DEBITS_LIMITED);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_transfer(posted("fund", "bank", "a", "50.00"));

    l.step("[bank->b 10, b->a 5]", atomic(vec![posted("x1", "bank", "b", "10.00"), posted("x2", "b", "a", "5.00")]));
    l.note_balances(&["bank", "a", "b"]);
    let book = l.book();
    let history_rows = l.mem.history.len();
    let failing = atomic(vec![
        posted("y1", "bank", "b", "10.00"),
        posted("y2", "a", "b", "1000.00"),
        posted("y3", "b", "a", "1.00"),
    ]);
    l.step("[bank->b 10, a->b 1000, b->a 1]", failing.clone());
    l.note_balances(&["bank", "a", "b"]);
    assert_eq!(l.book().accounts, book.accounts, "a failed chain moves no money");
    assert_eq!(l.mem.history.len(), history_rows, "a failed chain writes no history");
    l.step("the same batch again", failing);
    l.note(&format!("stored: {}", stored_rejections(&l)));

    l.step("[bank->b 10, amount 0]", atomic(vec![posted("z1", "bank", "b", "10.00"), posted("z2", "a", "b", "0")]));
    l.note(&format!("z1 stored: {}, z2 stored: {}", l.has_transfer("z1"), l.has_transfer("z2")));
    l.step("z1 alone", transfers(vec![posted("z1", "bank", "b", "10.00")]));

    l.step(
        "[bank->b 1, x1 with 11.00]",
        atomic(vec![posted("w1", "bank", "b", "1.00"), posted("x1", "bank", "b", "11.00")]),
    );
    l.step(
        "[bank->b 1, x1 replayed]",
        atomic(vec![posted("w2", "bank", "b", "1.00"), posted("x1", "bank", "b", "10.00")]),
    );
    l.step("[d1, d1]", atomic(vec![posted("d1", "bank", "b", "1.00"), posted("d1", "bank", "b", "1.00")]));
    l.step(
        "[bank reserves 7 for b, post it]",
        atomic(vec![pending("r1", "bank", "b", "7.00", Some(1_000)), post("r2", "r1", "0")]),
    );
    l.step(
        "[bank->a 100, a->b 140] funded by the chain",
        atomic(vec![posted("r3", "bank", "a", "100.00"), posted("r4", "a", "b", "140.00")]),
    );
    l.note_balances(&["bank", "a", "b"]);
    l.step(
        "[a->b 10, a->b rest + 0.01]",
        atomic(vec![posted("r5", "a", "b", "10.00"), posted("r6", "a", "b", "5.01")]),
    );
    l.step("[void r1 (already posted), bank->b 1]", atomic(vec![void("r7", "r1"), posted("r8", "bank", "b", "1.00")]));
    l.note_balances(&["bank", "a", "b"]);
    expect![[r#"
        [bank->b 10, b->a 5]                         => ok, ok
            bank     debits 60.00 (pending 0.00)  credits 0.00 (pending 0.00)
            a        debits 0.00 (pending 0.00)  credits 55.00 (pending 0.00)
            b        debits 5.00 (pending 0.00)  credits 10.00 (pending 0.00)
        [bank->b 10, a->b 1000, b->a 1]              => linked_event_failed, exceeds_credits, linked_event_failed
            bank     debits 60.00 (pending 0.00)  credits 0.00 (pending 0.00)
            a        debits 0.00 (pending 0.00)  credits 55.00 (pending 0.00)
            b        debits 5.00 (pending 0.00)  credits 10.00 (pending 0.00)
        the same batch again                         => linked_event_failed (replayed), exceeds_credits (replayed), linked_event_failed (replayed)
        stored: y1=linked_event_failed y2=exceeds_credits y3=linked_event_failed
        [bank->b 10, amount 0]                       => linked_event_failed, amount_not_positive
        z1 stored: false, z2 stored: false
        z1 alone                                     => ok
        [bank->b 1, x1 with 11.00]                   => linked_event_failed, id_conflict
        [bank->b 1, x1 replayed]                     => ok, ok (replayed)
        [d1, d1]                                     => linked_event_failed, id_duplicate_in_batch
        [bank reserves 7 for b, post it]             => ok, ok
        [bank->a 100, a->b 140] funded by the chain  => ok, ok
            bank     debits 178.00 (pending 0.00)  credits 0.00 (pending 0.00)
            a        debits 140.00 (pending 0.00)  credits 155.00 (pending 0.00)
            b        debits 5.00 (pending 0.00)  credits 168.00 (pending 0.00)
        [a->b 10, a->b rest + 0.01]                  => linked_event_failed, exceeds_credits
        [void r1 (already posted), bank->b 1]        => pending_transfer_already_posted, linked_event_failed
            bank     debits 178.00 (pending 0.00)  credits 0.00 (pending 0.00)
            a        debits 140.00 (pending 0.00)  credits 155.00 (pending 0.00)
            b        debits 5.00 (pending 0.00)  credits 168.00 (pending 0.00)
    "#]]
    .assert_eq(&l.take_log());
    assert!(l.mem.expiries.is_empty(), "r1 was posted in its own chain: its expiry is gone");
    assert_eq!(l.transfer("y1").state, TransferState::Rejected);
    assert_eq!(l.transfer("x1").request, posted("x1", "bank", "b", "10.00"), "a conflict never overwrites");
}

// Goal (issue 9, defect 6): an atomic batch with a malformed item is refused before any state
// is read, by one rule (`ledger::atomic_refused_up_front`) that the API answers without
// proposing and the ledger answers if such a batch reaches it: the malformed item carries its
// code, every other item linked_event_failed, even an id that exists (no replayed result), and
// nothing is stored.
#[test]
fn atomic_batch_with_a_malformed_item_is_refused_before_any_lookup() {
    let mut l = Ledger::new();
    l.must_create_account("bank", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_transfer(posted("m1", "bank", "b", "1.00"));
    let before = l.book();
    let batch =
        vec![posted("m1", "bank", "b", "1.00"), posted("m2", "bank", "b", "0"), posted("m3", "bank", "b", "2.00")];
    let outcome = l.apply(atomic(batch.clone()));
    assert_eq!(show(&outcome), "linked_event_failed, amount_not_positive, linked_event_failed");
    let rule = ledger::atomic_refused_up_front(batch.len(), 1, ResultCode::AmountNotPositive);
    assert_eq!(outcome.items(), rule.as_slice(), "the ledger answers the shared rule");
    assert_eq!(l.book().accounts, before.accounts, "nothing moved");
    assert!(!l.has_transfer("m3"), "nothing stored");
}

// Goal: an atomic batch must not half-apply when one of its items is the replay of a stored
// rejection. A client whose chain [f1, f2] failed on f2 retries with f2 under a new id; the
// chain result shows f1 failed (its stored linked_event_failed), yet f2' is applied alone.
#[test]
fn atomic_batch_does_not_half_apply_when_an_item_replays_a_rejection() {
    let mut l = Ledger::new();
    l.must_create_account("bank", "EUR", NO_FLAGS);
    l.must_create_account("a", "EUR", DEBITS_LIMITED);
    l.must_create_account("b", "EUR", NO_FLAGS);
    let first = l.apply(atomic(vec![posted("f1", "bank", "b", "10.00"), posted("f2", "a", "bank", "5.00")]));
    assert_eq!(show(&first), "linked_event_failed, exceeds_credits");
    l.must_transfer(posted("fund", "bank", "a", "5.00"));
    let before = l.book().accounts;

    let retry = l.apply(atomic(vec![posted("f1", "bank", "b", "10.00"), posted("f2-retry", "a", "bank", "5.00")]));
    let items = retry.items();
    let all_ok = items.iter().all(|i| i.code.is_ok());
    assert!(
        all_ok || l.book().accounts == before,
        "atomic batch answered {} yet moved money: a {:?} / b {:?}",
        show(&retry),
        l.balances("a"),
        l.balances("b"),
    );
}

// Goal: the replay of a failed atomic batch returns the original results. The chain fails on
// its second item; its third item names an id already taken by another body, which is
// id_conflict whether or not the chain reached it, on the first run and on the replay.
#[test]
fn atomic_batch_replay_reports_the_original_results() {
    let mut l = Ledger::new();
    l.must_create_account("bank", "EUR", NO_FLAGS);
    l.must_create_account("a", "EUR", DEBITS_LIMITED);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_transfer(posted("taken", "bank", "b", "1.00"));
    let chain = atomic(vec![
        posted("n1", "bank", "b", "10.00"),
        posted("n2", "a", "b", "5.00"),
        posted("taken", "bank", "b", "2.00"),
    ]);
    let first = l.apply(chain.clone());
    assert_eq!(show(&first), "linked_event_failed, exceeds_credits, id_conflict");
    let again = l.apply(chain);
    let codes = |o: &Outcome| o.items().iter().map(|i| i.code).collect::<Vec<_>>();
    assert_eq!(codes(&again), codes(&first), "replay answered {}", show(&again));
}

// -------------------------------------------------------------------------------------------
// History

// Goal: each account's history has one row per change, indexes contiguous from 1, with the
// effect, amount and balance after the row.
#[test]
fn history_rows() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_create_account("c", "EUR", NO_FLAGS);
    l.must_transfer(posted("t1", "a", "b", "10.00"));
    l.must_transfer(pending("t2", "a", "b", "5.00", Some(1_000)));
    l.must_transfer(post("t3", "t2", "3.00"));
    l.must_transfer(pending("t4", "a", "b", "4.00", None));
    l.must_transfer(void("t5", "t4"));
    l.must_transfer(pending("t6", "a", "b", "2.00", Some(500)));
    l.must_transfer(posted("t7", "c", "a", "1.00"));
    l.advance(500);
    assert_eq!(show(&l.apply(Command::ExpirePending)), "expired [t6]");
    assert_eq!(l.try_transfer(posted("t8", "a", "b", "0")), "amount_not_positive");

    let mut out = String::new();
    for id in ["a", "b"] {
        out.push_str(&format!("{id}:\n"));
        for row in l.history(id) {
            let side = match row.side {
                Side::Debit => "debit",
                Side::Credit => "credit",
            };
            let effect = match row.effect {
                HistoryEffect::Posted => "posted",
                HistoryEffect::Reserved => "reserved",
                HistoryEffect::PendingPosted => "pending_posted",
                HistoryEffect::Voided => "voided",
                HistoryEffect::Expired => "expired",
            };
            out.push_str(&format!(
                "  #{} seq {} +{}ms {} {side} {effect} {} -> {}\n",
                row.index,
                row.journal_seq,
                row.ledger_time_ms - START_MS,
                row.transfer_id,
                row.amount,
                show_balance("", &row.balance).trim_start(),
            ));
        }
    }
    expect![[r#"
        a:
          #1 seq 5 +0ms t1 debit posted 10.00 -> debits 10.00 (pending 0.00)  credits 0.00 (pending 0.00)
          #2 seq 6 +0ms t2 debit reserved 5.00 -> debits 10.00 (pending 5.00)  credits 0.00 (pending 0.00)
          #3 seq 7 +0ms t3 debit pending_posted 3.00 -> debits 13.00 (pending 0.00)  credits 0.00 (pending 0.00)
          #4 seq 8 +0ms t4 debit reserved 4.00 -> debits 13.00 (pending 4.00)  credits 0.00 (pending 0.00)
          #5 seq 9 +0ms t5 debit voided 4.00 -> debits 13.00 (pending 0.00)  credits 0.00 (pending 0.00)
          #6 seq 10 +0ms t6 debit reserved 2.00 -> debits 13.00 (pending 2.00)  credits 0.00 (pending 0.00)
          #7 seq 11 +0ms t7 credit posted 1.00 -> debits 13.00 (pending 2.00)  credits 1.00 (pending 0.00)
          #8 seq 12 +500ms t6 debit expired 2.00 -> debits 13.00 (pending 0.00)  credits 1.00 (pending 0.00)
        b:
          #1 seq 5 +0ms t1 credit posted 10.00 -> debits 0.00 (pending 0.00)  credits 10.00 (pending 0.00)
          #2 seq 6 +0ms t2 credit reserved 5.00 -> debits 0.00 (pending 0.00)  credits 10.00 (pending 5.00)
          #3 seq 7 +0ms t3 credit pending_posted 3.00 -> debits 0.00 (pending 0.00)  credits 13.00 (pending 0.00)
          #4 seq 8 +0ms t4 credit reserved 4.00 -> debits 0.00 (pending 0.00)  credits 13.00 (pending 4.00)
          #5 seq 9 +0ms t5 credit voided 4.00 -> debits 0.00 (pending 0.00)  credits 13.00 (pending 0.00)
          #6 seq 10 +0ms t6 credit reserved 2.00 -> debits 0.00 (pending 0.00)  credits 13.00 (pending 2.00)
          #7 seq 12 +500ms t6 credit expired 2.00 -> debits 0.00 (pending 0.00)  credits 13.00 (pending 0.00)
    "#]]
    .assert_eq(&out);
    assert_eq!(l.history("c").len(), 1);
    assert_eq!(l.mem.history_of(&"a".into(), 3, 2).iter().map(|r| r.index).collect::<Vec<_>>(), vec![3, 4]);
}

// -------------------------------------------------------------------------------------------
// Journal

// Goal: one journal record per applied command (rejections included, refusals not), seq
// contiguous from 1, chained by hash; the records survive the canonical codec.
#[test]
fn journal_records_every_applied_command() {
    let mut l = Ledger::new();
    l.step("create a, b", accounts(vec![new_account("a", "EUR"), new_account("b", "EUR")]));
    l.step("a -> b 1.00", transfers(vec![posted("t1", "a", "b", "1.00")]));
    l.step("a -> nobody (rejected)", transfers(vec![posted("t2", "a", "nobody", "1.00")]));
    l.step("amount 0 (rejected, not stored)", transfers(vec![posted("t3", "a", "b", "0")]));
    l.step("empty batch (refused)", transfers(vec![]));
    l.caller = String::new();
    l.step("empty caller (refused)", transfers(vec![posted("t4", "a", "b", "1.00")]));
    l.caller = "ops".into();
    l.advance(7);
    l.step("admin event", Command::Admin(AdminEvent::NodeRemoved { node_id: 3 }));
    l.step("expire pending (nothing due)", Command::ExpirePending);
    l.step("bootstrap again (refused)", bootstrap("primary", SiteRole::Active));
    for record in l.mem.journal.clone() {
        let line = format!(
            "#{} +{}ms {} {} {} => {}",
            record.seq,
            record.ledger_time_ms - START_MS,
            record.origin.site,
            record.caller,
            record.command.name(),
            show(&record.outcome)
        );
        l.note(&line);
    }
    expect![[r#"
        create a, b                                  => ok, ok
        a -> b 1.00                                  => ok
        a -> nobody (rejected)                       => credit_account_not_found
        amount 0 (rejected, not stored)              => amount_not_positive
        empty batch (refused)                        => refused: batch has 0 items; it must have between 1 and 500
        empty caller (refused)                       => refused: caller identity is empty or too long
        admin event                                  => recorded
        expire pending (nothing due)                 => expired []
        bootstrap again (refused)                    => refused: site primary is already bootstrapped
        #1 +0ms primary test site => site primary active epoch 1
        #2 +0ms primary test create_accounts => ok, ok
        #3 +0ms primary test create_transfers => ok
        #4 +0ms primary test create_transfers => credit_account_not_found
        #5 +0ms primary test create_transfers => amount_not_positive
        #6 +7ms primary ops admin => recorded
        #7 +7ms primary ops expire_pending => expired []
    "#]]
    .assert_eq(&l.take_log());

    let head = journal::verify_chain(JournalHead::default(), &l.mem.journal).unwrap();
    assert_eq!(head, l.mem.meta.journal);
    assert_eq!(l.mem.journal[0].prev_hash, Hash::GENESIS);
    // A chain can be verified from any known head.
    assert_eq!(journal::verify_chain(l.mem.journal[2].head(), &l.mem.journal[3..]), Ok(head));
    for record in &l.mem.journal {
        let bytes = codec::encode(record);
        let decoded: JournalRecord = codec::decode(&bytes).expect("a record decodes");
        assert_eq!(&decoded, record);
        assert_eq!(decoded.compute_hash(), record.hash);
        assert_eq!(codec::encode(&decoded), bytes, "the encoding is canonical");
    }
}

// Goal: verify_chain finds every kind of damage: an edited field (caller, amount, outcome,
// time) is Tampered at that seq; an edit with a recomputed hash breaks the next link; a
// missing or swapped record is a Gap; a resealed record with an earlier time is TimeWentBack.
#[test]
fn journal_tampering_is_detected() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", DEBITS_LIMITED);
    l.must_transfer(posted("t1", "a", "b", "10.00"));
    assert_eq!(l.try_transfer(posted("t2", "b", "a", "20.00")), "exceeds_credits");
    l.advance(1_000);
    l.must_transfer(posted("t3", "a", "b", "1.00"));
    let good = l.mem.journal.clone();
    assert_eq!(good.len(), 6);
    let verify = |records: &[JournalRecord]| journal::verify_chain(JournalHead::default(), records);
    let tampered_at = |records: &[JournalRecord]| match verify(records) {
        Err(ChainError::Tampered { seq, stored, computed }) => {
            assert_ne!(stored, computed);
            Some(seq)
        }
        _ => None,
    };

    let mut records = good.clone();
    records[3].caller = "mallory".into();
    assert_eq!(tampered_at(&records), Some(4), "caller changed");

    let mut records = good.clone();
    if let Command::CreateTransfers { transfers, .. } = &mut records[3].command {
        transfers[0].amount = dec("1000.00");
    }
    assert_eq!(tampered_at(&records), Some(4), "amount changed");

    let mut records = good.clone();
    if let Command::CreateTransfers { transfers, .. } = &mut records[3].command {
        transfers[0].amount = dec("10.0");
    }
    assert_eq!(tampered_at(&records), Some(4), "amount rewritten at another scale");

    let mut records = good.clone();
    records[4].outcome = Outcome::Items(vec![ItemResult::new(ResultCode::Ok)]);
    assert_eq!(tampered_at(&records), Some(5), "rejection turned into ok");

    let mut records = good.clone();
    records[5].ledger_time_ms += 1;
    assert_eq!(tampered_at(&records), Some(6), "time changed");

    let mut records = good.clone();
    records[1].origin.raft_index += 1;
    assert_eq!(tampered_at(&records), Some(2), "origin changed");

    let mut records = good.clone();
    records[2].hash.0[0] ^= 1;
    assert_eq!(tampered_at(&records), Some(3), "hash changed");

    let mut records = good.clone();
    records[3].caller = "mallory".into();
    records[3].hash = records[3].compute_hash();
    assert_eq!(verify(&records), Err(ChainError::BrokenLink { seq: 5 }), "edit with a recomputed hash");

    let mut records = good.clone();
    records.remove(2);
    assert_eq!(verify(&records), Err(ChainError::Gap { expected_seq: 3, found_seq: 4 }));

    let mut records = good.clone();
    records.swap(2, 3);
    assert_eq!(verify(&records), Err(ChainError::Gap { expected_seq: 3, found_seq: 4 }));

    let mut records = good.clone();
    let r = &records[5];
    records[5] = JournalRecord::seal(
        r.seq,
        r.ledger_time_ms - 2_000,
        r.origin.clone(),
        r.caller.clone(),
        r.command.clone(),
        r.outcome.clone(),
        r.prev_hash,
    );
    assert_eq!(verify(&records), Err(ChainError::TimeWentBack { seq: 6 }));

    assert!(verify(&good).is_ok());
}

// Goal: flipping one byte of a record as stored (its canonical encoding), in the caller or in
// an amount, still decodes but is found by verify_chain as Tampered at that record.
#[test]
fn journal_byte_flip_is_detected() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_transfer(posted("t1", "a", "b", "10.00"));
    l.must_transfer(posted("t2", "a", "b", "20.00"));
    let index = 3; // t1's record, seq 4
    // Amounts are encoded as rust_decimal's 16-byte binary form.
    let ten = Decimal::from_str("10.00").unwrap().serialize();
    let ninety = Decimal::from_str("90.00").unwrap().serialize();
    let flips: [(&[u8], &[u8]); 2] = [(b"test", b"tesu"), (&ten, &ninety)];
    for (needle, replacement) in flips {
        let mut records = l.mem.journal.clone();
        let mut bytes = codec::encode(&records[index]);
        let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the bytes to flip");
        bytes[at..at + needle.len()].copy_from_slice(replacement);
        records[index] = codec::decode(&bytes).expect("a one-byte flip still decodes");
        assert_ne!(records[index], l.mem.journal[index]);
        match journal::verify_chain(JournalHead::default(), &records) {
            Err(ChainError::Tampered { seq, .. }) => assert_eq!(seq, 4),
            other => panic!("flip of {needle:?} gave {other:?}"),
        }
    }
}

// Goal: result codes follow the precedence documented in reject.rs ("within each group the
// codes are ordered by precedence: when several rules fail, the item gets the first one"). A
// post of a pending transfer whose debit account is frozen, asking for more than is pending
// or naming another credit account, fails debit_account_frozen (45) as well as
// post_amount_exceeds_pending (53) or pending_transfer_mismatch (52), so it must get 45.
#[test]
fn post_on_frozen_account_follows_documented_precedence() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    l.must_create_account("c", "EUR", NO_FLAGS);
    l.must_transfer(pending("p", "a", "b", "10.00", None));
    assert_eq!(show(&l.apply(update("a", AccountAction::Freeze))), "ok");
    let too_much = l.try_transfer(post("q1", "p", "10.01"));
    let other_credit = l.try_transfer(with_accounts(post("q2", "p", "0"), "", "c"));
    assert_eq!((too_much.as_str(), other_credit.as_str()), ("debit_account_frozen", "debit_account_frozen"));
}

// -------------------------------------------------------------------------------------------
// Limits and refusals

// Goal: a batch of 0 or more than BATCH_ITEMS_MAX items, an oversize command and a bad caller
// are refused whole: nothing applied, nothing journaled, the ledger clock unmoved.
#[test]
fn batch_limits() {
    let mut l = Ledger::new();
    l.must_create_account("a", "EUR", NO_FLAGS);
    l.must_create_account("b", "EUR", NO_FLAGS);
    let make = |n: usize, reference: usize| -> Vec<NewTransfer> {
        (0..n).map(|i| with_reference(posted(&format!("t{i}"), "a", "b", "0.01"), reference)).collect()
    };
    let book = l.book();
    let head = l.mem.meta.journal;
    l.advance(1_000);
    l.step("0 transfers", transfers(vec![]));
    l.step("0 transfers, atomic", atomic(vec![]));
    l.step("501 transfers", transfers(make(501, 0)));
    l.step("501 transfers, atomic", atomic(make(501, 0)));
    l.step("0 accounts", accounts(vec![]));
    let updates = (0..501)
        .map(|i| AccountUpdate { id: format!("a{i}").as_str().into(), action: AccountAction::Freeze })
        .collect();
    l.step("501 updates", Command::UpdateAccounts(updates));
    l.step("0 updates", Command::UpdateAccounts(vec![]));
    l.step("500 transfers with 128-byte references", transfers(make(500, 128)));
    l.caller = "c".repeat(limits::CALLER_BYTES_MAX + 1);
    l.step("caller of 129 bytes", transfers(make(1, 0)));
    l.caller = String::new();
    l.step("empty caller", transfers(make(1, 0)));
    assert_eq!(l.book(), book);
    assert_eq!(l.mem.meta.journal, head, "nothing journaled, the clock unmoved");

    l.caller = "c".repeat(limits::CALLER_BYTES_MAX);
    let outcome = l.apply(transfers(make(limits::BATCH_ITEMS_MAX, 0)));
    l.note(&format!("500 transfers => {} ok", outcome.items().iter().filter(|i| i.code.is_ok()).count()));
    expect![[r#"
        0 transfers                                  => refused: batch has 0 items; it must have between 1 and 500
        0 transfers, atomic                          => refused: batch has 0 items; it must have between 1 and 500
        501 transfers                                => refused: batch has 501 items; it must have between 1 and 500
        501 transfers, atomic                        => refused: batch has 501 items; it must have between 1 and 500
        0 accounts                                   => refused: batch has 0 items; it must have between 1 and 500
        501 updates                                  => refused: batch has 501 items; it must have between 1 and 500
        0 updates                                    => refused: batch has 0 items; it must have between 1 and 500
        500 transfers with 128-byte references       => refused: batch encodes to 78895 bytes; the limit is 57344
        caller of 129 bytes                          => refused: caller identity is empty or too long
        empty caller                                 => refused: caller identity is empty or too long
        500 transfers => 500 ok
    "#]]
    .assert_eq(&l.take_log());
    assert_eq!(l.balances("b").2, "5.00");
}

// Goal: a site that was never bootstrapped, or is a standby, refuses ledger writes without
// journaling them; bootstrap happens once and is the first journal record.
#[test]
fn site_writability() {
    let mut l = Ledger::uninitialized();
    l.step("create account before bootstrap", accounts(vec![new_account("a", "EUR")]));
    l.step("expire pending before bootstrap", Command::ExpirePending);
    l.step("admin event before bootstrap", Command::Admin(AdminEvent::KeyRotated { key_id: 1 }));
    let epoch_0 = SiteCommand::Bootstrap {
        name: "primary".into(),
        role: SiteRole::Active,
        epoch: 0,
        upstream: vec![],
        dual_control: false,
    };
    l.step("bootstrap with epoch 0", Command::Site(epoch_0));
    let crowded = SiteCommand::Bootstrap {
        name: "primary".into(),
        role: SiteRole::Active,
        epoch: 1,
        upstream: vec!["host:1".into(); ledger_core::site::UPSTREAM_ENDPOINTS_MAX + 1],
        dual_control: false,
    };
    l.step("bootstrap with 17 upstream endpoints", Command::Site(crowded));
    l.step("bootstrap named 'no name'", bootstrap("no name", SiteRole::Active));
    l.step("bootstrap uninitialized", bootstrap("primary", SiteRole::Uninitialized));
    assert!(l.mem.journal.is_empty());
    l.step("bootstrap primary", bootstrap("primary", SiteRole::Active));
    l.step("bootstrap again", bootstrap("primary", SiteRole::Active));
    l.step("create account", accounts(vec![new_account("a", "EUR")]));

    let mut standby = Ledger::uninitialized();
    standby.step("standby: bootstrap dr", bootstrap("dr", SiteRole::Standby));
    standby.step("standby: create account", accounts(vec![new_account("a", "EUR")]));
    standby.step("standby: admin event", Command::Admin(AdminEvent::KeyRotated { key_id: 1 }));
    let standby_log = standby.take_log();
    l.note(standby_log.trim_end());
    expect![[r#"
        create account before bootstrap              => refused: site (not bootstrapped) is uninitialized and takes no writes; the active site is (unknown) at epoch 0
        expire pending before bootstrap              => refused: site (not bootstrapped) is uninitialized and takes no writes; the active site is (unknown) at epoch 0
        admin event before bootstrap                 => refused: site (not bootstrapped) is uninitialized and takes no writes; the active site is (unknown) at epoch 0
        bootstrap with epoch 0                       => refused: bootstrap needs a site name (an id), a role and an epoch >= 1
        bootstrap with 17 upstream endpoints         => refused: too many upstream endpoints
        bootstrap named 'no name'                    => refused: site name "no name" must be a short id
        bootstrap uninitialized                      => refused: bootstrap needs a site name (an id), a role and an epoch >= 1
        bootstrap primary                            => site primary active epoch 1
        bootstrap again                              => refused: site primary is already bootstrapped
        create account                               => ok
        standby: bootstrap dr                        => site dr standby epoch 1
        standby: create account                      => refused: site dr is standby and takes no writes; the active site is (not known yet) at epoch 1
        standby: admin event                         => recorded
    "#]]
    .assert_eq(&l.take_log());
    assert_eq!(l.mem.journal.len(), 2);
    assert!(standby.mem.journal.is_empty());
    let refused = Ledger::uninitialized().apply(accounts(vec![new_account("a", "EUR")]));
    assert_eq!(
        refused,
        Outcome::Refused(Refusal::SiteNotWritable {
            site: "(not bootstrapped)".into(),
            role: "uninitialized".into(),
            active_site: "(unknown)".into(),
            epoch: 0
        })
    );
}

// Goal: check_envelope is the stateless front door shared with the API: it refuses exactly
// what apply refuses before touching state.
#[test]
fn envelope_checks() {
    let envelope = |caller: &str, command: Command| Envelope { caller: caller.into(), command };
    let one = transfers(vec![posted("t", "a", "b", "1.00")]);
    assert_eq!(ledger::check_envelope(&envelope("x", one.clone())), None);
    assert_eq!(ledger::check_envelope(&envelope("", one.clone())), Some(Refusal::CallerInvalid));
    assert_eq!(
        ledger::check_envelope(&envelope("x", transfers(vec![]))),
        Some(Refusal::BatchSize { items: 0, max: limits::BATCH_ITEMS_MAX })
    );
    assert_eq!(ledger::check_envelope(&envelope("x", Command::ExpirePending)), None, "not a batch");
    let big = transfers((0..500).map(|i| with_reference(posted(&format!("t{i}"), "a", "b", "1"), 128)).collect());
    let Some(Refusal::CommandTooLarge { bytes, max }) = ledger::check_envelope(&envelope("x", big.clone())) else {
        panic!("expected CommandTooLarge");
    };
    assert_eq!(bytes, codec::encoded_len(&big));
    assert_eq!(bytes, codec::encode(&big).len());
    assert_eq!(max, limits::COMMAND_BYTES_MAX);
    let caller_max = "c".repeat(limits::CALLER_BYTES_MAX);
    assert_eq!(ledger::check_envelope(&envelope(&caller_max, one)), None);
}
