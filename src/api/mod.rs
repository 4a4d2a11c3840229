//! The `KafkaConnection` v1alpha1 API (`kafkaconnections.kconn.dev`): spec, status, defaults and the
//! CEL rules the API server enforces. No I/O lives here.
//!
//! Every field's doc comment becomes its `kubectl explain` text, so they are written for users.

pub mod reference;
mod vocab;

pub use vocab::{Check, ConditionStatus, ConditionType, Reason, MANAGER};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kconn resource.
pub const GROUP: &str = "kconn.dev";
/// The only served version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "kconn.dev/v1alpha1";
/// Kind of the connection resource.
pub const KIND: &str = "KafkaConnection";
/// Annotation whose new value asks for a connection test now (answered in `status.lastHandledTestRequest`).
pub const TEST_REQUESTED_AT: &str = "kconn.dev/test-requested-at";
/// Annotation whose new value asks for a model refresh now.
pub const REFRESH_REQUESTED_AT: &str = "kconn.dev/refresh-requested-at";
/// Annotation naming the connection an object (a catalog shard, a binding Secret) was written for
/// (names may be too long for a label).
pub const CONNECTION_ANNOTATION: &str = "kconn.dev/connection";

/// The owner reference of an object a connection controls (its catalog, its binding).
pub fn owner_reference(
    connection: &str,
    uid: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        name: connection.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// Whether the connection `uid` is the controller owner of an object: the only objects kconn
/// rewrites or deletes (a label anyone can set would not do).
pub fn controlled_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: &str,
) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// Maximum number of bootstrap servers.
pub const MAX_BOOTSTRAP_SERVERS: usize = 64;
/// Maximum length of the topic expression.
pub const MAX_TOPIC_EXPRESSION: usize = 256;
/// Maximum length of one `host:port` entry (a DNS name of 253 characters, a colon and a port).
pub const MAX_BOOTSTRAP_SERVER_LEN: usize = 261;

/// Shape of one bootstrap server, as the CEL rule in the CRD checks it: a DNS name, an IPv4 address or a
/// bracketed IPv6 address, then `:port` with port 1..65535. The validator in `crate::validate` applies
/// the same rule with field-specific messages.
pub const HOST_PORT_PATTERN: &str = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";
/// A Kerberos principal kconn accepts, `primary[/instance...][@REALM]`, each part letters, digits, `.`,
/// `_` and `-`: no shell or option syntax can ever ride in one. `crate::kerberos::check_principal`
/// applies the same rule, also to the principal completed with krb5.conf's `default_realm`.
pub const PRINCIPAL_PATTERN: &str = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*(@[A-Za-z0-9._-]+)?$";
/// A Secret's name: an RFC 1123 subdomain (lower-case letters, digits, `-` and `.`).
pub const SECRET_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key of a Secret's data: letters, digits, `-`, `_` and `.`.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// An RFC 1123 label (agent pool names).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// `HH:MM`, 24-hour clock.
pub const REFRESH_AT_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// A positive Go-style duration such as `30s`, `5m` or `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A Kafka connection that kconn tests for real and keeps testing: bootstrap servers, the topics it
/// covers, credentials held in Secrets, TLS, producer and consumer settings, and the model catalog.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kconn.dev",
    version = "v1alpha1",
    kind = "KafkaConnection",
    plural = "kafkaconnections",
    namespaced,
    status = "KafkaConnectionStatus",
    shortname = "kconn",
    shortname = "kc",
    category = "kafka",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Topics","type":"integer","jsonPath":".status.topics.matched"}"#,
    printcolumn = r#"{"name":"Models","type":"integer","jsonPath":".status.models.count"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaConnectionSpec {
    /// Human-readable name shown by tools (the unique key is `metadata.name`), e.g. "Orders cluster (prod)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub display_name: Option<String>,

    /// What pipelines do with this connection: `Source` (read), `Target` (write) or `SourceAndTarget`.
    /// The permission and durability checks follow it.
    #[serde(default)]
    pub role: Role,

    /// Bootstrap servers as `host:port` (IPv6 in brackets: `[fd00::1]:9092`), 1 to 64 entries.
    /// kconn connects to each, then to every broker the cluster advertises.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = bootstrap_servers_rule())]
    pub bootstrap_servers: Vec<BootstrapServer>,

    /// Which topics this connection covers.
    pub topics: TopicSelector,

    /// How kconn authenticates to Kafka: SASL (user name and password), Kerberos or OAuth (an OIDC
    /// provider's token). Omit for none (or for mTLS only, with `tls.clientCertSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,

    /// TLS to the brokers. Present means encrypted (SSL, or SASL_SSL with `authentication`); omit for
    /// plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,

    /// Producer settings, used when `role` includes Target.
    #[serde(default)]
    pub producer: ProducerSettings,

    /// Consumer settings, used when `role` includes Source.
    #[serde(default)]
    pub consumer: ConsumerSettings,

    /// Pins the connection to an agent pool (`kconn run --agent NAME`), e.g. one that can reach a private
    /// network. Omit for automatic allocation to any pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,

    /// How often the connection is re-tested and how long one test may take.
    #[serde(default)]
    pub check: CheckSettings,

    /// The model catalog: the matched topics and the inferred schema of their messages.
    #[serde(default)]
    pub models: ModelSettings,

    /// Pause all testing and model refreshing. Status keeps its last values.
    #[serde(default)]
    pub suspend: bool,

    /// Publish what a passing test used as a Secret that applications mount (bootstrap servers,
    /// protocol, credentials, CA, `client.properties` and `librdkafka.properties`). Present means
    /// publish; removing it removes the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingSpec>,

    /// The schema registry (Confluent API) that the topics' Avro, Protobuf and JSON Schema messages
    /// name: the test checks it is reachable, and models are read with the schemas it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistry>,
}

