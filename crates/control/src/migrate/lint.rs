//! Lint for app-schema migration files against the table contract (DESIGN I3).
//!
//! What it owns: reading one migration file with the real PostgreSQL parser
//! (`pg_query`) and reporting every statement that breaks the contract every
//! tenant table must keep in every placement:
//!
//! ```sql
//! tenant_id text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant()
//! ```
//!
//! with every primary key and unique constraint leading with `tenant_id` and every
//! foreign key carrying `tenant_id` on both sides. It also refuses the statements
//! tenantgate owns itself (roles, grants, policies, row-level security, schemas),
//! because tenantgate enables and forces RLS, creates the `tenant_isolation` policy
//! and grants privileges after each migration, on every target.
//!
//! What it must never do: connect to a database or execute anything (it is pure:
//! text in, findings out), or panic on any input. Bad SQL is a `syntax` finding.

use std::collections::HashMap;
use std::fmt;

use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, CreateFunctionStmt, CreateStmt,
    CreateTableAsStmt, DefElem, DropStmt, IndexStmt, ObjectType, RangeVar, RenameStmt, TypeName, ViewStmt,
};
use pg_query::{Node, NodeEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// File name as given.
    pub file: String,
    /// 1-based line of the offending statement (or of the syntax error).
    pub line: usize,
    pub severity: Severity,
    /// Stable rule id, e.g. `tenant-id-missing`.
    pub rule: &'static str,
    /// What is wrong, naming the table or constraint.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {severity}[{}]: {}\n  fix: {}", self.file, self.line, self.rule, self.message, self.fix)
    }
}

/// Lint one migration file. Never panics on any input (fuzz-safe).
pub fn lint_sql(file: &str, sql: &str) -> Vec<Finding> {
    let stmts = match parse(sql) {
        Ok(stmts) => stmts,
        Err(message) => return vec![syntax_finding(file, sql, &message)],
    };
    let mut linter = Linter::new(file);
    for raw in &stmts {
        linter.line = statement_line(sql, raw.stmt_location);
        if let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            linter.statement(node);
        }
    }
    linter.finish()
}

/// True when any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

const TENANT_ID: &str = "tenant_id";
const TENANTGATE_SCHEMA: &str = "tenantgate";
const CONTRACT_COLUMN: &str = "tenant_id text COLLATE \"C\" NOT NULL DEFAULT tenantgate.current_tenant()";
const OWNED_BY_TENANTGATE: &str = "tenantgate creates the roles, grants table privileges, enables and forces \
     row-level security and creates the tenant_isolation policy itself, after each migration on every target";
const SEARCH_PATH_NOTE: &str = "each migration is applied once per target (the pool schema, every tenant schema, \
     every tenant database) with search_path set to that target";

// ---------------------------------------------------------------------------
// Parsing and positions
// ---------------------------------------------------------------------------

/// Parse with the real parser. `pg_query` post-processes the tree in Rust with a few
/// indexing operations; a bug there must become a finding, not a crash of the CLI.
fn parse(sql: &str) -> Result<Vec<pg_query::protobuf::RawStmt>, String> {
    if sql.contains('\0') {
        return Err("the file contains a NUL byte".to_string());
    }
    match std::panic::catch_unwind(|| pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)) {
        Ok(Ok(parsed)) => Ok(parsed.protobuf.stmts),
        Ok(Err(e)) => Err(parse_error_message(e)),
        Err(_) => Err("the SQL parser failed on this file".to_string()),
    }
}

fn parse_error_message(e: pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(message) => message,
        pg_query::Error::Decode(_) => "the statement is nested too deeply to analyse".to_string(),
        other => other.to_string(),
    }
}

fn syntax_finding(file: &str, sql: &str, message: &str) -> Finding {
    let offset = error_offset(sql, message);
    let line = offset.map_or_else(|| last_line(sql), |o| line_at(sql, o));
    Finding {
        file: file.to_string(),
        line,
        severity: Severity::Error,
        rule: "syntax",
        message: format!("PostgreSQL cannot parse this file: {message}"),
        fix: "correct the SQL near this line; the file is parsed by PostgreSQL's own parser, so it fails here \
              exactly as it would on the server"
            .to_string(),
    }
}

