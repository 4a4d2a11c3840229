//! Messages framed for a schema registry (Confluent's wire format: a zero byte, the schema id as four
//! bytes big-endian, then the encoded value) and the schemas they name: each distinct id is fetched
//! once per refresh (`GET /schemas/ids/{id}`, and its subject and version), kept for the refresh, and
//! used to decode the messages that name it. At most [`MAX_SCHEMAS`] distinct ids per refresh.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::avro;
use crate::kafka::RegistryMaterial;
use crate::web::{self, WebError};

/// The most distinct schema ids one refresh fetches.
pub const MAX_SCHEMAS: usize = 1000;

/// How a topic's messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// JSON objects; the schema is inferred from them.
    #[default]
    Json,
    /// Avro, with its schema in the registry.
    Avro,
    /// Protobuf, with its schema in the registry.
    Protobuf,
    /// JSON with a JSON Schema in the registry.
    JsonSchema,
}

impl Format {
    /// Whether it is plain JSON (the default, not written into a catalog).
    pub fn is_json(&self) -> bool {
        *self == Format::Json
    }

    /// The name a message uses.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Avro => "Avro",
            Format::Protobuf => "Protobuf",
            Format::JsonSchema => "JSON Schema",
        }
    }
}

/// A registry schema as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRef {
    /// The schema id messages carry.
    pub id: u32,
    /// Its format.
    pub format: Format,
    /// The subject it is registered under, when the registry says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its version in that subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The schema's text as the registry holds it.
    pub schema: String,
}

/// A fetched schema, ready to decode with.
#[derive(Debug)]
pub struct Resolved {
    /// What the catalog records.
    pub info: SchemaRef,
    /// Its JSON Schema rendering.
    pub json_schema: Value,
    /// Every (subject, version) the registry files it under (one id may serve several subjects).
    pub versions: Vec<(String, u32)>,
    decoder: Decoder,
}

#[derive(Debug)]
enum Decoder {
    Avro(avro::Schema),
    Json,
    Protobuf(super::protobuf::File),
}

impl Resolved {
    /// Builds a schema from the registry's answer for `id`.
    pub fn new(
        id: u32,
        schema_type: Option<&str>,
        text: String,
        versions: Vec<(String, u32)>,
    ) -> Result<Resolved, String> {
        let (format, decoder, json_schema) = match schema_type.unwrap_or("AVRO") {
            "AVRO" => {
                let schema = avro::Schema::parse(&text)?;
                let rendering = schema.json_schema();
                (Format::Avro, Decoder::Avro(schema), rendering)
            }
            "JSON" => {
                let schema: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("the JSON Schema is not JSON: {e}"))?;
                (Format::JsonSchema, Decoder::Json, schema)
            }
            "PROTOBUF" => {
                let file = super::protobuf::File::parse(&text)?;
                let rendering = file.json_schema(0);
                (Format::Protobuf, Decoder::Protobuf(file), rendering)
            }
            other => return Err(format!("schema type {other:?} is not one kconn reads")),
        };
        let (subject, version) = versions
            .first()
            .map(|(s, v)| (Some(s.clone()), Some(*v)))
            .unwrap_or((None, None));
        Ok(Resolved {
            info: SchemaRef {
                id,
                format,
                subject,
                version,
                schema: text,
            },
            json_schema,
            versions,
            decoder,
        })
    }

    /// What the catalog records for a topic's values (`key` false) or keys: the subject the topic
    /// name strategy gives (`<topic>-value`) when the registry files the schema under it, else the
    /// first.
    pub fn for_topic(&self, topic: &str, key: bool) -> SchemaRef {
        let wanted = format!("{topic}-{}", if key { "key" } else { "value" });
        let mut info = self.info.clone();
        if let Some((s, v)) = self.versions.iter().find(|(s, _)| *s == wanted) {
            info.subject = Some(s.clone());
            info.version = Some(*v);
        }
        info
    }

    /// Decodes a message's bytes after the 5-byte header: `Err` says why they do not fit the schema.
    /// A Protobuf message gives its JSON Schema (the message the indexes name); others `None`.
    pub fn check(&self, body: &[u8]) -> Result<Option<Value>, String> {
        match &self.decoder {
            Decoder::Avro(schema) => schema.check(body).map(|_| None),
            Decoder::Json => serde_json::from_slice::<Value>(body)
                .map(|_| None)
                .map_err(|e| format!("not JSON: {e}")),
            Decoder::Protobuf(file) => file.check_framed(body).map(Some),
        }
    }
}

/// Why a schema could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// The registry does not know the id (404): the messages that name it cannot be read.
    Unknown(String),
    /// The registry holds it, but kconn cannot use it (a schema it does not read, a reference).
    Unusable(String),
    /// The registry did not answer (down, refused, a server error): the refresh fails and the last
    /// catalog stays.
    Unavailable(String),
}

/// The schemas one refresh has fetched, by id; each distinct id is fetched once, even by several
/// sampling threads at a time.
pub trait Schemas: Sync {
    /// The schema `id`.
    fn get(&self, id: u32) -> Result<Arc<Resolved>, Fetch>;
}

type Cell = Arc<OnceLock<Result<Arc<Resolved>, Fetch>>>;

