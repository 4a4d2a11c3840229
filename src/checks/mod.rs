//! The connection test: one row per check, in dependency order. A failed check marks the checks that
//! depend on it Skipped (DependencyFailed); independent checks still run; the whole test is bounded by
//! `spec.check.timeout`. Outcomes are rows, not errors: "wrong password" is a Failed row.

pub mod credentials;
pub mod network;
pub mod permissions;
pub mod tls;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tokio::time::timeout_at;

use crate::api::{
    reason, CheckReport, CheckResult, ClusterInfo, KafkaConnectionSpec, TopicsStatus,
};
use crate::api::{Acks, Compression};
use crate::kafka::{ClusterView, Kafka, KafkaFailure, ProbeRequest};

use crate::kerberos::{self, KerberosFiles, KerberosMaterial, TicketError};
use crate::secrets::SecretStore;
use crate::validate::{self, Problem};

/// Check names, in the order they run and are reported.
pub const SPEC_VALID: &str = "SpecValid";
/// Secrets and keys exist and hold usable values.
pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";
/// DNS for each bootstrap host.
pub const BOOTSTRAP_RESOLVED: &str = "BootstrapResolved";
/// TCP to each bootstrap server.
pub const BROKERS_REACHABLE: &str = "BrokersReachable";
/// The TLS handshake on its own.
pub const TLS_HANDSHAKE: &str = "TlsHandshake";
/// A Kerberos ticket from the KDC.
pub const KERBEROS_TICKET: &str = "KerberosTicket";
/// Authentication through a real Kafka request.
pub const AUTHENTICATED: &str = "Authenticated";
/// Cluster id, brokers, controller.
pub const CLUSTER_METADATA: &str = "ClusterMetadata";
/// Every advertised broker address reachable from here.
pub const ADVERTISED_LISTENERS: &str = "AdvertisedListeners";
/// Topics matching the expression.
pub const TOPICS_RESOLVED: &str = "TopicsResolved";
/// Per-role permissions.
pub const AUTHORIZED: &str = "Authorized";
/// Producer durability and compression.
pub const PRODUCER_SETTINGS: &str = "ProducerSettings";

/// Everything one test needs.
pub struct TestInput<'a> {
    /// The spec.
    pub spec: &'a KafkaConnectionSpec,
    /// Problems found while reading the object (unknown fields, bad enum values).
    pub shape_problems: &'a [Problem],
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
    name: &str,
    result: CheckResult,
    reason: &str,
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

fn skipped(name: &str, reason: &str, message: impl Into<String>) -> CheckReport {
    row(name, CheckResult::Skipped, reason, message, None, None)
}

fn passed(r: &CheckReport) -> bool {
    matches!(r.result, CheckResult::Passed | CheckResult::Warning)
}

