//! One reconcile, as a pipeline: observe (I/O only) → decide (pure, [`plan::decide`]) → act (the
//! announcement and the test) → settle (pure, [`plan::settle`]) → apply (the Event, the one status
//! write, the refresh start) → metrics. The clock is read once, at the start.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, instrument, warn};

use super::plan::{self, BindingStep, Done, Next, Object, Plan, ReadyGauge, Seen};
use super::{bounded, Context, Error, Guarded};
use crate::api::{
    ConditionStatus, ConditionType, KafkaConnection, KafkaConnectionStatus, ObservedSecret, Reason,
    TestedBy, API_VERSION, KIND, MANAGER,
};
use crate::http::{CheckLabel, ResultLabel};
use crate::kafka::Kafka;
use crate::models::{self, refresh::Refreshed, task};
use crate::secrets::SecretStore;
use crate::{checks, status, validate};

/// A turn of the cluster's budget further ahead than this is waited for by looking again then; a
/// nearer one, in place.
const DEFER_OVER: std::time::Duration = std::time::Duration::from_secs(1);

/// One reconcile of one object.
#[instrument(skip_all, fields(namespace = obj.namespace().as_deref().unwrap_or(""), name = %obj.name_any()))]
pub async fn reconcile<K: Kafka + 'static>(
    obj: Arc<Guarded>,
    ctx: Arc<Context<K>>,
) -> Result<Action, Error> {
    let now = (ctx.clock)();
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let seen = observe(&obj, &ns, &ctx).await?;
    let view = seen.view();
    let plan = plan::decide(&view, &now);
    let (done, announced) = act(&plan, &view, &seen, &ns, &ctx, &now).await?;
    let next = plan::settle(&view, &plan, &done, &now);
    debug!(?plan, requeue = ?next.requeue, writes = next.status.is_some(), "decided");
    apply(&ctx, &obj, &seen, &plan, announced, &next, &now).await?;
    record(
        &ctx,
        &ns,
        &obj.name_any(),
        &plan,
        &done,
        &next,
        seen.refreshed.as_ref(),
    );
    Ok(match next.requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// What observe read, owned; [`Observed::view`] lends it to the pure steps.
struct Observed<'a> {
    object: Object<'a>,
    namespace: String,
    uid: String,
    /// The status of an unreadable object, read untyped.
    untyped_status: Option<KafkaConnectionStatus>,
    assignment: crate::agents::Assignment,
    tested_by: TestedBy,
    secrets: Option<SecretStore>,
    observed_secrets: Vec<ObservedSecret>,
    cache_behind: bool,
    /// The resourceVersion read.
    version: Option<String>,
    refreshed: Option<Refreshed>,
    /// The spec validated once: the schedule and the test both take it.
    validated: Option<Result<validate::ValidSpec, Vec<validate::Problem>>>,
    /// When this process last tested it.
    tested: Option<Time>,
    /// When this process started testing.
    started: Time,
}

impl Observed<'_> {
    fn view(&self) -> Seen<'_> {
        Seen {
            object: self.object,
            uid: &self.uid,
            prev: match self.object {
                Object::Readable(conn) => conn.status.as_ref(),
                Object::Unreadable { .. } => self.untyped_status.as_ref(),
            },
            assignment: &self.assignment,
            tested_by: &self.tested_by,
            secrets: &self.observed_secrets,
            cache_behind: self.cache_behind,
            refreshed: self.refreshed.as_ref(),
            valid: self.validated.as_ref().and_then(|v| v.as_ref().ok()),
            tested: self.tested.as_ref(),
            started: Some(&self.started),
        }
    }
}

