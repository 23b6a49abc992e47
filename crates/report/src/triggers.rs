//! Re-evaluation triggers (DESIGN §7): conditions under which the multi-tenancy
//! decision should be revisited, each with a threshold, a current value and a state.
//!
//! - `pooled-tenant-count`: pooled tenants vs `reports.max_pooled_tenants`;
//! - `largest-pooled-tenant`: the largest pooled tenant's measured bytes vs
//!   `reports.max_pooled_tenant_bytes`;
//! - `unmet-requirements`: tenants whose declared requirements their placement does not
//!   meet; a requirement this build does not understand counts (as unsupported);
//! - `residency-violations`: tenants whose server's region is outside their residency.
//!
//! State: `fired` when the value reaches the threshold, `approaching` from 80% of it,
//! else `ok`. `tenantgate triggers` exits 3 when any trigger fired (EXIT_FIRED).
//! Owns the evaluation only; it reads nothing but [`Facts`] and never rounds a
//! missing measurement to zero.

use serde::Serialize;

use crate::facts::{Facts, SRC_SERVERS, SRC_TENANTS};
use crate::requirements::{self, Outcome};
use crate::text;

/// Exit status of `tenantgate triggers` when at least one trigger fired.
pub const EXIT_FIRED: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Approaching,
    Fired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Approaching => "approaching",
            State::Fired => "fired",
        }
    }
}

