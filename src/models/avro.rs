//! Avro, for messages a schema registry frames: the schema (JSON) parsed into types, a message's binary
//! encoding checked against it (every byte read, nothing left over), and a JSON Schema rendering of it
//! for the catalog. Registry schemas and message bytes come from tenant-controlled endpoints: parsing
//! and decoding are bounded in depth, named types and decoded items.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The deepest nesting of schema types (and of decoded values) accepted.
const MAX_DEPTH: usize = 64;

/// The most named types one schema may define.
const MAX_NAMED: usize = 10_000;

/// The most values (of any kind) decoding one message may produce: an array of a million nulls takes no
/// bytes, but does take time.
const MAX_ITEMS: usize = 1_000_000;

/// An Avro type.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// `null`.
    Null,
    /// `boolean`.
    Boolean,
    /// `int` (with its logical type, e.g. `date`).
    Int(Option<String>),
    /// `long` (with its logical type, e.g. `timestamp-millis`).
    Long(Option<String>),
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `bytes` (with its logical type, e.g. `decimal`).
    Bytes(Option<String>),
    /// `string` (with its logical type, e.g. `uuid`).
    String(Option<String>),
    /// A record, by its full name.
    Record(String),
    /// An enum: its symbols.
    Enum(String, Vec<String>),
    /// An array.
    Array(Box<Type>),
    /// A map (string keys).
    Map(Box<Type>),
    /// A union of its branches.
    Union(Vec<Type>),
    /// A fixed of this many bytes.
    Fixed(String, usize),
    /// A reference to a named type defined elsewhere in the schema.
    Named(String),
}

/// A record's field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// Whether it has a default (readers fill it in when absent: not required).
    pub has_default: bool,
    /// Its doc, if any.
    pub doc: Option<String>,
}

/// A parsed schema: the top type and every named type.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The top-level type.
    pub root: Type,
    /// Records by full name.
    records: BTreeMap<String, Vec<Field>>,
    /// Enums and fixed types by full name.
    named: BTreeMap<String, Type>,
}

