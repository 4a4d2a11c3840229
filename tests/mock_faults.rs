//! Request errors injected at 10 % with librdkafka's mock cluster (3 brokers, in-process): 10 rounds of
//! the whole connection test and of model sampling while Metadata, ApiVersion, ListOffsets, Fetch,
//! DescribeConfigs and FindCoordinator requests fail one time in ten with retriable and fatal errors.
//! Nothing panics, every round gives a whole report (a row per check, each with a reason), and once the
//! errors stop the report is again the one of an undisturbed cluster. The real fault tests are in
//! tests/faults.rs; this one reaches error codes a real broker rarely returns.

use std::time::{Duration, SystemTime};

use kconn::api::KafkaConnection;
use kconn::testing::checks::{self, TestInput};
use kconn::testing::secrets::SecretStore;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const KEYS: [RDKafkaApiKey; 6] = [
    RDKafkaApiKey::Metadata,
    RDKafkaApiKey::ApiVersion,
    RDKafkaApiKey::ListOffsets,
    RDKafkaApiKey::Fetch,
    RDKafkaApiKey::DescribeConfigs,
    RDKafkaApiKey::FindCoordinator,
];

const ERRORS: [RDKafkaRespErr; 6] = [
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN,
];

/// One check row: (name, result, reason).
type Row = (String, String, String);

const ROUNDS: usize = 10;

/// Messages a complete sampling of the undisturbed topic reads (the default `sampleMessages`).
const SAMPLED: u32 = 10;

/// The messages sampled for the one topic, when its model was built.
fn sampled_count(models: &[kconn::testing::models::report::ModelOutcome]) -> Option<u32> {
    match models {
        [one] => one.model.as_ref().map(|m| m.sampled),
        _ => None,
    }
}

