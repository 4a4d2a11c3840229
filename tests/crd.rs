//! The generated CRD: committed copy in sync, and its CEL rules enforced as the API server would
//! (client-side, with kube's CEL evaluator; the rules are the same strings the CRD carries).

use kconn::api::{self, KafkaConnection};
use kube::core::cel::validate_cel;

const COMMITTED: &str = include_str!("../crds/kafkaconnections.kconn.dev.yaml");

#[test]
fn committed_crd_matches_the_types() {
    assert!(
        COMMITTED == api::crd_yaml(),
        "crds/kafkaconnections.kconn.dev.yaml is stale: regenerate it with scripts/generate.sh"
    );
}

#[test]
fn the_charts_crd_is_the_generated_one() {
    assert!(
        include_str!("../charts/kconn/crds/kafkaconnections.kconn.dev.yaml") == api::crd_yaml(),
        "charts/kconn/crds/kafkaconnections.kconn.dev.yaml is stale: regenerate it with scripts/generate.sh"
    );
}

#[test]
fn committed_api_reference_matches_the_types() {
    let committed = include_str!("../docs/api-reference.md");
    assert!(
        committed == api::reference::markdown(),
        "docs/api-reference.md is stale: regenerate it with scripts/generate.sh"
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = api::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("kafkaconnections.kconn.dev")
    );
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["kconn".into(), "kc".into()])
    );
    assert_eq!(crd.spec.names.categories, Some(vec!["kafka".into()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let cols: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["Ready", "Reason", "Role", "Topics", "Models", "Age"]);
}

#[test]
fn every_field_has_a_description() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                // metadata, apiVersion and kind are Kubernetes' own; condition fields come from k8s-openapi.
                if sub.get("description").is_none()
                    && !matches!(p.as_str(), ".apiVersion" | ".kind" | ".metadata")
                {
                    missing.push(p.clone());
                }
                walk(&p, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let crd = serde_json::to_value(api::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    walk("", schema, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a doc comment (kubectl explain shows nothing): {missing:?}"
    );
}

fn conn(spec: serde_json::Value) -> KafkaConnection {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
        "metadata": {"name": "c", "namespace": "n"}, "spec": spec
    }))
    .expect("fixture deserializes")
}

fn base() -> serde_json::Value {
    serde_json::json!({"bootstrapServers": ["b1.kafka:9092", "[fd00::1]:9092", "10.0.0.1:1"], "topics": {"expression": "orders\\..*"}})
}

#[test]
fn cel_accepts_a_valid_connection() {
    let mut spec = base();
    spec["authentication"] =
        serde_json::json!({"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "u"}}});
    spec["models"] = serde_json::json!({"refreshAt": "23:59"});
    spec["check"] = serde_json::json!({"interval": "1h30m", "timeout": "90s"});
    validate_cel(&conn(spec)).expect("valid connection passes every CEL rule");
}

#[test]
fn cel_rejects_each_bad_input_with_its_message() {
    let kerberos = serde_json::json!({"principal": "p@R", "keytabSecretRef": {"name": "k", "key": "kt"}, "krb5ConfSecretRef": {"name": "k", "key": "c"}});
    let sasl = serde_json::json!({"mechanism": "PLAIN", "secretRef": {"name": "u"}});
    type Patch = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "host without port",
            Box::new(|s| s["bootstrapServers"] = serde_json::json!(["kafka"])),
            "must be host:port",
        ),
        (
            "port 0",
            Box::new(|s| s["bootstrapServers"] = serde_json::json!(["kafka:0"])),
            "must be host:port",
        ),
        (
            "port 65536",
            Box::new(|s| s["bootstrapServers"] = serde_json::json!(["kafka:65536"])),
            "must be host:port",
        ),
        (
            "unbalanced IPv6",
            Box::new(|s| s["bootstrapServers"] = serde_json::json!(["[::1:9092"])),
            "must be host:port",
        ),
        (
            "sasl and kerberos",
            Box::new(move |s| {
                s["authentication"] =
                    serde_json::json!({"sasl": sasl.clone(), "kerberos": kerberos.clone()})
            }),
            "only one of",
        ),
        (
            "principal with shell syntax",
            Box::new(|s| {
                s["authentication"] = serde_json::json!({"kerberos": {"principal": "p$(id)@R",
                    "keytabSecretRef": {"name": "k", "key": "kt"}, "krb5ConfSecretRef": {"name": "k", "key": "c"}}})
            }),
            "kerberos.principal must be primary[/instance]@REALM",
        ),
        (
            "principal with a second realm",
            Box::new(|s| {
                s["authentication"] = serde_json::json!({"kerberos": {"principal": "p@R@S",
                    "keytabSecretRef": {"name": "k", "key": "kt"}, "krb5ConfSecretRef": {"name": "k", "key": "c"}}})
            }),
            "kerberos.principal must be primary[/instance]@REALM",
        ),
        (
            "empty authentication",
            Box::new(|s| s["authentication"] = serde_json::json!({})),
            "or remove authentication",
        ),
        (
            "refreshAt 25:00",
            Box::new(|s| s["models"] = serde_json::json!({"refreshAt": "25:00"})),
            "HH:MM",
        ),
        (
            "zero interval",
            Box::new(|s| s["check"] = serde_json::json!({"interval": "0s", "timeout": "0s"})),
            "check.interval must be a positive duration",
        ),
        (
            "negative interval",
            Box::new(|s| s["check"] = serde_json::json!({"interval": "-5m", "timeout": "10s"})),
            "check.interval must be a positive duration",
        ),
        (
            "timeout over interval",
            Box::new(|s| s["check"] = serde_json::json!({"interval": "1m", "timeout": "2m"})),
            "must not be longer than check.interval",
        ),
        (
            "bad secret name",
            Box::new(
                |s| s["authentication"] = serde_json::json!({"sasl": {"mechanism": "PLAIN", "secretRef": {"name": "Orders_User"}}}),
            ),
            "must name a Secret",
        ),
        (
            "bad agent name",
            Box::new(|s| s["agent"] = serde_json::json!({"name": "VPC A"})),
            "agent.name must be a DNS label",
        ),
    ];
    for (what, patch, message) in cases {
        let mut spec = base();
        patch(&mut spec);
        let errors = validate_cel(&conn(spec)).expect_err(what);
        assert!(
            errors.iter().any(|e| e.message.contains(message)),
            "{what}: want a rule saying {message:?}, got {errors}"
        );
    }
}

#[test]
fn a_malformed_duration_gets_only_its_own_message() {
    // The timeout-versus-interval rule leaves a field that is no duration to that field's rule.
    let mut spec = base();
    spec["check"] = serde_json::json!({"interval": "5 minutes", "timeout": "10s"});
    let errors = validate_cel(&conn(spec)).expect_err("refused");
    let text = errors.to_string();
    assert!(
        text.contains("check.interval must be a positive duration"),
        "{text}"
    );
    assert!(!text.contains("check.timeout must not be longer"), "{text}");
}