/// Byte offset of the token where parsing fails, or `None` when it fails at end of input.
///
/// The parser reports only a message, so the failing token is found by parsing
/// growing prefixes of the file: an LR parser fails at the same token for every
/// prefix that contains it, so "this prefix fails before its end" is monotone and
/// a binary search over the scanner's tokens finds the first such token.
fn error_offset(sql: &str, message: &str) -> Option<usize> {
    if let Some(nul) = sql.find('\0') {
        return Some(nul);
    }
    let Ok(scanned) = pg_query::scan(sql) else {
        return near_text_offset(sql, message);
    };
    let tokens = scanned.tokens;
    let (mut lo, mut hi) = (0usize, tokens.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if prefix_fails_before_end(sql, tokens[mid].end) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    match tokens.get(lo) {
        Some(token) => usize::try_from(token.start).ok(),
        None => tokens.last().and_then(|t| usize::try_from(t.start).ok()),
    }
}

fn prefix_fails_before_end(sql: &str, end: i32) -> bool {
    let Some(prefix) = usize::try_from(end).ok().and_then(|e| sql.get(..e)) else {
        return false;
    };
    match parse(prefix) {
        Ok(_) => false,
        Err(message) => !message.ends_with("at end of input"),
    }
}

/// For scanner errors (an unterminated string or comment): the text the message
/// quotes after `at or near`, located in the file.
fn near_text_offset(sql: &str, message: &str) -> Option<usize> {
    let start = message.find("at or near \"")? + "at or near \"".len();
    let near = message.get(start..message.len().checked_sub(1)?)?;
    if near.is_empty() {
        return None;
    }
    sql.find(near)
}

/// Line of the statement's first keyword: `stmt_location` is a byte offset that may
/// point at the whitespace and comments after the previous `;`.
fn statement_line(sql: &str, stmt_location: i32) -> usize {
    let start = usize::try_from(stmt_location).unwrap_or(0);
    line_at(sql, skip_trivia(sql.as_bytes(), start))
}

fn line_at(sql: &str, offset: usize) -> usize {
    1 + sql.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count()
}

fn last_line(sql: &str) -> usize {
    line_at(sql, sql.trim_end().len())
}

/// Skip whitespace, `-- line` comments and (nested) `/* block */` comments.
fn skip_trivia(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(b), _) if b.is_ascii_whitespace() => pos += 1,
            (Some(b'-'), Some(b'-')) => {
                pos = bytes.iter().skip(pos).position(|b| *b == b'\n').map_or(bytes.len(), |n| pos + n + 1);
            }
            (Some(b'/'), Some(b'*')) => pos = skip_block_comment(bytes, pos),
            _ => return pos,
        }
    }
}

fn skip_block_comment(bytes: &[u8], mut pos: usize) -> usize {
    let mut depth = 0usize;
    while pos < bytes.len() {
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                pos += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                pos += 2;
                if depth == 0 {
                    return pos;
                }
            }
            _ => pos += 1,
        }
    }
    pos
}

// ---------------------------------------------------------------------------
// Small readers over the parse tree
// ---------------------------------------------------------------------------

fn string_value(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.as_str()),
        _ => None,
    }
}

fn strings(nodes: &[Node]) -> Vec<&str> {
    nodes.iter().filter_map(string_value).collect()
}

fn constraints(nodes: &[Node]) -> impl Iterator<Item = &Constraint> {
    nodes.iter().filter_map(|n| match n.node.as_ref() {
        Some(NodeEnum::Constraint(c)) => Some(&**c),
        _ => None,
    })
}

fn column_defs(nodes: &[Node]) -> impl Iterator<Item = &ColumnDef> {
    nodes.iter().filter_map(|n| match n.node.as_ref() {
        Some(NodeEnum::ColumnDef(c)) => Some(&**c),
        _ => None,
    })
}

fn def_elems(nodes: &[Node]) -> impl Iterator<Item = &DefElem> {
    nodes.iter().filter_map(|n| match n.node.as_ref() {
        Some(NodeEnum::DefElem(d)) => Some(&**d),
        _ => None,
    })
}

fn qualified(rel: &RangeVar) -> String {
    [rel.catalogname.as_str(), rel.schemaname.as_str(), rel.relname.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(".")
}

/// Schema of a qualified object name as it appears in DROP/ALTER statements.
fn object_schema(node: &Node) -> Option<&str> {
    let names = match node.node.as_ref()? {
        NodeEnum::List(l) => strings(&l.items),
        NodeEnum::ObjectWithArgs(o) => strings(&o.objname),
        NodeEnum::TypeName(t) => strings(&t.names),
        _ => return None,
    };
    (names.len() > 1).then(|| names[0])
}

fn type_names(tn: Option<&TypeName>) -> Vec<&str> {
    tn.map(|t| strings(&t.names)).unwrap_or_default()
}

fn is_serial(tn: Option<&TypeName>) -> bool {
    matches!(
        type_names(tn).last().copied(),
        Some("smallserial" | "serial" | "bigserial" | "serial2" | "serial4" | "serial8")
    )
}

/// A boolean option value as PostgreSQL reads it (`true`, `on`, `1`, or no value at all).
fn option_is_true(d: &DefElem) -> bool {
    match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
        None => true,
        Some(NodeEnum::Boolean(b)) => b.boolval,
        Some(NodeEnum::Integer(i)) => i.ival != 0,
        Some(NodeEnum::String(s)) => {
            matches!(s.sval.to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "1" | "t" | "y")
        }
        Some(_) => false,
    }
}

fn is_security_definer(options: &[Node]) -> bool {
    def_elems(options).any(|d| d.defname == "security" && option_is_true(d))
}

fn list(cols: &[&str]) -> String {
    cols.join(", ")
}

fn without_tenant_id<'a>(cols: &[&'a str]) -> Vec<&'a str> {
    cols.iter().copied().filter(|c| *c != TENANT_ID).collect()
}

