//! The test engine: runs every [`Check`] in order, one row each. A check that does not apply to the
//! spec is Skipped (NotApplicable); one whose need did not pass is Skipped (DependencyFailed, naming
//! the check that failed first); the others run their step, in their family's file, within the
//! test's deadline and the per-address budget the engine hands out.
//!
//! Adding a check: a [`Check`] variant, then what the compiler asks for here (its needs, whether it
//! applies, the condition it feeds and its step).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    credentials, kerberos, network, oauth, permissions, registry, row, session, spec, tls,
};
use super::{TestInput, TestReport};
use crate::api::{Check, CheckReport, CheckResult, ConditionType, KafkaConnectionSpec, Reason};
use crate::kafka::{ClientSettings, ClusterView, Kafka};
use crate::kerberos::KerberosFiles;
use crate::validate::ValidSpec;

impl Check {
    /// The checks that must pass (or warn, or not apply) before this one runs.
    pub fn needs(self) -> &'static [Check] {
        use Check::*;
        match self {
            SpecValid => &[],
            CredentialsResolved | BootstrapResolved => &[SpecValid],
            BrokersReachable => &[BootstrapResolved],
            TlsHandshake => &[CredentialsResolved, BrokersReachable],
            KerberosTicket | TokenAcquired | SchemaRegistryReachable => &[CredentialsResolved],
            Authenticated => &[
                CredentialsResolved,
                BrokersReachable,
                TlsHandshake,
                KerberosTicket,
                TokenAcquired,
            ],
            // The bootstrap servers answered: the full metadata, and the brokers they advertise.
            ClusterMetadata | AdvertisedListeners => &[Authenticated],
            TopicsResolved => &[ClusterMetadata],
            Authorized | ProducerSettings => &[TopicsResolved],
        }
    }

    /// Why the check does not apply to a (valid) spec, if it does not.
    pub fn not_applicable(self, spec: &KafkaConnectionSpec) -> Option<&'static str> {
        match self {
            Check::TlsHandshake if spec.tls.is_none() => Some("no tls in the spec"),
            Check::KerberosTicket
                if spec
                    .authentication
                    .as_ref()
                    .and_then(|a| a.kerberos.as_ref())
                    .is_none() =>
            {
                Some("no kerberos in the spec")
            }
            Check::TokenAcquired
                if spec
                    .authentication
                    .as_ref()
                    .and_then(|a| a.oauth.as_ref())
                    .is_none() =>
            {
                Some("no oauth in the spec")
            }
            Check::ProducerSettings if !spec.role.writes() => Some("role Source does not produce"),
            Check::SchemaRegistryReachable if spec.schema_registry.is_none() => {
                Some("no schemaRegistry in the spec")
            }
            _ => None,
        }
    }

    /// The condition whose status this check's row feeds (besides Ready and Stalled, which every
    /// failure feeds).
    pub fn area(self) -> Option<ConditionType> {
        use Check::*;
        match self {
            BootstrapResolved | BrokersReachable | TlsHandshake => Some(ConditionType::Reachable),
            CredentialsResolved | KerberosTicket | TokenAcquired | Authenticated => {
                Some(ConditionType::Authenticated)
            }
            Authorized => Some(ConditionType::Authorized),
            TopicsResolved => Some(ConditionType::TopicsResolved),
            SpecValid
            | ClusterMetadata
            | AdvertisedListeners
            | ProducerSettings
            | SchemaRegistryReachable => None,
        }
    }
}

/// One test in progress: the input, the deadline and budget, the rows so far and what the checks
/// learned for the ones after them.
pub(super) struct Test<'a, K: Kafka> {
    pub input: &'a TestInput<'a>,
    pub kafka: &'a K,
    /// The spec as validated; `None` when it breaks a rule (then only SpecValid runs).
    pub valid: Option<&'a ValidSpec>,
    /// The end of the test (`spec.check.timeout` from its start).
    pub deadline: tokio::time::Instant,
    /// What one address's DNS, TCP or TLS may take, so that one silent address leaves time for the rest.
    pub per_address: Duration,
    pub report: TestReport,
    /// How to reach the cluster, from CredentialsResolved (and the Kerberos environment).
    pub settings: Option<ClientSettings>,
    /// DNS per bootstrap server, from BootstrapResolved.
    pub resolved: Vec<network::Resolution>,
    /// The bootstrap servers that accepted TCP, from BrokersReachable.
    pub reached: Vec<(String, SocketAddr)>,
    /// The connection's Kerberos files, kept while the test and its session need them.
    pub kerberos_files: Option<Arc<KerberosFiles>>,
    /// What the brokers answered, from Authenticated.
    pub view: Option<ClusterView>,
    /// Advertised brokers that could not be reached, when that is why the metadata failed.
    pub advertised_failure: Option<Vec<String>>,
    /// Which requests the brokers serve (their ApiVersions answer), once asked.
    pub api_versions: Option<Result<crate::kafka::api_versions::Versions, String>>,
    /// The first bootstrap connection BrokersReachable opened, kept for the ApiVersions request.
    pub kept: Option<std::net::TcpStream>,
}

