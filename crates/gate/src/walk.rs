//! A complete walk of a parse tree that collects the facts the rules need.
//!
//! pg_query's own helpers (`ParseResult::tables()`/`functions()`, `Node::nodes()`) visit only a
//! subset of node types, so a function call hidden in, say, a `ROWS FROM`, a window frame, an
//! `ON CONFLICT` clause or a `MERGE` action would be missed. Instead, this module drives the
//! tree's derived `serde::Serialize` implementation (every pg_query protobuf type has one) with
//! a [`serde::Serializer`] that records, without building any output:
//! - every function call name (`FuncCall.funcname`),
//! - every relation reference (`RangeVar`),
//! - every cast (`TypeCast`): the target type's name, whether it is an array, and whether
//!   the value cast is a string constant (and which), for the `reg*` enumeration rule,
//! - every column reference's name parts (`ColumnRef`) and the names of CTEs,
//! - the first data-modifying statement (`INSERT`/`UPDATE`/`DELETE`/`MERGE`) anywhere,
//! - whether any `FOR UPDATE`/`FOR SHARE` locking clause occurs,
//! - where in the text each relation, function call, column reference and cast starts (byte
//!   offsets, as the parser reports them), for the tenant-scoped catalog's rewrite (`scoped`).
//!
//! Because serde visits every field of every node, a node type added by a future pg_query
//! release is walked too.

use pg_query::NodeEnum;
use serde::ser::{self, Serialize};

/// A relation reference, `schema` (and `catalog`, the database) empty when unqualified.
#[derive(Debug, Default)]
pub(crate) struct Relation {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    /// Where its (possibly qualified) name starts; -1 if the parser did not say.
    pub location: i32,
}

/// A function call's name parts and where the name starts.
#[derive(Debug, Default)]
pub(crate) struct Call {
    /// The name parts, e.g. `["pg_catalog", "set_config"]`, as written (unquoted identifiers
    /// already folded to lower case by the parser).
    pub name: Vec<String>,
    pub location: i32,
}

/// A column reference (`a`, `t.a`, `s.t.a`, `t.*`): its string parts and where it starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub fields: Vec<String>,
    pub location: i32,
}

/// A cast (`x::t`, `CAST(x AS t)`, `t 'x'`).
#[derive(Debug, Default)]
pub(crate) struct Cast {
    /// The target type's name parts, e.g. `["pg_catalog", "regclass"]`.
    pub type_name: Vec<String>,
    /// The target is an array type (`regclass[]`).
    pub array: bool,
    /// The value cast is a constant (of any kind, NULL included).
    pub arg_is_constant: bool,
    /// The value cast, when it is a string constant.
    pub arg_string: Option<String>,
    /// The value cast, when it is a column reference: its index in `Facts::columns`.
    pub arg_column: Option<usize>,
    /// The value cast, when it is a function call: its index in `Facts::functions`.
    pub arg_call: Option<usize>,
    /// Where the value cast starts, when it is a constant.
    pub arg_const_location: i32,
    /// The value cast, when it is itself a cast: its index in `Facts::casts`.
    pub arg_cast: Option<usize>,
    /// Where the value cast starts, when it is a parameter (`$1`).
    pub arg_param_location: i32,
    /// Where the cast starts: the `::` of `x::t`, the `CAST` of `CAST(x AS t)`.
    pub location: i32,
}

/// What one statement's tree contains.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub functions: Vec<Call>,
    pub relations: Vec<Relation>,
    pub casts: Vec<Cast>,
    pub columns: Vec<Column>,
    /// The names of the common table expressions (`WITH name AS …`) defined anywhere.
    pub ctes: Vec<String>,
    /// The first data-modifying statement kind found anywhere, top level included.
    pub modifying: Option<&'static str>,
    /// A `FOR UPDATE`/`FOR NO KEY UPDATE`/`FOR SHARE`/`FOR KEY SHARE` clause occurs.
    pub locking: bool,
}

/// Collects the [`Facts`] of one statement; `None` only if the walk failed (never expected).
pub(crate) fn facts(stmt: &NodeEnum) -> Option<Facts> {
    let mut walker = Walker {
        frames: Vec::with_capacity(32),
        facts: Facts::default(),
    };
    stmt.serialize(&mut walker).ok()?;
    Some(walker.facts)
}

/// One struct being visited: its type name, the field being visited, and for `RangeVar` and
/// `FuncCall` the index of the record it fills in.
struct Frame {
    name: &'static str,
    field: &'static str,
    slot: usize,
}

struct Walker {
    frames: Vec<Frame>,
    facts: Facts,
}

/// The walker never fails; serde requires an error type all the same.
#[derive(Debug)]
pub(crate) struct WalkError;

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("parse tree walk failed")
    }
}

impl std::error::Error for WalkError {}

impl ser::Error for WalkError {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        WalkError
    }
}