/// `(tenant_id, a, b)`: the key columns with tenant_id moved to the front.
fn leading_tenant_id(cols: &[&str]) -> String {
    let rest = without_tenant_id(cols);
    if rest.is_empty() {
        TENANT_ID.to_string()
    } else {
        format!("{TENANT_ID}, {}", list(&rest))
    }
}

// ---------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------

/// A statement tenantgate owns (or that escapes its control), with why and what to do instead.
#[derive(Clone, Copy)]
struct Forbidden {
    severity: Severity,
    what: &'static str,
    why: &'static str,
    fix: &'static str,
}

impl Forbidden {
    fn error(what: &'static str, why: &'static str, fix: &'static str) -> Self {
        Forbidden { severity: Severity::Error, what, why, fix }
    }

    /// Roles, grants, policies and row-level security: tenantgate applies them itself.
    fn owned(what: &'static str) -> Self {
        Forbidden::error(what, OWNED_BY_TENANTGATE, FIX_REMOVE)
    }
}

const FIX_REMOVE: &str = "remove this statement; tenantgate manages roles, grants, row-level security and \
     policies for every target after the migration";
const TENANTGATE_OWNS_SCHEMA: &str = "schema tenantgate and tenantgate.current_tenant() belong to tenantgate, \
     and every tenant_id default depends on them";

fn forbidden(node: &NodeEnum) -> Option<Forbidden> {
    use NodeEnum as N;
    let found = match node {
        N::CreateRoleStmt(_) | N::AlterRoleStmt(_) | N::AlterRoleSetStmt(_) | N::DropRoleStmt(_) => {
            Forbidden::owned("CREATE/ALTER/DROP ROLE (or USER)")
        }
        N::ReassignOwnedStmt(_) | N::DropOwnedStmt(_) => Forbidden::owned("REASSIGN/DROP OWNED"),
        N::GrantStmt(_) | N::GrantRoleStmt(_) | N::AlterDefaultPrivilegesStmt(_) => Forbidden::owned("GRANT/REVOKE"),
        N::CreatePolicyStmt(_) | N::AlterPolicyStmt(_) => Forbidden::owned("CREATE/ALTER POLICY"),
        N::DropStmt(d) if d.remove_type() == ObjectType::ObjectPolicy => Forbidden::owned("DROP POLICY"),
        N::AlterOwnerStmt(_) => owner_change(),
        N::CreateSchemaStmt(_) => Forbidden::error(
            "CREATE SCHEMA",
            SEARCH_PATH_NOTE,
            "remove it; tenantgate creates the target schemas and applies the migration inside each one",
        ),
        N::VariableSetStmt(v) => forbidden_set(&v.name)?,
        N::AlterObjectSchemaStmt(_) => Forbidden::error(
            "ALTER ... SET SCHEMA",
            SEARCH_PATH_NOTE,
            "remove it; objects must stay in the target schema the migration runs in",
        ),
        N::CreateExtensionStmt(_) => Forbidden {
            severity: Severity::Warning,
            what: "CREATE EXTENSION",
            why: "extensions are installed per database, and their objects land in the first target schema only",
            fix: "have the operator install the extension once per database before migrating",
        },
        N::AlterFunctionStmt(f) if is_security_definer(&f.actions) => security_definer(),
        N::AlterFunctionStmt(f)
            if f.func.as_ref().and_then(|o| o.objname.first()).and_then(string_value) == Some(TENANTGATE_SCHEMA) =>
        {
            tenantgate_schema("ALTER FUNCTION in schema tenantgate")
        }
        N::DropStmt(d) if drops_tenantgate(d) => tenantgate_schema("DROP of schema tenantgate or of an object in it"),
        N::RenameStmt(r) if r.rename_type() == ObjectType::ObjectSchema && r.subname == TENANTGATE_SCHEMA => {
            tenantgate_schema("ALTER SCHEMA tenantgate")
        }
        _ => return None,
    };
    Some(found)
}

fn forbidden_set(name: &str) -> Option<Forbidden> {
    match name {
        "search_path" => Some(Forbidden::error(
            "SET search_path",
            SEARCH_PATH_NOTE,
            "remove it; tenantgate sets search_path to each target before applying the file",
        )),
        "role" | "session_authorization" => Some(Forbidden::owned("SET ROLE / SESSION AUTHORIZATION")),
        _ => None,
    }
}

fn owner_change() -> Forbidden {
    Forbidden::error(
        "ALTER ... OWNER TO",
        "objects stay owned by the migration role, and tenant roles own nothing (DESIGN I1): an owner can \
         switch off row-level security on its table",
        "remove it",
    )
}

fn security_definer() -> Forbidden {
    Forbidden::error(
        "a SECURITY DEFINER function",
        "it runs with its owner's privileges, which bypass row-level security for whoever calls it",
        "use SECURITY INVOKER (the default) so the function runs as the tenant's role, under row-level security",
    )
}

fn tenantgate_schema(what: &'static str) -> Forbidden {
    Forbidden::error(what, TENANTGATE_OWNS_SCHEMA, "remove it")
}

