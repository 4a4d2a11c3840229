//! Request errors injected at 10 % with librdkafka's mock cluster (3 brokers, in-process): 10 rounds of
//! the whole connection test and of model sampling while Metadata, ApiVersion, ListOffsets, Fetch,
//! DescribeConfigs and FindCoordinator requests fail one time in ten with retriable and fatal errors.
//! Nothing panics, every round gives a whole report (a row per check, each with a reason), and once the
//! errors stop the report is again the one of an undisturbed cluster. The real fault tests are in
//! tests/faults.rs; this one reaches error codes a real broker rarely returns.

use std::time::{Duration, SystemTime};

use kconn::api::KafkaConnection;
use kconn::checks::{self, TestInput};
use kconn::secrets::SecretStore;
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
    let input = || TestInput {
        spec: &conn.spec,
        shape_problems: &[],
        secrets: &secrets,
        now: SystemTime::now(),
        group_id: checks::group_id(&conn.spec, "faults", "mock"),
    };
    let undisturbed = checks::run(&input(), &kconn::kafka::RdKafka).await;
    let baseline = rows(&undisturbed);
    assert_eq!(baseline.len(), 12);
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
            checks::run(&input(), &kconn::kafka::RdKafka),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the test did not end within 60 s"));
        let got = rows(&report);
        assert_eq!(got.len(), 12, "round {round}: {got:?}");
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
                kconn::cli::sample_models(&conn, session),
            )
            .await
            .unwrap_or_else(|_| panic!("round {round}: sampling did not end within 60 s"));
            if error.is_none() && !models.is_empty() {
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
    let after = checks::run(&input(), &kconn::kafka::RdKafka).await;
    assert_eq!(
        rows(&after),
        baseline,
        "the report did not return to the undisturbed one"
    );
    let (models, error) = kconn::cli::sample_models(&conn, after.session.clone().unwrap()).await;
    assert!(
        error.is_none() && models.len() == 1,
        "sampling did not recover: {error:?}"
    );
    eprintln!("figure: mock cluster, 10 % request errors: {ROUNDS} rounds, {differed} reports differed from the undisturbed one, {sampled} samplings complete, converged");
}
