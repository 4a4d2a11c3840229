//! Everything that talks to Kafka through librdkafka, behind the small [`Kafka`] trait so the check
//! engine can be tested without a broker.

pub mod api_versions;
pub mod ffi;
pub mod probe;
pub mod sample;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use serde::{Deserialize, Serialize};

use crate::api::{SaslMechanism, TopicSelector};
use crate::kerberos::{KerberosEnv, KerberosMaterial};
use crate::secrets::{Redactor, SecretBytes};
use crate::topics::TopicMatcher;

/// How to reach and authenticate to a cluster: the librdkafka settings of one connection.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `host:port` entries.
    pub bootstrap: Vec<String>,
    /// SASL mechanism and credentials.
    pub sasl: Option<SaslCredentials>,
    /// TLS, when the listener is encrypted.
    pub tls: Option<TlsMaterial>,
    /// Kerberos (SASL GSSAPI).
    pub kerberos: Option<KerberosMaterial>,
    /// Where this connection's Kerberos files are, once written (see [`crate::kerberos::KerberosFiles`]).
    pub kerberos_env: Option<KerberosEnv>,
    /// SASL OAUTHBEARER with librdkafka's OIDC client-credentials flow.
    pub oauth: Option<OAuthMaterial>,
    /// The schema registry (`spec.schemaRegistry`), for the registry check and the models.
    pub registry: Option<RegistryMaterial>,
}

/// How to reach the schema registry: its URLs, basic auth and TLS material.
#[derive(Debug, Clone)]
pub struct RegistryMaterial {
    /// The base URLs, in spec order.
    pub urls: Vec<crate::web::Url>,
    /// HTTP basic auth: user name and password.
    pub basic: Option<(SecretBytes, SecretBytes)>,
    /// The CA and client certificate for https.
    pub tls: TlsMaterial,
}

/// What librdkafka's OIDC flow needs: the token URL (with the audience), the client, the extensions
/// and the CA of the token endpoint.
#[derive(Debug, Clone)]
pub struct OAuthMaterial {
    /// The token endpoint, parsed (its `url()` is what librdkafka asks).
    pub endpoint: crate::web::Url,
    /// The client id, secret and scope.
    pub client: crate::oauth::OAuthClient,
    /// SASL extensions, `key=value`.
    pub extensions: Vec<(String, String)>,
    /// The token endpoint's CA bundle; `None` trusts the system roots.
    pub ca_pem: Option<String>,
}

