//! Probe tenants: short-lived tenants that `verify` creates, fills with canaries,
//! attacks each other with, and erases.
//!
//! Owns probe naming, spreading probes over servers, issuing their keys and planting
//! their markers. Probes are ordinary tenants created through the normal lifecycle
//! (flagged `is_probe` in the catalog), so they get exactly the isolation real
//! tenants get. It never touches a non-probe tenant.

use rand::RngCore;
use serde::Serialize;

use tg_control::catalog::{Catalog, Tenant};
use tg_control::config::Config;
use tg_control::credentials::MasterKey;
use tg_control::keys::{self, KeyScope};
use tg_control::model::Placement;
use tg_control::placement;
use tg_control::tenants::{self, CreateRequest};

use crate::plant::{self, Planted};
use crate::{Error, Result};

/// A probe tenant ready to attack or be attacked.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub slug: String,
    pub key: String,
    pub placement: Placement,
    pub server: String,
    pub database: String,
    pub schema: String,
    /// The unique marker planted in every table.
    pub canary: String,
    #[serde(skip)]
    pub rw_secret: String,
    #[serde(skip)]
    pub ro_secret: String,
    pub rw_key_id: String,
    pub planted: Planted,
    /// The admin URL's host and port, for direct (no gateway) checks.
    #[serde(skip)]
    pub host: String,
    #[serde(skip)]
    pub port: u16,
}

impl Probe {
    /// The tenant key's role password, for direct connections that bypass the gateway.
    pub fn role_password(&self, master: &MasterKey, read_only: bool) -> (String, String) {
        let role = if read_only { format!("{}_ro", self.key) } else { self.key.clone() };
        let pw = master.role_password(&role);
        (role, pw)
    }
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Create `per_placement` probes of every placement, spread over the servers.
pub async fn create(cfg: &Config, catalog: &mut Catalog, master: &MasterKey, per_placement: usize) -> Result<Vec<Probe>> {
    let servers = catalog.servers().await?;
    if servers.is_empty() {
        return Err(Error::Control(tg_control::Error::NoServers));
    }
    let run = random_hex(3);
    let mut probes = Vec::new();
    // Probes of one placement share a server two by two (so same-database attacks are
    // tried: that is where row-level security carries the load), and the placements
    // rotate over the servers (so cross-server pairs are tried too).
    for (pi, placement) in [Placement::Pooled, Placement::Schema, Placement::Database].into_iter().enumerate() {
        for n in 0..per_placement {
            let server = &servers[(pi + n / 2) % servers.len()];
            let slug = format!("verify-{run}-{}-{n}", placement.as_str());
            let req = CreateRequest {
                slug: slug.clone(),
                placement,
                server: Some(server.name.clone()),
                residency: Vec::new(),
                requires: Vec::new(),
                is_probe: true,
            };
            let created = tenants::create(cfg, catalog, &req).await?;
            probes.push(prepare(catalog, master, &created.tenant).await?);
        }
    }
    Ok(probes)
}

async fn prepare(catalog: &Catalog, master: &MasterKey, t: &Tenant) -> Result<Probe> {
    let rw = keys::create(catalog, &t.slug, KeyScope::ReadWrite, Some("verify")).await?;
    let ro = keys::create(catalog, &t.slug, KeyScope::ReadOnly, Some("verify-ro")).await?;
    let server = catalog.server(&t.server).await?;
    let (host, port) = tg_control::db::host_port(&server.url).ok_or_else(|| Error::Setup(format!("server {} has no host:port in its URL", server.name)))?;
    let loc = placement::location(t.placement, &t.key);
    let canary = format!("tgcanary{}{}", &t.key.as_str()[1..], random_hex(4));
    let role = t.key.rw_role();
    let conn = format!("host={host} port={port} user={role} dbname={}", loc.database);
    let mut pg: tokio_postgres::Config = conn.parse().map_err(|e| Error::Setup(format!("bad probe connection string: {e}")))?;
    pg.password(master.role_password(&role));
    let (client, connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::Setup(format!("probe {} cannot log in as its own role: {e}", t.slug)))?;
    let task = tokio::spawn(connection);
    let planted = plant::plant(&client, &loc.schema, &canary).await?;
    drop(client);
    let _ = task.await;
    if planted.tables.is_empty() {
        return Err(Error::Setup(format!(
            "could not plant a canary in any table of probe {} ({:?}). Is the application schema migrated (`tenantgate migrate`)?",
            t.slug, planted.skipped
        )));
    }
    Ok(Probe {
        slug: t.slug.clone(),
        key: t.key.as_str().to_string(),
        placement: t.placement,
        server: t.server.clone(),
        database: loc.database,
        schema: loc.schema,
        canary,
        rw_secret: rw.secret,
        ro_secret: ro.secret,
        rw_key_id: rw.info.id,
        planted,
        host,
        port,
    })
}

/// Erase the probes (and any probe left over by an earlier interrupted run).
pub async fn erase_all(catalog: &mut Catalog) -> Result<usize> {
    let mut n = 0;
    for t in catalog.tenants().await? {
        if t.is_probe {
            tg_control::mobility::erase::erase(catalog, &t.slug, Some(&t.slug)).await?;
            n += 1;
        }
    }
    Ok(n)
}
