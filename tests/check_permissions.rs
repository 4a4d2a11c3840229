//! Authorized and ProducerSettings against the real clusters: permissions from the operations Kafka
//! reports as authorized (KIP-430), durability against real replication factors and min.insync.replicas.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use support::{check, config, sasl, unique, Env};

async fn create_topic(
    bootstrap: &str,
    settings: &[(&str, &str)],
    name: &str,
    replication: i32,
    min_insync: &str,
) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap, settings).create().unwrap();
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(replication))
        .set("min.insync.replicas", min_insync);
    let res = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    res[0].as_ref().expect("topic created");
}

/// A connection over SCRAM as `user` (an env prefix such as KAFKA_READ_ONLY) to topics matching `expr`.
fn spec(
    user_env: &str,
    role: &str,
    expr: &str,
    extra: &str,
) -> (String, Vec<(&'static str, String)>) {
    let env = Env::get();
    let spec = format!(
        "  role: {role}\n  bootstrapServers: ['{}']\n  topics: {{expression: '{expr}'}}\n  authentication: {{sasl: {{mechanism: SCRAM-SHA-512, secretRef: {{name: user}}}}}}\n{extra}",
        env.var("KAFKA_SASL_PLAINTEXT")
    );
    let secret = vec![
        ("username", env.var(&format!("{user_env}_USER")).to_string()),
        (
            "password",
            env.var(&format!("{user_env}_PASSWORD")).to_string(),
        ),
    ];
    (spec, secret)
}

fn run(user_env: &str, role: &str, expr: &str, extra: &str) -> support::Run {
    let (spec, secret) = spec(user_env, role, expr, extra);
    let secret: Vec<(&str, &str)> = secret.iter().map(|(k, v)| (*k, v.as_str())).collect();
    check(&spec, &[("user", &secret)], "json")
}

#[tokio::test]
async fn permissions_follow_the_role() {
    let env = Env::get();
    let admin = sasl(
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        env.var("KAFKA_SUPER_USER"),
        env.var("KAFKA_SUPER_PASSWORD"),
    );
    let topic = unique("authz");
    create_topic(env.var("KAFKA_SASL_PLAINTEXT"), &admin, &topic, 1, "1").await;
    let expr = topic.replace('.', "\\.");
    let group = "  consumer: {groupId: test-authz-group}\n";

    // The full user may read, write and use the group.
    let r = run("KAFKA_SASL", "SourceAndTarget", &expr, group);
    r.assert("TopicsResolved", "Passed", "TopicsMatched")
        .assert("Authorized", "Passed", "Authorized");
    assert!(
        r.row("Authorized")["message"]
            .as_str()
            .unwrap()
            .contains("read 1 topic"),
        "{}",
        r.stdout
    );

    // describer sees the topic but may not read it.
    let r = run("KAFKA_DESCRIBE_ONLY", "Source", &expr, group);
    r.assert("TopicsResolved", "Passed", "TopicsMatched")
        .assert("Authorized", "Failed", "NotAuthorized");
    assert!(
        r.row("Authorized")["message"]
            .as_str()
            .unwrap()
            .contains("may not read 1 of 1 topics"),
        "{}",
        r.stdout
    );
    assert_eq!(r.code, 1);

    // reader may read but not write: fine as a Source, not as a Target.
    run("KAFKA_READ_ONLY", "Source", &expr, group).assert("Authorized", "Passed", "Authorized");
    let r = run("KAFKA_READ_ONLY", "Target", &expr, group);
    r.assert("Authorized", "Failed", "NotAuthorized");
    assert!(
        r.row("Authorized")["message"]
            .as_str()
            .unwrap()
            .contains("may not write"),
        "{}",
        r.stdout
    );

    // nogroup may read the topic but not use any consumer group.
    let r = run("KAFKA_NO_GROUP", "Source", &expr, group);
    r.assert("Authorized", "Failed", "NotAuthorized");
    assert_eq!(
        r.row("Authorized")["field"],
        "spec.consumer.groupId",
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn durability_against_real_min_insync_replicas() {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_CLUSTER3");
    let base = unique("rf3");
    for min in ["1", "2", "3"] {
        create_topic(bootstrap, &[], &format!("{base}-min{min}"), 3, min).await;
    }
    let check3 = |acks: &str, min: &str| {
        let spec = format!(
            "  role: Target\n  bootstrapServers: ['{}']\n  topics: {{expression: '{}-min{min}'}}\n  producer: {{acks: {acks}, compression: zstd}}",
            bootstrap.split(',').next().unwrap(),
            base.replace('.', "\\.")
        );
        check(&spec, &[], "json")
    };
    let r = check3("MajorityIsr", "1");
    r.assert("ProducerSettings", "Failed", "ProducerSettingsUnsafe");
    assert!(
        r.row("ProducerSettings")["message"]
            .as_str()
            .unwrap()
            .contains("replication factor 3, min.insync.replicas 1, needs 2"),
        "{}",
        r.stdout
    );
    assert_eq!(r.row("ProducerSettings")["field"], "spec.producer.acks");
    check3("MajorityIsr", "2").assert("ProducerSettings", "Passed", "ProducerSettingsOk");
    check3("AllIsr", "2").assert("ProducerSettings", "Failed", "ProducerSettingsUnsafe");
    let r = check3("AllIsr", "3");
    r.assert("ProducerSettings", "Passed", "ProducerSettingsOk")
        .assert("ClusterMetadata", "Passed", "MetadataFetched");
    assert!(
        r.report["connections"][0]["cluster"]["controllerId"]
            .as_i64()
            .is_some(),
        "{}",
        r.stdout
    );
}