impl OAuthMaterial {
    /// librdkafka's `sasl.oauthbearer.extensions`: `key=value` pairs separated by `,`.
    pub fn extensions_setting(&self) -> Option<String> {
        (!self.extensions.is_empty()).then(|| {
            self.extensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Test material: the client `pipeline` (secret `s"cr=t`, scope `kafka read`), the extension
    /// `logicalCluster=lkc-1`, `url` with `audience`.
    #[cfg(test)]
    pub(crate) fn example(url: &str, audience: Option<&str>, ca_pem: Option<&str>) -> Self {
        OAuthMaterial {
            endpoint: crate::oauth::token_endpoint(url, audience).unwrap(),
            client: crate::oauth::OAuthClient {
                id: SecretBytes::new(b"pipeline".to_vec()),
                secret: SecretBytes::new(b"s\"cr=t".to_vec()),
                scope: Some("kafka read".into()),
            },
            extensions: vec![("logicalCluster".into(), "lkc-1".into())],
            ca_pem: ca_pem.map(str::to_string),
        }
    }
}

/// SASL user and password.
#[derive(Debug, Clone)]
pub struct SaslCredentials {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// User name (treated as secret: it identifies an account).
    pub username: SecretBytes,
    /// Password.
    pub password: SecretBytes,
}

/// TLS material, PEM text.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    /// CA bundle; `None` trusts the system roots.
    pub ca_pem: Option<String>,
    /// Client certificate chain and key, for mTLS.
    pub client: Option<(String, SecretBytes)>,
    /// Name to verify the brokers' certificates against instead of the host (`tls.serverName`).
    pub server_name: Option<String>,
}

impl ClientSettings {
    /// PLAINTEXT settings for `bootstrap`: no SASL, TLS or Kerberos (the others are added to it).
    pub fn plaintext(bootstrap: Vec<String>) -> Self {
        Self {
            bootstrap,
            sasl: None,
            tls: None,
            kerberos: None,
            kerberos_env: None,
            oauth: None,
            registry: None,
        }
    }

    /// The librdkafka `security.protocol`.
    pub fn protocol(&self) -> &'static str {
        match (
            self.sasl.is_some() || self.kerberos.is_some() || self.oauth.is_some(),
            self.tls.is_some(),
        ) {
            (false, false) => "PLAINTEXT",
            (false, true) => "SSL",
            (true, false) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// A redactor that knows every secret in these settings.
    pub fn redactor(&self) -> Redactor {
        let mut r = Redactor::default();
        if let Some(s) = &self.sasl {
            r.add(&s.password);
            r.add(&s.username);
        }
        if let Some((_, key)) = self.tls.as_ref().and_then(|t| t.client.as_ref()) {
            r.add(key);
        }
        if let Some(oauth) = &self.oauth {
            r.add(&oauth.client.secret);
        }
        if let Some((user, password)) = self.registry.as_ref().and_then(|g| g.basic.as_ref()) {
            r.add(password);
            r.add(user);
        }
        r
    }

    /// The librdkafka configuration. It holds secret values: never log or format it.
    pub(crate) fn client_config(&self, timeout: Duration) -> ClientConfig {
        // librdkafka caps socket.timeout.ms at 5 minutes; a longer bound (a refresh) still gets it.
        let ms = timeout.as_millis().clamp(10, 300_000).to_string();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap.join(","))
            .set("security.protocol", self.protocol())
            .set("socket.timeout.ms", &ms)
            .set(
                "socket.connection.setup.timeout.ms",
                timeout
                    .as_millis()
                    .clamp(1000, i32::MAX as u128)
                    .to_string(),
            )
            // librdkafka suppresses a new connection for half of this after the first one; with its
            // default (100 ms) the first metadata answer waits 50 ms for nothing. A failed login is not
            // retried: the probe stops at the first authentication failure.
            .set("reconnect.backoff.ms", "10")
            // Connect to the brokers as soon as they are known instead of on first use: the probe
            // talks to all of them anyway, and the first answer comes about 10 ms sooner.
            .set("enable.sparse.connections", "false")
            .set("reconnect.backoff.max.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "-1")
            // librdkafka accepts answers of up to 100 MB by default; a hostile broker gets less.
            .set("receive.message.max.bytes", MAX_RECEIVE_BYTES)
            .set("log.connection.close", "false");
        // Each broker connection waits for its place in the broker's budget (crate::budget).
        ffi::connect_within_budget(&mut c);
        if let Some(sasl) = &self.sasl {
            c.set("sasl.mechanism", sasl.mechanism.as_str())
                .set(
                    "sasl.username",
                    String::from_utf8_lossy(sasl.username.expose()),
                )
                .set(
                    "sasl.password",
                    String::from_utf8_lossy(sasl.password.expose()),
                );
        }
        if let (Some(krb), Some(paths)) = (&self.kerberos, &self.kerberos_env) {
            // librdkafka's own ticket refresh renders `sasl.kerberos.kinit.cmd` and hands it to
            // system(), a shell. Nothing a tenant controls may ever reach a shell, so that refresh is
            // off (relogin 0: librdkafka never runs the command) and the command is a constant with
            // no `%{...}` substitution. kconn gets the ticket itself, with an argument vector, into
            // this connection's cache (`crate::kerberos::get_ticket`), before every session.
            c.set("sasl.mechanism", "GSSAPI")
                .set("sasl.kerberos.service.name", &krb.service_name)
                .set("sasl.kerberos.principal", &krb.principal)
                .set("sasl.kerberos.keytab", paths.keytab.display().to_string())
                .set("sasl.kerberos.min.time.before.relogin", "0")
                .set("sasl.kerberos.kinit.cmd", KINIT_CMD);
        }
        if let Some(oauth) = &self.oauth {
            // librdkafka's own OIDC flow: it asks the token endpoint on its background thread, at
            // start and before the token expires, so admin-only clients work too.
            c.set("sasl.mechanism", "OAUTHBEARER")
                .set("sasl.oauthbearer.method", "oidc")
                .set("sasl.oauthbearer.token.endpoint.url", oauth.endpoint.url())
                .set(
                    "sasl.oauthbearer.client.id",
                    String::from_utf8_lossy(oauth.client.id.expose()),
                )
                .set(
                    "sasl.oauthbearer.client.secret",
                    String::from_utf8_lossy(oauth.client.secret.expose()),
                );
            if let Some(scope) = oauth.client.scope.as_deref().filter(|s| !s.is_empty()) {
                c.set("sasl.oauthbearer.scope", scope);
            }
            if let Some(ext) = oauth.extensions_setting() {
                c.set("sasl.oauthbearer.extensions", ext);
            }
            if let Some(ca) = &oauth.ca_pem {
                c.set("https.ca.pem", ca);
            }
        }
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_pem {
                c.set("ssl.ca.pem", ca);
            }
            if let Some(name) = &tls.server_name {
                // librdkafka can only check a certificate against the host it dialled: every broker
                // certificate of this session (bootstrap and advertised) is checked by kconn's
                // callback instead, against tls.serverName or that host.
                ffi::verify_broker_names(&mut c, name);
            }
            if let Some((cert, key)) = &tls.client {
                c.set("ssl.certificate.pem", cert)
                    .set("ssl.key.pem", String::from_utf8_lossy(key.expose()));
            }
        }
        c
    }
}

/// The largest answer a client of kconn's accepts from a broker (librdkafka's default is 100 MB):
/// room for the metadata of a large cluster and for a sampling fetch (`queued.max.messages.kbytes`).
pub(crate) const MAX_RECEIVE_BYTES: &str = "33554432";

/// The `sasl.kerberos.kinit.cmd` kconn gives librdkafka: a constant that does nothing, never run
/// because relogin is off, and never holding a value from a spec or a Secret.
pub(crate) const KINIT_CMD: &str = "true";

/// A working way into the cluster, found by the test.
#[derive(Debug, Clone)]
pub struct Session {
    /// The client settings that authenticated.
    pub settings: ClientSettings,
    /// Matched topics, with partitions and replication factor.
    pub topics: Vec<Topic>,
    /// Whether the brokers answered admin requests (DescribeCluster) in the test; when they did not,
    /// later admin requests (topic configs) are not worth waiting for.
    pub admin_answers: bool,
    /// A Kerberos connection's private files (keytab, krb5.conf, ticket cache), kept for as long as
    /// the session is.
    pub kerberos_files: Option<Arc<crate::kerberos::KerberosFiles>>,
}

/// A broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// Broker id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
}

/// A topic in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas of partition 0 (the replication factor).
    pub replication_factor: u32,
}