/// Runs the whole test. Never returns an error: every outcome is a row.
pub async fn run<K: Kafka>(input: &TestInput<'_>, kafka: &K) -> TestReport {
    let mut report = TestReport::default();
    let started = Instant::now();

    // 1. SpecValid
    let mut problems = input.shape_problems.to_vec();
    let valid = match validate::validate(input.spec) {
        Ok(v) if problems.is_empty() => Some(v),
        Ok(_) => None,
        Err(more) => {
            problems.extend(more);
            None
        }
    };
    report
        .checks
        .push(spec_valid(&problems, started.elapsed().as_millis() as u64));
    let Some(valid) = valid else {
        for name in [
            CREDENTIALS_RESOLVED,
            BOOTSTRAP_RESOLVED,
            BROKERS_REACHABLE,
            TLS_HANDSHAKE,
            KERBEROS_TICKET,
            AUTHENTICATED,
            CLUSTER_METADATA,
            ADVERTISED_LISTENERS,
            TOPICS_RESOLVED,
            AUTHORIZED,
            PRODUCER_SETTINGS,
        ] {
            report
                .checks
                .push(skipped(name, reason::DEPENDENCY_FAILED, "SpecValid failed"));
        }
        return report;
    };
    let deadline = tokio::time::Instant::now() + valid.timeout;
    // Per-address work gets a share of the budget so that one silent address leaves time for the rest.
    let per_address =
        (valid.timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));

    // 2. CredentialsResolved
    let t = Instant::now();
    let settings = match credentials::resolve(input.spec, &valid, input.secrets, input.now) {
        Ok((settings, row)) => {
            report.checks.push(timed(row, t));
            Some(settings)
        }
        Err(row) => {
            report.checks.push(timed(*row, t));
            None
        }
    };

    // 3. BootstrapResolved and 4. BrokersReachable
    let targets: Vec<(String, u16)> = valid
        .bootstrap
        .iter()
        .map(|hp| (hp.host.clone(), hp.port))
        .collect();
    let t = Instant::now();
    let resolved = match timeout_at(deadline, network::resolve_all(&targets, per_address)).await {
        Ok(r) => r,
        Err(_) => targets
            .iter()
            .map(|_| Err("the test ran out of time".to_string()))
            .collect(),
    };
    let bootstrap_row = bootstrap_resolved(&valid.bootstrap, &resolved);
    let any_resolved = passed(&bootstrap_row);
    report.checks.push(timed(bootstrap_row, t));

    let t = Instant::now();
    let mut reached: Vec<(String, SocketAddr)> = Vec::new();
    let reach_row = if !any_resolved {
        skipped(
            BROKERS_REACHABLE,
            reason::DEPENDENCY_FAILED,
            "BootstrapResolved failed",
        )
    } else {
        let attempts = futures::future::join_all(resolved.iter().map(|r| async move {
            match r {
                Ok(addrs) => network::connect_any(addrs, per_address).await,
                Err(_) => Err("not resolved".to_string()),
            }
        }));
        match timeout_at(deadline, attempts).await {
            Ok(results) => {
                reached = valid
                    .bootstrap
                    .iter()
                    .zip(&results)
                    .filter_map(|(hp, r)| r.as_ref().ok().map(|a| (hp.host.clone(), *a)))
                    .collect();
                brokers_reachable(&valid.bootstrap, &results)
            }
            Err(_) => timed_out(BROKERS_REACHABLE, valid.timeout),
        }
    };
    let reachable = passed(&reach_row);
    report.checks.push(timed(reach_row, t));

    // 5. TlsHandshake
    let t = Instant::now();
    let material = settings.as_ref().and_then(|s| s.tls.clone());
    let tls_row = match (input.spec.tls.as_ref(), material) {
        (None, _) => skipped(TLS_HANDSHAKE, reason::NOT_APPLICABLE, "no tls in the spec"),
        (Some(_), None) => skipped(
            TLS_HANDSHAKE,
            reason::DEPENDENCY_FAILED,
            "CredentialsResolved failed",
        ),
        (Some(_), Some(_)) if !reachable => skipped(
            TLS_HANDSHAKE,
            reason::DEPENDENCY_FAILED,
            "BrokersReachable failed",
        ),
        (Some(_), Some(material)) => {
            let server_name = material.server_name.clone();
            let hosts: Vec<String> = reached.iter().map(|(h, _)| h.clone()).collect();
            let handshakes = tls::handshake_all(
                reached.clone(),
                server_name.clone(),
                material,
                per_address,
                input.now,
            );
            match timeout_at(deadline, handshakes).await {
                Ok(results) => tls_handshake(&hosts, server_name.as_deref(), &results),
                Err(_) => timed_out(TLS_HANDSHAKE, valid.timeout),
            }
        }
    };
    let tls_ok = passed(&tls_row) || tls_row.reason == reason::NOT_APPLICABLE;
    report.checks.push(timed(tls_row, t));

    // 6. KerberosTicket: a real AS exchange with this connection's own keytab, config and cache.
    let t = Instant::now();
    let mut settings = settings;
    // Kept while the test runs, and by the session for sampling; removed when the last holder drops.
    let mut kerberos_files: Option<std::sync::Arc<KerberosFiles>> = None;
    let ticket_ok = match settings
        .as_mut()
        .and_then(|s| s.kerberos.clone().map(|k| (s, k)))
    {
        None if input
            .spec
            .authentication
            .as_ref()
            .and_then(|a| a.kerberos.as_ref())
            .is_some() =>
        {
            report.checks.push(skipped(
                KERBEROS_TICKET,
                reason::DEPENDENCY_FAILED,
                "CredentialsResolved failed",
            ));
            false
        }
        None => {
            report.checks.push(skipped(
                KERBEROS_TICKET,
                reason::NOT_APPLICABLE,
                "no kerberos in the spec",
            ));
            true
        }
        Some((settings, material)) => {
            let (row, files) = kerberos_ticket(&material, deadline, per_address * 2).await;
            let ok = passed(&row);
            if let Some(files) = &files {
                settings.kerberos_env = Some(files.env.clone());
            }
            kerberos_files = files.map(std::sync::Arc::new);
            report.checks.push(timed(row, t));
            ok
        }
    };

    // 7. Authenticated (one metadata request: authentication is proven by a real Kafka answer)
    let t = Instant::now();
    let mut advertised_failure: Option<Vec<String>> = None;
    // The first failed prerequisite, in dependency order.
    let blocked_by = [
        (settings.is_none(), CREDENTIALS_RESOLVED),
        (!reachable, BROKERS_REACHABLE),
        (!tls_ok, TLS_HANDSHAKE),
        (!ticket_ok, KERBEROS_TICKET),
    ]
    .into_iter()
    .find_map(|(failed, name)| failed.then_some(name));
    let view = match (&settings, blocked_by) {
        (None, _) | (_, Some(_)) => {
            // settings.is_none() is the first entry above, so a name is always found here.
            let name = blocked_by.unwrap_or(CREDENTIALS_RESOLVED);
            report.checks.push(skipped(
                AUTHENTICATED,
                reason::DEPENDENCY_FAILED,
                format!("{name} failed"),
            ));
            None
        }
        (Some(settings), None) => {
            // A margin inside the deadline, so that what the session learned is never thrown away.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let left = left.saturating_sub((left / 10).min(Duration::from_secs(1)));
            let request = ProbeRequest {
                topics: input.spec.topics.clone(),
                group: input.spec.role.reads().then(|| input.group_id.clone()),
                authorization: true,
                min_insync: input.spec.role.writes()
                    && matches!(input.spec.producer.acks, Acks::MajorityIsr | Acks::AllIsr),
            };
            let result = match timeout_at(deadline, kafka.probe(settings, &request, left)).await {
                Ok(r) => r,
                Err(_) => Err(KafkaFailure::Timeout(valid.timeout)),
            };
            if let Err(KafkaFailure::AdvertisedUnreachable(brokers)) = &result {
                advertised_failure = Some(brokers.clone());
            }
            let (row, view) =
                authenticated(settings.protocol(), settings.kerberos.is_some(), result);
            report.checks.push(timed(row, t));
            view
        }
    };
    // 8. ClusterMetadata and AdvertisedListeners
    let t = Instant::now();
    match &view {
        None if advertised_failure.is_some() => {
            let brokers = advertised_failure.take().unwrap_or_default();
            let hint = "the brokers' advertised.listeners must name addresses reachable from this network: use the listener meant for clients outside the brokers' network, or fix advertised.listeners on the brokers";
            report.checks.push(row(
                CLUSTER_METADATA,
                CheckResult::Failed,
                reason::ADVERTISED_LISTENER_UNREACHABLE,
                "the bootstrap servers answered, but the full metadata must come from the brokers they advertise, which cannot be reached (see AdvertisedListeners)",
                Some(hint.into()),
                Some("spec.bootstrapServers".into()),
            ));
            report.checks.push(row(
                ADVERTISED_LISTENERS,
                CheckResult::Failed,
                reason::ADVERTISED_LISTENER_UNREACHABLE,
                format!("the bootstrap servers answered, but {}; clients fail after their first metadata request", bounded_list(&brokers, MAX_NAMED)),
                Some(hint.into()),
                Some("spec.bootstrapServers".into()),
            ));
        }
        None => {
            report.checks.push(skipped(
                CLUSTER_METADATA,
                reason::DEPENDENCY_FAILED,
                "Authenticated did not pass",
            ));
            report.checks.push(skipped(
                ADVERTISED_LISTENERS,
                reason::DEPENDENCY_FAILED,
                "Authenticated did not pass",
            ));
        }
        Some(view) => {
            report.cluster = Some(ClusterInfo {
                cluster_id: view.cluster_id.clone(),
                brokers: view.brokers.len() as u32,
                controller_id: view.controller_id,
            });
            report.checks.push(timed(cluster_metadata(view), t));
            let t = Instant::now();
            // A cluster may advertise up to 10,000 brokers: the first MAX_ADVERTISED are tried.
            let targets: Vec<(String, u16)> = view
                .brokers
                .iter()
                .take(MAX_ADVERTISED)
                .map(|b| (b.host.clone(), b.port))
                .collect();
            // Over TLS, each advertised broker that answers TCP is also shaken hands with, and its
            // certificate verified as every client will (tls.serverName, or else its own host).
            let material = settings.as_ref().and_then(|s| s.tls.clone());
            let reach = async {
                let results = network::reach_all(&targets, per_address).await;
                let Some(material) = material else {
                    return (results, Vec::new());
                };
                let reached: Vec<(String, SocketAddr)> = targets
                    .iter()
                    .zip(&results)
                    .filter_map(|((host, _), r)| r.as_ref().ok().map(|a| (host.clone(), *a)))
                    .collect();
                let verified =
                    tls::verify_all(reached.clone(), material, per_address, input.now).await;
                let failures = reached
                    .into_iter()
                    .zip(verified)
                    .filter_map(|((_, addr), r)| r.err().map(|e| (addr, e)))
                    .collect();
                (results, failures)
            };
            let row = match timeout_at(deadline, reach).await {
                Ok((results, tls_failures)) => advertised_listeners(view, &results, &tls_failures),
                Err(_) => timed_out(ADVERTISED_LISTENERS, valid.timeout),
            };
            report.checks.push(timed(row, t));
        }
    }

    // 9. TopicsResolved
    let t = Instant::now();
    match &view {
        None => report.checks.push(skipped(
            TOPICS_RESOLVED,
            reason::DEPENDENCY_FAILED,
            "ClusterMetadata did not pass",
        )),
        Some(view) => {
            let matched: Vec<&str> = view.matched.iter().map(String::as_str).collect();
            if let Some(settings) = settings.clone() {
                let known: std::collections::HashMap<&str, &crate::kafka::Topic> =
                    view.topics.iter().map(|t| (t.name.as_str(), t)).collect();
                let topics = view
                    .matched
                    .iter()
                    .map(|t| match known.get(t.as_str()) {
                        Some(topic) => (*topic).clone(),
                        None => crate::kafka::Topic {
                            name: t.clone(),
                            partitions: 1,
                            replication_factor: 1,
                        },
                    })
                    .collect();

                report.session = Some(Session {
                    settings,
                    topics,
                    admin_answers: matches!(view.cluster_ops, Some(Ok(_))),
                    kerberos_files: kerberos_files.clone(),
                });
            }
            report.topics = Some(TopicsStatus {
                matched: matched.len() as u32,
                sample: matched.iter().take(10).map(|s| s.to_string()).collect(),
            });
            report.checks.push(timed(
                topics_resolved(&input.spec.topics.expression, view.topics.len(), &matched),
                t,
            ));
        }
    }

    // 10. Authorized
    let t = Instant::now();
    report.checks.push(match &view {
        None => skipped(
            AUTHORIZED,
            reason::DEPENDENCY_FAILED,
            "TopicsResolved did not run",
        ),
        Some(view) => timed(
            permissions::authorized(input.spec.role, &input.group_id, view),
            t,
        ),
    });

    // 11. ProducerSettings
    let t = Instant::now();
    report.checks.push(match (&view, input.spec.role.writes()) {
        (_, false) => skipped(
            PRODUCER_SETTINGS,
            reason::NOT_APPLICABLE,
            "role Source does not produce",
        ),
        (None, true) => skipped(
            PRODUCER_SETTINGS,
            reason::DEPENDENCY_FAILED,
            "TopicsResolved did not run",
        ),
        (Some(view), true) => {
            let produce_max = if input.spec.producer.compression == Compression::Zstd {
                let material = settings.as_ref().and_then(|s| s.tls.clone());
                let left = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(per_address);
                Some(network::produce_max_version(&reached, material, left).await)
            } else {
                None
            };
            timed(
                permissions::producer_settings(&input.spec.producer, view, produce_max),
                t,
            )
        }
    });
    report
}

