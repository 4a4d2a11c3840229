//! What the command bodies share, below the argument parser (`cli`): exit codes, the async
//! runtime, and the hidden child command.

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
