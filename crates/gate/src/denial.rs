//! [`Denial`]: what the gate answers instead of running a statement, and how messages are built.
//!
//! Every message names its rule. Policy messages contain only identifiers (statement kinds,
//! function, relation and setting names) and the tenant's own caps, never literal values from
//! the SQL. Syntax messages are the parser's own and may quote the offending token.

/// SQLSTATE `insufficient_privilege`, for policy denials.
const POLICY_SQLSTATE: &str = "42501";
/// SQLSTATE `syntax_error`, for SQL that does not parse.
const SYNTAX_SQLSTATE: &str = "42601";
/// SQLSTATE `statement_too_complex`, for statements nested too deeply to parse cheaply.
const TOO_COMPLEX_SQLSTATE: &str = "54001";
/// SQLSTATE `internal_error`, for statements the gate failed to analyze (it refuses them).
const INTERNAL_SQLSTATE: &str = "XX000";

/// Why a statement may not run. `Display` is the message, ready for an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    /// Stable rule id, e.g. `set-role`, `ddl`, `catalog-enumeration`, `read-only`, `syntax`.
    pub rule: &'static str,
    /// `42501` for policy denials, `42601` for syntax errors, `54001` for statements nested too
    /// deeply, `XX000` when the gate failed.
    pub sqlstate: &'static str,
    /// e.g. `tenantgate: SET ROLE is not allowed (rule set-role): a session's identity is fixed by its credentials`.
    pub message: String,
}

impl Denial {
    /// A policy denial: "`what` is not allowed (rule `rule`): `why`".
    pub(crate) fn policy(rule: &'static str, what: impl std::fmt::Display, why: &str) -> Denial {
        Denial {
            rule,
            sqlstate: POLICY_SQLSTATE,
            message: format!("tenantgate: {what} is not allowed (rule {rule}): {why}"),
        }
    }

    /// The parser refused the SQL; `parser_message` is PostgreSQL's own wording.
    pub(crate) fn syntax(parser_message: &str) -> Denial {
        Denial {
            rule: "syntax",
            sqlstate: SYNTAX_SQLSTATE,
            message: format!("tenantgate: {parser_message} (rule syntax)"),
        }
    }

    /// The statement nests too deeply to be parsed in bounded time (see `nesting`).
    pub(crate) fn too_complex() -> Denial {
        Denial {
            rule: "too-complex",
            sqlstate: TOO_COMPLEX_SQLSTATE,
            message:
                "tenantgate: a statement nested this deeply is not allowed (rule too-complex): \
                      parsing it would take too long; PostgreSQL refuses such nesting too"
                    .to_owned(),
        }
    }

    /// The gate could not finish its analysis, so it refuses (fails closed).
    pub(crate) fn internal() -> Denial {
        Denial {
            rule: "internal",
            sqlstate: INTERNAL_SQLSTATE,
            message: "tenantgate: the gate could not analyze this statement, so it is not run (rule internal)"
                .to_owned(),
        }
    }
}
