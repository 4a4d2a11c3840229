//! No secret value reaches logs, status, Events, metrics or CLI output. Canary credentials (a wrong
//! password, a keytab whose key bytes spell a marker, a password that is not UTF-8, an OAuth client
//! secret) and the test environment's real ones (the SASL password, the client's private key, the client
//! keytab, the OAuth client secret; and any OAuth token) are used by
//! connections of every authentication kind, tested both by `kconn run` at its most verbose log level and
//! by `kconn check` in every output format. Everything captured is then searched for each secret, raw
//! and base64-encoded, and for every line of the private key's PEM body. The temporary directory the
//! processes were given is empty once they are done.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kconn::api::KafkaConnection;
use kube::api::{Api, ListParams, PostParams};
use support::operator::{self as op, wait_status, Operator};
use support::Env;

const DEADLINE: Duration = Duration::from_secs(120);
const CANARY_PASSWORD: &str = "kconn-canary-password-5b1f0e9d";
const CANARY_KEY: &[u8; 32] = b"KCONN-CANARY-KEYTAB-KEY-BYTES-42";

/// The strings none of the captured text may contain.
fn needles(env: &Env) -> Vec<(String, String)> {
    let mut n: Vec<(String, String)> = Vec::new();
    let secret = |n: &mut Vec<(String, String)>, what: &str, value: &[u8]| {
        if let Ok(text) = std::str::from_utf8(value) {
            n.push((what.to_string(), text.to_string()));
        }
        n.push((format!("{what} (base64)"), support::base64(value)));
    };
    secret(&mut n, "the canary password", CANARY_PASSWORD.as_bytes());
    secret(
        &mut n,
        "the SASL password",
        env.var("KAFKA_SASL_PASSWORD").as_bytes(),
    );
    secret(
        &mut n,
        "the super user's password",
        env.var("KAFKA_SUPER_PASSWORD").as_bytes(),
    );
    secret(
        &mut n,
        "the client keytab",
        &std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap(),
    );
    secret(&mut n, "the canary keytab", &canary_keytab(env));
    secret(
        &mut n,
        "the OAuth client secret",
        env.var("OAUTH_CLIENT_SECRET").as_bytes(),
    );
    // Any OAuth token: a JWT's header is base64url JSON, starting with '{"typ":' or '{"alg":'.
    for header in ["eyJ0eXAiOi", "eyJhbGciOi", "eyJraWQiOi"] {
        n.push(("an OAuth token (a JWT)".into(), header.into()));
    }
    n.push((
        "the canary key bytes".into(),
        String::from_utf8_lossy(CANARY_KEY).into_owned(),
    ));
    let key = std::fs::read_to_string(env.tls("client.key")).unwrap();
    secret(&mut n, "the client private key", key.as_bytes());
    for (i, line) in key.lines().filter(|l| !l.starts_with("-----")).enumerate() {
        if line.len() >= 16 {
            n.push((
                format!("line {} of the private key", i + 1),
                line.to_string(),
            ));
        }
    }
    n
}

/// A keytab for the real client principal whose key is the canary bytes (the KDC refuses it).
fn canary_keytab(env: &Env) -> Vec<u8> {
    let principal = env.var("KAFKA_CLIENT_PRINCIPAL");
    let (name, realm) = principal.split_once('@').unwrap();
    let mut kt = support::keytab(&[(name, realm, 18, 1)]);
    let filler = kt.windows(32).position(|w| w == [0x5A; 32]).unwrap();
    kt[filler..filler + 32].copy_from_slice(CANARY_KEY);
    kt
}

