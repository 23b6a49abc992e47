//! Answers to the standard enterprise security questions, from live state, for the
//! whole deployment or for one tenant.
//!
//! Every answer lists the facts it rests on (catalog rows, config keys, the last
//! `verify` run, `backup status`, the move and restore benchmarks) and says `supported: false`, in words as well,
//! when live state cannot back it (verify never run, no certification configured, a
//! capability missing from this build, no measurement). It never guesses.
//! For one tenant it must never name another tenant: other tenants appear only as counts.

use std::fmt::Write as _;

use serde::Serialize;
use tg_control::model::Placement;

use crate::adr::{model, verify_line};
use crate::facts::{Facts, TenantFact, SRC_BACKUP, SRC_BACKUP_STATUS, SRC_SERVERS, SRC_TENANTS};
use crate::text;

const SRC_MODEL: &str = "model: tenantgate placement privileges and RLS (DESIGN I1-I4; stated in the ADR)";

#[derive(Debug, Clone, Serialize)]
pub struct Questionnaire {
    /// `deployment` or `tenant`.
    pub scope: &'static str,
    pub tenant: Option<String>,
    pub date: chrono::NaiveDate,
    pub answers: Vec<Answer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub id: &'static str,
    pub question: &'static str,
    pub answer: String,
    pub facts: Vec<FactRef>,
    /// False when live state cannot back the answer; the answer then says what is missing.
    pub supported: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FactRef {
    pub source: String,
    pub fact: String,
}

fn fact(source: impl Into<String>, fact: impl Into<String>) -> FactRef {
    FactRef { source: source.into(), fact: fact.into() }
}

pub const QUESTIONS: [(&str, &str); 7] = [
    ("db-isolation", "How is tenant data isolated at the database layer?"),
    ("isolation-verified", "Is tenant isolation tested against the live deployment?"),
    ("blast-radius", "What is the blast radius of an engineering error, such as a misrouted connection or a broken access policy?"),
    ("independent-restore", "Can a single tenant be restored independently?"),
    ("data-location", "Where is the data stored, and can data residency be set per tenant?"),
    ("certifications", "Which certifications apply?"),
    ("dedicated", "Is a dedicated deployment available, and what does moving to one take?"),
];

fn question(id: &str) -> &'static str {
    QUESTIONS.iter().find(|(q, _)| *q == id).map_or("", |(_, text)| text)
}

fn answer(id: &'static str, text: String, facts: Vec<FactRef>, supported: bool) -> Answer {
    Answer { id, question: question(id), answer: text, facts, supported }
}

/// Answer every question for the deployment (`tenant: None`) or for one tenant.
pub fn build(facts: &Facts, tenant: Option<&str>) -> crate::Result<Questionnaire> {
    let answers = match tenant {
        None => deployment_answers(facts),
        Some(slug) => {
            let t = facts.tenant(slug).ok_or_else(|| tg_control::Error::UnknownTenant(slug.to_string()))?;
            tenant_answers(facts, t)
        }
    };
    Ok(Questionnaire {
        scope: if tenant.is_some() { "tenant" } else { "deployment" },
        tenant: tenant.map(str::to_string),
        date: facts.date,
        answers,
    })
}

fn tenant_row(t: &TenantFact) -> FactRef {
    let residency = if t.residency.is_empty() { "any region".to_string() } else { t.residency.join(",") };
    fact(
        SRC_TENANTS,
        format!(
            "tenant {}: placement {}, server {}, region {}, residency {residency}, status {}",
            t.slug, t.placement, t.server, t.region, t.status
        ),
    )
}

fn server_row(facts: &Facts, name: &str) -> FactRef {
    let region = facts.server(name).map_or("unknown", |s| s.region.as_str());
    fact(SRC_SERVERS, format!("server {name} is in region {region}"))
}

fn verify_answer(facts: &Facts) -> Answer {
    let mut fs = Vec::new();
    if let Some(last) = &facts.verify.last {
        fs.push(fact(last.source(), format!("last run: passed={}, {} scenarios, {} failures", last.passed, last.scenarios, last.failures)));
    } else {
        fs.push(fact(facts.verify.source.clone(), "no verify run is recorded"));
    }
    if let Some(p) = &facts.verify.last_passed {
        if facts.verify.last.as_ref().map(|l| l.id) != Some(p.id) {
            fs.push(fact(p.source(), "last passing run"));
        }
    }
    let mut text = verify_line(facts);
    let supported = facts.verify.last.is_some();
    if !supported {
        text.push_str(" This cannot be answered from live state until `tenantgate verify` has run against this deployment.");
        if !facts.capabilities.verify {
            text.push_str(" `tenantgate verify` is not available in this build.");
        }
    }
    answer("isolation-verified", text, fs, supported)
}

