//! `kconn run`: wiring of the KafkaConnection controller. Each reconcile fetches the referenced
//! Secrets (same namespace), decides from status and clock whether a test is due (`schedule`), runs
//! the test (`checks`), builds the status (`status`) and writes it once, by server-side apply on the
//! status subresource. Decisions live in those pure modules; this module only does I/O.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::agents::{self, lease, Assignment};
use crate::api::{
    KafkaConnection, KafkaConnectionStatus, TestedBy, API_VERSION, KIND, REFRESH_REQUESTED_AT,
    TEST_REQUESTED_AT,
};
use crate::http::{self, CheckLabel, Metrics, ResultLabel};
use crate::kafka::{Kafka, RdKafka};
use crate::models::{self, task};
use crate::secrets::SecretStore;
use crate::{checks, schedule, status, validate};

/// The one field manager of every status write.
pub const FIELD_MANAGER: &str = "kconn";

/// How long one Kubernetes API call may take before the reconcile gives up and is requeued.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);

/// What a reconcile needs.
pub struct Context<K: Kafka = RdKafka> {
    /// The API client.
    pub client: Client,
    /// Talks to Kafka.
    pub kafka: K,
    /// Bound on each Kubernetes API call.
    pub api_timeout: Duration,
    /// This process as an agent: who owns which connection.
    pub agents: Arc<lease::Agent>,
    /// Publishes Events on Ready transitions.
    pub recorder: Recorder,
    /// The metrics `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// Model refreshes running in the background.
    pub refreshes: Arc<task::Registry>,
    /// Largest catalog shard, in compressed bytes.
    pub shard_bytes: usize,
    /// Bound on one refresh's sampling.
    pub refresh_timeout: Duration,
}

/// How `kconn run` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Watch only these namespaces (empty: every namespace).
    pub namespaces: Vec<String>,
    /// Watch Secrets (by metadata) to re-test on rotation; without, rotation is seen at the next test.
    pub secret_watch: bool,
    /// The agent pool.
    pub agent: String,
    /// This process's identity.
    pub pod: String,
    /// Where /livez, /readyz and /metrics listen.
    pub http_addr: SocketAddr,
    /// Connections tested at once.
    pub concurrency: u16,
    /// Model refreshes run at once.
    pub refreshes: usize,
    /// Largest catalog shard, in compressed bytes.
    pub shard_bytes: usize,
    /// Bound on one refresh's sampling.
    pub refresh_timeout: Duration,
    /// Where the agent Leases live.
    pub lease_namespace: String,
    /// How long a Lease lasts without renewal.
    pub lease_duration: Duration,
}

/// Our own machinery failing (the API server), as opposed to a connection test's outcome.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A Kubernetes API call did not answer in time.
    #[error("the Kubernetes API did not answer within {0:?}")]
    Timeout(Duration),
    /// The object has no namespace or name.
    #[error("the object has no namespace")]
    NoNamespace,
    /// The agent could not announce itself.
    #[error(transparent)]
    Agent(#[from] lease::AgentError),
    /// The HTTP endpoints could not start.
    #[error("--http-addr: {0}")]
    Http(std::io::Error),
}

impl Error {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApi",
            Error::Timeout(_) => "KubeTimeout",
            Error::NoNamespace => "InvalidObject",
            Error::Agent(_) => "Agent",
            Error::Http(_) => "Http",
        }
    }
}

/// How often what is remembered of deleted connections is dropped.
const JANITOR_PERIOD: Duration = Duration::from_secs(10);

/// A KafkaConnection, or what could not be read of it.
pub type Guarded = DeserializeGuard<KafkaConnection>;

