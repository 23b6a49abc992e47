//! The gate's name lists: which functions and relations a tenant's SQL may not touch, and why.
//!
//! Pure lookups, no parsing: the tree walk hands in names, these tables answer with a
//! [`Finding`] (rule id plus reason) or `None`.
//!
//! Matching:
//! - function names compare case-insensitively on the last part of the (possibly qualified)
//!   name, whatever the schema. Extension functions (dblink, adminpack, pg_stat_statements) live
//!   in whichever schema they were installed into, and a tenant cannot create functions, so a
//!   match anywhere is a call the tenant has no business making;
//! - relation names compare exactly (the parser already folded unquoted names to lower case, and
//!   `"PG_ROLES"` is a different relation from `pg_roles`), whatever the schema, for the same
//!   reason.

/// Why a name is refused: a stable rule id and a short reason for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finding {
    pub rule: &'static str,
    pub why: &'static str,
}

const SET_CONFIG: Finding = Finding {
    rule: "set-config",
    why: "it changes settings, bypassing the SET allow-list",
};
const LISTEN_NOTIFY: Finding = Finding {
    rule: "listen-notify",
    why: "notification channels are shared by every session of the database",
};
const ADVISORY_LOCK: Finding = Finding {
    rule: "advisory-lock",
    why: "advisory locks are shared by every session of the database",
};
const DYNAMIC_SQL: Finding = Finding {
    rule: "dynamic-sql",
    why: "it runs SQL given as a string, which the gate cannot check",
};
const DANGEROUS: Finding = Finding {
    rule: "dangerous-function",
    why: "it reaches server files, large objects, other connections or server administration",
};
const CATALOG: Finding = Finding {
    rule: "catalog-enumeration",
    why: "it reveals other tenants' databases, roles, schemas or sessions",
};

/// Functions refused by exact (lower-case) name.
const DANGEROUS_EXACT: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_logdir_ls",
    "loread",
    "lowrite",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_rotate_logfile_old",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_drop_replication_slot",
    "pg_log_backend_memory_contexts",
    "pg_import_system_collations",
];

/// Functions refused by name prefix.
const DANGEROUS_PREFIX: &[&str] = &[
    "dblink",
    "postgres_fdw",
    "pg_ls_",
    "pg_file_",
    "lo_",
    "pg_backup_",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_replication_slot_",
    "pg_logical_",
    "pg_replication_origin_",
    "pg_wal_replay_",
    "pg_stat_reset",
];

/// Functions that execute SQL text they are given (exact names).
const DYNAMIC_SQL_EXACT: &[&str] = &[
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "ts_stat",
    "ts_rewrite",
];

/// Functions that execute SQL built from names they are given (prefixes).
const DYNAMIC_SQL_PREFIX: &[&str] = &["table_to_xml", "schema_to_xml", "database_to_xml"];

/// Size and enumeration functions refused in strict catalog mode (exact names).
const CATALOG_FUNCTION_EXACT: &[&str] = &[
    "pg_database_size",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_tablespace_size",
    "pg_tablespace_databases",
    "pg_get_userbyid",
    "pg_lock_status",
    "pg_prepared_xact",
    "pg_get_replication_slots",
];

/// Functions behind the statistics views, refused in strict catalog mode (prefixes).
const CATALOG_FUNCTION_PREFIX: &[&str] = &["pg_stat_get_", "pg_stat_statements"];

/// Relations refused in strict catalog mode (exact names).
const CATALOG_RELATION_EXACT: &[&str] = &[
    "pg_database",
    "pg_roles",
    "pg_authid",
    "pg_auth_members",
    "pg_user",
    "pg_shadow",
    "pg_group",
    "pg_namespace",
    "pg_class",
    "pg_tablespace",
    "pg_db_role_setting",
    "pg_locks",
    "pg_prepared_xacts",
    "pg_user_mapping",
    "pg_user_mappings",
    "pg_seclabel",
    "pg_seclabels",
    "pg_shseclabel",
    "pg_shdescription",
    "pg_shdepend",
    // These views list every schema's tables, views, indexes, sequences and policies,
    // so they name other tenants' schemas just as pg_namespace does.
    "pg_tables",
    "pg_views",
    "pg_matviews",
    "pg_indexes",
    "pg_sequences",
    "pg_policies",
    "pg_policy",
];

/// Relations refused in strict catalog mode (prefixes). `pg_stat_` does not match `pg_stats`,
/// which PostgreSQL filters by privilege and stays allowed.
const CATALOG_RELATION_PREFIX: &[&str] = &[
    "pg_stat_",
    "pg_statio_",
    "pg_replication_",
    "pg_subscription",
    "pg_publication",
    "pg_largeobject",
];

/// Functions that change database state although they can appear in a SELECT, with the
/// name a read-only denial shows.
const WRITING_FUNCTIONS: &[(&str, &str)] = &[("nextval", "nextval()"), ("setval", "setval()")];

fn listed(name: &str, exact: &[&str], prefixes: &[&str]) -> bool {
    exact.contains(&name) || prefixes.iter().any(|p| name.starts_with(p))
}

/// The rule a call of `name` (last part of the function name, lower case) breaks, if any.
pub(crate) fn function(name: &str, strict_catalog: bool) -> Option<Finding> {
    if name == "set_config" {
        Some(SET_CONFIG)
    } else if name == "pg_notify" {
        Some(LISTEN_NOTIFY)
    } else if name.starts_with("pg_advisory_") || name.starts_with("pg_try_advisory_") {
        Some(ADVISORY_LOCK)
    } else if listed(name, DYNAMIC_SQL_EXACT, DYNAMIC_SQL_PREFIX) {
        Some(DYNAMIC_SQL)
    } else if listed(name, DANGEROUS_EXACT, DANGEROUS_PREFIX) {
        Some(DANGEROUS)
    } else if strict_catalog && listed(name, CATALOG_FUNCTION_EXACT, CATALOG_FUNCTION_PREFIX) {
        Some(CATALOG)
    } else {
        None
    }
}

/// The rule reading relation `name` (unqualified, as the parser produced it) breaks, if any.
pub(crate) fn relation(name: &str, strict_catalog: bool) -> Option<Finding> {
    (strict_catalog && listed(name, CATALOG_RELATION_EXACT, CATALOG_RELATION_PREFIX))
        .then_some(CATALOG)
}

/// If a call of `name` (lower case) writes, which makes its statement a write: how to name it.
pub(crate) fn writing_function(name: &str) -> Option<&'static str> {
    WRITING_FUNCTIONS
        .iter()
        .find(|(function, _)| *function == name)
        .map(|(_, shown)| *shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_swallow_neighbours() {
        assert_eq!(function("lower", true), None);
        assert_eq!(function("log", true), None);
        assert_eq!(function("pg_sleep", true), None);
        assert_eq!(function("current_setting", true), None);
        assert_eq!(relation("pg_stats", true), None);
        assert_eq!(relation("pg_statistic_ext", true), None);
        assert_eq!(relation("pg_prepared_statements", true), None);
        assert_eq!(relation("pg_attribute", true), None);
        assert_eq!(relation("pg_settings", true), None);
    }

    #[test]
    fn strict_mode_gates_only_catalog_findings() {
        assert_eq!(relation("pg_roles", false), None);
        assert_eq!(function("pg_database_size", false), None);
        assert_eq!(
            function("pg_read_file", false).map(|f| f.rule),
            Some("dangerous-function")
        );
    }
}
