//! Framing of frontend (client → server) messages: the untyped startup-phase packets
//! (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) and the typed messages after
//! them, with length limits.
//!
//! Owns turning bytes from a client into whole frames. It is total: any input yields a frame,
//! "need more bytes", or a [`FrameError`], never a panic, and it never allocates more than
//! the configured limit for one message. It never interprets SQL and never copies a message
//! body it does not have to: a [`Frame`] keeps the raw bytes so they are forwarded verbatim.

use bytes::{Buf, Bytes, BytesMut};

/// PostgreSQL's own cap for startup-phase packets (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
pub const PROTOCOL_3_0: u32 = 196_608;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid length of startup packet ({0} bytes)")]
    StartupLength(usize),
    #[error("invalid message length {len} for message type {tag:?}")]
    Length { tag: char, len: usize },
    #[error("message of type {tag:?} is {len} bytes, more than the gateway's limit of {max} bytes; send smaller messages (split COPY data and large statements)")]
    TooLarge { tag: char, len: usize, max: usize },
    #[error("malformed startup packet: {0}")]
    MalformedStartup(&'static str),
    #[error("malformed {what} message: {reason}")]
    Malformed { what: &'static str, reason: &'static str },
}

/// A startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel { pid: u32, secret: u32 },
    /// A StartupMessage: protocol version and its name/value parameters, in order.
    Message { version: u32, params: Vec<(String, String)> },
}

/// Decode one startup-phase packet from the front of `buf`. `Ok(None)`: more bytes needed.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<Startup>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(FrameError::StartupLength(len));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let packet = buf.split_to(len).freeze();
    parse_startup(&packet[4..]).map(Some)
}

fn parse_startup(body: &[u8]) -> Result<Startup, FrameError> {
    let mut b = body;
    let code = b.get_u32();
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            if !b.is_empty() {
                return Err(FrameError::MalformedStartup("an SSL or GSS encryption request has no payload"));
            }
            Ok(if code == SSL_REQUEST_CODE { Startup::Ssl } else { Startup::GssEnc })
        }
        CANCEL_REQUEST_CODE => {
            if b.len() != 8 {
                return Err(FrameError::MalformedStartup("a cancel request holds exactly a process id and a key"));
            }
            Ok(Startup::Cancel { pid: b.get_u32(), secret: b.get_u32() })
        }
        version => {
            let mut params = Vec::new();
            loop {
                let name = take_cstr(&mut b).ok_or(FrameError::MalformedStartup("a parameter name is not terminated"))?;
                if name.is_empty() {
                    break;
                }
                let value = take_cstr(&mut b).ok_or(FrameError::MalformedStartup("a parameter value is not terminated"))?;
                let name = std::str::from_utf8(name).map_err(|_| FrameError::MalformedStartup("a parameter name is not UTF-8"))?;
                let value = std::str::from_utf8(value).map_err(|_| FrameError::MalformedStartup("a parameter value is not UTF-8"))?;
                params.push((name.to_owned(), value.to_owned()));
            }
            if !b.is_empty() {
                return Err(FrameError::MalformedStartup("bytes after the final terminator"));
            }
            Ok(Startup::Message { version, params })
        }
    }
}

/// Take a NUL-terminated byte string off the front of `b`.
pub fn take_cstr<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let end = b.iter().position(|c| *c == 0)?;
    let s = &b[..end];
    *b = &b[end + 1..];
    Some(s)
}

/// Size limits for typed messages.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// For every message but CopyData.
    pub max_message: usize,
    /// For CopyData ('d').
    pub max_copy: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits { max_message: 64 << 20, max_copy: 1 << 30 }
    }
}

/// One typed message: its tag and its raw bytes (tag, length and body), ready to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub raw: Bytes,
}

impl Frame {
    /// The message body (after tag and length).
    pub fn body(&self) -> &[u8] {
        self.raw.get(5..).unwrap_or(&[])
    }
}

/// Decode one typed message from the front of `buf`. `Ok(None)`: more bytes needed. A
/// message longer than the limits is refused as soon as its header is read.
pub fn decode_frame(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len < 4 {
        return Err(FrameError::Length { tag: tag as char, len });
    }
    let max = if tag == b'd' { limits.max_copy } else { limits.max_message };
    if len > max {
        return Err(FrameError::TooLarge { tag: tag as char, len, max });
    }
    let total = len + 1;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    Ok(Some(Frame { tag, raw: buf.split_to(total).freeze() }))
}

/// A Parse message's fields that the gateway looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMsg<'a> {
    pub name: &'a str,
    pub query: &'a str,
    /// The parameter type count and OIDs, as sent (for re-encoding with another query).
    pub param_types: &'a [u8],
}

