//! `kconn demo`: an in-process Kafka cluster (librdkafka's mock cluster: 3 brokers, sample topics with
//! JSON and non-JSON messages) and the full connection test against it. Needs no Kafka and no Kubernetes.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::api::KafkaConnection;
use crate::commands::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::secrets::SecretStore;
use crate::{checks, kafka, output};

/// Sample topics: name, partitions, and the messages written to it.
const TOPICS: &[(&str, i32, &[&str])] = &[
    (
        "orders.eu",
        3,
        &[
            r#"{"id": 1, "amount": 12.5, "currency": "EUR", "customer": {"id": "c-17", "vip": true}}"#,
            r#"{"id": 2, "amount": 7, "currency": "EUR", "customer": {"id": "c-3"}, "coupon": null}"#,
        ],
    ),
    (
        "orders.us",
        3,
        &[r#"{"id": 10, "amount": 99.9, "currency": "USD", "items": [{"sku": "A-1", "qty": 2}]}"#],
    ),
    (
        "payments.raw",
        1,
        &[
            r#"{"payment": 1, "status": "settled"}"#,
            "PAYMENT 2 SETTLED (legacy text format)",
        ],
    ),
    ("audit.log", 1, &["user=alice action=login"]),
];

/// The connection the demo tests: every `orders.` and `payments.` topic of the in-process cluster.
fn demo_connection(bootstrap: &str) -> KafkaConnection {
    let servers: Vec<&str> = bootstrap.split(',').collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {
            "displayName": "kconn demo (in-process cluster)",
            "bootstrapServers": servers,
            "topics": {"expression": r"(orders|payments)\..*"},
            "check": {"interval": "5m", "timeout": "20s"}
        }
    }))
    .expect("the demo connection is valid")
}

/// Runs the demo; returns the exit code.
pub fn run(hold: bool, output: crate::output::Format) -> u8 {
    let Some(rt) = crate::commands::runtime() else {
        return EXIT_BAD_INPUT;
    };
    let cluster = match start_cluster(&rt) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the in-process Kafka cluster: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let bootstrap = cluster.bootstrap_servers();
    eprintln!("kconn demo: an in-process Kafka cluster with 3 brokers at {bootstrap}");
    eprintln!(
        "            topics: {}",
        TOPICS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
    );
    eprintln!("testing KafkaConnection default/demo (topics (orders|payments)\\..*)\n");

    let conn = demo_connection(&bootstrap);
    let secrets = SecretStore::default();
    let input = checks::TestInput {
        spec: &conn.spec,
        valid: &crate::validate::outcome(&conn.spec, &[]),
        secrets: &secrets,
        now: std::time::SystemTime::now(),
        group_id: checks::group_id(&conn.spec, "default", "demo"),
    };

    let report = rt.block_on(checks::run(&input, &kafka::RdKafka));
    let (models, models_error) = match report.session.clone() {
        Some(session) => rt.block_on(crate::models::report::sample_models(&conn, session)),
        None => (
            Vec::new(),
            Some("the test did not reach the topics".to_string()),
        ),
    };
    let failed = report.failed();
    let printed = output::print(
        &output::Report {
            connections: vec![output::ConnectionReport {
                name: "demo".into(),
                namespace: "default".into(),
                source: "kconn demo".into(),
                checks: report.checks,
                problems: Vec::new(),
                cluster: report.cluster,
                topics: report.topics,
                models,
                models_error,
                binding: None,
            }],
        },
        output,
    );
    if let Err(e) = printed {
        eprintln!("error: cannot write the report: {e}");
        return EXIT_BAD_INPUT;
    }
    if hold {
        eprintln!("\nthe cluster keeps running: bootstrap servers {bootstrap}");
        eprintln!("point a KafkaConnection's spec.bootstrapServers at it and run `kconn check -f FILE`; Ctrl-C stops it");
        let _ = rt.block_on(tokio::signal::ctrl_c());
    }
    drop(cluster);
    if failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn start_cluster(
    rt: &tokio::runtime::Runtime,
) -> Result<MockCluster<'static, rdkafka::producer::DefaultProducerContext>, String> {
    let cluster = MockCluster::new(3).map_err(|e| e.to_string())?;
    for (name, partitions, _) in TOPICS {
        cluster
            .create_topic(name, *partitions, 3)
            .map_err(|e| e.to_string())?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("message.timeout.ms", "10000")
        .create()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        for (topic, _, messages) in TOPICS {
            for (i, payload) in messages.iter().enumerate() {
                let key = format!("k{i}");
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(*payload),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| format!("writing the sample messages to {topic}: {e}"))?;
            }
        }
        Ok::<(), String>(())
    })?;
    Ok(cluster)
}
