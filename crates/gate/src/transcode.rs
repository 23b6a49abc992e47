//! libpg_query's JSON parse tree → the protobuf bytes of the same tree.
//!
//! Why: libpg_query can hand its tree over as protobuf or as JSON. Its protobuf encoder (upb)
//! visits every one of the ~270 possible fields of each `Node` message to find the one that is
//! set, which made it 60% of the time of a new statement's check (perf, the 300-character
//! SELECT of the gate benchmark). Its JSON writer has no such cost. The gate's analysis works
//! on the `pg_query` crate's prost types, which only decode protobuf; so the JSON is turned into
//! protobuf here, streaming, with the field tables `build.rs` generates from
//! `proto/pg_query.proto`, and prost decodes it as before. The JSON follows protobuf's JSON
//! mapping for that schema (keys are the fields' JSON names, enums are written by name, oneof
//! members appear as plain keys), which is all this module relies on.
//!
//! The reader is hand-written rather than serde_json driven by a visitor (tried first): it only
//! needs the JSON libpg_query writes (no whitespace, keys without escapes), borrows keys, and
//! copies strings straight into the output; that took the conversion from about 16 µs to 8 µs
//! for the benchmark's 300-character SELECT.
//!
//! Owns that mapping and nothing else. It must never guess: a key, enum name or value that the
//! schema does not describe fails the whole conversion (and the gate refuses the statement),
//! and a test (`parse::tests`) checks that the decoded tree equals the one libpg_query's own
//! protobuf output decodes to.

use std::fmt;

mod schema {
    /// A message type of the schema.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct MessageId(pub(crate) u16);
    /// An enum type of the schema.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct EnumId(pub(crate) u16);

    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Kind {
        Bool,
        String,
        Int32,
        Int64,
        Uint32,
        Uint64,
        Double,
        Enum(EnumId),
        Message(MessageId),
    }

    /// One field of a message: its protobuf number and type.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Field {
        pub(crate) number: u32,
        pub(crate) repeated: bool,
        pub(crate) kind: Kind,
    }

    /// A perfect hash table from JSON key (or enum name) to `T`, built by build.rs.
    pub(crate) struct Table<T: 'static> {
        seed: u64,
        shift: u32,
        slots: &'static [Option<(&'static [u8], T)>],
    }

    impl<T: Copy> Table<T> {
        fn get(&self, key: &[u8]) -> Option<T> {
            match self.slots.get(slot(key, self.seed, self.shift))? {
                Some((k, v)) if *k == key => Some(*v),
                _ => None,
            }
        }
    }

    /// The field of message `m` that JSON key `key` names.
    pub(crate) fn field(m: MessageId, key: &[u8]) -> Option<Field> {
        FIELDS.get(usize::from(m.0))?.get(key)
    }

    /// The number of value `name` of enum `e`.
    pub(crate) fn enum_value(e: EnumId, name: &[u8]) -> Option<i32> {
        ENUMS.get(usize::from(e.0))?.get(name)
    }

    include!("key_hash.rs");
    include!(concat!(env!("OUT_DIR"), "/schema.rs"));
}

use schema::{Field, Kind, MessageId};

/// Where and why the JSON did not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    at: usize,
    what: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "libpg_query's JSON at byte {}: {}", self.at, self.what)
    }
}

/// Converts libpg_query's JSON for a `ParseResult` into that message's protobuf encoding.
///
/// Strings are copied as they are, not checked for UTF-8: prost checks every string field when
/// it decodes the result (as it did for libpg_query's own protobuf), so a string literal with
/// bytes that are not UTF-8 fails there, the same way as before.
pub(crate) fn json_to_protobuf(json: &[u8]) -> Result<Vec<u8>, Error> {
    // The protobuf is smaller than the JSON (tags instead of quoted keys, binary numbers), so
    // this rarely grows (only a one-letter key holding a negative number encodes longer).
    let mut r = Reader { json, at: 0, out: Vec::with_capacity(json.len()) };
    r.message(schema::PARSE_RESULT)?;
    if r.at != json.len() {
        return Err(r.error("trailing characters after the parse tree"));
    }
    Ok(r.out)
}

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, number: u32, wire: u32) {
    put_varint(out, u64::from(number << 3 | wire));
}

