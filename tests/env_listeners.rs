//! The test environment's Kafka, through librdkafka (the client kconn links): every listener accepts
//! the right credentials and rejects the wrong ones, and the 3-broker cluster is whole.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use rdkafka::error::RDKafkaErrorCode;
use support::{config, connects, rejected, sasl, Env};

#[test]
fn plaintext_connects() {
    let env = Env::get();
    assert_eq!(connects(&config(env.var("KAFKA_PLAINTEXT"), &[])), [1]);
}

#[test]
fn sasl_plaintext_every_mechanism_connects() {
    let env = Env::get();
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let settings = sasl(
            "SASL_PLAINTEXT",
            mechanism,
            env.var("KAFKA_SASL_USER"),
            env.var("KAFKA_SASL_PASSWORD"),
        );
        assert_eq!(
            connects(&config(env.var("KAFKA_SASL_PLAINTEXT"), &settings)),
            [1],
            "{mechanism}"
        );
    }
}

#[test]
fn sasl_wrong_password_is_an_authentication_failure() {
    let env = Env::get();
    for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
        let settings = sasl(
            "SASL_PLAINTEXT",
            mechanism,
            env.var("KAFKA_SASL_USER"),
            "not-the-password",
        );
        rejected(
            &config(env.var("KAFKA_SASL_PLAINTEXT"), &settings),
            RDKafkaErrorCode::Authentication,
            "authentication failed",
        );
    }
}

#[test]
fn sasl_unknown_user_is_an_authentication_failure() {
    let env = Env::get();
    let settings = sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "nobody-here", "whatever");
    rejected(
        &config(env.var("KAFKA_SASL_PLAINTEXT"), &settings),
        RDKafkaErrorCode::Authentication,
        "authentication failed",
    );
}

#[test]
fn ssl_connects_with_the_test_ca() {
    let env = Env::get();
    let ca = env.tls("ca.crt");
    let settings = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];
    assert_eq!(connects(&config(env.var("KAFKA_SSL"), &settings)), [1]);
}

#[test]
fn ssl_untrusted_ca_fails_verification() {
    let env = Env::get();
    let other = env.tls("other-ca.crt");
    let settings = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", other.as_str()),
    ];
    support::rejected_with(
        &config(env.var("KAFKA_SSL"), &settings),
        &[
            RDKafkaErrorCode::SSL,
            RDKafkaErrorCode::BrokerTransportFailure,
        ],
        "certificate verify failed",
    );
}

#[test]
fn mtls_connects_with_a_client_certificate() {
    let env = Env::get();
    let (ca, crt, key) = (
        env.tls("ca.crt"),
        env.tls("client.crt"),
        env.tls("client.key"),
    );
    let settings = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", crt.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    assert_eq!(connects(&config(env.var("KAFKA_MTLS"), &settings)), [1]);
}

#[test]
fn mtls_without_a_client_certificate_is_refused() {
    let env = Env::get();
    let ca = env.tls("ca.crt");
    let settings = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];
    rejected(
        &config(env.var("KAFKA_MTLS"), &settings),
        RDKafkaErrorCode::BrokerTransportFailure,
        "certificate",
    );
}

#[test]
fn sasl_ssl_scram_connects_and_checks_the_password() {
    let env = Env::get();
    let ca = env.tls("ca.crt");
    let mut settings = sasl(
        "SASL_SSL",
        "SCRAM-SHA-512",
        env.var("KAFKA_SASL_USER"),
        env.var("KAFKA_SASL_PASSWORD"),
    );
    settings.push(("ssl.ca.location", ca.as_str()));
    assert_eq!(connects(&config(env.var("KAFKA_SASL_SSL"), &settings)), [1]);
    let mut wrong = sasl(
        "SASL_SSL",
        "SCRAM-SHA-512",
        env.var("KAFKA_SASL_USER"),
        "wrong",
    );
    wrong.push(("ssl.ca.location", ca.as_str()));
    rejected(
        &config(env.var("KAFKA_SASL_SSL"), &wrong),
        RDKafkaErrorCode::Authentication,
        "authentication failed",
    );
}

#[test]
fn cluster3_has_three_brokers() {
    let env = Env::get();
    let mut ids = connects(&config(env.var("KAFKA_CLUSTER3"), &[]));
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
}
