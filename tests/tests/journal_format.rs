//! The journal as an outside auditor sees it: exported over gRPC from a real cluster and
//! checked with nothing but `sha2` and docs/journal.md.
//!
//! The verifier here deliberately does not use `ledger-core` (nor the client's verifier): it
//! reads the `canonical` bytes by hand, byte by byte as docs/journal.md lays them out, and
//! recomputes each hash with the documented formula. If the document and the code part ways,
//! this test fails.

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_client::proto as pb;
use ledger_tests::*;
use sha2::Digest;
use sha2::Sha256;

/// The whole scenario, cluster start included, must finish within this.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// docs/journal.md, "Format version".
const FORMAT_VERSION: u8 = 1;
/// docs/journal.md, "Site log": the domain prefix of site log hashes.
const SITE_LOG_PREFIX: &[u8] = b"site-log";
/// docs/journal.md, `Command` variants in wire order.
const COMMAND_VARIANTS: [&str; 6] =
    ["create_accounts", "update_accounts", "create_transfers", "expire_pending", "site", "admin"];
/// docs/journal.md, `SiteCommand` variants in wire order.
const SITE_COMMAND_VARIANTS: [&str; 9] =
    ["bootstrap", "fence", "unfence", "promote", "demote", "resync", "observe_epoch", "approve", "rotate_key"];
/// docs/journal.md, "Result codes": the stable code (as the API returns it) at each wire index.
const RESULT_CODE_AT_WIRE_INDEX: [u32; 42] = [
    0, 1, 2, 3, 4, 10, 11, 12, 13, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, 52, 53, 54, 55, 56, 70, 71, 72, 73,
];