/// A recursive-descent reader over the JSON, writing protobuf to `out` as it goes.
struct Reader<'j> {
    json: &'j [u8],
    at: usize,
    out: Vec<u8>,
}

impl<'j> Reader<'j> {
    fn error(&self, what: impl Into<String>) -> Error {
        Error { at: self.at, what: what.into() }
    }

    /// libpg_query writes no whitespace between tokens, so none is accepted: JSON that
    /// differs from what it writes is refused, not interpreted.
    fn eat(&mut self, c: u8) -> bool {
        if self.json.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), Error> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{}`", c as char)))
        }
    }

    fn eat_word(&mut self, word: &[u8]) -> bool {
        if self.json[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// A string without escapes (object keys, enum names), borrowed from the input. A key with
    /// an escape would end at the wrong quote or keep its backslash; either way it names no
    /// field or value and is refused by the caller.
    fn plain_string(&mut self) -> Result<&'j [u8], Error> {
        self.expect(b'"')?;
        let rest = &self.json[self.at..];
        let Some(len) = memchr::memchr(b'"', rest) else {
            return Err(self.error("unterminated string"));
        };
        self.at += len + 1;
        Ok(&rest[..len])
    }

    /// Reserves two bytes for a length prefix at the current end of `out`.
    fn open_len(&mut self) -> usize {
        self.out.extend_from_slice(&[0, 0]);
        self.out.len() - 2
    }

    /// Writes the length of what followed the two bytes reserved at `at`. Lengths below 2^14
    /// are written as a two-byte varint even when one byte would do (`0x85 0x00` for 5):
    /// protobuf decoders must accept such padded varints, and it spares moving the content
    /// once its length is known. Longer content makes room for the longer varint.
    fn close_len(&mut self, at: usize) {
        let len = self.out.len() - at - 2;
        if len < 1 << 14 {
            self.out[at] = len as u8 | 0x80;
            self.out[at + 1] = (len >> 7) as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            put_varint(&mut prefix, len as u64);
            self.out.splice(at..at + 2, prefix);
        }
    }

    /// A JSON object holding message `ty`. Recursive: each level of the tree costs a small
    /// frame here, far less than prost's decode of the same level (see `stack`).
    fn message(&mut self, ty: MessageId) -> Result<(), Error> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.plain_string()?;
            let Some(field) = schema::field(ty, key) else {
                return Err(self.unknown_key(key, ty));
            };
            self.expect(b':')?;
            if field.repeated && !self.json[self.at..].starts_with(b"null") {
                // Unpacked, one occurrence per element: decoders accept it for scalars too.
                self.expect(b'[')?;
                if !self.eat(b']') {
                    loop {
                        if self.json.get(self.at) == Some(&b'n') {
                            // libpg_query writes `{}` for an empty list element, never null:
                            // dropping the element would change the tree, so refuse.
                            return Err(self.error("null element in an array"));
                        }
                        self.value(field)?;
                        if self.eat(b']') {
                            break;
                        }
                        self.expect(b',')?;
                    }
                }
            } else {
                self.value(field)?;
            }
            if self.eat(b'}') {
                return Ok(());
            }
            self.expect(b',')?;
        }
    }

    #[cold]
    fn unknown_key(&self, key: &[u8], ty: MessageId) -> Error {
        let key = String::from_utf8_lossy(key);
        self.error(format!("no field {key:?} in message {}", schema::message_name(ty)))
    }

    /// One value of `field`, written with its tag; `null` is an absent value.
    fn value(&mut self, field: Field) -> Result<(), Error> {
        if self.json.get(self.at) == Some(&b'n') && self.eat_word(b"null") {
            return Ok(());
        }
        let number = field.number;
        match field.kind {
            Kind::Message(ty) => {
                put_tag(&mut self.out, number, WIRE_LEN);
                let at = self.open_len();
                self.message(ty)?;
                self.close_len(at);
            }
            Kind::String => {
                put_tag(&mut self.out, number, WIRE_LEN);
                let at = self.open_len();
                self.string_into_out()?;
                self.close_len(at);
            }
            Kind::Enum(e) => {
                let name = self.plain_string()?;
                let Some(value) = schema::enum_value(e, name) else {
                    let name = String::from_utf8_lossy(name);
                    return Err(self.error(format!("{name:?} is not a value of the enum of field {number}")));
                };
                put_tag(&mut self.out, number, WIRE_VARINT);
                put_varint(&mut self.out, i64::from(value) as u64);
            }
            Kind::Bool => {
                let v = if self.eat_word(b"true") {
                    true
                } else if self.eat_word(b"false") {
                    false
                } else {
                    return Err(self.error(format!("expected true or false for field {number}")));
                };
                put_tag(&mut self.out, number, WIRE_VARINT);
                self.out.push(u8::from(v));
            }
            Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 => {
                let token = self.number_token();
                let v: Option<i128> = std::str::from_utf8(token).ok().and_then(|t| t.parse().ok());
                let fits = v.is_some_and(|v| match field.kind {
                    Kind::Int32 => i32::try_from(v).is_ok(),
                    Kind::Int64 => i64::try_from(v).is_ok(),
                    Kind::Uint32 => u32::try_from(v).is_ok(),
                    _ => u64::try_from(v).is_ok(),
                });
                let (Some(v), true) = (v, fits) else {
                    let token = String::from_utf8_lossy(token);
                    return Err(self.error(format!("{token:?} is not a valid value for integer field {number}")));
                };
                put_tag(&mut self.out, number, WIRE_VARINT);
                // Negative int32/int64 are sign-extended to ten bytes, as protobuf encodes them.
                put_varint(&mut self.out, v as i64 as u64);
            }
            Kind::Double => {
                let token = self.number_token();
                let Some(v) = std::str::from_utf8(token).ok().and_then(|t| t.parse::<f64>().ok()) else {
                    let token = String::from_utf8_lossy(token);
                    return Err(self.error(format!("{token:?} is not a valid value for number field {number}")));
                };
                put_tag(&mut self.out, number, WIRE_FIXED64);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(())
    }

    /// The characters of a JSON number (validated by the caller's `parse`).
    fn number_token(&mut self) -> &'j [u8] {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.json.get(self.at) {
            self.at += 1;
        }
        &self.json[start..self.at]
    }

    /// A JSON string, unescaped, appended to `out`.
    fn string_into_out(&mut self) -> Result<(), Error> {
        self.expect(b'"')?;
        loop {
            let rest = &self.json[self.at..];
            let Some(len) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(self.error("unterminated string"));
            };
            self.out.extend_from_slice(&rest[..len]);
            self.at += len + 1;
            if rest[len] == b'"' {
                return Ok(());
            }
            self.escape()?;
        }
    }

    /// The escape after a backslash (already consumed), appended to `out` as UTF-8.
    fn escape(&mut self) -> Result<(), Error> {
        let Some(&c) = self.json.get(self.at) else {
            return Err(self.error("unterminated escape"));
        };
        self.at += 1;
        let byte = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut code = u32::from(self.hex4()?);
                if (0xd800..0xdc00).contains(&code) {
                    // A surrogate pair: the low half must follow as another \u escape.
                    if !self.eat_word(b"\\u") {
                        return Err(self.error("unpaired surrogate in \\u escape"));
                    }
                    let low = u32::from(self.hex4()?);
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.error("unpaired surrogate in \\u escape"));
                    }
                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                }
                let Some(ch) = char::from_u32(code) else {
                    return Err(self.error("invalid \\u escape"));
                };
                let mut buf = [0; 4];
                self.out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("unknown escape")),
        };
        self.out.push(byte);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, Error> {
        let digits = self.json.get(self.at..self.at + 4).and_then(|d| std::str::from_utf8(d).ok());
        let Some(v) = digits.and_then(|d| u16::from_str_radix(d, 16).ok()) else {
            return Err(self.error("invalid \\u escape"));
        };
        self.at += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::json_to_protobuf;

    #[test]
    fn refuses_what_the_schema_does_not_describe() {
        for (json, why) in [
            (r#"{"version":1,"nope":2}"#, "no field \"nope\" in message ParseResult"),
            (r#"{"version":"x"}"#, "not a valid value for integer field 1"),
            (r#"{"version":4294967296}"#, "not a valid value for integer field 1"),
            (r#"{"version":1.5}"#, "not a valid value for integer field 1"),
            (r#"{"stmts":[{"stmt":{"SelectStmt":{"op":"NOT_AN_OP"}}}]}"#, "is not a value of the enum"),
            (r#"{"stmts":{}}"#, "expected `[`"),
            (r#"{"stmts":[null]}"#, "null element in an array"),
            (r#"{"version":1} x"#, "trailing characters"),
            (r#"{"version":1"#, "expected `,`"),
            (r#"{"stmts":[{"stmt":{"String":{"sval":"abc}}}]}"#, "unterminated string"),
            (r#"{"stmts":[{"stmt":{"String":{"sval":"a\q"}}}]}"#, "unknown escape"),
            (r#"{"stmts":[{"stmt":{"String":{"sval":"\ud800x"}}}]}"#, "unpaired surrogate"),
            (r#"{"stmts":[{"stmt":{"String":{"sval":"\u12"}}}]}"#, "invalid \\u escape"),
            (r#"{"stmts":[{"stmt":{"Boolean":{"boolval":1}}}]}"#, "expected true or false"),
            (r#"{"ver\u0073ion":1}"#, "no field \"ver\\\\u0073ion\""),
            ("", "expected `{`"),
        ] {
            let err = json_to_protobuf(json.as_bytes()).expect_err(json).to_string();
            assert!(err.contains(why), "{json}: {err}");
        }
    }

    /// Damaged JSON (every truncation, every byte replaced by a structural character) is
    /// refused or converted, never a panic; what converts still decodes or fails cleanly.
    #[test]
    fn damaged_json_never_panics() {
        use prost::Message as _;
        let json = crate::parse::json(
            "SELECT a, -1, 'x\"y', ARRAY[1.5] FROM t WHERE b = ANY($1) AND c IS NOT NULL ORDER BY 1 LIMIT 2",
        )
        .expect("test SQL parses");
        assert!(json_to_protobuf(&json).is_ok());
        let check = |damaged: &[u8]| {
            if let Ok(bytes) = json_to_protobuf(damaged) {
                let _ = pg_query::protobuf::ParseResult::decode(bytes.as_slice());
            }
        };
        for len in 0..json.len() {
            check(&json[..len]);
        }
        for at in 0..json.len() {
            for b in *b"\"\\{}[],:0-n9" {
                let mut damaged = json.clone();
                damaged[at] = b;
                check(&damaged);
            }
        }
    }

    #[test]
    fn unescapes_strings() {
        use prost::Message as _;
        let json = r#"{"stmts":[{"stmt":{"String":{"sval":"q\"b\\s\/n\nt\tr\rb\bf\f\u003c\u00e9\ud83d\ude00 raw é"}}}]}"#;
        let bytes = json_to_protobuf(json.as_bytes()).expect("valid");
        let tree = pg_query::protobuf::ParseResult::decode(bytes.as_slice()).expect("decodes");
        let Some(pg_query::NodeEnum::String(s)) = tree.stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            panic!("{tree:?}")
        };
        assert_eq!(s.sval, "q\"b\\s/n\nt\tr\rb\u{8}f\u{c}<é😀 raw é");
    }

    #[test]
    fn encodes_lengths_longer_than_one_byte_and_negative_numbers() {
        use prost::Message as _;
        let name = "n".repeat(20_000);
        let json = format!(
            r#"{{"version":180006,"stmts":[{{"stmt":{{"SelectStmt":{{"targetList":[{{"ResTarget":{{"name":"{name}","location":-1}}}}]}}}}}}]}}"#
        );
        let bytes = json_to_protobuf(json.as_bytes()).expect("valid JSON for the schema");
        let tree = pg_query::protobuf::ParseResult::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(tree.version, 180006);
        let Some(pg_query::NodeEnum::SelectStmt(select)) = tree.stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            panic!("{tree:?}")
        };
        let Some(pg_query::NodeEnum::ResTarget(target)) = select.target_list[0].node.as_ref() else {
            panic!("{select:?}")
        };
        assert_eq!((target.name.as_str(), target.location), (name.as_str(), -1));
    }
}
