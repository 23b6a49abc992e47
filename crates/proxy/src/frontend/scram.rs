//! The server side of SCRAM-SHA-256 (RFC 5802 / 7677) as PostgreSQL speaks it, checking a
//! client's proof against each active API key of the tenant (they share one salt).
//!
//! Owns parsing the client's SCRAM messages and building the server's. It never sees a key
//! secret (only verifiers), never supports channel binding (a client that insists is refused
//! with a clear message), and for a tenant that does not exist it produces a plausible salt so
//! the exchange looks the same as for a wrong key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tg_catalog::keys::ActiveKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("channel binding is not supported by tenantgate; connect with channel_binding=prefer or disable")]
    ChannelBinding,
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
}

/// The parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `y,,`.
    pub gs2_header: String,
    /// The client-first-message-bare, as sent.
    pub bare: String,
    pub nonce: String,
}

fn printable_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

pub fn parse_client_first(data: &[u8]) -> Result<ClientFirst, ScramError> {
    let s = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("client-first is not UTF-8"))?;
    let (cbind, rest) = s.split_once(',').ok_or(ScramError::Malformed("missing GS2 header"))?;
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad channel-binding flag")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed("missing GS2 header"))?;
    if !authzid.is_empty() {
        return Err(ScramError::Malformed("authorization identities are not supported"));
    }
    let mut parts = bare.split(',');
    let user = parts.next().ok_or(ScramError::Malformed("missing user name"))?;
    if !user.starts_with("n=") {
        return Err(ScramError::Malformed("missing user name attribute"));
    }
    let nonce = parts
        .next()
        .and_then(|p| p.strip_prefix("r="))
        .ok_or(ScramError::Malformed("missing client nonce"))?;
    if !printable_nonce(nonce) {
        return Err(ScramError::Malformed("bad client nonce"));
    }
    if parts.any(|p| p.starts_with("m=")) {
        return Err(ScramError::Malformed("mandatory extensions are not supported"));
    }
    Ok(ClientFirst { gs2_header: format!("{cbind},,"), bare: bare.to_string(), nonce: nonce.to_string() })
}

/// The server-first message and the combined nonce.
pub fn server_first(cf: &ClientFirst, salt: &[u8], iterations: u32) -> (String, String) {
    let mut r = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut r);
    let nonce = format!("{}{}", cf.nonce, B64.encode(r));
    (format!("r={nonce},s={},i={iterations}", B64.encode(salt)), nonce)
}

/// The parsed client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    pub without_proof: String,
    pub proof: Vec<u8>,
}

pub fn parse_client_final(data: &[u8], cf: &ClientFirst, nonce: &str) -> Result<ClientFinal, ScramError> {
    let s = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("client-final is not UTF-8"))?;
    let (without_proof, proof) = s.rsplit_once(",p=").ok_or(ScramError::Malformed("missing proof"))?;
    let mut parts = without_proof.split(',');
    let cb = parts
        .next()
        .and_then(|p| p.strip_prefix("c="))
        .ok_or(ScramError::Malformed("missing channel binding"))?;
    if B64.decode(cb).ok().as_deref() != Some(cf.gs2_header.as_bytes()) {
        return Err(ScramError::Malformed("channel binding does not match the GS2 header"));
    }
    let r = parts.next().and_then(|p| p.strip_prefix("r=")).ok_or(ScramError::Malformed("missing nonce"))?;
    if r != nonce {
        return Err(ScramError::Malformed("nonce does not match"));
    }
    let proof = B64.decode(proof).map_err(|_| ScramError::Malformed("proof is not base64"))?;
    Ok(ClientFinal { without_proof: without_proof.to_string(), proof })
}

/// Check the proof against each key; the first match wins. Returns the key and the
/// server-final message (`v=…`).
pub fn verify<'k>(keys: &'k [ActiveKey], cf: &ClientFirst, sf: &str, fin: &ClientFinal) -> Option<(&'k ActiveKey, String)> {
    let auth = format!("{},{},{}", cf.bare, sf, fin.without_proof);
    // Check every key (no early exit), so timing does not reveal how many keys exist before
    // the matching one.
    let mut found = None;
    for k in keys {
        if let Some(sig) = k.verifier.check_proof(auth.as_bytes(), &fin.proof) {
            if found.is_none() {
                found = Some((k, format!("v={}", B64.encode(sig))));
            }
        }
    }
    found
}

/// A salt for a tenant that does not exist (or has no keys): stable per name for the life of
/// the process, so repeated probes see the same salt, as they would for a real tenant.
pub fn decoy_salt(process_secret: &[u8; 32], user: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(process_secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(user.as_bytes());
    m.finalize().into_bytes()[..16].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use tg_catalog::keys::{KeyScope, ScramVerifier};

    fn key(id: &str, secret: &str) -> ActiveKey {
        ActiveKey { id: id.into(), scope: KeyScope::ReadWrite, verifier: ScramVerifier::derive(secret, b"0123456789abcdef", 4096) }
    }

    #[test]
    fn full_exchange_with_a_real_client_picks_the_right_key() {
        let keys = vec![key("aaaaaaaa", "tgk_other"), key("bbbbbbbb", "tgk_right")];
        let mut client = ScramSha256::new(b"tgk_right", ChannelBinding::unsupported());
        let cf = parse_client_first(client.message()).unwrap();
        let (sf, nonce) = server_first(&cf, b"0123456789abcdef", 4096);
        client.update(sf.as_bytes()).unwrap();
        let fin = parse_client_final(client.message(), &cf, &nonce).unwrap();
        let (k, v) = verify(&keys, &cf, &sf, &fin).unwrap();
        assert_eq!(k.id, "bbbbbbbb");
        client.finish(v.as_bytes()).unwrap();

        let mut wrong = ScramSha256::new(b"tgk_wrong", ChannelBinding::unsupported());
        let cf = parse_client_first(wrong.message()).unwrap();
        let (sf, nonce) = server_first(&cf, b"0123456789abcdef", 4096);
        wrong.update(sf.as_bytes()).unwrap();
        let fin = parse_client_final(wrong.message(), &cf, &nonce).unwrap();
        assert!(verify(&keys, &cf, &sf, &fin).is_none());
    }

    #[test]
    fn refuses_channel_binding_and_garbage() {
        assert_eq!(parse_client_first(b"p=tls-server-end-point,,n=,r=abc"), Err(ScramError::ChannelBinding));
        for bad in [&b""[..], b"n,,", b"n,a=x,n=,r=abc", b"x,,n=,r=abc", b"n,,n=,r=", b"n,,r=abc", b"\xff", b"n,,n=,r=a,m=x"] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        let cf = parse_client_first(b"n,,n=,r=abc").unwrap();
        assert!(parse_client_final(b"c=biws,r=abcX", &cf, "abcX").is_err());
        assert!(parse_client_final(b"c=eSws,r=abcX,p=AAAA", &cf, "abcX").is_err());
        assert!(parse_client_final(b"c=biws,r=other,p=AAAA", &cf, "abcX").is_err());
        assert!(parse_client_final(b"c=biws,r=abcX,p=!!", &cf, "abcX").is_err());
        assert!(parse_client_final(b"c=biws,r=abcX,p=AAAA", &cf, "abcX").is_ok());
    }

    #[test]
    fn decoy_salt_is_stable() {
        let s = [1u8; 32];
        assert_eq!(decoy_salt(&s, "x"), decoy_salt(&s, "x"));
        assert_ne!(decoy_salt(&s, "x"), decoy_salt(&s, "y"));
        assert_eq!(decoy_salt(&s, "x").len(), 16);
    }
}