/// Runs the controller, and the HTTP endpoints, until SIGTERM or Ctrl-C.
///
/// With namespaces named, one watch per namespace (and a Role in each suffices); without, one watch
/// over all of them. The watches share everything else: the test slots, the agents, the metrics.
pub async fn run(client: Client, options: Options) -> Result<(), Error> {
    let Options {
        namespaces,
        agent,
        pod,
        http_addr,
        concurrency,
        secret_watch,
        ..
    } = options.clone();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    http::serve(http_addr, ready.clone(), metrics.clone())
        .await
        .map_err(Error::Http)?;
    // Announce this process and read the other members before deciding anything.
    let me = agents::Member {
        identity: pod.clone(),
        pool: agent,
    };
    let agents = Arc::new(lease::Agent::new(me.clone(), options.lease_duration));
    let (membership_changed, mut membership) = tokio::sync::mpsc::unbounded_channel::<()>();
    lease::start(
        client.clone(),
        &options.lease_namespace,
        agents.clone(),
        membership_changed,
    )
    .await?;
    metrics.agents_live.set(agents.live().len() as i64);
    // Each watch reconciles all of its connections when membership changes. The watches subscribe
    // before the fan-out starts, so no change is lost (the channel from the Leases buffers meanwhile).
    let (membership_tx, _) = tokio::sync::broadcast::channel::<()>(16);
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(pod.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    // A finished refresh asks for a reconcile of its connection, which writes it into status.
    let (finished, mut refreshed) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let lease_client = client.clone();
    let context = Arc::new(Context {
        client: client.clone(),
        kafka: RdKafka,
        api_timeout: API_TIMEOUT,
        agents,
        recorder,
        metrics,
        refreshes: Arc::new(task::Registry::new(options.refreshes, finished)),
        shard_bytes: options.shard_bytes,
        refresh_timeout: options.refresh_timeout,
    });
    // Each test holds a Kafka client (a few threads) for its duration: `concurrency` bounds how many
    // run at once across every watch.
    let slots = Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency)));
    let watches: Vec<Watch> = scopes
        .iter()
        .map(|scope| {
            Watch::new(
                &client,
                scope.as_deref(),
                concurrency,
                secret_watch,
                membership_tx.subscribe(),
            )
        })
        .collect();
    let (live_agents, live_metrics) = (context.agents.clone(), context.metrics.clone());
    tokio::spawn(async move {
        while membership.recv().await.is_some() {
            live_metrics
                .agents_live
                .set(live_agents.live().len() as i64);
            let _ = membership_tx.send(());
        }
    });
    // A finished refresh goes to the watch of its namespace.
    let routes: Vec<(
        Option<String>,
        tokio::sync::mpsc::UnboundedSender<ObjectRef<Guarded>>,
    )> = watches
        .iter()
        .map(|w| (w.namespace.clone(), w.refreshed_tx.clone()))
        .collect();
    tokio::spawn(async move {
        while let Some((ns, name)) = refreshed.recv().await {
            if let Some((_, tx)) = routes
                .iter()
                .find(|(scope, _)| scope.as_deref().is_none_or(|s| s == ns))
            {
                let _ = tx.send(ObjectRef::<Guarded>::new(&name).within(&ns));
            }
        }
    });
    let stores: Vec<_> = watches.iter().map(|w| w.controller.store()).collect();
    let synced = stores.clone();
    tokio::spawn(async move {
        // False: a watch stopped before its first sync.
        for store in &synced {
            if !crate::watch::synced(store).await {
                return;
            }
        }
        ready.store(true, Ordering::Relaxed);
        info!("watches synced; ready");
    });
    // A deleted connection gets no reconcile: what this process remembers of it (its Ready gauge, a
    // refresh result) is dropped by comparing with the watches' stores now and then.
    let janitor = context.clone();
    tokio::spawn(async move {
        for store in &stores {
            if !crate::watch::synced(store).await {
                return;
            }
        }
        let mut tick = tokio::time::interval(JANITOR_PERIOD);
        loop {
            tick.tick().await;
            let state: Vec<Arc<Guarded>> = stores.iter().flat_map(|s| s.state()).collect();
            let keys: std::collections::HashSet<String> = state
                .iter()
                .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
                .collect();
            let uids: std::collections::HashSet<String> =
                state.iter().filter_map(|c| c.uid()).collect();
            janitor.metrics.retain_ready(|key| keys.contains(key));
            janitor.refreshes.retain(|uid| uids.contains(uid));
        }
    });
    info!(
        namespaces = %scopes.iter().map(|s| s.as_deref().unwrap_or("all")).collect::<Vec<_>>().join(","),
        secret_watch,
        "kconn controller starting"
    );
    futures::future::join_all(
        watches
            .into_iter()
            .map(|w| w.run(context.clone(), slots.clone())),
    )
    .await;
    lease::release(lease_client, &options.lease_namespace, &me).await;
    info!("kconn controller stopped");
    Ok(())
}

