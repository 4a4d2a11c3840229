//! The RBAC `kconn run` needs: under the unprivileged test user, with exactly this Role it brings a
//! connection to Ready and writes its model catalog; without it, it keeps running, says what is forbidden, and stays not ready.
//! It also stops cleanly on SIGTERM.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kconn::api::KafkaConnection;
use kube::api::{Api, PostParams};
use support::Env;

/// The Role the operator needs in a namespace it watches.
fn operator_role() -> Role {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kconn-operator"},
        "rules": [
            {"apiGroups": ["kconn.dev"], "resources": ["kafkaconnections"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["kconn.dev"], "resources": ["kafkaconnections/status"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create", "patch", "delete"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list", "watch", "create", "patch", "delete"]}
        ]
    }))
    .unwrap()
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kconn run` for `ns` as the unprivileged user (a kubeconfig whose current context is it).
fn start_unprivileged(
    ns: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> (Operator, std::path::PathBuf) {
    let env = Env::get();
    let kubeconfig = std::fs::read_to_string(env.var("KUBECONFIG"))
        .unwrap()
        .replace(
            &format!("current-context: {}", env.var("KUBE_CONTEXT_ADMIN")),
            &format!("current-context: {}", env.var("KUBE_CONTEXT_UNPRIVILEGED")),
        );
    let path = dir.join(format!("kubeconfig-{ns}"));
    std::fs::write(&path, kubeconfig).unwrap();
    let log = dir.join(format!("operator-{ns}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["run", "--namespace", ns, "--http-addr", "127.0.0.1:0"])
        .args(extra)
        .env("KUBECONFIG", &path)
        .env("POD_NAME", "kconn-rbac")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Operator(child), log)
}

#[tokio::test]
async fn the_documented_role_is_enough_and_its_absence_is_reported() {
    let env = Env::get();
    let admin = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&admin).await;
    let deadline = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();

    // With the Role bound to the operator's user.
    let ns = support::namespace(&admin).await;
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &operator_role())
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kconn-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kconn-operator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kconn-operator"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "user"},
        "stringData": {"username": env.var("KAFKA_SASL_USER"), "password": env.var("KAFKA_SASL_PASSWORD")}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection", "metadata": {"name": "c"},
        "spec": {"role": "Source", "bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")], "topics": {"expression": "test\\..*"},
                 "authentication": {"sasl": {"mechanism": "SCRAM-SHA-256", "secretRef": {"name": "user"}}}}
    }))
    .unwrap();
    let conns: Api<KafkaConnection> = Api::namespaced(admin.clone(), &ns);
    conns.create(&PostParams::default(), &conn).await.unwrap();
    let (mut operator, log) = start_unprivileged(&ns, dir.path(), &[]);
    let what = "Ready with its catalog under the documented Role";
    support::wait_until_ok(what, deadline, || async {
        let status = conns.get_status("c").await.unwrap().status;
        // Ready, and the catalog written (or refused for non-JSON messages on some test topic).
        let done = status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                && s.conditions.iter().any(|c| {
                    c.type_ == "ModelsLoaded"
                        && ["CatalogLoaded", "NonJsonMessages"].contains(&c.reason.as_str())
                })
        });
        if done {
            Ok(())
        } else {
            Err((status, std::fs::read_to_string(&log).unwrap_or_default()))
        }
    })
    .await;

    // SIGTERM: a clean, prompt exit.
    let pid = operator.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let code = support::wait_for(
        "the operator to stop on SIGTERM",
        Duration::from_secs(15),
        || operator.0.try_wait().unwrap().map(|status| status.code()),
    );
    assert_eq!(
        code,
        Some(0),
        "log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Without any binding: keeps running, says what is forbidden.
    let bare = support::namespace(&admin).await;
    let (mut operator, log) = start_unprivileged(&bare, dir.path(), &["--log-format", "json"]);
    // The watches and the Lease name what they may not do, user and resource.
    let said = support::wait_for("the operator to report what is forbidden", deadline, || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.contains("secrets is forbidden")
            && text.contains("kafkaconnections.kconn.dev is forbidden")
            && text.contains("leases.coordination.k8s.io")
            && text.contains("kconn-operator"))
        .then_some(text)
    });
    assert!(
        operator.0.try_wait().unwrap().is_none(),
        "the operator must not exit on a 403:\n{said}"
    );
    // --log-format json: every line is one JSON object with a level and fields.
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
