//! `kconn check` against the real Kafka of the test environment: each scenario asserts the check's
//! name, result and reason, and the exit code.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use support::{check, Env};

fn user_secret(env: &Env, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("username", env.var("KAFKA_SASL_USER").to_string()),
        ("password", password.to_string()),
    ]
}

fn pem(path: String) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn plaintext_passes_every_check_that_runs() {
    let env = Env::get();
    let spec = format!(
        "  bootstrapServers: ['{}']\n  topics: {{expression: '.*'}}",
        env.var("KAFKA_PLAINTEXT")
    );
    let run = check(&spec, &[], "json");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.assert("SpecValid", "Passed", "SpecValid")
        .assert("BootstrapResolved", "Passed", "Resolved")
        .assert("BrokersReachable", "Passed", "AllBrokersReachable")
        .assert("TlsHandshake", "Skipped", "NotApplicable")
        .assert("Authenticated", "Passed", "NoAuthentication")
        .assert("ClusterMetadata", "Passed", "MetadataFetched")
        .assert(
            "AdvertisedListeners",
            "Passed",
            "AdvertisedListenersReachable",
        );
    assert_eq!(run.report["connections"][0]["cluster"]["brokers"], 1);
    assert!(run.report["connections"][0]["cluster"]["clusterId"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
}

#[test]
fn sasl_every_mechanism_authenticates_and_a_wrong_password_fails() {
    let env = Env::get();
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let spec = format!(
            "  bootstrapServers: ['{}']\n  topics: {{expression: 'test\\..*'}}\n  authentication: {{sasl: {{mechanism: {mechanism}, secretRef: {{name: user}}}}}}",
            env.var("KAFKA_SASL_PLAINTEXT")
        );
        let good = user_secret(env, env.var("KAFKA_SASL_PASSWORD"));
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = check(&spec, &[("user", &good)], "json");
        run.assert("CredentialsResolved", "Warning", "CredentialsUnencrypted")
            .assert("Authenticated", "Passed", "Authenticated");
        assert_eq!(run.code, 0, "{mechanism}");

        let bad = user_secret(env, "definitely-wrong");
        let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = check(&spec, &[("user", &bad)], "json");
        run.assert("Authenticated", "Failed", "AuthenticationFailed")
            .assert("ClusterMetadata", "Skipped", "DependencyFailed")
            .assert("TopicsResolved", "Skipped", "DependencyFailed")
            .assert("BrokersReachable", "Passed", "AllBrokersReachable");
        assert_eq!(run.code, 1, "{mechanism}");
    }
}

#[test]
fn unknown_user_fails_authentication() {
    let env = Env::get();
    let spec = format!("  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  authentication: {{sasl: {{mechanism: SCRAM-SHA-512, secretRef: {{name: user}}}}}}", env.var("KAFKA_SASL_PLAINTEXT"));
    check(
        &spec,
        &[(
            "user",
            &[("username", "nobody-at-all"), ("password", "whatever")],
        )],
        "json",
    )
    .assert("Authenticated", "Failed", "AuthenticationFailed");
}

#[test]
fn tls_listeners_with_ca_client_certificate_and_sasl() {
    let env = Env::get();
    let ca = pem(env.tls("ca.crt"));
    let ssl = format!("  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}}}", env.var("KAFKA_SSL"));
    let run = check(&ssl, &[("ca", &[("ca.crt", ca.as_str())])], "json");
    run.assert("TlsHandshake", "Passed", "TlsVerified").assert(
        "Authenticated",
        "Passed",
        "Authenticated",
    );
    let message = run.row("TlsHandshake")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("certificate \"localhost\" expires in"),
        "{message}"
    );
    assert_eq!(run.code, 0);

    // The wrong CA: the broker's certificate does not verify, and Authenticated does not even try.
    let other = pem(env.tls("other-ca.crt"));
    let run = check(&ssl, &[("ca", &[("ca.crt", other.as_str())])], "json");
    run.assert("TlsHandshake", "Failed", "CertificateUntrusted")
        .assert("Authenticated", "Skipped", "DependencyFailed");
    assert_eq!(run.row("TlsHandshake")["field"], "spec.tls.caSecretRef");

    // A name the certificate does not list.
    let mismatch = format!(
        "  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}, serverName: kafka.example.test}}",
        env.var("KAFKA_SSL")
    );
    let run = check(&mismatch, &[("ca", &[("ca.crt", ca.as_str())])], "json");
    run.assert("TlsHandshake", "Failed", "HostnameMismatch");
    assert_eq!(run.row("TlsHandshake")["field"], "spec.tls.serverName");

    // TLS against a PLAINTEXT listener.
    let plain = format!(
        "  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}}}",
        env.var("KAFKA_PLAINTEXT")
    );
    check(&plain, &[("ca", &[("ca.crt", ca.as_str())])], "json").assert(
        "TlsHandshake",
        "Failed",
        "TlsHandshakeFailed",
    );

    // mTLS with and without the client certificate.
    let (crt, key) = (pem(env.tls("client.crt")), pem(env.tls("client.key")));
    let mtls = format!("  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}, clientCertSecretRef: {{name: cert}}}}", env.var("KAFKA_MTLS"));
    check(
        &mtls,
        &[
            ("ca", &[("ca.crt", ca.as_str())]),
            (
                "cert",
                &[("tls.crt", crt.as_str()), ("tls.key", key.as_str())],
            ),
        ],
        "json",
    )
    .assert("Authenticated", "Passed", "Authenticated");
    let no_cert = format!("  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}}}", env.var("KAFKA_MTLS"));
    let run = check(&no_cert, &[("ca", &[("ca.crt", ca.as_str())])], "json");
    assert_eq!(
        run.row("Authenticated")["result"],
        "Failed",
        "{}",
        run.stdout
    );

    // SASL_SSL with SCRAM.
    let sasl_ssl = format!(
        "  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}}}\n  authentication: {{sasl: {{mechanism: SCRAM-SHA-256, secretRef: {{name: user}}}}}}",
        env.var("KAFKA_SASL_SSL")
    );
    let user = user_secret(env, env.var("KAFKA_SASL_PASSWORD"));
    let user: Vec<(&str, &str)> = user.iter().map(|(k, v)| (*k, v.as_str())).collect();
    check(
        &sasl_ssl,
        &[("ca", &[("ca.crt", ca.as_str())]), ("user", &user)],
        "json",
    )
    .assert("Authenticated", "Passed", "Authenticated");
}