/// A schema registry with the Confluent REST API (Confluent Schema Registry, Apicurio's
/// `/apis/ccompat/v7`, Karapace, Redpanda).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRegistry {
    /// The registry's base URLs (1 to 8), as clients' `schema.registry.url` takes them, e.g.
    /// `https://sr.example.com` or `http://apicurio:8080/apis/ccompat/v7`; kconn uses the first that
    /// answers. https, or http (then without basic auth outside loopback); no user info or fragment.
    #[schemars(length(min = 1, max = 8), extend("items" = {"type": "string", "maxLength": 2048}))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.all(u, u.matches(r'''{REGISTRY_URL_PATTERN}'''))")).message("schemaRegistry.url entries must be http:// or https:// URLs without user info or fragment, at most 2048 characters").reason(kube::core::Reason::FieldValueInvalid))]
    pub url: Vec<String>,
    /// The Secret (in this namespace) holding the user name and password for HTTP basic auth (for
    /// Confluent Cloud: the API key and secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret_ref: Option<UserPasswordSecretRef>,
    /// The Secret key holding the PEM CA bundle that signed the registry's certificate. Omit to trust
    /// the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// A `kubernetes.io/tls` Secret (keys `tls.crt` and `tls.key`) for a registry that requires mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<TlsSecretRef>,
}

/// A schema registry URL as the CRD checks it: http or https, no user info, fragment or space.
pub const REGISTRY_URL_PATTERN: &str = r"^https?://[^/?#@\s]+([/?][^#\s]*)?$";

/// The binding Secret: the Service Binding "provisioned service" shape, with keys compatible with
/// Strimzi's KafkaAccess. Written only from a test that passed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingSpec {
    /// Name of the Secret, in the connection's namespace. Default: `<metadata.name>-binding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub secret_name: Option<String>,
    /// Where applications mount the Secret as a volume: `librdkafka.properties` names its certificate,
    /// key and keytab files under it. Default: `/bindings/<secretName>` (the Service Binding
    /// convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1024))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.matches(r'''{MOUNT_PATH_PATTERN}''')")).message("binding.mountPath must be an absolute path of letters, digits, '.', '_', '-' and '/', without '..'").reason(kube::core::Reason::FieldValueInvalid))]
    pub mount_path: Option<String>,
    /// Labels of the Secret (at most 32).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the Secret (at most 32).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub annotations: BTreeMap<String, String>,
}

/// An absolute mount path: `/`-separated parts of letters, digits, `.`, `_` and `-`, none starting
/// with `.` (so no `..`).
pub const MOUNT_PATH_PATTERN: &str = r"^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$";

