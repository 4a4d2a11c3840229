//! The Argo CD health check (gitops/argocd/kconn.dev/KafkaConnection/health.lua) run by Argo CD's own
//! Lua runtime (gopher-lua, as Argo CD sets it up for argocd-cm scripts) against the sample status
//! documents its `health_test.yaml` lists (the layout of Argo CD's own resource customizations), and
//! against a status the operator's own pure functions produce.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gitops/argocd/kconn.dev/KafkaConnection")
}

/// Runs health.lua on `obj` in Argo CD's own Lua runtime (gopher-lua with only the libraries a
/// health script from argocd-cm gets: scripts/judges); returns (status, message).
fn health(obj: &Value) -> (String, String) {
    let verdicts = support::judge(
        "argocd",
        Some(dir().join("health.lua").as_path()),
        std::slice::from_ref(obj),
    );
    let v = &verdicts[0];
    (
        v["status"].as_str().unwrap().to_string(),
        v["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_argocd_health_check_reads_each_sample_status() {
    let tests: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir().join("health_test.yaml")).unwrap())
            .unwrap();
    let cases = tests["tests"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    let mut seen = std::collections::BTreeSet::new();
    for case in cases {
        let path = dir().join(case["inputPath"].as_str().unwrap());
        let obj: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (status, message) = health(&obj);
        assert_eq!(
            (status.as_str(), message.as_str()),
            (
                case["healthStatus"]["status"].as_str().unwrap(),
                case["healthStatus"]["message"].as_str().unwrap()
            ),
            "{}",
            path.display()
        );
        seen.insert(status);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing", "Suspended"]
    );
}

#[test]
fn a_status_the_operator_writes_for_a_failed_login_is_degraded() {
    use kconn::api::{CheckReport, CheckResult, TestedBy};
    use kconn::testing::checks::TestReport;
    use kconn::testing::status;
    let report = TestReport {
        checks: vec![CheckReport {
            name: "Authenticated".into(),
            result: CheckResult::Failed,
            reason: "AuthenticationFailed".into(),
            message: "wrong password".into(),
            hint: None,
            field: None,
            duration_ms: 3,
        }],
        ..Default::default()
    };
    let facts = status::Facts {
        generation: Some(1),
        now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        ),
        tested_by: TestedBy::default(),
        observed_secrets: vec![],
        handled_request: None,
    };
    let s = status::after_test(None, &report, facts);
    let obj = serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "orders", "generation": 1},
        "spec": {"bootstrapServers": ["b:9092"], "topics": {"expression": "x"}},
        "status": s
    });
    assert_eq!(
        health(&obj),
        (
            "Degraded".to_string(),
            "AuthenticationFailed: Authenticated: wrong password".to_string()
        )
    );
}
