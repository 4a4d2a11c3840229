//! `cargo bench --bench heap`: the connection test run again and again in one process (as the operator
//! runs it, without the operator around it), printing the heap in use every `KCONN_HEAP_EVERY` tests
//! (200) for `KCONN_HEAP_TESTS` tests (2,000) of each kind: healthy, closed port, wrong password
//! (`KCONN_HEAP_KIND` picks one). A test that leaks shows as a heap that keeps growing. Needs
//! `scripts/test-env.sh up`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Instant, SystemTime};

use kconn::api::KafkaConnection;
use kconn::checks::{self, TestInput};
use kconn::secrets::SecretStore;
use support::Env;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(unsafe_code)]
fn heap_mib() -> f64 {
    // SAFETY: reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as f64 / 1024.0 / 1024.0
}

#[tokio::main]
async fn main() {
    let tests = env_or("KCONN_HEAP_TESTS", 2000);
    let every = env_or("KCONN_HEAP_EVERY", 200);
    let env = Env::get();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut secrets = SecretStore::default();
    secrets.insert(
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "wrong", "namespace": "heap", "resourceVersion": "1"},
            "data": {"username": support::base64(env.var("KAFKA_SASL_USER").as_bytes()),
                     "password": support::base64(b"not-the-password")}
        }))
        .unwrap(),
    );
    let kinds = [
        (
            "healthy",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_PLAINTEXT")]}),
        ),
        (
            "closed port",
            serde_json::json!({"bootstrapServers": [closed]}),
        ),
        (
            "wrong password",
            serde_json::json!({"bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
                "authentication": {"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "wrong"}}}}),
        ),
    ];
    let only = std::env::var("KCONN_HEAP_KIND").unwrap_or_default();
    for (kind, mut spec) in kinds.into_iter().filter(|(k, _)| k.contains(only.as_str())) {
        spec["role"] = "Source".into();
        spec["topics"] = serde_json::json!({"expression": "kconn-heap-none"});
        spec["check"] = serde_json::json!({"interval": "60s", "timeout": "10s"});
        let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "heap", "namespace": "heap"}, "spec": spec
        }))
        .unwrap();
        let started = Instant::now();
        let mut line = format!("{kind:>15}: heap MiB");
        for i in 1..=tests {
            let input = TestInput {
                spec: &conn.spec,
                shape_problems: &[],
                secrets: &secrets,
                now: SystemTime::now(),
                group_id: checks::group_id(&conn.spec, "heap", "heap"),
            };
            let report = checks::run(&input, &kconn::kafka::RdKafka).await;
            drop(report);
            if i == 1 || i % every == 0 {
                line += &format!(" {:.2}@{i}", heap_mib());
            }
        }
        println!(
            "{line} ({:.0} tests/s)",
            tests as f64 / started.elapsed().as_secs_f64()
        );
    }
}
