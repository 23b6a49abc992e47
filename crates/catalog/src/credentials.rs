//! Secrets: the master key, backend role passwords derived from it, and SCRAM verifiers.
//!
//! Role passwords are HMAC-SHA256(master key, role name): nothing per tenant is stored,
//! and rotating the master key re-derives them all. Passwords are sent to PostgreSQL
//! only as SCRAM verifiers, so plaintext never appears in server logs.
//! This module must never log, print or embed a secret in an error.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::MasterKeyConfig;
use crate::error::{Error, Result};

const MIN_KEY_BYTES: usize = 32;

/// The master key. Its Debug impl is redacted.
#[derive(Clone)]
pub struct MasterKey(Vec<u8>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey> {
        let trimmed = trim_ascii(bytes);
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(Error::MasterKeyMissing(format!(
                "the key is {} bytes; at least {MIN_KEY_BYTES} are required",
                trimmed.len()
            )));
        }
        Ok(MasterKey(trimmed.to_vec()))
    }

    /// Load per config: the file when configured, else the environment variable.
    pub fn load(cfg: &MasterKeyConfig, base: &std::path::Path) -> Result<MasterKey> {
        if let Some(file) = &cfg.file {
            let path = if file.is_absolute() { file.clone() } else { base.join(file) };
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::MasterKeyMissing(format!("cannot read master_key.file {}: {e}", path.display()))
            })?;
            return MasterKey::from_bytes(&bytes);
        }
        match std::env::var(&cfg.env) {
            Ok(v) if !v.trim().is_empty() => MasterKey::from_bytes(v.as_bytes()),
            _ => Err(Error::MasterKeyMissing(format!("environment variable {} is not set", cfg.env))),
        }
    }

    /// A short public fingerprint, stored in the catalog to detect a wrong key.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.hmac(b"tenantgate fingerprint v1")[..8])
    }

    /// The password of a backend role (DESIGN §4).
    pub fn role_password(&self, role: &str) -> String {
        hex::encode(self.hmac(role.as_bytes()))
    }

    fn hmac(&self, msg: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

/// A SCRAM-SHA-256 verifier for `password`, in PostgreSQL's `rolpassword` format.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Generate a new random master key, hex-encoded (64 chars).
pub fn generate_master_key() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// SHA-256 hex of a string, for tombstones that must not keep a slug readable.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_per_role() {
        let k = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(k.role_password("t000000000001"), k.role_password("t000000000001"));
        assert_ne!(k.role_password("t000000000001"), k.role_password("t000000000001_ro"));
        assert_eq!(k.role_password("x").len(), 64);
    }

    #[test]
    fn short_key_refused() {
        assert!(MasterKey::from_bytes(b"short").is_err());
        assert!(MasterKey::from_bytes(b"   \n").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let k = MasterKey::from_bytes(&[b'a'; 40]).unwrap();
        assert!(!format!("{k:?}").contains("aaaa"));
    }

    #[test]
    fn verifier_format() {
        assert!(scram_verifier("pw").starts_with("SCRAM-SHA-256$4096:"));
    }
}

/// The catalog setting holding the master key's fingerprint.
pub const FINGERPRINT_SETTING: &str = "master_key_fingerprint";

/// Load the master key and check it against the catalog's fingerprint (recorded by the first
/// command that loads it).
pub async fn master_key(cfg: &crate::config::Config, catalog: &crate::catalog::Catalog) -> Result<MasterKey> {
    let key = MasterKey::load(&cfg.master_key, &cfg.base_dir)?;
    let fp = key.fingerprint();
    let stored = catalog.setting_init(FINGERPRINT_SETTING, &fp).await?;
    if stored != fp {
        return Err(Error::MasterKeyMismatch { expected: stored, actual: fp });
    }
    Ok(key)
}
