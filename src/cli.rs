//! Command line: `kconn run | check | demo | crd`. Parsing and dispatch only; each command's work lives
//! in its own module.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};

use crate::kafka::RdKafka;
use crate::secrets::SecretStore;
use crate::{api, checks, manifest, models, output, validate};

/// kconn: declarative, continuously tested Kafka connections for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "kconn", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KCONN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,kconn=debug`).
    #[arg(long, global = true, default_value = "info", env = "KCONN_LOG")]
    pub log: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: watch KafkaConnections and keep them tested.
    Run(RunArgs),
    /// Test connections from manifests (KafkaConnection and Secret YAML), without an operator.
    Check(CheckArgs),
    /// Start an in-process Kafka cluster and show a full connection test against it.
    Demo(DemoArgs),
    /// Print the model catalog the operator keeps for a KafkaConnection (its topics and the schema
    /// of their messages), read from the cluster.
    Models(ModelsArgs),
    /// Print the KafkaConnection CustomResourceDefinition (the only source of crds/).
    Crd {
        /// Print the API reference (Markdown, docs/api-reference.md) instead.
        #[arg(long)]
        reference: bool,
    },
    /// Internal: one Kerberos connection's Kafka request, in a process of its own.
    #[command(name = "probe-metadata", hide = true)]
    ProbeMetadata,
}

/// `kconn check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest files or directories (multi-document YAML or JSON); `-` reads stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Validate only, with no network: for pre-merge CI of GitOps repositories.
    #[arg(long)]
    pub offline: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = output::Format::Table)]
    pub output: output::Format,
    /// Also sample the matched topics and print their models (the schema of their messages).
    #[arg(long, conflicts_with = "offline")]
    pub models: bool,
    /// Namespace for manifests that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Read the referenced Secrets from this kubeconfig context (KUBECONFIG or ~/.kube/config) instead
    /// of from the manifests.
    #[arg(long, value_name = "CONTEXT", conflicts_with = "offline")]
    pub context: Option<String>,
}

/// `kconn models` arguments.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// The KafkaConnection.
    pub name: String,
    /// Its namespace (default: the context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Only this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Output format; json and yaml carry each model's full JSON Schema.
    #[arg(short = 'o', long, value_enum, default_value_t = output::Format::Table)]
    pub output: output::Format,
}

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

/// `kconn demo` arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the in-process cluster running (until Ctrl-C) and print its bootstrap address, so that
    /// `kconn check` can be pointed at it.
    #[arg(long)]
    pub hold: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = output::Format::Table)]
    pub output: output::Format,
}

pub use crate::commands::{runtime, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format, &cli.log);
    // Before any credential is read: no core file may ever hold one (children inherit the limit).
    if let Err(e) = crate::process::no_core_dumps() {
        tracing::warn!(error = %e, "cannot turn core dumps off");
    }
    let code = match cli.command {
        Command::Crd { reference } => {
            print!(
                "{}",
                if reference {
                    api::reference::markdown()
                } else {
                    api::crd_yaml()
                }
            );
            EXIT_OK
        }
        Command::Check(args) => check(&args),
        Command::Run(args) => run_operator(args),
        Command::ProbeMetadata if !crate::process::die_with_parent() => EXIT_BAD_INPUT,
        Command::ProbeMetadata => crate::commands::child(),
        Command::Demo(args) => crate::demo::run(args.hold, args.output),
        Command::Models(args) => show_models(&args),
    };
    ExitCode::from(code)
}

fn run_operator(args: RunArgs) -> u8 {
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

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);

    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `kconn check`: every KafkaConnection in the inputs; `--offline` validates only, without network.
fn check(args: &CheckArgs) -> u8 {
    let manifests = manifest::load(&args.files, &args.namespace);
    for note in &manifests.notes {
        eprintln!("note: {note}");
    }
    for error in &manifests.errors {
        eprintln!("error: {error}");
    }
    let report = if args.offline {
        offline_report(&manifests)
    } else {
        match runtime() {
            Some(rt) => match rt.block_on(online_report(
                &manifests,
                &args.namespace,
                args.context.as_deref(),
                args.models,
            )) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_BAD_INPUT;
                }
            },
            None => return EXIT_BAD_INPUT,
        }
    };
    if let Err(e) = output::print(&report, args.output) {
        eprintln!("error: cannot write the report: {e}");
        return EXIT_BAD_INPUT;
    }
    exit_code(&manifests, &report)
}

