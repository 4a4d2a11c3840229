//! Models of registry-framed topics, against the test environment's real schema registry and Kafka,
//! with messages written by confluent-kafka's own Avro, JSON Schema and Protobuf serializers
//! (`scripts/registry/produce.py`): each format through `kconn check --models`; `kconn run`'s catalog
//! with a new schema version shown as changed and the last catalog kept while the registry is
//! unreachable; an unknown schema id and a wrong registry password named; each distinct schema
//! fetched once per refresh, counted in the registry's own access log.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kconn::api::{KafkaConnection, KafkaConnectionStatus};
use kconn::testing::models::{registry, store};
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::{self as op, condition, wait_status};
use support::{check_yaml_with, unique, Env, Run};

const DEADLINE: Duration = Duration::from_secs(90);

/// Writes `count` records to each of `topics` with the real serializer of `format`; the schema ids
/// the serializer used.
fn produce(topics: &[&str], format: &str, extra: &[&str]) -> serde_json::Value {
    let env = Env::get();
    let out = Command::new(env.var("SERDES_PYTHON"))
        .arg(env.var("SERDES_PRODUCER"))
        .args(["--bootstrap", env.var("KAFKA_PLAINTEXT")])
        .args(["--registry", env.var("SCHEMA_REGISTRY_URL")])
        .args(["--topic", &topics.join(",")])
        .args(["--format", format])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "produce.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `kconn check --models -o json` of topics matching `expression`, with `registry` as the spec's
/// `schemaRegistry` (the Secret `sr` holds the registry user and `password`).
fn check_models(
    expression: &str,
    registry: serde_json::Value,
    password: &str,
    extra: serde_json::Value,
) -> Run {
    let env = Env::get();
    let mut spec = serde_json::json!({
        "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
        "topics": {"expression": expression},
        "schemaRegistry": registry,
        "check": {"timeout": "30s"},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let yaml = format!(
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: sr, namespace: tests}}\nspec: {}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: sr, namespace: tests}}\nstringData: {}\n",
        serde_json::to_string(&spec).unwrap(),
        serde_json::json!({"username": env.var("SCHEMA_REGISTRY_USER"), "password": password})
    );
    check_yaml_with(&yaml, "json", &["--models"])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn regex(prefix: &str) -> String {
    format!("{}.*", prefix.replace('.', "[.]"))
}

/// The model of `topic` in a `kconn check --models -o json` report.
fn model<'a>(run: &'a Run, topic: &str) -> &'a serde_json::Value {
    run.report["connections"][0]["models"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["topic"] == topic))
        .unwrap_or_else(|| panic!("no model of {topic} in {}", run.stdout))
}

#[test]
fn each_format_is_read_with_its_registry_schema() {
    let env = Env::get();
    let prefix = unique("sr-formats");
    for (format, name) in [
        ("avro", "avro"),
        ("json", "jsonSchema"),
        ("protobuf", "protobuf"),
    ] {
        let topic = format!("{prefix}.{format}");
        let ids = produce(&[&topic], format, &["--keys"]);
        let run = check_models(
            &regex(&prefix),
            serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_URL")]}),
            "",
            serde_json::json!({}),
        );
        run.assert("SchemaRegistryReachable", "Passed", "RegistryReachable");
        let m = &model(&run, &topic)["model"];
        assert_eq!(m["format"], name, "{format}: {m:#}");
        assert_eq!(m["sampled"], 5, "{format}");
        assert_eq!(m["keyFormat"], "avro", "{format}");
        let schema = &m["schemas"][0];
        assert_eq!(schema["id"], ids["value"], "{format}");
        assert_eq!(schema["subject"], format!("{topic}-value"), "{format}");
        assert_eq!(schema["version"], 1, "{format}");
        assert!(!schema["schema"].as_str().unwrap().is_empty());
        assert_eq!(m["keySchemas"][0]["subject"], format!("{topic}-key"));
        let fields = &m["schema"]["properties"];
        for field in ["id", "amount", "customer", "status", "lines"] {
            assert!(
                fields.get(field).is_some(),
                "{format}: no {field} in {fields:#}"
            );
        }
        assert_eq!(fields["amount"]["type"], "number", "{format}");
        // The text report names the format, the subject and the id.
        let text = check_yaml_with(
            &format!(
                "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: sr, namespace: tests}}\nspec: {{bootstrapServers: ['{}'], topics: {{expression: '{}'}}, schemaRegistry: {{url: ['{}']}}}}\n",
                env.var("KAFKA_PLAINTEXT"),
                regex(&topic),
                env.var("SCHEMA_REGISTRY_URL")
            ),
            "table",
            &["--models"],
        );
        assert!(
            text.stdout
                .contains(&format!("{topic}-value v1, id {}", ids["value"])),
            "{}",
            text.stdout
        );
    }
}

