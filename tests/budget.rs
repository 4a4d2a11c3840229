//! The fleet against one broker, counted on the broker's side: `kconn run` with many connections to
//! the COUNTED listener, whose every connection (bootstrap and advertised alike) passes a counting
//! proxy. Without a budget the fleet opens connections as fast as it can; with one, no second ever
//! sees more than `--broker-connection-rate`, every connection still ends Ready, and the wait shows in
//! `status.budgetWaitMs`. And in steady state a test that changed nothing writes nothing.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::time::Duration;

use kconn::api::KafkaConnection;
use kube::api::{Api, PostParams};
use support::operator::{self as op, condition, http_address, metric};
use support::proxy::CountingProxy;
use support::Env;

fn connection(name: &str, bootstrap: &str, interval: &str) -> KafkaConnection {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": name},
        "spec": {"role": "Source", "bootstrapServers": [bootstrap], "topics": {"expression": "test\\..*"},
                 "check": {"interval": interval, "timeout": "4s"}, "models": {"suspend": true}}
    }))
    .unwrap()
}

/// Creates `n` connections to `bootstrap` in a new namespace.
async fn create(n: usize, bootstrap: &str, interval: &str) -> (String, Api<KafkaConnection>) {
    let client = support::kube_client(Env::get().var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let api: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    for i in 0..n {
        api.create(
            &PostParams::default(),
            &connection(&format!("c-{i}"), bootstrap, interval),
        )
        .await
        .unwrap();
    }
    (ns, api)
}

/// Waits until all `n` connections are Ready; returns them.
async fn all_ready(
    api: &Api<KafkaConnection>,
    n: usize,
    deadline: Duration,
) -> Vec<KafkaConnection> {
    support::wait_until_ok("every connection Ready", deadline, || async {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| condition(s, "Ready").is_some_and(|r| r.0 == "True"))
            })
            .count();
        if ready == n {
            Ok(list.items)
        } else {
            Err(format!("{ready} of {n} Ready"))
        }
    })
    .await
}

/// Creates `n` connections and runs an operator with `flags` until all are Ready; returns their
/// statuses.
async fn fleet(n: usize, flags: &[&str]) -> Vec<kconn::api::KafkaConnectionStatus> {
    let (ns, api) = create(n, Env::get().var("KAFKA_COUNTED"), "1h").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let _operator = op::start(&ns, &log, flags);
    // Every connection is announced (Reconciling=True, observedGeneration set) at once, however far
    // ahead its turn: kstatus would call an object with no status Current. (With the budget of 10
    // below, the last turns come about 12 s after the first.)
    support::wait_until_ok(
        "every connection announced",
        Duration::from_secs(8),
        || async {
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let announced = list
                .items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| s.observed_generation == c.metadata.generation)
                })
                .count();
            if announced == n {
                Ok(())
            } else {
                Err(format!("{announced} of {n} announced"))
            }
        },
    )
    .await;
    all_ready(&api, n, Duration::from_secs(180))
        .await
        .into_iter()
        .filter_map(|c| c.status)
        .collect()
}

#[tokio::test]
async fn no_broker_sees_more_new_connections_per_second_than_the_budget() {
    let env = Env::get();
    let proxy =
        CountingProxy::start(env.var("KAFKA_COUNTED"), env.var("KAFKA_COUNTED_BROKER")).await;
    let n = 40;

    // Without a budget: the fleet is as fast as it can be.
    fleet(
        n,
        &["--broker-connection-rate", "0", "--cluster-tests", "0"],
    )
    .await;
    let unlimited = proxy.highest_per_second();
    let per_test = proxy.count() as f64 / n as f64;
    println!(
        "no budget: {unlimited} new connections in the busiest second, {per_test:.1} per test"
    );
    assert!(
        per_test >= 3.0,
        "the proxy sees the probes' and librdkafka's connections, advertised ones included: {per_test}"
    );

    // With one: never above it, and every connection still Ready.
    let rate = 10;
    let before = proxy.count();
    let statuses = fleet(
        n,
        &[
            "--broker-connection-rate",
            &rate.to_string(),
            "--cluster-tests",
            "2",
        ],
    )
    .await;
    // Only this run's accepts: the broker advertises the proxy's port, so one proxy serves both.
    let limited = proxy.highest_per_second_since(before);
    println!(
        "budget {rate}/s: {} connections, {limited} in the busiest second",
        proxy.count() - before
    );
    assert!(
        unlimited > rate,
        "without a budget the fleet exceeds {rate}/s ({unlimited}), so the limit below is shown to hold"
    );
    assert!(
        limited <= rate,
        "the broker saw {limited} new connections in one second, above --broker-connection-rate {rate}"
    );
    let waited: Vec<u64> = statuses.iter().filter_map(|s| s.budget_wait_ms).collect();
    assert!(
        !waited.is_empty(),
        "tests that waited for their turn say so in status.budgetWaitMs"
    );
    println!(
        "{} of {n} tests waited, at most {} ms",
        waited.len(),
        waited.iter().max().unwrap()
    );
}

#[tokio::test]
async fn a_test_that_changed_nothing_writes_nothing() {
    let n = 5;
    let (ns, api) = create(n, Env::get().var("KAFKA_PLAINTEXT"), "4s").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let _operator = op::start(&ns, &log, &[]);
    let addr = http_address(&log, Duration::from_secs(30));
    all_ready(&api, n, Duration::from_secs(60)).await;
    let due_tests = || metric(&addr, "kconn_test_start_delay_seconds_count");
    let tested = |rounds: usize| {
        let due_tests = &due_tests;
        async move {
            support::wait_until_ok("more tests", Duration::from_secs(60), || async {
                let done = due_tests();
                if done >= (rounds * n) as f64 {
                    Ok(())
                } else {
                    Err(format!("{done} periodic tests so far"))
                }
            })
            .await
        }
    };
    // One round of periodic tests first: the first tests of a fresh environment may still change
    // what they see (Kafka makes its group offsets topic when first asked for a coordinator).
    tested(1).await;
    let first = api.list(&Default::default()).await.unwrap().items;
    let writes = metric(&addr, "kconn_api_requests_total{kind=\"status_patch\"");
    // Each connection tested three times more, at its interval (within the default budget: 5
    // connections every 4 s are fewer tests than one cluster's pace allows).
    tested(4).await;
    assert_eq!(
        metric(&addr, "kconn_api_requests_total{kind=\"status_patch\""),
        writes,
        "tests that found everything as it was wrote no status"
    );
    // The statuses are the ones read after the first round, resourceVersion and all.
    let list = api.list(&Default::default()).await.unwrap();
    for c in &first {
        let now = list
            .items
            .iter()
            .find(|o| o.metadata.name == c.metadata.name)
            .unwrap();
        assert_eq!(now.metadata.resource_version, c.metadata.resource_version);
    }
}
