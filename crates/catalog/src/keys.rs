//! Tenant API keys: issuing, listing, revoking, and the SCRAM-SHA-256 verifiers
//! that the data plane checks them against.
//!
//! A key looks like `tgk_<id>_<secret>`: `id` is 8 hex digits (public, shown by
//! `key list`), `secret` is 40 hex digits (160 random bits). The secret is shown once
//! and never stored; the catalog keeps only a SCRAM-SHA-256 verifier of the whole key
//! string, in PostgreSQL's `rolpassword` format.
//!
//! All active keys of one tenant share one salt. A wire client names only the tenant
//! (user = slug), and the server must send the salt before it knows which key the
//! client holds; with a shared salt the client's proof can be checked against each
//! of the tenant's keys (see [`ScramVerifier::check_proof`]). Keys are random, so a
//! per-tenant salt costs nothing against precomputation.
//!
//! Owns the key format and the verifier crypto, shared by the control plane (which issues
//! keys: `tg_control::keys`) and the data plane (which checks them). It never logs or
//! returns a secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// PostgreSQL's default SCRAM iteration count.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Bytes of salt in a tenant's key verifiers.
pub const SALT_LEN: usize = 16;

/// Who a key acts as: the tenant's read-write role or its read-only role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyScope {
    ReadWrite,
    ReadOnly,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::ReadWrite => "read-write",
            KeyScope::ReadOnly => "read-only",
        }
    }
    pub(crate) fn parse(s: &str) -> KeyScope {
        if s == "read-write" {
            KeyScope::ReadWrite
        } else {
            // Anything unexpected is treated as the weaker scope.
            KeyScope::ReadOnly
        }
    }
}

/// A parsed SCRAM-SHA-256 verifier: `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(<redacted>)")
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().into()
}

impl ScramVerifier {
    /// Derive the verifier of `password` with the given salt (RFC 5802 / 7677).
    /// API keys are ASCII, for which SASLprep is the identity.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, b"Server Key");
        ScramVerifier { iterations, salt: salt.to_vec(), stored_key, server_key }
    }

    pub fn parse(s: &str) -> Result<ScramVerifier> {
        let bad = |reason: &str| Error::InvalidInput {
            what: "SCRAM verifier",
            value: "<redacted>".into(),
            reason: reason.into(),
        };
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or_else(|| bad("not SCRAM-SHA-256"))?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| bad("missing keys"))?;
        let (iter, salt) = params.split_once(':').ok_or_else(|| bad("missing salt"))?;
        let (stored, server) = keys.split_once(':').ok_or_else(|| bad("missing server key"))?;
        let iterations: u32 = iter.parse().map_err(|_| bad("bad iteration count"))?;
        let salt = B64.decode(salt).map_err(|_| bad("bad salt"))?;
        let to32 = |v: &str| -> Result<[u8; 32]> {
            let b = B64.decode(v).map_err(|_| bad("bad key encoding"))?;
            b.try_into().map_err(|_| bad("bad key length"))
        };
        Ok(ScramVerifier { iterations, salt, stored_key: to32(stored)?, server_key: to32(server)? })
    }

    /// Check a plaintext password (HTTP `Bearer tgk_…`) in constant time.
    pub fn check_password(&self, password: &str) -> bool {
        let other = ScramVerifier::derive(password, &self.salt, self.iterations);
        bool::from(other.stored_key.ct_eq(&self.stored_key))
    }

    /// Check a SCRAM client proof over `auth_message`. On success returns the
    /// ServerSignature the server must send back in its server-final message.
    pub fn check_proof(&self, auth_message: &[u8], proof: &[u8]) -> Option<[u8; 32]> {
        if proof.len() != 32 {
            return None;
        }
        let client_signature = hmac(&self.stored_key, auth_message);
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if bool::from(stored.ct_eq(&self.stored_key)) {
            Some(hmac(&self.server_key, auth_message))
        } else {
            None
        }
    }
}

