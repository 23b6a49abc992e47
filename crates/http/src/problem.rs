//! RFC 9457 `application/problem+json` answers, and the mapping of every error the API can meet
//! (control-plane errors, gate denials, PostgreSQL errors) to a status and a problem body.
//!
//! Owns what a client is told when something fails. It must never put a secret, a token, a
//! PostgreSQL DETAIL/HINT/CONTEXT, or a control-plane message into a *tenant* route's body:
//! tenant routes get fixed texts plus PostgreSQL's primary message and SQLSTATE; only the admin
//! API (operators) sees control-plane messages verbatim.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem. Build with the constructors; render with `IntoResponse`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// Short stable code, used as the last part of the `type` URI, e.g. `invalid-token`.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub sqlstate: Option<String>,
    pub rule: Option<&'static str>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

/// The JSON body of every error answer (RFC 9457, with tenantgate's extension members).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// A URI naming the kind of problem, e.g. `urn:tenantgate:problem:invalid-token`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
    /// The SQLSTATE, when PostgreSQL or the gate decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// The gate rule that refused the statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, code, title, detail: detail.into(), sqlstate: None, rule: None, retry_after: None }
    }

    pub fn with_sqlstate(mut self, s: impl Into<String>) -> Problem {
        self.sqlstate = Some(s.into());
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, code, "Forbidden", detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, "Bad Request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable", detail);
        p.retry_after = Some(1);
        p
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error", detail)
    }

    pub fn rate_limited(retry_after: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too Many Requests",
            format!("this tenant's request rate limit is exhausted; retry after {retry_after} s, or ask the operator to raise http.rate_limit"),
        );
        p.retry_after = Some(retry_after);
        p
    }

    /// A statement refused by the tenant's quota (`tg_dataplane::quota`): 429, the limit's
    /// SQLSTATE (53400), `Retry-After`, code `quota-<limit>`.
    pub fn quota(d: &tg_dataplane::quota::QuotaDenial) -> Problem {
        let code = match d.limit {
            tg_dataplane::usage::Limit::MaxConcurrentStatements => "quota-max-concurrent-statements",
            tg_dataplane::usage::Limit::StatementsPerSecond => "quota-statements-per-second",
            tg_dataplane::usage::Limit::MaxRows => "quota-max-rows",
            tg_dataplane::usage::Limit::MaxBytes => "quota-max-bytes",
        };
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, code, "Too Many Requests", d.message.clone());
        p.sqlstate = Some(d.sqlstate.to_string());
        p.retry_after = Some(d.retry_after.as_secs().max(1));
        p
    }

    /// A gate denial. Syntax and complexity refusals are the client's SQL (400); the rest are
    /// policy (403). Denial messages hold identifiers only (see tg-gate).
    pub fn denial(d: &tg_gate::Denial) -> Problem {
        let (status, code, title) = match d.rule {
            "syntax" | "too-complex" => (StatusCode::BAD_REQUEST, "sql-rejected", "Bad Request"),
            "internal" => (StatusCode::BAD_REQUEST, "sql-rejected", "Bad Request"),
            _ => (StatusCode::FORBIDDEN, "sql-denied", "Forbidden"),
        };
        let mut p = Problem::new(status, code, title, d.message.clone()).with_sqlstate(d.sqlstate);
        p.rule = Some(d.rule);
        p
    }

    /// A PostgreSQL ErrorResponse from the tenant's statement: primary message and SQLSTATE only
    /// (the caller has already dropped DETAIL, HINT, CONTEXT and the rest).
    pub fn postgres(sqlstate: &str, message: &str) -> Problem {
        let class = sqlstate.get(..2).unwrap_or("");
        let (status, code, title) = match (sqlstate, class) {
            ("42501", _) | ("25006", _) => (StatusCode::FORBIDDEN, "sql-denied", "Forbidden"),
            ("57014", _) => (StatusCode::GATEWAY_TIMEOUT, "statement-timeout", "Gateway Timeout"),
            ("08P01", _) => (StatusCode::BAD_REQUEST, "sql-error", "Bad Request"),
            (_, "08") => (StatusCode::BAD_GATEWAY, "backend-unavailable", "Bad Gateway"),
            (_, "23") | (_, "40") | (_, "55") => (StatusCode::CONFLICT, "sql-conflict", "Conflict"),
            (_, "28") => (StatusCode::FORBIDDEN, "tenant-unavailable", "Forbidden"),
            (_, "53") | (_, "57") => (StatusCode::SERVICE_UNAVAILABLE, "backend-unavailable", "Service Unavailable"),
            (_, "58") | (_, "XX") => (StatusCode::INTERNAL_SERVER_ERROR, "backend-error", "Internal Server Error"),
            _ => (StatusCode::BAD_REQUEST, "sql-error", "Bad Request"),
        };
        let mut p = Problem::new(status, code, title, message.to_string()).with_sqlstate(sqlstate);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            p.retry_after = Some(1);
        }
        p
    }

    /// A control-plane error on the admin API: operators see the message verbatim (it says what
    /// to do and holds no secrets, see `tg_catalog::error`).
    pub fn control(e: &tg_catalog::Error) -> Problem {
        use tg_catalog::Error as E;
        let (status, code, title) = match e {
            E::InvalidSlug { .. } => (StatusCode::BAD_REQUEST, "invalid-slug", "Bad Request"),
            E::InvalidInput { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Unprocessable Content"),
            E::EraseNotConfirmed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not-confirmed", "Unprocessable Content"),
            E::DuplicateTenant(_) | E::DuplicateServer(_) => (StatusCode::CONFLICT, "duplicate", "Conflict"),
            E::UnknownTenant(_) | E::UnknownKey { .. } => (StatusCode::NOT_FOUND, "not-found", "Not Found"),
            E::UnknownServer(_) | E::NoServers | E::NoServerInResidency(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unknown-server", "Unprocessable Content")
            }
            E::Residency { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "residency", "Unprocessable Content"),
            E::WrongStatus { .. } => (StatusCode::CONFLICT, "wrong-status", "Conflict"),
            E::Unreachable { .. } | E::ServerCheck { .. } => (StatusCode::BAD_GATEWAY, "server-unreachable", "Bad Gateway"),
            E::CatalogNotInitialised => (StatusCode::SERVICE_UNAVAILABLE, "catalog-not-initialised", "Service Unavailable"),
            E::Config(_) | E::MasterKeyMissing(_) | E::MasterKeyMismatch { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "misconfigured", "Internal Server Error")
            }
            E::Verify(_) => (StatusCode::CONFLICT, "verify-mismatch", "Conflict"),
            E::Archive(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-archive", "Unprocessable Content"),
            E::Import(_) => (StatusCode::UNPROCESSABLE_ENTITY, "import-refused", "Unprocessable Content"),
            E::Backup(_) => (StatusCode::UNPROCESSABLE_ENTITY, "backup", "Unprocessable Content"),
            E::Db { .. } | E::Migration(_) | E::Io { .. } | E::Failpoint(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error")
            }
        };
        Problem::new(status, code, title, e.to_string())
    }

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            type_: format!("urn:tenantgate:problem:{}", self.code),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            sqlstate: self.sqlstate.clone(),
            rule: self.rule.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_sqlstate() {
        assert_eq!(Problem::postgres("42501", "permission denied").status, StatusCode::FORBIDDEN);
        assert_eq!(Problem::postgres("25006", "read-only").status, StatusCode::FORBIDDEN);
        assert_eq!(Problem::postgres("23505", "duplicate").status, StatusCode::CONFLICT);
        assert_eq!(Problem::postgres("42P01", "no table").status, StatusCode::BAD_REQUEST);
        assert_eq!(Problem::postgres("57014", "timeout").status, StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn control_errors_map() {
        let e = tg_catalog::Error::UnknownTenant("x".into());
        assert_eq!(Problem::control(&e).status, StatusCode::NOT_FOUND);
        let e = tg_catalog::Error::DuplicateTenant("x".into());
        assert_eq!(Problem::control(&e).status, StatusCode::CONFLICT);
    }

    #[test]
    fn renders_problem_json() {
        let r = Problem::rate_limited(3).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("3"));
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
    }
}
