//! The catalog: the single source of truth for servers, tenants, their roles,
//! operations (resumable state machines), audit events and app-schema migration state.
//!
//! Owns the catalog's own versioned schema (`tenantgate init`) and every read and write
//! of it. It never touches tenant data or tenant servers; `placement` does that.
//! Routing readers (the data plane) are told of tenant changes (its row, or its quota
//! override in `tg.tenant_quotas`) by NOTIFY on channel `tenantgate_routing`.

use serde::Serialize;
use tokio_postgres::{Client, Row};

use crate::db;
use crate::quote;
use crate::keys;
use crate::error::{Error, Result};
use crate::model::{Placement, TenantKey, TenantStatus};

/// Versioned catalog migrations. Append only; never edit a released entry.
const CATALOG_MIGRATIONS: &[(i32, &str)] = &[
    (
    1,
    r#"
CREATE TABLE tg.servers (
    name        text PRIMARY KEY,
    url         text NOT NULL,
    region      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tg.tenants (
    key         text PRIMARY KEY CHECK (key ~ '^t[0-9a-f]{12}$'),
    slug        text NOT NULL UNIQUE,
    status      text NOT NULL CHECK (status IN ('provisioning','active','suspended','failed','erasing')),
    placement   text NOT NULL CHECK (placement IN ('pooled','schema','database')),
    server      text NOT NULL REFERENCES tg.servers (name),
    residency   text[] NOT NULL DEFAULT '{}',
    requires    text[] NOT NULL DEFAULT '{}',
    is_probe    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tg.tenant_roles (
    role        text PRIMARY KEY,
    tenant_key  text NOT NULL REFERENCES tg.tenants (key) ON DELETE CASCADE,
    scope       text NOT NULL CHECK (scope IN ('read-write','read-only')),
    server      text NOT NULL REFERENCES tg.servers (name),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tg.tombstones (
    tenant_key  text PRIMARY KEY,
    slug_sha256 text NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT now(),
    certificate jsonb NOT NULL
);
CREATE TABLE tg.operations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    tenant_key  text,
    state       text NOT NULL CHECK (state IN ('running','done','failed','rolled_back')),
    step        text NOT NULL DEFAULT 'start',
    detail      jsonb NOT NULL DEFAULT '{}',
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON tg.operations (tenant_key, id);
CREATE TABLE tg.audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    tenant_key  text,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE tg.settings (
    name        text PRIMARY KEY,
    value       text NOT NULL
);
CREATE TABLE tg.app_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    sql         text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tg.migration_targets (
    target      text PRIMARY KEY,
    server      text NOT NULL REFERENCES tg.servers (name),
    database    text NOT NULL,
    schema      text NOT NULL,
    tenant_key  text REFERENCES tg.tenants (key) ON DELETE CASCADE,
    version     integer NOT NULL DEFAULT 0,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION tg.notify_routing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenantgate_routing', COALESCE(NEW.key, OLD.key));
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_routing AFTER INSERT OR UPDATE OR DELETE ON tg.tenants
    FOR EACH ROW EXECUTE FUNCTION tg.notify_routing();
"#,
    ),
    (
        2,
        r#"
-- Tenant API keys (tgk_<id>_<secret>): only a SCRAM-SHA-256 verifier is stored.
-- All active keys of a tenant share one salt, so a wire client that names only the
-- tenant can be checked against each of them in one SCRAM exchange.
CREATE TABLE tg.api_keys (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}$'),
    tenant_key   text NOT NULL REFERENCES tg.tenants (key) ON DELETE CASCADE,
    name         text,
    scope        text NOT NULL CHECK (scope IN ('read-write','read-only')),
    verifier     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX ON tg.api_keys (tenant_key);
CREATE FUNCTION tg.notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenantgate_keys', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_revoked AFTER UPDATE OF revoked_at OR DELETE ON tg.api_keys
    FOR EACH ROW EXECUTE FUNCTION tg.notify_keys();
-- Outcomes of `tenantgate verify`, cited by the reports.
CREATE TABLE tg.verify_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    passed       boolean NOT NULL,
    scenarios    integer NOT NULL,
    failures     integer NOT NULL,
    summary      jsonb NOT NULL DEFAULT '{}'
);
"#,
    ),
    (
        3,
        r#"
-- Online moves (tenant move): while a tenant's writes are fenced for the cut-over, the
-- gateways hold its new connections instead of failing them. The fence itself is enforced
-- in the tenant's databases (grants revoked); this flag only tells gateways to wait.
ALTER TABLE tg.tenants ADD COLUMN fenced boolean NOT NULL DEFAULT false;
CREATE INDEX ON tg.operations (kind, state);
"#,
    ),
    (
        4,
        r#"
-- Audit retention (gateway.audit_retention_days): the gateways delete their old rows oldest
-- first, a batch at a time, without scanning the table.
CREATE INDEX ON tg.audit_events (at);
"#,
    ),
    (
        5,
        r#"
-- Per-tenant quota overrides (PUT /admin/v1/tenants/{slug}/quotas): the limits in force for
-- the tenant on every gateway, over [gateway.tenant_limits.<slug>] and [gateway.limits]. The
-- gateways read them with the tenant's route; a change notifies tenantgate_routing with the
-- tenant key (tg.notify_routing, as for a change of the tenant row: hence the column `key`),
-- so they re-read it.
CREATE TABLE tg.tenant_quotas (
    key         text PRIMARY KEY REFERENCES tg.tenants (key) ON DELETE CASCADE,
    limits      jsonb NOT NULL CHECK (jsonb_typeof(limits) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER tenant_quotas_routing AFTER INSERT OR UPDATE OR DELETE ON tg.tenant_quotas
    FOR EACH ROW EXECUTE FUNCTION tg.notify_routing();
"#,
    ),
];

pub fn latest_catalog_version() -> i32 {
    CATALOG_MIGRATIONS.last().map_or(0, |m| m.0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub name: String,
    #[serde(skip)]
    pub url: String,
    pub region: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Server {
    pub fn redacted_url(&self) -> String {
        db::redact_url(&self.url)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub slug: String,
    pub key: TenantKey,
    pub status: TenantStatus,
    pub placement: Placement,
    pub server: String,
    pub region: String,
    pub residency: Vec<String>,
    pub requires: Vec<String>,
    pub is_probe: bool,
    /// Writes are fenced for a move's cut-over: gateways hold new connections.
    pub fenced: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub step: String,
    pub detail: serde_json::Value,
    pub error: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One `tenant export` of a tenant, from the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRecord {
    pub at: chrono::DateTime<chrono::Utc>,
    pub file: String,
    pub bytes: u64,
}

/// What is left of an erased tenant: its key, when, and its erasure certificate (slug removed).
#[derive(Debug, Clone, Serialize)]
pub struct Tombstone {
    pub tenant_key: String,
    pub erased_at: chrono::DateTime<chrono::Utc>,
    pub certificate: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppMigration {
    pub version: i32,
    pub name: String,
    pub checksum: String,
    #[serde(skip)]
    pub sql: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationTarget {
    pub target: String,
    pub server: String,
    pub database: String,
    pub schema: String,
    pub tenant_key: Option<String>,
    pub version: i32,
    pub last_error: Option<String>,
}

/// A connection to the catalog database.
pub struct Catalog {
    client: Client,
}

/// Fields of a new tenant row.
pub struct NewTenant<'a> {
    pub slug: &'a str,
    pub key: &'a TenantKey,
    pub placement: Placement,
    pub server: &'a str,
    pub residency: &'a [String],
    pub requires: &'a [String],
    pub is_probe: bool,
}

const TENANT_COLUMNS: &str = "t.slug, t.key, t.status, t.placement, t.server, s.region, t.residency, t.requires, t.is_probe, t.created_at, t.updated_at, t.fenced";

impl Catalog {
    /// Connect to an initialised catalog.
    pub async fn connect(url: &str) -> Result<Catalog> {
        let client = db::connect(url, None, "the catalog").await?;
        let cat = Catalog { client };
        if cat.version().await? < latest_catalog_version() {
            return Err(Error::CatalogNotInitialised);
        }
        Ok(cat)
    }

    /// Create the catalog database if needed and bring its schema to the latest version.
    /// Idempotent; safe to run concurrently (serialised by an advisory lock).
    /// Returns (version before, version after).
    pub async fn init(url: &str) -> Result<(i32, i32)> {
        let client = match db::connect(url, None, "the catalog").await {
            Ok(c) => c,
            Err(Error::Unreachable { source, .. })
                if source.as_db_error().map(|d| d.code().code()) == Some("3D000") =>
            {
                create_catalog_database(url).await?;
                db::connect(url, None, "the catalog").await?
            }
            Err(e) => return Err(e),
        };
        client
            .batch_execute(
                "SELECT pg_advisory_lock(7453010); CREATE SCHEMA IF NOT EXISTS tg; \
                 CREATE TABLE IF NOT EXISTS tg.catalog_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
            )
            .await
            .map_err(|e| Error::db("initialising the catalog", e))?;
        let cat = Catalog { client };
        let before = cat.version().await?;
        for (version, sql) in CATALOG_MIGRATIONS.iter().filter(|(v, _)| *v > before) {
            let batch = format!(
                "BEGIN; {sql}; INSERT INTO tg.catalog_version (version) VALUES ({version}); COMMIT;"
            );
            if let Err(e) = cat.client.batch_execute(&batch).await {
                let _ = cat.client.batch_execute("ROLLBACK").await;
                return Err(Error::db(format!("catalog migration {version}"), e));
            }
        }
        cat.client
            .batch_execute("SELECT pg_advisory_unlock(7453010)")
            .await
            .map_err(|e| Error::db("initialising the catalog", e))?;
        Ok((before, latest_catalog_version()))
    }

    async fn version(&self) -> Result<i32> {
        let row = self
            .client
            .query_one(
                "SELECT CASE WHEN to_regclass('tg.catalog_version') IS NULL THEN 0 ELSE \
                 (SELECT coalesce(max(version), 0) FROM tg.catalog_version) END",
                &[],
            )
            .await;
        match row {
            Ok(r) => Ok(r.get(0)),
            // to_regclass exists but the nested select fails if the table is missing; treat as 0.
            Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("42P01") => Ok(0),
            Err(e) => Err(Error::db("reading the catalog version", e)),
        }
    }

    // ---------------------------------------------------------------- settings

    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt("SELECT value FROM tg.settings WHERE name = $1", &[&name])
            .await
            .map_err(|e| Error::db("reading catalog settings", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Set a setting only if unset; returns the stored value.
    pub async fn setting_init(&self, name: &str, value: &str) -> Result<String> {
        let row = self
            .client
            .query_one(
                "INSERT INTO tg.settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING value",
                &[&name, &value],
            )
            .await
            .map_err(|e| Error::db("writing catalog settings", e))?;
        Ok(row.get(0))
    }

    // ---------------------------------------------------------------- servers

    pub async fn insert_server(&self, name: &str, url: &str, region: &str) -> Result<()> {
        self.client
            .execute("INSERT INTO tg.servers (name, url, region) VALUES ($1, $2, $3)", &[&name, &url, &region])
            .await
            .map_err(|e| match e.as_db_error().map(|d| d.code().code()) {
                Some("23505") => Error::DuplicateServer(name.to_string()),
                _ => Error::db("registering the server", e),
            })?;
        Ok(())
    }

    pub async fn servers(&self) -> Result<Vec<Server>> {
        let rows = self
            .client
            .query("SELECT name, url, region, created_at FROM tg.servers ORDER BY name", &[])
            .await
            .map_err(|e| Error::db("listing servers", e))?;
        Ok(rows.iter().map(server_from_row).collect())
    }

    pub async fn server(&self, name: &str) -> Result<Server> {
        let row = self
            .client
            .query_opt("SELECT name, url, region, created_at FROM tg.servers WHERE name = $1", &[&name])
            .await
            .map_err(|e| Error::db("reading the server", e))?;
        row.as_ref().map(server_from_row).ok_or_else(|| Error::UnknownServer(name.to_string()))
    }

    // ---------------------------------------------------------------- tenants

    /// Insert a tenant in status `provisioning` together with its `create` operation,
    /// atomically. Returns the operation id.
    pub async fn insert_tenant(&mut self, t: &NewTenant<'_>) -> Result<i64> {
        let detail = serde_json::json!({"slug": t.slug, "placement": t.placement, "server": t.server});
        self.insert_tenant_op(t, "create", &detail).await
    }

    /// [`Self::insert_tenant`] with an operation of `kind` (e.g. `import`) and `detail`.
    pub async fn insert_tenant_op(&mut self, t: &NewTenant<'_>, kind: &str, detail: &serde_json::Value) -> Result<i64> {
        let tx = self.client.transaction().await.map_err(|e| Error::db("starting a catalog transaction", e))?;
        tx.execute(
            "INSERT INTO tg.tenants (key, slug, status, placement, server, residency, requires, is_probe) \
             VALUES ($1, $2, 'provisioning', $3, $4, $5, $6, $7)",
            &[&t.key.as_str(), &t.slug, &t.placement.as_str(), &t.server, &t.residency, &t.requires, &t.is_probe],
        )
        .await
        .map_err(|e| match e.as_db_error().map(|d| d.code().code()) {
            Some("23505") => Error::DuplicateTenant(t.slug.to_string()),
            _ => Error::db("recording the tenant", e),
        })?;
        for (role, scope) in [(t.key.rw_role(), "read-write"), (t.key.ro_role(), "read-only")] {
            tx.execute(
                "INSERT INTO tg.tenant_roles (role, tenant_key, scope, server) VALUES ($1, $2, $3, $4)",
                &[&role, &t.key.as_str(), &scope, &t.server],
            )
            .await
            .map_err(|e| Error::db("recording the tenant roles", e))?;
        }
        let op: i64 = tx
            .query_one(
                "INSERT INTO tg.operations (kind, tenant_key, state, detail) VALUES ($1, $2, 'running', $3) RETURNING id",
                &[&kind, &t.key.as_str(), detail],
            )
            .await
            .map_err(|e| Error::db("recording the operation", e))?
            .get(0);
        tx.commit().await.map_err(|e| Error::db("committing the new tenant", e))?;
        Ok(op)
    }

    pub async fn tenant(&self, slug: &str) -> Result<Tenant> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tg.tenants t JOIN tg.servers s ON s.name = t.server WHERE t.slug = $1");
        let row = self.client.query_opt(&sql, &[&slug]).await.map_err(|e| Error::db("reading the tenant", e))?;
        match row {
            Some(r) => tenant_from_row(&r),
            None => Err(Error::UnknownTenant(slug.to_string())),
        }
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tg.tenants t JOIN tg.servers s ON s.name = t.server ORDER BY t.slug");
        let rows = self.client.query(&sql, &[]).await.map_err(|e| Error::db("listing tenants", e))?;
        rows.iter().map(tenant_from_row).collect()
    }

    pub async fn set_status(&self, key: &TenantKey, status: TenantStatus) -> Result<()> {
        self.client
            .execute(
                "UPDATE tg.tenants SET status = $2, updated_at = now() WHERE key = $1",
                &[&key.as_str(), &status.as_str()],
            )
            .await
            .map_err(|e| Error::db("updating the tenant status", e))?;
        Ok(())
    }

    /// Remove the tenant row (roles and targets cascade) and leave a tombstone, atomically.
    pub async fn tombstone(&mut self, key: &TenantKey, slug: &str, certificate: &serde_json::Value) -> Result<()> {
        let tx = self.client.transaction().await.map_err(|e| Error::db("starting a catalog transaction", e))?;
        let slug_hash = crate::credentials::sha256_hex(slug);
        tx.execute(
            "INSERT INTO tg.tombstones (tenant_key, slug_sha256, certificate) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_key) DO NOTHING",
            &[&key.as_str(), &slug_hash, certificate],
        )
        .await
        .map_err(|e| Error::db("writing the tombstone", e))?;
        tx.execute("DELETE FROM tg.tenants WHERE key = $1", &[&key.as_str()])
            .await
            .map_err(|e| Error::db("removing the tenant from the catalog", e))?;
        tx.commit().await.map_err(|e| Error::db("committing the erasure", e))
    }

    /// Whether a tenant key is taken: by a tenant, or by an erased one's tombstone.
    pub async fn key_known(&self, key: &TenantKey) -> Result<bool> {
        self.client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM tg.tenants WHERE key = $1) OR EXISTS (SELECT 1 FROM tg.tombstones WHERE tenant_key = $1)",
                &[&key.as_str()],
            )
            .await
            .map(|r| r.get(0))
            .map_err(|e| Error::db("looking up a tenant key", e))
    }

    /// Delete a tenant row that never became real (rolled-back creation).
    pub async fn delete_tenant(&self, key: &TenantKey) -> Result<()> {
        self.client
            .execute("DELETE FROM tg.tenants WHERE key = $1", &[&key.as_str()])
            .await
            .map_err(|e| Error::db("removing the rolled-back tenant", e))?;
        Ok(())
    }

    // ---------------------------------------------------------------- operations

    pub async fn start_op(&self, kind: &str, key: Option<&TenantKey>, detail: serde_json::Value) -> Result<i64> {
        let row = self
            .client
            .query_one(
                "INSERT INTO tg.operations (kind, tenant_key, state, detail) VALUES ($1, $2, 'running', $3) RETURNING id",
                &[&kind, &key.map(|k| k.as_str()), &detail],
            )
            .await
            .map_err(|e| Error::db("recording the operation", e))?;
        Ok(row.get(0))
    }

    pub async fn op_step(&self, id: i64, step: &str) -> Result<()> {
        self.client
            .execute("UPDATE tg.operations SET step = $2, updated_at = now() WHERE id = $1", &[&id, &step])
            .await
            .map_err(|e| Error::db("recording the operation step", e))?;
        Ok(())
    }

    pub async fn op_finish(&self, id: i64, state: &str, error: Option<&str>) -> Result<()> {
        self.client
            .execute(
                "UPDATE tg.operations SET state = $2, error = $3, updated_at = now() WHERE id = $1",
                &[&id, &state, &error],
            )
            .await
            .map_err(|e| Error::db("finishing the operation", e))?;
        Ok(())
    }

    /// The most recent operation of a tenant that is still running or failed, if any.
    pub async fn open_op(&self, key: &TenantKey) -> Result<Option<Operation>> {
        let row = self
            .client
            .query_opt(
                "SELECT id, kind, state, step, detail, error, started_at, updated_at FROM tg.operations \
                 WHERE tenant_key = $1 AND state IN ('running','failed') ORDER BY id DESC LIMIT 1",
                &[&key.as_str()],
            )
            .await
            .map_err(|e| Error::db("reading operations", e))?;
        Ok(row.as_ref().map(op_from_row))
    }

    pub async fn ops_for(&self, key: &TenantKey) -> Result<Vec<Operation>> {
        let rows = self
            .client
            .query(
                "SELECT id, kind, state, step, detail, error, started_at, updated_at FROM tg.operations \
                 WHERE tenant_key = $1 ORDER BY id",
                &[&key.as_str()],
            )
            .await
            .map_err(|e| Error::db("reading operations", e))?;
        Ok(rows.iter().map(op_from_row).collect())
    }

    /// Replace the operation's detail (a move's plan and timings).
    pub async fn op_detail(&self, id: i64, detail: &serde_json::Value) -> Result<()> {
        self.client
            .execute("UPDATE tg.operations SET detail = $2, updated_at = now() WHERE id = $1", &[&id, detail])
            .await
            .map_err(|e| Error::db("recording the operation detail", e))?;
        Ok(())
    }

    /// Unfinished (running or failed) operations of `kind` (e.g. moves), any tenant.
    pub async fn running_ops(&self, kind: &str) -> Result<Vec<Operation>> {
        let rows = self
            .client
            .query(
                "SELECT id, kind, state, step, detail, error, started_at, updated_at FROM tg.operations \
                 WHERE kind = $1 AND state IN ('running','failed') ORDER BY id",
                &[&kind],
            )
            .await
            .map_err(|e| Error::db("reading operations", e))?;
        Ok(rows.iter().map(op_from_row).collect())
    }

    /// The latest operation of `kind` for a tenant, whatever its state.
    pub async fn last_op(&self, key: &TenantKey, kind: &str) -> Result<Option<Operation>> {
        let row = self
            .client
            .query_opt(
                "SELECT id, kind, state, step, detail, error, started_at, updated_at FROM tg.operations \
                 WHERE tenant_key = $1 AND kind = $2 ORDER BY id DESC LIMIT 1",
                &[&key.as_str(), &kind],
            )
            .await
            .map_err(|e| Error::db("reading operations", e))?;
        Ok(row.as_ref().map(op_from_row))
    }

    // ---------------------------------------------------------------- moves

    /// Set or clear a tenant's move fence flag (gateways hold its new connections while set).
    pub async fn set_fenced(&self, key: &TenantKey, fenced: bool) -> Result<()> {
        self.client
            .execute("UPDATE tg.tenants SET fenced = $2, updated_at = now() WHERE key = $1", &[&key.as_str(), &fenced])
            .await
            .map_err(|e| Error::db("updating the tenant's fence", e))?;
        Ok(())
    }

    /// The flip of a move (DESIGN I7): in one catalog transaction the tenant's route moves to
    /// `placement` on `server`, its roles are recorded on that server, its migration target
    /// follows it, and the operation's step becomes `step`. Either all of it is visible to
    /// the gateways or none of it; there is no instant with two routes or none.
    pub async fn flip_route(
        &mut self,
        key: &TenantKey,
        placement: Placement,
        server: &str,
        target: Option<&MigrationTarget>,
        op: i64,
        step: &str,
    ) -> Result<()> {
        let tx = self.client.transaction().await.map_err(|e| Error::db("starting a catalog transaction", e))?;
        let fail = |e| Error::db("flipping the tenant's route", e);
        tx.execute(
            "UPDATE tg.tenants SET placement = $2, server = $3, updated_at = now() WHERE key = $1",
            &[&key.as_str(), &placement.as_str(), &server],
        )
        .await
        .map_err(fail)?;
        tx.execute("UPDATE tg.tenant_roles SET server = $2 WHERE tenant_key = $1", &[&key.as_str(), &server])
            .await
            .map_err(fail)?;
        tx.execute("DELETE FROM tg.migration_targets WHERE tenant_key = $1", &[&key.as_str()]).await.map_err(fail)?;
        if let Some(t) = target {
            tx.execute(
                "INSERT INTO tg.migration_targets (target, server, database, schema, tenant_key, version) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (target) DO UPDATE SET version = EXCLUDED.version, last_error = NULL, updated_at = now()",
                &[&t.target, &t.server, &t.database, &t.schema, &t.tenant_key, &t.version],
            )
            .await
            .map_err(fail)?;
        }
        tx.execute("UPDATE tg.operations SET step = $2, updated_at = now() WHERE id = $1", &[&op, &step])
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(|e| Error::db("committing the flip", e))
    }

    // ---------------------------------------------------------------- audit

    /// An operator action, by the operator running the command (`$USER`).
    pub async fn audit(&self, action: &str, key: Option<&TenantKey>, detail: serde_json::Value) -> Result<()> {
        let actor = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        self.audit_as(&actor, action, key.map(|k| k.as_str()), detail).await
    }

    /// An audit event by `actor` (`gateway` for the data plane's events).
    pub async fn audit_as(&self, actor: &str, action: &str, tenant_key: Option<&str>, detail: serde_json::Value) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO tg.audit_events (actor, action, tenant_key, detail) VALUES ($1, $2, $3, $4)",
                &[&actor, &action, &tenant_key, &detail],
            )
            .await
            .map_err(|e| Error::db("writing the audit event", e))?;
        Ok(())
    }

    /// Bound every later statement on this connection (the gateway's audit writer, so a write
    /// stuck behind a lock is cancelled by the server instead of lingering).
    pub async fn set_statement_timeout(&self, ms: u64) -> Result<()> {
        self.client
            .batch_execute(&format!("SET statement_timeout = {ms}"))
            .await
            .map_err(|e| Error::db("setting statement_timeout", e))
    }

    /// Many audit events by `actor` in one statement (the gateway's batched writer). Each
    /// event is (action, tenant key, detail).
    pub async fn audit_batch(&self, actor: &str, events: &[(&str, Option<&str>, serde_json::Value)]) -> Result<()> {
        let actions: Vec<&str> = events.iter().map(|e| e.0).collect();
        let tenants: Vec<Option<&str>> = events.iter().map(|e| e.1).collect();
        let details: Vec<&serde_json::Value> = events.iter().map(|e| &e.2).collect();
        self.client
            .execute(
                "INSERT INTO tg.audit_events (actor, action, tenant_key, detail) \
                 SELECT $1, a, t, d FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS u(a, t, d)",
                &[&actor, &actions, &tenants, &details],
            )
            .await
            .map_err(|e| Error::db("writing audit events", e))?;
        Ok(())
    }

    /// Delete up to `batch` audit events by `actor` older than `days` days, oldest first;
    /// returns how many went (found through the index on `at`).
    pub async fn prune_audit(&self, actor: &str, days: u32, batch: i64) -> Result<u64> {
        self.client
            .execute(
                "DELETE FROM tg.audit_events WHERE id IN (SELECT id FROM tg.audit_events \
                 WHERE actor = $1 AND at < now() - make_interval(days => $2) ORDER BY at LIMIT $3)",
                &[&actor, &(days as i32), &batch],
            )
            .await
            .map_err(|e| Error::db("pruning audit events", e))
    }

    /// The archives `tenant export` wrote of a tenant, oldest first, as its audit events
    /// (`tenant.export`) record them: when, the file, its size.
    pub async fn exports_of(&self, key: &TenantKey) -> Result<Vec<ExportRecord>> {
        let rows = self
            .client
            .query(
                "SELECT at, coalesce(detail->>'file', ''), coalesce((detail->>'bytes')::bigint, 0) FROM tg.audit_events \
                 WHERE action = 'tenant.export' AND tenant_key = $1 ORDER BY id",
                &[&key.as_str()],
            )
            .await
            .map_err(|e| Error::db("reading the tenant's exports from the audit trail", e))?;
        Ok(rows.iter().map(|r| ExportRecord { at: r.get(0), file: r.get(1), bytes: r.get::<_, i64>(2).max(0) as u64 }).collect())
    }

    /// The tombstones of erased tenants that had `slug`, newest first (a slug can be reused).
    pub async fn tombstones_of_slug(&self, slug: &str) -> Result<Vec<Tombstone>> {
        let rows = self
            .client
            .query(
                "SELECT tenant_key, erased_at, certificate FROM tg.tombstones WHERE slug_sha256 = $1 ORDER BY erased_at DESC",
                &[&crate::credentials::sha256_hex(slug)],
            )
            .await
            .map_err(|e| Error::db("reading tombstones", e))?;
        Ok(rows.iter().map(|r| Tombstone { tenant_key: r.get(0), erased_at: r.get(1), certificate: r.get(2) }).collect())
    }

    // ---------------------------------------------------------------- app migrations

    pub async fn app_migrations(&self) -> Result<Vec<AppMigration>> {
        let rows = self
            .client
            .query("SELECT version, name, checksum, sql FROM tg.app_migrations ORDER BY version", &[])
            .await
            .map_err(|e| Error::db("reading app migrations", e))?;
        Ok(rows
            .iter()
            .map(|r| AppMigration { version: r.get(0), name: r.get(1), checksum: r.get(2), sql: r.get(3) })
            .collect())
    }

    pub async fn register_app_migration(&self, m: &AppMigration) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO tg.app_migrations (version, name, checksum, sql) VALUES ($1, $2, $3, $4)",
                &[&m.version, &m.name, &m.checksum, &m.sql],
            )
            .await
            .map_err(|e| Error::db("registering the migration", e))?;
        Ok(())
    }

    pub async fn ensure_target(&self, t: &MigrationTarget) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO tg.migration_targets (target, server, database, schema, tenant_key) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target) DO NOTHING",
                &[&t.target, &t.server, &t.database, &t.schema, &t.tenant_key],
            )
            .await
            .map_err(|e| Error::db("recording the migration target", e))?;
        Ok(())
    }

    /// The app-schema version a target has reached, if it is known and has no error.
    pub async fn target_version(&self, target: &str) -> Result<Option<i32>> {
        let row = self
            .client
            .query_opt("SELECT version FROM tg.migration_targets WHERE target = $1 AND last_error IS NULL", &[&target])
            .await
            .map_err(|e| Error::db("reading the migration target", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn targets(&self) -> Result<Vec<MigrationTarget>> {
        let rows = self
            .client
            .query(
                "SELECT target, server, database, schema, tenant_key, version, last_error \
                 FROM tg.migration_targets ORDER BY server, database, schema",
                &[],
            )
            .await
            .map_err(|e| Error::db("listing migration targets", e))?;
        Ok(rows
            .iter()
            .map(|r| MigrationTarget {
                target: r.get(0),
                server: r.get(1),
                database: r.get(2),
                schema: r.get(3),
                tenant_key: r.get(4),
                version: r.get(5),
                last_error: r.get(6),
            })
            .collect())
    }

    pub async fn set_target_state(&self, target: &str, version: i32, error: Option<&str>) -> Result<()> {
        self.client
            .execute(
                "UPDATE tg.migration_targets SET version = $2, last_error = $3, updated_at = now() WHERE target = $1",
                &[&target, &version, &error],
            )
            .await
            .map_err(|e| Error::db("recording migration progress", e))?;
        Ok(())
    }
}

async fn create_catalog_database(url: &str) -> Result<()> {
    let cfg: tokio_postgres::Config = url.parse().map_err(|e| Error::InvalidInput {
        what: "catalog URL",
        value: db::redact_url(url),
        reason: format!("{e}"),
    })?;
    let name = cfg.get_dbname().unwrap_or("tenantgate").to_string();
    let admin = db::connect(url, Some("postgres"), "the catalog server").await?;
    // CREATE DATABASE cannot share a (implicit) transaction with other statements.
    match admin.batch_execute(&format!("CREATE DATABASE {}", quote::ident(&name))).await {
        Ok(()) => {}
        // Someone else created it concurrently.
        Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("42P04") => {}
        Err(e) => return Err(Error::db("creating the catalog database", e)),
    }
    admin
        .batch_execute(&format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", quote::ident(&name)))
        .await
        .map_err(|e| Error::db("restricting access to the catalog database", e))
}

fn server_from_row(r: &Row) -> Server {
    Server { name: r.get(0), url: r.get(1), region: r.get(2), created_at: r.get(3) }
}

fn tenant_from_row(r: &Row) -> Result<Tenant> {
    let placement: String = r.get(3);
    let status: String = r.get(2);
    let key: String = r.get(1);
    Ok(Tenant {
        slug: r.get(0),
        key: TenantKey::parse(&key)?,
        status: status.parse()?,
        placement: placement.parse()?,
        server: r.get(4),
        region: r.get(5),
        residency: r.get(6),
        requires: r.get(7),
        is_probe: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        fenced: r.get(11),
    })
}

fn op_from_row(r: &Row) -> Operation {
    Operation {
        id: r.get(0),
        kind: r.get(1),
        state: r.get(2),
        step: r.get(3),
        detail: r.get(4),
        error: r.get(5),
        started_at: r.get(6),
        updated_at: r.get(7),
    }
}

impl Catalog {
    // ---------------------------------------------------------------- API keys

    pub async fn insert_key(
        &self,
        id: &str,
        tenant_key: &TenantKey,
        slug: &str,
        name: Option<&str>,
        scope: keys::KeyScope,
        verifier: &str,
    ) -> Result<keys::KeyInfo> {
        let row = self
            .client
            .query_one(
                "INSERT INTO tg.api_keys (id, tenant_key, name, scope, verifier) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, name, scope, created_at, last_used_at, revoked_at",
                &[&id, &tenant_key.as_str(), &name, &scope.as_str(), &verifier],
            )
            .await
            .map_err(|e| Error::db("storing the key", e))?;
        Ok(keys::key_info(&row, slug))
    }

    pub async fn keys(&self, tenant_key: &str, slug: &str) -> Result<Vec<keys::KeyInfo>> {
        let rows = self
            .client
            .query(
                "SELECT id, name, scope, created_at, last_used_at, revoked_at FROM tg.api_keys \
                 WHERE tenant_key = $1 ORDER BY created_at, id",
                &[&tenant_key],
            )
            .await
            .map_err(|e| Error::db("listing keys", e))?;
        Ok(rows.iter().map(|r| keys::key_info(r, slug)).collect())
    }

    /// The tenant's unrevoked keys, with their verifiers, for authentication.
    pub async fn active_keys(&self, tenant_key: &str) -> Result<Vec<keys::ActiveKey>> {
        let rows = self
            .client
            .query(
                "SELECT id, scope, verifier FROM tg.api_keys WHERE tenant_key = $1 AND revoked_at IS NULL ORDER BY id",
                &[&tenant_key],
            )
            .await
            .map_err(|e| Error::db("reading keys", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let scope: String = r.get(1);
            let verifier: String = r.get(2);
            out.push(keys::ActiveKey { id: r.get(0), scope: keys::KeyScope::parse(&scope), verifier: keys::ScramVerifier::parse(&verifier)? });
        }
        Ok(out)
    }

    pub async fn revoke_key(&self, tenant_key: &str, slug: &str, id: &str) -> Result<keys::KeyInfo> {
        let row = self
            .client
            .query_opt(
                "UPDATE tg.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_key = $1 AND id = $2 \
                 RETURNING id, name, scope, created_at, last_used_at, revoked_at",
                &[&tenant_key, &id],
            )
            .await
            .map_err(|e| Error::db("revoking the key", e))?;
        match row {
            Some(r) => Ok(keys::key_info(&r, slug)),
            None => Err(Error::UnknownKey { slug: slug.into(), id: id.into() }),
        }
    }

    /// Record that a key was used (the gateway calls this at most once a minute per key).
    pub async fn touch_key(&self, id: &str) -> Result<()> {
        self.client
            .execute("UPDATE tg.api_keys SET last_used_at = now() WHERE id = $1", &[&id])
            .await
            .map_err(|e| Error::db("recording key use", e))?;
        Ok(())
    }

    /// Record that these keys were used (the gateway's batched audit writer).
    pub async fn touch_keys(&self, ids: &[&str]) -> Result<()> {
        self.client
            .execute("UPDATE tg.api_keys SET last_used_at = now() WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(|e| Error::db("recording key use", e))?;
        Ok(())
    }

    /// Is this key still unrevoked? (Open sessions re-check on NOTIFY and periodically.)
    pub async fn key_is_active(&self, id: &str) -> Result<bool> {
        let row = self
            .client
            .query_opt("SELECT revoked_at IS NULL FROM tg.api_keys WHERE id = $1", &[&id])
            .await
            .map_err(|e| Error::db("checking the key", e))?;
        Ok(row.map(|r| r.get::<_, bool>(0)).unwrap_or(false))
    }

    // ---------------------------------------------------------------- for the data plane and reports

    /// The slug of the tenant owning unrevoked key `id`, if any.
    pub async fn key_owner(&self, id: &str) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt(
                "SELECT t.slug FROM tg.api_keys k JOIN tg.tenants t ON t.key = k.tenant_key \
                 WHERE k.id = $1 AND k.revoked_at IS NULL",
                &[&id],
            )
            .await
            .map_err(|e| Error::db("reading the key's tenant", e))?;
        Ok(row.map(|r| r.get::<_, String>(0)))
    }

    // ---------------------------------------------------------------- quota overrides

    /// The tenant's quota override (an object of `[gateway.limits]` fields, as the admin API
    /// wrote it), or `None` when its limits come from the gateways' config.
    pub async fn tenant_quotas(&self, key: &TenantKey) -> Result<Option<serde_json::Value>> {
        let row = self
            .client
            .query_opt("SELECT limits FROM tg.tenant_quotas WHERE key = $1", &[&key.as_str()])
            .await
            .map_err(|e| Error::db("reading the tenant's quota override", e))?;
        Ok(row.map(|r| r.get::<_, serde_json::Value>(0)))
    }

    /// Set the tenant's quota override (validated by the caller). Every gateway is told by
    /// NOTIFY on `tenantgate_routing`.
    pub async fn set_tenant_quotas(&self, key: &TenantKey, limits: &serde_json::Value) -> Result<()> {
        if !limits.is_object() {
            return Err(Error::InvalidInput { what: "quota override", value: limits.to_string(), reason: "must be a JSON object of limits".into() });
        }
        self.client
            .execute(
                "INSERT INTO tg.tenant_quotas (key, limits) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET limits = EXCLUDED.limits, updated_at = now()",
                &[&key.as_str(), limits],
            )
            .await
            .map_err(|e| Error::db("writing the tenant's quota override", e))?;
        Ok(())
    }

    /// Drop the tenant's quota override (back to the config's limits). Whether there was one.
    pub async fn clear_tenant_quotas(&self, key: &TenantKey) -> Result<bool> {
        self.client
            .execute("DELETE FROM tg.tenant_quotas WHERE key = $1", &[&key.as_str()])
            .await
            .map(|n| n > 0)
            .map_err(|e| Error::db("clearing the tenant's quota override", e))
    }

    /// Replace a tenant's declared requirements (`tenant update --requires`).
    pub async fn set_requires(&self, slug: &str, requires: &[String]) -> Result<()> {
        self.client
            .execute("UPDATE tg.tenants SET requires = $2, updated_at = now() WHERE slug = $1", &[&slug, &requires])
            .await
            .map_err(|e| Error::db("updating the tenant's requirements", e))?;
        Ok(())
    }

    /// Record a finished `verify` run.
    pub async fn insert_verify_run(
        &self,
        started_at: chrono::DateTime<chrono::Utc>,
        passed: bool,
        scenarios: i32,
        failures: i32,
        summary: &serde_json::Value,
    ) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO tg.verify_runs (started_at, passed, scenarios, failures, summary) VALUES ($1, $2, $3, $4, $5)",
                &[&started_at, &passed, &scenarios, &failures, summary],
            )
            .await
            .map_err(|e| Error::db("recording the verify run", e))?;
        Ok(())
    }

    /// How many `verify` runs are recorded, the latest, and the latest that passed.
    pub async fn verify_runs(&self) -> Result<VerifyRuns> {
        let ctx = |e| Error::db("reading tg.verify_runs", e);
        let cols = "id, started_at, finished_at, passed, scenarios, failures";
        let to_run = |r: Row| VerifyRun {
            id: r.get(0),
            started_at: r.get(1),
            finished_at: r.get(2),
            passed: r.get(3),
            scenarios: r.get(4),
            failures: r.get(5),
        };
        let count: i64 = self.client.query_one("SELECT count(*) FROM tg.verify_runs", &[]).await.map_err(ctx)?.get(0);
        let last = self
            .client
            .query_opt(&format!("SELECT {cols} FROM tg.verify_runs ORDER BY finished_at DESC, id DESC LIMIT 1"), &[])
            .await
            .map_err(ctx)?
            .map(to_run);
        let last_passed = self
            .client
            .query_opt(&format!("SELECT {cols} FROM tg.verify_runs WHERE passed ORDER BY finished_at DESC, id DESC LIMIT 1"), &[])
            .await
            .map_err(ctx)?
            .map(to_run);
        Ok(VerifyRuns { count, last, last_passed })
    }

    /// Whether the catalog connection has closed (the router then reconnects).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// One recorded `verify` run.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRun {
    pub id: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub passed: bool,
    pub scenarios: i32,
    pub failures: i32,
}

impl VerifyRun {
    /// Where the reports say this fact comes from: `verify: tg.verify_runs#12`.
    pub fn source(&self) -> String {
        format!("verify: tg.verify_runs#{}", self.id)
    }
}

/// The `verify` history the reports cite.
#[derive(Debug, Clone)]
pub struct VerifyRuns {
    pub count: i64,
    pub last: Option<VerifyRun>,
    pub last_passed: Option<VerifyRun>,
}