fn timed(mut row: CheckReport, started: Instant) -> CheckReport {
    row.duration_ms = started.elapsed().as_millis() as u64;
    row
}

fn timed_out(name: &str, budget: Duration) -> CheckReport {
    row(
        name,
        CheckResult::Failed,
        reason::TEST_TIMED_OUT,
        format!("the whole test ran out of its {} budget before this check finished", network::human(budget)),
        Some("raise spec.check.timeout, or fix what is slow (the rows above say which address did not answer)".into()),
        Some("spec.check.timeout".into()),
    )
}

fn bootstrap_resolved(
    servers: &[validate::HostPort],
    results: &[network::Resolution],
) -> CheckReport {
    let failed: Vec<(usize, &str)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.as_str())))
        .collect();
    let detail = |&(i, e): &(usize, &str)| format!("{}: {e}", servers[i].host);
    match failed.len() {
        0 => row(
            BOOTSTRAP_RESOLVED,
            CheckResult::Passed,
            reason::RESOLVED,
            format!("{} of {} hosts resolved", servers.len(), servers.len()),
            None,
            None,
        ),
        n => {
            let field = Some(format!("spec.bootstrapServers[{}]", failed[0].0));
            let message = format!(
                "{} of {} hosts resolved; {}",
                servers.len() - n,
                servers.len(),
                failed.iter().map(detail).collect::<Vec<_>>().join("; ")
            );
            let hint = Some("check the host names for typos; from inside the cluster, use the brokers' Service DNS names (e.g. kafka-0.kafka.<namespace>.svc)".to_string());
            if n == servers.len() {
                row(
                    BOOTSTRAP_RESOLVED,
                    CheckResult::Failed,
                    reason::UNRESOLVABLE_HOSTS,
                    message,
                    hint,
                    field,
                )
            } else {
                row(
                    BOOTSTRAP_RESOLVED,
                    CheckResult::Warning,
                    reason::SOME_HOSTS_UNRESOLVED,
                    message,
                    hint,
                    field,
                )
            }
        }
    }
}

