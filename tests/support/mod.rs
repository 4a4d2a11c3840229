//! Shared by the integration tests: the environment `scripts/test-env.sh up` started, unique names,
//! and rdkafka / kube clients for it.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod operator;
pub mod proxy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The variables in `target/test-env/env`.
pub struct Env(HashMap<String, String>);

impl Env {
    /// Reads the environment file once per test binary. Panics, naming the command to run, when the
    /// environment is not up.
    pub fn get() -> &'static Env {
        static ENV: OnceLock<Env> = OnceLock::new();
        ENV.get_or_init(|| {
            let path = std::env::var_os("KCONN_TEST_ENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-env/env")
                });
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "the integration test environment is not up ({}: {e}).\n\
                     Start it with `scripts/test-env.sh up` (or run everything with `scripts/test.sh`).",
                    path.display()
                )
            });
            let vars = text
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| {
                    // 'single-quoted' values are taken as they are; "double" ones lose the quotes.
                    let v = match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                        Some(quoted) => quoted,
                        None => v.trim_matches('"'),
                    };
                    (k.to_string(), v.to_string())
                })
                .collect();
            Env(vars)
        })
    }

    /// A variable; panics with its name when missing.
    pub fn var(&self, name: &str) -> &str {
        self.0.get(name).unwrap_or_else(|| {
            panic!("{name} is missing from target/test-env/env; re-run `scripts/test-env.sh up`")
        })
    }

    /// A file in `KAFKA_TLS_DIR`.
    pub fn tls(&self, file: &str) -> String {
        format!("{}/{file}", self.var("KAFKA_TLS_DIR"))
    }
}

/// A Secret named `name` holding `data` (no namespace: the Api it is created through gives it one).
pub fn secret(name: &str, data: &[(&str, Vec<u8>)]) -> k8s_openapi::api::core::v1::Secret {
    let data: std::collections::BTreeMap<String, k8s_openapi::ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.clone())))
        .collect();
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": data})).unwrap()
}

/// A name no other test (or earlier run) uses, prefixed `test.` so the test users have rights on it.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "test.{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` until it returns `Some`, or panics after `deadline` with `what`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50)); // poll interval, bounded by the deadline above
    }
}

/// Awaits `f` until it returns `Some`, or panics after `deadline` naming `what`: the one way the async
/// tests wait for a condition.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_until_ok(what, deadline, || {
        let next = f();
        async move { next.await.ok_or("not yet") }
    })
    .await
}

/// [`wait_until`] for a check that says what it saw: `Err(last)` goes into the panic message when
/// the deadline passes.
pub async fn wait_until_ok<T, E: std::fmt::Debug, F, Fut>(
    what: &str,
    deadline: Duration,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}; last seen: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval, bounded by the deadline above
    }
}

/// Records the errors librdkafka reports (authentication, TLS, transport) so tests can assert on them.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<(RDKafkaErrorCode, String)>>>);

impl Recorder {
    /// Every error seen so far: (code, reason).
    pub fn errors(&self) -> Vec<(RDKafkaErrorCode, String)> {
        self.0.lock().unwrap().clone()
    }
}

impl ClientContext for Recorder {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        self.0.lock().unwrap().push((code, reason.to_string()));
    }
}
impl ConsumerContext for Recorder {}

/// A client config for `bootstrap` with `settings`.
pub fn config(bootstrap: &str, settings: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", unique("group"))
        .set("enable.auto.commit", "false")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "1000");
    for (k, v) in settings {
        c.set(*k, *v);
    }
    c
}

/// What happened when a client asked for metadata.
#[derive(Debug)]
pub enum Outcome {
    /// Metadata came back: the broker ids seen.
    Connected(Vec<i32>),
    /// It failed; the errors librdkafka reported on the way.
    Rejected(Vec<(RDKafkaErrorCode, String)>),
}