fn certifications_answer(facts: &Facts) -> Answer {
    let c = &facts.compliance;
    let fs = vec![fact(c.source.clone(), if c.value.is_empty() { "empty".to_string() } else { c.value.join(", ") })];
    if c.value.is_empty() {
        return answer(
            "certifications",
            format!("Unsupported: no certification is configured (`{}` is empty), so none can be stated. tenantgate holds no certification itself.", c.source),
            fs,
            false,
        );
    }
    let mut fs = fs;
    if let Some(last) = &facts.verify.last {
        fs.push(fact(last.source(), format!("passed={}", last.passed)));
    }
    answer(
        "certifications",
        format!(
            "In scope, as configured by the operator: {}. tenantgate itself holds no certification; the evidence it produces for them is: {} Audit trail: `catalog: tg.audit_events`; erasure certificates: `catalog: tg.tombstones`.",
            text::list(&c.value),
            verify_line(facts)
        ),
        fs,
        true,
    )
}

fn move_part(facts: &Facts, t: &TenantFact, server: &str) -> (String, Vec<FactRef>, bool) {
    let cmd = facts.move_command(&t.slug, server);
    let caps = &facts.capabilities;
    let mut fs = vec![fact(caps.source.clone(), format!("tenant move available: {}", caps.move_placement_flag.is_some()))];
    let mut s = format!("Moving it takes one command: `{cmd}`.");
    let available = caps.move_placement_flag.is_some();
    if !available {
        s.push_str(" `tenant move` is not yet available in this build; that is the command it will be.");
    }
    let b = &facts.move_benchmark;
    let measured = match (t.size.bytes, b.missing.as_deref()) {
        (_, Some(missing)) => {
            fs.push(fact(b.source.clone(), missing.to_string()));
            s.push_str(&format!(" No measurement of a move exists: {missing}."));
            false
        }
        (None, _) => {
            fs.push(fact(t.size.source.clone(), t.size.method.clone()));
            s.push_str(&format!(" Its duration cannot be stated: the tenant's size is unknown ({}).", t.size.method));
            false
        }
        (Some(bytes), None) => {
            fs.push(fact(t.size.source.clone(), format!("tenant size {bytes} bytes ({})", t.size.method)));
            match b.covering(t.placement, Placement::Database, bytes) {
                Some(run) => {
                    let fence = run.fence_ms.map(|f| format!(", writes fenced for {f} ms")).unwrap_or_default();
                    let when = b.measured_on.as_deref().map(|d| format!(", measured {d}")).unwrap_or_default();
                    s.push_str(&format!(
                        " Measured: moving a {} tenant ({} bytes, at least this tenant's {}) from {} to database took {} ms{fence}{when}.",
                        text::bytes(run.tenant_bytes),
                        run.tenant_bytes,
                        text::bytes(bytes),
                        run.from,
                        run.duration_ms
                    ));
                    fs.push(fact(b.source.clone(), format!("{} -> database, {} bytes, {} ms", run.from, run.tenant_bytes, run.duration_ms)));
                    true
                }
                None => {
                    let largest = match b.largest(t.placement, Placement::Database) {
                        Some(r) => format!("the largest measured {} -> database move was {} ({} ms), smaller than this tenant", r.from, text::bytes(r.tenant_bytes), r.duration_ms),
                        None => format!("the benchmark has no {} -> database run", t.placement),
                    };
                    s.push_str(&format!(" No measurement covers a tenant of this size ({}): {largest}.", text::bytes(bytes)));
                    fs.push(fact(b.source.clone(), largest));
                    false
                }
            }
        }
    };
    (s, fs, available && measured)
}