/// Writes the connection's Kerberos files and asks the KDC for a ticket.
async fn kerberos_ticket(
    material: &KerberosMaterial,
    deadline: tokio::time::Instant,
    budget: Duration,
) -> (CheckReport, Option<KerberosFiles>) {
    let files = match KerberosFiles::write(material) {
        Ok(f) => f,
        Err(e) => {
            let hint =
                "kconn needs a writable temporary directory (TMPDIR; in the chart, an emptyDir)";
            return (
                row(
                    KERBEROS_TICKET,
                    CheckResult::Failed,
                    reason::KERBEROS_FAILED,
                    format!("cannot write the Kerberos files: {e}"),
                    Some(hint.into()),
                    None,
                ),
                None,
            );
        }
    };
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .min(budget);
    let base = "spec.authentication.kerberos";
    let result = kerberos::get_ticket(&files, &material.principal, left).await;
    let (why, field, hint): (&str, String, &str) = match &result {
        Ok(()) => {
            let message = format!("the KDC issued a ticket for {}", material.principal);
            return (row(KERBEROS_TICKET, CheckResult::Passed, reason::TICKET_ISSUED, message, None, None), Some(files));
        }
        Err(TicketError::KdcUnreachable(_) | TicketError::Timeout(_)) => (
            reason::KDC_UNREACHABLE,
            format!("{base}.krb5ConfSecretRef"),
            "check the realm's kdc entries in krb5.conf and that this agent can reach them (port 88)",
        ),
        Err(TicketError::PrincipalUnknown(_)) => {
            (reason::PRINCIPAL_UNKNOWN, format!("{base}.principal"), "check the principal's spelling and realm; ask the Kerberos admins whether it exists")
        }
        Err(TicketError::ClockSkew(_)) => {
            (reason::CLOCK_SKEW, format!("{base}.principal"), "synchronise the clocks (NTP) of the node running kconn and the KDC; Kerberos allows 5 minutes by default")
        }
        Err(TicketError::KeytabRejected(_)) => (
            reason::KEYTAB_REJECTED,
            format!("{base}.keytabSecretRef"),
            "the keytab's key no longer matches the KDC (the principal's key or its version changed): export a new keytab",
        ),
        Err(TicketError::NoKinit | TicketError::Other(_)) => {
            (reason::KERBEROS_FAILED, format!("{base}.principal"), "install the MIT Kerberos client (kinit) where kconn runs, and check the keytab and krb5.conf")
        }
    };
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    (
        row(
            KERBEROS_TICKET,
            CheckResult::Failed,
            why,
            message,
            Some(hint.into()),
            Some(field),
        ),
        Some(files),
    )
}