fn drops_tenantgate(d: &DropStmt) -> bool {
    if d.remove_type() == ObjectType::ObjectSchema {
        return d.objects.iter().filter_map(string_value).any(|s| s == TENANTGATE_SCHEMA);
    }
    d.objects.iter().filter_map(object_schema).any(|s| s == TENANTGATE_SCHEMA)
}

struct Linter<'a> {
    file: &'a str,
    /// Line of the statement being checked.
    line: usize,
    findings: Vec<Finding>,
    /// Primary-key columns of the tables this file declares, by table name.
    primary_keys: HashMap<String, Vec<String>>,
    /// Tables created without a primary key, with their line; resolved at the end
    /// because a later `ALTER TABLE ... ADD PRIMARY KEY` in the same file counts.
    missing_pk: Vec<(String, usize)>,
}

impl<'a> Linter<'a> {
    fn new(file: &'a str) -> Self {
        Linter { file, line: 1, findings: Vec::new(), primary_keys: HashMap::new(), missing_pk: Vec::new() }
    }

    fn finish(mut self) -> Vec<Finding> {
        for (table, line) in std::mem::take(&mut self.missing_pk) {
            if !self.primary_keys.contains_key(&table) {
                self.line = line;
                self.warn(
                    "no-primary-key",
                    format!("table \"{table}\" has no primary key"),
                    "add `PRIMARY KEY (tenant_id, id)` (leading with tenant_id, so the tenant's rows are found by index under row-level security)".to_string(),
                );
            }
        }
        self.findings.sort_by_key(|f| f.line);
        self.findings
    }

    fn report(&mut self, severity: Severity, rule: &'static str, message: String, fix: String) {
        self.findings.push(Finding { file: self.file.to_string(), line: self.line, severity, rule, message, fix });
    }

    fn error(&mut self, rule: &'static str, message: String, fix: String) {
        self.report(Severity::Error, rule, message, fix);
    }

    fn warn(&mut self, rule: &'static str, message: String, fix: String) {
        self.report(Severity::Warning, rule, message, fix);
    }

