//! Command line: `kconn run | check | demo | models | crd`. Parsing and dispatch only; each command's
//! arguments and work live in its own module under `commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{api, output};

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
    Run(run::RunArgs),
    /// Test connections from manifests (KafkaConnection and Secret YAML), without an operator.
    Check(check::CheckArgs),
    /// Start an in-process Kafka cluster and show a full connection test against it.
    Demo(DemoArgs),
    /// Print the model catalog the operator keeps for a KafkaConnection (its topics and the schema
    /// of their messages), read from the cluster.
    Models(models::ModelsArgs),
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

use crate::commands::{check, models, run, EXIT_BAD_INPUT, EXIT_OK};

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
        Command::Check(args) => check::run(&args),
        Command::Run(args) => run::run(args),
        Command::ProbeMetadata if !crate::process::die_with_parent() => EXIT_BAD_INPUT,
        Command::ProbeMetadata => crate::commands::child(),
        Command::Demo(args) => crate::demo::run(args.hold, args.output),
        Command::Models(args) => models::run(&args),
    };
    ExitCode::from(code)
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
