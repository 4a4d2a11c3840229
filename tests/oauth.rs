//! SASL OAUTHBEARER against the test environment's real OIDC provider and OAUTH listener (which checks
//! the token's signature against the provider's JWKS, its issuer and its audience): `kconn check`
//! acquires a token as librdkafka does, names its claims and never the token, and names every failure
//! by its field: a wrong client secret, a scope the provider does not grant, an unreachable or
//! untrusted endpoint, a token signed by another key, from another issuer or for another audience, a
//! principal without rights.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use support::{check, Env, Run};

/// A spec for the OAUTH listener with `oauth` (merged over the defaults: the main token URL, the
/// `client` Secret, the scope the provider grants).
fn spec(env: &Env, topic: &str, oauth: serde_json::Value) -> String {
    let mut o = serde_json::json!({
        "tokenEndpoint": env.var("OAUTH_TOKEN_URL"),
        "clientSecretRef": {"name": "client"},
        "scope": env.var("OAUTH_SCOPE"),
    });
    for (k, v) in oauth.as_object().unwrap() {
        o[k] = v.clone();
    }
    let spec = serde_json::json!({
        "role": "SourceAndTarget",
        "bootstrapServers": [env.var("KAFKA_OAUTH")],
        "topics": {"expression": topic.replace('.', "[.]")},
        "authentication": {"oauth": o},
        "check": {"timeout": "20s"},
    });
    // The spec as a YAML flow mapping (JSON is YAML), indented under `spec:`.
    format!("  {}", serde_json::to_string(&spec).unwrap())
}

/// Runs `kconn check` with the client `id` and `secret` and the test CAs in the Secret `client`.
fn run(env: &Env, topic: &str, id: &str, secret: &str, oauth: serde_json::Value) -> Run {
    let ca = std::fs::read_to_string(env.tls("ca.crt")).unwrap();
    let other_ca = std::fs::read_to_string(env.tls("other-ca.crt")).unwrap();
    let run = check(
        &spec(env, topic, oauth),
        &[(
            "client",
            &[
                ("clientId", id),
                ("clientSecret", secret),
                ("ca.crt", &ca),
                ("other-ca.crt", &other_ca),
            ],
        )],
        "json",
    );
    // Nothing of a token or a client secret reaches the output.
    let all = format!("{}{}", run.stdout, run.stderr);
    for secret in [
        env.var("OAUTH_CLIENT_SECRET"),
        env.var("OAUTH_OTHER_AUDIENCE_CLIENT_SECRET"),
        env.var("OAUTH_NO_RIGHTS_CLIENT_SECRET"),
        "eyJ",
    ] {
        assert!(!all.contains(secret), "a secret or token in the output");
    }
    run
}

fn main_client(env: &Env) -> (&str, &str) {
    (env.var("OAUTH_CLIENT_ID"), env.var("OAUTH_CLIENT_SECRET"))
}

fn message(run: &Run, check: &str) -> String {
    run.row(check)["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_token_from_the_provider_authenticates_and_its_claims_are_named() {
    let env = Env::get();
    let topic = support::unique("oauth");
    support::create_topic(env.var("KAFKA_PLAINTEXT"), &topic, 1).await;
    let (id, secret) = main_client(env);
    let run = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"extensions": {"logicalCluster": "lkc-test", "identityPoolId": "pool-1"}}),
    );
    run.assert("CredentialsResolved", "Warning", "CredentialsUnencrypted")
        .assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Passed", "Authenticated")
        .assert("TopicsResolved", "Passed", "TopicsMatched")
        .assert("Authorized", "Passed", "Authorized")
        .assert("KerberosTicket", "Skipped", "NotApplicable");
    assert_eq!(run.code, 0, "{}", run.stdout);
    let claims = message(&run, "TokenAcquired");
    for part in [
        "subject kconn-oauth,".to_string(),
        format!("issuer {},", env.var("OAUTH_ISSUER")),
        format!("audience {},", env.var("OAUTH_AUDIENCE")),
        format!("scopes {},", env.var("OAUTH_SCOPE")),
        "expires in ".to_string(),
    ] {
        assert!(claims.contains(&part), "{part} in {claims}");
    }
    assert!(message(&run, "Authenticated").contains("SASL_PLAINTEXT"));
}

#[tokio::test]
async fn an_https_token_endpoint_is_verified_against_its_ca() {
    let env = Env::get();
    let topic = support::unique("oauth-tls");
    let (id, secret) = main_client(env);
    let url = env.var("OAUTH_TLS_TOKEN_URL");
    // The endpoint's CA from the Secret: kconn's request and librdkafka's (https.ca.pem) both verify.
    let trusted = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"tokenEndpoint": url, "caSecretRef": {"name": "client", "key": "ca.crt"}}),
    );
    trusted
        .assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Passed", "Authenticated");
    // Without it (the system roots) or with another CA: untrusted, named by the field to fix.
    for oauth in [
        serde_json::json!({"tokenEndpoint": url}),
        serde_json::json!({"tokenEndpoint": url, "caSecretRef": {"name": "client", "key": "other-ca.crt"}}),
    ] {
        let untrusted = run(env, &topic, id, secret, oauth);
        untrusted
            .assert("TokenAcquired", "Failed", "CertificateUntrusted")
            .assert("Authenticated", "Skipped", "DependencyFailed");
        assert_eq!(
            untrusted.row("TokenAcquired")["field"],
            "spec.authentication.oauth.caSecretRef"
        );
        assert_eq!(untrusted.code, 1);
    }
}

