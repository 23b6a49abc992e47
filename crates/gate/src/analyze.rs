//! Parses a query string and classifies each statement, independently of scope and limits.
//!
//! The result, an [`Analysis`], is what the cache stores: for each statement in order, whether it
//! writes and whether it sets a capped timeout, up to the first statement refused outright.
//! [`crate::Gate::check`] then applies the principal's scope and the tenant's limits to it.
//!
//! In strict catalog mode, a string that reads the catalog is rewritten onto the tenant-scoped
//! catalog (`scoped`) and the rewritten text is analyzed again from scratch: the analysis, and
//! the SQL that runs, are the rewritten text's.

use pg_query::protobuf::{self, CopyStmt, ExplainStmt, TransactionStmtKind};
use pg_query::NodeEnum;

use std::sync::Arc;

use crate::scoped::{self, Edit};
use crate::settings::{self, TimeoutSet};
use crate::walk::{self, Facts};
use crate::{nesting, parse, rules, stack, Denial, GateConfig};

/// What the gate knows about one allowed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// `Some(kind)` if the statement writes, e.g. `"INSERT"` or `"nextval()"`.
    pub writes: Option<&'static str>,
    /// A capped timeout this statement sets, to check against the tenant's limits.
    pub timeout: Option<TimeoutSet>,
    /// `Some(what)` if it uses a notification channel (LISTEN, NOTIFY, `pg_notify()`): allowed
    /// only to a tenant with a database of its own (`Limits::own_database`).
    pub channel: Option<&'static str>,
    /// Session state it leaves behind after its transaction (`session`): refused to tenants
    /// in transaction pooling mode (`Limits::transaction_mode`).
    pub session: Option<crate::session::SessionState>,
}

/// The scope-independent verdict on a whole query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Analysis {
    /// The statements before the first refused one (all of them if none is refused).
    pub statements: Vec<Statement>,
    /// Why the statement after `statements` is refused, if one is.
    pub denial: Option<Denial>,
    /// A rule decided on a literal's value (see `rules::cast`), or the text was rewritten:
    /// this analysis holds for this text only, never for others of its shape.
    pub reads_literals: bool,
    /// The SQL to run instead of the text analyzed: its catalog references mapped onto the
    /// tenant-scoped catalog. `statements` and `denial` describe this text.
    pub rewritten: Option<Arc<str>>,
}

/// Parses `sql` and classifies every statement in it; rewrites it onto the scoped catalog if
/// it needs that, and then classifies the rewritten text.
pub(crate) fn analyze(sql: &str, cfg: &GateConfig) -> Analysis {
    let mut edits = Vec::new();
    let first = analyze_text(sql, cfg, &mut edits);
    if edits.is_empty() || first.denial.is_some() {
        return first;
    }
    let rewritten = match scoped::apply(sql, &edits) {
        Ok(text) => text,
        Err(denial) => return refused(Vec::new(), denial),
    };
    let mut again = Vec::new();
    let mut analysis = analyze_text(&rewritten, cfg, &mut again);
    if !again.is_empty() {
        // The rewrite must leave nothing to rewrite; if it did, fail closed.
        return refused(Vec::new(), scoped::refused("a catalog reference"));
    }
    analysis.reads_literals = true;
    analysis.rewritten = Some(Arc::from(rewritten));
    analysis
}

/// One parse and classification of `sql`, collecting the scoped-catalog edits it needs.
fn analyze_text(sql: &str, cfg: &GateConfig, edits: &mut Vec<Edit>) -> Analysis {
    if nesting::too_deep(sql) {
        return refused(Vec::new(), Denial::too_complex());
    }
    // Parse, walk and drop the tree on a stack deep enough for it (see `stack`).
    stack::run(sql.len(), || match parse::parse(sql) {
        Ok(parsed) => classify_all(&parsed, cfg, edits),
        Err(err) => refused(Vec::new(), Denial::syntax(&parse_error_message(err))),
    })
    .unwrap_or_else(|| refused(Vec::new(), Denial::internal()))
}

fn parse_error_message(err: pg_query::Error) -> String {
    match err {
        pg_query::Error::Parse(message) => message,
        pg_query::Error::Conversion(_) => "the query contains a NUL byte".to_owned(),
        other => other.to_string(),
    }
}

fn refused(statements: Vec<Statement>, denial: Denial) -> Analysis {
    Analysis {
        statements,
        denial: Some(denial),
        reads_literals: false,
        rewritten: None,
    }
}