    fn statement(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateStmt(s) => self.create_table(s),
            NodeEnum::AlterTableStmt(s) => self.alter_table(s),
            NodeEnum::IndexStmt(s) => self.create_index(s),
            NodeEnum::ViewStmt(s) => self.create_view(s),
            NodeEnum::CreateTableAsStmt(s) => self.create_table_as(s),
            NodeEnum::SelectStmt(s) if s.into_clause.is_some() => self.create_table_as_select("SELECT ... INTO"),
            NodeEnum::CreateSeqStmt(s) => self.create_sequence(s.sequence.as_ref()),
            NodeEnum::CreateFunctionStmt(s) => self.create_function(s),
            NodeEnum::RenameStmt(s) if s.rename_type() == ObjectType::ObjectColumn => self.rename_column(s),
            NodeEnum::DoStmt(_) => self.warn(
                "unchecked-code",
                "a DO block runs statements the lint cannot see".to_string(),
                "write the DDL as plain statements so the lint can check them against the table contract".to_string(),
            ),
            other => {
                if let Some(f) = forbidden(other) {
                    self.forbidden(f);
                }
            }
        }
    }

    fn forbidden(&mut self, f: Forbidden) {
        let verdict = match f.severity {
            Severity::Error => "is not allowed",
            Severity::Warning => "should not be used",
        };
        let message = format!("{} {verdict} in app migrations: {}", f.what, f.why);
        self.report(f.severity, "forbidden-statement", message, f.fix.to_string());
    }

    /// Names that would escape the target schema the file is applied in.
    fn unqualified(&mut self, rel: &RangeVar, what: &str) {
        if rel.schemaname.is_empty() && rel.catalogname.is_empty() {
            return;
        }
        self.error(
            "schema-qualified-name",
            format!("{what} uses the schema-qualified name \"{}\"; {SEARCH_PATH_NOTE}, so a qualified name escapes the target", qualified(rel)),
            format!("write the name unqualified: `{}`", rel.relname),
        );
    }

    fn unlogged_or_temp(&mut self, rel: &RangeVar) {
        match rel.relpersistence.as_str() {
            "u" => self.not_durable(&rel.relname, "UNLOGGED"),
            "t" => self.not_durable(&rel.relname, "TEMP"),
            _ => {}
        }
    }

    fn not_durable(&mut self, table: &str, kind: &str) {
        self.warn(
            "unlogged-or-temp",
            format!("table \"{table}\" is {kind}: its rows are lost on a crash (unlogged) or at session end (temp), and the logical replication that moves tenants skips them"),
            "create a regular (logged, permanent) table".to_string(),
        );
    }

    // --- CREATE TABLE -----------------------------------------------------

    fn create_table(&mut self, s: &CreateStmt) {
        let Some(rel) = s.relation.as_ref() else { return };
        let table = rel.relname.as_str();
        self.unqualified(rel, &format!("CREATE TABLE \"{table}\""));
        self.unlogged_or_temp(rel);
        let is_partition = s.partbound.is_some();
        let has_like = s.table_elts.iter().any(|n| matches!(n.node, Some(NodeEnum::TableLikeClause(_))));
        let copies_columns = has_like || !s.inh_relations.is_empty() || s.of_typename.is_some();
        if copies_columns && !is_partition {
            self.warn(
                "unchecked-columns",
                format!("table \"{table}\" takes columns from LIKE, INHERITS or OF; the lint cannot check them against the table contract"),
                format!("write the columns out, starting with `{CONTRACT_COLUMN}`"),
            );
        }
        match column_defs(&s.table_elts).find(|c| c.colname == TENANT_ID) {
            Some(c) => self.tenant_id_shape(table, c),
            None if !copies_columns => self.error(
                "tenant-id-missing",
                format!("table \"{table}\" has no tenant_id column"),
                format!("add `{CONTRACT_COLUMN}`"),
            ),
            None => {}
        }
        for c in column_defs(&s.table_elts) {
            self.column(table, c);
        }
        for c in constraints(&s.table_elts) {
            self.table_constraint(table, c);
        }
        if !copies_columns && !self.primary_keys.contains_key(table) {
            self.missing_pk.push((table.to_string(), self.line));
        }
    }

    /// `tenant_id` must be exactly the contract column; one finding per wrong part.
    fn tenant_id_shape(&mut self, table: &str, c: &ColumnDef) {
        for problem in tenant_id_problems(c) {
            self.error(
                "tenant-id-shape",
                format!("tenant_id of table \"{table}\": {problem}"),
                format!("declare it exactly as `{CONTRACT_COLUMN}`"),
            );
        }
    }

    /// Serial/identity columns and column-level keys and references.
    fn column(&mut self, table: &str, c: &ColumnDef) {
        if is_serial(c.type_name.as_ref()) {
            self.serial_or_identity(&format!(
                "column \"{}\" of table \"{table}\" is {}",
                c.colname,
                type_names(c.type_name.as_ref()).join(".")
            ));
        }
        for con in constraints(&c.constraints) {
            match con.contype() {
                ConstrType::ConstrIdentity => self.serial_or_identity(&format!(
                    "column \"{}\" of table \"{table}\" is GENERATED ... AS IDENTITY",
                    c.colname
                )),
                ConstrType::ConstrPrimary | ConstrType::ConstrUnique => self.key(table, con, &[c.colname.as_str()]),
                ConstrType::ConstrForeign => self.foreign_key(table, con, Some(&c.colname)),
                _ => {}
            }
        }
    }

    fn serial_or_identity(&mut self, what: &str) {
        self.warn(
            "serial-or-identity",
            format!("{what}: in the pooled placement all tenants share one sequence, so ids leak other tenants' insert volume"),
            "use `uuid NOT NULL DEFAULT gen_random_uuid()` or ids generated by the app".to_string(),
        );
    }

    fn create_sequence(&mut self, rel: Option<&RangeVar>) {
        let Some(rel) = rel else { return };
        self.unqualified(rel, &format!("CREATE SEQUENCE \"{}\"", rel.relname));
        self.serial_or_identity(&format!("sequence \"{}\"", rel.relname));
    }

    fn table_constraint(&mut self, table: &str, con: &Constraint) {
        match con.contype() {
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique => self.key(table, con, &strings(&con.keys)),
            ConstrType::ConstrForeign => self.foreign_key(table, con, None),
            _ => {}
        }
    }

    /// PRIMARY KEY / UNIQUE must lead with tenant_id. `cols` is empty for
    /// `... USING INDEX`, whose index was checked where it was created.
    fn key(&mut self, table: &str, con: &Constraint, cols: &[&str]) {
        let primary = con.contype() == ConstrType::ConstrPrimary;
        if primary {
            self.primary_keys.insert(table.to_string(), cols.iter().map(ToString::to_string).collect());
        }
        if cols.is_empty() || cols.first() == Some(&TENANT_ID) {
            return;
        }
        let kind = if primary { "PRIMARY KEY" } else { "UNIQUE" };
        let name = if con.conname.is_empty() { String::new() } else { format!(" \"{}\"", con.conname) };
        self.error(
            "key-not-leading-tenant-id",
            format!(
                "{kind}{name} ({}) of table \"{table}\" does not lead with tenant_id: keys must be unique per tenant and serve the tenant's lookups under row-level security",
                list(cols)
            ),
            format!("declare it as the table constraint `{kind} ({})`", leading_tenant_id(cols)),
        );
    }

    /// Foreign keys carry tenant_id on both sides, at the same position.
    fn foreign_key(&mut self, table: &str, con: &Constraint, column: Option<&str>) {
        let Some(target) = con.pktable.as_ref() else { return };
        self.unqualified(target, &format!("a foreign key of table \"{table}\""));
        let local: Vec<&str> = match column {
            Some(c) => vec![c],
            None => strings(&con.fk_attrs),
        };
        let mut referenced: Vec<&str> = strings(&con.pk_attrs);
        if referenced.is_empty() {
            if let Some(pk) = self.primary_keys.get(&target.relname) {
                referenced = pk.iter().map(String::as_str).collect();
            }
        }
        if fk_carries_tenant_id(&local, &referenced) {
            return;
        }
        let shown = if referenced.is_empty() { String::new() } else { format!(" ({})", list(&referenced)) };
        let fix_referenced = if referenced.is_empty() {
            "tenant_id, <its key columns>".to_string()
        } else {
            leading_tenant_id(&referenced)
        };
        let form =
            format!("FOREIGN KEY ({}) REFERENCES {} ({fix_referenced})", leading_tenant_id(&local), target.relname);
        let fix = match column {
            Some(c) => format!("drop the column-level REFERENCES on \"{c}\" and add the table constraint `{form}`"),
            None => format!("`{form}`"),
        };
        self.error(
            "fk-without-tenant-id",
            format!(
                "foreign key ({}) of table \"{table}\" references \"{}\"{shown} without tenant_id on both sides, so a row could reference another tenant's row",
                list(&local),
                target.relname
            ),
            format!("{fix}; the referenced table needs a PRIMARY KEY or UNIQUE constraint on the same columns"),
        );
    }

    // --- ALTER TABLE ------------------------------------------------------

    fn alter_table(&mut self, s: &AlterTableStmt) {
        let Some(rel) = s.relation.as_ref() else { return };
        let table = rel.relname.as_str();
        self.unqualified(rel, &format!("ALTER of \"{table}\""));
        for cmd in s.cmds.iter().filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(c)) => Some(&**c),
            _ => None,
        }) {
            self.alter_cmd(table, cmd);
        }
    }

    fn alter_cmd(&mut self, table: &str, cmd: &AlterTableCmd) {
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        match (cmd.subtype(), def) {
            (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(c))) => {
                if c.colname == TENANT_ID {
                    self.tenant_id_shape(table, c);
                }
                self.column(table, c);
            }
            (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(c))) => self.table_constraint(table, c),
            (AlterTableType::AtDisableRowSecurity, _) => {
                self.forbidden(Forbidden::owned("ALTER TABLE ... DISABLE ROW LEVEL SECURITY"))
            }
            (AlterTableType::AtNoForceRowSecurity, _) => {
                self.forbidden(Forbidden::owned("ALTER TABLE ... NO FORCE ROW LEVEL SECURITY"))
            }
            (AlterTableType::AtChangeOwner, _) => self.forbidden(owner_change()),
            (AlterTableType::AtSetUnLogged, _) => self.not_durable(table, "UNLOGGED"),
            (AlterTableType::AtSetRelOptions, Some(NodeEnum::List(l))) if unsets_security_invoker(&l.items, false) => {
                self.view_not_invoker(table)
            }
            (AlterTableType::AtResetRelOptions, Some(NodeEnum::List(l))) if unsets_security_invoker(&l.items, true) => {
                self.view_not_invoker(table)
            }
            (sub, _) if cmd.name == TENANT_ID => {
                if let Some(how) = column_change(sub) {
                    self.tenant_id_altered(table, how);
                }
            }
            _ => {}
        }
    }

    fn tenant_id_altered(&mut self, table: &str, how: &str) {
        self.error(
            "tenant-id-altered",
            format!("the migration changes tenant_id of table \"{table}\" ({how}); the column is the tenant key that row-level security compares with the session's role"),
            format!("leave tenant_id as `{CONTRACT_COLUMN}`"),
        );
    }

    fn rename_column(&mut self, s: &RenameStmt) {
        if s.subname != TENANT_ID && s.newname != TENANT_ID {
            return;
        }
        let table = s.relation.as_ref().map_or("?", |r| r.relname.as_str());
        self.tenant_id_altered(table, &format!("RENAME COLUMN {} TO {}", s.subname, s.newname));
    }

    // --- Other statements -------------------------------------------------

    fn create_index(&mut self, s: &IndexStmt) {
        let Some(rel) = s.relation.as_ref() else { return };
        let table = rel.relname.as_str();
        self.unqualified(rel, &format!("CREATE INDEX on \"{table}\""));
        if !s.unique {
            return;
        }
        let cols: Vec<String> = s.index_params.iter().map(index_column).collect();
        if cols.first().map(String::as_str) == Some(TENANT_ID) {
            return;
        }
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        let (quoted, plain) = if s.idxname.is_empty() {
            (String::new(), String::new())
        } else {
            (format!(" \"{}\"", s.idxname), format!(" {}", s.idxname))
        };
        self.error(
            "key-not-leading-tenant-id",
            format!(
                "unique index{quoted} on \"{table}\" ({}) does not lead with tenant_id: uniqueness must be per tenant",
                list(&cols)
            ),
            format!("`CREATE UNIQUE INDEX{plain} ON {table} ({})`", leading_tenant_id(&cols)),
        );
    }

    fn create_view(&mut self, s: &ViewStmt) {
        let Some(rel) = s.view.as_ref() else { return };
        self.unqualified(rel, &format!("CREATE VIEW \"{}\"", rel.relname));
        let invoker =
            def_elems(&s.options).filter(|d| d.defname == "security_invoker").last().is_some_and(option_is_true);
        if !invoker {
            self.view_not_invoker(&rel.relname);
        }
    }

    fn view_not_invoker(&mut self, view: &str) {
        self.error(
            "view",
            format!("view \"{view}\" runs with its owner's privileges, which bypass row-level security: every tenant would see every tenant's rows through it"),
            format!("`CREATE VIEW {view} WITH (security_invoker = true) AS ...`"),
        );
    }

    fn create_table_as(&mut self, s: &CreateTableAsStmt) {
        let rel = s.into.as_ref().and_then(|i| i.rel.as_ref());
        if let Some(rel) = rel {
            self.unqualified(rel, &format!("\"{}\"", rel.relname));
        }
        if s.objtype() == ObjectType::ObjectMatview {
            let name = rel.map_or("?", |r| r.relname.as_str());
            self.error(
                "materialized-view",
                format!("materialized view \"{name}\" stores rows computed with its owner's privileges and cannot have row-level security, so it would serve every tenant's rows"),
                "use a view `WITH (security_invoker = true)`, or a regular table with the tenant_id contract filled by the app".to_string(),
            );
        } else {
            self.create_table_as_select("CREATE TABLE ... AS");
        }
    }

    fn create_table_as_select(&mut self, what: &str) {
        self.error(
            "create-table-as",
            format!(
                "{what} creates a table whose columns come from a query, so no tenant_id contract can be guaranteed"
            ),
            format!("CREATE TABLE with explicit columns, starting with `{CONTRACT_COLUMN}`, then INSERT ... SELECT"),
        );
    }

    fn create_function(&mut self, s: &CreateFunctionStmt) {
        if is_security_definer(&s.options) {
            self.forbidden(security_definer());
        }
        let names = strings(&s.funcname);
        match names.as_slice() {
            [schema, _, ..] if *schema == TENANTGATE_SCHEMA => {
                self.forbidden(tenantgate_schema("CREATE FUNCTION in schema tenantgate"))
            }
            [.., name] if names.len() > 1 => self.error(
                "schema-qualified-name",
                format!("CREATE FUNCTION uses the schema-qualified name \"{}\"; {SEARCH_PATH_NOTE}, so a qualified name escapes the target", names.join(".")),
                format!("write the name unqualified: `{name}`"),
            ),
            _ => {}
        }
    }
}

