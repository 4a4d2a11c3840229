//! The Kafka session: Authenticated (one metadata request over the spec's protocol and credentials:
//! authentication is proven by a real Kafka answer), ClusterMetadata and TopicsResolved, from what
//! that session learned.

use std::time::Duration;

use tokio::time::timeout_at;

use super::engine::{skipped, Test};
use super::{bounded_list, row, Session, MAX_NAMED};
use crate::api::{Acks, Check, CheckReport, CheckResult, ClusterInfo, Reason, TopicsStatus};
use crate::kafka::{ClusterView, Kafka, KafkaFailure, ProbeRequest, Topic, Unserved};

/// The Authenticated step.
pub(super) async fn authenticated<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    // Admin requests the brokers do not serve are not asked (managed services leave some out; a
    // request they do not serve would only wait until the test's time is up).
    let unserved = match t.api_versions().await {
        Ok(versions) => Unserved::from_versions(versions),
        Err(_) => Unserved::default(),
    };
    let Some(settings) = &t.settings else {
        return skipped(
            Check::Authenticated,
            Reason::DependencyFailed,
            "CredentialsResolved failed",
        );
    };
    let spec = t.input.spec;
    // A margin inside the deadline, so that what the session learned is never thrown away.
    let left = t
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    let left = left.saturating_sub((left / 10).min(Duration::from_secs(1)));
    let request = ProbeRequest {
        topics: spec.topics.clone(),
        group: spec.role.reads().then(|| t.input.group_id.clone()),
        authorization: true,
        min_insync: spec.role.writes()
            && matches!(spec.producer.acks, Acks::MajorityIsr | Acks::AllIsr),
        unserved,
    };
    let result = match timeout_at(t.deadline, t.kafka.probe(settings, &request, left)).await {
        Ok(r) => r,
        Err(_) => Err(KafkaFailure::Timeout(t.valid().timeout)),
    };
    if let Err(KafkaFailure::AdvertisedUnreachable(brokers)) = &result {
        t.advertised_failure = Some(brokers.clone());
    }
    let login = if settings.kerberos.is_some() {
        Login::Kerberos
    } else if settings.oauth.is_some() {
        Login::OAuth
    } else {
        Login::Other
    };
    let (row, view) = authenticated_row(settings.protocol(), login, result);
    t.view = view;
    row
}

/// The ClusterMetadata step: the full metadata came from the brokers the bootstrap servers advertise.
pub(super) fn cluster_metadata<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    if t.advertised_failure.is_some() {
        return row(
            Check::ClusterMetadata,
            CheckResult::Failed,
            Reason::AdvertisedListenerUnreachable,
            "the bootstrap servers answered, but the full metadata must come from the brokers they advertise, which cannot be reached (see AdvertisedListeners)",
            Some(ADVERTISED_HINT.into()),
            Some("spec.bootstrapServers".into()),
        );
    }
    let Some(view) = &t.view else {
        return skipped(
            Check::ClusterMetadata,
            Reason::DependencyFailed,
            "Authenticated did not pass",
        );
    };
    t.report.cluster = Some(ClusterInfo {
        cluster_id: view.cluster_id.clone(),
        brokers: view.brokers.len() as u32,
        controller_id: view.controller_id,
    });
    metadata_row(view)
}

/// What to do when the advertised brokers cannot be reached.
pub(super) const ADVERTISED_HINT: &str = "the brokers' advertised.listeners must name addresses reachable from this network: use the listener meant for clients outside the brokers' network, or fix advertised.listeners on the brokers";

/// The row of advertised brokers that cannot be reached.
pub(super) fn advertised_unreachable(check: Check, brokers: &[String], after: &str) -> CheckReport {
    row(
        check,
        CheckResult::Failed,
        Reason::AdvertisedListenerUnreachable,
        format!(
            "the bootstrap servers answered, but {}; {after}",
            bounded_list(brokers, MAX_NAMED)
        ),
        Some(ADVERTISED_HINT.into()),
        Some("spec.bootstrapServers".into()),
    )
}

/// The TopicsResolved step; a working session for model sampling comes with it.
pub(super) fn topics_resolved<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let Some(view) = &t.view else {
        return skipped(
            Check::TopicsResolved,
            Reason::DependencyFailed,
            "ClusterMetadata did not pass",
        );
    };
    let matched: Vec<&str> = view.matched.iter().map(String::as_str).collect();
    if let Some(settings) = t.settings.clone() {
        let known: std::collections::HashMap<&str, &Topic> =
            view.topics.iter().map(|t| (t.name.as_str(), t)).collect();
        let topics = view
            .matched
            .iter()
            .map(|name| match known.get(name.as_str()) {
                Some(topic) => (*topic).clone(),
                None => Topic {
                    name: name.clone(),
                    partitions: 1,
                    replication_factor: 1,
                },
            })
            .collect();
        t.report.session = Some(Session {
            settings,
            topics,
            admin_answers: matches!(view.cluster_ops, Some(Ok(_))),
            kerberos_files: t.kerberos_files.clone(),
        });
    }
    t.report.topics = Some(TopicsStatus {
        matched: matched.len() as u32,
        sample: matched.iter().take(10).map(|s| s.to_string()).collect(),
    });
    topics_row(&t.input.spec.topics.expression, view.topics.len(), &matched)
}