/// The controller of one scope (a namespace, or all of them) and what triggers its reconciles.
struct Watch {
    namespace: Option<String>,
    controller: Controller<Guarded>,
    secrets: Option<Api<PartialObjectMeta<Secret>>>,
    refreshed_tx: tokio::sync::mpsc::UnboundedSender<ObjectRef<Guarded>>,
    refreshed: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<Guarded>>,
    membership: tokio::sync::broadcast::Receiver<()>,
}

impl Watch {
    fn new(
        client: &Client,
        namespace: Option<&str>,
        concurrency: u16,
        secret_watch: bool,
        membership: tokio::sync::broadcast::Receiver<()>,
    ) -> Self {
        // Secrets are watched by metadata only: the operator never receives their data through the
        // watch (it reads the few a connection references when it tests it), and a cluster's
        // Secrets cost it little memory. Without the watch, a rotation is seen at the next test.
        let (connections, secrets): (Api<Guarded>, Api<PartialObjectMeta<Secret>>) = match namespace
        {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let controller = Controller::new(connections, watcher::Config::default())
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
        let (refreshed_tx, refreshed) = tokio::sync::mpsc::unbounded_channel();
        Self {
            namespace: namespace.map(str::to_string),
            controller,
            secrets: secret_watch.then_some(secrets),
            refreshed_tx,
            refreshed,
            membership,
        }
    }

    async fn run(self, context: Arc<Context>, slots: Arc<tokio::sync::Semaphore>) {
        let store = self.controller.store();
        // A Secret change re-tests the connections in its namespace that reference it.
        let secret_changes = match self.secrets {
            Some(secrets) => crate::watch::secret_changes(
                watcher(secrets, watcher::Config::default()).default_backoff(),
            )
            .flat_map(move |(ns, name)| {
                futures::stream::iter(
                    store
                        .state()
                        .into_iter()
                        .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
                        .filter(
                            |c| matches!(&c.0, Ok(conn) if conn.spec.secret_names().contains(&name)),
                        )
                        .map(|c| ObjectRef::from_obj(&*c))
                        .collect::<Vec<_>>(),
                )
            })
            .boxed(),
            None => futures::stream::pending().boxed(),
        };
        let refreshed = futures::stream::unfold(self.refreshed, |mut rx| async move {
            Some((rx.recv().await?, rx))
        });
        // A lagged receiver missed changes: reconciling all once covers them.
        let membership = futures::stream::unfold(self.membership, |mut rx| async move {
            match rx.recv().await {
                Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            }
        });
        self.controller
            .reconcile_on(secret_changes)
            .reconcile_on(refreshed)
            // Membership changed: every connection's owner is decided again.
            .reconcile_all_on(membership)
            .shutdown_on_signal()
            .run(
                move |obj, ctx| {
                    let slots = slots.clone();
                    async move {
                        let _slot = slots.acquire_owned().await;
                        reconcile(obj, ctx).await
                    }
                },
                error_policy,
                context,
            )
            .for_each(|result| async move {
                if let Err(e) = result {
                    warn!(error = %e, "reconcile failed");
                }
            })
            .await;
    }
}

/// The facts of a status written without a test: the Secrets observed stay those of the last test.
fn untested_facts(conn: &KafkaConnection, tested_by: TestedBy) -> status::Facts {
    status::Facts {
        generation: conn.metadata.generation,
        now: now(),
        tested_by,
        observed_secrets: conn
            .status
            .as_ref()
            .map(|s| s.observed_secrets.clone())
            .unwrap_or_default(),
        handled_request: None,
    }
}

/// After an error: count it and try again in 15 s.
pub fn error_policy<K: Kafka>(_obj: Arc<Guarded>, error: &Error, ctx: Arc<Context<K>>) -> Action {
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabel {
            result: "error".into(),
        })
        .inc();
    warn!(category = error.category(), error = %error, "requeueing after an error");
    Action::requeue(Duration::from_secs(15))
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Runs an API call within the context's timeout.
async fn bounded<T>(
    ctx: &Context<impl Kafka>,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(ctx.api_timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::Timeout(ctx.api_timeout)),
    }
}

async fn write_status(
    ctx: &Context<impl Kafka>,
    ns: &str,
    name: &str,
    status: &KafkaConnectionStatus,
) -> Result<(), Error> {
    let api: Api<KafkaConnection> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"apiVersion": API_VERSION, "kind": KIND, "status": status});
    ctx.metrics.api("status_patch", 1);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    bounded(ctx, api.patch_status(name, &params, &Patch::Apply(&patch))).await?;
    Ok(())
}

