//! The refresh of a connection's model catalog, as pure functions: whether one is due (schedule, the
//! `kconn.dev/refresh-requested-at` annotation, spec changes, `models.suspend`), what a finished
//! refresh changed, and the `status.models` and `ModelsLoaded` condition it leads to.

use crate::api::{ConditionStatus, ModelChanges, ModelSettings, ModelsStatus, Reason};
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::report::ModelOutcome;
use super::schedule::{next_refresh, schedule};
use super::Model;

/// Converts a Kubernetes time to chrono.
pub fn to_chrono(t: &Time) -> DateTime<Utc> {
    crate::schedule::chrono_of(t.0)
}

/// Converts a chrono time to a Kubernetes time (whole seconds, as the API server keeps them).
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or_default())
}

/// What the reconcile should do about the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// `models.suspend` (or the whole connection is suspended): nothing.
    Suspended,
    /// Refresh now; `request` is the annotation value it answers, if any.
    Now {
        /// The `kconn.dev/refresh-requested-at` value this refresh handles.
        request: Option<String>,
    },
    /// Next refresh at this time.
    At(DateTime<Utc>),
}

/// What `due` looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The connection's model settings.
    pub settings: &'a ModelSettings,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.models`.
    pub status: Option<&'a ModelsStatus>,
    /// The `kconn.dev/refresh-requested-at` annotation.
    pub requested: Option<&'a str>,
    /// `status.lastHandledRefreshRequest`.
    pub handled: Option<&'a str>,
    /// `models.refreshAt` parsed.
    pub refresh_at: (u8, u8),
    /// `models.timeZone` resolved.
    pub time_zone: Tz,
}

/// Whether a refresh is due: never refreshed, a spec change since the last refresh, a new annotation
/// value, or the schedule (hourly below the threshold, daily at `refreshAt` from it on).
pub fn due(o: &Observed, now: DateTime<Utc>) -> Due {
    if o.settings.suspend {
        return Due::Suspended;
    }
    if let Some(r) = o
        .requested
        .filter(|r| !r.is_empty() && Some(*r) != o.handled)
    {
        return Due::Now {
            request: Some(r.to_string()),
        };
    }
    let Some(status) = o.status else {
        return Due::Now { request: None };
    };
    let Some(last) = status.last_refresh_time.as_ref() else {
        return Due::Now { request: None };
    };
    if status.observed_generation != o.generation {
        return Due::Now { request: None };
    }
    let next = next_refresh(
        Some(to_chrono(last)),
        now,
        schedule(status.count, o.settings.large_catalog_threshold),
        o.refresh_at,
        o.time_zone,
    );
    if next <= now {
        Due::Now { request: None }
    } else {
        Due::At(next)
    }
}

/// Models added, removed, and whose schema or key format changed, between the previous catalog (its
/// topics' [`Model::fingerprint`]s) and the new models.
pub fn changes(old: &HashMap<String, u64>, new: &[Model]) -> ModelChanges {
    let mut out = ModelChanges::default();
    let mut seen = 0usize;
    for m in new {
        match old.get(&m.topic) {
            None => out.added += 1,
            Some(fp) => {
                seen += 1;
                if *fp != m.fingerprint() {
                    out.changed += 1;
                }
            }
        }
    }
    out.removed = (old.len() - seen) as u32;
    out
}

/// A topic whose model failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFailure {
    /// The topic.
    pub topic: String,
    /// Why (names partition and offset).
    pub error: String,
}

/// Splits outcomes into the models built and the topics that failed.
pub fn split(outcomes: Vec<ModelOutcome>) -> (Vec<Model>, Vec<TopicFailure>) {
    let mut models = Vec::with_capacity(outcomes.len());
    let mut failed = Vec::new();
    for o in outcomes {
        match (o.model, o.error) {
            (Some(m), _) => models.push(m),
            (None, error) => failed.push(TopicFailure {
                topic: o.topic,
                error: error.unwrap_or_else(|| "no model".into()),
            }),
        }
    }
    (models, failed)
}

/// What a finished refresh found and wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Refreshed {
    /// The `metadata.generation` the refresh ran against.
    pub generation: Option<i64>,
    /// The annotation value it answered.
    pub request: Option<String>,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// The result.
    pub result: Result<Written, RefreshFailure>,
}

/// A catalog that was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Models in the catalog.
    pub count: u32,
    /// The ConfigMaps, in order.
    pub catalog: Vec<String>,
    /// Hash of the content.
    pub hash: String,
    /// Against the previous catalog.
    pub changes: ModelChanges,
    /// Messages skipped as not JSON objects.
    pub skipped: u64,
    /// Topics whose model failed (kept out of the catalog).
    pub failed: Vec<TopicFailure>,
    /// Bytes sent to the API server for the catalog (0 when nothing changed).
    pub bytes_written: u64,
}

