//! The connection test: one row per check, in dependency order. A failed check marks the checks that
//! depend on it Skipped (DependencyFailed); independent checks still run; the whole test is bounded by
//! `spec.check.timeout`. Outcomes are rows, not errors: "wrong password" is a Failed row.

pub mod credentials;
mod engine;
mod kerberos;
pub mod network;
mod oauth;
pub mod permissions;
mod registry;
mod session;
mod spec;
pub mod tls;

pub use spec::spec_valid;

use std::time::SystemTime;

use crate::api::{
    Check, CheckReport, CheckResult, ClusterInfo, KafkaConnectionSpec, Reason, TopicsStatus,
};
use crate::kafka::Kafka;
use crate::secrets::SecretStore;
use crate::validate::{Problem, ValidSpec};

/// Everything one test needs.
pub struct TestInput<'a> {
    /// The spec.
    pub spec: &'a KafkaConnectionSpec,
    /// The spec validated once by the caller ([`crate::validate::outcome`]): what the checks take,
    /// or every rule it breaks (with the problems found while reading the object).
    pub valid: &'a Result<ValidSpec, Vec<Problem>>,
    /// The Secrets of the connection's namespace.
    pub secrets: &'a SecretStore,
    /// The time certificate expiry is measured from.
    pub now: SystemTime,
    /// The consumer group pipelines will use (`spec.consumer.groupId` or its default).
    pub group_id: String,
}

/// The consumer group of a connection: `spec.consumer.groupId`, or `kconn-<namespace>-<name>`.
pub fn group_id(spec: &KafkaConnectionSpec, namespace: &str, name: &str) -> String {
    match spec.consumer.group_id.as_deref() {
        Some(g) if !g.is_empty() => g.to_string(),
        _ => format!("kconn-{namespace}-{name}"),
    }
}

/// The outcome of one test: the rows for `status.checks` and what the test learned.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// One row per check, in order.
    pub checks: Vec<CheckReport>,
    /// Cluster facts, when metadata came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Matched topics, when they were listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicsStatus>,
    /// How long the test waited, before it started, for its turn in its cluster's budget (new
    /// connections per broker per second, tests at once per cluster).
    #[serde(skip)]
    pub budget_wait: std::time::Duration,
    /// How to reach the cluster again, and the matched topics with their partition counts: what
    /// model sampling needs after the test. Holds credentials, so it is never serialized.
    #[serde(skip)]
    pub session: Option<Session>,
}

/// A working way into the cluster, found by the test (defined with the Kafka client layer, which
/// uses it for the sessions it runs).
pub use crate::kafka::Session;

impl TestReport {
    /// Whether any check failed (Ready=False).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.result == CheckResult::Failed)
    }
}

/// The longest message or hint a row carries, in bytes. Brokers, KDCs and Secrets a tenant controls
/// feed these texts; with 13 rows a status stays far below what the API server takes.
pub const MAX_ROW_TEXT: usize = 2048;

/// How many items one message names (advertised brokers, keytab principals); the rest are counted.
pub(crate) const MAX_NAMED: usize = 5;

/// `text` cut to at most `max` bytes (on a character boundary), marked with `...` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The first `max` items, each cut to 200 bytes, joined with `; `, then `and N more`.
pub(crate) fn bounded_list<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let mut named: Vec<String> = items
        .iter()
        .take(max)
        .map(|s| clip(s.as_ref(), 200))
        .collect();
    if items.len() > max {
        named.push(format!("and {} more", items.len() - max));
    }
    named.join("; ")
}

/// Builds a row.
pub(crate) fn row(
    name: Check,
    result: CheckResult,
    reason: Reason,
    message: impl Into<String>,
    hint: Option<String>,
    field: Option<String>,
) -> CheckReport {
    CheckReport {
        name: name.into(),
        result,
        reason: reason.into(),
        message: clip(&message.into(), MAX_ROW_TEXT),
        hint: hint.map(|h| clip(&h, MAX_ROW_TEXT)),
        field,
        duration_ms: 0,
    }
}

/// Runs the whole test (see [`engine`]). Never returns an error: every outcome is a row.
pub async fn run<K: Kafka>(input: &TestInput<'_>, kafka: &K) -> TestReport {
    engine::run(input, kafka).await
}

#[cfg(test)]
mod tests {
    use super::network::{advertised_row as advertised_listeners, MAX_ADVERTISED};
    use super::*;
    use crate::kafka::ClusterView;
    use std::net::SocketAddr;

