//! Models: the topics a connection can see and the inferred shape of their messages. This module turns
//! sampled messages into a model (pure). Sampling lives in `kafka::sample`.

pub mod avro;
pub mod catalog;
pub mod infer;
pub mod protobuf;
pub mod refresh;
pub mod registry;
pub mod report;
pub mod schedule;
pub mod store;
pub mod task;
mod wire;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One sampled message (read by the Kafka client layer, `kafka::sample`).
pub use crate::kafka::sample::Sample;

/// What the message keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyFormat {
    /// No sampled message had a key.
    None,
    /// Every key is JSON.
    Json,
    /// Every key is UTF-8 text, not all JSON.
    String,
    /// Some key is not UTF-8.
    Binary,
    /// Keys framed for the schema registry: Avro.
    Avro,
    /// Keys framed for the schema registry: Protobuf.
    Protobuf,
    /// Keys framed for the schema registry: JSON with a JSON Schema.
    JsonSchema,
}

/// One topic's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// The topic.
    pub topic: String,
    /// Number of partitions.
    #[serde(default)]
    pub partitions: u32,
    /// Replication factor.
    #[serde(default)]
    pub replication_factor: u32,
    /// The topic configs pipelines care about (`cleanup.policy`, `retention.ms`,
    /// `min.insync.replicas`), when the brokers let this principal describe them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub configs: std::collections::BTreeMap<String, String>,
    /// Messages the schema was inferred from.
    pub sampled: u32,
    /// Messages skipped because they are not JSON objects (`consumer.ignoreNonJsonMessages`).
    pub skipped: u32,
    /// Messages among the newest that were not read: larger than 256 KiB, or past the 16 MiB that
    /// one sampling client holds at once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oversized: u32,
    /// The topic held no message to sample: the schema has no fields.
    pub empty: bool,
    /// What the keys are.
    pub key_format: KeyFormat,
    /// JSON Schema (draft 2020-12) of the message values: inferred from JSON messages, or the
    /// rendering of the registry schema the newest framed message names.
    pub schema: Schema,
    /// How the values are written: `json` (the default: the schema is inferred), or a registry
    /// format (`avro`, `protobuf`, `jsonSchema`).
    #[serde(default, skip_serializing_if = "registry::Format::is_json")]
    pub format: registry::Format,
    /// The registry schemas the sampled values name, by id: subject and version when the registry
    /// says, format and the schema's text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<registry::SchemaRef>,
    /// The registry schemas the sampled keys name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_schemas: Vec<registry::SchemaRef>,
    /// JSON Schema of the keys, when they are framed for the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_schema: Option<Schema>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A JSON Schema, held as its compact JSON text: parsed, a small schema takes some 20 KiB of maps,
/// which 100,000 models cannot afford. Serialized and deserialized as the JSON it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema(String);

impl Schema {
    /// The schema as a JSON value (parsed on each call).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Value> for Schema {
    fn from(v: Value) -> Self {
        Schema(v.to_string())
    }
}

impl Serialize for Schema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Schema::from)
    }
}

impl Model {
    /// A hash of what "changed" compares: the schema and the key format.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.schema.hash(&mut h);
        (self.key_format as u8).hash(&mut h);
        if !self.format.is_json() {
            self.format.hash(&mut h);
            for s in self.schemas.iter().chain(&self.key_schemas) {
                s.id.hash(&mut h);
            }
            self.key_schema.hash(&mut h);
        }
        h.finish()
    }
}

/// A message that is not a JSON object (or cannot be read with the registry schema it names), on a
/// topic whose connection does not ignore such messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{topic} partition {partition} offset {offset} {}", self.what())]
pub struct NotJsonObject {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// What it is instead.
    pub why: String,
    /// It is framed for the schema registry, and its schema could not read it.
    pub framed: bool,
}

impl NotJsonObject {
    /// `is not a JSON object (why)`, or `cannot be read with its schema (why)`.
    pub fn what(&self) -> String {
        if self.framed {
            format!("cannot be read with its registry schema ({})", self.why)
        } else {
            format!("is not a JSON object ({})", self.why)
        }
    }
}

/// Why a model could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A message it cannot read.
    #[error("{0}")]
    Message(NotJsonObject),
    /// The schema registry did not answer: the whole refresh fails, and the last catalog stays.
    #[error("{0}")]
    Registry(String),
}

