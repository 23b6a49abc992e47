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
    why: "it changes settings from inside a query; use SET, or `SELECT set_config('name', value, false)` as a statement of its own, which is held to the SET allow-list",
};
const ADVISORY_LOCK: Finding = Finding {
    rule: "advisory-lock",
    why: "advisory locks live in the server's shared lock table: keys are shared by every tenant of a database, \
          and a session taking many of them fills the table for every tenant of the server",
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

    // Given an OID, these name the object, or print its definition, whatever schema (so
    // whichever tenant) it is in; over generated integers they list them all.
    "pg_describe_object",
    "pg_identify_object",
    "pg_identify_object_as_address",
    "pg_get_object_address",
    "pg_get_indexdef",
    "pg_get_viewdef",
    "pg_get_ruledef",
    "pg_get_triggerdef",
    "pg_get_constraintdef",
    "pg_get_functiondef",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_get_function_result",
    "pg_get_function_arg_default",
    "pg_get_expr",
    "pg_get_partkeydef",
    "pg_get_statisticsobjdef",
    "pg_get_statisticsobjdef_columns",
    "pg_get_statisticsobjdef_expressions",
    "pg_get_function_sqlbody",
    "pg_get_partition_constraintdef",
    // Given an OID, these return relations as `regclass`, which prints the schema (a tenant's
    // key) of whichever relation it is.
    "pg_partition_tree",
    "pg_partition_ancestors",
    "pg_partition_root",
    "pg_get_replica_identity_index",
    "pg_filenode_relation",
    "pg_relation_filenode",
    "pg_relation_filepath",
    "format_type",
    "obj_description",
    "col_description",
    "shobj_description",
    // Confirms that a role (a tenant's key) exists, by name.
    "pg_has_role",
];

/// Functions behind the statistics views, refused in strict catalog mode (prefixes), and the
/// `reg*` lookups: `to_regrole('<key>')` confirms that a key exists, and the `reg*` types
/// called as functions (`regclass(16384)`) name any object by OID.
const CATALOG_FUNCTION_PREFIX: &[&str] = &["pg_stat_get_", "pg_stat_statements", "to_reg"];

/// The object-identifier types whose output names an object of any schema. A cast to one of
/// them (`g::regclass` over generated integers) lists other tenants' relations, types, roles
/// and schemas; see [`cast`].
const REG_TYPES: &[&str] = &[
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regconfig",
    "regdictionary",
    "regcollation",
    "regrole",
    "regnamespace",
];

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
    // Columns, constraints and the other per-relation catalogs list every schema's
    // relations (so other schema tenants' tables and their definitions).
    "pg_attribute",
    "pg_attrdef",
    "pg_constraint",
    "pg_index",
    "pg_inherits",
    "pg_depend",
    "pg_description",
    "pg_trigger",
    "pg_rewrite",
    "pg_sequence",
    "pg_partitioned_table",
    "pg_statistic_ext",
    "pg_statistic_ext_data",
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

/// A `reg*` type called as a function (`regclass(16384)`) or one of its I/O functions
/// (`regclassout(16384)`, `regnamespacein('16384')`): over an OID, each names the object
/// whatever schema (whichever tenant) it is in. Matched by the type names as prefixes, so
/// `regexp_*` and `regr_*` are not caught.
fn is_reg_type_function(name: &str) -> bool {
    REG_TYPES.iter().any(|t| name.starts_with(t))
}

/// The rule a call of `name` (last part of the function name, lower case) breaks, if any.
pub(crate) fn function(name: &str, strict_catalog: bool) -> Option<Finding> {
    if name == "set_config" {
        Some(SET_CONFIG)
    } else if name == "pg_advisory_unlock_all" {
        // Releases only the caller's own session locks (asyncpg's pool reset calls it).
        None
    } else if name.starts_with("pg_advisory_") || name.starts_with("pg_try_advisory_") {
        Some(ADVISORY_LOCK)
    } else if listed(name, DYNAMIC_SQL_EXACT, DYNAMIC_SQL_PREFIX) {
        Some(DYNAMIC_SQL)
    } else if listed(name, DANGEROUS_EXACT, DANGEROUS_PREFIX) {
        Some(DANGEROUS)
    } else if strict_catalog && (listed(name, CATALOG_FUNCTION_EXACT, CATALOG_FUNCTION_PREFIX) || is_reg_type_function(name)) {
        Some(CATALOG)
    } else {
        None
    }
}

/// What a cast to a `reg*` type reveals, in strict catalog mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastFinding {
    /// Refused: it can name other tenants' objects.
    Refused(Finding),
    /// Allowed, but only because of the constant's value (a name, not an OID): the analysis
    /// must not be shared with other values of the same shape.
    AllowedForThisValue,
}

/// The rule a cast to `type_name` (last part, as the parser produced it) breaks, if any.
/// `regrole` and `regnamespace` are refused whatever the value (`'<key>'::regrole` confirms
/// a key exists); the other `reg*` types only take a string constant that names an object,
/// not an OID (`'16384'::regclass` prints any relation's name), and no array of them.
pub(crate) fn cast(type_name: &str, array: bool, arg_is_constant: bool, arg_string: Option<&str>, strict_catalog: bool) -> Option<CastFinding> {
    let lower = type_name.to_ascii_lowercase();
    if !strict_catalog || !REG_TYPES.contains(&lower.as_str()) {
        return None;
    }
    let names_an_object = arg_is_constant
        && !array
        && !matches!(lower.as_str(), "regrole" | "regnamespace")
        && arg_string.is_some_and(|v| !v.trim().is_empty() && !v.bytes().all(|b| b.is_ascii_digit()));
    Some(if names_an_object { CastFinding::AllowedForThisValue } else { CastFinding::Refused(CATALOG) })
}

/// What to read instead of a refused catalog relation: the tenant-scoped catalog's nearest
/// stand-in (see `scoped`), for the denial's message.
pub(crate) fn instead(relation: &str) -> &'static str {
    match relation {
        "pg_authid" | "pg_shadow" => "read pg_roles or pg_user instead, which show this tenant's own roles",
        "pg_db_role_setting" => "read pg_roles.rolconfig, or SHOW a setting",
        "pg_locks" => "pg_stat_activity shows this tenant's own sessions and what they wait on",
        "pg_shdepend" => "pg_depend shows the dependencies of what this tenant can see",
        "pg_statistic_ext_data" => "pg_statistic_ext lists the statistics objects this tenant can see",
        name if name.starts_with("pg_stat_") || name.starts_with("pg_statio_") => {
            "pg_stat_activity shows this tenant's own sessions; per-table counters are shared with every tenant of the table and are not shown"
        }
        _ => "the tenant-scoped catalog (pg_class, pg_namespace, pg_roles, pg_database, pg_stat_activity, information_schema, …) shows what this tenant can see",
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
        assert_eq!(relation("pg_prepared_statements", true), None);
        assert_eq!(relation("pg_settings", true), None);
        assert_eq!(function("regexp_replace", true), None);
        assert_eq!(function("regr_slope", true), None);
        assert_eq!(function("regclass", true), Some(CATALOG));
        assert_eq!(function("to_regrole", true), Some(CATALOG));
        for name in ["regclassout", "regnamespaceout", "regroleout", "regclassin", "regtypeout", "regprocedureout", "pg_partition_root", "pg_get_function_sqlbody"] {
            assert_eq!(function(name, true), Some(CATALOG), "{name}");
            assert_eq!(function(name, false), None, "{name}");
        }
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
