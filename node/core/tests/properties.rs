//! Properties of the ledger over random command sequences.
//!
//! A scenario is a handful of accounts (two currencies, random balance flags and overdraft
//! limits, some invalid) and a sequence of operations: non-atomic and atomic transfer batches
//! (single-phase, pending with and without timeouts, posts and voids of earlier ids, amounts at
//! random scales including invalid ones), expiry ticks, clock moves (also backwards), account
//! freezes, unfreezes and closes, and replays of earlier batches. The small id space makes
//! replays, conflicts and duplicates common.
//!
//! The harness (`common::Ledger`) already checks, after every command: conservation per
//! currency (posted and pending), balance constraints, kept totals, the journal hash chain,
//! contiguous history rows, the expiry index, and the balances rebuilt from stored transfers.

mod common;

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use common::*;
use ledger_core::Decimal;
use ledger_core::account::AccountAction;
use ledger_core::account::AccountFlags;
use ledger_core::account::NewAccount;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::command::Outcome;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::ledger;
use ledger_core::reject::ResultCode;
use ledger_core::site::SiteRole;
use ledger_core::store::MemStore;
use ledger_core::store::Overlay;
use ledger_core::transfer::NewTransfer;
use proptest::prelude::*;

const CURRENCIES: [&str; 3] = ["EUR", "JPY", "USD"];
/// Transfer ids `t00..t23`: few enough that ids are reused often.
const TRANSFER_IDS: usize = 24;
/// Account picks go up to `a7`; scenarios have 4 to 6 accounts, so some picks do not exist.
const ACCOUNT_PICKS: usize = 8;

#[derive(Clone, Debug)]
struct AccountSpec {
    /// Index into the first two of `CURRENCIES`.
    currency: usize,
    /// 0: none, 1: debits_must_not_exceed_credits, 2: credits_must_not_exceed_debits.
    flags: u8,
    overdraft: Option<Decimal>,
}

#[derive(Clone, Debug)]
enum KindSpec {
    Posted,
    Pending(Option<u64>),
    /// `pending` picks among the ids generated as pending transfers so far when `known`,
    /// among all ids otherwise.
    Post {
        pending: usize,
        known: bool,
        full: bool,
    },
    Void {
        pending: usize,
        known: bool,
        exact: bool,
    },
}

#[derive(Clone, Debug)]
struct TransferSpec {
    id: usize,
    debit: usize,
    credit: usize,
    amount: Decimal,
    currency: Option<usize>,
    kind: KindSpec,
    /// For posts and voids: name the accounts (possibly the wrong ones).
    name_accounts: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Transfers {
        items: Vec<TransferSpec>,
        atomic: bool,
    },
    Expire,
    /// Moves the leader's clock, possibly backwards (the ledger clock must not follow).
    Clock(i64),
    Update(usize, AccountAction),
    /// Replays the n-th earlier transfer batch (modulo their number).
    Replay(usize),
    /// Resubmits the n-th earlier transfer batch with the items in `fresh` (a bit mask) under
    /// new ids, as a client retrying the failed part of a batch does.
    Retry(usize, u8),
}

/// One command as the leader proposes it.
#[derive(Clone, Debug)]
struct Step {
    command: Command,
    stamp_ms: u64,
    /// The step this one replays.
    replay_of: Option<usize>,
}

fn amount() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        8 => (1i64..3_000, 0u32..=2).prop_map(|(m, s)| Decimal::new(m, s)),
        1 => (1i64..3_000, 3u32..=4).prop_map(|(m, s)| Decimal::new(m, s)),
        1 => (-300i64..=0, 0u32..=2).prop_map(|(m, s)| Decimal::new(m, s)),
    ]
}

