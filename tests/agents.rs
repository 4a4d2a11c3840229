//! Agents against the real kube-apiserver: processes of one pool share connections (each owns some,
//! together all, none twice), a killed process's connections are taken over within a Lease duration
//! plus an interval, a new process takes a fair share, pinned connections are tested only by their
//! pool, and a pin to a pool nobody runs is reported as NoAgentAvailable until one starts.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kconn::api::{KafkaConnection, KafkaConnectionStatus};
use kube::api::{Api, ListParams, PostParams};
use support::operator::{self as op, condition, http_address, metric};
use support::Env;

const LEASE: &str = "4s";
const INTERVAL_SECS: u64 = 15;

fn connection(name: &str, pool: Option<&str>) -> KafkaConnection {
    let env = Env::get();
    let mut spec = serde_json::json!({
        "role": "Source",
        "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
        "topics": {"expression": "no-such-topic-here"},
        "check": {"interval": format!("{INTERVAL_SECS}s"), "timeout": "10s"},
        "models": {"suspend": true}
    });
    if let Some(p) = pool {
        spec["agent"] = serde_json::json!({ "name": p });
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

async fn create_all(conns: &Api<KafkaConnection>, names: &[String], pool: Option<&str>) {
    for chunk in names.chunks(20) {
        let creates = chunk.iter().map(|n| async move {
            conns
                .create(&PostParams::default(), &connection(n, pool))
                .await
        });
        for r in futures::future::join_all(creates).await {
            r.unwrap();
        }
    }
}

/// Every connection's status, by name.
async fn statuses(conns: &Api<KafkaConnection>) -> BTreeMap<String, KafkaConnectionStatus> {
    conns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| Some((c.metadata.name.clone()?, c.status?)))
        .collect()
}

/// Polls all statuses until `pred` holds for the whole map, or panics after `deadline`.
async fn wait_all(
    conns: &Api<KafkaConnection>,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&BTreeMap<String, KafkaConnectionStatus>) -> bool,
) -> BTreeMap<String, KafkaConnectionStatus> {
    support::wait_until(what, deadline, || async {
        let all = statuses(conns).await;
        pred(&all).then_some(all)
    })
    .await
}

fn tested_by(s: &KafkaConnectionStatus) -> (String, String) {
    let t = s.tested_by.clone().unwrap_or_default();
    (t.agent, t.pod)
}

fn ready(s: &KafkaConnectionStatus) -> bool {
    condition(s, "Ready").map(|c| c.0) == Some("True")
}

#[tokio::test]
async fn one_pool_shares_connections_and_takes_over_from_a_dead_member() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let n = 300;
    let names: Vec<String> = (0..n).map(|i| format!("c-{i:03}")).collect();

    let dir = tempfile::tempdir().unwrap();
    let start = |pod: &str| {
        let log = dir.path().join(format!("{pod}.log"));
        // 300 connections at a 15 s interval on one broker are more than the default budget allows
        // (tests/budget.rs tests it); here the takeover is timed, so the budget is off.
        let p = op::start_agent(
            &ns,
            &log,
            pod,
            "default",
            &[
                "--lease-duration",
                LEASE,
                "--broker-connection-rate",
                "0",
                "--cluster-tests",
                "0",
            ],
        );
        (p, log)
    };
    let mut members: BTreeMap<String, (op::Operator, std::path::PathBuf)> = ["a", "b", "c"]
        .into_iter()
        .map(|p| (p.to_string(), start(p)))
        .collect();

    let addr: BTreeMap<String, String> = members
        .iter()
        .map(|(p, (_, log))| (p.clone(), http_address(log, Duration::from_secs(30))))
        .collect();
    // Once the three see each other (a process starting alone owns everything until then):
    for a in addr.values() {
        support::wait_for("three live agents", Duration::from_secs(30), || {
            (metric(a, "kconn_agents_live") == 3.0).then_some(())
        });
    }
    create_all(&conns, &names, None).await;

    // All tested; each member tested some, together all (a status names one tester).
    let all = wait_all(&conns, "all 300 Ready", Duration::from_secs(120), |all| {
        all.len() == n && all.values().all(ready)
    })
    .await;
    let mut by_pod: BTreeMap<String, usize> = BTreeMap::new();
    for s in all.values() {
        *by_pod.entry(tested_by(s).1).or_default() += 1;
    }
    assert_eq!(
        by_pod.keys().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "{by_pod:?}"
    );
    for (pod, count) in &by_pod {
        assert!(
            (50..=150).contains(count),
            "{pod} tested {count} of 300: {by_pod:?}"
        );
    }
    // None twice: each process's owned count equals the connections it tested, and they sum to all.
    for (pod, a) in &addr {
        let owned = metric(a, "kconn_connections_owned") as usize;
        assert_eq!(
            owned, by_pod[pod],
            "{pod} owns {owned}, tested {}",
            by_pod[pod]
        );
        assert_eq!(metric(a, "kconn_agents_live"), 3.0);
    }

    // Kill c (no release): a and b take its connections over within a Lease duration plus an
    // interval (with its jitter).
    let of_c: BTreeSet<String> = all
        .iter()
        .filter(|(_, s)| tested_by(s).1 == "c")
        .map(|(k, _)| k.clone())
        .collect();
    let killed_at = Instant::now();
    drop(members.remove("c"));
    let bound = Duration::from_secs(4)
        + kconn::testing::agents::GRACE
        + Duration::from_secs(INTERVAL_SECS * 11 / 10);
    let all = wait_all(
        &conns,
        "c's connections re-tested by a or b",
        bound + Duration::from_secs(15),
        |all| {
            of_c.iter().all(|k| {
                all.get(k)
                    .is_some_and(|s| tested_by(s).1 != "c" && ready(s))
            })
        },
    )
    .await;
    let took = killed_at.elapsed();
    println!(
        "takeover of {} connections: {:.1} s (bound {:.1} s)",
        of_c.len(),
        took.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(all.values().all(|s| tested_by(s).1 != "c"));

    // d joins: it takes a fair share, and the three own every connection exactly once.
    let (d, d_log) = start("d");
    members.insert("d".into(), (d, d_log.clone()));
    let d_addr = http_address(&d_log, Duration::from_secs(30));
    support::wait_for("d to own a fair share", Duration::from_secs(60), || {
        let owned = metric(&d_addr, "kconn_connections_owned") as usize;
        (60..=140).contains(&owned).then_some(owned)
    });
    support::wait_for(
        "a, b and d to own every connection once",
        Duration::from_secs(60),
        || {
            let total: f64 = [&addr["a"], &addr["b"], &d_addr]
                .iter()
                .map(|a| metric(a, "kconn_connections_owned"))
                .sum();
            (total as usize == n).then_some(())
        },
    );
}

