//! Rebalancing: scaling the pooled placement out by moving pooled tenants between the
//! servers of one region, so that their bytes even out.
//!
//! Owns the plan (which pooled tenant goes to which server) and applying it one move at a
//! time through `moves`. It plans only moves between servers of the same region, so a move
//! can never leave a tenant's residency, and it never moves a tenant that has an open
//! operation or is not active.

use std::collections::HashMap;

use serde::Serialize;

use super::{moves, rows};
use crate::catalog::{Catalog, Server};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Placement, TenantStatus};
use crate::placement::{ServerAdmin, POOL_DB};

/// One proposed move.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMove {
    pub slug: String,
    pub bytes: u64,
    pub from_server: String,
    pub to_server: String,
}

/// Pooled bytes per server of a region, before and after the plan.
#[derive(Debug, Clone, Serialize)]
pub struct ServerLoad {
    pub server: String,
    pub region: String,
    pub tenants_before: usize,
    pub bytes_before: u64,
    pub tenants_after: usize,
    pub bytes_after: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub moves: Vec<PlannedMove>,
    pub servers: Vec<ServerLoad>,
    /// How pooled tenants' bytes are measured.
    pub method: &'static str,
}

/// At most this many moves per plan: rebalancing is incremental; run it again.
const MAX_MOVES: usize = 20;

/// Propose moves that even out pooled bytes across the servers of each region (or of
/// `region` only). A move is proposed only when it makes the spread strictly smaller.
pub async fn plan(catalog: &Catalog, region: Option<&str>) -> Result<Plan> {
    let servers: Vec<Server> = catalog.servers().await?.into_iter().filter(|s| region.is_none_or(|r| s.region == r)).collect();
    if let (Some(r), true) = (region, servers.is_empty()) {
        return Err(Error::NoServerInResidency(r.to_string()));
    }
    let tenants = catalog.tenants().await?;
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for s in &servers {
        if !tenants.iter().any(|t| t.server == s.name && t.placement == Placement::Pooled) {
            continue;
        }
        let c = ServerAdmin { name: &s.name, url: &s.url }.connect(Some(POOL_DB)).await?;
        sizes.extend(rows::pooled_bytes(&c).await?);
    }
    let mut moves_out = Vec::new();
    let mut loads = Vec::new();
    let mut regions: Vec<&str> = servers.iter().map(|s| s.region.as_str()).collect();
    regions.sort();
    regions.dedup();
    for reg in regions {
        let here: Vec<&Server> = servers.iter().filter(|s| s.region == reg).collect();
        // (slug, bytes) of movable pooled tenants, per server.
        let mut on: HashMap<&str, Vec<(String, u64)>> = here.iter().map(|s| (s.name.as_str(), Vec::new())).collect();
        for t in tenants.iter().filter(|t| t.placement == Placement::Pooled && !t.is_probe) {
            if let Some(list) = on.get_mut(t.server.as_str()) {
                let movable = t.status == TenantStatus::Active && catalog.open_op(&t.key).await?.is_none();
                let bytes = sizes.get(t.key.as_str()).copied().unwrap_or(0);
                list.push((if movable { t.slug.clone() } else { String::new() }, bytes));
            }
        }
        let before: HashMap<&str, (usize, u64)> = on.iter().map(|(s, l)| (*s, (l.len(), l.iter().map(|x| x.1).sum()))).collect();
        while moves_out.len() < MAX_MOVES && here.len() > 1 {
            let total = |s: &str, on: &HashMap<&str, Vec<(String, u64)>>| on[s].iter().map(|x| x.1).sum::<u64>();
            let mut names: Vec<&str> = here.iter().map(|s| s.name.as_str()).collect();
            names.sort_by_key(|s| (total(s, &on), *s));
            let (lo, hi) = (names[0], names[names.len() - 1]);
            let gap = total(hi, &on) - total(lo, &on);
            // The largest movable tenant that narrows the gap: moving b bytes from hi to lo
            // leaves |gap - 2b|, smaller than gap exactly when 0 < b < gap.
            let pick = on[hi]
                .iter()
                .enumerate()
                .filter(|(_, (slug, b))| !slug.is_empty() && *b > 0 && *b < gap)
                .max_by_key(|(_, (_, b))| *b)
                .map(|(i, _)| i);
            let Some(i) = pick else { break };
            let t = on.get_mut(hi).map(|l| l.remove(i)).unwrap_or_default();
            moves_out.push(PlannedMove { slug: t.0.clone(), bytes: t.1, from_server: hi.to_string(), to_server: lo.to_string() });
            if let Some(l) = on.get_mut(lo) {
                l.push((String::new(), t.1));
            }
        }
        for s in &here {
            let (tb, bb) = before.get(s.name.as_str()).copied().unwrap_or((0, 0));
            let after = &on[s.name.as_str()];
            loads.push(ServerLoad {
                server: s.name.clone(),
                region: s.region.clone(),
                tenants_before: tb,
                bytes_before: bb,
                tenants_after: after.len(),
                bytes_after: after.iter().map(|x| x.1).sum(),
            });
        }
    }
    loads.sort_by(|a, b| (&a.region, &a.server).cmp(&(&b.region, &b.server)));
    Ok(Plan {
        moves: moves_out,
        servers: loads,
        method: "estimate: sum(pg_column_size(row)) over each pooled tenant's rows in the shared tables",
    })
}

/// Run the plan's moves one at a time (pooled → pooled on the planned server). Stops at the
/// first move that fails; the moves before it are done, and the failed one can be resumed
/// or aborted with `tenant move`.
pub async fn apply(cfg: &Config, catalog: &mut Catalog, plan: &Plan, report: moves::Reporter<'_>) -> Result<Vec<moves::MoveStatus>> {
    let mut done = Vec::new();
    for m in &plan.moves {
        let req = moves::MoveRequest { slug: m.slug.clone(), to: Placement::Pooled, server: Some(m.to_server.clone()) };
        done.push(moves::start(cfg, catalog, &req, report).await?);
    }
    Ok(done)
}
