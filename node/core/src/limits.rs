//! Every limit of the ledger, named and justified in one place.
//!
//! The API validates against these before proposing, and the ledger validates again when it
//! applies, so a limit is enforced identically on every replica of both sites.

/// Longest account or transfer id, in bytes. Ids are keys in sled and appear in every journal
/// record, so they are kept short enough that a full batch stays under [`COMMAND_BYTES_MAX`].
pub const ID_BYTES_MAX: usize = 64;

/// Longest transfer reference (free text for the core system, e.g. an end-to-end id).
pub const REFERENCE_BYTES_MAX: usize = 128;

/// Longest personal-data field (holder name, national id, card number) in plaintext bytes.
pub const PII_BYTES_MAX: usize = 128;

/// Most items (accounts, updates or transfers) in one request. Each request is one command and
/// one journal record; with [`COMMAND_BYTES_MAX`] this keeps every sled value far from the
/// ~128 KiB point where sled moves values into blob files that it never fsyncs.
pub const BATCH_ITEMS_MAX: usize = 500;

/// Largest encoded command. A journal record is a command plus its per-item outcome and a
/// fixed header, so records stay under 64 KiB.
pub const COMMAND_BYTES_MAX: usize = 56 * 1024;

/// Largest encoded Raft entry payload built by the batcher (group commit). It was 60 KiB while
/// sled held the Raft log (sled spills larger pages into files it never fsyncs); since the log
/// is in files, 240 KiB: a loaded leader proposes a third as many entries, and a closed loop
/// at batch 100 committed ~23 % more (docs/benchmarks.md).
pub const ENTRY_BYTES_MAX: usize = 240 * 1024;

/// Largest amount of one transfer, in major units of its currency (10^15). Balances are
/// `rust_decimal` (96-bit mantissa, ~7.9 * 10^28), so ten trillion maximal transfers still fit;
/// beyond that the ledger rejects with an overflow code instead of wrapping.
pub const AMOUNT_MAX_MAJOR_UNITS: i64 = 1_000_000_000_000_000;

/// Longest pending timeout, in milliseconds (one year). Keeps `expires_at_ms` far from overflow.
pub const PENDING_TIMEOUT_MS_MAX: u64 = 366 * 24 * 60 * 60 * 1000;

/// Most pending transfers one `ExpirePending` command expires, so that one command (and its
/// journal record) stays bounded; the ledger timer proposes another while more are due.
pub const EXPIRIES_PER_COMMAND_MAX: usize = 256;

/// Most history rows returned by one `GetAccountHistory` page.
pub const HISTORY_PAGE_MAX: usize = 1000;

/// Longest caller identity recorded in the journal (certificate common name).
pub const CALLER_BYTES_MAX: usize = 128;

const _: () = assert!(COMMAND_BYTES_MAX < ENTRY_BYTES_MAX);
const _: () = assert!(ENTRY_BYTES_MAX < 256 * 1024);
const _: () = assert!(ID_BYTES_MAX * 4 + REFERENCE_BYTES_MAX < COMMAND_BYTES_MAX / 64);
