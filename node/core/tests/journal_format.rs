//! The journal's byte format as docs/journal.md states it, pinned.
//!
//! The worked example of docs/journal.md (a ledger bootstrapped, two accounts opened, one
//! transfer posted) is built here through `ledger::apply`, and its bytes are `expect!`
//! snapshots: if the encoding changes, these fail and the document must change with them.
//! The annotated dump is produced by a hand decoder that follows the document, not by serde,
//! so it also checks the layout the document describes.

use std::str::FromStr;

use expect_test::expect;
use ledger_core::Decimal;
use ledger_core::account::AccountFlags;
use ledger_core::account::NewAccount;
use ledger_core::codec;
use ledger_core::command::Command;
use ledger_core::command::Envelope;
use ledger_core::id::AccountId;
use ledger_core::journal::SiteLogEntry;
use ledger_core::ledger;
use ledger_core::pii::AccountPii;
use ledger_core::reject::ResultCode;
use ledger_core::site::SiteCommand;
use ledger_core::site::SiteRole;
use ledger_core::store::MemStore;
use ledger_core::store::Overlay;
use ledger_core::transfer::NewTransfer;
use sha2::Digest;
use sha2::Sha256;

/// Ledger time of the example's first command (2023-11-14T22:13:20Z).
const START_MS: u64 = 1_700_000_000_000;

/// Applies the example's three commands, one ledger millisecond apart, and returns the store.
fn worked_example() -> MemStore {
    let mut mem = MemStore::new();
    let account = |id: &str| NewAccount {
        id: AccountId::new(id),
        currency: "EUR".into(),
        flags: AccountFlags::default(),
        overdraft_limit: None,
        code: 0,
        pii: AccountPii::default(),
    };
    let bootstrap = SiteCommand::Bootstrap {
        name: "primary".into(),
        role: SiteRole::Active,
        epoch: 1,
        upstream: Vec::new(),
        dual_control: false,
    };
    let commands = [
        ("operator", Command::Site(bootstrap)),
        ("teller", Command::CreateAccounts(vec![account("bank"), account("alice")])),
        (
            "teller",
            Command::CreateTransfers {
                transfers: vec![NewTransfer::posted("t1", "bank", "alice", Decimal::from_str("100.00").unwrap())],
                atomic: false,
            },
        ),
    ];
    for (step, (caller, command)) in commands.into_iter().enumerate() {
        let envelope = Envelope { caller: caller.into(), command };
        let mut overlay = Overlay::new(&mem);
        let step = step as u64;
        let outcome = ledger::apply(&mut overlay, &envelope, START_MS + step, step + 1);
        assert!(!outcome.is_refused(), "step {step} refused: {outcome:?}");
        let changes = overlay.into_changes();
        mem.commit(changes);
    }
    assert_eq!(mem.journal.len(), 3);
    assert_eq!(mem.site_log.len(), 1);
    mem
}

/// The document's formula, with `sha2` alone: `SHA-256(prefix ‖ prev_hash ‖ canonical[..len-32])`.
fn formula(prefix: &[u8], prev_hash: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prefix);
    hasher.update(prev_hash);
    hasher.update(&canonical[..canonical.len() - 32]);
    hasher.finalize().into()
}

