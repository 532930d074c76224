//! Workloads for the write-path micro-benchmarks (`cargo bench -p ledger-benches`): the same
//! shape of commands `ledger bench` sends (single-phase transfers of 1.00 EUR between random
//! pairs of `accounts` accounts), built without a cluster so that one stage of the write path
//! can be timed on its own.

use ledger_client::bench::Rng;
use ledger_core::Decimal;
use ledger_core::account::NewAccount;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::limits::BATCH_ITEMS_MAX;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_core::transfer::NewTransfer;
use ledger_node::raft::types::Entry;
use ledger_node::raft::types::Payload;
use openraft::EntryPayload;
use openraft::LogId;

/// Ledger time of the first command.
pub const START_MS: u64 = 1_700_000_000_000;

fn envelope(command: Command) -> Envelope {
    Envelope { caller: "bench".into(), command }
}

/// The run id `ledger bench` makes (`bench-<nanoseconds, hex>-<pid>`), fixed: the ids here
/// have the shape and length of the cluster benchmark's (38 and 30 bytes), because id length
/// decides what hashing, comparing and copying an id costs.
const RUN_ID: &str = "bench-187c4d2e9a6b3f10-40213";
/// The transfer id prefix `ledger bench` makes.
const TRANSFER_PREFIX: &str = "t-187c4d2e9a6b3f10-40213";
/// `ledger bench`'s clients.
const WORKERS: u64 = 64;

pub fn account_id(i: usize) -> String {
    ledger_client::bench::account_id(RUN_ID, i)
}

/// Bootstraps an active site and opens `accounts` EUR accounts without balance limits.
pub fn setup_commands(accounts: usize) -> Vec<Envelope> {
    let bootstrap = envelope(Command::Site(SiteCommand::Bootstrap {
        name: "bench".into(),
        role: SiteRole::Active,
        epoch: 1,
        upstream: vec![],
        dual_control: false,
    }));
    let ids: Vec<usize> = (0..accounts).collect();
    let opens = ids.chunks(BATCH_ITEMS_MAX).map(|chunk| {
        envelope(Command::CreateAccounts(
            chunk
                .iter()
                .map(|i| NewAccount {
                    id: account_id(*i).as_str().into(),
                    currency: "EUR".into(),
                    flags: Default::default(),
                    overdraft_limit: None,
                    code: 0,
                    pii: Default::default(),
                })
                .collect(),
        ))
    });
    std::iter::once(bootstrap).chain(opens).collect()
}

/// Generates transfer commands with ids that never repeat, so that every transfer is new work
/// (a replayed id would take the cheaper idempotent path).
pub struct Workload {
    accounts: usize,
    next_id: u64,
    rng: Rng,
}

impl Workload {
    pub fn new(accounts: usize) -> Workload {
        assert!(accounts >= 2);
        Workload { accounts, next_id: 0, rng: Rng::new(0x9E37_79B9_7F4A_7C15) }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    /// One `CreateTransfers` command of `batch` transfers.
    pub fn command(&mut self, batch: usize) -> Envelope {
        let transfers = (0..batch)
            .map(|_| {
                self.next_id += 1;
                let debit = self.below(self.accounts);
                let credit = (debit + 1 + self.below(self.accounts - 1)) % self.accounts;
                let worker = (self.next_id % WORKERS) as usize;
                NewTransfer::posted(
                    &ledger_client::bench::transfer_id(TRANSFER_PREFIX, worker, self.next_id / WORKERS + 1),
                    &account_id(debit),
                    &account_id(credit),
                    Decimal::ONE,
                )
            })
            .collect();
        envelope(Command::CreateTransfers { transfers, atomic: false })
    }
}

/// A Raft entry at `index` carrying `commands`, as the batcher proposes them.
pub fn entry(index: u64, commands: Vec<Envelope>) -> Entry {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Payload::Commands {
            proposed_at_ms: START_MS + index,
            commands: std::sync::Arc::new(commands),
        }),
    }
}

/// Opens a state machine in `dir` and applies [`setup_commands`] for `accounts` accounts, an
/// entry each; returns the log store (kept open), the state machine and the last entry's index.
pub async fn setup_state_machine(
    dir: &std::path::Path,
    accounts: usize,
) -> (ledger_node::store::log::LogStore, ledger_node::store::state::LedgerStateMachine, u64) {
    use openraft::storage::RaftStateMachine;
    let (log, mut sm) = ledger_node::store::open(dir, 128 * 1024 * 1024).expect("open store");
    let mut index = 0;
    for envelope in setup_commands(accounts) {
        index += 1;
        sm.apply(vec![entry(index, vec![envelope])]).await.expect("setup applies");
    }
    (log, sm, index)
}
