//! The migration lint against the table contract (DESIGN I3), through its public API.

use std::path::{Path, PathBuf};

use tg_control::migrate::lint::{has_errors, lint_sql, Finding, Severity};

const TENANT_ID: &str = r#"tenant_id text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant()"#;

fn lint(sql: &str) -> Vec<Finding> {
    lint_sql("test.sql", sql)
}

/// A table with the contract column, a valid primary key and `extra` appended.
fn table(name: &str, extra: &str) -> String {
    format!("CREATE TABLE {name} (\n  {TENANT_ID},\n  id uuid NOT NULL DEFAULT gen_random_uuid(),\n  PRIMARY KEY (tenant_id, id){extra}\n);\n")
}

fn rules(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule).collect()
}

fn only(findings: &[Finding], rule: &str) -> Finding {
    let hits: Vec<&Finding> = findings.iter().filter(|f| f.rule == rule).collect();
    assert_eq!(hits.len(), 1, "expected exactly one {rule}, got {findings:#?}");
    hits[0].clone()
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint_fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_clean(sql: &str) {
    let findings = lint(sql);
    assert!(findings.is_empty(), "expected no findings for:\n{sql}\ngot:\n{findings:#?}");
}

// --- the contract column ----------------------------------------------------------

#[test]
fn good_table_has_no_findings() {
    assert_clean(&table("orders", ""));
    assert_clean(&fixture("good.sql"));
}

#[test]
fn missing_tenant_id() {
    let f = only(&lint("CREATE TABLE orders (id uuid PRIMARY KEY);"), "tenant-id-missing");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("\"orders\""), "{f}");
    assert!(f.fix.contains(TENANT_ID), "{f}");
}

#[test]
fn wrong_collation_explains_the_index() {
    let sql = "CREATE TABLE t (tenant_id text NOT NULL DEFAULT tenantgate.current_tenant() PRIMARY KEY);";
    let f = only(&lint(sql), "tenant-id-shape");
    assert!(f.message.contains("collation"), "{f}");
    assert!(f.message.contains("sequential scan"), "{f}");
    let sql =
        r#"CREATE TABLE t (tenant_id text COLLATE "en_US" NOT NULL DEFAULT tenantgate.current_tenant() PRIMARY KEY);"#;
    assert!(only(&lint(sql), "tenant-id-shape").message.contains("\"en_US\""));
}

#[test]
fn missing_not_null() {
    let sql = r#"CREATE TABLE t (tenant_id text COLLATE "C" DEFAULT tenantgate.current_tenant() PRIMARY KEY);"#;
    assert!(only(&lint(sql), "tenant-id-shape").message.contains("NOT NULL"));
}

#[test]
fn missing_or_wrong_default() {
    let sql = r#"CREATE TABLE t (tenant_id text COLLATE "C" NOT NULL PRIMARY KEY);"#;
    assert!(only(&lint(sql), "tenant-id-shape").message.contains("DEFAULT"));
    let sql =
        r#"CREATE TABLE t (tenant_id text COLLATE "C" NOT NULL DEFAULT current_setting('app.tenant') PRIMARY KEY);"#;
    assert!(only(&lint(sql), "tenant-id-shape").message.contains("DEFAULT"));
}

#[test]
fn wrong_type() {
    let sql = r#"CREATE TABLE t (tenant_id varchar(13) COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant() PRIMARY KEY);"#;
    assert!(only(&lint(sql), "tenant-id-shape").message.contains("type is varchar"));
}

#[test]
fn every_wrong_part_is_named() {
    let findings = lint("CREATE TABLE t (tenant_id uuid, PRIMARY KEY (tenant_id));");
    assert_eq!(rules(&findings), vec!["tenant-id-shape"; 4], "{findings:#?}");
}

// --- keys -------------------------------------------------------------------------

