//! Placement: the physical layout of the three placements on a server, and the DDL
//! that makes isolation a property of the database (DESIGN I1–I5).
//!
//! Owns: tenant login roles and their derived passwords, the shared `tg_pool` and
//! `tg_bridge` databases, tenant schemas and databases, RLS, policies and grants.
//! Every function here is idempotent so that interrupted operations can be resumed.
//! It never reads or writes the catalog, and never grants a tenant role CREATE,
//! TRUNCATE, REFERENCES, TRIGGER, ownership, or membership in another tenant's role.
//!
//! Layout on each server:
//! - `tg_pool` database, schema `app`: pooled tenants' shared tables. Table privileges
//!   are granted to two NOLOGIN group roles (`tg_pool_rw`, `tg_pool_ro`) that pooled
//!   tenant roles are members of: a per-tenant grant on every shared table would hit
//!   PostgreSQL's ACL size limit at a few hundred tenants. The groups reach only rows
//!   the RLS policy admits for the *session* user, so membership reaches no other tenant.
//! - `tg_bridge` database, one schema per `schema` tenant, granted to that tenant only.
//! - one database per `database` tenant, schema `app`, CONNECT for that tenant only.
//! - in every database: schema `tenantgate` (the `current_tenant()` function) and schema
//!   `tenantgate_admin` (applied-migration records; no tenant can see it).

use tokio_postgres::Client;

use crate::credentials::{scram_verifier, MasterKey};
use crate::db;
use crate::quote::{ident, literal};
use crate::error::{Error, Result};
use crate::model::{Placement, TenantKey};

pub use tg_catalog::model::{location, Location, APP_SCHEMA, BRIDGE_DB, POOL_DB};
pub const POOL_RW_GROUP: &str = "tg_pool_rw";
pub const POOL_RO_GROUP: &str = "tg_pool_ro";
pub const BRIDGE_GROUP: &str = "tg_bridge_connect";
pub const POLICY_NAME: &str = "tenant_isolation";
/// The RLS predicate of DESIGN I3: the session's login role, compared directly.
pub const POLICY_EXPR: &str = "tenant_id = left(session_user::text, 13)";

/// The roles that receive table grants in a location: (read-write, read-only).
pub fn grantees(placement: Placement, key: Option<&TenantKey>) -> Result<(String, String)> {
    match (placement, key) {
        (Placement::Pooled, _) => Ok((POOL_RW_GROUP.into(), POOL_RO_GROUP.into())),
        (_, Some(k)) => Ok((k.rw_role(), k.ro_role())),
        (_, None) => Err(Error::Migration("a schema or database target must belong to a tenant".into())),
    }
}

/// What `server add` learns about a server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    pub version: String,
    pub version_num: i32,
    pub superuser: bool,
    pub wal_level: String,
    pub warnings: Vec<String>,
}

/// Check that a server can host tenants: reachable, PostgreSQL ≥ 15, and an admin role
/// that can create roles and databases and read past RLS (superuser, or
/// CREATEROLE + CREATEDB + BYPASSRLS).
pub async fn check_server(name: &str, url: &str) -> Result<ServerInfo> {
    let client = db::connect(url, None, &format!("server {name:?}")).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
             r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, current_setting('wal_level') \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::db("checking the server", e))?;
    let info = ServerInfo {
        version: row.get(0),
        version_num: row.get(1),
        superuser: row.get(2),
        wal_level: row.get(6),
        warnings: Vec::new(),
    };
    let (createrole, createdb, bypassrls): (bool, bool, bool) = (row.get(3), row.get(4), row.get(5));
    let fail = |reason: String| Err(Error::ServerCheck { server: name.into(), reason });
    if info.version_num < 150000 {
        return fail(format!("it runs PostgreSQL {}; tenantgate needs 15 or newer", info.version));
    }
    if !(info.superuser || (createrole && createdb && bypassrls)) {
        return fail(
            "the admin role in its URL cannot create roles and databases and read past RLS; \
             use a superuser or a role with CREATEROLE CREATEDB BYPASSRLS"
                .into(),
        );
    }
    let mut info = info;
    if info.wal_level != "logical" {
        info.warnings.push(format!(
            "wal_level is {}; `tenant move` needs wal_level = logical (set it in postgresql.conf and restart)",
            info.wal_level
        ));
    }
    if info.version_num < 150009 {
        info.warnings.push(format!(
            "PostgreSQL {} has known RLS bugs (CVE-2024-10976); upgrade to 15.9 or later",
            info.version
        ));
    }
    Ok(info)
}

