//! `cargo bench --bench check`: how long `kconn check` takes as a whole process, next to `kcat -L`
//! over the same listener, and how fast a closed port and a silent address are reported. Needs the
//! test environment (`scripts/test-env.sh up`); prints figures, asserts nothing about speed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Env;

const RUNS: usize = 15;

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn measure(mut f: impl FnMut() -> bool) -> Option<Stats> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        if !f() {
            return None;
        }
        times.push(t.elapsed());
    }
    times.sort();
    Some(Stats {
        median: times[RUNS / 2],
        min: times[0],
        max: times[RUNS - 1],
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn kconn(file: &std::path::Path) -> bool {
    Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "-f", file.to_str().unwrap(), "-o", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.code() == Some(0))
        .unwrap_or(false)
}

fn kcat(args: &[String]) -> bool {
    Command::new("kcat")
        .args(["-L", "-m", "10"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn write(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

fn report(label: &str, kconn: Option<Stats>, kcat: Option<Stats>) {
    match (kconn, kcat) {
        (Some(a), Some(b)) => println!(
            "{label}: kconn check median {} (min {}, max {}); kcat -L median {} (min {}, max {}); ratio {:.2}x",
            ms(a.median),
            ms(a.min),
            ms(a.max),
            ms(b.median),
            ms(b.min),
            ms(b.max),
            a.median.as_secs_f64() / b.median.as_secs_f64()
        ),
        (Some(a), None) => println!("{label}: kconn check median {} (min {}, max {}); kcat -L did not succeed or is not installed", ms(a.median), ms(a.min), ms(a.max)),
        (None, _) => println!("{label}: kconn check did not pass; no figure"),
    }
}

fn main() {
    let env = Env::get();
    let dir = tempfile::tempdir().unwrap();
    let head = "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {name: bench, namespace: bench}\nspec:\n  role: Source\n  topics: {expression: 'test\\..*'}\n";
    println!(
        "kconn check benchmark: {RUNS} runs each, whole processes, {} (release build)",
        std::env::consts::ARCH
    );

    // PLAINTEXT
    let plain = write(
        dir.path(),
        "plain.yaml",
        &format!(
            "{head}  bootstrapServers: ['{}']\n",
            env.var("KAFKA_PLAINTEXT")
        ),
    );
    report(
        "PLAINTEXT",
        measure(|| kconn(&plain)),
        measure(|| kcat(&["-b".into(), env.var("KAFKA_PLAINTEXT").into()])),
    );

    // SASL_SSL. Debian's kcat 1.7.1 (librdkafka 2.0.2) fails SCRAM against this Kafka, so both tools use
    // SASL/PLAIN over the same TLS listener; kconn's SCRAM figure is printed on its own.
    let ca = std::fs::read_to_string(env.tls("ca.crt")).unwrap();
    let secret = |mech: &str| {
        format!(
            "{head}  bootstrapServers: ['{}']\n  tls: {{caSecretRef: {{name: ca, key: ca.crt}}}}\n  authentication: {{sasl: {{mechanism: {mech}, secretRef: {{name: user}}}}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: user, namespace: bench}}\nstringData: {{username: {}, password: {}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: ca, namespace: bench}}\nstringData:\n  ca.crt: {}\n",
            env.var("KAFKA_SASL_SSL"),
            serde_json::to_string(env.var("KAFKA_SASL_USER")).unwrap(),
            serde_json::to_string(env.var("KAFKA_SASL_PASSWORD")).unwrap(),
            serde_json::to_string(&ca).unwrap()
        )
    };
    let sasl_plain = write(dir.path(), "sasl-plain.yaml", &secret("PLAIN"));
    let kcat_args: Vec<String> = [
        "-b",
        env.var("KAFKA_SASL_SSL"),
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=PLAIN",
        "-X",
        &format!("sasl.username={}", env.var("KAFKA_SASL_USER")),
        "-X",
        &format!("sasl.password={}", env.var("KAFKA_SASL_PASSWORD")),
        "-X",
        &format!("ssl.ca.location={}", env.tls("ca.crt")),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    report(
        "SASL_SSL (PLAIN)",
        measure(|| kconn(&sasl_plain)),
        measure(|| kcat(&kcat_args)),
    );
    let sasl_scram = write(dir.path(), "sasl-scram.yaml", &secret("SCRAM-SHA-512"));
    report(
        "SASL_SSL (SCRAM-SHA-512)",
        measure(|| kconn(&sasl_scram)),
        None,
    );

    // A closed port.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let closed_file = write(
        dir.path(),
        "closed.yaml",
        &format!("{head}  bootstrapServers: ['{closed}']\n"),
    );
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "-f", closed_file.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let report_json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let reason = report_json["connections"][0]["checks"][3]["reason"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    println!(
        "closed port: reported in {} (BrokersReachable {reason}, exit {:?})",
        ms(t.elapsed()),
        out.status.code()
    );

    // A silent address: accepts TCP, never answers a Kafka request.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn); // keep it open, say nothing
        }
    });
    let silent_file = write(
        dir.path(),
        "silent.yaml",
        &format!(
            "{head}  bootstrapServers: ['{silent_addr}']\n  check: {{interval: 1m, timeout: 5s}}\n"
        ),
    );
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["check", "-f", silent_file.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let report_json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let rows = report_json["connections"][0]["checks"]
        .as_array()
        .map(|r| r.len())
        .unwrap_or(0);
    let auth = report_json["connections"][0]["checks"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["name"] == "Authenticated"))
        .map(|c| c["reason"].as_str().unwrap_or("?").to_string())
        .unwrap_or_default();
    println!("silent address (check.timeout 5s): reported in {} with all {rows} rows (Authenticated {auth})", ms(t.elapsed()));
}