/// Goal: every record of the example verifies with the documented formula, `canonical` ends
/// with the record's own hash, and the formula the proto used to imply (hashing all of
/// `canonical`) does not verify.
/// Method: recompute each hash with `sha2` over the documented bytes and compare.
#[test]
fn documented_formula_verifies_the_example() {
    let mem = worked_example();
    let mut prev = [0u8; 32];
    for record in &mem.journal {
        let canonical = codec::encode(record);
        assert_eq!(canonical[0], codec::FORMAT_VERSION);
        assert_eq!(&canonical[canonical.len() - 32..], &record.hash.0, "canonical ends with the hash");
        assert_eq!(record.prev_hash.0, prev, "chained to the previous record (genesis: zeros)");
        assert_eq!(formula(b"", &prev, &canonical), record.hash.0, "seq {}", record.seq);
        let naive: [u8; 32] = Sha256::new().chain_update(prev).chain_update(&canonical).finalize().into();
        assert_ne!(naive, record.hash.0, "the whole of canonical is not what is hashed");
        // The hashed body also ends with prev_hash: it is hashed twice, once as a prefix.
        assert_eq!(&canonical[canonical.len() - 64..canonical.len() - 32], &prev);
        prev = record.hash.0;
    }
    let mut prev = [0u8; 32];
    for entry in &mem.site_log {
        let canonical = codec::encode(entry);
        assert_eq!(&canonical[canonical.len() - 32..], &entry.hash.0);
        assert_eq!(formula(b"site-log", &prev, &canonical), entry.hash.0, "site log seq {}", entry.seq);
        prev = entry.hash.0;
    }
}