/// The advisory lock key (in each server's admin database) that serialises
/// [`ServerAdmin::ensure_shared_on`]: "tgshared" in ASCII.
const SHARED_SETUP_LOCK: i64 = 0x7467_7368_6172_6564;

/// Admin access to one server's databases.
pub struct ServerAdmin<'a> {
    pub name: &'a str,
    pub url: &'a str,
}

impl ServerAdmin<'_> {
    pub async fn connect(&self, database: Option<&str>) -> Result<Client> {
        db::connect(self.url, database, &format!("server {:?}", self.name)).await
    }

    /// Create the group roles and the shared database for a placement if missing.
    pub async fn ensure_shared(&self, placement: Placement) -> Result<()> {
        let admin = self.connect(None).await?;
        self.ensure_shared_on(&admin, placement).await
    }

    /// [`Self::ensure_shared`] over an open admin connection (to the `postgres` database).
    ///
    /// One at a time per server (a session advisory lock in the admin database): creates
    /// running at once would otherwise race to create the same database (23505 on
    /// `pg_database`) or rewrite its ACL at the same moment (XX000 "tuple concurrently
    /// updated"). The lock goes with the session if the process dies.
    pub async fn ensure_shared_on(&self, admin: &Client, placement: Placement) -> Result<()> {
        if placement == Placement::Database {
            return Ok(());
        }
        admin
            .batch_execute(&format!("SELECT pg_advisory_lock({SHARED_SETUP_LOCK})"))
            .await
            .map_err(|e| Error::db("waiting for another command setting up the server's shared databases", e))?;
        let done = self.ensure_shared_locked(admin, placement).await;
        let unlocked = admin.batch_execute(&format!("SELECT pg_advisory_unlock({SHARED_SETUP_LOCK})")).await;
        done?;
        unlocked.map_err(|e| Error::db("releasing the shared-setup lock", e))
    }

    async fn ensure_shared_locked(&self, admin: &Client, placement: Placement) -> Result<()> {
        match placement {
            Placement::Pooled => {
                ensure_group(admin, POOL_RW_GROUP).await?;
                ensure_group(admin, POOL_RO_GROUP).await?;
                ensure_database(admin, POOL_DB, &[POOL_RW_GROUP, POOL_RO_GROUP]).await?;
                let pool = self.connect(Some(POOL_DB)).await?;
                ensure_database_base(&pool).await?;
                ensure_app_schema(&pool, APP_SCHEMA, &[POOL_RW_GROUP, POOL_RO_GROUP]).await
            }
            Placement::Schema => {
                ensure_group(admin, BRIDGE_GROUP).await?;
                ensure_database(admin, BRIDGE_DB, &[BRIDGE_GROUP]).await?;
                let bridge = self.connect(Some(BRIDGE_DB)).await?;
                ensure_database_base(&bridge).await
            }
            Placement::Database => Ok(()),
        }
    }

    /// Create (or re-password) the tenant's two login roles (DESIGN I1).
    pub async fn ensure_roles(&self, key: &TenantKey, master: &MasterKey) -> Result<()> {
        let admin = self.connect(None).await?;
        self.ensure_roles_on(&admin, key, master).await
    }

    /// [`Self::ensure_roles`] over an open admin connection.
    pub async fn ensure_roles_on(&self, admin: &Client, key: &TenantKey, master: &MasterKey) -> Result<()> {
        for role in [key.rw_role(), key.ro_role()] {
            let verifier = scram_verifier(&master.role_password(&role));
            let attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT";
            let exists = role_exists(admin, &role).await?;
            let verb = if exists { "ALTER" } else { "CREATE" };
            let sql = format!("{verb} ROLE {} {attrs} PASSWORD {}", ident(&role), literal(&verifier));
            admin.batch_execute(&sql).await.map_err(|e| Error::db(format!("creating role {role}"), e))?;
        }
        Ok(())
    }

    /// Create the tenant's container (schema or database) and connect its roles to it.
    pub async fn ensure_container(&self, placement: Placement, key: &TenantKey) -> Result<()> {
        let admin = self.connect(None).await?;
        self.ensure_container_on(&admin, placement, key).await
    }

    /// [`Self::ensure_container`] over an open admin connection.
    pub async fn ensure_container_on(&self, admin: &Client, placement: Placement, key: &TenantKey) -> Result<()> {
        let (rw, ro) = (key.rw_role(), key.ro_role());
        let loc = location(placement, key);
        match placement {
            Placement::Pooled => {
                let sql = format!("GRANT {} TO {}; GRANT {} TO {};", POOL_RW_GROUP, ident(&rw), POOL_RO_GROUP, ident(&ro));
                admin.batch_execute(&sql).await.map_err(|e| Error::db("granting pool membership", e))?;
            }
            Placement::Schema => {
                let sql = format!("GRANT {BRIDGE_GROUP} TO {}, {};", ident(&rw), ident(&ro));
                admin.batch_execute(&sql).await.map_err(|e| Error::db("granting bridge access", e))?;
                let bridge = self.connect(Some(BRIDGE_DB)).await?;
                ensure_app_schema(&bridge, &loc.schema, &[&rw, &ro]).await?;
            }
            Placement::Database => {
                ensure_database(admin, &loc.database, &[&rw, &ro]).await?;
                let tdb = self.connect(Some(&loc.database)).await?;
                ensure_database_base(&tdb).await?;
                ensure_app_schema(&tdb, APP_SCHEMA, &[&rw, &ro]).await?;
            }
        }
        set_search_path(admin, key, &loc).await
    }

    /// Allow or refuse logins by the tenant's roles. Refusing also ends their sessions,
    /// so a suspension holds in the database, whichever gateway a client came through.
    pub async fn set_login(&self, key: &TenantKey, login: bool) -> Result<()> {
        let admin = self.connect(None).await?;
        let attr = if login { "LOGIN" } else { "NOLOGIN" };
        for role in [key.rw_role(), key.ro_role()] {
            if role_exists(&admin, &role).await? {
                admin
                    .batch_execute(&format!("ALTER ROLE {} {attr}", ident(&role)))
                    .await
                    .map_err(|e| Error::db(format!("setting {attr} on {role}"), e))?;
            }
        }
        if !login {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)",
                    &[&vec![key.rw_role(), key.ro_role()]],
                )
                .await
                .map_err(|e| Error::db("ending the tenant's sessions", e))?;
        }
        Ok(())
    }

    /// Create the target of a move: the shared database (pooled, schema) or the tenant's own
    /// database, and, except for pooled, the schema its tables are replicated into, named
    /// `staging` (the source's schema name: logical replication matches tables by qualified
    /// name; the schema is renamed at the flip). The tenant gets **no access** here: the
    /// target is opened by [`Self::set_access`] at the flip, so until then nothing but the
    /// subscription can write to it. Idempotent.
    pub async fn prepare_move_target(&self, placement: Placement, key: &TenantKey, staging: &str) -> Result<()> {
        let admin = self.connect(None).await?;
        self.ensure_shared_on(&admin, placement).await?;
        let (rw, ro) = (key.rw_role(), key.ro_role());
        let loc = location(placement, key);
        match placement {
            Placement::Pooled => {}
            Placement::Schema => {
                // CONNECT to tg_bridge comes with the rest of the access, at the flip.
                let bridge = self.connect(Some(BRIDGE_DB)).await?;
                ensure_app_schema(&bridge, staging, &[]).await?;
            }
            Placement::Database => {
                ensure_database(&admin, &loc.database, &[]).await?;
                let tdb = self.connect(Some(&loc.database)).await?;
                ensure_database_base(&tdb).await?;
                ensure_app_schema(&tdb, staging, &[&rw, &ro]).await?;
            }
        }
        set_search_path(&admin, key, &loc).await
    }

    /// Open or close the tenant's access to its tables in one location, leaving every other
    /// location on the server alone (a same-server move has the same roles on both sides):
    /// - pooled: membership in the pool's group roles (CONNECT to `tg_pool` and DML come
    ///   only through them);
    /// - schema: CONNECT to `tg_bridge` (its group) and USAGE on its schema there;
    /// - database: CONNECT on its database and USAGE on its `app` schema.
    ///
    /// Closing also ends the roles' sessions in that database and waits (up to 10 s) until
    /// they are gone, so once it returns no transaction of the tenant can still commit there.
    /// This is the write fence of a move. Idempotent.
    pub async fn set_access(&self, placement: Placement, key: &TenantKey, open: bool) -> Result<()> {
        let admin = self.connect(None).await?;
        let (rw, ro) = (ident(&key.rw_role()), ident(&key.ro_role()));
        let loc = location(placement, key);
        let (verb, dir) = if open { ("GRANT", "TO") } else { ("REVOKE", "FROM") };
        let what = if open { "opening" } else { "fencing" };
        // The login-level grant: without it the roles cannot connect to the location.
        let login = match placement {
            Placement::Pooled => format!("{verb} {POOL_RW_GROUP} {dir} {rw}; {verb} {POOL_RO_GROUP} {dir} {ro};"),
            Placement::Schema => format!("{verb} {BRIDGE_GROUP} {dir} {rw}, {ro};"),
            Placement::Database => format!("{verb} CONNECT ON DATABASE {} {dir} {rw}, {ro};", ident(&loc.database)),
        };
        // The object-level grant: without it a session that is already in cannot reach the
        // tables (pooled: the group membership above is both).
        let objects = || async {
            let (db, schema) = match placement {
                Placement::Pooled => return Ok(()),
                _ => (loc.database.as_str(), loc.schema.as_str()),
            };
            let c = self.connect(Some(db)).await?;
            let sql = format!("{verb} USAGE ON SCHEMA {} {dir} {rw}, {ro};", ident(schema));
            c.batch_execute(&sql).await.map_err(|e| Error::db(format!("{what} the tenant schema"), e))
        };
        if open {
            objects().await?;
            return admin.batch_execute(&login).await.map_err(|e| Error::db(format!("{what} the {placement} placement"), e));
        }
        // Closing: the revoke and the first round of terminations commit together, so a
        // statement in flight either ran before the fence (and is replicated) or is ended
        // with 57P01; none fails half-way on a privilege error. Later rounds end sessions
        // that logged in before the revoke became visible.
        let sql = format!(
            "BEGIN; {login} SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename IN ({r1}, {r2}) AND datname = {d}; COMMIT;",
            r1 = literal(&key.rw_role()),
            r2 = literal(&key.ro_role()),
            d = literal(&loc.database)
        );
        if let Err(e) = admin.batch_execute(&sql).await {
            let _ = admin.batch_execute("ROLLBACK").await;
            return Err(Error::db(format!("{what} the {placement} placement"), e));
        }
        // Then the objects: a session that logged in just before the revoke (and was not
        // yet listed to be ended) can no longer write. The rounds below end it; once none is
        // left, no transaction of the tenant can commit here any more.
        objects().await?;
        let roles = vec![key.rw_role(), key.ro_role()];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: i64 = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ANY($1) AND datname = $2",
                    &[&roles, &loc.database],
                )
                .await
                .map_err(|e| Error::db("ending the tenant's sessions", e))?
                .get(0);
            if left == 0 {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Migration(format!(
                    "{left} session(s) of the tenant in database {} did not end within 10 s of pg_terminate_backend; \
                     find them in pg_stat_activity, then run the command again",
                    loc.database
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Remove the tenant's container (schema or database) and applied-migration records, but
    /// not its roles: for the source of a move that stays on the same server. Pooled rows
    /// are not touched here. Idempotent.
    pub async fn drop_container(&self, placement: Placement, key: &TenantKey, schema: &str) -> Result<()> {
        let admin = self.connect(None).await?;
        let loc = location(placement, key);
        match placement {
            Placement::Pooled => Ok(()),
            Placement::Schema => {
                if !database_exists(&admin, BRIDGE_DB).await? {
                    return Ok(());
                }
                let bridge = self.connect(Some(BRIDGE_DB)).await?;
                let sql = format!(
                    "DROP SCHEMA IF EXISTS {s} CASCADE; \
                     DELETE FROM tenantgate_admin.applied_migrations WHERE schema_name = {l};",
                    s = ident(schema),
                    l = literal(schema)
                );
                bridge.batch_execute(&sql).await.map_err(|e| Error::db("dropping the tenant schema", e))
            }
            Placement::Database => {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&loc.database));
                admin.batch_execute(&sql).await.map_err(|e| Error::db("dropping the tenant database", e))
            }
        }
    }

    /// Drop the tenant's roles on this server (after its data left the server).
    pub async fn drop_tenant_roles(&self, key: &TenantKey) -> Result<()> {
        let admin = self.connect(None).await?;
        self.drop_roles(&admin, key).await
    }

    /// Revoke the tenant's CONNECT to `tg_bridge` (a schema tenant that left this server's bridge).
    pub async fn leave_bridge(&self, key: &TenantKey) -> Result<()> {
        let admin = self.connect(None).await?;
        let sql = format!("REVOKE {BRIDGE_GROUP} FROM {}, {};", ident(&key.rw_role()), ident(&key.ro_role()));
        admin.batch_execute(&sql).await.map_err(|e| Error::db("revoking bridge access", e))
    }

    /// Remove the tenant's container, applied-migration records and roles. Idempotent;
    /// used both to roll back a failed creation and to erase. Pooled rows are not
    /// touched here (see `erase`).
    pub async fn drop_tenant(&self, placement: Placement, key: &TenantKey) -> Result<()> {
        let admin = self.connect(None).await?;
        let loc = location(placement, key);
        match placement {
            Placement::Pooled => {}
            Placement::Schema => {
                if database_exists(&admin, BRIDGE_DB).await? {
                    let bridge = self.connect(Some(BRIDGE_DB)).await?;
                    let sql = format!(
                        "DROP SCHEMA IF EXISTS {s} CASCADE; \
                         DELETE FROM tenantgate_admin.applied_migrations WHERE schema_name = {l};",
                        s = ident(&loc.schema),
                        l = literal(&loc.schema)
                    );
                    bridge.batch_execute(&sql).await.map_err(|e| Error::db("dropping the tenant schema", e))?;
                }
            }
            Placement::Database => {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&loc.database));
                admin.batch_execute(&sql).await.map_err(|e| Error::db("dropping the tenant database", e))?;
            }
        }
        self.drop_roles(&admin, key).await
    }

    async fn drop_roles(&self, admin: &Client, key: &TenantKey) -> Result<()> {
        let roles = [key.rw_role(), key.ro_role()];
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)", &[&roles.to_vec()])
            .await
            .map_err(|e| Error::db("ending the tenant's sessions", e))?;
        for role in &roles {
            if !role_exists(admin, role).await? {
                continue;
            }
            // Privileges granted in shared databases would block DROP ROLE; DROP OWNED
            // revokes them (tenant roles own nothing, by I1).
            for dbname in [POOL_DB, BRIDGE_DB] {
                if database_exists(admin, dbname).await? {
                    let c = self.connect(Some(dbname)).await?;
                    c.batch_execute(&format!("DROP OWNED BY {}", ident(role)))
                        .await
                        .map_err(|e| Error::db(format!("revoking privileges of {role}"), e))?;
                }
            }
            admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(role)))
                .await
                .map_err(|e| Error::db(format!("dropping role {role}"), e))?;
        }
        Ok(())
    }
}