/// What to ask beyond metadata, in the same session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// The topic selector (matched topics are described).
    pub topics: TopicSelector,
    /// The consumer group whose permissions to read (`None`: do not ask).
    pub group: Option<String>,
    /// Ask for the authorized operations on the cluster and the matched topics (KIP-430).
    pub authorization: bool,
    /// Read `min.insync.replicas` of the matched topics.
    pub min_insync: bool,
    /// Admin requests the brokers do not serve (their ApiVersions answer): not asked.
    #[serde(default)]
    pub unserved: Unserved,
}

/// Admin requests the brokers do not serve, from their ApiVersions answer. What one of them would
/// have answered is an error with code [`NOT_SERVED`] instead of a request that waits in vain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unserved {
    /// DescribeCluster (the cluster's permissions).
    pub describe_cluster: bool,
    /// DescribeConfigs (`min.insync.replicas`).
    pub describe_configs: bool,
    /// DescribeGroups (the consumer group's permissions).
    pub describe_groups: bool,
}

/// The code of an answer the brokers cannot give: they do not serve the request.
pub const NOT_SERVED: &str = "NotSupportedByBroker";

impl Unserved {
    /// What a broker's supported API keys leave out.
    pub fn from_versions(versions: &crate::kafka::api_versions::Versions) -> Self {
        let missing = |key: &i16| !versions.contains_key(key);
        Self {
            describe_cluster: missing(&api_versions::DESCRIBE_CLUSTER),
            describe_configs: missing(&api_versions::DESCRIBE_CONFIGS),
            describe_groups: missing(&api_versions::DESCRIBE_GROUPS),
        }
    }
}

/// The answer to a request the brokers do not serve.
fn not_served(request: &str) -> ffi::ApiError {
    ffi::ApiError {
        code: NOT_SERVED.into(),
        message: format!("the brokers do not serve {request}"),
    }
}

pub use ffi::PerTopic;

