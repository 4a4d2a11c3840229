//! `kconn run`: wiring of the KafkaConnection controller: the watches, the agents, the HTTP
//! endpoints and what triggers a reconcile. A reconcile is a pipeline ([`reconcile`]) whose
//! decisions are pure functions ([`plan`]); status is written once, by server-side apply on the
//! status subresource.

mod plan;
mod reconcile;

pub use reconcile::reconcile;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::agents::{self, lease};
use crate::api::{KafkaConnection, MANAGER};
use crate::http::{self, Metrics, ResultLabel};
use crate::kafka::{Kafka, RdKafka};
use crate::models::task;

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
    /// Read once per reconcile.
    pub clock: fn() -> Time,
    /// Versions of each connection that this process's own writes made old.
    pub superseded: Superseded,
    /// What this process last wrote into each connection's binding Secret.
    pub published: Published,
    /// When this process last tested each connection.
    pub tested: Tested,
    /// When this process started: a healthy connection overdue then is tested at its first place in
    /// the interval after it, not at once.
    pub started: Time,
    /// Tests running at once, across every watch (`--concurrency`): each holds a Kafka client, a
    /// few threads, for its duration.
    pub slots: Arc<tokio::sync::Semaphore>,
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
            Error::NoNamespace => crate::api::Reason::InvalidObject.as_str(),
            Error::Agent(_) => "Agent",
            Error::Http(_) => "Http",
        }
    }
}

/// Reconciles in flight per test slot: a reconcile waiting for its cluster's turn (at most
/// a second, see `reconcile::DEFER_OVER`) or for a slot holds no slot meanwhile.
const RECONCILES_PER_SLOT: u16 = 4;

/// How often what is remembered of deleted connections is dropped.
const JANITOR_PERIOD: Duration = Duration::from_secs(10);

/// A KafkaConnection, or what could not be read of it.
pub type Guarded = DeserializeGuard<KafkaConnection>;

/// The annotation in which `kubectl apply` keeps the whole object it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched object what reconcile never reads: its managedFields and kubectl's
/// last-applied copy of it. For 10,000 connections applied with kubectl or by GitOps tools, these
/// are most of the bytes the watch cache would hold.
pub(crate) fn slim(obj: &mut Guarded) {
    use kube::Resource;
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
    // The rows of the last test, most of a status's bytes, are kept as a digest.
    if let Ok(conn) = &mut obj.0 {
        if let Some(status) = &mut conn.status {
            crate::status::elide_checks(status);
        }
    }
}

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
        controller: MANAGER.into(),
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
        clock: system_clock,
        superseded: Superseded::default(),
        published: Published::default(),
        tested: Tested::default(),
        started: system_clock(),
        slots: Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency))),
    });
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
            {
                let state: Vec<Arc<Guarded>> = stores.iter().flat_map(|s| s.state()).collect();
                let keys: std::collections::HashSet<String> = state
                    .iter()
                    .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
                    .collect();
                let uids: std::collections::HashSet<String> =
                    state.iter().filter_map(|c| c.uid()).collect();
                janitor.metrics.retain_ready(|key| keys.contains(key));
                janitor.refreshes.retain(|uid| uids.contains(uid));
                janitor.superseded.retain(|uid| uids.contains(uid));
                janitor.published.retain(|uid| uids.contains(uid));
                janitor.tested.retain(|uid| uids.contains(uid));
                crate::budget::global().retain(|uid| uids.contains(uid));
            }
            // What the burst of tests at start-up freed goes back to the system.
            crate::http::trim_heap();
        }
    });
    info!(
        namespaces = %scopes.iter().map(|s| s.as_deref().unwrap_or("all")).collect::<Vec<_>>().join(","),
        secret_watch,
        broker_connection_rate = crate::budget::global().limits().rate,
        cluster_tests = crate::budget::global().limits().tests,
        "kconn controller starting"
    );
    futures::future::join_all(watches.into_iter().map(|w| w.run(context.clone()))).await;
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
        // The cache keeps only what reconcile reads: managedFields and kubectl's last-applied copy
        // of the object (often larger than the spec itself) are dropped as objects arrive.
        let (store, writer) = kube::runtime::reflector::store();
        let objects = kube::runtime::reflector(
            writer,
            watcher(connections, watcher::Config::default()).modify(slim),
        )
        .applied_objects();
        // Reconciles that only look cost little; those that test wait for their cluster's turn and
        // then for one of the `concurrency` test slots (Context::slots).
        let controller = Controller::for_stream(objects, store).with_config(
            kube::runtime::controller::Config::default()
                .concurrency(concurrency.saturating_mul(RECONCILES_PER_SLOT)),
        );
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

    async fn run(self, context: Arc<Context>) {
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
            .run(reconcile, error_policy, context)
            .for_each(|result| async move {
                if let Err(e) = result {
                    warn!(error = %e, "reconcile failed");
                }
            })
            .await;
    }
}