fn account_spec() -> impl Strategy<Value = AccountSpec> {
    let overdraft = prop_oneof![
        3 => Just(None),
        1 => (0i64..200_000, 0u32..=2).prop_map(|(m, s)| Some(Decimal::new(m, s))),
    ];
    let currency = prop_oneof![3 => Just(0usize), 1 => Just(1usize)];
    (currency, 0u8..3, overdraft).prop_map(|(currency, flags, overdraft)| {
        // Mostly valid: an overdraft on a non-deposit account only now and then.
        let overdraft = if flags == 1 || overdraft.is_some_and(|d| d.is_zero()) { overdraft } else { None };
        AccountSpec { currency, flags, overdraft }
    })
}

fn kind() -> impl Strategy<Value = KindSpec> {
    prop_oneof![
        4 => Just(KindSpec::Posted),
        3 => prop::option::of(1u64..4_000).prop_map(KindSpec::Pending),
        1 => prop_oneof![Just(0u64), Just(400 * 86_400_000)].prop_map(|t| KindSpec::Pending(Some(t))),
        3 => (any::<usize>(), prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(pending, known, full)| KindSpec::Post { pending, known, full }),
        2 => (any::<usize>(), prop::bool::weighted(0.8), prop::bool::weighted(0.2))
            .prop_map(|(pending, known, exact)| KindSpec::Void { pending, known, exact }),
    ]
}

/// Mostly accounts every scenario has (`a0..a3`), sometimes one it may lack.
fn account_pick() -> impl Strategy<Value = usize> {
    prop_oneof![9 => 0usize..4, 1 => 4..ACCOUNT_PICKS]
}