/// The Secrets and connections of the scenario: (secrets, connection name → spec).
fn scenario(env: &Env) -> (Vec<Secret>, Vec<(&'static str, serde_json::Value)>) {
    let user = env.var("KAFKA_SASL_USER").as_bytes().to_vec();
    let file = |p: &str| std::fs::read(p).unwrap();
    let secrets = vec![
        support::secret(
            "good-user",
            &[
                ("username", user.clone()),
                ("password", env.var("KAFKA_SASL_PASSWORD").into()),
            ],
        ),
        support::secret(
            "canary-user",
            &[
                ("username", user.clone()),
                ("password", CANARY_PASSWORD.into()),
            ],
        ),
        support::secret(
            "binary-user",
            &[
                ("username", user),
                ("password", vec![0xff, 0xfe, b'p', 0x80, 0x00, 0xc3]),
            ],
        ),
        support::secret(
            "client-tls",
            &[
                ("tls.crt", file(&env.tls("client.crt"))),
                ("tls.key", file(&env.tls("client.key"))),
            ],
        ),
        support::secret("ca", &[("ca.crt", file(&env.tls("ca.crt")))]),
        support::secret(
            "krb",
            &[
                ("krb5.keytab", file(env.var("KAFKA_CLIENT_KEYTAB"))),
                ("krb5.conf", file(env.var("KRB5_CONFIG"))),
            ],
        ),
        support::secret(
            "oauth-good",
            &[
                ("clientId", env.var("OAUTH_CLIENT_ID").into()),
                ("clientSecret", env.var("OAUTH_CLIENT_SECRET").into()),
            ],
        ),
        support::secret(
            "oauth-canary",
            &[
                ("clientId", env.var("OAUTH_CLIENT_ID").into()),
                ("clientSecret", CANARY_PASSWORD.into()),
            ],
        ),
        support::secret(
            "krb-canary",
            &[
                ("krb5.keytab", canary_keytab(env)),
                ("krb5.conf", file(env.var("KRB5_CONFIG"))),
            ],
        ),
    ];
    let sasl = |secret: &str, listener: &str| {
        serde_json::json!({
            "bootstrapServers": [env.var(listener)],
            "topics": {"expression": "test\\..*"},
            "authentication": {"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": secret}}},
            "check": {"interval": "10m", "timeout": "20s"}
        })
    };
    let krb = |secret: &str| {
        serde_json::json!({
            "bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
            "topics": {"expression": "test\\..*"},
            "authentication": {"kerberos": {
                "principal": env.var("KAFKA_CLIENT_PRINCIPAL"), "serviceName": env.var("KAFKA_SERVICE_NAME"),
                "keytabSecretRef": {"name": secret, "key": "krb5.keytab"},
                "krb5ConfSecretRef": {"name": secret, "key": "krb5.conf"}
            }},
            "check": {"interval": "10m", "timeout": "20s"}
        })
    };
    let oauth = |secret: &str| {
        serde_json::json!({
            "bootstrapServers": [env.var("KAFKA_OAUTH")],
            "topics": {"expression": "test\\..*"},
            "authentication": {"oauth": {"tokenEndpoint": env.var("OAUTH_TOKEN_URL"),
                "clientSecretRef": {"name": secret}, "scope": env.var("OAUTH_SCOPE")}},
            "check": {"interval": "10m", "timeout": "20s"}
        })
    };
    let mut oauth_good = oauth("oauth-good");
    oauth_good["binding"] = serde_json::json!({});
    let mut with_tls = sasl("good-user", "KAFKA_SASL_SSL");
    with_tls["tls"] = serde_json::json!({"caSecretRef": {"name": "ca", "key": "ca.crt"}});
    let mtls = serde_json::json!({
        "bootstrapServers": [env.var("KAFKA_MTLS")],
        "topics": {"expression": "test\\..*"},
        "tls": {"caSecretRef": {"name": "ca", "key": "ca.crt"}, "clientCertSecretRef": {"name": "client-tls"}},
        "check": {"interval": "10m", "timeout": "20s"}
    });
    // Connections that publish a binding Secret: the credentials may be there, and nowhere else.
    with_tls["binding"] = serde_json::json!({});
    let mut mtls = mtls;
    mtls["binding"] = serde_json::json!({});
    let mut krb_good = krb("krb");
    krb_good["binding"] = serde_json::json!({});
    let connections = vec![
        ("scram-good", sasl("good-user", "KAFKA_SASL_PLAINTEXT")),
        ("scram-canary", sasl("canary-user", "KAFKA_SASL_PLAINTEXT")),
        ("scram-binary", sasl("binary-user", "KAFKA_SASL_PLAINTEXT")),
        ("scram-tls", with_tls),
        ("mtls", mtls),
        ("krb-good", krb_good),
        ("krb-canary", krb("krb-canary")),
        ("oauth-good", oauth_good),
        ("oauth-canary", oauth("oauth-canary")),
    ];
    (secrets, connections)
}

