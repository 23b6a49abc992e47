//! Point-in-time restore of one tenant (DESIGN §6): `tenant restore SLUG --at T
//! [--as NEW_SLUG | --replace]`.
//!
//! 1. Checks that need no server work: the tenant, T inside its life and the server's
//!    recovery window (`backup::info`), no move of the tenant since T, the target slug.
//! 2. One committed transaction with no data change (`txid_current()`, so the recovery
//!    finds a commit after T even on an idle server) and `pgbackrest check` on the live
//!    server: a WAL switch, archived, so every commit up to now is in the repository. The
//!    live server is otherwise never touched.
//! 3. The server's backup recovered to T into a scratch cluster (`scratch::Scratch`).
//! 4. The tenant's rows read there by the export (`export::stream_from`: `WHERE tenant_id
//!    = key` in every placement, one snapshot, as admin of the scratch cluster) and
//!    streamed, with no file, into the import (`import::import`): a clone as NEW_SLUG, or
//!    the tenant itself with `--replace` (suspended, its rows replaced in one verified
//!    transaction, its status restored).
//! 5. The scratch cluster stopped and removed — also when anything above failed.
//!
//! So a failure leaves no scratch cluster running and nothing half-imported: the import's
//! own state machine rolls a new tenant back, or leaves a replaced tenant's rows as they
//! were (I9); an import interrupted by a crash is resumed by the same command.

use std::time::Instant;

use serde::Serialize;

use super::export::{self, Progress, Reporter};
use super::import::{self, ImportRequest, Imported};
use super::scratch::Scratch;
use crate::backup::{self, Backups};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{validate_slug, TenantStatus};
use crate::placement::{self, ServerAdmin};

/// What `tenant restore` was asked for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub slug: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Restore into a new tenant (a clone of SLUG as it was at T).
    pub as_slug: Option<String>,
    /// Replace SLUG's rows with those it had at T.
    pub replace: bool,
}

/// The outcome of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub slug: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub server: String,
    pub stanza: String,
    /// The backup it was recovered from (the newest that ended before T).
    pub backup: String,
    pub recoverable_from: chrono::DateTime<chrono::Utc>,
    /// Milliseconds: WAL check, recovery into the scratch cluster, export + import, removal.
    pub check_ms: u64,
    pub recover_ms: u64,
    pub import_ms: u64,
    pub cleanup_ms: u64,
    pub elapsed_ms: u64,
    pub imported: Imported,
}

/// Parse `--at`: RFC 3339 (`2026-12-06T10:15:00Z`), or `YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]`
/// as PostgreSQL prints a timestamptz (UTC when no zone is given).
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let t = s.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&chrono::Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(d) = chrono::DateTime::parse_from_str(t, f) {
            return Ok(d.with_timezone(&chrono::Utc));
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc());
        }
    }
    Err(Error::InvalidInput {
        what: "--at",
        value: s.into(),
        reason: "give a time such as 2026-12-06T10:15:00Z or '2026-12-06 10:15:00.123+00' (UTC when no zone is given)".into(),
    })
}

