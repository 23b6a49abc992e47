//! The tenant-scoped catalog: which catalog names the gate maps onto schema `tg_catalog`, and
//! the token-exact rewrite that does it.
//!
//! In strict catalog mode a tenant that reads `pg_class`, `pg_roles`, `pg_database`,
//! `pg_stat_activity`, … (unqualified or `pg_catalog.`-qualified), or calls `format_type()`,
//! `pg_get_indexdef()`, `pg_get_userbyid()`, …, gets the filtered view or wrapper of the same
//! name in `tg_catalog` (see `sql/tg_catalog.sql`, installed by the control plane in every
//! tenant-facing database), which shows only what the session may use. A value cast to
//! `regclass`, `regtype`, `regproc`, `regprocedure`, `regnamespace` or `regrole` from a column
//! (`c.oid::regclass`, as psql writes), a function's result (`CAST(pg_get_serial_sequence(…) AS
//! regclass)`, as SQLAlchemy writes), a parameter (`CAST($1 AS regclass)`) or an OID constant (`'16384'::regclass`) is guarded the same
//! way: `tg_catalog.visible_class(c.oid)::regclass` prints NULL for an object the session may
//! not see. Each guard has an `oid` and a `text` form (a name, resolved as the cast would).
//! A cast of any other expression to those types is refused.
//!
//! How the rewrite stays sound:
//! - edits are planned from the parse tree's own locations, and each one is checked against
//!   PostgreSQL's scanner (`pg_query::scan`) before it is applied: the token at the location
//!   must be the identifier the tree names. Anything else fails closed, as a denial;
//! - the result is parsed and checked again, in full, by the caller (`analyze`): it must need no
//!   further edit, and every rule applies to it. What runs is what the gate checked.
//!
//! What this module must never do: change anything but identifiers it located (a schema name
//! inserted or replaced, a guard call wrapped around a column reference), or touch SQL when
//! strict catalog mode is off.

use pg_query::protobuf::Token;

use crate::walk::{Column, Facts};
use crate::Denial;

/// The schema holding the scoped catalog.
pub(crate) const SCHEMA: &str = "tg_catalog";

/// The installer script for [`SCHEMA`] (run by the control plane, as a superuser, in one
/// transaction). [`VERSION`] goes into the schema's comment; a different comment means the
/// schema is dropped and installed again.
pub const INSTALL_SQL: &str = include_str!("../sql/tg_catalog.sql");

/// Bumped whenever `INSTALL_SQL` or the lists below change.
pub const VERSION: u32 = 3;

/// Catalog relations with a filtered view of the same name and columns in [`SCHEMA`].
pub(crate) const RELATIONS: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_type",
    "pg_proc",
    "pg_constraint",
    "pg_statistic_ext",
    "pg_attribute",
    "pg_attrdef",
    "pg_index",
    "pg_inherits",
    "pg_trigger",
    "pg_rewrite",
    "pg_sequence",
    "pg_partitioned_table",
    "pg_policy",
    "pg_enum",
    "pg_range",
    "pg_description",
    "pg_depend",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_tables",
    "pg_views",
    "pg_matviews",
    "pg_indexes",
    "pg_sequences",
    "pg_policies",
    "pg_database",
    "pg_roles",
    "pg_user",
    "pg_group",
    "pg_auth_members",
    "pg_tablespace",
    "pg_shdescription",
    "pg_stat_activity",
];

/// Catalog functions with a wrapper of the same name and signatures in [`SCHEMA`].
pub(crate) const FUNCTIONS: &[&str] = &[
    "format_type",
    "pg_get_expr",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_get_viewdef",
    "pg_get_triggerdef",
    "pg_get_ruledef",
    "pg_get_functiondef",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_get_function_result",
    "pg_get_function_arg_default",
    "pg_get_partkeydef",
    "pg_get_statisticsobjdef",
    "pg_get_statisticsobjdef_columns",
    "pg_get_statisticsobjdef_expressions",
    "pg_get_userbyid",
    "obj_description",
    "col_description",
    "shobj_description",
    "pg_describe_object",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
    "to_regclass",
    "to_regtype",
    "to_regproc",
    "to_regprocedure",
    "to_regnamespace",
    "to_regrole",
    "pg_partition_tree",
    "pg_partition_ancestors",
    "pg_partition_root",
    "pg_get_replica_identity_index",
    "pg_get_partition_constraintdef",
    "pg_get_function_sqlbody",
];

