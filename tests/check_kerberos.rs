//! `kconn check` with Kerberos against the test KDC and broker: the real AS exchange (KerberosTicket)
//! and GSSAPI authentication (Authenticated), each connection with its own files and cache.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::Value;
use support::Env;

/// A keytab with one entry whose key is filler bytes: known to no KDC.
fn fake_keytab(name: &str, realm: &str, enctype: u16) -> Vec<u8> {
    support::keytab(&[(name, realm, enctype, 1)])
}

struct Case<'a> {
    principal: &'a str,
    service: &'a str,
    keytab: Vec<u8>,
    krb5_conf: String,
}

fn run(case: Case) -> (i32, Value, String) {
    run_with(case, "test\\..*", &[])
}

fn run_with(case: Case, expression: &str, extra: &[&str]) -> (i32, Value, String) {
    let env = Env::get();
    let dir = tempfile::tempdir().unwrap();
    let conn = format!(
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: krb, namespace: tests}}\nspec:\n  bootstrapServers: ['{}']\n  topics: {{expression: '{}'}}\n  authentication:\n    kerberos: {{principal: '{}', serviceName: '{}', keytabSecretRef: {{name: krb, key: krb5.keytab}}, krb5ConfSecretRef: {{name: krb, key: krb5.conf}}}}\n",
        env.var("KAFKA_SASL_PLAINTEXT"),
        expression,
        case.principal,
        case.service
    );
    let mut secret = Secret::default();
    secret.metadata.name = Some("krb".into());
    secret.metadata.namespace = Some("tests".into());
    secret.data = Some(BTreeMap::from([
        ("krb5.keytab".to_string(), ByteString(case.keytab)),
        (
            "krb5.conf".to_string(),
            ByteString(case.krb5_conf.into_bytes()),
        ),
    ]));
    let mut yaml = conn;
    yaml.push_str("---\n");
    yaml.push_str(&serde_yaml::to_string(&secret).unwrap());
    let file = dir.path().join("krb.yaml");
    std::fs::write(&file, yaml).unwrap();
    // The test process's own Kerberos variables must not leak into kconn: it sets its own per connection.
    let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "-f", file.to_str().unwrap(), "-o", "json"])
        .args(extra)
        .env_remove("KRB5_CONFIG")
        .env_remove("KRB5CCNAME")
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    support::keep_text(
        "check-kerberos",
        &format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)),
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    // Every private directory kconn made for this connection is gone afterwards.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("kconn-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "credential files left behind: {leftovers:?}"
    );
    (out.status.code().unwrap_or(-1), report, stdout)
}

fn row<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str, &'a Value) {
    let row = report["connections"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap();
    (
        row["result"].as_str().unwrap(),
        row["reason"].as_str().unwrap(),
        row,
    )
}

fn conf() -> String {
    std::fs::read_to_string(Env::get().var("KRB5_CONFIG")).unwrap()
}

fn client_keytab() -> Vec<u8> {
    std::fs::read(Env::get().var("KAFKA_CLIENT_KEYTAB")).unwrap()
}

#[test]
fn a_valid_keytab_gets_a_ticket_and_authenticates() {
    let env = Env::get();
    let (code, report, out) = run(Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka",
        keytab: client_keytab(),
        krb5_conf: conf(),
    });
    assert_eq!(
        row(&report, "CredentialsResolved").1,
        "CredentialsResolved",
        "{out}"
    );
    assert_eq!(row(&report, "KerberosTicket").0, "Passed", "{out}");
    assert_eq!(row(&report, "KerberosTicket").1, "TicketIssued");
    assert_eq!(row(&report, "Authenticated").1, "Authenticated", "{out}");
    assert_eq!(row(&report, "ClusterMetadata").0, "Passed");
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn models_are_sampled_over_kerberos() {
    let env = Env::get();
    let plain = env.var("KAFKA_PLAINTEXT");
    let topic = support::unique("krb-models");
    support::create_topic(plain, &topic, 1).await;
    support::produce(
        plain,
        &topic,
        0,
        1,
        "k",
        br#"{"id": 1, "note": "over GSSAPI"}"#,
    )
    .await;
    let case = Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka",
        keytab: client_keytab(),
        krb5_conf: conf(),
    };
    let expression = topic.replace('.', "\\.");
    let (code, report, out) =
        tokio::task::spawn_blocking(move || run_with(case, &expression, &["--models"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}");
    let model = &report["connections"][0]["models"][0];
    assert_eq!(model["topic"], topic.as_str(), "{out}");
    assert_eq!(model["model"]["sampled"], 1, "{out}");
    assert_eq!(
        model["model"]["schema"]["properties"]["note"]["type"], "string",
        "{out}"
    );
}

#[test]
fn a_principal_missing_from_the_keytab_is_caught_before_the_kdc() {
    let env = Env::get();
    let (code, report, out) = run(Case {
        principal: env.var("KAFKA_OTHER_PRINCIPAL"),
        service: "kafka",
        keytab: client_keytab(),
        krb5_conf: conf(),
    });
    let (result, why, r) = row(&report, "CredentialsResolved");
    assert_eq!((result, why), ("Failed", "PrincipalNotInKeytab"), "{out}");
    assert_eq!(r["field"], "spec.authentication.kerberos.principal");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains(env.var("KAFKA_CLIENT_PRINCIPAL")),
        "names what the keytab holds: {out}"
    );
    assert_eq!(row(&report, "KerberosTicket").1, "DependencyFailed");
    assert_eq!(code, 1);
}