/// One reconcile: fetch the Secrets, decide, test when due, write the status once.
pub async fn reconcile<K: Kafka + 'static>(
    obj: Arc<Guarded>,
    ctx: Arc<Context<K>>,
) -> Result<Action, Error> {
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = obj.name_any();
    let me = ctx.agents.me();
    let tested_by = TestedBy {
        agent: me.pool.clone(),
        pod: me.identity.clone(),
    };
    // Who handles it: only its owner tests it and writes its status.
    let uid = obj.uid().unwrap_or_default();
    let pool = match &obj.0 {
        Ok(conn) => conn.spec.agent.as_ref().map(|a| a.name.as_str()),
        Err(_) => None,
    };
    match ctx.agents.assignment(&uid, pool) {
        Assignment::Mine => {}
        Assignment::Other(_) | Assignment::NoAgentElsewhere => {
            ctx.metrics.set_ready(&format!("{ns}/{name}"), None);
            ctx.refreshes.forget(&uid);
            ctx.metrics
                .reconciles
                .get_or_create(&ResultLabel {
                    result: "not_owned".into(),
                })
                .inc();
            return Ok(Action::await_change());
        }
        Assignment::ReportNoAgent { live_pools } => {
            ctx.metrics.set_ready(&format!("{ns}/{name}"), None);
            if let Ok(conn) = &obj.0 {
                let facts = untested_facts(conn, tested_by);
                let next = status::no_agent(
                    conn.status.as_ref(),
                    pool.unwrap_or_default(),
                    &live_pools,
                    facts,
                );
                if conn.status.as_ref().map(|p| &p.conditions) != Some(&next.conditions) {
                    if let Some(event) = status::ready_transition(conn.status.as_ref(), &next) {
                        publish(&ctx, conn, event).await;
                    }
                    write_status(&ctx, &ns, &name, &next).await?;
                }
            }
            return Ok(Action::await_change());
        }
    }
    let conn = match &obj.0 {
        Ok(conn) => conn,
        Err(invalid) => {
            // Reported on the object itself; the watch and the other objects go on.
            // Read untyped: the object is exactly what this version cannot read as a KafkaConnection.
            let resource = kube::api::ApiResource::erase::<KafkaConnection>(&());
            let api = Api::<kube::api::DynamicObject>::namespaced_with(
                ctx.client.clone(),
                &ns,
                &resource,
            );
            ctx.metrics.api("status_get", 1);
            let prev: Option<KafkaConnectionStatus> = bounded(&ctx, api.get_status(&name))
                .await?
                .data
                .get("status")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok());

            let facts = status::Facts {
                generation: invalid.metadata.generation,
                now: now(),
                tested_by,
                observed_secrets: vec![],
                handled_request: None,
            };
            let next = status::invalid_object(prev.as_ref(), &invalid.error, facts);
            if prev.as_ref().map(|p| &p.conditions) != Some(&next.conditions) {
                write_status(&ctx, &ns, &name, &next).await?;
            }
            return Ok(Action::await_change());
        }
    };
    if conn.spec.suspend {
        ctx.metrics
            .reconciles
            .get_or_create(&ResultLabel {
                result: "suspended".into(),
            })
            .inc();
        let facts = untested_facts(conn, tested_by);
        let next = status::suspended(conn.status.as_ref(), &facts);
        if conn.status.as_ref() != Some(&next) {
            write_status(&ctx, &ns, &name, &next).await?;
        }
        return Ok(Action::await_change());
    }

    ctx.metrics
        .api("secret_get", conn.spec.secret_names().len() as u64);
    let secrets = bounded(
        &ctx,
        SecretStore::fetch(&ctx.client, &ns, &conn.spec.secret_names()),
    )
    .await?;
    let observed_secrets = secrets.observed();
    // Validated once: the interval schedules the test, the rest schedules the model refresh.
    let valid = validate::validate(&conn.spec).ok();
    let interval = valid
        .as_ref()
        .map_or(Duration::from_secs(300), |v| v.interval);
    let requested = conn
        .annotations()
        .get(TEST_REQUESTED_AT)
        .map(String::as_str);
    let time = now();
    let decision = schedule::decide(
        &schedule::Observed {
            generation: conn.metadata.generation,
            status: conn.status.as_ref(),
            requested,
            secrets: &observed_secrets,
            interval,
            timeout: valid
                .as_ref()
                .map_or(Duration::from_secs(30), |v| v.timeout),
            key: &uid,
        },
        &time,
    );
    let done = ctx.refreshes.take_done(&uid);
    let prev = conn.status.as_ref();
    let mut next = match decision.test {
        Some(trigger) => {
            info!(namespace = %ns, name = %name, ?trigger, "testing");
            let mut facts = status::Facts {
                generation: conn.metadata.generation,
                now: time.clone(),
                tested_by,
                observed_secrets,
                handled_request: requested.map(str::to_string),
            };
            // A new object or generation is announced before its test (Reconciling=True), so that
            // kstatus never calls it current before it was tested; other tests write once.
            let announced = if trigger == schedule::Trigger::SpecChanged {
                let testing = status::testing(prev, &facts);
                write_status(&ctx, &ns, &name, &testing).await?;
                Some(testing)
            } else {
                None
            };
            let report = test(&ctx, conn, &secrets, &ns, &name).await;
            facts.now = now();
            status::after_test(announced.as_ref().or(prev), &report, facts)
        }
        None => prev.cloned().unwrap_or_default(),
    };
    let tested = decision.test.is_some();
    if let (Some(done), Some(valid)) = (&done, &valid) {
        status::after_refresh(
            &mut next,
            done,
            &conn.spec.models,
            valid.refresh_at,
            valid.time_zone,
        );
        let (_, reason, _) = models::refresh::condition_after(done);
        ctx.metrics
            .refreshes
            .get_or_create(&ResultLabel {
                result: reason.into(),
            })
            .inc();
        if let Ok(w) = &done.result {
            ctx.metrics.catalog_bytes_written.inc_by(w.bytes_written);
        }
        info!(namespace = %ns, name = %name, reason, "model refresh finished");
    }
    let next_refresh = match &valid {
        Some(valid) => refresh_models(&ctx, conn, &secrets, valid, &mut next),
        None => None,
    };

    if tested {
        if let Some(event) = status::ready_transition(prev, &next) {
            publish(&ctx, conn, event).await;
        }
    }
    let ready_now = next
        .conditions
        .iter()
        .find(|c| c.type_ == status::condition::READY)
        .map_or("Unknown", |c| c.status.as_str());
    ctx.metrics
        .set_ready(&format!("{ns}/{name}"), Some(ready_now));
    // After a Reconciling=True write the test's outcome is always written.
    let announced = decision.test == Some(schedule::Trigger::SpecChanged);
    let write = if announced {
        true
    } else if tested && done.is_none() {
        !status::is_noop(
            prev,
            &next,
            &next.last_test_time.clone().unwrap_or_else(now),
            interval,
        )
    } else {
        prev != Some(&next)
    };
    if write {
        write_status(&ctx, &ns, &name, &next).await?;
    }
    if !tested {
        ctx.metrics
            .reconciles
            .get_or_create(&ResultLabel {
                result: "waited".into(),
            })
            .inc();
    }
    let requeue = schedule::decide(
        &schedule::Observed {
            generation: conn.metadata.generation,
            status: Some(&next),
            requested,
            secrets: &next.observed_secrets,
            interval,
            timeout: valid
                .as_ref()
                .map_or(Duration::from_secs(30), |v| v.timeout),
            key: &uid,
        },
        &now(),
    );
    let mut after = requeue.requeue_after.max(Duration::from_secs(1));
    if let Some(at) = next_refresh {
        let until = (at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        after = after.min(until);
    }
    Ok(Action::requeue(after))
}

