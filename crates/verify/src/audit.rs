//! The deployment audit: reads each server's catalogs as the admin role and checks
//! the invariants that make isolation a property of the database (DESIGN I1–I5).
//!
//! Owns the list of configuration checks and their wording. It only reads: it never
//! fixes what it finds (the fix is in each finding's text) and never reads tenant rows.

use serde::Serialize;
use tokio_postgres::Client;

use tg_control::catalog::{Catalog, Tenant};
use tg_control::quote::ident;
use tg_control::model::Placement;
use tg_control::placement::{self, ServerAdmin, BRIDGE_GROUP, POOL_RO_GROUP, POOL_RW_GROUP, POLICY_NAME};

use crate::Result;

/// How bad a finding is: failures fail `verify`; warnings are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
}

/// One audit finding, e.g. check `audit.role-attributes` on server us-1.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub server: String,
    pub message: String,
}

/// Every check the audit runs, with a one-line description (for the report and docs).
pub const CHECKS: &[(&str, &str)] = &[
    ("audit.role-attributes", "no tenant role has SUPERUSER, BYPASSRLS, CREATEDB, CREATEROLE or REPLICATION"),
    ("audit.role-membership", "no tenant role is a member of a role that reaches other tenants, and no role is a member of a tenant role"),
    ("audit.rls-forced", "every tenant table has row-level security ENABLED and FORCED"),
    ("audit.policy-shape", "every tenant table has the session_user policy and no policy reads a custom setting"),
    ("audit.public-connect", "PUBLIC has no CONNECT on tenant databases"),
    ("audit.public-create", "PUBLIC has no CREATE on any schema of a tenant-facing database"),
    ("audit.tenant-ownership", "no object is owned by a tenant role"),
    ("audit.table-privileges", "tenant roles hold no TRUNCATE, REFERENCES or TRIGGER privilege"),
    ("audit.server-version", "the server has the fixes for known RLS CVEs"),
    ("audit.orphan-replication", "no replication slot, publication or subscription of a move outlives its move (an orphan slot holds WAL forever)"),
];

const TENANT_ROLE_RE: &str = "^t[0-9a-f]{12}(_ro)?$";

/// Audit every server in the catalog.
pub async fn run(catalog: &Catalog) -> Result<Vec<Finding>> {
    let tenants = catalog.tenants().await?;
    let live_moves: Vec<String> = catalog
        .running_ops("move")
        .await?
        .into_iter()
        .map(|op| tg_control::mobility::replication::name(op.id))
        .collect();
    let mut out = Vec::new();
    for server in catalog.servers().await? {
        let admin = ServerAdmin { name: &server.name, url: &server.url };
        let c = admin.connect(None).await?;
        let mut f = Audit { server: server.name.clone(), out: &mut out };
        f.version(&c).await?;
        f.roles(&c).await?;
        for (kind, name, db) in tg_control::mobility::moves::leftovers_on(&server).await? {
            if !live_moves.contains(&name) {
                f.fail(
                    "audit.orphan-replication",
                    format!(
                        "{kind} {name} (database {db}) belongs to no unfinished move; a slot left behind holds WAL on this server forever. \
                         Remove it (`SELECT pg_drop_replication_slot('{name}')`, `DROP PUBLICATION {name}`, or for a subscription \
                         `ALTER SUBSCRIPTION {name} DISABLE; ALTER SUBSCRIPTION {name} SET (slot_name = NONE); DROP SUBSCRIPTION {name}`)"
                    ),
                );
            }
        }
        let mine: Vec<&Tenant> = tenants.iter().filter(|t| t.server == server.name).collect();
        let mut databases: Vec<String> = Vec::new();
        for t in &mine {
            let loc = placement::location(t.placement, &t.key);
            if !databases.contains(&loc.database) && placement::database_exists(&c, &loc.database).await? {
                databases.push(loc.database.clone());
            }
        }
        databases.sort();
        f.public_connect(&c, &mine).await?;
        for db in &databases {
            let dc = admin.connect(Some(db)).await?;
            f.database(&dc, db, &mine).await?;
        }
    }
    Ok(out)
}

struct Audit<'a> {
    server: String,
    out: &'a mut Vec<Finding>,
}

