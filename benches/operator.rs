//! `cargo bench --bench operator`: N KafkaConnections (default 1,000; `KCONN_BENCH_CONNECTIONS`) applied
//! against the test environment's kube-apiserver and Kafka, all to one broker through a counting
//! proxy (the COUNTED listener advertises the proxy, so every connection to the broker, bootstrap or
//! advertised, is counted on the broker's side). Prints: the time from the first apply to all Ready
//! and from the last apply; the operator's resident memory (idle, peak, steady) and heap; the API
//! requests per connection per `check.interval` in steady state (one interval measured after all are
//! Ready); and the most new connections the broker saw in any one second, against
//! `--broker-connection-rate` (`KCONN_BENCH_RATE`, default 1,000). Model refreshing is suspended
//! (benches/models.rs measures it). Needs `scripts/test-env.sh up`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kconn::api::KafkaConnection;
use kube::api::{Api, PostParams};
use support::proxy::CountingProxy;
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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let n: usize = env_or("KCONN_BENCH_CONNECTIONS", 1000);
    let rate: u32 = env_or("KCONN_BENCH_RATE", 1000);
    let interval_secs: u64 = env_or("KCONN_BENCH_INTERVAL_SECONDS", 300);
    let concurrency: u16 = env_or("KCONN_BENCH_CONCURRENCY", 16);
    // The steady-state window (default: one interval).
    let window_secs: u64 = env_or("KCONN_BENCH_WINDOW_SECONDS", interval_secs);
    let env = Env::get();
    let proxy =
        CountingProxy::start(env.var("KAFKA_COUNTED"), env.var("KAFKA_COUNTED_BROKER")).await;
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    // KCONN_BENCH_WRAPPER runs the operator under a tool, e.g. `heaptrack -o /tmp/operator` to see
    // where the bytes go (the RSS printed is then the tool's process).
    let wrapper = std::env::var("KCONN_BENCH_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut operator = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(env!("CARGO_BIN_EXE_kconn"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_kconn")),
    };
    let mut operator = operator
        .args(["run", "--namespace", &ns, "--http-addr", "127.0.0.1:0"])
        .args(["--broker-connection-rate", &rate.to_string()])
        .args(["--cluster-tests", &concurrency.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .env("KUBECONFIG", env.var("KUBECONFIG"))
        .env("POD_NAME", "kconn-bench")
        .env("KCONN_LOG", "warn,kconn::http=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = operator.id();
    let addr = support::operator::http_address(&log, Duration::from_secs(30));
    let idle_rss = {
        // Let the process start (and its watches sync) before the first sample.
        let start = Instant::now();
        loop {
            if let Some(r) = rss_kib(pid).filter(|r| *r > 0) {
                if start.elapsed() > Duration::from_millis(1000) {
                    break r;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // sampling interval
        }
    };
    let idle_heap = heap_mib(&addr);

    let api: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let bootstrap = env.var("KAFKA_COUNTED").to_string();
    let interval = format!("{interval_secs}s");
    // Readiness is followed with one watch (listing 10,000 objects again and again would load the
    // API server the operator shares).
    let ready = {
        let api = api.clone();
        tokio::spawn(async move {
            use kube::runtime::{watcher, WatchStreamExt};
            let mut seen = std::collections::HashSet::new();
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while let Some(Ok(conn)) = events.next().await {
                let ready = conn.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                let name = conn.metadata.name.unwrap_or_default();
                if ready {
                    seen.insert(name);
                } else {
                    seen.remove(&name);
                }
                if seen.len() == n {
                    return Instant::now();
                }
            }
            Instant::now() + Duration::from_secs(86_400)
        })
    };
    let started = Instant::now();
    // Sample the RSS while applying, too.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(idle_rss));
    let sampler = {
        let peak = sampling.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    rss_kib(pid).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(200)).await; // sampling interval
            }
        })
    };
    futures::stream::iter(0..n)
        .map(|i| {
            let (api, bootstrap, interval) = (api.clone(), bootstrap.clone(), interval.clone());
            async move {
                let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
                    "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
                    "metadata": {"name": format!("conn-{i}")},
                    "spec": {"role": "Source", "bootstrapServers": [bootstrap], "topics": {"expression": "test\\..*"},
                             "check": {"interval": interval, "timeout": "30s"}, "models": {"suspend": true}}
                }))
                .unwrap();
                api.create(&PostParams::default(), &conn).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let applied = started.elapsed();

    let deadline = Duration::from_secs(1800);
    let all_ready =
        match tokio::time::timeout(deadline.saturating_sub(started.elapsed()), ready).await {
            Ok(Ok(at)) => Some(at.duration_since(started)),
            _ => {
                println!("not all {n} Ready after {deadline:?}");
                None
            }
        };
    let ready_heap = heap_mib(&addr);
    let ready_connections = proxy.count();
    // Steady state: one interval with nothing changing.
    let before = api_requests(&addr);
    let tests_before = support::operator::metric(&addr, "kconn_test_start_delay_seconds_count");
    tokio::time::sleep(Duration::from_secs(window_secs)).await; // the measured window
    let per_connection_per_interval =
        (api_requests(&addr) - before) / n as f64 * interval_secs as f64 / window_secs as f64;
    let tests =
        support::operator::metric(&addr, "kconn_test_start_delay_seconds_count") - tests_before;
    let steady_rss = rss_kib(pid).unwrap_or(0);
    let steady_heap = heap_mib(&addr);
    sampler.abort();
    let peak = sampling.load(std::sync::atomic::Ordering::Relaxed);
    if wrapper.is_empty() {
        let _ = operator.kill();
    } else {
        // The tool writes its data when the operator ends: stop the operator (its child) gracefully.
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &pid.to_string()])
            .status();
    }
    let _ = operator.wait();

    println!(
        "operator benchmark: {n} KafkaConnections (PLAINTEXT, role Source, check.interval {interval}), \
         --concurrency {concurrency}, --cluster-tests {concurrency}, --broker-connection-rate {rate}, release build"
    );
    println!("applied all {n} in {:.1} s", applied.as_secs_f64());
    match all_ready {
        Some(t) => println!(
            "all Ready {:.1} s after the first apply, {:.1} s after the last",
            t.as_secs_f64(),
            t.saturating_sub(applied).as_secs_f64()
        ),
        None => println!("not all Ready within {deadline:?}"),
    }
    println!(
        "steady state: {per_connection_per_interval:.3} API requests per connection per check.interval ({tests} periodic tests in the {window_secs} s measured; watches excluded)"
    );
    println!(
        "broker: {} new connections until all Ready ({:.1} per connection), {} in the busiest second (limit {rate})",
        ready_connections,
        ready_connections as f64 / n as f64,
        proxy.highest_per_second()
    );
    println!(
        "operator RSS: {:.1} MiB idle, {:.1} MiB peak, {:.1} MiB steady; growth {:.1} MiB per 1,000 connections",
        mib(idle_rss),
        mib(peak),
        mib(steady_rss),
        mib(steady_rss.saturating_sub(idle_rss)) * 1000.0 / n as f64
    );
    println!(
        "heap in use: {idle_heap:.1} MiB idle, {ready_heap:.1} MiB when all Ready, {steady_heap:.1} MiB steady ({:.1} KiB per connection)",
        (steady_heap - idle_heap) * 1024.0 / n as f64
    );
}

/// The heap in use (MiB), from the operator's /metrics.
fn heap_mib(addr: &str) -> f64 {
    support::operator::metric(addr, "kconn_heap_in_use_bytes") / 1024.0 / 1024.0
}
