//! JSON Web Tokens: loading the configured keys, verifying a tenant token, and signing the
//! development tokens of `tenantgate token`.
//!
//! Owns algorithm pinning: every configured key has exactly one algorithm, and a token is checked
//! only with keys of its own `alg`, under a `Validation` that allows that one algorithm. So
//! `alg=none` (not even parsed), an HS256 token "signed" with an RSA public key, and any other
//! algorithm confusion are refused. `kid` is only ever compared with configured ids; it never
//! names a file or a URL. `exp` is required; `nbf`, `iss` and `aud` are checked with the leeway.
//!
//! Shared by the doors that take a bearer credential (HTTP, MCP); the keys and claims are
//! configured once, in `[http]` (`tg-http` parses the table and hands over a [`JwtConfig`]).
//!
//! Must never: log or return key material or a token, accept a token without a verified
//! signature, or derive the tenant from anything but the verified claims.

use std::path::{Path, PathBuf};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use serde::{Deserialize, Serialize};

/// Why key material could not be loaded, or a token signed. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("jwt key material: {0}")]
    Key(String),
    #[error("jwt config: {0}")]
    Config(String),
}

/// The one algorithm a configured key is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Alg {
    HS256,
    RS256,
    ES256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
        }
    }
}

/// One entry of `[[http.jwt_keys]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Matched against the token's `kid` header. For JWKS keys, a `kid` in the JWK wins.
    #[serde(default)]
    pub kid: Option<String>,
    pub alg: Alg,
    /// HS256: file holding the shared secret (at least 32 bytes).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// HS256: environment variable holding the shared secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// RS256/ES256: a JWKS file (`{"keys": [...]}`) of public keys.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
}

/// What a door needs to verify (and, for development, sign) tenant JWTs.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub keys: Vec<JwtKeyConfig>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values, when set.
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Claim holding the tenant slug.
    pub tenant_claim: String,
    /// Claim holding the scope (`read` / `write`).
    pub scope_claim: String,
}

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;

fn algorithm(a: Alg) -> Algorithm {
    match a {
        Alg::HS256 => Algorithm::HS256,
        Alg::RS256 => Algorithm::RS256,
        Alg::ES256 => Algorithm::ES256,
    }
}

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies tenant JWTs against the configured keys.
pub struct JwtVerifier {
    keys: Vec<VerifyKey>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    tenant_claim: String,
    scope_claim: String,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub tenant: String,
    pub read_only: bool,
}

/// Why a token was refused. Each text is safe to show (it echoes nothing from the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT, or uses an algorithm that is not accepted (only HS256, RS256 and ES256 keys are configured, each pinned)")]
    Malformed,
    #[error("no configured key matches the token's kid and alg; use a token signed by a key listed in [[http.jwt_keys]]")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired; get a new one")]
    Expired,
    #[error("the token is not valid yet (nbf is in the future); check the clocks")]
    NotYetValid,
    #[error("the token's issuer (iss) is not the configured one")]
    WrongIssuer,
    #[error("the token's audience (aud) is not accepted here")]
    WrongAudience,
    #[error("the token lacks a required claim ({0})")]
    MissingClaim(String),
    #[error("the token's {0} claim must be `read` or `write`")]
    BadScope(String),
    #[error("no JWT keys are configured; add [[http.jwt_keys]] to tenantgate.toml, or use an API key (Bearer tgk_…)")]
    NoKeys,
}

fn read_secret(k: &JwtKeyConfig, base: &Path, at: &str) -> Result<Vec<u8>, JwtError> {
    let raw = if let Some(f) = &k.secret_file {
        let p = resolve(base, f);
        std::fs::read(&p).map_err(|e| JwtError::Key(format!("{at}: cannot read secret_file {}: {e}", p.display())))?
    } else if let Some(var) = &k.secret_env {
        std::env::var(var)
            .map_err(|_| JwtError::Key(format!("{at}: environment variable {var} (secret_env) is not set")))?
            .into_bytes()
    } else {
        return Err(JwtError::Key(format!("{at}: an HS256 key needs secret_file or secret_env")));
    };
    let secret = raw.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(JwtError::Key(format!(
            "{at}: the HS256 secret is {} bytes; use at least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
            secret.len()
        )));
    }
    Ok(secret)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn load_jwks(k: &JwtKeyConfig, base: &Path, at: &str) -> Result<Vec<VerifyKey>, JwtError> {
    let Some(f) = &k.jwks_file else {
        return Err(JwtError::Key(format!("{at}: an {} key needs jwks_file", k.alg.as_str())));
    };
    let p = resolve(base, f);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| JwtError::Key(format!("{at}: cannot read jwks_file {}: {e}", p.display())))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| JwtError::Key(format!("{at}: {} is not a JWKS ({{\"keys\": [...]}}): {e}", p.display())))?;
    let alg = algorithm(k.alg);
    let mut out = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let family_ok = match (&jwk.algorithm, k.alg) {
            (AlgorithmParameters::RSA(_), Alg::RS256) => true,
            (AlgorithmParameters::EllipticCurve(ec), Alg::ES256) => ec.curve == EllipticCurve::P256,
            _ => false,
        };
        if !family_ok {
            return Err(JwtError::Key(format!(
                "{at}: key #{} in {} is not a{} key; a JWKS file holds keys of the one algorithm its entry pins",
                i + 1,
                p.display(),
                if k.alg == Alg::RS256 { "n RSA" } else { " P-256 EC" }
            )));
        }
        if let Some(ka) = jwk.common.key_algorithm {
            if format!("{ka:?}") != k.alg.as_str() {
                return Err(JwtError::Key(format!(
                    "{at}: key #{} in {} says alg {ka:?}, but the entry pins {}",
                    i + 1,
                    p.display(),
                    k.alg.as_str()
                )));
            }
        }
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| JwtError::Key(format!("{at}: key #{} in {} is unusable: {e}", i + 1, p.display())))?;
        out.push(VerifyKey { kid: jwk.common.key_id.clone().or_else(|| k.kid.clone()), alg, key });
    }
    if out.is_empty() {
        return Err(JwtError::Key(format!("{at}: {} holds no keys", p.display())));
    }
    Ok(out)
}