/// CEL rule: every bootstrap server is `host:port` ([`HOST_PORT_PATTERN`]).
fn bootstrap_servers_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.all(s, s.matches(r'''{HOST_PORT_PATTERN}'''))"))
        .message("each bootstrap server must be host:port with a port from 1 to 65535; write IPv6 addresses in brackets, e.g. [fd00::1]:9092")
        .reason(kube::core::Reason::FieldValueInvalid)
}

/// CEL rule: the timeout fits in the interval. A field that is no duration at all is left to its own
/// rule (`duration()` on it would add a type-conversion error to that rule's message).
fn check_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "!self.interval.matches(r'''{DURATION_PATTERN}''') || !self.timeout.matches(r'''{DURATION_PATTERN}''') || duration(self.timeout) <= duration(self.interval)"
    ))
    .message("check.timeout must not be longer than check.interval")
    .field_path(".timeout")
}

/// CEL rule: a positive Go duration ([`DURATION_PATTERN`]).
fn duration_rule(field: &str, examples: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "self.matches(r'''{DURATION_PATTERN}''') && duration(self) > duration('0s')"
    ))
    .message(kube::core::Message::Message(format!(
        "{field} must be a positive duration such as {examples}"
    )))
}

/// CEL rule: a Secret name ([`SECRET_NAME_PATTERN`]).
fn secret_name_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches(r'''{SECRET_NAME_PATTERN}''')"))
        .message("must name a Secret in the connection's namespace: lower-case letters, digits, '-' and '.'")
        .reason(kube::core::Reason::FieldValueInvalid)
}

/// CEL rule: a key of a Secret ([`SECRET_KEY_PATTERN`]).
fn secret_key_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches(r'''{SECRET_KEY_PATTERN}''')"))
        .message("must be a key of the Secret's data: letters, digits, '-', '_' and '.'")
        .reason(kube::core::Reason::FieldValueInvalid)
}

/// CEL rule: a principal of the characters kconn accepts ([`PRINCIPAL_PATTERN`]).
fn principal_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches(r'''{PRINCIPAL_PATTERN}''')"))
        .message("kerberos.principal must be primary[/instance]@REALM of letters, digits, '.', '_' and '-', e.g. pipeline@EXAMPLE.COM")
        .reason(kube::core::Reason::FieldValueInvalid)
}

/// One bootstrap server, `host:port`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct BootstrapServer(#[schemars(length(max = 261))] pub String);

impl std::fmt::Display for BootstrapServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What pipelines do with the connection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Role {
    /// Pipelines read from Kafka.
    Source,
    /// Pipelines write to Kafka.
    Target,
    /// Pipelines read and write.
    #[default]
    SourceAndTarget,
}

impl Role {
    /// Whether pipelines read through this connection.
    pub fn reads(self) -> bool {
        matches!(self, Role::Source | Role::SourceAndTarget)
    }
    /// Whether pipelines write through this connection.
    pub fn writes(self) -> bool {
        matches!(self, Role::Target | Role::SourceAndTarget)
    }
}

/// Which topics the connection covers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicSelector {
    /// The topic expression, at most 256 characters. With `syntax: Regex` it must match the whole topic
    /// name (`orders\..*` matches `orders.eu`, not `old.orders.eu`); with `Glob`, a comma-separated list of
    /// patterns where `*` is any run of characters and `?` one character (`orders.*, payments.?`).
    #[schemars(length(min = 1, max = 256))]
    pub expression: String,

    /// How `expression` is read: `Regex` (default; linear-time engine, no backreferences) or `Glob`.
    #[serde(default)]
    pub syntax: TopicSyntax,

    /// Also match Kafka's internal topics (names starting with `__`, such as `__consumer_offsets`).
    #[serde(default)]
    pub include_internal: bool,
}

/// How a topic expression is read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TopicSyntax {
    /// A regular expression matched against the whole topic name.
    #[default]
    Regex,
    /// A comma-separated list of `*` / `?` patterns.
    Glob,
}

