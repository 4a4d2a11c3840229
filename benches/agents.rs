//! `cargo bench --bench agents`: N KafkaConnections (default 3,000; `KCONN_BENCH_CONNECTIONS`) tested
//! by 1 process, then by 3 processes of one pool, against the test environment's kube-apiserver and
//! Kafka. Prints the time from the first apply to all Ready for each, and, with 3, the time until
//! every connection of a killed process has been re-tested by the others. Model refreshing is
//! suspended and the topic expression matches nothing, so that what is measured is the sharing, not
//! the size of the broker's metadata. Needs `scripts/test-env.sh up`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kconn::api::KafkaConnection;
use kube::api::{Api, ListParams, PostParams};
use support::operator::{self as op, http_address, metric};
use support::Env;

const LEASE_SECS: u64 = 6;
const INTERVAL_SECS: u64 = 30;

async fn apply(api: &Api<KafkaConnection>, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
                    "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
                    "metadata": {"name": format!("conn-{i}")},
                    "spec": {"role": "Source", "bootstrapServers": [Env::get().var("KAFKA_PLAINTEXT")],
                             "topics": {"expression": "kconn-bench-none"},
                             "check": {"interval": format!("{INTERVAL_SECS}s"), "timeout": "10s"},
                             "models": {"suspend": true}}
                }))
                .unwrap();
                api.create(&PostParams::default(), &conn).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// Waits until `pred` holds for every listed connection's (Ready, testedBy.pod); returns the time.
async fn wait_all(
    api: &Api<KafkaConnection>,
    n: usize,
    since: Instant,
    pred: impl Fn(&str, bool, &str) -> bool,
) -> Option<Duration> {
    let deadline = Duration::from_secs(900);
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        let ok = list
            .items
            .iter()
            .filter(|c| {
                let s = c.status.as_ref();
                let ready = s.is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                let pod = s
                    .and_then(|s| s.tested_by.as_ref())
                    .map(|t| t.pod.as_str())
                    .unwrap_or("");
                pred(c.metadata.name.as_deref().unwrap_or(""), ready, pod)
            })
            .count();
        if ok == n {
            return Some(since.elapsed());
        }
        if since.elapsed() > deadline {
            println!("  only {ok} of {n} after {deadline:?}");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await; // polling interval, bounded by the deadline
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KCONN_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let lease = format!("{LEASE_SECS}s");
    println!("agents benchmark: {n} KafkaConnections (PLAINTEXT, role Source, no matching topic, models suspended), release build, Lease {LEASE_SECS} s, interval {INTERVAL_SECS} s");
    for processes in [1usize, 3] {
        let ns = support::namespace(&client).await;
        let api: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
        let mut members: Vec<(String, op::Operator, String)> = (0..processes)
            .map(|i| {
                let pod = format!("p{i}");
                let log = dir.path().join(format!("{ns}-{pod}.log"));
                // The fleet's pace is what is measured here, not the brokers' budget (benches/operator.rs).
                let p = op::start_agent(
                    &ns,
                    &log,
                    &pod,
                    "default",
                    &[
                        "--lease-duration",
                        &lease,
                        "--broker-connection-rate",
                        "0",
                        "--cluster-tests",
                        "0",
                    ],
                );
                let addr = http_address(&log, Duration::from_secs(30));
                (pod, p, addr)
            })
            .collect();
        for (_, _, addr) in &members {
            support::wait_for("all members live", Duration::from_secs(30), || {
                (metric(addr, "kconn_agents_live") as usize == processes).then_some(())
            });
        }
        let started = Instant::now();
        apply(&api, n).await;
        let ready = wait_all(&api, n, started, |_, ready, _| ready).await;
        let owned: Vec<String> = members
            .iter()
            .map(|(pod, _, addr)| format!("{pod}={}", metric(addr, "kconn_connections_owned")))
            .collect();
        println!(
            "{processes} process{}: all {n} Ready {} after the first apply (owned: {})",
            if processes == 1 { "" } else { "es" },
            secs(ready),
            owned.join(", ")
        );
        if processes > 1 {
            // Kill the last member without releasing its Lease; time until its connections are
            // re-tested by the others.
            let list = api.list(&ListParams::default()).await.unwrap();
            let (victim, mut child, _) = members.pop().unwrap();
            let of_victim: BTreeSet<String> = list
                .items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .and_then(|s| s.tested_by.as_ref())
                        .is_some_and(|t| t.pod == victim)
                })
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            let killed = Instant::now();
            let _ = child.0.kill();
            let _ = child.0.wait();
            let moved = wait_all(&api, n, killed, |name, ready, pod| {
                !of_victim.contains(name) || (ready && pod != victim)
            })
            .await;
            println!(
                "  killed {victim} (owned {}): its connections re-tested by the others {} after the kill (bound: Lease {LEASE_SECS} s + grace {} s + interval {INTERVAL_SECS} s = {:.0} s)",
                of_victim.len(),
                secs(moved),
                kconn::testing::agents::GRACE.as_secs(),
                LEASE_SECS as f64 + kconn::testing::agents::GRACE.as_secs_f64() + INTERVAL_SECS as f64
            );
        }
        drop(members);
    }
}