/// Why a refresh produced no catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFailure {
    /// Why, in the API's words.
    pub reason: Reason,
    /// What happened (no secret values).
    pub message: String,
}

/// `status.models` after a refresh; a failed refresh keeps the previous catalog's facts.
pub fn status_after(
    prev: Option<&ModelsStatus>,
    done: &Refreshed,
    settings: &ModelSettings,
    refresh_at: (u8, u8),
    time_zone: Tz,
) -> ModelsStatus {
    let mut next = prev.cloned().unwrap_or_default();
    if let Ok(w) = &done.result {
        next.count = w.count;
        next.catalog = w.catalog.clone();
        next.content_hash = Some(w.hash.clone());
        next.changes = Some(w.changes.clone());
        next.skipped_messages = w.skipped;
        next.failed_topics = w.failed.len() as u32;
    }
    let schedule = schedule(next.count, settings.large_catalog_threshold);
    next.schedule = Some(schedule);
    next.observed_generation = done.generation;
    next.last_refresh_time = Some(to_time(done.finished));
    next.next_refresh_time = Some(to_time(next_refresh(
        Some(done.finished),
        done.finished,
        schedule,
        refresh_at,
        time_zone,
    )));
    next
}

/// How many failing topics a condition message names.
const NAMED_FAILURES: usize = 3;

