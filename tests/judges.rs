//! What the tools GitOps users run say about live KafkaConnections that `kconn run` tests against the
//! real Kafka and the current kube-apiserver of the test environment: the kstatus library (Flux's
//! health checks, cli-utils), Argo CD's Lua runtime with the shipped health check, and `kubectl wait`.
//! Every state of the table in docs/gitops.md: new, testing, passed, warnings, rejected login, brokers
//! down, spec changed, suspended, deleted; and garbage collection of the catalog and the namespace.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kconn::api::KafkaConnection;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use support::operator::{self as op, condition, wait_status};
use support::Env;

const DEADLINE: Duration = Duration::from_secs(90);

/// The health check Argo CD runs, as shipped.
fn health_lua() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("gitops/argocd/kconn.dev/KafkaConnection/health.lua")
}

/// The object as the API server has it, untyped (what the judges get).
async fn raw(client: &kube::Client, ns: &str, name: &str) -> Value {
    let api = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::erase::<KafkaConnection>(&()),
    );
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

/// (kstatus, Argo CD) verdicts of the object: each `(status, message)`.
async fn verdicts(client: &kube::Client, ns: &str, name: &str) -> (String, String) {
    let obj = raw(client, ns, name).await;
    let k = support::judge("kstatus", None, std::slice::from_ref(&obj));
    let a = support::judge("argocd", Some(&health_lua()), &[obj]);
    (
        k[0]["status"].as_str().unwrap().to_string(),
        a[0]["status"].as_str().unwrap().to_string(),
    )
}

fn kubectl_wait(ns: &str, name: &str, condition: &str, timeout: &str) -> bool {
    let env = Env::get();
    Command::new(env.var("KUBECTL"))
        .args([
            "wait",
            &format!("kafkaconnection/{name}"),
            "-n",
            ns,
            &format!("--for={condition}"),
            &format!("--timeout={timeout}"),
        ])
        .env("KUBECONFIG", env.var("KUBECONFIG"))
        .output()
        .unwrap()
        .status
        .success()
}

