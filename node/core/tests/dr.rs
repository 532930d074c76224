//! Disaster recovery as named scenarios: a standby site re-applies the active site's journal
//! records and must reproduce each one bit for bit; site operations (fence, promote, demote,
//! resync, epoch fencing, dual control) move the active role between sites.
//!
//! Each test opens with its goal. A [`Site`] is one Raft group's ledger in memory with its own
//! leader clock. After every command and every shipped record it checks every ledger
//! invariant (via `common::check_store`, which also verifies the journal hash chain), the site
//! log hash chain, and the recording rule: every site operation and admin event is a site log
//! entry, and also a journal record when the site was writable before it or is writable after
//! it. Transcripts are `expect!` snapshots, each checked by hand against these rules (a
//! snapshot must never record a bug; the bugs found are the tests at the end).

mod common;

use std::fmt::Write as _;

use common::*;
use expect_test::expect;
use ledger_core::account::AccountAction;
use ledger_core::account::NewAccount;
use ledger_core::command::AdminEvent;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::command::ItemResult;
use ledger_core::command::Outcome;
use ledger_core::command::Refusal;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::journal;
use ledger_core::journal::Hash;
use ledger_core::journal::JournalHead;
use ledger_core::journal::JournalRecord;
use ledger_core::journal::SiteEvent;
use ledger_core::journal::SiteLogEntry;
use ledger_core::ledger;
use ledger_core::reject::ResultCode;
use ledger_core::site::APPROVAL_WINDOW_MS;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_core::site::SiteState;
use ledger_core::site_ops;
use ledger_core::site_ops::Shipped;
use ledger_core::store::MemStore;
use ledger_core::store::Overlay;
use ledger_core::transfer::TransferState;

// -------------------------------------------------------------------------------------------
// Harness

/// The caller the state machine uses for the halts it logs itself.
const SHIPPER: &str = "journal-shipper";

/// One site: a Raft group's ledger in memory, fed one command (or one shipped batch) per
/// overlay, with its leader's clock under the test's control.
#[derive(Clone)]
struct Site {
    mem: MemStore,
    /// The time the leader stamps the next command with.
    now_ms: u64,
    raft_index: u64,
}

/// What two sites that hold the same book have in common: everything but the site state and
/// the site log.
#[derive(Clone, Debug, PartialEq)]
struct LedgerBook {
    accounts: Vec<ledger_core::account::Account>,
    transfers: Vec<ledger_core::transfer::Transfer>,
    expiries: Vec<ledger_core::store::Expiry>,
    history: Vec<((AccountId, u64), ledger_core::transfer::HistoryEntry)>,
    totals: Vec<(ledger_core::money::Currency, ledger_core::store::CurrencyTotals)>,
    journal: Vec<JournalRecord>,
    head: JournalHead,
}

/// Everything a site holds, to show that something changed nothing.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    book: LedgerBook,
    site_log: Vec<SiteLogEntry>,
    meta: ledger_core::store::LedgerMeta,
}

fn endpoint(site: &str) -> String {
    format!("{site}.bank.example:7100")
}

impl Site {
    fn uninitialized() -> Site {
        Site { mem: MemStore::new(), now_ms: START_MS, raft_index: 0 }
    }

    /// A site bootstrapped at epoch 1; a standby ships from `primary`.
    fn bootstrapped(name: &str, role: SiteRole, dual_control: bool) -> Site {
        let mut site = Site::uninitialized();
        let upstream = if role == SiteRole::Standby { vec![endpoint("primary")] } else { Vec::new() };
        let command = SiteCommand::Bootstrap { name: name.into(), role, epoch: 1, upstream, dual_control };
        let outcome = site.apply("ops", Command::Site(command));
        assert!(matches!(outcome, Outcome::Site(_)), "bootstrap of {name}: {}", describe(&outcome));
        site
    }

    fn active(name: &str) -> Site {
        Site::bootstrapped(name, SiteRole::Active, false)
    }

    fn standby(name: &str) -> Site {
        Site::bootstrapped(name, SiteRole::Standby, false)
    }

