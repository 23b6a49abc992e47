//! `GET /v1/keys` and `GET /v1/keys/{key_id}`: a tenant's view of its own API keys (never the
//! secrets).
//!
//! Owns the one tenant-side resource with ids. A key id of another tenant answers exactly like
//! an id that does not exist: same status, same body, and the same work on the way (one
//! indexed catalog read filtered by the caller's own tenant). Must never look a key up by id
//! alone.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use tg_catalog::keys::KeyInfo;

use crate::problem::Problem;

type Chrono = chrono::DateTime<chrono::Utc>;
use crate::server::{Shared, TenantSlot};

/// An API key as listed: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    /// `read-write` or `read-only`.
    pub scope: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Chrono,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Chrono>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Chrono>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> KeyView {
        KeyView {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            scope: k.scope.as_str().to_string(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

async fn own_keys(st: &Shared, route: &tg_dataplane::router::Route) -> Result<Vec<KeyInfo>, Problem> {
    let cat = st
        .data
        .router
        .catalog()
        .await
        .map_err(|_| Problem::unavailable("tenantgate cannot read its catalog right now; try again in a moment"))?;
    cat.keys(route.tenant.as_str(), &route.slug)
        .await
        .map_err(|_| Problem::unavailable("tenantgate cannot read its catalog right now; try again in a moment"))
}

#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "tenant",
    responses(
        (status = 200, description = "The caller's tenant's keys", body = [KeyView]),
        (status = 401, description = "Missing or invalid credential", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "X-Tenant-ID mismatch or tenant unavailable", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_keys(
    State(st): State<Shared>,
    Extension(slot): Extension<TenantSlot>,
    headers: HeaderMap,
) -> Result<Json<Vec<KeyView>>, Problem> {
    let (_, route) = st.tenant(&headers, &slot).await?;
    Ok(Json(own_keys(&st, &route).await?.into_iter().map(KeyView::from).collect()))
}

/// The answer for a key id this tenant does not have, whoever (if anyone) has it: the same
/// bytes every time, not even echoing the id.
pub fn no_such_key() -> Problem {
    Problem::not_found("this tenant has no such key; GET /v1/keys lists its keys")
}

#[utoipa::path(
    get,
    path = "/v1/keys/{key_id}",
    tag = "tenant",
    params(("key_id" = String, Path, description = "Public key id (8 hex digits)")),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 401, description = "Missing or invalid credential", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key for this tenant (also for other tenants' keys)", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_key(
    State(st): State<Shared>,
    Extension(slot): Extension<TenantSlot>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Json<KeyView>, Problem> {
    let (_, route) = st.tenant(&headers, &slot).await?;
    let keys = own_keys(&st, &route).await?;
    keys.into_iter().find(|k| k.id == key_id).map(|k| Json(KeyView::from(k))).ok_or_else(no_such_key)
}
