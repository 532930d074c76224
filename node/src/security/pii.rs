//! Personal data at rest: AES-256-GCM with data keys from a file.
//!
//! The node seals holder name, national id and card number when a request arrives, before the
//! command is proposed; plaintext never reaches the Raft log, the state, the journal or a
//! snapshot. The nonce is synthetic: the first 12 bytes of SHA-256 over the key, the binding
//! (account id and field) and the plaintext. Sealing the same value twice thus gives the same
//! bytes (so an idempotent retry of `CreateAccounts` matches), and a (key, nonce) pair never
//! repeats with different plaintexts. The account id and field name are the GCM associated
//! data, so a ciphertext moved to another account or field does not open.
//!
//! Key file (TOML): every key stays readable; the highest `id` seals new data.
//! ```toml
//! [[keys]]
//! id = 1
//! key = "64 hex digits"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::KeyInit;
use aes_gcm::aead::Aead;
use aes_gcm::aead::Payload;
use ledger_core::pii::Sealed;
use serde::Deserialize;
use serde::Serialize;
use sha2::Digest;
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("cannot read data key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid data key file {path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("no data key with id {0}")]
    UnknownKey(u32),
    #[error("personal data does not open (wrong key, or bytes altered)")]
    Open,
    #[error("personal data is not UTF-8")]
    NotText,
}

/// Which personal-data field a value belongs to (part of the associated data).
#[derive(Clone, Copy, Debug)]
pub enum Field {
    HolderName,
    NationalId,
    CardNumber,
}

impl Field {
    fn tag(self) -> &'static str {
        match self {
            Field::HolderName => "holder_name",
            Field::NationalId => "national_id",
            Field::CardNumber => "card_number",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    id: u32,
    key: String,
}

/// The data keys: every key opens what it sealed; the newest seals.
#[derive(Clone)]
pub struct DataKeys {
    keys: BTreeMap<u32, [u8; 32]>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKeys(ids {:?})", self.keys.keys().collect::<Vec<_>>())
    }
}

impl DataKeys {
    pub fn load(path: &Path) -> Result<DataKeys, PiiError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PiiError::Read { path: shown.clone(), source })?;
        let invalid = |detail: String| PiiError::Invalid { path: shown.clone(), detail };
        let file: KeyFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut keys = BTreeMap::new();
        for entry in file.keys {
            let bytes = hex::decode(entry.key.trim()).map_err(|e| invalid(format!("key {}: {e}", entry.id)))?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| invalid(format!("key {} must be 32 bytes", entry.id)))?;
            if keys.insert(entry.id, key).is_some() {
                return Err(invalid(format!("key id {} appears twice", entry.id)));
            }
        }
        if keys.is_empty() {
            return Err(invalid("no keys".into()));
        }
        Ok(DataKeys { keys })
    }

    /// Writes a key file with one fresh random key, id 1. For `ledger-cluster certs`.
    pub fn generate_file(path: &Path) -> std::io::Result<()> {
        let key: [u8; 32] = rand_key();
        let file = KeyFile { keys: vec![KeyEntry { id: 1, key: hex::encode(key) }] };
        let text = format!(
            "# Data keys sealing personal data at rest (AES-256-GCM). Keep secret.\n# Add a key with a higher id to rotate; old keys stay to open old data.\n{}",
            toml::to_string(&file).expect("key file serializes")
        );
        write_private(path, text.as_bytes())
    }

    /// Appends a fresh key with the next id; it becomes the sealing key. Returns its id.
    pub fn rotate_file(path: &Path) -> Result<u32, PiiError> {
        let keys = DataKeys::load(path)?;
        let id = keys.current_id() + 1;
        let mut file =
            KeyFile { keys: keys.keys.iter().map(|(id, key)| KeyEntry { id: *id, key: hex::encode(key) }).collect() };
        file.keys.push(KeyEntry { id, key: hex::encode(rand_key()) });
        let text = toml::to_string(&file).expect("key file serializes");
        write_private(path, text.as_bytes())
            .map_err(|source| PiiError::Read { path: path.display().to_string(), source })?;
        Ok(id)
    }

    pub fn current_id(&self) -> u32 {
        *self.keys.keys().next_back().expect("at least one key")
    }

    fn cipher(&self, key_id: u32) -> Result<(Aes256Gcm, &[u8; 32]), PiiError> {
        let key = self.keys.get(&key_id).ok_or(PiiError::UnknownKey(key_id))?;
        Ok((Aes256Gcm::new_from_slice(key).expect("32-byte key"), key))
    }

    fn aad(account_id: &str, field: Field) -> Vec<u8> {
        format!("ledger-pii-v1\0{account_id}\0{}", field.tag()).into_bytes()
    }

    pub fn has(&self, key_id: u32) -> bool {
        self.keys.contains_key(&key_id)
    }

    /// Seals `plaintext` for `field` of `account_id` with the newest key.
    pub fn seal(&self, account_id: &str, field: Field, plaintext: &str) -> Sealed {
        self.seal_with(0, account_id, field, plaintext)
    }

    /// Seals with key `key_id` (0: the newest). The key must exist (see [`DataKeys::has`]).
    pub fn seal_with(&self, key_id: u32, account_id: &str, field: Field, plaintext: &str) -> Sealed {
        let key_id = if key_id == 0 { self.current_id() } else { key_id };
        let (cipher, key) = self.cipher(key_id).expect("current key exists");
        let aad = Self::aad(account_id, field);
        let mut hasher = Sha256::new();
        hasher.update(b"ledger-pii-nonce-v1");
        hasher.update(key);
        hasher.update((aad.len() as u64).to_be_bytes());
        hasher.update(&aad);
        hasher.update(plaintext.as_bytes());
        let digest = hasher.finalize();
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&digest[..12]);
        let ciphertext = cipher
            .encrypt(&nonce.into(), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .expect("AES-GCM sealing of a short value cannot fail");
        Sealed { key_id, nonce, ciphertext }
    }

    /// Opens a sealed value of `field` of `account_id`.
    pub fn open(&self, account_id: &str, field: Field, sealed: &Sealed) -> Result<String, PiiError> {
        let (cipher, _) = self.cipher(sealed.key_id)?;
        let aad = Self::aad(account_id, field);
        let plaintext = cipher
            .decrypt(&sealed.nonce.into(), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map_err(|_| PiiError::Open)?;
        String::from_utf8(plaintext).map_err(|_| PiiError::NotText)
    }
}