    fn site(&self) -> &SiteState {
        &self.mem.meta.site
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    fn head(&self) -> JournalHead {
        self.mem.meta.journal
    }

    fn records(&self) -> Vec<JournalRecord> {
        self.mem.journal.clone()
    }

    /// The records from `seq` on.
    fn records_from(&self, seq: u64) -> Vec<JournalRecord> {
        self.mem.journal[(seq - 1) as usize..].to_vec()
    }

    fn record(&self, seq: u64) -> JournalRecord {
        self.mem.journal[(seq - 1) as usize].clone()
    }

    fn book(&self) -> LedgerBook {
        LedgerBook {
            accounts: self.mem.accounts.values().cloned().collect(),
            transfers: self.mem.transfers.values().cloned().collect(),
            expiries: self.mem.expiries.iter().cloned().collect(),
            history: self.mem.history.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            totals: self.mem.totals.iter().map(|(k, v)| (*k, *v)).collect(),
            journal: self.mem.journal.clone(),
            head: self.mem.meta.journal,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot { book: self.book(), site_log: self.mem.site_log.clone(), meta: self.mem.meta.clone() }
    }

    /// Applies `command` from `caller` stamped with the leader's clock, commits it, and checks
    /// the invariants and the recording rule.
    fn apply(&mut self, caller: &str, command: Command) -> Outcome {
        self.raft_index += 1;
        let envelope = Envelope { caller: caller.into(), command };
        let before = self.snapshot();
        let mut overlay = Overlay::new(&self.mem);
        let outcome = ledger::apply(&mut overlay, &envelope, self.now_ms, self.raft_index);
        let changes = overlay.into_changes();
        let refused = outcome.is_refused();
        if refused {
            assert!(changes.is_empty(), "a refused command wrote {changes:?}");
        }
        self.mem.commit(changes);
        self.check();

        let time = before.meta.clock_ms().max(self.now_ms);
        let site_or_admin = matches!(envelope.command, Command::Site(_) | Command::Admin(_));
        let resync = matches!(envelope.command, Command::Site(SiteCommand::Resync { .. }));
        let after = self.mem.meta.clone();
        let journaled = !refused && (!site_or_admin || before.meta.site.writable() || after.site.writable());
        if resync && !refused {
            // A resync discards the journal; the scenarios check what it leaves.
        } else if journaled {
            assert_eq!(self.mem.journal.len(), before.book.journal.len() + 1, "one record for {envelope:?}");
            let record = self.mem.journal.last().expect("just appended");
            assert_eq!(record.seq, before.meta.journal.seq + 1);
            assert_eq!(record.prev_hash, before.meta.journal.hash);
            assert_eq!(record.caller, envelope.caller);
            assert_eq!(record.command, envelope.command);
            assert_eq!(record.outcome, outcome);
            assert_eq!(record.ledger_time_ms, time);
            assert_eq!(record.origin.site, after.site.name);
            assert_eq!(record.origin.epoch, after.site.epoch);
            assert_eq!(record.origin.raft_index, self.raft_index);
        } else {
            assert_eq!(self.mem.journal, before.book.journal, "{envelope:?} is not journaled");
            assert_eq!(self.mem.meta.journal, before.meta.journal);
        }
        if site_or_admin && !refused {
            assert_eq!(self.mem.site_log.len(), before.site_log.len() + 1, "one site log entry per site op");
            let entry = self.mem.site_log.last().expect("just appended");
            let event = match &envelope.command {
                Command::Site(command) => SiteEvent::Site(command.clone()),
                Command::Admin(event) => SiteEvent::Admin(event.clone()),
                _ => unreachable!(),
            };
            assert_eq!(entry.event, event);
            assert_eq!(entry.caller, envelope.caller);
            assert_eq!(entry.ledger_time_ms, time);
            assert_eq!(entry.site, after.site, "the entry holds the site after the event");
            if !resync {
                let journal_seq = if journaled { after.journal.seq } else { 0 };
                assert_eq!(entry.journal_seq, journal_seq, "site log entry of {envelope:?}");
            }
        } else {
            assert_eq!(self.mem.site_log, before.site_log, "only site ops and admin events are site-logged");
        }
        if !site_or_admin && !refused {
            assert_eq!(after.site, before.meta.site, "a ledger command leaves the site alone");
        }
        outcome
    }

    /// Ships `records` one per overlay (one per Raft entry), committing each.
    fn ship(&mut self, records: &[JournalRecord]) -> Vec<Shipped> {
        records.iter().map(|record| self.ship_one(record)).collect()
    }

    fn ship_one(&mut self, record: &JournalRecord) -> Shipped {
        let before = self.snapshot();
        let mut overlay = Overlay::new(&self.mem);
        let shipped = site_ops::ship(&mut overlay, record);
        let changes = overlay.into_changes();
        self.mem.commit(changes);
        self.check();
        match &shipped {
            Shipped::Applied => {
                assert_eq!(self.mem.journal.len(), before.book.journal.len() + 1);
                assert_eq!(self.mem.journal.last(), Some(record), "the shipped record is held bit for bit");
                assert_eq!(self.mem.site_log, before.site_log, "shipping logs nothing when it works");
                let watermark = &self.site().watermark;
                assert_eq!((watermark.seq, watermark.ledger_time_ms), (record.seq, record.ledger_time_ms));
            }
            Shipped::Duplicate | Shipped::Ignored(_) => {
                assert_eq!(self.snapshot(), before, "a {shipped:?} record changes nothing");
            }
            Shipped::Halted(reason) => {
                assert_eq!(self.book(), before.book, "a halt changes no ledger state");
                assert_eq!(self.site().watermark.halted.as_ref(), Some(reason));
                assert_eq!(self.mem.site_log.len(), before.site_log.len() + 1);
                let entry = self.mem.site_log.last().expect("just appended");
                assert_eq!(entry.event, SiteEvent::Admin(AdminEvent::ShippingHalted { reason: reason.clone() }));
                assert_eq!(entry.caller, SHIPPER);
                assert_eq!(entry.journal_seq, 0);
                assert_eq!(entry.site, *self.site());
                assert_eq!(entry.ledger_time_ms, before.meta.clock_ms());
            }
        }
        shipped
    }

    /// Ships `records` in one overlay (one Raft entry carrying several records).
    fn ship_in_one_overlay(&mut self, records: &[JournalRecord]) -> Vec<Shipped> {
        let journal_before = self.mem.journal.len();
        let mut overlay = Overlay::new(&self.mem);
        let results: Vec<Shipped> = records.iter().map(|record| site_ops::ship(&mut overlay, record)).collect();
        let changes = overlay.into_changes();
        self.mem.commit(changes);
        self.check();
        let applied: Vec<&JournalRecord> =
            records.iter().zip(&results).filter(|(_, r)| **r == Shipped::Applied).map(|(record, _)| record).collect();
        assert_eq!(self.mem.journal[journal_before..].iter().collect::<Vec<_>>(), applied);
        results
    }

    /// Every ledger invariant, the journal chain, and the site log chain.
    fn check(&self) {
        check_store(&self.mem);
        let head = journal::verify_chain(JournalHead::default(), &self.mem.journal).expect("journal chain");
        assert_eq!(head, self.mem.meta.journal, "the journal head in meta is the chain's last record");
        let mut head = JournalHead::default();
        for (i, entry) in self.mem.site_log.iter().enumerate() {
            assert_eq!(entry.seq, i as u64 + 1, "site log seqs are contiguous from 1");
            assert_eq!(entry.prev_hash, head.hash, "site log entry {} links to the previous one", entry.seq);
            assert_eq!(entry.compute_hash(), entry.hash, "site log entry {} matches its hash", entry.seq);
            assert!(entry.ledger_time_ms >= head.ledger_time_ms, "site log time never goes back");
            head = entry.head();
        }
        assert_eq!(self.mem.meta.site_log, head, "the site log head in meta is the last entry's");
        // Entries since the last resync point at the journal records of the same events.
        let since = self
            .mem
            .site_log
            .iter()
            .rposition(|e| matches!(e.event, SiteEvent::Site(SiteCommand::Resync { .. })))
            .unwrap_or(0);
        for entry in &self.mem.site_log[since..] {
            if entry.journal_seq == 0 {
                continue;
            }
            let record = self.mem.journal.get(entry.journal_seq as usize - 1).expect("journaled site op");
            let command = match &entry.event {
                SiteEvent::Site(command) => Command::Site(command.clone()),
                SiteEvent::Admin(event) => Command::Admin(event.clone()),
            };
            assert_eq!((&record.command, &record.caller), (&command, &entry.caller), "entry {}", entry.seq);
            assert_eq!(record.ledger_time_ms, entry.ledger_time_ms);
        }
    }
}

/// Asserts that `follower` holds the same book and journal as `leader`, bit for bit.
fn assert_same_book(follower: &Site, leader: &Site) {
    let (f, l) = (follower.book(), leader.book());
    assert_eq!(f.journal, l.journal, "journals");
    assert_eq!(f.head, l.head, "journal heads");
    assert_eq!(f.accounts, l.accounts, "accounts");
    assert_eq!(f.transfers, l.transfers, "transfers");
    assert_eq!(f.expiries, l.expiries, "expiries");
    assert_eq!(f.history, l.history, "history");
    assert_eq!(f.totals, l.totals, "totals");
    assert_eq!(ledger::next_expiry(&follower.mem), ledger::next_expiry(&leader.mem));
}

// --- Site commands ---------------------------------------------------------------------------

fn fence() -> Command {
    Command::Site(SiteCommand::Fence)
}

fn unfence() -> Command {
    Command::Site(SiteCommand::Unfence)
}

fn promote(epoch: u64, forced: bool, request_id: &str) -> Command {
    Command::Site(SiteCommand::Promote { epoch, forced, request_id: request_id.into() })
}

fn demote(active_site: &str, epoch: u64, request_id: &str) -> Command {
    Command::Site(SiteCommand::Demote {
        active_site: active_site.into(),
        epoch,
        upstream: vec![endpoint(active_site)],
        request_id: request_id.into(),
    })
}

fn resync(active_site: &str, epoch: u64, request_id: &str) -> Command {
    Command::Site(SiteCommand::Resync {
        active_site: active_site.into(),
        epoch,
        upstream: vec![endpoint(active_site)],
        request_id: request_id.into(),
    })
}

fn observe(active_site: &str, epoch: u64) -> Command {
    Command::Site(SiteCommand::ObserveEpoch { active_site: active_site.into(), epoch })
}

fn approve(request_id: &str, action: &str) -> Command {
    Command::Site(SiteCommand::Approve { request_id: request_id.into(), action: action.into() })
}

fn rotate_key(key_id: u32, request_id: &str) -> Command {
    Command::Site(SiteCommand::RotateKey { key_id, request_id: request_id.into() })
}

fn admin_node_removed(node_id: u64) -> Command {
    Command::Admin(AdminEvent::NodeRemoved { node_id })
}

// --- Printing --------------------------------------------------------------------------------

/// A site as one line: name, role, fence, own epoch, the active site it knows of, and the
/// data key and halt when set.
fn site_line(site: &SiteState) -> String {
    let mut line = format!("{} {}", site.name, site.role.name());
    if site.fenced {
        line.push_str(" fenced");
    }
    write!(line, " epoch {}, active {}@{}", site.epoch, site.active_site, site.active_epoch).unwrap();
    if site.data_key_id != 0 {
        write!(line, ", data key {}", site.data_key_id).unwrap();
    }
    if site.watermark.halted.is_some() {
        line.push_str(", HALTED");
    }
    line
}

/// An outcome as one line; a site outcome shows the site after the operation.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Site(site) => site_line(site),
        other => show(other),
    }
}

/// Ship results as runs: `applied x3, HALTED (reason), ignored (reason)`.
fn shipped_line(results: &[Shipped]) -> String {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for result in results {
        let text = match result {
            Shipped::Applied => "applied".to_string(),
            Shipped::Duplicate => "duplicate".to_string(),
            Shipped::Ignored(reason) => format!("ignored ({reason})"),
            Shipped::Halted(reason) => format!("HALTED ({reason})"),
        };
        match runs.last_mut() {
            Some((last, n)) if *last == text => *n += 1,
            _ => runs.push((text, 1)),
        }
    }
    runs.into_iter().map(|(text, n)| if n == 1 { text } else { format!("{text} x{n}") }).collect::<Vec<_>>().join(", ")
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Site(site) => site.name(),
        other => other.name(),
    }
}

fn event_name(event: &SiteEvent) -> &'static str {
    match event {
        SiteEvent::Site(command) => command.name(),
        SiteEvent::Admin(AdminEvent::NodeAdded { .. }) => "node_added",
        SiteEvent::Admin(AdminEvent::NodeRemoved { .. }) => "node_removed",
        SiteEvent::Admin(AdminEvent::LeaderTransferred { .. }) => "leader_transferred",
        SiteEvent::Admin(AdminEvent::Approval { .. }) => "approval",
        SiteEvent::Admin(AdminEvent::KeyRotated { .. }) => "key_rotated",
        SiteEvent::Admin(AdminEvent::ShippingHalted { .. }) => "shipping_halted",
    }
}

/// The journal, one record a line: `#seq origin@epoch caller command => outcome`.
fn journal_lines(site: &Site) -> String {
    let mut text = String::new();
    for r in &site.mem.journal {
        let outcome = describe(&r.outcome);
        writeln!(
            text,
            "#{} {}@{} {} {} => {outcome}",
            r.seq,
            r.origin.site,
            r.origin.epoch,
            r.caller,
            command_name(&r.command)
        )
        .unwrap();
    }
    text
}

/// The site log, one entry a line: `seq caller event (journal #n) => site after`.
fn site_log_lines(site: &Site) -> String {
    let mut text = String::new();
    for e in &site.mem.site_log {
        let journal =
            if e.journal_seq == 0 { "not journaled".to_string() } else { format!("journal #{}", e.journal_seq) };
        writeln!(text, "{} {} {} ({journal}) => {}", e.seq, e.caller, event_name(&e.event), site_line(&e.site))
            .unwrap();
    }
    text
}

/// Applies `command` on `site` and writes `site: label => outcome` to `log`.
fn step(log: &mut String, site: &mut Site, caller: &str, label: &str, command: Command) -> Outcome {
    let name = if site.site().name.is_empty() { "(new)".to_string() } else { site.site().name.clone() };
    let outcome = site.apply(caller, command);
    writeln!(log, "{name:<8} {label:<42} => {}", describe(&outcome)).unwrap();
    outcome
}

/// Ships `records` to `site` one per overlay and writes the results to `log`.
fn ship_step(log: &mut String, site: &mut Site, label: &str, records: &[JournalRecord]) -> Vec<Shipped> {
    let results = site.ship(records);
    writeln!(log, "{:<8} {label:<42} => {}", site.site().name, shipped_line(&results)).unwrap();
    results
}

// --- A busy day on the primary -----------------------------------------------------------------