/// Goal: pin the worked example of docs/journal.md: each record's hash, the canonical bytes
/// of all three records in hex, and field-by-field dumps of the transfer (seq 3) and the
/// accounts (seq 2) records.
/// Method: build the example, dump with the hand decoder, compare with the snapshots.
#[test]
fn worked_example_bytes() {
    let mem = worked_example();
    let heads: Vec<String> = mem.journal.iter().map(|r| format!("seq {} hash {}", r.seq, r.hash)).collect();
    expect![[r#"
        seq 1 hash 46370ec15e9e8c185804ef198b2d6461668b28ad2f2afaacccaa253d2cd2b3d5
        seq 2 hash 2bb73c32c9c66dc6d248f6158d0531521be2988299dde0400cc7191eb9d9e2fd
        seq 3 hash 138439205bf736b01271071c6852be2349ebb64bdd9b00fee39a50477a489497"#]]
    .assert_eq(&heads.join("\n"));
    let canonical: Vec<Vec<u8>> = mem.journal.iter().map(codec::encode).collect();
    expect![[r#"
        010382d095ffbc31077072696d61727901030674656c6c657202010274310462
        616e6b05616c6963650000020010270000000000000000000000000000000001
        00002bb73c32c9c66dc6d248f6158d0531521be2988299dde0400cc7191eb9d9
        e2fd138439205bf736b01271071c6852be2349ebb64bdd9b00fee39a50477a48
        9497"#]]
    .assert_eq(&hex_lines(&canonical[2]));
    expect![[r#"
        000  01                                format version = 1
        001  03                                seq = 3
        002  82d095ffbc31                      ledger_time_ms = 1700000000002
        008  077072696d617279                  origin.site = "primary"
        016  01                                origin.epoch = 1
        017  03                                origin.raft_index = 3
        018  0674656c6c6572                    caller = "teller"
        025  02                                command (variant) = 2
        026  01                                CreateTransfers.transfers (len) = 1
        027  027431                            [0].id = "t1"
        030  0462616e6b                        [0].debit_account_id = "bank"
        035  05616c696365                      [0].credit_account_id = "alice"
        041  00000200102700000000000000000000  [0].amount = "100.00"
        057  00                                [0].currency (Option tag) = 0
        058  00                                [0].code = 0
        059  00                                [0].reference = ""
        060  00                                [0].kind (variant) = 0
        061  00                                CreateTransfers.atomic = false
        062  00                                outcome (variant) = 0
        063  01                                Items.0 (len) = 1
        064  00                                [0].code (wire index) = 0
        065  00                                [0].replayed = false
        066  2bb73c32c9c66dc6..                prev_hash = "2bb73c32c9c66dc6d248f6158d0531521be2988299dde0400cc7191eb9d9e2fd"
        098  138439205bf736b0..                hash (not hashed) = "138439205bf736b01271071c6852be2349ebb64bdd9b00fee39a50477a489497"
    "#]].assert_eq(&dump_record(&canonical[2]));
    expect![[r#"
        010281d095ffbc31077072696d61727901020674656c6c657200020462616e6b
        034555520000000000000005616c696365034555520000000000000000020000
        000046370ec15e9e8c185804ef198b2d6461668b28ad2f2afaacccaa253d2cd2
        b3d52bb73c32c9c66dc6d248f6158d0531521be2988299dde0400cc7191eb9d9
        e2fd"#]]
    .assert_eq(&hex_lines(&canonical[1]));
    expect![[r#"
        000  01                                format version = 1
        001  02                                seq = 2
        002  81d095ffbc31                      ledger_time_ms = 1700000000001
        008  077072696d617279                  origin.site = "primary"
        016  01                                origin.epoch = 1
        017  02                                origin.raft_index = 2
        018  0674656c6c6572                    caller = "teller"
        025  00                                command (variant) = 0
        026  02                                CreateAccounts.0 (len) = 2
        027  0462616e6b                        [0].id = "bank"
        032  03455552                          [0].currency = "EUR"
        036  00                                [0].flags.debits_must_not_exceed_credits = false
        037  00                                [0].flags.credits_must_not_exceed_debits = false
        038  00                                [0].overdraft_limit (Option tag) = 0
        039  00                                [0].code = 0
        040  00                                [0].pii.holder_name (Option tag) = 0
        041  00                                [0].pii.national_id (Option tag) = 0
        042  00                                [0].pii.card_number (Option tag) = 0
        043  05616c696365                      [1].id = "alice"
        049  03455552                          [1].currency = "EUR"
        053  00                                [1].flags.debits_must_not_exceed_credits = false
        054  00                                [1].flags.credits_must_not_exceed_debits = false
        055  00                                [1].overdraft_limit (Option tag) = 0
        056  00                                [1].code = 0
        057  00                                [1].pii.holder_name (Option tag) = 0
        058  00                                [1].pii.national_id (Option tag) = 0
        059  00                                [1].pii.card_number (Option tag) = 0
        060  00                                outcome (variant) = 0
        061  02                                Items.0 (len) = 2
        062  00                                [0].code (wire index) = 0
        063  00                                [0].replayed = false
        064  00                                [1].code (wire index) = 0
        065  00                                [1].replayed = false
        066  46370ec15e9e8c18..                prev_hash = "46370ec15e9e8c185804ef198b2d6461668b28ad2f2afaacccaa253d2cd2b3d5"
        098  2bb73c32c9c66dc6..                hash (not hashed) = "2bb73c32c9c66dc6d248f6158d0531521be2988299dde0400cc7191eb9d9e2fd"
    "#]].assert_eq(&dump_record(&canonical[1]));
    expect![[r#"
        010180d095ffbc31077072696d6172790101086f70657261746f720400077072
        696d6172790101000002077072696d617279010100077072696d617279010001
        0000000000000000000000000000000000000000000000000000000000000000
        00000000000046370ec15e9e8c185804ef198b2d6461668b28ad2f2afaacccaa
        253d2cd2b3d5"#]]
    .assert_eq(&hex_lines(&canonical[0]));
}

/// Hex, 32 bytes per line.
fn hex_lines(bytes: &[u8]) -> String {
    bytes.chunks(32).map(hex::encode).collect::<Vec<_>>().join("\n")
}

/// Goal: pin the wire index of every result code. serde encodes an enum variant by its
/// position in the declaration, not by its `#[repr(u32)]` value (the stable code of the API),
/// so the document carries this table.
/// Method: encode each code alone and read its varint back.
#[test]
fn result_code_wire_indices() {
    let mut table = String::new();
    for (position, code) in ResultCode::ALL.iter().enumerate() {
        let bytes = codec::encode(code);
        let mut cursor = Cursor { bytes: &bytes, at: 1 };
        let index = cursor.varint();
        assert_eq!(index, position as u64);
        assert_eq!(cursor.at, bytes.len());
        table.push_str(&format!("| {index} | {} | {} |\n", *code as u32, code.name()));
    }
    expect![[r#"
        | 0 | 0 | ok |
        | 1 | 1 | linked_event_failed |
        | 2 | 2 | id_invalid |
        | 3 | 3 | id_conflict |
        | 4 | 4 | id_duplicate_in_batch |
        | 5 | 10 | currency_unknown |
        | 6 | 11 | flags_mutually_exclusive |
        | 7 | 12 | overdraft_limit_invalid |
        | 8 | 13 | personal_data_too_long |
        | 9 | 20 | debit_account_id_invalid |
        | 10 | 21 | credit_account_id_invalid |
        | 11 | 22 | accounts_must_be_different |
        | 12 | 23 | pending_id_invalid |
        | 13 | 24 | pending_id_must_be_different |
        | 14 | 25 | amount_not_positive |
        | 15 | 26 | amount_too_precise |
        | 16 | 27 | amount_too_large |
        | 17 | 28 | reference_too_long |
        | 18 | 29 | timeout_invalid |
        | 19 | 30 | amount_invalid |
        | 20 | 31 | kind_invalid |
        | 21 | 40 | debit_account_not_found |
        | 22 | 41 | credit_account_not_found |
        | 23 | 42 | currency_mismatch |
        | 24 | 43 | debit_account_closed |
        | 25 | 44 | credit_account_closed |
        | 26 | 45 | debit_account_frozen |
        | 27 | 46 | credit_account_frozen |
        | 28 | 47 | pending_transfer_not_found |
        | 29 | 48 | pending_transfer_not_pending |
        | 30 | 49 | pending_transfer_already_posted |
        | 31 | 50 | pending_transfer_already_voided |
        | 32 | 51 | pending_transfer_expired |
        | 33 | 52 | pending_transfer_mismatch |
        | 34 | 53 | post_amount_exceeds_pending |
        | 35 | 54 | exceeds_credits |
        | 36 | 55 | exceeds_debits |
        | 37 | 56 | balance_overflow |
        | 38 | 70 | account_not_found |
        | 39 | 71 | account_closed |
        | 40 | 72 | account_has_pending |
        | 41 | 73 | account_balance_not_zero |
    "#]]
    .assert_eq(&table);
}

/// Goal: the site log entry of the example (the bootstrap) verifies with its own prefix.
/// Method: pin its hash and bytes; check the hash with `sha2` over
/// `"site-log" ‖ prev_hash ‖ canonical[..len-32]`.
#[test]
fn site_log_entry_of_the_example() {
    let mem = worked_example();
    let entry: &SiteLogEntry = &mem.site_log[0];
    let canonical = codec::encode(entry);
    assert_eq!(formula(b"site-log", &[0; 32], &canonical), entry.hash.0);
    expect!["32ad2e2c5c4f16e29322764196846a855f32d0446ce3bf42d2ba54c1b7636228"].assert_eq(&entry.hash.to_hex());
    expect![[r#"
        010180d095ffbc31086f70657261746f720000077072696d6172790101000007
        7072696d617279010100077072696d6172790100010000000000000100000000
        0000000000000000000000000000000000000000000000000000000032ad2e2c
        5c4f16e29322764196846a855f32d0446ce3bf42d2ba54c1b7636228"#]]
    .assert_eq(&hex_lines(&canonical));
}

/// Reads the document's primitives from canonical bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    /// Unsigned LEB128: 7 bits per byte, least significant group first, high bit = more.
    fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)[0];
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint longer than 10 bytes");
    }

    fn string(&mut self) -> String {
        let len = self.varint() as usize;
        String::from_utf8(self.take(len).to_vec()).expect("UTF-8")
    }

    fn bool(&mut self) -> bool {
        match self.take(1)[0] {
            0 => false,
            1 => true,
            other => panic!("bool byte {other}"),
        }
    }

    /// The 16-byte decimal: flags (scale in byte 2, sign in bit 7 of byte 3), then the 96-bit
    /// magnitude little-endian.
    fn decimal(&mut self) -> String {
        let b = self.take(16).to_vec();
        assert_eq!((b[0], b[1], b[3] & 0x7F), (0, 0, 0));
        let scale = u32::from(b[2]);
        let mut magnitude = [0u8; 16];
        magnitude[..12].copy_from_slice(&b[4..16]);
        let text = Decimal::from_i128_with_scale(i128::from_le_bytes(magnitude), scale).to_string();
        if b[3] & 0x80 != 0 { format!("-{text}") } else { text }
    }
}

/// A field-by-field dump of a `CreateAccounts` record (accounts without personal data) or a
/// `CreateTransfers` record (`Posted` transfers) with an `Items` outcome, one line per field:
/// offset, bytes in hex, field, value.
fn dump_record(canonical: &[u8]) -> String {
    let mut c = Cursor { bytes: canonical, at: 0 };
    let mut out = String::new();
    let mut line = |c: &Cursor, start: usize, field: &str, value: String| {
        let bytes = &c.bytes[start..c.at];
        let shown = if bytes.len() > 16 { format!("{}..", hex::encode(&bytes[..8])) } else { hex::encode(bytes) };
        out.push_str(&format!("{start:03}  {shown:<32}  {field} = {value}\n"));
    };
    macro_rules! field {
        ($name:expr, $read:expr) => {{
            let start = c.at;
            let value = $read;
            line(&c, start, $name, format!("{value:?}"));
            value
        }};
    }
    field!("format version", c.take(1)[0]);
    field!("seq", c.varint());
    field!("ledger_time_ms", c.varint());
    field!("origin.site", c.string());
    field!("origin.epoch", c.varint());
    field!("origin.raft_index", c.varint());
    field!("caller", c.string());
    match field!("command (variant)", c.varint()) {
        0 => {
            let n = field!("CreateAccounts.0 (len)", c.varint());
            for i in 0..n {
                field!(&format!("[{i}].id"), c.string());
                field!(&format!("[{i}].currency"), c.string());
                field!(&format!("[{i}].flags.debits_must_not_exceed_credits"), c.bool());
                field!(&format!("[{i}].flags.credits_must_not_exceed_debits"), c.bool());
                assert_eq!(field!(&format!("[{i}].overdraft_limit (Option tag)"), c.take(1)[0]), 0, "None");
                field!(&format!("[{i}].code"), c.varint());
                for pii in ["holder_name", "national_id", "card_number"] {
                    assert_eq!(field!(&format!("[{i}].pii.{pii} (Option tag)"), c.take(1)[0]), 0, "None");
                }
            }
        }
        2 => {
            let n = field!("CreateTransfers.transfers (len)", c.varint());
            for i in 0..n {
                field!(&format!("[{i}].id"), c.string());
                field!(&format!("[{i}].debit_account_id"), c.string());
                field!(&format!("[{i}].credit_account_id"), c.string());
                field!(&format!("[{i}].amount"), c.decimal());
                assert_eq!(field!(&format!("[{i}].currency (Option tag)"), c.take(1)[0]), 0, "None");
                field!(&format!("[{i}].code"), c.varint());
                field!(&format!("[{i}].reference"), c.string());
                assert_eq!(field!(&format!("[{i}].kind (variant)"), c.varint()), 0, "Posted");
            }
            field!("CreateTransfers.atomic", c.bool());
        }
        other => panic!("the dump covers commands 0 and 2, not {other}"),
    }
    assert_eq!(field!("outcome (variant)", c.varint()), 0, "Items");
    let n = field!("Items.0 (len)", c.varint());
    for i in 0..n {
        field!(&format!("[{i}].code (wire index)"), c.varint());
        field!(&format!("[{i}].replayed"), c.bool());
    }
    field!("prev_hash", hex::encode(c.take(32)));
    field!("hash (not hashed)", hex::encode(c.take(32)));
    assert_eq!(c.at, canonical.len(), "every byte accounted for");
    out
}
