//! HTTP API attacks: the `http` group of the catalogue, run against the HTTP API that shares a
//! gateway's router, pools and gate.
//!
//! Owns the HTTP client (ureq, on a blocking thread; a raw TCP request for what a client library
//! will not send, such as a duplicated header), the forging of attack tokens (alg=none, a wrong
//! secret, expired, not yet valid, no `exp`, wrong `iss`/`aud`, a `kid` that is a path) and of
//! the valid tokens they are compared with, and the translation of each response into a `Seen`:
//! the status line, every header and the whole body become rows, so `exec::judge` finds another
//! probe's canary wherever it appears.
//!
//! Must never: print, log or put into a `Seen`, verdict or report a token, a `tgk_` secret or
//! the signing secret (evidence is the status and the problem type/detail, which echo neither);
//! send a request to anything but the target's base URL; or sign a token for a tenant that is
//! not a probe.

use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exec::{self, ErrInfo, Seen};
use crate::probes::Probe;
use crate::scenarios::HttpAttack;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read; more is cut (a canary is found in the first bytes anyway).
const MAX_BODY: u64 = 4 << 20;

/// An HS256 signing key. Its secret is never printed or serialized.
#[derive(Clone)]
pub struct Hs256Key {
    pub kid: Option<String>,
    secret: Vec<u8>,
}

impl Hs256Key {
    pub fn new(kid: Option<String>, secret: Vec<u8>) -> Hs256Key {
        Hs256Key { kid, secret }
    }
}

impl fmt::Debug for Hs256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hs256Key(kid {:?}, <redacted>)", self.kid)
    }
}

/// An HTTP API to attack.
#[derive(Debug, Clone, Serialize)]
pub struct HttpTarget {
    /// `http://host:port`, no trailing slash.
    pub base_url: String,
    /// The HS256 key the API accepts, to sign valid tokens (and correctly signed bad ones).
    #[serde(skip)]
    pub key: Option<Hs256Key>,
    /// The `iss` the API requires, if any.
    pub issuer: Option<String>,
    /// An `aud` the API accepts, if it checks the audience.
    pub audience: Option<String>,
    pub tenant_claim: String,
    pub scope_claim: String,
    /// The signing key was generated for this run only (no HS256 key is configured).
    pub ephemeral_key: bool,
}

/// Whether `attack` can be run against `t` (e.g. a wrong `iss` means nothing when no issuer is
/// required). Attacks that do not apply are left out of the report rather than passed.
pub fn applies(t: &HttpTarget, attack: HttpAttack) -> bool {
    use HttpAttack::*;
    match attack {
        WrongIssuer => t.key.is_some() && t.issuer.is_some(),
        WrongAudience => t.key.is_some() && t.audience.is_some(),
        AlgNone | WrongSecret | KidPath | NoToken | OwnRowsApiKey | ApiKeyXTenant | RevokedKey => true,
        _ => t.key.is_some(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims the API would accept for `tenant`.
fn claims(t: &HttpTarget, tenant: &str, scope: &str) -> Map<String, Value> {
    let now = now();
    let mut c = Map::new();
    c.insert("sub".into(), Value::from("tenantgate-verify"));
    c.insert(t.tenant_claim.clone(), Value::from(tenant));
    c.insert(t.scope_claim.clone(), Value::from(scope));
    c.insert("iat".into(), Value::from(now));
    c.insert("nbf".into(), Value::from(now));
    c.insert("exp".into(), Value::from(now + 300));
    if let Some(iss) = &t.issuer {
        c.insert("iss".into(), Value::from(iss.as_str()));
    }
    if let Some(aud) = &t.audience {
        c.insert("aud".into(), Value::from(aud.as_str()));
    }
    c
}

fn sign_with(secret: &[u8], kid: Option<&str>, claims: &Map<String, Value>) -> Result<String, String> {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).map_err(|e| format!("cannot sign an attack token: {e}"))
}

fn sign(t: &HttpTarget, claims: &Map<String, Value>) -> Result<String, String> {
    let k = t.key.as_ref().ok_or("no HS256 key to sign with; configure [[http.jwt_keys]] alg = \"HS256\"")?;
    sign_with(&k.secret, k.kid.as_deref(), claims)
}

/// A valid token for `tenant`.
fn token(t: &HttpTarget, tenant: &str, scope: &str) -> Result<String, String> {
    sign(t, &claims(t, tenant, scope))
}

fn alg_none(claims: &Map<String, Value>) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(Value::Object(claims.clone()).to_string()))
}