impl Schema {
    /// Parses a schema's JSON text.
    pub fn parse(text: &str) -> Result<Schema, String> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| format!("the Avro schema is not JSON: {e}"))?;
        let mut schema = Schema {
            root: Type::Null,
            records: BTreeMap::new(),
            named: BTreeMap::new(),
        };
        schema.root = schema.parse_type(&json, "", 0)?;
        Ok(schema)
    }

    fn full_name(name: &str, namespace: &str) -> String {
        if name.contains('.') || namespace.is_empty() {
            name.to_string()
        } else {
            format!("{namespace}.{name}")
        }
    }

    fn define(&mut self, name: &str) -> Result<(), String> {
        if self.records.len() + self.named.len() >= MAX_NAMED {
            return Err(format!("more than {MAX_NAMED} named types"));
        }
        if self.records.contains_key(name) || self.named.contains_key(name) {
            return Err(format!("the type {name} is defined twice"));
        }
        Ok(())
    }

    fn parse_type(&mut self, json: &Value, namespace: &str, depth: usize) -> Result<Type, String> {
        if depth > MAX_DEPTH {
            return Err(format!("types nested deeper than {MAX_DEPTH}"));
        }
        match json {
            Value::String(name) => self.primitive_or_named(name, None, namespace),
            Value::Array(branches) => branches
                .iter()
                .map(|b| self.parse_type(b, namespace, depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Type::Union),
            Value::Object(o) => {
                let kind = o.get("type").ok_or("a type object without \"type\"")?;
                let logical = o
                    .get("logicalType")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let name = || {
                    o.get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("a {kind} without a name"))
                };
                let ns = o
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(namespace);
                match kind.as_str() {
                    Some("record") | Some("error") => {
                        let full = Self::full_name(name()?, ns);
                        self.define(&full)?;
                        // Defined before its fields, so that a field may refer to its own record.
                        self.records.insert(full.clone(), Vec::new());
                        let inner_ns = full.rsplit_once('.').map(|(n, _)| n).unwrap_or("");
                        let mut fields = Vec::new();
                        for f in o
                            .get("fields")
                            .and_then(Value::as_array)
                            .ok_or_else(|| format!("record {full} has no fields list"))?
                        {
                            let fname = f
                                .get("name")
                                .and_then(Value::as_str)
                                .ok_or_else(|| format!("a field of {full} has no name"))?;
                            let ty = self.parse_type(
                                f.get("type").ok_or_else(|| {
                                    format!("field {fname} of {full} has no type")
                                })?,
                                inner_ns,
                                depth + 1,
                            )?;
                            fields.push(Field {
                                name: fname.to_string(),
                                ty,
                                has_default: f.get("default").is_some(),
                                doc: f.get("doc").and_then(Value::as_str).map(str::to_string),
                            });
                        }
                        self.records.insert(full.clone(), fields);
                        Ok(Type::Record(full))
                    }
                    Some("enum") => {
                        let full = Self::full_name(name()?, ns);
                        self.define(&full)?;
                        let symbols: Vec<String> = o
                            .get("symbols")
                            .and_then(Value::as_array)
                            .ok_or_else(|| format!("enum {full} has no symbols"))?
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect();
                        let ty = Type::Enum(full.clone(), symbols);
                        self.named.insert(full, ty.clone());
                        Ok(ty)
                    }
                    Some("fixed") => {
                        let full = Self::full_name(name()?, ns);
                        self.define(&full)?;
                        let size = o
                            .get("size")
                            .and_then(Value::as_u64)
                            .ok_or_else(|| format!("fixed {full} has no size"))?
                            as usize;
                        let ty = Type::Fixed(full.clone(), size);
                        self.named.insert(full, ty.clone());
                        Ok(ty)
                    }
                    Some("array") => Ok(Type::Array(Box::new(self.parse_type(
                        o.get("items").ok_or("an array without items")?,
                        ns,
                        depth + 1,
                    )?))),
                    Some("map") => Ok(Type::Map(Box::new(self.parse_type(
                        o.get("values").ok_or("a map without values")?,
                        ns,
                        depth + 1,
                    )?))),
                    Some(other) => self.primitive_or_named(other, logical, ns),
                    None => self.parse_type(kind, ns, depth + 1),
                }
            }
            other => Err(format!("{other} is not an Avro type")),
        }
    }

    fn primitive_or_named(
        &self,
        name: &str,
        logical: Option<String>,
        namespace: &str,
    ) -> Result<Type, String> {
        Ok(match name {
            "null" => Type::Null,
            "boolean" => Type::Boolean,
            "int" => Type::Int(logical),
            "long" => Type::Long(logical),
            "float" => Type::Float,
            "double" => Type::Double,
            "bytes" => Type::Bytes(logical),
            "string" => Type::String(logical),
            _ => {
                let full = Self::full_name(name, namespace);
                if self.records.contains_key(&full) || self.named.contains_key(&full) {
                    Type::Named(full)
                } else if self.records.contains_key(name) || self.named.contains_key(name) {
                    Type::Named(name.to_string())
                } else {
                    return Err(format!(
                        "unknown type {name:?} (schema references to other subjects are not read)"
                    ));
                }
            }
        })
    }

    /// Decodes one message's binary encoding, every byte: `Err` says where it does not fit.
    pub fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let mut d = Decoder {
            r: super::wire::Reader::new(bytes),
            items: 0,
        };
        self.skip(&self.root, &mut d, 0)?;
        if !d.r.done() {
            return Err(format!(
                "{} bytes are left over after the value",
                d.r.rest().len()
            ));
        }
        Ok(())
    }

    fn skip(&self, ty: &Type, d: &mut Decoder<'_>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        d.items += 1;
        if d.items > MAX_ITEMS {
            return Err(format!("more than {MAX_ITEMS} values in one message"));
        }
        match ty {
            Type::Null => Ok(()),
            Type::Boolean => match d.take(1)?[0] {
                0 | 1 => Ok(()),
                b => Err(format!("a boolean byte {b} at {}", d.r.at() - 1)),
            },
            Type::Int(_) => {
                let v = d.long()?;
                i32::try_from(v)
                    .map(|_| ())
                    .map_err(|_| format!("{v} does not fit an int"))
            }
            Type::Long(_) => d.long().map(|_| ()),
            Type::Float => d.take(4).map(|_| ()),
            Type::Double => d.take(8).map(|_| ()),
            Type::Bytes(_) => {
                let n = d.len()?;
                d.take(n).map(|_| ())
            }
            Type::String(_) => {
                let n = d.len()?;
                let at = d.r.at();
                std::str::from_utf8(d.take(n)?)
                    .map(|_| ())
                    .map_err(|_| format!("a string at byte {at} is not UTF-8"))
            }
            Type::Fixed(_, size) => d.take(*size).map(|_| ()),
            Type::Enum(name, symbols) => {
                let i = d.long()?;
                if i < 0 || i as usize >= symbols.len() {
                    return Err(format!("enum {name} has no symbol {i}"));
                }
                Ok(())
            }
            Type::Union(branches) => {
                let i = d.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("the union has no branch {i}"))?;
                self.skip(branch, d, depth + 1)
            }
            Type::Array(items) => self.blocks(d, depth, |s, d| s.skip(items, d, depth + 1)),
            Type::Map(values) => self.blocks(d, depth, |s, d| {
                let n = d.len()?;
                d.take(n)?;
                s.skip(values, d, depth + 1)
            }),
            Type::Record(name) | Type::Named(name) => {
                if let Some(fields) = self.records.get(name) {
                    for f in fields {
                        self.skip(&f.ty, d, depth + 1)?;
                    }
                    Ok(())
                } else {
                    let ty = self
                        .named
                        .get(name)
                        .ok_or_else(|| format!("unknown type {name}"))?;
                    self.skip(ty, d, depth + 1)
                }
            }
        }
    }

    /// Array and map blocks: a count (negative: followed by the block's byte size), then the items; a
    /// zero count ends them.
    fn blocks(
        &self,
        d: &mut Decoder<'_>,
        depth: usize,
        mut item: impl FnMut(&Self, &mut Decoder<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let mut count = d.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or("a block count out of range")?;
                d.long()?; // the block's size in bytes
            }
            if count as u64 > MAX_ITEMS as u64 {
                return Err(format!("a block of {count} items at depth {depth}"));
            }
            for _ in 0..count {
                item(self, d)?;
            }
        }
    }

    /// The JSON Schema (draft 2020-12) of the values this schema describes.
    pub fn json_schema(&self) -> Value {
        let mut out = self.render(&self.root, &mut Vec::new());
        if let Value::Object(o) = &mut out {
            o.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
        }
        out
    }

    fn render(&self, ty: &Type, open: &mut Vec<String>) -> Value {
        match ty {
            Type::Null => json!({"type": "null"}),
            Type::Boolean => json!({"type": "boolean"}),
            Type::Int(l) | Type::Long(l) => with_format(json!({"type": "integer"}), l),
            Type::Float | Type::Double => json!({"type": "number"}),
            Type::Bytes(l) => {
                with_format(json!({"type": "string", "contentEncoding": "base64"}), l)
            }
            Type::String(l) => with_format(json!({"type": "string"}), l),
            Type::Fixed(name, size) => {
                json!({"type": "string", "title": name, "contentEncoding": "base64", "maxLength": size})
            }
            Type::Enum(name, symbols) => json!({"type": "string", "title": name, "enum": symbols}),
            Type::Array(items) => json!({"type": "array", "items": self.render(items, open)}),
            Type::Map(values) => {
                json!({"type": "object", "additionalProperties": self.render(values, open)})
            }
            Type::Union(branches) => {
                let nullable = branches.contains(&Type::Null);
                let others: Vec<&Type> = branches.iter().filter(|b| **b != Type::Null).collect();
                match others.as_slice() {
                    [] => json!({"type": "null"}),
                    [one] => {
                        let mut s = self.render(one, open);
                        if nullable {
                            match s.get_mut("type") {
                                Some(Value::String(t)) => {
                                    let t = t.clone();
                                    s["type"] = json!([t, "null"]);
                                }
                                _ => s = json!({"anyOf": [s, {"type": "null"}]}),
                            }
                        }
                        s
                    }
                    many => {
                        let mut alternatives: Vec<Value> =
                            many.iter().map(|b| self.render(b, open)).collect();
                        if nullable {
                            alternatives.push(json!({"type": "null"}));
                        }
                        json!({"anyOf": alternatives})
                    }
                }
            }
            Type::Record(name) | Type::Named(name) => {
                let Some(fields) = self.records.get(name) else {
                    return self
                        .named
                        .get(name)
                        .map(|t| self.render(t, open))
                        .unwrap_or_else(|| json!({}));
                };
                if open.contains(name) || open.len() > MAX_DEPTH {
                    // A record inside itself: named, not expanded again.
                    return json!({"type": "object", "title": name});
                }
                open.push(name.clone());
                let mut properties = Map::new();
                let mut required = Vec::new();
                for f in fields {
                    let mut s = self.render(&f.ty, open);
                    if let (Some(doc), Value::Object(o)) = (&f.doc, &mut s) {
                        o.insert("description".into(), doc.clone().into());
                    }
                    properties.insert(f.name.clone(), s);
                    if !f.has_default {
                        required.push(Value::from(f.name.clone()));
                    }
                }
                open.pop();
                let mut s = json!({"type": "object", "title": name, "properties": properties});
                if !required.is_empty() {
                    s["required"] = Value::Array(required);
                }
                s
            }
        }
    }
}

