//! `cargo bench --bench heap`: the connection test run again and again in one process (as the operator
//! runs it, without the operator around it), printing the heap in use every `KCONN_HEAP_EVERY` tests
//! (200) for `KCONN_HEAP_TESTS` tests (2,000) of each kind: healthy, closed port, wrong password,
//! SASL_SSL with SCRAM, mTLS, Kerberos (its Kafka session runs in a child process, as in `kconn`:
//! this binary serves as that child), and model sampling (`KCONN_HEAP_KIND` picks one). A test that
//! leaks shows as a heap that keeps growing. Needs `scripts/test-env.sh up`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime};

use kconn::api::KafkaConnection;
use kconn::testing::checks::{self, TestInput};
use kconn::testing::secrets::SecretStore;
use support::Env;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The heap in use, MiB (what `kconn_heap_in_use_bytes` reports).
fn heap_mib() -> f64 {
    let (in_use, _) = kconn::testing::http::heap().expect("heap counters need glibc on Linux");
    in_use as f64 / 1024.0 / 1024.0
}

fn main() {
    // Kerberos connections run their Kafka session in a child process started from this executable
    // with the subcommand `kconn` would get.
    if std::env::args().nth(1).as_deref() == Some(kconn::testing::kafka::probe::SUBCOMMAND) {
        std::process::exit(kconn::testing::commands::child().into());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let tests = env_or("KCONN_HEAP_TESTS", 2000);
    let every = env_or("KCONN_HEAP_EVERY", 200);
    let env = Env::get();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut secrets = SecretStore::default();
    let file = |name: &str| std::fs::read(env.tls(name)).unwrap();
    for (name, data) in [
        (
            "wrong",
            vec![
                ("username", env.var("KAFKA_SASL_USER").as_bytes().to_vec()),
                ("password", b"not-the-password".to_vec()),
            ],
        ),
        (
            "user",
            vec![
                ("username", env.var("KAFKA_SASL_USER").as_bytes().to_vec()),
                (
                    "password",
                    env.var("KAFKA_SASL_PASSWORD").as_bytes().to_vec(),
                ),
            ],
        ),
        ("ca", vec![("ca.crt", file("ca.crt"))]),
        (
            "krb",
            vec![
                (
                    "krb5.keytab",
                    std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap(),
                ),
                ("krb5.conf", std::fs::read(env.var("KRB5_CONFIG")).unwrap()),
            ],
        ),
        (
            "cert",
            vec![
                ("tls.crt", file("client.crt")),
                ("tls.key", file("client.key")),
            ],
        ),
    ] {
        let data: serde_json::Map<String, serde_json::Value> = data
            .into_iter()
            .map(|(k, v)| (k.to_string(), support::base64(&v).into()))
            .collect();
        secrets.insert(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "heap", "resourceVersion": "1"},
                "data": data
            }))
            .unwrap(),
        );
    }
    let ca = serde_json::json!({"name": "ca", "key": "ca.crt"});
    let kinds = [
        (
            "healthy",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_PLAINTEXT")]}),
        ),
        (
            "closed port",
            serde_json::json!({"bootstrapServers": [closed]}),
        ),
        (
            "wrong password",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
                "authentication": {"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "wrong"}}}}),
        ),
        (
            "SASL_SSL",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_SASL_SSL")],
                "tls": {"caSecretRef": ca},
                "authentication": {"sasl": {"mechanism": "SCRAM-SHA-256", "secretRef": {"name": "user"}}}}),
        ),
        (
            "mTLS",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_MTLS")],
                "tls": {"caSecretRef": ca, "clientCertSecretRef": {"name": "cert"}}}),
        ),
        (
            "Kerberos",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
                "authentication": {"kerberos": {
                    "principal": env.var("KAFKA_CLIENT_PRINCIPAL"),
                    "serviceName": env.var("KAFKA_SERVICE_NAME"),
                    "keytabSecretRef": {"name": "krb", "key": "krb5.keytab"},
                    "krb5ConfSecretRef": {"name": "krb", "key": "krb5.conf"}}}}),
        ),
    ];
    let only = std::env::var("KCONN_HEAP_KIND").unwrap_or_default();
    for (kind, mut spec) in kinds.into_iter().filter(|(k, _)| k.contains(only.as_str())) {
        spec["role"] = "Source".into();
        spec["topics"] = serde_json::json!({"expression": "kconn-heap-none"});
        spec["check"] = serde_json::json!({"interval": "60s", "timeout": "10s"});
        let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "heap", "namespace": "heap"}, "spec": spec
        }))
        .unwrap();
        let started = Instant::now();
        let mut line = format!("{kind:>15}: heap MiB");
        for i in 1..=tests {
            let input = TestInput {
                spec: &conn.spec,
                valid: &kconn::testing::validate::outcome(&conn.spec, &[]),
                secrets: &secrets,
                now: SystemTime::now(),
                group_id: checks::group_id(&conn.spec, "heap", "heap"),
            };
            let report = checks::run(&input, &kconn::testing::kafka::RdKafka).await;
            if i == 1 {
                let auth = report.checks.iter().find(|c| c.name == "Authenticated");
                line += &format!(
                    " [Authenticated: {}]",
                    auth.map_or("-".to_string(), |c| format!("{:?} {}", c.result, c.reason))
                );
            }
            drop(report);
            if i == 1 || i % every == 0 {
                line += &format!(" {:.2}@{i}", heap_mib());
            }
        }
        println!(
            "{line} ({:.0} tests/s)",
            tests as f64 / started.elapsed().as_secs_f64()
        );
    }
    if "sampling".contains(only.as_str()) {
        sampling(tests, every).await;
    }
}

/// Model sampling (a consumer assigned to a topic's partitions, offsets listed, messages read) in a
/// loop, on a topic of 3 partitions holding 30 messages.
async fn sampling(rounds: usize, every: usize) {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT");
    let topic = support::unique("heap");
    support::create_topic(bootstrap, &topic, 3).await;
    for i in 0..30 {
        let value = format!(r#"{{"id": {i}}}"#);
        support::produce(
            bootstrap,
            &topic,
            i % 3,
            1_700_000_000_000 + i64::from(i),
            "k",
            value.as_bytes(),
        )
        .await;
    }
    let settings = kconn::testing::kafka::ClientSettings::plaintext(vec![bootstrap.to_string()]);
    let topics = vec![kconn::testing::kafka::Topic {
        name: topic.clone(),
        partitions: 3,
        replication_factor: 1,
    }];
    let started = Instant::now();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = format!("{:>15}: heap MiB", "sampling");
        for i in 1..=rounds {
            let samples = kconn::testing::kafka::sample::newest(
                &settings,
                &topics,
                10,
                Duration::from_secs(20),
            )
            .expect("sampling");
            assert_eq!(samples[&topics[0].name].len(), 10);
            if i == 1 || i % every == 0 {
                line += &format!(" {:.2}@{i}", heap_mib());
            }
        }
        line
    })
    .await
    .unwrap();
    println!(
        "{line} ({:.0} rounds/s)",
        rounds as f64 / started.elapsed().as_secs_f64()
    );
}