/// 2 for unreadable input or no connection at all, 1 when a check failed, else 0.
pub fn exit_code(manifests: &manifest::Manifests, report: &output::Report) -> u8 {
    if !manifests.errors.is_empty() {
        EXIT_BAD_INPUT
    } else if report.connections.is_empty() {
        eprintln!(
            "error: no KafkaConnection (apiVersion {}) found in the input",
            api::API_VERSION
        );
        EXIT_BAD_INPUT
    } else if report
        .connections
        .iter()
        .any(output::ConnectionReport::failed)
    {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn problems_of(doc: &manifest::ConnectionDoc) -> Vec<validate::Problem> {
    let mut problems = doc.shape_problems.clone();
    if let Some(conn) = &doc.object {
        problems.extend(validate::validate(&conn.spec).err().unwrap_or_default());
    }
    problems
}

/// The offline report: SpecValid for each connection, with every problem listed.
pub fn offline_report(manifests: &manifest::Manifests) -> output::Report {
    let connections = manifests
        .connections
        .iter()
        .map(|doc| {
            let started = Instant::now();
            let problems = problems_of(doc);
            let elapsed = started.elapsed().as_millis() as u64;
            output::ConnectionReport {
                name: doc.name.clone(),
                namespace: doc.namespace.clone(),
                source: doc.source.to_string(),
                checks: vec![checks::spec_valid(&problems, elapsed)],
                problems,
                cluster: None,
                topics: None,
                models: Vec::new(),
                models_error: None,
            }
        })
        .collect();
    output::Report { connections }
}

/// The full test of every connection, all connections in parallel; Secrets come from the manifests.
pub async fn online_report(
    manifests: &manifest::Manifests,
    default_namespace: &str,
    context: Option<&str>,
    with_models: bool,
) -> Result<output::Report, String> {
    let secrets: Vec<_> = manifests.secrets.iter().map(|(_, s)| s).collect();
    let mut stores = Vec::with_capacity(manifests.connections.len());
    let client = match context {
        Some(context) => Some(kube_client(Some(context)).await?),
        None => None,
    };
    for doc in &manifests.connections {
        stores.push(match (&client, &doc.object) {
            (Some(client), Some(conn)) => {
                SecretStore::fetch(client, &doc.namespace, &conn.spec.secret_names())
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot read the Secrets of {}/{}: {e}",
                            doc.namespace, doc.name
                        )
                    })?
            }
            _ => SecretStore::for_namespace(
                secrets.iter().copied(),
                &doc.namespace,
                default_namespace,
            ),
        });
    }
    let tests = manifests
        .connections
        .iter()
        .zip(stores)
        .map(|(doc, store)| async move {
            let problems = problems_of(doc);
            let report = match &doc.object {
                Some(conn) => {
                    let input = checks::TestInput {
                        spec: &conn.spec,
                        valid: &validate::outcome(&conn.spec, &doc.shape_problems),
                        secrets: &store,
                        now: std::time::SystemTime::now(),
                        group_id: checks::group_id(&conn.spec, &doc.namespace, &doc.name),
                    };

                    checks::run(&input, &RdKafka).await
                }
                None => checks::TestReport {
                    checks: vec![checks::spec_valid(&problems, 0)],
                    ..Default::default()
                },
            };
            let (models, models_error) = match (&doc.object, &report.session) {
                (Some(conn), Some(session)) if with_models => {
                    models::report::sample_models(conn, session.clone()).await
                }
                (_, None) if with_models => (
                    Vec::new(),
                    Some("the test did not reach the topics".to_string()),
                ),
                _ => (Vec::new(), None),
            };
            output::ConnectionReport {
                name: doc.name.clone(),
                namespace: doc.namespace.clone(),
                source: doc.source.to_string(),
                checks: report.checks,
                problems,
                cluster: report.cluster,
                topics: report.topics,
                models,
                models_error,
            }
        });
    Ok(output::Report {
        connections: futures::future::join_all(tests).await,
    })
}

/// `kconn models NAME`: reads the connection and its catalog ConfigMaps and prints the models.
fn show_models(args: &ModelsArgs) -> u8 {
    let Some(rt) = runtime() else {
        return EXIT_BAD_INPUT;
    };
    rt.block_on(async {
        let client = match kube_client(args.context.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        };
        let ns = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let conns: kube::Api<api::KafkaConnection> = kube::Api::namespaced(client.clone(), &ns);
        let conn = match conns.get(&args.name).await {
            Ok(c) => c,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                eprintln!(
                    "error: KafkaConnection {}/{} not found (kubectl get kafkaconnections -n {ns})",
                    ns, args.name
                );
                return EXIT_BAD_INPUT;
            }
            Err(e) => {
                eprintln!("error: reading KafkaConnection {}/{}: {e}", ns, args.name);
                return EXIT_BAD_INPUT;
            }
        };
        let uid = kube::ResourceExt::uid(&conn).unwrap_or_default();
        let cms = kube::Api::namespaced(client, &ns);
        let shards = match models::store::existing(&cms, &uid).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: reading the catalog ConfigMaps: {e}");
                return EXIT_BAD_INPUT;
            }
        };
        let mut catalog = models::store::models_of(&shards);
        if let Some(topic) = &args.topic {
            catalog.retain(|m| &m.topic == topic);
        }
        let status = conn.status.as_ref().and_then(|s| s.models.as_ref());
        let printed = match args.output {
            output::Format::Json => serde_json::to_string_pretty(&catalog)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string()),
            output::Format::Yaml => serde_yaml::to_string(&catalog).map_err(|e| e.to_string()),
            output::Format::Table => Ok(output::models_table(&ns, &args.name, status, &catalog)),
        };
        match printed {
            Ok(text) => {
                print!("{text}");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_BAD_INPUT
            }
        }
    })
}

/// A client for a kubeconfig context (`None`: the current one).
async fn kube_client(context: Option<&str>) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let what = match context {
        Some(c) => format!("kubeconfig context {c:?}"),
        None => "kubeconfig".to_string(),
    };
    let config = kube::Config::from_kubeconfig(&options)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("{what}: {e}"))
}