fn classify_all(parsed: &protobuf::ParseResult, cfg: &GateConfig, edits: &mut Vec<Edit>) -> Analysis {
    let mut statements = Vec::with_capacity(parsed.stmts.len());
    let mut reads_literals = false;
    for raw in &parsed.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let Some(facts) = walk::facts(node) else {
            return refused(statements, Denial::internal());
        };
        if cfg.strict_catalog {
            if let Err(denial) = scoped::plan(&facts, edits) {
                return refused(statements, denial);
            }
        }
        match classify(node, &facts, cfg, &mut reads_literals) {
            Ok(statement) => statements.push(statement),
            Err(denial) => return refused(statements, denial),
        }
    }
    Analysis {
        statements,
        denial: None,
        reads_literals,
        rewritten: None,
    }
}

/// Classifies one top-level statement: its kind first, then every name in its tree.
fn classify(node: &NodeEnum, facts: &Facts, cfg: &GateConfig, reads_literals: &mut bool) -> Result<Statement, Denial> {
    // `SELECT set_config(name, value, is_local)` on its own is judged as the SET it is; the
    // verdict depends on the literal name and value, so it is never shared by shape.
    let set_config = match node {
        NodeEnum::SelectStmt(s) => settings::sole_set_config(s),
        _ => None,
    };
    if let Some(set) = set_config {
        *reads_literals = true;
        let session = crate::session::set_state(&set);
        return Ok(Statement { writes: None, timeout: settings::classify(&set, &cfg.allowed_settings)?, channel: None, session });
    }
    let mut statement = kind(node, cfg)?;
    statement.session = crate::session::state_of(node);
    check_names(facts, cfg)?;
    if facts.functions.iter().any(|c| c.name.last().is_some_and(|n| n.eq_ignore_ascii_case("pg_notify"))) {
        statement.channel = statement.channel.or(Some("pg_notify()"));
    }
    check_casts(facts, cfg, reads_literals)?;
    statement.writes = statement.writes.or_else(|| write_of(facts));
    Ok(statement)
}

fn read() -> Result<Statement, Denial> {
    Ok(Statement {
        writes: None,
        timeout: None,
        channel: None,
        session: None,
    })
}

fn write(kind: &'static str) -> Result<Statement, Denial> {
    Ok(Statement {
        writes: Some(kind),
        timeout: None,
        channel: None,
        session: None,
    })
}

fn channel(what: &'static str) -> Result<Statement, Denial> {
    Ok(Statement { writes: None, timeout: None, channel: Some(what), session: None })
}

/// Allows or refuses a statement by its kind. Inner statements (of EXPLAIN, PREPARE, DECLARE,
/// COPY) are classified the same way; names anywhere in the tree are checked by `check_names`.
fn kind(node: &NodeEnum, cfg: &GateConfig) -> Result<Statement, Denial> {
    match node {
        NodeEnum::SelectStmt(s) if s.into_clause.is_some() => Err(ddl("SELECT INTO")),
        NodeEnum::SelectStmt(_) => read(),
        NodeEnum::InsertStmt(_) => write("INSERT"),
        NodeEnum::UpdateStmt(_) => write("UPDATE"),
        NodeEnum::DeleteStmt(_) => write("DELETE"),
        NodeEnum::MergeStmt(_) => write("MERGE"),
        NodeEnum::TransactionStmt(t) => transaction(t.kind),
        NodeEnum::VariableSetStmt(s) => Ok(Statement {
            writes: None,
            timeout: settings::classify(s, &cfg.allowed_settings)?,
            channel: None,
            session: None,
        }),
        NodeEnum::VariableShowStmt(_)
        | NodeEnum::ExecuteStmt(_)
        | NodeEnum::DeallocateStmt(_)
        | NodeEnum::FetchStmt(_)
        | NodeEnum::ClosePortalStmt(_)
        | NodeEnum::DiscardStmt(_)
        | NodeEnum::ConstraintsSetStmt(_) => read(),
        NodeEnum::ExplainStmt(e) => explain(e, cfg),
        NodeEnum::CopyStmt(c) => copy(c, cfg),
        NodeEnum::PrepareStmt(p) => inner(p.query.as_deref(), cfg),
        NodeEnum::DeclareCursorStmt(d) => inner(d.query.as_deref(), cfg),
        NodeEnum::GrantStmt(_) | NodeEnum::GrantRoleStmt(_) => Err(Denial::policy(
            "grant",
            "GRANT/REVOKE",
            "privileges are set by the operator when a tenant is provisioned",
        )),
        NodeEnum::DoStmt(_) => Err(Denial::policy(
            "do-block",
            "DO",
            "anonymous code blocks run SQL the gate cannot see",
        )),
        NodeEnum::CallStmt(_) => Err(Denial::policy(
            "call",
            "CALL",
            "procedures run SQL the gate cannot see",
        )),
        NodeEnum::TruncateStmt(_) => Err(Denial::policy(
            "truncate",
            "TRUNCATE",
            "it bypasses row-level security; delete rows with DELETE",
        )),
        NodeEnum::LockStmt(_) => Err(Denial::policy(
            "lock",
            "LOCK",
            "table locks block every tenant sharing the table",
        )),
        NodeEnum::VacuumStmt(_) => Err(Denial::policy(
            "maintenance",
            "VACUUM/ANALYZE",
            "maintenance is the operator's job and affects every tenant sharing the table",
        )),
        // UNLISTEN only drops the caller's own session's registrations (asyncpg's pool reset
        // sends `UNLISTEN *`); LISTEN and NOTIFY reach every session of the database, so
        // they are allowed per tenant, by placement (see `apply`).
        NodeEnum::UnlistenStmt(_) => read(),
        NodeEnum::ListenStmt(_) => channel("LISTEN"),
        NodeEnum::NotifyStmt(_) => channel("NOTIFY"),
        NodeEnum::CheckPointStmt(_) | NodeEnum::LoadStmt(_) => Err(Denial::policy(
            "admin",
            "CHECKPOINT/LOAD",
            "server administration is the operator's job",
        )),
        // Everything else is DDL or another utility statement: CREATE/ALTER/DROP of any
        // object, CREATE TABLE AS, COMMENT, SECURITY LABEL, REFRESH MATERIALIZED VIEW,
        // REINDEX, CLUSTER, ALTER SYSTEM, ALTER DEFAULT PRIVILEGES, IMPORT FOREIGN SCHEMA, …
        _ => Err(ddl("DDL")),
    }
}

