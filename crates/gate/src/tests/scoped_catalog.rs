//! The tenant-scoped catalog's rewrite (`scoped`): what it maps, what it refuses, and that the
//! SQL it produces reads only the scoped catalog, judged by pg_query's own helpers rather than
//! the gate's walker.

use super::{allowed, denied, gate};
use crate::scoped::{FUNCTIONS, RELATIONS};
use crate::{Gate, GateConfig, Limits, Scope};

/// Every relation and function name pg_query itself finds in `sql`.
fn names(sql: &str) -> (Vec<String>, Vec<String>) {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).expect("parses");
    (parsed.tables(), parsed.functions())
}

/// `sql` reads no stock catalog relation or function the scoped catalog stands in for.
#[track_caller]
fn reads_only_the_scoped_catalog(sql: &str) {
    let (tables, functions) = names(sql);
    for t in tables {
        let (schema, name) = t.rsplit_once('.').map_or(("", t.as_str()), |(s, n)| (s, n));
        assert!(
            !(RELATIONS.contains(&name) && schema != "tg_catalog"),
            "{t} is read from the stock catalog in {sql}"
        );
    }
    for f in functions {
        let (schema, name) = f.rsplit_once('.').map_or(("", f.as_str()), |(s, n)| (s, n));
        assert!(
            !(FUNCTIONS.contains(&name) && schema != "tg_catalog"),
            "{f} is called from the stock catalog in {sql}"
        );
    }
}

#[track_caller]
fn rewritten(sql: &str) -> String {
    let text = allowed(sql).rewritten.unwrap_or_else(|| panic!("{sql} was not rewritten")).to_string();
    reads_only_the_scoped_catalog(&text);
    text
}

#[test]
fn psql_describe_commands_are_rewritten_and_read_only_the_scoped_catalog() {
    let corpus = include_str!("psql15_describe.sql");
    let mut n = 0;
    for sql in corpus.split("\n-- next\n").map(str::trim).filter(|s| !s.is_empty()) {
        let sql: String = sql.lines().skip_while(|l| l.starts_with("--")).collect::<Vec<_>>().join("\n");
        let sql = sql.as_str();
        // Statements psql sends that touch no catalog (none in this corpus) pass unchanged.
        let text = rewritten(sql);
        // Only identifiers changed: the same relations and functions, by name.
        let (before, after) = (names(sql), names(&text));
        let last = |v: &Vec<String>| v.iter().map(|n| n.rsplit('.').next().unwrap_or("").to_owned()).collect::<Vec<_>>();
        let (mut b, mut a) = (last(&before.0), last(&after.0));
        b.sort();
        a.sort();
        assert_eq!(b, a, "{sql}");
        n += 1;
    }
    assert!(n >= 20, "the corpus holds psql's describe queries ({n})");
}

#[test]
fn qualified_quoted_and_commented_names_are_all_mapped() {
    assert_eq!(rewritten("SELECT * FROM \"pg_catalog\".\"pg_class\""), "SELECT * FROM tg_catalog.\"pg_class\"");
    assert_eq!(rewritten("SELECT * FROM \"pg_class\""), "SELECT * FROM tg_catalog.\"pg_class\"");
    assert_eq!(rewritten("SELECT * FROM PG_CATALOG . PG_CLASS"), "SELECT * FROM tg_catalog . PG_CLASS");
    assert_eq!(rewritten("SELECT * FROM pg_catalog/* x */./* y */pg_roles"), "SELECT * FROM tg_catalog/* x */./* y */pg_roles");
    assert_eq!(
        rewritten("SELECT 'pg_class', \"pg_class\".relname FROM pg_class -- pg_class\n"),
        "SELECT 'pg_class', \"pg_class\".relname FROM tg_catalog.pg_class -- pg_class\n"
    );
    // SQLAlchemy names columns through the schema-qualified table.
    assert_eq!(
        rewritten("SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace"),
        "SELECT tg_catalog.pg_class.relname FROM tg_catalog.pg_class JOIN tg_catalog.pg_namespace ON tg_catalog.pg_namespace.oid = tg_catalog.pg_class.relnamespace"
    );
    // Several statements: offsets are the whole string's.
    assert_eq!(rewritten("SELECT 1; SELECT oid FROM pg_roles; SELECT format_type(23, NULL)"), "SELECT 1; SELECT oid FROM tg_catalog.pg_roles; SELECT tg_catalog.format_type(23, NULL)");
    // Extended protocol parameters stay where they are.
    assert_eq!(rewritten("SELECT relname FROM pg_class WHERE oid = $1"), "SELECT relname FROM tg_catalog.pg_class WHERE oid = $1");
    // A Unicode-escaped relation name behind a plain schema name: the schema is what changes.
    assert_eq!(rewritten("SELECT * FROM pg_catalog.U&\"pg\\005froles\""), "SELECT * FROM tg_catalog.U&\"pg\\005froles\"");
    // Already scoped: allowed as written.
    assert_eq!(allowed("SELECT * FROM tg_catalog.pg_class").rewritten, None);
    assert_eq!(allowed("SELECT tg_catalog.visible_class(oid)::regclass FROM tg_catalog.pg_class").rewritten, None);
}

