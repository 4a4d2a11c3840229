//! `kconn run`: the operator.

use super::{runtime, EXIT_BAD_INPUT, EXIT_OK};

/// `kconn run` arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace; repeat (or separate with commas) for several. Default: every
    /// namespace, which needs cluster-wide read access to Secrets.
    #[arg(long = "namespace", env = "KCONN_NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Watch Secrets (metadata only) to re-test a connection as soon as a Secret it references
    /// changes. With `false`, kconn only reads the referenced Secrets by name (no list or watch
    /// rights needed) and sees a rotation at the connection's next test.
    #[arg(long, env = "KCONN_SECRET_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub secret_watch: bool,
    /// The agent pool this process belongs to.
    #[arg(long, env = "KCONN_AGENT", default_value = "default")]
    pub agent: String,
    /// This process's identity (from the downward API; default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How many connections are tested at the same time.
    #[arg(long, env = "KCONN_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// New connections kconn opens per second to any one broker (its probes and its Kafka clients
    /// alike), across every connection it tests; 0: no limit. Keep it under the brokers' connection
    /// quota (AWS MSK with IAM: 20 per broker per second; Kafka's max.connection.creation.rate).
    #[arg(long, env = "KCONN_BROKER_CONNECTION_RATE", default_value_t = crate::budget::DEFAULT_RATE)]
    pub broker_connection_rate: u32,
    /// How many connections to one cluster (the same bootstrap servers, or cluster id) are tested
    /// at the same time; 0: no limit besides --concurrency.
    #[arg(long, env = "KCONN_CLUSTER_TESTS", default_value_t = crate::budget::DEFAULT_TESTS)]
    pub cluster_tests: u32,
    /// Address of /livez, /readyz and /metrics; port 0 picks a free port (logged).
    #[arg(long, env = "KCONN_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,
    /// How many model refreshes run at the same time.
    #[arg(long, env = "KCONN_REFRESH_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub refresh_concurrency: u16,
    /// Bound on reading the messages of one refresh (e.g. 10m).
    #[arg(long, env = "KCONN_REFRESH_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub refresh_timeout: std::time::Duration,
    /// Namespace of the agent Leases (default: POD_NAMESPACE, else the watched namespace, else
    /// `default`). Every process of every pool must use the same one.
    #[arg(long, env = "KCONN_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long an agent counts as alive without renewing its Lease (renewed every third of it).
    #[arg(long, env = "KCONN_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,
    /// Largest catalog ConfigMap shard, in compressed bytes (tests use small shards).
    #[arg(long, hide = true, default_value_t = crate::models::catalog::MAX_SHARD_BYTES)]
    pub catalog_shard_bytes: usize,
}

/// A positive Go-style duration, e.g. `10m` or `1h30m`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::str::FromStr;
    let d = kube::core::Duration::from_str(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_negative() {
        return Err(format!("{s:?} is negative"));
    }
    let d: std::time::Duration = d.into();
    if d.is_zero() {
        return Err(format!("{s:?} is zero"));
    }
    Ok(d)
}

pub fn run(args: RunArgs) -> u8 {
    // Before any thread starts.
    crate::http::tune_heap();
    let Some(rt) = runtime() else {
        return EXIT_BAD_INPUT;
    };
    let pod = args.pod_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "kconn".into())
    });
    // A killed predecessor (OOM, SIGKILL) in this pod left its private directories, keytabs and
    // all, in the emptyDir; nothing of this process is there yet.
    let swept = crate::process::sweep_private_dirs(&std::env::temp_dir());
    if swept > 0 {
        tracing::info!(
            directories = swept,
            "removed private directories an earlier run left behind"
        );
    }
    crate::budget::configure(crate::budget::Limits {
        rate: args.broker_connection_rate,
        tests: args.cluster_tests,
    });
    rt.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "error: cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"
                );
                return EXIT_BAD_INPUT;
            }
        };
        let http_addr = args.http_addr;
        let lease_namespace = args
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .or_else(|| args.namespaces.first().cloned())
            .unwrap_or_else(|| "default".into());
        let options = crate::controller::Options {
            lease_namespace,
            lease_duration: args.lease_duration,
            namespaces: args.namespaces,
            secret_watch: args.secret_watch,
            agent: args.agent,
            pod,
            http_addr,
            concurrency: args.concurrency,
            refreshes: usize::from(args.refresh_concurrency),
            shard_bytes: args.catalog_shard_bytes,
            refresh_timeout: args.refresh_timeout,
        };
        match crate::controller::run(client, options).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_BAD_INPUT
            }
        }
    })
}
