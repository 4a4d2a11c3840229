//! `kconn models NAME`: the model catalog the operator keeps for a KafkaConnection, read from the
//! cluster.

use super::{kube_client, runtime, EXIT_BAD_INPUT, EXIT_OK};
use crate::{api, models, output};

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

/// `kconn models NAME`: reads the connection and its catalog ConfigMaps and prints the models.
pub fn run(args: &ModelsArgs) -> u8 {
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
