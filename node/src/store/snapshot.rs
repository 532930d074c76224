//! Snapshot files: a full copy of one state tree, checksummed.
//!
//! Layout: the magic line, then `u32 key_len, key, u32 value_len, value` per key in key order,
//! then `u32::MAX` and the SHA-256 of every byte before it. A file is written to a temporary
//! name, fsynced, renamed and the directory fsynced, so a crash never leaves a half file under
//! a snapshot's name.

use std::fs::File;
use std::io;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Read;
use std::io::Write;
use std::path::Path;

use sha2::Digest;
use sha2::Sha256;

use super::StoreError;

const MAGIC: &[u8] = b"LEDGER-SNAPSHOT-1\n";
const END: u32 = u32::MAX;
/// Inserts per sled batch while loading, so a big snapshot is not one giant batch.
const LOAD_BATCH_KEYS: usize = 4096;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// A writer that hashes what it writes.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every key of `tree` to `path`. Returns the number of keys. Blocking.
pub fn dump(tree: &sled::Tree, path: &Path) -> Result<u64, StoreError> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = HashingWriter { inner: BufWriter::new(file), hasher: Sha256::new() };
    out.write_all(MAGIC).map_err(io_err(&tmp))?;
    let mut n_keys = 0u64;
    for item in tree.iter() {
        let (key, value) = item?;
        let key_len = u32::try_from(key.len()).expect("keys are small");
        let value_len = u32::try_from(value.len()).expect("values are under 64 KiB");
        assert!(value_len < END);
        out.write_all(&key_len.to_be_bytes()).map_err(io_err(&tmp))?;
        out.write_all(&key).map_err(io_err(&tmp))?;
        out.write_all(&value_len.to_be_bytes()).map_err(io_err(&tmp))?;
        out.write_all(&value).map_err(io_err(&tmp))?;
        n_keys += 1;
    }
    out.write_all(&END.to_be_bytes()).map_err(io_err(&tmp))?;
    let digest = out.hasher.clone().finalize();
    let mut writer = out.inner;
    writer.write_all(&digest).map_err(io_err(&tmp))?;
    let file = writer.into_inner().map_err(|e| StoreError::Io { path: tmp.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().expect("snapshot files live in a directory"))?;
    Ok(n_keys)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Reads a snapshot from `reader` into `tree` (which must be empty), verifying the checksum.
/// On a bad checksum or a torn file it returns an error; the caller drops the tree.
pub fn load(reader: impl Read, tree: &sled::Tree, origin: &Path) -> Result<u64, StoreError> {
    assert!(tree.is_empty(), "snapshots load into a fresh tree");
    let corrupt =
        |detail: &str| StoreError::Corrupt { what: "snapshot", detail: format!("{}: {detail}", origin.display()) };
    let mut input = BufReader::new(reader);
    let mut hasher = Sha256::new();
    let mut read_exact = |buf: &mut [u8], hasher: &mut Sha256| -> Result<(), StoreError> {
        input.read_exact(buf).map_err(|_| corrupt("truncated"))?;
        hasher.update(&*buf);
        Ok(())
    };
    let mut magic = vec![0; MAGIC.len()];
    read_exact(&mut magic, &mut hasher)?;
    if magic != MAGIC {
        return Err(corrupt("not a ledger snapshot"));
    }
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    let mut n_keys = 0u64;
    loop {
        let mut len = [0u8; 4];
        read_exact(&mut len, &mut hasher)?;
        let key_len = u32::from_be_bytes(len);
        if key_len == END {
            break;
        }
        let mut key = vec![0; key_len as usize];
        read_exact(&mut key, &mut hasher)?;
        read_exact(&mut len, &mut hasher)?;
        let mut value = vec![0; u32::from_be_bytes(len) as usize];
        read_exact(&mut value, &mut hasher)?;
        batch.insert(key, value);
        in_batch += 1;
        n_keys += 1;
        if in_batch == LOAD_BATCH_KEYS {
            tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    let computed = hasher.finalize();
    let mut stored = [0u8; 32];
    input.read_exact(&mut stored).map_err(|_| corrupt("missing checksum"))?;
    if stored[..] != computed[..] {
        return Err(corrupt("checksum mismatch"));
    }
    tree.apply_batch(batch)?;
    Ok(n_keys)
}