/// Connects with `config` and asks for cluster metadata within `timeout`.
pub fn metadata(config: &ClientConfig, timeout: Duration) -> Outcome {
    let recorder = Recorder::default();
    let consumer: BaseConsumer<Recorder> = config
        .create_with_context(recorder.clone())
        .expect("client config is valid");
    match consumer.fetch_metadata(None, timeout) {
        Ok(md) => Outcome::Connected(md.brokers().iter().map(|b| b.id()).collect()),
        Err(e) => {
            // Error events wait on the client's queue until it is polled; drain them (bounded).
            let deadline = Instant::now() + Duration::from_secs(3);
            while recorder.errors().is_empty() && Instant::now() < deadline {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            let mut errors = recorder.errors();
            errors.push((
                e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                e.to_string(),
            ));
            Outcome::Rejected(errors)
        }
    }
}

/// Asserts a connection succeeds and returns the broker ids.
pub fn connects(config: &ClientConfig) -> Vec<i32> {
    match metadata(config, Duration::from_secs(20)) {
        Outcome::Connected(ids) => ids,
        Outcome::Rejected(errors) => panic!("expected a connection, got {errors:#?}"),
    }
}

/// Asserts a connection is rejected with an error whose code is `code` and whose reason contains
/// `reason` (case-insensitive); returns every error seen.
pub fn rejected(
    config: &ClientConfig,
    code: RDKafkaErrorCode,
    reason: &str,
) -> Vec<(RDKafkaErrorCode, String)> {
    rejected_with(config, &[code], reason)
}

/// [`rejected`] where librdkafka may report the error under any of `codes` (a failed TLS handshake
/// is `SSL` or, when the failure is read from the socket first, `BrokerTransportFailure`).
pub fn rejected_with(
    config: &ClientConfig,
    codes: &[RDKafkaErrorCode],
    reason: &str,
) -> Vec<(RDKafkaErrorCode, String)> {
    match metadata(config, Duration::from_secs(5)) {
        Outcome::Connected(ids) => {
            panic!("expected a rejection ({codes:?}: {reason}), but connected to brokers {ids:?}")
        }
        Outcome::Rejected(errors) => {
            let wanted = reason.to_lowercase();
            assert!(
                errors
                    .iter()
                    .any(|(c, r)| codes.contains(c) && r.to_lowercase().contains(&wanted)),
                "expected {codes:?} with {reason:?}, got {errors:#?}"
            );
            errors
        }
    }
}

/// SASL settings for a user on a listener.
pub fn sasl<'a>(
    protocol: &'a str,
    mechanism: &'a str,
    user: &'a str,
    password: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("security.protocol", protocol),
        ("sasl.mechanism", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
    ]
}

/// A kube client for a context of the test kubeconfig (`admin` or `unprivileged`).
pub async fn kube_client(context: &str) -> kube::Client {
    let env = Env::get();
    let kubeconfig =
        kube::config::Kubeconfig::read_from(env.var("KUBECONFIG")).expect("test kubeconfig reads");
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig context resolves");
    kube::Client::try_from(config).expect("kube client builds")
}

/// The outcome of one `kconn check` run.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// The JSON report (Null for other formats).
    pub report: serde_json::Value,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The row of check `name`.
    pub fn row(&self, name: &str) -> &serde_json::Value {
        self.report["connections"][0]["checks"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("no {name} row in {}", self.stdout))
    }
    /// Asserts the row of `name` has `result` and `reason`.
    pub fn assert(&self, name: &str, result: &str, reason: &str) -> &Self {
        let row = self.row(name);
        assert_eq!(
            (row["result"].as_str(), row["reason"].as_str()),
            (Some(result), Some(reason)),
            "{name}: {row:#}\n{}",
            self.stderr
        );
        self
    }
}

/// Writes `spec` (YAML flow text of the spec body) and `secrets` into a directory and runs `kconn check`.
pub fn check(spec: &str, secrets: &[(&str, &[(&str, &str)])], format: &str) -> Run {
    let mut yaml = format!("apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: t, namespace: tests}}\nspec:\n{spec}\n");
    for (name, data) in secrets {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: tests}}\nstringData:\n"));
        for (k, v) in *data {
            yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
        }
    }
    check_yaml(&yaml, format)
}

/// Writes `yaml` (KafkaConnection and Secret manifests) into a directory and runs `kconn check -f` on it,
/// with that directory as TMPDIR.
pub fn check_yaml(yaml: &str, format: &str) -> Run {
    check_yaml_with(yaml, format, &[])
}

/// [`check_yaml`] with more arguments for `kconn check` (e.g. `--models`). kconn runs in that
/// directory, without the test process's own Kerberos variables (it sets its own per connection).
pub fn check_yaml_with(yaml: &str, format: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conn.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "-f", file.to_str().unwrap(), "-o", format])
        .args(extra)
        .env("TMPDIR", dir.path())
        .env_remove("KRB5_CONFIG")
        .env_remove("KRB5CCNAME")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    keep_text("check", &format!("{stdout}\n{stderr}"));
    let report = if format == "json" {
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::Null
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stdout,
        stderr,
    }
}

/// Installs the CRD as generated. kube-apiserver 1.20 does not know `x-kubernetes-validations`: a plain
/// create (not server-side apply) is accepted and the rules are dropped there; newer servers keep them.
pub async fn install_crd(client: &kube::Client) {
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = kube::Api::all(client.clone());
    match crds
        .create(&kube::api::PostParams::default(), &kconn::api::crd())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("CRD create failed: {e}"),
    }
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(
            crds,
            "kafkaconnections.kconn.dev",
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD established within 30 s")
    .expect("watching the CRD works");
}

