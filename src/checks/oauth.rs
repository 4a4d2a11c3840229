//! TokenAcquired: the OAuth token endpoint resolved, reached, its TLS verified, and a real
//! client-credentials request answered with a token librdkafka can use. The row names the token's
//! claims (issuer, subject, audience, scopes, expiry), never the token.

use std::net::SocketAddr;

use super::engine::{skipped, Test};
use super::{network, row, tls};
use crate::api::{Check, CheckReport, CheckResult, Reason};
use crate::kafka::Kafka;
use crate::oauth::{self, TokenError};

const ENDPOINT: &str = "spec.authentication.oauth.tokenEndpoint";

/// The TokenAcquired step.
pub(super) async fn token_acquired<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let Some(material) = t.settings.as_ref().and_then(|s| s.oauth.clone()) else {
        return skipped(
            Check::TokenAcquired,
            Reason::DependencyFailed,
            "CredentialsResolved failed",
        );
    };
    let budget = t.endpoint_budget();
    let endpoint = &material.endpoint;
    let addrs = match network::resolve(&endpoint.host, endpoint.port, budget).await {
        Ok(addrs) => addrs,
        Err(why) => return unreachable(format!("cannot resolve {}: {why}", endpoint.host)),
    };
    let now = t.input.now;
    let request = tokio::task::spawn_blocking(move || {
        oauth::request_token(
            &material.endpoint,
            &addrs,
            &material.client,
            material.ca_pem.as_deref(),
            budget,
            now,
        )
    });
    match tokio::time::timeout_at(t.deadline, request).await {
        Ok(Ok(result)) => token_row(result, t.input.now),
        Ok(Err(e)) => unreachable(format!("the token request task failed: {e}")),
        Err(_) => t.timed_out(Check::TokenAcquired),
    }
}

fn unreachable(message: String) -> CheckReport {
    row(
        Check::TokenAcquired,
        CheckResult::Failed,
        Reason::TokenEndpointUnreachable,
        message,
        Some("check spec.authentication.oauth.tokenEndpoint, and that the provider is reachable from kconn's network (DNS, firewalls, an egress proxy)".into()),
        Some(ENDPOINT.into()),
    )
}

/// What one token request gave: the address that answered and the token's claims.
type Asked = Result<(SocketAddr, oauth::Claims), TokenError>;

