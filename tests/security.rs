//! Tenant input that tries to take the operator over, against the real KDC, Kafka and kube-apiserver
//! of the test environment (SECURITY.md lists what each test proves).
//!
//! The test KDC holds a principal whose name is shell syntax, `kconn-x$(touch${IFS}<dir>/injected)`,
//! with a real keytab: if any shell ever saw it, the marker file would appear.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kconn::api::KafkaConnection;
use kube::api::{Api, PostParams};
use support::operator::{self as op, condition, wait_status};
use support::Env;

fn marker() -> &'static Path {
    Path::new(Env::get().var("KAFKA_INJECTION_MARKER"))
}

fn hostile() -> &'static str {
    Env::get().var("KAFKA_HOSTILE_PRINCIPAL")
}

fn krb5_conf() -> String {
    std::fs::read_to_string(Env::get().var("KRB5_CONFIG")).unwrap()
}

fn secret(keytab: &[u8], conf: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "krb", "namespace": "tests"},
        "data": {"krb5.keytab": support::base64(keytab), "krb5.conf": support::base64(conf.as_bytes())}
    }))
    .unwrap()
}

fn connection(principal: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "krb", "namespace": "tests"},
        "spec": {
            "bootstrapServers": [Env::get().var("KAFKA_SASL_PLAINTEXT")],
            "topics": {"expression": "test\\..*"},
            "authentication": {"kerberos": {"principal": principal,
                "keytabSecretRef": {"name": "krb", "key": "krb5.keytab"},
                "krb5ConfSecretRef": {"name": "krb", "key": "krb5.conf"}}}
        }
    })
}

/// `kconn check -o json` (plus `extra`) on the connection and its Secret.
fn check(principal: &str, keytab: &[u8], conf: &str, extra: &[&str]) -> support::Run {
    let yaml = format!(
        "{}---\n{}",
        serde_yaml::to_string(&connection(principal)).unwrap(),
        serde_yaml::to_string(&secret(keytab, conf)).unwrap()
    );
    let run = support::check_yaml_with(&yaml, "json", extra);
    assert!(!run.report.is_null(), "{}\n{}", run.stdout, run.stderr);
    run
}

#[test]
fn the_hostile_principal_is_real_the_kdc_issues_it_a_ticket() {
    // The attack is not hypothetical: kinit, with an argument vector, gets a ticket for it.
    let env = Env::get();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("kinit")
        .args(["-kt", env.var("KAFKA_HOSTILE_KEYTAB"), "-c"])
        .arg(format!("FILE:{}", dir.path().join("cc").display()))
        .arg("--")
        .arg(hostile())
        .env("KRB5_CONFIG", env.var("KRB5_CONFIG"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker().exists(), "an argument vector runs no shell");
}

#[test]
fn kconn_check_refuses_a_principal_with_shell_syntax_and_runs_nothing() {
    let keytab = std::fs::read(Env::get().var("KAFKA_HOSTILE_KEYTAB")).unwrap();
    for extra in [&[][..], &["--models"][..]] {
        let run = check(hostile(), &keytab, &krb5_conf(), extra);
        let spec = run.row("SpecValid");
        assert_eq!(spec["result"], "Failed", "{extra:?}: {}", run.stdout);
        assert_eq!(spec["reason"], "InvalidPrincipal");
        assert_eq!(spec["field"], "spec.authentication.kerberos.principal");
        assert!(
            spec["message"].as_str().unwrap().contains("'$'"),
            "names the character: {spec}"
        );
        assert_eq!(run.row("KerberosTicket")["result"], "Skipped");
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert!(
            !marker().exists(),
            "{extra:?}: the principal ran through a shell"
        );
    }
}

#[test]
fn a_default_realm_with_shell_syntax_is_refused_and_runs_nothing() {
    let env = Env::get();
    let realm = env.var("KAFKA_KERBEROS_REALM");
    let hostile_realm = format!("{realm}$(touch${{IFS}}{})", marker().display());
    let conf = krb5_conf().replace(
        &format!("default_realm = {realm}"),
        &format!("default_realm = {hostile_realm}"),
    );
    assert!(conf.contains(&hostile_realm));
    let keytab = std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap();
    for extra in [&[][..], &["--models"][..]] {
        let run = check("kconn-client", &keytab, &conf, extra);
        let creds = run.row("CredentialsResolved");
        assert_eq!(creds["result"], "Failed", "{}", run.stdout);
        assert_eq!(creds["reason"], "InvalidPrincipal");
        assert_eq!(
            creds["field"],
            "spec.authentication.kerberos.krb5ConfSecretRef"
        );
        assert!(
            creds["message"].as_str().unwrap().contains("default_realm"),
            "{creds}"
        );
        assert_eq!(run.code, 1);
        assert!(!marker().exists(), "the realm ran through a shell");
    }
}

#[test]
fn a_good_kerberos_connection_still_passes_with_models() {
    let env = Env::get();
    let keytab = std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap();
    // Without a realm: krb5.conf's default_realm completes it.
    let run = check("kconn-client", &keytab, &krb5_conf(), &["--models"]);
    run.assert("KerberosTicket", "Passed", "TicketIssued")
        .assert("Authenticated", "Passed", "Authenticated");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.report["connections"][0]["modelsError"].is_null(),
        "models were sampled without an error: {}",
        run.stdout
    );
}