/// I/O only: who handles it (the agents' membership as last seen), the Secrets of an object this
/// process may test, the untyped status of an object that cannot be read, a finished refresh.
async fn observe<'a, K: Kafka>(
    obj: &'a Guarded,
    ns: &str,
    ctx: &Context<K>,
) -> Result<Observed<'a>, Error> {
    let name = obj.name_any();
    let uid = obj.uid().unwrap_or_default();
    let object = match &obj.0 {
        Ok(conn) => Object::Readable(conn),
        Err(invalid) => Object::Unreadable {
            error: &invalid.error,
            generation: invalid.metadata.generation,
        },
    };
    let pool = match object {
        Object::Readable(conn) => conn.spec.agent.as_ref().map(|a| a.name.as_str()),
        Object::Unreadable { .. } => None,
    };
    let assignment = ctx.agents.assignment(&uid, pool);
    let me = ctx.agents.me();
    let mut seen = Observed {
        object,
        namespace: ns.to_string(),
        untyped_status: None,
        assignment,
        tested_by: TestedBy {
            agent: me.pool,
            pod: me.identity,
        },
        secrets: None,
        observed_secrets: Vec::new(),
        cache_behind: ctx
            .superseded
            .contains(&uid, obj.resource_version().as_deref()),
        version: obj.resource_version(),
        refreshed: None,
        validated: None,
        tested: ctx.tested.get(&uid),
        started: ctx.started.clone(),
        uid,
    };
    match object {
        Object::Unreadable { .. }
            if seen.assignment == crate::agents::Assignment::Mine && !seen.cache_behind =>
        {
            // Read untyped: the object is exactly what this version cannot read as a KafkaConnection.
            let resource = kube::api::ApiResource::erase::<KafkaConnection>(&());
            let api =
                Api::<kube::api::DynamicObject>::namespaced_with(ctx.client.clone(), ns, &resource);
            ctx.metrics.api("status_get", 1);
            seen.untyped_status = bounded(ctx, api.get_status(&name))
                .await?
                .data
                .get("status")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok());
        }
        Object::Readable(conn)
            if plan::needs_secrets(object, &seen.assignment, seen.cache_behind) =>
        {
            let names = conn.spec.secret_names();
            ctx.metrics.api("secret_get", names.len() as u64);
            let secrets = bounded(ctx, SecretStore::fetch(&ctx.client, ns, &names)).await?;
            seen.observed_secrets = secrets.observed();
            seen.secrets = Some(secrets);
            seen.validated = Some(validate::outcome(&conn.spec, &[]));
            seen.refreshed = ctx.refreshes.take_done(&seen.uid);
        }
        _ => {}
    }
    Ok(seen)
}

/// The announcement (when the plan says so) and the test.
async fn act<K: Kafka>(
    plan: &Plan,
    view: &Seen<'_>,
    seen: &Observed<'_>,
    ns: &str,
    ctx: &Context<K>,
    now: &Time,
) -> Result<(Done, Option<String>), Error> {
    let (Plan::Test(trigger), Object::Readable(conn), Some(secrets), Some(valid)) =
        (plan, seen.object, &seen.secrets, &seen.validated)
    else {
        return Ok((Done::default(), None));
    };
    // A new object or generation is announced (Reconciling=True) before anything waits: kstatus
    // calls an object with no status Current, and its turn may be far ahead. Not again when the
    // status already announces this generation (a turn waited for, an operator killed mid-test).
    let (announced, announced_version) = if plan.announces() && !plan::announced(view) {
        let testing = plan::announcement(view, now);
        let version = write_status(ctx, ns, &conn.name_any(), &testing).await?;
        if let Some(version) = &version {
            ctx.superseded
                .record(&seen.uid, seen.version.clone(), None, version);
        }
        (Some(testing), version)
    } else {
        (None, None)
    };
    // The cluster's budget: a turn far ahead is waited for by looking again then, holding nothing.
    let uid = seen.uid.as_str();
    let cluster = crate::budget::cluster_key(
        view.prev
            .and_then(|p| p.cluster.as_ref())
            .and_then(|c| c.cluster_id.as_deref()),
        conn.spec.bootstrap_servers.iter().map(|b| b.0.as_str()),
    );
    let budget = crate::budget::global();
    let connections = crate::budget::connections_per_test(conn.spec.tls.is_some());
    let turn = budget.book(&cluster, uid, connections);
    let ahead = turn.saturating_duration_since(tokio::time::Instant::now());
    if ahead > DEFER_OVER {
        info!(?trigger, turn_in = ?ahead, "waiting for the cluster's turn");
        return Ok((
            Done {
                deferred: Some(ahead),
                ..Done::default()
            },
            None,
        ));
    }
    // The outcome is dated at the clock reading plus all of this: the waits and the test.
    let started = Instant::now();
    let admission = budget.admit(&cluster, uid, connections).await;
    let _slot = ctx.slots.clone().acquire_owned().await;
    info!(?trigger, "testing");
    ctx.metrics
        .budget_wait
        .observe(admission.waited.as_secs_f64());
    if *trigger == crate::schedule::Trigger::Due {
        ctx.metrics
            .test_start_delay
            .observe(plan::lateness(view, now).as_secs_f64());
    }
    let input = checks::TestInput {
        spec: &conn.spec,
        valid,
        secrets,
        now: std::time::SystemTime::from(now.0),
        group_id: checks::group_id(&conn.spec, ns, &conn.name_any()),
    };
    let mut report = checks::run(&input, &ctx.kafka).await;
    report.budget_wait = admission.waited;
    let took = started.elapsed();
    ctx.tested.remember(&seen.uid, Time(now.0 + took));
    let done = Done {
        announced,
        report: Some(report),
        took,
        deferred: None,
    };
    Ok((done, announced_version))
}