/// `fired` at value ≥ threshold, `approaching` at value ≥ 80% of threshold, else `ok`.
/// A threshold of 0 fires always (the config loader refuses 0 for the size and count
/// thresholds; this function stays total).
pub fn state(value: u64, threshold: u64) -> State {
    let (v, t) = (value as u128, threshold as u128);
    if v >= t {
        State::Fired
    } else if v * 5 >= t * 4 {
        State::Approaching
    } else {
        State::Ok
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub threshold: u64,
    /// The current value. Tenants that could not be measured are listed in `detail`,
    /// never counted as zero bytes.
    pub value: u64,
    pub state: State,
    /// Human-readable threshold and value.
    pub threshold_text: String,
    pub value_text: String,
    /// One line per finding (e.g. per offending tenant), sorted.
    pub detail: Vec<String>,
    /// The facts it rests on.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub date: chrono::NaiveDate,
    /// The worst state of any trigger.
    pub state: State,
    pub exit_code: u8,
    pub triggers: Vec<Trigger>,
}

/// Per-tenant requirement findings: (slug, requirement, outcome) for every not-met one.
pub fn requirement_findings(facts: &Facts) -> Vec<(String, String, Outcome)> {
    let mut out = Vec::new();
    for t in &facts.tenants {
        for r in &t.requires {
            let o = requirements::check(r, t.placement, &t.region);
            if !o.is_met() {
                out.push((t.slug.clone(), r.clone(), o));
            }
        }
    }
    out
}

pub fn evaluate(facts: &Facts) -> Evaluation {
    let mut triggers = Vec::new();

    let pooled = facts.count(tg_control::model::Placement::Pooled) as u64;
    let max = facts.thresholds.max_pooled_tenants.value;
    triggers.push(Trigger {
        id: "pooled-tenant-count",
        title: "Pooled tenants",
        unit: "tenants",
        threshold: max,
        value: pooled,
        state: state(pooled, max),
        threshold_text: text::count(max as usize, "tenant", "tenants"),
        value_text: text::count(pooled as usize, "tenant", "tenants"),
        detail: Vec::new(),
        sources: vec![SRC_TENANTS.into(), facts.thresholds.max_pooled_tenants.source.clone()],
    });

    let max_bytes = facts.thresholds.max_pooled_tenant_bytes.value;
    let unmeasured: Vec<String> = facts
        .tenants
        .iter()
        .filter(|t| t.placement == tg_control::model::Placement::Pooled && t.size.bytes.is_none())
        .map(|t| format!("{}: {}", t.slug, t.size.method))
        .collect();
    let (bytes, value_text, mut sources) = match facts.largest_pooled() {
        Some(t) => {
            let b = t.size.bytes.unwrap_or(0);
            (b, format!("{} ({})", text::bytes(b), t.slug), vec![t.size.source.clone()])
        }
        None if pooled == 0 => (0, "no pooled tenants".to_string(), vec![SRC_TENANTS.to_string()]),
        None => (0, "no pooled tenant could be measured".to_string(), vec![SRC_TENANTS.to_string()]),
    };
    sources.push(facts.thresholds.max_pooled_tenant_bytes.source.clone());
    triggers.push(Trigger {
        id: "largest-pooled-tenant",
        title: "Largest pooled tenant",
        unit: "bytes",
        threshold: max_bytes,
        value: bytes,
        state: state(bytes, max_bytes),
        threshold_text: text::bytes(max_bytes),
        value_text,
        detail: unmeasured.into_iter().map(|u| format!("not measured: {u}")).collect(),
        sources,
    });

    let findings = requirement_findings(facts);
    let mut offenders: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
    offenders.dedup();
    let detail = findings
        .iter()
        .map(|(slug, req, o)| match o {
            Outcome::Unmet(why) => format!("{slug}: {req}: unmet: {why}"),
            Outcome::Unsupported(why) => format!("{slug}: {req}: unsupported: {why}"),
            Outcome::Met => format!("{slug}: {req}: met"),
        })
        .collect();
    triggers.push(Trigger {
        id: "unmet-requirements",
        title: "Tenants whose declared requirements their placement does not meet",
        unit: "tenants",
        threshold: 1,
        value: offenders.len() as u64,
        state: state(offenders.len() as u64, 1),
        threshold_text: "any tenant".into(),
        value_text: text::count(offenders.len(), "tenant", "tenants"),
        detail,
        sources: vec![format!("{SRC_TENANTS} (requires, placement)"), SRC_SERVERS.into()],
    });

    let violations: Vec<String> = facts
        .tenants
        .iter()
        .filter(|t| !t.residency.is_empty() && !t.residency.contains(&t.region))
        .map(|t| {
            format!(
                "{}: residency {} but server {} is in region {}",
                t.slug,
                t.residency.join(","),
                t.server,
                t.region
            )
        })
        .collect();
    triggers.push(Trigger {
        id: "residency-violations",
        title: "Tenants stored outside their residency",
        unit: "tenants",
        threshold: 1,
        value: violations.len() as u64,
        state: state(violations.len() as u64, 1),
        threshold_text: "any tenant".into(),
        value_text: text::count(violations.len(), "tenant", "tenants"),
        detail: violations,
        sources: vec![format!("{SRC_TENANTS} (residency, server)"), SRC_SERVERS.into()],
    });

    let worst = triggers.iter().map(|t| t.state).max().unwrap_or(State::Ok);
    Evaluation {
        date: facts.date,
        state: worst,
        exit_code: if worst == State::Fired { EXIT_FIRED } else { 0 },
        triggers,
    }
}

/// Plain-text rendering for the terminal.
pub fn to_text(e: &Evaluation) -> String {
    let mut s = String::new();
    for t in &e.triggers {
        s.push_str(&format!(
            "{:<12} {}: {} (threshold {})\n",
            t.state.as_str(),
            t.id,
            t.value_text,
            t.threshold_text
        ));
        for d in &t.detail {
            s.push_str(&format!("             - {d}\n"));
        }
    }
    let summary = match e.state {
        State::Fired => format!("at least one trigger fired: re-evaluate the placement decision (exit {EXIT_FIRED})"),
        State::Approaching => "no trigger fired; at least one is approaching its threshold".into(),
        State::Ok => "all triggers ok".into(),
    };
    s.push_str(&summary);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_math() {
        assert_eq!(state(0, 500), State::Ok);
        assert_eq!(state(399, 500), State::Ok);
        assert_eq!(state(400, 500), State::Approaching);
        assert_eq!(state(499, 500), State::Approaching);
        assert_eq!(state(500, 500), State::Fired);
        assert_eq!(state(501, 500), State::Fired);
        // 80% of 5 is 4.
        assert_eq!(state(3, 5), State::Ok);
        assert_eq!(state(4, 5), State::Approaching);
        assert_eq!(state(5, 5), State::Fired);
        // Thresholds of 1 ("any"): zero is ok, one fires.
        assert_eq!(state(0, 1), State::Ok);
        assert_eq!(state(1, 1), State::Fired);
        // 80% of 3 is 2.4: 2 is ok, 3 fired.
        assert_eq!(state(2, 3), State::Ok);
        // No overflow at the top of the range.
        assert_eq!(state(u64::MAX, u64::MAX), State::Fired);
        assert_eq!(state(u64::MAX - 1, u64::MAX), State::Approaching);
        assert_eq!(state(0, 0), State::Fired);
        // 100 GB default.
        assert_eq!(state(79_999_999_999, 100_000_000_000), State::Ok);
        assert_eq!(state(80_000_000_000, 100_000_000_000), State::Approaching);
    }

    #[test]
    fn ordering_gives_worst() {
        assert!(State::Fired > State::Approaching && State::Approaching > State::Ok);
    }
}
