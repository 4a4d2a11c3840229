//! `kconn`: a Kubernetes operator that tests Kafka connections for real.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kconn::cli::Cli::parse();
    kconn::cli::run(cli)
}