#[test]
fn primary_key_not_leading() {
    let sql = format!("CREATE TABLE t ({TENANT_ID}, id uuid, PRIMARY KEY (id, tenant_id));");
    let f = only(&lint(&sql), "key-not-leading-tenant-id");
    assert!(f.message.contains("PRIMARY KEY (id, tenant_id)"), "{f}");
    assert!(f.fix.contains("PRIMARY KEY (tenant_id, id)"), "{f}");
    let sql = format!("CREATE TABLE t ({TENANT_ID}, id uuid PRIMARY KEY);");
    assert!(only(&lint(&sql), "key-not-leading-tenant-id").fix.contains("PRIMARY KEY (tenant_id, id)"));
}

#[test]
fn unique_not_leading_column_level() {
    let sql = format!("CREATE TABLE t ({TENANT_ID}, id uuid, email text UNIQUE, PRIMARY KEY (tenant_id, id));");
    let f = only(&lint(&sql), "key-not-leading-tenant-id");
    assert!(f.message.contains("UNIQUE (email)"), "{f}");
    assert!(f.fix.contains("UNIQUE (tenant_id, email)"), "{f}");
}

#[test]
fn unique_not_leading_table_level() {
    let f = only(&lint(&table("t", ",\n  CONSTRAINT t_code UNIQUE (code)")), "key-not-leading-tenant-id");
    assert!(f.message.contains("\"t_code\""), "{f}");
    let sql = format!("{}ALTER TABLE t ADD CONSTRAINT t_code UNIQUE (id, tenant_id);", table("t", ""));
    assert_eq!(only(&lint(&sql), "key-not-leading-tenant-id").line, 6);
    let sql = format!("{}ALTER TABLE t ADD CONSTRAINT t_code UNIQUE (tenant_id, id);", table("t", ""));
    assert_clean(&sql);
}

#[test]
fn unique_index_not_leading() {
    let sql = format!("{}CREATE UNIQUE INDEX t_id ON t (id);", table("t", ""));
    let f = only(&lint(&sql), "key-not-leading-tenant-id");
    assert!(f.message.contains("\"t_id\""), "{f}");
    assert_eq!(f.line, 6);
    let sql = format!("{}CREATE UNIQUE INDEX t_low ON t (lower(tenant_id), id);", table("t", ""));
    assert!(only(&lint(&sql), "key-not-leading-tenant-id").message.contains("<expression>"));
    assert_clean(&format!("{}CREATE INDEX t_id ON t (id);", table("t", "")));
    assert_clean(&format!("{}CREATE UNIQUE INDEX t_id ON t (tenant_id, id) WHERE id IS NOT NULL;", table("t", "")));
}

#[test]
fn no_primary_key_is_a_warning_unless_added_later() {
    let sql = format!("CREATE TABLE t ({TENANT_ID}, id uuid);");
    let f = only(&lint(&sql), "no-primary-key");
    assert_eq!(f.severity, Severity::Warning);
    assert!(!has_errors(&lint(&sql)));
    assert_clean(&format!("{sql}\nALTER TABLE t ADD PRIMARY KEY (tenant_id, id);"));
}

// --- foreign keys -----------------------------------------------------------------

#[test]
fn fk_column_level_without_tenant_id() {
    let sql = format!("{}{}", table("parent", ""), table("child", ",\n  parent_id uuid REFERENCES parent (id)"));
    let f = only(&lint(&sql), "fk-without-tenant-id");
    assert_eq!(f.line, 6);
    assert!(f.message.contains("\"parent\""), "{f}");
    assert!(f.fix.contains("FOREIGN KEY (tenant_id, parent_id) REFERENCES parent (tenant_id, id)"), "{f}");
    // Without a column list, REFERENCES means the parent's primary key.
    let sql = format!("{}{}", table("parent", ""), table("child", ",\n  parent_id uuid REFERENCES parent"));
    assert!(only(&lint(&sql), "fk-without-tenant-id").fix.contains("REFERENCES parent (tenant_id, id)"));
}