fn with_format(mut s: Value, logical: &Option<String>) -> Value {
    let format = match logical.as_deref() {
        Some("date") => Some("date"),
        Some("uuid") => Some("uuid"),
        Some("time-millis" | "time-micros") => Some("x-avro-time"),
        Some("timestamp-millis" | "timestamp-micros" | "timestamp-nanos") => {
            Some("x-avro-timestamp")
        }
        Some("local-timestamp-millis" | "local-timestamp-micros") => Some("x-avro-local-timestamp"),
        Some("decimal") => Some("x-avro-decimal"),
        _ => None,
    };
    if let Some(f) = format {
        s["format"] = f.into();
    }
    s
}

struct Decoder<'a> {
    r: super::wire::Reader<'a>,
    items: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        self.r.take(n)
    }

    /// A zig-zag varint long.
    fn long(&mut self) -> Result<i64, String> {
        self.r.zigzag()
    }

    /// A length: a long that is not negative.
    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("a negative length {n} at byte {}", self.r.at()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "amount", "type": "double", "doc": "in euros"},
            {"name": "coupon", "type": ["null", "string"], "default": null},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
            {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line",
                "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
            {"name": "tags", "type": {"type": "map", "values": "string"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "next", "type": ["null", "Order"], "default": null}
        ]}"#;

    fn zigzag(v: i64) -> Vec<u8> {
        crate::models::wire::varint(((v << 1) ^ (v >> 63)) as u64)
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = zigzag(s.len() as i64);
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// An Order as the Avro binary encoding writes it.
    fn order() -> Vec<u8> {
        let mut b = zigzag(42);
        b.extend_from_slice(&12.5f64.to_le_bytes());
        b.extend(zigzag(1)); // coupon: the string branch
        b.extend(string("SPRING"));
        b.extend(zigzag(1)); // status PAID
        b.extend(zigzag(-1)); // one line, in a block with its size
        b.extend(zigzag(4));
        b.extend(string("A1"));
        b.extend(zigzag(3));
        b.extend(zigzag(0));
        b.extend(zigzag(1)); // one tag
        b.extend(string("k"));
        b.extend(string("v"));
        b.extend(zigzag(0));
        b.extend(zigzag(1_700_000_000_000));
        b.extend(zigzag(0)); // next: null
        b
    }

    #[test]
    fn a_message_is_checked_to_its_last_byte() {
        let schema = Schema::parse(ORDER).unwrap();
        schema.check(&order()).unwrap();
        let mut longer = order();
        longer.push(0);
        assert_eq!(
            schema.check(&longer).unwrap_err(),
            "1 bytes are left over after the value"
        );
        let short = &order()[..10];
        assert!(schema
            .check(short)
            .unwrap_err()
            .contains("the message ends"));
        let mut bad_enum = order();
        let at = 1 + 8 + 1 + 7; // id, amount, union branch, "SPRING": then the status
        bad_enum[at] = zigzag(5)[0];
        assert!(schema.check(&bad_enum).unwrap_err().contains("no symbol 5"));
    }

    #[test]
    fn hostile_messages_are_bounded() {
        let schema = Schema::parse(r#"{"type": "array", "items": "null"}"#).unwrap();
        let mut huge = zigzag(i64::MAX / 2);
        huge.extend(zigzag(0));
        assert!(schema.check(&huge).unwrap_err().contains("a block of"));
        let mut many = Vec::new();
        for _ in 0..2 {
            many.extend(zigzag(900_000));
        }
        many.extend(zigzag(0));
        assert!(schema
            .check(&many)
            .unwrap_err()
            .contains("more than 1000000 values"));
        let strings = Schema::parse(r#""string""#).unwrap();
        assert!(strings
            .check(&zigzag(-5))
            .unwrap_err()
            .contains("negative length"));
        assert!(strings.check(&[0xff; 12]).unwrap_err().contains("varint"));
        let mut deep = String::new();
        for _ in 0..100 {
            deep.push_str(r#"{"type": "array", "items": "#);
        }
        deep.push_str(r#""int""#);
        deep.push_str(&"}".repeat(100));
        assert!(Schema::parse(&deep).unwrap_err().contains("deeper than 64"));
    }

    #[test]
    fn the_json_schema_rendering_names_fields_types_and_optionality() {
        let s = Schema::parse(ORDER).unwrap().json_schema();
        assert_eq!(s["title"], "shop.Order");
        assert_eq!(s["properties"]["id"], json!({"type": "integer"}));
        assert_eq!(s["properties"]["amount"]["description"], "in euros");
        assert_eq!(
            s["properties"]["coupon"],
            json!({"type": ["string", "null"]})
        );
        assert_eq!(s["properties"]["status"]["enum"], json!(["NEW", "PAID"]));
        assert_eq!(
            s["properties"]["lines"]["items"]["properties"]["qty"],
            json!({"type": "integer"})
        );
        assert_eq!(
            s["properties"]["tags"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(s["properties"]["at"]["format"], "x-avro-timestamp");
        // The recursive field names its record instead of expanding it again.
        assert_eq!(
            s["properties"]["next"],
            json!({"type": ["object", "null"], "title": "shop.Order"})
        );
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["id", "amount", "status", "lines", "tags", "at"]);
        assert_eq!(
            crate::models::report::fields(&s),
            "amount number, at integer, coupon? string|null, id integer, lines array, next? object|null, status string, tags object"
        );
    }

    #[test]
    fn bad_schemas_say_why() {
        for (text, says) in [
            ("not json", "not JSON"),
            (r#"{"type": "record", "name": "R"}"#, "no fields"),
            (
                r#"{"type": "record", "name": "R", "fields": [{"name": "x", "type": "Missing"}]}"#,
                "unknown type",
            ),
            (
                r#"["int", {"type": "enum", "name": "E", "symbols": []}, {"type": "enum", "name": "E", "symbols": []}]"#,
                "defined twice",
            ),
            ("42", "not an Avro type"),
        ] {
            let why = Schema::parse(text).unwrap_err();
            assert!(why.contains(says), "{text}: {why}");
        }
    }
}
