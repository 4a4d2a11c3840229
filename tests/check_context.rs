//! `kconn check --context`: the Secrets come from a real API server instead of the manifests.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use support::Env;

#[tokio::test]
async fn secrets_are_read_from_the_cluster() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    let ns = support::unique("ctx").replace('.', "-");
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orders-user"},
        "stringData": {"username": env.var("KAFKA_SASL_USER"), "password": env.var("KAFKA_SASL_PASSWORD")}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client, &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conn.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: orders, namespace: {ns}}}\nspec:\n  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  authentication: {{sasl: {{mechanism: SCRAM-SHA-256, secretRef: {{name: orders-user}}}}}}\n",
            env.var("KAFKA_SASL_PLAINTEXT")
        ),
    )
    .unwrap();
    let run = |context: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args([
                "check",
                "-f",
                file.to_str().unwrap(),
                "-o",
                "json",
                "--context",
                context,
            ])
            .env("KUBECONFIG", env.var("KUBECONFIG"))
            .output()
            .unwrap()
    };
    let out = run(env.var("KUBE_CONTEXT_ADMIN"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    let row = |name: &str| {
        report["connections"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    // The Secrets were read (SASL over a plaintext listener: resolved, with the warning).
    assert_eq!(
        row("CredentialsResolved")["reason"],
        "CredentialsUnencrypted",
        "{stdout}"
    );
    assert_eq!(row("Authenticated")["reason"], "Authenticated", "{stdout}");

    // Without RBAC on Secrets, kconn says so and exits 2 (its own machinery failed, not the connection).
    let out = run(env.var("KUBE_CONTEXT_UNPRIVILEGED"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the Secrets") && stderr.contains("forbidden"),
        "{stderr}"
    );
}