/// The Event, the one status write, the refresh start, and what this process remembers.
async fn apply<K: Kafka + 'static>(
    ctx: &Arc<Context<K>>,
    obj: &Guarded,
    seen: &Observed<'_>,
    plan: &Plan,
    announced: Option<String>,
    next: &Next,
    now: &Time,
) -> Result<(), Error> {
    let (ns, name) = (seen.namespace.as_str(), obj.name_any());
    if let Some(event) = &next.event {
        publish(ctx, obj, event).await;
    }
    // The binding first: the status says how it went.
    let mut binding_failed = None;
    if let (Some(step), Object::Readable(conn)) = (&next.binding, seen.object) {
        if let Err((reason, message)) = apply_binding(ctx, ns, conn, &seen.uid, step).await {
            let mut failed = next
                .status
                .clone()
                .or_else(|| seen.view().prev.cloned())
                .unwrap_or_default();
            if reason == Reason::BindingNameTaken {
                failed.binding = None;
            }
            status::set_condition(
                &mut failed,
                ConditionType::BindingReady,
                (ConditionStatus::False, reason, message),
                now,
                conn.metadata.generation,
            );
            binding_failed = Some(failed);
        }
    }
    let status = binding_failed.as_ref().or(next.status.as_ref());
    if let Some(status) = status {
        // The versions read and announced are now old: a reconcile that reads them again reads a
        // cache that has not caught up.
        if let Some(version) = write_status(ctx, ns, &name, status).await? {
            ctx.superseded
                .record(&seen.uid, seen.version.clone(), announced, &version);
        }
    }
    if *plan == Plan::NotMine {
        ctx.refreshes.forget(&seen.uid);
        ctx.superseded.forget(&seen.uid);
        ctx.published.forget(&seen.uid);
        ctx.tested.forget(&seen.uid);
    }
    if let (Some(request), Object::Readable(conn), Some(secrets)) =
        (&next.refresh, seen.object, &seen.secrets)
    {
        start_refresh(ctx, conn, &seen.uid, secrets, request.clone());
    }
    Ok(())
}