/// The tenant roles' search_path in the location's database: its tables' schema.
async fn set_search_path(admin: &Client, key: &TenantKey, loc: &Location) -> Result<()> {
    let sql = format!(
        "ALTER ROLE {rw} IN DATABASE {db} SET search_path = {s}; ALTER ROLE {ro} IN DATABASE {db} SET search_path = {s};",
        rw = ident(&key.rw_role()),
        ro = ident(&key.ro_role()),
        db = ident(&loc.database),
        s = ident(&loc.schema)
    );
    admin.batch_execute(&sql).await.map_err(|e| Error::db("setting the tenant's search_path", e))
}

/// Enable and force RLS with the tenant policy on every table of `schema`, and grant
/// DML (read-write) and SELECT (read-only). Refuses a table that breaks the table
/// contract, so a bad migration rolls back instead of leaving an unprotected table.
/// Runs inside the caller's transaction.
///
/// Tables are found through `pg_depend`'s index (every relation depends on its schema), so
/// the lookup costs the same with 10,000 tenant schemas in `tg_bridge` as with ten; a scan
/// of `pg_class` by namespace has no index and grows with every schema.
pub async fn secure_schema(client: &impl tokio_postgres::GenericClient, schema: &str, rw: &str, ro: &str) -> Result<()> {
    let rows = client
        .query(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, \
                    EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = $2), \
                    a.atttypid = 'text'::regtype AND a.attcollation = 'pg_catalog.\"C\"'::regcollation AND a.attnotnull \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relkind IN ('r','p') \
               AND c.oid IN (SELECT d.objid FROM pg_depend d \
                             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_namespace'::regclass \
                               AND d.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = $1)) \
             ORDER BY c.relname",
            &[&schema, &POLICY_NAME],
        )
        .await
        .map_err(|e| Error::db("listing tables to secure", e))?;
    let mut sql = String::new();
    for r in &rows {
        let table: String = r.get(0);
        let shape_ok: Option<bool> = r.get(4);
        if shape_ok != Some(true) {
            return Err(Error::Migration(format!(
                "table {table:?} has no `tenant_id text COLLATE \"C\" NOT NULL` column (DESIGN I3); \
                 the migration was rolled back on this target. Fix the migration (`tenantgate migrate --check` shows how)"
            )));
        }
        let t = format!("{}.{}", ident(schema), ident(&table));
        if !r.get::<_, bool>(1) {
            sql.push_str(&format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;"));
        }
        if !r.get::<_, bool>(2) {
            sql.push_str(&format!("ALTER TABLE {t} FORCE ROW LEVEL SECURITY;"));
        }
        if !r.get::<_, bool>(3) {
            sql.push_str(&format!(
                "CREATE POLICY {POLICY_NAME} ON {t} USING ({POLICY_EXPR}) WITH CHECK ({POLICY_EXPR});"
            ));
        }
        sql.push_str(&format!(
            "REVOKE ALL ON {t} FROM PUBLIC; GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {rw}; GRANT SELECT ON {t} TO {ro};",
            rw = ident(rw),
            ro = ident(ro)
        ));
    }
    sql.push_str(&format!(
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {rw};",
        s = ident(schema),
        rw = ident(rw)
    ));
    client.batch_execute(&sql).await.map_err(|e| Error::db(format!("securing tables in schema {schema}"), e))
}

async fn role_exists(c: &Client, role: &str) -> Result<bool> {
    c.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&role])
        .await
        .map(|r| r.get(0))
        .map_err(|e| Error::db("looking up a role", e))
}