/// A fresh namespace for one test.
pub async fn namespace(client: &kube::Client) -> String {
    let name = unique("ns").replace('.', "-");
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&kube::api::PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

/// Creates a topic with replication factor 1 whose messages never expire: tests produce messages with
/// fixed timestamps years old, which the broker's default retention (7 days, checked every 5 minutes)
/// would otherwise delete between producing and reading them.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        config(bootstrap, &[]).create().unwrap();
    let t =
        rdkafka::admin::NewTopic::new(name, partitions, rdkafka::admin::TopicReplication::Fixed(1))
            .set("retention.ms", "-1");
    admin
        .create_topics(
            [&t],
            &rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
}

/// Produces one message with a timestamp and a key.
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    ts: i64,
    key: &str,
    payload: &[u8],
) {
    let producer: rdkafka::producer::FutureProducer = config(bootstrap, &[]).create().unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(topic)
                .partition(partition)
                .timestamp(ts)
                .key(key)
                .payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// `bytes` in base64, as a Secret's `data` holds them.
pub fn base64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Where the outputs of kconn processes are kept for `scripts/secret-sweep.sh`: `captures/` next to the
/// environment file (emptied by every `scripts/test-env.sh up`).
pub fn captures_dir() -> PathBuf {
    let env = std::env::var_os("KCONN_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-env/env"));
    env.parent().unwrap().join("captures")
}

/// Keeps a copy of a file among the captures (best effort: a test never fails for it).
pub fn keep_capture(kind: &str, file: &std::path::Path) {
    let dir = captures_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::copy(file, dir.join(format!("{}.{kind}.log", unique("capture"))));
    }
}

/// Keeps text among the captures (best effort).
pub fn keep_text(kind: &str, text: &str) {
    let dir = captures_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{}.{kind}.txt", unique("capture"))), text);
    }
}

/// A keytab (format 0x0502) with one entry per `(principal name, realm, enctype, kvno)`; each key is
/// 32 filler bytes, known to no KDC.
pub fn keytab(entries: &[(&str, &str, u16, u32)]) -> Vec<u8> {
    let mut out = vec![5, 2];
    for (name, realm, enctype, kvno) in entries {
        let mut e = Vec::new();
        let parts: Vec<&str> = name.split('/').collect();
        e.extend((parts.len() as u16).to_be_bytes());
        e.extend((realm.len() as u16).to_be_bytes());
        e.extend(realm.as_bytes());
        for p in &parts {
            e.extend((p.len() as u16).to_be_bytes());
            e.extend(p.as_bytes());
        }
        e.extend(1u32.to_be_bytes()); // name type
        e.extend(0u32.to_be_bytes()); // timestamp
        e.push((*kvno).min(255) as u8);
        e.extend(enctype.to_be_bytes());
        e.extend(32u16.to_be_bytes());
        e.extend([0x5A; 32]);
        e.extend(kvno.to_be_bytes());
        out.extend((e.len() as i32).to_be_bytes());
        out.extend(e);
    }
    out
}

/// The verdicts of a judge of scripts/judges (`kstatus`, or `argocd` with a health script) on
/// `objects`, one JSON object `{status, message}` each.
pub fn judge(
    which: &str,
    script: Option<&std::path::Path>,
    objects: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut cmd = std::process::Command::new(Env::get().var("JUDGES"));
    cmd.arg(which);
    if let Some(script) = script {
        cmd.arg(script);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the judges run (scripts/test-env.sh builds them)");
    let mut input = String::new();
    for o in objects {
        input.push_str(&serde_json::to_string(o).unwrap());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "judges {which}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The models of a connection's catalog ConfigMaps, decoded strictly (an unreadable shard fails the
/// test), in shard order.
pub fn catalog_models(
    shards: &[k8s_openapi::api::core::v1::ConfigMap],
) -> Vec<kconn::testing::models::Model> {
    use kconn::testing::models::catalog;
    let gz: Vec<Vec<u8>> = shards
        .iter()
        .map(|cm| {
            cm.binary_data.as_ref().unwrap()[catalog::SHARD_KEY]
                .0
                .clone()
        })
        .collect();
    catalog::read(&gz).unwrap()
}

/// How often kconn asked the test environment's schema registry for schema `id` itself
/// (`/schemas/ids/<id>`), by the registry's own access log.
pub fn registry_fetches(id: u64) -> usize {
    let env = Env::get();
    let dir = std::path::Path::new(env.var("KCONN_TEST_ENV_PIDS"))
        .parent()
        .unwrap()
        .to_path_buf();
    let log = std::fs::read_to_string(dir.join("log/registry.log")).unwrap_or_default();
    let path = format!("path=\"/apis/ccompat/v7/schemas/ids/{id}\"");
    log.lines()
        .filter(|l| l.contains(&path) && l.contains("user_agent=\"kconn\""))
        .count()
}