/// The reason, field and hint for a failed handshake.
fn tls_failure_kind(e: &tls::TlsError) -> (&'static str, &'static str, &'static str) {
    match e {
        tls::TlsError::Untrusted(_) => (
            reason::CERTIFICATE_UNTRUSTED,
            "spec.tls.caSecretRef",
            "put the CA that signed the brokers' certificates into the Secret named by spec.tls.caSecretRef (without it, the system roots are trusted)",
        ),
        tls::TlsError::HostnameMismatch(_) => (
            reason::HOSTNAME_MISMATCH,
            "spec.tls.serverName",
            "connect by a name the certificate lists (its subjectAltName), or set spec.tls.serverName to one of them",
        ),
        tls::TlsError::Expired(_) => {
            (reason::CERTIFICATE_EXPIRED, "spec.bootstrapServers", "the brokers' certificates must be renewed on the brokers")
        }
        tls::TlsError::Material(_) => (reason::INVALID_SECRET_VALUE, "spec.tls", "fix the PEM material in the TLS Secrets"),
        tls::TlsError::Connect(_) | tls::TlsError::Handshake(_) => (
            reason::TLS_HANDSHAKE_FAILED,
            "spec.tls",
            "check that the bootstrap servers are TLS listeners (SSL or SASL_SSL); remove spec.tls for a PLAINTEXT listener",
        ),
    }
}

fn tls_handshake(
    hosts: &[String],
    server_name: Option<&str>,
    results: &[Result<tls::Handshake, tls::TlsError>],
) -> CheckReport {
    let failures: Vec<(&str, &tls::TlsError)> = hosts
        .iter()
        .zip(results)
        .filter_map(|(h, r)| r.as_ref().err().map(|e| (h.as_str(), e)))
        .collect();
    if let Some(&(_, first)) = failures.first() {
        let (why, field, hint) = tls_failure_kind(first);
        let detail = failures
            .iter()
            .map(|(h, e)| format!("{h}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        return row(
            TLS_HANDSHAKE,
            CheckResult::Failed,
            why,
            detail,
            Some(hint.into()),
            Some(field.into()),
        );
    }
    let done: Vec<&tls::Handshake> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let Some(soonest) = done.iter().min_by_key(|h| h.expires_in_secs) else {
        return skipped(
            TLS_HANDSHAKE,
            reason::DEPENDENCY_FAILED,
            "no reachable bootstrap server to shake hands with",
        );
    };
    let versions: std::collections::BTreeSet<&str> =
        done.iter().map(|h| h.version.as_str()).collect();
    let verified_as = server_name
        .map(|n| format!(" (verified as {n})"))
        .unwrap_or_default();
    let message = format!(
        "{} with {} of {} servers{verified_as}; certificate {:?} {}",
        versions.into_iter().collect::<Vec<_>>().join("/"),
        done.len(),
        hosts.len(),
        soonest.subject,
        tls::describe_expiry(soonest.expires_in_secs)
    );
    if soonest.expires_in_secs < tls::EXPIRY_WARNING.as_secs() as i64 {
        let hint = Some("renew the brokers' certificates before they expire".to_string());
        row(
            TLS_HANDSHAKE,
            CheckResult::Warning,
            reason::CERTIFICATE_EXPIRING_SOON,
            message,
            hint,
            Some("spec.bootstrapServers".into()),
        )
    } else {
        row(
            TLS_HANDSHAKE,
            CheckResult::Passed,
            reason::TLS_VERIFIED,
            message,
            None,
            None,
        )
    }
}

/// How many unreachable servers a BrokersReachable message names one by one.
const MAX_NAMED_FAILURES: usize = 5;

fn brokers_reachable(
    servers: &[validate::HostPort],
    results: &[Result<SocketAddr, String>],
) -> CheckReport {
    let failed: Vec<(usize, &str)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.as_str())))
        .collect();
    let total = servers.len();
    match failed.len() {
        0 => row(
            BROKERS_REACHABLE,
            CheckResult::Passed,
            reason::ALL_BROKERS_REACHABLE,
            format!("{total} of {total} reachable"),
            None,
            None,
        ),
        n => {
            // The first few failures by name; a status message stays readable with 64 servers.
            let mut named: Vec<String> = failed
                .iter()
                .take(MAX_NAMED_FAILURES)
                .map(|&(i, e)| format!("{}: {e}", servers[i]))
                .collect();
            if n > MAX_NAMED_FAILURES {
                named.push(format!("and {} more", n - MAX_NAMED_FAILURES));
            }
            let message = format!("{} of {total} reachable; {}", total - n, named.join("; "));
            let field = Some(format!("spec.bootstrapServers[{}]", failed[0].0));
            if n == total {
                let hint = "check the ports (a listener's port, not the controller's), that the brokers run, and that network policies and firewalls let this agent through";
                row(
                    BROKERS_REACHABLE,
                    CheckResult::Failed,
                    reason::NO_BROKER_REACHABLE,
                    message,
                    Some(hint.into()),
                    field,
                )
            } else {
                let hint = "the connection works through the other servers; fix or remove the unreachable entries so a restart of the reachable brokers does not cut pipelines off";
                row(
                    BROKERS_REACHABLE,
                    CheckResult::Warning,
                    reason::SOME_BROKERS_UNREACHABLE,
                    message,
                    Some(hint.into()),
                    field,
                )
            }
        }
    }
}