/// Parse the body of a Parse ('P') message.
pub fn parse_parse(body: &[u8]) -> Result<ParseMsg<'_>, FrameError> {
    let bad = |reason| FrameError::Malformed { what: "Parse", reason };
    let mut b = body;
    let name = take_cstr(&mut b).ok_or(bad("the statement name is not terminated"))?;
    let query = take_cstr(&mut b).ok_or(bad("the query is not terminated"))?;
    if b.len() < 2 {
        return Err(bad("the parameter count is missing"));
    }
    let param_types = b;
    let n = b.get_u16() as usize;
    if b.len() != n * 4 {
        return Err(bad("the parameter types do not match their count"));
    }
    Ok(ParseMsg {
        name: std::str::from_utf8(name).map_err(|_| bad("the statement name is not UTF-8"))?,
        query: std::str::from_utf8(query).map_err(|_| bad("the query is not UTF-8"))?,
        param_types,
    })
}

/// The head of a Bind ('B') message: the names the gateway may rewrite, and the rest
/// (parameter formats, values, result formats) untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindHead<'a> {
    pub portal: &'a [u8],
    pub statement: &'a str,
    pub rest: &'a [u8],
}

/// Parse the names at the front of a Bind body.
pub fn parse_bind_head(body: &[u8]) -> Result<BindHead<'_>, FrameError> {
    let bad = |reason| FrameError::Malformed { what: "Bind", reason };
    let mut b = body;
    let portal = take_cstr(&mut b).ok_or(bad("the portal name is not terminated"))?;
    let statement = take_cstr(&mut b).ok_or(bad("the statement name is not terminated"))?;
    let statement = std::str::from_utf8(statement).map_err(|_| bad("the statement name is not UTF-8"))?;
    Ok(BindHead { portal, statement, rest: b })
}

/// What a Describe ('D') or Close ('C') message names: `b'S'` a statement or `b'P'` a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub kind: u8,
    pub name: &'a str,
}

/// Parse the body of a Describe or Close message (`what` names it in errors).
pub fn parse_target<'a>(body: &'a [u8], what: &'static str) -> Result<Target<'a>, FrameError> {
    let bad = |reason| FrameError::Malformed { what, reason };
    let (&kind, mut b) = body.split_first().ok_or(bad("the message is empty"))?;
    if kind != b'S' && kind != b'P' {
        return Err(bad("it names neither a statement ('S') nor a portal ('P')"));
    }
    let name = take_cstr(&mut b).ok_or(bad("the name is not terminated"))?;
    if !b.is_empty() {
        return Err(bad("bytes after the name"));
    }
    Ok(Target { kind, name: std::str::from_utf8(name).map_err(|_| bad("the name is not UTF-8"))? })
}

/// Parse the body of a simple Query ('Q') message.
pub fn parse_query(body: &[u8]) -> Result<&str, FrameError> {
    let bad = |reason| FrameError::Malformed { what: "Query", reason };
    let mut b = body;
    let q = take_cstr(&mut b).ok_or(bad("the query is not terminated"))?;
    if !b.is_empty() {
        return Err(bad("bytes after the query"));
    }
    std::str::from_utf8(q).map_err(|_| bad("the query is not UTF-8"))
}