    #[test]
    fn messages_and_lists_from_brokers_are_bounded() {
        assert_eq!(clip("short", 10), "short");
        let cut = clip(&"é".repeat(2000), MAX_ROW_TEXT);
        assert!(
            cut.len() <= MAX_ROW_TEXT && cut.ends_with("..."),
            "{}",
            cut.len()
        );
        assert_eq!(bounded_list(&["a", "b", "c"], 2), "a; b; and 1 more");
        assert_eq!(bounded_list(&["x".repeat(500)], 2).len(), 200);

        // A cluster that advertises 10,000 brokers, none reachable: one readable row.
        let view = ClusterView {
            brokers: (0..10_000)
                .map(|id| crate::kafka::Broker {
                    id,
                    host: format!("{}.evil.example", "b".repeat(200)),
                    port: 9092,
                })
                .collect(),
            ..ClusterView::default()
        };
        let results: Vec<Result<SocketAddr, String>> = (0..MAX_ADVERTISED)
            .map(|_| Err("connection refused".to_string()))
            .collect();
        let r = advertised_listeners(&view, &results, &[]);
        assert_eq!(r.reason, Reason::AdvertisedListenerUnreachable);
        assert!(r.message.len() <= MAX_ROW_TEXT, "{}", r.message.len());
        assert!(r.message.contains("and 251 more"), "{}", r.message);

        // All that were tried answer: a warning that the rest were not tried.
        let results: Vec<Result<SocketAddr, String>> = (0..MAX_ADVERTISED)
            .map(|_| Ok("127.0.0.1:9092".parse().unwrap()))
            .collect();
        let r = advertised_listeners(&view, &results, &[]);
        assert_eq!(
            (r.result, r.reason.as_str()),
            (CheckResult::Warning, Reason::TooManyBrokers.as_str())
        );
        assert!(r.message.contains("10000 brokers"), "{}", r.message);

        // Every text a row carries is clipped, however it was built.
        let r = row(
            Check::SpecValid,
            CheckResult::Failed,
            Reason::InvalidField,
            "m".repeat(1 << 20),
            Some("h".repeat(1 << 20)),
            None,
        );
        assert!(r.message.len() <= MAX_ROW_TEXT && r.hint.unwrap().len() <= MAX_ROW_TEXT);
    }

    #[test]
    fn one_problem_keeps_its_reason_many_summarise() {
        let a = Problem::new("spec.a", Reason::InvalidName, "a is bad", "fix a");
        let b = Problem::new("spec.b", Reason::InvalidDuration, "b is bad", "fix b");
        assert_eq!(spec_valid(&[], 3).result, CheckResult::Passed);
        let one = spec_valid(std::slice::from_ref(&a), 0);
        assert_eq!(
            (one.reason.as_str(), one.field.as_deref()),
            (Reason::InvalidName.as_str(), Some("spec.a"))
        );
        let two = spec_valid(&[a, b], 0);
        assert_eq!(two.reason, Reason::SpecInvalid);
        assert_eq!(
            two.message,
            "2 problems: spec.a: a is bad; spec.b: b is bad"
        );
        assert_eq!(two.hint.as_deref(), Some("fix a"));
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::api::KafkaConnection;
    use crate::kafka::{Broker, ClusterView, KafkaFailure, Topic};
    use std::time::SystemTime;

    use crate::kafka::Fake;

    fn spec(bootstrap: &str, extra: serde_json::Value) -> KafkaConnectionSpec {
        let mut spec = serde_json::json!({"bootstrapServers": [bootstrap], "topics": {"expression": "orders\\..*"}, "role": "Source"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value::<KafkaConnection>(
            serde_json::json!({"metadata": {"name": "c"}, "spec": spec}),
        )
        .unwrap()
        .spec
    }

    async fn run_with(
        spec: &KafkaConnectionSpec,
        secrets: &SecretStore,
        kafka: Fake,
    ) -> Vec<(String, CheckResult, String)> {
        let input = TestInput {
            spec,
            valid: &crate::validate::outcome(spec, &[]),
            secrets,
            now: SystemTime::now(),
            group_id: "g".into(),
        };
        run(&input, &kafka)
            .await
            .checks
            .into_iter()
            .map(|c| (c.name, c.result, c.reason))
            .collect()
    }

    fn find(rows: &[(String, CheckResult, String)], name: Check) -> (CheckResult, &str) {
        let r = rows
            .iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("no {name} row"));
        (r.1, r.2.as_str())
    }

    #[tokio::test]
    async fn rows_come_in_order_and_a_rejected_login_skips_what_depends_on_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rows = run_with(
            &spec(&addr, serde_json::json!({})),
            &SecretStore::default(),
            Fake(Err(KafkaFailure::Authentication("bad password".into()))),
        )
        .await;
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            names,
            [
                Check::SpecValid,
                Check::CredentialsResolved,
                Check::BootstrapResolved,
                Check::BrokersReachable,
                Check::TlsHandshake,
                Check::KerberosTicket,
                Check::TokenAcquired,
                Check::Authenticated,
                Check::ClusterMetadata,
                Check::AdvertisedListeners,
                Check::TopicsResolved,
                Check::Authorized,
                Check::ProducerSettings,
                Check::SchemaRegistryReachable
            ]
        );
        assert_eq!(
            find(&rows, Check::Authenticated),
            (CheckResult::Failed, Reason::AuthenticationFailed.as_str())
        );
        for dependent in [
            Check::ClusterMetadata,
            Check::AdvertisedListeners,
            Check::TopicsResolved,
            Check::Authorized,
        ] {
            assert_eq!(
                find(&rows, dependent),
                (CheckResult::Skipped, Reason::DependencyFailed.as_str()),
                "{dependent}"
            );
        }
        assert_eq!(
            find(&rows, Check::ProducerSettings),
            (CheckResult::Skipped, Reason::NotApplicable.as_str()),
            "role Source"
        );
    }

