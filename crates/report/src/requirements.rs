//! Declared tenant requirements (`tenant create/update --requires ...`): what they mean,
//! how they are validated, and whether a placement meets them.
//!
//! Known requirements:
//! - `dedicated-database`: the tenant's rows live in a database of their own (placement `database`);
//! - `dedicated-schema`: the rows live at least in a schema of their own (`schema` or `database`);
//! - `region:<r>`: the tenant's server is in region `<r>`.
//!
//! Owns the vocabulary and the matching. It never treats a requirement it does not
//! understand as met: such a requirement (e.g. written to the catalog by a newer
//! version) is reported as unsupported. `update` is the only write in this crate.

use serde::Serialize;
use tg_control::catalog::{Catalog, Tenant};
use tg_control::model::{validate_name, Placement};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    DedicatedDatabase,
    DedicatedSchema,
    Region(String),
    /// Anything else found in the catalog; never satisfied, always reported.
    Unknown(String),
}

impl Requirement {
    pub fn parse(s: &str) -> Requirement {
        match s {
            "dedicated-database" => Requirement::DedicatedDatabase,
            "dedicated-schema" => Requirement::DedicatedSchema,
            _ => match s.strip_prefix("region:") {
                Some(r) if validate_name("region", r).is_ok() => Requirement::Region(r.to_string()),
                _ => Requirement::Unknown(s.to_string()),
            },
        }
    }
}

/// How a requirement fares against a tenant's placement and server region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Met,
    Unmet(String),
    Unsupported(String),
}

impl Outcome {
    pub fn is_met(&self) -> bool {
        matches!(self, Outcome::Met)
    }
}

/// Does `placement` on a server in `region` meet the requirement `raw`?
pub fn check(raw: &str, placement: Placement, region: &str) -> Outcome {
    match Requirement::parse(raw) {
        Requirement::DedicatedDatabase => match placement {
            Placement::Database => Outcome::Met,
            p => Outcome::Unmet(format!("requires a dedicated database but is in placement {p}")),
        },
        Requirement::DedicatedSchema => match placement {
            Placement::Schema | Placement::Database => Outcome::Met,
            p => Outcome::Unmet(format!("requires at least a dedicated schema but is in placement {p}")),
        },
        Requirement::Region(r) if r == region => Outcome::Met,
        Requirement::Region(r) => Outcome::Unmet(format!("requires region {r} but its server is in region {region}")),
        Requirement::Unknown(s) => Outcome::Unsupported(format!(
            "requirement {s:?} is not one this build understands (dedicated-database, dedicated-schema, region:<r>); it cannot be checked"
        )),
    }
}

/// Validate and normalise a `--requires` list: trimmed, empty entries dropped (so
/// `--requires ''` clears), duplicates removed, sorted. Unknown values are refused.
pub fn normalize(values: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        if let Requirement::Unknown(_) = Requirement::parse(v) {
            let reason = if v.starts_with("region:") {
                "a region is 1-40 lowercase letters, digits and '-', starting with a letter".to_string()
            } else {
                "not a known requirement".to_string()
            };
            return Err(Error::InvalidRequirement { value: v.to_string(), reason });
        }
        out.push(v.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `tenant update SLUG --requires LIST`: replace the tenant's declared requirements.
/// Validates first; changes nothing on bad input. Audited as `tenant.update`.
pub async fn update(catalog: &Catalog, slug: &str, values: &[String]) -> Result<Tenant> {
    let requires = normalize(values)?;
    let before = catalog.tenant(slug).await?;
    catalog.set_requires(slug, &requires).await?;
    let detail = serde_json::json!({"requires": {"before": before.requires, "after": requires}});
    catalog.audit("tenant.update", Some(&before.key), detail).await?;
    Ok(catalog.tenant(slug).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        use Placement::*;
        assert!(check("dedicated-database", Database, "us-east").is_met());
        assert!(!check("dedicated-database", Schema, "us-east").is_met());
        assert!(!check("dedicated-database", Pooled, "us-east").is_met());
        assert!(check("dedicated-schema", Schema, "x").is_met());
        assert!(check("dedicated-schema", Database, "x").is_met());
        assert!(matches!(check("dedicated-schema", Pooled, "x"), Outcome::Unmet(_)));
        assert!(check("region:eu-central", Pooled, "eu-central").is_met());
        let o = check("region:eu-central", Database, "us-east");
        assert!(matches!(&o, Outcome::Unmet(r) if r.contains("eu-central") && r.contains("us-east")), "{o:?}");
        // Unknown is never met, and is distinguishable from unmet.
        assert!(matches!(check("hipaa-enclave", Database, "x"), Outcome::Unsupported(_)));
        assert!(matches!(check("region:", Database, "x"), Outcome::Unsupported(_)));
        assert!(matches!(check("region:EU", Database, "x"), Outcome::Unsupported(_)));
    }

    #[test]
    fn normalizing() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize(&v(&[" region:eu-central", "dedicated-database", "dedicated-database"])).unwrap(),
            v(&["dedicated-database", "region:eu-central"])
        );
        assert!(normalize(&v(&[""])).unwrap().is_empty());
        let e = normalize(&v(&["dedicated-database", "gold-tier"])).unwrap_err().to_string();
        assert!(e.contains("gold-tier") && e.contains("Known requirements"), "{e}");
        assert!(normalize(&v(&["region:Europe"])).unwrap_err().to_string().contains("a region is"));
    }
}
