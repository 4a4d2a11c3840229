//! JSON Schema (draft 2020-12) inference from sample messages, as a pure fold: types are merged across
//! samples (integer and number merge to number, null makes a field nullable), a field absent from some
//! samples is not required, nested objects and arrays of objects are kept, and arrays of mixed types
//! become `anyOf`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// The JSON types, in the order schemas list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Object,
    Array,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Object => "object",
            Kind::Array => "array",
        }
    }
}

/// What the samples seen so far say about one position in the documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    kinds: BTreeSet<Kind>,
    /// Object members: the member's shape and in how many of the objects it appeared.
    properties: BTreeMap<String, (Shape, usize)>,
    /// How many objects were seen here (for `required`).
    objects: usize,
    /// The shape of array items, merged over every array seen here.
    items: Option<Box<Shape>>,
}

impl Shape {
    /// Folds one value in.
    pub fn add(&mut self, value: &Value) {
        match value {
            Value::Null => {
                self.kinds.insert(Kind::Null);
            }
            Value::Bool(_) => {
                self.kinds.insert(Kind::Boolean);
            }
            Value::Number(n) => {
                self.kinds.insert(if n.is_i64() || n.is_u64() {
                    Kind::Integer
                } else {
                    Kind::Number
                });
            }
            Value::String(_) => {
                self.kinds.insert(Kind::String);
            }
            Value::Array(items) => {
                self.kinds.insert(Kind::Array);
                let shape = self.items.get_or_insert_with(Box::default);
                for item in items {
                    shape.add(item);
                }
            }
            Value::Object(members) => {
                self.kinds.insert(Kind::Object);
                self.objects += 1;
                for (name, member) in members {
                    let entry = self.properties.entry(name.clone()).or_default();
                    entry.0.add(member);
                    entry.1 += 1;
                }
            }
        }
    }

    /// The JSON Schema of this position.
    pub fn schema(&self) -> Value {
        let mut kinds: BTreeSet<Kind> = self.kinds.clone();
        if kinds.contains(&Kind::Number) {
            kinds.remove(&Kind::Integer); // 1 and 1.5 in the same field: number
        }
        let nullable = kinds.remove(&Kind::Null);
        let structured = kinds
            .iter()
            .filter(|k| matches!(k, Kind::Object | Kind::Array))
            .count();
        let mut schema = if kinds.is_empty() {
            // Only nulls seen (or nothing): any value.
            if nullable {
                json!({"type": "null"})
            } else {
                json!({})
            }
        } else if kinds.len() == 1 || structured == 0 {
            // One kind, or only scalar kinds: a `type` (list) with the kind's own keywords.
            let mut s = Map::new();
            let mut names: Vec<Value> = kinds.iter().map(|k| Value::from(k.name())).collect();
            if nullable {
                names.push(Value::from("null"));
            }
            s.insert(
                "type".into(),
                if names.len() == 1 {
                    names.remove(0)
                } else {
                    Value::Array(names)
                },
            );
            if let Some(kind) = kinds.iter().next().filter(|_| kinds.len() == 1) {
                self.keywords(*kind, &mut s);
            }
            Value::Object(s)
        } else {
            // An object or array mixed with other kinds: one alternative per kind.
            let mut alternatives = self.alternatives(&kinds);
            if nullable {
                alternatives.push(json!({"type": "null"}));
            }
            json!({"anyOf": alternatives})
        };
        if schema.as_object().is_some_and(|o| o.is_empty()) {
            schema = json!({});
        }
        schema
    }

    fn keywords(&self, kind: Kind, s: &mut Map<String, Value>) {
        match kind {
            Kind::Object => {
                let properties: Map<String, Value> = self
                    .properties
                    .iter()
                    .map(|(name, (shape, _))| (name.clone(), shape.schema()))
                    .collect();
                let required: Vec<Value> = self
                    .properties
                    .iter()
                    .filter(|(_, (_, seen))| *seen == self.objects)
                    .map(|(name, _)| Value::from(name.clone()))
                    .collect();
                s.insert("properties".into(), Value::Object(properties));
                if !required.is_empty() {
                    s.insert("required".into(), Value::Array(required));
                }
            }
            Kind::Array => {
                let items = self
                    .items
                    .as_ref()
                    .map(|i| i.items_schema())
                    .unwrap_or_else(|| json!({}));
                s.insert("items".into(), items);
            }
            _ => {}
        }
    }