/// The `ModelsLoaded` condition's status, reason and message after a refresh.
pub fn condition_after(done: &Refreshed) -> (ConditionStatus, Reason, String) {
    match &done.result {
        Err(f) => (ConditionStatus::False, f.reason, f.message.clone()),
        Ok(w) if !w.failed.is_empty() => {
            let named: Vec<String> = w
                .failed
                .iter()
                .take(NAMED_FAILURES)
                .map(|f| format!("{} {}", f.topic, f.error))
                .collect();
            let more = w.failed.len().saturating_sub(NAMED_FAILURES);
            (
                ConditionStatus::False,
                Reason::NonJsonMessages,
                format!(
                    "{} of {} topics have no model: {}{}; set spec.consumer.ignoreNonJsonMessages: true to skip such messages, or fix the producers",
                    w.failed.len(),
                    w.count as usize + w.failed.len(),
                    named.join("; "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ),
            )
        }
        Ok(w) => (
            ConditionStatus::True,
            Reason::CatalogLoaded,
            format!(
                "{} models in {} ConfigMap{}: {} added, {} removed, {} changed{}",
                w.count,
                w.catalog.len(),
                if w.catalog.len() == 1 { "" } else { "s" },
                w.changes.added,
                w.changes.removed,
                w.changes.changed,
                if w.skipped > 0 {
                    format!("; {} non-JSON messages skipped", w.skipped)
                } else {
                    String::new()
                }
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RefreshSchedule;
    use crate::models::KeyFormat;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn model(topic: &str, field: &str) -> Model {
        Model {
            topic: topic.into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
            sampled: 1,
            skipped: 0,
            oversized: 0,
            empty: false,
            key_format: KeyFormat::None,
            schema:
                serde_json::json!({"type": "object", "properties": {field: {"type": "string"}}})
                    .into(),
            format: Default::default(),
            schemas: Vec::new(),
            key_schemas: Vec::new(),
            key_schema: None,
        }
    }

    fn observed<'a>(
        settings: &'a ModelSettings,
        status: Option<&'a ModelsStatus>,
        requested: Option<&'a str>,
        handled: Option<&'a str>,
    ) -> Observed<'a> {
        Observed {
            settings,
            generation: Some(1),
            status,
            requested,
            handled,
            refresh_at: (2, 0),
            time_zone: chrono_tz::UTC,
        }
    }

    fn refreshed_at(last: &str, count: u32) -> ModelsStatus {
        ModelsStatus {
            count,
            last_refresh_time: Some(to_time(utc(last))),
            observed_generation: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn when_a_refresh_is_due() {
        let settings = ModelSettings::default();
        let now = utc("2026-03-01T10:30:00Z");
        assert_eq!(
            due(&observed(&settings, None, None, None), now),
            Due::Now { request: None },
            "never refreshed"
        );
        let recent = refreshed_at("2026-03-01T10:00:00Z", 5);
        assert_eq!(
            due(&observed(&settings, Some(&recent), None, None), now),
            Due::At(utc("2026-03-01T11:00:00Z")),
            "hourly below the threshold"
        );
        let old = refreshed_at("2026-03-01T09:00:00Z", 5);
        assert_eq!(
            due(&observed(&settings, Some(&old), None, None), now),
            Due::Now { request: None }
        );
        let small = ModelSettings {
            large_catalog_threshold: 5,
            ..Default::default()
        };
        assert_eq!(
            due(&observed(&small, Some(&old), None, None), now),
            Due::At(utc("2026-03-02T02:00:00Z")),
            "daily at refreshAt from the threshold on"
        );
        assert_eq!(
            due(&observed(&settings, Some(&recent), Some("t1"), None), now),
            Due::Now {
                request: Some("t1".into())
            },
            "a new annotation value"
        );
        assert_eq!(
            due(
                &observed(&settings, Some(&recent), Some("t1"), Some("t1")),
                now
            ),
            Due::At(utc("2026-03-01T11:00:00Z")),
            "an annotation value already handled"
        );
        let mut changed = recent.clone();
        changed.observed_generation = Some(0);
        assert_eq!(
            due(&observed(&settings, Some(&changed), None, None), now),
            Due::Now { request: None },
            "the spec changed since the last refresh"
        );
        let suspended = ModelSettings {
            suspend: true,
            ..Default::default()
        };
        assert_eq!(
            due(&observed(&suspended, None, Some("t2"), None), now),
            Due::Suspended
        );
    }

    #[test]
    fn changes_between_catalogs() {
        let fingerprints = |models: &[Model]| -> HashMap<String, u64> {
            models
                .iter()
                .map(|m| (m.topic.clone(), m.fingerprint()))
                .collect()
        };
        let old = [model("a", "x"), model("b", "x"), model("c", "x")];
        let new = [model("a", "x"), model("b", "y"), model("d", "x")];
        let (old, none) = (fingerprints(&old), HashMap::new());
        assert_eq!(
            changes(&old, &new),
            ModelChanges {
                added: 1,
                removed: 1,
                changed: 1
            }
        );
        let same = [model("a", "x"), model("b", "x"), model("c", "x")];
        assert_eq!(changes(&old, &same), ModelChanges::default());
        assert_eq!(changes(&none, &same).added, 3);
    }

    fn written(failed: usize) -> Refreshed {
        Refreshed {
            generation: Some(2),
            request: None,
            finished: utc("2026-03-01T10:00:00Z"),
            result: Ok(Written {
                count: 4,
                catalog: vec!["c-models-0".into()],
                hash: "h".into(),
                changes: ModelChanges {
                    added: 4,
                    removed: 0,
                    changed: 0,
                },
                skipped: 0,
                failed: (0..failed)
                    .map(|i| TopicFailure {
                        topic: format!("t{i}"),
                        error: format!("partition 0 offset {i} is not a JSON object (not JSON)"),
                    })
                    .collect(),
                bytes_written: 10,
            }),
        }
    }

    #[test]
    fn status_and_condition_after_a_refresh() {
        let settings = ModelSettings::default();
        let s = status_after(None, &written(0), &settings, (2, 0), chrono_tz::UTC);
        assert_eq!(s.count, 4);
        assert_eq!(s.schedule, Some(RefreshSchedule::Hourly));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            s.next_refresh_time,
            Some(to_time(utc("2026-03-01T11:00:00Z")))
        );
        let (status, reason, message) = condition_after(&written(0));
        assert_eq!(
            (status, reason),
            (ConditionStatus::True, Reason::CatalogLoaded)
        );
        assert!(
            message.starts_with("4 models in 1 ConfigMap: 4 added"),
            "{message}"
        );

        let (status, reason, message) = condition_after(&written(5));
        assert_eq!(
            (status, reason),
            (ConditionStatus::False, Reason::NonJsonMessages)
        );
        assert!(message.contains("5 of 9 topics"), "{message}");
        assert!(message.contains("t0 partition 0 offset 0"), "{message}");
        assert!(message.contains("and 2 more"), "{message}");
        assert!(message.contains("ignoreNonJsonMessages"), "{message}");

        let failed = Refreshed {
            result: Err(RefreshFailure {
                reason: Reason::SamplingFailed,
                message: "timed out".into(),
            }),
            ..written(0)
        };
        let kept = status_after(Some(&s), &failed, &settings, (2, 0), chrono_tz::UTC);
        assert_eq!(
            (kept.count, &kept.catalog),
            (4, &s.catalog),
            "a failed refresh keeps the catalog"
        );
        assert_eq!(condition_after(&failed).0, ConditionStatus::False);
    }
}
