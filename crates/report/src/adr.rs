//! The multi-tenancy architecture decision record, as Markdown, from [`Facts`].
//!
//! Stable by construction: the same facts give byte-identical output except the single
//! `Date:` line, because every list is sorted and nothing else reads the clock, so a
//! diff between two runs shows exactly what changed in the deployment.
//! Owns the wording of the record and the per-placement isolation model it states
//! (also used by the questionnaire). It never prints a server URL or a secret, and
//! states only what the facts support.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tg_control::model::Placement;

use crate::facts::{Facts, TenantFact, SRC_BACKUP, SRC_SERVERS, SRC_TENANTS};
use crate::requirements;
use crate::text::{self, cell};
use crate::triggers::{self, Evaluation};

/// What a placement guarantees and costs, stated once for the ADR and the questionnaire.
pub struct PlacementModel {
    pub placement: Placement,
    pub where_rows_live: &'static str,
    pub enforcement: &'static str,
    pub misrouted: &'static str,
    pub broken_policy: &'static str,
    pub backup: &'static str,
    pub residency: &'static str,
    pub cost: &'static str,
    pub rules_out: &'static [&'static str],
}

pub fn model(p: Placement) -> PlacementModel {
    match p {
        Placement::Pooled => PlacementModel {
            placement: p,
            where_rows_live: "shared tables in the server's pool database (`tg_pool`, schema `app`), rows keyed by `tenant_id`",
            enforcement: "the database first: the tenant logs in as its own roles (`<key>`, `<key>_ro`: NOSUPERUSER, NOBYPASSRLS, owning nothing), which reach the shared tables through the `tg_pool_rw`/`tg_pool_ro` groups; row-level security is ENABLED and FORCED on every table with the policy `tenant_id = left(session_user::text, 13)`, which compares the login role directly and reads no setting a session could change. Then the gateway's SQL gate (the PostgreSQL parser) refuses role switching, DDL, file access and catalog enumeration",
            misrouted: "one tenant: a connection logs in as exactly one tenant's role and sees that tenant's rows and no other's",
            broken_policy: "every pooled tenant on the same server: a dropped or wrong RLS policy on a shared table exposes that table's rows of every tenant in the pool",
            backup: "physical backups and point-in-time recovery cover the whole pool database, i.e. every pooled tenant on the server at once; one tenant is restored logically, by copying back its rows selected by `tenant_id`",
            residency: "per server: the tenant's region is its server's region, chosen at creation (`--server`, `--residency`)",
            cost: "two roles and a few catalog rows per tenant; no per-tenant database objects",
            rules_out: &[
                "restoring one tenant from a physical backup or to a point in time without restoring, then filtering, the whole pool",
                "a one-tenant blast radius for an access-policy mistake: a broken RLS policy exposes every tenant in the pool",
                "isolation from neighbours' load: tables, indexes, vacuum and connections are shared",
                "per-tenant schema versions, settings or extensions: all pooled tenants on a server share one schema",
                "keeping the pool's volume secret: `EXPLAIN` costs and row estimates on the shared tables (for instance `TABLESAMPLE BERNOULLI(100)` against `SYSTEM(100)`) reveal how many rows all tenants together hold, never whose or what; the gate does not rewrite statements to hide costs (a stated residual risk, docs/decisions.md)",
                "hiding how busy the server is: transaction ids (`txid_current_snapshot()`), the WAL position (`pg_current_wal_lsn()`) and server settings are server-wide",
            ],
        },
        Placement::Schema => PlacementModel {
            placement: p,
            where_rows_live: "the tenant's own schema (named by its opaque key) in the server's shared bridge database (`tg_bridge`)",
            enforcement: "the database first: the tenant's own roles have USAGE on the tenant's own schema only (and CONNECT on `tg_bridge` through `tg_bridge_connect`), so privileges keep it out of every other schema; row-level security is FORCED on its tables as well. Then the gateway's SQL gate",
            misrouted: "one tenant: the connection's role can use only that tenant's schema",
            broken_policy: "one tenant for a broken RLS policy, because schema privileges still separate tenants; a wrong GRANT in the bridge database could expose the other schema tenants on that server",
            backup: "`pg_dump --schema` restores one tenant independently (logical); physical backups and point-in-time recovery cover the whole bridge database, i.e. every schema tenant on the server",
            residency: "per server: the tenant's region is its server's region, chosen at creation",
            cost: "a schema and its tables per tenant; the database's catalogs and the migration fan-out grow with tenants x tables",
            rules_out: &[
                "per-tenant physical backup and point-in-time recovery",
                "isolation from neighbours' load inside the shared database (connections, WAL, vacuum, catalogs)",
                "unbounded tenant counts per database: catalog size and migration time grow with tenants x tables",
                "hiding how busy the server is: transaction ids, the WAL position and server settings are server-wide",
            ],
        },
        Placement::Database => PlacementModel {
            placement: p,
            where_rows_live: "the tenant's own database (named by its opaque key) on a named server",
            enforcement: "the database first: CONNECT is revoked from PUBLIC and granted to the tenant's own roles only, so no other tenant's role can even connect; inside, row-level security is FORCED as everywhere. Then the gateway's SQL gate",
            misrouted: "one tenant: other tenants' roles cannot connect to its database",
            broken_policy: "one tenant: a broken policy or grant inside the database reaches nothing outside it",
            backup: "`pg_dump`/`pg_restore` of its database restores it independently; point-in-time recovery is per server, so restoring one tenant to a point in time means recovering the server elsewhere and copying that database back",
            residency: "any registered server in any region, including a server registered for this tenant alone",
            cost: "a database per tenant (its own catalogs, several MB even when empty) and its own backend connections",
            rules_out: &[
                "cheap tenants: each costs a database and its own connections",
                "cross-tenant queries: reporting across tenants needs an export, not a join",
                "a dedicated server by default: databases share their server's CPU, memory and WAL unless a server is registered for the tenant",
                "hiding how busy a shared server is: transaction ids, the WAL position and server settings are server-wide, unless the tenant has a server of its own",
            ],
        },
    }
}