#[tokio::test]
async fn the_providers_refusals_name_the_field_to_fix() {
    let env = Env::get();
    let topic = support::unique("oauth-refused");
    let (id, secret) = main_client(env);
    let wrong = run(env, &topic, id, "not-the-secret", serde_json::json!({}));
    wrong
        .assert("TokenAcquired", "Failed", "TokenRequestRejected")
        .assert("Authenticated", "Skipped", "DependencyFailed");
    assert!(message(&wrong, "TokenAcquired").contains("invalid_client"));
    assert_eq!(
        wrong.row("TokenAcquired")["field"],
        "spec.authentication.oauth.clientSecretRef"
    );
    assert_eq!(wrong.code, 1);

    let scope = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"scope": "admin"}),
    );
    scope.assert("TokenAcquired", "Failed", "TokenRequestRejected");
    assert!(message(&scope, "TokenAcquired").contains("invalid_scope"));
    assert_eq!(
        scope.row("TokenAcquired")["field"],
        "spec.authentication.oauth.scope"
    );
}

#[tokio::test]
async fn an_endpoint_that_cannot_be_reached_says_so() {
    let env = Env::get();
    let topic = support::unique("oauth-down");
    let (id, secret) = main_client(env);
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"tokenEndpoint": format!("http://{closed}/token")}),
    );
    refused
        .assert("TokenAcquired", "Failed", "TokenEndpointUnreachable")
        .assert("Authenticated", "Skipped", "DependencyFailed");
    let unresolvable = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"tokenEndpoint": "https://idp.kconn.invalid/token"}),
    );
    unresolvable.assert("TokenAcquired", "Failed", "TokenEndpointUnreachable");
    assert!(message(&unresolvable, "TokenAcquired").contains("cannot resolve idp.kconn.invalid"));
}

#[tokio::test]
async fn the_brokers_refuse_a_token_of_another_key_issuer_or_audience() {
    let env = Env::get();
    let topic = support::unique("oauth-token");
    let (id, secret) = main_client(env);
    // Another provider, another key: the provider issues a token, the brokers refuse it. (Kafka 4.1's
    // default validator would accept it: the listener must name BrokerJwtValidator.)
    let foreign = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"tokenEndpoint": env.var("OAUTH_FOREIGN_TOKEN_URL")}),
    );
    foreign
        .assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Failed", "TokenRefused");
    assert!(message(&foreign, "Authenticated").contains("invalid_token"));
    assert_eq!(foreign.code, 1);

    // The trusted key, another issuer: refused as well.
    let issuer = run(
        env,
        &topic,
        id,
        secret,
        serde_json::json!({"tokenEndpoint": env.var("OAUTH_WRONG_ISSUER_TOKEN_URL")}),
    );
    issuer
        .assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Failed", "TokenRefused");
    assert!(!message(&issuer, "TokenAcquired")
        .contains(&format!("issuer {},", env.var("OAUTH_ISSUER"))));

    // A client whose tokens are for another audience: refused...
    let (other, other_secret) = (
        env.var("OAUTH_OTHER_AUDIENCE_CLIENT_ID"),
        env.var("OAUTH_OTHER_AUDIENCE_CLIENT_SECRET"),
    );
    let audience = run(
        env,
        &topic,
        other,
        other_secret,
        serde_json::json!({"scope": null}),
    );
    audience
        .assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Failed", "TokenRefused");
    assert!(message(&audience, "TokenAcquired").contains("audience other-audience,"));
    assert_eq!(
        audience.row("Authenticated")["field"],
        "spec.authentication.oauth.audience"
    );
    // ...until the spec asks for the brokers' audience (sent in the token URL's query).
    let asked = run(
        env,
        &topic,
        other,
        other_secret,
        serde_json::json!({"scope": null, "audience": env.var("OAUTH_AUDIENCE")}),
    );
    asked
        .assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Passed", "Authenticated");
    assert!(message(&asked, "TokenAcquired").contains("audience kafka,"));
}

#[tokio::test]
async fn a_principal_without_rights_authenticates_and_is_not_authorized() {
    let env = Env::get();
    let topic = support::unique("oauth-norights");
    support::create_topic(env.var("KAFKA_PLAINTEXT"), &topic, 1).await;
    let run = run(
        env,
        &topic,
        env.var("OAUTH_NO_RIGHTS_CLIENT_ID"),
        env.var("OAUTH_NO_RIGHTS_CLIENT_SECRET"),
        serde_json::json!({"scope": null}),
    );
    run.assert("TokenAcquired", "Passed", "TokenAcquired")
        .assert("Authenticated", "Passed", "Authenticated")
        .assert("Authorized", "Failed", "NotAuthorized");
    assert!(message(&run, "TokenAcquired").contains("subject kconn-oauth-norights,"));
    assert_eq!(run.code, 1);
}
