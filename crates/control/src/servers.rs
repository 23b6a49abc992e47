//! Server registration: `server add` (with its checks) and `server list`, plus syncing
//! `[[servers]]` from tenantgate.toml into the catalog on `init`.
//!
//! Never stores a server before it passed its checks; never prints a URL unredacted.

use crate::catalog::Catalog;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::model::validate_name;
use crate::placement::{check_server, ServerInfo};

/// Check a server and register it. Nothing is stored if a check fails.
pub async fn add(catalog: &Catalog, name: &str, url: &str, region: &str) -> Result<ServerInfo> {
    validate_name("server name", name)?;
    validate_name("region", region)?;
    if catalog.servers().await?.iter().any(|s| s.name == name) {
        return Err(Error::DuplicateServer(name.to_string()));
    }
    let info = check_server(name, url).await?;
    catalog.insert_server(name, url, region).await?;
    catalog
        .audit("server.add", None, serde_json::json!({"server": name, "region": region, "version": info.version}))
        .await?;
    Ok(info)
}

/// Register the config's servers that the catalog does not know yet. A server already
/// registered under the same name must agree on its region.
pub async fn sync_from_config(catalog: &Catalog, servers: &[ServerConfig]) -> Result<Vec<String>> {
    let known = catalog.servers().await?;
    let mut added = Vec::new();
    for s in servers {
        match known.iter().find(|k| k.name == s.name) {
            Some(k) if k.region != s.region => {
                return Err(Error::Config(format!(
                    "server {:?} is in region {:?} in the catalog but {:?} in tenantgate.toml; regions cannot change in place (move the tenants instead)",
                    s.name, k.region, s.region
                )))
            }
            Some(_) => {}
            None => {
                add(catalog, &s.name, &s.url, &s.region).await?;
                added.push(s.name.clone());
            }
        }
    }
    Ok(added)
}
