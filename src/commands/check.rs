//! `kconn check`: test connections from manifests (KafkaConnection and Secret YAML), without an
//! operator; `--offline` validates only.

use std::path::PathBuf;
use std::time::Instant;

use super::{kube_client, runtime, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::kafka::RdKafka;
use crate::secrets::SecretStore;
use crate::{api, binding, checks, manifest, models, output, validate};

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
    /// Print the binding Secret each passing connection would publish (`spec.binding`, or its
    /// defaults), instead of the report: what the operator will write, before it does. It holds the
    /// credentials. A connection that fails is named on stderr, with its first failed check.
    #[arg(long, conflicts_with_all = ["offline", "models"])]
    pub binding: bool,
}

/// `kconn check`: every KafkaConnection in the inputs; `--offline` validates only, without network.
pub fn run(args: &CheckArgs) -> u8 {
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
                args.binding,
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
    let printed = match args.binding {
        true => print_bindings(&report, args.output),
        false => output::print(&report, args.output),
    };
    if let Err(e) = printed {
        eprintln!("error: cannot write the report: {e}");
        return EXIT_BAD_INPUT;
    }
    exit_code(&manifests, &report)
}

/// The binding Secrets of the passing connections, as YAML documents (or a JSON list); the failing
/// ones named on stderr.
fn print_bindings(report: &output::Report, format: output::Format) -> std::io::Result<()> {
    let mut secrets = Vec::new();
    for c in &report.connections {
        match (
            &c.binding,
            c.checks
                .iter()
                .find(|r| r.result == api::CheckResult::Failed),
        ) {
            (Some(manifest), None) => {
                let mut v = serde_json::to_value(&manifest.0).map_err(std::io::Error::other)?;
                v["apiVersion"] = "v1".into();
                v["kind"] = "Secret".into();
                secrets.push(v);
            }
            (_, Some(failed)) => eprintln!(
                "error: {}/{}: no binding: the test failed ({}: {})",
                c.namespace, c.name, failed.name, failed.message
            ),
            (None, None) => eprintln!(
                "error: {}/{}: no binding: the test did not reach the cluster",
                c.namespace, c.name
            ),
        }
    }
    let text = match format {
        output::Format::Json => {
            serde_json::to_string_pretty(&secrets).map_err(std::io::Error::other)? + "\n"
        }
        output::Format::Yaml | output::Format::Table => secrets
            .iter()
            .map(|s| serde_yaml::to_string(s).map_err(std::io::Error::other))
            .collect::<Result<Vec<_>, _>>()?
            .join("---\n"),
    };
    use std::io::Write;
    std::io::stdout().write_all(text.as_bytes())
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
                binding: None,
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
    with_binding: bool,
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
            // What the operator would publish: from a test that passed, with what it used.
            let binding = match (&doc.object, &report.session) {
                (Some(conn), Some(session)) if with_binding && !report.failed() => {
                    let spec = conn.spec.binding.clone().unwrap_or_default();
                    binding::render(&doc.name, &conn.spec, &spec, &session.settings)
                        .map_err(|e| {
                            eprintln!("error: {}/{}: no binding: {e}", doc.namespace, doc.name)
                        })
                        .ok()
                        .map(|b| {
                            binding::Manifest(binding::secret(
                                &doc.namespace,
                                &doc.name,
                                None,
                                &spec,
                                &b,
                            ))
                        })
                }
                _ => None,
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
                binding,
            }
        });
    Ok(output::Report {
        connections: futures::future::join_all(tests).await,
    })
}
