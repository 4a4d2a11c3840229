//! The Helm chart (charts/kconn) with a real Helm, kubectl and kube-apiserver: `helm lint`, bad values
//! refused naming the value, the Deployment locked down, RBAC equal to the documented Role, every
//! render accepted by the API server's own schema (server dry-run with kubectl's schema validation),
//! and a real `helm install` whose Deployment arguments and ServiceAccount run the operator until
//! `kubectl wait --for=condition=Ready` returns.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kconn::api::KafkaConnection;
use kube::api::{Api, PostParams};
use serde_json::Value;
use support::operator::{self as op, condition, wait_status, Operator};
use support::{unique, Env};

const DEADLINE: Duration = Duration::from_secs(90);

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kconn")
}

/// Helm with its own config, cache and data directories (nothing written under $HOME).
fn helm(args: &[&str]) -> Output {
    let env = Env::get();
    let home = std::env::temp_dir().join("kconn-test-helm");
    Command::new(env.var("HELM"))
        .args(args)
        .env("KUBECONFIG", env.var("KUBECONFIG"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let env = Env::get();
    let mut child = Command::new(env.var("KUBECTL"))
        .args(args)
        .env("KUBECONFIG", env.var("KUBECONFIG"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `helm template` of the chart with `--set` values; the YAML text.
fn template(namespace: &str, sets: &[&str]) -> Result<String, String> {
    let chart = chart();
    let mut args = vec![
        "template",
        "kconn",
        chart.to_str().unwrap(),
        "-n",
        namespace,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = helm(&args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The documents of a multi-document YAML text.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).unwrap();
            (!v.is_null()).then_some(v)
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render"))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lint_passes_and_bad_values_are_refused_naming_the_value() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for sets in [
        vec![],
        vec![
            "watchNamespaces={pipelines,etl}",
            "replicas=3",
            "agent.pool=vpc-a",
        ],
        vec!["clusterWide=true", "secretWatch=false"],
        vec![
            "metrics.serviceMonitor.enabled=true",
            "logFormat=json",
            "extraEnv[0].name=KRB5_TRACE,extraEnv[0].value=/dev/stderr",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        assert!(out.status.success(), "helm lint {sets:?}: {}", text(&out));
    }
    for (set, names) in [
        ("replicas=-1", "/replicas"),
        ("logFormat=xml", "/logFormat"),
        ("agent.pool=Vpc_A", "/agent/pool"),
        ("replica=3", "'replica'"),
        ("watchNamespaces={Team A}", "/watchNamespaces/0"),
        ("watchNamespace=pipelines", "replaced by watchNamespaces"),
        ("clusterWide=true,watchNamespaces={a}", "not both"),
        ("refreshTimeout=ten minutes", "/refreshTimeout"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("serviceAccount.create=false", "serviceAccount.name"),
        (
            "metrics.serviceMonitor.enabled=true,metrics.service.enabled=false",
            "metrics.service.enabled",
        ),
    ] {
        let err = template("ops", &[set]).expect_err(set);
        assert!(
            err.contains(names),
            "--set {set}: the error does not name {names}:\n{err}"
        );
    }
}

/// Every leaf key of values.yaml (dotted), maps and lists counted as leaves.
fn value_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(map)
            if !map.is_empty()
                && prefix != "resources"
                && !prefix.ends_with("SecurityContext")
                && prefix != "securityContext" =>
        {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                value_keys(v, &key, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_value_is_documented_and_in_the_schema() {
    let values: Value = serde_yaml::from_str(include_str!("../charts/kconn/values.yaml")).unwrap();
    let readme = include_str!("../charts/kconn/README.md");
    let schema: Value =
        serde_json::from_str(include_str!("../charts/kconn/values.schema.json")).unwrap();
    let mut keys = Vec::new();
    value_keys(&values, "", &mut keys);
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        assert!(
            readme.contains(&format!("`{key}`")),
            "charts/kconn/README.md does not document `{key}`"
        );
        let mut node = &schema;
        for part in key.split('.') {
            node = &node["properties"][part];
            assert!(!node.is_null(), "values.schema.json has no {key}");
        }
    }
}

#[test]
fn the_deployment_is_locked_down_and_wired_to_the_binary() {
    let docs = documents(&template("ops", &[]).unwrap());
    let deploy = find(&docs, "Deployment", "kconn");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(pod["serviceAccountName"], "kconn");
    // The image follows the chart's appVersion, which follows the crate's version.
    assert_eq!(
        c["image"],
        format!("kconn:{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    let chart_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart_yaml["appVersion"], env!("CARGO_PKG_VERSION"));
    // Probes on the endpoints the binary serves, on the port its --http-addr names.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--http-addr=0.0.0.0:8080"), "{args:?}");
    assert!(args.contains(&"--lease-namespace=ops"), "{args:?}");
    assert!(
        args.contains(&"--namespace=ops"),
        "watches the release's namespace by default: {args:?}"
    );
    // Identity from the downward API; credentials' temp files on a writable in-memory emptyDir.
    let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(field("POD_NAME"), Some("metadata.name".into()));
    assert_eq!(field("POD_NAMESPACE"), Some("metadata.namespace".into()));
    assert!(env
        .iter()
        .any(|e| e["name"] == "TMPDIR" && e["value"] == "/tmp"));
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/tmp");
    assert_eq!(pod["volumes"][0]["emptyDir"]["medium"], "Memory");
    // The binary accepts every argument the chart passes (parsed by clap, rejected before any I/O).
    let mut bad = args.clone();
    bad.push("--no-such-flag");
    let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: unexpected argument '--no-such-flag' found"),
        "the binary refused an argument of the chart: {stderr}"
    );

    // The metrics Service, and the ServiceMonitor selecting it.
    let docs = documents(&template("ops", &["metrics.serviceMonitor.enabled=true"]).unwrap());
    let svc = find(&docs, "Service", "kconn-metrics");
    let sm = find(&docs, "ServiceMonitor", "kconn");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects label {k}"
        );
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        svc["spec"]["selector"], deploy["spec"]["selector"]["matchLabels"],
        "the Service selects the operator's pods"
    );
}

/// The rules of the README's Role, in order.
fn documented_rules() -> Vec<Value> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```yaml\nrules:\n")
        .nth(1)
        .expect("the README shows the Role")
        .split("```")
        .next()
        .unwrap();
    let v: Value = serde_yaml::from_str(&format!("rules:\n{block}")).unwrap();
    v["rules"].as_array().unwrap().clone()
}

#[test]
fn rbac_is_the_documented_role_and_no_more() {
    let mut documented = documented_rules();
    let leases = documented.pop().unwrap();
    assert_eq!(leases["resources"], serde_json::json!(["leases"]));

    // The default: the release's own namespace, through a Role; no cluster-scoped object at all.
    let docs = documents(&template("ops", &[]).unwrap());
    let k = kinds(&docs);
    assert!(!k.iter().any(|k| k.starts_with("Cluster")), "{k:?}");
    assert_eq!(find(&docs, "Role", "kconn")["metadata"]["namespace"], "ops");
    assert_eq!(
        find(&docs, "Role", "kconn")["rules"],
        Value::Array(documented.clone())
    );
    assert!(args_of(&docs).contains(&"--namespace=ops".into()));

    // clusterWide: a ClusterRole with the watch rules, the Lease rules in the release's namespace.
    let docs = documents(&template("ops", &["clusterWide=true"]).unwrap());
    assert_eq!(
        find(&docs, "ClusterRole", "kconn")["rules"],
        Value::Array(documented.clone())
    );
    let agents = find(&docs, "Role", "kconn-agents");
    assert_eq!(agents["metadata"]["namespace"], "ops");
    assert_eq!(agents["rules"], Value::Array(vec![leases.clone()]));
    let binding = find(&docs, "ClusterRoleBinding", "kconn");
    assert_eq!(binding["subjects"][0]["name"], "kconn");
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
    assert!(!args_of(&docs)
        .iter()
        .any(|a| a.as_str().unwrap().starts_with("--namespace")));

    // Without the Secret watch: Secrets only by name.
    let docs = documents(&template("ops", &["secretWatch=false"]).unwrap());
    let secrets = find(&docs, "Role", "kconn")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"] == serde_json::json!(["secrets"]))
        .unwrap()
        .clone();
    assert_eq!(secrets["verbs"], serde_json::json!(["get"]));
    assert!(args_of(&docs).contains(&"--secret-watch=false".into()));

    // Without bindings: no write on Secrets at all.
    let docs = documents(&template("ops", &["bindings=false"]).unwrap());
    let without: Vec<Value> = documented
        .iter()
        .filter(|r| {
            r["verbs"] != serde_json::json!(["create", "patch", "delete"])
                || r["resources"] != serde_json::json!(["secrets"])
        })
        .cloned()
        .collect();
    assert_eq!(without.len(), documented.len() - 1);
    assert_eq!(find(&docs, "Role", "kconn")["rules"], Value::Array(without));

    // Two namespaces: a Role and a RoleBinding in each, and nothing cluster-scoped.
    let docs = documents(
        &template(
            "ops",
            &[
                "watchNamespaces={pipelines,etl}",
                "agent.leaseNamespace=agents",
            ],
        )
        .unwrap(),
    );
    let k = kinds(&docs);
    assert!(!k.iter().any(|k| k.starts_with("Cluster")), "{k:?}");
    for ns in ["pipelines", "etl"] {
        let role = docs
            .iter()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(role["rules"], Value::Array(documented.clone()));
        assert!(docs
            .iter()
            .any(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns));
    }
    assert_eq!(
        find(&docs, "Role", "kconn-agents")["metadata"]["namespace"],
        "agents"
    );
    let args = args_of(&docs);
    assert!(args.contains(&"--namespace=pipelines,etl".into()));
    assert!(args.contains(&"--lease-namespace=agents".into()));

    // No wildcards anywhere.
    for d in &docs {
        for rule in d["rules"].as_array().into_iter().flatten() {
            for key in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[key].as_array().unwrap().contains(&"*".into()),
                    "{rule}"
                );
            }
        }
    }
}

/// `kubectl auth can-i VERB RESOURCE[/SUBRESOURCE] -n NS --as SA`, as the API server answers it.
fn can_i(verb: &str, resource: &str, ns: &str, sa: &str) -> String {
    let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let sub = format!("--subresource={sub}");
    let mut args = vec!["auth", "can-i", verb, resource, "-n", ns, "--as", sa];
    if sub != "--subresource=" {
        args.push(&sub);
    }
    let out = kubectl(&args, None);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "can-i {verb} {resource} -n {ns}: {}",
        text(&out)
    );
    answer
}

#[tokio::test]
async fn every_render_mode_grants_its_namespaces_and_no_more() {
    let env = Env::get();
    let admin = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    let ops = support::namespace(&admin).await;
    let a = support::namespace(&admin).await;
    let b = support::namespace(&admin).await;
    let (ops, a, b) = (ops.as_str(), a.as_str(), b.as_str());
    let two = format!("watchNamespaces={{{a},{b}}}");
    let one = format!("watchNamespaces={{{a}}}");
    type Row<'a> = (&'a str, &'a str, &'a str, &'a str);
    let modes: Vec<(Vec<&str>, Vec<Row>)> = vec![
        // The default: the release's namespace only.
        (
            vec![],
            vec![
                ("get", "secrets", ops, "yes"),
                ("watch", "secrets", ops, "yes"),
                ("delete", "configmaps", ops, "yes"),
                ("get", "secrets", a, "no"),
                ("list", "secrets", "kube-system", "no"),
                ("delete", "configmaps", "kube-system", "no"),
            ],
        ),
        // A list: each of them, and not the release's own.
        (
            vec![two.as_str()],
            vec![
                ("get", "secrets", a, "yes"),
                ("get", "secrets", b, "yes"),
                ("delete", "configmaps", b, "yes"),
                ("patch", "kafkaconnections.kconn.dev/status", a, "yes"),
                ("get", "secrets", ops, "no"),
                ("delete", "configmaps", ops, "no"),
                ("list", "secrets", "kube-system", "no"),
                ("delete", "configmaps", "kube-system", "no"),
            ],
        ),
        // No Secret watch and no bindings: Secrets by name only, never written.
        (
            vec![one.as_str(), "secretWatch=false", "bindings=false"],
            vec![
                ("get", "secrets", a, "yes"),
                ("list", "secrets", a, "no"),
                ("watch", "secrets", a, "no"),
                ("create", "secrets", a, "no"),
                ("patch", "secrets", a, "no"),
                ("get", "secrets", b, "no"),
            ],
        ),
        // Cluster-wide, chosen explicitly: every namespace, and still nothing more than the Role.
        (
            vec!["clusterWide=true"],
            vec![
                ("get", "secrets", "kube-system", "yes"),
                ("delete", "configmaps", "kube-system", "yes"),
                ("patch", "secrets", a, "yes"),
                ("update", "secrets", a, "no"),
                ("update", "kafkaconnections.kconn.dev", a, "no"),
                ("create", "leases.coordination.k8s.io", a, "no"),
            ],
        ),
    ];
    for (i, (sets, table)) in modes.into_iter().enumerate() {
        // Unique per run: a ClusterRole a failed run left behind must not stop this one.
        let release = format!("kconn-rbac-{i}-{}", std::process::id());
        let mut args = vec!["install", &release, chart_path(), "-n", ops];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm install {sets:?}: {}",
            text(&out)
        );
        let sa = format!("system:serviceaccount:{ops}:{release}");
        for (verb, resource, ns, expected) in table {
            assert_eq!(
                can_i(verb, resource, ns, &sa),
                expected,
                "{sets:?}: can-i {verb} {resource} -n {ns}"
            );
        }
        let out = helm(&["uninstall", &release, "-n", ops]);
        assert!(out.status.success(), "helm uninstall: {}", text(&out));
    }
}

fn chart_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| chart().to_string_lossy().into_owned())
}