/// Every metric of one reconcile, in one place.
fn record<K: Kafka>(
    ctx: &Context<K>,
    ns: &str,
    name: &str,
    plan: &Plan,
    done: &Done,
    next: &Next,
    refreshed: Option<&Refreshed>,
) {
    let m = &ctx.metrics;
    let result = match plan {
        Plan::NotMine => Some("not_owned"),
        Plan::Suspended => Some("suspended"),
        Plan::Test(_) if done.deferred.is_some() => Some("deferred"),
        Plan::Test(_) => Some("tested"),
        Plan::Wait(_) | Plan::CacheBehind => Some("waited"),
        Plan::ReportNoAgent { .. } | Plan::ReportInvalid => None,
    };
    if let Some(result) = result {
        m.reconciles
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
    for row in done.report.iter().flat_map(|r| &r.checks) {
        m.check_duration
            .get_or_create(&CheckLabel {
                check: row.name.clone(),
            })
            .observe(row.duration_ms as f64 / 1000.0);
        if row.reason == Reason::AuthenticationFailed {
            m.failed_logins.inc();
        }
    }
    if let Some(done) = refreshed {
        let (_, reason, _) = models::refresh::condition_after(done);
        m.refreshes
            .get_or_create(&ResultLabel {
                result: reason.as_str().into(),
            })
            .inc();
        if let Ok(w) = &done.result {
            m.catalog_bytes_written.inc_by(w.bytes_written);
        }
        info!(reason = reason.as_str(), "model refresh finished");
    }
    let key = format!("{ns}/{name}");
    match &next.ready {
        ReadyGauge::Drop => m.set_ready(&key, None),
        ReadyGauge::Keep => {}
        ReadyGauge::Set(ready) => m.set_ready(&key, Some(ready)),
    }
}

/// Writes or removes the binding Secret. A Secret of that name that is not this connection's is
/// never touched. A binding identical to the last one this process wrote is not written again.
async fn apply_binding<K: Kafka>(
    ctx: &Context<K>,
    ns: &str,
    conn: &KafkaConnection,
    uid: &str,
    step: &BindingStep,
) -> Result<(), (Reason, String)> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let owned = |meta: &kube::api::ObjectMeta| crate::api::controlled_by(meta, uid);
    let write_failed = |e: Error| {
        (
            Reason::BindingWriteFailed,
            format!("the binding Secret could not be written: {e}"),
        )
    };
    // Removes `name` when it is this connection's.
    let remove = |name: String| {
        let api = api.clone();
        async move {
            ctx.metrics.api("secret_get", 1);
            let found = bounded(ctx, api.get_metadata_opt(&name))
                .await
                .map_err(write_failed)?;
            if found.is_some_and(|s| owned(&s.metadata)) {
                ctx.metrics.api("secret_delete", 1);
                bounded(ctx, api.delete(&name, &Default::default()))
                    .await
                    .map_err(write_failed)?;
            }
            Ok::<(), (Reason, String)>(())
        }
    };
    match step {
        BindingStep::Remove(name) => {
            ctx.published.forget(uid);
            remove(name.clone()).await
        }
        BindingStep::Publish { binding, replaces } => {
            let spec = conn.spec.binding.clone().unwrap_or_default();
            let secret = crate::binding::secret(ns, &conn.name_any(), Some(uid), &spec, binding);
            let fingerprint = fingerprint(&secret);
            ctx.metrics.api("secret_get", 1);
            let found = bounded(ctx, api.get_metadata_opt(&binding.name))
                .await
                .map_err(write_failed)?;
            // Unchanged since this process wrote it, and still there: nothing to write. (A Secret
            // deleted by hand comes back with the next passing test.)
            if found.as_ref().is_some_and(|s| owned(&s.metadata))
                && ctx.published.get(uid) == Some(fingerprint)
            {
                return Ok(());
            }
            if found.is_some_and(|s| !owned(&s.metadata)) {
                ctx.published.forget(uid);
                return Err((
                    Reason::BindingNameTaken,
                    format!(
                        "Secret {} exists and is not this connection's: choose another spec.binding.secretName, or delete that Secret",
                        binding.name
                    ),
                ));
            }
            ctx.metrics.api("secret_patch", 1);
            let params = PatchParams::apply(MANAGER).force();
            if let Err(e) = bounded(
                ctx,
                api.patch(&binding.name, &params, &Patch::Apply(&secret)),
            )
            .await
            {
                ctx.published.forget(uid);
                return Err(write_failed(e));
            }
            ctx.published.remember(uid, fingerprint);
            info!(secret = %binding.name, "binding published");
            match replaces {
                Some(old) => remove(old.clone()).await,
                None => Ok(()),
            }
        }
    }
}