fn rows(report: &checks::TestReport) -> Vec<Row> {
    report
        .checks
        .iter()
        .map(|c| (c.name.clone(), format!("{:?}", c.result), c.reason.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_request_errors_never_break_the_test_and_it_converges() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("orders.eu", 3, 3).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    for i in 0..20 {
        producer
            .send(
                FutureRecord::to("orders.eu")
                    .key("k")
                    .payload(&format!(r#"{{"id": {i}, "amount": 1.5}}"#)),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "mock", "namespace": "faults"},
        "spec": {"bootstrapServers": [cluster.bootstrap_servers().split(',').next().unwrap()],
                 "topics": {"expression": "orders\\..*"},
                 "check": {"interval": "5m", "timeout": "20s"}}
    }))
    .unwrap();
    let secrets = SecretStore::default();
    let valid = kconn::testing::validate::outcome(&conn.spec, &[]);
    let input = || TestInput {
        spec: &conn.spec,
        valid: &valid,
        secrets: &secrets,
        now: SystemTime::now(),
        group_id: checks::group_id(&conn.spec, "faults", "mock"),
    };
    let undisturbed = checks::run(&input(), &kconn::testing::kafka::RdKafka).await;
    let baseline = rows(&undisturbed);
    assert_eq!(baseline.len(), kconn::api::Check::ALL.len());
    assert!(
        baseline
            .iter()
            .any(|r| r.0 == "TopicsResolved" && r.1 == "Passed"),
        "{baseline:?}"
    );

    let mut differed = 0;
    let mut sampled = 0;
    for round in 0..ROUNDS {
        // One error in ten requests of each kind, rotating through the error codes.
        for (k, key) in KEYS.iter().enumerate() {
            let errs: Vec<RDKafkaRespErr> = (0..30)
                .map(|i| {
                    if (i + round + k) % 10 == 0 {
                        ERRORS[(i + round + k) % ERRORS.len()]
                    } else {
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
                    }
                })
                .collect();
            cluster.request_errors(*key, &errs);
        }
        let report = tokio::time::timeout(
            Duration::from_secs(60),
            checks::run(&input(), &kconn::testing::kafka::RdKafka),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the test did not end within 60 s"));
        let got = rows(&report);
        assert_eq!(
            got.len(),
            kconn::api::Check::ALL.len(),
            "round {round}: {got:?}"
        );
        assert!(
            got.iter().all(|r| !r.2.is_empty()),
            "round {round}: {got:?}"
        );
        if got != baseline {
            differed += 1;
        }
        if let Some(session) = report.session.clone() {
            let (models, error) = tokio::time::timeout(
                Duration::from_secs(60),
                kconn::testing::models::report::sample_models(&conn, session),
            )
            .await
            .unwrap_or_else(|_| panic!("round {round}: sampling did not end within 60 s"));
            // Complete means every message the undisturbed cluster gives was read: a partition whose
            // offsets could not be listed must not pass for an empty one.
            if error.is_none() && sampled_count(&models) == Some(SAMPLED) {
                sampled += 1;
            }
        }
    }
    // Sampling rides through transient errors (it gave up on the first one: 5 of 40 rounds completed).
    assert!(
        sampled >= ROUNDS - 1,
        "only {sampled} of {ROUNDS} samplings completed"
    );
    for key in KEYS {
        cluster.clear_request_errors(key);
    }
    let after = checks::run(&input(), &kconn::testing::kafka::RdKafka).await;
    assert_eq!(
        rows(&after),
        baseline,
        "the report did not return to the undisturbed one"
    );
    let (models, error) =
        kconn::testing::models::report::sample_models(&conn, after.session.clone().unwrap()).await;
    assert!(
        error.is_none() && sampled_count(&models) == Some(SAMPLED),
        "sampling did not recover: {error:?} {models:?}"
    );
    eprintln!("figure: mock cluster, 10 % request errors: {ROUNDS} rounds, {differed} reports differed from the undisturbed one, {sampled} samplings complete, converged");
}

/// Topics of the mock cluster with `messages` JSON messages spread over their partitions.
async fn mock_with_messages(
    partitions: i32,
    messages: usize,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("sampled", partitions, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    for i in 0..messages {
        producer
            .send(
                FutureRecord::to("sampled")
                    .partition(i as i32 % partitions)
                    .key("k")
                    .payload(&format!(r#"{{"id": {i}}}"#)),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    (cluster, bootstrap)
}

/// Samples the mock's "sampled" topic (off the async runtime) and counts the messages read.
async fn sample(bootstrap: &str, partitions: u32, timeout: Duration) -> Result<usize, String> {
    let settings = kconn::testing::kafka::ClientSettings::plaintext(vec![bootstrap.to_string()]);
    let topics = [kconn::testing::kafka::Topic {
        name: "sampled".into(),
        partitions,
        replication_factor: 1,
    }];
    tokio::task::spawn_blocking(move || {
        kconn::testing::kafka::sample::newest(&settings, &topics, 100, timeout)
            .map(|samples| samples["sampled"].len())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

/// ListOffsets answers whose partitions carry an error (what a broker says while a leader moves, or
/// what a client gets before it has a new topic's metadata) are asked again; when they never clear,
/// sampling fails naming the partition instead of taking it for an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_errors_in_list_offsets_are_asked_again_never_taken_for_empty() {
    use RDKafkaRespErr::*;
    let (cluster, bootstrap) = mock_with_messages(3, 30).await;
    cluster.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        ],
    );
    let got = sample(&bootstrap, 3, Duration::from_secs(20)).await;
    assert_eq!(
        got,
        Ok(30),
        "two failed ListOffsets answers are asked again"
    );

    cluster.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 50],
    );
    let got = sample(&bootstrap, 3, Duration::from_secs(20)).await;
    let err = got.expect_err("offsets that never come are an error, not an empty topic");
    assert!(
        err.starts_with("latest offsets: ") && err.contains("Not leader for partition"),
        "the error says what could not be read and why: {err}"
    );
    cluster.clear_request_errors(RDKafkaApiKey::ListOffsets);

    // One partition without a leader: its offsets cannot be listed while the others can.
    cluster.partition_leader("sampled", 2, None).unwrap();
    let got = sample(&bootstrap, 3, Duration::from_secs(3)).await;
    let err = got.expect_err("a partition without offsets is an error, not an empty partition");
    // librdkafka reports the partition in the answer, or fails the whole request for it.
    assert!(
        err.starts_with("latest offsets: ")
            && (err.contains("sampled [2]: ") || err.contains("Unknown partition")),
        "the error names the partition: {err}"
    );
    cluster.partition_leader("sampled", 2, Some(1)).unwrap();
    let got = sample(&bootstrap, 3, Duration::from_secs(20)).await;
    assert_eq!(got, Ok(30), "with its leader back, every message is read");
}

/// Set in the child process that runs [`group_request_timed_out_then_coordinator_up`].
const ABORT_CHILD: &str = "KCONN_TEST_ABORT_CHILD";

/// A group request (DescribeConsumerGroups, as the permissions check sends) that timed out while its
/// coordinator was down, with the coordinator coming up while the client still lives. librdkafka
/// 2.12.1 as published then frees a request state twice and aborts the process
/// (`rd_kafka_enq_once_del_source_return: Assertion 'eonce->refcnt > 0'`); kconn builds a patched
/// copy (vendor/rdkafka-sys/PATCHED.md). An abort ends the whole process, so the scenario runs in a
/// child process and this test reads how it ended.
#[test]
fn group_request_that_timed_out_before_its_coordinator_came_up_does_not_abort() {
    const NAME: &str = "group_request_that_timed_out_before_its_coordinator_came_up_does_not_abort";
    if std::env::var_os(ABORT_CHILD).is_some() {
        group_request_timed_out_then_coordinator_up();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(ABORT_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("client outlived the late coordinator"),
        "the child ended with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

fn group_request_timed_out_then_coordinator_up() {
    use kconn::testing::kafka::ffi;
    use rdkafka::mocking::MockCoordinator;
    use rdkafka::producer::BaseProducer;
    use rdkafka::producer::Producer;

    const GROUP: &str = "kconn-coordinator-late";
    let cluster = MockCluster::new(3).unwrap();
    cluster
        .coordinator(MockCoordinator::Group(GROUP.into()), 2)
        .unwrap();
    cluster.broker_down(2).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    let native = producer.client().native_client();
    producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the mock cluster answers metadata");

    let first = ffi::describe_group(native, GROUP, Duration::from_secs(1));
    let err = first.expect_err("the coordinator is down, so the request times out");
    println!(
        "first request, coordinator down: {} {}",
        err.code, err.message
    );

    cluster.broker_up(2).unwrap();
    // A second request waits for the same coordinator; when it has an answer, the first request's
    // coordinator lookup (queued before it) has been completed too: the moment of the abort.
    let second = ffi::describe_group(native, GROUP, Duration::from_secs(20));
    match &second {
        Ok(ops) => println!("second request, coordinator up: {ops:?}"),
        Err(e) => println!("second request, coordinator up: {} {}", e.code, e.message),
    }
    assert!(
        !matches!(&second, Err(e) if e.code == "OperationTimedOut"),
        "the coordinator that came up answers: {second:?}"
    );
    drop(producer);
    println!("client outlived the late coordinator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_advertising_hundreds_of_brokers_costs_a_bounded_test() {
    // 300 brokers, all of them listening on loopback: the test connects to the first 256 of them and
    // says that it did not try the others; the whole report stays small.
    let cluster = MockCluster::new(300).unwrap();
    cluster.create_topic("orders.eu", 1, 1).unwrap();
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "many", "namespace": "faults"},
        "spec": {"bootstrapServers": [cluster.bootstrap_servers().split(',').next().unwrap()],
                 "topics": {"expression": "orders\\..*"},
                 "check": {"interval": "5m", "timeout": "60s"}}
    }))
    .unwrap();
    let secrets = SecretStore::default();
    let input = TestInput {
        spec: &conn.spec,
        valid: &kconn::testing::validate::outcome(&conn.spec, &[]),
        secrets: &secrets,
        now: SystemTime::now(),
        group_id: checks::group_id(&conn.spec, "faults", "many"),
    };
    let report = checks::run(&input, &kconn::testing::kafka::RdKafka).await;
    let row = |name: &str| report.checks.iter().find(|c| c.name == name).unwrap();
    assert_eq!(
        report.cluster.as_ref().map(|c| c.brokers),
        Some(300),
        "{:#?}",
        report.checks
    );
    let advertised = row("AdvertisedListeners");
    assert_eq!(advertised.reason, "TooManyBrokers", "{advertised:?}");
    assert!(
        advertised.message.contains("300 brokers") && advertised.message.contains("first 256"),
        "{advertised:?}"
    );
    let size = serde_json::to_vec(&report).unwrap().len();
    assert!(size < 16 * 1024, "the report is {size} bytes");
}

/// Brokers that do not serve DescribeCluster, DescribeConfigs or DescribeGroups, as several managed
/// services: librdkafka's mock cluster serves none of the three (its ApiVersions answer, which the test
/// reads first, leaves them out), and DescribeGroups and DescribeConfigs are switched off here as well
/// (rust-rdkafka's key list has no DescribeCluster). Authorized and ProducerSettings are Skipped with
/// NotSupportedByBroker, nothing warns or fails, and no check waits for an answer that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_brokers_do_not_serve_are_skipped_not_waited_for() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders.eu", 1, 1).unwrap();
    for key in [
        RDKafkaApiKey::DescribeGroups,
        RDKafkaApiKey::DescribeConfigs,
    ] {
        cluster.apiversion(key, None, None).unwrap();
    }
    let conn: KafkaConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "managed", "namespace": "faults"},
        "spec": {"role": "SourceAndTarget", "bootstrapServers": [cluster.bootstrap_servers()],
                 "topics": {"expression": "orders\\..*"}, "producer": {"acks": "MajorityIsr"},
                 "check": {"interval": "5m", "timeout": "20s"}}
    }))
    .unwrap();
    let secrets = SecretStore::default();
    let valid = kconn::testing::validate::outcome(&conn.spec, &[]);
    let input = TestInput {
        spec: &conn.spec,
        valid: &valid,
        secrets: &secrets,
        now: SystemTime::now(),
        group_id: checks::group_id(&conn.spec, "faults", "managed"),
    };
    let report = checks::run(&input, &kconn::testing::kafka::RdKafka).await;
    let got = rows(&report);
    for (check, reason) in [
        ("Authorized", "NotSupportedByBroker"),
        ("ProducerSettings", "NotSupportedByBroker"),
    ] {
        let row = report.checks.iter().find(|r| r.name == check).unwrap();
        assert_eq!(
            (format!("{:?}", row.result).as_str(), row.reason.as_str()),
            ("Skipped", reason),
            "{got:?}"
        );
        assert!(row
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("nothing in the spec to fix")));
    }
    assert!(
        got.iter().all(|r| r.1 == "Passed" || r.1 == "Skipped"),
        "no warning or failure: {got:?}"
    );
    // Waiting for an unserved request would take the test's whole 20 s.
    let waited: u64 = report.checks.iter().map(|r| r.duration_ms).sum();
    assert!(waited < 10_000, "the checks took {waited} ms: {got:?}");
}