/// The parts of a `tenant_id` column definition that differ from the contract.
fn tenant_id_problems(c: &ColumnDef) -> Vec<String> {
    let mut problems = Vec::new();
    if !is_text(c.type_name.as_ref()) {
        problems.push(format!("type is {}, expected text", render_type(c.type_name.as_ref())));
    }
    let collation = c.coll_clause.as_ref().map(|cc| strings(&cc.collname)).unwrap_or_default();
    if !matches!(collation.as_slice(), ["C"] | ["pg_catalog", "C"]) {
        let found = if collation.is_empty() {
            "the database default".to_string()
        } else {
            format!("\"{}\"", collation.join("."))
        };
        problems.push(format!(
            "collation is {found}, expected COLLATE \"C\": the policy compares tenant_id with session_user::text, \
             which has collation \"C\"; a column of any other collation silently disables the (tenant_id, ...) index \
             under row-level security and turns every query into a sequential scan"
        ));
    }
    let cons: Vec<&Constraint> = constraints(&c.constraints).collect();
    let has = |t: ConstrType| cons.iter().any(|k| k.contype() == t);
    if !has(ConstrType::ConstrNotnull) || has(ConstrType::ConstrNull) {
        problems.push("NOT NULL is missing: every row must belong to a tenant".to_string());
    }
    match cons.iter().find(|k| k.contype() == ConstrType::ConstrDefault) {
        None => problems
            .push("DEFAULT tenantgate.current_tenant() is missing: inserts by tenant roles must fill it".to_string()),
        Some(d) if !is_current_tenant_call(d.raw_expr.as_deref()) => {
            problems.push("the DEFAULT is not tenantgate.current_tenant()".to_string())
        }
        Some(_) => {}
    }
    if has(ConstrType::ConstrGenerated) || has(ConstrType::ConstrIdentity) {
        problems.push("it must not be a GENERATED column".to_string());
    }
    problems
}

