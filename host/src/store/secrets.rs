//! Tenants' secrets at rest: sealed with a key kept apart from the database.
//!
//! A kuaidi100 key is a bearer token (`POST /poll`) and also signs real-time queries
//! (`MD5(param + key + customer)`), so the daemon needs it back in clear: it is stored
//! encrypted (ChaCha20-Poly1305, a fresh nonce each time) and looked up by a keyed hash
//! (HMAC-SHA256), as Svix keeps endpoint secrets. A copy of the database alone (a backup,
//! a file sent with a bug report) then reveals no key.
//!
//! The key comes from `WAYBILL_SECRET_KEY` (64 hex digits) or from the file next to the
//! database (`waybill.db.key`), created readable by its owner only on first use. Lose it
//! and the stored keys cannot be read: tenants must be given new keys.

use std::io;
use std::path::{Path, PathBuf};

use aes::cipher::{BlockDecrypt, BlockEncrypt};
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable that holds the secret key, overriding the key file.
pub const SECRET_KEY_ENV: &str = "WAYBILL_SECRET_KEY";

/// Prefix of a sealed value (the format's version).
const SEALED: &str = "v1:";
/// Prefix of a lookup hash.
const LOOKUP: &str = "h1:";
/// Prefix of a tracking's public id.
const TRACKING: &str = "trk_";