#[test]
fn fk_table_level_without_tenant_id() {
    let parent = table("parent", "");
    let bad =
        format!("{parent}{}", table("child", ",\n  parent_id uuid,\n  FOREIGN KEY (parent_id) REFERENCES parent (id)"));
    only(&lint(&bad), "fk-without-tenant-id");
    let swapped = format!(
        "{parent}{}",
        table("child", ",\n  parent_id uuid,\n  FOREIGN KEY (tenant_id, parent_id) REFERENCES parent (id, tenant_id)")
    );
    only(&lint(&swapped), "fk-without-tenant-id");
    let altered = format!(
        "{parent}{}ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id);",
        table("child", ",\n  parent_id uuid")
    );
    assert_eq!(only(&lint(&altered), "fk-without-tenant-id").line, 12);
    let good = format!(
        "{parent}{}",
        table("child", ",\n  parent_id uuid,\n  FOREIGN KEY (tenant_id, parent_id) REFERENCES parent (tenant_id, id)")
    );
    assert_clean(&good);
    let good_implicit = format!(
        "{parent}{}",
        table("child", ",\n  parent_id uuid,\n  FOREIGN KEY (tenant_id, parent_id) REFERENCES parent")
    );
    assert_clean(&good_implicit);
}

// --- ids --------------------------------------------------------------------------

#[test]
fn serial_is_a_warning() {
    let sql = format!("CREATE TABLE t ({TENANT_ID}, id bigserial, PRIMARY KEY (tenant_id, id));");
    let f = only(&lint(&sql), "serial-or-identity");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.fix.contains("gen_random_uuid()"), "{f}");
}

#[test]
fn identity_is_a_warning() {
    let sql =
        format!("CREATE TABLE t ({TENANT_ID}, id bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (tenant_id, id));");
    let f = only(&lint(&sql), "serial-or-identity");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("IDENTITY"), "{f}");
}

// --- names and statements tenantgate owns --------------------------------------------

#[test]
fn schema_qualified_names() {
    let f = only(&lint(&table("app.orders", "")), "schema-qualified-name");
    assert!(f.message.contains("\"app.orders\""), "{f}");
    assert!(f.fix.contains("`orders`"), "{f}");
    let sql = format!("{}CREATE INDEX t_id ON public.t (tenant_id, id);", table("t", ""));
    only(&lint(&sql), "schema-qualified-name");
    let sql = format!("{}ALTER TABLE app.t ADD COLUMN note text;", table("t", ""));
    only(&lint(&sql), "schema-qualified-name");
    let sql = table("t", ",\n  p uuid,\n  FOREIGN KEY (tenant_id, p) REFERENCES app.parent (tenant_id, id)");
    only(&lint(&sql), "schema-qualified-name");
}

#[test]
fn grant_is_forbidden() {
    let f = only(&lint("GRANT SELECT ON orders TO PUBLIC;"), "forbidden-statement");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("GRANT"), "{f}");
    assert!(f.message.contains("row-level security"), "{f}");
}

