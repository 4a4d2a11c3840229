//! The binding Secret, used as it is by clients nobody here wrote. For every listener and
//! authentication mode of the test environment (OAUTHBEARER included) the operator publishes a binding; its keys are written
//! to a directory as a Secret volume would be (the binding's mount path); then Kafka's own Java tool
//! (TopicCommand, with `client.properties`) and kcat (librdkafka, with `librdkafka.properties`) list
//! the cluster through it. A rotated Secret reaches the binding, a failed test leaves it stale, and
//! removing `spec.binding` removes it.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kconn::api::{KafkaConnection, KafkaConnectionStatus};
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::{self as op, condition, wait_status};
use support::Env;

const DEADLINE: Duration = Duration::from_secs(120);

/// Every mode: (connection name, spec without binding).
fn modes(env: &Env, topic: &str) -> Vec<(&'static str, serde_json::Value)> {
    let base = |listener: &str| {
        serde_json::json!({
            "role": "Source",
            "bootstrapServers": [env.var(listener)],
            "topics": {"expression": topic},
            "check": {"interval": "10m", "timeout": "20s"}
        })
    };
    let sasl = |listener: &str, mechanism: &str, secret: &str| {
        let mut s = base(listener);
        s["authentication"] =
            serde_json::json!({"sasl": {"mechanism": mechanism, "secretRef": {"name": secret}}});
        s
    };
    let ca = serde_json::json!({"caSecretRef": {"name": "ca", "key": "ca.crt"}});
    let mut ssl = base("KAFKA_SSL");
    ssl["tls"] = ca.clone();
    let mut mtls = base("KAFKA_MTLS");
    mtls["tls"] = serde_json::json!({"caSecretRef": {"name": "ca", "key": "ca.crt"},
        "clientCertSecretRef": {"name": "client-tls"}});
    let mut sasl_ssl = sasl("KAFKA_SASL_SSL", "SCRAM-SHA-256", "user");
    sasl_ssl["tls"] = ca;
    let mut gssapi = base("KAFKA_SASL_PLAINTEXT");
    gssapi["authentication"] = serde_json::json!({"kerberos": {
        "principal": env.var("KAFKA_CLIENT_PRINCIPAL"), "serviceName": env.var("KAFKA_SERVICE_NAME"),
        "keytabSecretRef": {"name": "krb", "key": "krb5.keytab"},
        "krb5ConfSecretRef": {"name": "krb", "key": "krb5.conf"}}});
    let mut oauth = base("KAFKA_OAUTH");
    oauth["authentication"] = serde_json::json!({"oauth": {
        "tokenEndpoint": env.var("OAUTH_TOKEN_URL"), "clientSecretRef": {"name": "oauth-client"},
        "scope": env.var("OAUTH_SCOPE"), "extensions": {"logicalCluster": "lkc-test"}}});
    vec![
        ("plaintext", base("KAFKA_PLAINTEXT")),
        ("sasl-plain", sasl("KAFKA_SASL_PLAINTEXT", "PLAIN", "user")),
        (
            "scram",
            sasl("KAFKA_SASL_PLAINTEXT", "SCRAM-SHA-512", "rotating"),
        ),
        ("ssl", ssl),
        ("mtls", mtls),
        ("sasl-ssl", sasl_ssl),
        ("gssapi", gssapi),
        ("oauth", oauth),
    ]
}

/// The Secret as a volume mounts it: one file per key in `dir`.
fn mount(secret: &Secret, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (key, value) in secret.data.iter().flatten() {
        std::fs::write(dir.join(key), &value.0).unwrap();
    }
}

