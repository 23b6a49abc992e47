//! Generates the gate's view of libpg_query's parse-tree schema from `proto/pg_query.proto`
//! (a verbatim copy of the file pg_query ships): for every message, which JSON key is which
//! protobuf field (number, kind, repeated); for every enum, which name is which number.
//! `src/transcode.rs` uses the tables to turn libpg_query's JSON output into the protobuf
//! bytes the `pg_query` crate's types decode from (see there for why).
//!
//! The proto file is machine-written (libpg_query's generate_protobuf_and_funcs.rb) and uses a
//! small subset of the language: top-level `message` and `enum` blocks, plain and `repeated`
//! fields with an optional `[json_name="…"]`, and `oneof` groups. Anything else stops the build
//! with a message naming the line, rather than generating a table that might be wrong.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

const PROTO: &str = "proto/pg_query.proto";

#[derive(Debug)]
struct FieldDef {
    repeated: bool,
    ty: String,
    name: String,
    number: u32,
    json: String,
}

fn main() {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(PROTO).unwrap_or_else(|e| panic!("reading {PROTO}: {e}"));
    let tokens = tokenize(&text);
    let (messages, enums) = parse(&tokens);
    let out = generate(&messages, &enums);
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dir.join("schema.rs"), out).expect("writing schema.rs");
}

/// Splits the file into tokens (identifiers, numbers, strings, punctuation), dropping comments.
/// Each token carries its line number for error messages.
fn tokenize(text: &str) -> Vec<(usize, String)> {
    let mut tokens = Vec::new();
    let b = text.as_bytes();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").unwrap_or_else(|| panic!("{PROTO}:{line}: unterminated comment"));
            line += text[i..i + 2 + end].matches('\n').count();
            i += end + 4;
        } else if c == b'"' {
            let end = text[i + 1..].find('"').unwrap_or_else(|| panic!("{PROTO}:{line}: unterminated string"));
            tokens.push((line, text[i..i + end + 2].to_owned()));
            i += end + 2;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            tokens.push((line, text[start..i].to_owned()));
        } else {
            tokens.push((line, (c as char).to_string()));
            i += 1;
        }
    }
    tokens
}

type Messages = BTreeMap<String, Vec<FieldDef>>;
type Enums = BTreeMap<String, Vec<(String, i32)>>;

fn parse(tokens: &[(usize, String)]) -> (Messages, Enums) {
    let mut p = Parser { tokens, at: 0 };
    let (mut messages, mut enums) = (Messages::new(), Enums::new());
    while let Some(word) = p.next().map(str::to_owned) {
        match word.as_str() {
            "syntax" | "package" => while p.next() != Some(";") {},
            "message" => {
                let name = p.word();
                p.message(&name, &mut messages, &mut enums);
            }
            "enum" => {
                let name = p.word();
                p.enumeration(&name, &mut enums);
            }
            other => p.fail(&format!("unexpected `{other}` at top level")),
        }
    }
    (messages, enums)
}