/// Runs the connection test and records its metrics.
async fn test<K: Kafka>(
    ctx: &Context<K>,
    conn: &KafkaConnection,
    secrets: &SecretStore,
    ns: &str,
    name: &str,
) -> checks::TestReport {
    let input = checks::TestInput {
        spec: &conn.spec,
        shape_problems: &[],
        secrets,
        now: std::time::SystemTime::now(),
        group_id: checks::group_id(&conn.spec, ns, name),
    };
    let report = checks::run(&input, &ctx.kafka).await;
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabel {
            result: "tested".into(),
        })
        .inc();
    for row in &report.checks {
        ctx.metrics
            .check_duration
            .get_or_create(&CheckLabel {
                check: row.name.clone(),
            })
            .observe(row.duration_ms as f64 / 1000.0);
        if row.reason == crate::api::reason::AUTHENTICATION_FAILED {
            ctx.metrics.failed_logins.inc();
        }
    }
    report
}

/// Publishes the Event of a Ready transition. An Event that cannot be published is not worth failing
/// the reconcile for.
async fn publish<K: Kafka>(ctx: &Context<K>, conn: &KafkaConnection, event: status::ReadyEvent) {
    let ev = Event {
        type_: if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: event.reason,
        note: Some(event.note.chars().take(1000).collect()),
        action: "Test".into(),
        secondary: None,
    };
    ctx.metrics.api("event_create", 1);
    if let Err(e) = ctx.recorder.publish(&ev, &conn.object_ref(&())).await {
        warn!(namespace = ?conn.namespace(), name = %conn.name_any(), error = %e, "cannot publish an Event");
    }
}

