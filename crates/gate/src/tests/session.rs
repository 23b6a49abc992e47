//! Transaction pooling mode: statements whose effect outlives their transaction are refused
//! (rule `transaction-mode`, 0A000); the same statements pass in session mode. Resets
//! (`RESET`, `DISCARD`) pass in both, and still count as session state for a door that keeps
//! a backend's session between statements.

use super::{allowed, denied_by, gate};
use crate::{Limits, Scope};

fn txn() -> Limits {
    Limits { transaction_mode: true, own_database: true, ..Limits::default() }
}

#[test]
fn session_state_is_refused_in_transaction_mode() {
    let g = gate();
    for sql in [
        "SET application_name = 'x'",
        "SET SESSION timezone = 'UTC'",
        "SELECT set_config('application_name', 'x', false)",
        "LISTEN jobs",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "PREPARE p AS SELECT 1",
        "DEALLOCATE p",
        "DEALLOCATE ALL",
        "BEGIN; SET timezone = 'UTC'; COMMIT",
    ] {
        let d = denied_by(&g, sql, Scope::ReadWrite, &txn(), "transaction-mode");
        assert_eq!(d.sqlstate, "0A000", "{sql}");
        assert!(d.message.contains("transaction pooling mode") && d.message.contains("session mode"), "{}", d.message);
    }
    let d = denied_by(&g, "SET timezone = 'UTC'", Scope::ReadWrite, &txn(), "transaction-mode");
    assert!(d.message.contains("SET LOCAL"), "{}", d.message);
}

#[test]
fn transaction_scoped_statements_pass() {
    let g = gate();
    for sql in [
        "SET LOCAL timezone = 'UTC'",
        "SELECT set_config('application_name', 'x', true)",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "BEGIN ISOLATION LEVEL REPEATABLE READ",
        "DECLARE c CURSOR FOR SELECT 1",
        "DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1",
        "UNLISTEN *",
        // Resets: the wire door restores the client's own settings after them.
        "RESET timezone",
        "RESET ALL",
        "DISCARD ALL",
        "DISCARD PLANS",
        "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
        "EXECUTE p",
        "SELECT 1",
    ] {
        if let Err(d) = g.check("t", sql, Scope::ReadWrite, &txn()) {
            panic!("{sql}: {d:?}");
        }
    }
    // Session mode: unchanged.
    allowed("SET timezone = 'UTC'");
    allowed("PREPARE p AS SELECT 1");
    assert!(g.leaves_session_state("t", "RESET ALL") && g.leaves_session_state("t", "DISCARD ALL"));
}