fn authenticated(
    protocol: &str,
    kerberos: bool,
    result: Result<ClusterView, KafkaFailure>,
) -> (CheckReport, Option<ClusterView>) {
    let passed = |message: String| {
        let why = if protocol == "PLAINTEXT" {
            reason::NO_AUTHENTICATION
        } else {
            reason::AUTHENTICATED
        };
        row(AUTHENTICATED, CheckResult::Passed, why, message, None, None)
    };
    let (why, message, hint, field) = match result {
        Ok(view) => {
            let message = if protocol.starts_with("SASL") {
                format!("authenticated over {protocol}; the brokers answered a metadata request")
            } else if protocol == "SSL" {
                "connected over SSL (the certificate, if any, is the identity); the brokers answered a metadata request".to_string()
            } else {
                "connected over PLAINTEXT without authentication; the brokers answered a metadata request".to_string()
            };
            return (passed(message), Some(view));
        }
        // The bootstrap servers answered: authentication worked; the brokers they advertise did not.
        Err(KafkaFailure::AdvertisedUnreachable(_)) => {
            let message = format!("the bootstrap servers answered over {protocol}; the brokers they advertise did not (see AdvertisedListeners)");
            return (passed(message), None);
        }
        Err(KafkaFailure::Authentication(why)) if kerberos => (
            reason::AUTHENTICATION_FAILED,
            format!("GSSAPI authentication failed: {why}"),
            "check spec.authentication.kerberos.serviceName (the brokers' principals are <serviceName>/<broker host>@REALM) and that the brokers' host names match their principals",
            "spec.authentication.kerberos.serviceName",
        ),
        Err(KafkaFailure::Authentication(why)) => (
            reason::AUTHENTICATION_FAILED,
            format!("the brokers rejected the credentials: {why}"),
            "check the user name and password in the Secret and the SASL mechanism (spec.authentication.sasl.mechanism) the listener expects",
            "spec.authentication",
        ),
        Err(KafkaFailure::Tls(why)) if why.contains(crate::kafka::ffi::NAME_MISMATCH) => (
            reason::TLS_FAILED,
            format!("TLS failed: {why}"),
            "a broker's certificate names neither spec.tls.serverName nor the address it was reached by (for the brokers the cluster advertises, their advertised.listeners host): fix the brokers' certificates or advertised.listeners, or set serverName to the name the certificates carry",
            "spec.tls.serverName",
        ),
        Err(KafkaFailure::Tls(why)) => (
            reason::TLS_FAILED,
            format!("TLS failed: {why}"),
            "check spec.tls.caSecretRef (the CA that signed the brokers' certificates), the client certificate for mTLS, and that the listener speaks TLS",
            "spec.tls",
        ),
        Err(other) => (
            reason::KAFKA_UNAVAILABLE,
            format!("no Kafka answer: {other}"),
            "the port accepts TCP but does not answer as a Kafka listener with this protocol: check spec.tls and spec.authentication against the listener's security.protocol",
            "spec.bootstrapServers",
        ),
    };
    (
        row(
            AUTHENTICATED,
            CheckResult::Failed,
            why,
            message,
            Some(hint.into()),
            Some(field.into()),
        ),
        None,
    )
}

