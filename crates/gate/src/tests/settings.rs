//! SET/RESET: the allow-list, identity changes, and timeout caps.

use super::{allowed, denied, denied_by, gate};
use crate::{Gate, GateConfig, Limits, Scope};

fn capped() -> Limits {
    Limits {
        max_statement_timeout_ms: Some(30_000),
        max_idle_in_transaction_ms: Some(60_000),
        own_database: false,
        transaction_mode: false,
    }
}

#[test]
fn allow_listed_settings_pass() {
    for sql in [
        "SET TIME ZONE 'UTC'",
        "SET TIME ZONE LOCAL",
        "SET timezone = 'Europe/Paris'",
        "SET \"TimeZone\" TO 'UTC'",
        "SET application_name = 'text2sql-agent'",
        "SET LOCAL statement_timeout = '5s'",
        "SET datestyle = ISO, MDY",
        "SET intervalstyle = 'iso_8601'",
        "SET extra_float_digits = 3",
        "SET client_encoding = 'UTF8'",
        "SET NAMES 'UTF8'",
        "SET search_path = app, public",
        "SET SCHEMA 'app'",
        "SET bytea_output = 'hex'",
        "SET standard_conforming_strings = on",
        "SET client_min_messages = warning",
        "SET default_transaction_isolation = 'serializable'",
        "SET default_transaction_read_only = on",
        "SET transaction_isolation = 'repeatable read'",
        "SET row_security = on",
        "SET row_security = true",
        "SET enable_seqscan = off",
        "SET enable_nestloop TO DEFAULT",
        "RESET timezone",
        "RESET ALL",
        "SHOW statement_timeout",
    ] {
        allowed(sql);
    }
}

#[test]
fn identity_changes_are_denied() {
    denied("SET ROLE admin", "set-role");
    denied("SET LOCAL ROLE x", "set-role");
    denied("SET SESSION ROLE x", "set-role");
    denied("SET ROLE NONE", "set-role");
    denied("RESET ROLE", "set-role");
    denied("SET SESSION AUTHORIZATION x", "session-authorization");
    denied("SET SESSION AUTHORIZATION DEFAULT", "session-authorization");
    denied("RESET SESSION AUTHORIZATION", "session-authorization");
}

#[test]
fn settings_outside_the_allow_list_are_denied() {
    for sql in [
        "SET app.tenant = 'x'",
        "SET LOCAL app.tenant = 'victim'",
        "RESET app.tenant",
        "SET work_mem = '1GB'",
        "SET session_replication_role = replica",
        "SET log_statement = 'none'",
        "SET XML OPTION DOCUMENT",
        "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
        "SET idle_session_timeout = 0",
    ] {
        denied(sql, "setting-not-allowed");
    }
}

#[test]
fn row_security_may_only_be_on() {
    denied("SET row_security = off", "row-security");
    denied("SET row_security TO false", "row-security");
    allowed("RESET row_security");
}

#[test]
fn the_allow_list_is_configurable() {
    let gate = Gate::new(GateConfig {
        allowed_settings: vec!["work_mem".to_owned()],
        ..GateConfig::default()
    });
    assert!(gate
        .check("t", "SET work_mem = '64MB'",
            Scope::ReadWrite,
            &Limits::default()
        )
        .is_ok());
    denied_by(
        &gate,
        "SET timezone = 'UTC'",
        Scope::ReadWrite,
        &Limits::default(),
        "setting-not-allowed",
    );
}

#[test]
fn timeouts_within_the_cap_pass() {
    let gate = gate();
    for sql in [
        "SET statement_timeout = 5000",
        "SET statement_timeout = '5s'",
        "SET statement_timeout = '500ms'",
        "SET statement_timeout = '30s'",
        "SET statement_timeout TO DEFAULT",
        "RESET statement_timeout",
        "SET lock_timeout = '2s'",
        "SET idle_in_transaction_session_timeout = '1min'",
        "SET idle_in_transaction_session_timeout = 60000",
    ] {
        assert!(gate.check("t", sql, Scope::ReadOnly, &capped()).is_ok(), "{sql}");
    }
}