fn connection(name: &str, spec: Value) -> KafkaConnection {
    serde_json::from_value(json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

#[tokio::test]
async fn flux_argocd_and_kubectl_read_each_state_as_documented() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "wrong"},
        "stringData": {"username": env.var("KAFKA_SASL_USER"), "password": "not-the-password"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // A port that accepts TCP and never answers: a test against it runs until its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let plain = env.var("KAFKA_PLAINTEXT");
    // A topic of its own, so that "passed" passes without a warning whatever else the broker holds.
    let topic = support::unique("judges");
    support::create_topic(plain, &topic, 1).await;
    let own = topic.replace('.', "\\.");
    let check = json!({"interval": "10m", "timeout": "20s"});
    let specs = [
        (
            "passed",
            json!({"bootstrapServers": [plain], "topics": {"expression": own}, "check": check}),
        ),
        (
            "warnings",
            json!({"bootstrapServers": [plain], "topics": {"expression": "no-such-topic-.*"}, "check": check}),
        ),
        (
            "rejected",
            json!({"bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")], "topics": {"expression": "test\\..*"},
            "authentication": {"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "wrong"}}}, "check": check}),
        ),
        (
            "down",
            json!({"bootstrapServers": [closed], "topics": {"expression": "x"}, "check": check}),
        ),
        (
            "testing",
            json!({"bootstrapServers": [silent_addr], "topics": {"expression": "x"}, "check": {"interval": "10m", "timeout": "60s"}}),
        ),
    ];
    for (name, spec) in &specs {
        conns
            .create(&PostParams::default(), &connection(name, spec.clone()))
            .await
            .unwrap();
    }

    // New: no operator has seen it yet. kstatus has nothing to go by (no status); Argo CD waits.
    assert_eq!(
        verdicts(&client, &ns, "passed").await,
        ("Current".into(), "Progressing".into()),
        "new"
    );

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let _operator = op::start(&ns, &log, &[]);

    // Testing: Reconciling=True from first sight until the test ends.
    wait_status(&conns, "testing", "Reconciling=True", DEADLINE, |s| {
        condition(s, "Reconciling").map(|c| c.0) == Some("True")
    })
    .await;
    assert_eq!(
        verdicts(&client, &ns, "testing").await,
        ("InProgress".into(), "Progressing".into()),
        "testing"
    );
    assert!(!kubectl_wait(&ns, "testing", "condition=Ready", "1s"));

    // Passed, and passed with warnings: current, healthy, Ready.
    for (name, reason) in [
        ("passed", "AllChecksPassed"),
        ("warnings", "PassedWithWarnings"),
    ] {
        wait_status(&conns, name, "Ready=True", DEADLINE, |s| {
            condition(s, "Ready") == Some(("True", reason))
        })
        .await;
        assert_eq!(
            verdicts(&client, &ns, name).await,
            ("Current".into(), "Healthy".into()),
            "{name}"
        );
        assert!(kubectl_wait(&ns, name, "condition=Ready", "10s"), "{name}");
    }

    // A rejected login: Stalled, so kstatus fails it at once (Flux does not wait for its timeout).
    let s = wait_status(&conns, "rejected", "Stalled=True", DEADLINE, |s| {
        condition(s, "Stalled").map(|c| c.0) == Some("True")
    })
    .await;
    assert_eq!(
        condition(&s, "Ready"),
        Some(("False", "AuthenticationFailed"))
    );
    assert_eq!(
        verdicts(&client, &ns, "rejected").await,
        ("Failed".into(), "Degraded".into()),
        "rejected login"
    );
    assert!(kubectl_wait(&ns, "rejected", "condition=Stalled", "10s"));
    assert!(kubectl_wait(
        &ns,
        "rejected",
        "condition=Ready=false",
        "10s"
    ));

    // Brokers down: may pass by itself, so not Stalled: kstatus keeps waiting, Argo CD shows it broken.
    let s = wait_status(&conns, "down", "Ready=False", DEADLINE, |s| {
        condition(s, "Ready") == Some(("False", "NoBrokerReachable"))
    })
    .await;
    assert_eq!(condition(&s, "Stalled").map(|c| c.0), Some("False"));
    assert_eq!(
        verdicts(&client, &ns, "down").await,
        ("InProgress".into(), "Degraded".into()),
        "brokers down"
    );

    // Spec changed: the new generation is announced while it is tested (here against the silent port,
    // so the test lasts), then judged by its outcome.
    let before = conns.get("passed").await.unwrap();
    conns
        .patch(
            "passed",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"bootstrapServers": [silent_addr], "check": {"timeout": "30s"}}}),
            ),
        )
        .await
        .unwrap();
    let generation = before.metadata.generation.unwrap() + 1;
    let s = wait_status(
        &conns,
        "passed",
        "the new generation under test",
        DEADLINE,
        |s| {
            s.observed_generation == Some(generation)
                && condition(s, "Reconciling").map(|c| c.0) == Some("True")
        },
    )
    .await;
    assert_eq!(
        condition(&s, "Ready").map(|c| c.0),
        Some("True"),
        "the last verdict stays"
    );
    assert_eq!(
        verdicts(&client, &ns, "passed").await,
        ("InProgress".into(), "Progressing".into()),
        "spec changed"
    );
    assert!(kubectl_wait(
        &ns,
        "passed",
        &format!("jsonpath={{.status.observedGeneration}}={generation}"),
        "10s"
    ));

    // The catalog of a tested connection, which the garbage collector removes with it (below).
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let uid = conns.get("warnings").await.unwrap().metadata.uid.unwrap();
    let catalog = ListParams::default().labels(&format!("kconn.dev/connection-uid={uid}"));
    support::wait_until("the catalog ConfigMap", DEADLINE, || async {
        (!cms.list(&catalog).await.ok()?.items.is_empty()).then_some(())
    })
    .await;

    // Suspended: nothing runs; the generation is observed and the last verdict kept.
    conns
        .patch(
            "warnings",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let generation = conns.get("warnings").await.unwrap().metadata.generation;
    wait_status(&conns, "warnings", "suspended", DEADLINE, |s| {
        s.observed_generation == generation
            && condition(s, "Reconciling") == Some(("False", "Suspended"))
    })
    .await;
    assert_eq!(
        verdicts(&client, &ns, "warnings").await,
        ("Current".into(), "Suspended".into()),
        "suspended"
    );

    // Deleted: gone at once (kconn sets no finalizer), and its catalog ConfigMaps are collected by
    // the garbage collector (kube-controller-manager).
    conns
        .delete("warnings", &DeleteParams::default())
        .await
        .unwrap();
    match conns.get("warnings").await {
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        other => panic!("deleted at once: {other:?}"),
    }
    support::wait_until("the catalog garbage-collected", DEADLINE, || async {
        cms.list(&catalog)
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;

    // The namespace goes, connections and Secrets with it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    support::wait_until("the namespace deleted", DEADLINE, || async {
        matches!(namespaces.get(&ns).await, Err(kube::Error::Api(s)) if s.code == 404).then_some(())
    })
    .await;
    drop(silent);
}
