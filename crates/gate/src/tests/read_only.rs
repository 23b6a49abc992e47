//! The read-only scope: reads pass, anything that writes is refused with rule `read-only`.

use super::denied_by;
use crate::{Gate, GateConfig, Limits, Scope, Verdict};

fn check_ro(sql: &str) -> Result<Verdict, crate::Denial> {
    Gate::new(GateConfig::default()).check("t", sql, Scope::ReadOnly, &Limits::default())
}

#[test]
fn reads_pass() {
    for sql in [
        "SELECT * FROM orders WHERE id = $1",
        "VALUES (1)",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SHOW search_path",
        "EXPLAIN SELECT * FROM orders",
        "COPY orders TO STDOUT",
        "COPY (SELECT 1) TO STDOUT",
        "BEGIN; SELECT 1; COMMIT",
        "SET application_name = 'agent'",
        "RESET ALL",
        "PREPARE q AS SELECT 1",
        "EXECUTE q",
        "DEALLOCATE q",
        "DECLARE c CURSOR FOR SELECT 1",
        "FETCH ALL FROM c",
        "MOVE c",
        "CLOSE c",
        "DISCARD ALL",
        "SELECT currval('s')",
    ] {
        let verdict = check_ro(sql).unwrap_or_else(|d| panic!("{sql:?}: {}", d.message));
        assert!(verdict.read_only, "{sql:?}");
    }
}

#[test]
fn writes_are_denied() {
    let gate = Gate::new(GateConfig::default());
    for sql in [
        "INSERT INTO orders VALUES (1)",
        "UPDATE orders SET total = 0",
        "DELETE FROM orders",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "WITH x AS (SELECT 1), y AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x",
        "SELECT * FROM orders FOR UPDATE",
        "SELECT * FROM orders FOR SHARE",
        "SELECT * FROM orders FOR KEY SHARE NOWAIT",
        "SELECT nextval('orders_id_seq')",
        "SELECT setval('orders_id_seq', 1)",
        "EXPLAIN DELETE FROM orders",
        "COPY orders FROM STDIN",
        "COPY (DELETE FROM orders RETURNING *) TO STDOUT",
        "PREPARE p AS DELETE FROM orders WHERE id = $1",
        "DECLARE c CURSOR FOR SELECT * FROM orders FOR UPDATE",
        "SELECT 1; INSERT INTO t VALUES (1)",
    ] {
        let denial = denied_by(&gate, sql, Scope::ReadOnly, &Limits::default(), "read-only");
        assert_eq!(denial.sqlstate, "42501");
    }
}

#[test]
fn the_message_names_what_writes() {
    let denial = check_ro("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x").err();
    assert_eq!(
        denial.map(|d| d.message),
        Some("tenantgate: DELETE is not allowed (rule read-only): this principal has read-only scope".to_owned())
    );
}

#[test]
fn read_write_scope_reports_writes() {
    let gate = Gate::new(GateConfig::default());
    let verdict = gate.check("t", "SELECT 1; UPDATE t SET x = 1",
        Scope::ReadWrite,
        &Limits::default(),
    );
    assert_eq!(
        verdict,
        Ok(Verdict {
            statements: 2,
            read_only: false, rewritten: None
        })
    );
}

#[test]
fn the_first_failing_statement_decides() {
    // The read-only denial of statement 1 comes before the DDL denial of statement 2.
    let gate = Gate::new(GateConfig::default());
    denied_by(
        &gate,
        "INSERT INTO t VALUES (1); DROP TABLE t",
        Scope::ReadOnly,
        &Limits::default(),
        "read-only",
    );
    denied_by(
        &gate,
        "DROP TABLE t; INSERT INTO t VALUES (1)",
        Scope::ReadOnly,
        &Limits::default(),
        "ddl",
    );
}