/// Credentials for Kafka. Set exactly one of `sasl`, `kerberos` or `oauth`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.sasl) ? 1 : 0) + (has(self.kerberos) ? 1 : 0) + (has(self.oauth) ? 1 : 0) <= 1").message("set only one of authentication.sasl, authentication.kerberos or authentication.oauth").reason(kube::core::Reason::FieldValueForbidden))]
#[x_kube(validation = kube::core::Rule::new("has(self.sasl) || has(self.kerberos) || has(self.oauth)").message("set authentication.sasl, authentication.kerberos or authentication.oauth, or remove authentication").reason(kube::core::Reason::FieldValueRequired))]
pub struct Authentication {
    /// User name and password authentication (SASL PLAIN or SCRAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslAuthentication>,
    /// Kerberos (SASL GSSAPI) with a keytab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kerberos: Option<KerberosAuthentication>,
    /// SASL OAUTHBEARER with a token from an OIDC provider (the client-credentials grant), as
    /// Confluent Cloud, Azure Event Hubs and Strimzi or Redpanda with Keycloak expect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthAuthentication>,
}

/// SASL OAUTHBEARER: a token from the provider's token endpoint (OIDC client credentials), presented
/// to the brokers, which check its signature, issuer and audience.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAuthentication {
    /// The provider's token endpoint, e.g. `https://login.example.com/oauth2/token`: https (http only
    /// on loopback, for tests), without user info or fragment.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = token_endpoint_rule())]
    pub token_endpoint: String,
    /// The Secret (in this namespace) holding the client id and the client secret.
    pub client_secret_ref: ClientSecretRef,
    /// The scopes to ask for, separated by spaces (the token request's `scope`). Omit for the
    /// provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub scope: Option<String>,
    /// The audience to ask the token for, when the provider needs one to name the brokers. It is sent
    /// as the `audience` query parameter of the token endpoint (librdkafka has no audience setting);
    /// omit it when the provider sets the audience per client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub audience: Option<String>,
    /// SASL extensions sent to the brokers with the token (at most 16), e.g. Confluent Cloud's
    /// `logicalCluster` and `identityPoolId`: keys of letters, values of printable characters without
    /// `,`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, k.matches('^[A-Za-z]{1,64}$') && k != 'auth' && !self[k].contains(','))").message("oauth.extensions keys are 1 to 64 letters (not auth), values have no ','").reason(kube::core::Reason::FieldValueInvalid))]
    pub extensions: BTreeMap<String, String>,
    /// The Secret key holding the PEM CA bundle that signed the token endpoint's certificate. Omit to
    /// trust the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// A Secret in the connection's namespace holding an OAuth client's id and secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Name of the Secret, in the connection's own namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,
    /// Key of the client id in the Secret.
    #[serde(default = "default_client_id_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub client_id_key: String,
    /// Key of the client secret in the Secret.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub client_secret_key: String,
}

fn default_client_id_key() -> String {
    "clientId".into()
}
fn default_client_secret_key() -> String {
    "clientSecret".into()
}

/// CEL rule: a token endpoint is https, or http on loopback ([`crate::validate`] parses it fully).
fn token_endpoint_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches(r'''{TOKEN_ENDPOINT_PATTERN}''')"))
        .message("oauth.tokenEndpoint must be an https:// URL (http:// only on 127.0.0.1, localhost or [::1]), without user info or fragment")
        .reason(kube::core::Reason::FieldValueInvalid)
}

/// A token endpoint as the CRD checks it: `https://host[:port][/path][?query]`, or `http://` on a
/// loopback host; no user info, fragment, space or control character.
pub const TOKEN_ENDPOINT_PATTERN: &str =
    r"^(https://[^/?#@\s]+|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?)([/?][^#\s]*)?$";

/// SASL user name and password authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslAuthentication {
    /// The SASL mechanism the brokers expect: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`. Use PLAIN only
    /// with `tls`: it sends the password as is.
    pub mechanism: SaslMechanism,
    /// The Secret (in this namespace) holding the user name and password.
    pub secret_ref: UserPasswordSecretRef,
}

/// A SASL mechanism.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanism {
    /// SASL/PLAIN: the password is sent as is (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SASL/SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SASL/SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka and Kafka use.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A Secret in the connection's namespace holding a user name and a password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPasswordSecretRef {
    /// Name of the Secret, in the connection's own namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,
    /// Key of the user name in the Secret.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub username_key: String,
    /// Key of the password in the Secret.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}