/// A fingerprint of what a Secret holds, kept in memory only (never written anywhere).
fn fingerprint(secret: &Secret) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    secret.metadata.name.hash(&mut h);
    secret.metadata.labels.hash(&mut h);
    secret.metadata.annotations.hash(&mut h);
    for (k, v) in secret.data.iter().flatten() {
        k.hash(&mut h);
        v.0.hash(&mut h);
    }
    h.finish()
}

/// The KafkaConnections of a namespace, read and written untyped.
fn untyped<K: Kafka>(ctx: &Context<K>, ns: &str) -> Api<kube::api::DynamicObject> {
    let resource = kube::api::ApiResource::erase::<KafkaConnection>(&());
    Api::namespaced_with(ctx.client.clone(), ns, &resource)
}

/// Writes the status (server-side apply, forced: status is this manager's alone); returns the
/// object's resourceVersion after the write.
async fn write_status(
    ctx: &Context<impl Kafka>,
    ns: &str,
    name: &str,
    status: &KafkaConnectionStatus,
) -> Result<Option<String>, Error> {
    // Untyped: the answer of an object this version cannot read is still an answer.
    let api = untyped(ctx, ns);
    // A status made from the watch cache's copy, whose check rows it keeps as a digest, gets the
    // rows back from the API server: server-side apply would remove rows the patch leaves out.
    let restored = if status::checks_elided(status) {
        ctx.metrics.api("status_get", 1);
        let current = bounded(ctx, api.get_status(name)).await?;
        let mut full = status.clone();
        full.checks = current
            .data
            .get("status")
            .and_then(|s| s.get("checks"))
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        Some(full)
    } else {
        None
    };
    let status = restored.as_ref().unwrap_or(status);
    let patch = serde_json::json!({"apiVersion": API_VERSION, "kind": KIND, "status": status});
    ctx.metrics.api("status_patch", 1);
    let params = PatchParams::apply(MANAGER).force();
    let written = bounded(ctx, api.patch_status(name, &params, &Patch::Apply(&patch))).await?;
    Ok(written.metadata.resource_version)
}

/// Publishes the Event of a Ready transition. An Event that cannot be published is not worth failing
/// the reconcile for.
async fn publish<K: Kafka>(ctx: &Context<K>, obj: &Guarded, event: &status::ReadyEvent) {
    let ev = Event {
        type_: if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: event.reason.clone(),
        note: Some(event.note.chars().take(1000).collect()),
        action: "Test".into(),
        secondary: None,
    };
    ctx.metrics.api("event_create", 1);
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "cannot publish an Event");
    }
}

/// Starts a model refresh in the background; its outcome comes back through a reconcile.
fn start_refresh<K: Kafka + 'static>(
    ctx: &Arc<Context<K>>,
    conn: &KafkaConnection,
    uid: &str,
    secrets: &SecretStore,
    request: Option<String>,
) {
    let job = task::Job {
        owner: models::store::Owner {
            namespace: conn.namespace().unwrap_or_default(),
            name: conn.name_any(),
            uid: uid.to_string(),
        },
        generation: conn.metadata.generation,
        request,
        spec: conn.spec.clone(),
        secrets: secrets.clone(),
        timeout: ctx.refresh_timeout,
        shard_bytes: ctx.shard_bytes,
    };
    let key = (job.owner.namespace.clone(), job.owner.name.clone());
    let run_ctx = ctx.clone();
    let started = ctx.refreshes.start(uid, key, async move {
        task::run(job, &run_ctx.kafka, run_ctx.client.clone()).await
    });
    if started {
        info!("model refresh started");
    }
}