fn cluster_metadata(view: &ClusterView) -> CheckReport {
    let id = view.cluster_id.as_deref().unwrap_or("unknown");
    row(
        CLUSTER_METADATA,
        CheckResult::Passed,
        reason::METADATA_FETCHED,
        format!(
            "cluster {id}: {} broker{}, {} topics visible",
            view.brokers.len(),
            if view.brokers.len() == 1 { "" } else { "s" },
            view.topics.len()
        ),
        None,
        None,
    )
}

/// How many advertised brokers a test connects to; a cluster that advertises more gets a warning.
pub const MAX_ADVERTISED: usize = 256;

fn advertised_listeners(
    view: &ClusterView,
    results: &[Result<std::net::SocketAddr, String>],
    tls_failures: &[(SocketAddr, tls::TlsError)],
) -> CheckReport {
    let failed: Vec<String> = view
        .brokers
        .iter()
        .zip(results)
        .filter_map(|(b, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("broker {} advertises {}:{}: {e}", b.id, b.host, b.port))
        })
        .collect();
    let advertised = view.brokers.len();
    if failed.is_empty() {
        if let Some((_, first)) = tls_failures.first() {
            let named: Vec<String> = view
                .brokers
                .iter()
                .zip(results)
                .filter_map(|(b, r)| {
                    let addr = r.as_ref().ok()?;
                    let (_, e) = tls_failures.iter().find(|(a, _)| a == addr)?;
                    Some(format!(
                        "broker {} advertises {}:{}: {e}",
                        b.id, b.host, b.port
                    ))
                })
                .collect();
            let (why, field, hint) = tls_failure_kind(first);
            return row(
                ADVERTISED_LISTENERS,
                CheckResult::Failed,
                why,
                format!(
                    "the bootstrap servers answered, but {}; clients fail when they connect to those brokers",
                    bounded_list(&named, MAX_NAMED)
                ),
                Some(format!("the brokers the cluster advertises present these certificates: {hint}")),
                Some(field.into()),
            );
        }
    }
    if failed.is_empty() && advertised > results.len() {
        return row(
            ADVERTISED_LISTENERS,
            CheckResult::Warning,
            reason::TOO_MANY_BROKERS,
            format!(
                "the cluster advertises {advertised} brokers; the first {} accept connections from here, the others were not tried",
                results.len()
            ),
            Some(format!("kconn connects to at most {MAX_ADVERTISED} advertised brokers per test; check that the bootstrap servers belong to the cluster you mean")),
            Some("spec.bootstrapServers".into()),
        );
    }
    if failed.is_empty() {
        return row(
            ADVERTISED_LISTENERS,
            CheckResult::Passed,
            reason::ADVERTISED_LISTENERS_REACHABLE,
            format!("all {advertised} advertised broker addresses accept connections from here"),
            None,
            None,
        );
    }
    row(
        ADVERTISED_LISTENERS,
        CheckResult::Failed,
        reason::ADVERTISED_LISTENER_UNREACHABLE,
        format!("the bootstrap servers answered, but {}; clients fail after their first metadata request", bounded_list(&failed, MAX_NAMED)),
        Some("the brokers' advertised.listeners must name addresses reachable from this network: use the listener meant for clients outside the brokers' network, or fix advertised.listeners on the brokers".into()),
        Some("spec.bootstrapServers".into()),
    )
}

fn topics_resolved(expression: &str, visible: usize, matched: &[&str]) -> CheckReport {
    if matched.is_empty() {
        return row(
            TOPICS_RESOLVED,
            CheckResult::Warning,
            reason::NO_TOPICS_MATCHED,
            format!("none of the {visible} visible topics matches {expression:?}"),
            Some("check spec.topics.expression (a regex matches whole names: orders matches only \"orders\", orders\\..* matches orders.eu) and that this user may describe the topics".into()),
            Some("spec.topics.expression".into()),
        );
    }
    let sample = matched
        .iter()
        .take(3)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if matched.len() > 3 { ", ..." } else { "" };
    row(
        TOPICS_RESOLVED,
        CheckResult::Passed,
        reason::TOPICS_MATCHED,
        format!(
            "{} of {visible} visible topics match: {sample}{more}",
            matched.len()
        ),
        None,
        None,
    )
}

