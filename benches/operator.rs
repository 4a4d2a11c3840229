//! `cargo bench --bench operator`: N KafkaConnections (default 1,000; `KCONN_BENCH_CONNECTIONS`)
//! against the test environment's kube-apiserver and Kafka. Prints the time from the first apply to
//! all Ready, and the operator's resident memory (peak and at the end). Model refreshing is suspended
//! (benches/models.rs measures it). Needs `scripts/test-env.sh up`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kconn::api::KafkaConnection;
use kube::api::{Api, PostParams};
use support::Env;

/// The operator's API requests so far (sum over kinds), from its /metrics.
fn api_requests(addr: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .filter(|l| l.starts_with("kconn_api_requests_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KCONN_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let mut operator = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["run", "--namespace", &ns, "--http-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", env.var("KUBECONFIG"))
        .env("POD_NAME", "kconn-bench")
        .env("KCONN_LOG", "warn,kconn::http=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("operator.log")).unwrap())
        .spawn()
        .unwrap();
    let pid = operator.id();
    let idle_rss = {
        // Let the process start before the first sample.
        let start = Instant::now();
        loop {
            if let Some(r) = rss_kib(pid).filter(|r| *r > 0) {
                if start.elapsed() > Duration::from_millis(500) {
                    break r;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // sampling interval
        }
    };

    let api: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
                    "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
                    "metadata": {"name": format!("conn-{i}")},
                    "spec": {"role": "Source", "bootstrapServers": [Env::get().var("KAFKA_PLAINTEXT")], "topics": {"expression": "test\\..*"},
                             "check": {"interval": "20s", "timeout": "10s"}, "models": {"suspend": true}}
                }))
                .unwrap();
                api.create(&PostParams::default(), &conn).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let applied = started.elapsed();

    let mut peak = idle_rss;
    let deadline = Duration::from_secs(600);
    let all_ready = loop {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        let list = api.list(&Default::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|c| {
                c.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready == n {
            break Some(started.elapsed());
        }
        if started.elapsed() > deadline {
            println!("only {ready} of {n} Ready after {deadline:?}");
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await; // polling interval, bounded by the deadline
    };
    // Steady state: two intervals with nothing changing.
    let interval = Duration::from_secs(20);
    let addr = support::wait_for(
        "the operator's HTTP address",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(dir.path().join("operator.log")).ok()?;
            let line = text.lines().find(|l| l.contains("serving /livez"))?;
            Some(
                line.split("address=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_string(),
            )
        },
    );
    let before = api_requests(&addr);
    let window = interval * 2;
    let window_start = Instant::now();
    while window_start.elapsed() < window {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(500)).await; // sampling interval for RSS during the window
    }
    let per_connection_per_interval = (api_requests(&addr) - before) / n as f64 / 2.0;
    let end_rss = rss_kib(pid).unwrap_or(0);
    let _ = operator.kill();
    let _ = operator.wait();

    println!("operator benchmark: {n} KafkaConnections (PLAINTEXT, role Source), --concurrency 16 (default), release build");
    println!("applied all {n} in {:.1} s", applied.as_secs_f64());
    match all_ready {
        Some(t) => println!("all Ready {:.1} s after the first apply", t.as_secs_f64()),
        None => println!("not all Ready within {deadline:?}"),
    }
    println!("steady state: {per_connection_per_interval:.2} API requests per connection per check.interval (20 s, two intervals measured; watches excluded)");
    println!(
        "operator RSS: {:.1} MiB idle, {:.1} MiB peak, {:.1} MiB at the end; growth {:.1} MiB per 1,000 connections",
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        end_rss as f64 / 1024.0,
        (end_rss.saturating_sub(idle_rss)) as f64 / 1024.0 * 1000.0 / n as f64
    );
}