/// Render the ADR. `evaluation` is `triggers::evaluate(facts)`, passed in so callers
/// that also act on it evaluate once.
pub fn render(facts: &Facts, evaluation: &Evaluation) -> String {
    let mut s = String::new();
    let w = &mut s;
    let in_use = facts.placements_in_use();
    let regions = facts.regions();

    let _ = writeln!(w, "# ADR: multi-tenancy model of this tenantgate deployment\n");
    let _ = writeln!(w, "Date: {}", facts.date.format("%Y-%m-%d"));
    let _ = writeln!(
        w,
        "Status: accepted. Generated by `tenantgate adr` from the live catalog and config; regenerate it to update it. \
         Apart from the date, the same deployment always gives the same text, so a diff shows what changed.\n"
    );

    // ------------------------------------------------------------------ Context
    let _ = writeln!(w, "## Context\n");
    let _ = writeln!(
        w,
        "The deployment holds {} on {} in {}. Sources: `{SRC_TENANTS}`, `{SRC_SERVERS}`.",
        text::count(facts.tenants.len(), "tenant", "tenants"),
        text::count(facts.servers.len(), "server", "servers"),
        text::count(regions.len(), "region", "regions"),
    );
    if facts.probes_excluded > 0 {
        let _ = writeln!(w, "{} created by `tenantgate verify` are not counted.", text::count(facts.probes_excluded, "probe tenant", "probe tenants"));
    }
    let _ = writeln!(w, "\nTenants by placement:\n");
    let _ = writeln!(w, "| placement | tenants | active | suspended | other status |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|");
    for p in Placement::ALL {
        let of: Vec<&TenantFact> = facts.tenants.iter().filter(|t| t.placement == p).collect();
        let st = |x: tg_control::model::TenantStatus| of.iter().filter(|t| t.status == x).count();
        let active = st(tg_control::model::TenantStatus::Active);
        let suspended = st(tg_control::model::TenantStatus::Suspended);
        let _ = writeln!(w, "| {p} | {} | {active} | {suspended} | {} |", of.len(), of.len() - active - suspended);
    }
    let _ = writeln!(w, "\nTenants by region and server:\n");
    let _ = writeln!(w, "| region | server | pooled | schema | database | total |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|");
    for (region, servers) in &regions {
        for srv in servers {
            let on = |p: Placement| facts.tenants.iter().filter(|t| t.server == srv.name && t.placement == p).count();
            let (a, b, c) = (on(Placement::Pooled), on(Placement::Schema), on(Placement::Database));
            let _ = writeln!(w, "| {} | {} | {a} | {b} | {c} | {} |", cell(region), cell(&srv.name), a + b + c);
        }
    }
    let _ = writeln!(w, "\nLargest tenants by size (at most 5):\n");
    let mut sized: Vec<&TenantFact> = facts.tenants.iter().filter(|t| t.size.bytes.is_some()).collect();
    sized.sort_by(|a, b| b.size.bytes.cmp(&a.size.bytes).then_with(|| a.slug.cmp(&b.slug)));
    if sized.is_empty() {
        let _ = writeln!(w, "No tenant has been measured (no active or suspended tenants).");
    } else {
        let _ = writeln!(w, "| tenant | placement | server | size | bytes |");
        let _ = writeln!(w, "|---|---|---|---:|---:|");
        for t in sized.iter().take(5) {
            let b = t.size.bytes.unwrap_or(0);
            let _ = writeln!(w, "| {} | {} | {} | {} | {b} |", cell(&t.slug), t.placement, cell(&t.server), text::bytes(b));
        }
        let _ = writeln!(w, "\nHow sizes are measured: `schema` and `database` tenants: `pg_total_relation_size` (tables, TOAST and indexes) summed over the tenant's own schema; `pooled` tenants: an estimate, `sum(pg_column_size(row))` over the tenant's rows in the shared tables (row data only, without indexes or page overhead).");
    }
    let _ = writeln!(w, "\nCompliance scope configured (`{}`): {}.\n", facts.compliance.source, compliance_list(facts));

    // ------------------------------------------------------------------ Isolation model
    let _ = writeln!(w, "## Isolation model\n");
    if in_use.is_empty() {
        let _ = writeln!(w, "No placement is in use yet: the deployment has no tenants. The alternatives below describe what each placement provides.\n");
    }
    for p in &in_use {
        let m = model(*p);
        let _ = writeln!(w, "### {p} ({})\n", text::count(facts.count(*p), "tenant", "tenants"));
        let _ = writeln!(w, "- **Where rows live:** {}.", m.where_rows_live);
        let _ = writeln!(w, "- **Enforcement:** {}.", m.enforcement);
        let _ = writeln!(w, "- **Blast radius of a misrouted connection:** {}.", m.misrouted);
        let _ = writeln!(w, "- **Blast radius of a broken policy or grant:** {}.{}", m.broken_policy, shared_note(facts, *p));
        let _ = writeln!(w, "- **Backup and restore scope:** {}.", m.backup);
        let _ = writeln!(w, "- **Residency options:** {}.{}", m.residency, regions_note(facts, *p));
        let _ = writeln!(w);
    }

    // ------------------------------------------------------------------ Alternatives
    let _ = writeln!(w, "## Alternatives considered\n");
    let _ = writeln!(w, "The three placements, compared on the same points:\n");
    let _ = writeln!(w, "| | pooled | schema | database |");
    let _ = writeln!(w, "|---|---|---|---|");
    let models: Vec<PlacementModel> = Placement::ALL.into_iter().map(model).collect();
    let row = |w: &mut String, label: &str, f: &dyn Fn(&PlacementModel) -> String| {
        let cells: Vec<String> = models.iter().map(|m| cell(&f(m))).collect();
        let _ = writeln!(w, "| {label} | {} |", cells.join(" | "));
    };
    row(w, "in use", &|m| text::count(facts.count(m.placement), "tenant", "tenants"));
    row(w, "where rows live", &|m| m.where_rows_live.to_string());
    row(w, "isolation enforced by", &|m| match m.placement {
        Placement::Pooled => "own roles + forced RLS on shared tables, then the gate".into(),
        Placement::Schema => "own roles + schema privileges (+ forced RLS), then the gate".into(),
        Placement::Database => "own roles + database CONNECT privilege (+ forced RLS), then the gate".into(),
    });
    row(w, "misrouted connection exposes", &|m| m.misrouted.to_string());
    row(w, "broken policy or grant exposes", &|m| m.broken_policy.to_string());
    row(w, "backup and restore", &|m| m.backup.to_string());
    row(w, "residency", &|m| m.residency.to_string());
    row(w, "per-tenant cost", &|m| m.cost.to_string());
    let _ = writeln!(w);

    // ------------------------------------------------------------------ Decision
    let _ = writeln!(w, "## Decision\n");
    let _ = writeln!(
        w,
        "Tenant data is isolated by the database itself (each tenant's own login roles, row-level security keyed on `session_user` and forced on every table, placement privileges), with the gateway's SQL gate as a second layer. The placement is chosen per tenant and can be changed later:\n"
    );
    for p in Placement::ALL {
        let who = match p {
            Placement::Pooled => "self-serve and small tenants without declared requirements",
            Placement::Schema => "mid-market tenants, and tenants that declare `dedicated-schema`",
            Placement::Database => "enterprise tenants, and tenants that declare `dedicated-database`",
        };
        let usage = match facts.count(p) {
            0 => "offered, not in use".to_string(),
            n => format!("in use by {}", text::count(n, "tenant", "tenants")),
        };
        let _ = writeln!(w, "- `{p}` ({usage}): for {who}.");
    }
    let _ = writeln!(w, "- A `region:<r>` requirement or a residency list places the tenant on a server in that region, whatever its placement.");
    let declared: Vec<&TenantFact> = facts.tenants.iter().filter(|t| !t.requires.is_empty()).collect();
    if declared.is_empty() {
        let _ = writeln!(w, "\nNo tenant declares requirements (`{SRC_TENANTS}`.requires).\n");
    } else {
        let _ = writeln!(w, "\nDeclared requirements (`{SRC_TENANTS}`.requires):\n");
        let _ = writeln!(w, "| tenant | requires | placement | server (region) | met |");
        let _ = writeln!(w, "|---|---|---|---|---|");
        for t in declared {
            let outcomes: Vec<String> = t
                .requires
                .iter()
                .map(|r| match requirements::check(r, t.placement, &t.region) {
                    requirements::Outcome::Met => format!("{r}: met"),
                    requirements::Outcome::Unmet(_) => format!("{r}: NOT MET"),
                    requirements::Outcome::Unsupported(_) => format!("{r}: unsupported"),
                })
                .collect();
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} ({}) | {} |",
                cell(&t.slug),
                cell(&t.requires.join(", ")),
                t.placement,
                cell(&t.server),
                cell(&t.region),
                cell(&outcomes.join("; "))
            );
        }
        let _ = writeln!(w);
    }

    // ------------------------------------------------------------------ Triggers
    let _ = writeln!(w, "## Trigger conditions for re-evaluation\n");
    let _ = writeln!(w, "Re-evaluate this decision when a trigger fires. State: `ok`, `approaching` (at 80% of the threshold) or `fired` (threshold reached). `tenantgate triggers` exits {} when any has fired.\n", triggers::EXIT_FIRED);
    let _ = writeln!(w, "| trigger | threshold | current value | state | source |");
    let _ = writeln!(w, "|---|---|---|---|---|");
    for t in &evaluation.triggers {
        let _ = writeln!(
            w,
            "| {} ({}) | {} | {} | {} | {} |",
            cell(t.title),
            t.id,
            cell(&t.threshold_text),
            cell(&t.value_text),
            t.state.as_str(),
            cell(&t.sources.join("; "))
        );
    }
    let details: Vec<String> = evaluation.triggers.iter().flat_map(|t| t.detail.iter().map(move |d| format!("- {}: {d}", t.id))).collect();
    if !details.is_empty() {
        let _ = writeln!(w, "\nFindings:\n");
        for d in details {
            let _ = writeln!(w, "{d}");
        }
    }
    let _ = writeln!(w);

    // ------------------------------------------------------------------ Consequences
    let _ = writeln!(w, "## Consequences\n");
    if in_use.is_empty() {
        let _ = writeln!(w, "None yet: no placement is in use.\n");
    }
    for p in &in_use {
        let _ = writeln!(w, "Using `{p}` rules out:\n");
        for r in model(*p).rules_out {
            let _ = writeln!(w, "- {r}.");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "Backups: {}\n", backups_consequence(facts));

    // ------------------------------------------------------------------ Residency
    let _ = writeln!(w, "## Data residency\n");
    let catalog_where = match (&facts.catalog.server, &facts.catalog.region) {
        (Some(srv), Some(region)) => format!("on server {srv}, region {region}"),
        _ => "on a host that is not a registered server, so its region is not recorded".to_string(),
    };
    let _ = writeln!(
        w,
        "The catalog (slugs, keys, placement, audit trail; no tenant rows) lives {catalog_where} (`{}`).\n",
        facts.catalog.source
    );
    if regions.is_empty() {
        let _ = writeln!(w, "No servers are registered.\n");
    }
    for (region, servers) in &regions {
        let _ = writeln!(w, "### {region}\n");
        for srv in servers {
            let _ = writeln!(w, "Server {}:\n", srv.name);
            for p in Placement::ALL {
                let slugs: Vec<String> = facts.tenants.iter().filter(|t| t.server == srv.name && t.placement == p).map(|t| t.slug.clone()).collect();
                let _ = writeln!(w, "- {p}: {}", if slugs.is_empty() { "none".to_string() } else { slugs.join(", ") });
            }
            let _ = writeln!(w, "- backups: {}", server_backups_line(facts, &srv.name, region));
            let _ = writeln!(w);
        }
    }
    let with_residency: Vec<&TenantFact> = facts.tenants.iter().filter(|t| !t.residency.is_empty()).collect();
    if with_residency.is_empty() {
        let _ = writeln!(w, "No tenant declares a residency list; each tenant's data is in its server's region.\n");
    } else {
        let _ = writeln!(w, "Tenants with a declared residency (enforced when a tenant is placed; checked by the `residency-violations` trigger):\n");
        let _ = writeln!(w, "| tenant | residency | server | region | within residency |");
        let _ = writeln!(w, "|---|---|---|---|---|");
        for t in with_residency {
            let ok = if t.residency.contains(&t.region) { "yes" } else { "NO" };
            let _ = writeln!(w, "| {} | {} | {} | {} | {ok} |", cell(&t.slug), cell(&t.residency.join(", ")), cell(&t.server), cell(&t.region));
        }
        let _ = writeln!(w);
    }

    // ------------------------------------------------------------------ Compliance
    let _ = writeln!(w, "## Compliance scope\n");
    let _ = writeln!(w, "Certifications configured as in scope (`{}`): {}.", facts.compliance.source, compliance_list(facts));
    let _ = writeln!(w, "tenantgate holds no certification itself; this is the evidence the deployment can produce for them:\n");
    let _ = writeln!(w, "- {}", verify_line(facts));
    let _ = writeln!(w, "- Tenant isolation by construction: per-tenant roles, forced RLS and placement privileges, stated per placement above.");
    let _ = writeln!(w, "- Residency: every placement is checked against the tenant's residency before anything is created; see Data residency.");
    let _ = writeln!(w, "- Audit trail of operator actions: `catalog: tg.audit_events`. Erasure certificates: `catalog: tg.tombstones`.");
    if facts.compliance.value.is_empty() {
        let _ = writeln!(w, "\nNo certification is configured, so none is claimed. Set `reports.compliance` in tenantgate.toml to list the ones in scope.");
    } else {
        let _ = writeln!(w, "\nNot demonstrated by tenantgate, for any of them: controls outside the data layer (access reviews, change management, incident response, vendor management).");
    }
    s
}