/// The kconn container's arguments in a render.
fn args_of(docs: &[Value]) -> Vec<Value> {
    find(docs, "Deployment", "kconn")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .clone()
}

/// The test kubeconfig's admin context, acting as the chart's ServiceAccount (impersonation).
fn kubeconfig_as(dir: &Path, user: &str) -> PathBuf {
    let env = Env::get();
    let mut cfg: Value =
        serde_yaml::from_str(&std::fs::read_to_string(env.var("KUBECONFIG")).unwrap()).unwrap();
    let admin = env.var("KUBE_CONTEXT_ADMIN");
    cfg["current-context"] = admin.into();
    let user_name = cfg["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == admin)
        .unwrap()["context"]["user"]
        .clone();
    for u in cfg["users"].as_array_mut().unwrap() {
        if u["name"] == user_name {
            u["user"]["as"] = user.into();
        }
    }
    let path = dir.join("kubeconfig-sa");
    std::fs::write(&path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn renders_are_accepted_by_the_api_server() {
    let env = Env::get();
    let admin = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    let ops = support::namespace(&admin).await;
    let watched = support::namespace(&admin).await;
    for sets in [
        vec![],
        vec![
            format!("watchNamespaces={{{watched}}}"),
            "replicas=3".into(),
            "logFormat=json".into(),
            "extraEnv[0].name=KRB5_TRACE,extraEnv[0].value=/dev/stderr".into(),
            "podAnnotations.team=data".into(),
            "priorityClassName=".into(),
        ],
    ] {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let yaml = template(&ops, &sets).unwrap();
        let out = kubectl(
            &["apply", "--dry-run=server", "--validate=true", "-f", "-"],
            Some(&yaml),
        );
        assert!(out.status.success(), "{sets:?}: {}", text(&out));
        let created = String::from_utf8_lossy(&out.stdout);
        assert!(
            created.contains("deployment.apps/kconn created (server dry run)"),
            "{created}"
        );
    }
    // The validation is real: a misspelt field in extraEnv is refused by the server's schema.
    let yaml = template(&ops, &["extraEnv[0].name=A,extraEnv[0].vaule=b"]).unwrap();
    let out = kubectl(
        &["apply", "--dry-run=server", "--validate=true", "-f", "-"],
        Some(&yaml),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vaule"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn an_installed_chart_runs_the_operator_under_its_own_rbac() {
    let env = Env::get();
    let admin = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&admin).await;
    let ops = support::namespace(&admin).await;
    let watched = support::namespace(&admin).await;
    let pool = unique("chart").replace('.', "-");
    let release = "kconn";
    let dir = tempfile::tempdir().unwrap();

    let out = helm(&[
        "install",
        release,
        chart().to_str().unwrap(),
        "-n",
        &ops,
        "--set",
        &format!("watchNamespaces={{{watched}}},agent.pool={pool},agent.leaseDuration=4s"),
    ]);
    assert!(out.status.success(), "helm install: {}", text(&out));
    let out = helm(&["get", "manifest", release, "-n", &ops]);
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let deploy = find(&docs, "Deployment", "kconn");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let sa = format!(
        "system:serviceaccount:{ops}:{}",
        deploy["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap()
    );

    // Least privilege, as the API server judges it.
    for (verb, resource, ns, expected) in [
        (
            "watch",
            "kafkaconnections.kconn.dev",
            watched.as_str(),
            "yes",
        ),
        (
            "patch",
            "kafkaconnections.kconn.dev/status",
            watched.as_str(),
            "yes",
        ),
        ("get", "secrets", watched.as_str(), "yes"),
        ("create", "configmaps", watched.as_str(), "yes"),
        ("create", "leases.coordination.k8s.io", ops.as_str(), "yes"),
        ("get", "secrets", ops.as_str(), "no"),
        ("list", "secrets", "kube-system", "no"),
        (
            "update",
            "kafkaconnections.kconn.dev",
            watched.as_str(),
            "no",
        ),
        ("patch", "secrets", watched.as_str(), "yes"),
        ("update", "secrets", watched.as_str(), "no"),
        ("patch", "secrets", ops.as_str(), "no"),
        (
            "create",
            "leases.coordination.k8s.io",
            watched.as_str(),
            "no",
        ),
        ("get", "configmaps", "kube-system", "no"),
    ] {
        assert_eq!(
            can_i(verb, resource, ns, &sa),
            expected,
            "can-i {verb} {resource} -n {ns}"
        );
    }

    // The operator, started with the Deployment's own arguments and environment, as its ServiceAccount.
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("--http-addr=0.0.0.0:8080", "--http-addr=127.0.0.1:0")
        })
        .collect();
    assert!(args.contains(&format!("--namespace={watched}")), "{args:?}");
    let pod_name = format!("{release}-5f7c9d-x2x7q");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kconn"));
    cmd.args(&args);
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => cmd.env(name, &pod_name),
            Some("metadata.namespace") => cmd.env(name, &ops),
            Some(other) => panic!("unexpected fieldRef {other}"),
            None if name == "TMPDIR" => cmd.env(name, dir.path()),
            None => cmd.env(name, e["value"].as_str().unwrap()),
        };
    }
    let log = dir.path().join("operator.log");
    let _operator = Operator::spawn(cmd.env("KUBECONFIG", kubeconfig_as(dir.path(), &sa)), &log);
    let addr = op::http_address(&log, DEADLINE);
    support::wait_for("/readyz to answer 200", DEADLINE, || {
        (op::get(&addr, "/readyz").0.contains("200")).then_some(())
    });
    assert!(op::get(&addr, "/livez").0.contains("200"));

    // A connection with a topic holding a JSON message: tested, and its catalog written.
    let topic = unique("test.chart");
    support::create_topic(env.var("KAFKA_PLAINTEXT"), &topic, 1).await;
    support::produce(
        env.var("KAFKA_PLAINTEXT"),
        &topic,
        0,
        1_700_000_000_000,
        "k",
        br#"{"id": 1}"#,
    )
    .await;
    let conns: Api<KafkaConnection> = Api::namespaced(admin.clone(), &watched);
    let good: KafkaConnection = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orders"},
        "spec": {"bootstrapServers": [env.var("KAFKA_PLAINTEXT")], "topics": {"expression": regex_escape(&topic)}}
    }))
    .unwrap();
    conns.create(&PostParams::default(), &good).await.unwrap();
    let out = kubectl(
        &[
            "wait",
            "kafkaconnection/orders",
            "-n",
            &watched,
            "--for=condition=Ready",
            "--timeout=90s",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "kubectl wait: {}\n{}",
        text(&out),
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    let status = wait_status(&conns, "orders", "the catalog", DEADLINE, |s| {
        condition(s, "ModelsLoaded") == Some(("True", "CatalogLoaded"))
    })
    .await;
    let tested_by = status.tested_by.expect("testedBy");
    assert_eq!(
        (tested_by.agent.as_str(), tested_by.pod.as_str()),
        (pool.as_str(), pod_name.as_str())
    );
    assert_eq!(status.models.expect("status.models").count, 1);
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &ops);
    leases
        .get(&format!("kconn-agent-{pod_name}"))
        .await
        .expect("the agent Lease in the release namespace");

    // A Secret in another namespace cannot be referenced: the API has no such field. kubectl (strict
    // field validation) refuses it; forced past that (`--validate=false`, the field pruned), the Secret
    // is looked up in the connection's own namespace and reported missing there, with a hint saying
    // so. `kconn check --offline` refuses the field as UnknownField.
    let cross = format!(
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {{name: cross, namespace: {watched}}}\nspec:\n  bootstrapServers: ['{}']\n  topics: {{expression: x}}\n  authentication: {{sasl: {{mechanism: PLAIN, secretRef: {{name: s, namespace: {ops}}}}}}}\n",
        env.var("KAFKA_SASL_PLAINTEXT")
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&cross));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown field \"spec.authentication.sasl.secretRef.namespace\""),
        "{}",
        text(&out)
    );
    let out = kubectl(&["apply", "--validate=false", "-f", "-"], Some(&cross));
    assert!(out.status.success(), "{}", text(&out));
    let status = wait_status(
        &conns,
        "cross",
        "the cross-namespace reference",
        DEADLINE,
        |s| s.last_test_time.is_some(),
    )
    .await;
    let row = status
        .checks
        .iter()
        .find(|c| c.name == "CredentialsResolved")
        .unwrap();
    assert_eq!(row.reason, "SecretNotFound", "{row:?}");
    assert_eq!(
        row.field.as_deref(),
        Some("spec.authentication.sasl.secretRef.name")
    );
    assert!(row.message.contains("connection's namespace"), "{row:?}");
    assert_eq!(condition(&status, "Stalled").map(|c| c.0), Some("True"));
    let dir2 = tempfile::tempdir().unwrap();
    let file = dir2.path().join("cross.yaml");
    std::fs::write(&file, &cross).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "--offline", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("UnknownField")
            && stdout.contains("secretRef.namespace")
            && stdout.contains("own namespace"),
        "{stdout}"
    );

    // kubectl wait on a connection that cannot work: Ready=false is met, Ready is not.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bad: KafkaConnection = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "closed"},
        "spec": {"bootstrapServers": [closed.to_string()], "topics": {"expression": "x"}}
    }))
    .unwrap();
    conns.create(&PostParams::default(), &bad).await.unwrap();
    let out = kubectl(
        &[
            "wait",
            "kc/closed",
            "-n",
            &watched,
            "--for=condition=Ready=false",
            "--timeout=90s",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl(
        &[
            "wait",
            "kc/closed",
            "-n",
            &watched,
            "--for=condition=Ready",
            "--timeout=2s",
        ],
        None,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{}",
        text(&out)
    );

    // Upgrade, then uninstall: the RBAC goes, the CRD and the connections stay.
    let out = helm(&[
        "upgrade",
        release,
        chart().to_str().unwrap(),
        "-n",
        &ops,
        "--reuse-values",
        "--set",
        "replicas=2",
    ]);
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    let out = helm(&["uninstall", release, "-n", &ops]);
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    let out = kubectl(
        &[
            "auth",
            "can-i",
            "watch",
            "kafkaconnections.kconn.dev",
            "-n",
            &watched,
            "--as",
            &sa,
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    assert!(
        conns.get("orders").await.is_ok(),
        "uninstall kept the connection"
    );
    let out = kubectl(&["get", "crd", "kafkaconnections.kconn.dev"], None);
    assert!(out.status.success(), "uninstall kept the CRD");
}

/// A regex matching exactly `s`.
fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}