#[test]
fn statements_tenantgate_owns_are_forbidden() {
    let t = table("t", "");
    for sql in [
        "CREATE ROLE bob LOGIN".to_string(),
        "CREATE USER bob".to_string(),
        "ALTER ROLE bob BYPASSRLS".to_string(),
        "DROP USER bob".to_string(),
        "REVOKE ALL ON t FROM PUBLIC".to_string(),
        "GRANT bob TO alice".to_string(),
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob".to_string(),
        format!("{t}ALTER TABLE t DISABLE ROW LEVEL SECURITY"),
        format!("{t}ALTER TABLE t NO FORCE ROW LEVEL SECURITY"),
        format!("{t}CREATE POLICY p ON t USING (true)"),
        format!("{t}ALTER POLICY p ON t USING (true)"),
        format!("{t}DROP POLICY tenant_isolation ON t"),
        "CREATE SCHEMA reporting".to_string(),
        "SET search_path = public".to_string(),
        "SET ROLE postgres".to_string(),
        format!("{t}ALTER TABLE t OWNER TO bob"),
        "ALTER FUNCTION f() OWNER TO bob".to_string(),
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'".to_string(),
        "ALTER FUNCTION f() SECURITY DEFINER".to_string(),
        "DROP SCHEMA tenantgate CASCADE".to_string(),
        "ALTER SCHEMA tenantgate RENAME TO x".to_string(),
        "DROP FUNCTION tenantgate.current_tenant()".to_string(),
        "CREATE OR REPLACE FUNCTION tenantgate.current_tenant() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$"
            .to_string(),
    ] {
        let findings = lint(&sql);
        let f = only(&findings, "forbidden-statement");
        assert_eq!(f.severity, Severity::Error, "{sql}: {f}");
    }
    let f = only(&lint("CREATE EXTENSION IF NOT EXISTS pgcrypto;"), "forbidden-statement");
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn tenant_id_must_not_be_altered() {
    let t = table("t", "");
    for alter in [
        "ALTER TABLE t DROP COLUMN tenant_id",
        "ALTER TABLE t ALTER COLUMN tenant_id TYPE varchar",
        "ALTER TABLE t ALTER COLUMN tenant_id DROP DEFAULT",
        "ALTER TABLE t ALTER COLUMN tenant_id DROP NOT NULL",
        "ALTER TABLE t RENAME COLUMN tenant_id TO owner",
    ] {
        let f = only(&lint(&format!("{t}{alter};")), "tenant-id-altered");
        assert_eq!(f.line, 6, "{alter}");
    }
    let findings = lint("CREATE TABLE t (id uuid);\nALTER TABLE t ADD COLUMN tenant_id text NOT NULL;");
    assert_eq!(findings.iter().filter(|f| f.rule == "tenant-id-shape").count(), 2, "{findings:#?}");
    assert!(findings.iter().all(|f| f.rule != "tenant-id-altered"));
}

#[test]
fn table_forms_the_lint_cannot_check() {
    only(&lint("CREATE TABLE t AS SELECT 1 AS x;"), "create-table-as");
    only(&lint("SELECT 1 AS x INTO t;"), "create-table-as");
    only(&lint("CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;"), "materialized-view");
    let like = format!("{}CREATE TABLE t2 (LIKE t INCLUDING ALL);", table("t", ""));
    let f = only(&lint(&like), "unchecked-columns");
    assert_eq!(f.severity, Severity::Warning);
    assert!(!has_errors(&lint(&like)));
    let partition = format!(
        "CREATE TABLE m ({TENANT_ID}, at date NOT NULL, PRIMARY KEY (tenant_id, at)) PARTITION BY RANGE (at);\n\
         CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
    );
    assert_clean(&partition);
    assert_eq!(rules(&lint("DO $$ BEGIN PERFORM 1; END $$;")), vec!["unchecked-code"]);
}

#[test]
fn unlogged_and_temp_are_warnings() {
    let unlogged = table("t", "").replacen("CREATE TABLE", "CREATE UNLOGGED TABLE", 1);
    let f = only(&lint(&unlogged), "unlogged-or-temp");
    assert_eq!(f.severity, Severity::Warning);
    only(&lint(&table("t", "").replacen("CREATE TABLE", "CREATE TEMP TABLE", 1)), "unlogged-or-temp");
    only(&lint(&format!("{}ALTER TABLE t SET UNLOGGED;", table("t", ""))), "unlogged-or-temp");
}

#[test]
fn views_need_security_invoker() {
    let t = table("t", "");
    let f = only(&lint(&format!("{t}CREATE VIEW v AS SELECT * FROM t;")), "view");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("row-level security"), "{f}");
    assert!(f.fix.contains("security_invoker = true"), "{f}");
    only(&lint(&format!("{t}CREATE VIEW v WITH (security_invoker = false) AS SELECT * FROM t;")), "view");
    only(&lint("ALTER VIEW v SET (security_invoker = off);"), "view");
    assert_clean(&format!("{t}CREATE VIEW v WITH (security_invoker = true) AS SELECT * FROM t;"));
    assert_clean(&format!("{t}CREATE OR REPLACE VIEW v WITH (security_invoker) AS SELECT * FROM t;"));
}

