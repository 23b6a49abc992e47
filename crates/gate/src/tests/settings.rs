//! SET/RESET: the allow-list, identity changes, and timeout caps.

use super::{allowed, denied, denied_by, gate};
use crate::{Gate, GateConfig, Limits, Scope};

fn capped() -> Limits {
    Limits {
        max_statement_timeout_ms: Some(30_000),
        max_idle_in_transaction_ms: Some(60_000),
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