#[test]
fn unreadable_messages_and_a_refusing_registry_are_named() {
    let env = Env::get();
    let prefix = unique("sr-bad");
    let topic = format!("{prefix}.orders");
    produce(&[&topic], "avro", &[]);
    // A record framed for a schema id the registry never issued (framed by hand: no serializer
    // writes an id it did not get from the registry).
    let unknown: u32 = 987_654_321;
    let mut framed = vec![0];
    framed.extend_from_slice(&unknown.to_be_bytes());
    framed.extend_from_slice(&[2, 4]);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(support::produce(
            env.var("KAFKA_PLAINTEXT"),
            &topic,
            0,
            now_ms(),
            "k",
            &framed,
        ));
    let registry = serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_URL")]});
    let run = check_models(&regex(&prefix), registry.clone(), "", serde_json::json!({}));
    let error = model(&run, &topic)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("offset 5")
            && error.contains(&format!("schema id {unknown} is not in the registry")),
        "{error}"
    );
    let skipped = check_models(
        &regex(&prefix),
        registry,
        "",
        serde_json::json!({"consumer": {"ignoreNonJsonMessages": true}}),
    );
    let m = &model(&skipped, &topic)["model"];
    assert_eq!(
        (m["sampled"].as_u64(), m["skipped"].as_u64()),
        (Some(5), Some(1)),
        "{m:#}"
    );

    // The registry with basic auth and a wrong password: the check names it, and no model is built
    // from a registry that refused.
    let wrong = check_models(
        &regex(&prefix),
        serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_AUTH_URL")], "basicAuthSecretRef": {"name": "sr"}}),
        "not-the-password",
        serde_json::json!({}),
    );
    wrong.assert("SchemaRegistryReachable", "Failed", "RegistryUnauthorized");
    wrong.assert("Authenticated", "Passed", "NoAuthentication");
    let not_sampled = wrong.report["connections"][0]["modelsError"]
        .as_str()
        .unwrap_or("");
    assert!(not_sampled.contains("HTTP 401"), "{}", wrong.stdout);
    assert!(!wrong.stdout.contains("not-the-password"));
}

#[test]
fn a_refresh_fetches_each_distinct_schema_once() {
    let env = Env::get();
    let prefix = unique("sr-once");
    let topics: Vec<String> = (0..40).map(|i| format!("{prefix}.t{i}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    // One schema of its own (a record name no other test uses), for 40 topics.
    let record = format!("Once{}", std::process::id());
    let ids = produce(&names, "avro", &["--count", "3", "--record", &record]);
    let id = ids["value"].as_u64().unwrap();
    let before = support::registry_fetches(id);
    let run = check_models(
        &regex(&prefix),
        serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_URL")]}),
        "",
        serde_json::json!({}),
    );
    let models = run.report["connections"][0]["models"].as_array().unwrap();
    assert_eq!(models.len(), 40, "{}", run.stdout);
    assert!(models.iter().all(|m| m["model"]["schemas"][0]["id"] == id));
    // The access log is written as requests end: wait for it to show the fetch.
    support::wait_for("the registry's access log", Duration::from_secs(10), || {
        (support::registry_fetches(id) > before).then_some(())
    });
    assert_eq!(
        support::registry_fetches(id) - before,
        1,
        "40 topics, one schema: one fetch"
    );
}

async fn refresh(conns: &Api<KafkaConnection>, name: &str, request: &str) -> KafkaConnectionStatus {
    conns
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"kconn.dev/refresh-requested-at": request}}})),
        )
        .await
        .unwrap();
    wait_status(
        conns,
        name,
        &format!("refresh {request} answered"),
        DEADLINE,
        |s| s.last_handled_refresh_request.as_deref() == Some(request),
    )
    .await
}