#[tokio::test]
async fn pinned_connections_are_tested_by_their_pool_only() {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let a: Vec<String> = (0..10).map(|i| format!("a-{i}")).collect();
    let b: Vec<String> = (0..10).map(|i| format!("b-{i}")).collect();
    create_all(&conns, &a, Some("vpc-a")).await;
    create_all(&conns, &b, Some("vpc-b")).await;
    create_all(&conns, &["x".to_string()], Some("vpc-x")).await;

    let dir = tempfile::tempdir().unwrap();
    let extra = ["--lease-duration", LEASE];
    let _a1 = op::start_agent(&ns, &dir.path().join("a1.log"), "a1", "vpc-a", &extra);
    let _a2 = op::start_agent(&ns, &dir.path().join("a2.log"), "a2", "vpc-a", &extra);
    let _b1 = op::start_agent(&ns, &dir.path().join("b1.log"), "b1", "vpc-b", &extra);

    let all = wait_all(
        &conns,
        "pinned connections tested, x reported",
        Duration::from_secs(60),
        |all| {
            all.len() == 21
                && a.iter().chain(&b).all(|k| all.get(k).is_some_and(ready))
                && all.get("x").is_some_and(|s| {
                    // Reported once every agent has announced itself (an agent that starts first
                    // reports x with only the pools it has seen, and again when the others join).
                    condition(s, "Ready") == Some(("False", "NoAgentAvailable"))
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.message.contains("vpc-a, vpc-b"))
                })
        },
    )
    .await;
    for k in &a {
        assert_eq!(tested_by(&all[k]).0, "vpc-a", "{k}");
    }
    for k in &b {
        assert_eq!(tested_by(&all[k]), ("vpc-b".into(), "b1".into()), "{k}");
    }
    let x = &all["x"];
    assert_eq!(condition(x, "Stalled"), Some(("True", "NoAgentAvailable")));
    let message = &x
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(
        message.contains("\"vpc-x\"") && message.contains("vpc-a, vpc-b"),
        "{message}"
    );
    assert!(x.checks.is_empty(), "nobody tested it");

    // A vpc-x agent starts: x is tested by it.
    let _x1 = op::start_agent(&ns, &dir.path().join("x1.log"), "x1", "vpc-x", &extra);
    let all = wait_all(
        &conns,
        "x tested by vpc-x",
        Duration::from_secs(60),
        |all| all.get("x").is_some_and(ready),
    )
    .await;
    assert_eq!(tested_by(&all["x"]), ("vpc-x".into(), "x1".into()));
    assert_eq!(
        condition(&all["x"], "Stalled"),
        Some(("False", "NotStalled"))
    );
}
