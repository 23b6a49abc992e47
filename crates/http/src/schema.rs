//! `GET /v1/schema`: the tenant's tables, columns, types, keys and comments, compact enough to
//! paste into an LLM prompt.
//!
//! The description is `tg_dataplane::schema::describe` (read as the tenant's own role; the
//! MCP door shows the same one). Owns its typed shape and its two renderings (JSON, and
//! `?format=text`). Must never describe anything but what that call returned.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::Problem;
use crate::server::{Shared, TenantSlot};
use crate::sql::statement_problem;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub references: String,
    pub referenced_columns: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaTable {
    pub name: String,
    /// `table`, `view`, `materialized view` or `foreign table`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub columns: Vec<SchemaColumn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_keys: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaResponse {
    pub tables: Vec<SchemaTable>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SchemaQuery {
    /// `json` (default) or `text`: one compact line per column, for a prompt.
    pub format: Option<String>,
}

/// The compact text form:
/// `table branches -- Restaurants …` / `  name text NOT NULL -- Display name …` / keys.
pub fn render_text(tables: &[SchemaTable]) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("{} {}", t.kind, t.name));
        if let Some(c) = &t.comment {
            out.push_str(&format!(" -- {}", one_line(c)));
        }
        out.push('\n');
        for c in &t.columns {
            out.push_str(&format!("  {} {}{}", c.name, c.type_, if c.nullable { "" } else { " NOT NULL" }));
            if let Some(cm) = &c.comment {
                out.push_str(&format!(" -- {}", one_line(cm)));
            }
            out.push('\n');
        }
        if !t.primary_key.is_empty() {
            out.push_str(&format!("  PRIMARY KEY ({})\n", t.primary_key.join(", ")));
        }
        for u in &t.unique_keys {
            if !u.is_empty() {
                out.push_str(&format!("  UNIQUE ({})\n", u.join(", ")));
            }
        }
        for f in &t.foreign_keys {
            out.push_str(&format!(
                "  FOREIGN KEY ({}) REFERENCES {} ({})\n",
                f.columns.join(", "),
                f.references,
                f.referenced_columns.join(", ")
            ));
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[utoipa::path(
    get,
    path = "/v1/schema",
    tag = "tenant",
    params(SchemaQuery, ("X-Tenant-ID" = Option<String>, Header, description = "If sent, must equal the credential's tenant")),
    responses(
        (status = 200, description = "The tenant's tables (JSON, or text/plain with format=text)", body = SchemaResponse),
        (status = 400, description = "Unknown format", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "X-Tenant-ID mismatch or tenant unavailable", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_schema(
    State(st): State<Shared>,
    Extension(slot): Extension<TenantSlot>,
    headers: HeaderMap,
    query: Result<Query<SchemaQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let (principal, route) = st.tenant(&headers, &slot).await?;
    let format = query.ok().and_then(|q| q.0.format);
    let text = match format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(_) => return Err(Problem::bad_request("bad-format", "format must be `json` or `text`")),
    };
    let doc = tg_dataplane::schema::describe(&st.data, &principal, &route).await.map_err(statement_problem)?;
    let tables: Vec<SchemaTable> = serde_json::from_value(doc)
        .map_err(|e| Problem::internal(format!("the schema description could not be read ({e}); report this as a bug")))?;
    if text {
        let mut r = render_text(&tables).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return Ok(r);
    }
    Ok(Json(SchemaResponse { tables }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rendering_is_compact() {
        let t = SchemaTable {
            name: "branches".into(),
            kind: "table".into(),
            comment: Some("Restaurants\nof the tenant.".into()),
            columns: vec![SchemaColumn { name: "name".into(), type_: "text".into(), nullable: false, comment: None }],
            primary_key: vec!["branch_id".into()],
            unique_keys: vec![vec!["name".into()]],
            foreign_keys: vec![],
        };
        assert_eq!(
            render_text(&[t]),
            "table branches -- Restaurants of the tenant.\n  name text NOT NULL\n  PRIMARY KEY (branch_id)\n  UNIQUE (name)\n"
        );
    }
}