#[test]
fn timeouts_over_the_cap_or_unlimited_are_denied() {
    let gate = gate();
    for sql in [
        "SET statement_timeout = 0",
        "SET statement_timeout = '0'",
        "SET statement_timeout = '1h'",
        "SET statement_timeout = 30001",
        "SET statement_timeout = '0.4ms'",
        "SET LOCAL statement_timeout = '2min'",
        "SET \"STATEMENT_TIMEOUT\" = 0",
        "SET statement_timeout = '0x10000000'",
        "SET lock_timeout = 0",
        "SET lock_timeout = '1h'",
        "SET idle_in_transaction_session_timeout = 0",
        "SET idle_in_transaction_session_timeout = '2h'",
        "BEGIN; SET LOCAL statement_timeout = 0; SELECT 1",
    ] {
        denied_by(&gate, sql, Scope::ReadWrite, &capped(), "timeout-cap");
    }
}

#[test]
fn without_a_cap_any_timeout_passes() {
    allowed("SET statement_timeout = 0");
    allowed("SET statement_timeout = '1h'");
    let only_statement = Limits {
        max_statement_timeout_ms: Some(1000),
        max_idle_in_transaction_ms: None,
        own_database: false,
        transaction_mode: false,
    };
    assert!(gate()
        .check("t", "SET idle_in_transaction_session_timeout = 0",
            Scope::ReadWrite,
            &only_statement
        )
        .is_ok());
}

#[test]
fn caps_apply_to_cached_analyses() {
    // The analysis is cached without limits; each check applies the tenant's own cap.
    let gate = gate();
    let sql = "SET statement_timeout = '1h'";
    assert!(gate
        .check("t", sql, Scope::ReadWrite, &Limits::default())
        .is_ok());
    denied_by(&gate, sql, Scope::ReadWrite, &capped(), "timeout-cap");
    let generous = Limits {
        max_statement_timeout_ms: Some(7_200_000),
        ..Limits::default()
    };
    assert!(gate.check("t", sql, Scope::ReadWrite, &generous).is_ok());
}

#[test]
fn cap_messages_name_the_setting_and_cap() {
    let denial = denied_by(
        &gate(),
        "SET statement_timeout = 0",
        Scope::ReadWrite,
        &capped(),
        "timeout-cap",
    );
    assert!(
        denial.message.contains("statement_timeout") && denial.message.contains("30000 ms"),
        "{}",
        denial.message
    );
}

/// Settings that change how the server lexes or decodes text are pinned at the value the gate
/// parses with, in every form of SET, whatever the allow-list says.
#[test]
fn settings_that_change_lexing_are_pinned() {
    let everything = Gate::new(GateConfig { allowed_settings: vec!["*".into()], ..GateConfig::default() });
    for sql in [
        "SET standard_conforming_strings = off",
        "SET standard_conforming_strings TO false",
        "SET SESSION standard_conforming_strings = 'off'",
        "SET LOCAL standard_conforming_strings = 0",
        "SET standard_conforming_strings = no",
        "SET client_encoding = 'SJIS'",
        "SET client_encoding TO 'sjis'",
        "SET NAMES 'BIG5'",
        "SET NAMES 'gbk'",
        "SET LOCAL client_encoding = 'LATIN1'",
        "SET client_encoding = 'UTF8', 'SJIS'",
        "SET backslash_quote = on",
        "SET backslash_quote = 'on'",
    ] {
        denied(sql, "pinned-setting");
        denied_by(&everything, sql, Scope::ReadWrite, &Limits::default(), "pinned-setting");
    }
    for sql in [
        "SET standard_conforming_strings = on",
        "SET standard_conforming_strings TO true",
        "SET LOCAL standard_conforming_strings = 'on'",
        "SET standard_conforming_strings = 1",
        "SET client_encoding = 'UTF8'",
        "SET client_encoding = 'utf-8'",
        "SET NAMES 'unicode'",
        "SET client_encoding TO DEFAULT",
        "RESET client_encoding",
        "RESET standard_conforming_strings",
    ] {
        allowed(sql);
    }
    // backslash_quote is not on the default allow-list, even at its pinned value.
    denied("SET backslash_quote = safe_encoding", "setting-not-allowed");
    assert!(everything.check("t", "SET backslash_quote = safe_encoding", Scope::ReadWrite, &Limits::default()).is_ok());
}