struct Parser<'t> {
    tokens: &'t [(usize, String)],
    at: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&str> {
        let t = self.tokens.get(self.at)?;
        self.at += 1;
        Some(&t.1)
    }
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(|t| t.1.as_str())
    }
    fn word(&mut self) -> String {
        match self.next() {
            Some(w) if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') => w.to_owned(),
            other => {
                let other = other.map(str::to_owned);
                self.fail(&format!("expected a name or number, found {other:?}"))
            }
        }
    }
    fn expect(&mut self, want: &str) {
        if self.next() != Some(want) {
            self.fail(&format!("expected `{want}`"));
        }
    }
    /// The body of message `name` (nested types get qualified names, `Outer.Inner`).
    fn message(&mut self, name: &str, messages: &mut Messages, enums: &mut Enums) {
        self.expect("{");
        let mut fields = Vec::new();
        loop {
            match self.peek() {
                Some("}") => {
                    self.next();
                    break;
                }
                Some("oneof") => {
                    self.next();
                    self.word();
                    self.expect("{");
                    while self.peek() != Some("}") {
                        fields.push(self.field());
                    }
                    self.next();
                }
                Some("message") => {
                    self.next();
                    let inner = format!("{name}.{}", self.word());
                    self.message(&inner, messages, enums);
                }
                Some("enum") => {
                    self.next();
                    let inner = format!("{name}.{}", self.word());
                    self.enumeration(&inner, enums);
                }
                _ => fields.push(self.field()),
            }
        }
        messages.insert(name.to_owned(), fields);
    }
    fn enumeration(&mut self, name: &str, enums: &mut Enums) {
        self.expect("{");
        let mut values = Vec::new();
        while self.peek() != Some("}") {
            let value = self.word();
            self.expect("=");
            let number = self.word().parse().unwrap_or_else(|e| self.fail(&format!("enum value number: {e}")));
            self.expect(";");
            values.push((value, number));
        }
        self.next();
        enums.insert(name.to_owned(), values);
    }
    fn fail(&self, what: &str) -> ! {
        let line = self.tokens.get(self.at.saturating_sub(1)).map_or(0, |t| t.0);
        panic!("{PROTO}:{line}: {what}")
    }
    /// `[repeated] TYPE name = N [json_name="X"];`
    fn field(&mut self) -> FieldDef {
        let mut ty = self.word();
        let repeated = ty == "repeated";
        if repeated {
            ty = self.word();
        }
        if ty == "map" {
            // `map<K, V>`: kept as an unsupported type; an error only if a parse tree uses it.
            while self.peek() != Some(">") {
                ty.push_str(&self.next().map(str::to_owned).unwrap_or_else(|| self.fail("unterminated map type")));
            }
            self.next();
            ty.push('>');
        }
        let name = self.word();
        self.expect("=");
        let number = self.word().parse().unwrap_or_else(|e| self.fail(&format!("field number: {e}")));
        let mut json = lower_camel(&name);
        if self.peek() == Some("[") {
            self.next();
            if self.word() != "json_name" {
                self.fail("only the json_name option is supported");
            }
            self.expect("=");
            json = self.next().map(|s| s.trim_matches('"').to_owned()).unwrap_or_default();
            self.expect("]");
        }
        self.expect(";");
        FieldDef { repeated, ty, name, number, json }
    }
}

include!("src/key_hash.rs");

/// A collision-free table for `keys`: its seed, shift and, per slot, the index of the key in
/// it (`None` for a free slot). Tables have at least twice as many slots as keys.
fn perfect_table(keys: &[&str]) -> (u64, u32, Vec<Option<usize>>) {
    let mut bits = 1;
    while (1usize << bits) < keys.len() * 2 {
        bits += 1;
    }
    loop {
        let shift = 64 - bits;
        'seed: for seed in 0..20_000u64 {
            let mut slots = vec![None; 1 << bits];
            for (i, key) in keys.iter().enumerate() {
                let at = slot(key.as_bytes(), seed, shift);
                if slots[at].is_some() {
                    continue 'seed;
                }
                slots[at] = Some(i);
            }
            return (seed, shift, slots);
        }
        bits += 1;
        assert!(bits <= 16, "{PROTO}: no collision-free table for {keys:?}");
    }
}

/// protobuf's default JSON name: `foo_bar` → `fooBar`.
fn lower_camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The type a field of message `owner` names: a nested type of `owner` (or of its enclosing
/// messages) first, then a top-level one; `None` for a scalar or an unknown name.
fn resolve<'a, T>(owner: &str, ty: &str, table: &'a BTreeMap<String, T>) -> Option<&'a str> {
    let mut scope = owner;
    loop {
        if let Some((name, _)) = table.get_key_value(&format!("{scope}.{ty}")) {
            return Some(name);
        }
        match scope.rfind('.') {
            Some(dot) => scope = &scope[..dot],
            None => return table.get_key_value(ty).map(|(name, _)| name.as_str()),
        }
    }
}