#[test]
fn reference_data_and_other_ddl_pass() {
    let t = table("t", ",\n  code text NOT NULL");
    assert_clean(&format!(
        "{t}INSERT INTO t (code) VALUES ('a'), ('b');\nUPDATE t SET code = upper(code);\n\
         CREATE TYPE mood AS ENUM ('ok');\nCOMMENT ON COLUMN t.code IS 'x';\nALTER TABLE t ENABLE ROW LEVEL SECURITY;\n\
         CREATE FUNCTION add1(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + 1';\nDROP INDEX IF EXISTS old_idx;"
    ));
}

// --- lines, syntax, robustness ------------------------------------------------------

#[test]
fn syntax_error_points_at_its_line() {
    let findings = lint_sql("0003_typo.sql", &fixture("syntax_line7.sql"));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.rule, f.line, f.severity), ("syntax", 7, Severity::Error));
    assert!(f.message.contains("\"CRATE\""), "{f}");
    // The error inside a multi-line statement: the line of the failing token.
    let f = &lint("SELECT 1;\nCREATE TABLE t (\n  a int,\n  b int,,\n  c int\n);")[0];
    assert_eq!((f.rule, f.line), ("syntax", 4));
    // An unterminated string: the scanner fails, the quoted text is located.
    let f = &lint("SELECT 1;\n\nSELECT 'abc;\nSELECT 2;")[0];
    assert_eq!((f.rule, f.line), ("syntax", 3));
    // Missing input at the end: the last line.
    let f = &lint("SELECT 1;\nCREATE TABLE t (\n  a int")[0];
    assert_eq!((f.rule, f.line), ("syntax", 3));
}

#[test]
fn multi_statement_line_numbers() {
    let findings = lint_sql("broken.sql", &fixture("broken_contract.sql"));
    let got: Vec<(usize, &str)> = findings.iter().map(|f| (f.line, f.rule)).collect();
    let mut expected = vec![
        (3, "tenant-id-shape"),
        (3, "serial-or-identity"),
        (3, "key-not-leading-tenant-id"),
        (8, "fk-without-tenant-id"),
        (14, "key-not-leading-tenant-id"),
        (16, "forbidden-statement"),
        (17, "schema-qualified-name"),
        (17, "tenant-id-missing"),
        (17, "no-primary-key"),
    ];
    let mut sorted = got.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{findings:#?}");
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "findings are ordered by line");
    assert!(findings.iter().all(|f| f.file == "broken.sql"));
}

#[test]
fn lines_are_counted_in_bytes_after_multibyte_text() {
    let sql = format!("-- Ünïcødé 🍕 comment\nCOMMENT ON TABLE t IS 'café ☕';\n/* ✓ */ {}", table("t", ""));
    assert_clean(&sql);
    let sql = "COMMENT ON TABLE t IS 'café ☕';\n\n  /* ✓ nested /* ✓ */ */ -- x\n  CREATE TABLE t (id uuid);";
    assert_eq!(only(&lint(sql), "tenant-id-missing").line, 4);
}

