//! The operator's HTTP endpoints: `/livez`, `/readyz` (after the first watch sync) and `/metrics`
//! (Prometheus text, names prefixed `kconn_`, labels bounded: no per-object labels). A deliberately
//! small HTTP/1.1 responder: probes and scrapers send one GET and read one answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

/// `result` label of reconciles: `tested`, `waited`, `suspended` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// What the reconcile did.
    pub result: String,
}

/// `check` label (one of the twelve check names).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabel {
    /// The check.
    pub check: String,
}

/// `kind` label of API requests: `secret_get`, `status_get`, `status_patch` or `event_create`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The request.
    pub kind: String,
}

/// `ready` label: `true`, `false` or `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabel {
    /// The Ready condition's status, lower case.
    pub ready: String,
}

/// kconn's metrics.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// Check durations by check.
    pub check_duration: Family<CheckLabel, Histogram>,
    connections: Family<ReadyLabel, Gauge>,
    /// How long after it was due each periodic test started (the operator keeping pace).
    pub test_start_delay: Histogram,
    /// How long each test waited for its cluster's budget (connections per broker per second, tests
    /// at once per cluster).
    pub budget_wait: Histogram,
    /// Tests whose login the brokers rejected.
    pub failed_logins: Counter,
    /// Requests to the Kubernetes API by kind (watches excluded).
    pub api_requests: Family<KindLabel, Counter>,
    /// Model refreshes by result (a ModelsLoaded reason).
    pub refreshes: Family<ResultLabel, Counter>,
    /// Bytes of catalog ConfigMaps sent to the API server.
    pub catalog_bytes_written: Counter,
    /// Live agent processes this process sees (itself included).
    pub agents_live: Gauge,
    connections_owned: Gauge,
    /// Tasks alive in the process's async runtime (a leak shows as growth), set when /metrics is read.
    runtime_tasks: Gauge,
    /// Heap bytes in use and bytes freed but kept by the allocator, set when /metrics is read.
    heap_in_use: Gauge,
    heap_free: Gauge,
    ready_by_object: Mutex<HashMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix(crate::api::MANAGER);
        let reconciles = Family::<ResultLabel, Counter>::default();
        let check_duration = Family::<CheckLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let connections = Family::<ReadyLabel, Gauge>::default();
        let test_start_delay = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        let budget_wait = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let failed_logins = Counter::default();
        let api_requests = Family::<KindLabel, Counter>::default();
        let refreshes = Family::<ResultLabel, Counter>::default();
        let catalog_bytes_written = Counter::default();
        let agents_live = Gauge::default();
        let connections_owned = Gauge::default();
        let runtime_tasks = Gauge::default();
        let (heap_in_use, heap_free) = (Gauge::default(), Gauge::default());
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "check_duration_seconds",
            "Duration of each check of the connection test",
            check_duration.clone(),
        );
        registry.register(
            "connections",
            "Connections by the status of their Ready condition",
            connections.clone(),
        );
        registry.register(
            "test_start_delay_seconds",
            "How long after it was due each periodic connection test started",
            test_start_delay.clone(),
        );
        registry.register(
            "budget_wait_seconds",
            "How long each connection test waited for its cluster's budget (new connections per broker per second, tests at once per cluster)",
            budget_wait.clone(),
        );
        registry.register(
            "failed_logins",
            "Connection tests whose login the brokers rejected",
            failed_logins.clone(),
        );
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API by kind (watches excluded)",
            api_requests.clone(),
        );
        registry.register(
            "model_refreshes",
            "Model catalog refreshes by result (the ModelsLoaded reason)",
            refreshes.clone(),
        );
        registry.register(
            "catalog_bytes_written",
            "Bytes of model catalog ConfigMaps sent to the Kubernetes API",
            catalog_bytes_written.clone(),
        );
        registry.register(
            "agents_live",
            "Live kconn processes (agent Leases) this process sees, itself included",
            agents_live.clone(),
        );
        registry.register(
            "connections_owned",
            "Connections this process owns and tests",
            connections_owned.clone(),
        );
        registry.register(
            "runtime_tasks",
            "Tasks alive in the process's async runtime",
            runtime_tasks.clone(),
        );
        registry.register(
            "heap_in_use_bytes",
            "Heap bytes allocated and not freed, Rust and librdkafka alike (glibc malloc, all arenas)",
            heap_in_use.clone(),
        );
        registry.register(
            "heap_free_bytes",
            "Heap bytes freed but still held by the allocator (fragmentation shows here, a leak in use)",
            heap_free.clone(),
        );
        Self {
            registry,
            reconciles,
            check_duration,
            connections,
            test_start_delay,
            budget_wait,
            failed_logins,
            api_requests,
            refreshes,
            catalog_bytes_written,
            agents_live,
            connections_owned,
            runtime_tasks,
            heap_in_use,
            heap_free,
            ready_by_object: Mutex::new(HashMap::new()),
        }
    }
}

impl Metrics {
    /// Counts `n` API requests of `kind`.
    pub fn api(&self, kind: &str, n: u64) {
        if n > 0 {
            self.api_requests
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(n);
        }
    }