/// `reg*` types whose cast from a column is guarded, and the guard function in [`SCHEMA`].
const CAST_GUARDS: &[(&str, &str)] = &[
    ("regclass", "visible_class"),
    ("regtype", "visible_type"),
    ("regproc", "visible_proc"),
    ("regprocedure", "visible_procedure"),
    ("regnamespace", "visible_namespace"),
    ("regrole", "visible_role"),
];

/// How a (relation or function) name relates to the scoped catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    /// Not a name the scoped catalog stands in for: the usual rules apply.
    Other,
    /// Already in [`SCHEMA`]: allowed as it is.
    Scoped,
    /// A stand-in exists: rewrite it.
    Substitute,
}

/// `schema` (empty when unqualified) and `name` of a relation reference.
pub(crate) fn relation(catalog: &str, schema: &str, name: &str) -> Name {
    classify(catalog, schema, RELATIONS.contains(&name))
}

/// A function call's name parts.
pub(crate) fn function(parts: &[String]) -> Name {
    match parts {
        [name] => classify("", "", FUNCTIONS.contains(&name.as_str())),
        [schema, name] => classify("", schema, FUNCTIONS.contains(&name.as_str())),
        _ => Name::Other,
    }
}

fn classify(catalog: &str, schema: &str, listed: bool) -> Name {
    match (catalog, schema) {
        ("", SCHEMA) => Name::Scoped,
        ("", "" | "pg_catalog") if listed => Name::Substitute,
        _ => Name::Other,
    }
}

/// The guard for a cast to `type_name` (its name parts), if the scoped catalog has one.
pub(crate) fn cast_guard(type_name: &[String]) -> Option<&'static str> {
    let last = match type_name {
        [name] => name,
        [schema, name] if schema == "pg_catalog" => name,
        _ => return None,
    };
    let lower = last.to_ascii_lowercase();
    CAST_GUARDS.iter().find(|(t, _)| *t == lower).map(|(_, guard)| *guard)
}

/// Whether a call's name is the guard `guard` of [`SCHEMA`] (the rewritten form of a cast).
pub(crate) fn is_guard_call(parts: &[String], guard: &str) -> bool {
    matches!(parts, [schema, name] if schema == SCHEMA && name == guard)
}