/// The point-in-time part of the independent-restore answer: the command, the recovery
/// window of the tenant's server (or of every backed-up server) from `backup status`, and
/// the measured restore times from the restore benchmark. Says plainly what is missing.
fn point_in_time_part(facts: &Facts, t: Option<&TenantFact>) -> (String, Vec<FactRef>) {
    let b = &facts.backups;
    let caps = &facts.capabilities;
    let mut fs = Vec::new();
    let slug = t.map_or("SLUG", |t| t.slug.as_str());
    let cmd = format!("`tenantgate tenant restore {slug} --at TIME --as NEW_SLUG` (or `--replace`)");
    let mut s = String::new();
    if !caps.restore {
        s.push_str("Point-in-time restore of one tenant (`tenant restore --at`) is not available in this build.");
    } else if !b.configured {
        s.push_str(&format!(
            "Point in time: not available in this deployment: no pgBackRest backups are configured (no [backup] in tenantgate.toml), so no physical backup or WAL archive exists to restore from; with them, {cmd} would restore this tenant alone."
        ));
        fs.push(fact(SRC_BACKUP, "no [backup] in tenantgate.toml"));
    } else {
        let servers: Vec<&crate::facts::ServerBackupFact> = match t {
            Some(t) => b.server(&t.server).into_iter().collect(),
            None => b.servers.iter().collect(),
        };
        match (t, servers.is_empty()) {
            (Some(t), true) => {
                s.push_str(&format!(
                    "Point in time: not available for this tenant: its server {} has no [[backup.servers]] entry, so it has no pgBackRest backups.",
                    t.server
                ));
                fs.push(fact(SRC_BACKUP, format!("server {} is not backed up", t.server)));
            }
            _ => {
                s.push_str(&format!(
                    "To a point in time: {cmd} recovers its server's pgBackRest backup to TIME into a scratch cluster, imports only this tenant's rows and removes the scratch cluster; the live server and the other tenants are untouched."
                ));
                if t.is_none() {
                    s = s.replace("this tenant's rows", "that tenant's rows");
                }
                match &b.unavailable {
                    Some(why) => {
                        s.push_str(&format!(" The recovery window cannot be stated: {why}."));
                        fs.push(fact(b.source.clone(), why.clone()));
                    }
                    None => {
                        let windows: Vec<String> = servers
                            .iter()
                            .map(|x| match x.window() {
                                Some(w) => format!("server {} ({}): {w}", x.server, x.region),
                                None => format!("server {} ({}): none, it has no backup yet (`tenantgate backup run`)", x.server, x.region),
                            })
                            .collect();
                        s.push_str(&format!(" Recovery window (`tenantgate backup status`): {}.", windows.join("; ")));
                        for x in &servers {
                            fs.push(fact(
                                SRC_BACKUP_STATUS,
                                format!("server {} (stanza {}): {} backup(s), {}, recovery window {}", x.server, x.stanza, x.backups, x.status, x.window().unwrap_or_else(|| "none".into())),
                            ));
                        }
                    }
                }
                if t.is_none() && !b.not_backed_up.is_empty() {
                    s.push_str(&format!(" Not backed up (no [[backup.servers]] entry): {}.", text::list(&b.not_backed_up)));
                }
            }
        }
    }
    let rb = &facts.restore_benchmark;
    match &rb.missing {
        Some(m) => {
            s.push_str(&format!(" No restore has been measured: {m}."));
            fs.push(fact(rb.source.clone(), m.clone()));
        }
        None => {
            let when = rb.measured_on.as_deref().map(|d| format!(" on {d}")).unwrap_or_default();
            let mut parts = Vec::new();
            if let Some(p) = &rb.point_in_time {
                parts.push(format!("a point-in-time restore of a {} tenant of {} rows from a pool of {} rows took {} ms", p.placement, p.tenant_rows, p.pool_rows, p.duration_ms));
                fs.push(fact(rb.source.clone(), format!("point in time: {} rows of {}, {} ms", p.tenant_rows, p.pool_rows, p.duration_ms)));
            }
            if let Some(e) = &rb.export_import {
                let interval = e.ratio_interval.map(|[a, b]| format!(", 95% interval {a:.2}-{b:.2}")).unwrap_or_default();
                parts.push(format!(
                    "export and import of a {}-row tenant took {} ms (median of {} rounds), {:.2}x `pg_dump | pg_restore` of the same rows{interval}",
                    e.rows,
                    e.median_total_ms(),
                    e.export_ms.len(),
                    e.ratio
                ));
                fs.push(fact(rb.source.clone(), format!("export + import: {} rows, {} ms, {:.2}x pg_dump|pg_restore", e.rows, e.median_total_ms(), e.ratio)));
            }
            s.push_str(&format!(" Measured{when}: {}.", parts.join("; ")));
        }
    }
    (s, fs)
}

