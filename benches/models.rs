//! `cargo bench --bench models`: one model refresh (connection test, sampling, inference, catalog
//! build, ConfigMap writes) of
//! - 1,000 topics on the test environment's real Kafka, and
//! - 1,000 topics on it whose messages confluent-kafka's Avro serializer wrote, read with the test
//!   environment's schema registry ("registry": also prints how often the one schema was fetched), and
//! - 10,000 topics on librdkafka's in-process mock cluster (3 brokers), and
//! - 10,000 and 100,000 topics whose samples are generated in-process ("synthetic": everything but
//!   Kafka; the mock cluster needs over 15 minutes to take 100,000 topics' messages here),
//!
//! each run twice: the first writes the catalog, the second finds nothing changed. Prints wall time,
//! the refreshing process's peak resident memory, and the bytes sent to the API server. Every refresh
//! runs in a process of its own (and the mock cluster in another), so that the peak memory is the
//! refresh's alone. Sizes: `KCONN_BENCH_MODEL_SIZES` (default
//! `1000:real,1000:registry,10000:mock,10000:synthetic,100000:synthetic`).
//! Needs `scripts/test-env.sh up`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kconn::api::KafkaConnection;
use kconn::testing::kafka::RdKafka;
use kconn::testing::models::store::Owner;
use kconn::testing::models::task::{self, Job};
use kube::api::{Api, PostParams};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::Env;

/// Messages per topic.
const MESSAGES: usize = 10;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn message(topic: usize, i: usize) -> String {
    format!(
        r#"{{"id": {i}, "topic": {topic}, "amount": {}.5, "currency": "EUR", "customer": {{"id": "c-{i}", "vip": {}}}, "items": [{{"sku": "A-{i}", "qty": 2}}]}}"#,
        i * 3,
        i.is_multiple_of(2)
    )
}

fn produce_all(bootstrap: &str, names: &[String]) {
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "50")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for (t, name) in names.iter().enumerate() {
        for i in 0..MESSAGES {
            let body = message(t, i);
            let key = format!("{i}");
            loop {
                match producer.send(BaseRecord::to(name).key(&key).payload(&body)) {
                    Ok(()) => break,
                    Err((_, _)) => {
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(300)).unwrap();
}

/// Child: a mock cluster with `n` topics of MESSAGES JSON messages; prints its bootstrap address and
/// stays up until stdin closes.
fn serve_mock(n: usize) {
    let cluster = rdkafka::mocking::MockCluster::new(3).unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("bench.t{i:06}")).collect();
    // The mock cluster creates a topic on its first produce (create_topic takes ~0.2 s per topic).
    let t = Instant::now();
    produce_all(&cluster.bootstrap_servers(), &names);
    eprintln!(
        "  mock: messages produced in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Child: two refreshes of connection `name` in `ns`; prints `seconds bytes seconds bytes models
/// peak_kib`.
fn refresh(bootstrap: &str, prefix: &str, ns: &str, name: &str, uid: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("KCONN_LOG").unwrap_or_else(|_| "warn,kconn::models=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let env = Env::get();
        let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
        let mut spec = serde_json::json!({"role": "Source", "bootstrapServers": bootstrap.split(',').collect::<Vec<_>>(),
                     "topics": {"expression": format!("{}\\..*", prefix.replace('.', "\\."))},
                     "check": {"timeout": "30s", "interval": "10m"}});
        if let Ok(url) = std::env::var("KCONN_BENCH_REGISTRY") {
            spec["schemaRegistry"] = serde_json::json!({"url": [url]});
        }
        let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": name, "namespace": ns}, "spec": spec
        }))
        .unwrap();
        let job = Job {
            owner: Owner {
                namespace: ns.into(),
                name: name.into(),
                uid: uid.into(),
            },
            generation: Some(1),
            request: None,
            spec: conn.spec,
            secrets: Default::default(),
            timeout: Duration::from_secs(600),
            shard_bytes: kconn::testing::models::catalog::MAX_SHARD_BYTES,
        };
        let mut figures = Vec::new();
        let mut models = 0;
        for _ in 0..2 {
            let started = Instant::now();
            let done = task::run(job.clone(), &RdKafka, client.clone()).await;
            let took = started.elapsed().as_secs_f64();
            let written = done
                .result
                .unwrap_or_else(|e| panic!("refresh failed: {}: {}", e.reason, e.message));
            models = written.count;
            figures.push(format!("{took:.2} {}", written.bytes_written));
        }
        println!("{} {models} {}", figures.join(" "), peak_rss_kib());
    });
}