/// Kerberos (SASL GSSAPI) authentication with a keytab.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KerberosAuthentication {
    /// The client principal, e.g. `pipeline@EXAMPLE.COM` or `pipeline/host@EXAMPLE.COM`: letters,
    /// digits, `.`, `_` and `-`, with `/` between parts and `@` before the realm. Without a realm,
    /// krb5.conf's `default_realm` completes it. The keytab must hold a key for it.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = principal_rule())]
    pub principal: String,
    /// The brokers' Kerberos service name: the first part of their principal (`kafka` in
    /// `kafka/broker1.example.com@EXAMPLE.COM`).
    #[serde(default = "default_service_name")]
    #[schemars(length(min = 1, max = 64))]
    pub service_name: String,
    /// The Secret key holding the keytab (binary) for `principal`.
    pub keytab_secret_ref: SecretKeyRef,
    /// The Secret key holding the krb5.conf that names the realm and its KDCs.
    pub krb5_conf_secret_ref: SecretKeyRef,
}

fn default_service_name() -> String {
    "kafka".into()
}

/// One key of a Secret in the connection's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the connection's own namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,
    /// Key in the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub key: String,
}

/// TLS to the brokers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// The Secret key holding the PEM CA bundle that signed the brokers' certificates. Omit to trust the
    /// system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// A `kubernetes.io/tls` Secret (keys `tls.crt` and `tls.key`) for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<TlsSecretRef>,
    /// The name to verify the brokers' certificates against (and send as SNI) instead of the host
    /// kconn connects to. Empty: the host itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub server_name: Option<String>,
}

/// A `kubernetes.io/tls` Secret in the connection's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecretRef {
    /// Name of the Secret, in the connection's own namespace; keys `tls.crt` and `tls.key`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,
}

/// Producer settings, used when `role` includes Target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerSettings {
    /// Acknowledgement required for a write: `None` (acks=0), `Leader` (acks=1), `MajorityIsr`
    /// (acks=all; the check verifies each topic's min.insync.replicas is a majority of its replicas)
    /// or `AllIsr` (acks=all; min.insync.replicas must equal the replication factor).
    #[serde(default)]
    pub acks: Acks,
    /// Compression codec for produced batches: `none`, `gzip`, `snappy`, `lz4` or `zstd` (needs brokers
    /// that support Produce v7, Kafka 2.1 or later).
    #[serde(default)]
    pub compression: Compression,
    /// Keep going when a message cannot be pushed. Offsets still advance, so messages can be lost.
    #[serde(default)]
    pub ignore_push_errors: bool,
}

/// Acknowledgement level for writes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Acks {
    /// acks=0: do not wait for any broker.
    None,
    /// acks=1: the partition leader has written the message.
    Leader,
    /// acks=all, with min.insync.replicas a majority of the replicas.
    #[default]
    MajorityIsr,
    /// acks=all, with min.insync.replicas equal to the replication factor.
    AllIsr,
}

/// Compression codec for produced batches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (the default).
    #[default]
    Lz4,
    /// Zstandard (brokers must support Produce v7).
    Zstd,
}

impl Compression {
    /// The codec name Kafka and librdkafka use.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Consumer settings, used when `role` includes Source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSettings {
    /// Skip messages that are not JSON objects (and count them in `status.models.skippedMessages`)
    /// instead of failing the topic's model.
    #[serde(default)]
    pub ignore_non_json_messages: bool,
    /// The consumer group pipelines will use, for the authorization check. Default:
    /// `kconn-<namespace>-<name>`. kconn never joins it and never commits offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 249))]
    pub group_id: Option<String>,
}

/// An agent pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRef {
    /// Name of the agent pool (`kconn run --agent NAME`): a DNS label.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.matches(r'''{DNS_LABEL_PATTERN}''')")).message("agent.name must be a DNS label: lower-case letters, digits and '-'").reason(kube::core::Reason::FieldValueInvalid))]
    pub name: String,
}