fn tenant_answers(facts: &Facts, t: &TenantFact) -> Vec<Answer> {
    let m = model(t.placement);
    let mut out = Vec::new();
    let base = || vec![tenant_row(t), fact(SRC_MODEL, format!("placement {} isolation model", t.placement))];

    out.push(answer(
        "db-isolation",
        format!("Tenant {} is in the `{}` placement on server {}: {}. Isolation is enforced by {}.", t.slug, t.placement, t.server, m.where_rows_live, m.enforcement),
        base(),
        true,
    ));
    out.push(verify_answer(facts));

    let mut fs = base();
    let neighbours = facts.tenants.iter().filter(|o| o.slug != t.slug && o.placement == t.placement && o.server == t.server).count();
    let mut text = format!("A misrouted connection: {}. A broken policy or grant: {}.", m.misrouted, m.broken_policy);
    match t.placement {
        Placement::Pooled => {
            text.push_str(&format!(" This tenant shares server {}'s pool with {}.", t.server, text::count(neighbours, "other tenant", "other tenants")));
            text.push_str(" Residual risk of the shared tables: query plans (EXPLAIN costs and row estimates) reveal how many rows the pool holds in all, never whose rows or their content; transaction ids and the WAL position show how busy the server is.");
            fs.push(fact(SRC_TENANTS, format!("{neighbours} other pooled tenants on server {}", t.server)));
        }
        Placement::Schema => {
            text.push_str(&format!(" This tenant shares server {}'s bridge database with {}.", t.server, text::count(neighbours, "other tenant", "other tenants")));
            fs.push(fact(SRC_TENANTS, format!("{neighbours} other schema tenants on server {}", t.server)));
        }
        Placement::Database => {}
    }
    out.push(answer("blast-radius", text, fs, true));

    let caps = &facts.capabilities;
    let logical = format!(
        "`tenantgate tenant export {0} --out FILE` and `tenantgate tenant import {0} --from FILE --replace` restore its rows alone, verified against the archive's per-table checksums, without touching any other tenant (or into a new tenant, as a copy)",
        t.slug
    );
    let (mut restore, supported) = match t.placement {
        Placement::Pooled if caps.export && caps.import => (format!("Yes, logically: {logical}. {}.", capitalise(m.backup)), true),
        Placement::Pooled => (format!("Not with tenantgate alone in this build: `tenant export`/`tenant import` are not yet available. {}.", capitalise(m.backup)), false),
        _ if caps.export && caps.import => (format!("Yes: {logical}. Besides, {}.", m.backup), true),
        _ => (format!("Yes: {}.", m.backup), true),
    };
    let mut fs = base();
    fs.push(fact(caps.source.clone(), format!("tenant export available: {}, tenant import available: {}, tenant restore --at available: {}", caps.export, caps.import, caps.restore)));
    let (pitr, pitr_facts) = point_in_time_part(facts, Some(t));
    restore.push(' ');
    restore.push_str(&pitr);
    fs.extend(pitr_facts);
    out.push(answer("independent-restore", restore, fs, supported));

    let residency = if t.residency.is_empty() {
        "It declares no residency, so it may be placed in any region.".to_string()
    } else if t.residency.contains(&t.region) {
        format!("Its declared residency is {}; its server's region is within it.", t.residency.join(", "))
    } else {
        format!("Its declared residency is {}, but its server's region {} is OUTSIDE it (see `tenantgate triggers`).", t.residency.join(", "), t.region)
    };
    let catalog = match (&facts.catalog.server, &facts.catalog.region) {
        (Some(s), Some(r)) => format!("The catalog (slug, key and placement; no tenant rows) is on server {s} in region {r}."),
        _ => "The catalog (slug, key and placement; no tenant rows) is on a host that is not a registered server; its region is not recorded.".to_string(),
    };
    let regions: Vec<String> = facts.regions().keys().cloned().collect();
    out.push(answer(
        "data-location",
        format!(
            "Tenant {}'s data is stored on server {} in region {} ({} placement). {residency} Residency is set per tenant (`tenant create --residency REGION,...`) and is enforced before any data is placed; a placement outside it is refused. {catalog} Regions available: {}.",
            t.slug, t.server, t.region, t.placement, text::list(&regions)
        ),
        vec![tenant_row(t), server_row(facts, &t.server), fact(facts.catalog.source.clone(), catalog.clone())],
        true,
    ));
    out.push(certifications_answer(facts));

    let (text, fs, supported) = if t.placement == Placement::Database {
        (
            format!(
                "Yes, and tenant {} already has one: its own database on server {} (region {}). For a dedicated server as well, register one (`tenantgate server add`) and move the tenant there: `{}`.{}",
                t.slug,
                t.server,
                t.region,
                facts.move_command(&t.slug, "NEW_SERVER"),
                if facts.capabilities.move_placement_flag.is_none() { " `tenant move` is not yet available in this build." } else { "" }
            ),
            vec![tenant_row(t), fact(facts.capabilities.source.clone(), format!("tenant move available: {}", facts.capabilities.move_placement_flag.is_some()))],
            true,
        )
    } else {
        let server = target_server(facts, t);
        let (mv, mut fs, supported) = move_part(facts, t, &server);
        fs.insert(0, tenant_row(t));
        (format!("Yes: the `database` placement gives the tenant a database of its own. {mv}"), fs, supported)
    };
    out.push(answer("dedicated", text, fs, supported));
    out
}

