//! Every manifest in examples/ works against a real Kafka: each is pointed at the test environment's
//! matching listener (its bootstrap servers replaced, the values of its Secrets filled from the
//! environment under the same Secret names and keys), and `kconn check` passes it with the checks of
//! its kind proved (`Authenticated`, plus `TlsHandshake`, `KerberosTicket` or `TokenAcquired` where
//! they apply).
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::path::Path;

use k8s_openapi::ByteString;
use serde_yaml::Value;
use support::Env;

/// Each example, the environment listener it is tried against, and the checks that must pass.
const EXAMPLES: &[(&str, &str, &[&str])] = &[
    (
        "plaintext.yaml",
        "KAFKA_PLAINTEXT",
        &["Authenticated", "TopicsResolved"],
    ),
    (
        "sasl-scram-tls.yaml",
        "KAFKA_SASL_SSL",
        &["CredentialsResolved", "TlsHandshake", "Authenticated"],
    ),
    (
        "mtls.yaml",
        "KAFKA_MTLS",
        &["CredentialsResolved", "TlsHandshake", "Authenticated"],
    ),
    (
        "kerberos.yaml",
        "KAFKA_SASL_PLAINTEXT",
        &["CredentialsResolved", "KerberosTicket", "Authenticated"],
    ),
    (
        "source-models.yaml",
        "KAFKA_PLAINTEXT",
        &["Authenticated", "TopicsResolved"],
    ),
    (
        "target-durability.yaml",
        "KAFKA_CLUSTER3",
        &["Authenticated", "TopicsResolved", "ProducerSettings"],
    ),
    (
        "oauth.yaml",
        "KAFKA_OAUTH",
        &["TokenAcquired", "Authenticated"],
    ),
    (
        "pinned-agent.yaml",
        "KAFKA_PLAINTEXT",
        &["Authenticated", "TopicsResolved"],
    ),
];

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn the_table_names_every_example() {
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut named: Vec<String> = EXAMPLES.iter().map(|e| e.0.to_string()).collect();
    named.sort();
    assert_eq!(files, named);
}

/// The environment's value for a Secret key used by the examples.
fn secret_value(env: &Env, key: &str) -> Value {
    let file = |path: &str| Value::String(std::fs::read_to_string(path).unwrap());
    match key {
        "username" => env.var("KAFKA_SASL_USER").into(),
        "password" => env.var("KAFKA_SASL_PASSWORD").into(),
        "ca.crt" => file(&env.tls("ca.crt")),
        "tls.crt" => file(&env.tls("client.crt")),
        "tls.key" => file(&env.tls("client.key")),
        "krb5.conf" => file(env.var("KRB5_CONFIG")),
        "clientId" => env.var("OAUTH_CLIENT_ID").into(),
        "clientSecret" => env.var("OAUTH_CLIENT_SECRET").into(),
        other => panic!("no test value for the Secret key {other}: add one here"),
    }
}

/// The example's documents, pointed at `listener` with the environment's credentials.
fn localized(file: &str, listener: &str) -> String {
    let env = Env::get();
    let text = std::fs::read_to_string(examples_dir().join(file)).unwrap();
    let mut docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let mut keytab_ref = None;
    for v in docs.iter_mut().filter(|v| v["kind"] == "KafkaConnection") {
        let servers = env
            .var(listener)
            .split(',')
            .map(|s| Value::String(s.into()));
        v["spec"]["bootstrapServers"] = Value::Sequence(servers.collect());
        // The environment's OAUTH listener is SASL_PLAINTEXT; its provider's https token endpoint
        // has the test CA (ca.crt).
        if let Some(oauth) = v["spec"]["authentication"].get_mut("oauth") {
            oauth["tokenEndpoint"] = env.var("OAUTH_TLS_TOKEN_URL").into();
            oauth["scope"] = env.var("OAUTH_SCOPE").into();
            if let Value::Mapping(spec) = &mut v["spec"] {
                spec.remove("tls");
            }
        }
        if let Some(krb) = v["spec"]["authentication"].get_mut("kerberos") {
            krb["principal"] = env.var("KAFKA_CLIENT_PRINCIPAL").into();
            let r = &krb["keytabSecretRef"];
            keytab_ref = Some((r["name"].clone(), r["key"].as_str().unwrap().to_string()));
        }
    }
    for v in docs.iter_mut().filter(|v| v["kind"] == "Secret") {
        let keys: Vec<String> = v["stringData"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        for k in keys {
            v["stringData"][k.as_str()] = secret_value(env, &k);
        }
        // The binary keytab, which the example can only describe in a comment.
        if let Some((_, key)) = keytab_ref
            .as_ref()
            .filter(|(n, _)| v["metadata"]["name"] == *n)
        {
            let keytab = std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap();
            let data = serde_json::json!({ key.as_str(): ByteString(keytab) });
            v["data"] = serde_yaml::to_value(data).unwrap();
        }
    }
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test]
async fn every_example_passes_against_the_real_listener_of_its_kind() {
    let env = Env::get();
    // A topic for each example's expression, so TopicsResolved is proved too (the SASL test user may
    // describe only `test.` topics, so the SCRAM example is judged on authentication).
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    for (listener, topic, replicas) in [
        ("KAFKA_PLAINTEXT", "orders.examples", 1),
        ("KAFKA_PLAINTEXT", "events.examples", 1),
        ("KAFKA_PLAINTEXT", "warehouse.examples", 1),
        ("KAFKA_CLUSTER3", "audit.log", 3),
    ] {
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            support::config(env.var(listener), &[]).create().unwrap();
        // AllIsr (the durability example) asks every replica: min.insync.replicas = replication factor.
        let min_isr = replicas.to_string();
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(replicas))
            .set("min.insync.replicas", &min_isr);
        let created = admin
            .create_topics([&new], &AdminOptions::new())
            .await
            .unwrap();
        match &created[0] {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err(e) => panic!("creating {topic}: {e:?}"),
        }
        let config =
            rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(topic))
                .set("min.insync.replicas", &min_isr);
        let altered = admin
            .alter_configs([&config], &AdminOptions::new())
            .await
            .unwrap();
        assert!(altered[0].is_ok(), "{topic}: {:?}", altered[0]);
    }

    let dir = tempfile::tempdir().unwrap();
    for (file, listener, must_pass) in EXAMPLES {
        let path = dir.path().join(file);
        std::fs::write(&path, localized(file, listener)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args(["check", "-f", path.to_str().unwrap(), "-o", "json"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{file}: {stdout}\n{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let rows = report["connections"][0]["checks"].as_array().unwrap();
        for name in *must_pass {
            let row = rows
                .iter()
                .find(|r| r["name"] == *name)
                .unwrap_or_else(|| panic!("{file}: no {name} row in {stdout}"));
            assert_eq!(row["result"], "Passed", "{file}: {row:#}");
        }
        assert!(
            rows.iter().all(|r| r["result"] != "Failed"),
            "{file}: {stdout}"
        );
    }
}