fn random_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut b = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// One HTTP response.
#[derive(Debug, Default, Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A request through ureq (on a blocking thread). `Err` is a transport failure.
async fn call(method: &'static str, url: String, headers: Vec<(&'static str, String)>, body: Option<Value>) -> Result<Resp, String> {
    let shown = format!("{method} {}", url.split('?').next().unwrap_or(&url));
    let joined = tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
        let mut req = agent.request(method, &url);
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        let r = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = r.status();
        let headers = r.headers_names().into_iter().filter_map(|n| r.header(&n).map(|v| (n.clone(), v.to_string()))).collect();
        let mut body = Vec::new();
        r.into_reader().take(MAX_BODY).read_to_end(&mut body).map_err(|e| format!("reading the response body: {e}"))?;
        Ok(Resp { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    })
    .await;
    match joined {
        Ok(r) => r.map_err(|e| format!("{shown}: {e}")),
        Err(e) => Err(format!("{shown}: the request task failed: {e}")),
    }
}

/// A raw HTTP/1.1 request, for what a client library will not send (a duplicated header).
async fn raw(base_url: &str, request: String) -> Result<Resp, String> {
    let addr = base_url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let io = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        s.take(MAX_BODY).read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let out = match tokio::time::timeout(TIMEOUT, io).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out).into_owned(),
        Ok(Err(e)) => return Err(format!("raw request to {addr}: {e}")),
        Err(_) => return Err(format!("raw request to {addr}: no answer within {} s", TIMEOUT.as_secs())),
    };
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Resp { status, headers, body: body.to_string() })
}

/// Everything the client could read, as a `Seen`: rows are the status line, the headers and
/// the body; a problem response also becomes the error (type, detail, SQLSTATE, gate rule).
fn seen_of(r: &Resp, elapsed: Duration) -> Seen {
    let mut seen = Seen { status: Some(r.status), elapsed, ..Default::default() };
    seen.rows.push(format!("HTTP {}", r.status));
    seen.rows.extend(r.headers.iter().map(|(k, v)| format!("{k}: {v}")));
    seen.rows.push(r.body.clone());
    let problem: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    let text = |k: &str| problem.get(k).and_then(Value::as_str).map(str::to_string);
    if r.status >= 400 || r.status == 0 {
        let kind = text("type").map(|t| t.trim_start_matches("urn:tenantgate:problem:").to_string()).unwrap_or_else(|| "no problem type".into());
        let rule = text("rule");
        let sqlstate = text("sqlstate");
        seen.outcome = Some(match (&rule, &sqlstate) {
            (Some(rule), _) => format!("refused by the gate (rule {rule}): HTTP {}", r.status),
            (None, Some(code)) => format!("refused by the database ({code}): HTTP {}", r.status),
            (None, None) => format!("refused by the HTTP API: HTTP {} {kind}", r.status),
        });
        seen.error = Some(ErrInfo {
            code: sqlstate.unwrap_or_else(|| format!("http-{}", r.status)),
            message: redact(&format!("{kind}: {}", text("detail").unwrap_or_default())),
            detail: None,
            hint: None,
        });
    } else {
        let n = problem.get("row_count").and_then(Value::as_u64);
        seen.outcome = Some(match n {
            Some(n) => format!("HTTP {}: served only the attacker's own tenant ({n} rows)", r.status),
            None => format!("HTTP {}: served only the attacker's own tenant", r.status),
        });
    }
    seen
}

