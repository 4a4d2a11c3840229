//! `cargo bench --bench load`: 1,000 KafkaConnections (`KCONN_LOAD_CONNECTIONS`) tested by one
//! `kconn run` for 10 minutes (`KCONN_LOAD_MINUTES`), while every minute a different 10 % of them is
//! broken in a rotating way (brokers unreachable, a wrong password, a missing Secret) and the previous
//! 10 % repaired. Every 30 s it prints the operator's resident memory, its heap in use and the heap's
//! free bytes (a leak grows the first, fragmentation the second), threads, open files, live async
//! tasks, the Kubernetes API requests of the last interval and the Ready counts; at the end, how the
//! last minutes compare with the first. Needs `scripts/test-env.sh up` (a fresh one: the numbers
//! include the broker's and API server's work on the same cores).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kconn::api::KafkaConnection;
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::{self as op, http_address, metric};
use support::Env;

const INTERVAL_SECS: u64 = 60;

const MIB: f64 = 1024.0 * 1024.0;

/// (minute, RSS KiB, async tasks, heap in use MiB, heap free MiB)
type Sample = (f64, u64, i64, f64, f64);

/// The minute from which memory should be flat (after the event recorder's 6-minute cache fills).
const SETTLED_FROM: f64 = 7.0;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The spec of connection `i`: healthy, or broken in way `kind` (0..3).
fn spec(kind: Option<u64>, closed: &str) -> serde_json::Value {
    let env = Env::get();
    let mut s = serde_json::json!({
        "role": "Source",
        "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
        "topics": {"expression": "kconn-load-none"},
        "check": {"interval": format!("{INTERVAL_SECS}s"), "timeout": "10s"},
        "models": {"suspend": true},
        "authentication": null
    });
    match kind {
        None => {}
        Some(0) => s["bootstrapServers"] = serde_json::json!([closed]),
        Some(1) => {
            s["bootstrapServers"] = serde_json::json!([env.var("KAFKA_SASL_PLAINTEXT")]);
            s["authentication"] = serde_json::json!({"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "wrong-password"}}});
        }
        Some(_) => {
            s["bootstrapServers"] = serde_json::json!([env.var("KAFKA_SASL_PLAINTEXT")]);
            s["authentication"] = serde_json::json!({"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "no-such-secret"}}});
        }
    }
    s
}

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn patch_range(
    api: &Api<KafkaConnection>,
    range: std::ops::Range<usize>,
    n: usize,
    kind: Option<u64>,
    closed: &str,
) {
    futures::stream::iter(range)
        .map(|i| {
            let api = api.clone();
            let spec = spec(kind, closed);
            async move {
                api.patch(
                    &format!("conn-{:04}", i % n),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "spec": spec })),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::main]
async fn main() {
    let n = env_or("KCONN_LOAD_CONNECTIONS", 1000) as usize;
    let minutes = env_or("KCONN_LOAD_MINUTES", 10);
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "wrong-password"},
        "stringData": {"username": env.var("KAFKA_SASL_USER"), "password": "not-the-password"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let api: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    println!("load: {n} connections, {minutes} min, interval {INTERVAL_SECS}s, 10 % broken per minute (rotating: unreachable, wrong password, missing Secret)");
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let closed = closed.clone();
            async move {
                let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
                    "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
                    "metadata": {"name": format!("conn-{i:04}")},
                    "spec": spec(None, &closed)
                }))
                .unwrap();
                api.create(&PostParams::default(), &conn).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    // Faults and memory over time are measured here, not the brokers' budget (benches/operator.rs).
    let operator = op::start_agent(
        &ns,
        &log,
        "load",
        "default",
        &[
            "--log",
            "info",
            "--broker-connection-rate",
            "0",
            "--cluster-tests",
            "0",
        ],
    );
    let pid = operator.0.id();
    let addr = http_address(&log, Duration::from_secs(60));

    let start = Instant::now();
    let window = (n / 10).max(1);
    let mut next_rotation = Duration::from_secs(60);
    let mut next_sample = Duration::ZERO;
    let mut rotation: u64 = 0;
    let mut last_requests = 0.0;
    let mut samples: Vec<Sample> = Vec::new();
    println!(
        "{:>6} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8} {:>10} {:>7} {:>7}",
        "time",
        "RSS MiB",
        "peak MiB",
        "heap MiB",
        "free MiB",
        "thr",
        "fds",
        "tasks",
        "API req/30s",
        "ready",
        "not"
    );
    while start.elapsed() < Duration::from_secs(minutes * 60) {
        if start.elapsed() >= next_rotation {
            // Repair the previous window, break the next one in the next way.
            let from = (rotation as usize * window) % n;
            patch_range(&api, from..from + window, n, None, &closed).await;
            rotation += 1;
            let from = (rotation as usize * window) % n;
            patch_range(&api, from..from + window, n, Some(rotation % 3), &closed).await;
            next_rotation += Duration::from_secs(60);
        }
        if start.elapsed() >= next_sample {
            let rss = proc_field(pid, "VmRSS:");
            let requests = metric(&addr, "kconn_api_requests_total");
            let tasks = metric(&addr, "kconn_runtime_tasks") as i64;
            let heap = metric(&addr, "kconn_heap_in_use_bytes") / MIB;
            let free = metric(&addr, "kconn_heap_free_bytes") / MIB;
            println!(
                "{:>5.1}m {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>6} {:>8} {:>10} {:>7} {:>7}",
                start.elapsed().as_secs_f64() / 60.0,
                rss as f64 / 1024.0,
                proc_field(pid, "VmHWM:") as f64 / 1024.0,
                heap,
                free,
                proc_field(pid, "Threads:"),
                open_files(pid),
                tasks,
                requests - last_requests,
                metric(&addr, "kconn_connections{ready=\"true\"}"),
                metric(&addr, "kconn_connections{ready=\"false\"}"),
            );
            samples.push((start.elapsed().as_secs_f64() / 60.0, rss, tasks, heap, free));
            last_requests = requests;
            next_sample += Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // the load's own clock, not a synchronisation
    }
    let avg = |from: f64, to: f64| {
        let s: Vec<_> = samples.iter().filter(|s| s.0 >= from && s.0 < to).collect();
        let count = s.len().max(1) as f64;
        let rss = s.iter().map(|s| s.1 as f64).sum::<f64>() / count / 1024.0;
        let tasks = s.iter().map(|s| s.2 as f64).sum::<f64>() / count;
        let heap = s.iter().map(|s| s.3).sum::<f64>() / count;
        let free = s.iter().map(|s| s.4).sum::<f64>() / count;
        (rss, tasks, heap, free)
    };
    let m = minutes as f64;
    let (rss_early, tasks_early, heap_early, free_early) = avg(1.0, 3.0);
    let (rss_late, tasks_late, heap_late, free_late) = avg(m - 2.0, m + 1.0);
    println!(
        "load: RSS {rss_early:.1} MiB (minutes 1-3) -> {rss_late:.1} MiB (last 2 min); heap in use {heap_early:.1} -> {heap_late:.1} MiB, free in the heap {free_early:.1} -> {free_late:.1} MiB; tasks {tasks_early:.0} -> {tasks_late:.0}; total API requests {last_requests:.0} in {minutes} min ({:.0}/min)",
        last_requests / m
    );
    // After the warm-up (the event recorder keeps each Event for 6 minutes), the trend of RSS and heap.
    let settled: Vec<_> = samples.iter().filter(|s| s.0 >= SETTLED_FROM).collect();
    if settled.len() >= 4 {
        let slope = |value: &dyn Fn(&Sample) -> f64| {
            let n = settled.len() as f64;
            let (mt, mv) = (
                settled.iter().map(|s| s.0).sum::<f64>() / n,
                settled.iter().map(|s| value(s)).sum::<f64>() / n,
            );
            let cov: f64 = settled.iter().map(|s| (s.0 - mt) * (value(s) - mv)).sum();
            let var: f64 = settled.iter().map(|s| (s.0 - mt).powi(2)).sum();
            cov / var
        };
        println!(
            "load: from minute {SETTLED_FROM:.0} on, RSS {:+.3} MiB/min, heap in use {:+.3} MiB/min (least squares over {} samples)",
            slope(&|s| s.1 as f64 / 1024.0),
            slope(&|s| s.3),
            settled.len()
        );
    }
    drop(operator);
    // Leave no load behind: 1,000 connections in the API server slow every later test run.
    api.delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
}