    /// Records the Ready status of one connection (`key`: namespace/name); the gauges are counted
    /// when /metrics is read (counting at every reconcile cost a pass over every connection).
    pub fn set_ready(&self, key: &str, ready: Option<&str>) {
        let Ok(mut map) = self.ready_by_object.lock() else {
            return;
        };
        match ready {
            Some(r) => map.insert(key.to_string(), r.to_lowercase()),
            None => map.remove(key),
        };
    }

    /// Forgets the connections `live` says are gone (deleted: no reconcile tells of that).
    pub fn retain_ready(&self, live: impl Fn(&str) -> bool) {
        if let Ok(mut map) = self.ready_by_object.lock() {
            map.retain(|key, _| live(key));
        }
    }

    fn count_ready(&self) {
        let Ok(map) = self.ready_by_object.lock() else {
            return;
        };
        self.connections_owned.set(map.len() as i64);
        let mut counts = [0i64; 3];
        for v in map.values() {
            match v.as_str() {
                "true" => counts[0] += 1,
                "false" => counts[1] += 1,
                _ => counts[2] += 1,
            }
        }
        for (state, n) in ["true", "false", "unknown"].into_iter().zip(counts) {
            self.connections
                .get_or_create(&ReadyLabel {
                    ready: state.into(),
                })
                .set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.count_ready();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.runtime_tasks
                .set(runtime.metrics().num_alive_tasks() as i64);
        }
        if let Some((in_use, free)) = heap() {
            self.heap_in_use.set(in_use as i64);
            self.heap_free.set(free as i64);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// How many HTTP connections are served at once.
const MAX_CONNECTIONS: usize = 64;
/// The pause after a failed accept.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// How long writing one answer may take.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds `addr` and serves the endpoints in the background; returns the bound address (port 0
/// picks a free one).
pub async fn serve(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(address = %bound, "serving /livez, /readyz and /metrics");
    // At most MAX_CONNECTIONS served at once; further ones wait in the kernel's backlog.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning a core on the error.
                    warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let (ready, metrics) = (ready.clone(), metrics.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let Some(request) = read_head(&mut stream).await else {
                    return;
                };
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, content_type, body) =
                    respond(path, ready.load(Ordering::Relaxed), &metrics);
                let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                // A client that does not read its answer is dropped after WRITE_TIMEOUT.
                let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                    stream.write_all(head.as_bytes()).await?;
                    stream.write_all(body.as_bytes()).await?;
                    stream.shutdown().await
                })
                .await;
            });
        }
    });
    Ok(bound)
}

/// Reads a request up to the end of its headers (at most 8 KiB, within 5 s); `None` on a timeout,
/// a closed connection or an oversized head.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() + n > 8192 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn respond(path: &str, ready: bool, metrics: &Metrics) -> (&'static str, &'static str, String) {
    match path.split('?').next().unwrap_or(path) {
        "/livez" => ("200 OK", "text/plain", "ok\n".into()),
        "/readyz" if ready => ("200 OK", "text/plain", "ok\n".into()),
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "the watches have not synced yet\n".into(),
        ),
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "not found: try /livez, /readyz or /metrics\n".into(),
        ),
    }
}

/// The allocator's heap: (bytes in use, bytes free but held), over all arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn heap() -> Option<(usize, usize)> {
    // SAFETY: mallinfo2 only reads the allocator's counters (taking each arena's lock); it has no
    // preconditions.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks + info.hblkhd, info.fordblks))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap() -> Option<(usize, usize)> {
    None
}

/// How many malloc arenas the operator's threads share. glibc's default is eight per core, each
/// keeping the memory freed into it: the Kafka clients' threads come and go with every test, and
/// what they freed stayed resident in arenas no thread was using.
pub const MALLOC_ARENAS: i32 = 2;

/// Sets the allocator up for a long-running operator (before its threads start): at most
/// [`MALLOC_ARENAS`] arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune_heap() {
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_heap() {}

/// Hands the free memory at the top of each arena back to the system (the janitor calls it now and
/// then, after the burst of tests at start-up).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory (taking each arena's lock); it has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_sent_in_pieces_is_read_whole() {
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(AtomicBool::new(true)),
            Arc::new(Metrics::default()),
        )
        .await
        .unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET ").await.unwrap();
        s.flush().await.unwrap();
        tokio::task::yield_now().await;
        s.write_all(b"/readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    }

    #[test]
    fn endpoints_and_bounded_metrics() {
        let m = Metrics::default();
        m.reconciles
            .get_or_create(&ResultLabel {
                result: "tested".into(),
            })
            .inc();
        m.set_ready("ns/a", Some("True"));
        m.set_ready("ns/b", Some("False"));
        m.set_ready("ns/b", None);
        m.set_ready("ns/c", Some("True"));
        // ns/c was deleted: the janitor forgets it.
        m.retain_ready(|key| key != "ns/c");
        let text = m.encode();
        assert!(
            text.contains("kconn_reconciles_total{result=\"tested\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kconn_connections{ready=\"true\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kconn_connections{ready=\"false\"} 0"),
            "{text}"
        );
        assert!(!text.contains("ns/a"), "no per-object labels");
        assert_eq!(respond("/readyz", false, &m).0, "503 Service Unavailable");
        assert_eq!(respond("/readyz", true, &m).0, "200 OK");
        assert_eq!(respond("/livez", false, &m).0, "200 OK");
        assert_eq!(respond("/nope", true, &m).0, "404 Not Found");
    }
}