#[test]
fn set_config_as_a_statement_is_held_to_the_set_rules() {
    let gate = gate();
    // As drivers send it: Django (TimeZone, a bound or literal value), asyncpg.
    for sql in [
        "SELECT set_config('TimeZone', 'UTC', false)",
        "SELECT set_config('TimeZone', $1, false)",
        "SELECT pg_catalog.set_config('timezone', 'Europe/Paris'::text, true)",
        "select SET_CONFIG('application_name', 'django', 'false')",
        "SELECT set_config('statement_timeout', '5s', false)",
        "SELECT set_config('row_security', 'on', false)",
        "SELECT set_config('client_encoding', 'utf-8', false)",
        // asyncpg, around its type introspection.
        "SELECT\n    current_setting('jit') AS cur,\n    set_config('jit', 'off', false) AS new",
        "SELECT set_config('jit', $1, false)",
    ] {
        assert!(gate.check("t", sql, Scope::ReadOnly, &capped()).is_ok(), "{sql}");
    }
    // Everything a SET would be refused for, with the same rule.
    for (sql, rule) in [
        ("SELECT set_config('role', 'x', false)", "set-role"),
        ("SELECT set_config('session_authorization', 'x', false)", "session-authorization"),
        ("SELECT pg_catalog.set_config('app.tenant', 'victim', false)", "setting-not-allowed"),
        ("SELECT \"set_config\"('work_mem', '2GB', true)", "setting-not-allowed"),
        ("SELECT set_config('statement_timeout', '0', false)", "timeout-cap"),
        ("SELECT set_config('statement_timeout', '10min', false)", "timeout-cap"),
        ("SELECT set_config('statement_timeout', $1, false)", "timeout-cap"),
        ("SELECT set_config('row_security', 'off', false)", "row-security"),
        ("SELECT set_config('row_security', $1, false)", "row-security"),
        ("SELECT set_config('standard_conforming_strings', 'off', false)", "pinned-setting"),
        ("SELECT set_config('client_encoding', 'SJIS', false)", "pinned-setting"),
        ("SELECT set_config('client_encoding', $1, false)", "pinned-setting"),
        ("SELECT current_setting('jit'), set_config('role', 'x', false)", "set-role"),
    ] {
        let d = gate.check("t", sql, Scope::ReadWrite, &capped()).expect_err(sql);
        assert_eq!(d.rule, rule, "{sql}: {}", d.message);
    }
}

#[test]
fn set_config_verdicts_are_never_shared_by_shape() {
    // The same shape with an allowed value first must not let a refused one through.
    let gate = gate();
    assert!(gate.check("t", "SELECT set_config('timezone', 'UTC', false)", Scope::ReadWrite, &capped()).is_ok());
    let d = gate
        .check("t", "SELECT set_config('standard_conforming_strings', 'off', false)", Scope::ReadWrite, &capped())
        .expect_err("shape reuse");
    assert_eq!(d.rule, "pinned-setting");
    let d = gate.check("t", "SELECT set_config('timezone', 'UTC', false) ", Scope::ReadWrite, &capped()).map(|_| ());
    assert!(d.is_ok());
    let d = gate.check("t", "SELECT set_config('role', 'UTC', false)", Scope::ReadWrite, &capped()).expect_err("role");
    assert_eq!(d.rule, "set-role");
}