fn is_text(tn: Option<&TypeName>) -> bool {
    let Some(t) = tn else { return false };
    let plain = t.typmods.is_empty() && t.array_bounds.is_empty() && !t.setof && !t.pct_type;
    plain && matches!(strings(&t.names).as_slice(), ["text"] | ["pg_catalog", "text"])
}

fn render_type(tn: Option<&TypeName>) -> String {
    let Some(t) = tn else { return "missing".to_string() };
    let names: Vec<&str> = strings(&t.names).into_iter().filter(|n| *n != "pg_catalog").collect();
    let array = if t.array_bounds.is_empty() { "" } else { "[]" };
    format!("{}{array}", names.join("."))
}

fn is_current_tenant_call(expr: Option<&Node>) -> bool {
    match expr.and_then(|e| e.node.as_ref()) {
        Some(NodeEnum::FuncCall(f)) => {
            f.args.is_empty() && strings(&f.funcname).as_slice() == [TENANTGATE_SCHEMA, "current_tenant"]
        }
        _ => false,
    }
}

/// `SET (security_invoker = false)` (or `RESET (security_invoker)` when `reset`).
fn unsets_security_invoker(options: &[Node], reset: bool) -> bool {
    def_elems(options).any(|d| d.defname == "security_invoker" && (reset || !option_is_true(d)))
}

