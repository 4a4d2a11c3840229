//! SchemaRegistryReachable: each URL of `spec.schemaRegistry` resolves, accepts TCP (and TLS, verified),
//! and answers a real request of the Confluent API (`GET /subjects`) with the spec's credentials.
//! Independent of the Kafka checks: a registry that is down fails this row and leaves them alone.

use std::time::Duration;

use super::engine::{skipped, Test};
use super::{bounded_list, network, row, tls, MAX_NAMED};
use crate::api::{Check, CheckReport, CheckResult, Reason};
use crate::kafka::{Kafka, RegistryMaterial};
use crate::web::{self, Url, WebError};

/// What one registry URL gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// It answered the subjects: how many.
    Subjects(usize),
    /// DNS or TCP failed.
    Unreachable(String),
    /// TLS failed.
    Tls(tls::TlsError),
    /// 401 or 403.
    Unauthorized(u16, String),
    /// Another answer: the HTTP status (0: not HTTP) and what it said.
    Failed(u16, String),
}

/// The SchemaRegistryReachable step.
pub(super) async fn schema_registry_reachable<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let Some(material) = t.settings.as_ref().and_then(|s| s.registry.clone()) else {
        return skipped(
            Check::SchemaRegistryReachable,
            Reason::DependencyFailed,
            "CredentialsResolved failed",
        );
    };
    let budget = t.endpoint_budget();
    let asks = material
        .urls
        .iter()
        .map(|url| ask(url.clone(), material.clone(), budget));
    match tokio::time::timeout_at(t.deadline, futures::future::join_all(asks)).await {
        Ok(answers) => registry_row(&material, &answers),
        Err(_) => t.timed_out(Check::SchemaRegistryReachable),
    }
}

/// One URL: DNS, then `GET <url>/subjects` at the first address that accepts TCP.
async fn ask(url: Url, material: RegistryMaterial, budget: Duration) -> Answer {
    let addrs = match network::resolve(&url.host, url.port, budget).await {
        Ok(addrs) => addrs,
        Err(why) => return Answer::Unreachable(format!("cannot resolve {}: {why}", url.host)),
    };
    let asked = tokio::task::spawn_blocking(move || {
        let subjects = url.join("/subjects");
        let request = web::Request {
            method: "GET",
            url: &subjects,
            basic: material.basic.as_ref().map(|(u, p)| (u, p)),
            content_type: None,
            body: b"",
            limit: web::MAX_ANSWER,
        };
        web::call_any(&request, &addrs, &material.tls, budget)
    })
    .await;
    match asked {
        Ok(Ok((_, answer))) => classify(answer.status, &answer.body),
        Ok(Err(WebError::Connect(why))) => Answer::Unreachable(why),
        Ok(Err(WebError::Tls(e))) => Answer::Tls(e),
        Ok(Err(WebError::Protocol(why))) => Answer::Failed(0, why),
        Err(e) => Answer::Failed(0, format!("the request task failed: {e}")),
    }
}

/// What a `GET /subjects` answer means.
pub(super) fn classify(status: u16, body: &[u8]) -> Answer {
    let text = || {
        web::printable(&String::from_utf8_lossy(
            &body[..body.len().min(web::MAX_SHOWN)],
        ))
    };
    match status {
        200..=299 => match serde_json::from_slice::<Vec<serde_json::Value>>(body) {
            Ok(subjects) => Answer::Subjects(subjects.len()),
            Err(_) => Answer::Failed(
                status,
                format!("the answer is not a list of subjects: {}", text()),
            ),
        },
        401 | 403 => Answer::Unauthorized(status, text()),
        _ => Answer::Failed(status, text()),
    }
}