/// Evidence goes into reports: no word that looks like an API key (`tgk_…`, even the mention
/// in a problem detail) or a JWT (`eyJ….….…`) survives.
fn redact(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            if w.contains("tgk_") {
                "<API key>".to_string()
            } else if w.contains("eyJ") && w.matches('.').count() >= 2 {
                "<JWT>".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn failed(what: String) -> Seen {
    Seen { error: Some(ErrInfo { code: "connection".into(), message: redact(&what), detail: None, hint: None }), ..Default::default() }
}

async fn timed(f: impl std::future::Future<Output = Result<Resp, String>>) -> Seen {
    let started = Instant::now();
    match f.await {
        Ok(r) => seen_of(&r, started.elapsed()),
        Err(e) => failed(e),
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Run one HTTP attack of `a` against `v` (the victim, for pairwise attacks).
pub async fn attack(t: &HttpTarget, attack: HttpAttack, a: &Probe, v: Option<&Probe>, revoked: &str) -> Seen {
    match run(t, attack, a, v, revoked).await {
        Ok(seen) => seen,
        Err(e) => failed(e),
    }
}

async fn run(t: &HttpTarget, attack: HttpAttack, a: &Probe, v: Option<&Probe>, revoked: &str) -> Result<Seen, String> {
    use HttpAttack::*;
    let sql_url = format!("{}/v1/sql", t.base_url);
    let read = json!({"sql": exec::fill("SELECT {c}::text FROM {t}", a, None, None), "params": []});
    let post = |auth: String, extra: Vec<(&'static str, String)>, url: String, body: Value| {
        let mut headers = vec![("Authorization", auth)];
        headers.extend(extra);
        timed(call("POST", url, headers, Some(body)))
    };
    let victim = || v.ok_or_else(|| format!("{attack:?} needs a victim"));
    // A token for the victim with claims changed by `edit`, correctly signed.
    let forged = |edit: &dyn Fn(&mut Map<String, Value>)| -> Result<String, String> {
        let mut c = claims(t, &victim()?.slug, "write");
        edit(&mut c);
        sign(t, &c)
    };
    let seen = match attack {
        OwnRowsJwt => post(bearer(&token(t, &a.slug, "write")?), vec![], sql_url, read).await,
        OwnRowsApiKey => post(bearer(&a.rw_secret), vec![], sql_url, read).await,
        ReadScopeWrite => {
            let del = json!({"sql": exec::fill("DELETE FROM {t}", a, None, None), "params": []});
            post(bearer(&token(t, &a.slug, "read")?), vec![], sql_url, del).await
        }
        NoToken => timed(call("POST", sql_url, vec![], Some(read))).await,
        AlgNone => post(bearer(&alg_none(&claims(t, &victim()?.slug, "write"))), vec![], sql_url, read).await,
        WrongSecret => {
            let kid = t.key.as_ref().and_then(|k| k.kid.clone());
            let tok = sign_with(&random_secret(), kid.as_deref(), &claims(t, &victim()?.slug, "write"))?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        Expired => {
            let then = now() - 3600;
            let tok = forged(&|c| {
                c.insert("iat".into(), Value::from(then - 600));
                c.insert("nbf".into(), Value::from(then - 600));
                c.insert("exp".into(), Value::from(then));
            })?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        NotYetValid => {
            let later = now() + 3600;
            let tok = forged(&|c| {
                c.insert("nbf".into(), Value::from(later));
                c.insert("exp".into(), Value::from(later + 600));
            })?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        MissingExp => {
            let tok = forged(&|c| {
                c.remove("exp");
            })?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        WrongIssuer => {
            let tok = forged(&|c| {
                c.insert("iss".into(), Value::from("https://attacker.invalid"));
            })?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        WrongAudience => {
            let tok = forged(&|c| {
                c.insert("aud".into(), Value::from("someone-else"));
            })?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        KidPath => {
            // The classic: kid names a file the attacker knows (empty), the token is "signed" with it.
            let tok = sign_with(b"", Some("../../../../../../dev/null"), &claims(t, &victim()?.slug, "write"))?;
            post(bearer(&tok), vec![], sql_url, read).await
        }
        XTenantMismatch => post(bearer(&token(t, &a.slug, "write")?), vec![("X-Tenant-ID", victim()?.slug.clone())], sql_url, read).await,
        ApiKeyXTenant => post(bearer(&a.rw_secret), vec![("X-Tenant-ID", victim()?.slug.clone())], sql_url, read).await,
        XTenantDuplicate => {
            let tok = token(t, &a.slug, "write")?;
            let b = victim()?;
            let body = read.to_string();
            let mut all = Seen::default();
            let mut statuses = Vec::new();
            for (h1, h2) in [(&a.slug, &b.slug), (&b.slug, &a.slug)] {
                let req = format!(
                    "POST /v1/sql HTTP/1.1\r\nHost: tenantgate-verify\r\nAuthorization: Bearer {tok}\r\nX-Tenant-ID: {h1}\r\nX-Tenant-ID: {h2}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let s = timed(raw(&t.base_url, req)).await;
                statuses.push(s.status);
                all.rows.extend(s.rows);
                // Keep the first refusal (or a transport error) as the evidence.
                if all.error.is_none() || s.status != Some(400) {
                    all.error = s.error;
                    all.outcome = s.outcome;
                    all.status = s.status;
                }
            }
            if statuses.iter().any(|s| *s != Some(400)) {
                all.status = statuses.into_iter().find(|s| *s != Some(400)).flatten();
            }
            all
        }
        QueryTenant => {
            let b = victim()?;
            let url = format!("{sql_url}?tenant={}&tenant_id={}", b.slug, b.key);
            post(bearer(&token(t, &a.slug, "write")?), vec![], url, read).await
        }
        BodyTenant => {
            let b = victim()?;
            let mut body = read.clone();
            if let Some(o) = body.as_object_mut() {
                o.insert("tenant_id".into(), Value::from(b.slug.as_str()));
                o.insert("tenant".into(), Value::from(b.key.as_str()));
            }
            post(bearer(&token(t, &a.slug, "write")?), vec![], sql_url, body).await
        }
        VictimSchemaSql => {
            let sql = exec::fill("SELECT * FROM \"{v_schema}\".{t}", a, v, None);
            post(bearer(&token(t, &a.slug, "write")?), vec![], sql_url, json!({"sql": sql, "params": []})).await
        }
        VictimFilterSql => {
            let sql = exec::fill("SELECT * FROM {t} WHERE tenant_id = $1", a, v, None);
            post(bearer(&token(t, &a.slug, "write")?), vec![], sql_url, json!({"sql": sql, "params": [victim()?.key]})).await
        }
        KeyIdor => {
            let b = victim()?;
            let tok = token(t, &a.slug, "write")?;
            let get = |id: &str| timed(call("GET", format!("{}/v1/keys/{id}", t.base_url), vec![("Authorization", bearer(&tok))], None));
            let theirs = get(&b.rw_key_id).await;
            let missing_id = loop {
                let id = hex::encode(&random_secret()[..4]);
                if id != b.rw_key_id && id != a.rw_key_id {
                    break id;
                }
            };
            let missing = get(&missing_id).await;
            let body = |s: &Seen| s.rows.last().cloned().unwrap_or_default();
            let mut seen = theirs.clone();
            seen.rows.extend(missing.rows.iter().cloned());
            if theirs.status != missing.status || body(&theirs) != body(&missing) {
                seen.violation = Some(format!(
                    "enumeration via 404/403: another tenant's key id answers HTTP {} ({} bytes), a nonexistent id HTTP {} ({} bytes)",
                    theirs.status.unwrap_or(0),
                    body(&theirs).len(),
                    missing.status.unwrap_or(0),
                    body(&missing).len()
                ));
            }
            seen
        }
        RevokedKey => post(bearer(revoked), vec![], sql_url, read).await,
        Schema => timed(call("GET", format!("{}/v1/schema", t.base_url), vec![("Authorization", bearer(&token(t, &a.slug, "read")?))], None)).await,
    };
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> HttpTarget {
        HttpTarget {
            base_url: "http://127.0.0.1:1".into(),
            key: Some(Hs256Key::new(Some("k".into()), vec![7; 32])),
            issuer: Some("iss".into()),
            audience: None,
            tenant_claim: "tenant".into(),
            scope_claim: "scope".into(),
            ephemeral_key: true,
        }
    }

    #[test]
    fn the_secret_is_never_printed_or_serialized() {
        let t = target();
        let secret_hex = hex::encode([7u8; 32]);
        let dbg = format!("{t:?}");
        assert!(dbg.contains("redacted") && !dbg.contains("7, 7"), "{dbg}");
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert!(!json.contains("key") || !json.contains(&secret_hex), "{json}");
        assert!(!json.contains("\"key\""), "{json}");
    }

    #[test]
    fn forged_tokens_have_the_intended_shape() {
        let t = target();
        let c = claims(&t, "victim", "write");
        assert_eq!(c["tenant"], "victim");
        assert_eq!(c["iss"], "iss");
        assert!(c.get("aud").is_none());
        let none = alg_none(&c);
        assert!(none.ends_with('.') && none.split('.').count() == 3);
        let tok = sign(&t, &c).unwrap_or_default();
        let h = jsonwebtoken::decode_header(&tok).map(|h| (h.alg, h.kid));
        assert_eq!(h.ok(), Some((Algorithm::HS256, Some("k".into()))));
    }

    #[test]
    fn judge_fails_a_leak_in_a_header_a_wrong_status_and_an_enumeration() {
        let Some(sc) = crate::scenarios::catalogue().into_iter().find(|s| s.id == "http.x-tenant-id-mismatch") else {
            panic!("scenario http.x-tenant-id-mismatch is gone")
        };
        let judge = |r: &Resp| exec::judge(&sc, &seen_of(r, Duration::ZERO), true, &["VICTIM-CANARY"], "OWN", Duration::from_secs(1));
        let ok = Resp { status: 403, headers: vec![], body: r#"{"type":"urn:tenantgate:problem:tenant-mismatch"}"#.into() };
        assert!(judge(&ok).passed);
        let leak = Resp { headers: vec![("x-debug".into(), "VICTIM-CANARY".into())], ..ok.clone() };
        let v = judge(&leak);
        assert!(!v.passed && v.evidence.contains("LEAK"), "{v:?}");
        let served = Resp { status: 200, headers: vec![], body: r#"{"row_count":1}"#.into() };
        assert!(!judge(&served).passed);
        let mut s = seen_of(&ok, Duration::ZERO);
        s.violation = Some("enumeration via 404/403: differs".into());
        let v = exec::judge(&sc, &s, true, &["VICTIM-CANARY"], "OWN", Duration::from_secs(1));
        assert!(!v.passed && v.outcome.contains("enumeration"), "{v:?}");
    }

    #[test]
    fn evidence_is_redacted() {
        let r = redact("send a JWT or API key (tgk_\u{2026}); got tgk_0123abcd_ffff and eyJhbGc.eyJ0.sig, fine");
        assert!(!r.contains("tgk_") && !r.contains("eyJ"), "{r}");
        assert!(r.contains("fine"));
    }

    #[test]
    fn applicability_follows_the_configuration() {
        let mut t = target();
        assert!(applies(&t, HttpAttack::WrongIssuer));
        assert!(!applies(&t, HttpAttack::WrongAudience));
        t.key = None;
        assert!(!applies(&t, HttpAttack::OwnRowsJwt));
        assert!(applies(&t, HttpAttack::AlgNone) && applies(&t, HttpAttack::RevokedKey));
    }

    #[test]
    fn a_problem_response_becomes_an_error_and_everything_is_searchable() {
        let r = Resp {
            status: 403,
            headers: vec![("x-leak".into(), "hdr-marker".into())],
            body: r#"{"type":"urn:tenantgate:problem:read-only","detail":"no","rule":"read-only","sqlstate":"42501"}"#.into(),
        };
        let s = seen_of(&r, Duration::ZERO);
        assert_eq!(s.status, Some(403));
        assert!(s.rows.iter().any(|x| x.contains("hdr-marker")));
        assert_eq!(s.error.as_ref().map(|e| e.code.as_str()), Some("42501"));
        assert!(s.outcome.as_deref().unwrap_or("").contains("refused by the gate (rule read-only)"));
    }
}