fn transfer_spec() -> impl Strategy<Value = TransferSpec> {
    (
        0..TRANSFER_IDS,
        account_pick(),
        account_pick(),
        amount(),
        prop_oneof![6 => Just(None), 1 => (0usize..3).prop_map(Some)],
        kind(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(id, debit, credit, amount, currency, kind, name_accounts)| TransferSpec {
            id,
            debit,
            credit,
            amount,
            currency,
            kind,
            name_accounts,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let action = prop_oneof![Just(AccountAction::Freeze), Just(AccountAction::Unfreeze), Just(AccountAction::Close)];
    prop_oneof![
        8 => (prop::collection::vec(transfer_spec(), 1..6), prop::bool::weighted(0.4))
            .prop_map(|(items, atomic)| Op::Transfers { items, atomic }),
        2 => Just(Op::Expire),
        2 => (-2_000i64..4_000).prop_map(Op::Clock),
        1 => (0..ACCOUNT_PICKS, action).prop_map(|(account, action)| Op::Update(account, action)),
        2 => any::<usize>().prop_map(Op::Replay),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(n, fresh)| Op::Retry(n, fresh)),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<AccountSpec>, Vec<Op>)> {
    (prop::collection::vec(account_spec(), 4..=6), prop::collection::vec(op(), 1..50))
}

fn account_id(index: usize) -> String {
    format!("a{index}")
}

fn transfer_id(index: usize) -> String {
    format!("t{index:02}")
}

/// Builds a transfer; `pendings` are the ids generated as pending transfers so far.
fn new_transfer(spec: &TransferSpec, pendings: &mut Vec<String>) -> NewTransfer {
    let id = transfer_id(spec.id);
    let (debit, credit) = (account_id(spec.debit), account_id(spec.credit));
    let pick = |pending: usize, known: bool| match known && !pendings.is_empty() {
        true => pendings[pending % pendings.len()].clone(),
        false => transfer_id(pending % TRANSFER_IDS),
    };
    let mut t = match &spec.kind {
        KindSpec::Posted => posted(&id, &debit, &credit, "1"),
        KindSpec::Pending(timeout_ms) => pending(&id, &debit, &credit, "1", *timeout_ms),
        KindSpec::Post { pending, known, .. } => post(&id, &pick(*pending, *known), "1"),
        KindSpec::Void { pending, known, .. } => void(&id, &pick(*pending, *known)),
    };
    if matches!(spec.kind, KindSpec::Pending(_)) {
        pendings.push(id);
    }
    t.amount = match &spec.kind {
        KindSpec::Post { full: true, .. } | KindSpec::Void { exact: false, .. } => Decimal::ZERO,
        _ => spec.amount,
    };
    if spec.name_accounts && matches!(spec.kind, KindSpec::Post { .. } | KindSpec::Void { .. }) {
        t.debit_account_id = AccountId::new(debit);
        t.credit_account_id = AccountId::new(credit);
    }
    t.currency = spec.currency.map(|c| CURRENCIES[c].to_string());
    t
}

fn new_account_of(index: usize, spec: &AccountSpec) -> NewAccount {
    let flags = AccountFlags {
        debits_must_not_exceed_credits: spec.flags == 1,
        credits_must_not_exceed_debits: spec.flags == 2,
    };
    NewAccount { flags, overdraft_limit: spec.overdraft, ..new_account(&account_id(index), CURRENCIES[spec.currency]) }
}

/// Turns a scenario into the commands the leader would propose, with their time stamps.
fn compile(account_specs: &[AccountSpec], ops: &[Op]) -> Vec<Step> {
    let mut stamp_ms = START_MS;
    let create = accounts(account_specs.iter().enumerate().map(|(i, spec)| new_account_of(i, spec)).collect());
    let mut steps = vec![Step { command: create, stamp_ms, replay_of: None }];
    let mut batches: Vec<usize> = Vec::new();
    let mut pendings: Vec<String> = Vec::new();
    for op in ops {
        let (command, replay_of) = match op {
            Op::Transfers { items, atomic } => {
                let items = items.iter().map(|spec| new_transfer(spec, &mut pendings)).collect();
                batches.push(steps.len());
                (Command::CreateTransfers { transfers: items, atomic: *atomic }, None)
            }
            Op::Expire => (Command::ExpirePending, None),
            Op::Clock(delta) => {
                stamp_ms = stamp_ms.saturating_add_signed(*delta);
                continue;
            }
            Op::Update(account, action) => (update(&account_id(*account), *action), None),
            Op::Replay(n) => {
                let Some(&original) = batches.get(n % batches.len().max(1)) else {
                    continue;
                };
                (steps[original].command.clone(), Some(original))
            }
            Op::Retry(n, fresh) => {
                let Some(&original) = batches.get(n % batches.len().max(1)) else {
                    continue;
                };
                let Command::CreateTransfers { transfers, atomic } = &steps[original].command else {
                    unreachable!("batches are transfer batches")
                };
                let mut transfers = transfers.clone();
                for (i, t) in transfers.iter_mut().enumerate() {
                    if fresh & (1 << (i % 8)) != 0 {
                        t.id = TransferId::new(format!("r{}-{i}", steps.len()));
                    }
                }
                batches.push(steps.len());
                (Command::CreateTransfers { transfers, atomic: *atomic }, None)
            }
        };
        steps.push(Step { command, stamp_ms, replay_of });
    }
    steps
}

/// The stateless result of each item as the ledger computes it: its own checks, then the
/// first occurrence of each id among the well-formed items.
fn stateless_results(transfers: &[NewTransfer]) -> Vec<Result<(), ResultCode>> {
    let mut seen = BTreeSet::new();
    transfers
        .iter()
        .map(|t| {
            ledger::validate_transfer(t)?;
            if seen.insert(t.id.clone()) { Ok(()) } else { Err(ResultCode::IdDuplicateInBatch) }
        })
        .collect()
}

/// What one transfer batch's results must say about ids that existed before it, and what it
/// must store for ids that did not.
fn check_batch_items(before: &Book, after: &Book, transfers: &[NewTransfer], atomic: bool, outcome: &Outcome) {
    let items = outcome.items();
    assert_eq!(items.len(), transfers.len());
    let stateless = stateless_results(transfers);
    let stateless_failure = atomic && stateless.iter().any(|r| r.is_err());
    if stateless_failure {
        assert_eq!(after, before, "an atomic batch with a malformed item changes nothing");
    }
    // In an atomic batch only the first malformed item gets its own code.
    let first_bad = stateless.iter().position(|r| r.is_err());
    for (index, ((t, check), item)) in transfers.iter().zip(&stateless).zip(items).enumerate() {
        let ctx = || format!("{} in {}", t.id, show(outcome));
        if stateless_failure {
            // Refused before any lookup (`ledger::atomic_refused_up_front`, the rule the API
            // answers too): the malformed item gets its own code, every other item
            // linked_event_failed, even an id that existed before.
            let expected = if Some(index) == first_bad {
                (check.unwrap_err(), false)
            } else {
                (ResultCode::LinkedEventFailed, false)
            };
            assert_eq!((item.code, item.replayed), expected, "{}", ctx());
            continue;
        }
        if let Err(code) = check {
            assert_eq!((item.code, item.replayed), (*code, false), "stateless result of {}", ctx());
            continue;
        }
        match before.transfers.get(&t.id) {
            Some(existing) if existing.request == *t => {
                assert!(item.replayed && item.code == existing.result, "replay of {}", ctx());
            }
            Some(_) => {
                let ok = item.code == ResultCode::IdConflict || (atomic && item.code == ResultCode::LinkedEventFailed);
                assert!(ok && !item.replayed, "reuse of {}", ctx());
            }
            None => {
                let stored = after.transfers.get(&t.id).unwrap_or_else(|| panic!("{} not stored", ctx()));
                assert_eq!(stored.request, *t, "{}", ctx());
                assert_eq!((stored.result, item.replayed), (item.code, false), "{}", ctx());
            }
        }
    }
}

/// An atomic batch either applied every item or moved nothing.
fn check_atomic(before: &Book, after: &Book, outcome: &Outcome) {
    let items = outcome.items();
    if items.iter().all(|i| i.code.is_ok()) {
        return;
    }
    assert_eq!(after.accounts, before.accounts, "failed atomic batch {} moved money", show(outcome));
    assert_eq!(after.history, before.history);
    assert_eq!(after.expiries, before.expiries);
    assert_eq!(after.totals, before.totals);
    for (id, t) in &after.transfers {
        match before.transfers.get(id) {
            Some(old) => assert_eq!(old, t, "failed atomic batch changed {id}"),
            None => assert!(!t.result.is_ok(), "failed atomic batch stored {id} as applied"),
        }
    }
}

/// A replay changes nothing but the journal, and answers each item as before: replayed, or
/// the same code. One exception: an atomic batch refused for a malformed item stored nothing,
/// so an id it named may have been taken by another body since (`id_conflict` on replay).
fn check_replay(
    before: &Book,
    after: &Book,
    transfers: &[NewTransfer],
    atomic: bool,
    original: &Outcome,
    again: &Outcome,
) {
    assert_eq!(after, before, "a replayed batch changed the book");
    assert_eq!(original.items().len(), again.items().len());
    let stored_nothing = atomic && stateless_results(transfers).iter().any(|r| r.is_err());
    for (first, second) in original.items().iter().zip(again.items()) {
        let taken_since =
            stored_nothing && first.code == ResultCode::LinkedEventFailed && second.code == ResultCode::IdConflict;
        assert!(
            second.replayed || second.code == first.code || taken_since,
            "replay answered {} where the original answered {}",
            show(again),
            show(original)
        );
    }
}

/// Runs `steps` on a fresh harness ledger; `on_step` sees the book before and after each.
fn drive(
    steps: &[Step],
    mut on_step: impl FnMut(&Ledger, &Step, &Book, &Outcome, &[Outcome]),
) -> (Ledger, Vec<Outcome>) {
    let mut l = Ledger::new();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(steps.len());
    for step in steps {
        let before = l.book();
        let outcome = l.apply_stamped(step.command.clone(), step.stamp_ms);
        on_step(&l, step, &before, &outcome, &outcomes);
        outcomes.push(outcome);
    }
    (l, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    // Goal: random command sequences never break an invariant (checked by the harness after
    // every step), every item's result agrees with the state before it (replays, conflicts,
    // new ids stored with their result), atomic batches are all-or-nothing, and replaying an
    // earlier batch changes nothing.
    #[test]
    fn random_commands_keep_every_invariant((account_specs, ops) in scenario()) {
        let steps = compile(&account_specs, &ops);
        drive(&steps, |l, step, before, outcome, earlier| {
            let after = l.book();
            if let Command::CreateTransfers { transfers, atomic } = &step.command {
                assert!(!outcome.is_refused());
                check_batch_items(before, &after, transfers, *atomic, outcome);
                if *atomic {
                    check_atomic(before, &after, outcome);
                }
                if let Some(original) = step.replay_of {
                    check_replay(before, &after, transfers, *atomic, &earlier[original], outcome);
                }
            }
            if let Outcome::Expired(ids) = outcome {
                for id in ids {
                    let t = &after.transfers[id];
                    assert!(t.expires_at_ms.is_some_and(|at| at <= l.ledger_time_ms()));
                    assert_eq!(before.transfers[id].state, ledger_core::transfer::TransferState::Pending);
                }
            }
        });
    }

    // Goal: at the end of a random sequence, replaying every earlier transfer batch in turn
    // changes no account, transfer, expiry or history row; each adds one journal record whose
    // items are replayed or carry the original codes.
    #[test]
    fn replaying_any_earlier_batch_changes_nothing((account_specs, ops) in scenario()) {
        let steps = compile(&account_specs, &ops);
        let (mut l, outcomes) = drive(&steps, |_, _, _, _, _| {});
        for (index, step) in steps.iter().enumerate() {
            let Command::CreateTransfers { transfers, atomic } = &step.command else { continue };
            let before = l.book();
            let seq = l.mem.meta.journal.seq;
            let again = l.apply(step.command.clone());
            assert_eq!(l.mem.meta.journal.seq, seq + 1);
            check_replay(&before, &l.book(), transfers, *atomic, &outcomes[index], &again);
        }
    }

    // Goal: the ledger is a deterministic function of its commands: a second store fed the same
    // commands, committed in groups through one overlay as the node's group commit does,
    // reaches the same outcomes, journal, head and book.
    #[test]
    fn same_commands_same_journal_head(
        (account_specs, ops) in scenario(),
        groups in prop::collection::vec(1usize..6, 1..40),
    ) {
        let steps = compile(&account_specs, &ops);
        let (l, outcomes) = drive(&steps, |_, _, _, _, _| {});

        let mut mem = MemStore::new();
        let envelope = |command: Command| Envelope { caller: "test".into(), command };
        let mut all: Vec<(Envelope, u64)> = vec![(envelope(bootstrap("primary", SiteRole::Active)), START_MS)];
        all.extend(steps.iter().map(|s| (envelope(s.command.clone()), s.stamp_ms)));
        let mut grouped_outcomes = Vec::new();
        let mut next = 0;
        let mut group_sizes = groups.iter().cycle();
        while next < all.len() {
            let size = *group_sizes.next().unwrap();
            let mut overlay = Overlay::new(&mem);
            for (i, (envelope, stamp_ms)) in all.iter().enumerate().skip(next).take(size) {
                grouped_outcomes.push(ledger::apply(&mut overlay, envelope, *stamp_ms, i as u64 + 1));
            }
            let changes = overlay.into_changes();
            mem.commit(changes);
            next += size;
        }
        check_store(&mem);
        assert_eq!(&grouped_outcomes[1..], &outcomes[..]);
        assert_eq!(mem.meta.journal, l.mem.meta.journal);
        assert_eq!(mem.journal, l.mem.journal);
        assert_eq!(mem.accounts, l.mem.accounts);
        assert_eq!(mem.transfers, l.mem.transfers);
        assert_eq!(mem.history, l.mem.history);
        assert_eq!(mem.expiries, l.mem.expiries);
        assert_eq!(mem.totals, l.mem.totals);
    }

    // Goal: a transfer id is an idempotency key: once stored, its request and result never
    // change (the first stored body wins), it is never removed, and later ids never alias it.
    #[test]
    fn transfer_ids_are_idempotency_keys((account_specs, ops) in scenario()) {
        let steps = compile(&account_specs, &ops);
        let mut first: BTreeMap<TransferId, (NewTransfer, ResultCode)> = BTreeMap::new();
        drive(&steps, |l, step, _, _, _| {
            for (id, (request, result)) in &first {
                let stored = l.mem.transfers.get(id).unwrap_or_else(|| panic!("{id} was removed"));
                assert_eq!(&stored.request, request, "{id}: the first stored body is kept");
                assert_eq!(stored.result, *result, "{id}: the stored result never changes");
            }
            for (id, stored) in &l.mem.transfers {
                assert_eq!(*id, stored.request.id);
                if !first.contains_key(id) {
                    // A newly stored id comes from this step's batch, as its first well-formed item.
                    let Command::CreateTransfers { transfers, .. } = &step.command else {
                        panic!("{id} stored by {}", step.command.name());
                    };
                    let stateless = stateless_results(transfers);
                    let origin = transfers.iter().zip(&stateless).find(|(t, r)| t.id == *id && r.is_ok());
                    assert_eq!(origin.map(|(t, _)| t), Some(&stored.request), "{id}");
                    first.insert(id.clone(), (stored.request.clone(), stored.result));
                }
            }
            assert_eq!(first.len(), l.mem.transfers.len());
        });
    }
}

// Goal: the generators reach the interesting rules (not a property; a guard that the
// properties above are not vacuous). Runs a fixed number of scenarios and counts result codes.
#[test]
fn generators_cover_the_rules() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeSet<ResultCode> = BTreeSet::new();
    let mut replays = 0;
    let mut expired = 0;
    for _ in 0..64 {
        let (account_specs, ops) = scenario().new_tree(&mut runner).unwrap().current();
        let steps = compile(&account_specs, &ops);
        let (_, outcomes) = drive(&steps, |_, _, _, _, _| {});
        for outcome in &outcomes {
            for item in outcome.items() {
                seen.insert(item.code);
                replays += usize::from(item.replayed);
            }
            if let Outcome::Expired(ids) = outcome {
                expired += ids.len();
            }
        }
    }
    let wanted = [
        ResultCode::Ok,
        ResultCode::LinkedEventFailed,
        ResultCode::IdConflict,
        ResultCode::IdDuplicateInBatch,
        ResultCode::AccountsMustBeDifferent,
        ResultCode::AmountNotPositive,
        ResultCode::AmountTooPrecise,
        ResultCode::TimeoutInvalid,
        ResultCode::DebitAccountNotFound,
        ResultCode::CreditAccountNotFound,
        ResultCode::CurrencyMismatch,
        ResultCode::PendingTransferNotFound,
        ResultCode::PendingTransferNotPending,
        ResultCode::PendingTransferAlreadyPosted,
        ResultCode::PendingTransferMismatch,
        ResultCode::PostAmountExceedsPending,
        ResultCode::ExceedsCredits,
        ResultCode::ExceedsDebits,
    ];
    let missing: Vec<_> = wanted.iter().filter(|c| !seen.contains(c)).map(|c| c.name()).collect();
    assert!(missing.is_empty(), "generators never produced {missing:?}; saw {seen:?}");
    assert!(replays > 0 && expired > 0, "replays {replays}, expired {expired}");
}