/// `tenant restore`: see the module doc.
pub async fn restore(cfg: &Config, catalog: &mut Catalog, req: &RestoreRequest, report: Reporter<'_>) -> Result<Restored> {
    let started = Instant::now();
    let tenant = catalog.tenant(&req.slug).await?;
    let target_slug = match (&req.as_slug, req.replace) {
        (Some(_), true) => {
            return Err(Error::InvalidInput {
                what: "--as with --replace",
                value: req.slug.clone(),
                reason: "choose one: --as NEW_SLUG restores into a new tenant, --replace restores the tenant in place".into(),
            })
        }
        (None, false) => {
            return Err(Error::WrongStatus {
                slug: req.slug.clone(),
                status: tenant.status.to_string(),
                hint: "it exists: add --replace to restore its rows in place (it is suspended meanwhile), \
                       or --as NEW_SLUG to restore them into a new tenant. Nothing was restored"
                    .into(),
            })
        }
        (Some(new), false) => {
            validate_slug(new)?;
            if new == &req.slug {
                return Err(Error::InvalidInput { what: "--as", value: new.clone(), reason: "a restore as a new tenant needs a new slug; use --replace to restore in place".into() });
            }
            // A half-made restore of the same NEW_SLUG (provisioning) is resumed by the import.
            if catalog.tenant(new).await.is_ok_and(|t| t.status != TenantStatus::Provisioning) {
                return Err(Error::DuplicateTenant(new.clone()));
            }
            new.clone()
        }
        (None, true) => {
            if !matches!(tenant.status, TenantStatus::Active | TenantStatus::Suspended) && catalog.open_op(&tenant.key).await?.is_none() {
                return Err(Error::WrongStatus {
                    slug: req.slug.clone(),
                    status: tenant.status.to_string(),
                    hint: "only an active or suspended tenant can be restored in place. Nothing was restored".into(),
                });
            }
            req.slug.clone()
        }
    };
    let now = chrono::Utc::now();
    if req.at > now {
        return Err(Error::InvalidInput {
            what: "--at",
            value: req.at.to_rfc3339(),
            reason: format!(
                "it is in the future (now is {}); the latest time that can be restored is now. Nothing was restored",
                now.to_rfc3339()
            ),
        });
    }
    if req.at < tenant.created_at {
        return Err(Error::InvalidInput {
            what: "--at",
            value: req.at.to_rfc3339(),
            reason: format!("tenant {} was created at {}; it had no data before. Nothing was restored", req.slug, tenant.created_at.to_rfc3339()),
        });
    }
    if let Some(m) = catalog.ops_for(&tenant.key).await?.into_iter().find(|o| o.kind == "move" && o.state == "done" && o.updated_at > req.at) {
        return Err(Error::InvalidInput {
            what: "--at",
            value: req.at.to_rfc3339(),
            reason: format!(
                "tenant {} moved (operation {}, finished {}) after that time, so its data then is in another server's or placement's backups; \
                 restoring across a move is not supported: choose a time after the move",
                req.slug,
                m.id,
                m.updated_at.to_rfc3339()
            ),
        });
    }
    if let Some(op) = catalog.open_op(&tenant.key).await? {
        if op.kind != "import" {
            return Err(Error::WrongStatus {
                slug: req.slug.clone(),
                status: format!("{} (an unfinished {} at step {})", tenant.status, op.kind, op.step),
                hint: format!("finish or undo it first (`tenantgate tenant show {}` says how). Nothing was restored", req.slug),
            });
        }
    }

    let b = Backups::from_config(cfg)?;
    let bs = b.server(&tenant.server)?.clone();
    let server = catalog.server(&tenant.server).await?;
    b.write_config(&catalog.servers().await?.into_iter().map(|s| (s.name, s.url)).collect::<Vec<_>>())?;
    let info = backup::info(&b, &bs).await?;
    let Some(base) = info.backups.iter().filter(|x| x.stopped_at <= req.at).max_by_key(|x| x.stopped_at).cloned() else {
        return Err(Error::Backup(match info.recoverable_from {
            Some(from) => format!(
                "{} is before the recovery window of server {} (its oldest backup ended {}); nothing was restored. \
                 `tenantgate backup status` shows the window",
                req.at.to_rfc3339(),
                server.name,
                from.to_rfc3339()
            ),
            None => format!(
                "server {} has no pgBackRest backup yet; take one with `tenantgate backup run --server {0}` \
                 (a restore needs a backup that ended before the time asked for). Nothing was restored",
                server.name
            ),
        }));
    };

    let t0 = Instant::now();
    // Recovery stops at the first commit after T; an idle server may have none yet, so one
    // is made (an xid assigned and committed: no data changes), then the WAL is archived.
    let live = ServerAdmin { name: &server.name, url: &server.url }.connect(None).await?;
    live.batch_execute("SELECT txid_current()").await.map_err(|e| Error::db("marking the end of the time to restore on the live server", e))?;
    drop(live);
    backup::check(&b, &bs, &server.url)
        .await
        .map_err(|e| Error::Backup(format!("the WAL of server {} up to now could not be archived, so {} may not be recoverable: {e}", server.name, req.at.to_rfc3339())))?;
    let check_ms = t0.elapsed().as_millis() as u64;

    let t0 = Instant::now();
    let scratch = Scratch::recover(&b, &bs, &server.url, req.at, &base.label, &req.slug).await?;
    let recover_ms = t0.elapsed().as_millis() as u64;

    let t0 = Instant::now();
    let imported = extract_and_import(cfg, catalog, &tenant, &scratch, req, &target_slug, report).await;
    let import_ms = t0.elapsed().as_millis() as u64;

    let t0 = Instant::now();
    let removed = scratch.remove().await;
    let cleanup_ms = t0.elapsed().as_millis() as u64;
    let imported = imported?;
    removed?;
    catalog
        .audit(
            "tenant.restore",
            Some(&imported.plan.key),
            serde_json::json!({"source": req.slug, "at": req.at, "server": server.name, "backup": base.label,
                               "kind": imported.plan.kind, "rows": imported.rows}),
        )
        .await?;
    Ok(Restored {
        slug: target_slug,
        at: req.at,
        server: server.name.clone(),
        stanza: bs.stanza().into(),
        backup: base.label,
        recoverable_from: info.recoverable_from.unwrap_or(base.stopped_at),
        check_ms,
        recover_ms,
        import_ms,
        cleanup_ms,
        elapsed_ms: started.elapsed().as_millis() as u64,
        imported,
    })
}

/// Read the tenant's rows in the scratch cluster and stream them into the import.
async fn extract_and_import(
    cfg: &Config,
    catalog: &mut Catalog,
    tenant: &crate::catalog::Tenant,
    scratch: &Scratch,
    req: &RestoreRequest,
    target_slug: &str,
    report: Reporter<'_>,
) -> Result<Imported> {
    let loc = placement::location(tenant.placement, &tenant.key);
    let c = ServerAdmin { name: "recovered copy", url: scratch.url() }.connect(Some(&loc.database)).await.map_err(|e| {
        Error::Backup(format!(
            "tenant {}'s database {} is not in the recovered copy at {} ({e}); nothing was restored",
            tenant.slug,
            loc.database,
            req.at.to_rfc3339()
        ))
    })?;
    let ireq = ImportRequest { slug: target_slug.into(), placement: None, server: None, replace: req.replace };
    let quiet = |_: &Progress| {};
    let label = format!("restore of {} at {}", tenant.slug, req.at.to_rfc3339());
    let source = format!("the recovered copy of {}", tenant.slug);
    import::streamed(cfg, catalog, &ireq, &label, &source, report, |tx| async move { export::stream_from(&c, tenant, &tx, &quiet).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_usual_forms() {
        let want = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:15:00.123456Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_time("2026-12-06T10:15:00.123456Z").unwrap(), want);
        assert_eq!(parse_time("2026-12-06 10:15:00.123456+00").unwrap(), want);
        assert_eq!(parse_time("2026-12-06 11:15:00.123456+01:00").unwrap(), want);
        assert_eq!(parse_time("2026-12-06 10:15:00.123456").unwrap(), want);
        assert!(parse_time("yesterday").is_err());
    }
}