/// Why a payload is not a JSON object, or the object.
fn json_object(payload: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8 text".to_string())?;
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(Value::Array(_)) => Err("a JSON array".into()),
        Ok(_) => Err("a JSON scalar".into()),
        Err(_) => Err("not JSON".into()),
    }
}

fn key_format(samples: &[Sample]) -> KeyFormat {
    let keys: Vec<&[u8]> = samples
        .iter()
        .filter_map(|s| s.key.as_deref())
        .filter(|k| registry::framed(k).is_none())
        .collect();
    if keys.is_empty() {
        return KeyFormat::None;
    }
    let texts: Option<Vec<&str>> = keys.iter().map(|k| std::str::from_utf8(k).ok()).collect();
    match texts {
        None => KeyFormat::Binary,
        Some(texts)
            if texts
                .iter()
                .all(|t| serde_json::from_str::<Value>(t).is_ok()) =>
        {
            KeyFormat::Json
        }
        Some(_) => KeyFormat::String,
    }
}

/// Builds a topic's model from its samples (newest last). A message that is not a JSON object fails the
/// model unless `ignore_non_json`, which skips and counts it. Messages framed for a schema registry
/// are not JSON: see [`build_with`].
pub fn build(
    topic: &str,
    samples: &[Sample],
    ignore_non_json: bool,
) -> Result<Model, NotJsonObject> {
    build_with(topic, samples, ignore_non_json, None).map_err(|e| match e {
        BuildError::Message(m) => m,
        BuildError::Registry(why) => NotJsonObject {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            why,
            framed: true,
        },
    })
}

/// The registry schemas one side (values or keys) of a topic's messages named: each id once, and the
/// JSON Schema of the newest message's.
#[derive(Default)]
struct Seen {
    schemas: Vec<registry::SchemaRef>,
    newest: Option<serde_json::Value>,
    format: Option<registry::Format>,
}

impl Seen {
    fn add(
        &mut self,
        resolved: &registry::Resolved,
        message_schema: Option<Value>,
        topic: &str,
        key: bool,
    ) {
        if let Some(i) = self.schemas.iter().position(|s| s.id == resolved.info.id) {
            // Newest last: a schema seen again moves to the end.
            let again = self.schemas.remove(i);
            self.schemas.push(again);
        } else {
            self.schemas.push(resolved.for_topic(topic, key));
        }
        self.newest = Some(message_schema.unwrap_or_else(|| resolved.json_schema.clone()));
        self.format = Some(resolved.info.format);
    }
}

/// Reads one framed message part with the registry: the schema it names, the JSON Schema of what it
/// holds, or why it cannot be read (`Ok(Err(why))`); `Err` when the registry did not answer.
fn read_framed(
    schemas: Option<&dyn registry::Schemas>,
    (id, body): (u32, &[u8]),
    (topic, key): (&str, bool),
    seen: &mut Seen,
) -> Result<Result<(), String>, BuildError> {
    let Some(schemas) = schemas else {
        return Ok(Err(format!(
            "framed for a schema registry with schema id {id}: set spec.schemaRegistry to read it"
        )));
    };
    match schemas.get(id) {
        Ok(resolved) => Ok(match resolved.check(body) {
            Ok(message_schema) => {
                seen.add(&resolved, message_schema, topic, key);
                Ok(())
            }
            Err(why) => Err(format!(
                "schema id {id} ({}): {why}",
                resolved.info.format.name()
            )),
        }),
        Err(registry::Fetch::Unknown(why) | registry::Fetch::Unusable(why)) => Ok(Err(why)),
        Err(registry::Fetch::Unavailable(why)) => Err(BuildError::Registry(why)),
    }
}