#[test]
fn a_principal_the_kdc_does_not_know() {
    let env = Env::get();
    let realm = env.var("KAFKA_KERBEROS_REALM");
    let principal = format!("nobody@{realm}");
    let (_, report, out) = run(Case {
        principal: &principal,
        service: "kafka",
        keytab: fake_keytab("nobody", realm, 18),
        krb5_conf: conf(),
    });
    assert_eq!(
        row(&report, "KerberosTicket").1,
        "PrincipalUnknown",
        "{out}"
    );
    assert_eq!(row(&report, "Authenticated").1, "DependencyFailed");
}

#[test]
fn a_stale_key_is_rejected_by_the_kdc() {
    let env = Env::get();
    let realm = env.var("KAFKA_KERBEROS_REALM");
    let (_, report, out) = run(Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka",
        keytab: fake_keytab("kconn-client", realm, 18),
        krb5_conf: conf(),
    });
    assert_eq!(row(&report, "KerberosTicket").1, "KeytabRejected", "{out}");
}

#[test]
fn the_kdc_down() {
    let env = Env::get();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let conf = conf().replace(env.var("KAFKA_KDC"), &closed.to_string());
    let (code, report, out) = run(Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka",
        keytab: client_keytab(),
        krb5_conf: conf,
    });
    let (result, why, r) = row(&report, "KerberosTicket");
    assert_eq!((result, why), ("Failed", "KdcUnreachable"), "{out}");
    assert_eq!(r["field"], "spec.authentication.kerberos.krb5ConfSecretRef");
    assert_eq!(
        row(&report, "BrokersReachable").0,
        "Passed",
        "independent checks still run"
    );
    assert_eq!(code, 1);
}

#[test]
fn a_wrong_service_name_fails_gssapi_authentication() {
    let env = Env::get();
    let (_, report, out) = run(Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka-nope",
        keytab: client_keytab(),
        krb5_conf: conf(),
    });
    assert_eq!(row(&report, "KerberosTicket").1, "TicketIssued", "{out}");
    let (result, why, r) = row(&report, "Authenticated");
    assert_eq!((result, why), ("Failed", "AuthenticationFailed"), "{out}");
    assert_eq!(r["field"], "spec.authentication.kerberos.serviceName");
}

#[test]
fn garbage_keytab_and_krb5_conf_are_named() {
    let env = Env::get();
    let (_, report, out) = run(Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka",
        keytab: b"not a keytab".to_vec(),
        krb5_conf: conf(),
    });
    let (_, why, r) = row(&report, "CredentialsResolved");
    assert_eq!(why, "InvalidSecretValue", "{out}");
    assert!(
        r["message"].as_str().unwrap().contains("not a keytab"),
        "{out}"
    );
    let (_, report, out) = run(Case {
        principal: env.var("KAFKA_CLIENT_PRINCIPAL"),
        service: "kafka",
        keytab: client_keytab(),
        krb5_conf: "[realms]\n KCONN.TEST = {\n".into(),
    });
    let (_, why, r) = row(&report, "CredentialsResolved");
    assert_eq!(why, "InvalidSecretValue", "{out}");
    assert_eq!(r["field"], "spec.authentication.kerberos.krb5ConfSecretRef");
}