/// Starts a model refresh when one is due and the connection can list its topics; notes in
/// `ModelsLoaded` why not otherwise. Returns when the next refresh is due, if it is scheduled.
fn refresh_models<K: Kafka + 'static>(
    ctx: &Arc<Context<K>>,
    conn: &KafkaConnection,
    secrets: &SecretStore,
    valid: &validate::ValidSpec,
    next: &mut KafkaConnectionStatus,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let uid = conn.uid().unwrap_or_default();
    let due = models::refresh::due(
        &models::refresh::Observed {
            settings: &conn.spec.models,
            generation: conn.metadata.generation,
            status: next.models.as_ref(),
            requested: conn
                .annotations()
                .get(REFRESH_REQUESTED_AT)
                .map(String::as_str),
            handled: next.last_handled_refresh_request.as_deref(),
            refresh_at: valid.refresh_at,
            time_zone: valid.time_zone,
        },
        chrono::Utc::now(),
    );
    let time = now();
    let models_condition = |next: &KafkaConnectionStatus| {
        next.conditions
            .iter()
            .find(|c| c.type_ == status::condition::MODELS_LOADED)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    match due {
        models::refresh::Due::At(at) => Some(at),
        models::refresh::Due::Suspended => {
            let kept = models_condition(next).map_or("Unknown".to_string(), |(s, _)| s);
            status::set_models_condition(
                next,
                &kept,
                models::refresh::reason::SUSPENDED,
                "model refreshing is paused by spec.models.suspend; the catalog is kept as it is"
                    .into(),
                &time,
                conn.metadata.generation,
            );
            None
        }
        models::refresh::Due::Now { request } => {
            let topics_listed = next
                .conditions
                .iter()
                .any(|c| c.type_ == status::condition::TOPICS_RESOLVED && c.status == "True");
            if !topics_listed {
                if models_condition(next).map(|(_, r)| r).as_deref()
                    != Some(models::refresh::reason::DEPENDENCY_FAILED)
                {
                    status::set_models_condition(
                        next,
                        "Unknown",
                        models::refresh::reason::DEPENDENCY_FAILED,
                        "waiting for the connection test to list the topics (TopicsResolved); the catalog is kept as it is".into(),
                        &time,
                        conn.metadata.generation,
                    );
                }
                return None;
            }
            let job = task::Job {
                owner: models::store::Owner {
                    namespace: conn.namespace().unwrap_or_default(),
                    name: conn.name_any(),
                    uid: uid.clone(),
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
            let started = ctx.refreshes.start(&uid, key, async move {
                task::run(job, &run_ctx.kafka, run_ctx.client.clone()).await
            });
            if started {
                info!(namespace = ?conn.namespace(), name = %conn.name_any(), "model refresh started");
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! The API-error paths of reconcile, against a mocked API server (tower-test): the status write
    //! answered with 409 and 500, or never answered.
    use super::*;
    use crate::kafka::{ClusterView, Fake};
    use ::http::{Request, Response};
    use kube::client::Body;

    type ApiHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn context(api_timeout: Duration) -> (Arc<Context<Fake>>, ApiHandle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        );
        let ctx = Context {
            client,
            kafka: Fake(Ok(ClusterView::default())),
            api_timeout,
            agents: Arc::new(lease::Agent::alone(agents::Member {
                identity: "p".into(),
                pool: "default".into(),
            })),
            recorder,
            metrics: Arc::new(Metrics::default()),
            refreshes: Arc::new(task::Registry::new(
                1,
                tokio::sync::mpsc::unbounded_channel().0,
            )),
            shard_bytes: models::catalog::MAX_SHARD_BYTES,
            refresh_timeout: Duration::from_secs(5),
        };
        (Arc::new(ctx), handle)
    }

    /// A connection to a loopback listener (reachable), never tested before.
    fn object(bootstrap: &str) -> Arc<Guarded> {
        let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "orders", "namespace": "team", "uid": "u-1", "generation": 1},
            "spec": {"role": "Source", "bootstrapServers": [bootstrap], "topics": {"expression": "x"},
                     "models": {"suspend": true}}
        }))
        .unwrap();
        Arc::new(DeserializeGuard(Ok(conn)))
    }

    /// Runs one reconcile; the mocked API answers each status write with `code` (None: never) and
    /// the requests are returned in order.
    async fn reconcile_with(
        code: Option<u16>,
        api_timeout: Duration,
    ) -> (Result<Action, Error>, Vec<Request<Body>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let obj = object(&listener.local_addr().unwrap().to_string());
        let (ctx, mut handle) = context(api_timeout);
        let mut run = tokio::spawn(reconcile(obj, ctx));
        let mut requests = Vec::new();
        let mut pending = Vec::new();
        loop {
            tokio::select! {
                result = &mut run => return (result.unwrap(), requests),
                next = handle.next_request() => {
                    let Some((request, send)) = next else { continue };
                    requests.push(request);
                    match code {
                        Some(code) => {
                            let body = if code == 200 {
                                serde_json::json!({"apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
                                    "metadata": {"name": "orders", "namespace": "team"},
                                    "spec": {"bootstrapServers": ["a:1"], "topics": {"expression": "x"}}})
                            } else {
                                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "nope", "reason": "Conflict", "code": code})
                            };
                            send.send_response(
                                Response::builder()
                                    .status(code)
                                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                                    .unwrap(),
                            );
                        }
                        // Never answered: kept open until the reconcile gives up.
                        None => pending.push(send),
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn a_new_object_is_announced_then_its_outcome_written_by_server_side_apply() {
        let (result, requests) = reconcile_with(Some(200), API_TIMEOUT).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(requests.len(), 2, "Reconciling=True, then the outcome");
        let mut bodies = Vec::new();
        for request in requests {
            assert_eq!(request.method(), ::http::Method::PATCH);
            let uri = request.uri().to_string();
            assert!(
                uri.contains("/namespaces/team/kafkaconnections/orders/status"),
                "{uri}"
            );
            assert!(
                uri.contains("fieldManager=kconn") && uri.contains("force=true"),
                "{uri}"
            );
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            let body = request.into_body().collect_bytes().await.unwrap();
            bodies.push(String::from_utf8(body.to_vec()).unwrap());
        }
        let reconciling = |body: &str| {
            let v: serde_json::Value = serde_yaml::from_str(body).unwrap();
            let c = v["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Reconciling")
                .unwrap()
                .clone();
            (
                v["status"]["observedGeneration"].clone(),
                c["status"].clone(),
            )
        };
        assert_eq!(
            reconciling(&bodies[0]),
            (1.into(), "True".into()),
            "{}",
            bodies[0]
        );
        assert_eq!(
            reconciling(&bodies[1]),
            (1.into(), "False".into()),
            "{}",
            bodies[1]
        );
    }

    #[tokio::test]
    async fn conflicts_and_server_errors_are_errors_that_requeue() {
        for code in [409, 500] {
            let (result, _) = reconcile_with(Some(code), API_TIMEOUT).await;
            let error = result.expect_err("an API error is our machinery failing");
            assert!(
                matches!(&error, Error::Kube(kube::Error::Api(s)) if s.code == code),
                "{error:?}"
            );
            assert_eq!(error.category(), "KubeApi");
            let (ctx, _handle) = context(API_TIMEOUT);
            assert_eq!(
                error_policy(object("a:1"), &error, ctx.clone()),
                Action::requeue(Duration::from_secs(15))
            );
            assert!(ctx
                .metrics
                .encode()
                .contains("kconn_reconciles_total{result=\"error\"} 1"));
        }
    }

    #[tokio::test]
    async fn an_api_server_that_never_answers_times_out() {
        let (result, _) = reconcile_with(None, Duration::from_millis(200)).await;
        let error = result.expect_err("a hung API call must not hang the reconcile");
        assert!(matches!(error, Error::Timeout(_)), "{error:?}");
        assert_eq!(error.category(), "KubeTimeout");
    }
}