/// The SpecValid row for a validation outcome: Passed, or Failed with the first problem's field and
/// hint and every problem in the message.
pub fn spec_valid(problems: &[Problem], duration_ms: u64) -> CheckReport {
    match problems {
        [] => CheckReport {
            name: SPEC_VALID.into(),
            result: CheckResult::Passed,
            reason: reason::SPEC_VALID.into(),
            message: "every spec rule holds".into(),
            hint: None,
            field: None,
            duration_ms,
        },
        [only] => CheckReport {
            name: SPEC_VALID.into(),
            result: CheckResult::Failed,
            reason: only.reason.into(),
            message: clip(&only.to_string(), MAX_ROW_TEXT),
            hint: Some(clip(&only.hint, MAX_ROW_TEXT)),
            field: Some(only.field.clone()),
            duration_ms,
        },
        [first, ..] => CheckReport {
            name: SPEC_VALID.into(),
            result: CheckResult::Failed,
            reason: reason::SPEC_INVALID.into(),
            message: clip(
                &format!(
                    "{} problems: {}",
                    problems.len(),
                    problems
                        .iter()
                        .map(Problem::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                MAX_ROW_TEXT,
            ),
            hint: Some(clip(&first.hint, MAX_ROW_TEXT)),
            field: Some(first.field.clone()),
            duration_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.reason, reason::ADVERTISED_LISTENER_UNREACHABLE);
        assert!(r.message.len() <= MAX_ROW_TEXT, "{}", r.message.len());
        assert!(r.message.contains("and 251 more"), "{}", r.message);

        // All that were tried answer: a warning that the rest were not tried.
        let results: Vec<Result<SocketAddr, String>> = (0..MAX_ADVERTISED)
            .map(|_| Ok("127.0.0.1:9092".parse().unwrap()))
            .collect();
        let r = advertised_listeners(&view, &results, &[]);
        assert_eq!(
            (r.result, r.reason.as_str()),
            (CheckResult::Warning, reason::TOO_MANY_BROKERS)
        );
        assert!(r.message.contains("10000 brokers"), "{}", r.message);

        // Every text a row carries is clipped, however it was built.
        let r = row(
            "X",
            CheckResult::Failed,
            "R",
            "m".repeat(1 << 20),
            Some("h".repeat(1 << 20)),
            None,
        );
        assert!(r.message.len() <= MAX_ROW_TEXT && r.hint.unwrap().len() <= MAX_ROW_TEXT);
    }

    #[test]
    fn one_problem_keeps_its_reason_many_summarise() {
        let a = Problem::new("spec.a", reason::INVALID_NAME, "a is bad", "fix a");
        let b = Problem::new("spec.b", reason::INVALID_DURATION, "b is bad", "fix b");
        assert_eq!(spec_valid(&[], 3).result, CheckResult::Passed);
        let one = spec_valid(std::slice::from_ref(&a), 0);
        assert_eq!(
            (one.reason.as_str(), one.field.as_deref()),
            (reason::INVALID_NAME, Some("spec.a"))
        );
        let two = spec_valid(&[a, b], 0);
        assert_eq!(two.reason, reason::SPEC_INVALID);
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
    use crate::kafka::{Broker, Topic};

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
            shape_problems: &[],
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

    fn find<'a>(rows: &'a [(String, CheckResult, String)], name: &str) -> (CheckResult, &'a str) {
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
                SPEC_VALID,
                CREDENTIALS_RESOLVED,
                BOOTSTRAP_RESOLVED,
                BROKERS_REACHABLE,
                TLS_HANDSHAKE,
                KERBEROS_TICKET,
                AUTHENTICATED,
                CLUSTER_METADATA,
                ADVERTISED_LISTENERS,
                TOPICS_RESOLVED,
                AUTHORIZED,
                PRODUCER_SETTINGS
            ]
        );
        assert_eq!(
            find(&rows, AUTHENTICATED),
            (CheckResult::Failed, reason::AUTHENTICATION_FAILED)
        );
        for dependent in [
            CLUSTER_METADATA,
            ADVERTISED_LISTENERS,
            TOPICS_RESOLVED,
            AUTHORIZED,
        ] {
            assert_eq!(
                find(&rows, dependent),
                (CheckResult::Skipped, reason::DEPENDENCY_FAILED),
                "{dependent}"
            );
        }
        assert_eq!(
            find(&rows, PRODUCER_SETTINGS),
            (CheckResult::Skipped, reason::NOT_APPLICABLE),
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
            find(&rows, CREDENTIALS_RESOLVED),
            (CheckResult::Failed, reason::SECRET_NOT_FOUND)
        );
        assert_eq!(
            find(&rows, BROKERS_REACHABLE),
            (CheckResult::Passed, reason::ALL_BROKERS_REACHABLE)
        );
        assert_eq!(
            find(&rows, AUTHENTICATED),
            (CheckResult::Skipped, reason::DEPENDENCY_FAILED)
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
            find(&rows, SPEC_VALID),
            (CheckResult::Failed, reason::INVALID_BOOTSTRAP_SERVER)
        );
        assert!(
            rows[1..]
                .iter()
                .all(|r| r.1 == CheckResult::Skipped && r.2 == reason::DEPENDENCY_FAILED),
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
            shape_problems: &[],
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
            .find(|c| c.name == ADVERTISED_LISTENERS)
            .unwrap();
        assert_eq!(
            (adv.result, adv.reason.as_str()),
            (CheckResult::Failed, reason::ADVERTISED_LISTENER_UNREACHABLE)
        );
        assert!(
            adv.message
                .contains(&format!("broker 2 advertises 127.0.0.1:{}", closed.port())),
            "{}",
            adv.message
        );
    }
}
