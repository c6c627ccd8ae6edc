//! Passwords sealed at rest: BMC and switch passwords are stored as XChaCha20-Poly1305 ciphertext
//! under a key kept in a file outside the database. The store's connection (store/db.rs) holds the
//! key and seals a value before binding it and opens it after reading it, so plaintext never
//! reaches a page of the database, its WAL, or a PostgreSQL server.
//! The label (`nodes.bmc_password`, ...) is the associated data, so a value cannot be moved to
//! another column and still open.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::db::{Db, params};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Every sealed value starts with this; the version leaves room for another scheme.
pub const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

/// The sealed columns: (table, column, label).
pub const SEALED_COLUMNS: &[(&str, &str, &str)] = &[
    ("nodes", "bmc_password", "nodes.bmc_password"),
    ("switches", "password", "switches.password"),
    ("instances", "user_data", "instances.user_data"),
];

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read the secrets key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create the secrets key {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the secrets key {path} is not 64 hex digits")]
    Malformed { path: PathBuf },
    #[error(
        "the database holds sealed passwords but the secrets key {path} is missing; restore it from your backup \
         (without it, every BMC and switch password must be entered again)"
    )]
    Missing { path: PathBuf },
    #[error("the secrets key {path} does not open the passwords in this database (another installation's key?)")]
    WrongKey { path: PathBuf },
    #[error("a sealed value is damaged or was sealed under another key")]
    Open,
    #[error("a stored value is not sealed")]
    NotSealed,
}

/// The 256-bit key; never printed.
#[derive(Clone)]
pub struct SealKey {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SealKey {
    /// Reads the key file (one line of 64 hex digits).
    pub fn read(path: &Path) -> Result<SealKey, SealError> {
        let text = std::fs::read_to_string(path).map_err(|source| SealError::Read { path: path.to_owned(), source })?;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the secrets key is readable by other users: chmod 600 it");
        }
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::Malformed { path: path.to_owned() })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::Malformed { path: path.to_owned() })?;
        Ok(SealKey { cipher: XChaCha20Poly1305::new(&key.into()), path: path.to_owned() })
    }

    /// A random key that lives only in memory, for a connection before its real key is loaded.
    pub fn throwaway() -> SealKey {
        SealKey { cipher: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)), path: PathBuf::from("(in memory)") }
    }

    /// Makes a new random key file, mode 0600; refuses to overwrite one.
    pub fn create(path: &Path) -> Result<SealKey, SealError> {
        let fail = |source| SealError::Create { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        // Written whole under a private name, then linked into place: a daemon starting beside this
        // one never reads half a key, and an existing key is never overwritten (link refuses).
        let partial = path.with_extension(format!("partial.{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut file| file.write_all(format!("{}\n", hex::encode(key)).as_bytes()).and_then(|()| file.sync_all()))
            .and_then(|()| std::fs::hard_link(&partial, path));
        let _ = std::fs::remove_file(&partial);
        written.map_err(fail)?;
        Ok(SealKey { cipher: XChaCha20Poly1305::new(&key), path: path.to_owned() })
    }

    /// `sealed:v1:` + hex(nonce ‖ ciphertext ‖ tag), with `label` as associated data.
    pub fn seal(&self, label: &str, plaintext: &str) -> Result<String, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: label.as_bytes() }).map_err(|_| SealError::Open)?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", hex::encode(raw)))
    }

    pub fn unseal(&self, label: &str, stored: &str) -> Result<String, SealError> {
        let raw = stored.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
        let raw = hex::decode(raw).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: label.as_bytes() }).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

/// One sealed value of the database, if it holds any (to tell a wrong key at start).
pub fn any_sealed(db: &Db) -> super::Result<Option<(&'static str, String)>> {
    for (table, column, label) in SEALED_COLUMNS {
        let found: Option<String> =
            db.query_opt(&format!("SELECT {column} FROM {table} WHERE {column} LIKE '{PREFIX}%' LIMIT 1"), params![], |r| r.get(0))?;
        if let Some(value) = found {
            return Ok(Some((label, value)));
        }
    }
    Ok(None)
}

/// Loads the key, or makes one when the database has nothing sealed yet.
pub fn load_key(db: &Db, path: &Path) -> Result<SealKey, super::StoreError> {
    let key = if path.exists() {
        SealKey::read(path)?
    } else if any_sealed(db)?.is_some() {
        return Err(SealError::Missing { path: path.to_owned() }.into());
    } else {
        tracing::info!(path = %path.display(), "generated the key that seals passwords at rest; back it up apart from the database");
        match SealKey::create(path) {
            Ok(key) => key,
            // Another daemon of the same pool made it a moment ago (they share one key).
            Err(SealError::Create { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => SealKey::read(path)?,
            Err(e) => return Err(e.into()),
        }
    };
    if let Some((label, value)) = any_sealed(db)?
        && key.unseal(label, &value).is_err()
    {
        return Err(SealError::WrongKey { path: path.to_owned() }.into());
    }
    Ok(key)
}

/// Seals any password still stored in clear (a database from before sealing); on SQLite then
/// rewrites the file and empties the WAL so no old page keeps the plaintext. Returns how many
/// were sealed.
pub fn seal_plaintext_rows(db: &mut Db) -> super::Result<usize> {
    let mut sealed = 0;
    let tx = db.transaction()?;
    for (table, column, label) in SEALED_COLUMNS {
        let clear: Vec<(i64, String)> =
            tx.query_map(&format!("SELECT id, {column} FROM {table} WHERE {column} NOT LIKE '{PREFIX}%'"), params![], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        for (id, plain) in clear {
            let value = tx.seal(label, &plain)?;
            sealed += tx.execute(&format!("UPDATE {table} SET {column} = ?2 WHERE id = ?1"), params![id, value])?;
        }
    }
    tx.commit()?;
    if sealed > 0 {
        if !db.is_postgres() {
            // secure_delete (set at open) zeroes freed content; VACUUM rewrites every page; the
            // TRUNCATE checkpoints leave the WAL empty.
            db.batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        tracing::info!(sealed, "sealed passwords that were stored in clear");
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_its_key_and_its_label() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = SealKey::create(&dir.path().join("k")).expect("key");
        let other = SealKey::create(&dir.path().join("other")).expect("key");
        let sealed = key.seal("nodes.bmc_password", "hunter2").expect("seal");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"));
        assert_ne!(sealed, key.seal("nodes.bmc_password", "hunter2").expect("seal"), "a fresh nonce each time");
        assert_eq!(key.unseal("nodes.bmc_password", &sealed).expect("open"), "hunter2");
        assert!(matches!(key.unseal("switches.password", &sealed), Err(SealError::Open)));
        assert!(matches!(other.unseal("nodes.bmc_password", &sealed), Err(SealError::Open)));
        assert!(matches!(key.unseal("nodes.bmc_password", "hunter2"), Err(SealError::NotSealed)));
        let mode = std::fs::metadata(dir.path().join("k")).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SealKey::read(&dir.path().join("k")).expect("read").unseal("nodes.bmc_password", &sealed).expect("open"), "hunter2");
        assert!(SealKey::create(&dir.path().join("k")).is_err(), "an existing key is never overwritten");
    }
}