#[test]
fn closed_port_and_unresolvable_host() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = std::time::Instant::now();
    let run = check(
        &format!("  bootstrapServers: ['{closed}']\n  topics: {{expression: x}}"),
        &[],
        "json",
    );
    run.assert("BrokersReachable", "Failed", "NoBrokerReachable")
        .assert("Authenticated", "Skipped", "DependencyFailed");
    assert_eq!(run.code, 1);
    println!(
        "closed port reported in {:?} (whole process)",
        started.elapsed()
    );

    let run = check("  bootstrapServers: ['kconn-no-such-host.invalid:9092']\n  topics: {expression: x}\n  check: {interval: 1m, timeout: 8s}", &[], "json");
    run.assert("BootstrapResolved", "Failed", "UnresolvableHosts")
        .assert("BrokersReachable", "Skipped", "DependencyFailed");
    assert_eq!(
        run.row("BootstrapResolved")["field"],
        "spec.bootstrapServers[0]"
    );
}

#[test]
fn one_of_three_bootstrap_servers_down_is_a_warning() {
    let env = Env::get();
    let brokers: Vec<&str> = env.var("KAFKA_CLUSTER3").split(',').collect();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let spec = format!(
        "  bootstrapServers: ['{}', '{}', '{closed}']\n  topics: {{expression: x}}",
        brokers[0], brokers[1]
    );
    let run = check(&spec, &[], "json");
    run.assert("BrokersReachable", "Warning", "SomeBrokersUnreachable")
        .assert("Authenticated", "Passed", "NoAuthentication");
    assert_eq!(
        run.row("BrokersReachable")["field"],
        "spec.bootstrapServers[2]"
    );
    assert_eq!(run.code, 0, "warnings keep Ready true");
    assert_eq!(run.report["connections"][0]["cluster"]["brokers"], 3);
}

#[test]
fn advertised_listener_unreachable_is_caught() {
    let env = Env::get();
    let spec = format!(
        "  bootstrapServers: ['{}']\n  topics: {{expression: x}}",
        env.var("KAFKA_ADVERTISED_UNREACHABLE")
    );
    let run = check(&spec, &[], "json");
    run.assert("Authenticated", "Passed", "NoAuthentication")
        .assert(
            "AdvertisedListeners",
            "Failed",
            "AdvertisedListenerUnreachable",
        );
    assert!(
        run.row("AdvertisedListeners")["message"]
            .as_str()
            .unwrap()
            .contains("broker 1 advertises 127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 1);
}

#[test]
fn no_matching_topic_is_a_warning_and_missing_secret_fails_credentials() {
    let env = Env::get();
    let spec = format!(
        "  bootstrapServers: ['{}']\n  topics: {{expression: 'kconn-nothing-matches-this-.*'}}",
        env.var("KAFKA_PLAINTEXT")
    );
    let run = check(&spec, &[], "json");
    run.assert("TopicsResolved", "Warning", "NoTopicsMatched");
    assert_eq!(run.code, 0);

    let spec = format!("  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  authentication: {{sasl: {{mechanism: PLAIN, secretRef: {{name: absent}}}}}}", env.var("KAFKA_SASL_PLAINTEXT"));
    let run = check(&spec, &[], "json");
    run.assert("CredentialsResolved", "Failed", "SecretNotFound")
        .assert("BrokersReachable", "Passed", "AllBrokersReachable")
        .assert("Authenticated", "Skipped", "DependencyFailed");
    assert_eq!(
        run.row("CredentialsResolved")["field"],
        "spec.authentication.sasl.secretRef.name"
    );
}

#[test]
fn a_canary_password_appears_nowhere() {
    let env = Env::get();
    let canary = format!("kconn-canary-{}-pw", std::process::id());
    let spec = format!("  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  authentication: {{sasl: {{mechanism: PLAIN, secretRef: {{name: user}}}}}}", env.var("KAFKA_SASL_PLAINTEXT"));
    for format in ["json", "yaml", "table"] {
        let run = check(
            &spec,
            &[(
                "user",
                &[
                    ("username", env.var("KAFKA_SASL_USER")),
                    ("password", &canary),
                ],
            )],
            format,
        );
        assert_eq!(run.code, 1, "{format}: the canary is a wrong password");
        assert!(
            !run.stdout.contains(&canary) && !run.stderr.contains(&canary),
            "{format} output leaks the password:\n{}{}",
            run.stdout,
            run.stderr
        );
        assert!(
            run.stdout.contains("AuthenticationFailed"),
            "{format}: {}",
            run.stdout
        );
    }
}
