//! Who is calling over HTTP: the one `Authorization: Bearer` header, the `X-Tenant-ID`
//! cross-check, and the admin token of `/admin/v1/`.
//!
//! The credential itself (a JWT or a tenant API key `tgk_…`) is verified by
//! `tg_dataplane::principal`, the same code the MCP door uses; this module carries it in from
//! the header and shows a refusal as a problem (401/403/503), counting it in the metrics. The
//! tenant comes only from a verified credential: never from a query string, a body, or a
//! header on its own. `X-Tenant-ID`, when sent, must appear once and equal the credential's
//! tenant (403 otherwise). Must never log, return or label metrics with a token, key or admin
//! secret.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tg_dataplane::principal::{AuthError, Authenticator, Principal};
use tg_dataplane::router::Route;

use crate::metrics;
use crate::problem::Problem;

pub const TENANT_HEADER: &str = "x-tenant-id";

/// The one bearer token of a request, or a 401 that says what to send.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        metrics::auth_failure("missing");
        return Err(Problem::unauthorized(
            "send exactly one `Authorization: Bearer <token>` header, with a tenant JWT or API key (tgk_…)",
        ));
    };
    let v = v.to_str().unwrap_or("");
    let token = match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => "",
    };
    if token.is_empty() {
        metrics::auth_failure("malformed");
        return Err(Problem::unauthorized("the Authorization header must be `Bearer <token>`"));
    }
    Ok(token)
}

/// The principal of a request, and its tenant's route (held through a move's fence, checked
/// routable).
pub async fn principal(auth: &Authenticator<'_>, headers: &HeaderMap) -> Result<(Principal, Route), Problem> {
    let token = bearer(headers)?;
    let principal = auth.verify(token).await.map_err(auth_problem)?;
    check_tenant_header(headers, &principal.tenant)?;
    let route = auth.route(&principal).await.map_err(auth_problem)?;
    Ok((principal, route))
}

/// A refused credential as a problem, counted by reason.
pub fn auth_problem(e: AuthError) -> Problem {
    match e {
        AuthError::Unauthorized { reason, message } => {
            metrics::auth_failure(reason);
            Problem::unauthorized(message)
        }
        AuthError::Forbidden { code, message } => Problem::forbidden(code, message),
        AuthError::Unavailable(message) => Problem::unavailable(message),
    }
}

/// `X-Tenant-ID`, if sent, must be sent once and name the credential's tenant.
pub fn check_tenant_header(headers: &HeaderMap, tenant: &str) -> Result<(), Problem> {
    let mut values = headers.get_all(TENANT_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "duplicate-tenant-header",
            "send X-Tenant-ID at most once; the tenant comes from the token, and the header only confirms it",
        )),
        (Some(v), None) => {
            if v.as_bytes() == tenant.as_bytes() {
                Ok(())
            } else {
                metrics::auth_failure("tenant-mismatch");
                Err(Problem::forbidden(
                    "tenant-mismatch",
                    "X-Tenant-ID does not match the tenant of the credential; drop the header or use a credential of that tenant",
                ))
            }
        }
    }
}

/// The admin bearer token, kept as its SHA-256 so comparisons are constant-time and
/// length-independent.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN: usize = 24;

impl AdminToken {
    pub fn new(secret: &str) -> Option<AdminToken> {
        let s = secret.trim();
        (s.len() >= MIN_ADMIN_TOKEN).then(|| AdminToken(Sha256::digest(s.as_bytes()).into()))
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let token = bearer(headers)?;
        let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(d.ct_eq(&self.0)) {
            Ok(())
        } else {
            metrics::auth_failure("admin");
            Err(Problem::unauthorized("the admin token is not valid; use the one configured in http.admin_token_file or http.admin_token_env"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tenant_header_rules() {
        let mut h = HeaderMap::new();
        assert!(check_tenant_header(&h, "acme").is_ok());
        h.insert(TENANT_HEADER, HeaderValue::from_static("acme"));
        assert!(check_tenant_header(&h, "acme").is_ok());
        assert_eq!(check_tenant_header(&h, "other").map_err(|p| p.status.as_u16()), Err(403));
        h.append(TENANT_HEADER, HeaderValue::from_static("acme"));
        assert_eq!(check_tenant_header(&h, "acme").map_err(|p| p.status.as_u16()), Err(400));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h).ok(), Some("abc"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer def"));
        assert!(bearer(&h).is_err(), "two Authorization headers are refused");
    }

    #[test]
    fn admin_token_compare() {
        assert!(AdminToken::new("short").is_none());
        let t = AdminToken::new("0123456789abcdef01234567").expect("long enough");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer 0123456789abcdef01234567"));
        assert!(t.check(&h).is_ok());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer 0123456789abcdef01234568"));
        assert!(t.check(&h).is_err());
        assert!(!format!("{t:?}").contains("0123"));
    }
}
