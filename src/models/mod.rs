//! Models: the topics a connection can see and the inferred shape of their messages. This module turns
//! sampled messages into a model (pure). Sampling lives in `kafka::sample`.

pub mod catalog;
pub mod infer;
pub mod refresh;
pub mod report;
pub mod schedule;
pub mod store;
pub mod task;

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
    /// JSON Schema (draft 2020-12) of the message values.
    pub schema: Schema,
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
        h.finish()
    }
}

/// A message that is not a JSON object, on a topic whose connection does not ignore such messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{topic} partition {partition} offset {offset} is not a JSON object ({why})")]
pub struct NotJsonObject {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// What it is instead.
    pub why: String,
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
    let keys: Vec<&[u8]> = samples.iter().filter_map(|s| s.key.as_deref()).collect();
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
/// model unless `ignore_non_json`, which skips and counts it.
pub fn build(
    topic: &str,
    samples: &[Sample],
    ignore_non_json: bool,
) -> Result<Model, NotJsonObject> {
    let mut objects = Vec::with_capacity(samples.len());
    let (mut skipped, mut oversized) = (0u32, 0u32);
    for s in samples {
        if s.oversized {
            oversized += 1;
            continue;
        }
        let Some(payload) = &s.payload else { continue };
        match json_object(payload) {
            Ok(v) => objects.push(v),
            Err(_) if ignore_non_json => skipped += 1,
            Err(why) => {
                return Err(NotJsonObject {
                    topic: topic.into(),
                    partition: s.partition,
                    offset: s.offset,
                    why,
                })
            }
        }
    }
    Ok(Model {
        topic: topic.into(),
        partitions: 0,
        replication_factor: 0,
        configs: Default::default(),
        sampled: objects.len() as u32,
        skipped,
        oversized,
        empty: samples.is_empty(),
        key_format: key_format(samples),
        schema: infer::infer(&objects).into(),
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
                    why: why.into()
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
}
