//! `kconn check --offline` and `kconn crd` as a user runs them: the real binary, its exit codes and output.

use std::path::Path;
use std::process::{Command, Output};

fn kconn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(args)
        .output()
        .expect("kconn runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

const HEAD: &str =
    "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {name: c, namespace: n}\n";

#[test]
fn every_example_passes_offline_validation() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = kconn(&["check", "--offline", "-f", examples.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let count = std::fs::read_dir(&examples).unwrap().count();
    assert!(count >= 7, "examples/ holds {count} files");
    assert!(
        stdout.contains(&format!("{count} connections: {count} passed, 0 failed")),
        "{stdout}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn each_bad_input_fails_with_its_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let servers = (0..65)
        .map(|i| format!("b{i}:9092"))
        .collect::<Vec<_>>()
        .join(", ");
    let cases = [
        ("bootstrapServers: []\n  topics: {expression: x}", "spec.bootstrapServers", "BootstrapServersEmpty"),
        (&*format!("bootstrapServers: [{servers}]\n  topics: {{expression: x}}"), "spec.bootstrapServers", "TooManyBootstrapServers"),
        ("bootstrapServers: [kafka]\n  topics: {expression: x}", "spec.bootstrapServers[0]", "InvalidBootstrapServer"),
        ("bootstrapServers: ['a:1', 'kafka:0']\n  topics: {expression: x}", "spec.bootstrapServers[1]", "InvalidBootstrapServer"),
        ("bootstrapServers: ['kafka:70000']\n  topics: {expression: x}", "spec.bootstrapServers[0]", "InvalidBootstrapServer"),
        ("bootstrapServers: ['[::1']\n  topics: {expression: x}", "spec.bootstrapServers[0]", "InvalidBootstrapServer"),
        (&*format!("bootstrapServers: [a:1]\n  topics: {{expression: {}}}", "a".repeat(257)), "spec.topics.expression", "InvalidTopicExpressionLength"),
        ("bootstrapServers: [a:1]\n  topics: {expression: 'orders.('}", "spec.topics.expression", "InvalidTopicExpression"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  authentication: {sasl: {mechanism: PLAIN, secretRef: {name: u}}, kerberos: {principal: p@R, keytabSecretRef: {name: k, key: kt}, krb5ConfSecretRef: {name: k, key: c}}}", "spec.authentication", "ConflictingAuthentication"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  authentication: {sasl: {mechanism: PLAIN}}", "spec.authentication.sasl.secretRef", "RequiredFieldMissing"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  authentication: {kerberos: {keytabSecretRef: {name: k, key: kt}, krb5ConfSecretRef: {name: k, key: c}}}", "spec.authentication.kerberos.principal", "RequiredFieldMissing"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  authentication: {kerberos: {principal: p@R, krb5ConfSecretRef: {name: k, key: c}}}", "spec.authentication.kerberos.keytabSecretRef", "RequiredFieldMissing"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  authentication: {sasl: {mechanism: GSSAPI, secretRef: {name: u}}}", "spec.authentication.sasl.mechanism", "UnsupportedValue"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  producer: {acks: All}", "spec.producer.acks", "UnsupportedValue"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  producer: {compression: brotli}", "spec.producer.compression", "UnsupportedValue"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  role: Sink", "spec.role", "UnsupportedValue"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  models: {refreshAt: '25:00'}", "spec.models.refreshAt", "InvalidRefreshAt"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  models: {timeZone: Europe/Atlantis}", "spec.models.timeZone", "UnknownTimeZone"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  check: {interval: 0s, timeout: 0s}", "spec.check.interval", "InvalidDuration"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  check: {interval: -1m}", "spec.check.interval", "InvalidDuration"),
        ("bootstrapServers: [a:1]\n  topics: {expression: x}\n  check: {interval: 1m, timeout: 5m}", "spec.check.timeout", "TimeoutExceedsInterval"),
    ];
    for (i, (spec, field, reason)) in cases.iter().enumerate() {
        let file = write(
            dir.path(),
            &format!("bad{i}.yaml"),
            &format!("{HEAD}spec:\n  {spec}\n"),
        );
        let out = kconn(&["check", "--offline", "-f", &file, "-o", "json"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{field}: {stdout}\n{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
        let conn = &report["connections"][0];
        assert_eq!(conn["checks"][0]["name"], "SpecValid");
        assert_eq!(conn["checks"][0]["result"], "Failed");
        assert_eq!(conn["checks"][0]["field"], *field, "{stdout}");
        // One problem: its reason is the row's; several: each is listed under `problems`.
        let reasons: Vec<&str> = match conn["problems"].as_array() {
            Some(all) => all
                .iter()
                .filter(|p| p["field"] == *field)
                .map(|p| p["reason"].as_str().unwrap())
                .collect(),
            None => vec![conn["checks"][0]["reason"].as_str().unwrap()],
        };
        assert!(
            reasons.contains(reason),
            "{field}: want {reason}, got {reasons:?}\n{stdout}"
        );
        assert!(conn["checks"][0]["hint"]
            .as_str()
            .is_some_and(|h| !h.is_empty()));
    }
}

#[test]
fn the_table_lists_every_problem_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "c.yaml", &format!("{HEAD}spec:\n  bootstrapServers: [kafka]\n  topics: {{expression: x}}\n  models: {{refreshAt: '7:00'}}\n"));
    let out = kconn(&["check", "--offline", "-f", &file]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    for want in [
        "✗ SpecValid",
        "2 problems",
        "spec.bootstrapServers[0]",
        "fix: add the listener's port, e.g. kafka:9092",
        "spec.models.refreshAt",
        "1 connection: 0 passed, 1 failed",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}

#[test]
fn malformed_yaml_and_missing_files_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.yaml", "apiVersion: v1\nkind: [oops\n");
    let out = kconn(&["check", "--offline", "-f", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("malformed YAML"), "{}", text(&out).1);
    let out = kconn(&["check", "--offline", "-f", "/nonexistent/kconn.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("No such file"), "{}", text(&out).1);
}

#[test]
fn other_kinds_are_noted_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "mixed.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n---\n{HEAD}spec: {{bootstrapServers: ['a:1'], topics: {{expression: x}}}}\n"),
    );
    let out = kconn(&["check", "--offline", "-f", &file]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("note:") && stderr.contains("ignored Deployment web"),
        "{stderr}"
    );
    let only_others = write(
        dir.path(),
        "others.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let out = kconn(&["check", "--offline", "-f", &only_others]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no KafkaConnection at all is bad input"
    );
}

#[test]
fn crd_command_prints_the_committed_crd() {
    let out = kconn(&["crd"]);
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/kafkaconnections.kconn.dev.yaml"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

/// The soft and hard core-file limits of a process, from /proc.
fn core_limits(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))?;
    let mut fields = line["Max core file size".len()..].split_whitespace();
    Some((fields.next()?.to_string(), fields.next()?.to_string()))
}

#[test]
fn kconn_turns_core_dumps_off_for_itself() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    // Started with core dumps allowed (as far as this process may allow them), kconn turns them off
    // before it reads anything: `probe-metadata` waits on its standard input meanwhile.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kconn"));
    cmd.arg("probe-metadata")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    // SAFETY: setrlimit and getrlimit are async-signal-safe and touch only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_CORE, &mut l);
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_CORE, &l);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let limits = loop {
        let limits = core_limits(pid).expect("the child's limits");
        if limits == ("0".into(), "0".into()) || std::time::Instant::now() > deadline {
            break limits;
        }
        std::thread::yield_now();
    };
    // Nothing to do: an empty request ends it.
    drop(child.stdin.take().map(|mut s| s.write_all(b"")));
    let _ = child.wait();
    assert_eq!(
        limits,
        ("0".into(), "0".into()),
        "soft and hard core limits"
    );
}

/// `kconn demo`: librdkafka's in-process cluster does not serve DescribeCluster, DescribeGroups or
/// DescribeConfigs. Its ApiVersions answer says so, and the report is honest and clean: Authorized and
/// ProducerSettings are Skipped as NotSupportedByBroker, with no warning and no request left to time
/// out, and every other check passes or does not apply.
#[test]
fn the_demo_report_is_clean_on_brokers_without_the_admin_requests() {
    let out = kconn(&["demo", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["connections"][0]["checks"].as_array().unwrap();
    let row = |name: &str| {
        let r = rows.iter().find(|r| r["name"] == name).unwrap();
        (r["result"].as_str().unwrap(), r["reason"].as_str().unwrap())
    };
    assert_eq!(row("Authorized"), ("Skipped", "NotSupportedByBroker"));
    assert_eq!(row("ProducerSettings"), ("Skipped", "NotSupportedByBroker"));
    let authorized = rows.iter().find(|r| r["name"] == "Authorized").unwrap();
    let message = authorized["message"].as_str().unwrap();
    assert!(
        message.contains("DescribeGroups") && !message.contains("in time"),
        "{message}"
    );
    for r in rows {
        assert!(
            r["result"] == "Passed"
                || (r["result"] == "Skipped"
                    && ["NotApplicable", "NotSupportedByBroker"]
                        .contains(&r["reason"].as_str().unwrap())),
            "{r}"
        );
    }
}