/// A cursor over canonical bytes with the document's primitives.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("{n} bytes wanted at offset {}, past the end", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// Unsigned LEB128, at most 10 bytes.
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint over 10 bytes before offset {}", self.at))
    }

    fn len(&mut self) -> Result<usize, String> {
        Ok(self.varint()? as usize)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }

    fn bool(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("bool byte {other}")),
        }
    }

    /// `Option<T>`: tag 0 (none) or 1 (some, then T).
    fn some(&mut self) -> Result<bool, String> {
        self.bool()
    }

    /// The 16-byte decimal, rendered as text: flags word (scale in byte 2, sign in bit 7 of
    /// byte 3), then the 96-bit magnitude little-endian.
    fn decimal(&mut self) -> Result<String, String> {
        let b = self.take(16)?;
        if b[0] != 0 || b[1] != 0 || b[2] > 28 || b[3] & 0x7F != 0 {
            return Err(format!("bad decimal flags {:02x?}", &b[..4]));
        }
        let mut magnitude = [0u8; 16];
        magnitude[..12].copy_from_slice(&b[4..16]);
        let digits = u128::from_le_bytes(magnitude).to_string();
        let scale = b[2] as usize;
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        let sign = if b[3] & 0x80 != 0 { "-" } else { "" };
        Ok(if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") })
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// What the hand decoder reads from a journal record's canonical bytes.
#[derive(Debug, Default)]
struct Decoded {
    seq: u64,
    ledger_time_ms: u64,
    origin_site: String,
    origin_epoch: u64,
    origin_raft_index: u64,
    caller: String,
    command: &'static str,
    /// (id, kind variant or 0 for accounts, amount text or currency) per item, for
    /// `create_accounts` and `create_transfers`.
    items: Vec<(String, u64, String)>,
    atomic: bool,
    /// Wire indices of the item result codes, in item order.
    result_wire_indices: Vec<u64>,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// Decodes the header of any record, and the whole body of `create_accounts` and
/// `create_transfers` records (whose outcome is `Items`), per docs/journal.md.
fn decode(canonical: &[u8]) -> Result<Decoded, String> {
    let mut r = Reader::new(canonical);
    let version = r.byte()?;
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}"));
    }
    let mut d = Decoded {
        seq: r.varint()?,
        ledger_time_ms: r.varint()?,
        origin_site: r.string()?,
        origin_epoch: r.varint()?,
        origin_raft_index: r.varint()?,
        caller: r.string()?,
        ..Decoded::default()
    };
    let variant = r.varint()? as usize;
    d.command = COMMAND_VARIANTS.get(variant).ok_or_else(|| format!("command variant {variant}"))?;
    match d.command {
        "create_accounts" => {
            for _ in 0..r.len()? {
                let id = r.string()?;
                let currency = r.string()?;
                r.bool()?; // flags.debits_must_not_exceed_credits
                r.bool()?; // flags.credits_must_not_exceed_debits
                if r.some()? {
                    r.decimal()?; // overdraft_limit
                }
                r.varint()?; // code
                for _pii in ["holder_name", "national_id", "card_number"] {
                    if r.some()? {
                        r.varint()?; // key_id
                        r.take(12)?; // nonce
                        let n = r.len()?;
                        r.take(n)?; // ciphertext ‖ tag
                    }
                }
                d.items.push((id, 0, currency));
            }
        }
        "create_transfers" => {
            for _ in 0..r.len()? {
                let id = r.string()?;
                r.string()?; // debit_account_id
                r.string()?; // credit_account_id
                let amount = r.decimal()?;
                if r.some()? {
                    r.string()?; // currency
                }
                r.varint()?; // code
                r.string()?; // reference
                let kind = r.varint()?;
                match kind {
                    0 => {}
                    1 => {
                        if r.some()? {
                            r.varint()?; // timeout_ms
                        }
                    }
                    2 | 3 => {
                        r.string()?; // pending_id
                    }
                    other => return Err(format!("transfer kind {other}")),
                }
                d.items.push((id, kind, amount));
            }
            d.atomic = r.bool()?;
        }
        // Other commands: only the header and the trailer are checked here.
        _ => {
            r.at = canonical.len().checked_sub(64).ok_or("shorter than its hashes")?;
        }
    }
    if matches!(d.command, "create_accounts" | "create_transfers") {
        let outcome = r.varint()?;
        if outcome != 0 {
            return Err(format!("outcome variant {outcome}, expected Items"));
        }
        for _ in 0..r.len()? {
            d.result_wire_indices.push(r.varint()?);
            r.bool()?; // replayed
        }
    }
    if r.remaining() != 64 {
        return Err(format!("{} bytes left for prev_hash and hash, expected 64", r.remaining()));
    }
    d.prev_hash = r.take(32)?.try_into().unwrap();
    d.hash = r.take(32)?.try_into().unwrap();
    Ok(d)
}

/// docs/journal.md: `hash = SHA-256(prefix ‖ prev_hash ‖ canonical[..len-32])`, and
/// `canonical[len-32..]` is the hash itself.
fn recompute(prefix: &[u8], prev_hash: &[u8; 32], canonical: &[u8]) -> Result<[u8; 32], String> {
    if canonical.len() < 1 + 64 || canonical[0] != FORMAT_VERSION {
        return Err("not a version-1 record".into());
    }
    let mut hasher = Sha256::new();
    hasher.update(prefix);
    hasher.update(prev_hash);
    hasher.update(&canonical[..canonical.len() - 32]);
    Ok(hasher.finalize().into())
}

/// Verifies a chain from genesis using the canonical bytes alone: contiguous seqs from 1,
/// each record's embedded prev_hash equal to the previous record's hash (zeros first), and
/// each stored hash equal to the recomputed one. Returns the last (seq, hash).
fn verify_chain(prefix: &[u8], canonicals: &[Vec<u8>]) -> Result<(u64, [u8; 32]), String> {
    let mut head = (0u64, [0u8; 32]);
    for canonical in canonicals {
        let mut r = Reader::new(canonical);
        r.byte()?;
        let seq = r.varint()?;
        if seq != head.0 + 1 {
            return Err(format!("seq {seq} follows {}", head.0));
        }
        let n = canonical.len();
        if n < 1 + 64 || canonical[n - 64..n - 32] != head.1 {
            return Err(format!("seq {seq}: prev_hash is not the previous record's hash"));
        }
        let computed = recompute(prefix, &head.1, canonical)?;
        if canonical[n - 32..] != computed {
            return Err(format!("seq {seq}: stored hash differs from the recomputed one"));
        }
        head = (seq, computed);
    }
    Ok(head)
}

/// Records the per-item codes the API answered, by item id.
fn note_codes(codes_by_id: &mut BTreeMap<String, u32>, results: &[pb::ItemResult]) {
    for r in results {
        codes_by_id.insert(r.id.clone(), r.code as u32);
    }
}

/// Goal: "journal format: an auditor verifies a real cluster's journal and site log with
/// sha2 and docs/journal.md alone". Every record's hash and the chain verify with the
/// documented formula; the header fields decoded by hand equal the proto's readable fields;
/// the bodies of account and transfer records decode to what was sent, with result codes
/// mapped through the document's wire-index table; the chain's end is GetJournalHead; and a
/// single flipped byte anywhere in a record makes the verifier fail.
/// Method: a 3-node cluster; accounts (one with personal data), a posted transfer, a
/// two-phase transfer posted in part, one voided, a rejected transfer and a rejected atomic
/// batch; then ReadJournal and ReadSiteLog over gRPC (as `ledger journal export` reads) and
/// the hand verifier above. Bounded by [`TEST_TIMEOUT`]; the cluster's processes are killed by
/// pid when `TestCluster` drops, also on panic or timeout.
#[tokio::test(flavor = "multi_thread")]
async fn journal_verifies_with_sha2_and_the_document_alone() {
    tokio::time::timeout(TEST_TIMEOUT, scenario()).await.expect("journal format scenario within its time bound");
}

async fn scenario() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let c = test.client();
    let mut codes_by_id = BTreeMap::new();

    let alice = pb::NewAccount {
        personal_data: Some(pb::PersonalData { holder_name: Some("Alice Example".into()), ..Default::default() }),
        ..deposit_account("alice", "EUR")
    };
    let r = c.create_accounts(vec![account("bank", "EUR"), alice, account("shop", "EUR")]).await.unwrap();
    assert_eq!(codes(&r.results), ["ok", "ok", "ok"]);
    note_codes(&mut codes_by_id, &r.results);
    let steps: Vec<(Vec<pb::NewTransfer>, bool, Vec<&str>)> = vec![
        (vec![transfer("fund", "bank", "alice", "100.00")], false, vec!["ok"]),
        (vec![pending("p1", "alice", "shop", "30.00", 600_000)], false, vec!["ok"]),
        (vec![post("p1-post", "p1", "12.50")], false, vec!["ok"]),
        (vec![pending("p2", "alice", "shop", "20.00", 0)], false, vec!["ok"]),
        (vec![void("p2-void", "p2")], false, vec!["ok"]),
        (vec![transfer("too-much", "alice", "shop", "1000.00")], false, vec!["exceeds_credits"]),
        (
            vec![transfer("a1", "bank", "alice", "1.00"), transfer("a2", "alice", "shop", "1000.00")],
            true,
            vec!["linked_event_failed", "exceeds_credits"],
        ),
    ];
    let mut sent = BTreeMap::new();
    for (transfers, atomic, expected) in steps {
        for t in &transfers {
            sent.insert(t.id.clone(), t.clone());
        }
        let r = c.create_transfers(transfers, atomic).await.unwrap();
        assert_eq!(codes(&r.results), expected);
        note_codes(&mut codes_by_id, &r.results);
    }

    // Export, as `ledger journal export` does: ReadJournal from seq 1, not following.
    let mut stream = c.read_journal(1, 0, false).await.unwrap();
    let mut records = Vec::new();
    while let Some(record) = stream.message().await.unwrap() {
        records.push(record);
    }
    let head = c.journal_head().await.unwrap();
    assert!(records.len() >= 9, "bootstrap, accounts and 7 transfer batches at least: {}", records.len());

    // The chain, from the canonical bytes alone.
    let canonicals: Vec<Vec<u8>> = records.iter().map(|r| r.canonical.clone()).collect();
    let (last_seq, last_hash) = verify_chain(b"", &canonicals).unwrap();
    assert_eq!((last_seq, last_hash.to_vec()), (head.seq, head.hash.clone()), "the chain ends at the head");

    // The layout: the hand-decoded fields equal the proto's readable ones, and the bodies say
    // what was sent and what the API answered.
    let mut transfer_items = 0;
    for record in &records {
        let d = decode(&record.canonical).unwrap_or_else(|e| panic!("seq {}: {e}", record.seq));
        assert_eq!(d.seq, record.seq);
        assert_eq!(d.ledger_time_ms, record.ledger_time_ms);
        assert_eq!(d.origin_site, record.origin_site);
        assert_eq!(d.origin_epoch, record.origin_epoch);
        assert_eq!(d.origin_raft_index, record.origin_raft_index);
        assert_eq!(d.caller, record.caller);
        assert_eq!(d.command, record.command_type, "seq {}", d.seq);
        assert_eq!(d.prev_hash.to_vec(), record.prev_hash);
        assert_eq!(d.hash.to_vec(), record.hash);
        assert_eq!(d.items.len(), d.result_wire_indices.len(), "one result per item");
        for ((id, kind, amount), wire_index) in d.items.iter().zip(&d.result_wire_indices) {
            let code = RESULT_CODE_AT_WIRE_INDEX[*wire_index as usize];
            assert_eq!(code, codes_by_id[id], "seq {}: {id}'s result code through the wire-index table", d.seq);
            if d.command == "create_transfers" {
                transfer_items += 1;
                let request = &sent[id];
                let expected_kind = match pb::TransferKind::try_from(request.kind).unwrap() {
                    pb::TransferKind::Pending => 1,
                    pb::TransferKind::PostPending => 2,
                    pb::TransferKind::VoidPending => 3,
                    _ => 0,
                };
                assert_eq!(*kind, expected_kind, "{id}: kind variant");
                if !request.amount.is_empty() {
                    assert_eq!(amount, &request.amount, "{id}: the 16-byte decimal");
                }
            } else {
                assert_eq!(amount, "EUR");
            }
        }
        assert_eq!(d.atomic, d.items.iter().any(|(id, _, _)| id == "a1"));
    }
    assert_eq!(transfer_items, sent.len(), "every transfer sent is in the journal once");

    // The site log chains the same way, under its own prefix.
    let site_log = c.read_site_log(1, 0).await.unwrap().entries;
    assert!(!site_log.is_empty(), "the bootstrap is in the site log");
    let site_canonicals: Vec<Vec<u8>> = site_log.iter().map(|e| e.canonical.clone()).collect();
    verify_chain(SITE_LOG_PREFIX, &site_canonicals).unwrap();
    assert!(verify_chain(b"", &site_canonicals).is_err(), "the prefix is part of the site log formula");
    for entry in &site_log {
        let mut r = Reader::new(&entry.canonical);
        assert_eq!(r.byte().unwrap(), FORMAT_VERSION);
        assert_eq!(r.varint().unwrap(), entry.seq);
        assert_eq!(r.varint().unwrap(), entry.ledger_time_ms);
        assert_eq!(r.string().unwrap(), entry.caller);
        let event = match r.varint().unwrap() {
            0 => SITE_COMMAND_VARIANTS[r.varint().unwrap() as usize],
            1 => "admin",
            other => panic!("site event variant {other}"),
        };
        assert_eq!(event, entry.event, "site log seq {}", entry.seq);
        let n = entry.canonical.len();
        assert_eq!(entry.canonical[n - 64..n - 32], entry.prev_hash[..]);
        assert_eq!(entry.canonical[n - 32..], entry.hash[..]);
    }

    // Tampering: one flipped byte anywhere (header, amount, embedded prev_hash, stored hash)
    // breaks the chain at that record.
    let victim = records.iter().position(|r| r.command_type == "create_transfers").unwrap();
    let n = canonicals[victim].len();
    for offset in [1, 12, n / 2, n - 40, n - 1] {
        let mut tampered = canonicals.clone();
        tampered[victim][offset] ^= 0x01;
        let error = verify_chain(b"", &tampered).expect_err("a flipped byte must not verify");
        assert!(error.contains(&format!("seq {}", victim + 1)) || offset == 1, "offset {offset}: {error}");
    }
}