pub async fn database_exists(c: &Client, name: &str) -> Result<bool> {
    c.query_one("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", &[&name])
        .await
        .map(|r| r.get(0))
        .map_err(|e| Error::db("looking up a database", e))
}

async fn ensure_group(c: &Client, role: &str) -> Result<()> {
    if role_exists(c, role).await? {
        return Ok(());
    }
    let sql = format!("CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS", ident(role));
    match c.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("42710") => Ok(()),
        Err(e) => Err(Error::db(format!("creating group role {role}"), e)),
    }
}

/// Create a database that only `connectors` may connect to.
async fn ensure_database(c: &Client, name: &str, connectors: &[&str]) -> Result<()> {
    if !database_exists(c, name).await? {
        match c.batch_execute(&format!("CREATE DATABASE {}", ident(name))).await {
            Ok(()) => {}
            Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("42P04") => {}
            Err(e) => return Err(Error::db(format!("creating database {name}"), e)),
        }
    }
    let who = connectors.iter().map(|r| ident(r)).collect::<Vec<_>>().join(", ");
    let mut sql = format!("REVOKE ALL ON DATABASE {d} FROM PUBLIC;", d = ident(name));
    if !connectors.is_empty() {
        sql.push_str(&format!(" GRANT CONNECT ON DATABASE {} TO {who};", ident(name)));
    }
    c.batch_execute(&sql).await.map_err(|e| Error::db(format!("restricting CONNECT on {name}"), e))
}