/// Re-test schedule and the bound on one test.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = check_rule())]
pub struct CheckSettings {
    /// How often the connection is re-tested, a Go duration such as `5m` or `1h`. Failed tests retry
    /// sooner, with backoff, but never faster than this allows repeated failed logins.
    #[serde(default = "default_interval")]
    #[schemars(length(min = 2, max = 32))]
    #[x_kube(validation = duration_rule("check.interval", "30s, 5m or 1h"))]
    pub interval: String,
    /// Bound on one whole test (every check together), a Go duration such as `30s`. At most `interval`.
    #[serde(default = "default_timeout")]
    #[schemars(length(min = 2, max = 32))]
    #[x_kube(validation = duration_rule("check.timeout", "10s or 1m"))]
    pub timeout: String,
}

fn default_interval() -> String {
    "5m".into()
}
fn default_timeout() -> String {
    "30s".into()
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
        }
    }
}

/// The model catalog settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSettings {
    /// Catalog size from which refreshes move from hourly to daily at `refreshAt`.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1))]
    pub large_catalog_threshold: u32,
    /// Time of day (`HH:MM`, 24-hour) of the daily refresh of a large catalog.
    #[serde(default = "default_refresh_at")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.matches('{REFRESH_AT_PATTERN}')")).message("models.refreshAt must be HH:MM on a 24-hour clock, e.g. 02:00"))]
    pub refresh_at: String,
    /// IANA time zone of `refreshAt`, e.g. `UTC` or `Europe/Berlin`. Daylight-saving changes are honoured.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// How many of the newest messages per topic are read to infer its schema (0 to 1000; 0 lists topics
    /// without reading messages).
    #[serde(default = "default_sample_messages")]
    #[schemars(range(max = 1000))]
    pub sample_messages: u32,
    /// Pause model refreshing only; connection tests go on.
    #[serde(default)]
    pub suspend: bool,
}

fn default_threshold() -> u32 {
    10_000
}
fn default_refresh_at() -> String {
    "02:00".into()
}
fn default_time_zone() -> String {
    "UTC".into()
}
fn default_sample_messages() -> u32 {
    10
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            large_catalog_threshold: default_threshold(),
            refresh_at: default_refresh_at(),
            time_zone: default_time_zone(),
            sample_messages: default_sample_messages(),
            suspend: false,
        }
    }
}

/// What kconn last observed about the connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaConnectionStatus {
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: Ready, Reconciling, Stalled, and one per area (Reachable, Authenticated,
    /// Authorized, TopicsResolved, ModelsLoaded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last test report, one row per check in dependency order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckReport>,
    /// When the last test that changed this status finished. Connections are tested every
    /// `spec.check.interval`; a test that finds everything as it was is not written (the time of the
    /// latest test is kept by the agent that runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test_time: Option<Time>,
    /// How long that test waited, before it started, for its turn in its cluster's budget (new
    /// connections per broker per second, tests at once per cluster); absent when it did not wait.
    /// Waiting is never a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_wait_ms: Option<u64>,
    /// The value of the `kconn.dev/test-requested-at` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_test_request: Option<String>,
    /// The value of the `kconn.dev/refresh-requested-at` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh_request: Option<String>,
    /// Which agent pool and pod ran the last test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested_by: Option<TestedBy>,
    /// What the cluster's metadata said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Topics matching the expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicsStatus>,
    /// The model catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelsStatus>,
    /// The Secrets (and their resourceVersion) the last test used; a change re-tests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_secrets: Vec<ObservedSecret>,
    /// The binding Secret applications mount (the Service Binding "provisioned service" field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingStatus>,
    /// In memory only: the digest of `checks` where the watch cache left the rows out
    /// (`status::elide_checks`).
    #[serde(skip)]
    #[schemars(skip)]
    pub checks_digest: Option<u64>,
}

/// `status.binding`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct BindingStatus {
    /// The name of the Secret, in the connection's namespace.
    pub name: String,
}