/// The scenario as manifests for `kconn check -f`.
fn manifests(env: &Env) -> String {
    let (secrets, connections) = scenario(env);
    let mut docs: Vec<String> = secrets
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap();
            v["apiVersion"] = "v1".into();
            v["kind"] = "Secret".into();
            v["metadata"]["namespace"] = "canary".into();
            serde_yaml::to_string(&v).unwrap()
        })
        .collect();
    for (name, spec) in connections {
        docs.push(
            serde_yaml::to_string(&serde_json::json!({
                "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
                "metadata": {"name": name, "namespace": "canary"}, "spec": spec
            }))
            .unwrap(),
        );
    }
    docs.join("---\n")
}

#[tokio::test]
async fn no_secret_value_is_ever_shown() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (secrets, connections) = scenario(env);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for s in &secrets {
        secret_api.create(&PostParams::default(), s).await.unwrap();
    }
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    for (name, spec) in &connections {
        let c: KafkaConnection =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
                .unwrap();
        conns.create(&PostParams::default(), &c).await.unwrap();
    }

    // The operator at its most verbose.
    let log = dir.path().join("operator.log");
    let mut operator = Operator::spawn(
        Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args([
                "run",
                "--namespace",
                &ns,
                "--http-addr",
                "127.0.0.1:0",
                "--log",
                "trace",
            ])
            .env("KUBECONFIG", env.var("KUBECONFIG"))
            .env("POD_NAME", "canary")
            .env("TMPDIR", &tmp),
        &log,
    );
    let addr = op::http_address(&log, DEADLINE);
    let mut outcomes = BTreeMap::new();
    for (name, _) in &connections {
        let s = wait_status(&conns, name, "a test", DEADLINE, |s| {
            s.last_test_time.is_some()
        })
        .await;
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        outcomes.insert(*name, (ready.status.clone(), ready.reason.clone()));
    }
    // The scenario exercised what it should: good credentials pass, canaries fail for their reasons.
    assert_eq!(outcomes["scram-good"].0, "True", "{outcomes:?}");
    assert_eq!(outcomes["scram-tls"].0, "True", "{outcomes:?}");
    assert_eq!(outcomes["mtls"].0, "True", "{outcomes:?}");
    assert_eq!(outcomes["krb-good"].0, "True", "{outcomes:?}");
    assert_eq!(
        outcomes["scram-canary"].1, "AuthenticationFailed",
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes["scram-binary"].1, "InvalidSecretValue",
        "{outcomes:?}"
    );
    assert_eq!(outcomes["krb-canary"].0, "False", "{outcomes:?}");
    assert_eq!(outcomes["oauth-good"].0, "True", "{outcomes:?}");
    assert_eq!(
        outcomes["oauth-canary"].1, "TokenRequestRejected",
        "{outcomes:?}"
    );

    let mut captured: Vec<(String, String)> = Vec::new();
    captured.push(("/metrics".into(), op::get(&addr, "/metrics").1));
    let list = conns.list(&ListParams::default()).await.unwrap();
    captured.push((
        "the connections".into(),
        serde_json::to_string_pretty(&list.items).unwrap(),
    ));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let events = events.list(&ListParams::default()).await.unwrap();
    assert!(!events.items.is_empty(), "no Events were written");
    captured.push((
        "the Events".into(),
        serde_json::to_string_pretty(&events.items).unwrap(),
    ));
    // SIGTERM, so the log is complete; then the operator's scratch directory must be empty.
    let pid = operator.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    support::wait_for("the operator to stop", DEADLINE, || {
        operator.0.try_wait().unwrap()
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().count() > 50,
        "the trace log is suspiciously short"
    );
    captured.push(("the operator's log".into(), text));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "the operator left {left:?} in its TMPDIR");

    // The same scenario through `kconn check`, in every format.
    let file = dir.path().join("canary.yaml");
    std::fs::write(&file, manifests(env)).unwrap();
    for format in ["table", "json", "yaml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args([
                "check",
                "-f",
                file.to_str().unwrap(),
                "-o",
                format,
                "--models",
                "--log",
                "trace",
            ])
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "some canaries must fail");
        captured.push((
            format!("kconn check -o {format} (stdout)"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        captured.push((
            format!("kconn check -o {format} (stderr)"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "kconn check left {left:?} in its TMPDIR");

    for (what, text) in &captured {
        support::keep_text(&what.replace(' ', "-"), text);
    }
    let needles = needles(env);
    let total: usize = captured.iter().map(|(_, t)| t.len()).sum();
    for (what, text) in &captured {
        for (secret, needle) in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "{secret} appears in {what}"
            );
        }
    }
    eprintln!(
        "searched {} captures ({total} bytes) for {} secret forms",
        captured.len(),
        needles.len()
    );
}