/// Every kind of ledger command, with the milliseconds the leader's clock moves before it:
/// accounts, single-phase, pending with and without timeouts, post, void, expiry, an atomic
/// failure, a freeze, rejections, and an admin event.
fn busy_day() -> Vec<(&'static str, u64, Command)> {
    let alice = NewAccount { flags: DEBITS_LIMITED, ..new_account("alice", "EUR") };
    let node_added =
        AdminEvent::NodeAdded { node_id: 4, zone: "zone-b".into(), addr: "10.0.2.4:7000".into(), voter: true };
    vec![
        (
            "open bank, alice, bob, carol",
            0,
            accounts(vec![new_account("bank", "EUR"), alice, new_account("bob", "EUR"), new_account("carol", "EUR")]),
        ),
        ("bank -> alice 100.00", 10, transfers(vec![posted("t1", "bank", "alice", "100.00")])),
        ("hold alice -> bob 30.00, 60 s", 10, transfers(vec![pending("p1", "alice", "bob", "30.00", Some(60_000))])),
        ("hold alice -> carol 20.00, 1 s", 10, transfers(vec![pending("p2", "alice", "carol", "20.00", Some(1_000))])),
        ("hold alice -> bob 10.00, no timeout", 10, transfers(vec![pending("p3", "alice", "bob", "10.00", None)])),
        ("post 25.00 of p1", 10, transfers(vec![post("p1-post", "p1", "25.00")])),
        ("void p3", 10, transfers(vec![void("p3-void", "p3")])),
        ("expire, 2 s later", 2_000, Command::ExpirePending),
        ("post p2 after its expiry", 10, transfers(vec![post("p2-post", "p2", "0")])),
        (
            "atomic: bank -> bob 5.00, alice -> bob 1000.00",
            10,
            atomic(vec![posted("a1", "bank", "bob", "5.00"), posted("a2", "alice", "bob", "1000.00")]),
        ),
        ("freeze bob", 10, update("bob", AccountAction::Freeze)),
        ("alice -> bob 1.00 (bob frozen)", 10, transfers(vec![posted("t2", "alice", "bob", "1.00")])),
        ("admin: node 4 added", 10, Command::Admin(node_added)),
        ("unfreeze bob", 10, update("bob", AccountAction::Unfreeze)),
        (
            "alice -> bob 1.00, alice -> nobody 1.00",
            10,
            transfers(vec![posted("t3", "alice", "bob", "1.00"), posted("t4", "alice", "nobody", "1.00")]),
        ),
        (
            "hold alice -> carol 2.00, 1 h",
            10,
            transfers(vec![pending("p4", "alice", "carol", "2.00", Some(3_600_000))]),
        ),
        ("expire, nothing due", 10, Command::ExpirePending),
    ]
}

/// A primary that went through [`busy_day`].
fn busy_primary() -> Site {
    let mut primary = Site::active("primary");
    for (_, advance, command) in busy_day() {
        primary.advance(advance);
        assert!(!primary.apply("teller", command).is_refused());
    }
    primary
}

/// A primary with two accounts and three transfers, one record per millisecond (seq 1..=5).
fn small_primary(name: &str) -> Site {
    let mut primary = Site::active(name);
    primary.advance(1);
    primary.apply("teller", accounts(vec![new_account("a", "EUR"), new_account("b", "EUR")]));
    for (i, amount) in ["1.00", "2.00", "3.00"].into_iter().enumerate() {
        primary.advance(1);
        let outcome = primary.apply("teller", transfers(vec![posted(&format!("t{}", i + 1), "a", "b", amount)]));
        assert_eq!(show(&outcome), "ok");
    }
    assert_eq!(primary.head().seq, 5);
    primary
}

/// `record` with a changed body and its old hash (as if altered in transit).
fn altered(record: &JournalRecord, change: impl FnOnce(&mut JournalRecord)) -> JournalRecord {
    let mut altered = record.clone();
    change(&mut altered);
    altered
}

/// `record` with a changed body, resealed so that its own hash is consistent again.
fn forged(record: &JournalRecord, change: impl FnOnce(&mut JournalRecord)) -> JournalRecord {
    let mut forged = altered(record, change);
    forged.hash = forged.compute_hash();
    forged
}

/// The amount of the first transfer of a `CreateTransfers` record, changed.
fn change_amount(record: &mut JournalRecord, amount: &str) {
    let Command::CreateTransfers { transfers, .. } = &mut record.command else { panic!("not a transfer record") };
    transfers[0].amount = dec(amount);
}

// -------------------------------------------------------------------------------------------
// 1. Shipping reproduces the primary