/// Child: like `refresh`, without Kafka: `n` topics' samples are generated in this process (the same
/// messages the other kinds produce, 1,000 topics at a time as the sampler hands them over), then
/// models, catalog and ConfigMaps as in a refresh. For sizes the mock cluster cannot hold.
fn synthetic(n: &str, ns: &str, name: &str, uid: &str) {
    let n: usize = n.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let env = Env::get();
        let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
        let owner = Owner {
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
        };
        let mut figures = Vec::new();
        let mut models = 0;
        for _ in 0..2 {
            let started = Instant::now();
            let mut outcomes = Vec::with_capacity(n);
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let samples: Vec<(String, Vec<kconn::testing::models::Sample>)> = chunk
                    .iter()
                    .map(|t| {
                        let topic = format!("bench.t{t:06}");
                        let s = (0..MESSAGES)
                            .map(|i| kconn::testing::models::Sample {
                                partition: 0,
                                offset: i as i64,
                                key: Some(i.to_string().into_bytes()),
                                payload: Some(message(*t, i).into_bytes()),
                                oversized: false,
                            })
                            .collect();
                        (topic, s)
                    })
                    .collect();
                for (topic, s) in samples {
                    let model = kconn::testing::models::build(&topic, &s, false).unwrap();
                    outcomes.push(kconn::testing::models::report::ModelOutcome {
                        topic,
                        model: Some(model),
                        error: None,
                    });
                }
            }
            let written = task::store_catalog(
                &owner,
                outcomes,
                kconn::testing::models::catalog::MAX_SHARD_BYTES,
                client.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("store failed: {}: {}", e.reason, e.message));
            models = written.count;
            figures.push(format!(
                "{:.2} {}",
                started.elapsed().as_secs_f64(),
                written.bytes_written
            ));
        }
        println!("{} {models} {}", figures.join(" "), peak_rss_kib());
    });
}

fn bench_binary() -> std::path::PathBuf {
    std::env::current_exe().unwrap()
}

async fn create_connection(client: &kube::Client, ns: &str, name: &str) -> String {
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": name},
        "spec": {"bootstrapServers": ["127.0.0.1:1"], "topics": {"expression": "x"}, "suspend": true}
    }))
    .unwrap();
    Api::<KafkaConnection>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &conn)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

async fn real_topics(n: usize) -> (String, String) {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT").to_string();
    let prefix = support::unique("bench-models");
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}.t{i:05}")).collect();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        support::config(&bootstrap, &[]).create().unwrap();
    for chunk in names.chunks(200) {
        let topics: Vec<rdkafka::admin::NewTopic> = chunk
            .iter()
            .map(|t| {
                rdkafka::admin::NewTopic::new(t, 1, rdkafka::admin::TopicReplication::Fixed(1))
            })
            .collect();
        for r in admin
            .create_topics(
                &topics,
                &rdkafka::admin::AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(60))),
            )
            .await
            .unwrap()
        {
            r.unwrap();
        }
    }
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || produce_all(&b, &names))
        .await
        .unwrap();
    (bootstrap, prefix)
}