#[tokio::test]
async fn the_operator_keeps_a_registry_catalog_through_a_new_version_and_an_outage() {
    let env = Env::get();
    let prefix = unique("sr-run");
    let topic = format!("{prefix}.orders");
    let v1 = produce(&[&topic], "avro", &["--count", "3"]);
    produce(&[&format!("{prefix}.json")], "json", &["--count", "3"]);
    produce(&[&format!("{prefix}.proto")], "protobuf", &["--count", "3"]);

    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orders"},
        "spec": {"role": "Source", "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
                 "topics": {"expression": regex(&prefix)},
                 "schemaRegistry": {"url": [env.var("SCHEMA_REGISTRY_URL")]},
                 "check": {"interval": "10m", "timeout": "20s"}}
    }))
    .unwrap();
    let uid = conns
        .create(&PostParams::default(), &conn)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _operator = op::start(&ns, &dir.path().join("operator.log"), &[]);
    wait_status(&conns, "orders", "the catalog", DEADLINE, |s| {
        condition(s, "ModelsLoaded") == Some(("True", "CatalogLoaded"))
    })
    .await;
    let first = support::catalog_models(&store::existing(&cms, &uid).await.unwrap());
    let formats: Vec<(String, registry::Format)> =
        first.iter().map(|m| (m.topic.clone(), m.format)).collect();
    assert_eq!(
        formats,
        [
            (format!("{prefix}.json"), registry::Format::JsonSchema),
            (topic.clone(), registry::Format::Avro),
            (format!("{prefix}.proto"), registry::Format::Protobuf),
        ]
    );
    let orders = first.iter().find(|m| m.topic == topic).unwrap();
    assert_eq!(orders.schemas[0].id as u64, v1["value"].as_u64().unwrap());
    assert_eq!(orders.schemas[0].version, Some(1));

    // Version 2 (an optional note): the newest messages name it; the model changed.
    let v2 = produce(&[&topic], "avro", &["--count", "3", "--version", "2"]);
    assert_ne!(v1["value"], v2["value"]);
    let status = refresh(&conns, "orders", "v2").await;
    let models = status.models.as_ref().unwrap();
    assert_eq!(
        models.changes.as_ref().map(|c| c.changed),
        Some(1),
        "{status:#?}"
    );
    let second = support::catalog_models(&store::existing(&cms, &uid).await.unwrap());
    let orders = second.iter().find(|m| m.topic == topic).unwrap();
    let ids: Vec<u32> = orders.schemas.iter().map(|s| s.id).collect();
    assert_eq!(
        ids.last().map(|i| *i as u64),
        v2["value"].as_u64(),
        "{ids:?}"
    );
    assert_eq!(orders.schemas.last().unwrap().version, Some(2));
    assert!(orders.schema.value()["properties"].get("note").is_some());

    // The registry unreachable: the test fails its row (Kafka's rows pass), the refresh fails, and
    // the catalog of version 2 stays.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    conns
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"schemaRegistry": {"url": [format!("http://{closed}")]}}})),
        )
        .await
        .unwrap();
    let down = wait_status(&conns, "orders", "the registry's failure", DEADLINE, |s| {
        s.checks
            .iter()
            .any(|c| c.name == "SchemaRegistryReachable" && c.reason == "RegistryUnreachable")
            && condition(s, "ModelsLoaded").is_some_and(|(status, _)| status == "False")
    })
    .await;
    let authenticated = down
        .checks
        .iter()
        .find(|c| c.name == "Authenticated")
        .unwrap();
    assert_eq!(authenticated.reason, "NoAuthentication");
    let kept = support::catalog_models(&store::existing(&cms, &uid).await.unwrap());
    assert_eq!(
        kept, second,
        "the last catalog stays while the registry is down"
    );
}

#[test]
fn a_kerberos_connection_reads_registry_topics_in_its_sampling_child() {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;
    let env = Env::get();
    let prefix = unique("sr-krb");
    let topic = format!("{prefix}.orders");
    let spec = serde_json::json!({
        "bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
        "topics": {"expression": regex(&prefix)},
        "authentication": {"kerberos": {"principal": env.var("KAFKA_CLIENT_PRINCIPAL"),
            "serviceName": env.var("KAFKA_SERVICE_NAME"),
            "keytabSecretRef": {"name": "krb", "key": "krb5.keytab"},
            "krb5ConfSecretRef": {"name": "krb", "key": "krb5.conf"}}},
        // The registry with basic auth: its password reaches the child over stdin, as the keytab's
        // path and the TLS key do.
        "schemaRegistry": {"url": [env.var("SCHEMA_REGISTRY_AUTH_URL")], "basicAuthSecretRef": {"name": "sr"}},
        "check": {"timeout": "30s"},
    });
    let mut krb = Secret::default();
    krb.metadata.name = Some("krb".into());
    krb.metadata.namespace = Some("tests".into());
    krb.data = Some(
        [
            (
                "krb5.keytab",
                std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap(),
            ),
            ("krb5.conf", std::fs::read(env.var("KRB5_CONFIG")).unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v)))
        .collect(),
    );
    let yaml = format!(
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: krb, namespace: tests}}\nspec: {}\n---\n{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: sr, namespace: tests}}\nstringData: {}\n",
        serde_json::to_string(&spec).unwrap(),
        serde_yaml::to_string(&krb).unwrap(),
        serde_json::json!({"username": env.var("SCHEMA_REGISTRY_USER"), "password": env.var("SCHEMA_REGISTRY_PASSWORD")})
    );
    // Written through the registry with basic auth (the serializer registers the schema there).
    let out = Command::new(env.var("SERDES_PYTHON"))
        .env("SR_PASSWORD", env.var("SCHEMA_REGISTRY_PASSWORD"))
        .arg(env.var("SERDES_PRODUCER"))
        .args(["--bootstrap", env.var("KAFKA_PLAINTEXT")])
        .args(["--registry", env.var("SCHEMA_REGISTRY_AUTH_URL")])
        .args([
            "--user",
            env.var("SCHEMA_REGISTRY_USER"),
            "--password-env",
            "SR_PASSWORD",
        ])
        .args(["--topic", &topic, "--format", "avro", "--count", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth_ids: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = check_yaml_with(&yaml, "json", &["--models"]);
    run.assert("KerberosTicket", "Passed", "TicketIssued")
        .assert("SchemaRegistryReachable", "Passed", "RegistryReachable");
    let m = &model(&run, &topic)["model"];
    assert_eq!(m["format"], "avro", "{}", run.stdout);
    assert_eq!(
        m["schemas"].as_array().unwrap().last().unwrap()["id"],
        auth_ids["value"]
    );
    assert!(!run.stdout.contains(env.var("SCHEMA_REGISTRY_PASSWORD")));
}
