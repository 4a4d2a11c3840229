//! Bad input at scale, through `kconn check` as a user would run it: 10 MiB Secret values of every kind
//! are refused with the field and a reason (never handed to librdkafka, which hangs or crashes on such a
//! password), 64 bootstrap servers of which 63 are closed give one readable Warning, and a 256-character
//! regex is matched against 100,000 topic names correctly.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::time::Instant;

use kconn::api::TopicSelector;
use support::Env;

const MIB: usize = 1 << 20;

#[test]
fn ten_mib_secret_values_are_refused_with_their_field() {
    let huge = vec![b'x'; 10 * MIB];
    let sasl = "authentication: {sasl: {mechanism: SCRAM-SHA-512, secretRef: {name: s}}}";
    let krb = "authentication: {kerberos: {principal: a@R, keytabSecretRef: {name: s, key: kt}, krb5ConfSecretRef: {name: s, key: conf}}}";
    let cases = [
        (
            sasl,
            vec![("username", b"u".to_vec()), ("password", huge.clone())],
            "spec.authentication.sasl.secretRef.passwordKey",
        ),
        (
            sasl,
            vec![("username", huge.clone()), ("password", b"p".to_vec())],
            "spec.authentication.sasl.secretRef.usernameKey",
        ),
        (
            krb,
            vec![
                ("kt", [vec![5, 2], huge.clone()].concat()),
                ("conf", b"[libdefaults]\n".to_vec()),
            ],
            "spec.authentication.kerberos.keytabSecretRef.key",
        ),
        (
            krb,
            vec![
                ("kt", support::keytab(&[("a", "R", 18, 1)])),
                ("conf", huge.clone()),
            ],
            "spec.authentication.kerberos.krb5ConfSecretRef.key",
        ),
        (
            "tls: {caSecretRef: {name: s, key: ca.crt}}",
            vec![("ca.crt", huge.clone())],
            "spec.tls.caSecretRef.key",
        ),
    ];
    for (auth, data, field) in cases {
        let data: Vec<String> = data
            .iter()
            .map(|(k, v)| format!("  {k}: {}", support::base64(v)))
            .collect();
        let yaml = format!(
            "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: c, namespace: t}}\nspec:\n  bootstrapServers: ['127.0.0.1:1']\n  topics: {{expression: x}}\n  {auth}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: t}}\ndata:\n{}\n",
            data.join("\n")
        );
        let run = support::check_yaml(&yaml, "json");
        assert_eq!(run.code, 1, "{field}");
        let r = run.row("CredentialsResolved");
        assert_eq!(r["reason"], "InvalidSecretValue", "{field}: {r}");
        assert_eq!(r["field"], field, "{r}");
        assert!(r["message"].as_str().unwrap().contains("1 MiB"), "{r}");
    }
}

#[test]
fn sixty_four_bootstrap_servers_give_one_readable_warning() {
    let env = Env::get();
    // 63 closed ports (bound, then released) and the real broker last.
    let closed: Vec<String> = (0..63)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let mut servers = closed.clone();
    servers.push(env.var("KAFKA_PLAINTEXT").to_string());
    let yaml = format!(
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: c, namespace: t}}\nspec:\n  bootstrapServers: [{}]\n  topics: {{expression: x}}\n",
        servers.join(", ")
    );
    let run = support::check_yaml(&yaml, "json");
    assert_eq!(run.code, 0);
    let r = run.row("BrokersReachable");
    assert_eq!(
        (r["result"].as_str(), r["reason"].as_str()),
        (Some("Warning"), Some("SomeBrokersUnreachable"))
    );
    let message = r["message"].as_str().unwrap();
    assert!(message.starts_with("1 of 64 reachable; "), "{message}");
    assert!(message.ends_with("and 58 more"), "{message}");
    assert!(message.len() < 600, "{} characters", message.len());
    assert_eq!(r["field"], "spec.bootstrapServers[0]");
    assert_eq!(run.row("Authenticated")["result"], "Passed");
    // 65 are refused before any connection, naming the limit.
    servers.push("127.0.0.1:1".into());
    let yaml = yaml.replace(
        &format!("[{}]", servers[..64].join(", ")),
        &format!("[{}]", servers.join(", ")),
    );
    let run = support::check_yaml(&yaml, "json");
    assert_eq!(run.code, 1);
    let spec = run.row("SpecValid");
    assert!(
        spec["message"]
            .as_str()
            .unwrap()
            .contains("TooManyBootstrapServers")
            || spec["message"].as_str().unwrap().contains("64"),
        "{spec}"
    );
}

#[test]
fn a_256_character_regex_over_100000_topic_names() {
    // 256 characters: an alternation of 30 team prefixes and a structured suffix.
    let teams: Vec<String> = (0..30).map(|i| format!("team{i:02}")).collect();
    let mut expression = format!(
        "({})\\.(orders|payments)\\.v[0-9]+(-[a-z]+)?",
        teams.join("|")
    );
    while expression.chars().count() < 256 {
        expression.push_str("|x");
    }
    expression.truncate(256);
    assert_eq!(expression.chars().count(), 256);
    let selector: TopicSelector =
        serde_json::from_value(serde_json::json!({"expression": expression})).unwrap();
    let matcher = kconn::testing::topics::TopicMatcher::new(&selector).unwrap();
    let names: Vec<String> = (0..100_000)
        .map(|i| match i % 4 {
            0 => format!("team{:02}.orders.v{}", i % 30, i % 7),
            1 => format!("team{:02}.payments.v{}-beta", i % 40, i % 5),
            2 => format!("other.team{:02}.orders.v1", i % 30),
            _ => format!("team{:02}.orders.v{}.dlq", i % 30, i),
        })
        .collect();
    let expected = names
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 == 0 || (i % 4 == 1 && i % 40 < 30))
        .count();
    let start = Instant::now();
    let matched = names.iter().filter(|n| matcher.matches(n)).count();
    eprintln!(
        "figure: 256-character regex over 100,000 names: {matched} matched in {:.1?}",
        start.elapsed()
    );
    assert_eq!(matched, expected);
}
