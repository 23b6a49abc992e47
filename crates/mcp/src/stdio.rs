//! `tenantgate mcp`: one MCP session over stdin/stdout, for the one credential the process was
//! started with (an MCP client such as Claude Desktop spawns it with the key in its env).
//!
//! The credential is checked before the session starts, so a missing, bad or revoked one ends
//! the process at once with a clear message on stderr, and again on every call. Owns nothing but
//! that: stdout carries only JSON-RPC, so this module (and the binary in this mode) must never
//! print anything else to stdout, and never prints the credential anywhere.

use std::sync::Arc;

use rmcp::ServiceExt;

use crate::error::McpError;
use crate::identity::{refusal, Identity, Source};
use crate::tools::TenantTools;

/// Serve until the client closes stdin.
pub async fn serve(identity: Arc<Identity>, token: Option<String>, tenant: Option<String>) -> Result<(), McpError> {
    let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).ok_or_else(|| {
        McpError::Credential(
            "no credential: set TENANTGATE_MCP_TOKEN (or pass --token) to a tenant API key (tgk_…) or a tenant JWT \
             (`tenantgate key create SLUG --read-only --name mcp`, or `tenantgate token SLUG --read-only`)"
                .into(),
        )
    })?;
    let caller = identity.caller(&token, tenant.as_deref()).await.map_err(|e| McpError::Credential(refusal(&e)))?;
    tracing::info!(tenant = %caller.principal.tenant, read_only = matches!(caller.principal.scope, tg_catalog::keys::KeyScope::ReadOnly), "MCP session over stdio");
    let tools = TenantTools::new(identity, Source::Process { token: Arc::from(token), tenant });
    let service = tools.serve(rmcp::transport::stdio()).await.map_err(|e| McpError::Transport(e.to_string()))?;
    service.waiting().await.map_err(|e| McpError::Transport(e.to_string()))?;
    Ok(())
}