/// What one session learned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterView {
    /// The cluster id, when the brokers report one.
    pub cluster_id: Option<String>,
    /// The active controller, when DescribeCluster answered.
    pub controller_id: Option<i32>,
    /// The advertised brokers.
    pub brokers: Vec<Broker>,
    /// The topics this client may describe.
    pub topics: Vec<Topic>,
    /// Names of the topics matching the selector, sorted.
    pub matched: Vec<String>,
    /// Operations authorized on the cluster (`Ok(None)`: the brokers do not report them).
    pub cluster_ops: Option<Result<Option<Vec<ffi::Op>>, ffi::ApiError>>,
    /// Operations authorized on each matched topic described (at most [`MAX_DESCRIBED_TOPICS`]).
    pub topic_ops: PerTopic<Option<Vec<ffi::Op>>>,
    /// Operations authorized on the consumer group.
    pub group_ops: Option<Result<Option<Vec<ffi::Op>>, ffi::ApiError>>,
    /// `min.insync.replicas` of each matched topic described.
    pub min_insync: PerTopic<Option<u32>>,
}

/// Topics described per test: permissions are usually granted by prefix, so a sample this large finds
/// a missing grant without sending one request per topic of a 100,000-topic cluster.
pub const MAX_DESCRIBED_TOPICS: usize = 1000;

/// Why a request failed, as librdkafka reported it (messages already redacted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KafkaFailure {
    /// Credentials were rejected.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The TLS handshake or certificate verification failed.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The brokers could not be reached or dropped the connection.
    #[error("no broker answered: {0}")]
    Transport(String),
    /// Nothing came back in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Anything else.
    #[error("{0}")]
    Other(String),
    /// The bootstrap servers answered (and authenticated), but the brokers they advertise cannot be
    /// reached: one entry per broker, `broker ID advertises HOST:PORT: why`.
    #[error("the advertised brokers cannot be reached: {}", .0.join("; "))]
    AdvertisedUnreachable(Vec<String>),
    /// kconn cannot do this for this kind of connection yet.
    #[error("{0}")]
    Unsupported(String),
}

impl KafkaFailure {
    /// The same failure with every secret `redactor` knows replaced in its texts.
    pub fn redacted(self, redactor: &Redactor) -> Self {
        use KafkaFailure as F;
        match self {
            F::Authentication(m) => F::Authentication(redactor.apply(&m)),
            F::Tls(m) => F::Tls(redactor.apply(&m)),
            F::Transport(m) => F::Transport(redactor.apply(&m)),
            F::Other(m) => F::Other(redactor.apply(&m)),
            F::Unsupported(m) => F::Unsupported(redactor.apply(&m)),
            F::AdvertisedUnreachable(v) => {
                F::AdvertisedUnreachable(v.iter().map(|m| redactor.apply(m)).collect())
            }
            F::Timeout(d) => F::Timeout(d),
        }
    }
}