#[tokio::test]
async fn kconn_run_refuses_a_principal_with_shell_syntax_and_runs_nothing() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let keytab = std::fs::read(env.var("KAFKA_HOSTILE_KEYTAB")).unwrap();
    let mut s = secret(&keytab, &krb5_conf());
    s.metadata.namespace = Some(ns.clone());
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let mut conn: KafkaConnection = serde_json::from_value(connection(hostile())).unwrap();
    conn.metadata.namespace = Some(ns.clone());
    // An API server that enforces the CRD's CEL rules refuses this object; one that does not (or a
    // CRD installed without them) leaves it to the operator.
    if let Err(e) = conns.create(&PostParams::default(), &conn).await {
        let text = e.to_string();
        assert!(text.contains("kerberos.principal must be"), "{text}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let _operator = op::start(&ns, &log, &[]);
    let s = wait_status(
        &conns,
        "krb",
        "Ready=False InvalidPrincipal",
        Duration::from_secs(60),
        |s| condition(s, "Ready") == Some(("False", "InvalidPrincipal")),
    )
    .await;
    let spec = s.checks.iter().find(|c| c.name == "SpecValid").unwrap();
    assert_eq!(
        spec.field.as_deref(),
        Some("spec.authentication.kerberos.principal")
    );
    assert_eq!(condition(&s, "Stalled").map(|c| c.0), Some("True"));
    assert_eq!(s.observed_generation, Some(1));
    assert!(!marker().exists(), "the principal ran through a shell");
}

/// A TLS connection with `tls.serverName` to `bootstrap`, trusting the test CA.
fn tls_check(bootstrap: &str, server_name: &str) -> support::Run {
    let ca = std::fs::read_to_string(Env::get().tls("ca.crt")).unwrap();
    support::check(
        &format!(
            "  bootstrapServers: ['{bootstrap}']\n  topics: {{expression: 'test\\..*'}}\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}, serverName: {server_name}}}\n  check: {{timeout: 15s}}\n"
        ),
        &[("ca", &[("ca.crt", ca.as_str())])],
        "json",
    )
}

#[test]
fn an_advertised_broker_whose_certificate_names_another_host_is_refused() {
    // FRONT's certificate names front.kconn.test; the broker it advertises presents a certificate that
    // chains to the same CA but names only other.kconn.test: neither tls.serverName nor 127.0.0.1.
    // Someone on the path to the advertised brokers would be believed if only the chain were checked.
    let run = tls_check(Env::get().var("KAFKA_TLS_FRONT"), "front.kconn.test");
    run.assert("TlsHandshake", "Passed", "TlsVerified");
    // Two checks see it, whichever comes first: librdkafka's session (kconn's certificate callback
    // refuses the advertised broker before or after the bootstrap server's metadata answer), and
    // AdvertisedListeners, which verifies each advertised broker's certificate itself.
    let auth = run.row("Authenticated");
    if auth["result"] == "Failed" {
        run.assert("Authenticated", "Failed", "TlsFailed");
        assert_eq!(auth["field"], "spec.tls.serverName", "{auth}");
        assert!(
            auth["message"]
                .as_str()
                .unwrap()
                .contains("names neither tls.serverName \"front.kconn.test\" nor the host"),
            "{auth}"
        );
    } else {
        run.assert("AdvertisedListeners", "Failed", "HostnameMismatch");
        let advertised = run.row("AdvertisedListeners");
        assert_eq!(advertised["field"], "spec.tls.serverName");
        assert!(
            advertised["message"]
                .as_str()
                .unwrap()
                .contains("does not name \"front.kconn.test\" or \"127.0.0.1\""),
            "{advertised}"
        );
    }
    assert_eq!(run.code, 1);
}

/// librdkafka's own session with `tls.serverName`, without kconn's checks around it: the only broker
/// presents a certificate (from the trusted CA) that names neither serverName nor its host.
#[tokio::test]
async fn librdkafka_verifies_every_broker_certificate_against_server_name() {
    use kconn::testing::kafka::{
        ClientSettings, Kafka, KafkaFailure, ProbeRequest, RdKafka, TlsMaterial,
    };
    let env = Env::get();
    let ca = std::fs::read_to_string(env.tls("ca.crt")).unwrap();
    let probe = |bootstrap: &str, name: &str| {
        let mut settings = ClientSettings::plaintext(vec![bootstrap.to_string()]);
        settings.tls = Some(TlsMaterial {
            ca_pem: Some(ca.clone()),
            client: None,
            server_name: Some(name.to_string()),
        });
        let request = ProbeRequest {
            topics: serde_json::from_value(serde_json::json!({"expression": "test\\..*"})).unwrap(),
            group: None,
            authorization: false,
            min_insync: false,
            unserved: Default::default(),
        };
        async move {
            RdKafka
                .probe(&settings, &request, Duration::from_secs(10))
                .await
        }
    };
    let misnamed = env.var("KAFKA_TLS_MISNAMED");
    match probe(misnamed, "front.kconn.test").await {
        Err(KafkaFailure::Tls(why)) => assert!(
            why.contains("names neither tls.serverName \"front.kconn.test\" nor the host"),
            "{why}"
        ),
        other => panic!("the session must be refused: {other:?}"),
    }
    // The same broker, with the name its certificate carries: the session works.
    let view = probe(misnamed, "other.kconn.test").await.expect("session");
    assert_eq!(view.brokers.len(), 1);
}

#[test]
fn server_name_verifies_bootstrap_and_advertised_brokers_that_carry_it() {
    // MISNAMED advertises itself: its certificate names tls.serverName, on every connection.
    let run = tls_check(Env::get().var("KAFKA_TLS_MISNAMED"), "other.kconn.test");
    run.assert("TlsHandshake", "Passed", "TlsVerified")
        .assert("Authenticated", "Passed", "Authenticated")
        .assert(
            "AdvertisedListeners",
            "Passed",
            "AdvertisedListenersReachable",
        );
    // The plain SSL listener: serverName localhost on the bootstrap connection; the advertised
    // 127.0.0.1 is in the certificate as itself.
    let run = tls_check(Env::get().var("KAFKA_SSL"), "localhost");
    run.assert("Authenticated", "Passed", "Authenticated");
    // A serverName no certificate carries fails already at the handshake.
    let run = tls_check(Env::get().var("KAFKA_TLS_MISNAMED"), "front.kconn.test");
    assert_eq!(
        run.row("TlsHandshake")["result"],
        "Failed",
        "{}",
        run.stdout
    );
}