/// The row for every URL's answer (in spec order).
pub(super) fn registry_row(material: &RegistryMaterial, answers: &[Answer]) -> CheckReport {
    let named = |i: usize| material.urls[i].url();
    let good: Vec<(usize, usize)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Answer::Subjects(n) => Some((i, *n)),
            _ => None,
        })
        .collect();
    let bad: Vec<String> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| !matches!(a, Answer::Subjects(_)))
        .map(|(i, a)| format!("{}: {}", named(i), describe(a)))
        .collect();
    if let Some(&(first, subjects)) = good.first() {
        if !bad.is_empty() {
            return row(
                Check::SchemaRegistryReachable,
                CheckResult::Warning,
                Reason::SomeRegistriesUnreachable,
                format!(
                    "{} answered ({subjects} subjects); {}",
                    named(first),
                    bounded_list(&bad, MAX_NAMED)
                ),
                Some(
                    "models are read through the URLs that answer; fix or remove the others".into(),
                ),
                Some("spec.schemaRegistry.url".into()),
            );
        }
        let plain = material.urls.iter().find(|u| !u.https && !u.is_loopback());
        if let (Some(url), Some(_)) = (plain, &material.basic) {
            return row(
                Check::SchemaRegistryReachable,
                CheckResult::Warning,
                Reason::CredentialsUnencrypted,
                format!(
                    "{} answered ({subjects} subjects), but {} is http: the basic-auth password crosses the network in clear text",
                    named(first),
                    url.url()
                ),
                Some("use the registry's https URL (caSecretRef if its CA is private)".into()),
                Some("spec.schemaRegistry.url".into()),
            );
        }
        return row(
            Check::SchemaRegistryReachable,
            CheckResult::Passed,
            Reason::RegistryReachable,
            format!(
                "{} answered: {subjects} subject{}",
                if answers.len() == 1 {
                    named(first)
                } else {
                    format!("all {} registry URLs", answers.len())
                },
                if subjects == 1 { "" } else { "s" }
            ),
            None,
            None,
        );
    }
    let message = bounded_list(&bad, MAX_NAMED);
    let (why, hint, field): (Reason, &str, &str) = match &answers[0] {
        Answer::Unreachable(_) => (
            Reason::RegistryUnreachable,
            "check spec.schemaRegistry.url and that the registry is reachable from kconn's network (DNS, NetworkPolicies, firewalls)",
            "spec.schemaRegistry.url",
        ),
        Answer::Unauthorized(..) => (
            Reason::RegistryUnauthorized,
            "check the user name and password in the Secret named by spec.schemaRegistry.basicAuthSecretRef (for Confluent Cloud: a Schema Registry API key and secret, not a Kafka one)",
            "spec.schemaRegistry.basicAuthSecretRef",
        ),
        Answer::Tls(e) => {
            let (reason, field, hint) = tls::endpoint_failure_kind(
                e,
                "the schema registry",
                "spec.schemaRegistry.caSecretRef",
                "spec.schemaRegistry.url",
            );
            return row(
                Check::SchemaRegistryReachable,
                CheckResult::Failed,
                reason,
                message,
                Some(hint),
                Some(field.into()),
            );
        }
        Answer::Failed(404, _) => (
            Reason::RegistryFailed,
            "the URL is not the base of a Confluent-compatible API: give the base clients use as schema.registry.url (Apicurio: /apis/ccompat/v7; Confluent Cloud: the cluster's endpoint)",
            "spec.schemaRegistry.url",
        ),
        Answer::Failed(..) | Answer::Subjects(_) => (
            Reason::RegistryFailed,
            "the registry failed or something else answered in its place: check its health and the URL; kconn tests again",
            "spec.schemaRegistry.url",
        ),
    };
    row(
        Check::SchemaRegistryReachable,
        CheckResult::Failed,
        why,
        message,
        Some(hint.into()),
        Some(field.into()),
    )
}