/// One row of the test report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// The check, e.g. `BrokersReachable`.
    pub name: String,
    /// `Passed`, `Warning`, `Failed` or `Skipped`.
    pub result: CheckResult,
    /// A stable CamelCase reason, e.g. `SomeBrokersUnreachable`.
    pub reason: String,
    /// What was found. Never contains secret values.
    pub message: String,
    /// What to change, and where, when the check did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The spec field the result is about, e.g. `spec.bootstrapServers[2]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How long the check took, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Outcome of one check.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum CheckResult {
    /// Everything is as it should be.
    Passed,
    /// Works, but something deserves attention; Ready stays True.
    Warning,
    /// Does not work; Ready is False.
    Failed,
    /// Not run, because a check it depends on failed or it does not apply.
    Skipped,
}

/// Which agent ran the last test.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestedBy {
    /// The agent pool.
    pub agent: String,
    /// The pod (process identity) in that pool.
    pub pod: String,
}

/// Cluster facts from metadata.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// The cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Number of brokers in the metadata.
    pub brokers: u32,
    /// Id of the active controller, when the cluster reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_id: Option<i32>,
}

/// Topics matching the expression.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicsStatus {
    /// How many topics match.
    pub matched: u32,
    /// Up to 10 matching names, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub sample: Vec<String>,
}

/// The model catalog's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsStatus {
    /// Number of models (topics) in the catalog.
    pub count: u32,
    /// When the catalog was last refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,
    /// When the next refresh is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_time: Option<Time>,
    /// `Hourly` below `largeCatalogThreshold` models, `Daily` at or above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<RefreshSchedule>,
    /// The ConfigMaps holding the catalog, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<String>,
    /// What the last refresh changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ModelChanges>,
    /// Messages skipped because they were not JSON objects (`consumer.ignoreNonJsonMessages`).
    #[serde(default)]
    pub skipped_messages: u64,
    /// Matched topics left out of the catalog because their messages are not JSON objects (the
    /// ModelsLoaded condition names them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_topics: u32,
    /// SHA-256 of the catalog's content: it changes exactly when the catalog does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The `metadata.generation` the last refresh ran against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How often models are refreshed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RefreshSchedule {
    /// Every hour.
    Hourly,
    /// Once a day at `refreshAt`.
    Daily,
}

/// Changes made by a refresh.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelChanges {
    /// Models that appeared.
    pub added: u32,
    /// Models that disappeared.
    pub removed: u32,
    /// Models whose schema changed.
    pub changed: u32,
}

/// A Secret the last test used.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedSecret {
    /// Name of the Secret.
    pub name: String,
    /// Its resourceVersion when used.
    pub resource_version: String,
}

impl KafkaConnectionSpec {
    /// Names of every Secret the spec references (sorted, without duplicates).
    pub fn secret_names(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        if let Some(auth) = &self.authentication {
            if let Some(sasl) = &auth.sasl {
                names.insert(sasl.secret_ref.name.clone());
            }
            if let Some(krb) = &auth.kerberos {
                names.insert(krb.keytab_secret_ref.name.clone());
                names.insert(krb.krb5_conf_secret_ref.name.clone());
            }
            if let Some(oauth) = &auth.oauth {
                names.insert(oauth.client_secret_ref.name.clone());
                if let Some(ca) = &oauth.ca_secret_ref {
                    names.insert(ca.name.clone());
                }
            }
        }
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_secret_ref {
                names.insert(ca.name.clone());
            }
            if let Some(cert) = &tls.client_cert_secret_ref {
                names.insert(cert.name.clone());
            }
        }
        if let Some(registry) = &self.schema_registry {
            if let Some(auth) = &registry.basic_auth_secret_ref {
                names.insert(auth.name.clone());
            }
            if let Some(ca) = &registry.ca_secret_ref {
                names.insert(ca.name.clone());
            }
            if let Some(cert) = &registry.client_cert_secret_ref {
                names.insert(cert.name.clone());
            }
        }
        names.into_iter().collect()
    }
}

/// The CRD, generated from these types; `kconn crd` prints it and `crds/` holds a copy.
pub fn crd(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    KafkaConnection::crd()
}

/// The CRD as YAML, exactly as committed in `crds/kafkaconnections.kconn.dev.yaml`.
pub fn crd_yaml() -> String {
    let body = serde_yaml::to_string(&crd()).expect("the CRD serializes to YAML");
    format!("# Generated by `kconn crd` from the Rust types in src/api. Do not edit.\n{body}")
}
