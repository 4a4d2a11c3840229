//! Models for a report: sample the matched topics of a session and build each topic's model.

use std::time::Duration;

use serde::Serialize;

use std::collections::{BTreeMap, HashMap};

use super::{build_with, registry, BuildError, Model, Sample};
use crate::kafka::Session;
use crate::kafka::{sample, KafkaFailure};

/// One topic's model, or why it could not be built.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    // Whatever librdkafka says on the way goes through the same redaction as the test's texts.
    sample_and_build_unredacted(session, per_topic, ignore_non_json, timeout)
        .map_err(|e| e.redacted(&session.settings.redactor()))
}

fn sample_and_build_unredacted(
    session: &Session,
    per_topic: usize,
    ignore_non_json: bool,
    timeout: Duration,
) -> Result<Vec<ModelOutcome>, KafkaFailure> {
    if session.settings.kerberos.is_some() {
        // GSSAPI reads its ticket cache from the process environment: sample in a child process
        // whose environment names only this connection's files (as the test does).
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            KafkaFailure::Unsupported("sampling over Kerberos needs the async runtime".into())
        })?;
        return handle.block_on(async {
            // librdkafka never renews a ticket itself (that would take a shell command): sampling
            // can outlive the test's ticket, so it gets a fresh one first, the same argv way.
            if let (Some(files), Some(krb)) = (&session.kerberos_files, &session.settings.kerberos)
            {
                crate::kerberos::get_ticket(files, &krb.principal, timeout)
                    .await
                    .map_err(|e| KafkaFailure::Authentication(format!("Kerberos: {e}")))?;
            }
            let request = crate::kafka::probe::SampleRequest {
                topics: session.topics.clone(),
                per_topic,
                ignore_non_json,
                admin_answers: session.admin_answers,
            };
            crate::kafka::probe::run_child::<Vec<ModelOutcome>>(
                &session.settings,
                crate::kafka::probe::Work::Sample(request),
                timeout,
            )
            .await
        });
    }
    sample_and_build_here(session, per_topic, ignore_non_json, timeout)
}

/// [`sample_and_build`] in this process (the child of a Kerberos connection runs this).
pub fn sample_and_build_here(
    session: &Session,
    per_topic: usize,
    ignore_non_json: bool,
    timeout: Duration,
) -> Result<Vec<ModelOutcome>, KafkaFailure> {
    let started = std::time::Instant::now();
    let shape: HashMap<&str, &crate::kafka::Topic> = session
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    // The registry's schemas, each fetched once for the whole refresh (by whichever batch needs it
    // first), each request within the refresh's time.
    let registry = session.settings.registry.clone().map(|material| {
        registry::Registry::new(material, timeout.min(Duration::from_secs(10)), timeout)
    });
    let schemas = registry.as_ref().map(|r| r as &dyn registry::Schemas);
    // Each batch's samples become models at once and are dropped.
    let batches = sample::newest_each(
        &session.settings,
        &session.topics,
        per_topic,
        timeout,
        |samples: BTreeMap<String, Vec<Sample>>| {
            samples
                .into_iter()
                .map(|(topic, samples)| {
                    outcome(
                        &topic,
                        &samples,
                        ignore_non_json,
                        shape.get(topic.as_str()),
                        schemas,
                    )
                })
                .collect::<Result<Vec<_>, String>>()
        },
    )?;
    let mut outcomes: Vec<ModelOutcome> = Vec::new();
    for batch in batches {
        // The registry did not answer: no catalog from this refresh (the last one stays).
        outcomes
            .extend(batch.map_err(|why| KafkaFailure::Other(format!("schema registry: {why}")))?);
    }
    if let Some(r) = &registry {
        tracing::debug!(schemas = r.fetched(), "registry schemas fetched");
    }
    let read = started.elapsed();
    let names: Vec<String> = session.topics.iter().map(|t| t.name.clone()).collect();
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
    for o in &mut outcomes {
        if let Some(model) = &mut o.model {
            model.configs = configs.remove(&o.topic).unwrap_or_default();
        }
    }
    outcomes.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(outcomes)
}

fn outcome(
    topic: &str,
    samples: &[Sample],
    ignore_non_json: bool,
    shape: Option<&&crate::kafka::Topic>,
    schemas: Option<&dyn registry::Schemas>,
) -> Result<ModelOutcome, String> {
    Ok(match build_with(topic, samples, ignore_non_json, schemas) {
        Ok(mut model) => {
            if let Some(t) = shape {
                model.partitions = t.partitions;
                model.replication_factor = t.replication_factor;
            }
            ModelOutcome {
                topic: topic.to_string(),
                model: Some(model),
                error: None,
            }
        }
        Err(BuildError::Message(e)) => ModelOutcome {
            topic: topic.to_string(),
            model: None,
            error: Some(format!(
                "partition {} offset {} {}",
                e.partition,
                e.offset,
                e.what()
            )),
        },
        Err(BuildError::Registry(why)) => return Err(why),
    })
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

/// Samples the session's topics as the connection's model settings say.
pub async fn sample_models(
    conn: &crate::api::KafkaConnection,
    session: Session,
) -> (Vec<ModelOutcome>, Option<String>) {
    let per_topic = conn.spec.models.sample_messages as usize;
    let ignore = conn.spec.consumer.ignore_non_json_messages;
    let timeout = crate::validate::validate(&conn.spec)
        .map(|v| v.timeout)
        .unwrap_or(std::time::Duration::from_secs(30));
    match tokio::task::spawn_blocking(move || {
        sample_and_build(&session, per_topic, ignore, timeout)
    })
    .await
    {
        Ok(Ok(models)) => (models, None),
        Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
        Err(e) => (Vec::new(), Some(format!("the sampling task failed: {e}"))),
    }
}