/// Why the secret key could not be had, or a sealed value not opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file could not be read or created.
    #[error("secret key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What the filesystem said.
        source: io::Error,
    },
    /// The key is not 32 bytes as 64 hex digits.
    #[error("{origin} must hold 64 hex digits (32 bytes)")]
    Malformed {
        /// The file or the environment variable.
        origin: String,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A sealed value does not open with this key.
    #[error("a stored secret does not open with this secret key ({0}); was the key file replaced or WAYBILL_SECRET_KEY changed?")]
    Open(&'static str),
}

/// The key that seals tenants' secrets.
pub struct SecretKey {
    key: [u8; 32],
    /// The block cipher of public ids, derived once: every subscription read names itself.
    ids: aes::Aes128,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// The key of the database at `db_path`: `WAYBILL_SECRET_KEY` when set, else the key
    /// file beside the database, created (0600) with a random key if missing.
    pub fn for_database(db_path: &Path) -> Result<Self, SecretError> {
        Self::from_env_or_file(&key_file(db_path))
    }

    /// `WAYBILL_SECRET_KEY` when set, else the key in the file at `path`, created (0600)
    /// with a random key if missing.
    pub fn from_env_or_file(path: &Path) -> Result<Self, SecretError> {
        if let Ok(hex) = std::env::var(SECRET_KEY_ENV) {
            return Self::from_hex(&hex, SECRET_KEY_ENV);
        }
        let file_error = |source| SecretError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text, &path.display().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
                super::location::create_private_file(path).map_err(file_error)?;
                std::fs::write(path, format!("{}\n", hex(&key))).map_err(file_error)?;
                Ok(Self::new(key))
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// A key from 64 hex digits; `origin` names where they came from in errors.
    pub fn from_hex(text: &str, origin: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let malformed = || SecretError::Malformed {
            origin: origin.to_owned(),
        };
        if text.len() != 64 || !text.is_ascii() {
            return Err(malformed());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| malformed())?;
        }
        Ok(Self::new(key))
    }

    /// The key with what is derived from it.
    fn new(key: [u8; 32]) -> Self {
        // Keyed apart from sealing and lookups.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes a key of any length");
        mac.update(b"tracking-id");
        let derived = mac.finalize().into_bytes();
        let ids = aes::Aes128::new(aes::cipher::Key::<aes::Aes128>::from_slice(&derived[..16]));
        Self { key, ids }
    }

    /// `secret` encrypted for storage.
    pub fn seal(&self, secret: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let sealed = ChaCha20Poly1305::new((&self.key).into())
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .map_err(|_| SecretError::Open("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!("{SEALED}{}", BASE64.encode(out)))
    }

    /// The secret [`SecretKey::seal`] sealed.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let bytes = sealed
            .strip_prefix(SEALED)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(SecretError::Open("not a sealed value"))?;
        let (nonce, body) = bytes.split_at(12);
        let plain = ChaCha20Poly1305::new((&self.key).into())
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SecretError::Open("authentication failed"))?;
        String::from_utf8(plain).map_err(|_| SecretError::Open("not UTF-8"))
    }

    /// A stored secret: opened when sealed, taken as it is when written in clear before
    /// secrets were sealed (subscriptions' salts are not rewritten on upgrade: there may be
    /// millions, and each is sealed when next written).
    pub fn open_or_legacy(&self, stored: String) -> Result<String, SecretError> {
        if stored.starts_with(SEALED) {
            self.open(&stored)
        } else {
            Ok(stored)
        }
    }

    /// The value a secret is found by: equal secrets give equal lookups, and the lookup
    /// reveals nothing of the secret without the key.
    pub fn lookup(&self, secret: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(secret.as_bytes());
        format!("{LOOKUP}{}", hex(&mac.finalize().into_bytes()))
    }

    /// The public name of subscription `id` in its push ids: 16 hex digits of a keyed
    /// hash, so a receiver learns nothing of the store's row counter from them.
    pub fn push_prefix(&self, id: i64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(b"push-id:");
        mac.update(&id.to_be_bytes());
        hex(&mac.finalize().into_bytes()[..8])
    }

    /// The public id of subscription `id` of tenant `tenant`: `trk_` and 22 characters,
    /// one AES block holding both ids under a key derived from this one. It reveals neither
    /// the store's row counter nor how many trackings other tenants have, and one tenant's
    /// ids name nothing for another ([`SecretKey::tracking_row`] refuses them).
    ///
    /// ```
    /// # use waybill_host::store::secrets::SecretKey;
    /// let key = SecretKey::from_hex(&"ab".repeat(32), "example").unwrap();
    /// let public = key.tracking_id(27, 3);
    /// assert!(public.starts_with("trk_") && public.len() == 26);
    /// assert_eq!(key.tracking_row(&public, 3), Some(27));
    /// assert_eq!(key.tracking_row(&public, 4), None);
    /// ```
    pub fn tracking_id(&self, id: i64, tenant: i64) -> String {
        let mut block = aes::Block::default();
        block[..8].copy_from_slice(&id.to_be_bytes());
        block[8..].copy_from_slice(&tenant.to_be_bytes());
        self.ids.encrypt_block(&mut block);
        format!("{TRACKING}{}", URL_SAFE_NO_PAD.encode(block))
    }

    /// The subscription `public` names, if it is a [`SecretKey::tracking_id`] of `tenant`'s.
    pub fn tracking_row(&self, public: &str, tenant: i64) -> Option<i64> {
        let raw = URL_SAFE_NO_PAD
            .decode(public.strip_prefix(TRACKING)?)
            .ok()?;
        let mut block = aes::Block::clone_from_slice(raw.get(..16).filter(|_| raw.len() == 16)?);
        self.ids.decrypt_block(&mut block);
        let (id, owner) = block.split_at(8);
        let id = i64::from_be_bytes(id.try_into().ok()?);
        (owner == tenant.to_be_bytes() && id > 0).then_some(id)
    }

    /// Whether a stored key column already holds a lookup hash (rows written before
    /// secrets were sealed hold the key itself).
    pub fn is_lookup(stored: &str) -> bool {
        stored.starts_with(LOOKUP)
    }
}

/// The key file of the database at `db_path`.
pub fn key_file(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    db_path.with_file_name(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_lookups_are_stable() {
        let key = SecretKey::from_hex(&"ab".repeat(32), "test").unwrap();
        let sealed = key.seal("K1-SECRET").unwrap();
        assert!(!sealed.contains("K1-SECRET"));
        assert_ne!(
            sealed,
            key.seal("K1-SECRET").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed).unwrap(), "K1-SECRET");
        assert_eq!(key.lookup("K1-SECRET"), key.lookup("K1-SECRET"));
        assert_ne!(key.lookup("K1-SECRET"), key.lookup("K2-SECRET"));
        assert!(SecretKey::is_lookup(&key.lookup("x")) && !SecretKey::is_lookup("K1"));

        let other = SecretKey::from_hex(&"cd".repeat(32), "test").unwrap();
        assert!(matches!(other.open(&sealed), Err(SecretError::Open(_))));
        assert_ne!(other.lookup("K1-SECRET"), key.lookup("K1-SECRET"));
        assert!(
            key.open("K1-SECRET").is_err(),
            "a clear value is not a sealed one"
        );
    }

    #[test]
    fn tracking_ids_name_a_row_only_for_their_tenant_and_key() {
        let key = SecretKey::from_hex(&"ab".repeat(32), "test").unwrap();
        let other = SecretKey::from_hex(&"cd".repeat(32), "test").unwrap();
        let ids: Vec<String> = (1..=1_000).map(|id| key.tracking_id(id, 7)).collect();
        for (n, public) in ids.iter().enumerate() {
            assert_eq!(public.len(), 26, "{public}");
            assert_eq!(key.tracking_row(public, 7), Some(n as i64 + 1));
            assert_eq!(key.tracking_row(public, 8), None, "another tenant's");
            assert_eq!(other.tracking_row(public, 7), None, "another key's");
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        for garbage in [
            "",
            "trk_",
            "27",
            "trk_27",
            &format!("{}A", ids[0]),
            &ids[0][..25],
            &ids[0].replace("trk_", "trx_"),
            "trk_!!!!!!!!!!!!!!!!!!!!!!",
            "trk_\u{1F600}",
        ] {
            assert_eq!(key.tracking_row(garbage, 7), None, "{garbage:?}");
        }
    }

    #[test]
    fn malformed_keys_are_refused_with_their_origin() {
        for bad in ["", "abc", &"zz".repeat(32), &"ab".repeat(33)] {
            let err = SecretKey::from_hex(bad, "WAYBILL_SECRET_KEY").unwrap_err();
            assert!(err.to_string().contains("WAYBILL_SECRET_KEY"), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        if std::env::var_os(SECRET_KEY_ENV).is_some() {
            return; // the environment's key wins; nothing to create
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("waybill.db");
        let first = SecretKey::for_database(&db).unwrap();
        let file = key_file(&db);
        assert_eq!(file, dir.path().join("waybill.db.key"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SecretKey::for_database(&db).unwrap();
        assert_eq!(again.open(&first.seal("s").unwrap()).unwrap(), "s");
    }
}