/// How the session logs in, for the hint of a refused login.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Login {
    Kerberos,
    OAuth,
    Other,
}

fn authenticated_row(
    protocol: &str,
    login: Login,
    result: Result<ClusterView, KafkaFailure>,
) -> (CheckReport, Option<ClusterView>) {
    let passed = |message: String| {
        let why = if protocol == "PLAINTEXT" {
            Reason::NoAuthentication
        } else {
            Reason::Authenticated
        };
        row(
            Check::Authenticated,
            CheckResult::Passed,
            why,
            message,
            None,
            None,
        )
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
        // The brokers say only invalid_token; why (signature, issuer, audience, expiry) is in
        // their log.
        Err(KafkaFailure::Authentication(why))
            if login == Login::OAuth && why.contains("invalid_token") =>
        {
            (
                Reason::TokenRefused,
                format!("the brokers refused the token TokenAcquired got: {why}"),
                "the brokers check the token's signature (against the provider's JWKS), issuer and audience: compare the claims TokenAcquired names with the listener's sasl.oauthbearer.expected.issuer and expected.audience (set spec.authentication.oauth.audience if the provider needs it), and check that the brokers trust this provider's signing keys (their log names the cause)",
                "spec.authentication.oauth.audience",
            )
        }
        Err(KafkaFailure::Authentication(why)) if login == Login::OAuth => (
            Reason::AuthenticationFailed,
            format!("OAUTHBEARER authentication failed: {why}"),
            "check that the listener expects SASL OAUTHBEARER, and the token endpoint (TokenAcquired): librdkafka asks it again for its own token",
            "spec.authentication.oauth",
        ),
        Err(KafkaFailure::Authentication(why)) if login == Login::Kerberos => (
            Reason::AuthenticationFailed,
            format!("GSSAPI authentication failed: {why}"),
            "check spec.authentication.kerberos.serviceName (the brokers' principals are <serviceName>/<broker host>@REALM) and that the brokers' host names match their principals",
            "spec.authentication.kerberos.serviceName",
        ),
        Err(KafkaFailure::Authentication(why)) => (
            Reason::AuthenticationFailed,
            format!("the brokers rejected the credentials: {why}"),
            "check the user name and password in the Secret and the SASL mechanism (spec.authentication.sasl.mechanism) the listener expects",
            "spec.authentication",
        ),
        Err(KafkaFailure::Tls(why)) if why.contains(crate::kafka::ffi::NAME_MISMATCH) => (
            Reason::TlsFailed,
            format!("TLS failed: {why}"),
            "a broker's certificate names neither spec.tls.serverName nor the address it was reached by (for the brokers the cluster advertises, their advertised.listeners host): fix the brokers' certificates or advertised.listeners, or set serverName to the name the certificates carry",
            "spec.tls.serverName",
        ),
        Err(KafkaFailure::Tls(why)) => (
            Reason::TlsFailed,
            format!("TLS failed: {why}"),
            "check spec.tls.caSecretRef (the CA that signed the brokers' certificates), the client certificate for mTLS, and that the listener speaks TLS",
            "spec.tls",
        ),
        Err(other) => (
            Reason::KafkaUnavailable,
            format!("no Kafka answer: {other}"),
            "the port accepts TCP but does not answer as a Kafka listener with this protocol: check spec.tls and spec.authentication against the listener's security.protocol",
            "spec.bootstrapServers",
        ),
    };
    (
        row(
            Check::Authenticated,
            CheckResult::Failed,
            why,
            message,
            Some(hint.into()),
            Some(field.into()),
        ),
        None,
    )
}

fn metadata_row(view: &ClusterView) -> CheckReport {
    let id = view.cluster_id.as_deref().unwrap_or("unknown");
    row(
        Check::ClusterMetadata,
        CheckResult::Passed,
        Reason::MetadataFetched,
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

fn topics_row(expression: &str, visible: usize, matched: &[&str]) -> CheckReport {
    if matched.is_empty() {
        return row(
            Check::TopicsResolved,
            CheckResult::Warning,
            Reason::NoTopicsMatched,
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
        Check::TopicsResolved,
        CheckResult::Passed,
        Reason::TopicsMatched,
        format!(
            "{} of {visible} visible topics match: {sample}{more}",
            matched.len()
        ),
        None,
        None,
    )
}