impl<'a, K: Kafka> Test<'a, K> {
    /// A test about to start: its deadline is `spec.check.timeout` from now.
    fn new(input: &'a TestInput<'a>, kafka: &'a K) -> Self {
        let valid = input.valid.as_ref().ok();
        let timeout = valid.map_or(Duration::from_secs(30), |v| v.timeout);
        Test {
            input,
            kafka,
            valid,
            deadline: tokio::time::Instant::now() + timeout,
            per_address: (timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(10)),
            report: TestReport::default(),
            settings: None,
            resolved: Vec::new(),
            reached: Vec::new(),
            kerberos_files: None,
            view: None,
            advertised_failure: None,
            api_versions: None,
            kept: None,
        }
    }

    /// The valid spec; steps run only when SpecValid passed.
    pub fn valid(&self) -> &'a ValidSpec {
        self.valid.expect("a step runs only once SpecValid passed")
    }

    /// The brokers' ApiVersions answer, asked once per test (within the per-address budget).
    pub async fn api_versions(&mut self) -> &Result<crate::kafka::api_versions::Versions, String> {
        if self.api_versions.is_none() {
            let material = self.settings.as_ref().and_then(|s| s.tls.clone());
            let left = self
                .deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(self.per_address);
            let open = self.kept.take();
            self.api_versions =
                Some(network::api_versions(&self.reached, material, open, left).await);
        }
        self.api_versions.as_ref().expect("asked above")
    }

    /// What one request to an endpoint the spec names besides the brokers (a token endpoint, a
    /// schema registry) may take: the per-address budget, at least 5 s, within the test's time.
    pub fn endpoint_budget(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(self.per_address.max(Duration::from_secs(5)))
    }

    /// A row that ran out of the test's time.
    pub fn timed_out(&self, check: Check) -> CheckReport {
        timed_out(
            check,
            self.valid.map_or(Duration::from_secs(30), |v| v.timeout),
        )
    }

    /// The Skipped row of a check that does not apply or whose need did not pass.
    fn skip(&self, check: Check) -> Option<CheckReport> {
        if let Some(why) = self
            .valid
            .and_then(|_| check.not_applicable(self.input.spec))
        {
            return Some(skipped(check, Reason::NotApplicable, why));
        }
        let blocked = check.needs().iter().find_map(|need| {
            let r = self.row(*need)?;
            match r.result {
                CheckResult::Passed | CheckResult::Warning => None,
                CheckResult::Skipped if r.reason == Reason::NotApplicable => None,
                // Skipped for its own need: the same cause.
                CheckResult::Skipped => Some(r.message.clone()),
                CheckResult::Failed => Some(format!("{need} failed")),
            }
        })?;
        Some(skipped(check, Reason::DependencyFailed, blocked))
    }

    fn row(&self, check: Check) -> Option<&CheckReport> {
        self.report.checks.iter().find(|r| r.name == check)
    }

    async fn step(&mut self, check: Check) -> CheckReport {
        match check {
            Check::SpecValid => spec::spec_valid_step(self),
            Check::CredentialsResolved => credentials::credentials_resolved(self),
            Check::BootstrapResolved => network::bootstrap_resolved(self).await,
            Check::BrokersReachable => network::brokers_reachable(self).await,
            Check::TlsHandshake => tls::tls_handshake(self).await,
            Check::KerberosTicket => kerberos::kerberos_ticket(self).await,
            Check::TokenAcquired => oauth::token_acquired(self).await,
            Check::Authenticated => session::authenticated(self).await,
            Check::ClusterMetadata => session::cluster_metadata(self),
            Check::AdvertisedListeners => network::advertised_listeners(self).await,
            Check::TopicsResolved => session::topics_resolved(self),
            Check::Authorized => permissions::authorized_step(self),
            Check::ProducerSettings => permissions::producer_settings_step(self).await,
            Check::SchemaRegistryReachable => registry::schema_registry_reachable(self).await,
        }
    }
}

/// Runs the whole test. Never returns an error: every outcome is a row.
pub(super) async fn run<K: Kafka>(input: &TestInput<'_>, kafka: &K) -> TestReport {
    let mut test = Test::new(input, kafka);
    for &check in Check::ALL {
        let row = match test.skip(check) {
            Some(row) => row,
            None => {
                let started = Instant::now();
                let mut row = test.step(check).await;
                row.duration_ms = started.elapsed().as_millis() as u64;
                row
            }
        };
        debug_assert_eq!(row.name, check);
        test.report.checks.push(row);
    }
    test.report
}

