//! Kafka requests that need Kerberos run in a child `kconn` process: the GSSAPI library reads its
//! credential cache and configuration from process-wide environment variables, so each connection gets
//! a process whose environment names only its own files. The request (which may hold a TLS key) goes
//! over stdin, never through arguments or the environment; the answer comes back as JSON on stdout.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{fetch, ClientSettings, ClusterView, KafkaFailure, ProbeRequest, TlsMaterial};
use crate::kerberos::{KerberosEnv, KerberosMaterial};
use crate::secrets::SecretBytes;

/// The most the parent reads of a child's answer (the models of a large catalog; more is cut and
/// then fails to parse, reported as no answer).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "probe-metadata";

/// What the child samples for a Kerberos connection's models.
#[derive(Serialize, Deserialize)]
pub struct SampleRequest {
    /// The topics, with their partition counts.
    pub topics: Vec<super::Topic>,
    /// Newest messages per topic.
    pub per_topic: usize,
    /// `consumer.ignoreNonJsonMessages`.
    pub ignore_non_json: bool,
    /// Whether the brokers answered admin requests in the test.
    pub admin_answers: bool,
}

/// What the child does.
#[derive(Serialize, Deserialize)]
pub enum Work {
    /// The connection test's Kafka session.
    Probe(ProbeRequest),
    /// Sample topics and build their models.
    Sample(SampleRequest),
}

#[derive(Serialize, Deserialize)]
struct Request {
    work: Work,
    tls: bool,
    bootstrap: Vec<String>,
    ca_pem: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    server_name: Option<String>,
    principal: String,
    service_name: String,
    env: KerberosEnv,
    timeout_ms: u64,
    /// The schema registry, for the models (its password and key travel over stdin like the rest).
    #[serde(default)]
    registry: Option<Registry>,
}

#[derive(Serialize, Deserialize)]
struct Registry {
    urls: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    ca_pem: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
}

impl Registry {
    fn of(m: &super::RegistryMaterial) -> Self {
        let text = |b: &SecretBytes| String::from_utf8_lossy(b.expose()).into_owned();
        Registry {
            urls: m.urls.iter().map(|u| u.url()).collect(),
            user: m.basic.as_ref().map(|(u, _)| text(u)),
            password: m.basic.as_ref().map(|(_, p)| text(p)),
            ca_pem: m.tls.ca_pem.clone(),
            client_cert: m.tls.client.as_ref().map(|(c, _)| c.clone()),
            client_key: m.tls.client.as_ref().map(|(_, k)| text(k)),
        }
    }

    fn material(self) -> super::RegistryMaterial {
        let secret = |s: String| SecretBytes::new(s.into_bytes());
        super::RegistryMaterial {
            urls: self
                .urls
                .iter()
                .filter_map(|u| crate::web::Url::parse(u).ok())
                .collect(),
            basic: self
                .user
                .zip(self.password)
                .map(|(u, p)| (secret(u), secret(p))),
            tls: TlsMaterial {
                ca_pem: self.ca_pem,
                client: self.client_cert.zip(self.client_key.map(secret)),
                server_name: None,
            },
        }
    }
}

/// Runs the session of a Kerberos connection in a child process.
pub async fn in_child(
    settings: &ClientSettings,
    probe: &ProbeRequest,
    timeout: Duration,
) -> Result<ClusterView, KafkaFailure> {
    run_child(settings, Work::Probe(probe.clone()), timeout).await
}