/// Talks to Kafka.
pub trait Kafka: Send + Sync {
    /// Connects, authenticates, fetches cluster metadata and what `request` asks for, within `timeout`.
    fn probe(
        &self,
        settings: &ClientSettings,
        request: &ProbeRequest,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<ClusterView, KafkaFailure>> + Send;
}

/// Test double: a [`Kafka`] that answers every probe with a fixed result.
#[cfg(test)]
pub(crate) struct Fake(pub Result<ClusterView, KafkaFailure>);

#[cfg(test)]
impl Kafka for Fake {
    async fn probe(
        &self,
        _: &ClientSettings,
        _: &ProbeRequest,
        _: Duration,
    ) -> Result<ClusterView, KafkaFailure> {
        self.0.clone()
    }
}

/// The real [`Kafka`], through librdkafka.
#[derive(Debug, Clone, Copy, Default)]
pub struct RdKafka;

impl Kafka for RdKafka {
    async fn probe(
        &self,
        settings: &ClientSettings,
        request: &ProbeRequest,
        timeout: Duration,
    ) -> Result<ClusterView, KafkaFailure> {
        if settings.kerberos_env.is_some() {
            return probe::in_child(settings, request, timeout).await;
        }
        let config = settings.client_config(timeout);
        let redactor = settings.redactor();
        let request = request.clone();
        tokio::task::spawn_blocking(move || fetch(config, &request, &redactor, timeout))
            .await
            .unwrap_or_else(|e| Err(KafkaFailure::Other(format!("the probe task failed: {e}"))))
    }
}

/// Pause before asking a group coordinator that was not ready again.
const GROUP_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// One session: metadata, then what `request` asks for, each bounded by what is left of `timeout`.
pub(crate) fn fetch(
    config: ClientConfig,
    request: &ProbeRequest,
    redactor: &Redactor,
    timeout: Duration,
) -> Result<ClusterView, KafkaFailure> {
    let started = std::time::Instant::now();
    let events = Events::default();
    // A producer handle, as kcat -L uses: no consumer-group machinery, and nothing is ever produced.
    let producer: BaseProducer<Events> = config
        .create_with_context(events.clone())
        .map_err(|e| KafkaFailure::Other(redactor.apply(&e.to_string())))?;
    // Ask in short slices: librdkafka retries a rejected login until the timeout, but the first
    // authentication or TLS failure is already final, so stop as soon as one is reported.
    let mut learned_failing_since: Option<std::time::Instant> = None;
    let md = loop {
        let left = timeout.saturating_sub(started.elapsed());
        let slice = left
            .min(Duration::from_millis(500))
            .max(Duration::from_millis(1));
        match producer.client().fetch_metadata(None, slice) {
            Ok(md) => break md,
            Err(e) => {
                producer.poll(Duration::ZERO); // delivers queued error events
                let seen = events.snapshot();
                let fatal = seen.iter().any(|(c, _)| {
                    matches!(c, RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
                });
                // Advertised brokers that refuse connections for a second (a few reconnects) will
                // not start answering within a probe: the advertised-listener trap is final too.
                if learned_failing_since.is_none()
                    && seen
                        .iter()
                        .any(|(_, r)| learned_broker_failure(r).is_some())
                {
                    learned_failing_since = Some(std::time::Instant::now());
                }
                let learned_final =
                    learned_failing_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(1));
                if fatal || learned_final || started.elapsed() >= timeout {
                    // poll(ZERO) serves one event: take in the rest (the certificate callback's
                    // reason is logged just before the failure it causes).
                    producer.poll(Duration::from_millis(50));
                    return Err(classify(&events.snapshot(), &e, redactor, timeout));
                }
            }
        }
    };
    // Each admin request gets a share of what is left, so one slow answer leaves time for the others.
    let share = (timeout / 4).max(Duration::from_secs(1));
    let left = || {
        timeout
            .saturating_sub(started.elapsed())
            .min(share)
            .max(Duration::from_millis(100))
    };
    let mut view = ClusterView {
        cluster_id: producer
            .client()
            .fetch_cluster_id(Duration::from_secs(2).min(left())),
        brokers: md
            .brokers()
            .iter()
            .map(|b| Broker {
                id: b.id(),
                host: b.host().to_string(),
                port: u16::try_from(b.port()).unwrap_or(0),
            })
            .collect(),
        topics: md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| Topic {
                name: t.name().to_string(),
                partitions: t.partitions().len() as u32,
                replication_factor: t
                    .partitions()
                    .first()
                    .map(|p| p.replicas().len() as u32)
                    .unwrap_or(0),
            })
            .collect(),
        ..ClusterView::default()
    };
    if let Ok(matcher) = TopicMatcher::new(&request.topics) {
        view.matched = view
            .topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| matcher.matches(n))
            .collect();
        view.matched.sort_unstable();
    }
    let native = producer.client().native_client();
    let described: Vec<String> = view
        .matched
        .iter()
        .take(MAX_DESCRIBED_TOPICS)
        .cloned()
        .collect();
    view.controller_id = ffi::controller_id(native, Duration::from_millis(500).min(left()));
    let cluster = match view.controller_id {
        _ if request.unserved.describe_cluster => Err(not_served("DescribeCluster")),
        None => Err(ffi::ApiError {
            code: "ControllerUnknown".into(),
            message: "the cluster names no active controller, so permissions and configs cannot be asked for".into(),
        }),
        Some(_) => ffi::describe_cluster(native, left()),
    };
    match cluster {
        Ok(c) => {
            view.controller_id = c.controller_id.or(view.controller_id);
            view.cluster_ops = Some(Ok(c.authorized));
        }
        // Admin requests go to the controller: when it did not answer, the others would wait in vain.
        Err(e) if matches!(e.code.as_str(), "ControllerUnknown" | "OperationTimedOut") => {
            view.cluster_ops = Some(Err(e.clone()));
            if request.authorization {
                view.topic_ops = described
                    .iter()
                    .map(|n| (n.clone(), Err(e.clone())))
                    .collect();
                view.group_ops = request.group.as_ref().map(|_| Err(e.clone()));
            }
            if request.min_insync {
                view.min_insync = described
                    .iter()
                    .map(|n| (n.clone(), Err(e.clone())))
                    .collect();
            }
            return Ok(view);
        }
        Err(e) => view.cluster_ops = Some(Err(e)),
    }
    if request.authorization {
        view.topic_ops = match ffi::describe_topics(native, &described, left()) {
            Ok(list) => list,
            Err(e) => described
                .iter()
                .map(|n| (n.clone(), Err(e.clone())))
                .collect(),
        };
    }
    if request.min_insync && request.unserved.describe_configs {
        let e = not_served("DescribeConfigs");
        view.min_insync = described
            .iter()
            .map(|n| (n.clone(), Err(e.clone())))
            .collect();
    } else if request.min_insync {
        view.min_insync = match ffi::topic_min_insync(native, &described, left()) {
            Ok(list) => list,
            Err(e) => described
                .iter()
                .map(|n| (n.clone(), Err(e.clone())))
                .collect(),
        };
    }
    // Last: when the group coordinator is down this request waits for it until the time is up, and
    // everything else has been asked by then. (The librdkafka abort a late coordinator caused after
    // such a timeout is fixed in vendor/rdkafka-sys, see its PATCHED.md.)
    if request.authorization && request.unserved.describe_groups {
        view.group_ops = request
            .group
            .as_ref()
            .map(|_| Err(not_served("DescribeGroups")));
    } else if request.authorization {
        if let Some(group) = &request.group {
            view.group_ops = Some(loop {
                let answer = ffi::describe_group(native, group, left());
                match &answer {
                    Err(e) if e.coordinator_not_ready() && left() > GROUP_RETRY_PAUSE * 2 => {
                        std::thread::sleep(GROUP_RETRY_PAUSE)
                    }
                    _ => break answer,
                }
            });
        }
    }
    Ok(view)
}

