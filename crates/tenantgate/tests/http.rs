//! The HTTP API end to end (issue #4): `tenantgate serve` as a child process, real tokens
//! (HS256, RS256, ES256, tenant API keys) against a real two-region deployment with a tenant
//! in every placement, each holding canary rows.
//!
//! Three servers on one deployment: `main` (gate on), `nogate` (gate off: the database alone
//! must refuse) and `tight` (a small rate limit). Every response a tenant gets (body and
//! headers) is checked for the other tenants' canaries.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Deployment, Tenant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "tenantgate-test";
const AUDIENCE: &str = "tenantgate-api";
const HS_SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
const ADMIN_TOKEN: &str = "test-only-admin-token-0123456789abcdef";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/http")
}

struct Server {
    child: Child,
    base: String,
    config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(d: &Deployment, name: &str, gateway: &str, http_extra: &str) -> Server {
        std::fs::write(d.dir.path().join("jwt.secret"), HS_SECRET).expect("secret");
        std::fs::write(d.dir.path().join("admin.token"), ADMIN_TOKEN).expect("admin token");
        let base = std::fs::read_to_string(&d.config).expect("config");
        let f = fixtures();
        let config = d.dir.path().join(format!("http-{name}.toml"));
        let toml = format!(
            "{base}\n[gateway]\n{gateway}\n\n[http]\nlisten = \"127.0.0.1:0\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             leeway_seconds = 5\nadmin_token_file = \"admin.token\"\n{http_extra}\n\
             [[http.jwt_keys]]\nkid = \"hs-test\"\nalg = \"HS256\"\nsecret_file = \"jwt.secret\"\n\
             [[http.jwt_keys]]\nalg = \"RS256\"\njwks_file = \"{}\"\n\
             [[http.jwt_keys]]\nalg = \"ES256\"\njwks_file = \"{}\"\n",
            f.join("rs256.jwks.json").display(),
            f.join("es256.jwks.json").display()
        );
        std::fs::write(&config, toml).expect("write config");
        let (child, line) =
            common::gateway::spawn_serve(&config, "HTTP API listening on").unwrap_or_else(|| panic!("HTTP API {name} did not start"));
        let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).expect("address");
        Server { child, base: format!("http://{addr}"), config }
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// Everything a client can read.
    fn all_text(&self) -> String {
        let h: Vec<String> = self.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("{}\n{}", h.join("\n"), self.body)
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Resp {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
        None => req.call(),
    };
    let r = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = r.status();
    let headers = r.headers_names().into_iter().filter_map(|n| r.header(&n).map(|v| (n.clone(), v.to_string()))).collect();
    let body = r.into_string().unwrap_or_default();
    Resp { status, headers, body }
}

/// A raw HTTP/1.1 request, for what a client library will not send (duplicate headers).
fn raw(base: &str, request: &str) -> Resp {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Resp { status, headers, body: body.to_string() }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn claims(tenant: &str, scope: &str) -> Value {
    json!({"tenant": tenant, "scope": scope, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600, "sub": "test"})
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rs256.key.pem")).expect("pem")).expect("rsa"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&std::fs::read(fixtures().join("es256.key.pem")).expect("pem")).expect("ec"),
        other => panic!("{other:?}"),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &key).expect("sign")
}

fn hs(tenant: &str, scope: &str) -> String {
    sign(Algorithm::HS256, Some("hs-test"), &claims(tenant, scope))
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn sql(s: &Server, token: &str, sql: &str, params: Value) -> Resp {
    call("POST", &format!("{}/v1/sql", s.base), &[("Authorization", &bearer(token))], Some(&json!({"sql": sql, "params": params})))
}

struct Planted {
    t: Tenant,
    canary: String,
}

/// No other tenant's canary in anything the client can read; nor their tenant key, unless
/// the request itself sent it (`echoes_keys`: PostgreSQL quotes the caller's own SQL).
fn assert_clean_as(r: &Resp, others: &[&Planted], what: &str, echoes_keys: bool) {
    let text = r.all_text();
    for o in others {
        assert!(!text.contains(&o.canary), "{what}: leaked {}'s canary:\n{text}", o.t.slug);
        assert!(echoes_keys || !text.contains(&o.t.key), "{what}: leaked {}'s tenant key:\n{text}", o.t.slug);
    }
}

fn assert_clean(r: &Resp, others: &[&Planted], what: &str) {
    assert_clean_as(r, others, what, false)
}

fn names(r: &Resp) -> Vec<String> {
    r.json()["rows"].as_array().map(|rows| rows.iter().filter_map(|row| row[0].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn http_api_end_to_end() {
    let started = Instant::now();
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let planted: Vec<Planted> = [("pool-a", "pooled", "us-1"), ("pool-b", "pooled", "us-1"), ("schema-a", "schema", "us-1"), ("db-eu", "database", "eu-1")]
        .iter()
        .map(|(slug, placement, server)| {
            let t = d.create(slug, placement, server);
            let canary = d.plant_canary(&t);
            Planted { t, canary }
        })
        .collect();
    let main = Server::start(&d, "main", "", "[http.limits]\nmax_rows = 50\nmax_bytes = 65536\nstatement_timeout_ms = 2000\n[http.metrics]\ntop_tenants = 2\n");
    let nogate = Server::start(&d, "nogate", "gate = false", "");
    let tight = Server::start(&d, "tight", "", "[http.rate_limit]\nrate_per_second = 0.2\nburst = 2\n");
    eprintln!("setup: {:?}", started.elapsed());

    // ---------------------------------------------------------------- operational endpoints
    let r = call("GET", &format!("{}/healthz", main.base), &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    let r = call("GET", &format!("{}/openapi.json", main.base), &[], None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    for p in ["/v1/sql", "/v1/schema", "/admin/v1/tenants", "/admin/v1/tenants/{slug}/keys/{key_id}", "/admin/v1/migrations", "/metrics", "/healthz"] {
        assert!(doc["paths"][p].is_object(), "openapi lacks {p}");
    }
    let r = call("GET", &format!("{}/nowhere", main.base), &[], None);
    assert_eq!((r.status, r.header("content-type")), (404, Some("application/problem+json")));

    // ---------------------------------------------------------------- every placement
    for (i, p) in planted.iter().enumerate() {
        let others: Vec<&Planted> = planted.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, o)| o).collect();
        let slug = &p.t.slug;
        let (w, ro) = (hs(slug, "write"), hs(slug, "read"));

        let r = sql(&main, &w, "SELECT name FROM branches ORDER BY name", json!([]));
        assert_eq!(r.status, 200, "{slug}: {r:?}");
        assert!(names(&r).contains(&p.canary), "{slug} sees its own canary: {}", r.body);
        assert_clean(&r, &others, slug);
        let v = r.json();
        assert_eq!(v["columns"], json!([{"name": "name", "type": "text"}]));
        assert_eq!(v["truncated"], json!(false));

        let marker = format!("http-{slug}");
        let r = sql(&main, &w, "INSERT INTO branches (name, city, country) VALUES ($1, $2, 'XX') RETURNING name", json!([marker, "Town"]));
        assert_eq!((r.status, r.json()["row_count"].clone()), (200, json!(1)), "{slug} insert: {r:?}");
        let r = sql(&main, &ro, "SELECT count(*) FROM branches WHERE name = $1", json!([marker]));
        assert_eq!(r.json()["rows"], json!([[1]]), "{slug}: {r:?}");

        // A read-scope token cannot write: the gate refuses, and so does the database role.
        let ins = "INSERT INTO branches (name, city, country) VALUES ('ro-write', 'x', 'XX')";
        let r = sql(&main, &ro, ins, json!([]));
        assert_eq!((r.status, r.json()["rule"].clone(), r.json()["sqlstate"].clone()), (403, json!("read-only"), json!("42501")), "{slug}: {r:?}");
        let r = sql(&nogate, &ro, ins, json!([]));
        assert_eq!((r.status, r.json()["sqlstate"].clone()), (403, json!("42501")), "{slug} gate off: {r:?}");
        assert!(r.json().get("rule").is_none(), "the database refused, not the gate: {r:?}");
        assert_clean(&r, &others, slug);
        let r = sql(&nogate, &ro, "SELECT count(*) FROM branches WHERE name = 'ro-write'", json!([]));
        assert_eq!(r.json()["rows"], json!([[0]]));

        // Attacks on the other tenants' rows, with the gate off: the database alone isolates.
        for o in &others {
            for q in [
                format!("SELECT name FROM branches WHERE tenant_id = '{}'", o.t.key),
                format!("SELECT name FROM \"{}\".branches", o.t.key),
                "SELECT name FROM app.branches".to_string(),
                format!("UPDATE branches SET name = 'pwned' WHERE tenant_id = '{}' RETURNING name", o.t.key),
            ] {
                for s in [&main, &nogate] {
                    let r = sql(s, &w, &q, json!([]));
                    assert_clean_as(&r, &others, &format!("{slug}: {q}"), true);
                    if q.starts_with("UPDATE") && r.status == 200 {
                        assert_eq!(r.json()["row_count"], json!(0), "{slug}: {q}: {r:?}");
                    }
                }
            }
        }

        // Schema: only this tenant's tables, no tenant_id, comments included.
        let r = call("GET", &format!("{}/v1/schema", main.base), &[("Authorization", &bearer(&ro))], None);
        assert_eq!(r.status, 200, "{slug}: {r:?}");
        assert_clean(&r, &others, slug);
        let v = r.json();
        let tables: Vec<&str> = v["tables"].as_array().expect("tables").iter().filter_map(|t| t["name"].as_str()).collect();
        for t in ["branches", "menu_items", "orders"] {
            assert!(tables.contains(&t), "{slug}: {tables:?}");
        }
        assert!(!r.body.contains("tenant_id"), "{slug}: tenant_id must not be described: {}", r.body);
        assert!(!r.body.contains("tg_") && !r.body.contains("tenantgate_admin"), "{slug}: {}", r.body);
        let branches = v["tables"].as_array().and_then(|a| a.iter().find(|t| t["name"] == "branches")).expect("branches");
        assert_eq!(branches["primary_key"], json!(["branch_id"]));
        assert!(branches["comment"].as_str().is_some_and(|c| c.contains("Restaurants")));
        let r = call("GET", &format!("{}/v1/schema?format=text", main.base), &[("Authorization", &bearer(&w))], None);
        assert!(r.status == 200 && r.body.contains("table branches") && r.body.contains("FOREIGN KEY (branch_id) REFERENCES branches (branch_id)"), "{r:?}");
    }
    eprintln!("placements: {:?}", started.elapsed());

    let (a, b) = (&planted[0], &planted[1]);
    let not_a: Vec<&Planted> = planted.iter().skip(1).collect();
    let url = format!("{}/v1/sql", main.base);
    let select = json!({"sql": "SELECT name FROM branches", "params": []});

    // ---------------------------------------------------------------- gate soundness (issue #14)
    // The red team's three ways past the gate, over /v1/sql. A denied statement hidden
    // behind a shape another tenant (and then the same tenant) seeded, a string mode or an
    // encoding gets 403 with 42501 naming the rule; no other tenant's canary or key appears.
    let (aw, bw) = (hs(&a.t.slug, "write"), hs(&b.t.slug, "write"));
    // (Each seed is a new text: a text already cached exactly seeds no shape.)
    for (token, who, seed) in [(&bw, "another tenant", "SELECT 1, --\r'\n', 2 --'"), (&aw, "the same tenant", "SELECT 1, --\r'\n', 3 --'")] {
        let r = sql(&main, token, seed, json!([]));
        assert_eq!(r.status, 200, "{who} seeds the shape: {r:?}");
    }
    for (attack, rule) in [
        ("SELECT 1, --\r'\n', pg_advisory_lock(2) --'", "advisory-lock"),
        ("SELECT 1, --\r'\n', (SELECT string_agg(rolname, ',') FROM pg_authid) --'", "catalog-enumeration"),
        ("SELECT 1, --\r'\n', set_config('statement_timeout', '0', false) --'", "set-config"),
    ] {
        let r = sql(&main, &aw, attack, json!([]));
        assert_eq!((r.status, r.json()["rule"].clone(), r.json()["sqlstate"].clone()), (403, json!(rule), json!("42501")), "{attack:?}: {r:?}");
        assert_clean(&r, &not_a, attack);
    }
    for (set, rule) in [
        ("SET standard_conforming_strings = off", "pinned-setting"),
        ("SET LOCAL standard_conforming_strings = off", "pinned-setting"),
        ("SET client_encoding = 'SJIS'", "pinned-setting"),
        ("SET NAMES 'BIG5'", "pinned-setting"),
        ("SELECT set_config('standard_conforming_strings', 'off', true)", "pinned-setting"),
        ("SELECT 1, set_config('standard_conforming_strings', 'off', true)", "set-config"),
    ] {
        let r = sql(&main, &aw, set, json!([]));
        assert_eq!((r.status, r.json()["rule"].clone()), (403, json!(rule)), "{set}: {r:?}");
        assert!(r.json()["detail"].as_str().is_some_and(|m| m.contains(&format!("rule {rule}"))), "{set}: {r:?}");
    }
    let r = sql(&main, &aw, "SHOW standard_conforming_strings", json!([]));
    assert_eq!(r.json()["rows"], json!([["on"]]), "{r:?}");
    eprintln!("gate soundness: {:?}", started.elapsed());

    // ---------------------------------------------------------------- other signers
    for (alg, kid) in [(Algorithm::RS256, Some("rs-test")), (Algorithm::ES256, Some("es-test")), (Algorithm::RS256, None)] {
        let t = sign(alg, kid, &claims(&a.t.slug, "read"));
        let r = call("POST", &url, &[("Authorization", &bearer(&t))], Some(&select));
        assert_eq!(r.status, 200, "{alg:?} {kid:?}: {r:?}");
    }
    // `tenantgate token` signs with the configured HS256 key.
    let out = d.tg_env(&["token", &a.t.slug, "--read-only", "--ttl", "10m"], &[("TENANTGATE_CONFIG", main.config.to_str().expect("path"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(sql(&main, &cli_token, "SELECT 1", json!([])).status, 200);
    assert_eq!(sql(&main, &cli_token, "DELETE FROM branches", json!([])).status, 403);
    let out = d.tg_env(&["token", "no-such-tenant"], &[("TENANTGATE_CONFIG", main.config.to_str().expect("path"))]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no tenant"), "{out:?}");

    // ---------------------------------------------------------------- token attacks
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b_claims = claims(&b.t.slug, "write");
    let alg_none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(b_claims.to_string()));
    let rsa_pub = std::fs::read(fixtures().join("rs256.pub.pem")).expect("pub");
    let confused = |kid: Option<&str>| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&h, &b_claims, &EncodingKey::from_secret(&rsa_pub)).expect("sign")
    };
    let with = |k: &str, v: Value| {
        let mut c = claims(&b.t.slug, "write");
        c[k] = v;
        sign(Algorithm::HS256, Some("hs-test"), &c)
    };
    let attacks: Vec<(&str, String)> = vec![
        ("alg=none", alg_none),
        ("HS256 signed with the RS256 public key (kid rs-test)", confused(Some("rs-test"))),
        ("HS256 signed with the RS256 public key (no kid)", confused(None)),
        ("expired", with("exp", json!(now() - 120))),
        ("not yet valid", with("nbf", json!(now() + 600))),
        ("wrong iss", with("iss", json!("evil"))),
        ("wrong aud", with("aud", json!("other-api"))),
        ("no exp", {
            let mut c = claims(&b.t.slug, "write");
            c.as_object_mut().map(|o| o.remove("exp"));
            sign(Algorithm::HS256, Some("hs-test"), &c)
        }),
        ("kid with a path", sign(Algorithm::HS256, Some("../../../../etc/passwd"), &b_claims)),
        ("kid with a URL", sign(Algorithm::HS256, Some("https://evil.example/jwks.json"), &b_claims)),
        ("wrong secret", {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("hs-test".into());
            jsonwebtoken::encode(&h, &b_claims, &EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx")).expect("sign")
        }),
        ("garbage", "not.a.jwt".into()),
        ("malformed API key", "tgk_nothex_xyz".into()),
        ("unknown API key", "tgk_0123abcd_00112233445566778899aabbccddeeff00112233".into()),
    ];
    for (what, token) in &attacks {
        let r = call("POST", &url, &[("Authorization", &bearer(token))], Some(&select));
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{what}");
        assert!(r.header("www-authenticate").is_some(), "{what}");
        assert_clean(&r, &planted.iter().collect::<Vec<_>>(), what);
    }
    let r = call("POST", &url, &[], Some(&select));
    assert_eq!(r.status, 401, "no token: {r:?}");
    let r = call("POST", &url, &[("Authorization", "Basic dXNlcjpwYXNz")], Some(&select));
    assert_eq!(r.status, 401, "basic auth: {r:?}");

    // ---------------------------------------------------------------- tenant confusion
    let wa = hs(&a.t.slug, "write");
    let r = call("POST", &url, &[("Authorization", &bearer(&wa)), ("X-Tenant-ID", &b.t.slug)], Some(&select));
    assert_eq!((r.status, r.json()["type"].clone()), (403, json!("urn:tenantgate:problem:tenant-mismatch")), "{r:?}");
    assert_clean(&r, &not_a, "X-Tenant-ID: B");
    let r = call("POST", &url, &[("Authorization", &bearer(&wa)), ("X-Tenant-ID", &a.t.slug)], Some(&select));
    assert_eq!(r.status, 200, "matching X-Tenant-ID: {r:?}");
    let body = select.to_string();
    for (h1, h2) in [(&b.t.slug, &a.t.slug), (&a.t.slug, &b.t.slug), (&a.t.slug, &a.t.slug)] {
        let req = format!(
            "POST /v1/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {wa}\r\nX-Tenant-ID: {h1}\r\nX-Tenant-ID: {h2}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = raw(&main.base, &req);
        assert_eq!(r.status, 400, "duplicate X-Tenant-ID {h1},{h2}: {r:?}");
        assert_clean(&r, &not_a, "duplicate X-Tenant-ID");
    }
    for (what, r) in [
        ("?tenant=B", call("POST", &format!("{url}?tenant={}&tenant_id={}", b.t.slug, b.t.key), &[("Authorization", &bearer(&wa))], Some(&select))),
        ("tenant in body", call("POST", &url, &[("Authorization", &bearer(&wa))], Some(&json!({"sql": "SELECT name FROM branches", "tenant_id": b.t.slug, "tenant": b.t.key})))),
    ] {
        assert_eq!(r.status, 200, "{what}: {r:?}");
        assert!(names(&r).contains(&a.canary), "{what}: still A's rows");
        assert_clean(&r, &not_a, what);
    }

    // ---------------------------------------------------------------- gate and statements
    let r = sql(&main, &wa, "SELECT 1; SELECT 2", json!([]));
    assert_eq!((r.status, r.json()["type"].clone()), (400, json!("urn:tenantgate:problem:one-statement")), "{r:?}");
    let r = sql(&nogate, &wa, "SELECT 1; SELECT name FROM branches", json!([]));
    assert_eq!((r.status, r.json()["sqlstate"].clone()), (400, json!("42601")), "gate off, PostgreSQL refuses two statements: {r:?}");
    let r = sql(&main, &wa, &format!("SET ROLE \"{}\"", b.t.key), json!([]));
    assert_eq!((r.status, r.json()["rule"].clone()), (403, json!("set-role")), "{r:?}");
    let r = sql(&main, &wa, "DROP TABLE branches", json!([]));
    assert_eq!((r.status, r.json()["sqlstate"].clone()), (403, json!("42501")), "{r:?}");
    let r = sql(&main, &wa, "SELEC 1", json!([]));
    assert_eq!((r.status, r.json()["sqlstate"].clone()), (400, json!("42601")), "{r:?}");
    let r = sql(&main, &wa, "SELECT $1::int + 1", json!(["41"]));
    assert_eq!(r.json()["rows"], json!([[42]]));
    let r = sql(&main, &wa, "SELECT $1::text", json!(["'; DROP TABLE branches; --"]));
    assert_eq!(r.json()["rows"], json!([["'; DROP TABLE branches; --"]]), "bound, not interpolated");
    let r = sql(&main, &wa, "SELECT $1::int, $2::int", json!([1]));
    assert_eq!(r.status, 400, "missing parameter: {r:?}");
    let r = call("POST", &url, &[("Authorization", &bearer(&wa))], Some(&json!({"params": []})));
    assert_eq!((r.status, r.header("content-type")), (400, Some("application/problem+json")), "{r:?}");
    // A unique violation: the primary message only, never DETAIL (which holds key values).
    let r = sql(&main, &wa, "INSERT INTO branches (name, city, country) VALUES ($1, 'x', 'XX')", json!([a.canary]));
    assert_eq!((r.status, r.json()["sqlstate"].clone()), (409, json!("23505")), "{r:?}");
    assert!(!r.body.contains("Key (") && !r.body.contains("already exists"), "no DETAIL: {}", r.body);
    // Limits.
    let r = sql(&main, &wa, "SELECT g FROM generate_series(1, 500) g", json!([]));
    let v = r.json();
    assert_eq!((v["rows"].as_array().map(Vec::len), v["truncated"].clone()), (Some(50), json!(true)), "row limit");
    let r = sql(&main, &wa, "SELECT repeat('x', 10000) FROM generate_series(1, 20)", json!([]));
    let v = r.json();
    assert!(v["truncated"] == json!(true) && v["rows"].as_array().map_or(0, Vec::len) < 8, "byte limit: {}", &r.body[..200.min(r.body.len())]);
    let t0 = Instant::now();
    let r = sql(&main, &wa, "SELECT pg_sleep(10)", json!([]));
    assert_eq!((r.status, r.json()["sqlstate"].clone()), (504, json!("57014")), "statement timeout: {r:?}");
    assert!(t0.elapsed() < Duration::from_secs(8), "the timeout applied: {:?}", t0.elapsed());
    let r = sql(&main, &wa, "SELECT 1", json!([]));
    assert_eq!(r.status, 200, "the connection pool is fine after a timeout");

    // ---------------------------------------------------------------- value mapping
    let r = sql(
        &main,
        &wa,
        "SELECT 1::int2 AS i2, 2::int4 AS i4, 9007199254740993::int8 AS i8, 1.5::float8 AS f, 'NaN'::float8 AS nan, \
         'Infinity'::float4 AS inf, true AS b, '{\"a\": [1, null]}'::jsonb AS j, '[1,2]'::json AS js, 12.30::numeric(10,2) AS n, \
         '2024-03-01 12:34:56.789+00'::timestamptz AS tz, '2024-03-01 12:34:56'::timestamp AS ts, '2024-02-29'::date AS d, \
         '\\x0001ff'::bytea AS bin, NULL::text AS nul, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, ARRAY[1,2] AS arr, \
         interval '1 day' AS iv",
        json!([]),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let row: Vec<Value> = v["rows"][0].as_array().cloned().unwrap_or_default();
    assert_eq!(row[0..3], [json!(1), json!(2), json!(9007199254740993i64)]);
    assert_eq!(row[3..6], [json!(1.5), json!("NaN"), json!("Infinity")]);
    assert_eq!(row[6..9], [json!(true), json!({"a": [1, null]}), json!([1, 2])]);
    assert_eq!(row[9], json!("12.30"), "numeric is a string");
    let tz = row[10].as_str().expect("timestamptz string");
    let parsed = chrono::DateTime::parse_from_rfc3339(tz).unwrap_or_else(|e| panic!("{tz} is not RFC 3339: {e}"));
    assert_eq!(parsed.timestamp_millis(), 1_709_296_496_789);
    assert_eq!(row[11], json!("2024-03-01T12:34:56"));
    assert_eq!(row[12], json!("2024-02-29"));
    assert_eq!(row[13], json!("AAH/"), "bytea is base64");
    assert_eq!(row[14], Value::Null);
    assert_eq!(row[15], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(row[16], json!("{1,2}"));
    assert_eq!(row[17], json!("1 day"));
    let types: Vec<&str> = v["columns"].as_array().expect("columns").iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(types[..4], ["smallint", "integer", "bigint", "double precision"]);
    assert_eq!(types[9..11], ["numeric", "timestamp with time zone"]);

    // ---------------------------------------------------------------- API keys
    let (a_key_id, a_key) = common::gateway::create_key(&d, &a.t.slug, false);
    let (b_key_id, b_key) = common::gateway::create_key(&d, &b.t.slug, true);
    let r = sql(&main, &a_key, "SELECT name FROM branches", json!([]));
    assert_eq!(r.status, 200, "API key: {r:?}");
    assert!(names(&r).contains(&a.canary));
    assert_clean(&r, &not_a, "API key");
    let r = call("POST", &url, &[("Authorization", &bearer(&a_key)), ("X-Tenant-ID", &b.t.slug)], Some(&select));
    assert_eq!(r.status, 403, "API key with B's X-Tenant-ID: {r:?}");
    let r = sql(&main, &b_key, "DELETE FROM branches", json!([]));
    assert_eq!((r.status, r.json()["rule"].clone()), (403, json!("read-only")), "read-only key: {r:?}");
    // Tenant routes with ids: B's key id under A's token reads exactly like a missing id.
    let key_url = |id: &str| format!("{}/v1/keys/{id}", main.base);
    let r = call("GET", &key_url(&a_key_id), &[("Authorization", &bearer(&wa))], None);
    assert_eq!((r.status, r.json()["id"].clone()), (200, json!(a_key_id)));
    let theirs = call("GET", &key_url(&b_key_id), &[("Authorization", &bearer(&wa))], None);
    let missing = call("GET", &key_url("0badc0de"), &[("Authorization", &bearer(&wa))], None);
    assert_eq!((theirs.status, missing.status), (404, 404));
    assert_eq!(theirs.body, missing.body, "another tenant's key answers like a missing one");
    let r = call("GET", &format!("{}/v1/keys", main.base), &[("Authorization", &bearer(&wa))], None);
    assert!(r.status == 200 && r.body.contains(&a_key_id) && !r.body.contains(&b_key_id), "{r:?}");

    // ---------------------------------------------------------------- admin API
    let admin = [("Authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let adm = |m: &str, path: &str, body: Option<&Value>| call(m, &format!("{}/admin/v1{path}", main.base), &admin, body);
    for h in [vec![], vec![("Authorization", "Bearer wrong-admin-token-0123456789")], vec![("Authorization", bearer(&wa).leak() as &str)]] {
        let r = call("GET", &format!("{}/admin/v1/tenants", main.base), &h, None);
        assert_eq!(r.status, 401, "admin route without the admin token: {r:?}");
    }
    let r = adm("GET", "/tenants", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json().as_array().map(Vec::len), Some(4));
    let r = adm("GET", &format!("/tenants/{}", a.t.slug), None);
    assert_eq!((r.status, r.json()["placement"].clone()), (200, json!("pooled")));
    let r = adm("GET", "/tenants/no-such-tenant", None);
    assert_eq!((r.status, r.json()["type"].clone()), (404, json!("urn:tenantgate:problem:not-found")));
    let r = adm("POST", "/tenants", Some(&json!({"slug": "Bad Slug", "placement": "pooled"})));
    assert_eq!(r.status, 400, "{r:?}");
    let r = adm("POST", "/tenants", Some(&json!({"slug": a.t.slug, "placement": "pooled"})));
    assert_eq!(r.status, 409, "{r:?}");
    let r = adm("POST", "/tenants", Some(&json!({"slug": "eu-only", "placement": "schema", "server": "us-1", "residency": ["eu-central"]})));
    assert_eq!((r.status, r.json()["type"].clone()), (422, json!("urn:tenantgate:problem:residency")), "{r:?}");
    let r = adm("POST", "/tenants", Some(&json!({"slug": "via-api", "placement": "schema", "server": "eu-1"})));
    assert_eq!((r.status, r.json()["tenant"]["region"].clone()), (201, json!("eu-central")), "{r:?}");
    let r = adm("POST", "/tenants/via-api/keys", Some(&json!({"read_only": true, "name": "agent"})));
    assert_eq!(r.status, 201, "{r:?}");
    let via_key = r.json()["secret"].as_str().expect("secret").to_string();
    assert_eq!(sql(&main, &via_key, "SELECT count(*) FROM branches", json!([])).json()["rows"], json!([[0]]));
    let r = adm("GET", "/tenants/via-api/keys", None);
    assert!(r.status == 200 && !r.body.contains("tgk_"), "listing never shows secrets: {r:?}");
    // B's key id under A's slug: 404, like a missing id.
    let theirs = adm("DELETE", &format!("/tenants/{}/keys/{b_key_id}", a.t.slug), None);
    let missing = adm("DELETE", &format!("/tenants/{}/keys/0badc0de", a.t.slug), None);
    assert_eq!((theirs.status, missing.status), (404, 404));
    assert_eq!(theirs.body.replace(&b_key_id, "ID"), missing.body.replace("0badc0de", "ID"));
    assert_eq!(sql(&main, &b_key, "SELECT 1", json!([])).status, 200, "B's key still works");
    // Revocation takes effect at once, despite the key cache.
    let r = adm("DELETE", &format!("/tenants/{}/keys/{a_key_id}", a.t.slug), None);
    assert!(r.status == 200 && r.json()["revoked_at"].is_string(), "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = sql(&main, &a_key, "SELECT 1", json!([]));
        if r.status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "revoked key still accepted: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Suspension: B's token stops working; resumption restores it.
    let wb = hs(&b.t.slug, "write");
    let r = adm("POST", &format!("/tenants/{}/suspend", b.t.slug), None);
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("suspended")), "{r:?}");
    let r = sql(&main, &wb, "SELECT 1", json!([]));
    assert_eq!((r.status, r.json()["type"].clone()), (403, json!("urn:tenantgate:problem:tenant-suspended")), "{r:?}");
    let r = adm("POST", &format!("/tenants/{}/resume", b.t.slug), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(sql(&main, &wb, "SELECT 1", json!([])).status, 200);
    let r = adm("GET", "/migrations", None);
    assert!(r.status == 200 && r.json()["latest"].as_i64() == Some(2), "{r:?}");
    let r = adm("POST", "/tenants/via-api/erase", Some(&json!({"confirm": "wrong"})));
    assert_eq!(r.status, 422, "{r:?}");
    let r = adm("POST", "/tenants/via-api/erase", Some(&json!({"confirm": "via-api"})));
    assert!(r.status == 200 && r.json()["rows_after"] == json!(0), "{r:?}");
    assert_eq!(adm("GET", "/tenants/via-api", None).status, 404);

    // ---------------------------------------------------------------- rate limit
    let tb = hs(&planted[2].t.slug, "read");
    let statuses: Vec<Resp> = (0..4).map(|_| sql(&tight, &tb, "SELECT 1", json!([]))).collect();
    let limited = statuses.iter().find(|r| r.status == 429).unwrap_or_else(|| panic!("no 429: {statuses:?}"));
    let retry: u64 = limited.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    assert_eq!(sql(&tight, &hs(&planted[3].t.slug, "read"), "SELECT 1", json!([])).status, 200, "other tenants have their own bucket");

    // ---------------------------------------------------------------- metrics
    let r = call("GET", &format!("{}/metrics", main.base), &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("tenantgate_http_requests_total{"), "{}", r.body);
    assert!(r.body.contains("tenantgate_http_request_duration_seconds_bucket{"), "histograms");
    assert!(r.body.contains("tenantgate_http_denials_total{rule=\"read-only\"}"), "denials by rule");
    assert!(r.body.contains("tenantgate_pool_connections{"), "pool sizes");
    let labels: std::collections::BTreeSet<&str> = r
        .body
        .lines()
        .filter(|l| l.starts_with("tenantgate_http_requests_total{"))
        .filter_map(|l| l.split("tenant=\"").nth(1).and_then(|s| s.split('"').next()))
        .collect();
    assert!(labels.contains("_other"), "tenants beyond the top 2 share a label: {labels:?}");
    // Two per one-minute window at most; the test spans at most two windows.
    assert!(labels.iter().filter(|l| !["_other", "-"].contains(l)).count() <= 4, "bounded tenant labels: {labels:?}");
    assert!(!r.body.contains("tgk_") && !r.body.contains(HS_SECRET), "no secrets in metrics");

    schemathesis(&d, &hs(&planted[2].t.slug, "write"));
    eprintln!("total: {:?}", started.elapsed());
}

/// Property-based checks of the OpenAPI document against the live API with schemathesis
/// (PyPI), when it is installed (`st` on PATH, or TG_SCHEMATHESIS=/path/to/st): no 5xx, and
/// every status, content type and body as documented. Tenant routes run as a tenant, admin
/// routes (GET only: fuzzing create/erase would provision and erase tenants) as the operator.
fn schemathesis(d: &Deployment, tenant_token: &str) {
    let st = std::env::var("TG_SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    if Command::new(&st).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("schemathesis not installed (pip install schemathesis, or set TG_SCHEMATHESIS): skipped");
        return;
    }
    let fuzz = Server::start(d, "fuzz", "", "[http.rate_limit]\nrate_per_second = 0\n");
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let tenant = format!("Authorization: Bearer {tenant_token}");
    for (auth, filter) in [(tenant.as_str(), ["--include-path-regex", "^/(v1|healthz|metrics|openapi)"]), (admin.as_str(), ["--include-method", "GET"])] {
        let out = Command::new(&st)
            .args(["run", &format!("{}/openapi.json", fuzz.base), "--checks", checks, "-H", auth])
            .args(filter)
            .args(["--max-examples", "30", "--workers", "2", "--phases", "examples,coverage,fuzzing", "--no-color"])
            .output()
            .expect("run schemathesis");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "schemathesis found problems:\n{text}");
        eprintln!("schemathesis ({}): {}", auth.split(' ').nth(2).map_or("", |t| if t == ADMIN_TOKEN { "admin" } else { "tenant" }), text.lines().rev().find(|l| l.contains("passed") || l.contains("tests")).unwrap_or("?"));
    }
}