/// Runs `work` for a Kerberos connection in a child process and returns its answer.
pub async fn run_child<T: serde::de::DeserializeOwned>(
    settings: &ClientSettings,
    work: Work,
    timeout: Duration,
) -> Result<T, KafkaFailure> {
    let (Some(krb), Some(env)) = (&settings.kerberos, &settings.kerberos_env) else {
        return Err(KafkaFailure::Other(
            "Kerberos settings are incomplete".into(),
        ));
    };
    let tls = settings.tls.clone().unwrap_or_default();
    let request = Request {
        work,
        tls: settings.tls.is_some(),
        bootstrap: settings.bootstrap.clone(),
        ca_pem: tls.ca_pem.clone(),
        client_cert: tls.client.as_ref().map(|(c, _)| c.clone()),
        client_key: tls
            .client
            .as_ref()
            .map(|(_, k)| String::from_utf8_lossy(k.expose()).into_owned()),
        server_name: tls.server_name.clone(),
        principal: krb.principal.clone(),
        service_name: krb.service_name.clone(),
        env: env.clone(),
        timeout_ms: timeout.as_millis() as u64,
        registry: settings.registry.as_ref().map(Registry::of),
    };
    let body = serde_json::to_vec(&request).map_err(|e| KafkaFailure::Other(e.to_string()))?;
    let exe = std::env::current_exe()
        .map_err(|e| KafkaFailure::Other(format!("cannot find the kconn executable: {e}")))?;
    let mut child = tokio::process::Command::new(exe)
        .arg(SUBCOMMAND)
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "TMPDIR" || k == "HOME"))
        .envs(env.vars())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| KafkaFailure::Other(format!("cannot start the Kerberos probe: {e}")))?;
    let run = async {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(&body).await?;
        drop(stdin);
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut out)
            .await?;
        child.wait().await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(timeout + Duration::from_secs(2), run).await {
        Err(_) => Err(KafkaFailure::Timeout(timeout)),
        Ok(Err(e)) => Err(KafkaFailure::Other(format!(
            "the Kerberos probe failed: {e}"
        ))),
        Ok(Ok(out)) => {
            serde_json::from_slice::<Result<T, KafkaFailure>>(&out).unwrap_or_else(|_| {
                Err(KafkaFailure::Other(
                    "the Kerberos probe gave no answer".into(),
                ))
            })
        }
    }
}

/// The child's side: reads the request from stdin, answers on stdout. Returns the exit code. A
/// Probe is this module's own work; a Sample is handed to `sample` (model building lives above the
/// Kafka client layer).
pub fn child_main<S: Serialize>(
    sample: impl FnOnce(&super::Session, &SampleRequest, Duration) -> S,
) -> u8 {
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return 2;
    }
    let Ok(req) = serde_json::from_slice::<Request>(&input) else {
        return 2;
    };
    let tls = req.tls.then(|| TlsMaterial {
        ca_pem: req.ca_pem.clone(),
        client: req.client_cert.clone().zip(
            req.client_key
                .clone()
                .map(|k| SecretBytes::new(k.into_bytes())),
        ),
        server_name: req.server_name.clone(),
    });
    let settings = ClientSettings {
        bootstrap: req.bootstrap,
        sasl: None,
        tls,
        kerberos: Some(KerberosMaterial {
            principal: req.principal,
            service_name: req.service_name,
            keytab: SecretBytes::new(Vec::new()),
            krb5_conf: String::new(),
        }),
        kerberos_env: Some(req.env),
        oauth: None,
        registry: req.registry.map(Registry::material),
    };
    let timeout = Duration::from_millis(req.timeout_ms);
    let mut stdout = std::io::stdout().lock();
    let written = match req.work {
        Work::Sample(request) => {
            let session = super::Session {
                settings,
                topics: request.topics.clone(),
                admin_answers: request.admin_answers,
                kerberos_files: None,
            };
            serde_json::to_writer(&mut stdout, &sample(&session, &request, timeout))
        }
        Work::Probe(probe) => {
            let result = fetch(
                settings.client_config(timeout),
                &probe,
                &settings.redactor(),
                timeout,
            );
            serde_json::to_writer(&mut stdout, &result)
        }
    };
    match written {
        Ok(()) => {
            let _ = stdout.flush();
            0
        }
        Err(_) => 2,
    }
}
