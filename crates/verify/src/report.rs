//! Rendering a verify report for the terminal. JSON output is the `Report` itself.
//!
//! Owns presentation only: it never decides pass or fail.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::audit::Severity;
use crate::Report;

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let mut groups: BTreeMap<&str, (std::collections::BTreeSet<&str>, usize, usize, usize)> = BTreeMap::new();
    for run in &r.runs {
        let g = groups.entry(run.group).or_default();
        g.0.insert(run.id);
        g.1 += 1;
        if !run.verdict.passed {
            g.2 += 1;
        }
        if run.verdict.residual {
            g.3 += 1;
        }
    }
    let _ = writeln!(out, "{:<12} {:>9} {:>6} {:>7} {:>9}", "GROUP", "SCENARIOS", "RUNS", "FAILED", "RESIDUAL");
    for (g, (ids, runs, failed, residual)) in &groups {
        let _ = writeln!(out, "{g:<12} {:>9} {runs:>6} {failed:>7} {residual:>9}", ids.len());
    }
    let gates: std::collections::BTreeSet<&str> = r.runs.iter().map(|x| if x.gate { "on" } else { "off" }).collect();
    let _ = writeln!(
        out,
        "\n{} scenarios, {} runs (gate {}), {} probe tenants; another tenant's worst latency during exhaustion attacks: {} ms (bound {} ms)",
        r.scenarios,
        r.runs.len(),
        gates.into_iter().collect::<Vec<_>>().join(" and "),
        r.probes.len(),
        r.max_other_tenant_latency_ms,
        r.latency_bound_ms
    );
    let failed: Vec<_> = r.runs.iter().filter(|x| !x.verdict.passed).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nFAILED scenarios:");
        for f in failed.iter().take(50) {
            let _ = writeln!(
                out,
                "  {} [{} → {}, gate {}]: {} — {}",
                f.id,
                f.attacker,
                f.victim.as_deref().unwrap_or("all"),
                if f.gate { "on" } else { "off" },
                f.verdict.outcome,
                f.verdict.evidence
            );
        }
        if failed.len() > 50 {
            let _ = writeln!(out, "  … and {} more (see --json)", failed.len() - 50);
        }
    }
    let mut residual: Vec<&str> = r.runs.iter().filter(|x| x.verdict.residual).map(|x| x.id).collect();
    residual.sort();
    residual.dedup();
    if !residual.is_empty() {
        let _ = writeln!(out, "\nResidual risks without the gate (shared within one database; the `database` placement removes them): {}", residual.join(", "));
    }
    if !r.audit.is_empty() {
        let _ = writeln!(out, "\nAudit:");
        for a in &r.audit {
            let _ = writeln!(out, "  {} {} [{}]: {}", if a.severity == Severity::Fail { "FAIL" } else { "warn" }, a.check, a.server, a.message);
        }
    } else {
        let _ = writeln!(out, "\nAudit: all {} checks passed on every server", crate::audit::CHECKS.len());
    }
    let _ = writeln!(out, "\n{}", if r.passed { "verify PASSED: no tenant reached another tenant's data" } else { "verify FAILED" });
    out
}