#[test]
fn empty_and_garbage_input_never_panic() {
    assert!(lint("").is_empty());
    assert!(lint("  \n-- only a comment\n/* and another */\n").is_empty());
    for sql in [
        "\0",
        "CREATE TABLE t (a int);\0",
        "/* unterminated",
        "$$",
        "'",
        "\"",
        ";;;;",
        "🍕🍕🍕",
        "CREATE TABLE",
        "CREATE TABLE t (tenant_id)",
        "ALTER TABLE",
        "SELECT 'a' 'b'",
        "E'\\",
        "U&'\\0000'",
    ] {
        let findings = lint(sql);
        assert!(findings.iter().all(|f| f.line >= 1), "{sql:?}: {findings:#?}");
    }
    let deep = format!("SELECT {}1{};", "(".repeat(20_000), ")".repeat(20_000));
    let _ = lint(&deep);
    let deep_ok = format!("SELECT {}1{};", "(".repeat(200), ")".repeat(200));
    let _ = lint(&deep_ok);
    assert!(has_errors(&lint("\0")));
}

#[test]
fn random_token_soup_never_panics() {
    const PIECES: &[&str] = &[
        "CREATE",
        "TABLE",
        "t",
        "(",
        ")",
        ",",
        ";",
        "tenant_id",
        "text",
        "COLLATE",
        "\"C\"",
        "NOT",
        "NULL",
        "DEFAULT",
        "tenantgate.current_tenant()",
        "PRIMARY",
        "KEY",
        "UNIQUE",
        "REFERENCES",
        "FOREIGN",
        "ALTER",
        "ADD",
        "COLUMN",
        "DROP",
        "INDEX",
        "ON",
        "VIEW",
        "AS",
        "SELECT",
        "1",
        "'x'",
        "$$",
        "--",
        "\n",
        "/*",
        "*/",
        "é",
        "🍕",
        "GRANT",
        "\"",
        "'",
        "serial",
        "GENERATED",
        "ALWAYS",
        "IDENTITY",
        "WITH",
        "(security_invoker = true)",
        "app.",
        "E'\\",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3_000 {
        let len = (next() % 24) as usize;
        let sql: Vec<&str> = (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
        let sql = sql.join(" ");
        let total_lines = sql.matches('\n').count() + 1;
        for f in lint(&sql) {
            assert!(f.line >= 1 && f.line <= total_lines, "{sql:?}: {f}");
        }
    }
}

#[test]
fn truncated_and_spliced_files_never_panic() {
    let sql = fixture("good.sql");
    let cuts: Vec<usize> = (0..sql.len()).step_by(7).filter(|i| sql.is_char_boundary(*i)).collect();
    for &cut in &cuts {
        let total_lines = sql[..cut].matches('\n').count() + 1;
        for f in lint(&sql[..cut]) {
            assert!(f.line >= 1 && f.line <= total_lines, "cut at {cut}: {f}");
        }
        let spliced = format!("{}{}", &sql[cut..], &sql[..cut]);
        let _ = lint(&spliced);
    }
}

// --- output ------------------------------------------------------------------------

#[test]
fn display_and_json() {
    let sql = format!("{}\n\n\n\n\n\nCREATE TABLE orders (id uuid);", "SELECT 1;\n".repeat(5));
    let findings = lint_sql("0001_init.sql", &sql);
    let f = only(&findings, "tenant-id-missing");
    assert_eq!(
        f.to_string(),
        format!("0001_init.sql:12: error[tenant-id-missing]: table \"orders\" has no tenant_id column\n  fix: add `{TENANT_ID}`")
    );
    let json = serde_json::to_value(&f).expect("serializes");
    assert_eq!(json["severity"], "error");
    assert_eq!(json["rule"], "tenant-id-missing");
    assert_eq!(json["line"], 12);
    assert!(has_errors(&findings));
    assert!(!has_errors(&[]));
}

// --- the example application ---------------------------------------------------------

fn example_migrations() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/restaurant/migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

#[test]
fn example_restaurant_migrations_are_lint_clean() {
    let files = example_migrations();
    assert!(files.len() >= 2, "expected the restaurant migrations, found {files:?}");
    for path in files {
        let sql = std::fs::read_to_string(&path).expect("readable migration");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let findings = lint_sql(name, &sql);
        assert!(findings.is_empty(), "{name} must pass the lint with zero findings:\n{findings:#?}");
    }
}