impl JwtVerifier {
    /// Load every configured key. `base` resolves relative file names (the config's directory).
    pub fn load(cfg: &JwtConfig, base: &Path) -> Result<JwtVerifier, JwtError> {
        let mut keys = Vec::new();
        for (i, k) in cfg.keys.iter().enumerate() {
            let at = format!("[[http.jwt_keys]] #{}", i + 1);
            match k.alg {
                Alg::HS256 => {
                    let secret = read_secret(k, base, &at)?;
                    keys.push(VerifyKey { kid: k.kid.clone(), alg: Algorithm::HS256, key: DecodingKey::from_secret(&secret) });
                }
                Alg::RS256 | Alg::ES256 => keys.extend(load_jwks(k, base, &at)?),
            }
        }
        Ok(JwtVerifier {
            keys,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway_seconds,
            tenant_claim: cfg.tenant_claim.clone(),
            scope_claim: cfg.scope_claim.clone(),
        })
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Verify a compact JWS and extract the tenant and scope.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        if self.keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let candidates: Vec<&VerifyKey> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match &header.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        let validation = self.validation(header.alg);
        let mut last = TokenError::BadSignature;
        for k in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation) {
                Ok(data) => return self.claims(&data.claims),
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => TokenError::BadSignature,
                        ErrorKind::ExpiredSignature => return Err(TokenError::Expired),
                        ErrorKind::ImmatureSignature => return Err(TokenError::NotYetValid),
                        ErrorKind::InvalidIssuer => return Err(TokenError::WrongIssuer),
                        ErrorKind::InvalidAudience => return Err(TokenError::WrongAudience),
                        ErrorKind::MissingRequiredClaim(c) => return Err(TokenError::MissingClaim(c.clone())),
                        _ => TokenError::Malformed,
                    }
                }
            }
        }
        Err(last)
    }

    fn claims(&self, c: &Map<String, Value>) -> Result<TokenClaims, TokenError> {
        let tenant = match c.get(&self.tenant_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::MissingClaim(self.tenant_claim.clone())),
        };
        let scopes: Vec<&str> = match c.get(&self.scope_claim) {
            // No scope claim: the weaker scope.
            None => vec!["read"],
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(TokenError::BadScope(self.scope_claim.clone())),
        };
        let read_only = if scopes.contains(&"write") {
            false
        } else if scopes.contains(&"read") {
            true
        } else {
            return Err(TokenError::BadScope(self.scope_claim.clone()));
        };
        Ok(TokenClaims { tenant, read_only })
    }
}

/// A key's optional `kid` and its secret bytes.
pub type KidAndSecret = (Option<String>, Vec<u8>);

/// The `kid` and secret of the first configured HS256 key, if any: for `tenantgate verify`,
/// which signs its own attack tokens (valid ones, and ones that must be refused). The secret
/// must stay in memory; never print it.
pub fn first_hs256_secret(cfg: &JwtConfig, base: &Path) -> Result<Option<KidAndSecret>, JwtError> {
    let Some((i, k)) = cfg.keys.iter().enumerate().find(|(_, k)| k.alg == Alg::HS256) else {
        return Ok(None);
    };
    let secret = read_secret(k, base, &format!("[[http.jwt_keys]] #{}", i + 1))?;
    Ok(Some((k.kid.clone(), secret)))
}

/// Signs development tokens with the first configured HS256 key (`tenantgate token`).
pub struct DevSigner {
    kid: Option<String>,
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
    tenant_claim: String,
    scope_claim: String,
}

impl std::fmt::Debug for DevSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevSigner(<redacted>)")
    }
}