impl Walker {
    fn string(&mut self, v: &str) {
        let n = self.frames.len();
        let Some(top) = self.frames.last() else {
            return;
        };
        match (top.name, top.field) {
            ("RangeVar", "catalogname") => set(&mut self.facts.relations, top.slot, |r| {
                r.catalog = v.to_owned()
            }),
            ("CommonTableExpr", "ctename") => self.facts.ctes.push(v.to_owned()),
            ("RangeVar", "schemaname") => set(&mut self.facts.relations, top.slot, |r| {
                r.schema = v.to_owned()
            }),
            ("RangeVar", "relname") => set(&mut self.facts.relations, top.slot, |r| {
                r.name = v.to_owned()
            }),
            // FuncCall.funcname is a list of Node{String{sval}}: FuncCall > Node > String.
            ("String", "sval") if n >= 3 => {
                let (call, node) = (&self.frames[n - 3], &self.frames[n - 2]);
                if call.name == "FuncCall" && call.field == "funcname" && node.name == "Node" {
                    set(&mut self.facts.functions, call.slot, |c| c.name.push(v.to_owned()));
                }
                // ColumnRef.fields > Node > String.
                if call.name == "ColumnRef" && call.field == "fields" && node.name == "Node" {
                    set(&mut self.facts.columns, call.slot, |c| c.fields.push(v.to_owned()));
                }
                if n >= 4 {
                    let outer = &self.frames[n - 4];
                    // TypeCast > TypeName.names > Node > String: the cast's target type.
                    if outer.name == "TypeCast" && outer.field == "type_name" && call.name == "TypeName" && call.field == "names" {
                        set(&mut self.facts.casts, outer.slot, |c| c.type_name.push(v.to_owned()));
                    }
                    // TypeCast.arg > Node > A_Const.val > String: a string constant cast.
                    if outer.name == "TypeCast" && outer.field == "arg" && node.name == "AConst" && call.name == "Node" {
                        set(&mut self.facts.casts, outer.slot, |c| c.arg_string = Some(v.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }

    /// The location field of the struct being visited, for the records that keep one.
    fn location(&mut self, v: i32) {
        let Some(top) = self.frames.last() else {
            return;
        };
        if top.field != "location" {
            return;
        }
        match top.name {
            "RangeVar" => set(&mut self.facts.relations, top.slot, |r| r.location = v),
            "FuncCall" => set(&mut self.facts.functions, top.slot, |c| c.location = v),
            "ColumnRef" => set(&mut self.facts.columns, top.slot, |c| c.location = v),
            "TypeCast" => set(&mut self.facts.casts, top.slot, |c| c.location = v),
            "AConst" | "ParamRef" => {
                // TypeCast.arg > Node > A_Const or ParamRef: the constant or parameter cast.
                let n = self.frames.len();
                if n >= 3 {
                    let (cast, node) = (&self.frames[n - 3], &self.frames[n - 2]);
                    if cast.name == "TypeCast" && cast.field == "arg" && node.name == "Node" {
                        if top.name == "AConst" {
                            set(&mut self.facts.casts, cast.slot, |c| c.arg_const_location = v);
                        } else {
                            set(&mut self.facts.casts, cast.slot, |c| c.arg_param_location = v);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The cast whose value is the node about to be visited (`TypeCast.arg > Node > it`).
    fn cast_of_arg(&self) -> Option<usize> {
        let n = self.frames.len();
        let (cast, node) = (self.frames.get(n.checked_sub(2)?)?, self.frames.get(n - 1)?);
        (cast.name == "TypeCast" && cast.field == "arg" && node.name == "Node").then_some(cast.slot)
    }

    fn begin_struct(&mut self, name: &'static str) {
        let slot = match name {
            "RangeVar" => push(&mut self.facts.relations, Relation { location: -1, ..Relation::default() }),
            "FuncCall" => {
                let slot = push(&mut self.facts.functions, Call { name: Vec::new(), location: -1 });
                if let Some(cast) = self.cast_of_arg() {
                    set(&mut self.facts.casts, cast, |c| c.arg_call = Some(slot));
                }
                slot
            }
            "ColumnRef" => {
                let slot = push(&mut self.facts.columns, Column { fields: Vec::new(), location: -1 });
                if let Some(cast) = self.cast_of_arg() {
                    set(&mut self.facts.casts, cast, |c| c.arg_column = Some(slot));
                }
                slot
            }
            "TypeCast" => {
                let outer = self.cast_of_arg();
                let slot = push(&mut self.facts.casts, Cast { location: -1, arg_const_location: -1, arg_param_location: -1, ..Cast::default() });
                if let Some(outer) = outer {
                    set(&mut self.facts.casts, outer, |c| c.arg_cast = Some(slot));
                }
                slot
            }
            "Node" => {
                // An array bound of a cast's target type: TypeCast.type_name > TypeName.array_bounds.
                let n = self.frames.len();
                if n >= 2 {
                    let (cast, type_name) = (&self.frames[n - 2], &self.frames[n - 1]);
                    if cast.name == "TypeCast" && cast.field == "type_name" && type_name.name == "TypeName" && type_name.field == "array_bounds" {
                        set(&mut self.facts.casts, cast.slot, |c| c.array = true);
                    }
                }
                0
            }
            "LockingClause" => {
                self.facts.locking = true;
                0
            }
            _ => 0,
        };
        self.frames.push(Frame {
            name,
            field: "",
            slot,
        });
    }

    fn node_variant(&mut self, variant: &'static str) {
        // The value of a cast: TypeCast.arg > Node > (this variant).
        let n = self.frames.len();
        if variant == "AConst" && n >= 2 {
            let cast = &self.frames[n - 2];
            if cast.name == "TypeCast" && cast.field == "arg" && self.frames[n - 1].name == "Node" {
                set(&mut self.facts.casts, cast.slot, |c| c.arg_is_constant = true);
            }
        }
        let kind = match variant {
            "InsertStmt" => "INSERT",
            "UpdateStmt" => "UPDATE",
            "DeleteStmt" => "DELETE",
            "MergeStmt" => "MERGE",
            _ => return,
        };
        self.facts.modifying.get_or_insert(kind);
    }
}

fn push<T>(items: &mut Vec<T>, item: T) -> usize {
    items.push(item);
    items.len() - 1
}

fn set<T>(items: &mut [T], slot: usize, f: impl FnOnce(&mut T)) {
    if let Some(item) = items.get_mut(slot) {
        f(item);
    }
}

type Res = Result<(), WalkError>;

impl ser::Serializer for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Res {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Res {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Res {
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Res {
        self.location(v);
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Res {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Res {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Res {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Res {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Res {
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Res {
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> Res {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Res {
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Res {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Res {
        Ok(())
    }
    fn serialize_none(self) -> Res {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Res {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        if name == "Node" {
            self.node_variant(variant);
        }
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self, WalkError> {
        self.begin_struct(name);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, WalkError> {
        self.begin_struct(name);
        Ok(self)
    }
}

impl ser::SerializeSeq for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Res {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Res {
        if let Some(top) = self.frames.last_mut() {
            top.field = key;
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.frames.pop();
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Res {
        if let Some(top) = self.frames.last_mut() {
            top.field = key;
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.frames.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_of(sql: &str) -> Facts {
        let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).expect("test SQL parses");
        let stmt = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
            .expect("one statement");
        facts(stmt).expect("walk succeeds")
    }

    #[test]
    fn finds_functions_and_relations_everywhere() {
        let f = facts_of(
            "WITH c AS (SELECT pg_catalog.set_config('a', 'b', false) FROM app.t) \
             SELECT lower(x) FROM c, ROWS FROM (generate_series(1, 2)) g \
             WHERE EXISTS (SELECT 1 FROM pg_roles) ORDER BY count(*) OVER (PARTITION BY abs(1))",
        );
        let names: Vec<String> = f.functions.iter().map(|c| c.name.join(".")).collect();
        for want in [
            "pg_catalog.set_config",
            "lower",
            "generate_series",
            "count",
            "abs",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        let rels: Vec<(&str, &str)> = f
            .relations
            .iter()
            .map(|r| (r.schema.as_str(), r.name.as_str()))
            .collect();
        assert!(
            rels.contains(&("app", "t"))
                && rels.contains(&("", "pg_roles"))
                && rels.contains(&("", "c"))
        );
        assert_eq!(f.modifying, None);
        assert!(!f.locking);
    }

    #[test]
    fn finds_casts_their_types_and_constant_values() {
        let f = facts_of("SELECT 'orders'::regclass, g::oid::pg_catalog.regrole, CAST(7 AS regtype), '{1}'::regclass[] FROM t");
        let seen: Vec<(String, bool, bool, Option<&str>)> =
            f.casts.iter().map(|c| (c.type_name.join("."), c.array, c.arg_is_constant, c.arg_string.as_deref())).collect();
        assert!(seen.contains(&("regclass".into(), false, true, Some("orders"))), "{seen:?}");
        assert!(seen.contains(&("pg_catalog.regrole".into(), false, false, None)), "{seen:?}");
        assert!(seen.contains(&("oid".into(), false, false, None)), "{seen:?}");
        assert!(seen.contains(&("regtype".into(), false, true, None)), "{seen:?}");
        assert!(seen.contains(&("regclass".into(), true, true, Some("{1}"))), "{seen:?}");
    }

    #[test]
    fn string_literals_are_not_names() {
        let f = facts_of("SELECT 'pg_read_file', x AS pg_roles FROM t");
        assert_eq!(f.functions.len(), 0);
        assert_eq!(f.relations.len(), 1);
    }

    #[test]
    fn finds_modifying_and_locking() {
        assert_eq!(
            facts_of("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x").modifying,
            Some("DELETE")
        );
        assert_eq!(
            facts_of("INSERT INTO t VALUES (1)").modifying,
            Some("INSERT")
        );
        assert!(facts_of("SELECT * FROM t FOR SHARE").locking);
    }
}