/// The per-database base: `tenantgate.current_tenant()`, the admin-only
/// `tenantgate_admin` schema, no PUBLIC access to schema `public`, and the tenant-scoped
/// catalog (schema `tg_catalog`, which the gate maps catalog reads onto).
async fn ensure_database_base(c: &Client) -> Result<()> {
    let done: bool = c
        .query_one("SELECT to_regclass('tenantgate_admin.applied_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| Error::db("inspecting the database", e))?
        .get(0);
    if !done {
        ensure_tenantgate_schema(c).await?;
    }
    ensure_scoped_catalog(c).await.map(|_| ())
}

/// Installs or upgrades the tenant-scoped catalog in every tenant-facing database the
/// catalog knows (each server's pool and bridge database, each database tenant's own): `init`
/// runs it, so a deployment that predates the scoped catalog, or holds an older version of
/// it, is brought up to date before strict-mode gateways map catalog reads onto it. Returns
/// how many databases were checked and how many were (re)installed.
pub async fn ensure_scoped_catalogs(catalog: &crate::catalog::Catalog) -> Result<(usize, usize)> {
    let servers: std::collections::HashMap<String, String> =
        catalog.servers().await?.into_iter().map(|s| (s.name, s.url)).collect();
    let mut databases: Vec<(String, String)> =
        catalog.targets().await?.into_iter().map(|t| (t.server, t.database)).collect();
    databases.sort();
    databases.dedup();
    let mut changed = 0;
    for (server, database) in &databases {
        let url = servers.get(server).ok_or_else(|| Error::UnknownServer(server.clone()))?;
        let c = ServerAdmin { name: server, url }.connect(Some(database)).await?;
        if ensure_scoped_catalog(&c).await? {
            changed += 1;
        }
    }
    Ok((databases.len(), changed))
}

/// Installs schema `tg_catalog` (see `tg_gate::scoped`), or reinstalls it when its comment
/// names another version of the script or another PostgreSQL major version (its views copy
/// the catalogs' columns). One transaction, serialized across installers by an advisory lock.
async fn ensure_scoped_catalog(c: &Client) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT (SELECT pg_catalog.obj_description(n.oid, 'pg_namespace') FROM pg_catalog.pg_namespace n \
                     WHERE n.nspname = 'tg_catalog'), \
                    pg_catalog.current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await
        .map_err(|e| Error::db("inspecting the scoped catalog", e))?;
    let (installed, major): (Option<String>, i32) = (row.get(0), row.get(1));
    let want = format!("tenantgate scoped catalog v{} for PostgreSQL {major}", tg_gate::scoped::VERSION);
    if installed.as_deref() == Some(want.as_str()) {
        return Ok(false);
    }
    let sql = format!(
        "BEGIN; SELECT pg_advisory_xact_lock(7453012); DROP SCHEMA IF EXISTS tg_catalog CASCADE;\n{}\nCOMMENT ON SCHEMA tg_catalog IS {}; COMMIT;",
        tg_gate::scoped::INSTALL_SQL,
        literal(&want)
    );
    if let Err(e) = c.batch_execute(&sql).await {
        let _ = c.batch_execute("ROLLBACK").await;
        return Err(Error::db("installing the tenant-scoped catalog (schema tg_catalog)", e));
    }
    Ok(true)
}

