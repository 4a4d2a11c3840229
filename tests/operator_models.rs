//! The model catalog kept by `kconn run`, against the real Kafka and kube-apiserver: stored in
//! ConfigMaps owned by the connection, refreshed on demand with added/removed/changed counted, an
//! unchanged catalog not written again, non-JSON messages under both settings, the threshold moving
//! the schedule to daily, a catalog split across shards and shrunk again, and `models.suspend`.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kconn::api::{KafkaConnection, KafkaConnectionStatus, RefreshSchedule};
use kconn::testing::models::{catalog, store, Model};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rdkafka::consumer::{BaseConsumer, Consumer};
use support::operator::{self as op, condition, wait_status};
use support::{create_topic, produce, unique, Env};

const DEADLINE: Duration = Duration::from_secs(90);

/// The catalog ConfigMaps of a connection (by its uid label), in shard order.
async fn shards(cms: &Api<ConfigMap>, uid: &str) -> Vec<ConfigMap> {
    store::existing(cms, uid).await.unwrap()
}

/// The models of `shards` by topic, decoded strictly (an unreadable shard fails the test).
fn models_of(shards: &[ConfigMap]) -> BTreeMap<String, Model> {
    support::catalog_models(shards)
        .into_iter()
        .map(|m| (m.topic.clone(), m))
        .collect()
}

async fn annotate(conns: &Api<KafkaConnection>, name: &str, key: &str, value: &str) {
    conns
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .unwrap();
}