/// `n` topics whose 10 messages each confluent-kafka's Avro serializer wrote, all with one schema of
/// this run's own; the bootstrap servers, the prefix and the schema id.
fn registry_topics(n: usize) -> (String, String, u64) {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT").to_string();
    let prefix = support::unique("bench-registry");
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}.t{i:05}")).collect();
    let out = Command::new(env.var("SERDES_PYTHON"))
        .arg(env.var("SERDES_PRODUCER"))
        .args([
            "--bootstrap",
            &bootstrap,
            "--registry",
            env.var("SCHEMA_REGISTRY_URL"),
        ])
        .args(["--topic", &names.join(","), "--format", "avro"])
        .args(["--count", &MESSAGES.to_string()])
        .args(["--record", &format!("BenchOrder{}", std::process::id())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (bootstrap, prefix, ids["value"].as_u64().unwrap())
}

/// Deletes the topics `real_topics` made, so that repeated runs do not pile topics up on the broker
/// (every connection test lists them all).
async fn delete_topics(bootstrap: &str, n: usize, prefix: &str) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        support::config(bootstrap, &[]).create().unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}.t{i:05}")).collect();
    for chunk in names.chunks(200) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        if let Err(e) = admin
            .delete_topics(
                &refs,
                &rdkafka::admin::AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(60))),
            )
            .await
        {
            eprintln!("  (could not delete the benchmark's topics: {e})");
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve-mock") => serve_mock(args[2].parse().unwrap()),
        Some("refresh") if args[2] == "synthetic" => {
            synthetic(&args[3], &args[4], &args[5], &args[6])
        }
        Some("refresh") => refresh(&args[2], &args[3], &args[4], &args[5], &args[6]),
        _ => tokio::runtime::Runtime::new().unwrap().block_on(bench()),
    }
}

async fn bench() {
    let sizes = std::env::var("KCONN_BENCH_MODEL_SIZES").unwrap_or_else(|_| {
        "1000:real,1000:registry,10000:mock,10000:synthetic,100000:synthetic".into()
    });
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    println!("model refresh: connection test + sampling {MESSAGES} messages/topic + inference + ConfigMaps");
    println!(
        "{:>8} {:>9} {:>9} {:>12} {:>9} {:>12} {:>10}",
        "topics", "kafka", "1st (s)", "1st written", "2nd (s)", "2nd written", "peak RSS"
    );
    for (i, spec) in sizes.split(',').enumerate() {
        let (n, kind) = spec.split_once(':').unwrap_or((spec, "mock"));
        let n: usize = n.parse().unwrap();
        let setup = Instant::now();
        let mut server = None;
        let mut schema_id = None;
        let (bootstrap, prefix) = if kind == "real" {
            real_topics(n).await
        } else if kind == "registry" {
            let (bootstrap, prefix, id) = tokio::task::spawn_blocking(move || registry_topics(n))
                .await
                .unwrap();
            schema_id = Some(id);
            (bootstrap, prefix)
        } else if kind == "synthetic" {
            ("synthetic".to_string(), n.to_string())
        } else {
            let mut child = Command::new(bench_binary())
                .args(["serve-mock", &n.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            server = Some(child);
            (line.trim().to_string(), "bench".to_string())
        };
        eprintln!(
            "  ({n} {kind} topics with {MESSAGES} messages each set up in {:.1} s)",
            setup.elapsed().as_secs_f64()
        );
        let name = format!("bench-{i}");
        let uid = create_connection(&client, &ns, &name).await;
        let fetched_before = schema_id.map(support::registry_fetches);
        let mut refresh = Command::new(bench_binary());
        refresh
            .args(["refresh", &bootstrap, &prefix, &ns, &name, &uid])
            .stderr(Stdio::inherit());
        if kind == "registry" {
            refresh.env("KCONN_BENCH_REGISTRY", env.var("SCHEMA_REGISTRY_URL"));
        }
        let out = refresh.output().unwrap();
        if let (Some(id), Some(before)) = (schema_id, fetched_before) {
            // The registry writes its access log as requests end: wait for the first fetch to show.
            let deadline = Instant::now() + Duration::from_secs(10);
            while support::registry_fetches(id) == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "  ({n} registry topics, one schema (id {id}): fetched {} times in the 2 refreshes)",
                support::registry_fetches(id) - before
            );
        }
        if let Some(mut s) = server {
            drop(s.stdin.take());
            let _ = s.wait();
        }
        if kind == "real" || kind == "registry" {
            delete_topics(&bootstrap, n, &prefix).await;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        if !out.status.success() || f.len() < 6 {
            println!("{n:>8} {kind:>9} refresh failed: {text}");
            continue;
        }
        let kib = |b: &str| format!("{:.0} KiB", b.parse::<f64>().unwrap_or(0.0) / 1024.0);
        println!(
            "{:>8} {kind:>9} {:>9} {:>12} {:>9} {:>12} {:>6} MiB   ({} models)",
            n,
            f[0],
            kib(f[1]),
            f[2],
            kib(f[3]),
            f[5].parse::<u64>().unwrap_or(0) / 1024,
            f[4]
        );
    }
}