/// A SASLInitialResponse ('p' during SASL): mechanism and client-first message.
pub fn parse_sasl_initial(body: &[u8]) -> Result<(&str, &[u8]), FrameError> {
    let bad = |reason| FrameError::Malformed { what: "SASLInitialResponse", reason };
    let mut b = body;
    let mech = take_cstr(&mut b).ok_or(bad("the mechanism is not terminated"))?;
    if b.len() < 4 {
        return Err(bad("the data length is missing"));
    }
    let n = b.get_i32();
    if n < 0 || b.len() != n as usize {
        return Err(bad("the data length does not match"));
    }
    Ok((std::str::from_utf8(mech).map_err(|_| bad("the mechanism is not UTF-8"))?, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol 3.0 startup packet, as a client library writes it.
    fn startup(params: &[(&str, &str)]) -> BytesMut {
        let mut b = BytesMut::new();
        postgres_protocol::message::frontend::startup_message(params.iter().copied(), &mut b).expect("test parameters hold no NUL");
        b
    }

    #[test]
    fn startup_packets() {
        let mut b = startup(&[("user", "acme"), ("database", "x")]);
        let s = decode_startup(&mut b).unwrap().unwrap();
        assert_eq!(
            s,
            Startup::Message { version: PROTOCOL_3_0, params: vec![("user".into(), "acme".into()), ("database".into(), "x".into())] }
        );
        assert!(b.is_empty());
        let mut b = BytesMut::from(&[0u8, 0, 0, 8, 4, 210, 22, 47][..]);
        assert_eq!(decode_startup(&mut b).unwrap(), Some(Startup::Ssl));
        let mut b = BytesMut::from(&[0u8, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 7, 0, 0, 0, 9][..]);
        assert_eq!(decode_startup(&mut b).unwrap(), Some(Startup::Cancel { pid: 7, secret: 9 }));
    }

    #[test]
    fn startup_truncated_oversized_malformed() {
        let full = startup(&[("user", "acme")]);
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(decode_startup(&mut b), Ok(None), "prefix of {cut} bytes");
        }
        let mut b = BytesMut::from(&[0u8, 0, 0, 3][..]);
        assert!(decode_startup(&mut b).is_err());
        let mut b = BytesMut::from(&[0u8, 1, 0, 0][..]);
        assert!(matches!(decode_startup(&mut b), Err(FrameError::StartupLength(65536))));
        let mut b = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(decode_startup(&mut b).is_err());
        // No terminator for the value.
        let mut b = BytesMut::from(&[0u8, 0, 0, 13, 0, 3, 0, 0, b'u', 0, b'a', b'b', b'c'][..]);
        assert!(matches!(decode_startup(&mut b), Err(FrameError::MalformedStartup(_))));
        // Bytes after the final terminator.
        let mut b = BytesMut::from(&[0u8, 0, 0, 11, 0, 3, 0, 0, 0, b'x', b'y'][..]);
        assert!(matches!(decode_startup(&mut b), Err(FrameError::MalformedStartup(_))));
        // Cancel request of the wrong size.
        let mut b = BytesMut::from(&[0u8, 0, 0, 12, 4, 210, 22, 46, 0, 0, 0, 7][..]);
        assert!(decode_startup(&mut b).is_err());
        // Invalid UTF-8.
        let mut b = BytesMut::from(&[0u8, 0, 0, 14, 0, 3, 0, 0, 0xff, 0, b'a', 0, 0, 0][..]);
        assert!(decode_startup(&mut b).is_err());
    }

    #[test]
    fn typed_frames() {
        let limits = FrameLimits { max_message: 100, max_copy: 1000 };
        let mut b = BytesMut::new();
        b.extend_from_slice(b"Q\0\0\0\x0dSELECT 1\0X\0\0\0\x04");
        let f = decode_frame(&mut b, &limits).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(parse_query(f.body()).unwrap(), "SELECT 1");
        let f = decode_frame(&mut b, &limits).unwrap().unwrap();
        assert_eq!(f.tag, b'X');
        assert!(f.body().is_empty());
        assert_eq!(decode_frame(&mut b, &limits), Ok(None));
    }

    #[test]
    fn typed_truncated_oversized_malformed() {
        let limits = FrameLimits { max_message: 100, max_copy: 1000 };
        let full = b"Q\0\0\0\x0dSELECT 1\0";
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(decode_frame(&mut b, &limits), Ok(None));
        }
        let mut b = BytesMut::from(&b"Q\0\0\0\x03"[..]);
        assert!(matches!(decode_frame(&mut b, &limits), Err(FrameError::Length { .. })));
        let mut b = BytesMut::from(&b"Q\x40\0\0\0"[..]);
        assert!(matches!(decode_frame(&mut b, &limits), Err(FrameError::TooLarge { .. })));
        let mut b = BytesMut::from(&b"Q\xff\xff\xff\xff"[..]);
        assert!(matches!(decode_frame(&mut b, &limits), Err(FrameError::TooLarge { .. })));
        // CopyData has its own, larger limit.
        let mut b = BytesMut::from(&b"d\0\0\x01\0"[..]);
        assert_eq!(decode_frame(&mut b, &limits), Ok(None));
        let mut b = BytesMut::from(&b"d\0\0\x10\0"[..]);
        assert!(decode_frame(&mut b, &limits).is_err());
        assert!(parse_query(b"SELECT 1").is_err());
        assert!(parse_query(b"SELECT 1\0x").is_err());
        assert!(parse_query(b"\xff\0").is_err());
        assert!(parse_parse(b"s\0SELECT $1\0\0\x01\0\0\0\x17").is_ok());
        assert!(parse_parse(b"s\0SELECT $1\0\0\x02\0\0\0\x17").is_err());
        assert!(parse_parse(b"s\0SELECT").is_err());
        let h = parse_bind_head(b"p\0s1\0\0\0\0\0\0\0").unwrap();
        assert_eq!((h.portal, h.statement, h.rest), (&b"p"[..], "s1", &b"\0\0\0\0\0\0"[..]));
        assert!(parse_bind_head(b"p\0s1").is_err());
        assert_eq!(parse_target(b"Ss1\0", "Close").unwrap(), Target { kind: b'S', name: "s1" });
        assert!(parse_target(b"Xs1\0", "Close").is_err());
        assert!(parse_target(b"Ps1\0x", "Describe").is_err());
        assert!(parse_target(b"", "Describe").is_err());
        assert!(parse_sasl_initial(b"SCRAM-SHA-256\0\0\0\0\x03abc").is_ok());
        assert!(parse_sasl_initial(b"SCRAM-SHA-256\0\xff\xff\xff\xffabc").is_err());
        assert!(parse_sasl_initial(b"SCRAM-SHA-256\0\0\0\0\x09abc").is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let limits = FrameLimits { max_message: 4096, max_copy: 8192 };
        for _ in 0..20_000 {
            let n = rng.gen_range(0..64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            let mut b = BytesMut::from(&bytes[..]);
            let _ = decode_startup(&mut b);
            let mut b = BytesMut::from(&bytes[..]);
            while let Ok(Some(f)) = decode_frame(&mut b, &limits) {
                let _ = parse_query(f.body());
                let _ = parse_parse(f.body());
                let _ = parse_sasl_initial(f.body());
                let _ = parse_bind_head(f.body());
                let _ = parse_target(f.body(), "Close");
            }
        }
    }
}