/// The registry of a connection, for one refresh.
pub struct Registry {
    material: RegistryMaterial,
    timeout: Duration,
    deadline: std::time::Instant,
    cache: Mutex<HashMap<u32, Cell>>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl Registry {
    /// A registry client whose requests each take at most `timeout` per read and write, and that asks
    /// nothing after `within` from now (a slow registry cannot stretch a refresh past its time).
    pub fn new(material: RegistryMaterial, timeout: Duration, within: Duration) -> Self {
        Registry {
            material,
            timeout,
            deadline: std::time::Instant::now() + within,
            cache: Mutex::new(HashMap::new()),
            fetches: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many schemas this refresh fetched from the registry.
    pub fn fetched(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `GET <url><path>` at the first URL that answers; an answer of the registry, or why none came.
    fn get_json(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        let mut last = String::from("no URL");
        for url in &self.material.urls {
            let left = self
                .deadline
                .saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!("the refresh's time ran out ({last})"));
            }
            let target = url.join(path);
            let addrs: Vec<_> = match (url.host.as_str(), url.port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    last = format!("{}: cannot resolve {}: {e}", url.url(), url.host);
                    continue;
                }
            };
            let request = web::Request {
                method: "GET",
                url: &target,
                basic: self.material.basic.as_ref().map(|(u, p)| (u, p)),
                content_type: None,
                body: b"",
                limit: web::MAX_ANSWER,
            };
            match web::call_any(&request, &addrs, &self.material.tls, self.timeout.min(left)) {
                Ok((_, answer))
                    if answer.status >= 500 || answer.status == 401 || answer.status == 403 =>
                {
                    last = format!("{}: HTTP {}", url.url(), answer.status);
                }
                Ok((_, answer)) => return Ok((answer.status, answer.body)),
                Err(e @ (WebError::Connect(_) | WebError::Tls(_) | WebError::Protocol(_))) => {
                    last = format!("{}: {e}", url.url());
                }
            }
        }
        Err(last)
    }

    fn fetch(&self, id: u32) -> Result<Arc<Resolved>, Fetch> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // One retry: a registry restarting or briefly overloaded.
        let (status, body) = self
            .get_json(&format!("/schemas/ids/{id}"))
            .or_else(|_| self.get_json(&format!("/schemas/ids/{id}")))
            .map_err(|why| {
                Fetch::Unavailable(format!("the schema registry did not answer: {why}"))
            })?;
        if status == 404 {
            return Err(Fetch::Unknown(format!(
                "schema id {id} is not in the registry"
            )));
        }
        if status != 200 {
            return Err(Fetch::Unavailable(format!(
                "the schema registry answered HTTP {status} for schema id {id}"
            )));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            schema: String,
            schema_type: Option<String>,
            #[serde(default)]
            references: Vec<Value>,
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            Fetch::Unavailable(format!(
                "the registry's answer for schema id {id} is not a schema: {e}"
            ))
        })?;
        if !answer.references.is_empty() {
            return Err(Fetch::Unusable(format!(
                "schema id {id} references other schemas, which kconn does not read yet"
            )));
        }
        // Its subjects and versions, when the registry says (best effort; at most 100 kept).
        let versions = match self.get_json(&format!("/schemas/ids/{id}/versions")) {
            Ok((200, body)) => {
                #[derive(Deserialize)]
                struct Version {
                    subject: String,
                    version: u32,
                }
                serde_json::from_slice::<Vec<Version>>(&body)
                    .map(|v| {
                        v.into_iter()
                            .take(100)
                            .map(|v| (web::printable(&v.subject), v.version))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Resolved::new(id, answer.schema_type.as_deref(), answer.schema, versions)
            .map(Arc::new)
            .map_err(|why| Fetch::Unusable(format!("schema id {id}: {why}")))
    }
}

impl Schemas for Registry {
    fn get(&self, id: u32) -> Result<Arc<Resolved>, Fetch> {
        let cell: Cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if !cache.contains_key(&id) && cache.len() >= MAX_SCHEMAS {
                return Err(Fetch::Unusable(format!(
                    "the messages name more than {MAX_SCHEMAS} distinct schema ids in one refresh"
                )));
            }
            cache.entry(id).or_default().clone()
        };
        cell.get_or_init(|| self.fetch(id)).clone()
    }
}

/// The schema id of a message framed for a registry: a zero byte and four bytes of id, before a body.
pub fn framed(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_a_zero_byte_and_a_big_endian_id() {
        assert_eq!(framed(&[0, 0, 0, 1, 2, 9, 9]), Some((258, &[9u8, 9][..])));
        assert_eq!(framed(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
        assert_eq!(framed(b"{\"a\":1}"), None);
        assert_eq!(framed(&[0, 0, 1]), None);
    }

    #[test]
    fn schemas_are_built_by_type() {
        let avro = Resolved::new(
            1,
            None,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#.into(),
            vec![("other-value".into(), 1), ("t-value".into(), 2)],
        )
        .unwrap();
        assert_eq!(avro.info.subject.as_deref(), Some("other-value"));
        let mine = avro.for_topic("t", false);
        assert_eq!(
            (mine.subject.as_deref(), mine.version),
            (Some("t-value"), Some(2))
        );
        assert_eq!(
            avro.for_topic("u", false).subject.as_deref(),
            Some("other-value")
        );
        assert_eq!(avro.info.format, Format::Avro);
        assert_eq!(avro.json_schema["properties"]["a"]["type"], "integer");
        assert!(avro.check(&[2]).is_ok());
        assert!(avro.check(&[2, 0]).is_err());
        let json = Resolved::new(
            2,
            Some("JSON"),
            r#"{"type":"object","properties":{"b":{"type":"string"}}}"#.into(),
            vec![],
        )
        .unwrap();
        assert_eq!(json.info.format, Format::JsonSchema);
        assert_eq!(json.json_schema["properties"]["b"]["type"], "string");
        assert!(json.check(br#"{"b":"x"}"#).is_ok());
        assert!(json.check(b"{nope").unwrap_err().starts_with("not JSON"));
        assert!(Resolved::new(3, Some("XML"), String::new(), vec![])
            .unwrap_err()
            .contains("XML"));
        assert!(Resolved::new(4, None, "{".into(), vec![])
            .unwrap_err()
            .contains("not JSON"));
    }
}