/// Where backups live and what they hold, for the Consequences section. No time-dependent
/// figure (the recovery window is the questionnaire's), so the ADR stays stable.
fn backups_consequence(facts: &Facts) -> String {
    let b = &facts.backups;
    let Some(repo) = &b.repo else {
        return format!(
            "no pgBackRest backups are configured (`{}`: no [backup] in tenantgate.toml), so no physical backup or WAL archive of any server exists and no tenant can be restored to a point in time; a tenant is restored only from its own exports (`tenant export`/`tenant import`).",
            b.source
        );
    };
    let servers: Vec<String> = b.servers.iter().map(|s| format!("{} ({})", s.server, if s.region.is_empty() { "region unknown" } else { &s.region })).collect();
    let regions = b.regions();
    let mut s = format!(
        "pgBackRest backs up {} into the repository `{repo}` (`backup.repo`, relative to tenantgate.toml), a local path on the host that runs tenantgate, keeping {} full backup(s) and their WAL (`{}`). Each server's backups hold every tenant on it, in every placement, whatever the tenant's residency, so they are data of that server's region. `tenant restore SLUG --at TIME` restores one tenant from them; an erasure leaves the tenant's rows in them until the retention expires them, as its certificate states.",
        text::list(&servers),
        b.retention_full.unwrap_or(0),
        SRC_BACKUP
    );
    if regions.len() > 1 {
        s.push_str(&format!(
            " One repository holds data of {} regions ({}): the host that runs tenantgate is outside at least one of them, which residency must allow; use one deployment (and repository) per region where it does not.",
            regions.len(),
            text::list(&regions)
        ));
    }
    if !b.not_backed_up.is_empty() {
        s.push_str(&format!(" Not backed up (no [[backup.servers]] entry): {}.", text::list(&b.not_backed_up)));
    }
    s
}

