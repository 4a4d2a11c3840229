//! The commands' arguments and bodies, below the argument parser (`cli`), and what they share: exit
//! codes, the async runtime, a kubeconfig client, and the hidden child command.

pub mod check;
pub mod models;
pub mod run;

/// Exit code: every check passed or warned.
pub const EXIT_OK: u8 = 0;
/// Exit code: a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the input could not be read.
pub const EXIT_BAD_INPUT: u8 = 2;

/// The multi-threaded runtime the commands run on; `None` (after saying why) when it cannot start.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// The hidden `probe-metadata` command: the child process of a Kerberos connection's Kafka session,
/// which also samples its topics for models.
pub fn child() -> u8 {
    crate::kafka::probe::child_main(|session, request, timeout| {
        crate::models::report::sample_and_build_here(
            session,
            request.per_topic,
            request.ignore_non_json,
            timeout,
        )
    })
}

/// A client for a kubeconfig context (`None`: the current one).
pub async fn kube_client(context: Option<&str>) -> Result<kube::Client, String> {
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