impl DevSigner {
    pub fn load(cfg: &JwtConfig, base: &Path) -> Result<DevSigner, JwtError> {
        let Some((i, k)) = cfg.keys.iter().enumerate().find(|(_, k)| k.alg == Alg::HS256) else {
            return Err(JwtError::Key(
                "no HS256 key is configured to sign with. Add one to tenantgate.toml:\n\
                 [[http.jwt_keys]]\nalg = \"HS256\"\nsecret_file = \"jwt.secret\"   # e.g. `openssl rand -hex 32 > jwt.secret`"
                    .into(),
            ));
        };
        let secret = read_secret(k, base, &format!("[[http.jwt_keys]] #{}", i + 1))?;
        Ok(DevSigner {
            kid: k.kid.clone(),
            key: EncodingKey::from_secret(&secret),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.first().cloned(),
            tenant_claim: cfg.tenant_claim.clone(),
            scope_claim: cfg.scope_claim.clone(),
        })
    }

    /// A token for `tenant`, valid from now for `ttl_seconds`.
    pub fn sign(&self, tenant: &str, read_only: bool, ttl_seconds: u64) -> Result<String, JwtError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl_seconds).map_err(|_| JwtError::Config("--ttl is too large".into()))?;
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(format!("tenantgate-dev:{tenant}")));
        claims.insert(self.tenant_claim.clone(), Value::from(tenant));
        claims.insert(self.scope_claim.clone(), Value::from(if read_only { "read" } else { "write" }));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("nbf".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now.saturating_add(ttl)));
        if let Some(iss) = &self.issuer {
            claims.insert("iss".into(), Value::from(iss.as_str()));
        }
        if let Some(aud) = &self.audience {
            claims.insert("aud".into(), Value::from(aud.as_str()));
        }
        let mut header = Header::new(Algorithm::HS256);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| JwtError::Key(format!("cannot sign the token: {e}")))
    }
}

/// Parse a TTL such as `90s`, `15m`, `1h`, `7d` or a bare number of seconds.
pub fn parse_ttl(s: &str) -> Result<u64, JwtError> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(mult)
            .ok_or_else(|| JwtError::Config(format!("--ttl {s:?} is too large"))),
        _ => Err(JwtError::Config(format!("--ttl {s:?} is not a duration; use e.g. 90s, 15m, 1h or 7d"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> JwtConfig {
        std::fs::write(dir.join("jwt.secret"), "0123456789abcdef0123456789abcdef0123").expect("write");
        JwtConfig {
            keys: vec![JwtKeyConfig {
                kid: Some("dev".into()),
                alg: Alg::HS256,
                secret_file: Some("jwt.secret".into()),
                secret_env: None,
                jwks_file: None,
            }],
            issuer: Some("iss-1".into()),
            audience: vec!["aud-1".into()],
            leeway_seconds: 0,
            tenant_claim: "tenant".into(),
            scope_claim: "scope".into(),
        }
    }

    fn hs(claims: Value, kid: Option<&str>, secret: &[u8]) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret)).expect("encode")
    }

    #[test]
    fn signs_and_verifies_and_refuses() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = cfg(dir.path());
        let v = JwtVerifier::load(&c, dir.path()).expect("verifier");
        let s = DevSigner::load(&c, dir.path()).expect("signer");
        let t = s.sign("acme", true, 60).expect("sign");
        assert_eq!(v.verify(&t), Ok(TokenClaims { tenant: "acme".into(), read_only: true }));
        let t = s.sign("acme", false, 60).expect("sign");
        assert_eq!(v.verify(&t).map(|c| c.read_only), Ok(false));

        let secret = b"0123456789abcdef0123456789abcdef0123";
        let now = chrono::Utc::now().timestamp();
        let base = serde_json::json!({"tenant": "acme", "scope": "read", "iss": "iss-1", "aud": "aud-1", "exp": now + 60});
        let with = |k: &str, val: Value| {
            let mut b = base.clone();
            b[k] = val;
            b
        };
        assert_eq!(v.verify(&hs(with("exp", Value::from(now - 10)), Some("dev"), secret)), Err(TokenError::Expired));
        assert_eq!(v.verify(&hs(with("nbf", Value::from(now + 100)), Some("dev"), secret)), Err(TokenError::NotYetValid));
        assert_eq!(v.verify(&hs(with("iss", Value::from("x")), Some("dev"), secret)), Err(TokenError::WrongIssuer));
        assert_eq!(v.verify(&hs(with("aud", Value::from("x")), Some("dev"), secret)), Err(TokenError::WrongAudience));
        assert_eq!(v.verify(&hs(base.clone(), Some("dev"), b"another-secret-another-secret-xx")), Err(TokenError::BadSignature));
        assert_eq!(v.verify(&hs(base.clone(), Some("../../etc/passwd"), secret)), Err(TokenError::UnknownKey));
        assert_eq!(v.verify(&hs(with("scope", Value::from("admin")), Some("dev"), secret)), Err(TokenError::BadScope("scope".into())));
        assert!(v.verify(&hs(base.clone(), None, secret)).is_ok(), "no kid: keys of the token's alg are tried");

        // alg=none: header {"alg":"none"}, empty signature.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(base.to_string()));
        assert_eq!(v.verify(&none), Err(TokenError::Malformed));
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("1h").ok(), Some(3600));
        assert_eq!(parse_ttl("90s").ok(), Some(90));
        assert_eq!(parse_ttl("15m").ok(), Some(900));
        assert_eq!(parse_ttl("120").ok(), Some(120));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("0").is_err());
    }
}