/// [`build`], reading messages framed for a schema registry with `schemas`: each is decoded with the
/// schema its id names, and the model records the format, the schemas seen and the JSON Schema of the
/// newest one. One that cannot be read is reported (or skipped and counted) like a non-JSON message.
pub fn build_with(
    topic: &str,
    samples: &[Sample],
    ignore_non_json: bool,
    schemas: Option<&dyn registry::Schemas>,
) -> Result<Model, BuildError> {
    let mut objects = Vec::with_capacity(samples.len());
    let (mut skipped, mut oversized) = (0u32, 0u32);
    let (mut values, mut keys) = (Seen::default(), Seen::default());
    let mut framed_count = 0u32;
    for s in samples {
        if s.oversized {
            oversized += 1;
            continue;
        }
        let bad = |why: String, framed: bool| {
            BuildError::Message(NotJsonObject {
                topic: topic.into(),
                partition: s.partition,
                offset: s.offset,
                why,
                framed,
            })
        };
        if let Some(framed) = s.key.as_deref().and_then(registry::framed) {
            if let Err(why) = read_framed(schemas, framed, (topic, true), &mut keys)? {
                if ignore_non_json {
                    skipped += 1;
                    continue;
                }
                return Err(bad(format!("its key: {why}"), true));
            }
        }
        let Some(payload) = &s.payload else { continue };
        if let Some(framed) = registry::framed(payload) {
            match read_framed(schemas, framed, (topic, false), &mut values)? {
                Ok(()) => framed_count += 1,
                Err(_) if ignore_non_json => skipped += 1,
                Err(why) => return Err(bad(why, true)),
            }
            continue;
        }
        match json_object(payload) {
            Ok(v) => objects.push(v),
            Err(_) if ignore_non_json => skipped += 1,
            Err(why) => return Err(bad(why, false)),
        }
    }
    let key_format = match keys.format {
        Some(registry::Format::Avro) => KeyFormat::Avro,
        Some(registry::Format::Protobuf) => KeyFormat::Protobuf,
        Some(registry::Format::JsonSchema) => KeyFormat::JsonSchema,
        _ => key_format(samples),
    };
    // The registry's schema when the values name one; else what the JSON messages show.
    let (format, schema) = match values.newest.take() {
        Some(schema) => (values.format.unwrap_or_default(), schema),
        None => (registry::Format::Json, infer::infer(&objects)),
    };
    Ok(Model {
        topic: topic.into(),
        partitions: 0,
        replication_factor: 0,
        configs: Default::default(),
        sampled: objects.len() as u32 + framed_count,
        skipped,
        oversized,
        empty: samples.is_empty(),
        key_format,
        schema: schema.into(),
        format,
        schemas: values.schemas,
        key_schemas: keys.schemas,
        key_schema: keys.newest.map(Schema::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset: i64, key: Option<&[u8]>, payload: Option<&[u8]>) -> Sample {
        Sample {
            oversized: false,
            partition: 0,
            offset,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn non_json_objects_fail_the_model_or_are_skipped() {
        let cases: [(&[u8], &str); 4] = [
            (b"plain text", "not JSON"),
            (b"[1,2]", "a JSON array"),
            (b"42", "a JSON scalar"),
            (&[0xff, 0xfe], "not UTF-8 text"),
        ];
        for (payload, why) in cases {
            let samples = [
                sample(7, None, Some(br#"{"a":1}"#)),
                sample(8, None, Some(payload)),
            ];
            let err = build("t", &samples, false).unwrap_err();
            assert_eq!(
                err,
                NotJsonObject {
                    topic: "t".into(),
                    partition: 0,
                    offset: 8,
                    why: why.into(),
                    framed: false
                }
            );
            assert!(err.to_string().contains("t partition 0 offset 8"));
            let model = build("t", &samples, true).unwrap();
            assert_eq!((model.sampled, model.skipped), (1, 1));
            assert_eq!(model.schema.value()["properties"]["a"]["type"], "integer");
        }
    }

    #[test]
    fn empty_topics_and_tombstones() {
        let model = build("t", &[], false).unwrap();
        assert!(model.empty);
        assert_eq!(model.schema.value()["properties"], serde_json::json!({}));
        let model = build("t", &[sample(1, Some(b"k"), None)], false).unwrap();
        assert!(!model.empty);
        assert_eq!(
            model.sampled, 0,
            "a tombstone carries no shape and fails nothing"
        );
    }

    #[test]
    fn key_formats() {
        let with_keys = |keys: &[Option<&[u8]>]| {
            key_format(
                &keys
                    .iter()
                    .map(|k| sample(0, *k, Some(b"{}")))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(with_keys(&[None, None]), KeyFormat::None);
        assert_eq!(
            with_keys(&[Some(br#"{"id":1}"#), Some(b"\"k\"")]),
            KeyFormat::Json
        );
        assert_eq!(with_keys(&[Some(b"order-1")]), KeyFormat::String);
        assert_eq!(with_keys(&[Some(&[0xff])]), KeyFormat::Binary);
    }

    /// A registry in memory: Avro schemas by id, one id unknown, and a switch for "down".
    struct Fake {
        down: bool,
        asked: std::sync::Mutex<Vec<u32>>,
    }

    const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},
        {"name":"note","type":["null","string"],"default":null}]}"#;

    impl registry::Schemas for Fake {
        fn get(&self, id: u32) -> Result<std::sync::Arc<registry::Resolved>, registry::Fetch> {
            self.asked.lock().unwrap().push(id);
            if self.down {
                return Err(registry::Fetch::Unavailable("connection refused".into()));
            }
            let text = match id {
                1 => V1,
                2 => V2,
                _ => {
                    return Err(registry::Fetch::Unknown(format!(
                        "schema id {id} is not in the registry"
                    )))
                }
            };
            let versions = vec![("t-value".to_string(), id), ("t-key".to_string(), id)];
            Ok(std::sync::Arc::new(
                registry::Resolved::new(id, None, text.into(), versions).unwrap(),
            ))
        }
    }

    fn framed(id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn framed_messages_are_read_with_the_schema_they_name() {
        let fake = Fake {
            down: false,
            asked: Default::default(),
        };
        // id 42 zig-zag: 84; the v2 note: union branch 1, "hi".
        let samples = [
            sample(1, Some(&framed(1, &[2])), Some(&framed(1, &[84]))),
            sample(2, None, Some(&framed(2, &[84, 2, 4, b'h', b'i']))),
        ];
        let model = build_with("t", &samples, false, Some(&fake)).unwrap();
        assert_eq!(model.format, registry::Format::Avro);
        assert_eq!(model.sampled, 2);
        let ids: Vec<u32> = model.schemas.iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2], "each id, newest last");
        assert_eq!(model.schemas[1].subject.as_deref(), Some("t-value"));
        assert_eq!(model.key_schemas[0].subject.as_deref(), Some("t-key"));
        assert_eq!(model.key_format, KeyFormat::Avro);
        // The newest message's schema: v2, with the optional note.
        assert_eq!(
            report::fields(&model.schema.value()),
            "id integer, note? string|null"
        );
        // A new version changes the fingerprint ("changed" in the catalog).
        let v1_only = build_with("t", &samples[..1], false, Some(&fake)).unwrap();
        assert_ne!(v1_only.fingerprint(), model.fingerprint());
    }

    #[test]
    fn unreadable_framed_messages_are_reported_or_skipped_and_a_registry_down_fails_the_refresh() {
        let fake = Fake {
            down: false,
            asked: Default::default(),
        };
        let unknown = [sample(5, None, Some(&framed(99, &[0])))];
        let err = build_with("t", &unknown, false, Some(&fake)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t partition 0 offset 5 cannot be read with its registry schema (schema id 99 is not in the registry)"
        );
        let undecodable = [sample(6, None, Some(&framed(1, &[84, 0])))];
        let err = build_with("t", &undecodable, false, Some(&fake)).unwrap_err();
        assert!(
            err.to_string()
                .contains("schema id 1 (Avro): 1 bytes are left over"),
            "{err}"
        );
        let skipped = build_with(
            "t",
            &[unknown[0].clone(), undecodable[0].clone()],
            true,
            Some(&fake),
        )
        .unwrap();
        assert_eq!((skipped.sampled, skipped.skipped), (0, 2));
        let no_registry = build("t", &unknown, false).unwrap_err();
        assert!(
            no_registry.why.contains("set spec.schemaRegistry"),
            "{}",
            no_registry.why
        );
        let down = Fake {
            down: true,
            asked: Default::default(),
        };
        assert!(matches!(
            build_with("t", &unknown, false, Some(&down)),
            Err(BuildError::Registry(why)) if why.contains("refused")
        ));
        // Plain JSON topics keep their inference, with a registry or without.
        let json = [sample(1, None, Some(br#"{"a":1}"#))];
        let model = build_with("t", &json, false, Some(&fake)).unwrap();
        assert_eq!(model.format, registry::Format::Json);
        assert!(model.schemas.is_empty());
        assert_eq!(model.schema.value()["properties"]["a"]["type"], "integer");
        assert!(fake
            .asked
            .lock()
            .unwrap()
            .iter()
            .all(|id| *id == 99 || *id == 1));
    }
}
