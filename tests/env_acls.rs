//! The test cluster's authorizer: users with partial rights are refused exactly what they lack.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{config, sasl, Env};

fn user(name: &str) -> (String, String) {
    let env = Env::get();
    let key = match name {
        "super" => "KAFKA_SUPER",
        "describer" => "KAFKA_DESCRIBE_ONLY",
        "reader" => "KAFKA_READ_ONLY",
        "full" => "KAFKA_SASL",
        other => panic!("no such test user {other}"),
    };
    (
        env.var(&format!("{key}_USER")).to_string(),
        env.var(&format!("{key}_PASSWORD")).to_string(),
    )
}

fn as_user(name: &str) -> rdkafka::ClientConfig {
    let (u, p) = user(name);
    config(
        Env::get().var("KAFKA_SASL_PLAINTEXT"),
        &sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", &u, &p),
    )
}

async fn create_topic(name: &str) {
    let admin: AdminClient<DefaultClientContext> = as_user("super").create().unwrap();
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    let res = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    res[0].as_ref().expect("topic created");
}

/// Produces one message and returns the delivery error, if any.
async fn produce(user: &str, topic: &str) -> Option<RDKafkaErrorCode> {
    let mut c = as_user(user);
    c.set("message.timeout.ms", "10000").set("linger.ms", "0");
    let producer: FutureProducer = c.create().unwrap();
    match producer
        .send(
            FutureRecord::<(), str>::to(topic).payload("{}"),
            Duration::from_secs(15),
        )
        .await
    {
        Ok(_) => None,
        Err((e, _)) => Some(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
    }
}

#[tokio::test]
async fn partial_rights_are_enforced() {
    let topic = support::unique("acl");
    create_topic(&topic).await;

    // describer sees the topic in metadata but may not write it.
    let consumer: BaseConsumer = as_user("describer").create().unwrap();
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        md.topics()[0].error(),
        None,
        "describer may describe {topic}"
    );
    assert_eq!(
        produce("describer", &topic).await,
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );

    // reader may not write either, but the full user may.
    assert_eq!(
        produce("reader", &topic).await,
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(produce("full", &topic).await, None);

    // A topic outside the test. prefix is not even visible to the test user.
    let hidden = format!("hidden{}", &topic[4..]);
    create_topic(&hidden).await;
    let consumer: BaseConsumer = as_user("full").create().unwrap();
    let md = consumer
        .fetch_metadata(Some(&hidden), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        md.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );

    // Group rights: nogroup may read the topic but not join any consumer group.
    let env = Env::get();
    let c = config(
        env.var("KAFKA_SASL_PLAINTEXT"),
        &sasl(
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
            env.var("KAFKA_NO_GROUP_USER"),
            env.var("KAFKA_NO_GROUP_PASSWORD"),
        ),
    );
    let nogroup: BaseConsumer = c.create().unwrap();
    nogroup.subscribe(&[&topic]).unwrap();
    let err = support::wait_for(
        "a group authorization error for nogroup",
        Duration::from_secs(20),
        || match nogroup.poll(Duration::from_millis(200)) {
            Some(Err(e)) => Some(e),
            _ => None,
        },
    );
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::GroupAuthorizationFailed),
        "{err}"
    );
}