// Goal: a standby that ships every record of a busy primary (accounts, single-phase, pending
// with timeouts, post, void, expiry, an atomic failure, freezes, rejections, an admin event)
// ends with the same journal bit for bit and the same accounts, transfers, expiries, totals
// and history, whether it ships one record per overlay as they come, several per overlay, or
// all of them in one overlay.
#[test]
fn a_standby_reproduces_every_record_of_the_primary() {
    let mut primary = Site::active("primary");
    let mut dr = Site::standby("dr");
    let mut log = String::new();
    let shipped = dr.ship(&primary.records());
    assert_eq!(shipped, vec![Shipped::Applied], "the primary's bootstrap record");
    for (label, advance, command) in busy_day() {
        primary.advance(advance);
        let outcome = primary.apply("teller", command);
        let new = primary.records_from(dr.head().seq + 1);
        assert_eq!(new.len(), 1, "{label}: one record per command");
        assert_eq!(dr.ship(&new), vec![Shipped::Applied], "{label}");
        assert_same_book(&dr, &primary);
        writeln!(log, "{label:<46} => {}", describe(&outcome)).unwrap();
    }
    for id in ["bank", "alice", "bob", "carol"] {
        writeln!(log, "    {}", show_balance(id, &dr.mem.accounts[&AccountId::new(id)].balance)).unwrap();
    }
    expect![[r#"
        open bank, alice, bob, carol                   => ok, ok, ok, ok
        bank -> alice 100.00                           => ok
        hold alice -> bob 30.00, 60 s                  => ok
        hold alice -> carol 20.00, 1 s                 => ok
        hold alice -> bob 10.00, no timeout            => ok
        post 25.00 of p1                               => ok
        void p3                                        => ok
        expire, 2 s later                              => expired [p2]
        post p2 after its expiry                       => pending_transfer_expired
        atomic: bank -> bob 5.00, alice -> bob 1000.00 => linked_event_failed, exceeds_credits
        freeze bob                                     => ok
        alice -> bob 1.00 (bob frozen)                 => credit_account_frozen
        admin: node 4 added                            => recorded
        unfreeze bob                                   => ok
        alice -> bob 1.00, alice -> nobody 1.00        => ok, credit_account_not_found
        hold alice -> carol 2.00, 1 h                  => ok
        expire, nothing due                            => expired []
            bank     debits 100.00 (pending 0.00)  credits 0.00 (pending 0.00)
            alice    debits 26.00 (pending 2.00)  credits 100.00 (pending 0.00)
            bob      debits 0.00 (pending 0.00)  credits 26.00 (pending 0.00)
            carol    debits 0.00 (pending 0.00)  credits 0.00 (pending 2.00)
    "#]]
    .assert_eq(&log);

    // The standby's journal is the primary's, record for record, and its watermark is the last.
    let last = primary.mem.journal.last().unwrap().clone();
    assert_eq!(dr.mem.journal, primary.mem.journal);
    assert_eq!(dr.site().watermark.seq, last.seq);
    assert_eq!(dr.site().watermark.ledger_time_ms, last.ledger_time_ms);
    assert_eq!(dr.site().watermark.halted, None);
    assert_eq!((dr.site().active_site.as_str(), dr.site().active_epoch), ("primary", 1));
    assert_eq!((dr.site().name.as_str(), dr.site().role, dr.site().epoch), ("dr", SiteRole::Standby, 1));
    // Its site log is its own: the bootstrap only, never the primary's operations.
    assert_eq!(site_log_lines(&dr), "1 ops bootstrap (not journaled) => dr standby epoch 1, active @1\n");
    // The stored rejections came across too (a replay on the new site returns them).
    assert_eq!(dr.mem.transfers[&TransferId::new("a2")].result, ResultCode::ExceedsCredits);
    assert_eq!(dr.mem.transfers[&TransferId::new("p2-post")].result, ResultCode::PendingTransferExpired);
    assert_eq!(dr.mem.transfers[&TransferId::new("p2")].state, TransferState::PendingExpired);

    // Several records per overlay, and all of them in one overlay, reach the same bytes.
    let mut dr2 = Site::standby("dr2");
    for chunk in primary.records().chunks(5) {
        assert!(dr2.ship_in_one_overlay(chunk).iter().all(|s| *s == Shipped::Applied));
    }
    assert_same_book(&dr2, &primary);
    let mut dr3 = Site::standby("dr3");
    let results = dr3.ship_in_one_overlay(&primary.records());
    assert_eq!(shipped_line(&results), "applied x18");
    assert_same_book(&dr3, &primary);
    assert_eq!(dr3.site().watermark, dr.site().watermark);
    // A standby still refuses client writes after it caught up.
    let refused = dr.apply("teller", transfers(vec![posted("t9", "bank", "bob", "1.00")]));
    assert_eq!(
        describe(&refused),
        "refused: site dr is standby and takes no writes; the active site is primary at epoch 1"
    );
}

// -------------------------------------------------------------------------------------------
// 2. Duplicates, gaps and altered records

// Goal: re-shipping records the standby holds is a harmless `Duplicate`, one by one or in one
// overlay; shipping to a site that is not a standby is `Ignored`.
#[test]
fn reshipping_held_records_is_a_duplicate() {
    let primary = busy_primary();
    let mut dr = Site::standby("dr");
    dr.ship(&primary.records());
    let before = dr.snapshot();
    let results = dr.ship(&primary.records());
    assert_eq!(shipped_line(&results), "duplicate x18");
    assert_eq!(shipped_line(&dr.ship_in_one_overlay(&primary.records()[3..9])), "duplicate x6");
    assert_eq!(dr.snapshot(), before, "duplicates change nothing, not even the watermark");

    // Duplicates then new records in one overlay (a resend after a leader change).
    let mut lagging = Site::standby("dr2");
    lagging.ship(&primary.records()[..10]);
    let results = lagging.ship_in_one_overlay(&primary.records()[7..]);
    assert_eq!(shipped_line(&results), "duplicate x3, applied x8");
    assert_same_book(&lagging, &primary);

    // Not a standby: the active site, and a site never bootstrapped.
    let mut active = Site::active("other");
    let mut blank = Site::uninitialized();
    let record = primary.record(2);
    assert_eq!(
        shipped_line(&active.ship(std::slice::from_ref(&record))),
        "ignored (site other is active, not a standby)"
    );
    assert_eq!(shipped_line(&blank.ship(&[record])), "ignored (site  is uninitialized, not a standby)");
}

// Goal: a gap in the shipped seqs is a batch built from a stale view of our head (the shipper
// read it before a resync or a leader change was applied; it checks the continuity of the
// stream itself, so a gap is never a skipped record): nothing is applied and nothing halts,
// and the records that do follow our head then apply. Seen in CI: a failback's resync landed
// between the shipper reading head 257 and its batch from 258, which used to halt shipping.
#[test]
fn a_gap_is_a_stale_batch_ignored_without_halting() {
    let mut primary = small_primary("primary");
    let mut dr = Site::standby("dr");
    let mut log = String::new();
    ship_step(&mut log, &mut dr, "ship #1..#2", &primary.records_from(1)[..2]);
    ship_step(&mut log, &mut dr, "ship #4 (gap)", &[primary.record(4)]);
    ship_step(&mut log, &mut dr, "ship #3..#5", &primary.records_from(3));
    primary.advance(1);
    primary.apply("teller", transfers(vec![posted("t4", "a", "b", "4.00")]));
    dr.advance(10);
    step(&mut log, &mut dr, "ops", "resync from primary at epoch 1", resync("primary", 1, ""));
    ship_step(&mut log, &mut dr, "ship #6 (read head 5 before the resync)", &[primary.record(6)]);
    ship_step(&mut log, &mut dr, "ship #1..#6", &primary.records());
    ship_step(&mut log, &mut dr, "ship #6 again", &[primary.record(6)]);
    expect![[r#"
        dr       ship #1..#2                                => applied x2
        dr       ship #4 (gap)                              => ignored (gap: shipped seq 4 after our seq 2; shipping restarts from our head)
        dr       ship #3..#5                                => applied x3
        dr       resync from primary at epoch 1             => dr standby epoch 1, active primary@1
        dr       ship #6 (read head 5 before the resync)    => ignored (gap: shipped seq 6 after our seq 0; shipping restarts from our head)
        dr       ship #1..#6                                => applied x6
        dr       ship #6 again                              => duplicate
    "#]]
    .assert_eq(&log);
    assert_same_book(&dr, &primary);
    expect![[r#"
        1 ops bootstrap (not journaled) => dr standby epoch 1, active @1
        2 ops resync (not journaled) => dr standby epoch 1, active primary@1
    "#]]
    .assert_eq(&site_log_lines(&dr));
    assert_eq!(dr.site().watermark.halted, None, "a gap never halts");
    assert_eq!(dr.site().watermark.seq, 6);
}

// Goal: a record whose bytes were altered in transit halts shipping with a reason that names
// it, whatever was altered: its amount, caller or origin with the old hash; its outcome with
// the hash recomputed (the standby re-executes and gets the true outcome); its link with the
// hash recomputed; its time going back; a held seq arriving with other content. The book is
// untouched, the halt is logged, and every record after it is ignored, even a genuine one.
#[test]
fn an_altered_record_halts_shipping() {
    let primary = small_primary("primary");
    let t3 = primary.record(5);
    let fresh = || {
        let mut dr = Site::standby("dr");
        assert_eq!(shipped_line(&dr.ship(&primary.records()[..4])), "applied x4");
        dr
    };
    let rejected = Outcome::Items(vec![ItemResult::new(ResultCode::ExceedsCredits)]);
    let by_amount = altered(&t3, |r| change_amount(r, "300.00"));
    let by_outcome = forged(&t3, |r| r.outcome = rejected);
    let by_caller = altered(&t3, |r| r.caller = "mallory".into());
    let by_origin = altered(&t3, |r| r.origin.epoch = 7);
    let different = |here: Hash, shipped: Hash| {
        format!("shipped seq 5 re-applied to a different result (hash {here} here, {shipped} shipped)")
    };
    // A record altered under its old hash does not match its own hash: refused before anything
    // else is looked at.
    let altered_in_transit = "shipped seq 5 does not match its own hash: altered in transit".to_string();
    let cases = vec![
        ("amount 3.00 -> 300.00, old hash", by_amount.clone(), altered_in_transit.clone()),
        ("outcome ok -> exceeds_credits, resealed", by_outcome.clone(), different(t3.hash, by_outcome.hash)),
        ("caller changed, old hash", by_caller.clone(), altered_in_transit.clone()),
        ("origin epoch changed, old hash", by_origin.clone(), altered_in_transit.clone()),
        (
            "prev_hash changed, resealed",
            forged(&t3, |r| r.prev_hash = Hash([7; 32])),
            "shipped seq 5 does not follow our seq 4: the sites diverged".to_string(),
        ),
        (
            "time before #4, resealed",
            forged(&t3, |r| r.ledger_time_ms = START_MS),
            "shipped seq 5 goes back in ledger time".to_string(),
        ),
        (
            "held #3 with another amount, resealed",
            forged(&primary.record(3), |r| change_amount(r, "9.00")),
            "shipped seq 3 differs from ours: the sites diverged".to_string(),
        ),
    ];
    for (label, record, reason) in cases {
        let mut dr = fresh();
        let book = dr.book();
        assert_eq!(dr.ship(&[record]), vec![Shipped::Halted(reason.clone())], "{label}");
        assert_eq!(dr.book(), book, "{label}");
        assert_eq!(dr.site().watermark.seq, 4, "{label}");
        assert_eq!(dr.ship_one(&t3), Shipped::Ignored(format!("shipping is halted: {reason}")), "{label}");
        let last = dr.mem.site_log.last().unwrap();
        assert_eq!(last.event, SiteEvent::Admin(AdminEvent::ShippingHalted { reason }), "{label}");
    }

    // The outcome of a site operation is copied, not re-run: altered under the old hash, it is
    // refused as altered in transit; resealed, it does not reproduce on re-application only if
    // it is a ledger command, so the chain (the next record) is what catches it.
    let mut dr = Site::standby("dr");
    let mut bootstrap = primary.record(1);
    let Outcome::Site(site) = &mut bootstrap.outcome else { panic!("bootstrap outcome") };
    site.dual_control = true;
    let Shipped::Halted(reason) = dr.ship_one(&bootstrap) else { panic!("not halted") };
    assert_eq!(reason, "shipped seq 1 does not match its own hash: altered in transit");

    // A held seq with an altered body under the genuine hash is altered in transit too.
    let mut dr = fresh();
    let held = altered(&primary.record(3), |r| change_amount(r, "9.00"));
    let Shipped::Halted(reason) = dr.ship_one(&held) else { panic!("not halted") };
    assert_eq!(reason, "shipped seq 3 does not match its own hash: altered in transit");
    assert_eq!(dr.record(3), primary.record(3));

    // Likewise a ledger record whose outcome was altered under the old hash.
    let mut dr = fresh();
    let wrong_outcome = altered(&t3, |r| r.outcome = Outcome::Items(vec![ItemResult::new(ResultCode::ExceedsCredits)]));
    let Shipped::Halted(reason) = dr.ship_one(&wrong_outcome) else { panic!("not halted") };
    assert_eq!(reason, "shipped seq 5 does not match its own hash: altered in transit");
    assert_eq!(dr.site().watermark.seq, 4);
}

// Goal: a forged record that is self-consistent (its command altered and its hash resealed)
// cannot be told from a genuine one on its own: the standby applies it. The very next genuine
// record then does not follow it, and shipping halts there: an alteration never goes unseen
// past one record. Records already applied in the same overlay as a halt are kept.
#[test]
fn a_resealed_forgery_is_caught_by_the_next_record() {
    let primary = small_primary("primary");
    let mut dr = Site::standby("dr");
    dr.ship(&primary.records_from(1)[..4]);
    let forged_t3 = forged(&primary.record(5), |r| change_amount(r, "300.00"));
    assert_eq!(dr.ship(&[forged_t3]), vec![Shipped::Applied]);
    assert_eq!(dr.mem.accounts[&AccountId::new("b")].balance.credits_posted, dec("303.00"));

    let mut primary = primary;
    primary.advance(1);
    primary.apply("teller", transfers(vec![posted("t4", "a", "b", "4.00")]));
    let results = dr.ship(&[primary.record(6)]);
    assert_eq!(shipped_line(&results), "HALTED (shipped seq 6 does not follow our seq 5: the sites diverged)");

    // In one overlay: the records before the halt are applied and committed, the rest ignored.
    let mut dr2 = Site::standby("dr2");
    let mut batch = primary.records_from(1)[..4].to_vec();
    batch.push(forged(&primary.record(5), |r| change_amount(r, "300.00")));
    batch.push(primary.record(6));
    batch.push(primary.record(6));
    let results = dr2.ship_in_one_overlay(&batch);
    assert_eq!(
        shipped_line(&results),
        "applied x5, HALTED (shipped seq 6 does not follow our seq 5: the sites diverged), ignored (shipping is halted: shipped seq 6 does not follow our seq 5: the sites diverged)"
    );
    assert_eq!(dr2.site().watermark.seq, 5);
    assert_eq!(dr2.mem.site_log.len(), 2, "bootstrap, then the halt");
}

// -------------------------------------------------------------------------------------------
// 3. Divergence

// Goal: two primaries that share a prefix and then diverge: a standby that followed one halts
// on the other's next record ("does not follow"), and on the other's version of a seq it
// already holds ("differs from ours").
#[test]
fn a_standby_of_one_branch_halts_on_the_other() {
    // Same name, same commands, same times: the same bytes, up to seq 5.
    let mut left = small_primary("primary");
    let mut right = small_primary("primary");
    assert_eq!(left.records(), right.records());
    left.advance(1);
    right.advance(1);
    left.apply("teller", transfers(vec![posted("t4", "a", "b", "4.00")]));
    right.apply("teller", transfers(vec![posted("t4", "b", "a", "4.00")]));
    right.advance(1);
    right.apply("teller", transfers(vec![posted("t5", "a", "b", "5.00")]));
    assert_ne!(left.record(6), right.record(6));

    let mut dr = Site::standby("dr");
    assert_eq!(shipped_line(&dr.ship(&left.records())), "applied x6");
    let book = dr.book();
    let results = dr.ship(&[right.record(7)]);
    assert_eq!(shipped_line(&results), "HALTED (shipped seq 7 does not follow our seq 6: the sites diverged)");
    assert_eq!(dr.book(), book);

    let mut dr2 = Site::standby("dr2");
    dr2.ship(&left.records());
    let results = dr2.ship(&right.records());
    let expected = "duplicate x5, HALTED (shipped seq 6 differs from ours: the sites diverged), \
                    ignored (shipping is halted: shipped seq 6 differs from ours: the sites diverged)";
    assert_eq!(shipped_line(&results), expected);
    assert_same_book(&dr2, &left);
}

// -------------------------------------------------------------------------------------------
// 4. Planned switchover

// Goal: a planned switchover as the operator tool runs it, there and back. Fence the primary
// (journaled; then it refuses writes and journals nothing, an admin event goes to its site log
// only); the standby ships everything; promote the standby at epoch 2 (its next journal
// record); demote the old primary (site-logged, not journaled); the old primary ships the new
// active's records from the promote record on and holds the same journal; the new active
// takes writes. Then the same back at epoch 3.
#[test]
fn planned_switchover_there_and_back() {
    let mut primary = Site::active("primary");
    let mut dr = Site::standby("dr");
    let mut log = String::new();
    step(
        &mut log,
        &mut primary,
        "teller",
        "open a, b",
        accounts(vec![new_account("a", "EUR"), new_account("b", "EUR")]),
    );
    step(&mut log, &mut primary, "teller", "a -> b 1.00", transfers(vec![posted("t1", "a", "b", "1.00")]));
    ship_step(&mut log, &mut dr, "ship #1..#3", &primary.records());

    // There: primary -> dr.
    primary.advance(1_000);
    step(&mut log, &mut primary, "ops", "fence", fence());
    step(&mut log, &mut primary, "teller", "a -> b 2.00", transfers(vec![posted("t2", "a", "b", "2.00")]));
    step(&mut log, &mut primary, "ops", "admin event", admin_node_removed(3));
    step(&mut log, &mut primary, "ops", "fence again", fence());
    let fenced_head = primary.head();
    let rest = primary.records_from(dr.head().seq + 1);
    ship_step(&mut log, &mut dr, "ship the rest (#4)", &rest);
    assert_eq!(dr.head(), fenced_head, "the standby holds every record of the fenced primary");
    dr.advance(2_000);
    step(&mut log, &mut dr, "ops", "promote at epoch 2", promote(2, false, ""));
    step(&mut log, &mut primary, "ops", "demote to dr at epoch 2", demote("dr", 2, ""));
    assert_eq!(primary.head(), fenced_head, "the demote is not journaled");
    ship_step(&mut log, &mut primary, "ship from the promote record (#5)", &dr.records_from(fenced_head.seq + 1));
    step(&mut log, &mut dr, "teller", "a -> b 2.00", transfers(vec![posted("t2", "a", "b", "2.00")]));
    step(&mut log, &mut primary, "teller", "a -> b 3.00", transfers(vec![posted("t3", "a", "b", "3.00")]));
    ship_step(&mut log, &mut primary, "ship #5..#6 (#5 again)", &dr.records_from(5));
    assert_same_book(&primary, &dr);

    // Back: dr -> primary.
    dr.advance(1_000);
    step(&mut log, &mut dr, "ops", "fence", fence());
    ship_step(&mut log, &mut primary, "ship #7", &dr.records_from(7));
    primary.now_ms = dr.now_ms + 1_000;
    step(&mut log, &mut primary, "ops", "promote at epoch 3", promote(3, false, ""));
    step(&mut log, &mut dr, "ops", "demote to primary at epoch 3", demote("primary", 3, ""));
    ship_step(&mut log, &mut dr, "ship from the promote record (#8)", &primary.records_from(8));
    step(&mut log, &mut primary, "teller", "a -> b 3.00", transfers(vec![posted("t3", "a", "b", "3.00")]));
    step(&mut log, &mut dr, "teller", "a -> b 4.00", transfers(vec![posted("t4", "a", "b", "4.00")]));
    ship_step(&mut log, &mut dr, "ship #9", &primary.records_from(9));
    assert_same_book(&dr, &primary);
    expect![[r#"
        primary  open a, b                                  => ok, ok
        primary  a -> b 1.00                                => ok
        dr       ship #1..#3                                => applied x3
        primary  fence                                      => primary active fenced epoch 1, active primary@1
        primary  a -> b 2.00                                => refused: site primary is fenced and takes no writes; the active site is primary at epoch 1
        primary  admin event                                => recorded
        primary  fence again                                => primary active fenced epoch 1, active primary@1
        dr       ship the rest (#4)                         => applied
        dr       promote at epoch 2                         => dr active epoch 2, active dr@2
        primary  demote to dr at epoch 2                    => primary standby epoch 1, active dr@2
        primary  ship from the promote record (#5)          => applied
        dr       a -> b 2.00                                => ok
        primary  a -> b 3.00                                => refused: site primary is standby and takes no writes; the active site is dr at epoch 2
        primary  ship #5..#6 (#5 again)                     => duplicate, applied
        dr       fence                                      => dr active fenced epoch 2, active dr@2
        primary  ship #7                                    => applied
        primary  promote at epoch 3                         => primary active epoch 3, active primary@3
        dr       demote to primary at epoch 3               => dr standby epoch 2, active primary@3
        dr       ship from the promote record (#8)          => applied
        primary  a -> b 3.00                                => ok
        dr       a -> b 4.00                                => refused: site dr is standby and takes no writes; the active site is primary at epoch 3
        dr       ship #9                                    => applied
    "#]]
    .assert_eq(&log);
    // One journal, bit for bit on both sites, each record under the site and epoch that
    // wrote it.
    expect![[r#"
        #1 primary@1 ops bootstrap => primary active epoch 1, active primary@1
        #2 primary@1 teller create_accounts => ok, ok
        #3 primary@1 teller create_transfers => ok
        #4 primary@1 ops fence => primary active fenced epoch 1, active primary@1
        #5 dr@2 ops promote => dr active epoch 2, active dr@2
        #6 dr@2 teller create_transfers => ok
        #7 dr@2 ops fence => dr active fenced epoch 2, active dr@2
        #8 primary@3 ops promote => primary active epoch 3, active primary@3
        #9 primary@3 teller create_transfers => ok
    "#]]
    .assert_eq(&journal_lines(&primary));
    assert_eq!(journal_lines(&dr), journal_lines(&primary));
    // Each site's own log: every operation, journaled or not.
    expect![[r#"
        1 ops bootstrap (journal #1) => primary active epoch 1, active primary@1
        2 ops fence (journal #4) => primary active fenced epoch 1, active primary@1
        3 ops node_removed (not journaled) => primary active fenced epoch 1, active primary@1
        4 ops fence (not journaled) => primary active fenced epoch 1, active primary@1
        5 ops demote (not journaled) => primary standby epoch 1, active dr@2
        6 ops promote (journal #8) => primary active epoch 3, active primary@3
    "#]]
    .assert_eq(&site_log_lines(&primary));
    expect![[r#"
        1 ops bootstrap (not journaled) => dr standby epoch 1, active @1
        2 ops promote (journal #5) => dr active epoch 2, active dr@2
        3 ops fence (journal #7) => dr active fenced epoch 2, active dr@2
        4 ops demote (not journaled) => dr standby epoch 2, active primary@3
    "#]]
    .assert_eq(&site_log_lines(&dr));
    assert_eq!(dr.site().watermark.seq, 9);
    assert_eq!(dr.site().upstream, vec![endpoint("primary")]);
    assert_eq!(primary.site().epoch_changed_at_seq, 8);
    assert_eq!(dr.mem.accounts[&AccountId::new("b")].balance.credits_posted, dec("6.00"));
}

// -------------------------------------------------------------------------------------------
// 5. Failover

// Goal: a failover. The standby lags, and is promoted with `forced`; the old primary, which
// does not know, keeps writing (records past the branch point). Learning of epoch 2 fences
// it: the observation is its last journal record, then it refuses writes and cannot unfence.
// Demoting it would not do (its journal diverged, shipping halts); a resync discards its
// ledger state and journal, keeps its site log, and it then ships the new active's journal
// from seq 1 and ends identical to it.
#[test]
fn failover_then_resync_of_the_old_primary() {
    let mut primary = small_primary("primary");
    let mut dr = Site::standby("dr");
    let mut log = String::new();
    ship_step(&mut log, &mut dr, "ship #1..#3 of 5 (lagging)", &primary.records()[..3]);
    dr.now_ms = primary.now_ms + 10_000;
    step(&mut log, &mut dr, "ops", "promote at epoch 2, forced", promote(2, true, ""));
    step(&mut log, &mut dr, "teller", "a -> b 4.00", transfers(vec![posted("t4", "a", "b", "4.00")]));
    primary.advance(5_000);
    step(
        &mut log,
        &mut primary,
        "teller",
        "a -> b 5.00 (does not know)",
        transfers(vec![posted("t5", "a", "b", "5.00")]),
    );
    ship_step(&mut log, &mut primary, "ship dr's records (not a standby)", &dr.records());
    primary.advance(10_000);
    step(&mut log, &mut primary, "dr-watch", "observe dr at epoch 2", observe("dr", 2));
    step(&mut log, &mut primary, "teller", "a -> b 6.00", transfers(vec![posted("t6", "a", "b", "6.00")]));
    step(&mut log, &mut primary, "ops", "admin event", admin_node_removed(2));
    step(&mut log, &mut primary, "ops", "unfence", unfence());
    step(&mut log, &mut primary, "ops", "promote", promote(3, false, ""));

    // Why not a demote: the old primary's journal is not a prefix of the new active's.
    let mut demoted = primary.clone();
    step(&mut log, &mut demoted, "ops", "(copy) demote to dr at epoch 2", demote("dr", 2, ""));
    ship_step(&mut log, &mut demoted, "(copy) ship dr's records", &dr.records());

    let site_log_before = primary.mem.site_log.clone();
    step(&mut log, &mut primary, "ops", "resync from dr at epoch 2", resync("dr", 2, ""));
    assert!(primary.mem.journal.is_empty(), "the resync discards the journal");
    assert_eq!(primary.head(), JournalHead::default());
    assert!(primary.mem.accounts.is_empty() && primary.mem.transfers.is_empty() && primary.mem.history.is_empty());
    assert!(primary.mem.totals.is_empty() && primary.mem.expiries.is_empty());
    assert_eq!(primary.mem.site_log[..site_log_before.len()], site_log_before[..], "the site log is kept");
    assert_eq!(primary.mem.site_log.last().unwrap().journal_seq, 0, "the resync is not journaled");
    assert!(primary.mem.meta.clock_ms() >= site_log_before.last().unwrap().ledger_time_ms, "the clock never goes back");
    ship_step(&mut log, &mut primary, "ship dr's records from #1", &dr.records());
    step(&mut log, &mut dr, "teller", "a -> b 7.00", transfers(vec![posted("t7", "a", "b", "7.00")]));
    ship_step(&mut log, &mut primary, "ship #6", &dr.records_from(6));
    assert_same_book(&primary, &dr);
    expect![[r#"
        dr       ship #1..#3 of 5 (lagging)                 => applied x3
        dr       promote at epoch 2, forced                 => dr active epoch 2, active dr@2
        dr       a -> b 4.00                                => ok
        primary  a -> b 5.00 (does not know)                => ok
        primary  ship dr's records (not a standby)          => ignored (site primary is active, not a standby) x5
        primary  observe dr at epoch 2                      => primary active epoch 1, active dr@2
        primary  a -> b 6.00                                => refused: site primary is superseded (another site is active at a higher epoch) and takes no writes; the active site is dr at epoch 2
        primary  admin event                                => recorded
        primary  unfence                                    => refused: site primary knows that dr is active at epoch 2; it cannot take writes at epoch 1
        primary  promote                                    => refused: site primary is active; only a standby can be promoted
        primary  (copy) demote to dr at epoch 2             => primary standby epoch 1, active dr@2
        primary  (copy) ship dr's records                   => duplicate x3, HALTED (shipped seq 4 differs from ours: the sites diverged), ignored (shipping is halted: shipped seq 4 differs from ours: the sites diverged)
        primary  resync from dr at epoch 2                  => primary standby epoch 1, active dr@2
        primary  ship dr's records from #1                  => applied x5
        dr       a -> b 7.00                                => ok
        primary  ship #6                                    => applied
    "#]]
    .assert_eq(&log);
    expect![[r#"
        #1 primary@1 ops bootstrap => primary active epoch 1, active primary@1
        #2 primary@1 teller create_accounts => ok, ok
        #3 primary@1 teller create_transfers => ok
        #4 dr@2 ops promote => dr active epoch 2, active dr@2
        #5 dr@2 teller create_transfers => ok
        #6 dr@2 teller create_transfers => ok
    "#]]
    .assert_eq(&journal_lines(&primary));
    // The old primary's own log still tells what happened to it, chained across the resync.
    expect![[r#"
        1 ops bootstrap (journal #1) => primary active epoch 1, active primary@1
        2 dr-watch observe_epoch (journal #7) => primary active epoch 1, active dr@2
        3 ops node_removed (not journaled) => primary active epoch 1, active dr@2
        4 ops resync (not journaled) => primary standby epoch 1, active dr@2
    "#]]
    .assert_eq(&site_log_lines(&primary));
    assert_eq!(primary.site().watermark.seq, 6);
    assert_eq!(primary.site().watermark.halted, None);
    assert_eq!(primary.site().epoch_changed_at_seq, 1);
    let b = &primary.mem.accounts[&AccountId::new("b")].balance;
    assert_eq!(b.credits_posted, dec("12.00"), "1 + 4 + 7: t2, t3 and t5 were past the branch point");
}

// Goal: a resync and the shipping that follows it may share one overlay (one Raft batch): the
// overlay reads nothing of the discarded state, and the commit ends identical to the active
// site.
#[test]
fn resync_and_shipping_in_one_overlay() {
    let dr = small_primary("dr");
    let mut old = Site::active("primary");
    old.apply("teller", accounts(vec![new_account("a", "EUR"), new_account("z", "EUR")]));
    old.apply("teller", transfers(vec![pending("p1", "a", "z", "1.00", Some(10))]));
    old.apply("dr-watch", observe("dr", 2));
    let site_log_before = old.mem.site_log.clone();

    old.raft_index += 1;
    let mut overlay = Overlay::new(&old.mem);
    let envelope = Envelope { caller: "ops".into(), command: resync("dr", 2, "") };
    let outcome = ledger::apply(&mut overlay, &envelope, old.now_ms, old.raft_index);
    assert_eq!(describe(&outcome), "primary standby epoch 1, active dr@2");
    let results: Vec<Shipped> = dr.records().iter().map(|r| site_ops::ship(&mut overlay, r)).collect();
    assert_eq!(shipped_line(&results), "applied x5");
    let changes = overlay.into_changes();
    old.mem.commit(changes);
    old.check();
    assert_same_book(&old, &dr);
    assert_eq!(old.mem.site_log.len(), site_log_before.len() + 1);
    assert!(!old.mem.accounts.contains_key(&AccountId::new("z")));
}

// -------------------------------------------------------------------------------------------
// 6. Dual control

// Goal: with dual control, promote, demote, resync and key rotation need approvals of the
// same request id, for a matching action, from two different callers, within 15 minutes of
// ledger time. Every way of falling short is refused with a message that says what is
// missing; approvals are consumed by the operation they allowed; bad approvals are refused.
#[test]
fn dual_control_needs_two_operators() {
    let mut primary = Site::bootstrapped("primary", SiteRole::Active, true);
    let mut dr = Site::bootstrapped("dr", SiteRole::Standby, true);
    let mut log = String::new();
    primary.apply("teller", accounts(vec![new_account("a", "EUR"), new_account("b", "EUR")]));
    ship_step(&mut log, &mut dr, "ship #1..#2", &primary.records());
    step(&mut log, &mut dr, "alice", "promote, no request id", promote(2, false, ""));
    step(&mut log, &mut dr, "alice", "approve req-1 promote", approve("req-1", "promote"));
    step(&mut log, &mut dr, "alice", "promote req-1", promote(2, false, "req-1"));
    step(&mut log, &mut dr, "alice", "approve req-1 promote again", approve("req-1", "promote"));
    step(&mut log, &mut dr, "bob", "approve req-1 failback", approve("req-1", "failback"));
    step(&mut log, &mut dr, "carol", "approve req-1 rotate_key", approve("req-1", "rotate_key"));
    step(&mut log, &mut dr, "bob", "promote req-1", promote(2, false, "req-1"));
    step(&mut log, &mut dr, "bob", "approve req-1 launch", approve("req-1", "launch"));
    step(&mut log, &mut dr, "bob", "approve '' promote", approve("", "promote"));
    step(&mut log, &mut dr, "bob", "approve 'req 1' promote", approve("req 1", "promote"));
    step(&mut log, &mut dr, "bob", "approve (65 bytes) promote", approve(&"r".repeat(65), "promote"));
    step(&mut log, &mut dr, "bob", "approve (64 bytes) promote", approve(&"r".repeat(64), "promote"));
    // The window, in ledger time: 15 minutes counts, a millisecond more does not.
    dr.advance(1_000);
    step(&mut log, &mut dr, "alice", "approve req-2 switchover", approve("req-2", "switchover"));
    dr.advance(APPROVAL_WINDOW_MS);
    step(&mut log, &mut dr, "bob", "15 min later: approve req-2 promote", approve("req-2", "promote"));
    writeln!(log, "         approvals kept: {}", approvals(&dr)).unwrap();
    dr.advance(1);
    step(&mut log, &mut dr, "bob", "1 ms later: promote req-2", promote(2, false, "req-2"));
    dr.now_ms -= 1;
    let mut in_time = dr.clone();
    step(&mut log, &mut in_time, "bob", "(copy, 15 min) promote req-2", promote(2, false, "req-2"));
    dr.advance(1);
    step(&mut log, &mut dr, "dave", "approve req-2 promote", approve("req-2", "promote"));
    step(&mut log, &mut dr, "dave", "promote req-2", promote(2, false, "req-2"));
    writeln!(log, "         approvals kept: {}", approvals(&dr)).unwrap();
    // A consumed approval does not allow a second operation.
    step(&mut log, &mut dr, "alice", "approve rk-1 rotate_key", approve("rk-1", "rotate_key"));
    step(&mut log, &mut dr, "bob", "approve rk-1 rotate_key", approve("rk-1", "rotate_key"));
    step(&mut log, &mut dr, "alice", "rotate to key 0", rotate_key(0, "rk-1"));
    step(&mut log, &mut dr, "alice", "rotate to key 2", rotate_key(2, "rk-1"));
    step(&mut log, &mut dr, "alice", "rotate to key 3 (same request)", rotate_key(3, "rk-1"));
    writeln!(log, "         approvals kept: {}", approvals(&dr)).unwrap();

    // Demote needs "switchover"; resync needs "failback".
    primary.advance(dr.now_ms - primary.now_ms);
    step(&mut log, &mut primary, "ops", "fence", fence());
    step(&mut log, &mut primary, "alice", "approve sw-1 promote", approve("sw-1", "promote"));
    step(&mut log, &mut primary, "bob", "approve sw-1 promote", approve("sw-1", "promote"));
    step(&mut log, &mut primary, "bob", "demote sw-1", demote("dr", 2, "sw-1"));
    step(&mut log, &mut primary, "alice", "approve sw-1 switchover", approve("sw-1", "switchover"));
    step(&mut log, &mut primary, "bob", "approve sw-1 switchover", approve("sw-1", "switchover"));
    step(&mut log, &mut primary, "bob", "demote sw-1", demote("dr", 2, "sw-1"));
    writeln!(log, "         approvals kept: {}", approvals(&primary)).unwrap();
    step(&mut log, &mut primary, "bob", "resync sw-1", resync("dr", 2, "sw-1"));
    step(&mut log, &mut primary, "alice", "approve fb-1 failback", approve("fb-1", "failback"));
    step(&mut log, &mut primary, "bob", "approve fb-1 failback", approve("fb-1", "failback"));
    step(&mut log, &mut primary, "carol", "resync fb-1", resync("dr", 2, "fb-1"));
    writeln!(log, "         approvals kept: {}", approvals(&primary)).unwrap();
    ship_step(&mut log, &mut primary, "ship dr's records", &dr.records());
    expect![[r#"
        dr       ship #1..#2                                => applied x2
        dr       promote, no request id                     => refused: dual control: promote needs a request id approved by two different operators (ledger-cluster dr approve)
        dr       approve req-1 promote                      => dr standby epoch 1, active primary@1
        dr       promote req-1                              => refused: dual control: promote of request "req-1" needs approvals by two different operators within 15 minutes; approved by 1: ["alice"]
        dr       approve req-1 promote again                => dr standby epoch 1, active primary@1
        dr       approve req-1 failback                     => dr standby epoch 1, active primary@1
        dr       approve req-1 rotate_key                   => dr standby epoch 1, active primary@1
        dr       promote req-1                              => refused: dual control: promote of request "req-1" needs approvals by two different operators within 15 minutes; approved by 1: ["alice"]
        dr       approve req-1 launch                       => refused: "launch" is not an approvable action (["switchover", "promote", "failback", "rotate_key"])
        dr       approve '' promote                         => refused: request id must be an id of at most 64 bytes
        dr       approve 'req 1' promote                    => refused: request id must be an id of at most 64 bytes
        dr       approve (65 bytes) promote                 => refused: request id must be an id of at most 64 bytes
        dr       approve (64 bytes) promote                 => dr standby epoch 1, active primary@1
        dr       approve req-2 switchover                   => dr standby epoch 1, active primary@1
        dr       15 min later: approve req-2 promote        => dr standby epoch 1, active primary@1
                 approvals kept: req-2 switchover alice, req-2 promote bob
        dr       1 ms later: promote req-2                  => refused: dual control: promote of request "req-2" needs approvals by two different operators within 15 minutes; approved by 1: ["bob"]
        dr       (copy, 15 min) promote req-2               => dr active epoch 2, active dr@2
        dr       approve req-2 promote                      => dr standby epoch 1, active primary@1
        dr       promote req-2                              => dr active epoch 2, active dr@2
                 approvals kept: (none)
        dr       approve rk-1 rotate_key                    => dr active epoch 2, active dr@2
        dr       approve rk-1 rotate_key                    => dr active epoch 2, active dr@2
        dr       rotate to key 0                            => refused: key ids start at 1
        dr       rotate to key 2                            => dr active epoch 2, active dr@2, data key 2
        dr       rotate to key 3 (same request)             => refused: dual control: key rotation of request "rk-1" needs approvals by two different operators within 15 minutes; approved by 0: []
                 approvals kept: (none)
        primary  fence                                      => primary active fenced epoch 1, active primary@1
        primary  approve sw-1 promote                       => primary active fenced epoch 1, active primary@1
        primary  approve sw-1 promote                       => primary active fenced epoch 1, active primary@1
        primary  demote sw-1                                => refused: dual control: demote of request "sw-1" needs approvals by two different operators within 15 minutes; approved by 0: []
        primary  approve sw-1 switchover                    => primary active fenced epoch 1, active primary@1
        primary  approve sw-1 switchover                    => primary active fenced epoch 1, active primary@1
        primary  demote sw-1                                => primary standby epoch 1, active dr@2
                 approvals kept: (none)
        primary  resync sw-1                                => refused: dual control: resync of request "sw-1" needs approvals by two different operators within 15 minutes; approved by 0: []
        primary  approve fb-1 failback                      => primary standby epoch 1, active dr@2
        primary  approve fb-1 failback                      => primary standby epoch 1, active dr@2
        primary  resync fb-1                                => primary standby epoch 1, active dr@2
                 approvals kept: (none)
        primary  ship dr's records                          => applied x6
    "#]]
    .assert_eq(&log);
    assert_same_book(&primary, &dr);
    // The approvals on the standby were site-logged only; on the active dr they are journaled.
    expect![[r#"
        #1 primary@1 ops bootstrap => primary active epoch 1, active primary@1
        #2 primary@1 teller create_accounts => ok, ok
        #3 dr@2 dave promote => dr active epoch 2, active dr@2
        #4 dr@2 alice approve => dr active epoch 2, active dr@2
        #5 dr@2 bob approve => dr active epoch 2, active dr@2
        #6 dr@2 alice rotate_key => dr active epoch 2, active dr@2, data key 2
    "#]]
    .assert_eq(&journal_lines(&dr));
}

/// A site's kept approvals: `request action caller`, oldest first.
fn approvals(site: &Site) -> String {
    let approvals = &site.site().approvals;
    if approvals.is_empty() {
        return "(none)".into();
    }
    approvals.iter().map(|a| format!("{} {} {}", a.request_id, a.action, a.caller)).collect::<Vec<_>>().join(", ")
}

// -------------------------------------------------------------------------------------------
// 7. Epoch rules

// Goal: the epoch is a fencing number that only grows. Promote needs an epoch above every
// epoch seen; demote a higher epoch than the site's own; an observed epoch must be higher
// than every epoch seen; a site that knows of a higher epoch cannot unfence; a standby refuses
// ledger writes and the operations of an active site; an unbootstrapped site refuses them all.
#[test]
fn epoch_rules() {
    let mut primary = small_primary("primary");
    let mut dr = Site::standby("dr");
    let mut blank = Site::uninitialized();
    let mut log = String::new();
    dr.ship(&primary.records());
    step(&mut log, &mut dr, "teller", "create account", accounts(vec![new_account("x", "EUR")]));
    step(&mut log, &mut dr, "teller", "expire pending", Command::ExpirePending);
    step(&mut log, &mut dr, "ops", "fence", fence());
    step(&mut log, &mut dr, "ops", "unfence", unfence());
    step(&mut log, &mut dr, "ops", "demote to primary at epoch 2", demote("primary", 2, ""));
    step(&mut log, &mut dr, "ops", "resync from itself", resync("dr", 1, ""));
    step(&mut log, &mut dr, "ops", "promote at epoch 1", promote(1, false, ""));
    step(&mut log, &mut dr, "dr-watch", "observe dr3 at epoch 4", observe("dr3", 4));
    step(&mut log, &mut dr, "dr-watch", "observe dr3 at epoch 4 again", observe("dr3", 4));
    step(&mut log, &mut dr, "dr-watch", "observe primary at epoch 3", observe("primary", 3));
    step(&mut log, &mut dr, "dr-watch", "observe 'no name' at epoch 9", observe("no name", 9));
    step(&mut log, &mut dr, "ops", "resync from primary at epoch 3", resync("primary", 3, ""));
    step(&mut log, &mut dr, "ops", "promote at epoch 4", promote(4, false, ""));
    step(&mut log, &mut dr, "ops", "promote at epoch 5", promote(5, false, ""));
    step(&mut log, &mut dr, "ops", "promote at epoch 6", promote(6, false, ""));

    step(&mut log, &mut primary, "ops", "promote at epoch 2", promote(2, false, ""));
    step(&mut log, &mut primary, "ops", "demote to dr at epoch 1", demote("dr", 1, ""));
    let no_upstream =
        SiteCommand::Demote { active_site: "dr".into(), epoch: 5, upstream: vec![], request_id: "".into() };
    step(&mut log, &mut primary, "ops", "demote without upstream", Command::Site(no_upstream));
    step(&mut log, &mut primary, "ops", "resync from dr at epoch 1", resync("dr", 1, ""));
    step(&mut log, &mut primary, "ops", "fence", fence());
    step(&mut log, &mut primary, "ops", "unfence", unfence());
    step(&mut log, &mut primary, "dr-watch", "observe dr at epoch 5", observe("dr", 5));
    step(&mut log, &mut primary, "dr-watch", "observe dr at epoch 2", observe("dr", 2));
    step(&mut log, &mut primary, "ops", "unfence", unfence());
    step(&mut log, &mut primary, "ops", "fence", fence());
    step(&mut log, &mut primary, "ops", "unfence", unfence());
    step(&mut log, &mut primary, "teller", "create account", accounts(vec![new_account("x", "EUR")]));
    step(&mut log, &mut primary, "ops", "resync from dr at epoch 4", resync("dr", 4, ""));

    step(&mut log, &mut blank, "ops", "fence", fence());
    step(&mut log, &mut blank, "ops", "promote at epoch 2", promote(2, false, ""));
    step(&mut log, &mut blank, "ops", "approve", approve("req-1", "promote"));
    step(&mut log, &mut blank, "ops", "admin event", admin_node_removed(1));
    expect![[r#"
        dr       create account                             => refused: site dr is standby and takes no writes; the active site is primary at epoch 1
        dr       expire pending                             => refused: site dr is standby and takes no writes; the active site is primary at epoch 1
        dr       fence                                      => refused: site dr is standby; only an active site can be fenced
        dr       unfence                                    => refused: site dr is standby; only an active site can be unfenced
        dr       demote to primary at epoch 2               => refused: site dr is standby; only an active site can be demoted
        dr       resync from itself                         => refused: a site cannot resync from itself
        dr       promote at epoch 1                         => refused: epoch 1 must be higher than every epoch seen (1)
        dr       observe dr3 at epoch 4                     => dr standby epoch 1, active dr3@4
        dr       observe dr3 at epoch 4 again               => refused: epoch 4 is not higher than every epoch seen (4)
        dr       observe primary at epoch 3                 => refused: epoch 3 is not higher than every epoch seen (4)
        dr       observe 'no name' at epoch 9               => refused: site name "no name" must be a short id
        dr       resync from primary at epoch 3             => refused: the active site's epoch 3 must be at least every epoch seen (4) and above our own
        dr       promote at epoch 4                         => refused: epoch 4 must be higher than every epoch seen (4)
        dr       promote at epoch 5                         => dr active epoch 5, active dr@5
        dr       promote at epoch 6                         => refused: site dr is active; only a standby can be promoted
        primary  promote at epoch 2                         => refused: site primary is active; only a standby can be promoted
        primary  demote to dr at epoch 1                    => refused: site primary still takes writes: fence it first
        primary  demote without upstream                    => refused: upstream needs 1 to 16 endpoints
        primary  resync from dr at epoch 1                  => refused: site primary still takes writes: fence it (or record the new epoch) before discarding its journal
        primary  fence                                      => primary active fenced epoch 1, active primary@1
        primary  unfence                                    => primary active epoch 1, active primary@1
        primary  observe dr at epoch 5                      => primary active epoch 1, active dr@5
        primary  observe dr at epoch 2                      => refused: epoch 2 is not higher than every epoch seen (5)
        primary  unfence                                    => refused: site primary knows that dr is active at epoch 5; it cannot take writes at epoch 1
        primary  fence                                      => primary active fenced epoch 1, active dr@5
        primary  unfence                                    => refused: site primary knows that dr is active at epoch 5; it cannot take writes at epoch 1
        primary  create account                             => refused: site primary is superseded (another site is active at a higher epoch) and takes no writes; the active site is dr at epoch 5
        primary  resync from dr at epoch 4                  => refused: the active site's epoch 4 must be at least every epoch seen (5) and above our own
        (new)    fence                                      => refused: the site is not bootstrapped
        (new)    promote at epoch 2                         => refused: the site is not bootstrapped
        (new)    approve                                    => refused: the site is not bootstrapped
        (new)    admin event                                => refused: site (not bootstrapped) is uninitialized and takes no writes; the active site is (unknown) at epoch 0
    "#]]
    .assert_eq(&log);
    // What was journaled on the primary: the fence, the unfence and the observation (the site
    // was writable before or after each); not the second fence (fenced by epoch 5 already).
    expect![[r#"
        #6 primary@1 ops fence => primary active fenced epoch 1, active primary@1
        #7 primary@1 ops unfence => primary active epoch 1, active primary@1
        #8 primary@1 dr-watch observe_epoch => primary active epoch 1, active dr@5
    "#]]
    .assert_eq(&journal_lines(&primary).lines().skip(5).map(|l| format!("{l}\n")).collect::<String>());
    assert_eq!(dr.mem.journal.len(), 6, "the standby journaled only its promote: {}", journal_lines(&dr));
    assert_eq!(dr.record(6).origin.epoch, 5);
    assert!(blank.mem.site_log.is_empty() && blank.mem.journal.is_empty());
    let refusal = Refusal::SiteNotWritable {
        site: "primary".into(),
        role: "superseded (another site is active at a higher epoch)".into(),
        active_site: "dr".into(),
        epoch: 5,
    };
    assert_eq!(primary.apply("teller", Command::ExpirePending), Outcome::Refused(refusal));
}

// -------------------------------------------------------------------------------------------
// Bugs found while writing these tests, now fixed

// Goal: a resync is meant to leave an empty journal, to be re-shipped from seq 1. On a site
// that is still writable (an active site that was never told of the new epoch), the resync
// is journaled under the recording rule ("writable before") *after* the reset, so the fresh
// journal starts with the site's own Resync record and shipping the active site's seq 1
// halts. Either refusing a resync of a writable site, or not journaling a resync, would do.
#[test]
fn resync_of_a_writable_site_leaves_an_empty_journal() {
    let mut primary = small_primary("primary");
    let mut dr = Site::standby("dr");
    dr.ship(&primary.records());
    dr.apply("ops", promote(2, true, ""));
    dr.apply("teller", transfers(vec![posted("t4", "a", "b", "4.00")]));
    assert!(primary.site().writable(), "the old primary was never told of epoch 2");
    let outcome = primary.apply("ops", resync("dr", 2, ""));
    if outcome.is_refused() {
        return; // Refusing a resync of a writable site (fence it first) is a fix too.
    }
    assert_eq!(journal_lines(&primary), "", "a resync leaves an empty journal");
    assert_eq!(shipped_line(&primary.ship(&dr.records())), "applied x7");
    assert_same_book(&primary, &dr);
}

// Goal: a shipped site-operation record whose outcome was altered into a refusal is an altered
// record like any other: shipping halts. Today the standby copies the outcome into
// `JournalRecord::seal`, which asserts that refused commands are never journaled, and the
// state machine panics: every replica of the standby crashes on the same Raft entry, and again
// on every restart.
#[test]
fn a_shipped_record_with_a_refused_outcome_halts() {
    let primary = small_primary("primary");
    let refusal = Outcome::Refused(Refusal::SiteOperation { reason: "forged".into() });
    let bad = altered(&primary.record(1), |r| r.outcome = refusal);
    let mut dr = Site::standby("dr");
    let result = dr.ship(&[bad]);
    assert!(matches!(result[..], [Shipped::Halted(_)]), "{result:?}");
    assert!(dr.mem.journal.is_empty());
}

// Goal: the epoch only grows. A site that has seen epoch 5 (from the watcher) must not be
// demoted to a lower epoch: today Demote compares the new epoch with the site's own epoch
// only, not with every epoch seen, so it lowers the site's `active_epoch` from 5 to 3, after
// which the site can even be promoted at epoch 4, below an epoch another site already holds.
#[test]
fn demote_never_lowers_the_epoch_seen() {
    let mut primary = Site::active("primary");
    primary.apply("dr-watch", observe("dr", 5));
    assert_eq!(primary.site().epoch_seen(), 5);
    let outcome = primary.apply("ops", demote("dr", 3, ""));
    assert!(outcome.is_refused(), "demote to epoch 3 after seeing epoch 5: {}", describe(&outcome));
    assert_eq!(primary.site().epoch_seen(), 5);
}

// Goal: a halt belongs to one standby period. A standby that halted and was then promoted
// (failover: its watermark is the recovery point) and later demoted in a planned switchover
// must follow its new active site, whose journal continues its own. Today the stale halt
// survives Promote and Demote (only Resync clears the watermark), so every record is ignored.
#[test]
fn a_halt_does_not_outlive_the_standby_period() {
    let primary = small_primary("primary");
    let mut dr = Site::standby("dr");
    dr.ship(&primary.records_from(1)[..3]);
    dr.ship(&[altered(&primary.record(4), |r| change_amount(r, "9.00"))]);
    assert!(dr.site().watermark.halted.is_some(), "halted on a record altered in transit");
    dr.apply("ops", promote(2, true, ""));
    dr.apply("teller", transfers(vec![posted("t9", "a", "b", "9.00")]));

    // A planned switchover from dr to a third site that followed dr.
    let mut dr3 = Site::standby("dr3");
    dr3.ship(&dr.records());
    dr.apply("ops", fence());
    dr3.ship(&dr.records_from(6));
    dr3.apply("ops", promote(3, false, ""));
    dr.apply("ops", demote("dr3", 3, ""));
    assert_eq!(shipped_line(&dr.ship(&dr3.records_from(7))), "applied");
}
