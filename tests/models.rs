//! Sampling and model building against the real Kafka: the newest messages across partitions, without
//! a consumer group; JSON, mixed and non-JSON topics under both settings.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::time::Duration;

use kconn::testing::kafka::sample::newest;
use kconn::testing::kafka::ClientSettings;
use kconn::testing::models;
use rdkafka::consumer::{BaseConsumer, Consumer};
use support::{config, unique, Env};

fn group_count(bootstrap: &str) -> usize {
    let c: BaseConsumer = config(bootstrap, &[]).create().unwrap();
    c.fetch_group_list(None, Duration::from_secs(10))
        .unwrap()
        .groups()
        .len()
}

#[tokio::test]
async fn the_newest_messages_become_a_model_and_nothing_is_committed() {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT");
    let (json, mixed, empty) = (
        unique("models-json"),
        unique("models-mixed"),
        unique("models-empty"),
    );
    support::create_topic(bootstrap, &json, 2).await;
    support::create_topic(bootstrap, &mixed, 1).await;
    support::create_topic(bootstrap, &empty, 1).await;
    let base = 1_700_000_000_000i64;
    // Partition 1 first (older), then 15 on partition 0 (newer): the newest 10 are partition 0's last 10.
    for i in 0..3 {
        support::produce(
            bootstrap,
            &json,
            1,
            base + i,
            &format!("{{\"id\":{i}}}"),
            format!(r#"{{"id": {i}, "old": true}}"#).as_bytes(),
        )
        .await;
    }
    for i in 0..15 {
        let payload = if i % 2 == 0 {
            format!(r#"{{"id": {i}, "amount": 1.5, "note": null}}"#)
        } else {
            format!(r#"{{"id": {i}, "amount": 2}}"#)
        };
        support::produce(
            bootstrap,
            &json,
            0,
            base + 100 + i,
            &format!("{{\"id\":{i}}}"),
            payload.as_bytes(),
        )
        .await;
    }
    support::produce(bootstrap, &mixed, 0, base, "k", br#"{"ok": true}"#).await;
    support::produce(bootstrap, &mixed, 0, base + 1, "k", b"plain text, not JSON").await;

    let groups_before = group_count(bootstrap);
    let settings = ClientSettings::plaintext(vec![bootstrap.to_string()]);
    let topic_of = |name: &str, partitions| kconn::testing::kafka::Topic {
        name: name.to_string(),
        partitions,
        replication_factor: 1,
    };
    let topics = vec![topic_of(&json, 2), topic_of(&mixed, 1), topic_of(&empty, 1)];
    let samples = tokio::task::spawn_blocking(move || {
        newest(&settings, &topics, 10, Duration::from_secs(20))
    })
    .await
    .unwrap()
    .unwrap();

    let got: Vec<(i32, i64)> = samples[&json]
        .iter()
        .map(|s| (s.partition, s.offset))
        .collect();
    assert_eq!(
        got,
        (5..15).map(|o| (0, o)).collect::<Vec<_>>(),
        "the newest 10 across partitions, oldest first"
    );
    let model = models::build(&json, &samples[&json], false).unwrap();
    assert_eq!(model.sampled, 10);
    assert_eq!(model.key_format, models::KeyFormat::Json);
    assert_eq!(
        model.schema.value()["properties"]["amount"]["type"],
        "number"
    );
    assert_eq!(
        model.schema.value()["properties"]["note"]["type"],
        "null",
        "only nulls seen"
    );
    assert_eq!(
        model.schema.value()["required"],
        serde_json::json!(["amount", "id"]),
        "note is absent from half the samples"
    );
    assert!(
        model.schema.value()["properties"].get("old").is_none(),
        "older messages are not sampled"
    );

    let err = models::build(&mixed, &samples[&mixed], false).unwrap_err();
    assert_eq!((err.partition, err.offset), (0, 1));
    let skipped = models::build(&mixed, &samples[&mixed], true).unwrap();
    assert_eq!((skipped.sampled, skipped.skipped), (1, 1));

    assert!(samples[&empty].is_empty());
    assert!(
        models::build(&empty, &samples[&empty], false)
            .unwrap()
            .empty
    );

    assert_eq!(
        group_count(bootstrap),
        groups_before,
        "sampling joins no consumer group"
    );
}

#[tokio::test]
async fn kconn_check_models_prints_each_model() {
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT");
    let (good, bad) = (unique("cm-good"), unique("cm-bad"));
    support::create_topic(bootstrap, &good, 1).await;
    support::create_topic(bootstrap, &bad, 1).await;
    support::produce(bootstrap, &good, 0, 1, "k1", br#"{"id": 1, "name": "a"}"#).await;
    support::produce(bootstrap, &good, 0, 2, "k2", br#"{"id": 2}"#).await;
    support::produce(bootstrap, &bad, 0, 1, "k", b"not json").await;
    let dir = tempfile::tempdir().unwrap();
    let run = |ignore: bool| {
        let file = dir.path().join(format!("c-{ignore}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: m, namespace: t}}\nspec:\n  role: Source\n  bootstrapServers: ['{bootstrap}']\n  topics: {{expression: '{good}, {bad}', syntax: Glob}}\n  consumer: {{ignoreNonJsonMessages: {ignore}}}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args([
                "check",
                "-f",
                file.to_str().unwrap(),
                "--models",
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|_| panic!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
        report["connections"][0]["models"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let models = run(false);
    let by_topic = |models: &[serde_json::Value], t: &str| {
        models
            .iter()
            .find(|m| m["topic"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no model for {t}: {models:?}"))
    };
    let g = by_topic(&models, &good);
    assert_eq!(g["model"]["sampled"], 2);
    assert_eq!(g["model"]["schema"]["required"], serde_json::json!(["id"]));
    assert_eq!(g["model"]["schema"]["properties"]["name"]["type"], "string");
    let b = by_topic(&models, &bad);
    assert_eq!(
        b["error"],
        "partition 0 offset 0 is not a JSON object (not JSON)"
    );
    let models = run(true);
    let b = by_topic(&models, &bad);
    assert_eq!(
        (
            b["model"]["sampled"].as_u64(),
            b["model"]["skipped"].as_u64()
        ),
        (Some(0), Some(1))
    );
}

/// Runs `kconn check --models -o json` on `yaml` and returns its report and its peak RSS in MiB (the
/// kernel's own figure for the child, from wait4).
fn check_with_peak_rss(yaml: &str) -> (serde_json::Value, f64) {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conn.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out_path = dir.path().join("out.json");
    // Reaped below by wait4, which also gives its resource use; Child::wait would not.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args([
            "check",
            "--models",
            "-f",
            file.to_str().unwrap(),
            "-o",
            "json",
        ])
        .env("TMPDIR", dir.path())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for the child it reaps, once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: pid is our own child, not yet waited for.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    let status = std::process::ExitStatus::from_raw(status);
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    support::keep_text("models-large", &stdout);
    let report =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e} (exit {status:?}): {stdout}"));
    (report, usage.ru_maxrss as f64 / 1024.0)
}

#[tokio::test]
async fn large_messages_are_counted_and_sampling_memory_stays_bounded() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let env = Env::get();
    let bootstrap = env.var("KAFKA_PLAINTEXT");
    let topic = unique("models-large");
    support::create_topic(bootstrap, &topic, 4).await;
    // 4 partitions of 150 messages of 190 KB (114 MB), then 3 of 300 KB, the newest: more than the
    // 16 MiB one sampling client holds, each under the 256 KiB a message may have, but the last three.
    let producer: BaseProducer = config(bootstrap, &[("linger.ms", "20")]).create().unwrap();
    let blob = "x".repeat(190_000);
    let big = "y".repeat(300_000);
    let base = 1_700_000_000_000i64;
    let mut sent = 0i64;
    for (partition, count, body) in [
        (0, 150, &blob),
        (1, 150, &blob),
        (2, 150, &blob),
        (3, 150, &blob),
        (0, 3, &big),
    ] {
        for _ in 0..count {
            let payload = format!(r#"{{"id": {sent}, "blob": "{body}"}}"#);
            let key = sent.to_string();
            let mut record = BaseRecord::to(&topic)
                .partition(partition)
                .timestamp(base + sent)
                .key(&key)
                .payload(&payload);
            // A full queue is emptied by polling, then the same record is offered again.
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        producer.poll(Duration::from_millis(100));
                        record = r;
                    }
                }
            }
            sent += 1;
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let yaml = format!(
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: large, namespace: tests}}\nspec:\n  bootstrapServers: ['{bootstrap}']\n  topics: {{expression: '{}'}}\n  models: {{sampleMessages: 1000}}\n  check: {{timeout: 60s}}\n",
        topic.replace('.', "\\.")
    );
    let (report, peak_mib) = check_with_peak_rss(&yaml);
    println!("kconn check --models over 114 MB of messages: peak RSS {peak_mib:.1} MiB");
    let model = &report["connections"][0]["models"][0]["model"];
    let (sampled, oversized) = (
        model["sampled"].as_u64().unwrap_or(0),
        model["oversized"].as_u64().unwrap_or(0),
    );
    assert_eq!(
        sampled + oversized,
        603,
        "every newest message is read or counted: {model}"
    );
    assert!(oversized >= 3, "the 300 KB messages are counted: {model}");
    assert!(
        sampled > 0 && sampled < 100,
        "the 16 MiB budget holds some 86 messages of 190 KB: {model}"
    );
    // Measured: about 120 MiB; holding every message, as before the budget, about 255 MiB.
    assert!(
        peak_mib < 180.0,
        "peak RSS {peak_mib:.1} MiB: 114 MB of messages must not be held at once"
    );
}