/// How an ALTER TABLE subcommand changes the column it names, if it does.
fn column_change(sub: AlterTableType) -> Option<&'static str> {
    use AlterTableType as A;
    let how = match sub {
        A::AtDropColumn => "DROP COLUMN",
        A::AtAlterColumnType => "ALTER COLUMN ... TYPE",
        A::AtColumnDefault => "ALTER COLUMN ... SET/DROP DEFAULT",
        A::AtDropNotNull => "ALTER COLUMN ... DROP NOT NULL",
        A::AtSetNotNull => "ALTER COLUMN ... SET NOT NULL",
        A::AtSetExpression | A::AtDropExpression => "ALTER COLUMN ... generation expression",
        A::AtAddIdentity | A::AtSetIdentity | A::AtDropIdentity => "ALTER COLUMN ... IDENTITY",
        A::AtSetStatistics | A::AtSetOptions | A::AtResetOptions | A::AtSetStorage | A::AtSetCompression => {
            "ALTER COLUMN ... SET/RESET"
        }
        A::AtAlterColumnGenericOptions => "ALTER COLUMN ... OPTIONS",
        _ => return None,
    };
    Some(how)
}

fn index_column(n: &Node) -> String {
    match n.node.as_ref() {
        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => e.name.clone(),
        _ => "<expression>".to_string(),
    }
}

fn fk_carries_tenant_id(local: &[&str], referenced: &[&str]) -> bool {
    let at = |cols: &[&str]| cols.iter().position(|c| *c == TENANT_ID);
    if referenced.is_empty() {
        // REFERENCES t without columns: t's primary key, which leads with tenant_id.
        return at(local) == Some(0);
    }
    local.len() == referenced.len() && at(local).is_some() && at(local) == at(referenced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivia_is_skipped_to_the_statement_keyword() {
        let sql = "SELECT 1;\n  -- note\n/* a /* nested */ comment */\n\n  CREATE TABLE t ();";
        let start = sql.find(';').map(|p| p + 1).unwrap_or_default();
        assert_eq!(&sql[skip_trivia(sql.as_bytes(), start)..], "CREATE TABLE t ();");
        assert_eq!(statement_line(sql, i32::try_from(start).unwrap_or_default()), 5);
        assert_eq!(skip_trivia(b"-- only", 0), 7);
        assert_eq!(skip_trivia(b"/* open", 0), 7);
        assert_eq!(statement_line("", -1), 1);
    }

    #[test]
    fn lines_count_bytes_not_chars() {
        let sql = "-- é ☕\nSELECT 1;";
        assert_eq!(line_at(sql, sql.find("SELECT").unwrap_or_default()), 2);
        assert_eq!(line_at(sql, usize::MAX), 2);
        assert_eq!(last_line("a\nb\n\n  \n"), 2);
    }

    #[test]
    fn failing_token_is_found_by_prefix_search() {
        let sql = "SELECT 1;\nSELECT 2;\nSELECT FROM WHERE;";
        assert_eq!(error_offset(sql, ""), sql.find("WHERE"));
        assert_eq!(error_offset("SELECT (1", ""), Some(8), "at end of input: the last token");
        let unterminated = "SELECT 1;\nSELECT $$abc";
        let message = "unterminated dollar-quoted string at or near \"$$abc\"";
        assert_eq!(error_offset(unterminated, message), unterminated.find("$$"));
        assert_eq!(near_text_offset("x", "syntax error"), None);
        assert_eq!(near_text_offset("x", "at or near \""), None);
    }

    #[test]
    fn foreign_keys_pair_tenant_id_with_tenant_id() {
        assert!(fk_carries_tenant_id(&["tenant_id", "a"], &["tenant_id", "id"]));
        assert!(fk_carries_tenant_id(&["a", "tenant_id"], &["id", "tenant_id"]));
        assert!(fk_carries_tenant_id(&["tenant_id", "a"], &[]));
        assert!(!fk_carries_tenant_id(&["a", "tenant_id"], &[]));
        assert!(!fk_carries_tenant_id(&["tenant_id", "a"], &["id", "tenant_id"]));
        assert!(!fk_carries_tenant_id(&["a"], &["id"]));
        assert!(!fk_carries_tenant_id(&["tenant_id"], &["tenant_id", "id"]));
    }

    #[test]
    fn keys_are_rewritten_to_lead_with_tenant_id() {
        assert_eq!(leading_tenant_id(&["id"]), "tenant_id, id");
        assert_eq!(leading_tenant_id(&["a", "tenant_id", "b"]), "tenant_id, a, b");
        assert_eq!(leading_tenant_id(&[]), "tenant_id");
    }
}