fn ddl(what: &str) -> Denial {
    Denial::policy(
        "ddl",
        what,
        "the application schema changes only through the operator's migrations",
    )
}

fn transaction(kind: i32) -> Result<Statement, Denial> {
    match TransactionStmtKind::try_from(kind) {
        Ok(
            TransactionStmtKind::TransStmtPrepare
            | TransactionStmtKind::TransStmtCommitPrepared
            | TransactionStmtKind::TransStmtRollbackPrepared,
        ) => Err(Denial::policy(
            "two-phase",
            "two-phase commit (PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED)",
            "prepared transactions outlive the session and hold their locks",
        )),
        _ => read(),
    }
}

/// The inner statement of EXPLAIN, PREPARE, DECLARE CURSOR or COPY (query).
fn inner(query: Option<&protobuf::Node>, cfg: &GateConfig) -> Result<Statement, Denial> {
    match query.and_then(|q| q.node.as_ref()) {
        Some(node) => kind(node, cfg),
        None => read(),
    }
}

/// EXPLAIN is what it explains, as far as scope goes; ANALYZE runs it and must be enabled.
fn explain(e: &ExplainStmt, cfg: &GateConfig) -> Result<Statement, Denial> {
    let analyze = e.options.iter().any(|option| match option.node.as_ref() {
        Some(NodeEnum::DefElem(d)) => {
            d.defname.eq_ignore_ascii_case("analyze") && !is_false(d.arg.as_deref())
        }
        _ => false,
    });
    if analyze && !cfg.allow_explain_analyze {
        return Err(Denial::policy(
            "explain-analyze",
            "EXPLAIN ANALYZE",
            "it runs the statement and exposes server timing; the operator has not enabled it",
        ));
    }
    inner(e.query.as_deref(), cfg)
}

/// Whether an option value (a bare String or Integer node) is explicitly false; absent means
/// true. Fails closed: anything not clearly false counts as true.
fn is_false(arg: Option<&protobuf::Node>) -> bool {
    match arg.and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::String(s)) => ["false", "off", "no", "0"]
            .iter()
            .any(|v| s.sval.eq_ignore_ascii_case(v)),
        Some(NodeEnum::Integer(i)) => i.ival == 0,
        Some(NodeEnum::Boolean(b)) => !b.boolval,
        _ => false,
    }
}

fn copy(c: &CopyStmt, cfg: &GateConfig) -> Result<Statement, Denial> {
    let direction = if c.is_from { "COPY FROM" } else { "COPY TO" };
    if c.is_program {
        return Err(Denial::policy(
            "copy-program",
            format_args!("{direction} PROGRAM"),
            "it runs a program on the database server",
        ));
    }
    if !c.filename.is_empty() {
        return Err(Denial::policy(
            "copy-file",
            format_args!("{direction} a server file"),
            "it reads or writes files on the database server; use STDIN/STDOUT",
        ));
    }
    if c.is_from {
        return write("COPY FROM");
    }
    inner(c.query.as_deref(), cfg)
}