async fn patch_spec(conns: &Api<KafkaConnection>, name: &str, spec: serde_json::Value) {
    conns
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

fn models_loaded(s: &KafkaConnectionStatus) -> Option<(&str, &str)> {
    condition(s, "ModelsLoaded")
}

async fn refresh(conns: &Api<KafkaConnection>, name: &str, request: &str) -> KafkaConnectionStatus {
    annotate(conns, name, "kconn.dev/refresh-requested-at", request).await;
    wait_status(
        conns,
        name,
        &format!("refresh request {request} answered"),
        DEADLINE,
        |s| s.last_handled_refresh_request.as_deref() == Some(request),
    )
    .await
}

async fn connection(
    conns: &Api<KafkaConnection>,
    name: &str,
    expression: &str,
    extra: serde_json::Value,
) -> String {
    let env = Env::get();
    let mut spec = serde_json::json!({
        "role": "Source",
        "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
        "topics": {"expression": expression},
        "check": {"interval": "10m", "timeout": "20s"}
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    let created = conns.create(&PostParams::default(), &conn).await.unwrap();
    created.metadata.uid.unwrap()
}

#[tokio::test]
async fn the_catalog_is_stored_refreshed_and_reports_changes() {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT");
    let prefix = unique("cat");
    let (orders, payments, empty) = (
        format!("{prefix}.orders"),
        format!("{prefix}.payments"),
        format!("{prefix}.empty"),
    );
    for t in [&orders, &payments, &empty] {
        create_topic(bootstrap, t, 1).await;
    }
    produce(
        bootstrap,
        &orders,
        0,
        1,
        "o1",
        br#"{"id": 1, "amount": 10}"#,
    )
    .await;
    produce(
        bootstrap,
        &orders,
        0,
        2,
        "o2",
        br#"{"id": 2, "amount": 12.5}"#,
    )
    .await;
    produce(bootstrap, &payments, 0, 1, "p1", br#"{"ref": "x"}"#).await;

    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let uid = connection(
        &conns,
        "orders",
        &format!("{}\\..*", prefix.replace('.', "\\.")),
        serde_json::json!({}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = op::start(&ns, &dir.path().join("operator.log"), &[]);

    // The first refresh: three models, all added, hourly.
    let s = wait_status(&conns, "orders", "ModelsLoaded=True", DEADLINE, |s| {
        models_loaded(s).map(|c| c.0) == Some("True")
    })
    .await;
    let m = s.models.clone().unwrap();
    assert_eq!(m.count, 3, "{s:#?}");
    assert_eq!(
        (m.changes.clone().unwrap().added, m.schedule),
        (3, Some(RefreshSchedule::Hourly))
    );
    assert_eq!(m.catalog, ["orders-models-0"]);
    assert_eq!(models_loaded(&s), Some(("True", "CatalogLoaded")));
    let last = m.last_refresh_time.clone().unwrap().0;
    let next = m.next_refresh_time.clone().unwrap().0;
    assert_eq!(next.duration_since(last).as_secs(), 3600);

    let stored = shards(&cms, &uid).await;
    assert_eq!(stored.len(), 1);
    let owner = &stored[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("KafkaConnection", uid.as_str())
    );
    let models = models_of(&stored);
    assert_eq!(models.len(), 3);
    assert_eq!(
        models[&orders].schema.value()["properties"]["amount"]["type"],
        "number",
        "integer and number merge to number"
    );
    assert_eq!(models[&orders].partitions, 1);
    assert!(models[&empty].empty);
    assert_eq!(
        models[&orders]
            .configs
            .get("cleanup.policy")
            .map(String::as_str),
        Some("delete"),
        "topic configs are recorded"
    );

    // `kconn models` prints the catalog from the cluster.
    let kconn_models = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args([
                "models",
                "orders",
                "-n",
                &ns,
                "--context",
                env.var("KUBE_CONTEXT_ADMIN"),
            ])
            .args(["-o", format])
            .env("KUBECONFIG", env.var("KUBECONFIG"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = kconn_models("table");
    assert!(table.contains("3 models in 1 ConfigMap"), "{table}");
    let row = table.lines().find(|l| l.contains(&orders)).expect(&table);
    assert!(
        row.contains("amount number") && row.contains("delete"),
        "{row}"
    );
    let json: Vec<serde_json::Value> = serde_json::from_str(&kconn_models("json")).unwrap();
    assert_eq!(json.len(), 3);
    assert!(json
        .iter()
        .any(|m| m["topic"] == empty.as_str() && m["empty"] == true));

    // A schema change, refreshed on demand: one model changed.
    produce(
        bootstrap,
        &orders,
        0,
        3,
        "o3",
        br#"{"id": 3, "amount": 1, "coupon": "X"}"#,
    )
    .await;
    let version = stored[0].metadata.resource_version.clone();
    let s = refresh(&conns, "orders", "r1").await;
    let changes = s.models.as_ref().unwrap().changes.clone().unwrap();
    assert_eq!(
        (changes.added, changes.removed, changes.changed),
        (0, 0, 1),
        "{s:#?}"
    );
    let stored = shards(&cms, &uid).await;
    assert_ne!(
        stored[0].metadata.resource_version, version,
        "the changed catalog is written"
    );
    assert!(models_of(&stored)[&orders].schema.value()["properties"]
        .get("coupon")
        .is_some());

    // Nothing changed: nothing is written.
    let version = stored[0].metadata.resource_version.clone();
    let s = refresh(&conns, "orders", "r2").await;
    let changes = s.models.as_ref().unwrap().changes.clone().unwrap();
    assert_eq!((changes.added, changes.removed, changes.changed), (0, 0, 0));
    assert_eq!(
        shards(&cms, &uid).await[0].metadata.resource_version,
        version,
        "an unchanged catalog is not written"
    );

    // A plain-text message fails that topic's model, naming partition and offset.
    produce(bootstrap, &payments, 0, 2, "p2", b"plain text").await;
    let s = refresh(&conns, "orders", "r3").await;
    let (status, reason) = models_loaded(&s).unwrap();
    assert_eq!((status, reason), ("False", "NonJsonMessages"), "{s:#?}");
    let message = &s
        .conditions
        .iter()
        .find(|c| c.type_ == "ModelsLoaded")
        .unwrap()
        .message;
    assert!(
        message.contains(&format!("{payments} partition 0 offset 1")),
        "{message}"
    );
    assert_eq!(s.models.as_ref().unwrap().failed_topics, 1);
    assert_eq!(s.models.as_ref().unwrap().count, 2);
    assert_eq!(
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status,
        "True",
        "models do not change Ready"
    );

    // With ignoreNonJsonMessages the message is skipped and counted (a spec change refreshes).
    patch_spec(
        &conns,
        "orders",
        serde_json::json!({"consumer": {"ignoreNonJsonMessages": true}}),
    )
    .await;
    let s = wait_status(&conns, "orders", "ModelsLoaded=True again", DEADLINE, |s| {
        models_loaded(s).map(|c| c.0) == Some("True")
    })
    .await;
    let m = s.models.clone().unwrap();
    assert_eq!((m.count, m.skipped_messages, m.failed_topics), (3, 1, 0));

    // The threshold reached: daily at refreshAt.
    patch_spec(
        &conns,
        "orders",
        serde_json::json!({"models": {"largeCatalogThreshold": 3, "refreshAt": "03:30", "timeZone": "Europe/Berlin"}}),
    )
    .await;
    let s = wait_status(&conns, "orders", "a daily schedule", DEADLINE, |s| {
        s.models.as_ref().and_then(|m| m.schedule) == Some(RefreshSchedule::Daily)
    })
    .await;
    let next =
        kconn::testing::models::refresh::to_chrono(&s.models.unwrap().next_refresh_time.unwrap());
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(local.format("%H:%M").to_string(), "03:30", "{local}");

    // Sampling joined no group and committed nothing.
    let consumer: BaseConsumer = support::config(bootstrap, &[]).create().unwrap();
    let groups = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap();
    assert!(
        !groups
            .groups()
            .iter()
            .any(|g| g.name().starts_with("kconn-sampler")),
        "no sampler group exists on the brokers"
    );
}

#[tokio::test]
async fn a_large_catalog_is_sharded_then_shrinks_and_suspend_keeps_it() {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT");
    let prefix = unique("shard");
    let topics: Vec<String> = (0..24).map(|i| format!("{prefix}.t{i:02}")).collect();
    for t in &topics {
        create_topic(bootstrap, t, 1).await;
        // Field names that do not compress away, so that the catalog needs several small shards.
        let fields: Vec<String> = (0..12)
            .map(|f| format!("\"{}_{f}_{}\": {f}", t.replace('.', "_"), (f * 7919) % 1013))
            .collect();
        produce(
            bootstrap,
            t,
            0,
            1,
            "k",
            format!("{{{}}}", fields.join(",")).as_bytes(),
        )
        .await;
    }
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let escaped = prefix.replace('.', "\\.");
    let uid = connection(
        &conns,
        "big",
        &format!("{escaped}\\..*"),
        serde_json::json!({}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let shard_bytes = 1500;
    let _operator = op::start(
        &ns,
        &dir.path().join("operator.log"),
        &["--catalog-shard-bytes", &shard_bytes.to_string()],
    );

    let s = wait_status(&conns, "big", "24 models", DEADLINE, |s| {
        s.models.as_ref().map(|m| m.count) == Some(24)
    })
    .await;
    let catalog_names = s.models.unwrap().catalog;
    assert!(catalog_names.len() > 2, "{catalog_names:?}");
    let stored = shards(&cms, &uid).await;
    assert_eq!(
        stored
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        catalog_names
    );
    for cm in &stored {
        let bytes = cm.binary_data.as_ref().unwrap()[catalog::SHARD_KEY].0.len();
        assert!(bytes <= shard_bytes, "{:?}: {bytes}", cm.metadata.name);
    }
    let models = models_of(&stored);
    assert_eq!(models.keys().cloned().collect::<Vec<_>>(), topics);

    // Narrowed to three topics: the catalog shrinks and the stale shards are removed.
    patch_spec(
        &conns,
        "big",
        serde_json::json!({"topics": {"expression": format!("{escaped}\\.t0[0-2]")}}),
    )
    .await;
    let s = wait_status(&conns, "big", "3 models", DEADLINE, |s| {
        s.models.as_ref().map(|m| m.count) == Some(3)
    })
    .await;
    let m = s.models.unwrap();
    assert_eq!(m.changes.unwrap().removed, 21);
    let stored = shards(&cms, &uid).await;
    assert_eq!(stored.len(), m.catalog.len(), "stale shards are removed");
    assert_eq!(models_of(&stored).len(), 3);

    // Suspended: said so, and the catalog is kept.
    patch_spec(
        &conns,
        "big",
        serde_json::json!({"models": {"suspend": true}}),
    )
    .await;
    let s = wait_status(&conns, "big", "ModelsLoaded Suspended", DEADLINE, |s| {
        models_loaded(s).map(|c| c.1) == Some("Suspended")
    })
    .await;
    assert_eq!(
        models_loaded(&s).map(|c| c.0),
        Some("True"),
        "the catalog is still loaded"
    );
    // A refresh request while suspended is not answered; a test request in the same patch shows that
    // the operator has seen it.
    conns
        .patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "kconn.dev/refresh-requested-at": "while-suspended",
                "kconn.dev/test-requested-at": "after-suspend"}}})),
        )
        .await
        .unwrap();
    let s = wait_status(&conns, "big", "the test request answered", DEADLINE, |s| {
        s.last_handled_test_request.as_deref() == Some("after-suspend")
    })
    .await;
    assert_ne!(
        s.last_handled_refresh_request.as_deref(),
        Some("while-suspended")
    );
    assert_eq!(shards(&cms, &uid).await.len(), m.catalog.len());
}