/// Kafka's own TopicCommand with the binding's `client.properties`: the topics it lists.
fn java_lists(env: &Env, dir: &Path, bootstrap: &str) -> Result<String, String> {
    // The Java client names a broker by the reverse lookup of its address, and this machine maps
    // 127.0.0.1 to localhost, for which the test broker holds no Kerberos service principal. With an
    // empty hosts file the address stays its own name, as for librdkafka.
    let hosts = dir.join("hosts.empty");
    std::fs::write(&hosts, "").unwrap();
    let mut cmd = Command::new("java");
    // Kafka 4 clients fetch OAuth tokens only from URLs this property allows (the README says so).
    cmd.arg(format!("-Djdk.net.hosts.file={}", hosts.display()))
        .arg(format!(
            "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={}",
            env.var("OAUTH_TOKEN_URL")
        ))
        .arg(format!(
            "-Djava.security.krb5.conf={}",
            dir.join("krb5.conf").display()
        ))
        .args(["-cp", env.var("KAFKA_CLASSPATH")])
        .arg("org.apache.kafka.tools.TopicCommand")
        .args([
            "--bootstrap-server",
            bootstrap,
            "--list",
            "--command-config",
        ])
        .arg(dir.join("client.properties"));
    run(cmd)
}

/// kcat with the binding's `librdkafka.properties`: the cluster's metadata.
fn kcat_lists(env: &Env, dir: &Path, topic: &str) -> Result<String, String> {
    let mut cmd = Command::new(env.var("KCAT"));
    cmd.arg("-F")
        .arg(dir.join("librdkafka.properties"))
        .args(["-L", "-t", topic, "-m", "20"])
        .env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env(
            "KRB5CCNAME",
            format!("FILE:{}", dir.join("ccache").display()),
        );
    run(cmd)
}