impl Audit<'_> {
    fn fail(&mut self, check: &'static str, message: String) {
        self.out.push(Finding { check, severity: Severity::Fail, server: self.server.clone(), message });
    }

    async fn version(&mut self, c: &Client) -> Result<()> {
        let v: i32 = c
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| db("reading the server version", e))?
            .get(0);
        // CVE-2024-10976 (RLS policies below subqueries) and CVE-2024-10978 (SET ROLE / SESSION
        // AUTHORIZATION reset) are fixed in 15.9, 16.5 and 17.1.
        let fixed = match v / 10000 {
            15 => v >= 150009,
            16 => v >= 160005,
            17 => v >= 170001,
            n => n > 17,
        };
        if !fixed {
            self.out.push(Finding {
                check: "audit.server-version",
                severity: Severity::Warn,
                server: self.server.clone(),
                message: format!(
                    "PostgreSQL {}.{} lacks the fixes for CVE-2024-10976 and CVE-2024-10978 (row-level security). \
                     Upgrade to the latest minor release (15.9+, 16.5+, 17.1+)",
                    v / 10000,
                    v % 100
                ),
            });
        }
        Ok(())
    }

    async fn roles(&mut self, c: &Client) -> Result<()> {
        let rows = c
            .query(
                "SELECT rolname, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication \
                 FROM pg_roles WHERE rolname ~ $1 ORDER BY 1",
                &[&TENANT_ROLE_RE],
            )
            .await
            .map_err(|e| db("listing tenant roles", e))?;
        for r in rows {
            let role: String = r.get(0);
            let attrs: Vec<&str> = [(1, "SUPERUSER"), (2, "BYPASSRLS"), (3, "CREATEDB"), (4, "CREATEROLE"), (5, "REPLICATION")]
                .into_iter()
                .filter(|(i, _)| r.get::<_, bool>(*i))
                .map(|(_, a)| a)
                .collect();
            if !attrs.is_empty() {
                self.fail(
                    "audit.role-attributes",
                    format!("tenant role {role} has {}; fix with `ALTER ROLE {} NO{}`", attrs.join(", "), ident(&role), attrs.join(" NO")),
                );
            }
        }
        // Memberships: a tenant role may belong only to the placement groups; the groups
        // belong to nothing; nobody belongs to a tenant role.
        let groups = [POOL_RW_GROUP, POOL_RO_GROUP, BRIDGE_GROUP];
        let rows = c
            .query(
                "SELECT m.rolname, r.rolname FROM pg_auth_members am \
                 JOIN pg_roles m ON m.oid = am.member JOIN pg_roles r ON r.oid = am.roleid \
                 WHERE m.rolname ~ $1 OR r.rolname ~ $1 OR m.rolname = ANY($2) ORDER BY 1, 2",
                &[&TENANT_ROLE_RE, &groups.iter().map(|g| g.to_string()).collect::<Vec<_>>()],
            )
            .await
            .map_err(|e| db("listing role memberships", e))?;
        for r in rows {
            let member: String = r.get(0);
            let role: String = r.get(1);
            let member_is_tenant = is_tenant_role(&member);
            let ok = member_is_tenant && groups.contains(&role.as_str()) && !is_tenant_role(&role);
            if !ok {
                self.fail(
                    "audit.role-membership",
                    format!(
                        "role {member} is a member of {role}, which {}; fix with `REVOKE {} FROM {}`",
                        if is_tenant_role(&role) { "is a tenant role: its members reach that tenant's rows" } else { "is not a tenantgate placement group" },
                        ident(&role),
                        ident(&member)
                    ),
                );
            }
        }
        Ok(())
    }

    async fn public_connect(&mut self, c: &Client, tenants: &[&Tenant]) -> Result<()> {
        let dbs: Vec<String> = tenants.iter().filter(|t| t.placement == Placement::Database).map(|t| t.key.as_str().to_string()).collect();
        let rows = c
            .query(
                "SELECT d.datname FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a \
                 WHERE d.datname = ANY($1) AND a.grantee = 0 AND a.privilege_type = 'CONNECT' ORDER BY 1",
                &[&dbs],
            )
            .await
            .map_err(|e| db("reading database privileges", e))?;
        for r in rows {
            let name: String = r.get(0);
            self.fail("audit.public-connect", format!("PUBLIC can CONNECT to tenant database {name}; fix with `REVOKE CONNECT ON DATABASE {} FROM PUBLIC`", ident(&name)));
        }
        Ok(())
    }

    async fn database(&mut self, c: &Client, dbname: &str, tenants: &[&Tenant]) -> Result<()> {
        // PUBLIC CREATE on any schema.
        let rows = c
            .query(
                "SELECT n.nspname FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a \
                 WHERE a.grantee = 0 AND a.privilege_type = 'CREATE' ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| db("reading schema privileges", e))?;
        for r in rows {
            let s: String = r.get(0);
            self.fail("audit.public-create", format!("PUBLIC can CREATE in schema {s} of database {dbname}; fix with `REVOKE CREATE ON SCHEMA {} FROM PUBLIC`", ident(&s)));
        }
        // Objects owned by tenant roles.
        let rows = c
            .query(
                "SELECT kind, name, owner FROM ( \
                   SELECT 'relation' AS kind, c.oid::regclass::text AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_class c \
                   UNION ALL SELECT 'function', p.oid::regprocedure::text, pg_get_userbyid(p.proowner) FROM pg_proc p \
                   UNION ALL SELECT 'schema', n.nspname, pg_get_userbyid(n.nspowner) FROM pg_namespace n \
                   UNION ALL SELECT 'type', t.oid::regtype::text, pg_get_userbyid(t.typowner) FROM pg_type t \
                   UNION ALL SELECT 'large object', l.oid::text, pg_get_userbyid(l.lomowner) FROM pg_largeobject_metadata l \
                 ) o WHERE owner ~ $1 ORDER BY 1, 2",
                &[&TENANT_ROLE_RE],
            )
            .await
            .map_err(|e| db("reading object owners", e))?;
        for r in rows {
            let (kind, name, owner): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            self.fail("audit.tenant-ownership", format!("{kind} {name} in database {dbname} is owned by tenant role {owner}; tenant roles must own nothing (DESIGN I1). Drop it or `ALTER ... OWNER TO` the admin role"));
        }
        // Tables of tenant schemas: RLS forced, the session_user policy, no setting-reading policy.
        let schemas: Vec<String> = tenants
            .iter()
            .map(|t| placement::location(t.placement, &t.key))
            .filter(|l| l.database == dbname)
            .map(|l| l.schema)
            .collect();
        let rows = c
            .query(
                "SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity, \
                        (SELECT pg_get_expr(p.polqual, p.polrelid) FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = $2), \
                        (SELECT string_agg(p.polname, ',') FROM pg_policy p WHERE p.polrelid = c.oid AND \
                           (coalesce(pg_get_expr(p.polqual, p.polrelid), '') || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')) ~* 'current_setting|current_user|current_role') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p') ORDER BY 1, 2",
                &[&schemas, &POLICY_NAME],
            )
            .await
            .map_err(|e| db("reading table security", e))?;
        for r in rows {
            let t = format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1));
            if !r.get::<_, bool>(2) || !r.get::<_, bool>(3) {
                self.fail("audit.rls-forced", format!("table {t} in database {dbname} does not have row-level security enabled and forced; fix with `ALTER TABLE {t} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY` (`tenantgate migrate` re-secures every table)"));
            }
            let qual: Option<String> = r.get(4);
            let expected_ok = qual.as_deref().is_some_and(|q| q.contains("SESSION_USER") && q.contains("tenant_id") && !q.contains("current_setting"));
            if !expected_ok {
                self.fail("audit.policy-shape", format!("table {t} in database {dbname} lacks the `{POLICY_NAME}` policy on session_user (found: {}); re-run `tenantgate migrate` after dropping the altered policy", qual.as_deref().unwrap_or("none")));
            }
            if let Some(bad) = r.get::<_, Option<String>>(5) {
                self.fail("audit.policy-shape", format!("policy {bad} on table {t} in database {dbname} reads a custom setting or current_user, which any session can change; policies must compare tenant_id with session_user only"));
            }
        }
        // Table privileges beyond DML held by tenant roles or the placement groups.
        let rows = c
            .query(
                "SELECT table_schema || '.' || table_name, grantee, privilege_type FROM information_schema.role_table_grants \
                 WHERE (grantee ~ $1 OR grantee IN ('tg_pool_rw','tg_pool_ro')) AND privilege_type IN ('TRUNCATE','REFERENCES','TRIGGER') ORDER BY 1, 2, 3",
                &[&TENANT_ROLE_RE],
            )
            .await
            .map_err(|e| db("reading table privileges", e))?;
        for r in rows {
            let (t, g, p): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            self.fail("audit.table-privileges", format!("{g} holds {p} on {t} in database {dbname}; fix with `REVOKE {p} ON {t} FROM {}`", ident(&g)));
        }
        Ok(())
    }
}

fn is_tenant_role(r: &str) -> bool {
    let base = r.strip_suffix("_ro").unwrap_or(r);
    base.len() == 13 && base.starts_with('t') && base[1..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn db(context: &str, e: tokio_postgres::Error) -> crate::Error {
    crate::Error::Control(tg_control::Error::db(context, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_roles_are_recognised() {
        assert!(super::is_tenant_role("t0123456789ab"));
        assert!(super::is_tenant_role("t0123456789ab_ro"));
        assert!(!super::is_tenant_role("tg_pool_rw"));
        assert!(!super::is_tenant_role("t0123456789abc"));
    }
}