/// The server a dedicated database for `t` would go to: its current server, unless a
/// `region:` requirement or its residency names another region.
fn target_server(facts: &Facts, t: &TenantFact) -> String {
    let wanted: Vec<String> = t.requires.iter().filter_map(|r| r.strip_prefix("region:").map(str::to_string)).collect();
    let ok = |region: &str| wanted.iter().all(|w| w == region) && (t.residency.is_empty() || t.residency.iter().any(|r| r == region));
    if ok(&t.region) {
        return t.server.clone();
    }
    facts.servers.iter().find(|s| ok(&s.region)).map_or_else(|| "NAME".to_string(), |s| s.name.clone())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn deployment_answers(facts: &Facts) -> Vec<Answer> {
    let in_use = facts.placements_in_use();
    let counts: Vec<FactRef> = Placement::ALL
        .iter()
        .map(|p| fact(SRC_TENANTS, format!("{} in placement {p}", text::count(facts.count(*p), "tenant", "tenants"))))
        .collect();
    let with_model = |mut v: Vec<FactRef>| {
        v.push(fact(SRC_MODEL, "placement isolation models"));
        v
    };
    let mut out = Vec::new();
    let per = |f: &dyn Fn(&crate::adr::PlacementModel) -> String| -> String {
        if in_use.is_empty() {
            return "No tenant exists yet. ".to_string()
                + &Placement::ALL.iter().map(|p| format!("`{p}`: {}.", f(&model(*p)))).collect::<Vec<_>>().join(" ");
        }
        in_use
            .iter()
            .map(|p| format!("`{p}` ({}): {}.", text::count(facts.count(*p), "tenant", "tenants"), f(&model(*p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    out.push(answer(
        "db-isolation",
        format!("Every tenant has its own database login roles, and isolation is enforced by PostgreSQL before the gateway's SQL gate. Per placement in use: {}", per(&|m| m.enforcement.to_string())),
        with_model(counts.clone()),
        true,
    ));
    out.push(verify_answer(facts));
    out.push(answer(
        "blast-radius",
        format!("Per placement in use: {}", per(&|m| format!("a misrouted connection exposes {}; a broken policy or grant exposes {}", m.misrouted, m.broken_policy))),
        with_model(counts.clone()),
        true,
    ));
    let caps = &facts.capabilities;
    let pooled_in_use = facts.count(Placement::Pooled) > 0;
    let tools = caps.export && caps.import;
    let mut restore = format!("Per placement in use: {}", per(&|m| m.backup.to_string()));
    if pooled_in_use && tools {
        restore.push_str(" Any single tenant, pooled ones included, is restored alone with `tenantgate tenant export SLUG --out FILE` and `tenantgate tenant import SLUG --from FILE --replace` (checksums verified; the other tenants untouched).");
    }
    if pooled_in_use && !tools {
        restore.push_str(" For pooled tenants, `tenant export`/`tenant import` are not yet available in this build, so tenantgate cannot restore one pooled tenant by itself.");
    }
    let mut fs = with_model(counts.clone());
    fs.push(fact(caps.source.clone(), format!("tenant export available: {}, tenant import available: {}, tenant restore --at available: {}", caps.export, caps.import, caps.restore)));
    let (pitr, pitr_facts) = point_in_time_part(facts, None);
    restore.push(' ');
    restore.push_str(&pitr);
    fs.extend(pitr_facts);
    out.push(answer("independent-restore", restore, fs, !pooled_in_use || tools));

    let regions = facts.regions();
    let mut loc = Vec::new();
    let mut fs = Vec::new();
    for (region, servers) in &regions {
        let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
        let n = facts.tenants.iter().filter(|t| &t.region == region).count();
        loc.push(format!("{region}: {} on {}", text::count(n, "tenant", "tenants"), text::list(&names)));
        fs.push(fact(SRC_SERVERS, format!("region {region}: servers {}", names.join(", "))));
    }
    fs.push(fact(SRC_TENANTS, "tenants per region"));
    let catalog = match (&facts.catalog.server, &facts.catalog.region) {
        (Some(s), Some(r)) => format!("The catalog (slugs, keys, placement; no tenant rows) is on server {s} in region {r}."),
        _ => "The catalog is on a host that is not a registered server; its region is not recorded.".to_string(),
    };
    fs.push(fact(facts.catalog.source.clone(), catalog.clone()));
    let declared = facts.tenants.iter().filter(|t| !t.residency.is_empty()).count();
    out.push(answer(
        "data-location",
        format!(
            "Data is stored by region: {}. {catalog} Residency is set per tenant (`tenant create --residency REGION,...`) and enforced before any data is placed; {} declare one.",
            if loc.is_empty() { "no servers are registered".to_string() } else { loc.join("; ") },
            text::count(declared, "tenant", "tenants")
        ),
        fs,
        true,
    ));
    out.push(certifications_answer(facts));

    let b = &facts.move_benchmark;
    let mut text = format!(
        "Yes: the `database` placement gives a tenant its own database ({} use it now), on any registered server, including one registered for that tenant alone. Moving a tenant: `{}`.",
        facts.count(Placement::Database),
        facts.move_command("SLUG", "NAME")
    );
    let available = caps.move_placement_flag.is_some();
    if !available {
        text.push_str(" `tenant move` is not yet available in this build; that is the command it will be.");
    }
    let mut fs = vec![fact(SRC_TENANTS, format!("{} in placement database", facts.count(Placement::Database))), fact(caps.source.clone(), format!("tenant move available: {available}"))];
    match &b.missing {
        Some(m) => {
            text.push_str(&format!(" No measurement of a move exists: {m}."));
            fs.push(fact(b.source.clone(), m.clone()));
        }
        None => {
            let runs: Vec<String> = b.runs.iter().map(|r| format!("{} -> {} of {}: {} ms", r.from, r.to, text::bytes(r.tenant_bytes), r.duration_ms)).collect();
            text.push_str(&format!(" Measured moves: {}.", runs.join("; ")));
            fs.push(fact(b.source.clone(), format!("{} measured runs", b.runs.len())));
        }
    }
    out.push(answer("dedicated", text, fs, available && b.missing.is_none()));
    out
}

pub fn to_markdown(q: &Questionnaire) -> String {
    let mut s = String::new();
    let w = &mut s;
    match &q.tenant {
        Some(t) => {
            let _ = writeln!(w, "# Security questionnaire: tenant {t}\n");
        }
        None => {
            let _ = writeln!(w, "# Security questionnaire: this tenantgate deployment\n");
        }
    }
    let _ = writeln!(w, "Date: {}", q.date.format("%Y-%m-%d"));
    let _ = writeln!(w, "Generated by `tenantgate questionnaire` from live state. Each answer lists the facts it rests on; an answer live state cannot support says so.\n");
    for (i, a) in q.answers.iter().enumerate() {
        let _ = writeln!(w, "## {}. {}\n", i + 1, a.question);
        let _ = writeln!(w, "{}\n", a.answer);
        let _ = writeln!(w, "Supported by live state: {}\n", if a.supported { "yes" } else { "**no**" });
        let _ = writeln!(w, "Facts:\n");
        for f in &a.facts {
            let _ = writeln!(w, "- `{}`: {}", f.source, f.fact);
        }
        let _ = writeln!(w);
    }
    s
}