/// Messages reachable from `ParseResult`, the only ones libpg_query's parse output can hold.
fn reachable(messages: &Messages) -> Vec<&str> {
    let mut seen: Vec<&str> = vec!["ParseResult"];
    let mut at = 0;
    while at < seen.len() {
        let name = seen[at];
        let fields = messages.get(name).unwrap_or_else(|| panic!("{PROTO}: no message {name}"));
        for f in fields {
            if let Some(ty) = resolve(name, &f.ty, messages) {
                if !seen.contains(&ty) {
                    seen.push(ty);
                }
            }
        }
        at += 1;
    }
    seen.sort_unstable();
    seen
}

fn generate(messages: &Messages, enums: &Enums) -> String {
    let live = reachable(messages);
    let msg_id: BTreeMap<&str, usize> = live.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut used: Vec<&str> = live
        .iter()
        .flat_map(|m| messages[*m].iter().filter_map(|f| resolve(m, &f.ty, enums)))
        .collect();
    used.sort_unstable();
    used.dedup();
    let enum_id: BTreeMap<&str, usize> = used.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut s = String::new();
    s.push_str("// Generated by build.rs from proto/pg_query.proto. Do not edit.\n\n");
    for (name, id) in &msg_id {
        if *name == "ParseResult" {
            let _ = writeln!(s, "/// The `ParseResult` message: the root of libpg_query's output.\npub(crate) const PARSE_RESULT: MessageId = MessageId({id});");
        }
    }
    s.push_str("\n/// A message's name, for error messages.\npub(crate) fn message_name(m: MessageId) -> &'static str {\n    match m.0 {\n");
    for (name, id) in &msg_id {
        let _ = writeln!(s, "        {id} => {name:?},");
    }
    s.push_str("        _ => \"?\",\n    }\n}\n\n");
    s.push_str("/// Fields by JSON key, per message (see `Table::get`).\nstatic FIELDS: [Table<Field>; ");
    let _ = writeln!(s, "{}] = [", msg_id.len());
    for name in msg_id.keys() {
        let fields = &messages[*name];
        let keys: Vec<&str> = fields.iter().map(|f| f.json.as_str()).collect();
        let (seed, shift, slots) = perfect_table(&keys);
        let _ = writeln!(s, "    Table {{ seed: {seed}, shift: {shift}, slots: &[ // {name}");
        for at in slots {
            let Some(i) = at else {
                s.push_str("        None,\n");
                continue;
            };
            let f = &fields[i];
            let kind = match f.ty.as_str() {
                "bool" => "Kind::Bool".to_owned(),
                "string" => "Kind::String".to_owned(),
                "int32" => "Kind::Int32".to_owned(),
                "int64" => "Kind::Int64".to_owned(),
                "uint32" => "Kind::Uint32".to_owned(),
                "uint64" => "Kind::Uint64".to_owned(),
                "double" => "Kind::Double".to_owned(),
                ty => match (resolve(name, ty, messages), resolve(name, ty, enums)) {
                    (Some(m), _) => format!("Kind::Message(MessageId({}))", msg_id[m]),
                    (_, Some(e)) => format!("Kind::Enum(EnumId({}))", enum_id[e]),
                    _ => panic!("{PROTO}: field {}.{} has type {ty}, which this build script does not know", name, f.name),
                },
            };
            let _ = writeln!(
                s,
                "        Some((b{:?}, Field {{ number: {}, repeated: {}, kind: {kind} }})),",
                f.json, f.number, f.repeated
            );
        }
        s.push_str("    ]},\n");
    }
    s.push_str("];\n\n");
    s.push_str("/// Enum values by name, per enum (see `Table::get`).\nstatic ENUMS: [Table<i32>; ");
    let _ = writeln!(s, "{}] = [", enum_id.len());
    for name in enum_id.keys() {
        let values = &enums[*name];
        let keys: Vec<&str> = values.iter().map(|v| v.0.as_str()).collect();
        let (seed, shift, slots) = perfect_table(&keys);
        let _ = writeln!(s, "    Table {{ seed: {seed}, shift: {shift}, slots: &[ // {name}");
        for at in slots {
            match at {
                Some(i) => {
                    let _ = writeln!(s, "        Some((b{:?}, {})),", values[i].0, values[i].1);
                }
                None => s.push_str("        None,\n"),
            }
        }
        s.push_str("    ]},\n");
    }
    s.push_str("];\n");
    s
}
