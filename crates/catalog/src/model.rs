//! The control plane's vocabulary: placements, tenant status, tenant keys and slugs.
//!
//! Pure types and validation; no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a tenant's rows live (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    Pooled,
    Schema,
    Database,
}

impl Placement {
    pub const ALL: [Placement; 3] = [Placement::Pooled, Placement::Schema, Placement::Database];

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Pooled => "pooled",
            Placement::Schema => "schema",
            Placement::Database => "database",
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Placement {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pooled" => Ok(Placement::Pooled),
            "schema" => Ok(Placement::Schema),
            "database" => Ok(Placement::Database),
            _ => Err(Error::InvalidInput {
                what: "placement",
                value: s.into(),
                reason: "expected one of pooled, schema, database".into(),
            }),
        }
    }
}

/// A tenant's lifecycle status in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Creation is under way, or was interrupted and can be resumed.
    Provisioning,
    Active,
    Suspended,
    /// Creation failed and could not be rolled back automatically.
    Failed,
    /// Erasure is under way, or was interrupted and can be resumed.
    Erasing,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Provisioning => "provisioning",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Failed => "failed",
            TenantStatus::Erasing => "erasing",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "provisioning" => TenantStatus::Provisioning,
            "active" => TenantStatus::Active,
            "suspended" => TenantStatus::Suspended,
            "failed" => TenantStatus::Failed,
            "erasing" => TenantStatus::Erasing,
            _ => {
                return Err(Error::InvalidInput {
                    what: "tenant status",
                    value: s.into(),
                    reason: "unknown status in catalog".into(),
                })
            }
        })
    }
}

/// The opaque tenant key: `t` + 12 hex digits (DESIGN I3, I5). It is also the name of
/// the tenant's read-write role; the read-only role is `<key>_ro`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantKey(String);

impl TenantKey {
    pub const LEN: usize = 13;

    pub fn generate() -> TenantKey {
        use rand::RngCore;
        let mut b = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut b);
        TenantKey(format!("t{}", hex::encode(b)))
    }

    pub fn parse(s: &str) -> Result<TenantKey> {
        let ok = s.len() == Self::LEN
            && s.starts_with('t')
            && s[1..].bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if ok {
            Ok(TenantKey(s.to_string()))
        } else {
            Err(Error::InvalidInput { what: "tenant key", value: s.into(), reason: "expected t + 12 hex digits".into() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn rw_role(&self) -> String {
        self.0.clone()
    }
    pub fn ro_role(&self) -> String {
        format!("{}_ro", self.0)
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validate a tenant slug: lowercase, 3–40 chars, `[a-z][a-z0-9-]*`.
pub fn validate_slug(slug: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidSlug { slug: slug.to_string(), reason });
    if slug.len() < 3 {
        return bad("it is shorter than 3 characters");
    }
    if slug.len() > 40 {
        return bad("it is longer than 40 characters");
    }
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if !slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return bad("it may contain only lowercase letters, digits and '-'");
    }
    Ok(())
}

/// Validate a server or region name: `[a-z][a-z0-9-]*`, 1–40 chars.
pub fn validate_name(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what,
            value: value.into(),
            reason: "use 1-40 lowercase letters, digits and '-', starting with a letter (e.g. `eu-central`)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["abc", "acme-corp", "a1-2", &"a".repeat(40)] {
            validate_slug(ok).unwrap();
        }
        for bad in ["ab", "Acme", "1abc", "acme_corp", "acme corp", "", &"a".repeat(41), "ac\u{e9}me"] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        let k = TenantKey::generate();
        assert_eq!(k.as_str().len(), 13);
        assert!(TenantKey::parse(k.as_str()).is_ok());
        assert!(TenantKey::parse("t12345").is_err());
        assert!(TenantKey::parse("x0123456789ab").is_err());
        assert_eq!(k.ro_role(), format!("{k}_ro"));
    }
}

/// The pool database of every server (`pooled` tenants' shared tables).
pub const POOL_DB: &str = "tg_pool";
/// The bridge database of every server (one schema per `schema` tenant).
pub const BRIDGE_DB: &str = "tg_bridge";
/// The schema of the app's tables in the pool and in tenant databases.
pub const APP_SCHEMA: &str = "app";

/// Where a tenant's tables live on its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub database: String,
    pub schema: String,
}

pub fn location(placement: Placement, key: &TenantKey) -> Location {
    match placement {
        Placement::Pooled => Location { database: POOL_DB.into(), schema: APP_SCHEMA.into() },
        Placement::Schema => Location { database: BRIDGE_DB.into(), schema: key.as_str().into() },
        Placement::Database => Location { database: key.as_str().into(), schema: APP_SCHEMA.into() },
    }
}