/// The row of one token request.
pub(super) fn token_row(result: Asked, now: std::time::SystemTime) -> CheckReport {
    let (why, message, hint, field): (Reason, String, &str, &str) = match result {
        Ok((addr, claims)) => {
            return row(
                Check::TokenAcquired,
                CheckResult::Passed,
                Reason::TokenAcquired,
                format!("the token endpoint ({addr}) issued a token: {}", claims.describe(now)),
                None,
                None,
            )
        }
        Err(TokenError::Connect(why)) => return unreachable(format!("cannot connect: {why}")),
        Err(TokenError::Tls(e)) => {
            let (reason, field, hint) = tls::endpoint_failure_kind(
                &e,
                "the token endpoint",
                "spec.authentication.oauth.caSecretRef",
                ENDPOINT,
            );
            return row(
                Check::TokenAcquired,
                CheckResult::Failed,
                reason,
                format!("TLS to the token endpoint failed: {e}"),
                Some(hint),
                Some(field.into()),
            );
        }
        Err(e @ TokenError::Refused { .. }) => {
            let TokenError::Refused { error, .. } = &e else {
                unreachable!()
            };
            let (hint, field) = match error.as_str() {
                "invalid_client" | "unauthorized_client" => (
                    "check the client id and secret in the Secret (spec.authentication.oauth.clientSecretRef), and that the client may use the client-credentials grant",
                    "spec.authentication.oauth.clientSecretRef",
                ),
                "invalid_scope" => (
                    "ask only for scopes the provider grants this client (spec.authentication.oauth.scope), or omit scope for its default",
                    "spec.authentication.oauth.scope",
                ),
                "invalid_target" => (
                    "set spec.authentication.oauth.audience to an audience the provider knows (the brokers' expected audience), or omit it",
                    "spec.authentication.oauth.audience",
                ),
                "unsupported_grant_type" => (
                    "enable the client-credentials grant for this client at the provider",
                    "spec.authentication.oauth.clientSecretRef",
                ),
                _ => (
                    "the provider's error names the problem: check the client in the Secret, the scope and the audience",
                    "spec.authentication.oauth",
                ),
            };
            (
                Reason::TokenRequestRejected,
                format!("the provider refused the token request: {e}"),
                hint,
                field,
            )
        }
        Err(TokenError::Http { status, text }) if (400..500).contains(&status) && status != 429 => (
            Reason::TokenRequestRejected,
            format!("the token endpoint answered HTTP {status}: {text}"),
            "check spec.authentication.oauth.tokenEndpoint: the provider's discovery document (/.well-known/openid-configuration) names it as token_endpoint",
            ENDPOINT,
        ),
        Err(e @ (TokenError::Http { .. } | TokenError::Protocol(_))) => (
            Reason::TokenEndpointFailed,
            format!("the token endpoint did not answer with a token: {e}"),
            "the provider failed or something in front of it answered instead: check tokenEndpoint and the provider's health; kconn tests again",
            ENDPOINT,
        ),
        Err(TokenError::Unusable(why)) => (
            Reason::TokenUnusable,
            format!("the provider issued a token librdkafka cannot use: {why}"),
            "configure the provider's client to issue JWT access tokens with sub and exp claims",
            "spec.authentication.oauth",
        ),
    };
    row(
        Check::TokenAcquired,
        CheckResult::Failed,
        why,
        message,
        Some(hint.into()),
        Some(field.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn each_failure_names_its_field() {
        let refused = |error: &str| {
            Err(TokenError::Refused {
                status: 400,
                error: error.into(),
                description: None,
            })
        };
        let cases: Vec<(Asked, Reason, &str)> = vec![
            (
                refused("invalid_client"),
                Reason::TokenRequestRejected,
                "spec.authentication.oauth.clientSecretRef",
            ),
            (
                refused("invalid_scope"),
                Reason::TokenRequestRejected,
                "spec.authentication.oauth.scope",
            ),
            (
                refused("invalid_target"),
                Reason::TokenRequestRejected,
                "spec.authentication.oauth.audience",
            ),
            (
                Err(TokenError::Connect("refused".into())),
                Reason::TokenEndpointUnreachable,
                ENDPOINT,
            ),
            (
                Err(TokenError::Tls(tls::TlsError::Untrusted(
                    "self-signed".into(),
                ))),
                Reason::CertificateUntrusted,
                "spec.authentication.oauth.caSecretRef",
            ),
            (
                Err(TokenError::Http {
                    status: 404,
                    text: "nope".into(),
                }),
                Reason::TokenRequestRejected,
                ENDPOINT,
            ),
            (
                Err(TokenError::Http {
                    status: 503,
                    text: "busy".into(),
                }),
                Reason::TokenEndpointFailed,
                ENDPOINT,
            ),
            (
                Err(TokenError::Protocol("closed".into())),
                Reason::TokenEndpointFailed,
                ENDPOINT,
            ),
            (
                Err(TokenError::Unusable("no sub".into())),
                Reason::TokenUnusable,
                "spec.authentication.oauth",
            ),
        ];
        for (result, reason, field) in cases {
            let r = token_row(result, now());
            assert_eq!(
                (r.result, r.reason.as_str(), r.field.as_deref()),
                (CheckResult::Failed, reason.as_str(), Some(field)),
                "{}",
                r.message
            );
            assert!(r.hint.is_some());
        }
        let claims = oauth::Claims {
            issuer: Some("https://idp".into()),
            subject: "pipeline".into(),
            audience: vec!["kafka".into()],
            expires_at: 1_000_000 + 3600,
            scopes: vec![],
        };
        let ok = token_row(Ok(("127.0.0.1:443".parse().unwrap(), claims)), now());
        assert_eq!(ok.result, CheckResult::Passed);
        assert_eq!(ok.message, "the token endpoint (127.0.0.1:443) issued a token: subject pipeline, issuer https://idp, audience kafka, expires in 60m");
    }
}
