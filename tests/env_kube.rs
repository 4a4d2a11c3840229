//! The test kube-apiserver: the generated CRD installs and serves, a KafkaConnection round-trips with
//! its defaults and its status subresource, and the unprivileged context is refused.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kconn::api::{
    self, CheckReport, CheckResult, KafkaConnection, KafkaConnectionStatus, TopicsStatus,
};
use kube::api::{Api, Patch, PatchParams, PostParams};

#[tokio::test]
async fn kafka_connection_round_trips_with_defaults_and_status() {
    let client = support::kube_client(support::Env::get().var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let api: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);

    // Only the required fields: the server fills in the schema defaults.
    let minimal: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "orders"},
        "spec": {"bootstrapServers": ["b1.kafka:9092"], "topics": {"expression": "orders\\..*"}}
    }))
    .unwrap();
    let created = api
        .create(&PostParams::default(), &minimal)
        .await
        .expect("KafkaConnection created");
    assert_eq!(
        created.spec, minimal.spec,
        "defaults applied by the server equal the types' defaults"
    );
    let raw: serde_json::Value = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::erase::<KafkaConnection>(&()),
    )
    .get("orders")
    .await
    .map(|o| serde_json::to_value(o).unwrap())
    .unwrap();
    assert_eq!(raw["spec"]["role"], "SourceAndTarget");
    assert_eq!(raw["spec"]["check"]["interval"], "5m");
    assert_eq!(raw["spec"]["models"]["refreshAt"], "02:00");

    // Status through the subresource, by server-side apply with one field manager.
    let status = KafkaConnectionStatus {
        observed_generation: created.metadata.generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "AllChecksPassed".into(),
            message: "every check passed".into(),
            last_transition_time: Time(
                k8s_openapi::jiff::Timestamp::from_second(1_795_000_000).unwrap(),
            ),
            observed_generation: created.metadata.generation,
        }],
        checks: vec![CheckReport {
            name: "SpecValid".into(),
            result: CheckResult::Passed,
            reason: "SpecValid".into(),
            message: "every spec rule holds".into(),
            hint: None,
            field: None,
            duration_ms: 1,
        }],
        topics: Some(TopicsStatus {
            matched: 2,
            sample: vec!["orders.eu".into(), "orders.us".into()],
        }),
        ..Default::default()
    };
    let patch =
        serde_json::json!({"apiVersion": api::API_VERSION, "kind": api::KIND, "status": status});
    api.patch_status(
        "orders",
        &PatchParams::apply("kconn").force(),
        &Patch::Apply(&patch),
    )
    .await
    .expect("status applied");
    let read = api.get_status("orders").await.unwrap();
    assert_eq!(read.status.as_ref(), Some(&status));
    assert_eq!(
        read.spec, created.spec,
        "a status write leaves the spec alone"
    );
    assert_eq!(
        read.metadata.generation, created.metadata.generation,
        "a status write does not bump the generation"
    );

    // A spec change bumps the generation; status is kept.
    let mut changed = read.clone();
    changed.spec.suspend = true;
    changed.metadata.managed_fields = None;
    let replaced = api
        .replace("orders", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(replaced.metadata.generation > created.metadata.generation);
    assert_eq!(replaced.status.as_ref(), Some(&status));
}

#[tokio::test]
async fn the_unprivileged_context_is_refused() {
    let env = support::Env::get();
    let admin = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&admin).await;
    let client = support::kube_client(env.var("KUBE_CONTEXT_UNPRIVILEGED")).await;
    let api: Api<KafkaConnection> = Api::namespaced(client, "default");
    match api.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

/// Creates (through the untyped API, so that anything can be sent) a KafkaConnection with `spec`;
/// the server's answer.
async fn create_raw(
    client: &kube::Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> Result<(), Box<kube::core::Status>> {
    let api = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::erase::<KafkaConnection>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) => Err(e),
        Err(other) => panic!("not an API answer: {other}"),
    }
}

#[tokio::test]
async fn every_bad_input_the_validator_knows_is_refused_by_the_api_server_naming_its_field() {
    let client = support::kube_client(support::Env::get().var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    for (i, case) in kconn::testing::validate::bad_inputs()
        .into_iter()
        .enumerate()
    {
        let mut spec = serde_json::json!({"bootstrapServers": ["b1.kafka:9092"], "topics": {"expression": "orders\\..*"}});
        kconn::testing::validate::merge(&mut spec, &case.patch);
        let answer = create_raw(&client, &ns, &format!("bad-{i}"), spec).await;
        match case.api_server {
            kconn::testing::validate::ApiServer::Refuses => {
                let e = answer.expect_err(case.what);
                assert_eq!(e.code, 422, "{}: {e:?}", case.what);
                // The server names list fields without the index ("spec.bootstrapServers").
                let field = case.field.split('[').next().unwrap();
                assert!(
                    e.message.contains(field),
                    "{}: the answer does not name {field}: {}",
                    case.what,
                    e.message
                );
                assert!(
                    !e.message.contains("type conversion error"),
                    "{}: {}",
                    case.what,
                    e.message
                );
            }
            kconn::testing::validate::ApiServer::Accepts(why) => {
                answer.unwrap_or_else(|e| panic!("{} ({why}): {e:?}", case.what));
            }
        }
    }
}

#[tokio::test]
async fn a_malformed_duration_is_refused_with_its_own_message_only() {
    let client = support::kube_client(support::Env::get().var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let spec = serde_json::json!({"bootstrapServers": ["b1.kafka:9092"], "topics": {"expression": "x"},
        "check": {"interval": "5 minutes", "timeout": "10s"}});
    let e = create_raw(&client, &ns, "bad-duration", spec)
        .await
        .expect_err("refused");
    assert!(
        e.message
            .contains("spec.check.interval: Invalid value: \"string\": check.interval must be a positive duration")
            || e.message.contains("check.interval must be a positive duration"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("type conversion"), "{}", e.message);
    assert!(
        !e.message.contains("check.timeout must not be longer"),
        "{}",
        e.message
    );
}
