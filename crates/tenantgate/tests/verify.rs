//! `tenantgate verify` against a real two-server deployment: it passes on a healthy
//! deployment, records its run, cleans up its probes, and fails, naming the right check
//! or scenario, when isolation is broken on purpose.

mod common;

use common::Deployment;
use serde_json::Value;

fn deployment() -> Deployment {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    d.create("pooled-co", "pooled", "us-1");
    d.create("schema-co", "schema", "us-1");
    d.create("database-eu", "database", "eu-1");
    d
}

fn verify_json(d: &Deployment, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = d.tg(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("verify --json printed no JSON ({e}):\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), v)
}

fn failed_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["runs"]
        .as_array()
        .map(|runs| runs.iter().filter(|r| r["passed"] == false).filter_map(|r| r["id"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    ids
}

fn failed_checks(v: &Value) -> Vec<String> {
    v["audit"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["severity"] == "fail").filter_map(|f| f["check"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[test]
fn verify_passes_on_a_healthy_deployment_records_the_run_and_erases_its_probes() {
    let d = deployment();
    // The latency bound is generous here: tests run in parallel on a 2-core machine.
    let (ok, v) = verify_json(&d, &["--latency-bound-ms", "5000"]);
    assert!(ok && v["passed"] == true, "verify failed on a healthy deployment: failed {:?}, audit {:?}", failed_ids(&v), v["audit"]);
    assert!(v["scenarios"].as_u64().unwrap_or(0) >= 60, "at least 60 scenarios, ran {}", v["scenarios"]);
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    for gate in [true, false] {
        assert!(runs.iter().any(|r| r["gate"] == gate), "runs with gate={gate} missing");
    }
    for group in ["role", "rls", "catalog", "channels", "session", "escape", "resource", "stacking", "wire", "llm", "http", "differential"] {
        assert!(runs.iter().any(|r| r["group"] == group), "group {group} did not run");
    }
    // Smuggling past the gate: with the gate on, every differential run was refused by it.
    let smuggled: Vec<&Value> = runs.iter().filter(|r| r["group"] == "differential" && r["gate"] == true).collect();
    assert!(smuggled.len() >= 8, "{smuggled:?}");
    assert!(smuggled.iter().all(|r| r["outcome"].as_str().unwrap_or("").contains("refused by the gate")), "{smuggled:#?}");
    // Every placement attacked every placement.
    for a in ["pooled", "schema", "database"] {
        for b in ["pooled", "schema", "database"] {
            assert!(runs.iter().any(|r| r["attacker"] == a && r["victim"] == b), "no run {a} -> {b}");
        }
    }
    // Every run states how it ended.
    assert!(runs.iter().all(|r| r["outcome"].as_str().is_some_and(|s| !s.is_empty())));
    // With the gate on, some attacks are stopped by the gate; with it off, by the database.
    assert!(runs.iter().any(|r| r["gate"] == true && r["outcome"].as_str().unwrap_or("").contains("refused by the gate")));
    assert!(runs.iter().any(|r| r["gate"] == false && r["outcome"].as_str().unwrap_or("").contains("refused by the database")));
    // The probes are gone, the real tenants untouched, and the run is in the catalog.
    let tenants = d.json(&["tenant", "list", "--json"]);
    let slugs: Vec<&str> = tenants.as_array().map(|a| a.iter().filter_map(|t| t["slug"].as_str()).collect()).unwrap_or_default();
    assert_eq!(slugs.len(), 3, "probes left behind: {slugs:?}");
    let recorded = d.admin("us-1", "tenantgate", "SELECT passed::text || ',' || scenarios FROM tg.verify_runs ORDER BY id DESC LIMIT 1");
    assert_eq!(recorded, format!("true,{}", v["scenarios"]));
    // The secrets of the probes' keys are never printed.
    let text = serde_json::to_string(&v).unwrap_or_default();
    assert!(!text.contains("tgk_"), "a key secret leaked into verify --json");
    assert!(!text.contains("eyJ"), "a JWT leaked into verify --json");
    // The HTTP API was attacked with the gate on and off, and its positive control passed.
    for gate in [true, false] {
        assert!(runs.iter().any(|r| r["id"] == "http.own-rows-jwt" && r["gate"] == gate && r["passed"] == true), "http.own-rows-jwt (gate {gate}) missing");
    }
}

#[test]
fn verify_fails_when_isolation_is_broken_on_purpose() {
    let d = deployment();
    let pooled = d.tenant("pooled-co");
    let schema = d.tenant("schema-co");
    let db = d.tenant("database-eu");
    let (ok, v) = verify_json(&d, &["--only", "audit"]);
    assert!(ok, "the audit fails on a healthy deployment: {:?}", v["audit"]);

    let breaks: Vec<(&str, &str, String, &str, String)> = vec![
        ("us-1", "postgres", format!("ALTER ROLE \"{}\" BYPASSRLS", pooled.key), "audit.role-attributes", format!("ALTER ROLE \"{}\" NOBYPASSRLS", pooled.key)),
        ("us-1", "tg_pool", "ALTER TABLE app.orders NO FORCE ROW LEVEL SECURITY".into(), "audit.rls-forced", "ALTER TABLE app.orders FORCE ROW LEVEL SECURITY".into()),
        ("us-1", "postgres", format!("GRANT \"{}\" TO tg_pool_rw", schema.key), "audit.role-membership", format!("REVOKE \"{}\" FROM tg_pool_rw", schema.key)),
        (
            "us-1",
            "tg_pool",
            "ALTER POLICY tenant_isolation ON app.menu_items USING (tenant_id = current_setting('app.tenant_id'))".into(),
            "audit.policy-shape",
            "ALTER POLICY tenant_isolation ON app.menu_items USING (tenant_id = left(session_user::text, 13))".into(),
        ),
        ("eu-1", "postgres", format!("GRANT CONNECT ON DATABASE \"{}\" TO PUBLIC", db.key), "audit.public-connect", format!("REVOKE CONNECT ON DATABASE \"{}\" FROM PUBLIC", db.key)),
    ];
    for (server, database, broken, check, fix) in &breaks {
        d.admin(server, database, broken);
        let (ok, v) = verify_json(&d, &["--only", "audit"]);
        assert!(!ok && v["passed"] == false, "verify passed although {broken:?}");
        let checks = failed_checks(&v);
        assert!(checks.contains(&check.to_string()), "{broken:?} must fail {check}, failed {checks:?}");
        d.admin(server, database, fix);
    }
    let (ok, v) = verify_json(&d, &["--only", "audit"]);
    assert!(ok, "repaired deployment still fails: {:?}", v["audit"]);

    // A policy keyed on a custom setting is not only flagged by the audit: the attack
    // catalogue exploits it (with the gate off) on the pooled probes, which share a database.
    for server in ["us-1", "eu-1"] {
        d.admin(server, "tg_pool", "ALTER POLICY tenant_isolation ON app.branches USING (tenant_id = current_setting('app.tenant_id', true))");
    }
    let (ok, v) = verify_json(&d, &["--only", "role"]);
    assert!(!ok, "verify passed with a custom-setting policy");
    let failed = failed_ids(&v);
    assert!(failed.contains(&"role.custom-setting".to_string()), "role.custom-setting must fail, failed: {failed:?}");
    let leak = v["runs"].as_array().and_then(|r| r.iter().find(|r| r["id"] == "role.custom-setting" && r["passed"] == false)).cloned().unwrap_or_default();
    assert_eq!(leak["gate"], false, "with the gate on, SET of a custom setting is refused; the leak shows with it off: {leak}");
    assert_eq!(leak["attacker"], "pooled");
    assert!(failed_checks(&v).contains(&"audit.policy-shape".to_string()));
}
