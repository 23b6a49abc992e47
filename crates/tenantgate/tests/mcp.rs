//! The MCP door end to end (issue 17), driven by the official MCP Python SDK client over both
//! transports: stdio (`tenantgate mcp`, spawned by the SDK) and streamable HTTP (`/mcp` on a
//! running `tenantgate serve`).
//!
//! One deployment (two regions), a tenant in every placement plus a second pooled tenant, each
//! with canary rows. For each tenant, `tests/fixtures/mcp/agent.py` checks the four tools
//! (column comments, the row cap, explain, a read-only key and a read-only JWT that cannot
//! write), then plays an adversarial agent: cross-tenant reads by schema and key, catalog
//! enumeration, SET ROLE / set_config / RESET ROLE, multi-statement and comment injection,
//! COPY TO PROGRAM, dblink. Every text a tool returned, errors included, is scanned for every
//! other tenant's canary, key (= role, schema and database name) and slug, unless the agent
//! itself sent that marker. Bad, revoked, expired and missing credentials must be refused with
//! a clear message.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{Deployment, Tenant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const HS_SECRET: &str = "test-only-mcp-hs256-secret-0123456789abcdef";
const MAX_ROWS: u32 = 3;
/// A column comment of the example schema (examples/restaurant/migrations/0001_init.sql).
const COLUMN_COMMENT: &str = "Display name of the branch, unique within the tenant";

struct Planted {
    t: Tenant,
    canary: String,
    rw_key: String,
    ro_key: String,
}

fn run_agent(py: &str, spec: &Value, dir: &Path, transport: &str) -> Value {
    let path = dir.join(format!("mcp-spec-{transport}.json"));
    std::fs::write(&path, spec.to_string()).expect("write spec");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp/agent.py");
    let started = Instant::now();
    let out = Command::new(py).arg(&script).arg(&path).output().expect("run the MCP agent script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("agent over {transport}: {:?}", started.elapsed());
    assert!(out.status.success(), "the MCP agent ({transport}) failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("agent ({transport}) printed no JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

fn assert_report(transport: &str, r: &Value, expected_checks: usize) {
    let checks = r["checks"].as_object().expect("checks");
    let failed: Vec<&String> = checks.iter().filter(|(_, v)| v.as_bool() != Some(true)).map(|(k, _)| k).collect();
    assert!(failed.is_empty(), "{transport}: failed checks {failed:?}\n{:#}", r["notes"]);
    assert!(checks.len() >= expected_checks, "{transport}: only {} checks ran: {:?}", checks.len(), checks.keys().collect::<Vec<_>>());
    let leaks = r["leaks"].as_array().expect("leaks");
    assert!(leaks.is_empty(), "{transport}: another tenant's marker reached the agent:\n{leaks:#?}");
    let texts = r["texts"].as_u64().unwrap_or(0);
    assert!(texts > 500, "{transport}: only {texts} tool results were scanned");
    eprintln!("{transport}: {} checks passed, {texts} tool results scanned, no leak", checks.len());
}

#[test]
fn mcp_door_end_to_end() {
    // The official MCP Python SDK.
    let py = common::python_with(&["mcp"], &["mcp"]);
    let started = Instant::now();
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let planted: Vec<Planted> = [("pool-a", "pooled", "us-1"), ("pool-b", "pooled", "us-1"), ("schema-a", "schema", "us-1"), ("db-eu", "database", "eu-1")]
        .iter()
        .map(|(slug, placement, server)| {
            let t = d.create(slug, placement, server);
            let canary = d.plant_canary(&t);
            let (_, rw_key) = common::gateway::create_key(&d, slug, false);
            let (_, ro_key) = common::gateway::create_key(&d, slug, true);
            Planted { t, canary, rw_key, ro_key }
        })
        .collect();
    let (revoked_id, revoked_key) = common::gateway::create_key(&d, "pool-a", true);
    d.ok(&["key", "revoke", "pool-a", &revoked_id]);
    // An unknown key of the right shape: a real key with its secret part changed.
    let unknown_key = {
        let (_, k) = common::gateway::create_key(&d, "pool-b", true);
        let mut chars: Vec<char> = k.chars().collect();
        if let Some(c) = chars.last_mut() {
            *c = if *c == 'a' { 'b' } else { 'a' };
        }
        chars.into_iter().collect::<String>()
    };

    std::fs::write(d.dir.path().join("jwt.secret"), HS_SECRET).expect("secret");
    let base = std::fs::read_to_string(&d.config).expect("config");
    let config = d.dir.path().join("mcp.toml");
    std::fs::write(
        &config,
        format!(
            "{base}\n[http]\nlisten = \"127.0.0.1:0\"\n\n[http.limits]\nmax_rows = {MAX_ROWS}\nmax_bytes = 65536\nstatement_timeout_ms = 5000\n\n\
             [[http.jwt_keys]]\nkid = \"hs-test\"\nalg = \"HS256\"\nsecret_file = \"jwt.secret\"\n"
        ),
    )
    .expect("write config");
    let (mut child, line) =
        common::gateway::spawn_serve(&config, "HTTP API listening on").unwrap_or_else(|| panic!("tenantgate serve did not start"));
    let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_string();
    assert!(line.contains("MCP at /mcp"), "{line}");

    // A read-only JWT from `tenantgate token`, and an expired one.
    let token = |slug: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tenantgate"))
            .args(["token", slug, "--read-only", "--ttl", "10m"])
            .env("TENANTGATE_CONFIG", &config)
            .output()
            .expect("tenantgate token");
        assert!(out.status.success(), "tenantgate token: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let now = chrono::Utc::now().timestamp();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("hs-test".into());
    let expired_jwt = jsonwebtoken::encode(
        &h,
        &json!({"tenant": "pool-a", "scope": "read", "exp": now - 3600, "iat": now - 7200}),
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("sign");

    let tenants: Vec<Value> = planted
        .iter()
        .map(|p| {
            json!({
                "slug": p.t.slug,
                "key": p.t.key,
                "canary": p.canary,
                "rw_key": p.rw_key,
                "ro_key": p.ro_key,
                "jwt_ro": token(&p.t.slug),
                // What must never reach another tenant's agent: the canary, the tenant key
                // (its role, `_ro` role, schema and database names all start with it) and
                // the slug.
                "markers": [p.canary, p.t.key, p.t.slug],
            })
        })
        .collect();
    let spec = |transport: &str| {
        json!({
            "transport": transport,
            "binary": env!("CARGO_BIN_EXE_tenantgate"),
            "config": config,
            "url": format!("http://{addr}/mcp"),
            "max_rows": MAX_ROWS,
            "column_comment": COLUMN_COMMENT,
            "tenants": tenants,
            "bad": {"unknown_key": unknown_key, "revoked_key": revoked_key, "expired_jwt": expired_jwt},
        })
    };
    eprintln!("setup: {:?}", started.elapsed());

    // Per tenant: 4 tool checks + 2 describe + 2 run_sql + types + explain ×2 + one-statement
    // + db error + write + survival + 4 read-only + 2 JWT = 21; plus the refusals.
    let stdio = run_agent(&py, &spec("stdio"), d.dir.path(), "stdio");
    let http = run_agent(&py, &spec("http"), d.dir.path(), "http");
    let _ = child.kill();
    let _ = child.wait();
    assert_report("stdio", &stdio, planted.len() * 20 + 6);
    assert_report("http", &http, planted.len() * 20 + 5);
    eprintln!("total: {:?}", started.elapsed());
}