/// A Skipped row.
pub(super) fn skipped(name: Check, reason: Reason, message: impl Into<String>) -> CheckReport {
    row(name, CheckResult::Skipped, reason, message, None, None)
}

/// A check cut by the test's deadline.
pub(super) fn timed_out(name: Check, budget: Duration) -> CheckReport {
    row(
        name,
        CheckResult::Failed,
        Reason::TestTimedOut,
        format!(
            "the whole test ran out of its {} budget before this check finished",
            network::human(budget)
        ),
        Some("raise spec.check.timeout, or fix what is slow (the rows above say which address did not answer)".into()),
        Some("spec.check.timeout".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::Fake;
    use crate::secrets::SecretStore;

    fn spec(extra: serde_json::Value) -> KafkaConnectionSpec {
        let mut base = serde_json::json!({"role": "Source", "bootstrapServers": ["k:9092"],
            "topics": {"expression": "orders"}});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn with_rows<'a>(
        input: &'a TestInput<'a>,
        kafka: &'a Fake,
        rows: &[(Check, CheckResult, Reason, &str)],
    ) -> Test<'a, Fake> {
        let mut test = Test::new(input, kafka);
        for (check, result, reason, message) in rows {
            test.report
                .checks
                .push(row(*check, *result, *reason, *message, None, None));
        }
        test
    }

    #[tokio::test]
    async fn skips_name_the_first_cause_and_not_applicable_counts_as_passed() {
        use CheckResult::*;
        let plain = spec(serde_json::json!({}));
        let secrets = SecretStore::default();
        let input = TestInput {
            spec: &plain,
            valid: &crate::validate::outcome(&plain, &[]),
            secrets: &secrets,
            now: std::time::SystemTime::now(),
            group_id: "g".into(),
        };
        let kafka = Fake(Ok(ClusterView::default()));
        let test = with_rows(
            &input,
            &kafka,
            &[
                (Check::SpecValid, Passed, Reason::SpecValid, ""),
                (
                    Check::CredentialsResolved,
                    Passed,
                    Reason::NoCredentials,
                    "",
                ),
                (
                    Check::BootstrapResolved,
                    Failed,
                    Reason::UnresolvableHosts,
                    "",
                ),
                (
                    Check::BrokersReachable,
                    Skipped,
                    Reason::DependencyFailed,
                    "BootstrapResolved failed",
                ),
                (
                    Check::TlsHandshake,
                    Skipped,
                    Reason::NotApplicable,
                    "no tls in the spec",
                ),
                (
                    Check::KerberosTicket,
                    Skipped,
                    Reason::NotApplicable,
                    "no kerberos in the spec",
                ),
            ],
        );
        let skip = |c| test.skip(c).map(|r| (r.reason, r.message));
        assert_eq!(
            skip(Check::TlsHandshake),
            Some(("NotApplicable".into(), "no tls in the spec".into())),
            "a check that does not apply says so before any need"
        );
        assert_eq!(
            skip(Check::Authenticated),
            Some(("DependencyFailed".into(), "BootstrapResolved failed".into())),
            "a skipped need passes its cause on"
        );
        assert_eq!(skip(Check::CredentialsResolved), None);

        // An invalid spec: nothing can be judged applicable; every check waits for SpecValid.
        let bad = spec(serde_json::json!({"bootstrapServers": []}));
        let input = TestInput {
            spec: &bad,
            valid: &crate::validate::outcome(&bad, &[]),
            secrets: &secrets,
            now: std::time::SystemTime::now(),
            group_id: "g".into(),
        };
        let test = with_rows(
            &input,
            &kafka,
            &[
                (Check::SpecValid, Failed, Reason::BootstrapServersEmpty, ""),
                (
                    Check::CredentialsResolved,
                    Skipped,
                    Reason::DependencyFailed,
                    "SpecValid failed",
                ),
            ],
        );
        assert_eq!(
            test.skip(Check::KerberosTicket)
                .map(|r| (r.reason, r.message)),
            Some(("DependencyFailed".into(), "SpecValid failed".into()))
        );
    }

    #[test]
    fn every_need_runs_before_the_check_that_needs_it() {
        for (i, check) in Check::ALL.iter().enumerate() {
            for need in check.needs() {
                let at = Check::ALL.iter().position(|c| c == need).unwrap();
                assert!(at < i, "{check} needs {need}, which runs after it");
            }
        }
        // Every check but SpecValid depends on it, directly or not.
        fn roots(c: Check) -> bool {
            c == Check::SpecValid || c.needs().iter().any(|n| roots(*n))
        }
        assert!(Check::ALL.iter().all(|c| roots(*c)));
    }
}