fn run(mut cmd: Command) -> Result<String, String> {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{}\n{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn binding_ready(s: &KafkaConnectionStatus) -> Option<(&str, &str)> {
    condition(s, "BindingReady")
}

#[tokio::test]
async fn every_mode_publishes_a_binding_that_java_and_librdkafka_clients_use_as_it_is() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let topic = support::unique("binding");
    support::create_topic(env.var("KAFKA_PLAINTEXT"), &topic, 1).await;
    let ns = support::namespace(&client).await;
    let file = |p: &str| std::fs::read(p).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let user = |name: &str, who: &str| {
        support::secret(
            name,
            &[
                ("username", env.var(&format!("KAFKA_{who}_USER")).into()),
                ("password", env.var(&format!("KAFKA_{who}_PASSWORD")).into()),
            ],
        )
    };
    for s in [
        user("user", "SASL"),
        user("rotating", "SASL"),
        support::secret("ca", &[("ca.crt", file(&env.tls("ca.crt")))]),
        support::secret(
            "client-tls",
            &[
                ("tls.crt", file(&env.tls("client.crt"))),
                ("tls.key", file(&env.tls("client.key"))),
            ],
        ),
        support::secret(
            "oauth-client",
            &[
                ("clientId", env.var("OAUTH_CLIENT_ID").into()),
                ("clientSecret", env.var("OAUTH_CLIENT_SECRET").into()),
            ],
        ),
        support::secret(
            "krb",
            &[
                ("krb5.keytab", file(env.var("KAFKA_CLIENT_KEYTAB"))),
                ("krb5.conf", file(env.var("KRB5_CONFIG"))),
            ],
        ),
    ] {
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    // Mount paths must be plain absolute paths: a directory of our own under the temporary one.
    let mounts = tempfile::Builder::new()
        .prefix("kconn-binding")
        .tempdir()
        .unwrap();
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let modes = modes(env, &topic);
    for (name, spec) in &modes {
        let mut spec = spec.clone();
        spec["binding"] = serde_json::json!({
            "mountPath": mounts.path().join(name).to_str().unwrap(),
            "labels": {"app": "orders"}
        });
        let c: KafkaConnection =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
                .unwrap();
        conns.create(&PostParams::default(), &c).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let _operator = op::start(&ns, &dir.path().join("operator.log"), &[]);

    for (name, spec) in &modes {
        let status = wait_status(&conns, name, "the binding published", DEADLINE, |s| {
            binding_ready(s) == Some(("True", "BindingPublished"))
        })
        .await;
        let secret_name = format!("{name}-binding");
        assert_eq!(
            status.binding.as_ref().map(|b| b.name.as_str()),
            Some(secret_name.as_str())
        );
        let published = secrets.get(&secret_name).await.unwrap();
        assert_eq!(published.type_.as_deref(), Some("servicebinding.io/kafka"));
        let owner = &published.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("KafkaConnection", Some(true))
        );
        assert_eq!(published.metadata.labels.as_ref().unwrap()["app"], "orders");
        let bootstrap = spec["bootstrapServers"][0].as_str().unwrap();
        assert_eq!(text(&published, "bootstrap.servers"), bootstrap);
        assert_eq!(text(&published, "type"), "kafka");

        let mounted = mounts.path().join(name);
        mount(&published, &mounted);
        let java = java_lists(env, &mounted, bootstrap)
            .unwrap_or_else(|e| panic!("{name}: Kafka's TopicCommand with client.properties: {e}"));
        assert!(java.lines().any(|l| l == topic), "{name}: {java}");
        let kcat = kcat_lists(env, &mounted, &topic)
            .unwrap_or_else(|e| panic!("{name}: kcat with librdkafka.properties: {e}"));
        assert!(
            kcat.contains(&format!("topic \"{topic}\"")),
            "{name}: {kcat}"
        );
    }

    // An application Pod that takes the bootstrap servers from the binding as an environment variable
    // and mounts the Secret where its librdkafka.properties says: the API server takes it.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "app"}})).unwrap(),
        )
        .await
        .unwrap();
    let published = secrets.get("scram-binding").await.unwrap();
    let keys = published.data.as_ref().unwrap();
    let mount_path = mounts.path().join("scram");
    let rdkafka = text(&published, "librdkafka.properties");
    assert!(keys.contains_key("bootstrapServers") && rdkafka.contains("bootstrap.servers="));
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app"},
        "spec": {
            "serviceAccountName": "app",
            "containers": [{
                "name": "app", "image": "registry.invalid/app:1",
                "env": [{"name": "KAFKA_BOOTSTRAP_SERVERS",
                         "valueFrom": {"secretKeyRef": {"name": "scram-binding", "key": "bootstrapServers"}}}],
                "volumeMounts": [{"name": "kafka", "mountPath": mount_path.to_str().unwrap(), "readOnly": true}]
            }],
            "volumes": [{"name": "kafka", "secret": {"secretName": "scram-binding"}}]
        }
    }))
    .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    pods.create(&dry_run, &pod).await.unwrap();

    // A binding Secret deleted by hand comes back with the next passing test.
    secrets
        .delete("ssl-binding", &Default::default())
        .await
        .unwrap();
    conns
        .patch(
            "ssl",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "kconn.dev/test-requested-at": "after-delete"}}})),
        )
        .await
        .unwrap();
    support::wait_until("the deleted binding back", DEADLINE, || async {
        secrets.get_opt("ssl-binding").await.unwrap()
    })
    .await;

    // Rotation: another account's credentials pass the next test and reach the binding.
    let patch = |who: &str| {
        serde_json::json!({"data": {
            "username": support::base64(env.var(&format!("KAFKA_{who}_USER")).as_bytes()),
            "password": support::base64(env.var(&format!("KAFKA_{who}_PASSWORD")).as_bytes()),
        }})
    };
    secrets
        .patch(
            "rotating",
            &PatchParams::default(),
            &Patch::Merge(patch("READ_ONLY")),
        )
        .await
        .unwrap();
    let reader = env.var("KAFKA_READ_ONLY_USER");
    support::wait_until_ok("the rotated user in the binding", DEADLINE, || async {
        let s = secrets
            .get("scram-binding")
            .await
            .map_err(|e| e.to_string())?;
        match text(&s, "username") == reader {
            true => Ok(s),
            false => Err(format!("username {}", text(&s, "username"))),
        }
    })
    .await;
    let rotated = secrets.get("scram-binding").await.unwrap();
    let mounted = mounts.path().join("scram-rotated");
    mount(&rotated, &mounted);
    assert!(java_lists(env, &mounted, env.var("KAFKA_SASL_PLAINTEXT"))
        .unwrap()
        .lines()
        .any(|l| l == topic));

    // A failed test: the binding keeps what the last passing test used, and says it is stale.
    secrets
        .patch(
            "rotating",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"password": support::base64(b"wrong")}})),
        )
        .await
        .unwrap();
    let status = wait_status(&conns, "scram", "the binding stale", DEADLINE, |s| {
        binding_ready(s).map(|(_, reason)| reason) == Some("BindingStale")
    })
    .await;
    assert_eq!(
        condition(&status, "Ready"),
        Some(("False", "AuthenticationFailed"))
    );
    let kept = secrets.get("scram-binding").await.unwrap();
    assert_eq!(text(&kept, "username"), reader);
    assert_eq!(
        text(&kept, "password"),
        env.var("KAFKA_READ_ONLY_PASSWORD"),
        "the last good password stays"
    );

    // Without spec.binding, the Secret goes.
    conns
        .patch(
            "plaintext",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"binding": null}})),
        )
        .await
        .unwrap();
    support::wait_until("the binding Secret removed", DEADLINE, || async {
        secrets
            .get_opt("plaintext-binding")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let status = conns.get("plaintext").await.unwrap().status.unwrap();
    assert!(status.binding.is_none() && binding_ready(&status).is_none());
}

/// `kconn check --binding -o yaml`: the Secret a passing test would publish, before any operator does
/// (its output holds credentials: this test keeps none of it); a failing connection is named on
/// stderr and has none.
#[test]
fn check_prints_the_binding_a_passing_test_would_publish() {
    let env = Env::get();
    let b64 = |s: &str| support::base64(s.as_bytes());
    let manifests = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: user}}