    #[tokio::test]
    async fn a_missing_secret_fails_credentials_while_the_network_checks_still_run() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let spec = spec(
            &addr,
            serde_json::json!({"authentication": {"sasl": {"mechanism": "PLAIN", "secretRef": {"name": "absent"}}}}),
        );
        let rows = run_with(
            &spec,
            &SecretStore::default(),
            Fake(Ok(ClusterView::default())),
        )
        .await;
        assert_eq!(
            find(&rows, Check::CredentialsResolved),
            (CheckResult::Failed, Reason::SecretNotFound.as_str())
        );
        assert_eq!(
            find(&rows, Check::BrokersReachable),
            (CheckResult::Passed, Reason::AllBrokersReachable.as_str())
        );
        assert_eq!(
            find(&rows, Check::Authenticated),
            (CheckResult::Skipped, Reason::DependencyFailed.as_str())
        );
    }

    #[tokio::test]
    async fn an_invalid_spec_skips_everything_else() {
        let rows = run_with(
            &spec("no-port", serde_json::json!({})),
            &SecretStore::default(),
            Fake(Ok(ClusterView::default())),
        )
        .await;
        assert_eq!(
            find(&rows, Check::SpecValid),
            (CheckResult::Failed, Reason::InvalidBootstrapServer.as_str())
        );
        assert!(
            rows[1..]
                .iter()
                .all(|r| r.1 == CheckResult::Skipped && r.2 == Reason::DependencyFailed),
            "{rows:?}"
        );
    }

    #[tokio::test]
    async fn metadata_feeds_cluster_topics_and_advertised_listeners() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let view = ClusterView {
            cluster_id: Some("abc".into()),
            brokers: vec![
                Broker {
                    id: 1,
                    host: "127.0.0.1".into(),
                    port: addr.port(),
                },
                Broker {
                    id: 2,
                    host: "127.0.0.1".into(),
                    port: closed.port(),
                },
            ],
            topics: vec![Topic {
                name: "orders.eu".into(),
                partitions: 3,
                replication_factor: 3,
            }],
            matched: vec!["orders.eu".into()],
            ..ClusterView::default()
        };
        let input_spec = spec(&addr.to_string(), serde_json::json!({}));
        let input = TestInput {
            spec: &input_spec,
            valid: &crate::validate::outcome(&input_spec, &[]),
            secrets: &SecretStore::default(),
            now: SystemTime::now(),
            group_id: "g".into(),
        };
        let report = run(&input, &Fake(Ok(view))).await;
        assert_eq!(report.cluster.as_ref().map(|c| c.brokers), Some(2));
        assert_eq!(
            report.topics.as_ref().map(|t| t.sample.clone()),
            Some(vec!["orders.eu".to_string()])
        );
        let adv = report
            .checks
            .iter()
            .find(|c| c.name == Check::AdvertisedListeners)
            .unwrap();
        assert_eq!(
            (adv.result, adv.reason.as_str()),
            (
                CheckResult::Failed,
                Reason::AdvertisedListenerUnreachable.as_str()
            )
        );
        assert!(
            adv.message
                .contains(&format!("broker 2 advertises 127.0.0.1:{}", closed.port())),
            "{}",
            adv.message
        );
    }
}
