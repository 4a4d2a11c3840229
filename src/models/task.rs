//! A refresh as a background task, so that it never holds up a connection test or its requeue: it
//! runs the connection test to get an authenticated session and the matched topics, samples them,
//! builds the catalog and stores it. The registry remembers which refreshes run and hands each
//! finished one to the next reconcile of its connection, which writes it into status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::Client;
use tokio::sync::{mpsc, Semaphore};

use super::refresh::{self, RefreshFailure, Refreshed, Written};
use super::store::{self, Owner, StoreError};
use super::{catalog, report};
use crate::api::{CheckResult, KafkaConnectionSpec, Reason};
use crate::checks;
use crate::kafka::{Kafka, KafkaFailure};
use crate::secrets::SecretStore;

/// Everything one refresh needs.
#[derive(Debug, Clone)]
pub struct Job {
    /// The connection.
    pub owner: Owner,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// The annotation value this refresh answers.
    pub request: Option<String>,
    /// Its spec.
    pub spec: KafkaConnectionSpec,
    /// Its Secrets.
    pub secrets: SecretStore,
    /// Bound on the sampling.
    pub timeout: Duration,
    /// Largest shard, in compressed bytes.
    pub shard_bytes: usize,
}

/// Runs one refresh to the end. Never fails: a failure is a [`Refreshed`] with an error result.
pub async fn run(job: Job, kafka: &impl Kafka, client: Client) -> Refreshed {
    let result = refresh_catalog(&job, kafka, client).await;
    Refreshed {
        generation: job.generation,
        request: job.request,
        finished: chrono::Utc::now(),
        result,
    }
}

fn failure(reason: Reason, message: impl Into<String>) -> RefreshFailure {
    RefreshFailure {
        reason,
        message: message.into(),
    }
}

async fn refresh_catalog(
    job: &Job,
    kafka: &impl Kafka,
    client: Client,
) -> Result<Written, RefreshFailure> {
    let input = checks::TestInput {
        spec: &job.spec,
        valid: &crate::validate::outcome(&job.spec, &[]),
        secrets: &job.secrets,
        now: std::time::SystemTime::now(),
        group_id: checks::group_id(&job.spec, &job.owner.namespace, &job.owner.name),
    };
    let started = std::time::Instant::now();
    let test = checks::run(&input, kafka).await;
    let tested = started.elapsed();
    let Some(session) = test.session else {
        let why = test
            .checks
            .iter()
            .find(|c| c.result == CheckResult::Failed)
            .map(|c| format!("{}: {}", c.name, c.message))
            .unwrap_or_else(|| "the connection test did not list the topics".into());
        return Err(failure(
            Reason::DependencyFailed,
            format!("topics cannot be sampled: {why}"),
        ));
    };
    let per_topic = job.spec.models.sample_messages as usize;
    let ignore = job.spec.consumer.ignore_non_json_messages;
    let timeout = job.timeout;
    let outcomes = tokio::task::spawn_blocking(move || {
        report::sample_and_build(&session, per_topic, ignore, timeout)
    })
    .await
    .map_err(|e| {
        failure(
            Reason::SamplingFailed,
            format!("the sampling task failed: {e}"),
        )
    })?
    .map_err(|e| match e {
        KafkaFailure::Unsupported(m) => failure(Reason::SamplingUnsupported, m),
        e => failure(Reason::SamplingFailed, format!("reading messages: {e}")),
    })?;
    let sampled = started.elapsed();
    let written = store_catalog(&job.owner, outcomes, job.shard_bytes, client).await?;
    tracing::info!(
        namespace = %job.owner.namespace,
        name = %job.owner.name,
        models = written.count,
        test_ms = tested.as_millis() as u64,
        sample_ms = (sampled - tested).as_millis() as u64,
        store_ms = (started.elapsed() - sampled).as_millis() as u64,
        bytes_written = written.bytes_written,
        "catalog refreshed"
    );
    Ok(written)
}