/// Where one server's backups live, for the Data residency section.
fn server_backups_line(facts: &Facts, server: &str, region: &str) -> String {
    let b = &facts.backups;
    match (&b.repo, b.server(server)) {
        (None, _) => "none (no [backup] in tenantgate.toml)".into(),
        (Some(_), None) => "none (no [[backup.servers]] entry for this server)".into(),
        (Some(repo), Some(s)) => format!("pgBackRest stanza {} in the repository `{repo}` on the host that runs tenantgate; the data it holds is of region {region}", s.stanza),
    }
}

fn compliance_list(facts: &Facts) -> String {
    if facts.compliance.value.is_empty() {
        "none".into()
    } else {
        facts.compliance.value.join(", ")
    }
}

/// The `tenantgate verify` evidence line, shared with the questionnaire.
pub fn verify_line(facts: &Facts) -> String {
    let v = &facts.verify;
    let fmt = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    match (&v.last, &v.last_passed) {
        (None, _) => format!("Live attack suite (`tenantgate verify`): never run (`{}` is empty), so isolation of this deployment has not been demonstrated by it.", v.source),
        (Some(last), passed) => {
            let mut line = format!(
                "Live attack suite (`tenantgate verify`): last run #{} on {}: {} ({} scenarios, {} failures; `{}`)",
                last.id,
                fmt(&last.finished_at),
                if last.passed { "passed" } else { "FAILED" },
                last.scenarios,
                last.failures,
                last.source()
            );
            match passed {
                Some(p) if p.id == last.id => line.push('.'),
                Some(p) => line.push_str(&format!("; last passed: run #{} on {} (`{}`).", p.id, fmt(&p.finished_at), p.source())),
                None => line.push_str("; it has never passed."),
            }
            line
        }
    }
}

/// Placement-specific numbers for the blast-radius line.
fn shared_note(facts: &Facts, p: Placement) -> String {
    if p == Placement::Database {
        return String::new();
    }
    let mut per_server: BTreeMap<&str, usize> = BTreeMap::new();
    for t in facts.tenants.iter().filter(|t| t.placement == p) {
        *per_server.entry(t.server.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = per_server.iter().map(|(s, n)| format!("{} on {s}", text::count(*n, "tenant", "tenants"))).collect();
    let what = if p == Placement::Pooled { "pool database" } else { "bridge database" };
    format!(" In this deployment each server's {what} is one such radius: {}.", text::list(&parts))
}

fn regions_note(facts: &Facts, p: Placement) -> String {
    let mut regions: Vec<String> = facts.tenants.iter().filter(|t| t.placement == p).map(|t| t.region.clone()).collect();
    regions.sort();
    regions.dedup();
    format!(" In use in: {}.", text::list(&regions))
}