fn rand_key() -> [u8; 32] {
    use aes_gcm::aead::Generate;
    let key = aes_gcm::Key::<Aes256Gcm>::generate();
    key.into()
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The data keys of a node, reloaded when the key file changes (a new key is added on every
/// node before `RotateKey` makes the site seal with it).
pub struct KeyRing {
    path: std::path::PathBuf,
    current: std::sync::RwLock<std::sync::Arc<DataKeys>>,
    modified: std::sync::Mutex<Option<std::time::SystemTime>>,
}

/// How often the key file is checked for changes.
const KEY_RELOAD_MS: u64 = 2_000;

impl KeyRing {
    pub fn load(path: &Path) -> Result<std::sync::Arc<KeyRing>, PiiError> {
        let keys = DataKeys::load(path)?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(std::sync::Arc::new(KeyRing {
            path: path.to_path_buf(),
            current: std::sync::RwLock::new(std::sync::Arc::new(keys)),
            modified: std::sync::Mutex::new(modified),
        }))
    }

    pub fn get(&self) -> std::sync::Arc<DataKeys> {
        self.current.read().expect("lock is never poisoned").clone()
    }

    /// Reloads the file if it changed; a file that does not load keeps the old keys.
    pub fn reload_if_changed(&self) {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut last = self.modified.lock().expect("lock is never poisoned");
        if modified == *last {
            return;
        }
        match DataKeys::load(&self.path) {
            Ok(keys) => {
                tracing::info!(keys = ?keys, "data key file reloaded");
                *self.current.write().expect("lock is never poisoned") = std::sync::Arc::new(keys);
                *last = modified;
            }
            Err(e) => tracing::error!(error = %e, "data key file changed but does not load; keeping the old keys"),
        }
    }

    /// Checks the file every two seconds, until the task is dropped.
    pub fn spawn_reload(self: std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(KEY_RELOAD_MS));
            loop {
                tick.tick().await;
                self.reload_if_changed();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: sealing is deterministic per (key, account, field, value), opens back, is bound
    /// to its account and field, and survives a key rotation.
    #[test]
    fn seal_open_bind_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        DataKeys::generate_file(&path).unwrap();
        let keys = DataKeys::load(&path).unwrap();
        let sealed = keys.seal("acc-1", Field::CardNumber, "6222123456780123");
        assert_eq!(sealed, keys.seal("acc-1", Field::CardNumber, "6222123456780123"));
        assert_ne!(sealed, keys.seal("acc-1", Field::CardNumber, "6222123456780124"));
        assert!(!sealed.ciphertext.windows(4).any(|w| w == b"6222"));
        assert_eq!(keys.open("acc-1", Field::CardNumber, &sealed).unwrap(), "6222123456780123");
        assert!(keys.open("acc-2", Field::CardNumber, &sealed).is_err());
        assert!(keys.open("acc-1", Field::NationalId, &sealed).is_err());
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert!(keys.open("acc-1", Field::CardNumber, &altered).is_err());

        assert_eq!(DataKeys::rotate_file(&path).unwrap(), 2);
        let rotated = DataKeys::load(&path).unwrap();
        assert_eq!(rotated.current_id(), 2);
        assert_eq!(rotated.open("acc-1", Field::CardNumber, &sealed).unwrap(), "6222123456780123");
        assert_eq!(rotated.seal("acc-1", Field::HolderName, "Jane").key_id, 2);
    }
}