/// Turns librdkafka's `[thrd:sasl_ssl://h:1/bootstrap]: sasl_ssl://h:1/bootstrap: Text (after 3ms in
/// state X)` into `h:1: Text`.
pub fn tidy(message: &str) -> String {
    let mut m = message.trim();
    if m.starts_with("[thrd:") {
        if let Some(i) = m.find("]: ") {
            m = &m[i + 3..];
        }
    }
    let mut out = String::new();
    if let Some((head, rest)) = m.split_once(": ") {
        if let Some((_, addr)) = head.split_once("://") {
            out.push_str(addr.split('/').next().unwrap_or(addr));
            out.push_str(": ");
            m = rest;
        }
    }
    let m = match m.rfind(" (after ") {
        Some(i) if m.ends_with(')') => &m[..i],
        _ => m,
    };
    out.push_str(m);
    out
}

/// Picks the most telling cause among the events and the final error.
fn classify(
    events: &[(RDKafkaErrorCode, String)],
    last: &KafkaError,
    redactor: &Redactor,
    timeout: Duration,
) -> KafkaFailure {
    let text = |s: &str| redactor.apply(&tidy(s));
    if let Some((_, r)) = events
        .iter()
        .find(|(c, _)| *c == RDKafkaErrorCode::Authentication)
    {
        return KafkaFailure::Authentication(text(r));
    }
    if let Some((_, r)) = events
        .iter()
        .find(|(c, r)| *c == RDKafkaErrorCode::SSL || r.contains("SSL handshake failed"))
    {
        return KafkaFailure::Tls(text(r));
    }
    // librdkafka names a broker it learned from a metadata answer `host:port/ID`, and a bootstrap
    // server `host:port/bootstrap`. Knowing a broker's id means the bootstrap server answered
    // (after authenticating), so failures of learned brokers alone are the advertised-listener trap.
    let learned: Vec<String> = events
        .iter()
        .filter_map(|(_, r)| learned_broker_failure(r))
        .map(|m| redactor.apply(&m))
        .collect();
    let bootstrap_failed = events.iter().any(|(_, r)| {
        r.contains("/bootstrap")
            && (r.contains("Connect to")
                || r.contains("Receive failed")
                || r.contains("Disconnected"))
    });
    if !learned.is_empty() && !bootstrap_failed {
        let mut learned = learned;
        learned.dedup();
        return KafkaFailure::AdvertisedUnreachable(learned);
    }
    if let Some((_, r)) = events.iter().find(|(c, _)| {
        matches!(
            c,
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    }) {
        return KafkaFailure::Transport(text(r));
    }
    match last.rdkafka_error_code() {
        Some(RDKafkaErrorCode::OperationTimedOut) => KafkaFailure::Timeout(timeout),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown) => {
            KafkaFailure::Transport(text(&last.to_string()))
        }
        _ => KafkaFailure::Other(text(&last.to_string())),
    }
}