data: {{username: {user}, password: {password}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: wrong}}
data: {{username: {user}, password: {wrong}}}
---
apiVersion: kconn.dev/v1alpha1
kind: KafkaConnection
metadata: {{name: orders}}
spec:
  bootstrapServers: ["{bootstrap}"]
  topics: {{expression: "test\\..*"}}
  authentication: {{sasl: {{mechanism: SCRAM-SHA-512, secretRef: {{name: user}}}}}}
  binding: {{secretName: orders-kafka, labels: {{team: orders}}}}
---
apiVersion: kconn.dev/v1alpha1
kind: KafkaConnection
metadata: {{name: refused}}
spec:
  bootstrapServers: ["{bootstrap}"]
  topics: {{expression: "test\\..*"}}
  authentication: {{sasl: {{mechanism: SCRAM-SHA-512, secretRef: {{name: wrong}}}}}}
"#,
        user = b64(env.var("KAFKA_SASL_USER")),
        password = b64(env.var("KAFKA_SASL_PASSWORD")),
        wrong = b64("not-the-password"),
        bootstrap = env.var("KAFKA_SASL_PLAINTEXT"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connections.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "--binding", "-o", "yaml", "-n", "team", "-f"])
        .arg(&file)
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a connection failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("team/refused: no binding: the test failed (Authenticated"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Secret> = stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 1, "only the passing connection has a binding");
    let secret = &docs[0];
    assert_eq!(secret.metadata.name.as_deref(), Some("orders-kafka"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("team"));
    assert_eq!(secret.type_.as_deref(), Some("servicebinding.io/kafka"));
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["team"], "orders");
    assert_eq!(
        text(secret, "bootstrapServers"),
        env.var("KAFKA_SASL_PLAINTEXT")
    );
    // Compared, never printed.
    assert!(text(secret, "username") == env.var("KAFKA_SASL_USER"));
    assert!(text(secret, "password") == env.var("KAFKA_SASL_PASSWORD"));
    // What it holds works as it is.
    let mounted = dir.path().join("mounted");
    mount(secret, &mounted);
    let java = java_lists(env, &mounted, env.var("KAFKA_SASL_PLAINTEXT"));
    assert!(
        java.is_ok(),
        "TopicCommand with the printed client.properties failed"
    );
}