    /// Array items: several kinds become `anyOf`, as the issue asks for arrays of mixed types.
    fn items_schema(&self) -> Value {
        let mut kinds = self.kinds.clone();
        if kinds.contains(&Kind::Number) {
            kinds.remove(&Kind::Integer);
        }
        if kinds.len() <= 1 {
            return self.schema();
        }
        json!({"anyOf": self.alternatives(&kinds)})
    }

    /// One schema per kind, each with that kind's keywords (for `anyOf`).
    fn alternatives(&self, kinds: &BTreeSet<Kind>) -> Vec<Value> {
        kinds
            .iter()
            .map(|kind| {
                let mut s = Map::new();
                s.insert("type".into(), Value::from(kind.name()));
                self.keywords(*kind, &mut s);
                Value::Object(s)
            })
            .collect()
    }
}

/// Infers the schema of a topic's messages (each a JSON object). An empty sample gives an object
/// schema with no fields.
pub fn infer<'a>(messages: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut shape = Shape::default();
    for m in messages {
        shape.add(m);
    }
    let mut schema = if shape.kinds.is_empty() {
        json!({"type": "object", "properties": {}})
    } else {
        shape.schema()
    };
    if let Some(o) = schema.as_object_mut() {
        o.insert(
            "$schema".into(),
            Value::from("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(samples: &[&str]) -> Value {
        let values: Vec<Value> = samples
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        let mut s = infer(&values);
        s.as_object_mut().unwrap().remove("$schema");
        s
    }

    #[test]
    fn inference_rules() {
        let cases: &[(&str, &[&str], Value)] = &[
            (
                "one flat object",
                &[r#"{"id": 1, "name": "a"}"#],
                json!({"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}, "required": ["id", "name"]}),
            ),
            (
                "integer and number merge to number",
                &[r#"{"v": 1}"#, r#"{"v": 1.5}"#],
                json!({"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"]}),
            ),
            (
                "null makes a field nullable",
                &[r#"{"c": "x"}"#, r#"{"c": null}"#],
                json!({"type": "object", "properties": {"c": {"type": ["string", "null"]}}, "required": ["c"]}),
            ),
            (
                "a field absent in some samples is not required",
                &[r#"{"a": 1, "b": true}"#, r#"{"a": 2}"#],
                json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}, "required": ["a"]}),
            ),
            (
                "nested objects are kept",
                &[
                    r#"{"customer": {"id": "c1", "vip": true}}"#,
                    r#"{"customer": {"id": "c2"}}"#,
                ],
                json!({"type": "object", "properties": {"customer": {"type": "object", "properties": {"id": {"type": "string"}, "vip": {"type": "boolean"}}, "required": ["id"]}}, "required": ["customer"]}),
            ),
            (
                "arrays of objects are kept",
                &[r#"{"items": [{"sku": "A", "qty": 1}, {"sku": "B"}]}"#],
                json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}, "sku": {"type": "string"}}, "required": ["sku"]}}}, "required": ["items"]}),
            ),
            (
                "arrays of mixed types become anyOf",
                &[r#"{"tags": ["a", 1, {"k": true}]}"#],
                json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "object", "properties": {"k": {"type": "boolean"}}, "required": ["k"]}]}}}, "required": ["tags"]}),
            ),
            (
                "scalar kinds in one field give a type list",
                &[r#"{"v": 1}"#, r#"{"v": "one"}"#],
                json!({"type": "object", "properties": {"v": {"type": ["integer", "string"]}}, "required": ["v"]}),
            ),
            (
                "an object or a scalar in one field gives anyOf",
                &[r#"{"v": {"x": 1}}"#, r#"{"v": 3}"#],
                json!({"type": "object", "properties": {"v": {"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}]}}, "required": ["v"]}),
            ),
            (
                "empty arrays accept anything",
                &[r#"{"a": []}"#],
                json!({"type": "object", "properties": {"a": {"type": "array", "items": {}}}, "required": ["a"]}),
            ),
            (
                "only nulls",
                &[r#"{"n": null}"#],
                json!({"type": "object", "properties": {"n": {"type": "null"}}, "required": ["n"]}),
            ),
            (
                "no samples: an object with no fields",
                &[],
                json!({"type": "object", "properties": {}}),
            ),
        ];
        for (what, samples, want) in cases {
            assert_eq!(&schema_of(samples), want, "{what}");
        }
    }

    #[test]
    fn the_dialect_is_named() {
        assert_eq!(
            infer(&[json!({"a": 1})])["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    #[test]
    fn large_integers_stay_integers() {
        assert_eq!(
            schema_of(&[r#"{"big": 18446744073709551615}"#])["properties"]["big"]["type"],
            "integer"
        );
    }
}