fn describe(a: &Answer) -> String {
    match a {
        Answer::Subjects(n) => format!("{n} subjects"),
        Answer::Unreachable(why) => why.clone(),
        Answer::Tls(e) => format!("TLS failed: {e}"),
        Answer::Unauthorized(status, text) if text.is_empty() => {
            format!("HTTP {status}: the credentials were refused")
        }
        Answer::Unauthorized(status, text) => {
            format!("HTTP {status}: the credentials were refused ({text})")
        }
        Answer::Failed(0, why) => why.clone(),
        Answer::Failed(status, text) => format!("HTTP {status}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretBytes;

    fn material(urls: &[&str], basic: bool) -> RegistryMaterial {
        RegistryMaterial {
            urls: urls.iter().map(|u| Url::parse(u).unwrap()).collect(),
            basic: basic.then(|| {
                (
                    SecretBytes::new(b"user".to_vec()),
                    SecretBytes::new(b"password".to_vec()),
                )
            }),
            tls: Default::default(),
        }
    }

    #[test]
    fn answers_are_read_as_a_registry_answers() {
        assert_eq!(
            classify(200, b"[\"a-value\",\"b-key\"]"),
            Answer::Subjects(2)
        );
        assert_eq!(classify(200, b"[]"), Answer::Subjects(0));
        assert!(
            matches!(classify(200, b"<html>"), Answer::Failed(200, m) if m.contains("not a list"))
        );
        assert_eq!(classify(401, b""), Answer::Unauthorized(401, String::new()));
        assert!(matches!(
            classify(404, b"{\"error_code\":404}"),
            Answer::Failed(404, _)
        ));
    }

    #[test]
    fn rows_name_the_field_to_fix() {
        let one = material(&["https://sr.example.com"], true);
        let r = registry_row(&one, &[Answer::Subjects(3)]);
        assert_eq!(
            (r.result, r.reason.as_str()),
            (CheckResult::Passed, "RegistryReachable")
        );
        assert_eq!(r.message, "https://sr.example.com/ answered: 3 subjects");
        for (answer, reason, field) in [
            (
                Answer::Unreachable("refused".into()),
                "RegistryUnreachable",
                "spec.schemaRegistry.url",
            ),
            (
                Answer::Unauthorized(401, String::new()),
                "RegistryUnauthorized",
                "spec.schemaRegistry.basicAuthSecretRef",
            ),
            (
                Answer::Failed(404, "not found".into()),
                "RegistryFailed",
                "spec.schemaRegistry.url",
            ),
            (
                Answer::Failed(500, "boom".into()),
                "RegistryFailed",
                "spec.schemaRegistry.url",
            ),
            (
                Answer::Tls(tls::TlsError::Untrusted("self-signed".into())),
                "CertificateUntrusted",
                "spec.schemaRegistry.caSecretRef",
            ),
            (
                Answer::Tls(tls::TlsError::HostnameMismatch("\"sr\"".into())),
                "HostnameMismatch",
                "spec.schemaRegistry.url",
            ),
        ] {
            let r = registry_row(&one, &[answer]);
            assert_eq!(
                (r.result, r.reason.as_str(), r.field.as_deref()),
                (CheckResult::Failed, reason, Some(field)),
                "{}",
                r.message
            );
        }
        let two = material(&["https://a.example.com", "https://b.example.com"], false);
        let r = registry_row(
            &two,
            &[Answer::Unreachable("refused".into()), Answer::Subjects(1)],
        );
        assert_eq!(
            (r.result, r.reason.as_str()),
            (CheckResult::Warning, "SomeRegistriesUnreachable")
        );
        assert!(
            r.message.contains("https://a.example.com/: refused"),
            "{}",
            r.message
        );
        let plain = material(&["http://sr.example.com:8081"], true);
        let r = registry_row(&plain, &[Answer::Subjects(0)]);
        assert_eq!(
            (r.result, r.reason.as_str()),
            (CheckResult::Warning, "CredentialsUnencrypted")
        );
        let loopback = material(&["http://127.0.0.1:8081"], true);
        assert_eq!(
            registry_row(&loopback, &[Answer::Subjects(0)]).result,
            CheckResult::Passed
        );
    }
}