#[test]
fn reg_casts_of_columns_are_guarded() {
    assert_eq!(
        rewritten("SELECT c.oid::pg_catalog.regclass, c.reloftype::pg_catalog.regtype::pg_catalog.text FROM pg_catalog.pg_class c"),
        "SELECT tg_catalog.visible_class(c.oid)::pg_catalog.regclass, tg_catalog.visible_type(c.reloftype)::pg_catalog.regtype::pg_catalog.text FROM tg_catalog.pg_class c"
    );
    assert_eq!(
        rewritten("SELECT g::regrole FROM generate_series(1, 20000) g"),
        "SELECT tg_catalog.visible_role(g)::regrole FROM generate_series(1, 20000) g"
    );
    assert_eq!(
        rewritten("SELECT pg_catalog.pg_class.oid::regclass FROM pg_catalog.pg_class"),
        "SELECT tg_catalog.visible_class(tg_catalog.pg_class.oid)::regclass FROM tg_catalog.pg_class"
    );
    assert_eq!(rewritten("SELECT CAST(x.y AS regnamespace) FROM (SELECT 11::oid AS y) x"), "SELECT CAST(tg_catalog.visible_namespace(x.y) AS regnamespace) FROM (SELECT 11::oid AS y) x");
}

#[test]
fn what_the_rewrite_cannot_map_is_refused_not_passed() {
    for sql in [
        // A CTE that shadows a catalog name would read the scoped view instead.
        "WITH pg_class AS (SELECT 1 AS relname) SELECT relname FROM pg_class",
        // A database-qualified name.
        "SELECT * FROM tg_bridge.pg_catalog.pg_class",
        "SELECT tg_bridge.pg_catalog.pg_class.relname FROM tg_catalog.pg_class",
        // Unicode-escaped identifiers name the same relation through another token.
        "SELECT * FROM U&\"pg_class\"",
        "SELECT * FROM U&\"pg\\005fclass\"",
        // A cast whose value is not a bare column, function call or OID constant.
        "SELECT (c.oid)::regclass FROM tg_catalog.pg_class c",
        "SELECT (c.oid + 0)::regclass FROM tg_catalog.pg_class c",
        "SELECT (SELECT max(oid) FROM tg_catalog.pg_class)::regclass",
        "SELECT (lower('16384'))::regclass",
        // A cast of a cast: only of a guarded type to a guarded type.
        "SELECT 16384::oid::regclass",
        "SELECT '16384'::text::regnamespace",
        "SELECT c.oid::regclass::oid::regclass FROM tg_catalog.pg_class c",
        // Function-like syntax the parser names differently from the text: not wrapped.
        "SELECT EXTRACT(year FROM now())::regclass",
    ] {
        let d = gate().check("t", sql, Scope::ReadWrite, &Limits::default());
        match d {
            Err(d) => assert!(["catalog-rewrite", "catalog-enumeration"].contains(&d.rule), "{sql}: {d:?}"),
            Ok(v) => panic!("{sql} passed: {v:?}"),
        }
    }
    denied("WITH pg_roles AS (SELECT 1) SELECT * FROM pg_roles", "catalog-rewrite");
}

#[test]
fn without_strict_mode_nothing_is_rewritten() {
    let gate = Gate::new(GateConfig { strict_catalog: false, ..GateConfig::default() });
    for sql in ["SELECT * FROM pg_class", "SELECT c.oid::regclass FROM pg_catalog.pg_class c", "SELECT format_type(23, NULL)"] {
        let v = gate.check("t", sql, Scope::ReadWrite, &Limits::default());
        assert_eq!(v.map(|v| v.rewritten), Ok(None), "{sql}");
    }
}

#[test]
fn rewritten_statements_keep_every_other_rule() {
    denied("SELECT pg_read_file('x') FROM pg_class", "dangerous-function");
    denied("SELECT relname FROM pg_class; SELECT * FROM pg_authid", "catalog-enumeration");
    let ro = gate().check("t", "DELETE FROM pg_class", Scope::ReadOnly, &Limits::default());
    assert_eq!(ro.map_err(|d| d.rule), Err("read-only"));
    let v = allowed("SELECT relname FROM pg_class");
    assert!(v.read_only && v.statements == 1);
}

/// Every name the gate maps has its stand-in in the installer script, and every guard it
/// wraps a cast in is defined there, for `oid` and `text` alike: a name without one would
/// fail at run time instead of reading the scoped catalog.
#[test]
fn every_mapped_name_has_a_stand_in_in_the_installer() {
    let sql = crate::scoped::INSTALL_SQL;
    for r in RELATIONS {
        assert!(sql.contains(&format!("CREATE VIEW tg_catalog.{r} ")), "no view tg_catalog.{r}");
    }
    for f in FUNCTIONS {
        assert!(sql.contains(&format!("CREATE FUNCTION tg_catalog.{f}(")), "no function tg_catalog.{f}");
    }
    for guard in ["visible_class", "visible_type", "visible_proc", "visible_procedure", "visible_namespace", "visible_role"] {
        for arg in ["oid", "text"] {
            assert!(sql.contains(&format!("CREATE FUNCTION tg_catalog.{guard}({arg})")), "no guard {guard}({arg})");
        }
    }
}