/// One planned change to the SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Put `tg_catalog.` before the identifier `name` that starts at `at`.
    Qualify { at: i32, name: String },
    /// The identifier starting at `at` must be `pg_catalog`: make it `tg_catalog`.
    Reschema { at: i32 },
    /// Wrap the column reference starting at `column.location`, and followed by the cast
    /// starting at `cast_at`, in a call of `guard`.
    Guard { column: Column, cast_at: i32, guard: &'static str },
    /// Wrap the function call named `name` starting at `at` (through its closing parenthesis),
    /// followed by the cast starting at `cast_at`, in a call of `guard`
    /// (`CAST(pg_get_serial_sequence(…) AS regclass)`, as SQLAlchemy writes).
    GuardCall { at: i32, name: Vec<String>, cast_at: i32, guard: &'static str },
    /// Wrap the numeric constant (one token) starting at `at`, followed by the cast starting
    /// at `cast_at`, in a call of `guard`, as an `oid` (`'16384'::regclass`, as psql writes).
    GuardConstant { at: i32, cast_at: i32, guard: &'static str },
    /// Wrap the parameter (`$n`, one token) starting at `at`, followed by the cast starting at
    /// `cast_at`, in a call of `guard` (`CAST($1 AS regclass)`, as SQLAlchemy writes): its
    /// value is bound later, so it is checked when the statement runs.
    GuardParam { at: i32, cast_at: i32, guard: &'static str },
}

/// Whether a constant cast to a guarded type is an OID (digits), which the guard must check;
/// a name (`'orders'::regclass`) is resolved by the server in the session's own search path.
pub(crate) fn is_oid_constant(arg_is_constant: bool, arg_string: Option<&str>) -> bool {
    arg_is_constant && arg_string.is_none_or(|v| !v.trim().is_empty() && v.trim().bytes().all(|b| b.is_ascii_digit()))
}

/// The edit for a column reference that names a scoped relation through `pg_catalog`
/// (`pg_catalog.pg_class.relname`, as SQLAlchemy writes), if it needs one.
pub(crate) fn column_edit(column: &Column) -> Result<Option<Edit>, Denial> {
    match column.fields.as_slice() {
        [schema, table, _] if schema == "pg_catalog" && RELATIONS.contains(&table.as_str()) => {
            Ok(Some(Edit::Reschema { at: column.location }))
        }
        [_, schema, table, _] if schema == "pg_catalog" && RELATIONS.contains(&table.as_str()) => Err(refused(
            "a column named through a database-qualified catalog relation",
        )),
        _ => Ok(None),
    }
}

/// The denial for a catalog reference the rewrite cannot map.
pub(crate) fn refused(what: &str) -> Denial {
    Denial::policy(
        "catalog-rewrite",
        format_args!("{what}"),
        "the gate could not map it onto the tenant-scoped catalog; write catalog names plainly \
         (pg_class or pg_catalog.pg_class, c.oid::regclass), without a database name, quoting or a CTE of the same name",
    )
}

/// Applies `edits` (from one statement string's facts) to `sql`, checking each against the
/// scanner's tokens; fails closed on any mismatch.
pub(crate) fn apply(sql: &str, edits: &[Edit]) -> Result<String, Denial> {
    let scanned = pg_query::scan(sql).map_err(|_| refused("a catalog reference"))?;
    let tokens: Vec<(usize, usize, Token)> = scanned
        .tokens
        .iter()
        .map(|t| (t.start as usize, t.end as usize, Token::try_from(t.token).unwrap_or(Token::Nul)))
        .collect();
    // Each change is (start, end, rank, replacement) over byte offsets of `sql`. Where two
    // insertions meet, a guard's opening (rank 0) goes first: `tg_catalog.visible_class(`
    // then `tg_catalog.` of a function it wraps.
    let mut changes: Vec<(usize, usize, u8, String)> = Vec::with_capacity(edits.len() * 2);
    for edit in edits {
        match edit {
            Edit::Qualify { at, name } => {
                let i = ident_at(sql, &tokens, *at, name)?;
                changes.push((tokens[i].0, tokens[i].0, 1, format!("{SCHEMA}.")));
            }
            Edit::Reschema { at } => {
                let i = ident_at(sql, &tokens, *at, "pg_catalog")?;
                changes.push((tokens[i].0, tokens[i].1, 1, SCHEMA.to_owned()));
            }
            Edit::GuardConstant { at, cast_at, guard } => {
                let bad = || refused("a cast of a constant");
                let start = usize::try_from(*at).map_err(|_| bad())?;
                let i = tokens.binary_search_by_key(&start, |t| t.0).map_err(|_| bad())?;
                if !matches!(tokens[i].2, Token::Sconst | Token::Iconst) || !cast_follows(&tokens, i, *cast_at) {
                    return Err(bad());
                }
                changes.push((start, start, 0, format!("{SCHEMA}.{guard}(")));
                changes.push((tokens[i].1, tokens[i].1, 1, "::pg_catalog.oid)".to_owned()));
            }
            Edit::GuardParam { at, cast_at, guard } => {
                let bad = || refused("a cast of a parameter");
                let start = usize::try_from(*at).map_err(|_| bad())?;
                let i = tokens.binary_search_by_key(&start, |t| t.0).map_err(|_| bad())?;
                if tokens[i].2 != Token::Param || !cast_follows(&tokens, i, *cast_at) {
                    return Err(bad());
                }
                changes.push((start, start, 0, format!("{SCHEMA}.{guard}(")));
                changes.push((tokens[i].1, tokens[i].1, 1, ")".to_owned()));
            }
            Edit::GuardCall { at, name, cast_at, guard } => {
                let bad = || refused("a cast of a function's result");
                let first = name.first().ok_or_else(bad)?;
                let mut i = ident_at(sql, &tokens, *at, first)?;
                let start = tokens[i].0;
                for part in &name[1..] {
                    let (Some(dot), Some(next)) = (tokens.get(i + 1), tokens.get(i + 2)) else {
                        return Err(bad());
                    };
                    if dot.2 != Token::Ascii46 {
                        return Err(bad());
                    }
                    i = ident_at(sql, &tokens, next.0 as i32, part)?;
                }
                let close = closing_paren(&tokens, i + 1).ok_or_else(bad)?;
                if !cast_follows(&tokens, close, *cast_at) {
                    return Err(bad());
                }
                changes.push((start, start, 0, format!("{SCHEMA}.{guard}(")));
                changes.push((tokens[close].1, tokens[close].1, 1, ")".to_owned()));
            }
            Edit::Guard { column, cast_at, guard } => {
                let first = column.fields.first().ok_or_else(|| refused("a cast of a column"))?;
                let mut i = ident_at(sql, &tokens, column.location, first)?;
                for field in &column.fields[1..] {
                    let (Some(dot), Some(part)) = (tokens.get(i + 1), tokens.get(i + 2)) else {
                        return Err(refused("a cast of a column"));
                    };
                    if dot.2 != Token::Ascii46 {
                        return Err(refused("a cast of a column"));
                    }
                    i = ident_at(sql, &tokens, part.0 as i32, field)?;
                }
                let end = tokens[i].1;
                if !cast_follows(&tokens, i, *cast_at) {
                    return Err(refused("a cast of a column"));
                }
                changes.push((column.location as usize, column.location as usize, 0, format!("{SCHEMA}.{guard}(")));
                changes.push((end, end, 1, ")".to_owned()));
            }
        }
    }
    changes.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut out = String::with_capacity(sql.len() + changes.len() * 12);
    let mut at = 0;
    for (start, end, _, text) in &changes {
        if *start < at || !sql.is_char_boundary(*start) || !sql.is_char_boundary(*end) {
            return Err(refused("overlapping catalog references"));
        }
        out.push_str(&sql[at..*start]);
        out.push_str(text);
        at = *end;
    }
    out.push_str(&sql[at..]);
    Ok(out)
}

/// The index of the `)` closing the `(` at token `open`, if `open` is one.
fn closing_paren(tokens: &[(usize, usize, Token)], open: usize) -> Option<usize> {
    if tokens.get(open)?.2 != Token::Ascii40 {
        return None;
    }
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.2 {
            Token::Ascii40 => depth += 1,
            Token::Ascii41 => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether the token after `i` is the cast itself: the `::` at the cast's location, or the
/// `AS` of `CAST(x AS t)`.
fn cast_follows(tokens: &[(usize, usize, Token)], i: usize, cast_at: i32) -> bool {
    match tokens.get(i + 1) {
        Some((start, _, Token::Typecast)) => *start as i32 == cast_at,
        Some((_, _, Token::As)) => true,
        _ => false,
    }
}

/// The index of the token that starts at byte `at` and is the identifier `name` (plain, folded
/// to lower case as the parser does, or double-quoted).
fn ident_at(sql: &str, tokens: &[(usize, usize, Token)], at: i32, name: &str) -> Result<usize, Denial> {
    let bad = || refused("a catalog reference");
    let at = usize::try_from(at).map_err(|_| bad())?;
    let i = tokens.binary_search_by_key(&at, |t| t.0).map_err(|_| bad())?;
    let (start, end, token) = tokens[i];
    if token != Token::Ident {
        return Err(bad());
    }
    let text = sql.get(start..end).ok_or_else(bad)?;
    let value = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None if text.is_ascii() => text.to_ascii_lowercase(),
        None => return Err(bad()),
    };
    if value == name {
        Ok(i)
    } else {
        Err(bad())
    }
}

/// Plans the edits one statement needs; the names that need none are left to the rules.
pub(crate) fn plan(facts: &Facts, edits: &mut Vec<Edit>) -> Result<(), Denial> {
    for r in &facts.relations {
        if relation(&r.catalog, &r.schema, &r.name) == Name::Substitute {
            if facts.ctes.iter().any(|c| c == &r.name) {
                return Err(refused(&format!("a CTE named {}", r.name)));
            }
            edits.push(if r.schema.is_empty() {
                Edit::Qualify { at: r.location, name: r.name.clone() }
            } else {
                Edit::Reschema { at: r.location }
            });
        } else if !r.catalog.is_empty() && RELATIONS.contains(&r.name.as_str()) {
            return Err(refused(&format!("reading {}.{}.{}", r.catalog, r.schema, r.name)));
        }
    }
    for call in &facts.functions {
        if function(&call.name) == Name::Substitute {
            edits.push(match call.name.as_slice() {
                [name] => Edit::Qualify { at: call.location, name: name.clone() },
                _ => Edit::Reschema { at: call.location },
            });
        }
    }
    for column in &facts.columns {
        if let Some(edit) = column_edit(column)? {
            edits.push(edit);
        }
    }
    for cast in &facts.casts {
        let (Some(guard), false) = (cast_guard(&cast.type_name), cast.array) else {
            continue;
        };
        if let Some(call) = cast.arg_call.and_then(|f| facts.functions.get(f)) {
            // Already guarded (the rewritten text) needs nothing more.
            if !is_guard_call(&call.name, guard) {
                edits.push(Edit::GuardCall { at: call.location, name: call.name.clone(), cast_at: cast.location, guard });
            }
        } else if let Some(column) = cast.arg_column.and_then(|col| facts.columns.get(col)) {
            edits.push(Edit::Guard { column: column.clone(), cast_at: cast.location, guard });
        } else if cast.arg_param_location >= 0 {
            edits.push(Edit::GuardParam { at: cast.arg_param_location, cast_at: cast.location, guard });
        } else if is_oid_constant(cast.arg_is_constant, cast.arg_string.as_deref()) {
            edits.push(Edit::GuardConstant { at: cast.arg_const_location, cast_at: cast.location, guard });
        }
    }
    Ok(())
}