/// Builds the catalog from the sampled outcomes and stores it: compares with the previous catalog
/// (added, removed, changed), writes the shards that changed and removes stale ones.
pub async fn store_catalog(
    owner: &Owner,
    outcomes: Vec<report::ModelOutcome>,
    shard_bytes: usize,
    client: Client,
) -> Result<Written, RefreshFailure> {
    let skipped: u64 = outcomes
        .iter()
        .filter_map(|o| o.model.as_ref())
        .map(|m| u64::from(m.skipped))
        .sum();
    let (models, failed) = refresh::split(outcomes);
    let built = catalog::build(&owner.name, &models, shard_bytes).map_err(|e| match e {
        catalog::CatalogError::ModelTooLarge(_) => failure(Reason::ModelTooLarge, e.to_string()),
        catalog::CatalogError::Encoding(_) => failure(Reason::CatalogWriteFailed, e.to_string()),
    })?;
    let api: Api<ConfigMap> = Api::namespaced(client, &owner.namespace);
    let write_failed = |e: StoreError| match e {
        StoreError::NameTaken(_) => failure(Reason::CatalogNameTaken, e.to_string()),
        StoreError::Kube(_) => failure(Reason::CatalogWriteFailed, e.to_string()),
    };
    let existing = store::existing(&api, &owner.uid)
        .await
        .map_err(|e| write_failed(e.into()))?;
    let changes = refresh::changes(&store::fingerprints(&existing), &models);
    let stats = store::write(&api, owner, &built, &existing)
        .await
        .map_err(write_failed)?;
    tracing::debug!(
        shards_written = stats.written,
        shards_deleted = stats.deleted,
        "catalog stored"
    );
    Ok(Written {
        count: models.len() as u32,
        catalog: built.shards.iter().map(|s| s.name.clone()).collect(),
        hash: built.hash,
        changes,
        skipped,
        failed,
        bytes_written: stats.bytes,
    })
}

enum Slot {
    Running,
    Done(Box<Refreshed>),
}

/// The refreshes of this process: at most `limit` at once, one per connection.
pub struct Registry {
    slots: Mutex<HashMap<String, Slot>>,
    limit: Arc<Semaphore>,
    finished: mpsc::UnboundedSender<(String, String)>,
}

impl Registry {
    /// A registry that runs `limit` refreshes at once and sends `(namespace, name)` on `finished`
    /// when one is done, so that its connection is reconciled.
    pub fn new(limit: usize, finished: mpsc::UnboundedSender<(String, String)>) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            limit: Arc::new(Semaphore::new(limit.max(1))),
            finished,
        }
    }

    /// The finished refresh of `uid`, once.
    pub fn take_done(&self, uid: &str) -> Option<Refreshed> {
        let mut slots = self.slots.lock().expect("registry lock");
        match slots.get(uid) {
            Some(Slot::Done(_)) => match slots.remove(uid) {
                Some(Slot::Done(done)) => Some(*done),
                _ => None,
            },
            _ => None,
        }
    }

    /// Forgets a connection (it was deleted, or another process owns it now).
    pub fn forget(&self, uid: &str) {
        self.slots.lock().expect("registry lock").remove(uid);
    }

    /// Forgets every connection `live` says is gone (deleted: no reconcile tells of that). A refresh
    /// still running for one finishes and its result is dropped.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.slots
            .lock()
            .expect("registry lock")
            .retain(|uid, _| live(uid));
    }

    /// Runs `refresh` (a [`run`] of connection `uid`, `key` = namespace and name) in the background,
    /// unless a refresh of the same connection is running or waiting to be written. Returns whether
    /// it started.
    pub fn start(
        self: &Arc<Self>,
        uid: &str,
        key: (String, String),
        refresh: impl std::future::Future<Output = Refreshed> + Send + 'static,
    ) -> bool {
        {
            let mut slots = self.slots.lock().expect("registry lock");
            if slots.contains_key(uid) {
                return false;
            }
            slots.insert(uid.to_string(), Slot::Running);
        }
        let registry = self.clone();
        let uid = uid.to_string();
        tokio::spawn(async move {
            let Ok(_permit) = registry.limit.clone().acquire_owned().await else {
                return;
            };
            let done = refresh.await;
            {
                let mut slots = registry.slots.lock().expect("registry lock");
                // Forgotten meanwhile (deleted, or owned by another process now): drop the result.
                if !matches!(slots.get(&uid), Some(Slot::Running)) {
                    return;
                }
                slots.insert(uid, Slot::Done(Box::new(done)));
            }
            // The controller may be gone at shutdown; then there is nobody to tell.
            let _ = registry.finished.send(key);
        });
        true
    }
}