/// Checks every function and relation name in the statement's tree. In strict catalog mode,
/// names the scoped catalog stands in for (or that are already its) are left to `scoped`.
fn check_names(facts: &Facts, cfg: &GateConfig) -> Result<(), Denial> {
    for call in &facts.functions {
        if cfg.strict_catalog && scoped::function(&call.name) != scoped::Name::Other {
            continue;
        }
        let parts = &call.name;
        let Some(last) = parts.last() else { continue };
        if let Some(finding) = rules::function(&last.to_ascii_lowercase(), cfg.strict_catalog) {
            return Err(Denial::policy(
                finding.rule,
                format_args!("calling {}()", parts.join(".")),
                finding.why,
            ));
        }
    }
    for relation in &facts.relations {
        if cfg.strict_catalog && scoped::relation(&relation.catalog, &relation.schema, &relation.name) != scoped::Name::Other {
            continue;
        }
        if let Some(finding) = rules::relation(&relation.name, cfg.strict_catalog) {
            let name = match relation.schema.as_str() {
                "" => relation.name.clone(),
                schema => format!("{schema}.{}", relation.name),
            };
            let why = if finding.rule == "catalog-enumeration" {
                format!("{}; {}", finding.why, rules::instead(&relation.name))
            } else {
                finding.why.to_owned()
            };
            return Err(Denial::policy(finding.rule, format_args!("reading {name}"), &why));
        }
    }
    Ok(())
}

/// Checks every cast to a `reg*` type (strict catalog mode): see `rules::cast`.
fn check_casts(facts: &Facts, cfg: &GateConfig, reads_literals: &mut bool) -> Result<(), Denial> {
    for c in &facts.casts {
        let Some(last) = c.type_name.last() else { continue };
        // A column's value cast to a guarded type is wrapped in its guard by `scoped`; the
        // wrapped form (a call of the guard) is what the rewritten text holds.
        if let (true, Some(guard), false) = (cfg.strict_catalog, scoped::cast_guard(&c.type_name), c.array) {
            let guarded_call = c.arg_call.and_then(|i| facts.functions.get(i)).is_some_and(|f| scoped::is_guard_call(&f.name, guard));
            // A column, a function's result, a parameter or an OID constant is wrapped by `scoped::plan`
            // (and the rewritten text is analyzed again, where it is the guard's call).
            let planned = c.arg_column.is_some() || c.arg_param_location >= 0 || (c.arg_call.is_some() && !guarded_call);
            // A cast of a cast to a guarded type (`CAST($1::regclass AS regclass)`, as
            // SQLAlchemy writes for asyncpg): the inner cast is guarded or refused on its own.
            let of_guarded = c.arg_cast.and_then(|i| facts.casts.get(i)).is_some_and(|inner| !inner.array && scoped::cast_guard(&inner.type_name).is_some());
            let planned = planned || of_guarded;
            if planned || guarded_call || scoped::is_oid_constant(c.arg_is_constant, c.arg_string.as_deref()) {
                continue;
            }
        }
        match rules::cast(last, c.array, c.arg_is_constant, c.arg_string.as_deref(), cfg.strict_catalog) {
            None => {}
            Some(rules::CastFinding::AllowedForThisValue) => *reads_literals = true,
            Some(rules::CastFinding::Refused(finding)) => {
                let what = if c.arg_string.is_some() && !c.array { "a constant" } else { "a value" };
                return Err(Denial::policy(
                    finding.rule,
                    format_args!("casting {what} to {}{}", last.to_ascii_lowercase(), if c.array { "[]" } else { "" }),
                    "an object identifier type names objects of every schema; only a string constant naming an object may be cast to regclass, regtype and the like",
                ));
            }
        }
    }
    Ok(())
}

/// Whether anything in the tree writes: a data-modifying statement (top level or in a CTE),
/// a row-locking clause, or a sequence-advancing function.
fn write_of(facts: &Facts) -> Option<&'static str> {
    if facts.modifying.is_some() {
        return facts.modifying;
    }
    if facts.locking {
        return Some("SELECT … FOR UPDATE/SHARE");
    }
    facts
        .functions
        .iter()
        .filter_map(|c| c.name.last())
        .find_map(|name| rules::writing_function(&name.to_ascii_lowercase()))
}
