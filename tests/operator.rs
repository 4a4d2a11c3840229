//! `kconn run` against the real kube-apiserver and Kafka of the test environment: a connection becomes
//! Ready, a Secret rotation re-tests it (wrong password, then fixed), a deleted Secret stalls it and its
//! return recovers it, the test-requested-at annotation is answered, and spec changes are followed.
//! Every wait is a condition polled with a deadline.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kconn::api::KafkaConnection;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use support::operator::{self as op, condition, get, http_address, wait_status};
use support::Env;

fn user_secret(password: &str) -> Secret {
    let env = Env::get();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orders-user"},
        "stringData": {"username": env.var("KAFKA_SASL_USER"), "password": password}
    }))
    .unwrap()
}

#[tokio::test]
async fn the_operator_keeps_a_connection_tested() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &user_secret(env.var("KAFKA_SASL_PASSWORD")),
        )
        .await
        .unwrap();
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "orders"},
        "spec": {
            "role": "Source",
            "bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
            "topics": {"expression": "test\\..*"},
            "authentication": {"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "orders-user"}}},
            "check": {"interval": "10m", "timeout": "20s"}
        }
    }))
    .unwrap();
    let created = conns.create(&PostParams::default(), &conn).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let _operator = op::start(&ns, &log, &[]);
    let deadline = Duration::from_secs(60);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Created: tested, Ready.
    let s = wait_status(&conns, "orders", "Ready=True", deadline, |s| {
        condition(s, "Ready").map(|c| c.0) == Some("True")
    })
    .await;
    assert_eq!(s.observed_generation, created.metadata.generation);
    assert_eq!(s.checks.len(), kconn::api::Check::ALL.len(), "{s:#?}");
    assert_eq!(
        s.tested_by.as_ref().map(|t| t.pod.as_str()),
        Some("kconn-test-pod")
    );
    assert_eq!(
        s.observed_secrets
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["orders-user"]
    );
    assert_eq!(condition(&s, "Stalled"), Some(("False", "NotStalled")));
    assert_eq!(condition(&s, "Authenticated").map(|c| c.0), Some("True"));
    let ready_since = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .clone();

    // The password rotates to a wrong one: re-tested within seconds, Ready=False.
    let canary = format!("kconn-canary-{}", std::process::id());
    secrets
        .replace("orders-user", &PostParams::default(), &user_secret(&canary))
        .await
        .unwrap();
    let s = wait_status(
        &conns,
        "orders",
        "Ready=False AuthenticationFailed",
        deadline,
        |s| condition(s, "Ready") == Some(("False", "AuthenticationFailed")),
    )
    .await;
    // metav1.Time has one-second precision: a flip inside the same second keeps the timestamp, so only
    // "never backwards" can be asserted here (the unit tests in src/status.rs check flips exactly).
    let flipped_at = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .clone();
    assert!(
        flipped_at.0 >= ready_since.0,
        "lastTransitionTime went backwards"
    );
    assert!(
        !serde_json::to_string(&s).unwrap().contains(&canary),
        "the password leaked into status"
    );
    // The transition is announced: a Warning Event with the failing check's reason.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    support::wait_until_ok("a Warning Event for the failed login", deadline, || async {
        let list = events.list(&Default::default()).await.unwrap();
        let warned = list.items.iter().any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("orders")
                && e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("AuthenticationFailed")
        });
        if warned {
            Ok(())
        } else {
            Err(list.items)
        }
    })
    .await;

    // Fixed again: Ready.
    secrets
        .replace(
            "orders-user",
            &PostParams::default(),
            &user_secret(env.var("KAFKA_SASL_PASSWORD")),
        )
        .await
        .unwrap();
    wait_status(&conns, "orders", "Ready=True again", deadline, |s| {
        condition(s, "Ready").map(|c| c.0) == Some("True")
    })
    .await;

    // Deleted: Stalled, naming it. Recreated: recovers by itself.
    secrets
        .delete("orders-user", &DeleteParams::default())
        .await
        .unwrap();
    let s = wait_status(
        &conns,
        "orders",
        "Stalled=True SecretNotFound",
        deadline,
        |s| condition(s, "Stalled") == Some(("True", "SecretNotFound")),
    )
    .await;
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.message.contains("orders-user")),
        "{s:#?}"
    );
    secrets
        .create(
            &PostParams::default(),
            &user_secret(env.var("KAFKA_SASL_PASSWORD")),
        )
        .await
        .unwrap();
    wait_status(
        &conns,
        "orders",
        "recovery after the Secret returns",
        deadline,
        |s| condition(s, "Ready").map(|c| c.0) == Some("True"),
    )
    .await;

    // On demand: the annotation is answered.
    let patch = serde_json::json!({"metadata": {"annotations": {"kconn.dev/test-requested-at": "2026-11-23T10:00:00Z"}}});
    conns
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_status(&conns, "orders", "lastHandledTestRequest", deadline, |s| {
        s.last_handled_test_request.as_deref() == Some("2026-11-23T10:00:00Z")
    })
    .await;

    // A spec change: observedGeneration follows, announced (Reconciling=True) and then tested.
    let patch = serde_json::json!({"spec": {"topics": {"expression": "test\\.nothing-.*"}}});
    let changed = conns
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = wait_status(
        &conns,
        "orders",
        "observedGeneration to follow, and the test of that generation to end",
        deadline,
        |s| {
            s.observed_generation == changed.metadata.generation
                && condition(s, "Reconciling").map(|c| c.0) == Some("False")
        },
    )
    .await;
    assert_eq!(s.topics.as_ref().map(|t| t.matched), Some(0));

    assert!(
        !logs().contains(&canary),
        "the password leaked into the operator's logs"
    );

    // The endpoints: ready after the first sync, metrics with bounded labels.
    let addr = http_address(&log, deadline);

    // Suspended: a new test request is not answered. The operator counts the suspended reconcile,
    // so the test knows the object was looked at before it checks that nothing was tested.
    let before = conns.get_status("orders").await.unwrap().status.unwrap();
    let patch = serde_json::json!({"metadata": {"annotations": {"kconn.dev/test-requested-at": "2026-11-23T11:00:00Z"}}, "spec": {"suspend": true}});
    conns
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    support::wait_for("the operator to see the suspended object", deadline, || {
        get(&addr, "/metrics")
            .1
            .contains("kconn_reconciles_total{result=\"suspended\"}")
            .then_some(())
    });
    let after = conns.get_status("orders").await.unwrap().status.unwrap();
    assert_eq!(
        after.last_handled_test_request, before.last_handled_test_request,
        "a suspended connection is not tested"
    );
    assert_eq!(after.last_test_time, before.last_test_time);
    assert_eq!(get(&addr, "/livez").0, "HTTP/1.1 200 OK");
    assert_eq!(get(&addr, "/readyz").0, "HTTP/1.1 200 OK");
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        metrics.contains("kconn_reconciles_total{result=\"tested\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kconn_connections{ready=\"true\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kconn_check_duration_seconds_bucket{"),
        "{metrics}"
    );
    let failed_logins: f64 = metrics
        .lines()
        .find(|l| l.starts_with("kconn_failed_logins_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(failed_logins >= 1.0, "{metrics}");
    assert!(
        !metrics.contains("orders") && !metrics.contains(&canary),
        "no per-object labels, no secrets: {metrics}"
    );

    // A deleted connection gets no reconcile; the gauges forget it all the same.
    conns
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(
        "the deleted connection to leave the gauges",
        deadline,
        || {
            let metrics = get(&addr, "/metrics").1;
            (metrics.contains("kconn_connections_owned 0")
                && metrics.contains("kconn_connections{ready=\"true\"} 0"))
            .then_some(())
        },
    );
}

/// Widens or restores the installed CRD's `spec.role` enum (what a newer kconn release would ship).
async fn set_role_enum(client: &kube::Client, values: &[&str]) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let current = crds.get("kafkaconnections.kconn.dev").await.unwrap();
    let mut value = serde_json::to_value(&current).unwrap();
    value["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["role"]["enum"] = serde_json::json!(values);
    let updated: CustomResourceDefinition = serde_json::from_value(value).unwrap();
    crds.replace(
        "kafkaconnections.kconn.dev",
        &PostParams::default(),
        &updated,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_object_this_version_cannot_read_is_reported_and_does_not_stop_the_others() {
    use kube::api::{ApiResource, DynamicObject};
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let deadline = Duration::from_secs(60);
    set_role_enum(&client, &["Source", "Target", "SourceAndTarget", "Mirror"]).await;

    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<KafkaConnection>(&()),
    );
    let object = |name: &str, role: &str| -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": name},
            "spec": {"role": role, "bootstrapServers": [env.var("KAFKA_PLAINTEXT")], "topics": {"expression": "test\\..*"}}
        }))
        .unwrap()
    };
    // The API server may take a moment to serve the widened schema.
    support::wait_until_ok("the widened CRD to be served", deadline, || async {
        dynamic
            .create(&PostParams::default(), &object("from-the-future", "Mirror"))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    dynamic
        .create(&PostParams::default(), &object("fine", "Source"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let _operator = op::start(&ns, &dir.path().join("operator.log"), &[]);
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    wait_status(
        &conns,
        "fine",
        "the readable object to become Ready",
        deadline,
        |s| condition(s, "Ready").map(|c| c.0) == Some("True"),
    )
    .await;

    let status = support::wait_until_ok("the unreadable object reported", deadline, || async {
        let status = dynamic.get_status("from-the-future").await.unwrap().data["status"].clone();
        let stalled = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "Stalled" && c["status"] == "True" && c["reason"] == "InvalidObject"
            });
        if stalled {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await;
    let message = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("Mirror"),
        "the message names the unknown value: {message}"
    );
    drop(_operator);
    dynamic
        .delete("from-the-future", &DeleteParams::default())
        .await
        .unwrap();
    set_role_enum(&client, &["Source", "Target", "SourceAndTarget"]).await;
}