/// `broker 1 advertises h:9092: why` from librdkafka's `[thrd:..]: proto://h:9092/1: Connect to ...
/// failed: why` (the protocol prefix is absent for PLAINTEXT).
fn learned_broker_failure(message: &str) -> Option<String> {
    let message = match message.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ").map(|(_, m)| m).unwrap_or(rest),
        None => message,
    };
    let (head, why) = message.split_once(": ")?;
    let head = head.split_once("://").map(|(_, a)| a).unwrap_or(head);
    let (addr, id) = head.rsplit_once('/')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let why = why.rsplit_once(" failed: ").map(|(_, w)| w).unwrap_or(why);
    Some(format!(
        "broker {id} advertises {addr}: {}",
        why.to_lowercase()
    ))
}

/// Collects the error events librdkafka raises while a request runs.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(RDKafkaErrorCode, String)>>>);

impl Events {
    fn snapshot(&self) -> Vec<(RDKafkaErrorCode, String)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl ClientContext for Events {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // librdkafka reports SASL and TLS failures as FAIL logs before (or instead of) an error event.
        let severe = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        );
        // kconn's certificate callback (tls.serverName) says why it refused a certificate only in
        // an SSLCERTVRFY log; the connection's FAIL log then blames the CA.
        if severe && fac == "SSLCERTVRFY" {
            if let Ok(mut v) = self.0.lock() {
                v.push((RDKafkaErrorCode::SSL, message.to_string()));
            }
            return;
        }
        if severe && fac == "FAIL" {
            let code = if message.contains("SASL authentication error")
                || message.contains("Authentication failed")
            {
                RDKafkaErrorCode::Authentication
            } else if message.contains("SSL") {
                RDKafkaErrorCode::SSL
            } else {
                RDKafkaErrorCode::BrokerTransportFailure
            };
            if let Ok(mut v) = self.0.lock() {
                v.push((code, message.to_string()));
            }
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        if let Ok(mut v) = self.0.lock() {
            v.push((code, reason.to_string()));
        }
    }
}
impl ProducerContext for Events {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's configure turns OIDC off without a word when it cannot link libcurl; a client
    /// with the OIDC flow is then refused ("OAuth/OIDC depends on libcurl and OpenSSL").
    #[test]
    fn librdkafka_is_built_with_its_oidc_flow() {
        let settings = ClientSettings {
            oauth: Some(OAuthMaterial::example(
                "http://127.0.0.1:9/token",
                None,
                None,
            )),
            ..ClientSettings::plaintext(vec!["127.0.0.1:9".into()])
        };
        let config = settings.client_config(Duration::from_secs(1));
        assert_eq!(config.get("sasl.oauthbearer.method"), Some("oidc"));
        assert_eq!(
            config.get("sasl.oauthbearer.extensions"),
            Some("logicalCluster=lkc-1")
        );
        assert_eq!(settings.protocol(), "SASL_PLAINTEXT");
        let client: Result<BaseProducer, _> = config.create();
        assert!(client.is_ok(), "{:?}", client.err());
    }

    #[test]
    fn requests_the_brokers_do_not_list_are_not_served() {
        use api_versions::{DESCRIBE_CLUSTER, DESCRIBE_CONFIGS, DESCRIBE_GROUPS, PRODUCE};
        let all: api_versions::Versions =
            [PRODUCE, DESCRIBE_GROUPS, DESCRIBE_CONFIGS, DESCRIBE_CLUSTER]
                .into_iter()
                .map(|k| (k, (0, 3)))
                .collect();
        assert_eq!(Unserved::from_versions(&all), Unserved::default());
        let mut some = all.clone();
        some.remove(&DESCRIBE_CLUSTER);
        some.remove(&DESCRIBE_CONFIGS);
        assert_eq!(
            Unserved::from_versions(&some),
            Unserved {
                describe_cluster: true,
                describe_configs: true,
                describe_groups: false
            }
        );
    }

