//! `kconn run` as a child process for the operator tests, and waits on its status.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kconn::api::{KafkaConnection, KafkaConnectionStatus};
use kube::api::Api;

use super::Env;

/// The operator process and its log; killed when the test ends, however it ends, and its log kept
/// among the captures that `scripts/secret-sweep.sh` searches for secrets.
pub struct Operator(pub Child, std::path::PathBuf);

impl Operator {
    /// Spawns `cmd` (a `kconn run`) with its stderr, the log, written to `log`.
    pub fn spawn(cmd: &mut Command, log: &std::path::Path) -> Operator {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Operator(child, log.to_path_buf())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        super::keep_capture("operator", &self.1);
    }
}

/// Starts `kconn run` for `namespace` as pod `kconn-test-pod` of pool `default`, logging to `log`.
pub fn start(namespace: &str, log: &std::path::Path, extra: &[&str]) -> Operator {
    start_agent(namespace, log, "kconn-test-pod", "default", extra)
}

/// Starts `kconn run` for `namespace` as pod `pod` of agent pool `pool`, logging to `log`.
pub fn start_agent(
    namespace: &str,
    log: &std::path::Path,
    pod: &str,
    pool: &str,
    extra: &[&str],
) -> Operator {
    let env = Env::get();
    Operator::spawn(
        Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args([
                "run",
                "--namespace",
                namespace,
                "--agent",
                pool,
                "--http-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("KUBECONFIG", env.var("KUBECONFIG"))
            .env("POD_NAME", pod)
            .env("KCONN_LOG", "info,kconn=debug"),
        log,
    )
}

/// One HTTP GET; returns the status line and the body.
pub fn get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The address the operator logged for its HTTP endpoints.
pub fn http_address(log: &std::path::Path, deadline: Duration) -> String {
    super::wait_for("the operator to log its HTTP address", deadline, || {
        let text = std::fs::read_to_string(log).ok()?;
        let line = text.lines().find(|l| l.contains("serving /livez"))?;
        let addr = line.split("address=").nth(1)?.split_whitespace().next()?;
        Some(addr.trim_matches('"').to_string())
    })
}

/// Polls the status until `pred` holds, or panics after `deadline` with the last status seen.
pub async fn wait_status(
    api: &Api<KafkaConnection>,
    name: &str,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&KafkaConnectionStatus) -> bool,
) -> KafkaConnectionStatus {
    super::wait_until_ok(what, deadline, || async {
        match api.get_status(name).await.map(|c| c.status) {
            Ok(Some(status)) if pred(&status) => Ok(status),
            other => Err(other.map_err(|e| e.to_string())),
        }
    })
    .await
}

pub fn condition<'a>(s: &'a KafkaConnectionStatus, type_: &str) -> Option<(&'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

/// A metric's value from `/metrics` at `addr` (summed over label sets matching `prefix`).
pub fn metric(addr: &str, prefix: &str) -> f64 {
    let (_, body) = get(addr, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}