impl std::fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// The public id of a key string (`tgk_<id>_<secret>`), if it is well-formed.
pub fn key_id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix("tgk_")?;
    let (id, s) = rest.split_once('_')?;
    let ok = id.len() == 8 && s.len() == 40 && (id.bytes().chain(s.bytes())).all(|b| b.is_ascii_hexdigit());
    ok.then_some(id)
}

/// A key as listed: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub scope: KeyScope,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the data plane needs to authenticate a key: never the secret.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub id: String,
    pub scope: KeyScope,
    pub verifier: ScramVerifier,
}

/// A freshly created key. `secret` is shown once and then dropped.
#[derive(Serialize)]
pub struct NewKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub secret: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey").field("info", &self.info).field("secret", &"<redacted>").finish()
    }
}

/// `bytes` random bytes from the OS, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A key's public facts from its catalog row (`id, name, scope, created_at, last_used_at,
/// revoked_at`), as the catalog's key queries return them.
pub(crate) fn key_info(r: &tokio_postgres::Row, slug: &str) -> KeyInfo {
    let scope: String = r.get(2);
    KeyInfo {
        id: r.get(0),
        tenant: slug.to_string(),
        name: r.get(1),
        scope: KeyScope::parse(&scope),
        created_at: r.get(3),
        last_used_at: r.get(4),
        revoked_at: r.get(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_verifier_matches_postgres_format_and_roundtrips() {
        let v = ScramVerifier::derive("tgk_0123abcd_00112233445566778899aabbccddeeff00112233", b"0123456789abcdef", 4096);
        let s = v.to_string();
        assert!(s.starts_with("SCRAM-SHA-256$4096:"));
        assert_eq!(ScramVerifier::parse(&s).ok(), Some(v.clone()));
        assert!(v.check_password("tgk_0123abcd_00112233445566778899aabbccddeeff00112233"));
        assert!(!v.check_password("tgk_0123abcd_00112233445566778899aabbccddeeff00112234"));
        assert!(!format!("{v:?}").contains("SCRAM"), "Debug must not print the verifier");
    }

    #[test]
    fn client_proof_checks_like_a_real_scram_client() {
        // Run the client side with postgres-protocol's own SCRAM implementation.
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        let password = "tgk_0123abcd_00112233445566778899aabbccddeeff00112233";
        let v = ScramVerifier::derive(password, b"saltsaltsaltsalt", 4096);
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let client_first = String::from_utf8(client.message().to_vec()).unwrap_or_default();
        let client_first_bare = client_first.trim_start_matches("n,,").to_string();
        let client_nonce = client_first_bare.trim_start_matches("n=,r=").to_string();
        let nonce = format!("{client_nonce}servernonce");
        let server_first = format!("r={nonce},s={},i=4096", B64.encode(&v.salt));
        assert!(client.update(server_first.as_bytes()).is_ok());
        let client_final = String::from_utf8(client.message().to_vec()).unwrap_or_default();
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap_or_default();
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let proof = B64.decode(proof).unwrap_or_default();
        let sig = v.check_proof(auth.as_bytes(), &proof);
        assert!(sig.is_some(), "a correct proof is accepted");
        let server_final = format!("v={}", B64.encode(sig.unwrap_or_default()));
        assert!(client.finish(server_final.as_bytes()).is_ok(), "the client accepts our server signature");
        let other = ScramVerifier::derive("tgk_0123abcd_ffffffffffffffffffffffffffffffffffffffff", b"saltsaltsaltsalt", 4096);
        assert!(other.check_proof(auth.as_bytes(), &proof).is_none(), "another key's verifier refuses the proof");
    }

    #[test]
    fn key_ids_parse_only_from_well_formed_keys() {
        assert_eq!(key_id_of("tgk_0123abcd_00112233445566778899aabbccddeeff00112233"), Some("0123abcd"));
        assert_eq!(key_id_of("tgk_0123abcd_short"), None);
        assert_eq!(key_id_of("0123abcd_00112233445566778899aabbccddeeff00112233"), None);
        assert_eq!(key_id_of(""), None);
    }
}