    #[test]
    fn tidy_librdkafka_messages() {
        assert_eq!(
            tidy("[thrd:sasl_plaintext://127.0.0.1:30373/bootstrap]: sasl_plaintext://127.0.0.1:30373/bootstrap: SASL authentication error: Authentication failed (after 309ms in state AUTH_REQ)"),
            "127.0.0.1:30373: SASL authentication error: Authentication failed"
        );
        assert_eq!(
            tidy("ssl://b1:9093/1: SSL handshake failed"),
            "b1:9093: SSL handshake failed"
        );
        assert_eq!(
            tidy("Local: Broker transport failure"),
            "Local: Broker transport failure"
        );
    }

    #[test]
    fn learned_broker_failures_are_recognised() {
        assert_eq!(
            learned_broker_failure(
                "127.0.0.1:47540/1: Connect to ipv4#127.0.0.1:47540 failed: Connection refused"
            )
            .as_deref(),
            Some("broker 1 advertises 127.0.0.1:47540: connection refused")
        );
        assert_eq!(learned_broker_failure("127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"), None);
        assert_eq!(
            learned_broker_failure("Local: Broker transport failure"),
            None
        );
        assert_eq!(
            learned_broker_failure("[thrd:sasl_ssl://b2:9093/2]: sasl_ssl://b2:9093/2: Connect to ipv4#10.0.0.2:9093 failed: Connection timed out").as_deref(),
            Some("broker 2 advertises b2:9093: connection timed out")
        );
    }

    fn kerberos_settings(
        dir: &std::path::Path,
        principal: &str,
        bootstrap: &str,
    ) -> ClientSettings {
        let mut s = ClientSettings::plaintext(vec![bootstrap.into()]);
        s.kerberos = Some(KerberosMaterial {
            principal: principal.into(),
            service_name: "kafka".into(),
            keytab: SecretBytes::new(Vec::new()),
            krb5_conf: String::new(),
        });
        s.kerberos_env = Some(KerberosEnv {
            keytab: dir.join("krb5.keytab"),
            krb5_conf: dir.join("krb5.conf"),
            ccache: dir.join("ccache"),
        });
        s
    }

    #[test]
    fn librdkafka_gets_no_kinit_command_with_tenant_values() {
        let dir = tempfile::tempdir().unwrap();
        let c =
            kerberos_settings(dir.path(), "p$(id)@R", "k:1").client_config(Duration::from_secs(5));
        assert_eq!(c.get("sasl.kerberos.min.time.before.relogin"), Some("0"));
        assert_eq!(c.get("sasl.kerberos.kinit.cmd"), Some(KINIT_CMD));
        assert!(
            !KINIT_CMD.contains("%{"),
            "no substitution into the command"
        );
    }

    /// librdkafka connects to a broker only once SASL is ready, which, with a kinit command
    /// configured, is after it ran that command through the shell. So a connection accepted here
    /// proves that the shell had its chance: the hostile principal must not have run.
    #[test]
    fn a_hostile_principal_runs_nothing_when_a_kerberos_client_starts() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("injected");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let principal = format!("p$(touch${{IFS}}{})@R", marker.display());
        let config =
            kerberos_settings(dir.path(), &principal, &addr).client_config(Duration::from_secs(5));
        let producer: BaseProducer = config.create().expect("the client is created");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(listener.accept().map(|_| ()));
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("librdkafka connects within 30 s")
            .expect("accepted");
        assert!(!marker.exists(), "the principal ran through a shell");
        drop(producer);
    }

    #[test]
    fn protocol_follows_sasl_and_tls() {
        let mut s = ClientSettings::plaintext(vec!["k:1".into()]);
        assert_eq!(s.protocol(), "PLAINTEXT");
        s.tls = Some(TlsMaterial::default());
        assert_eq!(s.protocol(), "SSL");
        s.sasl = Some(SaslCredentials {
            mechanism: SaslMechanism::Plain,
            username: SecretBytes::new(b"u".to_vec()),
            password: SecretBytes::new(b"secret-pw".to_vec()),
        });
        assert_eq!(s.protocol(), "SASL_SSL");
        assert!(!format!("{s:?}").contains("secret-pw"));
        assert_eq!(s.redactor().apply("x secret-pw y"), "x *** y");
    }
}
