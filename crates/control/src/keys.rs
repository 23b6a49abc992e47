//! Issuing, listing and revoking tenant API keys (the control plane's half of keys; the key
//! format and its SCRAM verifiers are `tg_catalog::keys`, re-exported here).
//!
//! This module never logs or returns a secret except from [`create`], once.

use rand::RngCore;

pub use tg_catalog::keys::*;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::model::TenantStatus;

/// Issue a new key for tenant `slug`.
pub async fn create(catalog: &Catalog, slug: &str, scope: KeyScope, name: Option<&str>) -> Result<NewKey> {
    if let Some(n) = name {
        if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control()) {
            return Err(Error::InvalidInput {
                what: "key name",
                value: n.into(),
                reason: "use 1-64 printable characters, e.g. `text2sql-agent`".into(),
            });
        }
    }
    let tenant = catalog.tenant(slug).await?;
    if !matches!(tenant.status, TenantStatus::Active | TenantStatus::Suspended) {
        return Err(Error::WrongStatus {
            slug: slug.into(),
            status: tenant.status.to_string(),
            hint: "keys can be issued only for active or suspended tenants; finish or erase the tenant first".into(),
        });
    }
    // Reuse the salt of the tenant's other active keys (see the module docs).
    let salt = match catalog.active_keys(tenant.key.as_str()).await?.first() {
        Some(k) => k.verifier.salt.clone(),
        None => {
            let mut s = vec![0u8; SALT_LEN];
            rand::rngs::OsRng.fill_bytes(&mut s);
            s
        }
    };
    let id = random_hex(4);
    let secret = format!("tgk_{id}_{}", random_hex(20));
    let verifier = ScramVerifier::derive(&secret, &salt, SCRAM_ITERATIONS);
    let info = catalog.insert_key(&id, &tenant.key, slug, name, scope, &verifier.to_string()).await?;
    catalog
        .audit("key.create", Some(&tenant.key), serde_json::json!({"key_id": id, "scope": scope.as_str()}))
        .await?;
    Ok(NewKey { info, secret })
}

pub async fn list(catalog: &Catalog, slug: &str) -> Result<Vec<KeyInfo>> {
    let tenant = catalog.tenant(slug).await?;
    catalog.keys(tenant.key.as_str(), slug).await
}

/// Revoke a key. Idempotent; an id of another tenant answers "no key", like a missing one.
pub async fn revoke(catalog: &Catalog, slug: &str, id: &str) -> Result<KeyInfo> {
    let tenant = catalog.tenant(slug).await?;
    let info = catalog.revoke_key(tenant.key.as_str(), slug, id).await?;
    catalog.audit("key.revoke", Some(&tenant.key), serde_json::json!({"key_id": id})).await?;
    Ok(info)
}


