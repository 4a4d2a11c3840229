//! Models for a report: sample the matched topics of a session and build each topic's model.

use std::time::Duration;

use serde::Serialize;

use super::{build, Model};
use crate::checks::Session;
use crate::kafka::{sample, KafkaFailure};

/// One topic's model, or why it could not be built.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelOutcome {
    /// The topic.
    pub topic: String,
    /// The model, when it was built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// Why not, naming partition and offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Samples the newest `per_topic` messages of the session's topics and builds their models.
pub fn sample_and_build(
    session: &Session,
    per_topic: usize,
    ignore_non_json: bool,
    timeout: Duration,
) -> Result<Vec<ModelOutcome>, KafkaFailure> {
    if session.settings.kerberos.is_some() {
        return Err(KafkaFailure::Unsupported(
            "sampling messages over Kerberos (GSSAPI) is not supported yet: the catalog cannot be built for this connection; its test is unaffected".into(),
        ));
    }
    let started = std::time::Instant::now();
    let samples = sample::newest(&session.settings, &session.topics, per_topic, timeout)?;
    let names: Vec<String> = session.topics.iter().map(|t| t.name.clone()).collect();
    let read = started.elapsed();
    let mut configs = if session.admin_answers {
        sample::topic_configs(
            &session.settings,
            &names,
            timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(1)),
        )
    } else {
        Default::default()
    };
    tracing::debug!(
        topics = names.len(),
        read_ms = read.as_millis() as u64,
        configs_ms = (started.elapsed() - read).as_millis() as u64,
        with_configs = configs.len(),
        "sampled"
    );
    Ok(session
        .topics
        .iter()
        .map(|topic| {
            match build(
                &topic.name,
                samples.get(&topic.name).map(Vec::as_slice).unwrap_or(&[]),
                ignore_non_json,
            ) {
                Ok(mut model) => {
                    model.partitions = topic.partitions;
                    model.replication_factor = topic.replication_factor;
                    model.configs = configs.remove(&topic.name).unwrap_or_default();
                    ModelOutcome {
                        topic: topic.name.clone(),
                        model: Some(model),
                        error: None,
                    }
                }
                Err(e) => ModelOutcome {
                    topic: topic.name.clone(),
                    model: None,
                    error: Some(format!(
                        "partition {} offset {} is not a JSON object ({})",
                        e.partition, e.offset, e.why
                    )),
                },
            }
        })
        .collect())
}

/// `amount number, coupon? null, customer object` (`?`: not in every message).
pub fn fields(schema: &serde_json::Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
        return "no fields".into();
    };
    props
        .iter()
        .map(|(name, s)| {
            let kind = match &s["type"] {
                serde_json::Value::String(t) => t.clone(),
                serde_json::Value::Array(ts) => ts
                    .iter()
                    .filter_map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join("|"),
                _ if s.get("anyOf").is_some() => "mixed".into(),
                _ => "any".into(),
            };
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{name}{optional} {kind}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