/// After an error: count it, and try again in 15 s, unless no retry can help (an object without a
/// namespace: its next change brings it back).
pub fn error_policy<K: Kafka>(_obj: Arc<Guarded>, error: &Error, ctx: Arc<Context<K>>) -> Action {
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabel {
            result: "error".into(),
        })
        .inc();
    warn!(category = error.category(), error = %error, "reconcile failed");
    match error {
        Error::NoNamespace => Action::await_change(),
        Error::Kube(_) | Error::Timeout(_) | Error::Agent(_) | Error::Http(_) => {
            Action::requeue(Duration::from_secs(15))
        }
    }
}

/// The system clock: what [`Context::clock`] holds outside tests.
pub fn system_clock() -> Time {
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

/// What this process remembers of each connection, by uid; the janitor drops what belongs to
/// deleted connections.
#[derive(Debug)]
pub struct PerConnection<T>(std::sync::Mutex<std::collections::HashMap<String, T>>);

impl<T> Default for PerConnection<T> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<T: Clone> PerConnection<T> {
    fn get(&self, uid: &str) -> Option<T> {
        self.0
            .lock()
            .expect("per-connection lock")
            .get(uid)
            .cloned()
    }

    fn remember(&self, uid: &str, value: T) {
        self.0
            .lock()
            .expect("per-connection lock")
            .insert(uid.to_string(), value);
    }

    fn forget(&self, uid: &str) {
        self.0.lock().expect("per-connection lock").remove(uid);
    }

    fn retain(&self, live: impl Fn(&str) -> bool) {
        self.0
            .lock()
            .expect("per-connection lock")
            .retain(|uid, _| live(uid));
    }
}

/// The resourceVersions of each connection that this process's own status writes made old: a
/// reconcile that reads one of them reads a cache that has not caught up with what this process
/// wrote, and decides nothing from it. Exact (resourceVersions are only compared for equality), and
/// bounded: at most two per connection (the one read, and the announcement's).
pub type Superseded = PerConnection<Vec<String>>;

impl Superseded {
    fn contains(&self, uid: &str, resource_version: Option<&str>) -> bool {
        resource_version
            .is_some_and(|rv| self.get(uid).is_some_and(|old| old.iter().any(|o| o == rv)))
    }

    /// After writes that took the object from `read` through `between` to `latest`.
    fn record(&self, uid: &str, read: Option<String>, between: Option<String>, latest: &str) {
        let old = [read, between]
            .into_iter()
            .flatten()
            .filter(|rv| rv != latest)
            .collect();
        self.remember(uid, old);
    }
}

/// When this process last tested each connection: the schedule runs from it, since a test that
/// changed nothing is not written into `status.lastTestTime`. A restart loses it, and each connection
/// is then tested at its next place in the interval (`schedule::next_slot`), not all at once.
pub type Tested = PerConnection<Time>;

/// A fingerprint of the binding Secret this process last wrote, per connection: a passing test that
/// changed nothing writes nothing. In memory only; a restart writes each binding once.
pub type Published = PerConnection<u64>;

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
                controller: MANAGER.into(),
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
            shard_bytes: crate::models::catalog::MAX_SHARD_BYTES,
            refresh_timeout: Duration::from_secs(5),
            clock: system_clock,
            superseded: Superseded::default(),
            published: Published::default(),
            tested: Tested::default(),
            started: system_clock(),
            slots: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        (Arc::new(ctx), handle)
    }

    #[test]
    fn the_watch_cache_keeps_only_what_reconcile_reads() {
        let mut obj: Guarded = serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "c", "namespace": "n",
                "annotations": {LAST_APPLIED: "{\"spec\": \"...\"}", "kconn.dev/test-requested-at": "now"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}}}]},
            "spec": {"bootstrapServers": ["k:9092"], "topics": {"expression": "t"}}
        }))
        .unwrap();
        slim(&mut obj);
        use kube::Resource;
        let meta = obj.meta();
        assert!(meta.managed_fields.is_none());
        let annotations = meta.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations["kconn.dev/test-requested-at"], "now");
        assert!(obj.0.is_ok(), "the spec is untouched");
        // An object this version cannot read keeps its name and loses the same fields.
        let mut bad: Guarded = serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "b", "namespace": "n", "managedFields": [{"manager": "x"}]},
            "spec": {"bootstrapServers": 7}
        }))
        .unwrap();
        slim(&mut bad);
        assert!(bad.0.is_err());
        assert!(bad.meta().managed_fields.is_none());
        assert_eq!(bad.meta().name.as_deref(), Some("b"));
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
        // No retry mends an object without a namespace: its next change brings it back.
        let (ctx, _handle) = context(API_TIMEOUT);
        assert_eq!(
            error_policy(object("a:1"), &Error::NoNamespace, ctx),
            Action::await_change()
        );
    }

    #[tokio::test]
    async fn an_unreadable_object_is_read_untyped_then_reported_once() {
        let invalid = kube::core::error_boundary::InvalidObject {
            error: "unknown variant `Sauce`, expected one of `Source`, `Sink`, `Both`".into(),
            metadata: kube::api::ObjectMeta {
                name: Some("orders".into()),
                namespace: Some("team".into()),
                uid: Some("u-2".into()),
                generation: Some(3),
                resource_version: Some("7".into()),
                ..Default::default()
            },
        };
        let (ctx, mut handle) = context(API_TIMEOUT);
        let run = tokio::spawn(reconcile(
            Arc::new(DeserializeGuard(Err(invalid))),
            ctx.clone(),
        ));
        // What the API server holds: an object this version cannot read, with no status yet.
        let stored = serde_json::json!({"apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "orders", "namespace": "team", "uid": "u-2", "resourceVersion": "7"},
            "spec": {"role": "Sauce"}});
        let (get, send) = handle.next_request().await.expect("the status is read");
        assert_eq!(get.method(), ::http::Method::GET);
        assert!(get
            .uri()
            .path()
            .ends_with("/kafkaconnections/orders/status"));
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&stored).unwrap()))
                .unwrap(),
        );
        let (patch, send) = handle.next_request().await.expect("the status is written");
        assert_eq!(patch.method(), ::http::Method::PATCH);
        let body = patch.into_body().collect_bytes().await.unwrap();
        let written: serde_json::Value = serde_yaml::from_slice(&body).unwrap();
        let stalled = written["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Stalled")
            .unwrap()
            .clone();
        assert_eq!(stalled["status"], "True");
        assert_eq!(stalled["reason"], "InvalidObject");
        assert!(stalled["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `Sauce`"));
        let mut answered = stored.clone();
        answered["metadata"]["resourceVersion"] = "8".into();
        answered["status"] = written["status"].clone();
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&answered).unwrap()))
                .unwrap(),
        );
        assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
        // Read again from a cache that still holds version 7: nothing is read or written.
        let again = kube::core::error_boundary::InvalidObject {
            error: "unknown variant `Sauce`".into(),
            metadata: kube::api::ObjectMeta {
                name: Some("orders".into()),
                namespace: Some("team".into()),
                uid: Some("u-2".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
        };
        let result = reconcile(Arc::new(DeserializeGuard(Err(again))), ctx).await;
        assert_eq!(result.unwrap(), Action::requeue(plan::CACHE_BEHIND_RETRY));
    }

    #[test]
    fn versions_made_old_by_its_own_writes_are_known_until_the_next_write() {
        let old = Superseded::default();
        assert!(!old.contains("u", Some("1")));
        // Read at 1, announced at 2, outcome at 3: 1 and 2 are old, 3 is not.
        old.record("u", Some("1".into()), Some("2".into()), "3");
        assert!(old.contains("u", Some("1")) && old.contains("u", Some("2")));
        assert!(!old.contains("u", Some("3")) && !old.contains("u", None));
        assert!(!old.contains("v", Some("1")), "per connection");
        // A write that changed nothing (the same version back) makes nothing old.
        old.record("u", Some("3".into()), None, "3");
        assert!(!old.contains("u", Some("3")) && !old.contains("u", Some("1")));
        old.forget("u");
        assert!(!old.contains("u", Some("3")));
    }

    #[tokio::test]
    async fn an_api_server_that_never_answers_times_out() {
        let (result, _) = reconcile_with(None, Duration::from_millis(200)).await;
        let error = result.expect_err("a hung API call must not hang the reconcile");
        assert!(matches!(error, Error::Timeout(_)), "{error:?}");
        assert_eq!(error.category(), "KubeTimeout");
    }
}
