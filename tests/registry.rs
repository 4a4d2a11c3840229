//! SchemaRegistryReachable against the test environment's real schema registry (Apicurio Registry's
//! Confluent API: open, over https, and with basic auth): each failure named by its field and reason,
//! and the Kafka checks unaffected by a registry that fails.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use support::{check, Env, Run};

/// `kconn check` of a PLAINTEXT connection with `registry` as its `schemaRegistry`, and the Secret
/// `sr` holding `password` for the registry's user and the test CAs (`ca.crt`, `other-ca.crt`).
fn run(env: &Env, registry: serde_json::Value, password: &str) -> Run {
    let spec = serde_json::json!({
        "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
        "topics": {"expression": "test[.].*"},
        "schemaRegistry": registry,
        "check": {"timeout": "20s"},
    });
    let run = check(
        &format!("  {}", serde_json::to_string(&spec).unwrap()),
        &[(
            "sr",
            &[
                ("username", env.var("SCHEMA_REGISTRY_USER")),
                ("password", password),
                (
                    "ca.crt",
                    &std::fs::read_to_string(env.tls("ca.crt")).unwrap(),
                ),
                (
                    "other-ca.crt",
                    &std::fs::read_to_string(env.tls("other-ca.crt")).unwrap(),
                ),
            ],
        )],
        "json",
    );
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains(env.var("SCHEMA_REGISTRY_PASSWORD")),
        "the registry password in the output"
    );
    run
}

fn closed_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn an_open_registry_answers_and_the_kafka_checks_run_as_ever() {
    let env = Env::get();
    let run = run(
        env,
        serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_URL")]}),
        "",
    );
    run.assert("SchemaRegistryReachable", "Passed", "RegistryReachable")
        .assert("Authenticated", "Passed", "NoAuthentication");
    assert!(run.row("SchemaRegistryReachable")["message"]
        .as_str()
        .unwrap()
        .contains("subject"));
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn basic_auth_is_checked_with_a_real_request() {
    let env = Env::get();
    let with_auth = serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_AUTH_URL")],
        "basicAuthSecretRef": {"name": "sr"}});
    let good = run(env, with_auth.clone(), env.var("SCHEMA_REGISTRY_PASSWORD"));
    good.assert("SchemaRegistryReachable", "Passed", "RegistryReachable");
    assert_eq!(good.code, 0, "{}", good.stdout);

    let wrong = run(env, with_auth, "not-the-password");
    wrong
        .assert("SchemaRegistryReachable", "Failed", "RegistryUnauthorized")
        .assert("Authenticated", "Passed", "NoAuthentication")
        .assert("ClusterMetadata", "Passed", "MetadataFetched");
    assert_eq!(
        wrong.row("SchemaRegistryReachable")["field"],
        "spec.schemaRegistry.basicAuthSecretRef"
    );
    assert_eq!(wrong.code, 1);

    // No credentials at all for a registry that wants them.
    let none = run(
        env,
        serde_json::json!({"url": [env.var("SCHEMA_REGISTRY_AUTH_URL")]}),
        "",
    );
    none.assert("SchemaRegistryReachable", "Failed", "RegistryUnauthorized");
}

#[test]
fn a_registry_that_is_down_or_misnamed_fails_alone() {
    let env = Env::get();
    let down = run(
        env,
        serde_json::json!({"url": [format!("http://{}", closed_port())]}),
        "",
    );
    down.assert("SchemaRegistryReachable", "Failed", "RegistryUnreachable")
        .assert("Authenticated", "Passed", "NoAuthentication")
        .assert("ClusterMetadata", "Passed", "MetadataFetched");
    assert_eq!(down.code, 1);

    // The registry's host without the Confluent API's path: 404, named as the wrong base.
    let base = env
        .var("SCHEMA_REGISTRY_URL")
        .replace("/apis/ccompat/v7", "");
    let misnamed = run(env, serde_json::json!({"url": [base]}), "");
    misnamed.assert("SchemaRegistryReachable", "Failed", "RegistryFailed");
    assert!(misnamed.row("SchemaRegistryReachable")["hint"]
        .as_str()
        .unwrap()
        .contains("/apis/ccompat/v7"));

    // One URL down, one up: a warning that names the one down.
    let closed = format!("http://{}", closed_port());
    let some = run(
        env,
        serde_json::json!({"url": [closed, env.var("SCHEMA_REGISTRY_URL")]}),
        "",
    );
    some.assert(
        "SchemaRegistryReachable",
        "Warning",
        "SomeRegistriesUnreachable",
    );
    assert!(some.row("SchemaRegistryReachable")["message"]
        .as_str()
        .unwrap()
        .contains(&closed));
    assert_eq!(some.code, 0);
}

#[test]
fn an_https_registry_is_verified_against_its_ca() {
    let env = Env::get();
    let url = env.var("SCHEMA_REGISTRY_TLS_URL");
    let trusted = run(
        env,
        serde_json::json!({"url": [url], "caSecretRef": {"name": "sr", "key": "ca.crt"}}),
        "",
    );
    trusted.assert("SchemaRegistryReachable", "Passed", "RegistryReachable");
    for registry in [
        serde_json::json!({"url": [url]}),
        serde_json::json!({"url": [url], "caSecretRef": {"name": "sr", "key": "other-ca.crt"}}),
    ] {
        let untrusted = run(env, registry, "");
        untrusted
            .assert("SchemaRegistryReachable", "Failed", "CertificateUntrusted")
            .assert("Authenticated", "Passed", "NoAuthentication");
        assert_eq!(
            untrusted.row("SchemaRegistryReachable")["field"],
            "spec.schemaRegistry.caSecretRef"
        );
    }
}