async fn ensure_tenantgate_schema(c: &Client) -> Result<()> {
    let sql = r#"
BEGIN;
SELECT pg_advisory_xact_lock(7453011);
REVOKE ALL ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS tenantgate;
REVOKE ALL ON SCHEMA tenantgate FROM PUBLIC;
GRANT USAGE ON SCHEMA tenantgate TO PUBLIC;
CREATE OR REPLACE FUNCTION tenantgate.current_tenant() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT left(session_user::text, 13) $$;
COMMENT ON FUNCTION tenantgate.current_tenant() IS 'The tenant key of this session: its login role, without the _ro suffix.';
CREATE SCHEMA IF NOT EXISTS tenantgate_admin;
REVOKE ALL ON SCHEMA tenantgate_admin FROM PUBLIC;
CREATE TABLE IF NOT EXISTS tenantgate_admin.applied_migrations (
    schema_name text NOT NULL,
    version     integer NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, version)
);
COMMIT;
"#;
    if let Err(e) = c.batch_execute(sql).await {
        let _ = c.batch_execute("ROLLBACK").await;
        return Err(Error::db("setting up the tenantgate schema", e));
    }
    Ok(())
}

/// A schema for app tables, owned by the admin, usable by `users` only.
async fn ensure_app_schema(c: &Client, schema: &str, users: &[&str]) -> Result<()> {
    let who = users.iter().map(|r| ident(r)).collect::<Vec<_>>().join(", ");
    let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {s}; REVOKE ALL ON SCHEMA {s} FROM PUBLIC;", s = ident(schema));
    if !users.is_empty() {
        sql.push_str(&format!(" GRANT USAGE ON SCHEMA {} TO {who};", ident(schema)));
    }
    match c.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        // A concurrent CREATE SCHEMA IF NOT EXISTS can still collide; the second try sees it.
        Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("23505") => {
            c.batch_execute(&sql).await.map_err(|e| Error::db(format!("creating schema {schema}"), e))
        }
        Err(e) => Err(Error::db(format!("creating schema {schema}"), e)),
    }
}
