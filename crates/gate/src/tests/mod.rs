//! Behaviour tests for the gate, one module per concern, with shared helpers.

mod cache;
pub(crate) mod corpus;
mod differential;
mod read_only;
mod robustness;
mod rules;
mod scoped_catalog;
mod session;
mod settings;

use crate::{Denial, Gate, GateConfig, Limits, Scope, Verdict};

fn gate() -> Gate {
    Gate::new(GateConfig::default())
}

/// Checks `sql` read-write without limits and expects it allowed.
#[track_caller]
fn allowed(sql: &str) -> Verdict {
    match gate().check("t", sql, Scope::ReadWrite, &Limits::default()) {
        Ok(verdict) => verdict,
        Err(denial) => panic!("expected {sql:?} to be allowed, got {denial:?}"),
    }
}

/// Checks `sql` read-write without limits and expects it denied by `rule`.
#[track_caller]
fn denied(sql: &str, rule: &str) -> Denial {
    denied_by(&gate(), sql, Scope::ReadWrite, &Limits::default(), rule)
}

#[track_caller]
fn denied_by(gate: &Gate, sql: &str, scope: Scope, limits: &Limits, rule: &str) -> Denial {
    match gate.check("t", sql, scope, limits) {
        Ok(verdict) => panic!("expected {sql:?} to be denied by {rule}, got {verdict:?}"),
        Err(denial) => {
            assert_eq!(denial.rule, rule, "{sql:?}: {}", denial.message);
            assert!(
                denial.message.starts_with("tenantgate: ")
                    && denial.message.contains(&format!("(rule {rule})")),
                "message must name the rule: {}",
                denial.message
            );
            denial
        }
    }
}
